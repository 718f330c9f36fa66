"""Process-wide environment defaults, applied before any deep-learning backend loads.

TensorFlow prints C++ log lines (oneDNN notices, CPU feature notes) to stderr
at import time.  They are noise in notebooks and in the book: the defaults
below lower TensorFlow's log level, and :func:`import_keras` imports Keras
(and with it the backend) with the process's stderr silenced for the
duration of the import only, since the earliest lines are written before any
log level is read.  Users who set these variables themselves keep their values.

oneDNN stays on (TensorFlow's default): it makes deep-model training on a CPU
about 3x faster, and resumed runs remain bit-identical to uninterrupted ones
(checked by ``tests/test_train.py``).  Set ``TF_ENABLE_ONEDNN_OPTS=0`` to get
the reference (non-oneDNN) kernels.
"""
import contextlib
import os
import sys

_DEFAULTS = {
    "TF_CPP_MIN_LOG_LEVEL": "3",      # C++ INFO/WARNING/ERROR off
    "GRPC_VERBOSITY": "ERROR",
    "ABSL_MIN_LOG_LEVEL": "3",
    "KMP_WARNINGS": "0",
}

for _key, _value in _DEFAULTS.items():
    os.environ.setdefault(_key, _value)


def backend_name() -> str:
    """The Keras backend that will be (or is) used, without importing Keras."""
    return os.environ.get("KERAS_BACKEND", "tensorflow")


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
