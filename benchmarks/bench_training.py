"""Training speed: step-only vs whole-epoch time, float32 vs bfloat16, for six models, in one run.

For each model and precision, in the configuration cmlib trains it with
(``--input``: the fair-protocol 50 x 50, or the thesis's padded 71 x 71), this
script measures

* **step-only epoch time**: the model of the run (:func:`cmlib.train.build_model`,
  with its precision policy, optimizer and loss) fitted on the run's own input
  pipeline with nothing else (no validation, checkpoints or logging) on the first
  ``--clusters`` clusters; the epochs after the first (tracing) are timed, and the
  step time is extrapolated to the thesis's 7151 training images per epoch;
* **whole-epoch time**: the real engine (:func:`cmlib.train.train_run`: the run's
  input pipeline, validation every epoch, checkpoints with the default adaptive
  cadence, history and status files) on the first ``--clusters`` clusters of a
  data file, timed from the run's history (``epoch_time_s`` of the epochs after
  the first, which traces; an epoch's time includes the previous epoch's
  bookkeeping) with every checkpoint write timed, and compared with the
  step-only time of the same number of training steps.  Three ratios:
  ``overhead_subset`` (as measured on the subset: for the large models it is
  dominated by the first checkpoint, which a 3-epoch subset run cannot
  amortise), ``overhead_steady`` (epochs without the checkpoint they carry:
  validation, history, status) and ``overhead`` (the steady ratio with the
  measured checkpoint cost amortised as the adaptive policy does over a
  full-data run: one write per max(epoch, min(600 s, cost / 5 %))); the target
  applies to ``overhead``.

Precisions alternate (float32, bfloat16, float32, ...) model by model, so slow
drifts of a shared machine hit both alike; the load average is recorded.
Results: a table on stdout and ``benchmarks/results/training.json`` (or
``--out``).  Runs on any Keras backend: ``KERAS_BACKEND=jax python
benchmarks/bench_training.py --quick`` on a GPU machine without TensorFlow.

    python benchmarks/bench_training.py                 # six models, both precisions (about 1 h on 2 cores)
    python benchmarks/bench_training.py --quick         # fewer steps, smaller subset
    python benchmarks/bench_training.py --models basic,resnet50v2 --precisions bfloat16
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from cmlib import __version__, hardware  # noqa: E402
from cmlib._io import atomic_write_json  # noqa: E402

MODELS = ("basic", "krippendorf2023", "resnet50v2", "resnet152v2", "vgg16", "efficientnetb7")
#: Models whose epochs take seconds: measured in several interleaved rounds of more epochs (``--small-*``).
SMALL = ("basic", "krippendorf2023")
TRAIN_IMAGES = 7151          # thesis Table 2
TARGET_OVERHEAD = 1.15       # whole epoch <= 1.15 x step-only (issue: fast training engine)


def _load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def _cfg(model: str, data: Path, precision: str, pad: str, clusters: int, epochs: int):
    from cmlib.config import resolve_config

    deep = model not in ("basic", "krippendorf2023")
    over = dict(precision=precision, early_stopping=0)
    if deep:                 # the small CNNs take the whole file: their per-epoch costs are what is measured
        over.update(pad=pad, max_clusters=clusters)
    return resolve_config(model, data, epochs=epochs, seed=0, **over)


def step_time(cfg, data: Path, epochs: int) -> dict:
    """Seconds per training step of the run's model and input pipeline, nothing else.

    ``model.fit`` over the run's own training input (:func:`cmlib.data.make_run_input`) for
    ``epochs`` epochs without validation, checkpoints or logging; the first epoch (tracing) is
    not timed.
    """
    from cmlib import data as D
    from cmlib._env import import_keras
    from cmlib.train import build_model
    from cmlib.train.engine import prepared_data

    keras = import_keras()
    _, _, prep = prepared_data(cfg, data)
    model = build_model(cfg, prep)
    ds, steps = D.make_run_input(prep, seed=0, start_epoch=0, epochs=epochs, batch_size=cfg.batch_size,
                                 augment=cfg.augment)

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.t)

    times: list[float] = []
    model.fit(ds, epochs=epochs, steps_per_epoch=steps, verbose=0, shuffle=False, callbacks=[Clock()])
    dt = float(np.mean(times[1:])) / steps
    del model
    keras.backend.clear_session()
    return {"warmup_s": times[0], "step_s": dt, "images_per_s": cfg.batch_size / dt,
            "input_shape": list(prep.image_shape), "train_images_subset": int(prep.train.n),
            "batch_size": cfg.batch_size, "steps_per_epoch": steps}


def whole_epoch(cfg, data: Path, runs: Path) -> dict:
    """The real engine on the subset: epoch times after the first (tracing) epoch, and every checkpoint write.

    An epoch's recorded time runs from the previous epoch's end, so it includes the previous epoch's
    bookkeeping; a checkpoint written at the end of epoch k-1 is in epoch k's time.  On a subset of a
    few epochs the first checkpoint (written after epoch 1, before anything is amortised) dominates for
    the large models, so the steady epoch (epoch time minus the checkpoint it carries) and the cost of
    one checkpoint are reported apart; :func:`main` amortises that cost as the adaptive policy does over
    a full run.
    """
    from cmlib.train import engine as E
    from cmlib.train import train_run

    writes: list[tuple[int, float]] = []
    original = E.C.write

    def timed_write(run_dir, model, state, **kw):
        ck, cost = original(run_dir, model, state, **kw)
        writes.append((int(state["epochs_completed"]), cost))
        return ck, cost

    E.C.write = timed_write
    try:
        r = train_run(cfg, runs, data_path=data, verbose=False, keep_models=False)
    finally:
        E.C.write = original
    times = np.asarray(r.run.history["epoch_time_s"], dtype=float)
    carried = {e: c for e, c in writes}
    timed = range(2, times.size + 1)                       # epoch numbers after the first
    steady = [times[k - 1] - carried.get(k - 1, 0.0) for k in timed]
    costs = [c for _, c in writes]
    return {"epoch_s": float(np.mean(times[1:])), "steady_epoch_s": float(np.mean(steady)),
            "epochs_timed": int(times.size - 1), "checkpoint_writes": len(writes),
            "checkpoint_s": float(np.mean(costs)) if costs else 0.0,
            "checkpoints": "adaptive (<= 5 % target)", "wall_s": float(r.run.status_info.get("wall_time_s", 0.0))}


def amortised_overhead(steady_overhead: float, full_step_only_s: float, checkpoint_s: float,
                       max_overhead: float = 0.05, max_interval_s: float = 600.0) -> float:
    """Whole-epoch / step-only over a full-data run: the steady per-epoch overhead times the checkpoint
    share the adaptive policy (cmlib.train.callbacks.CheckpointPolicy) allows: one write per
    max(epoch, min(600 s, cost / 5 %))."""
    epoch = full_step_only_s * steady_overhead
    interval = max(epoch, min(max_interval_s, checkpoint_s / max_overhead))
    return steady_overhead * (1.0 + checkpoint_s / interval)


def _kept_rows(args, models) -> list[dict]:
    """With ``--merge``: the rows of the existing results file for the models not measured now (each keeps
    the time it was measured; rows of older files get the file's ``created``)."""
    out = Path(args.out)
    if not args.merge or not out.exists():
        return []
    old = json.loads(out.read_text())
    if old.get("input") != args.input:
        raise SystemExit(f"--merge: {out} holds input '{old.get('input')}', not '{args.input}'; "
                         "choose another --out")
    return [{**r, "measured": r.get("measured", old.get("created"))} for r in old.get("rows", [])
            if r["model"] not in models]


def _write(args, rows, models, clusters, load_before, complete: bool) -> dict:
    by = {(r["model"], r["precision"]): r for r in rows}
    ratios = {m: by[(m, "float32")]["epoch_step_only_s"] / by[(m, "bfloat16")]["epoch_step_only_s"]
              for m in dict.fromkeys(r["model"] for r in rows) if (m, "float32") in by and (m, "bfloat16") in by}
    out = {
        "benchmark": "training (step-only vs whole epoch, float32 vs bfloat16)",
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "cmlib_version": __version__, "input": args.input, "quick": bool(args.quick),
        "settings": {"clusters": clusters, "epochs": args.epochs, "timed_epochs": args.epochs - 1,
                     "small_cnns": {"models": list(SMALL), "epochs": args.small_epochs, "rounds": args.small_rounds}},
        "machine": {**hardware.describe(), "platform": platform.platform(), "python": platform.python_version(),
                    "backend": os.environ.get("KERAS_BACKEND", "tensorflow"),
                    "gpus": [g["name"] for g in hardware.gpus()], "loadavg_before": load_before,
                    "loadavg_after": _load()},
        "rows": rows, "complete": complete,
        "bf16_speedup": ratios,
        "overhead_target": TARGET_OVERHEAD,
        "overhead_within_target": {r["model"] + "/" + r["precision"]: r["overhead"] <= TARGET_OVERHEAD for r in rows},
    }
    atomic_write_json(args.out, out)
    return ratios


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--precisions", default="float32,bfloat16")
    ap.add_argument("--input", choices=["fair", "thesis"], default="fair",
                    help="deep models at 50 x 50 (fair protocol, default) or padded to 71 x 71 (thesis)")
    ap.add_argument("--data", default=None, help="data file (default: a simulated 7946-cluster file in a temp dir)")
    ap.add_argument("--clusters", type=int, default=None,
                    help="clusters of the deep models' runs (default 640; the small CNNs use the whole file)")
    ap.add_argument("--epochs", type=int, default=3, help="epochs of the whole-epoch runs (the first is not timed)")
    ap.add_argument("--small-epochs", type=int, default=8,
                    help="epochs of each measurement of the small CNNs (their epochs take seconds: a window of "
                         "2 epochs is at the mercy of a shared machine's noise)")
    ap.add_argument("--small-rounds", type=int, default=3,
                    help="interleaved rounds (float32, bfloat16, bfloat16, float32, ...) of the small CNNs; medians")
    ap.add_argument("--merge", action="store_true",
                    help="replace only the measured models' rows of an existing --out (the others are kept)")
    ap.add_argument("--quick", action="store_true", help="320 clusters, 3 epochs (2 timed)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "training.json"))
    args = ap.parse_args()
    if args.quick:
        args.clusters = args.clusters or 320
        args.small_epochs, args.small_rounds = min(args.small_epochs, 3), 1
    clusters = args.clusters or 640
    models = [m for m in args.models.split(",") if m]
    precisions = [p for p in args.precisions.split(",") if p]
    pad = "none" if args.input == "fair" else "thesis"
    work = Path(tempfile.mkdtemp(prefix="cmlib-bench-training-"))
    data = Path(args.data) if args.data else None
    if data is None:
        from cmlib import simulate

        data = simulate.simulate_to_file(work / "bench.h5", n=7946, seed=0, progress=False)
    rows, load_before = [], _load()
    kept = _kept_rows(args, models)
    for i, model in enumerate(models):
        order = precisions if i % 2 == 0 else precisions[::-1]     # alternate which precision goes first
        small = model in SMALL
        rounds, epochs = (args.small_rounds, args.small_epochs) if small else (1, args.epochs)
        meas: dict[str, list] = {p: [] for p in order}
        for k in range(rounds):             # small CNNs: rounds of both precisions, interleaved (drift hits both)
            for precision in (order if k % 2 == 0 else order[::-1]):
                cfg = _cfg(model, data, precision, pad, clusters, epochs)
                s = step_time(cfg, data, epochs)
                w = whole_epoch(cfg, data, work / f"runs-{model}-{precision}-{k}")   # a fresh run, never a reused one
                meas[precision].append((s, w))
        for precision in order:
            ss, ws = [m[0] for m in meas[precision]], [m[1] for m in meas[precision]]
            s = ss[0]
            steps_subset = s["steps_per_epoch"]
            step_s = float(np.median([x["step_s"] for x in ss]))
            step_only_subset = steps_subset * step_s
            epoch_s = float(np.median([x["epoch_s"] for x in ws]))
            steady_s = float(np.median([x["steady_epoch_s"] for x in ws]))
            ck = float(np.median([x["checkpoint_s"] for x in ws]))
            row = {"model": model, "precision": precision, "input_shape": s["input_shape"],
                   "batch_size": s["batch_size"], "step_s": step_s, "images_per_s": s["batch_size"] / step_s,
                   "epoch_step_only_s": TRAIN_IMAGES * step_s / s["batch_size"],
                   "subset_train_images": s["train_images_subset"], "subset_step_only_s": step_only_subset,
                   "subset_whole_epoch_s": epoch_s, "overhead_subset": epoch_s / step_only_subset,
                   "subset_steady_epoch_s": steady_s, "checkpoint_s": ck,
                   "checkpoint_writes_subset": ws[0]["checkpoint_writes"],
                   "overhead_steady": steady_s / step_only_subset,
                   "timed_epochs": epochs - 1, "rounds": rounds,
                   "measured": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                   "load": _load()}
            if rounds > 1:
                row["step_only_rounds_s"] = [steps_subset * x["step_s"] for x in ss]
                row["whole_epoch_rounds_s"] = [x["epoch_s"] for x in ws]
            row["overhead"] = amortised_overhead(row["overhead_steady"], row["epoch_step_only_s"], ck)
            row["epoch_whole_s"] = row["epoch_step_only_s"] * row["overhead"]
            rows.append(row)
            print(f"{model:<16} {precision:<9} {'x'.join(map(str, row['input_shape'])):<9} "
                  f"step {row['step_s'] * 1e3:8.1f} ms  epoch(step-only) {row['epoch_step_only_s']:8.1f} s  "
                  f"overhead x{row['overhead']:.2f} (steady x{row['overhead_steady']:.2f}, subset "
                  f"x{row['overhead_subset']:.2f}, checkpoint {row['checkpoint_s']:.2f} s)  load {row['load'][0]}",
                  flush=True)
            _write(args, kept + rows, models, clusters, load_before, complete=False)   # nothing measured is lost
    ratios = _write(args, kept + rows, models, clusters, load_before, complete=True)
    print(json.dumps({"bf16_speedup": {k: round(v, 2) for k, v in ratios.items()}}))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
