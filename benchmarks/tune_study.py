"""The small Optuna study of the book's tuning page: the basic CNN on the mock catalogue.

    nice -n 10 .venv/bin/python benchmarks/tune_study.py            # run (or resume) the study, then export
    .venv/bin/python benchmarks/tune_study.py --export-only         # only rewrite results/tune/basic.json

The study searches ``examples/space_basic.toml`` (TPE sampler, median pruner on the per-epoch
validation loss) on the **train-val-test** split: every trial is scored on the validation set,
so the test set is never seen by the search; the tuning page then compares the best trial with
the thesis recipe on that test set (the book's ``basic_tvt`` experiment: ``cmlib train --model basic
--split train-val-test --epochs 300 --seeds 0``).

Resumable: the study lives in a journal file (``RUNS/tune/STUDY.journal``) and every trial is a
normal run directory; a trial left *running* by a killed process is marked failed (its run directory
resumes if the sampler draws it again) and does not count against the trial budget.  After the trials
(or with ``--export-only``) the study is written to ``results/tune/basic.json`` (every trial's
parameters, value, state and run; the best trial; the parameter importances) and the best trial's run
is copied (small artifacts, no weights) into ``results/runs`` where the book finds it.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="data/efeds_mock.h5")
    ap.add_argument("--runs-dir", default="runs", help="where the trials' run directories go (default runs/)")
    ap.add_argument("--space", default="examples/space_basic.toml")
    ap.add_argument("--study", default="basic-tvt-2")   # basic-tvt: the zero output start only
    ap.add_argument("--trials", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="results/tune/basic.json")
    ap.add_argument("--stored-runs", default="results/runs", help="where the best trial's run is copied")
    ap.add_argument("--export-only", action="store_true", help="do not run trials; only write the report")
    args = ap.parse_args(argv)

    import optuna
    from optuna.trial import TrialState

    from cmlib import tune
    from cmlib._io import atomic_write_text
    from cmlib.train import is_locked

    if not Path(args.data).is_file():
        sys.exit(f"error: {args.data} does not exist; make it with `cmlib simulate --n 7946 --out {args.data}` "
                 "(the book's data file)")
    space, fixed = tune.load_space(args.space, "basic")
    fixed = {**fixed, "split": "train-val-test"}       # the search never sees the test set
    journal = Path(args.runs_dir) / "tune" / f"{args.study}.journal"
    storage = tune.storage_for(str(journal), journal)
    study = tune.open_study(args.study, storage, pruner="median", epochs=args.epochs)
    # a trial still 'running' whose run is not being trained was left by a killed process
    stale = 0
    for t in study.get_trials(deepcopy=False):
        run = t.user_attrs.get("run")
        if t.state == TrialState.RUNNING and not (run and is_locked(Path(args.runs_dir) / run)):
            study._storage.set_trial_user_attr(t._trial_id, "error", "left running by a killed process")
            study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
            stale += 1
    budget = args.trials + sum(1 for t in study.get_trials(deepcopy=False)
                               if t.state == TrialState.FAIL and not t.user_attrs.get("over_cap")
                               and t.user_attrs.get("error") == "left running by a killed process")
    if stale:
        print(f"marked {stale} stale trial(s) failed; budget {budget} trials in the journal", flush=True)
    if not args.export_only:
        tune.work(study_name=args.study, storage=str(journal), default_storage=str(journal), model="basic",
                  data=args.data, epochs=args.epochs, seed=args.seed, space=space, fixed=fixed,
                  runs_dir=args.runs_dir, trials=budget, pruner="median", verbose=False)
    study = tune.open_study(args.study, storage, pruner="median", epochs=args.epochs)
    settings = {"model": "basic", "space": args.space, "space_params": space, "fixed": fixed,
                "epochs": args.epochs, "trials": args.trials, "seed": args.seed, "pruner": "median",
                "sampler": "TPE (multivariate)", "data": args.data, "runs_dir": args.runs_dir,
                "optuna": optuna.__version__,
                "command": "nice -n 10 .venv/bin/python benchmarks/tune_study.py"}
    report = tune.study_report(study, settings=settings)
    if report["best"]:
        tune.store_trial_run(args.runs_dir, report["best"]["run"], args.stored_runs)
        report["best"]["stored_in"] = args.stored_runs
    atomic_write_text(args.out, json.dumps(report, indent=1, default=str) + "\n")
    print(tune.summary(study))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
