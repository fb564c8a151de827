"""tl.compile's guards written out as one function per variant (compile/guards.py): each line is an identity test
where one decides, and the exact test where it does not. These pin the lines' own shortcuts: a method found in a base
class (the MRO walked ahead of time), an equal setting that is another object, and the reasons a failure names."""
import warnings

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite import nn

from _compile_common import mismatches, ramp


class _Base:
    def helper(self, x):
        return x * 2.0


class _Other:
    def helper(self, x):
        return x * 5.0


class _Child(_Base):
    def step(self, x):
        return self.helper(x)


@pytest.fixture
def child_class():
    """A fresh subclass of _Base per test (the tests edit the class)."""
    class Child(_Base):
        def step(self, x):
            return self.helper(x)
    return Child


def _set(klass, name, value):
    return lambda: setattr(klass, name, value)


def _reason(fn, change):
    """What the guards of fn's first variant say after `change()` (recorded, replayed once, then changed)."""
    f, x = tl.compile(fn), ramp()
    f(x)
    f(x)
    assert f.stats["replays"] == 1, f.stats
    change()
    v = f._variants[0]
    reason = v.walk([x])  # (the first replays' walk, and the function generated for the later ones: one answer)
    assert v.generated()([x]) == reason
    return reason


@pytest.mark.parametrize("change", ["defined on the subclass", "replaced on the base", "bases reassigned"])
def test_a_method_found_in_a_base_class_is_guarded(child_class, change):
    obj = child_class()
    edit = {"defined on the subclass": _set(child_class, "helper", lambda self, x: x * 3.0),
            "replaced on the base": _set(_Base, "helper", lambda self, x: x * 4.0),
            "bases reassigned": _set(child_class, "__bases__", (_Other,))}[change]
    saved = _Base.__dict__["helper"]
    try:
        bad, stats = mismatches(obj.step, edit)
        _Base.helper, child_class.__bases__ = saved, (_Base,)
        if "helper" in child_class.__dict__:
            del child_class.helper
        reason = _reason(obj.step, edit)
    finally:
        _Base.helper = saved
    assert bad == [], stats
    assert reason == f"the method {child_class.__name__}.helper the function calls was replaced", reason


def test_an_unchanged_inherited_method_keeps_replaying():
    bad, stats = mismatches(_Child().step)
    assert bad == [] and stats["replays"] == 11 and stats["eager_calls"] == 0, stats


class _Scaled(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.scale = 2.0

    def forward(self, x):
        return self.lin(x) * self.scale


SCALE = 2.0


def _scaled_by_global(x):
    return x * SCALE


def test_an_equal_setting_that_is_another_object_keeps_replaying():
    """A module setting and a global set to an equal float made anew (not the recorded object): the identity test
    fails, the exact one holds, and the call replays."""
    global SCALE
    m = _Scaled()
    bad, stats = mismatches(lambda x: m(x).detach(), lambda: setattr(m, "scale", float("2.0")))
    assert bad == [] and stats["replays"] == 11 and stats["traces"] == 1, stats
    try:
        bad, stats = mismatches(_scaled_by_global, lambda: globals().__setitem__("SCALE", float("2.0")))
    finally:
        SCALE = 2.0
    assert bad == [] and stats["replays"] == 11 and stats["traces"] == 1, stats


@pytest.mark.parametrize("change, reason", [
    (lambda m: setattr(m, "scale", 3.0), "'scale' the function reads was 2.0 when recorded and is 3.0 now"),
    (lambda m: m.lin.eval(), "Linear.training changed to False"),
    (lambda m: m.lin.register_forward_hook(lambda *a: None), "a forward or backward hook was added to Linear"),
    (lambda m: setattr(m.lin, "bias", nn.Parameter(tl.zeros(4))), "parameter 'bias' of Linear was replaced"),
    (lambda m: m.lin.weight.requires_grad_(False), "a tensor the function uses changed"),
    (lambda m: setattr(m.lin.weight, "data", np.asfortranarray(m.lin.weight.numpy())), "memory layout"),
])
def test_each_kind_of_guard_names_what_changed(change, reason):
    m = _Scaled()
    m.lin.weight.data = np.ones((4, 4), np.float32)  # (symmetric: a Fortran-order copy holds the same values)
    bad, stats = mismatches(lambda x: m(x).detach(), lambda: change(m))
    assert bad == [] and stats["traces"] == 2, stats
    m = _Scaled()
    m.lin.weight.data = np.ones((4, 4), np.float32)
    got = _reason(lambda x: m(x).detach(), lambda: change(m))
    assert got is not None and reason in got, got


def test_which_gradients_are_none_is_guarded():
    w = tl.tensor(np.ones(4, np.float32), requires_grad=True)

    def step(x):
        loss = (x * w).sum()
        loss.backward()
        return loss.item()
    f, x = tl.compile(step), ramp()
    for _ in range(3):
        w.grad = None
        f(x)
    assert f.stats["replays"] == 2
    f(x)  # w.grad from the last call: accumulated into, another variant
    assert f.stats["traces"] == 2, f.stats
    np.testing.assert_array_equal(w.grad.numpy(), 2 * x.numpy())


def test_the_guard_function_is_made_once_per_variant():
    """The first INTERPRETED_REPLAYS replays walk the guards (a short loop never pays for generating them), the next
    one generates them and the matcher, once."""
    from tinygrad_lite.compile.plan import INTERPRETED_REPLAYS
    m = _Scaled()
    f, x = tl.compile(lambda x: m(x).detach()), ramp()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        f(x)
        (variant,) = f._variants
        for _ in range(INTERPRETED_REPLAYS):
            f(x)
            assert variant._check is None
        f(x)  # (generates the guards and the matcher)
        f(x)
        check, match = variant._check, variant.match
        f(x)
    assert check is not None and variant._check is check and variant.match is match and callable(match)
    assert f.stats["replays"] == INTERPRETED_REPLAYS + 3


# ---------------- the argument signature's matcher (signature.matcher): the key's answer without the key ----------
from hypothesis import given, settings, strategies as st  # noqa: E402

from tinygrad_lite import dtypes as _dtypes  # noqa: E402
from tinygrad_lite.autograd.grad_mode import state as _state  # noqa: E402
from tinygrad_lite.compile.signature import aliases, flatten, flatten_kwargs, matcher  # noqa: E402

_POOL = [np.zeros((2, 3), np.float32), np.zeros((2, 3), np.float64), np.zeros((3, 2), np.float32),
         np.asfortranarray(np.zeros((2, 3), np.float32)), np.zeros((2, 6), np.float32)[:, ::2],
         np.zeros(4, np.int64), np.zeros(4, np.int64).view(np.dtype(">i8")), np.zeros((2, 3), np.float32)]
_POOL[-1].flags.writeable = False


def _key(args, kwargs):
    leaves = []
    return (flatten(args, leaves), flatten_kwargs(kwargs, leaves), aliases(leaves), _state.grad_enabled,
            _dtypes.default_float), leaves


@st.composite
def _arguments(draw):
    """Positional arguments drawn from a small pool (so shapes, dtypes and layouts repeat, and arrays are shared):
    each an ndarray, or a Tensor of one with or without requires_grad, or a graph."""
    args, tensors = [], {}
    for _ in range(draw(st.integers(0, 4))):
        i = draw(st.integers(0, len(_POOL) - 1))
        kind = draw(st.sampled_from(["array", "tensor", "tensor", "grad", "graph", "again"]))
        if kind == "array" or _POOL[i].dtype.kind != "f" and kind in ("grad", "graph"):
            args.append(_POOL[i])
        elif kind == "again" and args:
            args.append(args[draw(st.integers(0, len(args) - 1))])
        else:
            t = tensors.setdefault((i, kind), tl.Tensor(_POOL[i]) if kind != "grad" and kind != "graph" else
                                   tl.tensor(_POOL[i].copy(), requires_grad=True))
            args.append(t * 1.0 if kind == "graph" else t)
    return tuple(args)


@settings(max_examples=300, deadline=None)
@given(recorded=_arguments(), other=_arguments(), how=st.sampled_from(["same", "one replaced", "other"]),
       at=st.integers(0, 3), kwargs=st.sampled_from([{}, {}, {"y": 1}]), grad=st.booleans(),
       dtype=st.sampled_from([np.float32, np.float32, np.float64]))
def test_the_matcher_answers_as_the_key(recorded, other, how, at, kwargs, grad, dtype):
    call = recorded if how == "same" else other if how == "other" or not recorded or not other else \
        recorded[:at % len(recorded)] + other[:1] + recorded[at % len(recorded) + 1:]
    key, _ = _key(recorded, {})
    match = matcher(key, _state, _dtypes)
    assert match is not None  # (positional Tensors and arrays: the usual signature)
    saved = _state.grad_enabled, _dtypes.default_float
    try:
        _state.grad_enabled = grad
        tl.set_default_dtype(dtype)
        now, leaves = _key(call, kwargs)
        got = match(call, kwargs)
    finally:
        _state.grad_enabled = saved[0]
        tl.set_default_dtype(saved[1])
    assert (got is not None) == (now == key), (recorded, call, got)
    assert got is None or (len(got) == len(leaves) and all(a is b for a, b in zip(got, leaves)))
    longer = call + (call[:1] or (_POOL[0],))
    assert len(longer) == len(recorded) or match(longer, kwargs) is None  # (another number of arguments)


def test_keys_of_other_shapes_have_no_matcher():
    """Numbers, containers and keyword arguments: those calls build their key."""
    for args, kwargs in [((1.5,), {}), (([np.zeros(2)],), {}), ((np.zeros(2),), {"y": np.zeros(2)}),
                         (((np.zeros(2), np.zeros(2)),), {})]:
        assert matcher(_key(args, kwargs)[0], _state, _dtypes) is None


class _Twice(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = _Doubler(), _Doubler()

    def forward(self, x):
        return self.b(self.a(x))


class _Doubler(nn.Module):
    def forward(self, x):
        return x * 2.0


@pytest.mark.parametrize("where", ["second instance", "class"])
def test_a_method_two_layers_share_is_guarded_on_each(where):
    """Two layers of one class: the class's side of the method test is written once, each layer's own after it."""
    m = _Twice()
    saved = _Doubler.forward

    def change():
        if where == "class":
            _Doubler.forward = lambda self, x: x * 3.0
        else:
            m.b.forward = lambda x: x * 3.0
    try:
        bad, stats = mismatches(lambda x: m(x).detach(), change)
    finally:
        _Doubler.forward = saved
    assert bad == [] and stats["traces"] + stats["eager_calls"] > 1, stats


class _Plain:
    """An object of a plain class: its method, read through its class, may be shadowed by its own dict."""

    def helper(self, x):
        return x * 2.0

    def step(self, x):
        return self.helper(x)


@pytest.mark.parametrize("change", ["instance attribute", "instance dict reassigned", "class method replaced"])
def test_a_method_shadowed_by_the_instance_or_replaced_is_guarded(change):
    """The usual method test reads the object's dict through its class's own descriptor, in the line that checks
    the class: each way the call would now reach other code is seen."""
    obj = _Plain()
    saved = _Plain.__dict__["helper"]

    def edit():
        if change == "instance attribute":
            obj.helper = lambda x: x * 3.0
        elif change == "instance dict reassigned":
            obj.__dict__ = {"helper": lambda x: x * 4.0}
        else:
            _Plain.helper = lambda self, x: x * 5.0
    try:
        bad, stats = mismatches(obj.step, edit)
    finally:
        _Plain.helper = saved
    assert bad == [] and stats["traces"] + stats["eager_calls"] > 1, stats


def test_an_instance_dict_reassigned_without_the_method_keeps_replaying():
    obj = _Plain()
    obj.scale = 2.0
    f, x = tl.compile(obj.step), ramp()
    for i in range(12):
        if i == 5:
            obj.__dict__ = {"scale": 2.0}  # another dict, still without `helper`
        assert np.array_equal(f(x).numpy(), obj.step(x).numpy())
    assert f.stats["traces"] == 1 and f.stats["replays"] == 11, f.stats
