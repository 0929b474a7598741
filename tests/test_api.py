"""kit from Python, as a notebook uses it: one Python process runs the cells (a notebook's kernel is one process, and
the kaggle client reads its environment once, at import) against the fake Kaggle."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from kit import data, ledger, submission
from tests.conftest import ROOT
from tests.fake_kaggle import FakeKaggle

pytestmark = pytest.mark.slow

CELLS = """
import json, kit
run = kit.train("seed", folds=2, epochs=1, limit=300, jobs=1, rotation=5.0, run_id="nb")
assert run.id == "nb" and 0 <= run.cv <= 1, run.cv
assert run.oof.shape == (300, 10) and run.test_probs.shape == (28000, 10) and run.submission.is_file()
assert "<table>" in run._repr_html_() and "nb" in run._repr_html_()
page = run.report()
assert page.path.name == "index.html" and "<h2>Recipe</h2>" in page._repr_html_()
assert "rotation=5.0" in page._repr_html_()
again = kit.load_run("nb")
assert again.cv == run.cv
state = kit.submit(run, "from a notebook")
try:
    kit.train("seed", dropout=2.0)
except kit.KitError as exc:
    refused = str(exc)
try:
    kit.train("seed", colour="red")
except kit.KitError as exc:
    unknown = str(exc)
print("RESULT " + json.dumps({"state": state, "refused": refused, "unknown": unknown}))
"""


def test_a_notebook_trains_reads_the_cv_shows_the_report_and_submits(env, tiny, tmp_path):
    folder = tmp_path / "competition"
    test_x = np.resize(tiny.test_x, (submission.REAL_TEST_ROWS, 28, 28, 1))
    data.write_csvs(folder, tiny.train_x, tiny.train_y, test_x)
    data.install_folder(folder, data.data_dir(), "zip")
    labels = [int(v) for v in np.resize(tiny.test_y, submission.REAL_TEST_ROWS)]
    fake = FakeKaggle(test_labels=labels).start()
    try:
        done = subprocess.run([sys.executable, "-c", CELLS], env={**env, **fake.env()}, capture_output=True,
                              text=True, timeout=600, cwd=ROOT)  # fmt: skip
    finally:
        fake.stop()
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "CV (OOF)" in done.stdout and "Scored." in done.stdout  # the terminal's table and lines, in the cell
    result = json.loads(done.stdout.split("RESULT ", 1)[1].splitlines()[0])
    assert result["state"]["status"] == "complete" and result["state"]["public_score"]
    assert result["refused"] == "dropout 2.0: must be in [0, 1)."
    assert result["unknown"].startswith("colour: no recipe field of that name")
    [row] = ledger.rows()
    assert row["run_id"] == "nb" and row["message"] == "from a notebook" and row["status"] == "complete"
