"""Physics (cmlib.physics) and instrument (cmlib.instrument) of the mock: formulas against
independent computations, limits and the numbers of physics.md."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate

from cmlib import instrument, physics


# --------------------------------------------------------------------------- cosmology

def test_cosmology_matches_astropy_and_flat_relations():
    cosmo = physics.cosmology()
    z = np.array([0.01, 0.3, 1.0, 1.5])
    assert np.allclose(physics.efunc(z), cosmo.efunc(z), rtol=1e-12)
    assert physics.efunc(0.0) == pytest.approx(1.0)
    dc = physics.comoving_distance_mpc(z)
    assert np.allclose(physics.luminosity_distance_mpc(z), dc * (1 + z))
    assert np.allclose(physics.angular_diameter_distance_mpc(z), dc / (1 + z))
    # Hubble law at low z: D_C ≈ c z / H0
    assert physics.comoving_distance_mpc(0.001) == pytest.approx(299792.458 * 0.001 / 70.0, rel=1e-3)
    tab = physics.distance_table(3.0)
    zz = np.linspace(0.01, 2.9, 777)
    assert np.allclose(tab.comoving(zz), physics.comoving_distance_mpc(zz), rtol=1e-6)


def test_r500_encloses_500_times_critical_density():
    for m, z in [(1e13, 0.1), (1e14, 0.5), (1e15, 1.2)]:
        r = physics.r500_kpc(m, z)
        mean_density = m / (4.0 / 3.0 * np.pi * r ** 3)
        assert mean_density == pytest.approx(500 * physics.critical_density(z), rel=1e-10)
    # typical eFEDS cluster: 1e14 Msun at z = 0.3 has theta500 ~ 2.4' (physics.md 2)
    assert 2.0 < physics.theta500_arcmin(1e14, 0.3) < 2.8


def test_mass_function_units_and_trends():
    from colossus.lss import mass_function

    m = np.array([1e13, 1e14, 1e15])
    dn = physics.mass_function_dndlnm(m, 0.3)
    h = physics.LITTLE_H
    ref = mass_function.massFunction(m * h, 0.3, mdef="500c", model="tinker08", q_out="dndlnM") * h ** 3
    assert np.allclose(dn, ref)
    assert np.all(np.diff(dn) < 0)                              # fewer massive haloes
    assert physics.mass_function_dndlnm(1e15, 0.0)[0] > 10 * physics.mass_function_dndlnm(1e15, 1.0)[0]
    grid = physics.halo_counts_density([13.5, 14.5], [0.2, 0.8], 140.0)
    assert grid.shape == (2, 2) and np.all(grid > 0)


# --------------------------------------------------------------------------- scaling relations

def test_scaling_relations_and_inverse():
    assert physics.lx_mass_relation(1e14, 0.0) == pytest.approx(8e42)
    assert physics.lx_mass_relation(1e15, 0.0) / physics.lx_mass_relation(1e14, 0.0) == pytest.approx(10 ** 1.8)
    assert physics.lx_mass_relation(1e14, 1.0) == pytest.approx(8e42 * physics.efunc(1.0) ** 2)
    m = np.array([3e13, 2e14, 9e14])
    z = np.array([0.1, 0.5, 1.3])
    assert np.allclose(physics.mass_from_lx(physics.lx_mass_relation(m, z), z), m)
    assert physics.kt_mass_relation(1e14, 0.0) == pytest.approx(2.0)
    # thesis eq. 2.3.10: T ∝ M^(2/3)
    assert physics.virial_temperature(8e14) / physics.virial_temperature(1e14) == pytest.approx(4.0)


def test_correlated_scatter_statistics():
    rng = np.random.default_rng(1)
    d_l, d_t = physics.correlated_scatter(rng, 40000, 0.35, 0.12, 0.4)
    assert d_l.std() == pytest.approx(0.35, rel=0.03)
    assert d_t.std() == pytest.approx(0.12, rel=0.03)
    assert np.corrcoef(d_l, d_t)[0, 1] == pytest.approx(0.4, abs=0.02)


# --------------------------------------------------------------------------- ICM

def test_sound_speed_matches_thesis_order_of_magnitude():
    # thesis eq. 2.3.1: ~1000 km/s for T = 1e8 K
    cs = physics.sound_speed_kms(1e8 / physics.KEV_TO_K)
    assert 1000 < cs < 1300


def test_hydrostatic_beta_model_closed_form_matches_numerical_derivative():
    r, rc, beta, kt = 800.0, 150.0, 0.7, 5.0
    h = 1e-5
    dlnrho = (np.log(physics.beta_model_density(r * (1 + h), rc, beta))
              - np.log(physics.beta_model_density(r * (1 - h), rc, beta))) / (np.log1p(h) - np.log1p(-h))
    m_num = physics.hydrostatic_mass(r, kt, dlnrho)
    m_closed = physics.hydrostatic_mass_beta(r, kt, rc, beta)
    assert m_closed == pytest.approx(m_num, rel=1e-6)
    # ~3e14 Msun for a 5 keV cluster inside 0.8 Mpc (order of magnitude check)
    assert 1e14 < m_closed < 1e15
    # a falling temperature profile adds mass (eq. 2.3.6)
    assert physics.hydrostatic_mass(r, kt, dlnrho, -0.3) > m_num


def test_beta_model_corrected_eq_2_3_9_and_its_integral():
    assert physics.beta_model(0.0, 2.0, 0.7) == 1.0
    assert physics.beta_model(2.0, 2.0, 0.7) == pytest.approx(2.0 ** (-3 * 0.7 + 0.5))
    # units: the profile depends on r/r_c only (the thesis's R^2/r_c would not)
    assert physics.beta_model(3.0, 1.5, 0.6) == pytest.approx(physics.beta_model(300.0, 150.0, 0.6))
    for beta in (0.5, 0.55, 0.67, 0.9):
        num, _ = integrate.quad(lambda r: 2 * np.pi * r * physics.beta_model(r, 1.3, beta), 0, 7.0)
        assert physics.beta_model_cumulative(7.0, 1.3, beta) == pytest.approx(num, rel=1e-5)


def test_beta_model_radius_sampler_follows_the_profile():
    rng = np.random.default_rng(2)
    r = physics.beta_model_sample_radius(rng.random(50000), 0.5, 0.67, 6.0)
    assert r.max() <= 6.0
    for q in (0.3, 1.0, 2.5):
        assert np.mean(r <= q) == pytest.approx(physics.beta_model_enclosed_fraction(q, 0.5, 0.67, 6.0), abs=0.01)


# --------------------------------------------------------------------------- spectrum

def test_gaunt_factor_small_x_limit_has_sqrt3_over_pi():
    # thesis eq. 2.1.2 prints 3/sqrt(pi); the Born limit has sqrt(3)/pi
    e, kt = 0.002, 5.0
    born = physics.gaunt_born(e, kt)
    assert physics.gaunt_thesis_approximation(e, kt) == pytest.approx(born, rel=2e-3)
    printed = 3 / np.sqrt(np.pi) * np.log(9 * kt / (4 * e))
    assert printed / born == pytest.approx(3.07, rel=0.01)
    assert 0.2 < physics.gaunt_born(1.0, 1.0) < 1.5


def test_bremsstrahlung_emissivity_constant():
    # Rybicki & Lightman eq. 5.14b: 6.8e-38 Z^2 n_e n_i T^-1/2 e^(-h nu/kT) g_ff (cgs)
    kt = 2.0
    t_k = kt * physics.KEV_TO_K
    eps = physics.bremsstrahlung_emissivity(1.0, kt, 1.0, 1.0, gaunt=False)
    assert eps / (t_k ** -0.5 * np.exp(-1.0 / kt)) == pytest.approx(6.8e-38, rel=0.01)


def test_hotter_plasma_has_harder_spectrum_and_lines_fade():
    e = np.array([0.5, 2.0])
    ratio = [np.divide(*physics.bremsstrahlung_photon_spectrum(e, kt)[::-1]) for kt in (1.0, 3.0, 8.0)]
    assert ratio[0] < ratio[1] < ratio[2]
    # mock v2: CHIANTI ion fractions x Gnat & Ferland (2012) emissivities at Z = 0.3 (book/physics_facts.md)
    f = [float(physics.fe_l_flux_fraction(kt, 0.3)) for kt in (1.0, 2.0, 4.0)]
    assert f == pytest.approx([1.83, 0.186, 0.0447], rel=0.02) and f[0] > f[1] > f[2]      # lines fade when hot
    assert float(physics.fe_l_flux_fraction(1.0, 0.6)) == pytest.approx(2 * f[0])         # proportional to Z
    c = [float(physics.fe_l_centre_kev(kt)) for kt in (0.1, 1.0, 2.0, 50.0)]
    assert c == sorted(c) and 0.75 < c[0] < 0.85 and 1.05 < c[2] < 1.12                   # Fe XVII -> Fe XXIV
    # mock v1's design knob, still selectable
    assert physics.fe_l_flux_fraction(1.0, 0.3, model="v1") == pytest.approx(1.0)
    assert physics.fe_l_flux_fraction(4.0, 0.3, model="v1") == pytest.approx(4.0 ** -1.5)
    assert physics.fe_l_centre_kev(0.1, model="v1") == 0.75 and physics.fe_l_centre_kev(50.0, model="v1") == 1.2
    spec = physics.cluster_photon_spectrum(np.linspace(0.3, 3, 50), np.array([1.0, 5.0]))
    assert spec.shape == (2, 50) and np.all(spec > 0)


def test_absorption_cross_section_and_transmission():
    # Morrison & McCammon 1983: ~2.4e-22 cm^2 per H at 1 keV
    assert physics.absorption_cross_section(1.0) == pytest.approx(2.42e-22, rel=0.01)
    s = physics.absorption_cross_section(np.array([0.3, 0.5, 1.0, 2.0]))
    assert np.all(np.diff(s) < 0)
    tr = physics.galactic_transmission(np.array([0.3, 2.0]), 3e20)
    assert 0.3 < tr[0] < 0.5 and tr[1] > 0.98


def test_kcorrection_is_one_at_z0():
    assert physics.redshift_kcorrection(3.0, 0.0)[0] == pytest.approx(1.0)


# --------------------------------------------------------------------------- instrument

def test_effective_area_and_band_means_match_reference():
    ref = np.array([492, 1190, 1765, 2135, 2381, 2479, 2286, 2142, 1976, 1242])
    assert np.allclose(instrument.band_mean_effective_area(), ref, rtol=0.025)
    assert instrument.effective_area(20.0) == 0.0


def test_energy_resolution_and_redistribution():
    fwhm = instrument.energy_resolution_fwhm_kev(np.array([0.4, 1.0, 2.0])) * 1000
    assert np.allclose(fwhm, [60, 71, 89], atol=3)
    p = instrument.band_redistribution(np.array([0.6, 1.3]))
    assert np.allclose(p.sum(axis=1), 1.0, atol=1e-6)
    edge = instrument.band_redistribution(0.455)              # on a band edge: split evenly
    assert edge[0] == pytest.approx(edge[1], abs=1e-9)
    hard = instrument.band_redistribution(np.array([0.3, 0.5]), redistribution=False)
    assert np.array_equal(hard[:, :2], [[1, 0], [0, 1]])


def test_thermal_band_fractions_match_physics_md_check():
    conv = instrument.thermal_conversion()
    r = conv.rate_per_flux(2.0, 0.3, 3e20, 0.3, lines=False)[0]
    check = np.array([11.6, 20.1, 18.0, 15.5, 11.7, 8.7, 6.0, 4.0, 2.8, 1.4])
    assert np.allclose(100 * r / r.sum(), check, atol=1.0)
    hard = [conv.rate_per_flux(kt, 0.3, 3e20, 0.3)[0] for kt in (1.0, 5.0)]
    f = [h[5:].sum() / h.sum() for h in hard]
    assert f[1] > f[0] + 0.1                                  # hotter: more counts in bands 6-10


def test_conversion_grid_matches_direct_integration():
    conv = instrument.thermal_conversion()
    for kt, z, nh, zm in [(0.8, 0.7, 4e20, 0.2), (3.3, 0.12, 2.5e20, 0.4), (7.0, 1.4, 3e20, 0.3)]:
        g = conv.rate_per_flux(kt, z, nh, zm)[0]
        d = instrument.thermal_rate_per_flux_direct(kt, z, nh, zm)
        assert np.allclose(g, d, rtol=0.01)
    k = conv.kcorrection([2.0, 5.0], [0.3, 0.8], [0.3, 0.3])
    assert np.allclose(k, [physics.redshift_kcorrection(2.0, 0.3)[0], physics.redshift_kcorrection(5.0, 0.8)[0]],
                       rtol=2e-3)


def test_powerlaw_flux_to_count_rate():
    # physics.md 7: 0.5-2 keV flux -> 0.2-2.3 keV rate ≈ 1.2-1.4e12 counts/s per erg/s/cm^2
    assert 1.2e12 < instrument.powerlaw_band_rates(2.0, 3e20).sum() < 1.45e12


def test_king_psf_hew_fwhm_and_sampler():
    assert instrument.king_hew_arcsec() == pytest.approx(30.1, abs=0.2)
    assert instrument.king_fwhm_arcsec() == pytest.approx(13.3, abs=0.2)
    num, _ = integrate.quad(lambda r: 2 * np.pi * r * instrument.king_profile(r), 0, 60.0)
    assert num == pytest.approx(instrument.king_eef(60.0), rel=1e-6)
    rng = np.random.default_rng(3)
    r = instrument.king_sample_radius(rng.random(40000), r_max=1e7)
    assert np.median(r) == pytest.approx(instrument.king_hew_arcsec() / 2, rel=0.03)
    k = instrument.king_kernel(12.0)
    assert k.sum() == pytest.approx(1.0) and k[k.shape[0] // 2, k.shape[1] // 2] == k.max()


def test_agn_number_counts_moretti():
    assert instrument.agn_number_counts(1e-14) == pytest.approx(125, rel=0.05)
    assert instrument.agn_number_counts(2e-15) == pytest.approx(490, rel=0.05)
    rng = np.random.default_rng(4)
    s = instrument.agn_sample_flux(rng.random(40000), 1e-14, 1e-11)
    expect = ((instrument.agn_number_counts(5e-14) - instrument.agn_number_counts(1e-11))
              / (instrument.agn_number_counts(1e-14) - instrument.agn_number_counts(1e-11)))
    assert np.mean(s > 5e-14) == pytest.approx(expect, abs=0.01)


def test_background_rates():
    sky, part = instrument.background_band_rates(0.005, 0.7)
    assert sky.sum() + part.sum() == pytest.approx(0.005)
    assert sky.sum() == pytest.approx(0.0035)
    # Al K-alpha (1.487 keV) lands in bands 6 and 7
    assert part[5] > part[0] and part[6] > part[0] and part[0] == pytest.approx(part[9])


def test_exposure_distribution():
    g = np.random.default_rng(5).standard_normal(20000)
    t = instrument.exposure_from_normal(g)
    assert np.median(t) == pytest.approx(1200, rel=0.02)
    assert t.min() >= 500 and t.max() <= 2500
    assert math.isclose(instrument.exposure_from_normal(0.0), 1200.0)
