"""`kit train --kaggle`: a kernel pushed through the real kaggle client to the fake Kaggle, which runs it for real (in a
folder standing in for /kaggle/input and /kaggle/working), then the run brought home; and every way that goes wrong."""

from __future__ import annotations

import base64
import io
import json
import signal
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from kit import api, config, data, files, kaggle_kernel, kaggle_script, runs, submission
from kit.errors import RunError, UsageError
from tests.conftest import ROOT, kit_here, run_kit
from tests.fake_kaggle import FakeKaggle, zip_of

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def full_test_set(tmp_path_factory, tiny) -> bytes:
    """The sample's training rows and a test set of the real competition's 28,000 rows (the sample's test images,
    repeated): the zip the fake Kaggle attaches, so the run that comes home can be submitted."""
    folder = tmp_path_factory.mktemp("full-test")
    data.write_csvs(folder, tiny.train_x, tiny.train_y, np.resize(tiny.test_x, (submission.REAL_TEST_ROWS, 28, 28, 1)))
    return zip_of({name: (folder / name).read_bytes() for name in data.FILES})


def _server(zip_bytes: bytes):
    return FakeKaggle(zip_bytes=zip_bytes).start()


@pytest.fixture
def fake(tiny):
    server = _server(tiny.zip_bytes)
    yield server
    server.stop()


def _install(env, zip_bytes: bytes, tmp_path: Path) -> None:
    archive = tmp_path / "digit-recognizer.zip"
    archive.write_bytes(zip_bytes)
    assert kit_here(["download", "--from-zip", str(archive)], env).returncode == 0


def test_a_run_trained_in_a_kaggle_kernel_comes_home_as_a_local_run(env, full_test_set, tmp_path):
    server = _server(full_test_set)
    try:
        _install(env, full_test_set, tmp_path)  # this machine has the same data (kit report reads its labels)
        remote = {**env, **server.env()}
        # the seed net: the kernel predicts 28,000 test images with each fold's model; both in the kernel's process
        args = ["train", "--model", "seed", "--folds", "2", "--limit", "2000", "--epochs", "1", "--no-tta",
                "--jobs", "1", "--kaggle", "--run-id", "r1"]  # fmt: skip
        result = run_kit(args, remote, timeout=900)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "pushed kernel alice/kit-r1 version 1 (GPU T4 x2)" in result.stdout
        assert "kernel queued" in result.stdout and "kernel complete" in result.stdout
        assert "CV (OOF)" in result.stdout and "submission:" in result.stdout
        pushed = server.pushes[0]
        assert pushed["slug"] == "alice/kit-r1" and pushed["kernelType"] == "script" and pushed["isPrivate"]
        assert pushed["enableGpu"] and pushed["machineShape"] == "NvidiaTeslaT4" and not pushed["enableInternet"]
        assert pushed["competitionDataSources"] == ["digit-recognizer"]
        assert pushed["sessionTimeoutSeconds"] == api.KAGGLE_MINUTES * 60  # a hung kernel cannot spend the week
        assert "ARGS = ['--limit', '2000', '--jobs', '1']" in pushed["text"]  # beside the recipe the kernel carries
        assert pushed_recipe(pushed["text"]) == config.recipe("seed", folds=2, epochs=1, tta=False)

        run = runs.runs_dir() / "r1"
        saved = runs.load_config(run)
        assert saved["kind"] == "train" and saved["recipe"]["folds"] == 2 and saved["data"]["train_rows"] == 1497
        where = saved["kaggle"]
        assert where["kernel"] == "alice/kit-r1" and where["version"] == 1 and where["python"] and where["keras"]
        assert runs.load_metrics(run)["cv_rows"] == 1497 and runs.member_done(run, 0) and runs.member_done(run, 1)
        assert "kit on Kaggle:" in (run / "kaggle.log").read_text()
        assert not list(runs.runs_dir().glob(".r1.kaggle-*"))  # the download's scratch folder is gone
        csv = Path(env["KIT_SUBMISSIONS_DIR"]) / "r1.csv"
        submission.validate(csv, submission.REAL_TEST_ROWS)

        dry = run_kit(["submit", "r1", "--dry-run"], remote)
        assert dry.returncode == 0, dry.stdout + dry.stderr
        report = kit_here(["report", "r1"], env)
        assert report.returncode == 0, report.stderr
        listed = kit_here(["runs", "--csv"], env)
        assert listed.returncode == 0 and "trained on Kaggle" in listed.stdout
        again = run_kit(args, remote)  # the run is home: its id is taken, nothing is pushed
        assert again.returncode == 8 and "came home from Kaggle already" in again.stderr and len(server.pushes) == 1
    finally:
        server.stop()


# `python -m kit` with Ctrl-C as a terminal's foreground process has it. A child inherits a blocked or ignored SIGINT,
# and twice in `make test` the SIGINT never arrived (faulthandler: kit still polling 60 s later), as if the xdist
# worker that started it had one so.
_CTRL_C_ON = """
import runpy, signal, sys
signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
signal.signal(signal.SIGINT, signal.default_int_handler)
sys.argv = ["kit", *sys.argv[1:]]
runpy.run_module("kit", run_name="__main__")
"""


def test_ctrl_c_stops_waiting_not_the_kernel_then_the_same_command_re_attaches(env, fake, tiny, tmp_path):
    _install(env, tiny.zip_bytes, tmp_path)
    remote = {**env, **fake.env()}
    fake.queued_polls = 1_000  # it stays queued until the test lets it run
    args = ["train", "--folds", "2", "--epochs", "1", "--model", "seed", "--jobs", "1", "--kaggle", "--run-id", "r2"]
    waiting = subprocess.Popen([sys.executable, "-c", _CTRL_C_ON, *args], env={**remote, "PYTHONFAULTHANDLER": "1"},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)  # fmt: skip
    try:
        for line in waiting.stdout:
            if "kernel queued" in line:
                break
        waiting.send_signal(signal.SIGINT)
        try:  # both pipes read while it exits: one left full would hold it
            _, stderr = waiting.communicate(timeout=60)
        except subprocess.TimeoutExpired:  # where every thread of it is stuck (faulthandler, on SIGABRT)
            waiting.send_signal(signal.SIGABRT)
            mine = f"this process: SIGINT {signal.getsignal(signal.SIGINT)}, blocked {signal.pthread_sigmask(0, [])}"
            pytest.fail(f"kit did not stop waiting within 60 s of Ctrl-C ({mine}):\n{waiting.communicate()[1][-6000:]}")
        assert waiting.returncode == 130, stderr
    finally:
        waiting.kill()
    assert "Stopped waiting; kernel alice/kit-r2 version 1 keeps running on Kaggle" in stderr, stderr
    assert "`kit train --kaggle --run-id r2` re-attaches" in stderr and "Traceback" not in stderr
    listed = kit_here(["runs", "--csv"], env)
    assert "on Kaggle: alice/kit-r2 v1" in listed.stdout

    other = run_kit([*args[:-2], "--epochs", "3", "--run-id", "r2"], remote)  # other options: not this run
    assert other.returncode == 2 and "already training on Kaggle with other options (epochs 1 vs 3)" in other.stderr
    local = kit_here(["train", "--run-id", "r2", "--model", "seed"], {**env, "KIT_DATA_DIR": env["HOME"] + "/none"})
    assert local.returncode == 8 and "is training on Kaggle" in local.stderr  # at the door: before the (missing) data

    fake.queued_polls = 0
    fake.expire_urls = 1  # the first output URL has expired by the time kit fetches it: listed again
    back = run_kit(["train", "--kaggle", "--run-id", "r2"], remote, timeout=600)
    assert back.returncode == 0, back.stdout + back.stderr
    assert "re-attached to kernel alice/kit-r2 version 1" in back.stdout
    assert len(fake.pushes) == 1 and fake.methods().count("ListKernelSessionOutput") == 2
    assert runs.load_metrics(runs.runs_dir() / "r2") is not None
    submission.validate(Path(env["KIT_SUBMISSIONS_DIR"]) / "r2.csv", len(tiny.test_x))


def test_a_kernel_that_fails_saves_its_log_names_kits_error_and_the_next_push_is_a_new_version(env, fake, tiny):
    remote = {**env, **fake.env()}
    fake.attach = False  # the kernel finds no competition data
    args = ["train", "--folds", "2", "--epochs", "1", "--model", "seed", "--kaggle", "--run-id", "r3"]
    result = run_kit(args, remote)
    assert result.returncode == 4, result.stdout + result.stderr
    assert "Kernel alice/kit-r3 version 1 failed: No digit-recognizer data is attached" in result.stderr
    log = runs.runs_dir() / "r3" / "kaggle.log"
    assert str(log) in result.stderr and "No digit-recognizer data is attached" in log.read_text()
    assert "Traceback" not in result.stderr
    assert "v1 (error)" in kit_here(["runs", "--csv"], env).stdout
    fake.queued_polls = 1_000
    fake.die_after = "GetKernelSessionStatus"  # and then Kaggle goes away while kit waits for the new version
    lost = run_kit(["train", "--kaggle", "--run-id", "r3"], remote)
    assert lost.returncode == 5, lost.stdout + lost.stderr
    assert "Lost Kaggle while waiting for kernel alice/kit-r3 version 2; it keeps running there" in lost.stderr
    assert len(fake.pushes) == 2


def test_a_push_cut_off_after_it_took_effect_is_re_attached_never_pushed_twice(env, fake, tiny, tmp_path):
    """The push reaches Kaggle and its reply is lost (as when Ctrl-C or the network cuts it): kit recorded its intent,
    so the same command finds the version the push made and brings it home; Kaggle has one version."""
    _install(env, tiny.zip_bytes, tmp_path)
    remote = {**env, **fake.env()}
    fake.die_during = "SaveKernel"
    args = ["train", "--folds", "2", "--epochs", "1", "--model", "seed", "--jobs", "1", "--kaggle", "--run-id", "r7"]
    cut = run_kit(args, remote)
    assert cut.returncode == 5, cut.stdout + cut.stderr
    assert "Traceback" not in cut.stderr and len(fake.pushes) == 1
    assert runs.load_config(runs.runs_dir() / "r7")["kaggle"]["status"] == "pushing"
    fake.dead, fake.die_during = False, None
    back = run_kit(["train", "--kaggle", "--run-id", "r7"], remote, timeout=600)
    assert back.returncode == 0, back.stdout + back.stderr
    assert "re-attached to kernel alice/kit-r7 version 1" in back.stdout and len(fake.pushes) == 1
    assert runs.load_metrics(runs.runs_dir() / "r7") is not None


def test_a_push_cut_off_before_it_reached_kaggle_pushes_on_the_next_try(env, fake, tiny, tmp_path):
    remote = {**env, **fake.env()}
    fake.die_after = "GetKernel"  # the connection goes right before the push
    args = ["train", "--folds", "2", "--epochs", "1", "--model", "seed", "--kaggle", "--run-id", "r6"]
    cut = run_kit(args, remote)
    assert cut.returncode == 5 and fake.pushes == [], cut.stdout + cut.stderr
    fake.dead, fake.die_after = False, None
    fake.queued_polls, fake.attach = 0, False  # it then fails at once: what matters is that it was pushed once
    again = run_kit(["train", "--kaggle", "--run-id", "r6"], remote)
    assert "pushed kernel alice/kit-r6 version 1" in again.stdout, again.stdout + again.stderr
    assert len(fake.pushes) == 1 and pushed_recipe(fake.pushes[0]["text"]).epochs == 1


def test_kaggle_answers_403_for_a_kernel_not_pushed_yet_so_the_first_push_goes_ahead(env, fake, tiny):
    """Kaggle hides which slugs exist: a kernel that is not there yet is a 403 (`Permission 'kernels.get' was
    denied`), as the fake answers; the lookup before the first push takes it for 'no kernel yet'."""
    remote = {**env, **fake.env()}
    fake.queued_polls, fake.attach = 0, False  # it fails at once in the kernel: what matters is the push
    result = run_kit(["train", "--model", "seed", "--epochs", "1", "--kaggle", "--run-id", "first"], remote)
    assert "pushed kernel alice/kit-first version 1" in result.stdout, result.stdout + result.stderr
    assert fake.methods()[fake.methods().index("GetKernel") + 1] == "SaveKernel" and len(fake.pushes) == 1
    assert "accept the competition rules" not in result.stderr


def test_a_run_in_another_accounts_kernel_is_refused_in_one_line(env, fake):
    """A run folder from a teammate (its kernel is bob's): Kaggle would answer every call with a 403, so kit says
    whose kernel it is before asking."""
    remote = {**env, **fake.env()}
    run_dir = runs.create("bobs", reuse=True)
    info = {"kernel": "bob/kit-bobs", "version": 3, "url": "https://www.kaggle.com/code/bob/kit-bobs", "args": [],
            "pushed_utc": "2026-01-01T00:00:00Z", "pushed_at": 0, "status": "queued"}  # fmt: skip
    runs.write_config(run_dir, "kaggle", created_utc=info["pushed_utc"], recipe=config.PRESETS["seed"].to_dict(),
                      kaggle=info)  # fmt: skip
    result = run_kit(["train", "--kaggle", "--run-id", "bobs"], remote)
    assert result.returncode == 4, result.stdout + result.stderr
    assert "kernel bob/kit-bobs, which belongs to Kaggle user bob, and you are signed in as alice" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert fake.pushes == [] and "GetKernelSessionStatus" not in fake.methods()


@pytest.mark.parametrize(
    ("setup", "code", "message"),
    [
        ("refused", 4, "Kaggle refused the training kernel: Notebook not found"),
        ("rules", 4, "accept the competition rules at https://www.kaggle.com/competitions/digit-recognizer/rules"),
        ("quota", 7, "Your Kaggle GPU quota is used up (30.0 h of 30.0 h this week)"),
        ("credentials", 3, "No Kaggle credentials found"),
    ],
)
def test_a_kernel_kaggle_will_not_run_is_one_line_and_leaves_nothing(env, fake, setup, code, message):
    remote = {**env, **fake.env()}
    if setup == "refused":
        fake.push_error = "Notebook not found"
    elif setup == "rules":
        fake.push_error = "You must accept the competition rules before using its data"
    elif setup == "quota":
        fake.gpu_used_s = fake.gpu_allowed_s
    else:
        remote = {k: v for k, v in remote.items() if k not in ("KAGGLE_USERNAME", "KAGGLE_KEY")}
    result = run_kit(["train", "--model", "seed", "--kaggle", "--run-id", "r4"], remote)
    assert result.returncode == code, result.stdout + result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not runs.runs_dir().exists() or list(runs.runs_dir().iterdir()) == []
    if setup in ("quota", "credentials"):
        assert fake.pushes == []


def payload(code: str) -> zipfile.ZipFile:
    """What a pushed kernel's code file carries: kit, and its work/ folder (the recipe, your own model files)."""
    return zipfile.ZipFile(io.BytesIO(base64.b64decode(code.split("PAYLOAD = '")[1].split("'")[0])))


def pushed_recipe(code: str) -> config.Recipe:
    """The recipe a pushed kernel trains: its recipe file, read as `kit train --recipe` reads it."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "recipe.toml"
        path.write_bytes(payload(code).read("work/kit-recipe.toml"))
        return config.from_file(path)


# ------------------------------------------------------------------------------------------------ no server


def test_the_kernel_trains_the_recipe_it_carries_and_names_itself_as_kaggle_wants(tmp_path):
    """The code file is kit.kaggle_script's text and a call to its main; the payload holds kit, the recipe file (which
    reads back to the same recipe) and your own model files."""
    assert kaggle_kernel.slug("20261201-120000-Kit_Net.v2") == "kit-20261201-120000-kit-net-v2"
    assert len(kaggle_kernel.slug("x" * 100)) == 50
    r = config.settings(config.recipe("leaderboard", learning_rate=0.002), ["m5.epochs=3", "rotation=15"])
    own = tmp_path / "nets.py"
    own.write_text("def build(recipe): ...\n")
    folder = tmp_path / "kernel"
    folder.mkdir()
    kaggle_kernel.write_kernel(folder, "alice", "r1", ["--jobs", "2"], r, {"nets.py": own})
    meta = json.loads((folder / "kernel-metadata.json").read_text())
    assert meta["id"] == "alice/kit-r1" and meta["title"] == "kit-r1" and meta["code_file"] == "kit_train.py"
    code = (folder / "kit_train.py").read_text()
    compile(code, "kit_train.py", "exec")  # the code file is Python that runs by itself
    assert code.startswith(Path(kaggle_script.__file__).read_text()) and "RUN_ID = 'r1'" in code
    carried = set(payload(code).namelist())
    assert {"kit/cli.py", "kit/kaggle_script.py", "work/kit-recipe.toml", "work/nets.py"} <= carried
    assert pushed_recipe(code) == r


def test_the_kernels_options_are_spelled_as_kit_train_parses_them():
    """kaggle_kernel.FLAGS spells the few options that travel beside the recipe file: each, given, comes back from
    `kit train`'s own parser as the value it was given (a renamed flag fails here, not in a kernel on Kaggle)."""
    import typer.main

    from kit.cli import app

    train = next(c for c in typer.main.get_command(app).commands.values() if c.name == "train")
    for on in (True, False):
        given = {"limit": 500, "jobs": 2, "mirrored": True if on else None, "predict": None if on else False,
                 "time": "5400s", "track": "wandb"}  # fmt: skip
        parsed = train.make_context("train", kaggle_kernel.command_line(given)).params
        assert {name: parsed[name] for name in kaggle_kernel.FLAGS} == {**given, "mirrored": on, "predict": on}


def test_the_kernel_script_runs_kit_in_its_work_folder_and_packs_the_run(tmp_path, monkeypatch):
    """kit.kaggle_script.main with a stand-in kit (its `train` writes a run and a submission, in the folder with the
    recipe): the run and its submission packed (its links left out: W&B's), where it ran recorded; a failed step
    exits naming it."""
    fake_kit = (
        "import os, sys\nfrom pathlib import Path\nstep = sys.argv[1]\n"
        "if step == 'train':\n"
        "    assert Path('kit-recipe.toml').is_file() and Path('nets.py').is_file()\n"
        "    run = Path(os.environ['KIT_RUNS_DIR']) / sys.argv[-1]\n    run.mkdir(parents=True)\n"
        "    (run / 'config.json').write_text('{}')\n    (run / 'latest').symlink_to('config.json')\n"
        "    subs = Path(os.environ['KIT_SUBMISSIONS_DIR'])\n"
        "    subs.mkdir()\n    (subs / (sys.argv[-1] + '.csv')).write_text('ImageId,Label\\n')\n"
        "sys.exit(int(os.environ.get('FAKE_KIT_EXIT', '0')) if step == 'train' else 0)\n"
    )  # fmt: skip
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("kit/__init__.py", "")
        archive.writestr("kit/__main__.py", fake_kit)
        archive.writestr("work/kit-recipe.toml", "")
        archive.writestr("work/nets.py", "")
    payload = base64.b64encode(buffer.getvalue()).decode()
    work = tmp_path / "working"
    work.mkdir()
    kaggle_script.main("r1", ["--jobs", "1"], payload, work)
    with tarfile.open(work / kaggle_script.PACKED) as tar:
        assert set(tar.getnames()) == {"r1", "r1/config.json", "r1.csv"}
    assert set(json.loads((work / kaggle_script.ABOUT).read_text())) == {"python", "tensorflow", "keras", "gpus"}
    monkeypatch.setenv("FAKE_KIT_EXIT", "3")
    with pytest.raises(SystemExit, match=r"kit train failed on Kaggle \(exit 3\)"):
        kaggle_script.main("r2", [], payload, work)


def test_your_own_model_trains_in_the_kernel_and_predicts_at_home(env, fake, tiny, tmp_path):
    """`--model FILE.py:build --kaggle`: the file travels in the kernel with the recipe, the run comes home with its
    copy, and `kit predict` loads its custom layer here; a blend recipe file travels too."""
    own = tmp_path / "mine" / "nets.py"
    own.parent.mkdir()
    own.write_bytes((ROOT / "tests" / "own_model.py").read_bytes())
    _install(env, tiny.zip_bytes, tmp_path)
    remote = {**env, **fake.env()}
    args = ["train", "--model", f"{own}:build", "--folds", "2", "--epochs", "1", "--limit", "300", "--set",
            "dropout=0.1", "--jobs", "1", "--kaggle", "--run-id", "ko"]  # fmt: skip
    result = run_kit(args, remote, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    run = runs.runs_dir() / "ko"
    assert (run / "nets.py").read_bytes() == own.read_bytes()
    recipe = files.read_json(run / "config.json")["recipe"]
    assert recipe["model"] == "nets.py:build" and recipe["dropout"] == 0.1 and recipe["epochs"] == 1
    assert fake.pushes and "--recipe" in fake.kernel("kit-ko")["folder"].joinpath("script.py").read_text()
    own.unlink()
    predicted = kit_here(["predict", "ko"], env)
    assert predicted.returncode == 0, predicted.stderr

    blend = tmp_path / "blend.toml"
    blend.write_text("folds = 2\nepochs = 1\n\n[families.seed]\n\n[families.kitnet]\ntta = false\n")
    mixed = run_kit(["train", "--recipe", str(blend), "--limit", "300", "--jobs", "1", "--kaggle", "--run-id", "kb"],
                    remote, timeout=600)  # fmt: skip
    assert mixed.returncode == 0, mixed.stdout + mixed.stderr
    assert set(runs.load_metrics(runs.runs_dir() / "kb")["families"]) == {"seed", "kitnet"}


@pytest.mark.parametrize("options", [{"ray": "local"}, {"data_dir": "elsewhere"}, {"fold": 1}, {"pseudo": True}])
def test_options_that_make_no_sense_in_a_kernel_are_refused(options):
    r = config.recipe("kitnet", folds=2)
    if options.pop("pseudo", None):
        r = config.override(r, pseudo="teacher")
    kwargs = {"fold": None, "run_id": "r", "limit": None, "jobs": None, "ray": None, "mirrored": False, **options}
    with pytest.raises(UsageError, match="--kaggle|Kaggle kernel"):
        api.check_options(r, kaggle=True, **kwargs)


@pytest.mark.parametrize("name", ["../evil.txt", "/etc/passwd", "other-run/metrics.json", "link"])
def test_a_packed_run_holding_anything_but_the_run_is_refused(tmp_path, name):
    packed = tmp_path / kaggle_kernel.PACKED
    with tarfile.open(packed, "w:gz") as tar:
        info = tarfile.TarInfo(name)
        if name == "link":
            info.name, info.type, info.linkname = "r1/fold0", tarfile.SYMTYPE, "/etc"
        info.size = 0 if name == "link" else 2
        tar.addfile(info, None if name == "link" else io.BytesIO(b"{}"))
    with pytest.raises(RunError, match="which kit does not write"):
        kaggle_kernel._extract(packed, tmp_path / "into", "r1")
    assert not (tmp_path / "into").exists() and not (tmp_path / "evil.txt").exists()


def test_a_hung_kernel_is_stopped_by_kaggle_at_its_limit_and_kit_says_so(env, fake):
    """The kernel is pushed with --kaggle-timeout's limit; Kaggle (the fake) stops a kernel that outruns it."""
    fake.hang = True
    args = ["train", "--model", "seed", "--kaggle", "--kaggle-timeout", "1", "--run-id", "r8"]
    result = run_kit(args, {**env, **fake.env()}, timeout=300)
    assert result.returncode == 4, result.stdout + result.stderr
    assert fake.pushes[0]["sessionTimeoutSeconds"] == 60 and fake.kernel("kit-r8")["timed_out"]
    assert "Kaggle stopped kernel alice/kit-r8 version 1 at its run-time limit (1 min)" in result.stderr
    assert "--kaggle-timeout MINUTES" in result.stderr and "Traceback" not in result.stderr


def test_a_kernel_stopped_at_its_run_time_limit_says_so(env, monkeypatch):
    """Ended in error once its --kaggle-timeout has passed since the push: the limit is named, with how to give it
    longer; before that, the same ending is an ordinary failure."""
    import time

    from kit import kaggle_api
    from kit.errors import KaggleError

    monkeypatch.setattr(kaggle_api, "kernel_output", lambda *a, **k: [])  # no log to fetch
    run_dir = runs.runs_dir() / "r9"
    run_dir.mkdir(parents=True)
    files.write_json(run_dir / "config.json", {"kind": "kaggle", "run_id": "r9"})
    info = {"kernel": "alice/kit-r9", "version": 1, "url": "u", "pushed_at": time.time() - 3700, "timeout_s": 3600}
    state = {"status": "error", "failure": "Your notebook was stopped."}
    stopped = kaggle_kernel.failed(None, "r9", info, state)
    assert isinstance(stopped, KaggleError)
    assert "Kaggle stopped kernel alice/kit-r9 version 1 at its run-time limit (60 min)" in str(stopped)
    assert "--kaggle-timeout MINUTES" in str(stopped)
    early = kaggle_kernel.failed(None, "r9", {**info, "pushed_at": time.time() - 60}, state)
    assert "failed: Your notebook was stopped." in str(early) and "run-time limit" not in str(early)
    assert runs.load_config(run_dir)["kaggle"]["status"] == "error"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--kaggle-timeout", "30"], "it needs --kaggle"),
        (["--kaggle", "--kaggle-timeout", "721"], "must be 1 to 720 minutes"),
    ],
)
def test_a_bad_kaggle_timeout_is_one_line(env, args, needle):
    result = kit_here(["train", "--model", "seed", *args], env)
    assert result.returncode == 2 and needle in result.stderr and "Traceback" not in result.stderr


def test_kit_train_kaggle_on_an_older_kaggle_client_is_one_line(monkeypatch):
    from kit import kaggle_api

    monkeypatch.setattr(kaggle_api, "client_version", lambda: (2, 0, 2))
    with pytest.raises(UsageError, match=r"kit train --kaggle needs kaggle >= 2.2.5 \(this is 2.0.2\): pip install"):
        kaggle_api.require_client(kaggle_api.KERNELS_CLIENT, "kit train --kaggle")
