"""Named, reproducible splits of a catalogue: the thesis's 90/10 and a stratified 80/10/10 (Table 2)."""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np

from ..errors import InputError
from .io import ClusterData

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
    """Set sizes in the layout of thesis Table 2 (:data:`cmlib.book.thesis.TABLE2`).

    Thesis split: ``{"complete", "train", "test_validation"}``; other splits:
    ``{"complete", "train", "validation", "test"}``.
    """
    s = split.sizes()
    if split.val_is_test:
        return {"complete": split.n, "train": s["train"], "test_validation": s["test"]}
    return {"complete": split.n, "train": s["train"], "validation": s["val"], "test": s["test"]}
