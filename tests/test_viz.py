"""tl.viz.draw on models built from tensor ops inside module scopes: nodes, clusters, names, collapsing, folding,
gradient heatmap, highlight, saved bytes and max_nodes. Rendering lives in test_viz_render.py."""
import contextlib
import re

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite.autograd import recorder
from tinygrad_lite.autograd.grad_mode import state
from tinygrad_lite.viz import _style

pytest.importorskip("graphviz")


# -- a minimal stand-in for tl.nn.Module: parameters in _parameters, a recorder.Scope per call ----------------
class Mod:
    def __init__(self, type_name, **params):
        self.type_name = type_name
        self._parameters = dict(params)
        self._modules = {}

    def named_parameters(self, prefix="", recurse=True):
        for n, p in self._parameters.items():
            yield prefix + n, p
        if recurse:
            for cn, c in self._modules.items():
                yield from c.named_parameters(prefix + cn + ".", True)


class OnlyDict:
    """A module-like object without named_parameters: names come from its `_parameters` dict."""
    def __init__(self, **params):
        self._parameters = dict(params)


@contextlib.contextmanager
def scope(path, type_name, module=None):
    prev = state.scope
    state.scope = recorder.Scope(path, type_name, prev, module)
    try:
        yield
    finally:
        state.scope = prev


def randp(*shape):
    return tl.tensor(np.random.randn(*shape).astype(np.float32), requires_grad=True)


def linear(x, mod, path):
    with scope(path, "Linear", mod):
        return x @ mod._parameters["weight"].T + mod._parameters["bias"]


def make_mlp(hidden=16):
    root = Mod("MLP")
    root._modules["fc1"] = Mod("Linear", weight=randp(hidden, 4), bias=randp(hidden))
    root._modules["fc2"] = Mod("Linear", weight=randp(3, hidden), bias=randp(3))

    def forward(x):
        with scope("", "MLP", root):
            h = linear(x, root._modules["fc1"], "fc1")
            with scope("act", "ReLU"):
                h = h.relu()
            return linear(h, root._modules["fc2"], "fc2")
    return root, forward


# -- reading the DOT text -------------------------------------------------------------------------------------
NODE = re.compile(r'^\s*(\w+) \[(.*)\]$')
EDGE = re.compile(r'^\s*(\w+) -> (\w+)(?: \[(.*)\])?$')


def attr(attrs, name):
    m = re.search(name + r'=("((?:[^"\\]|\\.)*)"|[^ \]]+)', attrs)
    return None if m is None else (m.group(2) if m.group(2) is not None else m.group(1))


def parse(g):
    nodes, edges = {}, []
    for line in g.source.splitlines():
        if " -> " in line and EDGE.match(line):
            m = EDGE.match(line)
            edges.append((m.group(1), m.group(2), m.group(3) or ""))
        elif NODE.match(line) and not line.strip().startswith(("graph", "node", "edge")):
            m = NODE.match(line)
            nodes[m.group(1)] = {"label": attr(m.group(2), "label"), "fill": attr(m.group(2), "fillcolor"),
                                 "shape": attr(m.group(2), "shape"), "raw": m.group(2)}
    nodes.pop("grad_legend", None)
    return nodes, edges


def labels(g):
    return [n["label"] for n in parse(g)[0].values()]


def find(g, text):
    hits = [k for k, n in parse(g)[0].items() if text in n["label"]]
    assert hits, f"no node label contains {text!r}: {labels(g)}"
    return hits


def clusters(g):
    return re.findall(r"subgraph (cluster_\d+)", g.source)


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


# -- collapsing and folding -----------------------------------------------------------------------------------
def test_depth_collapses_module_calls():
    _, forward = make_mlp()
    y = forward(tl.randn(8, 4)).sum()
    full = parse(tl.viz.draw(y))[0]
    assert len(full) == 13  # 4 parameters, 1 constant, (permute, matmul, add) x 2, relu, sum
    g0 = tl.viz.draw(y, depth=0)
    n0, e0 = parse(g0)
    mods = [k for k, n in n0.items() if n["shape"] == "box3d"]
    assert len(mods) == 1 and clusters(g0) == []
    assert "MLP" in n0[mods[0]]["label"] and "fc1.weight 16x4" in n0[mods[0]]["label"]
    assert len(n0) == 3  # const input, MLP, sum
    g1 = tl.viz.draw(y, depth=1)
    n1, e1 = parse(g1)
    mods = sorted(n["label"].split("\\n")[0] for n in n1.values() if n["shape"] == "box3d")
    assert mods == ["act", "fc1", "fc2"] and len(clusters(g1)) == 1
    assert "weight 16x4" in n1[find(g1, "Linear")[0]]["label"]
    assert len(e1) == 4  # const -> fc1 -> act -> fc2 -> sum


KEEP = []  # scopes hold their modules weakly; a real model outlives its graph


def unrolled_rnn(steps=6, hidden=5, embed=True):
    cell = Mod("RNNCell", weight_ih=randp(hidden, 3), weight_hh=randp(hidden, hidden))
    emb = Mod("Embedding", weight=randp(10, 3))
    KEEP.extend([cell, emb])
    tokens = np.arange(steps) % 10
    h = tl.zeros(1, hidden)
    for t in range(steps):
        if embed:
            with scope("emb", "Embedding", emb):
                x = emb._parameters["weight"][tokens[t:t + 1]]
        else:
            x = tl.randn(1, 3)
        with scope("cell", "RNNCell", cell):
            h = (x @ cell._parameters["weight_ih"].T + h @ cell._parameters["weight_hh"].T).tanh()
    return h.sum()


def test_repeated_recurrent_cell_folds_into_one_node_with_a_count_and_loop():
    y = unrolled_rnn(steps=6)
    g = tl.viz.draw(y)
    nodes, edges = parse(g)
    cell = find(g, "RNNCell x6")
    emb = find(g, "Embedding x6")  # a per-step module of the same loop folds with it
    assert len(cell) == len(emb) == 1
    assert (cell[0], cell[0]) in {(s, d) for s, d, _ in edges}  # the recurrence as a self-loop
    assert "weight_hh 5x5" in nodes[cell[0]]["label"]
    assert len(nodes) == 4 and clusters(g) == []  # h0 (a constant), emb, cell, sum
    unfolded = tl.viz.draw(y, fold_repeats=False)
    assert len(clusters(unfolded)) == 12 and len(find(unfolded, "cell.weight_hh 5x5")) == 1


def test_recurrent_cell_without_per_step_module():
    g = tl.viz.draw(unrolled_rnn(steps=4, embed=False))
    find(g, "RNNCell x4")
    assert not any("Embedding" in lbl for lbl in labels(g))


def test_reused_non_recurrent_module_is_not_folded_unless_asked():
    x = randp(1, 1, 8, 8)
    pool = Mod("MaxPool2d")
    with scope("pool", "MaxPool2d", pool):
        a = x.reshape(1, 1, 4, 2, 4, 2).amax(axis=(3, 5))
    b = a * 2
    with scope("pool", "MaxPool2d", pool):
        c = b.reshape(1, 1, 2, 2, 2, 2).amax(axis=(3, 5))
    y = c.sum()
    assert len(clusters(tl.viz.draw(y))) == 2
    g = tl.viz.draw(y, fold_repeats="all")
    find(g, "MaxPool2d x2")


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


def test_two_different_modules_with_the_same_path_are_not_folded():
    lin1, lin2 = Mod("Linear", weight=randp(4, 4)), Mod("Linear", weight=randp(4, 4))
    with scope("", "Linear", lin1):
        h = tl.randn(2, 4) @ lin1._parameters["weight"]
    with scope("", "Linear", lin2):
        y = (h @ lin2._parameters["weight"]).sum()
    g = tl.viz.draw(y)
    assert len(clusters(g)) == 2 and not any(" x2" in lbl for lbl in labels(g))


# -- loops inside one module call (nn.LSTM's time loop) or in user code ------------------------------------------
def test_loop_in_user_code_folds_with_a_back_edge_and_per_step_gradient_range():
    w, h = randp(3, 3), randp(1, 3)
    x = tl.randn(20, 3)
    for t in range(20):
        h = (x[t:t + 1] + h @ w).tanh()
    y = h.sum()
    y.backward()
    g = tl.viz.draw(y, show_grads=True)
    nodes, edges = parse(g)
    assert len(find(g, "matmul x20")) == len(find(g, "add x20")) == len(find(g, "tanh x20")) == 1
    back = [(s, d) for s, d, a in edges if "next step" in a]
    assert len(back) == 1 and "tanh" in nodes[back[0][0]]["label"] and "matmul" in nodes[back[0][1]]["label"]
    assert "per step" in nodes[find(g, "tanh x20")[0]]["label"]
    assert len(nodes) == 7  # the x[t] constants (one box for the slot), w, h0, matmul, add, tanh, sum
    assert len(parse(tl.viz.draw(y, fold_repeats=False))[0]) == 2 + 20 + 3 * 20 + 1


def test_a_sum_of_terms_and_repeats_on_different_inputs_are_not_folded_by_default():
    a = [randp(2) for _ in range(5)]
    s = a[0] + a[1] + a[2] + a[3] + a[4]
    assert len(find(tl.viz.draw(s), "add")) == 4
    y = tl.stack([(t * 2).exp() for t in a]).sum()
    assert len(find(tl.viz.draw(y), "exp")) == 5  # neither a recurrence nor a map over one input
    assert len(find(tl.viz.draw(y, fold_repeats="all"), "exp x5")) == 1


def test_a_map_over_slices_of_one_tensor_folds():
    x = randp(6, 2)
    y = tl.stack([(x[i] * 2).exp() for i in range(6)]).sum()
    g = tl.viz.draw(y)
    nodes, edges = parse(g)
    for text in ("getitem x6", "mul x6", "exp x6", "reshape x6"):  # stack's reshapes: a map over exp x6
        assert len(find(g, text)) == 1
    assert not any("next step" in a for _, _, a in edges) and len(nodes) == 7  # x, 4 folded, cat, sum


def test_loop_inside_one_module_call_folds_within_its_cluster():
    lstm = Mod("LSTM", weight_hh=randp(4, 16))
    KEEP.append(lstm)
    with scope("", "Net"):
        with scope("lstm", "LSTM", lstm):
            h, c = tl.zeros(1, 4), tl.zeros(1, 4)
            for _ in range(12):
                gates = h @ lstm._parameters["weight_hh"]
                i, f, o, u = gates[:, :4].sigmoid(), gates[:, 4:8].sigmoid(), gates[:, 8:12].sigmoid(), \
                    gates[:, 12:].tanh()
                c = f * c + i * u
                h = o * c.tanh()
        y = h.sum()
    g = tl.viz.draw(y)
    for text in ("matmul x12", "sigmoid x12", "lstm.weight_hh 4x16"):
        find(g, text)
    body = g.source.split('label="lstm: LSTM"')[1]
    assert "sigmoid x12" in body and len(clusters(g)) == 2
    assert len(parse(g)[0]) < 30


def test_collapsed_module_lists_its_parameters_with_their_gradient_norms():
    root, forward = make_mlp()
    y = forward(tl.randn(4, 4)).sum()
    y.backward()
    g = tl.viz.draw(y, depth=1, show_grads=True)
    label = parse(g)[0][find(g, "fc2")[0]]["label"]
    w = root._modules["fc2"]._parameters["weight"].grad.data
    m = re.search(r"weight 3x16 \|g\| ([0-9.e+-]+)", label)
    assert m and float(m.group(1)) == pytest.approx(np.linalg.norm(w), rel=1e-2)


def test_module_called_three_times_with_other_modules_between_is_not_a_recurrence():
    pool = Mod("MaxPool2d")
    convs = [Mod("Conv2d", weight=randp(1)) for _ in range(3)]
    KEEP.extend([pool] + convs)
    h = randp(2, 8)
    for i in range(3):
        with scope("pool", "MaxPool2d", pool):
            h = h.reshape(2, -1, 2).amax(axis=2)
        with scope(f"conv{i}", "Conv2d", convs[i]):
            h = h * convs[i]._parameters["weight"]
    g = tl.viz.draw(h.sum())
    assert not any(" x3" in lbl for lbl in labels(g)) and len(clusters(g)) == 6
    # the same conv each time makes it a loop of (pool, conv) with tied weights: both fold
    h = randp(2, 8)
    for i in range(3):
        with scope("pool", "MaxPool2d", pool):
            h = h.reshape(2, -1, 2).amax(axis=2)
        with scope("conv0", "Conv2d", convs[0]):
            h = h * convs[0]._parameters["weight"]
    g = tl.viz.draw(h.sum())
    assert len(find(g, "MaxPool2d x3")) == len(find(g, "Conv2d x3")) == 1 and "next step" in g.source
