"""What a member's first step costs, as ratios measured in one process (random images; no data needed).

    python benchmarks/first_step.py build    # first train_on_batch, optimizer built by compile_model vs in the step
    python benchmarks/first_step.py shapes   # the GPU configuration's first fit epoch: rows a batch divides vs not
    python benchmarks/first_step.py metrics  # first step, accuracy compiled as a metric object vs by its name

`build`: 12 fresh models a family, alternating, the first two dropped; kit builds the optimizer in
`train.compile_model`, the other side leaves it to the first traced step (TensorFlow then traces that step twice).
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

import numpy as np


def _data(rows: int):
    from kit import train

    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (rows, 28, 28, 1)).astype(np.uint8), train.one_hot(rng.integers(0, 10, rows))


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


def build() -> None:
    import keras

    from kit import config, device, train

    dev = device.configure(keras.backend.backend(), "cpu", ["cpu"], "float32")
    x, y = _data(100)
    for name in ("seed", "kitnet"):
        r = config.recipe(name, epochs=1)
        times: dict[str, list[float]] = {"built": [], "unbuilt": []}
        for i in range(12):
            side = ("built", "unbuilt")[i % 2]
            with _unbuilt() if side == "unbuilt" else contextlib.nullcontext():
                model = train.compile_model(r, dev, 1, seed=i)
            start = time.perf_counter()
            model.train_on_batch(x, y)
            if i >= 2:
                times[side].append(time.perf_counter() - start)
        b, u = np.median(times["built"]), np.median(times["unbuilt"])
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

    from kit import config, device, train

    x, y = _data(64)
    for kind in ("cpu", "gpu"):
        dev = device.configure(keras.backend.backend(), kind, ["cpu"], "float32" if kind == "cpu" else "auto")
        for name in ("seed", "kitnet"):
            r = config.recipe(name, epochs=1, batch_size=32)
            times: dict[str, list[float]] = {"object": [], "named": []}
            for i in range(8):
                side = ("object", "named")[i % 2]
                with _named_metric() if side == "named" else contextlib.nullcontext():
                    model = train.compile_model(r, dev, 2, seed=i)
                start = time.perf_counter()
                if dev.feed == "fit":
                    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
                else:
                    model.train_on_batch(x[:32], y[:32])
                if i >= 2:
                    times[side].append(time.perf_counter() - start)
            o, n = np.median(times["object"]), np.median(times["named"])
            print(
                f"{kind} {name}: first step, metric object {o:.2f} s, named {n:.2f} s (median of 3), "
                f"object/named {o / n:.2f}",
                flush=True,
            )


def shapes() -> None:
    from kit import config, device, train

    dev = device.configure("tensorflow", "gpu", ["cpu"], "auto")
    r = config.recipe("kitnet", epochs=2, batch_size=32)
    took = {}
    for rows in (96, 100):
        x, y = _data(rows)
        model = train.compile_model(r, dev, -(-rows // 32), seed=0)
        start = time.perf_counter()
        model.fit(x, y, batch_size=32, epochs=1, verbose=0)
        took[rows] = time.perf_counter() - start
        print(f"{rows} rows: first fit epoch {took[rows]:.1f} s ({dev.policy}, XLA {dev.jit_compile})", flush=True)
    print(f"100 rows / 96 rows: {took[100] / took[96]:.2f}")


if __name__ == "__main__":
    {"build": build, "shapes": shapes, "metrics": metrics}[sys.argv[1] if len(sys.argv) > 1 else "build"]()
