"""Metrics against values computed by hand."""
from __future__ import annotations

import numpy as np
import pytest

from cmlib import metrics as M
from cmlib.errors import InputError

PRED = np.array([14.1, 13.8, 14.0, 14.5])
TRUE = np.array([14.0, 14.0, 14.0, 14.0])
# x = [0.1, -0.2, 0.0, 0.5]


def test_thesis_equations_by_hand():
    x = M.residuals(PRED, TRUE)
    np.testing.assert_allclose(x, [0.1, -0.2, 0.0, 0.5], atol=1e-12)
    assert M.thesis_mu(x) == pytest.approx(0.1)                 # eq. 4.0.4
    assert M.thesis_mu_tilde(x) == pytest.approx(0.2)           # eq. 4.0.3
    # eq. 4.0.1: |x| = [.1,.2,0,.5], deviations from 0.2: [-.1, 0, -.2, .3]
    assert M.thesis_sigma(x) == pytest.approx(np.sqrt((0.01 + 0 + 0.04 + 0.09) / 4))


def test_point_metrics_by_hand():
    m = M.point_metrics(PRED, TRUE)
    assert m["n"] == 4
    assert m["bias"] == pytest.approx(0.1)
    assert m["std"] == pytest.approx(np.sqrt(0.065))
    assert m["rmse"] == pytest.approx(np.sqrt(0.075))
    assert m["outlier_frac"] == pytest.approx(0.25)
    assert m["nmad"] == pytest.approx(1.482602218505602 * 0.15)
    assert m["max_abs"] == pytest.approx(0.5)


def test_sigma_is_spread_of_abs_residuals_not_std():
    rng = np.random.default_rng(1)
    x = rng.normal(0, 0.2, 200_000)
    assert M.thesis_sigma(x) == pytest.approx(M.ABS_SPREAD_FACTOR * 0.2, rel=0.01)
    assert M.point_metrics(x, np.zeros_like(x))["std"] == pytest.approx(0.2, rel=0.01)


def test_uncertainty_metrics_by_hand():
    u = M.uncertainty_metrics([1.0, 2.0], [1.5, 2.0], [1.0, 0.1])
    assert u["coverage_1sigma"] == 1.0
    assert u["pull_mean"] == pytest.approx(-0.25)
    assert u["pull_std"] == pytest.approx(0.25)
    expected_nll = np.mean([0.5 * np.log(2 * np.pi) + 0.125, 0.5 * np.log(2 * np.pi * 0.01)])
    assert u["nll"] == pytest.approx(expected_nll)


def test_calibrated_gaussian_has_68_percent_coverage():
    rng = np.random.default_rng(2)
    s = rng.uniform(0.05, 0.3, 100_000)
    true = rng.normal(14, 0.3, s.size)
    pred = true + rng.normal(0, s)
    u = M.uncertainty_metrics(pred, true, s)
    assert u["coverage_1sigma"] == pytest.approx(0.6827, abs=0.005)
    assert u["coverage_2sigma"] == pytest.approx(0.9545, abs=0.005)
    assert u["pull_std"] == pytest.approx(1.0, abs=0.01)


def test_sma_matches_eq_A11():
    np.testing.assert_allclose(M.sma([1, 2, 3, 4, 5], k=2), [1, 1.5, 2.5, 3.5, 4.5])
    v = np.arange(1, 301, dtype=float)
    s = M.sma(v, k=100)
    assert s[199] == pytest.approx(np.mean(v[100:200]))
    assert M.sma([1.0, np.nan, 3.0], k=2)[2] == pytest.approx(3.0)
    with pytest.raises(InputError):
        M.sma([1, 2], k=0)


def test_binned_metrics():
    true = np.array([13.1, 13.2, 13.7, 14.2, 14.3])
    pred = true + np.array([0.1, 0.3, -0.2, 0.0, 0.2])
    rows = M.binned_metrics(pred, true, true, bins=[13.0, 13.5, 14.0, 14.5])
    assert [r["n"] for r in rows] == [2, 1, 2]
    assert rows[0]["bias"] == pytest.approx(0.2)
    assert rows[2]["bias"] == pytest.approx(0.1)
    empty = M.binned_metrics(pred, true, true, bins=[10, 11, 15])
    assert empty[0]["n"] == 0 and np.isnan(empty[0]["bias"])


def test_best_run_and_seed_statistics():
    runs = [{"test": {"sigma": 0.2, "mu": 0.01}}, {"test": {"sigma": 0.12, "mu": -0.3}},
            {"test": {"sigma": float("nan")}}]
    assert M.best_run_index(runs) == 1
    assert M.best_run_index(runs, by="mu") == 0
    stats = M.mean_std_over_seeds([{"sigma": 0.1}, {"sigma": 0.3}])
    assert stats["sigma"]["mean"] == pytest.approx(0.2)
    assert stats["sigma"]["std"] == pytest.approx(np.std([0.1, 0.3], ddof=1))


def test_ensemble_gaussian_mixture_moments():
    a = M.Predictions(cluster_id=[7], true=[14.0], pred=[0.0], sigma=[1.0])
    b = M.Predictions(cluster_id=[7], true=[14.0], pred=[2.0], sigma=[1.0])
    e = M.ensemble([a, b])
    assert e.pred[0] == pytest.approx(1.0)
    assert e.sigma[0] == pytest.approx(np.sqrt(2.0))
    p = M.ensemble([M.Predictions([1, 2], [14, 14], [14.1, 13.9]), M.Predictions([1, 2], [14, 14], [13.9, 14.1])])
    np.testing.assert_allclose(p.pred, [14.0, 14.0])
    np.testing.assert_allclose(p.sigma, [0.1, 0.1])
    with pytest.raises(InputError, match="same clusters"):
        M.ensemble([a, M.Predictions([8], [14.0], [1.0])])


def test_evaluate_includes_bins_and_uncertainty():
    rng = np.random.default_rng(3)
    true = rng.uniform(13, 15, 500)
    p = M.Predictions(np.arange(500), true, true + rng.normal(0, 0.1, 500), sigma=np.full(500, 0.1),
                      z=rng.uniform(0.01, 1.4, 500))
    ev = M.evaluate(p)
    assert len(ev["by_mass"]) == 4 and len(ev["by_z"]) == 4
    assert ev["coverage_1sigma"] == pytest.approx(0.68, abs=0.06)


def test_errors_are_clear():
    with pytest.raises(InputError, match="differ in length"):
        M.residuals([1, 2], [1])
    with pytest.raises(InputError, match="empty"):
        M.point_metrics([], [])


def test_redshift_alone_estimator_and_a_model_that_ignores_its_images():
    """In a flux-limited sample z predicts part of the mass: the redshift-only estimator recovers that relation,
    and a model whose predictions are a smooth function of z is said not to have learned from its images."""
    from cmlib import metrics as M
    from cmlib.errors import InputError

    rng = np.random.default_rng(3)

    def sample(n, seed):
        r = np.random.default_rng(seed)
        z = r.uniform(0.05, 1.0, n)
        true = 13.4 + 1.8 * z - 0.3 * z ** 2 + r.normal(0, 0.25, n)       # mass grows with z, 0.25 dex scatter
        return M.Predictions(np.arange(n), true, np.zeros(n), z=z)

    train, test = sample(3000, 1), sample(800, 2)
    zonly = M.redshift_predictor(train, test)
    x = zonly.pred - test.true
    assert np.std(x, ddof=1) == pytest.approx(0.25, abs=0.02)            # only the scatter about the z relation
    assert M.point_metrics(zonly.pred, zonly.true)["std"] < np.std(test.true, ddof=1) - 0.05
    base = M.mean_predictor(train, test)
    v = M.learning_verdict(zonly, base)                                  # better than the mean, but z alone
    assert not v["learned"] and "function of the redshift alone" in v["reason"] and v["unexplained_by_z"] < 0.01
    assert v["short"] == "predicts from the redshift alone"
    uses_images = M.Predictions(test.cluster_id, test.true, test.true + rng.normal(0, 0.1, 800), z=test.z)
    v = M.learning_verdict(uses_images, base)
    assert v["learned"] and v["unexplained_by_z"] > 0.5
    # a model that uses its images but is not clearly better than z alone has not learned from them
    weak = M.Predictions(test.cluster_id, test.true, zonly.pred + rng.normal(0, 0.05, 800), z=test.z)
    v = M.learning_verdict(weak, base)
    assert v["learned"] and np.isnan(v["redshift_std"])                  # judged against the mean only
    v = M.judge_learning(train, weak)
    assert not v["learned"] and v["short"] == "not 5% better than the redshift alone"     # the rule, not "no better"
    assert v["rule"] == "redshift margin" and M.judge_learning(train, uses_images)["rule"] == ""
    assert v["redshift_std"] == pytest.approx(M.point_metrics(zonly.pred, zonly.true)["std"])
    assert M.judge_learning(train, uses_images)["learned"]
    no_z = M.Predictions(test.cluster_id, test.true, test.true)
    assert np.isnan(M.unexplained_by_redshift(no_z)) and M.learning_verdict(no_z, base)["learned"]
    with pytest.raises(InputError, match="carry no redshifts"):
        M.redshift_predictor(M.Predictions(np.arange(3), np.ones(3), np.ones(3)), test)
