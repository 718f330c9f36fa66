"""Resumable state of a run in progress: ``<run>/checkpoints/epoch-NNNNN/``.

A checkpoint is a directory written under a temporary name and renamed into
place, holding

``model.weights.h5``  the model's weights *and* the optimizer's state (Keras ``save_weights``)
``best.npz``          the weights of the best epoch so far (when the run needs them)
``state.json``        written last: epochs done, history, the callbacks' counters, and, in the
                      final checkpoint, ``finished`` with the run's status and stop reason

so at every instant the newest ``epoch-*`` directory is complete or absent.
Older checkpoints are removed after a newer one is in place.  A run directory's
checkpoints are deleted only after its ``status.json`` records the finished run
(see :mod:`cmlib.train.engine`).
"""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._io import atomic_path, atomic_write_json, read_json

CHECKPOINTS = "checkpoints"


@dataclass
class Checkpoint:
    path: Path
    state: dict

    @property
    def epochs_completed(self) -> int:
        return int(self.state["epochs_completed"])

    @property
    def finished(self) -> bool:
        return bool(self.state.get("finished"))

    def best_weights(self) -> list[np.ndarray] | None:
        f = self.path / "best.npz"
        if not f.exists():
            return None
        with np.load(f) as z:
            return [z[f"arr_{i}"] for i in range(len(z.files))]

    def load_into(self, model) -> None:
        """Weights and optimizer state into ``model`` (built and compiled the same way)."""
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        model.load_weights(self.path / "model.weights.h5")


def checkpoints(run_dir: Path) -> list[Path]:
    d = Path(run_dir) / CHECKPOINTS
    if not d.is_dir():
        return []
    return sorted(p for p in d.glob("epoch-*") if p.is_dir() and (p / "state.json").exists())


def latest(run_dir: Path) -> Checkpoint | None:
    """The newest complete checkpoint of a run, or None."""
    for p in reversed(checkpoints(run_dir)):
        try:
            return Checkpoint(p, read_json(p / "state.json"))
        except (OSError, ValueError):  # pragma: no cover - state.json is renamed into place complete
            continue
    return None


def write(run_dir: Path, model, state: dict, *, best_weights: list | None, best_changed: bool,
          previous: Checkpoint | None) -> tuple[Checkpoint, float]:
    """Write the checkpoint of ``state['epochs_completed']``; returns it and the seconds it took."""
    t = time.perf_counter()
    final = Path(run_dir) / CHECKPOINTS / f"epoch-{int(state['epochs_completed']):05d}"
    with atomic_path(final, overwrite=True, directory=True) as tmp:
        model.save_weights(tmp / "model.weights.h5")
        if best_weights is not None:
            old = previous.path / "best.npz" if previous is not None else None
            if not best_changed and old is not None and old.exists():
                try:
                    os.link(old, tmp / "best.npz")          # unchanged: share the bytes
                except OSError:
                    shutil.copyfile(old, tmp / "best.npz")
            else:
                np.savez(tmp / "best.npz", *best_weights)
        atomic_write_json(tmp / "state.json", state)
    for p in checkpoints(run_dir):
        if p != final:
            shutil.rmtree(p, ignore_errors=True)
    return Checkpoint(final, state), time.perf_counter() - t


def remove_all(run_dir: Path) -> None:
    shutil.rmtree(Path(run_dir) / CHECKPOINTS, ignore_errors=True)
