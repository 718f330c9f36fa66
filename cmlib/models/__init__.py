"""The model zoo: every architecture of the thesis, and a one-function way to add more.

Each architecture is a *builder* function ``fn(input_shape, **options) ->
keras.Model`` registered under a short name with :func:`register`.  The
registry stores, beside the builder, the training *recipe* the thesis (or the
architecture's paper) used, so ``cmlib train --model NAME`` starts from the
published configuration.  Adding an architecture is one decorated function::

    import keras
    from cmlib import models

    @models.register("tiny", display_name="Tiny CNN", family="basic",
                     reference="this notebook", description="one conv layer",
                     recipe=models.BASIC_RECIPE, min_size=2)
    def tiny(input_shape, *, head, output, weights, adapter, dropout, dense_units, seed):
        image, redshift = models.model_inputs(input_shape)
        x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(image)
        x = keras.layers.MaxPooling2D(2)(x)
        out = models.regression_head(x, redshift, head=head, dense_units=dense_units,
                                     dropout=dropout, output=output, seed=seed)
        return keras.Model([image, redshift], out, name="tiny")

    model = models.build("tiny", (50, 50, 3))

Every model has two named inputs, ``"image"`` (H, W, C) and ``"redshift"``
(1,), and one output layer named ``"log_m500"``: ``Dense(1)`` for a point
estimate of log10(M500c / Msun), or ``Dense(2)`` = [mean, log-variance] for a
Gaussian likelihood (:func:`gaussian_nll`).  Models accept the inputs as a list
``[image, z]`` or a dict ``{"image": ..., "redshift": ...}``.

Builders use only ``keras.layers``, ``keras.ops`` and ``keras.applications``,
so the same code runs with ``KERAS_BACKEND=tensorflow``, ``jax`` or ``torch``.
Keras itself is imported lazily: listing the models (``cmlib models``) does not
start a deep-learning backend.

Architectures
-------------
``basic``           thesis Sect. 2.4.1, Figs. 10 and 12 (after Krippendorf et al. 2023)
``krippendorf2023`` the published baseline (Krippendorf et al. 2023; A&A 682, A132, 2024)
``vgg16``, ``vgg19``                       Simonyan & Zisserman (2015)
``resnet50/101/152``                       He et al. (2016a)
``resnet50v2/101v2/152v2``                 He et al. (2016b)
``efficientnetb7``                         Tan & Le (2019)
each from ``keras.applications`` with ``include_top=False``, then the thesis
head (Sect. 3.3): Flatten, concatenate z, Dense 512 ReLU, one output.
Layout (one concept per module, as ``keras.applications`` keeps one family per file):
``registry`` (register / build / get_spec), ``recipes`` (training defaults),
``layers`` (inputs and head), ``small_cnns`` (basic CNN, Krippendorf baseline),
``applications`` (VGG, ResNet, EfficientNet), ``losses``, ``counting`` (parameters,
FLOPs) and ``tables`` (``cmlib models``, thesis Table 3).
"""
from __future__ import annotations

from ..recipe import Recipe
from . import small_cnns as _small_cnns  # noqa: F401  (registers basic, krippendorf2023)
from . import applications as _applications  # noqa: F401  (registers the thesis's deep models)
from .applications import THESIS_APPLICATIONS, application_builder
from .weights import imagenet_weights_file
from .counting import count_flops, count_params
from .layers import model_inputs, regression_head
from .losses import LOG_VARIANCE_RANGE, gaussian_mean_sigma, gaussian_nll, loss_for, mse_of_mean
from .recipes import BASIC_RECIPE, KRIPPENDORF_RECIPE, THESIS_DEEP_RECIPE, make_recipe
from .registry import (BUILD_OPTIONS, FAMILIES, THESIS_PADDED_SIZE, ModelSpec, available_models, build,
                       get_spec, register)
from .small_cnns import basic_cnn, krippendorf2023
from .tables import format_model_table, measure, model_table

__all__ = [
    "Recipe", "ModelSpec", "register", "build", "get_spec", "available_models", "make_recipe",
    "THESIS_DEEP_RECIPE", "BASIC_RECIPE", "KRIPPENDORF_RECIPE", "BUILD_OPTIONS", "FAMILIES",
    "THESIS_PADDED_SIZE", "THESIS_APPLICATIONS", "application_builder", "imagenet_weights_file",
    "model_inputs", "regression_head", "basic_cnn", "krippendorf2023", "gaussian_nll", "mse_of_mean",
    "gaussian_mean_sigma", "loss_for", "LOG_VARIANCE_RANGE", "count_params", "count_flops", "model_table",
    "format_model_table", "measure",
]
