"""From a cmlib data file to what a model trains on (thesis Sect. 3.2, Table 2, Figs. 20-21).

The data flow of this module::

    HDF5 file --load()--> ClusterData --make_split()--> Split
        --prepare()--> Prepared (per-split float32 arrays, fitted Scaler)
        --epoch_plan(seed, epoch)--> EpochPlan (order, flips, rotations)
        --make_train_input() / make_eval_input()--> tf.data.Dataset or keras PyDataset
        yielding ({"image": (B, H, W, C), "redshift": (B, 1)}, y (B, 1))

Conventions
-----------
* Bands: the CLI and the book speak 1-based band numbers of thesis Table 1
  (``"2,3,4"``, ``"thesis"``, ``"all"``, ``"1-10"``); the Python objects hold
  zero-based indices (``ClusterData.bands``).  :func:`parse_bands` converts.
  Sequences of integers given to :func:`load` or :func:`prepare` are
  zero-based.  The order given is the channel order (no sorting).
* Augmentation happens on the un-padded 50 x 50 image and padding comes after
  it.  With the thesis's padding (21 px at the bottom and right, Figs. 20-21)
  the cluster therefore stays in the top-left 50 x 50 corner, as in every
  thesis image; flipping a padded image would move it to another corner, which
  a network then has to learn as a nuisance.  The composition order of the
  augmentation ops is fixed: ``flip_lr``, then ``flip_ud``, then ``rot90(k)``.
* Padding is done after intensity scaling and pads with 0 in the network's
  input units: "no photons" for ``raw`` and ``log1p`` (as in the thesis), the
  training-set band mean for ``standardize``.
* Every random choice comes from ``np.random.default_rng`` with an explicit
  seed: the split from the split seed, the epoch's order and augmentation from
  ``default_rng([seed, epoch])``, so a run resumed at epoch k sees exactly the
  batches an uninterrupted run would have seen, on every backend.

Layout (one concept per module): ``bands``, ``io`` (load and validate),
``describe`` (``cmlib info``), ``splits``, ``transforms`` (padding, flips,
scaling), ``prepare``, ``pipeline`` (epoch plans, tf.data / PyDataset inputs),
``examples`` (the book's Fig. 21).  The LMU lab-course importer is its own
module, :mod:`cmlib.lmu`.
"""
from __future__ import annotations

from ..errors import DataFileError, InputError  # noqa: F401  (raised by every function here)
from .bands import parse_bands, select_bands
from .describe import describe, format_description
from .examples import pipeline_example
from .io import READ_BLOCK, ClusterData, load
from .pipeline import (ArrayBatches, EpochPlan, array_dataset, epoch_plan, make_eval_input, make_run_input,
                       make_train_input, tf_dataset)
from .prepare import Prepared, PreparedSplit, prepare
from .splits import SPLITS, Split, available_splits, make_split, table2_counts
from .transforms import (AUGMENT_MODES, PAD_MODES, SCALING_MODES, THESIS_PAD_SIZE, Scaler, augment_batch, flip_lr,
                         flip_ud, pad_images, rot90)

__all__ = [
    "ClusterData", "load", "describe", "format_description", "READ_BLOCK",
    "Split", "SPLITS", "available_splits", "make_split",
    "parse_bands", "select_bands", "pad_images", "PAD_MODES", "THESIS_PAD_SIZE",
    "flip_lr", "flip_ud", "rot90", "augment_batch", "AUGMENT_MODES",
    "Scaler", "SCALING_MODES", "prepare", "Prepared", "PreparedSplit",
    "EpochPlan", "epoch_plan", "tf_dataset", "array_dataset", "ArrayBatches",
    "make_train_input", "make_eval_input", "make_run_input", "table2_counts", "pipeline_example",
]


def __getattr__(name: str):
    """``cmlib.data.import_lmu``: the LMU importer lives in :mod:`cmlib.lmu`, imported on first use."""
    if name == "import_lmu":
        from ..lmu import import_lmu

        return import_lmu
    raise AttributeError(f"module 'cmlib.data' has no attribute '{name}'")
