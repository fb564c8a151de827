"""tl.viz.draw on graphs built from tensor ops inside module scopes: nodes, edges, constants, outputs, names,
clusters, gradient heatmap, highlight, saved bytes and max_nodes. Collapsing and folding: test_viz_fold.py;
rendering: test_viz_render.py; tl.nn models: test_viz_nn.py."""
import os
import re
import sys

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite.autograd import recorder
from tinygrad_lite.viz import _style
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # for --import-mode=importlib too
from test_viz_helpers import OnlyDict, clusters, find, labels, make_mlp, parse, randp, scope  # noqa: E402

pytest.importorskip("graphviz")


# -- basics ---------------------------------------------------------------------------------------------------
def test_expression_nodes_edges_and_shapes():
    x, w = randp(4, 3), randp(3, 7)
    loss = (x @ w).relu().sum()
    g = tl.viz.draw(loss)
    nodes, edges = parse(g)
    assert sorted(n["label"].split("\\n")[0] for n in nodes.values()) == ["input 3x7", "input 4x3", "matmul",
                                                                          "relu", "sum"]
    assert "4x7" in nodes[find(g, "matmul")[0]]["label"]
    assert len(edges) == 4 and clusters(g) == []
    out = find(g, "sum")[0]
    assert "output" in nodes[out]["label"] and "peripheries=2" in nodes[out]["raw"]


def test_entries_follow_recording_order_and_the_tape():
    x = randp(5)
    y = (x.exp() + x.sin()).tanh().sum()
    g = tl.viz.draw(y)
    op_keys = [k for k in parse(g)[0] if k.startswith("e")]
    assert op_keys == [f"e{e.seq}" for e in tl.autograd.tape(y)]


def test_constants_drawn_small_scalar_constants_in_label_and_option_hides_them():
    x = randp(4, 3)
    c = tl.tensor(np.ones((4, 3), np.float32))
    y = (x * c * 2.5).sum()
    nodes, edges = parse(tl.viz.draw(y))
    consts = [n for n in nodes.values() if n["label"].startswith("const 4x3")]
    assert len(consts) == 1 and "gray40" in consts[0]["raw"]
    assert any("const 2.5" in n["label"] for n in nodes.values())
    nodes2, _ = parse(tl.viz.draw(y, show_constants=False))
    assert len(nodes2) == len(nodes) - 1 and not any(n["label"].startswith("const 4x3") for n in nodes2.values())


def test_function_entries_named_after_the_class():
    class Square(tl.autograd.Function):
        @staticmethod
        def forward(ctx, a):
            ctx.save_for_backward(a)
            return a * a

        @staticmethod
        def backward(ctx, g):
            (a,) = ctx.saved_tensors
            return 2 * a * g
    y = Square.apply(randp(3)).sum()
    find(tl.viz.draw(y), "Square")


def test_several_and_nested_outputs_all_marked():
    x = randp(3)
    a, b, c = x.exp(), x.sin(), x.cos()
    g = tl.viz.draw(a, (b, [c]))
    nodes, _ = parse(g)
    assert sum("output" in n["label"] for n in nodes.values()) == 3
    with pytest.raises(TypeError, match="expected Tensors"):
        tl.viz.draw(x, "loss")


def test_draw_after_backward_released_the_saved_values():
    x = randp(2, 2)
    y = (x * 3).sum()
    y.backward()
    g = tl.viz.draw(y, show_saved_bytes=True)
    assert "saved: released" in g.source and "const\\n" in g.source


def test_options_are_validated():
    y = randp(2).sum()
    for kw in ({"depth": -1}, {"max_nodes": 0}, {"fold_repeats": "sometimes"}):
        with pytest.raises(ValueError):
            tl.viz.draw(y, **kw)


# -- names and module clusters --------------------------------------------------------------------------------
def test_mlp_clusters_and_parameter_names_from_scopes():
    root, forward = make_mlp()
    x = tl.randn(8, 4)
    g = tl.viz.draw(forward(x).sum())
    assert len(clusters(g)) == 4  # MLP, fc1, act, fc2
    for text in ("fc1.weight 16x4", "fc1.bias 16", "fc2.weight 3x16", "fc2.bias 3", "const 8x4"):
        find(g, text)
    assert not any(lbl.startswith("input") for lbl in labels(g))
    assert re.search(r'label="fc1: Linear"', g.source) and re.search(r'label=MLP', g.source)
    # fc1's ops and fc1.weight sit inside fc1's cluster, which sits inside MLP's
    body = g.source.split("label=\"fc1: Linear\"")[1].split("}")[0]
    assert "fc1.weight" in body and "matmul" in body


def test_params_argument_names_win_and_parameters_module_type_detected():
    w = randp(3, 2)
    y = (tl.randn(5, 3) @ w).sum()
    find(tl.viz.draw(y, params={"encoder.w": w}), "encoder.w 3x2")
    find(tl.viz.draw(y, params=[("w_list", w)]), "w_list 3x2")


def test_names_from_the_parameters_dict_of_a_module_without_named_parameters():
    w = randp(3, 2)
    thing = OnlyDict(kernel=w)  # scopes hold modules weakly
    with scope("", "Net"):
        with scope("block.0", "Thing", thing):
            y = (tl.randn(5, 3) @ w).sum()
    find(tl.viz.draw(y), "block.0.kernel 3x2")


def test_parameter_used_without_calling_its_module_named_recursively():
    root, _ = make_mlp()
    w = root._modules["fc1"]._parameters["weight"]
    with scope("", "MLP", root):
        y = (tl.randn(2, 4) @ w.T).sum()
    find(tl.viz.draw(y), "fc1.weight 16x4")


def test_group_modules_false_draws_no_clusters():
    _, forward = make_mlp()
    g = tl.viz.draw(forward(tl.randn(2, 4)), group_modules=False)
    assert clusters(g) == [] and find(g, "fc2.weight")


# -- gradient heatmap -----------------------------------------------------------------------------------------
def test_colours_follow_gradient_norms():
    x = randp(3)
    a = x * 1e-4
    b = a * 1e3
    y = (b * 1e3).sum()
    y.backward()
    g = tl.viz.draw(y, show_grads=True)
    nodes, _ = parse(g)
    order = [find(g, "mul\\n3\\nconst")[i] for i in range(3)]
    idx = [_style.PALETTE.index(nodes[k]["fill"].strip('"')) for k in order]
    norms = [float(re.search(r"\|g\| ([0-9.e+-]+)", nodes[k]["label"]).group(1)) for k in order]
    assert norms == sorted(norms, reverse=True) and idx == sorted(idx, reverse=True) and idx[0] > idx[-1]
    assert np.isclose(norms[0], np.sqrt(3) * 1e6, rtol=1e-2)  # labels show 3 digits
    assert "grad_legend" in g.source and "gradient norm" in g.source
    xs = nodes[find(g, "input 3")[0]]
    assert np.isclose(float(re.search(r"\|g\| ([0-9.e+-]+)", xs["label"]).group(1)), np.sqrt(3) * 1e2, rtol=1e-2)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_nan_inf_and_zero_gradients_marked():
    x = tl.tensor(np.array([0.0, 1.0]), requires_grad=True)
    y = (x.log() * 0).sum() + x.sqrt().sum()
    y.backward()
    g = tl.viz.draw(y, show_grads=True)
    nodes, _ = parse(g)
    leaf = nodes[find(g, "input 2")[0]]
    assert leaf["label"].endswith("nan") and leaf["fill"].strip('"') == _style.BAD_COLOR
    z = randp(2, 3)
    dead = (z @ tl.tensor(np.full((3, 4), -1.0, np.float32)) - 100).relu()
    out = (dead + 1).sum()
    out.backward()
    g2 = tl.viz.draw(out, show_grads=True)
    n2, _ = parse(g2)
    sub = n2[find(g2, "sub")[0]]
    assert sub["label"].endswith("zero") and sub["fill"].strip('"') == _style.ZERO_COLOR
    w = tl.tensor(np.array([0.0, 4.0]), requires_grad=True)
    s = w.sqrt().sum()
    s.backward()
    assert parse(tl.viz.draw(s, show_grads=True))[0][find(tl.viz.draw(s, show_grads=True), "input 2")[0]][
        "label"].endswith("inf")


def test_grad_stat_and_partial_dead_fraction():
    assert _style.grad_stat(np.array([3.0, 4.0]))[:2] == (None, 5.0)
    assert _style.grad_stat(np.zeros(3))[0] == "zero"
    assert _style.grad_stat(np.array([np.inf, np.nan]))[0] == "nan"
    assert _style.grad_stat(np.array([1e200, 1e200]))[1] == pytest.approx(np.sqrt(2) * 1e200)
    assert _style.grad_stat(np.array([1e-200, 0.0]))[1] == pytest.approx(1e-200)
    assert _style.grad_stat(np.array([1.0, 0.0, 0.0, 2.0]))[2] == 0.5


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_module_nodes_coloured_and_nan_inside_a_collapsed_module_shows():
    _, forward = make_mlp()
    y = forward(tl.randn(4, 4)).sum()
    y.backward()
    g = tl.viz.draw(y, depth=1, show_grads=True)
    nodes, _ = parse(g)
    fc2 = nodes[find(g, "fc2")[0]]
    assert "|g|" in fc2["label"] and fc2["fill"].strip('"') in _style.PALETTE
    x = randp(3)
    with scope("bad", "Log"):
        z = (x - 10).sqrt()  # nan forward and backward
    out = z.sum()
    out.backward()
    g2 = tl.viz.draw(out, depth=0, show_grads=True)
    assert parse(g2)[0][find(g2, "Log")[0]]["fill"].strip('"') == _style.BAD_COLOR


def test_show_grads_before_backward_says_so():
    g = tl.viz.draw((randp(2) * 2).sum(), show_grads=True)
    assert "call .backward() first" in g.source


# -- highlight, saved bytes, max_nodes ------------------------------------------------------------------------
def test_highlight_by_entry_and_by_index_including_inside_collapsed_modules():
    _, forward = make_mlp()
    y = forward(tl.randn(2, 4)).sum()
    tape = tl.autograd.tape(y)
    relu = next(e for e in tape if e.name == "relu")
    for h in (relu, relu.index, [relu]):
        g = tl.viz.draw(y, highlight=h)
        nodes, _ = parse(g)
        marked = [k for k, n in nodes.items() if "magenta" in n["raw"]]
        assert marked == [f"e{relu.seq}"]
    g = tl.viz.draw(y, depth=1, highlight=relu)
    marked = [n["label"] for n in parse(g)[0].values() if "magenta" in n["raw"]]
    assert len(marked) == 1 and marked[0].startswith("act")


def test_saved_bytes_match_the_recorder():
    x = randp(10, 10)
    y = (x @ x).sum()
    g = tl.viz.draw(y, show_saved_bytes=True)
    mm = next(e for e in tl.autograd.tape(y) if e.name == "matmul")
    assert recorder.nbytes_saved(mm) == 3 * 400
    assert "saved 1.2 KB" in parse(g)[0][f"e{mm.seq}"]["label"]


def test_max_nodes_keeps_both_ends_and_says_how_many_were_cut():
    x = randp(3)
    h = x
    for _ in range(100):
        h = h.sin()
    y = h.sum()
    g = tl.viz.draw(y, max_nodes=10)
    nodes, edges = parse(g)
    assert len(nodes) == 11  # 10 kept + the note
    assert "92 nodes cut" in nodes["cut_note"]["label"]  # 102 nodes: x, 100 sin, sum
    assert "output" in nodes[find(g, "sum")[0]]["label"] and find(g, "input 3")
    assert {("cut_note", d) for s, d, _ in edges if s == "cut_note"} and any(d == "cut_note" for _, d, _ in edges)
    assert len(parse(tl.viz.draw(y, max_nodes=None))[0]) == 102


def test_highlighted_nodes_survive_the_cap():
    x = randp(3)
    h = x
    for _ in range(50):
        h = h.cos()
    mid = tl.autograd.tape(h)[25]
    g = tl.viz.draw(h.sum(), max_nodes=6, highlight=mid)
    assert f"e{mid.seq}" in parse(g)[0]


def test_ten_thousand_primitives_and_a_long_chain_build():
    x = randp(4, 4)
    w = tl.tensor(np.eye(4, dtype=np.float32) * 0.5, requires_grad=True)  # gradients shrink, never overflow
    h = x
    for _ in range(5000):
        h = (h @ w).tanh()
    y = h.sum()
    g = tl.viz.draw(y, max_nodes=None, fold_repeats=False)
    assert len(re.findall(r"^\te\d+ \[", g.source, re.M)) == 10001 and len(parse(g)[1]) == 15001
    y.backward()
    capped = tl.viz.draw(y, show_grads=True, fold_repeats=False)
    assert len(parse(capped)[0]) == 2001
    folded = tl.viz.draw(y)  # the loop drawn once
    assert sorted(labels(folded)) == ["input 4x4", "input 4x4", "matmul x5000\\n4x4", "sum\\nscalar\\noutput",
                                      "tanh x5000\\n4x4"]


@pytest.mark.slow
def test_hundred_thousand_step_chain_does_not_crash():
    h = randp(2)
    for _ in range(100_000):
        h = h * 1.0001
    g = tl.viz.draw(h.sum())
    assert len(parse(g)[0]) == 2001 and "nodes cut" in g.source
