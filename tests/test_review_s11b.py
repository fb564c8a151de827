"""Review of 071c381 + 658ff23 (tl.compile: objects passed on guarded after the scan on the names the code reads,
random draws and NumPy argument reads run eagerly). Each test asserts the correct behaviour; the comment above the
first ten names the defect the review found (all fixed the same session): A = a stale replay (compiled differs from
eager after a setting changes, or a Python random draw is replayed), B = a realistic step that replayed at 94e2391
and then never did. The tests after them pin behaviour the change got right (verified against eager)."""
import dataclasses
import functools
import operator
import random
import types

import numpy as np
import pytest

import tinygrad_lite as tl

from test_compile_constants_adversarial import _mismatches, _x

nn = tl.nn


def _draws_eagerly(fn, calls=4):
    """A function drawing random numbers in Python must run eagerly (a replay repeats the recording call's draw)."""
    f, x = tl.compile(fn), _x()
    outs = [f(x).numpy().tobytes() for _ in range(calls)]
    return f.stats["replays"] == 0 and len(set(outs)) == calls, f.stats


# ===================== A: stale replays =====================

class _Plain:
    def factor(self):
        return 2.0


class _Double(_Plain):
    def factor(self):
        return 4.0


class _Trainer:
    def __init__(self):
        self.policy = _Plain()  # a strategy object (not callable) the helper calls a method of


_TRAINER = _Trainer()
POLICY = _Plain()


def _times_policy(t, x):
    return x * t.policy.factor()


def _times_factor(p, x):
    return x * p.factor()


def passes_trainer(x):
    return _times_policy(_TRAINER, x)


def passes_policy(x):
    return _times_factor(POLICY, x)


def _rebind_policy():
    global POLICY
    POLICY = _Double()


# Stale: keep_read guards a passed-on object's data attributes by path, but a method it calls by name is guarded only
# through _Methods.add(obj, name) on the object seen at recording; the object itself (or the held one) is never
# guarded by identity, so rebinding it to an object of another class (t.policy = Double(), POLICY = Double()) passes
# every guard. The same chain read directly in the step (x * _TRAINER.policy.factor()) is guarded (keep(*before)).
# Was: flush/keep_read never guards the identity/class of a passed-on object whose method runs; _Methods is keyed on
# the recording call's object (fixed)
@pytest.mark.parametrize("case", ["held-object-replaced", "global-rebound"])
def test_A_object_passed_on_replaced_by_one_of_another_class(case):
    try:
        if case == "held-object-replaced":
            bad, stats = _mismatches(passes_trainer, lambda: setattr(_TRAINER, "policy", _Double()))
        else:
            bad, stats = _mismatches(passes_policy, _rebind_policy)
    finally:
        global POLICY
        _TRAINER.policy, POLICY = _Plain(), _Plain()
    assert bad == [], stats


class _Augment:
    def __init__(self):
        self.rng = np.random.default_rng(0)

    def __call__(self, x):
        return x * self.rng.uniform(0.5, 1.5)  # the usual way to hold a Generator


_AUG = _Augment()


class _Noisy(nn.Module):
    def __init__(self):
        super().__init__()
        self.rng = np.random.default_rng(0)

    def forward(self, x):
        return x + self.rng.normal()


_NOISY = _Noisy()


class _HoldsGen:
    def __init__(self):
        self.gen = np.random.default_rng(1)


_HOLDS = _HoldsGen()


def _jitter_with(h, x):
    return x * h.gen.normal()


# Stale (the draw of the recording call replayed every call): follow() calls _random_draw(value, path[step:]) before
# _locate advances value, so a Generator reached at step >= 1 (self.rng, cfg.rng) is tested with an empty path and
# its method call is never seen; keep_read keeps a Generator attribute of a passed-on object by identity only.
# Was: _random_draw checks a Generator only as the chain's root: self.rng.normal() (off by one in follow) and
# h.gen.normal() via flush are not draws (fixed)
@pytest.mark.parametrize("fn", [lambda x: _AUG(x), _NOISY, lambda x: _jitter_with(_HOLDS, x)],
                         ids=["callable-self.rng", "module-self.rng", "passed-on-h.gen"])
def test_A_generator_held_as_an_attribute_is_a_draw(fn):
    ok, stats = _draws_eagerly(fn)
    assert ok, stats


_UNIFORM = functools.partial(random.uniform, 0.5, 1.5)


# Stale: call() of a partial whose func is a bound method of a Random (random.uniform) only scans Python code;
# _random_draw is never applied to the partial's func (a `from random import uniform` name is caught, a partial not).
# Was: a functools.partial of random.uniform/np.random.* held in a global is called without _random_draw on its func
# (fixed)
def test_A_partial_of_a_random_function_is_a_draw():
    ok, stats = _draws_eagerly(lambda x: x * _UNIFORM())
    assert ok, stats


class _Cfg:
    def __init__(self):
        self.scale, self.opts, self.debug = 2.0, {"scale": 2.0}, False


_CFG = _Cfg()
SCALE = 2.0


class _GlobalBlock(nn.Module):
    def forward(self, x):
        return x * SCALE


class _Holder:
    def __init__(self):
        self.model, self.debug = _GlobalBlock(), False


_HOLDER = _Holder()


def _opts_scale_debuggable(c, x):
    if getattr(c, "debug", False):  # (any getattr/vars anywhere in the scanned code)
        print("debug")
    return x * c.opts["scale"]


def _run_held_model_debuggable(t, x):
    if getattr(t, "debug", False):
        print("debug")
    return t.model(x)


def _set_scale():
    global SCALE
    SCALE = 5.0


# Stale: with a getattr/vars anywhere in the scanned code (self.dynamic), keep_read delegates to keep_all, which keeps
# only plain values, arrays, tensors, Enums and user objects: a dict/list setting (c.opts['scale']) is not read whole
# and a held Module's code is not scanned — the two s11 fixes (keep_whole / call in keep_read) are lost.
# Was: keep_read's dynamic branch (keep_all) skips containers and held code that the name-filtered branch keeps
# (fixed)
@pytest.mark.parametrize("case", ["dict-setting", "held-module"])
def test_A_getattr_anywhere_drops_container_and_code_guards(case):
    try:
        if case == "dict-setting":
            bad, stats = _mismatches(lambda x: _opts_scale_debuggable(_CFG, x),
                                     lambda: _CFG.opts.__setitem__("scale", 5.0))
        else:
            bad, stats = _mismatches(lambda x: _run_held_model_debuggable(_HOLDER, x), _set_scale)
    finally:
        global SCALE
        _CFG.opts["scale"], SCALE = 2.0, 2.0
    assert bad == [], stats


def _arr(i):
    return (np.full(4, float(i), np.float32),)


# Stale: read() flags a NumPy argument only when an attribute or item is read on it (a.sum(), a[0]); passing it to a
# NumPy or builtin function that reads its values (np.mean(a), sum(a), max(a)) or iterating it in a comprehension is
# the chain (fast a, (<used>,)), which is allowed, so the recording call's values are baked in. README: "a NumPy
# argument's values read in Python ... runs eagerly".
# Was: read() flags only attribute/subscript paths on a NumPy argument, not np.mean(a)/sum(a)/iteration (chain ends in
# <used>) (fixed)
@pytest.mark.parametrize("fn", [
    lambda x, a: x * np.mean(a),
    lambda x, a: x * float(np.max(a)),
    lambda x, a: x * sum(a),
    lambda x, a: x * sum([float(v) for v in a]),
], ids=["np.mean(a)", "np.max(a)", "sum(a)", "comprehension"])
def test_A_numpy_argument_read_through_a_function(fn):
    bad, stats = _mismatches(fn, None, _arr)
    assert bad == [], stats


class _Pair:
    def __init__(self):
        self.a, self.b = 2.0, 3.0

    def __iter__(self):
        return iter((self.a, self.b))


class _Scalar:
    def __init__(self):
        self.v = 2.0

    def __float__(self):
        return self.v


_PAIR, _SCALAR = _Pair(), _Scalar()


def unpacks_pair(x):
    a, b = _PAIR  # (__iter__ runs)
    return x * a + b


def floats_scalar(x):
    return x * float(_SCALAR)  # (__float__ runs)


# Stale: an object passed on has only the methods "called by name" scanned (keep_read over self.names); a protocol
# method Python calls implicitly (__iter__ for unpacking/iteration, __float__, __len__, __index__) is never scanned,
# so the attributes only it reads are not in self.names and are not guarded.
# Was: keep_read scans a passed-on object's methods only by names read (LOAD_ATTR); implicit dunder protocol methods
# are never scanned (fixed)
@pytest.mark.parametrize("fn, change", [
    (unpacks_pair, lambda: setattr(_PAIR, "a", 5.0)),
    (floats_scalar, lambda: setattr(_SCALAR, "v", 5.0)),
], ids=["__iter__", "__float__"])
def test_A_protocol_method_of_an_object_passed_on(fn, change):
    try:
        bad, stats = _mismatches(fn, change)
    finally:
        _PAIR.a, _SCALAR.v = 2.0, 2.0
    assert bad == [], stats


@dataclasses.dataclass
class _DC:
    scale: float = 2.0
    shift: float = 1.0


_DCO = _DC()
_GET_SHIFT = operator.attrgetter("shift")  # (a module-level accessor)
_ag = operator.attrgetter


def astuple_unpacked(x):
    scale, shift = dataclasses.astuple(_DCO)
    return x * scale + shift


def attrgetter_global(x):
    return x * _GET_SHIFT(_DCO)


def attrgetter_renamed(x):
    return x * _ag("shift")(_DCO)


# Stale: _read_names treats a read by computed name as dynamic only when one of the literal names in _DYNAMIC appears
# in the code (getattr, vars, attrgetter, asdict, ...): dataclasses.astuple, an attrgetter held in a global or
# imported under another name read attributes by name in library code and set neither the names nor `dynamic`.
# Was: _DYNAMIC matches literal names only: astuple, an attrgetter object held in a global or renamed read attributes
# unseen by the name filter (fixed)
@pytest.mark.parametrize("fn", [astuple_unpacked, attrgetter_global, attrgetter_renamed],
                         ids=["dataclasses.astuple", "attrgetter-global", "attrgetter-renamed"])
def test_A_attributes_read_by_library_code_by_name(fn):
    try:
        bad, stats = _mismatches(fn, lambda: (setattr(_DCO, "scale", 5.0), setattr(_DCO, "shift", 5.0)))
    finally:
        _DCO.scale, _DCO.shift = 2.0, 1.0
    assert bad == [], stats


@dataclasses.dataclass(slots=True)
class _SlotsCfg:
    scale: float = 2.0


_SLOTS = _SlotsCfg()


def _times_scale(c, x):
    return x * c.scale


# Stale: _settings_object (so _user_object) requires an instance __dict__, so a __slots__ class or a
# @dataclass(slots=True) config passed to a helper is not a "user's object passed on" and nothing of it is guarded
# (read directly, SLOTS.scale, it is guarded: _locate reads slots).
# Was: _settings_object requires _dict(obj): a __slots__/dataclass(slots=True) config passed on is never queued for
# flush (fixed)
def test_A_slots_dataclass_passed_on():
    try:
        bad, stats = _mismatches(lambda x: _times_scale(_SLOTS, x), lambda: setattr(_SLOTS, "scale", 5.0))
    finally:
        _SLOTS.scale = 2.0
    assert bad == [], stats


_settings_mod = types.ModuleType("_s11b_settings")  # a user settings module (`import config`), made here
_settings_mod.__dict__["scale"] = 2.0


# Stale: a user's settings module passed to a helper (`helper(config)`) — _settings_object excludes every ModuleType,
# so it is neither passed on (flush) nor followed; `config.scale` read directly in the step is guarded.
# Was: _settings_object excludes ModuleType: a user's settings module passed on is not guarded (fixed)
def test_A_user_settings_module_passed_on():
    try:
        bad, stats = _mismatches(lambda x: _times_scale(_settings_mod, x), lambda: setattr(_settings_mod, "scale",
                                                                                           5.0))
    finally:
        _settings_mod.scale = 2.0
    assert bad == [], stats


# ===================== B: replayed at 94e2391, never replays now =====================

def _mse(t, x, y):
    return ((t.model(x) - y) ** 2).mean()


class _DataTrainer:
    def __init__(self, n):
        self.model = nn.Linear(4, 1)
        self.opt = tl.optim.SGD(self.model.parameters(), lr=0.01)
        self.data = [(np.zeros(4, np.float32), np.float32(i)) for i in range(n)]  # the training set, never in the step

    def step(self, x, y):
        loss = _mse(self, x, y)  # `self` passed to a helper
        self.opt.zero_grad()
        loss.backward()
        with tl.no_grad():
            for p in self.model.parameters():
                p.data -= 0.0 * p.data  # (any `.data` read on a tensor)
        return loss


# Never replays (replayed at 94e2391): self.names is the union of attribute names read on *any* object, so `p.data`
# on a tensor makes keep_read guard the trainer's `data` (its dataset list): with more than 4096 tuples the scan hits
# _MAX_NESTED and every call runs eagerly; with 100 the guard snapshot makes holds() ~15x slower (68 us vs 4.6 us).
# Was: keep_read's name filter is untyped: tensor `.data` reads make a passed-on trainer's dataset list a whole-read
# guard (limit -> eager) (fixed)
def test_B_trainer_with_a_dataset_attribute_keeps_replaying():
    t = _DataTrainer(5000)
    f = tl.compile(t.step)
    x, y = tl.tensor(np.ones((2, 4), np.float32)), tl.tensor(np.ones((2, 1), np.float32))
    for _ in range(4):
        f(x, y)
    assert f.stats["replays"] == 3, f.stats


# ===================== verified right (compared with eager) =====================

class _Inner:
    def __init__(self):
        self.base = 2.0

    @property
    def eff(self):
        return self.base * 2


class _Outer:
    def __init__(self):
        self.inner = _Inner()


_OUTER = _Outer()


class _K:
    SCALE = 2.0

    @classmethod
    def factor(cls):
        return cls.SCALE


class _Base:
    def __init__(self):
        self.k = 2.0

    def get(self):
        return self.k


class _Child(_Base):
    pass


_KO, _CH = _K(), _Child()


def _nested_closure(c, x):
    def inner(t):
        return t * c.scale
    return inner(x)


def replaced_copy(x):
    c = dataclasses.replace(_DCO)  # (a library call's result, read by name)
    return x * c.shift


@pytest.mark.parametrize("fn, change", [
    (lambda x: x * (lambda o: o.inner.eff)(_OUTER), lambda: setattr(_OUTER.inner, "base", 5.0)),
    (lambda x: (lambda k, x: x * k.factor())(_KO, x), lambda: setattr(_K, "SCALE", 5.0)),
    (lambda x: (lambda c, x: x * c.get())(_CH, x), lambda: setattr(_CH, "k", 5.0)),
    (lambda x: _nested_closure(_CFG, x), lambda: setattr(_CFG, "scale", 5.0)),
    (replaced_copy, lambda: setattr(_DCO, "shift", 5.0)),
], ids=["property-of-held", "classmethod", "inherited-method", "closure-in-helper", "dataclasses.replace"])
def test_settings_reached_through_objects_passed_on_are_guards(fn, change):
    try:
        bad, stats = _mismatches(fn, change)
    finally:
        _OUTER.inner.base, _K.SCALE, _CH.k, _CFG.scale, _DCO.shift = 2.0, 2.0, 2.0, 2.0, 1.0
    assert bad == [] and stats["traces"] == 2 and stats["replays"] == 10, stats


_R = random.random


def _aliased_module_draw(x):
    npr = np.random
    return x * npr.rand()


def _aliased_function_draw(x):
    r = random.random
    return x * r()


@pytest.mark.parametrize("fn", [_aliased_module_draw, _aliased_function_draw, lambda x: x * _R()],
                         ids=["npr = np.random", "r = random.random", "global R = random.random"])
def test_random_draws_through_aliases_run_eagerly(fn):
    ok, stats = _draws_eagerly(fn)
    assert ok and "random numbers" in stats["last_reason"], stats


def test_numpy_argument_metadata_keeps_replaying():
    lin = nn.Linear(4, 2)

    def step(a):
        n, d = a.shape
        return lin(tl.tensor(a)) * (len(a) + n + a.ndim) if a.dtype == np.float32 else None

    f, rng = tl.compile(step), np.random.default_rng(0)
    for _ in range(4):
        a = rng.standard_normal((8, 4)).astype(np.float32)
        np.testing.assert_array_equal(f(a).numpy(), step(a).numpy())
    assert f.stats["replays"] == 3, f.stats


def test_numpy_argument_read_through_an_alias_runs_eagerly():
    def fn(x, a):
        b = a
        return x * float(b[0])

    bad, stats = _mismatches(fn, None, _arr)
    assert bad == [] and stats["replays"] == 0 and "NumPy argument" in stats["last_reason"], stats
