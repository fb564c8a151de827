"""Make docs/images/graph_page.png, the README's screenshot of the interactive graph page (tl.viz.html).

    python docs/images/make_graph_page_screenshot.py [--out PATH] [--node-module 5] [--node-op relu]

The page is the one examples/digits_cnn.py writes to runs/digits_cnn/model_graph.html (same model, same
function), for one training batch of a freshly initialised model (seed 0) after its backward. Headless Chromium
loads it from file://, clicks one node (by default the ReLU of module 5, after the second BatchNorm) so the
details panel shows its values and gradient statistics, zooms in around that node and takes the screenshot.

Needs graphviz's `dot`, scikit-learn, playwright (`pip install playwright`) and Debian's chromium
(`apt-get install chromium`); Playwright is pointed at it with `executable_path` (TL_CHROMIUM overrides
/usr/bin/chromium): no browser is ever downloaded (never `playwright install`).
"""
import argparse
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path[:0] = [ROOT, os.path.join(ROOT, "examples")]

CHROMIUM = os.environ.get("TL_CHROMIUM", "/usr/bin/chromium")
VIEWPORT = {"width": 1280, "height": 760}


def make_page(path):
    """Write the digits CNN's graph page to `path`; returns the page's node records (key -> info)."""
    import tinygrad_lite as tl
    from tinygrad_lite import nn

    import digits_cnn

    x_tr, _, y_tr, _ = digits_cnn.load_data()
    tl.manual_seed(0)
    model = digits_cnn.build_model()
    n = 32  # the example's default batch size
    message = digits_cnn.graph_page(model, nn.CrossEntropyLoss(), tl.tensor(x_tr[:n]), tl.tensor(y_tr[:n]), path)
    if not message.startswith("graph page written"):
        sys.exit(f"make_graph_page_screenshot: {message}")
    return message


def node_key(page, module, op):
    """The data-key of the first op node named `op` in module `module`, read from the page's embedded data."""
    nodes = page.evaluate("() => JSON.parse(document.querySelector('.tlviz-data').textContent).nodes")
    for key, info in nodes.items():
        if info.get("kind") == "op" and info.get("name") == op and info.get("module") == module:
            return key
    sys.exit(f"make_graph_page_screenshot: no {op!r} op in module {module!r} on the page")


def screenshot(html_path, out, module, op, zoom_steps):
    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        sys.exit(f"make_graph_page_screenshot: {CHROMIUM} is missing (apt-get install chromium, or set TL_CHROMIUM)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport=VIEWPORT, device_scale_factor=1)
            page.goto("file://" + os.path.abspath(html_path))
            page.wait_for_selector(".tlviz[data-ready='1']", state="attached", timeout=30000)
            key = node_key(page, module, op)
            node = page.locator(f"g.node[data-key='{key}']")
            # zoom in with the wheel over the node (zoom keeps the point under the pointer in place) ...
            for _ in range(zoom_steps):
                box = node.bounding_box()
                page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
                page.mouse.wheel(0, -240)
                page.wait_for_timeout(30)
            # ... then drag the graph so the node sits in the middle of the graph area, and click it
            box, view = node.bounding_box(), page.locator(".tlviz-view").bounding_box()
            cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
            tx, ty = view["x"] + view["width"] * 0.4, view["y"] + view["height"] * 0.45
            page.mouse.move(cx, cy)
            page.mouse.down()
            page.mouse.move(tx, ty, steps=8)
            page.mouse.up()
            node.click()
            page.wait_for_selector("aside[aria-label=details]:not([hidden])", timeout=5000)
            page.mouse.move(5, VIEWPORT["height"] - 5)  # no hover effects in the picture
            page.screenshot(path=out)
        finally:
            browser.close()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument("--out", default=os.path.join(HERE, "graph_page.png"))
    p.add_argument("--node-module", default="5", help="module path of the node to open (default 5: a ReLU)")
    p.add_argument("--node-op", default="relu", help="op name of the node to open (default relu)")
    p.add_argument("--zoom-steps", type=int, default=4, help="wheel steps of zoom around the node (default 4)")
    p.add_argument("--keep-html", default=None, help="also keep the page at this path")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        html_path = args.keep_html or os.path.join(tmp, "model_graph.html")
        print(make_page(html_path))
        screenshot(html_path, args.out, args.node_module, args.node_op, args.zoom_steps)
    print(f"screenshot written to {os.path.relpath(args.out)} ({os.path.getsize(args.out) / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
