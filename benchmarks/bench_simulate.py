"""Speed and memory of the mock generator (cmlib.simulate).

Targets (task spec): 7946 clusters in <= 20 s on 2 cores; 100 000 clusters in
<= 5 min with a peak memory <= 2 GB.  Each case runs ``simulate_to_file`` in
a fresh Python process (so the one-off grid set-up - mass function, spectral
conversion grid - is included, as for a user), writing to a temporary
directory that is deleted afterwards.  Measured per case:

* wall time of ``simulate_to_file`` (import time excluded, reported apart);
* CPU time (user + sys) of the process and of its render worker;
* peak RSS (``ru_maxrss``) of the process and of its largest child; their sum
  bounds the memory in use at any moment;
* the load average before and after (other processes share the 2 cores: the
  wall times are only meaningful together with it).

A CPU-time breakdown of one 1024-cluster chunk (render vs HDF5 write)
and of the one-off set-up is measured in this process.

Usage::

    python benchmarks/bench_simulate.py            # 7946 (two ways) and 100 000: ~6-10 min
    python benchmarks/bench_simulate.py --quick    # only the 7946 case

Results are printed as a table and written to ``benchmarks/results/simulate.json``.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cmlib import __version__  # noqa: E402
from cmlib._io import atomic_write_json  # noqa: E402

TARGETS = {7946: {"wall_s": 20.0}, 100_000: {"wall_s": 300.0, "peak_rss_mb": 2048.0}}

_CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from cmlib import simulate
t_import = time.perf_counter() - t0
path, n, workers = sys.argv[1], int(sys.argv[2]), sys.argv[3]
workers = None if workers == "auto" else int(workers)
t1 = time.perf_counter()
simulate.simulate_to_file(path, n, seed=0, progress=False, workers=workers)
wall = time.perf_counter() - t1
me = resource.getrusage(resource.RUSAGE_SELF)
ch = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"wall_s": wall, "import_s": t_import,
                  "cpu_self_s": me.ru_utime + me.ru_stime, "cpu_children_s": ch.ru_utime + ch.ru_stime,
                  "peak_rss_self_mb": me.ru_maxrss / 1024.0, "peak_rss_children_mb": ch.ru_maxrss / 1024.0}))
"""


def _loadavg() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def run_case(n: int, workers: str = "auto") -> dict:
    with tempfile.TemporaryDirectory(prefix="cmlib-bench-") as tmp:
        out = Path(tmp) / "mock.h5"
        load0 = _loadavg()
        proc = subprocess.run([sys.executable, "-c", _CHILD, str(out), str(n), workers], cwd=ROOT,
                              capture_output=True, text=True, check=False)
        load1 = _loadavg()
        if proc.returncode != 0:
            raise RuntimeError(f"simulate_to_file failed for n={n}:\n{proc.stderr}")
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        res["file_mb"] = out.stat().st_size / 1e6
    res.update(n=n, workers=workers, loadavg_before=load0, loadavg_after=load1,
               peak_rss_sum_mb=res["peak_rss_self_mb"] + res["peak_rss_children_mb"],
               clusters_per_s=n / res["wall_s"])
    target = TARGETS.get(n, {})
    res["target_wall_s"] = target.get("wall_s")
    res["meets_wall_target"] = None if "wall_s" not in target else res["wall_s"] <= target["wall_s"]
    if "peak_rss_mb" in target:
        res["target_peak_rss_mb"] = target["peak_rss_mb"]
        res["meets_memory_target"] = res["peak_rss_sum_mb"] <= target["peak_rss_mb"]
    return res


def breakdown() -> dict:
    """CPU seconds of the one-off set-up, the population, and one 1024-cluster chunk."""
    import h5py

    from cmlib import instrument, physics
    from cmlib import simulate as S
    from cmlib.simulate import population as P
    from cmlib.schema import IMAGE_STORAGE

    cpu = time.process_time
    out = {}
    t = cpu()
    instrument.ThermalConversion()
    out["conversion_grid_cpu_s"] = cpu() - t
    t = cpu()
    P._halo_grid.__wrapped__(13.0, 15.0, 0.01, 1.5, 140.0)
    out["halo_grid_cpu_s"] = cpu() - t
    S.draw_population(16, 0)                      # builds the remaining caches
    t = cpu()
    pop = S.draw_population(7946, 0)
    out["population_7946_cpu_s"] = cpu() - t
    out["candidate_haloes_7946"] = pop["_meta"]["candidates_drawn"]
    t = cpu()
    img, _ = S.render_images(pop, 0, 1024, 0)
    out["render_1024_cpu_s"] = cpu() - t
    with tempfile.TemporaryDirectory() as tmp, h5py.File(Path(tmp) / "x.h5", "w") as f:
        d = f.create_dataset("images", shape=img.shape, dtype="f4", **IMAGE_STORAGE)
        t = cpu()
        d[:] = img
        f.flush()
        out["write_1024_cpu_s"] = cpu() - t
        out["storage_ratio"] = d.id.get_storage_size() / img.nbytes
    out["physics_check_theta500_1e14_z0.3_arcmin"] = float(physics.theta500_arcmin(1e14, 0.3))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="only the 7946-cluster case")
    args = ap.parse_args(argv)
    cases = [run_case(7946)]
    if not args.quick:
        cases.append(run_case(7946, workers="0"))
        cases.append(run_case(100_000))
    br = breakdown()
    print(f"{'N':>7} {'workers':>7} {'wall s':>8} {'target':>7} {'cpu main':>9} {'cpu wrk':>8} "
          f"{'RSS main MB':>12} {'RSS wrk MB':>11} {'file MB':>8} {'load before/after':>18}")
    for c in cases:
        lb = "/".join(f"{v:.1f}" for v in (c["loadavg_before"] or [0])[:1] + (c["loadavg_after"] or [0])[:1])
        print(f"{c['n']:>7} {c['workers']:>7} {c['wall_s']:>8.1f} {c['target_wall_s'] or '':>7} "
              f"{c['cpu_self_s']:>9.1f} {c['cpu_children_s']:>8.1f} {c['peak_rss_self_mb']:>12.0f} "
              f"{c['peak_rss_children_mb']:>11.0f} {c['file_mb']:>8.0f} {lb:>18}")
    print("\nCPU breakdown (this process):")
    for k, v in br.items():
        print(f"  {k:<42} {v:.3g}")
    result = {
        "benchmark": "simulate",
        "cmlib_version": __version__,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cpu_count": os.cpu_count()},
        "note": "wall times depend on the load from other processes sharing the cores (see loadavg)",
        "cases": cases,
        "breakdown_cpu_s": br,
        "quick": bool(args.quick),
    }
    out = ROOT / "benchmarks" / "results" / "simulate.json"
    atomic_write_json(out, result)
    print(f"\nwrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
