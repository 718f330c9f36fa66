"""Shared fixtures.

``tiny_h5`` writes a small schema-conformant data file with random content
(not the simulator), so data-pipeline tests do not depend on the physics.
"""
from __future__ import annotations

import os
import shutil
import tempfile

os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np
import pytest

from cmlib.schema import DataFileWriter


#: Free disk space the suite needs for its scratch files: the measured peak of a full run from a fresh
#: clone is 0.2 GB (2026-11-25, sampled every 10 s: the smoke book keeps no model files; the largest
#: transient is one ResNet50V2 test run's model files, ~0.6 GB), plus a margin.
MIN_FREE_GB = 1.5


def pytest_sessionstart(session):
    """Refuse to start on a nearly full disk: HDF5 and Keras fail late and obscurely (even with a
    segmentation fault while reporting) when a write runs out of space."""
    base = session.config.option.basetemp or tempfile.gettempdir()
    probe = os.path.abspath(base)
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    free = shutil.disk_usage(probe).free / 2**30
    if free < MIN_FREE_GB:
        pytest.exit(f"only {free:.1f} GB free on the disk holding {probe}; the test suite needs about "
                    f"{MIN_FREE_GB:g} GB for its scratch files. Free some space (or point TMPDIR / "
                    f"--basetemp at a larger disk) and run the tests again.", returncode=1)


def write_tiny_file(path, n: int = 40, seed: int = 0, *, source: str = "test-fixture",
                    block: int = 16, **attrs):
    """A random but physically-ranged cmlib data file with ``n`` clusters."""
    rng = np.random.default_rng(seed)
    log_m = rng.uniform(13.0, 15.0, n)
    z = rng.uniform(0.05, 1.2, n)
    ids = np.arange(1000, 1000 + n, dtype=np.int64)
    # counts grow with mass so that a model has something to learn
    yy, xx = np.mgrid[:50, :50]
    r2 = (yy - 24.5) ** 2 + (xx - 24.5) ** 2
    cols = {"M500c": ("f8", "Msun", "true M500c"), "kT": ("f8", "keV", "temperature")}
    with DataFileWriter(path, n, source=source, catalog_columns=cols, attrs=attrs) as w:
        for start in range(0, n, block):
            sl = slice(start, min(n, start + block))
            m = sl.stop - sl.start
            amp = 10 ** (log_m[sl] - 14.0) / (1 + z[sl]) ** 2
            core = np.exp(-r2[None] / (2 * 4.0 ** 2)) * amp[:, None, None]
            img = rng.poisson(0.05 + core[..., None] * np.linspace(1, 0.2, 10)).astype(np.float32)
            w.write(images=img, log_m500=log_m[sl], z=z[sl], cluster_id=ids[sl],
                    catalog={"M500c": 10 ** log_m[sl], "kT": np.full(m, 3.0)})
    return path


@pytest.fixture
def tiny_h5(tmp_path):
    """Path of a 40-cluster random data file in the cmlib schema."""
    return write_tiny_file(tmp_path / "tiny.h5")


@pytest.fixture(scope="session")
def smoke_book(tmp_path_factory):
    """The whole book built with the smoke profile in a scratch directory (slow: minutes).

    Data simulation, one-epoch training of every model and experiment, papermill
    execution of every notebook and ``jupyter-book build -W``: the integration test.
    """
    import contextlib
    import os
    import sys
    from pathlib import Path

    from cmlib.book.build import build_book

    root = tmp_path_factory.mktemp("smokebook")
    # what a checkout holds after `make test` (pytest's cache) must not break the -W build
    (root / ".pytest_cache").mkdir()
    (root / ".pytest_cache" / "README.md").write_text("# pytest cache directory #\n")
    # the build's log and everything written to stderr (its kernels' log), kept for test_book.py; a killed run
    # leaves it at the path printed here
    log = root.parent / "smokebook-output.txt"
    print(f"smoke book: building in {root}; its output goes to {log} and is shown when the build ends",
          file=sys.stderr, flush=True)
    saved = os.dup(2)
    try:
        with open(log, "a", buffering=1) as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
            os.dup2(f.fileno(), 2)          # the kernels write to the process's stderr, not to sys.stderr
            ok = build_book(profile="smoke", root=root, source=Path(__file__).resolve().parents[1])
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        sys.stderr.write(log.read_text(errors="replace"))   # shown where it would have been, also on failure
    assert ok == 0
    return root
