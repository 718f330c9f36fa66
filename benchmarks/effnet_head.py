"""Why does EfficientNet-B7 predict one mass?  A step-by-step probe of its first training steps.

EfficientNet-B7's fair-protocol run (AdamW, warm-up and cosine over 30 epochs) predicts the same mass for
every cluster from its first epoch on: the spread of its predictions on the training probe is 1.5e-5 dex after
epoch 1 and exactly 0 from epoch 3, and from then on its gradients are zero or nearly so (first layer 0 to 2e-3,
output layer 0 to 1e-2, against 0.6 and 0.2 in epoch 1; ``history.csv``, issue 13).  Its
backbone has no ReLUs (swish), so the dead-ReLU column the runs record is empty.  The thesis head has one ReLU
layer, ``head_dense_1`` (Dense 512 on the Flatten of the backbone's last 2 x 2 x 2560 map, 10 240 inputs, plus
the redshift): if all its 512 units output zero for every cluster, the output is its bias, whatever the image
and the redshift, and no gradient reaches anything below it.

This script repeats the first ``--steps`` training steps of that run (its model, its seed, its batches, its
epoch-1 learning rate; a fresh model per variant) and every ``--every`` steps measures on the run's probe of
64 training clusters, in training mode (BatchNorm on the batch's statistics, as the loss sees it; the moving
statistics are restored after each measurement):

* ``head_dead``: the fraction of the head's 512 ReLU units that output 0 for all 64 clusters;
* ``head_shift``: the mean pre-activation of those units (mean over units and clusters), and
  ``head_spread``: the spread of a unit's pre-activation across the clusters (mean over units): a unit whose
  pre-activation is pushed below zero by more than its spread is dead for every cluster at once;
* ``pred_std``: the spread of the predictions [dex] across the clusters;
* ``feature_spread``: the spread of the backbone's output across the clusters relative to its total spread
  (mean over features): whether the images still reach the head.

Variants: ``fair`` (the run as stored), ``lr/10`` (the same at a tenth of the learning rate, the remedy that
kept VGG16's image path open) and ``gap`` (global average pooling instead of Flatten: 2 560 inputs, each an
average of 4 positions).  The probe says which variants keep the head alive through the steps where the run's
died; whether one then learns needs the converged run.  Summary: ``benchmarks/results/effnet_head.json``.

    python benchmarks/effnet_head.py --threads 1        # about 15 min per variant on one CPU core
    python benchmarks/effnet_head.py --variants gap     # one variant, merged into the result file
"""
from __future__ import annotations

import argparse
import datetime as _dt
import fcntl
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cmlib._io import atomic_write_json  # noqa: E402

#: variant -> (description, overrides of the fair recipe)
VARIANTS = {
    "fair": ("the fair recipe as stored (Flatten head, AdamW 1e-3 after a 3-epoch warm-up)", {}),
    "lr/10": ("the same at a tenth of the learning rate (AdamW 1e-4)", {"lr": 1e-4}),
    "gap": ("global average pooling instead of Flatten (2 560 head inputs)", {"head": "gap"}),
}
HEAD_LAYER = "head_dense_1"


def probe_step(model, inputs) -> dict:
    """The head and output measurements on one probe batch in training mode, without changing the model."""
    import numpy as np
    import keras

    from cmlib.train.diagnostics import _dead_share, state_restored   # the runs' own count and state guard

    pool = next(l for l in model.layers if l.name in ("flatten", "global_avg_pool"))
    head = model.get_layer(HEAD_LAYER)
    # pool.input: the backbone's output as this model calls it (the backbone is a nested model)
    sub = keras.Model(model.inputs, [pool.input, head.input, model.output])
    with state_restored(model):
        feats, head_in, pred = (np.asarray(a, dtype="float64") for a in sub(inputs, training=True))
    # the head's pre-activation (kernel . input + bias); its output is the ReLU of it
    pre = head_in @ np.asarray(head.kernel, dtype="float64") + np.asarray(head.bias, dtype="float64")
    dead, total = _dead_share(np.maximum(pre, 0.0))
    f = feats.reshape(len(feats), -1)
    return {"head_dead": dead / total,
            "head_shift": float(pre.mean()), "head_spread": float(pre.std(axis=0).mean()),
            "pred_std": float(pred[:, 0].std()),
            "feature_spread": float(f.std(axis=0).mean() / max(f.std(), 1e-30))}


def run_variant(name: str, data: Path, steps: int, every: int) -> dict:
    import numpy as np
    import keras

    from cmlib.book.profiles import fair_deep
    from cmlib.config import resolve_config
    from cmlib.data.pipeline import make_train_input
    from cmlib.train import engine as E
    from cmlib.train.callbacks import schedule_fn
    from cmlib.train.diagnostics import PROBE_SIZE

    desc, change = VARIANTS[name]
    cfg = resolve_config("efficientnetb7", data, epochs=30, seed=0, **dict(fair_deep("efficientnetb7"), **change))
    _, _, prep = E.prepared_data(cfg, data)
    E._deterministic(cfg.seed)
    model = E.build_model(cfg, prep)
    lr = float(schedule_fn(cfg.lr_schedule, cfg.lr, cfg.epochs, cfg.warmup_epochs)(0))
    model.optimizer.learning_rate.assign(lr)
    k = PROBE_SIZE
    inputs = {"image": np.asarray(prep.train.x_image[:k], dtype="float32"),
              "redshift": np.asarray(prep.train.x_z[:k], dtype="float32")}
    rows = [dict(step=0, **probe_step(model, inputs))]
    t0 = time.perf_counter()

    class Probe(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            s = batch + 1
            if s % every == 0 or s == steps:
                rows.append(dict(step=s, loss=float(logs["loss"]), **probe_step(self.model, inputs)))
                r = rows[-1]
                print(f"{name:>6} step {s:4d}  loss {r['loss']:.4f}  head dead {r['head_dead']:6.1%}  "
                      f"shift {r['head_shift']:+8.3f}  spread {r['head_spread']:7.3f}  pred std {r['pred_std']:.2e}  "
                      f"features {r['feature_spread']:.2f}", flush=True)

    ds = make_train_input(prep, seed=cfg.seed, epoch=0, batch_size=cfg.batch_size, augment=cfg.augment)
    model.fit(ds, epochs=1, steps_per_epoch=steps, shuffle=False, verbose=0, callbacks=[Probe()])
    dead_from = next((r["step"] for r in rows if r["head_dead"] >= 1.0), None)
    return {"variant": name, "description": desc, "lr_first_epoch": lr, "head": cfg.head, "rows": rows,
            "all_dead_from_step": dead_from, "head_dead_last": rows[-1]["head_dead"],
            "seconds": round(time.perf_counter() - t0, 1)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT / "data" / "efeds_mock.h5"))
    ap.add_argument("--steps", type=int, default=120, help="training steps per variant (batch 32)")
    ap.add_argument("--every", type=int, default=10, help="measure every N steps")
    ap.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated, of: " + ", ".join(VARIANTS))
    ap.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "effnet_head.json"))
    args = ap.parse_args(argv)
    data = Path(args.data)
    if not data.is_file():
        print(f"error: no data file {data}; make it with `make data` (or pass --data)", file=sys.stderr)
        return 2
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    bad = [v for v in names if v not in VARIANTS]
    if bad or not names:
        print(f"error: unknown variant(s) {bad or names}; choose from {', '.join(VARIANTS)}", file=sys.stderr)
        return 2
    if args.steps < 1 or args.every < 1:
        print("error: --steps and --every must be positive", file=sys.stderr)
        return 2
    out = Path(args.out)
    if len(names) > 1:
        # one process per variant: three EfficientNet-B7 models in one process held about 10 GB and were
        # killed for memory beside two training jobs; each variant's row is merged into the file as it finishes
        for v in names:
            cmd = [sys.executable, __file__, "--data", str(data), "--steps", str(args.steps), "--every",
                   str(args.every), "--variants", v, "--out", str(out)]
            if args.threads is not None:
                cmd += ["--threads", str(args.threads)]
            rc = subprocess.call(cmd)
            if rc:
                print(f"error: variant {v} failed (exit {rc}); the variants before it are in {out}", file=sys.stderr)
                return rc
        return 0
    if args.threads is not None:
        from cmlib._env import limit_threads
        limit_threads(args.threads)
    load = os.getloadavg()
    row = dict(run_variant(names[0], data, args.steps, args.every),
               date=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
               load_average_at_start=[round(v, 2) for v in load], threads=args.threads)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.with_name(out.name + ".lock"), "w") as lock:     # two probes at once: no row lost
        fcntl.flock(lock, fcntl.LOCK_EX)
        result = merge(out, row, args.steps, args.every)
        atomic_write_json(out, result)
    print(f"wrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out} "
          f"({', '.join(v['variant'] for v in result['variants'])})")
    return 0


def merge(out: Path, row: dict, steps: int, every: int) -> dict:
    """The result file with ``row`` in place of its variant's earlier row; a file of another probe (other steps)
    is started afresh."""
    import json

    old = json.loads(out.read_text()) if out.exists() else {}
    keep = [v for v in old.get("variants", []) if v["variant"] != row["variant"]] \
        if (old.get("steps"), old.get("every")) == (steps, every) else []
    order = list(VARIANTS)
    variants = sorted(keep + [row], key=lambda v: order.index(v["variant"]) if v["variant"] in order else len(order))
    return {"benchmark": "effnet_head", "model": "efficientnetb7", "steps": steps, "every": every, "batch_size": 32,
            "variants": variants,
            "note": ("the first training steps of the fair EfficientNet-B7 run (seed 0, its batches, its epoch-1 "
                     "learning rate), measured on its 64-cluster probe in training mode; each variant records its "
                     "own date and load average; a probe of the head, too short to judge learning")}


if __name__ == "__main__":
    sys.exit(main())
