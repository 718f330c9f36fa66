"""Grids of training runs as independent jobs on submitit: a local process pool or Slurm job arrays.

A *grid* is a small TOML file of (model, seeds, overrides) entries::

    data = "data/efeds_mock.h5"   # relative paths: to the working directory, as in `cmlib train`
    epochs = 200
    seeds = "0-9"                  # default seeds of every entry
    runs_dir = "runs"              # optional (default runs/); `cmlib sweep --runs-dir` wins

    [overrides]                    # training options for every entry (see `cmlib train --help`)
    early_stopping = 50

    [[run]]
    models = ["basic", "resnet50v2"]

    [[run]]
    model = "basic"
    seeds = "0-3"
    batch_size = 64                # any other key is a training option
    vary = { lr = [1e-3, 3e-4] }   # one configuration per value (Cartesian product over the keys)

Every (configuration, seed) is one job that trains one run exactly as ``cmlib train`` does
(:func:`cmlib.train.train_run`): jobs share one runs folder, a finished run is reused, an
interrupted, preempted or timed-out one resumes from its last checkpoint when the grid is
submitted again.  The jobs' logs and submitit's bookkeeping live in
``<runs>/.sweep/<grid name>/``; :func:`sweep_status` reads the run directories (a run whose
lock is held is running) and the jobs' result files (a job that raised is failed, with its log).
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import os
import shutil
import logging
import signal
import sys
import time
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from ._env import limit_threads
from ._io import read_toml
from .errors import CmlibError, InputError

GRID_KEYS = ("data", "epochs", "seeds", "runs_dir", "overrides", "run")
ENTRY_KEYS = ("model", "models", "seeds", "epochs", "vary")
#: Status names shown by ``cmlib sweep --status``, in column order.
STATES = ("done", "diverged", "running", "interrupted", "failed", "pending")


class _LiveStreamHandler(logging.StreamHandler):
    """A log handler that writes to whatever ``sys.stdout``/``sys.stderr`` is *now*.

    submitit configures its logger at import with handlers bound to the ``sys.stderr`` of that
    moment; if that stream is later closed (a replaced stream in an embedding program, pytest's
    capture), a late log line from submitit (a job cancelled at garbage collection) raises in
    the handler and can take the interpreter's stderr with it.
    """

    def __init__(self, which: str, level: int) -> None:
        self._which = which
        super().__init__()
        self.setLevel(level)

    @property
    def stream(self):  # type: ignore[override]
        return getattr(sys, self._which)

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ assigns it; the live stream wins
        pass


def submitit_module():
    """``import submitit``, with its log handlers writing to the current standard streams."""
    import submitit

    log = logging.getLogger("submitit")
    for h in list(log.handlers):
        if type(h) is logging.StreamHandler:        # submitit's own: bound to the streams of import time
            live = _LiveStreamHandler("stdout" if h.level < logging.WARNING else "stderr", h.level)
            live.setFormatter(h.formatter)
            log.removeHandler(h)
            log.addHandler(live)
    return submitit


# ---------------------------------------------------------------- the grid

@dataclasses.dataclass(frozen=True)
class Job:
    """One run of a grid: its resolved configuration (a :class:`cmlib.config.RunConfig` as a dict)."""

    config: dict
    data_path: str           # absolute path of the data file (jobs may start in another directory)

    @property
    def identity(self) -> str:
        return f"{self.config['model']}/{self.group}/seed-{int(self.config['seed']):02d}"

    @property
    def group(self) -> str:
        from .config import RunConfig

        return RunConfig.from_dict(self.config).group_key()


@dataclasses.dataclass
class Grid:
    """A parsed, validated grid: its jobs and where they write."""

    name: str
    path: Path
    runs_dir: Path
    jobs: list[Job]

    @property
    def sweep_dir(self) -> Path:
        return self.runs_dir / ".sweep" / self.name

    def run_dir(self, job: Job) -> Path:
        return self.runs_dir / job.identity


def _where(path: Path, where: str) -> str:
    return f"{path}: {where}" if where else str(path)


def load_grid(path: str | os.PathLike, *, runs_dir: str | os.PathLike | None = None,
              data: str | os.PathLike | None = None) -> Grid:
    """Read and validate a grid file; resolve every run's configuration (reads the data file's header).

    Raises :class:`InputError` naming the file, the entry and the fix for anything that is
    not a valid grid: unknown keys, unknown models or options, invalid values, no seeds.
    """
    from .config import overridable, parse_seeds, resolve_config
    from .models.registry import available_models

    p, doc = read_toml(path, missing="grid file '{path}' does not exist; write one (see `cmlib sweep --help` or "
                                     "examples/)",
                       invalid="{path} is not valid TOML ({error}); see `cmlib sweep --help` for the format")
    unknown = sorted(set(doc) - set(GRID_KEYS))
    if unknown:
        raise InputError(f"{p}: unknown top-level key(s) {', '.join(unknown)}; valid: {', '.join(GRID_KEYS)} "
                         "(training options go under [overrides] or into a [[run]] entry)")
    data = data if data is not None else doc.get("data")
    if not data:
        raise InputError(f"{p}: no data file; add `data = \"data/efeds_mock.h5\"` or pass --data")
    runs = Path(runs_dir if runs_dir is not None else doc.get("runs_dir", "runs"))
    options = set(overridable())
    models = available_models()

    def check_options(d: Mapping[str, Any], where: str) -> dict:
        bad = sorted(set(d) - options)
        if bad:
            raise InputError(f"{_where(p, where)}: unknown training option(s) {', '.join(bad)}; valid: "
                             f"{', '.join(sorted(options))}")
        return dict(d)

    base = check_options(doc.get("overrides", {}) or {}, "[overrides]")
    if not isinstance(doc.get("overrides", {}), dict):
        raise InputError(f"{p}: 'overrides' must be a table ([overrides] with option = value lines)")
    entries = doc.get("run")
    if entries is None:
        raise InputError(f"{p}: no [[run]] entry; add one, e.g.\n[[run]]\nmodels = [\"basic\"]")
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise InputError(f"{p}: 'run' must be an array of tables ([[run]] entries)")
    jobs: list[Job] = []
    seen: set[str] = set()
    data_abs = str(Path(data).resolve())
    for i, entry in enumerate(entries, 1):
        where = f"[[run]] entry {i}"
        if ("model" in entry) == ("models" in entry):
            raise InputError(f"{_where(p, where)}: give exactly one of model = \"basic\" or models = [...]")
        names = [entry["model"]] if "model" in entry else entry["models"]
        if not isinstance(names, list) or not names or not all(isinstance(m, str) for m in names):
            raise InputError(f"{_where(p, where)}: models must be a non-empty list of model names")
        for m in names:
            if m not in models:
                raise InputError(f"{_where(p, where)}: unknown model '{m}'; available: {', '.join(models)} "
                                 "(see `cmlib models`)")
        seeds_spec = entry.get("seeds", doc.get("seeds"))
        if seeds_spec is None:
            raise InputError(f"{_where(p, where)}: no seeds; add seeds = \"0-9\" to the entry or the top level")
        try:
            seeds = parse_seeds(seeds_spec)
        except InputError as exc:
            raise InputError(f"{_where(p, where)}: {exc}") from None
        epochs = entry.get("epochs", doc.get("epochs"))
        if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
            raise InputError(f"{_where(p, where)}: epochs must be a positive integer (got {epochs!r}); set "
                             "epochs = 200 at the top level or in the entry")
        vary = entry.get("vary", {}) or {}
        if not isinstance(vary, dict) or not all(isinstance(v, list) and v for v in vary.values()):
            raise InputError(f"{_where(p, where)}: vary must be a table of non-empty lists, e.g. "
                             "vary = {{ lr = [1e-3, 3e-4] }}")
        check_options(vary, where + " vary")
        fixed = check_options({k: v for k, v in entry.items() if k not in ENTRY_KEYS}, where)
        combos = [dict(zip(vary, values)) for values in itertools.product(*vary.values())] or [{}]
        for model in names:
            for combo in combos:
                ov = {**base, **fixed, **combo}
                for seed in seeds:
                    try:
                        cfg = resolve_config(model, data, epochs=epochs, seed=seed, profile="sweep", **ov)
                    except InputError as exc:
                        raise InputError(f"{_where(p, where)} (model {model}"
                                         f"{', ' + str(combo) if combo else ''}): {exc}") from None
                    job = Job(cfg.to_dict(), data_abs)
                    if job.identity not in seen:      # the same run named twice is trained once
                        seen.add(job.identity)
                        jobs.append(job)
    return Grid(name=p.stem, path=p, runs_dir=runs, jobs=jobs)


# ---------------------------------------------------------------- one job

class TrainJob:
    """The callable every job runs: train one run (or reuse / resume it), like ``cmlib train``.

    Checkpointable for submitit: on preemption or time-out (Slurm's ``USR2`` ahead of the limit)
    submitit requeues the same call, and the run resumes from its own last checkpoint.
    SIGTERM (``scancel``, a local cancel) stops the run cleanly: it is marked interrupted.
    """

    def __init__(self, threads: int | None = None, keep_models: bool = False,
                 checkpoint_interval_s: float | None = None, quiet: bool = False):
        self.threads = threads
        self.keep_models = keep_models
        self.checkpoint_interval_s = checkpoint_interval_s
        self.quiet = quiet

    def __call__(self, config: dict, data_path: str, runs_dir: str) -> dict:
        if self.threads:   # before TensorFlow is imported: a pool of k jobs shares the cores
            limit_threads(self.threads)

        def stop(signum, frame):
            raise KeyboardInterrupt(f"signal {signum}")

        signal.signal(signal.SIGTERM, stop)
        from .train import train_run

        t0 = time.time()
        try:
            r = train_run(config, runs_dir, data_path=data_path, verbose=not self.quiet,
                          keep_models=self.keep_models, checkpoint_interval_s=self.checkpoint_interval_s)
        except KeyboardInterrupt:
            return {"status": "interrupted", "seconds": time.time() - t0}
        return {"status": r.status, "reused": r.reused, "path": str(r.path), "seconds": time.time() - t0}

    def checkpoint(self, *args: Any, **kwargs: Any):
        submitit = submitit_module()

        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)


# ---------------------------------------------------------------- executors

@dataclasses.dataclass
class SlurmOptions:
    partition: str | None = None
    gpus_per_job: int = 0
    cpus_per_job: int = 2
    mem_gb: float | None = None
    time_min: int = 240
    array_parallelism: int = 64
    sbatch: dict[str, str] = dataclasses.field(default_factory=dict)
    setup: list[str] = dataclasses.field(default_factory=list)


def count_gpus() -> int:
    """NVIDIA GPUs visible to this process (``CUDA_VISIBLE_DEVICES`` respected), without importing TensorFlow."""
    vis = os.environ.get("CUDA_VISIBLE_DEVICES")
    if vis is not None:
        return len([v for v in vis.split(",") if v.strip() and v.strip() != "-1"])
    smi = shutil.which("nvidia-smi")
    if not smi:
        return 0
    import subprocess

    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


def local_workers(requested: int | None = None) -> tuple[int, int, int]:
    """(workers, threads per job, GPUs): one job per GPU, else one per core (capped by ``requested``)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    gpus = count_gpus()
    n = gpus if gpus else cores
    if requested is not None:
        if requested < 1:
            raise InputError(f"--workers {requested} must be at least 1")
        n = min(requested, n) if gpus else requested
    return n, max(1, cores // n), gpus


def _slurm_executor(folder: Path, opts: SlurmOptions):
    submitit = submitit_module()

    if not shutil.which("sbatch"):
        raise CmlibError("--executor slurm needs Slurm's sbatch on PATH (run on a cluster login node, or use "
                         "--executor local)")
    ex = submitit.SlurmExecutor(folder=folder, max_num_timeout=20)
    params: dict[str, Any] = dict(time=opts.time_min, cpus_per_task=opts.cpus_per_job, ntasks_per_node=1,
                                  nodes=1, array_parallelism=opts.array_parallelism, signal_delay_s=120,
                                  job_name="cmlib-sweep", setup=list(opts.setup))
    if opts.partition:
        params["partition"] = opts.partition
    if opts.gpus_per_job:
        params["gpus_per_node"] = opts.gpus_per_job
    if opts.mem_gb:
        params["mem"] = f"{int(opts.mem_gb * 1024)}M"
    if opts.sbatch:
        params["additional_parameters"] = dict(opts.sbatch)
    ex.update_parameters(**params)
    return ex


def parse_sbatch(items: Sequence[str] | None) -> dict[str, str]:
    """``--sbatch account=abc --sbatch qos=long`` -> {'account': 'abc', 'qos': 'long'}."""
    out = {}
    for item in items or []:
        key, sep, value = item.lstrip("-").partition("=")
        if not sep or not key:
            raise InputError(f"--sbatch expects KEY=VALUE (an sbatch option without its dashes), got '{item}', "
                             "e.g. --sbatch account=pn12ab --sbatch qos=normal")
        out[key.replace("-", "_")] = value
    return out


# ---------------------------------------------------------------- the sweep

@dataclasses.dataclass
class Outcome:
    identity: str
    state: str               # done / diverged / interrupted / failed / submitted
    job_id: str = ""
    log: str = ""
    message: str = ""


def _journal(grid: Grid) -> Path:
    return grid.sweep_dir / "jobs.jsonl"


def _record(grid: Grid, rows: Iterable[dict]) -> None:
    grid.sweep_dir.mkdir(parents=True, exist_ok=True)
    with open(_journal(grid), "a") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _result(job) -> tuple[str, Any] | None:
    """The job's (outcome, payload) from submitit's result file, or None while it has none."""
    import pickle

    path = job.paths.result_pickle
    if not path.exists():
        return None
    try:
        with open(path, "rb") as fh:
            return pickle.load(fh)
    except Exception:    # written while we read it: not there yet
        return None


def _outcome(grid: Grid, job: Job, sjob) -> Outcome:
    res = _result(sjob)
    log = str(sjob.paths.stderr)
    if res is None:
        return Outcome(job.identity, "failed", sjob.job_id, log, "the job ended without a result (killed, "
                       "cancelled or out of memory); see its log")
    kind, payload = res
    if kind == "success":
        st = payload.get("status", "")
        state = {"complete": "done", "diverged": "diverged"}.get(st, "interrupted")
        return Outcome(job.identity, state, sjob.job_id, log, "reused" if payload.get("reused") else "")
    last = str(payload).strip().splitlines()[-1] if str(payload).strip() else "error"
    return Outcome(job.identity, "failed", sjob.job_id, log, last)


def run_sweep(grid: Grid, *, executor: str = "local", workers: int | None = None,
              slurm: SlurmOptions | None = None, wait: bool = True, keep_models: bool = False,
              checkpoint_interval_s: float | None = None, poll_s: float = 2.0,
              echo=print) -> list[Outcome]:
    """Run every job of ``grid`` that is not finished; wait for them (unless ``wait=False`` on Slurm).

    Finished runs are skipped without a job. Returns one :class:`Outcome` per job.
    """
    submitit = submitit_module()

    from .train import is_locked

    grid.runs_dir.mkdir(parents=True, exist_ok=True)
    runs_abs = str(grid.runs_dir.resolve())
    todo, outcomes = [], []
    for job in grid.jobs:
        st = _run_state(grid.run_dir(job))
        if st in ("done", "diverged"):
            outcomes.append(Outcome(job.identity, st, message="finished before; reused"))
        elif st == "running" and is_locked(grid.run_dir(job)):
            outcomes.append(Outcome(job.identity, "running", message="another process is training it"))
        else:
            todo.append(job)
    echo(f"sweep {grid.name}: {len(grid.jobs)} runs, {len(grid.jobs) - len(todo)} finished or running, "
         f"{len(todo)} to {'submit' if executor == 'slurm' else 'run'} ({executor})")
    if not todo:
        return outcomes
    folder = grid.sweep_dir / "%j"
    if executor == "slurm":
        ex = _slurm_executor(folder, slurm or SlurmOptions())
        fn = TrainJob(threads=(slurm or SlurmOptions()).cpus_per_job, keep_models=keep_models,
                      checkpoint_interval_s=checkpoint_interval_s)
        sjobs = ex.map_array(fn, [j.config for j in todo], [j.data_path for j in todo], [runs_abs] * len(todo))
        _record(grid, ({"job_id": s.job_id, "identity": j.identity, "executor": "slurm", "time": time.time(),
                        "stderr": str(s.paths.stderr)} for s, j in zip(sjobs, todo)))
        echo(f"submitted Slurm array {sjobs[0].job_id.split('_')[0]} ({len(sjobs)} tasks); logs in "
             f"{grid.sweep_dir}")
        if not wait:
            return outcomes + [Outcome(j.identity, "submitted", s.job_id, str(s.paths.stderr))
                               for s, j in zip(sjobs, todo)]
        pending = list(zip(todo, sjobs))
        running: list = []
    else:
        n, threads, gpus = local_workers(workers)
        echo(f"local pool: {n} worker{'s' if n != 1 else ''}, {threads} thread{'s' if threads != 1 else ''} "
             f"each{', one GPU each' if gpus else ''}")
        ex = submitit.LocalExecutor(folder=folder)
        ex.update_parameters(timeout_min=60 * 24 * 30)
        fn = TrainJob(threads=threads, keep_models=keep_models, checkpoint_interval_s=checkpoint_interval_s)
        queue = list(todo)
        free_gpus = list(range(gpus))
        pending, running = [], []
    try:
        while True:
            if executor != "slurm":      # keep the pool full: at most n jobs at once, one per GPU
                while queue and len(running) < n:
                    job = queue.pop(0)
                    gpu = None
                    if gpus:
                        gpu = free_gpus.pop(0)
                        ex.update_parameters(gpus_per_node=1, visible_gpus=[gpu])
                    s = ex.submit(fn, job.config, job.data_path, runs_abs)
                    _record(grid, [{"job_id": s.job_id, "identity": job.identity, "executor": "local",
                                    "time": time.time(), "stderr": str(s.paths.stderr)}])
                    running.append((job, s, gpu))
            else:
                running = pending
            still = []
            for job, s, *gpu in running:
                if not _job_over(s, executor):
                    still.append((job, s, *gpu))
                    continue
                o = _outcome(grid, job, s)
                outcomes.append(o)
                echo(_format_outcome(o))
                if gpu and gpu[0] is not None:
                    free_gpus.append(gpu[0])
            running = still
            if executor == "slurm":
                pending = still
            if not still and (executor == "slurm" or not queue):
                break
            time.sleep(poll_s)
    except KeyboardInterrupt:
        if executor != "slurm":
            for _, s, *_ in running:
                s.cancel(check=False)       # SIGINT: the run stops cleanly and resumes next time
            echo("sweep interrupted: the running jobs were stopped and resume when the grid is run again")
        else:
            echo("stopped waiting; the Slurm jobs keep running (see `cmlib sweep GRID --status`)")
        raise
    return outcomes


def _job_over(sjob, executor: str) -> bool:
    """A job is over when submitit wrote its result file, or (Slurm) when it left the queue."""
    if sjob.paths.result_pickle.exists():
        return True
    if executor == "slurm":
        import subprocess

        try:
            out = subprocess.run(["squeue", "-h", "-j", sjob.job_id, "-o", "%T"], capture_output=True,
                                 text=True, timeout=60)
        except (OSError, subprocess.SubprocessError):
            return False
        if out.returncode != 0 and "Invalid job id" not in out.stderr:
            return False          # the controller did not answer: keep waiting
        states = out.stdout.split()
        if not states or all(s in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY",
                                    "NODE_FAIL", "BOOT_FAIL", "DEADLINE") for s in states):
            time.sleep(1.0)       # the result file is written just before the task leaves the queue
            return True
        return False
    return sjob.done()


def _format_outcome(o: Outcome) -> str:
    text = f"{o.state:<11} {o.identity}"
    if o.message:
        text += f"  ({o.message})"
    if o.state == "failed":
        text += f"\n            log: {o.log}"
    return text


# ---------------------------------------------------------------- status

def _run_state(run_dir: Path) -> str:
    from .train import is_locked

    status_file = run_dir / "status.json"
    if is_locked(run_dir):
        return "running"
    if not status_file.exists():
        return "pending"
    try:
        st = json.loads(status_file.read_text()).get("status", "")
    except (OSError, ValueError):
        return "interrupted"
    return {"complete": "done", "diverged": "diverged"}.get(st, "interrupted")


def _latest_jobs(grid: Grid) -> dict[str, dict]:
    latest: dict[str, dict] = {}
    if _journal(grid).exists():
        for line in _journal(grid).read_text().splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue       # a line cut by a crash
            latest[row["identity"]] = row
    return latest


def sweep_status(grid: Grid) -> list[dict]:
    """One row per run: identity, model, seed, state (see :data:`STATES`), job id and log of its last job.

    A run that is not finished and not running whose last job raised (or ended without a
    result) is *failed*; one with a checkpoint but no live lock is *interrupted*.
    """
    import pickle

    latest = _latest_jobs(grid)
    rows = []
    for job in grid.jobs:
        state = _run_state(grid.run_dir(job))
        row = {"identity": job.identity, "model": job.config["model"], "seed": job.config["seed"],
               "state": state, "job_id": "", "log": "", "message": ""}
        j = latest.get(job.identity)
        if j:
            row["job_id"], row["log"] = j["job_id"], j.get("stderr", "")
            if state in ("pending", "interrupted"):
                res_file = Path(row["log"]).with_name(f"{j['job_id']}_0_result.pkl")
                if res_file.exists():
                    try:
                        kind, payload = pickle.loads(res_file.read_bytes())
                    except Exception:
                        kind, payload = "", None
                    if kind == "error":
                        row["state"] = "failed"
                        row["message"] = str(payload).strip().splitlines()[-1] if payload else ""
                elif state == "pending":
                    row["state"] = "pending"
        rows.append(row)
    return rows


def format_status(grid: Grid, rows: Sequence[dict]) -> str:
    """A per-model table of counts, then the failed runs with their logs."""
    models = list(dict.fromkeys(r["model"] for r in rows))
    head = f"{'model':<16}" + "".join(f"{s:>12}" for s in STATES) + f"{'total':>8}"
    lines = [f"sweep {grid.name} ({grid.path}), runs in {grid.runs_dir}", head]
    for m in models:
        mine = [r for r in rows if r["model"] == m]
        lines.append(f"{m:<16}" + "".join(f"{sum(r['state'] == s for r in mine):>12}" for s in STATES)
                     + f"{len(mine):>8}")
    failed = [r for r in rows if r["state"] == "failed"]
    for r in failed:
        lines.append(f"failed: {r['identity']} (job {r['job_id']}): {r['message']}\n        log: {r['log']}")
    return "\n".join(lines)


# ---------------------------------------------------------------- grids of run requests

def grid_from_requests(name: str, requests: Sequence, root: str | os.PathLike, runs_dir: str | os.PathLike) -> Grid:
    """A grid of run requests (e.g. the book's :class:`cmlib.book.runs.RunRequest`): one job per (request, seed).

    A request has ``data`` (relative to ``root``), ``seeds`` and ``config(seed, root)`` (a RunConfig); each
    job's configuration is the one the request names, so its reader finds the run like one trained in-process.
    """
    root = Path(root)
    jobs, seen = [], set()
    for req in requests:
        data_abs = str((root / req.data).resolve())
        for seed in req.seeds:
            job = Job(req.config(seed, root).to_dict(), data_abs)
            if job.identity not in seen:
                seen.add(job.identity)
                jobs.append(job)
    return Grid(name=name, path=Path(f"<{name}>"), runs_dir=Path(runs_dir), jobs=jobs)
