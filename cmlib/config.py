"""Typed run configuration: one run's :class:`RunConfig` (a model's :class:`~cmlib.recipe.Recipe` plus the run's own settings).

Every option is declared once, here, as a dataclass field carrying its
default, its doc, its choices (a ``Literal`` type) and whether it changes what
is computed (``semantic``).  From these declarations come

* the validation (per field, with a message naming the fix),
* the run's identity (:meth:`RunConfig.group_key`: a hash of the semantic
  fields except the seed, the name of the run's directory),
* the ``cmlib train`` command-line options (:func:`cli_options`),
* the upgrade of older run records (:func:`upgrade`, ``config_version``).

Adding a training option means adding a field here and using it where it acts
(the training engine); nothing else. The pattern follows astropy's
``Parameter(default, unit, doc, fvalidate)``.

This module imports neither Keras nor TensorFlow nor h5py at import time, so
pages and tools that only *find* runs stay light.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal, Mapping

from ._io import stable_hash
from .errors import DataFileError, InputError
from .recipe import (N_BANDS, THESIS_BANDS, Augment, Head, LabelScaling, Loss, LRSchedule, Optimizer,  # noqa: F401
                     Output, OutputBias, Pad, Precision, Recipe, Scaling, _check_optional_int, _check_weights,
                     _choices, _field_names, _hints, _int_at_least, option, parse_bands, recipe_fields)

#: Version of the run-record format written to ``config.json``. Version 1 (no
#: ``config_version`` key) was the untyped dict of cmlib 0.1; :func:`upgrade` reads it.
CONFIG_VERSION = 2

#: Seeds are 31-bit integers (NumPy, TensorFlow and JAX accept them everywhere); at most this many per call.
MAX_SEED = 2 ** 31 - 1
MAX_SEEDS_PER_CALL = 1000

SplitName = Literal["thesis", "train-val-test"]


# ---------------------------------------------------------------- the run

@dataclass(frozen=True)
class RunConfig(Recipe):
    """Everything that defines one training run: a resolved recipe plus the run's own settings.

    Two runs with the same :meth:`group_key` and seed compute the same thing;
    the run directory is ``<runs>/<model>/<group_key>/seed-<NN>``.
    Build it with :func:`resolve_config`; read a stored one with :meth:`from_dict`.
    """

    model: str = option("", "registered model name (see `cmlib models`)", cli=False)
    epochs: int = option(1, "maximum number of epochs (the schedule's length)", check=_int_at_least(1), cli=False)
    seed: int = option(0, "random seed of the initial weights and of the data order and augmentation",
                       check=_int_at_least(0), cli=False)
    split: SplitName = option("thesis", "data split: 'thesis' (90/10, the test set doubles as validation "
                              "set, thesis Table 2) or 'train-val-test' (80/10/10, stratified)")
    split_seed: int = option(0, "seed of the split", check=_int_at_least(0))
    max_clusters: int | None = option(None, "use only the first N clusters of the file (smoke runs)",
                                      check=_check_optional_int(8))
    weights: str | None = option(None, "initial weights: none (from scratch) or a local ImageNet weights file",
                                 check=_check_weights)
    adapter: bool = option(False, "a trainable 1x1 Conv2D(3) in front (ImageNet weights with any band count)")
    data_sha256: str = option("", "content hash of the data file (images and labels)", cli=False)
    # not semantic: where and how, not what
    data: str = option("", "data file, relative to the working directory where possible", semantic=False,
                       cli=False)
    n_clusters: int = option(0, "clusters in the data file", semantic=False, cli=False)
    profile: str = option("custom", "the book profile (compute budget) that asked for the run", semantic=False,
                          cli=False)
    run_eagerly: bool = option(False, "run Keras eagerly (no graph tracing: faster for tiny smoke runs; does "
                               "not change what is computed)", semantic=False)
    config_version: int = option(CONFIG_VERSION, "version of this record's format", semantic=False, cli=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.bands, tuple):
            object.__setattr__(self, "bands", parse_bands(self.bands))
        if self.precision == "auto":
            raise InputError("precision 'auto' must be resolved before a run is configured; use resolve_config()")
        if not isinstance(self.adapter, bool):
            raise InputError(f"adapter={self.adapter!r} must be true or false")

    @property
    def predict_with(self) -> str:
        """'best' (the epoch of lowest validation loss) with early stopping, else 'last'."""
        return "best" if self.early_stopping > 0 else "last"

    def semantic_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self) if f.metadata["semantic"]}

    def group_key(self) -> str:
        """The identity of the experiment: a hash of every semantic field except the seed."""
        return stable_hash({k: v for k, v in self.semantic_dict().items() if k != "seed"}, 10)

    def identity(self) -> str:
        """The identity of this run: ``<model>/<group_key>/seed-<NN>``."""
        return f"{self.model}/{self.group_key()}/seed-{self.seed:02d}"

    def run_dir(self, runs_dir: str | os.PathLike) -> Path:
        return Path(runs_dir) / self.identity()

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> "RunConfig":
        """A stored record (any ``config_version``) as a :class:`RunConfig`."""
        rec = upgrade(record)
        unknown = sorted(set(rec) - set(_field_names(cls)))
        if unknown:
            raise InputError(f"the run record has unknown key(s) {', '.join(unknown)}: it was written by a newer "
                             "cmlib; update cmlib to read it")
        return cls(**rec)


def _plain(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


def choices(name: str) -> tuple | None:
    """The allowed values of a categorical run option (``choices('pad')``, ``choices('split')``), else None."""
    return _choices(_hints(RunConfig).get(name))


def describe_option(name: str) -> dict:
    """Doc, default, choices and whether an option changes results (for docs, CLI and notebooks)."""
    f = {f.name: f for f in fields(RunConfig)}.get(name)
    if f is None:
        raise InputError(f"unknown option '{name}'")
    return {"name": name, "doc": f.metadata["doc"], "default": f.default, "choices": choices(name),
            "semantic": f.metadata["semantic"], "type": _hints(RunConfig)[name]}


def overridable() -> tuple[str, ...]:
    """The options a user may set on top of a recipe (``cmlib train --<option>``)."""
    return tuple(f.name for f in fields(RunConfig) if f.metadata["cli"])


def cli_options() -> list[dict]:
    """One entry per ``cmlib train`` option: flag, type, choices, help (generated from the fields)."""
    out = []
    hints = _hints(RunConfig)
    for name in overridable():
        tp = hints[name]
        ch = _choices(tp)
        if ch is not None:
            conv: Any = str
        elif name in ("adapter", "run_eagerly"):
            conv = _parse_bool
        elif tp in (int, "int") or name in ("batch_size", "early_stopping", "warmup_epochs", "dense_units",
                                             "split_seed", "max_clusters"):
            conv = int
        elif tp in (float,):
            conv = float
        else:
            conv = str
        out.append({"name": name, "flag": "--" + name.replace("_", "-"), "type": conv, "choices": ch,
                    "help": describe_option(name)["doc"]})
    return out


def _parse_bool(text: str) -> bool:
    t = str(text).strip().lower()
    if t in ("1", "true", "yes", "on"):
        return True
    if t in ("0", "false", "no", "off"):
        return False
    raise InputError(f"'{text}' is not true or false")


# ---------------------------------------------------------------- upgrade of older records

def upgrade(record: Mapping[str, Any]) -> dict[str, Any]:
    """Bring a stored configuration record to :data:`CONFIG_VERSION` (explicit, field by field).

    Version 1 (cmlib 0.1, no ``config_version``): an untyped dict; ``output_bias``
    absent meant 'zero'; ``predict_with`` was stored (now derived from
    ``early_stopping``); the options added in version 2 (optimizer, weight decay,
    warm-up, label scaling, precision) did not exist and took the values that
    reproduce version 1's computation; ``data`` could be an absolute path.
    """
    rec = dict(record)
    version = int(rec.get("config_version", 1))
    if version > CONFIG_VERSION:
        raise InputError(f"the run record has config_version {version}, newer than this cmlib's "
                         f"{CONFIG_VERSION}; update cmlib")
    if version == 1:
        rec.pop("predict_with", None)
        rec.setdefault("output_bias", "zero")
        rec.update(optimizer="adam", weight_decay=0.0, warmup_epochs=0, label_scaling="none",
                   precision="float32")
        rec["data"] = portable_path(rec.get("data", ""))
        rec["config_version"] = 2
    return rec


def portable_path(path: str | os.PathLike, root: str | os.PathLike | None = None) -> str:
    """A path as stored in a record: relative to ``root`` (default: the working directory) when inside it.

    A path outside it keeps only its last two parts (``data/file.h5``): a record never holds
    a machine's absolute paths; the content hash identifies the file.
    """
    if not str(path):
        return ""
    p = Path(path)
    if not p.is_absolute():
        return p.as_posix()
    base = Path(root) if root is not None else Path.cwd()
    try:
        return p.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return Path(*p.parts[-2:]).as_posix()


# ---------------------------------------------------------------- resolving a run

def resolve_precision(value: str) -> str:
    """'auto' -> 'bfloat16' where the hardware has bf16 units, else 'float32' (see :mod:`cmlib.train.precision`)."""
    if value != "auto":
        return value
    from .hardware import has_bf16_hardware

    return "bfloat16" if has_bf16_hardware() else "float32"


#: Run options that change a run by round-off only: bf16 against float32 arithmetic (the precision check,
#: ``benchmarks/precision_check.py``, and ResNet50V2's three fair-protocol seeds: test std(x) 0.296 +- 0.001 dex
#: in bf16, 0.297 +- 0.002 in float32).  Runs whose configurations differ only in these are the same
#: experiment: a page that asks for one accepts the other (:func:`cmlib.artifacts.find_config_runs`), and a
#: machine without bf16 units trains a planned bf16 run in float32 (:func:`precision_for_this_machine`).
ROUND_OFF_FIELDS = ("precision",)


def round_off_variants(cfg: RunConfig) -> list[RunConfig]:
    """``cfg`` in the other arithmetic precisions (:data:`ROUND_OFF_FIELDS`): the same experiment, other run
    directories."""
    from dataclasses import replace

    return [replace(cfg, precision=p) for p in choices("precision") if p not in ("auto", cfg.precision)]


def precision_for_this_machine(value: str) -> str:
    """The precision in which this machine should train a run planned in ``value``.

    'auto' is resolved (:func:`resolve_precision`); a planned 'bfloat16' becomes 'float32' where the
    hardware has no bf16 units: there XLA emulates bf16, many times slower (a fair-protocol ResNet50 epoch
    on 2 AVX2 cores without bf16 units had not finished after 20 min), and float32 changes the run by
    round-off only (:data:`ROUND_OFF_FIELDS`).
    """
    return resolve_precision("auto" if value == "bfloat16" else value)


def data_identity(path: str | os.PathLike) -> dict:
    """Content hash and size of a data file, from its header (cheap; full validation happens on load)."""
    p = Path(path)
    if not p.is_file():
        raise DataFileError(f"data file '{p}' does not exist; create it with `cmlib simulate --out {p}` "
                            f"or `cmlib import-lmu ... --out {p}`")
    try:
        import h5py

        with h5py.File(p, "r") as f:
            sha = str(f.attrs["content_sha256"])
            n = int(f.attrs["n_clusters"])
    except (OSError, KeyError) as exc:
        raise DataFileError(f"'{p}' is not a readable cmlib data file ({exc}); check it with "
                            f"`cmlib info {p}`") from None
    return {"content_sha256": sha, "n_clusters": n}


def resolve_config(model: str, data: str | os.PathLike, *, epochs: int, seed: int = 0, profile: str = "custom",
                   data_sha256: str | None = None, n_clusters: int | None = None,
                   **overrides: Any) -> RunConfig:
    """The configuration of one run: the model's recipe, then ``overrides``.

    ``data_sha256`` (with ``n_clusters``) names the data by its content hash without
    opening the file (what pages do when they look for runs); otherwise the
    file's header is read.

    Raises :class:`InputError` for unknown options or invalid values, and
    :class:`DataFileError` if ``data`` is not a readable data file.
    """
    from .models.registry import get_spec

    spec = get_spec(model)
    allowed = set(overridable())
    unknown = sorted(set(overrides) - allowed)
    if unknown:
        raise InputError(f"unknown training option(s) {', '.join(unknown)}; valid: {', '.join(sorted(allowed))}")
    ov = {k: v for k, v in overrides.items() if v is not None or k in ("weights", "max_clusters")}
    # a loss implies its output layer (and vice versa) unless both are given
    if "loss" in ov and "output" not in ov:
        ov["output"] = "gaussian" if ov["loss"] == "nll" else "point"
    if "output" in ov and "loss" not in ov:
        ov["loss"] = "nll" if ov["output"] == "gaussian" else "mse"
    recipe = spec.recipe.replace(**{k: v for k, v in ov.items() if k in recipe_fields()})
    run_fields = {k: v for k, v in ov.items() if k not in recipe_fields()}
    if data_sha256 is None:
        info = data_identity(data)
        data_sha256, n_clusters = info["content_sha256"], info["n_clusters"]
    values = {**recipe.to_dict(), **run_fields}
    values["precision"] = resolve_precision(values["precision"])
    values["bands"] = parse_bands(values["bands"])
    return RunConfig(model=model, epochs=epochs, seed=seed, profile=profile, data=portable_path(data),
                     data_sha256=str(data_sha256), n_clusters=int(n_clusters or 0), **values)


def parse_seeds(value: Any) -> list[int]:
    """Seeds from a list, an int, or text: ``'0-9'``, ``'0,3,5'``, ``'[0, 1, 2]'`` (bounded, never expanded blindly)."""
    if value is None:
        raise InputError("no seeds given")
    items: list[tuple[int, int]] = []
    if isinstance(value, int) and not isinstance(value, bool):
        items = [(value, value)]
    elif isinstance(value, str):
        text = value.strip().strip("[]()").replace(" ", "")
        try:
            for part in filter(None, text.split(",")):
                if "-" in part[1:]:
                    lo, hi = (int(v) for v in part.split("-", 1))
                    if hi < lo:
                        raise ValueError
                    items.append((lo, hi))
                else:
                    items.append((int(part), int(part)))
        except ValueError:
            raise InputError(f"invalid seed list '{value}': use 4, 0-9, 0,3,5 or [0, 1, 2]") from None
    else:
        try:
            items = [(int(s), int(s)) for s in value]
        except (TypeError, ValueError):
            raise InputError(f"invalid seed list {value!r}: give non-negative integers") from None
    if not items:
        raise InputError(f"invalid seed list {value!r}: give at least one non-negative integer")
    if any(lo < 0 or hi > MAX_SEED for lo, hi in items):
        raise InputError(f"invalid seed list {value!r}: seeds must be integers from 0 to {MAX_SEED}")
    count = sum(hi - lo + 1 for lo, hi in items)
    if count > MAX_SEEDS_PER_CALL:
        raise InputError(f"{count} seeds requested; at most {MAX_SEEDS_PER_CALL} per command (the thesis used 10)")
    seeds = [s for lo, hi in items for s in range(lo, hi + 1)]
    return list(dict.fromkeys(seeds))
