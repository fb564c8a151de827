"""tl.viz.html inside a real notebook: nbclient runs a notebook on an ipykernel kernel; the HTMLGraph's
`_repr_html_` must arrive as text/html, and two graphs in one notebook must not share element ids.
Skipped without nbclient/nbformat/ipykernel; TL_REQUIRE_NOTEBOOK=1 (CI) turns the skip into a failure."""
import re
import shutil

import pytest

from conftest import skip_or_fail

pytestmark = pytest.mark.notebook

CELL = """
import tinygrad_lite as tl, tinygrad_lite.nn as nn
model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
loss = model(tl.randn(5, 3)).sum()
loss.backward(retain_graph=True)
tl.viz.html(loss, show_grads=True)
"""


def _load():
    try:
        import ipykernel  # noqa: F401  (the kernel nbclient starts)
        import nbclient
        import nbformat
    except ImportError as e:
        skip_or_fail("TL_REQUIRE_NOTEBOOK", f"{e}; pip install tinygrad_lite[notebook]")
    if shutil.which("dot") is None:
        pytest.skip("graphviz `dot` is missing")
    return nbclient, nbformat


def test_html_graph_displays_in_a_notebook(tmp_path):
    nbclient, nbformat = _load()
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(CELL), nbformat.v4.new_code_cell("tl.viz.html(loss)")]
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
                            ).execute()
    htmls = []
    for cell in nb.cells:
        assert all(o["output_type"] != "error" for o in cell.outputs), cell.outputs
        htmls += [o["data"]["text/html"] for o in cell.outputs if "text/html" in o.get("data", {})]
    assert len(htmls) == 2
    for text in htmls:
        assert '<div class="tlviz"' in text and "data-entry=" in text and "tlvizInit(" in text
    ids = [re.search(r'<div class="tlviz" id="([\w-]+)"', t).group(1) for t in htmls]
    assert ids[0] != ids[1]
