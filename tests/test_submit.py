"""`kit submit` and `kit leaderboard` through the real kaggle client against the fake Kaggle server."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from kit import data, ledger, submission
from tests.conftest import kit_here, log_row, run_kit


@pytest.fixture
def installed(env, tiny, tmp_path):
    archive = tmp_path / "digit-recognizer.zip"
    archive.write_bytes(tiny.zip_bytes)
    data.install_zip(archive, data.data_dir())
    return tiny


@pytest.fixture
def fake_kaggle(tiny):
    """The fake Kaggle scoring the real competition's 28,000 test rows (tiny's labels repeated): kit submits only
    files of that length, whatever data is installed."""
    from tests.fake_kaggle import FakeKaggle

    labels = np.resize(tiny.test_y, submission.REAL_TEST_ROWS)
    server = FakeKaggle(zip_bytes=tiny.zip_bytes, test_labels=[int(v) for v in labels]).start()
    yield server
    server.stop()


def _client_has_limits() -> bool:
    from importlib.util import find_spec

    if find_spec("kagglesdk") is None:
        return False
    from kagglesdk.competitions.types import competition_api_service

    return hasattr(competition_api_service, "ApiGetSubmissionLimitsRequest")


def _csv(path: Path, labels) -> Path:
    return submission.write(np.asarray(labels), path)


def _good(tmp_path, fake, wrong: int = 30) -> tuple[Path, str]:
    labels = np.asarray(fake.test_labels)
    labels[:wrong] = (labels[:wrong] + 1) % 10
    expected = f"{(len(labels) - wrong) / len(labels):.5f}"
    return _csv(tmp_path / "mine.csv", labels), expected


def _kit(args, env, fake):
    return run_kit(args, {**env, **fake.env()})


def test_good_submission_prints_the_score_and_logs_one_row(env, installed, fake_kaggle, tmp_path):
    path, expected = _good(tmp_path, fake_kaggle)
    result = _kit(["submit", str(path), "-m", "first try"], env, fake_kaggle)
    assert result.returncode == 0, result.stderr
    assert f"public score {expected}" in result.stdout
    rows = ledger.rows()
    assert len(rows) == 1
    row = rows[0]
    assert row["status"] == "complete" and row["public_score"] == expected and row["message"] == "first try"
    assert row["ref"] == str(fake_kaggle.submissions[0]["ref"]) and len(row["sha256"]) == 64
    # the quota first, then the upload (its blob PUT), then the submission it creates, then the polls for the score
    methods = fake_kaggle.methods()
    # kaggle 2.0.x (Kaggle's and Colab's notebooks) has no limits call: one listed submission checks the access
    assert methods.pop(0) == ("GetSubmissionLimits" if _client_has_limits() else "ListSubmissions")
    assert methods[0] == "StartSubmissionUpload" and methods[1].startswith("blob-")
    assert methods[2] == "CreateSubmission" and set(methods[3:]) == {"GetSubmission"}
    assert any(c.startswith("PUT ") for c in fake_kaggle.calls)
    table = _kit(["leaderboard"], env, fake_kaggle)
    shown = f"{100 * float(expected):.3f} %"  # the table shows scores as it shows CV: a percentage
    assert table.returncode == 0 and shown in table.stdout and "first try" in table.stdout
    as_csv = _kit(["leaderboard", "--csv"], env, fake_kaggle)
    assert as_csv.stdout.splitlines()[0].startswith("id,utc_time,run_id") and expected in as_csv.stdout


@pytest.mark.parametrize(
    ("mangle", "needle"),
    [
        (lambda t: t.replace("ImageId,Label", "Id,Label"), "the header is 'Id,Label'"),
        (lambda t: "\n".join(t.splitlines()[:-1]) + "\n", "27,999 rows, expected 28,000"),
        (lambda t: t.replace("\n5,", "\n4,", 1), "duplicate ImageId at line 6"),
        (lambda t: t.replace("\n7,", "\n7,11\n#", 1).replace("\n#", "\n", 1), "Label is not an integer 0..9"),
        (lambda t: t.replace("\n9,", "\n9,\n#", 1).replace("\n#", "\n", 1), "blank or NaN cells at line"),
    ],
    ids=["header", "rows", "duplicate-id", "label", "blank"],
)
def test_invalid_csv_is_never_uploaded(env, installed, fake_kaggle, tmp_path, mangle, needle):
    path, _ = _good(tmp_path, fake_kaggle)
    path.write_text(mangle(path.read_text()))
    result = _kit(["submit", str(path)], env, fake_kaggle)
    assert result.returncode == 6, result.stdout + result.stderr
    assert needle in result.stderr and "nothing was uploaded" in result.stderr
    assert fake_kaggle.calls == [] and ledger.rows() == []
    alone = _kit(["validate", str(path)], env, fake_kaggle)
    assert alone.returncode == 6  # `kit validate` counts the installed test rows (300 here)
    assert needle in alone.stderr or "27,999 rows, expected 300" in alone.stderr


def test_a_file_for_the_installed_sample_is_not_uploaded(env, installed, fake_kaggle, tmp_path):
    """The installed data has 300 test rows (a sample): a file made for it is valid there, but Kaggle wants 28,000."""
    path = _csv(tmp_path / "sample-run.csv", installed.test_y)
    valid = _kit(["validate", str(path)], env, fake_kaggle)
    assert valid.returncode == 0 and "Kaggle scores 28,000, so `kit submit` refuses it" in valid.stdout
    result = _kit(["submit", str(path)], env, fake_kaggle)
    assert result.returncode == 6 and "300 rows, expected 28,000" in result.stderr, result.stderr
    assert "nothing was uploaded" in result.stderr and fake_kaggle.calls == [] and ledger.rows() == []


def test_quota_used_up_refuses_before_uploading(env, installed, fake_kaggle, tmp_path):
    fake_kaggle.daily_limit = 0
    path, _ = _good(tmp_path, fake_kaggle)
    result = _kit(["submit", str(path)], env, fake_kaggle)
    # kaggle 2.0.x has no limits call: Kaggle's refusal of the upload says it, and nothing is created either way
    said = "No submissions left today" if _client_has_limits() else "used its daily Submission allowance"
    assert result.returncode == 7 and said in result.stderr and fake_kaggle.submissions == []
    if _client_has_limits():
        assert "StartSubmissionUpload" not in fake_kaggle.methods() and ledger.rows() == []
    else:
        assert [r["status"] for r in ledger.rows()] == ["failed"]


def test_duplicate_needs_force(env, installed, fake_kaggle, tmp_path):
    path, _ = _good(tmp_path, fake_kaggle)
    assert _kit(["submit", str(path)], env, fake_kaggle).returncode == 0
    again = _kit(["submit", str(path)], env, fake_kaggle)
    assert again.returncode == 7 and "already submitted" in again.stderr and "--force" in again.stderr
    assert len(fake_kaggle.submissions) == 1
    forced = _kit(["submit", str(path), "--force"], env, fake_kaggle)
    assert forced.returncode == 0, forced.stderr
    assert len(fake_kaggle.submissions) == 2 and len(ledger.rows()) == 2


def test_rejected_credentials(env, installed, fake_kaggle, tmp_path):
    path, _ = _good(tmp_path, fake_kaggle)
    result = run_kit(["submit", str(path)], {**env, **fake_kaggle.env(), "KAGGLE_KEY": "wrong"})
    assert result.returncode == 3 and "(401)" in result.stderr and "Traceback" not in result.stderr
    assert fake_kaggle.submissions == [] and ledger.rows() == []


def test_scoring_error_shows_kaggles_reason(env, installed, fake_kaggle, tmp_path):
    path, _ = _good(tmp_path, fake_kaggle)
    fake_kaggle.test_labels = fake_kaggle.test_labels[:100]  # the server expects another row count
    result = _kit(["submit", str(path)], env, fake_kaggle)
    assert result.returncode == 4
    assert "Submission must have 100 rows; found 28000" in result.stderr
    row = ledger.rows()[0]
    assert row["status"] == "error" and "100 rows" in row["error"]


def test_server_dies_after_upload_leaves_pending_then_sync_settles_it(env, installed, fake_kaggle, tmp_path):
    fake_kaggle.die_after = "CreateSubmission"
    path, expected = _good(tmp_path, fake_kaggle)
    result = _kit(["submit", str(path), "--timeout", "6"], env, fake_kaggle)  # it asks again until then
    ref = str(fake_kaggle.submissions[0]["ref"])
    assert result.returncode == 5 and f"Submission {ref} was made" in result.stderr, result.stderr
    assert "asking again" in result.stderr
    assert "kit leaderboard --sync" in result.stderr and "try again" not in result.stderr
    (row,) = ledger.rows()
    assert row["status"] == "pending" and row["ref"] == str(fake_kaggle.submissions[0]["ref"])
    assert row["public_score"] == ""

    fake_kaggle.dead = False
    fake_kaggle.die_after = None
    fake_kaggle.submissions[0]["polls"] = 5  # Kaggle scored it meanwhile
    # a submission made on the website, outside kit
    outside_path, _ = _good(tmp_path, fake_kaggle, wrong=3)
    fake_kaggle.uploads["web"] = outside_path.read_bytes()
    fake_kaggle.submissions.append({
        "ref": 5, "description": "from the browser", "fileName": "web.csv", "date": fake_kaggle.submissions[0]["date"],
        "score": "0.99000", "error": None, "polls": 5, "status": "COMPLETE",
    })  # fmt: skip
    synced = _kit(["leaderboard", "--sync"], env, fake_kaggle)
    assert synced.returncode == 0, synced.stderr
    assert "1 row(s) updated, 1 added" in synced.stdout
    rows = {r["ref"]: r for r in ledger.rows()}
    assert rows[row["ref"]]["status"] == "complete" and rows[row["ref"]]["public_score"] == expected
    assert rows["5"]["message"] == "from the browser" and rows["5"]["public_score"] == "0.99000"
    again = _kit(["leaderboard", "--sync"], env, fake_kaggle)
    assert "0 row(s) updated, 0 added" in again.stdout and len(ledger.rows()) == 2


def test_no_wait_and_dry_run(env, installed, fake_kaggle, tmp_path):
    path, _ = _good(tmp_path, fake_kaggle)
    dry = _kit(["submit", str(path), "--dry-run"], env, fake_kaggle)
    assert dry.returncode == 0 and "nothing was sent" in dry.stdout and fake_kaggle.calls == []
    quick = _kit(["submit", str(path), "--no-wait"], env, fake_kaggle)
    assert quick.returncode == 0 and "no score yet" in quick.stdout
    assert "GetSubmission" not in fake_kaggle.methods()
    assert ledger.rows()[0]["status"] == "pending"


def test_latest_run_is_the_default_and_names_itself(env, installed, fake_kaggle, tmp_path):
    run = Path(env["KIT_RUNS_DIR"]) / "20260101-000000-kitnet"
    run.mkdir(parents=True)
    (run / "config.json").write_text(
        json.dumps({"kind": "train", "created_utc": "2026-01-01T00:00:00Z", "recipe": {"model": "kitnet", "folds": 5}})
    )
    (run / "metrics.json").write_text(json.dumps({"cv_accuracy": 0.9961}))
    labels = np.asarray(fake_kaggle.test_labels)
    _csv(Path(env["KIT_SUBMISSIONS_DIR"]) / f"{run.name}.csv", labels)
    result = _kit(["submit"], env, fake_kaggle)
    assert result.returncode == 0, result.stderr
    assert "kit: 20260101-000000-kitnet (kitnet, 5 folds), CV 0.99610" in result.stdout
    row = ledger.rows()[0]
    assert row["run_id"] == run.name and row["cv_accuracy"] == "0.99610" and row["public_score"] == "1.00000"
    table = _kit(["leaderboard"], env, fake_kaggle)
    assert "+0.390" in table.stdout  # LB - CV, in percentage points


@pytest.mark.parametrize("fcntl", ["available", "blocked"])
def test_the_same_file_submitted_five_times_at_once_is_uploaded_once(env, installed, fake_kaggle, tmp_path, fcntl):
    import subprocess
    import sys

    from tests.conftest import ROOT
    from tests.test_portable import without_fcntl

    path, _ = _good(tmp_path, fake_kaggle)
    command = [sys.executable, "-m", "kit", "submit", str(path), "--no-wait"]
    blocked = without_fcntl(tmp_path / "site") if fcntl == "blocked" else {}
    procs = [
        subprocess.Popen(command, env={**env, **fake_kaggle.env(), **blocked}, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, cwd=ROOT)
        for _ in range(5)
    ]  # fmt: skip
    results = [(p.wait(120), p.stderr.read() + p.stdout.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 7, 7, 7, 7], results
    assert all("already submitted" in err for code, err in results if code == 7)
    assert len(fake_kaggle.submissions) == 1 and len(ledger.rows()) == 1


def test_kit_makes_the_kaggle_clients_folder_before_the_client_does(env, monkeypatch, tmp_path):
    """The client makes it at import with a check-then-make that races: of the five submits above, started at once
    with no folder, one once died in `import kaggle` (FileExistsError); kit makes it first, where the client looks."""
    from kit import kaggle_api

    home = Path(env["HOME"])
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    assert kaggle_api.client_config_dir() == home / ".config" / "kaggle"  # Linux, no ~/.kaggle
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert kaggle_api.client_config_dir() == tmp_path / "xdg" / "kaggle"
    (home / ".kaggle").mkdir()
    assert kaggle_api.client_config_dir() == home / ".kaggle"  # where it exists, for the old layout
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "mine"))
    assert kaggle_api.client_config_dir() == tmp_path / "mine"


def test_a_missing_file_and_foreign_digits_are_one_line(env, installed, fake_kaggle, tmp_path):
    missing = _kit(["submit", str(tmp_path / "nope" / "mine.csv")], env, fake_kaggle)
    assert missing.returncode == 6 and "no such file" in missing.stderr and "Traceback" not in missing.stderr
    path, _ = _good(tmp_path, fake_kaggle)
    path.write_text(path.read_text().replace("\n3,", "\n\u00b3,", 1).replace("\n9,7\n", "\n9,\u0667\n", 1))
    result = _kit(["submit", str(path)], env, fake_kaggle)
    assert result.returncode == 6 and "Traceback" not in result.stderr, result.stderr
    assert "ImageId is not a positive integer at line 4" in result.stderr
    assert fake_kaggle.calls == [] and ledger.rows() == []


@pytest.mark.parametrize(
    "content",
    [
        ",".join(ledger.COLUMNS).encode() + b"\nabc,2026,run\xe9,f,s,m,,,,,,\n",  # another encoding
        b"ImageId,Label\n1,2\n2,7\n",  # a submission (kit blend -o) written there
        ",".join(ledger.COLUMNS).encode() + b"\nabc,2026,run,f,s,m,,,,,,,extra\n",  # a row past the header
    ],
    ids=["encoding", "foreign-header", "extra-field"],
)
def test_a_log_that_is_not_kits_is_one_line_and_never_rewritten(env, installed, fake_kaggle, tmp_path, content):
    log = ledger.path()
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_bytes(content)
    result = _kit(["leaderboard"], env, fake_kaggle)
    assert result.returncode == 6 and "is not kit's leaderboard log" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    path, _ = _good(tmp_path, fake_kaggle)
    submitted = _kit(["submit", str(path)], env, fake_kaggle)
    assert submitted.returncode == 6 and "is not kit's leaderboard log" in submitted.stderr
    assert log.read_bytes() == content and fake_kaggle.submissions == []


def test_a_submissions_folder_that_is_a_file_is_one_line(env, tmp_path):
    blocker = tmp_path / "subs-file"
    blocker.write_text("not a folder")
    result = run_kit(["leaderboard"], {**env, "KIT_SUBMISSIONS_DIR": str(blocker)})
    assert result.returncode == 1 and "subs-file" in result.stderr and "Traceback" not in result.stderr
    assert blocker.read_text() == "not a folder"


def test_user_text_is_never_read_as_markup(env, installed, fake_kaggle, tmp_path):
    """A message, a path or a file's words with rich markup in them print as they are, in output and errors."""
    path, expected = _good(tmp_path, fake_kaggle)
    odd = path.rename(tmp_path / "my[red]file[bold].csv")
    result = _kit(["submit", str(odd), "-m", "[/red] [bold]try"], env, fake_kaggle)
    assert result.returncode == 0, result.stderr
    assert "[/red] [bold]try" in result.stdout and "my[red]file[bold].csv" in result.stdout
    table = _kit(["leaderboard"], env, fake_kaggle)
    assert table.returncode == 0 and "[/red] [bold]try" in table.stdout.replace("\n", "")
    missing = run_kit(["validate", str(tmp_path / "[red]gone.csv")], env)
    assert missing.returncode != 0 and "[red]gone.csv" in missing.stderr and "Traceback" not in missing.stderr


@pytest.mark.parametrize("timeout", ["-5", "nan", "inf"])
def test_a_bad_timeout_is_refused_before_anything_is_sent(env, installed, fake_kaggle, tmp_path, timeout):
    path, _ = _good(tmp_path, fake_kaggle)
    result = _kit(["submit", str(path), "--timeout", timeout], env, fake_kaggle)
    assert result.returncode == 2 and "--timeout" in result.stderr and "Traceback" not in result.stderr
    assert fake_kaggle.calls == [] and ledger.rows() == []


def test_reading_the_log_never_opens_anything_for_writing(env, monkeypatch):
    """`kit leaderboard` and `kit runs` work in a read-only submissions folder: no read takes the writers' lock."""
    log_row(run_id="r1", file="a.csv", sha256="ab" * 32, message="m", cv_accuracy="0.99000", status="complete",
                  public_score="0.99100")  # fmt: skip

    def refuse():
        raise PermissionError(13, "Permission denied", str(ledger.path().parent))

    monkeypatch.setattr(ledger, "_locked", refuse)
    assert [r["run_id"] for r in ledger.rows()] == ["r1"]
    assert ledger.table()[0]["gap"] == "+0.00100" and ledger.best_scores() == {"r1": "0.99100"}
    assert ledger.to_csv().startswith("id,utc_time,run_id")


def test_leaderboard_csv_of_a_log_in_another_encoding_is_one_line(env, installed, fake_kaggle):
    log = ledger.path()
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_bytes(",".join(ledger.COLUMNS).encode() + b"\nabc,2026,run\xe9,f,s,m,,,,,,\n")
    result = _kit(["leaderboard", "--csv"], env, fake_kaggle)
    assert result.returncode == 6 and "not kit's leaderboard log" in result.stderr and "Traceback" not in result.stderr


def test_a_connection_cut_while_the_submission_is_created_says_it_may_exist(env, installed, fake_kaggle, tmp_path):
    """CreateSubmission takes effect and its reply is lost: one line, exit 5, 'may have been created', the --sync
    that settles it, never a folder problem or 'try again'; the row stays pending and --sync finds the submission."""
    fake_kaggle.die_during = "CreateSubmission"
    path, expected = _good(tmp_path, fake_kaggle)
    result = _kit(["submit", str(path)], env, fake_kaggle)
    assert result.returncode == 5, result.stderr
    assert "may have been created" in result.stderr and "kit leaderboard --sync" in result.stderr
    assert "try again" not in result.stderr and "writable" not in result.stderr and "Traceback" not in result.stderr
    assert len(fake_kaggle.submissions) == 1 and ledger.rows()[0]["status"] == "pending"
    fake_kaggle.dead, fake_kaggle.die_during = False, None
    fake_kaggle.submissions[0]["polls"] = 5
    synced = _kit(["leaderboard", "--sync"], env, fake_kaggle)
    assert synced.returncode == 0, synced.stderr
    assert [r["public_score"] for r in ledger.rows()] == [expected]


def test_cv_against_lb_plots_the_scored_lists_the_rest_and_rings_the_stray(env):
    import matplotlib.image

    from kit import report

    for i, cv in enumerate((0.990, 0.992, 0.994, 0.996)):  # LB = CV + 0.001
        log_row(run_id=f"r{i}", cv_accuracy=f"{cv:.5f}", status="complete", public_score=f"{cv + 0.001:.5f}")
    log_row(run_id="leaky", cv_accuracy="0.99500", status="complete", public_score="0.98500")  # 11 under the line
    log_row(run_id="waiting", file="w.csv", cv_accuracy="0.99300", status="pending", ref="51")
    ledger.merge_remote([{"ref": "77", "status": "complete", "public_score": "0.99000", "file": "by-hand.csv"}])
    result = kit_here(["leaderboard", "--plot"], env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    picture = Path(env["KIT_SUBMISSIONS_DIR"]) / "cv_vs_lb.png"
    assert lines[-1].startswith("CV against LB (5 submission(s): LB = 1.000 CV +0.0010, r = ")
    assert lines[-1].endswith(f"in {picture}")
    pending = "no public score yet (`kit leaderboard --sync` fetches it)"
    assert any(line.startswith("not plotted: waiting (") and line.endswith(pending) for line in lines)
    assert any(line.startswith("not plotted: by-hand.csv") and "made outside kit: no CV" in line for line in lines)
    assert "strays from the line: leaky (CV 0.99500, public 0.98500)" in result.stdout
    assert sum("strays from the line" in line for line in lines) == 1  # the good five are not marked
    pixels = matplotlib.image.imread(picture)
    assert pixels.shape[:2] == (600, 800) and pixels.std() > 0.01

    found = report.cv_vs_lb_png(ledger.rows(), Path(env["HOME"]) / "again.png")
    assert [row["run_id"] for row, _, _ in found.points] == ["r0", "r1", "r2", "r3", "leaky"]
    assert found.slope == pytest.approx(1.0) and found.intercept == pytest.approx(0.001, abs=1e-9)
    cvs, lbs = zip(*[(cv, lb) for _, cv, lb in found.points], strict=True)
    assert found.correlation == pytest.approx(np.corrcoef(cvs, lbs)[0, 1])  # of all five, the stray included
    assert found.correlation < 0.5  # which it spoils: shown as it is
    # two submissions: no slope to fit, the line is CV + the mean gap, and no correlation
    two = report.fit_cv_lb([({"id": "a"}, 0.99, 0.991), ({"id": "b"}, 0.995, 0.995)])
    assert two.slope == 1.0 and two.intercept == pytest.approx(0.0005) and two.correlation is None
    assert two.strays == [] and two.method == "CV + mean gap" and found.method == "least squares"


def test_cv_against_lb_with_nothing_scored_says_so(env):
    log_row(run_id="waiting", cv_accuracy="0.99300", status="pending")
    result = kit_here(["leaderboard", "--plot"], env)
    assert result.returncode == 0, result.stderr
    assert "CV against LB (0 submission(s)) in " in result.stdout and "not plotted: waiting" in result.stdout


def test_a_404_after_the_submit_and_a_429_on_every_call_still_end_in_the_score(env, installed, fake_kaggle, tmp_path):
    """Kaggle's manners: a new submission unknown for a poll (404: pending, not 'no competition'), and a 429 with
    Retry-After on each call's first try (waited out as asked, by the client's own retry loop)."""
    fake_kaggle.unseen_polls = 1
    fake_kaggle.throttle = {"*": 1}
    path, expected = _good(tmp_path, fake_kaggle)
    result = _kit(["submit", str(path)], env, fake_kaggle)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"public score {expected}" in result.stdout and "Traceback" not in result.stderr
    assert (
        "note: Kaggle asked kit to slow down (429) while trying to submit; waiting 1 s, as it asked." in result.stderr
    )
    assert {"StartSubmissionUpload", "GetSubmission"} <= set(fake_kaggle.throttled)
    assert len(fake_kaggle.submissions) == 1 and fake_kaggle.submissions[0]["unseen"] == 0
    [row] = ledger.rows()
    assert row["status"] == "complete" and row["public_score"] == expected
    fake_kaggle.throttle = {"ListSubmissions": 1}
    synced = _kit(["leaderboard", "--sync"], env, fake_kaggle)
    assert synced.returncode == 0 and "ListSubmissions" in fake_kaggle.throttled, synced.stderr


def test_a_429_asking_longer_than_kit_waits_is_one_line_and_creates_nothing(env, installed, fake_kaggle, tmp_path):
    fake_kaggle.throttle = {"StartSubmissionUpload": 1}
    fake_kaggle.retry_after = "3600"
    path, _ = _good(tmp_path, fake_kaggle)
    result = _kit(["submit", str(path)], env, fake_kaggle)
    assert result.returncode == 7, result.stdout + result.stderr
    assert "Kaggle is rate-limiting you (429) when trying to submit" in result.stderr
    assert "try again in 60 minutes" in result.stderr and "Traceback" not in result.stderr
    assert fake_kaggle.submissions == [] and [r["status"] for r in ledger.rows()] == ["failed"]


def test_a_submission_kaggle_never_shows_is_pending_then_one_line_with_its_ref(monkeypatch):
    """404 after 404 for a new submission: pending for UNSEEN_S seconds, then what kit knows (ref, --sync)."""
    import requests

    from kit import kaggle_api
    from kit.errors import KaggleError

    class Client:
        def get_submission(self, request):
            response = requests.Response()
            response.status_code = 404
            raise requests.HTTPError("Submission not found", response=response)

    class Api:
        def build_kaggle_client(self):
            import contextlib
            from types import SimpleNamespace

            return contextlib.nullcontext(
                SimpleNamespace(competitions=SimpleNamespace(competition_api_client=Client()))
            )

    monkeypatch.setattr(kaggle_api, "UNSEEN_S", 3.0)
    monkeypatch.setattr(kaggle_api, "POLL_FIRST_S", 0.5)
    seen = []
    with pytest.raises(KaggleError, match=r"Submission 42 was created, but Kaggle has not shown it .* --sync"):
        kaggle_api.wait_for_score(Api(), 42, timeout=60, on_poll=seen.append)
    assert len(seen) >= 2 and all(s["status"] == "pending" and s["ref"] == 42 for s in seen)


@pytest.mark.parametrize(
    ("damage", "needle"),
    [
        ({"status": "WEIRD"}, "could not be read (KeyError: \"'WEIRD'\")"),
        ({"status": "COMPLETE", "publicScore": "abc"}, "is scored but its public score is 'abc'"),
        ({"status": "COMPLETE", "publicScore": "NaN"}, "is scored but its public score is 'NaN'"),
        ({"status": "COMPLETE", "publicScore": ""}, "is scored but its public score is ''"),
        ({"ref": "abc"}, "Kaggle named a submission 'abc', not a submission number"),
        ("html", "was not JSON (a proxy's or a sign-in page?)"),
    ],
    ids=["status", "score-abc", "score-nan", "score-missing", "ref", "html"],
)
def test_kaggles_answers_are_checked_and_the_submission_is_never_called_scored(
    env, installed, fake_kaggle, tmp_path, damage, needle
):
    if damage == "html":
        fake_kaggle.html = {"GetSubmission"}
    else:
        fake_kaggle.submission_fields = damage
    path, _ = _good(tmp_path, fake_kaggle)
    result = _kit(["submit", str(path)], env, fake_kaggle)
    assert result.returncode == 4, result.stdout + result.stderr
    assert needle in result.stderr and "Traceback" not in result.stderr and "Scored" not in result.stdout
    ref = fake_kaggle.submissions[0]["ref"]
    assert f"ubmission {ref}" in result.stderr and "kit leaderboard --sync" in result.stderr
    [row] = ledger.rows()
    assert row["status"] == "pending" and row["ref"] == str(ref) and row["public_score"] == ""


def test_a_submission_created_without_its_ref_is_pending_and_sync_settles_it_once(
    env, installed, fake_kaggle, tmp_path
):
    fake_kaggle.create_reply = {"message": "Successfully submitted to Digit Recognizer", "ref": 0}
    path, expected = _good(tmp_path, fake_kaggle)
    result = _kit(["submit", str(path), "-m", "no ref"], env, fake_kaggle)
    assert result.returncode == 4, result.stdout + result.stderr
    assert "did not say its number" in result.stderr and "kit leaderboard --sync" in result.stderr
    assert [r["status"] for r in ledger.rows()] == ["pending"] and len(fake_kaggle.submissions) == 1
    synced = _kit(["leaderboard", "--sync"], env, fake_kaggle)
    assert synced.returncode == 0, synced.stderr
    [row] = ledger.rows()
    assert row["ref"] == str(fake_kaggle.submissions[0]["ref"]) and row["public_score"] == expected


def test_an_upload_that_never_completes_is_a_network_error_and_sends_nothing(env, installed, fake_kaggle, tmp_path):
    fake_kaggle.fail_uploads = True
    path, _ = _good(tmp_path, fake_kaggle)
    result = _kit(["submit", str(path)], env, fake_kaggle)
    assert result.returncode == 5, result.stdout + result.stderr
    assert "did not complete" in result.stderr and "nothing was submitted" in result.stderr
    assert "Traceback" not in result.stderr and fake_kaggle.submissions == []
    assert [r["status"] for r in ledger.rows()] == ["failed"]


def test_a_kaggle_that_stops_answering_while_kit_waits_is_bounded_and_names_the_submission(
    env, installed, fake_kaggle, tmp_path
):
    """No request waits for ever (KIT_KAGGLE_TIMEOUT bounds each answer): a silent status call is a network error,
    the submission's ref and --sync named."""
    import time

    fake_kaggle.silent = {"GetSubmission"}
    path, _ = _good(tmp_path, fake_kaggle)
    started = time.monotonic()
    result = _kit(["submit", str(path), "--timeout", "5"], {**env, "KIT_KAGGLE_TIMEOUT": "2"}, fake_kaggle)
    assert result.returncode == 5, result.stdout + result.stderr
    assert time.monotonic() - started < 40
    ref = fake_kaggle.submissions[0]["ref"]
    assert f"Submission {ref} was made, but Kaggle stopped answering" in result.stderr
    assert "kit leaderboard --sync" in result.stderr and "Traceback" not in result.stderr
    assert [r["status"] for r in ledger.rows()] == ["pending"]


def test_a_bad_kit_kaggle_timeout_is_one_line(env, installed, fake_kaggle, tmp_path):
    path, _ = _good(tmp_path, fake_kaggle)
    result = _kit(["submit", str(path)], {**env, "KIT_KAGGLE_TIMEOUT": "soon"}, fake_kaggle)
    assert result.returncode == 2 and "KIT_KAGGLE_TIMEOUT='soon'" in result.stderr and fake_kaggle.calls == []


def test_a_server_error_while_kit_waits_for_the_score_is_asked_again(env, installed, fake_kaggle, tmp_path):
    fake_kaggle.unavailable = {"GetSubmission": 1}
    path, expected = _good(tmp_path, fake_kaggle)
    result = _kit(["submit", str(path)], env, fake_kaggle)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"public score {expected}" in result.stdout and "asking again" in result.stderr
    assert [r["status"] for r in ledger.rows()] == ["complete"]


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("120", 120.0), ("-5", 0.0), ("1e12", 86_400.0), ("inf", None), ("nan", None), ("soon", None), ("", None),
     ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0)],
)  # fmt: skip
def test_retry_after_is_read_in_every_form_http_allows_and_bounded(header, seconds):
    from types import SimpleNamespace

    from kit import kaggle_api

    response = SimpleNamespace(headers={"Retry-After": header})
    assert kaggle_api._retry_after(response) == seconds
    said = str(kaggle_api._rate_limited("submit", seconds, 12.4))
    assert "kit waited 12 s as it asked" in said and "inf" not in said and "16666667" not in said


def test_a_429_on_every_call_says_how_long_kit_really_waited(env, installed, fake_kaggle, tmp_path):
    fake_kaggle.throttle = {"StartSubmissionUpload": 10_000}  # Retry-After: 1, every time
    path, _ = _good(tmp_path, fake_kaggle)
    result = _kit(["submit", str(path)], env, fake_kaggle)
    assert result.returncode == 7, result.stdout + result.stderr
    waited = int(re.search(r"kit waited (\d+) s as it asked", result.stderr).group(1))
    assert waited < 300 and "after 300 s" not in result.stderr  # the client's retries ran out first: said as it was


def test_the_score_wait_asks_last_at_its_timeout_to_the_second(monkeypatch):
    from kit import kaggle_api

    now = [0.0]
    monkeypatch.setattr(kaggle_api.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(kaggle_api.time, "sleep", lambda s: now.__setitem__(0, now[0] + s))
    asked = []
    kaggle_api.poll(lambda: asked.append(now[0]) or "pending", lambda a: False, timeout=60.0)
    assert asked[-1] == 60.0 and asked[0] == 0.0  # a score that arrives at 59 s is seen, not missed at 42 s


@pytest.mark.parametrize(("minutes_ago", "sent"), [(20, True), (1, False)])
def test_a_send_that_never_reached_kaggle_blocks_no_resubmit(env, installed, fake_kaggle, tmp_path, minutes_ago, sent):
    """An upload that broke before Kaggle made the submission left a pending row without a ref. The next `kit submit`
    of the file asks Kaggle's list: not there long after it was sent, it never arrived (failed, and the file goes);
    sent a minute ago, Kaggle may not list it yet, and kit says so instead of 'already submitted'."""
    import datetime
    import hashlib

    path, expected = _good(tmp_path, fake_kaggle)
    row = log_row(sha256=hashlib.sha256(path.read_bytes()).hexdigest(), file=str(path), message="lost",
                  status="pending", error="connection lost during upload")  # fmt: skip
    when = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=minutes_ago)
    ledger.update(row, utc_time=when.strftime("%Y-%m-%dT%H:%M:%SZ"))
    result = _kit(["submit", str(path)], env, fake_kaggle)
    rows = {r["id"]: r for r in ledger.rows()}
    if sent:
        assert result.returncode == 0 and f"public score {expected}" in result.stdout, result.stdout + result.stderr
        assert rows[row]["status"] == "failed" and "never reached Kaggle" in rows[row]["error"]
        assert len(fake_kaggle.submissions) == 1
    else:
        assert result.returncode == 7 and "kit has not heard whether Kaggle made it" in result.stderr, result.stderr
        assert rows[row]["status"] == "pending" and fake_kaggle.submissions == []


@pytest.mark.parametrize("dropped", [1, 1_000])
def test_a_broken_upload_is_retried_a_bounded_number_of_times_and_each_said(env, installed, fake_kaggle, tmp_path,
                                                                               dropped):  # fmt: skip
    """The kaggle client retries a broken file upload on its own (10 times, about 6 minutes, silently): kit bounds it
    and each retry is a note on stderr; once the retries are spent nothing was submitted, and kit says so."""
    import time

    fake_kaggle.drop_uploads = dropped
    path, expected = _good(tmp_path, fake_kaggle)
    started = time.monotonic()
    result = _kit(["submit", str(path)], env, fake_kaggle)
    assert "note: The upload to Kaggle broke off; the kaggle client tries again (1 of 3)." in result.stderr
    assert "Traceback" not in result.stderr
    if dropped == 1:
        assert result.returncode == 0 and f"public score {expected}" in result.stdout, result.stderr
    else:
        assert result.returncode == 5 and fake_kaggle.submissions == [], result.stdout + result.stderr
        assert fake_kaggle.calls.count("PUT dropped") < 40 and time.monotonic() - started < 240
