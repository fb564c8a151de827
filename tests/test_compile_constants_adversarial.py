"""Adversarial tests of tl.compile's Python-constants scan (compile/constants.py: settings read by the user's code the
step reaches): settings the step reads, each a stale replay before the scan's fixes; the scan's limits and the lookup
code it does not run. Edges that passed from the start: test_compile_constants_adversarial_edges.py; the view cache
of generated replays: test_compile_view_cache_adversarial.py.

Every test compares the compiled call with the eager call of the same function on the same inputs, bit for bit. A
failing test is a stale replay (or a crash eager does not have); its docstring says what eager does and what the
replay does. Helpers: _compile_common.py (`mismatches`)."""
import collections
import enum
import functools
import types

import numpy as np
import pytest

import tinygrad_lite as tl

from _compile_common import mismatches as _mismatches, ramp as _x

nn = tl.nn
F = nn.functional

SCALE = 2.0


@pytest.fixture(autouse=True)
def _restore_scale():
    yield
    _set_scale(2.0)


def _set_scale(v=3.0):
    global SCALE
    SCALE = v


# ============ settings the step reads (each was a stale replay before the scan's fixes) ============

_cfgmod = types.ModuleType("_adv3_settings")  # a user settings module (`import config`), made here to stay one file
exec(compile("SCALE = 2.0\ndef helper(x):\n    return x * SCALE\n", __file__, "exec"), _cfgmod.__dict__)


def _scaled_by(x, k):
    return x * SCALE * k


_PARTIAL = functools.partial(_scaled_by, k=1.0)


class _Static:
    st = staticmethod(lambda x: x * SCALE)
    cm = classmethod(lambda cls, x: x * SCALE)

    def step(self, x, kind):
        return (self.st(x) if kind == "staticmethod" else self.cm(x)).detach()


class _ClassDefault(nn.Module):
    scale = 2.0  # a class-level default, as many layers have

    def forward(self, x):
        return x * self.scale


class _Base(nn.Module):
    def forward(self, x):
        return x * SCALE


class _Derived(_Base):
    def forward(self, x):
        return super().forward(x) + 1.0


class _Loss:  # a plain callable object (not a Module), as loss/transform objects often are
    def __init__(self, alpha):
        self.alpha = alpha

    def __call__(self, x):
        return x * self.alpha

    apply = __call__


_Mode = enum.Enum("_Mode", "DOUBLE TRIPLE")


class _Items(nn.Module):
    """A layer whose settings are items of a dict and a list it holds: `self.cfg["scale"]`, `self.sizes[0]`."""

    def __init__(self):
        super().__init__()
        self.cfg, self.sizes = {"scale": 2.0}, [2.0]

    def forward(self, x):
        return x * self.cfg["scale"] * self.sizes[0]


class _ByName:  # settings read with getattr and a name computed at run time
    def __init__(self):
        self.scale, self.names = 2.0, {"what": "scale"}


class _AttrDict(dict):  # EasyDict / ml_collections style config
    __getattr__ = dict.__getitem__
    __setattr__ = dict.__setitem__


@tl.no_grad()
def _predict(x):
    return x * SCALE


class _Predictor(nn.Module):
    @tl.no_grad()
    def predict(self, x):
        return x * SCALE

    def forward(self, x):
        return self.predict(x)


def _loss(x):
    return (x * SCALE).sum()


@tl.compile
def _compiled_block(x):
    return x * SCALE


_G = types.SimpleNamespace()  # the globals the cases below read and rebind (reset by each case)


def _case(name):
    """(fn, change) of one case; every value it uses is set up afresh here."""
    g = _G
    g.obj, g.loss, g.act, g.v, g.cfg = _Static(), _Loss(2.0), F.relu, None, _AttrDict(scale=2.0)
    g.d, g.lst, g.by_name, items = {"opt": {"lr": 2.0}}, [2.0, 1.0], _ByName(), _Items()
    _cfgmod.SCALE, _ClassDefault.scale, m = 2.0, 2.0, _ClassDefault()
    typed = {"np.float64": (np.float64(2.0), np.float64(3.0), lambda x: (x * _G.v).detach()),
             "np.float32": (np.float32(2.0), np.float32(3.0), lambda x: (x * _G.v).detach()),
             "Enum": (_Mode.DOUBLE, _Mode.TRIPLE, lambda x: (x * (2.0 if _G.v is _Mode.DOUBLE else 3.0)).detach()),
             "tuple shape": ((2, 2), (4, 1), lambda x: x.reshape(_G.v).sum(0).detach())}
    if name in typed:
        g.v, new, fn = typed[name]
        return fn, lambda: setattr(g, "v", new)
    derived, pred, grad = _Derived(), _Predictor(), tl.func.grad(_loss)
    return {
        "config.SCALE": (lambda x: (x * _cfgmod.SCALE).detach(), lambda: setattr(_cfgmod, "SCALE", 3.0)),
        "config.helper(x)": (lambda x: _cfgmod.helper(x).detach(), lambda: setattr(_cfgmod, "SCALE", 3.0)),
        "partial helper": (lambda x: _PARTIAL(x).detach(), _set_scale),
        "staticmethod": (lambda x: _G.obj.step(x, "staticmethod"), _set_scale),
        "classmethod": (lambda x: _G.obj.step(x, "classmethod"), _set_scale),
        "class default changed": (lambda x: m(x).detach(), lambda: setattr(_ClassDefault, "scale", 3.0)),
        "class default shadowed": (lambda x: m(x).detach(), lambda: setattr(m, "scale", 3.0)),
        "super().forward": (lambda x: derived(x).detach(), _set_scale),
        "global function rebound": (lambda x: _G.act(x).detach(), lambda: setattr(g, "act", F.tanh)),
        "callable object": (lambda x: _G.loss(x).detach(), lambda: setattr(g.loss, "alpha", 3.0)),
        "object rebound": (lambda x: _G.loss.apply(x).detach(), lambda: setattr(g, "loss", _Loss(3.0))),
        "AttrDict": (lambda x: (x * _G.cfg.scale).detach(), lambda: g.cfg.__setitem__("scale", 3.0)),
        "dict item": (lambda x: (x * _G.d["opt"]["lr"]).detach(), lambda: g.d["opt"].__setitem__("lr", 3.0)),
        "list item": (lambda x: (x * _G.lst[-2]).detach(), lambda: g.lst.__setitem__(0, 3.0)),
        "self.cfg[key]": (lambda x: items(x).detach(), lambda: items.cfg.__setitem__("scale", 3.0)),
        "self.sizes[0]": (lambda x: items(x).detach(), lambda: items.sizes.__setitem__(0, 3.0)),
        "getattr(obj, computed)": (lambda x: (x * getattr(_G.by_name, _G.by_name.names["what"])).detach(),
                                   lambda: setattr(g.by_name, "scale", 3.0)),
        "@tl.no_grad() helper": (lambda x: _predict(x), _set_scale),
        "@tl.no_grad() method": (lambda x: pred(x), _set_scale),
        "tl.func.grad(loss)": (lambda x: grad(x), _set_scale),
        "nested tl.compile": (lambda x: _compiled_block(x).detach(), _set_scale),
    }[name]


_STALE = ["config.SCALE", "config.helper(x)", "partial helper", "staticmethod", "classmethod", "class default changed",
          "class default shadowed", "super().forward", "global function rebound", "callable object", "object rebound",
          "np.float64", "np.float32", "Enum", "tuple shape", "AttrDict", "dict item", "list item", "self.cfg[key]",
          "self.sizes[0]", "getattr(obj, computed)", "@tl.no_grad() helper",
          "@tl.no_grad() method", "tl.func.grad(loss)", "nested tl.compile"]


@pytest.mark.parametrize("name", _STALE)
def test_a_setting_the_step_reads_is_never_replayed_stale(name):
    """After 4 replays a setting the step reads changes. Eager computes with the new value (x * 3 instead of x * 2,
    tanh instead of relu, shape (4, 1) instead of (2, 2)); a stale replay returns the recorded result. What the scan
    (constants.py) missed before it was fixed:
    config.SCALE / config.helper(x): `_followed` refuses a module (`import config` settings are never read);
    partial helper: `follow` scans FunctionType/MethodType only;
    staticmethod / classmethod via self: `_class_function` returns None for them;
    class default changed / shadowed (`scale = 2.0` in the class, then `Cls.scale = 3` or `m.scale = 3`): `_attribute`
        (now `_locate`) read the instance __dict__ only (and `_Variant.attrs` only what was in it when recorded);
    super().forward: `super` is a builtin, the base class's forward is never reached;
    global function rebound (`act = F.relu` -> `F.tanh`): functions are followed, never guarded by identity (`_kept`);
    callable object: `__call__` of a non-Module is never scanned; object rebound: `obj.apply(x)` reads self.alpha,
        guarded from a `_Self` of the OLD object (`read`), so rebinding `obj` is not seen;
    np.float64 / np.float32 / Enum / tuple shape: `_kept` takes `type(value) in PLAIN` only;
    AttrDict (`cfg.scale` served by __getattr__ from the dict): `_attribute` found nothing, nothing was guarded;
    dict item / list item / self.cfg[key] / self.sizes[0] (`cfg["opt"]["lr"]`, `lst[-2]`): `_chains` ended a chain at
        its subscript, so items were never guarded; getattr(obj, computed): a name known only at run time;
    @tl.no_grad() helper/method, tl.func.grad(loss): the wrapper is library code, and `scan` skips library code
        entirely (`if depth == 0 or _user_code(code)`), including the user function in its closure;
    nested tl.compile: a Compiled object is neither a function nor a Module."""
    fn, change = _case(name)
    try:
        bad, stats = _mismatches(fn, change)
    finally:
        _cfgmod.SCALE, _ClassDefault.scale = 2.0, 2.0
    assert bad == [], stats


class _Head(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return self.fc(x)


@pytest.mark.parametrize("how", ["model.fc = new Linear", "seq[0] = new Linear"])
def test_a_child_module_replaced_between_calls_is_not_replayed_stale(how):
    """Fine-tuning: a new layer replaces an old one after some compiled no_grad calls. Eager runs the new Linear; the
    replay keeps running the OLD layer's weights (the scan follows children but `_kept` does not guard a Module by
    identity; the parameter guard in compile/__init__.py checks only the recorded modules)."""
    tl.manual_seed(0)
    model = _Head() if how.startswith("model") else nn.Sequential(nn.Linear(4, 4), nn.ReLU())

    def change():
        if how.startswith("model"):
            model.fc = nn.Linear(4, 4)
        else:
            model[0] = nn.Linear(4, 4)
    with tl.no_grad():
        bad, stats = _mismatches(lambda x: model(x), change)
    assert bad == [], stats


class _Glob(nn.Module):
    def forward(self, x):
        return x * SCALE


def _h7(x):
    return x * SCALE


_CHAIN = _h7
for _ in range(7):  # 7 wrappers: _h7 is 8 calls below the compiled lambda
    _CHAIN = (lambda inner: lambda x: inner(x))(_CHAIN)


@pytest.mark.parametrize("limit", ["200 functions", "6 calls deep"])
def test_a_scan_limit_never_means_a_stale_replay(limit):
    """A deep MLP (Sequential of 70 (Linear, ReLU) blocks, then a custom layer reading SCALE: 212 modules), or a
    helper 8 calls deep reading SCALE. Eager uses the new SCALE; the replay the old: the scan silently stops at
    _MAX_FUNCTIONS = 200 / _MAX_DEPTH = 6 (constants.py `scan`) instead of making the variant run eagerly."""
    tl.manual_seed(0)
    model = nn.Sequential(*[nn.Sequential(nn.Linear(4, 4), nn.ReLU()) for _ in range(70)], _Glob())
    fn = (lambda x: model(x).detach()) if limit == "200 functions" else (lambda x: _CHAIN(x).detach())
    bad, stats = _mismatches(fn, _set_scale)
    assert bad == [], stats


class _SlotCfg:  # a __slots__ object whose __getattr__ looks names up in a dict
    __slots__ = ("_d",)

    def __init__(self):
        self._d = {"scale": 2.0}

    def __getattr__(self, name):
        return self._d[name]  # KeyError for a missing name (a common bug eager never triggers)


_SLOTCFG = _SlotCfg()


def test_the_scan_never_raises_where_eager_does_not():
    """`x * cfg.scale` with cfg a __slots__ object whose __getattr__ raises KeyError for unknown names: eager works;
    tl.compile raises KeyError('__dict__') from the scan (constants.py `_followed`: `hasattr(obj, "__dict__")` runs
    the user's __getattr__, and hasattr swallows only AttributeError)."""
    f = tl.compile(lambda x: (x * _SLOTCFG.scale).detach())
    x = _x()
    assert np.array_equal(f(x).numpy(), (x * 2.0).numpy())


class _Lookup:  # settings served by user code: __getattr__ and __getitem__ over a dict
    def __init__(self):
        self.d = {"scale": 2.0}

    def __getattr__(self, name):
        if name == "d":
            raise AttributeError(name)
        return self.d[name]

    def __getitem__(self, key):
        return self.d[key]


_LOOKUP = _Lookup()


_DEFAULTS = collections.defaultdict(lambda: 2.0)
_USERDICT = collections.UserDict(scale=2.0)


@pytest.mark.parametrize("how", ["__getattr__", "__getitem__", "defaultdict new key", "UserDict"])
def test_settings_computed_by_lookup_code_run_eagerly_with_the_reason(how):
    """`x * cfg.scale` / `x * cfg["scale"]` where code computes the value (the user's __getattr__/__getitem__, a
    defaultdict's factory for a key not there yet, UserDict's __getitem__): the scan runs no such code, so it cannot
    guard the value; the call runs eagerly (never a stale replay), and last_reason names the lookup."""
    _LOOKUP.d["scale"] = 2.0
    _DEFAULTS.pop("new", None)
    _USERDICT["scale"] = 2.0
    fn, change, named = {
        "__getattr__": (lambda x: (x * _LOOKUP.scale).detach(), lambda: _LOOKUP.d.__setitem__("scale", 3.0),
                        "_Lookup.__getattr__"),
        "__getitem__": (lambda x: (x * _LOOKUP["scale"]).detach(), lambda: _LOOKUP.d.__setitem__("scale", 3.0),
                        "_Lookup's __getitem__"),
        "defaultdict new key": (lambda x: (x * _DEFAULTS["new"]).detach(), lambda: _DEFAULTS.__setitem__("new", 3.0),
                                "defaultdict's __getitem__"),
        "UserDict": (lambda x: (x * _USERDICT["scale"]).detach(), lambda: _USERDICT.__setitem__("scale", 3.0),
                     "UserDict's __getitem__"),
    }[how]
    bad, stats = _mismatches(fn, change)
    assert bad == [] and stats["replays"] == 0, stats
    assert named in stats["last_reason"], stats


def test_unchanged_items_and_getattr_settings_replay():
    """The guards on items and getattr'd attributes hold while nothing changes: every call after the first replays."""
    cfg, obj = {"lr": 0.5}, _ByName()
    f = tl.compile(lambda x: (x * cfg["lr"] * getattr(obj, obj.names["what"])).detach())
    x = _x()
    for _ in range(6):
        assert np.array_equal(f(x).numpy(), (x * 0.5 * 2.0).numpy())
    assert f.stats["replays"] == 5 and f.stats["eager_calls"] == 0, f.stats
