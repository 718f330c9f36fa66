"""The predictions explorer, tested the way a reader uses it: in a browser, with no kernel.

Loads the built (smoke) explorer page in headless Chromium from a local HTTP server, changes
the selections, and checks that the shown image and numbers change. Also checks that the page
makes no request outside localhost (it must read offline).
"""
from __future__ import annotations

import functools
import http.server
import shutil
import threading

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


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
        pytest.skip("Debian chromium is not installed (make test installs it where it can)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--disable-quic"])
        yield b
        b.close()


def _state(page):
    """The visible explorer: image sources and the numbers table of the selected cluster."""
    return page.evaluate("""() => {
        const visible = e => !!(e.offsetWidth || e.offsetHeight || e.getClientRects().length);
        const imgs = Array.from(document.querySelectorAll('.widget-image')).filter(visible).map(i => i.src);
        const tables = Array.from(document.querySelectorAll('.widget-html-content table')).filter(visible)
            .map(t => t.innerText);
        const selects = Array.from(document.querySelectorAll('select')).filter(visible).map(s => s.value);
        return {imgs, tables, selects};
    }""")


def test_explorer_switches_clusters_and_models_without_a_kernel(server, browser):
    page = browser.new_page()
    outside = []
    # data: and blob: URLs are the widget images, made in the page from the embedded state
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith((server, "data:", "blob:"))
            else None)
    page.goto(f"{server}/book/generated/explorer.html")
    page.wait_for_selector(".widget-dropdown select", timeout=30000)
    page.wait_for_timeout(500)
    s0 = _state(page)
    assert len(s0["selects"]) == 2, s0["selects"]          # model and cluster (only the visible stack pages)
    assert s0["imgs"] and s0["tables"], s0
    assert "true log M500" in s0["tables"][0] and "predicted log M500" in s0["tables"][0]

    selects = [s for s in page.query_selector_all("select") if s.is_visible()]
    cluster_select = selects[1]
    options = cluster_select.evaluate("s => Array.from(s.options).map(o => o.value)")
    assert len(options) >= 2
    cluster_select.select_option(options[-1])
    page.wait_for_timeout(300)
    s1 = _state(page)
    assert s1["tables"][0] != s0["tables"][0], "the numbers did not change with the cluster"
    assert s1["imgs"] != s0["imgs"], "the image did not change with the cluster"
    assert s1["selects"][1] == options[-1]

    model_select = [s for s in page.query_selector_all("select") if s.is_visible()][0]
    models = model_select.evaluate("s => Array.from(s.options).map(o => o.value)")
    assert len(models) >= 2
    model_select.select_option(models[1])
    page.wait_for_timeout(300)
    s2 = _state(page)
    assert s2["selects"][0] == models[1]
    assert s2["imgs"][0] != s1["imgs"][0], "the scatter did not change with the model"
    assert models[1].split()[0] in s2["tables"][0]
    assert outside == [], outside
    page.close()


def test_static_spectrum_widget_on_the_physics_page(server, browser):
    page = browser.new_page()
    page.goto(f"{server}/book/generated/physics.html")
    page.wait_for_selector(".widget-slider", timeout=30000)
    page.wait_for_timeout(300)
    before = _state(page)["imgs"]
    slider = page.query_selector_all(".widget-slider .noUi-handle, .widget-slider input, .slider-container .ui-slider-handle")
    assert before
    # move the temperature slider with the keyboard
    handle = page.query_selector(".widget-slider [role=slider], .widget-slider .noUi-handle")
    assert handle is not None, "slider handle not found"
    handle.focus()
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    page.wait_for_timeout(300)
    after = _state(page)["imgs"]
    assert after != before, "the spectrum did not change with the slider"
    page.close()
