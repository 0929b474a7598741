"""`kit runs`: every run, newest first, incomplete, derived and damaged ones included, with its best public score;
the leaderboard log's order and LB - CV gap."""

from __future__ import annotations

import csv
import io
import json

import pytest

from kit import files, ledger, paths, run_table, runs
from tests.conftest import kit_here, log_row, run_kit


def _run(name: str, created: str, config: dict, metrics: dict | None = None, done: int = 0) -> None:
    folder = paths.runs_dir() / name
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"created_utc": created, **config}))
    if metrics is not None:
        (folder / "metrics.json").write_text(json.dumps(metrics))
    for member in range(done):
        (folder / f"fold{member}").mkdir()
        (folder / f"fold{member}" / "metrics.json").write_text(
            json.dumps({"fold": member, "accuracy": 0.99, "val_rows": 1, "images_per_s": 1.0, "seconds": 1.0})
        )


def _world() -> None:
    recipe = {"model": "kitnet", "folds": 5, "repeats": 3, "epochs": 44}
    _run("big", "2026-01-03T00:00:00Z", {"kind": "train", "recipe": recipe},
         {"cv_accuracy": 0.9968, "train_seconds": 1800.0}, done=15)  # fmt: skip
    _run("half", "2026-01-04T00:00:00Z", {"kind": "train", "recipe": {**recipe, "repeats": 1}}, done=3)
    _run("big-tta", "2026-01-05T00:00:00Z", {"kind": "predict", "source": "big", "views": [[0, 0, 0]] * 7},
         {"cv_accuracy": 0.997})  # fmt: skip
    _run("mix", "2026-01-06T00:00:00Z", {"kind": "blend", "inputs": ["big", "big-tta"]}, {"cv_accuracy": None})
    _run("old", "2026-01-01T00:00:00Z", {"kind": "train", "recipe": {"model": "seed", "folds": 1, "epochs": 24}},
         {"cv_accuracy": 0.989, "train_seconds": 232.0}, done=1)  # fmt: skip
    (paths.runs_dir() / "torn").mkdir()
    (paths.runs_dir() / "torn" / "config.json").write_text('{"kind": "tr')
    log_row(run_id="big", cv_accuracy="0.99680", status="complete", public_score="0.99700")
    log_row(run_id="big", cv_accuracy="0.99680", status="complete", public_score="0.99750")
    log_row(run_id="old", cv_accuracy="0.98900", status="pending")


def test_summaries_list_every_run_newest_first(env):
    _world()
    rows = run_table.summaries(ledger.best_scores())
    assert [r["id"] for r in rows] == ["mix", "big-tta", "half", "big", "old", "torn"]
    by_id = {r["id"]: r for r in rows}
    assert by_id["big"]["members"] == "5 x 3" and by_id["big"]["public_score"] == "0.99750"
    assert by_id["half"]["members"] == "3/5 folds" and by_id["half"]["cv"] is None
    assert by_id["big-tta"]["kind"] == "predict" and by_id["big-tta"]["model"] == "big (7 views)"
    assert by_id["mix"]["model"] == "big + big-tta" and by_id["torn"]["kind"] == "damaged"
    assert by_id["old"]["public_score"] == ""  # pending: no score yet


def test_kit_runs_table_and_csv(env):
    _world()
    table = kit_here(["runs"], env)
    assert table.returncode == 0, table.stderr
    for needle in ("3/5 folds", "5 x 3", "99.680 %", "~30:00", "99.750 %", "damaged", "big + big-tta"):
        assert needle in table.stdout, needle
    best = kit_here(["runs", "--sort", "cv", "--last", "2"], env).stdout
    assert best.index("big-tta") < best.index("big ") and "│ old " not in best and "│ mix " not in best
    bad = kit_here(["runs", "--sort", "speed"], env)
    assert bad.returncode == 2 and "--sort 'speed': choose one of created, cv, lb, wall" in bad.stderr
    as_csv = kit_here(["runs", "--csv"], env)
    parsed = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert [r["id"] for r in parsed][:2] == ["mix", "big-tta"] and parsed[3]["members"] == "5 x 3"
    empty = kit_here(["runs"], {**env, "KIT_RUNS_DIR": env["KIT_RUNS_DIR"] + "-none"})
    assert empty.returncode == 0 and "No runs in" in empty.stdout


def test_leaderboard_table_orders_by_public_score_and_shows_the_gap(env):
    log_row(run_id="a", cv_accuracy="0.99000", status="complete", public_score="0.99100")
    log_row(run_id="b", cv_accuracy="0.99500", status="pending")
    log_row(run_id="c", cv_accuracy="", status="complete", public_score="0.99300")
    rows = ledger.table()
    assert [r["run_id"] for r in rows] == ["c", "a", "b"]
    assert [r["gap"] for r in rows] == ["", "+0.00100", ""]
    assert ledger.best_scores() == {"c": "0.99300", "a": "0.99100"}


def test_a_resumed_runs_saved_recipe_and_blend_weights(env):
    from kit import config, ensemble
    from kit.errors import RunError, UsageError

    assert runs.saved_recipe(None) is None and runs.saved_recipe("not-there") is None
    run = paths.runs_dir() / "r1"
    run.mkdir(parents=True)
    files.write_json(run / "config.json", {"kind": "train", "recipe": config.recipe("seed").to_dict()})
    assert config.from_dict(runs.saved_recipe("r1")) == config.recipe("seed")
    with pytest.raises(RunError, match="not a valid run id"):
        runs.saved_recipe("../elsewhere")
    with pytest.raises(RunError, match="No run 'r2' in .*; `kit runs` lists the runs"):
        runs.resolve("r2")
    assert ensemble.parse_weights("2,1,0.5") == [2.0, 1.0, 0.5] and ensemble.parse_weights(None) is None
    with pytest.raises(UsageError, match="--weights must be comma-separated numbers, not '2,x'"):
        ensemble.parse_weights("2,x")


def test_a_submission_needs_the_installed_test_sets_rows(env, tmp_path):
    from kit import data, submission

    assert submission.expected_rows(tmp_path / "nothing-here") == submission.REAL_TEST_ROWS
    x, y, test_x, _ = data.sample_arrays(test_size=30)
    data.write_csvs(tmp_path / "csvs", x, y, test_x)
    data.install_folder(tmp_path / "csvs", tmp_path / "d", "test")
    assert submission.expected_rows(tmp_path / "d") == 30


@pytest.mark.parametrize("name", ["r1\n", "r1\n\n", "", "-r", "a/b", "x" * 101])
def test_a_run_id_is_matched_whole(name):
    from kit import paths, runs
    from kit.errors import RunError

    assert not paths.is_run_id(name)
    with pytest.raises(RunError, match="is not a valid run id"):
        runs.check_id(name)


def test_a_runs_members_are_listed_in_member_order(tmp_path):
    """fold2 before fold10: the report's learning curves and members table, and a Kaggle run's result, read this."""
    from kit import runs

    for m in [10, 2, 11, 0, 1, 3, 4, 5, 6, 7, 8, 9]:
        (tmp_path / f"fold{m}").mkdir()
        (tmp_path / f"fold{m}" / "metrics.json").write_text("{}")
    (tmp_path / "fold12").mkdir()  # no metrics.json: not complete
    (tmp_path / "folds.npy").write_bytes(b"")  # not a member
    assert [p.name for p in runs.member_dirs(tmp_path)] == [f"fold{m}" for m in range(12)]
    assert runs.member_dirs(tmp_path, "history.json") == []


def test_tables_off_a_terminal_cut_no_id_date_or_number(env):
    """`kit runs | cat`, a log, a notebook's `!kit leaderboard`: no terminal, no COLUMNS (rich would squeeze to 80
    columns and cut `20261…`); a run's rows and wall time are there to compare runs by."""
    long_id = "20261207-191234-kitnet-rotation15-labelsmoothing01-dropout03"
    recipe = {"model": "kitnet", "folds": 5, "repeats": 1, "epochs": 30}
    _run(long_id, "2026-12-07T19:12:34Z", {"kind": "train", "recipe": recipe, "data": {"source": "kaggle",
         "train_rows": 2000, "test_rows": 28000, "limit": 2000}},
         {"cv_accuracy": 0.69033, "train_seconds": 600.0, "wall_seconds": 372.0}, done=5)  # fmt: skip
    log_row(run_id=long_id, cv_accuracy="0.69033", status="complete", public_score="0.68957")
    narrow = {k: v for k, v in env.items() if k != "COLUMNS"}  # a process of its own: rich sizes its console itself
    listed = run_kit(["runs"], narrow).stdout
    for needle in (long_id, "2026-12-07 19:12:34", "69.033 %", "68.957 %", "2,000 (limit)", "6:12"):
        assert needle in listed, (needle, listed)
    board = run_kit(["leaderboard"], narrow).stdout
    for needle in (long_id, "69.033 %", "68.957 %", "-0.076"):
        assert needle in board, (needle, board)
    assert "…" not in listed + board
