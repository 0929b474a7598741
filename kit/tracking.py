"""Trackers: `--track wandb|mlflow|tensorboard|trackio` (or KIT_TRACK) logs a kit run where Kagglers keep their
experiments, fed by the run's Progress events, the one hook every way of training reaches (this process, fold
workers, Ray tasks), so every path logs the same way.

One tracker run per kit run, named by its id, so a resumed run continues it. Each member's epochs are curves with the
epoch as their step, the run's members side by side (`val_accuracy/fold0` ... in W&B and Trackio, one nested run a
member in MLflow, one event folder a member in TensorBoard). At the end: the CV, the OOF errors, each family's figures,
and the files worth keeping (the submission, the report page, the recipe). A tracker's package is imported here only,
and only when asked; a tracker that fails while the run trains is dropped with one warning, never the run.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from kit import runs
from kit.errors import UsageError
from kit.progress import Progress

NAMES = ("wandb", "mlflow", "tensorboard", "trackio")
ENV = "KIT_TRACK"  # the tracker `kit train` and `kit tune` use when --track is not given ("none": no tracker)
PROJECT = "digit-recognizer"  # W&B's project, MLflow's experiment, Trackio's project, unless the tracker's own is set
FROM_KAGGLE = ("wandb", "tensorboard")  # --kaggle: their files are written in the run's folder, which comes home


def chosen(track: str | None, here: bool = True) -> str | None:
    """The tracker asked for (`track`, else KIT_TRACK), checked before anything trains: a UsageError for a name kit
    does not know, a tracker whose package is not installed, or W&B with no key where it would log online (`here`;
    a Kaggle kernel's W&B logs offline). None: no tracker."""
    name = (track if track is not None else os.environ.get(ENV, "")).strip().lower()
    if name in ("", "none"):
        return None
    if name not in NAMES:
        where = "--track" if track is not None else ENV
        raise UsageError(f"{where} {name}: no tracker of that name; kit logs to {', '.join(NAMES)} (or none).")
    if importlib.util.find_spec(name) is None:  # each tracker's module is named as kit names it
        raise UsageError(f"--track {name}: the {name} package is not installed here; "
                         f"pip install 'kit[{name}]' installs it.")  # fmt: skip
    if name == "wandb" and here and not _wandb_ready():
        raise UsageError(f"--track wandb: W&B has no API key here; {ADVICE['wandb']}")
    return name


def _wandb_ready() -> bool:
    """Whether W&B can start a run here without asking: offline or disabled, or a key (WANDB_API_KEY, or the netrc
    entry `wandb login` writes)."""
    import netrc
    from urllib.parse import urlparse

    if os.environ.get("WANDB_MODE", "").lower() in ("offline", "disabled", "dryrun") or os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai").hostname
    try:
        return netrc.netrc(os.environ.get("NETRC")).authenticators(host or "") is not None
    except (OSError, netrc.NetrcParseError):
        return False


@dataclass
class Begin:
    """What a tracker run starts with: the kit run's id and folder, its recipe (its config's), its tags (kit tune's
    study and trial), its members' names (by member number), and whether the kit run is being resumed."""

    run_id: str
    run_dir: Path
    recipe: dict[str, Any]
    tags: dict[str, Any] = field(default_factory=dict)
    members: list[str] = field(default_factory=list)
    resumed: bool = False


class Tracker(Protocol):
    def begin(self, b: Begin) -> None: ...

    def epoch(self, member: str, epoch: int, logs: dict[str, float]) -> None: ...

    def end(self, summary: dict[str, float], files: list[Path], ok: bool) -> str | None:
        """Close the tracker run; the one line worth saying (where it is, how to see or upload it), or None."""


class Session:
    """The tracker run of one kit run: `open` it once the run's folder is ready (kit.dispatch's on_start), call it
    with each Progress event (it logs every member's epoch once), then `end` it with the run's metrics."""

    def __init__(self, name: str, tags: dict[str, Any] | None = None) -> None:
        self.name, self._tags = name, dict(tags or {})
        self._tracker: Tracker | None = None
        self._members: list[str] = []
        self._lock = threading.Lock()  # events come from the training threads and the workers' readers
        self._seen: set[tuple[int, int]] = set()

    def open(self, run_dir: Path) -> None:
        """Start (or continue) the tracker run of the run in `run_dir`, or a UsageError saying what to do."""
        from kit import config

        saved = runs.load_config(run_dir)
        recipe = config.from_dict(saved.get("recipe") or {})
        self._members = member_names(recipe)
        done = [m for m in range(len(self._members)) if runs.member_done(run_dir, m)]
        tags = {**(saved.get("tags") or {}), **self._tags}
        b = Begin(run_dir.name, run_dir, saved.get("recipe") or {}, tags, self._members, resumed=bool(done))
        tracker = {"wandb": _Wandb, "mlflow": _Mlflow, "tensorboard": _TensorBoard, "trackio": _Trackio}[self.name]()
        try:
            tracker.begin(b)
        except Exception as exc:
            raise UsageError(f"--track {self.name} could not start ({_first_line(exc)}); {ADVICE[self.name]}") from None
        self._tracker = tracker

    def __call__(self, event: Progress) -> None:
        if self._tracker is None or not event.logs or event.epoch < 1:
            return
        with self._lock:
            if (event.member, event.epoch) in self._seen:  # a member's last epoch is said again as it predicts
                return
            self._seen.add((event.member, event.epoch))
            member = _name(self._members, event.member)
            self._guarded(self._tracker.epoch, member, event.epoch, {k: float(v) for k, v in event.logs.items()})

    def end(self, metrics: dict[str, Any] | None, files: list[Path]) -> str | None:
        """Close the tracker run with the run's metrics (None: the run stopped before it was whole); the line worth
        saying about it."""
        with self._lock:
            if self._tracker is None:
                return None
            return self._guarded(self._tracker.end, summary(metrics or {}), [p for p in files if p.is_file()],
                                 metrics is not None)  # fmt: skip

    def _guarded(self, call: Any, *args: Any) -> Any:
        try:
            return call(*args)
        except Exception as exc:  # a tracker's own failure (disk, server, its version) costs its log, not the run
            self._tracker = None
            print(f"warning: --track {self.name} stopped logging ({_first_line(exc)}); the run goes on.",
                  file=sys.stderr)  # fmt: skip
            return None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def member_names(r: Any) -> list[str]:
    """Each member's name in a tracker, by member number: fold0..foldK-1 (fold0r1 ... with repeats; `holdout` for a
    one-model run), after its family's name in a blend (deotte-fold0)."""
    from kit import config

    names = []
    for m in range(config.member_count(r)):
        family = config.member(r, m)[0]
        repeat, fold = divmod(m % (r.folds * r.repeats), r.folds)
        name = "holdout" if r.folds == 1 and r.repeats == 1 else f"fold{fold}" + (f"r{repeat}" if r.repeats > 1 else "")
        names.append(f"{family}-{name}" if r.families else name)
    return names


ADVICE = {
    "wandb": "log in with `wandb login`, set WANDB_API_KEY (a Kaggle Secret in a notebook), or set WANDB_MODE=offline "
    "to log here and upload later with `wandb sync`.",
    "mlflow": "check MLFLOW_TRACKING_URI (unset: mlflow.db here).",
    "tensorboard": "check that the run's folder can be written.",
    "trackio": "check TRACKIO_DIR (unset: Trackio's folder in your home).",
}


def summary(metrics: dict[str, Any]) -> dict[str, float]:
    """The run's figures a tracker keeps: CV, OOF errors, rows, pace and wall, each family's CV and errors (a
    blend), as flat numbers."""
    out: dict[str, float] = {}
    for key in ("cv_accuracy", "cv_accuracy_plain", "cv_rows", "members", "images_per_s", "train_seconds",
                "wall_seconds"):  # fmt: skip
        if isinstance(metrics.get(key), int | float):
            out[key] = float(metrics[key])
    if "cv_accuracy" in out and "cv_rows" in out:
        out["oof_errors"] = float(runs.errors_of(out["cv_accuracy"], int(out["cv_rows"])))
    for family, figures in (metrics.get("families") or {}).items():
        if isinstance(figures, dict) and isinstance(figures.get("cv_accuracy"), int | float):
            out[f"{family}/cv_accuracy"] = float(figures["cv_accuracy"])
            if "cv_rows" in out:
                out[f"{family}/oof_errors"] = float(runs.errors_of(figures["cv_accuracy"], int(out["cv_rows"])))
    return out


def came_home(name: str, run_dir: Path) -> str:
    """What to do with the tracker files a Kaggle kernel's run brought home (W&B offline there: no internet)."""
    if name == "wandb":
        found = sorted((run_dir / runs.WANDB).glob("offline-run-*"))
        if not found:
            return f"W&B: the kernel left no offline run in {run_dir / runs.WANDB}."
        return f"W&B: the kernel's offline run came home; `wandb sync {' '.join(map(str, found))}` uploads it."
    return f"TensorBoard: `tensorboard --logdir {run_dir / runs.TENSORBOARD}` shows the kernel's run."


def _name(members: list[str], m: int) -> str:
    return members[m] if 0 <= m < len(members) else f"member{m}"


def _labels(tags: dict[str, Any]) -> list[str]:
    return [f"{k}:{v}" for k, v in tags.items() if v not in (None, False, "")]


def _flat(recipe: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A recipe as flat key-value pairs (a blend's families as `FAMILY.field`), for trackers that keep flat params."""
    out: dict[str, Any] = {}
    for key, value in recipe.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


@contextlib.contextmanager
def _quiet():
    """A tracker's own banner lines off kit's output (kit says where the run is once, at the end)."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


class _Wandb:
    """W&B: the run's folder keeps W&B's files (runs/<id>/wandb), so an offline run (WANDB_MODE=offline, or a Kaggle
    kernel's) travels with the kit run; a study's trials share a group."""

    def begin(self, b: Begin) -> None:
        import wandb

        self.wandb = wandb
        settings = wandb.Settings(silent=True, console="off", disable_git=True)
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT") or PROJECT, id=b.run_id, name=b.run_id,
                              resume="allow", dir=str(b.run_dir), config=b.recipe, group=b.tags.get("study"),
                              tags=_labels(b.tags), job_type="train", settings=settings)  # fmt: skip
        self.defined: set[str] = set()

    def epoch(self, member: str, epoch: int, logs: dict[str, float]) -> None:
        step = f"epoch/{member}"  # each member's own step: W&B's one step per run must only grow
        values = {f"{k}/{member}": v for k, v in logs.items()}
        for key in values.keys() - self.defined:
            self.run.define_metric(key, step_metric=step)
            self.defined.add(key)
        self.run.log({**values, step: epoch})

    def end(self, summary: dict[str, float], files: list[Path], ok: bool) -> str | None:
        import shutil

        self.run.summary.update(summary)
        for path in files:  # the run's files folder: W&B uploads what is in it (a symlink it would warn about)
            shutil.copyfile(path, Path(self.run.dir) / path.name)
        offline = self.run.settings.mode == "offline"
        folder = Path(self.run.dir).parent  # .../wandb/offline-run-.../files -> the run's W&B folder
        url = None if offline else getattr(self.run, "url", None)
        self.run.finish(exit_code=0 if ok else 1)
        # finish() can return before W&B's service has written the run's file (the first run of a process, 1 in 4
        # here, left it empty), and a kernel packs the run at once: teardown waits for the service to end
        self.wandb.teardown()
        if offline:
            return f"W&B: an offline run in {folder}; `wandb sync {folder}` uploads it."
        return f"W&B: {url}" if url else None


class _Mlflow:
    """MLflow: a parent run named by the kit run's id (its params, figures and files) and a nested run a member (its
    curves), found again by their tags when the kit run resumes. The store is MLflow's own (MLFLOW_TRACKING_URI)."""

    def begin(self, b: Begin) -> None:
        import logging

        from mlflow.tracking import MlflowClient

        for noisy in ("mlflow.store.db.utils", "alembic"):  # table creation lines, on stderr, at a store's first use
            logging.getLogger(noisy).setLevel(logging.WARNING)
        self.client = MlflowClient()
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or PROJECT
        found = self.client.get_experiment_by_name(name)
        self.experiment = found.experiment_id if found else self.client.create_experiment(name)
        self.run_id, self.children = b.run_id, {}
        self.parent = self._find(role="run")
        if self.parent is None:
            tags = {"kit.run_id": b.run_id, "kit.role": "run", **{f"kit.{k}": str(v) for k, v in b.tags.items()}}
            self.parent = self.client.create_run(self.experiment, run_name=b.run_id, tags=tags).info.run_id
            for key, value in _flat(b.recipe).items():
                self.client.log_param(self.parent, key, value)
        else:
            self.client.update_run(self.parent, status="RUNNING")

    def _find(self, role: str, member: str = "") -> str | None:
        query = f"tags.`kit.run_id` = '{self.run_id}' and tags.`kit.role` = '{role}'"
        if member:
            query += f" and tags.`kit.member` = '{member}'"
        found = self.client.search_runs([self.experiment], query, max_results=1)
        return found[0].info.run_id if found else None

    def epoch(self, member: str, epoch: int, logs: dict[str, float]) -> None:
        child = self.children.get(member)
        if child is None:
            child = self._find("member", member)
            if child is None:
                tags = {"mlflow.parentRunId": self.parent, "kit.run_id": self.run_id, "kit.role": "member",
                        "kit.member": member}  # fmt: skip
                child = self.client.create_run(self.experiment, run_name=member, tags=tags).info.run_id
            self.children[member] = child
        for key, value in logs.items():
            self.client.log_metric(child, key, value, step=epoch)

    def end(self, summary: dict[str, float], files: list[Path], ok: bool) -> str | None:
        for key, value in summary.items():
            self.client.log_metric(self.parent, key, value)
        for path in files:
            self.client.log_artifact(self.parent, str(path))
        status = "FINISHED" if ok else "KILLED"
        for child in self.children.values():
            self.client.set_terminated(child, status)
        self.client.set_terminated(self.parent, status)
        return f"MLflow: run {self.parent} in {self.client.tracking_uri}; `mlflow ui` shows it."


class _TensorBoard:
    """TensorBoard: event files in the run's folder (runs/<id>/tensorboard/<member>/), so `tensorboard --logdir runs`
    (or Kaggle's `%tensorboard --logdir runs`) shows every run, and a Kaggle kernel's come home with the run."""

    def begin(self, b: Begin) -> None:
        import tensorflow as tf  # tf.summary: TensorBoard's own writer (kit's TensorFlow; the package adds its ops)

        self.tf, self.root, self.writers = tf, b.run_dir / runs.TENSORBOARD, {}
        self.recipe = "\n".join(f"    {k} = {v}" for k, v in _flat(b.recipe).items())

    def _writer(self, name: str) -> Any:
        if name not in self.writers:
            self.writers[name] = self.tf.summary.create_file_writer(str(self.root / name))
        return self.writers[name]

    def epoch(self, member: str, epoch: int, logs: dict[str, float]) -> None:
        writer = self._writer(member)
        with writer.as_default():
            for key, value in logs.items():
                self.tf.summary.scalar(key, value, step=epoch)
        writer.flush()

    def end(self, summary: dict[str, float], files: list[Path], ok: bool) -> str | None:
        writer = self._writer("run")
        with writer.as_default():
            for key, value in summary.items():
                self.tf.summary.scalar(key, value, step=0)
            self.tf.summary.text("recipe", self.recipe, step=0)
        for w in self.writers.values():
            w.close()
        return f"TensorBoard: `tensorboard --logdir {self.root}` shows the run."


class _Trackio:
    """Trackio: a run named by the kit run's id in the project (Trackio's local store, TRACKIO_DIR), resumed by
    name; its files as an artifact."""

    def begin(self, b: Begin) -> None:
        import trackio

        self.trackio = trackio
        self.project = os.environ.get("TRACKIO_PROJECT") or PROJECT
        with _quiet():
            self.run = trackio.init(project=self.project, name=b.run_id, group=b.tags.get("study"), config=b.recipe,
                                    resume="allow")  # fmt: skip
        self.last = 0

    def epoch(self, member: str, epoch: int, logs: dict[str, float]) -> None:
        self.run.log({f"{k}/{member}": v for k, v in logs.items()}, step=epoch)
        self.last = max(self.last, epoch)

    def end(self, summary: dict[str, float], files: list[Path], ok: bool) -> str | None:
        if summary:
            self.run.log({f"summary/{k}": v for k, v in summary.items()}, step=self.last)
        with _quiet():
            for path in files:
                kind = {".csv": "submission", ".html": "report", ".toml": "recipe"}.get(path.suffix, path.stem)
                self.run.log_artifact(str(path), name=f"{self.run.name}-{kind}", type="kit")
            self.trackio.finish()  # the current run's, which Trackio would otherwise finish again at exit
        return f'Trackio: `trackio show --project "{self.project}"` shows the run.'
