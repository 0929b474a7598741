"""Your own model by import path (`kit train --model FILE.py:FUNCTION`): the recipe it trains with, the one-line
errors before any training, and a model with a custom layer through fold workers, resume, `kit predict --tta` on
another checkout, pseudo-labels and a blend recipe file with kitnet. (Ray: tests/test_cluster.py; the Kaggle kernel:
tests/test_kaggle_kernel.py.)"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from kit import config, data, files, runs, user_models
from kit.errors import UsageError
from tests.conftest import ROOT, kit_here

OWN = ROOT / "tests" / "own_model.py"


@pytest.fixture
def sample(env):
    data.install_sample(data.data_dir())
    return data.load_competition()


@pytest.fixture
def nets(tmp_path) -> Path:
    """The user's model file, in a folder of theirs."""
    folder = tmp_path / "experiments"
    folder.mkdir()
    return Path(shutil.copy(OWN, folder / "nets.py"))


def test_your_model_trains_kitnets_recipe_and_a_run_names_it_by_its_file():
    r = config.recipe("experiments/nets.py:build", folds=5)
    assert r.model == "experiments/nets.py:build"
    assert {k: v for k, v in r.to_dict().items() if k != "model"} == {
        k: v for k, v in config.recipe("kitnet", folds=5).to_dict().items() if k != "model"
    }  # 44 epochs a fold, one-cycle, augmentation, TTA
    assert user_models.named(r).model == "nets.py:build"
    assert config.model_in_run(r"C:\work\nets.py:build") == "nets.py:build"
    assert config.model_label("experiments/my nets.py:build") == "my-nets" and config.model_label("m5") == "m5"
    with pytest.raises(UsageError, match=r"--model 'nets.py': must be one of .*, or your own model as FILE.py:F"):
        config.recipe("nets.py")
    with pytest.raises(UsageError, match="must be one of"):
        config.recipe("nets.py:2build")


BAD = """
import keras
from keras import layers
def wrong_out(recipe):
    return keras.Sequential([layers.Flatten(), layers.Dense(5, activation="softmax")])
def logits(recipe):
    return keras.Sequential([layers.Flatten(), layers.Dense(10)])
def wrong_in(recipe):
    return keras.Sequential([keras.Input((32, 32, 3)), layers.Flatten(), layers.Dense(10, activation="softmax")])
def boom(recipe):
    raise RuntimeError("my bug")
def number(recipe):
    return 3
def leaves(recipe):
    import sys
    sys.exit(3)
"""


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("bad.py:wrong_out", "bad.py:wrong_out: the model gives (None, 5) for (N, 28, 28, 1) images, not (N, 10)"),
        ("bad.py:logits", "bad.py:logits: its outputs are not probabilities (rows summing to 1); end the model in a"),
        ("bad.py:wrong_in", "bad.py:wrong_in: the model does not take (N, 28, 28, 1) images (ValueError: Input 0"),
        ("bad.py:boom", "bad.py:boom: building the model failed (RuntimeError: my bug)."),
        ("bad.py:number", "bad.py:number: returned int, not a Keras model."),
        ("bad.py:missing", "bad.py:missing: bad.py has no function 'missing'."),
        ("broken.py:build", "broken.py:build: broken.py does not import (ModuleNotFoundError: No module named 'nope')"),
        ("absent.py:build", "absent.py:build: there is no file"),
        ("bad.py:leaves", "bad.py:leaves: bad.py called sys.exit(3) while kit was building the model; a model file"),
        ("exits.py:build", "exits.py:build: exits.py called sys.exit(0) while kit was importing it; a model file"),
    ],
)
def test_a_model_that_cannot_train_is_one_line_before_any_training(env, sample, tmp_path, spec, message):
    (tmp_path / "bad.py").write_text(BAD)
    (tmp_path / "broken.py").write_text("import nope\n")
    (tmp_path / "exits.py").write_text("import sys\nsys.exit(0)\n")  # 0 would look like success; 3 is kit's own
    result = kit_here(["train", "--model", str(tmp_path / spec), "--epochs", "1", "--limit", "200"], env)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: --model ") and message in lines[-1], lines[-1]
    assert "Traceback" not in result.stderr and "epoch" not in result.stdout
    assert not runs.runs_dir().exists() or list(runs.runs_dir().iterdir()) == []


@pytest.mark.slow
def test_your_model_with_a_custom_layer_through_every_local_path(env, sample, nets, tmp_path):
    """Fold workers, --fold then resume, `kit predict --tta` on another checkout (the user's file gone), a pseudo-
    label student, `kit blend` of the two, a blend recipe file with kitnet, and `kit runs --recipe` naming the run's
    copy."""
    base = ["--folds", "2", "--epochs", "1", "--limit", "300", "--batch-size", "50"]
    spec = f"{nets}:build"
    first = kit_here(["train", "--model", spec, *base, "--run-id", "own", "--fold", "1"], env)
    assert first.returncode == 0, first.stderr
    run = runs.runs_dir() / "own"
    assert (run / "nets.py").read_bytes() == OWN.read_bytes()  # the run keeps its model file
    assert files.read_json(run / "config.json")["recipe"]["model"] == "nets.py:build"
    assert runs.member_done(run, 1) and not runs.member_done(run, 0)
    nets.write_text(nets.read_text().replace("Conv2D(8", "Conv2D(16"))  # the user edits their file meanwhile
    resumed = kit_here(["train", "--model", spec, *base, "--run-id", "own", "--jobs", "2"], env)
    assert resumed.returncode == 0, resumed.stderr
    assert runs.load_metrics(run)["members"] == 2 and (run / "nets.py").read_bytes() == OWN.read_bytes()
    assert [np.load(run / f"fold{k}" / "val_probs.npy").shape for k in (0, 1)] == [(150, 10), (150, 10)]

    listed = kit_here(["runs", "--recipe", "own"], env)
    assert listed.returncode == 0 and f'model = "{(run / "nets.py").resolve()}:build"' in listed.stdout  # the copy

    # another checkout: the run's folder alone, the user's file gone; the custom layer loads from the run's copy
    other = {**env, "KIT_RUNS_DIR": str(tmp_path / "elsewhere" / "runs")}
    shutil.copytree(run, tmp_path / "elsewhere" / "runs" / "own")
    nets.unlink()
    predicted = kit_here(["predict", "own", "--tta"], other)
    assert predicted.returncode == 0, predicted.stderr
    again = np.load(tmp_path / "elsewhere" / "runs" / "own-tta" / "test_probs.npy")
    np.testing.assert_allclose(again, np.load(run / "test_probs.npy"), atol=1e-5)  # the run trained with TTA too

    student = kit_here(["train", "--run-id", "own-student", "--model", str(tmp_path / "elsewhere" / "runs" / "own" /
                        "nets.py") + ":build", *base, "--pseudo", "own", "--jobs", "1"], env)  # fmt: skip
    assert student.returncode == 0, student.stderr
    assert files.read_json(runs.runs_dir() / "own-student" / "fold0" / "metrics.json")["pseudo_rows"] > 0
    blended_runs = kit_here(["blend", "own", "own-student"], env)  # the same folds: the blend's OOF CV beside each
    assert blended_runs.returncode == 0 and "own-student" in blended_runs.stdout, blended_runs.stderr

    shutil.copy(OWN, tmp_path / "nets.py")
    recipe = tmp_path / "blend.toml"
    recipe.write_text(f'folds = 2\n\n[families.kitnet]\nepochs = 1\n\n[families.mine]\nmodel = "{tmp_path / "nets.py"}'
                      ':build"\nepochs = 1\ndropout = 0.1\n')  # fmt: skip
    blended = kit_here(["train", "--recipe", str(recipe), "--limit", "300", "--run-id", "mix", "--jobs", "1",
                        "--no-tta"], env)  # fmt: skip
    assert blended.returncode == 0, blended.stderr
    mix = runs.runs_dir() / "mix"
    saved = files.read_json(mix / "config.json")["recipe"]
    assert saved["families"]["mine"]["model"] == "nets.py:build" and saved["families"]["mine"]["dropout"] == 0.1
    assert (mix / "nets.py").is_file() and set(runs.load_metrics(mix)["families"]) == {"kitnet", "mine"}
    assert kit_here(["predict", "mix"], env).returncode == 0
    assert json.loads((mix / "metrics.json").read_text())["members"] == 4


DIVERGES = """
import keras
from keras import layers


class Explode(layers.Layer):
    def call(self, x, training=None):
        return x + float("nan") if training else x  # NaN while it trains: the loss goes NaN


def build(recipe):
    return keras.Sequential([layers.Flatten(), Explode(), layers.Dense(10, activation="softmax")])
"""


@pytest.mark.slow
def test_a_model_that_diverges_says_so_and_is_trained_again_next_time(env, sample, tmp_path):
    """Its loss goes NaN: one line saying it diverged (not 'damaged'), nothing saved, and the next command trains the
    member again instead of taking it for done."""
    (tmp_path / "nan.py").write_text(DIVERGES)
    spec = str(tmp_path / "nan.py") + ":build"
    args = ["train", "--model", spec, "--epochs", "1", "--limit", "200", "--run-id", "nan", "--jobs", "1"]
    first = kit_here(args, env)
    said = first.stdout + first.stderr
    assert first.returncode == 2 and "Training diverged at epoch 1" in said and "damaged" not in said, said
    assert not runs.member_done(runs.runs_dir() / "nan", 0)
    again = kit_here(args, env)
    assert "Training diverged at epoch 1" in again.stdout + again.stderr
