"""The notebook templates: clean, parameterised the way papermill expects."""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from papermill.translators import PythonTranslator

from cmlib.book import REPO, notebook_jobs
from cmlib.profiles import PROFILES

TEMPLATES = sorted((REPO / "notebooks").glob("*.ipynb"))


def test_every_page_has_a_template():
    names = {p.name for p in TEMPLATES}
    for profile in PROFILES.values():
        for job in notebook_jobs(profile):
            assert job.template in names, job


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_template_is_clean_and_parameterised(path: Path, caplog):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "committed outputs"
    params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1, "exactly one cell tagged 'parameters'"
    inferred = PythonTranslator.inspect(params[0])
    names = [p.name for p in inferred]
    assert "profile" in names
    assert len(names) == sum(1 for line in params[0].source.splitlines() if "=" in line and not line.startswith("#"))
    assert all(p.help for p in inferred), "every parameter has a help comment"
    assert "Unable to parse" not in caplog.text
    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# "), "the page title comes first"


def test_template_parameters_match_the_jobs():
    for profile in PROFILES.values():
        for job in notebook_jobs(profile):
            nb = nbformat.read(REPO / "notebooks" / job.template, as_version=4)
            cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
            names = {p.name for p in PythonTranslator.inspect(cell)}
            assert set(job.params) <= names, (job.name, set(job.params) - names)
