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
from cmlib.errors import DataFileError, InputError
from conftest import write_tiny_file


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_tiny_file(tmp_path_factory.mktemp("d") / "tiny.h5", n=80)


def _history(run_dir):
    """Every recorded number of the history but the timings (losses, rate, the per-epoch diagnostics)."""
    with open(Path(run_dir) / "history.csv") as fh:
        return [tuple(v for k, v in r.items() if k not in ("epoch_time_s", "elapsed_s")) for r in csv.DictReader(fh)]


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
    assert env["onednn"] is True  # the kernels the run used (cmlib._env switches them on)
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


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_kill_and_resume_ends_where_uninterrupted_run_ends(data, tmp_path, precision):
    """kill -9 at a random epoch, then the same command: the run resumes and ends with the uninterrupted run's
    history and predictions, in float32 and under the bf16 policy (issue 12: a bf16 run resumes too)."""
    code = ("import sys; from cmlib import train; "
            "train.train_seeds('basic', sys.argv[1], epochs=8, seeds=[0], runs_dir=sys.argv[2], verbose=False, "
            f"early_stopping=0, precision='{precision}')")
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
    assert json.loads((b / "config.json").read_text())["precision"] == precision


def test_a_run_resumed_on_fewer_threads_records_both_stretches(data, tmp_path, monkeypatch):
    """A run started on all 4 cores and resumed with one thread (one job per core): env.json keeps the first
    stretch under ``earlier``, the pages name both, and its CPU core-seconds count each epoch's threads."""
    import keras

    from cmlib import hardware
    from cmlib.book import pages
    from cmlib.train import env as E

    real = hardware.describe
    monkeypatch.setattr(hardware, "describe", lambda: {**real(), "cpu_cores": 4})
    monkeypatch.delenv("TF_NUM_INTRAOP_THREADS", raising=False)

    class Stop(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt("stop after epoch 2")

    kw = dict(epochs=4, seeds=[0], runs_dir=tmp_path, verbose=False, early_stopping=0, checkpoint_interval_s=0)
    with pytest.raises(KeyboardInterrupt):
        train.train_seeds("basic", data, callbacks=[Stop()], **kw)
    run_dir = next(tmp_path.glob("basic/*/seed-00"))
    first = json.loads((run_dir / "env.json").read_text())
    assert first["compute_threads"] == 4 and "earlier" not in first
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "1")
    monkeypatch.setattr(E, "compute_threads", lambda backend, cores, gpu: 1)   # the process's pool is already made
    (r,) = train.train_seeds("basic", data, **kw)
    env = json.loads((r.path / "env.json").read_text())
    kept = env["earlier"][0]["until_epoch"]
    assert env["compute_threads"] == 1 and 1 <= kept <= 2
    assert env["earlier"] == [{"until_epoch": kept, "machine": first["machine"]["summary"], "cpu_cores": 4,
                               "gpu_names": [], "compute_threads": 4, "precision": first["precision"]}]
    run = A.Run.load(r.path)
    assert [(g["first_epoch"], g["last_epoch"], g["compute_threads"]) for g in run.segments] == \
        [(1, kept, 4), (kept + 1, 4, 1)]
    t = run.history["epoch_time_s"]
    assert run.cpu_core_seconds == pytest.approx(4 * t[:kept].sum() + t[kept:].sum())
    assert pages.hardware_of([run]) == (f"4 CPU cores (epochs 1\u2013{kept}), then 1 of 4 CPU cores "
                                        f"({kept + 1}\u20134), float32")
    # resumed again on the same hardware: nothing new, the earlier stretch stays
    assert E.with_earlier_segments(env, env, 3)["earlier"] == env["earlier"]
    # resumed from a checkpoint older than the switch: the first stretch trained all the epochs kept
    assert E.with_earlier_segments(env, env, kept - 1).get("earlier", []) == \
        ([dict(env["earlier"][0], until_epoch=kept - 1)] if kept > 1 else [])
    # a record older than compute_threads used all its cores
    old = {k: v for k, v in first.items() if k != "compute_threads"}
    assert E.with_earlier_segments(env, old, 2)["earlier"][0]["compute_threads"] == 4
    assert A.compute_segments(old, 3)[0]["compute_threads"] == 4


def test_divergence_is_recorded(data, tmp_path, monkeypatch):
    from cmlib.train import callbacks

    monkeypatch.setattr(callbacks, "EXPLODE_FACTOR", 1e-12)
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
    from cmlib.train.callbacks import schedule_fn

    assert schedule_fn("constant", 1e-3, 100)(50) == 1e-3
    cos = schedule_fn("cosine", 1e-3, 100)
    assert cos(0) == pytest.approx(1e-3) and cos(50) == pytest.approx(5e-4) and cos(99) < 1e-6
    wc = schedule_fn("warmup-cosine", 1e-3, 100, warmup_epochs=5)
    assert [wc(e) for e in range(5)] == pytest.approx([2e-4, 4e-4, 6e-4, 8e-4, 1e-3])
    assert wc(5) == pytest.approx(1e-3) and wc(5 + 95 // 2) < 6e-4 and wc(99) < 1e-6


def test_plateau_schedule_halves_the_rate_and_resumes():
    """ReduceLROnPlateau halves the rate after 10 epochs without improvement; its counters survive a resume."""
    import keras

    from cmlib.train.callbacks import ResumablePlateau, current_lr

    def fresh():
        m = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
        m.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
        return m

    val = [1.0] + [2.0] * 25
    m, cb = fresh(), ResumablePlateau()
    cb.set_model(m)
    cb.on_train_begin()
    lrs = []
    for e, v in enumerate(val):
        cb.on_epoch_end(e, {"val_loss": v})
        lrs.append(current_lr(m))
        if e == 6:
            saved, saved_lr = cb.get_state(), current_lr(m)
    assert lrs[9] == pytest.approx(1e-3) and lrs[10] == pytest.approx(5e-4)   # 10 epochs without improvement
    assert lrs[20] == pytest.approx(2.5e-4) and lrs[19] == pytest.approx(5e-4)
    # resume after epoch 6 with the saved counters: the same rates follow
    m2, cb2 = fresh(), ResumablePlateau()
    m2.optimizer.learning_rate.assign(saved_lr)
    cb2.set_state(saved)
    cb2.set_model(m2)
    cb2.on_train_begin()
    resumed = []
    for e, v in enumerate(val[7:], start=7):
        cb2.on_epoch_end(e, {"val_loss": v})
        resumed.append(current_lr(m2))
    assert resumed == pytest.approx(lrs[7:])


def test_cli_train(data, tmp_path):
    out = subprocess.run([sys.executable, "-m", "cmlib.cli", "train", "--model", "basic", "--data", str(data),
                          "--epochs", "1", "--seeds", "0-1", "--runs-dir", str(tmp_path), "--quiet", "--threads", "1"],
                         capture_output=True, text=True, env={k: v for k, v in os.environ.items()
                                                              if k != "TF_NUM_INTRAOP_THREADS"})
    assert out.returncode == 0, out.stderr
    assert "complete" in out.stdout and out.stdout.count("seed-0") == 2
    # --threads 1: one compute thread (one job per core), recorded for the cost table
    assert {json.loads(p.read_text())["compute_threads"] for p in tmp_path.glob("basic/*/seed-*/env.json")} == {1}
    zero = subprocess.run([sys.executable, "-m", "cmlib.cli", "train", "--model", "basic", "--data", str(data),
                           "--epochs", "1", "--threads", "0"], capture_output=True, text=True)
    assert zero.returncode == 2 and "--threads: invalid count '0'" in zero.stderr
    bad = subprocess.run([sys.executable, "-m", "cmlib.cli", "train", "--model", "nope", "--data", str(data),
                          "--epochs", "1"], capture_output=True, text=True)
    assert bad.returncode == 2 and "error" in bad.stderr and "basic" in bad.stderr


def test_output_bias_starts_at_the_mean_label(data, tmp_path):
    # deep models default to "mean"; the thesis's basic CNN keeps Keras's zero bias
    assert train.resolve_config("resnet50v2", data, epochs=1)["output_bias"] == "mean"
    assert train.resolve_config("basic", data, epochs=1).output_bias == "zero"
    assert train.resolve_config("resnet50v2", data, epochs=1, output_bias="zero").output_bias == "zero"
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
    assert np.abs(m.get_layer("log_m500").get_weights()[0]).max() > 0       # 'mean': kernel as initialised
    train.init_output_bias(m, y, zero_kernel=True)                         # 'prior': exactly the label prior
    x = {"image": np.random.default_rng(0).poisson(3.0, (4, 50, 50, 3)).astype("float32"),
         "redshift": np.full((4, 1), 0.3, "float32")}
    np.testing.assert_allclose(m.predict(x, verbose=0), [[14.0, np.log(y.var())]] * 4, rtol=1e-6)


# ---------------------------------------------------------------- reliability (issue: kills, races, damage)

_RUN = ("import sys; from cmlib import train; "
        "train.train_seeds('basic', sys.argv[1], epochs=int(sys.argv[3]), seeds=[0], runs_dir=sys.argv[2], "
        "verbose=False, lr=3e-3, early_stopping=20, keep_models=sys.argv[4] == '1', checkpoint_interval_s=0)")


def _run(data, runs, epochs=4, keep=True, env=None, check=True):
    e = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-c", _RUN, str(data), str(runs), str(epochs), "1" if keep else "0"],
                          env=e, capture_output=True, text=True, check=check)


@pytest.fixture(scope="module")
def reference_runs(data, tmp_path_factory):
    """Uninterrupted runs with and without model files (the bytes every crash must end with)."""
    root = tmp_path_factory.mktemp("ref")
    out = {}
    for keep in (True, False):
        _run(data, root / str(keep), keep=keep)
        out[keep] = next((root / str(keep)).glob("basic/*/seed-00"))
    return out


@pytest.mark.parametrize("failpoint, keep", [("final-checkpoint", True), ("model-files", True),
                                             ("predictions", False), ("status", False), ("final-checkpoint", False)])
def test_a_kill_at_any_step_of_the_finish_reruns_to_the_same_result(data, tmp_path, reference_runs, failpoint, keep):
    """kill -9 after the last epoch (the window that lost or changed results before): rerun = uninterrupted run."""
    killed = _run(data, tmp_path, keep=keep, env={"CMLIB_FAILPOINT": failpoint}, check=False)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    run_dir = next(tmp_path.glob("basic/*/seed-00"))
    _run(data, tmp_path, keep=keep)                                  # the same command again
    ref = reference_runs[keep]
    assert run_dir.relative_to(tmp_path) == ref.relative_to(ref.parents[2])
    for name in ("predictions.csv", "metrics.json", "config.json", "split.json"):
        assert (run_dir / name).read_bytes() == (ref / name).read_bytes(), name
    assert _history(run_dir) == _history(ref)
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "complete" and status["predicted_with"] == "best"
    assert status["best_epoch"] < status["epochs_completed"]        # best and last differ: the choice matters
    assert not (run_dir / "checkpoints").exists()
    assert {(run_dir / n).exists() for n in ("best.keras", "last.keras")} == {keep}


def test_a_refused_start_leaves_the_running_job_alone(data, tmp_path):
    """Two more starts of a running run are refused (exit 2); neither breaks the first one's lock."""
    p = subprocess.Popen([sys.executable, "-c", _RUN, str(data), str(tmp_path), "400", "0"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not list(tmp_path.glob("basic/*/seed-00/history.csv")):
            assert p.poll() is None, p.stderr.read()
            time.sleep(0.05)
        cmd = [sys.executable, "-m", "cmlib.cli", "train", "--model", "basic", "--data", str(data), "--epochs",
               "400", "--lr", "3e-3", "--early-stopping", "20", "--runs-dir", str(tmp_path), "--quiet",
               "--no-model-files"]
        for _ in range(2):
            refused = subprocess.run(cmd, capture_output=True, text=True)
            assert refused.returncode == 2 and "another process is training" in refused.stderr, refused.stderr
        run_dir = next(tmp_path.glob("basic/*/seed-00"))
        assert train.is_locked(run_dir) and p.poll() is None
    finally:
        p.kill()
        p.wait()
    assert not train.is_locked(run_dir)             # the OS released the dead process's lock


def test_a_damaged_finished_run_is_never_reused(data, tmp_path):
    (r,) = train.train_seeds("basic", data, epochs=1, runs_dir=tmp_path, verbose=False, keep_models=False)
    pred = r.path / "predictions.csv"
    good = pred.read_bytes()
    pred.write_bytes(good[: len(good) // 2])                        # truncated
    with pytest.raises(A.DamagedRunError, match="predictions.csv has .* bytes.*--force"):
        train.train_seeds("basic", data, epochs=1, runs_dir=tmp_path, verbose=False)
    pred.write_bytes(good.replace(b"test", b"tesT", 1))              # same size, other content
    with pytest.raises(A.DamagedRunError, match="predictions.csv was changed"):
        train.train_seeds("basic", data, epochs=1, runs_dir=tmp_path, verbose=False)
    pred.write_bytes(good)
    cfg_bytes = (r.path / "config.json").read_bytes()
    (r.path / "config.json").write_bytes(cfg_bytes[:40])               # truncated JSON
    with pytest.raises(A.DamagedRunError, match="config.json is damaged"):
        train.train_seeds("basic", data, epochs=1, runs_dir=tmp_path, verbose=False)
    (r.path / "config.json").write_bytes(cfg_bytes)
    metrics = (r.path / "metrics.json").read_bytes()
    (r.path / "metrics.json").write_bytes(metrics[:-10])
    with pytest.raises(A.DamagedRunError, match="metrics.json has"):
        train.train_seeds("basic", data, epochs=1, runs_dir=tmp_path, verbose=False)
    (r.path / "status.json").write_text('{"status": "compl')          # truncated JSON
    with pytest.raises(A.DamagedRunError, match="status.json is damaged"):
        train.train_seeds("basic", data, epochs=1, runs_dir=tmp_path, verbose=False)
    (fixed,) = train.train_seeds("basic", data, epochs=1, runs_dir=tmp_path, verbose=False, force=True)
    assert fixed.status == "complete" and pred.read_bytes() == good


def test_data_changed_in_place_is_detected_on_reuse(tmp_path):
    import h5py

    path = write_tiny_file(tmp_path / "d.h5", n=40)
    (r,) = train.train_seeds("basic", path, epochs=1, runs_dir=tmp_path / "runs", verbose=False, keep_models=False)
    os.utime(path)                                                   # touched, same content: still reused
    assert train.train_seeds("basic", path, epochs=1, runs_dir=tmp_path / "runs", verbose=False)[0].reused
    with h5py.File(path, "r+") as f:                                 # labels edited, attribute left stale
        f["log_m500"][0] = f["log_m500"][0] + 0.5
    with pytest.raises(DataFileError, match="content hash does not match"):
        train.train_seeds("basic", path, epochs=1, runs_dir=tmp_path / "runs", verbose=False)


def test_bad_runs_dir_and_seed_lists_are_clear_errors(data, tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(InputError, match="is a file, not a directory"):
        train.train_seeds("basic", data, epochs=1, runs_dir=tmp_path / "afile", verbose=False)
    for seeds, msg in (("4294967296", "from 0 to 2147483647"), ("0-1000000000", "at most 1000 per command")):
        t = time.time()
        out = subprocess.run([sys.executable, "-m", "cmlib.cli", "train", "--model", "basic", "--data", str(data),
                              "--epochs", "1", "--seeds", seeds], capture_output=True, text=True)
        assert out.returncode == 2 and msg in out.stderr, out.stderr
        assert time.time() - t < 60                                  # refused before expanding the list


def test_sigterm_stops_like_ctrl_c_and_the_run_resumes(data, tmp_path):
    # 100 epochs of a fraction of a second: the signal, sent after epoch 3, must find the run still going even when
    # this shared machine stalls the test for seconds (with 30, one clean-clone run of the suite saw the run end
    # normally, exit 0, nothing on stderr: the signal came too late)
    cmd = [sys.executable, "-m", "cmlib.cli", "train", "--model", "basic", "--data", str(data), "--epochs", "100",
           "--lr", "3e-3", "--early-stopping", "0", "--runs-dir", str(tmp_path / "b"), "--no-model-files",
           "--checkpoint-interval", "0"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        found = list((tmp_path / "b").glob("basic/*/seed-00/status.json"))
        if found and json.loads(found[0].read_text() or "{}").get("epochs_completed", 0) >= 3:
            break
        assert p.poll() is None, p.stderr.read()
        time.sleep(0.02)
    # the run must still be going when the signal is sent (a run that had already ended cannot be interrupted:
    # that would be this test's race, not a lost signal); its output is kept for a failure's message
    assert p.poll() is None, f"the run ended before the signal was sent: {p.stdout.read()[-800:]}"
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130 and "interrupted" in err, (p.returncode, err, out[-800:])
    run_dir = found[0].parent
    assert json.loads((run_dir / "status.json").read_text())["status"] == "interrupted"
    assert subprocess.run(cmd + ["--quiet"], capture_output=True, text=True).returncode == 0
    ref = subprocess.run([c if c != str(tmp_path / "b") else str(tmp_path / "a") for c in cmd] + ["--quiet"],
                         capture_output=True, text=True)
    assert ref.returncode == 0
    a = next((tmp_path / "a").glob("basic/*/seed-00"))
    assert _history(a) == _history(run_dir)
    assert (a / "predictions.csv").read_bytes() == (run_dir / "predictions.csv").read_bytes()


def test_checkpoint_policy_keeps_the_cost_near_five_percent():
    from cmlib.train.callbacks import CheckpointPolicy

    p = CheckpointPolicy()
    assert not p.due(since_last_s=1.0, last_cost_s=0.1)              # 0.1 s per checkpoint: every >= 2 s
    assert p.due(since_last_s=2.0, last_cost_s=0.1)
    assert p.due(since_last_s=600.0, last_cost_s=100.0)              # capped at 10 minutes of lost work
    assert CheckpointPolicy(interval_s=0).due(0.0, 5.0)              # every epoch


def test_run_identity_is_typed_and_upgrades_version_1_records(data):
    from cmlib.config import CONFIG_VERSION, RunConfig, upgrade

    cfg = train.resolve_config("basic", data, epochs=3, seed=2, lr=5e-4)
    again = RunConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg and again.group_key() == cfg.group_key() and cfg.config_version == CONFIG_VERSION
    # what a run is does not depend on where the data lie, the profile or eager execution ...
    assert cfg.replace(data="elsewhere/d.h5", profile="laptop", run_eagerly=True).group_key() == cfg.group_key()
    # ... but on every option that changes the computation
    for change in (dict(precision="bfloat16"), dict(lr=1e-3), dict(epochs=4), dict(optimizer="adamw"),
                   dict(data_sha256="0" * 64), dict(label_scaling="standardize")):
        assert cfg.replace(**change).group_key() != cfg.group_key(), change
    assert cfg.replace(seed=3).group_key() == cfg.group_key() and cfg.replace(seed=3).identity() != cfg.identity()
    v1 = {k: v for k, v in cfg.to_dict().items() if k not in ("optimizer", "weight_decay", "warmup_epochs",
                                                                "label_scaling", "precision", "config_version",
                                                                "output_bias")}
    v1.update(predict_with="best", data="/home/someone/data/d.h5")
    up = upgrade(v1)
    assert up["precision"] == "float32" and up["output_bias"] == "zero" and up["data"] == "data/d.h5"
    assert RunConfig.from_dict(v1).group_key() == cfg.group_key()
    with pytest.raises(InputError, match="newer"):
        upgrade({**cfg.to_dict(), "config_version": CONFIG_VERSION + 1})


def test_every_committed_run_hashes_to_its_own_directory():
    """The stored runs under results/runs are found by identity: each one's record must name its directory."""
    from cmlib.config import RunConfig

    root = Path(__file__).resolve().parents[1] / "results" / "runs"
    configs = sorted(root.glob("*/*/seed-*/config.json"))
    assert configs, "no committed runs found"
    for c in configs:
        rec = json.loads(c.read_text())
        assert rec.get("config_version") == 2, f"{c} is not upgraded"
        assert not str(rec.get("data", "")).startswith("/"), f"{c} stores a machine path"
        assert RunConfig.from_dict(rec).identity() == c.parent.relative_to(root).as_posix(), c


def test_a_full_disk_is_a_clear_error_and_the_run_resumes_with_space(data, tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a small tmpfs needs root and mount permission on this machine")
    try:
        cmd = [sys.executable, "-m", "cmlib.cli", "train", "--model", "basic", "--data", str(data), "--epochs", "3",
               "--lr", "3e-3", "--early-stopping", "20", "--runs-dir", str(mnt), "--quiet", "--no-model-files",
               "--checkpoint-interval", "0"]
        full = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        assert full.returncode == 2, full.stderr[-2000:]
        assert "disk is full" in full.stderr and "Traceback" not in full.stderr
        assert not [p for p in mnt.rglob("*") if p.name.startswith(".") and p.name != ".lock"]   # no temp files
        subprocess.run(["mount", "-o", "remount,size=64m", str(mnt)], check=True)
        assert subprocess.run(cmd, capture_output=True, text=True, timeout=600).returncode == 0
        ref = subprocess.run([c if c != str(mnt) else str(tmp_path / "ref") for c in cmd], capture_output=True,
                             text=True, timeout=600)
        assert ref.returncode == 0
        a, b = next((tmp_path / "ref").glob("basic/*/seed-00")), next(mnt.glob("basic/*/seed-00"))
        assert (a / "predictions.csv").read_bytes() == (b / "predictions.csv").read_bytes()
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_diagnostics_are_recorded_every_epoch_and_change_nothing(data, tmp_path, monkeypatch):
    """The per-epoch diagnostics land in history.csv, and a run with them trains exactly as one without."""
    from cmlib.train import diagnostics as G

    (r,) = train.train_seeds("basic", data, epochs=3, seeds=[0], runs_dir=tmp_path / "with", verbose=False,
                             early_stopping=0)
    h = A.Run.load(r.path).history
    for c in A.DIAGNOSTIC_COLUMNS:
        assert c in h and h[c].size == 3, c
    assert np.all(np.isfinite(h["mse_train_eval"])) and np.all(h["pred_std_train"] >= 0)
    assert np.all(h["grad_norm"] > 0) and np.all(h["grad_norm"] >= h["grad_norm_last"])
    assert np.all((h["dead_relu"] >= 0) & (h["dead_relu"] <= 1))
    assert np.all((h["dead_head"] >= 0) & (h["dead_head"] < 1))      # the basic CNN's head is alive
    monkeypatch.setattr(G.TrainingDiagnostics, "on_epoch_end", lambda self, epoch, logs=None: None)
    (r2,) = train.train_seeds("basic", data, epochs=3, seeds=[0], runs_dir=tmp_path / "without", verbose=False,
                              early_stopping=0)
    h2 = A.Run.load(r2.path).history
    assert "grad_norm" not in h2
    np.testing.assert_array_equal(h["loss"], h2["loss"])
    np.testing.assert_array_equal(h["val_loss"], h2["val_loss"])


def test_diagnose_measures_the_dense_head():
    """dead_head: the share of the head_dense_* units that are off for every probe cluster; 1 for a head pushed
    below zero (the output then ignores image and redshift), NaN for a model without such a head."""
    from cmlib._env import import_keras
    from cmlib.train import diagnostics as G

    keras = import_keras()
    rng = np.random.default_rng(1)
    inputs = {"image": rng.normal(size=(16, 6, 6, 1)).astype("float32"),
              "redshift": rng.uniform(0, 1, (16, 1)).astype("float32")}
    y = rng.normal(14, 0.3, 16)
    shares = {}
    for name, bias in (("alive", 0.5), ("dead", -100.0)):
        image, z = keras.Input((6, 6, 1), name="image"), keras.Input((1,), name="redshift")
        f = keras.layers.Concatenate()([keras.layers.Flatten()(image), z])
        h = keras.layers.Dense(8, activation="relu", name="head_dense_1",
                               bias_initializer=keras.initializers.Constant(bias))(f)
        model = keras.Model([image, z], keras.layers.Dense(1, name="log_m500")(h))
        model.compile(optimizer="adam", loss=keras.losses.MeanSquaredError())
        out = G.diagnose(model, inputs, y)
        shares[name] = out["dead_head"]
        if name == "dead":
            assert out["pred_std_train"] == 0.0             # one output for every cluster
    assert shares["alive"] < 0.5 and shares["dead"] == 1.0
    image, z = keras.Input((6, 6, 1), name="image"), keras.Input((1,), name="redshift")
    bare = keras.Model([image, z], keras.layers.Dense(1, name="log_m500")(
        keras.layers.Concatenate()([keras.layers.Flatten()(image), z])))
    bare.compile(optimizer="adam", loss=keras.losses.MeanSquaredError())
    assert G.head_probe(bare) is None and np.isnan(G.diagnose(bare, inputs, y)["dead_head"])


def test_diagnose_restores_batchnorm_and_finds_dead_units():
    """BatchNorm's moving statistics survive the training-mode pass; the train/inference gap and dead ReLUs
    of a nested backbone (as keras.applications nests it) are measured."""
    from cmlib._env import import_keras
    from cmlib.train import diagnostics as G

    keras = import_keras()
    inner_in = keras.Input((8, 8, 2))
    x = keras.layers.Conv2D(4, 3, padding="same", name="c1")(inner_in)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.Activation("relu", name="r1")(x)
    dead = keras.layers.Conv2D(3, 1, activation="relu", name="dead", kernel_initializer="zeros",
                               bias_initializer=keras.initializers.Constant(-1.0))(x)
    backbone = keras.Model(inner_in, keras.layers.Concatenate()([x, dead]), name="backbone")
    image, z = keras.Input((8, 8, 2), name="image"), keras.Input((1,), name="redshift")
    f = keras.layers.Concatenate()([keras.layers.Flatten()(backbone(image)), z])
    model = keras.Model([image, z], keras.layers.Dense(1, name="log_m500")(f))
    model.compile(optimizer="adam", loss=keras.losses.MeanSquaredError())
    rng = np.random.default_rng(0)
    inputs = {"image": (5.0 + 3.0 * rng.normal(size=(16, 8, 8, 2))).astype("float32"),
              "redshift": rng.uniform(0, 1, (16, 1)).astype("float32")}
    y = rng.normal(14, 0.3, 16)
    before = [np.array(v) for v in model.non_trainable_variables]
    probe = G.relu_probe(model)
    assert probe is not None and probe[1] == "image"
    out = G.diagnose(model, inputs, y, probe)
    for v, b in zip(model.non_trainable_variables, before):
        np.testing.assert_array_equal(np.array(v), b)            # moving mean/variance untouched
    assert set(out) == set(A.DIAGNOSTIC_COLUMNS)
    # fresh moving statistics (mean 0, variance 1) against batch statistics of inputs around 5: a gap
    assert out["mse_train_eval"] != pytest.approx(out["mse_train_batchstats"], rel=1e-3)
    # 'dead': 3 channels always <= 0; 'r1': some of its 4 channels may be dead after BatchNorm, never all
    assert 3 / 7 <= out["dead_relu"] < 1.0
    assert out["grad_norm_first"] > 0 and out["grad_norm"] > 0
    # the guard puts the statistics back also when the pass inside it fails (the head-probe benchmark uses it too)
    with pytest.raises(RuntimeError):
        with G.state_restored(model):
            model(inputs, training=True)
            assert any((np.array(v) != b).any() for v, b in zip(model.non_trainable_variables, before))
            raise RuntimeError("a failed pass")
    for v, b in zip(model.non_trainable_variables, before):
        np.testing.assert_array_equal(np.array(v), b)
