"""Training engine: end-to-end runs, reuse, kill-and-resume, divergence, errors."""
from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from cmlib import artifacts as A
from cmlib import train
from cmlib.errors import CmlibError, DataFileError, InputError
from conftest import write_tiny_file


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_tiny_file(tmp_path_factory.mktemp("d") / "tiny.h5", n=80)


def _history(run_dir):
    with open(Path(run_dir) / "history.csv") as fh:
        return [(r["loss"], r["val_loss"]) for r in csv.DictReader(fh)]


def test_basic_run_writes_every_artifact(data, tmp_path):
    (r,) = train.train_seeds("basic", data, epochs=2, seeds=[0], runs_dir=tmp_path, verbose=False)
    assert r.status == "complete" and not r.reused
    names = {p.name for p in r.path.iterdir()}
    assert {"config.json", "split.json", "env.json", "status.json", "history.csv", "predictions.csv",
            "metrics.json", "best.keras", "last.keras"} <= names
    assert "checkpoints" not in names
    cfg = json.loads((r.path / "config.json").read_text())
    # thesis defaults (Table 4 / Sect. 3.2) for the basic CNN
    assert cfg["lr"] == 1e-3 and cfg["batch_size"] == 32 and cfg["loss"] == "mse"
    assert cfg["bands"] == [1, 2, 3] and cfg["pad"] == "none" and cfg["split"] == "thesis"
    assert len(cfg["data_sha256"]) == 64
    env = json.loads((r.path / "env.json").read_text())
    assert env["backend"] == "tensorflow" and "cpu_cores" in env["machine"]
    run = A.Run.load(r.path)
    assert list(run.history["epoch"]) == [1, 2]
    p = run.predictions
    assert set(p) == {"train", "val", "test"}
    assert p["test"].true.size == 8 and p["train"].true.size == 72  # thesis split 90/10
    m = run.metrics
    assert set(m["test"]) >= {"sigma", "mu", "mu_tilde", "std", "rmse", "nmad", "outlier_frac", "by_mass"}
    assert m["loss"]["epochs_completed"] == 2
    # reuse: same command, nothing retrained
    (again,) = train.train_seeds("basic", data, epochs=2, seeds=[0], runs_dir=tmp_path, verbose=False)
    assert again.reused and again.path == r.path
    mtime = (r.path / "history.csv").stat().st_mtime_ns
    (forced,) = train.train_seeds("basic", data, epochs=2, seeds=[0], runs_dir=tmp_path, verbose=False,
                                  force=True)
    assert not forced.reused and (r.path / "history.csv").stat().st_mtime_ns != mtime


@pytest.mark.parametrize("early_stopping, predicted_with", [(20, "best"), (0, "last")])
def test_without_model_files_the_same_run_predicts_the_same(data, tmp_path, early_stopping, predicted_with):
    kw = dict(epochs=4, seeds=[0], verbose=False, lr=3e-3, early_stopping=early_stopping)
    (kept,) = train.train_seeds("basic", data, runs_dir=tmp_path / "kept", **kw)
    (lean,) = train.train_seeds("basic", data, runs_dir=tmp_path / "lean", keep_models=False, **kw)
    assert lean.path.relative_to(tmp_path / "lean") == kept.path.relative_to(tmp_path / "kept")  # same identity
    names = {p.name for p in lean.path.iterdir()}
    assert not names & {"best.keras", "last.keras", "best.weights.h5", "checkpoints"}
    assert {"predictions.csv", "metrics.json", "history.csv"} <= names
    assert lean.run.status_info["model_files"] is False and kept.run.status_info["model_files"] is True
    assert lean.metrics["predicted_with"] == kept.metrics["predicted_with"] == predicted_with
    s = lean.run.status_info
    assert s["best_epoch"] < s["epochs_completed"], "the test should exercise the choice between best and last"
    for subset in ("train", "test"):
        np.testing.assert_array_equal(lean.run.predictions[subset].pred, kept.run.predictions[subset].pred)


def test_seeds_share_a_group_and_differ(data, tmp_path):
    rs = train.train_seeds("basic", data, epochs=1, seeds=[0, 1], runs_dir=tmp_path, verbose=False)
    assert rs[0].path.parent == rs[1].path.parent
    assert _history(rs[0].path) != _history(rs[1].path)


def test_nll_run_predicts_uncertainties(data, tmp_path):
    (r,) = train.train_seeds("krippendorf2023", data, epochs=1, seeds=[0], runs_dir=tmp_path, verbose=False)
    cfg = r.run.config
    assert cfg["loss"] == "nll" and cfg["output"] == "gaussian" and cfg["bands"] == list(range(10))
    assert cfg["lr"] == 1e-4 and cfg["batch_size"] == 100 and cfg["augment"] == "flip-rot90"
    p = r.run.predictions["test"]
    assert p.sigma is not None and np.all(p.sigma > 0)
    assert "coverage_1sigma" in r.metrics["test"]


def test_basic_with_nll_override(data, tmp_path):
    (r,) = train.train_seeds("basic", data, epochs=1, runs_dir=tmp_path, verbose=False, loss="nll",
                             split="train-val-test", lr_schedule="cosine")
    assert r.run.config["output"] == "gaussian"
    preds = r.run.predictions
    assert {"train", "val", "test"} <= set(preds)
    ids = {k: set(preds[k].cluster_id.tolist()) for k in ("train", "val", "test")}
    assert not (ids["val"] & ids["test"]) and not (ids["train"] & (ids["val"] | ids["test"]))
    assert sum(len(v) for v in ids.values()) == 80


@pytest.mark.slow
def test_deep_model_end_to_end(data, tmp_path):
    (r,) = train.train_seeds("resnet50v2", data, epochs=1, seeds=[0], runs_dir=tmp_path, verbose=False,
                             batch_size=16)
    assert r.status in ("complete", "diverged")
    assert r.run.config["pad"] == "thesis"
    assert math.isfinite(r.metrics["loss"]["train_last"])


def test_kill_and_resume_ends_where_uninterrupted_run_ends(data, tmp_path):
    code = ("import sys; from cmlib import train; "
            "train.train_seeds('basic', sys.argv[1], epochs=8, seeds=[0], runs_dir=sys.argv[2], verbose=False, "
            "early_stopping=0)")
    env = dict(os.environ)
    subprocess.run([sys.executable, "-c", code, str(data), str(tmp_path / "a")], check=True, env=env)
    p = subprocess.Popen([sys.executable, "-c", code, str(data), str(tmp_path / "b")], env=env)
    deadline = time.time() + 120
    status = None
    while time.time() < deadline:
        found = list((tmp_path / "b").glob("basic/*/seed-00/status.json"))
        if found:
            try:
                if json.loads(found[0].read_text()).get("epochs_completed", 0) >= 3:
                    status = found[0]
                    break
            except (json.JSONDecodeError, OSError):
                pass
        if p.poll() is not None:
            break
        time.sleep(0.005)
    assert status is not None, "the run finished before it could be killed"
    p.send_signal(signal.SIGKILL)
    p.wait()
    killed_at = json.loads(status.read_text())["epochs_completed"]
    assert killed_at < 8 and json.loads(status.read_text())["status"] == "running"
    # the same command again resumes and completes
    subprocess.run([sys.executable, "-c", code, str(data), str(tmp_path / "b")], check=True, env=env)
    a = next((tmp_path / "a").glob("basic/*/seed-00"))
    b = status.parent
    assert a.relative_to(tmp_path / "a") == b.relative_to(tmp_path / "b")
    assert len(_history(b)) == 8
    assert _history(a) == _history(b)
    pa, pb = (A.read_predictions(x / "predictions.csv")["test"].pred for x in (a, b))
    np.testing.assert_array_equal(pa, pb)
    assert json.loads((b / "status.json").read_text())["status"] == "complete"


def test_divergence_is_recorded(data, tmp_path, monkeypatch):
    monkeypatch.setattr(train, "EXPLODE_FACTOR", 1e-12)
    (r,) = train.train_seeds("basic", data, epochs=5, runs_dir=tmp_path, verbose=False)
    assert r.status == "diverged"
    assert r.run.status_info["epochs_completed"] == 1
    assert "exceeds" in r.run.status_info["stopped_reason"]
    # a diverged run is finished: the same command does not retrain it
    assert train.train_seeds("basic", data, epochs=5, runs_dir=tmp_path, verbose=False)[0].reused


def test_configuration_errors(data, tmp_path):
    with pytest.raises(InputError, match="unknown training option"):
        train.resolve_config("basic", data, epochs=1, learning_rate=1)
    with pytest.raises(InputError, match="epochs"):
        train.resolve_config("basic", data, epochs=0)
    with pytest.raises(InputError, match="lr"):
        train.resolve_config("basic", data, epochs=1, lr=-1)
    with pytest.raises(InputError, match="split"):
        train.resolve_config("basic", data, epochs=1, split="kfold")
    with pytest.raises(InputError, match="resnet50v2"):
        train.resolve_config("resnet5", data, epochs=1)
    with pytest.raises(DataFileError, match="does not exist"):
        train.resolve_config("basic", tmp_path / "missing.h5", epochs=1)


def test_learning_rate_schedules():
    cfg = {"lr": 1e-3, "epochs": 100, "lr_schedule": "constant"}
    assert train.learning_rate(cfg, 50, [], []) == 1e-3
    cfg["lr_schedule"] = "cosine"
    assert train.learning_rate(cfg, 0, [], []) == pytest.approx(1e-3)
    assert train.learning_rate(cfg, 50, [], []) == pytest.approx(5e-4)
    cfg["lr_schedule"] = "plateau"
    val = [1.0] + [2.0] * 10          # no improvement for 10 epochs
    assert train.learning_rate(cfg, 11, val, [1e-3] * 11) == pytest.approx(5e-4)
    assert train.learning_rate(cfg, 11, [1.0 - 0.01 * i for i in range(11)], [1e-3] * 11) == 1e-3


def test_cli_train(data, tmp_path):
    out = subprocess.run([sys.executable, "-m", "cmlib.cli", "train", "--model", "basic", "--data", str(data),
                          "--epochs", "1", "--seeds", "0-1", "--runs-dir", str(tmp_path), "--quiet"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "complete" in out.stdout and out.stdout.count("seed-0") == 2
    bad = subprocess.run([sys.executable, "-m", "cmlib.cli", "train", "--model", "nope", "--data", str(data),
                          "--epochs", "1"], capture_output=True, text=True)
    assert bad.returncode == 2 and "error" in bad.stderr and "basic" in bad.stderr


def test_output_bias_starts_at_the_mean_label(data, tmp_path):
    # deep models default to "mean"; the thesis's basic CNN keeps Keras's zero bias, stored as an absent key
    assert train.resolve_config("resnet50v2", data, epochs=1)["output_bias"] == "mean"
    assert "output_bias" not in train.resolve_config("basic", data, epochs=1)
    assert "output_bias" not in train.resolve_config("resnet50v2", data, epochs=1, output_bias="zero")
    with pytest.raises(InputError, match="output_bias"):
        train.resolve_config("basic", data, epochs=1, output_bias="median")
    # with a negligible learning rate the first predictions show where the output starts
    mu = {}
    for bias in ("zero", "mean"):
        (r,) = train.train_seeds("basic", data, epochs=1, runs_dir=tmp_path, verbose=False, lr=1e-12,
                                 output_bias=bias)
        mu[bias] = r.metrics["train"]["mu"]
    assert mu["zero"] < -10                       # log M ~ 13-15 predicted as ~0
    assert abs(mu["mean"]) < 2, mu


def test_init_output_bias_gaussian_output():
    from cmlib import models

    m = models.build("basic", (50, 50, 3), output="gaussian", seed=0)
    y = np.array([13.5, 14.0, 14.5])
    train.init_output_bias(m, y)
    b = np.asarray(m.get_layer("log_m500").get_weights()[1])
    assert np.allclose(b, [14.0, np.log(y.var())], atol=1e-5)
