"""cmlib sweep: grid validation, the local submitit pool, status, and a real single-node Slurm."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cmlib import sweep
from cmlib.errors import InputError

from conftest import write_tiny_file

SLURM = Path(__file__).parent / "slurm"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_tiny_file(tmp_path_factory.mktemp("sweepdata") / "tiny.h5", n=60)


def _grid(tmp_path, text: str, name: str = "g") -> Path:
    p = tmp_path / f"{name}.toml"
    p.write_text(text)
    return p


@pytest.mark.parametrize("body, message", [
    ("epochs = 2\nseeds = 0\n[[run]]\nmodel = 'nosuch'\n", "unknown model 'nosuch'"),
    ("epochs = 2\nseeds = 0\n[[run]]\nmodel = 'basic'\nlearning_rate = 0.1\n", "unknown training option(s) learning_rate"),
    ("epochs = 2\nseeds = 0\n[overrides]\nlr = 2.0\n[[run]]\nmodel = 'basic'\n", "lr=2.0 must be a number"),
    ("epochs = 2\n[[run]]\nmodel = 'basic'\n", "no seeds"),
    ("seeds = 0\n[[run]]\nmodel = 'basic'\n", "epochs must be a positive integer"),
    ("epochs = 2\nseeds = 0\nmodle = 'basic'\n[[run]]\nmodel = 'basic'\n", "unknown top-level key(s) modle"),
    ("epochs = 2\nseeds = 0\n[[run]]\nmodel = 'basic'\nvary = { lr = 0.1 }\n", "vary must be a table of non-empty lists"),
    ("epochs = 2\nseeds = '3-1'\n[[run]]\nmodel = 'basic'\n", "invalid seed list"),
    ("epochs = 2\nseeds = 0\n", "no [[run]] entry"),
    ("epochs = 2\nseeds = 0\n[[run]\n", "not valid TOML"),
])
def test_bad_grids_are_clear_errors(tmp_path, data, body, message):
    g = _grid(tmp_path, f"data = '{data}'\n" + body)
    with pytest.raises(InputError) as exc:
        sweep.load_grid(g)
    assert message in str(exc.value) and str(g) in str(exc.value)


def test_bad_grid_on_the_command_line_exits_non_zero(tmp_path, data):
    g = _grid(tmp_path, f"data = '{data}'\nepochs = 2\nseeds = 0\n[[run]]\nmodel = 'nosuch'\n")
    r = subprocess.run([sys.executable, "-m", "cmlib.cli", "sweep", str(g)], capture_output=True, text=True)
    assert r.returncode != 0 and "unknown model 'nosuch'" in r.stderr and "cmlib models" in r.stderr


def test_grid_expands_models_seeds_and_vary(tmp_path, data):
    g = _grid(tmp_path, f"""data = '{data}'
epochs = 3
seeds = "0-1"
[overrides]
early_stopping = 0
[[run]]
model = "basic"
vary = {{ lr = [1e-3, 3e-4], batch_size = [16, 32] }}
[[run]]
model = "basic"
seeds = 0
lr = 1e-3
batch_size = 16
""")
    grid = sweep.load_grid(g, runs_dir=tmp_path / "runs")
    # 4 configurations x 2 seeds; the second entry names a run of the first: trained once
    assert len(grid.jobs) == 8
    assert len({j.group for j in grid.jobs}) == 4
    assert {(j.config["lr"], j.config["batch_size"]) for j in grid.jobs} == {(1e-3, 16), (1e-3, 32), (3e-4, 16),
                                                                             (3e-4, 32)}
    assert all(j.config["early_stopping"] == 0 for j in grid.jobs)


def test_local_sweep_trains_reuses_reports_failures_and_status(tmp_path, data):
    g = _grid(tmp_path, f"data = '{data}'\nepochs = 2\nseeds = '0-1'\n[[run]]\nmodel = 'basic'\nearly_stopping = 0\n")
    runs = tmp_path / "runs"
    grid = sweep.load_grid(g, runs_dir=runs)
    out = sweep.run_sweep(grid, workers=2, poll_s=0.2, echo=lambda *a: None)
    assert sorted(o.state for o in out) == ["done", "done"]
    for j in grid.jobs:
        st = json.loads((grid.run_dir(j) / "status.json").read_text())
        assert st["status"] == "complete" and st["epochs_completed"] == 2
    # the same grid again: nothing to run, both reused
    again = sweep.run_sweep(grid, poll_s=0.2, echo=lambda *a: None)
    assert [o.message for o in again] == ["finished before; reused"] * 2
    rows = sweep.sweep_status(grid)
    assert [r["state"] for r in rows] == ["done", "done"]

    # a job that raises is failed, with its log; --status says so after the fact
    bad_data = tmp_path / "gone.h5"
    write_tiny_file(bad_data, n=60, seed=5)
    g2 = _grid(tmp_path, f"data = '{bad_data}'\nepochs = 2\nseeds = 0\n[[run]]\nmodel = 'basic'\n", name="g2")
    grid2 = sweep.load_grid(g2, runs_dir=runs)
    bad_data.unlink()
    (o,) = sweep.run_sweep(grid2, poll_s=0.2, echo=lambda *a: None)
    assert o.state == "failed" and Path(o.log).is_file() and "does not exist" in o.message
    assert "does not exist" in Path(o.log).read_text()
    (row,) = sweep.sweep_status(grid2)
    assert row["state"] == "failed" and row["log"] == o.log
    assert "failed: basic/" in sweep.format_status(grid2, [row])


def test_status_shows_running_while_the_lock_is_held(tmp_path, data):
    from cmlib.train import run_lock

    g = _grid(tmp_path, f"data = '{data}'\nepochs = 2\nseeds = 0\n[[run]]\nmodel = 'basic'\n")
    grid = sweep.load_grid(g, runs_dir=tmp_path / "runs")
    with run_lock(grid.run_dir(grid.jobs[0])):
        assert [r["state"] for r in sweep.sweep_status(grid)] == ["running"]
        out = sweep.run_sweep(grid, echo=lambda *a: None)
        assert [o.state for o in out] == ["running"]
    assert [r["state"] for r in sweep.sweep_status(grid)] == ["pending"]


def test_sbatch_options_are_parsed_or_rejected():
    assert sweep.parse_sbatch(["account=pn12ab", "--qos=long", "mail-type=END"]) == {
        "account": "pn12ab", "qos": "long", "mail_type": "END"}
    with pytest.raises(InputError, match="KEY=VALUE"):
        sweep.parse_sbatch(["exclusive"])


# ---------------------------------------------------------------- real Slurm

@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """A single-node Slurm on localhost started by tests/slurm/start.sh (root; installs slurm-wlm + munge)."""
    d = tmp_path_factory.mktemp("slurm")
    r = subprocess.run(["bash", str(SLURM / "start.sh"), str(d)], capture_output=True, text=True, timeout=900)
    if r.returncode == 2:
        pytest.skip(r.stderr.strip().splitlines()[-1])
    if r.returncode != 0:
        subprocess.run(["bash", str(SLURM / "stop.sh"), str(d)], timeout=60)
        pytest.fail(f"single-node Slurm did not start:\n{r.stdout}\n{r.stderr}")
    old = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(d / "slurm.conf")
    try:
        yield d
    finally:
        subprocess.run(["scancel", "--user", str(os.getuid())], timeout=60)
        subprocess.run(["bash", str(SLURM / "stop.sh"), str(d)], timeout=60)
        if old is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = old


def _sweep_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cmlib.cli", "sweep", *map(str, args)], capture_output=True,
                          text=True, timeout=900)


@pytest.mark.slow
def test_slurm_array_completes_and_a_cancelled_job_resumes(slurm, tmp_path, data):
    runs = tmp_path / "runs"
    g = _grid(tmp_path, f"data = '{data}'\nepochs = 2\nseeds = '0-1'\n[[run]]\nmodel = 'basic'\n"
                        "early_stopping = 0\n")
    r = _sweep_cli(g, "--runs-dir", runs, "--executor", "slurm", "--cpus-per-job", 1, "--time", 20)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "submitted Slurm array" in r.stdout and "2 done" in r.stdout
    grid = sweep.load_grid(g, runs_dir=runs)
    assert [x["state"] for x in sweep.sweep_status(grid)] == ["done", "done"]

    # a longer run, cancelled with scancel while it trains, resumes when the grid is submitted again
    g2 = _grid(tmp_path, f"data = '{data}'\nepochs = 40\nseeds = 0\n[[run]]\nmodel = 'basic'\nearly_stopping = 0\n",
               name="long")
    r = _sweep_cli(g2, "--runs-dir", runs, "--executor", "slurm", "--cpus-per-job", 1, "--no-wait",
                   "--checkpoint-interval", 0)
    assert r.returncode == 0, r.stdout + r.stderr
    grid2 = sweep.load_grid(g2, runs_dir=runs)
    status = grid2.run_dir(grid2.jobs[0]) / "status.json"
    deadline = time.time() + 300
    while time.time() < deadline:
        try:
            if json.loads(status.read_text()).get("epochs_completed", 0) >= 3:
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.1)
    else:
        pytest.fail("the Slurm job did not start training within 5 minutes")
    (row,) = sweep.sweep_status(grid2)
    assert row["state"] == "running"
    subprocess.run(["scancel", row["job_id"]], check=True)
    deadline = time.time() + 120
    while time.time() < deadline and subprocess.run(["squeue", "-h", "-j", row["job_id"]], capture_output=True,
                                                    text=True).stdout.strip():
        time.sleep(0.5)
    killed_at = json.loads(status.read_text())["epochs_completed"]
    assert killed_at < 40
    (row,) = sweep.sweep_status(grid2)
    assert row["state"] == "interrupted", row
    r = _sweep_cli(g2, "--runs-dir", runs, "--executor", "slurm", "--cpus-per-job", 1)
    assert r.returncode == 0, r.stdout + r.stderr
    st = json.loads(status.read_text())
    assert st["status"] == "complete" and st["epochs_completed"] == 40
    (row,) = sweep.sweep_status(grid2)
    log = Path(row["log"]).with_suffix(".out").read_text()
    assert "resuming after epoch" in log, log


def test_example_grids_are_valid(tmp_path, data):
    examples = Path(__file__).parents[1] / "examples"
    thesis = sweep.load_grid(examples / "thesis_grid.toml", data=data, runs_dir=tmp_path)
    assert len(thesis.jobs) == 11 * 10 + 1 + 1 + 3 * 10       # models; overfit, lr, tvt, nll, 10-band experiments
    assert {j.config["epochs"] for j in thesis.jobs if j.config["model"] == "krippendorf2023"} == {500}
    assert len(sweep.load_grid(examples / "basic_seeds.toml", data=data, runs_dir=tmp_path).jobs) == 8


def test_submitit_logs_go_to_the_current_streams_not_a_closed_one(capsys):
    """submitit binds its log handlers to the streams of import time; a late log line after that stream was
    closed (pytest's capture, an embedding program) must not fail - CI once lost sys.stderr that way."""
    import io
    import logging

    log = logging.getLogger("submitit")
    saved = list(log.handlers)
    dead = io.StringIO()
    stale = logging.StreamHandler(dead)
    stale.setLevel(logging.WARNING)
    log.addHandler(stale)
    dead.close()
    try:
        sweep.submitit_module()
        assert stale not in log.handlers
        log.warning("job 12 cancelled at deletion")
        err = capsys.readouterr().err
        assert "job 12 cancelled at deletion" in err and "Logging error" not in err
    finally:
        for h in list(log.handlers):
            log.removeHandler(h)
        for h in saved:
            log.addHandler(h)
