"""Building blocks shared by every architecture: the two named inputs and the thesis's head."""
from __future__ import annotations

import contextlib
import random

import numpy as np
from typing import Iterator, Sequence


def _keras():
    from .._env import import_keras

    return import_keras()


def model_inputs(input_shape: Sequence[int]):
    """The two named inputs of every cmlib model: ``image`` (H, W, C) and ``redshift`` (1,)."""
    keras = _keras()
    image = keras.Input(shape=tuple(int(v) for v in input_shape), name="image")
    redshift = keras.Input(shape=(1,), name="redshift")
    return image, redshift


def regression_head(features, redshift, *, head: str = "flatten", dense_units: int = 512,
                    n_dense: int = 1, dropout: float = 0.0, output: str = "point",
                    seed: int | None = None):
    """Thesis head (Sect. 2.4.1 Fig. 12, Sect. 3.3): pool, add z, dense ReLU layers, output.

    ``features`` (H, W, C) -> Flatten (thesis) or GlobalAveragePooling2D ->
    concatenate the redshift -> [Dropout] -> ``n_dense`` x Dense(``dense_units``,
    ReLU) -> Dense named ``"log_m500"``: 1 unit (``output="point"``) or 2 units
    [mean, log-variance] (``output="gaussian"``), linear.
    """
    keras = _keras()
    layers = keras.layers
    x = layers.Flatten(name="flatten")(features) if head == "flatten" else \
        layers.GlobalAveragePooling2D(name="global_avg_pool")(features)
    x = layers.Concatenate(name="concat_redshift")([x, redshift])
    if dropout:
        x = layers.Dropout(dropout, seed=seed, name="head_dropout")(x)
    for i in range(n_dense):
        x = layers.Dense(dense_units, activation="relu", name=f"head_dense_{i + 1}")(x)
    # the output layer computes in float32 under any precision policy (mixed_bfloat16 keeps the
    # prediction and the loss at full precision: a bf16 log M has a resolution of 0.06 dex at 14)
    return layers.Dense(1 if output == "point" else 2, name="log_m500", dtype="float32")(x)


@contextlib.contextmanager
def seeded(seed: int | None) -> Iterator[None]:
    """Make the initialisers of the layers created inside deterministic.

    Keras 3 initialisers and dropout layers created without a seed draw one
    from Python's ``random`` module (``keras.random.make_default_seed``); seeding
    it around the build and restoring its state afterwards gives the same
    initial weights for the same seed, on every backend, without touching the
    global NumPy/backend random state.
    """
    if seed is None:
        yield
        return
    state = random.getstate()
    random.seed(int(seed))
    try:
        yield
    finally:
        random.setstate(state)


_LABEL_SCALE = None


def label_scale_layer(mean: float, std: float, units: int, name: str = "label_scale"):
    """A layer mapping a standardised output back to log10 M500c [dex] (``label_scaling='standardize'``).

    Point output: ``y = mean + std * out``.  Gaussian output [m, s = ln var]:
    ``[mean + std * m, s + 2 ln std]``.  The network then learns labels of zero
    mean and unit variance while its predictions, loss and saved model stay in dex.
    """
    global _LABEL_SCALE
    keras = _keras()
    if _LABEL_SCALE is None:
        @keras.saving.register_keras_serializable(package="cmlib", name="LabelScale")
        class LabelScale(keras.layers.Layer):
            def __init__(self, mean: float, std: float, units: int = 1, **kwargs):
                kwargs.setdefault("dtype", "float32")
                super().__init__(**kwargs)
                self.mean, self.std, self.units = float(mean), float(std), int(units)

            def call(self, x):
                ops = keras.ops
                if self.units == 1:
                    return x * self.std + self.mean
                return ops.stack([x[:, 0] * self.std + self.mean,
                                  x[:, 1] + 2.0 * float(np.log(self.std))], axis=1)

            def get_config(self):
                return {**super().get_config(), "mean": self.mean, "std": self.std, "units": self.units}

        _LABEL_SCALE = LabelScale
    return _LABEL_SCALE(mean, std, units, name=name)
