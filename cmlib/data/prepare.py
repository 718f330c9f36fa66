"""From a loaded catalogue and a split to per-subset float32 arrays with a fitted scaler."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import schema
from ..errors import InputError
from .bands import normalise_bands
from .io import READ_BLOCK, ClusterData
from .splits import Split
from .transforms import PAD_MODES, THESIS_PAD_SIZE, Scaler, _pad_widths, pad_images

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
        store = sum(s._cache["store"].nbytes for s in unique if "store" in s._cache)
        tf_store = sum(int(np.prod(s._cache["tf_rows"][0].shape)) * 4 for s in unique if "tf_rows" in s._cache)
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
    want = tuple(data.bands) if bands is None else normalise_bands(bands, n_file_bands)
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
