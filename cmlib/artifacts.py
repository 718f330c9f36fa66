"""Run artifacts on disk: the self-describing record of one training run.

A run directory holds everything a run produced, so that results pages, plots
and tables never retrain (and never import a deep-learning backend)::

    <runs_root>/<model>/<group>/seed-<NN>/
        config.json       resolved configuration (data file hash, split, every option)
        split.json        the split: name, seed, fingerprint, cluster ids per subset
        env.json          package versions, backend, device, machine, code version
        status.json       running | complete | diverged, epochs done, best epoch, wall time
        history.csv       per epoch: loss, val_loss, lr, epoch_time_s, elapsed_s
        predictions.csv   per cluster and subset: id, z, true, predicted, sigma
        metrics.json      metrics per subset (thesis eqs. 4.0.1-4.0.4 and standard ones)
        best.keras        weights at the lowest validation loss   (not committed to git;
        last.keras        weights after the last epoch             absent if trained with keep_models=False,
                                                                   then status.json has model_files: false)
        checkpoints/      resumable state while the run is in progress

``<group>`` is a hash of the configuration without the seed, so the seeds of
one experiment sit side by side.  Writes are atomic (:mod:`cmlib._io`).
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ._io import atomic_write_json, atomic_write_text, read_json
from .errors import CmlibError
from .metrics import Predictions

HISTORY_COLUMNS = ("epoch", "loss", "val_loss", "lr", "epoch_time_s", "elapsed_s")
PREDICTION_COLUMNS = ("subset", "cluster_id", "z", "log_m500_true", "log_m500_pred", "sigma_pred")
SUBSETS = ("train", "val", "test")
STATUS_COMPLETE = "complete"
STATUS_DIVERGED = "diverged"
STATUS_RUNNING = "running"
FINISHED = (STATUS_COMPLETE, STATUS_DIVERGED)


def format_duration(seconds: float) -> str:
    """A duration for people: '42 s', '12.5 min', '3.2 h' ('unknown' if not finite)."""
    import math

    if not math.isfinite(seconds):
        return "unknown"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


# ---------------------------------------------------------------- history

def history_to_csv(rows: Sequence[dict]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(HISTORY_COLUMNS)
    for r in rows:
        w.writerow([int(r["epoch"])] + [repr(float(r.get(c, float("nan")))) for c in HISTORY_COLUMNS[1:]])
    return buf.getvalue()


def write_history(path: Path, rows: Sequence[dict]) -> None:
    atomic_write_text(path, history_to_csv(rows))


def read_history(path: Path) -> dict[str, np.ndarray]:
    """history.csv as a dict of arrays (``epoch`` is 1-based)."""
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
    out: dict[str, np.ndarray] = {}
    for c in HISTORY_COLUMNS:
        vals = [r.get(c, "nan") for r in rows]
        out[c] = np.asarray(vals, dtype=np.int64 if c == "epoch" else np.float64)
    return out


def history_rows(hist: dict[str, np.ndarray]) -> list[dict]:
    n = len(hist["epoch"])
    return [{c: (int(hist[c][i]) if c == "epoch" else float(hist[c][i])) for c in HISTORY_COLUMNS}
            for i in range(n)]


# ---------------------------------------------------------------- predictions

def write_predictions(path: Path, preds: dict[str, Predictions]) -> None:
    """One CSV with a ``subset`` column; sigma empty for point-estimate models."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(PREDICTION_COLUMNS)
    for subset in SUBSETS:
        p = preds.get(subset)
        if p is None:
            continue
        z = p.z if p.z is not None else np.full(p.true.shape, np.nan)
        sig = p.sigma if p.sigma is not None else None
        for i in range(p.true.size):
            w.writerow([subset, int(p.cluster_id[i]), f"{z[i]:.6g}", f"{p.true[i]:.6f}",
                        f"{p.pred[i]:.6f}", "" if sig is None else f"{sig[i]:.6f}"])
    atomic_write_text(path, buf.getvalue())


def read_predictions(path: Path) -> dict[str, Predictions]:
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    out: dict[str, Predictions] = {}
    for subset in SUBSETS:
        sel = [r for r in rows if r["subset"] == subset]
        if not sel:
            continue
        sig = [r["sigma_pred"] for r in sel]
        sigma = None if all(s == "" for s in sig) else np.asarray([float(s or "nan") for s in sig])
        out[subset] = Predictions(
            cluster_id=np.asarray([int(r["cluster_id"]) for r in sel], dtype=np.int64),
            true=np.asarray([float(r["log_m500_true"]) for r in sel]),
            pred=np.asarray([float(r["log_m500_pred"]) for r in sel]),
            sigma=sigma,
            z=np.asarray([float(r["z"]) for r in sel]),
        )
    return out


# ---------------------------------------------------------------- runs

@dataclass
class Run:
    """A run directory, read lazily.  ``status`` is read eagerly (it is tiny)."""

    path: Path
    config: dict
    status_info: dict
    _history: dict | None = field(default=None, repr=False)
    _predictions: dict | None = field(default=None, repr=False)
    _metrics: dict | None = field(default=None, repr=False)
    _env: dict | None = field(default=None, repr=False)

    @classmethod
    def load(cls, path: str | Path) -> "Run":
        path = Path(path)
        cfg_file = path / "config.json"
        if not cfg_file.exists():
            raise CmlibError(f"'{path}' is not a run directory (no config.json); "
                             "run directories are created by `cmlib train`.")
        status = read_json(path / "status.json") if (path / "status.json").exists() else {"status": "unknown"}
        return cls(path=path, config=read_json(cfg_file), status_info=status)

    # identity
    @property
    def model(self) -> str:
        return self.config["model"]

    @property
    def seed(self) -> int:
        return int(self.config["seed"])

    @property
    def group(self) -> str:
        return self.path.parent.name

    @property
    def status(self) -> str:
        return self.status_info.get("status", "unknown")

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    # artifacts
    @property
    def history(self) -> dict[str, np.ndarray]:
        if self._history is None:
            f = self.path / "history.csv"
            self._history = read_history(f) if f.exists() else {c: np.zeros(0) for c in HISTORY_COLUMNS}
        return self._history

    @property
    def predictions(self) -> dict[str, Predictions]:
        if self._predictions is None:
            f = self.path / "predictions.csv"
            self._predictions = read_predictions(f) if f.exists() else {}
        return self._predictions

    @property
    def metrics(self) -> dict:
        if self._metrics is None:
            f = self.path / "metrics.json"
            self._metrics = read_json(f) if f.exists() else {}
        return self._metrics

    @property
    def env(self) -> dict:
        if self._env is None:
            f = self.path / "env.json"
            self._env = read_json(f) if f.exists() else {}
        return self._env

    def describe(self) -> str:
        s = self.status_info
        return (f"{self.model} seed {self.seed}: {self.status}, {s.get('epochs_completed', '?')} epochs, "
                f"best epoch {s.get('best_epoch', '?')}, {s.get('wall_time_s', float('nan')) / 60:.1f} min")


def write_status(run_dir: Path, **info) -> None:
    atomic_write_json(run_dir / "status.json", info)


def find_runs(roots: str | Path | Iterable[str | Path], *, model: str | None = None,
              group: str | None = None, finished_only: bool = True) -> list[Run]:
    """All run directories under one or more roots, optionally filtered.

    Sorted by model, group and seed.  Unreadable directories are skipped.
    """
    if isinstance(roots, (str, Path)):
        roots = [roots]
    runs: list[Run] = []
    for root in roots:
        root = Path(root)
        if not root.exists():
            continue
        pattern = f"{model or '*'}/{group or '*'}/seed-*/config.json"
        for cfg in sorted(root.glob(pattern)):
            try:
                r = Run.load(cfg.parent)
            except (CmlibError, OSError, ValueError):
                continue
            if finished_only and not r.finished:
                continue
            runs.append(r)
    runs.sort(key=lambda r: (r.model, r.group, r.seed))
    return runs


def group_runs(runs: Iterable[Run]) -> dict[tuple[str, str], list[Run]]:
    """Runs keyed by (model, group), seeds in order."""
    out: dict[tuple[str, str], list[Run]] = {}
    for r in runs:
        out.setdefault((r.model, r.group), []).append(r)
    for v in out.values():
        v.sort(key=lambda r: r.seed)
    return out


def provenance(runs: Sequence[Run]) -> dict:
    """How a set of runs was produced: the facts a results page must state."""
    if not runs:
        return {}
    c = runs[0].config
    env = runs[0].env
    wall = [r.status_info.get("wall_time_s", float("nan")) for r in runs]
    epochs = [r.status_info.get("epochs_completed", 0) for r in runs]
    return {
        "model": c["model"],
        "profile": c.get("profile", "custom"),
        "seeds": [r.seed for r in runs],
        "epochs_max": c["epochs"],
        "epochs_completed": epochs,
        "early_stopping": c.get("early_stopping", 0),
        "split": c.get("split"),
        "data_file": Path(c.get("data", "")).name,
        "data_sha256": c.get("data_sha256", "")[:12],
        "n_clusters": c.get("n_clusters"),
        "hardware": env.get("machine", {}).get("summary", "unknown"),
        "backend": env.get("backend", "unknown"),
        "code_version": env.get("cmlib_version", "?") + (f" ({env['git_commit'][:10]})" if env.get("git_commit") else ""),
        "wall_time_s_total": float(np.nansum(wall)),
        "statuses": [r.status for r in runs],
    }
