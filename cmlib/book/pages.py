"""What the book's pages show: the runs of a page (read-only), verdicts, tables, provenance.

The notebooks stay thin: they ask this module for the runs of a model under a profile and for
the tables, verdicts and boxes that state how every number was produced (an architecture page's
seeds, diagnosis and remedies, the run inventory).  The models against each other (the results
page) are in :mod:`cmlib.book.comparison`, the training-parameters, tuning and benchmark reports
in :mod:`cmlib.book.training_reports`; both read runs through this module.  Nothing here trains
or imports :mod:`cmlib.train`: a page whose runs are missing stops with
:class:`MissingRunsError`, which names the ``cmlib train`` command that makes them (or the
build step that does, :func:`cmlib.book.build.train_request`).
"""
from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .. import artifacts as A
from .. import metrics as M
from ..errors import CmlibError
from . import runs as R
from .profiles import (THESIS_PROTOCOL_SUFFIX, RunPlan, display_name, get_profile, is_remedy_key, parse_seed_list,
                       remedy_keys)
from .thesis import TABLE5

__all__ = ["MissingRunsError", "PageRuns", "display_name", "request_for", "find_page_runs", "require_runs",
           "and_list", "counted", "fmt", "html_table", "provenance_markdown", "run_yourself_markdown", "verdict", "verdict_markdown",
           "seed_rows", "pm", "seeds_text", "seeds_text_of", "summary_rows", "cluster_images", "cluster_png", "scatter_png", "split_of",
           "get_spec_family", "stop_kind", "hardware_of", "run_inventory_rows", "run_inventory_markdown",
           "config_rows", "config_markdown", "recipe_changes", "run_input_shape", "training_text", "page_sections", "memorisation_finding",
           "diagnosis_markdown", "remedy_runs", "remedy_summary", "remedy_markdown", "remedies_markdown",
           "paired_markdown", "declare_sections", "experiment_summary", "example_cluster", "cluster_label", "layer_rows",
           "cached", "table3_rows", "architecture_rows", "example_clusters", "fair_basic", "basic_on_same_split",
           "thesis_result_lines", "REDSHIFT_ONLY", "SUMMARY_HEADERS", "BATCHNORM_FAMILIES", "REMEDIES",
           "SECTIONS_MIME", "FAIR_SPLIT"]


class MissingRunsError(CmlibError):
    """A page asked for runs that are not on disk; the message names the command that makes them."""


# ---------------------------------------------------------------- runs of a page

@dataclass
class PageRuns:
    """The runs a page shows and how they came about."""

    model: str
    label: str
    runs: list
    how: str                      # "stored" | "trained" | "missing"
    plan: RunPlan
    request: R.RunRequest
    data_mismatch: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def data(self) -> str:
        return self.request.data

    @property
    def finished(self) -> list:
        return [r for r in self.runs if r.finished and r.predictions]

    @property
    def usable(self) -> bool:
        """Finished runs made on the page's data file: only those judge its clusters (a run made on another
        version of the file was tested on other clusters and counts as not run)."""
        return bool(self.finished) and not self.data_mismatch

    @property
    def provenance(self) -> dict:
        return R.provenance(self.runs)

    def best_index(self, by: str = "sigma", subset: str = "test") -> int:
        return M.best_run_index([r.metrics for r in self.finished], by=by, split=subset)

    @property
    def best(self):
        """The best run, as the thesis picked it (lowest test sigma, eq. 4.0.1)."""
        return self.finished[self.best_index()]

    def ensemble(self, subset: str = "test") -> M.Predictions:
        return M.ensemble([r.predictions[subset] for r in self.finished])

    def mean_predictor(self, subset: str = "test") -> M.Predictions:
        """Predict the mean training mass for every cluster (the floor a model must beat)."""
        p = self.best.predictions
        return M.mean_predictor(p["train"], p[subset])

    def redshift_predictor(self, subset: str = "test") -> M.Predictions | None:
        """Predict the mass from the redshift alone, fitted to the training clusters (the floor a model's images
        must beat); None for runs whose predictions carry no redshifts."""
        p = self.best.predictions
        try:
            return M.redshift_predictor(p["train"], p[subset])
        except CmlibError:
            return None


#: The estimator that sees only the redshift (:func:`cmlib.metrics.redshift_predictor`), as tables name it.
REDSHIFT_ONLY = "predict from the redshift alone (no image)"


def request_for(model: str, profile: str = "laptop", *, experiment: str | None = None, data: str | None = None,
                epochs: int | None = None, seeds: Sequence[int] | str | None = None,
                **overrides: Any) -> tuple[RunPlan, R.RunRequest]:
    """The profile's plan for a page and the run request it makes, with a reader's changes applied.

    With the profile's own settings a ``stored`` plan is read from ``results/runs``; any change
    of ``epochs``, ``seeds``, data or options makes a new configuration, looked for in ``runs/``.
    """
    prof = get_profile(profile)
    plan = prof.experiments[experiment] if experiment else prof.plan(model)
    over = {k: v for k, v in overrides.items() if v is not None}
    seeds_l = tuple(parse_seed_list(seeds)) if seeds is not None else plan.seeds
    eff_epochs = int(epochs) if epochs is not None else plan.epochs
    changed = bool(over) or eff_epochs != plan.epochs or seeds_l != plan.seeds or \
        (data is not None and data != prof.data.path)
    runs_dir = plan.runs_dir if not changed else R.TRAINED_RUNS_DIR
    req = R.RunRequest(plan.model, data or prof.data.path, eff_epochs, seeds_l, {**plan.overrides, **over},
                       runs_dir=runs_dir, profile=prof.name)
    return plan, req


def find_page_runs(model: str, profile: str = "laptop", *, root: str | Path = ".", experiment: str | None = None,
                   data: str | None = None, epochs: int | None = None, seeds: Sequence[int] | str | None = None,
                   **overrides: Any) -> PageRuns:
    """The finished runs of ``model`` (or of a profile ``experiment``) for a page, read-only.

    Finds, never trains: a missing run gives ``how == "missing"`` and a note with the
    ``cmlib train`` command; :func:`require_runs` turns that into an error.
    """
    plan, req = request_for(model, profile, experiment=experiment, data=data, epochs=epochs, seeds=seeds,
                            **overrides)
    label = plan.label or display_name(plan.model)
    found, other_data = R.find(req, Path(root))
    how = ("stored" if req.runs_dir == R.STORED_RUNS_DIR else "trained") if found else "missing"
    pr = PageRuns(plan.model, label, found, how, plan, req, data_mismatch=other_data)
    if other_data:
        pr.notes.append("The stored runs were made on a data file whose content hash differs from the "
                        f"current {Path(req.data).name}; regenerate them with `cmlib stored-runs` for an exact match.")
    if len(found) < len(req.seeds):
        pr.notes.append(f"{len(req.seeds) - len(found)} of the {counted(len(req.seeds), 'requested run')} of {label} "
                        f"{'is' if len(req.seeds) - len(found) == 1 else 'are'} not on disk; train them with `{req.command()}`.")
    return pr


def require_runs(pr: PageRuns) -> None:
    """Stop the page (and the book build) if it has nothing to show, naming the command that helps."""
    if not pr.finished:
        raise MissingRunsError(
            f"no finished runs of {pr.label} with this configuration under {pr.request.runs_dir}/. "
            f"Train them first:\n    {pr.request.command()}\n"
            "or re-execute this page with `-p train_missing True` (the book's build step "
            "cmlib.book.build.train_request trains them before the page reads them).")


# ---------------------------------------------------------------- rendering helpers

def and_list(items: Sequence[str]) -> str:
    """Names as a sentence lists them: "A", "A and B", "A, B and C"."""
    items = list(items)
    if len(items) < 2:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def counted(n: int, word: str, plural: str | None = None) -> str:
    """``n`` and the word in the number it needs: ``counted(1, "seed")`` is "1 seed", ``counted(3, "run")`` "3 runs"."""
    return f"{n} {word if n == 1 else (plural or word + 's')}"


def fmt(v: Any, digits: int = 3, signed: bool = False) -> str:
    """A table cell: a number to ``digits`` places (``signed``: with its sign), an integer as it is, a string
    unchanged, and an en dash for None, NaN or infinity."""
    if v is None:
        return "\u2013"
    if isinstance(v, str):
        return v
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if not math.isfinite(float(v)):
        return "\u2013"
    return f"{float(v):+.{digits}f}" if signed else f"{float(v):.{digits}f}"


def html_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None, *,
               headers: Mapping[str, str] | None = None, row_class: str = "_class", nowrap: bool = False) -> str:
    """A simple HTML table; a row's ``_class`` key becomes its CSS class; ``nowrap`` keeps cells on one line.
    Without ``columns``, every key of any row (in the order first seen; rows may differ, e.g. the thesis split has
    no separate validation set), a row's missing ones shown as '–'."""
    if not rows:
        return "<p><em>(no rows)</em></p>"
    if columns is None:
        columns = list(dict.fromkeys(k for r in rows for k in r if not k.startswith("_")))
    headers = headers or {}
    out = [f'<table class="cmlib-table{" nowrap" if nowrap else ""}"><thead><tr>']
    out += [f"<th>{html.escape(headers.get(c, c))}</th>" for c in columns]
    out.append("</tr></thead><tbody>")
    for r in rows:
        cls = r.get(row_class)
        out.append(f'<tr class="{html.escape(cls)}">' if cls else "<tr>")
        out += [f"<td>{html.escape(str(r.get(c, chr(0x2013))))}</td>" for c in columns]
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _cmd_block(cmd: str, width: int = 60) -> str:
    """A long shell command broken over lines with backslashes (readable in boxes and in print)."""
    words, lines, cur = cmd.split(" "), [], ""
    for w in words:
        if cur and len(cur) + 1 + len(w) > width and w.startswith("-"):
            lines.append(cur + " \\")
            cur = "    " + w
        else:
            cur = f"{cur} {w}" if cur else w
    lines.append(cur)
    return "\n".join(lines)


def provenance_markdown(pr: PageRuns) -> str:
    """A short statement of how the runs on a page were produced."""
    if not pr.runs:
        return "**No runs.** " + " ".join(pr.notes)
    p = pr.provenance
    how = {"stored": "stored run artifacts (committed in `results/runs`; `cmlib stored-runs` regenerates them)",
           "trained": "trained by the book build (or by you) before this page was executed",
           "missing": "missing"}[pr.how]
    eps = p["epochs_completed"]
    ep_txt = f"{min(eps)}\u2013{max(eps)}" if min(eps) != max(eps) else f"{eps[0]}"
    es = f", early stopping after {p['early_stopping']} epochs without improvement" if p["early_stopping"] else ""
    seeds = f"{len(p['seeds'])} seeds {p['seeds']}" if len(p["seeds"]) > 1 else f"one seed ({p['seeds'][0]})"
    lines = [
        f"**How these numbers were produced.** {pr.label}: {how}; "
        + (f"profile `{p['profile']}`; " if p["profile"] != "custom" else
           "started by `cmlib train` directly, not through a profile; ") +
        f"{seeds}; up to {p['epochs_max']} epochs{es} "
        f"(completed: {ep_txt}); split `{p['split']}`; data `{p['data_file']}` "
        f"(content hash `{p['data_sha256']}`, {p['n_clusters']} clusters"
        + (f", the first {pr.runs[0].config['max_clusters']} used" if pr.runs[0].config.get("max_clusters") else "")
        + "); "
        f"hardware: {p['hardware']}; total training time {R.format_duration(p['wall_time_s_total'])}; "
        f"code: cmlib {p['code_version']}.",
    ]
    if any(s != "complete" for s in p["statuses"]):
        lines.append(f"Run statuses: {', '.join(p['statuses'])}.")
    lines += pr.notes
    return " ".join(lines)


def run_yourself_markdown(pr: PageRuns, profile: str = "laptop", *, page: str = "architecture.ipynb") -> str:
    """The exact commands that regenerate a page and its runs (long lines broken with backslashes)."""
    req, model = pr.request, pr.model
    pm = (f"papermill notebooks/{page} {model}.ipynb -p model {model} -p profile {profile} "
          f"-p epochs {req.epochs} -p seeds \"{list(req.seeds)}\"")
    thesis = f"papermill notebooks/{page} {model}_thesis.ipynb -p model {model} -p profile thesis -p train_missing True"
    return (
        ":::{admonition} Run it yourself\n:class: tip\n"
        f"Re-execute this page (it reads the runs; add `-p train_missing True` to train the ones that are "
        f"not on disk yet):\n\n```bash\n{_cmd_block(pm)}\n```\n\n"
        + (f"Regenerate the committed runs (they live in `results/runs`, not in your `runs/`):\n\n```bash\n"
           f"cmlib stored-runs --models {model}\n```\n\n" if req.runs_dir == R.STORED_RUNS_DIR else
           f"Train the runs directly:\n\n```bash\n{_cmd_block(req.command())}\n```\n\n")
        + f"{_thesis_profile_words(model)}:\n\n"
        f"```bash\n{_cmd_block(thesis)}\n```\n:::\n"
    )


def _thesis_profile_words(model: str) -> str:
    """What the ``thesis`` profile runs for this model, from its plan, e.g. 'The thesis profile's budget for this
    model (4000 epochs × 10 seeds, as the thesis trained its deep models; a GPU job)'."""
    try:
        plan = get_profile("thesis").plan(model)
    except CmlibError:                  # a model the thesis profile does not plan (e.g. one registered by a user)
        return "The thesis profile (a GPU job)"
    budget = f"{plan.epochs} epochs \u00d7 {counted(len(plan.seeds), 'seed')}"
    words = {"basic": f"up to {budget}, with early stopping, as the thesis trained the basic CNN",
             "baseline": f"{budget}, the budget of Krippendorf et al. (2023); the thesis did not train this model"
             }.get(get_spec_family(model), f"{budget}, as the thesis trained its deep models; a GPU job")
    return f"The thesis profile's budget for this model ({words})"


# ---------------------------------------------------------------- verdicts

def verdict(pr: PageRuns, run=None) -> dict:
    """Did this model (its best run, or ``run``) learn?  See :func:`cmlib.metrics.learning_verdict`."""
    run = run or pr.best
    p = run.predictions
    return M.judge_learning(p["train"], p["test"])


def verdict_markdown(pr: PageRuns, profile: str | None = None, root: str | Path = ".",
                     data: str | None = None) -> str:
    """A warning box if the best run did not learn, a one-line note if it did (empty without runs). With
    ``profile``, the box ends with what the remedies tried for the model (:func:`remedy_runs`) did, instead of
    asking for a longer or better-tuned run."""
    if not pr.finished:
        return ""
    v = verdict(pr)
    if v["learned"]:
        z = (f" and {v['redshift_std']:.3f} dex for predicting it from the redshift alone"
             if math.isfinite(v["redshift_std"]) else "")
        return (f"**Verdict: learned.** The best run's test std(x) is {v['std']:.3f} dex against "
                f"{v['reference_std']:.3f} dex for predicting the mean training mass for every cluster{z}.")
    return (":::{admonition} Did not learn\n:class: warning\n"
            f"{pr.label}'s best run did not learn: {v['reason']}. Its numbers below describe a model that "
            "has not learned from the images; they are not comparable with the thesis's, which come from 4000 "
            f"epochs. {_remedies_outcome(pr, profile, root, data, _thesis_way_verdict(pr, profile, root, data))}"
            "\n:::\n")


def _thesis_way_verdict(pr: PageRuns, profile: str | None, root: str | Path, data: str | None) -> dict | None:
    """:func:`verdict` of the model's run under the thesis's own protocol, where it has finished on this data file
    and the page's own runs are another protocol's; else None."""
    tp = thesis_protocol_run(pr, profile, root=root, data=data) if profile else None
    if tp is None or not tp.usable or not pr.finished or split_of(pr) == "thesis":
        return None
    return verdict(tp)


def _remedies_outcome(pr: PageRuns, profile: str | None, root: str | Path, data: str | None,
                      thesis_way: Mapping | None = None) -> str:
    """The end of a 'did not learn' box: what the remedies tried for the model did (see *Remedies* below), or that
    a longer or better-tuned run is needed when none was tried; then what the same model trained the thesis's way
    did (``thesis_way``: :func:`_thesis_way_verdict`), said so that the two never contradict each other."""
    remedies = remedy_runs(pr, profile, root=root, data=data) if profile else []
    done = [r for r in remedies if r.usable]
    worked = [r.label for r in remedies_that_learned(remedies)]
    thesis_learned = thesis_way is not None and thesis_way["learned"]
    if worked:
        txt = (f"With {and_list(worked)} it learns from the images (*Remedies* below): the failure is the "
               "recipe's, not the architecture's.")
    elif done:
        todo = [r.label for r in remedies if not r.usable]
        pending = f"; {and_list(todo)} {'is' if len(todo) == 1 else 'are'} still planned" if todo else ""
        txt = (f"The {'remedy' if len(done) == 1 else 'remedies'} tried, {and_list([r.label for r in done])},"
               f" did not make it learn either{pending}; see *Remedies* below.")
    elif remedies:
        one = len(remedies) == 1
        txt = (f"A remedy, {remedies[0].label}, is in the compute plan (*Remedies* below)" if one else
               f"Remedies ({and_list([r.label for r in remedies])}) are in the compute plan (*Remedies* below)")
        # a thesis-protocol run that learned has judged the architecture already
        txt += "." if thesis_learned else (f"; until {'it' if one else 'one'} has run, the failure may be this "
                                           "recipe's rather than the architecture's.")
    elif thesis_learned:
        txt = ""
    elif profile:
        txt = ("A longer or better-tuned run is needed before this architecture can be judged. None is in this "
               "book's compute plan, which spends its CPU time first on the thesis's best models (the ResNet V2s) "
               "and its clearest failures (the VGGs and EfficientNet-B7); the changes that made other models learn "
               "are listed on the results page (*Remedies tried*), and each is one option of `cmlib train` (their "
               "commands are on those models' pages).")
    else:
        txt = "A longer or better-tuned run (see *Run it yourself*) is needed before this architecture can be judged."
    if thesis_way is not None:
        where = "*Trained the thesis's way* below"
        if thesis_learned:
            txt += (f" Trained the thesis's way, it learns from the images{' too' if worked else ''} (test std(x) "
                    f"{thesis_way['std']:.3f} dex on the thesis split's test clusters; {where}).")
        else:
            txt += (f" Trained the thesis's way, it does not learn{'' if worked else ' either'} "
                    f"({thesis_way['short']}; {where}).")
    return txt.strip()


def seed_rows(pr: PageRuns) -> list[dict]:
    """One row per run: status, epochs, best epoch, test and train metrics, and whether it learned."""
    rows = []
    best = pr.best_index() if pr.finished else -1
    for i, r in enumerate(pr.finished):
        m = r.metrics
        t, tr = m.get("test", {}), m.get("train", {})
        v = verdict(pr, r)
        rows.append({
            "seed": r.seed, "status": r.status, "epochs": r.status_info.get("epochs_completed"),
            "best epoch": r.status_info.get("best_epoch"),
            "val loss (best)": fmt(m.get("loss", {}).get("val_best"), 4),
            "σ test": fmt(t.get("sigma")), "μ test": fmt(t.get("mu"), signed=True),
            "std(x) test": fmt(t.get("std")), "σ train": fmt(tr.get("sigma")),
            "μ train": fmt(tr.get("mu"), signed=True),
            "learned?": "yes" if v["learned"] else "did not learn",
            "_class": "best" if i == best else "",
        })
    return rows


_KEYS = ("sigma", "mu", "std", "nmad", "outlier_frac")


def _metric_row(name: str, m_test: Mapping, m_train: Mapping | None = None, cls: str = "") -> dict:
    r: dict[str, Any] = {"": name}
    for k in _KEYS:
        r[f"{k} test"] = fmt(m_test.get(k), signed=k == "mu")
    r["sigma train"] = fmt(m_train.get("sigma")) if m_train is not None else "\u2013"
    r["mu train"] = fmt(m_train.get("mu"), signed=True) if m_train is not None else "\u2013"
    r["_class"] = cls
    return r


def seeds_text(mean: float, std: float, n: int, spec: str = ".3f") -> str:
    """A value over ``n`` seeds as '0.239 ± 0.002'; the mean alone for one seed or an undefined spread (no fake
    ± 0). The one formatter behind every "mean ± std over seeds" in the book."""
    several = n > 1 and std is not None and math.isfinite(std)
    return format(mean, spec) + (f" ± {format(std, spec)}" if several else "")


def seeds_text_of(values: Sequence[float], spec: str = ".3f") -> str:
    """:func:`seeds_text` of per-seed values (standard deviation with ddof=1, as ``metrics.mean_std_over_seeds``)."""
    v = np.asarray(values, dtype=float)
    return seeds_text(float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else math.nan, int(v.size), spec)


def pm(stats: Mapping, key: str, digits: int = 3) -> str:
    """``stats[key]`` (``{"mean", "std", "n"}`` over seeds) as '0.239 ± 0.002', the mean alone for one seed."""
    s = stats.get(key)
    if not s:
        return "\u2013"
    return seeds_text(s["mean"], s["std"], s["n"], f".{digits}f")


def summary_rows(pr: PageRuns, *, thesis_model: str | None = None) -> list[dict]:
    """Best run (thesis choice), mean ± std over seeds (if several), the ensemble, the mean predictor
    and the thesis's numbers."""
    rows: list[dict] = []
    fin = pr.finished
    if not fin:
        return rows
    b = pr.best
    v = verdict(pr)
    flag = "" if v["learned"] else " \u2013 did not learn"
    rows.append(_metric_row(f"best run (seed {b.seed}, lowest test σ){flag}", b.metrics["test"],
                            b.metrics.get("train"), "" if v["learned"] else "not-learned"))
    if len(fin) > 1:
        stats_t = M.mean_std_over_seeds([r.metrics["test"] for r in fin])
        stats_tr = M.mean_std_over_seeds([r.metrics["train"] for r in fin])
        r = {"": f"mean ± std over {len(fin)} seeds"}
        for k in _KEYS:
            r[f"{k} test"] = pm(stats_t, k)
        r["sigma train"], r["mu train"] = pm(stats_tr, "sigma"), pm(stats_tr, "mu")
        rows.append(r)
        ens_t = M.point_metrics(pr.ensemble("test").pred, pr.ensemble("test").true)
        ens_tr = M.point_metrics(pr.ensemble("train").pred, pr.ensemble("train").true)
        rows.append(_metric_row(f"ensemble of the {len(fin)} seeds", ens_t, ens_tr))
    base_t = pr.mean_predictor("test")
    base_tr = pr.mean_predictor("train")
    rows.append(_metric_row("predict the training mean (no model)", M.point_metrics(base_t.pred, base_t.true),
                            M.point_metrics(base_tr.pred, base_tr.true), "baseline"))
    z_t, z_tr = pr.redshift_predictor("test"), pr.redshift_predictor("train")
    if z_t is not None:
        rows.append(_metric_row(REDSHIFT_ONLY, M.point_metrics(z_t.pred, z_t.true), M.point_metrics(z_tr.pred, z_tr.true),
                                "baseline"))
    tm = thesis_model or pr.model
    if tm in TABLE5:
        t5 = TABLE5[tm]
        rows.append({"": "thesis (Table 5, its data, 4000 epochs)" if tm != "basic" else
                     "thesis (Table 5, its data)", "sigma test": fmt(t5["sigma_test"]),
                     "mu test": fmt(t5["mu_test"], signed=True), "std test": "\u2013", "nmad test": "\u2013",
                     "outlier_frac test": "\u2013", "sigma train": fmt(t5["sigma_train"]),
                     "mu train": fmt(t5["mu_train"], signed=True), "_class": "thesis"})
    return rows


SUMMARY_HEADERS = {"sigma test": "σ test (4.0.1)", "mu test": "μ test (4.0.4)", "std test": "std(x) test",
                   "nmad test": "NMAD test", "outlier_frac test": "|x|>0.3 test", "sigma train": "σ train",
                   "mu train": "μ train"}


def cluster_images(path: str | Path, cluster_ids: Sequence[int]) -> dict[int, np.ndarray]:
    """The (50, 50, 10) images of some clusters, read by id without loading the whole file."""
    import h5py

    with h5py.File(path, "r") as f:
        ids = f["cluster_id"][:]
        pos = {int(c): i for i, c in enumerate(ids)}
        missing = [int(c) for c in cluster_ids if int(c) not in pos]
        if missing:
            raise CmlibError(f"cluster ids {missing[:5]} are not in {path}")
        rows = sorted({pos[int(c)] for c in cluster_ids})
        block = f["images"][rows] if rows else np.zeros((0, 50, 50, 10), np.float32)
    by_row = {r: block[k] for k, r in enumerate(rows)}
    return {int(c): by_row[pos[int(c)]] for c in cluster_ids}


def cluster_png(image: np.ndarray, *, bands: Sequence[int] = (1, 2, 3), cap: float = 3.0, title: str = "") -> bytes:
    """PNG of one cluster: the thesis's three input bands (capped as in Fig. 18) and all bands summed."""
    from .. import plots
    from ..schema import band_label

    panels = [image[..., b] for b in bands] + [image.sum(axis=-1)]
    titles = [band_label(b).replace("band ", "b") for b in bands] + ["all 10 bands"]
    import matplotlib.pyplot as plt

    plots.apply_style()
    fig, axes = plt.subplots(1, len(panels), figsize=(2.0 * len(panels), 2.25))
    for ax, img, t in zip(axes, panels, titles):
        vmax = cap if t != "all 10 bands" else max(cap * 3, 1.0)
        ax.imshow(np.minimum(img, vmax), cmap="magma", vmin=0, vmax=vmax, interpolation="nearest")
        ax.set_title(t, fontsize=8)
        plots._bare(ax)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return plots.to_png_bytes(fig, dpi=80)


def scatter_png(model: str, p, highlight: Sequence[int] = (), *, title: str = "") -> bytes:
    """PNG of predicted vs true mass for one model's test set, curated clusters numbered."""
    from .. import plots

    fig, ax = plots._new(figsize=(4.6, 4.3))
    plots._scatter(ax, p, col=plots.color(model), errorbars=False, alpha=0.45)
    for k, i in enumerate(highlight, start=1):
        ax.scatter([p.true[i]], [p.pred[i]], s=60, facecolor="none", edgecolor="k", lw=1.2)
        ax.annotate(str(k), (p.true[i], p.pred[i]), xytext=(4, 4), textcoords="offset points", fontsize=8)
    m = M.point_metrics(p.pred, p.true)
    ax.set_title(title or f"{display_name(model)}: test set, \u03c3={m['sigma']:.3f}, \u03bc={m['mu']:+.3f}",
                 fontsize=9)
    return plots.to_png_bytes(fig, dpi=80)


# ---------------------------------------------------------------- a model's page: its runs, training, diagnosis and remedies; the run inventory

def split_of(pr: PageRuns) -> str:
    """The split of a model's best run ('thesis' or 'train-val-test'); 'thesis' when it has no runs yet."""
    return (pr.best.config if pr.finished else {}).get("split", "thesis")


#: Architecture families built with BatchNormalization layers (Keras applications: ResNet, ResNetV2,
#: EfficientNet; VGG and the small CNNs have none).
BATCHNORM_FAMILIES = ("resnet", "resnet-v2", "efficientnet")


def get_spec_family(model: str) -> str:
    from .. import models

    try:
        return models.get_spec(model).family
    except CmlibError:
        return ""


def stop_kind(run) -> str:
    """Why a finished run stopped: ``early stopping``, ``schedule end`` (an annealed learning rate ran out: the run
    ended on its own, though it may still have been improving, :func:`cmlib.metrics.late_gain`), ``budget end`` (a
    constant learning rate stopped by the epoch budget: not shown to be converged) or ``diverged``."""
    st = run.status_info
    if run.status == "diverged":
        return "diverged"
    if str(st.get("stopped_reason", "")).startswith("early stopping"):
        return "early stopping"
    return "schedule end" if run.config.get("lr_schedule", "constant") != "constant" else "budget end"


def stop_text(run) -> str:
    """Why a finished run stopped, in words (:func:`stop_kind` with the run's own reason): 'early stopping at epoch
    28: ...', 'the end of its annealed learning-rate schedule (30 epochs)', 'the end of its epoch budget (30 epochs;
    a constant learning rate, so not shown to be converged)'."""
    kind = stop_kind(run)
    reason = str(run.status_info.get("stopped_reason") or "")
    if kind == "schedule end" and reason.endswith(("epoch", "epochs")):
        return f"the end of its annealed learning-rate schedule ({reason})"
    if kind == "budget end" and reason.endswith(("epoch", "epochs")):
        return f"the end of its epoch budget ({reason}; a constant learning rate, so not shown to be converged)"
    return reason or kind


def collapsed_after_best(run) -> int | None:
    """The epoch from which a finished run predicted one mass for every cluster to its end
    (:func:`cmlib.metrics.first_epoch_of_constant_output`), where that came after its best epoch: the run it
    reports (best epoch) learned something its last epoch lost.  None otherwise."""
    c = M.first_epoch_of_constant_output(run.history)
    best = run.status_info.get("best_epoch")
    return c if c is not None and best and c > int(best) else None


def collapse_text(run) -> str:
    """'From epoch 51 on it predicted one and the same mass for every cluster, to its last epoch (60): ...' for a
    run that collapsed after its best epoch (:func:`collapsed_after_best`); empty otherwise."""
    c = collapsed_after_best(run)
    if c is None:
        return ""
    last = run.status_info.get("epochs_completed")
    return (f"From epoch {c} on it predicted one and the same mass for every cluster, to its last epoch ({last}): "
            "its dense head had died (the redshift is one of the head's inputs, so one output for every cluster means "
            "every ReLU unit of the head was off for every cluster, and almost no gradient passed it); reported at "
            f"its last epoch, as thesis Table 5 reports the deep models, it would score like predicting "
            f"one mass; its numbers are those of epoch {run.status_info.get('best_epoch')}, the best before the "
            "collapse")


def _stop_groups(runs: Sequence) -> Mapping[tuple[str, int], int]:
    """How many of ``runs`` stopped each way: (:func:`stop_kind`, epochs completed) -> count."""
    from collections import Counter

    return Counter((stop_kind(r), int(r.status_info.get("epochs_completed") or 0)) for r in runs)


def _stops_text(runs: Sequence) -> str:
    """How a set of seeds stopped: 'to the schedule's end (30 epochs)' for one or all alike, else '2 to the
    schedule's end (30 epochs) and 1 by early stopping after 28 epochs'."""
    def one(kind: str, ep: int) -> str:
        return {"schedule end": f"to the schedule's end ({counted(ep, 'epoch')})",
                "budget end": f"to the epoch budget ({counted(ep, 'epoch')})",
                "early stopping": f"by early stopping after {counted(ep, 'epoch')}",
                "diverged": f"until it diverged after {counted(ep, 'epoch')}"}.get(kind, f"after {counted(ep, 'epoch')}")
    groups = _stop_groups(runs)
    if len(groups) == 1:
        return one(*next(iter(groups)))
    return and_list([f"{n} {one(k, e)}" for (k, e), n in sorted(groups.items(), key=lambda g: (-g[1], g[0]))])


def _missing_seeds_text(pr: PageRuns, root: Path, seeds: Sequence[int]) -> str:
    """'seeds 1, 2 not started; seed 0 in progress (epoch 12 of 30)': where the missing seeds stand on disk."""
    states = R.seed_states(pr.request, root, seeds)
    waiting = [s for s, st in states.items() if st is None]
    other = [f"seed {s} {st['state']} (epoch {st['epoch']} of {pr.request.epochs})"
             for s, st in states.items() if st is not None]
    parts = ([f"seed{'s' if len(waiting) > 1 else ''} {', '.join(map(str, waiting))} not started"]
             if waiting else []) + other
    return "; ".join(parts)


def _segment_hardware(seg: Mapping) -> str:
    """'2 CPU cores', '1 of 2 CPU cores' (one job per core) or the GPU's name, for one stretch of a run."""
    if seg.get("gpu_names"):
        return ", ".join(seg["gpu_names"])
    cores, threads = seg.get("cpu_cores"), seg.get("compute_threads")
    if cores:
        if threads and threads < cores:
            return f"{threads} of {cores} CPU core{'s' if cores != 1 else ''}"
        return f"{cores} CPU core{'s' if cores != 1 else ''}"
    return str(seg.get("machine", "unknown hardware"))


def _run_hardware(run) -> str:
    """Where one run trained: '2 CPU cores', or its stretches where it resumed on other hardware or threads,
    '2 CPU cores (epochs 1–9), then 1 of 2 CPU cores (10–30)'."""
    segs = run.segments
    kinds = [_segment_hardware(g) for g in segs]
    if len(set(kinds)) == 1:
        return kinds[0]
    return ", then ".join(f"{k} ({'epochs ' if i == 0 else ''}{g['first_epoch']}\u2013{g['last_epoch']})"
                          for i, (k, g) in enumerate(zip(kinds, segs)))


def run_precision(run) -> str:
    """The arithmetic a run trained in ('float32' for records from before the setting existed)."""
    return str(run.config.get("precision", "float32"))


def hardware_of(runs: Sequence) -> str:
    """The hardware and arithmetic of some runs, each kind once: '2 CPU cores, bfloat16', or
    '2 CPU cores, bfloat16 / 2 CPU cores, float32' (a seed trained where there are no bf16 units)."""
    return " / ".join(sorted({f"{_run_hardware(r)}, {run_precision(r)}" for r in runs}))


def precision_words(runs: Sequence) -> str:
    """The arithmetic of some runs: 'float32' where all agree, else per seed, 'bfloat16 (seed 0), float32 (seeds 1,
    2)': seeds of one recipe in either precision are one experiment up to round-off
    (:func:`cmlib.config.round_off_variants`)."""
    by: dict[str, list[int]] = {}
    for r in runs:
        by.setdefault(run_precision(r), []).append(int(r.seed))
    if len(by) <= 1:
        return next(iter(by), "float32")
    return ", ".join(f"{p} (seed{'s' if len(s) > 1 else ''} {', '.join(map(str, sorted(s)))})"
                     for p, s in sorted(by.items(), key=lambda kv: min(kv[1])))


def precision_note(runs: Sequence, base: Sequence) -> str:
    """'; its runs in float32, the recipe's in bfloat16, which changes a run by round-off only': where ``runs``
    (e.g. a remedy's) used another arithmetic than ``base`` (the runs whose recipe it changes); empty otherwise."""
    mine, theirs = {run_precision(r) for r in runs}, {run_precision(r) for r in base}
    if not mine or not theirs or mine == theirs:
        return ""
    return (f"; its runs in {precision_words(runs)}, the recipe's runs in {precision_words(base)}, which changes a "
            "run by round-off only")


def run_inventory_rows(profile: str, root: str | Path = ".", data: str | None = None) -> list[dict]:
    """What was actually run for each model page of a profile and each of its stored experiments (the compute
    plan): source, protocol, seeds done of planned, epochs, why the runs stopped, test std(x), wall time and
    hardware of the finished runs, and where unfinished seeds stand (read-only).  ``kind`` says whether a row
    is a model page (``"model"``) or a stored experiment (``"experiment"``); the table does not show it."""
    from ..artifacts import format_duration

    prof = get_profile(profile)
    rows = []
    items = [(m, None) for m in prof.pages()] + [(plan.model, key) for key, plan in prof.experiments.items()
                                                 if plan.source == "stored"]
    for m, key in items:
        pr = find_page_runs(m, profile, root=root, data=data, experiment=key)
        fin = pr.finished
        wall = sum(float(r.status_info.get("wall_time_s") or 0.0) for r in fin)
        eps = sorted({r.status_info.get("epochs_completed", 0) for r in fin})
        stds = [r.metrics.get("test", {}).get("std", math.nan) for r in fin]
        kinds = sorted({stop_kind(r) for r in fin})
        rows.append({
            "kind": "experiment" if key else "model",
            "model": display_name(m) + (f" — {pr.plan.label}" if key else ""),
            "protocol": "fair" if pr.request.overrides.get("split") == "train-val-test" else "thesis",
            "source": {"stored": "stored", "trained": "build", "missing": "not run yet"}[pr.how],
            "seeds": f"{len(fin)} of {len(pr.request.seeds)}",
            "epochs": "\u2013" if not eps else (f"{eps[0]}" if len(eps) == 1 else f"{eps[0]}\u2013{eps[-1]}")
            + f" of {pr.request.epochs}",
            "stopped by": ", ".join(kinds) if kinds else "\u2013",
            "test std(x) [dex]": "\u2013" if not stds else seeds_text_of(stds),
            "compute": f"{format_duration(wall)} on {hardware_of(fin)}" if fin else "\u2013",
            "still missing": _missing_seeds_text(pr, Path(root), [s for s in pr.request.seeds
                                                                 if s not in {r.seed for r in fin}]),
        })
    return rows


def run_inventory_markdown(profile: str, root: str | Path = ".", data: str | None = None) -> str:
    """The run inventory as a Markdown table with a one-line summary (the intro includes it)."""
    rows = run_inventory_rows(profile, root, data=data)
    cols = [c for c in (rows[0] if rows else ()) if c != "kind"]
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        out.append("| " + " | ".join(str(r[c]).replace("|", "/") or "\u2013" for c in cols) + " |")
    models = [r for r in rows if r["kind"] == "model"]
    done = sum(1 for r in models if r["source"] != "not run yet")
    extra = [r for r in rows if r["kind"] == "experiment"]
    head = (f"**What this build shows** (profile `{profile}`, generated from the run directories when the book "
            f"was built): {done} of {len(models)} models have finished runs"
            + (f"; {sum(1 for r in extra if r['source'] != 'not run yet')} of the {len(extra)} stored experiments "
               "(below the models) have finished runs" if extra else "")
            + ". Protocol *fair*: train/validation/test split, the test set used once; *thesis*: the test set "
            "doubles as the validation set. Source *build*: trained by `make book`; *stored*: committed runs. "
            "Compute: wall time summed over the finished seeds, the hardware and the arithmetic. The plan asks for "
            "bf16 (float32 for EfficientNet-B7), which pays only on a CPU or GPU with bf16 units; a seed in float32 "
            "is the same experiment up to round-off (the precision check on the training-parameters page). Most "
            "long deep runs are float32: this project's machine once moved to a host without bf16 units, where bf16 "
            "is emulated and many times slower, and a run keeps its arithmetic when it resumes. "
            "A run that stopped at the *budget end* (constant learning rate, epoch budget used up) may have been cut "
            "while still improving; *early stopping* and the *schedule end* (the learning rate annealed to zero) end "
            "a run on their own, as the protocol asks, but neither proves that more epochs would not help. A page says so "
            "where its best run's validation loss was still falling when the schedule ended; no such note is no "
            "proof either: an annealed rate flattens every curve at its end, whether or not more epochs would help.")
    return head + "\n\n" + "\n".join(out) + "\n"


def config_rows(pr: PageRuns) -> list[dict]:
    """The configuration the best run resolved, with the input shape of that run (not the recipe's)."""
    from .thesis import TABLE3, TABLE3_NOTES

    best = pr.best
    cfg = best.config
    rows = [{"setting": key, "value": str(cfg.get(key))} for key in
            ("bands", "pad", "scaling", "augment", "loss", "output", "optimizer", "weight_decay", "lr",
             "lr_schedule", "warmup_epochs", "batch_size", "early_stopping", "head", "dense_units", "label_scaling",
             "precision", "split", "epochs") if key in cfg]
    rows[0]["value"] = ", ".join(f"band {b + 1}" for b in cfg["bands"])
    for r in rows:
        if r["setting"] == "precision":           # the seeds may differ (the same experiment up to round-off)
            r["value"] = precision_words(pr.finished)
    ob = cfg.get("output_bias", "zero")
    rows.append({"setting": "output_bias", "value": ob + (
        " (the output starts at the mean training mass, not at 0 as in the thesis: a run of a few epochs "
        "would otherwise spend them walking the output bias 14 dex to the answer)" if ob == "mean" else "")})
    shape = run_input_shape(cfg)
    rows.append({"setting": "input image shape (this run)", "value": str(shape)})
    n = cached(f"params-{pr.model}-{'x'.join(map(str, shape))}-{cfg.get('head')}-{cfg.get('dense_units')}",
               lambda: {"params": _trainable_params(pr.model, shape, cfg)})["params"]
    rows.append({"setting": f"trainable parameters at this run's input {shape}", "value": f"{n / 1e6:.2f} M"})
    if pr.model in TABLE3:
        note = TABLE3_NOTES.get(pr.model)
        rows.append({"setting": "thesis Table 3: trainable parameters" + ("" if pr.model == "basic" else
                                                                         " (at 71 × 71 × 3)"),
                     "value": f"{TABLE3[pr.model]['params_m']} M" + (f" ({note})" if note and pr.model != "basic" else "")})
    return rows


#: The settings a run may change against its model's recipe, as :func:`recipe_changes` names them.
_RECIPE_KEYS = ("pad", "scaling", "augment", "loss", "output", "optimizer", "lr", "weight_decay", "lr_schedule",
                "warmup_epochs", "batch_size", "early_stopping", "head", "dense_units", "dropout", "output_bias",
                "label_scaling")


def recipe_changes(pr: PageRuns) -> list[str]:
    """The settings of the page's best run that differ from its model's registered recipe (thesis Table 4 for the
    deep models, the papers' for the basic CNN and the Krippendorf baseline), as 'optimizer adamw (recipe: adam)'."""
    from .. import models
    from ..config import parse_bands

    recipe = dict(models.get_spec(pr.model).recipe)
    cfg = pr.best.config
    out = []
    if cfg.get("bands") is not None and recipe.get("bands") is not None:
        ran, own = tuple(cfg["bands"]), tuple(parse_bands(recipe["bands"]))
        if ran != own:                                 # the run read other bands than the recipe's
            out.append(f"bands {_bands_words(ran)} (recipe: {_bands_words(own)})")
    return out + [f"{k} {cfg[k]} (recipe: {recipe[k]})" for k in _RECIPE_KEYS
                  if k in cfg and k in recipe and cfg[k] != recipe[k]]


def _bands_words(bands: Sequence[int]) -> str:
    """A band set in words, after "bands": "the thesis's 3", "all 10" or "1, 5 and 8" (numbered from 1, as the
    configuration table and ``--bands`` number them)."""
    from ..config import parse_bands

    b = tuple(bands)
    if b == tuple(parse_bands("thesis")):
        return f"the thesis's {len(b)}"
    if b == tuple(parse_bands("all")):
        return f"all {len(b)}"
    return and_list([str(i + 1) for i in b])


def config_markdown(pr: PageRuns) -> str:
    """The sentence above the configuration table: where the recipe comes from and what this page's runs changed
    in it (so that a fair-protocol run is not read as the thesis's Table 4)."""
    if not pr.finished:
        return ""
    fam = get_spec_family(pr.model)
    source = {"basic": "the thesis's basic CNN (Sect. 4.1, after Krippendorf et al. 2023)",
              "baseline": "Krippendorf et al. (2023)"}.get(
        fam, "thesis Table 4 with two choices of cmlib's: the output starts at the mean training mass, where the "
             "thesis kept Keras's zero (from scratch, a zero start leaves the network 14 dex to cross first), and "
             "the arithmetic is bfloat16 where the hardware has it")
    changes = recipe_changes(pr)
    cfg = pr.best.config
    txt = (f"Below: the settings {pr.label}'s best run resolved, the shape of the images it was trained on and the "
           f"size of the network. The model's own recipe, as cmlib registers it, is {source}; ")
    txt += (f"this run changed {and_list(changes)}." if changes else "this run follows it.")
    if fam not in ("basic", "baseline"):
        ref = int(models_recipe_epochs(pr.model))
        txt += (f" It was trained {'from scratch' if not cfg.get('weights') else 'from ' + str(cfg['weights'])} for "
                f"at most {counted(int(cfg.get('epochs', 0)), 'epoch')}, where the thesis trained {ref} from ImageNet "
                "weights; *Training parameters (thesis Sect. 3.3)* shows why the recipe differs.")
    return txt


def models_recipe_epochs(model: str) -> int:
    """The number of epochs the model's recipe names (thesis Table 4: 4000 for the deep models)."""
    from .. import models

    return int(dict(models.get_spec(model).recipe).get("reference_epochs") or 0)


def _trainable_params(model: str, shape: Sequence[int], cfg: Mapping) -> int:
    """Trainable parameters of ``model`` built for ``shape`` with the run's head (the dense head after Flatten
    grows with the image side, so 50 x 50 and 71 x 71 differ)."""
    from .. import models
    from ..models.counting import count_params

    opts = {k: cfg[k] for k in ("head", "dense_units", "output") if cfg.get(k) is not None}
    return int(count_params(models.build(model, tuple(shape), **opts)))


def run_input_shape(cfg: Mapping) -> tuple[int, int, int]:
    """(H, W, C) of the images a run was trained on: its bands and its padding."""
    from ..recipe import Recipe

    side = Recipe(bands="all", pad=cfg.get("pad", "none")).input_shape[0]
    return (side, side, len(cfg["bands"]))


def training_text(pr: PageRuns) -> str:
    """What the best run's history says: epochs, best epoch, stopping reason, train/val gap."""
    best = pr.best
    h = best.history
    b_ep = best.status_info.get("best_epoch", 0)
    n_ep = best.status_info.get("epochs_completed", 0)
    gap = ""
    if n_ep > 1 and b_ep and h["loss"][-1] > 0:
        # medians over the last epochs (up to 5): one spiking epoch is not overfitting
        k = min(5, len(h["loss"]))
        tr, va = float(np.nanmedian(h["loss"][-k:])), float(np.nanmedian(h["val_loss"][-k:]))
        ratio = va / tr if math.isfinite(tr) and math.isfinite(va) and tr > 0 else math.nan
        gap = "" if not math.isfinite(ratio) else (f" Over the last {counted(k, 'epoch')} the validation loss is {ratio:.2g}\u00d7 the training loss "
               f"(medians: {va:.3g} against {tr:.3g})" + (", a sign of overfitting." if ratio > 1.5 else "."))
    if len(h["loss"]) and h["loss"][0] > 10 * max(h["val_loss"][0], 1e-12):
        bn = get_spec_family(pr.model) in BATCHNORM_FAMILIES
        gap += (" The training loss of the first epochs is far above the validation loss: Keras reports the "
                "training loss as the mean over the epoch's batches, "
                + ("with batch normalisation in training mode and the weights still moving, " if bn else
                   "with the weights still moving, ")
                + "while the validation loss is computed once, at the end of the epoch"
                + (", in inference mode" if bn else "") + ". In the first epochs from scratch the early batches "
                "dominate that mean.")
    late = M.late_gain(h)
    if stop_kind(best) == "schedule end" and late > M.LATE_GAIN_MIN:
        gap += (f" Its validation loss was still falling when the schedule ended (its best in the last "
                f"{counted(M.late_window(len(h['val_loss'])), 'epoch')} is {late:.1%} below its best before them): "
                "the run ended on its own, as the learning rate reached zero, but a longer schedule may still help.")
    return (f"The best run trained for {counted(n_ep, 'epoch')}; its validation loss was lowest at epoch {b_ep} "
            f"({best.metrics['loss']['val_best']:.4g}). Why it stopped: {stop_text(best)}. "
            f"Predictions below use the weights of the {best.metrics.get('predicted_with', 'last')} epoch "
            f"(the thesis reports the last epoch for the deep models and the validation minimum for the basic CNN).{gap}"
            + (f" {FLOORS_NOTE}" if history_references(best) else ""))


def page_sections(pr: PageRuns, profile: str) -> dict[str, bool]:
    """Which optional sections of the architecture template apply to this page.

    ``uncertainties``: the model predicts an uncertainty; ``versus_basic``: it is not the basic CNN
    and the profile has basic-CNN runs; ``experiments``: the profile has thesis experiments with it;
    ``remedy``: the profile plans remedy runs for it (:func:`remedy_markdown`); ``thesis_protocol``: the profile
    plans a run of it under the thesis's own protocol (:func:`thesis_protocol_page_markdown`).
    """
    prof = get_profile(profile)
    return {
        "uncertainties": bool(pr.finished) and pr.best.predictions["test"].sigma is not None,
        "versus_basic": pr.model != "basic" and "basic" in prof.models,
        "experiments": any(p.model == pr.model and k in ("basic_overfit", "basic_lr5e-4")
                           for k, p in prof.experiments.items()),
        "seed_spread": len(pr.finished) > 1,
        "diagnostics": bool(pr.finished) and "mse_train_eval" in pr.best.history,
        "remedy": bool(pr.finished) and bool(remedy_keys(prof, pr.model)),
        "thesis_protocol": pr.model != "basic" and pr.model + THESIS_PROTOCOL_SUFFIX in prof.experiments,
    }


#: Known remedies of the failures :func:`cmlib.metrics.training_findings` looks for (established practice,
#: not tried in this book's runs).
REMEDIES = {
    "BatchNorm train/inference gap": ("re-estimate the BatchNorm statistics on training batches in inference mode "
                                      "after training", "lower the BatchNorm momentum"),
    "collapse to the mean": ("standardised labels with the output started at the label prior", "a smaller learning "
                             "rate"),
    "vanishing gradients": ("residual connections and normalisation (the ResNets have both)", "a learning-rate warm-up"),
    "image path cut": ("the remedies for dead ReLUs (their death cuts it)", "residual connections (a path around a "
                       "dead layer; the ResNets have them)"),
    "dead ReLUs": ("a smaller learning rate", "a learning-rate warm-up", "He initialisation", "a leaky ReLU"),
    "dead head": ("a smaller learning rate", "global average pooling instead of Flatten (fewer inputs per head "
                  "unit)", "a leaky ReLU in the head"),
    "memorisation": ("more augmentation (all eight orientations: flips and 90-degree rotations)",
                     "stronger weight decay", "a smaller head (global average pooling instead of Flatten)",
                     "more training clusters"),
}


def _remedies_not_tried(check: str, config: Mapping) -> list[str]:
    """The known remedies of a failure, less those the run already had (read from its configuration)."""
    tried = set()
    if config.get("warmup_epochs", 0):
        tried.add("a learning-rate warm-up")
    if config.get("label_scaling") == "standardize" and config.get("output_bias") == "prior":
        tried.add("standardised labels with the output started at the label prior")
    if config.get("augment") == "flip-rot90":
        tried.add("more augmentation (all eight orientations: flips and 90-degree rotations)")
    if config.get("head") == "gap":
        tried.add("global average pooling instead of Flatten (fewer inputs per head unit)")
        tried.add("a smaller head (global average pooling instead of Flatten)")
    return [r for r in REMEDIES[check] if r not in tried]


def _mse_predictions(run: Any) -> dict | None:
    """A run's predictions where its loss is the MSE of log M (so its history's losses are in dex², also for
    standardised labels: cmlib.train reports them so) and it has validation predictions; else None."""
    p = run.predictions
    return p if run.config.get("loss", "mse") == "mse" and "train" in p and "val" in p else None


def _mse(q: M.Predictions) -> float:
    """The mean squared error of predictions [dex²]: what an MSE run's history calls its loss."""
    return float(np.mean((q.pred - q.true) ** 2))


def memorisation_finding(run: Any) -> dict | None:
    """:func:`cmlib.metrics.memorisation` for one run, with the redshift-only floors computed from its own
    predictions (fitted on its training clusters); None for a run without validation predictions, redshifts or
    an MSE loss (a Gaussian NLL's loss is not a squared error)."""
    p = _mse_predictions(run)
    if p is None:
        return None
    try:
        floors = [_mse(M.redshift_predictor(p["train"], q)) for q in (p["train"], p["val"])]
    except CmlibError:
        return None
    return M.memorisation(run.history, *floors)


def diagnosis_markdown(pr: PageRuns) -> str:
    """What the best run's per-epoch diagnostics say: each check's number, the failures found, known remedies,
    and whether that agrees with the learning verdict (generated from the run)."""
    best = pr.best
    found = M.training_findings(best.history)
    mem = memorisation_finding(best) if found else None
    if mem is not None:
        found.append(mem)
    if not found:
        return ("The best run recorded no per-epoch diagnostics (runs made before cmlib recorded them have none; "
                "train it again to get them).")
    v = verdict(pr)
    learned = v["learned"]
    text = (f"Median of the last epochs of the best run (seed {best.seed}), on a fixed probe of training clusters: "
            + "; ".join(f["text"] for f in found if f is not mem) + ".")
    if mem is not None:
        text += f" Over the whole run, {mem['text']}."
    bad = [f for f in found if f["found"]]
    if bad and learned:
        # a sign is a threshold crossed, not a failure: a model that learned was not stopped by it
        text += (" Signs of: " + ", ".join(f["check"] for f in bad) + ", yet the model learned from the images: "
                 + ("this did" if len(bad) == 1 else "these did") + " not stop it.")
    elif bad:
        text += (" **Signs of: " + ", ".join(f["check"] for f in bad) + ".** Known remedies not tried in this run: "
                 + "; ".join(f"{f['check']}: {', '.join(_remedies_not_tried(f['check'], best.config)) or 'none left'}"
                             for f in bad) + ".")
        cut = next((f for f in bad if f["check"] == "image path cut"), None)
        if cut is not None and v["rule"] == "redshift only":
            first = M.first_epoch_without_gradient(best.history)
            text += (" Together these explain the verdict: the image path is cut"
                     + (f" (from epoch {first} on the first layer gets no gradient at all)" if first else "")
                     + ", so nothing of the image reaches the output, and the network predicts from the redshift, "
                     "which its dense head receives directly. The decisive sign is that zero gradient"
                     + ("; dead ReLU channels alone need not stop a network from learning"
                        if any(f["check"] == "dead ReLUs" for f in bad) else "") + ".")
        if any(f["check"] == "dead head" for f in bad) and not learned:
            first = M.first_epoch_of_constant_output(best.history)
            text += (" Together these explain the verdict: "
                     + (f"from epoch {first} on the output is one constant (the mark of a dead head"
                        + _dead_head_recorded(best.history, first) + ")" if first else "the head is dead")
                     + ", so the network returns one mass for every cluster, and since almost no gradient passes a "
                     "dead head, more epochs do not revive it.")
            text += _dead_run_stopping(best, first)
        if mem is not None and mem["found"] and not learned:
            bn = next((f for f in found if f["check"] == "BatchNorm train/inference gap"), None)
            text += (" Memorisation fits the verdict: the network reads something from its training images, but "
                     "what it reads does not hold for other clusters, so on new clusters it is not clearly better "
                     "than the redshift alone. Whether it is what stops the network, only a remedy aimed at it can "
                     "show (Remedies, where one was tried). The thesis's slides report a related failure for "
                     "ResNet101 and EfficientNet-B7, \u201cvery low training loss while predicting very poorly\u201d, "
                     "a pattern often put down to BatchNorm statistics that differ between training and inference"
                     + (": this run's BatchNorm check above rules that out" if bn is not None and not bn["found"]
                        else "") + ".")
    else:
        text += (" None of these failures shows" + (", and the model learned." if learned else
                 ", yet the model did not learn from the images: the cause lies elsewhere (the number of "
                 "epochs, the learning rate, the recipe)."))
    return text + (_failed_seeds_diagnosis(pr) if learned else "")


def _failed_seeds_diagnosis(pr: PageRuns) -> str:
    """The seeds of a model that learned (its best run) which did not: each with its verdict and the failure signs
    its own diagnostics show (:func:`_failure_signs`), since the best run's diagnosis does not speak for them."""
    out = []
    for r in pr.finished:
        if r is pr.best:
            continue
        v = verdict(pr, r)
        if v["learned"]:
            continue
        signs = list(_failure_signs(r)) if "mse_train_eval" in r.history else None
        out.append(f"Seed {r.seed} did not learn ({v['short']}; test std(x) {v['std']:.3f} dex, "
                   f"{stop_text(r)})"
                   + (": it recorded no diagnostics" if signs is None else
                      f": its own diagnostics show signs of {and_list(signs)}" if signs else
                      ": its own diagnostics show none of these failure signs" + _probe_error_against(r, pr.best)))
    return (" " + ". ".join(out) + ".") if out else ""


def _probe_error_against(run: Any, best: Any) -> str:
    """', though its error on the training probe (inference mode) ends at 0.115 dex² against the best run's 0.055
    dex²...' where ``run``'s is clearly (1.5x) higher than ``best``'s: it fitted its training clusters less well; empty
    otherwise."""
    mine, theirs = (M.last_median(r.history, "mse_train_eval") for r in (run, best))
    if not (math.isfinite(mine) and math.isfinite(theirs)) or mine < 1.5 * theirs:
        return ""
    return (f", though its error on the training probe (inference mode) ends at {mine:.3f} dex² against the best "
            f"run's {theirs:.3f} dex²: it did not fit even its training clusters as well")


def _dead_head_recorded(history: Mapping, dead_from: int) -> str:
    """Where a run's ``dead_head`` column (the measured share of dead head units) starts after the epoch
    ``dead_from`` from which its output was constant (runs resumed from before cmlib recorded it): '; the share of
    the head's units that are off for every probe cluster, recorded only from epoch 15 on, is 100% from there';
    empty where it was recorded from then on or never."""
    dh = np.asarray(history.get("dead_head", []), dtype=float)
    ep = np.asarray(history.get("epoch", np.arange(1, dh.size + 1)))
    seen = np.flatnonzero(np.isfinite(dh))
    if not seen.size or ep[seen[0]] <= dead_from:
        return ""
    return (f"; the share of the head's units that are off for every probe cluster, recorded only from epoch "
            f"{int(ep[seen[0]])} on, is {'' if np.nanmin(dh[seen]) >= 1 else 'at least '}{np.nanmin(dh[seen]):.0%} "
            "from there")


def _failure_signs(run: Any) -> dict[str, dict]:
    """The failure signs a run shows (:func:`cmlib.metrics.training_findings` and :func:`memorisation_finding`
    found), by check name."""
    found = [f for f in M.training_findings(run.history) if f["found"]]
    mem = memorisation_finding(run)
    if mem is not None and mem["found"]:
        found.append(mem)
    return {f["check"]: f for f in found}


def _signs_removed(before: Any, after: Any) -> str:
    """For a remedy that did not make the model learn: the failure signs of the page's best run (``before``) that
    its best run (``after``) no longer shows, whose removal alone was therefore not enough; empty where none
    went."""
    b, a = _failure_signs(before), _failure_signs(after)
    gone = [c for c in b if c not in a]
    if not gone:
        return ""
    words = []
    for c in gone:
        w = c
        now = memorisation_finding(after) if c == "memorisation" else None
        if now is not None:
            w += (f" (lowest training loss {now['value']:.0%} of what the redshift alone leaves on the training "
                  f"clusters, was {b[c]['value']:.0%})")
        words.append(w)
    one = len(gone) == 1
    return (f" Its best run no longer shows {', '.join(words)}, which the page's best run did, yet it does not "
            f"learn: removing {'that sign' if one else 'those signs'} alone was not enough.")


def _dead_run_stopping(run: Any, dead_from: int | None) -> str:
    """Why a run with a dead head (one constant output from epoch ``dead_from`` on) went on for many epochs: its
    validation loss drifts by tiny amounts (:func:`cmlib.metrics.validation_drift`, under 0.1 % of its value) and
    early stopping without a minimum change counts each decrease as an improvement.  Empty where that did not keep
    the run going (it stopped within its patience of the death) or the loss moved more."""
    st, cfg = run.status_info, run.config
    last, best, patience = st.get("epochs_completed"), st.get("best_epoch"), int(cfg.get("early_stopping") or 0)
    if not (dead_from and last and best and patience) or float(cfg.get("min_delta") or 0) > 0:
        return ""
    drift = M.validation_drift(run.history, dead_from)
    level = float(np.nanmin(np.asarray(run.history.get("val_loss", [np.nan]), dtype=float)))
    if not (np.isfinite(drift) and drift < 1e-3 * level) or int(last) <= dead_from + patience:
        return ""
    return (f" From epoch {dead_from} on its validation loss moved by at most {drift:.0e} dex² in all "
            f"({drift / level:.0e} of its value): the one mass it predicts shifts a little as the output's bias "
            "follows each batch's mean mass, and nothing else changes. Early stopping counts any decrease as an "
            "improvement (no minimum change), so such decreases restarted its "
            f"patience of {patience} epochs: the run went on to epoch {last}, and its best epoch ({best}) is one of "
            "equals, not a model that learned more.")


def remedy_runs(pr: PageRuns, profile: str, root: str | Path = ".", data: str | None = None) -> list[PageRuns]:
    """The runs of each remedy tried for this model, in the order tried (the profile's experiments
    ``<model>_remedy_<slug>``, :data:`~cmlib.book.profiles.FAIR_REMEDIES`), finished or not; empty where the
    profile plans none."""
    return [find_page_runs(pr.model, profile, root=root, experiment=key, data=data)
            for key in remedy_keys(get_profile(profile), pr.model)]


def remedies_that_learned(remedies: Sequence[PageRuns]) -> list[PageRuns]:
    """Those of ``remedies`` (:func:`remedy_runs`) whose runs finished on the page's data file and learned from the
    images (:func:`verdict`); a run made on another version of the data file judges other clusters and counts as
    not run."""
    return [r for r in remedies if r.usable and verdict(r)["learned"]]


def _image_path(history: Mapping) -> dict:
    """The image path of a run at its last epoch: the first layer's gradient norm, the epoch from which on it
    stayed zero (None if it never did) and the fraction of dead ReLU channels (NaN where not recorded); and its
    lowest training and validation loss over the run."""
    g = np.asarray(history.get("grad_norm_first", [np.nan]), dtype=float)
    dead = np.asarray(history.get("dead_relu", [np.nan]), dtype=float)
    return {"grad_first": float(g[-1]), "zero_from": M.first_epoch_without_gradient(history),
            "dead": float(dead[-1]), "train_min": M.lowest(history, "loss"), "val_best": M.lowest(history, "val_loss")}


def remedy_summary(pr: PageRuns, remedy: PageRuns, profile: str, root: str | Path = ".",
                   data: str | None = None) -> dict:
    """What the remedy run changed, from the runs: the image path (first-layer gradient, dead ReLUs) of the page's
    best run and of the remedy's, the learning verdict of each, and the remedy against the page's runs and the
    basic CNN on the same test clusters (paired bootstrap).  ``works``: the remedy learned where the page's runs
    did not."""
    from .. import compare

    a, b = pr.best, remedy.best
    out = {"label": remedy.label, "seeds": len(remedy.finished),
           "std_seeds": [M.point_metrics(r.predictions["test"].pred, r.predictions["test"].true)["std"]
                         for r in remedy.finished],
           "before": {**_image_path(a.history), **verdict(pr)}, "after": {**_image_path(b.history), **verdict(remedy)},
           "same_split": split_of(pr) == split_of(remedy)}
    out["works"] = bool(out["after"]["learned"] and not out["before"]["learned"])
    # the seeds' ensembles (one seed: the run itself) on the same test clusters, as in the fair comparison
    tb = remedy.ensemble("test")
    out["vs_page"] = compare.paired_difference(tb, pr.ensemble("test")) if out["same_split"] else None
    basic = basic_on_same_split(remedy, profile, root=root, data=data)
    out["vs_basic"] = compare.paired_difference(tb, basic.ensemble("test")) if basic is not None else None
    out["basic_seeds"] = len(basic.finished) if basic is not None else 0
    return out


def paired_markdown(a: PageRuns, a_label: str, b: PageRuns, b_label: str) -> str:
    """Two sets of runs on the same test clusters, as every comparison in the book is made: the std(x) of the
    ensemble of ``a``'s seeds minus ``b``'s, with its bootstrap 95 % interval over the clusters
    (:func:`cmlib.compare.paired_difference`), in words; empty where either has no finished runs or they share
    no test clusters (other splits)."""
    from .. import compare

    if not (a.finished and b.finished) or split_of(a) != split_of(b):
        return ""
    d = compare.paired_difference(a.ensemble("test"), b.ensemble("test"))
    words = {"better": f"{a_label} is better", "worse": f"{a_label} is worse",
             "indistinguishable": "the two cannot be told apart"}[d.verdict]

    def ens(pr: PageRuns) -> str:
        n = len(pr.finished)
        return f"the ensemble of {n} seeds" if n > 1 else "1 seed"
    return (f"Paired on the same {d.n_clusters} test clusters ({a_label}: {ens(a)}; {b_label}: {ens(b)}), "
            f"{a_label} minus {b_label}: {_ci(d)} in std(x): {words}.")


def _vs_basic_words(s: Mapping) -> str:
    """'+0.009 [-0.001, +0.020] dex (the remedy's run against the basic CNN's ensemble of 3 seeds, on the same
    clusters): cannot be told apart'."""
    d = s["vs_basic"]
    words = {"better": "better", "worse": "worse", "indistinguishable": "cannot be told apart"}.get(d.verdict,
                                                                                                 d.verdict)
    mine = f"the remedy's ensemble of {s['seeds']} seeds" if s["seeds"] > 1 else "the remedy's run"
    ens = f"the basic CNN's ensemble of {s['basic_seeds']} seeds" if s["basic_seeds"] > 1 else "the basic CNN's run"
    return f"{_ci(d)} ({mine} against {ens}, on the same clusters): {words}"


def _seed_stds(stds: Sequence[float]) -> str:
    """Test std(x) over seeds: '0.271 (1 seed)' or '0.268 ± 0.004 (3 seeds)'."""
    return f"{seeds_text_of(stds)} dex ({counted(len(stds), 'seed')})"


def _ci(d) -> str:
    return f"{d.diff:+.3f} [{d.ci95[0]:+.3f}, {d.ci95[1]:+.3f}] dex"


def remedy_markdown(pr: PageRuns, remedy: PageRuns | None, profile: str, root: str | Path = ".",
                    data: str | None = None, *, first: bool = True) -> str:
    """The architecture page's account of a remedy tried for its failure (``remedy``: one of :func:`remedy_runs`;
    ``first``: the first of them, else it is called a further remedy): pending (with the command and the progress)
    or what it changed (:func:`remedy_summary`); empty where none is planned or the page has no runs."""
    if remedy is None or not pr.finished:
        return ""
    name = "The remedy" if first else "A further remedy"
    if remedy.finished and remedy.data_mismatch:
        return (f"**{name}, {remedy.label}:** its runs were made on another version of the data file, so their test "
                f"clusters are other clusters and they are not shown. Make them again with "
                f"`{remedy.request.command()}`.")
    if not remedy.finished:
        return (f"**{name}, planned:** the same recipe with {remedy.label}, "
                f"{counted(len(remedy.plan.seeds), 'seed')}. It is part of the book's "
                f"compute plan but has not finished yet. {R.progress_text(remedy.request, Path(root))} Make it "
                f"with `{remedy.request.command()}` (resumable).")
    s = remedy_summary(pr, remedy, profile, root=root, data=data)
    b, a = s["before"], s["after"]

    def path(d: Mapping) -> str:
        g = ("no gradient at all in the first layer" + (f" from epoch {d['zero_from']} on" if d["zero_from"] else "")
             if d["grad_first"] == 0 else f"a first-layer gradient norm of {d['grad_first']:.2g}"
             if math.isfinite(d["grad_first"]) else "no recorded first-layer gradient")
        if math.isfinite(d["dead"]):
            return g + f" and {d['dead']:.0%} of its ReLU channels dead at its last epoch"
        return g + ("" if d["grad_first"] == 0 or not math.isfinite(d["grad_first"]) else " at its last epoch")
    missing = len(remedy.plan.seeds) - s["seeds"]
    text = (f"**{name}, tried:** the same recipe with {s['label']}: {counted(s['seeds'], 'seed')}"
            + (f" of {len(remedy.plan.seeds)}" if missing else "")
            + (", trained " if s["seeds"] == 1 else ", all trained " if len(_stop_groups(remedy.finished)) == 1
               else ": ")
            + f"{_stops_text(remedy.finished)}. The page's best run had {path(b)}; the remedy's best run has "
            f"{path(a)}. Lowest training loss and "
            f"best validation loss: {b['train_min']:.3f} and {b['val_best']:.3f} dex² for the page's best run, "
            f"{a['train_min']:.3f} and {a['val_best']:.3f} dex² for the remedy's. Test std(x) of the remedy: "
            f"{_seed_stds(s['std_seeds'])}, against {b['std']:.3f} dex for the page's best run and "
            f"{a['redshift_std']:.3f} dex from the redshift alone. ")
    if s["vs_page"] is not None:
        text += (f"Paired on the same {s['vs_page'].n_clusters} test clusters (the seeds' ensembles), remedy minus "
                 f"page: {_ci(s['vs_page'])}. ")
    if s["vs_basic"] is not None:
        text += f"Remedy minus basic CNN: {_vs_basic_words(s)}. "
    if s["works"]:
        text += f"**The remedy works: with {s['label']} {pr.label} learns from the images.**"
    elif a["learned"]:
        text += "The remedy run learned from the images, as the page's runs did."
    elif a["grad_first"] > 0 and b["grad_first"] == 0:
        text += (f"**The remedy keeps the image path open but is not enough:** {a['reason']}. "
                 f"{pr.label}'s failure here is not only its dead ReLUs.")
    else:
        text += f"**The remedy does not help:** {a['reason']}."
    if not a["learned"]:
        text += _signs_removed(pr.best, remedy.best)
    return text


def remedies_markdown(members: Mapping[str, PageRuns], profile: str, root: str | Path = ".",
                      data: str | None = None) -> str:
    """For the results page: a list, one item per model with a remedy run (:func:`remedy_summary`), or its
    state."""
    out = []
    for m, pr in members.items():
        if not pr.finished or m == "basic" or is_remedy_key(m):
            continue
        for remedy in remedy_runs(pr, profile, root=root, data=data):
            if remedy.finished and remedy.data_mismatch:
                out.append(f"{pr.label} with {remedy.label}: made on another version of the data file, not shown")
                continue
            if not remedy.finished:
                states = R.seed_states(remedy.request, Path(root))
                out.append(f"{pr.label} with {remedy.label}: " + (
                    "not run yet" if not any(states.values()) else
                    f"not finished yet ({R.seed_progress(remedy.request, Path(root), states)})"))
                continue
            s = remedy_summary(pr, remedy, profile, root=root, data=data)
            a = s["after"]
            words = ("learns from the images" if a["learned"] else
                     f"still does not learn from the images ({a['short']})")
            vs = f"; minus the basic CNN: {_vs_basic_words(s)}" if s["vs_basic"] is not None else ""
            out.append(f"{pr.label} with {s['label']}: test std(x) {_seed_stds(s['std_seeds'])}{vs}; it {words}"
                       + precision_note(remedy.finished, pr.finished))
    if not out:
        return ""
    return ("**Remedies tried** (the fair recipe with one change, for a model that did not learn; its page "
            "shows the diagnostics):\n\n" + "\n".join(f"- {o}." for o in out))


# ---------------------------------------------------------------- the same model trained the thesis's way

#: The thesis's own protocol in words (profiles.THESIS_PROTOCOL; thesis Sect. 3.2-3.3).
THESIS_WAY = ("bands 2\u20134, the images padded to 71 \u00d7 71 for the ImageNet architectures, Adam at a constant "
              "10\u207b\u00b3, and the thesis's split, whose test clusters double as the validation set on which the "
              "epoch is chosen (so the result is as optimistic as Table 5)")

#: What the dashed lines of a training plot are (:func:`history_references`).
FLOORS_NOTE = ("The dashed lines are what two estimators without the images score on the same validation clusters: "
               "predicting the mean training mass, and predicting from the redshift alone. A validation loss that "
               "stays on the second line has read nothing from the images.")


def history_references(run) -> list[tuple[str, float, str]]:
    """The validation losses a run must go below, as lines for :func:`cmlib.plots.plot_history`: the MSE (dex²)
    of predicting the mean training mass and of the redshift-only fit, on the run's validation clusters;
    ``(label, value, kind)`` with ``kind`` a key of :data:`cmlib.plots.REFERENCE_COLORS`.  Empty for a loss
    other than the MSE (its values are not in dex²) or a run without validation predictions
    (:func:`_mse_predictions`)."""
    p = _mse_predictions(run)
    if p is None:
        return []
    out = [("predicting the mean training mass", _mse(M.mean_predictor(p["train"], p["val"])), "mean")]
    try:
        out.append(("predicting from the redshift alone", _mse(M.redshift_predictor(p["train"], p["val"])),
                    "redshift"))
    except CmlibError:       # predictions without redshifts (runs made before cmlib stored z)
        pass
    return out


def _power_words(x: float) -> str:
    """1e-3 -> '10⁻³', 5e-4 -> '5 × 10⁻⁴', 1.25e-4 -> '1.25 × 10⁻⁴' (a learning rate as the pages write it)."""
    sup = str.maketrans("-0123456789", "\u207b\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079")
    mant, exp = f"{x:.2e}".split("e")
    power = f"10{str(int(exp)).translate(sup)}"
    mant = mant.rstrip("0").rstrip(".")
    return power if mant == "1" else f"{mant} \u00d7 {power}"


def _recipe_differences(a: Mapping, b: Mapping) -> list[str]:
    """The settings in which run configuration ``a`` differs from ``b``, as 'the input 71 × 71 × 3 against
    50 × 50 × 3', 'optimizer adam against adamw', ... (the names of the configuration table)."""
    out = []
    sa, sb = run_input_shape(a), run_input_shape(b)
    if sa != sb:
        times = " \u00d7 "
        out.append(f"the input {times.join(map(str, sa))} against {times.join(map(str, sb))}")
    if a.get("bands") != b.get("bands") and a.get("bands") is not None and b.get("bands") is not None:
        out.append(f"bands {_bands_words(a['bands'])} against {_bands_words(b['bands'])}")
    for k in _RECIPE_KEYS:
        if k != "pad" and k in a and k in b and a[k] != b[k]:
            va, vb = ((_power_words(float(v)) if k == "lr" else v) for v in (a[k], b[k]))
            out.append(f"{k} {va} against {vb}")
    return out


def thesis_protocol_run(pr: PageRuns, profile: str, root: str | Path = ".", data: str | None = None) -> PageRuns | None:
    """This model's runs under the thesis's own protocol (the profile's experiment ``<model>_thesis_protocol``),
    finished or not; None where the profile plans none, and for the basic CNN (its page runs are that protocol)."""
    key = pr.model + THESIS_PROTOCOL_SUFFIX
    if pr.model == "basic" or key not in get_profile(profile).experiments:
        return None
    return find_page_runs(pr.model, profile, root=root, experiment=key, data=data)


def thesis_protocol_intro(pr: PageRuns, profile: str) -> str:
    """The opening of an architecture page's *Trained the thesis's way*: the thesis's protocol, which models the
    profile trains that way and how (read from its plans), and whether the page's own runs follow another one."""
    prof = get_profile(profile)
    plans = [p for k, p in prof.experiments.items() if k.endswith(THESIS_PROTOCOL_SUFFIX)]
    if not plans:
        return ""
    pat = {p.overrides.get("early_stopping", 0) for p in plans}
    eps = {p.epochs for p in plans}
    stop = (f"each stopped when {counted(next(iter(pat)), 'epoch')} pass without improvement on the test clusters, "
            if len(pat) == 1 and next(iter(pat)) else "")
    most = f"at most {counted(next(iter(eps)), 'epoch')}" if len(eps) == 1 else "within its budget"
    own = ""
    if pr.finished:
        own = (" The runs above follow the fair protocol (a train/validation/test split) instead."
               if split_of(pr) != "thesis" else
               " The runs above use the thesis's split already; the run below follows the rest of its recipe too.")
    return (f"The thesis trained and reported its models its own way (Sect. 3.2\u20133.3): {THESIS_WAY}. The "
            f"compute plan of this book's `{profile}` profile trains {and_list([display_name(p.model) for p in plans])} "
            f"that way too ({stop}{most}), so that their rows of Table 5 can be set beside the thesis's; the results "
            f"page has them all in *Table 5 the thesis's way*.{own}")


def thesis_protocol_page_markdown(pr: PageRuns, tp: PageRuns | None, profile: str | None = None,
                                  root: str | Path = ".") -> str:
    """An architecture page's account of the same model trained the thesis's way (``tp``:
    :func:`thesis_protocol_run`; after :func:`thesis_protocol_intro`): pending (with its progress and command), or
    the run Table 5 would report, whether it learned on those clusters, and how that compares with the page's own
    runs; empty without ``tp``.  ``profile``: where the model has remedies, the text points to them and names
    those whose runs (on the page's data file) learned."""
    if tp is None:
        return ""
    name = display_name(pr.model)
    if tp.finished and tp.data_mismatch:
        return (f"{name}'s runs under the thesis's protocol were made on another version of the data file: their test "
                f"clusters are other clusters, so they are not shown. Make them again with `{tp.request.command()}`.")
    if not tp.finished:
        return (f"**Planned:** {name} trained the thesis's way, {counted(len(tp.plan.seeds), 'seed')}. It is part of "
                f"the book's compute plan but has not finished yet. {R.progress_text(tp.request, Path(root))} Make it "
                f"with `{tp.request.command()}` (resumable).")
    from ..artifacts import format_duration

    b = tp.best
    met, st, t5 = b.metrics["test"], b.status_info, TABLE5.get(pr.model, {})
    n = len(tp.finished)
    which = f"seed {b.seed}" if n == 1 else f"the best of {n} seeds on the test clusters (seed {b.seed})"
    best_ep = (f", its best epoch {st['best_epoch']}" if st.get("best_epoch") and stop_kind(b) != "early stopping"
               else "")          # early stopping's own words name the best epoch
    wall = st.get("wall_time_s")
    cost = f"; {format_duration(wall)} on {hardware_of([b])}" if wall else ""
    thesis = lambda key, signed=False: (f" (thesis Table 5: {fmt(t5[key], signed=signed)})"  # noqa: E731
                                        if key in t5 else "")
    out = [f"**{name} trained the thesis's way**: {which}, stopped by {stop_text(b)}{best_ep}{cost}. "
           f"Reported as Table 5 reports it: test σ = {met['sigma']:.3f} dex{thesis('sigma_test')}, "
           f"μ = {met['mu']:+.3f} dex{thesis('mu_test', True)}, std(x) = {met['std']:.3f} dex."]
    collapse = collapse_text(b)
    if collapse:
        out.append(collapse + " (picked on the test clusters, as the thesis's protocol picks).")
    v = verdict(tp)
    if v["learned"]:
        z = (f"the redshift alone scores std(x) = {v['redshift_std']:.3f} dex and " if math.isfinite(v["redshift_std"])
             else "")
        out.append(f"It learns from the images: on the same clusters {z}the mean training mass "
                   f"{v['reference_std']:.3f} dex.")
    else:
        out.append(f"It did not learn from the images: {v['reason']}.")
    if pr.finished and split_of(pr) != "thesis":
        fair_v = verdict(pr)
        stds = [r.metrics["test"]["std"] for r in pr.finished]
        out.append(f"This page's runs (the fair protocol, other test clusters) score std(x) = {seeds_text_of(stds)} dex "
                   f"({counted(len(stds), 'seed')}); their best run {'learns' if fair_v['learned'] else 'did not learn'}.")
        if v["learned"] and not fair_v["learned"]:
            c, fs = pr.best.config, pr.best.status_info
            diffs = _recipe_differences(b.config, c) + [
                f"the epochs ({st.get('epochs_completed', 0)} of at most {counted(b.config.get('epochs', 0), 'epoch')} "
                f"against {fs.get('epochs_completed', 0)} of at most {counted(c.get('epochs', 0), 'epoch')})",
                f"the training set ({b.predictions['train'].true.size} against {pr.best.predictions['train'].true.size} "
                "clusters)", "the epoch chosen on the test clusters instead of a separate validation set"]
            remedies = bool(profile) and bool(remedy_keys(get_profile(profile), pr.model))
            # a remedy is the fair recipe with one change: one that learned names what the fair runs lacked
            tried = remedy_runs(pr, profile, root=root, data=pr.data) if remedies else []
            learned_remedies = remedies_that_learned(tried)
            worked = [rr.label.split(" (")[0] for rr in learned_remedies]
            one_seed = learned_remedies and max(len(rr.finished) for rr in learned_remedies) == 1
            out.append("So the architecture can learn from these images, and what kept the fair runs from it lies among "
                       f"the settings in which the two differ (the thesis's way first): {'; '.join(diffs)}."
                       + (" The *Remedies* above change the fair recipe one setting at a time" if remedies else "")
                       + (f"; with {and_list(worked)} the fair runs learn too" + (" (one seed so far)" if one_seed else "")
                          + ", so that is what they lacked."
                          if worked else "." if remedies else ""))
    refs = history_references(b)
    if refs:
        out.append("Its training below: the validation loss against what the two floors score on the same clusters "
                   "(dashed)." if len(refs) == 2 else
                   "Its training below: the validation loss against what the mean training mass scores on the same "
                   "clusters (dashed).")
    return " ".join(out)


def declare_sections(flags: Mapping[str, bool]) -> None:
    """Tell the book build which optional sections to keep (an output the build reads, then removes).

    Cells tagged ``section:<name>`` are dropped from the executed page when ``flags[name]`` is
    False; in JupyterLab every section stays and says itself whether it applies.
    """
    from IPython.display import display

    display({SECTIONS_MIME: dict(flags)}, raw=True)


SECTIONS_MIME = "application/vnd.cmlib.sections+json"


# ---------------------------------------------------------------- the beyond-the-thesis page

def experiment_summary(pr: PageRuns, subset: str = "test") -> dict:
    """One table row of an experiment: runs, best σ, mean ± std (several seeds only), std(x), ensemble."""
    fin = pr.finished
    ms = [r.metrics[subset] for r in fin]
    st = M.mean_std_over_seeds(ms)
    row = {"runs": len(fin), "σ best": fmt(ms[pr.best_index()]["sigma"]),
           "σ mean ± std": pm(st, "sigma") if len(fin) > 1 else "\u2013 (one run)",
           "std(x) mean": fmt(st["std"]["mean"])}
    if len(fin) > 1:
        ens = pr.ensemble(subset)
        row["std(x) ensemble"] = fmt(M.point_metrics(ens.pred, ens.true)["std"])
    else:
        row["std(x) ensemble"] = "\u2013"
    return row


# ---------------------------------------------------------------- teaching pages

def example_cluster(d, theta500_arcmin: tuple[float, float] = (2.0, 6.0)) -> int:
    """Index of the cluster the teaching pages show: the one with the most source counts in the loaded bands
    (aperture minus background, point sources masked: :func:`cmlib.classical.fair_counts`) among those whose
    R500 on the sky lies within ``theta500_arcmin`` [arcmin], so that the cluster, not the field, fills the
    20' image and its core is the brightest thing in it (the nearest massive clusters are wider than the image,
    and their brightest pixels are field AGN), and without an AGN in its centre where the catalogue says so
    (``central_agn``).  A catalogue without ``R500_arcmin`` (an imported file): the brightest of all."""
    from .. import classical

    cat = getattr(d, "catalog", None) or {}
    keep = np.ones(d.n, dtype=bool)
    if cat.get("R500_arcmin") is not None:
        r500 = np.asarray(cat["R500_arcmin"], dtype=float)
        keep &= (r500 >= theta500_arcmin[0]) & (r500 <= theta500_arcmin[1])
    if cat.get("central_agn") is not None:
        keep &= np.asarray(cat["central_agn"]) == 0
    cand = np.flatnonzero(keep) if keep.any() else np.arange(d.n)
    return int(cand[np.argmax(classical.fair_counts(d.images[cand]))])


def count_feature(d) -> np.ndarray:
    """The one input of the one-neuron model of the CNN-fundamentals page (and of its exercise): log10 of each
    cluster's own counts, those in a 2' aperture around the centre minus the background, field point sources
    masked (:func:`cmlib.classical.fair_counts`, the fair classical estimator's photometry; a cluster without
    excess counts is set to one count), standardised to mean 0 and standard deviation 1.  The total counts of an
    image would not do: most of them are background and field AGN, which know nothing of the mass."""
    from .. import classical

    counts = np.log10(np.maximum(classical.fair_counts(d.images), 1.0))
    return (counts - counts.mean()) / counts.std()


def cluster_label(d, i: int) -> str:
    return f"cluster {d.cluster_id[i]}: log M = {d.log_m500[i]:.2f}, z = {d.z[i]:.2f}"


def layer_rows(model) -> list[dict]:
    """The layers of a Keras model that a reader follows (conv, pooling, flatten, concat, dense) and their output shapes."""
    keep = ("Conv2D", "AveragePooling2D", "MaxPooling2D", "Flatten", "Concatenate", "Dense")
    return [{"layer": layer.name, "output shape": str(tuple(layer.output.shape[1:]))} for layer in model.layers
            if layer.__class__.__name__ in keep]


def cached(name: str, compute, *, folder: str | Path = "book/generated/cache"):
    """``compute()``, kept as JSON in ``folder`` and reused while the model code and Keras are unchanged.

    For facts that take minutes to compute and only change with the code (building every deep
    model to count its parameters and layers): two pages need them, and a second build needs none.
    """
    import hashlib
    import json
    from importlib.metadata import version

    from .. import models
    from .._io import atomic_write_text

    key = hashlib.sha256(Path(models.__file__).read_bytes() + version("keras").encode()).hexdigest()[:16]
    f = Path(folder) / f"{name}-{key}.json"
    if f.exists():
        return json.loads(f.read_text())
    value = compute()
    f.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(f, json.dumps(value, default=str))
    return value


def table3_rows() -> list[dict]:
    """:func:`cmlib.book.thesis.table3` (every thesis model built from scratch), cached by :func:`cached`."""
    from . import thesis

    return cached("table3", thesis.table3)


def architecture_rows(names: Sequence[str] | None = None) -> list[dict]:
    """Deep models of Table 3 built from scratch (``names``, default all): convolution layers, residual
    additions, parameters, FLOPs; each model's row cached by :func:`cached`."""
    t3 = {r["name"]: r for r in table3_rows() if r["name"] != "basic"}
    return [cached(f"architecture-{m}", lambda m=m: _architecture_row(t3[m])) for m in t3
            if names is None or m in names]


def _architecture_row(r: Mapping) -> dict:
    from .. import models

    mm = models.build(r["name"], tuple(r["input_shape"]))
    kinds = [layer.__class__.__name__ for layer in mm._flatten_layers()]
    return {"name": r["name"], "model": r["display_name"],
            "convolution layers": sum(k in ("Conv2D", "DepthwiseConv2D") for k in kinds),
            "residual additions": sum(k == "Add" for k in kinds),
            "trainable parameters [M]": f"{r['params_m']:.1f}", "GFLOPs / image": f"{r['gflops']:.2f}"}


def example_clusters(d) -> list[int]:
    """Two clusters to show the pipeline on: the most massive nearby one, and a typical one (log M 14.2, z 0.3)."""
    order = np.argsort(d.log_m500 - 3 * d.z)
    return [int(order[-1]), int(np.argmin(np.abs(d.log_m500 - 14.18) + np.abs(d.z - 0.3)))]


# ---------------------------------------------------------------- the basic CNN on a model's split (the fair protocol)

FAIR_SPLIT = "train-val-test"


def fair_basic(profile: str, root: str | Path = ".", data: str | None = None) -> PageRuns | None:
    """The basic CNN's runs under the fair protocol: its experiment on the fair split (``basic_tvt``), or its
    page's runs where those use that split; None where the profile has neither."""
    prof = get_profile(profile)
    keys = [k for k, plan in prof.experiments.items()
            if plan.model == "basic" and plan.overrides == {"split": FAIR_SPLIT}]
    if keys:
        return find_page_runs("basic", profile, root=root, experiment=keys[-1], data=data)
    if "basic" in prof.pages() and prof.plan("basic").overrides.get("split") == FAIR_SPLIT:
        return find_page_runs("basic", profile, root=root, data=data)
    return None


def basic_on_same_split(pr: PageRuns, profile: str, root: str | Path = ".", data: str | None = None
                        ) -> PageRuns | None:
    """The basic CNN's runs on the split of ``pr``'s best run (its page's runs, or its fair-protocol experiment),
    so that a comparison of the two is made on the same test clusters; None where the basic CNN has no finished
    runs on that split."""
    if not pr.finished:
        return None
    split = split_of(pr)
    candidates = [find_page_runs("basic", profile, root=root, data=data)]
    fair = fair_basic(profile, root=root, data=data)     # not every fair member: only the basic CNN's runs
    if fair is not None:
        candidates.append(fair)
    return next((c for c in candidates if c.finished and split_of(c) == split), None)


# ---------------------------------------------------------------- a page whose runs are still to come: what the thesis reports

def thesis_result_lines(model: str) -> list[str]:
    """Markdown lines: what the thesis reports for one model (Table 5's best of ten runs, Table 3's size and
    GPU epoch time, and the thesis's remarks on its numbers), for pages that have no runs of their own yet."""
    from .thesis import TABLE3, TABLE3_INCONSISTENT, TABLE5, TABLE5_NOTES

    t5, t3 = TABLE5.get(model), TABLE3.get(model)
    if t5 is None:
        return []
    name = display_name(model)
    out = ["## What the thesis found", "",
           f"The thesis's best of ten {name} runs (Table 5, 4000 epochs from ImageNet weights on a GPU, picked on the "
           f"test set): σ = {t5['sigma_test']:g} and μ = {t5['mu_test']:+g} on the test set, σ = {t5['sigma_train']:g} "
           f"and μ = {t5['mu_train']:+g} on the training set, training loss {t5['train_loss']:g} and validation loss "
           f"{t5['val_loss']:g} (MSE after the last epoch); the basic CNN reached σ = {TABLE5['basic']['sigma_test']:g}."]
    if t3:
        out[-1] += (f" Table 3 gives it {t3['params_m']:g} M trainable parameters"
                    + (" (a number that belongs to another model, see the training-parameters page)"
                       if model in TABLE3_INCONSISTENT else "")
                    + f" and {t3['epoch_s']:g} s per epoch on the thesis's GPU.")
    if model in TABLE5_NOTES:
        out += ["", f"Note on the thesis's numbers: {TABLE5_NOTES[model]}"]
    out += ["", f"{TABLE5_NOTES['sigma']} This page will set the book's own runs beside these numbers when they "
            "finish."]
    return out
