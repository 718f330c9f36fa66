"""Images of the mock clusters: photons, PSF, background, AGN, binning and smoothing.

Each cluster's image uses its own random stream ``Philox(key=[seed,
cluster_id])``, so any split of the catalogue into chunks gives the same
images.  Poisson photons are drawn at continuous sky positions from the
beta-model components (truncated at ``truncation_r500``), shifted by the King
PSF, plus sky and particle background and AGN point sources, binned into
50 x 50 pixels of 24" and Gaussian-smoothed.  With ``poisson=False`` the
images are the expected counts (a grid renderer with FFT convolution).
Sources: facts Sects. 5-8.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from .. import instrument, physics
from ..schema import IMAGE_SIZE, N_BANDS
from .params import SimulationParams


def _cluster_rng(seed: int, cluster_id: int) -> np.random.Generator:
    return np.random.Generator(np.random.Philox(key=np.array([seed, cluster_id], dtype=np.uint64)))


@dataclass
class _RenderSetup:
    npix: int
    pix_arcmin: float
    bg_per_pixel: np.ndarray            # (10,) counts per pixel per second (v1: sky + particle)
    sky_per_pixel: np.ndarray           # (10,) sky counts per pixel per vignetted second
    part_per_pixel: np.ndarray          # (10,) particle counts per pixel per vignetted second at the nominal ratio
    agn_per_image: float                # mean number of field AGN per image
    agn_conv_nh: np.ndarray             # N_H grid
    agn_conv: np.ndarray                # (n_nh, 10) counts/s per erg/s/cm^2
    psf_r_max_arcsec: float


@functools.lru_cache(maxsize=8)
def _render_setup(p: SimulationParams) -> _RenderSetup:
    pix = p.pixel_scale_arcsec / 60.0
    sky, part = instrument.background_band_rates(p.background_density / 1000.0, p.sky_fraction,
                                                 p.sky_band_shares, p.particle_line_fraction,
                                                 p.energy_redistribution)
    bg = (sky if p.sky_background else 0.0 * sky) + (part if p.particle_background else 0.0 * part)
    area_deg2 = (IMAGE_SIZE * pix / 60.0) ** 2
    n_agn = float(instrument.agn_number_counts(p.agn_flux_min) - instrument.agn_number_counts(p.agn_flux_max)) \
        * area_deg2 if p.agn else 0.0
    nh_grid = np.linspace(0.0, max(1.2e21, p.nh_max * 1.01), 25)
    conv = instrument.powerlaw_band_rates(p.agn_gamma, nh_grid, p.energy_redistribution)
    sky_on = sky if p.sky_background else 0.0 * sky
    part_on = part if p.particle_background else 0.0 * part
    return _RenderSetup(IMAGE_SIZE, pix, bg * pix ** 2, sky_on * pix ** 2, part_on * pix ** 2, n_agn, nh_grid, conv,
                        p.psf_max_arcmin * 60.0)


def background_per_pixel(pop: dict, sl: slice, p: SimulationParams, setup: _RenderSetup | None = None) -> np.ndarray:
    """Expected background counts per pixel and band, (m, 10), of clusters ``sl`` of a population.

    v1: the total rate times the exposure.  v2 (facts Sect. 7): the sky part
    scales with the vignetted exposure and the field's sky level, the particle
    part with the unvignetted time (exposure / vignetting ratio) and the
    particle level, so the background is not proportional to the exposure.
    """
    setup = setup or _render_setup(p)
    expo = np.asarray(pop["exposure_s"][sl], dtype=float)
    if p.physics == "v1":
        return setup.bg_per_pixel[None, :] * expo[:, None]
    sky = setup.sky_per_pixel[None, :] * (pop["sky_level"][sl] * expo)[:, None]
    part = setup.part_per_pixel[None, :] * (pop["particle_level"][sl] * expo * p.vignetting_ratio
                                            / pop["vignetting_ratio"][sl])[:, None]
    return sky + part


def _agn_rates(setup: _RenderSetup, nh: float) -> np.ndarray:
    """Counts/s per band per unit 0.5-2 keV flux of the AGN power law at this N_H."""
    return np.array([np.interp(nh, setup.agn_conv_nh, setup.agn_conv[:, b]) for b in range(N_BANDS)])


def _draw_agn(rng: np.random.Generator, pop: dict, j: int, p: SimulationParams, setup: _RenderSetup):
    """Field AGN (number, fluxes, positions in pixels) and the central AGN of cluster j."""
    npix = setup.npix
    n_field = rng.poisson(setup.agn_per_image)
    u_agn = rng.random((n_field, 3))
    s_agn = instrument.agn_sample_flux(u_agn[:, 0], p.agn_flux_min, p.agn_flux_max)
    ax, ay = u_agn[:, 1] * npix, u_agn[:, 2] * npix
    if p.physics == "v2" and p.agn_clustering and p.agn:
        # AGN cluster towards clusters (facts Sect. 8): (overdensity - 1) x the field density inside 2 R500,
        # projected like the galaxies (beta-model, r_c = 0.3 R500), around the cluster centre
        th = pop["R500_arcmin"][j]
        lam = (p.agn_overdensity - 1.0) * setup.agn_per_image / (npix * setup.pix_arcmin) ** 2 * np.pi * (2 * th) ** 2
        n_mem = rng.poisson(lam)
        u_mem = rng.random((n_mem, 4))
        r_mem = physics.beta_model_sample_radius(u_mem[:, 1], 0.3 * th, 2.0 / 3.0, 2.0 * th) / setup.pix_arcmin
        c = npix / 2.0
        s_agn = np.append(s_agn, instrument.agn_sample_flux(u_mem[:, 0], p.agn_flux_min, p.agn_flux_max))
        ax = np.append(ax, c + pop["center_offset_x_arcmin"][j] / setup.pix_arcmin + r_mem * np.cos(2 * np.pi * u_mem[:, 2]))
        ay = np.append(ay, c + pop["center_offset_y_arcmin"][j] / setup.pix_arcmin + r_mem * np.sin(2 * np.pi * u_mem[:, 2]))
    if pop["central_agn"][j]:
        c = npix / 2.0
        s_agn = np.append(s_agn, pop["central_agn_flux"][j])
        ax = np.append(ax, c + pop["center_offset_x_arcmin"][j] / setup.pix_arcmin)
        ay = np.append(ay, c + pop["center_offset_y_arcmin"][j] / setup.pix_arcmin)
    return n_field, s_agn, ax, ay


def _render_chunk_poisson(pop: dict, start: int, stop: int, seed: int, p: SimulationParams,
                          setup: _RenderSetup) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Poisson photon images for clusters [start, stop): (m, 50, 50, 10) float32 and per-cluster counts.

    The per-cluster loop only draws random numbers (from the cluster's own
    stream); the geometry is then vectorised over all photons of the chunk.
    """
    m = stop - start
    npix, nb = setup.npix, N_BANDS
    sl = slice(start, stop)
    mu_src = np.stack([pop[f"expected_counts_band{b + 1}"][sl] for b in range(nb)], axis=1)
    expo = pop["exposure_s"][sl]
    mu_bg = background_per_pixel(pop, sl, p, setup) * (npix * npix)
    photons = pop.get("source_photons")
    n_src = np.zeros((m, nb), dtype=np.int64)
    n_bg = np.zeros((m, nb), dtype=np.int64)
    n_field = np.zeros(m, dtype=np.int32)
    u_src_l, u_aph_l, bg_pix_l, agn_ph_l, agn_xy_l, agn_cl_l = [], [], [], [], [], []
    for k in range(m):
        j = start + k
        rng = _cluster_rng(seed, int(pop["cluster_id"][j]))
        if photons is not None and p.physics == "v2":
            # the photons the detection counted (facts Sect. 3), spread over the bands
            tot = mu_src[k].sum()
            n_src[k] = rng.multinomial(int(photons[j]), mu_src[k] / tot) if tot > 0 else 0
        else:
            n_src[k] = rng.poisson(mu_src[k])
        n_bg[k] = rng.poisson(mu_bg[k])
        n_field[k], s_agn, ax, ay = _draw_agn(rng, pop, j, p, setup)
        rates = _agn_rates(setup, pop["nH"][j]) * expo[k]
        n_agn_ph = rng.poisson(s_agn[:, None] * rates[None, :])          # (sources, 10)
        # per photon: component, radius, azimuth, PSF radius, PSF azimuth
        u_src_l.append(rng.random((5, int(n_src[k].sum()))))
        u_aph_l.append(rng.random((2, int(n_agn_ph.sum()))))
        bg_pix_l.append(rng.integers(0, npix * npix, int(n_bg[k].sum())))
        agn_ph_l.append(n_agn_ph)
        agn_xy_l.append(np.stack([ax, ay], axis=1))
        agn_cl_l.append(np.full(len(s_agn), k))
    band_ids = np.tile(np.arange(nb), m)
    clus_ids = np.repeat(np.arange(m), nb)
    # -- cluster photons: component, radius, azimuth -> sky position (vectorised over the chunk)
    u_src = np.concatenate(u_src_l, axis=1)
    cl = np.repeat(clus_ids, n_src.ravel())
    band = np.repeat(band_ids, n_src.ravel())
    j = start + cl
    w = np.cumsum(pop["component_weights"][j], axis=1)
    comp = (u_src[0] > w[:, 0]).astype(np.int8) + (u_src[0] > w[:, 1])
    th = pop["R500_arcmin"][j]
    rc = np.choose(comp, [pop["rc_r500"][j], p.cc_core_rc, p.subclump_rc]) * th
    r = physics.beta_model_sample_radius(u_src[1], rc, pop["beta"][j], p.truncation_r500 * th)
    phi = 2.0 * np.pi * u_src[2]
    q = pop["axis_ratio"][j]
    pa = np.radians(pop["position_angle"][j])
    # area-preserving ellipse: axes r / sqrt(q) (major) and r sqrt(q) (minor), rotated by pa
    ea = r * np.cos(phi) / np.sqrt(q)
    eb = r * np.sin(phi) * np.sqrt(q)
    x = ea * np.cos(pa) - eb * np.sin(pa) + pop["center_offset_x_arcmin"][j]
    y = ea * np.sin(pa) + eb * np.cos(pa) + pop["center_offset_y_arcmin"][j]
    is_sub = comp == 2
    d = pop["subclump_offset_r500"][j] * th
    ang = pop["subclump_angle"][j]
    x = x + np.where(is_sub, d * np.cos(ang), 0.0)
    y = y + np.where(is_sub, d * np.sin(ang), 0.0)
    c = npix / 2.0
    sx, sy = c + x / setup.pix_arcmin, c + y / setup.pix_arcmin
    # -- AGN photons at their sources
    agn_ph = np.concatenate(agn_ph_l, axis=0)
    agn_xy = np.concatenate(agn_xy_l, axis=0)
    agn_cl = np.concatenate(agn_cl_l).astype(np.int64)
    n_sources = agn_ph.shape[0]
    a_row = np.repeat(np.repeat(np.arange(n_sources), nb), agn_ph.ravel())
    a_band = np.repeat(np.tile(np.arange(nb), n_sources), agn_ph.ravel())
    u_aph = np.concatenate(u_aph_l, axis=1)
    ns_tot = sx.size
    px = np.concatenate([sx, agn_xy[a_row, 0]])
    py = np.concatenate([sy, agn_xy[a_row, 1]])
    pb = np.concatenate([band, a_band])
    pc = np.concatenate([cl, agn_cl[a_row]])
    is_src = np.zeros(px.size, bool)
    is_src[:ns_tot] = True
    if p.psf:
        u_psf = np.concatenate([u_src[3:5], u_aph], axis=1)
        rp = instrument.king_sample_radius(u_psf[0], p.psf_core_arcsec, p.psf_index, setup.psf_r_max_arcsec) \
            / p.pixel_scale_arcsec
        ang_p = 2.0 * np.pi * u_psf[1]
        px += rp * np.cos(ang_p)
        py += rp * np.sin(ang_p)
    inside = (px >= 0) & (px < npix) & (py >= 0) & (py < npix)
    flat_ph = ((pc * npix + py.astype(np.int64)) * npix + px.astype(np.int64)) * nb + pb
    # -- background: uniform pixels
    bg_pix = np.concatenate(bg_pix_l)
    bg_cl = np.repeat(clus_ids, n_bg.ravel())
    bg_band = np.repeat(band_ids, n_bg.ravel())
    flat_bg = (bg_cl * (npix * npix) + bg_pix) * nb + bg_band
    # bin in blocks of clusters: the int64 histogram of a whole chunk would need 8 bytes per value
    flat = np.concatenate([flat_ph[inside], flat_bg])
    owner = np.concatenate([pc[inside], bg_cl])
    per = npix * npix * nb
    img = np.empty((m, npix, npix, nb), dtype=np.float32)
    step = 128
    for a in range(0, m, step):
        b = min(m, a + step)
        sel = (owner >= a) & (owner < b)
        img[a:b] = np.bincount(flat[sel] - a * per, minlength=(b - a) * per).reshape(b - a, npix, npix, nb)
    src_in = is_src & inside
    obs = np.bincount(pc[src_in] * nb + pb[src_in], minlength=m * nb).reshape(m, nb).astype(float)
    agn_in = np.bincount(pc[~is_src & inside], minlength=m).astype(float)
    extras = {"source_counts_outside_image": n_src.sum(axis=1) - obs.sum(axis=1), "n_agn": n_field,
              "agn_counts": agn_in}
    for b in range(nb):
        extras[f"observed_counts_band{b + 1}"] = obs[:, b]
        extras[f"background_counts_band{b + 1}"] = n_bg[:, b].astype(float)
    return img, extras


def _render_chunk_expected(pop: dict, start: int, stop: int, seed: int, p: SimulationParams,
                           setup: _RenderSetup, oversample: int = 2) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Expected-count images (no Poisson noise) for clusters [start, stop).

    The beta-model components are evaluated on a grid oversampled
    ``oversample`` times (core radii softened by half a fine pixel so the
    sampling conserves flux), convolved with the King PSF (FFT), rebinned;
    AGN (positions and fluxes drawn from the cluster's stream as in the
    Poisson renderer) are PSF-shaped points; the background is flat.
    """
    from scipy.signal import fftconvolve

    m = stop - start
    npix, nb = setup.npix, N_BANDS
    k_os = oversample
    fine = setup.pix_arcmin / k_os
    pad = int(math.ceil(setup.psf_r_max_arcsec / p.pixel_scale_arcsec)) if p.psf else 0
    nf = (npix + 2 * pad) * k_os
    coords = (np.arange(nf) + 0.5) * fine - pad * setup.pix_arcmin - npix * setup.pix_arcmin / 2.0
    kernel = instrument.king_kernel(p.pixel_scale_arcsec / k_os, p.psf_core_arcsec, p.psf_index,
                                    setup.psf_r_max_arcsec) if p.psf else None
    tr = p.truncation_r500
    imgs = np.zeros((m, npix, npix, nb), dtype=np.float64)
    obs = np.zeros((m, nb))
    outside = np.zeros(m)
    n_agn = np.zeros(m, dtype=np.int32)
    agn_counts = np.zeros(m)
    soft = 0.5 * fine
    for k in range(m):
        j = start + k
        th = pop["R500_arcmin"][j]
        q = pop["axis_ratio"][j]
        pa = np.radians(pop["position_angle"][j])
        beta = pop["beta"][j]
        cx, cy = pop["center_offset_x_arcmin"][j], pop["center_offset_y_arcmin"][j]
        ang = pop["subclump_angle"][j]
        d = pop["subclump_offset_r500"][j] * th
        centres = [(cx, cy), (cx, cy), (cx + d * np.cos(ang), cy + d * np.sin(ang))]
        rcs = [pop["rc_r500"][j] * th, p.cc_core_rc * th, p.subclump_rc * th]
        shape = np.zeros((nf, nf))
        for c_i, (ccx, ccy), rc_i in zip(range(3), centres, rcs):
            w_i = pop["component_weights"][j][c_i]
            if w_i <= 0:
                continue
            dx = coords[None, :] - ccx
            dy = coords[:, None] - ccy
            xr = dx * np.cos(pa) + dy * np.sin(pa)
            yr = -dx * np.sin(pa) + dy * np.cos(pa)
            r_e = np.sqrt(xr * xr * q + yr * yr / q)
            rs = math.hypot(rc_i, soft)
            val = np.where(r_e <= tr * th, physics.beta_model(r_e, rs, beta), 0.0)
            shape += w_i * val * fine * fine / physics.beta_model_cumulative(tr * th, rs, beta)
        # AGN, same draws as the Poisson renderer (first the counts, which are ignored here)
        rng = _cluster_rng(seed, int(pop["cluster_id"][j]))
        mu_src = np.array([pop[f"expected_counts_band{b + 1}"][j] for b in range(nb)])
        expo = pop["exposure_s"][j]
        bg_pp = background_per_pixel(pop, slice(j, j + 1), p, setup)[0]
        if "source_photons" in pop and p.physics == "v2":
            tot = mu_src.sum()
            rng.multinomial(int(pop["source_photons"][j]), mu_src / tot) if tot > 0 else None
        else:
            rng.poisson(mu_src)
        rng.poisson(bg_pp * npix * npix)
        n_field, s_agn, ax, ay = _draw_agn(rng, pop, j, p, setup)
        agn_map = np.zeros((nf, nf))
        fx = np.clip(((ax + pad) * k_os).astype(int), 0, nf - 1)
        fy = np.clip(((ay + pad) * k_os).astype(int), 0, nf - 1)
        np.add.at(agn_map, (fy, fx), s_agn)
        if kernel is not None:
            shape = fftconvolve(shape, kernel, mode="same")
            agn_map = fftconvolve(agn_map, kernel, mode="same")
        crop = slice(pad * k_os, (pad + npix) * k_os)
        s_img = shape[crop, crop].reshape(npix, k_os, npix, k_os).sum(axis=(1, 3))
        a_img = agn_map[crop, crop].reshape(npix, k_os, npix, k_os).sum(axis=(1, 3))
        rates = _agn_rates(setup, pop["nH"][j]) * expo
        src = s_img[..., None] * mu_src[None, None, :]
        agn = a_img[..., None] * rates[None, None, :]
        imgs[k] = src + agn + bg_pp[None, None, :]
        obs[k] = src.sum(axis=(0, 1))
        outside[k] = mu_src.sum() - obs[k].sum()
        n_agn[k] = n_field
        agn_counts[k] = agn.sum()
    extras = {"source_counts_outside_image": outside, "n_agn": n_agn, "agn_counts": agn_counts}
    bg_tot = background_per_pixel(pop, slice(start, stop), p, setup) * npix * npix
    for b in range(nb):
        extras[f"observed_counts_band{b + 1}"] = obs[:, b]
        extras[f"background_counts_band{b + 1}"] = bg_tot[:, b]
    return imgs.astype(np.float32), extras


def smooth_images(img: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing of (m, H, W, C) images over H and W, in place (reflecting edges conserve counts)."""
    from scipy.ndimage import gaussian_filter1d

    tmp = gaussian_filter1d(img, sigma, axis=1, mode="reflect", truncate=4.0)
    return gaussian_filter1d(tmp, sigma, axis=2, mode="reflect", truncate=4.0, output=img)


def render_images(pop: dict, start: int, stop: int, seed: int,
                  params: SimulationParams | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Images (m, 50, 50, 10) float32 of clusters ``start:stop`` of a population, and their counts.

    ``pop`` comes from :func:`draw_population` with the same ``seed`` and
    ``params``; each cluster uses its own random stream, so any split of
    [0, N) into chunks gives the same images.
    """
    p = params or SimulationParams()
    setup = _render_setup(p)
    if p.poisson:
        img, extras = _render_chunk_poisson(pop, start, stop, seed, p, setup)
    else:
        img, extras = _render_chunk_expected(pop, start, stop, seed, p, setup)
    if p.smoothing and p.smoothing_sigma_px > 0:
        img = smooth_images(img, p.smoothing_sigma_px)
    return img, extras


