"""Run artifacts round-trip and every plot function on synthetic runs."""
from __future__ import annotations

import matplotlib
import numpy as np
import pytest

from cmlib import artifacts as A
from cmlib import plots as P
from cmlib._io import atomic_write_json
from cmlib.metrics import Predictions


def make_run(root, model="basic", seed=0, n=120, sigma=False, epochs=30, group="g1"):
    rng = np.random.default_rng(seed)
    d = root / model / group / f"seed-{seed:02d}"
    d.mkdir(parents=True)
    atomic_write_json(d / "config.json", {"model": model, "seed": seed, "epochs": epochs, "loss": "mse",
                                          "split": "thesis", "data": "x.h5", "data_sha256": "ab" * 32})
    A.write_status(d, status="complete", epochs_completed=epochs, best_epoch=10, wall_time_s=12.0)
    ep = np.arange(1, epochs + 1)
    rows = [dict(epoch=e, loss=1 / e, val_loss=1 / e + 0.01 * e, lr=1e-3, epoch_time_s=0.4, elapsed_s=0.4 * e)
            for e in ep]
    A.write_history(d / "history.csv", rows)
    preds = {}
    for s, m in (("train", n), ("val", n // 4), ("test", n // 4)):
        true = rng.uniform(13, 15, m)
        preds[s] = Predictions(np.arange(m), true, true + rng.normal(0.02, 0.15, m),
                               sigma=np.full(m, 0.15) if sigma else None, z=rng.uniform(0.01, 1.4, m))
    A.write_predictions(d / "predictions.csv", preds)
    atomic_write_json(d / "metrics.json", {"test": {"sigma": 0.1 + 0.01 * seed}})
    return d


def test_roundtrip_and_find(tmp_path):
    make_run(tmp_path, seed=0)
    make_run(tmp_path, seed=1, sigma=True)
    d = make_run(tmp_path, model="vgg16", seed=0)
    A.write_status(d, status="running")
    runs = A.find_runs(tmp_path)
    assert [(r.model, r.seed) for r in runs] == [("basic", 0), ("basic", 1)]
    assert len(A.find_runs(tmp_path, finished_only=False)) == 3
    r = runs[1]
    assert r.history["epoch"][-1] == 30 and r.history["loss"][0] == pytest.approx(1.0)
    assert set(r.predictions) == {"train", "val", "test"}
    assert r.predictions["test"].sigma is not None and runs[0].predictions["test"].sigma is None
    prov = A.provenance(runs)
    assert prov["seeds"] == [0, 1] and prov["data_sha256"] == "ab" * 6
    assert list(A.group_runs(runs)) == [("basic", "g1")]


def test_not_a_run_dir(tmp_path):
    with pytest.raises(Exception, match="not a run directory"):
        A.Run.load(tmp_path)


def test_every_plot_function(tmp_path):
    make_run(tmp_path, seed=0)
    make_run(tmp_path, seed=1, sigma=True)
    make_run(tmp_path, model="resnet50v2", seed=0)
    runs = A.find_runs(tmp_path)
    basic0, basic1, deep = runs
    figs = {
        "history": P.plot_history(basic0, sma_k=5),
        "comparison": P.plot_history_comparison({"Basic": basic0, "ResNet50V2": deep}, sma_k=10),
        "seed_histories": P.plot_seed_histories([basic0, basic1], sma_k=3),
        "lr": P.plot_lr_comparison({"lr 1e-3": basic0, "lr 5e-4": basic1}),
        "pred": P.plot_pred_vs_true(basic1),
        "hist": P.plot_residual_hist(basic0),
        "vs": P.plot_model_vs_reference(deep, basic0),
        "binned": P.plot_binned({"a": basic0.predictions["test"], "b": deep.predictions["test"]}, by="z"),
        "seeds": P.plot_seed_spread([r.metrics for r in (basic0, basic1)], model="basic", thesis_value=0.13),
        "calib": P.plot_calibration(basic1.predictions["test"], model="basic"),
        "dist": P.plot_distributions(np.random.default_rng(0).normal(14, 0.3, 500),
                                     np.random.default_rng(1).gamma(2, 0.2, 500)),
        "bands": P.plot_band_images(np.random.default_rng(0).poisson(1, (50, 50, 10))),
        "grid": P.plot_cluster_grid([np.ones((50, 50))] * 7, [str(i) for i in range(7)]),
        "conv": P.plot_convolution(np.ones((50, 50)), np.array([[0, -1, 0], [-1, 4, -1], [0, -1, 0]]),
                                   np.zeros((48, 48))),
        "act": P.plot_activations(),
    }
    for name, fig in figs.items():
        assert isinstance(fig, matplotlib.figure.Figure), name
        png = P.to_png_bytes(fig)
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 2000, name
    with pytest.raises(ValueError, match="uncertaint"):
        P.plot_calibration(basic0.predictions["test"])
    named = P.plot_model_vs_reference(deep, basic0, label="VGG16 (remedy: lr 1e-4)")
    assert [t.get_text() for t in named.axes[0].get_legend().get_texts()] == ["Basic CNN", "identity", "VGG16 (remedy: lr 1e-4)"]
    assert named.axes[1].get_legend().get_texts()[1].get_text().startswith("VGG16 (remedy: lr 1e-4): ")
    assert [t.get_text() for t in figs["vs"].axes[0].get_legend().get_texts()] == ["Basic CNN", "identity", "ResNet50V2"]
    # the seeds' curves against the floors their shared validation clusters give (dashed, labelled with the value)
    floors = [("predicting from the redshift alone", 0.0776, "redshift")]
    seeds = P.plot_seed_histories([basic0, basic1], references=floors).axes[0]
    assert [ln.get_linestyle() for ln in seeds.lines] == ["-", "-", "--"]
    assert seeds.get_legend().get_texts()[-1].get_text() == \
        "predicting from the redshift alone (0.0776 dex², validation clusters)"
    styled = P.plot_binned({"a": basic0.predictions["test"], "ref": deep.predictions["test"]}, by="z",
                           colors={"ref": "#b8860b"}, styles={"ref": "--"})
    assert {ln.get_label(): ln.get_linestyle() for ln in styled.axes[1].lines if ln.get_label() in ("a", "ref")} \
        == {"a": "-", "ref": "--"}


def test_loss_axes_are_logarithmic_only_for_positive_losses(tmp_path):
    """A Gaussian NLL goes below zero: its history is drawn on a symmetric log axis (on a log axis it would vanish)."""
    pos = A.Run.load(make_run(tmp_path, seed=0))
    neg_dir = make_run(tmp_path, model="krippendorf2023", seed=1)
    A.write_history(neg_dir / "history.csv", [dict(epoch=e, loss=1.0 - 0.1 * e, val_loss=0.9 - 0.1 * e, lr=1e-4,
                                                  epoch_time_s=1.0, elapsed_s=float(e)) for e in range(1, 21)])
    neg = A.Run.load(neg_dir)
    assert P.plot_history(pos).axes[0].get_yscale() == "log"
    assert P.plot_history(neg).axes[0].get_yscale() == "symlog"
    assert P.plot_seed_histories([neg]).axes[0].get_yscale() == "symlog"
    assert P.plot_seed_histories([pos]).axes[0].get_yscale() == "log"
    assert all(ax.get_yscale() == "symlog"
               for ax in P.plot_history_comparison({"a": pos, "b": neg}, sma_k=3).axes)


def test_label_offsets_move_overlapping_names_apart_and_leave_the_others():
    x = np.array([100.0, 105.0, 400.0, 110.0])
    y = np.array([50.0, 52.0, 51.0, 80.0])
    out = P.label_offsets(x, y, min_gap=10.0, near=50.0)
    assert out[0] == 50.0 and out[1] == 60.0              # the higher of two close names moves up, the lower stays
    assert out[2] == 51.0 and out[3] == 80.0              # far in x, or already clear: untouched
    down = P.label_offsets(x, y, min_gap=10.0, near=50.0, down=True)
    assert down[1] == 52.0 and down[0] == 42.0            # names hanging below their points make room downwards
    assert np.array_equal(P.label_offsets(x[:0], y[:0], min_gap=10.0, near=50.0), x[:0])
