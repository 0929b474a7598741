"""How the members of a run get trained: one after another in this process, at once in local worker processes
(kit.parallel: sharing the GPUs, or the CPU cores), or as Ray tasks on a cluster (kit.cluster). Every way, each
member is trained by kit.train.train_fold and written into the run directory the same way (metrics.json last), so
resume, --fold and merge work the same.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from kit import config, parallel, runs, train
from kit.cluster import Cluster, train_members
from kit.config import Recipe
from kit.data import Competition
from kit.device import Device
from kit.train import EpochHook, RunResult


def placement(
    r: Recipe, device: Device, only_fold: int | None, jobs: int | None, cluster: Cluster | None
) -> tuple[int, str]:
    """How many members train at once here (`jobs`, else kit.parallel's choice for the device), and the line that
    says where they train."""
    left = config.member_count(r) if only_fold is None else 1
    jobs = jobs or parallel.auto_jobs(device, left)
    return jobs, cluster.describe() if cluster else f"{device.describe()}: {parallel.plan(device, jobs, left)}"


def train_run(
    r: Recipe,
    comp: Competition,
    run_id: str,
    device: Device,
    only_fold: int | None = None,
    on_epoch: EpochHook | None = None,
    on_fold_start: Callable[[int, int], None] | None = None,
    jobs: int = 1,
    data_dir: Path | None = None,
    limit: int | None = None,
    cluster: Cluster | None = None,
) -> RunResult:
    """Train every incomplete member (fold; K x R of them with repeats), or just `only_fold`, of run `run_id`, and
    merge once all are complete. On a Ray `cluster` (kit.cluster.connect) they train as its tasks; else, with `jobs`
    > 1 and several members to train, at once in worker processes, which load the data from `data_dir` (its first
    `limit` rows); otherwise here, one after another."""
    config.check_fold(r, only_fold)
    total = config.member_count(r)
    run_dir, folds = train.prepare_run(r, comp, run_id, device)
    todo = [k for k in ([only_fold] if only_fold is not None else range(total)) if not runs.member_done(run_dir, k)]
    with runs.fold_locks(run_dir, todo):
        todo = [k for k in todo if not runs.member_done(run_dir, k)]  # another process may have finished one meanwhile
        on_start = (lambda fold: on_fold_start(fold, total)) if on_fold_start is not None else None
        on_event = (lambda e: on_epoch(e["fold"], e["epoch"], e["epochs"], e["logs"])) if on_epoch else None
        if cluster is not None:
            train_members(r, comp, folds, todo, run_dir, cluster, on_start, on_event)
        elif jobs > 1 and len(todo) > 1:
            parallel.run_workers(
                lambda fold, threads: parallel.worker_command(run_id, fold, threads, data_dir, limit),
                todo,
                jobs,
                run_dir,
                on_start=on_start,
                on_event=on_event,
                gpus=parallel.worker_gpus(device),
            )
        else:
            for fold in todo:
                if on_fold_start is not None:
                    on_fold_start(fold, total)
                train.train_fold(r, comp, folds, fold, run_dir, device, on_epoch)
    return train.collect(r, comp, run_dir, folds, todo)
