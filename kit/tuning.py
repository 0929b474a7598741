"""`kit tune`: a study over recipe fields (Optuna's), whose trials are ordinary kit runs, pruned from kit's own
progress events.

A study lives in runs/studies/<name>/: journal.log (Optuna's journal file: several `kit tune` processes on one
machine, or on machines sharing the disk, work on one study), recipe.toml (the recipe file it was started with, if
any), workers/ (a lock each tuning process holds while it lives: a trial left RUNNING by a process whose lock is free
was left by a dead one) and best.toml (`--show`). Each trial is the run `<name>-tNNN` in runs/ (tagged with its
study and trial), trained by the caller's `train` function (kit.api's), CV only unless asked.

The objective is the trial run's OOF accuracy (maximized; shown as errors too). Pruning reads each member's
per-epoch validation accuracy: `median` reports one value per epoch, the mean over the members that reached it, and
stops a trial whose value is below the median of earlier trials' at that epoch (after PRUNE_STARTUP trials, from
epoch epochs // 3 on); `wilcoxon` reports each member's last validation accuracy as it finishes (Optuna's k-fold
pruner); `none` trains every trial to the end.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kit import budget, config, locks, paths, runs
from kit.errors import KitError, UsageError
from kit.progress import Progress, both

PRUNERS = ("median", "wilcoxon", "none")
PRUNE_STARTUP = 4  # median: trials finished before any is pruned
NOT_TUNABLE = ("folds", "repeats", "holdout", "precision", "pseudo")  # they change what the CV measures, not the recipe
STUDY_NAME_MAX = 40  # a trial's run id is the name plus "-tNNN" (or "-confirm-tNNN")
CONFIRM_SEED = 1000  # a confirmation trains with seed + CONFIRM_SEED + the trial's number: fresh seeds, reproducible


class Pruned(Exception):
    """Raised from the progress hook: the pruner stopped the trial `where` ("epoch 4", "fold 2"); the run keeps its
    finished members."""

    def __init__(self, where: str) -> None:
        super().__init__(f"pruned at {where}")
        self.where = where


# ---------------------------------------------------------------------------------------------------- the space


@dataclass(frozen=True)
class Dimension:
    """One searched field: `name` as --set names it (`rotation`, `deotte.rotation`), a range of its kind (`low` to
    `high`, on a log scale with `log`) or `choices`."""

    name: str
    kind: str  # "int", "float" (a range) or "choice"
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()

    @property
    def text(self) -> str:
        """As --space writes it: the study keeps this form, and compares it when a process joins."""
        if self.kind == "choice":
            return f"{self.name}=" + "|".join(_plain(c) for c in self.choices)
        return f"{self.name}={_plain(self.low)}:{_plain(self.high)}" + (":log" if self.log else "")

    def suggest(self, trial: Any) -> Any:
        if self.kind == "choice":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(self.name, float(self.low), float(self.high), log=self.log)


def _plain(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "none" if value is None else str(value)


def parse_space(items: list[str], base: config.Recipe) -> list[Dimension]:
    """`--space` items (`rotation=0:20`, `learning_rate=1e-4:1e-2:log`, `batch_size=128|256|512`,
    `deotte.dropout=0.2:0.5`) as dimensions, each end and choice checked by the recipe's own rules on `base`: a bad
    field, an empty range or a value the field refuses is a UsageError naming the item."""
    found: dict[str, Dimension] = {}
    for item in items:
        dim = _dimension(str(item), base)
        if dim.name in found:
            raise UsageError(f"--space {item}: {dim.name} is in the space twice.")
        found[dim.name] = dim
    return list(found.values())


def _dimension(item: str, base: config.Recipe) -> Dimension:
    name, sep, spec = (part.strip() for part in item.partition("="))
    family, _, field_name = name.rpartition(".")
    where = f"--space {item}"
    if not sep or not spec:
        raise UsageError(f"{where}: write FIELD=LOW:HIGH, FIELD=LOW:HIGH:log or FIELD=A|B|C.")
    kind = config.field_kind(field_name)
    if kind is None or field_name in NOT_TUNABLE:
        tunable = [f for f in config.SETTABLE if f not in NOT_TUNABLE]
        raise UsageError(f"{where}: no tunable recipe field {field_name!r}; the fields are {', '.join(tunable)}.")

    def value(text: str) -> Any:  # one end or choice, as --set reads it, checked on the base recipe
        try:
            chosen = config.settings(base, [f"{name}={text}"])
        except UsageError as exc:
            raise UsageError(f"{where}: {str(exc).removeprefix('--set: ').rstrip('.')}.") from None
        return getattr(chosen.families[family] if family else chosen, field_name)

    if "|" in spec:
        choices = tuple(dict.fromkeys(value(c.strip()) for c in spec.split("|")))
        if len(choices) < 2:
            raise UsageError(f"{where}: a choice needs two or more different values.")
        return Dimension(name, "choice", choices=choices)
    parts = spec.split(":")
    log = len(parts) == 3 and parts[2].strip().lower() == "log"
    if len(parts) not in (2, 3) or (len(parts) == 3 and not log):
        raise UsageError(f"{where}: write a range LOW:HIGH (or LOW:HIGH:log) or choices A|B|C; a fixed value goes "
                         "in --set.")  # fmt: skip
    if kind not in ("int", "float"):
        raise UsageError(f"{where}: {field_name} takes {kind} values: give choices (A|B), not a range.")
    low, high = value(parts[0].strip()), value(parts[1].strip())
    if low is None or high is None or not low < high:
        raise UsageError(f"{where}: an empty range; LOW must be below HIGH.")
    if log and low <= 0:
        raise UsageError(f"{where}: a log range must start above 0.")
    return Dimension(name, kind, low, high, log)


def space_file(path: Path) -> list[str]:
    """The `[space]` table of a TOML file as --space items (`rotation = "0:20"`, `batch_size = [128, 256]`)."""
    import tomllib

    try:
        table = tomllib.loads(config.recipe_text(path, "--space-file")).get("space")
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"--space-file {path}: not TOML ({str(exc)[:120]}).") from None
    if not isinstance(table, dict) or not table:
        raise UsageError(f'--space-file {path}: has no [space] table of FIELD = "LOW:HIGH" or [CHOICES] lines.')
    items = []
    for name, spec in table.items():
        if isinstance(spec, list):
            spec = "|".join(_plain(c) for c in spec)
        elif not isinstance(spec, str):
            raise UsageError(f"--space-file {path}: {name} must be \"LOW:HIGH\", \"LOW:HIGH:log\" or a list of "
                             "choices.")  # fmt: skip
        items.append(f"{name}={spec}")
    return items


# ---------------------------------------------------------------------------------------------------- the study


@dataclass(frozen=True)
class Definition:
    """What a study searches and at what fidelity: every trial is `kit train` with these options plus its values.
    Kept in the study; a process joining it with other options is refused."""

    space: tuple[str, ...]  # Dimension.text of each
    model: str | None
    recipe: str  # the recipe file's text ('' for none): trials read the study's copy
    sets: tuple[str, ...]
    folds: int | None
    epochs: int | None
    limit: int | None
    prune: str
    predict: bool

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "space": list(self.space), "sets": list(self.sets)}

    @classmethod
    def from_dict(cls, saved: dict[str, Any]) -> Definition:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in saved.items() if k in known}
        return cls(**{**values, "space": tuple(values["space"]), "sets": tuple(values["sets"])})

    def differences(self, other: Definition) -> list[str]:
        mine, theirs = self.to_dict(), other.to_dict()
        return [f"{k} {theirs[k]!r} vs {mine[k]!r}" for k in mine if mine[k] != theirs[k]]


def check_name(name: str) -> str:
    if not paths.is_run_id(name) or len(name) > STUDY_NAME_MAX:
        raise UsageError(f"--study {name[:60]!r}: {paths.RUN_ID_RULE}, at most {STUDY_NAME_MAX} characters.")
    if name == RECIPES:
        raise UsageError(f"--study {RECIPES}: that folder of runs/studies/ keeps the studies' recipe files; choose "
                         "another name.")  # fmt: skip
    return name


def study_dir(name: str) -> Path:
    return paths.runs_dir() / "studies" / check_name(name)


def trial_run_id(name: str, number: int) -> str:
    return f"{name}-t{number:03d}"


def confirm_run_id(name: str, number: int) -> str:
    return f"{name}-confirm-t{number:03d}"


def _storage(name: str, url: str | None, create: bool) -> Any:
    """Optuna's storage: the study's journal file (made only when `create`: None when there is none), or the database
    at `url`."""
    if url:
        return url
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    journal = study_dir(name) / "journal.log"
    if not create and not journal.is_file():
        return None
    journal.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(journal)))


def _optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise UsageError("kit tune needs Optuna: pip install 'kit[tune]' (or pip install optuna).") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # constant_liar, Wilcoxon
    return optuna


def _pruner(optuna: Any, rule: str, epochs: int) -> Any:
    if rule == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=PRUNE_STARTUP, n_warmup_steps=max(1, epochs // 3))
    if rule == "wilcoxon":
        return optuna.pruners.WilcoxonPruner(p_threshold=0.1)
    return optuna.pruners.NopPruner()


def open_study(name: str, definition: Definition | None, url: str | None) -> tuple[Any, Definition]:
    """The study `name`, made with `definition` if it is new; an existing one must have been made with the same
    (None: continue it as it was made). Anything else is a UsageError, before anything trains."""
    optuna = _optuna()
    storage = _storage(name, url, create=definition is not None)
    saved = None if storage is None else _saved_definition(optuna, name, storage)
    if saved is not None and definition is not None and saved != definition:
        raise UsageError(f"Study {name} was made with other options ({'; '.join(definition.differences(saved)[:2])}); "
                         "continue it with `kit tune --study NAME` alone, or choose another --study name.")  # fmt: skip
    if saved is None and definition is None:
        raise UsageError(f"No study {name!r}; start it with --space FIELD=LOW:HIGH (kit tune --help).")
    chosen = saved or definition
    assert chosen is not None
    sampler = optuna.samplers.TPESampler(constant_liar=True, seed=int.from_bytes(os.urandom(4), "little"))
    epochs = config.member(_base_recipe(chosen), 0)[1].epochs
    kwargs = dict(study_name=name, storage=storage, sampler=sampler, pruner=_pruner(optuna, chosen.prune, epochs))
    if saved is None:
        taken = [p.name for p in runs.all_runs() if p.name.startswith(f"{name}-t")]
        if taken:
            raise UsageError(f"runs/{taken[0]} is left from an earlier study named {name}; choose another --study "
                             "name (or delete those runs).")  # fmt: skip
        try:
            study = optuna.create_study(direction="maximize", **kwargs)
            study.set_user_attr("kit", chosen.to_dict())
            _enqueue_baseline(study, chosen)
            return study, chosen
        except optuna.exceptions.DuplicatedStudyError:  # another process made it this instant
            pass
    return optuna.load_study(**kwargs), chosen


def _enqueue_baseline(study: Any, d: Definition) -> None:
    """The recipe as it is, at the study's fidelity, as its first trial (where the space holds its values): the
    figure every other trial is read against."""
    base = _base_recipe(d)
    values = {}
    for dim in parse_space(list(d.space), base):
        family, _, field_name = dim.name.rpartition(".")
        value = getattr(base.families[family] if family else base, field_name)
        inside = value in dim.choices if dim.kind == "choice" else dim.low <= value <= dim.high
        if not inside:
            return
        values[dim.name] = value
    study.enqueue_trial(values, user_attrs={"baseline": True})


def _saved_definition(optuna: Any, name: str, storage: Any) -> Definition | None:
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        return None
    saved = study.user_attrs.get("kit")
    if not isinstance(saved, dict):  # made by another tool, or its first attribute not written yet
        raise UsageError(f"Study {name!r} in this storage was not made by kit tune; choose another --study name.")
    return Definition.from_dict(saved)


# ------------------------------------------------------------------------------------------------- the workers


@dataclass
class Worker:
    """This process, as the study knows it: `id`, the lock it holds while it lives, and its mark (`<id>.worker`, a
    plain file: on this disk, its lock says whether it lives; filelock may delete a lock file when it is released)."""

    id: str
    lock: Any
    name: str

    def release(self) -> None:
        self.lock.release()
        _forget(self.name, self.id)


def _worker_files(name: str, wid: str) -> tuple[Path, Path]:
    folder = study_dir(name) / "workers"
    return folder / f"{wid}.worker", folder / f"{wid}.lock"


def _forget(name: str, wid: str) -> None:
    mark, lock = _worker_files(name, wid)
    for path in (lock, locks.owner_file(lock), mark):  # the mark last: while it is there, the worker can be judged
        path.unlink(missing_ok=True)


def start_worker(name: str) -> Worker:
    wid = f"{socket.gethostname()[:40]}-{os.getpid()}-{time.time_ns() % 10**6}"
    mark, path = _worker_files(name, wid)
    mark.parent.mkdir(parents=True, exist_ok=True)
    lock = locks.try_exclusive(path)
    assert lock is not None  # a name no other process has
    mark.write_text(f"{socket.gethostname()} {os.getpid()}\n", encoding="utf-8")
    return Worker(wid, lock, name)


def dead(name: str, trial: Any, now: float | None = None) -> bool:
    """Whether a RUNNING trial's process is gone: its worker's mark is on this disk and its lock is free (held locks
    end with their process, however it ends). A trial whose worker left no mark here (a machine that shares only the
    database) is never judged; one with no worker at all (its process died between asking and saying) after a
    minute."""
    wid = trial.user_attrs.get("worker")
    if not wid:
        started = trial.datetime_start.timestamp() if trial.datetime_start else 0.0
        return (now or time.time()) - started > 60
    mark, path = _worker_files(name, wid)
    if not mark.is_file():
        return False
    lock = locks.try_exclusive(path)
    if lock is None:
        return False
    lock.release()
    return True


def settle_dead(study: Any, name: str) -> list[int]:
    """Trials left RUNNING by dead processes: marked failed, each enqueued again with its values and run, so its run
    resumes (its finished members kept) and is counted once. Returns their numbers."""
    optuna = _optuna()
    settled = []
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        if not dead(name, trial):
            continue
        try:
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
        except (RuntimeError, ValueError):  # another process settled it first
            continue
        _enqueue_resume(study, trial)
        settled.append(trial.number)
        if trial.user_attrs.get("worker"):  # its lock is free for good: no process will take it again
            _forget(name, trial.user_attrs["worker"])
    return settled


def _enqueue_resume(study: Any, trial: Any) -> None:
    run_id = trial.user_attrs.get("run")
    if run_id:
        kept = {"baseline": True} if trial.user_attrs.get("baseline") else {}
        study.enqueue_trial(trial.params, user_attrs={"resume": run_id, **kept}, skip_if_exists=False)


# -------------------------------------------------------------------------------------------------- pruning


class Reports:
    """The trial's intermediate values, from its members' progress events (see the module's docstring)."""

    def __init__(self, trial: Any, rule: str) -> None:
        self.trial, self.rule = trial, rule
        self.accuracy: dict[int, dict[int, float]] = {}  # member -> epoch -> validation accuracy
        self.reported = 0  # median: the last epoch reported
        self.finished: set[int] = set()  # wilcoxon: the members reported

    def __call__(self, event: Progress) -> None:
        if not event.started or self.rule == "none":
            return
        seen = self.accuracy.setdefault(event.member, {})
        if event.epoch >= 1 and "val_accuracy" in event.logs and event.epoch not in seen:
            seen[event.epoch] = float(event.logs["val_accuracy"])
        if self.rule == "median":
            while all(self.reported + 1 in epochs for epochs in self.accuracy.values()):
                self.reported += 1
                step = self.reported
                self._report(sum(e[step] for e in self.accuracy.values()) / len(self.accuracy), step)
        elif event.epoch >= event.epochs and event.member not in self.finished and event.epoch in seen:
            self.finished.add(event.member)
            self._report(seen[event.epoch], event.member, f"fold {event.member + 1}")

    def _report(self, value: float, step: int, where: str = "") -> None:
        self.trial.report(value, step)
        if self.trial.should_prune():
            raise Pruned(where or f"epoch {step}")


# ---------------------------------------------------------------------------------------------------- running


@dataclass
class TrialRow:
    """One trial as `kit tune --show` lists it."""

    number: int
    state: str  # complete, pruned, running, failed, waiting
    params: dict[str, Any]
    accuracy: float | None
    errors: int | None
    rows: int | None
    run_id: str
    seconds: float | None
    pruned_at: str | None = None  # "epoch 4" (median), "fold 2" (wilcoxon)
    confirmed: dict[str, Any] | None = None  # {"run", "accuracy", "errors", "rows", "seed"} once --confirm trained it
    baseline: bool = False  # the recipe as it is (the study's first trial)


@dataclass
class StudyResult:
    """`kit tune`'s answer: the study's trials, the best, and its recipe as a TOML file `kit train --recipe` reads."""

    name: str
    folder: Path
    definition: Definition
    trials: list[TrialRow] = field(default_factory=list)
    best: TrialRow | None = None
    best_recipe: str = ""
    stopped: str = ""  # why this process stopped starting trials ('' when the study reached its trials)
    curves: dict[int, dict[int, float]] = field(default_factory=dict)  # trial -> step -> its intermediate value
    importances: dict[str, float] = field(default_factory=dict)  # Optuna's, once it can tell (complete trials)
    page: Path | None = None  # the study page (kit.report.study_page)


# train(definition, values, run_id, tags, on_event) -> (accuracy, errors, rows): kit.api trains a trial as a run
Trainer = Callable[..., tuple[float, int, int]]


@dataclass
class Events:
    """What a study tells its watcher (kit.render's tune line): every member's progress, and each trial's end."""

    on_open: Callable[[Definition, Path], None] = lambda definition, folder: None
    on_start: Callable[..., None] = lambda number, params, done, total, baseline=False: None
    on_event: Callable[[Progress], None] = lambda event: None
    on_end: Callable[[TrialRow, TrialRow | None, float | None], None] = lambda row, best, left: None


def run_study(
    name: str,
    definition: Definition | None,
    *,
    trials: int,
    train: Trainer,
    url: str | None = None,
    seconds: float | None = None,
    events: Events | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> StudyResult:
    """Run trials of study `name` until it holds `trials` finished ones (complete or pruned, counted across every
    process on it), or the next would not fit in `seconds` (the median trial so far). Ctrl-C or SIGTERM marks the
    trial failed and enqueues it again (its run resumes on the next `kit tune --study NAME`), then re-raises."""
    optuna = _optuna()
    study, chosen = open_study(name, definition, url)
    dims = parse_space(list(chosen.space), _base_recipe(chosen))
    events = events or Events()
    events.on_open(chosen, study_dir(name))
    worker = start_worker(name)
    started, stopped = clock(), ""
    try:
        settle_dead(study, name)
        while True:
            done = _finished(study)
            if done + _running(study) >= trials:
                break
            durations = [t.user_attrs["seconds"] for t in study.get_trials(deepcopy=False) if "seconds" in t.user_attrs]
            expected = sorted(durations)[len(durations) // 2] if durations else None
            if not budget.fits(clock() - started, expected, seconds):
                stopped = (f"the next trial (about {_minutes(expected)}) would not fit in --time's "
                           f"{_minutes(seconds)}")  # fmt: skip
                break
            trial = study.ask()
            trial.set_user_attr("worker", worker.id)
            values = {d.name: d.suggest(trial) for d in dims}
            run_id = trial.user_attrs.get("resume") or trial_run_id(name, trial.number)
            trial.set_user_attr("run", run_id)
            events.on_start(trial.number, values, done, trials, bool(trial.user_attrs.get("baseline")))
            t0 = clock()
            try:
                accuracy, errors, rows = train(chosen, values, run_id, {"study": name, "trial": trial.number},
                                               both(Reports(trial, chosen.prune), events.on_event))  # fmt: skip
            except Pruned as exc:
                runs.tag(run_id, pruned=exc.where)
                trial.set_user_attr("pruned", exc.where)
                trial.set_user_attr("seconds", clock() - t0)
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                row = _row(study.trials[trial.number], name)
            except (KeyboardInterrupt, SystemExit):
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
                _enqueue_resume(study, study.trials[trial.number])
                raise
            except KitError as exc:
                trial.set_user_attr("error", str(exc)[:300])
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
                if not isinstance(exc, UsageError) or "diverged" not in str(exc):
                    raise  # the data, the disk, a dead node: every trial would fail the same way
                row = _row(study.trials[trial.number], name)
            else:
                trial.set_user_attr("errors", errors)
                trial.set_user_attr("rows", rows)
                trial.set_user_attr("seconds", clock() - t0)
                study.tell(trial, accuracy)
                row = _row(study.trials[trial.number], name)
            left_trials = max(0, trials - _finished(study))
            events.on_end(row, best_trial(study, name), (expected or row.seconds or 0.0) * left_trials)
    finally:
        worker.release()
    return summary(name, url, stopped=stopped)


def _minutes(seconds: float | None) -> str:
    from kit.progress import clock

    return clock(seconds)


def _finished(study: Any) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


def _running(study: Any) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))


def _base_recipe(d: Definition, full: bool = False) -> config.Recipe:
    """The recipe a trial trains before its values (`full`: at the recipe's own folds and epochs, --confirm's)."""
    recipe = recipe_path(d)
    fidelity = {} if full else dict(folds=d.folds, epochs=d.epochs)
    return config.for_run(d.model, None, recipe, list(d.sets), **fidelity)


def recipe_path(d: Definition) -> Path | None:
    """The study's copy of its recipe file (None: it has none)."""
    return None if not d.recipe else _recipe_copies() / f"{_digest(d.recipe)}.toml"


RECIPES = "recipes"  # runs/studies/recipes/: a copy of each recipe file a study was made with


def _recipe_copies() -> Path:
    return paths.runs_dir() / "studies" / RECIPES


def _digest(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:16]


def keep_recipe(text: str) -> None:
    """The study's copy of its recipe file, by content: trials read it, whatever becomes of the user's file."""
    from kit import files

    if text:
        folder = _recipe_copies()
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{_digest(text)}.toml"
        if not target.is_file():
            files.write_atomic(target, text.encode())


# ---------------------------------------------------------------------------------------------- what it found


STATES = {"COMPLETE": "complete", "PRUNED": "pruned", "RUNNING": "running", "FAIL": "failed", "WAITING": "waiting"}


def _row(trial: Any, name: str) -> TrialRow:
    run_id = trial.user_attrs.get("run") or trial.user_attrs.get("resume") or trial_run_id(name, trial.number)
    pruned = trial.user_attrs.get("pruned") if trial.state.name == "PRUNED" else None
    seconds = trial.user_attrs.get("seconds")  # how long it trained (a trial's duration would count its waits)
    state = STATES.get(trial.state.name, trial.state.name.lower())
    values = trial.params or trial.system_attrs.get("fixed_params") or {}  # a waiting trial: the values it will train
    return TrialRow(trial.number, state, dict(values),
                    trial.value if trial.state.name == "COMPLETE" else None, trial.user_attrs.get("errors"),
                    trial.user_attrs.get("rows"), run_id, seconds, pruned,
                    baseline=bool(trial.user_attrs.get("baseline")))  # fmt: skip


def best_trial(study: Any, name: str) -> TrialRow | None:
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return _row(max(complete, key=lambda t: (t.value, -t.number)), name) if complete else None


def load(name: str, url: str | None = None) -> tuple[Any, Definition]:
    """An existing study and its definition (a UsageError when there is none)."""
    return open_study(check_name(name), None, url)


def summary(name: str, url: str | None = None, stopped: str = "") -> StudyResult:
    """The study's trials (confirmations included), its best trial and the best recipe, also written to best.toml."""
    study, d = load(name, url)
    confirmed = study.user_attrs.get("confirmed") or {}
    rows = []
    trials = study.get_trials(deepcopy=False)
    for trial in trials:
        row = _row(trial, name)
        row.confirmed = confirmed.get(str(trial.number))
        if row.state == "running" and dead(name, trial):
            row.state = "interrupted"  # its process is gone; the next `kit tune --study NAME` resumes its run
        elif row.state == "failed":
            later = [t.number for t in trials if t.number > trial.number and row.run_id in (t.user_attrs.get("run"),
                     t.user_attrs.get("resume"))]  # fmt: skip
            row.state = f"interrupted, resumed as #{later[0]}" if later else "failed"
            row.state += f": {trial.user_attrs['error']}" if trial.user_attrs.get("error") else ""
        rows.append(row)
    best = best_trial(study, name)
    if best is not None:
        best.confirmed = confirmed.get(str(best.number))
    text = ""
    if best is not None:
        source = (best.confirmed or {}).get("run") or best.run_id
        try:
            text = runs.recipe_file(source)
        except KitError:  # its run was deleted: the recipe from the study's own record
            text = config.to_toml(_with_values(_base_recipe(d), best.params), f"the best recipe of study {name}")
        from kit import files

        files.write_atomic(study_dir(name) / "best.toml", text.encode())
    curves = {t.number: dict(t.intermediate_values) for t in trials if t.intermediate_values}
    return StudyResult(name, study_dir(name), d, rows, best, text, stopped, curves, _importances(study))


def _importances(study: Any) -> dict[str, float]:
    """Optuna's parameter importances (fANOVA), most important first; {} until it can tell (too few trials)."""
    import optuna

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "too few trials": then {} below says the same
            found = dict(optuna.importance.get_param_importances(study))
    except (ValueError, RuntimeError, ZeroDivisionError, IndexError):
        return {}
    return found if len({round(v, 6) for v in found.values()}) > 1 or len(found) == 1 else {}


def _with_values(base: config.Recipe, values: dict[str, Any]) -> config.Recipe:
    return config.settings(base, as_sets(values))


def as_sets(values: dict[str, Any]) -> list[str]:
    """A trial's values as --set items."""
    return [f"{k}={_plain(v)}" for k, v in values.items()]


def to_confirm(name: str, count: int, url: str | None = None) -> tuple[Any, Definition, list[TrialRow]]:
    """The `count` best complete trials of the study, best first (a UsageError when it has none)."""
    if count < 1:
        raise UsageError(f"--confirm {count}: must be 1 or more trials.")
    study, d = load(name, url)
    from optuna.trial import TrialState

    complete = sorted(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)),
                      key=lambda t: (-t.value, t.number))  # fmt: skip
    if not complete:
        raise UsageError(f"Study {name} has no complete trial to confirm yet; `kit tune --study {name}` runs trials.")
    return study, d, [_row(t, name) for t in complete[:count]]


def confirm_seed(d: Definition, number: int, folds: int | None) -> int:
    base = _base_recipe(d, full=True)
    if folds is not None:
        base = config.override(base, folds=folds)
    return (base.seed + CONFIRM_SEED + number) % 2**32


def record_confirmation(study: Any, number: int, result: dict[str, Any]) -> None:
    confirmed = dict(study.user_attrs.get("confirmed") or {})
    confirmed[str(number)] = result
    study.set_user_attr("confirmed", confirmed)
