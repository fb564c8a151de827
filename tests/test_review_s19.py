"""Review of the generated guards (compile/guards.py), the argument matcher (signature.matcher), the instance-dict
descriptor cache, _nll's gather and _finite_max's test of finiteness. Each test asserts the behaviour wanted:
compiled calls equal to eager ones bit for bit, the guards accepting and rejecting what the generic walk they
replaced did, with the same messages."""
import random
import warnings

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite import dtypes as _dtypes, nn
from tinygrad_lite.autograd.grad_mode import state as _state
from tinygrad_lite.compile.constants_check import changed
from tinygrad_lite.compile.signature import aliases, arg_layout, flatten, flatten_kwargs, matcher

from _compile_common import mismatches, ramp

F = nn.functional


def _run(fn, args_of, calls=6, change=None, at=3):
    """(calls where tl.compile(fn) differs from fn, bit for bit, stats); args_of(i) gives call i's arguments."""
    f, bad = tl.compile(fn), []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tl.CompileWarning)
        for i in range(calls):
            if i == at and change is not None:
                change()
            got, want = f(*args_of(i)), fn(*args_of(i))
            got, want = (np.asarray(v.numpy() if isinstance(v, tl.Tensor) else v) for v in (got, want))
            if got.dtype != want.dtype or got.shape != want.shape or not np.array_equal(got, want):
                bad.append(i)
    return bad, f.stats


# ---------------- recorded values written into the generated code as their repr ----------------
def test_a_module_whose_training_flag_is_a_numpy_bool_replays():
    """Defect: guards.py wrote `m.training != {training!r}`; np.True_'s repr is `np.True_`, not a name in the
    generated function's namespace: every replay raised NameError (the generic walk compared the values)."""
    m = nn.Linear(4, 4)
    m.training = np.True_
    bad, stats = mismatches(lambda x: m(x).detach())
    assert bad == [] and stats["replays"] == 11 and stats["traces"] == 1, stats


def test_a_used_tensor_whose_requires_grad_is_a_numpy_bool_replays():
    w = tl.tensor(np.linspace(0.5, 2.0, 4).astype(np.float32))
    w.requires_grad = np.True_  # (the slot set directly, as code ported from elsewhere may)
    bad, stats = mismatches(lambda x: (x * w).detach())
    assert bad == [] and stats["replays"] == 11, stats


def test_an_argument_whose_requires_grad_is_a_numpy_bool_replays():
    """The same in the matcher: `requires_grad != {part[4]!r}`."""
    x = ramp()
    x.requires_grad = np.False_
    bad, stats = _run(lambda a: (a * 3.0).detach(), lambda i: (x,))
    assert bad == [] and stats["replays"] == 5 and stats["traces"] == 1, stats


def test_a_matcher_for_a_grad_mode_recorded_as_a_numpy_bool():
    """Grad mode is whatever was stored (backward stores its create_graph as given): the key compares it by value."""
    saved = _state.grad_enabled
    try:
        _state.grad_enabled = np.True_
        key = _key((np.zeros(3),))
        match = matcher(key, _state, _dtypes)
        assert match((np.ones(3),), {}) is not None
        _state.grad_enabled = True
        assert match((np.ones(3),), {}) is not None  # (True == np.True_: the key is equal too)
        _state.grad_enabled = False
        assert match((np.ones(3),), {}) is None
    finally:
        _state.grad_enabled = saved


def test_an_array_argument_of_a_dtype_its_str_does_not_name_replays():
    """Defect: the matcher called np.dtype(arr.dtype.str) for the identity shortcut; StringDType's .str is
    'StringDType()', which np.dtype rejects: the second call raised TypeError."""
    names = np.array(["a", "bb"], dtype=np.dtypes.StringDType())
    bad, stats = _run(lambda x, labels: (x * float(len(labels))).detach(), lambda i: (ramp(), names))
    assert bad == [] and stats["eager_calls"] + stats["replays"] == 5, stats
    assert matcher(_key((names,)), _state, _dtypes)((names.copy(),), {}) is not None
    assert matcher(_key((names,)), _state, _dtypes)((np.array(["a", "bb"]),), {}) is None


# ---------------- a method shadowed on the instance through a replaced __dict__ ----------------
class _Helper:
    def helper(self, x):
        return x * 2.0

    def step(self, x):
        return self.helper(x)


def test_a_method_shadowed_by_an_instance_dict_assigned_anew_is_seen():
    """Defect (also in the walk this replaced): the shadowing test read the instance dict recorded (`own`), so
    `obj.__dict__ = {"helper": ...}` replayed the class's method."""
    obj = _Helper()
    bad, stats = mismatches(obj.step, lambda: setattr(obj, "__dict__", {"helper": lambda x: x * 7.0}))
    assert bad == [] and stats["traces"] == 2, stats
    obj, x = _Helper(), ramp()
    f = tl.compile(obj.step)
    f(x), f(x)
    v = f._variants[0]
    obj.__dict__ = {"helper": lambda x: x * 7.0}
    want = "the method _Helper.helper the function calls was replaced on the object"
    assert v.walk([x]) == want and v.generated()([x]) == want
    obj.__dict__ = {}
    assert v.walk([x]) is None and v.generated()([x]) is None


def test_an_instance_dict_assigned_anew_without_the_method_keeps_replaying():
    obj = _Helper()
    bad, stats = mismatches(obj.step, lambda: setattr(obj, "__dict__", {"other": 1}))
    assert bad == [] and stats["traces"] == 1 and stats["replays"] == 11, stats


# ---------------- the generated guards against the generic walk they replaced ----------------
_MISSING = object()


def _walk(v, leaves):
    """The generic walk of `_Variant.holds` before 68bf05b (and Compiled._call's gradient tests), as the reference."""
    if v.constants:
        reason = changed(v.constants)
        if reason is not None:
            return reason
    for m, training in v.modules:
        if m.training != training:
            return f"{type(m).__name__}.training changed to {m.training}"
        if m._forward_hooks or m._forward_pre_hooks or m.__dict__.get("_backward_hooks"):
            return f"a forward or backward hook was added to {type(m).__name__}"
    for m, settings in v.attrs:
        d = m.__dict__
        for k, val in settings:
            now = d.get(k, _MISSING)
            if now is not val and now != val:
                return f"{type(m).__name__}.{k} changed (a layer setting read when the call was recorded)"
    for m, name, p in v.params:
        if m._parameters.get(name) is not p:
            return f"parameter '{name}' of {type(m).__name__} was replaced"
    for t, (rg, shape, dtype, hooked, layout) in zip(v.live, v.live_meta):
        arr = t._data
        if t.requires_grad != rg or arr.shape != shape or arr.dtype != dtype or bool(t._hooks) != hooked:
            return f"a tensor the function uses changed (shape {arr.shape}, dtype {arr.dtype}, " \
                   f"requires_grad {t.requires_grad})"
        if arg_layout(arr) != layout:
            return f"the memory layout of a tensor the function uses changed (shape {arr.shape})"
    for t, was_none in v.leaves:
        if (t._grad is None) != was_none:
            return "which gradients are None changed"
    for i, was_none in v.arg_grads:
        if (leaves[i]._grad is None) != was_none:
            return "which gradients are None changed (of an argument)"
    return None


class _Base:
    def helper(self, x):
        return x * 2.0


class _Other(_Base):
    def helper(self, x):
        return x * 3.0


class _Alt:
    def helper(self, x):
        return x * 5.0


class _Leaf(_Base):  # (its helper is _Base's: found in a base class)
    pass


class _Meta(type):
    pass


class _Model(nn.Module, metaclass=_Meta):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.drop = nn.Dropout(0.0)
        self.p = 0.5
        self.flag = 1
        self.act = _Leaf()

    def forward(self, x):
        return self.act.helper(self.drop(self.lin(x)) * self.p * self.flag)


SCALE = 1.5


def _changes(m, klass):
    """Changes after which the generated guards and the walk must answer alike (several hold, several fail)."""
    def setg(v):
        globals()["SCALE"] = v
    w = m.lin.weight
    return [
        ("nothing", lambda: None),
        ("p as np.float64", lambda: setattr(m, "p", np.float64(0.5))),
        ("p changed", lambda: setattr(m, "p", 0.25)),
        ("p NaN", lambda: setattr(m, "p", float("nan"))),
        ("flag 1.0", lambda: setattr(m, "flag", 1.0)),
        ("flag True", lambda: setattr(m, "flag", True)),
        ("flag deleted", lambda: delattr(m, "flag")),
        ("__dict__ replaced by an equal copy", lambda: setattr(m, "__dict__", dict(m.__dict__))),
        ("eval", m.eval),
        ("training np.False_", lambda: setattr(m.lin, "training", np.False_)),
        ("hook", lambda: m.lin.register_forward_hook(lambda *a: None)),
        ("pre-hook", lambda: m.register_forward_pre_hook(lambda *a: None)),
        ("dropout p", lambda: setattr(m.drop, "p", 0.0 + 0.0)),
        ("dropout p changed", lambda: setattr(m.drop, "p", 0.1)),
        ("weight replaced", lambda: setattr(m.lin, "weight", nn.Parameter(tl.zeros(4, 4)))),
        ("requires_grad_", lambda: m.requires_grad_(False)),
        ("Fortran data", lambda: setattr(w, "data", np.asfortranarray(w.numpy()))),
        ("read-only data", lambda: w._data.setflags(write=False)),
        ("float64 data", lambda: setattr(w, "_data", w._data.astype(np.float64))),
        ("grad set", lambda: setattr(w, "grad", tl.zeros(4, 4))),
        ("act __class__", lambda: setattr(m.act, "__class__", _Other)),
        ("act helper on the instance", lambda: setattr(m.act, "helper", lambda x: x)),
        ("helper replaced on the base", lambda: setattr(_Base, "helper", lambda self, x: x * 4.0)),
        ("forward replaced on the class", lambda: setattr(klass, "forward", lambda self, x: self.lin(x))),
        ("bases of the class", lambda: setattr(_Leaf, "__bases__", (_Alt,))),
        ("global equal", lambda: setg(float("1.5"))),
        ("global changed", lambda: setg(2.5)),
        ("global deleted", lambda: globals().pop("SCALE")),
    ]


@pytest.mark.parametrize("which", range(len(_changes(_Model(), _Model))))
def test_the_generated_guards_answer_as_the_walk_they_replaced(which):
    saved_helper, saved_forward = _Base.__dict__["helper"], _Model.__dict__["forward"]
    saved_bases = _Leaf.__bases__
    try:
        class Model(_Model):
            def forward(self, x):
                return super().forward(x) * SCALE
        m = Model()
        m.lin.weight.data = np.ones((4, 4), np.float32)  # (a Fortran copy holds the same values)
        x = ramp().reshape(1, 4)
        f = tl.compile(lambda a: m(a).detach())
        f(x), f(x)
        (v,) = f._variants
        assert f.stats["replays"] == 1
        name, change = _changes(m, Model)[which]
        change()
        assert v.generated()([x]) == v.walk([x]) == _walk(v, [x]), name
    finally:
        _Base.helper, _Model.forward, _Leaf.__bases__ = saved_helper, saved_forward, saved_bases
        globals()["SCALE"] = 1.5


def test_equal_keys_guards_failing_then_holding_again_replay_the_right_variant():
    m = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.0))
    x = ramp().reshape(1, 4)
    f = tl.compile(lambda a: m(a).detach())
    modes = [True, False, True, False, False, True]
    for mode in modes:
        m.train(mode)
        assert np.array_equal(f(x).numpy(), m(x).detach().numpy())
    assert f.stats["traces"] == 2 and f.stats["replays"] == 4, f.stats


# ---------------- the matcher against the key ----------------
def _key(args, kwargs=None):
    leaves = []
    return (flatten(args, leaves), flatten_kwargs(kwargs or {}, leaves), aliases(leaves), _state.grad_enabled,
            _dtypes.default_float)


def _pool():
    base = np.arange(12, dtype=np.float32).reshape(3, 4)
    ro = base.copy()
    ro.flags.writeable = False
    return [base, base.copy(), base.T, np.asfortranarray(base), base[:, ::2], base[::-1], base.astype(">f4"),
            base.astype(np.float64), np.zeros((0, 4), np.float32), np.zeros((), np.float32), ro,
            np.zeros(3, dtype=[("a", "<f4"), ("b", "<f4")]), np.zeros(3, dtype=[("c", "<i4"), ("d", "<f4")]),
            np.zeros(3, np.dtype("<f4", metadata={"x": 1})), np.asmatrix(base), np.ma.masked_array(base),
            base.view(np.int32), np.array(["x", "y", "z"], dtype=np.dtypes.StringDType()), np.zeros(3, "U2")]


def test_the_matcher_answers_as_the_key_over_odd_arrays_and_tensors():
    """Subclasses of ndarray and of Tensor (nn.Parameter), structured, byte-swapped, metadata and string dtypes,
    empty and 0-d arrays, read-only and strided ones, the same object twice, a Tensor and its own array."""
    pool, rng = _pool(), random.Random(0)

    def one():
        a = pool[rng.randrange(len(pool))]
        kind = rng.choice(["array", "tensor", "parameter", "graph", "flag"])
        if kind == "array" or a.dtype.kind != "f" or a.dtype.names or type(a) is not np.ndarray:
            return a
        t = tl.tensor(a.copy(), requires_grad=kind in ("graph", "parameter"))
        if kind == "flag":
            t.requires_grad = np.False_
        return nn.Parameter(t) if kind == "parameter" else t * 1.0 if kind == "graph" else t

    for _ in range(1500):
        recorded = []
        for _ in range(rng.randrange(0, 4)):
            r = rng.random()
            recorded.append(rng.choice(recorded) if recorded and r < 0.2 else
                            recorded[-1]._data if recorded and r < 0.3 and isinstance(recorded[-1], tl.Tensor)
                            else one())
        recorded = tuple(recorded)
        key = _key(recorded)
        match = matcher(key, _state, _dtypes)
        assert match is not None
        for _ in range(4):
            call = list(recorded)
            if call and rng.random() < 0.8:
                call[rng.randrange(len(call))] = rng.choice(list(recorded) + [one()])
            call = tuple(call)
            assert (match(call, {}) is not None) == (_key(call) == key), (recorded, call)


# ---------------- _nll's gather and _finite_max ----------------
@pytest.mark.parametrize("target_dtype", [np.int64, np.uint8, np.int16])
@pytest.mark.parametrize("kw", [{}, {"ignore_index": 1}, {"reduction": "none", "ignore_index": 0},
                                {"label_smoothing": 0.1}, {"weight": np.array([1.0, 2.0, 0.5, 3.0], np.float32)}])
def test_cross_entropy_compiled_equals_eager_with_its_gradient(target_dtype, kw):
    rng = np.random.default_rng(0)
    kw = {k: tl.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()}
    x = tl.tensor(rng.standard_normal((6, 4, 3)).astype(np.float32), requires_grad=True)
    targets = [tl.tensor(rng.integers(0, 4, (6, 3)).astype(target_dtype)) for _ in range(5)]

    def step(x, t):
        loss = F.cross_entropy(x, t, **kw).sum()
        x.grad = None
        loss.backward()
        return loss.detach()

    f = tl.compile(step)
    for t in targets:
        x.grad = None
        a = f(x, t).numpy()
        ga = x.grad.numpy().copy()
        b = step(x, t).numpy()
        assert np.array_equal(a, b) and np.array_equal(ga, x.grad.numpy())
    assert f.stats["replays"] == 4, f.stats


@pytest.mark.parametrize("op", ["softmax", "log_softmax", "logsumexp"])
def test_the_shift_of_large_finite_logits_does_not_warn(op):
    """Defect: _finite_max tested finiteness with np.add.reduce(m); finite maxima whose sum overflows made NumPy
    warn 'overflow encountered in reduce' (an error under `-W error` or a warnings filter)."""
    x = tl.tensor(np.full((3, 4), 3e38, np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = getattr(x, op)(-1).numpy()
    want = {"softmax": 0.25, "log_softmax": np.float32(-np.log(4.0)), "logsumexp": None}[op]
    assert np.isfinite(out).all() if want is None else np.allclose(out, want)
