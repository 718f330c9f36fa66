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
