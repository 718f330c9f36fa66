"""The book built with the smoke profile: every chapter exists, no page shows an error."""
from __future__ import annotations

import math
import re

import nbformat
import pytest
import yaml

from cmlib import artifacts as A
from cmlib.book import build as book
from cmlib.book.profiles import SMOKE

PAGE_MODELS = SMOKE.pages()

pytestmark = pytest.mark.slow

BAD = [r"Traceback \(most recent call last\)", r"\bException\b", r"WARNING:tensorflow", r"oneDNN custom operations",
       r"absl::InitializeLog", r"<span class=\"ansi-red", r"Error:", r"nan\s*±", r"IPython\.core\.display"]


def _toc_files(root):
    return book.toc_pages(yaml.safe_load((root / "book" / "generated" / "_toc.yml").read_text()))


def test_every_chapter_is_built(smoke_book):
    html = smoke_book / "_build" / "html"
    assert (html / "index.html").exists()
    files = _toc_files(smoke_book)
    md_pages = {"book/intro", "book/architectures", "book/conclusion", "book/reproduce", "book/classroom",
                "book/bibliography", "book/cite", "book/physics_facts"}
    assert set(files) == md_pages | {f"book/generated/{j.name}" for j in book.notebook_jobs(SMOKE)}
    for f in files:
        page = html / f"{f}.html"
        assert page.exists(), f
        text = page.read_text()
        assert len(text) > 5000, f


def test_no_page_shows_an_error_or_log_noise(smoke_book):
    html = smoke_book / "_build" / "html"
    for f in _toc_files(smoke_book):
        text = (html / f"{f}.html").read_text()
        for pattern in BAD:
            assert not re.search(pattern, text), (f, pattern)
        assert "output stderr" not in text, f


def test_the_build_output_is_the_builds_own(smoke_book):
    """The terminal shows the build's progress, not the page kernels' log (ipykernel's TCP warning at every
    start, "KeyboardInterrupt caught in kernel" at every shutdown)."""
    text = (smoke_book.parent / "smokebook-output.txt").read_text(errors="replace")
    assert "[cmlib book] notebooks:" in text               # the capture works: the build's own log is there
    assert "[IPKernelApp]" not in text, [l for l in text.splitlines() if "[IPKernelApp]" in l][:3]


def test_executed_notebooks_are_clean(smoke_book):
    for job in book.notebook_jobs(SMOKE):
        nb = nbformat.read(smoke_book / "book" / "generated" / f"{job.name}.ipynb", as_version=4)
        assert nb.metadata["papermill"]["exception"] is None
        assert nb.metadata["cmlib"]["profile"] == "smoke"
        for cell in nb.cells:
            for out in cell.get("outputs", []):
                assert out.output_type != "error", job.name
                assert not (out.output_type == "stream" and out.name == "stderr"), (job.name, out.text[:200])
                if out.output_type == "stream":
                    assert "epoch" not in out.text, "per-epoch or per-batch progress in a notebook"
        if job.title:
            assert nb.cells[0].source.startswith(f"# {job.title}")


def test_data_catalogue_shows_calibration_ablation_and_the_efeds_table(smoke_book):
    """The mock-v2 evidence is on the page: calibration, ablation (from results/mock) and a complete eFEDS table."""
    text = (smoke_book / "_build" / "html" / "book" / "generated" / "data_catalogue.html").read_text()
    # the rendered outputs (the page also shows the code, which contains both texts)
    assert "Basic CNN on mock v2: thesis σ = <strong>" in text
    assert "<em>The calibration results are not stored yet" not in text
    assert "switched off" in text and "no_extent" in text          # the ablation table
    assert "clusters per 140 deg" in text and "nan" not in re.sub(r"<[^>]+>", "", text).split("clusters per 140")[1][:80]


def test_architecture_pages_show_figures_and_provenance(smoke_book):
    html = smoke_book / "_build" / "html" / "book" / "generated" / "models"
    for m in PAGE_MODELS:
        text = (html / f"{m}.html").read_text()
        assert text.count("<img") >= 7, m      # history, predictions, residuals, 2 binned, 2 against the basic CNN (or more)
        assert "How these numbers were produced" in text, m
        assert "Run it yourself" in text and "admonition" in text, m
        plain = re.sub(r"<[^>]+>", "", text)  # code blocks are split into highlighted spans
        assert "papermill notebooks/architecture.ipynb" in plain, m
        assert f"cmlib train --model {m}" in plain, m


def test_every_model_family_trained_end_to_end(smoke_book):
    runs = A.find_runs(smoke_book / "runs")
    models = {r.model for r in runs}
    assert set(PAGE_MODELS) <= models
    for r in runs:
        assert r.status in ("complete", "diverged"), r.path
        assert math.isfinite(r.metrics["loss"]["train_last"]), r.path
        assert set(r.predictions) >= {"train", "test"}, r.path


def test_widgets_are_embedded_with_local_javascript(smoke_book):
    html = smoke_book / "_build" / "html"
    text = (html / "book" / "generated" / "explorer.html").read_text()
    assert "application/vnd.jupyter.widget-state+json" in text
    assert text.count("embed-amd.js") == 1 and text.count("vendor/require.js") == 1
    assert "cdn.jsdelivr" not in text.split("widget-state+json")[0] and "cdnjs" not in text
    assert (html / "vendor" / "html-manager" / "embed-amd.js").exists()
    assert (html / "vendor" / "mathjax" / "tex-chtml.js").exists()


def test_second_build_executes_nothing(smoke_book, capsys):
    done = book.execute_notebooks(SMOKE, smoke_book)
    assert done == []


def test_teaching_page_shows_its_code_and_pinned_values(smoke_book):
    """The CNN-fundamentals page: code visible, and the numbers a reader can check by hand."""
    html = (smoke_book / "_build" / "html" / "book" / "generated" / "cnn_fundamentals.html").read_text()
    plain = re.sub(r"<[^>]+>", "", html)
    assert "keras.layers.Conv2D" in plain and "w_ -= alpha" in plain          # the code is on the page
    # f = 1..12 (4x3), g = [[1, 0], [0, -1]]: every entry f[i, j] - f[i+1, j+1] = -4
    assert "feature map (3 x 2): [[-4, -4], [-4, -4], [-4, -4]]" in plain
    assert "average pooling: [[50.25, 100.25], [165.5, 24.5]]" in plain      # thesis Fig. 7
    assert "max pooling:     [[163, 179], [196, 62]]" in plain
    assert "by hand 4.6, by Keras 4.6" in plain                               # ReLU(0.5 - 2 + 6 + 0.1)


def test_verdicts_and_generated_paragraph_on_the_pages(smoke_book):
    html = smoke_book / "_build" / "html" / "book"
    results = re.sub(r"<[^>]+>", "", (html / "generated" / "results.html").read_text())
    assert "predict the training mean" in results and "learned?" in results
    assert "What this book finds" in results
    for page in ("intro.html", "conclusion.html"):
        text = re.sub(r"<[^>]+>", "", (html / page).read_text())
        assert "What the thesis found" in text and "What this book finds" in text and "profile smoke" in text, page
    for m in PAGE_MODELS:
        page = re.sub(r"<[^>]+>", "", (html / "generated" / "models" / f"{m}.html").read_text())
        assert "predict the training mean" in page, m
        assert ("Verdict: learned" in page) != ("Did not learn" in page), m


def test_template_sections_only_where_they_apply(smoke_book):
    html = smoke_book / "_build" / "html" / "book" / "generated" / "models"
    for m in PAGE_MODELS:
        text = (html / f"{m}.html").read_text()
        assert ("<h2>Uncertainties<" in text) == (m == "krippendorf2023"), m
        assert ("<h2>Compared with the basic CNN<" in text) == (m != "basic"), m
        assert ("<h2>Experiments of the thesis with this model<" in text) == (m == "basic"), m
        thesis_way = m != "basic" and f"{m}_thesis_protocol" in SMOKE.experiments
        assert bool(re.search(r"<h3>Trained the thesis.s way<", text)) == thesis_way, m
        if thesis_way:      # the run exists in the smoke build: reported, with its training against the floors
            assert "trained the thesis" in text and "Reported as Table 5 reports it" in text, m


def test_exercise_solutions_are_executed_and_hidden_from_students(smoke_book):
    nb = nbformat.read(smoke_book / "book" / "generated" / "exercises.ipynb", as_version=4)
    outputs = "".join(o.get("data", {}).get("text/markdown", "") for c in nb.cells for o in c.get("outputs", []))
    assert outputs.count("{solution}") == 6 and outputs.count("{exercise}") == 6
    html = (smoke_book / "_build" / "html" / "book" / "generated" / "exercises.html").read_text()
    assert html.count("Learning goals") == 6
    assert "The solution, as it ran" not in html and "def solve_" not in html


def test_teacher_build_shows_the_solutions(smoke_book):
    index = book.build_html(smoke_book, teacher=True)
    html = (index.parent / "book" / "generated" / "exercises.html").read_text()
    assert html.count("The solution, as it ran") == 6
    assert "def solve_sigma" in re.sub(r"<[^>]+>", "", html)
