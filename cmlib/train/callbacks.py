"""Keras callbacks of a cmlib run: Keras's own where they fit, small ones where a run needs more.

One ``model.fit`` call trains a whole run with

* :func:`lr_callback`: the learning-rate schedule, a pure function of the epoch
  (``keras.callbacks.LearningRateScheduler``) or, for ``plateau``, Keras's
  ``ReduceLROnPlateau`` with its state kept in the checkpoint;
* ``keras.callbacks.TerminateOnNaN`` (a NaN loss ends the epoch at once);
* :class:`RunEarlyStopping`: Keras's ``EarlyStopping`` on the validation loss,
  whose state (best value and epoch, patience counter) survives a resume; with
  early stopping off it still tracks the best epoch (patience beyond the run);
* :class:`RunRecorder`: per epoch the history row, the best weights (in memory),
  divergence (NaN or exploding loss), the status file with an ETA, a progress
  line, and a checkpoint when one is due (:class:`CheckpointPolicy`).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .._env import import_keras
from .diagnostics import LOG_PREFIX

keras = import_keras()

#: A training loss above this multiple of the first epoch's loss counts as exploded (the thesis
#: saw sigma > 10^4 blow-ups with ResNet152).
EXPLODE_FACTOR = 1e4
#: Plateau schedule: halve the rate after this many epochs without improvement, not below MIN_LR.
PLATEAU_PATIENCE = 10
MIN_LR = 1e-6


# ---------------------------------------------------------------- learning rate

def schedule_fn(name: str, lr: float, epochs: int, warmup_epochs: int = 0) -> Callable[[int], float]:
    """The learning rate of 0-based ``epoch`` for the epoch-wise schedules (a pure function: resumable).

    ``constant``: ``lr``.  ``cosine``: ``lr * (1 + cos(pi e / E)) / 2`` (to 0 over
    the E epochs; Loshchilov & Hutter 2017 without restarts).  ``warmup-cosine``:
    linear warm-up ``lr (e + 1) / W`` for ``W`` epochs, then the cosine over the rest.
    """
    lr = float(lr)
    if name == "constant":
        return lambda e: lr
    if name == "cosine":
        return lambda e: lr * 0.5 * (1.0 + math.cos(math.pi * e / max(1, epochs)))
    if name == "warmup-cosine":
        w = int(warmup_epochs)

        def f(e: int) -> float:
            if e < w:
                return lr * (e + 1) / w
            return lr * 0.5 * (1.0 + math.cos(math.pi * (e - w) / max(1, epochs - w)))
        return f
    raise ValueError(f"no epoch-wise schedule '{name}'")


class ResumablePlateau(keras.callbacks.ReduceLROnPlateau):
    """``ReduceLROnPlateau`` whose counters are saved with the run's checkpoint."""

    def __init__(self) -> None:
        super().__init__(monitor="val_loss", factor=0.5, patience=PLATEAU_PATIENCE, min_lr=MIN_LR, verbose=0,
                         mode="min")
        self._restore: dict | None = None
        self.wait, self.best, self.cooldown_counter = 0, math.inf, 0

    def get_state(self) -> dict:
        return {"wait": int(self.wait), "best": _float(self.best), "cooldown_counter": int(self.cooldown_counter)}

    def set_state(self, state: dict | None) -> None:
        self._restore = state

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self._restore:
            self.wait = self._restore["wait"]
            self.best = math.inf if self._restore["best"] is None else self._restore["best"]
            self.cooldown_counter = self._restore["cooldown_counter"]


def lr_callback(cfg) -> Any:
    """The schedule of a run configuration as a Keras callback."""
    if cfg.lr_schedule == "plateau":
        return ResumablePlateau()
    return keras.callbacks.LearningRateScheduler(schedule_fn(cfg.lr_schedule, cfg.lr, cfg.epochs, cfg.warmup_epochs))


def current_lr(model) -> float:
    lr = model.optimizer.learning_rate
    return float(np.asarray(lr.numpy() if hasattr(lr, "numpy") else lr))


# ---------------------------------------------------------------- early stopping

class RunEarlyStopping(keras.callbacks.EarlyStopping):
    """Keras's ``EarlyStopping`` on ``val_loss`` that resumes where it stopped, and ignores NaN.

    ``patience=0`` means early stopping is off: the callback then only tracks the
    best epoch (for ``best.keras``), never stops.  ``best_epoch`` is 0-based, as in Keras.
    """

    def __init__(self, patience: int, min_delta: float, epochs: int) -> None:
        self.enabled = patience > 0
        super().__init__(monitor="val_loss", patience=patience if self.enabled else epochs + 1,
                         min_delta=min_delta, mode="min", verbose=0, restore_best_weights=False)
        self._restore: dict | None = None
        self.improved = False
        self.wait, self.best, self.best_epoch, self.stopped_epoch = 0, None, 0, 0

    def get_state(self) -> dict:
        return {"wait": int(self.wait), "best": _float(self.best), "best_epoch": int(self.best_epoch)}

    def set_state(self, state: dict | None) -> None:
        self._restore = state
        if state:
            self.wait, self.best, self.best_epoch = state["wait"], state["best"], state["best_epoch"]

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self._restore:
            self.wait = self._restore["wait"]
            self.best = self._restore["best"]
            self.best_epoch = self._restore["best_epoch"]

    def _is_improvement(self, monitor_value, reference_value):
        if monitor_value is None or not math.isfinite(float(monitor_value)):
            return False
        return super()._is_improvement(monitor_value, reference_value)

    def on_epoch_end(self, epoch, logs=None):
        before = (self.best, self.best_epoch)
        super().on_epoch_end(epoch, logs)
        self.improved = (self.best, self.best_epoch) != before and self.best_epoch == epoch


# ---------------------------------------------------------------- checkpoints

@dataclass
class CheckpointPolicy:
    """When to write a checkpoint: at an epoch's end once enough time has passed since the last one.

    ``interval_s=None`` (default) adapts to the cost: the next checkpoint is due
    when the time since the last one is at least ``cost / max_overhead`` (the last
    checkpoint's writing time over the allowed overhead, 5 %), so checkpointing
    costs at most ~5 % of the run however large the model and fast the epochs;
    ``max_interval_s`` caps the work a kill can lose.  A number forces a fixed
    interval (0: every epoch).  The final epoch is always checkpointed.
    """

    interval_s: float | None = None
    max_overhead: float = 0.05
    max_interval_s: float = 600.0

    def due(self, since_last_s: float, last_cost_s: float) -> bool:
        if self.interval_s is not None:
            return since_last_s >= self.interval_s
        need = min(self.max_interval_s, last_cost_s / self.max_overhead)
        return since_last_s >= need


# ---------------------------------------------------------------- the recorder

class RunRecorder(keras.callbacks.Callback):
    """The run's bookkeeping, once per epoch (see the module docstring).

    ``on_epoch(row, improved)`` and ``save_checkpoint(final)`` are the engine's
    hooks: the recorder decides *when*, the engine knows *how* to write.
    """

    def __init__(self, *, epochs: int, history: list[dict], elapsed_s: float, early: RunEarlyStopping,
                 policy: CheckpointPolicy, save_checkpoint: Callable[[], float], on_epoch: Callable[[dict, bool], None],
                 best_weights: list | None) -> None:
        super().__init__()
        self.epochs = epochs
        self.history = history
        self.elapsed_s = elapsed_s
        self.early = early
        self.policy = policy
        self.save_checkpoint = save_checkpoint
        self.on_epoch = on_epoch
        self.best_weights = best_weights
        self.best_dirty = False
        self.first_loss = history[0]["loss"] if history else None
        self.diverged_reason = ""
        self.checkpointed_epoch = len(history)
        self._since_ckpt = 0.0
        self._last_cost = 0.0

    def on_train_begin(self, logs=None):
        self._t_mark = time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None):
        self._lr = current_lr(self.model)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        # an epoch's time runs from the previous epoch's end (or the start of training) to this one's end, so
        # it includes the previous epoch's bookkeeping (checkpoint, history, status): the real cost of an epoch
        now = time.perf_counter()
        dt, self._t_mark = now - self._t_mark, now
        self.elapsed_s += dt
        self._since_ckpt += dt
        loss = float(logs.get("loss", math.nan))
        val = float(logs.get("val_loss", math.nan))
        row = dict(epoch=epoch + 1, loss=loss, val_loss=val, lr=self._lr, epoch_time_s=dt, elapsed_s=self.elapsed_s)
        # the per-epoch diagnostics (cmlib.train.diagnostics.TrainingDiagnostics, an earlier callback)
        row.update({k[len(LOG_PREFIX):]: float(v) for k, v in logs.items() if k.startswith(LOG_PREFIX)})
        self.history.append(row)
        improved = self.early.improved
        if improved:
            self.best_weights = [np.array(w) for w in self.model.get_weights()]
            self.best_dirty = True
        if self.first_loss is None:
            self.first_loss = loss
        if not math.isfinite(loss):
            self.diverged_reason = f"training loss {loss:.3g} at epoch {epoch + 1} is not finite"
        elif self.first_loss and self.first_loss > 0 and loss > EXPLODE_FACTOR * self.first_loss:
            self.diverged_reason = (f"training loss {loss:.3g} at epoch {epoch + 1} exceeds "
                                    f"{EXPLODE_FACTOR:g} x the first epoch's {self.first_loss:.3g}")
        if self.diverged_reason:
            self.model.stop_training = True
        final = self.model.stop_training or epoch + 1 >= self.epochs
        if not final and self.policy.due(self._since_ckpt, self._last_cost):
            self._checkpoint()
        self.on_epoch(row, improved)

    def _checkpoint(self) -> None:
        self._last_cost = self.save_checkpoint()
        self.best_dirty = False
        self.checkpointed_epoch = len(self.history)
        self._since_ckpt = 0.0

    def state(self) -> dict:
        return {"elapsed_s": self.elapsed_s, "first_loss": self.first_loss}


def _float(v: Any) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None
