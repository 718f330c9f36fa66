"""Where a small CNN's epoch goes: training steps, the input pipeline, validation, diagnostics, a checkpoint.

``bench_training.py`` compares a whole epoch with the training steps alone.  For the small CNNs, whose epochs
take seconds, that ratio swung between x0.71 and x1.49 from one run to the next.  This script measures the
parts of an epoch separately, in interleaved repetitions per precision, on one process:

* ``fit_epoch_s``: one epoch of ``model.fit`` on the run's input, nothing else (repeated: its spread is the
  epoch-to-epoch noise any ratio of two epochs inherits);
* ``input_only_s``: iterating the same input pipeline for an epoch without a model (the gathers and copies of
  the augmented images, which share the two cores with the training steps);
* ``evaluate_val_s``: the validation pass the engine runs every epoch;
* ``diagnostics_s``: :func:`cmlib.train.diagnostics.diagnose` on its probe;
* ``checkpoint_s``: writing one checkpoint as at an improving epoch (weights, best weights, run state).

    python benchmarks/epoch_parts.py                       # basic, krippendorf2023; both precisions
    python benchmarks/epoch_parts.py --models basic --repeats 5

Results: ``benchmarks/results/epoch_parts.json`` (or ``--out``); the training-parameters page quotes them.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cmlib import __version__, hardware  # noqa: E402
from cmlib._io import atomic_write_json  # noqa: E402

from bench_training import _load  # noqa: E402  (this script's folder is on sys.path when run as a script)


def _setup(model: str, data: Path, precision: str, work: Path):
    from cmlib import data as D
    from cmlib.config import resolve_config
    from cmlib.train.diagnostics import TrainingDiagnostics
    from cmlib.train.engine import build_model, prepared_data

    cfg = resolve_config(model, data, epochs=100, seed=0, precision=precision, early_stopping=0)
    _, _, prep = prepared_data(cfg, data)
    m = build_model(cfg, prep)
    ds, steps = D.make_run_input(prep, seed=0, start_epoch=0, epochs=100, batch_size=cfg.batch_size,
                                 augment=cfg.augment)
    val = D.make_eval_input(prep, "val", batch_size=cfg.batch_size)
    m.fit(ds, epochs=1, steps_per_epoch=steps, validation_data=val, verbose=0)     # tracing, not timed
    diag = TrainingDiagnostics(prep.train)
    diag.set_model(m)
    diag.on_train_begin()
    return {"cfg": cfg, "prep": prep, "model": m, "ds": ds, "steps": steps, "val": val, "diag": diag,
            "epoch": 1, "dir": work / f"{model}-{precision}"}


def _measure(s: dict) -> dict:
    from cmlib import data as D
    from cmlib.train import checkpoint as C
    from cmlib.train.diagnostics import diagnose

    m, e = s["model"], s["epoch"]
    t = time.perf_counter()
    m.fit(s["ds"], epochs=e + 1, initial_epoch=e, steps_per_epoch=s["steps"], verbose=0)
    fit = time.perf_counter() - t
    s["epoch"] = e + 1
    inp, _ = D.make_run_input(s["prep"], seed=1, start_epoch=0, epochs=1, batch_size=s["cfg"].batch_size,
                              augment=s["cfg"].augment)
    t = time.perf_counter()
    for _ in inp:
        pass
    input_only = time.perf_counter() - t
    t = time.perf_counter()
    m.evaluate(s["val"], verbose=0)
    val = time.perf_counter() - t
    t = time.perf_counter()
    diagnose(m, s["diag"].inputs, s["diag"].y, s["diag"].probe)
    dg = time.perf_counter() - t
    s["dir"].mkdir(parents=True, exist_ok=True)
    state = {"epochs_completed": s["epoch"], "history": [], "finished": False}
    # as at an improving epoch: the weights and the best weights (the dearer case)
    _, ck = C.write(s["dir"], m, state, best_weights=[np.array(w) for w in m.get_weights()], best_changed=True,
                    previous=None)
    return {"fit_epoch_s": fit, "input_only_s": input_only, "evaluate_val_s": val, "diagnostics_s": dg,
            "checkpoint_s": ck}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="basic,krippendorf2023")
    ap.add_argument("--precisions", default="float32,bfloat16")
    ap.add_argument("--repeats", type=int, default=4)
    ap.add_argument("--data", default=None, help="data file (default: a simulated 7946-cluster file in a temp dir)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "epoch_parts.json"))
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cmlib-epoch-parts-"))
    data = Path(args.data) if args.data else None
    if data is None:
        from cmlib import simulate

        data = simulate.simulate_to_file(work / "bench.h5", n=7946, seed=0, progress=False)
    load_before = _load()
    rows = []
    for model in [m for m in args.models.split(",") if m]:
        precisions = [p for p in args.precisions.split(",") if p]
        setups = {p: _setup(model, data, p, work) for p in precisions}
        reps: dict[str, list[dict]] = {p: [] for p in precisions}
        for k in range(args.repeats):          # interleaved: float32, bfloat16, bfloat16, float32, ...
            for p in (precisions if k % 2 == 0 else precisions[::-1]):
                reps[p].append(_measure(setups[p]))
        for p in precisions:
            r = {"model": model, "precision": p, "repeats": args.repeats, "load": _load()}
            for key in reps[p][0]:
                v = np.array([x[key] for x in reps[p]])
                r[key] = {"median": float(np.median(v)), "min": float(v.min()), "max": float(v.max())}
            fit = r["fit_epoch_s"]
            r["fit_epoch_spread"] = (fit["max"] - fit["min"]) / fit["median"]
            r["fixed_overhead"] = sum(r[k]["median"] for k in ("evaluate_val_s", "diagnostics_s", "checkpoint_s")) \
                / fit["median"]
            rows.append(r)
            print(f"{model:<16} {p:<9} epoch {fit['median']:.2f} s (range {fit['min']:.2f}-{fit['max']:.2f}) "
                  f"input alone {r['input_only_s']['median']:.2f} s  validation {r['evaluate_val_s']['median']:.3f} s"
                  f"  diagnostics {r['diagnostics_s']['median']:.3f} s  checkpoint {r['checkpoint_s']['median']:.3f} s"
                  f"  fixed overhead x{1 + r['fixed_overhead']:.2f}", flush=True)
    atomic_write_json(args.out, {
        "benchmark": "parts of a small CNN's epoch", "cmlib_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {**hardware.describe(), "loadavg_before": load_before, "loadavg_after": _load()},
        "rows": rows})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
