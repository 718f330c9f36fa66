"""The shared foundations: atomic writes, the schema writer, the CLI shell."""
from __future__ import annotations

from pathlib import Path

import subprocess
import sys

import h5py
import numpy as np
import pytest

from cmlib import _io, cli, schema
from cmlib.errors import InputError, OutputExistsError
from conftest import write_tiny_file


def test_band_edges_match_thesis_table1():
    rows = schema.band_table()
    assert len(rows) == 10
    assert rows[0] == {"band": 1, "E_min_eV": 250.0, "E_max_eV": 455.0}
    assert rows[-1] == {"band": 10, "E_min_eV": 2095.0, "E_max_eV": 2300.0}
    assert schema.band_label(1) == "band 2: 455\u2013660 eV"


def test_atomic_path_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with _io.atomic_path(target, overwrite=True) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_atomic_path_refuses_existing_without_overwrite(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        with _io.atomic_path(target):
            pass


def test_prepare_output_unwritable(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if __import__("os").access(ro, __import__("os").W_OK):
            pytest.skip("running with privileges that ignore directory permissions")
        with pytest.raises(InputError, match="not writable"):
            _io.prepare_output(ro / "x.h5")
    finally:
        ro.chmod(0o700)


def test_writer_hash_is_layout_independent(tmp_path):
    a = write_tiny_file(tmp_path / "a.h5", n=23, block=5)
    b = write_tiny_file(tmp_path / "b.h5", n=23, block=23)
    with h5py.File(a) as fa, h5py.File(b) as fb:
        assert fa.attrs["content_sha256"] == fb.attrs["content_sha256"]
        recomputed = schema.content_hash(
            (fa["images"][i:i + 7] for i in range(0, 23, 7)),
            fa["log_m500"][:], fa["z"][:], fa["cluster_id"][:])
        assert recomputed == fa.attrs["content_sha256"]
        assert fa.attrs["schema"] == "cmlib-clusters"
        assert fa["images"].chunks == (1, 50, 50, 10)
        np.testing.assert_array_equal(fa["images"][:], fb["images"][:])
    # the same writes give byte-identical files (no timestamps in the HDF5 objects)
    c = write_tiny_file(tmp_path / "c.h5", n=23, block=5)
    assert _io.sha256_file(a) == _io.sha256_file(c)


def test_writer_incomplete_file_is_not_left_behind(tmp_path):
    path = tmp_path / "x.h5"
    with pytest.raises(ValueError, match="only 3 of 5"):
        with schema.DataFileWriter(path, 5, source="t") as w:
            w.write(images=np.zeros((3, 50, 50, 10)), log_m500=np.full(3, 14.0), z=np.full(3, 0.3),
                    cluster_id=np.arange(3))
    assert list(tmp_path.iterdir()) == []


def test_stable_hash_ignores_key_order():
    assert _io.stable_hash({"a": 1, "b": [1, 2]}) == _io.stable_hash({"b": [1, 2], "a": 1})
    assert _io.stable_hash({"a": 1}) != _io.stable_hash({"a": 2})


@pytest.mark.parametrize("text,expected", [("0-3", [0, 1, 2, 3]), ("0,3,5", [0, 3, 5]), ("4", [4]),
                                           ("0-1,7", [0, 1, 7])])
def test_parse_seeds(text, expected):
    assert cli._parse_seeds(text) == expected


@pytest.mark.parametrize("text", ["3-1", "a", "", "-2"])
def test_parse_seeds_rejects(text):
    with pytest.raises(Exception):
        cli._parse_seeds(text)


def test_cli_help_lists_entry_points():
    out = subprocess.run([sys.executable, "-m", "cmlib.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for command in ("simulate", "info", "import-lmu", "models", "train", "book", "profiles"):
        assert command in out.stdout


def test_readme_commands_and_ci_agree():
    REPO = Path(__file__).resolve().parents[1]

    readme = (REPO / "README.md").read_text()
    assert "make book" in readme and "make test" in readme
    assert "_build/html/index.html" in readme
    assert "@@" not in readme, "an unmeasured placeholder is left in the README"
    ci = (REPO / ".ci" / "run").read_text()
    commands = [line.strip() for line in ci.splitlines() if line.strip() and not line.startswith("#")
                and not line.startswith(("set ", "cd "))]
    assert commands == ["make test"], commands
    makefile = (REPO / "Makefile").read_text()
    assert "rc -eq 5" in makefile, "pytest's exit code 5 (no tests collected) must fail the test target"


@pytest.mark.parametrize("argv,needle", [
    (["book", "--profile", "nope"], "unknown profile 'nope'"),
    (["info", "/nonexistent/file.h5"], "does not exist"),
    (["simulate", "--n", "0", "--out", "/tmp/never-written.h5"], "n must be at least 1, got 0"),
    (["book", "--only", "nosuch", "--no-html"], "--only: no page named nosuch in the laptop profile"),
    (["stored-runs", "--models", "nosuch", "--dry-run"], "stores no runs of nosuch"),
    (["train", "--model", "basic", "--data", "x.h5", "--epochs", "1", "--seeds", "4294967296"], "from 0 to"),
])
def test_cli_bad_input_is_a_clear_error(argv, needle, tmp_path):
    out = subprocess.run([sys.executable, "-m", "cmlib.cli", *argv], capture_output=True, text=True)
    assert out.returncode == 2, out.stderr
    assert "error:" in out.stderr and needle in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("user_value, expected", [(None, True), ("0", False)])
def test_onednn_kernels_are_on_unless_the_user_says_otherwise(user_value, expected):
    """TensorFlow enables oneDNN by itself only on CPUs with AVX-512 VNNI/BF16/AMX; cmlib turns it on
    everywhere (3.2x faster deep-model steps on an AVX2 CPU) and keeps a value the user set."""
    import os

    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    if user_value is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = user_value
    env.pop("KERAS_BACKEND", None)
    code = ("import os, cmlib._env as e; print(os.environ['TF_ENABLE_ONEDNN_OPTS'], e.onednn_enabled())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [user_value or "1", str(expected)]
