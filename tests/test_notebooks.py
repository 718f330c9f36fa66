"""The notebook templates: clean, parameterised the way papermill expects."""
from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from papermill.translators import PythonTranslator

from cmlib.book.build import notebook_jobs
from cmlib.book.profiles import PROFILES

REPO = Path(__file__).resolve().parents[1]
TEMPLATES = sorted((REPO / "notebooks").glob("*.ipynb"))
#: notebooks owned by another part of the project, not yet typed (see the README's notes)
UNTYPED = {"physics.ipynb", "data_catalogue.ipynb"}


def test_every_page_has_a_template():
    names = {p.name for p in TEMPLATES}
    for profile in PROFILES.values():
        for job in notebook_jobs(profile):
            assert job.template in names, job


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_template_is_clean_and_parameterised(path: Path, caplog):
    # nbformat.read fills in a missing cell id with a warning (a hard error in future nbformat versions)
    raw = json.loads(path.read_text())
    assert all("id" in c for c in raw["cells"]), [i for i, c in enumerate(raw["cells"]) if "id" not in c]
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
    if path.name not in UNTYPED:   # `papermill --help-notebook` shows a type for every parameter
        assert all(p.inferred_type_name not in (None, "None") for p in inferred), \
            [p.name for p in inferred if p.inferred_type_name in (None, "None")]
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


#: options of `cmlib train` that are internal (set by the recipe or the registry), not a student's choice
INTERNAL = {"split_seed", "output", "head", "dense_units", "dropout", "weights", "adapter", "min_delta", "run_eagerly"}
#: notebook parameter names that differ from the option names
RENAMED = {"pad": "padding", "lr": "learning_rate"}


def test_every_training_option_a_student_needs_is_a_page_parameter():
    from cmlib.book.runs import option_names

    nb = nbformat.read(REPO / "notebooks" / "architecture.ipynb", as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    names = {p.name for p in PythonTranslator.inspect(cell)}
    wanted = {RENAMED.get(o, o) for o in option_names()} - INTERNAL
    assert wanted <= names, wanted - names
    assert {"epochs", "seeds", "data", "train_missing"} <= names


def _split_prints(source: str) -> list[str]:
    """The print calls of a code cell that write one line in several pieces (several arguments, sep or end)."""
    import ast

    try:
        tree = ast.parse(source)
    except SyntaxError:          # IPython magics: such a cell prints nothing of ours
        return []
    return [ast.unparse(n) for n in ast.walk(tree)
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "print"
            and (len(n.args) > 1 or any(isinstance(a, ast.Starred) for a in n.args)
                 or any(k.arg in ("sep", "end") for k in n.keywords))]


def test_split_prints_are_found():
    assert _split_prints('print("a:", x)\nprint(f"b: {x}")') == ["print('a:', x)"]
    assert _split_prints('print(*xs)\nprint("a", end="")') == ["print(*xs)", "print('a', end='')"]
    assert _split_prints('print(f"a {x}")\nprint()') == []


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_printed_lines_are_written_in_one_piece(path: Path):
    """``print("a:", x)`` writes "a:", " " and x separately; the kernel may send them as two stream messages
    (it flushes on a timer), and myst-nb's ``nb_merge_streams`` joins stream messages with a newline after
    stripping each, so the page would read "a:" and "x" on two lines (a CI build did: the pooling example of
    cnn_fundamentals, whose numbers the book test checks). One f-string per line is written whole."""
    nb = nbformat.read(path, as_version=4)
    found = [p for c in nb.cells if c.cell_type == "code" for p in _split_prints(c.source)]
    assert not found, f"{path.name}: print one f-string per line instead of {found}"
