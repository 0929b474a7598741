"""Test-time-augmented prediction: a model's mean softmax over small shifts and rotations of each image (the views,
kit.config.TTA_VIEWS). What training predicts its members' OOF and test rows with, and `kit predict` re-predicts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from kit.config import IDENTITY, TTA_VIEWS

PREDICT_BATCH = 1024


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
    model: Any,
    images: np.ndarray,
    views: list[tuple[float, float, float]],
    distributed: bool = False,
    on_rows: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Mean softmax of `model` over the views of `images`; `on_rows(n)` after each chunk of n image-views.

    Chunks go in one `predict_on_batch` call each, not through `model.predict`'s tf.data iterator (1.3-2.1x the
    images/s on the CPU); a model under a distribution strategy (`distributed`) predicts through `model.predict`,
    which splits each batch across the replicas."""
    total = np.zeros((len(images), 10), np.float64)
    tell = on_rows or (lambda n: None)
    for view in views:
        seen = augmented(images, view)
        if distributed:
            total += model.predict(seen, batch_size=PREDICT_BATCH, verbose=0)
            tell(len(seen))
            continue
        for first in range(0, len(seen), PREDICT_BATCH):
            total[first : first + PREDICT_BATCH] += model.predict_on_batch(seen[first : first + PREDICT_BATCH])
            tell(len(seen[first : first + PREDICT_BATCH]))
    return (total / len(views)).astype(np.float32)


def rows_to_predict(tta: bool, val_rows: int, test_rows: int, test: bool = True) -> int:
    """The image-views a member predicts once trained: its validation rows plain, again in every TTA view (`tta`),
    and the test rows in each view (unless `test` is off: a CV-only run)."""
    views = len(TTA_VIEWS) if tta else 1
    return val_rows + (views * val_rows if tta else 0) + (views * test_rows if test else 0)
