"""Calibration check and ablation of mock v2 (issue 11): the basic CNN with the thesis recipe.

Not tuning: the mock's ingredients are fixed by their sources; this script
only measures how hard the resulting data are.  It

1. simulates the v2 catalogue (7946 clusters, seed 0) and trains the thesis's
   basic CNN on it with the thesis recipe (3 bands, thesis split, early
   stopping; ``cmlib train --model basic --epochs 300 --seeds 0-2``);
2. for the ablation, simulates the catalogue with one ingredient switched off
   (back to its v1 form) and trains one seed on each;
3. computes the reference estimators (:func:`cmlib.classical.reference_estimators`)
   of every variant, and the fair classical estimator on the v2 catalogue;

and writes everything to ``results/mock/ablation.json``, the file the
data-catalogue page reads (pages never train).  Training results are cached in
the JSON, so an interrupted run continues where it stopped; ``--refs-only``
recomputes the references without training.

Usage::

    nice -n 5 python benchmarks/mock_calibration.py --work /tmp/mockcal   # hours on 2 busy cores
    python benchmarks/mock_calibration.py --refs-only
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cmlib._io import atomic_write_json  # noqa: E402

OUT = ROOT / "results" / "mock" / "ablation.json"
N, SEED, EPOCHS = 7946, 0, 300

#: Ablation variants: name -> (what is switched off, --set overrides of the v2 defaults).
VARIANTS: dict[str, tuple[str, dict[str, str]]] = {
    "v2": ("nothing: the full mock v2", {}),
    "scatter_v1": ("L_X-M scatter back to v1 (sigma_lnL 0.35 instead of 0.48)", {"sigma_lnL": "0.35"}),
    "no_extent": ("no extent test (detection only; selection favours compact sources)", {"ext_like_min": "0"}),
    "self_similar": ("self-similar structure (no beta-kT and r_c-M trends, v1 core scatter)",
                     {"structure_trends": "false", "rc_sigma_ln": "0.35"}),
    "bg_proportional": ("background proportional to the exposure (no field-to-field levels)",
                        {"background_variation": "false"}),
    "no_agn_population": ("no central-AGN population and no AGN clustering", {"central_agn": "false",
                                                                              "agn_clustering": "false"}),
    "no_position_error": ("image centred on the emission (no detection position error)",
                          {"center_jitter": "false"}),
}


def _cmlib(*args: str) -> None:
    exe = Path(sys.executable).with_name("cmlib")
    subprocess.run([str(exe), *args], check=True, cwd=ROOT)


def _data(work: Path, name: str, sets: dict[str, str]) -> Path:
    path = work / f"mock-{name}.h5"
    if not path.exists():
        args = ["simulate", "--n", str(N), "--seed", str(SEED), "--out", str(path), "--quiet"]
        for k, v in sets.items():
            args += ["--set", f"{k}={v}"]
        _cmlib(*args)
    return path


def _train(work: Path, data: Path, seeds: str, name: str) -> list[dict]:
    runs = work / f"runs-{name}"
    _cmlib("train", "--model", "basic", "--data", str(data), "--epochs", str(EPOCHS), "--seeds", seeds,
           "--runs-dir", str(runs), "--no-model-files", "--quiet")
    out = []
    for m in sorted(runs.glob("basic/*/seed-*/metrics.json")):
        met = json.loads(m.read_text())
        t = met["test"]
        out.append({"seed": int(m.parent.name.split("-")[1]), "sigma_thesis": t["sigma"], "mu": t["mu"],
                    "std": t["std"], "epochs": met["loss"]["epochs_completed"],
                    "best_epoch": met["loss"]["best_epoch"]})
    return out


def _load() -> dict:
    return json.loads(OUT.read_text()) if OUT.exists() else {}


def _save(res: dict) -> None:
    res["date"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    try:
        res["loadavg"] = [round(v, 2) for v in os.getloadavg()]
    except OSError:
        pass
    OUT.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(OUT, res)


def references(res: dict, n_ref: int, *, missing_only: bool = False) -> None:
    from cmlib import classical, simulate

    for name, (what, sets) in VARIANTS.items():
        if missing_only and res.get("variants", {}).get(name, {}).get("references", {}).get("n") == n_ref:
            continue
        p = simulate.parse_parameters(sets)
        ref = classical.reference_estimators(p, n=n_ref, seed=11)
        res.setdefault("variants", {}).setdefault(name, {}).update(
            {"switched_off": what, "overrides": sets, "references": ref})
        _save(res)
        print(f"references {name}: " + ", ".join(f"{k} {v['std']:.3f}" for k, v in ref["estimators"].items()),
              flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="/tmp/cmlib-mockcal", help="scratch folder for data files and runs")
    ap.add_argument("--refs-only", action="store_true", help="recompute the reference estimators only")
    ap.add_argument("--n-ref", type=int, default=100_000, help="population draw of the reference estimators")
    ap.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated ablation variants to train")
    args = ap.parse_args(argv)
    res = _load()
    res.update({"n_clusters": N, "seed": SEED, "epochs_max": EPOCHS, "model": "basic",
                "recipe": "thesis: bands 2-4, thesis split (90/10, test = validation), early stopping, MSE, "
                          "Adam 1e-3, batch 32 (cmlib train defaults for the basic model)",
                "script": "benchmarks/mock_calibration.py"})
    if args.refs_only:
        references(res, args.n_ref)
        return 0
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    for name in args.variants.split(","):
        what, sets = VARIANTS[name]
        entry = res.setdefault("variants", {}).setdefault(name, {})
        entry.update({"switched_off": what, "overrides": sets})
        seeds = "0-2" if name == "v2" else "0"
        if entry.get("runs") and len(entry["runs"]) >= (3 if name == "v2" else 1):
            continue
        t0 = time.time()
        data = _data(work, name, sets)
        entry["runs"] = _train(work, data, seeds, name)
        entry["train_wall_s"] = round(time.time() - t0, 1)
        _save(res)
        print(f"{name}: " + ", ".join(f"seed {r['seed']}: sigma {r['sigma_thesis']:.3f} mu {r['mu']:+.3f} "
                                      f"std {r['std']:.3f} ({r['epochs']} ep)" for r in entry["runs"]), flush=True)
    references(res, args.n_ref, missing_only=True)
    done = [n for n, v in res.get("variants", {}).items() if v.get("runs") and v.get("references")]
    res["status"] = ("complete: the v2 calibration (3 seeds) and one seed of every ablation variant, with the "
                     "reference estimators of each" if set(done) >= set(VARIANTS) else
                     f"partial: finished {', '.join(sorted(done))}; rerun the script to continue")
    _save(res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
