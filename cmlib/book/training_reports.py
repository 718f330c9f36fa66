"""What the training-parameters, tuning and data-preparation pages report: Table 4 and the comparison of the
thesis's recipe with the chosen one at the same budget, the benchmark files (input pipeline, epoch parts, kernels,
precision) and the tuning study against the hand-set recipe.

Everything here reads stored runs and benchmark results and never trains or times anything itself.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .. import metrics as M
from . import runs as R
from .pages import and_list, counted, find_page_runs, fmt, history_references, seeds_text, stop_kind
from .profiles import display_name, fair_deep, get_profile


__all__ = ["pipeline_benchmark", "recipe_comparison", "table4_rows", "training_benchmark_rows", "kernels_text",
           "epoch_parts_text", "tuning_comparison_markdown", "tuning_trial_rows", "precision_rows", "head_probe",
           "head_probe_text"]


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


def recipe_comparison(profile: str, root: str | Path = ".", data: str | None = None) -> dict:
    """The evidence behind the deep models' recipe: for each model with a ``<model>_thesis_opt`` experiment,
    its runs under the thesis's optimisation and under the chosen recipe (same split, input and budget).

    Returns ``{"panels": {model: {label: run}}, "floors": {model: [...]}, "notes": [...], "rows": [...],
    "verdicts": [...]}`` (``floors``: what the mean and the redshift alone score on the validation clusters,
    :func:`~cmlib.book.pages.history_references`; both runs share them); a model
    whose runs are not both on disk appears in ``notes`` with where its runs stand; ``verdicts`` says, per
    model, which recipe reached the lower validation loss and whether their test std(x) differ beyond the
    noise of the test set (paired bootstrap over the test clusters, :func:`cmlib.compare.paired_difference`).
    """
    from .. import compare

    prof = get_profile(profile)
    panels, floors, notes, rows, verdicts = {}, {}, [], [], []
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
        floors[display_name(m)] = history_references(b)
        for label, r in ((plan.label, a), ("chosen recipe", b)):
            s, met = r.status_info, r.metrics
            rows.append({"model": display_name(m), "recipe": label, "epochs": s.get("epochs_completed"),
                         "best epoch": s.get("best_epoch"), "stopped by": stop_kind(r),
                         "val loss (best)": fmt(met.get("loss", {}).get("val_best"), 4),
                         "std(x) test": fmt(met.get("test", {}).get("std"))})
        va, vb = (r.metrics.get("loss", {}).get("val_best") for r in (a, b))
        d = compare.paired_difference(b.predictions["test"], a.predictions["test"], n_boot=2000)
        lo, hi = d.ci95
        same = lo <= 0.0 <= hi
        lower = "the chosen recipe" if vb < va else "the thesis's optimisation"
        judged = {lab: M.judge_learning(r.predictions["train"], r.predictions["test"]) for lab, r in
                  (("chosen", b), ("thesis", a))}
        learned = [lab for lab, v in judged.items() if v["learned"]]
        if not learned:
            z = judged["chosen"]["redshift_std"]
            each = "; ".join(f"{'the chosen recipe' if lab == 'chosen' else 'the thesis optimisation'}: test std(x) "
                             f"{v['std']:.3f} dex, {v['short']}" for lab, v in judged.items())
            learn = (f" **Neither run learned from the images at this budget** ({each}"
                     + (f"; the redshift alone scores {z:.3f} dex" if math.isfinite(z) else "")
                     + "), so this comparison cannot show that either recipe makes the model learn.")
        elif len(learned) == 1:
            learn = (f" Only the {'chosen recipe' if learned == ['chosen'] else 'thesis optimisation'}'s run learned "
                     "from the images.")
        else:
            learn = " Both runs learned from the images."
        verdicts.append(
            f"**{display_name(m)}**: {lower} reached the lower validation loss ({vb:.4f} chosen, epoch "
            f"{b.status_info.get('best_epoch')}, {stop_kind(b)}; {va:.4f} thesis, epoch {a.status_info.get('best_epoch')}, "
            f"{stop_kind(a)}). Test std(x) {d.a:.3f} (chosen) against {d.b:.3f} (thesis): a difference of "
            f"{d.diff:+.3f} dex, 95 % interval [{lo:+.3f}, {hi:+.3f}] over the {d.n_clusters} test clusters: "
            + ("the two recipes cannot be told apart at this budget." if same else
               f"{'the chosen recipe' if d.diff < 0 else 'the thesis optimisation'} is better at this budget.")
            + learn + _convergence_words(a, b))
    return {"panels": panels, "floors": floors, "notes": notes, "rows": rows, "verdicts": verdicts}


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
                 **dict(zip(cols, (deep["precision"], f"{fair['precision']} planned (float32: {and_list([display_name(m) for m in FAIR_FLOAT32])}); "
                                   "a run in float32 is the same experiment up to round-off, and each run records its "
                                   "own (run inventory)",
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
                "fair-protocol deep run must: that, not a better score, is why it is kept. Ending on its own does "
                "not prove that more epochs would not help (an annealed rate flattens every curve at its end); each "
                "model's page notes where its run's validation loss was still falling when the schedule ended.")
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
                     "overhead": f"×{r['overhead']:.2f}" + (
                         " (over the target)" if r["overhead"] > b.get("overhead_target", 1.15) else
                         " (below 1: timing noise)" if r["overhead"] < 1 else ""),
                     "checkpoint [s]": f"{r['checkpoint_s']:.2f}" if "checkpoint_s" in r else "",
                     "bf16 speed-up": f"×{b['bf16_speedup'][r['model']]:.2f}" if r["precision"] == "bfloat16"
                     and r["model"] in b.get("bf16_speedup", {}) else "",
                     "_class": "" if r["overhead"] <= b.get("overhead_target", 1.15) else "over-target"})
    mach = b["machine"]
    text = (f"Measured by `benchmarks/bench_training.py` on {mach.get('cpu_cores')} CPU cores ({mach.get('cpu_model')}, "
            f"bf16 units: {', '.join(mach.get('cpu_bf16_units') or []) or 'none'}; {mach.get('backend')} backend"
            + (f", GPU: {', '.join(mach['gpus'])}" if mach.get("gpus") else "") + f"), {b['created'][:10]}, load average "
            f"{mach['loadavg_before'][0]} before and {mach['loadavg_after'][0]} after. An epoch is the thesis's 7151 training images "
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


def kernels_text(path: str | Path = "benchmarks/results/kernels.json",
                 training: str | Path | None = "benchmarks/results/training.json") -> str:
    """What ``benchmarks/bench_kernels.py`` found about TensorFlow's CPU kernels (oneDNN, XLA), in a paragraph;
    when the training benchmark (``training``) ran on a CPU with other bf16 units, it says so: the two tables then
    come from different hosts, and the bf16 speed-ups hold only on the one with bf16 units."""
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
            + "; ".join(parts) + ". XLA compilation (`jit_compile`), which Keras leaves off on a CPU, stays off."
            + _other_host_words(mach, training))


def _other_host_words(mach: Mapping, training: str | Path | None) -> str:
    """A sentence when the training benchmark's CPU had other bf16 units than ``mach`` (the kernel benchmark's)."""
    import json

    if training is None or not Path(training).exists():
        return ""
    tm = json.loads(Path(training).read_text()).get("machine", {})
    if "cpu_bf16_units" not in tm or "cpu_bf16_units" not in mach:      # an older file: cannot tell
        return ""
    there, here = (sorted(m.get("cpu_bf16_units") or []) for m in (tm, mach))
    if there == here:
        return ""
    return (f" This ran on another host than the epoch-time table above (bf16 units: {', '.join(here) or 'none'} "
            f"here, {', '.join(there) or 'none'} there; the project's virtual machine is moved between hosts). "
            "The epoch-time table's bf16 speed-ups hold only on a CPU with bf16 units: without them bf16 is emulated and far slower, "
            "so runs on such a host train in float32 (`--precision auto` chooses it; each run's `env.json` records "
            "the CPU it ran on).")


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
    cap = int((report.get("settings") or {}).get("epochs") or 0)
    ran = [int(r.status_info.get("epochs_completed") or 0) for r in (tuned, same[0])]
    budget = (f" The tuned trial ran {counted(ran[0], 'epoch')}" + (f" of the study's cap of {cap}" if cap else "")
              + (" (stopped by the cap with an unannealed learning rate: it may not have converged)"
                 if cap and ran[0] >= cap and stop_kind(tuned) == "budget end" else "")
              + f"; the thesis-recipe run {counted(ran[1], 'epoch')} ({stop_kind(same[0])}).")
    ref_val = M.lowest(same[0].history, "val_loss")
    own = ("" if not math.isfinite(ref_val) or same[0].config.get("loss") != tuned.config.get("loss") else
           f" The thesis-recipe run's own lowest validation loss, {ref_val:.5f}, is "
           + ("below the best trial's: the search did not beat the thesis recipe even on the validation set it "
              "optimised." if ref_val < best["value"] - 5e-6 else
              "above the best trial's." if ref_val > best["value"] + 5e-6 else "the best trial's."))
    return head + (
        f"Test {measure}(x) over {d.n_clusters} clusters (x = log M_pred − log M_true, dex): tuned {d.a:.4f}, "
        f"thesis recipe {d.b:.4f}; difference "
        f"{d.diff:+.4f} (68 %: {d.ci68[0]:+.4f} to {d.ci68[1]:+.4f}; 95 %: {d.ci95[0]:+.4f} to {d.ci95[1]:+.4f}); "
        f"the tuned CNN has the smaller error in {100 * d.p_a_better:.0f} % of the bootstrap resamples.\n\n"
        f"**On the test set the tuned basic CNN {verdict} the thesis recipe** (95 % interval).{budget}{own}")


def tuning_study_text(report: Mapping) -> str:
    """The study in one sentence: trials that exist of those planned (by state), the epoch cap, pruner, sampler
    and the options held fixed; and the command that reruns or extends it with the same budget."""
    s = report["settings"]
    counts = ", ".join(f"{n} {k}" for k, n in report["counts"].items() if n)
    fixed = ", ".join(f"`{k}={v}`" for k, v in s.get("fixed", {}).items()) or "none"
    return (f"Study `{report['study']}`: {len(report['trials'])} of {s['trials']} planned trials exist ({counts}); at "
            f"most {s['epochs']} epochs each, {s['pruner']} pruner, {s['sampler']} sampler, fixed options {fixed}. "
            + ("A trial shown as running is one the study was running when this report was written; if the study "
               "has stopped since, rerunning it marks that trial failed and draws a new one. "
               if report["counts"].get("running") else "")
            + f"Rerun or extend it (resumable): `{tuning_command(report)}`.")


def tuning_command(report: Mapping) -> str:
    """The command that reruns the study of ``report`` with its own budget."""
    s = report["settings"]
    opts = [("--study", report.get("study")), ("--data", s.get("data")), ("--space", s.get("space")),
            ("--seed", s.get("seed")), ("--runs-dir", s.get("runs_dir")), ("--trials", s.get("trials")),
            ("--epochs", s.get("epochs"))]
    return " ".join([s.get("command", "nice -n 10 .venv/bin/python benchmarks/tune_study.py"),
                     *(f"{k} {v}" for k, v in opts if v is not None)])


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
        sd = math.nan if d["std"] is None else d["std"]
        return f"{seeds_text(d['mean'], sd, len(d['seeds']))} ({counted(len(d['seeds']), 'seed')})"

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

    rows = [{"model": display_name(r["model"]), **({"split": r["split"]} if "split" in r else {}),
             f"float32 test {r['measure']}(x) [dex]": cell(r["float32"]),
             f"bfloat16 test {r['measure']}(x) [dex]": cell(r["bfloat16"]),
             "difference": f"{r['diff']:+.3f}",
             "same seed, bf16 − fp32 [95 % interval]": same_seed(r),
             "seed spread": fmt(r["seed_spread"]),
             "residuals correlate: same seed / two seeds": corr(r),
             "difference within the seed spread": within(r),
             "_class": "" if r["agree"] is not False else "over-target"} for r in b["rows"]]
    missing = [display_name(m) for m in b.get("missing", [])]
    text = (f"Measured by `benchmarks/precision_check.py` on {b['date'][:10]}: finished runs of one recipe that differ "
            "only in precision (the stored runs in `results/runs`, on the split of each row; a page that trains its "
            "own runs in the build, as the basic CNN's does, shows those, so its numbers differ a little), their "
            "test error per seed; bf16 changes a run by round-off only if the difference of "
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


#: :func:`head_probe_text`: a variant keeps its head alive if at most this share of the head's units is off for every
#: probe cluster at the probe's last step.
HEAD_ALIVE_SHARE = 0.1


def head_probe(model: str, root: str | Path = ".") -> dict | None:
    """The probe of a model's first training steps (``benchmarks/effnet_head.py``, written to
    ``benchmarks/results/effnet_head.json``) if it probed ``model``; else None."""
    import json

    f = Path(root) / "benchmarks" / "results" / "effnet_head.json"
    if not f.exists():
        return None
    b = json.loads(f.read_text())
    return b if b.get("model") == model and b.get("variants") else None


#: Short names of the head probe's variants for running text (the probe's own descriptions are longer).
HEAD_PROBE_NAMES = {"fair": "the fair recipe", "lr/10": "a tenth of the learning rate",
                    "gap": "global average pooling instead of Flatten"}


def head_probe_text(b: Mapping) -> str:
    """What the head probe (:func:`head_probe`) shows, from its numbers: how many of the head's units each variant
    had off for every probe cluster, at the worst and at the last step, and which variants kept the head alive
    (:data:`HEAD_ALIVE_SHARE`)."""
    vs = {v["variant"]: v for v in b["variants"]}

    def pct(x: float) -> str:
        return "none" if x == 0 else "under 1%" if x < 0.005 else f"{x:.0%}"

    def words(v: Mapping) -> str:
        worst = max(v["rows"], key=lambda r: r["head_dead"])
        last = v["rows"][-1]
        return (f"{v['description']}: {pct(worst['head_dead'])} of the head's units off for every cluster at worst"
                + (f" (step {worst['step']})" if worst["head_dead"] > 0 else "")
                + f", {pct(last['head_dead'])} at step {last['step']}, mean pre-activation {last['head_shift']:+.2f}")

    def name(n: str) -> str:
        return HEAD_PROBE_NAMES.get(n, vs[n]["description"])

    text = (f"A probe of the run's first {b['steps']} training steps (`benchmarks/effnet_head.py`: the same model, "
            f"seed, batches and first-epoch learning rate, a fresh model per variant, measured every {b['every']} "
            "steps on the 64 probe clusters in training mode), per variant: "
            + "; ".join(words(v) for v in vs.values()) + ".")
    alive = [n for n, v in vs.items() if v["rows"][-1]["head_dead"] <= HEAD_ALIVE_SHARE]
    dying = [n for n in vs if n not in alive]
    if dying and alive:
        text += (f" Units die with {and_list([name(n) for n in dying])}; with {and_list([name(n) for n in alive])} "
                 "the head keeps them.")
    elif dying:
        text += " Units die with every variant probed."
    else:
        text += " No variant lost head units within these steps."
    loss = [v["rows"][-1].get("loss") for v in vs.values() if v["rows"][-1].get("loss") is not None]
    if loss:
        text += (f" The probe is too short to say whether a variant learns: its training loss (averaged over the "
                 f"steps) ended between {min(loss):.3f} and {max(loss):.3f} dex² in every variant; a converged run "
                 "says that (*Remedies*).")
    return text
