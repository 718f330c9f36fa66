"""Reference numbers from the literature, to validate the mock catalogue against.

Only quoted or derived facts, each with its source; nothing here is a cmlib
result.  (Numbers of the thesis itself are in :mod:`cmlib.book.thesis`.)
"""

#: The real eFEDS cluster population, derived from the public mass table of
#: Chiu et al. (2022, A&A 661, A11; 542 clusters, h = 0.7).  Source counts are
#: 0.2-2.3 keV photons per cluster, derived from the catalogue's count rates and
#: the ~1.2 ks exposure (physics reference notes, Sect. 2).
EFEDS_CHIU2022 = {
    "z_quantiles": {0.10: 0.16, 0.25: 0.25, 0.50: 0.35, 0.75: 0.51, 0.90: 0.74},
    "log_m_median": 14.14,
    "log_m_std": 0.28,
    "log_m_5_95": (13.64, 14.56),
    "theta500_median_arcmin": 2.4,
    "theta500_10_90_arcmin": (1.6, 3.7),
    "source_counts_median": (70.0, 80.0),
    "source_counts_10_90": (40.0, 370.0),
    "n_clusters": 542,
}

#: The thesis's data set (Heim 2023, Sect. 3.1): 18 realisations of the 140 deg^2
#: eFEDS mock of Liu et al. (2022), clusters kept if eSASS detected them as extended.
THESIS_DATASET = {
    "n_clusters": 7946,
    "log_m_range": (13.0, 15.0),
    "z_range": (0.01, 1.5),
    "realisations": 18,
    "area_deg2": 140.0,
    "description": "mass roughly normal, slightly skewed to high mass; redshift strongly skewed to low z "
                   "(thesis Fig. 17)",
}
