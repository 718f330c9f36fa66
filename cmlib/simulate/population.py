"""The cluster population of the mock: haloes, scaling relations, morphology, selection.

Haloes are drawn from the Tinker et al. (2008) M500c mass function times the
comoving volume of the survey, in fixed-size candidate batches with their own
counter-based random streams (so results do not depend on N), given L_X and
kT from scaling relations with correlated scatter, a morphology and an
exposure, and kept when the survey selects them: physics v2 uses the
eSASS-like detection + extent likelihoods of :mod:`.selection`, v1 an
aperture-flux erfc.  Scalars only: cheap for any N.  Sources: facts Sects. 2-5.
"""
from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
from scipy import special

from .. import instrument, physics
from ..errors import InputError
from ..schema import N_BANDS
from . import selection as _sel
from .params import SimulationParams

#: Largest N for :func:`cmlib.simulate.simulate` (in memory, ~100 kB per cluster).
MAX_IN_MEMORY = 20_000
#: Largest N for :func:`cmlib.simulate.simulate_to_file`.
MAX_CLUSTERS = 1_000_000
#: Candidate haloes per population batch (fixed: results must not depend on N).
_BATCH = 1 << 17
#: Stream-key offsets that separate population batches, detection draws and per-cluster streams.
_POP_DOMAIN = 1 << 63
_DET_DOMAIN = (1 << 63) + (1 << 62)
#: Morphology codes of the ``morphology`` catalogue column.
MORPHOLOGY_CODES = {0: "non-cool-core", 1: "cool-core", 2: "disturbed"}


def check_n(n: Any, limit: int, hint: str = "") -> int:
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)):
        if isinstance(n, (float, np.floating)) and float(n).is_integer():
            n = int(n)
        else:
            raise InputError(f"n must be a whole number of clusters, got {n!r}")
    n = int(n)
    if n < 1:
        raise InputError(f"n must be at least 1, got {n}")
    if n > limit:
        raise InputError(f"n = {n} exceeds the limit of {limit}{hint}")
    return n


def check_seed(seed: Any) -> int:
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise InputError(f"seed must be a non-negative integer, got {seed!r}")
    if not 0 <= int(seed) < 2 ** 63:
        raise InputError(f"seed must be in [0, 2**63), got {seed}")
    return int(seed)



@functools.lru_cache(maxsize=8)
def _halo_grid(log_m_min: float, log_m_max: float, z_min: float, z_max: float, area: float):
    """Expected number of haloes per (z, log M) cell over the survey: (edges, weights)."""
    dlm, dz = 0.005, 0.005
    nm = max(2, int(round((log_m_max - log_m_min) / dlm)))
    nz = max(2, int(round((z_max - z_min) / dz)))
    m_edges = np.linspace(log_m_min, log_m_max, nm + 1)
    z_edges = np.linspace(z_min, z_max, nz + 1)
    m_mid = 0.5 * (m_edges[1:] + m_edges[:-1])
    z_mid = 0.5 * (z_edges[1:] + z_edges[:-1])
    dens = physics.halo_counts_density(m_mid, z_mid, area)                  # per dz per dlnM
    w = dens * np.diff(z_edges)[:, None] * (np.diff(m_edges) * np.log(10.0))[None, :]
    return m_edges, z_edges, w


def conversion(p: SimulationParams) -> instrument.ThermalConversion:
    """The cached L_X -> counts conversion grid for these parameters (:class:`cmlib.instrument.ThermalConversion`)."""
    z_max = max(1.6, math.ceil(p.z_max * 10) / 10 + 0.1)
    nh_max = max(1.2e21, p.nh_max * 1.01)
    return instrument.thermal_conversion(z_max=z_max, nh_max=nh_max, fe_l_strength=float(p.fe_l_strength),
                                         redistribution=bool(p.energy_redistribution), line_model=p.physics)


def lnl_morph(p: SimulationParams) -> tuple[float, float, float]:
    """(offset of cool cores, offset of the others, random sigma) of ln L_X at fixed mass."""
    f = p.cool_core_fraction if p.cool_cores else 0.0
    delta = math.log(p.cool_core_lx_boost) if p.cool_cores else 0.0
    var_morph = delta ** 2 * f * (1 - f)
    sig = math.sqrt(max(p.sigma_lnL ** 2 - var_morph, 0.0)) if p.scatter else 0.0
    return delta * (1 - f), -delta * f, sig


def _component_fractions(g_ap, rc, beta, r500, trunc):
    """G(aperture) / G(R500) for a beta-model component (aperture clipped to the truncation radius)."""
    return (physics.beta_model_cumulative(np.minimum(g_ap, trunc * r500), rc, beta)
            / physics.beta_model_cumulative(r500, rc, beta))


def _cell_bound(p: SimulationParams, m_edges, z_edges, conv) -> np.ndarray:
    """Upper bound of the selection probability in each (z, M) cell (for skipping hopeless cells)."""
    if not p.selection:
        return np.ones((z_edges.size - 1, m_edges.size - 1))
    off_cc, _, sig = lnl_morph(p)
    if p.physics == "v2" and p.central_agn:
        off_cc += 0.5                          # a central AGN can add flux to the detection
    dmax = 6.5 * sig + max(off_cc, 0.0)
    z_lo, z_hi = z_edges[:-1], z_edges[1:]
    ez = np.maximum(physics.efunc(z_lo) ** p.lx_ez_power, physics.efunc(z_hi) ** p.lx_ez_power)
    lmax = p.lx_norm * (10.0 ** m_edges[1:] / p.mass_pivot) ** p.lx_slope
    dl = physics.distance_table(3.0).luminosity(z_lo) * physics.MPC_TO_CM
    kts = np.exp(conv.log_kt)
    kmax = np.array([max(conv.kcorrection(kts, np.full(kts.size, zz), np.full(kts.size, zm), True).max()
                         for zm in (0.0, 3.0)) for zz in z_hi]) * 1.05
    fmax = (ez * kmax / (4 * np.pi * dl ** 2))[:, None] * lmax[None, :] * math.exp(dmax) * 9.0
    if p.physics == "v2":
        # total flux (no aperture factor 9) -> most counts any cluster of the cell can give; a detection
        # at DET_LIKE >= 5 needs some 10 source photons, so cells that cannot reach 3 are skipped
        counts_max = fmax / 9.0 * _max_rate(conv) * p.exposure_max_s * 1.5
        return np.where(counts_max >= 3.0, 1.0, 0.0)
    x = (np.log10(fmax) - math.log10(p.flux_limit)) / (math.sqrt(2.0) * p.selection_width_dex)
    return 0.5 * special.erfc(-x)


@functools.lru_cache(maxsize=8)
def _max_rate(conv) -> float:
    """Largest all-band count rate per unit L/(4 pi D_L^2) on the conversion grid (no absorption)."""
    kts = np.exp(conv.log_kt)
    zz = np.repeat(conv.z, kts.size)
    return float(conv.rate_per_flux(np.tile(kts, conv.z.size), zz, 0.0, 1.0, True).sum(axis=1).max())


@functools.lru_cache(maxsize=8)
def _sampling_table(p: SimulationParams):
    m_edges, z_edges, w = _halo_grid(p.log_m_min, p.log_m_max, p.z_min, p.z_max, p.survey_area_deg2)
    conv = conversion(p)
    keep = _cell_bound(p, m_edges, z_edges, conv) > 1e-9
    wk = np.where(keep, w, 0.0).ravel()
    if wk.sum() <= 0:
        raise InputError("no cluster in the mass and redshift range can pass the selection; raise the "
                         "mass range, lower flux_limit, or set selection=false")
    cdf = np.cumsum(wk)
    return m_edges, z_edges, cdf / cdf[-1], float(wk.sum()), float(w.sum())


def _halo_draws(p: SimulationParams, seed: int, batch: int, table, n_normal: int):
    """The draws both physics versions share, in a fixed order: cell, mass and redshift of each candidate halo,
    then ``n_normal`` rows of standard normals and 10 rows of uniforms (switching a component off keeps the
    others' draws), and the scaling relations with their correlated scatter (facts Sect. 4).

    Returns ``(g, u, halo)``: the normal and uniform rows the caller goes on with, and a dict of the halo's
    log_m, z, m500 [Msun], E(z), d_l, d_t, d_morph (ln-offsets), morphology, L_X [erg/s], kT [keV], Z [Zsun].
    """
    m_edges, z_edges, cdf, _, _ = table
    rng = np.random.Generator(np.random.Philox(key=np.array([seed, _POP_DOMAIN + batch], dtype=np.uint64)))
    n = _BATCH
    u_cell, u_m, u_z = rng.random((3, n))
    g = rng.standard_normal((n_normal, n))
    u = rng.random((10, n))
    nm = m_edges.size - 1
    cell = np.minimum(np.searchsorted(cdf, u_cell, side="right"), cdf.size - 1)
    iz, im = np.divmod(cell, nm)
    log_m = m_edges[im] + u_m * (m_edges[im + 1] - m_edges[im])
    z = z_edges[iz] + u_z * (z_edges[iz + 1] - z_edges[iz])
    m500 = 10.0 ** log_m
    ez = physics.efunc(z)
    off_cc, off_other, sig_l = lnl_morph(p)
    d_l, d_t = physics.correlate_normals(g[0], g[1], sig_l, p.sigma_lnT if p.scatter else 0.0, p.rho_LT)
    f_cc = p.cool_core_fraction if p.cool_cores else 0.0
    f_dist = p.disturbed_fraction if p.disturbed else 0.0
    morph = np.where(u[0] < f_cc, 1, np.where(u[0] < f_cc + f_dist, 2, 0)).astype(np.int8)
    d_morph = np.where(morph == 1, off_cc, off_other) if p.cool_cores else np.zeros(n)
    lx = physics.lx_mass_relation(m500, z, p.lx_norm, p.lx_slope, p.lx_ez_power, p.mass_pivot) \
        * np.exp(d_l + d_morph)
    kt = p.kt_norm * (ez * m500 / p.mass_pivot) ** p.kt_slope * np.exp(d_t)
    zmet = np.clip(p.metallicity_mean + p.metallicity_sigma * g[2], 0.05, 1.0)
    return g, u, dict(log_m=log_m, z=z, m500=m500, ez=ez, d_l=d_l, d_t=d_t, d_morph=d_morph, morph=morph,
                      lx=lx, kt=kt, zmet=zmet)


def _fluxes(p: SimulationParams, conv, z, m500, lx, kt, zmet):
    """Distances [Mpc], R500 [kpc and arcmin], f_unit = L / 4 pi D_L^2 and the 0.5-2 keV flux [erg/s/cm^2]."""
    dc = physics.distance_table(3.0).comoving(z)
    d_a, d_lum = dc / (1.0 + z), dc * (1.0 + z)
    r500 = physics.r500_kpc(m500, z)
    th500 = r500 / (d_a * 1e3) / physics.ARCMIN_TO_RAD
    f_unit = lx / (4.0 * np.pi * (d_lum * physics.MPC_TO_CM) ** 2)   # L / 4 pi D_L^2
    flux = f_unit * conv.kcorrection(kt, z, zmet, p.lines)
    return d_a, d_lum, r500, th500, f_unit, flux


def _population_batch_v1(p: SimulationParams, seed: int, batch: int, table, conv) -> dict[str, np.ndarray]:
    """Draw one batch of candidate haloes with all their properties; returns the selected ones."""
    g, u, h = _halo_draws(p, seed, batch, table, n_normal=9)
    n = _BATCH
    log_m, z, m500, ez, lx, kt, zmet = (h[k] for k in ("log_m", "z", "m500", "ez", "lx", "kt", "zmet"))
    d_l, d_t, d_morph, morph = h["d_l"], h["d_t"], h["d_morph"], h["morph"]
    # morphology (facts Sect. 5): radii in units of R500
    beta = np.clip(p.beta_mean + p.beta_sigma * g[3], p.beta_min, p.beta_max)
    rc = np.where(morph == 1, p.rc_cc, p.rc_ncc) * np.exp(p.rc_sigma_ln * g[4])
    f_core = np.where(morph == 1, p.cc_core_flux_min + (p.cc_core_flux_max - p.cc_core_flux_min) * u[1], 0.0)
    f_sub = np.where(morph == 2, p.subclump_flux_min + (p.subclump_flux_max - p.subclump_flux_min) * u[2], 0.0)
    d_sub = p.subclump_dist_min + (p.subclump_dist_max - p.subclump_dist_min) * u[3]
    a_sub = 2.0 * np.pi * u[4]
    q = np.clip(p.axis_ratio_mean + p.axis_ratio_sigma * g[5], p.axis_ratio_min, 1.0) if p.ellipticity \
        else np.ones(n)
    pa = np.pi * u[5]
    jit = p.center_jitter_r500 if p.center_jitter else 0.0
    jx, jy = jit * g[6], jit * g[7]
    nh = p.nh_min + (p.nh_max - p.nh_min) * u[6] if p.absorption else np.zeros(n)
    expo = instrument.exposure_from_normal(g[8], p.exposure_median_s, p.exposure_sigma_ln, p.exposure_min_s,
                                           p.exposure_max_s) if p.exposure_variation \
        else np.full(n, p.exposure_median_s)
    # the selection sees the survey as it is (PSF, background, central AGN) whatever the image switches
    # say, so switching an image component off changes the images, not the clusters
    has_agn_pop = u[7] < p.central_agn_fraction
    has_agn = has_agn_pop & bool(p.central_agn)
    agn_ratio = p.central_agn_ratio_min * (p.central_agn_ratio_max / p.central_agn_ratio_min) ** u[8]
    u_sel = u[9]
    d_a, d_lum, r500, th500, f_unit, flux = _fluxes(p, conv, z, m500, lx, kt, zmet)
    ap = p.selection_aperture_arcmin
    tr = p.truncation_r500
    f_main = 1.0 - f_core - f_sub
    frac_ap = (f_main * _component_fractions(ap / th500, rc, beta, 1.0, tr)
               + f_core * _component_fractions(ap / th500, p.cc_core_rc, beta, 1.0, tr)
               + f_sub * _component_fractions(np.maximum(ap / th500 - d_sub, 0.0), p.subclump_rc, beta, 1.0, tr))
    flux_ap = flux * frac_ap
    if p.selection:
        x = (np.log10(flux_ap) - math.log10(p.flux_limit)) / (math.sqrt(2.0) * p.selection_width_dex)
        p_sel = 0.5 * special.erfc(-x)
    else:
        p_sel = np.ones(n)
    sel = u_sel < p_sel
    ids = np.arange(n, dtype=np.int64) + np.int64(batch) * _BATCH
    cols = dict(cluster_id=ids, log_m500=log_m, z=z, M500c=m500, E_z=ez, D_A_Mpc=d_a, D_L_Mpc=d_lum,
                R500_kpc=r500, R500_arcmin=th500, kT=kt, Z_metal=zmet, L_X_500=lx, flux_0p5_2=flux,
                flux_aperture=flux_ap, selection_probability=p_sel, exposure_s=expo, nH=nh,
                morphology=morph, beta=beta, rc_r500=rc, axis_ratio=q, position_angle=np.degrees(pa),
                cc_core_fraction=f_core, subclump_fraction=f_sub, subclump_offset_r500=np.where(morph == 2, d_sub, 0.0),
                subclump_angle=a_sub, center_offset_x_arcmin=jx * th500, center_offset_y_arcmin=jy * th500,
                central_agn=has_agn.astype(np.int8), agn_ratio=agn_ratio, f_unit=f_unit,
                delta_lnL=d_l + d_morph, delta_lnL_morph=d_morph, delta_lnT=d_t)
    return {k: v[sel] for k, v in cols.items()}


def _component_weights(p: SimulationParams, rc, beta, f_core, f_sub):
    """Flux shares of the (main, cool core, sub-clump) components of the truncated model, and total / R500 flux."""
    tr = p.truncation_r500
    w_main = (1.0 - f_core - f_sub) * _component_fractions(tr, rc, beta, 1.0, tr)
    w_core = f_core * _component_fractions(tr, p.cc_core_rc, beta, 1.0, tr)
    w_sub = f_sub * _component_fractions(tr, p.subclump_rc, beta, 1.0, tr)
    total = w_main + w_core + w_sub
    return np.stack([w_main, w_core, w_sub], axis=1) / total[:, None], total


def _population_batch_v2(p: SimulationParams, seed: int, batch: int, table, conv) -> dict[str, np.ndarray]:
    """Physics v2: one batch of candidate haloes, selected by the eSASS-like detection + extent test.

    Differences from v1 (facts Sects. 3-8): core radius and beta with their own
    trends and scatter (beta rises with kT, Sanderson et al. 2003); detected
    positions with the eSASS-like position error (10-30"); a background split
    into a vignetted sky part and an unvignetted particle part, each with its
    own field-to-field level; a central-AGN population with its own
    luminosity function (not tied to the cluster's flux).
    """
    g, u, h = _halo_draws(p, seed, batch, table, n_normal=12)
    n = _BATCH
    log_m, z, m500, ez, lx, kt, zmet = (h[k] for k in ("log_m", "z", "m500", "ez", "lx", "kt", "zmet"))
    d_l, d_t, d_morph, morph = h["d_l"], h["d_t"], h["d_morph"], h["morph"]
    # structure (facts Sect. 5): beta rises with kT, r_c / R500 with its own mass trend and scatter
    if p.structure_trends:
        beta0 = p.beta_mean * (kt / 5.0) ** p.beta_kt_slope
        rc_trend = (m500 / 1e14) ** p.rc_mass_slope
        rc_sig = p.rc_sigma_ln
    else:
        beta0, rc_trend, rc_sig = p.beta_mean, 1.0, p.rc_sigma_ln
    beta = np.clip(beta0 + p.beta_sigma * g[3], p.beta_min, p.beta_max)
    rc = np.where(morph == 1, p.rc_cc, p.rc_ncc) * rc_trend * np.exp(rc_sig * g[4])
    f_core = np.where(morph == 1, p.cc_core_flux_min + (p.cc_core_flux_max - p.cc_core_flux_min) * u[1], 0.0)
    f_sub = np.where(morph == 2, p.subclump_flux_min + (p.subclump_flux_max - p.subclump_flux_min) * u[2], 0.0)
    d_sub = p.subclump_dist_min + (p.subclump_dist_max - p.subclump_dist_min) * u[3]
    a_sub = 2.0 * np.pi * u[4]
    q = np.clip(p.axis_ratio_mean + p.axis_ratio_sigma * g[5], p.axis_ratio_min, 1.0) if p.ellipticity \
        else np.ones(n)
    pa = np.pi * u[5]
    nh = p.nh_min + (p.nh_max - p.nh_min) * u[6] if p.absorption else np.zeros(n)
    expo = instrument.exposure_from_normal(g[8], p.exposure_median_s, p.exposure_sigma_ln, p.exposure_min_s,
                                           p.exposure_max_s) if p.exposure_variation \
        else np.full(n, p.exposure_median_s)
    # background (facts Sect. 7): sky level (vignetted), particle rate (unvignetted time), vignetting ratio
    if p.background_variation:
        vign = np.clip(p.vignetting_ratio + p.vignetting_ratio_sigma * g[9], 0.05, 1.0)
        sky_f = np.exp(p.sky_sigma_ln * g[10] - 0.5 * p.sky_sigma_ln ** 2)
        part_f = np.exp(p.particle_sigma_ln * g[11] - 0.5 * p.particle_sigma_ln ** 2)
    else:
        vign, sky_f, part_f = np.full(n, p.vignetting_ratio), np.ones(n), np.ones(n)
    # central AGN (facts Sect. 8): occupation fraction, dN/dlog L ~ L^-slope between lmin and lmax
    # the selection sees the survey as it is (PSF, background, central AGN) whatever the image switches
    # say, so switching an image component off changes the images, not the clusters
    has_agn_pop = u[7] < p.central_agn_fraction
    has_agn = has_agn_pop & bool(p.central_agn)
    a = p.central_agn_slope
    lo, hi = p.central_agn_lmin, p.central_agn_lmax
    l_agn = (lo ** -a - u[8] * (lo ** -a - hi ** -a)) ** (-1.0 / a) if abs(a) > 1e-9 else lo * (hi / lo) ** u[8]
    d_a, d_lum, r500, th500, f_unit, flux = _fluxes(p, conv, z, m500, lx, kt, zmet)
    # AGN 0.5-2 keV flux, power law Gamma: K-correction (1 + z)^(Gamma - 2)
    agn_flux_pop = np.where(has_agn_pop, l_agn / (4.0 * np.pi * (d_lum * physics.MPC_TO_CM) ** 2)
                        * (1.0 + z) ** (p.agn_gamma - 2.0), 0.0)
    agn_flux = np.where(has_agn, agn_flux_pop, 0.0)
    # -- selection: expected source counts of every candidate that could be detected at all
    w, total = _component_weights(p, rc, beta, f_core, f_sub)
    s_bound = flux * _max_rate(conv) * expo * 3.0 + agn_flux_pop * 2e12 * expo
    maybe = s_bound >= 1.0 if p.selection else np.ones(n, bool)
    s_tot = np.zeros(n)
    rates = conv.rate_per_flux(kt[maybe], z[maybe], nh[maybe], zmet[maybe], p.lines).sum(axis=1)
    s_tot[maybe] = rates * f_unit[maybe] * expo[maybe] * total[maybe]
    psf_hew = instrument.king_hew_arcsec(p.psf_core_arcsec, p.psf_index)
    bg_rate = _background_rates(p, survey=True)                              # (sky, particle) per arcmin^2 per s
    bg_dens = (bg_rate[0] * sky_f * expo + bg_rate[1] * part_f * expo * p.vignetting_ratio / vign)  # per arcmin^2
    p_sel = np.ones(n)
    det = np.zeros(n)
    ext = np.zeros(n)
    n_src = np.zeros(n, dtype=np.int64)
    pos_err = np.full(n, p.position_floor_arcsec)
    th_as = th500 * 60.0
    rcs = np.stack([rc * th_as, np.full(n, p.cc_core_rc) * th_as, p.subclump_rc * th_as], axis=1)
    idx = np.flatnonzero(maybe)
    # detection photons: their own stream, so the draws above do not depend on the counts
    drng = np.random.Generator(np.random.Philox(key=np.array([seed, _DET_DOMAIN + batch], dtype=np.uint64)))
    if idx.size:
        shape = _sel.zone_fractions_source(rc[idx] * th_as[idx], beta[idx], w[idx], rcs[idx],
                                           p.truncation_r500 * th_as[idx], psf_hew)
        psf_shape = _sel.zone_fractions_psf(p.psf_core_arcsec, p.psf_index)
        agn_counts = agn_flux_pop[idx] * 1.4e12 * expo[idx]   # ~1.4e12 counts/s per erg/s/cm^2 (facts 7)
        mu_all = s_tot[idx] + agn_counts
        n_all = drng.poisson(mu_all)
        # split the photons over the annuli: cluster photons by the cluster's shape, AGN photons by the PSF
        share = (shape * s_tot[idx, None] + psf_shape[None, :] * agn_counts[:, None]) / np.maximum(mu_all, 1e-30)[:, None]
        k = np.zeros((idx.size, 3), dtype=np.int64)
        left = n_all.copy()
        rest = np.ones(idx.size)
        for zone in range(3):
            pz = np.clip(share[:, zone] / np.maximum(rest, 1e-12), 0.0, 1.0)
            k[:, zone] = drng.binomial(left, pz)
            left -= k[:, zone]
            rest -= share[:, zone]
        b_zone = bg_dens[idx, None] * _sel.zone_areas_arcmin2()[None, :]
        counts = k + drng.poisson(b_zone)
        det[idx], ext[idx] = _sel.likelihoods(counts, b_zone, shape, psf_shape,
                                              p.det_like_min if p.selection else 0.0)
        # the cluster photons among all drawn ones (the AGN's share goes to the AGN): binomial thinning
        n_src[idx] = drng.binomial(n_all, np.clip(s_tot[idx] / np.maximum(mu_all, 1e-30), 0.0, 1.0))
        size = np.minimum(np.hypot(rc[idx] * th_as[idx], 0.5 * psf_hew), 60.0)   # rms per axis in the cell
        cell_src = np.maximum(k[:, :2].sum(axis=1), 1)
        pos_err[idx] = _sel.position_error_arcsec(size, cell_src, b_zone[:, :2].sum(axis=1),
                                                  p.position_floor_arcsec)
        if p.selection:
            p_sel[:] = 0.0
            p_sel[idx] = ((det[idx] >= p.det_like_min) & (ext[idx] >= p.ext_like_min)).astype(float)
    sel = p_sel > 0.5
    # image centre = detected position: the flux centroid (pulled towards a sub-clump) plus the position error
    if p.center_jitter:
        cen_x = -f_sub * d_sub * np.cos(a_sub) * th500 + pos_err / 60.0 * g[6]
        cen_y = -f_sub * d_sub * np.sin(a_sub) * th500 + pos_err / 60.0 * g[7]
    else:
        cen_x = cen_y = np.zeros(n)
    ids = np.arange(n, dtype=np.int64) + np.int64(batch) * _BATCH
    cols = dict(cluster_id=ids, log_m500=log_m, z=z, M500c=m500, E_z=ez, D_A_Mpc=d_a, D_L_Mpc=d_lum,
                R500_kpc=r500, R500_arcmin=th500, kT=kt, Z_metal=zmet, L_X_500=lx, flux_0p5_2=flux,
                flux_aperture=flux * _component_fractions(p.det_radius_arcsec / 60.0 / th500, rc, beta, 1.0,
                                                          p.truncation_r500),
                selection_probability=p_sel, exposure_s=expo, nH=nh,
                morphology=morph, beta=beta, rc_r500=rc, axis_ratio=q, position_angle=np.degrees(pa),
                cc_core_fraction=f_core, subclump_fraction=f_sub, subclump_offset_r500=np.where(morph == 2, d_sub, 0.0),
                subclump_angle=a_sub, center_offset_x_arcmin=cen_x, center_offset_y_arcmin=cen_y,
                central_agn=has_agn.astype(np.int8), central_agn_flux=agn_flux, central_agn_lx=np.where(has_agn, l_agn, 0.0),
                agn_ratio=np.zeros(n), f_unit=f_unit, delta_lnL=d_l + d_morph, delta_lnL_morph=d_morph, delta_lnT=d_t,
                det_like=det, ext_like=ext, source_photons=n_src, position_error_arcsec=pos_err,
                vignetting_ratio=vign, sky_level=sky_f, particle_level=part_f,
                exposure_unvignetted_s=expo / vign)
    return {k: v[sel] for k, v in cols.items()}


def _background_rates(p: SimulationParams, survey: bool = False) -> tuple[float, float]:
    """(sky, particle) background [counts arcmin^-2 s^-1, 0.25-2.3 keV] per vignetted second at nominal levels.

    ``survey=True``: the survey's background whatever the image switches say (for the selection).
    """
    total = p.background_density / 1000.0
    sky = total * p.sky_fraction if (p.sky_background or survey) else 0.0
    part = total * (1.0 - p.sky_fraction) if (p.particle_background or survey) else 0.0
    return sky, part


def draw_population(n: int, seed: int = 0, params: SimulationParams | None = None) -> dict[str, np.ndarray]:
    """The first ``n`` selected clusters of ``seed``: all scalar properties, no images.

    Returns a dict of arrays (the catalogue columns except the image-derived
    ones, plus a few internal ones used by the renderer) and ``_meta`` with
    the number of candidate haloes drawn and the expected number of selected
    clusters in the survey area.  Cheap: ~1 s per 10 000 clusters.
    """
    p = params or SimulationParams()
    n = check_n(n, MAX_CLUSTERS)
    seed = check_seed(seed)
    conv = conversion(p)
    table = _sampling_table(p)
    parts: list[dict[str, np.ndarray]] = []
    got = 0
    batch = 0
    while got < n:
        part = (_population_batch_v2 if p.physics == "v2" else _population_batch_v1)(p, seed, batch, table, conv)
        parts.append(part)
        got += part["z"].size
        batch += 1
        # fail early if the selection is so strict that drawing n clusters would take hours
        if got < n and batch >= 8 and batch * n / max(got, 1) > 3000:
            raise InputError(f"the selection accepts too few haloes ({got} of {batch * _BATCH} candidates), "
                             f"so {n} clusters would take hours; lower flux_limit, widen the mass or "
                             "redshift range, or set selection=false")
    pop = {k: np.concatenate([q[k] for q in parts])[:n] for k in parts[0]}
    # expected counts per band (facts Sects. 6-7): rate inside R500, times the truncated-model factor
    rates = conv.rate_per_flux(pop["kT"], pop["z"], pop["nH"], pop["Z_metal"], p.lines)    # per unit f_unit
    counts_r500 = rates * (pop["f_unit"] * pop["exposure_s"])[:, None]
    w, total = _component_weights(p, pop["rc_r500"], pop["beta"], pop["cc_core_fraction"], pop["subclump_fraction"])
    pop["component_weights"] = w
    expected = counts_r500 * total[:, None]
    for b in range(N_BANDS):
        pop[f"expected_counts_band{b + 1}"] = expected[:, b]
    pop["expected_counts_r500"] = counts_r500.sum(axis=1)
    rc = pop["rc_r500"]
    pop["r_core_kpc"] = rc * pop["R500_kpc"]
    pop["r_core_arcmin"] = rc * pop["R500_arcmin"]
    pop["ellipticity"] = 1.0 - pop["axis_ratio"]
    if p.physics == "v1":
        pop["central_agn_flux"] = np.where(pop["central_agn"] == 1, pop["agn_ratio"] * pop["flux_aperture"], 0.0)
    _, _, _, w_kept, w_all = table
    drawn = batch * _BATCH
    accepted = sum(q["z"].size for q in parts)
    pop["_meta"] = {"candidates_drawn": drawn, "accepted": accepted,
                    "haloes_in_survey": w_all, "haloes_sampled_region": w_kept,
                    "expected_selected_in_survey": w_kept * accepted / drawn}
    return pop


