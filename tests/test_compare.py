"""Paired model comparison: bootstrap differences on the same clusters, ranking with seed spread."""
from __future__ import annotations

import math

import numpy as np
import pytest

from cmlib import compare
from cmlib.artifacts import Predictions
from cmlib.errors import InputError


def _preds(noise, n=800, seed=0, shift=0.0, ids=None):
    rng = np.random.default_rng(seed)
    true = np.random.default_rng(99).uniform(13.5, 15.0, n)
    ids = np.arange(n) if ids is None else ids
    return Predictions(cluster_id=ids, true=true, pred=true + shift + rng.normal(0, noise, n))


def test_a_clearly_better_model_is_better_and_the_same_model_is_indistinguishable():
    good, bad = _preds(0.10, seed=1), _preds(0.20, seed=2)
    d = compare.paired_difference(good, bad)
    assert d.diff == pytest.approx(-0.10, abs=0.02)
    assert d.verdict == "better" and d.p_a_better == 1.0 and d.ci95[1] < 0
    assert compare.paired_difference(bad, good).verdict == "worse"
    twin = _preds(0.15, seed=3)
    same = compare.paired_difference(twin, Predictions(twin.cluster_id, twin.true, twin.pred.copy()))
    assert same.diff == 0.0 and same.verdict == "indistinguishable"


def test_close_models_are_indistinguishable_with_few_clusters():
    a, b = _preds(0.150, n=60, seed=4), _preds(0.155, n=60, seed=5)
    assert compare.paired_difference(a, b).verdict == "indistinguishable"


def test_alignment_uses_common_clusters_and_refuses_other_data():
    a = _preds(0.1, seed=1)
    b = Predictions(a.cluster_id[::-1], a.true[::-1], a.pred[::-1] + 0.05)     # same clusters, other order
    ids, xa, xb = compare.align(a, b)
    assert ids.size == a.true.size and np.allclose(xb - xa, 0.05)
    with pytest.raises(InputError, match="share no cluster"):
        compare.align(a, _preds(0.1, ids=np.arange(1000, 1800)))
    other = Predictions(a.cluster_id, a.true + 0.3, a.pred)
    with pytest.raises(InputError, match="different data files"):
        compare.align(a, other)


def test_ranking_sorts_by_the_ensemble_and_single_seeds_have_no_spread():
    models = {"basic": [_preds(0.15, seed=s) for s in range(3)],
              "deep": [_preds(0.12, seed=10 + s) for s in range(3)],
              "flat": [_preds(0.30, seed=20)]}
    rows = compare.ranking(models, reference="basic", n_boot=300)
    assert [r["model"] for r in rows] == ["deep", "basic", "flat"]
    by = {r["model"]: r for r in rows}
    assert by["deep"]["verdict"] == "better" and by["flat"]["verdict"] == "worse"
    assert by["basic"]["verdict"] == "reference" and by["basic"]["seeds"] == 3
    assert math.isnan(by["flat"]["std_seeds"]) and by["deep"]["std_seeds"] > 0
    # the ensemble of independent seeds is better than a single seed
    assert by["deep"]["ensemble"] < by["deep"]["mean_seeds"]
    with pytest.raises(InputError, match="reference 'nope'"):
        compare.ranking(models, reference="nope")


def _run(model, seed, precision, noise, lr=1e-3):
    from cmlib.artifacts import Run
    from cmlib.config import RunConfig

    cfg = RunConfig(model=model, seed=seed, precision=precision, lr=lr, data="d.h5", data_sha256="ab" * 32)
    return Run(path=None, config=cfg.to_dict(), status_info={"status": "complete"},
               _predictions={"test": _preds(noise, seed=seed + (100 if precision == "bfloat16" else 0))})


def test_precision_agreement_pairs_recipes_that_differ_only_in_precision():
    runs = [_run("basic", s, p, 0.15 + 0.01 * s) for s in range(3) for p in ("float32", "bfloat16")]
    runs.append(_run("basic", 0, "bfloat16", 0.40, lr=5e-4))     # another recipe, one precision only: no row
    rows = compare.precision_agreement(runs)
    assert len(rows) == 1
    r = rows[0]
    assert r["model"] == "basic" and r["float32"]["seeds"] == [0, 1, 2] and r["bfloat16"]["seeds"] == [0, 1, 2]
    assert r["split"] == "thesis"
    assert abs(r["diff"]) < r["seed_spread"] and r["agree"] is True
    assert set(r["paired_diffs"]) == {0, 1, 2} and set(r["paired_ci95"]) == {0, 1, 2}
    for s_, (lo, hi) in r["paired_ci95"].items():            # the bootstrap interval brackets the difference
        assert lo < r["paired_diffs"][s_] < hi and hi - lo < 0.1
    # a bf16 recipe that is clearly worse than its fp32 twin does not agree
    worse = [_run("basic", s, "bfloat16", 0.30 + 0.01 * s) for s in range(3)]
    worse += [_run("basic", s, "float32", 0.15 + 0.01 * s) for s in range(3)]
    assert compare.precision_agreement(worse)[0]["agree"] is False
    # one seed per precision: no spread, no verdict
    assert compare.precision_agreement([_run("basic", 0, "float32", 0.15), _run("basic", 0, "bfloat16", 0.15)]
                                       )[0]["agree"] is None
    # one fp32 seed against two bf16 seeds: the bf16 spread decides, both ways
    two = [_run("basic", s, "bfloat16", 0.15 + 0.02 * s) for s in range(2)]     # std(x) about 0.15 and 0.17
    near = compare.precision_agreement(two + [_run("basic", 0, "float32", 0.16)])[0]
    assert near["seed_spread"] == pytest.approx(np.std(near["bfloat16"]["values"], ddof=1))
    assert near["seed_spread"] > 0.005
    assert near["agree"] is True and abs(near["diff"]) <= near["seed_spread"]
    assert near["float32"]["seeds"] == [0] and set(near["paired_diffs"]) == {0}
    far = compare.precision_agreement(two + [_run("basic", 0, "float32", 0.25)])[0]
    assert far["agree"] is False and far["seed_spread"] == near["seed_spread"]


def test_residual_correlation_tells_precision_round_off_from_a_new_seed():
    """Same-seed runs whose residuals differ by a little round-off correlate far more than two seeds do."""
    from cmlib.artifacts import Run
    from cmlib.config import RunConfig

    def run(seed, precision, preds):
        cfg = RunConfig(model="basic", seed=seed, precision=precision, data="d.h5", data_sha256="ab" * 32)
        return Run(path=None, config=cfg.to_dict(), status_info={"status": "complete"}, _predictions={"test": preds})

    runs = []
    for s in range(2):
        fp = _preds(0.15, seed=s)
        jitter = np.random.default_rng(50 + s).normal(0, 0.03, fp.pred.size)
        runs += [run(s, "float32", fp), run(s, "bfloat16", Predictions(fp.cluster_id, fp.true, fp.pred + jitter))]
    rc = compare.precision_agreement(runs)[0]["residual_corr"]
    assert set(rc["same_seed"]) == {0, 1} and set(rc["other_seeds"]) == {"float32", "bfloat16"}
    assert all(c > 0.95 for c in rc["same_seed"].values())
    assert all(abs(c) < 0.15 for d in rc["other_seeds"].values() for c in d.values())
    assert list(rc["other_seeds"]["float32"]) == ["0-1"]
    a = _preds(0.1, seed=7)
    assert compare.residual_correlation(a, a) == pytest.approx(1.0)
