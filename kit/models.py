"""The architectures, as small functions returning uncompiled Keras models (Keras 3 API only).

Inputs are uint8 images (N, 28, 28, 1); scaling to [0, 1] happens inside the model, so saved models take
the raw competition pixels. Augmentation layers are part of the model and only act while training.
The last layer computes in float32 so mixed-precision softmax stays accurate.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import keras
from keras import layers

from kit import user_models
from kit.config import MODELS, Recipe, is_user_model, model_label
from kit.errors import UsageError
from kit.layers import BatchNorm, Dropout, RandomAffine


def stem(r: Recipe, seed: int, xla: bool) -> tuple[keras.KerasTensor, keras.KerasTensor]:
    """Every model's input and its first steps: the raw pixels (N, 28, 28, 1) scaled to [0, 1], then the recipe's
    random rotation, zoom and shift in one warp, active in training only (none when augmentation is off; `xla`: the
    training step is XLA-compiled, see kit.layers.warp). Returns (the input, the images after it)."""
    inputs = keras.Input((28, 28, 1))
    x = layers.Rescaling(1 / 255.0)(inputs)
    if r.augment:
        x = RandomAffine(r.rotation, r.zoom, r.shift, seed=seed, xla=xla)(x)
    return inputs, x


def seed(r: Recipe, seed: int = 0, xla: bool = False) -> keras.Model:
    """The seed notebook's network exactly: 280,714 parameters (its summary, layer for layer)."""
    inputs, x = stem(r, seed, xla)
    for layer in [
        layers.Conv2D(64, 3, activation="relu"),
        layers.Conv2D(64, 3, activation="relu"),
        layers.MaxPooling2D(2),
        Dropout(r.dropout),
        layers.Conv2D(64, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dense(128, activation="relu"),
        layers.Dense(10, activation="softmax", dtype="float32"),
    ]:
        x = layer(x)
    return keras.Model(inputs, x, name="seed")


def _conv(x: keras.KerasTensor, filters: int, kernel: int, bn: bool, strides: int = 1, padding: str = "valid"):
    x = layers.Conv2D(filters, kernel, strides=strides, padding=padding, use_bias=not bn)(x)
    if bn:
        x = BatchNorm()(x)
    return layers.Activation("relu")(x)


def kitnet(r: Recipe, seed: int = 0, xla: bool = False) -> keras.Model:
    """Stride-2 5x5 convolutions instead of pooling, as in the best public MNIST ensembles; batch norm after
    every conv, after the stride convs only, or none (`Recipe.batchnorm`)."""
    inputs, x = stem(r, seed, xla)
    every, stride = r.batchnorm == "all", r.batchnorm in ("all", "stride")
    for filters in (32, 64):
        x = _conv(x, filters, 3, every)
        x = _conv(x, filters, 3, every)
        x = _conv(x, filters, 5, stride, strides=2, padding="same")
        x = Dropout(r.dropout)(x)
    x = _conv(x, 128, 4, stride)
    x = layers.Flatten()(x)
    x = Dropout(r.dropout)(x)
    outputs = layers.Dense(10, activation="softmax", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="kitnet")


def deotte(r: Recipe, seed: int = 0, xla: bool = False) -> keras.Model:
    """Chris Deotte's net ("25 Million Images! [0.99757] MNIST"): kitnet's layers, each conv with its bias and ReLU
    followed by batch norm, dropout `r.dropout` (his 0.4) after each block and before the classifier."""
    inputs, x = stem(r, seed, xla)

    def conv(x, filters: int, kernel: int, strides: int = 1, padding: str = "valid"):
        x = layers.Conv2D(filters, kernel, strides=strides, padding=padding, activation="relu")(x)
        return BatchNorm()(x)

    for filters in (32, 64):
        x = conv(x, filters, 3)
        x = conv(x, filters, 3)
        x = conv(x, filters, 5, strides=2, padding="same")
        x = Dropout(r.dropout)(x)
    x = conv(x, 128, 4)
    x = layers.Flatten()(x)
    x = Dropout(r.dropout)(x)
    outputs = layers.Dense(10, activation="softmax", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="deotte")


def _all_conv(r: Recipe, seed: int, xla: bool, kernel: int, channels: list[int], name: str) -> keras.Model:
    """An et al.'s all-convolutional nets (arXiv 2008.10400): inputs scaled to [-1, 1], valid convolutions without
    bias, each with batch norm and ReLU, no pooling; the classifier is a Dense layer followed by batch norm."""
    inputs, x = stem(r, seed, xla)
    x = layers.Rescaling(2.0, offset=-1.0)(x)
    for filters in channels:
        x = _conv(x, filters, kernel, bn=True)
    x = layers.Flatten()(x)
    x = Dropout(r.dropout)(x) if r.dropout > 0 else x
    x = layers.Dense(10, use_bias=False)(x)
    x = BatchNorm()(x)
    outputs = layers.Activation("softmax", dtype="float32")(x)
    return keras.Model(inputs, outputs, name=name)


def m5(r: Recipe, seed: int = 0, xla: bool = False) -> keras.Model:
    """An et al.'s M5: five valid 5x5 convolutions of 32, 64, 96, 128 and 160 channels (28 -> 8 pixels)."""
    return _all_conv(r, seed, xla, 5, [32, 64, 96, 128, 160], "m5")


def m3(r: Recipe, seed: int = 0, xla: bool = False) -> keras.Model:
    """An et al.'s M3: ten valid 3x3 convolutions, 32 channels widening by 16 each to 176 (28 -> 8 pixels)."""
    return _all_conv(r, seed, xla, 3, [32 + 16 * i for i in range(10)], "m3")


# The architectures by the names the recipe knows them by (kit.config.MODELS: one spelling, checked without Keras).
ARCHITECTURES: dict[str, Callable[[Recipe, int, bool], keras.Model]] = {name: globals()[name] for name in MODELS}


def own(r: Recipe, seed: int, xla: bool, path: Path) -> keras.Model:
    """Your own model (kit.user_models: `build(recipe)` from its file at `path`) behind kit's input layers: the raw
    pixels scaled to [0, 1], the recipe's augmentation; its output computed in float32. A model that does not build,
    take 28x28x1 images or give (N, 10) is a UsageError."""
    spec = r.model
    build = user_models.builder(spec, path)
    try:
        net = build(r)
    except user_models.USER_CODE_ERRORS as exc:  # the user's code
        raise user_models.contained(spec, exc, "building the model failed", "building the model") from None
    if not isinstance(net, keras.Model):
        raise UsageError(f"--model {spec}: returned {type(net).__name__}, not a Keras model.")
    inputs, x = stem(r, seed, xla)
    try:
        x = net(x)
    except user_models.USER_CODE_ERRORS as exc:
        failed = "the model does not take (N, 28, 28, 1) images"
        raise user_models.contained(spec, exc, failed, "calling the model on images") from None
    if tuple(x.shape) != (None, 10):
        raise UsageError(f"--model {spec}: the model gives {tuple(x.shape)} for (N, 28, 28, 1) images, not (N, 10) "
                         "class probabilities.")  # fmt: skip
    outputs = layers.Activation("linear", dtype="float32")(x)  # probabilities in float32, as kit's own nets give
    return keras.Model(inputs, outputs, name=model_label(spec).replace("-", "_").replace(".", "_"))


def build(r: Recipe, seed: int = 0, xla: bool = False, folder: Path | None = None) -> keras.Model:
    """The recipe's architecture; `xla`: its training step will be XLA-compiled; your own model's file is imported
    from the run `folder` (None: from where the recipe names it)."""
    if is_user_model(r.model):
        return own(r, seed, xla, user_models.source(r.model, folder))
    return ARCHITECTURES[r.model](r, seed, xla)


def check(r: Recipe, files: dict[str, Path]) -> None:
    """Build each of the recipe's own models (`files`: kit.user_models.files) once and check it predicts a
    probability per class for a batch of images, before any training starts: a UsageError names the first that
    does not."""
    import numpy as np

    for spec in user_models.specs(r):
        family = next((f for f in r.families.values() if f.model == spec), r) if r.families else r
        model = own(family, 0, False, files[user_models.file_name(spec)])
        probs = np.asarray(model.predict(np.zeros((2, 28, 28, 1), np.uint8), verbose=0))
        if not np.all(np.isfinite(probs)) or probs.min() < 0 or not np.allclose(probs.sum(1), 1, atol=0.02):
            raise UsageError(f"--model {spec}: its outputs are not probabilities (rows summing to 1); end the model "
                             "in a softmax.")  # fmt: skip
