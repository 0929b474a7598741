"""`make bench`: training throughput of the seed notebook as written vs `kit train --model seed`, and the
wall time of `kit train` (default recipe) to its holdout accuracy. All in one run, on the installed data.

    python benchmarks/bench.py [--epochs 3] [--skip-full]

(a) the notebook as written: plain Keras, float32 inputs scaled in numpy, one-hot labels, batch 100;
(b) kit's seed recipe through kit's training loop (uint8 in, scaling in the model, the auto precision,
`kit.training.fit` feeding the batches itself);
both the same 280,714-parameter network on the same 9:1 split, images/s of each epoch after the first
(the first traces the graph), median and best. Then (c) runs `kit train` end to end in a subprocess and times it.
Figures are ratios measured in this run; docs/benchmarks.md records the ones we measured.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _steady_rates(model, x, y, x_val, y_val, batch_size: int, epochs: int) -> list[float]:
    import keras

    ends: list[float] = []

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_test_begin(self, logs=None):
            ends.append(time.perf_counter() - self.start)

    model.fit(x, y, validation_data=(x_val, y_val), batch_size=batch_size, epochs=epochs, verbose=0,
              callbacks=[Clock()])  # fmt: skip
    steady = ends[1:] or ends
    return [len(x) / seconds for seconds in steady]


def notebook_as_written(comp, epochs: int) -> list[float]:
    """The seed notebook's code path: float32 arrays in [0, 1], one-hot labels, plain Keras, batch 100."""
    import keras
    from keras import layers
    from sklearn.model_selection import train_test_split

    keras.mixed_precision.set_global_policy("float32")
    x = comp.train_images.astype("float32") / 255.0
    y = keras.utils.to_categorical(comp.train_labels, 10)
    x_train, x_val, y_train, y_val = train_test_split(x, y, test_size=0.1, random_state=2)
    model = keras.models.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Conv2D(64, (3, 3), activation="relu"),
            layers.Conv2D(64, (3, 3), activation="relu"),
            layers.MaxPooling2D(2, 2),
            layers.Dropout(0.25),
            layers.Conv2D(64, (3, 3), activation="relu"),
            layers.MaxPooling2D(2, 2),
            layers.Flatten(),
            layers.Dense(128, activation="relu"),
            layers.Dense(10, activation="softmax"),
        ]
    )
    assert model.count_params() == 280_714
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    return _steady_rates(model, x_train, y_train, x_val, y_val, 100, epochs)


def kit_seed(comp, epochs: int) -> tuple[list[float], str]:
    """kit's seed recipe through kit's own training loop (kit.training.fit) at the auto precision."""
    from kit import config, device, splits, training

    recipe = config.recipe("seed", epochs=epochs)
    dev = device.setup(recipe.precision)
    folds = splits.assign(comp.train_labels, 1, recipe.holdout, recipe.seed)
    fit, val = splits.training_rows(folds, 1, 0), splits.member_rows(folds, 1, 0)
    model = training.compile_model(recipe, dev, steps_per_epoch=-(-int(fit.sum()) // recipe.batch_size), seed=0)
    history = training.fit(
        model, comp.train_images[fit], training.one_hot(comp.train_labels[fit]), comp.train_images[val],
        training.one_hot(comp.train_labels[val]), recipe, dev, seed=0,
    )  # fmt: skip
    rates = [row["images_per_s"] for row in history]
    return rates[1:] or rates, dev.describe()


def _fmt(rates: list[float]) -> str:
    return ", ".join(f"{r:,.0f}" for r in rates)


def full_default_run() -> dict:
    run_id = f"bench-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "kit", "train", "--run-id", run_id], check=True)
    wall = time.perf_counter() - start
    from kit import paths, runs

    metrics = runs.load_metrics(paths.runs_dir() / run_id) or {}
    return {"run_id": run_id, "wall_s": wall, "holdout": metrics.get("cv_accuracy")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3, help="epochs per throughput measurement (>= 2)")
    parser.add_argument("--rounds", type=int, default=2, help="alternate (a) and (b) this many times")
    parser.add_argument("--skip-full", action="store_true", help="skip the full default-recipe run")
    args = parser.parse_args()

    from kit import data
    from kit.device import import_keras_quietly

    import_keras_quietly()
    comp = data.load_competition()
    print(f"data: {len(comp.train_labels):,} train rows ({comp.source}); {args.epochs} epochs per measurement")
    # Through `model.fit`'s tf.data iterator, whole epochs run on one core or on two at random (see
    # kit.training.fit), so (a) and (b) alternate, every epoch after the first is timed, and both the median and
    # the best epoch are reported. The median is what a run of that length saw; the best epoch is the code's
    # speed with the least interference (what `timeit` reports, for the same reason).
    rates_a: list[float] = []
    rates_b: list[float] = []
    for n in range(args.rounds):
        notebook = notebook_as_written(comp, args.epochs)
        rates, where = kit_seed(comp, args.epochs)
        rates_a, rates_b = rates_a + notebook, rates_b + rates
        print(f"round {n + 1}: (a) {_fmt(notebook)}; (b) {_fmt(rates)} img/s", flush=True)
    result: dict = {"device": where}
    for stat, pick in (("median", np.median), ("best", np.max)):
        baseline, rate = float(pick(rates_a)), float(pick(rates_b))
        print(f"{stat:>6} epoch: (a) seed notebook as written (float32, batch 100) {baseline:7,.0f} img/s   "
              f"(b) kit train --model seed {rate:7,.0f} img/s   {rate / baseline:.2f}x", flush=True)  # fmt: skip
        result[stat] = {"notebook_img_s": baseline, "kit_seed_img_s": rate, "ratio": rate / baseline}
    print(f"(b) ran on: {where}")
    if not args.skip_full:
        full = full_default_run()
        print(f"(c) kit train (default recipe): holdout {full['holdout']:.4%} in {full['wall_s']:.0f} s wall")
        result.update(full)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
