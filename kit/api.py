"""kit from Python: `kit train` and `kit submit` as functions, for a notebook cell as for the CLI (which calls these).

    import kit
    run = kit.train(folds=5, rotation=15)    # any recipe field by name; the same progress and table as a terminal
    run.cv, run.oof, run.test_probs, run.submission
    run.report()                              # the report page, shown in the cell
    kit.submit(run)                           # validates, uploads, waits for the score, logs it

Errors are kit's own (`kit.KitError` and its kinds in kit.errors), carrying the one-line messages the CLI prints.
"""

from __future__ import annotations

import collections.abc
import contextlib
import functools
import inspect
import os
import time as clock
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kit import budget, config, paths, render, runs, user_models
from kit.errors import FROM_CLI, RunError, UsageError, for_python
from kit.paths import RUN_ID_RULE, is_run_id
from kit.progress import COMMAND_START, ProgressHook, both

MIN_ROWS = 20  # --limit: fewer rows cannot hold a stratified holdout of every digit


KAGGLE_MINUTES = 180  # `kit train --kaggle`'s default run-time limit: a hung kernel cannot spend more of the quota
KAGGLE_MAX_MINUTES = 12 * 60


def check_options(
    r: config.Recipe, *, fold: int | None, run_id: str | None, limit: int | None, jobs: int | None, ray: str | None,
    mirrored: bool, kaggle: bool = False, data_dir: Any = None, kaggle_timeout: int | None = None,
) -> None:  # fmt: skip
    """`kit train`'s options beside the recipe, checked with it at the door (before the data or Keras load): the
    combinations that make sense, whichever way the command was given (the CLI, a notebook)."""
    if run_id is not None and not is_run_id(run_id):
        raise UsageError(f"--run-id {run_id!r}: {RUN_ID_RULE}.")
    if fold is not None and run_id is None:
        raise UsageError("--fold needs --run-id, so the folds trained separately end up in the same run.")
    config.check_fold(r, fold)
    if limit is not None and limit < MIN_ROWS:
        raise UsageError(f"--limit {limit}: must be at least {MIN_ROWS} rows.")
    if jobs is not None and jobs < 1:
        raise UsageError(f"--jobs {jobs}: must be a whole number >= 1.")
    if ray and r.pseudo:
        raise UsageError("--pseudo students train here or in local workers for now, not on --ray.")
    if ray and (jobs is not None or mirrored):
        raise UsageError(f"--ray places the folds itself; drop {'--jobs' if jobs is not None else '--mirrored'}.")
    if kaggle_timeout is not None and not kaggle:
        raise UsageError("--kaggle-timeout limits a Kaggle kernel's run time; it needs --kaggle.")
    if kaggle_timeout is not None and not 1 <= kaggle_timeout <= KAGGLE_MAX_MINUTES:
        raise UsageError(f"--kaggle-timeout {kaggle_timeout}: must be 1 to {KAGGLE_MAX_MINUTES} minutes (Kaggle "
                         "stops any session at 12 hours).")  # fmt: skip
    if kaggle:
        here = {"--ray": ray, "--data-dir": data_dir, "--fold": fold}
        given = [flag for flag, value in here.items() if value is not None]
        if given:
            raise UsageError(f"--kaggle trains the whole run in a Kaggle kernel on the competition's own data; drop "
                             f"{' and '.join(given)}.")  # fmt: skip
        if r.pseudo:
            raise UsageError("--pseudo's teacher run is on this machine, not in the Kaggle kernel; train the students "
                             "here.")  # fmt: skip


def _door(verb: Callable) -> Callable:
    """A verb's door: every argument checked against its annotation before anything runs (a path may be text, a list
    of text may be one text; anything else of the wrong type is a UsageError naming the argument), recipe fields
    given by name against their field's type; and, called from Python, its errors in Python's words (`folds=-1`),
    from the CLI in its flags'."""

    @functools.wraps(verb)
    def called(*args: Any, **kwargs: Any) -> Any:
        try:
            try:
                bound = inspect.signature(verb).bind(*args, **kwargs)
            except TypeError as exc:  # an argument it does not take, or one too many
                raise UsageError(f"{verb.__name__}(): {exc}.") from None
            hints = typing.get_type_hints(verb)
            for name, value in list(bound.arguments.items()):
                if name == "fields":
                    for field, given in value.items():  # None: not given (the CLI's options left out)
                        wrong = config.kind_error(field, given) if given is not None else None
                        if wrong:
                            raise UsageError(f"{field}={given!r:.40}: {wrong}.")
                elif name in hints:
                    bound.arguments[name] = _conform(name, value, hints[name])
            return verb(*bound.args, **bound.kwargs)
        except UsageError as exc:
            if FROM_CLI.get():
                raise
            raise UsageError(for_python(str(exc))) from None

    return called


_WORDS = {bool: "True or False", int: "a whole number", float: "a number", str: "text", Path: "a path (text)",
          type(None): "None"}  # fmt: skip


def _conform(name: str, value: Any, hint: Any) -> Any:
    """`value` as argument `name` of type `hint` takes it, or a UsageError saying what it must be."""
    options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    for option in options:
        if option is Any or (option is type(None) and value is None):
            return value
        if typing.get_origin(option) is collections.abc.Callable:
            if callable(value):
                return value
        elif typing.get_origin(option) is dict:
            if isinstance(value, dict) and all(isinstance(key, str) for key in value):
                return dict(value)
        elif typing.get_origin(option) is list:
            items = [value] if isinstance(value, str) else value  # one text where a list of text goes: one item
            if isinstance(items, list | tuple) and all(isinstance(item, str) for item in items):
                return list(items)
        elif option is Path:
            if isinstance(value, str | os.PathLike):
                return Path(value)
        elif option is float:
            if isinstance(value, int | float) and not isinstance(value, bool):
                return float(value)
        elif option is int:
            if isinstance(value, int) and not isinstance(value, bool):
                return value
        elif isinstance(option, type) and isinstance(value, option):
            return value
    kinds = {list: "a list of text", dict: "a dict with text keys", collections.abc.Callable: "a function"}
    words = [_WORDS.get(o) or kinds.get(typing.get_origin(o)) or getattr(o, "__name__", str(o)) for o in options]
    raise UsageError(f"{name}={value!r:.40}: must be {' or '.join(words)}.")


@dataclass
class Run:
    """A run in runs/: its CV, its out-of-fold and test probabilities, its submission and its report."""

    run_dir: Path

    @property
    def id(self) -> str:
        return self.run_dir.name

    @property
    def metrics(self) -> dict[str, Any]:
        return runs.load_metrics(self.run_dir) or {}

    @property
    def cv(self) -> float | None:
        """The out-of-fold (or holdout) accuracy, once every member is trained."""
        return self.metrics.get("cv_accuracy")

    @property
    def oof(self) -> np.ndarray:
        """(training rows, 10) out-of-fold probabilities (NaN rows: validated by no member)."""
        return runs.load_probs(self.run_dir / runs.OOF, None, unvalidated=True)

    @property
    def test_probs(self) -> np.ndarray:
        """(test rows, 10): the members' mean probabilities for test.csv's images."""
        return runs.load_probs(self.run_dir / runs.TEST_PROBS, None)

    @property
    def history(self) -> dict[int, list[dict[str, float]]]:
        """Each member's training history, as the report draws it: {member: [one row per epoch: loss, accuracy,
        val_loss, val_accuracy, images_per_s, seconds]}."""
        return {runs.member_number(p): runs.member_history(p) for p in runs.member_dirs(self.run_dir, runs.HISTORY)}

    @property
    def submission(self) -> Path | None:
        path = self.metrics.get("submission")
        return Path(path) if path and Path(path).is_file() else None

    def report(self, data_dir: Path | None = None) -> Page:
        """Write the run's report page (`kit report`) and return it: a notebook shows it in the cell."""
        return Page(make_report(self.id, data_dir).page)

    def _repr_html_(self) -> str:
        import html

        cv = f"{100 * self.cv:.3f} %" if self.cv is not None else "not yet (members missing)"
        rows = [
            ("run", self.id),
            ("CV", cv),
            ("submission", str(self.submission or "-")),
            ("folder", str(self.run_dir)),
        ]
        cells = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
        return f"<table>{cells}</table>"


@dataclass
class Page:
    """A report page (one self-contained HTML file): shown in a notebook cell, or open `path` in a browser."""

    path: Path

    def _repr_html_(self) -> str:
        return self.path.read_text(encoding="utf-8")


@_door
def load_run(run: str | Path | None = None) -> Run:
    """A run by id or folder (None: the latest), as `kit report` and `kit submit` take it."""
    return Run(runs.resolve(None if run is None else str(run)))


@_door
def train(
    model: str | None = None,
    *,
    recipe: str | Path | None = None,
    sets: list[str] | None = None,
    run_id: str | None = None,
    fold: int | None = None,
    limit: int | None = None,
    jobs: int | None = None,
    ray: str | None = None,
    mirrored: bool = False,
    kaggle: bool = False,
    kaggle_timeout: int | None = None,
    data_dir: Path | None = None,
    predict: bool = True,
    time: str | float | None = None,
    show: bool = True,
    on_event: ProgressHook | None = None,
    tags: dict[str, Any] | None = None,
    track: str | None = None,
    **fields: Any,
) -> Run:
    """`kit train`: a preset (`model`), a recipe file (`recipe`) or the run being resumed (`run_id`), with any recipe
    field given by name (`rotation=15`) and `sets` ("deotte.epochs=20") on top. Trains here, in local workers, on Ray
    (`ray`) or in a Kaggle kernel (`kaggle`), as the CLI does; `show` renders the same progress and result table.
    `predict=False`: a CV-only run (no test prediction, no submission; `kit.predict(run)` adds them later).
    `time` ("30m", or seconds): a new run's epochs are cut so that it fits (kit.budget), and any run stops at an epoch
    boundary once past OVERRUN x the budget (resumable). `on_event(kit.progress.Progress)` gets every member's events
    (queued, each epoch's logs, prediction), wherever it trains; an exception it raises stops the run as Ctrl-C does
    (its finished members kept). `tags`: labels kept in a new run's config (kit tune: its study and trial).
    `track`: "wandb", "mlflow", "tensorboard" or "trackio" (else $KIT_TRACK) logs the run there (kit.tracking)."""
    unknown = sorted(set(fields) - set(config.SETTABLE))
    if unknown:
        raise UsageError(f"{unknown[0]}: no recipe field of that name; the fields are {', '.join(config.SETTABLE)}.")
    seconds = _seconds(time)
    if seconds is not None and fields.get("epochs") is not None:
        raise UsageError("--time chooses the epochs; give one of --time and --epochs.")
    from kit import tracking

    tracker = tracking.chosen(track, here=not kaggle)
    saved = runs.saved_recipe(run_id, kaggle)
    chosen = config.for_run(model, saved, recipe, sets, **fields)
    if seconds is not None and chosen.families:
        raise UsageError("--time fits a one-family run; a blend's families train at their own paces: set each "
                         "family's epochs (--set FAMILY.epochs=N).")  # fmt: skip
    check_options(chosen, fold=fold, run_id=run_id, limit=limit, jobs=jobs, ray=ray, mirrored=mirrored, kaggle=kaggle,
                  data_dir=data_dir, kaggle_timeout=kaggle_timeout)  # fmt: skip
    new = run_id is None  # a run id kit makes up names a new folder, never an existing run's
    run_id = run_id or runs.new_id(config.model_label(model or chosen.model))
    model_files = user_models.files(chosen, None if new else paths.runs_dir() / run_id)  # the run's copies, or yours
    chosen = user_models.named(chosen)
    if kaggle:
        if seconds is not None and kaggle_timeout is None:  # the kernel's limit from the budget, and its overrun
            kaggle_timeout = min(KAGGLE_MAX_MINUTES, int(seconds * budget.OVERRUN // 60) + KERNEL_START_MINUTES)
        return _on_kaggle(chosen, run_id, limit, jobs, mirrored, kaggle_timeout, show, model_files, predict, seconds,
                          tracker)  # fmt: skip
    from kit import cluster, data, device

    if ray:
        cluster.check(ray)
    comp = runs.training_data(None if new else run_id, data.load_competition(data_dir), limit)
    device.import_keras_quietly()  # after the cheap checks: a usage error should not wait for TensorFlow to load
    from kit import dispatch, models  # Keras at import: after the quiet import above

    dev = device.setup(chosen.precision, mirrored)
    done = [] if new else runs.members_done(run_id, config.member_count(chosen))
    if len(done) < config.member_count(chosen):  # a finished run imports no model file again
        models.check(chosen, model_files)  # your own models build and give probabilities, before any training
    started = _process_start() if seconds is not None else 0.0
    guard = budget.guard(seconds, str(time), started) if seconds is not None else None
    with cluster.connect(ray) if ray else contextlib.nullcontext() as on_ray:
        jobs, where = dispatch.placement(chosen, dev, fold, jobs, on_ray, len(done))
        if seconds is not None and saved is None:  # a run being made: a resumed one keeps its recipe
            left = seconds - (clock.monotonic() - started)  # what this process spent getting here is spent
            chosen, plan = _fit_to_time(chosen, comp, dev, left, predict, str(time), jobs)
            if show:
                render.time_plan(plan, time)
        if show:
            render.training_start(where, run_id, chosen, comp, done, predict)
        logged = tracking.Session(tracker, tags) if tracker else None
        hooks = both(both(on_event, guard), logged)
        try:
            with render.training_progress() if show else contextlib.nullcontext() as shown:
                result = dispatch.train_run(chosen, comp, run_id=run_id, device=dev, only=fold, jobs=jobs,
                                            cluster=on_ray, on_progress=both(shown, hooks), new=new,
                                            model_files=model_files, predict=predict, tags=tags,
                                            on_start=logged.open if logged else None)  # fmt: skip
        except BaseException as exc:
            if logged is not None:
                logged.end(None, [])
            if not isinstance(exc, KeyboardInterrupt | budget.Overran):
                raise
            kept = runs.members_done(run_id, config.member_count(chosen))
            if isinstance(exc, KeyboardInterrupt):
                if show:
                    render.stopped(run_id, kept, config.member_count(chosen))
                raise
            raise RunError(f"--time {time}: the run passed {exc} and stopped at an epoch boundary; it keeps "
                           f"{len(kept)}/{config.member_count(chosen)} members, and `kit train --run-id {run_id}` "
                           "resumes it.") from None  # fmt: skip
    if show:
        render.run_result(result, config.member_count(chosen))
    if logged is not None:
        said = logged.end(result.metrics, _worth_keeping(result, comp))
        if show and said:
            render.out.print(said)
    return Run(result.run_dir)


def _worth_keeping(result: Any, comp: Any) -> list[Path]:
    """A whole run's files a tracker keeps: its submission, its report page (written now) and its recipe file
    (`kit runs --recipe`'s text)."""
    from kit import files, report

    if not result.metrics:
        return []
    kept = [Path(result.submission)] if result.submission else []
    with contextlib.suppress(Exception):  # a page that cannot be drawn costs the tracker that file only
        kept.append(report.write_report(result.run_dir, comp).page)
    recipe = result.run_dir / runs.RECIPE
    files.write_atomic(recipe, runs.recipe_file(result.run_dir.name).encode())
    return [*kept, recipe]


KERNEL_START_MINUTES = 15  # --kaggle --time: the kernel's limit is the budget's overrun plus its start and install


def _process_start() -> float:
    """When the budget started: the command's start (`kit train --time`), else now (a notebook's `kit.train` call)."""
    return COMMAND_START.get() or clock.monotonic()


def _seconds(time: str | float | None) -> float | None:
    if time is None:
        return None
    if isinstance(time, str):
        return budget.parse_duration(time)
    if not 0 < time <= budget.WEEK:
        raise UsageError(f"--time {time}: must be more than nothing and at most a week.")
    return float(time)


def _fit_to_time(chosen: config.Recipe, comp: Any, dev: Any, seconds: float, predict: bool, text: str,
                 jobs: int) -> tuple[Any, Any]:  # fmt: skip
    """The recipe with the most epochs (at most its own) that fit `seconds` on this device: at the pace of the newest
    run like it here, else at one measured now."""
    from kit import predicting, training

    n = len(comp.train_labels)
    val_rows = n // chosen.folds if chosen.folds > 1 else int(round(n * chosen.holdout))
    views = predicting.rows_to_predict(chosen.tta, val_rows, len(comp.test_images), predict)
    pace = budget.recall(dev.describe(), chosen.model, chosen.batch_size)
    if pace is None:
        rate = training.measure_pace(chosen, dev, comp.train_images, comp.train_labels, budget.PROBE_ROWS)
        pace = budget.Pace(rate, budget.STARTUP_S, "measured")
    members = config.member_count(chosen)
    plan = budget.fit(seconds, pace, members, jobs, n - val_rows, views, chosen.epochs, text,
                      epoch_views=min(config.EPOCH_VALIDATION_ROWS, val_rows))  # fmt: skip
    return config.override(chosen, epochs=plan.epochs), plan


def _with_recipe_fields(verb: Callable) -> None:
    """`verb`'s signature with every recipe field as a keyword (generated from the recipe, so a notebook offers
    them: `kit.train(rota<TAB>`); the function itself takes them through **fields."""
    signature = inspect.signature(verb)
    named = [p for p in signature.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    types = {f.name: f.type for f in config.dataclasses.fields(config.Recipe)}
    fields = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=f"{types[name]} | None")
              for name in config.SETTABLE if name not in {p.name for p in named}]  # fmt: skip
    verb.__signature__ = signature.replace(parameters=[*named, *fields])  # type: ignore[attr-defined]


_with_recipe_fields(train)


def _on_kaggle(chosen: config.Recipe, run_id: str, limit: int | None, jobs: int | None, mirrored: bool,
               minutes: int | None, show: bool, model_files: dict[str, Path], predict: bool = True,
               budget_s: float | None = None, track: str | None = None) -> Run:  # fmt: skip
    """The run trained in a Kaggle kernel: the kernel runs `kit train` on this recipe (a recipe file in the kernel,
    with your own model files) and these options (`budget_s`: its --time, which it fits on its own device; `track`:
    a tracker whose files are written in the run's folder, offline there), and the run comes home into runs/<id>/."""
    from kit import kaggle_kernel, tracking

    if track is not None and track not in tracking.FROM_KAGGLE:
        home = " or ".join(tracking.FROM_KAGGLE)
        raise UsageError(f"--kaggle --track {track}: a kernel's {track} store stays on Kaggle; --track {home} "
                         "write into the run's folder, which comes home.")  # fmt: skip
    seconds = (minutes or KAGGLE_MINUTES) * 60
    args = kaggle_kernel.command_line(dict(limit=limit, jobs=jobs, mirrored=mirrored or None,
                                           predict=None if predict else False,
                                           time=None if budget_s is None else f"{budget_s:g}s",
                                           track=track))  # fmt: skip
    if not show:
        return Run(kaggle_kernel.train(run_id, args, chosen, seconds, model_files=model_files))

    def on_push(info: dict, attached: bool) -> None:
        render.kernel_pushed(info, attached, run_id, chosen)

    with render.status_line() as status:
        run_dir = kaggle_kernel.train(run_id, args, chosen, seconds,
                                      lambda state, secs, latest: status(render.kernel_line(state, secs, latest)),
                                      on_push, model_files)  # fmt: skip
    render.run_result(kaggle_kernel.result(run_dir), config.member_count(chosen))
    if track is not None:
        render.out.print(tracking.came_home(track, run_dir))
    return Run(run_dir)


@_door
def predict(run: Run | str | Path | None = None, tta: bool = False, *, data_dir: Path | None = None,
            show: bool = True) -> Run:  # fmt: skip
    """`kit predict`: a CV-only run's test prediction, filled into the run itself (its recipe's views, then its
    submission); or, for a run that has one (or with `tta`), its saved models predict the OOF and test rows again,
    as a new run RUN-predict / RUN-tta. Returns the run that holds the new submission."""
    from kit import data, device

    source = runs.resolve(run.id if isinstance(run, Run) else None if run is None else str(run))
    comp = data.load_competition(data_dir)
    device.import_keras_quietly()
    from kit import dispatch, ensemble

    fill = not tta and not runs.predicts_test(runs.load_config(source))
    what = "the test rows" if fill else f"with {source.name}'s models{' and TTA' if tta else ''}"
    with render.out.status(f"Predicting {what}...") if show else contextlib.nullcontext():
        if fill:
            result = dispatch.fill_in_test(source, comp)
        else:
            prediction = ensemble.predict_run(source, comp, tta)
    if fill:
        if show:
            render.run_result(result, len(result.fold_metrics))
        return Run(source)
    if show:
        render.prediction(source, prediction)
    return Run(prediction.run_dir)


@_door
def make_report(run: str | None = None, data_dir: Path | None = None) -> Any:
    """`kit report`: the run's pictures and its one-page report (runs/<id>/report/index.html); returns what it found
    (kit.report.Report: the page, per-class scores, the most confused pairs, ...)."""
    from kit import data, report

    run_dir = runs.resolve(run)
    return report.write_report(run_dir, runs.competition_of(run_dir, data.load_competition(data_dir)))


@_door
def submit(run: Run | str | Path | None = None, message: str | None = None, *, wait: bool = True,
           timeout: float = 600.0, force: bool = False, dry_run: bool = False,
           show: bool = True) -> dict[str, Any]:  # fmt: skip
    """`kit submit`: validate the run's submission (or a CSV's), check today's quota and that the content is new,
    upload it, wait for the score and log it in submissions/leaderboard.csv. Returns Kaggle's last word
    ({"ref", "status", "public_score", ...}; {} for a dry run)."""
    from kit import submitting

    target = run.id if isinstance(run, Run) else None if run is None else str(run)
    chosen = submitting.resolve(target, message)
    submitting.check(chosen, force)
    if show:
        render.submission_start(chosen)
    if dry_run:
        if show:
            render.dry_run()
        return {}
    if not show:
        return submitting.submit(chosen, wait, timeout, None, force)
    with render.out.status("Submitting to Kaggle...") as spinner:

        def on_poll(state: dict) -> None:
            spinner.update(f"Waiting for the score (ref {state['ref']}): {state['status']}...")

        state = submitting.submit(chosen, wait, timeout, on_poll, force)
    render.submission_end(state, wait, timeout)
    return state


@_door
def tune(
    study: str | None = None,
    *,
    space: list[str] | None = None,
    space_file: Path | None = None,
    trials: int = 20,
    time: str | float | None = None,
    prune: str = "median",
    storage: str | None = None,
    model: str | None = None,
    recipe: Path | None = None,
    sets: list[str] | None = None,
    folds: int | None = None,
    epochs: int | None = None,
    limit: int | None = None,
    jobs: int | None = None,
    ray: str | None = None,
    predict: bool = False,
    track: str | None = None,
    data_dir: Path | None = None,
    show: bool = True,
) -> Any:
    """`kit tune`: run trials of a study (kit.tuning) until it holds `trials` finished ones or the next would not fit
    in `time` ("3h", or seconds). A new study searches `space` (["rotation=0:20", "learning_rate=1e-4:1e-2:log",
    "batch_size=128|256"], or a TOML file's [space] table) around the recipe that `model`, `recipe`, `sets` and the
    fidelity (`folds`, `epochs`, `limit`) give; a study continued by name alone keeps its own. Each trial is a
    CV-only run (`predict`: with its test prediction), logged to `track` as `kit train --track` logs (a W&B group,
    tags: the study and the trial). Returns kit.tuning.StudyResult (trials, best, best_recipe)."""
    from kit import tracking, tuning

    tracker = tracking.chosen(track) or "none"

    seconds = _seconds(time)
    if trials < 1:
        raise UsageError(f"--trials {trials}: must be a whole number >= 1.")
    if prune not in tuning.PRUNERS:
        raise UsageError(f"--prune {prune}: must be one of {', '.join(tuning.PRUNERS)}.")
    name = tuning.check_name(study or f"tune-{paths.utc_now(compact=True)}")
    items = [*(space or []), *(tuning.space_file(space_file) if space_file is not None else [])]
    fixed = {"--model": model, "--recipe": recipe, "--set": sets or None, "--folds": folds, "--epochs": epochs,
             "--limit": limit}  # fmt: skip
    definition = None
    if items:
        definition = _definition(items, model, recipe, sets or [], folds, epochs, limit, prune, predict)
    elif any(v is not None for v in fixed.values()):
        given = " and ".join(k for k, v in fixed.items() if v is not None)
        raise UsageError(f"{given} shape a new study: give its --space too (or drop {given} to continue study "
                         f"{name} as it was made).")  # fmt: skip
    check_options(config.recipe(), fold=None, run_id=None, limit=None, jobs=jobs, ray=ray, mirrored=False)
    if ray:
        from kit import cluster

        cluster.check(ray)
    if definition is not None and definition.recipe:
        tuning.keep_recipe(definition.recipe)

    def train_trial(d: Any, values: dict[str, Any], run_id: str, tags: dict[str, Any], on_event: Any) -> tuple:
        run = train(d.model, recipe=tuning.recipe_path(d), sets=[*d.sets, *tuning.as_sets(values)], run_id=run_id,
                    limit=d.limit, jobs=jobs, ray=ray, data_dir=data_dir, predict=d.predict, show=False,
                    on_event=on_event, tags=tags, folds=d.folds, epochs=d.epochs, track=tracker)  # fmt: skip
        metrics = run.metrics
        rows = int(metrics.get("cv_rows") or 0)
        return metrics["cv_accuracy"], runs.errors_of(metrics["cv_accuracy"], rows), rows

    if not show:
        return tuning.run_study(name, definition, trials=trials, train=train_trial, url=storage, seconds=seconds)
    watch = render.TuneWatch(name, trials, seconds)
    try:
        with watch:
            events = tuning.Events(watch.open, watch.start, watch.event, watch.end)
            result = tuning.run_study(name, definition, trials=trials, train=train_trial, url=storage,
                                      seconds=seconds, events=events)  # fmt: skip
    except (KeyboardInterrupt, SystemExit):  # Ctrl-C, SIGTERM
        render.tune_stopped(name)
        raise
    render.study(result)
    return result


def _definition(items: list[str], model: str | None, recipe: Path | None, sets: list[str], folds: int | None,
                epochs: int | None, limit: int | None, prune: str, predict: bool) -> Any:  # fmt: skip
    """A new study's definition, every part checked as `kit train` checks it (nothing is written)."""
    from kit import tuning

    if model is not None and config.is_user_model(model):  # trials run from the study, wherever you stand
        file, _, function = model.rpartition(":")
        model = f"{Path(file).resolve()}:{function}"
    base = config.for_run(model, None, recipe, sets, folds=folds, epochs=epochs)
    check_options(base, fold=None, run_id=None, limit=limit, jobs=None, ray=None, mirrored=False)
    dims = tuning.parse_space(items, base)
    if prune == "median" and any(d.name.rpartition(".")[2] in ("epochs", "fold_epochs") for d in dims):
        raise UsageError("--space epochs: the median pruner compares trials at the same epoch, which trials of other "
                         "lengths make unfair (and a one-cycle schedule is not finished until its last epoch); add "
                         "--prune wilcoxon or --prune none.")  # fmt: skip
    text = config.recipe_text(recipe) if recipe is not None else ""
    return tuning.Definition(tuple(d.text for d in dims), model, text, tuple(sets), folds, epochs, limit, prune,
                             predict)  # fmt: skip


@_door
def study(name: str, *, storage: str | None = None) -> Any:
    """`kit tune --study NAME --show`: the study's trials (confirmations beside them), its best trial and the best
    recipe (also written to runs/studies/NAME/best.toml), as kit.tuning.StudyResult."""
    from kit import report, tuning

    result = tuning.summary(name, storage)
    result.page = report.study_page(result)
    return result


@_door
def confirm(name: str, count: int = 2, *, folds: int | None = None, epochs: int | None = None,
            storage: str | None = None, track: str | None = None, data_dir: Path | None = None,
            show: bool = True) -> Any:  # fmt: skip
    """`kit tune --study NAME --confirm K`: the K best complete trials trained again at the recipe's full fidelity
    (its own folds and epochs, or `folds`/`epochs`; all the rows; new seeds; test prediction on), each a run
    NAME-confirm-tNNN; their figures are kept beside the trials'. Returns the study (kit.tuning.StudyResult)."""
    from kit import tracking, tuning

    tracker = tracking.chosen(track) or "none"
    found, d, picks = tuning.to_confirm(name, count, storage)
    for row in picks:
        seed = tuning.confirm_seed(d, row.number, folds)
        sets = [*d.sets, *tuning.as_sets(row.params), f"seed={seed}"]
        if show:
            render.confirming(row, seed)
        run = train(d.model, recipe=tuning.recipe_path(d), sets=sets, run_id=tuning.confirm_run_id(name, row.number),
                    data_dir=data_dir, show=show, tags={"study": name, "trial": row.number, "confirm": True},
                    folds=folds, epochs=epochs, track=tracker)  # fmt: skip
        metrics = run.metrics
        rows = int(metrics.get("cv_rows") or 0)
        tuning.record_confirmation(found, row.number, {"run": run.id, "accuracy": metrics["cv_accuracy"],
                                   "errors": runs.errors_of(metrics["cv_accuracy"], rows), "rows": rows,
                                   "seed": seed})  # fmt: skip
    result = tuning.summary(name, storage)
    if show:
        render.study(result, confirmed_only=True)
    return result
