"""The built book, rendered in a real browser (Debian's Chromium), with no network.

Run after the book is built (``make browser``; ``make test`` does both). Each
chapter page and the introduction are served from ``_build/html`` on
localhost, loaded in headless Chromium with every non-local request blocked,
and checked: math rendered by MathJax, every image loaded, no traceback in
any cell output, widget areas present where the notebook has widgets. A
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


def _pages() -> list[tuple[str, bool]]:
    """(page path relative to the HTML root, whether its notebook has widgets)."""
    pages = [("book/intro.html", False)]
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


@pytest.mark.parametrize("page_path,has_widgets", _pages())
def test_page_renders_offline(server, browser, page_path, has_widgets):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    external: list[str] = []

    def route(r):
        if r.request.url.startswith(server):
            r.continue_()
        else:
            external.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    # Jupyter Book 1 emits sphinx-thebe's inline config script twice on every
    # page (an upstream quirk, not our code); the second copy's redeclaration
    # error is harmless, since thebe loads only when a reader asks for it.
    known = ("Identifier 'THEBE_JS_URL' has already been declared",)
    page.goto(f"{server}/{page_path}", wait_until="networkidle")
    page.wait_for_timeout(1500)

    has_math = page.evaluate("document.querySelectorAll('.math, div.math, span.math').length > 0")
    if has_math:
        page.wait_for_function("document.querySelectorAll('mjx-container').length > 0", timeout=20_000)
        assert page.evaluate("document.querySelectorAll('mjx-merror').length") == 0, "MathJax reported an error"
    broken = page.evaluate(
        "Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)"
    )
    assert not broken, f"images that did not load: {broken[:5]}"
    outputs = page.evaluate(
        "Array.from(document.querySelectorAll('.cell_output, .output')).map(e => e.innerText).join('\\n')"
    )
    assert "Traceback (most recent call last)" not in outputs
    if has_widgets:
        page.wait_for_function("document.querySelectorAll('.widget-box, .jupyter-widgets').length > 0",
                               timeout=20_000)  # fmt: skip
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / (page_path.replace("/", "_").replace(".html", ".png"))), full_page=False)
    # The book needs nothing from outside: nothing external was even requested.
    assert not external, f"page requested external resources: {external[:5]}"
    errors = [e for e in errors if e not in known]
    assert not errors, f"JavaScript errors: {errors[:3]}"
    page.close()
