"""Process-wide environment defaults, applied before any deep-learning backend loads.

TensorFlow prints C++ log lines (oneDNN notices, CUDA probing on CPU-only
machines) to stderr at import time.  They are noise in notebooks and in the
book, so the defaults below silence them.  Users who set these variables
themselves keep their values.
"""
import os

_DEFAULTS = {
    "TF_CPP_MIN_LOG_LEVEL": "3",      # C++ INFO/WARNING/ERROR off
    "TF_ENABLE_ONEDNN_OPTS": "0",     # no oneDNN notice; results bit-reproducible on CPU
    "GRPC_VERBOSITY": "ERROR",
    "ABSL_MIN_LOG_LEVEL": "3",
    "KMP_WARNINGS": "0",
}

for _key, _value in _DEFAULTS.items():
    os.environ.setdefault(_key, _value)


def backend_name() -> str:
    """The Keras backend that will be (or is) used, without importing Keras."""
    return os.environ.get("KERAS_BACKEND", "tensorflow")
