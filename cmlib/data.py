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

The LMU lab-course importer lives in :mod:`cmlib.lmu` and is re-exported here
as :func:`import_lmu`.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from . import schema
from ._env import import_keras
from .errors import DataFileError, InputError
from .lmu import import_lmu  # noqa: F401  (the LMU importer; astropy/pyarrow load only when it runs)

__all__ = [
    "ClusterData", "load", "describe", "format_description", "import_lmu",
    "Split", "SPLITS", "available_splits", "make_split",
    "parse_bands", "select_bands", "pad_images", "PAD_MODES",
    "flip_lr", "flip_ud", "rot90", "augment_batch", "AUGMENT_MODES",
    "Scaler", "SCALING_MODES", "prepare", "Prepared", "PreparedSplit",
    "EpochPlan", "epoch_plan", "tf_dataset", "array_dataset", "ArrayBatches",
    "make_train_input", "make_eval_input", "table2_counts", "pipeline_example",
]

#: Clusters read per block when streaming /images (about 51 MB of float32 at 10 bands).
READ_BLOCK = 512
#: Padded image size of the thesis's deep models (thesis Sect. 3.2, Fig. 20).
THESIS_PAD_SIZE = 71
PAD_MODES = ("none", "thesis", "center")
AUGMENT_MODES = ("none", "flip", "flip-rot90")
SCALING_MODES = ("raw", "log1p", "standardize")

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_CREATE_HINT = ("create one with `cmlib simulate --out FILE` (mock catalogue) or "
                "`cmlib import-lmu IMAGES.pickle CATALOG --out FILE` (LMU lab-course files)")


# =========================================================================== bands

def parse_bands(spec: str | int, n_bands: int = schema.N_BANDS) -> tuple[int, ...]:
    """Parse a band specification into zero-based band indices.

    Parameters
    ----------
    spec : str or int
        ``"thesis"`` (bands 2-4, 455-1070 eV, thesis Sect. 3.2), ``"all"``,
        a 1-based comma list ``"2,3,4"``, ranges ``"1-10"`` or ``"1-3,7"``,
        or a single 1-based band number.  Band numbers are those of thesis
        Table 1, as the book and the command line speak them.
    n_bands : int
        Number of bands in the data (10 for the thesis data).

    Returns
    -------
    tuple of int
        Zero-based indices in the order given, e.g. ``"2,3,4"`` -> ``(1, 2, 3)``.

    Raises
    ------
    InputError
        For band numbers outside 1..n_bands (0 included), duplicates, empty
        or malformed specifications.
    """
    if isinstance(spec, (bool, np.bool_)):
        raise InputError(f"invalid band specification {spec!r}: use 'thesis', 'all' or numbers such as '2,3,4'")
    if isinstance(spec, (int, np.integer)):
        spec = str(int(spec))
    if not isinstance(spec, str):
        raise InputError(
            f"invalid band specification {spec!r} ({type(spec).__name__}): use a string such as "
            "'thesis', 'all', '2,3,4' or '1-10' (1-based band numbers of thesis Table 1)")
    text = spec.strip().lower()
    if text == "thesis":
        if n_bands < max(schema.THESIS_BANDS) + 1:
            raise InputError(f"bands='thesis' (bands 2-4) needs at least 4 bands; the data has {n_bands}")
        return tuple(schema.THESIS_BANDS)
    if text == "all":
        return tuple(range(n_bands))
    out: list[int] = []
    hint = (f"use 1-based band numbers 1-{n_bands} of thesis Table 1, e.g. '2,3,4', '1-10', "
            "'thesis' or 'all'")
    if not text:
        raise InputError(f"empty band specification: {hint}")
    for part in text.split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)\s*-\s*(\d+)", part)
        if m:
            lo, hi = int(m.group(1)), int(m.group(2))
            if hi < lo:
                raise InputError(f"invalid band range '{part}' in '{spec}': the range runs backwards; "
                                 f"write it as '{hi}-{lo}'")
            numbers = list(range(lo, hi + 1))
        elif re.fullmatch(r"\d+", part):
            numbers = [int(part)]
        else:
            raise InputError(f"invalid band specification '{spec}' ('{part}' is not a number): {hint}")
        for b in numbers:
            if not 1 <= b <= n_bands:
                raise InputError(f"band {b} in '{spec}' does not exist: bands are numbered 1-{n_bands} "
                                 f"(1-based, thesis Table 1); {hint}")
            if b - 1 in out:
                raise InputError(f"band {b} appears twice in '{spec}': list each band once")
            out.append(b - 1)
    return tuple(out)


def _normalise_bands(bands, n_bands: int, what: str = "bands") -> tuple[int, ...]:
    """``None`` -> all; str/int -> :func:`parse_bands` (1-based); sequence -> zero-based, checked."""
    if bands is None:
        return tuple(range(n_bands))
    if isinstance(bands, (str, int, np.integer)) and not isinstance(bands, bool):
        return parse_bands(bands, n_bands)
    try:
        idx = tuple(int(b) for b in bands)
    except (TypeError, ValueError):
        raise InputError(f"{what} must be a band specification string ('thesis', '2,3,4') or a sequence "
                         f"of zero-based band indices, got {bands!r}") from None
    if not idx:
        raise InputError(f"{what} is empty: select at least one band")
    bad = [b for b in idx if not 0 <= b < n_bands]
    if bad:
        raise InputError(f"{what} {idx} holds zero-based indices {bad} outside 0..{n_bands - 1}; "
                         "zero-based sequences index the data's bands (use a string such as '2,3,4' "
                         "for 1-based band numbers)")
    if len(set(idx)) != len(idx):
        raise InputError(f"{what} {idx} lists a band twice: list each band once")
    return idx


def select_bands(images: np.ndarray, bands: Sequence[int]) -> np.ndarray:
    """Channels ``bands`` (zero-based, in that order) of ``(..., H, W, C)`` images, as a new array."""
    images = np.asarray(images)
    if images.ndim < 3:
        raise InputError(f"select_bands expects images (..., H, W, C); got shape {images.shape}")
    idx = _normalise_bands(bands, images.shape[-1])
    if idx == tuple(range(images.shape[-1])):
        return images.copy()
    return np.ascontiguousarray(images[..., list(idx)])


# =========================================================================== padding

def _pad_widths(mode: str, height: int, width: int, size: int) -> tuple[tuple[int, int], tuple[int, int]]:
    if mode not in PAD_MODES:
        raise InputError(f"unknown padding mode '{mode}': choose one of {', '.join(PAD_MODES)}")
    if mode == "none":
        return (0, 0), (0, 0)
    if size < max(height, width):
        raise InputError(f"cannot pad {height}x{width} images to {size}x{size}: size must be at least "
                         f"{max(height, width)} (the thesis pads 50 -> 71)")
    dh, dw = size - height, size - width
    if mode == "thesis":
        # Thesis Sect. 3.2, Figs. 20-21: 21 px of zeros appended at the bottom and the right;
        # the cluster stays in the top-left 50 x 50 corner.
        return (0, dh), (0, dw)
    # centred: 10 px before, 11 px after for 50 -> 71
    return (dh // 2, dh - dh // 2), (dw // 2, dw - dw // 2)


def pad_images(images: np.ndarray, mode: str = "thesis", size: int = THESIS_PAD_SIZE) -> np.ndarray:
    """Pad ``(H, W, C)`` or ``(N, H, W, C)`` images with zeros to ``size x size``.

    Parameters
    ----------
    images : ndarray
        One image (H, W, C) or a batch (N, H, W, C).
    mode : {"thesis", "center", "none"}
        ``"thesis"``: zeros appended at the bottom and right (thesis Fig. 20;
        the cluster stays top-left); ``"center"``: centred (10 px before and
        11 px after for 50 -> 71); ``"none"``: the images unchanged.
    size : int
        Output height and width (71 in the thesis).
    """
    images = np.asarray(images)
    if images.ndim not in (3, 4):
        raise InputError(f"pad_images expects (H, W, C) or (N, H, W, C) images; got shape {images.shape}")
    h, w = images.shape[-3], images.shape[-2]
    (top, bottom), (left, right) = _pad_widths(mode, h, w, size)
    if mode == "none":
        return images
    out = np.zeros(images.shape[:-3] + (h + top + bottom, w + left + right, images.shape[-1]),
                   dtype=images.dtype)
    out[..., top:top + h, left:left + w, :] = images
    return out


# =========================================================================== augmentation

def _check_nhwc(images: np.ndarray, what: str) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 4:
        raise InputError(f"{what} expects an NHWC batch (N, H, W, C); got shape {images.shape}")
    return images


def flip_lr(images: np.ndarray) -> np.ndarray:
    """Mirror an NHWC batch left-right (reverse the width axis); returns a new array."""
    return np.ascontiguousarray(_check_nhwc(images, "flip_lr")[:, :, ::-1, :])


def flip_ud(images: np.ndarray) -> np.ndarray:
    """Mirror an NHWC batch up-down (reverse the height axis); returns a new array."""
    return np.ascontiguousarray(_check_nhwc(images, "flip_ud")[:, ::-1, :, :])


def rot90(images: np.ndarray, k: int = 1) -> np.ndarray:
    """Rotate an NHWC batch by ``k`` x 90 degrees counter-clockwise (``np.rot90`` on axes 1, 2)."""
    images = _check_nhwc(images, "rot90")
    if int(k) % 4 and images.shape[1] != images.shape[2]:
        raise InputError(f"rot90 needs square images; got {images.shape[1]}x{images.shape[2]}")
    return np.ascontiguousarray(np.rot90(images, int(k) % 4, axes=(1, 2)))


def augment_batch(images: np.ndarray, flip_lr_mask, flip_ud_mask, rot_k) -> np.ndarray:
    """Per-image augmentation of an NHWC batch, vectorised over the batch.

    Image ``i`` is flipped left-right if ``flip_lr_mask[i]``, then up-down if
    ``flip_ud_mask[i]``, then rotated by ``rot_k[i]`` x 90 degrees.  This is
    the definition of the augmentation: the fast input paths
    (:class:`ArrayBatches`, :func:`tf_dataset`) read precomputed copies whose
    layout is derived from this function (:func:`_store_layout`), and the
    tests check them against it batch by batch.
    """
    x = _check_nhwc(images, "augment_batch")
    lr = np.asarray(flip_lr_mask, dtype=bool)
    ud = np.asarray(flip_ud_mask, dtype=bool)
    rk = np.asarray(rot_k, dtype=np.int64) % 4
    if not (len(lr) == len(ud) == len(rk) == len(x)):
        raise InputError(f"augment_batch: {len(x)} images but masks of lengths {len(lr)}, {len(ud)}, {len(rk)}")
    x = np.where(lr[:, None, None, None], x[:, :, ::-1, :], x)
    x = np.where(ud[:, None, None, None], x[:, ::-1, :, :], x)
    if rk.any():
        if x.shape[1] != x.shape[2]:
            raise InputError(f"90-degree rotations need square images; got {x.shape[1]}x{x.shape[2]}")
        out = x.copy()
        for k in (1, 2, 3):
            sel = rk == k
            if sel.any():
                out[sel] = np.rot90(x[sel], k, axes=(1, 2))
        x = out
    return np.ascontiguousarray(x)


#: Training-split copies used by the augmentation store: 0 identity, 1 flip_lr, 2 transpose,
#: 3 flip_lr of the transpose (copies 2-3 only for 90-degree rotations).
_STORE_COPIES = (lambda x: x, lambda x: x[:, :, ::-1], lambda x: x.transpose(0, 2, 1, 3),
                 lambda x: x.transpose(0, 2, 1, 3)[:, :, ::-1])


def _store_layout() -> np.ndarray:
    """(16, 2) table: augmentation ``lr + 2 ud + 4 k`` -> (store copy, rows reversed).

    Every flip/rotation of :func:`augment_batch` is one of the 8 symmetries of
    the square: one of the four copies in :data:`_STORE_COPIES` with its rows
    kept or reversed.  Found by applying :func:`augment_batch` to a probe
    image, so the fast path agrees with it by construction.
    """
    probe = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    table = np.full((16, 2), -1, np.int8)
    for combo in range(16):
        want = augment_batch(probe, [combo & 1], [(combo >> 1) & 1], [combo >> 2])
        for copy, make in enumerate(_STORE_COPIES):
            for rev in (0, 1):
                v = make(probe)
                if table[combo, 0] < 0 and np.array_equal(v[:, ::-1] if rev else v, want):
                    table[combo] = (copy, rev)
    if (table < 0).any():  # pragma: no cover - a bug in augment_batch would land here
        raise RuntimeError("augmentation store layout is incomplete")
    return table


_LAYOUT = _store_layout()


# =========================================================================== loading

@dataclass(repr=False)
class ClusterData:
    """The clusters of a data file, loaded and validated.

    Attributes
    ----------
    images : ndarray, float32, (N, 50, 50, C)
        Photon counts of the selected bands.
    log_m500, z : ndarray, float64, (N,)
        Label log10(M500c / Msun) and redshift.
    cluster_id : ndarray, int64, (N,)
    catalog : dict of ndarray
        Every /catalog column (first N rows); strings as ``str`` arrays.
    catalog_units : dict of str
        The ``unit`` attribute of each catalogue column ("" if none).
    attrs : dict
        Root attributes, decoded (bytes -> str, numpy scalars -> Python).
    bands : tuple of int
        Zero-based file band of each image channel.
    path : Path
    content_sha256 : str
        The file's content hash attribute (covers the whole file).
    n_file : int
        Number of clusters in the file (``max_clusters`` may load fewer).
    """

    images: np.ndarray
    log_m500: np.ndarray
    z: np.ndarray
    cluster_id: np.ndarray
    catalog: dict
    attrs: dict
    bands: tuple
    path: Path
    content_sha256: str
    catalog_units: dict = field(default_factory=dict)
    n_file: int = 0

    @property
    def n(self) -> int:
        """Number of clusters loaded."""
        return int(self.images.shape[0])

    @property
    def band_edges_ev(self) -> np.ndarray:
        """Band edges of the file [eV]."""
        return np.asarray(self.attrs.get("band_edges_ev", schema.BAND_EDGES_EV), dtype=float)

    def band_labels(self) -> list[str]:
        """Labels of the loaded channels, e.g. ``'band 2: 455-660 eV'``."""
        e = self.band_edges_ev
        return [f"band {b + 1}: {e[b]:.0f}\u2013{e[b + 1]:.0f} eV" for b in self.bands]

    def __repr__(self) -> str:
        return (f"ClusterData(n={self.n} of {self.n_file}, images={self.images.shape} float32, "
                f"bands={tuple(b + 1 for b in self.bands)} (1-based), path='{self.path}', "
                f"content_sha256={self.content_sha256[:12]}...)")


def _decode(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray) and value.dtype.kind in "SO":
        return [_decode(v) for v in value.tolist()]
    return value


def _has_hdf5_signature(path: Path) -> bool:
    """HDF5 files carry their signature at byte 0, 512, 1024, 2048, ..."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        offset = 0
        while offset + 8 <= size:
            fh.seek(offset)
            if fh.read(8) == _HDF5_SIGNATURE:
                return True
            offset = 512 if offset == 0 else offset * 2
    return False


def _open_h5(path) -> "Any":
    import h5py

    p = Path(path)
    if not p.exists():
        raise DataFileError(f"data file '{p}' does not exist. Check the path, or {_CREATE_HINT}.")
    if p.is_dir():
        raise DataFileError(f"'{p}' is a directory, not a data file. Pass the HDF5 file inside it.")
    try:
        return h5py.File(p, "r")
    except OSError as exc:
        try:
            signed = _has_hdf5_signature(p)
        except OSError:
            signed = False
        if not signed:
            raise DataFileError(
                f"'{p}' is not an HDF5 file ({p.stat().st_size} bytes, no HDF5 signature). cmlib data "
                f"files are HDF5 in the cmlib-clusters schema: {_CREATE_HINT}.") from exc
        raise DataFileError(
            f"data file '{p}' is an HDF5 file that cannot be opened, probably truncated or damaged "
            f"({exc}). cmlib writes files atomically, so the damage happened later (e.g. an "
            "interrupted copy or a full disk): copy it again or re-create it.") from exc


@dataclass
class _Layout:
    """What the validation of a file's structure found."""

    n: int
    n_bands: int
    band_edges: np.ndarray
    attrs: dict
    catalog_names: list


def _check_structure(f, path: Path) -> _Layout:
    """Validate the schema contract (attributes, datasets, shapes, lengths); no content yet."""
    attrs = {k: _decode(v) for k, v in f.attrs.items()}
    where = f"data file '{path}'"
    if "schema" not in attrs:
        raise DataFileError(f"{where} has no 'schema' attribute, so it is not a cmlib data file. "
                            f"{_CREATE_HINT[0].upper() + _CREATE_HINT[1:]}.")
    if attrs["schema"] != schema.SCHEMA_NAME:
        raise DataFileError(f"{where} uses schema '{attrs['schema']}', not '{schema.SCHEMA_NAME}'. "
                            f"Convert it: {_CREATE_HINT}.")
    missing = [k for k in schema.REQUIRED_ATTRS if k not in attrs]
    if missing:
        raise DataFileError(f"{where} lacks the root attribute(s) {', '.join(missing)} "
                            f"({'; '.join(schema.REQUIRED_ATTRS[k] for k in missing)}). Re-create the "
                            "file with the current cmlib.")
    try:
        version = int(attrs["schema_version"])
    except (TypeError, ValueError):
        raise DataFileError(f"{where} has a non-integer schema_version {attrs['schema_version']!r}. "
                            "Re-create the file with the current cmlib.") from None
    if version > schema.SCHEMA_VERSION:
        raise DataFileError(f"{where} has schema version {version}, newer than this cmlib's "
                            f"{schema.SCHEMA_VERSION}. Upgrade cmlib to read it.")
    if version < schema.SCHEMA_VERSION:
        raise DataFileError(f"{where} has the old schema version {version} (this cmlib reads "
                            f"{schema.SCHEMA_VERSION}). Re-create it with the current cmlib.")
    missing = [k for k in schema.DATASETS if k not in f]
    if missing:
        raise DataFileError(f"{where} lacks the dataset(s) /{', /'.join(missing)}: the file is incomplete "
                            "or not written by cmlib. Re-create it.")
    edges = np.asarray(attrs["band_edges_ev"], dtype=float).ravel()
    if edges.size < 2 or not np.all(np.isfinite(edges)) or np.any(np.diff(edges) <= 0):
        raise DataFileError(f"{where} has invalid band_edges_ev {edges.tolist()}: they must be at least two "
                            "finite, strictly increasing energies in eV. Re-create the file.")
    n_bands = edges.size - 1
    img = f["images"]
    if img.ndim != 4:
        raise DataFileError(f"{where}: /images has shape {img.shape}; expected (N, {schema.IMAGE_SIZE}, "
                            f"{schema.IMAGE_SIZE}, {n_bands}). Re-create the file.")
    size = int(attrs.get("image_size", schema.IMAGE_SIZE))
    if img.shape[1:3] != (schema.IMAGE_SIZE, schema.IMAGE_SIZE) or size != schema.IMAGE_SIZE:
        raise DataFileError(f"{where}: /images are {img.shape[1]}x{img.shape[2]} px (image_size attribute "
                            f"{size}); schema version {schema.SCHEMA_VERSION} requires "
                            f"{schema.IMAGE_SIZE}x{schema.IMAGE_SIZE}. Re-create the file.")
    if img.shape[3] != n_bands:
        raise DataFileError(f"{where}: /images has {img.shape[3]} bands but band_edges_ev defines {n_bands} "
                            f"({edges.size} edges). The file is inconsistent: re-create it.")
    if img.dtype.kind not in "fiu":
        raise DataFileError(f"{where}: /images has dtype {img.dtype}; expected float32 photon counts. "
                            "Re-create the file.")
    n = int(img.shape[0])
    if n < 1:
        raise DataFileError(f"{where} holds no clusters. Re-create it with at least one cluster.")
    lengths = {"images": n}
    for key in ("log_m500", "z", "cluster_id"):
        d = f[key]
        if d.ndim != 1:
            raise DataFileError(f"{where}: /{key} has shape {d.shape}; expected ({n},). Re-create the file.")
        lengths[key] = int(d.shape[0])
    if f["cluster_id"].dtype.kind not in "iu":
        raise DataFileError(f"{where}: /cluster_id has dtype {f['cluster_id'].dtype}; expected integers. "
                            "Re-create the file.")
    for key in ("log_m500", "z"):
        if f[key].dtype.kind not in "fiu":
            raise DataFileError(f"{where}: /{key} has dtype {f[key].dtype}; expected float64. Re-create the file.")
    names: list[str] = []
    if "catalog" in f:
        for name, d in f["catalog"].items():
            if not hasattr(d, "shape"):
                continue
            lengths[f"catalog/{name}"] = int(d.shape[0]) if d.ndim >= 1 else -1
            names.append(name)
    try:
        n_attr = int(attrs["n_clusters"])
    except (TypeError, ValueError):
        n_attr = -1
    lengths["n_clusters attribute"] = n_attr
    bad = {k: v for k, v in lengths.items() if v != n}
    if bad:
        listing = ", ".join(f"{k}: {v}" for k, v in lengths.items())
        raise DataFileError(f"{where}: dataset lengths disagree ({listing}); every dataset must hold one "
                            "entry per cluster. The file is inconsistent: re-create it.")
    return _Layout(n=n, n_bands=n_bands, band_edges=edges, attrs=attrs, catalog_names=names)


def _check_labels(path: Path, log_m: np.ndarray, z: np.ndarray, ids: np.ndarray) -> None:
    where = f"data file '{path}'"
    for name, values, (lo, hi), what in (("log_m500", log_m, schema.LOG_M500_RANGE, "log10(M500c/Msun)"),
                                         ("z", z, schema.Z_RANGE, "redshift")):
        bad = ~(np.isfinite(values) & (values >= lo) & (values <= hi))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataFileError(
                f"{where}: {int(bad.sum())} value(s) of /{name} ({what}) are NaN/inf or outside the "
                f"physical range [{lo}, {hi}] (schema.{'LOG_M500_RANGE' if name == 'log_m500' else 'Z_RANGE'}); "
                f"first: index {i}, cluster id {int(ids[i])}, value {values[i]!r}. Fix or drop those "
                "clusters and re-create the file"
                + (" (a linear mass stored as a label? /log_m500 must be log10)." if name == "log_m500"
                   and np.nanmax(values) > 1e3 else "."))
    uniq, counts = np.unique(ids, return_counts=True)
    if uniq.size != ids.size:
        dup = uniq[counts > 1]
        raise DataFileError(f"{where}: /cluster_id holds {dup.size} duplicated id(s), e.g. "
                            f"{dup[:5].tolist()}; ids must be unique so that splits and predictions can "
                            "be traced. Re-create the file with unique ids.")


def _check_block(path: Path, block: np.ndarray, start: int, ids: np.ndarray) -> None:
    """NaN/inf or negative photon counts in one block of images -> DataFileError."""
    if block.size == 0:
        return
    lo, hi = block.min(), block.max()  # NaN propagates into both: one fast pass for the common case
    if lo >= 0 and np.isfinite(hi):
        return
    finite = np.isfinite(block)
    if not finite.all():
        i = start + int(np.flatnonzero(~finite.reshape(len(block), -1).all(axis=1))[0])
        raise DataFileError(f"data file '{path}': the image of cluster {i} (id {int(ids[i])}) holds NaN or "
                            "infinite counts. Photon counts must be finite: fix the producer and re-create "
                            "the file.")
    if (block < 0).any():
        i = start + int(np.flatnonzero((block < 0).reshape(len(block), -1).any(axis=1))[0])
        raise DataFileError(f"data file '{path}': the image of cluster {i} (id {int(ids[i])}) holds negative "
                            "counts. Photon counts are >= 0 (background-subtracted images are not in the "
                            "schema): fix the producer and re-create the file.")


def _scan(path, *, bands=None, max_clusters: int | None = None, keep_images: bool = True,
          verify_hash: bool = False, block: int = READ_BLOCK) -> dict:
    """Open, validate and stream a data file; the shared core of :func:`load` and :func:`describe`."""
    path = Path(path)
    if max_clusters is not None:
        if isinstance(max_clusters, bool) or not isinstance(max_clusters, (int, np.integer)) or max_clusters < 1:
            raise InputError(f"max_clusters must be a positive integer, got {max_clusters!r}")
    with _open_h5(path) as f:
        lay = _check_structure(f, path)
        if max_clusters is not None and max_clusters > lay.n:
            raise InputError(f"max_clusters={max_clusters} exceeds the {lay.n} clusters in '{path}': "
                             f"use at most {lay.n}, or omit it to load all")
        if isinstance(bands, str) and bands.strip().lower() == "thesis" and not np.allclose(
                lay.band_edges, schema.BAND_EDGES_EV):
            raise InputError(f"bands='thesis' means 455-1070 eV (thesis bands 2-4 of Table 1), but "
                             f"'{path}' has other band edges {lay.band_edges.tolist()} eV: pass explicit "
                             "band numbers instead")
        sel = _normalise_bands(bands, lay.n_bands)
        try:
            log_m = np.asarray(f["log_m500"][:], dtype=np.float64)
            z = np.asarray(f["z"][:], dtype=np.float64)
            ids = np.asarray(f["cluster_id"][:], dtype=np.int64)
        except OSError as exc:
            raise DataFileError(f"data file '{path}': cannot read the labels ({exc}); the file is damaged. "
                                "Copy or create it again.") from exc
        _check_labels(path, log_m, z, ids)
        n = lay.n if max_clusters is None else int(max_clusters)
        dset = f["images"]
        images = np.empty((n, schema.IMAGE_SIZE, schema.IMAGE_SIZE, len(sel)), np.float32) if keep_images else None
        band_sum = np.zeros(lay.n_bands, np.float64)
        all_bands = sel == tuple(range(lay.n_bands))

        def blocks(stop_all: int) -> Iterator[np.ndarray]:
            """Read, validate and keep the images block by block (~50 MB at a time)."""
            nonlocal band_sum
            for start in range(0, stop_all, block):
                stop = min(stop_all, start + block)
                try:
                    blk = np.asarray(dset[start:stop], dtype=np.float32)
                except OSError as exc:
                    raise DataFileError(f"data file '{path}': cannot read images {start}-{stop - 1} ({exc}); "
                                        "the file is damaged. Copy or create it again.") from exc
                if start < n:
                    use = blk[: min(stop, n) - start]
                    _check_block(path, use, start, ids)
                    if not keep_images:
                        band_sum += use.sum(axis=(0, 1, 2), dtype=np.float64)
                    if images is not None:
                        images[start:start + len(use)] = use if all_bands else use[..., list(sel)]
                yield blk

        stored_hash = str(lay.attrs.get("content_sha256", ""))
        if verify_hash:
            # the content hash covers every image of the file (schema.content_hash)
            computed = schema.content_hash(blocks(lay.n), log_m, z, ids)
            if computed != stored_hash:
                raise DataFileError(f"data file '{path}': the content hash does not match its content_sha256 "
                                    f"attribute ({computed[:16]}... vs {stored_hash[:16]}...): the data were "
                                    "changed after writing or the file is damaged. Re-create it.")
        else:
            for _ in blocks(n):
                pass
        catalog: dict = {}
        units: dict = {}
        descriptions: dict = {}
        dtypes: dict = {}
        if "catalog" in f:
            for name in lay.catalog_names:
                d = f["catalog"][name]
                units[name] = str(_decode(d.attrs.get("unit", "")))
                descriptions[name] = str(_decode(d.attrs.get("description", "")))
                dtypes[name] = "str" if d.dtype.kind in "OSU" else d.dtype.str.lstrip("<>|=")
                if keep_images:
                    if d.dtype.kind in "OS":
                        values = np.asarray(d.asstr()[:n], dtype=str)
                    else:
                        values = d[:n]
                    catalog[name] = values
    return dict(path=path, layout=lay, bands=sel, n=n, images=images, log_m500=log_m, z=z, ids=ids,
                band_sum=band_sum, catalog=catalog, units=units, descriptions=descriptions, dtypes=dtypes)


def load(path, bands=None, max_clusters: int | None = None, *, verify_hash: bool = False,
         block: int = READ_BLOCK) -> ClusterData:
    """Load and validate a cmlib data file.

    Parameters
    ----------
    path : path-like
        HDF5 file in the cmlib-clusters schema (see :mod:`cmlib.schema`).
    bands : None, str or sequence of int
        ``None``: all bands.  A string is a 1-based specification for
        :func:`parse_bands` (``"thesis"``, ``"2,3,4"``, ``"all"``); a sequence
        of ints holds zero-based indices.  Only these channels are kept in memory.
    max_clusters : int, optional
        Load only the first ``max_clusters`` clusters (smoke runs).  Labels
        and ids of the whole file are still validated.
    verify_hash : bool
        Recompute the content hash over the whole file and compare it with
        the ``content_sha256`` attribute (reads every image once more).
    block : int
        Clusters read per block (memory bound of the streaming validation).

    Raises
    ------
    DataFileError
        Missing, non-HDF5, truncated or damaged file; wrong schema name or
        version; missing datasets or attributes; wrong image shape or band
        count; dataset lengths that disagree; NaN/inf or negative counts;
        labels outside ``schema.LOG_M500_RANGE`` / ``Z_RANGE``; duplicated
        cluster ids; a content hash mismatch (``verify_hash=True``).
    InputError
        Invalid ``bands`` or ``max_clusters``.
    """
    r = _scan(path, bands=bands, max_clusters=max_clusters, keep_images=True, verify_hash=verify_hash,
              block=block)
    n = r["n"]
    return ClusterData(
        images=r["images"], log_m500=r["log_m500"][:n].copy(), z=r["z"][:n].copy(),
        cluster_id=r["ids"][:n].copy(), catalog=r["catalog"], attrs=r["layout"].attrs, bands=r["bands"],
        path=r["path"], content_sha256=str(r["layout"].attrs["content_sha256"]),
        catalog_units=r["units"], n_file=r["layout"].n)


# =========================================================================== describe

_QUANTILES = (0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0)
_STANDARD_ATTRS = set(schema.REQUIRED_ATTRS) | {"image_size", "seed", "generator_params"}


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return [_jsonable(v) for v in value.tolist()]
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _maybe_json(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def describe(path) -> dict:
    """Summarise a data file (simulated or imported) for ``cmlib info``.

    The file is validated exactly as by :func:`load` (same errors), streaming
    the images once to total the counts per band.

    Returns
    -------
    dict
        JSON-serialisable: ``path``, ``file_bytes``, ``schema``, ``n_clusters``,
        ``image_shape``, ``pixel_scale_arcsec``, ``field_arcmin``, ``bands``
        (number, edges, total and mean counts per cluster), ``labels``
        (quantiles of log M and z), ``catalog`` (columns with dtype, unit,
        description), ``provenance`` (source, created_with, seed, generator
        params, content hash, inputs, other attributes).
    """
    r = _scan(path, keep_images=False)
    lay: _Layout = r["layout"]
    attrs = lay.attrs
    n = lay.n
    edges = lay.band_edges
    pix = float(attrs["pixel_scale_arcsec"])
    bands = [{"band": i + 1, "E_min_eV": float(edges[i]), "E_max_eV": float(edges[i + 1]),
              "thesis_band": bool(i in schema.THESIS_BANDS and np.allclose(edges, schema.BAND_EDGES_EV)),
              "total_counts": float(r["band_sum"][i]), "mean_counts_per_cluster": float(r["band_sum"][i] / n)}
             for i in range(lay.n_bands)]

    def stats(values: np.ndarray) -> dict:
        q = np.quantile(values, _QUANTILES)
        return {"min": float(q[0]), "max": float(q[-1]), "mean": float(values.mean()),
                "std": float(values.std()),
                "quantiles": {f"{p:g}": float(v) for p, v in zip(_QUANTILES, q)}}

    inputs = {k: _jsonable(v) for k, v in attrs.items() if k.startswith("input_")}
    provenance = {
        "source": attrs.get("source"),
        "created_with": attrs.get("created_with"),
        "seed": _jsonable(attrs.get("seed")),
        "generator_params": _jsonable(_maybe_json(attrs.get("generator_params"))),
        "content_sha256": attrs.get("content_sha256"),
        "inputs": inputs,
        "other": {k: _jsonable(_maybe_json(v)) for k, v in sorted(attrs.items())
                  if k not in _STANDARD_ATTRS and not k.startswith("input_")},
    }
    return {
        "path": str(r["path"]),
        "file_bytes": int(os.path.getsize(r["path"])),
        "schema": {"name": attrs["schema"], "version": int(attrs["schema_version"])},
        "n_clusters": n,
        "image_shape": [schema.IMAGE_SIZE, schema.IMAGE_SIZE, lay.n_bands],
        "pixel_scale_arcsec": pix,
        "field_arcmin": pix * schema.IMAGE_SIZE / 60.0,
        "bands": bands,
        "total_counts_per_cluster": {"mean": float(r["band_sum"].sum() / n)},
        "labels": {"log_m500": stats(r["log_m500"]), "z": stats(r["z"])},
        "cluster_id": {"min": int(r["ids"].min()), "max": int(r["ids"].max()), "unique": True},
        "catalog": [{"name": k, "dtype": r["dtypes"][k], "unit": r["units"][k],
                     "description": r["descriptions"][k]} for k in lay.catalog_names],
        "provenance": provenance,
    }


def _fmt_bytes(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000.0
    return f"{n} B"


def format_description(info: dict) -> str:
    """Human-readable text of a :func:`describe` dict (what ``cmlib info`` prints)."""
    lines: list[str] = []
    add = lines.append
    prov = info["provenance"]
    add(f"cmlib data file  {info['path']}  ({_fmt_bytes(info['file_bytes'])})")
    add(f"  schema         {info['schema']['name']} v{info['schema']['version']}; source {prov['source']}; "
        f"written by {prov['created_with']}")
    h, w, c = info["image_shape"]
    add(f"  clusters       {info['n_clusters']}")
    add(f"  images         {h} x {w} px x {c} bands (float32 photon counts); pixel "
        f"{info['pixel_scale_arcsec']:g} arcsec, field {info['field_arcmin']:g} arcmin")
    add(f"  labels         {'quantity':<18}" + "".join(f"{q:>8}" for q in ("min", "5%", "25%", "50%", "75%",
                                                                         "95%", "max")))
    for key, label in (("log_m500", "log10 M500c/Msun"), ("z", "z")):
        q = info["labels"][key]["quantiles"]
        add(f"                 {label:<18}" + "".join(f"{q[k]:8.3f}" for k in ("0", "0.05", "0.25", "0.5",
                                                                               "0.75", "0.95", "1")))
    add(f"  bands          {'band':>4}  {'energy [eV]':<11}  {'total counts':>14}  {'mean per cluster':>16}")
    for b in info["bands"]:
        mark = "  *" if b.get("thesis_band") else ""
        energy = f"{b['E_min_eV']:.0f}-{b['E_max_eV']:.0f}"
        add(f"                 {b['band']:>4}  {energy:<11}  {b['total_counts']:>14.6g}  "
            f"{b['mean_counts_per_cluster']:>16.2f}{mark}")
    if any(b.get("thesis_band") for b in info["bands"]):
        add("                 (* = the thesis's bands 2-4, 455-1070 eV)")
    add(f"                 all bands: {info['total_counts_per_cluster']['mean']:.2f} counts per cluster on average")
    cat = info["catalog"]
    add(f"  catalog        {len(cat)} column(s)")
    width = max([len(col["name"]) for col in cat] + [4])
    for col in cat:
        unit = f"[{col['unit']}]" if col["unit"] else ""
        add(f"                 {col['name']:<{width}}  {unit:<14} {col['dtype']:<5} {col['description']}")
    add("  provenance")
    add(f"                 content sha256   {prov['content_sha256']}")
    if prov.get("seed") is not None:
        add(f"                 seed             {prov['seed']}")
    params = prov.get("generator_params")
    if params:
        import textwrap

        text = (", ".join(f"{k}={v}" for k, v in sorted(params.items())) if isinstance(params, dict)
                else str(params))
        for i, line in enumerate(textwrap.wrap(text, 84) or [""]):
            add(f"                 {'generator params' if i == 0 else '':<16} {line}")
    for key, value in sorted(prov.get("inputs", {}).items()):
        add(f"                 {key:<16} {value}")
    for key, value in sorted(prov.get("other", {}).items()):
        text = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
        if len(text) > 100:
            text = text[:97] + "..."
        add(f"                 {key:<16} {text}")
    return "\n".join(lines)


# =========================================================================== splits

@dataclass(repr=False)
class Split:
    """A named, reproducible partition of N clusters into train / val / test.

    ``train``, ``val`` and ``test`` are sorted int64 row indices.  For the
    thesis split the validation set *is* the test set (``val_is_test``), as in
    thesis Sect. 3.2.  ``ids`` (when the split was made from a
    :class:`ClusterData`) holds the cluster ids of each set, so a stored split
    can be checked against the data it is applied to.
    """

    name: str
    seed: int
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    n: int
    fingerprint: str = ""
    ids: dict | None = None
    params: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key in ("train", "val", "test"):
            setattr(self, key, np.sort(np.asarray(getattr(self, key), dtype=np.int64)))
        if not self.fingerprint:
            self.fingerprint = _split_fingerprint(self.train, self.val, self.test)

    @property
    def val_is_test(self) -> bool:
        return bool(np.array_equal(self.val, self.test))

    def sizes(self) -> dict:
        return {"train": int(self.train.size), "val": int(self.val.size), "test": int(self.test.size)}

    def check(self, data: "ClusterData") -> None:
        """Raise :class:`InputError` unless this split was made for ``data`` (same N and ids)."""
        if data.n != self.n:
            raise InputError(f"split '{self.name}' (seed {self.seed}) was made for {self.n} clusters, but the "
                             f"data hold {data.n}: make the split from these data (same file and max_clusters)")
        if self.ids is not None:
            for key in ("train", "val", "test"):
                if not np.array_equal(np.asarray(self.ids[key], np.int64), data.cluster_id[getattr(self, key)]):
                    raise InputError(f"split '{self.name}' (seed {self.seed}) does not match the cluster ids of "
                                     f"'{data.path}' ({key} set differs): it was made from another file; "
                                     "make a new split from these data")

    def to_dict(self) -> dict:
        """JSON-able record (indices, ids, fingerprint) that :meth:`from_dict` restores exactly."""
        return {
            "name": self.name, "seed": int(self.seed), "n": int(self.n), "fingerprint": self.fingerprint,
            "val_is_test": self.val_is_test, "sizes": self.sizes(), "params": dict(self.params),
            "train": self.train.tolist(), "val": self.val.tolist(), "test": self.test.tolist(),
            "ids": None if self.ids is None else {k: np.asarray(v, np.int64).tolist() for k, v in self.ids.items()},
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> "Split":
        """Restore a split written by :meth:`to_dict`; a corrupted record raises :class:`InputError`."""
        try:
            split = cls(name=str(d["name"]), seed=int(d["seed"]), train=d["train"], val=d["val"], test=d["test"],
                        n=int(d["n"]), ids=None if d.get("ids") is None else
                        {k: np.asarray(v, np.int64) for k, v in d["ids"].items()},
                        params=dict(d.get("params", {})))
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"not a valid split record ({exc!r}); it needs name, seed, n, train, val, test. "
                             "Re-create the split with make_split().") from None
        if d.get("fingerprint") and d["fingerprint"] != split.fingerprint:
            raise InputError(f"split record '{split.name}' has fingerprint {d['fingerprint']} but its indices hash "
                             f"to {split.fingerprint}: the record was edited or damaged. Re-create it with "
                             "make_split().")
        return split

    def __repr__(self) -> str:
        s = self.sizes()
        val = "val=test" if self.val_is_test else f"val={s['val']}"
        return (f"Split('{self.name}', seed={self.seed}, n={self.n}: train={s['train']}, {val}, "
                f"test={s['test']}, fingerprint={self.fingerprint})")


def _split_fingerprint(train, val, test) -> str:
    h = hashlib.sha256()
    for key, a in (("train", train), ("val", val), ("test", test)):
        h.update(key.encode())
        h.update(np.ascontiguousarray(a, dtype="<i8").tobytes())
    return h.hexdigest()[:16]


def _round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def _labels_of(data_or_labels) -> tuple[int, np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """(n, log_m, z, ids) from a ClusterData, a mapping, a (log_m, z) pair or an int."""
    if isinstance(data_or_labels, ClusterData):
        d = data_or_labels
        return d.n, d.log_m500, d.z, d.cluster_id
    if isinstance(data_or_labels, (int, np.integer)) and not isinstance(data_or_labels, bool):
        return int(data_or_labels), None, None, None
    if isinstance(data_or_labels, Mapping):
        try:
            log_m = np.asarray(data_or_labels["log_m500"], float)
            z = np.asarray(data_or_labels["z"], float)
        except KeyError:
            raise InputError("make_split needs labels with keys 'log_m500' and 'z' (and optionally "
                             "'cluster_id')") from None
        ids = data_or_labels.get("cluster_id")
        ids = None if ids is None else np.asarray(ids, np.int64)
    elif isinstance(data_or_labels, (tuple, list)) and len(data_or_labels) == 2:
        log_m, z = (np.asarray(a, float) for a in data_or_labels)
        ids = None
    else:
        raise InputError(f"make_split takes a ClusterData, a dict with 'log_m500' and 'z', a (log_m500, z) "
                         f"pair or the number of clusters; got {type(data_or_labels).__name__}")
    if log_m.ndim != 1 or log_m.shape != z.shape or (ids is not None and ids.shape != log_m.shape):
        raise InputError(f"make_split: log_m500 {log_m.shape}, z {z.shape} and cluster_id must be 1-D arrays "
                         "of the same length")
    return int(log_m.size), log_m, z, ids


def _split_thesis(n: int, seed: int, log_m=None, z=None) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """Thesis Sect. 3.2: random 90/10; the test set doubles as validation set.

    Test size = round(0.1 N) with halves rounded up (N = 7946: 794.6 -> 795,
    train 7151, as thesis Table 2).
    """
    n_test = _round_half_up(0.1 * n)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    test = perm[:n_test]
    return perm[n_test:], test, test, {"fractions": [0.9, 0.1], "val_is_test": True}


def _strata(log_m: np.ndarray, z: np.ndarray, n_bins: int) -> np.ndarray:
    """Joint stratum index: quantile bins of log M x quantile bins of z."""
    def qbin(v: np.ndarray) -> np.ndarray:
        if n_bins == 1:
            return np.zeros(v.size, np.int64)
        edges = np.quantile(v, np.linspace(0, 1, n_bins + 1)[1:-1])
        return np.searchsorted(edges, v, side="right").astype(np.int64)
    return qbin(log_m) * n_bins + qbin(z)


def _systematic(n_total: int, n_pick: int) -> np.ndarray:
    """Boolean mask picking exactly ``n_pick`` evenly spaced positions of ``n_total``."""
    p = np.arange(n_total, dtype=np.int64)
    return ((p + 1) * n_pick) // n_total > (p * n_pick) // n_total


def _split_stratified(n: int, seed: int, log_m=None, z=None):
    """80/10/10, stratified jointly in log M and z.

    Clusters are ordered by stratum (q x q quantile bins of log M and z, q =
    5 for N >= 1000, fewer for small N) and randomly within a stratum; the
    order is rotated by a random offset, and every 10th position goes to the
    test set, then every 9th remaining position to the validation set.  Every
    stratum thus gets its proportional share to within one cluster, and the
    set sizes are exact: test = val = round(0.1 N).
    """
    if log_m is None:
        raise InputError("the 'train-val-test' split is stratified in mass and redshift: pass the data "
                         "(ClusterData) or a dict with 'log_m500' and 'z', not just N")
    n_bins = int(max(1, min(5, math.isqrt(max(n, 1) // 40))))
    rng = np.random.default_rng(seed)
    key = _strata(log_m, z, n_bins)
    order = np.lexsort((rng.random(n), key))
    order = np.roll(order, int(rng.integers(n)))
    n_test = _round_half_up(0.1 * n)
    is_test = _systematic(n, n_test)
    test = order[is_test]
    rest = order[~is_test]
    is_val = _systematic(rest.size, n_test)
    return rest[~is_val], rest[is_val], test, {"fractions": [0.8, 0.1, 0.1], "strata": f"{n_bins}x{n_bins} "
                                               "quantile bins of log_m500 x z", "val_is_test": False}


@dataclass(frozen=True)
class SplitSpec:
    """A registered split: its name, a one-line description and the function."""

    name: str
    description: str
    function: Callable


#: Registered splits by name; add one with ``SPLITS[name] = SplitSpec(...)``.
SPLITS: dict[str, SplitSpec] = {
    "thesis": SplitSpec("thesis", "random 90/10 (7151/795 for N=7946, Table 2); the test set is also the "
                                  "validation set (thesis Sect. 3.2)", _split_thesis),
    "train-val-test": SplitSpec("train-val-test", "80/10/10 train/validation/test, stratified jointly in "
                                                  "log M and z; test never seen during training or model choice",
                                _split_stratified),
}


def available_splits() -> list[str]:
    """Names of the registered splits."""
    return sorted(SPLITS)


def make_split(name: str, data_or_labels, seed: int = 0) -> Split:
    """Make the named split, reproducibly from ``seed``.

    Parameters
    ----------
    name : str
        ``"thesis"`` or ``"train-val-test"`` (see :data:`SPLITS`).
    data_or_labels : ClusterData, dict, (log_m500, z) or int
        The data (cluster ids are then recorded in the split), labels, or for
        the thesis split just the number of clusters.
    seed : int
        Split seed; the same seed gives the same split for every model.
    """
    if name not in SPLITS:
        raise InputError(f"unknown split '{name}': choose one of {', '.join(available_splits())}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"split seed must be a non-negative integer, got {seed!r}")
    n, log_m, z, ids = _labels_of(data_or_labels)
    if n < 5:
        raise InputError(f"a split needs at least 5 clusters so that every set is non-empty; got {n}")
    train, val, test, params = SPLITS[name].function(n, int(seed), log_m, z)
    split = Split(name=name, seed=int(seed), train=train, val=val, test=test, n=n, params=params)
    if ids is not None:
        split.ids = {k: ids[getattr(split, k)] for k in ("train", "val", "test")}
    return split


def table2_counts(split: Split) -> dict:
    """Set sizes in the layout of thesis Table 2 (:data:`cmlib.thesis.TABLE2`).

    Thesis split: ``{"complete", "train", "test_validation"}``; other splits:
    ``{"complete", "train", "validation", "test"}``.
    """
    s = split.sizes()
    if split.val_is_test:
        return {"complete": split.n, "train": s["train"], "test_validation": s["test"]}
    return {"complete": split.n, "train": s["train"], "validation": s["val"], "test": s["test"]}


# =========================================================================== scaling

class Scaler:
    """Intensity scaling of the images, fitted on the training split only.

    Modes
    -----
    ``"raw"``
        Photon counts as they are (the thesis).
    ``"log1p"``
        ``log(1 + counts)``: compresses the bright cores (no parameters).
    ``"standardize"``
        ``(counts - mean_b) / std_b`` per band b, with mean and standard
        deviation over all training pixels.  A band with no spread in the
        training data keeps std 1 (recorded in ``degenerate_bands``).
    """

    def __init__(self, mode: str = "raw") -> None:
        if mode not in SCALING_MODES:
            raise InputError(f"unknown scaling '{mode}': choose one of {', '.join(SCALING_MODES)}")
        self.mode = mode
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None
        self.degenerate_bands: list[int] = []
        self.fitted = mode != "standardize"

    def fit(self, train_images: np.ndarray, block: int = READ_BLOCK) -> "Scaler":
        """Fit on training images (N, H, W, C); streams in blocks (float64 sums)."""
        x = np.asarray(train_images)
        if x.ndim != 4 or x.shape[0] < 1:
            raise InputError(f"Scaler.fit expects a non-empty (N, H, W, C) array, got shape {x.shape}")
        if self.mode == "standardize":
            c = x.shape[-1]
            s1 = np.zeros(c, np.float64)
            count = 0
            for i in range(0, x.shape[0], block):
                b = x[i:i + block]
                s1 += b.sum(axis=(0, 1, 2), dtype=np.float64)
                count += b.shape[0] * b.shape[1] * b.shape[2]
            mean = s1 / count
            s2 = np.zeros(c, np.float64)
            for i in range(0, x.shape[0], block):
                d = x[i:i + block].astype(np.float64) - mean
                s2 += np.einsum("nhwc,nhwc->c", d, d)
            std = np.sqrt(s2 / count)
            self.degenerate_bands = [int(i) for i in np.flatnonzero(~(std > 0))]
            std[~(std > 0)] = 1.0
            self.mean, self.std = mean, std
        self.fitted = True
        return self

    def transform(self, images: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Scaled float32 copy of ``images`` (or in place into ``out``, e.g. ``out=images``)."""
        if not self.fitted:
            raise InputError("Scaler('standardize') must be fitted on the training images before transform")
        x = np.asarray(images)
        if out is None:
            out = np.array(x, dtype=np.float32, copy=True)
        elif out is not x:
            out[...] = x
        if self.mode == "log1p":
            np.log1p(out, out=out)
        elif self.mode == "standardize":
            if out.shape[-1] != self.mean.size:
                raise InputError(f"Scaler was fitted on {self.mean.size} bands, images have {out.shape[-1]}")
            out -= self.mean.astype(np.float32)
            out /= self.std.astype(np.float32)
        return out

    def to_dict(self) -> dict:
        return {"mode": self.mode, "mean": None if self.mean is None else self.mean.tolist(),
                "std": None if self.std is None else self.std.tolist(),
                "degenerate_bands": list(self.degenerate_bands)}

    @classmethod
    def from_dict(cls, d: Mapping) -> "Scaler":
        s = cls(d.get("mode", "raw"))
        if s.mode == "standardize":
            if d.get("mean") is None or d.get("std") is None:
                raise InputError("a 'standardize' scaler record needs 'mean' and 'std'; re-fit the scaler")
            s.mean = np.asarray(d["mean"], np.float64)
            s.std = np.asarray(d["std"], np.float64)
            s.degenerate_bands = list(d.get("degenerate_bands", []))
            s.fitted = True
        return s

    def __repr__(self) -> str:
        if self.mode == "standardize" and self.fitted:
            return f"Scaler('standardize', mean={np.round(self.mean, 4).tolist()}, std={np.round(self.std, 4).tolist()})"
        return f"Scaler('{self.mode}')"


# =========================================================================== prepare

@dataclass(repr=False)
class PreparedSplit:
    """One set (train, val or test) ready for a model, not yet padded or augmented.

    ``x_image`` (n, 50, 50, C) float32 scaled, ``x_z`` (n, 1) float32,
    ``y`` (n, 1) float32 log10(M500c/Msun), ``ids`` (n,) int64 cluster ids,
    ``indices`` (n,) rows of the :class:`ClusterData`.  ``pad``/``pad_size``
    say how the input pipelines pad each batch.
    """

    name: str
    x_image: np.ndarray
    x_z: np.ndarray
    y: np.ndarray
    ids: np.ndarray
    indices: np.ndarray
    pad: str = "none"
    pad_size: int = THESIS_PAD_SIZE
    _cache: dict = field(default_factory=dict, compare=False)

    @property
    def n(self) -> int:
        return int(self.x_image.shape[0])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """The shape of one model input image (after padding)."""
        h, w, c = self.x_image.shape[1:]
        if self.pad == "none":
            return (h, w, c)
        return (self.pad_size, self.pad_size, c)

    def inputs(self) -> dict:
        """All of this set as model inputs ``{"image", "redshift"}`` (padded; for small sets / predict)."""
        return {"image": pad_images(self.x_image, self.pad, self.pad_size), "redshift": self.x_z}

    def __repr__(self) -> str:
        return f"PreparedSplit('{self.name}', n={self.n}, image={self.image_shape}, pad='{self.pad}')"


@dataclass(repr=False)
class Prepared:
    """Per-split arrays, the fitted scaler and the settings that produced them.

    For the thesis split ``val`` and ``test`` are the same object (no copy).
    """

    train: PreparedSplit
    val: PreparedSplit
    test: PreparedSplit
    scaler: Scaler
    split: Split
    bands: tuple
    pad: str
    pad_size: int
    scaling: str
    source: dict = field(default_factory=dict)

    def __getitem__(self, name: str) -> PreparedSplit:
        if name not in ("train", "val", "test"):
            raise InputError(f"unknown set '{name}': choose train, val or test")
        return getattr(self, name)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """Model input image shape, e.g. (71, 71, 3)."""
        return self.train.image_shape

    def describe(self) -> dict:
        """JSON-able summary: sizes, shapes, bands, padding, scaler, split and source."""
        sets = {"train": self.train, "val": self.val, "test": self.test}
        unique = {id(s): s for s in sets.values()}.values()
        nbytes = sum(s.x_image.nbytes for s in unique)
        store = sum(s._cache["store"].nbytes - s.x_image.nbytes for s in unique if "store" in s._cache)
        tf_store = sum(int(np.prod(s._cache["tf_store"].shape)) * 4 for s in unique if "tf_store" in s._cache)
        return {
            "split": {"name": self.split.name, "seed": self.split.seed, "fingerprint": self.split.fingerprint,
                      "val_is_test": self.split.val_is_test},
            "sizes": {k: s.n for k, s in sets.items()},
            "bands": [b + 1 for b in self.bands],
            "band_labels": [schema.band_label(b) if b < schema.N_BANDS else f"band {b + 1}" for b in self.bands],
            "pad": self.pad, "pad_size": self.pad_size if self.pad != "none" else None,
            "image_shape": list(self.image_shape),
            "scaling": self.scaler.to_dict(),
            "memory_bytes": int(nbytes),
            "augment_store_bytes": {"numpy": int(store), "tensorflow": int(tf_store)},
            "source": dict(self.source),
        }

    def __repr__(self) -> str:
        d = self.describe()
        return (f"Prepared(split='{self.split.name}', sizes={d['sizes']}, bands={d['bands']}, pad='{self.pad}', "
                f"image={self.image_shape}, scaling='{self.scaling}')")


def _gather(images: np.ndarray, rows: np.ndarray, channels: list[int] | None, block: int = READ_BLOCK) -> np.ndarray:
    c = images.shape[-1] if channels is None else len(channels)
    out = np.empty((rows.size,) + images.shape[1:3] + (c,), np.float32)
    for i in range(0, rows.size, block):
        part = images[rows[i:i + block]]
        out[i:i + block] = part if channels is None else part[..., channels]
    return out


def prepare(data: ClusterData, split: Split, *, bands=None, pad: str = "none", scaling: str = "raw",
            pad_size: int = THESIS_PAD_SIZE) -> Prepared:
    """Arrays per split for training, as float32; no augmentation.

    Parameters
    ----------
    data : ClusterData
    split : Split
        Made for ``data`` (checked: N and, when recorded, the cluster ids).
    bands : None, str or sequence of int
        Channels to use, as file bands: ``None`` = every loaded band; a string
        for :func:`parse_bands` (``"thesis"`` = bands 2-4); or zero-based file
        band indices.  They must have been loaded.
    pad : {"none", "thesis", "center"}
        Padding applied on the fly by the input pipelines (after augmentation).
    scaling : {"raw", "log1p", "standardize"}
        Intensity scaling, fitted on the training set only.
    pad_size : int
        Padded size (71 in the thesis).

    Notes
    -----
    The images are stored un-padded (50 x 50): padding per batch costs little
    and keeps memory at about the size of ``data.images`` for the selected
    bands (7946 x 50 x 50 x 3 float32 = 238 MB, 10 bands 795 MB).  Delete
    ``data`` afterwards if memory is short.
    """
    if not isinstance(data, ClusterData):
        raise InputError(f"prepare expects a ClusterData from load(), got {type(data).__name__}")
    if not isinstance(split, Split):
        raise InputError(f"prepare expects a Split from make_split(), got {type(split).__name__}")
    split.check(data)
    if pad not in PAD_MODES:
        raise InputError(f"unknown padding mode '{pad}': choose one of {', '.join(PAD_MODES)}")
    if pad != "none":
        _pad_widths(pad, data.images.shape[1], data.images.shape[2], pad_size)
    n_file_bands = int(np.asarray(data.attrs.get("band_edges_ev", schema.BAND_EDGES_EV)).size - 1)
    want = tuple(data.bands) if bands is None else _normalise_bands(bands, n_file_bands)
    missing = [b + 1 for b in want if b not in data.bands]
    if missing:
        raise InputError(f"bands {missing} (1-based) were not loaded (loaded: {[b + 1 for b in data.bands]}); "
                         "load the data with bands=None or including them")
    channels = [data.bands.index(b) for b in want]
    channels = None if channels == list(range(data.images.shape[-1])) else channels
    scaler = Scaler(scaling)

    def make(name: str, rows: np.ndarray) -> PreparedSplit:
        return PreparedSplit(
            name=name, x_image=_gather(data.images, rows, channels),
            x_z=data.z[rows].astype(np.float32).reshape(-1, 1),
            y=data.log_m500[rows].astype(np.float32).reshape(-1, 1),
            ids=data.cluster_id[rows].copy(), indices=rows.copy(), pad=pad, pad_size=int(pad_size))

    train = make("train", split.train)
    scaler.fit(train.x_image)
    scaler.transform(train.x_image, out=train.x_image)
    test = make("test", split.test)
    scaler.transform(test.x_image, out=test.x_image)
    if split.val_is_test:
        val = test
    else:
        val = make("val", split.val)
        scaler.transform(val.x_image, out=val.x_image)
    return Prepared(train=train, val=val, test=test, scaler=scaler, split=split, bands=want, pad=pad,
                    pad_size=int(pad_size), scaling=scaling,
                    source={"path": str(data.path), "content_sha256": data.content_sha256, "n": data.n})


# =========================================================================== epoch plans

@dataclass(repr=False)
class EpochPlan:
    """What one training epoch sees: the order of the samples and each position's augmentation.

    ``order[i]`` is the sample shown at position i; ``flip_lr[i]``,
    ``flip_ud[i]`` and ``rot_k[i]`` are the augmentation of that position.
    """

    seed: int
    epoch: int
    augment: str
    order: np.ndarray
    flip_lr: np.ndarray
    flip_ud: np.ndarray
    rot_k: np.ndarray

    @property
    def n(self) -> int:
        return int(self.order.size)

    @property
    def augmented(self) -> bool:
        return bool(self.flip_lr.any() or self.flip_ud.any() or self.rot_k.any())

    def n_batches(self, batch_size: int) -> int:
        return -(-self.n // int(batch_size))

    @classmethod
    def identity(cls, n: int) -> "EpochPlan":
        """Fixed order, no augmentation: the plan of every evaluation input."""
        z = np.zeros(n, bool)
        return cls(seed=-1, epoch=-1, augment="none", order=np.arange(n, dtype=np.int64), flip_lr=z,
                   flip_ud=z.copy(), rot_k=np.zeros(n, np.int8))

    def __repr__(self) -> str:
        return f"EpochPlan(n={self.n}, seed={self.seed}, epoch={self.epoch}, augment='{self.augment}')"


def epoch_plan(n: int, seed: int, epoch: int, augment: str = "none") -> EpochPlan:
    """The order and augmentation of epoch ``epoch``, drawn from ``default_rng([seed, epoch])``.

    Deterministic per (seed, epoch): a run resumed at epoch k sees exactly the
    data of an uninterrupted run.  The order and flips do not depend on
    ``augment`` (``"flip"`` and ``"flip-rot90"`` share the flips; ``"none"``
    shares the order).

    Parameters
    ----------
    n : int
        Number of training samples.
    seed, epoch : int
        Non-negative; epochs count from 0.
    augment : {"none", "flip", "flip-rot90"}
        ``"flip"``: random left-right and up-down flips, each with p = 1/2
        (the thesis's random flip); ``"flip-rot90"``: plus a random rotation
        by 0-3 x 90 degrees (Krippendorf et al. 2023), uniform over the 8
        symmetries of the square.
    """
    if augment not in AUGMENT_MODES:
        raise InputError(f"unknown augmentation '{augment}': choose one of {', '.join(AUGMENT_MODES)}")
    for name, v in (("n", n), ("seed", seed), ("epoch", epoch)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise InputError(f"epoch_plan: {name} must be a non-negative integer, got {v!r}")
    if n < 1:
        raise InputError("epoch_plan: there are no training samples (n=0)")
    rng = np.random.default_rng([int(seed), int(epoch)])
    order = rng.permutation(int(n)).astype(np.int64)
    lr = rng.random(n) < 0.5
    ud = rng.random(n) < 0.5
    rk = rng.integers(0, 4, n).astype(np.int8)
    if augment == "none":
        lr[:] = False
        ud[:] = False
    if augment != "flip-rot90":
        rk[:] = 0
    return EpochPlan(seed=int(seed), epoch=int(epoch), augment=augment, order=order, flip_lr=lr,
                     flip_ud=ud, rot_k=rk)


# =========================================================================== input pipelines

def _check_batch_args(split: PreparedSplit, batch_size: int, plan: EpochPlan | None) -> EpochPlan:
    if not isinstance(split, PreparedSplit):
        raise InputError(f"expected a PreparedSplit (e.g. prepared.train), got {type(split).__name__}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
    if plan is None:
        return EpochPlan.identity(split.n)
    if plan.n != split.n:
        raise InputError(f"the epoch plan is for {plan.n} samples but the '{split.name}' set has {split.n}: "
                         "make it with epoch_plan(prepared.train.n, ...)")
    return plan


#: Largest augmentation store (see :func:`_augment_store`); above it the
#: flips and rotations are computed per batch instead (same result, slower).
MAX_AUGMENT_STORE_BYTES = 2 * 1024 ** 3


def _augment_store(split: PreparedSplit, n_copies: int) -> np.ndarray | None:
    """The split's images and their flipped / transposed copies, (n_copies, n, H, W, C), built once.

    With these copies every augmentation is a gather of contiguous image rows
    (an up-down flip is a reversed row order), as cheap as the plain batch copy
    of an in-memory dataset; computing a left-right flip or a transpose per
    batch costs ~10x more.  Copy 0 *is* ``split.x_image`` afterwards (the
    split's array becomes a view of the store), so the store costs
    ``n_copies - 1`` extra copies of the split: 2 for flips, 4 for flips and
    rotations.  Returns None if that would exceed :data:`MAX_AUGMENT_STORE_BYTES`.
    """
    cache = split._cache
    store = cache.get("store")
    if store is not None and store.shape[0] >= n_copies and split.x_image is cache.get("view"):
        return store
    x = split.x_image
    if n_copies * x.nbytes > MAX_AUGMENT_STORE_BYTES:
        return None
    store = np.empty((n_copies,) + x.shape, np.float32)
    for k in range(n_copies):
        for i in range(0, x.shape[0], READ_BLOCK):
            store[k, i:i + READ_BLOCK] = _STORE_COPIES[k](x[i:i + READ_BLOCK])
    split.x_image = store[0]
    cache["store"], cache["view"] = store, split.x_image
    return store


def _row_plan(plan: EpochPlan, n: int, h: int) -> tuple[int, np.ndarray, np.ndarray]:
    """(copies needed, first store row of each position's image, row step +1/-1).

    Position i of the plan shows rows ``first[i] + step[i] * (0..h-1)`` of the
    augmentation store (:func:`_augment_store`): its sample's image in the
    right copy, rows reversed for an up-down flip.
    """
    combo = (plan.flip_lr.astype(np.int64) + 2 * plan.flip_ud.astype(np.int64)
             + 4 * (plan.rot_k.astype(np.int64) % 4))
    copy, rev = _LAYOUT[combo, 0].astype(np.int64), _LAYOUT[combo, 1].astype(bool)
    first = (copy * n + plan.order) * h + np.where(rev, h - 1, 0)
    return int(copy.max()) + 1, first, np.where(rev, -1, 1).astype(np.int64)


class ArrayBatches:
    """Backend-neutral batches of one epoch: pure numpy, no TensorFlow.

    ``batches[i]`` is ``({"image": x, "redshift": z}, y)`` for batch i of the
    plan: the plan's samples, augmented (``augment_batch``) and then padded
    (``pad_images``).  For augmented plans the training split gets an
    augmentation store (:func:`_augment_store`) on first use, so a batch is a
    single gather of image rows; if the store would be too large, the
    augmentation is computed per batch instead (identical result).
    Iterable, indexable and sized, so it works as a plain generator with any
    backend; :func:`array_dataset` wraps it in a ``keras.utils.PyDataset``.
    """

    def __init__(self, split: PreparedSplit, batch_size: int = 32, plan: EpochPlan | None = None) -> None:
        self.plan = plan = _check_batch_args(split, batch_size, plan)
        self.split = split
        self.batch_size = int(batch_size)
        n, h, w, c = split.x_image.shape
        if plan.rot_k.any() and h != w:
            raise InputError(f"90-degree rotations need square images; got {h}x{w}")
        _pad_widths(split.pad, h, w, split.pad_size)
        self._store = None
        if plan.augmented:
            n_copies, self._first_row, self._row_step = _row_plan(plan, n, h)
            self._store = _augment_store(split, n_copies)
            if self._store is not None:
                self._rows = self._store.reshape(-1, w * c)           # every image row of every copy

    def __len__(self) -> int:
        return self.plan.n_batches(self.batch_size)

    def __getitem__(self, i: int):
        nb = len(self)
        if i < 0:
            i += nb
        if not 0 <= i < nb:
            raise IndexError(f"batch {i} out of range (0..{nb - 1})")
        sl = slice(i * self.batch_size, min(self.split.n, (i + 1) * self.batch_size))
        idx = self.plan.order[sl]
        s = self.split
        n, h, w, c = s.x_image.shape
        if self._store is not None:
            rows = self._first_row[sl, None] + self._row_step[sl, None] * np.arange(h)
            x = self._rows[rows.ravel()].reshape(-1, h, w, c)
        elif self.plan.augmented:
            x = augment_batch(s.x_image[idx], self.plan.flip_lr[sl], self.plan.flip_ud[sl], self.plan.rot_k[sl])
        else:
            x = s.x_image[idx]
        x = pad_images(x, s.pad, s.pad_size)
        return {"image": x, "redshift": s.x_z[idx]}, s.y[idx]

    def __iter__(self) -> Iterator:
        for i in range(len(self)):
            yield self[i]


_PYDATASET_CLASS = None


def _py_dataset_class():
    """Create the keras.utils.PyDataset subclass on first use (keeps `import cmlib.data` light)."""
    global _PYDATASET_CLASS
    if _PYDATASET_CLASS is None:
        keras = import_keras()

        class ArrayDataset(keras.utils.PyDataset):
            """A keras PyDataset over :class:`ArrayBatches` (one epoch of one plan).

            Fit one epoch per instance: make a new one for the next epoch
            (``make_train_input(..., epoch=k)``); reusing it repeats the plan.
            """

            def __init__(self, batches: ArrayBatches, **kwargs) -> None:
                super().__init__(**kwargs)
                self.batches = batches

            def __len__(self) -> int:
                return len(self.batches)

            def __getitem__(self, i):
                return self.batches[i]

            @property
            def plan(self) -> EpochPlan:
                return self.batches.plan

        _PYDATASET_CLASS = ArrayDataset
    return _PYDATASET_CLASS


def array_dataset(prepared_split: PreparedSplit, batch_size: int = 32, plan: EpochPlan | None = None, *,
                  workers: int = 1, use_multiprocessing: bool = False, max_queue_size: int = 10):
    """A backend-neutral ``keras.utils.PyDataset`` of one epoch (TensorFlow is not imported).

    The same (split, batch size, plan) gives exactly the batches of
    :func:`tf_dataset`.  ``plan=None``: fixed order, no augmentation (evaluation).
    """
    batches = ArrayBatches(prepared_split, batch_size, plan)
    return _py_dataset_class()(batches, workers=workers, use_multiprocessing=use_multiprocessing,
                               max_queue_size=max_queue_size)


def _symmetry_table() -> tuple[tuple, np.ndarray]:
    """The 8 symmetries of the square and, for each augmentation ``lr + 2 ud + 4 k``, its symmetry.

    Each symmetry is a function on NHWC arrays; the table is found by applying
    :func:`augment_batch` to a probe image, so the TensorFlow path agrees with
    it by construction.
    """
    t = lambda x: x.transpose(0, 2, 1, 3)  # noqa: E731
    syms = (lambda x: x, lambda x: x[:, :, ::-1], lambda x: x[:, ::-1], lambda x: x[:, ::-1, ::-1],
            t, lambda x: t(x)[:, :, ::-1], lambda x: t(x)[:, ::-1], lambda x: t(x)[:, ::-1, ::-1])
    probe = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    table = np.full(16, -1, np.int64)
    for combo in range(16):
        want = augment_batch(probe, [combo & 1], [(combo >> 1) & 1], [combo >> 2])
        for k, f in enumerate(syms):
            if np.array_equal(f(probe), want):
                table[combo] = k
                break
    if (table < 0).any():  # pragma: no cover - a bug in augment_batch would land here
        raise RuntimeError("symmetry table is incomplete")
    return syms, table


_SYMMETRIES, _SYMMETRY_OF = _symmetry_table()


def _plan_symmetries(plan: EpochPlan) -> np.ndarray:
    """Symmetry index (0-7) of each position of the plan."""
    combo = (plan.flip_lr.astype(np.int64) + 2 * plan.flip_ud.astype(np.int64)
             + 4 * (plan.rot_k.astype(np.int64) % 4))
    return _SYMMETRY_OF[combo]


def _tf_store_bytes(split: PreparedSplit, n_copies: int) -> int:
    return n_copies * split.x_image.nbytes


def _tf_store(split: PreparedSplit, symmetries: tuple[int, ...]):
    """The split's images under each needed symmetry, as one TensorFlow variable (n_sym * n, H, W, C).

    Built once per split and set of symmetries (copy by copy, in blocks,
    straight into the variable) and cached on the split.  Every augmented
    batch is then a single gather of whole images, about as cheap as the
    batch copy of a cached in-memory ``from_tensor_slices`` pipeline.  A
    variable is captured by the dataset graph as a handle, so building an
    epoch's dataset does not serialise the images.
    """
    import_keras()
    import tensorflow as tf

    cache = split._cache
    if cache.get("tf_syms") is not None and set(symmetries) <= set(cache["tf_syms"]):
        return cache["tf_store"], cache["tf_syms"]
    x = split.x_image
    n = x.shape[0]
    with tf.device("/CPU:0"):
        var = tf.Variable(tf.zeros((len(symmetries) * n,) + x.shape[1:], tf.float32), trainable=False,
                          name=f"cmlib_{split.name}_images")
        for j, sym in enumerate(symmetries):
            for i in range(0, n, READ_BLOCK):
                part = np.ascontiguousarray(_SYMMETRIES[sym](x[i:i + READ_BLOCK]))
                var[j * n + i:j * n + i + part.shape[0]].assign(part)
    cache["tf_store"], cache["tf_syms"] = var, tuple(symmetries)
    cache.pop("tf_fn_key", None)
    return var, tuple(symmetries)


def _numpy_tf_dataset(batches: ArrayBatches, prefetch: bool = True):
    """tf.data over :class:`ArrayBatches` through ``tf.numpy_function`` (used when the store is too large)."""
    import tensorflow as tf

    h, w, c = batches.split.image_shape

    def load(i):
        x, y = batches[int(i)]
        return x["image"], x["redshift"], y

    def make_batch(i):
        image, z, y = tf.numpy_function(load, [i], [tf.float32, tf.float32, tf.float32], stateful=False)
        image.set_shape((None, h, w, c))
        z.set_shape((None, 1))
        y.set_shape((None, 1))
        return {"image": image, "redshift": z}, y

    ds = tf.data.Dataset.range(len(batches)).map(make_batch, num_parallel_calls=tf.data.AUTOTUNE,
                                                  deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE) if prefetch else ds


def tf_dataset(prepared_split: PreparedSplit, batch_size: int = 32, plan: EpochPlan | None = None, *,
               prefetch: bool = True):
    """A ``tf.data.Dataset`` of one epoch for the TensorFlow backend.

    The split's images live in memory as a TensorFlow variable (built once
    and cached on the split: the ``cache`` stage), together with their
    left-right-flipped and, for rotations, transposed copies.  The epoch's
    plan (the shuffle and each position's augmentation) is cut into batches
    and each is mapped, in parallel and in order, by a batch function traced
    once per split: one gather of padded image rows -- every flip / 90-degree
    rotation is a copy read with its rows in normal or reversed order (see
    :func:`_row_plan`), the padding is stored with the rows (see
    :func:`_tf_store`); batches are prefetched (``AUTOTUNE``).
    Deterministic: the same plan gives exactly the batches of
    :func:`array_dataset` (the same rows of the same copies).

    Per epoch this costs ~0.2 ms of CPU per batch of 32 and ~30 ms to build
    the dataset and its iterator, about what a cached in-memory
    ``from_tensor_slices`` pipeline costs (``benchmarks/bench_pipeline.py``);
    doing the flips with TensorFlow ops per batch costs 2-10x more.

    Memory: the variable holds 1 (no augmentation), 2 (flips) or 4 (flips
    and rotations) copies of the split, with the left/right padding (x 1.42
    for the thesis's 50 -> 71), in addition to the numpy arrays.  If
    that exceeds :data:`MAX_AUGMENT_STORE_BYTES` (e.g. 10 bands with
    rotations), the batches of :class:`ArrayBatches` are used through
    ``tf.numpy_function`` instead (same batches, slower augmentation).
    """
    import_keras()  # TensorFlow with its import-time log lines silenced
    import tensorflow as tf

    plan = _check_batch_args(prepared_split, batch_size, plan)
    s = prepared_split
    n, h, w, c = s.x_image.shape
    bs = int(batch_size)
    if plan.rot_k.any() and h != w:
        raise InputError(f"90-degree rotations need square images; got {h}x{w}")
    _pad_widths(s.pad, h, w, s.pad_size)
    sym = _plan_symmetries(plan)
    needed = tuple(sorted(set(sym.tolist()) | set(s._cache.get("tf_syms") or ())))
    if _tf_store_bytes(s, len(needed)) > MAX_AUGMENT_STORE_BYTES and len(needed) > 1:
        return _numpy_tf_dataset(ArrayBatches(s, bs, plan), prefetch)
    assemble, syms = _tf_assemble(s, needed)
    position = np.full(8, -1, np.int64)
    position[list(syms)] = np.arange(len(syms))
    src = position[sym] * n + plan.order                      # row of the store for each position
    ds = tf.data.Dataset.from_tensor_slices((src, plan.order.astype(np.int64))).batch(bs)
    # fixed, small parallelism: a batch is one gather, and a dataset lives for one epoch only,
    # too short for tf.data's autotuner, which starts cold in every epoch
    ds = ds.map(assemble, num_parallel_calls=2, deterministic=True)
    options = tf.data.Options()
    options.experimental_optimization.apply_default_optimizations = False   # nothing to fuse; saves ~5 ms/epoch
    ds = ds.with_options(options)
    if prefetch:
        ds = ds.prefetch(4)
    return ds


def _tf_assemble(split: PreparedSplit, symmetries: tuple[int, ...]):
    """The traced batch function of a split (cached): (store rows, samples) -> padded batch.

    Tracing it once per split, not once per epoch, keeps an epoch's dataset
    cheap to build (a few ms).
    """
    import tensorflow as tf

    cache = split._cache
    store, syms = _tf_store(split, symmetries)
    key = (id(store), split.pad, split.pad_size)
    if cache.get("tf_fn_key") == key:
        return cache["tf_fn"], syms
    n, h, w, c = split.x_image.shape
    (top, bottom), (left, right) = _pad_widths(split.pad, h, w, split.pad_size)
    paddings = tf.constant([[0, 0], [top, bottom], [left, right], [0, 0]])
    padded = bool(top or bottom or left or right)
    z_t = tf.constant(split.x_z)
    y_t = tf.constant(split.y)
    spec = tf.TensorSpec([None], tf.int64)

    @tf.function(input_signature=[spec, spec], autograph=False)
    def assemble(rows, idx):
        x = tf.gather(store, rows)
        if padded:
            x = tf.pad(x, paddings)
        return {"image": x, "redshift": tf.gather(z_t, idx)}, tf.gather(y_t, idx)

    cache["tf_fn"], cache["tf_fn_key"] = assemble, key
    return assemble, syms


_BACKENDS = ("auto", "tf", "array")


def _resolve_backend(backend: str) -> str:
    if backend not in _BACKENDS:
        raise InputError(f"unknown input backend '{backend}': choose one of {', '.join(_BACKENDS)} ('tf' = "
                         "tf.data, 'array' = backend-neutral keras PyDataset)")
    if backend == "auto":
        return "tf" if import_keras().backend.backend() == "tensorflow" else "array"
    return backend


def make_train_input(prepared: Prepared, *, seed: int, epoch: int, batch_size: int = 32,
                     augment: str = "none", backend: str = "auto"):
    """Training input of one epoch: the plan of (seed, epoch), augmented on the fly.

    Uses tf.data when the Keras backend is TensorFlow and a backend-neutral
    PyDataset otherwise (``backend="auto"``); ``"tf"`` or ``"array"`` force a
    path.  Both give identical batches.  Build one per epoch, and pass
    ``shuffle=False`` to ``fit`` (the plan already shuffles; Keras would
    otherwise reorder a PyDataset's batches with Python's unseeded ``random``)::

        val_input = make_eval_input(prepared, "val", batch_size=32)
        for epoch in range(start, epochs):
            ds = make_train_input(prepared, seed=seed, epoch=epoch, batch_size=32, augment="flip")
            model.fit(ds, initial_epoch=epoch, epochs=epoch + 1, validation_data=val_input, shuffle=False)
    """
    plan = epoch_plan(prepared.train.n, seed, epoch, augment)
    if _resolve_backend(backend) == "tf":
        return tf_dataset(prepared.train, batch_size, plan)
    return array_dataset(prepared.train, batch_size, plan)


def make_eval_input(prepared: Prepared, split: str | PreparedSplit = "val", batch_size: int = 32,
                    backend: str = "auto"):
    """Evaluation input: fixed order, no augmentation, padded like the training input.

    ``split`` is ``"train"``, ``"val"``, ``"test"`` or a :class:`PreparedSplit`.
    """
    s = split if isinstance(split, PreparedSplit) else prepared[split]
    if _resolve_backend(backend) == "tf":
        return tf_dataset(s, batch_size, None)
    return array_dataset(s, batch_size, None)


# =========================================================================== the book's Fig. 21

def pipeline_example(data_or_images, index: int = 0, *, bands="thesis", pad: str = "thesis",
                     pad_size: int = THESIS_PAD_SIZE, flip: str = "lr") -> list[dict]:
    """One cluster through each step of the thesis's data preparation (thesis Fig. 21).

    Parameters
    ----------
    data_or_images : ClusterData or ndarray (N, 50, 50, 10)
        Loaded with all bands.
    index : int
        Which cluster.
    bands : str or sequence of int
        Band selection (default the thesis's 2-4).
    pad : {"thesis", "center", "none"}
    flip : {"lr", "ud"}
        The flip shown in the last step.

    Returns
    -------
    list of dict
        One per step, with ``step``, ``array`` (H, W, C), ``shape`` (the
        thesis's (samples, x, y, frequencies) label) and ``note``.  The
        flipped step is done the cmlib way (flip the 50 x 50 image, then pad:
        the cluster stays top-left); a fifth step shows flipping after
        padding, which moves the cluster to another corner.
    """
    if isinstance(data_or_images, ClusterData):
        images, loaded = data_or_images.images, data_or_images.bands
        n_file_bands = data_or_images.band_edges_ev.size - 1
    else:
        images = np.asarray(data_or_images)
        loaded = tuple(range(images.shape[-1]))
        n_file_bands = images.shape[-1]
    if images.ndim != 4:
        raise InputError(f"pipeline_example expects (N, H, W, C) images or ClusterData; got shape {images.shape}")
    n = images.shape[0]
    if not -n <= index < n:
        raise InputError(f"cluster index {index} out of range for {n} clusters")
    if flip not in ("lr", "ud"):
        raise InputError(f"flip must be 'lr' or 'ud', got '{flip}'")
    want = _normalise_bands(bands, n_file_bands)
    missing = [b + 1 for b in want if b not in loaded]
    if missing:
        raise InputError(f"bands {missing} (1-based) are not in the data; load all bands for this figure")
    raw = images[index]
    sel = raw[..., [loaded.index(b) for b in want]]
    padded = pad_images(sel, pad, pad_size)
    op = flip_lr if flip == "lr" else flip_ud
    flipped = pad_images(op(sel[None])[0], pad, pad_size)
    flipped_after = op(padded[None])[0]
    label = ", ".join(str(b + 1) for b in want)

    def shape(a: np.ndarray) -> str:
        return f"({n}, {a.shape[0]}, {a.shape[1]}, {a.shape[2]})"

    return [
        {"step": "raw", "array": raw, "shape": shape(raw), "note": f"all {raw.shape[-1]} bands"},
        {"step": "bands", "array": sel, "shape": shape(sel), "note": f"bands {label} selected"},
        {"step": "padded", "array": padded, "shape": shape(padded),
         "note": f"padded to {padded.shape[0]}x{padded.shape[1]} ({pad})"},
        {"step": "flipped", "array": flipped, "shape": shape(flipped),
         "note": f"flip {flip} of the 50x50 image, then pad (cmlib: the cluster stays in place)"},
        {"step": "flipped-after-padding", "array": flipped_after, "shape": shape(flipped_after),
         "note": f"flip {flip} after padding: the cluster moves to another corner"},
    ]
