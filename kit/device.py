"""GPU / CPU detection, the mixed-precision policy, the distribution strategy, and a one-line report.

Policy (`--precision auto`):
- GPU: mixed float16 with XLA (`jit_compile=True`).
- CPU with bf16 matrix units (AMX or avx512_bf16): mixed bfloat16 (3.3x float32 for the seed model).
- Other CPUs: float32.
Several GPUs train one fold each, in worker processes (kit.parallel); with `mirrored` (kit train --mirrored),
one model trains across them under `tf.distribute.MirroredStrategy` instead (TensorFlow; CPU logical devices
set up with `split_cpu` test that path).
"""

from __future__ import annotations

import logging
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kit.errors import UsageError

POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}


@dataclass
class Device:
    backend: str  # keras backend: tensorflow or jax
    kind: str  # "gpu" or "cpu"
    names: list[str]  # the devices training runs on
    precision: str  # float32, bfloat16 or float16 (resolved from "auto")
    policy: str  # the Keras dtype policy
    jit_compile: bool
    strategy: Any = None  # tf.distribute strategy when training on several devices
    feed: str = "batches"  # training.fit: "batches" (train_on_batch, batches cut here) or "fit" (model.fit an epoch)
    steps_per_execution: int = 1  # training steps per compiled call (model.compile)

    @property
    def replicas(self) -> int:
        return max(1, len(self.names)) if self.strategy is not None else 1

    def describe(self) -> str:
        where = f"{len(self.names)} x {self.kind.upper()}" if len(self.names) > 1 else self.kind.upper()
        extra = f", MirroredStrategy over {self.replicas} replicas" if self.strategy is not None else ""
        xla = ", XLA" if self.jit_compile is True else ""
        hardware = cpu_name() if self.kind == "cpu" else ", ".join(self.names)
        return f"{where} ({hardware}) | keras {self.backend} | {self.policy}{xla}{extra}"


VERBOSE = "KIT_VERBOSE"  # set (to anything but 0 or empty): TensorFlow's, XLA's and absl's own log lines are shown


def verbose() -> bool:
    return os.environ.get(VERBOSE, "") not in ("", "0")


def quiet_native_logs() -> None:
    """TensorFlow's, XLA's and gRPC's C++ log lines (`I0000 ...`, `E0000 ... failed call to cuInit` on a CPU) off for
    this process and the workers it starts, unless KIT_VERBOSE; set before TensorFlow loads, or they are not."""
    if not verbose():
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        os.environ.setdefault("GRPC_VERBOSITY", "ERROR")


def import_keras_quietly() -> None:
    """Import Keras (and TensorFlow) with C++ start-up logging silenced (unless KIT_VERBOSE).

    TensorFlow's native code logs oneDNN and CUDA-probe notices straight to file descriptor 2 at import,
    before TF_CPP_MIN_LOG_LEVEL applies; kit's output is cleaner without them. Python errors still surface.
    """
    quiet_native_logs()
    # tf.function retracing notices when each fold's fresh model predicts: expected, not actionable.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    if verbose():
        import keras  # noqa: F401

        return
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import keras  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def set_threads(threads: int) -> None:
    """TensorFlow: `threads` intra-op and inter-op threads (a worker's share of the cores); call before it runs."""
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)


def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} cores"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def cpu_has_bf16() -> bool:
    return bool(cpu_flags() & {"amx_bf16", "avx512_bf16"})


def split_cpu(n: int) -> None:
    """Split the CPU into `n` logical TensorFlow devices (call before TensorFlow initialises), for testing
    the multi-device path without GPUs."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)


def _accelerators(backend: str) -> tuple[list[str], list[str]]:
    """(GPU names, CPU logical device names) for the active backend."""
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
        cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
        return gpus, cpus
    if backend == "jax":
        import jax

        return [str(d) for d in jax.devices() if d.platform == "gpu"], ["cpu"]
    raise UsageError(f"KERAS_BACKEND={backend}: kit trains on Keras' tensorflow (the default) or jax backend.")


def setup(precision: str = "auto", mirrored: bool = False) -> Device:
    """Detect the hardware and configure training for it (`configure`). Call before building any model."""
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        for gpu in tf.config.list_physical_devices("GPU"):  # before TensorFlow claims every GPU's memory at once
            tf.config.experimental.set_memory_growth(gpu, True)
    gpus, cpus = _accelerators(backend)
    return configure(backend, "gpu" if gpus else "cpu", gpus or cpus, precision, mirrored)


def _jax_compilation_cache() -> None:
    """Keep JAX's compiled steps on disk, so a fold's fresh worker process skips the compile (an H100 fold, five at
    once: 86 s cold, 32 s warm), unless the user chose a folder (JAX_COMPILATION_CACHE_DIR)."""
    import jax

    if not jax.config.jax_compilation_cache_dir:
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kit" / "jax"
        jax.config.update("jax_compilation_cache_dir", str(cache))


def configure(backend: str, kind: str, names: list[str], precision: str = "auto", mirrored: bool = False) -> Device:
    """kit's configuration for training on `names`, devices of `kind` ("gpu" or "cpu"): the precision policy (set
    as Keras' global policy), XLA, and with `mirrored` and several devices, one model under MirroredStrategy
    (TensorFlow); on JAX, its compiled steps kept on disk. Tests call it with kind="gpu" on the CPU to run exactly what
    a GPU gets."""
    import keras

    if backend == "jax":
        _jax_compilation_cache()

    if precision == "auto":  # on an H100, mixed float16 ran 1.20x mixed bfloat16 and 1.27x float32
        precision = "float16" if kind == "gpu" else "bfloat16" if cpu_has_bf16() else "float32"
    policy = POLICIES[precision]
    keras.mixed_precision.set_global_policy(policy)
    strategy = None
    if mirrored and backend == "tensorflow" and len(names) > 1:
        import tensorflow as tf

        strategy = tf.distribute.MirroredStrategy(names)
    gpu = kind == "gpu"
    # XLA on GPUs (TensorFlow on the CPU: the seed model 10x slower); JAX without it steps op by op (0.80x on the CPU).
    jit = gpu or backend == "jax"
    # GPUs: model.fit (train_on_batch ran at 0.35x on an H100); under a strategy fit splits batches across replicas.
    feed = "fit" if gpu or strategy is not None else "batches"
    # GPUs: 16 steps per host round trip (1.51x one step per call on an H100).
    steps = 16 if gpu and strategy is None else 1
    return Device(backend, kind, names, precision, policy, jit, strategy, feed, steps)
