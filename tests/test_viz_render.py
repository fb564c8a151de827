"""tl.viz rendering: SVG/PNG through graphviz's `dot` (skipped locally without it, required in CI via
TL_REQUIRE_DOT=1), the behaviour without `dot` (simulated with an empty PATH), save(), lazy imports."""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import tinygrad_lite as tl

graphviz = pytest.importorskip("graphviz")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def small_graph(show_grads=False):
    x = tl.tensor(np.array([[1.0, -2.0], [3.0, 0.5]], np.float32), requires_grad=True)
    y = (x @ x).relu().sum()
    if show_grads:
        y.backward()
    return tl.viz.draw(y, show_grads=show_grads)


@pytest.fixture
def no_dot(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no `dot` anywhere


def test_importing_viz_does_not_import_graphviz():
    code = "import sys, tinygrad_lite as tl, tinygrad_lite.viz; print('graphviz' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"


def test_missing_graphviz_package_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "graphviz", None)  # makes `import graphviz` raise ImportError
    with pytest.raises(ImportError, match=r"pip install tinygrad_lite\[viz\]"):
        tl.viz.draw((tl.randn(2, requires_grad=True) * 2).sum())


def test_returns_a_graphviz_digraph():
    g = small_graph()
    assert isinstance(g, graphviz.Digraph) and g.source.startswith("digraph tape {")


def test_renders_svg_and_png(dot_available, tmp_path):
    g = small_graph(show_grads=True)
    svg = g.pipe(format="svg").decode()
    assert "<svg" in svg and "matmul" in svg and "gradient norm" in svg
    assert g.pipe(format="png")[:8] == b"\x89PNG\r\n\x1a\n"
    path = g.render(tmp_path / "graph", format="svg")
    assert path.endswith(".svg") and "<svg" in open(path).read()
    bundle = g._repr_mimebundle_()
    assert "<svg" in bundle["image/svg+xml"]


def test_renders_nested_clusters_and_html_legend(dot_available):
    from tinygrad_lite.autograd import recorder
    from tinygrad_lite.autograd.grad_mode import state
    w = tl.randn(3, 3, requires_grad=True)
    prev = state.scope
    state.scope = outer = recorder.Scope("", "Net", prev)
    state.scope = recorder.Scope("block", "Block", outer)
    h = (tl.randn(2, 3) @ w).tanh()
    state.scope = prev
    y = h.sum()
    y.backward()
    svg = tl.viz.draw(y, show_grads=True, show_saved_bytes=True, show_source=True).pipe(format="svg").decode()
    assert "block: Block" in svg and "Net" in svg and "tanh" in svg


def test_save_writes_dot_and_svg(dot_available, tmp_path):
    g = small_graph()
    paths = tl.viz.save(g, tmp_path / "mlp.svg")
    assert paths == [str(tmp_path / "mlp.dot"), str(tmp_path / "mlp.svg")]
    assert open(paths[0]).read() == g.source and "<svg" in open(paths[1]).read()
    png = tl.viz.save(g, tmp_path / "other", format="png")
    assert png[1].endswith("other.png") and open(png[1], "rb").read(4) == b"\x89PNG"


def test_without_dot_the_source_works_and_rendering_says_how_to_install(no_dot, tmp_path):
    g = small_graph()
    assert "matmul" in g.source
    for call in (lambda: g.pipe(format="svg"), lambda: g.render(tmp_path / "x", format="png")):
        with pytest.raises(graphviz.ExecutableNotFound) as info:
            call()
        msg = str(info.value)
        for hint in ("apt-get install graphviz", "brew install graphviz", "conda install graphviz", ".source"):
            assert hint in msg
        assert isinstance(info.value, tl.viz.DotNotFoundError) and isinstance(info.value, RuntimeError)
    bundle = g._repr_mimebundle_()
    assert "apt-get install graphviz" in bundle["text/plain"] and "digraph tape" in bundle["text/plain"]


def test_save_without_dot_writes_only_the_dot_file(no_dot, tmp_path):
    g = small_graph()
    assert tl.viz.save(g, tmp_path / "g.dot") == [str(tmp_path / "g.dot")]
    assert not (tmp_path / "g.svg").exists() and (tmp_path / "g.dot").read_text() == g.source


def test_graph_copy_keeps_the_helpful_error(no_dot):
    g = small_graph().copy()
    with pytest.raises(tl.viz.DotNotFoundError):
        g.pipe()


def test_draw_graphs_example_writes_the_readme_pictures(tmp_path, capsys):
    import runpy
    script = runpy.run_path(os.path.join(ROOT, "examples", "draw_graphs.py"))
    script["main"](["--out", str(tmp_path)])
    printed = capsys.readouterr().out
    assert "tl.viz.draw(loss, show_grads=True, depth=1)" in printed and "nn.Sequential(" in printed
    mlp = (tmp_path / "mlp_graph.dot").read_text()
    for text in ("0.weight 16x4", "2.bias 3", "CrossEntropyLoss", "0: Linear"):
        assert text in mlp
    heat = (tmp_path / "grad_heatmap.dot").read_text()
    import re
    norms = [float(m) for m in re.findall(r'label="\d+\\nLinear\\n64x\d+\\n\|g\| ([0-9.e+-]+)', heat)]
    assert len(norms) == 7 and norms == sorted(norms)  # the gradient vanishes towards the input
    assert norms[-1] / norms[0] > 1e3
    assert (tmp_path / "grad_heatmap.svg").exists() == (shutil.which("dot") is not None)
