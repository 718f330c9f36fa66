"""The built (smoke) book, read the way a reader reads it: in a browser, with no kernel, offline.

Every page of the table of contents is loaded in headless Chromium from a local HTTP server. A
page fails on a console error or an uncaught exception from the book's scripts, a request that
fails (404) or leaves localhost, a MathJax error, or a broken image. On every page with widgets,
every selector is moved and the widget's output must change. The explorer is also checked at a
phone's width (420 px): its numbers table must be on screen.
"""
from __future__ import annotations

import functools
import http.server
import shutil
import threading

import pytest
import yaml

from cmlib.book.build import toc_pages

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _toc_pages(root):
    return toc_pages(yaml.safe_load((root / "book" / "generated" / "_toc.yml").read_text()))


@pytest.fixture(scope="module")
def server(smoke_book):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(smoke_book / "_build" / "html"))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.skip("Debian chromium is not installed (`make browser` installs it; `make test` runs it first)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--disable-quic"])
        yield b
        b.close()


class Watch:
    """Everything that goes wrong while a page loads."""

    def __init__(self, page, server):
        self.problems: list[str] = []
        page.on("console", lambda m: self.problems.append(f"console {m.type}: {m.text}")
                if m.type == "error" else None)
        page.on("pageerror", lambda e: self.problems.append(f"uncaught: {e}"))
        page.on("requestfailed", lambda r: self.problems.append(f"request failed: {r.url}"))
        page.on("response", lambda r: self.problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
        page.on("request", lambda r: self.problems.append(f"outside request: {r.url}")
                if not r.url.startswith((server, "data:", "blob:", "about:")) else None)


def _settle(page):
    page.wait_for_load_state("load")
    page.evaluate("""async () => {
        if (window.MathJax && MathJax.startup && MathJax.startup.promise) { await MathJax.startup.promise; }
        await new Promise(r => setTimeout(r, 300));
    }""")


def _visible_outputs(page):
    return page.evaluate("""() => {
        const vis = e => !!(e.offsetWidth || e.offsetHeight || e.getClientRects().length);
        const imgs = Array.from(document.querySelectorAll('.widget-image')).filter(vis).map(i => i.src.slice(-200));
        const html = Array.from(document.querySelectorAll('.widget-html-content')).filter(vis).map(t => t.innerText);
        return JSON.stringify([imgs, html]);
    }""")


def test_every_page_loads_cleanly(server, browser, smoke_book):
    failures = {}
    for f in _toc_pages(smoke_book):
        page = browser.new_page()
        w = Watch(page, server)
        page.goto(f"{server}/{f}.html")
        _settle(page)
        bad = page.evaluate("""() => {
            const out = [];
            document.querySelectorAll('mjx-merror, .MathJax_Error, merror').forEach(e => out.push('MathJax: ' + e.textContent));
            document.querySelectorAll('img').forEach(i => {
                if (i.complete && i.naturalWidth === 0 && i.getAttribute('src')) out.push('broken image: ' + i.src.slice(0, 80)); });
            return out;
        }""")
        if w.problems or bad:
            failures[f] = w.problems + bad
        page.close()
    assert not failures, failures


def test_every_widget_changes_its_output(server, browser, smoke_book):
    checked = 0
    for f in _toc_pages(smoke_book):
        text = (smoke_book / "_build" / "html" / f"{f}.html").read_text()
        if "application/vnd.jupyter.widget-state+json" not in text:
            continue
        page = browser.new_page()
        w = Watch(page, server)
        page.goto(f"{server}/{f}.html")
        page.wait_for_selector(".widget-dropdown select, .widget-slider", timeout=30000)
        _settle(page)
        n_select = len([s for s in page.query_selector_all(".widget-dropdown select") if s.is_visible()])
        for k in range(n_select):
            sel = [s for s in page.query_selector_all(".widget-dropdown select") if s.is_visible()][k]
            options = sel.evaluate("s => Array.from(s.options).map(o => o.value)")
            if len(options) < 2:
                continue
            before = _visible_outputs(page)
            sel.select_option(options[-1])
            page.wait_for_timeout(300)
            assert _visible_outputs(page) != before, f"{f}: selector {k} did not change the output"
            checked += 1
        for k, handle in enumerate([h for h in page.query_selector_all(".widget-slider [role=slider], "
                                                                       ".widget-slider .noUi-handle") if h.is_visible()]):
            before = _visible_outputs(page)
            handle.focus()
            page.keyboard.press("End")
            page.wait_for_timeout(300)
            assert _visible_outputs(page) != before, f"{f}: slider {k} did not change the output"
            checked += 1
        assert not w.problems, (f, w.problems)
        page.close()
    assert checked >= 4, "the book's widget pages (explorer, catalogue, spectra) were not found"


def test_explorer_is_usable_on_a_phone(server, browser):
    page = browser.new_page(viewport={"width": 420, "height": 900})
    page.goto(f"{server}/book/generated/explorer.html")
    page.wait_for_selector(".widget-dropdown select", timeout=30000)
    _settle(page)
    boxes = page.evaluate("""() => {
        const vis = e => !!(e.offsetWidth || e.offsetHeight);
        const t = Array.from(document.querySelectorAll('.widget-html-content table')).filter(vis)[0];
        const s = Array.from(document.querySelectorAll('.widget-dropdown select')).filter(vis);
        const r = e => { const b = e.getBoundingClientRect(); return [b.left, b.right]; };
        return {table: t ? r(t) : null, selects: s.map(r), width: document.documentElement.clientWidth};
    }""")
    assert boxes["table"] is not None
    left, right = boxes["table"]
    assert left >= 0 and right <= boxes["width"] + 1, boxes
    assert all(lo >= 0 and hi <= boxes["width"] + 1 for lo, hi in boxes["selects"]), boxes
    page.close()
