"""tl.compile: the Python values the step reads (compile/constants.py) are guards: settings on objects, globals and
closures, read by the step or by the user's functions, methods and layers it calls; the scan's limits. Its
adversarial cases: test_compile_constants_adversarial.py."""
import warnings

import numpy as np
import pytest

import tinygrad_lite as tl

nn, F = tl.nn, tl.nn.functional


class _Cfg:
    def __init__(self, **kw):
        self.__dict__.update(kw)


_CFG = _Cfg(temperature=2.0, inner=_Cfg(beta=0.5))


def test_settings_read_from_objects_attributes_are_guards():
    """`x / cfg.temperature`, `cfg.inner.beta`, `self.cfg.scale` in a Module's forward, an object in the closure:
    each plain attribute read in a row from a global, a closure variable or self is a guard, looked up again from its
    root on every call (rebinding the global is seen), so no replay uses a stale setting."""
    global _CFG
    local = _Cfg(shift=1.0)

    def fn(x):
        return x / _CFG.temperature + _CFG.inner.beta * x.exp() - local.shift

    f = tl.compile(fn)
    x = tl.tensor(np.linspace(-1.0, 1.0, 5))
    saved = _CFG
    try:
        for change in (None, ("temperature", 4.0), None, ("beta", 0.25), ("shift", -1.0), ("rebind", 3.0), None):
            if change is not None:
                what, v = change
                if what == "rebind":
                    _CFG = _Cfg(temperature=v, inner=_Cfg(beta=0.5))
                else:
                    setattr({"temperature": _CFG, "beta": _CFG.inner, "shift": local}[what], what, v)
            assert np.array_equal(f(x).numpy(), fn(x).numpy()), (change, f.stats)
    finally:
        _CFG = saved
    assert f.stats["replays"] == 2 and f.stats["traces"] == 5, f.stats

    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(5, 2)
            self.cfg = _Cfg(scale=2.0)

        def forward(self, x):
            return self.fc(x) * self.cfg.scale

    m = Scaled()
    cm = tl.compile(m)
    xs = tl.tensor(np.ones((3, 5), np.float32))
    with tl.no_grad():
        for scale in (2.0, 2.0, 5.0, 5.0):
            m.cfg.scale = scale
            assert np.array_equal(cm(xs).numpy(), m(xs).numpy())
    assert cm.stats["replays"] == 2 and cm.stats["traces"] == 2
    assert "'self.cfg.scale'" not in str(cm.stats["last_reason"])  # (a new variant: no reason kept)


_SCALE = 1.0


def _scaled(x):
    return x * _SCALE + _CFG.inner.beta


def _power(x, n):  # recursive: the scan must not loop
    return x if n == 0 else _power(x * _SCALE, n - 1)


class _Scaler:
    def __init__(self):
        self.factor, self._offset = 2.0, 0.5

    @property
    def offset(self):
        return self._offset * 2

    def scale(self, x):
        return x * self.factor

    def step(self, x):
        return (self.scale(x) + self.offset).sum().item()


class _GlobalScale(nn.Module):
    def forward(self, x):
        return x * _SCALE


@pytest.mark.parametrize("via", ["helper", "recursive helper", "method and property", "layer in Sequential"])
def test_settings_read_by_the_users_functions_it_calls_are_guards(via):
    """A number read by a function the step calls (a helper reading a global or a global object's attribute, a
    method or a property of `self`, a custom layer's forward inside nn.Sequential) is a guard like one the step reads
    itself: changing it records a new variant, never a stale replay."""
    global _SCALE
    obj, seq = _Scaler(), nn.Sequential(nn.Identity(), _GlobalScale())
    fn = {"helper": lambda x: _scaled(x).sum().item(), "recursive helper": lambda x: _power(x, 3).sum().item(),
          "method and property": obj.step, "layer in Sequential": lambda x: seq(x).sum().item()}[via]
    f = tl.compile(fn)
    x = tl.ones(3)
    saved = _SCALE, _CFG.inner.beta
    try:
        for i in range(12):
            if i == 4:
                _SCALE, obj.factor = 3.0, 5.0
            if i == 8:
                _CFG.inner.beta, obj._offset = 7.0, -1.0
            assert f(x) == fn(x), (i, f.stats)
    finally:
        _SCALE, _CFG.inner.beta = saved
    changes = {"helper": 2, "recursive helper": 1, "method and property": 2, "layer in Sequential": 1}[via]
    assert f.stats["traces"] == 1 + changes and f.stats["eager_calls"] == 0, f.stats


def test_an_attribute_the_step_changes_itself_is_never_replayed_stale():
    """`state.calls += 1; return x * state.calls`: the guard, snapshotted before the recording call, fails on every
    later call, so every call computes with the current count (past max_variants: eagerly, warned once)."""
    state = _Cfg(calls=0)

    def step(x):
        state.calls += 1
        return x * state.calls

    f = tl.compile(step, max_variants=2)
    x = tl.tensor(np.ones(2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tl.CompileWarning)
        got = [f(x).numpy()[0] for _ in range(5)]
    assert got == [1.0, 2.0, 3.0, 4.0, 5.0] and f.stats["replays"] == 0, f.stats
    assert "the attribute 'state.calls' the function reads was" in f.stats["last_reason"]


def _wraps(fn):  # a user's decorator (functools.wraps): the method it wraps reads self's settings
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return fn(*args, **kwargs)
    return wrapper


class _Slotted:
    __slots__ = ("k",)

    def __init__(self):
        self.k = 2.0


class _Namespace:  # a class used as a settings namespace
    K = 2.0

    @classmethod
    def scaled(cls, x):
        return x * cls.K


class _Decorated:
    def __init__(self):
        self.k = 2.0

    @_wraps
    def __call__(self, x):
        return x * self.k


_FS = frozenset({2.0})


@pytest.mark.parametrize("case", ["__slots__", "class attribute", "classmethod cls.K", "decorated method",
                                  "frozenset"])
def test_settings_in_slots_classes_decorated_methods_and_frozensets_are_guards(case):
    """Settings the scan reads without running code: a __slots__ attribute, a namespace class's attribute (directly
    and as `cls.K` in a classmethod), `self.k` in a method wrapped by the user's functools.wraps decorator, a
    frozenset global. A change records a new variant (never a stale replay)."""
    global _FS
    slotted, deco = _Slotted(), _Decorated()
    fn, change = {
        "__slots__": (lambda x: x * slotted.k, lambda: setattr(slotted, "k", 3.0)),
        "class attribute": (lambda x: x * _Namespace.K, lambda: setattr(_Namespace, "K", 3.0)),
        "classmethod cls.K": (lambda x: _Namespace.scaled(x), lambda: setattr(_Namespace, "K", 3.0)),
        "decorated method": (lambda x: deco(x), lambda: setattr(deco, "k", 3.0)),
        "frozenset": (lambda x: x * max(_FS), lambda: globals().__setitem__("_FS", frozenset({3.0}))),
    }[case]
    f, x = tl.compile(lambda x: fn(x).detach()), tl.tensor(np.ones(3, np.float32))
    try:
        for i in range(6):
            if i == 3:
                change()
            assert np.array_equal(f(x).numpy(), fn(x).numpy()), (i, f.stats)
    finally:
        _Namespace.K, _FS = 2.0, frozenset({2.0})
    assert f.stats["traces"] == 2 and f.stats["replays"] == 4, f.stats


def test_a_scan_that_hits_its_limit_runs_eagerly_with_the_reason(monkeypatch):
    """Past the scan's depth limit a setting could be missed: the call runs eagerly, saying why (and fullgraph=True
    raises)."""
    from tinygrad_lite.compile import constants
    monkeypatch.setattr(constants, "_MAX_DEPTH", 1)
    inner = lambda x: x * 2.0  # noqa: E731
    middle = lambda x: inner(x)  # noqa: E731
    f, x = tl.compile(lambda x: middle(x).detach()), tl.tensor(np.ones(3, np.float32))
    for _ in range(3):
        assert np.array_equal(f(x).numpy(), x.numpy() * 2.0)
    assert f.stats["eager_calls"] == 3 and f.stats["traces"] == 0, f.stats
    assert "calls deep" in f.stats["last_reason"], f.stats
    with pytest.raises(tl.CompileError, match="the scan of the Python values"):
        tl.compile(lambda x: middle(x).detach(), fullgraph=True)(x)
