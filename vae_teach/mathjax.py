"""The local MathJax 2 that both HTML outputs (the book, ``make series``) typeset their math with.

Classrooms are often offline, so no page loads MathJax from a CDN: the parts of
MathJax 2.7 that the ``TeX-AMS_CHTML`` configuration needs (about 1.5 MB of the
package's 54 MB) are copied beside the pages from a local install, Debian's
``libjs-mathjax`` (``/usr/share/javascript/mathjax``) or ``$VAE_TEACH_MATHJAX``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

# Where MathJax 2 may live, after $VAE_TEACH_MATHJAX: Debian's libjs-mathjax (and its older location).
MATHJAX_DIRS = ("/usr/share/javascript/mathjax", "/usr/share/mathjax")
# TeX in, CommonHTML out, its fonts, the extensions it loads, the fast preview, and the Safe
# configuration nbconvert's template asks for.
PARTS = ("MathJax.js", "config/TeX-AMS_CHTML.js", "config/Safe.js", "extensions", "jax/input/TeX",
         "jax/element/mml", "jax/output/CommonHTML", "jax/output/PreviewHTML", "fonts/HTML-CSS/TeX/woff",
         "fonts/HTML-CSS/TeX/otf")
# The script address, relative to the folder MathJax is copied into.
SCRIPT = "MathJax.js?config=TeX-AMS_CHTML"


def find_mathjax(env=None) -> Path:
    """The folder of a MathJax 2 install (``MathJax.js`` in it), or a FileNotFoundError saying what to install."""
    env = os.environ if env is None else env
    candidates = ([env["VAE_TEACH_MATHJAX"]] if env.get("VAE_TEACH_MATHJAX") else []) + list(MATHJAX_DIRS)
    for folder in map(Path, candidates):
        if (folder / "MathJax.js").is_file():
            return folder
    raise FileNotFoundError(
        "no MathJax 2 found (looked in " + ", ".join(candidates) + "): the HTML pages typeset their math "
        "offline with a local copy. Install Debian's libjs-mathjax (sudo apt-get install libjs-mathjax; "
        "scripts/install_system_packages.sh does it), or set VAE_TEACH_MATHJAX to a MathJax 2.7 folder.")


def copy_mathjax(source, target) -> Path:
    """Copy the parts of MathJax 2 in ``PARTS`` from ``source`` into the folder ``target`` (replaced); return it."""
    source, target = Path(source), Path(target)
    if target.exists():
        shutil.rmtree(target)
    for part in PARTS:
        origin = source / part
        if origin.is_dir():
            shutil.copytree(origin, target / part)
        elif origin.is_file():
            (target / part).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, target / part)
        else:
            raise FileNotFoundError(f"MathJax at {source} lacks {part}: is it MathJax 2.7 (libjs-mathjax)?")
    return target
