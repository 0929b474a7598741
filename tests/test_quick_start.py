"""The README's quick start, typed into a fresh shell as a new user would: clone, `make demo`, activate, `make
download`, train, `kit submit`, `kit leaderboard`, against the fake Kaggle, ending in a scored submission.

What stands in for the user's world, and nothing else:
- the one line a user changes, `KIT=...`, points at a git repository of this checkout's files (`git clone` runs);
- the training line, `kit train --folds 5`, trains a tiny run (two folds of the seed net, one epoch, 300 rows);
- the venv `make demo` makes sees this environment's installed packages (a .pth file, written by a stand-in for the
  Makefile's `python3 -m venv`) instead of downloading them again from PyPI;
- the internet is the fake Kaggle (its proxy settings), and the user's Kaggle credentials are in the environment.
"""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest

from kit import data, submission
from tests.conftest import KIT_URL, ROOT, snapshot_repo
from tests.fake_kaggle import FakeKaggle, zip_of

pytestmark = pytest.mark.slow

TRAIN = "kit train --folds 5"
TINY = "kit train --folds 2 --epochs 1 --model seed --limit 300"


def quick_start() -> list[str]:
    """The lines of the README's ```bash block after `<!-- quick start -->`, comments and all."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.search(r"<!-- quick start -->\s*```bash\n(.*?)```", text, re.S)
    assert found, "README.md has no '<!-- quick start -->' block"
    return [line for line in found.group(1).splitlines() if line.strip()]


def _venv_maker(folder: Path) -> Path:
    """A stand-in for `python3 -m venv DIR` that also lets DIR's Python see this environment's packages."""
    script = folder / "python-with-packages"
    packages = sysconfig.get_paths()["purelib"]
    script.write_text(f'#!/bin/sh\n"{sys._base_executable}" "$@" || exit $?\n'  # noqa: SLF001
                      f'for lib in "$3"/lib/python*/site-packages; do echo "{packages}" > "$lib/kit-test-env.pth"; '
                      "done\n")  # fmt: skip
    script.chmod(0o755)
    return script


def test_the_readmes_quick_start_in_a_fresh_shell_ends_in_a_scored_submission(tmp_path, tiny):
    lines = quick_start()
    assert any(line.startswith("KIT=") for line in lines) and any(TRAIN in line for line in lines)
    folder = tmp_path / "competition"
    folder.mkdir()
    test_x = np.resize(tiny.test_x, (submission.REAL_TEST_ROWS, 28, 28, 1))
    data.write_csvs(folder, tiny.train_x, tiny.train_y, test_x)
    labels = [int(v) for v in np.resize(tiny.test_y, submission.REAL_TEST_ROWS)]
    fake = FakeKaggle(zip_bytes=zip_of({n: (folder / n).read_bytes() for n in data.FILES}), test_labels=labels)
    fake.start()
    try:
        source = snapshot_repo(tmp_path / "source")
        script = "set -e\n" + "\n".join(line.replace(KIT_URL, str(source)).replace(TRAIN, TINY) for line in lines)
        home = tmp_path / "home"
        home.mkdir()
        # a fresh shell: no venv on PATH, no kit variables, the user's credentials, the internet (the fake's proxy)
        mine = ("KAGGLE_", "KIT_", "VIRTUAL_ENV", "PYTHON")
        env = {k: v for k, v in os.environ.items() if not k.startswith(mine) and "proxy" not in k.lower()}
        venv_bin = str(Path(sys.executable).parent)
        env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != venv_bin)
        internet = {k: v for k, v in fake.env().items() if k.lower() != "https_proxy"}  # pip's (https): the index
        env.update(internet, HOME=str(home), TF_CPP_MIN_LOG_LEVEL="3", COLUMNS="200",
                   PYTHON=str(_venv_maker(tmp_path)))  # fmt: skip
        ran = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                             timeout=1500)  # fmt: skip
        said = ran.stdout + ran.stderr
        assert ran.returncode == 0, said[-6000:]
        assert "source .venv/bin/activate" in said  # what `make demo` tells a new user to type next
        assert "Scored." in said and "Traceback" not in said
        with open(tmp_path / "kit" / "submissions" / "leaderboard.csv", newline="", encoding="utf-8") as f:
            [row] = list(csv.DictReader(f))
        assert row["status"] == "complete" and f"{100 * float(row['public_score']):.3f} %" in ran.stdout
    finally:
        fake.stop()
