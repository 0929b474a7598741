"""Folds trained at once in worker processes (`kit train --jobs N`): several on each GPU, or each with its share of
the CPU cores.

A small convnet cannot keep many cores busy with one batch at a time (two one-thread processes made 1.19x the
img/s of one process on both of 2 cores). So on CPUs the folds of a K-fold run go to worker processes
(`python -m kit.parallel`, which calls `kit.train.train_fold`), up to `jobs` at a time. Each worker gets
cores // (workers that will run beside it) threads, at least one; by default there are enough workers that
the last round of folds still fills the cores (`fill_cores`). On GPUs, up to FOLDS_PER_GPU folds train at once on
each, every worker pinned to one GPU through CUDA_VISIBLE_DEVICES: a 300k-parameter CNN gains nothing from splitting
each batch across GPUs (MirroredStrategy, `kit train --mirrored`), while independent folds keep every GPU busy.

Workers write their fold into the run directory exactly as an in-process fold does (metrics.json last), so
an interrupted run resumes the same way, and report progress as JSON lines on stdout; their stderr goes to
runs/<id>/fold<i>.log (removed when empty).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kit.device import Device
from kit.errors import KitError, RunError

EVENT = "KIT-EVENT "  # prefixes a worker's progress lines on stdout; other output is passed over


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


# Folds at once on each GPU: on an H100 five ran at ~74,000 img/s each, one alone ~119,000 (5-fold run 1.39x faster).
FOLDS_PER_GPU = 5


def auto_jobs(device: Device, folds_left: int, n_cores: int | None = None) -> int:
    """`--jobs` when not given: on GPUs up to FOLDS_PER_GPU folds at once on each GPU, and no more workers than cores
    (each worker's host side keeps a core busy); on a CPU at least one worker per core, and enough that the last folds
    do not run alone on too few workers to fill the cores (see `fill_cores`); 1 under a distribution strategy (one
    model across the devices)."""
    if device.strategy is not None or folds_left < 2:
        return 1
    if device.kind == "gpu":
        return max(1, min(len(device.names) * FOLDS_PER_GPU, folds_left, max(len(device.names), n_cores or cores())))
    return fill_cores(folds_left, n_cores or cores())


def plan(device: Device, jobs: int, folds_left: int) -> str:
    """What the run will do with its devices, for the device line."""
    at_once = min(jobs, folds_left)
    if device.strategy is not None:
        return f"one model at a time across {device.replicas} devices (MirroredStrategy)"
    if at_once <= 1:
        return "one fold at a time" if folds_left > 1 else "one model"
    if device.kind == "gpu":
        gpus = len(device.names)
        return f"{at_once} folds at once, " + ("one per GPU" if at_once <= gpus else f"sharing {gpus} GPU(s)")
    return f"{at_once} folds at once, in separate processes sharing the cores"


def worker_gpus(device: Device) -> list[str]:
    """The CUDA ids a worker can be pinned to (CUDA_VISIBLE_DEVICES): the parent's own visible list when it has one
    (CUDA_VISIBLE_DEVICES=2,3 -> "2", "3"), else 0..N-1; none on CPUs and under a strategy."""
    if device.kind != "gpu" or device.strategy is not None:
        return []
    visible = [g.strip() for g in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if g.strip()]
    return visible[: len(device.names)] if visible else [str(i) for i in range(len(device.names))]


def worker_env(gpu: str | None) -> dict[str, str]:
    """The environment a worker starts with: the parent's, pinned to one GPU when there are GPUs, with memory
    allocated as it goes (TensorFlow sets memory growth itself; JAX would otherwise take 75 % of the GPU at once,
    which fails when --jobs puts two workers on one GPU)."""
    env = dict(os.environ)
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpu
        env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
    return env


def fill_cores(folds: int, n_cores: int) -> int:
    """The fewest workers, at least one per core, with which the last round of folds still has a worker per core (or is
    a full round): 5 folds on 2 cores run 3 + 2, not 2 + 2 + 1 (a fold alone on 2 cores ran at 0.8x a pair's pace)."""
    if folds <= n_cores:
        return max(1, folds)
    for jobs in range(n_cores, folds + 1):
        last = folds - jobs * ((folds - 1) // jobs)
        if last >= n_cores or last == jobs:
            return jobs
    return folds


def threads_for(n_cores: int, jobs: int, not_started: int) -> int:
    """Threads for the worker about to start, when `not_started` folds (this one included) are still to
    start: the cores shared by the workers that will run beside it."""
    return max(1, n_cores // max(1, min(jobs, not_started)))


@dataclass
class Worker:
    fold: int
    process: subprocess.Popen
    log: Path
    gpu: str | None = None  # the CUDA id it is pinned to


def run_workers(
    command: Callable[[int, int], list[str]],
    folds: list[int],
    jobs: int,
    log_dir: Path,
    on_start: Callable[[int], None] | None = None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    n_cores: int | None = None,
    gpus: list[str] | None = None,
) -> None:
    """Run `command(fold, threads)` for every fold, at most `jobs` at a time, passing each JSON event line
    (stdout lines starting with EVENT) to `on_event` in this thread. With `gpus` (CUDA ids), each worker is pinned
    to the GPU running the fewest workers (`worker_env`). Raises RunError when a worker fails; the workers still
    running are stopped first (their folds stay incomplete, so a re-run trains them)."""
    n_cores = n_cores or cores()
    pending, running = list(folds), []
    load = {gpu: 0 for gpu in gpus or []}  # workers running on each GPU
    events: queue.Queue = queue.Queue()

    def read(worker: Worker) -> None:
        try:
            for line in worker.process.stdout:  # read to the end, so the worker never blocks on a full pipe
                if line.startswith(EVENT):
                    with contextlib.suppress(ValueError):  # a garbled line costs one progress update, no more
                        events.put(("event", worker, json.loads(line[len(EVENT) :])))
        except OSError:
            pass
        finally:
            events.put(("exit", worker, worker.process.wait()))

    try:
        while pending or running:
            while pending and len(running) < jobs:
                fold = pending.pop(0)
                threads = threads_for(n_cores, jobs, len(pending) + 1)
                log = log_dir / f"fold{fold}.log"
                gpu = min(load, key=lambda g: (load[g], list(load).index(g))) if load else None
                with open(log, "w") as stderr:
                    process = subprocess.Popen(
                        command(fold, threads), stdout=subprocess.PIPE, stderr=stderr, text=True, bufsize=1,
                        env=worker_env(gpu),
                    )  # fmt: skip
                if gpu is not None:
                    load[gpu] += 1
                worker = Worker(fold, process, log, gpu)
                running.append(worker)
                if on_start is not None:
                    on_start(fold)
                threading.Thread(target=read, args=(worker,), daemon=True).start()
            kind, worker, payload = events.get()
            if kind == "event":
                if on_event is not None:
                    on_event(payload)
                continue
            running.remove(worker)
            if worker.gpu is not None:
                load[worker.gpu] -= 1
            if payload == 0 and worker.log.stat().st_size == 0:
                worker.log.unlink()  # nothing to read
            if payload != 0:
                raise RunError(
                    f"Fold {worker.fold} failed (exit {payload}): {_last_line(worker.log)} (its log: {worker.log}); "
                    "re-run the same command to resume."
                )
    finally:
        for worker in running:
            worker.process.terminate()
        for worker in running:
            try:
                worker.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.process.kill()


def _last_line(log: Path) -> str:
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no log"
    return lines[-1] if lines else "no output"


def worker_command(run_id: str, fold: int, threads: int, data_dir: Path | None, limit: int | None) -> list[str]:
    """The command line of one fold's worker (this module's `main`)."""
    spec = {"run_id": run_id, "fold": fold, "threads": threads, "data_dir": str(data_dir) if data_dir else None,
            "limit": limit}  # fmt: skip
    return [sys.executable, "-m", "kit.parallel", json.dumps(spec)]


def _die_with_parent() -> None:
    """Linux: the kernel sends this worker SIGTERM when the `kit train` that started it dies, even by SIGKILL."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def main(argv: list[str]) -> int:
    """A worker: train one fold of an existing run (its config.json holds the recipe) and report progress.
    Errors a user can cause end as one line on stderr (the parent quotes it) and exit code 1."""
    _die_with_parent()
    try:
        return _work(json.loads(argv[0]))
    except KitError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


def _work(spec: dict[str, Any]) -> int:
    from kit import config, data, paths, runs, train
    from kit.device import import_keras_quietly, set_threads, setup

    run_dir = paths.runs_dir() / spec["run_id"]
    recipe = config.from_dict(runs.read_json(run_dir / "config.json")["recipe"])
    comp = data.load_competition(Path(spec["data_dir"]) if spec["data_dir"] else None)
    if spec["limit"] is not None:
        comp = data.head(comp, spec["limit"])
    import_keras_quietly()
    set_threads(spec["threads"])
    device = setup(recipe.precision)  # memory growth on: workers may share a GPU (--jobs above the GPU count)
    _, folds = train.prepare_run(recipe, comp, spec["run_id"], device)  # checks the data is the run's

    def on_epoch(fold: int, epoch: int, epochs: int, logs: dict[str, float]) -> None:
        event = {"fold": fold, "epoch": epoch, "epochs": epochs, "logs": logs}
        print(EVENT + json.dumps(event), flush=True)

    train.train_fold(recipe, comp, folds, spec["fold"], run_dir, device, on_epoch)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
