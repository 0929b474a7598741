"""What a member's first step costs, as ratios measured in one process (random images; no data needed).

    python benchmarks/first_step.py build    # first train_on_batch, optimizer built by compile_model vs in the step
    python benchmarks/first_step.py shapes   # the GPU configuration's first fit epoch: rows a batch divides vs not
    python benchmarks/first_step.py metrics  # first step, accuracy compiled as a metric object vs by its name

`build`: 12 fresh models a family, alternating, the first two dropped; kit builds the optimizer in
`training.compile_model`, the other side leaves it to the first traced step (TensorFlow then traces that step twice).
`shapes`: kitnet in the GPU configuration forced on this CPU (mixed float16, XLA, model.fit, 16 steps a call), one
fresh model each for 96 and 100 rows at batch 32 (the last batch of 100 is partial: its shape compiles again).
`metrics`: 8 fresh models a family and configuration (the CPU's train_on_batch; the GPU's, forced on this CPU: mixed
float16, XLA, one fit epoch of 64 rows), alternating, the first two dropped; kit compiles accuracy as a metric object,
the other side by its name (Keras then makes the metric's variables inside the first traced step, which TensorFlow
traces twice).
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable

import numpy as np


def _data(rows: int):
    from kit import training

    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (rows, 28, 28, 1)).astype(np.uint8), training.one_hot(rng.integers(0, 10, rows))


@contextlib.contextmanager
def _unbuilt():
    """compile_model as it was: the optimizer left for the first step to build."""
    import keras

    real = keras.optimizers.Adam.build
    keras.optimizers.Adam.build = lambda self, variables: None
    try:
        yield
    finally:
        keras.optimizers.Adam.build = real


def _alternating(r, dev, steps_per_epoch: int, sides: dict[str, Callable], step: Callable, rounds: int) -> list[float]:
    """The median first step of each side, in order: `rounds` fresh models of recipe `r`, each compiled by kit inside
    the context `sides[name]()` of the sides taken in turn, then `step(model)` timed; the first two dropped."""
    from kit import training

    times: dict[str, list[float]] = {name: [] for name in sides}
    for i in range(rounds):
        name = list(sides)[i % len(sides)]
        with sides[name]():
            model = training.compile_model(r, dev, steps_per_epoch, seed=i)
        start = time.perf_counter()
        step(model)
        if i >= 2:
            times[name].append(time.perf_counter() - start)
    return [float(np.median(times[name])) for name in sides]


def build() -> None:
    import keras

    from kit import config, device

    dev = device.configure(keras.backend.backend(), "cpu", ["cpu"], "float32")
    x, y = _data(100)
    for name in ("seed", "kitnet"):
        sides = {"built": contextlib.nullcontext, "unbuilt": _unbuilt}
        b, u = _alternating(config.recipe(name, epochs=1), dev, 1, sides, lambda m: m.train_on_batch(x, y), 12)
        print(f"{name}: first step built {b:.2f} s, unbuilt {u:.2f} s (median of 5), built/unbuilt {b / u:.2f}")


@contextlib.contextmanager
def _named_metric():
    """compile_model as it was: accuracy compiled by its name."""
    import keras

    real = keras.Model.compile

    def compile(self, *args, **kwargs):
        real(self, *args, **{**kwargs, "metrics": ["accuracy"]})

    keras.Model.compile = compile
    try:
        yield
    finally:
        keras.Model.compile = real


def metrics() -> None:
    import keras

    from kit import config, device

    x, y = _data(64)
    for kind in ("cpu", "gpu"):
        dev = device.configure(keras.backend.backend(), kind, ["cpu"], "float32" if kind == "cpu" else "auto")
        if dev.feed == "fit":
            step = lambda model: model.fit(x, y, batch_size=32, epochs=1, verbose=0)  # noqa: E731
        else:
            step = lambda model: model.train_on_batch(x[:32], y[:32])  # noqa: E731
        for name in ("seed", "kitnet"):
            sides = {"object": contextlib.nullcontext, "named": _named_metric}
            o, n = _alternating(config.recipe(name, epochs=1, batch_size=32), dev, 2, sides, step, 8)
            print(f"{kind} {name}: first step, metric object {o:.2f} s, named {n:.2f} s (median of 3), "
                  f"object/named {o / n:.2f}", flush=True)  # fmt: skip


def shapes() -> None:
    from kit import config, device, training

    dev = device.configure("tensorflow", "gpu", ["cpu"], "auto")
    r = config.recipe("kitnet", epochs=2, batch_size=32)
    took = {}
    for rows in (96, 100):
        x, y = _data(rows)
        model = training.compile_model(r, dev, -(-rows // 32), seed=0)
        start = time.perf_counter()
        model.fit(x, y, batch_size=32, epochs=1, verbose=0)
        took[rows] = time.perf_counter() - start
        print(f"{rows} rows: first fit epoch {took[rows]:.1f} s ({dev.policy}, XLA {dev.jit_compile})", flush=True)
    print(f"100 rows / 96 rows: {took[100] / took[96]:.2f}")


if __name__ == "__main__":
    {"build": build, "shapes": shapes, "metrics": metrics}[sys.argv[1] if len(sys.argv) > 1 else "build"]()
