"""Run artifacts on disk: the self-describing record of one training run.

A run directory holds everything a run produced, so that results pages, plots
and tables never retrain (and never import a deep-learning backend)::

    <runs_root>/<model>/<group>/seed-<NN>/
        config.json       resolved configuration (data file hash, split, every option)
        split.json        the split: name, seed, fingerprint, cluster ids per subset
        env.json          package versions, backend, device, machine, compute threads, code version;
                          ``earlier``: stretches a resumed run trained on other hardware or threads
        status.json       running | interrupted | complete | diverged, epochs done, best epoch, wall
                          time; for a finished run the size and SHA-256 of every artifact above
                          (checked when the run is reused: a damaged run is never taken as done)
        history.csv       per epoch: loss, val_loss, lr, epoch_time_s (wall time from the previous
                          epoch's end: steps, validation and bookkeeping), elapsed_s
        predictions.csv   per cluster and subset: id, z, true, predicted, sigma
        metrics.json      metrics per subset (thesis eqs. 4.0.1-4.0.4 and standard ones)
        best.keras        weights at the lowest validation loss   (not committed to git;
        last.keras        weights after the last epoch             absent if trained with keep_models=False,
                                                                   then status.json has model_files: false)
        checkpoints/      resumable state while the run is in progress (deleted once status.json
                          says the run is finished: status.json is the commit point)

``<group>`` is a hash of the configuration without the seed
(:meth:`cmlib.config.RunConfig.group_key`), so the seeds of one experiment sit
side by side.  Writes are atomic (:mod:`cmlib._io`).  This module never imports a
deep-learning backend: pages read runs through it.
"""
from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ._io import atomic_write_json, atomic_write_text, read_json
from .errors import CmlibError

HISTORY_COLUMNS = ("epoch", "loss", "val_loss", "lr", "epoch_time_s", "elapsed_s")
#: Optional columns after those: the per-epoch diagnostics of :mod:`cmlib.train.diagnostics` (written when any
#: row has them; an epoch recorded without them, e.g. before a resume with older code, is left empty).
DIAGNOSTIC_COLUMNS = ("mse_train_eval", "mse_train_batchstats", "pred_std_train", "label_std_train", "grad_norm",
                      "grad_norm_first", "grad_norm_last", "dead_relu", "dead_head")
PREDICTION_COLUMNS = ("subset", "cluster_id", "z", "log_m500_true", "log_m500_pred", "sigma_pred")
SUBSETS = ("train", "val", "test")
STATUS_COMPLETE = "complete"
STATUS_DIVERGED = "diverged"
STATUS_RUNNING = "running"
STATUS_INTERRUPTED = "interrupted"
FINISHED = (STATUS_COMPLETE, STATUS_DIVERGED)
#: Artifacts whose size and SHA-256 a finished run records; model files are recorded by size.
HASHED_ARTIFACTS = ("config.json", "split.json", "history.csv", "predictions.csv", "metrics.json")
MODEL_FILES = ("best.keras", "last.keras")


class DamagedRunError(CmlibError):
    """A run directory whose files are unreadable, truncated or changed after the run finished."""


@dataclass
class Predictions:
    """Predictions of one model (or ensemble) on one subset: the content of ``predictions.csv``."""

    cluster_id: np.ndarray
    true: np.ndarray
    pred: np.ndarray
    sigma: np.ndarray | None = None  # predicted 1-sigma [dex] for Gaussian-output models
    z: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.cluster_id = np.asarray(self.cluster_id)
        self.true = np.asarray(self.true, dtype=np.float64)
        self.pred = np.asarray(self.pred, dtype=np.float64)
        if self.sigma is not None:
            self.sigma = np.asarray(self.sigma, dtype=np.float64)
            if not np.isfinite(self.sigma).any():
                self.sigma = None
        if self.z is not None:
            self.z = np.asarray(self.z, dtype=np.float64)

    @property
    def x(self) -> np.ndarray:
        """x = predicted - true log10 M500c [dex] (thesis Sect. 4)."""
        return self.pred - self.true


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
    diag = [c for c in DIAGNOSTIC_COLUMNS if any(c in r for r in rows)]
    w.writerow(HISTORY_COLUMNS + tuple(diag))
    for r in rows:
        w.writerow([int(r["epoch"])] + [repr(float(r.get(c, float("nan")))) for c in HISTORY_COLUMNS[1:]]
                   + [repr(float(r[c])) if c in r else "" for c in diag])
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
    for c in DIAGNOSTIC_COLUMNS:                 # only where recorded (see DIAGNOSTIC_COLUMNS)
        if c in (reader.fieldnames or ()):
            out[c] = np.asarray([r.get(c) or "nan" for r in rows], dtype=np.float64)
    return out


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
        """Read a run directory's configuration (upgraded to the current record version) and status."""
        from .config import upgrade

        path = Path(path)
        cfg_file = path / "config.json"
        if not cfg_file.exists():
            raise CmlibError(f"'{path}' is not a run directory (no config.json); "
                             "run directories are created by `cmlib train`.")
        status = read_record(path / "status.json") if (path / "status.json").exists() else {"status": "unknown"}
        return cls(path=path, config=upgrade(read_record(cfg_file)), status_info=status)

    def verify(self) -> None:
        """Raise :class:`DamagedRunError` unless every artifact a finished run recorded is intact."""
        problems = verify_artifacts(self.path, self.status_info)
        if problems:
            raise DamagedRunError(f"the finished run in {self.path} is damaged: {'; '.join(problems)}. Remove "
                                  "the directory, or retrain it with --force")

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

    @property
    def segments(self) -> list[dict]:
        """The stretches of this run's training that ran on one kind of hardware (:func:`compute_segments`)."""
        return compute_segments(self.env, int(self.status_info.get("epochs_completed") or len(self.history["epoch"])))

    @property
    def cpu_core_seconds(self) -> float:
        """CPU core-seconds the training took: each epoch's wall time times the threads it computed with
        (NaN where a stretch ran on a GPU, or without a history). One job per core runs each job 1.7x as long
        on half the cores, so its core-seconds, not its wall time, compare with a job on all cores."""
        h = self.history
        if not len(h.get("epoch_time_s", ())):
            return float("nan")
        threads = np.full(len(h["epoch"]), np.nan)
        for seg in self.segments:
            sel = (h["epoch"] >= seg["first_epoch"]) & (h["epoch"] <= seg["last_epoch"])
            t, cores = seg["compute_threads"], seg.get("cpu_cores")
            threads[sel] = np.nan if t is None else min(t, cores) if cores else t   # threads beyond the cores share them
        return float(np.sum(h["epoch_time_s"] * threads))

    def describe(self) -> str:
        s = self.status_info
        return (f"{self.model} seed {self.seed}: {self.status}, {s.get('epochs_completed', '?')} epochs, "
                f"best epoch {s.get('best_epoch', '?')}, {s.get('wall_time_s', float('nan')) / 60:.1f} min")


# what a stretch of a run records about where it trained (env.json and its ``earlier`` entries), with defaults
STRETCH_KEYS = {"machine": "unknown", "cpu_cores": None, "gpu_names": [], "compute_threads": None, "precision": None}


def compute_segments(env: dict, epochs: int) -> list[dict]:
    """A run's training split into stretches of one kind of hardware, from its env.json: each ``first_epoch``,
    ``last_epoch`` and the :data:`STRETCH_KEYS`: ``machine`` (summary), ``cpu_cores``, ``gpu_names``,
    ``compute_threads`` (CPU threads it computed with; None on a GPU) and ``precision``.  One stretch unless the
    run resumed somewhere else (``earlier``, written by :func:`cmlib.train.env.with_earlier_segments`).  A record
    older than ``compute_threads`` used all its cores."""
    env = env or {}
    mach = env.get("machine", {})
    current = {"machine": mach.get("summary", "unknown"), "cpu_cores": mach.get("cpu_cores"),
               "gpu_names": mach.get("gpu_names", []), "precision": env.get("precision"),
               "compute_threads": env.get("compute_threads", None if mach.get("gpus") else mach.get("cpu_cores"))}
    stretches = [*env.get("earlier", []), current]
    out, first = [], 1
    for i, e in enumerate(stretches):
        last = int(e["until_epoch"]) if i < len(stretches) - 1 else max(int(epochs), first)
        out.append({"first_epoch": first, "last_epoch": last, **{k: e.get(k, d) for k, d in STRETCH_KEYS.items()}})
        first = last + 1
    return out


def write_status(run_dir: Path, **info) -> None:
    atomic_write_json(run_dir / "status.json", info)


def read_record(path: Path) -> dict:
    """A JSON record of a run directory; a truncated or unreadable one is a :class:`DamagedRunError`."""
    try:
        value = read_json(path)
    except (OSError, ValueError) as exc:
        raise DamagedRunError(f"{path} is damaged ({type(exc).__name__}: {exc}); remove the run directory "
                              f"{path.parent}, or retrain it with --force") from None
    if not isinstance(value, dict):
        raise DamagedRunError(f"{path} does not hold a JSON object; remove the run directory {path.parent}, "
                              "or retrain it with --force")
    return value


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def artifact_record(run_dir: Path, *, model_files: bool) -> dict[str, dict]:
    """Size and SHA-256 of each artifact of a finished run (model files: size only)."""
    out: dict[str, dict] = {}
    for name in HASHED_ARTIFACTS:
        p = run_dir / name
        if p.exists():
            out[name] = {"bytes": p.stat().st_size, "sha256": _sha256(p)}
    if model_files:
        for name in MODEL_FILES:
            p = run_dir / name
            if p.exists():
                out[name] = {"bytes": p.stat().st_size}
    return out


def verify_artifacts(run_dir: Path, status: dict) -> list[str]:
    """What is wrong with a finished run's artifacts (empty list: intact).

    Runs written before artifacts were recorded (no ``artifacts`` in the status)
    are checked for presence and readability only.
    """
    run_dir = Path(run_dir)
    record = status.get("artifacts")
    problems = []
    if record is None:
        for name in ("history.csv", "predictions.csv", "metrics.json"):
            if not (run_dir / name).exists():
                problems.append(f"{name} is missing")
        return problems
    for name, want in record.items():
        p = run_dir / name
        if not p.exists():
            problems.append(f"{name} is missing")
            continue
        size = p.stat().st_size
        if size != want["bytes"]:
            problems.append(f"{name} has {size} bytes, the run wrote {want['bytes']}")
        elif "sha256" in want and _sha256(p) != want["sha256"]:
            problems.append(f"{name} was changed after the run finished (SHA-256 differs)")
    return problems


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
            except (CmlibError, OSError, ValueError):  # damaged or foreign directories are not results
                continue
            if finished_only and not r.finished:
                continue
            runs.append(r)
    runs.sort(key=lambda r: (r.model, r.group, r.seed))
    return runs


def find_config_runs(roots: str | Path | Iterable[str | Path], cfg, seeds: Sequence[int]) -> tuple[list[Run], bool]:
    """The finished runs of configuration ``cfg`` (a :class:`cmlib.config.RunConfig`) for ``seeds``, read-only.

    Exact matches (same identity: directory ``<model>/<group_key>/seed-NN``) come
    first; a seed without one is filled by a run of the same configuration in
    another arithmetic precision (:data:`cmlib.config.ROUND_OFF_FIELDS`: the same
    experiment up to round-off; its ``config.json`` says which precision it ran in).
    If there are none at all, runs whose configuration differs only in the data
    file's content hash (and the precision) are returned with ``similar=True`` (a
    page can then say that its stored runs were made on another version of the data).
    Returns ``(runs, similar)``, one run per seed at most, in seed order.
    """
    from .config import ROUND_OFF_FIELDS, RunConfig, round_off_variants

    if isinstance(roots, (str, Path)):
        roots = [roots]
    roots = list(roots)
    want = {int(s) for s in seeds}
    exact: dict[int, Run] = {}
    similar: dict[int, Run] = {}
    ignore = ("seed", "data_sha256", *ROUND_OFF_FIELDS)
    key = {k: v for k, v in cfg.semantic_dict().items() if k not in ignore}
    for variant in [cfg, *round_off_variants(cfg)]:
        for root in roots:
            for r in find_runs(root, model=cfg.model, group=variant.group_key()):
                if r.seed in want:
                    exact.setdefault(r.seed, r)
    if not exact:
        for root in roots:
            for r in find_runs(root, model=cfg.model):
                if r.seed not in want or r.seed in similar:
                    continue
                try:
                    other = RunConfig.from_dict(r.config).semantic_dict()
                except CmlibError:
                    continue
                if {k: v for k, v in other.items() if k not in ignore} == key:
                    similar[r.seed] = r
    found = exact or similar
    return [found[s] for s in sorted(found)], not exact and bool(similar)


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


def upgrade_runs(root: str | Path, *, dry_run: bool = False) -> list[tuple[Path, Path]]:
    """Bring every run directory under ``root`` to the current record format, in place.

    For each ``<model>/<group>/seed-NN`` whose ``config.json`` is older than
    :data:`cmlib.config.CONFIG_VERSION`: rewrite it upgraded (:func:`cmlib.config.upgrade`),
    record the artifacts' sizes and hashes in a finished run's ``status.json``, and
    move the directory to the identity the upgraded record defines.  A target that
    exists already is an error (nothing is merged or overwritten).  Returns the
    moves ``(old, new)``; ``dry_run`` only reports them.  ``cmlib upgrade-runs DIR``.
    """
    from .config import CONFIG_VERSION, RunConfig

    root = Path(root)
    moves = []
    for cfg_file in sorted(root.glob("*/*/seed-*/config.json")):
        run_dir = cfg_file.parent
        record = read_record(cfg_file)
        if int(record.get("config_version", 1)) >= CONFIG_VERSION:
            continue
        cfg = RunConfig.from_dict(record)
        target = cfg.run_dir(root)
        if target != run_dir and target.exists():
            raise CmlibError(f"cannot upgrade {run_dir}: its new identity {target} exists already; "
                             "remove one of the two")
        moves.append((run_dir, target))
        if dry_run:
            continue
        atomic_write_json(cfg_file, cfg.to_dict())
        status_file = run_dir / "status.json"
        if status_file.exists():
            status = read_record(status_file)
            if status.get("status") in FINISHED and "artifacts" not in status:
                status["artifacts"] = artifact_record(run_dir, model_files=bool(status.get("model_files", True)))
                atomic_write_json(status_file, status)
        if target != run_dir:
            target.parent.mkdir(parents=True, exist_ok=True)
            run_dir.rename(target)
            try:
                run_dir.parent.rmdir()
            except OSError:
                pass
    return moves
