"""Every figure type of the thesis, each a function of run artifacts or data arrays.

All functions return a :class:`matplotlib.figure.Figure` and never train or
load a deep-learning backend.  Styling is shared (:func:`apply_style`), and
each model keeps one colour across the book.

Residuals are x = predicted - true (thesis eq. 4.0.2); "sigma" in
annotations is the thesis's eq. (4.0.1) (the spread of |x|) and is always
shown beside the standard deviation of x, labelled, so the two are not confused.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from . import metrics as M  # noqa: E402
from .artifacts import Run  # noqa: E402
from .errors import InputError  # noqa: E402
from .metrics import Predictions  # noqa: E402

#: Colours of the reference estimators (not models of the registry).
REFERENCE_COLORS = {"classical": "#17becf", "mean": "#7f7f7f", "redshift": "#b8860b"}
#: Colours of the registered models, by registration order (the basic CNN dark grey): a model added
#: to the registry gets the next colour, and every other model keeps its own.
_PALETTE = ("#4d4d4d", "#8c564b", "#1f77b4", "#aec7e8", "#d62728", "#ff9896", "#2ca02c", "#98df8a",
            "#9467bd", "#c5b0d5", "#ff7f0e", "#ffbb78", "#e377c2", "#f7b6d2", "#bcbd22", "#dbdb8d")
TRAIN_COLOR = "#1f77b4"
VAL_COLOR = "#ff7f0e"
MASS_LABEL = r"$\log_{10}(M_{500}^{\rm true}/M_\odot)$"
PRED_LABEL = r"$\log_{10}(M_{500}^{\rm NN}/M_\odot)$"
RESID_LABEL = r"$x = \log M^{\rm NN} - \log M^{\rm true}$ [dex]"

_STYLE = {
    "figure.dpi": 100,
    "savefig.dpi": 110,
    "figure.figsize": (6.4, 4.2),
    "font.size": 10,
    "axes.titlesize": 10.5,
    "axes.labelsize": 10,
    "legend.fontsize": 8.5,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "image.origin": "upper",
}


#: histories shorter than this are drawn with markers: a one-epoch run is otherwise invisible
FEW_EPOCHS = 15
#: axis labels of the history columns
LOSS_LABELS = {"loss": "training loss", "val_loss": "validation loss"}


def apply_style() -> None:
    """Apply the book's matplotlib style (idempotent)."""
    matplotlib.rcParams.update(_STYLE)


def color(model: str) -> str:
    """The colour of a model (from its place in the registry) or of a reference estimator."""
    from . import models

    if model in REFERENCE_COLORS:
        return REFERENCE_COLORS[model]
    names = models.available_models()
    return _PALETTE[names.index(model) % len(_PALETTE)] if model in names else "#333333"


def _display(model: str) -> str:
    from . import models

    return models.get_spec(model).display_name if model in models.available_models() else model


def _smooth(y, k: int | None):
    """Eq. (A.1.1) where its window is full (the first k-1 epochs are not drawn: no start-up artefact)."""
    return M.sma_full(y, k) if k and k > 1 and len(y) >= k else None


def _new(nrows=1, ncols=1, figsize=None, **kw):
    apply_style()
    fig, axes = plt.subplots(nrows, ncols, figsize=figsize, **kw)
    return fig, axes


def _bare(ax) -> None:
    """An image axis: no ticks, no grid."""
    ax.grid(False)
    ax.set_xticks([])
    ax.set_yticks([])


def _stats_text(p: Predictions) -> str:
    m = M.point_metrics(p.pred, p.true)
    txt = (f"$\\sigma$ (eq. 4.0.1) = {m['sigma']:.3f}\n$\\mu$ (eq. 4.0.4) = {m['mu']:+.3f}\n"
           f"std(x) = {m['std']:.3f} dex\nn = {m['n']}")
    if p.sigma is not None:
        u = M.uncertainty_metrics(p.pred, p.true, p.sigma)
        txt += f"\n$\\pm1\\sigma$ coverage = {u['coverage_1sigma']:.0%}"
    return txt


# ---------------------------------------------------------------- training history

def _marker(n_epochs: int) -> str | None:
    """Point markers for short histories (a one-epoch line has no length)."""
    return "o" if n_epochs < FEW_EPOCHS else None


def _positive(*arrays) -> bool:
    """True if every finite value is positive: a log loss axis would drop the others (a Gaussian negative
    log-likelihood goes below zero)."""
    for a in arrays:
        a = np.asarray(a, dtype=float)
        if np.any(a[np.isfinite(a)] <= 0):
            return False
    return True


def _epoch_axes(ax, log: bool, positive: bool = True) -> None:
    """The x axis of a training history (integer epochs) and, optionally, a log loss axis; for losses that go
    below zero (Gaussian NLL) a symmetric log axis, linear within ±1, so that the first epochs' large losses
    do not flatten the rest."""
    if log and positive:
        ax.set_yscale("log")
    elif log:
        ax.set_yscale("symlog", linthresh=1.0)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _reference_lines(ax, references: Sequence[tuple[str, float, str]], suffix: str) -> None:
    """``(label, loss, kind)`` as dashed horizontal lines in ``REFERENCE_COLORS[kind]``, labelled with the value
    and ``suffix`` ('label (0.0776 dex²)')."""
    for label, value, kind in references:
        ax.axhline(value, color=REFERENCE_COLORS.get(kind, "0.5"), ls="--", lw=1.1,
                   label=f"{label} ({value:.3g}{suffix})")


def _legend_below(fig, handles: Sequence, ncol: int, *, fontsize: float, base: float, per_row: float) -> None:
    """One legend under all panels (each handle once, labelled with its own label), the panels shrunk to leave
    ``base`` of the figure's height for its first row and ``per_row`` for each further one."""
    fig.legend(handles, [h.get_label() for h in handles], loc="lower center", ncol=ncol, fontsize=fontsize,
               frameon=False)
    fig.tight_layout(rect=(0, base + per_row * ((len(handles) - 1) // ncol), 1, 1))


def plot_history(run: Run, *, ax=None, sma_k: int | None = None, log: bool = True,
                 title: str | None = None, mark_best: bool = True,
                 references: Sequence[tuple[str, float, str]] = ()) -> Figure:
    """Training and validation loss per epoch (thesis Figs. 22, 28, 30, 34, 36, ...).

    ``sma_k`` smooths both curves with the simple moving average of eq. (A.1.1)
    (the raw curves stay visible, faint).  The best epoch (lowest validation
    loss) is marked; so is early stopping, when it happened.  ``references``:
    ``(label, loss, kind)`` drawn as dashed horizontal lines in the colour of
    ``REFERENCE_COLORS[kind]`` (e.g. what predicting from the redshift alone
    scores on the validation clusters: :func:`cmlib.book.pages.history_references`).
    """
    h = run.history
    if ax is None:
        fig, ax = _new()
    else:
        fig = ax.figure
    ep = h["epoch"]
    for key, col, lab in (("loss", TRAIN_COLOR, "training loss"), ("val_loss", VAL_COLOR, "validation loss")):
        y = h[key]
        smooth = _smooth(y, sma_k)
        if smooth is not None:
            ax.plot(ep, y, color=col, alpha=0.25, lw=0.8)
            ax.plot(ep, smooth, color=col, lw=1.6, label=f"{lab} (SMA, k={sma_k}, from epoch {sma_k})")
        else:
            ax.plot(ep, y, color=col, lw=1.4, label=lab, marker=_marker(len(ep)), ms=3)
    if mark_best and len(ep):
        val = h["val_loss"]
        if np.isfinite(val).any():
            b = int(np.nanargmin(val))
            ax.axvline(ep[b], color="k", ls=":", lw=1)
            ax.annotate(f"min val. loss {val[b]:.3g}\nepoch {ep[b]}", (ep[b], val[b]),
                        xytext=(8, 14), textcoords="offset points", fontsize=8)
    mse = run.config.get("loss", "mse") == "mse"
    _reference_lines(ax, references, (" dex²" if mse else "") + ", validation clusters")
    _epoch_axes(ax, log, _positive(h["loss"], h["val_loss"], np.array([v for _, v, _ in references])))
    if references:
        # the question is where the losses sit against the references: the first epochs' losses from scratch,
        # often hundreds of times larger, would flatten that, so the axis is cut above the references and every
        # loss after epoch 3 (never above a later epoch: an overfitting validation curve stays in view)
        vals = [np.asarray(h[k], dtype=float) for k in ("loss", "val_loss")]
        late = np.concatenate([v[3:] for v in vals])
        late = late[np.isfinite(late)]
        top = max(3.0 * max(v for _, v, _ in references), 1.15 * late.max() if late.size else 0.0)
        every = np.concatenate(vals)
        every = every[np.isfinite(every) & (every > 0)]
        if every.size and top < every.max():
            ax.set_ylim(0.8 * min(every.min(), min(v for _, v, _ in references)), top)
    ax.set_ylabel(f"loss ({run.config.get('loss', 'mse').upper()})" + (" [dex²]" if mse else ""))
    reason = run.status_info.get("stopped_reason", "")
    ax.set_title(title or f"{_display(run.model)}, seed {run.seed}" + (f" ({reason})" if reason else ""))
    if references:      # four entries: inside the axes they would hide a reference line (the mean's runs on top)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, fontsize=8, frameon=False)
    else:
        ax.legend(loc="upper right")
    return fig


def plot_history_comparison(runs: Mapping[str, Run], *, sma_k: int = 100, log: bool = True,
                            keys: Sequence[str] = ("loss", "val_loss")) -> Figure:
    """Fig. 49: training (left) and validation (right) loss of several models, SMA-smoothed.

    The window is the thesis's k = 100, shrunk to a fifth of a run for short runs, and each smoothed
    curve starts where its window is full. Runs of a few epochs are drawn as large points (a
    one-epoch run is a single point). One legend below both panels, in a readable size.
    """
    fig, axes = _new(1, len(keys), figsize=(6.0 * len(keys), 4.6), squeeze=False)
    handles = {}
    for ax, key in zip(axes[0], keys):
        for label, run in runs.items():
            h = run.history
            y = h[key]
            if len(y) == 0:
                continue
            k = min(sma_k, max(1, len(y) // 5)) if sma_k else 1
            smooth = _smooth(y, k)
            n = len(y)
            line, = ax.plot(h["epoch"], smooth if smooth is not None else y, color=color(run.model), lw=1.8,
                            marker=_marker(n), ms=7 if n < 3 else 4,
                            label=f"{label} ({n} ep." + (f", SMA k={k})" if smooth is not None else ")"))
            handles.setdefault(label, line)
        _epoch_axes(ax, log, _positive(*(run.history[key] for run in runs.values())))
        ax.set_ylabel(LOSS_LABELS.get(key, key))
    _legend_below(fig, list(handles.values()), min(4, max(1, len(handles))), fontsize=9.5, base=0.08,
                  per_row=0.045)
    return fig


def plot_seed_histories(runs: Sequence[Run], *, sma_k: int | None = None, key: str = "val_loss",
                        log: bool = True, references: Sequence[tuple[str, float, str]] = ()) -> Figure:
    """One loss curve per seed of one configuration: how reproducible the training is.

    The thesis trained every model ten times because single runs differed so much
    (its Sect. 4.1); ``sma_k`` smooths each curve with eq. (A.1.1).  ``references``: ``(label, loss, kind)``
    dashed lines as in :func:`plot_history` (the seeds of one configuration share its validation clusters, so
    one set of floors holds for all); the legend then goes below the axes.
    """
    fig, ax = _new(figsize=(6.4, 3.6 + (0.5 if references else 0.0)))
    for run in runs:
        h = run.history
        y = h[key]
        if len(y) == 0:
            continue
        smooth = _smooth(y, sma_k)
        ax.plot(h["epoch"], smooth if smooth is not None else y, lw=1.2, label=f"seed {run.seed}",
                marker=_marker(len(y)), ms=3)
    mse = all(run.config.get("loss", "mse") == "mse" for run in runs)
    _reference_lines(ax, references, (" dex²" if mse else "") + ", validation clusters")
    _epoch_axes(ax, log, _positive(*(run.history[key] for run in runs), np.array([v for _, v, _ in references])))
    ax.set_ylabel(LOSS_LABELS.get(key, key) + (f" (SMA k={sma_k})" if sma_k and sma_k > 1 else ""))
    if references:
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, fontsize=8, frameon=False)
    else:
        ax.legend(ncol=2, fontsize=9)
    fig.tight_layout()
    return fig


def plot_lr_comparison(runs: Mapping[str, Run], *, log: bool = True) -> Figure:
    """Fig. 25: training histories side by side for different learning rates (or any label)."""
    fig, axes = _new(1, len(runs), figsize=(5.2 * len(runs), 3.9), squeeze=False, sharey=True)
    for ax, (label, run) in zip(axes[0], runs.items()):
        plot_history(run, ax=ax, log=log, title=label)
    fig.tight_layout()
    return fig


def plot_validation_curves(panels: Mapping[str, Mapping[str, Run]],
                           references: Mapping[str, Sequence[tuple[str, float, str]]] | None = None) -> Figure:
    """Validation loss against epoch, one panel per model, one line per recipe (the recipe comparison).

    ``panels`` maps a panel title (a model) to ``{recipe label: run}``; each run's best epoch
    (lowest validation loss) is marked.  The same split, input and epoch budget make the lines
    comparable within a panel.  ``references`` (per panel title): ``(label, loss, kind)`` drawn as
    dashed lines, as in :func:`plot_history`.
    """
    fig, axes = _new(1, max(1, len(panels)), figsize=(5.4 * max(1, len(panels)), 3.9), squeeze=False)
    for ax, (title, runs) in zip(axes[0], panels.items()):
        for k, (label, run) in enumerate(runs.items()):
            h = run.history
            ep, val = np.asarray(h["epoch"]), np.asarray(h["val_loss"], dtype=float)
            if not ep.size:
                continue
            col = f"C{k}"
            ax.plot(ep, val, color=col, lw=1.8, marker=_marker(ep.size), label=label)
            b = int(np.nanargmin(val))
            ax.plot(ep[b], val[b], "o", color=col, ms=8, mfc="none", mew=1.6)
        _reference_lines(ax, (references or {}).get(title, ()), " dex²")
        _epoch_axes(ax, log=True)
        ax.set_ylabel("validation loss (MSE) [dex$^2$]")
        ax.set_title(title)
        if not references:
            ax.legend(fontsize=9)
    if references:      # one legend below the panels (the same seeds and floors recur): inside, it hid curves
        handles = {}
        for ax in axes[0]:
            for h, lab in zip(*ax.get_legend_handles_labels()):
                handles.setdefault(lab, h)
        ncol = max(1, min(3, len(panels) + 1, len(handles)))     # one panel: two columns, not wider than it
        _legend_below(fig, list(handles.values()), ncol, fontsize=9, base=0.115, per_row=0.055)
    else:
        fig.tight_layout()
    return fig


# ---------------------------------------------------------------- predictions

def _scatter(ax, p: Predictions, *, col: str, label: str | None = None, alpha: float = 0.5,
             errorbars: bool = True, lim=(12.9, 15.1), s: float = 7, identity: bool = True) -> None:
    finite = np.concatenate([p.true[np.isfinite(p.true)], p.pred[np.isfinite(p.pred)]])
    if finite.size and (finite.min() < lim[0] or finite.max() > lim[1]):
        # predictions outside the thesis's range (an untrained or diverged model): show them anyway
        lim = (min(lim[0], float(finite.min()) - 0.1), max(lim[1], float(finite.max()) + 0.1))
    if p.sigma is not None and errorbars and p.true.size <= 1500:
        ax.errorbar(p.true, p.pred, yerr=p.sigma, fmt="none", ecolor=col, alpha=0.25, lw=0.6)
    ax.scatter(p.true, p.pred, s=s, color=col, alpha=alpha, lw=0, label=label)
    if identity:
        ax.plot(lim, lim, color="k", lw=1, label="identity")
    ax.set_xlim(*lim)
    ax.set_ylim(*lim)
    ax.set_aspect("equal")
    ax.set_xlabel(MASS_LABEL)
    ax.set_ylabel(PRED_LABEL)


def plot_pred_vs_true(run_or_preds, *, subsets: Sequence[str] = ("test", "train"),
                      title: str | None = None, model: str | None = None) -> Figure:
    """Predicted vs true mass with the identity, test and train side by side (Figs. 23, 26)."""
    preds, model = _preds_and_model(run_or_preds, model)
    subsets = [s for s in subsets if s in preds]
    fig, axes = _new(1, len(subsets), figsize=(4.6 * len(subsets), 4.5), squeeze=False)
    for ax, s in zip(axes[0], subsets):
        p = preds[s]
        _scatter(ax, p, col=color(model))
        ax.text(0.03, 0.97, _stats_text(p), transform=ax.transAxes, va="top", fontsize=8,
                bbox=dict(fc="white", ec="0.8", alpha=0.9))
        ax.set_title(f"{_display(model)}: {'test' if s == 'test' else s} set")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_residual_hist(run_or_preds, *, subsets: Sequence[str] = ("test", "train"), bins: int = 40,
                       model: str | None = None, xlim=(-1.0, 1.0)) -> Figure:
    """Histograms of x = predicted - true with mu and sigma (Figs. 24, 27)."""
    preds, model = _preds_and_model(run_or_preds, model)
    subsets = [s for s in subsets if s in preds]
    fig, axes = _new(1, len(subsets), figsize=(4.6 * len(subsets), 3.6), squeeze=False)
    edges = np.linspace(xlim[0], xlim[1], bins + 1)
    for ax, s in zip(axes[0], subsets):
        p = preds[s]
        x = np.clip(p.x[np.isfinite(p.x)], xlim[0], xlim[1])
        ax.hist(x, bins=edges, color=color(model), alpha=0.8)
        m = M.point_metrics(p.pred, p.true)
        ax.axvline(0, color="k", lw=1)
        ax.axvline(m["mu"], color="r", ls="--", lw=1.2, label=f"$\\mu$ = {m['mu']:+.3f}")
        ax.set_xlabel(RESID_LABEL)
        ax.set_ylabel("clusters")
        ax.set_title(f"{_display(model)}: {s} set")
        ax.text(0.97, 0.97, f"$\\sigma$ (4.0.1) = {m['sigma']:.3f}\nstd(x) = {m['std']:.3f}",
                transform=ax.transAxes, ha="right", va="top", fontsize=8)
        ax.legend(loc="upper left")
    fig.tight_layout()
    return fig


def plot_model_vs_reference(run_or_preds, reference, *, subset: str = "test", model: str | None = None,
                            ref_model: str | None = None, ref_label: str | None = None,
                            label: str | None = None) -> Figure:
    """A model (colour) over the basic CNN (grey): scatter and histogram (Figs. 50-51, 54-57). ``label`` and
    ``ref_label`` name them in the legends (default: the models' display names)."""
    preds, model = _preds_and_model(run_or_preds, model)
    rpreds, ref_model = _preds_and_model(reference, ref_model)
    label = label or _display(model)
    p, r = preds[subset], rpreds[subset]
    fig, (a1, a2) = _new(1, 2, figsize=(10, 4.4))
    _scatter(a1, r, col="0.6", label=ref_label or _display(ref_model), alpha=0.5, errorbars=False)
    _scatter(a1, p, col="#1f77b4", label=label, alpha=0.55, errorbars=False, identity=False)
    a1.legend(loc="lower right")
    a1.set_title(f"{subset} set")
    edges = np.linspace(-1, 1, 41)
    for q, col, lab, kind in ((r, "0.65", ref_label or _display(ref_model), "stepfilled"),
                              (p, "#1f77b4", label, "step")):
        m = M.point_metrics(q.pred, q.true)
        a2.hist(np.clip(q.x, -1, 1), bins=edges, color=col, histtype=kind, lw=1.8,
                alpha=0.7 if kind == "stepfilled" else 1.0,
                label=f"{lab}: $\\sigma$={m['sigma']:.3f}, $\\mu$={m['mu']:+.3f}")
    a2.axvline(0, color="k", lw=1)
    a2.set_xlabel(RESID_LABEL)
    a2.set_ylabel("clusters")
    a2.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_binned(preds_by_label: Mapping[str, Predictions], *, by: str = "mass", bins=None,
                colors: Mapping[str, str] | None = None, styles: Mapping[str, str] | None = None) -> Figure:
    """Bias (top) and scatter (bottom) of x in bins of true mass or redshift; ``styles``: a line style per
    label (e.g. dashed for the reference estimators), solid otherwise."""
    fig, (a1, a2) = _new(2, 1, figsize=(6.4, 5.6), sharex=True)
    for label, p in preds_by_label.items():
        var = p.true if by == "mass" else p.z
        if var is None:
            continue
        b = bins if bins is not None else ((13.0, 13.5, 14.0, 14.5, 15.0) if by == "mass" else 5)
        rows = [r for r in M.binned_metrics(p.pred, p.true, var, b) if r["n"] >= 5]
        c = [r["center"] for r in rows]
        col, ls = (colors or {}).get(label), (styles or {}).get(label, "-")
        a1.plot(c, [r["bias"] for r in rows], marker="o", label=label, color=col, ls=ls)
        a2.plot(c, [r["std"] for r in rows], marker="o", label=label, color=col, ls=ls)
    a1.axhline(0, color="k", lw=0.8)
    a1.set_ylabel("bias = mean(x) [dex]")
    a2.set_ylabel("std(x) [dex]")
    a2.set_xlabel(MASS_LABEL if by == "mass" else "redshift z")
    a1.legend(fontsize=7.5, ncol=2)
    fig.tight_layout()
    return fig


def plot_seed_spread(metrics_by_seed: Sequence[Mapping], *, key: str = "sigma", subset: str = "test",
                     model: str = "", thesis_value: float | None = None) -> Figure:
    """The spread over seeds of one metric; the best run (as the thesis picked it) highlighted."""
    vals = np.asarray([m.get(subset, {}).get(key, np.nan) for m in metrics_by_seed], dtype=float)
    fig, ax = _new(figsize=(5.6, 3.2))
    xs = np.arange(len(vals))
    ax.bar(xs, np.where(np.isfinite(vals), vals, 0), color=color(model), alpha=0.8)
    if len(vals) and np.isfinite(vals).any():
        b = M.best_run_index(metrics_by_seed, by=key, split=subset)
        ax.bar([b], [vals[b]], color="none", ec="k", lw=1.5, label="best run (thesis choice)")
        ax.axhline(np.nanmean(vals), color="k", ls="--", lw=1, label=f"mean {np.nanmean(vals):.3f}")
    if thesis_value is not None:
        ax.axhline(thesis_value, color="r", ls=":", lw=1.2, label=f"thesis {thesis_value}")
    ax.set_xticks(xs)
    ax.set_xlabel("seed (run)")
    ax.set_ylabel(f"{key} ({subset})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_calibration(p: Predictions, *, model: str = "") -> Figure:
    """Pull distribution and coverage-vs-interval for Gaussian-output models."""
    if p.sigma is None:
        raise ValueError("calibration needs predicted uncertainties (a Gaussian NLL model)")
    fig, (a1, a2) = _new(1, 2, figsize=(9.5, 3.6))
    pull = p.x / p.sigma
    g = np.linspace(-4, 4, 200)
    a1.hist(np.clip(pull, -4, 4), bins=np.linspace(-4, 4, 41), density=True, color=color(model), alpha=0.7)
    a1.plot(g, np.exp(-g ** 2 / 2) / np.sqrt(2 * np.pi), "k", lw=1.2, label="N(0, 1)")
    a1.set_xlabel("pull = x / $\\sigma_{\\rm pred}$")
    a1.legend()
    k = np.linspace(0.05, 3, 60)
    from scipy.special import erf

    a2.plot(k, [np.mean(np.abs(pull) <= kk) for kk in k], color=color(model), lw=2, label="observed")
    a2.plot(k, erf(k / np.sqrt(2)), "k--", lw=1.2, label="calibrated")
    a2.set_xlabel("interval half-width [$\\sigma_{\\rm pred}$]")
    a2.set_ylabel("coverage")
    a2.legend()
    fig.tight_layout()
    return fig


def _preds_and_model(obj, model: str | None) -> tuple[dict[str, Predictions], str]:
    if isinstance(obj, Run):
        return obj.predictions, model or obj.model
    if isinstance(obj, Predictions):
        return {"test": obj}, model or ""
    return dict(obj), model or ""


# ---------------------------------------------------------------- data figures

def plot_distributions(log_m500, z, *, bins: int = 40, reference: Mapping | None = None) -> Figure:
    """Fig. 17: the mass (left) and redshift (right) distributions of the catalogue."""
    fig, (a1, a2) = _new(1, 2, figsize=(10, 3.6))
    a1.hist(log_m500, bins=bins, color="#1f77b4", alpha=0.85)
    a1.set_xlabel(MASS_LABEL)
    a1.set_ylabel("clusters")
    a2.hist(z, bins=bins, color="#ff7f0e", alpha=0.85)
    a2.set_xlabel("redshift z")
    a2.set_ylabel("clusters")
    if reference:
        for q, v in (reference.get("z_quantiles") or {}).items():
            a2.axvline(v, color="k", ls=":", lw=0.8)
        if "log_m_median" in reference:
            a1.axvline(reference["log_m_median"], color="k", ls=":", lw=0.8, label="eFEDS median")
            a1.legend()
    fig.tight_layout()
    return fig


def plot_cluster(image2d, *, cap: float | None = 3.0, title: str = "", ax=None, cmap="magma",
                 colorbar: bool = True) -> Figure:
    """One band of one cluster, photon values capped at ``cap`` as in thesis Fig. 18."""
    if ax is None:
        fig, ax = _new(figsize=(4.0, 3.6))
    else:
        fig = ax.figure
    img = np.asarray(image2d, dtype=float)
    im = ax.imshow(np.minimum(img, cap) if cap else img, cmap=cmap, vmin=0, vmax=cap, interpolation="nearest")
    ax.set_title(title, fontsize=9)
    _bare(ax)
    if colorbar:
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="photons" + (f" (capped at {cap:g})" if cap else ""))
    return fig


def plot_band_images(image3d, *, cap: float | None = 3.0, title: str = "", cmap="magma") -> Figure:
    """All bands of one cluster (thesis Fig. 19), one panel per band with its energy range."""
    from .schema import BAND_EDGES_EV

    img = np.asarray(image3d, dtype=float)
    n = img.shape[-1]
    ncols = 5 if n > 4 else n
    nrows = int(np.ceil(n / ncols))
    fig, axes = _new(nrows, ncols, figsize=(2.2 * ncols, 2.3 * nrows + 0.4), squeeze=False)
    vmax = cap if cap else float(img.max())
    for i in range(nrows * ncols):
        ax = axes.flat[i]
        _bare(ax)
        if i >= n:
            ax.axis("off")
            continue
        ax.imshow(np.minimum(img[..., i], vmax), cmap=cmap, vmin=0, vmax=vmax, interpolation="nearest")
        if n == len(BAND_EDGES_EV) - 1:
            ax.set_title(f"{BAND_EDGES_EV[i]:.0f}\u2013{BAND_EDGES_EV[i + 1]:.0f} eV", fontsize=8)
        else:
            ax.set_title(f"channel {i}", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_cluster_grid(images2d, titles: Sequence[str], *, cap: float | None = 3.0, ncols: int = 6,
                      cmap="magma") -> Figure:
    """A grid of single-band cluster images with titles (e.g. mass and redshift)."""
    n = len(images2d)
    nrows = int(np.ceil(n / ncols))
    fig, axes = _new(nrows, ncols, figsize=(1.9 * ncols, 2.05 * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        _bare(ax)
        if i >= n:
            ax.axis("off")
            continue
        img = np.asarray(images2d[i], dtype=float)
        ax.imshow(np.minimum(img, cap) if cap else img, cmap=cmap, vmin=0, vmax=cap, interpolation="nearest")
        ax.set_title(titles[i], fontsize=7.5)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- CNN fundamentals

def plot_convolution(image2d, kernel, feature_map, *, titles=("input", "kernel", "feature map")) -> Figure:
    """Input, kernel (with its values) and feature map side by side (thesis Figs. 5-6)."""
    fig, axes = _new(1, 3, figsize=(10, 3.4), gridspec_kw={"width_ratios": [1, 0.55, 1]})
    for ax, arr, t in zip(axes, (image2d, kernel, feature_map), titles):
        _bare(ax)
        a = np.asarray(arr, dtype=float)
        im = ax.imshow(a, cmap="RdBu_r" if t == titles[1] or a.min() < 0 else "magma",
                       vmin=-np.abs(a).max() if a.min() < 0 else None,
                       vmax=np.abs(a).max() if a.min() < 0 else None, interpolation="nearest")
        ax.set_title(f"{t} {a.shape[0]}x{a.shape[1]}")
        if a.shape[0] <= 5:
            for (i, j), v in np.ndenumerate(a):
                ax.text(j, i, f"{v:g}", ha="center", va="center", fontsize=11)
        else:
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return fig


def plot_activations() -> Figure:
    """The four activation functions of thesis Fig. 9 (eqs. 2.4.6-2.4.9)."""
    x = np.linspace(-3, 3, 601)
    funcs = {
        "(a) step, eq. 2.4.6": (x > 0).astype(float),
        "(b) tanh, eq. 2.4.7": np.tanh(x),
        "(c) ReLU, eq. 2.4.8": np.maximum(0, x),
        "(d) leaky ReLU (a = 0.1), eq. 2.4.9": np.where(x > 0, x, 0.1 * x),
    }
    fig, axes = _new(1, 4, figsize=(13, 3.0), sharey=False)
    for ax, (t, y) in zip(axes, funcs.items()):
        ax.plot(x, y, lw=2)
        ax.axhline(0, color="k", lw=0.6)
        ax.axvline(0, color="k", lw=0.6)
        ax.set_title(t, fontsize=9)
        ax.set_xlabel("x")
    axes[0].set_ylabel("f(x)")
    fig.tight_layout()
    return fig


def plot_images_row(images: Sequence, titles: Sequence[str], *, cmap="magma", cap=None,
                    figsize_per=3.2) -> Figure:
    """Several 2-D arrays side by side (pooling comparisons, pipeline steps)."""
    n = len(images)
    fig, axes = _new(1, n, figsize=(figsize_per * n, figsize_per * 0.95), squeeze=False)
    for ax, img, t in zip(axes[0], images, titles):
        a = np.asarray(img, dtype=float)
        ax.imshow(np.minimum(a, cap) if cap else a, cmap=cmap, vmin=0 if cap else None, vmax=cap,
                  interpolation="nearest")
        ax.set_title(f"{t}\n{a.shape[0]}x{a.shape[1]}", fontsize=9)
        _bare(ax)
    fig.tight_layout()
    return fig


def to_png_bytes(fig: Figure, dpi: int = 90) -> bytes:
    """Render a figure to PNG bytes (for static widgets) and close it."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


# ---------------------------------------------------------------- physics figures

def _shade_bands(ax, alpha: float = 0.06) -> None:
    from .schema import BAND_EDGES_EV, THESIS_BANDS

    for i in range(len(BAND_EDGES_EV) - 1):
        lo, hi = BAND_EDGES_EV[i] / 1e3, BAND_EDGES_EV[i + 1] / 1e3
        ax.axvspan(lo, hi, color="C1" if i in THESIS_BANDS else "0.5", alpha=alpha * (2.5 if i in THESIS_BANDS else 1),
                   lw=0)


def plot_spectra(kts: Sequence[float] = (0.5, 1.0, 2.0, 5.0, 10.0), *, nh_cm2: float = 3e20,
                 metallicity: float = 0.3, e_range=(0.1, 20.0)) -> Figure:
    """Thermal spectra at several temperatures, with and without Galactic absorption (cf. thesis Fig. 2).

    Energy spectra E dN/dE of the bremsstrahlung continuum plus approximate
    lines (:func:`cmlib.physics.cluster_photon_spectrum`), normalised to the
    same emission measure; dashed: absorbed by N_H (Morrison & McCammon 1983).
    The ten bands of thesis Table 1 are shaded (the thesis's three in orange).
    """
    from . import physics

    e = np.geomspace(e_range[0], e_range[1], 3000)
    fig, ax = _new(figsize=(7.2, 4.4))
    cmap = plt.get_cmap("plasma")
    trans = physics.galactic_transmission(e, nh_cm2)
    for k, kt in enumerate(kts):
        col = cmap(0.1 + 0.8 * k / max(1, len(kts) - 1))
        s = e * physics.cluster_photon_spectrum(e, kt, metallicity, lines=True)
        cont = e * physics.bremsstrahlung_photon_spectrum(e, kt)
        ax.plot(e, cont, color=col, lw=0.8, alpha=0.6)
        ax.plot(e, s * trans, color=col, lw=1.6, ls="--")
        ax.plot(e, s, color=col, lw=1.2, label=f"kT = {kt:g} keV ({kt * 11.6:.0f} MK)")
    _shade_bands(ax)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylim(1e-4, 3)
    ax.set_xlim(*e_range)
    ax.set_xlabel("photon energy E [keV]")
    ax.set_ylabel(r"$E\,dN/dE$ [arbitrary, per emission measure]")
    ax.set_title(f"thermal emission; thin: continuum only, dashed: absorbed by N$_H$ = {nh_cm2:.0e} cm$^{{-2}}$",
                 fontsize=9)
    ax.legend(fontsize=8, loc="lower left")
    return fig


def plot_spectrum_in_bands(kt: float, z: float, *, nh_cm2: float = 3e20, metallicity: float = 0.3,
                           dpi_small: bool = False) -> Figure:
    """One cluster spectrum as eROSITA sees it: observed-frame spectrum (left), counts per band (right).

    The rest-frame spectrum (continuum + lines) is redshifted, absorbed,
    multiplied by the effective area and redistributed into the ten bands
    (:func:`cmlib.instrument.thermal_rate_per_flux_direct`); the bars are the
    share of the source counts per band.
    """
    from . import instrument, physics
    from .schema import THESIS_BANDS

    e = np.linspace(0.15, 3.0, 1200)
    fig, (a1, a2) = _new(1, 2, figsize=(9.6, 3.4), gridspec_kw={"width_ratios": [1.25, 1]})
    spec = physics.cluster_photon_spectrum(e * (1 + z), kt, metallicity, lines=True)
    obs = spec * physics.galactic_transmission(e, nh_cm2) * instrument.effective_area(e)
    a1.plot(e, obs / obs.max(), color="C3", lw=1.4, label="detected (absorbed × effective area)")
    a1.plot(e, spec / spec[np.searchsorted(e, 1.0)] * (obs / obs.max())[np.searchsorted(e, 1.0)],
            color="0.4", lw=0.9, ls="--", label="emitted, redshifted")
    _shade_bands(a1)
    a1.set_xlim(0.15, 3.0)
    a1.set_ylim(0, 1.35)
    a1.set_xlabel("observed energy [keV]")
    a1.set_ylabel("photons per keV (scaled)")
    a1.legend(fontsize=7.5, loc="upper right")
    a1.set_title(f"kT = {kt:g} keV, z = {z:g}", fontsize=9.5)
    rates = instrument.thermal_rate_per_flux_direct(kt, z, nh_cm2, metallicity)
    share = 100 * rates / rates.sum()
    cols = ["C1" if i in THESIS_BANDS else "0.55" for i in range(len(share))]
    a2.bar(np.arange(1, len(share) + 1), share, color=cols)
    for i, v in enumerate(share):
        a2.text(i + 1, v + 0.3, f"{v:.0f}", ha="center", fontsize=7)
    a2.set_xticks(np.arange(1, len(share) + 1))
    a2.set_xlabel("band (thesis Table 1; orange: bands 2\u20134)")
    a2.set_ylabel("share of the counts [%]")
    a2.set_ylim(0, max(30, share.max() * 1.2))
    a2.set_title(f"bands 2\u20134 hold {share[list(THESIS_BANDS)].sum():.0f} % of the counts", fontsize=9.5)
    fig.tight_layout()
    return fig


def plot_std_comparison(sets: Mapping[str, Predictions], colors: Mapping[str, str], *,
                        references: Mapping[str, float] | None = None) -> Figure:
    """Test std(x) of several estimators as bars; ``references`` (label -> std [dex]) as labelled lines,
    e.g. the Bayes-optimal estimators E[log M | noiseless inputs] of the mock's population."""
    names = list(sets)
    vals = [M.point_metrics(p.pred, p.true)["std"] for p in sets.values()]
    fig, ax = _new(figsize=(7.5, 1.4 + 0.36 * len(names)))
    ax.barh(names, vals, color=[colors.get(n, "#333333") for n in names])
    for (label, value), ls in zip((references or {}).items(), ("--", ":", "-.", (0, (5, 1)))):
        ax.axvline(value, color="k", ls=ls, lw=1.2, label=label)
    if references:
        # just below the axis label: about 0.6 inch under axes of about 0.36 inch a bar
        ax.legend(fontsize=9, loc="upper center", bbox_to_anchor=(0.5, -0.65 / (0.36 * len(names) + 0.5)), ncol=1,
                  frameon=False)
    ax.set_xlabel("std(x) on the test set [dex]")
    ax.invert_yaxis()
    fig.tight_layout()
    return fig


def plot_split_histograms(log_m500, z, split) -> Figure:
    """Mass (left) and redshift (right) distributions of the subsets of a split (normalised)."""
    fig, (a1, a2) = _new(1, 2, figsize=(10, 3.4))
    for name in ("train", "val", "test"):
        rows = getattr(split, name)
        if rows.size == 0:
            continue
        a1.hist(log_m500[rows], bins=25, density=True, histtype="step", lw=1.6, label=f"{name} ({rows.size})")
        a2.hist(z[rows], bins=25, density=True, histtype="step", lw=1.6, label=name)
    a1.set_xlabel(MASS_LABEL)
    a2.set_xlabel("redshift z")
    a1.set_ylabel("density")
    a1.legend()
    fig.tight_layout()
    return fig


SCALING_TITLES = {"raw": "raw photon counts (the thesis)", "log1p": "log(1 + counts)",
                  "standardize": "standardised per band (training-set mean and std)"}


def plot_scaling(values_by_mode: Mapping[str, np.ndarray]) -> Figure:
    """Histograms of pixel values under each intensity scaling (log counts), titled for readers."""
    fig, axes = _new(1, len(values_by_mode), figsize=(3.7 * len(values_by_mode), 3.0), squeeze=False)
    for ax, (mode, v) in zip(axes[0], values_by_mode.items()):
        ax.hist(np.asarray(v).ravel(), bins=60, color="C0", log=True)
        ax.set_title(SCALING_TITLES.get(mode, mode), fontsize=9)
        ax.set_xlabel("pixel value")
    axes[0][0].set_ylabel("pixels")
    fig.tight_layout()
    return fig


#: Line styles of the head-probe variants (``benchmarks/effnet_head.py``).
_PROBE_STYLE = {"fair": ("k", "-"), "lr/10": (TRAIN_COLOR, "--"), "gap": (VAL_COLOR, "-.")}


def plot_head_probe(result: Mapping) -> Figure:
    """The first training steps of a model's head (``benchmarks/effnet_head.py``), one line per variant, two
    panels: the share of the head's ReLU units that are off for every probe cluster, and their mean
    pre-activation (a push below zero that exceeds a unit's spread across the clusters kills it for all of them)."""
    variants = result.get("variants") or []
    if not variants:
        raise InputError("the head probe holds no variants; run benchmarks/effnet_head.py")
    fig, a = _new(1, 2, figsize=(11.0, 4.0))
    for v in variants:
        col, ls = _PROBE_STYLE.get(v["variant"], ("0.5", ":"))
        steps = [r["step"] for r in v["rows"]]
        lab = f"{v['variant']} (lr {v['lr_first_epoch']:.1e}, {'Flatten' if v['head'] == 'flatten' else 'GAP'})"
        a[0].plot(steps, [100 * r["head_dead"] for r in v["rows"]], color=col, ls=ls, lw=1.5, marker="o", ms=3,
                  label=lab)
        a[1].plot(steps, [r["head_shift"] for r in v["rows"]], color=col, ls=ls, lw=1.5, marker="o", ms=3)
    a[0].set_ylim(0, 100)
    a[0].set_ylabel("head units off for every cluster [%]")
    a[0].set_title("dead head units")
    a[1].axhline(0, color="0.6", lw=0.8)
    a[1].set_ylabel("mean pre-activation of the head units")
    a[1].set_title("pushed below zero?")
    for ax in a:
        ax.set_xlabel("training step (batch of 32)")
    a[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_diagnostics(run: Run) -> Figure:
    """A run's per-epoch diagnostics (:mod:`cmlib.train.diagnostics`) in four panels (2 x 2): the training error as
    fit reports it and on the probe in inference and training mode (the BatchNorm gap), with the validation loss
    (memorisation: the training loss falls away from it); prediction and
    label spread (a collapse to the mean); gradient norms (vanishing gradients); dead ReLU channels."""
    h = run.history
    if "mse_train_eval" not in h:
        raise InputError(f"{run.path.name}: the run recorded no diagnostics (runs made before cmlib recorded "
                         "them have none); train it again to get them")
    ep = h["epoch"]
    fig, axes = _new(2, 2, figsize=(11.0, 7.6), squeeze=False)
    a = axes.ravel()
    mk = _marker(len(ep))
    if run.config.get("loss", "mse") == "mse":
        a[0].plot(ep, h["loss"], color=TRAIN_COLOR, lw=1.2, marker=mk, ms=3, label="training loss (fit, augmented)")
        # memorisation (cmlib.metrics.memorisation): the training loss falls away from the validation loss
        a[0].plot(ep, h["val_loss"], color="0.45", lw=1.2, ls="-.", marker=mk, ms=3, label="validation loss")
    a[0].plot(ep, h["mse_train_eval"], color="k", lw=1.4, marker=mk, ms=3, label="probe, inference mode")
    a[0].plot(ep, h["mse_train_batchstats"], color=VAL_COLOR, lw=1.2, ls="--", marker=mk, ms=3,
              label="probe, training mode")
    a[0].set_yscale("log")
    a[0].set_ylabel("MSE [dex²]")
    a[0].set_title("BatchNorm gap (probe)? memorisation (validation)?")
    a[1].plot(ep, h["pred_std_train"], color="k", lw=1.4, marker=mk, ms=3, label="predictions")
    a[1].plot(ep, h["label_std_train"], color="0.5", lw=1.0, ls=":", label="labels")
    a[1].set_ylim(bottom=0)
    a[1].set_ylabel("spread on the probe [dex]")
    a[1].set_title("collapse to the mean?")
    for key, col, lab in (("grad_norm", "k", "all weights"), ("grad_norm_first", TRAIN_COLOR, "first layer"),
                          ("grad_norm_last", VAL_COLOR, "output layer")):
        a[2].plot(ep, h[key], color=col, lw=1.2, marker=mk, ms=3, label=lab)
    a[2].set_yscale("log")
    a[2].set_ylabel("gradient L2 norm")
    a[2].set_title("vanishing gradients?")
    relu = np.isfinite(np.asarray(h["dead_relu"], dtype=float)).any()
    head = "dead_head" in h and np.isfinite(np.asarray(h["dead_head"], dtype=float)).any()
    if relu:
        a[3].plot(ep, 100 * h["dead_relu"], color="k", lw=1.4, marker=mk, ms=3, label="ReLU channels")
    if head:
        a[3].plot(ep, 100 * h["dead_head"], color=VAL_COLOR, lw=1.2, ls="--", marker=mk, ms=3, label="dense head units")
    a[3].set_xlim(a[2].get_xlim())
    if not relu:
        a[3].text(0.5, 0.5, "ReLU channels not recorded: no ReLU in the\nbackbone (EfficientNet's is swish) or a "
                  "band\nadapter in front of it" + ("" if head else ";\na dead dense head shows as prediction spread 0\n"
                                                "(upper right)"),
                  transform=a[3].transAxes, ha="center", va="center", fontsize=9, color="0.35")
    a[3].set_ylim(0, 100)
    a[3].set_ylabel("dead ReLU channels [%]")
    a[3].set_title("dead units?")
    for ax in a:
        ax.set_xlabel("epoch")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def label_offsets(x: np.ndarray, y: np.ndarray, *, min_gap: float, near: float, down: bool = False) -> np.ndarray:
    """New vertical positions of point labels (display units) so that two labels within ``near`` of each other
    in x are at least ``min_gap`` apart in y: taken in order of y (of -y when ``down``: labels that hang below
    their points make room downwards), each label moves away from the ones already placed, as little as it must."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    sign = -1.0 if down else 1.0
    out = y.copy()
    placed: list[int] = []
    for i in np.argsort(sign * y, kind="stable"):
        for j in sorted(placed, key=lambda k: sign * out[k]):
            if abs(x[i] - x[j]) < near and sign * (out[i] - out[j]) < min_gap:
                out[i] = out[j] + sign * min_gap
        placed.append(int(i))
    return out


def plot_cost_accuracy(points: Sequence[Mapping], *, mean_predictor: float | None = None) -> Figure:
    """Test std(x) (mean ± standard deviation over seeds) against the cost of a model: GFLOPs per image (left)
    and training time per seed (right, in the points' ``time_unit``: CPU core-hours or wall-clock hours), log
    scales; the basic CNN's level dashed, predicting the mean mass dotted. ``points``: :func:`cmlib.book.comparison.cost_accuracy_points`."""
    fig, axes = _new(1, 2, figsize=(12.0, 4.4), squeeze=False)
    ref = next((p for p in points if p["name"] == "basic"), None)
    unit = points[0].get("time_unit", "wall-clock hours") if points else "wall-clock hours"
    for ax, key, label in ((axes[0][0], "gflops", "GFLOPs per image (forward pass)"),
                           (axes[0][1], "time_h", f"training time per seed [{unit}]")):
        xs = np.log10([max(p[key], 1e-12) for p in points])
        middle = 0.5 * (xs.min() + xs.max()) if len(xs) else 0.0
        for p in points:
            ax.errorbar(p[key], p["std_mean"], yerr=p["std_sd"] or None, fmt="o", ms=6, capsize=3,
                        color="k" if p is ref else TRAIN_COLOR)
        ax.set_xscale("log")
        ax.margins(x=0.3)                       # room for the names of the outermost points
        ax.autoscale_view()
        # names of the costly points go to their left, below the point where it lies under the basic CNN's
        # line, so that neither leaves the axes nor sits on that line; names that would overlap are moved apart
        # vertically, with a thin line to their point
        sides = [(p is not ref and lx > middle, ref is not None and p is not ref and p["std_mean"] < ref["std_mean"])
                 for p, lx in zip(points, xs)]
        anchor = ax.transData.transform([(p[key], p["std_mean"]) for p in points]) if points else np.zeros((0, 2))
        pt = 72.0 / fig.dpi                     # points per pixel
        shift = np.zeros(len(points))
        for side in set(sides):                 # a side's names share one offset: only their anchors matter
            idx = [i for i, sd in enumerate(sides) if sd == side]
            shift[idx] = label_offsets(anchor[idx, 0], anchor[idx, 1], min_gap=9.9 / pt,   # a line of 8-pt text
                                       near=200.0 / pt, down=side[1]) - anchor[idx, 1]
        for p, (left, below), dy in zip(points, sides, shift):
            off = (-6 if left else 6, (-6 if below else 4) + dy * pt)
            ax.annotate(p["model"], (p[key], p["std_mean"]), xytext=off, textcoords="offset points", fontsize=8,
                        ha="right" if left else "left", va="top" if below else "baseline",
                        arrowprops=dict(arrowstyle="-", lw=0.5, color="0.5", shrinkA=0, shrinkB=3)
                        if abs(dy * pt) > 2 else None)
        if ref is not None:
            ax.axhline(ref["std_mean"], color="k", ls="--", lw=0.8, label="basic CNN")
        if mean_predictor is not None:
            ax.axhline(mean_predictor, color="0.5", ls=":", lw=1.0, label="predict the mean mass")
        ax.set_xlabel(label)
        ax.set_ylabel("test std(x) [dex]")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
