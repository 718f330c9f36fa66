"""Kill harness: ``kill -9`` a training run at random instants, rerun it, compare with an uninterrupted run.

Each trial starts ``cmlib train`` (basic CNN, a small random data file, early
stopping so that the best and the last epoch differ, checkpoints every epoch),
kills it with SIGKILL at a sampled instant, then gives the same command again
and compares the result with an uninterrupted reference run: ``predictions.csv``
and ``metrics.json`` byte for byte, and the loss history.  Half of the kills
come at a random instant of the whole run (uniform over 15-95 % of the reference
run's duration); the other half wait until the last epoch has begun and kill
within the next 0-2.5 s: the final epoch, the final checkpoint, the predictions,
the model files, the status commit and the clean-up, the window where results
were lost before.  A process that finished before its kill does not count as a
trial; trials go on until ``--trials`` kills have happened.  Trials alternate
between keeping the model files and not.

A second part starts the same command twice at once, several times: exactly
one process may train; the other must be refused (exit 2) or, if it came late,
reuse the finished run.

    python benchmarks/kill_harness.py [--trials 24] [--concurrent 6] [--out benchmarks/results/kill_harness.json]

Prints the tally and writes it as JSON.  Exit status 1 if any trial failed.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))


def cmd(data: Path, runs: Path, keep: bool) -> list[str]:
    c = [sys.executable, "-m", "cmlib.cli", "train", "--model", "basic", "--data", str(data), "--epochs", "6",
         "--lr", "3e-3", "--early-stopping", "20", "--runs-dir", str(runs), "--quiet", "--checkpoint-interval", "0"]
    return c + ([] if keep else ["--no-model-files"])


def run_dir(runs: Path) -> Path | None:
    found = list(runs.glob("basic/*/seed-00"))
    return found[0] if found else None


def _has_final_checkpoint(d: Path) -> bool:
    for c in (d / "checkpoints").glob("epoch-*"):
        try:
            if json.loads((c / "state.json").read_text()).get("finished"):
                return True
        except (OSError, ValueError):
            continue
    return False


def result(d: Path) -> dict:
    import csv

    with open(d / "history.csv") as fh:
        hist = [(r["loss"], r["val_loss"]) for r in csv.DictReader(fh)]
    return {"predictions": (d / "predictions.csv").read_bytes(), "metrics": (d / "metrics.json").read_bytes(),
            "history": hist, "status": json.loads((d / "status.json").read_text())["status"],
            "checkpoints_left": (d / "checkpoints").exists(),
            "model_files": sorted(p.name for p in d.glob("*.keras"))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=24)
    ap.add_argument("--concurrent", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(HERE / "results" / "kill_harness.json"))
    args = ap.parse_args()
    from conftest import write_tiny_file

    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="cmlib-kill-"))
    try:
        data = write_tiny_file(work / "d.h5", n=200)
        refs, durations = {}, {}
        for keep in (True, False):
            t = time.time()
            subprocess.run(cmd(data, work / f"ref-{keep}", keep), check=True, capture_output=True)
            durations[keep] = time.time() - t
            refs[keep] = result(run_dir(work / f"ref-{keep}"))
        tally = {"trials": 0, "identical": 0, "failures": [], "killed_before_training": 0,
                 "killed_while_training": 0, "killed_while_finishing": 0, "finished_before_kill": 0}
        i = attempts = 0
        while tally["trials"] < args.trials and attempts < 3 * args.trials:
            attempts += 1
            keep = i % 2 == 0
            runs = work / f"t{attempts}"
            total = durations[keep]
            final_window = i % 2 == 1 if args.trials > 1 else False
            p = subprocess.Popen(cmd(data, runs, keep), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            t0 = time.time()
            if final_window:           # wait for the last epoch to begin, then kill within 0-2.5 s
                delay = rng.uniform(0.0, 2.5)
                while p.poll() is None and time.time() - t0 < 300:
                    d = run_dir(runs)
                    h = d / "history.csv" if d is not None else None
                    if h is not None and h.exists() and h.read_text().count("\n") >= 6:   # header + 5 epochs
                        break
                    time.sleep(0.01)
                t1 = time.time()
                while time.time() - t1 < delay and p.poll() is None:
                    time.sleep(0.005)
                at = time.time() - t0
            else:
                at = rng.uniform(0.15 * total, 0.95 * total)
                while time.time() - t0 < at and p.poll() is None:
                    time.sleep(0.005)
            if p.poll() is not None:
                p.communicate()
                tally["finished_before_kill"] += 1
                print(f"attempt {attempts:>2}: finished before the kill at {at:5.2f} s (not a trial)", flush=True)
                continue
            d = run_dir(runs)
            st: dict = {}
            if d is not None and (d / "status.json").exists():
                try:
                    st = json.loads((d / "status.json").read_text())
                except ValueError:
                    st = {}
            finishing = d is not None and _has_final_checkpoint(d)
            p.kill()
            p.wait()
            phase = ("killed_before_training" if not st else
                     "killed_while_finishing" if finishing or st.get("epochs_completed", 0) >= 6
                     else "killed_while_training")
            tally[phase] += 1
            rerun = subprocess.run(cmd(data, runs, keep), capture_output=True, text=True)
            tally["trials"] += 1
            problem = ""
            if rerun.returncode != 0:
                problem = f"rerun exit {rerun.returncode}: {rerun.stderr.strip()[-300:]}"
            else:
                got = result(run_dir(runs))
                diff = [k for k in ("predictions", "metrics", "history", "status") if got[k] != refs[keep][k]]
                if got["checkpoints_left"]:
                    diff.append("checkpoints left")
                if got["model_files"] != refs[keep]["model_files"]:
                    diff.append("model files")
                problem = ", ".join(diff)
            if problem:
                tally["failures"].append({"trial": i, "kill_at_s": round(at, 3), "phase": phase, "problem": problem})
            else:
                tally["identical"] += 1
            print(f"trial {i:>2}: kill at {at:5.2f} s ({'final window' if final_window else 'random instant'}, "
                  f"{phase}), model files {keep}: {'identical' if not problem else 'FAILED: ' + problem}", flush=True)
            i += 1
        conc = {"trials": 0, "exactly_one_trained": 0, "failures": []}
        for i in range(args.concurrent):
            runs = work / f"c{i}"
            ps = [subprocess.Popen(cmd(data, runs, False), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                  for _ in range(2)]
            outs = [(p.wait(), *p.communicate()) for p in ps]
            codes = sorted(o[0] for o in outs)
            refused = sum("another process is training" in o[2] for o in outs)
            reused = sum("(reused)" in o[1] for o in outs)
            ok = codes in ([0, 2], [0, 0]) and (refused == 1 or reused == 1)
            ok = ok and result(run_dir(runs))["predictions"] == refs[False]["predictions"]
            conc["trials"] += 1
            conc["exactly_one_trained"] += ok
            if not ok:
                conc["failures"].append({"trial": i, "exit_codes": codes, "refused": refused, "reused": reused})
            print(f"concurrent {i}: exit codes {codes}, refused {refused}, reused {reused}: {'ok' if ok else 'FAILED'}",
                  flush=True)
        out = {"kill": tally, "concurrent": conc, "reference_run_s": durations,
               "load_average": os.getloadavg(), "cpu_count": os.cpu_count()}
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(out, indent=2, default=str) + "\n")
        print(json.dumps({k: v for k, v in tally.items() if k != "failures"}), f"failures: {len(tally['failures'])}")
        print(f"concurrent starts: {conc['exactly_one_trained']}/{conc['trials']} with exactly one trainer")
        return 0 if not tally["failures"] and not conc["failures"] else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
