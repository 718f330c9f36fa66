"""Training: one ``model.fit`` per run with Keras callbacks, resumable, crash-consistent (:mod:`.engine`).

``cmlib.train`` keeps the names of the former single module: :func:`train_seeds`,
:func:`train_run`, :class:`RunResult`, :func:`resolve_config`, :func:`run_dir_for`,
:func:`environment`, :func:`format_runs_summary`.
"""
from __future__ import annotations

import os

from ..config import RunConfig, data_identity, resolve_config
from .engine import (DiskFullError, RunResult, build_model, format_runs_summary, init_output_bias, is_locked,
                     load_model, predict_subsets, run_lock, train_run, train_seeds)
from .env import code_version, environment


def run_dir_for(cfg: RunConfig, runs_dir: str | os.PathLike):
    """The directory of run ``cfg`` under ``runs_dir`` (``<model>/<group_key>/seed-NN``)."""
    if not isinstance(cfg, RunConfig):
        cfg = RunConfig.from_dict(cfg)
    return cfg.run_dir(runs_dir)


def group_key(cfg) -> str:
    """The identity of a configuration without its seed (see :meth:`RunConfig.group_key`)."""
    if not isinstance(cfg, RunConfig):
        cfg = RunConfig.from_dict(cfg)
    return cfg.group_key()


__all__ = ["RunConfig", "RunResult", "DiskFullError", "resolve_config", "data_identity", "run_dir_for", "group_key",
           "train_run", "train_seeds", "build_model", "load_model", "init_output_bias", "predict_subsets",
           "format_runs_summary", "environment", "code_version", "run_lock", "is_locked"]
