"""`kit train --time`: the epochs that fit a budget (the arithmetic, with a given pace), the pace recalled from a run
like it, the overrun guard on an injected clock, and a tiny real run that chooses, prints and records its epochs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from kit import budget, files, runs
from kit.errors import UsageError
from kit.progress import TRAIN_COST, Progress
from tests.conftest import kit_here


def test_the_epochs_chosen_are_the_most_that_fit():
    pace = budget.Pace(images_per_s=1000.0, startup_s=10.0, source="measured")
    # 5 members, 3 at once: 2 rounds; a member's epoch is 3,000 rows x 3 sharing the device: 9 s
    plan = budget.fit(300, pace, members=5, at_once=3, train_rows=3000, views=3700, epochs=44, text="5m")
    fixed = 2 * (10 + 3700 / TRAIN_COST * 3 / 1000)
    assert plan.epochs == int((300 - fixed) // 18) == 15 and plan.was == 44
    assert plan.seconds == pytest.approx(fixed + 15 * 18) and plan.seconds <= 300
    assert budget.run_seconds(pace, 5, 3, 3000, 3700, 16) > 300  # one more would not fit
    roomy = budget.fit(10_000, pace, 5, 3, 3000, 3700, 44, "3h")
    assert roomy.epochs == 44  # a budget never lengthens the recipe
    with pytest.raises(UsageError, match=r"^--time 20s: one epoch of this run takes about 0:4\d here"):
        budget.fit(20, pace, 5, 3, 3000, 3700, 44, "20s")


def test_the_pace_is_recalled_from_the_newest_run_like_it(env):
    from kit import paths

    def run(name: str, device: str, batch: int, wall: float) -> None:
        folder = runs.create(name, reuse=True)
        made = f"2026-12-07T10:00:0{len(name)}Z"
        runs.write_config(folder, "train", created_utc=made, recipe={"model": "kitnet", "batch_size": batch},
                          device=device, predict=False, data={"train_rows": 400, "test_rows": 100})  # fmt: skip
        for k in range(2):  # 2 epochs of 300 rows at 100 img/s, 2 validation passes and the OOF rows (300 views), 3 s
            start = paths.utc_seconds(made) + 1.0
            member = {"fold": k, "train_rows": 300, "epochs": 2, "val_rows": 100, "tta_views": 1,
                      "images_per_s": 100.0, "seconds": SECONDS, "started_at": start}  # fmt: skip
            files.write_json(folder / f"fold{k}" / "metrics.json", member)
        files.write_json(folder / "metrics.json", {"cv_accuracy": 0.9, "wall_seconds": wall})

    SECONDS = (600 + 300 / TRAIN_COST) / 100 + 3.0
    run("a", "CPU (x)", 256, SECONDS)  # both members at once
    run("bb", "CPU (x)", 128, 5.0)  # another batch size
    run("ccc", "GPU (y)", 256, 5.0)  # another device
    pace = budget.recall("CPU (x)", "kitnet", 256)
    assert pace is not None and pace.source == "run a"
    # 100 img/s a member, two at once; a member's fixed cost: 3 s of its own and 1 s waiting to start
    assert pace.images_per_s == pytest.approx(200.0) and pace.startup_s == pytest.approx(4.0)
    assert budget.recall("CPU (x)", "deotte", 256) is None


def test_the_guard_stops_at_the_first_epoch_past_the_overrun():
    now = [0.0]
    check = budget.guard(100, "100s", start=0.0, clock=lambda: now[0])
    now[0] = 119.0
    check(Progress(0, 2, 5, 10))
    now[0] = 121.0
    check(Progress(0, 2, 0, 10, started=False))  # not an epoch's end
    with pytest.raises(budget.Overran, match=r"1.2x its 100s budget"):
        check(Progress(1, 2, 6, 10))


@pytest.mark.parametrize(
    "args, said",
    [
        (["--time", "30m", "--epochs", "5"], "give one of --time and --epochs"),
        (["--time", "30m", "--model", "leaderboard"], "--time fits a one-family run"),
        (["--time", "later"], "--time 'later': write a duration"),
    ],
)
def test_time_refusals_are_one_line(env, args, said):
    done = kit_here(["train", *args], env)
    assert done.returncode == 2 and said in done.stderr and done.stderr.count("\n") == 1, done.stderr


@pytest.mark.slow
def test_a_timed_run_chooses_prints_and_records_its_epochs(env):
    from kit import data

    data.install_sample(Path(env["KIT_DATA_DIR"]))
    timed = ["train", "--model", "seed", "--limit", "300", "--time", "30s", "--no-predict", "--run-id"]
    done = kit_here([*timed, "timed"], env)
    assert done.returncode == 0, done.stdout + done.stderr
    said = re.search(r"^--time 30s: (?:24 -> (\d+) epochs per member to fit|the recipe's (24) epochs per member fit) "
                     r"\(about \d+:\d\d at [\d,]+ img/s, measured now\)", done.stdout, re.M)  # fmt: skip
    assert said, done.stdout  # cut on a slow machine, whole on a fast one; no run like it to recall here
    chosen = json.loads((Path(env["KIT_RUNS_DIR"]) / "timed" / "config.json").read_text())["recipe"]["epochs"]
    assert chosen == int(said.group(1) or said.group(2))
    again = kit_here([*timed, "timed2"], env)
    assert again.returncode == 0 and "as run timed trained" in again.stdout, again.stdout
