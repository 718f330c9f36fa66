"""Accuracy metrics: the thesis's own (eqs. 4.0.1-4.0.4) and the standard ones.

Residuals are defined as in thesis eq. (4.0.2)::

    x_i = log10(M_NN / Msun) - log10(M_true / Msun)        (predicted - true)

so ``mu > 0`` means the network over-predicts.  (The thesis text reads mu > 0 as
"too low", the opposite of its own equation; see :data:`cmlib.book.thesis.TABLE5_NOTES`.)

The thesis's "standard deviation" sigma (eq. 4.0.1) is the spread of |x|
around its mean mu-tilde (eq. 4.0.3), **not** the standard deviation of x.
For Gaussian residuals std(|x|) = sqrt(1 - 2/pi) std(x) = 0.60 std(x), so the
thesis's sigma = 0.13 corresponds to a residual scatter of about 0.2 dex.
cmlib reports both, always labelled.

All functions take plain numpy arrays and are independent of any deep
learning backend.
"""
from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import numpy as np

from .artifacts import Predictions  # noqa: F401  (predictions are artifacts; metrics act on them)
from .errors import InputError

#: |x| above this [dex] counts as a catastrophic outlier (a factor of 2 in mass).
OUTLIER_DEX = 0.3
#: std(|x|) / std(x) for zero-mean Gaussian residuals: sqrt(1 - 2/pi).
ABS_SPREAD_FACTOR = float(np.sqrt(1.0 - 2.0 / np.pi))
#: NMAD normalisation: 1 / Phi^-1(3/4), so NMAD = std for a Gaussian.
NMAD_FACTOR = 1.482602218505602


def _as_1d(name: str, a) -> np.ndarray:
    arr = np.asarray(a, dtype=np.float64).reshape(-1)
    return arr


def _check_pair(pred, true) -> tuple[np.ndarray, np.ndarray]:
    p, t = _as_1d("pred", pred), _as_1d("true", true)
    if p.shape != t.shape:
        raise InputError(f"predictions ({p.size}) and true values ({t.size}) differ in length")
    if p.size == 0:
        raise InputError("no predictions to evaluate (empty arrays)")
    return p, t


def residuals(pred, true) -> np.ndarray:
    """Thesis eq. (4.0.2): x_i = predicted - true log10 mass [dex]."""
    p, t = _check_pair(pred, true)
    return p - t


def thesis_mu(x) -> float:
    """Thesis eq. (4.0.4): mu = (1/n) sum x_i (the mean residual, signed)."""
    return float(np.mean(_as_1d("x", x)))


def thesis_mu_tilde(x) -> float:
    """Thesis eq. (4.0.3): mu-tilde = (1/n) sum |x_i| (the mean absolute residual)."""
    return float(np.mean(np.abs(_as_1d("x", x))))


def thesis_sigma(x) -> float:
    """Thesis eq. (4.0.1): sigma = sqrt((1/n) sum (|x_i| - mu-tilde)^2).

    The spread of |x| (population form, divided by n), *not* the standard
    deviation of x.
    """
    ax = np.abs(_as_1d("x", x))
    return float(np.sqrt(np.mean((ax - ax.mean()) ** 2)))


def nmad(x) -> float:
    """Normalised median absolute deviation: 1.4826 median(|x - median(x)|)."""
    x = _as_1d("x", x)
    return float(NMAD_FACTOR * np.median(np.abs(x - np.median(x))))


def point_metrics(pred, true) -> dict[str, float]:
    """Thesis metrics and the standard ones for one set of point predictions.

    Returns
    -------
    dict with
        ``n``; thesis ``mu`` (4.0.4), ``mu_tilde`` (4.0.3), ``sigma`` (4.0.1, spread of |x|);
        ``bias`` (= mu), ``std`` (standard deviation of x, ddof=0), ``rmse``, ``nmad``,
        ``median``, ``outlier_frac`` (|x| > 0.3 dex), ``max_abs``.
    """
    x = residuals(pred, true)
    finite = np.isfinite(x)
    out: dict[str, float] = {"n": int(x.size), "n_nonfinite": int((~finite).sum())}
    if not finite.any():
        nan = float("nan")
        out.update(mu=nan, mu_tilde=nan, sigma=nan, bias=nan, std=nan, rmse=nan, nmad=nan,
                   median=nan, outlier_frac=nan, max_abs=nan)
        return out
    xf = x[finite]
    out.update(
        mu=thesis_mu(xf),
        mu_tilde=thesis_mu_tilde(xf),
        sigma=thesis_sigma(xf),
        bias=float(xf.mean()),
        std=float(xf.std()),
        rmse=float(np.sqrt(np.mean(xf ** 2))),
        nmad=nmad(xf),
        median=float(np.median(xf)),
        outlier_frac=float(np.mean(np.abs(xf) > OUTLIER_DEX)),
        max_abs=float(np.max(np.abs(xf))),
    )
    return out


def uncertainty_metrics(pred, true, sigma_pred) -> dict[str, float]:
    """Calibration of predicted uncertainties (Gaussian NLL models).

    ``coverage_1sigma``/``coverage_2sigma``: fraction of clusters whose true mass
    lies within +-1 (+-2) predicted sigma (68.3 % / 95.4 % if calibrated);
    ``pull_mean``/``pull_std``: mean and standard deviation of x / sigma_pred
    (0 and 1 if calibrated); ``nll``: mean Gaussian negative log-likelihood per
    cluster [nats, including 0.5 ln 2 pi]; ``sigma_pred_median`` [dex].
    """
    x = residuals(pred, true)
    s = _as_1d("sigma_pred", sigma_pred)
    if s.shape != x.shape:
        raise InputError("sigma_pred must have one value per prediction")
    ok = np.isfinite(x) & np.isfinite(s) & (s > 0)
    if not ok.any():
        nan = float("nan")
        return dict(coverage_1sigma=nan, coverage_2sigma=nan, pull_mean=nan, pull_std=nan, nll=nan,
                    sigma_pred_median=nan)
    x, s = x[ok], s[ok]
    pull = x / s
    return dict(
        coverage_1sigma=float(np.mean(np.abs(pull) <= 1.0)),
        coverage_2sigma=float(np.mean(np.abs(pull) <= 2.0)),
        pull_mean=float(pull.mean()),
        pull_std=float(pull.std()),
        nll=float(np.mean(0.5 * np.log(2 * np.pi * s ** 2) + 0.5 * pull ** 2)),
        sigma_pred_median=float(np.median(s)),
    )


def binned_metrics(pred, true, by, bins: Sequence[float] | int = 5) -> list[dict[str, float]]:
    """Bias and scatter of x in bins of another quantity (true mass, redshift, ...).

    ``bins`` is an edge list or a number of equal-count (quantile) bins.
    Each row: ``lo``, ``hi``, ``center`` (median of ``by`` in the bin), ``n``,
    ``bias`` (mean x), ``std``, ``nmad``, ``sigma`` (thesis eq. 4.0.1), ``mu_tilde``.
    Empty bins are reported with n = 0 and NaNs.
    """
    x = residuals(pred, true)
    b = _as_1d("by", by)
    if b.shape != x.shape:
        raise InputError("the binning variable must have one value per prediction")
    if np.isscalar(bins) or isinstance(bins, int):
        nb = int(bins)
        if nb < 1:
            raise InputError("number of bins must be >= 1")
        edges = np.quantile(b[np.isfinite(b)], np.linspace(0, 1, nb + 1))
    else:
        edges = np.asarray(bins, dtype=np.float64)
        if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
            raise InputError("bin edges must be an increasing sequence of at least two values")
    rows = []
    for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
        last = i == len(edges) - 2
        sel = (b >= lo) & ((b <= hi) if last else (b < hi)) & np.isfinite(x)
        xs = x[sel]
        if xs.size == 0:
            rows.append(dict(lo=float(lo), hi=float(hi), center=float("nan"), n=0, bias=float("nan"),
                             std=float("nan"), nmad=float("nan"), sigma=float("nan"), mu_tilde=float("nan")))
            continue
        rows.append(dict(lo=float(lo), hi=float(hi), center=float(np.median(b[sel])), n=int(xs.size),
                         bias=float(xs.mean()), std=float(xs.std()), nmad=nmad(xs),
                         sigma=thesis_sigma(xs), mu_tilde=thesis_mu_tilde(xs)))
    return rows


def sma(values, k: int = 100) -> np.ndarray:
    """Simple moving average, thesis eq. (A.1.1): SMA_k(n) = (1/k) sum_{i=n-k+1}^{n} p_i.

    Returns an array of the same length as ``values``.  For the first k-1
    points (where eq. A.1.1 is undefined) the mean of the points available so
    far is returned, so a curve starts at its first value instead of being cut.
    Non-finite values are ignored within each window.
    """
    if int(k) < 1:
        raise InputError(f"the SMA window k must be >= 1, got {k}")
    p = _as_1d("values", values)
    k = int(k)
    ok = np.isfinite(p)
    csum = np.concatenate([[0.0], np.cumsum(np.where(ok, p, 0.0))])
    ccnt = np.concatenate([[0], np.cumsum(ok)])
    n = np.arange(1, p.size + 1)
    start = np.maximum(n - k, 0)
    cnt = ccnt[n] - ccnt[start]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(cnt > 0, (csum[n] - csum[start]) / np.maximum(cnt, 1), np.nan)


# ---------------------------------------------------------------- evaluation of a run

def evaluate(p: Predictions, *, mass_bins: Sequence[float] | int = (13.0, 13.5, 14.0, 14.5, 15.0),
             z_bins: Sequence[float] | int = (0.0, 0.2, 0.4, 0.7, 1.5)) -> dict:
    """All metrics of one prediction set: point, uncertainty (if sigma), binned."""
    out: dict = point_metrics(p.pred, p.true)
    if p.sigma is not None:
        out.update(uncertainty_metrics(p.pred, p.true, p.sigma))
    out["by_mass"] = binned_metrics(p.pred, p.true, p.true, mass_bins)
    if p.z is not None:
        out["by_z"] = binned_metrics(p.pred, p.true, p.z, z_bins)
    return out


# ---------------------------------------------------------------- aggregation over seeds

SCALAR_KEYS = ("mu", "mu_tilde", "sigma", "bias", "std", "rmse", "nmad", "outlier_frac",
               "coverage_1sigma", "coverage_2sigma", "pull_mean", "pull_std", "nll")


def best_run_index(metrics: Sequence[Mapping], *, by: str = "sigma", split: str = "test") -> int:
    """Index of the best run, as the thesis picked it: lowest ``by`` on ``split``.

    The thesis picked the run with the lowest test sigma out of ten (with one
    judgement call for ResNet50, Sect. 4.3.1).  Note that selecting on the test
    set makes the reported test numbers optimistic; :func:`best_run_index` with
    ``split="val"`` on a train-val-test split is the fair alternative.
    Runs whose value is not finite are never picked unless all are.
    """
    vals = []
    for m in metrics:
        v = m.get(split, {}).get(by, np.nan) if split in m else m.get(by, np.nan)
        vals.append(float(v) if v is not None else np.nan)
    vals_a = np.asarray(vals, dtype=np.float64)
    if vals_a.size == 0:
        raise InputError("no runs to choose from")
    if by in ("mu", "bias", "median", "pull_mean"):
        vals_a = np.abs(vals_a)
    if not np.isfinite(vals_a).any():
        return 0
    return int(np.nanargmin(np.where(np.isfinite(vals_a), vals_a, np.nan)))


def mean_std_over_seeds(metrics: Sequence[Mapping], keys: Iterable[str] = SCALAR_KEYS) -> dict[str, dict]:
    """Mean, standard deviation (ddof=1 when n>1), min and max of each metric across seeds."""
    out: dict[str, dict] = {}
    for k in keys:
        vals = np.asarray([m[k] for m in metrics if k in m and m[k] is not None], dtype=np.float64)
        vals = vals[np.isfinite(vals)]
        if vals.size == 0:
            continue
        out[k] = dict(mean=float(vals.mean()), std=float(vals.std(ddof=1)) if vals.size > 1 else 0.0,
                      min=float(vals.min()), max=float(vals.max()), n=int(vals.size))
    return out


def ensemble(preds: Sequence[Predictions]) -> Predictions:
    """The ensemble of several runs (seeds) as a model of its own.

    Point models: the mean prediction per cluster; the spread across members
    becomes ``sigma`` (an epistemic uncertainty) when there are >= 2 members.
    Gaussian models: the moment-matched mixture, mean = mean of mu_i and
    variance = mean of sigma_i^2 + variance of mu_i.
    All members must predict the same clusters in the same order.
    """
    if not preds:
        raise InputError("an ensemble needs at least one member")
    ref = preds[0]
    for p in preds[1:]:
        if p.cluster_id.shape != ref.cluster_id.shape or np.any(p.cluster_id != ref.cluster_id):
            raise InputError("ensemble members must predict the same clusters in the same order")
    mus = np.stack([p.pred for p in preds])
    mean = np.nanmean(mus, axis=0) if np.isfinite(mus).any() else mus[0]
    var_between = np.nanvar(mus, axis=0) if len(preds) > 1 else np.zeros_like(mean)
    if all(p.sigma is not None for p in preds):
        var_within = np.nanmean(np.stack([p.sigma ** 2 for p in preds]), axis=0)
        sigma = np.sqrt(var_within + var_between)
    elif len(preds) > 1:
        sigma = np.sqrt(var_between)
    else:
        sigma = None
    return Predictions(cluster_id=ref.cluster_id, true=ref.true, pred=mean, sigma=sigma, z=ref.z)


# ---------------------------------------------------------------- reference estimators and verdicts

#: A model whose test predictions vary by less than this [dex] (standard deviation) predicts
#: practically one mass for every cluster.
MIN_PREDICTION_SPREAD = 0.05
#: A model whose test std(x) is within this fraction of the "predict the training mean"
#: estimator's has learned nothing that estimator does not know.
MEAN_PREDICTOR_MARGIN = 0.05
#: A model whose predictions a smooth function of the redshift explains to all but this fraction of their
#: spread predicts from its redshift input alone: it ignores the images.
REDSHIFT_ONLY_FRACTION = 0.1
#: Polynomial degrees in z: of the redshift-only estimator (fit to the training masses) and of the fit that
#: asks how much of a model's predictions the redshift explains.
REDSHIFT_FIT_DEGREE, REDSHIFT_EXPLAIN_DEGREE = 3, 5


def mean_predictor(train: Predictions, test: Predictions) -> Predictions:
    """The estimator that ignores the images: every test cluster gets the mean training mass.

    The floor any model must beat.  Its thesis-sigma (eq. 4.0.1) is the spread of
    |true - mean|, about 0.6 x the standard deviation of the true masses.
    """
    value = float(np.mean(_as_1d("train.true", train.true)))
    return Predictions(cluster_id=test.cluster_id, true=test.true, pred=np.full(test.true.shape, value),
                       z=test.z)


def redshift_predictor(train: Predictions, test: Predictions, *, deg: int = REDSHIFT_FIT_DEGREE) -> Predictions:
    """The estimator that sees only the redshift: a polynomial in z (degree ``deg``) fitted by least squares
    to the training clusters' log masses, evaluated on the test clusters.

    In a flux-limited sample the distant clusters are the massive ones (only they are bright enough), so z
    alone predicts part of the mass: this is the floor a model's *images* must beat, as the mean predictor
    is the floor of the whole model.
    """
    for name, p in (("train", train), ("test", test)):
        if p.z is None:
            raise InputError(f"the {name} predictions carry no redshifts: the redshift-only estimator needs z "
                             "(runs made before cmlib stored z in predictions.csv lack it; train them again)")
    zt, mt = _as_1d("train.z", train.z), _as_1d("train.true", train.true)
    ok = np.isfinite(zt) & np.isfinite(mt)
    coef = np.polyfit(zt[ok], mt[ok], deg)
    return Predictions(cluster_id=test.cluster_id, true=test.true, pred=np.polyval(coef, test.z), z=test.z)


def judge_learning(train: Predictions, test: Predictions, *, min_spread: float = MIN_PREDICTION_SPREAD,
                   margin: float = MEAN_PREDICTOR_MARGIN) -> dict:
    """:func:`learning_verdict` of ``test`` against both floors fitted on ``train``: the mean training mass and,
    where the predictions carry redshifts, the redshift-only estimator."""
    zref = redshift_predictor(train, test) if train.z is not None and test.z is not None else None
    return learning_verdict(test, mean_predictor(train, test), redshift_reference=zref, min_spread=min_spread,
                            margin=margin)


def unexplained_by_redshift(p: Predictions, *, deg: int = REDSHIFT_EXPLAIN_DEGREE) -> float:
    """The part of a model's prediction spread that the redshift does not explain: the standard deviation of
    the residuals of a polynomial fit (degree ``deg``) of the predictions against z, over the standard
    deviation of the predictions.  About 0 for a model that predicts from z alone; NaN without z."""
    if p.z is None:
        return float("nan")
    z, pred = _as_1d("z", p.z), _as_1d("pred", p.pred)
    ok = np.isfinite(z) & np.isfinite(pred)
    if ok.sum() <= deg + 1 or np.std(pred[ok]) == 0:
        return float("nan")
    res = pred[ok] - np.polyval(np.polyfit(z[ok], pred[ok], deg), z[ok])
    return float(np.std(res) / np.std(pred[ok]))


def _short_of(std: float, ref: float, margin: float, what: str) -> str:
    """How a test std(x) falls short of ``margin`` below a reference's (``what``: the reference in words): 'its
    test std(x) 0.314 dex is above the 0.300 dex of <what> (a model must reach 0.285 dex or less)', or 'is not 5%
    below' where it is below, but not by the margin."""
    rel = "above" if std > ref else f"not {margin:.0%} below"
    return (f"its test std(x) {std:.3f} dex is {rel} the {ref:.3f} dex of {what} (a model must reach "
            f"{(1.0 - margin) * ref:.3f} dex or less)")


def learning_verdict(p: Predictions, reference: Predictions, *, redshift_reference: Predictions | None = None,
                     min_spread: float = MIN_PREDICTION_SPREAD, margin: float = MEAN_PREDICTOR_MARGIN) -> dict:
    """Did a model learn?  Compares its test predictions with the mean predictor's.

    Returns ``learned`` (bool), ``rule`` (the test it failed, for code to branch on: ``"not finite"``,
    ``"flat"``, ``"redshift only"``, ``"mean margin"``, ``"redshift margin"``; empty if it learned), ``reason``
    (one sentence, empty if it learned), ``short`` (a few words for a table cell), ``spread``
    (std of the predictions [dex]), ``std`` (std of x) and ``reference_std`` (the mean
    predictor's std of x).  A model did not learn if its predictions barely vary
    (``spread < min_spread``), if they are a function of the redshift alone (less than
    :data:`REDSHIFT_ONLY_FRACTION` of their spread unexplained by z: the images are ignored), or if its
    std(x) is not at least ``margin`` below the mean predictor's (e.g. 0.95 x), nor, given
    ``redshift_reference`` (:func:`redshift_predictor`), below the redshift-only estimator's: then the images
    add nothing clear to what z tells (``redshift_std`` is that estimator's std of x, NaN without it).
    """
    pred = _as_1d("pred", p.pred)
    ok = np.isfinite(pred)
    spread = float(np.std(pred[ok])) if ok.any() else float("nan")
    std = point_metrics(p.pred, p.true)["std"]
    ref = point_metrics(reference.pred, reference.true)["std"]
    u = unexplained_by_redshift(p)
    zstd = (point_metrics(redshift_reference.pred, redshift_reference.true)["std"] if redshift_reference is not None
            else float("nan"))
    out = {"learned": True, "rule": "", "reason": "", "short": "", "spread": spread, "std": std, "reference_std": ref,
           "redshift_std": zstd, "unexplained_by_z": u}
    if not np.isfinite(spread) or not np.isfinite(std):
        out.update(learned=False, rule="not finite", short="predictions not finite",
                   reason="its predictions are not finite")
    elif spread < min_spread:
        out.update(learned=False, rule="flat", short="about one mass for every cluster",
                   reason=(f"its predictions barely vary (standard deviation {spread:.3f} dex, below "
                           f"{min_spread:g}): it returns about one mass for every cluster"))
    elif u < REDSHIFT_ONLY_FRACTION:
        out.update(learned=False, rule="redshift only", short="predicts from the redshift alone",
                   reason=(f"its predictions are a function of the redshift alone (they vary by {spread:.3f} dex, "
                           f"of which only {u * spread:.3f} dex is not explained by a smooth function of z): it "
                           "ignores the images"))
    elif std > (1.0 - margin) * ref:
        out.update(learned=False, rule="mean margin", short=f"not {margin:.0%} better than the mean mass",
                   reason=_short_of(std, ref, margin, "predicting the mean training mass for every cluster"))
    elif np.isfinite(zstd) and std > (1.0 - margin) * zstd:
        out.update(learned=False, rule="redshift margin", short=f"not {margin:.0%} better than the redshift alone",
                   reason=_short_of(std, zstd, margin, "predicting from the redshift alone") + (
                       ": what it reads from the images adds nothing clear to what z tells"))
    return out


def sma_full(values, k: int = 100) -> np.ndarray:
    """Eq. (A.1.1) only where it is defined: NaN for the first k-1 points (the window is not full).

    :func:`sma` fills the first points with running means; drawn as a curve, that start drops
    like a cliff at epoch k when the first (large) epochs leave the window.  Plots use this.
    """
    out = sma(values, k)
    out[: max(0, int(k) - 1)] = np.nan
    return out


# ---------------------------------------------------------------- why a run did not learn

#: Thresholds of :func:`training_findings` (each a ratio of two numbers of the same run).
BN_GAP_FACTOR = 2.0          # inference-mode probe MSE > 2 x training-mode probe MSE: BatchNorm gap
COLLAPSE_RATIO = 0.3         # prediction spread < 30 % of the label spread: collapse to the mean
VANISHING_RATIO = 1e-3       # first-layer gradient < 1e-3 x output-layer gradient: vanishing gradients
DEAD_RELU_FRACTION = 0.5     # more than half the ReLU channels never fire on the probe
#: Thresholds of :func:`memorisation`: the training MSE falls below 80 % of what the redshift alone leaves on the
#: training clusters, while the best validation MSE stays above 90 % of the redshift-only level there.
MEMORISATION_TRAIN_RATIO = 0.8
MEMORISATION_VAL_RATIO = 0.9


def lowest(history: Mapping[str, np.ndarray], key: str) -> float:
    """The lowest finite value of a run's history column ``key`` (e.g. ``loss``); NaN where it has none."""
    a = np.asarray(history.get(key, []), dtype=np.float64)
    a = a[np.isfinite(a)]
    return float(a.min()) if a.size else float("nan")


def memorisation(history: Mapping[str, np.ndarray], train_floor: float, val_floor: float) -> dict | None:
    """Does a run fit its training clusters without carrying it over to new ones?

    ``history``: the run's per-epoch ``loss`` and ``val_loss`` (MSE in dex^2, in the labels' own units);
    ``train_floor`` and ``val_floor``: the MSE [dex^2] that the redshift-only estimator (:func:`redshift_predictor`,
    fitted on the training clusters) leaves on the training and on the validation clusters.  Found when the
    lowest training loss is below :data:`MEMORISATION_TRAIN_RATIO` of ``train_floor`` (the network reads something
    from its training images) while the best validation loss stays above :data:`MEMORISATION_VAL_RATIO` of
    ``val_floor`` (what it read does not hold for other clusters): the failure the thesis's slides describe as
    "very low training loss while predicting very poorly".  Returns a dict like :func:`training_findings`'s, or
    None without the losses or floors.
    """
    t, v = lowest(history, "loss"), lowest(history, "val_loss")
    if not (np.isfinite(t) and np.isfinite(v) and train_floor > 0 and val_floor > 0):
        return None
    rt, rv = t / train_floor, v / val_floor
    found = rt < MEMORISATION_TRAIN_RATIO and rv > MEMORISATION_VAL_RATIO
    return dict(check="memorisation", value=rt, threshold=MEMORISATION_TRAIN_RATIO, found=found,
                text=f"its lowest training loss was {t:.3f} dex² ({rt:.0%} of the {train_floor:.3f} dex² the "
                f"redshift alone leaves on the training clusters), its best validation loss {v:.3f} dex² ({rv:.0%} of the "
                f"redshift-only {val_floor:.3f} dex² on the validation clusters)")


def _first_epoch_holding_to_end(history: Mapping[str, np.ndarray], holds: np.ndarray) -> int | None:
    """The first epoch of the final stretch of epochs in which ``holds`` (one bool per history row) is true, up
    to the last epoch; None where the last epoch does not hold (or there are none)."""
    holds = np.asarray(holds, dtype=bool)
    if holds.size == 0 or not holds[-1]:
        return None
    ep = np.asarray(history.get("epoch", np.arange(1, holds.size + 1)))
    broken = np.flatnonzero(~holds)
    return int(ep[0 if broken.size == 0 else broken[-1] + 1])


def first_epoch_without_gradient(history: Mapping[str, np.ndarray]) -> int | None:
    """The first epoch from which on the first layer's gradient (history column ``grad_norm_first``,
    :mod:`cmlib.train.diagnostics`) stayed exactly zero: the image path is cut.  None if it never did."""
    g = np.asarray(history.get("grad_norm_first", []), dtype=float)
    return _first_epoch_holding_to_end(history, g == 0)


#: :func:`first_epoch_of_constant_output`: predictions spread less than this fraction of the labels' spread are one
#: constant (float32 noise on a constant output is far below it; a network that learned anything is far above).
CONSTANT_OUTPUT_RATIO = 1e-3


def _constant_output(pred_std, label_std):
    """Whether a prediction spread is one constant against the labels' (:data:`CONSTANT_OUTPUT_RATIO`); element-wise
    for arrays, False where either is not finite or the labels do not vary."""
    ps, ls = np.asarray(pred_std, dtype=float), np.asarray(label_std, dtype=float)
    return np.isfinite(ps) & np.isfinite(ls) & (ls > 0) & (ps <= CONSTANT_OUTPUT_RATIO * ls)


def first_epoch_of_constant_output(history: Mapping[str, np.ndarray]) -> int | None:
    """The first epoch from which on a run predicted one and the same mass for every training cluster, to its last
    epoch: the prediction spread on the training probe (history column ``pred_std_train``,
    :mod:`cmlib.train.diagnostics`) stayed below :data:`CONSTANT_OUTPUT_RATIO` of the labels' (``label_std_train``).
    A run that ends so scores at its last epoch like predicting one mass, whatever it reached before (a network
    whose ReLUs before the output all died stays there for good: no gradient reaches it).  Early in a run, with the
    output started at the mean mass, such an epoch is normal.  None if the last epoch still varies, or without
    the columns."""
    ps = np.asarray(history.get("pred_std_train", []), dtype=float)
    ls = np.asarray(history.get("label_std_train", []), dtype=float)
    if ls.size != ps.size:
        return None
    return _first_epoch_holding_to_end(history, _constant_output(ps, ls))


def validation_drift(history: Mapping[str, np.ndarray], from_epoch: int) -> float:
    """How far a run's validation loss moved from epoch ``from_epoch`` to its last: max minus min of the history
    column ``val_loss`` over those epochs [the loss's unit, dex² for MSE].  A network with one constant output
    learns nothing, yet its validation loss still drifts a little as the output's bias follows each batch's mean
    label; early stopping without a minimum change (``min_delta`` 0, :class:`cmlib.train.callbacks.RunEarlyStopping`)
    counts each such decrease as an improvement.  NaN without the column or without epochs from ``from_epoch`` on."""
    v = np.asarray(history.get("val_loss", []), dtype=float)
    ep = np.asarray(history.get("epoch", np.arange(1, v.size + 1)))
    v = v[ep >= from_epoch] if ep.size == v.size else v[:0]
    return float(np.nanmax(v) - np.nanmin(v)) if v.size else float("nan")


#: :func:`late_gain` above this (0.5 %) is a validation loss still falling at a run's end, not the drift of one that
#: has stopped learning (dead networks drift by ~1e-4 of their loss; the fair ResNet152V2 runs gained 0.8-1.2 % in
#: their last 3 of 30 epochs).
LATE_GAIN_MIN = 0.005


def late_window(epochs: int) -> int:
    """The last epochs :func:`late_gain` looks at by default: a tenth of the run, at least 3."""
    return max(3, int(epochs) // 10)


def late_gain(history: Mapping[str, np.ndarray], window: int | None = None) -> float:
    """How much a run's best validation loss fell in its last ``window`` epochs (default: a tenth of the run, at
    least 3), relative to the best before them: (best before - best in the window) / best before; 0 where the
    window did not improve on what came before, NaN for a run too short (or without the column).  Above
    :data:`LATE_GAIN_MIN`, the run was still learning when it ended: an annealed schedule that ends so ended on
    its own, yet a longer one may still help."""
    v = np.asarray(history.get("val_loss", []), dtype=float)
    w = late_window(v.size) if window is None else int(window)
    if v.size <= w or not np.isfinite(v[:-w]).any() or not np.isfinite(v[-w:]).any():
        return float("nan")
    before, late = float(np.nanmin(v[:-w])), float(np.nanmin(v[-w:]))
    return max(0.0, (before - late) / before) if before > 0 else float("nan")


def last_median(history: Mapping[str, np.ndarray], key: str, last: int = 5) -> float:
    """The median of the finite values of a run's history column ``key`` over its ``last`` epochs (one noisy epoch
    does not decide); NaN where there are none."""
    a = np.asarray(history.get(key, []), dtype=np.float64)[-last:]
    a = a[np.isfinite(a)]
    return float(np.median(a)) if a.size else float("nan")


def training_findings(history: Mapping[str, np.ndarray], *, last: int = 5) -> list[dict]:
    """Read a run's per-epoch diagnostics (:mod:`cmlib.train.diagnostics`) for the usual failures.

    Medians over the ``last`` epochs: the BatchNorm train/inference gap, a collapse of the predictions to the
    mean, vanishing gradients (at exactly zero: an image path cut), dead ReLUs and a dead head (all the dense
    head's units off: measured where the run recorded ``dead_head``; for older runs inferred, and listed only where
    found, from an output that does not vary at all, :data:`CONSTANT_OUTPUT_RATIO`).  Returns one dict per check
    (``check``, ``value``, ``threshold``, ``found``: bool, ``text``); an empty list when the run recorded no
    diagnostics.
    """
    if "mse_train_eval" not in history or np.asarray(history["mse_train_eval"]).size == 0:
        return []

    def tail(key):
        return last_median(history, key, last)

    out = []
    ps, ls = tail("pred_std_train"), tail("label_std_train")
    constant = bool(_constant_output(ps, ls))
    ev, bs = tail("mse_train_eval"), tail("mse_train_batchstats")
    if np.isfinite(ev) and np.isfinite(bs) and bs > 0:
        r = ev / bs
        same = abs(r - 1.0) < 1e-6
        why = ("the output is one constant, so the two modes cannot differ" if constant else
               "no BatchNorm or dropout")
        out.append(dict(check="BatchNorm train/inference gap", value=r, threshold=BN_GAP_FACTOR,
                        found=r > BN_GAP_FACTOR,
                        text=f"inference and training mode give the same error ({why})" if same else
                        f"on the same training clusters the inference-mode error is {r:.2f}\u00d7 the training-mode "
                        "error (BatchNorm's moving statistics against the batch's own)"))
    if np.isfinite(ps) and np.isfinite(ls) and ls > 0:
        r = ps / ls
        out.append(dict(check="collapse to the mean", value=r, threshold=COLLAPSE_RATIO, found=r < COLLAPSE_RATIO,
                        text=f"the predictions spread {ps:.3f} dex against the labels' {ls:.3f} dex ({r:.0%})"))
    gf, gl = tail("grad_norm_first"), tail("grad_norm_last")
    if np.isfinite(gf) and np.isfinite(gl) and gl > 0:
        r = gf / gl
        # exactly zero is not a gradient that shrank with depth but a path cut: some layer's units all died
        out.append(dict(check="image path cut" if gf == 0 else "vanishing gradients", value=r,
                        threshold=VANISHING_RATIO, found=r < VANISHING_RATIO,
                        text="the first layer receives no gradient at all (exactly zero: nothing of the image "
                        "reaches the output)" if gf == 0 else f"the first layer's gradient is {r:.2g} times the "
                        "output layer's"))
    d = tail("dead_relu")
    if np.isfinite(d):
        out.append(dict(check="dead ReLUs", value=d, threshold=DEAD_RELU_FRACTION, found=d > DEAD_RELU_FRACTION,
                        text=f"{d:.0%} of the ReLU channels never fire on the probe clusters"))
    dh = tail("dead_head")
    if np.isfinite(dh):
        # measured (runs from cmlib 2026-11-30 on): the share of the dense head's units that never fire
        out.append(dict(check="dead head", value=dh, threshold=1.0, found=dh >= 1.0,
                        text=("every ReLU unit of the dense head is off for every probe cluster (a dead head): the "
                              "output is one constant, whatever the image and the redshift, and almost no gradient "
                              "passes the head to the layers below") if dh >= 1.0 else
                        f"{dh:.0%} of the dense head's ReLU units never fire on the probe clusters"))
    elif constant:
        # inferred (older runs): every cmlib model feeds the redshift into its dense ReLU head, so an output that
        # does not move even with z, epoch after epoch (an output kernel would get a gradient from any live unit),
        # has every head unit off for every cluster, and then (almost) no gradient passes the head
        out.append(dict(check="dead head", value=ps / ls, threshold=CONSTANT_OUTPUT_RATIO, found=True,
                        text=(f"the predictions do not vary at all ({ps:.1g} dex): the redshift enters the dense "
                              "head directly, so one output for every cluster means that every ReLU unit of the "
                              "head is off for every probe cluster (a dead head), and almost no gradient passes it "
                              "to the layers below")))
    return out
