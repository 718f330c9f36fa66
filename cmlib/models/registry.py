"""The model registry: every architecture under a short name, with its builder and training recipe.

A builder is ``fn(input_shape, **options) -> keras.Model``; :func:`register`
files it under a name with its provenance and its :class:`~cmlib.config.Recipe`,
and :func:`build` validates the options and builds it.  Nothing here imports
Keras at module level: listing the models starts no backend.
"""
from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..recipe import Recipe, choices
from ..errors import DataFileError, InputError
from .layers import seeded
from .weights import _imagenet_url, imagenet_weights_file

# --------------------------------------------------------------------------- constants

#: Families of the built-in architectures (a registered model may name a new one).
FAMILIES = ("basic", "baseline", "vgg", "resnet", "resnet-v2", "efficientnet")

#: Image side after the thesis's padding: 50 px + 21 px (bottom/right), Sect. 3.2, Fig. 20.
#: The thesis pads because it believed ResNet needs 71 px; keras.applications with
#: include_top=False accept 32 px, so the padding is a choice kept for comparability.
THESIS_PADDED_SIZE = 71

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


# --------------------------------------------------------------------------- registry

@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """A registered architecture: its builder, its provenance and its training recipe.

    Attributes
    ----------
    name : str
        Registry key (``"resnet50v2"``).
    display_name : str
        Name as the thesis writes it (``"ResNet50V2"``).
    family : str
        ``"basic"``, ``"baseline"``, ``"vgg"``, ``"resnet"``, ``"resnet-v2"``, ``"efficientnet"``...
    reference : str
        The paper that defines the architecture.
    description : str
        One sentence on what is built.
    recipe : Recipe
        Training defaults (frozen), see :class:`cmlib.config.Recipe`.
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
    recipe: Recipe
    builder: Callable[..., Any]
    min_size: int = 32

    @property
    def default_input_shape(self) -> tuple[int, int, int]:
        """Image shape (H, W, C) of the recipe: bands and padding, e.g. (71, 71, 3)."""
        return self.recipe.input_shape

    def build(self, input_shape: Sequence[int] | None = None, **options: Any):
        """Build this architecture; see :func:`build`."""
        return build(self.name, input_shape, **options)


_REGISTRY: dict[str, ModelSpec] = {}
_NAME_RE = re.compile(r"^[a-z][a-z0-9_.-]*$")


def register(name: str, *, display_name: str | None = None, family: str, reference: str,
             recipe: Recipe, description: str, min_size: int = 32,
             overwrite: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: register ``fn(input_shape, **options) -> keras.Model`` under ``name``.

    Parameters
    ----------
    name : str
        Lower-case key (letters, digits, ``_ . -``), used by ``cmlib train --model``.
    display_name : str, optional
        Name for tables, plots and pages (default ``name``).
    family, reference, description : str
        Architecture family, defining paper, one-sentence description.
    recipe : Recipe
        Training defaults (:class:`cmlib.config.Recipe`, e.g. ``make_recipe(BASIC_RECIPE, lr=1e-4)``).
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
    if not isinstance(recipe, Recipe):
        raise InputError(f"the recipe of '{name}' must be a cmlib.config.Recipe; start from "
                         "cmlib.models.make_recipe(base, **changes)")
    frozen_recipe = recipe

    def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
        _REGISTRY[name] = ModelSpec(
            name=name, display_name=display_name or name,
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
        if opts[key] not in choices(key):
            raise InputError(f"{key}={opts[key]!r} is not valid; use one of "
                             f"{', '.join(repr(c) for c in choices(key))}")
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
    with seeded(opts["seed"]):
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
