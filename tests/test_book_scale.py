"""The book at scale: `cmlib book --runs DIR`, training through `cmlib sweep`, the thesis grid = the thesis profile."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from cmlib import sweep
from cmlib.book import build
from cmlib.book.profiles import get_profile

from conftest import write_tiny_file

REPO = Path(__file__).resolve().parents[1]


def test_thesis_grid_is_the_thesis_profile(tmp_path):
    prof = get_profile("thesis")
    text = (REPO / "examples" / "thesis_grid.toml").read_text()
    assert text == build.grid_text(prof), ("examples/thesis_grid.toml is not the thesis profile's grid; regenerate it "
                                           "with cmlib.book.build.grid_text(get_profile('thesis'))")
    # and the file names exactly the runs the book's pages look for (same identities)
    data = write_tiny_file(tmp_path / "data" / "efeds_mock.h5", n=30)
    from_file = sweep.load_grid(REPO / "examples" / "thesis_grid.toml", data=data, runs_dir=tmp_path / "runs")
    from_profile = build.sweep_grid(prof, tmp_path)
    assert sorted(j.identity for j in from_file.jobs) == sorted(j.identity for j in from_profile.jobs)
    assert len(from_profile.jobs) == sum(len(p.seeds) for p in build._train_plans(prof))


_SWEEP_BOOK = r"""
import json, os, sys
from pathlib import Path
from cmlib.book import build, pages
from cmlib.book import runs as R
from cmlib.book.profiles import get_profile
from cmlib.errors import InputError

REPO, tmp = Path(sys.argv[1]), Path(sys.argv[2])
prof = get_profile("smoke")
root = build.prepare_root(tmp / "root", REPO)
build.ensure_data(prof, root)
shared = tmp / "shared"
shared.mkdir()
os.environ[R.RUNS_ENV] = str(shared)
assert build.train_plans(prof, root, plans=[prof.models["basic"]], sweep={"executor": "local", "workers": 2})
assert not (root / "runs").exists()
assert len(list(shared.glob("basic/*/seed-*/status.json"))) == len(prof.models["basic"].seeds)
pr = pages.find_page_runs("basic", "smoke", root=root)
assert pr.how == "trained" and len(pr.finished) == len(prof.models["basic"].seeds)
print("SECOND SWEEP", flush=True)
# again: nothing to train, the finished runs are reused
assert build.train_plans(prof, root, plans=[prof.models["basic"]], sweep={"executor": "local"})
# without DIR the page finds nothing: the runs exist only there
del os.environ[R.RUNS_ENV]
assert pages.find_page_runs("basic", "smoke", root=root).how == "missing"
# the whole build step with --runs DIR: the page's kernel inherits DIR and finds the runs
assert build.build_book("smoke", root, only=["basic"], skip_html=True, train=False, runs=shared) == 0
nb = json.loads((root / "book" / "generated" / "models" / "basic.ipynb").read_text())
assert not nb["metadata"]["cmlib"].get("pending")
assert R.RUNS_ENV not in os.environ          # restored after the build
try:
    build.build_book("smoke", root, only=["basic"], skip_html=True, train=False, runs=tmp / "nope")
except InputError as exc:
    assert "is not a folder" in str(exc)
else:
    raise AssertionError("a missing --runs folder was accepted")
print("SWEEP BOOK OK", flush=True)
"""


def test_book_trains_through_a_sweep_and_reads_runs_only_in_dir(tmp_path):
    """The smoke profile's basic CNN trained as local sweep jobs into DIR; a page finds it only with DIR.

    Runs in a child process: submitit's local jobs and the page kernels inherit the standard streams, and
    under pytest's fd capture something in that stack closed pytest's capture file (CI lost sys.stderr).
    """
    r = subprocess.run([sys.executable, "-c", _SWEEP_BOOK, str(REPO), str(tmp_path)], capture_output=True,
                       text=True, timeout=1200)
    assert r.returncode == 0 and "SWEEP BOOK OK" in r.stdout, r.stdout[-3000:] + r.stderr[-3000:]
    second = r.stdout.split("SECOND SWEEP", 1)[1]
    assert "2 finished or running, 0 to run" in second      # the finished runs were reused, no job


def test_no_wait_needs_slurm_and_profile_excludes_a_grid(tmp_path):
    cli = [sys.executable, "-m", "cmlib.cli"]
    r = subprocess.run(cli + ["stored-runs", "--executor", "local", "--no-wait"], capture_output=True, text=True,
                       cwd=tmp_path)
    assert r.returncode != 0 and "--no-wait needs --executor slurm" in r.stderr
    r = subprocess.run(cli + ["sweep", str(REPO / "examples" / "basic_seeds.toml"), "--profile", "thesis"],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode != 0 and "not both" in r.stderr


def test_sweep_profile_status_names_the_missing_data_file(tmp_path):
    """`cmlib sweep --profile P --status` reads the profile's grid (it once died on a NameError)."""
    r = subprocess.run([sys.executable, "-m", "cmlib.cli", "sweep", "--profile", "smoke", "--status"],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "smoke.h5" in r.stderr and "does not exist" in r.stderr
