"""The environment a run records: versions, backend, devices, hardware, precision and code version."""
from __future__ import annotations

import hashlib
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__, hardware


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
    if precision is not None:
        env["precision"] = precision
        env["precision_hardware"] = ("GPU bf16 units" if gpus else
                                     ", ".join(machine["cpu_bf16_units"]) or "none (bf16 emulated)")
    env.update(code_version())
    return env


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
