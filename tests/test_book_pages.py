"""The book's page logic without building a book: read-only run finding, verdicts, tables, the
generated paragraph, the registry-derived lists, hand-ins, the exercise sheet and the build's
page post-processing.  Fast: no training, no TensorFlow."""
from __future__ import annotations

import ast
import dataclasses
import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest

from cmlib import artifacts as A
from cmlib import metrics as M
from cmlib import models
from cmlib._io import atomic_write_json
from cmlib.book import build, comparison, exercises, handin, pages, profiles, runs, training_reports
from cmlib.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "cmlib" / "book"


# ---------------------------------------------------------------- pages never train

def test_page_modules_do_not_import_training():
    code = ("import sys; import cmlib.book.pages, cmlib.book.comparison, cmlib.book.training_reports, "
            "cmlib.book.widgets, cmlib.book.handin, cmlib.book.exercises, cmlib.book.profiles; bad = [m for m in ('cmlib.train', 'tensorflow', 'keras') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("name", ["pages", "comparison", "training_reports", "widgets", "handin", "exercises",
                                  "profiles", "thesis", "runs", "build"])
def test_no_module_level_training_import(name):
    tree = ast.parse((BOOK / f"{name}.py").read_text())
    for node in tree.body:                       # module level only
        if isinstance(node, ast.ImportFrom):
            assert not (node.module or "").endswith("train"), (name, node.module)
            assert "train" not in [a.name for a in node.names], name
        if isinstance(node, ast.Import):
            assert all(not a.name.endswith(".train") for a in node.names), name
    calls = {getattr(n.func, "attr", getattr(n.func, "id", "")) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    if name != "runs":       # the one place that hands a request to the trainer
        assert not calls & {"train_seeds", "train_run", "resolve_config", "run_dir_for", "find_runs"}, name
    text = (BOOK / f"{name}.py").read_text()
    assert "parents[1]" not in text and "REPO =" not in text, f"{name} assumes where the repository is"


def _write_run(root: Path, request: runs.RunRequest, seed: int, *, pred_fn, n=160, epochs=3) -> Path:
    """A finished run directory exactly where cmlib.train would put it, with synthetic predictions."""
    from cmlib.train import run_dir_for

    cfg = request.config(seed, root)
    d = run_dir_for(cfg, root / request.runs_dir)
    d.mkdir(parents=True)
    atomic_write_json(d / "config.json", cfg.to_dict())
    A.write_status(d, status="complete", epochs_completed=epochs, best_epoch=epochs, wall_time_s=3.0,
                   stopped_reason=f"{epochs} epochs")
    A.write_history(d / "history.csv", [dict(epoch=e, loss=1.0 / e, val_loss=1.2 / e, lr=1e-3, epoch_time_s=1.0,
                                             elapsed_s=float(e)) for e in range(1, epochs + 1)])
    rng = np.random.default_rng(seed)
    preds = {}
    for s, m in (("train", n), ("val", n // 4), ("test", n // 4)):
        true = rng.normal(14.1, 0.3, m)
        preds[s] = M.Predictions(np.arange(m), true, pred_fn(true, rng), z=rng.uniform(0.05, 1.0, m))
    A.write_predictions(d / "predictions.csv", preds)
    met = {s: M.evaluate(p) for s, p in preds.items()}
    met["loss"] = {"train_last": 0.3, "val_last": 0.4, "train_at_best": 0.3, "val_best": 0.4, "best_epoch": epochs,
                   "epochs_completed": epochs}
    met["predicted_with"] = "last"
    atomic_write_json(d / "metrics.json", met)
    atomic_write_json(d / "env.json", {"machine": {"summary": "test machine"}, "cmlib_version": "0"})
    return d


def _good(true, rng):
    return true + rng.normal(0, 0.08, true.size)


def _flat(true, rng):
    return np.full(true.size, 14.1) + rng.normal(0, 0.004, true.size)


@pytest.fixture
def book_root(tmp_path, tiny_h5):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "tiny.h5").write_bytes(Path(tiny_h5).read_bytes())
    return tmp_path


def test_a_run_in_another_precision_is_the_same_experiment(book_root, monkeypatch):
    """bf16 and float32 differ by round-off only: a page that asks for bf16 seeds takes a float32 run for a
    seed without a bf16 one (exact runs first), the run's own record says which it is, where an unfinished
    seed stands is read from either precision, and training trains only the seeds missing in both."""
    import cmlib.train as T
    from cmlib import config as C

    bf16 = runs.RunRequest("basic", "data/tiny.h5", 3, (0, 1, 2), {"precision": "bfloat16"}, runs_dir="results/runs")
    fp32 = runs.RunRequest("basic", "data/tiny.h5", 3, (0, 1, 2), {"precision": "float32"}, runs_dir="results/runs")
    other = runs.RunRequest("basic", "data/tiny.h5", 3, (0, 1, 2), {"precision": "float32", "lr": 5e-4},
                            runs_dir="results/runs")
    _write_run(book_root, bf16, 0, pred_fn=_good)
    _write_run(book_root, fp32, 0, pred_fn=_flat)           # seed 0 exists in both: the exact one wins
    _write_run(book_root, fp32, 1, pred_fn=_good)
    _write_run(book_root, other, 2, pred_fn=_good)          # another recipe never counts
    found, other_data = runs.find(bf16, book_root)
    assert not other_data and [r.seed for r in found] == [0, 1]
    assert [r.config["precision"] for r in found] == ["bfloat16", "float32"]
    assert [r.config["precision"] for r in runs.find(fp32, book_root)[0]] == ["float32", "float32"]
    # said per seed wherever the seeds differ; a remedy (here: any other set of runs) in other arithmetic says so
    assert pages.precision_words(found) == "bfloat16 (seed 0), float32 (seed 1)"
    assert pages.precision_words(found[1:]) == "float32" and pages.precision_words([]) == "float32"
    assert pages.precision_note(found[1:], found[:1]) == ("; its runs in float32, the recipe's runs in bfloat16, "
                                                          "which changes a run by round-off only")
    assert pages.precision_note(found[1:], found[1:]) == ""
    assert comparison._precision_aside({"fair_remedies_precision": {"X (remedy: y)": ["float32"]},
                                        "fair_precisions": ["bfloat16"]}) == \
        " (the remedy ran in float32, the recipe's own runs in bfloat16: a difference of round-off only)"
    assert comparison._precision_aside({"fair_remedies_precision": {}}) == ""
    assert C.ROUND_OFF_FIELDS == ("precision",)
    # an interrupted float32 seed 2 is where the bf16 request's seed 2 stands
    d = bf16.config(2, book_root).run_dir(book_root / "results/runs")
    d2 = C.round_off_variants(bf16.config(2, book_root))[0].run_dir(book_root / "results/runs")
    assert not d.exists() and d2 != d
    d2.mkdir(parents=True)
    A.write_status(d2, status="running", epochs_completed=7)
    assert runs.seed_states(bf16, book_root)[2] == {"state": "in progress", "epoch": 7}
    # training: only seed 2, in this machine's precision (float32 without bf16 units)
    monkeypatch.setattr(C, "precision_for_this_machine", lambda p: "float32" if p == "bfloat16" else p)
    left = runs.to_train(bf16, book_root)
    assert left.seeds == (2,) and left.overrides["precision"] == "float32"
    calls = []
    monkeypatch.setattr(T, "train_seeds", lambda model, data, **kw: calls.append(kw) or [])
    got = runs.train(bf16, book_root)
    assert [c["seeds"] for c in calls] == [[2]] and calls[0]["precision"] == "float32"
    assert [r.seed for r in got] == [0, 1]
    monkeypatch.setattr(C, "precision_for_this_machine", lambda p: p)      # with bf16 units: as planned
    assert runs.to_train(bf16, book_root).overrides["precision"] == "bfloat16"
    import shutil
    shutil.rmtree(d2)                                                      # seed 2 finished in float32
    _write_run(book_root, fp32, 2, pred_fn=_good)
    assert runs.to_train(bf16, book_root) is None


def test_precision_for_this_machine(monkeypatch):
    from cmlib import config as C
    from cmlib import hardware

    monkeypatch.setattr(hardware, "has_bf16_hardware", lambda: False)
    assert [C.precision_for_this_machine(p) for p in ("bfloat16", "float32", "auto")] == ["float32"] * 3
    monkeypatch.setattr(hardware, "has_bf16_hardware", lambda: True)
    assert [C.precision_for_this_machine(p) for p in ("bfloat16", "float32", "auto")] == ["bfloat16", "float32",
                                                                                          "bfloat16"]


def test_a_planned_bf16_run_is_shown_with_a_command_that_runs_well_anywhere(monkeypatch):
    """A page's command for a bf16 plan says --precision auto: bf16 where there are bf16 units, float32 where
    bf16 would be emulated (many times slower); what the pages accept either way."""
    from cmlib import config as C
    from cmlib import hardware
    from cmlib.book.runs import RunRequest

    req = RunRequest(model="resnet50v2", data="data/x.h5", epochs=30, seeds=(0, 1, 2),
                     overrides={"lr": 0.001, "precision": "bfloat16"}, runs_dir="results/runs")
    cmd = req.command()
    assert cmd == ("cmlib train --model resnet50v2 --data data/x.h5 --epochs 30 --seeds 0-2 --lr 0.001 "
                   "--precision auto --runs-dir results/runs")
    for units, resolved in ((False, "float32"), (True, "bfloat16")):      # what --precision auto trains
        monkeypatch.setattr(hardware, "has_bf16_hardware", lambda units=units: units)
        assert C.resolve_precision("auto") == resolved
    f32 = RunRequest(model="efficientnetb7", data="d.h5", epochs=3, seeds=(0,), overrides={"precision": "float32"})
    assert f32.command().endswith("--precision float32")


def test_bf16_on_hardware_without_bf16_units_warns_plainly(monkeypatch, capsys):
    import warnings

    from cmlib import cli, hardware
    from cmlib.errors import EmulatedPrecisionWarning
    from cmlib.train.engine import warn_if_bf16_is_emulated

    monkeypatch.setattr(hardware, "has_bf16_hardware", lambda: False)
    with pytest.warns(EmulatedPrecisionWarning, match="--precision auto"):
        assert warn_if_bf16_is_emulated("bfloat16") is True
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert warn_if_bf16_is_emulated("float32") is False
        monkeypatch.setattr(hardware, "has_bf16_hardware", lambda: True)
        assert warn_if_bf16_is_emulated("bfloat16") is False
    # the command line prints it as its own warning, without Python's source path, for that command only;
    # other warnings go on to the handler that was there before (here a recorder)
    seen = []
    monkeypatch.setattr(warnings, "showwarning", lambda message, *a, **k: seen.append(str(message)))

    def command(args):
        warnings.warn("emulated", EmulatedPrecisionWarning)
        warnings.warn("something else", UserWarning)
        return 0
    monkeypatch.setattr(cli, "cmd_profiles", command)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        assert cli.main(["profiles"]) == 0
        assert capsys.readouterr().err == "cmlib profiles: warning: emulated\n" and seen == ["something else"]
        warnings.warn("after the command", EmulatedPrecisionWarning)      # the plain format is gone again
    assert capsys.readouterr().err == "" and seen == ["something else", "after the command"]


def test_missing_runs_name_the_command_and_nothing_trains(book_root, monkeypatch):
    import cmlib.train as T

    monkeypatch.setattr(T, "train_seeds", lambda *a, **k: pytest.fail("a page trained"))
    monkeypatch.setattr(T, "train_run", lambda *a, **k: pytest.fail("a page trained"))
    pr = pages.find_page_runs("basic", "smoke", root=book_root, data="data/tiny.h5", epochs=2, seeds="0-1",
                              lr=5e-4)
    assert pr.how == "missing" and pr.finished == []
    cmd = "cmlib train --model basic --data data/tiny.h5 --epochs 2 --seeds 0-1 --lr 0.0005"
    assert cmd in " ".join(pr.notes)
    with pytest.raises(pages.MissingRunsError) as exc:
        pages.require_runs(pr)
    assert cmd in str(exc.value) and "train_missing True" in str(exc.value)


def test_find_page_runs_reads_runs_where_training_puts_them(book_root):
    _, req = pages.request_for("basic", "smoke", data="data/tiny.h5", epochs=3, seeds=[0, 1])
    for s in (0, 1):
        _write_run(book_root, req, s, pred_fn=_good)
    pr = pages.find_page_runs("basic", "smoke", root=book_root, data="data/tiny.h5", epochs=3, seeds=[0, 1])
    assert pr.how == "trained" and [r.seed for r in pr.finished] == [0, 1]
    # another configuration is another run: not found
    other = pages.find_page_runs("basic", "smoke", root=book_root, data="data/tiny.h5", epochs=4, seeds=[0, 1])
    assert other.finished == []


# ---------------------------------------------------------------- verdicts and tables

def test_verdict_flags_a_constant_and_a_mean_like_model():
    rng = np.random.default_rng(1)
    train = M.Predictions(np.arange(400), rng.normal(14, 0.3, 400), np.zeros(400))
    true = rng.normal(14, 0.3, 200)
    test = lambda pred: M.Predictions(np.arange(200), true, pred)  # noqa: E731
    base = M.mean_predictor(train, test(true))
    assert np.all(base.pred == pytest.approx(train.true.mean()))
    flat = M.learning_verdict(test(np.full(200, 13.47)), base)
    assert not flat["learned"] and "barely vary" in flat["reason"]
    noisy = M.learning_verdict(test(rng.normal(14, 0.1, 200)), base)      # varies, but ignores the truth
    assert not noisy["learned"] and noisy["reason"].startswith(f"its test std(x) {noisy['std']:.3f} dex is above the "
                                                               f"{noisy['reference_std']:.3f} dex of predicting the mean")
    assert noisy["reason"].endswith(f"(a model must reach {0.95 * noisy['reference_std']:.3f} dex or less)")
    close = M.learning_verdict(test(0.1 * true + 0.9 * train.true.mean() + rng.normal(0, 0.114, 200)), base)
    assert close["std"] < close["reference_std"] and not close["learned"]      # below the mean's, not by 5 %
    assert f"is not 5% below the {close['reference_std']:.3f} dex" in close["reason"]
    good = M.learning_verdict(test(true + rng.normal(0, 0.1, 200)), base)
    assert good["learned"] and good["reason"] == ""


def test_summary_rows_single_seed_have_no_spread_and_a_mean_predictor_row(book_root):
    _, req = pages.request_for("basic", "smoke", data="data/tiny.h5", epochs=3, seeds=[0])
    _write_run(book_root, req, 0, pred_fn=_flat)
    pr = pages.find_page_runs("basic", "smoke", root=book_root, data="data/tiny.h5", epochs=3, seeds=[0])
    rows = pages.summary_rows(pr)
    assert not any("±" in str(v) for r in rows for v in r.values())
    assert rows[0][""].endswith("did not learn")
    assert any(r[""].startswith("predict the training mean") for r in rows)
    assert "Did not learn" in pages.verdict_markdown(pr) and "barely vary" in pages.verdict_markdown(pr)
    t5 = comparison.table5_rows({"basic": pr})
    assert "1 seed, 3 epochs run of at most 3" in comparison.budgets_markdown({"basic": pr})
    assert t5[0]["learned?"] == "did not learn" and t5[0]["runs"].startswith("1 run")
    assert t5[-2]["model"].startswith("predict the training mean") and t5[-1]["model"] == pages.REDSHIFT_ONLY
    assert any(r[""] == pages.REDSHIFT_ONLY for r in rows)           # the floor of the images, on every page
    fair = comparison.fair_summary_rows({"basic": pr})
    assert not any("±" in str(v) for r in fair for v in r.values())
    assert {r["split"] for r in fair} == {"thesis"} and fair[0][comparison.OUTLIERS].endswith("%")


def test_findings_paragraph_is_generated_from_the_runs(book_root):
    _, req = pages.request_for("basic", "smoke", data="data/tiny.h5", epochs=3, seeds=[0])
    _write_run(book_root, req, 0, pred_fn=_good)
    _, dreq = pages.request_for("vgg16", "smoke", data="data/tiny.h5", epochs=3, seeds=[0])
    _write_run(book_root, dreq, 0, pred_fn=_flat)
    pr = {m: pages.find_page_runs(m, "smoke", root=book_root, data="data/tiny.h5", epochs=3, seeds=[0])
          for m in ("basic", "vgg16")}
    text = comparison.findings_paragraph(pr, "smoke")
    sig = pr["basic"].best.metrics["test"]["sigma"]
    assert f"{sig:.3f}" in text
    assert "ResNet152V2" in text and "0.134" in text          # the thesis's best deep model, from Table 5
    assert ("The one deep model with runs so far, VGG16, was trained under the thesis's protocol (its split, the test "
            "set doubling as validation set) for 3 epochs against the thesis's 4000 and did not learn from the "
            "images") in text
    assert "under the thesis's protocol (its split, the test set doubling as validation set), the basic CNN" in text
    assert "best of 1 run)" in text and "(s)" not in text
    # a second deep model that learned: counted, the failure named, the learner compared with the basic CNN
    _, rreq = pages.request_for("resnet50v2", "smoke", data="data/tiny.h5", epochs=3, seeds=[0])
    _write_run(book_root, rreq, 0, pred_fn=_good)
    pr["resnet50v2"] = pages.find_page_runs("resnet50v2", "smoke", root=book_root, data="data/tiny.h5", epochs=3,
                                            seeds=[0])
    text = comparison.findings_paragraph(pr, "smoke")
    assert "The 2 deep models with runs so far were trained under the thesis's protocol" in text
    assert "not as good as the basic CNN" in text or "better than the basic CNN" in text     # same split: compared
    assert "; 1 of them did not learn (VGG16); the best that learned, ResNet50V2, reaches σ = " in text
    _, dreq1 = pages.request_for("vgg16", "smoke", data="data/tiny.h5", epochs=3, seeds=[1])
    _write_run(book_root, dreq1, 1, pred_fn=_good)          # a VGG16 seed that learned becomes its best run
    pr["vgg16"] = pages.find_page_runs("vgg16", "smoke", root=book_root, data="data/tiny.h5", epochs=3, seeds=[0, 1])
    text = comparison.findings_paragraph(pr, "smoke")
    assert "for 3 epochs against the thesis's 4000; both learned, and the best, " in text
    # a deep model under the fair protocol is not compared with a basic CNN on the thesis split (other test clusters)
    _, freq = pages.request_for("resnet152v2", "smoke", data="data/tiny.h5", epochs=3, seeds=[0],
                                split="train-val-test")
    _write_run(book_root, freq, 0, pred_fn=lambda t, rng: t + rng.normal(0, 0.01, t.size))
    fair_only = {"basic": pr["basic"], "resnet152v2": pages.find_page_runs(
        "resnet152v2", "smoke", root=book_root, data="data/tiny.h5", epochs=3, seeds=[0], split="train-val-test")}
    text = comparison.findings_paragraph(fair_only, "smoke")
    assert "trained under the fair protocol (a train/validation/test split)" in text
    assert "better than the basic CNN" not in text and "not as good as the basic CNN" not in text
    assert "on other test clusters than the basic CNN's above, so not compared with it here" in text
    fair = {"rows": [{"kind": "model", "verdict": "reference", "model": "Basic CNN", "seeds": 1, "mean_seeds": 0.2,
                      "std_seeds": float("nan"), "ensemble": 0.2}], "n_test": 80, "pending": []}
    assert "the like-for-like comparison with the basic CNN follows" in comparison.findings_paragraph(fair_only, "smoke",
                                                                                                 fair=fair)
    assert (pages.counted(1, "seed"), pages.counted(2, "seed"), pages.counted(0, "run")) == ("1 seed", "2 seeds", "0 runs")


def test_count_feature_knows_the_mass_where_total_counts_do_not():
    """The one-neuron example of the CNN-fundamentals page (and its exercise) reads a cluster's own counts
    (aperture minus background, point sources masked): they correlate with the mass; an image's total counts,
    mostly background and field AGN, do not (the page's first version used them: its fit was the mean)."""
    from types import SimpleNamespace

    from cmlib import simulate as S

    cat = S.simulate(300, seed=7)
    d = SimpleNamespace(images=cat.images[..., [1, 2, 3]])           # bands 2-4, as the page loads them
    u = pages.count_feature(d)
    assert abs(u.mean()) < 1e-9 and abs(u.std() - 1.0) < 1e-9        # standardised: the exercise's alpha_max = 1
    r = np.corrcoef(u, cat.log_m500)[0, 1]
    r_total = np.corrcoef(np.log10(d.images.sum(axis=(1, 2, 3))), cat.log_m500)[0, 1]
    assert r > 0.2 and abs(r_total) < 0.15
    # the teaching pages' example: the brightest cluster that fits in the image, without a central AGN
    d = SimpleNamespace(images=d.images, n=cat.images.shape[0], catalog=cat.catalog)
    i = pages.example_cluster(d)
    r500, agn = np.asarray(cat.catalog["R500_arcmin"]), np.asarray(cat.catalog["central_agn"])
    ok = np.flatnonzero((r500 >= 2) & (r500 <= 6) & (agn == 0))
    assert i in ok and ok.size < d.n
    from cmlib import classical
    assert classical.fair_counts(d.images[i])[0] == classical.fair_counts(d.images[ok]).max()
    bare = SimpleNamespace(images=d.images[:40], n=40, catalog={})          # an imported file: the brightest
    assert pages.example_cluster(bare) == int(np.argmax(classical.fair_counts(d.images[:40])))


def test_html_table_shows_every_column_of_any_row():
    """Rows of different layouts (the thesis split has no separate validation set, the fair one has): no column of
    a later row is dropped, and a cell a row lacks reads '–', not blank."""
    html_out = pages.html_table([{"split": "thesis", "train": 7151, "test_validation": 795},
                                 {"split": "train-val-test", "train": 6356, "validation": 795, "test": 795,
                                  "_class": "x"}])
    heads = re.findall(r"<th>([^<]*)</th>", html_out)
    assert heads == ["split", "train", "test_validation", "validation", "test"]
    cells = re.findall(r"<td>([^<]*)</td>", html_out)
    assert cells == ["thesis", "7151", "795", "\u2013", "\u2013", "train-val-test", "6356", "\u2013", "795", "795"]
    assert '<tr class="x">' in html_out
    assert re.findall(r"<th>([^<]*)</th>", pages.html_table([{"a": 1, "b": 2}], columns=["b"])) == ["b"]


def test_config_rows_show_the_runs_input_shape(book_root, monkeypatch):
    monkeypatch.chdir(book_root)                       # the parameter count's cache goes under the book root
    _, req = pages.request_for("basic", "smoke", data="data/tiny.h5", epochs=3, seeds=[0], bands="all")
    _write_run(book_root, req, 0, pred_fn=_good)
    pr = pages.find_page_runs("basic", "smoke", root=book_root, data="data/tiny.h5", epochs=3, seeds=[0], bands="all")
    shape = next(r["value"] for r in pages.config_rows(pr) if r["setting"].startswith("input image shape"))
    assert shape == "(50, 50, 10)"                     # the run's, not the recipe's (50, 50, 3)
    from cmlib.models.counting import count_params

    rows = {r["setting"]: r["value"] for r in pages.config_rows(pr)}
    n = count_params(models.build("basic", (50, 50, 10)))
    assert rows["trainable parameters at this run's input (50, 50, 10)"] == f"{n / 1e6:.2f} M"
    assert n != count_params(models.build("basic", (50, 50, 3)))          # ten bands: a wider first convolution
    assert rows["optimizer"] == "adam" and rows["precision"] == "float32" and rows["label_scaling"] == "none"
    assert list((book_root / "book" / "generated" / "cache").glob("params-basic-50x50x10-*.json"))
    # the sentence above the table names the recipe's source and what the run changed in it
    assert pages.recipe_changes(pr) == ["bands all 10 (recipe: the thesis's 3)"]   # the thesis's 3 bands, not all 10
    assert pages.config_markdown(pr).endswith("this run changed bands all 10 (recipe: the thesis's 3).")
    _, deep_req = pages.request_for("resnet50v2", "smoke", data="data/tiny.h5", epochs=3, seeds=[0], optimizer="adamw",
                                    lr=1e-4)
    _write_run(book_root, deep_req, 0, pred_fn=_good)
    deep = pages.find_page_runs("resnet50v2", "smoke", root=book_root, data="data/tiny.h5", epochs=3, seeds=[0],
                                optimizer="adamw", lr=1e-4)
    assert pages.recipe_changes(deep) == ["optimizer adamw (recipe: adam)", "lr 0.0001 (recipe: 0.001)"]
    text = pages.config_markdown(deep)
    assert "The model's own recipe, as cmlib registers it, is thesis Table 4 with two choices of cmlib's: the " \
           "output starts at the mean training mass, where the thesis kept Keras's zero" in text
    assert "where the hardware has it; this run changed optimizer adamw " \
           "(recipe: adam) and lr 0.0001 (recipe: 0.001). It was trained from scratch for at most 3 epochs, where " \
           "the thesis trained 4000 from ImageNet weights" in text


# ---------------------------------------------------------------- one place for the model list

def test_committed_toc_is_generated_from_the_registry():
    assert (ROOT / "_toc.yml").read_text() == build.toc_text(profiles.LAPTOP)


def test_toc_pages_lists_every_page_once_in_reading_order():
    pages = build.toc_pages(build.toc(profiles.LAPTOP))
    assert pages[0] == "book/intro" and len(pages) == len(set(pages))
    models_at = [pages.index(f"book/generated/models/{m}") for m in profiles.LAPTOP.pages()]
    assert models_at == sorted(models_at) and pages.index("book/architectures") < min(models_at)
    assert pages.index("book/generated/results") > max(models_at) and pages[-1] == "book/cite"


def test_adding_a_model_touches_only_the_registry():
    name = "testnet-added"

    @models.register(name, display_name="TestNet", family="resnet-v2", reference="a test",
                     recipe=models.THESIS_DEEP_RECIPE, description="registered by a test")
    def _builder(input_shape, **kw):  # pragma: no cover - never built
        raise AssertionError

    try:
        assert name in profiles.page_models() and name in profiles.deep_models()
        assert f"book/generated/models/{name}" in build.toc_text(profiles.THESIS)
        assert any(j.name == f"models/{name}" and j.title.startswith("TestNet") for j in
                   build.notebook_jobs(profiles.THESIS))
        assert profiles.display_name(name) == "TestNet"
        from cmlib import plots

        assert plots.color(name) not in {plots.color(m) for m in models.available_models() if m != name}
    finally:
        models.registry._REGISTRY.pop(name, None)


# ---------------------------------------------------------------- hand-ins

def test_hand_in_and_class_table(book_root, tmp_path):
    _, req = pages.request_for("basic", "smoke", data="data/tiny.h5", epochs=3, seeds=[0, 1])
    for s in (0, 1):
        _write_run(book_root, req, s, pred_fn=_good if s == 0 else _flat)
    out = handin.hand_in("ada", root=book_root, out=tmp_path / "h" / "ada.json")
    doc = json.loads(out.read_text())
    assert doc["format"] == "cmlib-hand-in" and doc["student"] == "ada" and len(doc["runs"]) == 2
    assert {r["learned"] for r in doc["runs"]} == {True, False}
    handin.hand_in("bob", root=book_root, out=tmp_path / "h" / "bob.csv")
    rows = handin.collect(tmp_path / "h")
    assert sorted({r["student"] for r in rows}) == ["ada", "bob"] and len(rows) == 4
    table = handin.class_table(rows)
    assert len(table) == 1 and table[0]["students"] == 2 and table[0]["runs"] == 4 and table[0]["did not learn"] == 2
    with pytest.raises(InputError, match="student name"):
        handin.hand_in("../evil", root=book_root)
    with pytest.raises(InputError, match="no finished runs"):
        handin.hand_in("ada", root=tmp_path / "empty")


def test_cli_hand_in_bad_input_is_a_clear_error(tmp_path):
    out = subprocess.run([sys.executable, "-m", "cmlib.cli", "hand-in", "--student", "ada", "--root", str(tmp_path)],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "no finished runs" in out.stderr and "Traceback" not in out.stderr


# ---------------------------------------------------------------- exercises, launch links, page post-processing

def test_every_exercise_states_goals_time_command_and_range():
    for e in exercises.EXERCISES:
        md = exercises.exercise_markdown(e.label)
        assert "{exercise}" in md and f":label: {e.label}" in md
        assert "Learning goals" in md and "Prerequisites" in md and f"{e.minutes} minutes" in md
        assert "```bash" in md and "Expected:" in md and "{lo}" not in md
        assert e.lo < e.hi
        assert "gpu" not in md.lower()


def test_launch_links_are_off_until_a_url_is_set(tmp_path):
    cfg = tmp_path / "_config.yml"
    cfg.write_text((ROOT / "_config.yml").read_text())
    assert build.launch_links(tmp_path) == []
    text = cfg.read_text().replace('url: ""            # e.g.', 'url: "https://github.com/me/cmlib" #').replace(
        'binderhub_url: ""  #', 'binderhub_url: "https://mybinder.org" #')
    cfg.write_text(text)
    links = dict(build.launch_links(tmp_path))
    assert links["Binder"].format(path="notebooks/results.ipynb") == \
        "https://mybinder.org/v2/gh/me/cmlib/main?urlpath=lab/tree/notebooks/results.ipynb"


def test_finish_page_drops_inapplicable_sections_and_shows_the_worked_example():
    nb = nbformat.v4.new_notebook()
    decl = nbformat.v4.new_code_cell("declare")
    decl.outputs = [nbformat.v4.new_output("display_data", data={pages.SECTIONS_MIME: {"uncertainties": False,
                                                                                      "versus_basic": True}})]
    nb.cells = [nbformat.v4.new_markdown_cell("# Title"), decl,
                nbformat.v4.new_markdown_cell("## Uncertainties", metadata={"tags": ["section:uncertainties"]}),
                nbformat.v4.new_markdown_cell("## Versus", metadata={"tags": ["section:versus_basic"]}),
                nbformat.v4.new_code_cell("x", metadata={"tags": ["remove-input", "teach"]})]
    job = build.NotebookJob("models/basic", "architecture.ipynb", {"model": "basic"}, "Basic CNN", show_code=True)
    build.finish_page(nb, job, profiles.SMOKE)
    text = [c.source for c in nb.cells]
    assert "## Uncertainties" not in text and "## Versus" in text and text[0] == "# Basic CNN"
    assert nb.cells[1].outputs == []
    assert nb.cells[3].metadata["tags"] == ["teach", "hide-input"]
    assert "Run this page yourself" in nb.cells[-1].source


def test_sma_full_starts_where_the_window_is_full():
    y = np.array([10.0, 1, 1, 1, 1])
    s = M.sma_full(y, 3)
    assert np.isnan(s[:2]).all() and s[2] == pytest.approx(4.0) and s[4] == pytest.approx(1.0)


def test_book_root_must_hold_the_sources(tmp_path):
    with pytest.raises(InputError, match="no book sources"):
        build.prepare_root(tmp_path / "book", tmp_path)


def test_the_build_never_replaces_a_data_file_it_did_not_make(tmp_path):
    """`cmlib book` at a data path holding a user's file stops with a clear error (issue: reliability)."""
    from cmlib.book import build, profiles
    from cmlib.errors import CmlibError
    from conftest import write_tiny_file

    prof = profiles.get_profile("smoke")
    user_file = tmp_path / prof.data.path
    user_file.parent.mkdir(parents=True)
    write_tiny_file(user_file, n=20, source="lmu-import")
    before = user_file.read_bytes()
    with pytest.raises(CmlibError, match="was not made by `cmlib simulate`.*--replace-data"):
        build.ensure_data(prof, tmp_path)
    assert user_file.read_bytes() == before


def test_published_notebooks_hold_no_machine_paths(tmp_path):
    import nbformat

    from cmlib.book.build import _portable_metadata

    nb = nbformat.v4.new_notebook()
    nb.metadata["papermill"] = {"input_path": str(tmp_path / "notebooks" / "results.ipynb"),
                                "output_path": str(tmp_path / "book" / "generated" / ".results.tmp.ipynb")}
    _portable_metadata(nb, tmp_path)
    assert nb.metadata["papermill"] == {"input_path": "notebooks/results.ipynb",
                                        "output_path": "book/generated/results.ipynb"}


def test_fair_comparison_answers_the_question_from_the_runs(book_root):
    """Generated from runs on disk: who beats the basic CNN on the same test clusters, who did not learn."""
    def pr_for(model, pred_fn, seed=0, n=800):
        _, req = pages.request_for(model, "smoke", data="data/tiny.h5", epochs=3, seeds=[seed])
        _write_run(book_root, req, seed, pred_fn=pred_fn, n=n)
        return pages.find_page_runs(model, "smoke", root=book_root, data="data/tiny.h5", epochs=3, seeds=[seed])

    basic = pr_for("basic", lambda t, rng: t + rng.normal(0, 0.15, t.size))
    good = pr_for("resnet50v2", lambda t, rng: t + rng.normal(0, 0.08, t.size))
    flat = pr_for("vgg16", _flat)
    _, missing_req = pages.request_for("resnet152v2", "smoke", data="data/tiny.h5", epochs=3, seeds=[0])
    missing = pages.find_page_runs("resnet152v2", "smoke", root=book_root, data="data/tiny.h5", epochs=3, seeds=[0])
    res = comparison.fair_comparison({"basic": basic, "resnet50v2": good, "vgg16": flat, "resnet152v2": missing},
                                {"classical (fair, 10 bands)": basic.finished[0].predictions["test"]}, n_boot=300)
    by = {r["model"]: r for r in res["rows"]}
    assert by["ResNet50V2"]["verdict"] == "better" and by["ResNet50V2"]["learned"] is True
    assert by["VGG16"]["verdict"] == "worse" and by["VGG16"]["learned"] is False
    assert by["Basic CNN"]["verdict"] == "reference"
    assert by["predict the mean training mass"]["kind"] == "reference"
    assert res["pending"] == ["ResNet152V2"] and res["n_test"] == 200
    # the mass and redshift bins: the models that learned and the references, on the same test clusters
    binned = comparison.fair_binned_sets({"basic": basic, "resnet50v2": good, "vgg16": flat, "resnet152v2": missing}, res,
                                    ["classical (fair, 10 bands)"])
    assert list(binned["sets"]) == ["Basic CNN", "ResNet50V2", "predict from the redshift alone",
                                    "predict the mean training mass", "classical (fair, 10 bands)"]
    assert all(np.array_equal(p.cluster_id, binned["sets"]["Basic CNN"].cluster_id) for p in binned["sets"].values())
    assert binned["styles"] == dict.fromkeys(list(binned["sets"])[2:], "--")
    assert "did not learn from the images: VGG16 (about one mass for every cluster);" in binned["note"]
    assert "ResNet152V2" not in binned["note"]
    assert binned["colors"]["ResNet50V2"] != binned["colors"]["Basic CNN"]
    assert comparison.fair_binned_sets({}, {"rows": []})["sets"] == {}
    with pytest.raises(ValueError, match="no such reference in the fair comparison: classical, 3 bands"):
        comparison.fair_binned_sets({"basic": basic}, res, ["classical, 3 bands"])
    text = comparison.fair_answer(res)
    # the answer is a list that names every model once, in its group, with its numbers
    items = {line.split(":**")[0].removeprefix("- **"): line.split(":** ")[1]
             for line in text.splitlines() if line.startswith("- **")}
    g, b = by["ResNet50V2"], by["Basic CNN"]
    lo, hi = g["ci95"]
    assert items["Better than the basic CNN"] == (f"ResNet50V2 {g['mean_seeds']:.3f} (1 seed), "
                                                  f"{g['diff_vs_reference']:+.3f} [{lo:+.3f}, {hi:+.3f}].")
    assert f"the basic CNN scores test std(x) = {b['mean_seeds']:.3f} dex (1 seed)" in text
    assert "Cannot be told apart from it" not in items          # an empty group is left out, except "Better"
    nolearn = next(v for k, v in items.items() if k.startswith("Did not learn from the images"))
    assert nolearn.startswith("VGG16 ") and "about one mass for every cluster" in nolearn   # its own reason
    assert items["Still in the compute plan"] == "ResNet152V2."
    # a model with fewer finished seeds than it asks for is named with what is still to come
    two = pages.find_page_runs("resnet50v2", "smoke", root=book_root, data="data/tiny.h5", epochs=3, seeds=[0, 1])
    part = comparison.fair_comparison({"basic": basic, "resnet50v2": two, "resnet152v2": missing}, n_boot=100)
    assert part["still_seeds"] == ["ResNet50V2 (1 of 2 finished)"] and res["still_seeds"] == []
    assert ("- **Still in the compute plan:** ResNet152V2; the other seeds of ResNet50V2 (1 of 2 finished)."
            in comparison.fair_answer(part))
    # a comparison without rows still says what is to come
    remedy = {"rows": [], "pending": ["ResNet152V2"], "still_seeds": ["VGG16 (remedy: lr 1e-4; 2 of 3 finished)"]}
    assert comparison._still_planned(remedy) == ["ResNet152V2", "the other seeds of VGG16 (remedy: lr 1e-4; 2 of 3 "
                                                                "finished)"]
    assert comparison.fair_answer(remedy).endswith("Still in the compute plan: ResNet152V2; the other seeds of "
                                                   "VGG16 (remedy: lr 1e-4; 2 of 3 finished).")
    # the count goes into a remedy's own brackets; a model whose own name has brackets is not a remedy
    assert comparison.member_name("vgg16_remedy_lr1e-4", note="2 of 3 finished") == \
        "VGG16 (remedy: lr1e-4; 2 of 3 finished)"
    assert comparison.member_name("krippendorf2023", note="2 of 3 finished") == \
        "Krippendorf et al. (2023) (2 of 3 finished)"
    assert [len(re.findall(rf"\b{m}\b", text)) for m in ("ResNet50V2", "VGG16", "ResNet152V2")] == [1, 1, 1]
    assert [pages.and_list(x) for x in (["A"], ["A", "B"], ["A", "B", "C"], [])] == ["A", "A and B", "A, B and C", ""]
    only_worse = comparison.fair_answer(comparison.fair_comparison({"basic": basic, "vgg16": flat}, n_boot=100))
    assert "- **Better than the basic CNN:** none." in only_worse and "VGG16 " in only_worse
    assert "Still in the compute plan" not in only_worse
    # the redshift-only floor: on these clusters z says nothing of the mass, so the good model beats it
    assert by["ResNet50V2"]["vs_redshift"]["verdict"] == "better" and by[pages.REDSHIFT_ONLY]["kind"] == "reference"
    z = by[pages.REDSHIFT_ONLY]["ensemble"]
    assert (f"- **Did not learn from the images (the redshift alone scores {z:.3f} dex, and a model must do 5% better, "
            f"{0.95 * z:.3f} dex or less, to count as reading the images; each model's page") in text
    # a model a little better than the redshift alone, within the margin: its difference to it, with its interval
    # (on these clusters z knows nothing, so the verdict is set by hand: metrics' tests check the rule itself)
    vz = {"diff": -0.0114, "ci95": [-0.0203, -0.0021], "verdict": "better"}
    weak = dict(by["ResNet50V2"], learned=False, learned_rule="redshift margin",
                learned_short="not 5% better than the redshift alone", vs_redshift=vz)
    wtext = comparison.fair_answer(dict(res, rows=[weak if r is by["ResNet50V2"] else r for r in res["rows"]]))
    shown = comparison._shown_difference(weak["ensemble"], weak["ensemble"] + 0.0114)    # from the values shown
    assert (f"ResNet50V2 {weak['mean_seeds']:.3f} (1 seed; not 5% better than the redshift alone: {shown:+.3f} "
            "[-0.020, -0.002])") in wtext.split("Did not learn")[1]
    two = comparison.fair_answer(dict(res, rows=[dict(weak, seeds=2, std_seeds=0.001) if r is by["ResNet50V2"] else r
                                                 for r in res["rows"]]))
    assert (f"(2 seeds; not 5% better than the redshift alone (its ensemble {weak['ensemble']:.3f}): {shown:+.3f} "
            "[-0.020, -0.002])") in two                   # the value the threshold judged, for several seeds
    assert "(1 seed; about one mass for every cluster), " in text             # other reasons get no interval
    # a model that learned but is worse than the basic CNN has a group of its own
    meh = pr_for("resnet50", lambda t, rng: t + rng.normal(0, 0.3, t.size))
    worse = comparison.fair_answer(comparison.fair_comparison({"basic": basic, "resnet50": meh}, n_boot=100))
    assert "- **Worse, though it reads the images (it beats the prediction from the redshift alone" in worse
    assert "ResNet50 " in worse.split("Worse, though")[1]
    rows = comparison.fair_table_rows(res)
    assert [r["model"] for r in rows][0] == "ResNet50V2"
    assert next(r for r in rows if r["model"] == "VGG16")["_class"] == "not-learned"     # greyed (_static/cmlib.css)
    assert next(r for r in rows if r["model"] == "VGG16")["learned"] == "no: about one mass for every cluster"
    assert "±" not in next(r for r in rows if r["model"] == "ResNet50V2")["std(x) test, per seed"]   # one seed
    assert "no comparison is possible yet" in comparison.fair_answer(comparison.fair_comparison({"vgg16": flat}))
    # runs made on another version of the data are never compared (other clusters): pending, saying why
    other = comparison.fair_comparison({"basic": dataclasses.replace(basic, data_mismatch=True), "resnet50v2": good},
                                  n_boot=100)
    assert other["rows"] == [] and "another version of the data file" in " ".join(other["pending"])
    mixed = comparison.fair_comparison({"basic": basic, "resnet50v2": dataclasses.replace(good, data_mismatch=True)},
                                  n_boot=100)
    assert "ResNet50V2" not in {r["model"] for r in mixed["rows"]}
    assert mixed["pending"] == ["ResNet50V2 (its stored runs were made on another version of the data file)"]
    # the bar chart: every bar from the fair comparison, so on its test clusters, the failures marked
    bars, bar_colors, note = comparison.fair_bar_sets({"basic": basic, "resnet50v2": good, "vgg16": flat}, res)
    assert [b.split(" (did not")[0] for b in bars] == [r["model"] for r in res["rows"]]   # the comparison's order
    assert "VGG16 (did not learn)" in bars and "ResNet50V2" in bars and "Basic CNN" in bars
    assert pages.REDSHIFT_ONLY in bars and "predict the mean training mass" in bars
    assert bars["VGG16 (did not learn)"] is res["predictions"]["VGG16"]
    assert len(set(bar_colors.values())) == len(bar_colors) and note.startswith(f"Every bar is on the same {res['n_test']} ")
    assert comparison.fair_bar_sets({}, {"rows": [], "predictions": {}}) == ({}, {}, "")
    # cost against accuracy: GFLOPs at the runs' input, wall time per seed, std(x) of the fair comparison
    members = {"basic": basic, "resnet50v2": good, "vgg16": flat}
    pts = comparison.cost_accuracy_points(members, res, cache_folder=book_root / "cache")
    by = {p["name"]: p for p in pts}
    assert set(by) == {"basic", "resnet50v2", "vgg16"}
    assert by["resnet50v2"]["gflops"] > 10 * by["basic"]["gflops"] > 0
    assert by["basic"]["wall_h"] == pytest.approx(3.0 / 3600) and by["basic"]["hardware"] == "test machine, float32"
    # no compute_threads or cores recorded by these hand-made runs: no core-hours, times compared as wall times
    assert math.isnan(by["basic"]["core_h"]) and by["basic"]["time_h"] == by["basic"]["wall_h"]
    assert {p["time_unit"] for p in pts} == {"wall-clock hours"}
    assert by["resnet50v2"]["std_mean"] == next(r["mean_seeds"] for r in res["rows"] if r["model"] == "ResNet50V2")
    assert list((book_root / "cache").glob("gflops-resnet50v2-*.json"))
    text = comparison.cost_accuracy_markdown(pts, res)
    assert "The lowest test std(x) is ResNet50V2's" in text and "× the basic CNN's operations" in text
    rows = {r["model"]: r for r in comparison.cost_accuracy_rows(pts)}
    assert list(rows)[0] == "Basic CNN" and rows["Basic CNN"]["minus basic CNN [dex]"] == "\u2013"
    g = by["resnet50v2"]
    assert rows["ResNet50V2"]["× basic CNN's operations"] == f"{g['gflops'] / by['basic']['gflops']:.0f}×"
    assert rows["ResNet50V2"]["minus basic CNN [dex]"] == f"{g['std_mean'] - by['basic']['std_mean']:+.3f}"
    from cmlib import plots
    assert len(plots.plot_cost_accuracy(pts, mean_predictor=0.3).axes) == 2
    # an ensemble that learned although one of its seeds did not: the answer names that seed
    assert all(r["seeds_not_learned"] == [] for r in res["rows"] if r["kind"] == "model")
    pr_for("resnet50v2", _flat, seed=1)
    two = pages.find_page_runs("resnet50v2", "smoke", root=book_root, data="data/tiny.h5", epochs=3, seeds=[0, 1])
    half = comparison.fair_comparison({"basic": basic, "resnet50v2": two}, n_boot=100)
    h = next(r for r in half["rows"] if r["model"] == "ResNet50V2")
    assert h["learned"] is True and h["seeds_not_learned"] == [1]
    assert f"ResNet50V2 {comparison._seeds_value(h)} (2 seeds; seed 1 did not learn), " in comparison.fair_answer(half)


def test_fair_answer_edge_cases():
    """The lead and the headings stay true: a basic CNN that did not learn, no redshift-only fit, one run."""
    nan = float("nan")
    basic = {"model": "Basic CNN", "kind": "model", "verdict": "reference", "seeds": 3, "mean_seeds": 0.30,
             "std_seeds": nan, "ensemble": 0.30, "learned": False, "learned_short": "about one mass for every cluster"}
    deep = {"model": "VGG16", "kind": "model", "verdict": "worse", "seeds": 1, "mean_seeds": 0.32, "std_seeds": nan,
            "ensemble": 0.32, "learned": True, "learned_short": "", "ci95": [0.01, 0.03], "diff_vs_reference": 0.02}
    text = comparison.fair_answer({"rows": [basic, deep], "pending": [], "n_test": 50})
    assert "0.300 dex (3 seeds, the ensemble of its seeds 0.300 dex)" in text        # its seeds, not "1 seed"
    assert "it did not learn from the images itself (about one mass for every cluster)" in text
    assert "- **Worse, though it reads the images (it beats predicting the mean training mass):** VGG16" in text
    # a one-seed row: its interval resamples clusters only, which the answer says, with the largest seed spread
    assert text.endswith("- **What the intervals leave out:** each interval resamples the 50 test clusters with both "
                         "ensembles held fixed, so none includes how much training with other seeds would change the "
                         "result; that matters most for the 1 row resting on one seed.")
    spread = dict(deep, model="Krippendorf", seeds=3, std_seeds=0.034)
    assert comparison._seed_caveat([basic, deep, spread], 50).endswith(
        "(over seeds, the standard deviation reaches 0.034 dex here, for Krippendorf).")
    assert comparison._seed_caveat([basic, spread], 50) == ""              # every row has several seeds
    alone = comparison.fair_answer({"rows": [dict(basic, learned=True)], "pending": ["ResNet50"], "n_test": 50})
    assert "Each model below" not in alone and "No other model has finished runs yet." in alone
    assert alone.endswith("- **Still in the compute plan:** ResNet50.") and "Better than" not in alone
    pts = [{"model": "Basic CNN", "name": "basic", "gflops": 0.002, "wall_h": 0.1, "core_h": 0.2, "time_h": 0.1,
            "time_unit": "wall-clock hours", "hardware": "cpu", "epochs": 9, "std_mean": 0.24, "std_sd": 0.0,
            "seeds": 1},
           {"model": "VGG16", "name": "vgg16", "gflops": 1.4, "wall_h": nan, "core_h": nan, "time_h": nan,
            "time_unit": "wall-clock hours", "hardware": "cpu", "epochs": 9, "std_mean": 0.23, "std_sd": 0.0,
            "seeds": 1}]
    row = comparison.cost_accuracy_rows(pts)[1]
    assert row["hours per seed"] == row["× basic CNN's time"] == "\u2013" and row["× basic CNN's operations"] == "700×"
    # a deep run on one of two cores (1.7 h wall, 1.7 core-hours) against the basic CNN on both (0.1 h, 0.2):
    # compared in core-hours, 8.5×, not the 17× of the wall times
    cpu = [dict(pts[0], time_h=0.2, time_unit="CPU core-hours"),
           dict(pts[1], wall_h=1.7, core_h=1.7, time_h=1.7, time_unit="CPU core-hours")]
    row = comparison.cost_accuracy_rows(cpu)[1]
    assert row["× basic CNN's time"] == "8.5×" and row["CPU core-hours per seed"] == "1.7"
    assert "compared in CPU core-hours" in comparison.cost_accuracy_markdown(cpu, {})
    assert "predate that record" not in comparison.cost_accuracy_markdown(cpu, {})     # no counts: nothing claimed
    # which runs recorded their threads, and how much the machine's load alone changed one recipe's epoch time
    cpu = [dict(cpu[0], runs=3, threads_recorded=0, epoch_s={"cpu": [3.0, 3.3, 6.0]}),
           dict(cpu[1], runs=1, threads_recorded=1, epoch_s={"cpu": [100.0]})]
    text = comparison.cost_accuracy_markdown(cpu, {})
    assert ("3 of these 4 runs predate that record: they computed with all the machine's cores, TensorFlow's "
            "default, and are charged for all of them.") in text
    assert comparison.load_spread(cpu) == (2.0, "Basic CNN")
    assert ("seeds of Basic CNN, with one recipe on the same hardware, took up to 2.0× as long per epoch as each "
            "other") in text
    cpu[0]["threads_recorded"] = 0; cpu[1]["threads_recorded"] = 0
    assert "None of these 4 runs recorded its threads (they predate that record)" in \
        comparison.cost_accuracy_markdown(cpu, {})
    cpu[0]["epoch_s"] = {"cpu": [3.0], "gpu": [1.0]}           # one seed per hardware: no spread to show
    assert comparison.load_spread(cpu) is None and "shared machine" not in comparison.cost_accuracy_markdown(cpu, {})
    assert "compared as wall times" in comparison.cost_accuracy_markdown(pts, {})
    assert "nan" not in comparison.cost_accuracy_markdown(pts, {}) and "700× the basic CNN's operations per image." \
        in comparison.cost_accuracy_markdown(pts, {})


def test_training_benchmark_rows_read_the_benchmark(tmp_path):
    f = tmp_path / "training.json"
    assert training_reports.training_benchmark_rows(f)[0] == [] and "bench_training.py" in training_reports.training_benchmark_rows(f)[1]
    f.write_text(json.dumps({
        "created": "2026-11-27T10:00:00+00:00", "overhead_target": 1.15, "bf16_speedup": {"resnet50v2": 2.1},
        "machine": {"cpu_cores": 2, "cpu_model": "AMD EPYC", "cpu_bf16_units": ["avx512_bf16"], "backend": "tensorflow",
                    "gpus": [], "loadavg_before": [1.1], "loadavg_after": [1.3]},
        "rows": [{"model": "resnet50v2", "precision": p, "input_shape": [50, 50, 3], "epoch_step_only_s": s,
                  "epoch_whole_s": s * o, "overhead": o} for p, s, o in (("float32", 200.0, 1.05),
                                                                          ("bfloat16", 95.0, 1.3))]}))
    rows, text = training_reports.training_benchmark_rows(f)
    assert [r["precision"] for r in rows] == ["float32", "bfloat16"] and rows[1]["bf16 speed-up"] == "×2.10"
    assert rows[1]["_class"] == "over-target" and rows[0]["_class"] == ""
    assert rows[1]["overhead"] == "×1.30 (over the target)" and rows[0]["overhead"] == "×1.05"
    assert "avx512_bf16" in text and "2 CPU cores" in text and "71×71" not in text
    assert "load average 1.1 before and 1.3 after" in text
    assert "interleaved rounds" not in text
    # small CNNs remeasured in rounds (bench_training.py --merge): said, with when
    b = json.loads(f.read_text())
    b["rows"].append({"model": "krippendorf2023", "precision": "float32", "input_shape": [50, 50, 10],
                      "epoch_step_only_s": 2.2, "epoch_whole_s": 2.4, "overhead": 1.09, "rounds": 3,
                      "timed_epochs": 7, "measured": "2026-11-27T17:00:05+00:00", "load": [0.8, 1.0, 1.2]})
    f.write_text(json.dumps(b))
    rows, text = training_reports.training_benchmark_rows(f)
    assert "load average 0.8)" in text and "part by part" not in text
    # the parts of a small CNN's epoch (benchmarks/epoch_parts.py), when measured
    part = {"median": 0.1, "min": 0.1, "max": 0.1}
    (tmp_path / "epoch_parts.json").write_text(json.dumps({"created": "2026-11-27T17:10:00+00:00", "rows": [
        {"model": "basic", "precision": "float32", "repeats": 4, "fit_epoch_spread": 0.79,
         "fit_epoch_s": {"median": 2.0, "min": 1.43, "max": 2.56}, "evaluate_val_s": part, "diagnostics_s": part,
         "checkpoint_s": part, "input_only_s": part, "fixed_overhead": 0.10}]}))
    rows, text = training_reports.training_benchmark_rows(f)
    assert "varied by up to 79%" in text and "×1.10–1.10" in text and "epoch 1.43–2.56 s" in text
    assert "Krippendorf et al. (2023) 3 rounds of 7 timed epochs (2026-11-27 17:00 UTC, load average 0.8)" in text
    # the thesis's padded input beside it (bench_training.py --input thesis)
    (tmp_path / "training_thesis_input.json").write_text(json.dumps({
        "created": "2026-11-27T11:00:00+00:00", "machine": {"loadavg_before": [1.5], "loadavg_after": [1.9]},
        "rows": [{"model": "resnet50v2", "precision": "float32", "input_shape": [71, 71, 3],
                  "epoch_step_only_s": 190.0, "epoch_whole_s": 200.0, "overhead": 1.05}]}))
    rows, text = training_reports.training_benchmark_rows(f)
    assert [r["input"] for r in rows] == ["50×50×3", "50×50×3", "50×50×10", "71×71×3"]
    assert "×2.00 faster for ResNet50V2" in text and "load average 1.5–1.9" in text
    # EfficientNet-B7's fair recipe keeps float32 (profiles.FAIR_FLOAT32): its own precision's row is compared
    b = json.loads(f.read_text())
    b["rows"] += [{"model": "efficientnetb7", "precision": p, "input_shape": [50, 50, 3], "epoch_step_only_s": s,
                   "epoch_whole_s": s, "overhead": 1.0} for p, s in (("float32", 400.0), ("bfloat16", 520.0))]
    f.write_text(json.dumps(b))
    t = json.loads((tmp_path / "training_thesis_input.json").read_text())
    t["rows"].append({"model": "efficientnetb7", "precision": "float32", "input_shape": [71, 71, 3],
                      "epoch_step_only_s": 800.0, "epoch_whole_s": 810.0, "overhead": 1.01})
    (tmp_path / "training_thesis_input.json").write_text(json.dumps(t))
    text = training_reports.training_benchmark_rows(f)[1]
    assert "×2.00 faster for ResNet50V2, ×2.00 faster for EfficientNet-B7 (float32)" in text
    b["rows"].append({"model": "vgg16", "precision": "float32", "input_shape": [71, 71, 3], "epoch_step_only_s": 191.8,
                      "epoch_whole_s": 167.5, "overhead": 0.87})
    f.write_text(json.dumps(b))
    assert training_reports.training_benchmark_rows(f)[0][-3]["overhead"] == "×0.87 (below 1: timing noise)"


def test_kernels_text_reads_the_kernel_benchmark(tmp_path):
    f = tmp_path / "kernels.json"
    assert "bench_kernels.py" in training_reports.kernels_text(f)
    f.write_text(json.dumps({
        "created": "2026-11-28T10:59:50+00:00", "settings": {"steps": 8, "rounds": 3, "batch": 32,
                                                             "input": "50x50x3 + redshift", "precision": "float32"},
        "machine": {"cpu_cores": 2, "cpu_model": "AMD EPYC", "cpu_flags_avx512": [], "cpu_bf16_units": []},
        "rows": [{"loadavg": 1.4}, {"loadavg": 1.7}],
        "summary": {"resnet50": {"median_s_per_step": {"eigen": 1.92, "onednn": 0.60, "onednn+xla": 2.89},
                                 "eigen_over_onednn": 3.2, "xla_over_onednn": 4.8}}}))
    text = training_reports.kernels_text(f, training=None)
    assert "ResNet50 training step took 0.60 s with oneDNN, 1.92 s without (3.2× as long)" in text
    assert "2.89 s with XLA on top (4.8× as long)" in text
    assert "no AVX-512" in text and "load average 1.4–1.7" in text and "3 interleaved rounds of 8 steps" in text
    # measured on another host than the training benchmark (other bf16 units): said, with what it means for bf16
    assert "another host" not in training_reports.kernels_text(f, training=None)
    t = tmp_path / "training.json"
    t.write_text(json.dumps({"machine": {"cpu_bf16_units": ["avx512_bf16"]}}))
    text = training_reports.kernels_text(f, training=t)
    assert "This ran on another host than the epoch-time table above (bf16 units: none here, avx512_bf16 there;" in text
    assert "runs on such a host train in float32" in text
    t.write_text(json.dumps({"machine": {"cpu_bf16_units": []}}))
    assert "another host" not in training_reports.kernels_text(f, training=t)
    t.write_text(json.dumps({"machine": {}}))                      # an older file without the key: cannot tell
    assert "another host" not in training_reports.kernels_text(f, training=t)


def test_recipe_comparison_needs_both_runs(book_root):
    rc = training_reports.recipe_comparison("laptop", root=book_root, data="data/tiny.h5")
    assert rc["panels"] == {} and len(rc["notes"]) == 2          # ResNet50V2 and VGG16: nothing on disk yet
    assert all("not started" in n for n in rc["notes"])
    assert rc["notes"][0].startswith("ResNet50V2: thesis optimisation (Adam 1e-3, constant) (seed 0: not started); "
                                     "the chosen recipe (seed 0: not started")
    # both ResNet50V2 runs on disk: a panel, two rows and a verdict with the paired test-set difference
    _, chosen = pages.request_for("resnet50v2", "laptop", data="data/tiny.h5")
    _, thesis_opt = pages.request_for("resnet50v2", "laptop", experiment="resnet50v2_thesis_opt", data="data/tiny.h5")
    dc = _write_run(book_root, chosen, 0, pred_fn=_good, n=800)
    dt = _write_run(book_root, thesis_opt, 0, pred_fn=_flat, n=800)
    rc = training_reports.recipe_comparison("laptop", root=book_root, data="data/tiny.h5")
    assert list(rc["panels"]) == ["ResNet50V2"] and len(rc["rows"]) == 2 and len(rc["notes"]) == 1
    assert rc["floors"]["ResNet50V2"] == pages.history_references(rc["panels"]["ResNet50V2"]["chosen: AdamW, warm-up "
                                                                                             "+ cosine"])
    assert [k for _, _, k in rc["floors"]["ResNet50V2"]] == ["mean", "redshift"]
    assert [r["stopped by"] for r in rc["rows"]] == ["budget end", "schedule end"]
    (v,) = rc["verdicts"]
    assert v.startswith("**ResNet50V2**") and "the chosen recipe is better at this budget" in v
    assert "over the 200 test clusters" in v
    # the thesis's constant rate cut by the budget at its best epoch did not converge; the cosine schedule ended
    assert "still improving at its last epoch when the budget ended" in v and "(schedule end)" in v
    assert "Only the chosen recipe's run learned from the images." in v and "not a better score" in v
    # neither run reads the images: the comparison says it cannot decide whether either recipe makes the model learn
    _predict_from_z(dc)
    _predict_from_z(dt)
    (v,) = training_reports.recipe_comparison("laptop", root=book_root, data="data/tiny.h5")["verdicts"]
    assert "**Neither run learned from the images at this budget** (the chosen recipe: test std(x) " in v
    assert "the thesis optimisation: test std(x) " in v and "; the redshift alone scores " in v
    assert v.count("predicts from the redshift alone") == 2          # each run's own reason, not one for both
    assert "cannot show that either recipe makes the model learn" in v


def test_run_inventory_says_what_was_run_and_what_is_missing(book_root):
    plan, req = pages.request_for("basic", "smoke", data="data/tiny.h5")
    assert len(req.seeds) >= 2
    d = _write_run(book_root, req, req.seeds[0], pred_fn=_good, epochs=3)
    rows = {r["model"]: r for r in pages.run_inventory_rows("smoke", book_root, data="data/tiny.h5")}
    assert set(rows) == {profiles.display_name(m) for m in profiles.get_profile("smoke").pages()}
    basic = rows[profiles.display_name("basic")]
    assert basic["seeds"] == f"1 of {len(req.seeds)}" and basic["epochs"] == f"3 of {req.epochs}"
    assert basic["stopped by"] == "budget end"                     # constant lr, stopped by the epoch budget
    assert basic["still missing"] == f"seed {req.seeds[1]} not started"   # a finished seed is not 'missing'
    std = A.Run.load(d).metrics["test"]["std"]
    assert basic["test std(x) [dex]"] == f"{std:.3f}"
    others = [r for m, r in rows.items() if m != profiles.display_name("basic")]
    assert all(r["source"] == "not run yet" and r["seeds"].startswith("0 of") for r in others)
    # early stopping is recognised from the run's recorded reason
    A.write_status(d, status="complete", epochs_completed=3, best_epoch=1, wall_time_s=3.0,
                   stopped_reason="early stopping at epoch 3: no improvement")
    assert pages.stop_kind(A.Run.load(d)) == "early stopping"
    md = pages.run_inventory_markdown("smoke", book_root, data="data/tiny.h5")
    assert md.count("\n| ") == len(rows) + 1 and "may have been cut while still improving" in md
    assert basic["compute"] == "3 s on test machine, float32"
    def where(env):
        return pages._segment_hardware(A.compute_segments(env, 0)[-1])
    assert where({"machine": {"cpu_cores": 2, "gpu_names": []}}) == "2 CPU cores"
    assert where({"machine": {"cpu_cores": 16, "gpu_names": ["NVIDIA H100"]}}) == "NVIDIA H100"
    assert where({"machine": {"cpu_cores": 2, "gpu_names": []}, "compute_threads": 1}) == "1 of 2 CPU cores"
    # the laptop profile's stored experiments (the compute plan) follow the models, named by their label
    lap = pages.run_inventory_rows("laptop", book_root, data="data/tiny.h5")
    n_pages = len(profiles.get_profile("laptop").pages())
    assert [r["kind"] for r in lap] == ["model"] * n_pages + ["experiment"] * (len(lap) - n_pages)
    names = [r["model"] for r in lap if r["kind"] == "experiment"]
    assert "ResNet50V2 — thesis protocol (71x71, test set as validation set)" in names
    assert all(r["source"] == "not run yet" and r["compute"] == "–" for r in lap[n_pages:])
    assert "| kind |" not in pages.run_inventory_markdown("laptop", book_root, data="data/tiny.h5")
    assert "of the %d stored experiments" % len(names) in pages.run_inventory_markdown("laptop", book_root,
                                                                                      data="data/tiny.h5")


def test_pages_execute_two_at_a_time_and_a_failure_stops_the_rest(tmp_path, monkeypatch):
    """execute_notebooks runs pages in parallel (CMLIB_BOOK_WORKERS), keeps the profile's order in what it
    returns, and on a failing page starts no new page, keeps the failed notebook and raises its error."""
    import threading
    import time as _time

    import nbformat
    import papermill as pm

    from cmlib.errors import CmlibError

    (tmp_path / "notebooks").mkdir()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Page")])
    nbformat.write(nb, tmp_path / "notebooks" / "page.ipynb")
    jobs = [build.NotebookJob(f"p{i}", "page.ipynb", {"i": i}) for i in range(6)]
    monkeypatch.setattr(build, "notebook_jobs", lambda prof: jobs)
    monkeypatch.setattr(build, "pending_runs_page", lambda *a: None)
    running, peak, started, lock = [0], [0], [], threading.Lock()

    def fake_execute(src, dst, parameters=None, **kw):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
            started.append(parameters["i"])
        _time.sleep(0.3)
        with lock:
            running[0] -= 1
        nbformat.write(nb, dst)
        if parameters["i"] == fail_at[0]:
            raise pm.PapermillExecutionError(0, 3, "x = 1", "ValueError", "boom", [])

    monkeypatch.setattr(pm, "execute_notebook", fake_execute)
    prof = profiles.get_profile("smoke")
    fail_at = [None]
    monkeypatch.setenv("CMLIB_BOOK_WORKERS", "2")
    assert build.execute_notebooks(prof, tmp_path, force=True) == [f"p{i}" for i in range(6)]
    assert peak[0] == 2
    fail_at[0], started[:] = 1, []
    with pytest.raises(CmlibError, match="notebook 'p1'.*boom"):
        build.execute_notebooks(prof, tmp_path, force=True)
    assert (tmp_path / "book" / "generated" / "p1.FAILED.ipynb").exists()
    assert len(started) < 6                 # the pages after the failure were not started
    monkeypatch.setenv("CMLIB_BOOK_WORKERS", "zero")
    with pytest.raises(InputError, match="CMLIB_BOOK_WORKERS"):
        build.execute_notebooks(prof, tmp_path, force=True)


def test_a_page_whose_kernel_hangs_is_executed_once_more_then_fails(tmp_path, monkeypatch):
    import nbformat
    import papermill as pm
    from nbclient.exceptions import CellTimeoutError

    from cmlib.errors import CmlibError

    (tmp_path / "notebooks").mkdir()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Page")])
    nbformat.write(nb, tmp_path / "notebooks" / "page.ipynb")
    monkeypatch.setattr(build, "notebook_jobs", lambda prof: [build.NotebookJob("p", "page.ipynb", {})])
    monkeypatch.setattr(build, "pending_runs_page", lambda *a: None)
    calls = []

    def flaky(src, dst, **kw):
        calls.append(kw["extra_arguments"])
        if len(calls) <= hangs[0]:
            raise CellTimeoutError("A cell timed out while it was being executed, after 600 seconds.")
        nbformat.write(nb, dst)

    monkeypatch.setattr(pm, "execute_notebook", flaky)
    prof = profiles.get_profile("smoke")
    hangs = [1]
    assert build.execute_notebooks(prof, tmp_path, force=True, workers=1) == ["p"] and len(calls) == 2
    # the first execution keeps the kernel's log quiet, the retry shows it (the cause of a second failure)
    assert calls == [build.KERNEL_ARGS, []] and build.KERNEL_ARGS == ["--IPKernelApp.log_level=CRITICAL"]
    calls.clear()
    hangs[0] = 2
    with pytest.raises(CmlibError, match="did not finish twice"):
        build.execute_notebooks(prof, tmp_path, force=True, workers=1)
    assert len(calls) == 2 and not list((tmp_path / "book" / "generated").glob(".*.tmp.ipynb"))


def test_precision_rows_read_the_check(tmp_path):
    f = tmp_path / "precision.json"
    rows, text = training_reports.precision_rows(f)
    assert rows == [] and "precision_check.py --train" in text
    side = {"seeds": [0, 1, 2], "values": [0.23, 0.235, 0.227], "mean": 0.2307, "std": 0.004}
    f.write_text(json.dumps({"date": "2026-11-27T15:52:32+00:00", "missing": ["resnet50v2"], "rows": [
        {"model": "basic", "split": "thesis", "measure": "std", "float32": side, "bfloat16": {**side, "mean": 0.228, "std": 0.0065},
         "diff": -0.0027, "seed_spread": 0.0065, "agree": True, "paired_diffs": {"10": 0.002, "2": -0.0052},
         "paired_ci95": {"2": [-0.012, 0.0021]},
         "residual_corr": {"same_seed": {"2": 0.96, "10": 0.90},
                           "other_seeds": {"float32": {"2-10": 0.95}, "bfloat16": {"2-10": 0.93}}}},
        {"model": "vgg16", "measure": "std", "float32": {**side, "seeds": [0], "std": None},
         "bfloat16": {**side, "seeds": [0], "std": None}, "diff": 0.05, "seed_spread": None, "agree": None},
        {"model": "resnet50v2", "measure": "std", "float32": side, "bfloat16": side, "diff": -0.002,
         "seed_spread": 0.001, "agree": False}]}))
    rows, text = training_reports.precision_rows(f)
    assert rows[0]["float32 test std(x) [dex]"] == "0.231 ± 0.004 (3 seeds)" and rows[0]["difference"] == "-0.003"
    assert rows[0]["split"] == "thesis" and "split" not in rows[1]        # older check files hold no split
    col = "difference within the seed spread"
    assert rows[0][col] == "yes" and rows[1][col] == "– (one seed)" and rows[2][col] == "no (2.0× the spread)"
    assert rows[2]["_class"] == "over-target" and rows[0]["_class"] == ""
    assert "For ResNet50V2 the precisions differ by more than its seeds do: bf16 is 0.002 dex lower (better)" in text
    assert "For Basic CNN" not in text
    assert rows[1]["bfloat16 test std(x) [dex]"] == "0.231 (1 seed)" and "ResNet50V2" in text
    col = "same seed, bf16 − fp32 [95 % interval]"
    assert rows[0][col] == "seed 2 -0.005 [-0.012, +0.002], seed 10 +0.002" and rows[1][col] == "–"
    corr = "residuals correlate: same seed / two seeds"
    assert rows[0][corr] == "0.93 / 0.94" and rows[1][corr] == "–"


def test_head_probe_is_read_for_its_model_only_and_said_from_its_numbers(tmp_path):
    """The EfficientNet-B7 head probe (benchmarks/effnet_head.py): read for its model only, each variant's worst
    and last share of dead head units in the text, the variants that kept the head alive named; the plot draws
    one line per variant; the benchmark merges a variant's row into the file in place of the old one."""
    import importlib.util

    from cmlib import plots

    def rows(dead, loss=0.112):
        return [dict(step=10 * i, head_dead=d, head_shift=-d, head_spread=2.0, pred_std=0.01, feature_spread=0.8,
                     **({"loss": loss} if i else {})) for i, d in enumerate(dead)]
    b = {"benchmark": "effnet_head", "model": "efficientnetb7", "steps": 30, "every": 10, "variants": [
        {"variant": "fair", "description": "the fair recipe", "lr_first_epoch": 3.3e-4, "head": "flatten",
         "rows": rows([0.0, 0.3, 0.7, 0.5])},
        {"variant": "lr/10", "description": "a tenth of the rate", "lr_first_epoch": 3.3e-5, "head": "flatten",
         "rows": rows([0.0, 0.0, 0.02, 0.0], loss=0.113)}]}
    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    assert training_reports.head_probe("efficientnetb7", tmp_path) is None
    (tmp_path / "benchmarks" / "results" / "effnet_head.json").write_text(json.dumps(b))
    assert training_reports.head_probe("vgg16", tmp_path) is None
    got = training_reports.head_probe("efficientnetb7", tmp_path)
    text = training_reports.head_probe_text(got)
    assert "first 30 training steps" in text
    assert "the fair recipe: 70% of the head's units off for every cluster at worst (step 20), 50% at step 30" in text
    assert "a tenth of the rate: 2% of the head's units off for every cluster at worst (step 20), none at step 30" in text
    assert "Units die with the fair recipe; with a tenth of the learning rate the head keeps them." in text
    assert "ended between 0.112 and 0.113 dex²" in text
    fig = plots.plot_head_probe(got)
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) == 2
    with pytest.raises(InputError, match="no variants"):
        plots.plot_head_probe({"variants": []})
    spec = importlib.util.spec_from_file_location("effnet_head", ROOT / "benchmarks" / "effnet_head.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "benchmarks" / "results" / "effnet_head.json"
    merged = mod.merge(out, dict(b["variants"][0], variant="gap", description="GAP"), 30, 10)
    assert [v["variant"] for v in merged["variants"]] == ["fair", "lr/10", "gap"]
    again = mod.merge(out, dict(b["variants"][1], description="new"), 30, 10)
    assert [v["description"] for v in again["variants"]] == ["the fair recipe", "new"]
    assert [v["variant"] for v in mod.merge(out, b["variants"][0], 60, 10)["variants"]] == ["fair"]


def test_thesis_protocol_table_reports_the_thesis_way_beside_the_fair_protocol(book_root):
    """Table 5 the thesis's way: the best seed (picked on test) beside the thesis's sigma and the fair protocol;
    the optimism column is fair minus thesis-protocol std(x); a verdict that flips between protocols is named."""
    def pr_for(model, noise, seeds=(0,), flat=False, **over):
        _, req = pages.request_for(model, "smoke", data="data/tiny.h5", epochs=3, seeds=list(seeds), **over)
        for s in seeds:
            # a flat model draws its noise too, so that every run of a seed has the same true masses
            _write_run(book_root, req, s, n=800, pred_fn=(lambda t, rng: t.mean() + 0.0 * rng.normal(0, 1, t.size))
                       if flat else (lambda t, rng, s=s: t + rng.normal(0, noise[s], t.size)))
        return pages.find_page_runs(model, "smoke", root=book_root, data="data/tiny.h5", epochs=3, seeds=list(seeds),
                                    **over)

    proto = {"basic": pr_for("basic", {0: 0.14, 1: 0.10}, seeds=(0, 1)),
             "resnet50v2": pr_for("resnet50v2", {0: 0.06}, early_stopping=10),
             "vgg16": pr_for("vgg16", {0: 0.20}, flat=True, early_stopping=10),
             "resnet152v2": pages.find_page_runs("resnet152v2", "smoke", root=book_root, data="data/tiny.h5",
                                                 epochs=3, seeds=[0], early_stopping=10)}
    fair_members = {"basic": pr_for("basic", {0: 0.15}, split="train-val-test"),
                    "resnet50v2": pr_for("resnet50v2", {0: 0.30}, flat=True, split="train-val-test")}
    fair = comparison.fair_comparison(fair_members, n_boot=100)
    res = comparison.thesis_protocol_comparison(proto, fair, basic_runs=fair_members["basic"], root=book_root)
    by = {r["model"]: r for r in res["rows"]}
    assert by["basic"]["seeds"] == 2 and by["basic"]["std"] == pytest.approx(0.10, abs=0.02)   # the best seed
    assert by["basic"]["sigma_thesis"] == pytest.approx(0.13)
    fair_std = {r["model"]: r["mean_seeds"] for r in fair["rows"]}
    assert by["basic"]["optimism"] == pytest.approx(fair_std["Basic CNN"] - by["basic"]["std"])
    assert by["resnet50v2"]["optimism"] == pytest.approx(fair_std["ResNet50V2"] - by["resnet50v2"]["std"])
    assert by["vgg16"]["fair_std"] is None and by["vgg16"]["optimism"] is None
    assert res["n_train"] == {"thesis": 800, "fair": 800}
    assert len(res["pending"]) == 1 and res["pending"][0].startswith("ResNet152V2 (seed 0: not started")
    rows = comparison.thesis_protocol_rows(res)
    assert rows[0]["reported run"].startswith("best of 2 seeds") and rows[0]["σ test, thesis"] == "0.130"
    assert next(r for r in rows if r["model"] == "VGG16")["std(x) test, fair protocol"].startswith("\u2013")
    text = comparison.thesis_protocol_markdown(res)
    assert "Better than the basic CNN's best run" in text and "ResNet50V2" in text.split("Better than")[1]
    assert "not better: VGG16" in text
    # the reported run's learning verdict, by the fair table's rule on this split's clusters
    assert by["resnet50v2"]["learned"] is True and by["vgg16"]["learned"] is False
    assert next(r for r in rows if r["model"] == "VGG16")["learned from the images?"] == \
        "no: about one mass for every cluster"
    assert rows[0]["learned from the images?"] == "yes"
    assert "did not learn from the images: about one mass for every cluster)" in text
    assert "A fit of the mass against the redshift alone scores std(x) = " in text
    # the answer in short says it too: which deep model learned the thesis's way, and where the fair one did not
    answer = comparison.thesis_protocol_answer(res)
    r5, rb = by["resnet50v2"], by["basic"]
    assert answer.startswith("**Under the thesis's own protocol** (its split with the test set as validation set")
    assert (f"ResNet50V2 learns from the images: std(x) = {r5['std']:.3f} dex at epoch {r5['best_epoch']} of "
            f"{r5['epochs']} ({r5['stopped']}), against the redshift alone's {r5['redshift_std']:.3f} and the basic "
            f"CNN's best run's {rb['std']:.3f} on the same clusters") in answer
    assert "VGG16 does not learn from the images (about one mass for every cluster)" in answer
    fair_r5 = next(r for r in fair["rows"] if r["model"] == "ResNet50V2")
    assert r5["fair_learned"] is fair_r5["learned"] is False
    assert (f"ResNet50V2 learns here ({r5['epochs']} epochs) but not with the fair protocol's recipe (at most "
            f"{profiles.FAIR_EPOCHS} epochs)") in answer
    assert "its page's *Remedies* change that recipe one setting at a time." in answer      # it has remedies
    assert "Basic CNN" not in answer.split("Not run yet")[-1]
    row = dict(model="vgg16", name="VGG16", learned=True, learned_short="", std=0.2, redshift_std=float("nan"),
               best_epoch=None, epochs=None, stopped="early stopping", fair_learned=False,
               fair_remedies_learned=["VGG16 (remedy: lr 1e-4)"])
    t2 = comparison.thesis_protocol_answer({"rows": [row], "pending": []})
    assert "VGG16 learns from the images: std(x) = 0.200 dex (early stopping)." in t2      # no epochs, no floors
    assert t2.endswith(". Under the fair protocol VGG16 (remedy: lr 1e-4) does: that recipe with one change. So that "
                       "change, not the protocol, is what the fair recipe lacked.")
    one = comparison.thesis_protocol_answer({"rows": [dict(row, fair_remedies_seeds={"VGG16 (remedy: lr 1e-4)": 1})],
                                             "pending": []})
    assert "VGG16 (remedy: lr 1e-4) does (on 1 seed so far): that recipe" in one
    t2 = comparison.thesis_protocol_answer({"rows": [dict(row, learned=False, learned_short="x", fair_learned=True)],
                                              "pending": []})
    assert t2.endswith(" VGG16 learns under the fair protocol but not here.")
    assert pages._bands_words((0, 4, 7)) == "1, 5 and 8" and pages._bands_words((1, 2, 3)) == "the thesis's 3"
    assert "Not run yet this way: ResNet152V2" in answer and res["pending_models"] == ["resnet152v2"]
    # the basic CNN's own missing run is not a deep model still to run: told apart by its key, not its name
    t3 = comparison.thesis_protocol_answer({"rows": [row], "pending": ["Basic CNN (seed 0: not started)",
                                                                      "ResNet152V2 (seed 0: not started)"],
                                            "pending_models": ["basic", "resnet152v2"]})
    assert t3.endswith(" Not run yet this way: ResNet152V2 (seed 0: not started).")
    assert comparison.thesis_protocol_answer({"rows": [rb], "pending": []}) == ""
    # the validation (= test) curves of those runs, one panel per model with runs, with the floors of that split
    curves = comparison.thesis_protocol_curves(proto)
    assert list(curves["panels"]) == ["Basic CNN", "ResNet50V2", "VGG16"]           # ResNet152V2 has no run yet
    assert list(curves["panels"]["Basic CNN"]) == ["seed 0", "seed 1"]
    assert curves["floors"]["VGG16"] == pages.history_references(proto["vgg16"].finished[0])
    assert curves["text"].endswith("a run has read the images only where its curve goes clearly below the second "
                                   "line.")
    assert comparison.thesis_protocol_curves({"basic": proto["basic"]}) == {"panels": {}, "floors": {}, "text": ""}
    # plain Table 5: a fair-protocol page row says what its thesis-protocol run did; a thesis-split row does not
    t5 = {r["model"]: r for r in comparison.table5_rows({"basic": proto["basic"],
                                                          "resnet50v2": fair_members["resnet50v2"]}, proto=res)}
    assert t5["ResNet50V2"]["learned?"] == (f"did not learn; the thesis's protocol: yes, std(x) {r5['std']:.3f} dex "
                                            "(Table 5 the thesis's way)")
    assert t5["Basic CNN"]["learned?"] == "yes"
    assert comparison.table5_rows({"resnet50v2": fair_members["resnet50v2"]})[0]["learned?"] == "did not learn"
    assert comparison.findings_paragraph(proto, "smoke", fair=fair, proto=res).endswith(answer)
    assert "The verdict changes between the two protocols for ResNet50V2" in text
    assert "Not run yet under the thesis's protocol: ResNet152V2" in text
    assert set(res["floors"]) == {"thesis", "fair"}
    assert (f"predicting the mean training mass scores std(x) = {res['floors']['thesis']:.3f} on the thesis split's "
            "test set") in text and "dex better than a fair evaluation does" in text and "+0." not in text
    assert comparison.thesis_protocol_markdown({"rows": [], "pending": []}).startswith("No runs")
    # the optimism split into the seed picked on the test set and the rest (the protocol itself)
    bb = {r["model"]: r for r in res["rows"]}["basic"]
    assert bb["seeds"] == 2 and bb["std_mean_seeds"] >= bb["std"]
    assert f"Of this, {comparison._shown_difference(bb['std_mean_seeds'], bb['std']):.3f} dex is the seed pick: its " \
           f"2 seeds average {bb['std_mean_seeds']:.3f} here;" in text
    part = comparison._seed_pick_part
    assert part(dict(bb, seeds=1)) == "" and part(dict(bb, fair_std=None)) == ""
    assert part({"seeds": 3, "std": 0.227, "std_mean_seeds": 0.231, "fair_std": 0.239}) == (
        " Of this, 0.004 dex is the seed pick: its 3 seeds average 0.231 here; the rest, 0.008 dex, comes with the "
        "protocol (the epoch chosen on the test clusters, the training set, the clusters tested).")
    assert part({"seeds": 3, "std": 0.227, "std_mean_seeds": 0.231, "fair_std": 0.229}).endswith(
        "goes the other way, by 0.002 dex.")
    # the difference column and the text agree with the rounded values printed beside them
    assert comparison._shown_difference(0.2386, 0.2244) == 0.015 and round(0.2386 - 0.2244, 3) == 0.014
    b = rows[0]
    shown = float(b["std(x) test, fair protocol"].split()[0]) - float(b["std(x) test, ours"])
    assert b["fair − thesis protocol"] == f"{shown:+.3f}"
    assert f"{abs(shown):.3f} dex better than a fair evaluation" in text or \
        f"{abs(shown):.3f} dex worse than a fair evaluation" in text


def test_diagnosis_reads_the_runs_diagnostics(book_root):
    """A run whose probe error in inference mode is far above training mode and whose predictions collapse is
    diagnosed as such, with remedies; a run without diagnostics says so; the page section follows."""
    from cmlib import plots

    _, req = pages.request_for("vgg16", "smoke", data="data/tiny.h5", epochs=6, seeds=[0])
    d = _write_run(book_root, req, 0, pred_fn=_flat, epochs=6)
    pr = pages.find_page_runs("vgg16", "smoke", root=book_root, data="data/tiny.h5", epochs=6, seeds=[0])
    assert pages.page_sections(pr, "smoke")["diagnostics"] is False
    assert "recorded no per-epoch diagnostics" in pages.diagnosis_markdown(pr)
    with pytest.raises(InputError, match="no diagnostics"):
        plots.plot_diagnostics(pr.best)
    rows = [dict(epoch=e, loss=0.01, val_loss=0.2, lr=1e-3, epoch_time_s=1.0, elapsed_s=float(e),
                 mse_train_eval=0.12, mse_train_batchstats=0.01, pred_std_train=0.02, label_std_train=0.3,
                 grad_norm=2.0, grad_norm_first=0.5, grad_norm_last=1.5, dead_relu=0.1) for e in range(1, 7)]
    rows[0] = {k: v for k, v in rows[0].items() if k in A.HISTORY_COLUMNS}     # an epoch recorded without them
    A.write_history(d / "history.csv", rows)
    pr = pages.find_page_runs("vgg16", "smoke", root=book_root, data="data/tiny.h5", epochs=6, seeds=[0])
    h = pr.best.history
    assert np.isnan(h["grad_norm"][0]) and h["grad_norm"][1] == 2.0
    found = {f["check"]: f for f in M.training_findings(h)}
    assert found["BatchNorm train/inference gap"]["found"] and found["BatchNorm train/inference gap"]["value"] == 12
    assert "the inference-mode error is 12.00\u00d7 the training-mode error" in found["BatchNorm train/inference gap"]["text"]
    assert found["collapse to the mean"]["found"]
    assert not found["vanishing gradients"]["found"] and not found["dead ReLUs"]["found"]
    text = pages.diagnosis_markdown(pr)
    assert "Signs of: BatchNorm train/inference gap, collapse to the mean" in text
    assert ("Known remedies not tried in this run: BatchNorm train/inference gap: re-estimate the BatchNorm "
            "statistics") in text
    assert "collapse to the mean: standardised labels with the output started at the label prior, a smaller" in text
    # remedies the run already had are not offered (the fair recipe has a warm-up and standardised labels)
    fair_cfg = {"warmup_epochs": 3, "label_scaling": "standardize", "output_bias": "prior"}
    assert pages._remedies_not_tried("dead ReLUs", fair_cfg) == ["a smaller learning rate", "He initialisation",
                                                                 "a leaky ReLU"]
    assert pages._remedies_not_tried("collapse to the mean", fair_cfg) == ["a smaller learning rate"]
    assert "a learning-rate warm-up" in pages._remedies_not_tried("dead ReLUs", {})
    # a first layer without any gradient is said so, not as "0 x the output layer's"
    dead = dict(h, grad_norm_first=np.zeros_like(h["grad_norm_first"]))
    checks = {f["check"]: f for f in M.training_findings(dead)}
    vg = checks["image path cut"]                      # not "vanishing": a path cut, not a gradient that shrank
    assert vg["found"] and "receives no gradient at all" in vg["text"] and " x " not in vg["text"]
    assert "vanishing gradients" not in checks
    assert pages.page_sections(pr, "smoke")["diagnostics"] is True
    fig = plots.plot_diagnostics(pr.best)
    assert len(fig.axes) == 4
    # healthy numbers: nothing found, and the text says whether the model learned anyway
    for r in rows[1:]:
        r.update(mse_train_batchstats=0.11, pred_std_train=0.25)
    for r in rows:
        r.update(loss=0.2)                  # a training loss of 0.01 against a validation loss of 0.2: memorisation
    A.write_history(d / "history.csv", rows)
    pr = pages.find_page_runs("vgg16", "smoke", root=book_root, data="data/tiny.h5", epochs=6, seeds=[0])
    assert "None of these failures shows, yet the model did not learn" in pages.diagnosis_markdown(pr)
    h = dict(pr.best.history, mse_train_batchstats=pr.best.history["mse_train_eval"])   # no BatchNorm
    assert "give the same error" in M.training_findings(h)[0]["text"]


def test_a_dead_head_is_named_with_its_remedies(book_root):
    """A run whose output stopped moving at all (EfficientNet-B7's fair run: prediction spread exactly 0 from
    epoch 3) is diagnosed as a dead head, from the epoch it died, with the remedies it did not have; a run whose
    output merely collapsed towards the mean is not."""
    _, req = pages.request_for("efficientnetb7", "smoke", data="data/tiny.h5", epochs=8, seeds=[0])
    d = _write_run(book_root, req, 0, pred_fn=_flat, epochs=8)
    rows = [dict(epoch=e, loss=0.112, val_loss=0.104, lr=1e-3, epoch_time_s=1.0, elapsed_s=float(e),
                 mse_train_eval=0.151, mse_train_batchstats=0.151, pred_std_train=0.0 if e >= 3 else 0.02,
                 label_std_train=0.388, grad_norm=0.01, grad_norm_first=1e-4, grad_norm_last=1e-3,
                 dead_relu=float("nan")) for e in range(1, 9)]
    A.write_history(d / "history.csv", rows)
    pr = pages.find_page_runs("efficientnetb7", "smoke", root=book_root, data="data/tiny.h5", epochs=8, seeds=[0])
    found = {f["check"]: f for f in M.training_findings(pr.best.history)}
    assert found["dead head"]["found"] and "every ReLU unit of the head is off" in found["dead head"]["text"]
    assert "dead ReLUs" not in found                   # swish backbone: nothing recorded, nothing claimed
    # a constant output gives the same error in both modes: that is not evidence of a network without BatchNorm
    assert found["BatchNorm train/inference gap"]["text"] == ("inference and training mode give the same error (the "
                                                              "output is one constant, so the two modes cannot differ)")
    text = pages.diagnosis_markdown(pr)
    assert "Signs of: collapse to the mean, dead head" in text
    assert ("from epoch 3 on the output is one constant (the mark of a dead head), so the network returns one mass "
            "for every cluster") in text
    assert ("dead head: a smaller learning rate, global average pooling instead of Flatten (fewer inputs per head "
            "unit), a leaky ReLU in the head") in text
    assert "predicts from the redshift" not in text
    # a run resumed from before cmlib recorded the head: the measured share is quoted from where it starts
    ep = np.arange(1, 9)
    late = {"epoch": ep, "dead_head": np.where(ep >= 6, 1.0, np.nan)}
    assert pages._dead_head_recorded(late, 3) == ("; the share of the head's units that are off for every probe "
                                                  "cluster, recorded only from epoch 6 on, is 100% from there")
    assert pages._dead_head_recorded(dict(late, dead_head=np.where(ep >= 6, 0.9, np.nan)), 3).endswith(
        "is at least 90% from there")
    assert pages._dead_head_recorded(late, 6) == "" and pages._dead_head_recorded({"epoch": ep}, 3) == ""
    assert pages._remedies_not_tried("dead head", {"head": "gap"}) == ["a smaller learning rate",
                                                                      "a leaky ReLU in the head"]
    # an output that still moves (spread 0.02 dex: collapsed towards the mean, but alive) has no dead head
    alive = dict(pr.best.history, pred_std_train=np.full(8, 0.02))
    assert "dead head" not in {f["check"] for f in M.training_findings(alive)}
    # a run that recorded the head (dead_head): the measurement decides, not the inference from the output
    measured = {f["check"]: f for f in M.training_findings(dict(alive, dead_head=np.full(8, 1.0)))}["dead head"]
    assert measured["found"] and measured["text"].startswith("every ReLU unit of the dense head is off")
    partly = {f["check"]: f for f in M.training_findings(dict(pr.best.history, dead_head=np.full(8, 0.4)))}
    assert not partly["dead head"]["found"]
    assert partly["dead head"]["text"] == "40% of the dense head's ReLU units never fire on the probe clusters"


def test_a_dead_run_kept_going_by_tiny_improvements_says_so():
    """EfficientNet-B7's dead fair run: its validation loss moves by ~1e-5 dex² an epoch (the output's bias follows
    the batches), early stopping without a minimum change takes each decrease as an improvement, so the run goes on
    long past its patience; the diagnosis says so.  A run that stopped within its patience of dying, one whose loss
    moved by more, or one with a minimum change says nothing."""
    from types import SimpleNamespace

    val = [0.2, 0.15] + [0.10430 + 1e-6 * ((-1) ** e) * (e % 3) - 1e-7 * e for e in range(3, 25)]
    hist = {"epoch": np.arange(1, 25), "val_loss": np.array(val)}
    assert M.validation_drift(hist, 3) == pytest.approx(max(val[2:]) - min(val[2:]))
    assert np.isnan(M.validation_drift(hist, 30)) and np.isnan(M.validation_drift({}, 1))

    def run(hist, last=24, best=20, patience=10, min_delta=0.0):
        return SimpleNamespace(history=hist, status_info={"epochs_completed": last, "best_epoch": best},
                               config={"early_stopping": patience, "min_delta": min_delta})

    text = pages._dead_run_stopping(run(hist), 3)
    assert text.startswith(" From epoch 3 on its validation loss moved by at most ")
    assert "restarted its patience of 10 epochs: the run went on to epoch 24, and its best epoch (20)" in text
    assert pages._dead_run_stopping(run(hist, last=13, best=3), 3) == ""           # stopped within its patience
    assert pages._dead_run_stopping(run(hist, min_delta=1e-4), 3) == ""
    assert pages._dead_run_stopping(run(hist, patience=0), 3) == ""
    moving = dict(hist, val_loss=np.array(val[:2] + [0.1 + 0.01 * (e % 2) for e in range(3, 25)]))
    assert pages._dead_run_stopping(run(moving), 3) == ""


def test_training_text_blames_batch_normalisation_only_where_the_model_has_it(book_root):
    """A first-epoch training loss far above the validation loss: BatchNorm's training mode is named for a ResNet,
    not for the basic CNN, which has no BatchNorm layer."""
    texts = {}
    for model in ("basic", "resnet50v2"):
        _, req = pages.request_for(model, "smoke", data="data/tiny.h5", epochs=3, seeds=[0])
        d = _write_run(book_root, req, 0, pred_fn=_good)
        A.write_history(d / "history.csv", [dict(epoch=e, loss=50.0 / e ** 3, val_loss=0.4, lr=1e-3, epoch_time_s=1.0,
                                                 elapsed_s=float(e)) for e in range(1, 4)])
        texts[model] = pages.training_text(pages.find_page_runs(model, "smoke", root=book_root, data="data/tiny.h5",
                                                                epochs=3, seeds=[0]))
    assert all("far above the validation loss" in t for t in texts.values())
    assert "batch normalisation" not in texts["basic"] and "inference mode" not in texts["basic"]
    assert "batch normalisation in training mode" in texts["resnet50v2"] and "inference mode" in texts["resnet50v2"]


def test_table4_reads_every_setting_from_the_code():
    """Table 4 beside the registry recipes and the stored deep runs' fair recipe; a change in FAIR_DEEP shows."""
    from cmlib.book import profiles
    from cmlib.book.thesis import TABLE4

    rows = {r["parameter"]: r for r in training_reports.table4_rows()}
    fair = "cmlib stored deep runs (fair recipe)"
    assert set(rows) >= set(TABLE4) | {"Bands / input", "Labels and output", "Arithmetic"}
    assert rows["Optimizer"][fair] == "AdamW (weight decay 0.01)" and rows["Optimizer"]["thesis (deep models)"] == "Adam"
    assert rows["Learning rate"][fair] == "0.001, 3-epoch warm-up, cosine decay to zero"
    assert rows["Training epochs"][fair] == f"{profiles.FAIR_EPOCHS}, early stopping (patience 10)"
    assert rows["Bands / input"][fair] == "bands 2–4, 50×50×3"
    assert rows["Bands / input"]["cmlib deep models (registry default)"] == "bands 2–4, 71×71×3"
    assert rows["Labels and output"][fair] == "standardised log M, output started at the label prior"
    assert rows["Arithmetic"][fair] == ("bfloat16 planned (float32: EfficientNet-B7); a run in float32 is the same "
                                        "experiment up to round-off, and each run records its own (run inventory)")
    assert rows["Training epochs"]["cmlib basic CNN"] == "early stopping (patience 20)"


def test_a_page_without_runs_says_whether_any_started_and_what_the_thesis_found(book_root):
    """A deep model's page whose stored runs are not finished: 'not started' vs 'in progress' read from disk, the
    command that makes them, and the thesis's own numbers for the model (Table 5, Table 3)."""
    (book_root / "data" / "efeds_mock.h5").write_bytes((book_root / "data" / "tiny.h5").read_bytes())
    prof = profiles.get_profile("laptop")
    job = next(j for j in build.notebook_jobs(prof) if j.params.get("model") == "resnet152v2")
    nb = build.pending_runs_page(job, prof, book_root)
    text = nb.cells[0].source
    assert ":::{admonition} Runs not started yet" in text and "cmlib stored-runs --models resnet152v2" in text
    assert "## What the thesis found" in text and "σ = 0.134 and μ = +0.055 on the test set" in text
    assert "67.63 M trainable parameters and 16 s per epoch" in text and "factor-10 typo" in text
    # one seed begun (a run directory with its status file): now 'in progress'
    pr = pages.find_page_runs("resnet152v2", "laptop", root=book_root)
    d = pr.request.config(0, book_root).run_dir(book_root / pr.request.runs_dir)
    d.mkdir(parents=True)
    A.write_status(d, status="running", epochs_completed=2, best_epoch=2, wall_time_s=3.0, stopped_reason="")
    assert ":::{admonition} Runs in progress" in build.pending_runs_page(job, prof, book_root).cells[0].source
    assert pages.thesis_result_lines("krippendorf2023") == []


def test_uncertainty_rows_average_every_seed_and_name_the_split(book_root):
    """No seed is picked: each calibration number is the mean ± std over the seeds, beside the model's split."""
    _, req = pages.request_for("krippendorf2023", "smoke", data="data/tiny.h5", epochs=3, seeds=[0, 1])
    for s, scale in ((0, 0.1), (1, 0.3)):
        d = _write_run(book_root, req, s, pred_fn=lambda t, rng, sc=scale: t + rng.normal(0, sc, t.size), n=800)
        run = A.Run.load(d)
        preds = {k: M.Predictions(p.cluster_id, p.true, p.pred, sigma=np.full(p.true.size, scale), z=p.z)
                 for k, p in run.predictions.items()}
        A.write_predictions(d / "predictions.csv", preds)
    pr = pages.find_page_runs("krippendorf2023", "smoke", root=book_root, data="data/tiny.h5", epochs=3, seeds=[0, 1])
    (row,) = comparison.uncertainty_rows([("Krippendorf", pr), ("absent", None)])
    stds = [M.point_metrics(r.predictions["test"].pred, r.predictions["test"].true)["std"] for r in pr.finished]
    assert row["seeds"] == 2 and row["split"] == pages.split_of(pr)
    assert row["test std(x) [dex]"] == f"{np.mean(stds):.3f} ± {np.std(stds, ddof=1):.3f}"
    assert row["median σ_pred [dex]"] == "0.200 ± 0.141"          # 0.1 and 0.3: each seed's own, averaged


def test_a_model_is_set_beside_the_basic_cnn_of_its_own_split(book_root):
    """The model page's 'compared with the basic CNN' uses the basic CNN's runs on the model's split (other
    splits have other test clusters): its page's runs on the thesis split, its fair experiment on the other."""
    kw = dict(data="data/tiny.h5")
    _, page_req = pages.request_for("basic", "smoke", **kw)
    _write_run(book_root, page_req, page_req.seeds[0], pred_fn=_good)
    _, tvt_req = pages.request_for("basic", "smoke", experiment="basic_tvt", **kw)
    _, deep_req = pages.request_for("resnet50v2", "smoke", epochs=3, seeds=[0], split="train-val-test", **kw)
    _write_run(book_root, deep_req, 0, pred_fn=_good)
    deep = pages.find_page_runs("resnet50v2", "smoke", root=book_root, epochs=3, seeds=[0], split="train-val-test",
                                **kw)
    assert pages.split_of(deep) == "train-val-test"
    assert pages.basic_on_same_split(deep, "smoke", root=book_root, **kw) is None     # fair basic not run yet
    _write_run(book_root, tvt_req, tvt_req.seeds[0], pred_fn=_good)
    ref = pages.basic_on_same_split(deep, "smoke", root=book_root, **kw)
    assert ref is not None and pages.split_of(ref) == "train-val-test" and ref.request.overrides.get("split") == "train-val-test"
    _, thesis_req = pages.request_for("vgg16", "smoke", epochs=3, seeds=[0], **kw)
    _write_run(book_root, thesis_req, 0, pred_fn=_good)
    on_thesis = pages.find_page_runs("vgg16", "smoke", root=book_root, epochs=3, seeds=[0], **kw)
    ref = pages.basic_on_same_split(on_thesis, "smoke", root=book_root, **kw)
    assert pages.split_of(ref) == "thesis" and "split" not in ref.request.overrides
    empty = pages.find_page_runs("resnet152v2", "smoke", root=book_root, **kw)
    assert pages.basic_on_same_split(empty, "smoke", root=book_root, **kw) is None
    # the results page's best deep model is set beside the basic CNN of its own split, and says which
    basic_page = pages.find_page_runs("basic", "smoke", root=book_root, **kw)
    best, ref, text = comparison.best_deep_text({"basic": basic_page, "resnet50v2": deep}, "smoke", root=book_root, **kw)
    assert best == "resnet50v2" and pages.split_of(ref) == "train-val-test"
    assert f"against {ref.best.metrics['test']['sigma']:.3f} for the basic CNN, both on the train-val-test split" in text
    assert "among those that learned" in text and "None of the deep models" not in text


def test_diagnosis_explains_a_network_that_predicts_from_the_redshift_alone(book_root):
    """Dead ReLUs cut the image path (the first layer's gradient is exactly zero from some epoch on) and the
    predictions are a function of z: the diagnosis ties the two together, naming the epoch."""
    _, req = pages.request_for("vgg16", "smoke", data="data/tiny.h5", epochs=6, seeds=[0])
    d = _write_run(book_root, req, 0, pred_fn=_good, epochs=6, n=800)
    grads = [1e-3, 1e-6, 0.0, 0.0, 0.0, 0.0]
    A.write_history(d / "history.csv", [dict(
        epoch=e, loss=0.1, val_loss=0.1, lr=1e-3, epoch_time_s=1.0, elapsed_s=float(e), mse_train_eval=0.1,
        mse_train_batchstats=0.1, pred_std_train=0.15, label_std_train=0.3, grad_norm=1.0,
        grad_norm_first=grads[e - 1], grad_norm_last=0.02, dead_relu=0.64) for e in range(1, 7)])
    run = A.Run.load(d)
    A.write_predictions(d / "predictions.csv", {k: M.Predictions(p.cluster_id, p.true, 13.8 + 0.6 * p.z, z=p.z)
                                                for k, p in run.predictions.items()})
    pr = pages.find_page_runs("vgg16", "smoke", root=book_root, data="data/tiny.h5", epochs=6, seeds=[0])
    assert pages.verdict(pr)["short"] == "predicts from the redshift alone"
    text = pages.diagnosis_markdown(pr)
    assert "the image path is cut (from epoch 3 on the first layer gets no gradient at all)" in text
    assert "which its dense head receives directly" in text
    assert "The decisive sign is that zero gradient; dead ReLU channels alone need not stop a network" in text
    # the same dead channels in a model that learned: named, but not offered remedies as a failure
    _diagnostics_history(d, [0.5] * 6, 0.64)
    A.write_predictions(d / "predictions.csv", {k: M.Predictions(p.cluster_id, p.true, p.true + 0.01 * p.z, z=p.z)
                                                for k, p in run.predictions.items()})
    pr = pages.find_page_runs("vgg16", "smoke", root=book_root, data="data/tiny.h5", epochs=6, seeds=[0])
    assert pages.verdict(pr)["learned"]
    text = pages.diagnosis_markdown(pr)
    assert "Signs of: dead ReLUs, yet the model learned from the images: this did not stop it." in text
    assert "Known remedies" not in text and "**Signs of" not in text
    assert M.first_epoch_without_gradient({"epoch": [1, 2], "grad_norm_first": [0.0, 1e-3]}) is None
    assert M.first_epoch_without_gradient({"epoch": [1, 2], "grad_norm_first": [0.0, 0.0]}) == 1


def test_a_run_that_collapsed_after_its_best_epoch_says_so(book_root):
    """A thesis-protocol run that predicts one mass for every cluster from some epoch after its best one to its
    end (as the stored ResNet50V2 run does from epoch 51): its number rests on the epoch picked on the test
    clusters, and every place that reports it says so."""
    assert M.first_epoch_of_constant_output({"pred_std_train": [0.2, 0.0, 0.0], "label_std_train": [0.3] * 3}) == 2
    assert M.first_epoch_of_constant_output({"pred_std_train": [0.0, 0.0, 0.01], "label_std_train": [0.3] * 3}) is None
    assert M.first_epoch_of_constant_output({"pred_std_train": [1e-4, 1e-4], "label_std_train": [0.3, 0.3]}) == 1
    assert M.first_epoch_of_constant_output({"loss": [0.1]}) is None
    runs_by = {}
    for model, noise in (("basic", 0.10), ("resnet50v2", 0.06)):
        over = {} if model == "basic" else {"early_stopping": 10}
        _, req = pages.request_for(model, "smoke", data="data/tiny.h5", epochs=4, seeds=[0], **over)
        d = _write_run(book_root, req, 0, n=800, pred_fn=lambda t, rng, s=noise: t + rng.normal(0, s, t.size), epochs=4)
        if model == "resnet50v2":
            A.write_status(d, status="complete", epochs_completed=4, best_epoch=2, wall_time_s=3.0,
                           stopped_reason="early stopping at epoch 4: no improvement for 2 epochs")
            A.write_history(d / "history.csv", [dict(
                epoch=e, loss=0.1, val_loss=0.1, lr=1e-3, epoch_time_s=1.0, elapsed_s=float(e), mse_train_eval=0.1,
                mse_train_batchstats=0.1, pred_std_train=ps, label_std_train=0.3, grad_norm=1.0,
                grad_norm_first=0.0 if ps == 0 else 0.1, grad_norm_last=0.02, dead_relu=0.0)
                for e, ps in enumerate([0.2, 0.25, 0.0, 0.0], 1)])
        runs_by[model] = pages.find_page_runs(model, "smoke", root=book_root, data="data/tiny.h5", epochs=4, seeds=[0],
                                              **over)
    run = runs_by["resnet50v2"].finished[0]
    assert pages.collapsed_after_best(run) == 3 and pages.collapsed_after_best(runs_by["basic"].finished[0]) is None
    assert pages.collapse_text(run).startswith("From epoch 3 on it predicted one and the same mass for every cluster, "
                                               "to its last epoch (4)")
    assert "its numbers are those of epoch 2, the best before the collapse" in pages.collapse_text(run)
    assert "its dense head had died" in pages.collapse_text(run)
    page = pages.thesis_protocol_page_markdown(runs_by["resnet50v2"], runs_by["resnet50v2"])
    assert "From epoch 3 on it predicted one and the same mass" in page and "(picked on the test clusters" in page
    res = comparison.thesis_protocol_comparison(runs_by, None, root=book_root)
    row = next(r for r in comparison.thesis_protocol_rows(res) if r["model"] == "ResNet50V2")
    assert row["reported run"] == "1 seed, epoch 2 of 4 (early stopping; one mass for every cluster from epoch 3 on)"
    answer = comparison.thesis_protocol_answer(res)
    assert ("; from epoch 3 on it predicted one mass for every cluster, so at its last epoch, which thesis Table 5 "
            "would report, it scores like predicting one mass: this number rests on the epoch picked on the test "
            "clusters") in answer
    assert "before it collapsed to one mass for every cluster from epoch 3 on)" in comparison.thesis_protocol_markdown(res)
    basic_row = next(r for r in res["rows"] if r["model"] == "basic")
    assert basic_row["collapsed_at"] is None and "collapse" not in answer.split("ResNet50V2")[0]


def _diagnostics_history(d: Path, grads, dead: float) -> None:
    A.write_history(d / "history.csv", [dict(
        epoch=e, loss=0.1, val_loss=0.1, lr=1e-3, epoch_time_s=1.0, elapsed_s=float(e), mse_train_eval=0.1,
        mse_train_batchstats=0.1, pred_std_train=0.15, label_std_train=0.3, grad_norm=1.0,
        grad_norm_first=g, grad_norm_last=0.02, dead_relu=dead) for e, g in enumerate(grads, 1)])


def _predict_from_z(d: Path) -> None:
    run = A.Run.load(d)
    A.write_predictions(d / "predictions.csv", {k: M.Predictions(p.cluster_id, p.true, 13.8 + 0.6 * p.z, z=p.z)
                                                for k, p in run.predictions.items()})


def test_a_seed_that_did_not_learn_is_diagnosed_on_its_own(book_root):
    """The diagnosis reads the best run; a seed of a model that learned which did not learn itself (Krippendorf's
    seed 2) gets its own verdict and its own signs, not the best run's."""
    kw = dict(root=book_root, data="data/tiny.h5", epochs=6, seeds=[0, 1, 2])
    _, req = pages.request_for("basic", "smoke", data="data/tiny.h5", epochs=6, seeds=[0, 1, 2])
    dirs = [_write_run(book_root, req, s, pred_fn=_flat if s == 1 else _good, epochs=6, n=400) for s in (0, 1, 2)]
    for d in dirs:
        _diagnostics_history(d, [0.5] * 6, 0.1)
    text = pages.diagnosis_markdown(pages.find_page_runs("basic", "smoke", **kw))
    assert "and the model learned." in text and "Seed 2" not in text and "Seed 0 did not" not in text
    assert text.endswith("Seed 1 did not learn (about one mass for every cluster; test std(x) "
                         f"{M.point_metrics(*(lambda p: (p.pred, p.true))(A.Run.load(dirs[1]).predictions['test']))['std']:.3f} "
                         "dex, the end of its epoch budget (6 epochs; a constant learning rate, so not shown to be "
                         "converged)): its own diagnostics show none of these failure signs.")
    h1 = A.Run.load(dirs[1]).history                      # no sign, but it fits its training clusters worse
    A.write_history(dirs[1] / "history.csv", [{**{k: float(h1[k][i]) for k in h1 if k != "epoch"},
                                               "epoch": int(h1["epoch"][i]), "mse_train_eval": 0.2} for i in range(6)])
    text = pages.diagnosis_markdown(pages.find_page_runs("basic", "smoke", **kw))
    assert text.endswith("its own diagnostics show none of these failure signs, though its error on the training "
                         "probe (inference mode) ends at 0.200 dex² against the best run's 0.100 dex²: it did not fit "
                         "even its training clusters as well.")
    _diagnostics_history(dirs[1], [0.0] * 6, 0.9)         # its image path cut, its ReLUs dead
    text = pages.diagnosis_markdown(pages.find_page_runs("basic", "smoke", **kw))
    assert text.endswith("its own diagnostics show signs of image path cut and dead ReLUs.")


def test_the_did_not_learn_box_names_the_remedies_still_planned(book_root):
    """A model with several remedies, one tried without success: the box names the tried one and the planned ones."""
    kw = dict(root=book_root, data="data/tiny.h5")
    _, req = pages.request_for("resnet50v2", "laptop", data="data/tiny.h5")
    _predict_from_z(_write_run(book_root, req, 0, pred_fn=_good, n=800))
    pr = pages.find_page_runs("resnet50v2", "laptop", **kw)
    assert not pages.verdict(pr)["learned"]
    _, rreq = pages.request_for("resnet50v2", "laptop", experiment=profiles.remedy_key("resnet50v2", "lr1e-4"),
                                data="data/tiny.h5")
    _predict_from_z(_write_run(book_root, rreq, 0, pred_fn=_good, n=800))
    box = pages.verdict_markdown(pr, "laptop", **kw)
    labels = {slug: label for slug, _, label, _ in profiles.FAIR_REMEDIES["resnet50v2"]}
    assert (f"The remedy tried, {labels['lr1e-4']}, did not make it learn either; {labels['rot90']} and "
            f"{labels['epochs100']} are still planned; see *Remedies* below.") in box


def test_the_remedy_section_reports_what_the_remedy_run_changed(book_root):
    """A model whose image path is cut (VGG16: dead ReLUs, predictions from z alone) has a remedy experiment: the
    page says it is planned (with its command) until its run exists, then compares the image path and the test
    std(x) of both runs on the same clusters, against the basic CNN too, and says whether the remedy works."""
    kw = dict(root=book_root, data="data/tiny.h5")
    _, req = pages.request_for("vgg16", "smoke", data="data/tiny.h5", epochs=6, seeds=[0], split="train-val-test")
    d = _write_run(book_root, req, 0, pred_fn=_good, epochs=6, n=800)
    _diagnostics_history(d, [1e-3, 1e-6, 0.0, 0.0, 0.0, 0.0], 0.64)
    _predict_from_z(d)
    pr = pages.find_page_runs("vgg16", "smoke", epochs=6, seeds=[0], split="train-val-test", **kw)
    assert not pages.verdict(pr)["learned"] and pages.page_sections(pr, "smoke")["remedy"]
    other = pages.find_page_runs("resnet50v2", "smoke", **kw)
    assert pages.remedy_runs(other, "smoke", **kw) == [] and pages.remedy_markdown(other, None, "smoke", **kw) == ""
    planned = pages.remedy_markdown(pr, pages.remedy_runs(pr, "smoke", **kw)[0], "smoke", **kw)
    assert planned.startswith("**The remedy, planned:** the same recipe with lr 1e-4") and "--lr 0.0001" in planned
    assert "seed 0: not started" in planned
    members = {"vgg16": pr}
    assert "VGG16 with lr 1e-4 (the remedy for the dead ReLUs that cut its image path): not run yet." in \
        pages.remedies_markdown(members, "smoke", **kw)
    # the page's 'did not learn' box says what the remedies did: planned, worked, or not
    assert "A longer or better-tuned run" in pages.verdict_markdown(pr)
    assert ("A remedy, lr 1e-4 (the remedy for the dead ReLUs that cut its image path), is in the compute plan (*Remedies* below); until it "
            "has run, the failure may be this recipe's rather than the architecture's.") in \
        pages.verdict_markdown(pr, "smoke", **kw)
    # with a thesis-protocol run that learned, the planned remedy no longer stands between the page and a verdict
    tw_yes, tw_no = {"learned": True, "std": 0.2, "short": ""}, {"learned": False, "std": 0.3, "short": "flat"}
    assert pages._remedies_outcome(pr, "smoke", book_root, "data/tiny.h5", tw_yes) == (
        "A remedy, lr 1e-4 (the remedy for the dead ReLUs that cut its image path), is in the compute plan (*Remedies* below). Trained the "
        "thesis's way, it learns from the images (test std(x) 0.200 dex on the thesis split's test clusters; *Trained "
        "the thesis's way* below).")

    _, rreq = pages.request_for("vgg16", "smoke", experiment=profiles.remedy_key("vgg16", "lr1e-4"), data="data/tiny.h5")
    assert rreq.overrides["lr"] == 1e-4 and rreq.overrides["split"] == "train-val-test"
    rd = _write_run(book_root, rreq, 0, pred_fn=_good, epochs=1, n=800)
    _diagnostics_history(rd, [2e-2], 0.05)
    _, breq = pages.request_for("basic", "smoke", experiment="basic_tvt", data="data/tiny.h5")
    _write_run(book_root, breq, 0, pred_fn=_good, epochs=1, n=800)
    text = pages.remedy_markdown(pr, pages.remedy_runs(pr, "smoke", **kw)[0], "smoke", **kw)
    assert "the same recipe with lr 1e-4 (the remedy for the dead ReLUs that cut its image path): 1 seed, trained to the epoch budget " \
           "(1 epoch). " in text
    assert "The page's best run had no gradient at all in the first layer from epoch 3 on and 64% of its ReLU " \
           "channels dead at its last epoch; the remedy's best run has a first-layer gradient norm of 0.02 and 5% of " \
           "its ReLU channels dead at its last epoch" in text
    assert "Paired on the same 200 test clusters (the seeds' ensembles), remedy minus page: -0." in text
    assert "Remedy minus basic CNN: +0.000 [+0.000, +0.000] dex (the remedy's run against the basic CNN's run, on " \
           "the same clusters): cannot be told apart. " in text
    assert "**The remedy works: with lr 1e-4 (the remedy for the dead ReLUs that cut its image path) VGG16 learns from the images.**" in text
    assert "Lowest training loss and best validation loss: 0.100 and 0.100 dex² for the page's best run" in text
    assert pages.remedy_markdown(pr, pages.remedy_runs(pr, "smoke", **kw)[0], "smoke", first=False,
                                 **kw).startswith("**A further remedy, tried:**")
    s = pages.remedy_summary(pr, pages.remedy_runs(pr, "smoke", **kw)[0], "smoke", **kw)
    assert s["works"] and s["vs_page"].diff < 0 and s["before"]["zero_from"] == 3
    assert pages._seed_stds([0.25]) == "0.250 dex (1 seed)"
    assert pages._seed_stds([0.25, 0.27, 0.26]) == "0.260 ± 0.010 dex (3 seeds)"
    assert "VGG16 with lr 1e-4 (the remedy for the dead ReLUs that cut its image path): test std(x) 0.0" in \
        pages.remedies_markdown(members, "smoke", **kw)
    assert "it learns from the images" in pages.remedies_markdown(members, "smoke", **kw)
    box = pages.verdict_markdown(pr, "smoke", **kw)
    assert box.startswith(":::{admonition} Did not learn") and ("With lr 1e-4 (the remedy for the dead ReLUs that cut its image path) it "
                                                                "learns from the images (*Remedies* below)") in box
    assert "A longer or better-tuned run" not in box
    # a remedy run made on another version of the data file judged other clusters: it counts as not run anywhere
    current = pages.remedy_runs(pr, "smoke", **kw)[0]
    stale = dataclasses.replace(current, data_mismatch=True)
    assert pages.remedies_that_learned([current]) == [current] and pages.remedies_that_learned([stale]) == []
    assert "made on another version of the data file" in pages.remedy_markdown(pr, stale, "smoke", **kw)
    # a remedy that worked: the thesis-protocol run 'learns too', or 'does not learn' (not 'either')
    out = pages._remedies_outcome(pr, "smoke", book_root, "data/tiny.h5", tw_yes)
    assert out.endswith("Trained the thesis's way, it learns from the images too (test std(x) 0.200 dex on the thesis "
                        "split's test clusters; *Trained the thesis's way* below).")
    out = pages._remedies_outcome(pr, "smoke", book_root, "data/tiny.h5", tw_no)
    assert out.endswith("Trained the thesis's way, it does not learn (flat; *Trained the thesis's way* below).")
    # the remedy is a member of the fair comparison under its own name, beside the model's own runs, and the
    # remedies sentence still names it once
    assert {"vgg16_remedy_lr1e-4", "resnet50v2_remedy_lr1e-4", "resnet50v2_remedy_rot90"} <= set(comparison.fair_members("laptop", **kw))
    remedy = pages.remedy_runs(pr, "smoke", **kw)[0]
    assert comparison.member_name("vgg16_remedy_lr1e-4", remedy) == "VGG16 (remedy: lr 1e-4)"
    assert comparison.member_name("vgg16_remedy_lr1e-4", remedy, "1 of 3 finished") == \
        "VGG16 (remedy: lr 1e-4; 1 of 3 finished)"
    fair = comparison.fair_comparison({"basic": pages.find_page_runs("basic", "smoke", experiment="basic_tvt", **kw),
                                       "vgg16": pr, "vgg16_remedy_lr1e-4": remedy}, n_boot=50)
    by_name = {r["model"]: r for r in fair["rows"]}
    assert by_name["VGG16 (remedy: lr 1e-4)"]["remedy_of"] == "vgg16" and by_name["VGG16"]["remedy_of"] is None
    # a remedy may lengthen the schedule: its epochs replace the fair budget, the rest of the recipe is the fair one
    longer = profiles.get_profile("laptop").experiments[profiles.remedy_key("resnet50v2", "epochs100")]
    fair = profiles.get_profile("laptop").plan("resnet50v2")
    assert (longer.epochs, fair.epochs) == (100, profiles.FAIR_EPOCHS) and longer.overrides == fair.overrides
    assert longer.label.startswith("a 100-epoch schedule")
    assert comparison.member_name("vgg16", pr) == "VGG16"
    with_remedy = {"basic": pages.find_page_runs("basic", "smoke", experiment="basic_tvt", **kw), **members,
                   "vgg16_remedy_lr1e-4": remedy}
    fair = comparison.fair_comparison(with_remedy, n_boot=200)
    names = [r["model"] for r in fair["rows"] if r["kind"] == "model"]
    assert "VGG16 (remedy: lr 1e-4)" in names and "VGG16" in names
    assert [r["model"] for r in fair["rows"] if r.get("remedy")] == ["VGG16 (remedy: lr 1e-4)"]
    assert ("did not learn from the images with the common recipe in this budget (the remedies tried follow)"
            in comparison.findings_paragraph({"vgg16": pr}, "smoke", fair=fair))
    assert "did not learn from the images in this budget." in comparison.findings_paragraph({"vgg16": pr}, "smoke")
    assert pages.remedies_markdown(with_remedy, "smoke", **kw).count("VGG16 with lr 1e-4") == 1
    # the results page's best deep model: the remedy that learned, under its own name, and what that means
    best, ref, text = comparison.best_deep_text(with_remedy, "smoke", **kw)
    assert best == "vgg16_remedy_lr1e-4" and pages.split_of(ref) == "train-val-test"
    assert "lowest test σ among those that learned is **VGG16 (remedy: lr 1e-4)**" in text
    assert "(the best of VGG16 (remedy: lr 1e-4)'s 1 run and of the basic CNN's 1 run by test σ" in text
    assert ("None of the deep models learned from the images with the common recipe; of the remedies tried, "
            "VGG16 (remedy: lr 1e-4) does.") in text
    best, _, text = comparison.best_deep_text({"basic": with_remedy["basic"], "vgg16": pr}, "smoke", **kw)
    assert best == "vgg16" and "None of the deep models learned from the images, so this comparison" in text
    assert [p["model"] for p in comparison.cost_accuracy_points(with_remedy, fair, cache_folder=book_root / "cache")
            ].count("VGG16 (remedy: lr 1e-4)") == 1

    # the image path opened, but the predictions are still a function of z: not enough
    _predict_from_z(rd)
    text = pages.remedy_markdown(pr, pages.remedy_runs(pr, "smoke", **kw)[0], "smoke", **kw)
    assert "**The remedy keeps the image path open but is not enough:**" in text and "works" not in text
    assert "still does not learn from the images (predicts from the redshift alone)" in \
        pages.remedies_markdown(members, "smoke", **kw)
    assert ("The remedy tried, lr 1e-4 (the remedy for the dead ReLUs that cut its image path), did not make it learn either; see *Remedies* "
            "below.") in pages.verdict_markdown(pr, "smoke", **kw)
    # the remedy changed nothing
    _diagnostics_history(rd, [0.0], 0.7)
    assert "**The remedy does not help:**" in pages.remedy_markdown(pr, pages.remedy_runs(pr, "smoke", **kw)[0], "smoke",
                                                                     **kw)


def test_diagnosis_finds_memorisation(book_root):
    """A run whose training loss falls far below what the redshift alone leaves on its training clusters while its
    validation loss stays at that level memorises: the diagnosis says so, with its remedies, and explains the
    verdict by it; a run whose validation loss follows its training loss down does not."""
    assert M.memorisation({"loss": [0.05], "val_loss": [0.09]}, 0.09, 0.09)["found"]
    assert not M.memorisation({"loss": [0.05], "val_loss": [0.06]}, 0.09, 0.09)["found"]      # it generalises
    assert not M.memorisation({"loss": [0.085], "val_loss": [0.09]}, 0.09, 0.09)["found"]     # it fits nothing
    assert M.memorisation({"loss": [], "val_loss": []}, 0.09, 0.09) is None
    _, req = pages.request_for("resnet50v2", "smoke", data="data/tiny.h5", epochs=6, seeds=[0], split="train-val-test")
    d = _write_run(book_root, req, 0, pred_fn=_good, epochs=6, n=800)
    _diagnostics_history(d, [0.5] * 6, 0.0)
    _predict_from_z(d)
    pr = pages.find_page_runs("resnet50v2", "smoke", root=book_root, data="data/tiny.h5", epochs=6, seeds=[0],
                              split="train-val-test")
    floors = [float(np.mean((q.pred - q.true) ** 2)) for q in
              (M.redshift_predictor(pr.best.predictions["train"], pr.best.predictions["train"]),
               M.redshift_predictor(pr.best.predictions["train"], pr.best.predictions["val"]))]
    hist = pr.best.history
    A.write_history(d / "history.csv", [
        {**{k: float(hist[k][i]) for k in hist if k != "epoch"}, "epoch": int(hist["epoch"][i]),
         "loss": floors[0] * (1.0 - 0.1 * (i + 1)), "val_loss": floors[1] * 1.02} for i in range(6)])
    pr = pages.find_page_runs("resnet50v2", "smoke", root=book_root, data="data/tiny.h5", epochs=6, seeds=[0],
                              split="train-val-test")
    mem = pages.memorisation_finding(pr.best)
    assert mem["found"] and mem["value"] == pytest.approx(0.4)
    memorising = pr.best                         # its history and predictions are read (and kept) by now
    text = pages.diagnosis_markdown(pr)
    assert "**Signs of: memorisation.**" in text and "Over the whole run, its lowest training loss was" in text
    assert "memorisation: more augmentation (all eight orientations" in text
    assert "Memorisation fits the verdict" in text and "not clearly better than the redshift alone" in text
    assert "only a remedy aimed at it can show" in text          # a sign, not a proven cause
    # the slides' quote is theirs for ResNet101 and EfficientNet-B7; the BatchNorm cause it suggests is checked here
    assert "for ResNet101 and EfficientNet-B7, \u201cvery low training loss while predicting very poorly\u201d" in text
    assert text.endswith("this run's BatchNorm check above rules that out.")
    # the validation loss follows the training loss down: no memorisation, whatever the verdict
    A.write_history(d / "history.csv", [
        {**{k: float(hist[k][i]) for k in hist if k != "epoch"}, "epoch": int(hist["epoch"][i]),
         "loss": floors[0] * 0.5, "val_loss": floors[1] * 0.6} for i in range(6)])
    pr = pages.find_page_runs("resnet50v2", "smoke", root=book_root, data="data/tiny.h5", epochs=6, seeds=[0],
                              split="train-val-test")
    assert "memorisation" not in pages.diagnosis_markdown(pr).split("Over the whole run")[0]
    assert "Signs of: memorisation" not in pages.diagnosis_markdown(pr)
    # a remedy whose best run lost the sign but did not learn: that sign was not what stopped the model
    gone = pages._signs_removed(memorising, pr.best)
    assert gone.startswith(" Its best run no longer shows memorisation (lowest training loss 50% of what the redshift")
    assert gone.endswith("was 40%), which the page's best run did, yet it does not learn: removing that sign alone "
                         "was not enough.")
    assert pages._signs_removed(pr.best, memorising) == "" and pages._signs_removed(memorising, memorising) == ""
    # a run with the eight orientations is not offered them again
    assert not any("eight orientations" in r for r in pages._remedies_not_tried("memorisation",
                                                                                 {"augment": "flip-rot90"}))


def test_seeds_text_is_the_one_mean_pm_std_formatter():
    """Every "mean ± std over seeds" in the book comes from one function: ddof=1, the mean alone for one seed or
    an undefined spread (never a fake ± 0), any format."""
    assert pages.seeds_text(0.2391, 0.0024, 3) == "0.239 ± 0.002"
    assert pages.seeds_text(0.3, 0.0, 1) == "0.300"
    assert pages.seeds_text(0.3, float("nan"), 2) == "0.300"
    assert pages.seeds_text_of([0.61, 0.69], ".0%") == "65% ± 6%"
    assert pages.seeds_text_of([0.25, 0.27, 0.26]) == "0.260 ± 0.010"
    assert pages.seeds_text_of([0.25]) == "0.250"
    assert pages.pm({"std": {"mean": 0.25, "std": 0.01, "n": 3}}, "std", digits=2) == "0.25 ± 0.01"
    assert pages.pm({}, "std") == "\u2013"
    from cmlib.book import comparison
    assert comparison._seeds_value({"mean_seeds": 0.296, "std_seeds": 0.001, "seeds": 3}) == "0.296 ± 0.001"
    assert comparison._seeds_value({"mean_seeds": 0.3, "std_seeds": float("nan"), "seeds": 1}) == "0.300"


def test_stop_texts_say_why_runs_stopped():
    """A page says why its runs stopped in words: the schedule's end, the epoch budget (not shown converged),
    early stopping; a set of seeds that stopped differently is counted per way."""
    from types import SimpleNamespace as NS

    def run(reason, epochs, schedule="warmup-cosine", status="complete"):
        return NS(status=status, config={"lr_schedule": schedule},
                  status_info={"stopped_reason": reason, "epochs_completed": epochs})
    sched, budget = run("30 epochs", 30), run("30 epochs", 30, schedule="constant")
    early = run("early stopping at epoch 28: no improvement of the validation loss for 10 epochs", 28)
    assert pages.stop_text(sched) == "the end of its annealed learning-rate schedule (30 epochs)"
    assert pages.stop_text(budget).startswith("the end of its epoch budget (30 epochs; a constant learning rate")
    assert pages.stop_text(early) == early.status_info["stopped_reason"]
    assert pages._stops_text([sched]) == "to the schedule's end (30 epochs)"
    assert pages._stops_text([sched, sched, early]) == ("2 to the schedule's end (30 epochs) and 1 by early stopping "
                                                        "after 28 epochs")
    assert pages._stops_text([budget, run("1 epoch", 1, schedule="constant")]) == \
        "1 to the epoch budget (1 epoch) and 1 to the epoch budget (30 epochs)"


def test_provenance_names_the_profile_or_says_there_was_none(book_root):
    """A run asked for by a profile names it; one started by `cmlib train` directly (profile 'custom') says so
    instead of naming a profile that does not exist."""
    import json as _json

    _, req = pages.request_for("resnet50v2", "smoke", data="data/tiny.h5", epochs=3, seeds=[0])
    d = _write_run(book_root, req, 0, pred_fn=_good)
    pr = pages.find_page_runs("resnet50v2", "smoke", root=book_root, data="data/tiny.h5", epochs=3, seeds=[0])
    assert f"profile `{pr.provenance['profile']}`;" in pages.provenance_markdown(pr)
    cfg = _json.loads((d / "config.json").read_text())
    (d / "config.json").write_text(_json.dumps({**cfg, "profile": "custom"}))
    pr = pages.find_page_runs("resnet50v2", "smoke", root=book_root, data="data/tiny.h5", epochs=3, seeds=[0])
    text = pages.provenance_markdown(pr)
    assert "started by `cmlib train` directly, not through a profile;" in text and "profile `custom`" not in text


def test_mean_predictor_note_quotes_the_horizontal_lines_only_for_vgg16(book_root, monkeypatch):
    """The thesis remarks on 'horizontal lines' in VGG16's predictions only (Sect. 4.2.1): the note cites the remark
    when VGG16 is among the models near the mean predictor, and not for others."""
    _, req = pages.request_for("resnet50v2", "smoke", data="data/tiny.h5", epochs=3, seeds=[0])
    _write_run(book_root, req, 0, pred_fn=_good)
    pr = pages.find_page_runs("resnet50v2", "smoke", root=book_root, data="data/tiny.h5", epochs=3, seeds=[0])
    b = pr.mean_predictor("test")
    s = M.point_metrics(b.pred, b.true)["sigma"]
    monkeypatch.setattr(comparison, "TABLE5", {"basic": {"sigma_test": 0.13}, "vgg16": {"sigma_test": s + 0.01},
                                               "resnet152": {"sigma_test": s - 0.01}})
    text = comparison.mean_predictor_note({"resnet50v2": pr})
    assert "for VGG16 and ResNet152: within 0.03 of a model that ignores the images, which fits the thesis's own " \
           "remark that VGG16's predictions form \"horizontal lines\"" in text
    monkeypatch.setattr(comparison, "TABLE5", {"basic": {"sigma_test": 0.13}, "resnet152": {"sigma_test": s - 0.01}})
    text = comparison.mean_predictor_note({"resnet50v2": pr})
    assert "for ResNet152: within 0.03 of a model that ignores the images (the thesis's data" in text
    assert "horizontal" not in text
    assert f"The thesis reports σ = {s - 0.01:g} for ResNet152" in text      # one value, not "a–a"


def test_training_text_reads_the_gap_over_several_epochs(book_root):
    """One spiking last epoch is not overfitting: the train/validation gap is read from the medians of the last
    epochs (up to five), and the stop is said in words."""
    _, req = pages.request_for("basic", "smoke", data="data/tiny.h5", epochs=8, seeds=[0])
    d = _write_run(book_root, req, 0, pred_fn=_good, epochs=8)

    def history(val):
        A.write_history(d / "history.csv", [dict(epoch=e, loss=0.05, val_loss=v, lr=1e-3, epoch_time_s=1.0,
                                                 elapsed_s=float(e)) for e, v in enumerate(val, 1)])
        return pages.training_text(pages.find_page_runs("basic", "smoke", root=book_root, data="data/tiny.h5",
                                                        epochs=8, seeds=[0]))
    spike = history([0.06] * 7 + [0.10])
    assert "Over the last 5 epochs the validation loss is 1.2× the training loss (medians: 0.06 against 0.05)." \
        in spike and "overfitting" not in spike
    assert "Why it stopped: the end of its epoch budget (8 epochs; a constant learning rate" in spike
    assert "a sign of overfitting." in history([0.06] * 3 + [0.09] * 5)
    assert "nan" not in history([0.06] * 7 + [float("nan")])


def test_convergence_words_keep_the_recipe_for_ending_on_its_own_without_calling_it_proof():
    """The training-parameters page keeps the recipe whose run ended on its own where the thesis's constant rate was
    cut by the budget while still improving, and says that ending on its own does not prove more epochs would not
    help; a chosen recipe still improving at its end is said to be unconverged."""
    from types import SimpleNamespace as NS

    def run(schedule, best, done, reason="30 epochs"):
        return NS(status="complete", config={"lr_schedule": schedule},
                  status_info={"stopped_reason": reason, "best_epoch": best, "epochs_completed": done})
    thesis_cut, chosen = run("constant", 30, 30), run("warmup-cosine", 24, 30)
    text = training_reports._convergence_words(thesis_cut, chosen)
    assert "the chosen recipe ended on its own (schedule end)" in text
    assert "Ending on its own does not prove that more epochs would not help" in text
    assert training_reports._convergence_words(run("constant", 20, 30), chosen) == ""     # neither was cut
    assert "did not converge within the budget" in training_reports._convergence_words(
        thesis_cut, run("constant", 30, 30))


def test_paired_markdown_compares_two_sets_of_runs_on_the_same_clusters(book_root):
    """Two experiments on the same split are compared as the book compares models: ensemble against ensemble on
    the same test clusters, with the bootstrap interval; on other splits (other clusters) not at all."""
    kw = dict(root=book_root, data="data/tiny.h5", epochs=3)
    _, good_req = pages.request_for("basic", "smoke", data="data/tiny.h5", epochs=3, seeds=[0, 1])
    _, bad_req = pages.request_for("basic", "smoke", data="data/tiny.h5", epochs=3, seeds=[0], lr=1e-2)
    for s in (0, 1):
        _write_run(book_root, good_req, s, pred_fn=_good, n=400)
    _write_run(book_root, bad_req, 0, pred_fn=lambda t, rng: t + rng.normal(0, 0.3, t.size), n=400)
    good = pages.find_page_runs("basic", "smoke", seeds=[0, 1], **kw)
    bad = pages.find_page_runs("basic", "smoke", seeds=[0], lr=1e-2, **kw)
    text = pages.paired_markdown(bad, "lr 1e-2", good, "lr 1e-3")
    n = bad.ensemble("test").true.size
    assert text.startswith(f"Paired on the same {n} test clusters (lr 1e-2: 1 seed; lr 1e-3: the ensemble of 2 "
                           "seeds), lr 1e-2 minus lr 1e-3: +0.")
    assert text.endswith("dex in std(x): lr 1e-2 is worse.")
    assert pages.paired_markdown(good, "lr 1e-3", bad, "lr 1e-2").endswith("lr 1e-3 is better.")
    assert pages.paired_markdown(good, "a", good, "b").endswith("the two cannot be told apart.")
    assert pages.paired_markdown(pages.find_page_runs("basic", "smoke", seeds=[5], **kw), "x", good, "y") == ""


def test_a_run_still_improving_at_its_schedules_end_is_marked(book_root):
    """A run that ended with its annealed schedule while its validation loss was still falling (the fair
    ResNet152V2 runs: 0.8-1.2 % in their last 3 of 30 epochs) ended on its own, but its page says a longer schedule
    may help; the drift of a run that stopped learning, or a constant-rate run, is not marked."""
    val = [0.10 - 0.001 * e for e in range(27)] + [0.0725, 0.072, 0.0718]
    assert M.late_gain({"val_loss": val}) == pytest.approx((0.074 - 0.0718) / 0.074)
    assert M.late_gain({"val_loss": val[:27] + [0.08] * 3}) == 0.0                     # no better than before
    assert M.late_gain({"val_loss": [0.104 + 1e-6 * (e % 3) for e in range(30)]}) < M.LATE_GAIN_MIN   # dead drift
    assert np.isnan(M.late_gain({"val_loss": [0.1, 0.09, 0.08]})) and np.isnan(M.late_gain({}))
    assert M.late_gain({"val_loss": val}, window=10) == pytest.approx((0.081 - 0.0718) / 0.081)

    dirs = {}

    def text(schedule, v):
        if schedule not in dirs:
            _, req = pages.request_for("resnet50v2", "smoke", data="data/tiny.h5", epochs=30, seeds=[0],
                                       lr_schedule=schedule)
            dirs[schedule] = _write_run(book_root, req, 0, pred_fn=_good, epochs=30)
        d = dirs[schedule]
        A.write_history(d / "history.csv", [dict(epoch=e, loss=0.05, val_loss=x, lr=1e-3, epoch_time_s=1.0,
                                                 elapsed_s=float(e)) for e, x in enumerate(v, 1)])
        return pages.training_text(pages.find_page_runs("resnet50v2", "smoke", root=book_root, data="data/tiny.h5",
                                                        epochs=30, seeds=[0], lr_schedule=schedule))
    marked = text("warmup-cosine", val)
    assert ("Its validation loss was still falling when the schedule ended (its best in the last 3 epochs is 3.0% "
            "below its best before them)") in marked and "a longer schedule may still help" in marked
    assert "still falling" not in text("warmup-cosine", val[:27] + [0.08] * 3)
    assert "still falling" not in text("constant", val)          # a budget end says so in its own words


def test_run_yourself_names_what_the_thesis_profile_runs_per_model(book_root):
    """The 'Run it yourself' box's thesis command is described from the thesis profile's plan of that model: the
    deep models' 4000 epochs × 10 seeds, the basic CNN's early stopping, and the baseline the thesis never trained."""
    text = {m: pages.run_yourself_markdown(pages.find_page_runs(m, "smoke", root=book_root, data="data/tiny.h5"))
            for m in ("basic", "krippendorf2023", "resnet50v2")}
    assert "(4000 epochs × 10 seeds, as the thesis trained its deep models; a GPU job)" in text["resnet50v2"]
    assert "(up to 4000 epochs × 10 seeds, with early stopping, as the thesis trained the basic CNN)" in text["basic"]
    assert "the thesis did not train this model" in text["krippendorf2023"] and "deep models" not in text["basic"]


def test_thesis_profile_words_survive_a_model_the_profile_does_not_plan():
    assert pages._thesis_profile_words("no-such-model") == "The thesis profile (a GPU job)"


def test_an_architecture_page_shows_the_model_trained_the_thesis_way(book_root):
    """A deep model with a thesis-protocol experiment: its page says the run is planned (with its command) until it
    exists, then reports it as Table 5 does, whether it learned on that split's clusters, and where that differs
    from the page's fair runs; the 'did not learn' box says so; the training plot gets the two floors as lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cmlib import plots

    kw = dict(root=book_root, data="data/tiny.h5")
    fair_over = dict(split="train-val-test", pad="none", optimizer="adamw", lr_schedule="warmup-cosine")
    _, req = pages.request_for("resnet50v2", "smoke", data="data/tiny.h5", seeds=[0, 1], epochs=3, **fair_over)
    for s in (0, 1):
        _write_run(book_root, req, s, pred_fn=_flat, n=600, epochs=3)
    pr = pages.find_page_runs("resnet50v2", "smoke", seeds=[0, 1], epochs=3, **fair_over, **kw)
    assert pages.page_sections(pr, "smoke")["thesis_protocol"]
    assert not pages.page_sections(pages.find_page_runs("basic", "smoke", **kw), "smoke")["thesis_protocol"]
    assert not pages.page_sections(pages.find_page_runs("vgg16", "smoke", **kw), "smoke")["thesis_protocol"]
    assert pages.thesis_protocol_run(pages.find_page_runs("basic", "smoke", **kw), "smoke", **kw) is None
    # the section's opening, from the profile's plans: the smoke profile trains ResNet50V2 so, for 1 epoch
    intro = pages.thesis_protocol_intro(pr, "smoke")
    assert intro.startswith("The thesis trained and reported its models its own way (Sect. 3.2–3.3): bands 2–4, "
                            "the images padded to 71 × 71")
    assert ("trains ResNet50V2 that way too (each stopped when 10 epochs pass without improvement on the test "
            "clusters, at most 1 epoch)") in intro
    assert intro.endswith("The runs above follow the fair protocol (a train/validation/test split) instead.")
    assert "trains ResNet50V2, ResNet152V2 and VGG16 that way too (" in pages.thesis_protocol_intro(pr, "laptop")
    assert "at most 100 epochs)" in pages.thesis_protocol_intro(pr, "laptop")
    tp = pages.thesis_protocol_run(pr, "smoke", **kw)
    assert tp is not None and not tp.finished
    planned = pages.thesis_protocol_page_markdown(pr, tp, root=book_root)
    assert planned.startswith("**Planned:** ResNet50V2 trained the thesis's way, 1 seed. It is part of the book's")
    assert "seed 0: not started" in planned and "cmlib train" in planned
    assert "Trained the thesis's way" not in pages.verdict_markdown(pr, "smoke", **kw)   # nothing to say yet
    assert "A longer or better-tuned run" in pages.verdict_markdown(pr, "smoke", **kw)
    assert "None is in this book's compute plan" in pages.verdict_markdown(pr, "smoke", **kw)   # says why not
    assert pages.thesis_protocol_page_markdown(pr, None) == ""

    _, treq = pages.request_for("resnet50v2", "smoke", experiment="resnet50v2_thesis_protocol", data="data/tiny.h5")
    d = _write_run(book_root, treq, 0, pred_fn=_good, n=800, epochs=1)
    tp = pages.thesis_protocol_run(pr, "smoke", **kw)
    assert tp.finished
    v = pages.verdict(tp)
    met = tp.best.metrics["test"]
    text = pages.thesis_protocol_page_markdown(pr, tp, "smoke", root=book_root)
    assert text.startswith("**ResNet50V2 trained the thesis's way**: seed 0, stopped by the end of its epoch budget (")
    assert "), its best epoch 1; " in text                      # a budget end names its best epoch, early stopping does
    assert (f"Reported as Table 5 reports it: test σ = {met['sigma']:.3f} dex (thesis Table 5: 0.140), μ = "
            f"{met['mu']:+.3f} dex (thesis Table 5: +0.087), std(x) = {met['std']:.3f} dex.") in text
    assert (f"It learns from the images: on the same clusters the redshift alone scores std(x) = "
            f"{v['redshift_std']:.3f} dex and the mean training mass {v['reference_std']:.3f} dex.") in text
    assert "score std(x) = " in text and "(2 seeds); their best run did not learn." in text
    # what differs between the two recipes, the thesis's way first, from the runs' own configurations
    assert ("the settings in which the two differ (the thesis's way first): the input 71 × 71 × 3 against 50 × 50 × 3; "
            "optimizer adam against adamw; lr_schedule constant against warmup-cosine; early_stopping 10 against 0; the "
            "epochs (1 of at most 1 epoch against 3 of at most 3 "
            "epochs); the training set (800 against 600 clusters); the epoch chosen on the test clusters instead of a "
            "separate validation set.") in text
    assert "*Remedies*" not in text                                   # smoke plans no remedy of ResNet50V2 ...
    assert "The *Remedies* above change" in pages.thesis_protocol_page_markdown(pr, tp, "laptop", root=book_root)
    # none ran yet:
    assert "what they lacked" not in pages.thesis_protocol_page_markdown(pr, tp, "laptop", root=book_root)
    # a remedy whose runs learned is named as what the fair runs lacked (the laptop profile plans ResNet50V2's)
    _, rreq = pages.request_for("resnet50v2", "laptop", experiment=profiles.remedy_key("resnet50v2", "epochs100"),
                                data="data/tiny.h5")
    rd = _write_run(book_root, rreq, 0, pred_fn=_good, n=800)
    label = dict((slug, lab) for slug, _, lab, _ in profiles.FAIR_REMEDIES["resnet50v2"])["epochs100"].split(" (")[0]
    assert pages.thesis_protocol_page_markdown(pr, tp, "laptop", root=book_root).endswith(
        f"The *Remedies* above change the fair recipe one setting at a time; with {label} the fair runs learn too (one "
        "seed so far), so that is what they lacked. Its training below: the validation loss against what the two floors score on the "
        "same clusters (dashed).")
    shutil.rmtree(rd)
    assert text.endswith("Its training below: the validation loss against what the two floors score on the same "
                         "clusters (dashed).")
    box = pages.verdict_markdown(pr, "smoke", **kw)
    assert (f"Trained the thesis's way, it learns from the images (test std(x) {met['std']:.3f} dex on the thesis "
            "split's test clusters; *Trained the thesis's way* below).") in box
    assert "A longer or better-tuned run" not in box and "cannot be judged" not in box      # it has been judged
    # the box never contradicts what the remedies did (_remedies_outcome: every case of both)
    learned, failed = {"learned": True, "std": 0.2, "short": ""}, {"learned": False, "std": 0.3, "short": "flat"}
    assert pages._remedies_outcome(pr, None, book_root, None, failed).startswith(
        "A longer or better-tuned run (see *Run it yourself*) is needed before this architecture can be judged. "
        "Trained the thesis's way, it does not learn either (flat;")
    assert pages._remedies_outcome(pr, None, book_root, None, learned).startswith("Trained the thesis's way, it learns")
    # data made on another version of the data file: not reported, and not in the box
    tp.data_mismatch = True
    assert "another version of the data file" in pages.thesis_protocol_page_markdown(pr, tp)
    tp.data_mismatch = False
    # a thesis-protocol run that did not learn either
    (d / "predictions.csv").unlink()
    rng = np.random.default_rng(3)
    flat = {s: M.Predictions(np.arange(m), rng.normal(14.1, 0.3, m), np.full(m, 14.1), z=rng.uniform(0.05, 1, m))
            for s, m in (("train", 800), ("val", 200), ("test", 200))}
    A.write_predictions(d / "predictions.csv", flat)
    tp = pages.thesis_protocol_run(pr, "smoke", **kw)
    assert "It did not learn from the images: " in pages.thesis_protocol_page_markdown(pr, tp, root=book_root)
    assert "Trained the thesis's way, it does not learn either (" in pages.verdict_markdown(pr, "smoke", **kw)

    # the floors of the validation loss: the MSE of the mean and of the redshift fit on the validation clusters
    refs = pages.history_references(tp.best)
    p = tp.best.predictions
    assert [(label, kind) for label, _, kind in refs] == [("predicting the mean training mass", "mean"),
                                                           ("predicting from the redshift alone", "redshift")]
    assert refs[0][1] == pytest.approx(np.mean((p["train"].true.mean() - p["val"].true) ** 2))
    assert refs[1][1] == pytest.approx(np.mean((M.redshift_predictor(p["train"], p["val"]).pred - p["val"].true) ** 2))
    assert pages.FLOORS_NOTE in pages.training_text(tp)
    no_z = {k: M.Predictions(q.cluster_id, q.true, q.pred) for k, q in p.items()}
    stub = lambda cfg, preds: type("R", (), {"config": cfg, "predictions": preds})()  # noqa: E731
    assert [k for _, _, k in pages.history_references(stub(tp.best.config, no_z))] == ["mean"]
    assert pages.history_references(stub(dict(tp.best.config, loss="nll"), p)) == []
    assert pages.history_references(stub(tp.best.config, {"train": p["train"], "test": p["test"]})) == []
    # the axis is cut above the floors when only the first epochs' losses are higher ...
    top = 3 * max(v for _, v, _ in refs)
    A.write_history(d / "history.csv", [dict(epoch=e, loss=lo, val_loss=va, lr=1e-3, epoch_time_s=1.0, elapsed_s=e)
                                        for e, lo, va in ((1, 25.0, 0.12), (2, 0.09, 0.1), (3, 0.05, 0.06))])
    run = pages.thesis_protocol_run(pr, "smoke", **kw).best
    fig = plots.plot_history(run, references=refs)
    ax = fig.axes[0]
    assert any(lab.startswith("predicting from the redshift alone (") and "dex²" in lab
               for lab in ax.get_legend_handles_labels()[1])
    assert ax.get_ylim() == pytest.approx((0.8 * 0.05, top)) and ax.get_ylabel() == "loss (MSE) [dex²]"
    fig.canvas.draw()       # the legend below the axes: inside, it hid the mean's line along the top
    assert ax.get_legend().get_window_extent().y1 < ax.get_window_extent().y0
    assert plots.plot_history(run).axes[0].get_ylim()[1] > 25      # without floors: the whole history
    # ... but never above a later epoch's loss: an overfitting validation curve stays in view
    rows = [(1, 25.0, 0.12), (2, 0.09, 0.1), (3, 0.05, 0.06), (4, 0.04, 0.5), (5, 0.03, 0.9)]
    A.write_history(d / "history.csv", [dict(epoch=e, loss=lo, val_loss=va, lr=1e-3, epoch_time_s=1.0, elapsed_s=e)
                                        for e, lo, va in rows])
    run = pages.thesis_protocol_run(pr, "smoke", **kw).best
    assert plots.plot_history(run, references=refs).axes[0].get_ylim()[1] == pytest.approx(max(top, 1.15 * 0.9))
    fig = plots.plot_validation_curves({"ResNet50V2": {"seed 0": run}}, {"ResNet50V2": refs})
    assert sum("dex²)" in lab for lab in fig.axes[0].get_legend_handles_labels()[1]) == 2
    # one legend below the panels, each label once, none inside a panel (it hid the curves there)
    assert fig.axes[0].get_legend() is None and len(fig.legends) == 1
    fig.canvas.draw()
    assert fig.legends[0].get_window_extent().y1 < fig.axes[0].get_window_extent().y0
    two = plots.plot_validation_curves({"a": {"seed 0": run}, "b": {"seed 0": run}}, {"a": refs, "b": refs})
    assert [t.get_text() for t in two.legends[0].get_texts()].count("seed 0") == 1
    plt.close("all")
    assert pages._power_words(1e-3) == "10⁻³" and pages._power_words(5e-4) == "5 × 10⁻⁴"
    assert pages._power_words(1.25e-4) == "1.25 × 10⁻⁴"
