"""Hyperparameter search with Optuna: a TPE sampler, a pruner fed by the per-epoch validation loss.

A *space* is a small TOML file, one table per training option (see ``cmlib train --help``)::

    [lr]                 # a number: low/high (log = true for a log-uniform draw)
    low = 1e-4
    high = 3e-3
    log = true
    [dense_units]        # integers when low and high are integers
    low = 64
    high = 1024
    log = true
    [lr_schedule]        # a categorical option: its choices
    choices = ["constant", "cosine"]
    [fixed]              # options every trial uses (not searched)
    early_stopping = 20

Every trial trains one normal run directory (its identity is its configuration: a trial
that draws a configuration already trained reuses it).  The objective is the run's best
validation loss.  A pruned trial stops like an interrupted run (status ``interrupted``,
resumable), never as a finished one, so its truncated result is never reused as complete.

Storage: a journal file (``JournalStorage``, works on a shared filesystem without a server)
by default, or any SQLAlchemy URL.  Several workers (local processes or Slurm array tasks)
share one study; a global cap bounds the number of trials over all of them: trial numbers
are handed out atomically by the storage, and a worker that draws a number at or past the
cap records that trial as failed with ``user_attrs['over_cap']`` and stops.
"""
from __future__ import annotations

import os
import time
import warnings
from pathlib import Path
from typing import Any, Mapping

from ._env import limit_threads
from ._io import read_toml
from .errors import CmlibError, InputError

SPACE_PARAM_KEYS = ("low", "high", "log", "step", "choices")


class _Pruned(KeyboardInterrupt):
    """Raised inside ``model.fit`` when the pruner says stop: the engine records the run as interrupted."""


# ---------------------------------------------------------------- the space

def load_space(path: str | os.PathLike, model: str) -> tuple[dict[str, dict], dict[str, Any]]:
    """Read and validate a space file: ({option: distribution spec}, {fixed options}).

    Every key must be a training option; every bound and choice must be a valid value of it.
    """
    from .config import overridable, resolve_config

    p, doc = read_toml(path, missing="space file '{path}' does not exist; write one (see `cmlib tune --help` or "
                                     "examples/)",
                       invalid="{path} is not valid TOML ({error}); see `cmlib tune --help` for the format")
    options = set(overridable())
    fixed = doc.pop("fixed", {}) or {}
    if not isinstance(fixed, dict):
        raise InputError(f"{p}: [fixed] must be a table of option = value")
    bad = sorted((set(doc) | set(fixed)) - options)
    if bad:
        raise InputError(f"{p}: unknown training option(s) {', '.join(bad)}; valid: {', '.join(sorted(options))}")
    both = sorted(set(doc) & set(fixed))
    if both:
        raise InputError(f"{p}: {', '.join(both)} both searched and fixed; remove one")
    if not doc:
        raise InputError(f"{p}: nothing to search; add a table such as\n[lr]\nlow = 1e-4\nhigh = 1e-2\nlog = true")

    def valid(name: str, value: Any) -> None:
        try:
            resolve_config(model, "", epochs=1, data_sha256="0", n_clusters=1, **{**fixed, name: value})
        except InputError as exc:
            raise InputError(f"{p}: [{name}]: {exc}") from None

    space: dict[str, dict] = {}
    for name, spec in doc.items():
        if not isinstance(spec, dict):
            raise InputError(f"{p}: '{name}' must be a table ([{name}] with low/high or choices)")
        extra = sorted(set(spec) - set(SPACE_PARAM_KEYS))
        if extra:
            raise InputError(f"{p}: [{name}] has unknown key(s) {', '.join(extra)}; use low, high, log, step or "
                             "choices")
        if "choices" in spec:
            if set(spec) != {"choices"} or not isinstance(spec["choices"], list) or not spec["choices"]:
                raise InputError(f"{p}: [{name}] choices must be a non-empty list (and alone in the table)")
            for c in spec["choices"]:
                valid(name, c)
            space[name] = {"choices": list(spec["choices"])}
            continue
        if "low" not in spec or "high" not in spec:
            raise InputError(f"{p}: [{name}] needs low and high (a range) or choices (a list)")
        lo, hi = spec["low"], spec["high"]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (lo, hi)) or not lo < hi:
            raise InputError(f"{p}: [{name}] low={lo!r} and high={hi!r} must be numbers with low < high")
        if spec.get("log") and lo <= 0:
            raise InputError(f"{p}: [{name}] a log-uniform range needs low > 0 (got {lo})")
        valid(name, lo)
        valid(name, hi)
        kind = "int" if isinstance(lo, int) and isinstance(hi, int) else "float"
        space[name] = {"kind": kind, "low": lo, "high": hi, "log": bool(spec.get("log", False)),
                       "step": spec.get("step")}
    if fixed:
        valid(next(iter(fixed)), fixed[next(iter(fixed))])
    return space, dict(fixed)


def suggest(trial, space: Mapping[str, dict]) -> dict[str, Any]:
    """The trial's options drawn from ``space``."""
    out = {}
    for name, s in space.items():
        if "choices" in s:
            # Optuna stores categorical choices that are lists poorly: draw an index for those
            if any(isinstance(c, list) for c in s["choices"]):
                i = trial.suggest_categorical(name + "#", list(range(len(s["choices"]))))
                out[name] = s["choices"][i]
            else:
                out[name] = trial.suggest_categorical(name, s["choices"])
        elif s["kind"] == "int":
            out[name] = trial.suggest_int(name, s["low"], s["high"], log=s["log"], step=s["step"] or 1)
        else:
            out[name] = trial.suggest_float(name, s["low"], s["high"], log=s["log"], step=s["step"])
    return out


# ---------------------------------------------------------------- storage and study

def storage_for(spec: str | None, default_path: Path):
    """A journal file (a path, the default) or an SQLAlchemy URL (``sqlite:///x.db``, ``postgresql://...``)."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    if spec and "://" in spec:
        try:
            return optuna.storages.RDBStorage(spec)
        except Exception as exc:     # a bad URL, a missing driver, a server that does not answer
            raise InputError(f"cannot open the study storage '{spec}' ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0] if str(exc) else ''}); give a SQLAlchemy URL such as "
                             "sqlite:///study.db or postgresql://user@host/db (with its driver installed), or a "
                             "journal file path") from None
    path = Path(spec) if spec else default_path
    if path.is_dir():
        raise InputError(f"--storage '{path}' is a directory; give a journal file path such as {path}/study.journal")
    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path)))


def make_pruner(name: str, epochs: int):
    import optuna

    warmup = max(1, epochs // 10)
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=warmup)
    if name == "asha":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=warmup, reduction_factor=3)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise InputError(f"unknown pruner '{name}'; choose median, asha or none")


def open_study(study_name: str, storage, *, pruner: str = "median", epochs: int = 1, sampler_seed: int | None = None):
    import optuna

    sampler = optuna.samplers.TPESampler(seed=sampler_seed, multivariate=True, constant_liar=True,
                                         n_startup_trials=5)
    return optuna.create_study(study_name=study_name, storage=storage, direction="minimize", sampler=sampler,
                               pruner=make_pruner(pruner, epochs), load_if_exists=True)


# ---------------------------------------------------------------- the objective

def pruning_callback(trial):
    """A Keras callback that reports each epoch's validation loss to ``trial`` and stops a pruned run."""
    from ._env import import_keras

    keras = import_keras()

    class OptunaPruning(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            val = (logs or {}).get("val_loss")
            if val is None:
                return
            trial.report(float(val), epoch)
            if trial.should_prune():
                raise _Pruned(f"trial {trial.number} pruned at epoch {epoch + 1}")

    return OptunaPruning()


def run_trial(trial, *, model: str, data: str, epochs: int, seed: int, space: Mapping[str, dict],
              fixed: Mapping[str, Any], runs_dir: str, verbose: bool = False) -> float:
    """Train (or reuse) the run of one trial; its best validation loss."""
    import json

    import optuna

    from .config import resolve_config
    from .train import is_locked, train_run

    params = suggest(trial, space)
    cfg = resolve_config(model, data, epochs=epochs, seed=seed, profile="tune", **{**fixed, **params})
    run_dir = cfg.run_dir(runs_dir)
    trial.set_user_attr("run", cfg.identity())
    trial.set_user_attr("options", {k: (list(v) if isinstance(v, tuple) else v) for k, v in {**fixed, **params}.items()})
    while is_locked(run_dir):          # another worker trains this configuration: wait and reuse it
        time.sleep(2.0)
    try:
        r = train_run(cfg, runs_dir, data_path=data, verbose=verbose, keep_models=False,
                      callbacks=[pruning_callback(trial)])
    except _Pruned:
        raise optuna.TrialPruned() from None
    st = json.loads((r.path / "status.json").read_text())
    if r.status != "complete" or st.get("best_val_loss") is None:
        raise optuna.TrialPruned() if r.status == "diverged" else CmlibError(f"run {r.path} ended {r.status}")
    return float(st["best_val_loss"])


def work(*, study_name: str, storage: str | None, default_storage: str, model: str, data: str, epochs: int,
         seed: int, space: Mapping[str, dict], fixed: Mapping[str, Any], runs_dir: str, trials: int,
         pruner: str = "median", threads: int | None = None, verbose: bool = False) -> int:
    """One worker: draw and run trials until the study holds ``trials`` trials. Returns how many it ran."""
    if threads:
        limit_threads(threads)
    import optuna
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = open_study(study_name, storage_for(storage, Path(default_storage)), pruner=pruner, epochs=epochs)
    ran = 0
    while len(study.get_trials(deepcopy=False)) < trials:
        trial = study.ask()
        if trial.number >= trials:      # another worker took the last number meanwhile
            trial.set_user_attr("over_cap", True)
            study.tell(trial, state=TrialState.FAIL)
            break
        try:
            value = run_trial(trial, model=model, data=data, epochs=epochs, seed=seed, space=space, fixed=fixed,
                              runs_dir=runs_dir, verbose=verbose)
        except optuna.TrialPruned:
            study.tell(trial, state=TrialState.PRUNED)
        except KeyboardInterrupt:
            study.tell(trial, state=TrialState.FAIL)
            raise
        except Exception as exc:
            trial.set_user_attr("error", f"{type(exc).__name__}: {exc}")
            study.tell(trial, state=TrialState.FAIL)
            if isinstance(exc, CmlibError) and "data file" in str(exc):
                raise
        else:
            study.tell(trial, value)
        ran += 1
    return ran


class TuneJob:
    """A worker as a submitit job (local process or Slurm array task)."""

    def __init__(self, **kwargs: Any):
        self.kwargs = kwargs

    def __call__(self, index: int = 0) -> int:
        return work(**self.kwargs)


# ---------------------------------------------------------------- summary and promotion

def summary(study) -> str:
    from optuna.trial import TrialState

    trials = [t for t in study.get_trials(deepcopy=False) if not t.user_attrs.get("over_cap")]
    counts = {s.name.lower(): sum(t.state == s for t in trials) for s in TrialState}
    lines = [f"study {study.study_name}: {len(trials)} trials (" +
             ", ".join(f"{n} {k}" for k, n in counts.items() if n) + ")"]
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    if done:
        b = min(done, key=lambda t: t.value)
        lines.append(f"best: trial {b.number}, validation loss {b.value:.5g}, run {b.user_attrs.get('run')}")
        for k, v in b.user_attrs.get("options", {}).items():
            lines.append(f"  {k} = {v!r}")
    return "\n".join(lines)


def promote(study, name: str, model: str, out: Path) -> Path:
    """Write the best trial's options as a named recipe file (``cmlib train --recipe FILE``)."""
    from optuna.trial import TrialState

    done = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    if not done:
        raise CmlibError(f"study {study.study_name} has no complete trial yet; run more trials before --promote")
    b = min(done, key=lambda t: t.value)
    opts = b.user_attrs.get("options", {})
    lines = [f"# recipe '{name}': the best trial ({b.number}) of Optuna study '{study.study_name}'",
             f"# validation loss {b.value:.6g}; run {b.user_attrs.get('run')}",
             f"# use: cmlib train --model {model} --recipe {out} --data ... --epochs ...",
             f'name = "{name}"', f'model = "{model}"', "", "[options]"]
    lines += [f"{k} = {_toml_value(v)}" for k, v in opts.items()]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, out)
    return out


def _toml_value(v: Any) -> str:
    import json

    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float, str)):
        return json.dumps(v) if not isinstance(v, float) else repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise InputError(f"cannot write {v!r} to a recipe file")


def read_recipe_file(path: str | os.PathLike, model: str) -> dict[str, Any]:
    """The options of a recipe file written by :func:`promote` (validated against ``model``)."""
    from .config import overridable

    p, doc = read_toml(path, missing="recipe file '{path}' does not exist; write one with `cmlib tune ... "
                                     "--promote NAME`",
                       invalid="{path} is not a valid recipe file ({error})")
    if doc.get("model") != model:
        raise InputError(f"{p} is a recipe for model '{doc.get('model')}', not '{model}'; pass --model "
                         f"{doc.get('model')} or another recipe file")
    opts = doc.get("options", {})
    bad = sorted(set(opts) - set(overridable()))
    if bad:
        raise InputError(f"{p}: unknown training option(s) {', '.join(bad)}")
    return dict(opts)


# ---------------------------------------------------------------- the study as a small JSON report

#: The run artifacts a stored trial keeps (the same small files as the book's stored runs; never weights).
STORED_ARTIFACTS = ("config.json", "env.json", "split.json", "history.csv", "predictions.csv", "metrics.json",
                    "status.json")


def study_report(study, *, settings: Mapping[str, Any] | None = None) -> dict:
    """Everything a page needs to show a study, as plain JSON: every trial, the best one, the importances.

    Trials capped by the global trial limit (``over_cap``) are left out.  Parameter importances
    (:func:`optuna.importance.get_param_importances` with PED-ANOVA, which needs no scikit-learn, unlike
    Optuna's default fANOVA) need two complete trials; with
    fewer, ``importances`` is empty and ``importances_note`` says why.
    """
    import optuna
    from optuna.trial import TrialState

    trials = [t for t in study.get_trials(deepcopy=False) if not t.user_attrs.get("over_cap")]
    rows = []
    for t in trials:
        steps = sorted(t.intermediate_values)
        rows.append({"number": t.number, "state": t.state.name.lower(), "value": t.value,
                     "params": dict(t.params), "options": t.user_attrs.get("options", {}),
                     "run": t.user_attrs.get("run"), "epochs_reported": len(steps),
                     "last_val_loss": t.intermediate_values[steps[-1]] if steps else None,
                     "error": t.user_attrs.get("error"),
                     "seconds": (t.datetime_complete - t.datetime_start).total_seconds()
                     if t.datetime_complete and t.datetime_start else None})
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    best = min(done, key=lambda t: t.value) if done else None
    importances, note = {}, ""
    if len(done) >= 2:
        try:
            with warnings.catch_warnings():          # PED-ANOVA is marked experimental
                warnings.simplefilter("ignore")
                evaluator = optuna.importance.PedAnovaImportanceEvaluator()
            importances = {k: float(v) for k, v in
                           optuna.importance.get_param_importances(study, evaluator=evaluator).items()}
        except (RuntimeError, ValueError, ZeroDivisionError) as exc:      # e.g. every complete trial drew the same values
            note = f"not computable: {exc}"
    else:
        note = f"needs at least 2 complete trials (the study has {len(done)})"
    return {"study": study.study_name, "direction": "minimize", "objective": "best validation loss of the run",
            "settings": dict(settings or {}), "counts": {s.name.lower(): sum(t.state == s for t in trials)
                                                         for s in TrialState},
            "trials": rows,
            "best": None if best is None else {"number": best.number, "value": best.value, "params": dict(best.params),
                                               "options": best.user_attrs.get("options", {}),
                                               "run": best.user_attrs.get("run")},
            "importances": importances, "importances_method": "PED-ANOVA (optuna.importance)",
            "importances_note": note}


def store_trial_run(runs_dir: str | os.PathLike, identity: str, stored_dir: str | os.PathLike) -> Path:
    """Copy a finished trial's small artifacts (no weights) into ``stored_dir`` (the book's ``results/runs``).

    The run keeps its identity (``<model>/<group>/seed-NN``), so the book finds it like any stored run.
    An existing complete copy is replaced atomically (a temporary folder, then a rename).
    """
    import shutil

    src = Path(runs_dir) / identity
    if not (src / "status.json").is_file():
        raise CmlibError(f"trial run {src} has no status.json: it did not finish; resume the study first")
    dst = Path(stored_dir) / identity
    tmp = dst.with_name(dst.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in STORED_ARTIFACTS:
        if (src / name).is_file():
            shutil.copy2(src / name, tmp / name)
    if dst.exists():
        old = dst.with_name(dst.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(dst, old)
        os.replace(tmp, dst)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, dst)
    return dst


# ---------------------------------------------------------------- reading a report (the tuning page)

def read_report(path: str | os.PathLike) -> dict | None:
    """A study report written by ``benchmarks/tune_study.py`` (:func:`study_report`), or None if there is none."""
    import json

    p = Path(path)
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text())
    except ValueError as exc:
        raise InputError(f"{p} is not a study report ({exc}); rewrite it with "
                         "`python benchmarks/tune_study.py --export-only`") from None


def history(report: Mapping[str, Any]) -> list[dict]:
    """Trials in order with their state, value and the best value so far (complete trials only count)."""
    best, rows = None, []
    for t in sorted(report["trials"], key=lambda t: t["number"]):
        if t["state"] == "complete" and t["value"] is not None:
            best = t["value"] if best is None else min(best, t["value"])
        rows.append({"number": t["number"], "state": t["state"], "value": t["value"], "best_so_far": best,
                     "epochs": t["epochs_reported"]})
    return rows


COMPARABLE_KEYS = ("data_sha256", "split", "split_seed")   # what two runs must share for a paired test comparison


def comparable(tuned, candidates) -> tuple[list, str]:
    """The ``candidates`` trained on the same data and split as ``tuned``, and why the others are not.

    The second element is empty when every candidate matches; otherwise it names the first
    difference found (e.g. the data file's hash), so a page can say why it shows no comparison.
    """
    same, why = [], ""
    for r in candidates:
        diff = [k for k in COMPARABLE_KEYS if r.config.get(k) != tuned.config.get(k)]
        if not diff:
            same.append(r)
        elif not why:
            k = diff[0]
            a, b = tuned.config.get(k), r.config.get(k)
            short = (lambda v: str(v)[:12]) if k == "data_sha256" else repr
            why = f"{k} {short(a)} (tuned, {tuned.config.get('data')}) vs {short(b)} ({r.config.get('data')})"
    return same, why


def test_comparison(tuned, reference, *, measure: str = "std", n_boot: int = 2000):
    """Paired comparison of two runs on their test set (:func:`cmlib.compare.paired_difference`, tuned - reference).

    Both runs must have been trained on the same data and split (the test clusters are then the
    same, and neither run saw them); anything else is an error naming the difference.
    """
    from .compare import paired_difference

    for key in COMPARABLE_KEYS:
        a, b = tuned.config.get(key), reference.config.get(key)
        if a != b:
            raise InputError(f"the runs differ in {key} ({a!r} vs {b!r}): a test comparison needs the same data and "
                             "split")
    if "test" not in tuned.predictions or "test" not in reference.predictions:
        raise InputError("a run has no test predictions (train it with --split train-val-test)")
    return paired_difference(tuned.predictions["test"], reference.predictions["test"], measure=measure,
                             n_boot=n_boot)
