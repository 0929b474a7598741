"""Alternating A/B of training throughput: this checkout (B) against another checkout of kit (A, the baseline:
for example `git worktree add /tmp/kit-base COMMIT`), on the installed data, in one run.

    python benchmarks/bench_ab.py /tmp/kit-base [--rounds 3] [--epochs 4] [--rows 16384] [--model kitnet]
        [--set batchnorm=all]

Each measurement is a fresh process training one model of the preset for `--epochs` epochs on `--rows` rows through
that checkout's own training loop; the images/s of every epoch after the first (which traces) are kept. A and B
alternate, so drift in the machine's speed hits both; the medians and their ratio are printed, the ratio last as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

_MEASURE = """
import json, numpy as np
from kit import config, data, device
try:
    from kit import training
except ImportError:  # a checkout from before kit/train.py became kit/training.py
    from kit import train as training
from kit.device import import_keras_quietly
import_keras_quietly()
comp = data.load_competition()
r = config.recipe({model!r}, **{{**{fields!r}, "epochs": {epochs}}})
dev = device.setup(r.precision)
rows = min({rows}, len(comp.train_labels))
eye = np.eye(10, dtype=np.float32)
x, y = comp.train_images[:rows], eye[comp.train_labels[:rows]]
model = training.compile_model(r, dev, steps_per_epoch=-(-rows // r.batch_size), seed=0)
history = training.fit(model, x, y, x[:512], y[:512], r, dev, seed=0)
print("RATES " + json.dumps([h["images_per_s"] for h in history[1:]]))
"""


def measure(tree: Path, model: str, epochs: int, rows: int, fields: dict | None = None) -> list[float]:
    env = {**os.environ, "PYTHONPATH": str(tree), "TF_CPP_MIN_LOG_LEVEL": "3"}
    code = _MEASURE.format(model=model, epochs=epochs, rows=rows, fields=fields or {})
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=tree, check=False)
    if done.returncode != 0:
        raise SystemExit(f"measuring {tree} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.split("RATES ", 1)[1])


def _field(text: str) -> tuple[str, object]:
    name, _, value = text.partition("=")
    try:
        return name, json.loads(value)
    except json.JSONDecodeError:
        return name, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("baseline", type=Path, help="the other checkout (A)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=4, help="epochs per measurement (>= 2; the first is not timed)")
    parser.add_argument("--rows", type=int, default=16_384)
    parser.add_argument("--model", default="kitnet")
    parser.add_argument(
        "--set", action="append", default=[], metavar="FIELD=VALUE", help="a recipe field for A and B: batchnorm=all"
    )
    args = parser.parse_args()
    fields = dict(_field(text) for text in args.set)
    here = Path(__file__).resolve().parents[1]
    a: list[float] = []
    b: list[float] = []
    for n in range(args.rounds):
        rates_a = measure(args.baseline.resolve(), args.model, args.epochs, args.rows, fields)
        rates_b = measure(here, args.model, args.epochs, args.rows, fields)
        a, b = a + rates_a, b + rates_b
        print(f"round {n + 1}: A {np.median(rates_a):,.0f}  B {np.median(rates_b):,.0f} img/s", flush=True)
    ratio = float(np.median(b) / np.median(a))
    print(f"median epoch: A {np.median(a):,.0f}  B {np.median(b):,.0f} img/s  B/A {ratio:.3f}")
    print(json.dumps({"a_img_s": float(np.median(a)), "b_img_s": float(np.median(b)), "ratio": ratio}))


if __name__ == "__main__":
    main()
