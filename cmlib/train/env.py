"""The environment a run records: versions, backend, devices, hardware, precision and code version."""
from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__, hardware
from ..artifacts import STRETCH_KEYS, compute_segments


def environment(precision: str | None = None) -> dict:
    """Package versions, backend, devices, machine and code version of this process.

    ``git_commit`` is the commit of the cmlib source tree (empty outside a git
    checkout); with uncommitted changes, ``git_dirty`` is true and
    ``git_diff_sha256`` names the exact change (the hash of ``git diff HEAD``), so a
    stored run can always be traced to the code that made it.
    """
    from .._env import import_keras, onednn_enabled

    keras = import_keras()
    backend = keras.backend.backend()
    env: dict[str, Any] = {
        "cmlib_version": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "keras": keras.__version__,
        "backend": backend,
        "numpy": np.__version__,
    }
    devices: list[str] = []
    if backend == "tensorflow":
        import tensorflow as tf

        env["tensorflow"] = tf.__version__
        env["onednn"] = onednn_enabled()  # the kernels (3x apart in speed on an AVX2 CPU), see cmlib._env
        devices = [d.device_type + ":" + d.name.split(":")[-1] for d in tf.config.list_physical_devices()]
    elif backend == "jax":
        import jax

        env["jax"] = jax.__version__
        devices = [str(d) for d in jax.devices()]
    elif backend == "torch":  # pragma: no cover - torch is not installed in the project's environment
        import torch

        env["torch"] = torch.__version__
        devices = ["cpu"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    gpus = hardware.gpus()
    machine = hardware.describe()
    machine["gpus"] = len(gpus)
    machine["gpu_names"] = [g["name"] for g in gpus]
    machine["summary"] = (f"{machine['cpu_cores']} CPU cores, {machine['memory_gib']:.0f} GiB RAM, "
                          + (f"{len(gpus)} GPU(s) ({', '.join(sorted(set(machine['gpu_names'])))})" if gpus
                             else "no GPU") + f", {backend} backend")
    env["devices"] = devices
    env["machine"] = machine
    env["compute_threads"] = compute_threads(backend, machine["cpu_cores"], bool(gpus))
    if precision is not None:
        env["precision"] = precision
        env["precision_hardware"] = ("GPU bf16 units" if gpus else
                                     ", ".join(machine["cpu_bf16_units"]) or "none (bf16 emulated)")
    env.update(code_version())
    return env


def compute_threads(backend: str, cpu_cores: int | None, gpu: bool) -> int | None:
    """How many CPU threads the backend computes with: TensorFlow's intra-op pool (``TF_NUM_INTRAOP_THREADS``,
    set by ``cmlib train --threads`` and the sweep's one-job-per-core pool; else all the process's cores);
    None where a GPU computes (the CPU threads do not set its speed)."""
    if gpu:
        return None
    if backend == "tensorflow":
        import tensorflow as tf

        set_by_api = tf.config.threading.get_intra_op_parallelism_threads()
        if set_by_api > 0:
            return int(set_by_api)
        try:
            n = int(os.environ.get("TF_NUM_INTRAOP_THREADS", "0"))
        except ValueError:
            n = 0
        if n > 0:
            return n
    return cpu_cores


def with_earlier_segments(new: dict, old: dict | None, epochs_completed: int) -> dict:
    """``new`` (this process's :func:`environment`) for a run that resumes after ``epochs_completed`` epochs
    from a record ``old`` (the run's previous env.json, None for a fresh run).

    Where an earlier stretch ran on other hardware, another thread count or precision, ``earlier`` lists it
    (``until_epoch``: the last epoch it trained that the run kept), so that the run's wall time can be read as
    the cost of the hardware that spent it (:func:`cmlib.artifacts.compute_segments`, which also reads an old
    record without ``compute_threads`` as one that used all its cores)."""
    out = {k: v for k, v in new.items() if k != "earlier"}
    if old is None or epochs_completed <= 0:
        return out
    # the stretches that trained the epochs the run keeps (a checkpoint older than a switch drops what followed)
    kept = [s for s in compute_segments(old, epochs_completed) if s["first_epoch"] <= epochs_completed]
    earlier = [{"until_epoch": min(s["last_epoch"], epochs_completed), **_kind(s)} for s in kept]
    if _kind(earlier[-1]) == _kind(compute_segments(out, 0)[0]):
        earlier.pop()                     # the last of them ran as this process does: it goes on
    if earlier:
        out["earlier"] = earlier
    return out


def _kind(segment: dict) -> dict:
    """What makes two stretches of one run differ in cost: the machine, its threads and the precision."""
    return {k: segment[k] for k in STRETCH_KEYS}


def code_version() -> dict:
    """``git_commit``, ``git_dirty`` and ``git_diff_sha256`` of the cmlib source tree (empty if not in git)."""
    src = Path(__file__).resolve().parent
    try:
        top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=src, capture_output=True, text=True,
                             timeout=5)
        if top.returncode != 0:
            return {"git_commit": "", "git_dirty": False, "git_diff_sha256": ""}
        root = top.stdout.strip()
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        diff = subprocess.run(["git", "diff", "HEAD", "--", "."], cwd=root, capture_output=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return {"git_commit": "", "git_dirty": False, "git_diff_sha256": ""}
    dirty = bool(diff.stdout.strip())
    return {"git_commit": head.stdout.strip() if head.returncode == 0 else "", "git_dirty": dirty,
            "git_diff_sha256": hashlib.sha256(diff.stdout).hexdigest() if dirty else ""}
