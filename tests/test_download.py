"""`kit download` through the real kaggle client against the fake server, --from-zip, --sample, and errors."""

from __future__ import annotations

import contextlib
import os
import re
import socket
from pathlib import Path

import numpy as np
import pytest

from kit import data
from tests.conftest import kit_here, run_kit


def _data_files(env) -> set[str]:
    from pathlib import Path

    folder = Path(env["KIT_DATA_DIR"])
    return {p.name for p in folder.iterdir()} if folder.exists() else set()


def test_download_fetches_checks_and_caches_then_is_idempotent(env, fake_kaggle, tiny):
    result = run_kit(["download"], {**env, **fake_kaggle.env()})
    assert result.returncode == 0, result.stderr
    assert "Installed" in result.stdout and "source: kaggle" in result.stdout
    assert "this test.csv has 300 rows, not the competition's 28,000" in result.stdout  # tiny's: said, not hidden
    assert _data_files(env) == {"train.csv", "test.csv", "sample_submission.csv", "cache.npz", "kit.json"}
    assert fake_kaggle.methods()[0] == "DownloadDataFiles"
    assert "GET /storage/digit-recognizer.zip" in fake_kaggle.calls
    comp = data.load_competition()
    np.testing.assert_array_equal(comp.train_images, tiny.train_x)
    np.testing.assert_array_equal(comp.train_labels, tiny.train_y)
    np.testing.assert_array_equal(comp.test_images, tiny.test_x)

    calls = len(fake_kaggle.calls)
    again = run_kit(["download"], {**env, **fake_kaggle.env()})
    assert again.returncode == 0 and "nothing to do" in again.stdout
    assert len(fake_kaggle.calls) == calls  # no second download

    forced = run_kit(["download", "--force"], {**env, **fake_kaggle.env()})
    assert forced.returncode == 0, forced.stderr
    assert len(fake_kaggle.calls) > calls


def test_no_credentials_explains_where_they_go_before_loading_anything_heavy(env):
    result = run_kit(["download"], env)
    assert result.returncode == 3
    assert "kaggle.json" in result.stderr and "KAGGLE_USERNAME" in result.stderr
    assert "access_token" in result.stderr and "KAGGLE_API_TOKEN" in result.stderr
    assert "Traceback" not in result.stderr
    assert _data_files(env) == set()
    import subprocess
    import sys

    code = (
        "import sys\nfrom kit.cli import main\nsys.argv = ['kit', 'download']\n"
        "try:\n    main()\nexcept SystemExit as e:\n    print('EXIT', e.code)\n"
        "print('LOADED', 'tensorflow' in sys.modules, 'keras' in sys.modules)"
    )
    probe = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert "EXIT 3" in probe.stdout and "LOADED False False" in probe.stdout, probe.stdout + probe.stderr


@pytest.mark.parametrize(
    ("setup", "code", "needle"),
    [
        (lambda f: {"KAGGLE_KEY": "wrong"}, 3, "rejected KAGGLE_USERNAME and KAGGLE_KEY (401)"),
        (lambda f: setattr(f, "rules_accepted", False), 4, "competitions/digit-recognizer/rules"),
        (lambda f: setattr(f, "known_competitions", set()), 4, "(404)"),
        (lambda f: setattr(f, "zip_bytes", b"PK\x03\x04 this is not a zip"), 6, "corrupt or truncated"),
    ],
    ids=["401", "403-rules", "404", "corrupt-zip"],
)
def test_kaggle_errors_are_one_clear_sentence(env, fake_kaggle, setup, code, needle):
    extra = setup(fake_kaggle) or {}
    result = run_kit(["download"], {**env, **fake_kaggle.env(), **extra})
    assert result.returncode == code, result.stderr
    assert needle in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") <= 3
    assert not (set(_data_files(env)) & {"train.csv", "cache.npz"})  # nothing half-installed
    from pathlib import Path

    leftovers = [p.name for p in Path(env["KIT_DATA_DIR"]).parent.iterdir() if ".partial-" in p.name]
    assert leftovers == []


def test_offline_says_kaggle_is_unreachable(env):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proxy = f"http://127.0.0.1:{port}"
    offline = {
        **env,
        "KAGGLE_API_ENVIRONMENT": "LOCALHOST",
        "http_proxy": proxy,
        "HTTP_PROXY": proxy,
        "NO_PROXY": "",
        "no_proxy": "",
        "KAGGLE_USERNAME": "alice",
        "KAGGLE_KEY": "secret",
    }
    result = run_kit(["download"], offline)
    assert result.returncode == 5, result.stderr
    assert "Could not reach Kaggle" in result.stderr and "Traceback" not in result.stderr


def test_from_zip_installs_and_rejects_a_truncated_zip(env, tiny, tmp_path):
    good = tmp_path / "digit-recognizer.zip"
    good.write_bytes(tiny.zip_bytes)
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(tiny.zip_bytes[: len(tiny.zip_bytes) // 2])

    bad = run_kit(["download", "--from-zip", str(truncated)], env)
    assert bad.returncode == 6 and "corrupt or truncated" in bad.stderr
    assert _data_files(env) == set()

    ok = run_kit(["download", "--from-zip", str(good)], env)
    assert ok.returncode == 0, ok.stderr
    assert data.read_meta(data.data_dir())["train_rows"] == len(tiny.train_y)

    # a failed re-install leaves the good data in place
    again = run_kit(["download", "--from-zip", str(truncated), "--force"], env)
    assert again.returncode == 6
    assert data.read_meta(data.data_dir())["train_rows"] == len(tiny.train_y)


def test_sample_is_kaggle_shaped_and_says_so(env):
    result = run_kit(["download", "--sample"], env)
    assert result.returncode == 0, result.stderr
    assert "SAMPLE" in result.stdout
    comp = data.load_competition()
    assert comp.is_sample
    assert comp.train_images.shape[1:] == (28, 28, 1) and comp.train_images.dtype == np.uint8
    assert comp.train_images.max() == 255 and set(np.unique(comp.train_labels)) == set(range(10))
    import pytest as _pytest

    with _pytest.MonkeyPatch.context() as mp:  # a second load reads the uint8 cache, not the CSVs
        mp.setattr(data, "read_competition_csvs", lambda folder: (_ for _ in ()).throw(AssertionError("CSVs read")))
        np.testing.assert_array_equal(data.load_competition().train_labels, comp.train_labels)


def test_sample_never_silently_replaces_real_data(env, tiny, tmp_path):
    archive = tmp_path / "digit-recognizer.zip"
    archive.write_bytes(tiny.zip_bytes)
    assert run_kit(["download", "--from-zip", str(archive)], env).returncode == 0
    refused = run_kit(["download", "--sample"], env)
    assert refused.returncode == 2 and "holds the real competition data" in refused.stderr
    assert data.read_meta(data.data_dir())["source"] == "zip"
    # and real data replaces a sample without --force
    assert run_kit(["download", "--sample", "--force"], env).returncode == 0
    assert run_kit(["download", "--from-zip", str(archive)], env).returncode == 0
    assert data.read_meta(data.data_dir())["source"] == "zip"


def test_help_imports_neither_kaggle_nor_tensorflow(env):
    import subprocess
    import sys

    code = (
        "import sys\nfrom kit.cli import main\n"
        "sys.argv = ['kit', '--help']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('LOADED', 'kaggle' in sys.modules, 'tensorflow' in sys.modules, 'pandas' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert "download" in result.stdout and "train" in result.stdout
    assert "LOADED False False False" in result.stdout


# --------------------------------------------------------------------- kit never replaces what it did not install


@pytest.mark.parametrize("force", [False, True], ids=["plain", "force"])
def test_download_refuses_a_folder_kit_did_not_install(env, tiny, tmp_path, force):
    from pathlib import Path

    archive = tmp_path / "digit-recognizer.zip"
    archive.write_bytes(tiny.zip_bytes)
    project = tmp_path / "proj"
    (project / "notes").mkdir(parents=True)
    (project / "thesis.tex").write_text("two years of work")
    (project / "notes" / "a.txt").write_text("more")
    result = run_kit(["download", "--from-zip", str(archive), "--data-dir", str(project), *(["--force"] * force)], env)
    assert result.returncode == 6, result.stdout + result.stderr
    assert "did not install" in result.stderr and "Traceback" not in result.stderr
    assert (project / "thesis.tex").read_text() == "two years of work" and (project / "notes" / "a.txt").is_file()
    assert sorted(p.name for p in project.iterdir()) == ["notes", "thesis.tex"]
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name or ".old-" in p.name]

    a_file = tmp_path / "data.txt"
    a_file.write_text("mine")
    result = run_kit(["download", "--sample", "--data-dir", str(a_file), *(["--force"] * force)], env)
    assert result.returncode == 6 and "is a file" in result.stderr
    assert a_file.read_text() == "mine"

    # '.', the working directory (the repository here), is refused too, with no traceback and no leftovers
    here = run_kit(["download", "--sample", "--data-dir", ".", *(["--force"] * force)], env)
    assert here.returncode == 6 and "did not install" in here.stderr and "Traceback" not in here.stderr
    root = Path(__file__).resolve().parents[1]
    assert not [p for p in root.parent.iterdir() if p.name.startswith(f".{root.name}.")]


def test_download_installs_into_an_empty_folder_and_replaces_its_own(tmp_path, tiny):
    archive = tmp_path / "digit-recognizer.zip"
    archive.write_bytes(tiny.zip_bytes)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert data.install_zip(archive, empty)["train_rows"] == len(tiny.train_y)
    assert data.install_sample(empty)["source"] == "sample"  # kit's own data: replaced
    assert data.read_meta(empty)["source"] == "sample"


def test_unwritable_parent_is_one_line(env, tmp_path):
    """A parent that cannot hold the data directory (here a file: root writes anywhere else) ends in one line."""
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    result = run_kit(["download", "--sample", "--data-dir", str(blocker / "data")], env)
    assert result.returncode == 6, result.stderr
    assert "choose a writable --data-dir" in result.stderr and "Traceback" not in result.stderr
    assert blocker.read_text() == "a file, not a folder"


# ------------------------------------------------------------------------------------------ Kaggle Notebooks


def test_kaggle_notebook_installs_the_attached_data_without_credentials(env, tiny, tmp_path):
    stand_in = tmp_path / "input"  # plays /kaggle/input: the competition under its own path, and another data set
    attached = stand_in / "competitions" / "digit-recognizer"
    attached.mkdir(parents=True)
    for name in data.FILES:
        (attached / name).write_bytes((tiny.folder / name).read_bytes())
    (stand_in / "titanic").mkdir()
    (stand_in / "titanic" / "train.csv").write_text("PassengerId,Survived\n1,0\n")
    (stand_in / "titanic" / "test.csv").write_text("PassengerId\n2\n")
    result = run_kit(["download"], {**env, "KIT_KAGGLE_INPUT": str(stand_in)})
    assert result.returncode == 0, result.stderr
    assert "source: kaggle-notebook" in result.stdout
    comp = data.load_competition()
    np.testing.assert_array_equal(comp.train_images, tiny.train_x)
    np.testing.assert_array_equal(comp.test_images, tiny.test_x)
    assert sorted(p.name for p in attached.iterdir()) == sorted(data.FILES)  # the input is left as it was

    nothing = tmp_path / "empty-input"
    nothing.mkdir()
    missing = run_kit(["download", "--force"], {**env, "KIT_KAGGLE_INPUT": str(nothing)})
    assert missing.returncode == 6 and "Add Input -> Competitions -> Digit Recognizer" in missing.stderr
    assert data.load_competition().source == "kaggle-notebook"  # the installed data is untouched


def test_kaggle_notebook_keeps_runs_and_submissions_in_kaggle_working(monkeypatch, tmp_path):
    from pathlib import Path

    from kit import paths

    for name in ("KIT_DATA_DIR", "KIT_RUNS_DIR", "KIT_SUBMISSIONS_DIR", "KIT_KAGGLE_INPUT", "KAGGLE_KERNEL_RUN_TYPE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(paths, "KAGGLE_INPUT", tmp_path / "no-such-input")
    monkeypatch.setattr(paths, "KAGGLE_WORKING", tmp_path / "working")
    (tmp_path / "working").mkdir()
    assert not paths.in_kaggle_notebook()
    assert (paths.runs_dir(), paths.submissions_dir()) == (Path("runs"), Path("submissions"))
    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Interactive")
    assert paths.in_kaggle_notebook()
    assert paths.runs_dir() == tmp_path / "working" / "runs"
    assert paths.submissions_dir() == tmp_path / "working" / "submissions"
    assert paths.data_dir() == tmp_path / "working" / "data" / "digit-recognizer"
    monkeypatch.setenv("KIT_RUNS_DIR", str(tmp_path / "mine"))  # the variable still wins
    assert paths.runs_dir() == tmp_path / "mine"


def test_install_decides_what_to_do_without_a_subprocess(tmp_path, tiny, monkeypatch):
    from kit.errors import UsageError

    monkeypatch.setattr(data.paths, "in_kaggle_notebook", lambda: False)  # this machine may be a Kaggle Notebook
    archive = tmp_path / "digit-recognizer.zip"
    archive.write_bytes(tiny.zip_bytes)
    dest = tmp_path / "d"
    with pytest.raises(UsageError, match="either --sample or --from-zip"):
        data.install(dest, from_zip=archive, sample=True)
    first = data.install(dest, from_zip=archive)
    assert first.new and first.meta["source"] == "zip" and first.dest == dest
    again = data.install(dest, from_zip=archive)  # there already: kept, nothing downloaded
    assert not again.new and again.meta == first.meta
    with pytest.raises(UsageError, match="holds the real competition data"):
        data.install(dest, sample=True)
    assert data.install(dest, sample=True, force=True).meta["source"] == "sample"

    opened = []

    def downloading():
        opened.append(True)
        return contextlib.nullcontext()

    def download_competition(folder):
        (folder / "digit-recognizer.zip").write_bytes(tiny.zip_bytes)
        return folder / "digit-recognizer.zip"

    from kit import kaggle_api

    monkeypatch.setattr(kaggle_api, "download_competition", download_competition)
    fetched = data.install(dest, downloading=downloading)  # the sample is there: the real data replaces it
    assert fetched.new and fetched.meta["source"] == "kaggle" and opened == [True]


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"", "kaggle.json is empty"),
        (b"username=alice key=secret", "kaggle.json is not JSON"),
        (b'{"username": "alice"}', "kaggle.json has no 'key'"),
        (b'["alice", "secret"]', "kaggle.json has no 'username' or 'key'"),
    ],
    ids=["empty", "not-json", "no-key", "a-list"],
)
def test_a_broken_kaggle_json_is_named_with_what_is_wrong(env, fake_kaggle, content, needle):
    from pathlib import Path

    folder = Path(env["HOME"]) / ".kaggle"
    folder.mkdir()
    (folder / "kaggle.json").write_bytes(content)
    server = {
        k: v for k, v in fake_kaggle.env().items() if not k.startswith("KAGGLE_") or k == "KAGGLE_API_ENVIRONMENT"
    }
    result = run_kit(["download"], {**env, **server})
    assert result.returncode == 3, result.stderr
    assert needle in result.stderr and str(folder / "kaggle.json") in result.stderr
    assert "No Kaggle credentials found" not in result.stderr and "Traceback" not in result.stderr
    assert fake_kaggle.calls == []


def test_a_rejected_api_token_is_named_as_the_token(env, fake_kaggle):
    """A KAGGLE_API_TOKEN Kaggle refuses is the token's fault: kit never sends the user to a kaggle.json."""
    server = {
        k: v for k, v in fake_kaggle.env().items() if not k.startswith("KAGGLE_") or k == "KAGGLE_API_ENVIRONMENT"
    }
    result = run_kit(["download"], {**env, **server, "KAGGLE_API_TOKEN": "KGAT_not_a_real_token"})
    assert result.returncode == 3, result.stderr
    assert "the token in KAGGLE_API_TOKEN" in result.stderr and "kaggle.json" not in result.stderr


def _patched(zip_bytes: bytes, member: str, offset: int, value: bytes) -> bytes:
    """The zip with `value` written at `offset` of `member`'s central directory entry (its flags: 8, its method: 10)."""
    raw = bytearray(zip_bytes)
    at = raw.find(b"PK\x01\x02")
    while at != -1:
        name_len = int.from_bytes(raw[at + 28 : at + 30], "little")
        if raw[at + 46 : at + 46 + name_len].decode() == member:
            raw[at + offset : at + offset + len(value)] = value
        at = raw.find(b"PK\x01\x02", at + 4)
    return bytes(raw)


@pytest.mark.parametrize(
    ("damage", "needle"),
    [
        ("encrypted", "train.csv is encrypted"),
        ("deflate64", "train.csv is compressed in a way Python cannot read (method 9)"),
        ("bomb", "train.csv says it unpacks to"),
    ],
)
def test_a_zip_member_kit_cannot_or_should_not_unpack_is_one_line_and_writes_nothing(
    env, tiny, tmp_path, monkeypatch, damage, needle
):
    zip_bytes = tiny.zip_bytes
    if damage == "encrypted":
        zip_bytes = _patched(zip_bytes, "train.csv", 8, b"\x01\x00")
    elif damage == "deflate64":
        zip_bytes = _patched(zip_bytes, "train.csv", 10, b"\x09\x00")
    else:
        monkeypatch.setattr(data, "MAX_MEMBER", 1000)  # the sample's train.csv is larger: a bomb, to this cap
    archive = tmp_path / "digit-recognizer.zip"
    archive.write_bytes(zip_bytes)
    dest = tmp_path / "data"
    with pytest.raises(data.DataError, match=re.escape(needle)):
        data.install_zip(archive, dest)
    assert not dest.exists() and not [p.name for p in tmp_path.iterdir() if ".partial-" in p.name]


def test_the_scratch_folder_of_a_killed_install_goes_at_the_next_command_but_not_one_in_use(tmp_path):
    from kit import locks

    dest = tmp_path / "digit-recognizer"
    killed = tmp_path / ".digit-recognizer.partial-dead"  # as a killed install leaves it: kit's mark beside it
    (killed / "data").mkdir(parents=True)
    (killed / "data" / "train.csv").write_bytes(b"x" * 1000)
    in_use = tmp_path / ".digit-recognizer.partial-live"
    in_use.mkdir()
    for folder in (killed, in_use):
        folder.with_name(folder.name + data.MARK).write_text(data.MARK_TEXT)
    held = locks.try_exclusive(in_use / data.IN_USE)  # another install, still running
    try:
        data.recover(dest)
        assert not killed.exists() and in_use.is_dir()
    finally:
        held.release()
    data.recover(dest)
    assert not in_use.exists() and sorted(p.name for p in tmp_path.iterdir()) == []  # marks gone with their folders


def test_a_pixel_too_long_for_any_number_is_one_line_without_a_pandas_warning(tmp_path, tiny, recwarn):
    folder = tmp_path / "csvs"
    data.write_csvs(folder, tiny.train_x, tiny.train_y, tiny.test_x)
    lines = (folder / data.TRAIN).read_text().splitlines()
    first = lines[1].split(",")
    first[5] = "1" * 20
    lines[1] = ",".join(first)
    (folder / data.TRAIN).write_text("\n".join(lines) + "\n")
    with pytest.raises(data.DataError, match=r"line 2, column 'pixel4': pixel 1\.1+e\+19 is outside 0\.\.255;"):
        data.read_csv_checked(folder / data.TRAIN, data.TRAIN)
    assert not [w for w in recwarn if "DtypeWarning" in type(w.message).__name__]


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda p: p.mkdir(), "kaggle.json is a folder, not a token file"),
        (lambda p: os.mkfifo(p), "kaggle.json is a pipe, not a token file"),
        (lambda p: p.write_bytes(b" " * 70_000), "too large to be a Kaggle API token"),
        (lambda p: p.symlink_to("/dev/zero"), "kaggle.json is not a file, not a token file"),
    ],
    ids=["folder", "fifo", "huge", "dev-zero"],
)
@pytest.mark.parametrize("keys", ["none", "in the environment"])
def test_a_kaggle_json_that_is_no_token_file_is_one_line_and_never_read(env, make, needle, keys, monkeypatch):
    """Before: a folder was "no credentials found", a pipe hung kit, /dev/zero took 7.7 GB; and with
    KAGGLE_USERNAME/KAGGLE_KEY set, the client read the file all the same."""
    from kit import kaggle_api
    from kit.errors import CredentialsError

    folder = Path(env["HOME"]) / ".kaggle"
    folder.mkdir()
    make(folder / "kaggle.json")
    monkeypatch.setenv("HOME", env["HOME"])
    if keys != "none":
        monkeypatch.setenv("KAGGLE_USERNAME", "alice")
        monkeypatch.setenv("KAGGLE_KEY", "k" * 32)
    with pytest.raises(CredentialsError, match=re.escape(needle)):
        kaggle_api.find_credentials()


def test_a_credential_http_cannot_send_is_one_line_before_any_request(env, fake_kaggle):
    server = {**fake_kaggle.env(), "KAGGLE_KEY": "abc\u201cdef"}  # a pasted curly quote
    result = run_kit(["download"], {**env, **server})
    assert result.returncode == 3, result.stderr
    assert "KAGGLE_KEY holds '\u201c', a character HTTP cannot send" in result.stderr
    assert "Kaggle's answer" not in result.stderr and fake_kaggle.calls == []


KIT_LIKE = (".digit-recognizer.old-mybackup", ".digit-recognizer.partial-thesis", ".digit-recognizer.old-",
            ".digit-recognizer.partial-x")  # fmt: skip


@pytest.mark.parametrize("kind", ["folder", "folder with a fake lock", "file", "symlink to a folder",
                                  "symlink to a file", "folder with a symlinked mark"])  # fmt: skip
def test_a_users_things_with_kit_like_names_beside_the_data_survive_every_command(env, tmp_path, kind):
    """kit removes only what it made (its mark inside, no symlink followed): a user's backup named like kit's scratch
    folders survives `kit download`, `kit report` and the next install's cleanup, and nothing is written into a
    symlink's target."""
    dest = Path(env["KIT_DATA_DIR"])
    dest.parent.mkdir(parents=True, exist_ok=True)
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "precious.txt").write_text("mine")
    made = []
    for name in KIT_LIKE:
        path = dest.parent / name
        if kind.startswith("folder"):
            path.mkdir()
            (path / "precious.txt").write_text("mine")
            if kind == "folder with a fake lock":
                (path / data.IN_USE).write_text("")
            if kind == "folder with a symlinked mark":
                (target / "mark").write_text(data.MARK_TEXT)
                path.with_name(path.name + data.MARK).symlink_to(target / "mark")
        elif kind == "file":
            path.write_text("mine")
        else:
            path.symlink_to(target if kind == "symlink to a folder" else target / "precious.txt")
        made.append(path)
    for command in (["download", "--sample"], ["download", "--sample", "--force"], ["report"], ["runs"]):
        kit_here(command, env)
    data.recover(dest)
    for path in made:
        assert path.is_symlink() or path.exists(), path
        if path.is_dir() and not path.is_symlink():
            assert (path / "precious.txt").read_text() == "mine"
    assert sorted(p.name for p in target.iterdir()) == sorted(["precious.txt", *(["mark"] if "mark" in kind else [])])
