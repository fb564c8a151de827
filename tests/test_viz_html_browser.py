"""tl.viz.html in a real browser: Playwright driving Debian's chromium (never a downloaded browser).

Skipped when playwright or /usr/bin/chromium is missing; TL_REQUIRE_BROWSER=1 (CI) turns the skip into a failure.
The page is loaded from file:// and must make no request besides itself and log no console error."""
import os
import re
import shutil
import time

import numpy as np
import pytest

import tinygrad_lite as tl
import tinygrad_lite.nn as nn
from tinygrad_lite.autograd import recorder
from conftest import skip_or_fail

pytestmark = pytest.mark.browser
CHROMIUM = os.environ.get("TL_CHROMIUM", "/usr/bin/chromium")


def _missing(msg):
    skip_or_fail("TL_REQUIRE_BROWSER", msg)


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed (pip install tinygrad_lite[browser])")
    if not os.path.exists(CHROMIUM) or shutil.which("dot") is None:
        _missing(f"{CHROMIUM} or graphviz `dot` is missing (apt-get install chromium graphviz)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


class Page:
    """A loaded page plus every request and console error it caused."""

    def __init__(self, browser, path):
        self.page = browser.new_page(viewport={"width": 1200, "height": 800})
        self.requests, self.errors = [], []
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.url = "file://" + os.path.abspath(path)
        self.page.goto(self.url)
        self.page.wait_for_selector(".tlviz[data-ready='1']", state="attached", timeout=30000)

    def click_key(self, key):
        """Click a node by its key (dispatching: big graphs put nodes outside the viewport)."""
        self.page.eval_on_selector(f"g.node[data-key='{key}']",
                                   "e => e.dispatchEvent(new MouseEvent('click', {bubbles: true}))")

    def stats(self, table):
        cells = self.page.query_selector_all(f"aside[aria-label=details] table.{table} td")
        return {c.get_attribute("data-stat"): float(c.get_attribute("data-value") or "nan") for c in cells}

    def check_clean(self):
        assert self.requests == [self.url], self.requests
        assert self.errors == []


@pytest.fixture(scope="module")
def mlp(tmp_path_factory):
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    y = model(tl.randn(5, 3)).sum()
    y.backward(retain_graph=True)
    path = tl.viz.html(y, show_grads=True).save(tmp_path_factory.mktemp("html") / "mlp.html")
    return model, y, path


@pytest.fixture
def page(browser, mlp):
    p = Page(browser, mlp[2])
    yield p
    p.check_clean()
    p.page.close()


def test_search_highlights_and_counts_matches(page):
    page.page.fill("input[aria-label=search]", "matmul")
    assert page.page.inner_text(".tlviz-count") == "2 matches"
    assert page.page.locator("g.node.tlviz-match").count() == 2
    page.page.fill("input[aria-label=search]", "weight")  # parameter names
    assert page.page.inner_text(".tlviz-count") == "2 matches"
    page.page.fill("input[aria-label=search]", "tanh")  # op name and module type
    assert page.page.locator("g.tlviz-match").count() >= 1


def test_clicking_a_node_shows_its_statistics_and_lineage(page, mlp):
    _, y, _ = mlp
    e = [x for x in recorder.tape(y) if x.name == "tanh"][0]
    page.page.click(f"g.node[data-entry='{e.seq}']")
    panel = page.page.locator("aside[aria-label=details]")
    assert panel.is_visible()
    assert panel.locator("[data-field=name]").inner_text() == "tanh"
    assert panel.locator("[data-field=module]").inner_text() == "1"
    assert panel.locator("[data-field=source]").inner_text() == e.source_path
    assert panel.locator("[data-field=dtype]").inner_text() == str(e.output_dtype)
    for table, arr in (("tlviz-value", e.out_data), ("tlviz-grad", e.grad)):
        s, arr = page.stats(table), arr.astype(np.float64)  # statistics are accumulated in float64
        np.testing.assert_allclose([s["min"], s["max"], s["mean"], s["std"], s["nan"], s["inf"]],
                                   [arr.min(), arr.max(), arr.mean(), arr.std(), 0, 0], rtol=1e-12)
    assert page.page.locator("g.node.tlviz-anc").count() >= 4 and page.page.locator("g.node.tlviz-desc").count() >= 3
    assert page.page.locator("g.node.tlviz-selected").count() == 1


def test_cluster_title_collapses_and_expands(page):
    title = page.page.locator("g.cluster[data-module='0'] text")
    title.click()
    assert page.page.locator("g.cluster[data-module='0'].tlviz-collapsed").count() == 1
    hidden = page.page.locator("g.node.tlviz-hidden").count()
    assert hidden >= 4 and "nodes)" in title.text_content()
    title.click()
    assert page.page.locator("g.node.tlviz-hidden").count() == 0


def test_wheel_zoom_and_fit_change_the_transform(page):
    before = page.page.eval_on_selector(".tlviz-canvas", "e => e.style.transform")
    page.page.mouse.move(400, 400)
    page.page.mouse.wheel(0, -300)
    zoomed = page.page.eval_on_selector(".tlviz-canvas", "e => e.style.transform")
    assert zoomed != before and float(page.page.get_attribute(".tlviz", "data-zoom")) > 1.01 * float(
        re.search(r"scale\(([\d.]+)\)", before).group(1))
    page.page.mouse.move(300, 300)
    page.page.mouse.down()
    page.page.mouse.move(200, 250, steps=4)
    page.page.mouse.up()
    panned = page.page.eval_on_selector(".tlviz-canvas", "e => e.style.transform")
    assert panned != zoomed
    page.page.get_by_role("button", name="Fit").click()
    assert page.page.eval_on_selector(".tlviz-canvas", "e => e.style.transform") == before


def test_slash_focuses_search_and_escape_clears(page):
    page.page.click("g.node[data-kind=op]")
    page.page.keyboard.press("/")
    assert page.page.evaluate("document.activeElement.getAttribute('aria-label')") == "search"
    page.page.keyboard.type("add")
    assert page.page.inner_text(".tlviz-count") == "2 matches"
    page.page.keyboard.press("Escape")
    assert page.page.input_value("input[aria-label=search]") == ""
    assert page.page.locator("g.tlviz-match").count() == 0
    assert not page.page.locator("aside[aria-label=details]").is_visible()


def test_two_graphs_on_one_page_keep_their_own_state(browser, mlp, tmp_path):
    _, y, _ = mlp
    a, b = tl.viz.html(y), tl.viz.html(y)
    path = tmp_path / "two.html"
    path.write_text(f"<!DOCTYPE html><html><body>{a._repr_html_()}{b._repr_html_()}</body></html>", "utf-8")
    p = Page(browser, path)
    assert p.page.locator(".tlviz[data-ready='1']").count() == 2
    p.page.locator("input[aria-label=search]").nth(0).fill("matmul")
    assert p.page.locator(".tlviz").nth(0).locator("g.tlviz-match").count() == 2
    assert p.page.locator(".tlviz").nth(1).locator("g.tlviz-match").count() == 0
    p.check_clean()
    p.page.close()


def test_ten_thousand_entries_open_collapsed_and_stay_interactive(browser, tmp_path):
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.norm = nn.Linear(8, 8), nn.LayerNorm(8)

        def forward(self, x):
            return x + self.norm(self.fc(x)).tanh()

    y = nn.Sequential(*[Block() for _ in range(625)])(tl.randn(4, 8)).sum()
    assert len(recorder.tape(y)) >= 10_000
    y.backward(retain_graph=True)
    g = tl.viz.html(y, show_grads=True)
    path = g.save(tmp_path / "big.html")
    start = time.perf_counter()
    p = Page(browser, path)
    key = next(k for k, n in g.data["nodes"].items() if n.get("expandable"))
    p.click_key(key)
    p.page.get_by_role("button", name="Open module").click()
    inset = p.page.locator(f".tlviz-inset[data-inset='{key}'] g.node[data-entry]")
    assert inset.count() == len(g.data["nodes"][key]["entries"]) == 16  # one Block's ops, laid out by dot
    inset.first.dispatch_event("click")
    assert p.page.locator("aside[aria-label=details] table.tlviz-grad").count() == 1
    assert time.perf_counter() - start < 30  # a generous sanity bound; the measured figures are in the report
    p.check_clean()
    p.page.close()
