"""Alternating A/B of training settings on this machine's device, in one process: how the batches are fed, steps per
compiled call, and precision, each against kit's own configuration for the device.

    python benchmarks/bench_settings.py [--variants kit,fit1,batches,float32] [--rounds 4] [--rows 33600]
        [--model kitnet]

Every variant's model is built and compiled first; then each trains one epoch in turn, `--rounds` times, on the
installed data's first `--rows` rows, so drift in the machine's speed hits all of them. The first epoch of each
(which compiles) is not counted; each variant's median images/s and its ratio to the first variant are printed, the
ratios last as JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from typing import Any

import numpy as np

# Each variant is kit's own configuration for the device ("kit") with these Device fields replaced.
VARIANTS: dict[str, dict[str, Any]] = {
    "kit": {},
    "fit16": {"feed": "fit", "steps_per_execution": 16},  # model.fit, 16 steps per compiled call
    "fit1": {"feed": "fit", "steps_per_execution": 1},
    "batches": {"feed": "batches", "steps_per_execution": 1},  # train_on_batch, batches cut by kit.training
    "float16": {"precision": "float16"},
    "bfloat16": {"precision": "bfloat16"},
    "float32": {"precision": "float32"},
    "xla": {"jit_compile": True},
    "no-xla": {"jit_compile": False},
}


def variant(base: Any, name: str) -> Any:
    """`base` (a kit.device.Device) with the variant's fields replaced."""
    from kit.device import POLICIES

    changes = dict(VARIANTS[name])
    if "precision" in changes:
        changes["policy"] = POLICIES[changes["precision"]]
    return dataclasses.replace(base, **changes)


def run(names: list[str], rounds: int, rows: int, model: str) -> dict[str, Any]:
    """{variant: {"img_s": median images/s, "ratio": against the first variant, "val_accuracy": after the rounds}}."""
    from kit import config, data, training
    from kit.device import import_keras_quietly, setup

    import_keras_quietly()
    import keras

    comp = data.load_competition()
    base = setup()
    rows = min(rows, len(comp.train_labels))
    x, y = comp.train_images[:rows], training.one_hot(comp.train_labels[:rows])
    x_val, y_val = comp.train_images[-2048:], training.one_hot(comp.train_labels[-2048:])
    r = config.recipe(model, epochs=rounds)
    one_epoch = dataclasses.replace(r, epochs=1)
    devices = {name: variant(base, name) for name in names}
    models = {}
    for name, dev in devices.items():
        keras.mixed_precision.set_global_policy(dev.policy)
        models[name] = training.compile_model(r, dev, steps_per_epoch=-(-rows // r.batch_size), seed=0)
    rates: dict[str, list[float]] = {name: [] for name in names}
    last: dict[str, dict[str, float]] = {}
    print(f"device: {base.describe()}", flush=True)
    for n in range(rounds):
        for name, dev in devices.items():
            last[name] = training.fit(models[name], x, y, x_val, y_val, one_epoch, dev, seed=n)[0]
            if n > 0:
                rates[name].append(last[name]["images_per_s"])
        line = "  ".join(f"{name} {last[name]['images_per_s']:,.0f}" for name in names)
        print(f"round {n + 1}{' (compiles, not counted)' if n == 0 else ''}: {line} img/s", flush=True)
    first = float(np.median(rates[names[0]]))
    result = {}
    for name in names:
        median = float(np.median(rates[name]))
        result[name] = {"img_s": median, "ratio": median / first, "val_accuracy": last[name]["val_accuracy"]}
        fields = {k: getattr(devices[name], k) for k in ("feed", "steps_per_execution", "precision")}
        print(f"{name:>9}: {median:>9,.0f} img/s  {median / first:.3f}x {names[0]}  val_acc "
              f"{last[name]['val_accuracy']:.4f}  {fields}")  # fmt: skip
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", default="kit,fit1,batches,float32", help=f"from: {', '.join(VARIANTS)}")
    parser.add_argument("--rounds", type=int, default=4, help="epochs per variant (>= 2; the first is not counted)")
    parser.add_argument("--rows", type=int, default=33_600)
    parser.add_argument("--model", default="kitnet")
    args = parser.parse_args()
    names = args.variants.split(",")
    unknown = [name for name in names if name not in VARIANTS]
    if unknown or args.rounds < 2:
        parser.error(f"unknown variant(s) {unknown}" if unknown else "--rounds must be 2 or more")
    print(json.dumps(run(names, args.rounds, args.rows, args.model)))


if __name__ == "__main__":
    main()
