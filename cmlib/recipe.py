"""A model's training recipe: every option declared once, typed, documented and validated.

Each option is a dataclass field carrying its default, its doc, its choices (a
``Literal`` type) and whether it changes what is computed (``semantic``), after
astropy's ``Parameter(default, unit, doc, fvalidate)``.  :class:`Recipe` holds the
options a model is trained with by default (thesis Table 4, or the model's
paper); :class:`cmlib.config.RunConfig` extends it with the settings of one run.
This module imports nothing heavy: the model registry and pages use it.
"""
from __future__ import annotations

import dataclasses
import math
import os
import typing
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Literal, Mapping

from .errors import InputError

#: Number of photon-energy bands of an image (thesis Table 1) and the thesis's three (2-4, 0-based 1-3).
N_BANDS = 10
THESIS_BANDS = (1, 2, 3)

Pad = Literal["none", "thesis", "center"]
Scaling = Literal["raw", "log1p", "standardize"]
Augment = Literal["none", "flip", "flip-rot90"]
Loss = Literal["mse", "nll"]
Output = Literal["point", "gaussian"]
Optimizer = Literal["adam", "adamw"]
LRSchedule = Literal["constant", "cosine", "warmup-cosine", "plateau"]
Head = Literal["flatten", "gap"]
OutputBias = Literal["zero", "mean", "prior"]
LabelScaling = Literal["none", "standardize"]
Precision = Literal["auto", "float32", "bfloat16"]



def option(default: Any, doc: str, *, semantic: bool = True, check: Callable[[Any], Any] | None = None,
           unit: str = "", cli: bool = True) -> Any:
    """A configuration field: ``default``, ``doc``, whether it changes results, a validator.

    ``check(value)`` returns the normalised value or raises :class:`InputError`.
    ``cli=False`` keeps the field off the ``cmlib train`` command line.
    """
    return field(default=default, metadata={"doc": doc, "semantic": semantic, "check": check, "unit": unit,
                                             "cli": cli})


# ---------------------------------------------------------------- validators

def _int_at_least(lowest: int, what: str = "") -> Callable[[Any], int]:
    def check(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, (int,)) and not (hasattr(v, "__index__")):
            raise InputError(f"{{name}}={v!r} must be an integer >= {lowest}{what}")
        v = int(v)
        if v < lowest:
            raise InputError(f"{{name}}={v!r} must be an integer >= {lowest}{what}")
        return v
    return check


def _number_in(lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = True,
               example: str = "") -> Callable[[Any], float]:
    def check(v: Any) -> float:
        try:
            x = float(v)
        except (TypeError, ValueError):
            x = math.nan
        if isinstance(v, bool) or not math.isfinite(x) or (x <= lo if lo_open else x < lo) or \
                (x >= hi if hi_open else x > hi):
            rng = f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
            raise InputError(f"{{name}}={v!r} must be a number in {rng}{example}")
        return x
    return check


def parse_bands(spec: Any, n_bands: int = N_BANDS) -> tuple[int, ...]:
    """Bands as 0-based indices: ``"thesis"`` (2-4), ``"all"``, ``"2,3,4"`` / ``"1-10"`` (1-based text) or a
    sequence of 0-based indices (what run records store); see :func:`cmlib.data.bands.normalise_bands`."""
    from .data.bands import normalise_bands

    return normalise_bands(spec, n_bands)


def _check_bands(v: Any) -> Any:
    if isinstance(v, str) and v in ("thesis", "all"):
        return v
    return parse_bands(v)


def _check_weights(v: Any) -> str | None:
    if v is None or (isinstance(v, str) and v.strip().lower() in ("", "none")):
        return None
    if not isinstance(v, (str, os.PathLike)):
        raise InputError(f"{{name}}={v!r} must be None (from scratch), 'imagenet' or a weights file path")
    return str(v)


def _check_optional_int(lowest: int) -> Callable[[Any], int | None]:
    inner = _int_at_least(lowest)

    def check(v: Any) -> int | None:
        return None if v is None else inner(v)
    return check


# ---------------------------------------------------------------- the recipe

@dataclass(frozen=True)
class Recipe(Mapping):
    """How a model is trained by default: the thesis's Table 4, or the model's paper.

    Registered with each model (:func:`cmlib.models.register`); a run starts
    from it and overrides what the user asks for (:func:`resolve_config`).
    A recipe reads like a mapping too (``recipe["lr"]``).
    """

    bands: Any = option("thesis", "photon-energy bands: 'thesis' (bands 2-4, 455-1070 eV, thesis Sect. 3.2), "
                        "'all' (10), or 1-based band numbers such as 2,3,4", check=_check_bands)
    pad: Pad = option("thesis", "image padding: 'none' (50 x 50 px), 'thesis' (zero padding to 71 x 71 at the "
                      "bottom/right, thesis Fig. 20) or 'center' (71 x 71, centred)")
    scaling: Scaling = option("raw", "intensity scaling of the photon counts (the thesis used raw counts); "
                              "statistics from the training set only")
    augment: Augment = option("flip", "training augmentation: 'flip' (random flips, thesis Sect. 3.2), "
                              "'flip-rot90' (plus 90-degree rotations, Krippendorf et al. 2023) or 'none'")
    loss: Loss = option("mse", "loss: 'mse' (thesis) or 'nll' (Gaussian negative log-likelihood with a "
                        "predicted variance)")
    output: Output = option("point", "output layer: 'point' (one value) or 'gaussian' (mean and log-variance); "
                            "follows from the loss unless both are given")
    optimizer: Optimizer = option("adam", "optimizer: 'adam' (thesis) or 'adamw' (Adam with decoupled weight "
                                  "decay, Loshchilov & Hutter 2019)")
    lr: float = option(1e-3, "(peak) learning rate", check=_number_in(0.0, 1.0, lo_open=True, example=", e.g. 1e-3"))
    weight_decay: float = option(0.0, "decoupled weight decay of AdamW (0 = none; only with optimizer 'adamw')",
                                 check=_number_in(0.0, 1.0, hi_open=True))
    lr_schedule: LRSchedule = option("constant", "learning-rate schedule: 'constant' (thesis), 'cosine' (cosine "
                                     "decay to 0 over the epochs), 'warmup-cosine' (linear warm-up for "
                                     "warmup_epochs, then cosine decay to 0), 'plateau' (halve after 10 epochs "
                                     "without improvement of the validation loss)")
    warmup_epochs: int = option(0, "epochs of linear learning-rate warm-up ('warmup-cosine' only)",
                                check=_int_at_least(0))
    batch_size: int = option(32, "batch size (thesis: 32)", check=_int_at_least(1))
    early_stopping: int = option(0, "patience: stop after this many epochs without improvement of the "
                                 "validation loss and predict with the best epoch (0 = off: train all epochs, "
                                 "predict with the last)", check=_int_at_least(0))
    min_delta: float = option(0.0, "smallest decrease of the validation loss that counts as an improvement",
                              check=_number_in(0.0, math.inf))
    head: Head = option("flatten", "head after the convolutions: 'flatten' (thesis) or 'gap' (global average "
                        "pooling)")
    dense_units: int = option(512, "units of each dense layer of the head", check=_int_at_least(1))
    dropout: float = option(0.0, "dropout rate before the dense head", check=_number_in(0.0, 1.0))
    output_bias: OutputBias = option("zero", "start of the output layer: 'zero' (Keras default bias, the "
                                     "thesis), 'mean' (bias at the mean training label: a deep model then "
                                     "starts at the answer's scale instead of 14 dex away) or 'prior' (bias at "
                                     "the mean and a zero kernel: the network starts exactly as the label "
                                     "prior, not at mean + a large random term)")
    label_scaling: LabelScaling = option("none", "labels the network learns: 'none' (log10 M500c, thesis) or "
                                         "'standardize' (zero mean, unit variance over the training set; "
                                         "predictions are transformed back)")
    precision: Precision = option("float32", "arithmetic: 'float32', 'bfloat16' (Keras mixed_bfloat16: bf16 "
                                  "compute, float32 weights, output layer and loss) or 'auto' (bfloat16 where "
                                  "the CPU or GPU has bf16 hardware, else float32; resolved when a run is "
                                  "configured and recorded)")
    reference_epochs: int = option(4000, "epochs of the reference training (the thesis's or the paper's)",
                                   semantic=False, check=_int_at_least(1), cli=False)

    # ---- validation
    def __post_init__(self) -> None:
        hints = _hints(type(self))
        for f in fields(self):
            value = getattr(self, f.name)
            choices = _choices(hints.get(f.name))
            if choices is not None and value not in choices:
                raise InputError(f"{f.name}={value!r} is not valid; choose one of {', '.join(map(str, choices))}")
            check = f.metadata.get("check")
            if check is not None:
                try:
                    value = check(value)
                except InputError as exc:
                    raise InputError(str(exc).replace("{name}", f.name)) from None
                object.__setattr__(self, f.name, value)
        if (self.loss == "nll") != (self.output == "gaussian"):
            raise InputError(f"loss 'nll' needs output 'gaussian' and loss 'mse' needs output 'point' "
                             f"(got loss={self.loss!r}, output={self.output!r}); give one of them and the "
                             "other follows")
        if self.weight_decay and self.optimizer != "adamw":
            raise InputError(f"weight_decay={self.weight_decay} needs optimizer 'adamw' (Adam's coupled L2 "
                             "decay is not offered); set optimizer='adamw' or weight_decay=0")
        if self.warmup_epochs and self.lr_schedule != "warmup-cosine":
            raise InputError(f"warmup_epochs={self.warmup_epochs} needs lr_schedule 'warmup-cosine'")

    # ---- mapping view (recipe["lr"], dict(recipe), tuple(recipe) = the field names)
    def __getitem__(self, key: str) -> Any:
        if key not in _field_names(type(self)):
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self):
        return iter(_field_names(type(self)))

    def __len__(self) -> int:
        return len(_field_names(type(self)))

    def replace(self, **changes: Any):
        """A copy with ``changes`` (validated); unknown names are an :class:`InputError`."""
        unknown = sorted(set(changes) - set(_field_names(type(self))))
        if unknown:
            raise InputError(f"unknown option(s) {', '.join(unknown)}; valid: {', '.join(_field_names(type(self)))}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in
                ((f.name, getattr(self, f.name)) for f in fields(self))}

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """Image shape (H, W, C) the recipe implies (bands and padding)."""
        bands = parse_bands(self.bands)
        side = 50 if self.pad == "none" else 71
        return (side, side, len(bands))


def recipe_fields() -> tuple[str, ...]:
    return _field_names(Recipe)


# ---------------------------------------------------------------- reflection helpers

_HINTS: dict[type, dict] = {}


def _hints(cls: type) -> dict:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _choices(tp: Any) -> tuple | None:
    if typing.get_origin(tp) is Literal:
        return typing.get_args(tp)
    return None


def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


def choices(name: str, cls: type = Recipe) -> tuple | None:
    """The allowed values of a categorical option (``choices('pad')``), else None."""
    return _choices(_hints(cls).get(name))
