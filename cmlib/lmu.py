"""Import the LMU lab-course eFEDS mock files into a cmlib data file.

Readers of the LMU "Machine Learning X-ray cluster masses" lab course have
two files built from the eFEDS mock (the 7946 clusters of the thesis, Sect. 3.1;
the lab course's repository, gitlab.physik.uni-muenchen.de/krippendorf-lab):

* ``eFEDS_01to18-3dImgs-7946clus-300pix-50pix-ext_det_thr.pickle`` (~1.8 GB):
  a pickled ``dict`` with ``"gsm_3dImgs"`` -> list of (50, 50, 10) photon-count
  images and ``"cluster"`` -> list of cluster ids, in catalogue order;
* ``eFEDS_mock_clusters_catalog_01to18-ext_det_thr.fits`` (or a feather
  ``.f`` conversion): one row per cluster with the linear mass ``M500c``
  [Msun], the redshift ``z`` and many more columns.

:func:`import_lmu` converts them into the cmlib HDF5 schema: label
``log_m500 = log10(M500c)``, ``z`` from the catalogue, every catalogue column
kept under ``/catalog``, and the names and SHA-256 of both inputs recorded.

Matching images to catalogue rows
---------------------------------
The pickle is in catalogue order (peers.md), and the catalogue has no
documented id column, so rows are matched **by order**.  As a check, every
catalogue column is compared with the pickle's ids: a column equal to them
(in order) is recorded as ``id_column``; a column holding the same ids in a
*different* order is an error (the images would be mislabelled); no matching
column leaves the order rule alone, recorded in ``id_rule``.

Safety and memory
-----------------
Unpickling can execute arbitrary code, so it is refused unless
``trust_pickle=True`` (``--trust-pickle``).  Unpickling necessarily builds the
whole dict once (about the pickle's size in memory); the images are then
written block by block and each list item is released as soon as it is
written, so the peak stays near one copy of the pickle.
"""
from __future__ import annotations

import bz2
import difflib
import gzip
import hashlib
import json
import lzma
import pickle
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import schema
from ._io import prepare_output, sha256_file
from .errors import DataFileError, InputError, UnsafeInputError

IMAGE_SHAPE = (schema.IMAGE_SIZE, schema.IMAGE_SIZE, schema.N_BANDS)
FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz")
FEATHER_SUFFIXES = (".f", ".feather", ".ftr", ".arrow")
#: Multi-dimensional catalogue columns with at most this many values per row are
#: flattened into ``name_0 .. name_k``; wider ones are skipped (with a note).
MAX_FLATTEN = 16
#: Units documented for the lab catalogue (peers.md: M500c is linear, in Msun).
KNOWN_UNITS = {"M500c": "Msun"}
KNOWN_DESCRIPTIONS = {"M500c": "true mass M500c, linear (the label is log10 of it)", "z": "redshift"}


# --------------------------------------------------------------------------- catalogue

@dataclass
class _Column:
    name: str            # original name in the catalogue
    values: np.ndarray   # (N,) numeric (native byte order) or str
    unit: str = ""
    description: str = ""


@dataclass
class _Catalog:
    columns: list                      # list[_Column], stored order
    n_rows: int
    fmt: str                           # "fits" | "feather"
    original_names: list
    stored_names: dict = field(default_factory=dict)   # original -> [stored names] ([] = skipped)
    notes: list = field(default_factory=list)

    def get(self, name: str) -> _Column | None:
        for c in self.columns:
            if c.name == name:
                return c
        return None


def _catalog_format(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(FITS_SUFFIXES):
        return "fits"
    if name.endswith(FEATHER_SUFFIXES):
        return "feather"
    raise InputError(f"cannot tell the format of the catalogue '{path}' from its name: use a FITS file "
                     f"({', '.join(FITS_SUFFIXES)}) or a feather file ({', '.join(FEATHER_SUFFIXES)}); "
                     "rename it if it is one of these")


def _native(a: np.ndarray) -> np.ndarray:
    if a.dtype.byteorder not in ("=", "|") and a.dtype.byteorder != ("<" if sys.byteorder == "little" else ">"):
        return a.astype(a.dtype.newbyteorder("="))
    return a


def _normalise_column(name: str, raw: Any, mask: np.ndarray | None, unit: str, description: str,
                      notes: list) -> list[_Column]:
    """One catalogue column -> stored 1-D columns (numeric or str); [] if it cannot be kept."""
    a = np.asarray(raw)
    if a.ndim == 0:
        notes.append(f"column '{name}' is a scalar, not a per-row column: skipped")
        return []
    if a.ndim > 1:
        width = int(np.prod(a.shape[1:]))
        if width > MAX_FLATTEN:
            notes.append(f"column '{name}' has {a.shape[1:]} values per row (more than {MAX_FLATTEN}): skipped")
            return []
        flat = a.reshape(a.shape[0], width)
        fmask = None if mask is None else np.asarray(mask).reshape(a.shape[0], -1)
        notes.append(f"column '{name}' with {a.shape[1:]} values per row flattened into "
                     f"{name}_0..{name}_{width - 1}")
        out = []
        for j in range(width):
            out += _normalise_column(f"{name}_{j}", flat[:, j], None if fmask is None else fmask[:, j], unit,
                                     f"{description} (element {j} of '{name}')".strip(), notes)
        return out
    kind = a.dtype.kind
    has_mask = mask is not None and bool(np.any(mask))
    if kind in "fc":
        if kind == "c":
            notes.append(f"column '{name}' is complex: skipped")
            return []
        v = _native(a).copy()
        if has_mask:
            v[np.asarray(mask, bool)] = np.nan
            notes.append(f"column '{name}': {int(np.sum(mask))} missing value(s) stored as NaN")
        return [_Column(name, v, unit, description)]
    if kind in "iub":
        v = _native(a)
        if kind == "b":
            v = v.astype(np.uint8)
            description = (description + " (boolean stored as 0/1)").strip()
        if has_mask:
            v = v.astype(np.float64)
            v[np.asarray(mask, bool)] = np.nan
            notes.append(f"column '{name}': {int(np.sum(mask))} missing value(s); stored as float64 with NaN")
        return [_Column(name, np.ascontiguousarray(v), unit, description)]
    if kind in "USO":
        items = a.tolist()
        bad = 0
        out = []
        for i, item in enumerate(items):
            if (mask is not None and mask[i]) or item is None:
                out.append("")
                bad += 1
            elif isinstance(item, bytes):
                out.append(item.decode("utf-8", "replace").rstrip())
            elif isinstance(item, (str, int, float, bool, np.generic)):
                out.append(str(item).rstrip() if isinstance(item, str) else str(item))
            else:
                notes.append(f"column '{name}' holds {type(item).__name__} values: skipped")
                return []
        if bad:
            notes.append(f"column '{name}': {bad} missing value(s) stored as ''")
        if kind == "O" and all(not isinstance(x, (str, bytes)) for x in items if x is not None) and not bad:
            try:
                return _normalise_column(name, np.asarray(items, dtype=float), None, unit, description, notes)
            except (TypeError, ValueError):
                pass
        return [_Column(name, np.asarray(out, dtype=object), unit, description)]
    if kind in "mM":
        notes.append(f"column '{name}' ({a.dtype}) stored as text")
        return [_Column(name, np.asarray([str(x) for x in a.tolist()], dtype=object), unit, description)]
    notes.append(f"column '{name}' has unsupported dtype {a.dtype}: skipped")
    return []


def _read_fits(path: Path, notes: list) -> tuple[list, int, list]:
    from astropy.table import Table

    try:
        table = Table.read(path, format="fits", character_as_bytes=False)
    except Exception as exc:  # astropy raises OSError, ValueError, TypeError ... for bad files
        raise DataFileError(f"cannot read the FITS catalogue '{path}': {type(exc).__name__}: {exc}. Check that "
                            "it is the lab's catalogue (a FITS binary table) and not truncated.") from exc
    cols: list = []
    for name in table.colnames:
        c = table[name]
        mask = np.ma.getmaskarray(c) if getattr(c, "mask", None) is not None else None
        data = c.data.data if isinstance(c.data, np.ma.MaskedArray) else np.asarray(c)
        unit = "" if c.unit is None else c.unit.to_string()
        cols += _normalise_column(name, data, mask, unit, c.description or "", notes)
    return cols, len(table), list(table.colnames)


def _read_feather(path: Path, notes: list) -> tuple[list, int, list]:
    import pyarrow as pa
    import pyarrow.feather as feather

    try:
        table = feather.read_table(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError ...
        raise DataFileError(f"cannot read the feather catalogue '{path}': {type(exc).__name__}: {exc}. Check "
                            "that it is a feather (Arrow IPC) file and not truncated.") from exc
    cols: list = []
    names = list(table.column_names)
    for name in names:
        if name.startswith("__index_level_"):
            notes.append(f"column '{name}' is a pandas index: skipped")
            continue
        col = table.column(name)
        typ = col.type
        if pa.types.is_dictionary(typ):
            col = col.cast(typ.value_type)
            typ = col.type
        mask = None
        if col.null_count:
            mask = np.asarray(col.is_null().to_numpy(zero_copy_only=False), bool)
        if pa.types.is_integer(typ) or pa.types.is_floating(typ) or pa.types.is_boolean(typ):
            if mask is not None:
                filled = col.fill_null(0 if not pa.types.is_boolean(typ) else False)
                data = filled.to_numpy(zero_copy_only=False)
            else:
                data = col.to_numpy(zero_copy_only=False)
        elif pa.types.is_string(typ) or pa.types.is_large_string(typ) or pa.types.is_binary(typ):
            data = np.asarray(col.to_pylist(), dtype=object)
        elif pa.types.is_fixed_size_list(typ) or pa.types.is_list(typ):
            try:
                data = np.asarray(col.to_pylist(), dtype=float)
            except (TypeError, ValueError):
                notes.append(f"column '{name}' ({typ}) has ragged lists: skipped")
                continue
        else:
            data = np.asarray([None if v is None else str(v) for v in col.to_pylist()], dtype=object)
            notes.append(f"column '{name}' ({typ}) stored as text")
        unit = ""
        meta = table.schema.field(name).metadata or {}
        if b"unit" in meta:
            unit = meta[b"unit"].decode("utf-8", "replace")
        cols += _normalise_column(name, data, mask, unit, "", notes)
    return cols, table.num_rows, names


def _read_catalog(path: Path) -> _Catalog:
    fmt = _catalog_format(path)
    notes: list = []
    cols, n_rows, names = (_read_fits if fmt == "fits" else _read_feather)(path, notes)
    for c in cols:
        base = c.name.split("_")[-1] if "_" in c.name else ""
        if not c.unit:
            c.unit = KNOWN_UNITS.get(c.name, {"arcmin": "arcmin", "kpc": "kpc"}.get(base, ""))
        if not c.description:
            c.description = KNOWN_DESCRIPTIONS.get(c.name, "")
    cat = _Catalog(columns=cols, n_rows=int(n_rows), fmt=fmt, original_names=names, notes=notes)
    # HDF5-safe, unique names
    used: set = set()
    for c in cols:
        stored = c.name.replace("/", "_").strip() or "column"
        if stored in used:
            k = 2
            while f"{stored}_{k}" in used:
                k += 1
            stored = f"{stored}_{k}"
            notes.append(f"column '{c.name}' stored as '{stored}' (name clash)")
        elif stored != c.name:
            notes.append(f"column '{c.name}' stored as '{stored}' (HDF5 names cannot contain '/')")
        used.add(stored)
        cat.stored_names[c.name] = stored
    return cat


def _require_column(cat: _Catalog, name: str, what: str, path: Path) -> np.ndarray:
    col = cat.get(name)
    if col is None:
        present = [c.name for c in cat.columns]
        close = difflib.get_close_matches(name, present, n=3, cutoff=0.6) + [
            c for c in present if c.lower() == name.lower()]
        hint = f" Did you mean {', '.join(sorted(set(close)))}?" if close else ""
        raise DataFileError(f"the catalogue '{path}' has no column '{name}' ({what}); its columns are "
                            f"{', '.join(present[:40])}{' ...' if len(present) > 40 else ''}.{hint} Use the "
                            f"lab's catalogue, or rename the column to '{name}'.")
    if col.values.dtype.kind not in "fiu":
        raise DataFileError(f"the catalogue column '{name}' ({what}) in '{path}' is not numeric "
                            f"({col.values.dtype}). Use the lab's catalogue.")
    return np.asarray(col.values, dtype=np.float64)


def _labels(cat: _Catalog, path: Path) -> tuple[np.ndarray, np.ndarray]:
    m500 = _require_column(cat, "M500c", "the linear cluster mass M500c in Msun", path)
    z = _require_column(cat, "z", "the redshift", path)
    bad = ~(np.isfinite(m500) & (m500 > 0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataFileError(f"the catalogue '{path}' has {int(bad.sum())} row(s) whose M500c is missing, NaN, "
                            f"infinite or not positive (first: row {i}, value {m500[i]!r}); a mass label is "
                            "needed for every cluster. Remove those rows from the catalogue AND their images "
                            "from the pickle, or use the unmodified lab files.")
    log_m = np.log10(m500)
    lo, hi = schema.LOG_M500_RANGE
    bad = (log_m < lo) | (log_m > hi)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        looks_log = float(np.nanmax(m500)) < 100
        raise DataFileError(
            f"the catalogue '{path}': {int(bad.sum())} mass(es) give log10(M500c/Msun) outside [{lo}, {hi}] "
            f"(first: row {i}, M500c = {m500[i]:.4g})."
            + (" The values look like log10 masses already; the importer expects M500c linear in Msun "
               "(peers.md): convert the column with 10**M500c." if looks_log else
               " Check the column's unit (expected Msun, linear).")
        )
    zlo, zhi = schema.Z_RANGE
    bad = ~(np.isfinite(z) & (z >= zlo) & (z <= zhi))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataFileError(f"the catalogue '{path}': {int(bad.sum())} redshift(s) are missing or outside "
                            f"[{zlo}, {zhi}] (first: row {i}, z = {z[i]!r}). Use the unmodified lab catalogue.")
    return log_m, z


# --------------------------------------------------------------------------- pickle

class _HashingReader:
    """A binary file wrapper that hashes every byte read (so the pickle is read only once)."""

    def __init__(self, fh) -> None:
        self._fh = fh
        self.sha256 = hashlib.sha256()
        self.n_read = 0

    def read(self, size: int = -1) -> bytes:
        data = self._fh.read(size)
        self.sha256.update(data)
        self.n_read += len(data)
        return data

    def readinto(self, buf) -> int:
        n = self._fh.readinto(buf)
        if n:
            self.sha256.update(memoryview(buf)[:n])
            self.n_read += n
        return n

    def readline(self, size: int = -1) -> bytes:
        data = self._fh.readline(size)
        self.sha256.update(data)
        self.n_read += len(data)
        return data

    def drain(self) -> None:
        while self.read(1 << 20):
            pass


def _unpickle(path: Path) -> tuple[Any, str, str]:
    """(object, sha256 of the file, compression) -- reads the file exactly once."""
    with open(path, "rb") as raw:
        magic = raw.read(6)
        raw.seek(0)
        reader = _HashingReader(raw)
        if magic[:2] == b"\x1f\x8b":
            compression, stream = "gzip", gzip.GzipFile(fileobj=reader, mode="rb")
        elif magic[:3] == b"BZh":
            compression, stream = "bz2", bz2.BZ2File(reader, mode="rb")
        elif magic == b"\xfd7zXZ\x00":
            compression, stream = "xz", lzma.LZMAFile(reader, mode="rb")
        elif magic[:4] == b"PK\x03\x04":
            raise DataFileError(f"'{path}' is a zip archive: unzip it and pass the .pickle inside")
        else:
            compression, stream = "none", reader
        try:
            obj = pickle.load(stream)
        except MemoryError:
            raise DataFileError(f"not enough memory to unpickle '{path}' ({path.stat().st_size / 1e9:.1f} GB): "
                                "unpickling needs about the file's size in RAM. Close other programs or use "
                                "a machine with more memory.") from None
        except (EOFError, pickle.UnpicklingError) as exc:
            raise DataFileError(f"'{path}' is not a complete pickle ({type(exc).__name__}: {exc}); it may be "
                                "truncated (an interrupted download?). Download it again.") from exc
        except (ImportError, AttributeError) as exc:
            raise DataFileError(f"unpickling '{path}' needs a module or class that is not available "
                                f"({exc}). The lab's pickle holds only numpy arrays and lists; check that this "
                                "is the right file.") from exc
        except Exception as exc:  # anything else the pickled code raised
            raise DataFileError(f"cannot unpickle '{path}': {type(exc).__name__}: {exc}. Check that this is "
                                "the lab's images pickle.") from exc
        reader.drain()
        return obj, reader.sha256.hexdigest(), compression


def _ids_array(raw: Any, n: int) -> tuple[np.ndarray, np.ndarray | None, list]:
    """(int64 ids, original ids as str if they are not integers, notes)."""
    notes: list = []
    a = np.asarray(raw if isinstance(raw, np.ndarray) else list(raw))
    if a.ndim != 1:
        a = a.reshape(len(a), -1)[:, 0] if a.ndim > 1 and a.size == len(a) else a
    if a.ndim != 1:
        raise DataFileError(f"the pickle's 'cluster' entry has shape {a.shape}; expected one id per image")
    if a.dtype.kind in "iu":
        return a.astype(np.int64), None, notes
    if a.dtype.kind == "f" and np.all(np.isfinite(a)) and np.all(a == np.round(a)) and np.abs(a).max() < 2 ** 53:
        notes.append("pickle cluster ids are integer-valued floats: stored as int64")
        return a.astype(np.int64), None, notes
    text = np.asarray([x.decode() if isinstance(x, bytes) else str(x) for x in a.tolist()], dtype=object)
    try:
        return np.asarray([int(t) for t in text], dtype=np.int64), None, notes
    except ValueError:
        notes.append("pickle cluster ids are not integers: cluster_id = row number 0..N-1; the original ids "
                     "are kept in /catalog/lmu_cluster")
        return np.arange(n, dtype=np.int64), text, notes


def _key(values: np.ndarray) -> np.ndarray | None:
    """Comparable form of an id-like column (float64 for numbers, str for text); None if unusable."""
    if values.dtype.kind in "iu":
        return values.astype(np.float64)
    if values.dtype.kind == "f":
        return values if np.all(np.isfinite(values)) else None
    return np.asarray([str(v) for v in values], dtype=object)


def _match_ids(cat: _Catalog, ids: np.ndarray, ids_text: np.ndarray | None, path: Path) -> tuple[str, list]:
    """Apply the matching rule (module docstring): returns (id_rule text, matching column names)."""
    want = _key(ids) if ids_text is None else ids_text
    want_num = ids_text is None
    matched = []
    for c in cat.columns:
        v = c.values
        if (v.dtype.kind in "fiu") != want_num:
            continue
        k = _key(v)
        if k is None or k.shape != want.shape:
            continue
        if np.array_equal(k, want):
            matched.append(c.name)
        elif np.array_equal(np.sort(k), np.sort(want)):
            raise DataFileError(
                f"the catalogue column '{c.name}' in '{path}' holds the same ids as the pickle's 'cluster' list, "
                "but in a different order: the images and the catalogue rows are not aligned, and matching by "
                "row order would mislabel them. Sort the catalogue by that column into the pickle's order (or "
                "use the unmodified lab files).")
    if matched:
        return (f"rows matched by order; verified: catalogue column(s) {', '.join(matched)} equal the pickle's "
                "cluster ids row by row"), matched
    return ("rows matched by order (peers.md: the pickle is in catalogue order); no catalogue column equals "
            "the pickle's cluster ids, so the order could not be cross-checked"), []


# --------------------------------------------------------------------------- import

def _say(progress: bool, text: str) -> None:
    if progress:
        print(f"import-lmu: {text}", file=sys.stderr, flush=True)


def import_lmu(images_pickle, catalog, out, *, trust_pickle: bool = False, overwrite: bool = False,
               progress: bool = True, block_size: int = 128) -> Path:
    """Convert the LMU lab-course pickle and catalogue into a cmlib data file.

    Parameters
    ----------
    images_pickle : path-like
        The pickled dict with ``"gsm_3dImgs"`` (list of (50, 50, 10) images)
        and ``"cluster"`` (list of ids), in catalogue order.  Plain or
        gzip/bz2/xz-compressed.
    catalog : path-like
        FITS (``.fits``) or feather (``.f``, ``.feather``) catalogue with
        ``M500c`` [Msun, linear] and ``z``.
    out : path-like
        Output HDF5 file (written atomically).
    trust_pickle : bool
        Must be True to unpickle (unpickling can execute code).
    overwrite : bool
        Replace an existing ``out``.
    progress : bool
        Progress lines on stderr.
    block_size : int
        Clusters written per block.

    Returns
    -------
    Path
        ``out``.

    Raises
    ------
    UnsafeInputError
        ``trust_pickle`` is False.
    DataFileError
        Missing or unreadable inputs, missing keys or columns, counts or ids
        that disagree, NaN/negative counts, bad masses or redshifts.
    OutputExistsError
        ``out`` exists and ``overwrite`` is False.
    """
    from .schema import DataFileWriter

    images_pickle, catalog, out = Path(images_pickle), Path(catalog), Path(out)
    for p, what in ((images_pickle, "images pickle"), (catalog, "catalogue")):
        if not p.exists():
            raise DataFileError(f"the {what} '{p}' does not exist: check the path (the LMU lab-course files "
                                "are named eFEDS_...-3dImgs-...pickle and eFEDS_mock_clusters_catalog_...fits)")
        if not p.is_file():
            raise DataFileError(f"the {what} '{p}' is not a file")
    if not trust_pickle:
        raise UnsafeInputError(
            f"refusing to unpickle '{images_pickle}': loading a pickle can execute arbitrary code hidden in the "
            "file. Only if it comes from a trusted source (e.g. the LMU lab course itself), pass --trust-pickle "
            "(trust_pickle=True).")
    if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)) or block_size < 1:
        raise InputError(f"block_size must be a positive integer, got {block_size!r}")
    for p in (images_pickle, catalog):
        if out.exists() and out.resolve() == p.resolve():
            raise InputError(f"the output '{out}' is one of the inputs: choose another output path")
    prepare_output(out, overwrite=overwrite, what="data file")

    _say(progress, f"reading the catalogue {catalog.name}")
    cat = _read_catalog(catalog)
    log_m, z = _labels(cat, catalog)
    catalog_sha = sha256_file(catalog)

    size = images_pickle.stat().st_size
    _say(progress, f"unpickling {images_pickle.name} ({size / 1e9:.2f} GB; needs about as much memory)")
    obj, pickle_sha, compression = _unpickle(images_pickle)
    if not hasattr(obj, "keys") or not hasattr(obj, "__getitem__"):
        raise DataFileError(f"'{images_pickle}' holds a {type(obj).__name__}, not a dict with the keys "
                            "'gsm_3dImgs' (images) and 'cluster' (ids). Check that it is the lab's images pickle.")
    keys = [str(k) for k in obj.keys()]
    missing = [k for k in ("gsm_3dImgs", "cluster") if k not in keys]
    if missing:
        raise DataFileError(f"'{images_pickle}' lacks the key(s) {', '.join(repr(k) for k in missing)}; it has "
                            f"{', '.join(repr(k) for k in keys[:20]) or 'no keys'}. The lab's pickle holds "
                            "'gsm_3dImgs' (list of (50, 50, 10) images) and 'cluster' (ids).")
    images = obj["gsm_3dImgs"]
    ids_raw = obj["cluster"]
    obj = None  # only `images` now holds the arrays, so releasing its items frees them
    notes = list(cat.notes)
    if isinstance(images, np.ndarray) and images.dtype != object:
        release = False
        notes.append("the pickle holds the images as one array: it stays in memory until the import ends")
    else:
        images = images if isinstance(images, list) else list(images)
        release = True
    n = len(images)
    try:
        n_ids = len(ids_raw)
    except TypeError:
        raise DataFileError(f"the pickle's 'cluster' entry is a {type(ids_raw).__name__}, not a list of ids") from None
    if not (n == n_ids == cat.n_rows):
        raise DataFileError(f"the inputs disagree in length: {n} images ('gsm_3dImgs'), {n_ids} ids ('cluster') "
                            f"and {cat.n_rows} catalogue rows in '{catalog}'. They must describe the same "
                            "clusters in the same order: use matching files (the lab's 7946-cluster pair).")
    if n < 1:
        raise DataFileError(f"'{images_pickle}' holds no images")
    for i in range(n):
        shape = getattr(images[i], "shape", None)
        if shape is None:
            shape = np.shape(images[i])
        if tuple(shape) != IMAGE_SHAPE:
            raise DataFileError(f"image {i} in '{images_pickle}' has shape {tuple(shape)}; every image must be "
                                f"{IMAGE_SHAPE} (50 x 50 px, 10 bands of thesis Table 1).")
    ids, ids_text, id_notes = _ids_array(ids_raw, n)
    notes += id_notes
    uniq, counts = np.unique(ids if ids_text is None else ids_text.astype(str), return_counts=True)
    if uniq.size != n:
        raise DataFileError(f"the pickle's cluster ids are not unique ({int((counts > 1).sum())} repeated, e.g. "
                            f"{uniq[counts > 1][:5].tolist()}): check that it is the lab's images pickle.")
    id_rule, id_columns = _match_ids(cat, ids, ids_text, catalog)
    in_dtype = str(getattr(images[0], "dtype", np.asarray(images[0]).dtype))

    columns = {cat.stored_names[c.name]: ("str" if c.values.dtype.kind in "OUS" else c.values.dtype.str,
                                          c.unit, c.description) for c in cat.columns}
    values = {cat.stored_names[c.name]: c.values for c in cat.columns}
    if ids_text is not None:
        name = "lmu_cluster"
        while name in columns:
            name = "_" + name
        columns[name] = ("str", "", "cluster id from the pickle's 'cluster' list")
        values[name] = ids_text
    attrs = {
        "input_images_file": images_pickle.name,
        "input_images_sha256": pickle_sha,
        "input_images_bytes": int(size),
        "input_images_compression": compression,
        "input_images_dtype": in_dtype,
        "input_catalog_file": catalog.name,
        "input_catalog_sha256": catalog_sha,
        "input_catalog_bytes": int(catalog.stat().st_size),
        "catalog_format": cat.fmt,
        "catalog_columns": json.dumps(cat.original_names),
        "catalog_stored_columns": json.dumps(cat.stored_names),
        "id_rule": id_rule,
        "id_columns": json.dumps(id_columns),
        "label_definition": "log_m500 = log10(catalogue M500c [Msun]); z = catalogue z",
        "pixel_scale_note": "pixel scale not published for the lab data; schema.PIXEL_SCALE_ARCSEC assumed",
    }
    block = int(min(block_size, n))
    buf = np.empty((block,) + IMAGE_SHAPE, np.float32)
    lossy = 0
    with DataFileWriter(out, n, source="lmu-import", catalog_columns=columns, attrs=attrs,
                        overwrite=overwrite) as writer:
        for start in range(0, n, block):
            stop = min(n, start + block)
            m = stop - start
            for k in range(start, stop):
                img = images[k]
                a = img if isinstance(img, np.ndarray) else np.asarray(img)
                buf[k - start] = a
                if a.dtype != np.float32 and not np.array_equal(buf[k - start], a):
                    lossy += 1
                if release:
                    images[k] = None
            blk = buf[:m]
            finite = np.isfinite(blk).reshape(m, -1).all(axis=1)
            if not finite.all():
                i = start + int(np.flatnonzero(~finite)[0])
                raise DataFileError(f"image {i} (cluster id {ids[i]}) in '{images_pickle}' holds NaN or infinite "
                                    "counts; photon counts must be finite. Use the unmodified lab files.")
            negative = (blk < 0).reshape(m, -1).any(axis=1)
            if negative.any():
                i = start + int(np.flatnonzero(negative)[0])
                raise DataFileError(f"image {i} (cluster id {ids[i]}) in '{images_pickle}' holds negative counts; "
                                    "photon counts are >= 0. Use the unmodified lab files.")
            writer.write(images=blk, log_m500=log_m[start:stop], z=z[start:stop], cluster_id=ids[start:stop],
                         catalog={k: v[start:stop] for k, v in values.items()})
            _say(progress, f"wrote {stop}/{n} clusters")
        if lossy:
            notes.append(f"{lossy} image(s) had values not exactly representable in float32 (stored rounded)")
        writer.attrs["import_notes"] = json.dumps(notes)
    del images
    _say(progress, f"done: {out}")
    return out
