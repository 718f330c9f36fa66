"""Losses: the thesis's MSE and the Gaussian negative log-likelihood of a (mean, log-variance) output."""
from __future__ import annotations

import numpy as np

from ..errors import InputError
from .layers import _keras

#: Clip range of the predicted log-variance ln(sigma^2) [dex^2] in the Gaussian NLL:
#: sigma between exp(-5) = 0.0067 dex and exp(5) = 148 dex, far outside any
#: physical mass scatter, but it keeps exp(-log_var) finite for a wild initial output.
LOG_VARIANCE_RANGE = (-10.0, 10.0)


def gaussian_nll(y_true, y_pred):
    """Gaussian negative log-likelihood per sample, up to the constant 0.5 ln(2 pi).

    ``y_pred[:, 0]`` is the mean mu, ``y_pred[:, 1]`` the log-variance
    s = ln sigma^2, clipped to :data:`LOG_VARIANCE_RANGE` so ``exp(-s)`` stays
    finite::

        L = 0.5 * (s + (y - mu)^2 * exp(-s))

    (the NLL of a normal distribution, e.g. Krippendorf et al. 2023, and the
    form of Kendall & Gal 2017, eq. 8).  Backend-neutral (``keras.ops``).
    """
    ops = _keras().ops
    y_pred = ops.convert_to_tensor(y_pred)
    y_true = ops.reshape(ops.cast(y_true, y_pred.dtype), (-1,))
    mean = y_pred[:, 0]
    log_var = ops.clip(y_pred[:, 1], LOG_VARIANCE_RANGE[0], LOG_VARIANCE_RANGE[1])
    return 0.5 * (log_var + ops.square(y_true - mean) * ops.exp(-log_var))


def mse_of_mean(y_true, y_pred):
    """Squared error of the predicted mean (column 0): the thesis's MSE for a Gaussian model."""
    ops = _keras().ops
    y_pred = ops.convert_to_tensor(y_pred)
    y_true = ops.reshape(ops.cast(y_true, y_pred.dtype), (-1,))
    return ops.square(y_true - y_pred[:, 0])


def gaussian_mean_sigma(y_pred) -> tuple[np.ndarray, np.ndarray]:
    """Split a Gaussian model's output (N, 2) into mean and sigma = exp(s / 2) (numpy, dex)."""
    arr = np.asarray(y_pred, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise InputError(f"a Gaussian prediction has shape (N, 2) = [mean, log_variance], got "
                         f"{arr.shape}; build the model with output='gaussian'")
    log_var = np.clip(arr[:, 1], *LOG_VARIANCE_RANGE)
    return arr[:, 0].copy(), np.exp(0.5 * log_var)


def loss_for(name: str):
    """The Keras loss of a recipe's ``loss``: ``"mse"`` (thesis eq. 2.4.14) or ``"nll"``."""
    if name == "mse":
        return _keras().losses.MeanSquaredError(name="mse")
    if name == "nll":
        return gaussian_nll
    raise InputError(f"unknown loss {name!r}; use 'mse' (point output) or 'nll' (gaussian output)")
