"""Why a model does not learn: per-epoch diagnostics recorded with every run (issue 13).

The thesis's VGGs and EfficientNet-B7 did not learn, and its slides report ResNet101 and
EfficientNet-B7 with "very low training loss while predicting very poorly".  Such failures
have a few known causes, each visible in a number that costs a fraction of a training step
to measure; :class:`TrainingDiagnostics` measures them at the end of every epoch, on a
fixed probe of the training set (the first ``n`` training clusters, not augmented), and
the run records them as extra columns of ``history.csv``:

``mse_train_eval``
    MSE [dex^2] of the probe in **inference mode** (BatchNorm uses its moving statistics):
    what the model predicts.
``mse_train_batchstats``
    the same clusters and weights in **training mode** (BatchNorm normalises with the
    statistics of the probe batch): what the training loss sees.  A training-mode loss far
    below the inference-mode one is the BatchNorm train/inference gap.
``pred_std_train``, ``label_std_train``
    spread [dex] of the inference-mode predictions on the probe, and of its labels: a prediction
    spread far below the label spread is a collapse to the mean.
``grad_norm``, ``grad_norm_first``, ``grad_norm_last``
    L2 norm of the loss gradient on the probe (training mode): of all weights, of the
    first layer's kernel (the image end) and of the output layer's kernel.  A first-layer
    norm many orders below the last shows vanishing gradients.  TensorFlow backend only
    (NaN elsewhere).
``dead_relu``
    fraction of ReLU channels that output zero for every probe cluster at every pixel
    (inference mode): units that no longer learn.  NaN for models without ReLUs
    (EfficientNet uses swish) or with a band adapter in front of the backbone.
``dead_head``
    fraction of the units of the dense head (the ``head_dense_*`` ReLU layers every cmlib model ends with, which
    also receive the redshift) that output zero for every probe cluster (inference mode).  When it reaches 1 the
    output is one constant, whatever the image and the redshift, and almost no gradient reaches anything below
    the head (EfficientNet-B7's failure, ``benchmarks/effnet_head.py``).  NaN for a model without such layers.

Nothing here changes the run: BatchNorm's moving statistics (and every other non-trainable
variable) are restored after the training-mode pass, and no weight is updated, so a run
with diagnostics has the history of one without, plus these columns.
"""
from __future__ import annotations

import contextlib
import math
from typing import Any, Sequence

import numpy as np

from .._env import import_keras
from ..artifacts import DIAGNOSTIC_COLUMNS

keras = import_keras()

__all__ = ["DIAGNOSTIC_COLUMNS", "TrainingDiagnostics", "diagnose", "relu_probe", "head_probe"]
#: Keys the callback adds to Keras's epoch logs (the run recorder copies them into the history row).
LOG_PREFIX = "diag_"
#: Probe size: 64 training clusters (two training batches' worth: a few per cent of an epoch's cost).
PROBE_SIZE = 64


def _is_relu(layer) -> bool:
    if type(layer).__name__ == "ReLU":
        return True
    act = getattr(layer, "activation", None)
    return getattr(act, "__name__", "") == "relu"


def relu_probe(model) -> tuple[Any, str] | None:
    """A model that returns the outputs of every ReLU of ``model``'s feature extractor, and what it takes.

    For a ``keras.applications`` network (a nested functional backbone) it is built on the backbone and takes
    the image (``"image"``); for a flat network (the basic CNN, the Krippendorf CNN) it takes the model's
    inputs (``"inputs"``).  None if there are no ReLUs, or the backbone does not see the image directly
    (a band adapter in front of it).
    """
    backbone = next((l for l in model.layers if isinstance(l, keras.Model)), None)
    if backbone is not None:
        image_shape = tuple(model.inputs[0].shape[1:])
        if tuple(backbone.inputs[0].shape[1:]) != image_shape:
            return None
        outs = [l.output for l in backbone.layers if _is_relu(l)]
        return (keras.Model(backbone.inputs, outs), "image") if outs else None
    outs = [l.output for l in model.layers if _is_relu(l)]
    return (keras.Model(model.inputs, outs), "inputs") if outs else None


def head_probe(model):
    """A model that returns the outputs of ``model``'s dense head layers (``head_dense_1`` ...,
    :func:`cmlib.models.layers.regression_head`) from its inputs; None if it has none."""
    outs = [l.output for l in model.layers if l.name.startswith("head_dense_")]
    return keras.Model(model.inputs, outs) if outs else None


def _dead_share(acts) -> tuple[int, int]:
    """(channels that are <= 0 for every sample and position, all channels) of a list of activations."""
    dead = total = 0
    for a in acts if isinstance(acts, (list, tuple)) else [acts]:
        a = np.asarray(a, dtype=np.float32)
        peak = a.reshape(-1, a.shape[-1]).max(axis=0)
        dead += int(np.sum(peak <= 0.0))
        total += int(peak.size)
    return dead, total


def _first_column(y) -> np.ndarray:
    a = np.asarray(y, dtype=np.float64)
    return a[:, 0] if a.ndim == 2 else a.ravel()


def _norm(arrays: Sequence) -> float:
    total = 0.0
    for g in arrays:
        if g is not None:
            total += float(np.sum(np.square(np.asarray(g, dtype=np.float64))))
    return math.sqrt(total)


@contextlib.contextmanager
def state_restored(model):
    """Run a training-mode forward pass on ``model`` without changing it: BatchNorm's training mode updates its
    moving statistics (the non-trainable variables), so they are saved before and put back after, also when the
    pass fails."""
    saved = [np.array(v) for v in model.non_trainable_variables]
    try:
        yield model
    finally:
        for v, a in zip(model.non_trainable_variables, saved):
            v.assign(a)


def diagnose(model, inputs: dict, y: np.ndarray, probe: tuple[Any, str] | None = None,
             head: Any = None) -> dict[str, float]:
    """The diagnostic columns (:data:`DIAGNOSTIC_COLUMNS`) for ``model`` on one probe batch, without changing it.

    ``inputs``: ``{"image": ..., "redshift": ...}`` as the model takes them; ``y``: the labels [dex];
    ``probe``: :func:`relu_probe` of the model (built once per run); ``head``: :func:`head_probe` of the model
    (built here if None: cheap, and None again for a model without a head).
    """
    y = np.asarray(y, dtype=np.float64).ravel()
    out: dict[str, float] = {}
    pred = _first_column(model(inputs, training=False))
    out["mse_train_eval"] = float(np.mean((pred - y) ** 2))
    out["pred_std_train"] = float(np.std(pred))
    out["label_std_train"] = float(np.std(y))
    with state_restored(model):
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            yt = tf.constant(y.reshape(-1, 1), dtype=tf.float32)
            with tf.GradientTape() as tape:
                y_pred = model(inputs, training=True)
                # the compiled loss itself (not model.compute_loss, which would feed Keras's loss trackers)
                loss = model.loss(yt, y_pred)
                if model.losses:
                    loss = loss + tf.add_n([tf.cast(x, loss.dtype) for x in model.losses])
            weights = model.trainable_variables
            grads = tape.gradient(loss, weights)
            out["grad_norm"] = _norm(grads)
            kernels = [(w, g) for w, g in zip(weights, grads) if len(w.shape) >= 2]
            out["grad_norm_first"] = _norm([kernels[0][1]]) if kernels else math.nan
            out["grad_norm_last"] = _norm([kernels[-1][1]]) if kernels else math.nan
        else:
            y_pred = model(inputs, training=True)
            out.update(grad_norm=math.nan, grad_norm_first=math.nan, grad_norm_last=math.nan)
        out["mse_train_batchstats"] = float(np.mean((_first_column(y_pred) - y) ** 2))
    out["dead_relu"] = math.nan
    if probe is not None:
        pm, takes = probe
        feed = [inputs["image"]] if takes == "image" else [inputs[t.name] for t in pm.inputs]
        dead, total = _dead_share(pm(feed, training=False))
        out["dead_relu"] = dead / total if total else math.nan
    out["dead_head"] = math.nan
    head = head if head is not None else head_probe(model)
    if head is not None:
        dead, total = _dead_share(head([inputs[t.name] for t in head.inputs], training=False))
        out["dead_head"] = dead / total if total else math.nan
    return out


class TrainingDiagnostics(keras.callbacks.Callback):
    """Adds :func:`diagnose` of the probe to the epoch's logs (as ``diag_<column>``), once per epoch.

    Place it before the callbacks that read the logs (the run recorder): Keras hands every callback the
    same logs dictionary.
    """

    def __init__(self, split, n: int = PROBE_SIZE) -> None:
        super().__init__()
        from ..data.transforms import pad_images

        k = min(int(n), int(split.n))
        # padded as the training input pads them (thesis 71 x 71), not augmented
        self.inputs = {"image": pad_images(np.asarray(split.x_image[:k]), split.pad, split.pad_size),
                       "redshift": np.asarray(split.x_z[:k])}
        self.y = np.asarray(split.y[:k], dtype=np.float64)
        self.probe = self.head = None

    def on_train_begin(self, logs=None):
        self.probe = relu_probe(self.model)
        self.head = head_probe(self.model)

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        for k, v in diagnose(self.model, self.inputs, self.y, self.probe, self.head).items():
            logs[LOG_PREFIX + k] = v
