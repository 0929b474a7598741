"""The README's Kaggle Notebook and Colab cells, run as written on the packages those notebooks come with
(`make test-kaggle-image` builds .venv-kaggle with them and runs this file there), against the fake Kaggle.

A cell line starting with `!` runs in bash, as a notebook runs it; the others are Python, run here. What stands in
for the notebook's world, and nothing else:
- `/kaggle/...` and `/content` are folders under the test's tmp_path; the attached competition is a 28,000-row
  test set under the stand-in /kaggle/input;
- the one line a user changes, `KIT = "..."`, points at a git repository of this checkout's files (`git clone`
  then runs for real);
- `kit train --folds 5` and `kit.train(folds=5)` train the seed net for one epoch (the cells' other words
  unchanged);
- the internet is the fake Kaggle (its proxy settings), and Kaggle's `kaggle_secrets` answers with its credentials.
These tests change the Python environment they run in (the cells' pip install), so `make test` skips them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from kit import data, submission
from tests.conftest import KIT_URL, ROOT, snapshot_repo
from tests.fake_kaggle import FakeKaggle, zip_of

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("KIT_TEST_NOTEBOOK_CELLS") != "1", reason="make test-kaggle-image runs them"),
]

TRAIN, API_TRAIN = "kit train --folds 5", "kit.train(folds=5)"


def cells(name: str) -> list[str]:
    """The lines of the README's ```python block after `<!-- cells: NAME -->`."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.search(rf"<!-- cells: {name} -->\s*```python\n(.*?)```", text, re.S)
    assert found, f"README.md has no '<!-- cells: {name} -->' block"
    return [line for line in found.group(1).splitlines() if line.strip()]


def run_cells(lines: list[str], cwd: Path, env: dict[str, str], world: dict[str, str]) -> list[tuple[str, str]]:
    """Each line as a notebook runs it, in `cwd`, with `env` as the notebook's environment (Python lines may change
    os.environ and the working directory, as in a notebook). Returns (command, output) for the shell lines."""
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    ran = []
    namespace: dict = {}
    try:
        for line in lines:
            for real, stand_in in world.items():
                line = line.replace(real, stand_in)
            if not line.startswith("!"):
                exec(line.replace(API_TRAIN, f'kit.train("seed", {API_TRAIN[10:-1]}, epochs=1)'), namespace)  # noqa: S102
                continue
            command = line[1:].split("  #")[0].strip()
            # `{NAME}`: the notebook's Python variable, as IPython expands it in a `!` line
            command = re.sub(r"\{(\w+)\}", lambda m: str(namespace.get(m[1], m[0])), command)
            command = command.replace(TRAIN, f"{TRAIN} --epochs 1 --model seed")
            done = subprocess.run(["bash", "-c", command], env=dict(os.environ), capture_output=True, text=True,
                                  timeout=900)  # fmt: skip
            output = done.stdout + done.stderr
            assert done.returncode == 0, f"!{command} exited {done.returncode}:\n{output}"
            assert "Traceback" not in output, f"!{command}:\n{output}"
            ran.append((command, output))
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        os.chdir(saved_cwd)
    return ran


@pytest.fixture(scope="module")
def competition(tmp_path_factory, tiny) -> tuple[Path, list[int]]:
    folder = tmp_path_factory.mktemp("attached")
    test_x = np.resize(tiny.test_x, (submission.REAL_TEST_ROWS, 28, 28, 1))
    data.write_csvs(folder, tiny.train_x, tiny.train_y, test_x)
    return folder, [int(v) for v in np.resize(tiny.test_y, submission.REAL_TEST_ROWS)]


@pytest.fixture(autouse=True)
def _kit_installed_from_the_checkout_afterwards():
    """The cells install kit from their clone (a copy that goes with tmp_path): this checkout's kit again after."""
    yield
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "-e", str(ROOT)], check=False)


def _packages() -> dict[str, str]:
    done = subprocess.run([sys.executable, "-m", "pip", "list", "--format", "json"], capture_output=True, text=True)
    return {p["name"].lower(): p["version"] for p in json.loads(done.stdout) if p["name"].lower() != "kit"}


def _notebook_env(tmp_path: Path, fake: FakeKaggle) -> dict[str, str]:
    """A notebook's environment: this Python's bin first on PATH, its own HOME, the internet (the fake's proxy), no
    Kaggle credentials and no kit folders set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAGGLE_", "KIT_")) and "proxy" not in k.lower()}
    # the kaggle client's calls (http://localhost/... under LOCALHOST) go to the fake; pip's (https) to the index
    dropped = ("kaggle_username", "kaggle_key", "https_proxy")
    internet = {k: v for k, v in fake.env().items() if k.lower() not in dropped}
    home = tmp_path / "home"
    home.mkdir()
    env.update(internet, HOME=str(home), PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
               TF_CPP_MIN_LOG_LEVEL="3", COLUMNS="200", PYTHONPATH="")  # fmt: skip
    return env


def _scored(submissions: Path) -> dict[str, str]:
    import csv

    with open(submissions / "leaderboard.csv", newline="", encoding="utf-8") as f:
        [row] = list(csv.DictReader(f))
    return row


def test_the_kaggle_notebook_cells_end_in_a_scored_submission(tmp_path, competition, tiny, monkeypatch):
    folder, labels = competition
    fake = FakeKaggle(zip_bytes=zip_of({n: (folder / n).read_bytes() for n in data.FILES}), test_labels=labels)
    fake.start()
    try:
        kaggle = tmp_path / "kaggle"
        (kaggle / "working").mkdir(parents=True)
        shutil.copytree(folder, kaggle / "input" / "competitions" / "digit-recognizer")  # where Kaggle mounts it
        env = _notebook_env(tmp_path, fake)
        env.update(KAGGLE_KERNEL_RUN_TYPE="Interactive", KIT_KAGGLE_INPUT=str(kaggle / "input"))
        secrets = {"KAGGLE_USERNAME": fake.username, "KAGGLE_KEY": fake.key}
        module = types.ModuleType("kaggle_secrets")
        module.UserSecretsClient = lambda: types.SimpleNamespace(get_secret=secrets.__getitem__)
        monkeypatch.setitem(sys.modules, "kaggle_secrets", module)
        before = _packages()
        source = snapshot_repo(tmp_path / "source")
        ran = run_cells(cells("kaggle"), kaggle / "working", env, {"/kaggle/": f"{kaggle}/", KIT_URL: str(source)})
        assert _packages() == before, "the install cell changed the notebook's packages"
        said = dict(ran)
        row = _scored(kaggle / "working" / "submissions")
        shown = f"{100 * float(row['public_score']):.3f} %"  # as kit shows CV and scores
        assert row["status"] == "complete" and row["public_score"] and shown in said["kit leaderboard"]
        [run] = list((kaggle / "working" / "runs").iterdir())
        assert (run / "report" / "index.html").is_file() and len(fake.submissions) == 1
    finally:
        fake.stop()


def test_the_colab_cells_end_in_a_scored_submission(tmp_path, competition):
    folder, labels = competition
    fake = FakeKaggle(zip_bytes=zip_of({n: (folder / n).read_bytes() for n in data.FILES}), test_labels=labels)
    fake.start()
    try:
        content = tmp_path / "content"
        content.mkdir()
        (content / "kaggle.json").write_text(json.dumps({"username": fake.username, "key": fake.key}))
        before = _packages()
        source = snapshot_repo(tmp_path / "source")
        world = {"/content/": f"{content}/", KIT_URL: str(source)}
        ran = run_cells(cells("colab"), content, _notebook_env(tmp_path, fake), world)
        assert _packages() == before, "the install cell changed the notebook's packages"
        assert "public score" in ran[-1][1], ran[-1][1]
        row = _scored(content / "kit" / "submissions")
        assert row["status"] == "complete" and row["public_score"] and len(fake.submissions) == 1
    finally:
        fake.stop()
