"""Training and evaluation inputs: deterministic epoch plans and the batches they make (tf.data or PyDataset)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from .._env import import_keras
from ..errors import InputError
from .io import READ_BLOCK
from .prepare import Prepared, PreparedSplit
from .transforms import AUGMENT_MODES, _pad_widths, augment_batch, pad_images

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
    batch costs ~10x more.  One copy is the identity (``n_copies=1`` returns the
    split's own array, no copy); 2 copies serve flips, 4 flips and rotations.
    Cached on the split; ``split.x_image`` itself is never changed.  Returns None
    if the store would exceed :data:`MAX_AUGMENT_STORE_BYTES`.
    """
    x = split.x_image
    if n_copies == 1:
        return x[None]
    cache = split._cache
    store = cache.get("store")
    if store is not None and store.shape[0] >= n_copies:
        return store
    if n_copies * x.nbytes > MAX_AUGMENT_STORE_BYTES:
        return None
    store = np.empty((n_copies,) + x.shape, np.float32)
    for k in range(n_copies):
        for i in range(0, x.shape[0], READ_BLOCK):
            store[k, i:i + READ_BLOCK] = _STORE_COPIES[k](x[i:i + READ_BLOCK])
    cache["store"] = store
    cache.pop("tf_rows", None)
    return store


def _copies_needed(augment: str) -> int:
    """Store copies an augmentation mode needs (identity; + left-right flip; + both transposes)."""
    return {"none": 1, "flip": 2, "flip-rot90": 4}[augment]


def _row_plan(plan: EpochPlan, n: int, h: int) -> tuple[int, np.ndarray, np.ndarray]:
    """(copies needed, first store row of each position's image, row step +1/-1).

    Position i of the plan shows rows ``first[i] + step[i] * (0..h-1)`` of the
    augmentation store (:func:`_augment_store`): its sample's image in the
    right copy, rows reversed for an up-down flip.  This row layout is the one
    fast path of both the numpy and the TensorFlow input.
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


_PYDATASET_CLASSES: dict[str, type] = {}


def _py_dataset_classes() -> dict[str, type]:
    """Create the keras.utils.PyDataset subclasses on first use (keeps `import cmlib.data` light)."""
    if not _PYDATASET_CLASSES:
        keras = import_keras()

        class ArrayDataset(keras.utils.PyDataset):
            """A keras PyDataset over :class:`ArrayBatches` (one epoch of one plan).

            Fit one epoch per instance, or use :func:`make_run_input` for a whole run.
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

        class RunDataset(keras.utils.PyDataset):
            """The training input of a whole run: epoch ``e`` shows the plan of (seed, e).

            Keras calls ``on_epoch_end`` after every epoch; the next epoch's plan is
            made then, so the batches of epoch ``e`` depend only on (seed, e) and a
            resumed run (``start_epoch``) sees what an uninterrupted one would.
            """

            def __init__(self, split: PreparedSplit, *, seed: int, start_epoch: int, batch_size: int,
                         augment: str, **kwargs) -> None:
                super().__init__(**kwargs)
                self.split, self.seed, self.batch_size, self.augment = split, seed, batch_size, augment
                self.epoch = start_epoch
                self._make()

            def _make(self) -> None:
                self.batches = ArrayBatches(self.split, self.batch_size,
                                            epoch_plan(self.split.n, self.seed, self.epoch, self.augment))

            def __len__(self) -> int:
                return len(self.batches)

            def __getitem__(self, i):
                return self.batches[i]

            def on_epoch_end(self) -> None:
                self.epoch += 1
                self._make()

        _PYDATASET_CLASSES.update(ArrayDataset=ArrayDataset, RunDataset=RunDataset)
    return _PYDATASET_CLASSES


def array_dataset(prepared_split: PreparedSplit, batch_size: int = 32, plan: EpochPlan | None = None, *,
                  workers: int = 1, use_multiprocessing: bool = False, max_queue_size: int = 10):
    """A backend-neutral ``keras.utils.PyDataset`` of one epoch (TensorFlow is not imported).

    The same (split, batch size, plan) gives exactly the batches of
    :func:`tf_dataset`.  ``plan=None``: fixed order, no augmentation (evaluation).
    """
    batches = ArrayBatches(prepared_split, batch_size, plan)
    return _py_dataset_classes()["ArrayDataset"](batches, workers=workers, use_multiprocessing=use_multiprocessing,
                                                 max_queue_size=max_queue_size)


def _tf_rows(split: PreparedSplit, n_copies: int):
    """The augmentation store as one TensorFlow variable of image rows (n_copies * n * H, W * C), cached.

    The same row layout as the numpy path (:func:`_augment_store`,
    :func:`_row_plan`), so both inputs give identical batches by construction.
    A variable is captured by the dataset graph as a handle: building an
    epoch's dataset does not serialise the images.
    """
    import tensorflow as tf

    cache = split._cache
    got = cache.get("tf_rows")
    if got is not None and got[1] >= n_copies:
        return got[0]
    store = _augment_store(split, n_copies)
    n, h, w, c = split.x_image.shape
    with tf.device("/CPU:0"):
        var = tf.Variable(tf.zeros((store.shape[0] * n * h, w * c), tf.float32), trainable=False,
                          name=f"cmlib_{split.name}_rows")
        flat = store.reshape(-1, w * c)
        block = READ_BLOCK * h
        for i in range(0, flat.shape[0], block):
            var[i:i + block].assign(flat[i:i + block])
    cache["tf_rows"] = (var, store.shape[0])
    cache.pop("tf_fn", None)
    return var


def _tf_assemble(split: PreparedSplit, n_copies: int):
    """The traced batch function of a split (cached): (first rows, row steps, samples) -> padded batch."""
    import tensorflow as tf

    cache = split._cache
    rows_var = _tf_rows(split, n_copies)
    if cache.get("tf_fn") is not None:
        return cache["tf_fn"]
    n, h, w, c = split.x_image.shape
    (top, bottom), (left, right) = _pad_widths(split.pad, h, w, split.pad_size)
    paddings = tf.constant([[0, 0], [top, bottom], [left, right], [0, 0]])
    padded = bool(top or bottom or left or right)
    z_t = tf.constant(split.x_z)
    y_t = tf.constant(split.y)
    offsets = tf.range(h, dtype=tf.int64)
    spec = tf.TensorSpec([None], tf.int64)

    @tf.function(input_signature=[spec, spec, spec], autograph=False)
    def assemble(first, step, idx):
        rows = tf.reshape(first[:, None] + step[:, None] * offsets[None, :], [-1])
        x = tf.reshape(tf.gather(rows_var, rows), [-1, h, w, c])
        if padded:
            x = tf.pad(x, paddings)
        return {"image": x, "redshift": tf.gather(z_t, idx)}, tf.gather(y_t, idx)

    cache["tf_fn"] = assemble
    return assemble


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


def _tf_options(ds):
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_optimization.apply_default_optimizations = False   # nothing to fuse; saves ~5 ms/epoch
    options.deterministic = True
    return ds.with_options(options)


def _store_fits(split: PreparedSplit, n_copies: int) -> bool:
    return n_copies == 1 or n_copies * split.x_image.nbytes <= MAX_AUGMENT_STORE_BYTES


def tf_dataset(prepared_split: PreparedSplit, batch_size: int = 32, plan: EpochPlan | None = None, *,
               prefetch: bool = True):
    """A ``tf.data.Dataset`` of one epoch for the TensorFlow backend.

    The split's images (and, for augmented plans, their flipped and transposed
    copies) live in memory as one TensorFlow variable of image rows, built once
    and cached on the split.  The epoch's plan becomes, per position, the first
    row of its image in the right copy and a row step (+1, or -1 for an up-down
    flip) (:func:`_row_plan`); each batch is one gather of rows, in parallel and
    in order, then padded and prefetched.  The same row layout as
    :class:`ArrayBatches`, so both give identical batches.  If the copies would
    exceed :data:`MAX_AUGMENT_STORE_BYTES` (e.g. 10 bands with rotations), the
    batches of :class:`ArrayBatches` are used through ``tf.numpy_function``.
    """
    import_keras()  # TensorFlow with its import-time log lines silenced
    import tensorflow as tf

    plan = _check_batch_args(prepared_split, batch_size, plan)
    s = prepared_split
    n, h, w, c = s.x_image.shape
    if plan.rot_k.any() and h != w:
        raise InputError(f"90-degree rotations need square images; got {h}x{w}")
    _pad_widths(s.pad, h, w, s.pad_size)
    n_copies, first, step = _row_plan(plan, n, h)
    if not _store_fits(s, n_copies):
        return _numpy_tf_dataset(ArrayBatches(s, int(batch_size), plan), prefetch)
    assemble = _tf_assemble(s, n_copies)
    ds = tf.data.Dataset.from_tensor_slices((first, step, plan.order.astype(np.int64))).batch(int(batch_size))
    # fixed, small parallelism: a batch is one gather
    ds = _tf_options(ds.map(assemble, num_parallel_calls=2, deterministic=True))
    return ds.prefetch(4) if prefetch else ds


def _tf_run_dataset(split: PreparedSplit, *, seed: int, start_epoch: int, epochs: int, batch_size: int,
                    augment: str):
    """tf.data over epochs ``start_epoch .. epochs-1``: each epoch's plan made when the epoch begins."""
    import tensorflow as tf

    n, h, w, c = split.x_image.shape
    n_copies = _copies_needed(augment)
    assemble = _tf_assemble(split, n_copies)

    def plan_rows(epoch):
        plan = epoch_plan(n, seed, int(epoch), augment)
        _, first, step = _row_plan(plan, n, h)
        return first, step, plan.order.astype(np.int64)

    def one_epoch(epoch):
        first, step, order = tf.numpy_function(plan_rows, [epoch], [tf.int64, tf.int64, tf.int64], stateful=False)
        for t in (first, step, order):
            t.set_shape((n,))
        return tf.data.Dataset.from_tensor_slices((first, step, order)).batch(int(batch_size))

    ds = tf.data.Dataset.range(int(start_epoch), int(epochs)).flat_map(one_epoch)
    ds = _tf_options(ds.map(assemble, num_parallel_calls=2, deterministic=True))
    return ds.prefetch(4)


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


def make_run_input(prepared: Prepared, *, seed: int, start_epoch: int, epochs: int, batch_size: int = 32,
                   augment: str = "none", backend: str = "auto"):
    """The training input of a whole run, for one ``model.fit(..., epochs=epochs, initial_epoch=start_epoch)``.

    Returns ``(dataset, steps_per_epoch)``.  Epoch ``e`` (0-based) shows the plan
    of (``seed``, ``e``), exactly the batches of ``make_train_input(..., epoch=e)``:
    a run resumed at ``start_epoch`` continues as if never interrupted.  tf.data
    on the TensorFlow backend (plans are made as epochs begin, nothing is
    precomputed for all epochs); a keras ``PyDataset`` elsewhere. Pass
    ``steps_per_epoch`` and ``shuffle=False`` to ``fit``::

        ds, steps = make_run_input(prepared, seed=0, start_epoch=0, epochs=100, augment="flip")
        model.fit(ds, epochs=100, steps_per_epoch=steps, validation_data=val_input, shuffle=False)
    """
    if augment not in AUGMENT_MODES:
        raise InputError(f"unknown augmentation '{augment}': choose one of {', '.join(AUGMENT_MODES)}")
    split = prepared.train
    _check_batch_args(split, batch_size, None)
    for name, v in (("start_epoch", start_epoch), ("epochs", epochs)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise InputError(f"make_run_input: {name} must be a non-negative integer, got {v!r}")
    if start_epoch >= epochs:
        raise InputError(f"make_run_input: start_epoch {start_epoch} must be below epochs {epochs}")
    steps = -(-split.n // int(batch_size))
    h, w = split.x_image.shape[1:3]
    if augment == "flip-rot90" and h != w:
        raise InputError(f"90-degree rotations need square images; got {h}x{w}")
    if _resolve_backend(backend) == "tf" and _store_fits(split, _copies_needed(augment)):
        return _tf_run_dataset(split, seed=seed, start_epoch=start_epoch, epochs=epochs, batch_size=batch_size,
                               augment=augment), steps
    ds = _py_dataset_classes()["RunDataset"](split, seed=seed, start_epoch=start_epoch, batch_size=int(batch_size),
                                             augment=augment)
    return ds, steps
