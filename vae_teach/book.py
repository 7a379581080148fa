"""The book: the executed lessons as a static site that reads offline (``make book``).

The site is built with jupyter-book 1.x (Sphinx, myst-nb, sphinx-book-theme) from
the committed, executed notebooks, with no re-execution. Nothing is written into
the repository: the book's source is assembled at build time in a staging folder
that mirrors the repository's layout (so launch buttons point at
``notebooks/NN_name.ipynb``), from

- ``book/``: ``_config.yml``, the home page (which includes parts of
  ``README.md``), the bibliography page and its ``references.bib``;
- every lesson, ``notebooks/NN_name.ipynb`` in ``vae_teach.series.lesson_paths``
  order (the jupytext ``.md`` twins and anything that is not a lesson stay out), its
  display math joined onto one line (``join_display_math``);
- one API page per module of this package, generated here (autodoc);
- ``_toc.yml``, generated here from the two lists above.

Math is typeset by a local copy of MathJax 2 (Debian's ``libjs-mathjax``) put in
the site's ``_static/mathjax/``, so no page asks a CDN for anything it shows.

    python -m vae_teach.book --out build/book     # what `make book` runs
"""

from __future__ import annotations

import pkgutil
import re
import shutil
import time
from pathlib import Path

import nbformat
import yaml

from vae_teach.mathjax import copy_mathjax, find_mathjax
from vae_teach.series import lesson_paths

ROOT = Path(__file__).resolve().parents[1]
# jupyter-book's extensions the book goes without: thebe (live code from a Binder kernel; loads its library
# from unpkg, and sphinx-thebe writes its settings script twice, a console error on every page) and
# comments (hypothes.is, utterances: network widgets).
WITHOUT = ("sphinx_thebe", "sphinx_comments")
def api_modules(package: str = "vae_teach") -> list[str]:
    """Every module of ``package`` (sub-packages and their modules too), sorted; ``__main__`` left out."""
    import importlib

    root = importlib.import_module(package)
    names = [package] + [info.name for info in pkgutil.walk_packages(root.__path__, package + ".")]
    return sorted(name for name in names if not name.endswith("__main__"))


def api_page(module: str) -> str:
    """The MyST source of one module's API page: its docstrings, through autodoc."""
    return (f"# `{module}`\n\n"
            "```{eval-rst}\n"
            f".. automodule:: {module}\n"
            "   :members:\n"
            "   :show-inheritance:\n"
            "```\n")


def toc(lessons: list[str], modules: list[str]) -> dict:
    """The book's ``_toc.yml`` (sphinx-external-toc's ``jb-book`` format) as a dict.

    ``lessons``: the lessons' paths relative to the book's root, in order, without suffix
    (``notebooks/00_setup_check``); ``modules``: dotted module names, one API page each.
    """
    if not lessons:
        raise ValueError("the book needs at least one lesson")
    return {
        "format": "jb-book",
        "root": "index",
        "parts": [
            {"caption": "Lessons", "numbered": False,
             "chapters": [{"file": lesson} for lesson in lessons]},
            {"caption": "Reference",
             "chapters": [{"file": "references"},
                          {"file": "api/index", "sections": [{"file": f"api/{m}"} for m in modules]}]},
        ],
    }


_FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
_DISPLAY_MATH = re.compile(r"\$\$(.+?)\$\$", re.DOTALL)


def join_display_math(markdown: str) -> str:
    """``markdown`` with each ``$$...$$`` formula on one line (code blocks left alone).

    JupyterLab and GitHub read a formula first; MyST reads the Markdown blocks first, so a formula's
    line that starts with ``+`` or ``-`` becomes a list item and the formula is cut in two, shown raw.
    A newline inside TeX is a space, so joining the lines changes nothing else. The staged copy of a
    lesson is changed, never the lesson.
    """
    def join(match):
        return "$$" + re.sub(r"[ \t]*\n[ \t]*", " ", match.group(1)) + "$$"

    pieces, last = [], 0
    for fence in _FENCE.finditer(markdown):
        pieces += [_DISPLAY_MATH.sub(join, markdown[last:fence.start()]), fence.group(0)]
        last = fence.end()
    pieces.append(_DISPLAY_MATH.sub(join, markdown[last:]))
    return "".join(pieces)


def stage(src: Path, root: Path = ROOT, notebook_dir: Path | None = None) -> Path:
    """Assemble the book's source in ``src`` (emptied first) from ``root``; return ``src``."""
    root, src = Path(root), Path(src)
    if not (root / "book" / "_config.yml").is_file():
        raise FileNotFoundError(f"no book/_config.yml in {root}: the book is built from a clone of the "
                                "repository (its book/, notebooks/ and README.md), e.g. with `make book`.")
    notebook_dir = Path(notebook_dir) if notebook_dir else root / "notebooks"
    if src.exists():
        shutil.rmtree(src)
    shutil.copytree(root / "book", src)
    shutil.copy2(root / "README.md", src / "README.md")    # the home page includes parts of it
    lessons = []
    (src / "notebooks").mkdir(parents=True, exist_ok=True)
    for path in lesson_paths(notebook_dir):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "markdown":
                cell.source = join_display_math(cell.source)
        nbformat.write(nb, src / "notebooks" / path.name)
        lessons.append(f"notebooks/{path.stem}")
    modules = api_modules()
    (src / "api").mkdir(exist_ok=True)
    for module in modules:
        (src / "api" / f"{module}.md").write_text(api_page(module), encoding="utf-8")
    (src / "_toc.yml").write_text("# generated by vae_teach.book; do not edit\n"
                                  + yaml.safe_dump(toc(lessons, modules), sort_keys=False), encoding="utf-8")
    return src


def build(out_dir="build/book", root: Path = ROOT, work_dir=None, log=print, verbose: bool = False) -> Path:
    """Build the site into ``out_dir`` (its ``index.html`` is the home page); return ``out_dir``.

    No notebook is executed: the pages show the outputs committed in the ``.ipynb`` files.
    ``work_dir`` (default: ``out_dir`` + ``-src``) holds the staged source and Sphinx's doctrees.
    """
    from jupyter_book.config import get_final_config
    from jupyter_book.sphinx import build_sphinx

    out_dir = Path(out_dir).resolve()
    work_dir = Path(work_dir).resolve() if work_dir else out_dir.with_name(out_dir.name + "-src")
    mathjax = find_mathjax()            # fail before the build, not after it
    start = time.perf_counter()
    src = stage(work_dir / "source", root=root)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    # As `jupyter-book build` calls it: the config from _config.yml, the toc given explicitly, and
    # jupyter-book's extensions less those that load from the network (see WITHOUT).
    overrides = {"external_toc_path": (src / "_toc.yml").as_posix(), "latex_individualpages": False}
    config, _ = get_final_config(user_yaml=src / "_config.yml", cli_config=dict(overrides), sourcedir=src)
    overrides["extensions"] = [e for e in config["extensions"] if e not in WITHOUT]
    result = build_sphinx(src, out_dir, doctreedir=work_dir / "doctrees", noconfig=True,
                          path_config=src / "_config.yml", builder="html", freshenv=True,
                          confoverrides=overrides, really_quiet=not verbose)
    if result:
        raise RuntimeError(f"the book's Sphinx build failed ({result}); run it again with "
                           "`python -m vae_teach.book --verbose` to see why.")
    copy_mathjax(mathjax, out_dir / "_static" / "mathjax")
    pages = len(pages_of(out_dir))
    log(f"book: {pages} pages in {time.perf_counter() - start:.0f} s -> {out_dir / 'index.html'}")
    return out_dir


def pages_of(site: Path) -> list[Path]:
    """The built site's pages (its HTML files outside ``_static``)."""
    return sorted(p for p in Path(site).rglob("*.html") if "_static" not in p.relative_to(site).parts)


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m vae_teach.book", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="build/book", help="where the site goes (default: build/book)")
    parser.add_argument("--verbose", action="store_true", help="show Sphinx's log and warnings")
    args = parser.parse_args(argv)
    build(args.out, verbose=args.verbose)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
