"""The study report of the tuning page: trials, best, importances, history, and the paired test comparison."""
from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from cmlib import tune
from cmlib.artifacts import Run
from cmlib.errors import InputError

REPO = Path(__file__).resolve().parents[1]
STORED = REPO / "results" / "runs" / "basic"


def _study(values):
    study = optuna.create_study(study_name="t", direction="minimize")
    dist = {"lr": FloatDistribution(1e-4, 3e-3, log=True), "augment": CategoricalDistribution(["flip", "flip-rot90"])}
    for i, v in enumerate(values):
        state = TrialState.PRUNED if v is None else TrialState.COMPLETE
        study.add_trial(create_trial(params={"lr": 1e-4 * (i + 1), "augment": ["flip", "flip-rot90"][i % 2]},
                                     distributions=dist, value=v, state=state, intermediate_values={0: 0.1, 1: 0.05},
                                     user_attrs={"run": f"basic/x{i}/seed-00", "options": {"lr": 1e-4 * (i + 1)}}))
    return study


def test_report_has_every_trial_the_best_and_importances(tmp_path):
    rep = tune.study_report(_study([0.05, None, 0.03, 0.04, 0.06]), settings={"trials": 5})
    assert [t["state"] for t in rep["trials"]] == ["complete", "pruned", "complete", "complete", "complete"]
    assert rep["best"]["number"] == 2 and rep["best"]["run"] == "basic/x2/seed-00"
    assert set(rep["importances"]) == {"lr", "augment"} and abs(sum(rep["importances"].values()) - 1) < 1e-6
    assert rep["counts"]["pruned"] == 1 and rep["counts"]["complete"] == 4
    assert [r["best_so_far"] for r in tune.history(rep)] == [0.05, 0.05, 0.03, 0.03, 0.03]
    (tmp_path / "r.json").write_text(json.dumps(rep))
    assert tune.read_report(tmp_path / "r.json")["best"]["number"] == 2
    assert tune.read_report(tmp_path / "none.json") is None
    one = tune.study_report(_study([0.05]))
    assert one["importances"] == {} and "at least 2 complete" in one["importances_note"]


def _stored(split: str, data_sha256: str | None = None) -> Run:
    for d in sorted(STORED.glob("*/seed-00")):
        r = Run.load(d)
        if r.finished and r.config["split"] == split and data_sha256 in (None, r.config["data_sha256"]):
            return r
    pytest.skip(f"no stored basic run with split {split}" + (f" on data {data_sha256[:12]}" if data_sha256 else ""))


def test_test_comparison_is_paired_and_refuses_different_splits():
    tvt = _stored("train-val-test")
    d = tune.test_comparison(tvt, tvt, n_boot=200)
    assert d.diff == 0 and d.ci95 == (0.0, 0.0) and d.n_clusters == len(tvt.predictions["test"].x)
    with pytest.raises(InputError, match="differ in split"):
        tune.test_comparison(tvt, _stored("thesis", tvt.config["data_sha256"]))    # same data, other split


def test_store_trial_run_copies_small_artifacts_only(tmp_path):
    src = tmp_path / "runs" / "basic" / "g" / "seed-00"
    src.mkdir(parents=True)
    for name in ("status.json", "predictions.csv", "best.keras"):
        (src / name).write_text("x")
    out = tune.store_trial_run(tmp_path / "runs", "basic/g/seed-00", tmp_path / "stored")
    assert sorted(p.name for p in out.iterdir()) == ["predictions.csv", "status.json"]
    with pytest.raises(Exception, match="did not finish"):
        tune.store_trial_run(tmp_path / "runs", "basic/missing/seed-00", tmp_path / "stored")


def test_comparable_keeps_same_data_runs_and_names_the_difference():
    import copy

    tvt = _stored("train-val-test")
    other = copy.copy(tvt)
    other.config = {**tvt.config, "data_sha256": "f" * 64, "data": "data/smoke.h5"}
    same, why = tune.comparable(tvt, [other, tvt])
    assert same == [tvt] and why.startswith("data_sha256 " + tvt.config["data_sha256"][:12]) and "smoke.h5" in why
    assert tune.comparable(tvt, [tvt]) == ([tvt], "")
    assert tune.comparable(tvt, [other])[0] == []


def test_tuning_page_text_compares_same_data_and_refuses_other_data(tmp_path, monkeypatch):
    """The smoke profile's reference run is on other data than the study: the page says so instead of failing
    (the CI build of the smoke book stopped here once); on the same data it gives the paired verdict."""
    import copy
    import shutil
    from types import SimpleNamespace

    from cmlib.book import training_reports

    report = tune.read_report(REPO / "results" / "tune" / "basic.json")
    if not report or not report.get("best"):
        pytest.skip("no committed study report with a best trial")
    best = report["best"]
    shutil.copytree(REPO / best["stored_in"] / best["run"], tmp_path / best["stored_in"] / best["run"])
    tuned = Run.load(tmp_path / best["stored_in"] / best["run"])
    other = copy.copy(tuned)
    other.config = {**tuned.config, "data_sha256": "f" * 64, "data": "data/smoke.h5"}

    def fake_page_runs(finished):
        return lambda *a, **k: SimpleNamespace(finished=finished, data="data/smoke.h5",
                                               request=SimpleNamespace(command=lambda: "cmlib train basic ..."))

    monkeypatch.setattr(training_reports, "find_page_runs", fake_page_runs([other]))
    text = training_reports.tuning_comparison_markdown(report, "smoke", root=tmp_path)
    assert "No test comparison under the `smoke` profile" in text and "data_sha256" in text
    assert "--data data/smoke.h5" in text and "On the test set" not in text
    monkeypatch.setattr(training_reports, "find_page_runs", fake_page_runs([other, tuned]))
    text = training_reports.tuning_comparison_markdown(report, "laptop", root=tmp_path)
    assert "**On the test set the tuned basic CNN is not distinguishable from the thesis recipe**" in text
    assert f"`lr={best['options']['lr']:.3g}`" in text and "`split=train-val-test`" in text   # floats to 3 digits
    assert "Test std(x) over " in text and "(x = log M_pred − log M_true, dex)" in text
    # the reference's own validation loss against the best trial's (here the trial is its own reference)
    assert f"The thesis-recipe run's own lowest validation loss, {best['value']:.5f}, is the best trial's." in text
    better = copy.copy(tuned)
    better._history = {**tuned.history, "val_loss": tuned.history["val_loss"] * 0.5}
    monkeypatch.setattr(training_reports, "find_page_runs", fake_page_runs([better]))
    assert "below the best trial's: the search did not beat the thesis recipe even on the validation set" in \
        training_reports.tuning_comparison_markdown(report, "laptop", root=tmp_path)
    monkeypatch.setattr(training_reports, "find_page_runs", fake_page_runs([other, tuned]))
    cap = report["settings"]["epochs"]
    assert f"The tuned trial ran {tuned.status_info['epochs_completed']} epochs of the study's cap of {cap}" in text
    assert ("stopped by the cap" in text) == (tuned.status_info["epochs_completed"] >= cap and
                                              tuned.config.get("lr_schedule", "constant") == "constant")
    monkeypatch.setattr(training_reports, "find_page_runs", fake_page_runs([]))
    assert "is not on disk: `cmlib train basic ...`" in training_reports.tuning_comparison_markdown(
        report, "laptop", root=tmp_path)
    assert "no complete trial" in training_reports.tuning_comparison_markdown(None, "laptop", root=tmp_path)
    # a profile without the reference experiment (classroom: its build stopped here with a KeyError)
    assert "trains no train-val-test run" in training_reports.tuning_comparison_markdown(report, "classroom",
                                                                                         root=tmp_path)


def test_study_text_names_the_budget_and_the_command():
    from cmlib.book import training_reports

    rep = tune.study_report(_study([0.0568412, None, 0.221424]), settings={
        "trials": 12, "epochs": 60, "pruner": "median", "sampler": "TPE", "fixed": {"early_stopping": 20},
        "command": "nice -n 10 .venv/bin/python benchmarks/tune_study.py"})
    text = training_reports.tuning_study_text(rep)
    assert text.startswith(f"Study `{rep['study']}`: 3 of 12 planned trials exist (")
    assert "fixed options `early_stopping=20`." in text and "{" not in text
    assert text.endswith(f"`nice -n 10 .venv/bin/python benchmarks/tune_study.py --study {rep['study']} --trials 12 "
                         "--epochs 60`.")
    rep["settings"].update(data="data/other.h5", space="examples/space_basic.toml", seed=3, runs_dir="runs")
    assert training_reports.tuning_command(rep).endswith(
        f"--study {rep['study']} --data data/other.h5 --space examples/space_basic.toml --seed 3 --runs-dir runs "
        "--trials 12 --epochs 60")
    assert "shown as running" not in text
    rep["counts"]["running"] = 1
    assert "A trial shown as running is one the study was running" in training_reports.tuning_study_text(rep)


def test_trial_rows_are_formatted_for_reading():
    from cmlib.book import pages, training_reports

    rep = tune.study_report(_study([0.0568412, None, 0.221424]), settings={"trials": 3})
    rep["trials"].append({**rep["trials"][0], "number": 3, "state": "running", "value": None,
                          "params": {"lr": 0.00056, "augment": "flip"}})
    rows = training_reports.tuning_trial_rows(rep)
    assert [r["best val. loss"] for r in rows] == ["0.0568", "\u2013", "0.2214", "\u2013"]
    assert rows[0]["lr"] == "1.0e-04" and rows[3]["lr"] == "5.6e-04" and rows[3]["state"] == "running"
    assert rows[0]["augment"] == "flip" and list(rows[0])[:4] == ["trial", "state", "best val. loss", "epochs"]
    html = pages.html_table(rows, nowrap=True)
    assert html.startswith('<table class="cmlib-table nowrap">') and "nan" not in html
    assert html.count("<tr>") == 5                                   # header + 4 trials
