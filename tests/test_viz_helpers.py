"""Helpers shared by the tl.viz tests (no tests here): a minimal stand-in for tl.nn.Module that records a
module scope per call, and readers of the DOT text."""
import contextlib
import re

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite.autograd import recorder
from tinygrad_lite.autograd.grad_mode import state

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
    """({node id: {label, fill, shape, raw}}, [(src, dst, attrs)]) of a drawn graph, without the legend."""
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


KEEP = []  # scopes hold their modules weakly; a real model outlives its graph
