"""Module scope on the tape (entries recorded inside a module's forward carry its dotted path) and the
composition rule (nn/ defines no backward)."""
import os
import re

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite import nn
from tinygrad_lite.autograd.grad_mode import state


class ConvBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1)
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(self.conv1(x)) + x


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([ConvBlock(2), ConvBlock(2)])

    def forward(self, x):
        for layer in self.layers:  # the ModuleList itself is never called
            x = layer(x)
        return x


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = Encoder()
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(2 * 4 * 4, 3))

    def forward(self, x):
        y = self.encoder(x) * 2.0  # recorded in the root's own scope
        return self.head(y)


def _modules_by_name(out):
    found = {}
    for e in tl.autograd.tape(out):
        found.setdefault(e.module, []).append(e.name)
    return found


def test_entries_carry_dotted_module_paths():
    model = Model()
    x = tl.randn(2, 2, 4, 4, requires_grad=True)
    out = model(x)
    found = _modules_by_name(out)
    assert "unfold" in found["encoder.layers.0.conv1"] and "matmul" in found["encoder.layers.1.conv1"]
    assert found["encoder.layers.0.act"] == ["relu"]
    assert found["encoder.layers.0"] == ["add"]  # the residual add, in the block's own forward
    assert found[""] == ["mul"]  # the root call has path ""
    assert "reshape" in found["head.0"] and "matmul" in found["head.1"]
    assert set(found) == {"", "encoder.layers.0", "encoder.layers.0.conv1", "encoder.layers.0.act",
                          "encoder.layers.1", "encoder.layers.1.conv1", "encoder.layers.1.act", "head.0", "head.1"}
    conv_entry = next(e for e in tl.autograd.tape(out) if e.module == "encoder.layers.1.conv1")
    assert conv_entry.scope.type_name == "Conv2d"
    assert conv_entry.scope.parent.path == "encoder.layers.1" and conv_entry.scope.parent.type_name == "ConvBlock"
    assert conv_entry.scope.parent.parent.parent.path == "" and conv_entry.scope.parent.parent.parent.type_name \
        == "Model"
    assert state.scope is None


def test_paths_are_relative_to_the_outermost_call_and_loss_modules_are_roots():
    model = Model()
    x = tl.randn(2, 2, 4, 4, requires_grad=True)
    out = model.encoder.layers[1](x)
    assert set(_modules_by_name(out)) == {"", "conv1", "act"}
    loss = nn.MSELoss()(model(x), tl.zeros(2, 3))
    entries = tl.autograd.tape(loss)
    assert entries[-1].module == "" and entries[-1].scope.type_name == "MSELoss"


def test_unregistered_module_called_inside_forward_uses_its_class_name():
    class Inline(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 3)

        def forward(self, x):
            return nn.Tanh()(self.fc(x))  # a fresh module, not a child

    class Outer(nn.Module):
        def __init__(self):
            super().__init__()
            self.block = Inline()

        def forward(self, x):
            return self.block(x)
    out = Outer()(tl.randn(2, 3))
    assert set(_modules_by_name(out)) == {"block.fc", "block.Tanh"}


def test_shared_module_and_repeated_calls():
    lin = nn.Linear(2, 2)
    seq = nn.Sequential(lin, nn.ReLU(), lin)
    out = seq(tl.randn(1, 2))
    entries = [e for e in tl.autograd.tape(out) if e.name == "matmul"]
    assert [e.module for e in entries] == ["0", "0"]  # first registered name, as named_modules
    assert entries[0].scope.call != entries[1].scope.call


def test_scope_is_restored_when_forward_raises():
    model = nn.Sequential(nn.Linear(2, 3), nn.Linear(4, 1))
    with pytest.raises(RuntimeError, match="Linear: expected input with last dim 4, got shape"):
        model(tl.randn(5, 2))
    assert state.scope is None


def test_scope_follows_modules_moved_in_the_tree():
    model = Model()
    x = tl.randn(1, 2, 4, 4, requires_grad=True)
    model(x)  # fill the name caches
    model.encoder.layers.insert(0, ConvBlock(2))
    found = _modules_by_name(model(x))
    assert "encoder.layers.2.conv1" in found and "encoder.layers.0.conv1" in found


def test_rnn_steps_are_recorded_in_the_rnn_scope():
    class Tagger(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(5, 3)
            self.lstm = nn.LSTM(3, 4)

        def forward(self, idx):
            return self.lstm(self.emb(idx))[0]
    out = Tagger()(tl.tensor(np.array([[1, 2], [3, 4], [0, 1]])))
    assert set(_modules_by_name(out)) == {"emb", "lstm"}


def test_nn_is_compositions_only():
    """No layer or loss defines its own backward, a custom autograd Function or a VJP, or scatters with
    np.add.at: every gradient comes from the primitives."""
    root = os.path.dirname(nn.__file__)
    forbidden = re.compile(r"def\s+backward|\bFunction\b|defvjp|\bvjp\b|add\.at\b|autograd\.function|"
                           r"register_hook|_entry\b|recorder\.record")
    files = [os.path.relpath(os.path.join(d, f), root) for d, _, names in os.walk(root) for f in names
             if f.endswith(".py")]  # subpackages too (nn/utils/)
    assert {"module.py", "conv.py", "rnn.py", "loss.py", os.path.join("utils", "rnn.py")} <= set(files)
    for name in files:
        with open(os.path.join(root, name)) as fh:
            for lineno, line in enumerate(fh, 1):
                assert not forbidden.search(line), f"nn/{name}:{lineno} is not a composition: {line.strip()}"
