"""Running the series headless: executed copies and HTML, sources untouched."""

import nbformat
import pytest

from vae_teach.series import lesson_paths, run_series


def _write_lesson(path, source):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# A lesson"), nbformat.v4.new_code_cell(source)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def test_run_series_executes_in_order_and_writes_html(tmp_path):
    lessons = tmp_path / "notebooks"
    lessons.mkdir()
    _write_lesson(lessons / "02_second.ipynb", "print('second', 6 * 7)")
    _write_lesson(lessons / "01_first.ipynb", "open('made_here.txt', 'w').write('x')\nprint('first')")
    (lessons / "scratch.ipynb").write_text("not a lesson")
    before = (lessons / "01_first.ipynb").read_text()
    runs = run_series(lessons, tmp_path / "build", timeout=120, log=lambda *_: None)
    assert [r.notebook.name for r in runs] == ["01_first.ipynb", "02_second.ipynb"]
    assert "second 42" in runs[1].html.read_text()
    assert (lessons / "made_here.txt").exists(), "a lesson runs in its own folder"
    assert (lessons / "01_first.ipynb").read_text() == before, "the source notebook was modified"
    executed = nbformat.read(tmp_path / "build" / "01_first.ipynb", as_version=4)
    assert executed.cells[1].outputs[0]["text"] == "first\n"


def test_missing_or_empty_notebook_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no notebook folder"):
        lesson_paths(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=r"no lessons \(NN_name.ipynb\)"):
        lesson_paths(tmp_path)


def _tiny_lesson(folder):
    source = folder / "00_tiny.md"
    source.write_text(
        "---\njupytext:\n  text_representation:\n    extension: .md\n    format_name: myst\n"
        "kernelspec:\n  display_name: Python 3\n  language: python\n  name: python3\n---\n\n"
        "# Tiny\n\n```{code-cell} ipython3\n:tags: [parameters]\n\nSEED = 0\n```\n\n"
        "```{code-cell} ipython3\nimport os\nprint(SEED, os.environ['VAE_TEACH_THREADS'])\n"
        "assert SEED < 3, 'a claim that fails for seed 3'\n```\n")
    return source


def test_execute_in_place_saves_the_executed_notebook_with_the_committed_thread_count(tmp_path):
    import nbformat

    from vae_teach.series import COMMITTED_THREADS, execute_in_place

    target = execute_in_place(_tiny_lesson(tmp_path), log=lambda *a: None)
    nb = nbformat.read(target, 4)
    assert [c.execution_count for c in nb.cells if c.cell_type == "code"] == [1, 2]
    assert nb.cells[-1].outputs[0]["text"] == f"0 {COMMITTED_THREADS}\n"


def test_execute_with_other_parameters_runs_the_checks_and_saves_nothing(tmp_path):
    from nbclient.exceptions import CellExecutionError

    from vae_teach.series import execute_in_place

    source = _tiny_lesson(tmp_path)
    assert execute_in_place(source, parameters={"SEED": 2}, log=lambda *a: None) is None
    assert not source.with_suffix(".ipynb").exists()
    with pytest.raises(CellExecutionError, match="a claim that fails for seed 3"):
        execute_in_place(source, parameters={"SEED": 3}, log=lambda *a: None)
    assert not source.with_suffix(".ipynb").exists()


def _has_mathjax():
    from vae_teach.mathjax import find_mathjax

    try:
        find_mathjax()
    except FileNotFoundError:
        return False
    return True


EXTERNAL = r"<(?:script|link)\b[^>]*\b(?:src|href)=\"((?:https?:)?//[^\"]+)"


@pytest.mark.skipif(not _has_mathjax(), reason="no local MathJax 2: sudo apt-get install libjs-mathjax")
def test_series_html_typesets_math_from_a_local_mathjax_and_loads_nothing_from_a_cdn(tmp_path):
    import re

    from vae_teach.series import offline_html_exporter

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("The ELBO: $$\\log p(x) \\ge \\mathbb{E}_q[\\log p(x, z) - \\log q(z)]$$")]
    html, _ = offline_html_exporter(tmp_path, log=lambda *a: None).from_notebook_node(nb)
    assert re.findall(EXTERNAL, html) == [], "the page loads from the network"
    assert 'src="mathjax/MathJax.js?config=TeX-AMS_CHTML' in html
    for part in ("MathJax.js", "config/TeX-AMS_CHTML.js", "config/Safe.js", "jax/output/CommonHTML/jax.js"):
        assert (tmp_path / "mathjax" / part).is_file(), f"{part} was not copied beside the HTML"


def test_series_html_without_a_local_mathjax_says_so_and_keeps_the_cdn(tmp_path, monkeypatch):
    import vae_teach.mathjax as mathjax
    from vae_teach.series import offline_html_exporter

    monkeypatch.setattr(mathjax, "MATHJAX_DIRS", ())
    monkeypatch.delenv("VAE_TEACH_MATHJAX", raising=False)
    notes = []
    exporter = offline_html_exporter(tmp_path, log=notes.append)
    assert exporter.mathjax_url.startswith("https://"), "with no local MathJax, nbconvert's own address stays"
    assert notes and "libjs-mathjax" in notes[0]
