"""Does bfloat16 change what a run means?  The same recipe and seeds in float32 and bfloat16, compared.

Issue 12 asks that bf16 change a run by round-off only: for the basic CNN and
ResNet50V2, bf16 and fp32 runs of the same seeds must reach the same test
std(x) within the seed-to-seed spread.  This script reads the finished runs
under ``--runs-dir`` (default ``results/runs``), pairs every recipe that was run
in both precisions (:func:`cmlib.compare.precision_agreement`), prints the table
and writes ``benchmarks/results/precision.json``.

``--train`` first trains the missing runs of the two recipes checked here
(resumable ``cmlib train`` commands; finished runs are reused):

* basic CNN, the thesis recipe (thesis split, Adam 1e-3, 300 epochs, early
  stopping 20), seeds 0-2, ``--precision float32`` and ``bfloat16``;
* ResNet50V2, the fair-protocol recipe of the stored deep runs (train/val/test,
  50x50, AdamW + warm-up cosine over 30 epochs), seeds 0-2 in both precisions
  (hours per run on 2 CPU cores: use ``--models basic`` there, or a GPU).

    python benchmarks/precision_check.py                       # report from the stored runs
    python benchmarks/precision_check.py --train --models basic
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cmlib import artifacts as A  # noqa: E402
from cmlib import compare  # noqa: E402
from cmlib._io import atomic_write_json  # noqa: E402

FAIR = ("--split train-val-test --pad none --optimizer adamw --weight-decay 0.01 --lr 1e-3 --lr-schedule "
        "warmup-cosine --warmup-epochs 3 --epochs 30 --early-stopping 10 --label-scaling standardize "
        "--output-bias prior").split()
RECIPES = {"basic": ["--model", "basic", "--epochs", "300"],
           "resnet50v2": ["--model", "resnet50v2", *FAIR]}


def train(models, data: str, runs_dir: str, seeds: str) -> None:
    for m in models:
        for prec in ("float32", "bfloat16"):
            cmd = [sys.executable, "-m", "cmlib.cli", "train", "--data", data, "--runs-dir", runs_dir,
                   "--no-model-files", *RECIPES[m], "--precision", prec, "--seeds", seeds]
            print("+", " ".join(cmd[2:]), flush=True)
            subprocess.run(cmd, check=True, cwd=ROOT)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs-dir", default=str(ROOT / "results" / "runs"))
    ap.add_argument("--models", default="basic,resnet50v2")
    ap.add_argument("--train", action="store_true", help="train the missing runs first (resumable)")
    ap.add_argument("--data", default=str(ROOT / "data" / "efeds_mock.h5"))
    ap.add_argument("--seeds", default="0-2")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "precision.json"))
    args = ap.parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = sorted(set(models) - set(RECIPES))
    if unknown:
        print(f"error: --models {','.join(unknown)}: this check knows {', '.join(RECIPES)}", file=sys.stderr)
        return 2
    if args.train:
        train(models, args.data, args.runs_dir, args.seeds)
    runs = [r for m in models for r in A.find_runs(args.runs_dir, model=m)]
    rows = compare.precision_agreement(runs)
    print(f"{'model':<12} {'recipe':<11} {'float32 std(x) [dex]':<28} {'bfloat16 std(x) [dex]':<28} "
          f"{'diff':>7} {'seed spread':>11}  agree")
    for r in rows:
        def cell(d):
            sd = "" if d["std"] != d["std"] else f" ± {d['std']:.3f}"
            return f"{d['mean']:.3f}{sd} (seeds {','.join(map(str, d['seeds']))})"
        print(f"{r['model']:<12} {r['recipe']:<11} {cell(r['float32']):<28} {cell(r['bfloat16']):<28} "
              f"{r['diff']:>+7.3f} {r['seed_spread']:>11.3f}  {r['agree']}")
        rc = r["residual_corr"]
        other = {f"{p} {k}": v for p, d in rc["other_seeds"].items() for k, v in d.items()}
        print("    residuals correlate: same seed fp32-bf16 "
              + (", ".join(f"seed {k} {v:.3f}" for k, v in rc["same_seed"].items()) or "-")
              + "; other seeds " + (", ".join(f"{k} {v:.3f}" for k, v in other.items()) or "-"))
    missing = [m for m in models if m not in {r["model"] for r in rows}]
    for m in missing:
        print(f"{m}: no recipe has finished runs in both precisions yet (run with --train --models {m})")
    result = {"benchmark": "precision", "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
              "runs_dir": os.path.relpath(args.runs_dir, ROOT) if Path(args.runs_dir).is_relative_to(ROOT)
              else Path(args.runs_dir).name,
              "rows": json.loads(json.dumps(rows, default=str)), "missing": missing}
    atomic_write_json(Path(args.out), result)
    print(f"wrote {Path(args.out).relative_to(ROOT) if Path(args.out).is_relative_to(ROOT) else args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
