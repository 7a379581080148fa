"""Running a lesson on Google Colab: install this package first, there and only there.

A lesson opened from the book's Colab button runs in a machine that has the
notebook but not ``vae_teach``. Its first cell installs the package from the
repository when it runs on Colab, and does nothing anywhere else (a laptop, CI,
Binder, where the package is already installed).

That cell cannot import ``vae_teach`` (it is not installed yet), so it holds the
same logic as ``install_if_on_colab`` written out in plain Python:
``FIRST_CELL`` is its source, and the tests check that the two do the same thing.

The repository's address is a placeholder until the project is published: a
maintainer sets ``REPOSITORY_URL`` here and ``repository: url`` in
``book/_config.yml`` to the same address (tests/test_book.py checks they agree).
"""

from __future__ import annotations

import subprocess
import sys

# PLACEHOLDER: the published repository (also book/_config.yml's repository url).
REPOSITORY_URL = "https://github.com/OWNER/vae-teach"
BRANCH = "main"
# Colab ships PyTorch; lesson 04 needs PyTensor. (The `torch` extra pins a CPU build that Colab must not get.)
EXTRAS = ("pytensor",)


def on_colab(modules=None) -> bool:
    """True when running inside Google Colab (its ``google.colab`` module is loaded)."""
    return "google.colab" in (sys.modules if modules is None else modules)


def requirement(url: str = REPOSITORY_URL, branch: str = BRANCH, extras=EXTRAS) -> str:
    """The pip requirement that installs this package from the repository, e.g.
    ``vae_teach[pytensor] @ git+https://github.com/OWNER/vae-teach@main``."""
    name = f"vae_teach[{','.join(extras)}]" if extras else "vae_teach"
    return f"{name} @ git+{url}@{branch}"


def pip_command(python: str | None = None) -> list[str]:
    """The command ``install_if_on_colab`` runs: this Python's pip, quietly, on ``requirement()``."""
    return [python or sys.executable, "-m", "pip", "install", "--quiet", requirement()]


def install_if_on_colab(modules=None, run=None, log=print) -> bool:
    """On Colab, pip-install this package from the repository; elsewhere do nothing.

    ``modules`` (default ``sys.modules``) is where Colab is detected; ``run`` (default
    ``subprocess.check_call``) runs the command, so a failed install raises. Returns
    whether it installed.
    """
    if not on_colab(modules):
        return False
    command = pip_command()
    log("on Colab: installing the companion package (" + requirement() + ") ...")
    (run or subprocess.check_call)(command)
    return True


# The first cell of a lesson: install_if_on_colab, written without importing vae_teach.
FIRST_CELL = f'''\
# On Google Colab, install the companion package first; anywhere else this cell does nothing.
import sys
if "google.colab" in sys.modules:
    import subprocess
    subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet",
                           "{requirement()}"])
'''
