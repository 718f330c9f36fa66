"""Process-wide environment defaults, applied before any deep-learning backend loads.

TensorFlow prints C++ log lines (oneDNN notices, CPU feature notes) to stderr
at import time.  They are noise in notebooks and in the book: the defaults
below lower TensorFlow's log level, and :func:`import_keras` imports Keras
(and with it the backend) with the process's stderr silenced for the
duration of the import only, since the earliest lines are written before any
log level is read.  Users who set these variables themselves keep their values.

oneDNN is switched on (``TF_ENABLE_ONEDNN_OPTS=1``).  TensorFlow turns it on
by itself only on CPUs with AVX512_VNNI, AVX512_BF16 or AMX; on a CPU with
AVX2 only it stays off, and one ResNet50 training step (batch 32, 50 x 50 x 3,
float32) took 3.2x as long on two cores (1.92 against 0.60 s) (``benchmarks/bench_kernels.py``).
Resumed runs remain bit-identical to uninterrupted ones with it on (checked by
``tests/test_train.py``); a run records whether it was on (``env.json``,
``onednn``).  Set ``TF_ENABLE_ONEDNN_OPTS=0`` to get the reference
(non-oneDNN) kernels.  XLA (``jit_compile``) stays off on a CPU, as Keras
decides: it made the same step 4.8x slower than oneDNN alone.
"""
import contextlib
import os
import sys

_DEFAULTS = {
    "TF_CPP_MIN_LOG_LEVEL": "3",      # C++ INFO/WARNING/ERROR off
    "GRPC_VERBOSITY": "ERROR",
    "ABSL_MIN_LOG_LEVEL": "3",
    "KMP_WARNINGS": "0",
    "TF_ENABLE_ONEDNN_OPTS": "1",     # oneDNN kernels also on CPUs without AVX-512 (3.2x faster, see above)
}

for _key, _value in _DEFAULTS.items():
    os.environ.setdefault(_key, _value)


def limit_threads(n: int) -> None:
    """Give this process ``n`` compute threads (TensorFlow's intra-op pool and OpenMP/oneDNN) and one inter-op
    thread, so that ``k`` processes share the cores (one training job per core).  Call it before the backend is
    imported: TensorFlow reads these variables once."""
    for var in ("TF_NUM_INTRAOP_THREADS", "OMP_NUM_THREADS"):
        os.environ[var] = str(n)
    os.environ["TF_NUM_INTEROP_THREADS"] = "1"


def backend_name() -> str:
    """The Keras backend that will be (or is) used, without importing Keras."""
    return os.environ.get("KERAS_BACKEND", "tensorflow")


def onednn_enabled() -> bool | None:
    """Whether TensorFlow runs its oneDNN kernels in this process (None for other backends, or where this
    TensorFlow does not say: the answer comes from a private TensorFlow module)."""
    if backend_name() != "tensorflow":
        return None
    import_keras()
    try:
        from tensorflow.python.util import _pywrap_util_port

        return bool(_pywrap_util_port.IsMklEnabled())
    except (ImportError, AttributeError):
        return None


@contextlib.contextmanager
def _silenced_stderr():
    """Redirect file descriptor 2 to /dev/null (C++ libraries write there directly)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (embedded interpreters)
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def import_keras():
    """Import and return Keras, with the backend's import-time log lines silenced.

    Exceptions still propagate normally (only C-level writes to stderr during
    the import are discarded).
    """
    if "keras" in sys.modules:
        return sys.modules["keras"]
    with _silenced_stderr():
        import keras  # noqa: F401
        if backend_name() == "tensorflow":
            import tensorflow  # noqa: F401
    return sys.modules["keras"]
