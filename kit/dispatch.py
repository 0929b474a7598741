"""A run: create or reopen it, train its members, merge them.

`train_run` is the road from `kit train` to the loop. It creates (or reopens) runs/<id>/ (`prepare_run`), then trains
every incomplete member with kit.training.train_member: here, one after another; at once in local worker processes
(kit.parallel: sharing the GPUs, or the CPU cores); or as Ray tasks on a cluster (kit.cluster). Every way writes a
member into the run directory the same way (its metrics last), so resume, --fold and merge work the same, and
reports the same kit.progress.Progress events. Once every member is complete, `collect` merges them (OOF and test
probabilities, CV, the submission).
"""

from __future__ import annotations

import platform
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from kit import config, data, ensemble, files, parallel, paths, predicting, pseudo, runs, splits, submission, training
from kit.cluster import Cluster, train_members
from kit.config import Recipe
from kit.data import Competition
from kit.device import Device
from kit.errors import RunError
from kit.progress import Progress, ProgressHook
from kit.runs import RunResult


def placement(
    r: Recipe, device: Device, only_fold: int | None, jobs: int | None, cluster: Cluster | None, done: int = 0
) -> tuple[int, str]:
    """How many members train at once here (`jobs`, else kit.parallel's choice for the device), and the line that
    says where they train; `done`: members a resumed run has already (the rest are what is placed)."""
    left = max(1, config.member_count(r) - done) if only_fold is None else 1
    jobs = jobs or parallel.auto_jobs(device, left)
    return jobs, cluster.describe() if cluster else f"{device.describe()}: {parallel.plan(device, jobs, left)}"


def train_run(
    r: Recipe,
    comp: Competition,
    *,
    run_id: str,
    device: Device,
    only: int | None = None,
    jobs: int = 1,
    cluster: Cluster | None = None,
    on_progress: ProgressHook | None = None,
    model_files: dict[str, Path] | None = None,
    new: bool = False,
    predict: bool = True,
    tags: dict[str, Any] | None = None,
    on_start: Callable[[Path], None] | None = None,
) -> RunResult:
    """Train every incomplete member of run `run_id` (K folds; K x R with repeats; of each family for a blend), or
    just member `only`, and merge them once all are complete. On a Ray `cluster` (kit.cluster.connect) they train as
    its tasks; else, with `jobs` > 1 and several members to train, at once in worker processes (which load `comp`
    again from its folder: one built in memory trains here); otherwise here, one after another. `on_progress` gets
    a queued event for every member to train, then each member's own. `model_files`: your own models' files
    (kit.user_models.files), copied into a new run. `new`: `run_id` was made up for this run (not named by the
    user): its folder is made afresh (kit.runs.create), never an existing run's. Without `predict` (a new run's
    choice; a resumed run keeps its own) the members predict no test rows: a CV-only run, no submission until
    `fill_in_test`. `tags`: labels a new run keeps in its config (kit tune's study and trial). `on_start(run_dir)`:
    called once the run's folder is ready, before any member trains (a tracker's run starts there)."""
    config.check_fold(r, only)
    total = config.member_count(r)
    run_dir, folds = prepare_run(r, comp, run_id, device, model_files or {}, new, predict, tags)
    predict = runs.predicts_test(runs.load_config(run_dir))
    if on_start is not None:
        on_start(run_dir)
    todo = [k for k in ([only] if only is not None else range(total)) if not runs.member_done(run_dir, k)]
    with runs.fold_locks(run_dir, todo):
        todo = [k for k in todo if not runs.member_done(run_dir, k)]  # another process may have finished one meanwhile
        tell = on_progress or (lambda event: None)
        for k in todo:
            rows = int(splits.member_rows(folds, r.folds, k).sum())
            member_recipe = config.member(r, k)[1]
            work = predicting.rows_to_predict(member_recipe.tta, rows, len(comp.test_images), predict)
            tell(Progress(k, total, 0, member_recipe.epochs, started=False, to_predict=work,
                          images=int(splits.training_rows(folds, r.folds, k).sum())))  # fmt: skip
        where = data.where(comp)
        if cluster is not None:
            train_members(r, comp, folds, todo, run_dir, cluster, tell, predict)
        elif jobs > 1 and len(todo) > 1 and where is not None:
            command = lambda member, threads: parallel.worker_command(run_dir.name, member, threads, where)  # noqa: E731
            parallel.run_workers(command, todo, jobs, run_dir, tell, gpus=parallel.worker_gpus(device))
        else:
            for member in todo:
                training.train_member(r, comp, folds, member, run_dir, device, on_progress=tell, predict_test=predict)
    return collect(r, comp, run_dir, folds, todo)


def fill_in_test(run_dir: Path, comp: Competition) -> RunResult:
    """A finished CV-only run's test prediction (`kit predict RUN`): each member's saved model predicts the test rows
    in the recipe's views, then the run is merged again, now with its test probabilities and submission."""
    saved = runs.load_config(run_dir)
    r = config.from_dict(saved.get("recipe", {}))
    comp = runs.competition_of(run_dir, comp)
    folds = runs.load_folds(run_dir)
    total = config.member_count(r)
    missing = [k for k in range(total) if not runs.member_done(run_dir, k)]
    if missing:
        raise RunError(f"Run {run_dir.name} is not finished ({total - len(missing)}/{total} members); `kit train "
                       f"--run-id {run_dir.name}` trains the rest, with its test prediction.")  # fmt: skip
    models = ensemble.load_fold_models(run_dir, list(range(total)), r)
    for k, model in models.items():
        views = config.TTA_VIEWS if config.member(r, k)[1].tta else [config.IDENTITY]
        files.save_array(runs.member_dir(run_dir, k) / runs.TEST_PROBS,
                         predicting.predict(model, comp.test_images, views))  # fmt: skip
    runs.write_config(run_dir, **{**saved, "predict": True})
    return collect(r, comp, run_dir, folds, [])


def _environment(device: Device) -> dict[str, Any]:
    import keras

    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    versions = {"python": platform.python_version(), "keras": keras.__version__, "numpy": np.__version__}
    if device.backend == "tensorflow":
        import tensorflow as tf

        versions["tensorflow"] = tf.__version__
    return {"versions": versions, "device": device.describe(), "git_sha": sha or None}


def prepare_run(
    r: Recipe, comp: Competition, run_id: str, device: Device, model_files: dict[str, Path] | None = None,
    new: bool = False, predict: bool = True, tags: dict[str, Any] | None = None,
) -> tuple[Path, np.ndarray]:  # fmt: skip
    """Create runs/<id>/ (the split, a copy of each of your own models' files, the config last; `new`: a fresh folder,
    kit.runs.create), or reopen it after checking it is the same recipe. The config's `data` says which rows it
    trains on (`limit`: the first N of the installed data), its `predict` whether it predicts the test rows."""
    run_dir = paths.runs_dir() / runs.check_id(run_id)
    data = {"source": comp.source, "train_rows": len(comp.train_labels), "test_rows": len(comp.test_images)}
    if not new and (run_dir / runs.CONFIG).is_file():
        saved = runs.load_config(run_dir)
        runs.not_on_kaggle(run_id, saved)
        diff = config.differences(config.from_dict(saved.get("recipe", {})), r, ignore=("precision",))
        if {k: (saved.get("data") or {}).get(k) for k in data} != data:
            diff.append(f"data {saved.get('data')} vs {data}")
        if diff:
            raise RunError(
                f"Run '{run_id}' exists with a different recipe ({'; '.join(diff[:3])}); resume it with the "
                "same options, or choose a new --run-id."
            )
        return run_dir, runs.load_folds(run_dir)
    folds = splits.assign(comp.train_labels, r.folds, r.holdout, r.seed, r.repeats)
    students = pseudo.prepare(r, folds, len(comp.test_images)) if r.pseudo else {}  # checked before writing
    run_dir = runs.create(run_id, reuse=not new)
    files.save_array(run_dir / runs.FOLDS, folds)
    if students:
        files.save_array(run_dir / "pseudo.npy", students["pseudo.npy"])
        files.write_json(run_dir / "pseudo.json", students["pseudo.json"])
    for name, path in (model_files or {}).items():
        files.write_atomic(run_dir / name, path.read_bytes())
    if comp.rows is not None:
        data["limit"] = comp.rows
    runs.write_config(run_dir, "train", created_utc=paths.utc_now(), recipe=r.to_dict(), data=data,
                      folds_id=splits.folds_id(folds), predict=predict, **({"tags": tags} if tags else {}),
                      **_environment(device))  # fmt: skip
    return run_dir, folds


def collect(r: Recipe, comp: Competition, run_dir: Path, folds: np.ndarray, trained: list[int]) -> RunResult:
    """The run's complete members, merged (OOF, test probabilities, CV, submission) once all K x R are there."""
    total = config.member_count(r)
    complete = [k for k in range(total) if runs.member_done(run_dir, k)]
    fold_metrics = [runs.checked_metrics(p, files.read_json(p)) for k in complete
                    for p in [runs.member_dir(run_dir, k) / runs.METRICS]]  # fmt: skip
    if len(complete) < total:
        return RunResult(run_dir, fold_metrics, trained, None, None)
    metrics, csv = merge(r, run_dir, comp, folds, fold_metrics)
    return RunResult(run_dir, fold_metrics, trained, metrics, csv)


def _wall(fold_metrics: list[dict[str, Any]]) -> float | None:
    """The run's wall time: how long members were training, members that trained at once counted once (the union of
    their [started, ended] spans, which a resumed run's sittings add up without the pause between); None where a
    member does not say (an older kit's)."""
    spans = sorted((m["started_at"], m["ended_at"]) for m in fold_metrics if "started_at" in m and "ended_at" in m)
    if len(spans) < len(fold_metrics) or not spans:
        return None
    total, (start, end) = 0.0, spans[0]
    for a, b in spans[1:]:
        if a > end:
            total, start = total + end - start, a
        end = max(end, b)
    return float(total + end - start)


def _weighted(pairs: list[tuple[float, int]]) -> float:
    return float(sum(a * n for a, n in pairs) / max(1, sum(n for _, n in pairs)))


def merge(
    r: Recipe, run_dir: Path, comp: Competition, folds: np.ndarray, fold_metrics: list[dict[str, Any]]
) -> tuple[dict[str, Any], Path | None]:
    """Combine complete members: OOF probabilities, averaged test probabilities, CV accuracy, submission. A blend's
    families are assembled each, then blended by weights fitted on their OOF rows (kit.ensemble.fit_blend)."""
    probs = {}
    test_too = runs.predicts_test(runs.load_config(run_dir))
    for m in fold_metrics:
        member = runs.member_dir(run_dir, m["fold"])
        rows = int(splits.member_rows(folds, r.folds, m["fold"]).sum())
        test_path = member / runs.TEST_PROBS
        probs[m["fold"]] = (runs.load_probs(member / runs.VAL_PROBS, rows),
                            runs.load_probs(test_path, len(comp.test_images)) if test_too else None)  # fmt: skip
    merged = ensemble.merge(r, folds, probs, comp.train_labels)
    oof, test, cv, extra = merged.oof, merged.test, merged.cv, merged.summary
    if merged.family_oof is not None:  # a blend: each family's, for the report
        files.save_array(run_dir / runs.FAMILY_OOF, merged.family_oof)
        if merged.family_test is not None:
            files.save_array(run_dir / "family_test.npy", merged.family_test)
    files.save_array(run_dir / runs.OOF, oof)
    csv = None
    if test is not None:
        files.save_array(run_dir / runs.TEST_PROBS, test)
        csv = submission.write(test.argmax(1), paths.submissions_dir() / f"{run_dir.name}.csv")
    metrics = {
        **extra,
        "cv_accuracy": cv,
        "cv_rows": int((~np.isnan(oof).any(axis=1)).sum()),
        "members": len(fold_metrics),
        "folds": [{k: m[k] for k in ("fold", "accuracy", "val_rows", "images_per_s", "seconds")} for m in fold_metrics],
        "images_per_s": float(np.mean([m["images_per_s"] for m in fold_metrics])),
        "train_seconds": float(sum(m["seconds"] for m in fold_metrics)),
        "submission": str(csv) if csv is not None else None,
    }
    wall = _wall(fold_metrics)
    if wall is not None:
        metrics["wall_seconds"] = wall
    if folds.ndim == 1 and not r.families:  # without TTA, from each fold's plain accuracy (= cv_accuracy without TTA)
        plain = [(m.get("accuracy_plain", m["accuracy"]), m["val_rows"]) for m in fold_metrics]
        metrics["cv_accuracy_plain"] = _weighted(plain)
    files.write_json(run_dir / runs.METRICS, metrics)
    return metrics, csv
