"""Hand-ins for a class: one command summarises a student's runs, one notebook collects a class table.

``cmlib hand-in --student ada`` writes ``hand-in-ada.json`` (or ``.csv``): one row per finished
run under ``runs/`` with what defines it (model, options, data file and its content hash), how
it went (status, epochs, best epoch, time, hardware) and its test metrics, including whether
it learned (:func:`cmlib.metrics.learning_verdict`).  The teacher's notebook
(``notebooks/class_table.ipynb``) reads a folder of such files with :func:`collect` and
:func:`class_table`.  Reads runs only; never trains.
"""
from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Iterable, Sequence

from .. import metrics as M
from .._io import atomic_write_text
from ..errors import InputError
from . import runs as R
from .profiles import display_name

#: Options that define what a student ran (beside the model), in the order a table shows them.
OPTION_COLUMNS = ("loss", "lr", "lr_schedule", "batch_size", "early_stopping", "split", "bands", "pad",
                  "scaling", "augment", "output_bias", "max_clusters", "epochs")
METRIC_COLUMNS = ("sigma", "mu", "std", "nmad", "outlier_frac")
FORMAT_VERSION = 1
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def run_row(run) -> dict:
    """The hand-in row of one finished run."""
    cfg, st, met = run.config, run.status_info, run.metrics
    p = run.predictions
    v = M.judge_learning(p["train"], p["test"])
    row = {"model": run.model, "model_name": display_name(run.model), "seed": run.seed, "group": run.group,
           "status": run.status, "epochs_completed": st.get("epochs_completed"), "best_epoch": st.get("best_epoch"),
           "wall_time_s": round(float(st.get("wall_time_s", float("nan"))), 1),
           "data_file": Path(cfg.get("data", "")).name, "data_sha256": str(cfg.get("data_sha256", ""))[:12],
           "n_clusters": cfg.get("n_clusters"), "hardware": run.env.get("machine", {}).get("summary", "unknown")}
    for k in OPTION_COLUMNS:
        val = cfg.get(k, "zero" if k == "output_bias" else None)
        row[k] = ",".join(str(b + 1) for b in val) if k == "bands" and isinstance(val, list) else val
    for k in METRIC_COLUMNS:
        row[f"test_{k}"] = met.get("test", {}).get(k)
    row["mean_predictor_std"] = v["reference_std"]
    row["learned"] = bool(v["learned"])
    row["verdict"] = "learned" if v["learned"] else f"did not learn: {v['reason']}"
    return row


def summarize(root: str | Path = ".", runs_dir: str = R.TRAINED_RUNS_DIR, *, model: str | None = None) -> list[dict]:
    """Hand-in rows of every finished run under ``root/runs_dir`` (optionally one model's)."""
    rows = []
    for r in R.all_runs(Path(root), runs_dir, model=model):
        if r.predictions and "test" in r.predictions and "train" in r.predictions:
            rows.append(run_row(r))
    return rows


def hand_in(student: str, *, root: str | Path = ".", out: str | Path | None = None,
            runs_dir: str = R.TRAINED_RUNS_DIR, model: str | None = None, profile: str | None = None) -> Path:
    """Write a student's hand-in (JSON, or CSV if ``out`` ends in ``.csv``) and return its path."""
    if not isinstance(student, str) or not _NAME.match(student):
        raise InputError(f"student name {student!r} is not valid: use letters, digits, '_', '.' or '-' "
                         "(up to 64 characters), e.g. --student ada_lovelace")
    root = Path(root)
    rows = summarize(root, runs_dir, model=model)
    if not rows:
        raise InputError(f"no finished runs under {root / runs_dir}"
                         + (f" for model '{model}'" if model else "")
                         + "; train one first, e.g. `cmlib train --model basic --data data/classroom.h5 "
                           "--epochs 40 --seeds 0`")
    out = Path(out) if out is not None else Path(f"hand-in-{student}.json")
    if out.is_dir():
        raise InputError(f"--out '{out}' is a folder; give a file name ending in .json or .csv")
    if out.suffix not in (".json", ".csv"):
        raise InputError(f"--out '{out}' must end in .json or .csv")
    for r in rows:
        r["student"] = student
    if out.suffix == ".csv":
        text = _csv(rows)
    else:
        text = json.dumps({"format": "cmlib-hand-in", "version": FORMAT_VERSION, "student": student,
                           "profile": profile, "runs": rows}, indent=1, default=str) + "\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, text)
    return out


def _csv(rows: Sequence[dict]) -> str:
    cols = ["student"] + [c for c in rows[0] if c != "student"]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow(r)
    return buf.getvalue()


def _read_one(path: Path) -> list[dict]:
    if path.suffix == ".csv":
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
        for r in rows:
            for k in [f"test_{m}" for m in METRIC_COLUMNS] + ["mean_predictor_std"]:
                r[k] = float(r[k]) if r.get(k) not in (None, "", "None") else None
            r["learned"] = str(r.get("learned")) == "True"
        return rows
    doc = json.loads(path.read_text())
    if doc.get("format") != "cmlib-hand-in":
        raise InputError(f"{path} is not a cmlib hand-in (made by `cmlib hand-in`)")
    return [dict(r, student=doc["student"]) for r in doc["runs"]]


def collect(sources: str | Path | Iterable[str | Path]) -> list[dict]:
    """All rows of the hand-ins in a folder (``*.json``, ``*.csv``) or a list of files; bad files are
    reported by name."""
    if isinstance(sources, (str, Path)) and Path(sources).is_dir():
        files = sorted(list(Path(sources).glob("*.json")) + list(Path(sources).glob("*.csv")))
    elif isinstance(sources, (str, Path)):
        files = [Path(sources)]
    else:
        files = [Path(s) for s in sources]
    rows = []
    for f in files:
        try:
            rows += _read_one(f)
        except (ValueError, KeyError) as exc:
            raise InputError(f"cannot read hand-in {f}: {exc}") from None
    return rows


def _norm(v) -> str:
    """An option value as text, the same from a JSON and a CSV hand-in (None and '' alike, 3 and '3.0' alike)."""
    if v in (None, "", "None"):
        return ""
    try:
        f = float(v)
        return f"{f:g}"
    except (TypeError, ValueError):
        return str(v)


def class_table(rows: Sequence[dict]) -> list[dict]:
    """One line per (model, options) across the class: how many students and runs, and the spread
    of their test results (median and range), with how many runs did not learn."""
    import numpy as np

    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        key = (r["model"],) + tuple(_norm(r.get(k)) for k in OPTION_COLUMNS)
        groups.setdefault(key, []).append(r)
    out = []
    for key, rs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1:])):
        sig = np.array([r["test_sigma"] for r in rs if r.get("test_sigma") is not None], dtype=float)
        std = np.array([r["test_std"] for r in rs if r.get("test_std") is not None], dtype=float)
        opts = ", ".join(f"{k} {r0}" for k, r0 in zip(OPTION_COLUMNS, key[1:])
                         if k in ("loss", "lr", "early_stopping", "split", "bands", "epochs"))
        out.append({"model": display_name(key[0]), "options": opts,
                    "students": len({r["student"] for r in rs}), "runs": len(rs),
                    "σ test, median [min–max]": (f"{np.median(sig):.3f} [{sig.min():.3f}–{sig.max():.3f}]"
                                                 if sig.size else "–"),
                    "std(x) test, median": f"{np.median(std):.3f}" if std.size else "–",
                    "did not learn": sum(1 for r in rs if not r.get("learned"))})
    return out
