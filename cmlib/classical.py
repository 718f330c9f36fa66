"""Classical (non-ML) mass estimators and the Bayes-optimal references of the mock.

A survey without neural networks estimates a cluster mass from its X-ray
luminosity (or count rate) and redshift by inverting a scaling relation.  This
module does exactly that for cmlib's mock, with the mock's *own* median L_X-M
and kT-M relations and its own spectral and instrument conversion, so the
comparison with the CNNs is fair: whatever the networks gain over it comes from
information beyond the total flux (shape, size, spectrum), or from learning the
selection.

* :func:`observed_source_counts` - aperture photometry minus a background annulus,
  applicable to ANY image array (e.g. the exact test split the CNNs see).
* :func:`estimate_log_mass` - counts, count rate or luminosity + z -> log10 M500c.
* :func:`information_floor` - the scatter that the mock's scaling-relation scatter
  alone imposes on any L_X-based estimate, analytically and measured.
* :func:`fair_estimate` - the *fair* classical estimator: it sees only what the CNN
  sees (the image in the same bands, z, a nominal exposure), masks point sources,
  takes a sigma-clipped annulus background and corrects the Eddington/Malmquist
  bias with the mock's population prior.
* :func:`reference_estimators` - Bayes-optimal E[log M | inputs] for noiseless
  catalogue quantities, from a large draw of the mock's own population.

Limitations (by design, the "simple inversion"): the estimate inverts the
*median* relation, with no Eddington/Malmquist correction, so near the flux limit
(low masses, high z) it is biased high - the selected clusters there are the
over-luminous ones; temperature and metallicity are those of the median
relation; the aperture model averages over the morphology mix of a reference
selected population and treats sub-clumps as centred and isophotes as round;
the background annulus (default 6-9.5') contains cluster flux for nearby
massive clusters, which the model subtracts too (on average, not per cluster).
"""
from __future__ import annotations

import functools
import math

import numpy as np

from . import instrument, physics
from .errors import InputError
from .schema import BAND_EDGES_EV, IMAGE_SIZE, N_BANDS

#: Default photometry geometry [arcmin]: aperture radius and background annulus.
DEFAULT_APERTURE_ARCMIN = 2.0
DEFAULT_ANNULUS_ARCMIN = (6.0, 9.5)
#: Default centre of the aperture in pixel coordinates (the centre of a 50 x 50 image;
#: with the thesis padding the cluster stays in the top-left 50 x 50 corner, so it is the same).
DEFAULT_CENTER = (IMAGE_SIZE / 2.0, IMAGE_SIZE / 2.0)
_KINDS = ("counts", "rate", "luminosity")


def _params(params):
    from .simulate import SimulationParams

    p = params or SimulationParams()
    if not isinstance(p, SimulationParams):
        raise InputError(f"params must be a cmlib.simulate.SimulationParams, got {type(p).__name__}")
    return p


# --------------------------------------------------------------------------- photometry

def _masks(shape_hw: tuple[int, int], aperture_arcmin: float, annulus_arcmin, pixel_scale_arcsec: float,
           center) -> tuple[np.ndarray, np.ndarray]:
    h, w = shape_hw
    cy, cx = center[1], center[0]
    yy, xx = np.mgrid[:h, :w]
    r = np.hypot(xx + 0.5 - cx, yy + 0.5 - cy) * pixel_scale_arcsec / 60.0
    ap = r <= aperture_arcmin
    if annulus_arcmin is None:
        return ap, np.zeros_like(ap)
    lo, hi = annulus_arcmin
    return ap, (r >= lo) & (r <= hi)


def observed_source_counts(images, background_per_pixel=None, aperture_arcmin: float = DEFAULT_APERTURE_ARCMIN,
                           annulus_arcmin: tuple[float, float] = DEFAULT_ANNULUS_ARCMIN,
                           pixel_scale_arcsec: float = 24.0, center: tuple[float, float] = DEFAULT_CENTER,
                           per_band: bool = False) -> np.ndarray:
    """Background-subtracted source counts in a circular aperture (aperture photometry).

    Parameters
    ----------
    images : array (n, H, W, C) or (H, W, C)
        Count images (any band selection; smoothed or not - smoothing conserves counts).
    background_per_pixel : float or array (C,) or (n, C) or (n,), optional
        Known background per pixel (and band).  If None, the mean of the
        annulus ``annulus_arcmin`` is used (it then also removes the mean
        contribution of field point sources).
    aperture_arcmin : float
        Aperture radius [arcmin] around ``center``.
    center : (x, y)
        Aperture centre in pixel coordinates (pixel (i, j) spans [j, j+1) x [i, i+1));
        default the centre of a 50 x 50 image, also right for the thesis padding.
    per_band : bool
        Return (n, C) per-band counts instead of their sum over bands (n,).

    Returns
    -------
    numpy.ndarray
        Source counts (may be negative for faint sources: noise).
    """
    x = np.asarray(images)
    single = x.ndim == 3
    if single:
        x = x[None]
    if x.ndim != 4:
        raise InputError(f"images must have shape (n, H, W, C) or (H, W, C), got {np.shape(images)}")
    if not aperture_arcmin > 0:
        raise InputError(f"aperture_arcmin must be positive, got {aperture_arcmin}")
    ap, ann = _masks(x.shape[1:3], aperture_arcmin, annulus_arcmin if background_per_pixel is None else None,
                     pixel_scale_arcsec, center)
    if not ap.any():
        raise InputError("the aperture contains no pixel; enlarge aperture_arcmin or check center")
    src = x[:, ap, :].astype(np.float64).sum(axis=1)                     # (n, C)
    if background_per_pixel is None:
        if not ann.any():
            raise InputError("the background annulus contains no pixel; pass annulus_arcmin inside the image "
                             "or give background_per_pixel")
        bg = x[:, ann, :].astype(np.float64).mean(axis=1)                # (n, C)
    else:
        bg = np.asarray(background_per_pixel, dtype=np.float64)
        if bg.ndim == 1 and bg.size == x.shape[0] and bg.size != x.shape[-1]:
            bg = bg[:, None]
    out = src - ap.sum() * bg
    out = out if per_band else out.sum(axis=1)
    return out[0] if single else out


# --------------------------------------------------------------------------- aperture model

@functools.lru_cache(maxsize=8)
def _reference_morphology(params) -> dict[str, np.ndarray]:
    """Morphologies of a reference selected population (a seed no data set uses by default)."""
    from .simulate import draw_population

    pop = draw_population(400, seed=2 ** 31 - 1, params=params)
    return {k: pop[k] for k in ("rc_r500", "beta", "cc_core_fraction", "subclump_fraction")}


@functools.lru_cache(maxsize=16)
def _aperture_table(params, aperture_arcmin: float, annulus, pixel_scale: float, blur: bool):
    """Model counts in the aperture minus the annulus-scaled background, per unit counts inside R500.

    Tabulated against theta500 [arcmin] for the mean radial profile of the
    reference morphologies, blurred by the PSF and the smoothing when ``blur``.
    """
    p = params
    ref = _reference_morphology(p)
    th_grid = np.exp(np.linspace(np.log(0.2), np.log(40.0), 48))
    k_os = 4
    pix = pixel_scale / 60.0
    pad = int(math.ceil(p.psf_max_arcmin / pix)) if (blur and p.psf) else 0
    n_out = IMAGE_SIZE + 2 * pad
    nf = n_out * k_os
    fine = pix / k_os
    coords = (np.arange(nf) + 0.5) * fine - n_out * pix / 2.0
    r2d = np.hypot(coords[None, :], coords[:, None])
    kernel = instrument.king_kernel(pixel_scale / k_os, p.psf_core_arcsec, p.psf_index, p.psf_max_arcmin * 60.0) \
        if (blur and p.psf) else None
    ap_mask, ann_mask = _masks((IMAGE_SIZE, IMAGE_SIZE), aperture_arcmin, annulus, pixel_scale, DEFAULT_CENTER)
    tr = p.truncation_r500
    rgrid = np.concatenate([[0.0], np.geomspace(1e-4, tr, 500)])      # radius / theta500
    f_core, f_sub = ref["cc_core_fraction"], ref["subclump_fraction"]
    comps = [(1.0 - f_core - f_sub, ref["rc_r500"]), (f_core, np.full(f_core.size, p.cc_core_rc)),
             (f_sub, np.full(f_sub.size, p.subclump_rc))]
    soft = 0.5 * fine
    out_ap, out_ann = np.empty(th_grid.size), np.empty(th_grid.size)
    from scipy.signal import fftconvolve

    from .simulate import smooth_images

    for i, th in enumerate(th_grid):
        # mean surface brightness per unit R500 flux, radius in arcmin; cores softened by half a fine pixel
        prof = np.zeros(rgrid.size)
        for f, rc in comps:
            rs = np.hypot(rc * th, soft)[:, None]
            beta = ref["beta"][:, None]
            s = physics.beta_model(rgrid[None, :] * th, rs, beta) / physics.beta_model_cumulative(th, rs, beta)
            prof += (f[:, None] * s).mean(axis=0)
        img = np.interp(r2d, rgrid * th, prof, right=0.0) * fine * fine
        if kernel is not None:
            img = fftconvolve(img, kernel, mode="same")
        crop = slice(pad * k_os, (pad + IMAGE_SIZE) * k_os)
        img = img[crop, crop].reshape(IMAGE_SIZE, k_os, IMAGE_SIZE, k_os).sum(axis=(1, 3))
        if blur and p.smoothing and p.smoothing_sigma_px > 0:
            img = smooth_images(img[None, :, :, None], p.smoothing_sigma_px)[0, :, :, 0]
        a = img[ap_mask].sum()
        b = img[ann_mask].mean() * ap_mask.sum() if ann_mask.any() else 0.0
        out_ap[i], out_ann[i] = a, b
    return th_grid, out_ap - out_ann


def aperture_fraction(theta500_arcmin, params=None, aperture_arcmin: float = DEFAULT_APERTURE_ARCMIN,
                      annulus_arcmin=DEFAULT_ANNULUS_ARCMIN, pixel_scale_arcsec: float = 24.0,
                      blur: bool = True) -> np.ndarray:
    """Measured aperture counts (minus annulus background) per unit source counts inside R500.

    For the mean morphology of the mock, as a function of theta500 [arcmin];
    includes the PSF and the smoothing (``blur``) and the cluster flux that the
    annulus subtracts.  ``annulus_arcmin=None``: a known background.
    """
    p = _params(params)
    ann = None if annulus_arcmin is None else (float(annulus_arcmin[0]), float(annulus_arcmin[1]))
    th, frac = _aperture_table(p, float(aperture_arcmin), ann, float(pixel_scale_arcsec), bool(blur))
    return np.interp(np.log(np.asarray(theta500_arcmin, dtype=float)), np.log(th), frac)


# --------------------------------------------------------------------------- estimator

def _bands(bands) -> np.ndarray:
    if bands is None:
        return np.arange(N_BANDS)
    b = np.atleast_1d(np.asarray(bands, dtype=int))
    if b.size == 0 or b.min() < 0 or b.max() >= N_BANDS or len(set(b.tolist())) != b.size:
        raise InputError(f"bands must be distinct zero-based band indices in 0..{N_BANDS - 1}, got {bands!r} "
                         "(e.g. cmlib.schema.THESIS_BANDS = (1, 2, 3) for bands 2-4)")
    return b


def predicted_counts(log_m500, z, exposure=None, nH=None, params=None, bands=None,
                     aperture_arcmin: float | None = None, annulus_arcmin=DEFAULT_ANNULUS_ARCMIN,
                     blur: bool = True) -> np.ndarray:
    """Median source counts of a cluster of mass 10**log_m500 at z (the model the estimator inverts).

    Median L_X and kT from the mock's relations, metallicity the mean, the
    mock's spectral and instrument conversion in ``bands`` (zero-based;
    default all).  ``aperture_arcmin=None``: counts inside R500; a number: the
    aperture photometry of :func:`observed_source_counts` (PSF, smoothing and
    annulus included via :func:`aperture_fraction`).
    """
    from .simulate import conversion

    p = _params(params)
    log_m = np.asarray(log_m500, dtype=float)
    z = np.broadcast_to(np.asarray(z, dtype=float), log_m.shape)
    t = np.broadcast_to(np.asarray(p.exposure_median_s if exposure is None else exposure, dtype=float), log_m.shape)
    nh_default = 0.5 * (p.nh_min + p.nh_max) if p.absorption else 0.0
    nh = np.broadcast_to(np.asarray(nh_default if nH is None else nH, dtype=float), log_m.shape)
    if not p.absorption:
        nh = np.zeros_like(nh)
    m = 10.0 ** log_m
    lx = physics.lx_mass_relation(m, z, p.lx_norm, p.lx_slope, p.lx_ez_power, p.mass_pivot)
    kt = physics.kt_mass_relation(m, z, p.kt_norm, p.kt_slope, p.mass_pivot)
    conv = conversion(p)
    rates = conv.rate_per_flux(kt.ravel(), z.ravel(), nh.ravel(), np.full(kt.size, p.metallicity_mean), p.lines)
    rate = rates[:, _bands(bands)].sum(axis=1).reshape(log_m.shape)
    d_l = physics.distance_table(3.0).luminosity(z) * physics.MPC_TO_CM
    counts = lx / (4.0 * np.pi * d_l ** 2) * rate * t
    if aperture_arcmin is not None:
        th = physics.theta500_arcmin(m, z, physics.distance_table(3.0).angular_diameter(z))
        counts = counts * aperture_fraction(th, p, aperture_arcmin, annulus_arcmin, p.pixel_scale_arcsec, blur)
    return counts


def estimate_log_mass(counts_or_rate, z, exposure=None, nH=None, params=None, kind: str = "counts",
                      bands=None, aperture_arcmin: float | None = None,
                      annulus_arcmin=DEFAULT_ANNULUS_ARCMIN, min_counts: float = 1.0) -> np.ndarray:
    """Classical mass estimate log10(M500c / Msun) from counts, count rate or luminosity and z.

    Inverts the mock's median relations (the "simple inversion": no
    Eddington/Malmquist correction; see the module docstring).

    Parameters
    ----------
    counts_or_rate : array
        ``kind="counts"``: background-subtracted source counts (e.g. from
        :func:`observed_source_counts`, or the catalogue's ``expected_counts_r500``);
        ``kind="rate"``: counts per second; ``kind="luminosity"``: L_X (0.5-2 keV rest,
        < R500) [erg/s].
    z : array
        Redshifts.
    exposure : array or float, optional
        Exposure [s] for ``kind="counts"``; default the median exposure of ``params``.
    nH : array or float, optional
        Galactic N_H [cm^-2]; default the middle of the mock's range.
    params : SimulationParams, optional
        The mock whose relations are inverted (default: the default mock).
    bands : sequence of int, optional
        Zero-based bands the counts were summed over (default all ten).
    aperture_arcmin : float, optional
        None: the counts are those inside R500; a number: aperture photometry
        with this radius and ``annulus_arcmin`` (as :func:`observed_source_counts`).
    min_counts : float
        Counts (or the equivalent rate) below this are raised to it, so that
        faint, noise-dominated measurements give a finite (upper-limit-like) estimate.

    Returns
    -------
    numpy.ndarray
        Estimated log10(M500c / Msun), same shape as the input.
    """
    if kind not in _KINDS:
        raise InputError(f"kind must be one of {', '.join(_KINDS)}, got {kind!r}")
    p = _params(params)
    y = np.asarray(counts_or_rate, dtype=float)
    z = np.asarray(z, dtype=float)
    try:
        y, z = np.broadcast_arrays(y, z)
    except ValueError:
        raise InputError(f"counts_or_rate {np.shape(counts_or_rate)} and z {np.shape(z)} do not match") from None
    if not np.all(np.isfinite(y)) or not np.all(np.isfinite(z)):
        raise InputError("counts_or_rate and z must be finite (NaN or inf found)")
    if np.any(z <= 0) or np.any(z > 3.0):
        raise InputError("z must lie in (0, 3]")
    if kind == "luminosity":
        if np.any(y <= 0):
            raise InputError("luminosities must be positive")
        return np.log10(physics.mass_from_lx(y, z, p.lx_norm, p.lx_slope, p.lx_ez_power, p.mass_pivot))
    t = np.broadcast_to(np.asarray(p.exposure_median_s if exposure is None else exposure, dtype=float), y.shape)
    if np.any(t <= 0):
        raise InputError("exposure must be positive")
    if kind == "rate":
        y = y * t
    y = np.maximum(y, min_counts)
    nh = None if nH is None else np.broadcast_to(np.asarray(nH, dtype=float), y.shape)
    lo = np.full(y.shape, 11.0)
    hi = np.full(y.shape, 16.5)
    log_y = np.log(y)
    # bisection in log mass: the model counts rise monotonically with mass
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        pred = predicted_counts(mid, z, t, nh, p, bands, aperture_arcmin, annulus_arcmin)
        up = np.log(np.maximum(pred, 1e-300)) < log_y
        lo = np.where(up, mid, lo)
        hi = np.where(up, hi, mid)
    return 0.5 * (lo + hi)


# --------------------------------------------------------------------------- information floor

def _resid_stats(est: np.ndarray, true: np.ndarray) -> dict[str, float]:
    x = est - true
    return {"mean": float(np.mean(x)), "std": float(np.std(x)), "sigma_thesis": float(np.std(np.abs(x))),
            "n": int(x.size)}


def information_floor(params=None, n: int = 4000, seed: int = 12345) -> dict:
    """The scatter in log10 M that the mock's own scatter imposes on L_X-based estimates.

    Returns a dict with

    * ``analytic`` - sigma(log10 M | L) = sigma_lnL / (B ln 10) (B the L-M slope),
      the same with the cool-core offset known (only the random part of the
      L scatter), and with the temperature known too (the L-T correlation,
      optimal linear combination of the L and T estimates);
    * ``empirical`` - residual statistics (mean, std, thesis sigma = std of
      |x|) of the simple inversion on a simulated selected population of ``n``
      clusters using (a) the true L_X, (b) the true expected counts inside R500
      (exact exposure and N_H), (c) Poisson draws of (b) - photon noise, no
      background.  (a) differs from the analytic value through the selection
      (Eddington bias: the mean residual is positive).

    Residuals are x = estimate - true (dex).  Uses no images, so it is fast.
    """
    from .simulate import draw_population, lnl_morph

    p = _params(params)
    ln10 = math.log(10.0)
    b_l = p.lx_slope
    off_cc, off_other, sig_rand = lnl_morph(p)
    f_cc = p.cool_core_fraction if p.cool_cores else 0.0
    sig_l = math.sqrt(sig_rand ** 2 + (off_cc - off_other) ** 2 * f_cc * (1.0 - f_cc))
    s1 = sig_rand / b_l                          # ln M from ln L (random part)
    s2 = (p.sigma_lnT if p.scatter else 0.0) / max(p.kt_slope, 1e-12)
    cov = p.rho_LT * sig_rand * (p.sigma_lnT if p.scatter else 0.0) / (b_l * max(p.kt_slope, 1e-12))
    den = s1 * s1 + s2 * s2 - 2 * cov
    var_lt = (s1 * s1 * s2 * s2 - cov * cov) / den if den > 0 else min(s1, s2) ** 2
    analytic = {
        "sigma_logM_given_L": sig_l / (b_l * ln10),
        "sigma_logM_given_L_and_morphology": sig_rand / (b_l * ln10),
        "sigma_logM_given_L_T_and_morphology": math.sqrt(max(var_lt, 0.0)) / ln10,
        "formula": "sigma_lnL / (B ln 10); with T: optimal combination of ln M estimates from ln L and ln T "
                   "with correlation rho_LT",
    }
    pop = draw_population(n, seed, p)
    true = pop["log_m500"]
    est_l = estimate_log_mass(pop["L_X_500"], pop["z"], params=p, kind="luminosity")
    c_true = pop["expected_counts_r500"]
    est_c = estimate_log_mass(c_true, pop["z"], pop["exposure_s"], pop["nH"], p, "counts")
    rng = np.random.default_rng(seed)
    c_obs = rng.poisson(c_true).astype(float)
    est_p = estimate_log_mass(c_obs, pop["z"], pop["exposure_s"], pop["nH"], p, "counts")
    empirical = {
        "true_luminosity": _resid_stats(est_l, true),
        "true_expected_counts_r500": _resid_stats(est_c, true),
        "poisson_counts_r500": _resid_stats(est_p, true),
        "median_counts_r500": float(np.median(c_true)),
    }
    return {"analytic": analytic, "empirical": empirical, "n": n, "seed": seed,
            "bands_ev": [float(BAND_EDGES_EV[0]), float(BAND_EDGES_EV[-1])]}


# --------------------------------------------------------------------------- fair classical estimator

def mask_point_sources(images, center=DEFAULT_CENTER, protect_arcmin: float = 1.5, nsigma: float = 4.0,
                       pixel_scale_arcsec: float = 24.0) -> np.ndarray:
    """Boolean mask (n, H, W), True where a pixel is kept: point sources outside the cluster core removed.

    A pixel of the band-summed image more than ``nsigma`` Poisson deviations
    above the image's median level, outside ``protect_arcmin`` of the centre,
    is taken as a point source; it and its 8 neighbours (the PSF core spans
    ~1 pixel of 24") are masked.
    """
    from scipy.ndimage import binary_dilation

    x = np.asarray(images, dtype=np.float64)
    if x.ndim == 3:
        x = x[None]
    tot = x.sum(axis=-1)
    n, h, w = tot.shape
    yy, xx = np.mgrid[:h, :w]
    r = np.hypot(xx + 0.5 - center[0], yy + 0.5 - center[1]) * pixel_scale_arcsec / 60.0
    level = np.median(tot.reshape(n, -1), axis=1)[:, None, None]
    # smoothing (sigma = 1 px) spreads a pixel's Poisson variance over ~4 pi sigma^2 pixels
    hot = (tot > level + nsigma * np.sqrt(np.maximum(level, 0.5) / (4.0 * np.pi))) & (r[None] > protect_arcmin)
    struct = np.ones((1, 3, 3), bool)
    return ~binary_dilation(hot, structure=struct)


def robust_background(images, keep=None, annulus_arcmin=DEFAULT_ANNULUS_ARCMIN, center=DEFAULT_CENTER,
                      pixel_scale_arcsec: float = 24.0, clip: float = 3.0, iters: int = 5) -> np.ndarray:
    """Background per pixel and band (n, C): sigma-clipped median of the annulus, point sources masked."""
    x = np.asarray(images, dtype=np.float64)
    if x.ndim == 3:
        x = x[None]
    _, ann = _masks(x.shape[1:3], 1.0, annulus_arcmin, pixel_scale_arcsec, center)
    keep = np.ones(x.shape[:3], bool) if keep is None else keep
    out = np.empty((x.shape[0], x.shape[-1]))
    for i in range(x.shape[0]):
        vals = x[i][ann & keep[i]]                                   # (m, C)
        ok = np.ones(vals.shape, bool)
        for _ in range(iters):
            med = np.array([np.median(vals[ok[:, c], c]) if ok[:, c].any() else 0.0 for c in range(vals.shape[1])])
            sd = np.array([1.4826 * np.median(np.abs(vals[ok[:, c], c] - med[c])) if ok[:, c].any() else 0.0
                           for c in range(vals.shape[1])])
            ok = np.abs(vals - med) <= clip * np.maximum(sd, 1e-6)
        out[i] = [vals[ok[:, c], c].mean() if ok[:, c].any() else med[c] for c in range(vals.shape[1])]
    return out


def fair_counts(images, aperture_arcmin: float = DEFAULT_APERTURE_ARCMIN, center=DEFAULT_CENTER,
                pixel_scale_arcsec: float = 24.0) -> np.ndarray:
    """Aperture counts minus the robust background, point sources masked (masked pixels filled with it)."""
    x = np.asarray(images, dtype=np.float64)
    if x.ndim == 3:
        x = x[None]
    keep = mask_point_sources(x, center, pixel_scale_arcsec=pixel_scale_arcsec)
    bg = robust_background(x, keep, center=center, pixel_scale_arcsec=pixel_scale_arcsec)      # (n, C)
    ap, _ = _masks(x.shape[1:3], aperture_arcmin, None, pixel_scale_arcsec, center)
    filled = np.where(keep[..., None], x, bg[:, None, None, :])
    return (filled[:, ap, :].sum(axis=1) - ap.sum() * bg).sum(axis=1)


def _prior_counts(params, bands, n: int, seed: int, aperture_arcmin: float):
    """Population prior draw: (log M, z, simulated fair aperture counts) without images.

    Counts in the aperture: the cluster's expected counts in ``bands`` times the
    aperture fraction of the mean morphology (PSF, smoothing and the annulus's
    share included), at the *nominal* exposure, Poisson noise of source plus
    background in the aperture, minus the background estimated from the
    annulus (its own Poisson error).
    """
    from .simulate import background_per_pixel, draw_population

    p = _params(params)
    b = _bands(bands)
    pop = draw_population(n, seed, p)
    th = pop["R500_arcmin"]
    frac = aperture_fraction(th, p, aperture_arcmin, DEFAULT_ANNULUS_ARCMIN, p.pixel_scale_arcsec, True)
    src = sum(pop[f"expected_counts_band{k + 1}"] for k in b) * frac
    bg_pp = background_per_pixel(pop, slice(0, pop["z"].size), p)[:, b].sum(axis=1)
    ap, ann = _masks((IMAGE_SIZE, IMAGE_SIZE), aperture_arcmin, DEFAULT_ANNULUS_ARCMIN, p.pixel_scale_arcsec,
                     DEFAULT_CENTER)
    rng = np.random.default_rng(seed + 1)
    b_ap = bg_pp * ap.sum()
    meas = rng.poisson(src + b_ap) - rng.poisson(bg_pp * ann.sum()) * ap.sum() / ann.sum()
    return pop["log_m500"], pop["z"], meas


@functools.lru_cache(maxsize=8)
def _prior_table(params, bands: tuple, n: int, seed: int, aperture_arcmin: float):
    log_m, z, c = _prior_counts(params, bands, n, seed, aperture_arcmin)
    return log_m, z, _asinh_counts(c)


def _asinh_counts(c) -> np.ndarray:
    return np.arcsinh(np.asarray(c, dtype=float) / 2.0)


def _knn_mean(train_x: np.ndarray, train_y: np.ndarray, query_x: np.ndarray, k: int) -> np.ndarray:
    from scipy.spatial import cKDTree

    scale = train_x.std(axis=0)
    scale[scale == 0] = 1.0
    tree = cKDTree(train_x / scale)
    _, idx = tree.query(query_x / scale, k=min(k, train_y.size))
    return train_y[idx].mean(axis=1)


def fair_estimate(images, z, params=None, bands=None, n_prior: int = 30_000, prior_seed: int = 2 ** 31 - 7,
                  aperture_arcmin: float = DEFAULT_APERTURE_ARCMIN, k: int = 60) -> np.ndarray:
    """The fair classical estimate of log10 M500c from an image and z (what the CNN sees).

    ``images`` (n, 50, 50, C) hold the bands ``bands`` (zero-based; default
    all ten) in that order.  Steps: point sources masked
    (:func:`mask_point_sources`), background from a sigma-clipped annulus
    (:func:`robust_background`), aperture counts (:func:`fair_counts`); then
    the posterior mean E[log M | counts, z] under the mock's population prior
    (selection included), from a prior draw of ``n_prior`` clusters whose
    counts are simulated with the same aperture model at the *nominal*
    exposure (k nearest neighbours in (asinh counts, z)).  This corrects the
    Eddington/Malmquist bias by construction.  Uses no true exposure, N_H or
    catalogue property.
    """
    p = _params(params)
    b = tuple(int(v) for v in _bands(bands))
    x = np.asarray(images)
    if x.ndim != 4 or x.shape[-1] != len(b):
        raise InputError(f"images must have shape (n, H, W, {len(b)}) for bands {b}, got {x.shape}")
    c = fair_counts(x, aperture_arcmin, pixel_scale_arcsec=p.pixel_scale_arcsec)
    log_m, zp, cp = _prior_table(p, b, int(n_prior), int(prior_seed), float(aperture_arcmin))
    q = np.stack([_asinh_counts(c), np.asarray(z, dtype=float)], axis=1)
    return _knn_mean(np.stack([cp, zp], axis=1), log_m, q, k)


# --------------------------------------------------------------------------- Bayes-optimal references

#: The reference estimators: name -> (catalogue inputs, label).  Each is E[log M | inputs] of the mock's
#: own selected population: the best any method can do *given those noiseless quantities*.
REFERENCE_INPUTS: dict[str, tuple[tuple[str, ...], str]] = {
    "L_true,z": (("log_L", "z"), "E[log M | true L_X, z]: the best any method can do knowing the noiseless "
                                 "luminosity and z"),
    "L_true,z,T": (("log_L", "z", "log_kT"), "E[log M | true L_X, z, kT]: the best any method can do "
                                              "knowing the noiseless luminosity, z and temperature"),
    "L_true,z,theta500,morphology": (("log_L", "z", "log_theta500", "morphology"),
                                     "E[log M | true L_X, z, theta500, morphology]: zero by construction, "
                                     "because theta500 and z fix M500 (R500 ~ M^1/3); not a bound on images"),
    "L_true,z,r_core,morphology": (("log_L", "z", "log_rc", "morphology"),
                                   "E[log M | true L_X, z, core radius, morphology]: the best any "
                                   "method can do knowing the noiseless luminosity, z, core size and morphology"),
}


def _features(pop: dict, names) -> np.ndarray:
    f = {"log_L": np.log10(pop["L_X_500"]), "z": pop["z"], "log_kT": np.log10(pop["kT"]),
         "log_theta500": np.log10(pop["R500_arcmin"]), "morphology": pop["morphology"].astype(float),
         "log_rc": np.log10(pop["r_core_arcmin"])}
    return np.stack([f[k] for k in names], axis=1)


def reference_estimators(params=None, n: int = 100_000, seed: int = 11, k: int = 50) -> dict:
    """Bayes-optimal estimators E[log M | inputs] of the mock's own population, measured out of sample.

    A population of ``n`` selected clusters is drawn; the conditional mean of
    log M given each input set of :data:`REFERENCE_INPUTS` is estimated on one
    half (k nearest neighbours in standardised inputs; morphology, a class,
    is conditioned on exactly) and evaluated on the other half.  Returns per estimator the
    residual statistics (std, thesis sigma = std of |x|, mu; dex) and its
    label.  These are the best any method can do *given those noiseless
    quantities*; they are not bounds on image-based methods (images carry
    photon noise, but also information beyond these inputs).
    """
    from .simulate import draw_population

    p = _params(params)
    pop = draw_population(int(n), int(seed), p)
    y = pop["log_m500"]
    half = y.size // 2
    out = {}
    for name, (inputs, label) in REFERENCE_INPUTS.items():
        if "log_theta500" in inputs:
            # theta500 and z determine M500 exactly: M = (4 pi / 3) 500 rho_c(z) (theta500 D_A)^3
            r_kpc = pop["R500_arcmin"] * physics.ARCMIN_TO_RAD * pop["D_A_Mpc"] * 1e3
            est = np.log10(4.0 / 3.0 * np.pi * 500.0 * physics.critical_density(pop["z"]) * r_kpc ** 3)[half:]
            out[name] = {**_resid_stats(est, y[half:]), "inputs": list(inputs), "label": label}
            continue
        cont = [i for i in inputs if i != "morphology"]
        x = _features(pop, cont)
        if "morphology" in inputs:                      # categorical: condition exactly, class by class
            est = np.empty(y.size - half)
            mtr, mte = pop["morphology"][:half], pop["morphology"][half:]
            for c in np.unique(mte):
                est[mte == c] = _knn_mean(x[:half][mtr == c], y[:half][mtr == c], x[half:][mte == c], k)
        else:
            est = _knn_mean(x[:half], y[:half], x[half:], k)
        out[name] = {**_resid_stats(est, y[half:]), "inputs": list(inputs), "label": label}
    return {"estimators": out, "n": int(y.size), "seed": int(seed), "k": int(k),
            "physics": p.physics, "method": "k-nearest-neighbour conditional mean, fitted on half of the draw, "
                                            "evaluated on the other half"}
