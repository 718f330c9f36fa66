"""What the machine can do: bf16 matrix units, GPUs, cores (for ``precision='auto'`` and the records).

bfloat16 only pays where the hardware computes in it: Intel AMX (``amx_bf16``),
AVX-512 BF16 (``avx512_bf16``: Intel Cooper Lake and later, AMD Zen 4 and later)
and NVIDIA GPUs from compute capability 8.0 (Ampere) on.  Elsewhere oneDNN or
XLA emulate it, many times slower than float32, so ``auto`` never picks it there.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

#: CPU flags (``/proc/cpuinfo``) of bf16 arithmetic units.
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags of this machine (Linux; empty elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def cpu_bf16_units() -> list[str]:
    """The bf16 units of the CPU, e.g. ``['avx512_bf16']``."""
    return [f for f in BF16_CPU_FLAGS if f in cpu_flags()]


def gpus() -> list[dict]:
    """GPUs the Keras backend sees: name and compute capability where known (imports the backend)."""
    from ._env import backend_name, import_keras

    import_keras()
    out: list[dict] = []
    if backend_name() == "tensorflow":
        import tensorflow as tf

        for d in tf.config.list_physical_devices("GPU"):
            details = tf.config.experimental.get_device_details(d)
            out.append({"name": details.get("device_name", d.name),
                        "compute_capability": details.get("compute_capability")})
    elif backend_name() == "jax":
        import jax

        for d in jax.devices():
            if d.platform == "gpu":
                cc = getattr(d, "compute_capability", None)
                out.append({"name": getattr(d, "device_kind", str(d)),
                            "compute_capability": tuple(int(v) for v in str(cc).split(".")) if cc else None})
    elif backend_name() == "torch":
        import torch

        for i in range(torch.cuda.device_count() if torch.cuda.is_available() else 0):
            out.append({"name": torch.cuda.get_device_name(i),
                        "compute_capability": torch.cuda.get_device_capability(i)})
    return out


def _gpu_has_bf16(gpu: dict) -> bool:
    cc = gpu.get("compute_capability")
    if cc is None:  # JAX reports no capability for some devices: the GPUs JAX ships CUDA 12 wheels for
        return "h100" in str(gpu.get("name", "")).lower() or "h200" in str(gpu.get("name", "")).lower() \
            or "a100" in str(gpu.get("name", "")).lower()
    return tuple(cc)[0] >= 8


def has_bf16_hardware() -> bool:
    """True if training would run on bf16 hardware: a GPU with bf16 units if there is a GPU, else the CPU."""
    if os.environ.get("CMLIB_NO_GPU_PROBE"):
        g: list[dict] = []
    else:
        g = gpus()
    if g:
        return all(_gpu_has_bf16(x) for x in g)
    return bool(cpu_bf16_units())


def describe() -> dict:
    """The facts a run records about its hardware (see :func:`cmlib.train.environment`)."""
    try:
        mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30
    except (ValueError, OSError, AttributeError):  # pragma: no cover
        mem_gib = float("nan")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu_cores": cores, "cpu_model": model, "cpu_bf16_units": cpu_bf16_units(),
            "memory_gib": round(mem_gib, 1)}
