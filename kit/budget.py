"""Wall-clock budgets (`kit train --time 30m`, `kit tune --time 3h`): a duration as people write one, whether the
next piece of work still fits, and the epochs that fit a run into its budget at this device's pace (recalled from a
run like it, or measured)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from kit import paths, runs
from kit.config import EPOCH_VALIDATION_ROWS
from kit.errors import KitError, UsageError
from kit.progress import TRAIN_COST, Progress, clock

WEEK = 7 * 24 * 3600
_PART = re.compile(r"(\d+(?:\.\d+)?)([hms])")
_SECONDS = {"h": 3600, "m": 60, "s": 1}


def parse_duration(text: str, option: str = "--time") -> float:
    """Seconds in a duration written `90s`, `30m`, `3h`, `1h30m` or `2.5h` (a bare number: minutes); a UsageError
    naming `option` for anything else, or for no time at all."""
    written = str(text).strip().lower().replace(" ", "")
    try:
        seconds = float(written) * 60 if written and _PART.sub("", written) == written else None
    except ValueError:
        seconds = None
    if seconds is None:
        parts = _PART.findall(written)
        if not parts or _PART.sub("", written):
            raise UsageError(f"{option} {text!r}: write a duration such as 90s, 30m, 3h or 1h30m.")
        seconds = sum(float(n) * _SECONDS[unit] for n, unit in parts)
    if not seconds > 0 or seconds != seconds or seconds > WEEK:
        raise UsageError(f"{option} {text!r}: must be more than nothing and at most a week.")
    return seconds


def fits(elapsed: float, expected: float | None, budget: float | None) -> bool:
    """Whether work expected to take `expected` seconds (None: not known yet) still ends inside `budget` (None: no
    budget) after `elapsed`."""
    return budget is None or elapsed + (expected or 0.0) <= budget


OVERRUN = 1.2  # a run past this x its budget stops at its next epoch boundary (resumable)


class Overran(Exception):
    """Raised from a run's progress hook: it passed OVERRUN x its budget (the message says so)."""


PROBE_ROWS = 4096  # images a measured pace trains on (after a warm-up batch): a few seconds of kitnet on 2 CPU cores


STARTUP_S = 15.0  # a measured pace's guess of a member's fixed cost (its process, its model, the first trace)


@dataclass(frozen=True)
class Pace:
    """How fast this device trains this recipe: images a second, the members training at once together (predicted
    image-views count 1 / TRAIN_COST each), a member's fixed cost in seconds, and where the figures come from ("run ID"
    or "measured")."""

    images_per_s: float
    startup_s: float
    source: str


@dataclass(frozen=True)
class Plan:
    """Epochs per member chosen to fit a budget, and the run's expected wall time with them."""

    epochs: int
    was: int
    seconds: float
    pace: Pace


def run_seconds(pace: Pace, members: int, at_once: int, train_rows: int, views: int, epochs: int,
                epoch_views: int = 0) -> float:  # fmt: skip
    """A run's expected wall time: its members in rounds of `at_once`, each sharing the device's pace, each paying
    its fixed cost; a member trains `train_rows` an epoch and predicts `epoch_views` (its epoch's validation pass),
    then `views` once trained."""
    at_once = max(1, min(at_once, members))
    rounds = -(-members // at_once)
    member = (train_rows * epochs + (views + epoch_views * epochs) / TRAIN_COST) * at_once / pace.images_per_s
    return rounds * (pace.startup_s + member)


def fit(budget: float, pace: Pace, members: int, at_once: int, train_rows: int, views: int, epochs: int,
        text: str, epoch_views: int = 0) -> Plan:  # fmt: skip
    """The most epochs (at most the recipe's `epochs`) whose run fits `budget` seconds at `pace` (run_seconds); a
    UsageError when not even one does."""
    fixed = run_seconds(pace, members, at_once, train_rows, views, 0, epoch_views)
    per_epoch = run_seconds(pace, members, at_once, train_rows, views, 1, epoch_views) - fixed
    fitting = int((budget - fixed) // per_epoch) if per_epoch > 0 else epochs
    if fitting < 1:
        raise UsageError(f"--time {text}: one epoch of this run takes about {clock(fixed + per_epoch)} here (at "
                         f"{pace.images_per_s:,.0f} img/s); give more time, fewer folds or --limit.")  # fmt: skip
    chosen = min(epochs, fitting)
    return Plan(chosen, epochs, run_seconds(pace, members, at_once, train_rows, views, chosen, epoch_views), pace)


def recall(device: str, model: str, batch_size: int) -> Pace | None:
    """The pace of the newest finished run on this device with this model and batch size, from its members' own
    figures: the device's images a second (its slowest member's training rate times the members its wall time saw at
    once: members that share a device unevenly end when the slowest does) and
    a member's fixed cost (its time beyond its epochs, validation passes and predictions, plus its wait to start after
    the run was made: a worker's own start); None when there is none."""
    for run in reversed(runs.all_runs()):
        try:
            saved, metrics = runs.load_config(run), runs.load_metrics(run) or {}
            recipe = saved.get("recipe") or {}
            if (saved.get("device") != device or recipe.get("model") != model or recipe.get("families")
                    or recipe.get("batch_size") != batch_size or not metrics.get("wall_seconds")):  # fmt: skip
                continue
            test_rows = int((saved.get("data") or {}).get("test_rows", 0)) if runs.predicts_test(saved) else 0
            made = paths.utc_seconds(str(saved.get("created_utc", ""))) or 0.0
            rates, startups, busy = [], [], 0.0
            for member in runs.member_dirs(run):
                m = runs.load_metrics(member) or {}
                views = int(m.get("tta_views", 1))
                rate = float(m["images_per_s"])  # training alone (a median epoch's)
                predicted = m["val_rows"] * (1 + (views if views > 1 else 0)) + views * test_rows
                validated = min(EPOCH_VALIDATION_ROWS, m["val_rows"]) * m["epochs"]
                spent = (m["train_rows"] * m["epochs"] + (predicted + validated) / TRAIN_COST) / rate
                waited = max(0.0, float(m["started_at"]) - made) if made else 0.0
                rates.append(rate)
                startups.append(max(0.0, m["seconds"] - spent) + waited)
                busy += m["seconds"]
            if rates:
                at_once = max(1.0, busy / float(metrics["wall_seconds"]))
                return Pace(min(rates) * at_once, _median(startups), f"run {run.name}")  # the slowest sets the wall
        except (KitError, KeyError, TypeError, ValueError, OSError, ZeroDivisionError, IndexError):
            continue
    return None


def guard(
    seconds: float, text: str, start: float, clock: Callable[[], float] = time.monotonic
) -> Callable[[Progress], None]:
    """A progress hook that stops the run (Overran) at the first epoch it ends past OVERRUN x `seconds` after `start`
    (on `clock`)."""

    def check(event: Progress) -> None:
        if event.started and event.epoch and not event.predicting and clock() - start > OVERRUN * seconds:
            raise Overran(f"{OVERRUN}x its {text} budget")

    return check


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]
