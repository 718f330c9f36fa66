"""Build the book: data -> runs -> executed notebooks -> HTML, for one profile.

``cmlib book --profile laptop`` (what ``make book`` runs) does, in order:

1. **data**: simulate the profile's mock catalogue if it is missing or was
   made by a different generator version (deterministic, so regenerating is safe);
2. **runs**: train every ``train``-source plan of the profile (completed runs
   with the same configuration are reused, interrupted ones resume);
3. **notebooks**: execute each template in ``notebooks/`` with papermill into
   ``book/generated/`` with the profile's parameters; a notebook whose inputs
   (template, parameters, cmlib code, data, run artifacts) did not change is
   not executed again;
4. **html**: ``jupyter-book build`` with warnings as errors, into ``_build/html``.

Every step is idempotent, so a second ``make book`` takes a few minutes.
The same function builds the smoke book in the test suite, in a scratch
directory (``root``), by copying the book sources there first.
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
from typing import Callable, Sequence

from ._io import stable_hash, to_json
from .errors import CmlibError
from .profiles import DEEP_MODELS, PAGE_MODELS, Profile, RunPlan, get_profile

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("_config.yml", "_toc.yml", "_static", "_assets", "book", "notebooks")
GENERATED = Path("book") / "generated"


@dataclass(frozen=True)
class NotebookJob:
    """One executed page: a template and its papermill parameters."""

    name: str            # output path under book/generated, without .ipynb
    template: str        # file in notebooks/
    params: dict
    title: str = ""      # replaces the template's first heading (one template, many pages)


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
    from .thesis import DISPLAY_NAMES, SECTIONS

    for m in PAGE_MODELS:
        title = (f"{DISPLAY_NAMES[m]} (thesis Sect. {SECTIONS[m]})" if m in SECTIONS
                 else f"{DISPLAY_NAMES.get(m, m)}: the published baseline")
        jobs.append(NotebookJob(f"models/{m}", "architecture.ipynb", {**base, "model": m}, title))
    jobs += [
        NotebookJob("results", "results.ipynb", dict(base)),
        NotebookJob("explorer", "explorer.ipynb", dict(base)),
        NotebookJob("beyond", "beyond.ipynb", dict(base)),
    ]
    return jobs


# ---------------------------------------------------------------- steps

def _log(msg: str) -> None:
    print(f"[cmlib book] {msg}", flush=True)


def prepare_root(root: Path) -> Path:
    """Make ``root`` a book root: copy the book sources there unless it is this repository."""
    root = root.resolve()
    if root == REPO:
        return root
    root.mkdir(parents=True, exist_ok=True)
    for name in SOURCES:
        src = REPO / name
        dst = root / name
        if src.is_dir():
            shutil.copytree(src, dst, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("generated", ".ipynb_checkpoints", "__pycache__"))
        elif src.exists():
            shutil.copy2(src, dst)
    return root


def ensure_data(profile: Profile, root: Path) -> Path:
    """Simulate the profile's data file unless an up-to-date one exists."""
    from . import simulate

    path = root / profile.data.path
    if path.exists():
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


def train_plans(profile: Profile, root: Path, *, plans: Sequence[RunPlan] | None = None) -> None:
    """Train (or reuse) every ``train``-source plan of the profile."""
    from . import train

    todo = plans if plans is not None else [p for p in list(profile.models.values()) +
                                            list(profile.experiments.values()) if p.source == "train"]
    for plan in todo:
        t = time.time()
        runs = train.train_seeds(plan.model, root / profile.data.path, epochs=plan.epochs, seeds=plan.seeds,
                                 runs_dir=root / plan.runs_dir, profile=profile.name, verbose=True,
                                 keep_models=profile.keep_models, **plan.overrides)
        label = f" [{plan.label}]" if plan.label else ""
        _log(f"runs: {plan.model}{label}: {len(runs)} seed(s) ready in {time.time() - t:.0f} s")


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


def execute_notebooks(profile: Profile, root: Path, *, only: Sequence[str] | None = None,
                      force: bool = False, kernel: str = "python3") -> list[str]:
    """Execute the profile's pages with papermill; returns the names that were (re)executed."""
    import nbformat
    import papermill as pm

    # kernels inherit our environment: make sure figures go inline even if the caller set
    # MPLBACKEND (e.g. Agg in scripts and tests), or plt.show() would draw nothing
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    code_hash = _tree_hash([REPO / "cmlib"], ["*.py"])
    runs_hash = _tree_hash([root / "runs", root / "results" / "runs", REPO / "results" / "runs",
                            REPO / "benchmarks" / "results"],
                           ["status.json", "metrics.json", "*.json"])
    done = []
    for job in notebook_jobs(profile):
        if only and job.name not in only and job.name.split("/")[-1] not in only:
            continue
        out = root / GENERATED / f"{job.name}.ipynb"
        key = _inputs_key(job, root, code_hash, runs_hash)
        if out.exists() and not force:
            try:
                meta = nbformat.read(out, as_version=4).metadata.get("cmlib", {})
            except Exception:  # noqa: BLE001 - an unreadable output is simply re-executed
                meta = {}
            if meta.get("inputs_key") == key:
                _log(f"notebooks: {job.name} up to date")
                continue
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.stem}.tmp.ipynb")
        t = time.time()
        try:
            pm.execute_notebook(str(root / "notebooks" / job.template), str(tmp), parameters=job.params,
                                kernel_name=kernel, cwd=str(root), progress_bar=False, log_output=False,
                                request_save_on_cell_execute=False)
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
        if job.title:
            _retitle(nb, job.title)
        nb.cells.append(nbformat.v4.new_markdown_cell(_footer(job, profile)))
        for cell in nb.cells:  # parameters stay visible but collapsed on the page
            tags = cell.metadata.setdefault("tags", [])
            if ("parameters" in tags or "injected-parameters" in tags) and "hide-input" not in tags:
                tags.append("hide-input")
        nb.metadata["cmlib"] = {"inputs_key": key, "profile": profile.name, "template": job.template,
                                "params": job.params, "seconds": round(time.time() - t, 1)}
        nbformat.write(nb, tmp)
        os.replace(tmp, out)
        (root / GENERATED / f"{job.name}.FAILED.ipynb").unlink(missing_ok=True)
        done.append(job.name)
        _log(f"notebooks: {job.name} executed in {time.time() - t:.0f} s")
    return done


def _footer(job: NotebookJob, profile: Profile) -> str:
    """How to open and re-execute this page (appended to every executed page)."""
    params = " ".join(f"-p {k} {v}" for k, v in job.params.items())
    return ("```{admonition} Run this page yourself\n:class: note\n"
            f"This page is the notebook `notebooks/{job.template}` executed with the `{profile.name}` profile. "
            "Open it in JupyterLab with `make lab` (or `.venv/bin/jupyter lab "
            f"notebooks/{job.template}`), or re-execute it with papermill:\n\n"
            f"    .venv/bin/papermill notebooks/{job.template} out.ipynb {params}\n"
            "\nThe download button at the top of the page gives you this executed notebook.\n```\n")


def _retitle(nb, title: str) -> None:
    """Replace the first Markdown heading of a notebook (the page title)."""
    for cell in nb.cells:
        if cell.cell_type == "markdown" and cell.source.lstrip().startswith("# "):
            lines = cell.source.lstrip().splitlines()
            cell.source = "\n".join([f"# {title}"] + lines[1:])
            return


def build_html(root: Path) -> Path:
    """``jupyter-book build`` with warnings as errors; returns the entry page."""
    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jb) if jb.exists() else "jupyter-book", "build", str(root), "--path-output", str(root),
           "-W", "-n", "--keep-going", "--quiet"]
    t = time.time()
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-40:])
        raise CmlibError(f"jupyter-book build failed (exit {proc.returncode}):\n{tail}")
    index = root / "_build" / "html" / "index.html"
    _log(f"html: built in {time.time() - t:.0f} s -> {index}")
    return index


def build(profile: str = "laptop", root: str | Path = ".", *, only: Sequence[str] | None = None,
          skip_html: bool = False, force: bool = False, train: bool = True) -> int:
    """Build the book for ``profile`` in ``root`` (see module docstring). Returns 0 on success."""
    prof = get_profile(profile)
    t0 = time.time()
    root = prepare_root(Path(root))
    _log(f"profile {prof.name}: {prof.description}")
    ensure_data(prof, root)
    if train:
        train_plans(prof, root)
    execute_notebooks(prof, root, only=only, force=force)
    if not skip_html:
        index = build_html(root)
        _log(f"done in {(time.time() - t0) / 60:.1f} min. Open {index}")
    return 0


def make_stored_runs(models: Sequence[str] | None = None, root: str | Path = ".", *,
                     dry_run: bool = False, profile: str = "laptop") -> int:
    """(Re)generate the committed run artifacts (``stored`` plans of a profile) in ``results/runs``.

    This is the one documented command behind every stored number in the
    book (``make stored-runs``).  On 2 CPU cores the deep models take hours;
    on a GPU, minutes.  Weights are written too but never committed.
    """
    prof = get_profile(profile)
    root = Path(root).resolve()
    plans = [p for p in list(prof.models.values()) + list(prof.experiments.values())
             if p.source == "stored" and (not models or p.model in models)]
    # cheapest first (the basic-CNN experiments, then the deep models by measured epoch time), so that
    # an interrupted regeneration leaves as many complete pages as possible
    bench = REPO / "benchmarks" / "results" / "models.json"
    epoch_s = {}
    if bench.exists():
        epoch_s = {r["name"]: r.get("epoch_s", 0.0) for r in json.loads(bench.read_text()).get("rows", [])}
    plans.sort(key=lambda p: (p.model in DEEP_MODELS, epoch_s.get(p.model, 1.0) * p.epochs * len(p.seeds)))
    for p in plans:
        over = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in p.overrides.items())
        seeds = f"{min(p.seeds)}-{max(p.seeds)}" if len(p.seeds) > 1 else str(p.seeds[0])
        print(f"cmlib train --model {p.model} --data {prof.data.path} --epochs {p.epochs} --seeds {seeds} "
              f"--runs-dir {p.runs_dir} {over}".strip())
    if dry_run:
        return 0
    ensure_data(prof, root)
    train_plans(prof, root, plans=plans)
    return 0
