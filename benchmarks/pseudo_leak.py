"""The pseudo-label leak test's three runs at another size: a teacher, honest students (kit's assignment) and leaky
students (every teacher member labels every student's test images), on the offline sample's first ROWS training
images with copies of them as the test set, their labels permuted with --shuffle-labels.

    python benchmarks/pseudo_leak.py --rows 90 --epochs 20 --batch 10 --dropout 0 --shuffle-labels [--seed 42]

Prints the three OOF accuracies and the seconds; `tests/test_pseudo.py` asserts on that case (seed 42, 3 folds;
`--folds` another number of them; `--precision` float32 where the test's auto picks bfloat16).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=600)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--model", default="seed")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--batch", type=int, default=None, help="batch size (default: the preset's)")
    parser.add_argument("--dropout", type=float, default=None, help="dropout (default: the preset's)")
    parser.add_argument("--lr", type=float, default=None, help="learning rate (default: the preset's)")
    parser.add_argument("--precision", default="auto", help="auto (the test's: bfloat16 where the CPU has it), float32")
    parser.add_argument("--shuffle-labels", action="store_true", help="labels permuted: nothing to learn but rows")
    args = parser.parse_args()
    os.environ["KIT_RUNS_DIR"] = tempfile.mkdtemp(prefix="kit-leak-")
    import keras

    from kit import config, data, device, dispatch, pseudo

    train_x, train_y, _, _ = data.sample_arrays()
    x, y = train_x[: args.rows], train_y[: args.rows]
    if args.shuffle_labels:
        y = np.random.default_rng(args.seed).permutation(y)
    comp = data.Competition(x, y, x.copy(), source="sample", path=None)
    dev = device.configure(keras.backend.backend(), "cpu", ["cpu"], args.precision)

    def cv(r: config.Recipe, run_id: str) -> float:
        return dispatch.train_run(r, comp, run_id=run_id, device=dev).metrics["cv_accuracy"]

    start = time.time()
    r = config.recipe(
        args.model,
        folds=args.folds,
        epochs=args.epochs,
        tta=False,
        seed=args.seed,
        batch_size=args.batch,
        dropout=args.dropout,
        learning_rate=args.lr,
    )
    teacher = cv(r, "teacher")
    honest = cv(config.override(r, pseudo="teacher"), "honest")
    real = pseudo.assign
    pseudo.assign = lambda t, s, f: {m: list(range(args.folds)) for m in real(t, s, f)}
    leaky = cv(config.override(r, pseudo="teacher"), "leaky")
    print(f"{args.rows} rows, {args.folds} folds, {args.epochs} epochs, {args.model}, {dev.precision}, "
          f"seed {args.seed}: teacher {teacher:.4f}, honest {honest:.4f}, leaky {leaky:.4f} "
          f"in {time.time() - start:.0f} s")  # fmt: skip


if __name__ == "__main__":
    main()
