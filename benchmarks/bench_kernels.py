"""CPU kernels for deep-model training: TensorFlow's oneDNN kernels and XLA, on and off, in one run.

TensorFlow switches its oneDNN kernels on by itself only on CPUs with
AVX512_VNNI, AVX512_BF16 or AMX; on an AVX2-only CPU they stay off unless
``TF_ENABLE_ONEDNN_OPTS=1`` (which ``cmlib._env`` now sets).  Keras leaves XLA
(``jit_compile``) off on a CPU.  This script measures what both choices cost:
the time of one training step of a deep model (the fair-protocol input,
50 x 50 x 3 with the redshift, batch 32, float32, AdamW, MSE) in three variants

* ``eigen``: oneDNN off, no XLA (TensorFlow's default on an AVX2 CPU),
* ``onednn``: oneDNN on, no XLA (cmlib's default),
* ``onednn+xla``: oneDNN on, ``jit_compile=True``.

Each variant runs in its own process (the oneDNN switch is read once, at
TensorFlow's import), after two untimed steps (tracing); the variants alternate
in order round by round (A B C, C B A, ...) so that the drifts of a shared
machine hit all alike, and the load average is recorded with every
measurement.  Results: a table on stdout and ``benchmarks/results/kernels.json``.

    python benchmarks/bench_kernels.py                      # ResNet50, 3 rounds of 8 steps (about 10 min on 2 cores)
    python benchmarks/bench_kernels.py --models resnet50,vgg16 --rounds 2 --steps 5
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
VARIANTS = {"eigen": ("0", False), "onednn": ("1", False), "onednn+xla": ("1", True)}


def _child(model_name: str, steps: int, jit: bool) -> dict:
    sys.path.insert(0, str(ROOT))
    from cmlib._env import import_keras, onednn_enabled

    keras = import_keras()
    import numpy as np

    from cmlib import models as Mz

    rng = np.random.default_rng(0)
    x = {"image": rng.normal(size=(32, 50, 50, 3)).astype("float32"),
         "redshift": rng.uniform(0.0, 1.2, size=(32, 1)).astype("float32")}
    y = rng.normal(size=(32, 1)).astype("float32")
    model = Mz.build(model_name, (50, 50, 3), head="flatten", output="point", weights=None, adapter=False,
                     dropout=0.0, dense_units=512, seed=0)
    model.compile(optimizer=keras.optimizers.AdamW(1e-3, weight_decay=0.01), loss="mse", jit_compile=jit)
    t0 = time.perf_counter()
    model.train_on_batch(x, y)
    model.train_on_batch(x, y)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    return {"s_per_step": (time.perf_counter() - t0) / steps, "first_two_steps_s": first,
            "onednn": onednn_enabled(), "jit_compile": jit}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="resnet50")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "kernels.json"))
    ap.add_argument("--child", nargs=3, metavar=("MODEL", "STEPS", "JIT"), help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        print(json.dumps(_child(a.child[0], int(a.child[1]), a.child[2] == "1")))
        return 0
    sys.path.insert(0, str(ROOT))
    from cmlib import __version__, hardware
    from cmlib._io import atomic_write_json

    rows = []
    names = list(VARIANTS)
    for model_name in a.models.split(","):
        for rnd in range(a.rounds):
            for name in (names if rnd % 2 == 0 else names[::-1]):
                onednn, jit = VARIANTS[name]
                env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS=onednn)
                cmd = [sys.executable, __file__, "--child", model_name, str(a.steps), "1" if jit else "0"]
                out = subprocess.run(cmd, capture_output=True, text=True, env=env)
                if out.returncode != 0:
                    print(out.stderr[-2000:], file=sys.stderr)
                    return 1
                row = dict(json.loads(out.stdout.strip().splitlines()[-1]), model=model_name, variant=name,
                           round=rnd, loadavg=os.getloadavg()[0])
                if row["onednn"] != (onednn == "1"):
                    print(f"error: variant {name} ran with oneDNN={row['onednn']}", file=sys.stderr)
                    return 1
                rows.append(row)
                print(f"{model_name:10s} round {rnd}  {name:11s} {row['s_per_step']:6.2f} s/step  "
                      f"(load {row['loadavg']:.1f})", flush=True)
    summary = {}
    for model_name in a.models.split(","):
        med = {}
        for name in names:
            ts = sorted(r["s_per_step"] for r in rows if r["model"] == model_name and r["variant"] == name)
            med[name] = ts[len(ts) // 2]
        summary[model_name] = {"median_s_per_step": med,
                               "eigen_over_onednn": med["eigen"] / med["onednn"],
                               "xla_over_onednn": med["onednn+xla"] / med["onednn"]}
        print(f"{model_name}: oneDNN off takes {summary[model_name]['eigen_over_onednn']:.2f}x as long as on; "
              f"XLA on top takes {summary[model_name]['xla_over_onednn']:.2f}x as long")
    atomic_write_json(a.out, {
        "benchmark": "bench_kernels", "cmlib_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "settings": {"steps": a.steps, "rounds": a.rounds, "batch": 32, "input": "50x50x3 + redshift",
                     "precision": "float32"},
        "machine": dict(hardware.describe(), cpu_flags_avx512=sorted(f for f in hardware.cpu_flags()
                                                                    if f.startswith("avx512"))),
        "rows": rows, "summary": summary})
    return 0


if __name__ == "__main__":
    sys.exit(main())
