"""The CLI is commands: each hands its options to one call. These check what a command handed to its stage (the
stage stubbed), beside the end-to-end tests that run the stages for real."""

from __future__ import annotations

from pathlib import Path

import pytest

from kit import api, render, runs
from tests.conftest import kit_here


@pytest.fixture
def calls(monkeypatch):
    """Each stub records (name, args, kwargs) here and returns what its command needs to carry on."""
    seen: list[tuple[str, tuple, dict]] = []

    def stub(name, returns=None):
        def record(*args, **kwargs):
            seen.append((name, args, kwargs))
            return returns

        return record

    monkeypatch.setattr(api, "train", stub("train"))
    monkeypatch.setattr(api, "submit", stub("submit", {}))
    monkeypatch.setattr(api, "make_report", stub("make_report", "the report"))
    monkeypatch.setattr(render, "report", stub("render.report"))
    monkeypatch.setattr(runs, "resolve", lambda ref=None: Path(f"runs/{ref}"))
    monkeypatch.setattr(api, "predict", stub("predict"))
    return seen


def test_train_hands_every_option_to_kit_train(env, calls):
    result = kit_here(["train", "--model", "nets.py:build", "--folds", "5", "--repeats", "2", "--epochs", "3",
                       "--batch-size", "64", "--lr", "0.002", "--seed", "7", "--precision", "float32", "--no-augment",
                       "--tta", "--set", "rotation=15", "--set", "dropout=0.3", "--run-id", "r1", "--limit", "500",
                       "--jobs", "2", "--data-dir", "somewhere", "--track", "wandb"], env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    [(name, args, kwargs)] = calls
    assert name == "train" and args == ("nets.py:build",)
    assert kwargs == dict(recipe=None, sets=["rotation=15", "dropout=0.3"], run_id="r1", fold=None, limit=500, jobs=2,
                          ray=None, mirrored=False, kaggle=False, kaggle_timeout=None, data_dir=Path("somewhere"),
                          predict=True, time=None, track="wandb", folds=5, repeats=2, epochs=3, batch_size=64,
                          learning_rate=0.002, seed=7, precision="float32", augment=False, tta=True, pseudo=None,
                          pseudo_min=None)  # fmt: skip


def test_train_on_kaggle_and_from_a_recipe_file(env, calls):
    result = kit_here(["train", "--recipe", "my.toml", "--kaggle", "--kaggle-timeout", "90", "--run-id", "k", "--time",
                       "1h"], env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    [(_, args, kwargs)] = calls
    assert args == (None,) and kwargs["recipe"] == Path("my.toml") and kwargs["kaggle"] is True
    assert kwargs["time"] == "1h"
    assert kwargs["kaggle_timeout"] == 90 and kwargs["folds"] is None and kwargs["augment"] is None


def test_submit_report_and_predict_hand_their_arguments_on(env, calls):
    assert kit_here(["submit", "r1", "-m", "first", "--no-wait", "--timeout", "30", "--force"], env).returncode == 0
    assert calls[-1] == ("submit", ("r1", "first"), dict(wait=False, timeout=30.0, force=True, dry_run=False))
    assert kit_here(["submit", "--dry-run"], env).returncode == 0
    assert calls[-1] == ("submit", (None, None), dict(wait=True, timeout=600.0, force=False, dry_run=True))

    assert kit_here(["report", "r1", "--data-dir", "d"], env).returncode == 0
    assert calls[-2:] == [("make_report", ("r1", Path("d")), {}), ("render.report", ("the report",), {})]

    assert kit_here(["predict", "r1", "--tta", "--data-dir", "d"], env).returncode == 0
    assert calls[-1] == ("predict", ("r1", True), {"data_dir": Path("d")})
