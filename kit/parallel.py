"""Folds trained at once in worker processes (`kit train --jobs N`): several on each GPU, or each with its share of
the CPU cores.

A small convnet cannot keep many cores busy with one batch at a time (two one-thread processes made 1.19x the
img/s of one process on both of 2 cores). So on CPUs the folds of a K-fold run go to worker processes
(`python -m kit.parallel`, whose `main` runs the member runner kit.training.train_member), up to `jobs` at a time.
Each worker gets cores // (workers that will run beside it) threads, at least one; by default there are enough
workers that the last round of folds still fills the cores (`fill_cores`). On GPUs, up to FOLDS_PER_GPU folds train
at once on each, every worker pinned to one GPU through CUDA_VISIBLE_DEVICES: a 300k-parameter CNN gains nothing from
splitting each batch across GPUs (MirroredStrategy, `kit train --mirrored`), while independent folds keep every GPU
busy.

Workers write their fold into the run directory exactly as an in-process fold does (its metrics last), so
an interrupted run resumes the same way, and report progress as JSON lines on stdout; their stderr goes to
kit.runs.member_log (removed when empty).
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

from kit import config, data, paths, progress, runs, training
from kit.device import Device, quiet_native_logs
from kit.errors import KitError, RunError
from kit.progress import ProgressHook


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
    error: str = ""  # the one-line error it said on stdout (it reaches here when its log cannot be written)


def run_workers(
    command: Callable[[int, int], list[str]],
    folds: list[int],
    jobs: int,
    log_dir: Path,
    on_progress: ProgressHook | None = None,
    n_cores: int | None = None,
    gpus: list[str] | None = None,
) -> None:
    """Run `command(fold, threads)` for every fold, at most `jobs` at a time, passing the Progress of each event
    line on their stdout (kit.progress.to_line) to `on_progress` in this thread. With `gpus` (CUDA ids), each worker
    is pinned to the GPU running the fewest workers (`worker_env`). Raises RunError when a worker fails; the workers
    still running are stopped first (their folds stay incomplete, so a re-run trains them)."""
    n_cores = n_cores or cores()
    pending, running = list(folds), []
    load = {gpu: 0 for gpu in gpus or []}  # workers running on each GPU
    events: queue.Queue = queue.Queue()

    def read(worker: Worker) -> None:
        try:
            for line in worker.process.stdout:  # read to the end, so the worker never blocks on a full pipe
                event = progress.from_line(line)
                if event is not None:
                    events.put(("event", worker, event))
                worker.error = progress.error_of(line) or worker.error
        except OSError:
            pass
        finally:
            events.put(("exit", worker, worker.process.wait()))

    try:
        while pending or running:
            while pending and len(running) < jobs:
                fold = pending.pop(0)
                threads = threads_for(n_cores, jobs, len(pending) + 1)
                log = runs.member_log(log_dir, fold)
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
                threading.Thread(target=read, args=(worker,), daemon=True).start()
            kind, worker, payload = events.get()
            if kind == "event":
                if on_progress is not None:
                    on_progress(payload)
                continue
            running.remove(worker)
            if worker.gpu is not None:
                load[worker.gpu] -= 1
            if payload == 0 and worker.log.stat().st_size == 0:
                worker.log.unlink()  # nothing to read
            if payload != 0:
                said = worker.error.removeprefix("error: ") or _last_line(worker.log)
                raise RunError(
                    f"Fold {worker.fold} failed (exit {payload}): {said} (its log: {worker.log}); re-run the same "
                    "command to resume."
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


def worker_command(run_id: str, member: int, threads: int, where: dict[str, Any]) -> list[str]:
    """The command line of a worker process that trains one member of an existing run (`main`)."""
    spec = {"run_id": run_id, "member": member, "threads": threads, "data": where}
    return [sys.executable, "-m", "kit.parallel", json.dumps(spec)]


def main(argv: list[str]) -> int:
    """A worker process: train one member of an existing run (its config holds the recipe, and the run its split)
    and print each Progress as a line on stdout (kit.progress.to_line). Errors a user can cause end as one line on
    stderr (the parent quotes it) and exit code 1."""
    _die_with_parent()
    quiet_native_logs()  # the worker's log holds kit's errors, not TensorFlow's start-up notices
    try:
        spec = json.loads(argv[0])
        run_dir = paths.runs_dir() / runs.check_id(spec["run_id"])
        saved = runs.load_config(run_dir)
        recipe = config.from_dict(saved["recipe"])
        comp = data.load_again(spec["data"])
        folds = runs.load_folds(run_dir)
        if folds.shape[-1] != len(comp.train_labels):
            raise RunError(f"The data in {spec['data']['path']} is not the data run {run_dir.name} was split on.")
        emit = lambda event: print(progress.to_line(event), flush=True)  # noqa: E731
        training.train_member(recipe, comp, folds, spec["member"], run_dir, threads=spec["threads"], on_progress=emit,
                              predict_test=runs.predicts_test(saved))  # fmt: skip
    except (KitError, OSError) as e:  # a user's problem, or a disk that is full or read-only: one line, twice
        message = str(e) if isinstance(e, KitError) else _cannot_write(e)
        print(f"error: {message}", file=sys.stderr)  # the worker's log, which a full disk may not take
        print(progress.error_line(message), flush=True)  # the pipe to `kit train`, which it always reaches
        return 1
    return 0


def _cannot_write(exc: OSError) -> str:
    where = f" {exc.filename}" if exc.filename else ""
    return f"cannot write{where} ({exc.strerror or exc}); free some space or point KIT_RUNS_DIR at a writable folder"


def _die_with_parent() -> None:
    """Linux: the kernel sends this worker SIGTERM when the `kit train` that started it dies, even by SIGKILL."""
    if not sys.platform.startswith("linux"):  # prctl is Linux's alone
        return
    with contextlib.suppress(OSError, AttributeError):
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
