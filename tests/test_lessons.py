"""The committed lessons keep the series' conventions: executed top to bottom, markers nbval
honours, a parameters cell, exercises with checks, and a row in the README's lesson table."""

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
# NN_name, and NNb_name for the second half of a lesson split in two (until the series is renumbered)
LESSONS = sorted(p for p in (ROOT / "notebooks").glob("[0-9][0-9]*_*.ipynb") if re.match(r"\d\d[a-z]?_", p.name))
NOTEBOOKS = LESSONS + sorted((ROOT / "apps").glob("*.ipynb"))


def test_there_are_lessons_00_to_08_in_order():
    numbers = sorted({int(p.name[:2]) for p in LESSONS})
    assert numbers == list(range(len(numbers))) and len(numbers) >= 9, numbers


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_lesson_is_committed_executed_top_to_bottom_in_one_kernel(path):
    cells = [c for c in nbformat.read(path, 4).cells if c.cell_type == "code"]
    counts = [c.execution_count for c in cells]
    assert counts == list(range(1, len(cells) + 1)), f"{path.name}: execution counts {counts}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_nbval_markers_stand_alone_on_their_line(path):
    # nbval honours "# NBVAL_IGNORE_OUTPUT" only as a whole line; with a trailing comment the
    # output is compared after all, and a stale output fails on another machine.
    for cell in nbformat.read(path, 4).cells:
        for line in cell.source.splitlines():
            if "NBVAL_" in line and cell.cell_type == "code":
                assert re.fullmatch(r"# NBVAL_[A-Z_]+", line.strip()), f"{path.name}: {line!r}"


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_lesson_has_parameters_exercises_with_checks_and_a_watermark(path):
    cells = nbformat.read(path, 4).cells
    assert cells[0].cell_type == "markdown" and "assumes" in cells[0].source, "opens with what it assumes"
    tagged = [i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and tagged[0] <= 2 and cells[tagged[0]].cell_type == "code", \
        "one code cell tagged 'parameters', at the top (papermill and the README rely on it)"
    assert "watermark()" in cells[-1].source, "the last cell prints the watermark"
    if path.name.startswith("00_"):
        return
    sources = "\n".join(c.source for c in cells)
    solutions = sources.count("### BEGIN SOLUTION")
    assert solutions >= 3 and solutions == sources.count("### END SOLUTION"), path.name
    assert len(re.findall(r"exercises\.check_\w+\(", sources)) >= solutions, "each solution has its check"


def test_readme_lists_every_lesson():
    readme = (ROOT / "README.md").read_text()
    for path in LESSONS:
        assert f"(notebooks/{path.name})" in readme, f"README's lesson table lacks {path.name}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_and_its_jupytext_source_hold_the_same_cells(path):
    # The .md beside each notebook is its reviewable source (jupytext's MyST form): same cells, same
    # sources, same tags. Edit the .md, then `make lessons` syncs and executes the .ipynb.
    import jupytext

    source = path.with_suffix(".md")
    assert source.exists(), f"{path.name} has no jupytext source {source.name}: run `jupytext --sync {path}`"
    executed, text = jupytext.read(path), jupytext.read(source)

    def cells(nb):
        return [(c.cell_type, c.source, sorted(c.metadata.get("tags", []))) for c in nb.cells]

    a, b = cells(executed), cells(text)
    first_difference = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    assert a == b, (f"{path.name} and {source.name} differ from cell {first_difference} on "
                    f"({len(a)} and {len(b)} cells): edit the .md, then `make lessons LESSONS={source}`")


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_every_committed_widget_has_its_state_saved(path):
    # Without the widget state in the notebook's metadata, a page without a kernel (JupyterLab on
    # opening, nbconvert's HTML, the book) shows "Error displaying widget: model not found".
    # nbclient saves it (NotebookClient(store_widget_state=True), the default) and `vae-teach execute` keeps it.
    nb = nbformat.read(path, 4)
    views = [o["data"]["application/vnd.jupyter.widget-view+json"]["model_id"]
             for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
             if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    missing = [m for m in views if m not in state]
    assert not missing, f"{path.name}: {len(missing)} widget outputs without saved state: re-run `vae-teach execute`"
