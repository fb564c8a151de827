"""Attacks on `model = tl.compile(model)`, `model.compile()` and compiled blocks whose input has a graph of its own,
each compared with the same code without tl.compile: outputs, every .grad, optimizer state, buffers and the random
stream bit for bit, or the same error where eager raises one; what cannot replay runs eagerly and says why."""
import dataclasses
import types

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite import nn
import tinygrad_lite.nn.functional as F

CALLS = 5


def _batches(n=CALLS, seed=0, width=5):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((6, width)).astype(np.float32), rng.integers(0, 3, 6)) for _ in range(n)]


def _net():
    return nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3))


def _arrays(params, opt=None, extra=()):
    out = [p.detach().numpy().copy() for p in params]
    out += [np.array("none") if p.grad is None else p.grad.numpy().copy() for p in params]
    for st in (opt.state.values() if opt is not None else ()):
        out += [np.asarray(v.numpy() if isinstance(v, tl.Tensor) else v).copy() for v in st.values()]
    return out + [np.asarray(e) for e in extra]


def _assert_same(want, got):
    assert len(want) == len(got)
    for i, (a, b) in enumerate(zip(want, got)):
        assert a.dtype == b.dtype and np.array_equal(a, b), f"array {i} differs"


class _Fwd(nn.Module):
    """A module whose forward is `body(self, *args)`, with one Linear(8, 8)."""

    def __init__(self, body):
        super().__init__()
        self.fc = nn.Linear(8, 8)
        self.body = body

    def forward(self, *args):
        return self.body(self, *args)


# ---------------- the input of a compiled block changed in place after the call ----------------

_BODIES = {
    "tanh first": lambda s, h: s.fc(h.tanh()),     # no operation of the call reads h's values (tanh saves its output)
    "linear": lambda s, h: s.fc(h),                # the call's Linear reads h: eager refuses a changed h
    "pow of a view": lambda s, h: s.fc(h[:, :8] ** 2),  # the backward reads a view of h's memory
}


def _change(h, out, how):
    if how == "h += block(h)":
        h += out
    elif how == "mul_":
        h.mul_(2)
    elif how == "mul_ under no_grad":  # written in its buffer, not given a new history
        with tl.no_grad():
            h.mul_(2)
    else:
        h.detach_()


def _inplace_after(compiled, body, how):
    tl.manual_seed(0)
    stem, block = nn.Linear(5, 8), _Fwd(_BODIES[body])
    f = tl.compile(block) if compiled else block
    params = list(stem.parameters()) + list(block.parameters())
    outcome = []
    for x, _ in _batches(4):
        for p in params:
            p.grad = None
        h = stem(tl.tensor(x))
        out = f(h)
        _change(h, out, how)
        try:
            (out.sum() + (h * 1.5).sum()).backward()
            outcome.append(np.array("ok"))
        except RuntimeError as exc:
            assert "modified by an in-place operation" in str(exc)
            outcome.append(np.array("raised"))
    return _arrays(params, extra=outcome), f


@pytest.mark.parametrize("how", ["h += block(h)", "mul_", "mul_ under no_grad", "detach_"])
@pytest.mark.parametrize("body", list(_BODIES))
def test_the_input_changed_in_place_after_the_call_refuses_only_where_eager_does(body, how):
    """The replay's tape entry took the argument itself as an input: any in-place change of it before backward
    (the residual `h += block(h)`) made backward raise although eager, whose operations do not read h, does not.
    It now holds h's graph through a stand-in; h itself where the backward reads a view of h's memory."""
    want, _ = _inplace_after(False, body, how)
    got, f = _inplace_after(True, body, how)
    _assert_same(want, got)
    assert f.stats["replays"] == 3 and f.stats["eager_calls"] == 0, f.stats


# ---------------- module.compile() guards what its forward reads, as tl.compile(module) does ----------------

_SCALE = 2.0


class _Scaled(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 3)

    def forward(self, x):
        return self.fc(x) * _SCALE


@pytest.mark.parametrize("in_place", [False, True])
def test_a_global_the_forward_reads_is_guarded_also_when_compiled_in_place(in_place):
    """module.compile() compiled the library's Module._call_impl, so the guards looked at that function's globals,
    not at the forward's: a changed global gave the recorded value's result."""
    global _SCALE
    _SCALE = 2.0
    model = _Scaled()
    if in_place:
        model.compile()
        f, eager = model, model._call_impl
    else:
        f, eager = tl.compile(model), model
    x = tl.tensor(np.ones((2, 3), np.float32))
    try:
        with tl.no_grad():
            for _ in range(3):
                f(x)
            _SCALE = 5.0
            got = f(x).numpy()
            assert np.array_equal(got, eager(x).numpy())
    finally:
        _SCALE = 2.0
    stats = model._compiled_call.stats if in_place else f.stats
    assert stats["replays"] == 2 and stats["traces"] == 2, stats


# ---------------- results a plan cannot rebuild ----------------

@dataclasses.dataclass
class _Output:
    logits: object
    total: object = None


_RESULTS = {
    "dataclass": lambda y: _Output(y, y.sum()),
    "SimpleNamespace": lambda y: types.SimpleNamespace(logits=y),
    "frozenset": lambda y: frozenset([y]),
}


@pytest.mark.parametrize("grad", [False, True])
@pytest.mark.parametrize("kind", list(_RESULTS))
def test_an_output_object_holding_tensors_runs_eagerly_never_stale(kind, grad):
    """A model returning a dataclass (a HuggingFace-style output) or a SimpleNamespace: replays returned the
    recorded object itself, its tensors the first call's values (and, with a graph, the first call's graph); a set
    returned a tensor of a freed slot (None). Such calls now run eagerly and say what to return instead."""
    fc = nn.Linear(5, 3)
    model = _Fwd(lambda s, x: _RESULTS[kind](fc(x)))
    f = tl.compile(model)
    for x, _ in _batches(3):
        x = tl.tensor(x)
        if grad:
            out = f(x)
        else:
            with tl.no_grad():
                out = f(x)
        y = next(iter(out)) if kind == "frozenset" else out.logits
        assert np.array_equal(y.numpy(), fc(x).numpy())
        if grad:
            y.sum().backward()  # (a stale object's graph was released by the previous call's backward)
    assert f.stats["replays"] == 0 and "tuple, a list, a dict or a namedtuple" in f.stats["last_reason"]


# ---------------- the wrapper's attributes are the original's, as PyTorch's OptimizedModule ----------------

class _Head(nn.Module):
    def __init__(self):
        super().__init__()
        self.body, self.fc, self.temperature = nn.Linear(5, 8), nn.Linear(8, 3), 1.0

    def forward(self, x):
        return self.fc(self.body(x).tanh()) / self.temperature


def _new_head(compiled):
    tl.manual_seed(0)
    model = _Head()
    if compiled:
        model = tl.compile(model)
    model.fc = nn.Linear(8, 4)  # fine-tuning: a new head, and a setting the forward reads
    model.temperature = 2.0
    opt = tl.optim.SGD(model.parameters(), lr=0.1)
    outs = []
    for x, y in _batches(4):
        opt.zero_grad()
        out = model(tl.tensor(x))
        F.cross_entropy(out, tl.tensor(y)).backward()
        opt.step()
        outs.append(out.detach().numpy().copy())
    return _arrays(list(model.parameters()), opt, outs), model


def test_attributes_assigned_to_the_wrapper_are_the_originals_as_in_pytorch():
    """`model = tl.compile(model); model.fc = nn.Linear(8, 4)` registered the new head on the wrapper: the original's
    forward went on with the old head (3 classes) while the optimizer also held the unused new one. PyTorch's
    OptimizedModule assigns such attributes to `_orig_mod`, and mirrors its `training`; so does ours now."""
    want, _ = _new_head(False)
    got, model = _new_head(True)
    _assert_same(want, got)
    assert model.stats["replays"] == 3 and model._orig_mod.fc.out_features == 4
    assert [k for k, _ in model.named_parameters()] == ["_orig_mod." + k for k, _ in model._orig_mod.named_parameters()]
    model._orig_mod.eval()
    assert model.training is False  # the original's mode, however it was set
    model.train()
    assert model._orig_mod.training and model._orig_mod.fc.training
    del model.temperature
    assert not hasattr(model._orig_mod, "temperature")


# ---------------- a compiled block inside an eager parent ----------------

class _Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, h):
        return F.relu(self.fc(h)) + h


class _Parent(nn.Module):
    def __init__(self, how=None):
        super().__init__()
        self.stem, self.block, self.head = nn.Linear(5, 8), _Residual(), nn.Linear(8, 3)
        if how == "wrapped child":
            self.block = tl.compile(self.block)
        elif how == "child in place":
            self.block.compile()
        elif how == "both in place":
            self.block.compile()
            self.compile()

    def forward(self, x):
        return self.head(self.block(self.block(self.stem(x).tanh())))  # the block twice in one graph


def _parent_loop(how):
    tl.manual_seed(0)
    model = _Parent(how)
    opt = tl.optim.Adam(model.parameters(), lr=0.01)
    outs = []
    for i, (x, y) in enumerate(_batches()):
        opt.zero_grad()
        loss = F.cross_entropy(model(tl.tensor(x)), tl.tensor(y))
        loss.backward()
        opt.step()
        outs.append(loss.numpy().copy())
        if i == 2:  # the block called on its own, for inference, between steps
            with tl.no_grad():
                outs.append(model.block(tl.tensor(np.ones((2, 8), np.float32))).numpy())
    return _arrays(list(model.parameters()), opt, outs), model


@pytest.mark.parametrize("how", ["wrapped child", "child in place", "both in place"])
def test_a_compiled_child_trains_its_parent_bit_identically_with_the_same_parameter_order(how):
    """`self.block = tl.compile(self.block)` in a parent's __init__ moved the block to the end of the parent's
    children (Module.__setattr__ dropped the old entry before adding the new one): parameters(), hence the
    optimizer's order and its state_dict, and state_dict() came out in another order than without the compile line.
    PyTorch replaces a child or a parameter in its place; so does Module now (also for `model.fc = new_head`)."""
    want, plain = _parent_loop(None)
    got, model = _parent_loop(how)
    _assert_same(want, got)
    prefix = "block._orig_mod." if how == "wrapped child" else "block."
    assert list(model.state_dict()) == [k.replace("block.", prefix) for k in plain.state_dict()]
    stats = {"wrapped child": lambda: model.block.stats, "child in place": lambda: model.block._compiled_call.stats,
             "both in place": lambda: model._compiled_call.stats}[how]()
    assert stats["replays"] >= CALLS - 1 and stats["eager_calls"] == 0, stats


# ---------------- an argument's memory layout ----------------

def _layouts(compiled):
    tl.manual_seed(0)
    stem, block = nn.Linear(8, 8), _Fwd(lambda s, h: s.fc(h.contiguous()) * h)
    f = tl.compile(block) if compiled else block
    params = list(stem.parameters()) + list(block.parameters())
    rng = np.random.default_rng(0)
    outs = []
    for i in range(6):
        for p in params:
            p.grad = None
        h = stem(tl.tensor(rng.standard_normal((8, 8)).astype(np.float32)))
        h = [h, h.t(), h[::-1]][i % 3]  # the same shape, in C order, in Fortran order, with negative strides
        out = f(h)
        (out * out).sum().backward()
        outs.append(out.detach().numpy().copy())
    x = rng.standard_normal((32, 32)).astype(np.float32)
    g = _Fwd(lambda s, x: (x.tanh() * 1.5).sum(0))
    g = tl.compile(g) if compiled else g
    with tl.no_grad():
        outs += [g(tl.tensor(a)).numpy() for a in (x, np.asfortranarray(x), x, np.asfortranarray(x))]
    return _arrays(params, extra=outs), (f, g)


def test_an_arguments_memory_layout_is_a_guard():
    """The signature keyed arguments by shape and dtype only. A replay for an argument of the recorded shape but
    another layout (a transposed view `h.t()`, a Fortran-ordered array) ran the recorded plan: its planned buffers
    in the recorded order (a ufunc's output follows its input's order, which sets a later sum's order) and the
    library's layout choices made at recording (matmul's backward computes a transposed operand's gradient
    transposed). The gradient handed on to the eager graph then summed in another order (the stem's bias.grad),
    and `x.tanh().sum(0)` differed in its last bits. The layout is now part of the signature."""
    want, _ = _layouts(False)
    got, (f, g) = _layouts(True)
    _assert_same(want, got)
    assert f.stats["variants"] == 3 and f.stats["replays"] == 3, f.stats
    assert g.stats["variants"] == 2 and g.stats["replays"] == 2, g.stats
