"""`kit train` on tiny data: artifacts and their shapes, OOF coverage, the seed model, --fold + resume,
MirroredStrategy over two logical CPU devices, and the JAX backend."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kit import api, config, data, predicting, splits, submission
from tests.conftest import ROOT, kit_here


@pytest.fixture
def sample(env):
    data.install_sample(data.data_dir())
    return data.load_competition()


def test_seed_model_is_the_notebooks(env):
    from kit import models

    model = models.build(config.recipe("seed"))
    assert model.count_params() == 280_714
    convs = [layer for layer in model.layers if type(layer).__name__ == "Conv2D"]
    assert [c.filters for c in convs] == [64, 64, 64]
    assert model.output_shape == (None, 10)


def test_assign_folds_covers_every_row_once():
    from kit.splits import assign as assign_folds

    labels = np.repeat(np.arange(10), 50)
    folds = assign_folds(labels, 5, 0.1, seed=1)
    assert set(np.unique(folds)) == set(range(5))
    for k in range(5):  # stratified: each fold holds 10 of each digit
        assert np.all(np.bincount(labels[folds == k], minlength=10) == 10)
    holdout = assign_folds(labels, 1, 0.1, seed=1)
    assert (holdout == 0).sum() == 50 and (holdout == -1).sum() == 450


def test_recipe_overrides_are_validated():
    from kit.errors import UsageError

    assert config.recipe("kitnet", epochs=3, batch_size=None).epochs == 3
    # kitnet trains 36 epochs as one model and 44 per fold of a K-fold run, unless --epochs says otherwise
    assert config.recipe("kitnet").epochs == 36 and config.recipe("kitnet", folds=5).epochs == 44
    assert config.recipe("kitnet", folds=5, epochs=3).epochs == 3 and config.recipe("seed", folds=5).epochs == 24
    with pytest.raises(UsageError, match="fold_epochs 0: must be a whole number >= 1"):
        config.recipe("kitnet", fold_epochs=0)
    with pytest.raises(UsageError, match="--precision 'int8': must be one of"):
        config.recipe("kitnet", precision="int8")
    with pytest.raises(UsageError, match="--model 'resnet': must be one of"):
        config.recipe("resnet")


class RecordingModel:
    """Stands in for a compiled Keras model: records what kit.training.fit feeds it through `train_on_batch`."""

    def __init__(self):
        self.batches: list[np.ndarray] = []

    def train_on_batch(self, x, y, return_dict=False):
        assert len(x) == len(y) and return_dict
        self.batches.append(x[:, 0].copy())
        return {"loss": 0.5, "accuracy": 0.75}

    def predict_on_batch(self, x):
        return np.eye(10, dtype=np.float32)[np.arange(len(x)) % 2]  # right on the even rows (labels 0)

    def loss(self, y, probs):
        return 0.25


def test_fit_feeds_every_row_once_an_epoch_in_a_new_order():
    from kit.device import Device
    from kit.training import fit

    x = np.arange(70)[:, None]  # row i holds the value i
    y = np.zeros((70, 10), np.float32)
    y[:, 0] = 1
    r = config.recipe("kitnet", epochs=3, batch_size=32)
    device = Device("tensorflow", "cpu", ["cpu"], "float32", "float32", False)  # the fake model never calls Keras
    model, seen = RecordingModel(), []
    rows = fit(model, x, y, x[:5], y[:5], r, device, seed=7, on_epoch=lambda epoch, row: seen.append(epoch))

    assert [len(b) for b in model.batches] == [32, 32, 6] * 3  # the partial last batch is trained on too
    orders = [np.concatenate(model.batches[i : i + 3]) for i in (0, 3, 6)]
    for order in orders:
        assert sorted(order) == list(range(70))
    assert not np.array_equal(orders[0], orders[1])
    assert seen == [1, 2, 3] and len(rows) == 3
    assert rows[0]["loss"] == pytest.approx(0.5) and rows[0]["accuracy"] == pytest.approx(0.75)
    assert rows[0]["val_accuracy"] == pytest.approx(0.6) and rows[0]["val_loss"] == pytest.approx(0.25)
    assert rows[0]["images_per_s"] >= 70 / rows[0]["seconds"]  # the training rows over the training time alone


def test_fit_trains_a_real_model_on_every_batch():
    """kit.training.fit on a real compiled model: one optimizer step per batch, the partial one included; the
    validation loss is the compiled loss, as `evaluate` computes it."""
    from kit import device as kit_device
    from kit.training import compile_model, fit

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (70, 28, 28, 1), dtype=np.uint8)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 70)]
    r = config.recipe("seed", epochs=2, batch_size=32, precision="float32")
    device = kit_device.setup(r.precision)
    model = compile_model(r, device, steps_per_epoch=3, seed=0)
    rows = fit(model, x, y, x[:10], y[:10], r, device, seed=1)

    assert int(model.optimizer.iterations) == 6
    assert len(rows) == 2
    for row in rows:  # the epoch's accuracy over its 70 rows, the validation's over its 10
        assert np.isfinite(row["loss"]) and row["loss"] > 0 and row["accuracy"] * 70 == pytest.approx(
            round(row["accuracy"] * 70), abs=1e-3)  # fmt: skip
        assert row["val_accuracy"] * 10 == pytest.approx(round(row["val_accuracy"] * 10)) and np.isfinite(
            row["val_loss"]
        )
    assert rows[-1]["val_loss"] == pytest.approx(model.evaluate(x[:10], y[:10], verbose=0)[0], rel=1e-4)


@pytest.mark.slow
def test_kfold_run_writes_every_artifact(env, sample):
    args = ["train", "--folds", "3", "--epochs", "1", "--run-id", "k3", "--batch-size", "50", "--jobs", "2", "--no-tta",
            "--limit", "600"]  # fmt: skip
    result = kit_here(args, env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "device" in result.stdout and "CV (OOF)" in result.stdout
    assert "2 folds at once, in separate processes" in result.stdout  # the device line says what it will do
    assert "fold 3 epoch 1/1" in result.stdout  # worker processes' progress
    # not a terminal: plain lines, with the time left, and not one control character (no cursor moves, no colours)
    assert re.search(r"fold \d epoch 1/1 .* \| run [123]/3 epochs, \d+:\d\d elapsed, \d+:\d\d left\n", result.stdout)
    assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f]", result.stdout + result.stderr)
    run = Path(env["KIT_RUNS_DIR"]) / "k3"
    n, m = 600, len(sample.test_images)  # the first 600 training rows, every test row
    folds = np.load(run / "folds.npy")
    assert folds.shape == (n,) and set(np.unique(folds)) == {0, 1, 2}
    oof = np.load(run / "oof.npy")
    assert oof.shape == (n, 10) and not np.isnan(oof).any()  # every row predicted by exactly one fold
    np.testing.assert_allclose(oof.sum(1), 1, atol=1e-3)
    covered = np.zeros(n, int)
    for k in range(3):
        fold = run / f"fold{k}"
        assert {p.name for p in fold.iterdir()} >= {
            "model.keras",
            "history.json",
            "val_probs.npy",
            "test_probs.npy",
            "metrics.json",
        }
        val = np.load(fold / "val_probs.npy")
        assert val.shape == ((folds == k).sum(), 10)
        np.testing.assert_array_equal(oof[folds == k], val)
        covered[folds == k] += 1
        assert np.load(fold / "test_probs.npy").shape == (m, 10)
        assert len(json.loads((fold / "history.json").read_text())) == 1
    assert np.all(covered == 1)
    test_probs = np.load(run / "test_probs.npy")
    assert test_probs.shape == (m, 10)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["cv_accuracy"] == pytest.approx((oof.argmax(1) == sample.train_labels[:n]).mean())
    assert metrics["cv_rows"] == n and len(metrics["folds"]) == 3
    saved = json.loads((run / "config.json").read_text())
    assert saved["recipe"]["folds"] == 3 and saved["recipe"]["epochs"] == 1 and saved["versions"]["keras"]
    csv = Path(env["KIT_SUBMISSIONS_DIR"]) / "k3.csv"
    submission.validate(csv, m)
    labels = np.loadtxt(csv, delimiter=",", skiprows=1, dtype=int)[:, 1]
    np.testing.assert_array_equal(labels, test_probs.argmax(1))


@pytest.mark.slow
def test_training_with_tta_saves_tta_probabilities(env, sample):
    """With --tta, the OOF and test probabilities are the saved model's mean over the TTA views."""
    import keras

    import kit.layers  # noqa: F401

    # batch 50 divides a fold's 200 training rows (a partial batch is traced again); in this process (--jobs 1)
    args = ["train", "--folds", "2", "--epochs", "1", "--run-id", "t2", "--batch-size", "50", "--tta", "--limit", "400",
            "--jobs", "1"]  # fmt: skip
    result = kit_here(args, env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "without TTA" in result.stdout
    run = Path(env["KIT_RUNS_DIR"]) / "t2"
    assert json.loads((run / "config.json").read_text())["recipe"]["tta"] is True
    folds = np.load(run / "folds.npy")
    model = keras.saving.load_model(run / "fold0" / "model.keras")
    fold_metrics = json.loads((run / "fold0" / "metrics.json").read_text())
    assert fold_metrics["tta_views"] == len(config.TTA_VIEWS) > 1
    rows = sample.train_images[:400][folds == 0]
    tta = predicting.predict(model, rows, config.TTA_VIEWS)
    np.testing.assert_allclose(np.load(run / "fold0" / "val_probs.npy"), tta, atol=1e-4)
    plain = predicting.predict(model, rows, [(0, 0, 0)])
    labels = sample.train_labels[:400][folds == 0]
    assert fold_metrics["accuracy_plain"] == pytest.approx((plain.argmax(1) == labels).mean())
    assert fold_metrics["accuracy"] == pytest.approx((tta.argmax(1) == labels).mean())
    test_tta = predicting.predict(model, sample.test_images, config.TTA_VIEWS)
    np.testing.assert_allclose(np.load(run / "fold0" / "test_probs.npy"), test_tta, atol=1e-4)


@pytest.mark.slow
def test_single_fold_then_resume_completes_the_run(env, sample):
    args = ["train", "--folds", "2", "--epochs", "1", "--run-id", "split", "--model", "seed", "--no-tta",
            "--limit", "400"]  # fmt: skip
    first = kit_here([*args, "--fold", "1"], env)
    assert first.returncode == 0, first.stderr
    assert "1/2 folds complete" in first.stdout
    run = Path(env["KIT_RUNS_DIR"]) / "split"
    assert (run / "fold1" / "metrics.json").is_file() and not (run / "fold0").exists()
    assert not (run / "oof.npy").exists()
    stamp = (run / "fold1" / "metrics.json").stat().st_mtime_ns

    clash = kit_here(["train", "--run-id", "split", "--epochs", "2"], env)
    assert clash.returncode == 8 and "different recipe (epochs 1 vs 2)" in clash.stderr

    resumed = kit_here(["train", "--run-id", "split"], env)  # the saved recipe and rows (--limit 400) are reused
    assert resumed.returncode == 0, resumed.stderr
    assert (run / "fold1" / "metrics.json").stat().st_mtime_ns == stamp  # fold 1 was not retrained
    assert not np.isnan(np.load(run / "oof.npy")).any()
    submission.validate(Path(env["KIT_SUBMISSIONS_DIR"]) / "split.csv", len(sample.test_images))


@pytest.mark.slow
def test_holdout_run_and_usage_errors(env, sample):
    result = kit_here(["train", "--epochs", "1", "--run-id", "hold", "--limit", "600", "--no-tta"], env)
    assert result.returncode == 0, result.stderr
    assert "holdout" in result.stdout and "without TTA" not in result.stdout
    run = Path(env["KIT_RUNS_DIR"]) / "hold"
    oof = np.load(run / "oof.npy")
    assert oof.shape == (600, 10) and (~np.isnan(oof[:, 0])).sum() == 60
    fold_metrics = json.loads((run / "fold0" / "metrics.json").read_text())
    assert fold_metrics["tta_views"] == 1 and fold_metrics["accuracy_plain"] == fold_metrics["accuracy"]
    # the run used the first 600 rows: report and predict apply that themselves
    reported = kit_here(["report", "hold"], env)
    assert reported.returncode == 0, reported.stderr
    assert "60 OOF rows" in reported.stdout
    predicted = kit_here(["predict", "hold"], env)
    assert predicted.returncode == 0, predicted.stderr
    assert (Path(env["KIT_RUNS_DIR"]) / "hold-predict" / "oof.npy").is_file()

    no_id = kit_here(["train", "--fold", "0"], env)
    assert no_id.returncode == 2 and "--fold needs --run-id" in no_id.stderr
    bad = kit_here(["train", "--precision", "int8"], env)
    assert bad.returncode == 2 and "--precision 'int8': must be one of" in bad.stderr


# Two logical CPUs under MirroredStrategy: kit's fused BatchNorm and the TTA warps, each replica's share of a batch;
# one model (a holdout of half the rows: the 100 training rows a fold of two would have; batch 50 divides them, and
# the 100 test images in memory are as many as the validation rows: each new shape is traced again)
_MIRRORED = """
import dataclasses
from kit import config, data, device, dispatch
device.split_cpu(2)
dev = device.setup("float32", mirrored=True)
comp = data.head(data.load_competition(), 200)  # trained in this process
comp = dataclasses.replace(comp, test_images=comp.test_images[:100], path=None)
r = config.recipe("kitnet", epochs=1, batch_size=50, folds=1, holdout=0.5, batchnorm="all", tta=True)
res = dispatch.train_run(r, comp, run_id="x", device=dev)
print("REPLICAS", dev.replicas, "ROWS", res.metrics["cv_rows"], "VIEWS", res.fold_metrics[0]["tta_views"])
"""


@pytest.mark.slow
def test_mirrored_strategy_on_two_logical_cpus(env, sample):
    result = subprocess.run([sys.executable, "-c", _MIRRORED], env=env, capture_output=True, text=True, timeout=300,
                            cwd=ROOT)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "REPLICAS 2 ROWS 100 VIEWS 7" in result.stdout


# The exact configuration a GPU gets (kit.device.configure with kind="gpu": mixed float16, XLA, model.fit with the
# GPU's steps per call), forced on this CPU, with the default recipe (augmentation and TTA on): a few steps of one model
# (a holdout of half the rows: the shapes of a fold of two), then the saved model reloaded predicts what the run saved.
# On JAX, XLA compiles everything, into kit's compilation cache. (Members one after another in one process under this
# configuration: the leaderboard preset's GPU test.)
_GPU_SNIPPET = """
import dataclasses
import json
import keras
import numpy as np
import kit.layers
from kit import config, data, device, dispatch, predicting

dev = device.configure(keras.backend.backend(), "gpu", ["cpu"], "auto")
comp = data.head(data.load_competition(), 200)  # and 100 test images, in memory: trained in this process
# (as many as the validation rows: under XLA each shape predicted compiles again)
comp = dataclasses.replace(comp, test_images=comp.test_images[:100], path=None)
# batch 50 divides the 100 training rows: under XLA a partial batch compiles the step again (a first epoch of 100 rows
# at batch 32 took 24.1 s, of 96 rows 9.7 s)
r = config.recipe("kitnet", epochs=2, batch_size=50, folds=1, holdout=0.5)
res = dispatch.train_run(r, comp, run_id="gpu", device=dev)
run = res.run_dir
model = keras.saving.load_model(run / "fold0" / "model.keras")
folds = np.load(run / "folds.npy")
tta = predicting.predict(model, comp.train_images[folds == 0], config.TTA_VIEWS)
cache = None
if dev.backend == "jax":
    import jax
    cache = jax.config.jax_compilation_cache_dir
print("RESULT " + json.dumps({
    "policy": dev.policy, "xla": dev.jit_compile, "kind": dev.kind, "feed": dev.feed, "augment": r.augment,
    "tta": r.tta,
    "warp_xla": [l.xla for l in model.layers if isinstance(l, kit.layers.RandomAffine)],
    "steps_per_execution": model.steps_per_execution, "iterations": int(model.optimizer.iterations),
    "tta_views": res.fold_metrics[0]["tta_views"], "cv": res.metrics["cv_accuracy"], "rows": res.metrics["cv_rows"],
    "reload_diff": float(np.abs(tta - np.load(run / "fold0" / "val_probs.npy")).max()), "cache": cache,
}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_gpu_configuration_trains_the_default_recipe_on_the_cpu(env, sample, backend):
    if backend == "jax" and importlib.util.find_spec("jax") is None:
        pytest.skip("jax is not installed")
    result = subprocess.run([sys.executable, "-c", _GPU_SNIPPET], env={**env, "KERAS_BACKEND": backend},
                            capture_output=True, text=True, timeout=600, cwd=ROOT)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    got = json.loads(result.stdout.split("RESULT ", 1)[1])
    assert got["policy"] == "mixed_float16" and got["xla"] is True and got["kind"] == "gpu"
    assert got["augment"] and got["tta"] and got["tta_views"] == 7 and got["warp_xla"] == [True]
    assert got["steps_per_execution"] == 16 and got["feed"] == "fit"
    assert got["iterations"] == 2 * 2  # 100 training rows, batch 50: 2 steps an epoch
    assert got["rows"] == 100 and got["cv"] * 100 == pytest.approx(round(got["cv"] * 100))  # the holdout's 100 rows
    assert got["reload_diff"] < 1e-2
    if backend == "jax":  # the compiled steps are kept on disk (a fold's next worker process skips the compile)
        cache = Path(env["HOME"]) / ".cache" / "kit" / "jax"
        assert got["cache"] == str(cache) and any(cache.iterdir())


@pytest.mark.slow
def test_bench_measures_both_recipes(env, sample):
    """`make bench` stays runnable: (a) and (b) measured on the installed data, the ratio printed as JSON."""
    result = subprocess.run(
        [sys.executable, "benchmarks/bench.py", "--epochs", "2", "--rounds", "1", "--skip-full"],
        env=env, capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    for stat in ("median", "best"):
        got = summary[stat]
        assert got["ratio"] == pytest.approx(got["kit_seed_img_s"] / got["notebook_img_s"])  # a ratio of this run's
        assert f"{stat:>6} epoch: (a) seed notebook as written" in result.stdout
    assert "round 1: (a)" in result.stdout and "(b) ran on: CPU" in result.stdout


@pytest.mark.slow
def test_bench_settings_measures_each_variant(env, sample):
    """`python benchmarks/bench_settings.py` stays runnable: each variant trains with its settings, the first is the
    base."""
    args = ["--variants", "kit,fit16,float32", "--rounds", "2", "--rows", "256", "--model", "seed"]
    result = subprocess.run([sys.executable, "benchmarks/bench_settings.py", *args], env=env, capture_output=True,
                            text=True, timeout=300, cwd=ROOT)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert list(summary) == ["kit", "fit16", "float32"] and summary["kit"]["ratio"] == 1.0
    assert all(v["ratio"] == pytest.approx(v["img_s"] / summary["kit"]["img_s"]) for v in summary.values())
    assert "'feed': 'fit', 'steps_per_execution': 16" in result.stdout and "'precision': 'float32'" in result.stdout
    assert "round 1 (compiles, not counted)" in result.stdout


def test_fold_locks_exclude_a_second_trainer(tmp_path):
    from kit import runs
    from kit.errors import RunError

    with runs.fold_locks(tmp_path, [0, 1]):
        busy = r"Fold 1 of run .* is being trained by another kit process \(pid \d+\)"
        with pytest.raises(RunError, match=busy), runs.fold_locks(tmp_path, [2, 1]):
            pass
        with runs.fold_locks(tmp_path, [2]):  # other folds stay free (and 2 was released by the failed attempt)
            pass
    with runs.fold_locks(tmp_path, [0, 1, 2]):  # all released
        pass


@pytest.mark.slow
def test_a_run_being_trained_elsewhere_is_one_line(env, sample):
    from kit import runs

    run = Path(env["KIT_RUNS_DIR"]) / "busy"
    run.mkdir(parents=True)
    with runs.fold_locks(run, [1]):  # another `kit train --run-id busy` holds fold 1
        result = kit_here(["train", "--folds", "2", "--epochs", "1", "--run-id", "busy", "--model", "seed"], env)
    assert result.returncode == 8, result.stdout + result.stderr
    assert "Fold 1 of run busy is being trained by another kit process" in result.stderr
    assert "Traceback" not in result.stderr and not (run / "fold0" / "metrics.json").exists()


def _workers_of(run_id: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if "kit.parallel" in cmdline and f'"run_id": "{run_id}"' in cmdline:
            found.append(int(proc.name))
    return found


@pytest.mark.slow
@pytest.mark.parametrize("signum", [15, 9], ids=["SIGTERM", "SIGKILL"])
def test_stopping_kit_train_stops_its_fold_workers(env, sample, signum):
    import os
    import time

    run_id = f"stop{signum}"
    args = ["train", "--folds", "2", "--jobs", "2", "--epochs", "200", "--run-id", run_id, "--model", "seed",
            "--limit", "200"]  # fmt: skip
    parent = subprocess.Popen([sys.executable, "-m", "kit", *args], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd=ROOT)  # fmt: skip
    try:
        for line in parent.stdout:  # the workers are training once their first epoch is reported
            if "epoch 1/200" in line:
                break
        assert len(_workers_of(run_id)) == 2
        os.kill(parent.pid, signum)
        assert parent.wait(60) == (143 if signum == 15 else -9)
        deadline = time.monotonic() + 30
        while _workers_of(run_id) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _workers_of(run_id) == []
        if signum == 15:
            assert "Traceback" not in parent.stderr.read()
        run = Path(env["KIT_RUNS_DIR"]) / run_id
        assert not any((run / f"fold{k}" / "metrics.json").exists() for k in (0, 1))
    finally:
        parent.kill()
        for pid in _workers_of(run_id):
            os.kill(pid, 9)


@pytest.mark.slow
def test_repeated_kfold_averages_every_rows_oof_over_its_repeats(env, sample):
    """--folds 2 --repeats 2: 4 members on two differently seeded splits; each row's OOF is the mean of its two
    out-of-fold members, the test probabilities the mean of all four; resume skips complete members."""
    args = ["train", "--folds", "2", "--repeats", "2", "--epochs", "1", "--run-id", "rep", "--model", "seed",
            "--no-tta", "--limit", "400"]  # fmt: skip
    first = kit_here([*args, "--fold", "3"], env)
    assert first.returncode == 0, first.stderr
    assert "1/4 folds complete" in first.stdout and "2 fold(s) x 2 repeats" in first.stdout
    run = Path(env["KIT_RUNS_DIR"]) / "rep"
    stamp = (run / "fold3" / "metrics.json").stat().st_mtime_ns
    bad = kit_here(["train", "--run-id", "rep", "--fold", "4"], env)
    assert bad.returncode == 2 and "--fold 4: must be between 0 and 3" in bad.stderr

    rest = kit_here(["train", "--run-id", "rep", "--jobs", "1", "--limit", "400"], env)  # in this process
    assert rest.returncode == 0, rest.stderr
    assert (run / "fold3" / "metrics.json").stat().st_mtime_ns == stamp  # member 3 was not retrained
    folds = np.load(run / "folds.npy")
    n = 400
    assert folds.shape == (2, n) and not np.array_equal(folds[0], folds[1])  # two different splits
    oof, expected = np.load(run / "oof.npy"), np.zeros((n, 10))
    seen = np.zeros(n, int)
    for member in range(4):
        rows = folds[member // 2] == member % 2
        expected[rows] += np.load(run / f"fold{member}" / "val_probs.npy")
        seen[rows] += 1
    assert np.all(seen == 2)  # every training row has two OOF predictions
    np.testing.assert_allclose(oof, expected / 2, atol=1e-6)
    test = np.mean([np.load(run / f"fold{m}" / "test_probs.npy") for m in range(4)], axis=0)
    np.testing.assert_allclose(np.load(run / "test_probs.npy"), test, atol=1e-6)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["members"] == 4 and metrics["cv_accuracy"] == pytest.approx(
        (oof.argmax(1) == sample.train_labels[:n]).mean()
    )
    submission.validate(Path(env["KIT_SUBMISSIONS_DIR"]) / "rep.csv", len(sample.test_images))
    predicted = kit_here(["predict", "rep"], env)  # the four saved members re-predict the same thing
    assert predicted.returncode == 0, predicted.stderr
    np.testing.assert_allclose(np.load(Path(env["KIT_RUNS_DIR"]) / "rep-predict" / "oof.npy"), oof, atol=1e-4)


def test_repeats_need_kfold():
    from kit.errors import UsageError

    with pytest.raises(UsageError, match="--repeats 3: needs --folds 2 or more"):
        config.recipe("kitnet", repeats=3)
    with pytest.raises(UsageError, match="--repeats 0: must be a whole number"):
        config.recipe("kitnet", folds=5, repeats=0)


def test_too_few_rows_and_a_bad_seed_are_usage_errors():
    from kit.errors import UsageError
    from kit.splits import assign as assign_folds

    labels = np.repeat(np.arange(10), 2)[:19]  # digit 9 once
    with pytest.raises(UsageError, match="digit 9 has 1 example"):
        assign_folds(labels, 1, 0.1, seed=0)
    with pytest.raises(UsageError, match="too few for a stratified holdout"):
        assign_folds(np.repeat(np.arange(10), 5), 1, 0.1, seed=0)  # a 5-row holdout cannot hold 10 digits
    with pytest.raises(UsageError, match="--folds 3 needs at least 3 examples of every digit"):
        assign_folds(np.repeat(np.arange(10), 2), 3, 0.1, seed=0)
    with pytest.raises(UsageError, match="--seed -1: must be a whole number in"):
        config.recipe("kitnet", seed=-1)


DONE = {"fold": 0, "accuracy": 0.99, "val_rows": 1, "images_per_s": 1.0, "seconds": 1.0}  # a complete member's


def test_damaged_json_in_a_run(env):
    from kit import paths, runs
    from kit.errors import RunError

    root = paths.runs_dir()
    for name, created in (("good", "2026-01-01T00:00:00Z"), ("damaged", "2026-02-01T00:00:00Z")):
        (root / name / "fold0").mkdir(parents=True)
        (root / name / "config.json").write_text(json.dumps({"kind": "train", "created_utc": created}))
        (root / name / "fold0" / "metrics.json").write_text(json.dumps(DONE))
    (root / "damaged" / "config.json").write_text('{"kind": "tra')  # torn
    (root / "damaged" / "fold0" / "metrics.json").write_bytes(b"\xff\xfe")
    assert runs.resolve(None).name == "good"  # a damaged run is never the latest
    with pytest.raises(RunError, match=r"damaged/config\.json is damaged"):
        runs.load_config(root / "damaged")
    assert runs.member_done(root / "good", 0) and not runs.member_done(
        root / "damaged", 0
    )  # a damaged fold is trained again


@pytest.mark.slow
def test_unwritable_places_and_too_few_rows_are_one_line(env, sample, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    runs_file = kit_here(["train", "--epochs", "1", "--limit", "300", "--model", "seed"],
                        {**env, "KIT_RUNS_DIR": str(blocker)})  # fmt: skip
    assert runs_file.returncode != 0 and "Traceback" not in runs_file.stderr, runs_file.stderr
    assert "a-file" in runs_file.stderr
    few = kit_here(["train", "--limit", "20", "--epochs", "1"], env)
    assert few.returncode == 2 and "use a larger --limit" in few.stderr and "Traceback" not in few.stderr
    seed = kit_here(["train", "--seed", "-1"], env)
    assert seed.returncode == 2 and "--seed -1: must be a whole number in" in seed.stderr


def test_the_gpu_preset_and_a_resumed_runs_recipe():
    from kit.errors import UsageError

    gpu = config.recipe("leaderboard")
    assert gpu.model == "blend" and list(gpu.families) == ["kitnet", "deotte", "m5"]
    assert [(f.folds, f.repeats, f.epochs) for f in gpu.families.values()] == [(5, 1, 44), (5, 1, 45), (5, 1, 50)]
    saved = config.recipe("kitnet", folds=5).to_dict()
    assert config.for_run(None, saved) == config.from_dict(saved)
    assert config.for_run("kitnet", saved, tta=False).tta is False  # same architecture: options apply
    with pytest.raises(UsageError, match="trained with --model kitnet"):
        config.for_run("seed", saved)
    assert config.for_run(None, None) == config.recipe("kitnet")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("model", "resnet", "--model 'resnet': must be one of seed, kitnet, deotte, m5, m3"),
        ("epochs", 0, "--epochs 0: must be a whole number >= 1"),
        ("batch_size", 2.5, "--batch-size 2.5: must be a whole number >= 1"),
        ("learning_rate", 0.0, "--lr 0.0: must be in (0, 1)"),
        ("schedule", "cosine", "schedule 'cosine': must be one of constant, onecycle, exponential"),
        ("lr_decay", 0.0, "lr_decay 0.0: must be in (0, 1]"),
        ("ema", 1.0, "ema 1.0: must be in [0, 1) (0: no weight averaging)"),
        ("warmup", 1.0, "warmup 1.0: must be in [0, 1)"),
        ("label_smoothing", 1.0, "label_smoothing 1.0: must be in [0, 1)"),
        ("dropout", 1.2, "dropout 1.2: must be in [0, 1)"),
        ("batchnorm", "some", "batchnorm 'some': must be 'all', 'stride' or 'none'"),
        ("augment", "yes", "--augment 'yes': must be true or false"),
        ("rotation", -5.0, "rotation -5.0: must be in [0, 180] degrees"),
        ("zoom", float("nan"), "zoom nan: must be in [0, 1)"),
        ("shift", 1.5, "shift 1.5: must be in [0, 1)"),
        ("tta", 1, "--tta 1: must be true or false"),
        ("folds", 0, "--folds 0: must be a whole number in [1, 100]"),
        ("repeats", 0, "--repeats 0: must be a whole number in [1, 100]"),
        ("fold_epochs", 0, "fold_epochs 0: must be a whole number >= 1"),
        ("holdout", 1.0, "holdout 1.0: must be in (0, 1)"),
        ("seed", -1, "--seed -1: must be a whole number in [0, 2**32)"),
        ("precision", "int8", "--precision 'int8': must be one of auto, float32, bfloat16, float16"),
    ],
)
def test_every_recipe_field_is_validated(field, value, message):
    from kit.errors import UsageError

    with pytest.raises(UsageError, match=re.escape(message)):
        config.override(config.recipe("kitnet"), **{field: value})


def test_the_models_config_knows_are_the_architectures_and_a_foreign_config_is_named():
    from kit import models
    from kit.errors import RunError

    assert set(config.MODELS) == set(models.ARCHITECTURES)
    saved = {**config.recipe("kitnet").to_dict(), "model": "resnet"}
    with pytest.raises(RunError, match="not one kit can train: --model 'resnet'"):
        config.from_dict(saved)
    with pytest.raises(RunError, match="incomplete"):
        config.from_dict({"model": "kitnet"})


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(fold=0), "--fold needs --run-id"),
        (dict(fold=5, run_id="r"), "--fold 5: must be between 0 and 4 for a 5-fold run."),
        (dict(fold=-1, run_id="r"), "--fold -1: must be between 0 and 4"),
        (dict(limit=19), "--limit 19: must be at least 20 rows."),
        (dict(jobs=0), "--jobs 0: must be a whole number >= 1."),
        (dict(jobs=2, ray="local"), "--ray places the folds itself; drop --jobs."),
        (dict(mirrored=True, ray="auto"), "--ray places the folds itself; drop --mirrored."),
        (dict(run_id=""), "--run-id '': use letters, digits"),
        (dict(run_id="../x"), "--run-id '../x': use letters, digits"),
        (dict(run_id="r1\n"), "--run-id 'r1\\n': use letters, digits"),  # matched whole: no trailing newline
    ],
)
def test_train_options_are_checked_with_the_recipe(options, message):
    from kit.errors import UsageError

    r = config.recipe("kitnet", folds=5)
    given = {"fold": None, "run_id": None, "limit": None, "jobs": None, "ray": None, "mirrored": False, **options}
    with pytest.raises(UsageError, match=re.escape(message)):
        api.check_options(r, **given)
    api.check_options(r, **{**given, **dict(fold=4, run_id="r", limit=20, jobs=1, ray=None, mirrored=False)})


def test_placement_picks_the_jobs_and_says_where(monkeypatch):
    from kit import dispatch, parallel
    from kit.device import Device

    monkeypatch.setattr(parallel, "cores", lambda: 2)
    cpu = Device("tensorflow", "cpu", ["cpu"], "float32", "float32", False)
    r = config.recipe("kitnet", folds=5)
    jobs, where = dispatch.placement(r, cpu, None, None, None)
    assert jobs == 3 and where.endswith(parallel.plan(cpu, 3, 5))
    assert dispatch.placement(r, cpu, 2, None, None)[0] == 1  # --fold: one member to train
    assert dispatch.placement(r, cpu, None, 4, None)[0] == 4  # --jobs wins

    class OnRay:
        def describe(self) -> str:
            return "a Ray cluster"

    assert dispatch.placement(r, cpu, None, None, OnRay())[1] == "a Ray cluster"


def test_member_rows_and_oof_accuracy():
    from kit import ensemble
    from kit.splits import assign as assign_folds

    labels = np.repeat(np.arange(10), 6)
    repeated = assign_folds(labels, 3, 0.1, seed=0, repeats=2)
    for member in range(6):
        val, fit = splits.member_rows(repeated, 3, member), splits.training_rows(repeated, 3, member)
        assert not (val & fit).any() and (val | fit).all() and val.sum() == 20
    holdout = assign_folds(labels, 1, 0.2, seed=0)
    assert (splits.training_rows(holdout, 1, 0) == (holdout == -1)).all()

    oof = np.eye(10, dtype=np.float32)[[0, 1, 2, 3]]
    oof[3] = np.nan  # row 3 has no prediction
    assert ensemble.oof_accuracy(oof, np.array([0, 1, 9, 3])) == pytest.approx(2 / 3)
    assert ensemble.oof_accuracy(oof, np.array([0, 1])) is None  # another data set's rows
    assert ensemble.oof_accuracy(np.full((2, 10), np.nan), np.array([0, 1])) is None


@pytest.mark.parametrize("args", [["--limit", "25"], ["--folds", "50", "--limit", "100"]], ids=["holdout", "folds"])
def test_an_error_found_after_keras_loads_leaves_no_run_behind(env, sample, args):
    result = kit_here(["train", "--run-id", "half", "--epochs", "1", *args], env)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert not (Path(env["KIT_RUNS_DIR"]) / "half").exists()


def test_train_help_shows_the_default_presets_values(env):
    shown = kit_here(["train", "--help"], {**env, "COLUMNS": "250"})
    assert shown.returncode == 0, shown.stderr
    text = " ".join(shown.stdout.split())
    kitnet = config.PRESETS[config.DEFAULT_PRESET]
    for value in (f"kitnet's {kitnet.batch_size}", f"kitnet's {kitnet.learning_rate:g}", f"kitnet's {kitnet.seed}",
                  f"kitnet's {kitnet.epochs} for one model, {kitnet.fold_epochs} a fold with --folds 2+",
                  "kitnet's on", f"mean over {len(config.TTA_VIEWS)} shifted/rotated views"):  # fmt: skip
        assert value in text, value


def test_set_reaches_every_recipe_field_as_its_type():
    """--set FIELD=VALUE for each settable field: the value comes back typed, through the one validator."""
    from kit.errors import UsageError

    base = config.recipe("kitnet", folds=5)
    values = {"epochs": "3", "batch_size": "64", "learning_rate": "0.002", "schedule": "constant", "warmup": "0.1",
              "label_smoothing": "0.05", "dropout": "0.3", "batchnorm": "none", "augment": "off", "rotation": "15",
              "zoom": "0.1", "shift": "0.1", "tta": "true", "folds": "4", "repeats": "2", "fold_epochs": "none",
              "holdout": "0.2", "seed": "7", "precision": "float32", "lr_decay": "0.9", "ema": "0.99",
              "pseudo": "teacher", "pseudo_min": "0.5"}  # fmt: skip
    assert set(values) == set(config.SETTABLE)
    for field, text in values.items():
        chosen = config.settings(base, [f"{field}={text}"])
        value = getattr(chosen, field)
        expected = {"off": False, "true": True, "none": None}.get(text, text)
        assert value == expected or str(value) == text or value == type(value)(text), (field, value)
        assert type(value) is not str or field in ("schedule", "batchnorm", "precision", "pseudo")
    blended = config.settings(config.recipe("leaderboard"), ["deotte.epochs=20", "rotation=12"])
    assert blended.families["deotte"].epochs == 20 and blended.families["kitnet"].epochs != 20
    assert {f.rotation for f in blended.families.values()} == {12.0}
    for item, needle in [
        ("dropout=1.2", "dropout 1.2: must be in [0, 1)"),
        ("colour=red", "no recipe field 'colour'"),
        ("epochs=many", "epochs takes a whole number, not 'many'"),
        ("epochs", "FIELD=VALUE"),
        ("x.epochs=3", "no family 'x' (this recipe is no blend)"),
        ("augment=maybe", "true or false"),
    ]:
        with pytest.raises(UsageError, match=re.escape(needle)):
            config.settings(base, [item])


def test_set_on_the_command_line_is_one_line_and_writes_nothing(env):
    result = kit_here(["train", "--model", "seed", "--set", "dropout=2", "--run-id", "bad"], env)
    assert result.returncode == 2 and "--set: dropout 2.0: must be in [0, 1)" in result.stderr, result.stderr
    assert not (Path(env["KIT_RUNS_DIR"]) / "bad").exists()


@pytest.mark.slow
def test_a_runs_recipe_file_trains_it_again_bit_identically_and_kit_runs_shows_the_changes(env, sample, tmp_path):
    """`kit runs --recipe RUN > FILE`, then `kit train --recipe FILE`: the same recipe, the same probabilities to the
    bit; --set on top of a file is a change `kit runs` shows."""
    base = ["--folds", "2", "--epochs", "1", "--limit", "200", "--jobs", "1", "--no-tta"]
    first = kit_here(["train", "--model", "seed", *base, "--run-id", "r1"], env)
    assert first.returncode == 0, first.stderr
    written = kit_here(["runs", "--recipe", "r1"], env)
    assert written.returncode == 0 and written.stdout.startswith("# the recipe of run r1"), written.stderr
    recipe = tmp_path / "r1.toml"
    recipe.write_text(written.stdout)
    again = kit_here(["train", "--recipe", str(recipe), "--limit", "200", "--jobs", "1", "--run-id", "r2"], env)
    assert again.returncode == 0, again.stderr
    runs_dir = Path(env["KIT_RUNS_DIR"])
    for name in ("oof.npy", "test_probs.npy", "folds.npy"):
        assert (runs_dir / "r1" / name).read_bytes() == (runs_dir / "r2" / name).read_bytes(), name
    saved = [json.loads((runs_dir / r / "config.json").read_text())["recipe"] for r in ("r1", "r2")]
    assert saved[0] == saved[1]
    changed = kit_here(["train", "--recipe", str(recipe), "--set", "dropout=0.3", "--set", "epochs=2", "--limit",
                        "200", "--jobs", "1", "--run-id", "r3"], env)  # fmt: skip
    assert changed.returncode == 0, changed.stderr
    listed = kit_here(["runs", "--csv"], env).stdout.splitlines()
    row = next(line for line in listed if line.startswith("r3,"))
    assert "epochs=2 dropout=0.3" in row and "folds" not in row.split(",")[5]
    both = kit_here(["train", "--recipe", str(recipe), "--model", "kitnet"], env)
    assert both.returncode == 2 and "--model and --recipe both name the recipe" in both.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text('preset = "seed"\ncolour = "red"\n')
    refused = kit_here(["train", "--recipe", str(bad)], env)
    assert refused.returncode == 2 and f"--recipe {bad}: no recipe field 'colour'" in refused.stderr
