"""Where ImageNet weights live: cmlib never downloads, it reads the file Keras would have cached."""
from __future__ import annotations

from pathlib import Path


def imagenet_weights_file(class_name: str) -> Path:
    """Where Keras caches the ImageNet ``include_top=False`` weights of ``class_name``.

    ``$KERAS_HOME/models/<file>`` (default ``~/.keras/models``), the file name
    keras.applications would download (cmlib never downloads).
    """
    from keras.src.backend.config import keras_home

    stem = class_name.lower()
    if stem.startswith("efficientnet"):
        fname = f"{stem}_notop.h5"
    else:
        fname = f"{stem}_weights_tf_dim_ordering_tf_kernels_notop.h5"
    return Path(keras_home()) / "models" / fname


def _imagenet_url(class_name: str) -> str:
    stem = class_name.lower()
    if stem.startswith("efficientnet"):
        return f"https://storage.googleapis.com/keras-applications/{stem}_notop.h5"
    folder = stem if stem.startswith("vgg") else "resnet"
    return ("https://storage.googleapis.com/tensorflow/keras-applications/"
            f"{folder}/{stem}_weights_tf_dim_ordering_tf_kernels_notop.h5")
