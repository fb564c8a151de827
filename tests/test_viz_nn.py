"""tl.viz.draw on models built from tl.nn layers: a digits-style CNN, nn.LSTM/GRU time loops (folded), an RNN cell
called in a user loop (module folding), names from the module scopes and from named_parameters()."""
import re

import numpy as np
import pytest

import tinygrad_lite as tl

pytest.importorskip("graphviz")
nn = pytest.importorskip("tinygrad_lite.nn")


def labels(g):
    return re.findall(r'^\s*\w+ \[label="((?:[^"\\]|\\.)*)"', g.source, re.M)


def count(g, text):
    return sum(text in lbl for lbl in labels(g))


def clusters(g):
    return re.findall(r"subgraph (cluster_\d+)", g.source)


class DigitsCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.drop = nn.Dropout(0.25)
        self.fc = nn.Linear(16 * 2 * 2, 10)

    def forward(self, x):
        x = self.pool(self.bn1(self.conv1(x)).relu())
        x = self.pool(self.conv2(x).relu())
        return self.fc(self.drop(x.reshape(x.shape[0], -1)))


class CharLSTM(nn.Module):
    def __init__(self, vocab=20, hidden=12, layers=1, cell=nn.LSTM):
        super().__init__()
        self.emb = nn.Embedding(vocab, 8)
        self.rnn = cell(8, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, idx):
        out, _ = self.rnn(self.emb(idx))
        return self.head(out)


def cnn_loss():
    model = DigitsCNN()
    x = tl.randn(4, 1, 8, 8)
    y = tl.tensor(np.array([0, 3, 5, 9]))
    loss = nn.functional.cross_entropy(model(x), y)
    return model, loss


def test_cnn_clusters_parameter_names_and_shapes():
    model, loss = cnn_loss()
    g = tl.viz.draw(loss)
    for text in ("conv1.weight 8x1x3x3", "conv1.bias 8", "bn1.weight 8", "conv2.weight 16x8x3x3", "fc.weight 10x64"):
        assert count(g, text) == 1, text
    # DigitsCNN, conv1, bn1, pool (twice: not folded, the calls are not a recurrence), conv2, drop, fc
    assert len(clusters(g)) == 8
    assert count(g, " x2") == 0
    assert tl.viz.draw(loss, params=dict(model.named_parameters())).source == g.source
    renamed = tl.viz.draw(loss, params={"stem": model.conv1.weight})
    assert count(renamed, "stem 8x1x3x3") == 1 and count(renamed, "conv1.bias 8") == 1
    assert tl.viz.draw(loss, params=model).source == g.source


def test_cnn_depth_one_is_one_node_per_layer_call_and_heatmap_after_backward():
    model, loss = cnn_loss()
    loss.backward()
    g = tl.viz.draw(loss, depth=1, show_grads=True)
    boxes = re.findall(r'label="(\w+)\\n(\w+)\\n', g.source)
    assert [b for b in boxes if b[1] in ("Conv2d", "BatchNorm2d", "MaxPool2d", "Dropout", "Linear")] == [
        ("conv1", "Conv2d"), ("bn1", "BatchNorm2d"), ("pool", "MaxPool2d"), ("conv2", "Conv2d"),
        ("pool", "MaxPool2d"), ("drop", "Dropout"), ("fc", "Linear")]
    assert len(clusters(g)) == 1 and "gradient norm" in g.source
    assert re.search(r"weight 8x1x3x3 \|g\| [0-9.e+-]+", g.source)
    assert len(tl.viz.draw(loss, depth=0).source) < len(g.source)


def test_cnn_renders_to_svg(dot_available):
    _, loss = cnn_loss()
    loss.backward()
    svg = tl.viz.draw(loss, show_grads=True).pipe(format="svg").decode()
    assert "conv1.weight" in svg and "<svg" in svg


@pytest.mark.parametrize("cell, gate_op", [(nn.LSTM, "sigmoid x16"), (nn.GRU, "sigmoid x16")])
def test_nn_recurrent_layer_time_loop_folds(cell, gate_op):
    model = CharLSTM(cell=cell)
    idx = tl.tensor(np.random.randint(0, 20, (2, 16)))
    loss = model(idx).sum()
    loss.backward()
    g = tl.viz.draw(loss, show_grads=True)
    assert count(g, gate_op) >= 1 and count(g, "per step") >= 3
    assert "next step" in g.source
    steps = len(tl.autograd.tape(loss))
    assert len(labels(g)) < steps / 5  # the loop body is drawn once, not 16 times
    assert count(g, "rnn.weight_hh_l0") == 1
    assert not any(" x16" in lbl for lbl in labels(tl.viz.draw(loss, fold_repeats=False)))
    g1 = tl.viz.draw(loss, depth=1)
    assert count(g1, cell.__name__) == 1 and not any(" x16" in lbl for lbl in labels(g1))


def test_two_layer_lstm_folds_each_layer_loop():
    model = CharLSTM(layers=2)
    loss = model(tl.tensor(np.random.randint(0, 20, (2, 10)))).sum()
    g = tl.viz.draw(loss)
    assert count(g, "tanh x10") >= 2 and g.source.count("next step") >= 2
    assert count(g, "rnn.weight_hh_l1") == 1


def test_a_cell_module_called_in_a_user_loop_folds_with_a_count():
    cell, head = nn.Linear(6, 4), nn.Linear(4, 2)
    h = tl.zeros(3, 4)
    x = tl.randn(9, 3, 2)
    for t in range(9):
        h = cell(tl.cat([x[t], h], 1)).tanh()
    loss = head(h).sum()
    g = tl.viz.draw(loss)
    assert count(g, "Linear x9") == 1 and count(g, "weight 4x6") == 1
    assert count(g, "tanh x8") == 1 and count(g, "cat x8") == 1  # the loop's own code folds with the cell
    assert len(clusters(g)) == 1 and count(g, "head.weight") == 0  # the head stays a cluster of its own
    assert len(clusters(tl.viz.draw(loss, fold_repeats=False))) == 10
