"""Comparing models on the same clusters: paired differences with bootstrap uncertainties, and a ranking.

The thesis's question -- does a deep architecture estimate masses better than
the basic CNN? -- is a paired comparison: both models predict the *same* test
clusters, so the difference of their errors is measured cluster by cluster,
and its uncertainty comes from resampling the clusters (a bootstrap; Efron &
Tibshirani 1993), not from comparing two independent error bars.  The spread
over training seeds is reported beside it: a difference smaller than the
seed-to-seed spread is not a property of the architecture.

Everything here acts on stored predictions (:class:`cmlib.artifacts.Predictions`);
nothing trains.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np

from .artifacts import Predictions
from .errors import InputError


def _std(x: np.ndarray) -> float:
    return float(np.std(x))


def _sigma_thesis(x: np.ndarray) -> float:
    """Thesis eq. (4.0.1): the spread of |x| around its mean."""
    a = np.abs(x)
    return float(np.sqrt(np.mean((a - a.mean()) ** 2)))


def _rmse(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x ** 2)))


#: Scalar error measures of x = predicted - true [dex] a comparison can use.
MEASURES: dict[str, Callable[[np.ndarray], float]] = {"std": _std, "sigma": _sigma_thesis, "rmse": _rmse}


def align(a: Predictions, b: Predictions) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The residuals x of two prediction sets on their common clusters: (ids, x_a, x_b)."""
    ids_a, ids_b = np.asarray(a.cluster_id), np.asarray(b.cluster_id)
    common, ia, ib = np.intersect1d(ids_a, ids_b, return_indices=True)
    if common.size == 0:
        raise InputError("the two prediction sets share no cluster: compare models on the same split")
    if not np.allclose(a.true[ia], b.true[ib]):
        raise InputError("the two prediction sets disagree on the true masses of the same clusters: they were "
                         "made from different data files")
    return common, a.x[ia], b.x[ib]


@dataclass(frozen=True)
class PairedDifference:
    """measure(a) - measure(b) on the same clusters, with its bootstrap distribution's summary."""

    measure: str
    a: float
    b: float
    diff: float
    ci68: tuple[float, float]
    ci95: tuple[float, float]
    p_a_better: float          # fraction of bootstrap resamples in which a has the smaller error
    n_clusters: int

    @property
    def verdict(self) -> str:
        """'better', 'worse' (a against b, 95 % interval clear of zero) or 'indistinguishable'."""
        if self.ci95[1] < 0:
            return "better"
        if self.ci95[0] > 0:
            return "worse"
        return "indistinguishable"


def paired_difference(a: Predictions, b: Predictions, *, measure: str = "std", n_boot: int = 2000,
                      seed: int = 0) -> PairedDifference:
    """How much smaller (negative) or larger the error of ``a`` is than that of ``b``, with uncertainty.

    Both are evaluated on their common clusters; ``n_boot`` bootstrap resamples
    of those clusters (the same resample for both models) give the 68 % and 95 %
    percentile intervals of the difference.
    """
    if measure not in MEASURES:
        raise InputError(f"unknown measure '{measure}'; choose one of {', '.join(MEASURES)}")
    f = MEASURES[measure]
    _, xa, xb = align(a, b)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, xa.size, size=(int(n_boot), xa.size))
    da = np.array([f(xa[i]) for i in idx])
    db = np.array([f(xb[i]) for i in idx])
    d = da - db
    q = np.percentile(d, [2.5, 16, 84, 97.5])
    return PairedDifference(measure=measure, a=f(xa), b=f(xb), diff=f(xa) - f(xb), ci68=(float(q[1]), float(q[2])),
                            ci95=(float(q[0]), float(q[3])), p_a_better=float(np.mean(d < 0)), n_clusters=xa.size)


def seed_spread(preds: Sequence[Predictions], measure: str = "std") -> dict:
    """The error measure of each seed's predictions: mean, standard deviation over seeds, values."""
    f = MEASURES[measure]
    vals = [f(p.x) for p in preds]
    return {"mean": float(np.mean(vals)) if vals else math.nan,
            "std": float(np.std(vals, ddof=1)) if len(vals) > 1 else math.nan, "values": vals, "n": len(vals)}


def ranking(models: Mapping[str, Sequence[Predictions]], *, reference: str, measure: str = "std",
            n_boot: int = 2000, seed: int = 0) -> list[dict]:
    """One row per model, best first: seeds, mean +- std over seeds, the seed ensemble, and the paired
    difference of the ensemble against ``reference``'s ensemble on the same clusters.

    ``models`` maps a name to the test predictions of its seeds.  A model with one seed has no
    spread (``std_seeds`` NaN), never a fake 0.
    """
    from .metrics import ensemble

    if reference not in models or not models[reference]:
        raise InputError(f"the reference '{reference}' has no predictions")
    ens = {m: ensemble(list(p)) if len(p) > 1 else p[0] for m, p in models.items() if p}
    rows = []
    for m, preds in models.items():
        if not preds:
            continue
        spread = seed_spread(preds, measure)
        row = {"model": m, "seeds": spread["n"], "mean_seeds": spread["mean"], "std_seeds": spread["std"],
               "ensemble": MEASURES[measure](ens[m].x), "measure": measure}
        if m != reference:
            pd = paired_difference(ens[m], ens[reference], measure=measure, n_boot=n_boot, seed=seed)
            row.update(diff_vs_reference=pd.diff, ci95=pd.ci95, ci68=pd.ci68, p_better=pd.p_a_better,
                       verdict=pd.verdict)
        else:
            row.update(diff_vs_reference=0.0, ci95=(0.0, 0.0), ci68=(0.0, 0.0), p_better=math.nan,
                       verdict="reference")
        rows.append(row)
    rows.sort(key=lambda r: r["ensemble"])
    return rows


def precision_agreement(runs: Sequence, *, measure: str = "std") -> list[dict]:
    """Do bfloat16 and float32 runs of the same recipe reach the same test error?  (Issue 12's check.)

    ``runs`` are finished :class:`cmlib.artifacts.Run` objects.  Runs whose semantic
    configuration is equal except for ``precision`` (and the seed) form one recipe; for
    each recipe with both precisions, the test ``measure`` of each precision's seeds
    (mean, std over seeds) and their difference.  ``agree`` is True when the difference
    of the means is within the seed-to-seed standard deviation (the larger of the two
    where both precisions have several seeds, the one that does where only one has:
    a single fp32 run of a seed then stands against the bf16 runs' spread), None when
    each precision has a single seed (no spread to compare with).  Seeds present in both
    precisions are also compared pairwise: ``paired_diffs`` (bf16 - fp32) and ``paired_ci95``,
    the 95 % bootstrap interval of that difference over the test clusters
    (:func:`paired_difference`): an interval around zero says the test set cannot tell the two
    runs apart.  ``residual_corr`` says whether changing the precision moves a run more than
    changing the seed does: the Pearson correlation of the test residuals x between the two
    precisions' runs of the same seed (``same_seed``, per seed), against that between runs of
    different seeds in one precision (``other_seeds``, per pair "a-b" of each precision).
    """
    from ._io import stable_hash
    from .config import RunConfig

    recipes: dict[str, dict[str, dict[int, Predictions]]] = {}     # recipe -> precision -> seed -> test set
    names: dict[str, str] = {}
    splits: dict[str, str] = {}
    for r in runs:
        cfg = RunConfig.from_dict(r.config)
        key_d = {k: v for k, v in cfg.semantic_dict().items() if k not in ("seed", "precision")}
        key = stable_hash(key_d, 10)
        names[key], splits[key] = cfg.model, cfg.split
        test = r.predictions.get("test")
        if test is None:
            continue
        recipes.setdefault(key, {}).setdefault(cfg.precision, {})[cfg.seed] = test
    rows = []
    for key, by_prec in sorted(recipes.items(), key=lambda kv: names[kv[0]]):
        if not {"float32", "bfloat16"} <= set(by_prec):
            continue
        pa, pb = by_prec["float32"], by_prec["bfloat16"]
        a = {s: MEASURES[measure](p.x) for s, p in pa.items()}
        b = {s: MEASURES[measure](p.x) for s, p in pb.items()}
        ma, mb = float(np.mean(list(a.values()))), float(np.mean(list(b.values())))
        sa = float(np.std(list(a.values()), ddof=1)) if len(a) > 1 else math.nan
        sb = float(np.std(list(b.values()), ddof=1)) if len(b) > 1 else math.nan
        spread = max((s for s in (sa, sb) if not math.isnan(s)), default=math.nan)
        both = sorted(set(a) & set(b))
        paired = {s: paired_difference(pb[s], pa[s], measure=measure) for s in both}
        rows.append({"model": names[key], "recipe": key, "split": splits[key], "measure": measure,
                     "float32": {"seeds": sorted(a), "values": [a[s] for s in sorted(a)], "mean": ma, "std": sa},
                     "bfloat16": {"seeds": sorted(b), "values": [b[s] for s in sorted(b)], "mean": mb, "std": sb},
                     "diff": mb - ma, "seed_spread": spread,
                     "agree": None if math.isnan(spread) else bool(abs(mb - ma) <= spread),
                     "paired_diffs": {s: d.diff for s, d in paired.items()},
                     "paired_ci95": {s: list(d.ci95) for s, d in paired.items()},
                     "residual_corr": {"same_seed": {s: residual_correlation(pb[s], pa[s]) for s in both},
                                       "other_seeds": {prec: {f"{s}-{t}": residual_correlation(p[s], p[t])
                                                              for s, t in itertools.combinations(sorted(p), 2)}
                                                       for prec, p in (("float32", pa), ("bfloat16", pb))}}})
    return rows


def residual_correlation(a: Predictions, b: Predictions) -> float:
    """Pearson correlation of two prediction sets' residuals x on their common clusters: 1 for runs that err alike
    cluster by cluster, about 0 for errors that have nothing in common."""
    _, xa, xb = align(a, b)
    return float(np.corrcoef(xa, xb)[0, 1])
