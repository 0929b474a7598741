"""Blend runs, and test-time augmentation (TTA): re-predict with a run's fold models over small shifts and
rotations of each image, averaging the softmax.

Both write their result as a derived run (config.json says "kind": "predict" or "blend", with its inputs),
so `kit submit` and the leaderboard log name it and show its CV like any run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kit import runs, submission
from kit.data import Competition
from kit.errors import RunError, UsageError

PREDICT_BATCH = 1024
IDENTITY = (0, 0, 0)  # the view that leaves the image alone
# (dx, dy, degrees): the identity, one-pixel shifts in four directions, and +-8 degree rotations.
TTA_VIEWS: list[tuple[float, float, float]] = [IDENTITY, (1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 8),
                                               (0, 0, -8)]  # fmt: skip


def augmented(images: np.ndarray, view: tuple[float, float, float]) -> np.ndarray:
    """`images` (uint8 N,28,28,1) seen through one TTA view, still uint8 (the models scale inside)."""
    if view == IDENTITY:
        return images
    import keras

    from kit.layers import warp

    dx, dy, degrees = (np.full(len(images), value, "float32") for value in view)
    ones = np.ones(len(images), "float32")
    out = warp(images, np.radians(degrees), ones, ones, dx, dy)
    return np.clip(np.round(keras.ops.convert_to_numpy(out)), 0, 255).astype(np.uint8)


def predict(
    model: Any, images: np.ndarray, views: list[tuple[float, float, float]], distributed: bool = False
) -> np.ndarray:
    """Mean softmax of `model` over the views of `images`.

    Chunks go in one `predict_on_batch` call each rather than through `model.predict`'s tf.data iterator:
    measured here (kitnet, bf16, 28,000 images, 3 rounds), 21,400-29,900 img/s through `predict`,
    38,600-45,400 img/s this way (the same slow-mode iterator effect as in kit.train.fit). A model built
    under a distribution strategy (`distributed`) predicts through `model.predict`,
    which splits each batch across the replicas."""
    total = np.zeros((len(images), 10), np.float64)
    for view in views:
        seen = augmented(images, view)
        if distributed:
            total += model.predict(seen, batch_size=PREDICT_BATCH, verbose=0)
            continue
        for first in range(0, len(seen), PREDICT_BATCH):
            total[first : first + PREDICT_BATCH] += model.predict_on_batch(seen[first : first + PREDICT_BATCH])
    return (total / len(views)).astype(np.float32)


def _folds(run_dir: Path) -> list[int]:
    folds = sorted(int(p.name[4:]) for p in run_dir.glob("fold*") if (p / "model.keras").is_file())
    if not folds:
        raise RunError(f"Run {run_dir.name} has no saved fold models; only a `kit train` run can be re-predicted.")
    return folds


@dataclass
class Prediction:
    run_dir: Path  # the derived run
    submission: Path
    changed: int  # test labels that differ from the source run's
    cv_before: float | None
    cv_after: float | None


def predict_run(source: Path, comp: Competition, tta: bool, views=None) -> Prediction:
    """Re-predict test.csv (and the OOF rows) with the run's saved fold models, optionally with TTA."""
    import keras

    import kit.layers  # noqa: F401  (registers kit's layers, which the saved models use)

    views = (views if views is not None else TTA_VIEWS) if tta else [IDENTITY]
    config = runs.load_config(source)
    if config.get("kind") != "train":
        raise RunError(f"{source.name} is a {config.get('kind')} run; re-predict the training runs it came from.")
    folds = np.load(source / "folds.npy")
    if len(folds) != len(comp.train_labels):
        raise RunError(f"Run {source.name} was trained on {len(folds):,} rows but the data has "
                       f"{len(comp.train_labels):,}; use the data it was trained on.")  # fmt: skip
    fold_ids = _folds(source)
    oof = np.full((len(folds), 10), np.nan, np.float32)
    test = np.zeros((len(comp.test_images), 10), np.float64)
    for k in fold_ids:
        model = keras.saving.load_model(source / f"fold{k}" / "model.keras")
        rows = folds == k
        oof[rows] = predict(model, comp.train_images[rows], views)
        test += predict(model, comp.test_images, views)
    test = (test / len(fold_ids)).astype(np.float32)

    run_id = runs.check_id(f"{source.name}-{'tta' if tta else 'predict'}")
    target = runs.runs_dir() / run_id
    seen = folds >= 0
    cv_after = float((oof[seen].argmax(1) == comp.train_labels[seen]).mean()) if seen.any() else None
    base = runs.load_metrics(source) or {}
    cv_before = base.get("cv_accuracy")
    before = np.load(source / "test_probs.npy").argmax(1) if (source / "test_probs.npy").is_file() else None
    changed = int((before != test.argmax(1)).sum()) if before is not None else 0
    csv = _save_derived(target, {"kind": "predict", "source": source.name, "views": views}, folds, oof, test,
                        {"cv_accuracy": cv_after, "cv_before": cv_before, "labels_changed": changed})  # fmt: skip
    return Prediction(target, csv, changed, cv_before, cv_after)


def _save_derived(target: Path, config: dict, folds: np.ndarray, oof: np.ndarray | None, test: np.ndarray,
                  metrics: dict, out: Path | None = None) -> Path:  # fmt: skip
    target.mkdir(parents=True, exist_ok=True)
    runs.save_array(target / "folds.npy", folds)
    if oof is not None:
        runs.save_array(target / "oof.npy", oof)
    runs.save_array(target / "test_probs.npy", test)
    csv = submission.write(test.argmax(1), out or submission.submissions_dir() / f"{target.name}.csv")
    runs.write_json(target / "metrics.json", {**metrics, "submission": str(csv)})
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    runs.write_json(target / "config.json", {**config, "run_id": target.name, "created_utc": created})
    return csv


@dataclass
class Blend:
    run_dir: Path
    submission: Path
    weights: list[float]
    run_cv: dict[str, float | None]  # each input's CV
    cv: float | None  # the blend's OOF CV, when the runs share their folds


def blend(
    sources: list[Path], weights: list[float] | None, labels: np.ndarray, blend_id: str, out: Path | None = None
) -> Blend:
    """Weighted mean of the runs' test (and, with shared folds, OOF) probabilities, saved as a blend run."""
    if len(sources) < 2:
        raise UsageError("Blend needs at least two runs.")
    weights = weights or [1.0] * len(sources)
    if len(weights) != len(sources) or any(w < 0 for w in weights) or sum(weights) <= 0:
        raise UsageError(f"--weights needs {len(sources)} non-negative numbers (one per run), not {weights}.")
    w = np.asarray(weights, np.float64) / sum(weights)
    tests, oofs, folds = [], [], []
    for run in sources:
        if not (run / "test_probs.npy").is_file():
            raise RunError(f"Run {run.name} has no test probabilities yet; finish it first.")
        tests.append(np.load(run / "test_probs.npy"))
        oofs.append(np.load(run / "oof.npy") if (run / "oof.npy").is_file() else None)
        folds.append(np.load(run / "folds.npy") if (run / "folds.npy").is_file() else None)
    if len({t.shape for t in tests}) > 1:
        raise RunError("The runs predicted different test sets; blend runs made on the same data.")
    test = np.tensordot(w, np.stack(tests), axes=1).astype(np.float32)

    def cv_of(oof: np.ndarray, fold: np.ndarray) -> float | None:
        seen = fold >= 0
        if len(fold) != len(labels) or not seen.any():
            return None
        return float((oof[seen].argmax(1) == labels[seen]).mean())

    run_cv = {run.name: (cv_of(o, f) if o is not None and f is not None else None)
              for run, o, f in zip(sources, oofs, folds, strict=True)}  # fmt: skip
    shared = all(f is not None and o is not None for f, o in zip(folds, oofs, strict=True)) and all(
        np.array_equal(folds[0], f) for f in folds[1:]
    )
    oof = np.tensordot(w, np.stack(oofs), axes=1).astype(np.float32) if shared else None
    cv = cv_of(oof, folds[0]) if shared else None
    target = runs.runs_dir() / runs.check_id(blend_id)
    config = {"kind": "blend", "inputs": [r.name for r in sources], "weights": [float(x) for x in w]}
    csv = _save_derived(target, config, folds[0] if shared else np.full(len(labels), -1, np.int8), oof, test,
                        {"cv_accuracy": cv, "inputs_cv": run_cv}, out)  # fmt: skip
    return Blend(target, csv, [float(x) for x in w], run_cv, cv)
