"""The Colab first cell: installs the package on Colab, does nothing elsewhere (nothing real is installed)."""

import ast
import subprocess
import sys
import types

from vae_teach import colab


def test_on_colab_looks_for_the_google_colab_module():
    assert colab.on_colab({"google.colab": types.ModuleType("google.colab")})
    assert not colab.on_colab({"google": types.ModuleType("google")}), "google alone is not Colab"
    assert not colab.on_colab(), "these tests do not run on Colab"


def test_install_if_on_colab_runs_pip_only_on_colab():
    calls = []
    assert colab.install_if_on_colab(modules={}, run=calls.append, log=lambda *a: None) is False
    assert calls == [], "pip ran outside Colab"
    installed = colab.install_if_on_colab(modules={"google.colab": object()}, run=calls.append,
                                          log=lambda *a: None)
    assert installed is True and calls == [colab.pip_command()]
    command = calls[0]
    assert command[:4] == [sys.executable, "-m", "pip", "install"], f"not this Python's pip: {command}"
    assert command[-1] == f"vae_teach[pytensor] @ git+{colab.REPOSITORY_URL}@{colab.BRANCH}"


def test_a_failed_install_raises():
    def fail(command):
        raise subprocess.CalledProcessError(1, command)

    try:
        colab.install_if_on_colab(modules={"google.colab": object()}, run=fail, log=lambda *a: None)
    except subprocess.CalledProcessError:
        pass
    else:
        raise AssertionError("a failed pip install passed silently")


def _run_first_cell(monkeypatch, on_colab: bool) -> list:
    calls = []
    monkeypatch.setattr(subprocess, "check_call", lambda command: calls.append(command))
    if on_colab:
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    exec(compile(colab.FIRST_CELL, "<first cell>", "exec"), {})
    return calls


def test_the_first_cell_does_what_install_if_on_colab_does(monkeypatch):
    assert _run_first_cell(monkeypatch, on_colab=False) == [], "the cell ran pip outside Colab"
    assert _run_first_cell(monkeypatch, on_colab=True) == [colab.pip_command()]


def test_the_first_cell_does_not_need_the_package():
    """On Colab the package is not installed yet when the cell runs: it may import only the standard library."""
    imported = set()
    for node in ast.walk(ast.parse(colab.FIRST_CELL)):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module.split(".")[0])
    assert imported == {"sys", "subprocess"}, f"the first cell imports {imported}"
