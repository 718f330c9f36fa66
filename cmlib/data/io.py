"""Reading a cmlib data file: validation (each problem named with its fix) and the ClusterData object."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .. import schema
from ..errors import DataFileError, InputError
from .bands import normalise_bands

#: Clusters read per block when streaming /images (about 51 MB of float32 at 10 bands).
READ_BLOCK = 512
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_CREATE_HINT = ("create one with `cmlib simulate --out FILE` (mock catalogue) or "
                "`cmlib import-lmu IMAGES.pickle CATALOG --out FILE` (LMU lab-course files)")


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
    if not p.is_file():  # a named pipe, socket or device: opening it could block forever
        raise DataFileError(f"'{p}' is not a regular file (a pipe, socket or device?); cmlib reads data files "
                            f"from disk: copy the data into a file first, or {_CREATE_HINT}.")
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
        sel = normalise_bands(bands, lay.n_bands)
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
