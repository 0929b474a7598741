"""Model families and the leaderboard blend: every family trains (on TensorFlow; each builder on JAX), weight averaging
saves the average, blend weights come from OOF rows alone and are guarded against overfitting, and a blend run works
end to end through train, resume, runs, report and predict."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest

from kit import config, data, ensemble, files, runs, splits
from kit.errors import UsageError
from tests.conftest import ROOT, kit_here


@pytest.fixture
def sample(env):
    data.install_sample(data.data_dir())
    return data.load_competition()


# ------------------------------------------------------------------------------------------------- recipes


def two_families(**overrides) -> config.Recipe:
    """kitnet (22 epochs a fold) + deotte (14, his schedule compressed to the same end) on 5 folds: a blend of two."""
    blend = config.blend(
        {
            "kitnet": dataclasses.replace(config.PRESETS["kitnet"], folds=5, fold_epochs=22, epochs=22),
            "deotte": dataclasses.replace(config.PRESETS["deotte"], folds=5, epochs=14, lr_decay=0.85),
        }
    )
    return config.override(blend, **overrides)


def test_a_blend_recipe_trains_each_family_on_the_same_folds():
    r = two_families()
    assert r.model == "blend" and list(r.families) == ["kitnet", "deotte"]
    assert [f.epochs for f in r.families.values()] == [22, 14]
    assert config.member_count(r) == 10
    assert [config.member(r, m)[0] for m in (0, 4, 5, 9)] == ["kitnet", "kitnet", "deotte", "deotte"]
    assert config.member(r, 7)[1] == r.families["deotte"]
    # an option applies to every family, the split's fields stay shared
    short = two_families(epochs=2, folds=3, seed=7)
    assert [(f.epochs, f.folds, f.seed) for f in short.families.values()] == [(2, 3, 7), (2, 3, 7)]
    assert config.member_count(short) == 6
    # config.json round trip, families included
    assert config.from_dict(json.loads(json.dumps(r.to_dict()))) == r
    with pytest.raises(UsageError, match="must share the blend's folds"):
        config.validate(dataclasses.replace(r, folds=3))
    with pytest.raises(UsageError, match="needs its families"):
        config.validate(dataclasses.replace(r, families={}))
    with pytest.raises(UsageError, match="--fold 10: must be between 0 and 9 for a 5-fold run of 2 families"):
        config.check_fold(r, 10)
    # a single family is a run of one model, as before
    assert config.member(config.recipe("deotte"), 3) == ("deotte", config.recipe("deotte"))


def test_member_rows_of_a_blend_repeat_the_split_for_each_family():
    from kit.splits import assign as assign_folds

    labels = np.repeat(np.arange(10), 6)
    folds = assign_folds(labels, 3, 0.1, seed=0)
    for m in range(6):
        assert (splits.member_rows(folds, 3, m) == (folds == m % 3)).all()
    repeated = assign_folds(labels, 3, 0.1, seed=0, repeats=2)
    assert (splits.member_rows(repeated, 3, 6 + 4) == splits.member_rows(repeated, 3, 4)).all()


# ------------------------------------------------------------------------------------------------- blending


def _probs(labels: np.ndarray, accuracy: float, rng: np.random.Generator) -> np.ndarray:
    """Softmax-like rows whose argmax is right on about `accuracy` of the rows; a wrong row still gives the true
    label some weight (as a net's second choice)."""
    rows, right = np.arange(len(labels)), rng.random(len(labels)) < accuracy
    p = rng.random((len(labels), 10)) * 0.2
    p[rows, labels] += np.where(right, 2.0, 0.6)
    p[rows[~right], (labels[~right] + rng.integers(1, 10, (~right).sum())) % 10] += 1.0
    return (p / p.sum(1, keepdims=True)).astype(np.float32)


def test_fitted_weights_never_blend_below_the_best_family():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 6000)
    strong = _probs(labels, 0.95, rng)
    noise = np.eye(10, dtype=np.float32)[rng.integers(0, 10, len(labels))] * 0.9 + 0.01  # confident, mostly wrong
    fit = ensemble.fit_blend(np.stack([noise, strong]), labels)
    assert fit.method == "fitted" and fit.weights[1] > 0.5
    blended = np.tensordot(fit.weights, np.stack([noise, strong]), axes=1)
    best = (strong.argmax(1) == labels).mean()
    assert (blended.argmax(1) == labels).mean() >= best
    # two families that err on different rows: the blend beats both
    a, b = _probs(labels, 0.9, rng), _probs(labels, 0.9, rng)
    fit = ensemble.fit_blend(np.stack([a, b]), labels)
    blended = np.tensordot(fit.weights, np.stack([a, b]), axes=1)
    assert (blended.argmax(1) == labels).mean() > max((a.argmax(1) == labels).mean(), (b.argmax(1) == labels).mean())


def test_a_less_confident_family_is_weighed_by_its_accuracy():
    """Label smoothing makes a family's probabilities softer; weights chosen by log loss gave a 5-epoch Deotte net
    (no smoothing) 0.97 of the weight against a more accurate kitnet, and the blend 69 more errors than kitnet."""
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 10, 6000)
    sharp = _probs(labels, 0.88, rng) ** 4
    sharp /= sharp.sum(1, keepdims=True)
    soft = 0.5 * _probs(labels, 0.95, rng) + 0.05  # right more often, never confident
    oofs = np.stack([soft, sharp])
    fit = ensemble.fit_blend(oofs, labels)
    blended = np.tensordot(fit.weights, oofs, axes=1)
    assert (blended.argmax(1) == labels).mean() >= (soft.argmax(1) == labels).mean()


def test_weights_that_would_overfit_are_not_used():
    rng = np.random.default_rng(1)
    few = rng.integers(0, 10, 200)
    fit = ensemble.fit_blend(np.stack([_probs(few, 0.9, rng), _probs(few, 0.5, rng)]), few)
    assert fit.method == "mean" and fit.weights == [0.5, 0.5] and "too few" in fit.reason
    # families that are the same model: no weights can help on rows they were not fitted on, so the mean stays
    labels = rng.integers(0, 10, 4000)
    same = _probs(labels, 0.9, rng)
    fit = ensemble.fit_blend(np.stack([same, same, same]), labels)
    assert fit.method == "mean" and fit.weights == pytest.approx([1 / 3] * 3)


def test_a_blend_is_fitted_on_oof_rows_only_and_reports_vote_mean_and_overlap():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 10, 3000)
    r = two_families(folds=3)
    from kit.splits import assign as assign_folds

    folds = assign_folds(labels, 3, 0.1, seed=0)
    fam = {"kitnet": _probs(labels, 0.92, rng), "deotte": _probs(labels, 0.85, rng)}

    def members(test_value: float):
        out = {}
        for m in range(6):
            name, _ = config.member(r, m)
            rows = splits.member_rows(folds, 3, m)
            out[m] = (fam[name][rows], np.full((50, 10), test_value, np.float32))
        return out

    one, other = (ensemble.combine_families(r, folds, members(v), labels) for v in (0.1, 0.9))
    assert one.summary["blend"] == other.summary["blend"]  # the test probabilities never move a weight
    np.testing.assert_allclose(one.family_oof[0], fam["kitnet"], rtol=1e-6)
    blend = one.summary["blend"]
    assert set(blend) >= {"weights", "method", "why", "cv_mean", "cv_vote"}
    assert blend["cv_mean"] == ensemble.oof_accuracy((fam["kitnet"] + fam["deotte"]) / 2, labels)
    wrong = {n: p.argmax(1) != labels for n, p in fam.items()}
    overlap = one.summary["overlap"]
    assert overlap["errors"] == {n: int(w.sum()) for n, w in wrong.items()}
    assert overlap["all"] == int((wrong["kitnet"] & wrong["deotte"]).sum()) == overlap["pairs"]["kitnet & deotte"]
    assert overlap["any"] == int((wrong["kitnet"] | wrong["deotte"]).sum())
    assert one.cv == ensemble.oof_accuracy(one.oof, labels)


def test_majority_vote_breaks_ties_by_the_mean_probability():
    eye = np.eye(10, dtype=np.float32)
    probs = np.stack([eye[[1, 2]] * 0.6 + 0.04, eye[[1, 3]] * 0.9 + 0.01, eye[[4, 3]] * 0.5 + 0.05])
    assert ensemble.vote(probs).tolist() == [1, 3]  # row 0: two votes for 1; row 1: 3 twice
    tie = np.stack([eye[[5]] * 0.5 + 0.05, eye[[6]] * 0.9 + 0.01])
    assert ensemble.vote(tie).tolist() == [6]


# ------------------------------------------------------------------------------------- families, EMA (Keras)

_FAMILIES_SNIPPET = """
import json
import sys
import numpy as np
from kit import config, device, training

dev = device.setup("float32")  # what `kit train` calls: on this CPU, the CPU configuration
rng = np.random.default_rng(0)
x = rng.integers(0, 255, (64, 28, 28, 1)).astype(np.uint8)
y = training.one_hot(rng.integers(0, 10, 64))
out = {}
for name in sys.argv[1:]:
    r = config.recipe(name, epochs=1, batch_size=32)
    model = training.compile_model(r, dev, 2, seed=0)
    rows = training.fit(model, x, y, x[:16], y[:16], r, dev, seed=0)
    probs = model.predict_on_batch(x[:16])  # the validation's shape: compiled once
    out[name] = {"params": model.count_params(), "steps": int(model.optimizer.iterations),
                 "sums": np.asarray(probs).sum(1).tolist(), "loss": rows[0]["loss"]}
print("RESULT " + json.dumps({"kind": dev.kind, "families": out}))
"""


# On JAX: one family a builder (m3 is m5's `models._all_conv` with other kernels and widths; its compile cost more
# than deotte's here), and a user's own model with its custom layer (kit.user_models: Keras 3 API on either backend).
OWN = "tests/own_model.py:build"
_BACKENDS = {"tensorflow": ["deotte", "m5", "m3"], "jax": ["deotte", "m5", OWN]}


@pytest.mark.slow
@pytest.mark.parametrize("backend", list(_BACKENDS))
def test_every_family_trains_on_each_backend(env, backend):
    if backend == "jax" and importlib.util.find_spec("jax") is None:
        pytest.skip("jax is not installed")
    result = subprocess.run([sys.executable, "-c", _FAMILIES_SNIPPET, *_BACKENDS[backend]],
                            env={**env, "KERAS_BACKEND": backend}, capture_output=True, text=True, timeout=600,
                            cwd=ROOT)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    got = json.loads(result.stdout.split("RESULT ", 1)[1])
    assert got["kind"] == "cpu"
    got = got["families"]
    assert list(got) == _BACKENDS[backend]
    # An et al.'s M5 and M3 have 1.1 M parameters (their summaries); Deotte's net kitnet's 0.33 M with more norms
    params = {"deotte": 327_242, "m5": 1_129_160, "m3": 1_126_280, OWN: 13_618}
    for name, row in got.items():
        assert row["params"] == params[name], name
        assert row["steps"] == 2, name
        assert np.allclose(row["sums"], 1.0, atol=1e-4) and np.isfinite(row["loss"]), name


def test_the_saved_model_holds_the_moving_average_of_the_weights(env, sample, monkeypatch):
    """EMA, computed here from the live weights after every step, against what train_member saved."""
    import keras

    from kit import device, dispatch, training

    dev = device.configure(keras.backend.backend(), "cpu", ["cpu"], "float32")
    comp = data.head(sample, 300)
    r = config.recipe("kitnet", epochs=2, batch_size=64, folds=2, ema=0.9, tta=False)
    live: list[list[np.ndarray]] = []
    real = training.train_epoch

    def recording(model, x, y, batches):
        logs = {"loss": 0.0, "accuracy": 0.0}
        for batch in batches:
            logs = real(model, x, y, [batch])
            live.append([v.numpy().copy() for v in model.trainable_variables])
        return logs

    monkeypatch.setattr(training, "train_epoch", recording)
    run_dir, folds = dispatch.prepare_run(r, comp, "ema", dev)
    training.train_member(r, comp, folds, 0, run_dir, dev)
    average = live[0]  # Keras' first step takes the weights as they are, then average <- 0.9 average + 0.1 w
    for step in live[1:]:
        average = [0.9 * a + 0.1 * w for a, w in zip(average, step, strict=True)]
    saved = keras.saving.load_model(run_dir / "fold0" / "model.keras")
    assert len(live) == 2 * 3  # 150 rows, batch 64: 3 steps an epoch
    for got, want in zip(saved.trainable_variables, average, strict=True):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-4, atol=1e-6)
    assert any(not np.allclose(a, w) for a, w in zip(average, live[-1], strict=True))  # the average is no copy


def test_model_fit_keeps_training_the_live_weights_under_ema(env):
    """GPUs train one fit() call an epoch; Keras would write the average into the weights at the end of each."""
    import keras

    from kit import device, training

    dev = device.configure(keras.backend.backend(), "gpu", ["cpu"], "float32")
    r = config.recipe("kitnet", epochs=1, batch_size=32, ema=0.99, augment=False)
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 255, (128, 28, 28, 1)).astype(np.uint8), training.one_hot(rng.integers(0, 10, 128))
    model = training.compile_model(r, dev, 4, seed=0)
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    live = [v.numpy() for v in model.trainable_variables]
    averages = [a.numpy() for a in model.optimizer._model_variables_moving_average]
    assert any(not np.allclose(w, a) for w, a in zip(live, averages, strict=True))
    with training.averaged(model):
        assert all(np.allclose(v.numpy(), a) for v, a in zip(model.trainable_variables, averages, strict=True))
    assert all(np.allclose(v.numpy(), w) for v, w in zip(model.trainable_variables, live, strict=True))


_GPU_LEADERBOARD = """
import dataclasses
import json
import keras
from kit import config, data, device, dispatch

dev = device.configure(keras.backend.backend(), "gpu", ["cpu"], "auto")
comp = data.head(data.load_competition(), 200)  # and 100 test images, in memory: trained in this process
# (as many as a fold's validation rows: under XLA each shape predicted compiles again)
comp = dataclasses.replace(comp, test_images=comp.test_images[:100], path=None)
r = config.recipe("leaderboard", epochs=1, batch_size=50, folds=2, tta=False)  # TTA: the default recipe's GPU check
# one member of each family kitnet's GPU check leaves (members 0-1 kitnet, 2-3 deotte, 4-5 m5), one after the other
trained = [dispatch.train_run(r, comp, run_id="gpu-leaderboard", device=dev, only=m).fold_metrics[-1] for m in (2, 4)]
print("RESULT " + json.dumps({"policy": dev.policy, "feed": dev.feed, "members": [m["fold"] for m in trained],
                              "families": [m["family"] for m in trained]}))
"""


@pytest.mark.slow
def test_gpu_configuration_trains_the_leaderboard_preset_on_the_cpu(env, sample):
    """What a GPU runs (mixed float16, XLA, model.fit, 16 steps a call) for the GPU leaderboard preset: a step of a
    deotte and an m5 member in one process (kitnet's: the default recipe's GPU test; the blend of the members is
    tested on the CPU configuration)."""
    result = subprocess.run([sys.executable, "-c", _GPU_LEADERBOARD], env={**env, "KERAS_BACKEND": "tensorflow"},
                            capture_output=True, text=True, timeout=900, cwd=ROOT)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    got = json.loads(result.stdout.split("RESULT ", 1)[1])
    assert got["policy"] == "mixed_float16" and got["feed"] == "fit"
    assert got["members"] == [2, 4] and got["families"] == ["deotte", "m5"]


# -------------------------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_a_blend_from_a_recipe_file_end_to_end(env, sample, tmp_path):
    """A blend of two families from a recipe file (`kit train --recipe`) on the sample: each family's members, the
    blend, then one member trained again by --fold after it is deleted, and runs, report and predict on the blend
    run. (The retired leaderboard-cpu preset was this blend; the preset name is refused.)"""
    retired = kit_here(["train", "--model", "leaderboard-cpu"], env)
    assert retired.returncode == 2 and "--model 'leaderboard-cpu': must be one of seed, kitnet" in retired.stderr
    recipe = tmp_path / "two.toml"
    recipe.write_text(
        "folds = 2\n\n[families.kitnet]\nepochs = 22\n\n[families.deotte]\nepochs = 14\nlr_decay = 0.85\n"
    )
    trained = kit_here(["train", "--recipe", str(recipe), "--epochs", "1", "--limit", "200", "--run-id", "lb",
                        "--no-tta", "--jobs", "1"], env)  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert "kitnet (1 epochs, batch 256) + deotte (1 epochs, batch 64)" in trained.stdout
    run = runs.runs_dir() / "lb"
    metrics = runs.load_metrics(run)
    assert metrics["members"] == 4 and set(metrics["families"]) == {"kitnet", "deotte"}
    assert sum(metrics["blend"]["weights"].values()) == pytest.approx(1.0)
    assert metrics["blend"]["method"] == "mean"  # 200 rows are too few to fit weights on
    assert [files.read_json(run / f"fold{m}" / "metrics.json")["family"] for m in range(4)] == [
        "kitnet", "kitnet", "deotte", "deotte"]  # fmt: skip
    assert np.load(run / "family_oof.npy").shape == (2, 200, 10)
    assert "blend" in trained.stdout and "errors in common" in trained.stdout

    import shutil

    shutil.rmtree(run / "fold3")
    again = kit_here(["train", "--run-id", "lb", "--fold", "3", "--limit", "200"], env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert runs.member_done(run, 3) and runs.load_metrics(run)["members"] == 4

    listed = kit_here(["runs", "--csv"], env)
    assert listed.returncode == 0 and "kitnet + deotte" in listed.stdout
    report = kit_here(["report", "lb"], env)
    assert report.returncode == 0, report.stderr[-2000:]
    assert "kitnet" in report.stdout and "deotte" in report.stdout and "errors in common" in report.stdout
    predicted = kit_here(["predict", "lb"], env)
    assert predicted.returncode == 0, predicted.stderr[-2000:]
