"""An eSASS-like detection and extent selection for the mock (physics v2).

The thesis's clusters were kept when the eROSITA source-detection pipeline
(eSASS) detected them *as extended* (facts Sect. 1 and 3).  eSASS fits each
source with a PSF-convolved beta-model and with a point source and reports a
detection likelihood (DET_LIKE, source vs background) and an extent
likelihood (EXT_LIKE, extended vs point-like).  This module computes the same
two likelihood ratios for a cluster from photon counts in three annuli
around it (0-20", 20-60", 60-180"):

* DET_LIKE = N ln(N / B) - (N - B) for the N counts and B expected background
  counts inside the 60" detection cell (the Poisson likelihood ratio of
  "source + background" against "background only"; 0 if N <= B);
* EXT_LIKE = ln L(extended) - ln L(point), each with its amplitude fitted to
  the counts of the three annuli (the extended model is the cluster's own
  profile, blurred by the PSF; the point model is the PSF).

Compact cool cores look point-like and are lost, large faint groups are not
detected: the selection works on surface brightness *and* size, as eSASS's
does.  Counts are drawn from their own random stream; the total number of
source photons drawn here is the number the image then shows (so the image
carries the detection's photon-noise fluctuation, the root of the Eddington bias).
"""
from __future__ import annotations

import numpy as np

from .. import instrument, physics

#: Annulus edges [arcsec] of the likelihood model; the detection cell is the first two.
ANNULI_ARCSEC = (20.0, 60.0, 180.0)


def zone_fractions_source(rc_arcsec: np.ndarray, beta: np.ndarray, weights: np.ndarray, rcs: np.ndarray,
                          trunc_arcsec: np.ndarray, psf_hew_arcsec: float) -> np.ndarray:
    """Share of a cluster's photons in each annulus, (n, 3).

    ``weights`` (n, k) are the flux shares of the k beta-model components with
    core radii ``rcs`` (n, k) [arcsec]; the PSF is folded in by adding half its
    HEW to each core radius in quadrature (a blurred beta-model).
    """
    edges = np.asarray(ANNULI_ARCSEC)
    soft = 0.5 * psf_hew_arcsec
    out = np.zeros((rc_arcsec.size, edges.size))
    for c in range(weights.shape[1]):
        rs = np.hypot(rcs[:, c], soft)[:, None]
        g = physics.beta_model_cumulative(np.minimum(edges[None, :], trunc_arcsec[:, None]), rs, beta[:, None]) \
            / physics.beta_model_cumulative(trunc_arcsec, rs[:, 0], beta)[:, None]
        out += weights[:, c:c + 1] * np.diff(np.concatenate([np.zeros((g.shape[0], 1)), g], axis=1), axis=1)
    return np.clip(out, 0.0, 1.0)


def zone_fractions_psf(core_arcsec: float, index: float) -> np.ndarray:
    """Share of a point source's photons in each annulus (King PSF), (3,)."""
    eef = instrument.king_eef(np.asarray(ANNULI_ARCSEC), core_arcsec, index)
    return np.diff(np.concatenate([[0.0], eef]))


def zone_areas_arcmin2() -> np.ndarray:
    """Areas of the annuli [arcmin^2], (3,)."""
    e = np.asarray(ANNULI_ARCSEC) / 60.0
    return np.pi * np.diff(np.concatenate([[0.0], e ** 2]))


def _fit_amplitude(n: np.ndarray, s: np.ndarray, b: np.ndarray, iters: int = 15) -> np.ndarray:
    """Maximum-likelihood amplitude A >= 0 of the model A s_i + b_i for Poisson counts n_i, (m,)."""
    a = np.maximum(n.sum(axis=1) - b.sum(axis=1), 0.5) / np.maximum(s.sum(axis=1), 1e-12)
    b = np.maximum(b, 1e-12)
    for _ in range(iters):
        m = a[:, None] * s + b
        grad = (n * s / m - s).sum(axis=1)
        hess = -(n * s * s / (m * m)).sum(axis=1)
        step = np.where(hess < 0, -grad / np.minimum(hess, -1e-12), 0.0)
        a = np.maximum(a + step, 0.0)
    return a


def _loglike(n: np.ndarray, m: np.ndarray) -> np.ndarray:
    return (n * np.log(np.maximum(m, 1e-300)) - m).sum(axis=1)


def likelihoods(counts: np.ndarray, background: np.ndarray, source_shape: np.ndarray,
                psf_shape: np.ndarray, det_min: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(DET_LIKE, EXT_LIKE) for counts (m, 3) in the annuli, background (m, 3), shapes (m, 3) and (3,).

    EXT_LIKE is computed only where DET_LIKE >= ``det_min`` (0 elsewhere).
    """
    n = np.asarray(counts, dtype=float)
    b = np.asarray(background, dtype=float)
    nc, bc = n[:, :2].sum(axis=1), np.maximum(b[:, :2].sum(axis=1), 1e-12)
    det = np.where(nc > bc, nc * np.log(np.maximum(nc, 1e-300) / bc) - (nc - bc), 0.0)
    ext = np.zeros(n.shape[0])
    todo = np.flatnonzero(det >= det_min)          # the extent test only matters for detected sources
    if todo.size:
        nn, bb = n[todo], b[todo]
        s_ext = np.asarray(source_shape, dtype=float)[todo]
        s_pt = np.broadcast_to(np.asarray(psf_shape, dtype=float), nn.shape)
        a_ext = _fit_amplitude(nn, s_ext, bb)
        a_pt = _fit_amplitude(nn, s_pt, bb)
        ext[todo] = _loglike(nn, a_ext[:, None] * s_ext + bb) - _loglike(nn, a_pt[:, None] * s_pt + bb)
    return det, np.maximum(ext, 0.0)


def position_error_arcsec(size_arcsec: np.ndarray, src_counts: np.ndarray, bg_counts: np.ndarray,
                          floor_arcsec: float) -> np.ndarray:
    """1-sigma error per axis of a detected position [arcsec].

    A centroid of N source photons spread with an rms ``size`` per axis has an
    error size / sqrt(N); background photons in the cell add variance
    (size sqrt(N + B) / N), and a systematic floor is added in quadrature.
    """
    n = np.maximum(src_counts, 1.0)
    return np.hypot(size_arcsec * np.sqrt(n + bg_counts) / n, floor_arcsec)
