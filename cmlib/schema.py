"""The cmlib HDF5 data-file schema: one contract for the simulator, the importer and the loader.

Layout of a cmlib data file (``schema_version`` 1)::

    /images          float32 (N, 50, 50, 10)  photon counts per pixel and band
                     chunked one cluster per chunk, uncompressed
    /log_m500        float64 (N,)   log10(M500c / Msun), the label
    /z               float64 (N,)   redshift, the second network input
    /cluster_id      int64   (N,)   unique id of the cluster
    /catalog/<name>  (N,)     one dataset per catalogue column (true properties
                              of the simulated clusters, or every column of an
                              imported catalogue); attrs ``unit``, ``description``

Root attributes: see :data:`REQUIRED_ATTRS`; plus free-form provenance
(``generator_params`` as JSON, ``seed``, input file hashes for imports).

Bands are those of thesis Table 1: ten bands of 205 eV from 250 to 2300 eV.
The pixel scale is not published for the thesis data; cmlib assumes 24 arcsec
per output pixel (4 arcsec eSASS pixels x 300 rebinned to 50), so the 50 x 50
image spans 20 arcmin.  This is a documented assumption, stored per file.
"""
from __future__ import annotations

import numpy as np

SCHEMA_NAME = "cmlib-clusters"
SCHEMA_VERSION = 1

#: Band edges in eV, thesis Table 1: 250, 455, ..., 2300 (10 bands of 205 eV).
BAND_EDGES_EV = np.arange(250.0, 2300.0 + 1.0, 205.0)
N_BANDS = len(BAND_EDGES_EV) - 1
#: The thesis's band choice for the deep models (and, for comparability, the
#: basic CNN): bands 2-4, 455-1070 eV (thesis Sect. 3.2).  Zero-based indices.
THESIS_BANDS = (1, 2, 3)
IMAGE_SIZE = 50
#: Assumed pixel scale of the 50 x 50 images [arcsec / pixel] (see module docstring).
PIXEL_SCALE_ARCSEC = 24.0

#: Physical validity ranges used by the loader (wider than the thesis's
#: 13 < log M < 15, 0.01 < z < 1.5 selection, so real catalogues pass).
LOG_M500_RANGE = (12.0, 16.0)
Z_RANGE = (0.0, 3.0)

DATASETS = {
    "images": "photon counts per pixel and band (float32, N x 50 x 50 x 10)",
    "log_m500": "log10(M500c / Msun)",
    "z": "redshift",
    "cluster_id": "unique cluster id",
}

REQUIRED_ATTRS = {
    "schema": "always 'cmlib-clusters'",
    "schema_version": "integer schema version (1)",
    "band_edges_ev": "band edges in eV (N_BANDS + 1 values)",
    "pixel_scale_arcsec": "pixel scale in arcsec",
    "n_clusters": "number of clusters N",
    "source": "'cmlib.simulate' or 'lmu-import'",
    "created_with": "'cmlib <version>' of the writer",
    "content_sha256": "SHA-256 over images, log_m500, z, cluster_id (see cmlib._io.ArrayHasher)",
}

#: HDF5 storage options for /images: one cluster per chunk, uncompressed.  The images are smoothed
#: (non-integer) counts, which gzip-4 + shuffle shrank only to 0.86 of their size while costing
#: 1.9 s CPU to write and 0.47 s to read per 1024 clusters (0.07 s and 0.04 s uncompressed; lzf:
#: 0.92 of the size, 0.83 s to write): most of the 7946-cluster simulation's time went into gzip
#: (measured 2026-11-27, idle machine).  Files written with gzip before stay readable.
IMAGE_STORAGE = dict(chunks=(1, IMAGE_SIZE, IMAGE_SIZE, N_BANDS))


def band_label(i: int) -> str:
    """Human label of band ``i`` (zero-based), e.g. ``'band 2: 455-660 eV'``."""
    lo, hi = BAND_EDGES_EV[i], BAND_EDGES_EV[i + 1]
    return f"band {i + 1}: {lo:.0f}\u2013{hi:.0f} eV"


def band_table() -> list[dict]:
    """Thesis Table 1 as rows: band number (1-based), lower and upper energy in eV."""
    return [{"band": i + 1, "E_min_eV": float(BAND_EDGES_EV[i]), "E_max_eV": float(BAND_EDGES_EV[i + 1])}
            for i in range(N_BANDS)]


def content_hash(images_chunks, log_m500, z, cluster_id) -> str:
    """SHA-256 of a data set's content, independent of HDF5 layout.

    ``images_chunks`` is an iterable of image blocks in cluster order (so a
    large file can be hashed chunk by chunk); the other three are full arrays.
    """
    from ._io import ArrayHasher

    h = ArrayHasher()
    h.update_stream("images", (np.asarray(b, dtype=np.float32) for b in images_chunks))
    h.update("log_m500", np.asarray(log_m500, dtype=np.float64))
    h.update("z", np.asarray(z, dtype=np.float64))
    h.update("cluster_id", np.asarray(cluster_id, dtype=np.int64))
    return h.hexdigest()


class DataFileWriter:
    """Stream a cmlib data file to disk block by block, atomically.

    The file is written to a temporary name beside ``path`` and published
    (exclusively unless ``overwrite``: see :func:`cmlib._io.exclusive_atomic_path`)
    only after every cluster was written and the content hash was stored; an
    exception (Ctrl-C, a full disk) inside the ``with`` block removes the
    temporary file and leaves ``path`` untouched.  ``lock=False`` when the
    caller already holds the path's lock (:func:`cmlib._io.output_lock`).

    Example::

        cols = {"M500c": ("f8", "Msun", "true mass M500c")}
        with DataFileWriter("out.h5", n=100, source="cmlib.simulate",
                            catalog_columns=cols, attrs={"seed": 0}) as w:
            for block in blocks:
                w.write(images=..., log_m500=..., z=..., cluster_id=..., catalog={"M500c": ...})

    Blocks must be written in cluster order; their sizes are free.
    """

    def __init__(self, path, n: int, *, source: str, catalog_columns: dict | None = None,
                 attrs: dict | None = None, overwrite: bool = False,
                 image_shape: tuple[int, int, int] = (IMAGE_SIZE, IMAGE_SIZE, N_BANDS), lock: bool = True):
        from ._io import ArrayHasher, exclusive_atomic_path

        if int(n) < 1:
            from .errors import InputError

            raise InputError(f"a data file needs at least one cluster, got n={n}")
        self.path = path
        self.n = int(n)
        self.source = source
        self.attrs = dict(attrs or {})
        self.catalog_columns = dict(catalog_columns or {})
        self.image_shape = tuple(image_shape)
        self._ctx = exclusive_atomic_path(path, overwrite=overwrite, what="data file", lock=lock)
        self._hash_images = ArrayHasher()
        self._pos = 0
        self._file = None

    # -- context management -------------------------------------------------
    def __enter__(self) -> "DataFileWriter":
        import h5py

        self._tmp = self._ctx.__enter__()
        try:
            f = h5py.File(self._tmp, "w")
        except BaseException as exc:
            self._abort(exc)
            if isinstance(exc, OSError):
                raise _disk_error(self.path, exc, self) from exc
            raise
        self._file = f
        try:
            self._create_layout(f)
        except BaseException as exc:
            self._abort(exc)
            raise
        return self

    def _create_layout(self, f) -> None:
        import h5py

        n = self.n
        f.create_dataset("images", shape=(n,) + self.image_shape, dtype="f4",
                         **{**IMAGE_STORAGE, "chunks": (1,) + self.image_shape})
        f.create_dataset("log_m500", shape=(n,), dtype="f8")
        f.create_dataset("z", shape=(n,), dtype="f8")
        f.create_dataset("cluster_id", shape=(n,), dtype="i8")
        for key, desc in DATASETS.items():
            f[key].attrs["description"] = desc
        g = f.create_group("catalog")
        for name, (dtype, unit, description) in self.catalog_columns.items():
            dt = h5py.string_dtype() if dtype in ("str", "S", "U", object) else dtype
            d = g.create_dataset(name, shape=(n,), dtype=dt,
                                 **({"compression": "gzip", "shuffle": True} if dt is not None else {}))
            d.attrs["unit"] = unit or ""
            d.attrs["description"] = description or ""

    def _abort(self, exc: BaseException | None) -> None:
        """Close the file (ignoring errors: a full disk fails the close too) and remove the temporary file."""
        f, self._file = self._file, None
        if f is not None:
            try:
                f.close()
            except Exception:   # noqa: BLE001 - the original error is what the user needs to see
                # HDF5 keeps the file's state; its exit handler would flush it again and crash
                self.unclean_close = True
        exc = exc if exc is not None else RuntimeError("aborted")
        try:
            self._ctx.__exit__(type(exc), exc, exc.__traceback__)
        except BaseException as again:   # the context re-raises what it was given: that is expected
            if again is not exc:
                raise

    def write(self, *, images, log_m500, z, cluster_id, catalog: dict | None = None) -> None:
        """Append the next block of clusters (all arrays with the same first length)."""
        images = np.asarray(images, dtype=np.float32)
        m = images.shape[0]
        if images.shape[1:] != self.image_shape:
            raise ValueError(f"image block has shape {images.shape[1:]}, expected {self.image_shape}")
        if self._pos + m > self.n:
            raise ValueError(f"writing {m} clusters at position {self._pos} exceeds n={self.n}")
        sl = slice(self._pos, self._pos + m)
        f = self._file
        f["images"][sl] = images
        f["log_m500"][sl] = np.asarray(log_m500, dtype=np.float64)
        f["z"][sl] = np.asarray(z, dtype=np.float64)
        f["cluster_id"][sl] = np.asarray(cluster_id, dtype=np.int64)
        catalog = catalog or {}
        unknown = set(catalog) - set(self.catalog_columns)
        if unknown:
            raise ValueError(f"catalog columns {sorted(unknown)} were not declared")
        for name in self.catalog_columns:
            if name not in catalog:
                raise ValueError(f"catalog column '{name}' missing from this block")
            values = catalog[name]
            if f["catalog"][name].dtype.kind == "O":
                values = np.asarray([str(v) for v in values], dtype=object)
            f["catalog"][name][sl] = values
        # hash the image bytes in order, exactly as stored (float32)
        self._hash_images._h.update(np.ascontiguousarray(images).tobytes())
        self._pos += m

    def __exit__(self, exc_type, exc, tb) -> bool:
        from . import __version__

        f = self._file
        if exc_type is not None:
            self._abort(exc)
            if isinstance(exc, OSError):
                raise _disk_error(self.path, exc, self) from exc
            return False
        try:
            if self._pos != self.n:
                raise ValueError(f"only {self._pos} of {self.n} clusters were written")
            h = self._hash_images
            h._h.update(f"|images|<f4|{(self.n,) + self.image_shape}|".encode())
            h.update("log_m500", f["log_m500"][:].astype(np.float64))
            h.update("z", f["z"][:].astype(np.float64))
            h.update("cluster_id", f["cluster_id"][:].astype(np.int64))
            attrs = {
                "schema": SCHEMA_NAME,
                "schema_version": SCHEMA_VERSION,
                "band_edges_ev": BAND_EDGES_EV,
                "pixel_scale_arcsec": PIXEL_SCALE_ARCSEC,
                "image_size": self.image_shape[0],
                "n_clusters": self.n,
                "source": self.source,
                "created_with": f"cmlib {__version__}",
                "content_sha256": h.hexdigest(),
            }
            for key, value in {**attrs, **self.attrs}.items():
                f.attrs[key] = value
            self._file = None
            f.close()                       # flushes: a full disk shows here
        except BaseException as err:
            self._file = None if _closed(f) else f
            self._abort(err)
            if isinstance(err, OSError):
                raise _disk_error(self.path, err, self) from err
            raise
        return bool(self._ctx.__exit__(None, None, None))


def _closed(f) -> bool:
    try:
        return not bool(f.id.valid)
    except Exception:   # noqa: BLE001
        return True


def _disk_error(path, exc: OSError, writer=None):
    """A clear error for a write that failed in the OS (full disk, quota, I/O error).

    ``hdf5_unclean`` on the error says that HDF5 could not close the file: the
    command line then exits without the interpreter's teardown (HDF5's exit
    handler would flush the file again and crash).
    """
    import errno

    text = str(exc)
    full = getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or "No space left" in text \
        or "disk quota" in text.lower() or "errno = 28" in text
    err = _make_disk_error(path, text, full)
    err.hdf5_unclean = bool(getattr(writer, "unclean_close", False))
    return err


def _make_disk_error(path, text: str, full: bool):
    from .errors import CmlibError

    if full:
        return CmlibError(f"the disk is full: writing data file '{path}' failed ({text.splitlines()[0][:120]}). "
                          "Nothing was written (the partial file was removed); free some space or choose "
                          "another location.")
    return CmlibError(f"writing data file '{path}' failed: {text.splitlines()[0][:160]}. Nothing was written "
                      "(the partial file was removed).")
