"""Throughput of deep-model training on a small CPU: one run on all cores, or one run per core at once?

The stored runs are trained one after another, each with TensorFlow's default thread pools (all
cores).  With 2 cores, two runs with one thread each might finish the same work sooner, if one run
does not keep both cores busy (small 50 x 50 images, batch 32).  This script measures it:

* **A, one run, all cores**: one worker process, TensorFlow's default threads;
* **B, k runs, one core each**: ``k`` (= the core count) worker processes started together, each
  limited to one thread (:func:`cmlib._env.limit_threads`, as the local pool of ``cmlib sweep`` and
  ``cmlib tune`` limits its jobs).

Each worker fits the model of a fair-protocol run (:func:`cmlib.config.resolve_config` with the
laptop profile's fair recipe, float32, 50 x 50; the first ``--clusters`` clusters) on the run's own
input pipeline for ``--epochs`` epochs of ``--steps`` steps and reports images per second over the
epochs after the first (tracing).  B's throughput is all its workers' timed
images over the span from the first timed start to the last end (the sum of their rates where the
timed windows coincide, less where they do not; the overlap is printed).  A and B alternate
(A, B, A, B, ...) so that a shared machine's drifts hit both; the load average is recorded before
and after.  The ratio ``B / A`` > 1 means the parallel layout trains more images per second.

    python benchmarks/bench_parallel.py                          # vgg16 and resnet50v2, 3 rounds
    python benchmarks/bench_parallel.py --models vgg16 --rounds 2
Results: a table on stdout and ``benchmarks/results/parallel.json`` (or ``--out``).
Pause other training on the machine first (``kill -STOP <pid>``, later ``kill -CONT <pid>``).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cmlib._env import limit_threads  # noqa: E402
from cmlib._io import atomic_write_json  # noqa: E402

#: The laptop profile's fair recipe for the deep models (cmlib.book.profiles), as config overrides.
FAIR = dict(split="train-val-test", pad="none", optimizer="adamw", weight_decay=0.01, lr=1e-3,
            lr_schedule="warmup-cosine", warmup_epochs=3, early_stopping=0, label_scaling="standardize",
            output_bias="prior", precision="float32")


def worker(args) -> int:
    """One training process: images per second of the model's fit, as JSON on stdout."""
    if args.threads:                    # before TensorFlow is imported
        limit_threads(args.threads)
    from cmlib import data as D
    from cmlib._env import import_keras
    from cmlib.config import resolve_config
    from cmlib.train import build_model
    from cmlib.train.engine import prepared_data

    keras = import_keras()
    cfg = resolve_config(args.model, args.data, epochs=args.epochs, seed=0, max_clusters=args.clusters, **FAIR)
    _, _, prep = prepared_data(cfg, args.data)
    model = build_model(cfg, prep)
    steps = args.steps
    ds, _ = D.make_run_input(prep, seed=0, start_epoch=0, epochs=args.epochs, batch_size=cfg.batch_size,
                             augment=cfg.augment)
    marks: list[float] = []

    class Clock(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            marks.append(time.time())

    t0 = time.time()
    model.fit(ds, epochs=args.epochs, steps_per_epoch=steps, verbose=0, shuffle=False, callbacks=[Clock()])
    timed = marks[-1] - marks[0]        # the epochs after the first (tracing)
    images = (args.epochs - 1) * steps * cfg.batch_size
    print(json.dumps({"images_per_s": images / timed, "timed_s": timed, "start": marks[0], "end": marks[-1],
                      "first_epoch_s": marks[0] - t0, "batch_size": cfg.batch_size,
                      "input_shape": list(prep.image_shape), "threads": args.threads}))
    return 0


def _spawn(args, model: str, threads: int | None) -> subprocess.Popen:
    cmd = [sys.executable, __file__, "--worker", "--model", model, "--data", args.data, "--clusters",
           str(args.clusters), "--steps", str(args.steps), "--epochs", str(args.epochs)]
    if threads:
        cmd += ["--threads", str(threads)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT)


def _collect(procs: list[subprocess.Popen]) -> list[dict]:
    out = []
    for p in procs:
        stdout, _ = p.communicate()
        if p.returncode != 0:
            raise SystemExit(f"a worker failed (exit {p.returncode}); run it alone to see why")
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--model", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--models", default="vgg16,resnet50v2")
    ap.add_argument("--data", default="data/efeds_mock.h5")
    ap.add_argument("--clusters", type=int, default=1500, help="the first N clusters of the file")
    ap.add_argument("--steps", type=int, default=25, help="training steps per epoch")
    ap.add_argument("--epochs", type=int, default=4, help="epochs per worker; the first is not timed")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "parallel.json"))
    args = ap.parse_args()
    if args.worker:
        return worker(args)
    if not Path(args.data).is_file():
        raise SystemExit(f"no data file {args.data}: make it with `cmlib simulate --n 7946 --seed 0 --out {args.data}`")
    cores = os.cpu_count() or 1
    load_before = [round(v, 2) for v in os.getloadavg()]
    rows = []
    for model in args.models.split(","):
        a_runs, b_runs = [], []
        for r in range(args.rounds):
            a = _collect([_spawn(args, model, None)])[0]
            a_runs.append(a["images_per_s"])
            bs = _collect([_spawn(args, model, 1) for _ in range(cores)])
            # all workers' timed images over the span from the first timed start to the last end: the sum of
            # their rates when the timed windows coincide, less (conservative) where they do not
            span = max(b["end"] for b in bs) - min(b["start"] for b in bs)
            overlap = min(b["end"] for b in bs) - max(b["start"] for b in bs)
            b_runs.append(sum(b["images_per_s"] * b["timed_s"] for b in bs) / span)
            parts = " + ".join(f"{b['images_per_s']:.1f}" for b in bs)
            print(f"{model} round {r + 1}: A {a['images_per_s']:.1f} img/s, B {b_runs[-1]:.1f} img/s "
                  f"({parts}; timed windows overlap "
                  f"{max(overlap, 0):.0f} of {span:.0f} s), load {os.getloadavg()[0]:.2f}",
                  flush=True)
        ratios = [b / a for a, b in zip(a_runs, b_runs)]
        rows.append({"model": model, "input_shape": a["input_shape"], "batch_size": a["batch_size"],
                     "workers_B": cores, "A_images_per_s": a_runs, "B_images_per_s": b_runs,
                     "ratio_B_over_A": ratios, "ratio_median": statistics.median(ratios)})
    out = {"benchmark": "one run on all cores (A) against one run per core at once (B)",
           "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
           "machine": {"cpu_cores": cores, "platform": platform.machine(),
                       "loadavg_before": load_before, "loadavg_after": [round(v, 2) for v in os.getloadavg()]},
           "settings": {k: getattr(args, k) for k in ("clusters", "steps", "epochs", "rounds")},
           "recipe": FAIR, "rows": rows}
    atomic_write_json(Path(args.out), out)
    print("\nmodel        A img/s (median)  B img/s (median)  B/A per round")
    for row in rows:
        print(f"{row['model']:<12} {statistics.median(row['A_images_per_s']):>16.1f}  "
              f"{statistics.median(row['B_images_per_s']):>16.1f}  "
              + ", ".join(f"{x:.2f}" for x in row["ratio_B_over_A"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
