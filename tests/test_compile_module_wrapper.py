"""`model = tl.compile(model)` as PyTorch code writes it, and compiled blocks inside an eager model.

torch.compile(module) returns an OptimizedModule: a Module holding the original as `_orig_mod`, so the training
script around it runs unchanged (parameters(), train()/eval(), attributes, state_dict keys with `_orig_mod.`);
`module.compile()` compiles in place. A compiled block may take an input that has a graph of its own (an eager
stem before it, another compiled block): its replays hand that input's gradient on to the eager graph, and every
.grad stays eager's bit for bit."""
import copy
import pickle

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite import nn
import tinygrad_lite.nn.functional as F

from tinygrad_lite.compile.module import OptimizedModule

from _compile_common import (CALLS, arrays as _arrays, assert_same as _assert_same, batches as _batches,
                             compiled_as, mlp as _net)


# ---------------- the wrapper, as torch.compile's OptimizedModule ----------------

def _pytorch_loop(compiled, batches, compile_in_place=False):
    """A PyTorch tutorial loop, unchanged but for the one compile line."""
    tl.manual_seed(0)
    model = compiled_as(_net(), compiled, compile_in_place)
    opt = tl.optim.Adam(model.parameters(), lr=0.01)
    model.train()
    losses = []
    for x, y in batches:
        opt.zero_grad()
        loss = F.cross_entropy(model(tl.tensor(x)), tl.tensor(y))
        loss.backward()
        opt.step()
        losses.append(loss.item())
    model.eval()
    with tl.no_grad():
        pred = model(tl.tensor(batches[0][0])).numpy().copy()
    return [np.array(losses), pred] + _arrays(list(model.parameters()), opt), model


@pytest.mark.parametrize("in_place", [False, True])
def test_a_pytorch_training_loop_runs_unchanged_and_replays_bit_identically(in_place):
    want, _ = _pytorch_loop(False, _batches())
    got, model = _pytorch_loop(True, _batches(), in_place)
    _assert_same(want, got)
    stats = model._compiled_call.stats if in_place else model.stats
    assert stats["replays"] >= CALLS - 1 and stats["eager_calls"] == 0, stats


def test_the_wrapper_is_a_module_over_the_original():
    net = _net()
    model = tl.compile(net)
    assert isinstance(model, nn.Module) and isinstance(model, OptimizedModule)
    assert model._orig_mod is net
    assert [id(p) for p in model.parameters()] == [id(p) for p in net.parameters()]
    assert [k for k, _ in model.named_parameters()] == ["_orig_mod." + k for k, _ in net.named_parameters()]
    assert list(model.state_dict()) == ["_orig_mod." + k for k in net.state_dict()]
    stem = _Stem()
    assert tl.compile(stem).fc is stem.fc  # what the wrapper lacks is looked up on the original (PyTorch: model.fc1)
    assert model.get_submodule("_orig_mod.0") is net[0]
    with pytest.raises(AttributeError, match="no_such_layer"):
        model.no_such_layer
    assert repr(model).startswith("OptimizedModule(\n  (_orig_mod): Sequential(")
    model.eval()
    assert not net.training and all(not m.training for m in net.modules())
    model.train()
    assert net.training


def test_the_state_dict_round_trips_with_pytorchs_prefix():
    tl.manual_seed(1)
    a = tl.compile(_net())
    tl.manual_seed(2)
    b = tl.compile(_net())
    x = tl.tensor(_batches(1)[0][0])
    assert not np.array_equal(a(x).numpy(), b(x).numpy())
    b.load_state_dict(a.state_dict())
    assert np.array_equal(a(x).numpy(), b(x).numpy())
    plain = _net()
    plain.load_state_dict(a._orig_mod.state_dict())
    assert np.array_equal(plain(x).numpy(), a(x).numpy())
    with pytest.raises(RuntimeError, match="_orig_mod"):
        plain.load_state_dict(a.state_dict())  # the prefixed keys are not the plain module's (as in PyTorch)


def test_in_place_compile_keeps_the_keys_and_the_calls_replay():
    net = _net()
    keys = list(net.state_dict())
    net.compile()
    assert list(net.state_dict()) == keys
    x = tl.tensor(_batches(1)[0][0])
    with tl.no_grad():
        outs = [net(x).numpy().copy() for _ in range(4)]
    assert all(np.array_equal(outs[0], o) for o in outs)
    assert net._compiled_call.stats["replays"] == 3


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_a_copy_of_a_compiled_model_is_compiled_afresh_and_independent(how):
    model = tl.compile(_net())
    x = tl.tensor(_batches(1)[0][0])
    with tl.no_grad():
        for _ in range(3):
            model(x)
    other = copy.deepcopy(model) if how == "deepcopy" else pickle.loads(pickle.dumps(model))
    assert isinstance(other, OptimizedModule) and other._orig_mod is not model._orig_mod
    assert other.stats["traces"] == 0 and other._compiled.fn is other._orig_mod
    with tl.no_grad():
        for _ in range(3):
            got = other(x)
        other._orig_mod[0].weight.data.mul_(0)  # the copy's own parameters: the original is not touched
        assert np.array_equal(model(x).numpy(), _uncompiled(model)(x).numpy())
    assert np.array_equal(got.numpy(), model(x).numpy())
    assert other.stats["replays"] == 2


def _uncompiled(model):
    return model._orig_mod


# ---------------- compiled blocks whose input has a graph ----------------

class _Stem(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(5, 8)

    def forward(self, x):
        h = self.fc(x).tanh()
        return self.mid(h) if hasattr(self, "mid") else h


class _Block(nn.Module):
    """Uses its input twice (so its gradient is a sum of two contributions inside the call)."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(8, 8), nn.Linear(8, 3)

    def forward(self, h):
        return self.fc2(F.relu(self.fc1(h)) + h * 0.5)


def _hybrid(compiled, batches, variant):
    tl.manual_seed(0)
    stem, block, head = _Stem(), _Block(), nn.Linear(3, 3)
    if variant == "shared":  # a layer used both before the call and inside it: its .grad sums both
        stem.mid = block.fc1
    cblock = tl.compile(block) if compiled else block
    chead = tl.compile(head) if compiled else head
    params = list({id(p): p for m in (stem, block, head) for p in m.parameters()}.values())
    opt = tl.optim.SGD(params, lr=0.1, momentum=0.9)
    seen = []
    for x, y in batches:
        opt.zero_grad()
        h = stem(tl.tensor(x))
        if variant == "hooked":
            h.register_hook(lambda g: seen.append(g.numpy().copy()))
        out = cblock(h)
        if variant == "chained":
            out = chead(out)
        loss = F.cross_entropy(out, tl.tensor(y))
        if variant == "used-after":  # the block's input is also used after the call: contributions interleave
            loss = loss + (h * h).mean()
        if variant == "grad":
            gh, = tl.autograd.grad(loss, [h], retain_graph=True)
            seen.append(gh.numpy().copy())
        loss.backward()
        opt.step()
    return _arrays(params, opt) + seen, (cblock, chead)


@pytest.mark.parametrize("variant", ["plain", "chained", "used-after", "hooked", "grad", "shared"])
def test_a_compiled_block_after_eager_layers_replays_bit_identically(variant):
    want, _ = _hybrid(False, _batches(), variant)
    got, (cblock, chead) = _hybrid(True, _batches(), variant)
    _assert_same(want, got)
    for f in (cblock, chead) if variant == "chained" else (cblock,):
        assert f.stats["replays"] >= CALLS - 1 and f.stats["eager_calls"] == 0, f.stats


def test_a_graph_input_and_a_leaf_input_are_separate_variants():
    block = tl.compile(_Block())
    plain = _Block()
    plain.load_state_dict(block._orig_mod.state_dict())
    for f in (block, plain):
        x = tl.tensor(np.linspace(-1, 1, 16, dtype=np.float32).reshape(2, 8), requires_grad=True)
        for _ in range(3):
            f(x).sum().backward()  # a leaf input: its .grad accumulates
        for _ in range(3):
            f(x * 2.0).sum().backward()  # an input with a graph: its gradient goes on to x
        if f is block:
            got = x.grad.numpy().copy()
    assert block.stats["variants"] == 2 and block.stats["replays"] == 4 and block.stats["eager_calls"] == 0
    assert np.array_equal(got, x.grad.numpy())


def test_the_same_tensor_returned_twice_replays_as_one_object():
    def run(compiled):
        w = tl.tensor(np.linspace(-1, 1, 6), requires_grad=True)
        f = tl.compile(lambda t: (t.tanh() * 2,) * 2) if compiled else (lambda t: (t.tanh() * 2,) * 2)
        for _ in range(4):
            u, v = f(w)
            assert u is v
            (u.sum() + (v * v).sum()).backward()
        return w.grad.numpy(), f
    (want, _), (got, f) = run(False), run(True)
    assert np.array_equal(want, got)
    assert f.stats["replays"] == 3 and f.stats["eager_calls"] == 0, f.stats


def test_torch_compile_options_are_taken_as_pytorch_takes_them():
    """`torch.compile(model, mode="max-autotune")`, `backend="inductor"`, `options={...}`, `disable=True` run
    unchanged: one backend here, the modes and options change nothing, and they are checked as PyTorch checks them."""
    net = _net()
    x = tl.tensor(_batches(1)[0][0])
    for kw in (dict(mode="max-autotune"), dict(mode="reduce-overhead", backend="eager"), dict(options={"a": 1}),
               dict(dynamic=None)):
        model = tl.compile(net, **kw)
        with tl.no_grad():
            assert all(np.array_equal(model(x).numpy(), net(x).numpy()) for _ in range(3))
        assert model.stats["replays"] == 2, kw
    assert tl.compile(net, disable=True) is net
    fn = lambda t: t * 2  # noqa: E731
    assert tl.compile(disable=True)(fn) is fn
    with pytest.raises(RuntimeError, match="Unrecognized mode=fast"):
        tl.compile(net, mode="fast")
    with pytest.raises(RuntimeError, match="Either mode or options"):
        tl.compile(net, mode="default", options={})
    with pytest.raises(TypeError, match="custom backend function"):
        tl.compile(net, backend=lambda gm, inputs: gm)
    other = _net()
    other.compile(mode="max-autotune")
    assert other._compiled_call.name == "Sequential"
    plain = _net()
    plain.compile(disable=True)
    assert "_compiled_call" not in plain.__dict__
