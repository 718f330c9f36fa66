"""Training runs: any registered model on any data file, one ``model.fit`` per run, everything on disk.

``train_seeds(model, data, epochs=..., seeds=...)`` (and ``cmlib train``)
resolves a :class:`~cmlib.config.RunConfig` from the model's recipe plus your
overrides and, for each seed, trains into a self-describing run directory
(:mod:`cmlib.artifacts`).

Guarantees (each tested in ``tests/test_train.py`` and ``benchmarks/kill_harness.py``):

* **Reuse**: a finished run with the same identity is reused, after checking
  that its artifacts are intact (sizes and hashes recorded in ``status.json``)
  and that the data file still has the content the run was trained on.
* **Resume**: checkpoints (weights, optimizer state, callback counters, history)
  are written atomically while training (:mod:`cmlib.train.checkpoint`); an
  interrupted run (Ctrl-C, SIGTERM, kill -9, power loss, full disk) resumes from
  its newest checkpoint when the same command is given again and ends with the
  uninterrupted run's history and predictions: the batches of epoch ``e`` depend
  only on (seed, e), and TensorFlow's kernels are made deterministic.
* **Crash-consistent finish**: predictions, metrics and model files are written
  from the final checkpoint, then ``status.json`` (the commit point), and only
  then are the checkpoints removed; a kill at any instant leaves a run that a
  rerun either resumes, finishes from the final checkpoint, or reuses.
* **One writer**: a run directory is locked (``fcntl.flock``, released by the
  OS when the process dies) while a process trains it; a second process gets a
  clear error.
* **Divergence**: a NaN or exploding training loss stops the run, recorded as
  ``diverged`` (the thesis saw sigma > 10^4 blow-ups with ResNet152).

Progress is one line per epoch (epoch, losses, time, ETA); never per batch.

Testing hook: ``CMLIB_FAILPOINT=<name>`` kills the process (SIGKILL, as ``kill -9``)
at a named step of the finish: ``final-checkpoint``, ``model-files``,
``predictions``, ``status`` (see :func:`_failpoint`); the crash-consistency tests
and ``benchmarks/kill_harness.py`` use it.
"""
from __future__ import annotations

import contextlib
import errno
import math
import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .. import artifacts as A
from .._io import atomic_write_json
from ..config import RunConfig, parse_seeds, resolve_config
from ..errors import CmlibError, DataFileError, EmulatedPrecisionWarning, InputError
from . import checkpoint as C


@dataclass
class RunResult:
    path: Path
    status: str
    reused: bool
    run: A.Run

    @property
    def metrics(self) -> dict:
        return self.run.metrics


class DiskFullError(CmlibError):
    """A write failed because the disk is full (HDF5 may hold the half-written file: see ``cmlib.cli``)."""

    hdf5_unclean = True


# ---------------------------------------------------------------- entry points

def _failpoint(name: str) -> None:
    """Die like ``kill -9`` here if ``CMLIB_FAILPOINT`` names this step (crash-consistency tests only)."""
    if os.environ.get("CMLIB_FAILPOINT") == name:
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


def train_seeds(model: str, data: str | os.PathLike, *, epochs: int, seeds: Sequence[int] | str = (0,),
                runs_dir: str | os.PathLike = "runs", force: bool = False, verbose: bool = True,
                profile: str = "custom", keep_models: bool = True, checkpoint_interval_s: float | None = None,
                callbacks: Sequence[Any] = (), **overrides: Any) -> list[RunResult]:
    """Train ``model`` on ``data`` once per seed (reusing finished runs, resuming interrupted ones)."""
    seeds = parse_seeds(seeds)
    cfgs = [resolve_config(model, data, epochs=epochs, seed=s, profile=profile, **overrides) for s in seeds]
    results = []
    for cfg in cfgs:
        r = train_run(cfg, runs_dir, data_path=data, force=force, verbose=verbose, keep_models=keep_models,
                      checkpoint_interval_s=checkpoint_interval_s, callbacks=callbacks)
        if verbose and r.reused:
            print(f"{model} s{cfg.seed}: reusing finished run {r.path}", flush=True)
        results.append(r)
    return results


def warn_if_bf16_is_emulated(precision: str) -> bool:
    """Warn (:class:`EmulatedPrecisionWarning`) and return True if ``precision`` is bfloat16 on hardware without
    bf16 units: there XLA and oneDNN emulate bf16 (a fair-protocol ResNet50 epoch on 2 AVX2 cores had not ended
    after 20 min, against about 2 min in float32).  The run is still trained as asked."""
    if precision != "bfloat16":
        return False
    from ..hardware import has_bf16_hardware

    if has_bf16_hardware():
        return False
    warnings.warn("precision bfloat16 on hardware without bf16 units: it is emulated and many times slower than "
                  "float32 here (a ResNet50 epoch did not end in 20 min against about 2 min in float32 on 2 AVX2 "
                  "cores). Use --precision auto (bf16 where there are bf16 units, float32 elsewhere) or float32: "
                  "the same experiment up to round-off, which the book's pages accept for one another.",
                  EmulatedPrecisionWarning, stacklevel=2)
    return True


def train_run(cfg: RunConfig, runs_dir: str | os.PathLike = "runs", *, data_path: str | os.PathLike | None = None,
              force: bool = False, verbose: bool = True, keep_models: bool = True,
              checkpoint_interval_s: float | None = None, callbacks: Sequence[Any] = ()) -> RunResult:
    """Train one configured run (see :func:`cmlib.config.resolve_config`), or reuse / resume / finish it.

    ``keep_models=False`` writes every artifact except the model files ``best.keras`` and
    ``last.keras`` (a deep model with its Adam state is up to about 1 GB per file; the book's
    pages need only the predictions).  It does not change the run's identity.
    ``callbacks`` are extra Keras callbacks (e.g. a hyperparameter-search pruner).
    """
    if not isinstance(cfg, RunConfig):
        cfg = RunConfig.from_dict(cfg)
    data_path = Path(data_path if data_path is not None else cfg.data)
    run_dir = cfg.run_dir(_check_runs_dir(runs_dir))
    if not force:
        done = _reusable(run_dir, data_path)
        if done is not None:
            return done
    with run_lock(run_dir):
        if force:
            for child in run_dir.iterdir():
                if child.name != ".lock":
                    shutil.rmtree(child) if child.is_dir() else child.unlink()
        else:
            done = _reusable(run_dir, data_path)   # finished by another process while we waited
            if done is not None:
                return done
        policy_s = checkpoint_interval_s
        warn_if_bf16_is_emulated(cfg.precision)          # only where a run is about to train
        try:
            return _train(cfg, run_dir, data_path, verbose=verbose, keep_models=keep_models,
                          checkpoint_interval_s=policy_s, extra_callbacks=callbacks)
        except (OSError, RuntimeError) as exc:
            if getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or "No space left" in str(exc):
                raise DiskFullError(f"the disk is full while writing {run_dir}; free some space and give the same "
                                    "command again: the run resumes from its last complete checkpoint") from None
            raise


def _check_runs_dir(runs_dir: str | os.PathLike) -> Path:
    p = Path(runs_dir)
    if p.exists() and not p.is_dir():
        raise InputError(f"--runs-dir '{p}' is a file, not a directory; choose a directory for the run directories")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the runs directory '{p}' ({exc.strerror or exc}); choose a writable "
                         "--runs-dir") from None
    if not os.access(p, os.W_OK | os.X_OK):
        raise InputError(f"the runs directory '{p}' is not writable; choose a writable --runs-dir")
    return p


@contextlib.contextmanager
def run_lock(run_dir: Path):
    """Hold an exclusive advisory lock on ``run_dir`` for as long as this process trains it.

    ``fcntl.flock`` on ``<run>/.lock``: the OS releases it when the process ends
    (also on kill -9), so there is no stale lock to clean up; the file itself
    stays (removing it would let a third process lock a different inode).
    """
    import fcntl

    run_dir.mkdir(parents=True, exist_ok=True)
    fh = open(run_dir / ".lock", "a")
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise CmlibError(f"another process is training {run_dir}; wait for it to finish (or stop it) and "
                             "give the command again") from None
        yield
    finally:
        fh.close()


def is_locked(run_dir: Path) -> bool:
    """True if a live process holds the run's lock (it is training right now)."""
    import fcntl

    lock = Path(run_dir) / ".lock"
    if not lock.exists():
        return False
    with open(lock, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
        return False


# ---------------------------------------------------------------- reuse

def _data_stat(path: Path) -> dict:
    st = path.stat()
    return {"bytes": st.st_size, "mtime_ns": st.st_mtime_ns}


def _reusable(run_dir: Path, data_path: Path) -> RunResult | None:
    """The finished run in ``run_dir`` if it is intact and made from this data file's content, else None."""
    if not (run_dir / "status.json").exists():
        return None
    run = A.Run.load(run_dir)
    if not run.finished:
        return None
    run.verify()
    C.remove_all(run_dir)   # a kill between the status commit and the clean-up leaves them behind
    recorded = run.status_info.get("data_stat")
    if data_path.exists() and recorded is not None and _data_stat(data_path) != recorded:
        # the file was touched since the run: its content must still be what the run saw
        _verify_data_content(data_path, run.config.get("data_sha256", ""))
    return RunResult(run_dir, run.status, True, run)


def _verify_data_content(path: Path, sha: str) -> None:
    from ..data import io as DIO

    try:
        r = DIO._scan(path, keep_images=False, verify_hash=True)
    except DataFileError as exc:
        raise DataFileError(f"{exc} The run directories made from this file no longer describe it: restore "
                            "the file, or regenerate it (the runs of the new content get new directories)") from None
    if str(r["layout"].attrs.get("content_sha256", "")) != sha:
        raise DataFileError(f"the data file {path} now holds other data (content hash "
                            f"{str(r['layout'].attrs.get('content_sha256', ''))[:12]}) than the run was trained on "
                            f"({sha[:12]}); give the command again to train on the new content")


# ---------------------------------------------------------------- data of a run

_DATA_CACHE: dict[tuple, Any] = {}


def prepared_data(cfg: RunConfig, data_path: Path):
    """Load + split + prepare the data of a run (cached for the seeds of one group)."""
    from .. import data as D

    key = (str(data_path), cfg.data_sha256, tuple(cfg.bands), cfg.pad, cfg.scaling, cfg.split, cfg.split_seed,
           cfg.max_clusters)
    if key not in _DATA_CACHE:
        _DATA_CACHE.clear()
        d = D.load(data_path, bands=list(cfg.bands), max_clusters=cfg.max_clusters,
                   verify_hash=cfg.max_clusters is None)
        if d.content_sha256 != cfg.data_sha256:
            raise CmlibError(f"the data file {data_path} changed since this run was configured "
                             f"(hash {d.content_sha256[:12]} != {cfg.data_sha256[:12]}); give the command again")
        split = D.make_split(cfg.split, d, seed=cfg.split_seed)
        prep = D.prepare(d, split, bands=list(cfg.bands), pad=cfg.pad, scaling=cfg.scaling)
        _DATA_CACHE[key] = (d, split, prep)
    return _DATA_CACHE[key]


# ---------------------------------------------------------------- the model

@contextlib.contextmanager
def precision_policy(precision: str):
    """Build layers under Keras's ``mixed_bfloat16`` policy for ``precision='bfloat16'`` (float32 otherwise)."""
    from .._env import import_keras

    keras = import_keras()
    old = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16" if precision == "bfloat16" else "float32")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(old)


def init_output_bias(model, y_train, *, standardized: bool = False, zero_kernel: bool = False) -> None:
    """Start the output layer (``"log_m500"``) at the mean training label.

    Point output: bias = mean(y).  Gaussian output [mean, ln variance]: bias =
    [mean(y), ln var(y)], i.e. the network starts as the prior of the labels.
    With standardised labels both are 0.  The kernel is left as initialised
    (``output_bias='mean'``), or set to zero (``'prior'``): then the first
    prediction is exactly the prior, not the prior plus the random projection of
    untrained features, which for a deep model's 8192 flattened features is
    several dex; gradients reach the kernel at once and the layers below after
    the first step.
    """
    layer = model.get_layer("log_m500")
    y = np.asarray(y_train, dtype="float64").ravel()
    mean, log_var = (0.0, 0.0) if standardized else (y.mean(), math.log(max(y.var(), 1e-6)))
    bias = np.array([mean] if layer.units == 1 else [mean, log_var], dtype="float32")
    layer.bias.assign(bias)
    if zero_kernel:
        layer.kernel.assign(np.zeros(tuple(layer.kernel.shape), dtype="float32"))


def build_model(cfg: RunConfig, prep):
    """The run's compiled model: architecture, precision, output start, label scaling, optimizer, loss."""
    from .._env import import_keras
    from .. import models as Mz
    from ..models.layers import label_scale_layer

    keras = import_keras()
    with precision_policy(cfg.precision):
        model = Mz.build(cfg.model, prep.image_shape, head=cfg.head, output=cfg.output, weights=cfg.weights,
                         adapter=cfg.adapter, dropout=cfg.dropout, dense_units=cfg.dense_units, seed=cfg.seed)
        if cfg.output_bias in ("mean", "prior"):
            init_output_bias(model, prep.train.y, standardized=cfg.label_scaling == "standardize",
                             zero_kernel=cfg.output_bias == "prior")
        if cfg.label_scaling == "standardize":
            y = np.asarray(prep.train.y, dtype="float64").ravel()
            out = label_scale_layer(float(y.mean()), float(max(y.std(), 1e-6)), 1 if cfg.output == "point" else 2)(
                model.output)
            model = keras.Model(model.inputs, out, name=model.name)
    if cfg.optimizer == "adamw":
        opt = keras.optimizers.AdamW(learning_rate=cfg.lr, weight_decay=cfg.weight_decay)
    else:
        opt = keras.optimizers.Adam(learning_rate=cfg.lr)
    metrics = [Mz.mse_of_mean] if cfg.loss == "nll" else None
    # run_eagerly skips graph tracing: slower per step, but for tiny smoke runs of the deep
    # models tracing dominates (e.g. EfficientNet-B7: 79 s traced vs 41 s eager for one epoch)
    model.compile(optimizer=opt, loss=Mz.loss_for(cfg.loss), metrics=metrics, run_eagerly=cfg.run_eagerly)
    return model


def _custom_objects() -> dict:
    from .. import models as Mz

    return {"gaussian_nll": Mz.gaussian_nll, "mse_of_mean": Mz.mse_of_mean}


def load_model(path: str | os.PathLike):
    """A saved ``best.keras`` / ``last.keras`` (Keras safe mode: no arbitrary code)."""
    from .._env import import_keras
    from ..models.layers import label_scale_layer

    keras = import_keras()
    label_scale_layer(0.0, 1.0, 1)  # registers the LabelScale class
    return keras.models.load_model(path, custom_objects=_custom_objects(), compile=True)


def _deterministic(seed: int) -> None:
    import logging

    from .._env import import_keras

    keras = import_keras()
    keras.utils.set_random_seed(int(seed))
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        # TensorFlow's Python logger prints retracing notices to stdout: noise in notebooks
        tf.get_logger().setLevel(logging.ERROR)
        logging.getLogger("tensorflow").setLevel(logging.ERROR)
        with contextlib.suppress(Exception):
            tf.config.experimental.enable_op_determinism()


# ---------------------------------------------------------------- the run

def _write_config(cfg: RunConfig, run_dir: Path, split) -> None:
    cfg_file = run_dir / "config.json"
    if cfg_file.exists():
        old = RunConfig.from_dict(A.read_record(cfg_file))
        if old.group_key() != cfg.group_key() or old.seed != cfg.seed:
            raise CmlibError(f"{run_dir} holds a run with another configuration; remove it or use --force")
    else:
        atomic_write_json(cfg_file, cfg.to_dict())
        atomic_write_json(run_dir / "split.json", split.to_dict())


def _old_env(run_dir: Path) -> dict | None:
    """The env.json a resumed run wrote before (None if absent or unreadable: then its earlier stretches are
    described as this one)."""
    try:
        return A.read_record(run_dir / "env.json")
    except (CmlibError, OSError):
        return None


def _status(run_dir: Path, status: str, state: dict, **extra) -> None:
    A.write_status(run_dir, status=status, epochs_completed=state["epochs_completed"],
                   best_epoch=state["best_epoch"], best_val_loss=state["best_val_loss"],
                   wall_time_s=state["elapsed_s"], pid=os.getpid(), **extra)


def _train(cfg: RunConfig, run_dir: Path, data_path: Path, *, verbose: bool, keep_models: bool,
           checkpoint_interval_s: float | None, extra_callbacks: Sequence[Any]) -> RunResult:
    from .._env import import_keras
    from .. import data as D
    from .callbacks import CheckpointPolicy, RunEarlyStopping, RunRecorder, lr_callback
    from .diagnostics import TrainingDiagnostics
    from .env import environment, with_earlier_segments

    keras = import_keras()
    d, split, prep = prepared_data(cfg, data_path)
    _write_config(cfg, run_dir, split)
    ck = C.latest(run_dir)
    atomic_write_json(run_dir / "env.json", with_earlier_segments(environment(cfg.precision), _old_env(run_dir),
                                                                  ck.epochs_completed if ck is not None else 0))
    tag = f"{cfg.model} s{cfg.seed}"
    need_best = keep_models or cfg.predict_with == "best"

    _deterministic(cfg.seed)
    model = build_model(cfg, prep)
    if ck is not None:
        ck.load_into(model)
        state = dict(ck.state)
        history = list(state["history"])
        best_weights = ck.best_weights() if need_best else None
        if verbose:
            how = "finishing" if ck.finished else "resuming"
            print(f"{tag}: {how} after epoch {ck.epochs_completed} from {ck.path.relative_to(run_dir)}", flush=True)
    else:
        state = {"epochs_completed": 0, "best_epoch": 0, "best_val_loss": None, "elapsed_s": 0.0, "early": None,
                 "plateau": None, "finished": False}
        history, best_weights = [], None
    start = int(state["epochs_completed"])
    state.setdefault("data_stat", _data_stat(data_path))

    if not state.get("finished"):
        early = RunEarlyStopping(cfg.early_stopping, cfg.min_delta, cfg.epochs)
        early.set_state(state.get("early"))
        sched = lr_callback(cfg)
        if hasattr(sched, "set_state"):
            sched.set_state(state.get("plateau"))
        last_ck = [ck]

        def snapshot(finished: bool = False, **extra) -> dict:
            best = early.best if early.best is not None and math.isfinite(float(early.best)) else None
            return {**state, "epochs_completed": len(history), "history": list(history),
                    "best_epoch": early.best_epoch + 1 if best is not None else 0,
                    "best_val_loss": None if best is None else float(best), "elapsed_s": recorder.elapsed_s,
                    "first_loss": recorder.first_loss, "early": early.get_state(),
                    "plateau": sched.get_state() if hasattr(sched, "get_state") else None,
                    "finished": finished, **extra}

        def save_checkpoint(finished: bool = False, **extra) -> float:
            new, cost = C.write(run_dir, model, snapshot(finished, **extra),
                                best_weights=recorder.best_weights if need_best else None,
                                best_changed=recorder.best_dirty, previous=last_ck[0])
            last_ck[0] = new
            return cost

        def on_epoch(row: dict, improved: bool) -> None:
            A.write_history(run_dir / "history.csv", history)
            snap = snapshot()
            _status(run_dir, A.STATUS_RUNNING, snap)
            if verbose:
                recent = [r["epoch_time_s"] for r in history[-10:]]
                eta = (cfg.epochs - row["epoch"]) * float(np.mean(recent))
                print(f"{tag} epoch {row['epoch']:>4}/{cfg.epochs}  loss {row['loss']:.4g}  val {row['val_loss']:.4g}  "
                      f"lr {row['lr']:.1e}  {row['epoch_time_s']:.1f} s  ETA {A.format_duration(eta)}"
                      + ("  *" if improved else ""), flush=True)

        recorder = RunRecorder(epochs=cfg.epochs, history=history, elapsed_s=float(state["elapsed_s"]), early=early,
                               policy=CheckpointPolicy(checkpoint_interval_s), save_checkpoint=save_checkpoint,
                               on_epoch=on_epoch, best_weights=best_weights)
        if state.get("first_loss") is not None:
            recorder.first_loss = state["first_loss"]
        _status(run_dir, A.STATUS_RUNNING, snapshot())
        if start < cfg.epochs:
            train_input, steps = D.make_run_input(prep, seed=cfg.seed, start_epoch=start, epochs=cfg.epochs,
                                                  batch_size=cfg.batch_size, augment=cfg.augment)
            val_input = D.make_eval_input(prep, "val", batch_size=cfg.batch_size)
            diag = TrainingDiagnostics(prep.train)
            try:
                model.fit(train_input, epochs=cfg.epochs, initial_epoch=start, steps_per_epoch=steps,
                          validation_data=val_input, shuffle=False, verbose=0,
                          callbacks=[sched, keras.callbacks.TerminateOnNaN(), early, diag, recorder,
                                     *extra_callbacks])
            except KeyboardInterrupt:
                with contextlib.suppress(Exception):
                    _status(run_dir, A.STATUS_INTERRUPTED, snapshot())
                raise
        done = len(history)
        if recorder.diverged_reason:
            status, reason = A.STATUS_DIVERGED, recorder.diverged_reason
            if verbose:
                print(f"{tag}: diverged: {reason}; stopping and recording the run as diverged", flush=True)
        elif early.enabled and early.stopped_epoch > 0 and done < cfg.epochs:
            status = A.STATUS_COMPLETE
            reason = (f"early stopping at epoch {done}: no improvement of the validation loss for "
                      f"{cfg.early_stopping} epochs (best at epoch {early.best_epoch + 1})")
        elif done < cfg.epochs:
            status, reason = A.STATUS_COMPLETE, f"stopped at epoch {done} by a callback"
        else:
            status, reason = A.STATUS_COMPLETE, f"{cfg.epochs} epoch{'s' if cfg.epochs != 1 else ''}"
        save_checkpoint(finished=True, status=status, stopped_reason=reason)
        _failpoint("final-checkpoint")
        state = last_ck[0].state
        best_weights = recorder.best_weights if need_best else None
    return _finish(cfg, run_dir, model, state, best_weights, d, split, prep, keep_models=keep_models,
                   verbose=verbose, tag=tag)


def _finish(cfg: RunConfig, run_dir: Path, model, state: dict, best_weights, d, split, prep, *,
            keep_models: bool, verbose: bool, tag: str) -> RunResult:
    """Write the results of a finished run from its final checkpoint's state; status.json last."""
    from .._env import import_keras
    from ..metrics import evaluate

    keras = import_keras()
    history = state["history"]
    use_best = cfg.predict_with == "best" and best_weights is not None
    last = model.get_weights()
    for name in ("best.keras", "last.keras"):   # stale files of an earlier attempt never survive
        (run_dir / name).unlink(missing_ok=True)
    if keep_models:
        _save_model(model, run_dir / "last.keras")
        if best_weights is not None:
            model.set_weights(best_weights)
            _save_model(model, run_dir / "best.keras")
            model.set_weights(last)
    _failpoint("model-files")
    if use_best:
        model.set_weights(best_weights)
    preds = predict_subsets(model, cfg, prep)
    A.write_predictions(run_dir / "predictions.csv", preds)
    _failpoint("predictions")
    A.write_history(run_dir / "history.csv", history)
    metrics = {s: evaluate(p) for s, p in preds.items()}
    b = int(state["best_epoch"])
    metrics["loss"] = {
        "train_last": float(history[-1]["loss"]) if history else math.nan,
        "val_last": float(history[-1]["val_loss"]) if history else math.nan,
        "train_at_best": float(history[b - 1]["loss"]) if b else math.nan,
        "val_best": float(state["best_val_loss"]) if state["best_val_loss"] is not None else math.nan,
        "best_epoch": b,
        "epochs_completed": int(state["epochs_completed"]),
    }
    metrics["predicted_with"] = "best" if use_best else "last"
    atomic_write_json(run_dir / "metrics.json", metrics)
    times = [r["epoch_time_s"] for r in history]
    _status(run_dir, state["status"], state, stopped_reason=state["stopped_reason"],
            predicted_with=metrics["predicted_with"],
            mean_epoch_time_s=float(np.mean(times)) if times else math.nan, model_files=bool(keep_models),
            data_stat=state.get("data_stat"), artifacts=A.artifact_record(run_dir, model_files=keep_models))
    _failpoint("status")
    C.remove_all(run_dir)
    if verbose:
        t = metrics.get("test", {})
        print(f"{tag}: {state['status']} ({state['stopped_reason']}); test sigma(4.0.1) {t.get('sigma', math.nan):.3f}  "
              f"mu {t.get('mu', math.nan):+.3f}  std(x) {t.get('std', math.nan):.3f} dex  "
              f"[{A.format_duration(state['elapsed_s'])}]", flush=True)
    keras.backend.clear_session()
    return RunResult(run_dir, state["status"], False, A.Run.load(run_dir))


def _save_model(model, path: Path) -> None:
    from .._io import atomic_path

    with atomic_path(path, overwrite=True) as tmp:
        tmp_keras = tmp.with_name(tmp.name + ".keras")
        try:
            model.save(tmp_keras)
            os.replace(tmp_keras, tmp)
        finally:
            tmp_keras.unlink(missing_ok=True)


def predict_subsets(model, cfg: RunConfig, prep) -> dict[str, A.Predictions]:
    """Predictions of ``model`` for the train, val and test subsets (no augmentation)."""
    from .. import data as D
    from .. import models as Mz

    out: dict[str, A.Predictions] = {}
    for subset in A.SUBSETS:
        arrays = prep[subset]
        if arrays.n == 0:
            continue
        y = np.asarray(model.predict(D.make_eval_input(prep, subset, batch_size=max(cfg.batch_size, 64)),
                                     verbose=0), dtype=np.float64)
        if cfg.output == "gaussian":
            mean, sigma = Mz.gaussian_mean_sigma(y)
        else:
            mean, sigma = y.reshape(-1), None
        out[subset] = A.Predictions(cluster_id=arrays.ids, true=arrays.y.reshape(-1), pred=mean, sigma=sigma,
                                    z=arrays.x_z.reshape(-1))
    return out


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
