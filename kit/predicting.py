"""Test-time-augmented prediction: a model's mean softmax over small shifts and rotations of each image (the views,
kit.config.TTA_VIEWS). What training predicts its members' OOF and test rows with, and `kit predict` re-predicts."""

from __future__ import annotations

from typing import Any

import numpy as np

from kit.config import IDENTITY

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
    model: Any, images: np.ndarray, views: list[tuple[float, float, float]], distributed: bool = False
) -> np.ndarray:
    """Mean softmax of `model` over the views of `images`.

    Chunks go in one `predict_on_batch` call each, not through `model.predict`'s tf.data iterator (1.3-2.1x the
    images/s on the CPU); a model under a distribution strategy (`distributed`) predicts through `model.predict`,
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
