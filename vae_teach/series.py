"""Run the notebook series headless and write each executed lesson as HTML.

The source notebooks are never modified: each one is read, executed in a
fresh kernel with its own folder as the working directory, and written to
``out_dir`` as ``NAME.html`` (and the executed ``NAME.ipynb``), each file
written whole to a temporary name first and then renamed.

The HTML reads offline: its math is typeset by a local MathJax 2 copied into
``out_dir/mathjax`` (``vae_teach.mathjax``), and it loads nothing from a CDN.
Where no MathJax is installed it falls back to nbconvert's CDN copy and says so.
"""

from __future__ import annotations

import time
import re
from dataclasses import dataclass
from pathlib import Path

# "02_elbo.ipynb", and "02b_gradient_estimators.ipynb" for a lesson's second half; "_" sorts before
# the letters, so 02_ comes before 02b_.
LESSON_NAME = re.compile(r"\d\d[a-z]?_")


@dataclass(frozen=True)
class LessonRun:
    """One executed notebook: where it came from, where its HTML went, how long it took."""

    notebook: Path
    html: Path
    seconds: float


def lesson_paths(notebook_dir) -> list[Path]:
    """The lessons in order: ``NN_name.ipynb`` (and ``NNb_name.ipynb``, a lesson's second half) sorted by name."""
    notebook_dir = Path(notebook_dir)
    if not notebook_dir.is_dir():
        raise FileNotFoundError(
            f"no notebook folder at {notebook_dir.resolve()}; run from the repository root or pass "
            "--notebooks PATH."
        )
    paths = sorted(p for p in notebook_dir.glob("[0-9][0-9]*_*.ipynb") if LESSON_NAME.match(p.name))
    if not paths:
        raise FileNotFoundError(f"no lessons (NN_name.ipynb) in {notebook_dir.resolve()}.")
    return paths


def execute_notebook(path: Path, timeout: int = 600, kernel_name: str = "python3"):
    """Execute a copy of the notebook at ``path`` in a fresh kernel; return the executed copy."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name=kernel_name,
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    return nb


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


# The thread count the committed notebooks are executed with (and a student's run, vae_teach.threads);
# `pytest notebooks/NN_name.ipynb` re-runs one with another (the root conftest.py), so an output that
# depends on it fails nbval.
COMMITTED_THREADS = 1


def execute_in_place(path, timeout: int = 900, log=print, parameters: dict | None = None) -> Path | None:
    """Rebuild a notebook from its jupytext source, execute it in a fresh kernel, and save it.

    ``path`` is the MyST Markdown source (``NAME.md``) or its notebook (``NAME.ipynb``); the
    ``.md`` is the source of truth. Its cells are executed top to bottom with
    ``$VAE_TEACH_THREADS`` set to ``COMMITTED_THREADS``, and the executed notebook, outputs
    and all, replaces ``NAME.ipynb`` only once the whole run has succeeded. Returns that path.

    ``parameters`` (e.g. ``{"SEED": 3}``) runs the lesson with other knobs instead: the
    assignments go into a cell after the ``parameters`` cell (as papermill does), every check
    still runs, and nothing is saved (returns None): how to try a lesson's claims on other seeds.
    """
    import os

    import jupytext

    from vae_teach.threads import ENV_VAR

    source = Path(path).with_suffix(".md")
    target = source.with_suffix(".ipynb")
    if not source.exists():
        raise FileNotFoundError(f"no jupytext source {source}: every notebook is edited as NAME.md beside "
                                f"NAME.ipynb (create it with `jupytext --to md:myst {target}`).")
    nb = jupytext.read(source)
    if parameters:
        import nbformat

        tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
        if not tagged:
            raise ValueError(f"{source} has no cell tagged 'parameters' to override.")
        lines = "\n".join(f"{name} = {value!r}" for name, value in parameters.items())
        nb.cells.insert(tagged[0] + 1, nbformat.v4.new_code_cell(f"# injected parameters\n{lines}"))
    log(f"executing {source}" + (f" with {parameters}" if parameters else "") + " ...")
    start = time.perf_counter()
    previous = os.environ.get(ENV_VAR)
    os.environ[ENV_VAR] = str(COMMITTED_THREADS)
    try:
        from nbclient import NotebookClient

        NotebookClient(nb, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": str(source.parent)}}).execute()
    finally:
        if previous is None:
            os.environ.pop(ENV_VAR, None)
        else:
            os.environ[ENV_VAR] = previous
    seconds = time.perf_counter() - start
    if parameters:
        log(f"  every cell ran in {seconds:.0f} s (not saved: parameters were overridden)")
        return None
    _write_atomically(target, jupytext.writes(nb, fmt="ipynb"))
    log(f"  done in {seconds:.0f} s -> {target}")
    return target


# nbconvert's lab template without the require.js it loads from a CDN on every page: the lessons have no
# JavaScript outputs that need it (their widgets need a running kernel anyway).
_OFFLINE_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
"""


def offline_html_exporter(out_dir, log=print):
    """An nbconvert HTMLExporter whose pages, written to ``out_dir``, load nothing from a CDN.

    MathJax is copied from the local install into ``out_dir/mathjax`` and the pages point there; with
    no local MathJax the pages keep nbconvert's CDN address (math needs a network then), with a note.
    """
    import jinja2
    from nbconvert import HTMLExporter

    from vae_teach.mathjax import SCRIPT, copy_mathjax, find_mathjax

    exporter = HTMLExporter(template_name="lab")
    exporter.extra_loaders = [jinja2.DictLoader({"vae_teach_offline.html.j2": _OFFLINE_TEMPLATE})]
    exporter.template_file = "vae_teach_offline.html.j2"
    try:
        copy_mathjax(find_mathjax(), Path(out_dir) / "mathjax")
    except FileNotFoundError as error:
        log(f"note: the HTML's math will load MathJax from a CDN ({error}); `make book` needs none.")
    else:
        exporter.mathjax_url = f"mathjax/{SCRIPT}"
    return exporter


def run_series(notebook_dir="notebooks", out_dir="build", timeout: int = 600, only=None,
               log=print) -> list[LessonRun]:
    """Execute every lesson (or those whose names contain a string in ``only``) and export HTML.

    A lesson that fails stops the run with its error; the lessons before it
    are already written to ``out_dir``. The HTML renders its math offline (see the module's docstring).
    """
    import nbformat

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    exporter = offline_html_exporter(out_dir, log=log)
    runs = []
    for path in lesson_paths(notebook_dir):
        if only and not any(key in path.name for key in only):
            continue
        log(f"running {path.name} ...")
        start = time.perf_counter()
        nb = execute_notebook(path, timeout=timeout)
        seconds = time.perf_counter() - start
        html, _ = exporter.from_notebook_node(nb)
        html_path = out_dir / (path.stem + ".html")
        _write_atomically(html_path, html)
        _write_atomically(out_dir / path.name, nbformat.writes(nb))
        log(f"  done in {seconds:.0f} s -> {html_path}")
        runs.append(LessonRun(path, html_path, seconds))
    return runs


def watermark(packages=("numpy", "scipy", "matplotlib", "pytensor", "torch", "vae_teach")) -> str:
    """One line of versions, for the closing cell of every lesson: what this run used."""
    import platform
    from importlib import metadata

    parts = [f"Python {platform.python_version()}"]
    for name in packages:
        try:
            parts.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            parts.append(f"{name} (not installed)")
    return " | ".join(parts)
