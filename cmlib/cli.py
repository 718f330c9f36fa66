"""The ``cmlib`` command line: one entry point for every step of the pipeline.

Each sub-command is a thin wrapper over the Python API of the module named
after what it does; heavy modules (Keras, TensorFlow) are imported only by
the sub-commands that need them, so ``cmlib info`` starts in a second.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, Sequence

from . import __version__
from .errors import CmlibError

EPILOG = """\
data flow:  simulate / import-lmu -> HDF5 -> train -> run artifacts -> book

examples:
  cmlib simulate --n 7946 --seed 0 --out data/efeds_mock.h5
  cmlib info data/efeds_mock.h5
  cmlib models
  cmlib train --model basic --data data/efeds_mock.h5 --epochs 200 --seeds 0-2
  cmlib book --profile laptop
  cmlib hand-in --student ada
"""


def _parse_seeds(text: str) -> list[int]:
    """'0-9' -> [0..9]; '0,3,5' -> [0,3,5]; '4' -> [4] (bounded: see cmlib.config.parse_seeds)."""
    from .config import parse_seeds

    if not text.strip() or text.strip().startswith("-"):
        raise argparse.ArgumentTypeError(f"invalid seed list '{text}': use 4, 0-9 or 0,3,5")
    try:
        return parse_seeds(text)
    except CmlibError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _parse_set(items: Sequence[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        if "=" not in item:
            raise CmlibError(f"--set expects KEY=VALUE, got '{item}' (e.g. --set psf=false)")
        key, value = item.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def _parse_shape(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        shape = tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid shape '{text}': use H,W,C such as 71,71,3") from None
    if len(shape) != 3 or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"invalid shape '{text}': use three positive integers H,W,C")
    return shape


def _positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"invalid count '{text}': use a whole number of at least 1, e.g. 1")
    return n


def _arg_type(conv):
    """An argparse type from a configuration converter: its InputError becomes a usage error."""
    def parse(text: str):
        try:
            return conv(text)
        except (CmlibError, ValueError) as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    parse.__name__ = getattr(conv, "__name__", "value")
    return parse


# --------------------------------------------------------------------------- commands

def cmd_simulate(args: argparse.Namespace) -> int:
    from . import simulate

    if args.list_params:
        print(simulate.format_parameter_table(args.physics))
        return 0
    if args.out is None:
        raise CmlibError("--out is required (e.g. --out data/efeds_mock.h5)")
    params = simulate.parse_parameters(_parse_set(args.set), physics=args.physics)
    try:
        path = simulate.simulate_to_file(
            args.out, n=args.n, seed=args.seed, params=params, overwrite=args.overwrite,
            chunk_size=args.chunk_size, progress=not args.quiet,
        )
    except simulate.Terminated:
        print("cmlib simulate: terminated (SIGTERM); the partial file was removed.", file=sys.stderr)
        return 143
    except CmlibError as exc:
        if getattr(exc, "hdf5_unclean", False):      # a full disk: HDF5's exit handler would crash
            import os

            print(f"cmlib simulate: error: {exc}", file=sys.stderr)
            sys.stderr.flush()
            os._exit(exc.exit_code)
        raise
    if not args.quiet:
        print(f"wrote {path}")
    return 0

def cmd_info(args: argparse.Namespace) -> int:
    from . import data

    info = data.describe(args.file)
    if args.json:
        from ._io import to_json

        print(to_json(info), end="")
    else:
        print(data.format_description(info))
    return 0


def cmd_import_lmu(args: argparse.Namespace) -> int:
    from . import lmu

    path = lmu.import_lmu(args.images, args.catalog, args.out, trust_pickle=args.trust_pickle,
                           overwrite=args.overwrite, progress=not args.quiet)
    if not args.quiet:
        print(f"wrote {path}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from . import models

    from .book.thesis import TABLE3

    print(models.format_model_table(models.model_table(reference_params_m={k: v["params_m"] for k, v in TABLE3.items()},
                                                       input_shape=args.input_shape,
                                                       count_params=args.params)))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    if args.threads is not None:      # before the backend loads: TensorFlow reads its thread counts once
        from ._env import limit_threads

        limit_threads(args.threads)
    from . import config, train

    overrides = {o["name"]: getattr(args, o["name"]) for o in config.cli_options()
                 if getattr(args, o["name"], None) is not None}
    if args.recipe:      # a named recipe file (`cmlib tune --promote`); explicit options still win
        from .tune import read_recipe_file

        overrides = {**read_recipe_file(args.recipe, args.model), **overrides}
    runs = train.train_seeds(args.model, args.data, epochs=args.epochs, seeds=args.seeds,
                             runs_dir=args.runs_dir, force=args.force, verbose=not args.quiet,
                             keep_models=not args.no_model_files, checkpoint_interval_s=args.checkpoint_interval,
                             **overrides)
    print(train.format_runs_summary(runs))
    return 0 if all(r.status in ("complete", "diverged") for r in runs) else 1


def cmd_upgrade_runs(args: argparse.Namespace) -> int:
    from . import artifacts

    moves = artifacts.upgrade_runs(args.dir, dry_run=args.dry_run)
    for old, new in moves:
        print(f"{'would move' if args.dry_run else 'upgraded'} {old} -> {new}")
    if not moves:
        print(f"every run under {args.dir} is current")
    return 0


def cmd_book(args: argparse.Namespace) -> int:
    from .book import build

    return build.build_book(profile=args.profile, root=args.root, source=args.source, only=args.only,
                            skip_html=args.no_html, force=args.force, teacher=args.teacher,
                            replace_data=args.replace_data, runs=args.runs,
                            sweep=_sweep_options(args) if args.executor else None)


def cmd_profiles(args: argparse.Namespace) -> int:
    from .book import profiles

    print(profiles.format_profiles())
    return 0


SWEEP_EPILOG = """\
grid file (TOML; relative paths are relative to the working directory):
  data = "data/efeds_mock.h5"
  epochs = 200
  seeds = "0-9"
  [overrides]                      # training options for every entry (cmlib train --help)
  early_stopping = 50
  [[run]]
  models = ["basic", "resnet50v2"]
  [[run]]
  model = "basic"
  vary = { lr = [1e-3, 3e-4] }     # one configuration per value

examples:
  cmlib sweep examples/basic_seeds.toml                        # local pool (one job per core or GPU)
  cmlib sweep examples/thesis_grid.toml --executor slurm --partition gpu --gpus-per-job 1 \\
      --time 2880 --array-parallelism 20 --sbatch account=pn12ab --no-wait
  cmlib sweep --profile thesis --executor slurm --partition gpu --gpus-per-job 1 --time 2880 --no-wait
                                                               # the thesis profile's runs (what the book reads)
  cmlib sweep examples/thesis_grid.toml --status               # done/running/interrupted/failed per model
  cmlib sweep examples/thesis_grid.toml --executor slurm       # again: finished runs are reused,
                                                               # interrupted ones resume
"""


def cmd_sweep(args: argparse.Namespace) -> int:
    from . import sweep

    if (args.grid is None) == (args.profile is None):
        from .errors import InputError

        raise InputError("give a grid file or --profile NAME (the book profile's training plans), not both")
    if args.profile:
        from .book import build
        from .book.profiles import get_profile

        if args.data is not None:
            from .errors import InputError

            raise InputError("--data does not go with --profile: the profile names its data file")
        root = Path(".").resolve()
        grid = build.sweep_grid(get_profile(args.profile), root)
        if args.runs_dir is not None:
            grid.runs_dir = Path(args.runs_dir)
    else:
        grid = sweep.load_grid(args.grid, runs_dir=args.runs_dir, data=args.data)
    if args.status:
        print(sweep.format_status(grid, sweep.sweep_status(grid)))
        return 0
    outcomes = sweep.run_sweep(grid, keep_models=args.keep_model_files, checkpoint_interval_s=args.checkpoint_interval,
                               **_sweep_options(args))
    bad = [o for o in outcomes if o.state not in ("done", "diverged", "submitted", "running")]
    counts = {s: sum(o.state == s for o in outcomes) for s in dict.fromkeys(o.state for o in outcomes)}
    print("sweep: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    for o in bad:
        if o.state == "failed":
            print(f"failed: {o.identity}: {o.message}\n  log: {o.log}", file=sys.stderr)
    return 1 if bad else 0


TUNE_EPILOG = """\
space file (TOML): one table per training option, [fixed] for options every trial uses
  [lr]
  low = 1e-4
  high = 3e-3
  log = true                        # log-uniform
  [batch_size]
  choices = [16, 32, 64]
  [dropout]
  low = 0.0
  high = 0.5
  [fixed]
  early_stopping = 20

examples:
  cmlib tune --model basic --data data/efeds_mock.h5 --epochs 200 --trials 40 --space examples/space_basic.toml
  cmlib tune ... --workers 2                                  # two local worker processes, one study
  cmlib tune ... --executor slurm --workers 8 --partition gpu --gpus-per-job 1 --time 720
  cmlib tune ... --storage postgresql://me@dbhost/optuna      # many nodes: a database server
  cmlib tune --model basic --data ... --epochs 200 --space examples/space_basic.toml --promote tuned
  cmlib train --model basic --recipe recipes/tuned.toml --data data/efeds_mock.h5 --epochs 200 --seeds 0-9
"""


def cmd_tune(args: argparse.Namespace) -> int:
    from pathlib import Path

    from . import sweep, tune
    from .config import data_identity

    space, fixed = tune.load_space(args.space, args.model)
    data_identity(args.data)
    study_name = args.study or f"{args.model}-{Path(args.space).stem}-e{args.epochs}"
    default_storage = str(Path(args.runs_dir) / "tune" / f"{study_name}.journal")
    tune.storage_for(args.storage, Path(default_storage))   # a bad URL fails here, before any job
    if args.promote:
        study = tune.open_study(study_name, tune.storage_for(args.storage, Path(default_storage)), epochs=args.epochs)
        out = Path(args.out or Path("recipes") / f"{args.promote}.toml")
        print(f"wrote {tune.promote(study, args.promote, args.model, out)}")
        return 0
    if args.trials is None:
        raise CmlibError("--trials N is required (the study's global trial cap), or --promote NAME")
    common = dict(study_name=study_name, storage=args.storage, default_storage=default_storage, model=args.model,
                  data=str(Path(args.data).resolve()), epochs=args.epochs, seed=args.seed, space=space, fixed=fixed,
                  runs_dir=str(Path(args.runs_dir).resolve()), trials=args.trials, pruner=args.pruner)
    if args.workers == 1 and args.executor == "local":
        tune.work(**common, verbose=not args.quiet)
    else:
        submitit = sweep.submitit_module()

        folder = Path(args.runs_dir) / "tune" / f"{study_name}.jobs" / "%j"
        if args.executor == "slurm":
            opts = sweep.SlurmOptions(partition=args.partition, gpus_per_job=args.gpus_per_job,
                                      cpus_per_job=args.cpus_per_job, time_min=args.time,
                                      array_parallelism=args.workers, sbatch=sweep.parse_sbatch(args.sbatch))
            ex = sweep._slurm_executor(folder, opts)
            jobs = ex.map_array(tune.TuneJob(**common, threads=args.cpus_per_job), range(args.workers))
        else:
            n, threads, _ = sweep.local_workers(args.workers)
            ex = submitit.LocalExecutor(folder=folder)
            ex.update_parameters(timeout_min=60 * 24 * 30)
            jobs = [ex.submit(tune.TuneJob(**common, threads=threads)) for _ in range(args.workers)]
        print(f"{len(jobs)} workers ({args.executor}); logs in {folder.parent}")
        failed = 0
        for j in jobs:
            try:
                j.result()
            except Exception as exc:
                failed += 1
                print(f"worker {j.job_id} failed: {str(exc).strip().splitlines()[-1]}\n  log: {j.paths.stderr}",
                      file=sys.stderr)
        if failed:
            return 1
    study = tune.open_study(study_name, tune.storage_for(args.storage, Path(default_storage)), epochs=args.epochs)
    print(tune.summary(study))
    return 0


def cmd_stored_runs(args: argparse.Namespace) -> int:
    from .book import build

    return build.make_stored_runs(models=args.models, root=args.root, dry_run=args.dry_run,
                                  sweep=_sweep_options(args) if args.executor else None)


def cmd_hand_in(args: argparse.Namespace) -> int:
    from .book import handin

    path = handin.hand_in(args.student, root=args.root, out=args.out, runs_dir=args.runs_dir, model=args.model)
    n = len(handin.collect(path))
    print(f"wrote {path} ({n} run{'s' if n != 1 else ''}); hand this file in")
    return 0


def _executor_options(s: argparse.ArgumentParser, executor_default: str | None = "local") -> None:
    """The options of a sweep's executor (``cmlib sweep``, ``cmlib book``, ``cmlib stored-runs``)."""
    s.add_argument("--executor", choices=("local", "slurm"), default=executor_default,
                   help="where jobs run (default local)" if executor_default else
                   "train through `cmlib sweep` jobs: a local pool or Slurm (default: in this process)")
    s.add_argument("--workers", type=int, default=None,
                   help="local: jobs at once (default: one per GPU, else one per core)")
    s.add_argument("--partition", default=None, help="slurm: partition")
    s.add_argument("--gpus-per-job", type=int, default=0, help="slurm: GPUs per job (default 0)")
    s.add_argument("--cpus-per-job", type=int, default=2, help="slurm: CPU cores per job (default 2)")
    s.add_argument("--mem-gb", type=float, default=None, help="slurm: memory per job in GB (default: the partition's)")
    s.add_argument("--time", type=int, default=240, metavar="MINUTES",
                   help="slurm: time limit per job in minutes (default 240); a job that reaches it is requeued and "
                        "resumes from its checkpoint")
    s.add_argument("--array-parallelism", type=int, default=64, help="slurm: array tasks running at once (default 64)")
    s.add_argument("--sbatch", action="append", metavar="KEY=VALUE",
                   help="slurm: extra sbatch option without dashes, repeatable (e.g. --sbatch account=pn12ab "
                        "--sbatch qos=normal)")
    s.add_argument("--setup", action="append", metavar="LINE",
                   help="slurm: shell line run before each job, repeatable (e.g. --setup 'module load cuda')")
    s.add_argument("--no-wait", action="store_true", help="slurm: submit and return (check with --status)")


def _sweep_options(args: argparse.Namespace) -> dict:
    """Keyword arguments of :func:`cmlib.sweep.run_sweep` from the executor options."""
    from . import sweep

    if args.no_wait and args.executor != "slurm":
        from .errors import InputError

        raise InputError("--no-wait needs --executor slurm (a local pool runs in this process)")
    slurm = sweep.SlurmOptions(partition=args.partition, gpus_per_job=args.gpus_per_job,
                               cpus_per_job=args.cpus_per_job, mem_gb=args.mem_gb, time_min=args.time,
                               array_parallelism=args.array_parallelism, sbatch=sweep.parse_sbatch(args.sbatch),
                               setup=args.setup or [])
    return {"executor": args.executor, "workers": args.workers, "slurm": slurm, "wait": not args.no_wait}


# --------------------------------------------------------------------------- parser

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cmlib",
        description="Galaxy cluster masses from mock eROSITA X-ray images with CNNs "
                    "(companion to Heim 2023, LMU Munich).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"cmlib {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    s = sub.add_parser("simulate", help="generate a mock eFEDS cluster catalogue (HDF5)",
                       description="Generate a physically motivated mock eFEDS catalogue: "
                                   "images (N, 50, 50, 10), log10 M500c, z and true properties.")
    s.add_argument("--n", type=int, default=7946, help="number of clusters (default 7946, as the thesis)")
    s.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    s.add_argument("--out", help="output HDF5 file, e.g. data/efeds_mock.h5")
    s.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    s.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a generator parameter (repeatable); see --list-params")
    s.add_argument("--chunk-size", type=int, default=1024, help="clusters generated per chunk (memory bound)")
    s.add_argument("--physics", choices=("v2", "v1"), default="v2",
                   help="physics version: v2 (default) or v1, the first mock (same seed -> the same data as before)")
    s.add_argument("--list-params", action="store_true", help="list the generator parameters and exit")
    s.add_argument("--quiet", action="store_true", help="no progress output")
    s.set_defaults(func=cmd_simulate)

    s = sub.add_parser("info", help="summarise a cmlib data file (counts, ranges, schema, provenance)")
    s.add_argument("file", help="HDF5 data file")
    s.add_argument("--json", action="store_true", help="print machine-readable JSON")
    s.set_defaults(func=cmd_info)

    s = sub.add_parser("import-lmu", help="convert the LMU eFEDS lab-course files into a cmlib data file",
                       description="Convert the LMU lab-course pickle (gsm_3dImgs, cluster) and its "
                                   "FITS or feather catalogue into the cmlib HDF5 schema.")
    s.add_argument("images", help="the images pickle (eFEDS_...-3dImgs-...pickle)")
    s.add_argument("catalog", help="the catalogue (.fits or feather .f/.feather)")
    s.add_argument("--out", required=True, help="output HDF5 file, e.g. data/efeds_lmu.h5")
    s.add_argument("--trust-pickle", action="store_true",
                   help="allow unpickling (it can execute code: only for files from a trusted source)")
    s.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    s.add_argument("--quiet", action="store_true", help="no progress output")
    s.set_defaults(func=cmd_import_lmu)

    s = sub.add_parser("models", help="list the available model architectures")
    s.add_argument("--input-shape", type=_parse_shape, default=None,
                   help="H,W,C to report for (default: each model's thesis configuration)")
    s.add_argument("--params", action="store_true",
                   help="build each model and count its parameters (slow for the deep models)")
    s.set_defaults(func=cmd_models)

    s = sub.add_parser("train", help="train a model over one or more seeds; writes run directories",
                       description="Train a registered model. Defaults are the thesis's (Table 4) or, "
                                   "for the Krippendorf baseline, the paper's. A completed run with the "
                                   "same configuration is reused; an interrupted one resumes.")
    s.add_argument("--model", required=True, help="model name (see `cmlib models`)")
    s.add_argument("--data", required=True, help="HDF5 data file")
    s.add_argument("--epochs", type=int, required=True, help="maximum number of epochs")
    s.add_argument("--seeds", type=_parse_seeds, default=[0], help="seeds: 0-9, 0,3,5 or 4 (default 0)")
    from .config import cli_options

    for o in cli_options():   # every training option, generated from the typed configuration
        s.add_argument(o["flag"], dest=o["name"], type=_arg_type(o["type"]), choices=o["choices"],
                       help=o["help"] + " (default: the model's recipe)")
    s.add_argument("--recipe", metavar="FILE", default=None,
                   help="options from a recipe file (written by `cmlib tune --promote`); explicit options win")
    s.add_argument("--runs-dir", default="runs", help="where run directories go (default runs/)")
    s.add_argument("--force", action="store_true", help="retrain even if a completed run exists")
    s.add_argument("--no-model-files", action="store_true",
                   help="do not keep best.keras/last.keras (predictions, metrics and history are still written; "
                        "a deep model file is up to about 1 GB)")
    s.add_argument("--checkpoint-interval", type=float, metavar="SECONDS", default=None,
                   help="seconds between checkpoints (default: adaptive, so that checkpoints cost at most ~5%% "
                        "of the run; 0 = every epoch)")
    s.add_argument("--threads", type=_positive_int, metavar="N", default=None,
                   help="compute with N CPU threads (default: all cores); with two jobs on two cores, "
                        "--threads 1 each trains about 16%% more images per hour in total "
                        "(benchmarks/bench_parallel.py); env.json records it, the cost table counts core-hours")
    s.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("upgrade-runs", help="upgrade run directories written by an older cmlib, in place",
                       description="Rewrite older run records (config.json) to the current format and move each "
                                   "run to the directory its identity names; record its artifacts' hashes.")
    s.add_argument("dir", help="a runs folder (e.g. runs/ or results/runs/)")
    s.add_argument("--dry-run", action="store_true", help="only list what would change")
    s.set_defaults(func=cmd_upgrade_runs)

    s = sub.add_parser("book", help="build the book: data, runs, executed notebooks, HTML",
                       description="Set up the data, train what the profile trains, execute every "
                                   "notebook with papermill and build the Jupyter Book.")
    s.add_argument("--profile", default="laptop",
                   help="smoke, classroom, laptop or thesis (see `cmlib profiles`)")
    s.add_argument("--root", default=".", help="book root: a clone of the repository (default: the current folder)")
    s.add_argument("--source", default=None,
                   help="copy the book sources from this clone into --root first (build in a scratch folder)")
    s.add_argument("--teacher", action="store_true",
                   help="the teacher's build: exercise solutions shown, into _build/teacher/_build/html")
    s.add_argument("--only", nargs="*", help="execute only these notebooks (names without .ipynb)")
    s.add_argument("--no-html", action="store_true", help="execute the notebooks but skip the HTML build")
    s.add_argument("--force", action="store_true", help="re-execute notebooks even if up to date")
    s.add_argument("--replace-data", action="store_true",
                   help="let the build overwrite a data file at the profile's path that cmlib simulate did not make")
    s.add_argument("--runs", default=None, metavar="DIR",
                   help="read (and train into) this runs folder instead of runs/ and results/runs, e.g. the "
                        "shared folder a Slurm sweep filled")
    _executor_options(s, None)
    s.set_defaults(func=cmd_book)

    s = sub.add_parser("sweep", help="run a grid of (model, seeds, options) as jobs: local pool or Slurm",
                       description="Train every run of a grid file as an independent job (submitit): a local "
                                   "pool (one job per core, or per GPU) or a Slurm job array. Jobs share one "
                                   "runs folder; finished runs are reused, interrupted, preempted or timed-out "
                                   "ones resume from their checkpoint when the grid is run again.",
                       epilog=SWEEP_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("grid", nargs="?", help="grid file (TOML), e.g. examples/basic_seeds.toml")
    s.add_argument("--profile", default=None,
                   help="instead of a grid file: the training plans of a book profile (e.g. thesis), the runs "
                        "`cmlib book --profile` reads")
    s.add_argument("--status", action="store_true",
                   help="show done/diverged/running/interrupted/failed/pending per model and exit")
    s.add_argument("--runs-dir", default=None, help="runs folder (default: the grid's runs_dir, else runs/)")
    s.add_argument("--data", default=None, help="data file (default: the grid's data)")
    _executor_options(s)
    s.add_argument("--keep-model-files", action="store_true",
                   help="keep best.keras/last.keras in each run (default: predictions, metrics and history only)")
    s.add_argument("--checkpoint-interval", type=float, metavar="SECONDS", default=None,
                   help="seconds between checkpoints (default: adaptive, as in cmlib train)")
    s.set_defaults(func=cmd_sweep)

    s = sub.add_parser("tune", help="hyperparameter search with Optuna (TPE, pruning) over a model's recipe",
                       description="An Optuna study over the training options of a space file: TPE sampler, a "
                                   "pruner fed by the per-epoch validation loss, every trial a normal run directory. "
                                   "Storage: a journal file (default, shared filesystems) or an SQLAlchemy URL; "
                                   "several workers share the study with a global trial cap.",
                       epilog=TUNE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("--model", required=True, help="model name (see `cmlib models`)")
    s.add_argument("--space", required=True, help="space file (TOML), e.g. examples/space_basic.toml")
    s.add_argument("--data", required=True, help="HDF5 data file")
    s.add_argument("--epochs", type=int, required=True, help="maximum epochs of each trial")
    s.add_argument("--trials", type=int, default=None, help="total trials of the study over all workers")
    s.add_argument("--seed", type=int, default=0, help="training seed of every trial (default 0)")
    s.add_argument("--study", default=None, help="study name (default MODEL-SPACE-eEPOCHS)")
    s.add_argument("--storage", default=None,
                   help="journal file or SQLAlchemy URL (default RUNS/tune/STUDY.journal)")
    s.add_argument("--pruner", choices=("median", "asha", "none"), default="median", help="pruner (default median)")
    s.add_argument("--runs-dir", default="runs", help="where trial runs go (default runs/)")
    s.add_argument("--workers", type=int, default=1, help="worker processes or Slurm tasks (default 1)")
    s.add_argument("--executor", choices=("local", "slurm"), default="local", help="where workers run")
    s.add_argument("--partition", default=None, help="slurm: partition")
    s.add_argument("--gpus-per-job", type=int, default=0, help="slurm: GPUs per worker")
    s.add_argument("--cpus-per-job", type=int, default=2, help="slurm: CPU cores per worker")
    s.add_argument("--time", type=int, default=240, metavar="MINUTES", help="slurm: time limit per worker")
    s.add_argument("--sbatch", action="append", metavar="KEY=VALUE", help="slurm: extra sbatch option, repeatable")
    s.add_argument("--promote", metavar="NAME", default=None,
                   help="write the best trial's options as recipe NAME (recipes/NAME.toml, or --out) and exit")
    s.add_argument("--out", default=None, help="recipe file for --promote")
    s.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    s.set_defaults(func=cmd_tune)

    s = sub.add_parser("profiles", help="list the compute budgets (smoke, classroom, laptop, thesis)")
    s.set_defaults(func=cmd_profiles)

    s = sub.add_parser("stored-runs", help="regenerate the committed deep-model run artifacts (results/)")
    s.add_argument("--models", nargs="*", help="only these models")
    s.add_argument("--root", default=".", help="repository root")
    s.add_argument("--dry-run", action="store_true", help="print the commands only")
    _executor_options(s, None)
    s.set_defaults(func=cmd_stored_runs)

    s = sub.add_parser("hand-in", help="summarise your finished runs into one file to hand in (JSON or CSV)",
                       description="Write one row per finished run under --runs-dir: model, options, data, "
                                   "status, epochs and test metrics, and whether it learned. The teacher's "
                                   "notebook notebooks/class_table.ipynb collects a folder of these files.")
    s.add_argument("--student", required=True, help="your name or id (letters, digits, _ . -)")
    s.add_argument("--out", default=None, help="output file, .json or .csv (default hand-in-STUDENT.json)")
    s.add_argument("--runs-dir", default="runs", help="where your runs are (default runs/)")
    s.add_argument("--model", default=None, help="only the runs of this model")
    s.add_argument("--root", default=".", help="folder that holds --runs-dir (default: the current folder)")
    s.set_defaults(func=cmd_hand_in)
    return p


def _terminate(signum, frame):  # pragma: no cover - exercised by the SIGTERM tests in subprocesses
    raise KeyboardInterrupt(f"signal {signum}")


def _plain_warnings(command: str, default: Callable) -> Callable:
    """A ``warnings.showwarning`` that prints cmlib's own warnings (:class:`cmlib.errors.CmlibWarning`) as
    ``cmlib COMMAND: warning: ...`` on stderr, without the source path and line Python adds, and hands every
    other warning to ``default``.  ``main`` installs it for one command only (``warnings.catch_warnings``)."""
    from .errors import CmlibWarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, CmlibWarning):
            print(f"cmlib {command}: warning: {message}", file=sys.stderr if file is None else file, flush=True)
        else:
            default(message, category, filename, lineno, file, line)
    return show


def main(argv: Sequence[str] | None = None) -> int:
    import signal

    # SIGTERM (what `timeout`, `kill` and Slurm send) cleans up like Ctrl-C: partial outputs are
    # removed, a training run keeps its last checkpoint and is marked interrupted
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, _terminate)
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 0
    import warnings

    with warnings.catch_warnings():       # the plain format for this command only, restored afterwards
        warnings.showwarning = _plain_warnings(args.command, warnings.showwarning)
        return _run(func, args)


def _run(func: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a command; a :class:`CmlibError` becomes its message on stderr and its exit code."""
    try:
        return int(func(args) or 0)
    except CmlibError as exc:
        print(f"cmlib {args.command}: error: {exc}", file=sys.stderr)
        if getattr(exc, "hdf5_unclean", False):
            # a write failed on a full disk inside HDF5: its exit handler would flush the half-written
            # file again and crash the interpreter (segfault); the temporary files are already removed
            import os

            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(exc.exit_code)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"cmlib {args.command}: interrupted; completed results are kept, partial ones removed.",
              file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `cmlib info FILE | head`: the reader went away, nothing is wrong
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
