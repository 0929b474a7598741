"""Keras layers kit's models use, each a faster drop-in for stock Keras layers (Keras 3 API; saved models
record them as `kit>RandomAffine`, `kit>BatchNorm` and `kit>Dropout`, so import this module before loading one).

- `RandomAffine`: rotation, zoom and shift in ONE resampling, where Keras' three layers resample three times
  (+17 % img/s for kitnet).
- `BatchNorm`: Keras' BatchNormalization through TensorFlow's fused kernel (1.79x kitnet's img/s with BN after
  every conv, A/B); the Keras layer on other backends.
- `Dropout`: Keras' Dropout with its mask drawn as random bytes on TensorFlow (+12 % kitnet img/s, A/B).
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import layers, ops


def warp(images, theta, zoom_x, zoom_y, dx, dy, xla: bool = False):
    """`images` (N, H, W, C) warped one by one: each of theta (radians), zoom_x, zoom_y and dx, dy (pixels)
    holds one value per image. Rotation and scale about the centre, then the shift; bilinear, zero fill;
    float32 out. Shared by RandomAffine (random values) and kit.ensemble's TTA views (fixed values).

    `xla`: the warp runs inside an XLA-compiled step (TensorFlow with jit_compile, as on GPUs). TensorFlow's
    own kernel (ImageProjectiveTransformV3) has no XLA kernel in TF 2.21, so there, and on every other backend, the
    warp is a bilinear gather of plain ops; TensorFlow without XLA keeps its kernel (3.3 ms per 256 images
    on the CPU, against 6.6 for the gather)."""
    height, width = images.shape[1], images.shape[2]
    cos, sin = ops.cos(theta), ops.sin(theta)
    # Output pixel -> input pixel: rotate and scale about the centre, then shift.
    a0, a1, b0, b1 = cos * zoom_x, -sin * zoom_y, sin * zoom_x, cos * zoom_y
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    a2 = cx - a0 * cx - a1 * cy - dx
    b2 = cy - b0 * cx - b1 * cy - dy
    images = ops.cast(images, "float32")
    if keras.backend.backend() == "tensorflow" and not xla:
        zero = ops.zeros_like(cos)
        transform = ops.stack([a0, a1, a2, b0, b1, b2, zero, zero], axis=1)
        return ops.image.affine_transform(images, transform, interpolation="bilinear", fill_mode="constant")
    return _bilinear_gather(images, (a0, a1, a2), (b0, b1, b2))


def _bilinear_gather(images, row_x, row_y):
    """Bilinear resampling of `images` (N, H, W, C) at input x = a0 x + a1 y + a2, y = b0 x + b1 y + b2 of each
    output pixel (x, y) (one (a0, a1, a2), (b0, b1, b2) per image), zero outside: the four neighbours of every
    output pixel in one gather from the flattened batch, each weighted, and zero where it falls outside."""
    n, height, width, channels = ops.shape(images)[0], images.shape[1], images.shape[2], images.shape[3]
    ys, xs = np.meshgrid(np.arange(height, dtype="float32"), np.arange(width, dtype="float32"), indexing="ij")
    xs, ys = xs.reshape(1, -1), ys.reshape(1, -1)

    def per_pixel(row):
        a0, a1, a2 = (ops.expand_dims(v, 1) for v in row)
        return a0 * xs + a1 * ys + a2  # (N, H*W)

    x_in, y_in = per_pixel(row_x), per_pixel(row_y)
    x0, y0 = ops.floor(x_in), ops.floor(y_in)
    fx, fy = x_in - x0, y_in - y0
    x0, y0 = ops.cast(x0, "int32"), ops.cast(y0, "int32")
    first = ops.expand_dims(ops.arange(n, dtype="int32") * (height * width), 1)  # each image's offset in the batch
    index, weight = [], []
    for oy, ox, w in ((0, 0, (1 - fx) * (1 - fy)), (0, 1, fx * (1 - fy)), (1, 0, (1 - fx) * fy), (1, 1, fx * fy)):
        yi, xi = y0 + oy, x0 + ox
        inside = (xi >= 0) & (xi < width) & (yi >= 0) & (yi < height)
        index.append(first + ops.clip(yi, 0, height - 1) * width + ops.clip(xi, 0, width - 1))
        weight.append(ops.where(inside, w, 0.0))
    flat = ops.reshape(images, (-1, channels))
    taps = ops.take(flat, ops.reshape(ops.stack(index, axis=1), (-1,)), axis=0)  # (N * 4 * H*W, C)
    taps = ops.reshape(taps, (n, 4, height * width, channels)) * ops.expand_dims(ops.stack(weight, axis=1), -1)
    return ops.reshape(ops.sum(taps, axis=1), (n, height, width, channels))


@keras.saving.register_keras_serializable(package="kit")
class RandomAffine(layers.Layer):
    """Training-only random affine warp: rotation in +-`rotation` degrees, zoom in +-`zoom` (height and width
    drawn independently, like Keras' RandomZoom), shift in +-`shift` of the side; bilinear, zero fill."""

    def __init__(
        self, rotation: float, zoom: float, shift: float, seed: int | None = None, xla: bool = False, **kwargs
    ):
        super().__init__(**kwargs)
        self.rotation, self.zoom, self.shift, self.seed, self.xla = rotation, zoom, shift, seed, xla
        self.generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=None):
        if not training:
            return images
        n, height, width = ops.shape(images)[0], images.shape[1], images.shape[2]

        def uniform(limit: float):
            return keras.random.uniform((n,), -limit, limit, seed=self.generator)

        theta = uniform(self.rotation * math.pi / 180.0)
        zoom_x, zoom_y = 1.0 + uniform(self.zoom), 1.0 + uniform(self.zoom)
        dx, dy = uniform(self.shift) * width, uniform(self.shift) * height
        return ops.cast(warp(images, theta, zoom_x, zoom_y, dx, dy, self.xla), self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rotation": self.rotation, "zoom": self.zoom, "shift": self.shift,
                "seed": self.seed, "xla": self.xla}  # fmt: skip


@keras.saving.register_keras_serializable(package="kit")
class BatchNorm(layers.BatchNormalization):
    """BatchNormalization over the last axis with TensorFlow's fused kernel where it applies."""

    def _fusable(self, inputs, mask) -> bool:
        return (
            keras.backend.backend() == "tensorflow"
            and mask is None
            and not getattr(self, "renorm", False)  # no `renorm` in Keras 3.13 (Kaggle's)
            and len(inputs.shape) == 4
            and self.axis in (-1, 3)
        )

    def call(self, inputs, training=None, mask=None):
        if not self._fusable(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        ones, zeros = ops.ones_like(self.moving_mean), ops.zeros_like(self.moving_mean)
        scale = ops.cast(self.gamma, "float32") if self.scale else ones
        offset = ops.cast(self.beta, "float32") if self.center else zeros
        if training and self.trainable:
            outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
                inputs, scale, offset, epsilon=self.epsilon, is_training=True
            )
            self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
            self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        else:
            outputs, _, _ = tf.compat.v1.nn.fused_batch_norm(
                inputs, scale, offset, mean=self.moving_mean, variance=self.moving_variance,
                epsilon=self.epsilon, is_training=False,
            )  # fmt: skip
        return ops.cast(outputs, self.compute_dtype)


@keras.saving.register_keras_serializable(package="kit")
class Dropout(layers.Dropout):
    """Dropout whose keep/drop decisions are random bytes on TensorFlow: an element is kept when its byte is
    at least round(rate * 256), so the rate is used to the nearest 1/256 (0.25 exactly). Other backends, and
    a `noise_shape`, take Keras' own path."""

    def call(self, inputs, training=False):
        if not training or self.rate <= 0 or self.noise_shape is not None or keras.backend.backend() != "tensorflow":
            return super().call(inputs, training=training)
        import tensorflow as tf

        threshold = min(255, round(self.rate * 256))
        seed = tf.cast(tf.math.floormod(self.seed_generator.next(), 2**31 - 1), tf.int32)
        size = tf.size(inputs)
        words = tf.random.stateless_uniform([(size + 3) // 4], seed, minval=None, maxval=None, dtype=tf.uint32)
        random_bytes = tf.reshape(tf.bitcast(words, tf.uint8), [-1])[:size]
        keep = tf.reshape(random_bytes >= threshold, tf.shape(inputs))
        scale = tf.cast(256.0 / (256 - threshold), inputs.dtype)
        return tf.where(keep, inputs * scale, tf.zeros_like(inputs))
