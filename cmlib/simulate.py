"""The mock eFEDS cluster catalogue: population, X-ray images and data files.

The thesis's simulations (the eFEDS mock of Liu et al. 2022 with the cluster
model of Comparat et al. 2020) are not public, so cmlib generates a physically
motivated stand-in, locally and deterministically.  Mass reaches the images the
way it does in real survey data: through the luminosity (L_X-M relation), the
angular size (R500 and the distance) and, weakly, the spectral shape (kT-M),
blurred by intrinsic scatter, morphology, photon noise, background, point
sources and the instrument.  Every physical component has an on/off switch in
:class:`SimulationParams`, so the book can show what each one adds.

Pipeline (physics.md Sects. 3-7; units: Msun, kpc, arcmin, keV, erg/s, s)

1. **Population** - haloes are drawn from the Tinker et al. (2008) M500c mass
   function times the comoving volume of the survey (13 < log M < 15,
   0.01 < z < 1.5), given luminosity and temperature from scaling relations
   with correlated log-normal scatter, a morphology (non-cool-core, cool-core,
   disturbed), an elliptical beta-model, metallicity, N_H and exposure, and
   kept with the aperture-flux selection probability (erfc in log flux) until
   exactly N clusters are selected.  Scalars only: cheap for any N.
2. **Spectrum -> counts** - bremsstrahlung (Born Gaunt factor) plus
   approximate lines, redshifted, absorbed (Morrison & McCammon 1983), through
   the eROSITA effective area with energy redistribution into the ten bands
   of thesis Table 1 (:class:`cmlib.instrument.ThermalConversion`).
3. **Images** - Poisson photons drawn at continuous sky positions from the
   beta-model components (truncated at 3 R500), shifted by the King PSF,
   plus flat sky and particle background and AGN point sources (Moretti 2003
   log N - log S; a bright central AGN in ~5 % of clusters), binned into
   50 x 50 pixels of 24" (exactly what a 300 x 300 grid of 4" pixels rebinned
   6 x 6 gives) and Gaussian-smoothed with sigma = 1 px.  Float32
   (N, 50, 50, 10).

Morphology: 35 % cool cores (core radius 0.06 R500 plus a compact component
with 20-40 % of the flux, and 30 % brighter at fixed mass, Lovisari et al.
2020), 30 % disturbed (an off-centre sub-clump), the rest plain non-cool-core
(core 0.18 R500); elliptical, slightly off-centre.  ``sigma_lnL`` is the total
L_X scatter at fixed mass, the cool-core offset included.  Each beta-model is
normalised so that the flux inside R500 equals L_X.  With ``poisson=False``
the images are the expected counts (a grid renderer with FFT convolution).

Known differences from the thesis data (see the book): the selection is an
aperture-flux erfc, not the eSASS extent detection, so the absolute number
per 140 deg^2 (~740) exceeds the mock's 441 although the shapes of the z,
mass, size and count distributions match eFEDS (physics.md Sect. 2); X-ray
selection raises the cool-core share to ~50 %; every image carries ~14 field
AGN above 1e-14 erg/s/cm^2 (Moretti 2003), which dominate the scatter of
simple aperture photometry.

Reproducibility: the population of N clusters is drawn first from fixed-size
candidate batches, each with its own counter-based stream
``Philox(key=[seed, 2**63 + batch])``; each cluster's image then uses its own
stream ``Philox(key=[seed, cluster_id])``.  So results do not depend on the
chunk size, the first n clusters of a run with N > n are exactly the run with
n, and a file is byte-identical for the same seed and chunk size.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import math
import sys
import time
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import special

from . import instrument, physics
from .errors import InputError
from .schema import IMAGE_SIZE, N_BANDS

#: Version of the physical model, stored in every file as the ``physics_version``
#: attribute (bump it whenever the same seed and parameters give different data).
PHYSICS_VERSION = "cmlib-mock-efeds-1.0"
PHYSICS_MODEL_VERSION = PHYSICS_VERSION
#: Morphology codes of the ``morphology`` catalogue column.
MORPHOLOGY_CODES = {0: "non-cool-core", 1: "cool-core", 2: "disturbed"}
#: Largest N for :func:`simulate` (in memory, ~100 kB per cluster); use :func:`simulate_to_file` beyond.
MAX_IN_MEMORY = 20_000
#: Largest N for :func:`simulate_to_file`.
MAX_CLUSTERS = 1_000_000
#: Candidate haloes per population batch (fixed: results must not depend on N).
_BATCH = 1 << 17
#: Stream-key offset that separates population batches from per-cluster streams.
_POP_DOMAIN = 1 << 63


def _p(default: Any, unit: str, doc: str, source: str = "design choice"):
    return field(default=default, metadata={"unit": unit, "doc": doc, "source": source})


# --------------------------------------------------------------------------- parameters

@dataclass(frozen=True)
class SimulationParams:
    """Every parameter of the mock generator, with its unit and source.

    Switches (bool) turn physical components on and off; off means "ideal":
    no scatter, round clusters, no background, ... .  Numbers are the defaults
    of physics.md (calibrated to the eFEDS population; each a documented design
    choice).  ``SimulationParams.describe()`` lists them; the CLI's
    ``cmlib simulate --list-params`` prints the same table.  Invalid values
    raise :class:`cmlib.errors.InputError` at construction.
    """

    # -- switches ---------------------------------------------------------------
    selection: bool = _p(True, "", "apply the survey selection (aperture-flux erfc); off: the raw halo population",
                         "physics.md 3")
    scatter: bool = _p(True, "", "log-normal scatter about the L_X-M and kT-M relations", "physics.md 4")
    cool_cores: bool = _p(True, "", "cool-core clusters (small core, compact central component, brighter)",
                          "physics.md 5")
    disturbed: bool = _p(True, "", "disturbed clusters with an off-centre sub-clump", "physics.md 5")
    ellipticity: bool = _p(True, "", "elliptical isophotes (axis ratio q < 1); off: round", "physics.md 5")
    center_jitter: bool = _p(True, "", "offset of the emission centre from the image centre", "physics.md 5")
    lines: bool = _p(True, "", "approximate emission lines (Fe-L, O, Ne, Mg, Si) on the continuum",
                     "physics.md 6")
    absorption: bool = _p(True, "", "Galactic photo-absorption (Morrison & McCammon 1983)", "physics.md 6")
    energy_redistribution: bool = _p(True, "", "finite energy resolution moves photons between bands",
                                     "physics.md 7")
    exposure_variation: bool = _p(True, "", "per-cluster exposure (log-normal); off: the median everywhere",
                                  "physics.md 7")
    psf: bool = _p(True, "", "King point-spread function", "physics.md 7")
    sky_background: bool = _p(True, "", "cosmic X-ray background and Galactic foreground", "physics.md 7")
    particle_background: bool = _p(True, "", "instrumental (particle) background incl. Al K-alpha",
                                   "physics.md 7")
    agn: bool = _p(True, "", "AGN point sources in the field (Moretti 2003 log N - log S)", "physics.md 7")
    central_agn: bool = _p(True, "", "a bright AGN in the centre of some clusters", "physics.md 7")
    poisson: bool = _p(True, "", "Poisson photon noise; off: images are the expected counts", "physics.md 7")
    smoothing: bool = _p(True, "", "Gaussian smoothing of the binned images", "thesis 3.1; physics.md 1")

    # -- population ----------------------------------------------------------------
    log_m_min: float = _p(13.0, "log10 Msun", "lower limit of log10(M500c / Msun)", "thesis 3.1")
    log_m_max: float = _p(15.0, "log10 Msun", "upper limit of log10(M500c / Msun)", "thesis 3.1")
    z_min: float = _p(0.01, "", "lower redshift limit", "thesis 3.1")
    z_max: float = _p(1.5, "", "upper redshift limit", "thesis 3.1")
    survey_area_deg2: float = _p(140.0, "deg^2", "survey area (sets the expected number per field only)",
                                 "eFEDS, Brunner et al. 2022")
    flux_limit: float = _p(2e-14, "erg/s/cm^2", "0.5-2 keV aperture flux at 50 % selection probability",
                           "physics.md 3 [D]")
    selection_aperture_arcmin: float = _p(1.0, "arcmin", "radius of the selection aperture", "physics.md 3 [D]")
    selection_width_dex: float = _p(0.1, "dex", "width of the erfc selection in log10 flux", "physics.md 3 [D]")

    # -- scaling relations -----------------------------------------------------------
    mass_pivot: float = _p(1e14, "Msun", "pivot mass of the scaling relations", "physics.md 4")
    lx_norm: float = _p(8e42, "erg/s", "median L_X(0.5-2 keV, < R500) at the pivot mass, z = 0",
                        "physics.md 4 [D]")
    lx_slope: float = _p(1.8, "", "slope of L_X-M", "physics.md 4 [D]; Vikhlinin 2009, Bulbul 2019")
    lx_ez_power: float = _p(2.0, "", "power of E(z) in L_X-M (self-similar: 2)", "physics.md 4")
    sigma_lnL: float = _p(0.35, "", "total scatter of ln L_X at fixed mass (incl. the cool-core offset)",
                          "physics.md 4 [D]")
    kt_norm: float = _p(2.0, "keV", "median kT at the pivot mass, z = 0", "physics.md 4 [D]")
    kt_slope: float = _p(0.6, "", "slope of kT-(E(z) M)", "physics.md 4; Arnaud 2005")
    sigma_lnT: float = _p(0.12, "", "scatter of ln kT at fixed mass", "physics.md 4")
    rho_LT: float = _p(0.4, "", "correlation of the L_X and kT scatter", "physics.md 4; Mantz 2016")
    cool_core_lx_boost: float = _p(1.3, "", "L_X of cool cores / others at fixed mass",
                                   "physics.md 5; Lovisari 2020")
    metallicity_mean: float = _p(0.3, "Zsun", "mean ICM metallicity", "physics.md 4")
    metallicity_sigma: float = _p(0.1, "Zsun", "spread of the metallicity (clipped to 0.05-1)", "physics.md 4")

    # -- morphology (radii in units of R500) -------------------------------------------
    cool_core_fraction: float = _p(0.35, "", "fraction of cool-core clusters", "physics.md 5")
    disturbed_fraction: float = _p(0.30, "", "fraction of disturbed clusters (among the rest)",
                                   "physics.md 5; Ghirardini 2022")
    beta_mean: float = _p(0.67, "", "mean beta of the beta-model", "physics.md 5")
    beta_sigma: float = _p(0.07, "", "spread of beta", "physics.md 5")
    beta_min: float = _p(0.5, "", "lower clip of beta", "physics.md 5")
    beta_max: float = _p(0.9, "", "upper clip of beta", "physics.md 5")
    rc_ncc: float = _p(0.18, "R500", "median core radius, non-cool-core and disturbed", "physics.md 5")
    rc_cc: float = _p(0.06, "R500", "median core radius, cool-core", "physics.md 5")
    rc_sigma_ln: float = _p(0.35, "", "log-normal spread of the core radius", "physics.md 5")
    cc_core_flux_min: float = _p(0.2, "", "compact cool-core component: least share of the R500 flux",
                                 "physics.md 5 [M]")
    cc_core_flux_max: float = _p(0.4, "", "compact cool-core component: largest share of the R500 flux",
                                 "physics.md 5 [M]")
    cc_core_rc: float = _p(0.03, "R500", "core radius of the compact cool-core component")
    subclump_flux_min: float = _p(0.1, "", "sub-clump of disturbed clusters: least share of the flux",
                                  "physics.md 5")
    subclump_flux_max: float = _p(0.3, "", "sub-clump: largest share of the flux", "physics.md 5")
    subclump_dist_min: float = _p(0.3, "R500", "sub-clump: least distance from the centre", "physics.md 5")
    subclump_dist_max: float = _p(0.8, "R500", "sub-clump: largest distance from the centre", "physics.md 5")
    subclump_rc: float = _p(0.1, "R500", "core radius of the sub-clump")
    axis_ratio_mean: float = _p(0.8, "", "mean minor/major axis ratio q", "physics.md 5")
    axis_ratio_sigma: float = _p(0.1, "", "spread of q (clipped to [axis_ratio_min, 1])", "physics.md 5")
    axis_ratio_min: float = _p(0.5, "", "lower clip of q", "physics.md 5")
    center_jitter_r500: float = _p(0.03, "R500", "sigma of the centre offset per axis", "physics.md 5")
    truncation_r500: float = _p(3.0, "R500", "the beta-models are truncated at this radius", "physics.md 5")

    # -- spectrum ------------------------------------------------------------------------
    fe_l_strength: float = _p(1.0, "", "Fe-L bump flux / 0.5-2 keV continuum at kT = 1 keV, Z = 0.3",
                              "physics.md 6 [M]")
    nh_min: float = _p(2e20, "cm^-2", "lowest Galactic N_H (uniform)", "physics.md 6")
    nh_max: float = _p(5e20, "cm^-2", "highest Galactic N_H (uniform)", "physics.md 6")

    # -- instrument and sky ------------------------------------------------------------------
    exposure_median_s: float = _p(1200.0, "s", "median vignetting-corrected exposure", "physics.md 7 [S]")
    exposure_sigma_ln: float = _p(0.25, "", "log-normal spread of the exposure", "physics.md 7")
    exposure_min_s: float = _p(500.0, "s", "lower clip of the exposure", "physics.md 7")
    exposure_max_s: float = _p(2500.0, "s", "upper clip of the exposure", "physics.md 7")
    psf_core_arcsec: float = _p(8.7, "arcsec", "King PSF core radius (HEW 30\", FWHM 13\")", "physics.md 7 [D]")
    psf_index: float = _p(1.5, "", "King PSF index", "physics.md 7 [D]")
    psf_max_arcmin: float = _p(4.0, "arcmin", "the PSF is truncated (and renormalised) at this radius")
    background_density: float = _p(5.0, "counts/arcmin^2/ks", "total background, 0.25-2.3 keV",
                                   "physics.md 7 [D]: 5-7 per 1.2 ks")
    sky_fraction: float = _p(0.7, "", "share of the sky (vs particle) background", "physics.md 7 [M]")
    sky_band_shares: tuple = _p(instrument.SKY_BAND_SHARES, "", "relative sky background per band (10 values)",
                                "physics.md 7; Ponti 2022")
    particle_line_fraction: float = _p(0.1, "", "share of the Al K-alpha line in the particle background")
    agn_flux_min: float = _p(1e-14, "erg/s/cm^2", "faintest AGN drawn (fainter ones are in the sky background)")
    agn_flux_max: float = _p(1e-11, "erg/s/cm^2", "brightest AGN drawn")
    agn_gamma: float = _p(1.9, "", "AGN photon index", "physics.md 7 [M]")
    central_agn_fraction: float = _p(0.05, "", "fraction of clusters with a central AGN", "physics.md 7")
    central_agn_ratio_min: float = _p(0.1, "", "central AGN flux / cluster aperture flux: least (log-uniform)")
    central_agn_ratio_max: float = _p(1.0, "", "central AGN flux / cluster aperture flux: largest")
    pixel_scale_arcsec: float = _p(24.0, "arcsec", "output pixel size (assumption: 4\" x 300 / 50)",
                                   "physics.md 1")
    smoothing_sigma_px: float = _p(1.0, "px", "sigma of the Gaussian smoothing", "physics.md 7")

    def __post_init__(self) -> None:
        _validate(self)

    # -- conversions ------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """All parameters as a JSON-able dict (tuples become lists)."""
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
                for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SimulationParams":
        """Inverse of :meth:`to_dict` (unknown keys raise :class:`InputError`)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise InputError(f"unknown simulation parameter(s) {unknown}; valid names: {', '.join(sorted(names))}")
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()})

    def replace(self, **changes) -> "SimulationParams":
        """A copy with some parameters changed (validated)."""
        return dataclasses.replace(self, **changes)

    @staticmethod
    def describe() -> list[dict[str, Any]]:
        """One row per parameter: name, default, unit, description, source."""
        return [{"name": f.name, "default": f.default, "unit": f.metadata["unit"],
                 "description": f.metadata["doc"], "source": f.metadata["source"]}
                for f in dataclasses.fields(SimulationParams)]


def params_to_dict(params: SimulationParams | None = None) -> dict[str, Any]:
    """The JSON-able dict of ``params`` (default parameters if None), as stored in ``generator_params``."""
    return (params or SimulationParams()).to_dict()


def _field_types() -> dict[str, Any]:
    return typing.get_type_hints(SimulationParams)


def _validate(p: SimulationParams) -> None:
    types = _field_types()
    for f in dataclasses.fields(p):
        v = getattr(p, f.name)
        t = types[f.name]
        if t is bool:
            if not isinstance(v, (bool, np.bool_)):
                raise InputError(f"parameter '{f.name}' must be true or false, got {v!r}")
        elif t is float:
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
                raise InputError(f"parameter '{f.name}' must be a number, got {v!r} "
                                 "(use cmlib.simulate.parse_parameters to convert strings)")
            if not math.isfinite(float(v)):
                raise InputError(f"parameter '{f.name}' must be finite, got {v!r}")
    shares = p.sky_band_shares
    if (not isinstance(shares, (tuple, list)) or len(shares) != N_BANDS
            or not all(isinstance(s, (int, float)) and math.isfinite(s) and s >= 0 for s in shares)
            or sum(shares) <= 0):
        raise InputError(f"parameter 'sky_band_shares' must be {N_BANDS} non-negative numbers with a positive "
                         f"sum (comma-separated on the command line), got {shares!r}")

    def need(cond: bool, name: str, rule: str) -> None:
        if not cond:
            raise InputError(f"parameter '{name}' = {getattr(p, name)!r} is invalid: {rule}")

    def order(lo: str, hi: str, strict: bool = True) -> None:
        a, b = getattr(p, lo), getattr(p, hi)
        if (a >= b) if strict else (a > b):
            raise InputError(f"parameters '{lo}' = {a!r} and '{hi}' = {b!r} are inverted: '{lo}' must be "
                             f"{'<' if strict else '<='} '{hi}'; swap them or change one")

    need(12.0 <= p.log_m_min <= 16.0, "log_m_min", "use a value in [12, 16] (Tinker 2008 calibration range)")
    need(12.0 <= p.log_m_max <= 16.0, "log_m_max", "use a value in [12, 16]")
    order("log_m_min", "log_m_max")
    need(0.0 < p.z_min <= 3.0, "z_min", "use 0 < z_min <= 3")
    need(0.0 < p.z_max <= 3.0, "z_max", "use 0 < z_max <= 3")
    order("z_min", "z_max")
    for name in ("survey_area_deg2", "flux_limit", "selection_aperture_arcmin", "selection_width_dex",
                 "mass_pivot", "lx_norm", "lx_slope", "kt_norm", "cool_core_lx_boost", "beta_mean",
                 "rc_ncc", "rc_cc", "cc_core_rc", "subclump_rc", "truncation_r500", "exposure_median_s",
                 "exposure_min_s", "exposure_max_s", "psf_core_arcsec", "psf_max_arcmin", "agn_flux_min",
                 "agn_flux_max", "agn_gamma", "central_agn_ratio_min", "central_agn_ratio_max",
                 "pixel_scale_arcsec", "axis_ratio_mean"):
        need(getattr(p, name) > 0, name, "must be positive")
    need(p.survey_area_deg2 <= 41253.0, "survey_area_deg2", "cannot exceed the full sky (41253 deg^2)")
    for name in ("sigma_lnL", "sigma_lnT", "metallicity_sigma", "beta_sigma", "rc_sigma_ln",
                 "axis_ratio_sigma", "center_jitter_r500", "exposure_sigma_ln", "background_density",
                 "smoothing_sigma_px", "fe_l_strength", "kt_slope", "nh_min", "metallicity_mean"):
        need(getattr(p, name) >= 0, name, "must be >= 0 (a scatter, width or level cannot be negative)")
    for name in ("cool_core_fraction", "disturbed_fraction", "sky_fraction", "particle_line_fraction",
                 "central_agn_fraction", "cc_core_flux_min", "cc_core_flux_max", "subclump_flux_min",
                 "subclump_flux_max"):
        need(0.0 <= getattr(p, name) <= 1.0, name, "must be a fraction in [0, 1]")
    need(p.cool_core_fraction + p.disturbed_fraction <= 1.0, "disturbed_fraction",
         f"cool_core_fraction + disturbed_fraction must be <= 1 (cool_core_fraction = {p.cool_core_fraction})")
    need(p.cc_core_flux_max + p.subclump_flux_max < 1.0, "subclump_flux_max",
         "cc_core_flux_max + subclump_flux_max must be < 1 (the main component keeps the rest)")
    need(-1.0 <= p.rho_LT <= 1.0, "rho_LT", "a correlation coefficient lies in [-1, 1]")
    need(0.5 <= p.beta_min, "beta_min", "beta >= 0.5 is needed for a finite projected flux")
    need(p.beta_max <= 2.0, "beta_max", "use beta_max <= 2")
    order("beta_min", "beta_max", strict=False)
    need(0.0 < p.axis_ratio_min <= 1.0, "axis_ratio_min", "an axis ratio lies in (0, 1]")
    need(p.axis_ratio_mean <= 1.0, "axis_ratio_mean", "an axis ratio lies in (0, 1]")
    order("cc_core_flux_min", "cc_core_flux_max", strict=False)
    order("subclump_flux_min", "subclump_flux_max", strict=False)
    order("subclump_dist_min", "subclump_dist_max", strict=False)
    need(p.subclump_dist_min >= 0, "subclump_dist_min", "must be >= 0")
    need(p.subclump_dist_max < p.truncation_r500, "subclump_dist_max", "must be < truncation_r500")
    need(p.truncation_r500 >= 1.0, "truncation_r500", "the model must extend at least to R500 (use >= 1)")
    order("exposure_min_s", "exposure_max_s", strict=False)
    need(p.exposure_min_s <= p.exposure_median_s <= p.exposure_max_s, "exposure_median_s",
         "must lie between exposure_min_s and exposure_max_s")
    order("nh_min", "nh_max", strict=False)
    need(p.nh_max <= 1e22, "nh_max", "use N_H <= 1e22 cm^-2 (the conversion grid ends there)")
    order("agn_flux_min", "agn_flux_max")
    order("central_agn_ratio_min", "central_agn_ratio_max", strict=False)
    need(p.psf_index > 1.0, "psf_index", "a King profile needs index > 1 for a finite flux")
    need(p.metallicity_mean <= 3.0, "metallicity_mean", "use a metallicity <= 3 solar")
    need(p.pixel_scale_arcsec <= 600.0, "pixel_scale_arcsec", "use a pixel of at most 10 arcmin")
    if p.cool_cores:
        var_morph = math.log(p.cool_core_lx_boost) ** 2 * p.cool_core_fraction * (1 - p.cool_core_fraction)
        need(not p.scatter or p.sigma_lnL ** 2 >= var_morph, "sigma_lnL",
             f"the cool-core offset alone gives a scatter of {math.sqrt(var_morph):.3f}; raise sigma_lnL or "
             "lower cool_core_lx_boost")


_TRUE = {"true", "1", "yes", "on", "y", "t"}
_FALSE = {"false", "0", "no", "off", "n", "f"}


def parse_parameters(overrides: dict[str, str] | None) -> SimulationParams:
    """Build :class:`SimulationParams` from string overrides (``--set key=value`` on the CLI).

    Booleans accept true/false/1/0/yes/no/on/off; numbers any float syntax
    ("0.3", "2e-14"); ``sky_band_shares`` a comma-separated list of 10 numbers.
    Unknown names and bad values raise :class:`InputError` naming the fix.
    """
    overrides = dict(overrides or {})
    types = _field_types()
    unknown = sorted(set(overrides) - set(types))
    if unknown:
        raise InputError(f"unknown simulation parameter(s) {', '.join(unknown)}; valid names: "
                         f"{', '.join(types)} (see `cmlib simulate --list-params`)")
    values: dict[str, Any] = {}
    for key, text in overrides.items():
        t = types[key]
        s = str(text).strip()
        if t is bool:
            if s.lower() in _TRUE:
                values[key] = True
            elif s.lower() in _FALSE:
                values[key] = False
            else:
                raise InputError(f"parameter '{key}' expects true or false, got '{text}'")
        elif t is float:
            try:
                values[key] = float(s)
            except ValueError:
                raise InputError(f"parameter '{key}' expects a number, got '{text}'") from None
        else:
            try:
                values[key] = tuple(float(v) for v in s.replace(";", ",").split(",") if v.strip())
            except ValueError:
                raise InputError(f"parameter '{key}' expects comma-separated numbers, got '{text}'") from None
    return SimulationParams(**values)


def format_parameter_table() -> str:
    """The parameter table (name, default, unit, description; source) as plain text."""
    rows = SimulationParams.describe()

    def fmt(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, tuple):
            return ",".join(f"{x:g}" for x in v)
        return f"{v:g}"

    w_name = max(len(r["name"]) for r in rows)
    w_def = min(12, max(len(fmt(r["default"])) for r in rows))     # long tuples overflow their row
    w_unit = max(len(r["unit"]) for r in rows)
    head = f"{'name':<{w_name}}  {'default':<{w_def}}  {'unit':<{w_unit}}  description; source"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['name']:<{w_name}}  {fmt(r['default']):<{w_def}}  {r['unit']:<{w_unit}}  "
                     f"{r['description']}; {r['source']}")
    lines.append("")
    lines.append("Set with --set NAME=VALUE (repeatable), e.g. --set psf=false --set sigma_lnL=0.2")
    return "\n".join(lines)


# --------------------------------------------------------------------------- catalogue columns

def _band_cols(prefix: str, unit: str, what: str) -> dict[str, tuple[str, str, str]]:
    from .schema import BAND_EDGES_EV

    return {f"{prefix}_band{b + 1}": ("f8", unit, f"{what}, band {b + 1} "
                                      f"({BAND_EDGES_EV[b]:.0f}-{BAND_EDGES_EV[b + 1]:.0f} eV)")
            for b in range(N_BANDS)}


#: Catalogue columns: name -> (dtype, unit, description).
CATALOG_COLUMNS: dict[str, tuple[str, str, str]] = {
    "cluster_id": ("i8", "", "unique id: serial number of the halo in the seed's candidate stream"),
    "M500c": ("f8", "Msun", "true mass inside R500c"),
    "log_m500": ("f8", "log10 Msun", "log10(M500c / Msun), the label"),
    "z": ("f8", "", "redshift"),
    "E_z": ("f8", "", "E(z) = H(z)/H0"),
    "D_A_Mpc": ("f8", "Mpc", "angular-diameter distance"),
    "D_L_Mpc": ("f8", "Mpc", "luminosity distance"),
    "R500_kpc": ("f8", "kpc", "R500c"),
    "R500_arcmin": ("f8", "arcmin", "theta500 = R500 / D_A"),
    "kT": ("f8", "keV", "ICM temperature (isothermal)"),
    "Z_metal": ("f8", "Zsun", "ICM metallicity"),
    "L_X_500": ("f8", "erg/s", "luminosity 0.5-2 keV rest frame inside projected R500"),
    "flux_0p5_2": ("f8", "erg/s/cm^2", "observed-frame 0.5-2 keV flux inside R500, unabsorbed"),
    "flux_aperture": ("f8", "erg/s/cm^2", "0.5-2 keV flux inside the selection aperture, unabsorbed"),
    "selection_probability": ("f8", "", "probability that the survey selects this cluster (1 if selection off)"),
    "exposure_s": ("f8", "s", "vignetting-corrected exposure"),
    "nH": ("f8", "cm^-2", "Galactic hydrogen column density"),
    **_band_cols("expected_counts", "counts", "expected source photons of the whole model (< truncation radius)"),
    "expected_counts_r500": ("f8", "counts", "expected source photons inside projected R500, all bands"),
    **_band_cols("observed_counts", "counts", "source photons drawn that land in the 50x50 image"),
    "source_counts_outside_image": ("f8", "counts", "source photons drawn that fall outside the image"),
    **_band_cols("background_counts", "counts", "sky + particle background photons in the 50x50 image"),
    "morphology": ("i1", "", "0 = non-cool-core, 1 = cool-core, 2 = disturbed"),
    "r_core_kpc": ("f8", "kpc", "core radius of the main beta-model component"),
    "r_core_arcmin": ("f8", "arcmin", "core radius of the main component"),
    "beta": ("f8", "", "beta of the beta-model"),
    "axis_ratio": ("f8", "", "minor/major axis ratio q"),
    "ellipticity": ("f8", "", "1 - q"),
    "position_angle": ("f8", "deg", "major-axis angle from the +x (column) axis towards +y (row index)"),
    "cc_core_fraction": ("f8", "", "share of the R500 flux in the compact cool-core component"),
    "subclump_fraction": ("f8", "", "share of the R500 flux in the sub-clump (disturbed)"),
    "subclump_offset_r500": ("f8", "R500", "distance of the sub-clump from the centre"),
    "center_offset_x_arcmin": ("f8", "arcmin", "emission centre minus image centre, x"),
    "center_offset_y_arcmin": ("f8", "arcmin", "emission centre minus image centre, y"),
    "n_agn": ("i4", "", "field AGN (flux > agn_flux_min) inside the image"),
    "central_agn": ("i1", "", "1 if the cluster hosts a bright central AGN"),
    "central_agn_flux": ("f8", "erg/s/cm^2", "0.5-2 keV flux of the central AGN (0 if none)"),
    "agn_counts": ("f8", "counts", "AGN photons (field + central) in the image, all bands"),
    "delta_lnL": ("f8", "", "ln(L_X / median L_X(M, z)): drawn scatter incl. the cool-core offset"),
    "delta_lnL_morph": ("f8", "", "cool-core / non-cool-core part of delta_lnL"),
    "delta_lnT": ("f8", "", "ln(kT / median kT(M, z)): drawn scatter"),
}

# --------------------------------------------------------------------------- population

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


def _conversion(p: SimulationParams) -> instrument.ThermalConversion:
    z_max = max(1.6, math.ceil(p.z_max * 10) / 10 + 0.1)
    nh_max = max(1.2e21, p.nh_max * 1.01)
    return instrument.thermal_conversion(z_max=z_max, nh_max=nh_max, fe_l_strength=float(p.fe_l_strength),
                                         redistribution=bool(p.energy_redistribution))


def _lnl_morph(p: SimulationParams) -> tuple[float, float, float]:
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
    off_cc, _, sig = _lnl_morph(p)
    dmax = 6.5 * sig + max(off_cc, 0.0)
    z_lo, z_hi = z_edges[:-1], z_edges[1:]
    ez = np.maximum(physics.efunc(z_lo) ** p.lx_ez_power, physics.efunc(z_hi) ** p.lx_ez_power)
    lmax = p.lx_norm * (10.0 ** m_edges[1:] / p.mass_pivot) ** p.lx_slope
    dl = physics.distance_table(3.0).luminosity(z_lo) * physics.MPC_TO_CM
    kts = np.exp(conv.log_kt)
    kmax = np.array([max(conv.kcorrection(kts, np.full(kts.size, zz), np.full(kts.size, zm), True).max()
                         for zm in (0.0, 3.0)) for zz in z_hi]) * 1.05
    fmax = (ez * kmax / (4 * np.pi * dl ** 2))[:, None] * lmax[None, :] * math.exp(dmax) * 9.0
    x = (np.log10(fmax) - math.log10(p.flux_limit)) / (math.sqrt(2.0) * p.selection_width_dex)
    return 0.5 * special.erfc(-x)


@functools.lru_cache(maxsize=8)
def _sampling_table(p: SimulationParams):
    m_edges, z_edges, w = _halo_grid(p.log_m_min, p.log_m_max, p.z_min, p.z_max, p.survey_area_deg2)
    conv = _conversion(p)
    keep = _cell_bound(p, m_edges, z_edges, conv) > 1e-9
    wk = np.where(keep, w, 0.0).ravel()
    if wk.sum() <= 0:
        raise InputError("no cluster in the mass and redshift range can pass the selection; raise the "
                         "mass range, lower flux_limit, or set selection=false")
    cdf = np.cumsum(wk)
    return m_edges, z_edges, cdf / cdf[-1], float(wk.sum()), float(w.sum())


def _population_batch(p: SimulationParams, seed: int, batch: int, table, conv) -> dict[str, np.ndarray]:
    """Draw one batch of candidate haloes with all their properties; returns the selected ones."""
    m_edges, z_edges, cdf, _, _ = table
    rng = np.random.Generator(np.random.Philox(key=np.array([seed, _POP_DOMAIN + batch], dtype=np.uint64)))
    n = _BATCH
    # fixed order of draws, independent of the switches (switching a component off keeps the others)
    u_cell, u_m, u_z = rng.random((3, n))
    g = rng.standard_normal((9, n))
    u = rng.random((10, n))
    nm = m_edges.size - 1
    cell = np.minimum(np.searchsorted(cdf, u_cell, side="right"), cdf.size - 1)
    iz, im = np.divmod(cell, nm)
    log_m = m_edges[im] + u_m * (m_edges[im + 1] - m_edges[im])
    z = z_edges[iz] + u_z * (z_edges[iz + 1] - z_edges[iz])
    # scaling relations with correlated scatter (physics.md 4)
    m500 = 10.0 ** log_m
    ez = physics.efunc(z)
    off_cc, off_other, sig_l = _lnl_morph(p)
    d_l, d_t = physics.correlate_normals(g[0], g[1], sig_l, p.sigma_lnT if p.scatter else 0.0, p.rho_LT)
    f_cc = p.cool_core_fraction if p.cool_cores else 0.0
    f_dist = p.disturbed_fraction if p.disturbed else 0.0
    morph = np.where(u[0] < f_cc, 1, np.where(u[0] < f_cc + f_dist, 2, 0)).astype(np.int8)
    d_morph = np.where(morph == 1, off_cc, off_other) if p.cool_cores else np.zeros(n)
    lx = physics.lx_mass_relation(m500, z, p.lx_norm, p.lx_slope, p.lx_ez_power, p.mass_pivot) \
        * np.exp(d_l + d_morph)
    kt = p.kt_norm * (ez * m500 / p.mass_pivot) ** p.kt_slope * np.exp(d_t)
    zmet = np.clip(p.metallicity_mean + p.metallicity_sigma * g[2], 0.05, 1.0)
    # morphology (physics.md 5): radii in units of R500
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
    has_agn = (u[7] < p.central_agn_fraction) if p.central_agn else np.zeros(n, bool)
    agn_ratio = p.central_agn_ratio_min * (p.central_agn_ratio_max / p.central_agn_ratio_min) ** u[8]
    u_sel = u[9]
    # distances, sizes, fluxes
    dtab = physics.distance_table(3.0)
    dc = dtab.comoving(z)
    d_a, d_lum = dc / (1.0 + z), dc * (1.0 + z)
    r500 = physics.r500_kpc(m500, z)
    th500 = r500 / (d_a * 1e3) / physics.ARCMIN_TO_RAD
    f_unit = lx / (4.0 * np.pi * (d_lum * physics.MPC_TO_CM) ** 2)   # L / 4 pi D_L^2
    flux = f_unit * conv.kcorrection(kt, z, zmet, p.lines)
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


def draw_population(n: int, seed: int = 0, params: SimulationParams | None = None) -> dict[str, np.ndarray]:
    """The first ``n`` selected clusters of ``seed``: all scalar properties, no images.

    Returns a dict of arrays (the catalogue columns except the image-derived
    ones, plus a few internal ones used by the renderer) and ``_meta`` with
    the number of candidate haloes drawn and the expected number of selected
    clusters in the survey area.  Cheap: ~1 s per 10 000 clusters.
    """
    p = params or SimulationParams()
    n = _check_n(n, MAX_CLUSTERS)
    seed = _check_seed(seed)
    conv = _conversion(p)
    table = _sampling_table(p)
    parts: list[dict[str, np.ndarray]] = []
    got = 0
    batch = 0
    while got < n:
        part = _population_batch(p, seed, batch, table, conv)
        parts.append(part)
        got += part["z"].size
        batch += 1
        # fail early if the selection is so strict that drawing n clusters would take hours
        if got < n and batch >= 8 and batch * n / max(got, 1) > 3000:
            raise InputError(f"the selection accepts too few haloes ({got} of {batch * _BATCH} candidates), "
                             f"so {n} clusters would take hours; lower flux_limit, widen the mass or "
                             "redshift range, or set selection=false")
    pop = {k: np.concatenate([q[k] for q in parts])[:n] for k in parts[0]}
    # expected counts per band (physics.md 6-7): rate inside R500, times the truncated-model factor
    rates = conv.rate_per_flux(pop["kT"], pop["z"], pop["nH"], pop["Z_metal"], p.lines)    # per unit f_unit
    counts_r500 = rates * (pop["f_unit"] * pop["exposure_s"])[:, None]
    tr = p.truncation_r500
    rc, beta = pop["rc_r500"], pop["beta"]
    f_core, f_sub = pop["cc_core_fraction"], pop["subclump_fraction"]
    f_main = 1.0 - f_core - f_sub
    w_main = f_main * _component_fractions(tr, rc, beta, 1.0, tr)
    w_core = f_core * _component_fractions(tr, p.cc_core_rc, beta, 1.0, tr)
    w_sub = f_sub * _component_fractions(tr, p.subclump_rc, beta, 1.0, tr)
    total = w_main + w_core + w_sub
    pop["component_weights"] = np.stack([w_main, w_core, w_sub], axis=1) / total[:, None]
    expected = counts_r500 * total[:, None]
    for b in range(N_BANDS):
        pop[f"expected_counts_band{b + 1}"] = expected[:, b]
    pop["expected_counts_r500"] = counts_r500.sum(axis=1)
    pop["r_core_kpc"] = rc * pop["R500_kpc"]
    pop["r_core_arcmin"] = rc * pop["R500_arcmin"]
    pop["ellipticity"] = 1.0 - pop["axis_ratio"]
    pop["central_agn_flux"] = np.where(pop["central_agn"] == 1, pop["agn_ratio"] * pop["flux_aperture"], 0.0)
    _, _, _, w_kept, w_all = table
    drawn = batch * _BATCH
    accepted = sum(q["z"].size for q in parts)
    pop["_meta"] = {"candidates_drawn": drawn, "accepted": accepted,
                    "haloes_in_survey": w_all, "haloes_sampled_region": w_kept,
                    "expected_selected_in_survey": w_kept * accepted / drawn}
    return pop


# --------------------------------------------------------------------------- rendering

def _cluster_rng(seed: int, cluster_id: int) -> np.random.Generator:
    return np.random.Generator(np.random.Philox(key=np.array([seed, cluster_id], dtype=np.uint64)))


@dataclass
class _RenderSetup:
    npix: int
    pix_arcmin: float
    bg_per_pixel: np.ndarray            # (10,) counts per pixel per second
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
    return _RenderSetup(IMAGE_SIZE, pix, bg * pix ** 2, n_agn, nh_grid, conv, p.psf_max_arcmin * 60.0)


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
    mu_bg = setup.bg_per_pixel[None, :] * expo[:, None] * (npix * npix)
    n_src = np.zeros((m, nb), dtype=np.int64)
    n_bg = np.zeros((m, nb), dtype=np.int64)
    n_field = np.zeros(m, dtype=np.int32)
    u_src_l, u_aph_l, bg_pix_l, agn_ph_l, agn_xy_l, agn_cl_l = [], [], [], [], [], []
    for k in range(m):
        j = start + k
        rng = _cluster_rng(seed, int(pop["cluster_id"][j]))
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
        rng.poisson(mu_src)
        rng.poisson(setup.bg_per_pixel * expo * npix * npix)
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
        imgs[k] = src + agn + (setup.bg_per_pixel * expo)[None, None, :]
        obs[k] = src.sum(axis=(0, 1))
        outside[k] = mu_src.sum() - obs[k].sum()
        n_agn[k] = n_field
        agn_counts[k] = agn.sum()
    extras = {"source_counts_outside_image": outside, "n_agn": n_agn, "agn_counts": agn_counts}
    bg_tot = setup.bg_per_pixel[None, :] * pop["exposure_s"][start:stop, None] * npix * npix
    for b in range(nb):
        extras[f"observed_counts_band{b + 1}"] = obs[:, b]
        extras[f"background_counts_band{b + 1}"] = bg_tot[:, b]
    return imgs.astype(np.float32), extras


def _smooth(img: np.ndarray, sigma: float) -> np.ndarray:
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
        img = _smooth(img, p.smoothing_sigma_px)
    return img, extras


# --------------------------------------------------------------------------- public API

@dataclass
class SimulatedCatalog:
    """A simulated catalogue held in memory (see :func:`simulate`)."""

    images: np.ndarray
    log_m500: np.ndarray
    z: np.ndarray
    cluster_id: np.ndarray
    catalog: dict[str, np.ndarray]
    params: SimulationParams
    seed: int
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def expected_counts(self) -> np.ndarray:
        """Expected source counts per band, (n, 10) (the ``expected_counts_band*`` columns)."""
        return np.stack([self.catalog[f"expected_counts_band{b + 1}"] for b in range(N_BANDS)], axis=1)

    @property
    def observed_counts(self) -> np.ndarray:
        """Source photons drawn inside the image per band, (n, 10)."""
        return np.stack([self.catalog[f"observed_counts_band{b + 1}"] for b in range(N_BANDS)], axis=1)

    @property
    def background_counts(self) -> np.ndarray:
        """Background photons in the image per band, (n, 10)."""
        return np.stack([self.catalog[f"background_counts_band{b + 1}"] for b in range(N_BANDS)], axis=1)

    def __len__(self) -> int:
        return int(self.z.size)


def _check_n(n: Any, limit: int, hint: str = "") -> int:
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


def _check_seed(seed: Any) -> int:
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise InputError(f"seed must be a non-negative integer, got {seed!r}")
    if not 0 <= int(seed) < 2 ** 63:
        raise InputError(f"seed must be in [0, 2**63), got {seed}")
    return int(seed)


def _catalog_from(pop: dict, extras: dict, sl: slice) -> dict[str, np.ndarray]:
    out = {}
    for name, (dtype, _, _) in CATALOG_COLUMNS.items():
        src = extras[name] if name in extras else pop[name][sl]
        out[name] = np.asarray(src).astype(dtype)
    return out


def simulate(n: int, seed: int = 0, params: SimulationParams | None = None) -> SimulatedCatalog:
    """Simulate ``n`` clusters in memory (for the book and tests; n <= 20 000).

    Returns a :class:`SimulatedCatalog` with ``images`` (n, 50, 50, 10)
    float32, ``log_m500``, ``z``, ``cluster_id`` and the full ``catalog``.
    Identical to the first ``n`` clusters of :func:`simulate_to_file` with the
    same seed and parameters.
    """
    n = _check_n(n, MAX_IN_MEMORY, "; use simulate_to_file() for large catalogues")
    seed = _check_seed(seed)
    p = params or SimulationParams()
    if not isinstance(p, SimulationParams):
        raise InputError(f"params must be a SimulationParams, got {type(p).__name__}")
    pop = draw_population(n, seed, p)
    images = np.empty((n, IMAGE_SIZE, IMAGE_SIZE, N_BANDS), dtype=np.float32)
    parts = []
    step = 1024
    for s in range(0, n, step):
        e = min(n, s + step)
        img, extras = render_images(pop, s, e, seed, p)
        images[s:e] = img
        parts.append(extras)
    extras_all = {k: np.concatenate([q[k] for q in parts]) for k in parts[0]}
    cat = _catalog_from(pop, extras_all, slice(0, n))
    return SimulatedCatalog(images=images, log_m500=cat["log_m500"].copy(), z=cat["z"].copy(),
                            cluster_id=cat["cluster_id"].copy(), catalog=cat, params=p, seed=seed,
                            meta=dict(pop["_meta"]))


def _file_attrs(p: SimulationParams, seed: int, meta: dict) -> dict[str, Any]:
    from ._io import to_json

    return {
        "seed": seed,
        "generator": "cmlib.simulate",
        "generator_params": to_json(p.to_dict()),
        "physics_version": PHYSICS_VERSION,
        "pixel_scale_arcsec": float(p.pixel_scale_arcsec),
        "morphology_codes": json.dumps({str(k): v for k, v in MORPHOLOGY_CODES.items()}),
        "candidates_drawn": int(meta["candidates_drawn"]),
        "expected_selected_in_survey": float(meta["expected_selected_in_survey"]),
        "survey_area_deg2": float(p.survey_area_deg2),
    }


def _render_task(pop_slice: dict, seed: int, params: SimulationParams) -> tuple[np.ndarray, dict]:
    """Worker-process entry point: render one chunk given its slice of the population."""
    m = pop_slice["z"].size
    return render_images(pop_slice, 0, m, seed, params)


def _pool_context():
    """``fork`` where it is safe (POSIX, no Python threads, no DL backend loaded), else ``spawn``."""
    import multiprocessing
    import os
    import threading

    heavy = any(m in sys.modules for m in ("tensorflow", "jax", "torch"))
    if os.name == "posix" and threading.active_count() == 1 and not heavy \
            and "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def _chunks(n: int, chunk_size: int):
    for s in range(0, n, chunk_size):
        yield s, min(n, s + chunk_size)


def _prepare_worker(params: SimulationParams) -> bool:
    """First task of a render worker: builds its caches (and makes the pool start its process now)."""
    _render_setup(params)
    return True


def _iter_rendered(pop: dict, n: int, seed: int, p: SimulationParams, chunk_size: int, pool=None,
                   workers: int = 0):
    """Yield (start, stop, images, extras) in order; with a process ``pool`` rendering runs ahead.

    With a pool the next chunks are rendered while the caller writes the
    current one (HDF5 compression holds the GIL, so threads would not
    overlap).  Results are identical either way (per-cluster random streams).
    If the pool breaks (e.g. a script without ``if __name__ == "__main__"``
    under the spawn method), rendering falls back to this process.
    """
    from collections import deque
    from concurrent.futures.process import BrokenProcessPool

    chunks = list(_chunks(n, chunk_size))
    keys = [k for k in pop if k != "_meta"]
    pending: deque = deque()
    nxt = done = 0
    while done < len(chunks):
        if pool is not None:
            try:
                while nxt < len(chunks) and len(pending) < workers + 1:
                    s, e = chunks[nxt]
                    pending.append(pool.submit(_render_task, {k: pop[k][s:e] for k in keys}, seed, p))
                    nxt += 1
                img, extras = pending.popleft().result()
            except BrokenProcessPool:
                pool, pending = None, deque()
                continue
        else:
            img, extras = render_images(pop, chunks[done][0], chunks[done][1], seed, p)
        s, e = chunks[done]
        done += 1
        yield s, e, img, extras


def _default_workers(n: int, chunk_size: int) -> int:
    import os

    return 1 if (os.cpu_count() or 1) >= 2 and n > chunk_size else 0


def simulate_to_file(path, n: int, seed: int = 0, params: SimulationParams | None = None,
                     overwrite: bool = False, chunk_size: int = 1024, progress: bool = True,
                     workers: int | None = None) -> Path:
    """Simulate ``n`` clusters into a cmlib HDF5 data file (streamed, atomic).

    The population (scalars) is drawn for all ``n`` first; images are then
    rendered and written ``chunk_size`` clusters at a time, so memory stays
    bounded (~0.5 GB for chunk_size 1024) for any n up to 1 000 000.  The file
    appears only when complete.  Root attributes add ``seed``,
    ``generator_params`` (JSON), ``generator`` and ``physics_version``.

    ``workers`` worker processes render the next chunks while this process
    compresses and writes (default: 1 on a machine with >= 2 cores and more
    than one chunk, else 0 = all in this process).  The file is byte-identical
    for any ``workers`` (and, for the same ``chunk_size``, any run).

    Raises :class:`InputError` for a bad ``n``, ``seed``, ``chunk_size`` or
    ``workers`` or an unwritable path, and :class:`cmlib.errors.OutputExistsError`
    if ``path`` exists and ``overwrite`` is false - both before any work is done.
    """
    from ._io import prepare_output
    from .schema import DataFileWriter

    n = _check_n(n, MAX_CLUSTERS)
    seed = _check_seed(seed)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise InputError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    chunk_size = int(chunk_size)
    if workers is None:
        workers = _default_workers(n, chunk_size)
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or not 0 <= workers <= 64:
        raise InputError(f"workers must be an integer in [0, 64], got {workers!r}")
    p = params or SimulationParams()
    if not isinstance(p, SimulationParams):
        raise InputError(f"params must be a SimulationParams, got {type(p).__name__}")
    path = prepare_output(path, overwrite=overwrite, what="data file")
    t0 = time.perf_counter()
    pool = None
    if workers > 0 and n > chunk_size:
        from concurrent.futures import ProcessPoolExecutor

        # start the worker now: before the population is drawn (it overlaps the start-up) and
        # before the HDF5 file is open (a forked worker then holds no HDF5 state)
        pool = ProcessPoolExecutor(max_workers=int(workers), mp_context=_pool_context())
        for _ in range(int(workers)):
            pool.submit(_prepare_worker, p)
    try:
        pop = draw_population(n, seed, p)
        if progress:
            print(f"cmlib simulate: population of {n} clusters drawn ({pop['_meta']['candidates_drawn']} "
                  f"candidate haloes) in {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
        rendered = _iter_rendered(pop, n, seed, p, chunk_size, pool, int(workers))
        with DataFileWriter(path, n, source="cmlib.simulate", catalog_columns=CATALOG_COLUMNS,
                            attrs=_file_attrs(p, seed, pop["_meta"]), overwrite=overwrite) as writer:
            for s, e, img, extras in rendered:
                cat = _catalog_from(pop, extras, slice(s, e))
                writer.write(images=img, log_m500=cat["log_m500"], z=cat["z"], cluster_id=cat["cluster_id"],
                             catalog=cat)
                del img
                if progress:
                    el = time.perf_counter() - t0
                    eta = el / e * (n - e)
                    print(f"cmlib simulate: {e}/{n} clusters, {el:.1f} s elapsed, ETA {eta:.1f} s",
                          file=sys.stderr, flush=True)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    return Path(path)
