"""Training runs: any registered model on any data file, everything kept on disk.

``train_seeds(model, data, epochs=..., seeds=...)`` (and ``cmlib train``)
resolves a configuration from the model's recipe (the thesis's Table 4, or the
paper's for the Krippendorf baseline) plus your overrides, and for each seed
writes a self-describing run directory (see :mod:`cmlib.artifacts`).

Runs are safe to repeat and to interrupt:

* a completed run with the same configuration is reused, not retrained
  (``force=True`` / ``--force`` retrains);
* after every epoch the full state (model, optimizer, history, early-stopping
  counters) is checkpointed atomically; an interrupted run (Ctrl-C, kill,
  power loss) resumes from its last completed epoch when the same command is
  given again and ends where an uninterrupted run would: the data order and
  augmentation of epoch ``e`` depend only on (seed, epoch), and TensorFlow's
  CPU kernels are made deterministic;
* a NaN or exploding training loss stops the run, which is recorded as
  ``diverged`` (the thesis saw sigma > 10^4 blow-ups with ResNet152).

Progress is one line per epoch (epoch, losses, time, ETA); never per batch.
"""
from __future__ import annotations

import contextlib
import math
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from . import __version__
from . import artifacts as A
from ._io import atomic_path, atomic_write_json, read_json, stable_hash
from .errors import CmlibError, InputError
from .metrics import Predictions, evaluate

#: Configuration keys that do not change what is computed (excluded from the run's identity).
NON_SEMANTIC = ("data", "profile", "seed")
#: Options a user may override on top of a model's recipe.
OVERRIDABLE = ("split", "split_seed", "loss", "output", "lr", "lr_schedule", "batch_size", "bands", "pad",
               "scaling", "augment", "early_stopping", "head", "dense_units", "dropout", "weights",
               "adapter", "max_clusters", "min_delta", "run_eagerly", "output_bias")
#: How the output layer's bias starts: "zero" (Keras's default, the thesis's setting) or "mean" (the mean
#: training label, and for a Gaussian output its log-variance). The thesis's deep models start 14 dex
#: away from the answer and spend their first few hundred Adam steps (~1e-3 dex each) walking the bias
#: there; over 4000 epochs that is irrelevant, in a CPU budget of a few epochs it is the whole run.
OUTPUT_BIAS = ("zero", "mean")
LR_SCHEDULES = ("constant", "cosine", "plateau")
#: A training loss above this multiple of the first epoch's loss counts as exploded.
EXPLODE_FACTOR = 1e4


# ---------------------------------------------------------------- configuration

def resolve_config(model: str, data: str | os.PathLike, *, epochs: int, seed: int = 0,
                   profile: str = "custom", **overrides: Any) -> dict:
    """The full configuration of one run: the model's recipe, then ``overrides``.

    Raises :class:`InputError` for unknown options or invalid values, and
    :class:`cmlib.errors.DataFileError` if ``data`` is not a valid data file.
    """
    from . import data as D
    from . import models as Mz

    spec = Mz.get_spec(model)
    unknown = sorted(set(overrides) - set(OVERRIDABLE))
    if unknown:
        raise InputError(f"unknown training option(s) {', '.join(unknown)}; valid: {', '.join(OVERRIDABLE)}")
    if not isinstance(epochs, (int, np.integer)) or isinstance(epochs, bool) or epochs < 1:
        raise InputError(f"epochs must be a positive integer, got {epochs!r}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed must be a non-negative integer, got {seed!r}")
    cfg: dict[str, Any] = dict(spec.recipe)
    cfg.pop("reference_epochs", None)
    cfg.update(split="thesis", split_seed=0, lr_schedule="constant", dropout=0.0, weights=None,
               adapter=False, max_clusters=None, min_delta=0.0, run_eagerly=False)
    ov = dict(overrides)
    # a loss implies its output layer (and vice versa) unless both are given
    if "loss" in ov and "output" not in ov:
        ov["output"] = "gaussian" if ov["loss"] == "nll" else "point"
    if "output" in ov and "loss" not in ov:
        ov["loss"] = "nll" if ov["output"] == "gaussian" else "mse"
    cfg.update(ov)
    # validate / normalise
    recipe_view = {k: cfg[k] for k in Mz.RECIPE_KEYS if k in cfg}
    recipe_view["reference_epochs"] = 1
    recipe_view["bands"] = cfg["bands"] if cfg["bands"] in ("thesis", "all") else "thesis"
    Mz.make_recipe(recipe_view)  # raises InputError on any bad recipe value
    cfg["bands"] = list(D.parse_bands(cfg["bands"]))
    if cfg["split"] not in D.available_splits():
        raise InputError(f"unknown split '{cfg['split']}'; choose one of {', '.join(D.available_splits())}")
    if cfg["lr_schedule"] not in LR_SCHEDULES:
        raise InputError(f"unknown lr_schedule '{cfg['lr_schedule']}'; choose one of {', '.join(LR_SCHEDULES)}")
    if not 0.0 <= float(cfg["dropout"]) < 1.0:
        raise InputError(f"dropout must be in [0, 1), got {cfg['dropout']}")
    if cfg["max_clusters"] is not None and int(cfg["max_clusters"]) < 8:
        raise InputError(f"max_clusters must be at least 8 (got {cfg['max_clusters']})")
    if cfg["weights"] in ("none", "None", ""):
        cfg["weights"] = None
    # deep (keras.applications) models start at the mean label unless told otherwise; "zero" is the
    # Keras default and is stored as an absent key, so that runs made before the option existed keep
    # their identity
    cfg.setdefault("output_bias", "zero" if spec.family in ("basic", "baseline") else "mean")
    if cfg["output_bias"] not in OUTPUT_BIAS:
        raise InputError(f"unknown output_bias '{cfg['output_bias']}'; choose one of {', '.join(OUTPUT_BIAS)}")
    if cfg["output_bias"] == "zero":
        del cfg["output_bias"]
    info = data_identity(data)
    cfg.update(model=model, epochs=int(epochs), seed=int(seed), profile=profile, data=str(data),
               data_sha256=info["content_sha256"], n_clusters=int(info["n_clusters"]),
               lr=float(cfg["lr"]), batch_size=int(cfg["batch_size"]),
               early_stopping=int(cfg["early_stopping"]), dropout=float(cfg["dropout"]),
               predict_with="best" if int(cfg["early_stopping"]) > 0 else "last")
    return cfg


def data_identity(path: str | os.PathLike) -> dict:
    """Content hash and size of a data file, from its header (cheap; full validation happens on load)."""
    from .errors import DataFileError

    p = Path(path)
    if not p.is_file():
        raise DataFileError(f"data file '{p}' does not exist; create it with `cmlib simulate --out {p}` "
                            f"or `cmlib import-lmu ... --out {p}`")
    try:
        import h5py

        with h5py.File(p, "r") as f:
            sha = str(f.attrs["content_sha256"])
            n = int(f.attrs["n_clusters"])
    except (OSError, KeyError) as exc:
        raise DataFileError(f"'{p}' is not a readable cmlib data file ({exc}); check it with `cmlib info {p}`") from None
    return {"content_sha256": sha, "n_clusters": n}


def group_key(cfg: dict) -> str:
    """Identity of a configuration without its seed (the seeds of one experiment share it)."""
    return stable_hash({k: v for k, v in cfg.items() if k not in NON_SEMANTIC}, 10)


def run_dir_for(cfg: dict, runs_dir: str | os.PathLike) -> Path:
    return Path(runs_dir) / cfg["model"] / group_key(cfg) / f"seed-{int(cfg['seed']):02d}"


# ---------------------------------------------------------------- environment

def environment() -> dict:
    """Package versions, backend, device and machine of this process."""
    from ._env import import_keras

    keras = import_keras()

    backend = keras.backend.backend()
    env: dict[str, Any] = {
        "cmlib_version": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "keras": keras.__version__,
        "backend": backend,
        "numpy": np.__version__,
    }
    devices: list[str] = []
    if backend == "tensorflow":
        import tensorflow as tf

        env["tensorflow"] = tf.__version__
        devices = [d.device_type + ":" + d.name.split(":")[-1] for d in tf.config.list_physical_devices()]
        gpus = [d for d in tf.config.list_physical_devices("GPU")]
    elif backend == "jax":
        import jax

        env["jax"] = jax.__version__
        devices = [str(d) for d in jax.devices()]
        gpus = [d for d in jax.devices() if d.platform == "gpu"]
    elif backend == "torch":
        import torch

        env["torch"] = torch.__version__
        gpus = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
        devices = ["cpu"] + [f"cuda:{i}" for i in gpus]
    else:  # pragma: no cover
        gpus = []
    try:
        mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30
    except (ValueError, OSError, AttributeError):  # pragma: no cover
        mem_gib = float("nan")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    env["devices"] = devices
    env["machine"] = {
        "cpu_cores": cores,
        "memory_gib": round(mem_gib, 1),
        "gpus": len(gpus),
        "summary": f"{cores} CPU cores, {mem_gib:.0f} GiB RAM, "
                   + (f"{len(gpus)} GPU(s)" if gpus else "no GPU") + f", {backend} backend",
    }
    env["git_commit"] = _git_commit()
    return env


def _git_commit() -> str:
    repo = Path(__file__).resolve().parents[1]
    if not (repo / ".git").exists():
        return ""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                               capture_output=True, text=True, timeout=5)
        return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "") if out.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        return ""


# ---------------------------------------------------------------- data for a run

_DATA_CACHE: dict[tuple, Any] = {}


def _prepared(cfg: dict):
    """Load + split + prepare the data of a run (cached for the seeds of one group)."""
    from . import data as D

    key = (cfg["data"], cfg["data_sha256"], tuple(cfg["bands"]), cfg["pad"], cfg["scaling"], cfg["split"],
           cfg["split_seed"], cfg["max_clusters"])
    if key not in _DATA_CACHE:
        _DATA_CACHE.clear()
        d = D.load(cfg["data"], bands=cfg["bands"], max_clusters=cfg["max_clusters"])
        if d.content_sha256 != cfg["data_sha256"] and cfg["max_clusters"] is None:
            raise CmlibError(f"the data file {cfg['data']} changed since this run was configured "
                             f"(hash {d.content_sha256[:12]} != {cfg['data_sha256'][:12]}); start a new run")
        split = D.make_split(cfg["split"], d, seed=cfg["split_seed"])
        prep = D.prepare(d, split, bands=cfg["bands"], pad=cfg["pad"], scaling=cfg["scaling"])
        _DATA_CACHE[key] = (d, split, prep)
    return _DATA_CACHE[key]


# ---------------------------------------------------------------- learning rate

def learning_rate(cfg: dict, epoch: int, val_history: Sequence[float], lr_history: Sequence[float]) -> float:
    """The learning rate for 0-based ``epoch``, a pure function of the history (so resumable).

    ``constant``: the configured rate (thesis).  ``cosine``: cosine decay to 0 over
    ``epochs``.  ``plateau``: halve the rate when the validation loss has not
    improved for 10 epochs (at most once per 10 epochs, not below 1e-6).
    """
    lr0 = float(cfg["lr"])
    sched = cfg.get("lr_schedule", "constant")
    if sched == "constant":
        return lr0
    if sched == "cosine":
        return lr0 * 0.5 * (1.0 + math.cos(math.pi * epoch / max(1, cfg["epochs"])))
    current = lr_history[-1] if lr_history else lr0
    patience = 10
    if len(val_history) > patience:
        vals = np.asarray(val_history, dtype=float)
        best_before = np.nanmin(vals[:-patience]) if np.isfinite(vals[:-patience]).any() else np.inf
        recent_best = np.nanmin(vals[-patience:]) if np.isfinite(vals[-patience:]).any() else np.inf
        last_change = next((i for i in range(len(lr_history) - 1, 0, -1) if lr_history[i] != lr_history[i - 1]),
                           0)
        if recent_best >= best_before and len(lr_history) - last_change >= patience:
            return max(current * 0.5, 1e-6)
    return current


# ---------------------------------------------------------------- the run

@dataclass
class RunResult:
    path: Path
    status: str
    reused: bool
    run: A.Run

    @property
    def metrics(self) -> dict:
        return self.run.metrics


@contextlib.contextmanager
def _run_lock(run_dir: Path):
    import fcntl

    run_dir.mkdir(parents=True, exist_ok=True)
    fh = open(run_dir / ".lock", "w")
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise CmlibError(f"another process is training {run_dir}; wait for it or stop it") from None
        yield
    finally:
        fh.close()
        with contextlib.suppress(FileNotFoundError):
            (run_dir / ".lock").unlink()


def _checkpoints(run_dir: Path) -> list[Path]:
    d = run_dir / "checkpoints"
    return sorted(p for p in d.glob("epoch-*") if p.is_dir() and (p / "state.json").exists()) if d.exists() else []


def _deterministic(seed: int) -> None:
    import logging

    from ._env import import_keras

    keras = import_keras()
    keras.utils.set_random_seed(int(seed))
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        # TensorFlow's Python logger prints retracing notices to stdout: noise in notebooks
        tf.get_logger().setLevel(logging.ERROR)
        logging.getLogger("tensorflow").setLevel(logging.ERROR)

        with contextlib.suppress(Exception):
            tf.config.experimental.enable_op_determinism()


def _save_model(model, path: Path) -> None:
    with atomic_path(path, overwrite=True) as tmp:
        tmp_keras = tmp.with_name(tmp.name + ".keras")
        model.save(tmp_keras)
        os.replace(tmp_keras, tmp)


def _save_weights(model, path: Path) -> None:
    with atomic_path(path, overwrite=True) as tmp:
        tmp_h5 = tmp.with_name(tmp.name + ".weights.h5")
        model.save_weights(tmp_h5)
        os.replace(tmp_h5, tmp)


def _custom_objects() -> dict:
    from . import models as Mz

    return {"gaussian_nll": Mz.gaussian_nll, "mse_of_mean": Mz.mse_of_mean}


def _load_model(path: Path):
    import keras

    return keras.models.load_model(path, custom_objects=_custom_objects(), compile=True)


def init_output_bias(model, y_train) -> None:
    """Start the output layer (named ``"log_m500"``) at the mean training label.

    Point output: bias = mean(y).  Gaussian output [mean, ln variance]: bias =
    [mean(y), ln var(y)], i.e. the network starts as the prior of the labels.
    The kernel is left as initialised, so the network's first prediction is
    the mean plus a small random term.
    """
    layer = model.get_layer("log_m500")
    y = np.asarray(y_train, dtype="float64").ravel()
    bias = np.array([y.mean()] if layer.units == 1 else [y.mean(), math.log(max(y.var(), 1e-6))],
                    dtype="float32")
    layer.bias.assign(bias)


def _compile(model, cfg: dict) -> None:
    import keras

    from . import models as Mz

    metrics = [Mz.mse_of_mean] if cfg["loss"] == "nll" else None
    # run_eagerly skips graph tracing: slower per step, but for tiny smoke runs of the deep
    # models tracing dominates (e.g. EfficientNet-B7: 79 s traced vs 41 s eager for one epoch)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=cfg["lr"]), loss=Mz.loss_for(cfg["loss"]),
                  metrics=metrics, run_eagerly=bool(cfg.get("run_eagerly", False)))


def train_run(cfg: dict, runs_dir: str | os.PathLike = "runs", *, force: bool = False,
              verbose: bool = True, keep_models: bool = True) -> RunResult:
    """Train one configured run (see :func:`resolve_config`), or reuse/resume it.

    ``keep_models=False`` writes every artifact except the model files ``best.keras`` and
    ``last.keras`` (a deep model with its Adam state is up to about 1 GB per file; the book's
    pages need only the predictions). It does not change the run's identity.
    """
    run_dir = run_dir_for(cfg, runs_dir)
    if run_dir.exists() and (run_dir / "status.json").exists() and not force:
        status = read_json(run_dir / "status.json").get("status")
        if status in A.FINISHED:
            return RunResult(run_dir, status, True, A.Run.load(run_dir))
    with _run_lock(run_dir):
        if force:
            for child in run_dir.iterdir():
                if child.name != ".lock":
                    shutil.rmtree(child) if child.is_dir() else child.unlink()
        return _train(cfg, run_dir, verbose=verbose, keep_models=keep_models)


def _train(cfg: dict, run_dir: Path, *, verbose: bool, keep_models: bool = True) -> RunResult:
    from . import data as D
    from ._env import import_keras

    keras = import_keras()
    from . import models as Mz

    d, split, prep = _prepared(cfg)
    cfg_file = run_dir / "config.json"
    if cfg_file.exists():
        old = read_json(cfg_file)
        if group_key(old) != group_key(cfg) or old.get("seed") != cfg["seed"]:
            raise CmlibError(f"{run_dir} holds a run with another configuration; remove it or use --force")
    else:
        atomic_write_json(cfg_file, cfg)
        atomic_write_json(run_dir / "split.json", split.to_dict())
    atomic_write_json(run_dir / "env.json", environment())
    tag = f"{cfg['model']} s{cfg['seed']}"

    ckpts = _checkpoints(run_dir)
    _deterministic(cfg["seed"])
    if ckpts:
        last = ckpts[-1]
        state = read_json(last / "state.json")
        model = _load_model(last / "model.keras")
        history = state["history"]
        start = int(state["epochs_completed"])
        if verbose:
            print(f"{tag}: resuming after epoch {start} from {last}", flush=True)
    else:
        model = Mz.build(cfg["model"], prep.image_shape, head=cfg["head"], output=cfg["output"],
                         weights=cfg["weights"], adapter=cfg["adapter"], dropout=cfg["dropout"],
                         dense_units=cfg["dense_units"], seed=cfg["seed"])
        if cfg.get("output_bias", "zero") == "mean":
            init_output_bias(model, prep.train.y)
        _compile(model, cfg)
        state = {"epochs_completed": 0, "best_epoch": 0, "best_val_loss": None, "wait": 0, "elapsed_s": 0.0}
        history = []
        start = 0
    A.write_status(run_dir, status=A.STATUS_RUNNING, epochs_completed=start, best_epoch=state["best_epoch"],
                   best_val_loss=state["best_val_loss"], wall_time_s=state["elapsed_s"])

    val_input = D.make_eval_input(prep, "val", batch_size=cfg["batch_size"])
    status, reason = A.STATUS_COMPLETE, f"{cfg['epochs']} epoch{'s' if cfg['epochs'] != 1 else ''}"
    best = state["best_val_loss"] if state["best_val_loss"] is not None else math.inf
    first_loss = history[0]["loss"] if history else None
    times = [r["epoch_time_s"] for r in history]
    try:
        for epoch in range(start, cfg["epochs"]):
            lr = learning_rate(cfg, epoch, [r["val_loss"] for r in history], [r["lr"] for r in history])
            model.optimizer.learning_rate.assign(lr)
            train_input = D.make_train_input(prep, seed=cfg["seed"], epoch=epoch, batch_size=cfg["batch_size"],
                                             augment=cfg["augment"])
            t = time.perf_counter()
            h = model.fit(train_input, validation_data=val_input, epochs=epoch + 1, initial_epoch=epoch,
                          verbose=0, shuffle=False)
            dt = time.perf_counter() - t
            loss = float(h.history["loss"][-1])
            val_loss = float(h.history.get("val_loss", [math.nan])[-1])
            state["elapsed_s"] += dt
            times.append(dt)
            history.append(dict(epoch=epoch + 1, loss=loss, val_loss=val_loss, lr=lr, epoch_time_s=dt,
                                elapsed_s=state["elapsed_s"]))
            first_loss = first_loss if first_loss is not None else loss
            improved = math.isfinite(val_loss) and val_loss < best - float(cfg.get("min_delta", 0.0))
            if improved:
                best = val_loss
                state.update(best_epoch=epoch + 1, best_val_loss=val_loss, wait=0)
                if keep_models or cfg["predict_with"] == "best":
                    _save_weights(model, run_dir / "best.weights.h5")
            else:
                state["wait"] += 1
            state["epochs_completed"] = epoch + 1
            diverged = not math.isfinite(loss) or (first_loss > 0 and loss > EXPLODE_FACTOR * first_loss)
            stop_early = cfg["early_stopping"] > 0 and state["wait"] >= cfg["early_stopping"]
            # checkpoint: a complete directory per epoch, renamed into place, older ones removed (without
            # model files, the last epoch's is skipped: it would only be deleted again a moment later)
            if keep_models or epoch + 1 < cfg["epochs"]:
                ck = run_dir / "checkpoints" / f"epoch-{epoch + 1:05d}"
                with atomic_path(ck, overwrite=True, directory=True) as tmp:
                    model.save(tmp / "model.keras")
                    atomic_write_json(tmp / "state.json", {**state, "history": history})
                for old in _checkpoints(run_dir)[:-1]:
                    shutil.rmtree(old, ignore_errors=True)
            A.write_history(run_dir / "history.csv", history)
            A.write_status(run_dir, status=A.STATUS_RUNNING, epochs_completed=epoch + 1,
                           best_epoch=state["best_epoch"], best_val_loss=state["best_val_loss"],
                           wall_time_s=state["elapsed_s"])
            if verbose:
                recent = times[-10:]
                eta = (cfg["epochs"] - epoch - 1) * float(np.mean(recent))
                print(f"{tag} epoch {epoch + 1:>4}/{cfg['epochs']}  loss {loss:.4g}  val {val_loss:.4g}  "
                      f"lr {lr:.1e}  {dt:.1f} s  ETA {A.format_duration(eta)}" + ("  *" if improved else ""), flush=True)
            if diverged:
                status = A.STATUS_DIVERGED
                reason = (f"training loss {loss:.3g} at epoch {epoch + 1} "
                          + ("is not finite" if not math.isfinite(loss) else
                             f"exceeds {EXPLODE_FACTOR:g} x the first epoch's {first_loss:.3g}"))
                if verbose:
                    print(f"{tag}: diverged: {reason}; stopping and recording the run as diverged", flush=True)
                break
            if stop_early:
                reason = (f"early stopping at epoch {epoch + 1}: no improvement of the validation loss for "
                          f"{cfg['early_stopping']} epochs (best at epoch {state['best_epoch']})")
                break
    except KeyboardInterrupt:
        A.write_status(run_dir, status="interrupted", epochs_completed=state["epochs_completed"],
                       best_epoch=state["best_epoch"], best_val_loss=state["best_val_loss"],
                       wall_time_s=state["elapsed_s"])
        raise

    use_best = cfg["predict_with"] == "best" and (run_dir / "best.weights.h5").exists()
    if keep_models:
        _keep_model_files(model, run_dir, state, use_best)
    else:
        if use_best and state["best_epoch"] != state["epochs_completed"]:
            model.load_weights(run_dir / "best.weights.h5")
        for name in ("best.weights.h5", "best.keras", "last.keras"):
            (run_dir / name).unlink(missing_ok=True)
    final = model
    preds = predict_subsets(final, cfg, d, split, prep)
    A.write_predictions(run_dir / "predictions.csv", preds)
    metrics = {s: evaluate(p) for s, p in preds.items()}
    hist_arr = {k: np.asarray([r[k] for r in history]) for k in A.HISTORY_COLUMNS}
    b = state["best_epoch"]
    metrics["loss"] = {
        "train_last": float(hist_arr["loss"][-1]) if history else math.nan,
        "val_last": float(hist_arr["val_loss"][-1]) if history else math.nan,
        "train_at_best": float(hist_arr["loss"][b - 1]) if b else math.nan,
        "val_best": float(state["best_val_loss"]) if state["best_val_loss"] is not None else math.nan,
        "best_epoch": int(b),
        "epochs_completed": int(state["epochs_completed"]),
    }
    metrics["predicted_with"] = "best" if use_best else "last"
    atomic_write_json(run_dir / "metrics.json", metrics)
    A.write_status(run_dir, status=status, epochs_completed=state["epochs_completed"], best_epoch=b,
                   best_val_loss=state["best_val_loss"], wall_time_s=state["elapsed_s"],
                   stopped_reason=reason, predicted_with=metrics["predicted_with"],
                   mean_epoch_time_s=float(np.mean(times)) if times else math.nan,
                   model_files=bool(keep_models))
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    if verbose:
        t = metrics.get("test", {})
        print(f"{tag}: {status} ({reason}); test sigma(4.0.1) {t.get('sigma', math.nan):.3f}  "
              f"mu {t.get('mu', math.nan):+.3f}  std(x) {t.get('std', math.nan):.3f} dex  "
              f"[{A.format_duration(state['elapsed_s'])}]", flush=True)
    keras.backend.clear_session()
    return RunResult(run_dir, status, False, A.Run.load(run_dir))


def _keep_model_files(model, run_dir: Path, state: dict, use_best: bool) -> None:
    """Write ``last.keras`` and ``best.keras``; leave ``model`` holding the weights that predict."""
    # last.keras: the final checkpoint's model file (moved, not saved again: deep models are large)
    ckpts = _checkpoints(run_dir)
    if ckpts and (ckpts[-1] / "model.keras").exists() and \
            read_json(ckpts[-1] / "state.json")["epochs_completed"] == state["epochs_completed"]:
        os.replace(ckpts[-1] / "model.keras", run_dir / "last.keras")
    else:
        _save_model(model, run_dir / "last.keras")
    if (run_dir / "best.weights.h5").exists():
        if state["best_epoch"] == state["epochs_completed"]:
            shutil.copyfile(run_dir / "last.keras", run_dir / ".best.tmp.keras")
            os.replace(run_dir / ".best.tmp.keras", run_dir / "best.keras")
        else:
            final_weights = [w.numpy() if hasattr(w, "numpy") else np.asarray(w) for w in model.weights]
            model.load_weights(run_dir / "best.weights.h5")
            _save_model(model, run_dir / "best.keras")
            if not use_best:
                for var, val in zip(model.weights, final_weights):
                    var.assign(val)
        (run_dir / "best.weights.h5").unlink()


def predict_subsets(model, cfg: dict, d, split, prep) -> dict[str, Predictions]:
    """Predictions of ``model`` for the train, val and test subsets (no augmentation)."""
    from . import data as D
    from . import models as Mz

    out: dict[str, Predictions] = {}
    for subset in A.SUBSETS:
        arrays = prep[subset]
        if arrays.n == 0:
            continue
        y = model.predict(D.make_eval_input(prep, subset, batch_size=max(cfg["batch_size"], 64)), verbose=0)
        y = np.asarray(y)
        if cfg["output"] == "gaussian":
            mean, sigma = Mz.gaussian_mean_sigma(y)
        else:
            mean, sigma = y.reshape(-1), None
        out[subset] = Predictions(cluster_id=arrays.ids, true=arrays.y.reshape(-1), pred=mean, sigma=sigma,
                                  z=arrays.x_z.reshape(-1))
    return out


def train_seeds(model: str, data: str | os.PathLike, *, epochs: int, seeds: Sequence[int] = (0,),
                runs_dir: str | os.PathLike = "runs", force: bool = False, verbose: bool = True,
                profile: str = "custom", keep_models: bool = True, **overrides: Any) -> list[RunResult]:
    """Train ``model`` on ``data`` once per seed (reusing completed runs); see the module docstring."""
    results = []
    seeds = list(seeds)
    if not seeds:
        raise InputError("give at least one seed")
    for seed in seeds:
        cfg = resolve_config(model, data, epochs=epochs, seed=seed, profile=profile, **overrides)
        r = train_run(cfg, runs_dir, force=force, verbose=verbose, keep_models=keep_models)
        if verbose and r.reused:
            print(f"{model} s{seed}: reusing completed run {r.path}", flush=True)
        results.append(r)
    return results


def format_runs_summary(results: Sequence[RunResult]) -> str:
    """A small table: seed, status, epochs, best epoch, test sigma/mu/std, directory."""
    lines = [f"{'seed':>4}  {'status':<9} {'epochs':>6} {'best':>5}  {'sigma':>6} {'mu':>7} {'std(x)':>7}  run"]
    for r in results:
        s = r.run.status_info
        t = r.metrics.get("test", {})
        lines.append(f"{r.run.seed:>4}  {r.status:<9} {s.get('epochs_completed', 0):>6} {s.get('best_epoch', 0):>5}  "
                     f"{t.get('sigma', math.nan):6.3f} {t.get('mu', math.nan):+7.3f} {t.get('std', math.nan):7.3f}  "
                     f"{r.path}" + ("  (reused)" if r.reused else ""))
    lines.append("sigma: thesis eq. 4.0.1 (spread of |x|); mu: eq. 4.0.4; std(x): standard deviation of "
                 "x = predicted - true [dex]; test subset.")
    return "\n".join(lines)
