"""The book (make book): its table of contents, its sources, and the built site, offline, in a real browser.

The site is built once for this module into a temporary folder (about 35 s of CPU; set
``VAE_TEACH_BOOK=build/book`` to check a site already built by ``make book`` instead). The
browser part serves it on 127.0.0.1, blocks every request to anywhere else, and opens every
lesson page (and the home, bibliography and search pages) in headless Debian Chromium: no
failed request, no console error, and MathJax typeset the math (no raw ``$$`` or ``\\(`` left
in the text: not even one ``$``). It skips, saying why, only where Chromium is not installed.

Time on a 2-core machine shared with other jobs (load ~7): the build 41 s, the 13 pages in
Chromium 29 s; the whole file about 75 s.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import threading
import time
from pathlib import Path

import pytest
import yaml

from test_browser import CHROMIUM, needs_chromium, page  # noqa: F401  (page: the Playwright fixture)
from vae_teach import book, colab
from vae_teach.mathjax import MATHJAX_DIRS, find_mathjax
from vae_teach.series import lesson_paths

ROOT = Path(__file__).resolve().parents[1]
LESSONS = [p.stem for p in lesson_paths(ROOT / "notebooks")]
MATHJAX_RENDER_S = 60


def _have_mathjax() -> bool:
    try:
        find_mathjax()
    except FileNotFoundError:
        return False
    return True


# ----- the table of contents and the staged source ------------------------------------
def test_toc_lists_the_lessons_in_order_then_the_reference_pages():
    toc = book.toc(["notebooks/00_a", "notebooks/02_b", "notebooks/02b_c"], ["vae_teach", "vae_teach.elbo"])
    assert toc["format"] == "jb-book" and toc["root"] == "index"
    lessons, reference = toc["parts"]
    assert [c["file"] for c in lessons["chapters"]] == ["notebooks/00_a", "notebooks/02_b", "notebooks/02b_c"]
    assert reference["chapters"][0] == {"file": "references"}
    assert reference["chapters"][1] == {"file": "api/index", "sections": [{"file": "api/vae_teach"},
                                                                          {"file": "api/vae_teach.elbo"}]}
    with pytest.raises(ValueError, match="at least one lesson"):
        book.toc([], ["vae_teach"])


def test_api_modules_are_every_module_of_the_package():
    modules = book.api_modules()
    for name in ("vae_teach", "vae_teach.elbo", "vae_teach.numpy_vae.layers", "vae_teach.colab", "vae_teach.book"):
        assert name in modules, f"{name} has no API page"
    assert not [m for m in modules if m.endswith("__main__")], "a __main__ module would run on import"
    assert modules == sorted(modules)
    assert ".. automodule:: vae_teach.elbo" in book.api_page("vae_teach.elbo")


def _notebook(path: Path) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {path.stem}")]
    nbformat.write(nb, path)


def test_stage_takes_the_executed_lessons_in_order_and_nothing_else(tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "book", repo / "book")
    shutil.copy2(ROOT / "README.md", repo / "README.md")
    notebooks = repo / "notebooks"
    notebooks.mkdir()
    for name in ("01_first", "00_setup", "01b_second_half", "10_later"):
        _notebook(notebooks / f"{name}.ipynb")
        (notebooks / f"{name}.md").write_text("# the jupytext twin\n")
    _notebook(notebooks / "scratch.ipynb")
    src = book.stage(tmp_path / "src", root=repo)
    staged = sorted(p.name for p in (src / "notebooks").iterdir())
    assert staged == ["00_setup.ipynb", "01_first.ipynb", "01b_second_half.ipynb", "10_later.ipynb"], \
        f"only the lessons' .ipynb belong in the book, got {staged}"
    toc = yaml.safe_load((src / "_toc.yml").read_text())
    assert [c["file"] for c in toc["parts"][0]["chapters"]] == [
        "notebooks/00_setup", "notebooks/01_first", "notebooks/01b_second_half", "notebooks/10_later"]
    for module in book.api_modules():
        assert (src / "api" / f"{module}.md").is_file(), f"no API page for {module}"
    assert (src / "_config.yml").is_file() and (src / "README.md").is_file()
    with pytest.raises(FileNotFoundError, match="clone of the repository"):
        book.stage(tmp_path / "src2", root=notebooks)


def test_display_math_is_joined_onto_one_line_outside_code():
    source = "For q:\n$$a = b\n+ c\n- d$$\nand $x$.\n```\n$$keep\nme$$\n```\n$$e\n+f$$"
    assert book.join_display_math(source) == \
        "For q:\n$$a = b + c - d$$\nand $x$.\n```\n$$keep\nme$$\n```\n$$e +f$$"
    assert book.join_display_math("no math\n+ a list") == "no math\n+ a list"


def test_home_page_includes_sections_of_the_readme_that_exist():
    readme = (ROOT / "README.md").read_text()
    index = (ROOT / "book" / "index.md").read_text()
    for marker in re.findall(r":(?:start-after|end-before): (.+)", index):
        assert readme.count(marker) == 1, f"README.md must hold the marker {marker!r} exactly once"
    tables = readme.split("<!-- book: tables -->")[1].split("<!-- book: end tables -->")[0]
    assert "## Vocabulary" in tables and "## The package" in tables


def test_missing_mathjax_is_a_clear_error(monkeypatch, tmp_path):
    import vae_teach.mathjax as mathjax

    monkeypatch.setattr(mathjax, "MATHJAX_DIRS", (str(tmp_path / "none"),))
    with pytest.raises(FileNotFoundError, match="libjs-mathjax"):
        mathjax.find_mathjax(env={})
    assert MATHJAX_DIRS[0] == "/usr/share/javascript/mathjax"


def test_launch_buttons_and_the_colab_cell_use_the_same_repository():
    config = yaml.safe_load((ROOT / "book" / "_config.yml").read_text())
    assert config["repository"]["url"] == colab.REPOSITORY_URL, \
        "set book/_config.yml's repository url and vae_teach.colab.REPOSITORY_URL to the same address"
    assert config["repository"]["branch"] == colab.BRANCH
    assert config["launch_buttons"]["binderhub_url"] and config["launch_buttons"]["colab_url"]
    assert config["execute"]["execute_notebooks"] == "off", "the book must never re-run the lessons"


# ----- the bibliography ---------------------------------------------------------------
NAME = r"[A-Z][A-Za-zÀ-ž'\-]+"
# "Kingma & Welling (2014)", "Burda et al., 2016", "Cremer, Li & Duvenaud 2018", "Tipping & Bishop 1999",
# "Johnson (2016)": the first author's family name and the year.
CITATION = re.compile(rf"({NAME})(?:(?:, {NAME})* (?:&|and) {NAME}| et al\.?(?:'s)?)?,? \(?((?:19|20)\d\d)\b")


def _cited() -> set[tuple[str, str]]:
    texts = [p.read_text() for p in sorted((ROOT / "notebooks").glob("*.md"))]
    texts += [p.read_text() for p in sorted((ROOT / "vae_teach").rglob("*.py"))]
    cited = set()
    for text in texts:
        text = re.sub(r"\s+", " ", text)
        for match in CITATION.finditer(text):
            whole = match.group(0)
            if "&" in whole or " and " in whole or "et al" in whole or "(" in whole:
                cited.add((_fold(match.group(1)), match.group(2)))
    return cited


def _bibliography() -> set[tuple[str, str]]:
    import latexcodec  # noqa: F401  (registers the "latex" codec; pybtex needs it anyway)
    from pybtex.database import parse_file

    entries = parse_file(str(ROOT / "book" / "references.bib")).entries
    found = set()
    for entry in entries.values():
        last = entry.persons["author"][0].last_names[-1]
        last = last.encode().decode("latex").replace("{", "").replace("}", "")
        found.add((_fold(last), entry.fields["year"]))
    return found


def _fold(name: str) -> str:
    """Rolínek and Rolinek are one name (the lessons may drop the accent)."""
    import unicodedata

    return "".join(c for c in unicodedata.normalize("NFKD", name) if not unicodedata.combining(c))


def test_the_bibliography_holds_every_paper_the_lessons_and_docstrings_cite():
    cited, listed = _cited(), _bibliography()
    assert ("Kingma", "2014") in cited and ("Burda", "2016") in cited, "the citation pattern finds nothing"
    missing = sorted(cited - listed)
    assert not missing, f"cited but not in book/references.bib (first author, year): {missing}"


# ----- the built site -----------------------------------------------------------------
@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    if os.environ.get("VAE_TEACH_BOOK"):
        return Path(os.environ["VAE_TEACH_BOOK"]).resolve()
    if not _have_mathjax():
        pytest.skip("no MathJax 2: install Debian's libjs-mathjax (scripts/install_system_packages.sh does it)")
    # In a process of its own, as `make book` runs it: Sphinx's in-process state did not survive the
    # rest of the suite ("weakly-referenced object no longer exists" after the other tests had run).
    import subprocess
    import sys

    start = time.perf_counter()
    out = tmp_path_factory.mktemp("book") / "site"
    result = subprocess.run([sys.executable, "-m", "vae_teach.book", "--out", str(out)], capture_output=True,
                            text=True, cwd=ROOT)
    assert result.returncode == 0, f"the book did not build:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    print(f"\nbook built in {time.perf_counter() - start:.0f} s")
    return out


EXTERNAL_RESOURCE = re.compile(r"<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)=[\"']((?:https?:)?//[^\"']+)",
                               re.IGNORECASE)


def test_every_lesson_has_a_page_with_math_and_launch_buttons(site):
    for lesson in LESSONS:
        page_path = site / "notebooks" / f"{lesson}.html"
        assert page_path.is_file(), f"no page for lesson {lesson}"
        html = page_path.read_text()
        assert "mybinder.org/v2/gh/" in html and f"notebooks/{lesson}.ipynb" in html, f"{lesson}: no Binder link"
        assert f"colab.research.google.com/github/" in html, f"{lesson}: no Colab link"
    assert 'class="math notranslate nohighlight"' in (site / "notebooks" / "02_elbo.html").read_text()
    for name in ("index", "references", "search", "genindex", "api/index", "api/vae_teach.elbo"):
        assert (site / f"{name}.html").is_file(), f"no {name}.html"


def test_no_page_loads_anything_from_another_host(site):
    offenders = {}
    for path in book.pages_of(site):
        found = EXTERNAL_RESOURCE.findall(path.read_text())
        if found:
            offenders[str(path.relative_to(site))] = found
    assert not offenders, f"pages that load from the network: {offenders}"
    assert (site / "_static" / "mathjax" / "MathJax.js").is_file(), "MathJax is not in the site"


def test_search_index_bibliography_and_api_pages(site):
    index = (site / "searchindex.js").read_text()
    assert "elbo" in index.lower() and "notebooks/08_more_samples" in index
    references = (site / "references.html").read_text().lower()     # the plain style lower-cases titles
    for title in ("auto-encoding variational", "importance weighted autoencoders", "continuous bernoulli"):
        assert title in references, f"the bibliography lacks {title!r}"
    api = (site / "api" / "vae_teach.elbo.html").read_text()
    assert "gaussian_kl" in api or "kl" in api.lower(), "the API page of vae_teach.elbo has no members"
    home = (site / "index.html").read_text()
    assert "Vocabulary" in home and "vae_teach.colab" in home, "the README's tables are not on the home page"


# ----- in a real browser, offline -----------------------------------------------------
class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def served(site):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


# The page's text without code (code may hold "$$"), after MathJax moved each formula's TeX into a script.
VISIBLE_PROSE = """() => {
  const body = document.querySelector('main') || document.body;
  const copy = body.cloneNode(true);
  copy.querySelectorAll('pre, code, script, style, .MathJax_Preview').forEach(e => e.remove());
  return copy.innerText;
}"""


@needs_chromium
def test_every_lesson_page_renders_offline_with_its_math(site, served, page):  # noqa: F811
    failed, errors, blocked = [], [], []
    page.on("requestfailed", lambda r: failed.append(f"{r.url} ({r.failure})"))
    page.on("response", lambda r: failed.append(f"{r.url} (HTTP {r.status})") if r.status >= 400 else None)
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))

    def only_local(route):
        if route.request.url.startswith(served + "/"):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    page.context.route("**/*", only_local)
    pages = [f"notebooks/{lesson}.html" for lesson in LESSONS] + ["index.html", "references.html", "search.html"]
    start = time.perf_counter()
    for name in pages:
        failed.clear(), errors.clear(), blocked.clear()
        page.goto(f"{served}/{name}", wait_until="load")
        if page.locator(".math").count():
            page.wait_for_function("() => window.MathJax && MathJax.Hub && MathJax.isReady",
                                   timeout=MATHJAX_RENDER_S * 1000)
            page.evaluate("() => new Promise(done => MathJax.Hub.Queue(() => done(true)))")
            typeset = page.locator(".MathJax_CHTML").count()
            math = page.locator(".math").count()
            assert math == 0 or typeset > 0, f"{name}: {math} formulas, none typeset by MathJax"
            assert page.locator(".MathJax_Error, .mjx-merror").count() == 0, f"{name}: MathJax reported errors"
            prose = page.evaluate(VISIBLE_PROSE)
            for raw in ("$", "\\(", "\\[", "\\begin{"):
                assert raw not in prose, f"{name}: raw {raw!r} left in the text: ...{prose[prose.find(raw) - 80:][:200]}..."
        page.wait_for_load_state("networkidle")
        assert not blocked, f"{name} asked another host for: {blocked}"
        assert not failed, f"{name}: failed requests: {failed}"
        assert not errors, f"{name}: console errors: {errors}"
    print(f"\n{len(pages)} pages checked in the browser in {time.perf_counter() - start:.0f} s")
