"""Attacks on `model = tl.compile(model)`, `model.compile()` and compiled blocks whose input has a graph of its own,
each compared with the same code without tl.compile: outputs, every .grad, optimizer state, buffers and the random
stream bit for bit, or the same error where eager raises one; what cannot replay runs eagerly and says why."""
import copy
import dataclasses
import pickle
import types

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite import nn
import tinygrad_lite.nn.functional as F

from _compile_common import (arrays as _arrays, assert_same as _assert_same, batches as _batches, compiled_as,
                             mlp as _net)

CALLS = 5


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
    for i, (x, y) in enumerate(_batches(CALLS)):
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


# ---------------- pinned: PyTorch habits around a compiled model, bit for bit ----------------

def _target(model):
    return model._orig_mod if hasattr(model, "_orig_mod") else model


def _habit(i, model, habit):
    """What a training script does to its (compiled or not) model before step i."""
    net = _target(model)
    if habit == "double() mid-training" and i == 2:
        model.double()
    elif habit == "half() mid-training" and i == 2:
        model.half()
    elif habit == "load_state_dict mid-training" and i == 2:
        tl.manual_seed(5)
        net.load_state_dict(_net().state_dict())
    elif habit == "requires_grad_(False) on a layer, then back" and i in (1, 3):
        net[0].requires_grad_(i == 3)
    elif habit == "a parameter replaced" and i == 2:
        net[2].weight = nn.Parameter(tl.tensor(np.full((8, 8), 0.1, np.float32)))
    elif habit == "no_grad eval between steps" and i == 2:
        model.eval()
        with tl.no_grad():
            model(tl.tensor(np.ones((6, 5), np.float32)))
        model.train()


_HABITS = ["double() mid-training", "half() mid-training", "load_state_dict mid-training",
           "requires_grad_(False) on a layer, then back", "a parameter replaced", "no_grad eval between steps",
           "zero_grad(set_to_none=False)"]


def _habit_loop(habit, compiled, in_place):
    tl.manual_seed(0)
    model = compiled_as(_net(), compiled, in_place)
    params = list(model.parameters())  # (a parameter replaced later is not the optimizer's: as in PyTorch)
    opt = tl.optim.SGD(params, lr=0.1, momentum=0.9)
    losses = []
    for i, (x, y) in enumerate(_batches(6)):
        _habit(i, model, habit)
        opt.zero_grad(set_to_none=habit != "zero_grad(set_to_none=False)")
        dtype = next(model.parameters()).dtype
        loss = F.cross_entropy(model(tl.tensor(x).to(dtype)), tl.tensor(y))
        loss.backward()
        opt.step()
        losses.append(loss.numpy().copy())
    stats = (model._compiled_call if in_place else model._compiled).stats if compiled else None
    return _arrays(list(model.parameters()), opt, losses), stats


@pytest.mark.parametrize("in_place", [False, True], ids=["tl.compile(model)", "model.compile()"])
@pytest.mark.parametrize("habit", _HABITS)
def test_pytorch_habits_on_a_compiled_model_stay_bit_identical(habit, in_place):
    want, _ = _habit_loop(habit, False, in_place)
    got, stats = _habit_loop(habit, True, in_place)
    _assert_same(want, got)
    assert stats["replays"] >= 3 and stats["eager_calls"] == 0, stats


# ---------------- pinned: compiled blocks in eager graphs ----------------

class _BNBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc, self.bn, self.drop, self.out = nn.Linear(8, 8), nn.BatchNorm1d(8), nn.Dropout(0.3), nn.Linear(8, 3)

    def forward(self, h, scale=None):
        out = self.out(self.drop(F.relu(self.bn(self.fc(h)))) + h) + h[:, 2:5]
        return out if scale is None else out * scale


def _graph_step(pattern, i, stem, f, x, y):
    """One step's loss (or None when the pattern calls backward itself) for a compiled block `f` in an eager graph."""
    h = F.dropout(stem(x).tanh(), 0.2)  # an eager draw before the call: the random stream stays eager's
    if pattern == "siamese":  # two calls in one graph
        a, b = f(h), f(h * 2)
        return F.cross_entropy(a, y) + (a - b).pow(2).mean()
    if pattern == "accumulate over 3 forwards":
        return F.cross_entropy(f(h), y) / 3
    if pattern == "slices, one backward":
        return sum(F.cross_entropy(f(h[k:k + 2]), y[k:k + 2]) for k in (0, 2, 4))
    if pattern == "retain_graph, two backwards":
        loss = F.cross_entropy(f(h), y)
        loss.backward(retain_graph=True)
        loss.backward()
        return None
    if pattern == "input feeds another layer":
        return F.cross_entropy(f(h) + h[:, :3], y)
    if pattern == "a graph tensor as a keyword argument":
        return F.cross_entropy(f(h, scale=stem(x).sigmoid()[:, :3]), y)
    if pattern == "no_grad eval between":
        if i == 2:
            f.eval()
            with tl.no_grad():
                f(h)
            f.train()
        return F.cross_entropy(f(h), y)
    raise AssertionError(pattern)


def _graph_loop(pattern, compiled):
    tl.manual_seed(0)
    stem, block = nn.Linear(5, 8), _BNBlock()
    f = tl.compile(block) if compiled else block
    params = list(stem.parameters()) + list(block.parameters())
    opt = tl.optim.Adam(params, lr=0.01)
    losses = []
    for i, (x, y) in enumerate(_batches(6)):
        if pattern != "accumulate over 3 forwards" or i % 3 == 0:
            opt.zero_grad()
        loss = _graph_step(pattern, i, stem, f, tl.tensor(x), tl.tensor(y))
        if loss is not None:
            loss.backward()
            losses.append(loss.numpy().copy())
        if pattern != "accumulate over 3 forwards" or i % 3 == 2:
            opt.step()
    extra = losses + [b.numpy().copy() for b in block.buffers()] + [tl.rand(4).numpy()]
    return _arrays(params, opt, extra), f


@pytest.mark.parametrize("pattern", ["siamese", "accumulate over 3 forwards", "slices, one backward",
                                     "retain_graph, two backwards", "input feeds another layer",
                                     "a graph tensor as a keyword argument", "no_grad eval between"])
def test_a_compiled_block_with_batchnorm_and_dropout_in_an_eager_graph_is_bit_identical(pattern):
    want, _ = _graph_loop(pattern, False)
    got, f = _graph_loop(pattern, True)
    _assert_same(want, got)
    assert f.stats["replays"] >= 4 and f.stats["eager_calls"] == 0, f.stats


class _ThreeHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b, self.c = nn.Linear(8, 3), nn.Linear(8, 3), nn.Linear(8, 2)

    def forward(self, h):
        t = F.relu(h)
        return self.a(t), self.b(h).tanh(), self.c(t * h)


def _heads_loop(compiled):
    tl.manual_seed(0)
    stem, heads = nn.Linear(5, 8), _ThreeHeads()
    f = tl.compile(heads) if compiled else heads
    params = list(stem.parameters()) + list(heads.parameters())
    seen = []
    for i, (x, y) in enumerate(_batches(6)):
        h = stem(tl.tensor(x))
        a, b, c = f(h)
        if i % 2:  # each output's own backward, one after another, then another subset
            F.cross_entropy(a, tl.tensor(y)).backward(retain_graph=True)
            (b * b).mean().backward(retain_graph=True)
            (c.sum() + b.sum()).backward()
        else:  # gradients to the graph input and to a stem parameter, .grad untouched
            seen += [g.numpy().copy() for g in tl.autograd.grad(a.sum(), [h], retain_graph=True)]
            seen += [g.numpy().copy() for g in tl.autograd.grad((b + c[:, :1]).sum(), [h, stem.weight])]
    return _arrays(params, extra=seen), f


def test_several_outputs_of_a_block_with_a_graph_input_get_their_gradients_in_any_subset():
    want, _ = _heads_loop(False)
    got, f = _heads_loop(True)
    _assert_same(want, got)
    assert f.stats["replays"] == 5 and f.stats["eager_calls"] == 0, f.stats


# ---------------- pinned: copies of a model compiled in place ----------------

@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_a_copy_of_a_model_compiled_in_place_after_training_goes_on_as_a_plain_copy(how):
    def train(model, batches):
        opt = tl.optim.SGD(model.parameters(), lr=0.1)
        for x, y in batches:
            opt.zero_grad()
            F.cross_entropy(model(tl.tensor(x)), tl.tensor(y)).backward()
            opt.step()
    tl.manual_seed(0)
    model = _net()
    model.compile()
    train(model, _batches(3))
    other = copy.deepcopy(model) if how == "deepcopy" else pickle.loads(pickle.dumps(model))
    compiled = other.__dict__["_compiled_call"]
    assert compiled.fn.__self__ is other and compiled.stats["traces"] == 0
    plain = _net()
    plain.load_state_dict(model.state_dict())
    train(other, _batches(4, seed=1))
    train(plain, _batches(4, seed=1))
    _assert_same(_arrays(list(plain.parameters())), _arrays(list(other.parameters())))
    assert compiled.stats["replays"] == 3
    assert not np.array_equal(next(other.parameters()).numpy(), next(model.parameters()).numpy())
