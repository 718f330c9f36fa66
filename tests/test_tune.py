"""cmlib tune: space validation, storage errors, two concurrent workers on one journal file, promotion."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cmlib import tune
from cmlib.errors import InputError

from conftest import write_tiny_file

SPACE = """
[lr]
low = 1e-4
high = 1e-2
log = true
[batch_size]
choices = [16, 32]
[fixed]
early_stopping = 0
"""


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_tiny_file(tmp_path_factory.mktemp("tunedata") / "tiny.h5", n=60)


@pytest.mark.parametrize("body, message", [
    ("[learning_rate]\nlow = 1e-4\nhigh = 1e-2\n", "unknown training option(s) learning_rate"),
    ("[lr]\nlow = 1e-2\nhigh = 1e-4\n", "low < high"),
    ("[lr]\nlow = 0.0\nhigh = 1e-2\nlog = true\n", "needs low > 0"),
    ("[lr]\nlow = 1e-4\nhigh = 2.0\n", "lr=2.0 must be a number"),
    ("[lr_schedule]\nchoices = ['constant', 'sometimes']\n", "'sometimes' is not valid"),
    ("[lr]\nlow = 1e-4\n", "needs low and high"),
    ("[lr]\nlow = 1e-4\nhigh = 1e-2\nscale = 'log'\n", "unknown key(s) scale"),
    ("[fixed]\nearly_stopping = 0\n", "nothing to search"),
])
def test_bad_spaces_are_clear_errors(tmp_path, body, message):
    p = tmp_path / "space.toml"
    p.write_text(body)
    with pytest.raises(InputError) as exc:
        tune.load_space(p, "basic")
    assert message in str(exc.value) and str(p) in str(exc.value)


def test_bad_storage_url_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="SQLAlchemy URL"):
        tune.storage_for("nosuchdialect://x/y", tmp_path / "j")
    with pytest.raises(InputError, match="is a directory"):
        tune.storage_for(str(tmp_path), tmp_path / "j")


def _tune(data, tmp_path, *extra):
    return [sys.executable, "-m", "cmlib.cli", "tune", "--model", "basic", "--data", str(data), "--epochs", "3",
            "--space", str(tmp_path / "space.toml"), "--runs-dir", str(tmp_path / "runs"),
            "--storage", str(tmp_path / "study.journal"), "--study", "s", *extra]


@pytest.mark.slow
def test_two_workers_share_one_journal_without_losing_or_duplicating_trials(tmp_path, data):
    import optuna
    from optuna.trial import TrialState

    (tmp_path / "space.toml").write_text(SPACE)
    procs = [subprocess.Popen(_tune(data, tmp_path, "--trials", "6", "--quiet"), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=1200) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    study = optuna.load_study(study_name="s", storage=tune.storage_for(str(tmp_path / "study.journal"), Path()))
    trials = study.get_trials()
    real = [t for t in trials if not t.user_attrs.get("over_cap")]
    assert sorted(t.number for t in real) == list(range(6))          # none lost, none duplicated, cap kept
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in real)
    assert all(t.number >= 6 and t.state == TrialState.FAIL for t in trials if t.user_attrs.get("over_cap"))
    for t in real:                                                   # every trial is a normal run directory
        run = tmp_path / "runs" / t.user_attrs["run"]
        st = json.loads((run / "status.json").read_text())
        assert json.loads((run / "config.json").read_text())["lr"] == pytest.approx(t.params["lr"])
        if t.state == TrialState.COMPLETE:
            assert st["status"] == "complete" and st["best_val_loss"] == pytest.approx(t.value)
        else:
            assert st["status"] == "interrupted"                     # a pruned run is never 'complete'

    # promote the best trial to a recipe and train with it
    r = subprocess.run(_tune(data, tmp_path, "--promote", "tuned", "--out", str(tmp_path / "tuned.toml")),
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    best = study.best_trial
    assert tune.read_recipe_file(tmp_path / "tuned.toml", "basic")["lr"] == pytest.approx(best.params["lr"])
    r = subprocess.run([sys.executable, "-m", "cmlib.cli", "train", "--model", "basic", "--data", str(data),
                        "--epochs", "3", "--recipe", str(tmp_path / "tuned.toml"), "--runs-dir",
                        str(tmp_path / "runs"), "--quiet"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "reusing finished run" in r.stdout or best.user_attrs["run"] in r.stdout
    with pytest.raises(InputError, match="not 'vgg16'"):
        tune.read_recipe_file(tmp_path / "tuned.toml", "vgg16")


def test_example_space_is_valid():
    space, fixed = tune.load_space(Path(__file__).parents[1] / "examples" / "space_basic.toml", "basic")
    assert space["lr"]["log"] and space["dense_units"]["kind"] == "int" and fixed == {"early_stopping": 20}
