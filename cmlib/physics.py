"""Galaxy-cluster physics for the mock eFEDS catalogue and the book's physics chapter.

Every function is vectorised over numpy arrays and works in fixed, documented
units: energies and temperatures in keV, masses in Msun, lengths in kpc (or Mpc
for cosmological distances), angles in arcmin, luminosities in erg/s.  Inputs
may also be :class:`astropy.units.Quantity` objects, which are converted to the
documented unit; outputs are plain arrays in the documented unit (astropy
units are used to derive the constants once, not in the hot path).

Sources are cited next to each formula.  Equation numbers "(2.x.y)" are those
of the thesis (Heim 2023).  "facts N" is Sect. N of the book's fact sheet
(``book/physics_facts.md``): its numbers are *design choices* of the mock,
each with the literature behind it, not measurements.

Notes on the thesis's formulas
------------------------------
* Eq. (2.3.9) prints the beta-model as ``[1 + R^2/r_c]^(-3 beta + 1/2)``; the
  ratio must be dimensionless: the correct form (Cavaliere & Fusco-Femiano
  1976) is ``[1 + (R/r_c)^2]^(-3 beta + 1/2)``, used here.
* Eq. (2.1.2) prints the Gaunt factor as ``(3/sqrt(pi)) ln(9 kT / 4 h nu)``.
  The small-``h nu/kT`` limit of the Born-approximation Gaunt factor is
  ``(sqrt(3)/pi) ln(4 kT / (e^gamma h nu)) = (sqrt(3)/pi) ln(2.246 kT / h nu)``,
  i.e. the prefactor is ``sqrt(3)/pi = 0.551``, not ``3/sqrt(pi) = 1.69``
  (Rybicki & Lightman 1979, Sect. 5.3; checked numerically in the tests).
* Eq. (2.3.1) omits the adiabatic index: it is the isothermal sound speed
  ``sqrt(kT / mu m_p)``; the adiabatic one is ``sqrt(5/3)`` times larger.
"""
from __future__ import annotations

import functools
from typing import Any

import numpy as np
from scipy import special

# --------------------------------------------------------------------------- constants

#: Flat LambdaCDM of the mock (facts Sect. 3): Omega_m, Omega_b, H0 [km/s/Mpc], sigma_8, n_s.
OMEGA_M = 0.3
OMEGA_B = 0.045
H0 = 70.0
SIGMA8 = 0.8
NS = 0.96
LITTLE_H = H0 / 100.0


def _derive_constants() -> dict[str, float]:
    from astropy import constants as const
    from astropy import units as u

    return {
        "keV_erg": (1.0 * u.keV).to_value(u.erg),
        "keV_K": (1.0 * u.keV / const.k_B).to_value(u.K),
        "G_kpc_kms2_per_msun": const.G.to_value(u.kpc * u.km ** 2 / u.s ** 2 / u.Msun),
        "m_p_g": const.m_p.to_value(u.g),
        "m_e_g": const.m_e.to_value(u.g),
        "c_cms": const.c.to_value(u.cm / u.s),
        "e_esu": const.e.esu.to_value(u.statC),
        "k_B_cgs": const.k_B.to_value(u.erg / u.K),
        "h_cgs": const.h.to_value(u.erg * u.s),
        "Mpc_cm": (1.0 * u.Mpc).to_value(u.cm),
        "kpc_cm": (1.0 * u.kpc).to_value(u.cm),
        "c_kms": const.c.to_value(u.km / u.s),
        "msun_g": const.M_sun.to_value(u.g),
        "arcmin_rad": (1.0 * u.arcmin).to_value(u.rad),
        "deg2_sr": (1.0 * u.deg ** 2).to_value(u.sr),
    }


_C = _derive_constants()
KEV_TO_ERG: float = _C["keV_erg"]
KEV_TO_K: float = _C["keV_K"]
MPC_TO_CM: float = _C["Mpc_cm"]
ARCMIN_TO_RAD: float = _C["arcmin_rad"]
DEG2_TO_SR: float = _C["deg2_sr"]
#: Mean molecular weight of the ICM (thesis Sect. 2.3.1, after Ettori et al. 2019).
MU_ICM = 0.6


def _value(x: Any, unit: str) -> np.ndarray | float:
    """``x`` in ``unit`` as a plain float/array; Quantities are converted, numbers taken as given."""
    if hasattr(x, "unit") and hasattr(x, "to_value"):
        from astropy import units as u

        return x.to_value(u.Unit(unit), equivalencies=u.temperature_energy())
    return np.asarray(x, dtype=float) if not np.isscalar(x) else float(x)


# --------------------------------------------------------------------------- cosmology

@functools.lru_cache(maxsize=None)
def cosmology():
    """The mock's astropy cosmology: FlatLambdaCDM(H0=70, Om0=0.3, Ob0=0.045), no radiation.

    Radiation is neglected (``Tcmb0=0``), which changes distances to z = 1.5
    by < 0.1 % and lets astropy use its closed-form distance integrals.
    """
    from astropy.cosmology import FlatLambdaCDM

    return FlatLambdaCDM(H0=H0, Om0=OMEGA_M, Ob0=OMEGA_B, Tcmb0=0.0, name="cmlib-mock")


@functools.lru_cache(maxsize=None)
def colossus_cosmology():
    """The same cosmology in ``colossus`` (plus sigma_8 = 0.8, n_s = 0.96), set as current.

    ``persistence=''`` keeps colossus from writing its cache under ``$HOME``;
    ``relspecies=False`` matches the astropy cosmology (no radiation).
    """
    from colossus.cosmology import cosmology as ccosmo

    params = dict(flat=True, H0=H0, Om0=OMEGA_M, Ob0=OMEGA_B, sigma8=SIGMA8, ns=NS, relspecies=False)
    return ccosmo.setCosmology("cmlib-mock", params=params, persistence="")


def efunc(z) -> np.ndarray:
    """E(z) = H(z)/H0 = sqrt(Om (1+z)^3 + 1 - Om) for the flat mock cosmology."""
    z = np.asarray(z, dtype=float)
    return np.sqrt(OMEGA_M * (1.0 + z) ** 3 + (1.0 - OMEGA_M))


def comoving_distance_mpc(z) -> np.ndarray:
    """Line-of-sight comoving distance D_C(z) [Mpc] (astropy, exact)."""
    return np.asarray(cosmology().comoving_distance(np.asarray(z, dtype=float)).value)


def angular_diameter_distance_mpc(z) -> np.ndarray:
    """Angular-diameter distance D_A = D_C / (1 + z) [Mpc] (flat universe)."""
    z = np.asarray(z, dtype=float)
    return comoving_distance_mpc(z) / (1.0 + z)


def luminosity_distance_mpc(z) -> np.ndarray:
    """Luminosity distance D_L = (1 + z) D_C [Mpc] (flat universe)."""
    z = np.asarray(z, dtype=float)
    return comoving_distance_mpc(z) * (1.0 + z)


class DistanceTable:
    """Fast interpolated D_C(z) for the simulator's hot path (relative error < 1e-6).

    Exact astropy distances cost ~0.4 s per million redshifts; the simulator
    evaluates millions of candidate haloes, so it interpolates linearly in a
    table of 20 001 exact values.
    """

    def __init__(self, z_max: float = 3.0, n: int = 20001):
        self.z = np.linspace(0.0, float(z_max), n)
        self.dc = comoving_distance_mpc(self.z)
        self.z_max = float(z_max)

    def comoving(self, z) -> np.ndarray:
        return np.interp(z, self.z, self.dc)

    def angular_diameter(self, z) -> np.ndarray:
        return self.comoving(z) / (1.0 + np.asarray(z))

    def luminosity(self, z) -> np.ndarray:
        return self.comoving(z) * (1.0 + np.asarray(z))


@functools.lru_cache(maxsize=4)
def distance_table(z_max: float = 3.0) -> DistanceTable:
    """A cached :class:`DistanceTable` covering 0 <= z <= ``z_max``."""
    return DistanceTable(z_max)


@functools.lru_cache(maxsize=None)
def _rho_crit0_msun_kpc3() -> float:
    from astropy import units as u

    return float(cosmology().critical_density0.to_value(u.Msun / u.kpc ** 3))


def critical_density(z) -> np.ndarray:
    """Critical density rho_c(z) = 3 H(z)^2 / (8 pi G) [Msun / kpc^3]."""
    return _rho_crit0_msun_kpc3() * efunc(z) ** 2


def r500_kpc(m500, z) -> np.ndarray:
    """R500c [kpc]: the radius enclosing a mean density of 500 rho_c(z).

    R500 = (3 M500 / (4 pi 500 rho_c(z)))^(1/3)  (facts Sect. 4).
    ``m500`` in Msun.
    """
    m500 = _value(m500, "Msun")
    return np.cbrt(3.0 * np.asarray(m500) / (4.0 * np.pi * 500.0 * critical_density(z)))


def theta500_arcmin(m500, z, d_a_mpc=None) -> np.ndarray:
    """Angular radius theta500 = R500 / D_A(z) [arcmin] (small-angle approximation)."""
    if d_a_mpc is None:
        d_a_mpc = angular_diameter_distance_mpc(z)
    return r500_kpc(m500, z) / (np.asarray(d_a_mpc) * 1e3) / ARCMIN_TO_RAD


def comoving_volume_element(z) -> np.ndarray:
    """dV_C / dz dOmega = c / H(z) * D_C(z)^2 [Mpc^3 / sr] (Hogg 1999, eq. 28, flat)."""
    z = np.asarray(z, dtype=float)
    return _C["c_kms"] / H0 / efunc(z) * comoving_distance_mpc(z) ** 2


# --------------------------------------------------------------------------- halo mass function

def mass_function_dndlnm(m500, z) -> np.ndarray:
    """Tinker et al. (2008) halo mass function dn/dlnM500c [Mpc^-3] via ``colossus``.

    ``m500`` [Msun] (array), ``z`` a scalar.  colossus works in Msun/h and
    (Mpc/h)^-3; the conversion to h = 0.7 units is done here.
    """
    from colossus.lss import mass_function

    colossus_cosmology()
    m = np.atleast_1d(np.asarray(_value(m500, "Msun"), dtype=float))
    out = mass_function.massFunction(m * LITTLE_H, float(z), mdef="500c", model="tinker08",
                                     q_out="dndlnM")
    return np.asarray(out) * LITTLE_H ** 3


def halo_counts_density(log_m500, z, area_deg2: float) -> np.ndarray:
    """d^2N / dz dlnM500: haloes per unit redshift and ln-mass over a survey area.

    d^2N/dz dlnM = dn/dlnM (Tinker 2008) * c/H(z) * D_C(z)^2 * Omega_survey
    (facts Sect. 3).  Returns an array of shape (len(z), len(log_m500)).
    """
    log_m500 = np.atleast_1d(np.asarray(log_m500, dtype=float))
    z = np.atleast_1d(np.asarray(z, dtype=float))
    omega = float(area_deg2) * DEG2_TO_SR
    dvdz = comoving_volume_element(z) * omega
    out = np.empty((z.size, log_m500.size))
    for i, zi in enumerate(z):
        out[i] = mass_function_dndlnm(10.0 ** log_m500, zi) * dvdz[i]
    return out


# --------------------------------------------------------------------------- scaling relations

def lx_mass_relation(m500, z, norm: float = 8e42, slope: float = 1.8, ez_power: float = 2.0,
                     pivot: float = 1e14) -> np.ndarray:
    """Median soft-band luminosity at fixed mass [erg/s], 0.5-2 keV rest frame, inside R500.

    L_X = norm (M500 / pivot)^slope E(z)^ez_power, with the defaults of
    facts Sect. 4 (8e42 erg/s, slope 1.8, self-similar E(z)^2), calibrated
    so that the flux-selected mock matches the eFEDS population; slope between
    Vikhlinin 2009 (1.61 bolometric-corrected) and Bulbul 2019 (~2.0, soft band).
    """
    m500 = np.asarray(_value(m500, "Msun"))
    return norm * (m500 / pivot) ** slope * efunc(z) ** ez_power


def mass_from_lx(lx, z, norm: float = 8e42, slope: float = 1.8, ez_power: float = 2.0,
                 pivot: float = 1e14) -> np.ndarray:
    """Inverse of :func:`lx_mass_relation`: M500 [Msun] whose median L_X is ``lx`` [erg/s]."""
    lx = np.asarray(_value(lx, "erg/s"))
    return pivot * (lx / (norm * efunc(z) ** ez_power)) ** (1.0 / slope)


def kt_mass_relation(m500, z, norm: float = 2.0, slope: float = 0.6, pivot: float = 1e14) -> np.ndarray:
    """Median temperature at fixed mass [keV]: kT = norm (E(z) M500 / pivot)^slope.

    Defaults from facts Sect. 4 (2 keV at 1e14 Msun, slope 0.6, close to
    the self-similar 2/3 of eq. 2.3.10; Arnaud et al. 2005 find
    h(z) M500 = 10^14.58 (T / 5 keV)^1.71 Msun, i.e. slope 1/1.71 = 0.58).
    """
    m500 = np.asarray(_value(m500, "Msun"))
    return norm * (efunc(z) * m500 / pivot) ** slope


def correlated_scatter(rng: np.random.Generator, n: int, sigma_lnl: float, sigma_lnt: float,
                       rho: float) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``n`` pairs (delta ln L, delta ln T) from a correlated bivariate normal.

    Correlation ``rho`` between the luminosity and temperature scatter at fixed
    mass (positive: Mantz et al. 2016).  Returns two arrays of length ``n``.
    """
    g = rng.standard_normal((2, n))
    return correlate_normals(g[0], g[1], sigma_lnl, sigma_lnt, rho)


def correlate_normals(g1, g2, sigma1: float, sigma2: float, rho: float) -> tuple[np.ndarray, np.ndarray]:
    """Turn two independent standard normals into correlated N(0, sigma) pairs (Cholesky)."""
    g1 = np.asarray(g1)
    d1 = sigma1 * g1
    d2 = sigma2 * (rho * g1 + np.sqrt(max(0.0, 1.0 - rho * rho)) * np.asarray(g2))
    return d1, d2


def virial_temperature(m, m_ref: float = 1e14, kt_ref: float = 2.0) -> np.ndarray:
    """Self-similar virial scaling T ∝ M^(2/3) (thesis eq. 2.3.10), anchored at (m_ref, kt_ref).

    From the virial theorem kT ∝ G M / r and M ∝ r^3 at fixed overdensity:
    kT = kt_ref (M / m_ref)^(2/3) [keV].
    """
    m = np.asarray(_value(m, "Msun"))
    return kt_ref * (m / m_ref) ** (2.0 / 3.0)


# --------------------------------------------------------------------------- ICM dynamics

def sound_speed_kms(kt_kev, mu: float = MU_ICM) -> np.ndarray:
    """Isothermal sound speed c_s = sqrt(kT / (mu m_p)) [km/s] (thesis eq. 2.3.1).

    ~1000 km/s for kT = 8.6 keV (T = 1e8 K), as the thesis says.  (The
    adiabatic sound speed is sqrt(5/3) times larger.)
    """
    kt = np.asarray(_value(kt_kev, "keV"))
    return np.sqrt(kt * KEV_TO_ERG / (mu * _C["m_p_g"])) / 1e5


def hydrostatic_mass(r_kpc, kt_kev, dlnrho_dlnr, dlnt_dlnr=0.0, mu: float = MU_ICM) -> np.ndarray:
    """Hydrostatic mass M(<r) [Msun] (thesis eq. 2.3.6).

    M(r) = -(kT r / (G mu m_p)) (dln rho_g/dln r + dln T/dln r), i.e. eq. 2.3.6
    with r^2 d/dr written as r d/dln r.  ``r_kpc`` in kpc, ``kt_kev`` in keV.
    """
    r = np.asarray(_value(r_kpc, "kpc"))
    kt = np.asarray(_value(kt_kev, "keV"))
    # kT / (mu m_p) in (km/s)^2, divided by G in kpc (km/s)^2 / Msun
    v2 = kt * KEV_TO_ERG / (mu * _C["m_p_g"]) / 1e10
    return -v2 * r / _C["G_kpc_kms2_per_msun"] * (np.asarray(dlnrho_dlnr) + np.asarray(dlnt_dlnr))


def beta_model_density(r, r_c, beta) -> np.ndarray:
    """Gas density of the isothermal beta-model, rho_g ∝ [1 + (r/r_c)^2]^(-3 beta/2) (normalised to 1 at r = 0)."""
    x2 = (np.asarray(r, dtype=float) / np.asarray(r_c, dtype=float)) ** 2
    return (1.0 + x2) ** (-1.5 * np.asarray(beta, dtype=float))


def hydrostatic_mass_beta(r_kpc, kt_kev, r_c_kpc, beta, mu: float = MU_ICM) -> np.ndarray:
    """Closed-form hydrostatic mass of an isothermal beta-model [Msun].

    With dln rho/dln r = -3 beta x^2/(1 + x^2), x = r/r_c, eq. 2.3.6 gives
    M(<r) = 3 beta kT r / (G mu m_p) * x^2 / (1 + x^2)  (Cavaliere & Fusco-Femiano 1976).
    """
    r = np.asarray(_value(r_kpc, "kpc"))
    x2 = (r / np.asarray(_value(r_c_kpc, "kpc"))) ** 2
    return hydrostatic_mass(r, kt_kev, -3.0 * np.asarray(beta) * x2 / (1.0 + x2), 0.0, mu)


# --------------------------------------------------------------------------- surface brightness

def beta_model(r, r_c, beta) -> np.ndarray:
    """Projected beta-model surface brightness S(R) = [1 + (R/r_c)^2]^(-3 beta + 1/2).

    Thesis eq. (2.3.9), with its typo ``R^2/r_c`` corrected to ``(R/r_c)^2``
    (Cavaliere & Fusco-Femiano 1976).  Normalised to S(0) = 1; ``r`` and
    ``r_c`` in the same unit.
    """
    x2 = (np.asarray(r, dtype=float) / np.asarray(r_c, dtype=float)) ** 2
    return (1.0 + x2) ** (-3.0 * np.asarray(beta, dtype=float) + 0.5)


def _beta_exponent(beta) -> np.ndarray:
    # a = 3 beta - 3/2 > 0; the beta = 1/2 limit (logarithmic) is handled by a floor
    return np.maximum(3.0 * np.asarray(beta, dtype=float) - 1.5, 1e-6)


def beta_model_cumulative(r, r_c, beta) -> np.ndarray:
    """Flux of :func:`beta_model` inside projected radius ``r``: int_0^r 2 pi R S(R) dR.

    = pi r_c^2 [1 - (1 + (r/r_c)^2)^(-a)] / a with a = 3 beta - 3/2 (beta > 1/2;
    the beta -> 1/2 limit pi r_c^2 ln(1 + (r/r_c)^2) is reached continuously).
    In units of r_c's unit squared.
    """
    r_c = np.asarray(r_c, dtype=float)
    a = _beta_exponent(beta)
    lx = np.log1p((np.asarray(r, dtype=float) / r_c) ** 2)
    return np.pi * r_c ** 2 * (-np.expm1(-a * lx)) / a


def beta_model_enclosed_fraction(r, r_c, beta, r_trunc) -> np.ndarray:
    """Fraction of a beta-model's flux, truncated at ``r_trunc``, inside projected radius ``r``."""
    r = np.minimum(np.asarray(r, dtype=float), r_trunc)
    return beta_model_cumulative(r, r_c, beta) / beta_model_cumulative(r_trunc, r_c, beta)


def beta_model_sample_radius(u, r_c, beta, r_trunc) -> np.ndarray:
    """Radii drawn from a projected beta-model truncated at ``r_trunc`` (inverse CDF).

    ``u`` are uniform deviates in [0, 1).  Solves
    u = [1 - (1+x^2)^(-a)] / [1 - (1+x_t^2)^(-a)] for x = r/r_c exactly.
    """
    r_c = np.asarray(r_c, dtype=float)
    a = _beta_exponent(beta)
    ft = -np.expm1(-a * np.log1p((np.asarray(r_trunc, dtype=float) / r_c) ** 2))
    x2 = np.expm1(-np.log1p(-np.asarray(u) * ft) / a)
    return r_c * np.sqrt(np.maximum(x2, 0.0))


# --------------------------------------------------------------------------- spectrum

def gaunt_born(e_kev, kt_kev) -> np.ndarray:
    """Velocity-averaged free-free Gaunt factor in the Born approximation.

    g(E, T) = (sqrt(3)/pi) e^(x/2) K_0(x/2), x = E/kT (Rybicki & Lightman 1979,
    Sect. 5.3; facts Sect. 6).  ``scipy.special.k0e`` is e^y K_0(y).
    Its small-x limit is the thesis's eq. (2.1.2) (with prefactor sqrt(3)/pi).
    """
    x = np.asarray(_value(e_kev, "keV")) / np.asarray(_value(kt_kev, "keV"))
    return np.sqrt(3.0) / np.pi * special.k0e(0.5 * x)


def gaunt_thesis_approximation(e_kev, kt_kev) -> np.ndarray:
    """Thesis eq. (2.1.2), with its prefactor corrected: g ≈ (sqrt(3)/pi) ln(9 kT / (4 E)).

    Valid for E << kT only (it turns negative for E > 2.25 kT).
    """
    e = np.asarray(_value(e_kev, "keV"))
    return np.sqrt(3.0) / np.pi * np.log(9.0 * np.asarray(_value(kt_kev, "keV")) / (4.0 * e))


def bremsstrahlung_emissivity(e_kev, kt_kev, n_e, n_i, charge: float = 1.0, gaunt: bool = True) -> np.ndarray:
    """Free-free emissivity epsilon_nu [erg s^-1 cm^-3 Hz^-1] (thesis eq. 2.1.1).

    epsilon_nu = (32 pi Z^2 e^6 n_e n_i / (3 m_e c^3)) sqrt(2 pi / (3 k T m_e))
    exp(-h nu / kT) g_ff, in Gaussian cgs units (Rybicki & Lightman eq. 5.14b:
    6.8e-38 Z^2 n_e n_i T^-1/2 e^(-h nu/kT) g_ff).  ``n_e``, ``n_i`` in cm^-3;
    ``gaunt=False`` sets g_ff = 1 (the classical limit the thesis mentions).
    """
    e = np.asarray(_value(e_kev, "keV"))
    kt = np.asarray(_value(kt_kev, "keV"))
    c = _C
    pref = 32.0 * np.pi * c["e_esu"] ** 6 / (3.0 * c["m_e_g"] * c["c_cms"] ** 3)
    kt_erg = kt * KEV_TO_ERG
    g = gaunt_born(e, kt) if gaunt else 1.0
    return (pref * charge ** 2 * np.asarray(n_e) * np.asarray(n_i)
            * np.sqrt(2.0 * np.pi / (3.0 * kt_erg * c["m_e_g"])) * np.exp(-e / kt) * g)


def bremsstrahlung_photon_spectrum(e_kev, kt_kev) -> np.ndarray:
    """Bremsstrahlung photon spectrum shape dN/dE ∝ T^(-1/2) g(E,T) e^(-E/kT) / E.

    Eq. (2.1.1) divided by the photon energy (photons per unit energy) with
    the Born Gaunt factor (facts Sect. 6).  Arbitrary normalisation
    (per unit emission measure); ``e_kev``, ``kt_kev`` broadcast together.
    """
    e = np.asarray(_value(e_kev, "keV"))
    kt = np.asarray(_value(kt_kev, "keV"))
    x = e / kt
    # e^(-x) * k0e(x/2) = e^(-x/2) K0(x/2): combine to avoid overflow/underflow
    return np.sqrt(3.0) / np.pi * special.k0e(0.5 * x) * np.exp(-x) / (np.sqrt(kt) * e)


#: Emission lines other than Fe-L (rest energy [keV], peak equivalent width [keV]
#: at Z = 0.3 solar, temperature of peak emissivity [keV]).  Design values of
#: the order of APEC equivalent widths (facts Sect. 6), not atomic data: these
#: lines carry a few per cent of the band counts.
NARROW_LINES: dict[str, tuple[float, float, float]] = {
    "O VIII Lya": (0.654, 0.030, 0.25),
    "Ne X Lya": (1.022, 0.020, 0.60),
    "Mg XI He-a": (1.352, 0.015, 0.50),
    "Mg XII Lya": (1.472, 0.020, 1.00),
    "Si XIII He-a": (1.865, 0.040, 0.90),
    "Si XIV Lya": (2.006, 0.030, 1.70),
}
#: Width of the temperature bell of the narrow lines (in ln kT) and their intrinsic Gaussian sigma [keV].
NARROW_LINE_LN_WIDTH = 0.7
NARROW_LINE_SIGMA_KEV = 0.010
#: Fe-L complex: Gaussian sigma [keV] of the blend (facts Sect. 6).
FE_L_SIGMA_KEV = 0.1
#: Solar iron abundance n_Fe / n_H (Anders & Grevesse 1989, the APEC default) and helium
#: abundance n_He / n_H of the same table; the mock's metallicity Z is relative to it.
FE_SOLAR_AG89 = 4.68e-5
HE_SOLAR_AG89 = 0.0977
#: Energy [keV] of the strongest Fe-L lines of each L-shell ion Fe XVII ... Fe XXIV
#: (laboratory wavelengths, e.g. Brown et al. 1998, ApJ 502, 1015: Fe XVII 15.01 and
#: 17.05 A averaged, XVIII 14.21, XIX 13.52, XX 12.85, XXI 12.28, XXII 11.77, XXIII 11.74,
#: XXIV 10.62 and 11.18 A averaged; E = 12.398 keV A / lambda).
FE_L_ION_ENERGIES_KEV = np.array([0.5 * (12.398 / 15.014 + 12.398 / 17.05), 12.398 / 14.208,
                                  12.398 / 13.525, 12.398 / 12.846, 12.398 / 12.284, 12.398 / 11.770,
                                  12.398 / 11.736, 0.5 * (12.398 / 10.619 + 12.398 / 11.176)])
#: Line models: "v2" ties Fe-L to published emissivities; "v1" is the first mock's parametric bump.
LINE_MODELS = ("v1", "v2")


@functools.lru_cache(maxsize=1)
def fe_l_ion_table() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(log10 T [K], CIE fractions (nT, 8), ion cooling efficiencies (nT, 8)) of Fe XVII-XXIV.

    Read from package data (``resources/fe_l_ions.txt``): ion fractions of the
    CHIANTI v11 ionisation equilibrium (Dere et al. 2009) and ion-by-ion
    cooling efficiencies of Gnat & Ferland (2012), log T = 6.75 ... 7.70.
    """
    from importlib import resources

    text = resources.files("cmlib").joinpath("resources/fe_l_ions.txt").read_text()
    rows = np.loadtxt(text.splitlines(), comments="#")
    return rows[:, 0].copy(), rows[:, 1:9].copy(), rows[:, 9:17].copy()


def _fe_l_tabulated(kt_kev) -> tuple[np.ndarray, np.ndarray]:
    lt, x, lam = fe_l_ion_table()
    power = (x * lam).sum(axis=1)                                        # erg cm^3/s per Fe atom
    centre = (x * lam * FE_L_ION_ENERGIES_KEV).sum(axis=1) / power
    log_t = np.log10(np.asarray(_value(kt_kev, "keV"), dtype=float) * KEV_TO_K)
    # log-linear in log T inside the table; beyond its ends the last slope continues (P falls
    # steeply above 4 keV, where Fe is He-like) and the centroid is held
    lp = np.log(power)
    slope_hi = (lp[-1] - lp[-2]) / (lt[-1] - lt[-2])
    lp_t = np.where(log_t > lt[-1], lp[-1] + slope_hi * (log_t - lt[-1]), np.interp(log_t, lt, lp))
    return np.exp(lp_t), np.interp(log_t, lt, centre)


def fe_l_power(kt_kev) -> np.ndarray:
    """Fe-L line power per Fe atom and electron, sum_q x_q Lambda_q [erg cm^3 s^-1] (v2 line model).

    Fe XVII-XXIV in collisional ionisation equilibrium: CHIANTI v11 ion
    fractions (Dere et al. 2009) times the Gnat & Ferland (2012) ion cooling
    efficiencies.  It counts every line of these ions, including their few
    Delta n = 0 lines below 0.2 keV, so it is an upper bound on the Fe-L flux
    in 0.5-2 keV by some ten per cent.  Below kT = 0.49 keV the table's first value.
    """
    return _fe_l_tabulated(kt_kev)[0]


def fe_l_centroid_kev(kt_kev) -> np.ndarray:
    """Emission-weighted centroid of the Fe-L complex [keV] (v2 line model).

    Mean of :data:`FE_L_ION_ENERGIES_KEV` weighted by each ion's CIE fraction
    times its cooling efficiency: 0.81 keV at kT = 0.5 keV (Fe XVII), 0.99 at
    1.1 keV, 1.08 at 1.7 keV, 1.12 keV above 2.7 keV (Fe XXIII-XXIV).
    """
    return _fe_l_tabulated(kt_kev)[1]


def continuum_soft_emissivity(kt_kev, e_lo: float = 0.5, e_hi: float = 2.0, n: int = 601) -> np.ndarray:
    """Free-free energy emissivity of H + He in [e_lo, e_hi] keV per n_e n_H [erg cm^3 s^-1].

    Eq. (2.1.1) with the Born Gaunt factor, integrated over frequency, for
    hydrogen plus helium (n_He/n_H = 0.0977, Z = 2; Anders & Grevesse 1989).
    """
    kt = np.asarray(_value(kt_kev, "keV"), dtype=float)
    e = np.linspace(e_lo, e_hi, n)
    eps = bremsstrahlung_emissivity(e, kt[..., None], 1.0, 1.0)            # per n_e n_i, Z = 1
    per_hz = np.trapezoid(eps, e, axis=-1) * KEV_TO_ERG / _C["h_cgs"]    # d nu = dE / h
    return per_hz * (1.0 + 4.0 * HE_SOLAR_AG89)


def fe_l_centre_kev(kt_kev, model: str = "v2") -> np.ndarray:
    """Centre of the Fe-L bump [keV].

    ``model="v2"``: :func:`fe_l_centroid_kev` (published ion fractions and line
    energies).  ``model="v1"``: the first mock's rule 0.8 + 0.2 log2(kT / 0.5 keV),
    clipped to 0.75-1.2 keV (about 0.1 keV too high above kT = 1.5 keV).
    """
    if model == "v2":
        return fe_l_centroid_kev(kt_kev)
    kt = np.asarray(_value(kt_kev, "keV"))
    return np.clip(0.8 + 0.2 * np.log2(kt / 0.5), 0.75, 1.2)


def fe_l_flux_fraction(kt_kev, metallicity, strength: float = 1.0, model: str = "v2") -> np.ndarray:
    """Energy flux of the Fe-L complex relative to the 0.5-2 keV free-free continuum.

    ``model="v2"``: A_Fe (Z/Zsun) sum_q x_q Lambda_q / W_ff(T) with the solar
    iron abundance of Anders & Grevesse (1989), :func:`fe_l_power` and the H+He
    continuum :func:`continuum_soft_emissivity` (``strength`` is ignored): 1.8 at
    kT = 1 keV and Z = 0.3, 0.19 at 2 keV, 0.045 at 4 keV.
    ``model="v1"``: the first mock's knob strength (Z/0.3) (kT / 1 keV)^-1.5.
    """
    kt = np.asarray(_value(kt_kev, "keV"))
    zmet = np.asarray(metallicity)
    if model == "v2":
        return FE_SOLAR_AG89 * zmet * fe_l_power(kt) / continuum_soft_emissivity(kt)
    return strength * zmet / 0.3 * kt ** -1.5


def _gauss(e, centre, sigma):
    return np.exp(-0.5 * ((e - centre) / sigma) ** 2) / (np.sqrt(2.0 * np.pi) * sigma)


def _trail(x) -> np.ndarray | float:
    """Per-spectrum parameter with a trailing axis added, so it broadcasts against energies (..., nE)."""
    x = np.asarray(x, dtype=float)
    return x[..., None] if x.ndim else float(x)


def line_photon_spectrum(e_kev, kt_kev, metallicity=0.3, fe_l_strength: float = 1.0,
                         continuum_energy_flux=None, model: str = "v2") -> np.ndarray:
    """Photon spectrum of the lines, in the units of :func:`bremsstrahlung_photon_spectrum`.

    Fe-L: a Gaussian (sigma 0.1 keV) at :func:`fe_l_centre_kev` whose energy
    flux is :func:`fe_l_flux_fraction` times the continuum's 0.5-2 keV energy
    flux (``model`` "v2": published emissivities; "v1": the first mock's knob
    ``fe_l_strength``); O, Ne, Mg, Si: Gaussians of sigma 10 eV whose photon
    flux is the equivalent width (:data:`NARROW_LINES`, scaled by Z/0.3 and a
    log-normal bell in kT) times the continuum at the line energy.

    Energies ``e_kev`` have shape (nE,) or (..., nE); ``kt_kev`` and
    ``metallicity`` are scalars or arrays of the leading shape (...), one value
    per spectrum.  ``continuum_energy_flux`` (int_0.5^2 E dN/dE dE of the
    continuum, keV units) is computed when not given.
    """
    e = np.asarray(_value(e_kev, "keV"), dtype=float)
    kt = np.asarray(_value(kt_kev, "keV"), dtype=float)
    zmet = np.asarray(metallicity, dtype=float)
    if continuum_energy_flux is None:
        continuum_energy_flux = continuum_soft_energy_flux(kt)
    ktb, zb, wb = _trail(kt), _trail(zmet), _trail(continuum_energy_flux)
    centre = fe_l_centre_kev(ktb, model)
    out = fe_l_flux_fraction(ktb, zb, fe_l_strength, model) * wb / centre * _gauss(e, centre, FE_L_SIGMA_KEV)
    for e_line, ew, t_peak in NARROW_LINES.values():
        bell = np.exp(-0.5 * (np.log(ktb / t_peak) / NARROW_LINE_LN_WIDTH) ** 2)
        amp = ew * zb / 0.3 * bell * bremsstrahlung_photon_spectrum(e_line, ktb)
        out = out + amp * _gauss(e, e_line, NARROW_LINE_SIGMA_KEV)
    return out


def continuum_soft_energy_flux(kt_kev, e_lo: float = 0.5, e_hi: float = 2.0, n: int = 601) -> np.ndarray:
    """int_{e_lo}^{e_hi} E dN/dE dE of :func:`bremsstrahlung_photon_spectrum` (keV units, trapezoid)."""
    kt = np.asarray(_value(kt_kev, "keV"), dtype=float)
    e = np.linspace(e_lo, e_hi, n)
    y = e * bremsstrahlung_photon_spectrum(e, kt[..., None])
    return np.trapezoid(y, e, axis=-1)


def cluster_photon_spectrum(e_kev, kt_kev, metallicity=0.3, lines: bool = True,
                            fe_l_strength: float = 1.0, model: str = "v2") -> np.ndarray:
    """Rest-frame photon spectrum of the ICM: bremsstrahlung continuum + approximate lines.

    Arbitrary normalisation (that of :func:`bremsstrahlung_photon_spectrum`);
    the simulator rescales it so that the 0.5-2 keV energy flux equals L_X.
    Shapes as in :func:`line_photon_spectrum` (one kT per spectrum, energies last).
    """
    kt = np.asarray(_value(kt_kev, "keV"), dtype=float)
    e = np.asarray(_value(e_kev, "keV"), dtype=float)
    cont = bremsstrahlung_photon_spectrum(e, _trail(kt))
    if not lines:
        return cont
    return cont + line_photon_spectrum(e, kt, metallicity, fe_l_strength, model=model)


# Morrison & McCammon (1983), ApJ 270, 119, Table 2: sigma(E) = (c0 + c1 E + c2 E^2) E^-3 1e-24 cm^2
# per hydrogen atom, E in keV (facts Sect. 6; the rows below 3.21 keV are all the mock needs).
_MM83 = np.array([
    # E_lo,  E_hi,    c0,     c1,      c2
    [0.030, 0.100, 17.3, 608.1, -2150.0],
    [0.100, 0.284, 34.6, 267.9, -476.1],
    [0.284, 0.400, 78.1, 18.8, 4.3],
    [0.400, 0.532, 71.4, 66.8, -51.4],
    [0.532, 0.707, 95.5, 145.8, -61.1],
    [0.707, 0.867, 308.9, -380.6, 294.0],
    [0.867, 1.303, 120.6, 169.3, -47.7],
    [1.303, 1.840, 141.3, 146.8, -31.5],
    [1.840, 2.471, 202.7, 104.7, -17.0],
    [2.471, 3.210, 342.7, 18.7, 0.0],
    [3.210, 4.038, 352.2, 18.7, 0.0],
    [4.038, 7.111, 433.9, -2.4, 0.75],
    [7.111, 8.331, 629.0, 30.9, 0.0],
    [8.331, 10.00, 701.2, 25.2, 0.0],
])


def absorption_cross_section(e_kev) -> np.ndarray:
    """Photoelectric absorption cross-section per H atom [cm^2], Morrison & McCammon (1983).

    Solar-abundance ISM; sigma(E) = (c0 + c1 E + c2 E^2) E^-3 1e-24 cm^2 with
    the piecewise coefficients of their Table 2 (0.03-10 keV; outside, the end
    rows are extrapolated).
    """
    e = np.asarray(_value(e_kev, "keV"), dtype=float)
    i = np.clip(np.searchsorted(_MM83[:, 1], e, side="right"), 0, len(_MM83) - 1)
    c0, c1, c2 = _MM83[i, 2], _MM83[i, 3], _MM83[i, 4]
    return (c0 + c1 * e + c2 * e * e) / e ** 3 * 1e-24


def galactic_transmission(e_kev, nh_cm2) -> np.ndarray:
    """Galactic transmission exp(-N_H sigma(E)) (Morrison & McCammon 1983); ``nh_cm2`` in cm^-2."""
    return np.exp(-np.asarray(nh_cm2)[..., None] * absorption_cross_section(e_kev)) \
        if np.ndim(nh_cm2) else np.exp(-float(nh_cm2) * absorption_cross_section(e_kev))


def redshift_kcorrection(kt_kev, z, metallicity=0.3, lines: bool = True, fe_l_strength: float = 1.0,
                         band: tuple[float, float] = (0.5, 2.0), n: int = 801, model: str = "v2") -> np.ndarray:
    """Observed-frame / rest-frame energy flux in ``band`` for the ICM spectrum.

    F_obs(band) = L_rest(band) / (4 pi D_L^2) * K with
    K = int_{band (1+z)} E s(E) dE / int_{band} E s(E) dE (s the rest-frame
    photon spectrum).  Scalars or broadcastable arrays; keV units.
    """
    kt = np.atleast_1d(np.asarray(_value(kt_kev, "keV"), dtype=float))
    z = np.atleast_1d(np.asarray(z, dtype=float))
    kt, z = np.broadcast_arrays(kt, z)
    t = np.linspace(0.0, 1.0, n)
    lo, hi = band
    e_rest = lo + (hi - lo) * t
    e_obs = (lo + (hi - lo) * t)[None, :] * (1.0 + z.ravel()[:, None])
    kk = kt.ravel()[:, None]
    zm = np.broadcast_to(np.asarray(metallicity, dtype=float), kt.shape).ravel()[:, None]

    def spec(e):
        return cluster_photon_spectrum(e, kk[:, 0], zm[:, 0], lines, fe_l_strength, model)

    w_rest = np.trapezoid(e_rest * spec(np.broadcast_to(e_rest, e_obs.shape)), e_rest, axis=-1)
    w_obs = np.trapezoid(e_obs * spec(e_obs), e_obs, axis=-1)
    return (w_obs / w_rest).reshape(kt.shape)
