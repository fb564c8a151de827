"""tl.viz.draw collapsing and folding: depth=k, repeated module calls (an unrolled RNN cell) and loops inside one
module call or in user code folded into `name xN` nodes with next-step edges."""
import os
import re
import sys

import numpy as np
import pytest

import tinygrad_lite as tl
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # for --import-mode=importlib too
from test_viz_helpers import KEEP, Mod, clusters, find, labels, make_mlp, parse, randp, scope  # noqa: E402

pytest.importorskip("graphviz")


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
    w = root._modules["fc2"]._parameters["weight"].grad.numpy()
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
