"""`--track`: a kit run logged to W&B (offline), MLflow (a SQLite store), TensorBoard (event files) and Trackio (a
local folder), all with no network: every member's val_accuracy at every epoch, the CV in the summary, the files
kept; through this process and through fold workers; a resumed run continues its tracker run; no tracker is
imported without --track, and a bad one is one line before training."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from kit import runs, tracking
from kit.progress import Progress
from tests.conftest import ROOT, kit_here, run_kit

pytestmark = pytest.mark.slow

TRACKERS = ("wandb", "mlflow", "tensorboard", "trackio")
FRESH = ("trackio",)  # Trackio reads TRACKIO_DIR once, at its import: each test's store needs a process of its own


@pytest.fixture
def world(env, tmp_path) -> dict[str, str]:
    """The offline sample installed, and each tracker's store in this test's folder (W&B offline, no key)."""
    import importlib.util

    assert kit_here(["download", "--sample"], env).returncode == 0
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    if importlib.util.find_spec("mlflow"):  # its artifacts here too, not in ./mlruns (MLflow's default beside the db)
        from mlflow.tracking import MlflowClient

        MlflowClient(uri).create_experiment(tracking.PROJECT, artifact_location=(tmp_path / "mlruns").as_uri())
    return {**env, "WANDB_MODE": "offline", "MLFLOW_TRACKING_URI": uri, "TRACKIO_DIR": str(tmp_path / "trackio"),
            "WANDB_DIR": str(tmp_path / "wandb-elsewhere")}  # fmt: skip


def _wandb_records(path: Path) -> list:
    """The records of a W&B offline run file (LevelDB's log format after W&B's 7-byte header)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, block, pos, out, pending = path.read_bytes(), 32768, 7, [], b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        length, kind = int.from_bytes(data[pos + 4 : pos + 6], "little"), data[pos + 6]
        chunk, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        pending = chunk if kind in (1, 2) else pending + chunk  # 1 full, 2 first, 3 middle, 4 last
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(pending)
            out.append(record)
    return out


def _key(item) -> str:
    return item.key or "/".join(item.nested_key)


def read_wandb(run_dir: Path, world: dict) -> tuple[dict, dict, set, set]:
    """(curves {member: {epoch: val_accuracy}}, summary, files kept, W&B run ids) of a kit run's W&B offline runs."""
    curves: dict[str, dict[int, float]] = {}
    summary, ids = {}, set()
    found = sorted((run_dir / "wandb").glob("offline-run-*"))
    for folder in found:
        for record in _wandb_records(next(folder.glob("run-*.wandb"))):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                ids.add(record.run.run_id)
            elif kind == "history":
                items = {_key(i): json.loads(i.value_json) for i in record.history.item}
                for key, value in items.items():
                    if key.startswith("val_accuracy/"):
                        member = key.split("/", 1)[1]
                        curves.setdefault(member, {})[int(items[f"epoch/{member}"])] = value
            elif kind == "summary":
                summary.update({_key(i): json.loads(i.value_json) for i in record.summary.update})
    kept = {p.name for folder in found for p in (folder / "files").iterdir()}
    return curves, summary, kept, ids


def read_mlflow(run_dir: Path, world: dict) -> tuple[dict, dict, set, set]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(world["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name(tracking.PROJECT).experiment_id
    mine = client.search_runs([experiment], f"tags.`kit.run_id` = '{run_dir.name}'")
    parents = [r for r in mine if r.data.tags["kit.role"] == "run"]
    curves = {}
    for child in (r for r in mine if r.data.tags["kit.role"] == "member"):
        assert child.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        history = client.get_metric_history(child.info.run_id, "val_accuracy")
        curves[child.data.tags["kit.member"]] = {m.step: m.value for m in history}
    kept = {f.path for f in client.list_artifacts(parents[0].info.run_id)}
    return curves, dict(parents[0].data.metrics), kept, {r.info.run_id for r in parents}


def read_tensorboard(run_dir: Path, world: dict) -> tuple[dict, dict, set, set]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    def scalars(folder: Path) -> dict[str, dict[int, float]]:
        acc = EventAccumulator(str(folder), size_guidance={"tensors": 0})
        acc.Reload()
        return {tag: {e.step: float(e.tensor_proto.float_val[0] if e.tensor_proto.float_val else
                                    __import__("tensorflow").make_ndarray(e.tensor_proto))
                      for e in acc.Tensors(tag)} for tag in acc.Tags()["tensors"] if tag != "recipe"}  # fmt: skip

    root = run_dir / "tensorboard"
    curves = {p.name: scalars(p)["val_accuracy"] for p in root.iterdir() if p.name != "run"}
    summary = {tag: steps[0] for tag, steps in scalars(root / "run").items()}
    return curves, summary, set(), {root.name}


def read_trackio(run_dir: Path, world: dict) -> tuple[dict, dict, set, set]:
    db = sqlite3.connect(Path(world["TRACKIO_DIR"]) / f"{tracking.PROJECT}.db")
    curves: dict[str, dict[int, float]] = {}
    summary, ids = {}, set()
    for run_id, step, metrics in db.execute("select run_id, step, metrics from metrics where run_name = ?",
                                            (run_dir.name,)):  # fmt: skip
        ids.add(run_id)
        for key, value in json.loads(metrics).items():
            if key.startswith("val_accuracy/"):
                curves.setdefault(key.split("/", 1)[1], {})[step] = value
            elif key.startswith("summary/"):
                summary[key.split("/", 1)[1]] = value
    kept = {name for (name,) in db.execute("select name from artifacts")}
    return curves, summary, kept, ids


READ = {"wandb": read_wandb, "mlflow": read_mlflow, "tensorboard": read_tensorboard, "trackio": read_trackio}


@pytest.mark.parametrize("jobs", ["1", "2"], ids=["in-process", "fold-workers"])
@pytest.mark.parametrize("name", TRACKERS)
def test_a_tracked_run_logs_every_members_epochs_its_cv_and_its_files(world, name, jobs):
    train = ["train", "--model", "seed", "--folds", "2", "--epochs", "2", "--limit", "400", "--jobs", jobs,
             "--track", name, "--run-id", "tr"]  # fmt: skip
    done = kit_here(train, world) if jobs == "1" and name not in FRESH else run_kit(train, world)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    run_dir = Path(world["KIT_RUNS_DIR"]) / "tr"
    metrics = runs.load_metrics(run_dir)
    curves, summary, kept, ids = READ[name](run_dir, world)
    assert len(ids) == 1
    assert set(curves) == {"fold0", "fold1"} and all(set(c) == {1, 2} for c in curves.values()), curves
    history = {f"fold{k}": runs.member_history(run_dir / f"fold{k}") for k in (0, 1)}
    for member, rows in history.items():  # the very figures the run kept
        assert curves[member] == pytest.approx({e + 1: row["val_accuracy"] for e, row in enumerate(rows)})
    assert summary["cv_accuracy"] == pytest.approx(metrics["cv_accuracy"])
    assert summary["oof_errors"] == round((1 - metrics["cv_accuracy"]) * metrics["cv_rows"])
    if name == "wandb":
        assert {"tr.csv", "index.html", "recipe.toml"} <= kept and ids == {"tr"}
    elif name == "mlflow":
        assert {"tr.csv", "index.html", "recipe.toml"} <= kept
    elif name == "trackio":
        assert {"tr-submission", "tr-report", "tr-recipe"} <= kept
    assert (run_dir / "recipe.toml").read_text() == runs.recipe_file("tr")
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("name", ["wandb", "mlflow", "trackio"])
def test_a_resumed_run_continues_its_tracker_run(world, name):
    """One member, then the rest with the same --run-id: one tracker run holding both members' curves."""
    first = ["train", "--model", "seed", "--folds", "2", "--epochs", "1", "--limit", "400", "--jobs", "1",
             "--track", name, "--run-id", "again"]  # fmt: skip
    run = run_kit if name in FRESH else kit_here
    assert run([*first, "--fold", "0"], world).returncode == 0
    done = run(first, world)
    assert done.returncode == 0, done.stderr[-2000:]
    run_dir = Path(world["KIT_RUNS_DIR"]) / "again"
    curves, summary, _, ids = READ[name](run_dir, world)
    assert len(ids) == 1 and set(curves) == {"fold0", "fold1"} and all(set(c) == {1} for c in curves.values())
    assert summary["cv_accuracy"] == pytest.approx(runs.load_metrics(run_dir)["cv_accuracy"])


def test_a_blend_and_repeats_name_each_member_by_family_fold_and_repeat():
    from kit import config

    blend = config.blend({"a": config.recipe("seed", folds=2), "b": config.recipe("seed", folds=2)})
    assert tracking.member_names(blend) == ["a-fold0", "a-fold1", "b-fold0", "b-fold1"]
    assert tracking.member_names(config.recipe("seed", folds=2, repeats=2)) == ["fold0r0", "fold1r0", "fold0r1",
                                                                                 "fold1r1"]  # fmt: skip
    assert tracking.member_names(config.recipe("seed", folds=1)) == ["holdout"]
    figures = {"cv_accuracy": 0.99, "cv_rows": 1000, "families": {"a": {"cv_accuracy": 0.98}}}
    assert tracking.summary(figures) == {"cv_accuracy": 0.99, "cv_rows": 1000.0, "oof_errors": 10.0,
                                         "a/cv_accuracy": 0.98, "a/oof_errors": 20.0}  # fmt: skip


def test_a_tracker_that_fails_mid_run_is_dropped_with_one_warning_not_the_run(capsys):
    class Broken:
        def epoch(self, member, epoch, logs):
            raise OSError("disk full")

    session = tracking.Session("mlflow")
    session._tracker, session._members = Broken(), ["fold0"]
    session(Progress(0, 1, 1, 2, logs={"val_accuracy": 0.5}))
    session(Progress(0, 1, 2, 2, logs={"val_accuracy": 0.6}))  # dropped: no second warning
    assert capsys.readouterr().err.count("--track mlflow stopped logging (disk full)") == 1
    assert session.end({"cv_accuracy": 0.5}, []) is None


@pytest.mark.parametrize(
    "args, extra, needle",
    [
        (["--track", "neptune"], {}, "--track neptune: no tracker of that name; kit logs to wandb, mlflow"),
        ([], {"KIT_TRACK": "comet"}, "KIT_TRACK comet: no tracker of that name"),
        (["--track", "wandb"], {"WANDB_MODE": "online", "WANDB_API_KEY": ""}, "--track wandb: W&B has no API key"),
        (["--kaggle", "--track", "mlflow"], {}, "--kaggle --track mlflow: a kernel's mlflow store stays on Kaggle"),
    ],
)
def test_a_bad_tracker_is_one_line_before_anything_trains(env, args, extra, needle):
    done = kit_here(["train", "--model", "seed", "--epochs", "1", *args], {**env, **extra})
    assert done.returncode == 2 and needle in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert not Path(env["KIT_RUNS_DIR"]).exists() or not any(Path(env["KIT_RUNS_DIR"]).iterdir())


def test_a_missing_tracker_package_names_the_extra(env, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "trackio" else real(n, *a))
    with pytest.raises(Exception, match=r"--track trackio: the trackio package is not installed here; pip install "
                                        r"'kit\[trackio\]' installs it"):  # fmt: skip
        tracking.chosen("trackio")


def test_without_track_no_tracker_is_imported(world):
    """A whole `kit train` without --track (KIT_TRACK unset) imports none of the trackers' packages."""
    code = (
        "import sys\nfrom kit.cli import main\nsys.argv = ['kit', 'train', '--model', 'seed', '--epochs', '1', "
        "'--limit', '300', '--jobs', '1']\ntry:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "print('TRACKERS', sorted(m for m in ('wandb', 'mlflow', 'trackio', 'tensorboard') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], env=world, capture_output=True, text=True, timeout=300,
                          cwd=ROOT)  # fmt: skip
    assert "TRACKERS []" in done.stdout, done.stdout[-1000:] + done.stderr[-2000:]


def test_kaggle_track_wandb_logs_offline_in_the_kernel_and_brings_the_run_home(env, tiny, tmp_path):
    """The kernel (no internet) logs W&B offline into the run's folder; the offline run comes home with the run, and
    kit prints the one command that uploads it. Here no W&B key is needed: the kernel's run is offline."""
    from tests.fake_kaggle import FakeKaggle

    archive = tmp_path / "digit-recognizer.zip"
    archive.write_bytes(tiny.zip_bytes)
    assert kit_here(["download", "--from-zip", str(archive)], env).returncode == 0
    server = FakeKaggle(zip_bytes=tiny.zip_bytes).start()
    try:
        home = {**{k: v for k, v in env.items() if not k.startswith("WANDB_")}, **server.env()}
        args = ["train", "--model", "seed", "--folds", "2", "--epochs", "1", "--limit", "300", "--jobs", "1",
                "--kaggle", "--track", "wandb", "--run-id", "kw"]  # fmt: skip
        result = run_kit(args, home, timeout=600)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "ARGS = ['--limit', '300', '--jobs', '1', '--track', 'wandb']" in server.pushes[0]["text"]
        run_dir = Path(env["KIT_RUNS_DIR"]) / "kw"
        curves, summary, kept, ids = read_wandb(run_dir, env)
        assert ids == {"kw"} and set(curves) == {"fold0", "fold1"} and all(set(c) == {1} for c in curves.values())
        assert summary["cv_accuracy"] == pytest.approx(runs.load_metrics(run_dir)["cv_accuracy"])
        offline = next((run_dir / "wandb").glob("offline-run-*"))
        assert f"`wandb sync {offline}` uploads it" in " ".join(result.stdout.split())
    finally:
        server.stop()


def test_kit_tune_track_logs_each_trial_tagged_with_its_study_and_number(world):
    """Each trial is a tracked kit run: one MLflow parent run a trial, tagged with the study and the trial."""
    from mlflow.tracking import MlflowClient

    tune = ["tune", "--study", "tracked", "--space", "dropout=0.1:0.4", "--folds", "2", "--epochs", "1", "--limit",
            "400", "--trials", "2", "--jobs", "1", "--track", "mlflow"]  # fmt: skip
    done = kit_here(tune, world)
    assert done.returncode == 0, done.stdout + done.stderr
    client = MlflowClient(world["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name(tracking.PROJECT).experiment_id
    parents = client.search_runs([experiment], "tags.`kit.role` = 'run'")
    tagged = {r.data.tags["kit.run_id"]: (r.data.tags["kit.study"], r.data.tags["kit.trial"]) for r in parents}
    assert tagged == {"tracked-t000": ("tracked", "0"), "tracked-t001": ("tracked", "1")}
    assert all("cv_accuracy" in r.data.metrics for r in parents)
