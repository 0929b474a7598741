"""Shared fixtures: a tiny Kaggle-shaped data set, an isolated environment, the fake Kaggle server."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import subprocess
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from kit import data, locks
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


def made_once(tmp_path_factory, name: str, make) -> Path:
    """The folder `name` of this test session, which `make(folder)` fills once for all of it: the first pytest-xdist
    worker to get here makes it under a lock, the others wait and share it (read only: copy it to change it)."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # the session's folder, all workers'
    root = shared / name
    with locks.exclusive(shared / f"{name}.lock"):
        if not (root / ".made").is_file():
            shutil.rmtree(root, ignore_errors=True)
            make(root)
            (root / ".made").touch()
    return root


def world_env(root: Path) -> dict[str, str]:
    """The environment of kit commands whose data, runs and submissions are root/data, root/runs and root/subs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAGGLE_")}
    env.update(HOME=str(root / "home"), KIT_DATA_DIR=str(root / "data"), KIT_RUNS_DIR=str(root / "runs"),
               KIT_SUBMISSIONS_DIR=str(root / "subs"), TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(ROOT),
               COLUMNS="200")  # fmt: skip
    return env


@pytest.fixture(scope="session")
def sample_run(tmp_path_factory) -> Path:
    """A folder with the offline sample installed (data/) and a finished 2-fold, 1-epoch seed-net run r1 on it (runs/r1,
    subs/r1.csv), made once for the session (`made_once`: copy it to change it)."""

    def make(root: Path) -> None:
        data.install_sample(root / "data")
        # in this process (--jobs 1): fold workers are the k-fold and stopping tests' subject
        train = ["train", "--folds", "2", "--epochs", "1", "--run-id", "r1", "--model", "seed", "--jobs", "1"]
        done = kit_here(train, world_env(root))
        assert done.returncode == 0, done.stderr

    return made_once(tmp_path_factory, "sample-run", make)


def copy_world(source: Path, target: Path) -> Path:
    """A copy of a `made_once` folder to change (times kept: the data cache stays newer than the CSVs)."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(".made", "*.lock"))
    return target


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


@dataclass
class Ran:
    """What a `kit` command did: the fields of subprocess.CompletedProcess that tests read."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str


def kit_here(args: list[str], env: dict[str, str]) -> Ran:
    """`kit ARGS` run by `kit.cli.main` in this process, with `env` as the whole environment for its duration: what
    `run_kit` does, without a new interpreter and TensorFlow's start-up (7 s each here). For commands that need no
    process of their own: not the Kaggle client (it reads its environment once, at import), not signals, not a
    backend other than this process's. An exception that main lets through is a traceback on stderr and exit 1, as
    it would be in a process of its own."""
    from kit import cli, render

    saved_env, saved_argv, saved_term = dict(os.environ), sys.argv, signal.getsignal(signal.SIGTERM)
    stdout, stderr = io.StringIO(), io.StringIO()
    code = 0
    os.environ.clear()
    os.environ.update(env)
    sys.argv = ["kit", *args]
    width = int(env.get("COLUMNS", "200"))
    widths = render.out.width, render.err.width
    render.out.width = render.err.width = width
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                cli.main()
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
                if isinstance(exc.code, str):
                    print(exc.code, file=sys.stderr)
            except BaseException:  # noqa: BLE001 - what a process of its own would print before dying
                traceback.print_exc()
                code = 1
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        sys.argv = saved_argv
        signal.signal(signal.SIGTERM, saved_term)
        render.out.width, render.err.width = widths
        if "keras" in sys.modules:  # `kit train` sets Keras' global precision policy; the next test expects float32
            sys.modules["keras"].mixed_precision.set_global_policy("float32")
    return Ran(["kit", *args], code, stdout.getvalue(), stderr.getvalue())


def log_row(**fields) -> str:
    """A row in the leaderboard log, through the one way kit adds rows (`ledger.claim`); returns its id."""
    import uuid

    from kit import ledger

    row_id, _ = ledger.claim(fields.pop("sha256", uuid.uuid4().hex * 2), True, **fields)
    return row_id


BROWSER_TEST = "test_the_report_page_loads_whole_in_a_headless_browser"


def pytest_terminal_summary(terminalreporter) -> None:
    """Say whether the report page was loaded in a real browser (the test skips without Chromium)."""
    for outcome in ("passed", "failed", "skipped"):
        for report in terminalreporter.stats.get(outcome, []):
            if BROWSER_TEST in getattr(report, "nodeid", "") and report.when in ("call", "setup"):
                why = f" ({report.longrepr[2]})" if outcome == "skipped" and isinstance(report.longrepr, tuple) else ""
                terminalreporter.write_line(f"report page in headless Chromium: {outcome}{why}")
                return


KIT_URL = "https://github.com/OWNER/kit.git"  # the README's `KIT`: where kit's source is


def snapshot_repo(dest: Path) -> Path:
    """A git repository at `dest` holding this checkout's files as they are now (committed or not): what the README's
    `KIT` points a clone at in the tests that run its commands."""
    skip = shutil.ignore_patterns(".git", ".venv*", "runs", "data", "submissions", "__pycache__", "*.egg-info",
                                  ".pytest_cache", ".ruff_cache", ".ci-*")  # fmt: skip
    shutil.copytree(ROOT, dest, ignore=skip)
    git = ["git", "-C", str(dest), "-c", "user.name=kit tests", "-c", "user.email=tests@localhost"]
    for step in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "snapshot"]):
        subprocess.run([*git, *step], check=True, capture_output=True)
    return dest
