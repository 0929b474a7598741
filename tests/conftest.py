"""Shared fixtures: a tiny Kaggle-shaped data set, an isolated environment, the fake Kaggle server."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from kit import data
from tests.fake_kaggle import FakeKaggle, zip_of

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Tiny:
    """The offline sample as files: what a Kaggle download of a (very small) competition contains."""

    folder: Path
    zip_bytes: bytes
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> Tiny:
    folder = tmp_path_factory.mktemp("tiny")
    train_x, train_y, test_x, test_y = data.sample_arrays(test_size=300)
    data.write_csvs(folder, train_x, train_y, test_x)
    files = {name: (folder / name).read_bytes() for name in data.FILES}
    return Tiny(folder, zip_of(files), train_x, train_y, test_x, test_y)


@pytest.fixture
def env(tmp_path, monkeypatch) -> dict[str, str]:
    """An environment with its own HOME, data, runs and submissions dirs, and no Kaggle credentials or proxy."""
    home = tmp_path / "home"
    home.mkdir()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KAGGLE_") and "proxy" not in k.lower()}
    clean.update(
        HOME=str(home),
        KIT_DATA_DIR=str(tmp_path / "data"),
        KIT_RUNS_DIR=str(tmp_path / "runs"),
        KIT_SUBMISSIONS_DIR=str(tmp_path / "submissions"),
        TF_CPP_MIN_LOG_LEVEL="3",
        PYTHONPATH=str(ROOT),
        COLUMNS="200",  # rich wraps to the terminal width; keep messages on one line for assertions
    )
    for k in list(os.environ):
        if k.startswith("KAGGLE_") or "proxy" in k.lower():
            monkeypatch.delenv(k)
    for k in ("HOME", "KIT_DATA_DIR", "KIT_RUNS_DIR", "KIT_SUBMISSIONS_DIR"):
        monkeypatch.setenv(k, clean[k])
    return clean


@pytest.fixture
def fake_kaggle(tiny):
    server = FakeKaggle(zip_bytes=tiny.zip_bytes, test_labels=[int(v) for v in tiny.test_y]).start()
    yield server
    server.stop()


def run_kit(args: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    """`python -m kit ARGS` in a fresh process (the kaggle client reads its environment at import)."""
    return subprocess.run(
        [sys.executable, "-m", "kit", *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )
