"""The mission end to end, as a user types it, against the fake Kaggle through the real kaggle client: download, a
tiny K-fold training, submit with its score, then the leaderboard, the runs and the report.

`make test` runs it on the newest packages; `make test-floors` on every dependency at its declared floor (uv's
--resolution lowest-direct), so each lower bound in pyproject.toml is one kit is tested on."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

from kit import data, ledger, submission
from tests.conftest import run_kit
from tests.fake_kaggle import FakeKaggle, zip_of

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def competition(tmp_path_factory, tiny) -> tuple[bytes, list[int]]:
    """The sample's training rows and a test set of the real competition's 28,000 rows (so the submission is one
    Kaggle scores), with the labels the fake scores it against."""
    folder = tmp_path_factory.mktemp("mission")
    test_x = np.resize(tiny.test_x, (submission.REAL_TEST_ROWS, 28, 28, 1))
    data.write_csvs(folder, tiny.train_x, tiny.train_y, test_x)
    labels = [int(v) for v in np.resize(tiny.test_y, submission.REAL_TEST_ROWS)]
    return zip_of({name: (folder / name).read_bytes() for name in data.FILES}), labels


def test_download_train_submit_and_keep_score(env, competition):
    zip_bytes, labels = competition
    server = FakeKaggle(zip_bytes=zip_bytes, test_labels=labels).start()
    try:
        remote = {**env, **server.env()}

        def kit(*args: str):
            done = run_kit(list(args), remote, timeout=600)
            assert done.returncode == 0, f"kit {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
            assert "Traceback" not in done.stderr
            return done

        kit("download")
        trained = kit("train", "--folds", "2", "--epochs", "1", "--run-id", "mission")
        assert "CV (OOF)" in trained.stdout
        submitted = kit("submit")
        assert "public score" in submitted.stdout
        [row] = ledger.rows()
        assert row["run_id"] == "mission" and row["status"] == "complete" and float(row["public_score"]) > 0
        assert f"{100 * float(row['public_score']):.3f} %" in kit("leaderboard").stdout
        assert "mission" in kit("runs").stdout
        kit("report", "mission")
        assert (Path(env["KIT_RUNS_DIR"]) / "mission" / "report" / "index.html").is_file()
        assert server.methods().count("CreateSubmission") == 1
    finally:
        server.stop()
    print("versions:", {p: metadata.version(p) for p in ("tensorflow", "keras", "kaggle", "kagglesdk", "typer")})
