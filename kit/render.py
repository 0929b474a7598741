"""What kit shows: the consoles, tables, the training progress, the kernel's status line and a run's result.

The CLI and the Python API (kit.api) render through these; the stages print nothing. rich writes to a terminal, to a
log or pipe as plain lines, and to a notebook cell alike.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text


def _console(stderr: bool = False) -> Console:
    """A console for stdout or stderr. Off a terminal (a pipe, a log, a notebook's `!kit ...`) and without COLUMNS,
    nothing is cut or wrapped: rich would squeeze to 80 columns, cutting run ids, dates and scores."""
    console = Console(stderr=stderr, markup=False)
    if not console.is_terminal and not console.is_jupyter and not os.environ.get("COLUMNS"):
        console.width = OFF_TERMINAL_WIDTH
    return console


OFF_TERMINAL_WIDTH = 1_000  # a table's own width is what it needs (tables do not expand), a line's its length
# No markup: paths, messages, names and whatever else a user or a file supplies print as they are; kit styles its own
# words with rich Text (`Text.assemble`).
out = _console()
err = _console(stderr=True)


def new_table(title: str, columns: tuple[str, ...], right: tuple[str, ...], wrap: tuple[str, ...] = ()) -> Table:
    """A rich table with these columns, the ones in `right` right-aligned (numbers). Only the `wrap` columns (free
    text: messages, recipe changes) fold when the table is too wide; ids, dates and numbers are never cut."""
    table = Table(title=title)
    for column in columns:
        table.add_column(column, justify="right" if column in right else "left", no_wrap=column not in wrap,
                         overflow="fold")  # fmt: skip
    return table


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.3f} %"


def kernel_line(status: str, seconds: float, latest: str) -> str:
    minutes, secs = divmod(int(max(0, seconds)), 60)
    return f"kernel {status.replace('_', ' ')}, {minutes}:{secs:02d} since the push" + (
        f"  | {latest}" if latest else ""
    )


@contextlib.contextmanager
def status_line() -> Iterator[Callable[[str], None]]:
    """One live status line on a terminal; elsewhere (a log, a pipe, CI) a plain line whenever it changes."""
    if out.is_terminal:
        with out.status("pushing the kernel") as status:
            yield lambda text: status.update(text)
        return
    shown = [""]

    def show(text: str) -> None:
        if text != shown[0]:
            out.print(text, highlight=False)
            shown[0] = text

    yield show


def extra_rows(recipe, comp) -> str:
    if not recipe.pseudo:
        return ""
    least = f" (those at >= {recipe.pseudo_min:g})" if recipe.pseudo_min else ""
    return f" + up to {len(comp.test_images):,} test images pseudo-labelled by {recipe.pseudo}{least}"


def model_line(recipe) -> str:
    families = recipe.families or {recipe.model: recipe}
    return " + ".join(f"{name} ({f.epochs} epochs, batch {f.batch_size})" for name, f in families.items())


def members_line(recipe) -> str:
    members = f"{recipe.folds} fold(s)" + (f" x {recipe.repeats} repeats" if recipe.repeats > 1 else "")
    return members + (f" of each of {len(recipe.families)} families" if recipe.families else "")


# Off a terminal (a log file, CI, a Kaggle kernel) progress is plain lines: each member's start, first and last epoch,
# and the epochs between at most one line this often (seconds).
PLAIN_EVERY = 5.0


@contextlib.contextmanager
def training_progress() -> Iterator[Callable]:
    """The run's progress: on a terminal a rich bar per member (epoch, loss, accuracy, validation accuracy, images/s)
    under a line for the run (epochs done, time elapsed and left); elsewhere plain lines with the same figures."""
    from kit.progress import TimeLeft, clock

    time_left = TimeLeft()

    def run_line() -> str:
        return (f"run {time_left.epochs_done}/{time_left.epochs_total} epochs, {clock(time_left.elapsed())} elapsed, "
                f"{clock(time_left.left())} left")  # fmt: skip

    def predicted(event) -> str:
        return f"{event.predicted:,}/{event.to_predict:,} image-views (validation and test rows, each TTA view)"

    def stats(logs: dict[str, float]) -> str:
        return (f"loss {logs.get('loss', float('nan')):.4f}  acc {pct(logs.get('accuracy'))}  "
                f"val_acc {pct(logs.get('val_accuracy'))}  {logs.get('images_per_s', 0):,.0f} img/s")  # fmt: skip

    if not out.is_terminal:
        last = [float("-inf")]

        def plain(event) -> None:
            time_left.update(event)
            if not event.started:
                return
            name = f"fold {event.member + 1}"
            if event.predicting:
                if event.predicted < event.to_predict and time_left.elapsed() - last[0] < PLAIN_EVERY:
                    return
                text = f"{name} predicting {predicted(event)}  | {run_line()}"
            elif event.epoch == 0:
                text = f"{name}/{event.members} started" + (f" on {event.where}" if event.where else "")
            elif event.epoch in (1, event.epochs) or time_left.elapsed() - last[0] >= PLAIN_EVERY:
                text = f"{name} epoch {event.epoch}/{event.epochs}  {stats(event.logs)}  | {run_line()}"
            else:
                return
            last[0] = time_left.elapsed()
            out.print(text, highlight=False, soft_wrap=True)

        yield plain
        return

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[unit]}"), TextColumn("{task.fields[stats]}"))  # fmt: skip
    with Progress(*columns, console=out) as bars:
        run = bars.add_task("run", total=None, stats="", unit="epochs")
        tasks: dict[int, int] = {}

        def live(event) -> None:
            time_left.update(event)
            text = f"{clock(time_left.elapsed())} elapsed, {clock(time_left.left())} left"
            bars.update(run, total=time_left.epochs_total, completed=time_left.epochs_done, stats=text)
            if not event.started:
                return
            if event.member not in tasks:
                where = f" on {event.where}" if event.where else ""
                tasks[event.member] = bars.add_task(f"fold {event.member + 1}/{event.members}{where}", total=None,
                                                    stats="", unit="epochs")  # fmt: skip
            if event.predicting:
                bars.update(tasks[event.member], total=event.to_predict, completed=event.predicted,
                            unit="image-views", stats="predicting validation and test rows")  # fmt: skip
            elif event.epoch:
                bars.update(tasks[event.member], total=event.epochs, completed=event.epoch, stats=stats(event.logs))

        yield live


def run_result(result, total_folds: int) -> None:
    tta = any(m.get("tta_views", 1) > 1 for m in result.fold_metrics)
    columns = ("fold", "accuracy" + (" (TTA)" if tta else ""), *(("without TTA",) if tta else ()), "val rows",
               "img/s", "seconds")  # fmt: skip
    table = new_table(f"run {result.run_dir.name}", columns, right=columns)
    named = len({m.get("family") for m in result.fold_metrics}) > 1  # a blend: say each member's family
    for m in result.fold_metrics:
        plain = (pct(m.get("accuracy_plain")),) if tta else ()
        member = f"{m['fold']} {m['family']}" if named else str(m["fold"])
        table.add_row(
            member, pct(m["accuracy"]), *plain, f"{m['val_rows']:,}", f"{m['images_per_s']:,.0f}",
            f"{m['seconds']:.0f}",
        )  # fmt: skip
    if result.metrics:
        label = "CV (OOF)" if total_folds > 1 else "holdout"
        metrics = result.metrics
        plain = (pct(metrics.get("cv_accuracy_plain")),) if tta else ()
        table.add_row(
            label, Text(pct(metrics["cv_accuracy"]), "bold"), *plain, f"{metrics['cv_rows']:,}",
            f"{metrics['images_per_s']:,.0f}", f"{metrics['train_seconds']:.0f}",
        )  # fmt: skip
    out.print(table)
    if result.metrics and result.metrics.get("families"):  # a blend (kit.dispatch wrote it whole just now)
        blend_table(result.metrics)
    out.print(f"run directory: {result.run_dir}")
    if result.submission:
        out.print(f"submission:    {result.submission}")
    elif result.metrics:
        out.print(f"CV only: no submission; `kit predict {result.run_dir.name}` predicts the test rows and writes it.")
    else:
        done = len(result.fold_metrics)
        out.print(f"{done}/{total_folds} folds complete; train the others with the same --run-id to finish the run.")


def blend_table(metrics: dict) -> None:
    """A blend run's families (OOF CV and errors), the blend beside the plain mean and the vote, and the errors the
    families share."""
    overlap, blend = metrics["overlap"], metrics["blend"]
    table = new_table("families and their blend (OOF)", ("", "weight", "CV", "errors"), ("weight", "CV", "errors"))
    for name, family in metrics["families"].items():
        table.add_row(name, f"{blend['weights'][name]:.3f}", pct(family["cv_accuracy"]),
                      f"{overlap['errors'][name]:,}")  # fmt: skip
    table.add_row(Text(f"blend ({blend['method']})", "bold"), "", Text(pct(metrics["cv_accuracy"]), "bold"), "")
    table.add_row("plain mean", "", pct(blend["cv_mean"]), "")
    table.add_row("majority vote", "", pct(blend["cv_vote"]), "")
    out.print(table)
    pairs = ", ".join(f"{pair}: {n:,}" for pair, n in overlap["pairs"].items())
    out.print(Text.assemble(("errors in common", "bold"), f" {pairs}; made by all: {overlap['all']:,}, by any: "
                            f"{overlap['any']:,}"))  # fmt: skip
    out.print(f"weights: {blend['why']}")


def training_start(where: str, run_id: str, recipe, comp, done: list[int] | None = None, predict: bool = True) -> None:
    """The device line and the run line, before the first epoch; what a resumed run found done; a CV-only run."""
    out.print(Text.assemble(("device", "bold"), f" {where}"))
    note = ("  (SAMPLE data: scores say nothing about the competition)", "yellow") if comp.is_sample else ""
    out.print(Text.assemble(("run", "bold"), f" {run_id}: {model_line(recipe)}, {members_line(recipe)}, "
                            f"{len(comp.train_labels):,} train rows{extra_rows(recipe, comp)}", note))  # fmt: skip
    total = len(recipe.families or {"": 0}) * recipe.folds * recipe.repeats
    if done:
        names = ", ".join(str(k) for k in done)
        out.print(Text.assemble(("resuming", "bold"), f" {len(done)}/{total} members done (fold {names}); training "
                                f"the other {total - len(done)}"))  # fmt: skip
    if not predict:
        out.print(Text.assemble(("CV only", "bold"), ": no test prediction and no submission (`kit predict "
                                f"{run_id}` adds them later)"))  # fmt: skip


def time_plan(plan, text) -> None:
    """`kit train --time`: the epochs chosen to fit the budget, and the pace they were chosen at."""
    from kit.progress import clock

    where = "measured now" if plan.pace.source == "measured" else f"as {plan.pace.source} trained"
    pace = f"{plan.pace.images_per_s:,.0f} img/s, {where}"
    if plan.epochs < plan.was:
        out.print(f"--time {text}: {plan.was} -> {plan.epochs} epochs per member to fit (about {clock(plan.seconds)} "
                  f"at {pace}).", highlight=False)  # fmt: skip
    else:
        out.print(f"--time {text}: the recipe's {plan.epochs} epochs per member fit (about {clock(plan.seconds)} at "
                  f"{pace}).", highlight=False)  # fmt: skip


def stopped(run_id: str, done: list[int], total: int) -> None:
    """Ctrl-C during `kit train`: what is kept and the command that resumes the run."""
    err.print(Text.assemble(("stopped:", "yellow"), f" run {run_id} keeps its {len(done)}/{total} finished members; "
                            f"`kit train --run-id {run_id}` resumes it."), highlight=False, soft_wrap=True)  # fmt: skip


def kernel_pushed(info: dict, attached: bool, run_id: str, recipe) -> None:
    what = "re-attached to" if attached else "pushed"
    out.print(Text.assemble(("kaggle", "bold"), f" {what} kernel {info['kernel']} version {info['version']} "
                            f"(GPU T4 x2): {info['url']}"))  # fmt: skip
    out.print(Text.assemble(("run", "bold"), f" {run_id}: {model_line(recipe)}, {members_line(recipe)}"))


def submission_start(chosen) -> None:
    """What `kit submit` is about to send: the file (and its hash) and the message."""
    out.print(Text.assemble(("file", "bold"), f"    {chosen.path}  (sha256 {chosen.sha256[:12]})"))
    out.print(Text.assemble(("message", "bold"), f" {chosen.message}"))


def dry_run() -> None:
    out.print(Text.assemble(("Valid.", "green"), " Dry run: nothing was sent."))


def submission_end(state: dict, wait: bool, timeout: float) -> None:
    """Kaggle's last word on a submission: its score, or that it is not scored yet."""
    if state["status"] == "complete":
        out.print(Text.assemble(("Scored.", "green"), " public score ", (str(state["public_score"]), "bold"),
                                f" (ref {state['ref']})"))  # fmt: skip
    else:
        waited = "" if not wait else f" after {timeout:.0f} s"
        out.print(f"Submitted (ref {state['ref']}); no score yet{waited}. `kit leaderboard --sync` fetches it later.")


def error(message: str) -> None:
    """An error a user can act on: one line on stderr."""
    err.print(Text.assemble(("error:", "red"), f" {message}"), highlight=False, soft_wrap=True)


class Notices(logging.Handler):
    """The stages' notices (kit's logger) as one line each on the stderr of when kit started: a stage that hides a
    library's own output meanwhile does not hide kit's."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.console = Console(file=sys.stderr, markup=False, width=err.width)

    def emit(self, record: logging.LogRecord) -> None:
        self.console.print(Text.assemble(("note:", "yellow"), f" {record.getMessage()}"), highlight=False,
                           soft_wrap=True)  # fmt: skip


def _rows_of(meta: dict) -> str:
    return f"{meta['train_rows']:,} train / {meta['test_rows']:,} test rows, source: {meta['source']}"


def installed(result, scored_rows: int) -> None:
    """`kit download`: what was installed where (kit.data.Installed), or that it was there already; the sample, or
    a test set of other than the `scored_rows` Kaggle scores, said so."""
    meta, dest = result.meta, result.dest
    if not result.new:
        out.print(f"Data already in {dest} ({_rows_of(meta)}); nothing to do (--force installs it again).")
        return
    out.print(Text.assemble(("Installed", "green"), f" {_rows_of(meta)} in {dest}"))
    if meta["source"] == "sample":
        out.print(Text.assemble(
            ("This is the SAMPLE data set", "yellow"),
            " (scikit-learn's 8x8 digits resized to 28x28), for "
            "trying kit offline; its scores say nothing about the competition. `kit download` fetches the real data."
        ))  # fmt: skip
    elif meta["test_rows"] != scored_rows:
        out.print(Text.assemble(("note:", "yellow"), f" this test.csv has {meta['test_rows']:,} rows, not the "
                                f"competition's {scored_rows:,}: Kaggle scores only files of {scored_rows:,} "
                                "rows, so `kit submit` refuses what is made from it (`kit download --force` fetches "
                                "the competition's own)."))  # fmt: skip


def valid_submission(path: Path, rows: int, scored_rows: int) -> None:
    """`kit validate`: the file is valid for the installed data; a note when Kaggle scores another number of rows."""
    out.print(Text.assemble((f"{path} is a valid submission", "green"), f" ({rows:,} rows)."))
    if rows != scored_rows:  # valid here, and `kit submit` will refuse it: say so now
        out.print(Text.assemble(("note:", "yellow"), f" valid for the installed data's {rows:,} test rows; Kaggle "
                                f"scores {scored_rows:,}, so `kit submit` refuses it."))  # fmt: skip


def report(result) -> None:
    """`kit report`: per-class scores, the most confused pairs, a blend's families, the pictures and the page."""
    columns = ("digit", "precision", "recall", "support")
    table = new_table(f"{result.page.parent.parent.name}: {result.rows:,} OOF rows, accuracy {pct(result.accuracy)}",
                      columns, columns)  # fmt: skip
    for digit, precision, recall, support in result.per_class:
        table.add_row(str(digit), pct(precision), pct(recall), f"{support:,}")
    out.print(table)
    pairs = ", ".join(f"{t} -> {p}: {n}" for t, p, n in result.confused) or "none"
    out.print(Text.assemble(("most confused (true -> predicted)", "bold"), f" {pairs}"))
    if result.blend:
        blend_table({**result.blend, "cv_accuracy": result.accuracy})
    for picture in result.pictures:
        out.print(f"wrote {picture}")
    out.print(
        Text.assemble(("report page", "bold"), f" {result.page} (one file, pictures inside: open it in a browser)")
    )


def _made(run_dir: Path, csv: Path) -> None:
    out.print(f"run directory: {run_dir}")
    out.print(f"submission:    {csv}")


def prediction(source: Path, result) -> None:
    """`kit predict`: the CV before and after, the labels that changed, the new run."""
    out.print(Text.assemble(f"CV (OOF) {source.name}: {pct(result.cv_before)}  ->  {result.run_dir.name}: ",
                            (pct(result.cv_after), "bold")))  # fmt: skip
    out.print(f"test labels that changed: {result.changed:,}")
    _made(result.run_dir, result.submission)


def blended(result) -> None:
    """`kit blend`: each run's weight and CV, the blend's CV, the new run."""
    table = new_table(f"blend {result.run_dir.name}", ("run", "weight", "CV (OOF)"), right=("weight", "CV (OOF)"))
    for (name, cv), w in zip(result.run_cv, result.weights, strict=True):
        table.add_row(name, f"{w:.3f}", pct(cv))
    table.add_row(
        Text("blend", "bold"), "", Text(pct(result.cv), "bold") if result.cv is not None else "- (folds differ)"
    )
    out.print(table)
    _made(result.run_dir, result.submission)


def _when(utc: str) -> str:
    return utc.replace("T", " ").rstrip("Z")


def synced(updated: int, added: int) -> None:
    out.print(f"Synced with Kaggle: {updated} row(s) updated, {added} added.")


def leaderboard(rows: list[dict[str, str]], path: Path) -> None:
    """`kit leaderboard`: the log's rows as a table, best public score first."""
    if not rows:
        out.print(f"No submissions logged yet in {path}; `kit submit` adds them.")
        return
    columns = ("time (UTC)", "run", "CV", "public LB", "LB - CV", "private", "status", "ref", "message")
    table = new_table(f"leaderboard log ({path})", columns, right=("CV", "public LB", "LB - CV", "private"),
                      wrap=("status", "message"))  # fmt: skip
    for r in rows:
        status = r["status"] + (f": {r['error']}" if r["error"] and r["status"] in ("error", "failed") else "")
        gap = f"{100 * float(r['gap']):+.3f}" if r["gap"] else ""  # percentage points, as CV and LB are shown
        table.add_row(_when(r["utc_time"]), r["run_id"], _score(r["cv_accuracy"]), _score(r["public_score"]), gap,
                      _score(r["private_score"]), status, r["ref"], r["message"])  # fmt: skip
    out.print(table)


def cv_against_lb(found) -> None:
    """`kit leaderboard --plot`: what was not plotted and why, the strays, the fitted line, where the picture is."""
    for row, why in found.others:
        name = row["run_id"] or row["file"] or f"ref {row['ref']}"
        when = f" ({_when(row['utc_time'])})" if row["utc_time"] else ""
        out.print(f"not plotted: {name}{when}: {why}")
    for row in found.strays:
        out.print(Text.assemble(("strays from the line", "yellow"), f": {row['run_id']} (CV {row['cv_accuracy']}, "
                                f"public {row['public_score']})"))  # fmt: skip
    line = ""
    if found.slope is not None:
        r = f", r = {found.correlation:.3f}" if found.correlation is not None else ""
        line = f": LB = {found.slope:.3f} CV {found.intercept:+.4f}{r}"
    out.print(Text.assemble(("CV against LB", "bold"), f" ({len(found.points)} submission(s){line}) in {found.path}"))


def _minutes(seconds: float | None) -> str:
    from kit.progress import clock

    return clock(seconds) if seconds else ""


def _rows(r: dict) -> str:
    """How many rows a run trained on: marked when --limit cut them, or when they are the offline sample's."""
    if r["rows"] is None:
        return ""
    marks = [m for m, on in (("limit", r["limited"]), ("sample", r["data"] == "sample")) if on]
    return f"{r['rows']:,}" + (f" ({', '.join(marks)})" if marks else "")


def runs(rows: list[dict], root: Path) -> None:
    """`kit runs`: the runs (kit.run_table's rows, in the order asked): the run's wall time (members that trained at
    once counted once; `~` and the members' sum for a run made before kit measured it), the rows it trained on."""
    if not rows:
        out.print(f"No runs in {root}; `kit train` makes one.")
        return
    headers = ("run", "kind", "model", "folds", "epochs", "rows", "changes", "CV", "wall", "created (UTC)",
               "public LB")  # fmt: skip
    table = new_table(f"runs ({root})", headers, right=("epochs", "rows", "CV", "wall", "public LB"),
                      wrap=("model", "changes"))  # fmt: skip
    for r in rows:
        wall = _minutes(r["wall_seconds"]) or (f"~{_minutes(r['train_seconds'])}" if r["train_seconds"] else "")
        table.add_row(
            r["id"], r["kind"], r["model"], r["members"], str(r["epochs"]), _rows(r), r["changes"], pct(r["cv"]),
            wall, _when(r["created"]), _score(r["public_score"]),
        )  # fmt: skip
    out.print(table)


def _score(text: str) -> str:
    """A score kept as Kaggle gives it (a fraction, '0.99657'), shown as kit shows CV (a percentage)."""
    try:
        return pct(float(text)) if text else ""
    except ValueError:
        return text


# ---------------------------------------------------------------------------------------------------------- tune


def _values(params: dict) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def _errors(errors, rows) -> str:
    return "-" if errors is None else f"{errors:,}" + (f"/{rows:,}" if rows else "")


class TuneWatch:
    """`kit tune`'s progress: a line when each trial starts and ends (its value, the best so far, the study's time
    left), and between them one status line of the trial's members (live on a terminal, else when it changes)."""

    def __init__(self, name: str, trials: int, seconds: float | None) -> None:
        self.name, self.trials, self.seconds = name, trials, seconds
        self.number, self.latest = -1, ""
        self._status: contextlib.ExitStack | None = None
        self._show: Callable[[str], None] = lambda text: None

    def __enter__(self) -> TuneWatch:
        return self

    def open(self, definition, folder: Path) -> None:
        d = definition
        budget = f" within {self._clock(self.seconds)}" if self.seconds else ""
        fidelity = [f"--{k} {v}" for k, v in (("folds", d.folds), ("epochs", d.epochs), ("limit", d.limit)) if v]
        out.print(Text.assemble("Study ", (self.name, "bold"), f": up to {self.trials} finished trials{budget} over "
                                f"{', '.join(d.space)}; each `kit train {' '.join(fidelity) or '(the recipe as it is)'}"
                                f"{'' if d.predict else ' --no-predict'}`, scored by its OOF accuracy; pruning: "
                                f"{d.prune}. `kit tune --study {self.name}` continues it from any shell sharing "
                                f"{folder.parent.parent}, `--show` lists it."))  # fmt: skip

    def __exit__(self, *exc) -> None:
        self._close()

    @staticmethod
    def _clock(seconds) -> str:
        from kit.progress import clock

        return clock(seconds)

    def _close(self) -> None:
        if self._status is not None:
            self._status.close()
            self._status = None

    def start(self, number: int, params: dict, done: int, total: int, baseline: bool = False) -> None:
        self.number = number
        what = "the recipe as it is" if baseline else _values(params)
        out.print(f"trial {number} ({done}/{total} finished): {what}", highlight=False, soft_wrap=True)
        self._status = contextlib.ExitStack()
        self._show = self._status.enter_context(status_line())

    def event(self, event) -> None:
        if event.started and event.epoch and not event.predicting:
            val = pct(event.logs.get("val_accuracy"))
            self._show(f"trial {self.number}: fold {event.member + 1}/{event.members} epoch {event.epoch}/"
                       f"{event.epochs}, val_acc {val}")  # fmt: skip

    def end(self, row, best, left) -> None:
        self._close()
        if row.state == "complete":
            what = f"{_errors(row.errors, row.rows)} OOF errors ({pct(row.accuracy)})"
        elif row.state == "pruned":
            what = f"pruned at {row.pruned_at}"
        else:
            what = row.state
        lead = f"best: trial {best.number}, {_errors(best.errors, best.rows)} errors" if best else "no best yet"
        out.print(f"trial {row.number}: {what} in {self._clock(row.seconds)} | {lead} | study ~{self._clock(left)} "
                  "left", highlight=False, soft_wrap=True)  # fmt: skip


def tune_stopped(name: str) -> None:
    err.print(f"stopped: study {name} keeps its finished trials; `kit tune --study {name}` continues it (the "
              "interrupted trial's run resumes).", highlight=False)  # fmt: skip


def confirming(row, seed: int) -> None:
    out.print(Text.assemble(("Confirming trial ", "bold"), (str(row.number), "bold"),
                            f" ({_values(row.params)}) at full fidelity, seed {seed}"))  # fmt: skip


def study(result, confirmed_only: bool = False) -> None:
    """`kit tune --show` (and the end of `kit tune`): the trials, the confirmations beside them, the best recipe."""
    d = result.definition
    rows = [r for r in result.trials if r.confirmed] if confirmed_only else result.trials
    names = [text.partition("=")[0] for text in d.space]
    confirmed = any(r.confirmed for r in rows)
    columns = ("trial", "state", "OOF errors", "OOF", *names, *(("confirmed", "confirmed OOF") if confirmed else ()),
               "run", "wall")  # fmt: skip
    fidelity = ", ".join(f"{k} {v}" for k, v in (("folds", d.folds), ("epochs", d.epochs), ("limit", d.limit)) if v)
    table = new_table(f"study {result.name} ({fidelity or 'the recipe as it is'}; pruning: {d.prune})", columns,
                      right=("trial", "OOF errors", "OOF", "confirmed", "confirmed OOF", "wall", *names))  # fmt: skip
    for r in sorted(rows, key=lambda r: r.number):
        state = f"pruned at {r.pruned_at}" if r.state == "pruned" and r.pruned_at else r.state
        state += " (the recipe as it is)" if r.baseline else ""
        values = [f"{v:.4g}" if isinstance(v, float) else str(v) for v in (r.params.get(n, "") for n in names)]
        extra = ()
        if confirmed:
            c = r.confirmed or {}
            extra = (_errors(c.get("errors"), c.get("rows")) if c else "", pct(c.get("accuracy")) if c else "")
        mark = "bold" if result.best is not None and r.number == result.best.number else ""
        table.add_row(Text(str(r.number), mark), state, _errors(r.errors, r.rows), pct(r.accuracy), *values, *extra,
                      r.run_id, _minutes(r.seconds))  # fmt: skip
    out.print(table)
    if result.stopped:
        out.print(f"Stopped starting trials: {result.stopped}.")
    if result.page is not None:
        out.print(f"study page: {result.page}", highlight=False)
    if result.best is None:
        out.print(f"No complete trial yet; `kit tune --study {result.name}` runs more.")
        return
    out.print(f"best recipe ({result.folder / 'best.toml'}; `kit train --recipe FILE` trains it):", highlight=False)
    out.print(result.best_recipe.rstrip(), highlight=False, soft_wrap=True)
    if not result.best.confirmed:
        out.print(f"Low-fidelity winners are biased toward their own noise: `kit tune --study {result.name} "
                  "--confirm 2 --folds 5` trains the best two again at full fidelity with fresh seeds.",
                  highlight=False)  # fmt: skip
