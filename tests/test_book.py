"""The book built with the smoke profile: every chapter exists, no page shows an error."""
from __future__ import annotations

import math
import re
import subprocess
import sys

import nbformat
import pytest
import yaml

from cmlib import artifacts as A
from cmlib import book
from cmlib.profiles import PAGE_MODELS, SMOKE

pytestmark = pytest.mark.slow

BAD = [r"Traceback \(most recent call last\)", r"\bException\b", r"WARNING:tensorflow", r"oneDNN custom operations",
       r"absl::InitializeLog", r"<span class=\"ansi-red", r"Error:", r"nan\s*±"]


def _toc_files(root):
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc["parts"]:
        for ch in part["chapters"]:
            files.append(ch["file"])
            files += [s["file"] for s in ch.get("sections", [])]
    return files


def test_every_chapter_is_built(smoke_book):
    html = smoke_book / "_build" / "html"
    assert (html / "index.html").exists()
    files = _toc_files(smoke_book)
    assert len(files) == 23
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


def test_architecture_pages_show_figures_and_provenance(smoke_book):
    html = smoke_book / "_build" / "html" / "book" / "generated" / "models"
    for m in PAGE_MODELS:
        text = (html / f"{m}.html").read_text()
        assert text.count("<img") >= 8, m
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


def test_nbval_checks_the_deterministic_physics_output(smoke_book):
    nb = smoke_book / "book" / "generated" / "physics.ipynb"
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
                          "--nbval-current-env", str(nb)], cwd=smoke_book, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-2000:]
    assert "passed" in out.stdout
