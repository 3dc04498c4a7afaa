"""The built book, rendered in a real browser (Debian's Chromium), with no network.

Run after the book is built (``make browser``; ``make test`` does both). Each
chapter page and the introduction are served from ``_build/html`` on
localhost, loaded at 1280x900 in headless Chromium with every non-local
request blocked, and checked: math rendered by MathJax, every image loaded
and shown at (nearly) its own size, no traceback, no test marker and no
horizontal overflow in any code cell or output, the chapter box at the top,
widgets where the notebook has them, quizzes that answer. A full-page
screenshot of each page is kept under ``_build/screenshots/``.
"""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HTML = REPO / "_build" / "html"
SHOTS = REPO / "_build" / "screenshots"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine (Debian: apt-get install chromium)"),
    pytest.mark.skipif(not (HTML / "index.html").exists(), reason="book not built: run `make book` first"),
]
# Jupyter Book 1 emits sphinx-thebe's inline config script twice on every
# page (an upstream quirk, not our code); the second copy's redeclaration
# error is harmless, since thebe loads only when a reader asks for it.
KNOWN_ERRORS = ("Identifier 'THEBE_JS_URL' has already been declared",)


def _pages() -> list[tuple[str, bool]]:
    """(page path relative to the HTML root, whether its notebook has widgets)."""
    pages = [("book/intro.html", False), ("book/how-to-use.html", False), ("book/instructors.html", False)]
    for nb in sorted((REPO / "notebooks").glob("*.ipynb")):
        meta = json.loads(nb.read_text()).get("metadata", {})
        has_widgets = bool(meta.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state"))
        pages.append((f"notebooks/{nb.stem}.html", has_widgets))
    return pages


@pytest.fixture(scope="module")
def server():
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(HTML))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"],
        )  # fmt: skip
        yield b
        b.close()


def _open(server, browser, page_path, block: str | None = None):
    """Load a page offline (and without local files whose path contains ``block``); returns
    (page, external requests, JavaScript errors)."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    external: list[str] = []
    errors: list[str] = []

    def route(r):
        if r.request.url.startswith(server):
            r.abort() if block and block in r.request.url else r.continue_()
        else:
            external.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.on("pageerror", lambda e: errors.append(f"{e} [{(e.stack or '').splitlines()[1:2]}]"))
    page.goto(f"{server}/{page_path}", wait_until="networkidle")
    page.wait_for_timeout(1500)
    return page, external, errors


OVERFLOW = """() => Array.from(document.querySelectorAll(
    '.cell_input pre, .cell_output pre, .cell_output .output, .cell_output table'))
  .filter(e => e.scrollWidth > e.clientWidth + 1)
  .map(e => (e.innerText || '').split('\\n').find(l => l.trim()) || e.className)"""

SMALL_IMAGES = """() => Array.from(document.querySelectorAll('.cell_output img'))
  .filter(i => i.naturalWidth > 0 && i.clientWidth / i.naturalWidth < 0.9)
  .map(i => `${i.src.split('/').pop()}: ${i.naturalWidth}px shown at ${i.clientWidth}px`)"""


@pytest.mark.parametrize("page_path,has_widgets", _pages())
def test_page_renders_offline_and_reads_cleanly(server, browser, page_path, has_widgets):
    page, external, errors = _open(server, browser, page_path)
    has_math = page.evaluate("document.querySelectorAll('.math, div.math, span.math').length > 0")
    if has_math:
        page.wait_for_function("document.querySelectorAll('mjx-container').length > 0", timeout=20_000)
        assert page.evaluate("document.querySelectorAll('mjx-merror').length") == 0, "MathJax reported an error"
    broken = page.evaluate(
        "Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)"
    )
    assert not broken, f"images that did not load: {broken[:5]}"
    text = page.evaluate("document.body.innerText")
    assert "Traceback (most recent call last)" not in text
    assert "NBVAL" not in text.upper(), "a test marker is visible to readers"
    if has_widgets:
        page.wait_for_function("document.querySelectorAll('.widget-box, .jupyter-widgets').length > 0",
                               timeout=20_000)  # fmt: skip
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / (page_path.replace("/", "_").replace(".html", ".png"))), full_page=True)
    wide = page.evaluate(OVERFLOW)
    assert not wide, f"{len(wide)} code cells or outputs wider than their box, first: {wide[:5]}"
    small = page.evaluate(SMALL_IMAGES)
    assert not small, f"figures scaled down (their text shrinks below the page's): {small[:5]}"
    if page_path.startswith("notebooks/"):
        box = page.evaluate("(document.querySelector('article blockquote') || {}).innerText || ''")
        assert "min to read" in box and "cpu" in box and "gpu" in box, f"no chapter box at the top: {box!r}"
    # The book needs nothing from outside: nothing external was even requested.
    assert not external, f"page requested external resources: {external[:5]}"
    errors = [e for e in errors if not e.startswith(KNOWN_ERRORS)]
    assert not errors, f"JavaScript errors: {errors[:3]}"
    page.close()


def test_a_loop_of_prints_is_one_output_box(server, browser):
    page, _, _ = _open(server, browser, "notebooks/01_tracing_shapes.html")
    boxes = page.evaluate("""() => {
        const cell = Array.from(document.querySelectorAll('.cell'))
            .find(c => (c.querySelector('.cell_input') || {}).innerText?.includes('checked_depths'));
        return cell ? cell.querySelectorAll('.cell_output .output').length : -1;
    }""")
    assert boxes == 1, f"the torchvision comparison's prints render as {boxes} boxes"
    page.close()


def test_quiz_answers_in_the_page(server, browser):
    page, external, errors = _open(server, browser, "notebooks/01_tracing_shapes.html")
    page.wait_for_selector(".Quiz label.MCButton", timeout=20_000)
    quizzes = page.locator(".Quiz")
    assert quizzes.count() >= 2
    first, second = quizzes.nth(0), quizzes.nth(1)
    first.locator('label.MCButton[data-correct="true"]').first.click()
    feedback = first.locator(".Feedback")
    assert "correct" in feedback.get_attribute("class").split() and "Right:" in feedback.inner_text()
    wrong = second.locator('label.MCButton[data-correct="false"]').first
    wrong.click()
    feedback = second.locator(".Feedback")
    assert "incorrect" in feedback.get_attribute("class").split()
    assert feedback.inner_text().strip() and "Right:" not in feedback.inner_text()
    assert not external and not [e for e in errors if not e.startswith(KNOWN_ERRORS)]
    page.close()


def test_quiz_works_when_mathjax_loads_late_or_never(server, browser):
    """jupyterquiz reads ``MathJax.version`` as soon as ``MathJax`` exists; in the book it first exists as a
    configuration object, before MathJax has loaded. On a busy machine that threw a TypeError in the
    page (seen on the CIFAR-10 page under load); here MathJax never loads at all."""
    page, external, errors = _open(server, browser, "notebooks/02_degradation.html", block="/vendor/mathjax/")
    page.wait_for_selector(".Quiz label.MCButton", timeout=20_000)
    page.wait_for_timeout(1000)  # past jupyterquiz's own 500 ms typesetting timer
    page.locator('.Quiz label.MCButton[data-correct="true"]').first.click()
    assert "Right:" in page.locator(".Quiz .Feedback").first.inner_text()
    assert not external and not [e for e in errors if not e.startswith(KNOWN_ERRORS)], errors
    page.close()
