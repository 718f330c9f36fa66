"""The ``cmlib`` command line: one entry point for every step of the pipeline.

Each sub-command is a thin wrapper over the Python API of the module named
after what it does; heavy modules (Keras, TensorFlow) are imported only by
the sub-commands that need them, so ``cmlib info`` starts in a second.
"""
from __future__ import annotations

import argparse
import sys
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
    """'0-9' -> [0..9]; '0,3,5' -> [0,3,5]; '4' -> [4]."""
    from .profiles import parse_seed_list

    if not text.strip() or text.strip().startswith("-"):
        raise argparse.ArgumentTypeError(f"invalid seed list '{text}': use 4, 0-9 or 0,3,5")
    try:
        return parse_seed_list(text)
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


# --------------------------------------------------------------------------- commands

def cmd_simulate(args: argparse.Namespace) -> int:
    from . import simulate

    if args.list_params:
        print(simulate.format_parameter_table())
        return 0
    if args.out is None:
        raise CmlibError("--out is required (e.g. --out data/efeds_mock.h5)")
    params = simulate.parse_parameters(_parse_set(args.set))
    path = simulate.simulate_to_file(
        args.out, n=args.n, seed=args.seed, params=params, overwrite=args.overwrite,
        chunk_size=args.chunk_size, progress=not args.quiet,
    )
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
    from . import data

    path = data.import_lmu(args.images, args.catalog, args.out, trust_pickle=args.trust_pickle,
                           overwrite=args.overwrite, progress=not args.quiet)
    if not args.quiet:
        print(f"wrote {path}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from . import models

    print(models.format_model_table(models.model_table(input_shape=args.input_shape,
                                                       count_params=args.params)))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from . import train

    overrides = {k: v for k, v in dict(
        split=args.split, loss=args.loss, lr=args.lr, lr_schedule=args.lr_schedule,
        bands=args.bands, pad=args.pad, batch_size=args.batch_size, scaling=args.scaling,
        augment=args.augment, early_stopping=args.early_stopping, head=args.head,
        weights=args.weights, dropout=args.dropout, max_clusters=args.max_clusters,
        output_bias=args.output_bias,
    ).items() if v is not None}
    runs = train.train_seeds(args.model, args.data, epochs=args.epochs, seeds=args.seeds,
                             runs_dir=args.runs_dir, force=args.force, verbose=not args.quiet,
                             keep_models=not args.no_model_files, **overrides)
    print(train.format_runs_summary(runs))
    return 0 if all(r.status in ("complete", "diverged") for r in runs) else 1


def cmd_book(args: argparse.Namespace) -> int:
    from .book import build

    return build.build_book(profile=args.profile, root=args.root, source=args.source, only=args.only,
                            skip_html=args.no_html, force=args.force, teacher=args.teacher)


def cmd_profiles(args: argparse.Namespace) -> int:
    from .book import profiles

    print(profiles.format_profiles())
    return 0


def cmd_stored_runs(args: argparse.Namespace) -> int:
    from .book import build

    return build.make_stored_runs(models=args.models, root=args.root, dry_run=args.dry_run)


def cmd_hand_in(args: argparse.Namespace) -> int:
    from .book import handin

    path = handin.hand_in(args.student, root=args.root, out=args.out, runs_dir=args.runs_dir, model=args.model)
    n = len(handin.collect(path))
    print(f"wrote {path} ({n} run{'s' if n != 1 else ''}); hand this file in")
    return 0


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
    s.add_argument("--split", choices=["thesis", "train-val-test"], help="data split (default thesis)")
    s.add_argument("--loss", choices=["mse", "nll"], help="loss (default: the model's)")
    s.add_argument("--lr", type=float, help="learning rate (default: the model's, 1e-3 for the thesis)")
    s.add_argument("--lr-schedule", choices=["constant", "cosine", "plateau"], help="learning-rate schedule")
    s.add_argument("--bands", help="bands: 'thesis' (2-4), 'all', or 1-based list such as 2,3,4")
    s.add_argument("--pad", choices=["none", "thesis", "center"], help="padding 50->71 px")
    s.add_argument("--scaling", choices=["raw", "log1p", "standardize"], help="intensity scaling")
    s.add_argument("--augment", choices=["none", "flip", "flip-rot90"], help="training augmentation")
    s.add_argument("--batch-size", type=int, help="batch size (default 32)")
    s.add_argument("--early-stopping", type=int, metavar="PATIENCE",
                   help="stop after PATIENCE epochs without validation improvement (0 = off)")
    s.add_argument("--head", choices=["flatten", "gap"], help="head after the backbone")
    s.add_argument("--weights", help="'none' (from scratch) or a local ImageNet weights file")
    s.add_argument("--dropout", type=float, help="dropout before the dense head")
    s.add_argument("--output-bias", choices=["zero", "mean"],
                   help="start the output at 0 (Keras default, the thesis) or at the mean training label "
                        "(default for the deep models: short runs need it)")
    s.add_argument("--max-clusters", type=int, help="use only the first N clusters (smoke runs)")
    s.add_argument("--runs-dir", default="runs", help="where run directories go (default runs/)")
    s.add_argument("--force", action="store_true", help="retrain even if a completed run exists")
    s.add_argument("--no-model-files", action="store_true",
                   help="do not keep best.keras/last.keras (predictions, metrics and history are still written; "
                        "a deep model file is up to about 1 GB)")
    s.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    s.set_defaults(func=cmd_train)

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
    s.set_defaults(func=cmd_book)

    s = sub.add_parser("profiles", help="list the compute budgets (smoke, classroom, laptop, thesis)")
    s.set_defaults(func=cmd_profiles)

    s = sub.add_parser("stored-runs", help="regenerate the committed deep-model run artifacts (results/)")
    s.add_argument("--models", nargs="*", help="only these models")
    s.add_argument("--root", default=".", help="repository root")
    s.add_argument("--dry-run", action="store_true", help="print the commands only")
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 0
    try:
        return int(func(args) or 0)
    except CmlibError as exc:
        print(f"cmlib {args.command}: error: {exc}", file=sys.stderr)
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
