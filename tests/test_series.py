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
