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
                     recipe=models.make_recipe(models.BASIC_RECIPE), min_size=2)
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
``krippendorf2023`` the published baseline (Krippendorf et al. 2023, A&A 682, A132)
``vgg16``, ``vgg19``                       Simonyan & Zisserman (2015)
``resnet50/101/152``                       He et al. (2016a)
``resnet50v2/101v2/152v2``                 He et al. (2016b)
``efficientnetb7``                         Tan & Le (2019)
each from ``keras.applications`` with ``include_top=False``, then the thesis
head (Sect. 3.3): Flatten, concatenate z, Dense 512 ReLU, one output.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import random
import re
import warnings
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from . import thesis
from .errors import DataFileError, InputError
from .schema import IMAGE_SIZE, N_BANDS, THESIS_BANDS

# --------------------------------------------------------------------------- constants

#: Families of the built-in architectures (a registered model may name a new one).
FAMILIES = ("basic", "baseline", "vgg", "resnet", "resnet-v2", "efficientnet")

#: Image side after the thesis's padding: 50 px + 21 px (bottom/right), Sect. 3.2, Fig. 20.
#: The thesis pads because it believed ResNet needs 71 px; keras.applications with
#: include_top=False accept 32 px, so the padding is a choice kept for comparability.
THESIS_PADDED_SIZE = 71

#: The keys of a recipe, in display order (see :func:`make_recipe`).
RECIPE_KEYS = ("bands", "pad", "scaling", "augment", "loss", "output", "lr", "batch_size",
               "early_stopping", "reference_epochs", "head", "dense_units")

#: Allowed values of the categorical recipe keys.
RECIPE_CHOICES = {
    "bands": ("thesis", "all"),
    "pad": ("none", "thesis", "center"),
    "scaling": ("raw", "log1p", "standardize"),
    "augment": ("none", "flip", "flip-rot90"),
    "loss": ("mse", "nll"),
    "output": ("point", "gaussian"),
    "head": ("flatten", "gap"),
}

#: Options accepted by :func:`build` (and passed to every builder), with their meaning.
BUILD_OPTIONS = {
    "head": "'flatten' (thesis) or 'gap' (global average pooling) after the convolutions",
    "output": "'point' -> Dense(1); 'gaussian' -> Dense(2) = [mean, log_variance]",
    "weights": "None (from scratch), 'imagenet' (file already in $KERAS_HOME/models) or a .h5 path",
    "adapter": "True: a trainable 1x1 Conv2D(3) maps any band count to 3 channels for ImageNet weights",
    "dropout": "dropout rate in [0, 1) before the dense head",
    "dense_units": "units of each dense layer of the head (recipe default: 512 deep, 100 basic)",
    "seed": "integer seed of the initialisers (same seed -> same initial weights), or None",
}

#: Clip range of the predicted log-variance ln(sigma^2) [dex^2] in the Gaussian NLL:
#: sigma between exp(-5) = 0.0067 dex and exp(5) = 148 dex, far outside any
#: physical mass scatter, but it keeps exp(-log_var) finite for a wild initial output.
LOG_VARIANCE_RANGE = (-10.0, 10.0)

#: Thesis Table 3 entries that do not describe the architecture of the text (see
#: :data:`cmlib.thesis.TABLE3_NOTES`): EfficientNet-B7 repeats VGG19's 21.07 M.
THESIS_PARAMS_INCONSISTENT = frozenset({"efficientnetb7"})


def make_recipe(base: Mapping[str, Any] | None = None, **overrides: Any) -> dict[str, Any]:
    """A validated training recipe: ``base`` (default :data:`THESIS_DEEP_RECIPE`) with overrides.

    A recipe holds the training defaults the thesis (or the model's paper) used:

    ``bands``             ``"thesis"`` (bands 2-4, 455-1070 eV, thesis Sect. 3.2) or ``"all"`` (10)
    ``pad``               ``"none"`` (50 x 50) or ``"thesis"`` (zero padding to 71 x 71, bottom/right)
    ``scaling``           intensity scaling of the photon counts; the thesis used ``"raw"``
    ``augment``           ``"none"``, ``"flip"`` or ``"flip-rot90"`` (applied by the data pipeline)
    ``loss``, ``output``  ``"mse"`` with ``"point"``, or ``"nll"`` with ``"gaussian"``
    ``lr``, ``batch_size``  Adam learning rate and batch size
    ``early_stopping``    patience in epochs on the validation loss, 0 = off
    ``reference_epochs``  the number of epochs of the reference training
    ``head``, ``dense_units``  head after the convolutions and units per dense layer

    Raises
    ------
    InputError
        For a missing or unknown key or a value out of range.
    """
    recipe = dict(THESIS_DEEP_RECIPE if base is None else base)
    recipe.update(overrides)
    _validate_recipe(recipe)
    return recipe


def _validate_recipe(recipe: Mapping[str, Any], name: str = "recipe") -> None:
    missing = [k for k in RECIPE_KEYS if k not in recipe]
    unknown = sorted(set(recipe) - set(RECIPE_KEYS))
    if missing or unknown:
        raise InputError(
            f"{name}: a recipe needs exactly the keys {', '.join(RECIPE_KEYS)}"
            + (f"; missing {', '.join(missing)}" if missing else "")
            + (f"; unknown {', '.join(unknown)}" if unknown else "")
            + ". Start from cmlib.models.make_recipe(base, **changes)."
        )
    for key, choices in RECIPE_CHOICES.items():
        if recipe[key] not in choices:
            raise InputError(f"{name}: {key}={recipe[key]!r} is not one of {', '.join(choices)}")
    if (recipe["loss"] == "nll") != (recipe["output"] == "gaussian"):
        raise InputError(f"{name}: loss 'nll' needs output 'gaussian' and loss 'mse' output 'point' "
                         f"(got loss={recipe['loss']!r}, output={recipe['output']!r})")
    if not (isinstance(recipe["lr"], (int, float)) and 0 < recipe["lr"] < 1):
        raise InputError(f"{name}: lr={recipe['lr']!r} must be a number in (0, 1), e.g. 1e-3")
    for key, lowest in (("batch_size", 1), ("early_stopping", 0), ("reference_epochs", 1),
                        ("dense_units", 1)):
        value = recipe[key]
        if not (isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= lowest):
            raise InputError(f"{name}: {key}={value!r} must be an integer >= {lowest}")


#: Thesis Sect. 3.3 and Table 4, for every keras.applications model: bands 2-4,
#: padded to 71 x 71, raw counts, MSE, Adam lr 1e-3, batch 32, 4000 epochs, no
#: early stopping, Flatten head with Dense 512.  The augmentation (random flips)
#: is the thesis pipeline's (Sect. 3.2, Fig. 21).
THESIS_DEEP_RECIPE: Mapping[str, Any] = MappingProxyType(dict(
    bands="thesis", pad="thesis", scaling="raw", augment="flip", loss="mse", output="point",
    lr=1e-3, batch_size=32, early_stopping=0, reference_epochs=4000, head="flatten",
    dense_units=512,
))

#: The thesis's basic CNN (Sect. 2.4.1, 3.3, 4.1): bands 2-4 at 50 x 50 (no padding:
#: only then is the conv output (12, 12, 20)), two dense layers of 100.  The thesis
#: stopped at the validation minimum (~90 epochs, Fig. 22) and trains it "for a few
#: hundred epochs": cmlib uses 300 epochs at most with early stopping after 20
#: epochs without improvement (patience 20 = 22 % of the 90-epoch minimum, enough
#: to ride out the epoch-to-epoch noise of the validation loss seen in Fig. 22).
BASIC_RECIPE: Mapping[str, Any] = MappingProxyType(dict(
    THESIS_DEEP_RECIPE, pad="none", early_stopping=20, reference_epochs=300, dense_units=100,
))

#: Krippendorf et al. (2023): all 10 bands at 50 x 50, random flips and 90-degree
#: rotations, Gaussian NLL, Adam lr 1e-4, batch 100, about 500 epochs.  The paper
#: gives no stopping rule; cmlib stops after 50 epochs without improvement of the
#: validation loss (at lr 1e-4 the loss moves ~10x slower than at the thesis's
#: 1e-3, hence a longer patience than the basic CNN's 20).
KRIPPENDORF_RECIPE: Mapping[str, Any] = MappingProxyType(dict(
    bands="all", pad="none", scaling="raw", augment="flip-rot90", loss="nll", output="gaussian",
    lr=1e-4, batch_size=100, early_stopping=50, reference_epochs=500, head="flatten",
    dense_units=100,
))


# --------------------------------------------------------------------------- registry

@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """A registered architecture: its builder, its provenance and its training recipe.

    Attributes
    ----------
    name : str
        Registry key (``"resnet50v2"``).
    display_name : str
        Name as the thesis writes it (``"ResNet50V2"``, :data:`cmlib.thesis.DISPLAY_NAMES`).
    family : str
        ``"basic"``, ``"baseline"``, ``"vgg"``, ``"resnet"``, ``"resnet-v2"``, ``"efficientnet"``...
    reference : str
        The paper that defines the architecture.
    description : str
        One sentence on what is built.
    recipe : Mapping
        Training defaults (read-only), see :func:`make_recipe`.
    builder : callable
        ``fn(input_shape, *, head, output, weights, adapter, dropout, dense_units, seed)``.
    min_size : int
        Smallest image side (pixels) the architecture accepts.
    """

    name: str
    display_name: str
    family: str
    reference: str
    description: str
    recipe: Mapping[str, Any]
    builder: Callable[..., Any]
    min_size: int = 32

    @property
    def default_input_shape(self) -> tuple[int, int, int]:
        """Image shape (H, W, C) of the recipe: bands and padding, e.g. (71, 71, 3)."""
        return recipe_input_shape(self.recipe)

    def build(self, input_shape: Sequence[int] | None = None, **options: Any):
        """Build this architecture; see :func:`build`."""
        return build(self.name, input_shape, **options)


_REGISTRY: dict[str, ModelSpec] = {}
_NAME_RE = re.compile(r"^[a-z][a-z0-9_.-]*$")


def recipe_input_shape(recipe: Mapping[str, Any]) -> tuple[int, int, int]:
    """Image shape (H, W, C) implied by a recipe's ``bands`` and ``pad``."""
    channels = len(THESIS_BANDS) if recipe["bands"] == "thesis" else N_BANDS
    side = IMAGE_SIZE if recipe["pad"] == "none" else THESIS_PADDED_SIZE
    return (side, side, channels)


def register(name: str, *, display_name: str | None = None, family: str, reference: str,
             recipe: Mapping[str, Any], description: str, min_size: int = 32,
             overwrite: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: register ``fn(input_shape, **options) -> keras.Model`` under ``name``.

    Parameters
    ----------
    name : str
        Lower-case key (letters, digits, ``_ . -``), used by ``cmlib train --model``.
    display_name : str, optional
        Name for tables and plots; default :data:`cmlib.thesis.DISPLAY_NAMES` or ``name``.
    family, reference, description : str
        Architecture family, defining paper, one-sentence description.
    recipe : Mapping
        Training defaults with exactly the keys of :data:`RECIPE_KEYS` (:func:`make_recipe`).
    min_size : int
        Smallest image side in pixels the builder accepts (32 for keras.applications).
    overwrite : bool
        Replace an existing registration (e.g. when a notebook cell runs twice).

    The builder receives every option of :data:`BUILD_OPTIONS` as a keyword
    argument, already validated by :func:`build`; it must return a model with
    inputs named ``"image"`` and ``"redshift"`` and an output layer named
    ``"log_m500"`` (use :func:`model_inputs` and :func:`regression_head`).
    """
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise InputError(f"model name {name!r} is not valid: use lower-case letters, digits, "
                         "'_', '.' or '-', starting with a letter (e.g. 'resnet50v2')")
    if name in _REGISTRY and not overwrite:
        raise InputError(f"a model named '{name}' is already registered; choose another name "
                         "or pass overwrite=True to replace it")
    if not (isinstance(min_size, int) and min_size >= 1):
        raise InputError(f"min_size={min_size!r} must be a positive integer (pixels)")
    _validate_recipe(recipe, name=f"recipe of '{name}'")
    frozen_recipe = MappingProxyType({k: recipe[k] for k in RECIPE_KEYS})

    def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
        _REGISTRY[name] = ModelSpec(
            name=name, display_name=display_name or thesis.DISPLAY_NAMES.get(name, name),
            family=family, reference=reference, description=description, recipe=frozen_recipe,
            builder=fn, min_size=min_size,
        )
        return fn

    return decorator


def available_models() -> list[str]:
    """Names of the registered architectures, in registration order."""
    return list(_REGISTRY)


def get_spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` of ``name``; :class:`InputError` listing the valid names if unknown."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise InputError(f"unknown model '{name}'; choose one of: {', '.join(available_models())} "
                         "(see `cmlib models`)") from None


# --------------------------------------------------------------------------- building blocks

def _keras():
    from ._env import import_keras

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
    return layers.Dense(1 if output == "point" else 2, name="log_m500")(x)


@contextlib.contextmanager
def _seeded(seed: int | None) -> Iterator[None]:
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


# --------------------------------------------------------------------------- builders

def _reject_pretraining(name: str, weights, adapter: bool) -> None:
    if weights is not None:
        raise InputError(f"'{name}' has no pretrained (ImageNet) weights; leave weights=None "
                         "(train from scratch) or choose a keras.applications model")
    if adapter:
        raise InputError(f"adapter=True only applies to the ImageNet backbones; '{name}' takes "
                         "any band count directly: leave adapter=False")


def _basic_convolutions(image, filters: tuple[int, int], name: str):
    """Two convolutional layers (conv 2x2 'same' + ReLU + pooling), thesis Fig. 10."""
    layers = _keras().layers
    x = layers.Conv2D(filters[0], 2, padding="same", activation="relu", name=f"{name}_conv1")(image)
    x = layers.AveragePooling2D(2, name=f"{name}_avg_pool")(x)
    x = layers.Conv2D(filters[1], 2, padding="same", activation="relu", name=f"{name}_conv2")(x)
    return layers.MaxPooling2D(2, name=f"{name}_max_pool")(x)


@register(
    "basic", family="basic",
    reference="Heim (2023), Sect. 2.4.1, Figs. 10 and 12; after Krippendorf et al. (2023), A&A 682, A132",
    recipe=BASIC_RECIPE, min_size=4,
    description="2 conv layers (2x2, 10 and 20 filters; avg then max pooling) -> (12, 12, 20) "
                "-> Flatten 2880 + z -> Dense 100 -> Dense 100 -> 1",
)
def basic_cnn(input_shape, *, head="flatten", output="point", weights=None, adapter=False,
              dropout=0.0, dense_units=100, seed=None):
    """The thesis's basic CNN (Sect. 2.4.1, Figs. 10 and 12; Table 3: 0.30 M parameters).

    Conv2D(10, 2x2, 'same', ReLU) -> AveragePooling 2x2 -> Conv2D(20, 2x2,
    'same', ReLU) -> MaxPooling 2x2 -> (12, 12, 20) for a 50 x 50 input ->
    Flatten (2880) -> concatenate z (2881) -> Dense 100 ReLU -> Dense 100 ReLU
    -> Dense 1.

    The thesis gives neither the kernel size nor the first layer's filter
    count.  cmlib takes the 2x2 'same' kernels of Krippendorf et al. (2023)
    and 10 then 20 filters (the second count is fixed by the (12, 12, 20)
    output).  For 3 bands this gives 130 + 820 + 288 200 + 10 100 + 101 =
    299 351 trainable parameters = 0.30 M, the thesis's Table 3 value.  Only a
    50 x 50 input gives the thesis's (12, 12, 20): a 71 x 71 padded input would
    give (17, 17, 20).
    """
    _reject_pretraining("basic", weights, adapter)
    keras = _keras()
    image, redshift = model_inputs(input_shape)
    x = _basic_convolutions(image, (10, 20), "basic")
    out = regression_head(x, redshift, head=head, dense_units=dense_units, n_dense=2,
                          dropout=dropout, output=output, seed=seed)
    return keras.Model([image, redshift], out, name="basic")


@register(
    "krippendorf2023", family="baseline",
    reference="Krippendorf et al. (2023), A&A 682, A132",
    recipe=KRIPPENDORF_RECIPE, min_size=4,
    description="2 conv layers (2x2, 10 filters each; avg then max pooling) -> Flatten + z "
                "-> Dense 100 -> Dense 100 -> (mean, log variance)",
)
def krippendorf2023(input_shape, *, head="flatten", output="gaussian", weights=None,
                    adapter=False, dropout=0.0, dense_units=100, seed=None):
    """The published eFEDS baseline of Krippendorf et al. (2023).

    Conv2D(10, 2x2, ReLU) -> AveragePooling 2x2 -> Conv2D(10, 2x2, ReLU) ->
    MaxPooling 2x2 -> Flatten -> concatenate z -> Dense 100 ReLU -> Dense 100
    ReLU -> Dense 2 = [mean, ln sigma^2] trained with a Gaussian negative
    log-likelihood (:func:`gaussian_nll`).  Input: all ten bands, 50 x 50.

    The paper's random flips and rotations act on the training images only;
    cmlib does them in the data pipeline (recipe ``augment="flip-rot90"``),
    not as layers, so the model itself is deterministic and identical at
    training and inference time.  The paper publishes no code: 'same' padding
    is assumed, as the shapes of thesis Fig. 10 (12 x 12 after two 2x2
    poolings of a 50 px image; 'valid' padding would give 11 x 11) require,
    and the variance is predicted as its logarithm (positive by construction).
    """
    _reject_pretraining("krippendorf2023", weights, adapter)
    keras = _keras()
    image, redshift = model_inputs(input_shape)
    x = _basic_convolutions(image, (10, 10), "krippendorf")
    out = regression_head(x, redshift, head=head, dense_units=dense_units, n_dense=2,
                          dropout=dropout, output=output, seed=seed)
    return keras.Model([image, redshift], out, name="krippendorf2023")


def imagenet_weights_file(class_name: str) -> Path:
    """Where Keras caches the ImageNet ``include_top=False`` weights of ``class_name``.

    ``$KERAS_HOME/models/<file>`` (default ``~/.keras/models``), the file name
    keras.applications would download (cmlib never downloads).
    """
    from keras.src.backend.config import keras_home

    stem = class_name.lower()
    if stem.startswith("efficientnet"):
        fname = f"{stem}_notop.h5"
    else:
        fname = f"{stem}_weights_tf_dim_ordering_tf_kernels_notop.h5"
    return Path(keras_home()) / "models" / fname


def _imagenet_url(class_name: str) -> str:
    stem = class_name.lower()
    if stem.startswith("efficientnet"):
        return f"https://storage.googleapis.com/keras-applications/{stem}_notop.h5"
    folder = stem if stem.startswith("vgg") else "resnet"
    return ("https://storage.googleapis.com/tensorflow/keras-applications/"
            f"{folder}/{stem}_weights_tf_dim_ordering_tf_kernels_notop.h5")


def _backbone(class_name: str, input_shape: tuple[int, int, int], weights: str | None):
    """``keras.applications.<class_name>(include_top=False)``, weights loaded from a local file."""
    keras = _keras()
    app = getattr(keras.applications, class_name)
    with warnings.catch_warnings():
        # 10-band inputs are deliberate ("usually expects 1 or 3 input channels"), and a
        # mismatching .weights.h5 file emits one warning per layer before the ValueError.
        warnings.filterwarnings("ignore", message=r".*input channels", category=UserWarning)
        warnings.filterwarnings("ignore", message=r"Skipping nested container", category=UserWarning)
        if weights is None:
            return app(include_top=False, weights=None, input_shape=input_shape)
        try:
            return app(include_top=False, weights=str(weights), input_shape=input_shape)
        except (ValueError, KeyError, OSError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DataFileError(
                f"the weights file '{weights}' does not fit {class_name} (include_top=False): "
                f"{first[:300]}. Pass the ImageNet 'notop' file of this architecture "
                f"({imagenet_weights_file(class_name).name}) or weights=None."
            ) from None


def application_builder(class_name: str, *, name: str | None = None) -> Callable[..., Any]:
    """A builder for ``keras.applications.<class_name>`` with the thesis head.

    image -> [adapter: Conv2D(3, 1x1)] -> backbone (include_top=False) ->
    :func:`regression_head` (Flatten or GAP, + z, Dense ``dense_units`` ReLU,
    output).  ``weights`` is a local ``include_top=False`` file (cmlib never
    downloads).  EfficientNet adds its ImageNet input rescaling layer only for
    ``weights="imagenet"`` inside Keras, so with a weights *path* its inputs are
    scaled by 1/255 but not by the ImageNet standard deviations; for photon-count
    images (not RGB) the ImageNet statistics do not apply anyway.

    Register another keras.applications model in one line::

        register("densenet121", family="densenet", reference="Huang et al. (2017)",
                 recipe=make_recipe(), description="DenseNet-121 + thesis head"
                 )(application_builder("DenseNet121"))
    """
    model_name = name or class_name.lower()

    def builder(input_shape, *, head="flatten", output="point", weights=None, adapter=False,
                dropout=0.0, dense_units=512, seed=None):
        keras = _keras()
        if not hasattr(keras.applications, class_name):
            raise InputError(f"keras.applications has no '{class_name}' in Keras {keras.__version__}")
        h, w, c = (int(v) for v in input_shape)
        if weights is not None and c != 3 and not adapter:
            raise InputError(
                f"ImageNet weights need 3 input channels, but the image has {c} bands; "
                "pass adapter=True (a trainable 1x1 convolution maps the bands to 3 channels) "
                "or select 3 bands (bands='thesis')"
            )
        image, redshift = model_inputs(input_shape)
        x = image
        if adapter:
            x = keras.layers.Conv2D(3, 1, name="band_adapter")(x)
        backbone = _backbone(class_name, (h, w, 3 if adapter else c), weights)
        features = backbone(x)
        out = regression_head(features, redshift, head=head, dense_units=dense_units, n_dense=1,
                              dropout=dropout, output=output, seed=seed)
        return keras.Model([image, redshift], out, name=model_name)

    builder.__name__ = f"build_{model_name}"
    builder.__qualname__ = builder.__name__
    builder.__doc__ = (f"keras.applications.{class_name}(include_top=False) + the thesis head "
                       "(see :func:`application_builder`).")
    builder.keras_class = class_name  # type: ignore[attr-defined]
    return builder


_VGG_REF = "Simonyan & Zisserman (2015), ICLR, arXiv:1409.1556"
_RESNET_REF = "He et al. (2016a), CVPR, arXiv:1512.03385"
_RESNET_V2_REF = "He et al. (2016b), ECCV, arXiv:1603.05027 (pre-activation)"
_EFFNET_REF = "Tan & Le (2019), ICML, arXiv:1905.11946"

#: The thesis's deep models (Sect. 2.4.2, 3.3): name -> (keras class, family, reference, description).
THESIS_APPLICATIONS = {
    "vgg16": ("VGG16", "vgg", _VGG_REF, "13 conv layers (3x3) in 5 blocks"),
    "vgg19": ("VGG19", "vgg", _VGG_REF, "16 conv layers (3x3) in 5 blocks"),
    "resnet50": ("ResNet50", "resnet", _RESNET_REF, "50-layer residual network (bottleneck blocks)"),
    "resnet50v2": ("ResNet50V2", "resnet-v2", _RESNET_V2_REF, "50-layer pre-activation ResNet"),
    "resnet101": ("ResNet101", "resnet", _RESNET_REF, "101-layer residual network"),
    "resnet101v2": ("ResNet101V2", "resnet-v2", _RESNET_V2_REF, "101-layer pre-activation ResNet"),
    "resnet152": ("ResNet152", "resnet", _RESNET_REF, "152-layer residual network"),
    "resnet152v2": ("ResNet152V2", "resnet-v2", _RESNET_V2_REF, "152-layer pre-activation ResNet"),
    "efficientnetb7": ("EfficientNetB7", "efficientnet", _EFFNET_REF,
                       "compound-scaled MBConv network (contains Rescaling(1/255) and "
                       "Normalization layers)"),
}

for _name, (_cls, _family, _ref, _desc) in THESIS_APPLICATIONS.items():
    register(_name, family=_family, reference=_ref, recipe=THESIS_DEEP_RECIPE, min_size=32,
             description=f"keras.applications.{_cls} (include_top=False), {_desc}; "
                         "Flatten + z -> Dense 512 -> 1")(application_builder(_cls, name=_name))
del _name, _cls, _family, _ref, _desc


# --------------------------------------------------------------------------- build

def _normalize_input_shape(spec: ModelSpec, input_shape) -> tuple[int, int, int]:
    if input_shape is None:
        return spec.default_input_shape
    try:
        shape = tuple(int(v) for v in input_shape)
        ok = len(shape) == 3 and all(float(a) == b for a, b in zip(input_shape, shape))
    except (TypeError, ValueError):
        ok = False
    if not ok or min(shape) < 1:
        raise InputError(f"input_shape={input_shape!r} is not valid: give (height, width, bands) "
                         "as three positive integers, e.g. (71, 71, 3)")
    h, w, _ = shape
    if min(h, w) < spec.min_size:
        raise InputError(
            f"the image ({h} x {w} px) is too small for '{spec.name}': it needs at least "
            f"{spec.min_size} x {spec.min_size} px; pad the images (pad='thesis' gives 71 x 71)"
        )
    return shape


def _normalize_weights(weights) -> str | None:
    if weights is None or (isinstance(weights, str) and weights.strip().lower() in ("", "none")):
        return None
    if isinstance(weights, str) and weights.strip().lower() == "imagenet":
        return "imagenet"
    if not isinstance(weights, (str, os.PathLike)):
        raise InputError(f"weights={weights!r} is not valid: use None, 'imagenet' or a file path")
    path = Path(weights).expanduser()
    if not path.is_file():
        raise DataFileError(
            f"the weights file '{weights}' does not exist (or is not a file); give the path of a "
            "local ImageNet 'include_top=False' weights file (.h5), or weights=None to train "
            "from scratch"
        )
    return str(path)


def _normalize_options(spec: ModelSpec, options: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(options) - set(BUILD_OPTIONS))
    if unknown:
        raise InputError(f"unknown option(s) {', '.join(unknown)} for build('{spec.name}'); "
                         f"valid options: {', '.join(BUILD_OPTIONS)}")
    recipe = spec.recipe
    opts = dict(head=recipe["head"], output=recipe["output"], weights=None, adapter=False,
                dropout=0.0, dense_units=recipe["dense_units"], seed=None)
    opts.update({k: v for k, v in options.items() if v is not None or k in ("weights", "seed")})
    for key in ("head", "output"):
        if opts[key] not in RECIPE_CHOICES[key]:
            raise InputError(f"{key}={opts[key]!r} is not valid; use one of "
                             f"{', '.join(repr(c) for c in RECIPE_CHOICES[key])}")
    if not isinstance(opts["adapter"], (bool, np.bool_)):
        raise InputError(f"adapter={opts['adapter']!r} must be True or False")
    opts["adapter"] = bool(opts["adapter"])
    try:
        opts["dropout"] = float(opts["dropout"])
    except (TypeError, ValueError):
        raise InputError(f"dropout={opts['dropout']!r} must be a number in [0, 1)") from None
    if not 0.0 <= opts["dropout"] < 1.0:
        raise InputError(f"dropout={opts['dropout']!r} must be in [0, 1), e.g. 0.2")
    du = opts["dense_units"]
    if isinstance(du, bool) or not isinstance(du, (int, np.integer)) or du < 1:
        raise InputError(f"dense_units={du!r} must be a positive integer, e.g. 512")
    opts["dense_units"] = int(du)
    seed = opts["seed"]
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
        raise InputError(f"seed={seed!r} must be a non-negative integer or None")
    opts["seed"] = None if seed is None else int(seed)
    weights = _normalize_weights(opts["weights"])
    if weights == "imagenet":
        cls = getattr(spec.builder, "keras_class", None)
        if cls is None:
            raise InputError(f"'{spec.name}' has no ImageNet weights; leave weights=None")
        path = imagenet_weights_file(cls)
        if not path.is_file():
            raise DataFileError(
                f"the ImageNet weights of {cls} are not in the Keras cache ({path}) and cmlib does "
                f"not download; fetch {_imagenet_url(cls)} on a connected machine, put it at "
                f"{path} (or anywhere, and pass its path as weights=...), or use weights=None"
            )
        weights = str(path)
    opts["weights"] = weights
    return opts


def build(name: str, input_shape: Sequence[int] | None = None, **options: Any):
    """Build the registered model ``name`` for images of ``input_shape`` (H, W, C).

    Parameters
    ----------
    name : str
        A name of :func:`available_models`.
    input_shape : (int, int, int), optional
        Image shape; default the recipe's (e.g. (71, 71, 3) for the deep models).
        Any band count works; the side must be at least the model's
        ``min_size`` (32 px for keras.applications, 4 px for the small CNNs).
    **options
        ``head`` ('flatten' | 'gap'), ``output`` ('point' | 'gaussian'),
        ``weights`` (None = from scratch, 'imagenet' if cached locally, or a
        path to an ImageNet ``include_top=False`` .h5 file), ``adapter``
        (bool, 1x1 Conv2D(3) in front), ``dropout`` (float), ``dense_units``
        (int), ``seed`` (int: the same seed gives the same initial weights).
        Defaults come from the model's recipe (see :data:`BUILD_OPTIONS`).

    Returns
    -------
    keras.Model
        Inputs ``image`` and ``redshift``; output layer ``log_m500`` of 1 or 2 units.

    Raises
    ------
    InputError
        Unknown name or option, bad value, image too small, ImageNet weights
        with a band count other than 3 and no adapter.
    DataFileError
        Missing weights file, or one that does not fit the architecture.
    """
    spec = get_spec(name)
    shape = _normalize_input_shape(spec, input_shape)
    opts = _normalize_options(spec, options)
    with _seeded(opts["seed"]):
        model = spec.builder(shape, **opts)
    _check_contract(spec, model, opts["output"])
    return model


def _check_contract(spec: ModelSpec, model, output: str) -> None:
    names = [getattr(t, "name", None) for t in getattr(model, "inputs", None) or []]
    problems = []
    if sorted(n.split(":")[0] for n in names if n) != ["image", "redshift"]:
        problems.append(f"inputs {names} (need 'image' and 'redshift')")
    try:
        out_layer = model.get_layer("log_m500")
        units = out_layer.output.shape[-1]
        if units != (1 if output == "point" else 2):
            problems.append(f"output 'log_m500' has {units} units for output={output!r}")
    except ValueError:
        problems.append("no output layer named 'log_m500'")
    if problems:
        raise InputError(f"the builder of '{spec.name}' returned a model with {'; '.join(problems)}; "
                         "build it with cmlib.models.model_inputs() and regression_head()")


# --------------------------------------------------------------------------- losses

def gaussian_nll(y_true, y_pred):
    """Gaussian negative log-likelihood per sample, up to the constant 0.5 ln(2 pi).

    ``y_pred[:, 0]`` is the mean mu, ``y_pred[:, 1]`` the log-variance
    s = ln sigma^2, clipped to :data:`LOG_VARIANCE_RANGE` so ``exp(-s)`` stays
    finite::

        L = 0.5 * (s + (y - mu)^2 * exp(-s))

    (the NLL of a normal distribution, e.g. Krippendorf et al. 2023, and the
    form of Kendall & Gal 2017, eq. 8).  Backend-neutral (``keras.ops``).
    """
    ops = _keras().ops
    y_pred = ops.convert_to_tensor(y_pred)
    y_true = ops.reshape(ops.cast(y_true, y_pred.dtype), (-1,))
    mean = y_pred[:, 0]
    log_var = ops.clip(y_pred[:, 1], LOG_VARIANCE_RANGE[0], LOG_VARIANCE_RANGE[1])
    return 0.5 * (log_var + ops.square(y_true - mean) * ops.exp(-log_var))


def mse_of_mean(y_true, y_pred):
    """Squared error of the predicted mean (column 0): the thesis's MSE for a Gaussian model."""
    ops = _keras().ops
    y_pred = ops.convert_to_tensor(y_pred)
    y_true = ops.reshape(ops.cast(y_true, y_pred.dtype), (-1,))
    return ops.square(y_true - y_pred[:, 0])


def gaussian_mean_sigma(y_pred) -> tuple[np.ndarray, np.ndarray]:
    """Split a Gaussian model's output (N, 2) into mean and sigma = exp(s / 2) (numpy, dex)."""
    arr = np.asarray(y_pred, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise InputError(f"a Gaussian prediction has shape (N, 2) = [mean, log_variance], got "
                         f"{arr.shape}; build the model with output='gaussian'")
    log_var = np.clip(arr[:, 1], *LOG_VARIANCE_RANGE)
    return arr[:, 0].copy(), np.exp(0.5 * log_var)


def loss_for(name: str):
    """The Keras loss of a recipe's ``loss``: ``"mse"`` (thesis eq. 2.4.14) or ``"nll"``."""
    if name == "mse":
        return _keras().losses.MeanSquaredError(name="mse")
    if name == "nll":
        return gaussian_nll
    raise InputError(f"unknown loss {name!r}; use 'mse' (point output) or 'nll' (gaussian output)")


# --------------------------------------------------------------------------- counting

def count_params(model, trainable: bool = True) -> int:
    """Number of trainable parameters (``trainable=True``) or of all parameters (``False``)."""
    weights = model.trainable_weights if trainable else model.weights
    return int(sum(math.prod(int(d) for d in w.shape) for w in weights))


_count_params = count_params  # model_table's ``count_params`` flag shadows the name


_ZERO_FLOP_LAYERS = {
    "InputLayer", "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D", "Cropping1D", "Cropping2D",
    "Cropping3D", "Flatten", "Reshape", "Permute", "RepeatVector", "Concatenate", "Dropout",
    "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise", "GaussianDropout",
    "AlphaDropout", "Identity", "Masking", "UpSampling1D", "UpSampling2D", "UpSampling3D",
    "RandomFlip", "RandomRotation", "RandomTranslation", "RandomZoom", "RandomCrop",
    "ActivityRegularization",
}
_ACTIVATION_LAYERS = {"Activation", "ReLU", "LeakyReLU", "ELU", "PReLU", "Softmax"}
_MERGE_LAYERS = {"Add": -1, "Subtract": -1, "Multiply": -1, "Maximum": -1, "Minimum": -1,
                 "Average": 0}


def _n(shape) -> int:
    return int(math.prod(int(d) for d in shape[1:]))  # drop the batch axis


def _has_activation(layer) -> bool:
    act = getattr(layer, "activation", None)
    return act is not None and getattr(act, "__name__", "linear") != "linear"


def _layer_flops(layer, in_shapes: list, out_shape) -> dict[str, int] | None:
    """FLOPs of one call of ``layer`` per image, by category; None if the layer is unknown."""
    cls = type(layer).__name__
    n_out = _n(out_shape)
    f = dict.fromkeys(("conv", "dense", "bias", "pool", "norm", "merge", "activation"), 0)
    if cls in _ZERO_FLOP_LAYERS:
        return f
    if cls in ("Conv1D", "Conv2D", "Conv3D"):
        cin = int(in_shapes[0][-1])
        f["conv"] = 2 * n_out * math.prod(layer.kernel_size) * (cin // layer.groups)
    elif cls in ("Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose"):
        f["conv"] = 2 * _n(in_shapes[0]) * math.prod(layer.kernel_size) * layer.filters
    elif cls in ("DepthwiseConv1D", "DepthwiseConv2D"):
        f["conv"] = 2 * n_out * math.prod(layer.kernel_size)
    elif cls in ("SeparableConv1D", "SeparableConv2D"):
        spatial_out = n_out // int(out_shape[-1])
        mid = int(in_shapes[0][-1]) * layer.depth_multiplier
        f["conv"] = 2 * spatial_out * mid * (math.prod(layer.kernel_size) + int(out_shape[-1]))
    elif cls == "Dense":
        f["dense"] = 2 * _n(in_shapes[0]) * layer.units
    elif cls in ("MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D",
                 "AveragePooling2D", "AveragePooling3D"):
        f["pool"] = n_out * math.prod(layer.pool_size)
    elif cls.startswith("Global") and "Pooling" in cls:
        f["pool"] = _n(in_shapes[0])
    elif cls in ("BatchNormalization", "Normalization", "Rescaling"):
        f["norm"] = 2 * n_out  # inference: x * scale + offset
    elif cls in _ACTIVATION_LAYERS:
        f["activation"] = n_out
    elif cls in _MERGE_LAYERS:
        f["merge"] = n_out * (len(in_shapes) + _MERGE_LAYERS[cls])
    else:
        return None
    if getattr(layer, "use_bias", False) and cls not in _MERGE_LAYERS:
        f["bias"] = n_out
    if _has_activation(layer):
        f["activation"] += n_out
    return f


def _walk_flops(model, total: dict[str, int], unknown: set[str]) -> None:
    keras = _keras()
    graph = model
    if isinstance(model, keras.Sequential):
        graph = getattr(model, "_functional", None)
        if graph is None:
            raise InputError(f"the Sequential model '{model.name}' is not built; call it on an input "
                             "or give it an Input layer before counting FLOPs")
    nodes_by_depth = getattr(graph, "_nodes_by_depth", None)
    if nodes_by_depth is None:
        raise InputError(f"count_flops needs a functional Keras model; '{model.name}' "
                         f"({type(model).__name__}) has no layer graph")
    for depth in sorted(nodes_by_depth, reverse=True):
        for node in nodes_by_depth[depth]:
            layer = node.operation
            if node.is_input:
                continue
            if isinstance(layer, keras.Model):
                _walk_flops(layer, total, unknown)
                continue
            in_shapes = [t.shape for t in node.input_tensors]
            out_shape = node.outputs[0].shape
            f = _layer_flops(layer, in_shapes, out_shape)
            if f is None:
                unknown.add(type(layer).__name__)
                continue
            for k, v in f.items():
                total[k] += int(v)


def count_flops(model, input_shape: Sequence[int] | None = None, *,
                breakdown: bool = False) -> int | dict[str, int]:
    """Floating-point operations of one forward pass per image, counted layer by layer.

    Convention (that of TensorFlow's profiler, so the two can be compared):

    ``conv``   Conv/DepthwiseConv/SeparableConv: 2 x multiply-accumulates (MACs)
    ``dense``  Dense: 2 x MACs
    ``bias``   one addition per output element of a layer with a bias
    ``pool``   max/average pooling: one operation per window element per output;
               global pooling: one per input element
    ``norm``   BatchNormalization (inference), Normalization, Rescaling: 2 per element
    ``merge``  Add/Subtract/Multiply/Maximum/Minimum: (inputs - 1) per output element
    ``activation``  one per element for every non-linear activation (ReLU, swish,
               sigmoid...): a lower bound for the transcendental ones; TensorFlow's
               profiler does not count activations at all

    Padding, reshaping, concatenation and (inference-time) dropout cost nothing.
    Nested models (the keras.applications backbones) are walked recursively.
    The total is per image (the batch axis is dropped).

    Parameters
    ----------
    model : keras.Model
        A functional (or built Sequential) model.
    input_shape : (H, W, C), optional
        The image shape the count is for; must be the shape the model was built
        with (FLOPs are counted from the layer graph).
    breakdown : bool
        Return the categories above (and ``"total"``) instead of the total.

    Warns
    -----
    UserWarning
        Listing layer types the counter does not know (counted as 0).
    """
    if input_shape is not None:
        built = None
        for t in getattr(model, "inputs", None) or []:
            if getattr(t, "name", "").split(":")[0] == "image" or len(model.inputs) == 1:
                built = tuple(t.shape[1:])
        wanted = tuple(int(v) for v in input_shape)
        if built is not None and built != wanted:
            raise InputError(f"the model was built for images of shape {built}, not {wanted}; "
                             f"build it with input_shape={wanted} to count its FLOPs")
    total = dict.fromkeys(("conv", "dense", "bias", "pool", "norm", "merge", "activation"), 0)
    unknown: set[str] = set()
    _walk_flops(model, total, unknown)
    if unknown:
        warnings.warn(f"count_flops: layer types not counted (0 FLOPs assumed): "
                      f"{', '.join(sorted(unknown))}", stacklevel=2)
    total["total"] = sum(total.values())
    return total if breakdown else total["total"]


# --------------------------------------------------------------------------- tables

def model_table(input_shape: Sequence[int] | None = None, count_params: bool = False) -> list[dict]:
    """One row per registered model: names, family, input shape, loss/output, Table 3 params.

    Parameters
    ----------
    input_shape : (H, W, C), optional
        Shape to report (and count) for; default each model's recipe shape
        (basic (50, 50, 3), deep models (71, 71, 3), Krippendorf (50, 50, 10)).
    count_params : bool
        Build every model (``weights=None``) and measure its trainable parameters
        (seconds per deep model).  A model that cannot be built for the shape
        gets ``params`` None and the reason in ``note``.
    """
    rows = []
    for name in available_models():
        spec = get_spec(name)
        shape = tuple(spec.default_input_shape if input_shape is None else input_shape)
        t3 = thesis.TABLE3.get(name)
        row = {
            "name": name, "display_name": spec.display_name, "family": spec.family,
            "input_shape": list(shape), "loss": spec.recipe["loss"], "output": spec.recipe["output"],
            "reference": spec.reference,
            "thesis_params_m": None if t3 is None else t3["params_m"],
            "note": "",
        }
        if min(shape[:2]) < spec.min_size:
            row["note"] = f"needs at least {spec.min_size} x {spec.min_size} px"
        if count_params:
            row["params"] = None
            try:
                model = build(name, shape)
            except InputError as exc:
                row["note"] = row["note"] or str(exc).split(";")[0]
            else:
                row["params"] = _count_params(model)
                del model
        rows.append(row)
    return rows


def format_model_table(rows: list[dict]) -> str:
    """Plain-text table of :func:`model_table` rows (what ``cmlib models`` prints)."""
    counted = any("params" in r for r in rows)
    noted = any(r.get("note") for r in rows)
    header = ["name", "model", "family", "input", "loss/output", "thesis [M]"]
    if counted:
        header.append("params [M]")
    if noted:
        header.append("note")
    lines = []
    for r in rows:
        cells = [r["name"], r["display_name"], r["family"], "x".join(str(v) for v in r["input_shape"]),
                 f"{r['loss']}/{r['output']}",
                 "-" if r["thesis_params_m"] is None else f"{r['thesis_params_m']:.2f}"]
        if counted:
            p = r.get("params")
            cells.append(f"{p / 1e6:.2f}" if p is not None else "n/a")
        if noted:
            cells.append(r.get("note") or "")
        lines.append(cells)
    widths = [max(len(h), *(len(c[i]) for c in lines)) for i, h in enumerate(header)]
    right = {5, 6} if counted else {5}

    def fmt(cells):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    out = [fmt(header), fmt(["-" * w for w in widths])] + [fmt(c) for c in lines]
    out.append("")
    out.append("thesis [M]: trainable parameters in thesis Table 3 (EfficientNet-B7's 21.07 M repeats "
               "VGG19's entry).")
    out.append("Add an architecture with @cmlib.models.register (see `help(cmlib.models)`).")
    return "\n".join(out)


def table3(input_shape: Sequence[int] = (THESIS_PADDED_SIZE, THESIS_PADDED_SIZE, 3)) -> list[dict]:
    """Thesis Table 3 reproduced: trainable parameters and FLOPs of each thesis model.

    Every model of :data:`cmlib.thesis.TABLE3` is built from scratch in the
    thesis configuration (``input_shape``, default 71 x 71 x 3, Flatten head,
    Dense 512; the basic CNN at 50 x 50 with the same bands) and its trainable
    parameters are set beside the thesis's, with the relative difference
    ``measured / thesis - 1``.  ``thesis_consistent`` is False where the thesis's
    entry does not describe its own architecture (EfficientNet-B7: 21.07 M
    repeats VGG19's row; ``note`` says so).  Times per epoch are measured by
    ``benchmarks/bench_models.py``, not here.
    """
    shape = tuple(int(v) for v in input_shape)
    rows = []
    for name, entry in thesis.TABLE3.items():
        spec = get_spec(name)
        s = (IMAGE_SIZE, IMAGE_SIZE, shape[2]) if name == "basic" else shape
        model = build(name, s)
        params = count_params(model)
        flops = count_flops(model, s)
        del model
        rows.append({
            "name": name, "display_name": spec.display_name, "input_shape": list(s),
            "params": params, "params_m": params / 1e6, "thesis_params_m": entry["params_m"],
            "rel_diff": params / 1e6 / entry["params_m"] - 1.0,
            "thesis_consistent": name not in THESIS_PARAMS_INCONSISTENT,
            "flops": flops, "gflops": flops / 1e9,
            "thesis_epoch_s_gpu": entry["epoch_s"],
            "note": thesis.TABLE3_NOTES.get(name, "") if name in THESIS_PARAMS_INCONSISTENT else "",
        })
    return rows
