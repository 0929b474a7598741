"""A model file of a user's own, as `kit train --model own_model.py:build` takes it (the tests copy it where they
need it): a small convnet with a custom layer, reading the recipe's dropout."""

import keras
from keras import layers


class Scale(layers.Layer):
    """A learned per-channel scale: a layer of the user's own, not registered with Keras, that saved models must
    load back."""

    def build(self, shape):
        self.gamma = self.add_weight(shape=(shape[-1],), initializer="ones", name="gamma")

    def call(self, x):
        return x * self.gamma


def build(recipe):
    return keras.Sequential(
        [
            layers.Conv2D(8, 3, activation="relu"),
            Scale(),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dropout(recipe.dropout),
            layers.Dense(10, activation="softmax"),
        ]
    )
