"""tl.viz.html without a browser: the page is one self-contained file, its attributes and embedded statistics are
right (checked against NumPy), user names cannot inject markup, and bad input gives clear errors."""
import html
import json
import os
import re

import numpy as np
import pytest

import tinygrad_lite as tl
import tinygrad_lite.nn as nn
from tinygrad_lite.autograd import recorder
from tinygrad_lite.viz._pagedata import array_stats

pytest.importorskip("graphviz")


@pytest.fixture(autouse=True)
def _needs_dot(dot_available):
    return dot_available


def mlp_loss(backward=True):
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    y = model(tl.randn(5, 3)).sum()
    if backward:
        y.backward(retain_graph=True)
    return model, y


def embedded(text):
    """The JSON model embedded in a page or fragment."""
    m = re.search(r'<script type="application/json" class="tlviz-data">(.*?)</script>', text, re.S)
    return json.loads(m.group(1))


def close(stats, arr):
    ref = array_stats(arr)
    a = np.asarray(arr, dtype=np.float64)
    fin = a[np.isfinite(a)]
    assert stats["nan"] == np.isnan(a).sum() and stats["inf"] == np.isinf(a).sum() and ref == stats
    if fin.size:
        np.testing.assert_allclose([stats[k] for k in ("min", "max", "mean", "std")],
                                   [fin.min(), fin.max(), fin.mean(), fin.std()], rtol=1e-12)


def test_saved_page_is_one_self_contained_file(tmp_path):
    _, y = mlp_loss()
    path = tl.viz.html(y, show_grads=True).save(tmp_path / "g")
    text = open(path, encoding="utf-8").read()
    assert path.endswith(".html") and text.startswith("<!DOCTYPE html>")
    assert "<style>" in text and "tlvizInit(" in text and "<svg" in text
    assert not re.search(r"https?://", text), "no URL of any kind, not even the SVG namespace"
    assert not re.search(r"<(script|img|iframe|link)\b[^>]*\b(src|href)=", text, re.I)
    assert "@import" not in text and "url(" not in text and "fetch(" not in text and "XMLHttpRequest" not in text
    assert not re.search(r'\bid="(node|clust|edge|graph|a_)', text), "graphviz ids would clash in a notebook"


def test_statistics_equal_numpy_for_values_and_gradients():
    model, y = mlp_loss()
    data = tl.viz.html(y).data
    for e in recorder.tape(y):
        info = data["nodes"][f"e{e.seq}"]
        assert info["name"] == e.name and info["shape"] == list(e.output_shape)
        assert info["source"] == e.source_path and info["source"].endswith(f"test_viz_html.py:{e.line}")
        close(info["value"], e.out_data)
        close(info["grad"], e.grad)
    params = {n["name"]: n for n in data["nodes"].values() if n["kind"] == "param"}
    for name, p in model.named_parameters():
        close(params[name]["value"], p._data)
        close(params[name]["grad"], p.grad._data)


def test_statistics_of_nan_inf_integers_and_empty():
    s = array_stats(np.array([1.0, np.nan, np.inf, -np.inf, 3.0]))
    assert (s["nan"], s["inf"], s["min"], s["max"], s["mean"], s["std"]) == (1, 2, 1.0, 3.0, 2.0, 1.0)
    assert array_stats(np.array([2, 4], dtype=np.int64))["mean"] == 3.0
    assert array_stats(np.array([True, False]))["max"] == 1.0
    assert array_stats(np.array([np.nan]))["min"] is None
    assert array_stats(np.zeros((0, 3)))["size"] == 0
    json.dumps(array_stats(np.array([np.nan, np.inf])), allow_nan=False)  # valid JSON, always


def test_before_backward_values_but_no_gradients_and_after_release_a_note():
    _, y = mlp_loss(backward=False)
    nodes = tl.viz.html(y).data["nodes"]
    ops = [n for n in nodes.values() if n["kind"] == "op"]
    assert all(n["value"] is not None and n["grad"] is None for n in ops)
    y.backward()  # releases the saved outputs: only the output the user holds keeps its values
    ops = [n for n in tl.viz.html(y).data["nodes"].values() if n["kind"] == "op"]
    assert all(n["grad"] is not None for n in ops)
    assert [n["name"] for n in ops if n["value"] is not None] == ["sum"]


def test_attributes_name_entries_parameters_and_modules():
    model, y = mlp_loss()
    text = tl.viz.html(y)._repr_html_()
    entries = {int(v) for v in re.findall(r'data-entry="(\d+)"', text)}
    assert entries == {e.seq for e in recorder.tape(y)}
    assert set(re.findall(r'data-param="([^"]+)"', text)) == {n for n, _ in model.named_parameters()}
    assert set(re.findall(r'data-module="([^"]*)"', text)) == {"", "0", "1", "2"}
    assert len(re.findall(r'<g class="edge" data-src="\w+" data-dst="\w+"', text)) == len(embedded(text)["edges"])


def test_hostile_names_are_escaped_not_executed():
    evil = 'x"><script>alert(1)</script>&amp;\'</'
    model = nn.Sequential()
    model.add_module(evil, nn.Linear(2, 2))
    y = model(tl.randn(3, 2)).sum()
    text = tl.viz.html(y).to_html()
    assert "<script>alert" not in text and "alert(1)</script>" not in text
    data = embedded(text)
    assert evil in {c["module"] for c in data["clusters"].values()}
    assert {html.unescape(m) for m in re.findall(r'data-module="([^"]*)"', text)} == {"", evil}
    assert text.count("<script") == 2  # the JSON model and the page script, nothing injected


def test_leaf_without_tape_and_constant_give_a_page():
    w = tl.randn(2, 2, requires_grad=True)
    data = tl.viz.html(w).data
    assert [n["kind"] for n in data["nodes"].values()] == ["input"]
    assert tl.viz.html(tl.ones(3)).data["nodes"]["c0"]["kind"] == "const"


def test_a_large_tensor_is_summarised_never_embedded():
    x = tl.tensor(np.random.default_rng(0).normal(size=(1000, 1000)), requires_grad=True)
    g = tl.viz.html((x * 2).sum())
    assert len(g.to_html()) < 60_000
    first = recorder.tape(g_out := (x * 2).sum())[0]
    close(tl.viz.html(g_out).data["nodes"][f"e{first.seq}"]["value"], x._data * 2)


def test_bad_input_gives_clear_errors(monkeypatch):
    with pytest.raises(ValueError, match="at least one output"):
        tl.viz.html()
    with pytest.raises(TypeError, match="expected Tensors"):
        tl.viz.html(np.ones(3))
    with pytest.raises(TypeError, match="unknown option.*colour"):
        tl.viz.html(tl.randn(2, requires_grad=True), colour="red")
    with pytest.raises(ValueError, match="tl.viz.html: depth"):
        tl.viz.html(tl.randn(2, requires_grad=True), depth=-1)
    monkeypatch.setenv("PATH", "")
    with pytest.raises(tl.viz.DotNotFoundError, match="apt-get install graphviz"):
        tl.viz.html(tl.randn(2, requires_grad=True))


def test_save_through_viz_save_and_unique_ids(tmp_path):
    _, y = mlp_loss()
    a, b = tl.viz.html(y), tl.viz.html(y)
    ids = [re.search(r'<div class="tlviz" id="([\w-]+)"', g._repr_html_()).group(1) for g in (a, b)]
    assert ids[0] != ids[1]
    written = tl.viz.save(a, os.fspath(tmp_path / "x.html"))
    assert written == [os.fspath(tmp_path / "x.html")]
    assert open(written[0], encoding="utf-8").read() == a.to_html()


def test_beyond_max_nodes_module_calls_start_collapsed_and_carry_their_interior():
    model = nn.Sequential(*[nn.Sequential(nn.Linear(3, 3), nn.Tanh()) for _ in range(4)])
    y = model(tl.randn(2, 3)).sum()
    g = tl.viz.html(y, max_nodes=8)
    text = g._repr_html_()
    assert g.data["depth"] == 1
    modules = [k for k, n in g.data["nodes"].items() if n["kind"] == "module"]
    assert len(modules) == 4 and all(g.data["nodes"][k]["expandable"] for k in modules)
    assert len(re.findall(r'<script type="text/x-tlviz-svg" data-key="m\d+">', text)) == 4
    entries = {int(v) for v in re.findall(r'data-entry="(\d+)"', text)}
    assert entries == {e.seq for e in recorder.tape(y)}  # every entry is somewhere: main graph or an interior
    assert tl.viz.html(y).data["depth"] is None  # fits the default max_nodes: nothing collapsed


def test_show_grads_marks_nan_inf_and_dead():
    x = tl.tensor(np.array([0.0, 1.0]), requires_grad=True)
    y = (x.log() * 0).sum() + x.sqrt().sum()
    with np.errstate(all="ignore"):
        y.backward(retain_graph=True)
    g = tl.viz.html(y, show_grads=True)
    text = g._repr_html_()
    assert 'data-grad="nan"' in text and "gradient norm" in text
    leaf = next(n for n in g.data["nodes"].values() if n["kind"] == "input")
    assert leaf["status"] == "nan" and leaf["grad"]["nan"] == 1
