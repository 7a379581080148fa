"""Student notebooks: solutions out, outputs cleared, bad markers refused, and they still run."""

from pathlib import Path

import nbformat
import pytest

from vae_teach.cli import main
from vae_teach.series import lesson_paths
from vae_teach.student import MarkerError, strip_solutions, write_student_notebooks

ROOT = Path(__file__).resolve().parents[1]
SOLUTION_CELL = '''def kl(mu, logvar):
    """doc"""
    ### BEGIN SOLUTION
    secret = 0.5 * (mu**2)
    return secret
    ### END SOLUTION

exercises.check_gaussian_kl(kl)
'''


def test_strip_solutions_keeps_the_indentation_and_the_rest():
    source, count = strip_solutions(SOLUTION_CELL)
    assert count == 1
    assert "secret" not in source and "BEGIN SOLUTION" not in source
    assert '    # YOUR CODE HERE\n    raise NotImplementedError()\n' in source
    assert source.startswith('def kl(mu, logvar):\n    """doc"""\n')
    assert source.endswith("exercises.check_gaussian_kl(kl)\n")


@pytest.mark.parametrize("source, words", [
    ("### BEGIN SOLUTION\nx = 1\n", "never closed"),
    ("x = 1\n### END SOLUTION\n", "without a"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION\n", "inside another"),
])
def test_unbalanced_markers_are_refused(source, words):
    with pytest.raises(MarkerError, match=words):
        strip_solutions(source, where="01_x.ipynb, cell 3")


def test_bad_markers_leave_the_output_folder_untouched(tmp_path):
    lessons = tmp_path / "notebooks"
    lessons.mkdir()
    for name, source in [("01_good.ipynb", SOLUTION_CELL), ("02_bad.ipynb", "### BEGIN SOLUTION\n")]:
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell(source)]
        nbformat.write(nb, lessons / name)
    with pytest.raises(MarkerError, match=r"02_bad.ipynb, cell 0"):
        write_student_notebooks(lessons, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def _solution_blocks(nb):
    blocks = []
    for cell in nb.cells:
        if cell.cell_type == "code" and "### BEGIN SOLUTION" in cell.source:
            inside = False
            for line in cell.source.splitlines():
                if line.strip() == "### BEGIN SOLUTION":
                    inside, block = True, []
                elif line.strip() == "### END SOLUTION":
                    inside = False
                    blocks.append("\n".join(block))
                elif inside:
                    block.append(line)
    return blocks


def test_the_lessons_student_versions_leak_no_solution_and_keep_no_output(tmp_path, capsys):
    assert main(["student-notebooks", str(tmp_path), "--notebooks", str(ROOT / "notebooks")]) == 0
    lessons = lesson_paths(ROOT / "notebooks")
    n_exercises = 0
    for path in lessons:
        solution = nbformat.read(path, as_version=4)
        student = nbformat.read(tmp_path / path.name, as_version=4)
        student_text = "\n".join(c.source for c in student.cells)
        for block in _solution_blocks(solution):
            n_exercises += 1
            for line in block.splitlines():
                code = line.strip()
                if code and not code.startswith("#"):
                    assert code not in student_text, f"{path.name}: solution line leaked: {code!r}"
        assert "BEGIN SOLUTION" not in student_text
        assert all(not c.get("outputs") for c in student.cells if c.cell_type == "code")
    lessons_with_exercises = [p for p in lessons if not p.name.startswith("00_")]
    assert n_exercises >= 3 * len(lessons_with_exercises), "each lesson should have 3-5 exercises"
