"""cmlib simulate under races, kills, full disks and odd paths (issue 16, simulator side)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import pytest

from cmlib import simulate as S
from cmlib._io import exclusive_atomic_path, output_lock, remove_stale_temporaries, temp_prefix
from cmlib.errors import CmlibError, InputError, OutputExistsError

CMLIB = [sys.executable, "-m", "cmlib.cli"]


def _hidden(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if p.name.startswith("."))


def test_second_writer_to_the_same_path_is_refused(tmp_path):
    out = tmp_path / "d.h5"
    with output_lock(out, "data file"):
        with pytest.raises(OutputExistsError, match="another process"):
            S.simulate_to_file(out, 3, progress=False)
    assert not out.exists()


def test_exclusive_publish_never_clobbers(tmp_path):
    out = tmp_path / "x.bin"
    with pytest.raises(OutputExistsError, match="created by another process"):
        with exclusive_atomic_path(out, lock=False) as tmp:
            tmp.write_bytes(b"mine")
            out.write_bytes(b"theirs")          # another writer published first
    assert out.read_bytes() == b"theirs"
    assert _hidden(tmp_path) == []


def test_two_concurrent_cli_runs_exactly_one_wins(tmp_path):
    out = tmp_path / "race.h5"
    cmd = CMLIB + ["simulate", "--n", "600", "--out", str(out), "--quiet", "--chunk-size", "300"]
    procs = [subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    res = [(p.wait(timeout=600), p.stderr.read()) for p in procs]
    codes = sorted(r[0] for r in res)
    assert codes == [0, 2], res
    loser = [e for c, e in res if c == 2][0]
    assert "another process" in loser or "created by another process" in loser
    with h5py.File(out) as f:
        assert f.attrs["n_clusters"] == 600
    assert _hidden(tmp_path) == []


def test_overwrite_onto_a_directory_fails_before_the_work(tmp_path, monkeypatch):
    d = tmp_path / "adir"
    d.mkdir()

    def boom(*a, **k):
        raise AssertionError("work started")

    monkeypatch.setattr(S.files, "draw_population", boom)
    with pytest.raises(OutputExistsError, match="directory"):
        S.simulate_to_file(d, 3, overwrite=True, progress=False)
    assert d.is_dir()


def test_long_names(tmp_path):
    with pytest.raises(InputError, match="255"):
        S.simulate_to_file(tmp_path / ("a" * 256 + ".h5"), 2, progress=False)
    # a legal 243-character name whose naive temporary name would exceed the limit
    name = "b" * 240 + ".h5"
    assert len(name) == 243 and len(f".{name}.tmp-12345-abcdef12") > 255
    assert len(temp_prefix(tmp_path / name)) + 20 <= 255
    out = S.simulate_to_file(tmp_path / name, 2, progress=False)
    assert out.exists() and _hidden(tmp_path) == []


def test_stale_temporaries_of_dead_processes_are_removed(tmp_path):
    out = tmp_path / "d.h5"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f"{temp_prefix(out)}{dead.pid}-deadbeef"
    stale.write_bytes(b"x" * 1000)
    alive = tmp_path / f"{temp_prefix(out)}{os.getpid()}-cafebabe"
    alive.write_bytes(b"y")
    assert remove_stale_temporaries(out) == [stale]
    assert alive.exists() and not stale.exists()
    alive.unlink()


def _wait_for_temp(d: Path, proc, timeout=300.0) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        if any(".tmp-" in p.name for p in d.iterdir()):
            return
        if proc.poll() is not None:
            raise AssertionError(f"simulate ended early: {proc.stderr.read()}")
        time.sleep(0.2)
    raise AssertionError("no temporary file appeared")


@pytest.mark.parametrize("sig,group", [(signal.SIGTERM, False), (signal.SIGTERM, True), (signal.SIGKILL, False)],
                         ids=["SIGTERM", "SIGTERM-to-group", "SIGKILL"])
def test_kill_cleans_up_now_or_on_the_next_run(tmp_path, sig, group):
    """Also SIGTERM to the whole process group (Slurm's scancel, a terminal): the render workers ignore it
    and the parent stops them; a worker killed while sending its chunk once left the pool's shutdown
    waiting forever."""
    out = tmp_path / "k.h5"
    # 6000 clusters: the run must still be rendering when the signal comes (3000 took 5 s on an idle machine)
    cmd = CMLIB + ["simulate", "--n", "6000", "--out", str(out), "--chunk-size", "256"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, start_new_session=True)
    _wait_for_temp(tmp_path, proc)
    time.sleep(1.0)
    children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
    if group:
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)
    rc = proc.wait(timeout=120)
    # render workers die with their parent (no orphan blocking forever)
    t0 = time.time()
    while children and time.time() - t0 < 30:
        children = [c for c in children if Path(f"/proc/{c}").exists()
                    and "Z" not in Path(f"/proc/{c}/stat").read_text().split()[2]]
        time.sleep(0.2)
    assert not children, f"orphaned workers {children}"
    assert not out.exists()
    if sig == signal.SIGTERM:
        assert rc == 143, proc.stderr.read()
        assert _hidden(tmp_path) == []                    # cleaned up like Ctrl-C
    else:
        assert rc == -signal.SIGKILL
        S.simulate_to_file(out, 2, progress=False)        # a later run removes the dead run's temporaries
        assert _hidden(tmp_path) == []


def _tmpfs(path: Path, size: str) -> bool:
    if os.geteuid() != 0:
        return False
    path.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    return r.returncode == 0


def test_disk_full_is_a_clear_error_and_leaves_nothing(tmp_path):
    mnt = tmp_path / "small"
    if not _tmpfs(mnt, "3m"):
        pytest.skip("mounting a small tmpfs needs root and mount permission on this machine")
    try:
        proc = subprocess.run(CMLIB + ["simulate", "--n", "400", "--out", str(mnt / "d.h5"), "--quiet"],
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
        assert "disk is full" in proc.stderr and "Traceback" not in proc.stderr
        assert list(mnt.iterdir()) == []
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


def test_disk_full_error_in_process(tmp_path, monkeypatch):
    """The writer's own path: an OSError(ENOSPC) while writing becomes a CmlibError and removes the temp file."""
    import errno

    from cmlib import schema

    real = schema.DataFileWriter.write

    def full(self, **kw):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(schema.DataFileWriter, "write", full)
    with pytest.raises(CmlibError, match="disk is full"):
        S.simulate_to_file(tmp_path / "d.h5", 3, progress=False, workers=0)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(schema.DataFileWriter, "write", real)
