"""A run's members as Ray tasks (`kit train --ray ADDRESS`): a local Ray instance, or a cluster of machines.

Each member is one task that trains it with `kit.training.train_member`, the same function a local fold runs, into a
temporary folder on whichever node Ray picks, and returns the files it wrote. The driver (`kit train`) writes them
into the member's folder exactly as a local fold is written (its metrics last), so no shared filesystem is needed and
resume, --fold, merge and submit work unchanged. The data reaches the tasks once, through Ray's object store; each
epoch's progress comes back through a Ray queue.

Ray never retries a member (max_retries=0): a failed or lost member ends the run with one line, the members that
completed are kept, and re-running the same command trains the rest (kit's resume). The driver holds each member's
lock while its task runs, so no member is ever trained twice at once.
"""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kit import files, parallel, runs, user_models
from kit.config import Recipe
from kit.data import Competition
from kit.errors import KitError, OfflineError, RunError, UsageError
from kit.progress import Progress, ProgressHook

INSTALL = "pip install 'kit[ray]'"


@dataclass
class Cluster:
    address: str  # what the user gave: local, auto, HOST:PORT or ray://HOST:PORT
    nodes: int
    cpus: float
    gpus: float
    node_cpus: float  # the most CPUs one node has: no task can ask for more

    def describe(self) -> str:
        where = "a local Ray instance" if self.address == "local" else f"Ray cluster {self.address}"
        return f"{where}: {self.nodes} node(s), {self.cpus:g} CPUs, {self.gpus:g} GPUs"


def check(address: str) -> None:
    """At the door: Ray is installed (else a UsageError with the install command), and a HOST:PORT address is well
    formed and answers. Imports Ray, so for `local` it first keeps Ray's addresses on 127.0.0.1 (read at import)."""
    if address == "local":
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        import ray  # noqa: F401
    except ImportError:
        raise UsageError(f"--ray needs Ray on this machine: {INSTALL} (the same version on every node).") from None
    _check_reachable(address)


@contextlib.contextmanager
def connect(address: str) -> Iterator[Cluster]:
    """Start a local Ray instance for this run (`local`, on 127.0.0.1 only) or join a running cluster (`auto`,
    `HOST:PORT`, `ray://HOST:PORT`); disconnects (and stops a local instance) on the way out."""
    check(address)
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "error")  # Ray's C++ retries would print a line a second
    import ray

    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": "ERROR"}
    try:
        ray.init(address=address, **options)  # "local": a new instance, whatever RAY_ADDRESS says
    except Exception as exc:  # unreachable, refused (token authentication), a version mismatch: Ray's own words
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise OfflineError(
            f"No Ray cluster could be joined at --ray {address} ({first}); start one with `ray start --head` (and "
            "`ray start --address=HEAD:6379` on the other machines), or use --ray local."
        ) from None
    try:
        resources = ray.cluster_resources()
        alive = [node for node in ray.nodes() if node.get("Alive")]
        node_cpus = max((float(node.get("Resources", {}).get("CPU", 0)) for node in alive), default=0.0)
        yield Cluster(address, len(alive), float(resources.get("CPU", 0)), float(resources.get("GPU", 0)), node_cpus)
    finally:
        ray.shutdown()


def _check_reachable(address: str) -> None:
    """HOST:PORT and ray://HOST:PORT: a well-formed address whose port answers, checked in seconds (Ray itself
    retries an unreachable head for minutes)."""
    if address in ("local", "auto"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"--ray {address!r}: must be local, auto, HOST:PORT or ray://HOST:PORT.")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as exc:
        raise OfflineError(
            f"No Ray cluster answers at --ray {address} ({exc.strerror or type(exc).__name__}); start one with "
            "`ray start --head` there, or use --ray local."
        ) from None


def task_resources(cluster: Cluster, members: int) -> dict[str, float]:
    """One GPU a member where the cluster has GPUs; else a share of the cluster's CPUs such that the last round of
    members still fills them (`parallel.fill_cores`): 5 members on 2 CPUs run 3 + 2, at 2/3 of a CPU each; never more
    than one node has (a task asking for more would wait for ever: one member on two 1-CPU nodes gets 1 CPU)."""
    if cluster.gpus >= 1:
        return {"num_gpus": 1, "num_cpus": 1}
    cpus = max(1, int(cluster.cpus))
    share = min(cpus / parallel.fill_cores(max(1, members), cpus), max(1, int(cluster.node_cpus)))
    return {"num_cpus": float(int(share)) if share >= 1 else round(share, 4)}


def train_members(
    r: Recipe,
    comp: Competition,
    folds: np.ndarray,
    members: list[int],
    run_dir: Path,
    cluster: Cluster,
    on_progress: ProgressHook | None = None,
    predict: bool = True,
) -> None:
    """Train `members` as Ray tasks and write each into `run_dir` as it completes. A member that fails, or whose node
    or worker dies, ends the run with a RunError naming it and its node, once the members already running have
    finished (and been kept); Ctrl-C cancels every outstanding task."""
    import ray
    from ray.util.queue import Empty, Queue
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=True)
    events = Queue(actor_options={"num_cpus": 0, "scheduling_strategy": here})  # on the driver's node: lives as long
    remote = ray.remote(max_retries=0, scheduling_strategy="SPREAD")(_task)
    resources = task_resources(cluster, len(members))
    threads = max(1, int(resources["num_cpus"]))
    comp_ref = ray.put(comp)
    code = {name: path.read_bytes() for name, path in user_models.files(r, run_dir).items()}  # your own models' files
    pending = {
        remote.options(**resources).remote(r.to_dict(), comp_ref, folds, member, events, threads, code, predict): member
        for member in members
    }
    started: dict[int, str] = {}  # member -> the node it runs on
    failure: RunError | None = None

    def drain() -> None:
        while True:
            try:
                event = events.get_nowait()
            except (Empty, ray.exceptions.RayError):  # none waiting, or the queue is gone: progress only
                return
            event = Progress.from_dict(event)
            started.setdefault(event.member, event.where)
            if on_progress is not None:
                on_progress(event)

    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
            drain()
            for ref in ready:
                member = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except ray.exceptions.TaskCancelledError:
                    continue
                except ray.exceptions.RayError as exc:
                    failure = failure or RunError(_failed(member, started.get(member), exc))
                    for waiting, other in pending.items():  # not started yet: nothing to keep
                        if other not in started:
                            ray.cancel(waiting)
                    continue
                runs.write_member(run_dir, member, result)
        drain()
    finally:
        for ref in pending:  # Ctrl-C, SIGTERM: nothing half-written, since only completed members are written
            ray.cancel(ref, force=True)
        with contextlib.suppress(Exception):
            ray.kill(events.actor)
    if failure is not None:
        raise failure


def _failed(member: int, node: str | None, exc: Exception) -> str:
    import ray

    if isinstance(exc, ray.exceptions.RayTaskError):
        cause = exc.cause if isinstance(exc.cause, BaseException) else exc
        why = str(cause) if isinstance(cause, KitError) else f"{type(cause).__name__}: {cause}"
    else:  # the worker or its node died, or the object was lost
        why = f"its task was lost ({type(exc).__name__}: the node or its worker died)"
    where = node or "a node that never started it"
    why = " ".join(why.split())[:300]
    return (
        f"Fold {member} failed on {where}: {why}. The completed folds are kept; re-run the same command to train "
        "the rest."
    )


def _task(
    recipe: dict[str, Any], comp: Competition, folds: np.ndarray, member: int, events: Any, threads: int,
    code: dict[str, bytes], predict: bool = True,
) -> dict[str, bytes]:  # fmt: skip
    """The Ray task: train the member on this node into a temporary folder with kit.training.train_member (its
    progress, naming the node, to the driver through `events`) and return its files (its metrics naming the node).
    `code`: the run's own model files, written beside it as the run keeps them."""
    import ray

    from kit import config, training

    node = {"id": ray.get_runtime_context().get_node_id(), "host": socket.gethostname(),
            "address": ray.util.get_node_ip_address()}  # fmt: skip
    where = f"{node['host']} ({node['address']})"
    with tempfile.TemporaryDirectory(prefix="kit-ray-") as tmp:
        for name, text in code.items():
            (Path(tmp) / name).write_bytes(text)
        metrics = training.train_member(config.from_dict(recipe), comp, folds, member, Path(tmp), threads=threads,
                                     on_progress=lambda event: _tell(events, event.to_dict()), where=where,
                                     predict_test=predict)  # fmt: skip
        files.write_json(runs.member_dir(Path(tmp), member) / runs.METRICS, {**metrics, "node": node})
        return {path.name: path.read_bytes() for path in (runs.member_dir(Path(tmp), member)).iterdir()}


def _tell(events: Any, event: dict[str, Any]) -> None:
    """Progress for the driver; a lost queue costs the progress bar, never the member."""
    import ray

    with contextlib.suppress(ray.exceptions.RayError):
        events.put(event, timeout=10)
