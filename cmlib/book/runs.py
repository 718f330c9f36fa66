"""The one place where the book meets the training configuration and the run artifacts.

Everything the book needs from :mod:`cmlib.config` (the configuration of a run and the directory
it lives in), :mod:`cmlib.artifacts` (reading run directories) and :mod:`cmlib.train` goes
through the few functions here, imported inside them.  Finding runs imports neither a
deep-learning backend nor the trainer; :func:`train` hands a request to
:func:`cmlib.train.train_seeds` and is called only by :mod:`cmlib.book.build`.
"""
from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

#: Where the committed run artifacts live, relative to the book root.
STORED_RUNS_DIR = "results/runs"
#: Where the runs a build (or a student) trains go, relative to the book root.
TRAINED_RUNS_DIR = "runs"
#: ``cmlib book --runs DIR``: one runs folder (e.g. the shared folder a Slurm sweep filled) that the
#: build and every page read -- and the build trains into -- instead of ``runs/`` and ``results/runs``.
#: An environment variable, so that the notebooks' kernels (which inherit the build's environment) see it.
RUNS_ENV = "CMLIB_BOOK_RUNS"


def runs_path(root: Path, runs_dir: str) -> Path:
    """Where the runs of ``runs_dir`` (``runs`` or ``results/runs``) are read: ``root/runs_dir``, or the
    folder named by :data:`RUNS_ENV` (absolute, or relative to the book root) when it is set."""
    override = os.environ.get(RUNS_ENV, "").strip()
    if override:
        return Path(root) / override if not Path(override).is_absolute() else Path(override)
    return Path(root) / runs_dir

@dataclass(frozen=True)
class RunRequest:
    """The runs a page (or an exercise) asks for: a model, a data file, a budget and options."""

    model: str
    data: str
    epochs: int
    seeds: tuple[int, ...]
    overrides: dict = field(default_factory=dict)
    runs_dir: str = TRAINED_RUNS_DIR
    profile: str = "custom"

    def config(self, seed: int, root: Path):
        """The resolved :class:`~cmlib.config.RunConfig` of one seed (reads the data file's header for its hash)."""
        from ..config import resolve_config

        return resolve_config(self.model, str(Path(root) / self.data), epochs=int(self.epochs), seed=int(seed),
                              profile=self.profile, **self.overrides)

    def for_this_machine(self) -> "RunRequest":
        """The request as this machine trains it: a planned bf16 precision in float32 where the hardware has
        no bf16 units (:func:`cmlib.config.precision_for_this_machine`; the same experiment up to round-off)."""
        from dataclasses import replace

        from ..config import precision_for_this_machine

        if "precision" not in self.overrides:
            return self
        p = precision_for_this_machine(str(self.overrides["precision"]))
        return self if p == self.overrides["precision"] else replace(self, overrides={**self.overrides, "precision": p})

    def command(self) -> str:
        """The ``cmlib train`` command that trains these runs on any machine.

        A planned bf16 precision is written ``--precision auto``: bf16 where the hardware has bf16 units, float32
        elsewhere, where bf16 is emulated and many times slower (as :meth:`for_this_machine` trains it); the
        two are the same experiment up to round-off, and the pages accept either
        (:func:`cmlib.config.round_off_variants`, :func:`cmlib.artifacts.find_config_runs`)."""
        seeds = self.seeds
        if len(seeds) > 1 and list(seeds) == list(range(min(seeds), max(seeds) + 1)):
            s = f"{min(seeds)}-{max(seeds)}"
        else:
            s = ",".join(str(x) for x in seeds)
        shown = {k: ("auto" if k == "precision" and v == "bfloat16" else v) for k, v in self.overrides.items()}
        over = "".join(f" --{k.replace('_', '-')} {shlex.quote(str(v))}" for k, v in shown.items())
        runs = "" if self.runs_dir == TRAINED_RUNS_DIR else f" --runs-dir {self.runs_dir}"
        return f"cmlib train --model {self.model} --data {self.data} --epochs {self.epochs} --seeds {s}{over}{runs}"


def load_run(path: Path):
    from ..artifacts import Run

    return Run.load(path)


def find(request: RunRequest, root: Path) -> tuple[list, bool]:
    """The finished runs of ``request`` under ``root`` (read-only), one per seed, in seed order.

    A run matches when its directory is its configuration's identity
    (:meth:`cmlib.config.RunConfig.identity`).  Failing that (stored runs made on another copy or
    version of the data), finished runs whose configuration agrees in everything but the data's
    content hash are used, and the second value returned is True ("made on other data").
    """
    from ..artifacts import find_config_runs

    runs, other_data = find_config_runs(runs_path(root, request.runs_dir), request.config(request.seeds[0], root),
                                        request.seeds)
    return [r for r in runs if r.predictions], other_data


def seed_states(request: RunRequest, root: Path, seeds: Sequence[int] | None = None) -> dict[int, dict | None]:
    """Each seed's run state on disk (of all the request's seeds, or only ``seeds``): ``None`` when not
    started, else ``{"state": "in progress" | "complete" | ..., "epoch": epochs completed}``."""
    import json

    from ..artifacts import STATUS_RUNNING
    from ..config import round_off_variants

    out: dict[int, dict | None] = {}
    for s in (request.seeds if seeds is None else seeds):
        cfg = request.config(s, root)
        st = None
        for c in [cfg, *round_off_variants(cfg)]:  # a run of the same experiment in another precision counts
            try:
                st = json.loads((c.run_dir(runs_path(root, request.runs_dir)) / "status.json").read_text())
                break
            except (OSError, ValueError):
                continue
        if st is None:
            out[s] = None
            continue
        state = st.get("status", "unknown")
        out[s] = {"state": "in progress" if state == STATUS_RUNNING else state,
                  "epoch": st.get("epochs_completed", 0)}
    return out


def seed_progress(request: RunRequest, root: Path, states: Mapping[int, dict | None] | None = None) -> str:
    """Where the runs of a request stand on disk: 'seed 0: running, epoch 12 of 30; seed 1: not started'.
    ``states``: :func:`seed_states` when the caller has read them already."""
    states = seed_states(request, root) if states is None else states
    return "; ".join(f"seed {s}: not started" if st is None else f"seed {s}: {st['state']}, epoch {st['epoch']} of "
                     f"{request.epochs}" for s, st in states.items())


def progress_text(request: RunRequest, root: Path, states: Mapping[int, dict | None] | None = None) -> str:
    """:func:`seed_progress` as a sentence: 'Now: seed 0: running, epoch 12 of 30; seed 1: not started.'"""
    return "Now: " + seed_progress(request, root, states) + "."


def to_train(request: RunRequest, root: Path, found: Sequence | None = None) -> RunRequest | None:
    """What of ``request`` is left to train on this machine: its seeds without a finished run of the same
    experiment (:func:`find`, any precision, the same data; ``found``: its runs when the caller has them),
    in this machine's precision (:meth:`RunRequest.for_this_machine`); None when every seed is done."""
    from dataclasses import replace

    if found is None:
        runs, other_data = find(request, root)
        found = [] if other_data else runs
    done = {r.seed for r in found}
    todo = tuple(s for s in request.seeds if s not in done)
    return replace(request.for_this_machine(), seeds=todo) if todo else None


def train(request: RunRequest, root: Path, *, keep_models: bool = True, verbose: bool = True) -> list:
    """Train (or reuse, or resume) the runs of ``request``; used only by :mod:`cmlib.book.build`.

    Seeds that have a finished run of the same experiment (:func:`find`, also in another arithmetic
    precision) are reused; the others are trained as this machine trains them
    (:meth:`RunRequest.for_this_machine`: float32 for a planned bf16 where there are no bf16 units).
    """
    from ..train import train_seeds

    found, other_data = find(request, root)
    have = {} if other_data else {r.seed: r for r in found}
    req = to_train(request, root, found=[] if other_data else found)
    if req is not None:
        results = train_seeds(req.model, str(Path(root) / req.data), epochs=int(req.epochs),
                              seeds=list(req.seeds), runs_dir=runs_path(root, req.runs_dir),
                              profile=req.profile, verbose=verbose, keep_models=keep_models,
                              **req.overrides)
        have.update({r.run.seed: r.run for r in results})
    return [have[s] for s in sorted(have)]


def provenance(runs: Sequence) -> dict:
    from ..artifacts import provenance as _prov

    return _prov(runs)


def format_duration(seconds: float) -> str:
    from ..artifacts import format_duration as _fd

    return _fd(seconds)


def all_runs(root: Path, runs_dir: str = TRAINED_RUNS_DIR, *, model: str | None = None) -> list:
    """Every finished run under ``root/runs_dir`` (the hand-in summary reads these)."""
    from ..artifacts import find_runs

    return find_runs(runs_path(root, runs_dir), model=model)


def option_names() -> tuple[str, ...]:
    """The training options a run request may override (the ``cmlib train`` options)."""
    from ..config import overridable

    return overridable()
