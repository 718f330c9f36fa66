"""Every parameter of the mock generator: default, unit, description, source and validator.

Each field of :class:`SimulationParams` is declared with :func:`_p` (the
pattern of astropy's ``Parameter(default, unit, doc, fvalidate)``): its
default, unit, one-line description, the section of the book's fact sheet
that sources it (``book/physics_facts.md``, cited as "facts N") and a
validator that checks that one field.  Rules that tie several fields together
are in :data:`_CROSS_CHECKS`.  Invalid values raise
:class:`cmlib.errors.InputError` at construction, naming the field and the fix.

Two physics versions share the parameter set (``physics = "v2"`` is the
default; ``"v1"`` reproduces the first mock).  :meth:`SimulationParams.v1`
gives the v1 defaults; parameters that only one version uses say so.
"""
from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .. import instrument
from ..errors import InputError
from ..schema import N_BANDS

#: Physics-model versions, stored in every file as ``physics_version``.
PHYSICS_VERSIONS = {"v1": "cmlib-mock-efeds-1.0", "v2": "cmlib-mock-efeds-2.0"}
#: The version written by default.
PHYSICS_VERSION = PHYSICS_VERSIONS["v2"]
PHYSICS_MODEL_VERSION = PHYSICS_VERSION

# --------------------------------------------------------------------------- validators


def _finite(name: str, v: Any) -> float:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise InputError(f"parameter '{name}' must be a number, got {v!r} "
                         "(use cmlib.simulate.parse_parameters to convert strings)")
    if not math.isfinite(float(v)):
        raise InputError(f"parameter '{name}' must be finite, got {v!r}")
    return float(v)


def _rule(cond: bool, name: str, v: Any, rule: str) -> None:
    if not cond:
        raise InputError(f"parameter '{name}' = {v!r} is invalid: {rule}")


def positive(name: str, v: Any) -> None:
    _rule(_finite(name, v) > 0, name, v, "must be positive")


def non_negative(name: str, v: Any) -> None:
    _rule(_finite(name, v) >= 0, name, v, "must be >= 0 (a scatter, width or level cannot be negative)")


def fraction(name: str, v: Any) -> None:
    _rule(0.0 <= _finite(name, v) <= 1.0, name, v, "must be a fraction in [0, 1]")


def in_range(lo: float, hi: float, why: str = "") -> Callable[[str, Any], None]:
    def check(name: str, v: Any) -> None:
        _rule(lo <= _finite(name, v) <= hi, name, v, f"use a value in [{lo:g}, {hi:g}]{why}")
    return check


def any_number(name: str, v: Any) -> None:
    _finite(name, v)


def boolean(name: str, v: Any) -> None:
    if not isinstance(v, (bool, np.bool_)):
        raise InputError(f"parameter '{name}' must be true or false, got {v!r}")


def band_shares(name: str, v: Any) -> None:
    if (not isinstance(v, (tuple, list)) or len(v) != N_BANDS
            or not all(isinstance(s, (int, float)) and math.isfinite(s) and s >= 0 for s in v) or sum(v) <= 0):
        raise InputError(f"parameter '{name}' must be {N_BANDS} non-negative numbers with a positive "
                         f"sum (comma-separated on the command line), got {v!r}")


def physics_choice(name: str, v: Any) -> None:
    if v not in PHYSICS_VERSIONS:
        raise InputError(f"parameter '{name}' must be one of {', '.join(PHYSICS_VERSIONS)}, got {v!r} "
                         "(v2: the default mock; v1: the first mock, kept for comparison)")


def _p(default: Any, unit: str, doc: str, source: str = "design choice", check: Callable | None = None,
       version: str = "both"):
    """A parameter field: default, unit, doc, source (a section of book/physics_facts.md), validator."""
    if check is None:
        check = boolean if isinstance(default, bool) else any_number
    return field(default=default, metadata={"unit": unit, "doc": doc, "source": source, "check": check,
                                            "version": version})


# --------------------------------------------------------------------------- parameters

@dataclass(frozen=True)
class SimulationParams:
    """Every parameter of the mock generator, with its unit, source and validator.

    Switches (bool) turn physical components on and off; off means "ideal":
    no scatter, round clusters, no background, ... .  Numbers are documented
    design choices; ``source`` names the section of the book's fact sheet
    (``book/physics_facts.md``) with the literature behind them.
    ``SimulationParams.describe()`` lists them; ``cmlib simulate
    --list-params`` prints the same table.
    """

    physics: str = _p("v2", "", "physics version: v2 (default) or v1 (the first mock)", "facts 9", physics_choice)

    # -- switches ---------------------------------------------------------------
    selection: bool = _p(True, "", "apply the survey selection (v2: eSASS-like detection + extent; v1: aperture "
                         "flux); off: the raw halo population", "facts 3")
    scatter: bool = _p(True, "", "log-normal scatter about the L_X-M and kT-M relations", "facts 4")
    cool_cores: bool = _p(True, "", "cool-core clusters (small core, compact central component, brighter)",
                          "facts 5")
    disturbed: bool = _p(True, "", "disturbed clusters with an off-centre sub-clump", "facts 5")
    ellipticity: bool = _p(True, "", "elliptical isophotes (axis ratio q < 1); off: round", "facts 5")
    center_jitter: bool = _p(True, "", "offset of the emission centre from the image centre (v2: eSASS "
                             "position error)", "facts 5")
    structure_trends: bool = _p(True, "", "v2: beta rises with kT and the core radius has its own scatter "
                                "(off: the v1 self-similar shapes)", "facts 5", version="v2")
    lines: bool = _p(True, "", "emission lines (Fe-L complex, O, Ne, Mg, Si) on the continuum", "facts 6")
    absorption: bool = _p(True, "", "Galactic photo-absorption (Morrison & McCammon 1983)", "facts 6")
    energy_redistribution: bool = _p(True, "", "finite energy resolution moves photons between bands", "facts 7")
    exposure_variation: bool = _p(True, "", "per-cluster exposure (log-normal); off: the median everywhere",
                                  "facts 7")
    psf: bool = _p(True, "", "King point-spread function", "facts 7")
    sky_background: bool = _p(True, "", "cosmic X-ray background and Galactic foreground (vignetted in v2)",
                              "facts 7")
    particle_background: bool = _p(True, "", "instrumental (particle) background incl. Al K-alpha (not vignetted "
                                   "in v2)", "facts 7")
    background_variation: bool = _p(True, "", "v2: field-to-field variation of the sky and particle levels and "
                                    "of the vignetting ratio", "facts 7", version="v2")
    agn: bool = _p(True, "", "AGN point sources in the field (Moretti 2003 log N - log S)", "facts 8")
    central_agn: bool = _p(True, "", "an AGN in the central galaxy of some clusters", "facts 8")
    agn_clustering: bool = _p(True, "", "v2: extra AGN inside 2 R500 (AGN cluster towards clusters)", "facts 8",
                              version="v2")
    poisson: bool = _p(True, "", "Poisson photon noise; off: images are the expected counts", "facts 7")
    smoothing: bool = _p(True, "", "Gaussian smoothing of the binned images", "facts 1")

    # -- population ----------------------------------------------------------------
    log_m_min: float = _p(13.0, "log10 Msun", "lower limit of log10(M500c / Msun)", "facts 1",
                          in_range(12.0, 16.0, " (Tinker 2008 calibration range)"))
    log_m_max: float = _p(15.0, "log10 Msun", "upper limit of log10(M500c / Msun)", "facts 1", in_range(12.0, 16.0))
    z_min: float = _p(0.01, "", "lower redshift limit", "facts 1", in_range(1e-4, 3.0))
    z_max: float = _p(1.5, "", "upper redshift limit", "facts 1", in_range(1e-4, 3.0))
    survey_area_deg2: float = _p(140.0, "deg^2", "survey area (sets the expected number per field only)",
                                 "facts 2", in_range(1e-6, 41253.0, " (the full sky is 41253 deg^2)"))
    # v1 selection (aperture flux)
    flux_limit: float = _p(2e-14, "erg/s/cm^2", "v1: 0.5-2 keV aperture flux at 50 % selection probability",
                           "facts 3", positive, "v1")
    selection_aperture_arcmin: float = _p(1.0, "arcmin", "v1: radius of the selection aperture", "facts 3",
                                          positive, "v1")
    selection_width_dex: float = _p(0.1, "dex", "v1: width of the erfc selection in log10 flux", "facts 3",
                                    positive, "v1")
    # v2 selection (eSASS-like)
    det_like_min: float = _p(5.0, "", "v2: detection likelihood threshold (eSASS DET_LIKE)", "facts 3",
                             non_negative, "v2")
    ext_like_min: float = _p(3.0, "", "v2: extent likelihood threshold of the mock's three-annulus test "
                             "(calibrated with lx_norm to 441 clusters / 140 deg^2 and median counts 70-80; "
                             "eSASS's 2-D fit uses EXT_LIKE > 6)", "facts 3",
                             non_negative, "v2")
    det_radius_arcsec: float = _p(60.0, "arcsec", "v2: radius of the detection cell", "facts 3", positive, "v2")

    # -- scaling relations -----------------------------------------------------------
    mass_pivot: float = _p(1e14, "Msun", "pivot mass of the scaling relations", "facts 4", positive)
    lx_norm: float = _p(4e42, "erg/s", "median L_X(0.5-2 keV, < R500) at the pivot mass, z = 0 (calibrated "
                        "with ext_like_min to the eFEDS number and counts; v1: 8e42)", "facts 4", positive)
    lx_slope: float = _p(1.8, "", "slope of L_X-M", "facts 4", positive)
    lx_ez_power: float = _p(2.0, "", "power of E(z) in L_X-M (self-similar: 2)", "facts 4")
    sigma_lnL: float = _p(0.48, "", "total scatter of ln L_X at fixed mass (incl. the cool-core offset); "
                          "Comparat et al. 2020: 0.21 dex", "facts 4", non_negative)
    kt_norm: float = _p(2.0, "keV", "median kT at the pivot mass, z = 0", "facts 4", positive)
    kt_slope: float = _p(0.6, "", "slope of kT-(E(z) M)", "facts 4", non_negative)
    sigma_lnT: float = _p(0.12, "", "scatter of ln kT at fixed mass", "facts 4", non_negative)
    rho_LT: float = _p(0.4, "", "correlation of the L_X and kT scatter", "facts 4",
                       in_range(-1.0, 1.0, " (a correlation coefficient)"))
    cool_core_lx_boost: float = _p(1.3, "", "L_X of cool cores / others at fixed mass", "facts 5", positive)
    metallicity_mean: float = _p(0.3, "Zsun", "mean ICM metallicity", "facts 4", in_range(0.0, 3.0))
    metallicity_sigma: float = _p(0.1, "Zsun", "spread of the metallicity (clipped to 0.05-1)", "facts 4",
                                  non_negative)

    # -- morphology (radii in units of R500 unless stated) ------------------------------
    cool_core_fraction: float = _p(0.30, "", "fraction of cool-core clusters before selection (v1: 0.35)", "facts 5",
                                   fraction)
    disturbed_fraction: float = _p(0.30, "", "fraction of disturbed clusters (before selection)", "facts 5",
                                   fraction)
    beta_mean: float = _p(0.67, "", "mean beta of the beta-model (v2: at kT = 5 keV)", "facts 5", positive)
    beta_kt_slope: float = _p(0.26, "", "v2: beta grows as (kT / 5 keV)^slope (Sanderson et al. 2003)", "facts 5",
                              in_range(-1.0, 1.0), "v2")
    beta_sigma: float = _p(0.07, "", "spread of beta", "facts 5", non_negative)
    beta_min: float = _p(0.5, "", "lower clip of beta", "facts 5",
                         in_range(0.5, 2.0, " (beta >= 0.5 keeps the projected flux finite)"))
    beta_max: float = _p(0.9, "", "upper clip of beta", "facts 5", in_range(0.5, 2.0))
    rc_ncc: float = _p(0.18, "R500", "median core radius, non-cool-core and disturbed", "facts 5", positive)
    rc_cc: float = _p(0.06, "R500", "median core radius, cool-core", "facts 5", positive)
    rc_sigma_ln: float = _p(0.5, "", "log-normal spread of the core radius (v1: 0.35)", "facts 5", non_negative)
    rc_mass_slope: float = _p(-0.15, "", "v2: r_c / R500 scales as (M500 / 1e14 Msun)^slope", "facts 5",
                              in_range(-1.0, 1.0), "v2")
    cc_core_flux_min: float = _p(0.2, "", "compact cool-core component: least share of the R500 flux",
                                 "facts 5", fraction)
    cc_core_flux_max: float = _p(0.4, "", "compact cool-core component: largest share of the R500 flux",
                                 "facts 5", fraction)
    cc_core_rc: float = _p(0.03, "R500", "core radius of the compact cool-core component", "facts 5", positive)
    subclump_flux_min: float = _p(0.1, "", "sub-clump of disturbed clusters: least share of the flux", "facts 5",
                                  fraction)
    subclump_flux_max: float = _p(0.3, "", "sub-clump: largest share of the flux", "facts 5", fraction)
    subclump_dist_min: float = _p(0.3, "R500", "sub-clump: least distance from the centre", "facts 5",
                                  non_negative)
    subclump_dist_max: float = _p(0.8, "R500", "sub-clump: largest distance from the centre", "facts 5",
                                  non_negative)
    subclump_rc: float = _p(0.1, "R500", "core radius of the sub-clump", "facts 5", positive)
    axis_ratio_mean: float = _p(0.8, "", "mean minor/major axis ratio q", "facts 5",
                                in_range(1e-3, 1.0, " (an axis ratio lies in (0, 1])"))
    axis_ratio_sigma: float = _p(0.1, "", "spread of q (clipped to [axis_ratio_min, 1])", "facts 5", non_negative)
    axis_ratio_min: float = _p(0.5, "", "lower clip of q", "facts 5",
                               in_range(1e-3, 1.0, " (an axis ratio lies in (0, 1])"))
    center_jitter_r500: float = _p(0.03, "R500", "v1: sigma of the centre offset per axis", "facts 5",
                                   non_negative, "v1")
    position_floor_arcsec: float = _p(3.0, "arcsec", "v2: systematic floor of the detected position (per axis)",
                                      "facts 5", non_negative, "v2")
    truncation_r500: float = _p(3.0, "R500", "the beta-models are truncated at this radius", "facts 5",
                                in_range(1.0, 100.0, " (the model must extend at least to R500)"))

    # -- spectrum ------------------------------------------------------------------------
    fe_l_strength: float = _p(1.0, "", "v1: Fe-L bump flux / 0.5-2 keV continuum at kT = 1 keV, Z = 0.3 "
                              "(v2 uses the published emissivity table)", "facts 6", non_negative, "v1")
    nh_min: float = _p(2e20, "cm^-2", "lowest Galactic N_H (uniform)", "facts 6", non_negative)
    nh_max: float = _p(5e20, "cm^-2", "highest Galactic N_H (uniform)", "facts 6",
                       in_range(0.0, 1e22, " (the conversion grid ends at 1e22 cm^-2)"))

    # -- instrument and sky ------------------------------------------------------------------
    exposure_median_s: float = _p(1200.0, "s", "median vignetting-corrected exposure", "facts 7", positive)
    exposure_sigma_ln: float = _p(0.25, "", "log-normal spread of the exposure", "facts 7", non_negative)
    exposure_min_s: float = _p(500.0, "s", "lower clip of the exposure", "facts 7", positive)
    exposure_max_s: float = _p(2500.0, "s", "upper clip of the exposure", "facts 7", positive)
    vignetting_ratio: float = _p(0.55, "", "v2: vignetted / unvignetted exposure (eFEDS 1.2 ks / 2.2 ks)",
                                 "facts 7", in_range(0.05, 1.0), "v2")
    vignetting_ratio_sigma: float = _p(0.04, "", "v2: spread of the vignetting ratio between fields", "facts 7",
                                       non_negative, "v2")
    psf_core_arcsec: float = _p(8.7, "arcsec", "King PSF core radius (HEW 30\", FWHM 13\")", "facts 7", positive)
    psf_index: float = _p(1.5, "", "King PSF index", "facts 7",
                          in_range(1.0 + 1e-6, 10.0, " (a King profile needs index > 1 for a finite flux)"))
    psf_max_arcmin: float = _p(4.0, "arcmin", "the PSF is truncated (and renormalised) at this radius", "facts 7",
                               positive)
    background_density: float = _p(5.0, "counts/arcmin^2/ks", "total background, 0.25-2.3 keV, at the median "
                                   "exposure", "facts 7", non_negative)
    sky_fraction: float = _p(0.7, "", "share of the sky (vs particle) background", "facts 7", fraction)
    sky_sigma_ln: float = _p(0.15, "", "v2: field-to-field spread of the sky background level", "facts 7",
                             non_negative, "v2")
    particle_sigma_ln: float = _p(0.10, "", "v2: spread of the particle background rate", "facts 7",
                                  non_negative, "v2")
    sky_band_shares: tuple = _p(instrument.SKY_BAND_SHARES, "", "relative sky background per band (10 values)",
                                "facts 7", band_shares)
    particle_line_fraction: float = _p(0.1, "", "share of the Al K-alpha line in the particle background",
                                       "facts 7", fraction)
    agn_flux_min: float = _p(1e-14, "erg/s/cm^2", "faintest AGN drawn (fainter ones are in the sky background)",
                             "facts 8", positive)
    agn_flux_max: float = _p(1e-11, "erg/s/cm^2", "brightest AGN drawn", "facts 8", positive)
    agn_gamma: float = _p(1.9, "", "AGN photon index", "facts 8", positive)
    agn_overdensity: float = _p(2.0, "", "v2: AGN surface density inside 2 R500 / field density", "facts 8",
                                in_range(1.0, 100.0), "v2")
    central_agn_fraction: float = _p(0.2, "", "fraction of clusters with a central AGN (v1: 0.05)", "facts 8",
                                     fraction)
    central_agn_lmin: float = _p(1e41, "erg/s", "v2: faintest central AGN (0.5-2 keV)", "facts 8", positive, "v2")
    central_agn_lmax: float = _p(1e44, "erg/s", "v2: brightest central AGN", "facts 8", positive, "v2")
    central_agn_slope: float = _p(0.9, "", "v2: dN/dlog L of central AGN ~ L^-slope (faint end of the X-ray "
                                  "luminosity function)", "facts 8", in_range(-3.0, 3.0), "v2")
    central_agn_ratio_min: float = _p(0.1, "", "v1: central AGN flux / cluster aperture flux: least",
                                      "facts 8", positive, "v1")
    central_agn_ratio_max: float = _p(1.0, "", "v1: central AGN flux / cluster aperture flux: largest",
                                      "facts 8", positive, "v1")
    pixel_scale_arcsec: float = _p(24.0, "arcsec", "output pixel size (assumption: 4\" x 300 / 50)", "facts 1",
                                   in_range(1e-3, 600.0, " (at most 10 arcmin)"))
    smoothing_sigma_px: float = _p(1.0, "px", "sigma of the Gaussian smoothing", "facts 1", non_negative)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            f.metadata["check"](f.name, getattr(self, f.name))
        for names, test, rule in _CROSS_CHECKS:
            if not test(self):
                vals = ", ".join(f"'{n}' = {getattr(self, n)!r}" for n in names)
                raise InputError(f"parameters {vals} are inconsistent: {rule}")

    # -- conversions ------------------------------------------------------------
    @classmethod
    def v1(cls, **changes) -> "SimulationParams":
        """The parameters of the first mock (physics v1), with ``changes`` applied."""
        return cls(**{**V1_DEFAULTS, **changes})

    def to_dict(self) -> dict[str, Any]:
        """All parameters as a JSON-able dict (tuples become lists)."""
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
                for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SimulationParams":
        """Inverse of :meth:`to_dict` (unknown keys raise :class:`InputError`).

        A dict without ``physics`` (files written before v2) is read as v1 with
        the v1 defaults for the parameters it does not name.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise InputError(f"unknown simulation parameter(s) {unknown}; valid names: {', '.join(sorted(names))}")
        vals = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()}
        if "physics" not in vals:
            vals = {**V1_DEFAULTS, **vals}
        return cls(**vals)

    def replace(self, **changes) -> "SimulationParams":
        """A copy with some parameters changed (validated)."""
        return dataclasses.replace(self, **changes)

    @property
    def physics_version(self) -> str:
        """The ``physics_version`` string of files made with these parameters."""
        return PHYSICS_VERSIONS[self.physics]

    @staticmethod
    def describe() -> list[dict[str, Any]]:
        """One row per parameter: name, default, unit, description, source, physics version."""
        return [{"name": f.name, "default": f.default, "unit": f.metadata["unit"],
                 "description": f.metadata["doc"], "source": f.metadata["source"],
                 "version": f.metadata["version"]}
                for f in dataclasses.fields(SimulationParams)]


#: Defaults that differ in the first mock (physics v1).
V1_DEFAULTS: dict[str, Any] = {"physics": "v1", "sigma_lnL": 0.35, "rc_sigma_ln": 0.35,
                               "central_agn_fraction": 0.05, "lx_norm": 8e42, "cool_core_fraction": 0.35}

_CROSS_CHECKS: list[tuple[tuple[str, ...], Callable[[SimulationParams], bool], str]] = [
    (("log_m_min", "log_m_max"), lambda p: p.log_m_min < p.log_m_max,
     "'log_m_min' must be < 'log_m_max' (they are inverted: swap them or change one)"),
    (("z_min", "z_max"), lambda p: p.z_min < p.z_max, "'z_min' must be < 'z_max' (inverted: swap them)"),
    (("cool_core_fraction", "disturbed_fraction"), lambda p: p.cool_core_fraction + p.disturbed_fraction <= 1.0,
     "cool_core_fraction + disturbed_fraction must be <= 1"),
    (("cc_core_flux_max", "subclump_flux_max"), lambda p: p.cc_core_flux_max + p.subclump_flux_max < 1.0,
     "cc_core_flux_max + subclump_flux_max must be < 1 (the main component keeps the rest)"),
    (("beta_min", "beta_max"), lambda p: p.beta_min <= p.beta_max, "'beta_min' must be <= 'beta_max'"),
    (("cc_core_flux_min", "cc_core_flux_max"), lambda p: p.cc_core_flux_min <= p.cc_core_flux_max,
     "'cc_core_flux_min' must be <= 'cc_core_flux_max'"),
    (("subclump_flux_min", "subclump_flux_max"), lambda p: p.subclump_flux_min <= p.subclump_flux_max,
     "'subclump_flux_min' must be <= 'subclump_flux_max'"),
    (("subclump_dist_min", "subclump_dist_max"), lambda p: p.subclump_dist_min <= p.subclump_dist_max,
     "'subclump_dist_min' must be <= 'subclump_dist_max'"),
    (("subclump_dist_max", "truncation_r500"), lambda p: p.subclump_dist_max < p.truncation_r500,
     "'subclump_dist_max' must be < 'truncation_r500'"),
    (("axis_ratio_min", "axis_ratio_mean"), lambda p: p.axis_ratio_min <= p.axis_ratio_mean,
     "'axis_ratio_min' must be <= 'axis_ratio_mean'"),
    (("exposure_min_s", "exposure_median_s", "exposure_max_s"),
     lambda p: p.exposure_min_s <= p.exposure_median_s <= p.exposure_max_s,
     "need exposure_min_s <= exposure_median_s <= exposure_max_s"),
    (("nh_min", "nh_max"), lambda p: p.nh_min <= p.nh_max, "'nh_min' must be <= 'nh_max'"),
    (("agn_flux_min", "agn_flux_max"), lambda p: p.agn_flux_min < p.agn_flux_max,
     "'agn_flux_min' must be < 'agn_flux_max'"),
    (("central_agn_ratio_min", "central_agn_ratio_max"), lambda p: p.central_agn_ratio_min <= p.central_agn_ratio_max,
     "'central_agn_ratio_min' must be <= 'central_agn_ratio_max'"),
    (("central_agn_lmin", "central_agn_lmax"), lambda p: p.central_agn_lmin < p.central_agn_lmax,
     "'central_agn_lmin' must be < 'central_agn_lmax'"),
    (("sigma_lnL", "cool_core_lx_boost", "cool_core_fraction"),
     lambda p: not (p.cool_cores and p.scatter)
     or p.sigma_lnL ** 2 >= math.log(p.cool_core_lx_boost) ** 2 * p.cool_core_fraction * (1 - p.cool_core_fraction),
     "the cool-core offset alone gives more L_X scatter than sigma_lnL; raise sigma_lnL or lower "
     "cool_core_lx_boost"),
]


def params_to_dict(params: SimulationParams | None = None) -> dict[str, Any]:
    """The JSON-able dict of ``params`` (default parameters if None), as stored in ``generator_params``."""
    return (params or SimulationParams()).to_dict()


def _field_types() -> dict[str, Any]:
    return typing.get_type_hints(SimulationParams)


_TRUE = {"true", "1", "yes", "on", "y", "t"}
_FALSE = {"false", "0", "no", "off", "n", "f"}


def parse_parameters(overrides: dict[str, str] | None, physics: str | None = None) -> SimulationParams:
    """Build :class:`SimulationParams` from string overrides (``--set key=value`` on the CLI).

    Booleans accept true/false/1/0/yes/no/on/off; numbers any float syntax
    ("0.3", "2e-14"); ``sky_band_shares`` a comma-separated list of 10 numbers.
    ``physics="v1"`` starts from the v1 defaults.  Unknown names and bad values
    raise :class:`InputError` naming the fix.
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
        elif t is str:
            values[key] = s
        else:
            try:
                values[key] = tuple(float(v) for v in s.replace(";", ",").split(",") if v.strip())
            except ValueError:
                raise InputError(f"parameter '{key}' expects comma-separated numbers, got '{text}'") from None
    if physics is not None:
        physics_choice("physics", physics)
        if "physics" in values and values["physics"] != physics:
            raise InputError(f"--physics {physics} and --set physics={values['physics']} disagree; give one")
        if physics == "v1":
            return SimulationParams.v1(**values)
    if values.get("physics") == "v1":
        return SimulationParams.v1(**values)
    return SimulationParams(**values)


def format_parameter_table(physics: str = "v2") -> str:
    """The parameter table (name, default, unit, description; source) as plain text."""
    base = SimulationParams.v1() if physics == "v1" else SimulationParams()
    rows = [r for r in SimulationParams.describe() if r["version"] in ("both", physics)]

    def fmt(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, tuple):
            return ",".join(f"{x:g}" for x in v)
        if isinstance(v, str):
            return v
        return f"{v:g}"

    vals = {r["name"]: getattr(base, r["name"]) for r in rows}
    w_name = max(len(r["name"]) for r in rows)
    w_def = min(12, max(len(fmt(vals[r["name"]])) for r in rows))     # long tuples overflow their row
    w_unit = max(len(r["unit"]) for r in rows)
    head = f"{'name':<{w_name}}  {'default':<{w_def}}  {'unit':<{w_unit}}  description; source"
    lines = [f"physics {physics} (sources: the book's fact sheet, book/physics_facts.md)", head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['name']:<{w_name}}  {fmt(vals[r['name']]):<{w_def}}  {r['unit']:<{w_unit}}  "
                     f"{r['description']}; {r['source']}")
    lines.append("")
    lines.append("Set with --set NAME=VALUE (repeatable), e.g. --set psf=false --set sigma_lnL=0.2; "
                 "--physics v1 selects the first mock")
    return "\n".join(lines)
