"""What the book's pages show: runs for a page, provenance, tables, "run it yourself".

The notebooks stay thin: they ask this module for the runs of a model under a
profile (trained, reused or stored), and for the tables and boxes that state
how every number was produced.
"""
from __future__ import annotations

import html
import math
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from . import artifacts as A
from . import metrics as M
from .errors import CmlibError
from .profiles import STORED_RUNS_DIR, RunPlan, get_profile
from .thesis import DISPLAY_NAMES, TABLE5

REPO = Path(__file__).resolve().parents[1]


def display_name(model: str) -> str:
    return DISPLAY_NAMES.get(model, model)


# ---------------------------------------------------------------- runs of a page

@dataclass
class PageRuns:
    """The runs a page shows and how they came about."""

    model: str
    label: str
    runs: list[A.Run]
    how: str                      # "stored" | "trained" | "reused" | "missing"
    plan: RunPlan
    data: str
    data_mismatch: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def finished(self) -> list[A.Run]:
        return [r for r in self.runs if r.finished and r.predictions]

    @property
    def provenance(self) -> dict:
        return A.provenance(self.runs)

    def best_index(self, by: str = "sigma", subset: str = "test") -> int:
        return M.best_run_index([r.metrics for r in self.finished], by=by, split=subset)

    @property
    def best(self) -> A.Run:
        """The best run, as the thesis picked it (lowest test sigma, eq. 4.0.1)."""
        return self.finished[self.best_index()]

    def ensemble(self, subset: str = "test") -> M.Predictions:
        return M.ensemble([r.predictions[subset] for r in self.finished])


def _stored_roots(root: Path) -> list[Path]:
    roots = [root / STORED_RUNS_DIR]
    if (REPO / STORED_RUNS_DIR).resolve() != roots[0].resolve():
        roots.append(REPO / STORED_RUNS_DIR)
    return roots


#: The configuration keys that define an experiment, compared when matching stored runs (keys
#: that only change how a run executes, such as run_eagerly, are left out on purpose).
MATCH_KEYS = ("model", "epochs", "split", "split_seed", "loss", "output", "lr", "lr_schedule", "batch_size",
              "bands", "pad", "scaling", "augment", "early_stopping", "head", "dense_units", "dropout",
              "weights", "adapter", "max_clusters", "output_bias")


def _config_matches(cfg: Mapping, want: Mapping, keys: Sequence[str]) -> bool:
    return all(cfg.get(k) == want.get(k) for k in keys)


def page_runs(model: str, profile: str = "laptop", *, experiment: str | None = None, data: str | None = None,
              epochs: int | None = None, seeds: Sequence[int] | None = None, root: str | Path = ".",
              train: bool = True, **overrides: Any) -> PageRuns:
    """The runs of ``model`` (or of a profile ``experiment``) for a page.

    With the profile's own settings, a ``stored`` plan is read from
    ``results/runs`` and a ``train`` plan is trained (or reused if complete).
    Any change of ``epochs``, ``seeds`` or training options makes it a new
    configuration, which is trained here (papermill users re-executing a page).
    """
    from . import train as T

    from .profiles import parse_seed_list

    prof = get_profile(profile)
    plan = prof.experiments[experiment] if experiment else prof.plan(model)
    seeds = parse_seed_list(seeds) if seeds is not None else None
    epochs = int(epochs) if epochs is not None else None
    model = plan.model
    root = Path(root)
    data = data or prof.data.path
    over = {k: v for k, v in overrides.items() if v is not None}
    changed = bool(over) or (epochs is not None and epochs != plan.epochs) or \
        (seeds is not None and list(seeds) != list(plan.seeds))
    eff_over = {**plan.overrides, **over}
    eff_epochs = int(epochs if epochs is not None else plan.epochs)
    eff_seeds = list(seeds if seeds is not None else plan.seeds)
    label = plan.label or display_name(model)
    if plan.source == "stored" and not changed:
        want = T.resolve_config(model, data, epochs=eff_epochs, seed=eff_seeds[0], **eff_over) \
            if Path(data).exists() else None
        keys = [k for k in MATCH_KEYS if want and k in want]
        exact, similar = [], []
        for r in A.find_runs(_stored_roots(root), model=model):
            if r.seed not in eff_seeds:
                continue
            if want and _config_matches(r.config, want, keys):
                (exact if r.config.get("data_sha256") == want["data_sha256"] else similar).append(r)
        runs = exact or similar
        seen, uniq = set(), []
        for r in runs:
            if r.seed not in seen:
                seen.add(r.seed)
                uniq.append(r)
        pr = PageRuns(model, label, uniq, "stored" if uniq else "missing", plan, data,
                      data_mismatch=bool(similar) and not exact)
        if pr.data_mismatch:
            pr.notes.append("The stored runs were made on a data file whose content hash differs from the "
                            f"current {Path(data).name}; regenerate them with `cmlib stored-runs` for an exact match.")
        if not uniq:
            pr.notes.append(f"No stored runs for {label} with this configuration were found in "
                            f"{STORED_RUNS_DIR}; create them with `cmlib stored-runs --models {model}`.")
        return pr
    if not train:
        found = []
        for s in eff_seeds:
            cfg = T.resolve_config(model, data, epochs=eff_epochs, seed=s, **eff_over)
            d = T.run_dir_for(cfg, root / plan.runs_dir)
            if (d / "status.json").exists():
                found.append(A.Run.load(d))
        return PageRuns(model, label, found, "reused" if found else "missing", plan, data)
    results = T.train_seeds(model, data, epochs=eff_epochs, seeds=eff_seeds, runs_dir=root / plan.runs_dir,
                            profile=prof.name, verbose=False, **eff_over)
    how = "reused" if all(r.reused for r in results) else "trained"
    return PageRuns(model, label, [r.run for r in results], how, plan, data)


# ---------------------------------------------------------------- rendering helpers

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
               headers: Mapping[str, str] | None = None, row_class: str = "_class") -> str:
    """A simple HTML table; a row's ``_class`` key becomes its CSS class."""
    if not rows:
        return "<p><em>(no rows)</em></p>"
    columns = list(columns or [k for k in rows[0] if not k.startswith("_")])
    headers = headers or {}
    out = ['<table class="cmlib-table"><thead><tr>']
    out += [f"<th>{html.escape(headers.get(c, c))}</th>" for c in columns]
    out.append("</tr></thead><tbody>")
    for r in rows:
        cls = r.get(row_class)
        out.append(f'<tr class="{html.escape(cls)}">' if cls else "<tr>")
        out += [f"<td>{html.escape(str(r.get(c, '')))}</td>" for c in columns]
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def provenance_markdown(pr: PageRuns) -> str:
    """A short statement of how the runs on a page were produced."""
    if not pr.runs:
        return "**No runs.** " + " ".join(pr.notes)
    p = pr.provenance
    how = {"stored": "stored run artifacts (committed in `results/runs`, made by `cmlib stored-runs`)",
           "trained": "trained while this page was built",
           "reused": "completed runs reused by this build (same configuration)",
           "missing": "missing"}[pr.how]
    eps = p["epochs_completed"]
    ep_txt = f"{min(eps)}\u2013{max(eps)}" if min(eps) != max(eps) else f"{eps[0]}"
    es = f", early stopping after {p['early_stopping']} epochs without improvement" if p["early_stopping"] else ""
    lines = [
        f"**How these numbers were produced.** {pr.label}: {how}; profile `{p['profile']}`; "
        f"{len(p['seeds'])} seed(s) {p['seeds']}; up to {p['epochs_max']} epochs{es} "
        f"(completed: {ep_txt}); split `{p['split']}`; data `{p['data_file']}` "
        f"(content hash `{p['data_sha256']}`, {p['n_clusters']} clusters); "
        f"hardware: {p['hardware']}; total training time {A.format_duration(p['wall_time_s_total'])}; "
        f"code: cmlib {p['code_version']}.",
    ]
    if any(s != "complete" for s in p["statuses"]):
        lines.append(f"Run statuses: {', '.join(p['statuses'])}.")
    lines += pr.notes
    return " ".join(lines)


def run_yourself_markdown(model: str, profile: str = "laptop", *, page: str = "architecture.ipynb",
                          plan: RunPlan | None = None, data: str | None = None) -> str:
    """The exact commands that regenerate a page and its runs."""
    prof = get_profile(profile)
    plan = plan or prof.plan(model)
    data = data or prof.data.path
    seeds = f"{min(plan.seeds)}-{max(plan.seeds)}" if len(plan.seeds) > 1 else str(plan.seeds[0])
    over = "".join(f" --{k.replace('_', '-')} {shlex.quote(str(v))}" for k, v in plan.overrides.items())
    pm = (f"papermill notebooks/{page} {model}.ipynb -p model {model} -p profile {profile} "
          f"-p epochs {plan.epochs} -p seeds \"{list(plan.seeds)}\"")
    thesis = (f"papermill notebooks/{page} {model}_thesis.ipynb -p model {model} -p profile thesis")
    return (
        ":::{admonition} Run it yourself\n:class: tip\n"
        f"Re-execute this page (trains only what is not on disk yet):\n\n```bash\n{pm}\n```\n\n"
        f"Train the runs directly:\n\n```bash\ncmlib train --model {model} --data {data} --epochs {plan.epochs} "
        f"--seeds {seeds}{over}\n```\n\n"
        f"The thesis's budget (4000 epochs \u00d7 10 seeds for the deep models; a GPU job):\n\n"
        f"```bash\n{thesis}\n```\n:::\n"
    )


def seed_rows(pr: PageRuns) -> list[dict]:
    """One row per run: status, epochs, best epoch, test and train metrics."""
    rows = []
    best = pr.best_index() if pr.finished else -1
    for i, r in enumerate(pr.finished):
        m = r.metrics
        t, tr = m.get("test", {}), m.get("train", {})
        rows.append({
            "seed": r.seed, "status": r.status, "epochs": r.status_info.get("epochs_completed"),
            "best epoch": r.status_info.get("best_epoch"),
            "val loss (best)": _fmt(m.get("loss", {}).get("val_best"), 4),
            "σ test": _fmt(t.get("sigma")), "μ test": _fmt(t.get("mu"), signed=True),
            "std(x) test": _fmt(t.get("std")), "σ train": _fmt(tr.get("sigma")),
            "μ train": _fmt(tr.get("mu"), signed=True),
            "_class": "best" if i == best else "",
        })
    return rows


def summary_rows(pr: PageRuns, *, thesis_model: str | None = None) -> list[dict]:
    """Best run (thesis choice), mean ± std over seeds, the ensemble, and the thesis's numbers."""
    rows: list[dict] = []
    fin = pr.finished
    if not fin:
        return rows
    keys = ("sigma", "mu", "std", "nmad", "outlier_frac")

    def row(name, m_test, m_train=None, cls=""):
        r = {"": name}
        for k in keys:
            r[f"{k} test"] = _fmt(m_test.get(k), signed=k == "mu") if isinstance(m_test.get(k), float) or \
                m_test.get(k) is None else m_test.get(k)
        r["sigma train"] = _fmt((m_train or {}).get("sigma")) if m_train is not None else "\u2013"
        r["mu train"] = _fmt((m_train or {}).get("mu"), signed=True) if m_train is not None else "\u2013"
        r["_class"] = cls
        return r

    b = pr.best
    rows.append(row(f"best run (seed {b.seed}, lowest test σ)", b.metrics["test"], b.metrics.get("train")))
    if len(fin) > 1:
        stats_t = M.mean_std_over_seeds([r.metrics["test"] for r in fin])
        stats_tr = M.mean_std_over_seeds([r.metrics["train"] for r in fin])
        r = {"": f"mean ± std over {len(fin)} seeds"}
        for k in keys:
            s = stats_t.get(k)
            r[f"{k} test"] = f"{s['mean']:.3f} ± {s['std']:.3f}" if s else "\u2013"
        for k, col in (("sigma", "sigma train"), ("mu", "mu train")):
            s = stats_tr.get(k)
            r[col] = f"{s['mean']:.3f} ± {s['std']:.3f}" if s else "\u2013"
        rows.append(r)
        ens_t = M.point_metrics(pr.ensemble("test").pred, pr.ensemble("test").true)
        ens_tr = M.point_metrics(pr.ensemble("train").pred, pr.ensemble("train").true)
        rows.append(row(f"ensemble of the {len(fin)} seeds", ens_t, ens_tr))
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


def require_runs(pr: PageRuns) -> None:
    """Fail loudly (the book build stops) if a page has nothing to show."""
    if not pr.finished:
        raise CmlibError(f"no finished runs for {pr.label}: " + " ".join(pr.notes))


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
    from . import plots
    from .schema import band_label

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
    from . import plots

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
    from . import classical
    from . import data as D

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
    """Thesis Table 5, ours with the thesis's value in brackets: best run per model, plus the classical estimator."""
    def both(ours, theirs, signed=False, digits=3):
        t = _fmt(theirs, digits, signed) if theirs is not None else "\u2013"
        return f"{_fmt(ours, digits, signed)} ({t})"

    rows = []
    for m, pr in pages.items():
        t5 = TABLE5.get(m, {})
        if not pr.finished:
            rows.append({"model": display_name(m), "runs": "no runs"})
            continue
        b = pr.best
        met = b.metrics
        loss = met.get("loss", {})
        basic_like = b.config.get("early_stopping", 0) > 0
        tr_loss = loss.get("train_at_best") if basic_like else loss.get("train_last")
        va_loss = loss.get("val_best") if basic_like else loss.get("val_last")
        eps = b.status_info.get("epochs_completed")
        rows.append({
            "model": display_name(m),
            "runs": f"best of {len(pr.finished)}, {eps} ep.",
            "train loss": _fmt(tr_loss, 4) + ("\u2020" if basic_like else ""),
            "val. loss": _fmt(va_loss, 4) + ("\u2020" if basic_like else ""),
            "σ test": both(met["test"].get("sigma"), t5.get("sigma_test")),
            "μ test": both(met["test"].get("mu"), t5.get("mu_test"), signed=True),
            "σ train": both(met["train"].get("sigma"), t5.get("sigma_train")),
            "μ train": both(met["train"].get("mu"), t5.get("mu_train"), signed=True),
            "std(x) test": _fmt(met["test"].get("std")),
        })
    if classical:
        t = M.point_metrics(classical["test"].pred, classical["test"].true)
        tr = M.point_metrics(classical["train"].pred, classical["train"].true)
        rows.append({"model": "classical estimator (L\u2013M inversion)", "runs": "no training",
                     "train loss": _fmt(tr["rmse"] ** 2, 4), "val. loss": _fmt(t["rmse"] ** 2, 4),
                     "σ test": _fmt(t["sigma"]), "μ test": _fmt(t["mu"], signed=True),
                     "σ train": _fmt(tr["sigma"]), "μ train": _fmt(tr["mu"], signed=True),
                     "std(x) test": _fmt(t["std"]), "_class": "classical"})
    return rows
