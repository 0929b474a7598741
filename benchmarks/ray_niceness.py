"""How long `import keras` takes inside a Ray task, at Ray's worker niceness or another, beside whatever else runs.

    python benchmarks/ray_niceness.py [--niceness 15]     # Ray's default is 15; the tests run theirs at 0

Starts a local Ray instance on 127.0.0.1, runs two one-CPU tasks that time `import keras` and a first layer call,
and prints the seconds each took. Run it beside a load (e.g. two `python3 -c "while True: pass"`) to see what the
test suite's other workers did to Ray's tasks at nice 15.
"""

from __future__ import annotations

import argparse
import os
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--niceness", type=int, default=15, help="RAY_worker_niceness for the instance's workers")
    args = parser.parse_args()
    os.environ.update(RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", RAY_USAGE_STATS_ENABLED="0", TF_CPP_MIN_LOG_LEVEL="3",
                      RAY_worker_niceness=str(args.niceness))  # fmt: skip
    import ray

    ray.init(address="local", include_dashboard=False, log_to_driver=False, logging_level="ERROR")

    @ray.remote(num_cpus=1)
    def probe() -> dict[str, float]:
        start = time.time()
        import keras

        imported = time.time()
        keras.layers.Dense(10)(keras.ops.ones((4, 4)))
        return {"nice": os.nice(0), "import_keras_s": round(imported - start, 1),
                "first_layer_s": round(time.time() - imported, 1)}  # fmt: skip

    try:
        for n, got in enumerate(ray.get([probe.remote() for _ in range(2)])):
            print(f"task {n}: {got}")
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
