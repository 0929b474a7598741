"""`kit report`, `kit predict --tta` and `kit blend` on a small 2-fold run made here."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from kit import data, predicting, submission
from tests.conftest import copy_world, kit_here, world_env

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def made(tmp_path_factory, sample_run):
    """A copy of the session's 2-fold, 1-epoch run on the sample data, and the environment that finds it."""
    root = copy_world(sample_run, tmp_path_factory.mktemp("made") / "world")
    return world_env(root), root / "runs" / "r1"


@pytest.fixture
def in_env(made, monkeypatch):
    env, run = made
    for key in ("KIT_DATA_DIR", "KIT_RUNS_DIR", "KIT_SUBMISSIONS_DIR"):
        monkeypatch.setenv(key, env[key])
    return run


def test_report_pictures_and_tables(made):
    env, run = made
    result = kit_here(["report"], env)  # the latest run
    assert result.returncode == 0, result.stderr
    assert "precision" in result.stdout and "most confused" in result.stdout
    import matplotlib.image

    for name in ("confusion_matrix.png", "misclassified.png", "learning_curves.png"):
        picture = run / "report" / name
        assert picture.is_file() and f"wrote {picture}" in result.stdout.replace("\n", "")
        pixels = matplotlib.image.imread(picture)
        assert pixels.shape[0] > 300 and pixels.shape[1] > 500, (name, pixels.shape)
        assert pixels.std() > 0.01  # not a blank image
    # the page styles only itself: shown inside a notebook's output (IPython's HTML) it leaves the notebook alone
    import re

    style = re.search(r"<style>(.*?)</style>", (run / "report" / "index.html").read_text(), re.S).group(1)
    selectors = [part.strip() for rule in re.findall(r"([^{}]+)\{", style) for part in rule.split(",")]
    assert selectors and all(sel.startswith(".kit-report") for sel in selectors), selectors


def _browser() -> str | None:
    import shutil

    return next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)


# Added to a copy of the page by the test (the page itself has no scripts): once everything has loaded, which images
# drew (a broken or missing picture has no natural width).
_PROBE = """<script>window.addEventListener("load", () => { document.body.dataset.images = JSON.stringify(
  [...document.images].map(i => i.complete && i.naturalWidth > 0)); });</script></body>"""


@pytest.mark.skipif(_browser() is None, reason="no Chromium to load the report page in (apt-get install chromium)")
def test_the_report_page_loads_whole_in_a_headless_browser(made, tmp_path):
    """The page alone in an empty folder (so nothing it shows can come from beside it), in headless Chromium: every
    picture loads, the CV figure is on it, and a run with a public score gets its CV-LB picture and its rows."""
    import re
    import subprocess

    from tests.conftest import log_row

    env, run = made
    env = {**env, "KIT_SUBMISSIONS_DIR": str(tmp_path / "subs")}  # this test's own leaderboard log
    os.environ["KIT_SUBMISSIONS_DIR"] = env["KIT_SUBMISSIONS_DIR"]
    try:
        log_row(run_id="r1", cv_accuracy="0.90000", status="complete", public_score="0.91000", message="first <try>")
        log_row(run_id="other", cv_accuracy="0.95000", status="complete", public_score="0.95500")
    finally:
        del os.environ["KIT_SUBMISSIONS_DIR"]
    result = kit_here(["report", "r1"], env)
    assert result.returncode == 0, result.stderr
    page = run / "report" / "index.html"
    assert f"report page {page}" in result.stdout
    text = page.read_text()
    assert "<script" not in text and "first &lt;try&gt;" in text  # no scripts, and what users wrote is escaped
    assert "Changed from its preset (as --set writes them): epochs=1 folds" not in text  # folds: the members say it
    assert re.search(r"Changed from its preset \(as --set writes them\): [^<]*epochs=1", text)  # r1: seed, 1 epoch
    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / "index.html").write_text(text.replace("</body>", _PROBE))
    shown = subprocess.run([_browser(), "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
                            "--virtual-time-budget=10000", (alone / "index.html").as_uri()],
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert shown.returncode == 0, shown.stderr[-2000:]
    images = json.loads(re.search(r'data-images="([^"]*)"', shown.stdout).group(1).replace("&quot;", '"'))
    pictures = ("confusion_matrix", "misclassified", "learning_curves", "cv_vs_lb")
    assert images == [True] * len(pictures), images
    for name in pictures:
        assert (run / "report" / f"{name}.png").is_file()
    cv = json.loads((run / "metrics.json").read_text())["cv_accuracy"]
    assert re.search(rf'<span class="cv" id="cv">{100 * cv:.3f} %</span>', shown.stdout)
    for heading in ("Members", "Recipe", "Per class", "Most confused", "Confusion matrix", "Learning curves",
                    "CV against the public leaderboard", "Submissions"):  # fmt: skip
        assert f"<h2>{heading}" in shown.stdout, heading


def test_confusion_counts_equal_oof_rows(in_env, tmp_path):
    from kit import report

    comp = data.load_competition()
    rows, y_true, probs = report.oof_predictions(in_env, comp)
    assert len(rows) == len(comp.train_labels)  # 2 folds cover every row
    counts = report.confusion_png(y_true, probs.argmax(1), tmp_path / "cm.png", "t")
    assert counts.sum() == len(rows) and counts.shape == (10, 10)
    assert np.trace(counts) == (probs.argmax(1) == y_true).sum()


def test_tta_with_zero_shift_equals_plain_prediction(in_env):
    from kit import ensemble

    comp = data.load_competition()
    assert predicting.augmented(comp.test_images, (0, 0, 0)) is comp.test_images
    shifted = predicting.augmented(comp.test_images[:5], (1, 0, 0))
    np.testing.assert_array_equal(shifted[:, :, 1:], comp.test_images[:5, :, :-1])  # one pixel to the right
    plain = ensemble.predict_run(in_env, comp, tta=True, views=[(0, 0, 0)])
    np.testing.assert_allclose(np.load(plain.run_dir / "test_probs.npy"), np.load(in_env / "test_probs.npy"),
                               atol=1e-5)  # fmt: skip
    np.testing.assert_allclose(np.load(plain.run_dir / "oof.npy"), np.load(in_env / "oof.npy"), atol=1e-5)
    assert plain.changed == 0 and plain.cv_after == pytest.approx(plain.cv_before)


def _run_dir(stdout: str) -> Path:
    return Path(next(line.split(":", 1)[1].strip() for line in stdout.splitlines() if line.startswith("run directory")))


def test_predict_tta_cli(made):
    env, run = made
    result = kit_here(["predict", "r1", "--tta"], env)
    assert result.returncode == 0, result.stderr
    assert "CV (OOF) r1" in result.stdout and "r1-tta" in result.stdout and "test labels that changed" in result.stdout
    derived = _run_dir(result.stdout)
    submission.validate(Path(env["KIT_SUBMISSIONS_DIR"]) / f"{derived.name}.csv", 500)
    config = json.loads((derived / "config.json").read_text())
    assert config["kind"] == "predict" and config["source"] == "r1" and len(config["views"]) == 7
    again = kit_here(["predict", "r1", "--tta"], env)  # a second prediction is a new run, never over the first
    assert again.returncode == 0 and _run_dir(again.stdout) != derived and (derived / "config.json").is_file()


def test_blend_of_a_run_with_its_plain_prediction_is_the_run(in_env):
    from kit import ensemble

    comp = data.load_competition()
    predicted = ensemble.predict_run(in_env, comp, tta=False).run_dir
    result = ensemble.blend([in_env, predicted], [1, 3], comp.train_labels)
    np.testing.assert_allclose(np.load(result.run_dir / "test_probs.npy"), np.load(in_env / "test_probs.npy"),
                               atol=1e-5)  # fmt: skip
    metrics = json.loads((in_env / "metrics.json").read_text())
    assert result.cv == pytest.approx(metrics["cv_accuracy"])
    assert result.submission.read_text() == (Path(metrics["submission"])).read_text()
    second = ensemble.blend([in_env, predicted], None, comp.train_labels)  # the same second: a run of its own
    assert second.run_dir != result.run_dir and (result.run_dir / "config.json").is_file()


def test_blend_cli_records_a_blend_run(made, tmp_path):
    env, _ = made
    assert kit_here(["predict", "r1"], env).returncode == 0
    out = tmp_path / "my-blend.csv"
    result = kit_here(["blend", "r1", "r1-predict", "--weights", "2,1", "-o", str(out)], env)
    assert result.returncode == 0, result.stderr
    assert "blend" in result.stdout and "r1-predict" in result.stdout
    submission.validate(out, 500)
    config = json.loads((_run_dir(result.stdout) / "config.json").read_text())
    assert config["kind"] == "blend" and config["inputs"] == ["r1", "r1-predict"]
    assert config["weights"] == pytest.approx([2 / 3, 1 / 3])
    shown = kit_here(["report", _run_dir(result.stdout).name], env)  # a blend has no recipe: its split says K-fold
    assert shown.returncode == 0, shown.stderr
    assert "OOF rows" in (_run_dir(result.stdout) / "report" / "index.html").read_text()
    bad = kit_here(["blend", "r1"], env)
    assert bad.returncode == 2 and "at least two runs" in bad.stderr


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_blend_never_overwrites_and_checks_before_writing(made, tmp_path):
    """-o NAME.csv with NAME an existing run, the same run twice, non-finite weights, an existing output file: the
    runs and submissions are untouched, and nothing new is written."""
    env, run = made
    runs_root, subs = Path(env["KIT_RUNS_DIR"]), Path(env["KIT_SUBMISSIONS_DIR"])
    assert kit_here(["predict", "r1"], env).returncode == 0
    before_runs, before_subs = _tree(runs_root), _tree(subs)
    cases = [
        (["r1", "r1"], 2, "named more than once"),
        (["r1", "r1-predict", "--weights", "nan,1"], 2, "finite, non-negative"),
        (["r1", "r1-predict", "--weights", "inf,1"], 2, "finite, non-negative"),
        (["r1", "r1-predict", "--weights", "0,0"], 2, "not all 0"),
        (["r1", "r1-predict", "--weights", "1e308,1e308"], 2, "their sum overflows"),
        (["r1", "r1-predict", "--weights", "1e-320,1e300"], 2, "one of them would count as 0"),
        (["r1", "r1-predict", "-o", str(subs / "r1.csv")], 2, "already exists"),
    ]
    for args, code, needle in cases:
        result = kit_here(["blend", *args], env)
        assert result.returncode == code and needle in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
    assert _tree(runs_root) == before_runs and _tree(subs) == before_subs

    named = kit_here(["blend", "r1", "r1-predict", "-o", str(tmp_path / "r1.csv")], env)  # NAME = an existing run
    assert named.returncode == 0, named.stderr
    assert json.loads((run / "config.json").read_text())["kind"] == "train"
    assert {k: v for k, v in _tree(runs_root).items() if k.startswith("r1/")} == {
        k: v for k, v in before_runs.items() if k.startswith("r1/")
    }


def test_predict_names_a_missing_or_torn_fold_model_and_writes_nothing(made, tmp_path):
    import shutil

    env, run = made
    broken = Path(env["KIT_RUNS_DIR"]) / "r1-broken"
    shutil.copytree(run, broken)
    config = json.loads((broken / "config.json").read_text())
    (broken / "config.json").write_text(json.dumps({**config, "run_id": broken.name}))
    model = broken / "fold1" / "model.keras"
    model.write_bytes(model.read_bytes()[:1000])  # torn: Ctrl-C while it was written
    before_runs, before_subs = _tree(Path(env["KIT_RUNS_DIR"])), _tree(Path(env["KIT_SUBMISSIONS_DIR"]))
    torn = kit_here(["predict", "r1-broken"], env)
    assert torn.returncode == 8 and "model of fold 1" in torn.stderr and "cannot be read" in torn.stderr
    model.unlink()
    missing = kit_here(["predict", "r1-broken", "--tta"], env)
    assert missing.returncode == 8 and "no model for fold 1" in missing.stderr, missing.stderr
    for result in (torn, missing):
        assert "Traceback" not in result.stderr
    before_runs.pop(str(model.relative_to(Path(env["KIT_RUNS_DIR"]))))
    assert _tree(Path(env["KIT_RUNS_DIR"])) == before_runs
    assert _tree(Path(env["KIT_SUBMISSIONS_DIR"])) == before_subs


@pytest.mark.parametrize(
    ("name", "array", "commands"),
    [
        (
            "folds.npy",
            np.zeros(10, np.int8),
            (["predict", "r1-wrong"], ["report", "r1-wrong"], ["blend", "r1", "r1-wrong"]),
        ),
        ("folds.npy", np.zeros((3, 4), np.float32), (["predict", "r1-wrong"], ["report", "r1-wrong"])),
        ("oof.npy", np.zeros(2000, np.float32), (["report", "r1-wrong"], ["blend", "r1", "r1-wrong"])),
        ("oof.npy", np.zeros((10, 10), np.float32), (["report", "r1-wrong"], ["blend", "r1", "r1-wrong"])),
        ("test_probs.npy", np.zeros((7, 3), np.float32), (["blend", "r1", "r1-wrong"], ["predict", "r1-wrong"])),
    ],
    ids=["folds-10-rows", "folds-float", "oof-1d", "oof-10x10", "test-probs-7x3"],
)
def test_an_array_of_the_wrong_shape_is_named_never_used(made, name, array, commands):
    """A run array with the right name and the wrong shape, length or dtype: every command that reads it names it
    and stops (a folds.npy of 10 entries made `kit predict` score 10 rows and succeed)."""
    import shutil

    env, run = made
    wrong = Path(env["KIT_RUNS_DIR"]) / "r1-wrong"
    shutil.rmtree(wrong, ignore_errors=True)
    shutil.copytree(run, wrong)
    np.save(wrong / name, array)
    for command in commands:
        result = kit_here(command, env)
        assert result.returncode == 8, (command, result.stdout[-500:], result.stderr[-1500:])
        assert name in result.stderr and "damaged" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("families", "code", "needle"),
    [
        ({}, 0, "report page"),  # an empty table, as some kit wrote: no blend, and the report is drawn
        ({"kitnet": {"cv_accuracy": 0.9}, "m3": {"cv_accuracy": 0.9}}, 8, "its blend's families, weights or errors"),
    ],
)
def test_report_reads_a_blend_summary_it_did_not_write_or_says_it_is_damaged(made, families, code, needle):
    import shutil

    env, run = made
    odd = Path(env["KIT_RUNS_DIR"]) / f"r1-families-{len(families)}"
    shutil.copytree(run, odd, dirs_exist_ok=True)
    config = json.loads((odd / "config.json").read_text())
    (odd / "config.json").write_text(json.dumps({**config, "run_id": odd.name}))
    metrics = json.loads((odd / "metrics.json").read_text())
    (odd / "metrics.json").write_text(json.dumps({**metrics, "families": families}))
    result = kit_here(["report", odd.name], env)
    assert result.returncode == code and needle in result.stdout + result.stderr, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
