"""`kit tune`: the space at the door, the pruning rule, the study's bookkeeping across processes (with a fake trainer:
no training), and tiny real studies through the CLI: trials as runs, two processes on one study, a killed process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from kit import budget, config, runs, tuning
from kit.errors import UsageError
from kit.progress import Progress
from tests.conftest import ROOT, kit_here

optuna = pytest.importorskip("optuna")


# ---------------------------------------------------------------------------------------------------- the space


def test_space_forms_take_the_fields_own_kinds():
    dims = tuning.parse_space(
        ["rotation=0:20", "learning_rate=1e-4:1e-2:log", "batch_size=128|256|512", "epochs=5:10", "tta=true|false"],
        config.recipe(),
    )
    kinds = {d.name: (d.kind, d.low, d.high, d.log, d.choices) for d in dims}
    assert kinds == {
        "rotation": ("float", 0.0, 20.0, False, ()),
        "learning_rate": ("float", 1e-4, 1e-2, True, ()),
        "batch_size": ("choice", None, None, False, (128, 256, 512)),
        "epochs": ("int", 5, 10, False, ()),
        "tta": ("choice", None, None, False, (True, False)),
    }
    texts = ["rotation=0.0:20.0", "learning_rate=0.0001:0.01:log", "batch_size=128|256|512"]
    assert [d.text for d in dims][:3] == texts
    [family] = tuning.parse_space(["deotte.dropout=0.2:0.5"], config.recipe("leaderboard"))
    assert (family.name, family.kind) == ("deotte.dropout", "float")


@pytest.mark.parametrize(
    "item, said",
    [
        ("rotation", "write FIELD=LOW:HIGH"),
        ("colour=0:1", "no tunable recipe field 'colour'"),
        ("folds=2:5", "no tunable recipe field 'folds'"),
        ("rotation=0:200", "rotation 200.0: must be in [0, 180] degrees"),
        ("rotation=10:5", "an empty range"),
        ("learning_rate=0:0.1:log", "must be in (0, 1)"),
        ("dropout=0.0:0.5:log", "a log range must start above 0"),
        ("augment=0:1", "give choices (A|B), not a range"),
        ("batch_size=128", "a fixed value goes in --set"),
        ("batch_size=128|x", "batch_size takes a whole number, not 'x'"),
        ("batch_size=128|128", "two or more different values"),
        ("kitnet.rotation=0:5", "no family 'kitnet'"),
    ],
)
def test_a_bad_space_is_one_line_naming_it(item, said):
    with pytest.raises(UsageError) as caught:
        tuning.parse_space([item], config.recipe())
    message = str(caught.value)
    assert message.startswith(f"--space {item}: ") and said in message and "\n" not in message


def test_a_bad_space_budget_or_name_exits_2_and_writes_nothing(env):
    cases = [
        (["--space", "rotation=0:200"], "must be in [0, 180]"),
        (["--space", "rotation=0:20", "--time", "soon"], "--time 'soon': write a duration"),
        (["--space", "rotation=0:20", "--study", "no/slash"], "--study 'no/slash'"),
        (["--space", "rotation=0:20", "--study", "recipes"], "--study recipes: that folder of runs/studies/ keeps"),
        (["--space", "rotation=0:20", "--trials", "0"], "--trials 0"),
        (["--space", "rotation=0:20", "--prune", "mean"], "--prune mean"),
        (["--space", "epochs=3:9"], "add --prune wilcoxon or --prune none"),
        (["--folds", "2"], "--folds shape a new study: give its --space too"),
        (["--study", "nothing-here", "--show"], "No study 'nothing-here'"),
        (["--show"], "--show needs --study NAME"),
    ]
    for args, said in cases:
        done = kit_here(["tune", *args], env)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert said in done.stderr and done.stderr.count("\n") == 1, (args, done.stderr)
    runs_dir = Path(env["KIT_RUNS_DIR"])
    assert not runs_dir.exists() or [p for p in runs_dir.rglob("*") if p.is_file()] == []


def test_space_file_reads_its_space_table(tmp_path):
    path = tmp_path / "space.toml"
    path.write_text('[space]\nrotation = "0:20"\nbatch_size = [128, 256]\n')
    assert tuning.space_file(path) == ["rotation=0:20", "batch_size=128|256"]
    path.write_text('rotation = "0:20"\n')
    with pytest.raises(UsageError, match=r"has no \[space\] table"):
        tuning.space_file(path)


def test_durations():
    assert [budget.parse_duration(t) for t in ("90s", "30m", "3h", "1h30m", "2.5h", "45")] == [
        90, 1800, 10800, 5400, 9000, 2700,
    ]  # fmt: skip
    for bad in ("soon", "0m", "1h30x", "", "-5m"):
        with pytest.raises(UsageError):
            budget.parse_duration(bad)
    assert budget.fits(100, 50, 200) and not budget.fits(160, 50, 200) and budget.fits(1e9, 1, None)


# -------------------------------------------------------------------------------------------------- pruning


def _epochs(hook, members: int, epochs: int, accuracy) -> None:
    """Members training at once, epoch by epoch, as worker processes report them."""
    for m in range(members):
        hook(Progress(m, members, 0, epochs, started=False))
        hook(Progress(m, members, 0, epochs))
    for e in range(1, epochs + 1):
        for m in range(members):
            hook(Progress(m, members, e, epochs, logs={"val_accuracy": accuracy(m, e)}))


def test_median_pruning_stops_a_clearly_bad_trial_at_the_first_epoch_the_rule_allows():
    epochs = 9  # the rule: after PRUNE_STARTUP finished trials, from epoch epochs // 3 = 3 on
    study = optuna.create_study(direction="maximize", pruner=tuning._pruner(optuna, "median", epochs))
    for t in range(tuning.PRUNE_STARTUP):
        trial = study.ask()
        _epochs(tuning.Reports(trial, "median"), 3, epochs, lambda m, e, t=t: 0.90 + 0.01 * e + 0.001 * t)
        study.tell(trial, 0.99)
        mean = study.trials[trial.number].intermediate_values[1]  # the members' mean at epoch 1
        assert mean == pytest.approx(0.91 + 0.001 * t)
    bad = study.ask()
    with pytest.raises(tuning.Pruned) as caught:
        _epochs(tuning.Reports(bad, "median"), 3, epochs, lambda m, e: 0.5)
    assert caught.value.where == "epoch 3"
    good = study.ask()
    _epochs(tuning.Reports(good, "median"), 3, epochs, lambda m, e: 0.95 + 0.01 * e)  # above the median: kept
    assert max(study.trials[good.number].intermediate_values) == epochs


def test_median_reports_an_epoch_once_every_started_member_reached_it():
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    hook = tuning.Reports(trial, "median")
    hook(Progress(0, 2, 0, 4))
    hook(Progress(1, 2, 0, 4))
    hook(Progress(0, 2, 1, 4, logs={"val_accuracy": 0.8}))
    hook(Progress(0, 2, 2, 4, logs={"val_accuracy": 0.9}))
    assert study.trials[0].intermediate_values == {}  # member 1 has not reached epoch 1
    hook(Progress(1, 2, 1, 4, logs={"val_accuracy": 0.6}))
    assert study.trials[0].intermediate_values == {1: pytest.approx(0.7)}


def test_wilcoxon_pruning_compares_finished_folds_with_the_best_trial():
    study = optuna.create_study(direction="maximize", pruner=tuning._pruner(optuna, "wilcoxon", 2))
    best = study.ask()
    hook = tuning.Reports(best, "wilcoxon")
    for m in range(5):
        hook(Progress(m, 5, 0, 2))
        hook(Progress(m, 5, 2, 2, logs={"val_accuracy": 0.99 - 0.001 * m}))
    study.tell(best, 0.99)
    assert study.trials[0].intermediate_values == {m: pytest.approx(0.99 - 0.001 * m) for m in range(5)}
    bad = study.ask()
    hook = tuning.Reports(bad, "wilcoxon")
    with pytest.raises(tuning.Pruned) as caught:
        for m in range(5):
            hook(Progress(m, 5, 0, 2))
            hook(Progress(m, 5, 2, 2, logs={"val_accuracy": 0.5}))
    assert caught.value.where == "fold 4"  # a one-sided signed-rank test of 3 pairs cannot reach p < 0.1; 4 can


# ------------------------------------------------------------------------------- the study, with a fake trainer


def _definition(**changes) -> tuning.Definition:
    base = dict(space=("rotation=0.0:20.0",), model=None, recipe="", sets=(), folds=2, epochs=3, limit=None,
                prune="none", predict=False)  # fmt: skip
    return tuning.Definition(**{**base, **changes})


class FakeTrainer:
    """Trains nothing: makes the trial's run folder as kit train would (tagged), reports epochs, scores rotation."""

    def __init__(self, stop_at: int | None = None) -> None:
        self.calls: list[tuple[str, dict]] = []
        self.stop_at = stop_at

    def __call__(self, d, values, run_id, tags, on_event):
        self.calls.append((run_id, dict(values)))
        if not (runs.runs_dir() / run_id / "config.json").is_file():
            runs.write_config(runs.create(run_id, reuse=True), "train", tags=tags)
        if self.stop_at == len(self.calls) - 1:
            raise KeyboardInterrupt
        _epochs(on_event, 2, d.epochs, lambda m, e: 0.9)
        accuracy = 1 - values["rotation"] / 100
        return accuracy, runs.errors_of(accuracy, 1000), 1000


def test_a_study_runs_its_trials_as_runs_and_a_ctrl_c_trial_resumes_its_run(env):
    interrupted = FakeTrainer(stop_at=1)
    with pytest.raises(KeyboardInterrupt):
        tuning.run_study("fake", _definition(), trials=3, train=interrupted)
    assert [c[0] for c in interrupted.calls] == ["fake-t000", "fake-t001"]
    assert interrupted.calls[0][1] == {"rotation": config.recipe().rotation}  # trial 0: the recipe as it is
    again = FakeTrainer()
    result = tuning.run_study("fake", None, trials=3, train=again)  # continued by name alone
    assert again.calls[0] == interrupted.calls[1]  # the interrupted trial's values, on its own run
    states = {r.number: r.state for r in result.trials}
    assert states == {0: "complete", 1: "interrupted, resumed as #2", 2: "complete", 3: "complete"}
    assert [r.run_id for r in result.trials] == ["fake-t000", "fake-t001", "fake-t001", "fake-t003"]
    assert [r.baseline for r in result.trials] == [True, False, False, False]
    best = max((r for r in result.trials if r.accuracy is not None), key=lambda r: r.accuracy)
    assert result.best.number == best.number and result.best.errors == runs.errors_of(best.accuracy, 1000)
    assert (result.folder / "best.toml").read_text() == result.best_recipe
    assert config.from_file(result.folder / "best.toml").rotation == pytest.approx(best.params["rotation"])
    with pytest.raises(UsageError, match="was made with other options"):
        tuning.run_study("fake", _definition(folds=3), trials=3, train=again)


def test_a_trial_left_running_by_a_dead_process_is_failed_and_its_run_resumed(env):
    study, _ = tuning.open_study("ghost", _definition(), None)
    alive, gone = tuning.start_worker("ghost"), tuning.start_worker("ghost")
    for worker in (alive, gone):
        trial = study.ask({"rotation": optuna.distributions.FloatDistribution(0, 20)})
        trial.set_user_attr("worker", worker.id)
        trial.set_user_attr("run", tuning.trial_run_id("ghost", trial.number))
    gone.lock.release()  # as the operating system releases a killed process's lock (its mark stays)
    assert tuning.settle_dead(study, "ghost") == [1]
    states = [t.state.name for t in study.get_trials()]
    assert states == ["RUNNING", "FAIL", "WAITING"]  # the live one untouched; the dead one's values queued again
    assert study.get_trials()[2].user_attrs == {"resume": "ghost-t001"}
    assert tuning.settle_dead(study, "ghost") == []  # settled once
    assert sorted(p.suffix for p in (tuning.study_dir("ghost") / "workers").iterdir()) == [".lock", ".pid", ".worker"]
    alive.release()
    assert list((tuning.study_dir("ghost") / "workers").iterdir()) == []


def test_the_time_budget_starts_no_trial_the_median_says_would_not_fit(env):
    now = [0.0]

    def slow(d, values, run_id, tags, on_event):
        now[0] += 400
        return 0.9, 100, 1000

    result = tuning.run_study("budget", _definition(), trials=10, train=slow, seconds=1000, clock=lambda: now[0])
    assert sum(r.state == "complete" for r in result.trials) == 2  # a third would end at 1,200 s
    assert [r.seconds for r in result.trials] == [400, 400]
    assert result.stopped == "the next trial (about 6:40) would not fit in --time's 16:40"


# -------------------------------------------------------------------------------------- real studies, tiny


@pytest.mark.slow
def test_kit_tune_trials_are_runs_that_list_report_show_and_train_again(env, tmp_path):
    from kit import data

    data.install_sample(Path(env["KIT_DATA_DIR"]))
    tune = ["tune", "--study", "tiny", "--space", "rotation=0:20", "--space", "dropout=0.1:0.4", "--folds", "2",
            "--epochs", "1", "--limit", "1000", "--trials", "3", "--jobs", "1"]  # fmt: skip
    done = kit_here(tune, env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Study tiny: up to 3 finished trials over rotation=0.0:20.0, dropout=0.1:0.4" in done.stdout
    listed = kit_here(["runs", "--csv"], env)
    rows = {r.split(",")[0]: r for r in listed.stdout.splitlines()[1:]}
    assert set(rows) == {"tiny-t000", "tiny-t001", "tiny-t002"}, listed.stdout
    assert all(row.endswith(f",tiny #{int(run[-3:])}") for run, row in rows.items())
    assert kit_here(["report", "tiny-t001"], env).returncode == 0
    shown = kit_here(["tune", "--study", "tiny", "--show"], env)
    assert shown.returncode == 0 and "study tiny (folds 2, epochs 1, limit 1000; pruning: median)" in shown.stdout
    assert shown.stdout.count("complete") == 3 and "best recipe (" in shown.stdout
    page = Path(env["KIT_RUNS_DIR"]) / "studies" / "tiny" / "index.html"
    assert f"study page: {page}" in shown.stdout and "<h1>study tiny</h1>" in page.read_text()
    assert "Optimization history" in page.read_text() and "Per-epoch values" in page.read_text()
    best_file = Path(env["KIT_RUNS_DIR"]) / "studies" / "tiny" / "best.toml"
    again = kit_here(["train", "--recipe", str(best_file), "--limit", "1000", "--no-predict", "--run-id", "again",
                      "--jobs", "1"], env)  # fmt: skip
    assert again.returncode == 0, again.stdout + again.stderr
    best = tuning.summary("tiny").best
    trained = json.loads((Path(env["KIT_RUNS_DIR"]) / "again" / "config.json").read_text())["recipe"]
    assert trained["rotation"] == best.params["rotation"] and trained["dropout"] == best.params["dropout"]
    import kit

    result = kit.tune("tiny", trials=4, jobs=1, show=False)  # from Python: the study continued by name, one trial more
    assert sum(r.state == "complete" for r in result.trials) == 4 and result.best_recipe.startswith("# the recipe of")
    assert kit.study("tiny").best.number == result.best.number
    confirmed = kit_here(["tune", "--study", "tiny", "--confirm", "1", "--folds", "2", "--epochs", "1"], env)
    assert confirmed.returncode == 0, confirmed.stdout + confirmed.stderr
    best = tuning.summary("tiny").best
    run = Path(env["KIT_RUNS_DIR"]) / f"tiny-confirm-t{best.number:03d}"
    recipe = json.loads((run / "config.json").read_text())["recipe"]
    assert recipe["seed"] == 42 + tuning.CONFIRM_SEED + best.number and recipe["rotation"] == best.params["rotation"]
    assert best.confirmed["run"] == run.name and best.confirmed["rows"] == 1297  # the sample's every row, not 1,000
    assert (Path(env["KIT_SUBMISSIONS_DIR"]) / f"{run.name}.csv").is_file()  # with its test prediction
    assert "confirmed OOF" in confirmed.stdout


def _tune_process(env: dict, study: str, trials: int, epochs: int = 1) -> subprocess.Popen:
    args = ["tune", "--study", study, "--space", "rotation=0:20", "--folds", "2", "--epochs", str(epochs),
            "--limit", "600", "--trials", str(trials), "--jobs", "1", "--model", "seed"]  # fmt: skip
    return subprocess.Popen([sys.executable, "-m", "kit", *args], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip


@pytest.mark.slow
def test_two_processes_share_a_study_and_a_killed_one_is_continued(env):
    from kit import data

    data.install_sample(Path(env["KIT_DATA_DIR"]))
    first, second = _tune_process(env, "pair", 4), _tune_process(env, "pair", 4)
    outputs = [p.communicate(timeout=600)[0] for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, outputs
    result = tuning.summary("pair")
    finished = [r for r in result.trials if r.state == "complete"]
    assert len(finished) >= 4 and len({r.number for r in result.trials}) == len(result.trials)
    assert len({r.run_id for r in finished}) == len(finished)  # one run per trial
    assert all(runs.member_done(runs.runs_dir() / r.run_id, 1) for r in finished)

    killed = _tune_process(env, "killed", 2, epochs=30)
    for line in killed.stdout:  # its first epoch is trained: the trial is under way
        if "epoch 1/30" in line:
            break
    os.kill(killed.pid, signal.SIGKILL)
    killed.communicate(timeout=60)
    assert tuning.summary("killed").trials[0].state == "interrupted"
    again = _tune_process(env, "killed", 2, epochs=30)
    output = again.communicate(timeout=600)[0]
    assert again.returncode == 0, output
    result = tuning.summary("killed")
    assert not [r for r in result.trials if r.state in ("running", "interrupted")]
    assert sum(r.state == "complete" for r in result.trials) == 2
    assert result.trials[0].state == "interrupted, resumed as #1" and result.trials[1].run_id == "killed-t000"
