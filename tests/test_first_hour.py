"""The first hour with kit, as a new user meets it: quiet output, a CV-only run and its prediction later, recipes that
round-trip from any folder, true messages for healthy runs, and the Python API's manners in a notebook."""

from __future__ import annotations

import inspect
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import kit
from kit import config, data, files, runs
from kit.api import Run
from tests.conftest import ROOT, kit_here

NATIVE = ("I0000", "W0000", "E0000", "absl::InitializeLog", "cuInit")


@pytest.fixture
def sample(env):
    data.install_sample(data.data_dir())


@pytest.mark.slow
def test_a_cv_only_run_is_quiet_shows_its_phases_and_kit_predict_fills_it_in(env, sample):
    """No TensorFlow C++ lines on the terminal or in fold logs (TF_CPP_MIN_LOG_LEVEL unset, as a user's shell has it),
    the prediction phase shown, no test prediction and no CSV until `kit predict RUN`; no lock files left; run files
    readable by the group as the umask (022 here) allows."""
    shell = {k: v for k, v in env.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    args = ["train", "--model", "seed", "--folds", "2", "--epochs", "1", "--limit", "300", "--jobs", "2", "--run-id",
            "cv", "--no-predict"]  # fmt: skip
    umask = (
        "import os, runpy, sys; os.umask(0o022); sys.argv = ['kit', *sys.argv[1:]]; "
        "runpy.run_module('kit', run_name='__main__')"
    )
    ran = subprocess.run([sys.executable, "-c", umask, *args], env=shell, capture_output=True, text=True, timeout=600,
                         cwd=ROOT)  # fmt: skip
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert not any(line in ran.stdout + ran.stderr for line in NATIVE), ran.stderr
    run_dir = runs.runs_dir() / "cv"
    for log in run_dir.glob("fold*.log"):
        assert not any(line in log.read_text() for line in NATIVE), log.read_text()
    assert "CV only: no test prediction and no submission (`kit predict cv` adds them later)" in ran.stdout
    assert "predicting" in ran.stdout and "image-views" in ran.stdout
    assert "CV only: no submission; `kit predict cv` predicts the test rows" in ran.stdout
    assert not (run_dir / "test_probs.npy").exists() and not (Path(env["KIT_SUBMISSIONS_DIR"]) / "cv.csv").exists()
    assert list(run_dir.glob(".*lock*")) == []
    assert stat.S_IMODE((run_dir / "config.json").stat().st_mode) == 0o644
    other = runs.create("other", reuse=True)
    shutil.copytree(run_dir, other, dirs_exist_ok=True)
    runs.write_config(other, **{**runs.load_config(run_dir), "run_id": "other"})
    said = kit_here(["blend", "cv", "other"], env)
    assert said.returncode == 8 and "is CV only (no test prediction); `kit predict cv` adds it" in said.stderr

    filled = kit_here(["predict", "cv"], env)
    assert filled.returncode == 0, filled.stderr
    assert (Path(env["KIT_SUBMISSIONS_DIR"]) / "cv.csv").is_file() and (run_dir / "test_probs.npy").is_file()
    assert runs.load_config(run_dir)["predict"] is True and "submission:" in filled.stdout
    listed = kit_here(["runs", "--csv"], env).stdout
    assert ",300,True,sample," in listed  # rows, limited, data


@pytest.mark.slow
def test_your_own_models_recipe_trains_again_from_another_folder_to_the_bit(env, sample, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    shutil.copy(ROOT / "tests" / "own_model.py", mine / "nets.py")
    options = ["--folds", "2", "--epochs", "1", "--limit", "200", "--jobs", "1", "--precision", "float32"]
    first = subprocess.run([sys.executable, "-m", "kit", "train", "--model", "nets.py:build", *options, "--run-id",
                            "own"], env=env, capture_output=True, text=True, timeout=600, cwd=mine)  # fmt: skip
    assert first.returncode == 0, first.stderr
    (mine / "nets.py").unlink()  # the user moved on; the run keeps its copy
    recipe = kit_here(["runs", "--recipe", "own"], env).stdout
    assert "with --limit 200 (it trained on the first 200 rows" in recipe.splitlines()[0]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "my.toml").write_text(recipe)
    again = subprocess.run([sys.executable, "-m", "kit", "train", "--recipe", "my.toml", "--limit", "200", "--jobs",
                            "1", "--run-id", "again"], env=env, capture_output=True, text=True, timeout=600,
                           cwd=elsewhere)  # fmt: skip
    assert again.returncode == 0, again.stderr
    for name in ("oof.npy", "test_probs.npy", "folds.npy"):
        assert (runs.runs_dir() / "own" / name).read_bytes() == (runs.runs_dir() / "again" / name).read_bytes(), name
    # a finished run imports no model file: `kit train --run-id` of it only reports it
    (runs.runs_dir() / "own" / "nets.py").write_text("raise SystemExit(7)\n")
    finished = kit_here(["train", "--run-id", "own"], env)
    assert finished.returncode == 0 and "CV (OOF)" in finished.stdout, finished.stderr


def test_a_blend_recipe_files_family_values_win_over_its_top_level(tmp_path):
    path = tmp_path / "blend.toml"
    path.write_text('folds = 3\nepochs = 3\n\n[families.kitnet]\nepochs = 7\n\n[families.deotte]\nepochs = 9\n'
                    "\n[families.m3]\n")  # fmt: skip
    r = config.from_file(path)
    assert {n: f.epochs for n, f in r.families.items()} == {"kitnet": 7, "deotte": 9, "m3": 3}


def _healthy(name: str, rows: int) -> None:
    run_dir = runs.create(name, reuse=True)
    runs.write_config(run_dir, "train", created_utc="2026-01-01T00:00:00Z", recipe=config.PRESETS["seed"].to_dict(),
                      data={"source": "sample", "train_rows": rows, "test_rows": 500, "limit": rows})  # fmt: skip
    probs = np.full((rows, 10), 0.1, np.float32)
    files.save_array(run_dir / "oof.npy", probs)
    files.save_array(run_dir / "test_probs.npy", np.full((500, 10), 0.1, np.float32))
    files.save_array(run_dir / "folds.npy", np.full(rows, -1, np.int8))
    files.write_json(run_dir / "metrics.json", {"cv_accuracy": 0.1})


def test_runs_trained_on_other_rows_do_not_blend_and_are_not_called_damaged(env, sample):
    _healthy("small", 200)
    _healthy("big", 300)
    said = kit_here(["blend", "small", "big"], env)
    assert said.returncode == 2, said.stderr
    assert "trained on different data (small on 200 sample rows, big on 300 sample rows)" in said.stderr
    assert "damaged" not in said.stderr and "delete" not in said.stderr


def test_the_api_in_a_notebook_offers_its_verbs_and_fields_and_speaks_python(env):
    assert {"train", "predict", "submit", "load_run", "Run", "KitError"} <= set(dir(kit))
    parameters = inspect.signature(kit.train).parameters
    assert {"rotation", "label_smoothing", "folds", "epochs", "dropout"} <= set(parameters)
    assert all(parameters[name].default is None for name in ("rotation", "folds"))
    with pytest.raises(kit.KitError, match=r"^folds=-1: must be"):
        kit.train(folds=-1)
    with pytest.raises(kit.KitError, match=r"^fold needs run_id"):
        kit.train(fold=1)
    assert "--folds -1: must be" in kit_here(["train", "--folds", "-1"], env).stderr  # the CLI names its flags
    run_dir = runs.create("hist", reuse=True)
    runs.write_config(run_dir, "train", created_utc="2026-01-01T00:00:00Z")
    for k in (0, 1):
        files.write_json(run_dir / f"fold{k}" / "history.json", [{"loss": 1.0 - k, "val_accuracy": 0.5}])
        files.write_json(run_dir / f"fold{k}" / "metrics.json", {"fold": k})
    assert Run(run_dir).history == {0: [{"loss": 1.0, "val_accuracy": 0.5}], 1: [{"loss": 0.0, "val_accuracy": 0.5}]}
    assert kit_here(["--version"], env).stdout.strip() == f"kit {kit.__version__}"


@pytest.mark.slow
@pytest.mark.parametrize("order", ["import kit, keras", "import keras, kit"])
def test_a_saved_model_loads_with_plain_keras_after_import_kit(sample_run, order):
    model = sample_run / "runs" / "r1" / "fold0" / "model.keras"
    code = f"{order}\nm = keras.models.load_model({str(model)!r})\nprint(m.output_shape)"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    ran = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0 and "(None, 10)" in ran.stdout, ran.stderr[-2000:]


_CTRL_C_ON = """
import runpy, signal, sys
signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
signal.signal(signal.SIGINT, signal.default_int_handler)
sys.argv = ["kit", *sys.argv[1:]]
runpy.run_module("kit", run_name="__main__")
"""


@pytest.mark.slow
def test_ctrl_c_says_what_is_kept_and_the_resume_says_what_it_found(env, sample):
    import signal

    args = ["train", "--model", "seed", "--folds", "2", "--epochs", "1", "--limit", "300", "--jobs", "1", "--run-id",
            "stop"]  # fmt: skip
    training = subprocess.Popen([sys.executable, "-c", _CTRL_C_ON, *args], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, cwd=ROOT)  # fmt: skip
    try:
        for line in training.stdout:
            if "fold 2/2 started" in line:  # fold 1 is saved
                break
        training.send_signal(signal.SIGINT)
        _, stderr = training.communicate(timeout=120)
    finally:
        training.kill()
    assert training.returncode == 130, stderr
    assert "stopped: run stop keeps its 1/2 finished members; `kit train --run-id stop` resumes it." in stderr
    resumed = kit_here(["train", "--run-id", "stop"], env)  # jobs left to kit: it plans for what is left
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming 1/2 members done (fold 0); training the other 1" in resumed.stdout
    device_line = resumed.stdout.splitlines()[0]
    assert device_line.endswith(": one model") and "folds at once" not in device_line, device_line
