"""kit's layers: the fused BatchNorm computes what Keras' does, RandomAffine warps only in training and does
what its limits say, Dropout drops at its rate and scales what it keeps, and a model using them survives a
save/load round trip."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from kit.layers import BatchNorm, Dropout, RandomAffine  # noqa: E402


def test_fused_batchnorm_matches_keras():
    x = np.random.default_rng(0).normal(2.0, 3.0, (16, 6, 6, 5)).astype("float32")
    ours, theirs = BatchNorm(momentum=0.5), keras.layers.BatchNormalization(momentum=0.5)
    ours.build(x.shape), theirs.build(x.shape)
    # training: normalised with the batch's own statistics
    np.testing.assert_allclose(ours(x, training=True), theirs(x, training=True), atol=1e-5)
    # the moving statistics moved the same way (the fused kernel's variance is Bessel-corrected: n = 576)
    np.testing.assert_allclose(ours.moving_mean, theirs.moving_mean, rtol=1e-5)
    np.testing.assert_allclose(ours.moving_variance, theirs.moving_variance, rtol=5e-3)
    # inference: normalised with the moving statistics
    np.testing.assert_allclose(ours(x, training=False), theirs(x, training=False), atol=5e-3)


def test_random_affine_limits():
    image = np.zeros((4, 28, 28, 1), "float32")
    image[:, 4:24, 13:15] = 1.0  # a vertical bar in the middle
    assert np.array_equal(RandomAffine(10, 0.1, 0.1)(image, training=False), image)  # inference: untouched
    assert np.array_equal(RandomAffine(0, 0, 0, seed=1)(image, training=True), image)  # zero limits: identity
    shifted = np.asarray(RandomAffine(0, 0, 0.1, seed=1)(image, training=True))
    columns = shifted[..., 0].sum(axis=1).argmax(axis=1)  # where each bar went
    assert np.all(np.abs(columns - 13.5) <= 3.5) and len(set(columns)) > 1  # moved, by at most 10 % of 28
    rotated = np.asarray(RandomAffine(45, 0, 0, seed=2)(image, training=True))
    assert rotated.shape == image.shape and not np.allclose(rotated, image)
    assert abs(rotated.sum() - image.sum()) / image.sum() < 0.1  # a rotation keeps the ink


def test_tta_views_move_the_image_as_named():
    from kit import config, predicting

    image = np.zeros((2, 28, 28, 1), np.uint8)
    image[:, 6:22, 10:18] = 200
    right = predicting.augmented(image, (1, 0, 0))  # dx = +1: one pixel to the right
    np.testing.assert_array_equal(right[:, :, 1:], image[:, :, :-1])
    down = predicting.augmented(image, (0, 1, 0))  # dy = +1: one pixel down
    np.testing.assert_array_equal(down[:, 1:], image[:, :-1])
    assert predicting.augmented(image, config.IDENTITY) is image


@pytest.mark.parametrize("rate", [0.25, 0.4])
def test_dropout_drops_at_its_rate_and_rescales(rate):
    x = np.ones((64, 12, 12, 32), "float32")
    layer = Dropout(rate, seed=5)
    assert np.array_equal(keras.ops.convert_to_numpy(layer(x, training=False)), x)  # inference: untouched
    first = keras.ops.convert_to_numpy(layer(x, training=True))
    second = keras.ops.convert_to_numpy(layer(x, training=True))
    kept = first != 0
    assert abs(1 - kept.mean() - rate) < 0.01  # 294,912 draws: the rate, to within 1 %
    np.testing.assert_allclose(first[kept], 1 / (1 - round(rate * 256) / 256), rtol=1e-6)
    assert abs(first.mean() - 1) < 0.02  # the expected activation is unchanged
    assert not np.array_equal(first, second)  # a new mask every call
    mask_a, mask_b = kept[:32].reshape(-1), kept[32:].reshape(-1)  # and no repeating pattern inside one
    assert 0.4 < (mask_a == mask_b).mean() < 0.9


def test_model_with_kit_layers_round_trips(tmp_path):
    inputs = keras.Input((28, 28, 1))
    x = RandomAffine(10, 0.1, 0.1, seed=3)(inputs)
    x = keras.layers.Conv2D(4, 3, use_bias=False)(x)
    x = BatchNorm()(x)
    x = Dropout(0.25)(x)
    outputs = keras.layers.Dense(10)(keras.layers.Flatten()(x))
    model = keras.Model(inputs, outputs)
    images = np.random.default_rng(1).uniform(0, 1, (8, 28, 28, 1)).astype("float32")
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert [type(layer).__name__ for layer in loaded.layers] == [type(layer).__name__ for layer in model.layers]
    np.testing.assert_allclose(loaded.predict(images, verbose=0), model.predict(images, verbose=0), atol=1e-5)


def test_the_xla_warp_matches_tensorflows_kernel():
    """The bilinear gather (what XLA compiles: GPUs, JAX) resamples exactly as TensorFlow's ImageProjectiveTransformV3
    (the CPU path): random rotations, zooms and shifts, pixels pushed past the border included."""
    from kit.layers import warp

    if keras.backend.backend() != "tensorflow":
        pytest.skip("compares against TensorFlow's kernel")
    rng = np.random.default_rng(0)
    n = 64
    images = rng.integers(0, 256, (n, 28, 28, 1)).astype("float32")
    theta = rng.uniform(-0.5, 0.5, n).astype("float32")
    zoom_x, zoom_y = (rng.uniform(0.8, 1.2, n).astype("float32") for _ in range(2))
    dx, dy = (rng.uniform(-6, 6, n).astype("float32") for _ in range(2))
    native = keras.ops.convert_to_numpy(warp(images, theta, zoom_x, zoom_y, dx, dy))
    gather = keras.ops.convert_to_numpy(warp(images, theta, zoom_x, zoom_y, dx, dy, xla=True))
    assert np.abs(native).sum() > 0 and (native == 0).any()  # ink moved out of some pixels, zeros filled in
    np.testing.assert_allclose(gather, native, atol=1e-3)
