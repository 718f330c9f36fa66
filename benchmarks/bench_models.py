"""Thesis Table 3 reproduced: parameters, FLOPs and time per epoch of every model.

For each model of thesis Table 3, in the thesis configuration (71 x 71 x 3
images, Flatten head, z, Dense 512, one output; the basic CNN at 50 x 50 x 3),
this script measures

* trainable parameters, beside the thesis's, with the relative difference;
  it fails (exit status 1) if a self-consistent thesis entry is missed by more
  than 0.5 % (EfficientNet-B7's 21.07 M repeats VGG19's row and is only reported);
* FLOPs per image of one forward pass (:func:`cmlib.models.count_flops`);
* the time to build the model and to compile it;
* the time per training step (Adam lr 1e-3, MSE, batch 32, TensorFlow on the
  CPU) with random data: after ``--warmup`` steps (the first traces the
  graph) at least ``--steps`` steps and ``--min-time`` seconds are timed, and
  the mean step time is **extrapolated** to one epoch of the thesis's 7151
  training images (epoch_s = 7151 / images per second).  The thesis's Table 3
  times were measured on a GPU and are listed for reference only.

Results are printed as a table and written to ``benchmarks/results/models.json``.
Timings depend on the load of the machine (the load average is recorded) and
on TensorFlow's kernels: :mod:`cmlib._env` switches its oneDNN kernels on
(``TF_ENABLE_ONEDNN_OPTS=1``) unless the variable is set; run
``TF_ENABLE_ONEDNN_OPTS=0 python benchmarks/bench_models.py --out ...`` to time
the reference Eigen kernels (3.2x slower for ResNet50 on an AVX2 CPU,
``benchmarks/bench_kernels.py``).

Usage::

    python benchmarks/bench_models.py            # all models (~10 min on 2 cores)
    python benchmarks/bench_models.py --quick    # basic, VGG16, ResNet50V2, few steps
    python benchmarks/bench_models.py --models basic,resnet152v2 --steps 5
"""
from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cmlib import __version__, models  # noqa: E402
from cmlib.book import thesis  # noqa: E402
from cmlib._io import atomic_write_json  # noqa: E402
from cmlib._env import onednn_enabled  # noqa: E402

TRAIN_IMAGES = thesis.TABLE2["train"]   # 7151, thesis Table 2
QUICK_MODELS = ("basic", "vgg16", "resnet50v2")
TOLERANCE = 0.005                       # relative, on the trainable parameters


def _loadavg() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def bench_one(name: str, shape: tuple[int, int, int], *, batch: int, warmup: int, steps: int,
              min_time: float, max_steps: int, seed: int = 0) -> dict:
    """Build, count and time one model; returns one result row."""
    import keras

    keras.backend.clear_session()
    spec = models.get_spec(name)
    t0 = time.perf_counter()
    model = models.build(name, shape, seed=seed)
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    # the thesis's Adam(1e-3); each model's own loss (MSE, or the Gaussian NLL of the baseline)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=models.loss_for(spec.recipe["loss"]))
    compile_s = time.perf_counter() - t0
    params = models.count_params(model)
    flops = models.count_flops(model, shape)

    rng = np.random.default_rng(seed)
    x = [rng.poisson(1.0, (batch,) + shape).astype("float32"),
         rng.uniform(0.05, 1.2, (batch, 1)).astype("float32")]
    y = rng.uniform(13.0, 15.0, batch).astype("float32")

    t0 = time.perf_counter()
    model.train_on_batch(x, y)                     # traces the training step
    first_step_s = time.perf_counter() - t0
    for _ in range(max(0, warmup - 1)):
        model.train_on_batch(x, y)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < max_steps and (len(times) < steps or time.perf_counter() - start < min_time):
        t = time.perf_counter()
        loss = model.train_on_batch(x, y)
        times.append(time.perf_counter() - t)
    step_s = float(np.mean(times))
    images_per_s = batch / step_s
    t3 = thesis.TABLE3.get(name)
    row = {
        "name": name, "display_name": spec.display_name, "input_shape": list(shape),
        "params": params, "params_m": params / 1e6,
        "thesis_params_m": None if t3 is None else t3["params_m"],
        "rel_diff": None if t3 is None else params / 1e6 / t3["params_m"] - 1.0,
        "thesis_consistent": t3 is not None and name not in thesis.TABLE3_INCONSISTENT,
        "flops": int(flops), "gflops": flops / 1e9,
        "build_s": build_s, "compile_s": compile_s, "first_step_s": first_step_s,
        "timed_steps": len(times), "step_s": step_s, "step_s_std": float(np.std(times)),
        "images_per_s": images_per_s, "epoch_s": TRAIN_IMAGES / images_per_s,
        "thesis_epoch_s_gpu": None if t3 is None else t3["epoch_s"],
        "final_loss_finite": bool(np.isfinite(loss)),
        "note": thesis.TABLE3_NOTES.get(name, "") if name in thesis.TABLE3_INCONSISTENT else "",
    }
    del model
    return row


def format_rows(rows: list[dict]) -> str:
    head = ["model", "input", "params [M]", "thesis [M]", "rel diff", "GFLOPs/img", "build [s]",
            "1st step [s]", "step [s]", "img/s", "epoch [s]", "thesis GPU [s]"]
    lines = []
    for r in rows:
        lines.append([
            r["display_name"], "x".join(map(str, r["input_shape"])), f"{r['params_m']:.2f}",
            "-" if r["thesis_params_m"] is None else f"{r['thesis_params_m']:.2f}",
            "-" if r["rel_diff"] is None else f"{r['rel_diff']:+.2%}" + ("" if r["thesis_consistent"] else " *"),
            f"{r['gflops']:.3f}", f"{r['build_s'] + r['compile_s']:.1f}", f"{r['first_step_s']:.1f}",
            f"{r['step_s']:.3f}", f"{r['images_per_s']:.0f}", f"{r['epoch_s']:.0f}",
            "-" if r["thesis_epoch_s_gpu"] is None else ("<1" if r["name"] == "basic" else f"{r['thesis_epoch_s_gpu']:.0f}"),
        ])
    widths = [max(len(h), *(len(c[i]) for c in lines)) for i, h in enumerate(head)]
    fmt = lambda cells: "  ".join(c.ljust(w) if i < 2 else c.rjust(w)  # noqa: E731
                                  for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([fmt(head), fmt(["-" * w for w in widths])] + [fmt(c) for c in lines])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK_MODELS)}, 3 timed steps")
    p.add_argument("--models", help="comma list of model names (default: every model of Table 3)")
    p.add_argument("--extra", action="store_true", help="also time the krippendorf2023 baseline")
    p.add_argument("--batch", type=int, default=32, help="batch size (thesis: 32)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps, the first traces the graph")
    p.add_argument("--steps", type=int, default=10, help="minimum number of timed steps")
    p.add_argument("--min-time", type=float, default=3.0, help="minimum timed seconds per model")
    p.add_argument("--max-steps", type=int, default=300, help="maximum number of timed steps")
    p.add_argument("--input-shape", default="71,71,3", help="deep models' input (thesis: 71,71,3)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "models.json"))
    args = p.parse_args(argv)

    shape = tuple(int(v) for v in args.input_shape.split(","))
    if args.models:
        names = [n.strip() for n in args.models.split(",") if n.strip()]
    else:
        names = list(QUICK_MODELS if args.quick else thesis.TABLE3)
    if args.extra and "krippendorf2023" not in names:
        names.append("krippendorf2023")
    for n in names:
        models.get_spec(n)   # unknown name -> clear error before any work
    if args.quick:
        args.steps, args.min_time, args.warmup = min(args.steps, 3), min(args.min_time, 1.0), 1

    import keras
    import tensorflow as tf

    load_before = _loadavg()
    rows: list[dict] = []
    t_all = time.perf_counter()

    def result(complete: bool) -> dict:
        failures = [r["name"] for r in rows if r["thesis_consistent"] and abs(r["rel_diff"]) > TOLERANCE]
        return {
            "benchmark": "models (thesis Table 3)",
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                        "loadavg_before": load_before, "loadavg_after": _loadavg(),
                        "python": platform.python_version()},
            "software": {"cmlib": __version__, "keras": keras.__version__, "tensorflow": tf.__version__,
                         "backend": keras.backend.backend(),
                         # the kernels TensorFlow runs with (3.2x apart on an AVX2 CPU, bench_kernels.py)
                         "onednn": onednn_enabled()},
            "settings": {"batch_size": args.batch, "warmup_steps": args.warmup, "min_timed_steps": args.steps,
                         "min_timed_s": args.min_time, "optimizer": "Adam(1e-3)",
                         "loss": "the model's recipe loss (mse; nll for krippendorf2023)",
                         "data": "random (Poisson(1) counts, uniform z), one batch reused",
                         "epoch_extrapolation": f"epoch_s = {TRAIN_IMAGES} training images / (images per s)",
                         "quick": args.quick},
            "tolerance_rel": TOLERANCE,
            "params_outside_tolerance": failures,
            "complete": complete,
            "total_s": time.perf_counter() - t_all,
            "rows": rows,
        }

    for name in names:
        s = tuple(models.get_spec(name).default_input_shape) if name in ("basic", "krippendorf2023") else shape
        if name == "basic":
            s = (s[0], s[1], shape[2])
        print(f"[bench_models] {name} {s} ...", file=sys.stderr, flush=True)
        rows.append(bench_one(name, s, batch=args.batch, warmup=args.warmup, steps=args.steps,
                              min_time=args.min_time, max_steps=args.max_steps))
        atomic_write_json(args.out, result(complete=False))   # keep what is measured so far
    final = result(complete=True)
    total_s = final["total_s"]
    failures = final["params_outside_tolerance"]
    atomic_write_json(args.out, final)

    print(format_rows(rows))
    print()
    print(f"epoch [s]: measured step time extrapolated to {TRAIN_IMAGES} images at batch {args.batch} "
          f"(TensorFlow CPU, {os.cpu_count()} cores, oneDNN {onednn_enabled()}, load {load_before} -> {_loadavg()}); "
          "thesis GPU [s]: thesis Table 3.")
    for r in rows:
        if r["note"]:
            print(f"* {r['display_name']}: {r['note']}.")
    print(f"total {total_s:.0f} s; wrote {args.out}")
    if failures:
        print("FAIL: trainable parameters differ from thesis Table 3 by more than "
              f"{TOLERANCE:.1%}: {', '.join(failures)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
