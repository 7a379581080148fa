"""The explorer in a real browser: lesson 06 in JupyterLab, and the stand-alone Voila page.

Each test starts a server on 127.0.0.1 with a random token (JupyterLab or
Voila, from this Python environment, with its own empty Jupyter config,
data and runtime folders), drives headless Debian Chromium through
Playwright, moves a latent slider with the keyboard, and asserts that the
decoded image changed (two screenshots of the ``vae-decoded-image``
element differ) and that no cell or widget reported an error. Screenshots
go to ``$VAE_TEACH_SCREENSHOTS`` (default: ``build/screenshots``); their
paths are printed (``pytest -s`` or ``-rA`` shows them).

The tests skip, saying why, only where Chromium is not installed
(``sudo apt-get install chromium``; CI installs it). Playwright is used as a
library only: it never downloads a browser of its own here.

Also here, without a browser: the stand-alone page's notebook runs headless
with a model saved as ``vae-teach train`` saves it.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
LESSON = ROOT / "notebooks" / "06_latent_explorer.ipynb"
APP = ROOT / "apps" / "latent_explorer.ipynb"
CHROMIUM = Path(os.environ.get("VAE_TEACH_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-dev-shm-usage"]
SCREENSHOTS = Path(os.environ.get("VAE_TEACH_SCREENSHOTS", ROOT / "build" / "screenshots"))
SERVER_START_S = 90          # a cold JupyterLab start on a busy 2-core machine takes ~10-20 s
LESSON_RUN_S = 480           # the lesson takes ~1.5 min on its own; the browser and the server share the CPU
PAGE_RENDER_S = 240          # the Voila page trains a small model before it shows the explorer
REDRAW_S = 30
# JupyterLab refuses to run as root (as in CI containers) without this flag; Voila does not ask for it.
ROOT_FLAG = ["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.is_file(),
    reason=f"Chromium is not installed at {CHROMIUM}: the browser tests need Debian's chromium "
           "(sudo apt-get install chromium; scripts/install_system_packages.sh does it)")


# ----- servers --------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def isolated_env(home: Path) -> dict:
    """This environment, with Jupyter's config, data and runtime folders empty and private."""
    env = dict(os.environ)
    for var, sub in (("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_DATA_DIR", "data"),
                     ("JUPYTER_RUNTIME_DIR", "runtime"), ("IPYTHONDIR", "ipython")):
        (home / sub).mkdir(parents=True, exist_ok=True)
        env[var] = str(home / sub)
    env["JUPYTER_PLATFORM_DIRS"] = "1"
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env["PYTHONUNBUFFERED"] = "1"
    return env


@contextmanager
def server(command: list[str], url: str, log: Path, env: dict):
    """Run ``command`` (a server) in its own process group until ``url`` answers; stop it afterwards.

    Any HTTP answer counts (a 403 or 404 too): the server is up and serving.
    """
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(url, timeout=5):
                    break
            except urllib.error.HTTPError:
                break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not answer {url} within {SERVER_START_S} s:\n"
                                   f"{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield proc
    finally:
        stop(proc)


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the server's process group (the server and its kernels), then SIGKILL if needed."""
    for sig, wait in ((signal.SIGINT, 10), (signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        if proc.poll() is not None:
            break
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
    try:                                    # kernels the server started, if any outlived it
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def lab_settings(folder: Path) -> Path:
    """JupyterLab user settings: every cell in the page (no windowing), no news pop-ups."""
    settings = {
        "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
            {"fetchNews": "false", "checkForUpdates": False},
    }
    for name, value in settings.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))
    return folder


# ----- the browser ---------------------------------------------------------------
@pytest.fixture
def page():
    """A page of headless Debian Chromium, driven by Playwright (a fresh profile each time)."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the test extra)")
    with sync_api.sync_playwright() as playwright:
        # Playwright launches with a fresh temporary profile (--user-data-dir) of its own.
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            page = context.new_page()
            page.set_default_timeout(60_000)
            yield page
        finally:
            browser.close()


def screenshot_dir(name: str) -> Path:
    folder = SCREENSHOTS / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def move_slider_and_compare(page, explorer, folder: Path, presses: int = 12) -> tuple[Path, Path]:
    """Screenshot the decoded image, press ArrowRight on the first latent slider, screenshot again.

    Returns the two screenshot paths after asserting they differ (the image was redrawn).
    """
    image = explorer.locator("img.vae-decoded-image")
    image.scroll_into_view_if_needed()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())
    before_path, after_path = folder / "decoded-before.png", folder / "decoded-after.png"
    before = image.screenshot(path=str(before_path))
    readout = explorer.locator(".vae-latent-slider .widget-readout").first
    value_before = readout.inner_text()
    handle = explorer.locator(".vae-latent-slider .noUi-handle").first
    handle.focus()
    for _ in range(presses):
        handle.press("ArrowRight")
    deadline = time.monotonic() + REDRAW_S
    after = image.screenshot(path=str(after_path))
    while after == before and time.monotonic() < deadline:
        time.sleep(0.5)
        after = image.screenshot(path=str(after_path))
    print(f"\nscreenshots: {before_path} -> {after_path} (slider z1: {value_before} -> {readout.inner_text()})")
    assert readout.inner_text() != value_before, "the slider did not move"
    assert after != before, f"the decoded image did not change within {REDRAW_S} s of moving the slider"
    status = explorer.locator(".vae-explorer-status").inner_text()
    assert "failed" not in status, f"the explorer reported: {status}"
    explorer.screenshot(path=str(folder / "explorer.png"))
    return before_path, after_path


def assert_no_error_output(page) -> None:
    """No traceback in any output, and no widget that failed to render."""
    for text in page.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]').all_inner_texts():
        assert "Traceback" not in text and "Error" not in text, f"a cell wrote an error:\n{text[:2000]}"
    assert page.get_by_text("Error displaying widget").count() == 0, "a widget failed to render"


# ----- JupyterLab -----------------------------------------------------------------
NOTEBOOK_STATE_JS = """() => {
    const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;
    if (!panel || !panel.content || !panel.content.model || !panel.sessionContext) return null;
    const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
    const cells = panel.content.model.cells;
    let pending = 0, code = 0;
    const errors = [];
    for (let i = 0; i < cells.length; i++) {
        const cell = cells.get(i);
        if (cell.type !== 'code') continue;
        code += 1;
        if (cell.executionCount === null) pending += 1;
        for (const out of cell.outputs.toJSON()) {
            if (out.output_type === 'error') errors.push(`cell ${i}: ${out.ename}: ${out.evalue}`);
        }
    }
    return {kernel: kernel ? kernel.status : 'none', code, pending, errors};
}"""


def wait_for_state(page, predicate, timeout_s: float, what: str) -> dict:
    deadline = time.monotonic() + timeout_s
    state = None
    while time.monotonic() < deadline:
        state = page.evaluate(NOTEBOOK_STATE_JS)
        if state and state["errors"]:
            raise AssertionError("the lesson raised in the browser:\n" + "\n".join(state["errors"]))
        if state and predicate(state):
            return state
        time.sleep(1.0)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}; last state {state}")


@needs_chromium
@pytest.mark.skipif(not LESSON.is_file(), reason="lesson 06 is not built yet")
def test_the_lesson_runs_in_jupyterlab_and_its_slider_redraws_the_face(tmp_path, page):
    root = tmp_path / "lab-root"                       # a copy: autosave must not touch the committed lesson
    root.mkdir()
    shutil.copy(LESSON, root / LESSON.name)
    port, token = free_port(), secrets.token_hex(16)
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
               f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
               "--ServerApp.port_retries=0", "--LabApp.expose_app_in_browser=True",
               f"--LabApp.user_settings_dir={lab_settings(tmp_path / 'lab-settings')}",
               f"--LabApp.workspaces_dir={tmp_path / 'lab-workspaces'}"] + ROOT_FLAG
    base = f"http://127.0.0.1:{port}"
    start = time.monotonic()
    with server(command, f"{base}/api/status?token={token}", tmp_path / "jupyterlab.log",
                isolated_env(tmp_path / "jupyter")):
        page.goto(f"{base}/lab/tree/{LESSON.name}?token={token}")
        wait_for_state(page, lambda s: s["kernel"] == "idle" and s["code"] > 0, SERVER_START_S,
                       "the notebook to open with an idle kernel")
        page.evaluate("window.jupyterapp.commands.execute('notebook:clear-all-cell-outputs')")
        wait_for_state(page, lambda s: s["pending"] == s["code"], 30, "the outputs to clear")
        page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
        state = wait_for_state(page, lambda s: s["pending"] == 0 and s["kernel"] == "idle", LESSON_RUN_S,
                               "every cell to run")
        ran = time.monotonic() - start
        explorer = page.locator(".vae-latent-explorer").first
        explorer.wait_for(state="visible", timeout=60_000)
        assert page.locator(".vae-latent-explorer").count() >= 3, "the lesson shows three explorers"
        move_slider_and_compare(page, explorer, screenshot_dir("jupyterlab"))
        assert_no_error_output(page)
        assert not page.evaluate(NOTEBOOK_STATE_JS)["errors"]
        print(f"JupyterLab: {state['code']} code cells ran in {ran:.0f} s (server start included)")


# ----- Voila ----------------------------------------------------------------------
@needs_chromium
def test_the_voila_page_shows_the_explorer_and_its_slider_redraws_the_face(tmp_path, page):
    pytest.importorskip("voila", reason="pip install voila (the notebooks extra)")
    port, token = free_port(), secrets.token_hex(16)
    command = [sys.executable, "-m", "voila", str(APP), "--no-browser", f"--port={port}", "--Voila.ip=127.0.0.1",
               f"--token={token}", "--show_tracebacks=True", "--ServerApp.port_retries=0"]
    base = f"http://127.0.0.1:{port}"
    start = time.monotonic()
    with server(command, f"{base}/voila/static/", tmp_path / "voila.log",
                isolated_env(tmp_path / "jupyter")) as proc:
        page.goto(f"{base}/?token={token}")
        explorer = page.locator(".vae-latent-explorer").first
        explorer.wait_for(state="visible", timeout=PAGE_RENDER_S * 1000)
        shown = time.monotonic() - start
        assert page.get_by_text("synthetic-faces, latent dimension 2").count() == 1
        move_slider_and_compare(page, explorer, screenshot_dir("voila"))
        assert_no_error_output(page)
        assert page.get_by_text("There was an error when executing cell").count() == 0
        assert proc.poll() is None, "the Voila server died"
        print(f"Voila: the explorer showed {shown:.0f} s after the server started")


# ----- the page's notebook, headless (no browser needed) ------------------------------
def test_the_voila_page_loads_a_model_saved_by_vae_teach_train(tmp_path):
    """VAE_TEACH_RUN=RUN_DIR: the page explores that model instead of training one."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    from vae_teach.interface import VAEConfig, init_params

    config = VAEConfig(input_dim=560, hidden_dims=(8,), latent_dim=3)
    run = tmp_path / "run"
    run.mkdir()
    np.savez(run / "params.npz", **init_params(config, seed=5))
    (run / "summary.json").write_text(json.dumps({"backend": "numpy", "dataset": "synthetic-faces",
                                                  "config": config.to_dict()}))
    nb = nbformat.read(APP, as_version=4)
    env_before = os.environ.get("VAE_TEACH_RUN")
    os.environ["VAE_TEACH_RUN"] = str(run)
    try:
        nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                resources={"metadata": {"path": str(APP.parent)}}).execute()
    finally:
        if env_before is None:
            del os.environ["VAE_TEACH_RUN"]
        else:
            os.environ["VAE_TEACH_RUN"] = env_before
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    text = "".join(o.get("text", "") for o in outputs)
    assert "latent dimension 3: the numpy model in" in text, text
    shown = [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(shown) == 1 and "latent_dim=3" in shown[0]["data"]["text/plain"]
