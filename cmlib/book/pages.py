"""What the book's pages show: the runs of a page (read-only), verdicts, tables, provenance.

The notebooks stay thin: they ask this module for the runs of a model under a profile and for
the tables, verdicts and boxes that state how every number was produced.  Nothing here trains
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

from .. import metrics as M
from ..errors import CmlibError
from . import runs as R
from .profiles import (REMEDY_INFIX, RunPlan, display_name, fair_deep, get_profile, is_remedy_key, parse_seed_list,
                       remedy_keys)
from .thesis import TABLE5

__all__ = ["PageRuns", "MissingRunsError", "request_for", "find_page_runs", "require_runs", "display_name",
           "html_table", "provenance_markdown", "run_yourself_markdown", "seed_rows", "summary_rows",
           "SUMMARY_HEADERS", "cluster_images", "cluster_png", "scatter_png", "classical_predictions",
           "table5_rows", "verdict", "verdict_markdown", "findings_paragraph", "fair_summary_rows",
           "config_rows", "training_text", "budgets_markdown", "run_inventory_rows", "run_inventory_markdown", "stop_kind", "best_deep_text", "page_sections",
           "tuning_comparison_markdown", "kernels_text", "counted", "and_list", "tuning_trial_rows", "precision_rows", "diagnosis_markdown",
           "thesis_protocol_members", "thesis_protocol_comparison", "thesis_protocol_rows", "thesis_protocol_markdown"]


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


def _fmt(v: Any, digits: int = 3, signed: bool = False) -> str:
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
    """A simple HTML table; a row's ``_class`` key becomes its CSS class; ``nowrap`` keeps cells on one line."""
    if not rows:
        return "<p><em>(no rows)</em></p>"
    columns = list(columns or [k for k in rows[0] if not k.startswith("_")])
    headers = headers or {}
    out = [f'<table class="cmlib-table{" nowrap" if nowrap else ""}"><thead><tr>']
    out += [f"<th>{html.escape(headers.get(c, c))}</th>" for c in columns]
    out.append("</tr></thead><tbody>")
    for r in rows:
        cls = r.get(row_class)
        out.append(f'<tr class="{html.escape(cls)}">' if cls else "<tr>")
        out += [f"<td>{html.escape(str(r.get(c, '')))}</td>" for c in columns]
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
    how = {"stored": "stored run artifacts (committed in `results/runs`, made by `cmlib stored-runs`)",
           "trained": "trained by the book build (or by you) before this page was executed",
           "missing": "missing"}[pr.how]
    eps = p["epochs_completed"]
    ep_txt = f"{min(eps)}\u2013{max(eps)}" if min(eps) != max(eps) else f"{eps[0]}"
    es = f", early stopping after {p['early_stopping']} epochs without improvement" if p["early_stopping"] else ""
    seeds = f"{len(p['seeds'])} seeds {p['seeds']}" if len(p["seeds"]) > 1 else f"one seed ({p['seeds'][0]})"
    lines = [
        f"**How these numbers were produced.** {pr.label}: {how}; profile `{p['profile']}`; "
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
        + f"The thesis's budget (4000 epochs \u00d7 10 seeds for the deep models; a GPU job):\n\n"
        f"```bash\n{_cmd_block(thesis)}\n```\n:::\n"
    )


# ---------------------------------------------------------------- verdicts

def verdict(pr: PageRuns, run=None) -> dict:
    """Did this model (its best run, or ``run``) learn?  See :func:`cmlib.metrics.learning_verdict`."""
    run = run or pr.best
    p = run.predictions
    return M.judge_learning(p["train"], p["test"])


def verdict_markdown(pr: PageRuns) -> str:
    """A warning box if the best run did not learn, a one-line note if it did (empty without runs)."""
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
            "epochs. "
            "A longer or better-tuned run (see *Run it yourself*) is needed before this architecture can be judged.\n:::\n")


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
            "val loss (best)": _fmt(m.get("loss", {}).get("val_best"), 4),
            "σ test": _fmt(t.get("sigma")), "μ test": _fmt(t.get("mu"), signed=True),
            "std(x) test": _fmt(t.get("std")), "σ train": _fmt(tr.get("sigma")),
            "μ train": _fmt(tr.get("mu"), signed=True),
            "learned?": "yes" if v["learned"] else "did not learn",
            "_class": "best" if i == best else "",
        })
    return rows


_KEYS = ("sigma", "mu", "std", "nmad", "outlier_frac")


def _metric_row(name: str, m_test: Mapping, m_train: Mapping | None = None, cls: str = "") -> dict:
    r: dict[str, Any] = {"": name}
    for k in _KEYS:
        r[f"{k} test"] = _fmt(m_test.get(k), signed=k == "mu")
    r["sigma train"] = _fmt(m_train.get("sigma")) if m_train is not None else "\u2013"
    r["mu train"] = _fmt(m_train.get("mu"), signed=True) if m_train is not None else "\u2013"
    r["_class"] = cls
    return r


def _pm(stats: Mapping, key: str, digits: int = 3) -> str:
    s = stats.get(key)
    if not s:
        return "\u2013"
    return f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f}" if s["n"] > 1 else f"{s['mean']:.{digits}f}"


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
            r[f"{k} test"] = _pm(stats_t, k)
        r["sigma train"], r["mu train"] = _pm(stats_tr, "sigma"), _pm(stats_tr, "mu")
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
                     "thesis (Table 5, its data)", "sigma test": _fmt(t5["sigma_test"]),
                     "mu test": _fmt(t5["mu_test"], signed=True), "std test": "\u2013", "nmad test": "\u2013",
                     "outlier_frac test": "\u2013", "sigma train": _fmt(t5["sigma_train"]),
                     "mu train": _fmt(t5["mu_train"], signed=True), "_class": "thesis"})
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


# ---------------------------------------------------------------- the classical reference

def classical_predictions(data_path: str | Path, *, split: str = "thesis", split_seed: int = 0,
                          aperture_arcmin: float = 2.0) -> tuple[dict[str, M.Predictions], dict]:
    """The classical estimator on the same split the networks use.

    Aperture photometry (2' radius, background from a 6-9.5' annulus) on all
    ten bands of each image, converted to log M500c by inverting the mock's
    own median L_X-M relation with each cluster's redshift, exposure and N_H
    (:mod:`cmlib.classical`).  Exposure and N_H are known in a real survey
    (exposure maps, HI surveys); where the catalogue lacks them the mock's
    median values are used, and the returned notes say so.
    """
    from .. import classical
    from .. import data as D

    d = D.load(data_path)
    sp = D.make_split(split, d, seed=split_seed)
    counts = classical.observed_source_counts(d.images, aperture_arcmin=aperture_arcmin,
                                              pixel_scale_arcsec=float(d.attrs.get("pixel_scale_arcsec", 24.0)))
    notes = {}
    exposure = d.catalog.get("exposure_s")
    nh = d.catalog.get("nH")
    if exposure is None:
        notes["exposure"] = "the catalogue has no exposure_s column: the mock's median exposure was used"
    if nh is None:
        notes["nH"] = "the catalogue has no nH column: the middle of the mock's N_H range was used"
    est = classical.estimate_log_mass(counts, d.z, exposure=exposure, nH=nh, kind="counts",
                                      aperture_arcmin=aperture_arcmin)
    out = {}
    for subset in ("train", "val", "test"):
        rows = getattr(sp, subset)
        out[subset] = M.Predictions(cluster_id=d.cluster_id[rows], true=d.log_m500[rows], pred=est[rows],
                                    z=d.z[rows])
    notes["method"] = (f"aperture photometry within {aperture_arcmin:g}' on all 10 bands minus a 6\u20139.5' "
                       "background annulus, inverted through the mock's median L_X\u2013M relation "
                       "(no Eddington/Malmquist correction)")
    return out, notes


def table5_rows(pages: Mapping[str, PageRuns], classical: Mapping[str, M.Predictions] | None = None) -> list[dict]:
    """Thesis Table 5, ours with the thesis's value in brackets: best run per model, whether it learned,
    the "predict the training mean" estimator and the classical estimator."""
    def both(ours, theirs, signed=False, digits=3):
        t = _fmt(theirs, digits, signed) if theirs is not None else "\u2013"
        return f"{_fmt(ours, digits, signed)} ({t})"

    rows = []
    base = None
    for m, pr in pages.items():
        t5 = TABLE5.get(m, {})
        if not pr.finished:
            rows.append({"model": display_name(m), "runs": "no runs"})
            continue
        b = pr.best
        base = base or pr
        met = b.metrics
        loss = met.get("loss", {})
        basic_like = b.config.get("early_stopping", 0) > 0
        tr_loss = loss.get("train_at_best") if basic_like else loss.get("train_last")
        va_loss = loss.get("val_best") if basic_like else loss.get("val_last")
        eps = b.status_info.get("epochs_completed")
        v = verdict(pr)
        n = len(pr.finished)
        rows.append({
            "model": display_name(m),
            "runs": (f"best of {n}, " if n > 1 else "1 run, ") + f"{eps} ep.",
            "learned?": "yes" if v["learned"] else "did not learn",
            "train loss": _fmt(tr_loss, 4) + ("\u2020" if basic_like else ""),
            "val. loss": _fmt(va_loss, 4) + ("\u2020" if basic_like else ""),
            "σ test": both(met["test"].get("sigma"), t5.get("sigma_test")),
            "μ test": both(met["test"].get("mu"), t5.get("mu_test"), signed=True),
            "σ train": both(met["train"].get("sigma"), t5.get("sigma_train")),
            "μ train": both(met["train"].get("mu"), t5.get("mu_train"), signed=True),
            "std(x) test": _fmt(met["test"].get("std")),
            "_class": "" if v["learned"] else "not-learned",
        })
    refs = []
    if base is not None:
        refs.append(("predict the training mean (no model)", "no training", base.mean_predictor("test"),
                     base.mean_predictor("train"), "baseline"))
        z_test = base.redshift_predictor("test")
        if z_test is not None:
            refs.append((REDSHIFT_ONLY, "no training", z_test, base.redshift_predictor("train"), "baseline"))
    if classical:
        refs.append(("classical estimator (L\u2013M inversion)", "no training", classical["test"], classical["train"],
                     "classical"))
    for name, runs_txt, pt, ptr, cls in refs:
        t = M.point_metrics(pt.pred, pt.true)
        tr = M.point_metrics(ptr.pred, ptr.true)
        rows.append({"model": name, "runs": runs_txt, "learned?": "\u2013",
                     "train loss": _fmt(tr["rmse"] ** 2, 4), "val. loss": _fmt(t["rmse"] ** 2, 4),
                     "σ test": _fmt(t["sigma"]), "μ test": _fmt(t["mu"], signed=True),
                     "σ train": _fmt(tr["sigma"]), "μ train": _fmt(tr["mu"], signed=True),
                     "std(x) test": _fmt(t["std"]), "_class": cls})
    return rows


def fair_summary_rows(pages: Mapping[str, PageRuns], classical: Mapping[str, M.Predictions] | None = None) -> list[dict]:
    """Every model's best run next to the mean over seeds and the ensemble (spread only with several seeds)."""
    rows = []
    base = None
    for m, p in pages.items():
        if not p.finished:
            continue
        base = base or p
        st = M.mean_std_over_seeds([r.metrics["test"] for r in p.finished])
        best = p.best.metrics["test"]
        ens = M.point_metrics(p.ensemble("test").pred, p.ensemble("test").true)
        several = len(p.finished) > 1
        rows.append({"model": display_name(m), "seeds": len(p.finished),
                     "σ test, best run": _fmt(best["sigma"]),
                     "σ test, mean ± std": _pm(st, "sigma") if several else "\u2013 (one run)",
                     "σ test, ensemble": _fmt(ens["sigma"]) if several else "\u2013",
                     "std(x) test, mean": _fmt(st["std"]["mean"]),
                     "std(x) test, ensemble": _fmt(ens["std"]) if several else "\u2013",
                     "outliers > 0.3 dex": f"{(ens if several else best)['outlier_frac']:.1%}",
                     "_class": "" if verdict(p)["learned"] else "not-learned"})
    refs = []
    if base is not None:
        refs.append(("predict the training mean", base.mean_predictor("test"), "baseline"))
    if classical:
        refs.append(("classical estimator", classical["test"], "classical"))
    for name, pt, cls in refs:
        t = M.point_metrics(pt.pred, pt.true)
        rows.append({"model": name, "seeds": "\u2013", "σ test, best run": _fmt(t["sigma"]),
                     "σ test, mean ± std": "\u2013", "σ test, ensemble": "\u2013", "std(x) test, mean": _fmt(t["std"]),
                     "std(x) test, ensemble": "\u2013", "outliers > 0.3 dex": f"{t['outlier_frac']:.1%}",
                     "_class": cls})
    return rows


# ---------------------------------------------------------------- generated prose

def _thesis_best_deep() -> tuple[str, float]:
    deep = {m: v["sigma_test"] for m, v in TABLE5.items() if m != "basic"}
    m = min(deep, key=deep.get)
    return m, deep[m]


def split_of(pr: PageRuns) -> str:
    """The split of a model's best run ('thesis' or 'train-val-test'); 'thesis' when it has no runs yet."""
    return (pr.best.config if pr.finished else {}).get("split", "thesis")


def _protocol_words(pr: PageRuns) -> str:
    """The protocol of a model's runs in a few words, from their split."""
    split = split_of(pr)
    return {"thesis": "the thesis's protocol (its split, the test set doubling as validation set)",
            "train-val-test": "the fair protocol (a train/validation/test split)"}.get(split, f"the '{split}' split")


def findings_paragraph(pages: Mapping[str, PageRuns], profile: str, fair: Mapping | None = None) -> str:
    """The answer in short: a paragraph on what the thesis found and what this build's runs find (regenerated).

    With ``fair`` (:func:`fair_comparison`) the answer under the fair protocol follows it (:func:`fair_answer`:
    a sentence and a list)."""
    tm, ts = _thesis_best_deep()
    tb = TABLE5["basic"]["sigma_test"]
    thesis = (f"**What the thesis found.** No deep model beat the basic CNN: the best, {display_name(tm)}, came "
              f"close (test σ = {ts:g} against {tb:g}), and that number is the best of ten runs picked on the "
              "test set itself (Table 5). ")
    have = {m: p for m, p in pages.items() if p.finished}
    if not have:
        return thesis + "**This build** has no finished runs yet."
    basic = have.get("basic")
    ref = basic or next(iter(have.values()))
    n = ref.best.config.get("n_clusters")
    parts = [f"**What this book finds** (profile `{profile}`, {n} mock clusters, runs as they are on disk "
             "when the book was built):"]
    mean_test = ref.mean_predictor("test")
    base = M.point_metrics(mean_test.pred, mean_test.true)
    floor = (f"predicting the mean training mass for every cluster scores σ = {base['sigma']:.3f} "
             f"(std(x) = {base['std']:.3f} dex) on {'the same' if basic else 'its'} test clusters, what a model "
             "that knows nothing scores")
    if basic:
        bm = basic.best.metrics["test"]
        parts.append(f"under {_protocol_words(basic)}, the basic CNN reaches σ = {bm['sigma']:.3f} "
                     f"(std(x) = {bm['std']:.3f} dex; best of {counted(len(basic.finished), 'run')}), while {floor}.")
    else:
        parts.append(floor[0].upper() + floor[1:] + ".")
    deep_models_here = [m for m in have if m not in ("basic",) and get_spec_family(m) not in ("basic", "baseline")]
    if deep_models_here:
        verdicts = {m: verdict(have[m]) for m in deep_models_here}
        failed = [display_name(m) for m, v in verdicts.items() if not v["learned"]]
        learned = [m for m, v in verdicts.items() if v["learned"]]
        eps = sorted({have[m].best.status_info.get("epochs_completed", 0) for m in deep_models_here})
        ep_txt = f"{eps[0]}" if len(eps) == 1 else f"{eps[0]}\u2013{eps[-1]}"
        n_deep = len(deep_models_here)
        protocols = sorted({_protocol_words(have[m]) for m in deep_models_here})
        who = (f"The one deep model with runs so far, {display_name(deep_models_here[0])}, was"
               if n_deep == 1 else f"The {n_deep} deep models with runs so far were")
        txt = (f"{who} trained under {' or '.join(protocols)} for {ep_txt} epoch{'' if ep_txt == '1' else 's'} "
               "against the thesis's 4000")
        if not failed:
            txt += {1: " and learned", 2: "; both learned"}.get(n_deep, "; all of them learned")
        elif learned:
            txt += f"; {len(failed)} of them did not learn ({and_list(failed)})"
        if learned:
            bd = min(learned, key=lambda m: have[m].best.metrics["test"]["sigma"])
            dm = have[bd].best.metrics["test"]
            cmp = ""
            if basic and split_of(have[bd]) == split_of(basic):   # only on the same test clusters
                better = dm["std"] < basic.best.metrics["test"]["std"]
                cmp = " \u2013 better than the basic CNN" if better else " \u2013 not as good as the basic CNN"
            best = ("; it reaches" if n_deep == 1 else
                    f"; the best that learned, {display_name(bd)}, reaches" if failed else
                    f", and the best, {display_name(bd)}, reaches")
            txt += (f"{best} σ = {dm['sigma']:.3f} (std(x) = {dm['std']:.3f} dex) in its best run{cmp}"
                    + ("" if cmp or not basic else "; the like-for-like comparison with the basic CNN follows"
                       if fair and fair.get("rows") else " (on other test clusters than the basic CNN's above, so "
                       "not compared with it here)") + ".")
        else:
            remedied = fair is not None and any(r.get("remedy") for r in fair.get("rows", []))
            txt += ((" and did not learn from the images" if n_deep == 1 else
                     "; none of them learned from the images")
                    + (" with the common recipe in this budget (the remedies tried follow)." if remedied
                       else " in this budget."))
        parts.append(txt)
    text = thesis + " ".join(parts)
    if fair is not None and fair.get("rows"):
        text += "\n\n" + fair_answer(fair)
    return text


#: Architecture families built with BatchNormalization layers (Keras applications: ResNet, ResNetV2,
#: EfficientNet; VGG and the small CNNs have none).
BATCHNORM_FAMILIES = ("resnet", "resnet-v2", "efficientnet")


def get_spec_family(model: str) -> str:
    from .. import models

    try:
        return models.get_spec(model).family
    except CmlibError:
        return ""


def best_deep_text(pages: Mapping[str, PageRuns], profile: str, root: str | Path = ".", data: str | None = None
                   ) -> tuple[str | None, PageRuns | None, str]:
    """The deep model this build compares with the basic CNN (best test σ among those that learned, else among
    all), the basic CNN's runs on that model's split (:func:`basic_on_same_split`) and a sentence on the two."""
    deep = {m: p for m, p in pages.items() if p.finished and get_spec_family(m) not in ("basic", "baseline")}
    if not deep:
        return None, None, "No deep-model runs are available in this build."
    learned = {m: p for m, p in deep.items() if verdict(p)["learned"]}
    pool = learned or deep
    best = min(pool, key=lambda m: pool[m].best.metrics["test"]["sigma"])
    ref = basic_on_same_split(pool[best], profile, root=root, data=data)
    if ref is None:
        return None, None, (f"The basic CNN has no finished runs on {display_name(best)}'s split "
                            f"({split_of(pool[best])}), so the two cannot be compared on the same clusters yet.")
    s, sb = pool[best].best.metrics["test"]["sigma"], ref.best.metrics["test"]["sigma"]
    tm, ts = _thesis_best_deep()
    note = "" if learned else (" None of the deep models learned from the images, so this comparison shows a "
                               "model that has not.")
    return best, ref, (f"The deep model with the lowest test σ{' among those that learned' if learned else ''} is "
                       f"**{display_name(best)}**: σ = {s:.3f} against {sb:.3f} for the basic CNN, both on the "
                       f"{split_of(ref)} split (best runs by test σ, as the thesis chose). The thesis's was "
                       f"{display_name(tm)} ({ts:g} against {TABLE5['basic']['sigma_test']:g}).{note}")


def budgets_markdown(pages: Mapping[str, PageRuns]) -> str:
    parts = []
    for m, p in pages.items():
        if not p.finished:
            continue
        n = len(p.finished)
        done = sorted(r.status_info.get("epochs_completed", 0) for r in p.finished)
        ran = f"{done[0]}" if done[0] == done[-1] else f"{done[0]}\u2013{done[-1]}"
        parts.append(f"{display_name(m)}: {p.how}, {n} seed{'s' if n > 1 else ''}, {ran} epochs run of at most "
                     f"{p.request.epochs}")
    return "**Budgets.** " + "; ".join(parts) + "."


def stop_kind(run) -> str:
    """Why a finished run stopped: ``early stopping``, ``schedule end`` (an annealed learning rate ran out:
    converged by construction), ``budget end`` (a constant learning rate stopped by the epoch budget: not
    shown to be converged) or ``diverged``."""
    st = run.status_info
    if run.status == "diverged":
        return "diverged"
    if str(st.get("stopped_reason", "")).startswith("early stopping"):
        return "early stopping"
    return "schedule end" if run.config.get("lr_schedule", "constant") != "constant" else "budget end"


def _missing_seeds_text(pr: PageRuns, root: Path, seeds: Sequence[int]) -> str:
    """'seeds 1, 2 not started; seed 0 in progress (epoch 12 of 30)': where the missing seeds stand on disk."""
    states = R.seed_states(pr.request, root, seeds)
    waiting = [s for s, st in states.items() if st is None]
    other = [f"seed {s} {st['state']} (epoch {st['epoch']} of {pr.request.epochs})"
             for s, st in states.items() if st is not None]
    parts = ([f"seed{'s' if len(waiting) > 1 else ''} {', '.join(map(str, waiting))} not started"]
             if waiting else []) + other
    return "; ".join(parts)


def _hardware_short(env: Mapping) -> str:
    """'2 CPU cores' or the GPU's name, from a run's env.json (what a compute plan needs to say)."""
    mach = env.get("machine", {}) if env else {}
    if mach.get("gpu_names"):
        return ", ".join(mach["gpu_names"])
    if mach.get("cpu_cores"):
        return f"{mach['cpu_cores']} CPU cores"
    return str(mach.get("summary", "unknown hardware"))


def _hardware_of(runs: Sequence) -> str:
    """The hardware and arithmetic of some runs, each kind once: '2 CPU cores, bfloat16', or
    '2 CPU cores, bfloat16 / 2 CPU cores, float32' (a seed trained where there are no bf16 units)."""
    return " / ".join(sorted({f"{_hardware_short(r.env)}, {r.config.get('precision', 'float32')}" for r in runs}))


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
            "test std(x) [dex]": ("\u2013" if not stds else f"{np.mean(stds):.3f}" if len(stds) == 1
                                  else f"{np.mean(stds):.3f} ± {np.std(stds, ddof=1):.3f}"),
            "compute": f"{format_duration(wall)} on {_hardware_of(fin)}" if fin else "\u2013",
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
            "Compute: wall time summed over the finished seeds, the hardware and the arithmetic (bf16 where the CPU "
            "has bf16 units; a seed trained without them runs in float32, which changes it by round-off only). "
            "A run that stopped at the *budget end* (constant learning rate, epoch budget used up) is not shown "
            "to be converged; *early stopping* and *schedule end* (annealed learning rate) are.")
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
        ratio = h["val_loss"][-1] / h["loss"][-1]
        gap = (f" After the last epoch the validation loss is {ratio:.2g}\u00d7 the training loss"
               + (" (a sign of overfitting)." if ratio > 1.5 else "."))
    if len(h["loss"]) and h["loss"][0] > 10 * max(h["val_loss"][0], 1e-12):
        bn = get_spec_family(pr.model) in BATCHNORM_FAMILIES
        gap += (" The training loss of the first epochs is far above the validation loss: Keras reports the "
                "training loss as the mean over the epoch's batches, "
                + ("with batch normalisation in training mode and the weights still moving, " if bn else
                   "with the weights still moving, ")
                + "while the validation loss is computed once, at the end of the epoch"
                + (", in inference mode" if bn else "") + ". In the first epochs from scratch the early batches "
                "dominate that mean.")
    return (f"The best run trained for {counted(n_ep, 'epoch')}; its validation loss was lowest at epoch {b_ep} "
            f"({best.metrics['loss']['val_best']:.4g}). Stopping: {best.status_info.get('stopped_reason', 'n/a')}. "
            f"Predictions below use the weights of the {best.metrics.get('predicted_with', 'last')} epoch "
            f"(the thesis reports the last epoch for the deep models and the validation minimum for the basic CNN).{gap}")


def page_sections(pr: PageRuns, profile: str) -> dict[str, bool]:
    """Which optional sections of the architecture template apply to this page.

    ``uncertainties``: the model predicts an uncertainty; ``versus_basic``: it is not the basic CNN
    and the profile has basic-CNN runs; ``experiments``: the profile has thesis experiments with it;
    ``remedy``: the profile plans remedy runs for it (:func:`remedy_markdown`).
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
    }


#: Known remedies of the failures :func:`cmlib.metrics.training_findings` looks for (established practice,
#: not tried in this book's runs).
REMEDIES = {
    "BatchNorm train/inference gap": ("re-estimate the BatchNorm statistics on training batches in inference mode "
                                      "after training", "lower the BatchNorm momentum"),
    "collapse to the mean": ("standardised labels with the output started at the label prior", "a smaller learning "
                             "rate"),
    "vanishing gradients": ("residual connections and normalisation (the ResNets have both)", "a learning-rate warm-up"),
    "dead ReLUs": ("a smaller learning rate", "a learning-rate warm-up", "He initialisation", "a leaky ReLU"),
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
    return [r for r in REMEDIES[check] if r not in tried]


def memorisation_finding(run: Any) -> dict | None:
    """:func:`cmlib.metrics.memorisation` for one run, with the redshift-only floors computed from its own
    predictions (fitted on its training clusters); None for a run without validation predictions, redshifts or
    an MSE loss (a Gaussian NLL's loss is not a squared error)."""
    p = run.predictions
    if run.config.get("loss", "mse") != "mse" or "train" not in p or "val" not in p:
        return None
    try:
        floors = [float(np.mean((q.pred - q.true) ** 2))
                  for q in (M.redshift_predictor(p["train"], p["train"]), M.redshift_predictor(p["train"], p["val"]))]
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
    if bad:
        text += (" **Signs of: " + ", ".join(f["check"] for f in bad) + ".** Known remedies not tried in this run: "
                 + "; ".join(f"{f['check']}: {', '.join(_remedies_not_tried(f['check'], best.config)) or 'none left'}"
                             for f in bad) + ".")
        cut = next((f for f in bad if f["check"] == "vanishing gradients" and f["value"] == 0), None)
        if cut is not None and v["short"] == "predicts from the redshift alone":
            first = M.first_epoch_without_gradient(best.history)
            text += (" Together these explain the verdict: the image path is cut"
                     + (f" (from epoch {first} on the first layer gets no gradient at all)" if first else "")
                     + ", so nothing of the image reaches the output, and the network predicts from the redshift, "
                     "which its dense head receives directly.")
        if mem is not None and mem["found"] and not learned:
            text += (" The verdict is explained by memorisation: the network reads something from its training "
                     "images, but what it reads does not hold for other clusters, so on new clusters it is no better "
                     "than the redshift alone. This is the failure the thesis's slides report for deep models: "
                     "\u201cvery low training loss while predicting very poorly\u201d.")
    else:
        text += (" None of these failures shows" + (", and the model learned." if learned else
                 ", yet the model did not learn from the images: the cause lies elsewhere (the number of "
                 "epochs, the learning rate, the recipe)."))
    return text


def remedy_runs(pr: PageRuns, profile: str, root: str | Path = ".", data: str | None = None) -> list[PageRuns]:
    """The runs of each remedy tried for this model, in the order tried (the profile's experiments
    ``<model>_remedy_<slug>``, :data:`~cmlib.book.profiles.FAIR_REMEDIES`), finished or not; empty where the
    profile plans none."""
    return [find_page_runs(pr.model, profile, root=root, experiment=key, data=data)
            for key in remedy_keys(get_profile(profile), pr.model)]


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
           "epochs": sorted({r.status_info.get("epochs_completed") for r in remedy.finished}),
           "stopped": sorted({r.status_info.get("stopped_reason", "n/a") for r in remedy.finished}),
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


def _vs_basic_words(s: Mapping) -> str:
    """'+0.009 [-0.001, +0.020] dex (its ensemble of 3 seeds, the same clusters): cannot be told apart'."""
    d = s["vs_basic"]
    words = {"better": "better", "worse": "worse", "indistinguishable": "cannot be told apart"}.get(d.verdict,
                                                                                                 d.verdict)
    ens = f"its ensemble of {s['basic_seeds']} seeds" if s["basic_seeds"] > 1 else "its run"
    return f"{_ci(d)} ({ens}, the same clusters): {words}"


def _seed_stds(stds: Sequence[float]) -> str:
    """Test std(x) over seeds: '0.271 (1 seed)' or '0.268 ± 0.004 (3 seeds)'."""
    if len(stds) == 1:
        return f"{stds[0]:.3f} dex (1 seed)"
    return f"{np.mean(stds):.3f} ± {np.std(stds, ddof=1):.3f} dex ({len(stds)} seeds)"


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
    if not remedy.finished:
        return (f"**{name}, planned:** the same recipe with {remedy.label}, "
                f"{counted(len(remedy.plan.seeds), 'seed')}. It is part of the book's "
                f"compute plan but has not finished yet. {R.progress_text(remedy.request, Path(root))} Make it "
                f"with `{remedy.request.command()}` (resumable).")
    s = remedy_summary(pr, remedy, profile, root=root, data=data)
    b, a = s["before"], s["after"]

    def path(d: Mapping) -> str:
        g = ("no gradient at all in the first layer" + (f" from epoch {d['zero_from']} on" if d["zero_from"] else "")
             if d["grad_first"] == 0 else f"a first-layer gradient norm of {d['grad_first']:.2g}")
        dead = f", {d['dead']:.0%} of its ReLU channels dead" if math.isfinite(d["dead"]) else ""
        return g + dead
    missing = len(remedy.plan.seeds) - s["seeds"]
    text = (f"**{name}, tried:** the same recipe with {s['label']}: {counted(s['seeds'], 'seed')}"
            + (f" of {len(remedy.plan.seeds)}" if missing else "")
            + ", " + (counted(s["epochs"][0] or 0, "epoch") if len(s["epochs"]) == 1 else
                      "/".join(str(e) for e in s["epochs"]) + " epochs")
            + f"; stopping: {'; '.join(s['stopped'])}. At the last "
            f"epoch the page's best run had {path(b)}; the remedy's best run has {path(a)}. Lowest training loss and "
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
            if not remedy.finished:
                progress = R.seed_progress(remedy.request, Path(root))
                out.append(f"{pr.label} with {remedy.label}: not finished yet ({progress})")
                continue
            s = remedy_summary(pr, remedy, profile, root=root, data=data)
            a = s["after"]
            words = ("learns from the images" if a["learned"] else
                     f"still does not learn from the images ({a['short']})")
            vs = f"; minus the basic CNN: {_vs_basic_words(s)}" if s["vs_basic"] is not None else ""
            out.append(f"{pr.label} with {s['label']}: test std(x) {_seed_stds(s['std_seeds'])}{vs}; it {words}")
    if not out:
        return ""
    return ("**Remedies tried** (the fair recipe with one change, for a model that did not learn; its page "
            "shows the diagnostics):\n\n" + "\n".join(f"- {o}." for o in out))


def declare_sections(flags: Mapping[str, bool]) -> None:
    """Tell the book build which optional sections to keep (an output the build reads, then removes).

    Cells tagged ``section:<name>`` are dropped from the executed page when ``flags[name]`` is
    False; in JupyterLab every section stays and says itself whether it applies.
    """
    from IPython.display import display

    display({SECTIONS_MIME: dict(flags)}, raw=True)


SECTIONS_MIME = "application/vnd.cmlib.sections+json"


# ---------------------------------------------------------------- results page

#: Where the mock's reference estimators are stored (``benchmarks/mock_calibration.py``).
REFERENCES_FILE = "results/mock/ablation.json"
#: The reference estimators drawn in the comparison figure: key -> short label.
REFERENCE_LINES = {"L_true,z": "E[log M | true L$_X$, z]", "L_true,z,T": "E[log M | true L$_X$, z, kT]"}


def reference_estimators(root: str | Path = ".", variant: str = "v2") -> dict:
    """The Bayes-optimal estimators E[log M | noiseless inputs] of the mock's own population
    (:func:`cmlib.classical.reference_estimators`, 10^5 clusters), read from :data:`REFERENCES_FILE`."""
    import json

    f = Path(root) / REFERENCES_FILE
    if not f.exists():
        return {}
    return json.loads(f.read_text()).get("variants", {}).get(variant, {}).get("references", {})


def references_markdown(refs: Mapping) -> str:
    """What the reference estimators are, with their numbers, in one paragraph."""
    if not refs:
        return (f"No reference estimators are stored ({REFERENCES_FILE}); make them with "
                "`python benchmarks/mock_calibration.py --refs-only`.")
    est = refs["estimators"]
    items = "; ".join(f"{v['label'].split(':')[0]}: std(x) = {v['std']:.3f} dex" for v in est.values())
    return ("**Reference estimators** (`cmlib.classical.reference_estimators`, on "
            f"{refs['n']:,} clusters of the mock's own selected population, {refs['method']}): {items}. "
            "Each is the best any method can do *given those noiseless quantities*, not a bound on estimates from "
            "images: an image carries photon noise, but also information beyond these inputs (its spectrum, "
            "its shape). The θ500 row is zero by construction: θ500 and z fix M500.")


def reference_lines(refs: Mapping) -> dict[str, float]:
    """Label -> std [dex] of the references drawn in the comparison figure."""
    est = refs.get("estimators", {}) if refs else {}
    return {label: est[k]["std"] for k, label in REFERENCE_LINES.items() if k in est}


def test_sets(pages_: Mapping[str, PageRuns], classical: Mapping[str, M.Predictions] | None = None
              ) -> tuple[dict[str, M.Predictions], dict[str, str]]:
    """Test predictions of every model's best run, the mean predictor and the classical estimator, with colours."""
    from .. import plots

    sets, colors = {}, {}
    for m, p in pages_.items():
        if p.finished:
            label = display_name(m) + ("" if verdict(p)["learned"] else " (did not learn)")
            sets[label] = p.best.predictions["test"]
            colors[label] = plots.color(m)
    first = next((p for p in pages_.values() if p.finished), None)
    if first is not None:
        sets["predict the training mean"] = first.mean_predictor("test")
        colors["predict the training mean"] = plots.color("mean")
    if classical:
        sets["classical estimator"] = classical["test"]
        colors["classical estimator"] = plots.color("classical")
    return sets, colors


def fair_binned_sets(members: Mapping[str, PageRuns], fair: Mapping, references: Sequence[str] = ()) -> dict:
    """What the mass and redshift bins of the results page draw, taken from the fair comparison
    (:func:`fair_comparison`), so on the same test clusters: the ensemble of each model's seeds that learned from
    the images, and as dashed references the prediction from the redshift alone, the mean training mass and the
    comparison's rows named in ``references`` (e.g. the fair classical estimator).  A model that did not learn is
    left out (its bins would say nothing of what the images tell); ``note`` names each with its reason.
    ``members`` give the colours (a model's own) and the seed counts.

    Returns ``{"sets": {label: Predictions}, "colors": {...}, "styles": {...}, "note": str}``; empty sets where
    the fair comparison has no rows."""
    from .. import plots

    preds = fair.get("predictions", {})
    rows = {r["model"]: r for r in fair.get("rows", [])}
    if not rows:
        return {"sets": {}, "colors": {}, "styles": {}, "note": ""}
    sets, colors, styles, left_out = {}, {}, {}, []
    used: set[str] = set()
    for key, pr in members.items():
        name = member_name(key, pr)
        r = rows.get(name)
        if r is None or r.get("kind") != "model":
            continue
        if r.get("learned") is False:
            left_out.append(f"{name} ({r['learned_short']})" if r.get("learned_short") else name)
            continue
        label = name + (f" ({r['seeds']} seeds)" if r["seeds"] > 1 else "")
        sets[label] = preds[name]
        c = plots.color(pr.model)
        colors[label] = c if c not in used else None     # a remedy beside its own model: the next free colour
        used.add(c)
    refs = [(REDSHIFT_ONLY, "predict from the redshift alone", "redshift"),
            ("predict the mean training mass", "predict the mean training mass", "mean")]
    refs += [(name, name, "classical") for name in references]
    for name, label, color_key in refs:
        if name in preds:
            sets[label], colors[label], styles[label] = preds[name], plots.color(color_key), "--"
    note = (f"Each line is a model's ensemble of seeds under the fair protocol, all on the same {fair['n_test']} "
            "test clusters; dashed lines are the references.")
    if left_out:
        note += (f" Left out because they did not learn from the images: {and_list(left_out)}; each model's page "
                 "shows its own bins.")
    return {"sets": sets, "colors": colors, "styles": styles, "note": note}


def mean_predictor_note(pages_: Mapping[str, PageRuns]) -> str:
    """How the mean predictor's σ compares with the thesis's deep models (numbers generated)."""
    first = next((p for p in pages_.values() if p.finished), None)
    if first is None:
        return ""
    b = first.mean_predictor("test")
    m = M.point_metrics(b.pred, b.true)
    spread = float(np.std(b.true))
    close = {k: v["sigma_test"] for k, v in TABLE5.items() if k != "basic" and abs(v["sigma_test"] - m["sigma"]) < 0.03}
    txt = (f"Predicting the mean training mass scores σ = {m['sigma']:.3f} on this test set ({m['sigma'] / spread:.2f} "
           f"times the {spread:.3f} dex spread of the true masses).")
    if close:
        lo, hi = min(close.values()), max(close.values())
        txt += (f" The thesis reports σ = {lo:g}\u2013{hi:g} for {and_list([display_name(k) for k in close])}: within "
                "0.03 of a model that ignores the images, which fits the thesis's own remark that those models' "
                "predictions form \"horizontal lines\" (the thesis's data are not ours, so this is a hint, not a proof).")
    return txt


def experiment_summary(pr: PageRuns, subset: str = "test") -> dict:
    """One table row of an experiment: runs, best σ, mean ± std (several seeds only), std(x), ensemble."""
    fin = pr.finished
    ms = [r.metrics[subset] for r in fin]
    st = M.mean_std_over_seeds(ms)
    row = {"runs": len(fin), "σ best": _fmt(ms[pr.best_index()]["sigma"]),
           "σ mean ± std": _pm(st, "sigma") if len(fin) > 1 else "\u2013 (one run)",
           "std(x) mean": _fmt(st["std"]["mean"])}
    if len(fin) > 1:
        ens = pr.ensemble(subset)
        row["std(x) ensemble"] = _fmt(M.point_metrics(ens.pred, ens.true)["std"])
    else:
        row["std(x) ensemble"] = "\u2013"
    return row


# ---------------------------------------------------------------- teaching pages

def bright_nearby_cluster(d, n_nearest: int = 20) -> int:
    """Index of the brightest (most counts in the loaded bands) of the ``n_nearest`` lowest-redshift clusters."""
    low_z = np.argsort(d.z)[:n_nearest]
    return int(low_z[np.argmax(d.images[low_z].sum(axis=(1, 2, 3)))])


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


def pipeline_benchmark(root: str | Path = ".") -> tuple[list[dict], str]:
    """The input-pipeline benchmark (``benchmarks/results/pipeline.json``) as rows and a sentence for readers."""
    import json

    f = Path(root) / "benchmarks" / "results" / "pipeline.json"
    if not f.exists():
        return [], "No pipeline benchmark has been recorded on this machine yet (`make benchmarks` records one)."
    b = json.loads(f.read_text())
    rows = []
    for r in b.get("throughput", []):
        c = r["config"]
        path = r["criterion"][0]
        ref = "reference tf.data" if c["backend"] == "tensorflow" else "reference numpy"
        rows.append({"backend": c["backend"], "input": "×".join(map(str, c["input_shape"])), "augment": c["augment"],
                     "steps/s with the pipeline": f"{r['steps_per_wall_s'][path]:.0f}",
                     "steps/s from tensors in memory": f"{r['steps_per_wall_s'].get(ref, float('nan')):.0f}",
                     "ratio": f"{r['ratio_wall'][path]:.2f}"})
    ratios = [float(r["ratio"]) for r in rows]
    verdict_txt = ("the pipeline keeps up with training" if ratios and min(ratios) >= 0.95 else
                   "on this machine the pipeline slows training down measurably")
    text = (f"Measured on {b.get('created', '?')[:10]} with {b.get('cpu_count', '?')} CPU cores (basic CNN, batch 32): "
            f"training steps per second with the real input pipeline, against steps fed from tensors already in "
            f"memory. A ratio of 1 means the pipeline costs nothing; {verdict_txt} (ratios "
            f"{min(ratios):.2f}\u2013{max(ratios):.2f}). `make benchmarks` measures it on your machine."
            if rows else "The benchmark file holds no throughput rows.")
    return rows, text


# ---------------------------------------------------------------- the fair comparison (the thesis's question)

FAIR_SPLIT = "train-val-test"


def fair_classical(data_path: str | Path, *, bands: str = "all", split: str = FAIR_SPLIT,
                   split_seed: int = 0) -> dict[str, M.Predictions]:
    """The fair classical estimator (:func:`cmlib.classical.fair_estimate`: only the image in ``bands`` and z,
    point sources masked, robust background, population prior) on the subsets of ``split``."""
    from .. import classical
    from .. import data as D
    from ..config import parse_bands

    b = list(parse_bands(bands))
    d = D.load(data_path, bands=b)
    sp = D.make_split(split, d, seed=split_seed)
    est = classical.fair_estimate(d.images, d.z, bands=b)
    return {s: M.Predictions(cluster_id=d.cluster_id[getattr(sp, s)], true=d.log_m500[getattr(sp, s)],
                             pred=est[getattr(sp, s)], z=d.z[getattr(sp, s)]) for s in ("train", "val", "test")}


def fair_members(profile: str, root: str | Path = ".", data: str | None = None) -> dict[str, PageRuns]:
    """The runs made under the fair protocol (train/validation/test split), by model: the models whose plan
    uses that split, the basic CNN's experiment on it (``basic_tvt``), and the remedies tried for a deep model
    (``<model>_remedy_<slug>``: the fair recipe with one change, chosen without the test set), each under its own
    key and name (:func:`member_name`) beside the model's own runs."""
    prof = get_profile(profile)
    out: dict[str, PageRuns] = {}
    basic = _fair_basic(profile, root=root, data=data)
    if basic is not None:
        out["basic"] = basic
    for m in prof.pages():
        plan = prof.plan(m)
        if plan.overrides.get("split") == FAIR_SPLIT and m not in out:
            out[m] = find_page_runs(m, profile, root=root, data=data)
            for key in remedy_keys(prof, m):
                if prof.experiments[key].overrides.get("split") == FAIR_SPLIT:
                    out[key] = find_page_runs(m, profile, root=root, experiment=key, data=data)
    return out


def _fair_basic(profile: str, root: str | Path = ".", data: str | None = None) -> PageRuns | None:
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


def member_name(key: str, pr: PageRuns | None = None) -> str:
    """The name of a fair-protocol member (:func:`fair_members`) in tables and text: the model's name, or
    for a remedy 'VGG16 (remedy: lr 1e-4)'."""
    if is_remedy_key(key):
        model = key.split(REMEDY_INFIX)[0]
        change = (pr.label if pr is not None and pr.label else "").split(" (")[0] or key.split(REMEDY_INFIX)[1]
        return f"{display_name(model)} (remedy: {change})"
    return display_name(key)


def basic_on_same_split(pr: PageRuns, profile: str, root: str | Path = ".", data: str | None = None
                        ) -> PageRuns | None:
    """The basic CNN's runs on the split of ``pr``'s best run (its page's runs, or its fair-protocol experiment),
    so that a comparison of the two is made on the same test clusters; None where the basic CNN has no finished
    runs on that split."""
    if not pr.finished:
        return None
    split = split_of(pr)
    candidates = [find_page_runs("basic", profile, root=root, data=data)]
    fair = _fair_basic(profile, root=root, data=data)     # not every fair member: only the basic CNN's runs
    if fair is not None:
        candidates.append(fair)
    return next((c for c in candidates if c.finished and split_of(c) == split), None)


def fair_comparison(members: Mapping[str, PageRuns], references: Mapping[str, M.Predictions] = (), *,
                    n_boot: int = 2000) -> dict:
    """Every model under the fair protocol against the basic CNN on the same test clusters.

    Rows best first (:func:`cmlib.compare.ranking` on test std(x) of the seed ensembles): seeds,
    mean +- std over seeds, the ensemble, the paired difference to the basic CNN with its 95 %
    bootstrap interval and verdict, and whether the model learned at all (vs predicting the mean
    training mass).  ``references`` (name -> test predictions, e.g. the classical estimator) are
    compared the same way.  Returns ``rows``, ``pending`` (models whose runs are not finished),
    ``n_test`` and ``predictions`` (row name -> the test predictions compared: a model's seed ensemble, or
    the reference's own).
    """
    from .. import compare

    # runs made on another version of the data file are never compared: their test clusters are other clusters
    have = {m: pr for m, pr in members.items() if pr.finished and not pr.data_mismatch}
    pending = [member_name(m, pr) + (" (its stored runs were made on another version of the data file)"
                                  if pr.finished and pr.data_mismatch else "")
               for m, pr in members.items() if m not in have]
    if "basic" not in have:
        return {"rows": [], "pending": pending, "n_test": 0}
    preds = {member_name(m, pr): [r.predictions["test"] for r in pr.finished] for m, pr in have.items()}
    any_run = have["basic"].finished[0]
    mean_pred = M.mean_predictor(any_run.predictions["train"], any_run.predictions["test"])
    preds["predict the mean training mass"] = [mean_pred]
    try:
        preds[REDSHIFT_ONLY] = [M.redshift_predictor(any_run.predictions["train"], any_run.predictions["test"])]
    except CmlibError:
        pass
    for name, p in dict(references).items():
        preds[name] = [p]
    rows = compare.ranking(preds, reference=display_name("basic"), n_boot=n_boot)
    ens = {member_name(m, pr): (M.ensemble([r.predictions["test"] for r in pr.finished]) if len(pr.finished) > 1
                             else pr.finished[0].predictions["test"]) for m, pr in have.items()}
    # the floor of the images: each model's ensemble against the redshift-only estimator on the same clusters
    zonly = preds.get(REDSHIFT_ONLY, [None])[0]
    learned = {name: M.learning_verdict(p, mean_pred, redshift_reference=zonly) for name, p in ens.items()}
    vs_z = {name: compare.paired_difference(p, zonly, n_boot=n_boot) for name, p in ens.items()} if zonly else {}
    epochs = {member_name(m, pr): sorted({r.status_info.get("epochs_completed", 0) for r in pr.finished})
              for m, pr in have.items()}
    remedies = {member_name(m, pr) for m, pr in have.items() if is_remedy_key(m)}
    for r in rows:
        v = learned.get(r["model"])
        r["learned"] = None if v is None else v["learned"]
        r["learned_reason"] = "" if v is None else v["reason"]
        r["learned_short"] = "" if v is None else v["short"]
        r["epochs"] = epochs.get(r["model"], [])
        r["kind"] = "model" if r["model"] in learned else "reference"
        r["remedy"] = r["model"] in remedies
        d = vs_z.get(r["model"])
        r["vs_redshift"] = None if d is None else {"diff": d.diff, "ci95": list(d.ci95), "verdict": d.verdict}
    predictions = {**ens, **{name: p[0] for name, p in preds.items() if name not in ens}}
    return {"rows": rows, "pending": pending, "n_test": int(mean_pred.true.size), "predictions": predictions}


def _seeds_value(r: Mapping) -> str:
    """A comparison row's test std(x) over seeds: '0.239 ± 0.002', or '0.300' for one seed (no fake spread)."""
    several = r["seeds"] > 1 and math.isfinite(r["std_seeds"])
    return f"{r['mean_seeds']:.3f}" + (f" ± {r['std_seeds']:.3f}" if several else "")


def fair_table_rows(result: Mapping) -> list[dict]:
    """The fair comparison as table rows (one seed: no spread shown)."""
    out = []
    for r in result["rows"]:
        spread = _seeds_value(r)
        if r["verdict"] == "reference":
            diff, verdict_text = "\u2013", "reference"
        else:
            lo, hi = r["ci95"]
            diff = f"{r['diff_vs_reference']:+.3f} [{lo:+.3f}, {hi:+.3f}]"
            verdict_text = {"better": "better than the basic CNN", "worse": "worse than the basic CNN",
                            "indistinguishable": "indistinguishable"}[r["verdict"]]
        learned = r.get("learned")
        eps = r.get("epochs") or []
        out.append({"model": r["model"], "seeds": r["seeds"] if r["kind"] == "model" else "\u2013",
                    "epochs": (f"{eps[0]}" if len(eps) == 1 else f"{eps[0]}\u2013{eps[-1]}") if eps else "\u2013",
                    "std(x) test, per seed": spread if r["kind"] == "model" else f"{r['ensemble']:.3f}",
                    "std(x) test, ensemble": f"{r['ensemble']:.3f}",
                    "Δ vs basic CNN [95 % interval]": diff, "verdict": verdict_text,
                    "learned": "\u2013" if learned is None else ("yes" if learned else
                                                                 "no: " + r.get("learned_short", r["learned_reason"])),
                    "_class": "" if learned in (None, True) else "did-not-learn"})
    return out


def fair_answer(result: Mapping) -> str:
    """The answer to the thesis's question, generated from the fair comparison: one sentence on the protocol
    and the basic CNN, then a list that names every model once, in the group its verdict puts it in (better
    than the basic CNN, cannot be told apart, worse though it reads the images, did not learn from the images,
    still in the compute plan), with its test std(x) over seeds and its paired difference to the basic CNN."""
    if not result["rows"]:
        txt = ("**Under the fair protocol** no comparison is possible yet: the basic CNN's train-val-test runs are "
               "not on disk.")
        return txt + (f" Still in the compute plan: {', '.join(result['pending'])}." if result["pending"] else "")
    n = result["n_test"]
    models = [r for r in result["rows"] if r["kind"] == "model"]
    rows = [r for r in models if r["verdict"] != "reference"]
    ref = next((r for r in models if r["verdict"] == "reference"), None)

    def entry(r: Mapping, why: bool = False) -> str:
        """'VGG16 0.300 (1 seed; predicts from the redshift alone), +0.072 [+0.056, +0.088]'."""
        value = _seeds_value(r)
        notes = [counted(r["seeds"], "seed")] + ([r["learned_short"]] if why and r.get("learned_short") else [])
        lo, hi = r["ci95"]
        return f"{r['model']} {value} ({'; '.join(notes)}), {r['diff_vs_reference']:+.3f} [{lo:+.3f}, {hi:+.3f}]"

    lead = (f"**Under the fair protocol** (one train/validation/test split for every model, early stopping and the "
            f"best epoch chosen on the validation set, the {n} test clusters used only here)")
    if ref is not None:
        lead += (f", the basic CNN scores test std(x) = {_seeds_value(ref)} dex ({counted(ref['seeds'], 'seed')}"
                 + (f", the ensemble of its seeds {ref['ensemble']:.3f} dex" if ref["seeds"] > 1 else "") + ")")
        if ref.get("learned") is False:      # then "better than the basic CNN" says little: say so
            lead += f"; it did not learn from the images itself ({ref.get('learned_short', '')})"
    lead += "."
    if rows:
        lead += (" Each model below: its test std(x) in dex (mean ± standard deviation over seeds), then the "
                 "difference of its seeds' ensemble from the basic CNN's on the same clusters with a bootstrap 95 % "
                 "interval (positive: worse).")
    else:
        lead += " No other model has finished runs yet."
    z = next((r for r in result["rows"] if r["model"] == REDSHIFT_ONLY), None)
    # what "learned" had to beat (metrics.learning_verdict): the redshift-only fit where there is one
    floor = (f"the prediction from the redshift alone, {z['ensemble']:.3f} dex" if z is not None
             else "predicting the mean training mass")
    learned = [r for r in rows if r.get("learned") is not False]
    groups = [
        ("Better than the basic CNN", [entry(r) for r in learned if r["verdict"] == "better"], True),
        ("Cannot be told apart from it", [entry(r) for r in learned if r["verdict"] == "indistinguishable"], False),
        (f"Worse, though it reads the images (it beats {floor})",
         [entry(r) for r in learned if r["verdict"] == "worse"], False),
        ("Did not learn from the images (" + (f"the redshift alone scores {z['ensemble']:.3f} dex; " if z is not None else "")
         + "each model's page shows the diagnosis)",
         [entry(r, why=True) for r in rows if r.get("learned") is False], False),
        ("Still in the compute plan", list(result["pending"]), False),
    ]
    items = [f"- **{head}:** " + ("; ".join(found) if found else "none") + "."
             for head, found, always in groups if found or (always and rows)]
    return lead + ("\n\n" + "\n".join(items) if items else "")


def fair_classical_cached(data_path: str | Path, bands_list=("thesis", "all"), *,
                          folder: str | Path = "book/generated/cache") -> dict[str, M.Predictions]:
    """:func:`fair_classical` test predictions per band set, cached as JSON next to the other cached facts
    (a few minutes on two cores: the population prior and every image's photometry)."""
    from ..config import data_identity

    sha = data_identity(data_path)["content_sha256"][:12]
    out = {}
    for b in bands_list:
        def compute(b=b):
            p = fair_classical(data_path, bands=b)["test"]
            return {"cluster_id": p.cluster_id.tolist(), "true": p.true.tolist(), "pred": p.pred.tolist(),
                    "z": p.z.tolist()}
        v = cached(f"fair-classical-{b}-{sha}", compute, folder=folder)
        out[f"classical (fair, {'3' if b == 'thesis' else '10'} bands)"] = M.Predictions(**v)
    return out


# ---------------------------------------------------------------- the training-parameters page

def recipe_comparison(profile: str, root: str | Path = ".", data: str | None = None) -> dict:
    """The evidence behind the deep models' recipe: for each model with a ``<model>_thesis_opt`` experiment,
    its runs under the thesis's optimisation and under the chosen recipe (same split, input and budget).

    Returns ``{"panels": {model: {label: run}}, "notes": [...], "rows": [...], "verdicts": [...]}``; a model
    whose runs are not both on disk appears in ``notes`` with where its runs stand; ``verdicts`` says, per
    model, which recipe reached the lower validation loss and whether their test std(x) differ beyond the
    noise of the test set (paired bootstrap over the test clusters, :func:`cmlib.compare.paired_difference`).
    """
    from .. import compare

    prof = get_profile(profile)
    panels, notes, rows, verdicts = {}, [], [], []
    for key, plan in prof.experiments.items():
        if not key.endswith("_thesis_opt"):
            continue
        m = plan.model
        chosen = find_page_runs(m, profile, root=root, data=data)
        thesis_opt = find_page_runs(m, profile, root=root, experiment=key, data=data)
        if not (chosen.finished and thesis_opt.finished):
            missing = [pr for pr in (thesis_opt, chosen) if not pr.finished]
            notes.append(f"{display_name(m)}: " + "; ".join(
                f"{'the chosen recipe' if pr is chosen else plan.label} "
                f"({R.seed_progress(pr.request, Path(root))})" for pr in missing) + ".")
            continue
        a, b = thesis_opt.finished[0], chosen.finished[0]
        panels[display_name(m)] = {f"thesis: Adam {a.config['lr']:g}, constant": a,
                                   "chosen: AdamW, warm-up + cosine": b}
        for label, r in ((plan.label, a), ("chosen recipe", b)):
            s, met = r.status_info, r.metrics
            rows.append({"model": display_name(m), "recipe": label, "epochs": s.get("epochs_completed"),
                         "best epoch": s.get("best_epoch"), "stopped by": stop_kind(r),
                         "val loss (best)": _fmt(met.get("loss", {}).get("val_best"), 4),
                         "std(x) test": _fmt(met.get("test", {}).get("std"))})
        va, vb = (r.metrics.get("loss", {}).get("val_best") for r in (a, b))
        d = compare.paired_difference(b.predictions["test"], a.predictions["test"], n_boot=2000)
        lo, hi = d.ci95
        same = lo <= 0.0 <= hi
        lower = "the chosen recipe" if vb < va else "the thesis's optimisation"
        verdicts.append(
            f"**{display_name(m)}**: {lower} reached the lower validation loss ({vb:.4f} chosen, epoch "
            f"{b.status_info.get('best_epoch')}, {stop_kind(b)}; {va:.4f} thesis, epoch {a.status_info.get('best_epoch')}, "
            f"{stop_kind(a)}). Test std(x) {d.a:.3f} (chosen) against {d.b:.3f} (thesis): a difference of "
            f"{d.diff:+.3f} dex, 95 % interval [{lo:+.3f}, {hi:+.3f}] over the {d.n_clusters} test clusters: "
            + ("the two recipes cannot be told apart at this budget." if same else
               f"{'the chosen recipe' if d.diff < 0 else 'the thesis optimisation'} is better at this budget.")
            + _convergence_words(a, b))
    return {"panels": panels, "notes": notes, "rows": rows, "verdicts": verdicts}


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


def uncertainty_rows(items: Sequence[tuple[str, PageRuns | None]]) -> list[dict]:
    """Calibration of models with a predicted uncertainty, per (label, runs): the mean ± standard deviation over
    every seed (no seed picked) of the test std(x), the median predicted σ, the ±1σ and ±2σ coverage and the
    standard deviation of the pulls x/σ; with each model's split, since models on other splits have other test
    clusters."""
    rows = []
    for label, pr in items:
        if pr is None or not pr.finished:
            continue
        us, stds = [], []
        for r in pr.finished:
            p = r.predictions["test"]
            us.append(M.uncertainty_metrics(p.pred, p.true, p.sigma))
            stds.append(M.point_metrics(p.pred, p.true)["std"])

        def pm(vals, fmt: str) -> str:
            v = np.asarray(vals, dtype=float)
            return format(v.mean(), fmt) + (f" ± {format(v.std(ddof=1), fmt)}" if v.size > 1 else "")
        rows.append({"model": label, "split": split_of(pr), "seeds": len(pr.finished),
                     "test std(x) [dex]": pm(stds, ".3f"),
                     "median σ_pred [dex]": pm([u["sigma_pred_median"] for u in us], ".3f"),
                     "±1σ coverage": pm([u["coverage_1sigma"] for u in us], ".0%"),
                     "±2σ coverage": pm([u["coverage_2sigma"] for u in us], ".0%"),
                     "pull std": pm([u["pull_std"] for u in us], ".2f")})
    return rows


def table4_rows() -> list[dict]:
    """Thesis Table 4 beside cmlib's settings: the registry recipes (what ``cmlib train`` starts from) and the
    fair recipe of the stored deep-model runs (:data:`cmlib.book.profiles.FAIR_DEEP`), all read from the code."""
    from .. import models
    from .profiles import FAIR_DEEP, FAIR_EPOCHS, FAIR_FLOAT32
    from .thesis import TABLE4

    deep, basic, kripp = (models.get_spec(m).recipe for m in ("resnet50v2", "basic", "krippendorf2023"))
    fair = {**{k: deep[k] for k in ("loss", "dense_units", "batch_size", "augment")}, **FAIR_DEEP}

    def opt(r: Mapping) -> str:
        name = {"adam": "Adam", "adamw": "AdamW"}.get(r["optimizer"], r["optimizer"])
        return name + (f" (weight decay {r['weight_decay']:g})" if r.get("weight_decay") else "")

    def lr(r: Mapping) -> str:
        sched = {"constant": "constant", "warmup-cosine": f"{r.get('warmup_epochs', 0)}-epoch warm-up, cosine "
                 "decay to zero"}.get(r.get("lr_schedule", "constant"), r.get("lr_schedule"))
        return f"{r['lr']:g}, {sched}"

    def size(r: Mapping, channels: int = 3) -> str:
        return f"{'71×71' if r['pad'] == 'thesis' else '50×50'}×{channels}"

    cm = {
        "Pretraining (training catalogue)": ("none: weights=None, from scratch (a local ImageNet file can be given)",
                                             "none", "none", "none"),
        "Loss function": (deep["loss"].upper(), fair["loss"].upper(), basic["loss"].upper(), "Gaussian NLL"),
        "Optimizer": (opt(deep), opt(fair), opt(basic), opt(kripp)),
        "Learning rate": (lr(deep), lr(fair), lr(basic), lr(kripp)),
        "Dense units": (deep["dense_units"], fair["dense_units"], f"{basic['dense_units']} + {basic['dense_units']}",
                        f"{kripp['dense_units']} + {kripp['dense_units']}"),
        "Dense activation": ("ReLU",) * 4,
        "Batch size": (deep["batch_size"], fair["batch_size"], basic["batch_size"], kripp["batch_size"]),
        "Training epochs": (deep["reference_epochs"],
                            f"{FAIR_EPOCHS}, early stopping (patience {fair['early_stopping']})",
                            f"early stopping (patience {basic['early_stopping']})",
                            f"~{kripp['reference_epochs']}, early stopping (patience {kripp['early_stopping']})"),
    }
    cols = ("cmlib deep models (registry default)", "cmlib stored deep runs (fair recipe)", "cmlib basic CNN",
            "cmlib Krippendorf et al.")
    rows = [{"parameter": k, "thesis (deep models)": v, **dict(zip(cols, cm[k]))} for k, v in TABLE4.items()]
    rows.append({"parameter": "Bands / input", "thesis (deep models)": "2–4 (455–1070 eV), padded to 71×71",
                 **dict(zip(cols, (f"bands 2–4, {size(deep)}", f"bands 2–4, {size(fair)}", f"bands 2–4, {size(basic)}",
                                   f"all 10 bands, {size(kripp, 10)}")))})

    def labels(r: Mapping) -> str:
        lab = {"none": "raw log M", "standardize": "standardised log M"}.get(r["label_scaling"], r["label_scaling"])
        bias = {"zero": "output bias zero", "mean": "output started at the mean training mass",
                "prior": "output started at the label prior"}.get(r["output_bias"], r["output_bias"])
        return f"{lab}, {bias}"

    rows.append({"parameter": "Labels and output", "thesis (deep models)": "raw log M, output bias zero",
                 **dict(zip(cols, (labels(deep), labels(fair), labels(basic), labels(kripp))))})
    rows.append({"parameter": "Arithmetic", "thesis (deep models)": "float32 (GPU)",
                 **dict(zip(cols, (deep["precision"], f"{fair['precision']} (float32: {and_list([display_name(m) for m in FAIR_FLOAT32])})",
                                   basic["precision"], kripp["precision"])))})
    rows.append({"parameter": "Augmentation", "thesis (deep models)": "random flips",
                 **dict(zip(cols, (deep["augment"], fair["augment"], basic["augment"], kripp["augment"])))})
    return rows


def _convergence_words(thesis_opt, chosen) -> str:
    """Which of the two recipe runs ended on its own (early stopping, an annealed schedule's end) and which was
    cut by the epoch budget while still improving: what decides the recipe of runs that must be converged."""
    def still_improving(r) -> bool:
        st = r.status_info
        return stop_kind(r) == "budget end" and st.get("best_epoch") == st.get("epochs_completed")

    if still_improving(thesis_opt) and not still_improving(chosen):
        return (" The thesis's constant rate was still improving at its last epoch when the budget ended, so that "
                f"run did not converge; the chosen recipe ended on its own ({stop_kind(chosen)}), which every stored "
                "run must, and is kept for that reason.")
    if still_improving(chosen):
        return " The chosen recipe was still improving at its last epoch: its run did not converge within the budget."
    return ""


def training_benchmark_rows(path: str | Path = "benchmarks/results/training.json",
                            thesis_input: str | Path | None = None) -> tuple[list[dict], str]:
    """The training benchmark (``benchmarks/bench_training.py``) as table rows and a provenance sentence.

    ``thesis_input`` (default: ``training_thesis_input.json`` beside ``path``, when it exists) is a run of
    the benchmark with ``--input thesis`` (the padded 71 x 71 input); its rows join the table and the text
    gives each model's speed-up of the fair recipe's input and precision over the thesis's float32 71 x 71.
    """
    import json

    f = Path(path)
    if not f.exists():
        return [], f"No training benchmark yet: run `python benchmarks/bench_training.py` (writes {path})."
    b = json.loads(f.read_text())
    t_path = Path(thesis_input) if thesis_input is not None else f.with_name("training_thesis_input.json")
    t = json.loads(t_path.read_text()) if t_path.exists() else None
    rows = []
    for r in b["rows"] + (t["rows"] if t else []):
        rows.append({"model": display_name(r["model"]), "precision": r["precision"],
                     "input": "×".join(map(str, r["input_shape"])),
                     "epoch, steps only [s]": f"{r['epoch_step_only_s']:.1f}",
                     "epoch, whole [s]": f"{r['epoch_whole_s']:.1f}",
                     "overhead": f"×{r['overhead']:.2f}",
                     "checkpoint [s]": f"{r['checkpoint_s']:.2f}" if "checkpoint_s" in r else "",
                     "bf16 speed-up": f"×{b['bf16_speedup'][r['model']]:.2f}" if r["precision"] == "bfloat16"
                     and r["model"] in b.get("bf16_speedup", {}) else "",
                     "_class": "" if r["overhead"] <= b.get("overhead_target", 1.15) else "over-target"})
    mach = b["machine"]
    text = (f"Measured by `benchmarks/bench_training.py` on {mach.get('cpu_cores')} CPU cores ({mach.get('cpu_model')}, "
            f"bf16 units: {', '.join(mach.get('cpu_bf16_units') or []) or 'none'}; {mach.get('backend')} backend"
            + (f", GPU: {', '.join(mach['gpus'])}" if mach.get("gpus") else "") + f"), {b['created'][:10]}, load average "
            f"{mach['loadavg_before'][0]}–{mach['loadavg_after'][0]}. An epoch is the thesis's 7151 training images "
            "(extrapolated from the timed steps); the whole epoch adds validation, history and status files, measured "
            "on the subset, and checkpoints, whose measured cost is spread as the adaptive policy spreads them over "
            "a full run (one write per max(epoch, min(600 s, cost / 5 %))); the overhead is whole / steps only "
            f"(target ≤ {b.get('overhead_target', 1.15)}).")
    rounds = sorted({(r["model"], r.get("rounds", 1), r.get("timed_epochs"), str(r.get("measured", ""))[:16],
                      (r.get("load") or ["?"])[0]) for r in b["rows"] if r.get("rounds", 1) > 1})
    if rounds:
        text += (" Epochs of the small CNNs take seconds, so a few of them are at the mercy of a shared machine: their "
                 "rows are medians of interleaved rounds (float32, bf16, bf16, float32, …): "
                 + "; ".join(f"{display_name(m)} {n} rounds of {e} timed epochs ({when.replace('T', ' ')} UTC, "
                             f"load average {load})" for m, n, e, when, load in rounds) + ".")
    parts_path = f.with_name("epoch_parts.json")
    if parts_path.exists():
        text += " " + epoch_parts_text(json.loads(parts_path.read_text()))
    if t:
        fair = {r["model"]: r for r in b["rows"] if r["precision"] == fair_deep(r["model"])["precision"]}
        pairs = [(r["model"], r["epoch_step_only_s"] / fair[r["model"]]["epoch_step_only_s"])
                 for r in t["rows"] if r["precision"] == "float32" and r["model"] in fair]
        if pairs:
            tm = t["machine"]
            text += (" The 71×71 rows are the thesis's padded input in float32, measured by `bench_training.py "
                     f"--input thesis` on {t['created'][:10]} (load average {tm['loadavg_before'][0]}–"
                     f"{tm['loadavg_after'][0]}): the fair recipe's 50×50 epoch in its precision is "
                     + ", ".join(f"×{x:.2f} faster for {display_name(m)}"
                                 + (f" ({fair[m]['precision']})" if fair[m]["precision"] != "bfloat16" else "")
                                 for m, x in pairs) + ".")
    return rows, text


def kernels_text(path: str | Path = "benchmarks/results/kernels.json") -> str:
    """What ``benchmarks/bench_kernels.py`` found about TensorFlow's CPU kernels (oneDNN, XLA), in a paragraph."""
    import json

    f = Path(path)
    if not f.exists():
        return f"No kernel benchmark yet: `python benchmarks/bench_kernels.py` writes {path}."
    b = json.loads(f.read_text())
    mach = b["machine"]
    simd = ", ".join(mach.get("cpu_flags_avx512") or []) or "no AVX-512"
    loads = [r["loadavg"] for r in b["rows"]]
    parts = []
    for model, sm in b["summary"].items():
        med = sm["median_s_per_step"]
        parts.append(f"a {display_name(model)} training step took {med['onednn']:.2f} s with oneDNN, "
                     f"{med['eigen']:.2f} s without ({sm['eigen_over_onednn']:.1f}× as long) and "
                     f"{med['onednn+xla']:.2f} s with XLA on top ({sm['xla_over_onednn']:.1f}× as long)")
    st = b["settings"]
    return ("TensorFlow has two sets of CPU kernels for convolutions: Eigen's and Intel's oneDNN. It switches oneDNN on "
            "by itself only on CPUs with AVX-512 VNNI, AVX-512 BF16 or AMX units; cmlib switches it on everywhere "
            "(`TF_ENABLE_ONEDNN_OPTS=1` unless you set it), and each run's `env.json` records which kernels it used. "
            f"Measured by `benchmarks/bench_kernels.py` on {mach.get('cpu_cores')} CPU cores ({mach.get('cpu_model')}, "
            f"{simd}), {b['created'][:10]}, median of {st['rounds']} interleaved rounds of {st['steps']} steps "
            f"(batch {st['batch']}, {st['input']}, {st['precision']}; load average {min(loads):.1f}–{max(loads):.1f}): "
            + "; ".join(parts) + ". XLA compilation (`jit_compile`), which Keras leaves off on a CPU, stays off.")


def epoch_parts_text(parts: Mapping) -> str:
    """What ``benchmarks/epoch_parts.py`` found about the small CNNs' epochs, in two sentences."""
    rows = parts.get("rows", [])
    if not rows:
        return ""
    spread = max(r["fit_epoch_spread"] for r in rows)
    per = "; ".join(
        f"{display_name(r['model'])} ({r['precision']}): epoch {r['fit_epoch_s']['min']:.2f}–{r['fit_epoch_s']['max']:.2f} s, "
        f"validation {r['evaluate_val_s']['median']:.2f} s, diagnostics {r['diagnostics_s']['median']:.2f} s, "
        f"checkpoint {r['checkpoint_s']['median']:.2f} s, input pipeline alone {r['input_only_s']['median']:.2f} s"
        for r in rows)
    fixed = [1 + r["fixed_overhead"] for r in rows]
    return (f"For the small CNNs, whose epochs take seconds, the same epoch's training steps alone varied by up to "
            f"{spread:.0%} from one repetition to the next ({parts['created'][:10]}, `benchmarks/epoch_parts.py`, "
            f"{rows[0]['repeats']} interleaved repetitions): a ratio of two such short measurements is that noisy, so "
            "rows above can fall below ×1 (impossible for the work itself: an overhead below 1 is noise) or far above "
            "the target; the deep models' rows, measured on subsets of 10–50 s per epoch, share the problem. Measured part by part, what an epoch adds to its steps "
            f"is ×{min(fixed):.2f}–{max(fixed):.2f}: {per}.")


# ---------------------------------------------------------------- the tuning page

def tuning_comparison_markdown(report: Mapping | None, profile: str, *, root: str | Path = ".",
                               reference_seed: int = 0, measure: str = "std") -> str:
    """The tuning page's verdict: the study's best trial against the thesis recipe on the same test set.

    The reference is the profile's train/validation/test run of the basic CNN with the thesis's
    recipe (``experiment="basic_tvt"``, seed ``reference_seed``).  A paired comparison needs both
    runs on the same data and split (:func:`cmlib.tune.comparable`); when the study ran on other
    data than the profile (e.g. the smoke profile's tiny file), the text says so and shows none.
    """
    from .. import tune
    from ..artifacts import Run

    best = report.get("best") if report else None
    if best is None:
        return "The study has no complete trial yet, so there is no tuned CNN to compare."
    if "basic_tvt" not in get_profile(profile).experiments:
        return (f"The `{profile}` profile trains no train-val-test run of the thesis recipe (its experiment "
                "`basic_tvt`), so this build has no reference for a test comparison; the laptop profile's book "
                "shows it (`make book`).")
    ref_pr = find_page_runs("basic", profile, root=root, experiment="basic_tvt")
    ref = [r for r in ref_pr.finished if int(r.config["seed"]) == reference_seed]
    if not ref:
        return f"The thesis-recipe run (seed {reference_seed}) is not on disk: `{ref_pr.request.command()}`."
    tuned = Run.load(Path(root) / best["stored_in"] / best["run"])
    same, why = tune.comparable(tuned, ref)
    head = (f"Best trial: {best['number']} (validation loss {best['value']:.5f}), options "
            f"{', '.join(f'`{k}={v:.3g}`' if isinstance(v, float) else f'`{k}={v}`' for k, v in best['options'].items())}"
            ".\n\n")
    if not same:
        return head + (f"No test comparison under the `{profile}` profile: its thesis-recipe run was trained on other "
                       f"data or another split than the study ({why}). A paired comparison needs the same test "
                       "clusters; read this page under the profile whose data the study used, or rerun the study on "
                       f"this profile's data (`benchmarks/tune_study.py --data {ref_pr.data}`).")
    d = tune.test_comparison(tuned, same[0], measure=measure)
    verdict = ("beats" if d.ci95[1] < 0 else "is worse than" if d.ci95[0] > 0 else "is not distinguishable from")
    return head + (
        f"Test {measure} of log M over {d.n_clusters} clusters: tuned {d.a:.4f}, thesis recipe {d.b:.4f}; difference "
        f"{d.diff:+.4f} (68 %: {d.ci68[0]:+.4f} to {d.ci68[1]:+.4f}; 95 %: {d.ci95[0]:+.4f} to {d.ci95[1]:+.4f}); "
        f"the tuned CNN has the smaller error in {100 * d.p_a_better:.0f} % of the bootstrap resamples.\n\n"
        f"**On the test set the tuned basic CNN {verdict} the thesis recipe** (95 % interval).")


def tuning_trial_rows(report: Mapping) -> list[dict]:
    """One row per trial of a study report, formatted for reading: best validation loss to 4 digits
    (a dash while a trial runs or after it failed), learning rates in e-notation, fractions to 2 digits."""
    def cell(k: str, v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.1e}" if k == "lr" or abs(v) < 0.01 else f"{v:.2f}"
        return str(v)

    rows = []
    for t in sorted(report["trials"], key=lambda t: t["number"]):
        v = t.get("value")
        rows.append({"trial": str(t["number"]), "state": t["state"],
                     "best val. loss": "\u2013" if v is None or not math.isfinite(v) else f"{v:.4f}",
                     "epochs": str(t["epochs_reported"]),
                     **{k.replace("_", " "): cell(k, v) for k, v in t["params"].items()}})
    return rows


def precision_rows(path: str | Path = "benchmarks/results/precision.json") -> tuple[list[dict], str]:
    """The bf16-vs-fp32 accuracy check (``benchmarks/precision_check.py``) as table rows and a sentence."""
    import json

    f = Path(path)
    if not f.exists():
        return [], ("No bf16-vs-fp32 accuracy check yet: `python benchmarks/precision_check.py --train --models basic` "
                    f"trains both precisions of the same seeds and writes {path}.")
    b = json.loads(f.read_text())

    def cell(d: Mapping) -> str:
        sd = "" if d["std"] is None or not math.isfinite(d["std"]) else f" ± {d['std']:.3f}"
        return f"{d['mean']:.3f}{sd} ({len(d['seeds'])} seed{'s' if len(d['seeds']) != 1 else ''})"

    def same_seed(r: Mapping) -> str:
        """Each seed run in both precisions: its bf16 - fp32 difference and that difference's 95 % interval."""
        out = []
        for k, v in sorted(r.get("paired_diffs", {}).items(), key=lambda kv: int(kv[0])):
            ci = r.get("paired_ci95", {}).get(k)
            out.append(f"seed {k} {v:+.3f}" + (f" [{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci else ""))
        return ", ".join(out) or "\u2013"

    def corr(r: Mapping) -> str:
        """Residual correlation of the same seed across precisions against that of two seeds (means)."""
        rc = r.get("residual_corr")
        if not rc:
            return "\u2013"
        same = list(rc["same_seed"].values())
        other = [v for d in rc["other_seeds"].values() for v in d.values()]
        return " / ".join(f"{np.mean(v):.2f}" if v else "\u2013" for v in (same, other))

    def within(r: Mapping) -> str:
        if r["agree"] is None:
            return "– (one seed)"
        return "yes" if r["agree"] else f"no ({abs(r['diff']) / r['seed_spread']:.1f}× the spread)"

    rows = [{"model": display_name(r["model"]), f"float32 test {r['measure']}(x) [dex]": cell(r["float32"]),
             f"bfloat16 test {r['measure']}(x) [dex]": cell(r["bfloat16"]),
             "difference": f"{r['diff']:+.3f}",
             "same seed, bf16 − fp32 [95 % interval]": same_seed(r),
             "seed spread": _fmt(r["seed_spread"]),
             "residuals correlate: same seed / two seeds": corr(r),
             "difference within the seed spread": within(r),
             "_class": "" if r["agree"] is not False else "over-target"} for r in b["rows"]]
    missing = [display_name(m) for m in b.get("missing", [])]
    text = (f"Measured by `benchmarks/precision_check.py` on {b['date'][:10]}: finished runs of one recipe that differ "
            "only in precision, their test error per seed; bf16 changes a run by round-off only if the difference of "
            "the means is within the seed-to-seed standard deviation (the larger one; where one precision has a "
            "single seed, the other's). Runs of the same seed in the two precisions are not copies of each other: "
            "round-off sends them on different paths, so their difference is itself of the size of the seed spread. "
            "In brackets, the 95 % interval of that same-seed difference from resampling the test clusters (a "
            "bootstrap): an interval around zero means the test set cannot tell the two runs apart. The correlation "
            "of the test residuals cluster by cluster measures the same thing from the other side: between the two "
            "precisions' runs of one seed, and between two seeds of one precision (means over the pairs). If the "
            "first is not lower than the second, changing the precision moves a run no more than changing the seed."
            + (f" Not yet run in both precisions: {', '.join(missing)}." if missing else ""))
    for r in b["rows"]:
        if r["agree"] is not False:
            continue
        cis = list(r.get("paired_ci95", {}).values())
        inside = bool(cis) and all(lo <= 0.0 <= hi for lo, hi in cis)
        text += (f" For {display_name(r['model'])} the precisions differ by more than its seeds do: bf16 is "
                 f"{abs(r['diff']):.3f} dex {'lower (better)' if r['diff'] < 0 else 'higher (worse)'} on average, "
                 f"{abs(r['diff']) / r['float32']['mean']:.1%} of its std(x), against a seed spread of "
                 f"{r['seed_spread']:.3f} dex"
                 + ("; every same-seed difference lies inside the test set's resolution (its interval contains "
                    "zero), so the shift is consistent across seeds but too small for these test clusters to see "
                    "run by run." if inside else "."))
    return rows, text


# ---------------------------------------------------------------- the thesis's own protocol (results page)

def thesis_protocol_members(profile: str, root: str | Path = ".", data: str | None = None) -> dict[str, PageRuns]:
    """The runs made under the thesis's own protocol (experiments ``<model>_thesis_protocol``), by model,
    with the basic CNN's main runs (its plan is the thesis protocol in every profile) first."""
    from .profiles import THESIS_PROTOCOL_SUFFIX

    prof = get_profile(profile)
    out = {"basic": find_page_runs("basic", profile, root=root, data=data)}
    for key, plan in prof.experiments.items():
        if key.endswith(THESIS_PROTOCOL_SUFFIX):
            out[plan.model] = find_page_runs(plan.model, profile, root=root, experiment=key, data=data)
    return out


def thesis_protocol_comparison(members: Mapping[str, PageRuns], fair: Mapping | None = None, *,
                               fair_basic: PageRuns | None = None, root: str | Path = ".") -> dict:
    """Thesis Table 5 reproduced under the thesis's protocol, beside the thesis's numbers and the fair protocol.

    For each model: the run the thesis would report (the lowest test sigma of its seeds, the epoch chosen on
    the test set, because under the thesis split the validation set *is* the test set), its test sigma
    (eq. 4.0.1) beside thesis Table 5, its test std(x), and the same model's std(x) under the fair protocol
    (mean over seeds, from :func:`fair_comparison`).  ``optimism`` is the fair std(x) minus the
    thesis-protocol one: how much better the thesis's way of reporting makes a model look (it also contains
    the larger training set of the thesis split and, for the deep models, the different recipe and input).

    ``fair_basic`` (the basic CNN's fair-protocol runs) gives the fair split's training-set size.
    Returns ``{"rows": [...], "pending": [text, ...], "n_train": {"thesis": n, "fair": n}}``.
    """
    fair_by = {r["model"]: r for r in (fair or {}).get("rows", []) if r.get("kind") == "model"}
    rows, pending, n_train, floors = [], [], {}, {}
    for m, pr in members.items():
        name = display_name(m)
        if not pr.finished or pr.data_mismatch:
            why = ("its runs were made on another version of the data file" if pr.data_mismatch
                   else R.seed_progress(pr.request, Path(root)))
            pending.append(f"{name} ({why})")
            continue
        best = pr.best
        met = best.metrics["test"]
        n_train.setdefault("thesis", int(best.predictions["train"].true.size))
        floors.setdefault("thesis", _floor_std(best))
        f = fair_by.get(name)
        row = {"model": m, "name": name, "seeds": len(pr.finished),
               "epochs": best.status_info.get("epochs_completed"), "best_epoch": best.status_info.get("best_epoch"),
               "stopped": stop_kind(best), "sigma": met.get("sigma"), "mu": met.get("mu"), "std": met.get("std"),
               "sigma_thesis": TABLE5.get(m, {}).get("sigma_test"),
               "fair_std": None if f is None else f["mean_seeds"],
               "fair_std_sd": None if f is None or f["seeds"] < 2 else f["std_seeds"],
               "fair_seeds": 0 if f is None else f["seeds"]}
        row["optimism"] = None if row["fair_std"] is None else row["fair_std"] - row["std"]
        rows.append(row)
    if fair_basic is not None and fair_basic.finished:
        n_train["fair"] = int(fair_basic.finished[0].predictions["train"].true.size)
        floors["fair"] = _floor_std(fair_basic.finished[0])
    return {"rows": rows, "pending": pending, "n_train": n_train, "floors": floors}


def _floor_std(run) -> float:
    """std(x) of predicting the mean training mass on a run's test clusters: the spread of their true masses,
    which tells two test sets apart."""
    p = run.predictions
    m = M.mean_predictor(p["train"], p["test"])
    return M.point_metrics(m.pred, m.true)["std"]


def thesis_protocol_rows(result: Mapping) -> list[dict]:
    """:func:`thesis_protocol_comparison` as table rows."""
    out = []
    for r in result["rows"]:
        fair = "\u2013 (no fair run yet)"
        if r["fair_std"] is not None:
            fair = (f"{r['fair_std']:.3f} ± {r['fair_std_sd']:.3f}" if r["fair_std_sd"] is not None
                    else f"{r['fair_std']:.3f}") + f" ({r['fair_seeds']} seed{'s' if r['fair_seeds'] > 1 else ''})"
        out.append({"model": r["name"],
                    "reported run": (f"best of {r['seeds']} seeds" if r["seeds"] > 1 else "1 seed")
                    + f", epoch {r['best_epoch']} of {r['epochs']} ({r['stopped']})",
                    "σ test, thesis": _fmt(r["sigma_thesis"]) if r["sigma_thesis"] is not None else "\u2013",
                    "σ test, ours": _fmt(r["sigma"]), "μ test, ours": _fmt(r["mu"], signed=True),
                    "std(x) test, ours": _fmt(r["std"]),
                    "std(x) test, fair protocol": fair,
                    "fair − thesis protocol": _fmt(r["optimism"], signed=True) if r["optimism"] is not None
                    else "\u2013"})
    return out


def thesis_protocol_markdown(result: Mapping) -> str:
    """What the thesis-protocol table says, generated from it: the basic CNN against the thesis's number, how much
    the thesis's reporting flatters it against the fair protocol, which deep models beat it under each protocol,
    and what is still missing."""
    rows = {r["model"]: r for r in result["rows"]}
    parts = []
    b = rows.get("basic")
    nt = result.get("n_train", {})
    if b is not None:
        txt = (f"Under the thesis's protocol the basic CNN reaches σ = {b['sigma']:.3f} "
               + (f"({'the best of ' + str(b['seeds']) + ' seeds' if b['seeds'] > 1 else 'one seed'}, chosen on the "
                  "test set as the thesis chose the best of ten)")
               + (f" against the thesis's {b['sigma_thesis']:.2f} on the real simulations." if b["sigma_thesis"] else "."))
        if b["optimism"] is not None:
            size = (f": {nt['thesis']} training clusters against {nt['fair']}" if "thesis" in nt and "fair" in nt
                    else "")
            fl = result.get("floors", {})
            clusters = (f" The two protocols test on different clusters (predicting the mean training mass scores "
                        f"std(x) = {fl['thesis']:.3f} on the thesis split's test set and {fl['fair']:.3f} on the fair "
                        "one's), so part of this difference is which clusters were tested."
                        if "thesis" in fl and "fair" in fl else "")
            shown = round(b["fair_std"], 3) - round(b["std"], 3)
            txt += (f" With the same recipe, the fair protocol's test std(x) is {b['fair_std']:.3f} on average over "
                    f"seeds against {b['std']:.3f} here: the thesis's way of reporting (the epoch and the seed chosen "
                    f"on the clusters it reports, and a larger training set{size}) makes the basic CNN look "
                    f"{abs(shown):.3f} dex {'better' if shown >= 0 else 'worse'} than a fair evaluation does."
                    + clusters)
        parts.append(txt)
    deep = [r for m, r in rows.items() if m != "basic"]
    if deep and b is not None:
        beat = [r["name"] for r in deep if r["std"] < b["std"]]
        lose = [r["name"] for r in deep if r["std"] >= b["std"]]
        parts.append("Under the thesis's protocol: " + "; ".join(
            f"{r['name']} std(x) {r['std']:.3f} (σ {r['sigma']:.3f}; thesis σ {_fmt(r['sigma_thesis'])})" for r in deep)
            + f". Better than the basic CNN's best run ({b['std']:.3f}): " + (", ".join(beat) or "none")
            + (f"; not better: {', '.join(lose)}" if lose else "") + ".")
        flipped = [r["name"] for r in deep if r["fair_std"] is not None and b["fair_std"] is not None
                   and (r["std"] < b["std"]) != (r["fair_std"] < b["fair_std"])]
        if flipped:
            parts.append("The verdict changes between the two protocols for " + and_list(flipped)
                         + ": a ranking made the thesis's way would not survive a fair evaluation.")
    if result["pending"]:
        parts.append("Not run yet under the thesis's protocol: " + "; ".join(result["pending"]) + ".")
    return " ".join(parts) if parts else "No runs under the thesis's protocol in this profile."


# ---------------------------------------------------------------- cost against accuracy (results page)

def _gflops(model: str, shape: Sequence[int], folder: str | Path = "book/generated/cache") -> float:
    """GFLOPs of one forward pass per image of ``model`` at ``shape`` (:func:`cmlib.models.count_flops`), cached."""
    def compute():
        from .. import models

        return {"gflops": models.count_flops(models.build(model, tuple(shape)), tuple(shape)) / 1e9}
    return float(cached(f"gflops-{model}-{'x'.join(map(str, shape))}", compute, folder=folder)["gflops"])


def cost_accuracy_points(members: Mapping[str, PageRuns], fair: Mapping, *,
                         cache_folder: str | Path = "book/generated/cache") -> list[dict]:
    """For every model of the fair comparison: the cost of one forward pass (GFLOPs per image at the runs'
    input), the training wall time per seed (mean, with the hardware), the epochs, and the test std(x)
    (mean and standard deviation over seeds), read from the runs."""
    by_name = {member_name(m, pr): pr for m, pr in members.items()}
    out = []
    for r in fair.get("rows", []):
        pr = by_name.get(r["model"])
        if r.get("kind") != "model" or pr is None or not pr.finished:
            continue
        fin = pr.finished
        walls = [float(x.status_info.get("wall_time_s") or math.nan) for x in fin]
        out.append({"model": r["model"], "name": pr.model,
                    "gflops": _gflops(pr.model, run_input_shape(fin[0].config), cache_folder),
                    "wall_h": float(np.nanmean(walls)) / 3600.0,
                    "hardware": _hardware_of(fin),
                    "epochs": float(np.mean([x.status_info.get("epochs_completed", 0) for x in fin])),
                    "std_mean": r["mean_seeds"], "std_sd": r["std_seeds"] if r["seeds"] > 1 else 0.0,
                    "seeds": r["seeds"]})
    return out


def _times(x: float) -> str:
    """A ratio for a reader: '3.4×', '227×' ('\u2013' where it is not known, e.g. a run without a wall time)."""
    return f"{x:.{1 if x < 10 else 0}f}×" if math.isfinite(x) else "\u2013"


def cost_accuracy_rows(points: Sequence[Mapping]) -> list[dict]:
    """The cost-accuracy figure as table rows, cheapest first: what each model cost (operations per image,
    training time per seed) and what it bought (test std(x), mean over seeds), each against the basic CNN."""
    ref = next((p for p in points if p["name"] == "basic"), None)
    out = []
    for p in sorted(points, key=lambda q: q["gflops"]):
        rel = ref is not None and p is not ref
        out.append({"model": p["model"], "GFLOPs per image": f"{p['gflops']:.3g}",
                    "× basic CNN's operations": _times(p["gflops"] / ref["gflops"]) if rel else "\u2013",
                    "hours per seed": f"{p['wall_h']:.2g}" if math.isfinite(p["wall_h"]) else "\u2013",
                    "epochs": f"{p['epochs']:.0f}",
                    "× basic CNN's time": _times(p["wall_h"] / ref["wall_h"]) if rel else "\u2013",
                    "hardware": p["hardware"],
                    "test std(x), mean over seeds": f"{p['std_mean']:.3f}",
                    "minus basic CNN [dex]": f"{p['std_mean'] - ref['std_mean']:+.3f}" if rel else "\u2013"})
    return out


def cost_accuracy_markdown(points: Sequence[Mapping], fair: Mapping) -> str:
    """How to read the cost-accuracy table (:func:`cost_accuracy_rows`), or why there is none."""
    if not points:
        return "No finished fair-protocol runs to compare."
    ref = next((p for p in points if p["name"] == "basic"), None)
    best = min(points, key=lambda p: p["std_mean"])
    txt = (f"Cost and accuracy, from the runs, cheapest first. The lowest test std(x) is {best['model']}'s "
           f"({best['std_mean']:.3f} dex)")
    if ref is not None and best is not ref:
        txt += f", for {_times(best['gflops'] / ref['gflops'])} the basic CNN's operations per image"
        if math.isfinite(best["wall_h"] / ref["wall_h"]):
            txt += f" and {_times(best['wall_h'] / ref['wall_h'])} its training time"
    return txt + (". The differences here are of the means over seeds; the table of the answer above compares "
                  "the ensembles, with their intervals.")
