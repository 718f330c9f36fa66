"""The data pipeline is never the bottleneck: load speed, training input throughput, importer memory.

Three measurements, printed as tables and written to
``benchmarks/results/pipeline.json``:

1. **Loading** a 7946-cluster data file (written here with random Poisson
   images in the cmlib schema, not with the simulator): ``load`` with the
   thesis's 3 bands and with all 10, ``describe``, each streaming and
   validating every image in blocks of 512 clusters.  Random images compress
   differently from simulated ones, so the times are indicative.
2. **Training input throughput**.  The cheapest model (the thesis's basic
   CNN, ``cmlib.models.build("basic", ...)``, or an inline copy if the model
   zoo is not importable) is trained with Adam / MSE, batch 32, on ~7000
   synthetic clusters, one ``fit`` per epoch, with the feeding modes
   interleaved round by round (so that load from other processes hits every
   mode alike):

   * TensorFlow backend -- ``reference tf.data``: the epoch's augmented
     arrays pre-built in memory, ``from_tensor_slices -> cache -> batch ->
     prefetch``, built once; ``reference numpy``: ``fit`` on the same arrays;
     ``cmlib tf.data``: ``make_train_input(..., backend="tf")``, built anew
     every epoch from that epoch's plan, augmented on the fly;
     ``cmlib PyDataset``: the backend-neutral path on this backend (for
     information: ``backend="auto"`` picks tf.data here);
   * JAX backend (a subprocess) -- ``reference numpy`` vs ``cmlib PyDataset``,
     the path that ``backend="auto"`` picks there.

   Steps per second = batches per epoch / time per epoch, median over the
   timed rounds (after one warm-up epoch per mode), compared with the faster
   reference.  The pass criterion is the issue's: **training steps per
   second (wall clock)** of the basic CNN with its thesis recipe (50 x 50 x 3,
   random flips), >= 95 % of the faster in-memory reference, for the path
   ``backend="auto"`` picks on each backend.  Run it on an otherwise idle
   machine: on a shared 2-core machine the wall time of an epoch swings by
   +-30 % with other users' load.  The process CPU time (all threads) is
   reported beside it, and the padded 71 x 71 flip-rot90 configuration and
   the input pipelines alone (iterated without a model) for information.
3. **Importer peak memory**: ``import_lmu`` of a synthetic float64 pickle in
   a fresh process; growth of the peak RSS (``VmHWM``) over the RSS before
   the import, relative to the pickle size (target: about 1x, i.e. no second
   or third copy of the images).

Usage::

    python benchmarks/bench_pipeline.py            # ~8 min on 2 shared cores
    python benchmarks/bench_pipeline.py --quick    # fewer clusters and rounds (a smoke run)
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import pickle
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cmlib import __version__, schema  # noqa: E402
from cmlib import data as D  # noqa: E402
from cmlib._io import atomic_write_json  # noqa: E402

TARGET = 0.95


def _loadavg() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def _random_clusters(n: int, seed: int = 0):
    """Labels and Poisson images whose counts grow with mass (a cluster in the middle)."""
    rng = np.random.default_rng(seed)
    log_m = rng.uniform(13.0, 15.0, n)
    z = rng.uniform(0.05, 1.2, n)
    yy, xx = np.mgrid[:50, :50]
    core = np.exp(-((yy - 24.5) ** 2 + (xx - 24.5) ** 2) / (2 * 4.0 ** 2))
    shape = np.linspace(1.0, 0.2, schema.N_BANDS)

    def images(sl: slice) -> np.ndarray:
        amp = 10 ** (log_m[sl] - 14.0) / (1 + z[sl]) ** 2
        lam = 0.05 + core[None, :, :, None] * amp[:, None, None, None] * shape
        return rng.poisson(lam).astype(np.float32)

    return log_m, z, images


def write_file(path: Path, n: int) -> Path:
    log_m, z, images = _random_clusters(n)
    ids = np.arange(n, dtype=np.int64)
    cols = {"M500c": ("f8", "Msun", "true M500c")}
    with schema.DataFileWriter(path, n, source="bench-pipeline", catalog_columns=cols, overwrite=True) as w:
        for s in range(0, n, 512):
            sl = slice(s, min(n, s + 512))
            w.write(images=images(sl), log_m500=log_m[sl], z=z[sl], cluster_id=ids[sl],
                    catalog={"M500c": 10 ** log_m[sl]})
    return path


# --------------------------------------------------------------------------- 1. loading

def bench_load(n: int, workdir: Path) -> list[dict]:
    path = workdir / "bench.h5"
    t = time.perf_counter()
    write_file(path, n)
    rows = [{"what": f"write {n} clusters (DataFileWriter)", "seconds": time.perf_counter() - t}]
    for label, fn in ((f"load bands='thesis' ({n} x 50x50x3)", lambda: D.load(path, bands="thesis")),
                      (f"load all bands ({n} x 50x50x10)", lambda: D.load(path)),
                      ("load bands='thesis', verify_hash=True", lambda: D.load(path, bands="thesis", verify_hash=True)),
                      ("describe (cmlib info)", lambda: D.describe(path))):
        times = []
        for _ in range(2):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        rows.append({"what": label, "seconds": min(times)})
    size = path.stat().st_size
    for r in rows:
        r["file_MB"] = size / 1e6
    return rows


# --------------------------------------------------------------------------- 2. throughput

def build_basic(input_shape):
    """cmlib.models' basic CNN, or the thesis's basic CNN inline if the model zoo is not importable."""
    try:
        from cmlib import models

        return models.build("basic", input_shape), "cmlib.models.build('basic')"
    except ImportError:
        import keras

        img = keras.Input(input_shape, name="image")
        z = keras.Input((1,), name="redshift")
        x = keras.layers.Conv2D(10, 2, padding="same", activation="relu")(img)
        x = keras.layers.AveragePooling2D(2)(x)
        x = keras.layers.Conv2D(20, 2, padding="same", activation="relu")(x)
        x = keras.layers.MaxPooling2D(2)(x)                      # (12, 12, 20) for 50 x 50
        x = keras.layers.Concatenate()([keras.layers.Flatten()(x), z])
        x = keras.layers.Dense(100, activation="relu")(x)
        x = keras.layers.Dense(100, activation="relu")(x)
        out = keras.layers.Dense(1, name="log_m500")(x)
        return keras.Model({"image": img, "redshift": z}, out), "inline basic CNN"


def _prepared(n: int, bands: str, pad: str):
    log_m, z, images = _random_clusters(n, seed=1)
    sel = list(D.parse_bands(bands))
    data = D.ClusterData(images=images(slice(0, n))[..., sel], log_m500=log_m, z=z,
                         cluster_id=np.arange(n, dtype=np.int64), catalog={}, attrs={}, bands=tuple(sel),
                         path=Path("<memory>"), content_sha256="", n_file=n)
    split = D.make_split("thesis", data, seed=0)
    return D.prepare(data, split, pad=pad, scaling="raw")


def _summary(steps: int, wall: dict, cpu: dict, references: tuple, candidates: tuple) -> dict:
    med_wall = {m: float(np.median(v)) for m, v in wall.items()}
    med_cpu = {m: float(np.median(v)) for m, v in cpu.items()}
    ref_cpu = min(med_cpu[m] for m in references)
    ref_wall = min(med_wall[m] for m in references)
    return {
        "epoch_wall_s": {m: [round(x, 4) for x in v] for m, v in wall.items()},
        "epoch_cpu_s": {m: [round(x, 4) for x in v] for m, v in cpu.items()},
        "steps_per_wall_s": {m: round(steps / v, 2) for m, v in med_wall.items()},
        "steps_per_cpu_s": {m: round(steps / v, 2) for m, v in med_cpu.items()},
        "ratio_cpu": {m: round(ref_cpu / med_cpu[m], 4) for m in candidates},
        "ratio_wall": {m: round(ref_wall / med_wall[m], 4) for m in candidates},
    }


def _reference_arrays(prep, batch_size: int, augment: str):
    plan0 = D.epoch_plan(prep.train.n, seed=0, epoch=0, augment=augment)
    batches = D.ArrayBatches(prep.train, batch_size, plan0)
    x_img = np.concatenate([b[0]["image"] for b in batches])
    x_z = np.concatenate([b[0]["redshift"] for b in batches])
    y = np.concatenate([b[1] for b in batches])
    return x_img, x_z, y


def _interleave(modes: dict, rounds: int) -> tuple[dict, dict]:
    wall: dict = {m: [] for m in modes}
    cpu: dict = {m: [] for m in modes}
    names = list(modes)
    for r in range(rounds + 1):                     # round 0: warm-up (traces, caches, stores)
        for name in (names if r % 2 else names[::-1]):
            c, t = time.process_time(), time.perf_counter()
            modes[name]()
            if r:
                wall[name].append(time.perf_counter() - t)
                cpu[name].append(time.process_time() - c)
    return wall, cpu


class _Bench:
    """What both backends' throughput runs share: data, the compiled basic CNN, the in-memory
    reference arrays, the numpy-reference and cmlib-pipeline epochs, and the run's configuration."""

    def __init__(self, n: int, rounds: int, batch_size: int, augment: str, bands: str, pad: str):
        from cmlib._env import import_keras

        self.keras = import_keras()
        self.n, self.rounds, self.batch_size, self.augment, self.bands, self.pad = \
            n, rounds, batch_size, augment, bands, pad
        self.prep = _prepared(n, bands, pad)
        self.model, self.model_name = build_basic(self.prep.image_shape)
        self.model.compile(optimizer=self.keras.optimizers.Adam(1e-3), loss="mse")
        self.steps = -(-self.prep.train.n // batch_size)
        self.x_img, self.x_z, self.y = _reference_arrays(self.prep, batch_size, augment)
        self._epoch: dict[str, int] = {}

    def fit_numpy_reference(self) -> None:
        self.model.fit({"image": self.x_img, "redshift": self.x_z}, self.y, batch_size=self.batch_size,
                       epochs=1, verbose=0, shuffle=False)

    def fit_cmlib(self, backend: str):
        """One epoch through ``cmlib.data.make_train_input(backend=...)``, a new epoch plan each call."""
        def run():
            self._epoch[backend] = self._epoch.get(backend, 0) + 1
            ds = D.make_train_input(self.prep, seed=0, epoch=self._epoch[backend], batch_size=self.batch_size,
                                    augment=self.augment, backend=backend)
            self.model.fit(ds, epochs=1, verbose=0, shuffle=False)
        return run

    def config(self, **extra) -> dict:
        return {"backend": self.keras.backend.backend(), "model": self.model_name, "n_clusters": self.n,
                "n_train": self.prep.train.n, "batch_size": self.batch_size, "steps_per_epoch": self.steps,
                "augment": self.augment, "bands": self.bands, "pad": self.pad,
                "input_shape": list(self.prep.image_shape), "rounds": self.rounds, **extra}


def bench_throughput(n: int, rounds: int, batch_size: int, augment: str, bands: str, pad: str) -> dict:
    """TensorFlow backend: the references, the tf.data path and (for information) the PyDataset path."""
    import tensorflow as tf

    from cmlib._env import onednn_enabled

    b = _Bench(n, rounds, batch_size, augment, bands, pad)
    prep, model = b.prep, b.model
    ref_ds = (tf.data.Dataset.from_tensor_slices(({"image": b.x_img, "redshift": b.x_z}, b.y))
              .cache().batch(batch_size).prefetch(tf.data.AUTOTUNE))
    modes = {
        "reference tf.data": lambda: model.fit(ref_ds, epochs=1, verbose=0, shuffle=False),
        "reference numpy": b.fit_numpy_reference,
        "cmlib tf.data": b.fit_cmlib("tf"),
    }
    wall, cpu = _interleave(modes, rounds)
    # the PyDataset path (for information only on TensorFlow: backend="auto" does not pick it there) is
    # timed afterwards, so that its worker thread cannot disturb the interleaved comparison
    w2, c2 = _interleave({"cmlib PyDataset": b.fit_cmlib("array")}, max(2, rounds // 2))
    wall.update(w2)
    cpu.update(c2)

    def drain(make):
        c = time.process_time()
        k = sum(1 for _ in make())
        return k / (time.process_time() - c)

    plan = D.epoch_plan(prep.train.n, seed=0, epoch=99, augment=augment)
    alone = {
        "reference tf.data": max(drain(lambda: ref_ds) for _ in range(3)),
        "cmlib tf.data": max(drain(lambda: D.tf_dataset(prep.train, batch_size, plan)) for _ in range(3)),
        "cmlib PyDataset": max(drain(lambda: iter(D.ArrayBatches(prep.train, batch_size, plan))) for _ in range(3)),
    }
    out = {"config": b.config(tensorflow=tf.__version__,
                              onednn=onednn_enabled()),
           **_summary(b.steps, wall, cpu, ("reference tf.data", "reference numpy"),
                      ("cmlib tf.data", "cmlib PyDataset")),
           "pipeline_alone_batches_per_cpu_s": {m: round(v, 1) for m, v in alone.items()}}
    out["criterion"] = ["cmlib tf.data"]            # the path backend="auto" takes on TensorFlow
    return out


def bench_throughput_jax(n: int, rounds: int, batch_size: int, augment: str, bands: str, pad: str) -> dict:
    """JAX backend (run in a subprocess with KERAS_BACKEND=jax): numpy reference vs the PyDataset path."""
    b = _Bench(n, rounds, batch_size, augment, bands, pad)
    modes = {
        "reference numpy": b.fit_numpy_reference,
        "cmlib PyDataset": b.fit_cmlib("auto"),      # backend="auto" picks the PyDataset path on JAX
    }
    wall, cpu = _interleave(modes, rounds)
    out = {"config": b.config(tensorflow_imported="tensorflow" in sys.modules),
           **_summary(b.steps, wall, cpu, ("reference numpy",), ("cmlib PyDataset",))}
    out["criterion"] = ["cmlib PyDataset"]
    return out


def _run_jax(n: int, rounds: int, batch_size: int, augment: str, bands: str, pad: str) -> dict | None:
    try:
        import jax  # noqa: F401
    except ImportError:
        return None
    args = [sys.executable, __file__, "--jax-worker", json.dumps([n, rounds, batch_size, augment, bands, pad])]
    r = subprocess.run(args, capture_output=True, text=True, env={**os.environ, "KERAS_BACKEND": "jax"})
    if r.returncode != 0:
        raise RuntimeError(f"JAX worker failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def _print_throughput(r: dict) -> None:
    cfg = r["config"]
    print(f"   [{cfg['backend']}] model {cfg['model']}, input {tuple(cfg['input_shape'])}, "
          f"{cfg['steps_per_epoch']} steps/epoch, {cfg['rounds']} timed rounds")
    print(f"   {'mode':<20} {'steps/CPU-s':>11} {'vs ref':>8} {'steps/wall-s':>13} {'vs ref':>8}")
    for mode in r["steps_per_cpu_s"]:
        rc, rw = r["ratio_cpu"].get(mode), r["ratio_wall"].get(mode)
        crit = mode in r["criterion"]
        main = r["config"]["pad"] == "none" and r["config"]["augment"] == "flip"
        judged = rw if main else None
        flag = "" if rc is None else ("  ok" if judged >= TARGET else "  < 95 %") if (crit and main) else "  (info)"
        print(f"   {mode:<20} {r['steps_per_cpu_s'][mode]:11.1f} "
              f"{'' if rc is None else f'{rc * 100:7.1f}%':>8} {r['steps_per_wall_s'][mode]:13.1f} "
              f"{'' if rw is None else f'{rw * 100:7.1f}%':>8}{flag}")
    for mode, v in r.get("pipeline_alone_batches_per_cpu_s", {}).items():
        print(f"   {mode} alone (no model): {v:.0f} batches per CPU-second")


# --------------------------------------------------------------------------- 3. importer memory

_IMPORT_SCRIPT = """
import json, sys, time
import numpy as np, h5py, pandas, pyarrow.feather  # libraries load before the baseline
from cmlib import lmu
def status(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key + ":"))
base = status("VmRSS")
t = time.perf_counter()
lmu.import_lmu(sys.argv[1], sys.argv[2], sys.argv[3], trust_pickle=True, progress=False, overwrite=True)
print(json.dumps({"base": base, "peak": status("VmHWM"), "seconds": time.perf_counter() - t}))
"""


def bench_import(n: int, workdir: Path) -> dict:
    import pyarrow as pa
    import pyarrow.feather as feather

    rng = np.random.default_rng(3)
    images = [rng.poisson(0.3, (50, 50, 10)).astype(np.float64) for _ in range(n)]   # float, as the lab's
    pkl = workdir / "lmu.pickle"
    with open(pkl, "wb") as fh:
        pickle.dump({"gsm_3dImgs": images, "cluster": list(range(n))}, fh, protocol=pickle.HIGHEST_PROTOCOL)
    del images
    cat = workdir / "lmu.f"
    feather.write_feather(pa.table({"M500c": 10 ** rng.uniform(13.2, 14.8, n), "z": rng.uniform(0.05, 1.2, n),
                                    "kT": rng.uniform(1, 8, n)}), cat)
    r = subprocess.run([sys.executable, "-c", _IMPORT_SCRIPT, str(pkl), str(cat), str(workdir / "lmu.h5")],
                       capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if r.returncode != 0:
        raise RuntimeError(r.stderr[-2000:])
    m = json.loads(r.stdout.strip().splitlines()[-1])
    size = pkl.stat().st_size
    growth = m["peak"] - m["base"]
    return {"n_clusters": n, "pickle_MB": round(size / 1e6, 1), "rss_before_MB": round(m["base"] / 1e6, 1),
            "peak_rss_MB": round(m["peak"] / 1e6, 1), "peak_growth_MB": round(growth / 1e6, 1),
            "growth_over_pickle": round(growth / size, 3), "seconds": round(m["seconds"], 2),
            "extrapolated_7946_s": round(m["seconds"] * 7946 / n, 1)}


# --------------------------------------------------------------------------- main

def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer clusters and rounds (a smoke run)")
    p.add_argument("--n", type=int, default=None, help="clusters for the throughput runs (default 7000)")
    p.add_argument("--rounds", type=int, default=None, help="timed epochs per mode (default 8)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "pipeline.json"))
    p.add_argument("--jax-worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.jax_worker:
        print(json.dumps(bench_throughput_jax(*json.loads(args.jax_worker))))
        return 0
    n = args.n or (1500 if args.quick else 7000)
    rounds = args.rounds or (2 if args.quick else 12)
    n_load = 2000 if args.quick else 7946
    n_import = 300 if args.quick else 1000
    load_before = _loadavg()
    result: dict = {"created": _dt.datetime.now().isoformat(timespec="seconds"), "cmlib": __version__,
                    "python": platform.python_version(), "machine": platform.machine(),
                    "cpu_count": os.cpu_count(), "quick": bool(args.quick), "target_ratio": TARGET,
                    "criterion": "training steps per second (wall clock, median over interleaved rounds) of the "
                                 "basic CNN with its thesis recipe (50x50x3, random flips) through the path "
                                 "backend='auto' picks, vs the faster of two pre-built in-memory references on "
                                 "the same backend; the padded flip-rot90 configuration is reported for information"}
    with tempfile.TemporaryDirectory(prefix="cmlib-bench-") as tmp:
        work = Path(tmp)
        print(f"1. loading a {n_load}-cluster file ...", flush=True)
        result["load"] = bench_load(n_load, work)
        print(f"{'what':<45} {'seconds':>8}")
        for r in result["load"]:
            print(f"{r['what']:<45} {r['seconds']:8.2f}")
        print(f"   (file {result['load'][0]['file_MB']:.0f} MB on disk)\n")

        configs = [("thesis", "none", "flip")]                      # the basic CNN's thesis recipe
        if not args.quick:
            configs.append(("thesis", "thesis", "flip-rot90"))      # padded 71 x 71, all 8 symmetries
        result["throughput"] = []
        for bands, pad, augment in configs:
            print(f"2. training throughput: basic CNN, bands={bands}, pad={pad}, augment={augment}, "
                  f"{n} clusters ...", flush=True)
            r = bench_throughput(n, rounds, 32, augment, bands, pad)
            result["throughput"].append(r)
            _print_throughput(r)
            rj = _run_jax(n, rounds, 32, augment, bands, pad)
            if rj is not None:
                result["throughput"].append(rj)
                _print_throughput(rj)
                print(f"   (JAX run imported TensorFlow: {rj['config']['tensorflow_imported']})")
            print()

        print(f"3. importer peak memory ({n_import} clusters, float64 pickle) ...", flush=True)
        result["import"] = bench_import(n_import, work)
        imp = result["import"]
        print(f"   pickle {imp['pickle_MB']} MB; RSS before {imp['rss_before_MB']} MB, peak {imp['peak_rss_MB']} MB: "
              f"growth {imp['peak_growth_MB']} MB = {imp['growth_over_pickle']:.2f} x the pickle; "
              f"{imp['seconds']} s ({imp['extrapolated_7946_s']} s extrapolated to 7946 clusters)")
    result["loadavg_before"] = load_before
    result["loadavg_after"] = _loadavg()
    main_runs = [r for r in result["throughput"] if r["config"]["pad"] == "none" and r["config"]["augment"] == "flip"]
    result["pass"] = all(r["ratio_wall"][m] >= TARGET for r in main_runs for m in r["criterion"])
    out = Path(args.out)
    atomic_write_json(out, result)
    print(f"\nload average before/after: {load_before} / {result['loadavg_after']} "
          f"(2 shared cores: wall times are noisy, CPU times less so)")
    print(f"{'PASS' if result['pass'] else 'FAIL'}: (thesis recipe, wall clock) the input path each backend uses runs at >= {TARGET:.0%} of the "
          f"in-memory reference; wrote {out}")
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
