"""Build the book: data -> runs -> executed notebooks -> HTML, for one profile.

``cmlib book --profile laptop`` (what ``make book`` runs) does, in order:

1. **data**: simulate the profile's mock catalogue if it is missing or was
   made by a different generator version (deterministic, so regenerating is safe);
2. **runs**: train every ``train``-source plan of the profile (completed runs
   with the same configuration are reused, interrupted ones resume); this module is
   the only part of :mod:`cmlib.book` that trains;
3. **notebooks**: execute each template in ``notebooks/`` with papermill into
   ``book/generated/`` with the profile's parameters; a notebook whose inputs
   (template, parameters, cmlib code, data, run artifacts) did not change is
   not executed again; then the generated pieces: the table of contents of the
   profile's pages and the findings (the answer in short) that the intro and conclusion include;
4. **html**: ``jupyter-book build`` with warnings as errors, into ``_build/html``
   (the teacher's build, with the exercise solutions shown, into ``_build/teacher/_build/html``).

Every step is idempotent, so a second ``make book`` takes seconds.
The book root is passed explicitly; the smoke book of the test suite is built in a
scratch directory, into which the book sources are copied from ``source`` first.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .._io import atomic_write_text, stable_hash, to_json
from ..errors import CmlibError, InputError
from . import runs as R
from .profiles import Profile, RunPlan, deep_models, display_name, get_profile

#: What a book root holds (copied into a scratch root by :func:`prepare_root`): the book's own files,
#: the committed run artifacts and the measured benchmark numbers the pages quote.
SOURCES = ("_config.yml", "_toc.yml", "_static", "_assets", "book", "notebooks", "references.bib",
           "results/runs", "results/tune", "results/mock", "benchmarks/results")
GENERATED = Path("book") / "generated"
#: The files that make a folder a book root.
ROOT_MARKERS = ("_config.yml", "notebooks")


def checkout_root() -> Path | None:
    """The repository checkout this cmlib is imported from (a development install), or None.

    Found, not assumed: the folder above the package that holds the book sources. An installed
    cmlib (a wheel in site-packages) has none; then pass the book root explicitly.
    """
    import cmlib

    cand = Path(cmlib.__file__).resolve().parent.parent
    return cand if all((cand / m).exists() for m in ROOT_MARKERS) and (cand / "_toc.yml").exists() else None


def is_book_root(root: Path) -> bool:
    return all((Path(root) / m).exists() for m in ROOT_MARKERS)


@dataclass(frozen=True)
class NotebookJob:
    """One executed page: a template and its papermill parameters."""

    name: str            # output path under book/generated, without .ipynb
    template: str        # file in notebooks/
    params: dict
    title: str = ""      # replaces the template's first heading (one template, many pages)
    #: the worked example among the pages of one template: cells tagged ``teach`` show their code
    show_code: bool = False


#: The architecture page whose code is shown, as a worked example of how a page is made.
WORKED_EXAMPLE = "basic"


def _model_title(m: str) -> str:
    from .thesis import SECTIONS

    return (f"{display_name(m)} (thesis Sect. {SECTIONS[m]})" if m in SECTIONS
            else f"{display_name(m)}: " + ("the published baseline" if m == "krippendorf2023" else "an added model"))


def notebook_jobs(profile: Profile) -> list[NotebookJob]:
    """The pages of the book for a profile, in reading order."""
    base = {"profile": profile.name, "data": profile.data.path}
    jobs = [
        NotebookJob("physics", "physics.ipynb", {"profile": profile.name}),
        NotebookJob("cnn_fundamentals", "cnn_fundamentals.ipynb", dict(base)),
        NotebookJob("data_catalogue", "data_catalogue.ipynb", dict(base)),
        NotebookJob("data_preparation", "data_preparation.ipynb", dict(base)),
        NotebookJob("training_parameters", "training_parameters.ipynb", dict(base)),
    ]
    for m in profile.pages():
        jobs.append(NotebookJob(f"models/{m}", "architecture.ipynb", {**base, "model": m}, _model_title(m),
                                show_code=m == WORKED_EXAMPLE))
    jobs += [
        NotebookJob("results", "results.ipynb", dict(base)),
        NotebookJob("explorer", "explorer.ipynb", dict(base)),
        NotebookJob("beyond", "beyond.ipynb", dict(base)),
        NotebookJob("tuning", "tuning.ipynb", {"profile": profile.name}),
        NotebookJob("exercises", "exercises.ipynb", dict(base)),
        NotebookJob("class_table", "class_table.ipynb", {"profile": profile.name,
                                                         "hand_ins": str(GENERATED / "hand-ins")}),
    ]
    return jobs


def toc(profile: Profile) -> dict:
    """The table of contents of a profile's book (``_toc.yml``), from its pages and the registry."""
    g = "book/generated/"
    return {
        "format": "jb-book",
        "root": "book/intro",
        "parts": [
            {"caption": "Background", "chapters": [{"file": g + "physics"}, {"file": g + "cnn_fundamentals"}]},
            {"caption": "Training the neural network",
             "chapters": [{"file": g + "data_catalogue"}, {"file": g + "data_preparation"},
                          {"file": g + "training_parameters"}]},
            {"caption": "Results",
             "chapters": [{"file": "book/architectures",
                           "sections": [{"file": f"{g}models/{m}"} for m in profile.pages()]},
                          {"file": g + "results"}, {"file": g + "explorer"}]},
            {"caption": "Beyond the thesis",
             "chapters": [{"file": g + "beyond"}, {"file": g + "tuning"}, {"file": "book/conclusion"}, {"file": "book/reproduce"}]},
            {"caption": "Classroom",
             "chapters": [{"file": "book/classroom"}, {"file": g + "exercises"}, {"file": g + "class_table"}]},
            {"caption": "Appendix", "chapters": [{"file": "book/physics_facts"}, {"file": "book/bibliography"},
                                                 {"file": "book/cite"}]},
        ],
    }


TOC_HEADER = ("# Table of contents of the book (laptop and thesis profiles). Generated from the model registry by\n"
              "# cmlib.book.build.toc(); `cmlib book` writes each profile's own into book/generated/_toc.yml, and a\n"
              "# test checks that this file is the generated one. Pages under book/generated/ are executed notebooks.\n")


def toc_pages(toc_dict: dict) -> list[str]:
    """The page files of a table of contents (as :func:`toc` returns it or ``_toc.yml`` holds it), in reading order."""
    files = [toc_dict["root"]]
    for part in toc_dict["parts"]:
        for ch in part["chapters"]:
            files.append(ch["file"])
            files += [s["file"] for s in ch.get("sections", [])]
    return files


def toc_text(profile: Profile) -> str:
    import yaml

    return TOC_HEADER + yaml.safe_dump(toc(profile), sort_keys=False)


# ---------------------------------------------------------------- steps

def _log(msg: str) -> None:
    print(f"[cmlib book] {msg}", flush=True)


def prepare_root(root: Path, source: Path | None = None) -> Path:
    """Make ``root`` a book root: copy the book sources from ``source`` there (if given and different).

    Without ``source``, ``root`` must already be a book root (a checkout of the repository), or
    the checkout this cmlib runs from is used as the source.
    """
    root = Path(root).resolve()
    if source is None and not is_book_root(root):
        source = checkout_root()
        if source is None:
            raise InputError(f"'{root}' is not a book root (it has no _config.yml and notebooks/) and this cmlib "
                             "was not installed from a checkout of the repository; run `cmlib book` in a clone of "
                             "the repository, or pass --source CLONE to copy the book sources into the root.")
    if source is None or Path(source).resolve() == root:
        return root
    source = Path(source).resolve()
    if not is_book_root(source):
        raise InputError(f"--source '{source}' holds no book sources (_config.yml, notebooks/)")
    root.mkdir(parents=True, exist_ok=True)
    for name in SOURCES:
        src = source / name
        dst = root / name
        if src.is_dir():
            shutil.copytree(src, dst, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("generated", ".ipynb_checkpoints", "__pycache__"))
        elif src.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
    return root


def ensure_data(profile: Profile, root: Path, *, replace: bool = False) -> Path:
    """Simulate the profile's data file unless an up-to-date one exists.

    A file at the data path that cmlib's simulator did not make (an imported or foreign file,
    or not HDF5 at all) is never replaced: that is a clear error unless ``replace`` is set.
    A simulated file of another generator version or size is regenerated (it is deterministic).
    """
    from .. import simulate

    path = root / profile.data.path
    if path.exists():
        ours = False
        try:
            import h5py

            with h5py.File(path, "r") as f:
                ours = str(f.attrs.get("source", "")) == "cmlib.simulate"
        except (OSError, ValueError, KeyError):
            ours = False
        if not ours and not replace:
            raise CmlibError(f"{path} exists and was not made by `cmlib simulate`; the {profile.name} profile would "
                             "replace it with the mock catalogue. Move your file elsewhere (and point a page at it "
                             "with `-p data ...`), or rebuild with --replace-data to let it be overwritten")
        try:
            import h5py

            with h5py.File(path, "r") as f:
                ok = (int(f.attrs.get("n_clusters", -1)) == profile.data.n
                      and int(f.attrs.get("seed", -1)) == profile.data.seed
                      and str(f.attrs.get("physics_version", "")) == simulate.PHYSICS_VERSION
                      and json.loads(f.attrs.get("generator_params", "{}")) == json.loads(
                          to_json(simulate.params_to_dict(simulate.SimulationParams()))))
        except (OSError, ValueError, KeyError):
            ok = False
        if ok:
            _log(f"data: reusing {path.relative_to(root)}")
            return path
        _log(f"data: {path.relative_to(root)} was made by another generator version or size; regenerating")
    t = time.time()
    simulate.simulate_to_file(path, n=profile.data.n, seed=profile.data.seed, overwrite=True, progress=True)
    _log(f"data: simulated {profile.data.n} clusters in {time.time() - t:.0f} s -> {path.relative_to(root)}")
    return path


def plan_request(profile: Profile, plan: RunPlan) -> R.RunRequest:
    return R.RunRequest(plan.model, profile.data.path, plan.epochs, tuple(plan.seeds), dict(plan.overrides),
                        runs_dir=plan.runs_dir, profile=profile.name)


def train_plans(profile: Profile, root: Path, *, plans: Sequence[RunPlan] | None = None,
                keep_models: bool | None = None, sweep: dict | None = None, name: str = "book") -> bool:
    """Train (or reuse) every ``train``-source plan of the profile (or ``plans``).

    With ``sweep`` (keyword arguments of :func:`cmlib.sweep.run_sweep`: ``executor``, ``workers``,
    ``slurm``, ``wait``) the plans run as jobs of a grid (``cmlib sweep --profile``) instead of in this
    process. Returns False when jobs were submitted and not waited for (or are trained by another
    process): the runs are not ready yet.
    """
    todo = plans if plans is not None else _train_plans(profile)
    keep = profile.keep_models if keep_models is None else keep_models
    if sweep is not None:
        return _sweep_plans(profile, root, todo, keep, sweep, name)
    for plan in todo:
        t = time.time()
        runs = R.train(plan_request(profile, plan), root, keep_models=keep)
        label = f" [{plan.label}]" if plan.label else ""
        _log(f"runs: {plan.model}{label}: {len(runs)} seed(s) ready in {time.time() - t:.0f} s")
    return True


def _train_plans(profile: Profile) -> list[RunPlan]:
    return [p for p in list(profile.models.values()) + list(profile.experiments.values()) if p.source == "train"]


def sweep_grid(profile: Profile, root: Path, plans: Sequence[RunPlan] | None = None, name: str = "book"):
    """The grid (:class:`cmlib.sweep.Grid`) of a profile's plans: the runs its pages look for, as jobs.

    Its runs folder is the one the pages read (``runs/``, ``results/runs`` for stored plans, or
    ``cmlib book --runs DIR``); its jobs' logs are in ``<runs>/.sweep/<name>-<profile>/``.
    """
    from .. import sweep

    todo = list(plans) if plans is not None else _train_plans(profile)
    dirs = {plan.runs_dir for plan in todo}
    if len(dirs) > 1:
        raise CmlibError(f"plans of one grid must share a runs folder; got {sorted(dirs)}")
    runs_dir = R.runs_path(Path(root), dirs.pop() if dirs else R.TRAINED_RUNS_DIR)
    return sweep.grid_from_requests(f"{name}-{profile.name}", [plan_request(profile, p) for p in todo], root, runs_dir)


def _sweep_plans(profile: Profile, root: Path, plans: Sequence[RunPlan], keep: bool, options: dict,
                 name: str) -> bool:
    from .. import sweep

    if not plans:
        return True
    grid = sweep_grid(profile, root, plans, name)
    outcomes = sweep.run_sweep(grid, keep_models=keep, echo=lambda m: _log(f"runs: {m}"), **options)
    failed = [o for o in outcomes if o.state in ("failed", "interrupted")]
    if failed:
        raise CmlibError(f"{len(failed)} of {len(outcomes)} runs did not finish ("
                         + "; ".join(f"{o.identity}: {o.state}{', log ' + o.log if o.log else ''}" for o in failed[:5])
                         + "). Rerun the same command: finished runs are reused, interrupted ones resume.")
    return not any(o.state in ("submitted", "running") for o in outcomes)


def grid_text(profile: Profile) -> str:
    """The grid file of a profile's training plans (``examples/thesis_grid.toml`` is the thesis profile's).

    ``cmlib sweep`` on this file trains the same runs as ``cmlib sweep --profile`` and ``cmlib book
    --executor``; a test checks the committed file against this text, so the two cannot drift.
    Plans with the same budget and options share one entry.
    """
    import json as _json

    entries: dict[tuple, list[str]] = {}
    for p in _train_plans(profile):
        key = (p.epochs, tuple(p.seeds), tuple(sorted(p.overrides.items())))
        if p.model not in entries.setdefault(key, []):
            entries[key].append(p.model)

    def seeds_text(seeds: tuple[int, ...]) -> str:
        if len(seeds) > 1 and list(seeds) == list(range(seeds[0], seeds[-1] + 1)):
            return f'"{seeds[0]}-{seeds[-1]}"'
        return _json.dumps(",".join(str(s) for s in seeds))

    lines = [f"# The training plans of the book's '{profile.name}' profile (`cmlib profiles`): {profile.description}.",
             "# Generated by cmlib.book.build.grid_text (a test checks that this file is the generated one): edit",
             "# the profile in cmlib/book/profiles.py, not this file. The same runs, without this file:",
             f"#   cmlib sweep --profile {profile.name} --executor slurm --partition gpu --gpus-per-job 1 --time 2880",
             f"#   cmlib book --profile {profile.name} --executor slurm --partition gpu --gpus-per-job 1 --time 2880",
             f'data = "{profile.data.path}"', 'runs_dir = "runs"']
    for (epochs, seeds, over), models in entries.items():
        lines += ["", "[[run]]", f'model = "{models[0]}"' if len(models) == 1 else
                  "models = [" + ", ".join(f'"{m}"' for m in models) + "]",
                  f"epochs = {epochs}", f"seeds = {seeds_text(seeds)}"]
        lines += [f"{k} = {_json.dumps(v)}" for k, v in over]
    return "\n".join(lines) + "\n"


def train_request(model: str, profile: str = "laptop", *, root: str | Path = ".", experiment: str | None = None,
                  data: str | None = None, epochs: int | None = None, seeds=None, **overrides) -> list:
    """The build step a re-executed page calls (``-p train_missing True``): train what it will read.

    Takes the page's parameters, makes the same request :func:`cmlib.book.pages.find_page_runs`
    looks for, and trains (or reuses, or resumes) it: the command line equivalent is the
    ``cmlib train`` command that the page prints when a run is missing.
    """
    from .pages import request_for

    prof = get_profile(profile)
    _, req = request_for(model, profile, experiment=experiment, data=data, epochs=epochs, seeds=seeds, **overrides)
    if req.runs_dir == R.STORED_RUNS_DIR:
        return []           # committed runs: made by `cmlib stored-runs`, never by a page
    return R.train(req, Path(root), keep_models=prof.keep_models, verbose=False)


def _tree_hash(paths: Sequence[Path], patterns: Sequence[str]) -> str:
    h = hashlib.sha256()
    for base in paths:
        if not base.exists():
            continue
        for pat in patterns:
            for f in sorted(base.rglob(pat)):
                if f.is_file() and "checkpoints" not in f.parts:
                    h.update(str(f.relative_to(base)).encode())
                    h.update(f.read_bytes())
    return h.hexdigest()[:16]


def _inputs_key(job: NotebookJob, root: Path, code_hash: str, runs_hash: str) -> str:
    tpl = (root / "notebooks" / job.template).read_bytes()
    data_file = root / job.params.get("data", "") if job.params.get("data") else None
    data_hash = ""
    if data_file is not None and data_file.exists():
        import h5py

        with h5py.File(data_file, "r") as f:
            data_hash = str(f.attrs.get("content_sha256", ""))
    return stable_hash({"template": hashlib.sha256(tpl).hexdigest(), "params": job.params,
                        "code": code_hash, "data": data_hash, "runs": runs_hash}, 20)


#: A cell that runs longer than this has hung (the slowest, building every deep model, takes ~2 min on
#: two busy cores; pages never train): the page is executed once more in a fresh kernel, then the build
#: stops with an error instead of waiting for ever.
CELL_TIMEOUT_S = 600


def _code_hash() -> str:
    import cmlib

    return _tree_hash([Path(cmlib.__file__).resolve().parent], ["*.py"])


def notebook_workers() -> int:
    """How many notebooks execute at once: ``CMLIB_BOOK_WORKERS``, else 2 where there are >= 2 cores.

    A page's kernel spends much of its time starting up, importing and waiting on single-threaded
    Python, so two at a time use two cores better than one; more rarely pays on a laptop.
    """
    env = os.environ.get("CMLIB_BOOK_WORKERS", "").strip()
    if env:
        try:
            n = int(env)
        except ValueError:
            raise InputError(f"CMLIB_BOOK_WORKERS={env!r} is not a whole number; set it to e.g. 1 or 2") from None
        if n < 1:
            raise InputError(f"CMLIB_BOOK_WORKERS={n} must be at least 1")
        return n
    return 2 if (os.cpu_count() or 1) >= 2 else 1


#: The page kernels' own log is kept off the build's output on a page's first execution: ipykernel 7 warns at
#: every start that its local TCP socket is unencrypted and logs "KeyboardInterrupt caught in kernel" when
#: nbclient shuts it down, twenty alarming lines per build that say nothing about the pages.  A failing cell
#: still raises in the build (the page is kept as FAILED), and a cell's own warnings are its stderr output
#: (which tests/test_book.py keeps out of every page).  What the quiet log could hide is a kernel's own failure
#: (a connection file it cannot load, an exception in its message handler): the build then sees a dead kernel
#: or a cell that never answers, and executes the page once more with the kernel's log at its default level,
#: so that a second failure shows its cause.
KERNEL_ARGS = ["--IPKernelApp.log_level=CRITICAL"]


def execute_notebooks(profile: Profile, root: Path, *, only: Sequence[str] | None = None,
                      force: bool = False, kernel: str = "python3", workers: int | None = None) -> list[str]:
    """Execute the profile's pages with papermill (``workers`` at a time, default
    :func:`notebook_workers`); returns the names that were (re)executed, in the profile's order.

    Pages are independent (each reads runs and writes only its own output; shared caches are
    written atomically), so they may run in any order.  If a page fails, the pages not yet
    started are not started, the running ones finish, and the first failure is raised.
    """
    import concurrent.futures as cf

    import nbformat
    import papermill as pm
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    # kernels inherit our environment: make sure figures go inline even if the caller set
    # MPLBACKEND (e.g. Agg in scripts and tests), or plt.show() would draw nothing
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    code_hash = _code_hash()
    runs_hash = _tree_hash([R.runs_path(root, R.TRAINED_RUNS_DIR), R.runs_path(root, R.STORED_RUNS_DIR),
                            root / "benchmarks" / "results", root / "results" / "tune",
                            root / GENERATED / "hand-ins"], ["status.json", "metrics.json", "*.json"])
    launch = launch_links(root)

    def run_job(job: NotebookJob) -> str | None:
        out = root / GENERATED / f"{job.name}.ipynb"
        key = _inputs_key(job, root, code_hash, stable_hash([runs_hash, launch], 12))
        if out.exists() and not force:
            try:
                meta = nbformat.read(out, as_version=4).metadata.get("cmlib", {})
            except Exception:  # noqa: BLE001 - an unreadable output is simply re-executed
                meta = {}
            if meta.get("inputs_key") == key:
                _log(f"notebooks: {job.name} up to date")
                return None
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.stem}.tmp.ipynb")
        t = time.time()
        pending = pending_runs_page(job, profile, root)
        if pending is not None:        # stored runs still in the compute queue: say so, do not fail the book
            pending.metadata["cmlib"] = {"inputs_key": key, "profile": profile.name, "template": job.template,
                                         "params": job.params, "pending": True}
            nbformat.write(pending, tmp)
            os.replace(tmp, out)
            _log(f"notebooks: {job.name}: runs pending (page says so)")
            return job.name
        try:
            for attempt in (1, 2):
                try:
                    pm.execute_notebook(str(root / "notebooks" / job.template), str(tmp), parameters=job.params,
                                        kernel_name=kernel, cwd=str(root), progress_bar=False, log_output=False,
                                        request_save_on_cell_execute=False, execution_timeout=CELL_TIMEOUT_S,
                                        start_timeout=120,
                                        extra_arguments=KERNEL_ARGS if attempt == 1 else [])
                    break
                except (CellTimeoutError, DeadKernelError) as exc:
                    # a kernel that died, or a cell that never answered: seen on loaded machines when a
                    # kernel message is lost (both sides idle; nteract/papermill#711, jupyter_client#922);
                    # the page is executed once more in a fresh kernel, then the error stands
                    tmp.unlink(missing_ok=True)
                    if attempt == 2:
                        raise CmlibError(f"notebook '{job.name}' ({job.template}) did not finish twice: "
                                         f"{type(exc).__name__}: {exc}") from None
                    _log(f"notebooks: {job.name}: {type(exc).__name__} ({str(exc).splitlines()[0][:120]}); "
                         "executing it once more in a fresh kernel")
        except pm.PapermillExecutionError as exc:
            failed = root / GENERATED / f"{job.name}.FAILED.ipynb"
            if tmp.exists():
                os.replace(tmp, failed)
            raise CmlibError(f"notebook '{job.name}' ({job.template}) failed in cell {exc.exec_count}: "
                             f"{exc.ename}: {exc.evalue}\nThe executed notebook is kept at {failed}.") from None
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        nb = nbformat.read(tmp, as_version=4)
        _portable_metadata(nb, root)
        finish_page(nb, job, profile, launch)
        nb.metadata["cmlib"] = {"inputs_key": key, "profile": profile.name, "template": job.template,
                                "params": job.params, "seconds": round(time.time() - t, 1)}
        nbformat.write(nb, tmp)
        os.replace(tmp, out)
        (root / GENERATED / f"{job.name}.FAILED.ipynb").unlink(missing_ok=True)
        _log(f"notebooks: {job.name} executed in {time.time() - t:.0f} s")
        return job.name

    jobs = [j for j in notebook_jobs(profile) if not only or j.name in only or j.name.split("/")[-1] in only]
    n = max(1, min(workers or notebook_workers(), len(jobs) or 1))
    if n == 1:
        return [name for name in (run_job(j) for j in jobs) if name]
    with cf.ThreadPoolExecutor(max_workers=n, thread_name_prefix="cmlib-page") as pool:
        futures = [pool.submit(run_job, j) for j in jobs]
        try:
            for f in cf.as_completed(futures):
                if f.exception() is not None:
                    for other in futures:
                        other.cancel()      # pages not started yet are not started
                    break
        except BaseException:
            for other in futures:
                other.cancel()
            raise
    names = []
    for f in futures:          # the first failure, in the profile's order, is raised
        if f.cancelled():
            continue
        if f.exception() is not None:
            raise f.exception()
        if f.result():
            names.append(f.result())
    return names


def pending_runs_page(job: NotebookJob, profile: Profile, root: Path):
    """For an architecture page whose *stored* runs are not finished yet: a short page saying so, else None.

    The stored runs come from a compute plan that takes days on two CPU cores (``cmlib
    stored-runs``); a page whose runs are still queued states which seeds exist, which are in
    progress (epoch reached, read from their status files) and the command that makes them,
    instead of stopping the book.
    """
    import nbformat

    from . import pages
    from .pages import _cmd_block

    model = job.params.get("model")
    if job.template != "architecture.ipynb" or model is None:
        return None
    plan = profile.plan(model)
    if plan.source != "stored":
        return None
    pr = pages.find_page_runs(model, profile.name, root=root)
    if pr.finished:
        return None
    states = R.seed_states(pr.request, root)
    started = any(st is not None for st in states.values())
    lines = [f"# {job.title or pages.display_name(model)}", "",
             f":::{{admonition}} {'Runs in progress' if started else 'Runs not started yet'}", ":class: warning",
             f"The stored runs of {pages.display_name(model)} ({pages.counted(len(plan.seeds), 'seed')}, up to {plan.epochs} epochs, "
             f"the fair protocol of the results chapter) are part of the book's compute plan but have not finished "
             "yet, so this page shows no results. " + R.progress_text(pr.request, root, states), ":::", "",
             "Make them (resumable; on two CPU cores a deep model takes hours per seed, on a GPU minutes):", "",
             "```bash", _cmd_block(f"cmlib stored-runs --models {model}"), "```", "",
             "or directly:", "", "```bash", _cmd_block(pr.request.command()), "```"]
    lines += ["", *pages.thesis_result_lines(model)]
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_markdown_cell("\n".join(lines)))
    return nb


def _portable_metadata(nb, root: Path) -> None:
    """Papermill records the input and output paths of an execution: keep them relative to the book root,
    so that the published sources (``_build/html/_sources``) hold no machine's paths."""
    pm_meta = nb.metadata.get("papermill", {})
    for key in ("input_path", "output_path"):
        if pm_meta.get(key):
            p = Path(pm_meta[key])
            try:
                pm_meta[key] = p.resolve().relative_to(Path(root).resolve()).as_posix()
            except ValueError:
                pm_meta[key] = p.name
            if p.name.startswith(".") and ".tmp." in p.name:     # the temporary name of the output
                pm_meta[key] = pm_meta[key].replace(".tmp.ipynb", ".ipynb").replace("/.", "/").lstrip(".")


def finish_page(nb, job: NotebookJob, profile: Profile, launch: Sequence[tuple[str, str]] = ()) -> None:
    """Turn an executed template into a page: its title, its sections, its code visibility, its footer.

    * cells tagged ``section:<name>`` are dropped where the page declared the section
      inapplicable (:func:`cmlib.book.pages.declare_sections`); the declaration is removed;
    * the parameters stay visible but collapsed;
    * on the worked-example page (``job.show_code``) cells tagged ``teach`` show their code,
      collapsed (``hide-input``) instead of removed.
    """
    import nbformat

    from .pages import SECTIONS_MIME

    flags: dict = {}
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        keep = []
        for out in cell.get("outputs", []):
            if SECTIONS_MIME in out.get("data", {}):
                flags.update(out["data"][SECTIONS_MIME])
            else:
                keep.append(out)
        cell["outputs"] = keep

    def wanted(cell) -> bool:
        for tag in cell.metadata.get("tags", []):
            if tag.startswith("section:") and not flags.get(tag.split(":", 1)[1], True):
                return False
        return True

    nb.cells = [c for c in nb.cells if wanted(c)]
    if job.title:
        _retitle(nb, job.title)
    for cell in nb.cells:
        tags = cell.metadata.setdefault("tags", [])
        if ("parameters" in tags or "injected-parameters" in tags) and "hide-input" not in tags:
            tags.append("hide-input")
        if job.show_code and "teach" in tags and "remove-input" in tags:
            tags.remove("remove-input")
            tags.append("hide-input")
    nb.cells.append(nbformat.v4.new_markdown_cell(_footer(job, profile, launch)))


def _footer(job: NotebookJob, profile: Profile, launch: Sequence[tuple[str, str]] = ()) -> str:
    """How to open and re-execute this page (appended to every executed page)."""
    from .pages import _cmd_block

    params = " ".join(f"-p {k} {v}" for k, v in job.params.items())
    links = ""
    if launch:
        links = ("\n\nOpen the template in the cloud or on your university's hub: " +
                 " \u00b7 ".join(f"[{name}]({url.format(path='notebooks/' + job.template)})" for name, url in launch)
                 + ".")
    return ("```{admonition} Run this page yourself\n:class: note\n"
            f"This page is the notebook `notebooks/{job.template}` executed with the `{profile.name}` profile. "
            "Open it in JupyterLab with `make lab` (or `.venv/bin/jupyter lab "
            f"notebooks/{job.template}`), or re-execute it with papermill:\n\n"
            "```bash\n" + _cmd_block(f".venv/bin/papermill notebooks/{job.template} out.ipynb {params}") + "\n```\n"
            f"\nThe download button at the top of the page gives you this executed notebook.{links}\n```\n")


def launch_links(root: Path) -> list[tuple[str, str]]:
    """Launch links of the pages' templates, from ``_config.yml`` (none until a URL is set there).

    ``repository.url`` (a GitHub or GitLab URL) with ``launch_buttons.binderhub_url`` gives a Binder
    link, with ``launch_buttons.jupyterhub_url`` an nbgitpuller link for a university JupyterHub,
    and with ``launch_buttons.colab_url`` a Colab link (GitHub only). Each URL has a ``{path}`` slot.
    """
    import urllib.parse

    import yaml

    cfg_file = Path(root) / "_config.yml"
    if not cfg_file.exists():
        return []
    cfg = yaml.safe_load(cfg_file.read_text()) or {}
    repo = ((cfg.get("repository") or {}).get("url") or "").rstrip("/")
    branch = (cfg.get("repository") or {}).get("branch") or "main"
    lb = cfg.get("launch_buttons") or {}
    if not repo:
        return []
    out = []
    parsed = urllib.parse.urlparse(repo)
    slug = parsed.path.strip("/")
    if lb.get("binderhub_url"):
        kind = "gh" if "github.com" in parsed.netloc else "gl"
        out.append(("Binder", f"{lb['binderhub_url'].rstrip('/')}/v2/{kind}/{slug}/{branch}?urlpath=lab/tree/{{path}}"))
    if lb.get("jupyterhub_url"):
        name = slug.split("/")[-1]
        out.append(("JupyterHub", f"{lb['jupyterhub_url'].rstrip('/')}/hub/user-redirect/git-pull?repo="
                                  f"{urllib.parse.quote(repo, safe='')}&branch={branch}&urlpath=lab/tree/{name}/{{path}}"))
    if lb.get("colab_url") and "github.com" in parsed.netloc:
        out.append(("Colab", f"{lb['colab_url'].rstrip('/')}/github/{slug}/blob/{branch}/{{path}}"))
    return out


def _retitle(nb, title: str) -> None:
    """Replace the first Markdown heading of a notebook (the page title)."""
    for cell in nb.cells:
        if cell.cell_type == "markdown" and cell.source.lstrip().startswith("# "):
            lines = cell.source.lstrip().splitlines()
            cell.source = "\n".join([f"# {title}"] + lines[1:])
            return


def write_generated(profile: Profile, root: Path) -> None:
    """The generated pieces of the book: the profile's table of contents, the findings (the answer in short) and the
    run inventory (what was actually run, per model)."""
    from .comparison import (fair_comparison, fair_members, findings_paragraph, thesis_protocol_comparison,
                             thesis_protocol_members)
    from .pages import find_page_runs, remedies_markdown, run_inventory_markdown

    gen = root / GENERATED
    gen.mkdir(parents=True, exist_ok=True)
    atomic_write_text(gen / "_toc.yml", toc_text(profile))
    pages = {m: find_page_runs(m, profile.name, root=root) for m in profile.pages()}
    members = fair_members(profile.name, root=root)
    fair = fair_comparison(members)
    remedies = remedies_markdown(members, profile.name, root=root)
    proto = thesis_protocol_comparison(thesis_protocol_members(profile.name, root=root), fair,
                                       basic_runs=members.get("basic"), root=root)
    atomic_write_text(gen / "findings.md", findings_paragraph(pages, profile.name, fair=fair, proto=proto)
                      + ("\n\n" + remedies if remedies else "") + "\n")
    atomic_write_text(gen / "run_inventory.md", run_inventory_markdown(profile.name, root))


def write_demo_hand_in(profile: Profile, root: Path) -> None:
    """A hand-in made from this build's own runs, so the class-table page shows a real example."""
    from .handin import hand_in

    out = root / GENERATED / "hand-ins"
    out.mkdir(parents=True, exist_ok=True)
    hand_in("example-student", root=root, out=out / "example-student.json", runs_dir=R.TRAINED_RUNS_DIR,
            profile=profile.name)


def build_html(root: Path, *, teacher: bool = False) -> Path:
    """``jupyter-book build`` with warnings as errors; returns the entry page.

    The student build hides the exercise solutions (sphinx-exercise's ``hide_solutions``); the
    teacher's build (``teacher=True``) shows them, into ``_build/teacher``.
    """
    import yaml

    jb = Path(sys.executable).with_name("jupyter-book")
    out = root / "_build" / "teacher" if teacher else root
    cfg_path = root / "_config.yml"
    if teacher:
        cfg = yaml.safe_load(cfg_path.read_text())
        cfg.setdefault("sphinx", {}).setdefault("config", {})["hide_solutions"] = False
        cfg_path = root / GENERATED / "_config_teacher.yml"
        atomic_write_text(cfg_path, yaml.safe_dump(cfg, sort_keys=False))
    cmd = [str(jb) if jb.exists() else "jupyter-book", "build", str(root), "--path-output", str(out),
           "--toc", str(root / GENERATED / "_toc.yml"), "--config", str(cfg_path),
           "-W", "-n", "--keep-going", "--quiet"]
    t = time.time()
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-40:])
        raise CmlibError(f"jupyter-book build failed (exit {proc.returncode}):\n{tail}")
    index = out / "_build" / "html" / "index.html"
    _log(f"html{' (teacher)' if teacher else ''}: built in {time.time() - t:.0f} s -> {index}")
    return index


def build_book(profile: str = "laptop", root: str | Path = ".", *, source: str | Path | None = None,
               only: Sequence[str] | None = None, skip_html: bool = False, force: bool = False,
               train: bool = True, teacher: bool = False, replace_data: bool = False,
               runs: str | Path | None = None, sweep: dict | None = None) -> int:
    """Build the book for ``profile`` in ``root`` (see module docstring). Returns 0 on success.

    ``runs``: read (and train into) this runs folder instead of ``runs/`` and ``results/runs``
    (``cmlib book --runs DIR``, e.g. the shared folder a Slurm sweep filled). ``sweep``: train through
    :func:`cmlib.sweep.run_sweep` with these options (``cmlib book --executor``); with ``wait=False``
    the build submits the jobs and stops, to be run again when they are done.
    """
    if runs is not None:
        runs = Path(runs).resolve()
        if not runs.is_dir():
            raise InputError(f"--runs '{runs}' is not a folder; give the runs folder a sweep filled "
                             "(the --runs-dir of `cmlib sweep`)")
        previous = os.environ.get(R.RUNS_ENV)
        os.environ[R.RUNS_ENV] = str(runs)      # the notebooks' kernels inherit it
        try:
            return build_book(profile, root, source=source, only=only, skip_html=skip_html, force=force,
                              train=train, teacher=teacher, replace_data=replace_data, sweep=sweep)
        finally:
            if previous is None:
                os.environ.pop(R.RUNS_ENV, None)
            else:
                os.environ[R.RUNS_ENV] = previous
    prof = get_profile(profile)
    if only:
        names = {j.name for j in notebook_jobs(prof)} | {j.name.split("/")[-1] for j in notebook_jobs(prof)}
        unknown = sorted(set(only) - names)
        if unknown:
            raise CmlibError(f"--only: no page named {', '.join(unknown)} in the {prof.name} profile; its pages: "
                             f"{', '.join(sorted(j.name.split('/')[-1] for j in notebook_jobs(prof)))}")
    t0 = time.time()
    root = prepare_root(Path(root), Path(source) if source else None)
    _log(f"profile {prof.name}: {prof.description}")
    ensure_data(prof, root, replace=replace_data)
    if train and not train_plans(prof, root, sweep=sweep):
        _log(f"runs: jobs submitted; run this same command again when they are done (finished runs are reused; "
             f"`cmlib sweep --profile {prof.name} --status` shows where they stand)")
        return 0
    write_demo_hand_in(prof, root)
    execute_notebooks(prof, root, only=only, force=force)
    write_generated(prof, root)
    if not skip_html:
        index = build_html(root, teacher=teacher)
        _log(f"done in {(time.time() - t0) / 60:.1f} min. Open {index}")
    return 0


def make_stored_runs(models: Sequence[str] | None = None, root: str | Path = ".", *,
                     dry_run: bool = False, profile: str = "laptop", sweep: dict | None = None) -> int:
    """(Re)generate the committed run artifacts (``stored`` plans of a profile) in ``results/runs``.

    This is the one documented command behind every stored number in the
    book (``make stored-runs``).  On 2 CPU cores the deep models take hours;
    on a GPU, minutes.  Weights are written too but never committed.
    """
    prof = get_profile(profile)
    root = Path(root).resolve()
    stored = [p for p in list(prof.models.values()) + list(prof.experiments.values()) if p.source == "stored"]
    unknown = sorted(set(models or ()) - {p.model for p in stored})
    if unknown:
        raise CmlibError(f"--models: the {prof.name} profile stores no runs of {', '.join(unknown)}; it stores: "
                         f"{', '.join(sorted({p.model for p in stored}))}")
    plans = [p for p in stored if not models or p.model in models]
    # the order of the compute plan: the cheap small-CNN runs first, then the deep models that get three
    # seeds (the thesis's best and its failures), then the others; within a group the cheapest first by
    # measured epoch time, so that an interrupted regeneration leaves as many complete pages as possible
    bench = root / "benchmarks" / "results" / "models.json"
    epoch_s = {}
    if bench.exists():
        epoch_s = {r["name"]: r.get("epoch_s", 0.0) for r in json.loads(bench.read_text()).get("rows", [])}
    deep = deep_models()
    plans.sort(key=lambda p: (p.model in deep, p.model in deep and len(p.seeds) < 3,
                              epoch_s.get(p.model, 1.0) * p.epochs * len(p.seeds)))
    for p in plans:  # as this machine trains them (float32 for a planned bf16 where there are no bf16 units)
        print(plan_request(prof, p).for_this_machine().command() + " --no-model-files")
    if dry_run:
        return 0
    ensure_data(prof, root)
    if not train_plans(prof, root, plans=plans, keep_models=False, sweep=sweep, name="stored"):
        print("jobs submitted; run this same command again when they are done (finished runs are reused)")
    return 0
