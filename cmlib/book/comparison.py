"""The models against each other, as the results page shows them: the fair protocol (one train/validation/test
split, every model against the basic CNN on the same test clusters, the answer to the thesis's question), the
thesis's own protocol beside it (Table 5 and the optimism of picking the best run on the test set), accuracy in
bins of mass and redshift, the reference estimators, and cost against accuracy.

Everything here reads runs (:mod:`cmlib.book.pages` finds them) and never trains.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .. import metrics as M
from ..errors import CmlibError
from . import runs as R
from .pages import (FAIR_SPLIT, REDSHIFT_ONLY, PageRuns, and_list, basic_on_same_split, cached, collapsed_after_best,
                    counted, fair_basic, find_page_runs, fmt, get_spec_family, hardware_of, history_references, pm,
                    run_input_shape, run_precision, seeds_text, seeds_text_of, split_of, stop_kind, verdict)
from .profiles import FAIR_EPOCHS, FAIR_REMEDIES, REMEDY_INFIX, display_name, get_profile, is_remedy_key, remedy_keys
from .thesis import TABLE5


__all__ = ["classical_predictions", "table5_rows", "fair_summary_rows", "findings_paragraph", "best_deep_text",
           "thesis_protocol_answer",
           "budgets_markdown", "reference_estimators", "references_markdown", "reference_lines", "test_sets",
           "fair_binned_sets", "mean_predictor_note", "fair_classical", "fair_members", "member_name",
           "fair_comparison", "fair_table_rows", "fair_answer", "fair_classical_cached", "uncertainty_rows",
           "thesis_protocol_members", "thesis_protocol_comparison", "fair_bar_sets", "thesis_protocol_rows",
           "thesis_protocol_markdown", "cost_accuracy_points", "cost_accuracy_rows", "cost_accuracy_markdown",
           "REFERENCES_FILE", "REFERENCE_LINES"]


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


def table5_rows(pages: Mapping[str, PageRuns], classical: Mapping[str, M.Predictions] | None = None, *,
                proto: Mapping | None = None) -> list[dict]:
    """Thesis Table 5, ours with the thesis's value in brackets: best run per model, whether it learned,
    the "predict the training mean" estimator and the classical estimator.

    With ``proto`` (:func:`thesis_protocol_comparison`), a model whose page runs use another protocol than its
    run trained the thesis's way says in its "learned?" cell what that run did (the thesis's Table 5 reports
    that protocol; *Table 5 the thesis's way* shows the run)."""
    proto_by = {r["model"]: r for r in (proto or {}).get("rows", [])}
    def both(ours, theirs, signed=False, digits=3):
        t = fmt(theirs, digits, signed) if theirs is not None else "\u2013"
        return f"{fmt(ours, digits, signed)} ({t})"

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
        learned = "yes" if v["learned"] else "did not learn"
        tp = proto_by.get(m)
        if tp is not None and split_of(pr) != "thesis":
            learned += (f"; the thesis's protocol: {'yes' if tp['learned'] else 'no'}, std(x) {fmt(tp['std'])} dex "
                        + (f"at epoch {tp['best_epoch']}, then one mass for every cluster from epoch "
                           f"{tp['collapsed_at']} " if tp.get("collapsed_at") else "")
                        + "(Table 5 the thesis's way)")
        rows.append({
            "model": display_name(m),
            "runs": (f"best of {n}, " if n > 1 else "1 run, ") + f"{eps} ep.",
            "learned?": learned,
            "train loss": fmt(tr_loss, 4) + ("\u2020" if basic_like else ""),
            "val. loss": fmt(va_loss, 4) + ("\u2020" if basic_like else ""),
            "σ test": both(met["test"].get("sigma"), t5.get("sigma_test")),
            "μ test": both(met["test"].get("mu"), t5.get("mu_test"), signed=True),
            "σ train": both(met["train"].get("sigma"), t5.get("sigma_train")),
            "μ train": both(met["train"].get("mu"), t5.get("mu_train"), signed=True),
            "std(x) test": fmt(met["test"].get("std")),
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
                     "train loss": fmt(tr["rmse"] ** 2, 4), "val. loss": fmt(t["rmse"] ** 2, 4),
                     "σ test": fmt(t["sigma"]), "μ test": fmt(t["mu"], signed=True),
                     "σ train": fmt(tr["sigma"]), "μ train": fmt(tr["mu"], signed=True),
                     "std(x) test": fmt(t["std"]), "_class": cls})
    return rows


#: The outlier column of :func:`fair_summary_rows`: of the ensemble where there are several seeds.
OUTLIERS = "outliers > 0.3 dex (ensemble, else the run)"


def fair_summary_rows(pages: Mapping[str, PageRuns], classical: Mapping[str, M.Predictions] | None = None) -> list[dict]:
    """Every model's best run next to the mean over seeds and the ensemble (spread only with several seeds), with
    the split its page's runs were tested on (the references: the first model's, where they are computed)."""
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
        rows.append({"model": display_name(m), "split": split_of(p), "seeds": len(p.finished),
                     "σ test, best run": fmt(best["sigma"]),
                     "σ test, mean ± std": pm(st, "sigma") if several else "\u2013 (one run)",
                     "σ test, ensemble": fmt(ens["sigma"]) if several else "\u2013",
                     "std(x) test, mean": fmt(st["std"]["mean"]),
                     "std(x) test, ensemble": fmt(ens["std"]) if several else "\u2013",
                     OUTLIERS: f"{(ens if several else best)['outlier_frac']:.1%}",
                     "_class": "" if verdict(p)["learned"] else "not-learned"})
    refs = []
    if base is not None:
        refs.append(("predict the training mean", base.mean_predictor("test"), "baseline"))
    if classical:
        refs.append(("classical estimator", classical["test"], "classical"))
    for name, pt, cls in refs:
        t = M.point_metrics(pt.pred, pt.true)
        rows.append({"model": name, "split": split_of(base), "seeds": "\u2013", "σ test, best run": fmt(t["sigma"]),
                     "σ test, mean ± std": "\u2013", "σ test, ensemble": "\u2013", "std(x) test, mean": fmt(t["std"]),
                     "std(x) test, ensemble": "\u2013", OUTLIERS: f"{t['outlier_frac']:.1%}",
                     "_class": cls})
    return rows


def _thesis_best_deep() -> tuple[str, float]:
    deep = {m: v["sigma_test"] for m, v in TABLE5.items() if m != "basic"}
    m = min(deep, key=deep.get)
    return m, deep[m]


def _protocol_words(pr: PageRuns) -> str:
    """The protocol of a model's runs in a few words, from their split."""
    split = split_of(pr)
    return {"thesis": "the thesis's protocol (its split, the test set doubling as validation set)",
            "train-val-test": "the fair protocol (a train/validation/test split)"}.get(split, f"the '{split}' split")


def findings_paragraph(pages: Mapping[str, PageRuns], profile: str, fair: Mapping | None = None,
                       proto: Mapping | None = None) -> str:
    """The answer in short: a paragraph on what the thesis found and what this build's runs find (regenerated).

    With ``fair`` (:func:`fair_comparison`) the answer under the fair protocol follows it (:func:`fair_answer`:
    a sentence and a list); with ``proto`` (:func:`thesis_protocol_comparison`) what the deep models trained the
    thesis's way did (:func:`thesis_protocol_answer`)."""
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
    floor = (f"predicting the mean training mass for every cluster scores σ = {base['sigma']:.3f} dex "
             f"(std(x) = {base['std']:.3f} dex) on {'the same' if basic else 'its'} test clusters: the score of a "
             "model that ignores the images and the redshift")
    if basic:
        bm = basic.best.metrics["test"]
        parts.append(f"under {_protocol_words(basic)}, the basic CNN reaches σ = {bm['sigma']:.3f} dex "
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
    more = thesis_protocol_answer(proto) if proto is not None else ""
    return text + ("\n\n" + more if more else "")


def best_deep_text(pages: Mapping[str, PageRuns], profile: str, root: str | Path = ".", data: str | None = None
                   ) -> tuple[str | None, PageRuns | None, str]:
    """The deep model this build compares with the basic CNN (best test σ among those that learned, else among
    all), the basic CNN's runs on that model's split (:func:`cmlib.book.pages.basic_on_same_split`) and a sentence
    on the two. ``pages`` may hold remedies under their keys (``<model>_remedy_<slug>``, as
    :func:`fair_members` does): a remedy that learned counts as a model that learned, under its own name."""
    deep = {m: p for m, p in pages.items() if p.finished and get_spec_family(p.model) not in ("basic", "baseline")}
    if not deep:
        return None, None, "No deep-model runs are available in this build."
    learned = {m: p for m, p in deep.items() if verdict(p)["learned"]}
    pool = learned or deep
    best = min(pool, key=lambda m: pool[m].best.metrics["test"]["sigma"])
    name = member_name(best, pool[best])
    ref = basic_on_same_split(pool[best], profile, root=root, data=data)
    if ref is None:
        return None, None, (f"The basic CNN has no finished runs on {name}'s split "
                            f"({split_of(pool[best])}), so the two cannot be compared on the same clusters yet.")
    s, sb = pool[best].best.metrics["test"]["sigma"], ref.best.metrics["test"]["sigma"]
    tm, ts = _thesis_best_deep()
    if not learned:
        note = " None of the deep models learned from the images, so this comparison shows a model that has not."
    else:
        plain = [m for m in deep if not is_remedy_key(m)]
        if plain and not any(m in learned for m in plain):
            note = (f" None of the deep models learned from the images with the common recipe; of the remedies "
                    f"tried, {and_list([member_name(m, learned[m]) for m in learned])} "
                    f"{'does' if len(learned) == 1 else 'do'}.")
        else:
            note = ""
    return best, ref, (f"The deep model with the lowest test σ{' among those that learned' if learned else ''} is "
                       f"**{name}**: σ = {s:.3f} against {sb:.3f} for the basic CNN, both on the "
                       f"{split_of(ref)} split (the best of {name}'s {counted(len(pool[best].finished), 'run')} and "
                       f"of the basic CNN's {counted(len(ref.finished), 'run')} by test σ, as the thesis chose; not "
                       f"the mean over seeds of the tables above). The thesis's was "
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


def fair_bar_sets(members: Mapping[str, PageRuns], fair: Mapping) -> tuple[dict[str, M.Predictions], dict[str, str],
                                                                           str]:
    """What the results page's bar chart of test std(x) draws, from the fair comparison (:func:`fair_comparison`),
    so every bar is on the same test clusters: each model's (and remedy's) ensemble of seeds, marked where it did not
    learn, and every reference row of the comparison (the redshift alone, the mean training mass, the fair
    classical estimators), in the comparison's order (best first).  Returns ``(sets, colors, note)``; empty sets
    where the comparison has no rows (then :func:`test_sets` draws each page's best run)."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    from .. import plots

    preds, rows = fair.get("predictions", {}), fair.get("rows", [])
    model_of = {member_name(k, pr): pr.model for k, pr in members.items()}
    sets, colors = {}, {}
    # a model keeps its own colour; a remedy beside it gets one of another palette
    used = {to_hex(plots.color(model_of.get(r["model"], ""))) for r in rows
            if r.get("kind") == "model" and not r.get("remedy")} | {to_hex(c) for c in plots.REFERENCE_COLORS.values()}
    spare = iter([to_hex(c) for c in colormaps["tab20b"].colors] * 2)     # not in the models' (tab20) palette
    for r in rows:
        name = r["model"]
        if name not in preds:
            continue
        if r.get("kind") == "model":
            label = (name + (f" ({r['seeds']} seeds)" if r.get("seeds", 1) > 1 else "")
                     + (" (did not learn)" if r.get("learned") is False else ""))
            c = plots.color(model_of.get(name, name))
            if r.get("remedy"):
                c = next(s for s in spare if s not in used)
                used.add(c)
        else:
            label = name
            c = plots.color("redshift" if name == REDSHIFT_ONLY else "mean" if "mean" in name else "classical")
        used.add(c)
        sets[label], colors[label] = preds[name], c
    note = (f"Every bar is on the same {fair.get('n_test', 0)} test clusters of the fair protocol: a model's bar is "
            "the ensemble of its seeds." if sets else "")
    return sets, colors, note


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
    unknown = [name for name in references if name not in preds]
    if unknown:
        raise ValueError(f"fair_binned_sets: no such reference in the fair comparison: {', '.join(unknown)}; it "
                         f"compared: {', '.join(n for n in preds if rows.get(n, {}).get('kind') == 'reference')}. "
                         "Pass the reference to fair_comparison first.")
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
        span = f"{lo:g}" if lo == hi else f"{lo:g}\u2013{hi:g}"
        txt += (f" The thesis reports σ = {span} for {and_list([display_name(k) for k in close])}: within "
                "0.03 of a model that ignores the images"
                + (", which fits the thesis's own remark that VGG16's predictions form \"horizontal lines\" (many "
                   "clusters given the same mass; Sect. 4.2.1)" if "vgg16" in close else "")
                + " (the thesis's data are not ours, so this is a hint, not a proof).")
    return txt


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
    basic = fair_basic(profile, root=root, data=data)
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


def member_name(key: str, pr: PageRuns | None = None, note: str = "") -> str:
    """The name of a fair-protocol member (:func:`fair_members`) in tables and text: the model's name, or
    for a remedy 'VGG16 (remedy: lr 1e-4)'; ``note`` goes into the brackets ('ResNet152V2 (1 of 3 finished)',
    'VGG16 (remedy: lr 1e-4; 2 of 3 finished)')."""
    if is_remedy_key(key):
        model = key.split(REMEDY_INFIX)[0]
        change = (pr.label if pr is not None and pr.label else "").split(" (")[0] or key.split(REMEDY_INFIX)[1]
        return f"{display_name(model)} (remedy: {change}" + (f"; {note})" if note else ")")
    return display_name(key) + (f" ({note})" if note else "")


def fair_comparison(members: Mapping[str, PageRuns], references: Mapping[str, M.Predictions] = (), *,
                    n_boot: int = 2000) -> dict:
    """Every model under the fair protocol against the basic CNN on the same test clusters.

    Rows best first (:func:`cmlib.compare.ranking` on test std(x) of the seed ensembles): seeds,
    mean +- std over seeds, the ensemble, the paired difference to the basic CNN with its 95 %
    bootstrap interval and verdict, and whether the model learned at all (vs predicting the mean
    training mass and the redshift alone; ``seeds_not_learned``: the seeds that did not, each judged alone).
    ``references`` (name -> test predictions, e.g. the classical estimator) are compared the same way.  Returns ``rows``, ``pending`` (models whose runs are not finished),
    ``still_seeds`` (models with fewer finished seeds than their plan asks for, named with their count:
    'ResNet152V2 (1 of 3 finished)'),
    ``n_test`` and ``predictions`` (row name -> the test predictions compared: a model's seed ensemble, or
    the reference's own).
    """
    from .. import compare

    # runs made on another version of the data file are never compared: their test clusters are other clusters
    have = {m: pr for m, pr in members.items() if pr.usable}
    pending = [member_name(m, pr) + (" (its stored runs were made on another version of the data file)"
                                  if pr.finished and pr.data_mismatch else "")
               for m, pr in members.items() if m not in have]
    short = {m: (len(pr.finished), len(pr.request.seeds)) for m, pr in have.items()
             if len(pr.finished) < len(pr.request.seeds)}
    still = [member_name(m, have[m], f"{done} of {planned} finished") for m, (done, planned) in short.items()]
    if "basic" not in have:
        return {"rows": [], "pending": pending, "still_seeds": still, "n_test": 0}
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
    # an ensemble can learn where one of its seeds did not: those seeds are named
    lost = {member_name(m, pr): [r.seed for r in pr.finished if len(pr.finished) > 1 and not M.learning_verdict(
        r.predictions["test"], mean_pred, redshift_reference=zonly)["learned"]] for m, pr in have.items()}
    vs_z = {name: compare.paired_difference(p, zonly, n_boot=n_boot) for name, p in ens.items()} if zonly else {}
    epochs = {member_name(m, pr): sorted({r.status_info.get("epochs_completed", 0) for r in pr.finished})
              for m, pr in have.items()}
    remedies = {member_name(m, pr): pr.model for m, pr in have.items() if is_remedy_key(m)}
    precisions = {member_name(m, pr): sorted({run_precision(r) for r in pr.finished})
                  for m, pr in have.items()}
    for r in rows:
        v = learned.get(r["model"])
        r["learned"] = None if v is None else v["learned"]
        r["learned_reason"] = "" if v is None else v["reason"]
        r["learned_short"] = "" if v is None else v["short"]
        r["learned_rule"] = "" if v is None else v["rule"]
        r["epochs"] = epochs.get(r["model"], [])
        r["seeds_not_learned"] = lost.get(r["model"], [])
        r["kind"] = "model" if r["model"] in learned else "reference"
        r["remedy"] = r["model"] in remedies
        r["remedy_of"] = remedies.get(r["model"])      # the model a remedy changes the recipe of, else None
        r["precisions"] = precisions.get(r["model"], [])
        d = vs_z.get(r["model"])
        r["vs_redshift"] = None if d is None else {"diff": d.diff, "ci95": list(d.ci95), "verdict": d.verdict}
    predictions = {**ens, **{name: p[0] for name, p in preds.items() if name not in ens}}
    return {"rows": rows, "pending": pending, "still_seeds": still,
            "n_test": int(mean_pred.true.size),
            "predictions": predictions}


def _seeds_value(r: Mapping) -> str:
    """A comparison row's test std(x) over seeds: '0.239 ± 0.002', or '0.300' for one seed (no fake spread)."""
    return seeds_text(r["mean_seeds"], r["std_seeds"], r["seeds"])


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
                    "_class": "" if learned in (None, True) else "not-learned"})
    return out


def _still_planned(result: Mapping) -> list[str]:
    """What the fair comparison still waits for: the members without finished runs, then the seeds still to run
    of those that have some ('the other seeds of ResNet152V2 (1 of 3 finished)')."""
    more = list(result.get("still_seeds", []))
    return list(result["pending"]) + ([f"the other seeds of {and_list(more)}"] if more else [])


def fair_answer(result: Mapping) -> str:
    """The answer to the thesis's question, generated from the fair comparison: one sentence on the protocol
    and the basic CNN, then a list that names every model once, in the group its verdict puts it in (better
    than the basic CNN, cannot be told apart, worse though it reads the images, did not learn from the images,
    still in the compute plan), with its test std(x) over seeds and its paired difference to the basic CNN."""
    if not result["rows"]:
        txt = ("**Under the fair protocol** no comparison is possible yet: the basic CNN's train-val-test runs are "
               "not on disk.")
        planned = _still_planned(result)
        return txt + (f" Still in the compute plan: {'; '.join(planned)}." if planned else "")
    n = result["n_test"]
    models = [r for r in result["rows"] if r["kind"] == "model"]
    rows = [r for r in models if r["verdict"] != "reference"]
    ref = next((r for r in models if r["verdict"] == "reference"), None)

    def entry(r: Mapping, why: bool = False) -> str:
        """'VGG16 0.300 (1 seed; predicts from the redshift alone), +0.072 [+0.056, +0.088]'; a model judged on the
        margin by which it beats the redshift alone gets its difference to it (and the ensemble's value, which the
        heading's threshold judged): '(2 seeds; not 5% better than the redshift alone (its ensemble 0.286): -0.015
        [-0.031, +0.002])'."""
        value = _seeds_value(r)
        short = r.get("learned_short") or ""
        vz = r.get("vs_redshift")
        if why and vz and r.get("learned_rule") == "redshift margin":
            # the value the threshold (in the heading) was applied to: the ensemble, where there are several seeds,
            # so that a difference of exactly 5 % at three decimals does not read as a contradiction
            ens = f" (its ensemble {r['ensemble']:.3f})" if r["seeds"] > 1 else ""
            shown = _shown_difference(r["ensemble"], r["ensemble"] - vz["diff"])   # as read from the numbers shown
            short += f"{ens}: {shown:+.3f} [{vz['ci95'][0]:+.3f}, {vz['ci95'][1]:+.3f}]"
        lost = r.get("seeds_not_learned") or []
        lost_words = (f"{'seed' if len(lost) == 1 else 'seeds'} {and_list([str(s) for s in lost])} did not learn"
                      if lost and r.get("learned") else "")      # the ensemble learned, not every seed
        notes = [counted(r["seeds"], "seed"), lost_words, short if why else ""]
        notes = [n for n in notes if n]
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
                 "interval (positive: worse); within a group, ordered by the ensemble's test std(x), best first.")
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
        ("Did not learn from the images (" + (f"the redshift alone scores {z['ensemble']:.3f} dex, and a model must do "
                                               f"{M.MEAN_PREDICTOR_MARGIN:.0%} better, "
                                               f"{(1.0 - M.MEAN_PREDICTOR_MARGIN) * z['ensemble']:.3f} dex or less, "
                                               "to count as reading the images; "
                                               if z is not None else "")
         + "each model's page shows the diagnosis)",
         [entry(r, why=True) for r in rows if r.get("learned") is False], False),
        ("Still in the compute plan", _still_planned(result), False),
    ]
    items = [f"- **{head}:** " + ("; ".join(found) if found else "none") + "."
             for head, found, always in groups if found or (always and rows)]
    caveat = _seed_caveat(rows, n)
    if caveat:
        items.append(f"- **What the intervals leave out:** {caveat}")
    return lead + ("\n\n" + "\n".join(items) if items else "")


def _seed_caveat(rows: Sequence[Mapping], n_test: int) -> str:
    """Where some rows rest on one seed: the bootstrap resamples the test clusters, not the training, so a one-seed
    row's interval leaves out how much another seed would change it; the largest spread over seeds among the rows
    with several says how much that can be.  Empty where every row has several seeds."""
    one = [r["model"] for r in rows if r["seeds"] == 1]
    spread = [(float(r["std_seeds"]), r["model"]) for r in rows
              if r["seeds"] > 1 and math.isfinite(float(r.get("std_seeds", math.nan)))]
    if not one:
        return ""
    txt = (f"each interval resamples the {n_test} test clusters with both ensembles held fixed, so none includes "
           "how much training with other seeds would change the result; that matters most for the "
           f"{counted(len(one), 'row')} resting on one seed")
    if spread:
        s, m = max(spread)
        txt += f" (over seeds, the standard deviation reaches {s:.3f} dex here, for {m})"
    return txt + "."


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
        rows.append({"model": label, "split": split_of(pr), "seeds": len(pr.finished),
                     "test std(x) [dex]": seeds_text_of(stds, ".3f"),
                     "median σ_pred [dex]": seeds_text_of([u["sigma_pred_median"] for u in us], ".3f"),
                     "±1σ coverage": seeds_text_of([u["coverage_1sigma"] for u in us], ".0%"),
                     "±2σ coverage": seeds_text_of([u["coverage_2sigma"] for u in us], ".0%"),
                     "pull std": seeds_text_of([u["pull_std"] for u in us], ".2f")})
    return rows


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
                               basic_runs: PageRuns | None = None, root: str | Path = ".") -> dict:
    """Thesis Table 5 reproduced under the thesis's protocol, beside the thesis's numbers and the fair protocol.

    For each model: the run the thesis would report (the lowest test sigma of its seeds, the epoch chosen on
    the test set, because under the thesis split the validation set *is* the test set), its test sigma
    (eq. 4.0.1) beside thesis Table 5, its test std(x), and the same model's std(x) under the fair protocol
    (mean over seeds, from :func:`fair_comparison`).  ``optimism`` is the fair std(x) minus the
    thesis-protocol one: how much better the thesis's way of reporting makes a model look (it also contains
    the larger training set of the thesis split and, for the deep models, the different recipe and input).

    ``basic_runs`` (the basic CNN's fair-protocol runs) gives the fair split's training-set size.
    Returns ``{"rows": [...], "pending": [text, ...], "pending_models": [model, ...], "n_train": {"thesis": n,
    "fair": n}}`` (``pending_models``: the models of ``pending``, in its order).
    """
    fair_by = {r["model"]: r for r in (fair or {}).get("rows", []) if r.get("kind") == "model"}
    rows, pending, pending_models, n_train, floors = [], [], [], {}, {}
    for m, pr in members.items():
        name = display_name(m)
        if not pr.usable:
            why = ("its runs were made on another version of the data file" if pr.data_mismatch
                   else R.seed_progress(pr.request, Path(root)))
            pending.append(f"{name} ({why})")
            pending_models.append(m)
            continue
        best = pr.best
        met = best.metrics["test"]
        n_train.setdefault("thesis", int(best.predictions["train"].true.size))
        floors.setdefault("thesis", _floor_std(best))
        f = fair_by.get(name)
        row = {"model": m, "name": name, "seeds": len(pr.finished),
               "epochs": best.status_info.get("epochs_completed"), "best_epoch": best.status_info.get("best_epoch"),
               "stopped": stop_kind(best), "collapsed_at": collapsed_after_best(best),
               "sigma": met.get("sigma"), "mu": met.get("mu"), "std": met.get("std"),
               # every seed's std(x) under this protocol: the reported (best) one against their mean is the seed pick
               "std_mean_seeds": float(np.mean([r.metrics["test"]["std"] for r in pr.finished])),
               "sigma_thesis": TABLE5.get(m, {}).get("sigma_test"),
               "fair_std": None if f is None else f["mean_seeds"],
               "fair_std_sd": None if f is None or f["seeds"] < 2 else f["std_seeds"],
               "fair_seeds": 0 if f is None else f["seeds"]}
        row["optimism"] = None if row["fair_std"] is None else row["fair_std"] - row["std"]
        # did the reported run learn from the images? the same rule as the fair table, on this split's clusters
        p = best.predictions
        v = M.judge_learning(p["train"], p["test"])     # without stored z: the mean-mass floor only
        worked = {k: x for k, x in fair_by.items() if x.get("remedy_of") == m and x.get("learned") is True}
        row.update(learned=v["learned"], learned_short=v["short"], redshift_std=v["redshift_std"],
                   fair_precisions=None if f is None else f.get("precisions"),
                   fair_learned=None if f is None else f.get("learned"),
                   fair_remedies_learned=list(worked),
                   fair_remedies_seeds={k: x["seeds"] for k, x in worked.items()},
                   # the arithmetic of those remedies' runs where it differs from the recipe's own runs'
                   fair_remedies_precision={k: x["precisions"] for k, x in worked.items()
                                            if f is not None and x.get("precisions") != f.get("precisions")})
        rows.append(row)
    if basic_runs is not None and basic_runs.finished:
        n_train["fair"] = int(basic_runs.finished[0].predictions["train"].true.size)
        floors["fair"] = _floor_std(basic_runs.finished[0])
    return {"rows": rows, "pending": pending, "pending_models": pending_models, "n_train": n_train,
            "floors": floors}


def thesis_protocol_answer(result: Mapping) -> str:
    """The deep models trained the thesis's way, for the answer in short (:func:`findings_paragraph`): for each,
    whether it learned from the images on the thesis split's test clusters, its std(x) beside the redshift-only
    fit's and the basic CNN's there, and a model whose verdict under the fair protocol's own recipe differs (with
    the fair remedies that made it learn, if any); empty without deep-model rows."""
    rows = result.get("rows", [])
    deep = [r for r in rows if r["model"] != "basic"]
    if not deep:
        return ""
    b = next((r for r in rows if r["model"] == "basic"), None)

    def entry(r: Mapping) -> str:
        state = ("learns from the images" if r["learned"] else
                 f"does not learn from the images ({r['learned_short']})")
        refs = ([f"the redshift alone's {r['redshift_std']:.3f}"] if np.isfinite(r.get("redshift_std", math.nan))
                else []) + ([f"the basic CNN's best run's {b['std']:.3f}"] if b is not None else [])
        when = (f" at epoch {r['best_epoch']} of {r['epochs']}" if r.get("best_epoch") and r.get("epochs") else "")
        collapse = (f"; from epoch {r['collapsed_at']} on it predicted one mass for every cluster, so at its last "
                    "epoch, which thesis Table 5 would report, it scores like predicting one mass: this number rests on "
                    "the epoch picked on the test clusters" if r.get("collapsed_at") else "")
        return (f"{r['name']} {state}: std(x) = {r['std']:.3f} dex{when} ({r['stopped']})"
                + (f", against {and_list(refs)} on the same clusters" if refs else "") + collapse)

    txt = ("**Under the thesis's own protocol** (its split with the test set as validation set, 71 × 71 input, "
           "Adam at a constant 10⁻³, the best epoch picked on the test clusters, so optimistic: *Table 5 the "
           "thesis's way* on the results page): " + "; ".join(entry(r) for r in deep) + ".")
    for r in deep:
        if r["learned"] and r.get("fair_learned") is False:
            fixed = r.get("fair_remedies_learned") or []
            ran = (f" (until epoch {r['best_epoch']} of {r['epochs']})" if r.get("collapsed_at") and r.get("best_epoch")
                   else f" ({r['epochs']} epochs)" if r.get("epochs") else "")
            # a remedy is the fair recipe with one change: if it learns, that change is what the recipe lacked
            seeds = r.get("fair_remedies_seeds") or {}
            on = f" (on {counted(min(seeds.values()), 'seed')} so far)" if seeds and max(seeds.values()) == 1 else ""
            txt += (f" {r['name']} learns here{ran} but not with the fair protocol's recipe (at most {FAIR_EPOCHS} "
                    "epochs)"
                    + (f". Under the fair protocol {and_list(fixed)} does{on}: that recipe with one change"
                       + _precision_aside(r) + ". So that change, not the protocol, is what the fair recipe lacked"
                       if fixed else
                       "; its page's *Remedies* change that recipe one setting at a time" if r["model"] in FAIR_REMEDIES
                       else "") + ".")
        elif not r["learned"] and r.get("fair_learned") is True:
            txt += f" {r['name']} learns under the fair protocol but not here."
    pending = [t for t, m in zip(result.get("pending", []), result.get("pending_models", []), strict=True)
               if m != "basic"]
    if pending:
        txt += " Not run yet this way: " + "; ".join(pending) + "."
    return txt


def _precision_aside(row: Mapping) -> str:
    """' (its runs in float32, the recipe's in bfloat16: round-off only)' where the remedies that made a model learn
    (a :func:`thesis_protocol_comparison` row) also used another arithmetic than its fair runs; empty otherwise."""
    diff = row.get("fair_remedies_precision") or {}
    if not diff:
        return ""
    mine = sorted({p for ps in diff.values() for p in ps})
    return (f" (the remedy ran in {' and '.join(mine)}, the recipe's own runs in "
            f"{' and '.join(row.get('fair_precisions') or ['another'])}: a difference of round-off only)")


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
            sd = math.nan if r["fair_std_sd"] is None else r["fair_std_sd"]
            fair = f"{seeds_text(r['fair_std'], sd, r['fair_seeds'])} ({counted(r['fair_seeds'], 'seed')})"
        out.append({"model": r["name"],
                    "reported run": (f"best of {r['seeds']} seeds" if r["seeds"] > 1 else "1 seed")
                    + f", epoch {r['best_epoch']} of {r['epochs']} ({r['stopped']}"
                    + (f"; one mass for every cluster from epoch {r['collapsed_at']} on" if r.get("collapsed_at") else "")
                    + ")",
                    "σ test, thesis": fmt(r["sigma_thesis"]) if r["sigma_thesis"] is not None else "\u2013",
                    "σ test, ours": fmt(r["sigma"]), "μ test, ours": fmt(r["mu"], signed=True),
                    "std(x) test, ours": fmt(r["std"]),
                    "std(x) test, fair protocol": fair,
                    "fair − thesis protocol": fmt(_shown_difference(r["fair_std"], r["std"]), signed=True)
                    if r["optimism"] is not None else "\u2013",
                    "learned from the images?": "yes" if r["learned"] else f"no: {r['learned_short']}",
                    "_class": "" if r["learned"] else "not-learned"})
    return out


def thesis_protocol_curves(members: Mapping[str, PageRuns]) -> dict:
    """The validation (= test) loss of every finished thesis-protocol run (:func:`thesis_protocol_members`), one
    panel per model and one line per seed, with what the mean and the redshift alone score on those clusters
    (:func:`~cmlib.book.pages.history_references`), for :func:`cmlib.plots.plot_validation_curves`:
    ``{"panels": {name: {"seed s": run}}, "floors": {name: [...]}, "text": caption}``.  Only MSE runs (the losses
    must be in dex²) made on this data file; no panels at all until a deep model has such a run (the basic CNN's
    page shows its own)."""
    panels, floors = {}, {}
    for m, pr in members.items():
        fin = [r for r in pr.finished if r.config.get("loss", "mse") == "mse"] if not pr.data_mismatch else []
        if not fin:
            continue
        name = display_name(m)
        panels[name] = {f"seed {r.seed}": r for r in fin}
        floors[name] = history_references(fin[0])
    if not any(m != "basic" and display_name(m) in panels for m in members):
        return {"panels": {}, "floors": {}, "text": ""}
    text = ("The validation loss of each of these runs, per epoch – on the thesis's split that is the loss on the test "
            "clusters – " + ("against what predicting the mean training mass and predicting from the redshift alone "
                            "score there (dashed): a run has read the images only where its curve goes clearly below "
                            "the second line." if any(len(f) == 2 for f in floors.values()) else
                            "against what predicting the mean training mass scores there (dashed)."))
    return {"panels": panels, "floors": floors, "text": text}


def _shown_difference(a: float, b: float, digits: int = 3) -> float:
    """``a - b`` as a reader computes it from the two numbers shown (each rounded to ``digits``), so that a table's
    difference column and the text agree with the values printed beside them."""
    return round(round(a, digits) - round(b, digits), digits)


def _seed_pick_part(b: Mapping) -> str:
    """How much of a thesis-protocol row's optimism is the seed picked on the test set: ' Of this, 0.004 dex is the
    seed pick: its 3 seeds average 0.231 here; the rest, 0.008 dex, comes with the protocol (the epoch chosen on
    the test clusters, the training set, the clusters tested).'  Empty for one seed."""
    mean = b.get("std_mean_seeds")
    if b.get("seeds", 1) < 2 or mean is None or b.get("fair_std") is None:
        return ""
    pick, rest = _shown_difference(mean, b["std"]), _shown_difference(b["fair_std"], mean)
    what = "(the epoch chosen on the test clusters, the training set, the clusters tested)"
    return (f" Of this, {pick:.3f} dex is the seed pick: its {b['seeds']} seeds average {mean:.3f} here; "
            + (f"the rest, {rest:.3f} dex, comes with the protocol {what}." if rest >= 0 else
               f"the protocol itself {what} goes the other way, by {-rest:.3f} dex."))


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
                        "one's), so part of this difference is which clusters were tested"
                        + ("; the thesis split's are the harder ones, so that part works against its protocol."
                           if fl["thesis"] > fl["fair"] else "." if fl["thesis"] == fl["fair"] else
                           "; the thesis split's are the easier ones, so that part flatters its protocol.")
                        if "thesis" in fl and "fair" in fl else "")
            shown = _shown_difference(b["fair_std"], b["std"])
            txt += (f" With the same recipe, the fair protocol's test std(x) is {b['fair_std']:.3f} on average over "
                    f"seeds against {b['std']:.3f} here: the thesis's way of reporting (the epoch and the seed chosen "
                    f"on the clusters it reports, and a larger training set{size}) makes the basic CNN look "
                    f"{abs(shown):.3f} dex {'better' if shown >= 0 else 'worse'} than a fair evaluation does."
                    + _seed_pick_part(b) + clusters)
        parts.append(txt)
    deep = [r for m, r in rows.items() if m != "basic"]
    if deep and b is not None:
        beat = [r["name"] for r in deep if r["std"] < b["std"]]
        lose = [r["name"] for r in deep if r["std"] >= b["std"]]
        parts.append("Under the thesis's protocol: " + "; ".join(
            f"{r['name']} std(x) {r['std']:.3f} (σ {r['sigma']:.3f}; thesis σ {fmt(r['sigma_thesis'])}"
            + ("" if r["learned"] else f"; did not learn from the images: {r['learned_short']}")
            + (f"; at epoch {r['best_epoch']}, before it collapsed to one mass for every cluster from epoch "
               f"{r['collapsed_at']} on" if r.get("collapsed_at") else "") + ")" for r in deep)
            + f". Better than the basic CNN's best run ({b['std']:.3f}): " + (", ".join(beat) or "none")
            + (f"; not better: {', '.join(lose)}" if lose else "") + ".")
        z = [r["redshift_std"] for r in deep if not r["learned"] and np.isfinite(r["redshift_std"])]
        if z:
            parts.append(f"A fit of the mass against the redshift alone scores std(x) = {z[0]:.3f} on the thesis "
                         "split's test clusters: even picked on the test set, a model near that number has learned "
                         "nothing from the images.")
        flipped = [r["name"] for r in deep if r["fair_std"] is not None and b["fair_std"] is not None
                   and (r["std"] < b["std"]) != (r["fair_std"] < b["fair_std"])]
        if flipped:
            parts.append("The verdict changes between the two protocols for " + and_list(flipped)
                         + ": a ranking made the thesis's way would not survive a fair evaluation.")
    if result["pending"]:
        parts.append("Not run yet under the thesis's protocol: " + "; ".join(result["pending"]) + ".")
    return " ".join(parts) if parts else "No runs under the thesis's protocol in this profile."


def _gflops(model: str, shape: Sequence[int], folder: str | Path = "book/generated/cache") -> float:
    """GFLOPs of one forward pass per image of ``model`` at ``shape`` (:func:`cmlib.models.count_flops`), cached."""
    def compute():
        from .. import models

        return {"gflops": models.count_flops(models.build(model, tuple(shape)), tuple(shape)) / 1e9}
    return float(cached(f"gflops-{model}-{'x'.join(map(str, shape))}", compute, folder=folder)["gflops"])


def cost_accuracy_points(members: Mapping[str, PageRuns], fair: Mapping, *,
                         cache_folder: str | Path = "book/generated/cache") -> list[dict]:
    """For every model of the fair comparison: the cost of one forward pass (GFLOPs per image at the runs'
    input), the training wall time per seed (mean, with the hardware), its CPU core-hours (wall time times the
    threads that computed: NaN for a GPU run), the epochs, and the test std(x) (mean and standard deviation over
    seeds), read from the runs."""
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
                    "core_h": float(np.mean([x.cpu_core_seconds for x in fin])) / 3600.0,
                    "hardware": hardware_of(fin),
                    "epochs": float(np.mean([x.status_info.get("epochs_completed", 0) for x in fin])),
                    "std_mean": r["mean_seeds"], "std_sd": r["std_seeds"] if r["seeds"] > 1 else 0.0,
                    "seeds": r["seeds"],
                    # runs made before env.json recorded compute_threads are charged for all the cores (their
                    # TensorFlow default); the epoch times of seeds on one hardware show the machine's load
                    "threads_recorded": sum("compute_threads" in x.env for x in fin), "runs": len(fin),
                    "epoch_s": _epoch_times_by_hardware(fin)})
    # the time the models are compared by: CPU core-hours where every run has them, so that a run that shared
    # the machine with another (one job per core) is not charged for the wall time the other job took; else the
    # wall time (e.g. when some runs trained on a GPU)
    core = bool(out) and all(math.isfinite(p["core_h"]) for p in out)
    for p in out:
        p["time_h"], p["time_unit"] = (p["core_h"], "CPU core-hours") if core else (p["wall_h"], "wall-clock hours")
    return out


def _epoch_times_by_hardware(runs: Sequence) -> dict[str, list[float]]:
    """The median epoch time of each run (seconds), grouped by the hardware it names (:func:`hardware_of`)."""
    out: dict[str, list[float]] = {}
    for r in runs:
        out.setdefault(hardware_of([r]), []).append(_median_epoch_s(r))
    return out


def _median_epoch_s(run) -> float:
    """A run's median epoch wall time in seconds (NaN without a history)."""
    e = np.asarray(run.history.get("epoch_time_s", []), dtype=float)
    e = e[np.isfinite(e)]
    return float(np.median(e)) if e.size else math.nan


def load_spread(points: Sequence[Mapping]) -> tuple[float, str] | None:
    """The largest ratio of median epoch times between seeds of one model on the same hardware (the machine's
    load, not the model: same recipe, same code), with that model's name; None without two such seeds."""
    best = None
    for p in points:
        for times in p.get("epoch_s", {}).values():
            t = [x for x in times if math.isfinite(x) and x > 0]
            if len(t) > 1 and (best is None or max(t) / min(t) > best[0]):
                best = (max(t) / min(t), p["model"])
    return best


def _times(x: float) -> str:
    """A ratio for a reader: '3.4×', '227×' ('\u2013' where it is not known, e.g. a run without a wall time)."""
    return f"{x:.{1 if x < 10 else 0}f}×" if math.isfinite(x) else "\u2013"


def cost_accuracy_rows(points: Sequence[Mapping]) -> list[dict]:
    """The cost-accuracy figure as table rows, cheapest first: what each model cost (operations per image,
    training time per seed) and what it bought (test std(x), mean over seeds), each against the basic CNN.
    The time ratio is of the points' ``time_h`` (CPU core-hours where all runs have them)."""
    ref = next((p for p in points if p["name"] == "basic"), None)
    out = []
    for p in sorted(points, key=lambda q: q["gflops"]):
        rel = ref is not None and p is not ref
        core = p.get("core_h", math.nan)
        out.append({"model": p["model"], "GFLOPs per image": f"{p['gflops']:.3g}",
                    "× basic CNN's operations": _times(p["gflops"] / ref["gflops"]) if rel else "\u2013",
                    "hours per seed": f"{p['wall_h']:.2g}" if math.isfinite(p["wall_h"]) else "\u2013",
                    "CPU core-hours per seed": f"{core:.2g}" if math.isfinite(core) else "\u2013",
                    "epochs": f"{p['epochs']:.0f}",
                    "× basic CNN's time": _times(p["time_h"] / ref["time_h"]) if rel else "\u2013",
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
        if math.isfinite(best["time_h"] / ref["time_h"]):
            txt += f" and {_times(best['time_h'] / ref['time_h'])} its training time"
    how = (" Training times are compared in CPU core-hours (wall time times the threads that computed), so that "
           "a run that shared the cores with another (one job per core, `cmlib train --threads 1`) counts only "
           "its own cores." if points[0].get("time_unit") == "CPU core-hours" else
           " Training times are compared as wall times, each on the hardware its row names.")
    if points[0].get("time_unit") == "CPU core-hours":
        runs = sum(p.get("runs", 0) for p in points)
        rec = sum(p.get("threads_recorded", 0) for p in points)
        if rec < runs:
            who = (f"None of these {runs} runs recorded its threads (they predate that record)" if rec == 0 else
                   f"{runs - rec} of these {runs} runs predate that record")
            how += (f" {who}: they computed with all the machine's cores, TensorFlow's default, and are charged for "
                    "all of them.")
    spread = load_spread(points)
    if spread is not None and spread[0] >= 1.2:
        how += (f" Times also carry the load of a shared machine: seeds of {spread[1]}, with one recipe on the same "
                f"hardware, took up to {spread[0]:.1f}× as long per epoch as each other, so read the time ratios to "
                "within such a factor.")
    return txt + (". The differences here are of the means over seeds; the table of the answer above compares "
                  "the ensembles, with their intervals." + how)
