"""Student versions of the lessons: solutions taken out, outputs cleared.

In a solution notebook every exercise's answer sits between two marker lines:

    def gaussian_kl(mu, logvar):
        ### BEGIN SOLUTION
        return 0.5 * np.sum(np.exp(logvar) + mu**2 - 1 - logvar, axis=1)
        ### END SOLUTION

The student version keeps the markers' indentation and puts in their place

        # YOUR CODE HERE
        raise NotImplementedError()

so the notebook still runs top to bottom and each check reports "not
implemented yet". Unbalanced or nested markers are refused, naming the
notebook and the cell.
"""

from __future__ import annotations

from pathlib import Path

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"


class MarkerError(ValueError):
    """The solution markers of a notebook are unbalanced or nested."""


def strip_solutions(source: str, where: str = "cell") -> tuple[str, int]:
    """Replace every marked solution in one cell's source. Returns (new source, solutions replaced)."""
    out, inside, count = [], False, 0
    for number, line in enumerate(source.splitlines(keepends=True), start=1):
        stripped = line.strip()
        if stripped == BEGIN:
            if inside:
                raise MarkerError(f"{where}, line {number}: '{BEGIN}' inside another solution; "
                                  f"close the first with '{END}'.")
            inside, count = True, count + 1
            indent = line[: len(line) - len(line.lstrip())]
            out.append(f"{indent}# YOUR CODE HERE\n{indent}raise NotImplementedError()\n")
        elif stripped == END:
            if not inside:
                raise MarkerError(f"{where}, line {number}: '{END}' without a '{BEGIN}' before it.")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise MarkerError(f"{where}: '{BEGIN}' is never closed by '{END}'.")
    return "".join(out), count


def student_version(nb, name: str = "notebook"):
    """A copy of the notebook node ``nb`` with solutions replaced and every output cleared."""
    import copy

    nb = copy.deepcopy(nb)
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        cell.source, _ = strip_solutions(cell.source, where=f"{name}, cell {index}")
        cell.outputs = []
        cell.execution_count = None
    nb.metadata.pop("widgets", None)
    return nb


def write_student_notebooks(notebook_dir, out_dir) -> list[Path]:
    """Write the student version of every lesson in ``notebook_dir`` to ``out_dir``.

    All notebooks are checked before any is written, so a bad marker leaves
    ``out_dir`` untouched. Returns the paths written.
    """
    import nbformat

    from vae_teach.series import lesson_paths

    converted = []
    for path in lesson_paths(notebook_dir):
        nb = nbformat.read(path, as_version=4)
        converted.append((path.name, student_version(nb, name=path.name)))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, nb in converted:
        target = out_dir / name
        tmp = target.with_name(name + ".tmp")
        nbformat.write(nb, tmp)
        tmp.replace(target)
        written.append(target)
    return written
