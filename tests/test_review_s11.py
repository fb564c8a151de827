"""Review of 56fd017 (tl.compile: settings read through another name are guards). Each test asserts the correct
behaviour; the comment above a test names the defect the review found there (all fixed the same session): A = a stale
replay (compiled differs from eager after a setting changes), B = a step that replayed before the change and then
never replayed although nothing its tensor math reads changed, C = the constants scan raising. The tests after them
pin patterns the change fixed (each was stale at its parent)."""
import types
import warnings

import numpy as np
import pytest

import tinygrad_lite as tl

from test_compile_constants_adversarial import _mismatches, _x

nn = tl.nn


class Cfg:
    def __init__(self):
        self.scale, self.sub = 2.0, types.SimpleNamespace(scale=3.0)
        self.opts, self.ws = {"scale": 2.0}, [2.0, 1.0]


CFG = Cfg()
SCALE = 2.0


@pytest.fixture(autouse=True)
def _reset():
    global SCALE
    CFG.scale, CFG.sub.scale, CFG.opts, CFG.ws, SCALE = 2.0, 3.0, {"scale": 2.0}, [2.0, 1.0], 2.0
    yield
    SCALE = 2.0


def _set_global(v=5.0):
    global SCALE
    SCALE = v


def _with_args(fn, change, *args):
    """_mismatches with the same arguments after x on every call."""
    return _mismatches(fn, change, lambda i: args)


# ===================== A: stale replays in the newly covered territory =====================

def param_in_comprehension(x, cfg):
    return sum([x * cfg.scale for _ in range(2)])


def param_in_lambda(x, cfg):
    act = lambda t: t * cfg.scale  # noqa: E731
    return act(x)


# Was: a parameter of the compiled function that is a cell (read by a comprehension or lambda) is a 'deref' chain:
# Found.read roots only 'fast' names at self.arguments, and cells only from co_freevars, so it is dropped
@pytest.mark.parametrize("fn", [param_in_comprehension, param_in_lambda], ids=["comprehension", "lambda"])
def test_A_argument_read_inside_a_comprehension_or_lambda(fn):
    bad, stats = _with_args(fn, lambda: setattr(CFG, "scale", 5.0), CFG)
    assert bad == [], stats


def param_rebound(x, cfg):
    cfg = cfg.sub  # (a parameter narrowed to its section: `cfg = cfg.model`)
    return x * cfg.scale


# Was: _unalias: a parameter assigned from itself (cfg = cfg.sub) has only the alias as a source (its own binding is
# not one), so expansion loops until _MAX_ALIASED and drops every chain read through it
def test_A_argument_rebound_from_itself():
    bad, stats = _with_args(param_rebound, lambda: setattr(CFG.sub, "scale", 7.0), CFG)
    assert bad == [], stats


def _opts_scale(c, x):
    return x * c.opts["scale"]


def _first_weight(c, x):
    return x * c.ws[0]


def passes_cfg_dict(x):
    return _opts_scale(CFG, x)


def passes_cfg_list(x):
    return _first_weight(CFG, x)


# Was: keep_all guards only plain values, arrays, tensors, Enums and user objects among a passed-on object's
# attributes: a dict or list setting it holds (cfg.opts['scale'], cfg.ws[0]) is not guarded
@pytest.mark.parametrize("fn, change", [
    (passes_cfg_dict, lambda: CFG.opts.__setitem__("scale", 5.0)),
    (passes_cfg_list, lambda: CFG.ws.__setitem__(0, 5.0)),
    (passes_cfg_list, lambda: setattr(CFG, "ws", [5.0, 1.0])),
], ids=["dict-item", "list-item", "list-rebound"])
def test_A_container_setting_of_an_object_passed_on(fn, change):
    bad, stats = _mismatches(fn, change)
    assert bad == [], stats


class _GlobalBlock(nn.Module):
    def forward(self, x):
        return x * SCALE


def _loss_of(trainer, x):
    return trainer.model(x)


class _Trainer:
    def __init__(self):
        self.model = _GlobalBlock()

    def step(self, x):
        return _loss_of(self, x)  # (compute_loss(self, batch))


def _scaled_by_cfg(m, x):
    return x * m.cfg.scale


class _PassesSelf(nn.Module):
    def __init__(self):
        super().__init__()
        self.cfg = CFG

    def forward(self, x):
        return _scaled_by_cfg(self, x)


# Was: keep_all skips callable attributes (a held Module's code is never scanned), and a Module passed on is not a
# _user_object (callable), so the helper's m.cfg.scale is not guarded
@pytest.mark.parametrize("case", ["trainer-holds-module", "module-passes-self"])
def test_A_code_and_settings_held_by_an_object_passed_on(case):
    if case == "trainer-holds-module":
        bad, stats = _mismatches(_Trainer().step, _set_global)
    else:
        bad, stats = _mismatches(_PassesSelf(), lambda: setattr(CFG, "scale", 5.0))
    assert bad == [], stats


class _Applier:
    def apply(self, x):
        return x * SCALE


class _Delegates:
    def __call__(self, x):
        return self.apply(x)

    def apply(self, x):
        return x * SCALE


class _ClassScaled:
    scale = 2.0

    def __call__(self, x):
        return x * self.scale


def makes_and_calls_a_method(x):
    return _Applier().apply(x)


def makes_and_calls_it(x):
    return _Delegates()(x)


def makes_with_class_default(x):
    return _ClassScaled()(x)


# Was: a class the step instantiates: only __init__/forward/__call__ are scanned, with inst=None (_member of a class),
# so self.helper() and self.<class attribute> in them, and other methods called on the new instance, are dropped
@pytest.mark.parametrize("fn, change", [
    (makes_and_calls_a_method, _set_global),
    (makes_and_calls_it, _set_global),
    (makes_with_class_default, lambda: setattr(_ClassScaled, "scale", 5.0)),
], ids=["other-method", "self.helper-in-__call__", "class-attribute"])
def test_A_instance_made_in_the_step(fn, change):
    try:
        bad, stats = _mismatches(fn, change)
    finally:
        _ClassScaled.scale = 2.0
    assert bad == [], stats


class _Stepper:
    def helper(self, x):
        return x * 2.0

    def step(self, x):
        return self.helper(x)


class _Doubling(nn.Module):
    def forward(self, x):
        return x * 2.0


# Was: _Methods.changed compares only the class's entry; an instance attribute that now shadows the method (obj.helper
# = ..., model.forward = ...) is not checked
@pytest.mark.parametrize("case", ["self.helper", "module.forward"])
def test_A_method_replaced_on_the_instance(case):
    obj = _Stepper() if case == "self.helper" else _Doubling()
    fn = obj.step if case == "self.helper" else obj
    name = "helper" if case == "self.helper" else "forward"
    bad, stats = _mismatches(fn, lambda: setattr(obj, name, lambda x: x * 3.0))
    assert bad == [], stats


# ===================== B: steps that replayed before and never replay now =====================

class _Cfg2:
    def __init__(self):
        self.scale = 2.0


def _compute_loss(t, x):
    return (t.model(x) * t.cfg.scale).sum()


class _CountingTrainer:
    def __init__(self):
        self.model = nn.Linear(4, 2)
        self.cfg = _Cfg2()
        self.opt = tl.optim.SGD(self.model.parameters(), lr=0.1)
        self.step_count = 0

    def step(self, x):
        self.step_count += 1  # a counter, stored only
        loss = _compute_loss(self, x)  # `self` passed to a helper
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return loss


# Was: keep_all on `self` passed to a helper guards every attribute, including the counter the step stores
# (self.step_count += 1): the guard fails on every call
def test_B_trainer_passing_self_to_a_helper_while_counting_keeps_replaying():
    np.random.seed(0)
    ref, obj = _CountingTrainer(), _CountingTrainer()
    obj.model.load_state_dict(ref.model.state_dict())
    f, x = tl.compile(obj.step), tl.tensor(np.linspace(-1, 1, 4).reshape(1, 4))
    for _ in range(6):
        np.testing.assert_allclose(f(x).numpy(), ref.step(x).numpy(), rtol=1e-6)
    assert f.stats["replays"] == 5, f.stats
    assert obj.step_count == ref.step_count == 6  # (moved by each replay since session 22; it stayed at 1)


class _State:
    def __init__(self):
        self.scale, self.global_step = 2.0, 0


STATE = _State()


def _times_state_scale(s, x):
    return x * s.scale


def passes_state(x):
    return _times_state_scale(STATE, x)


# Was: keep_all guards every attribute of an object passed on; a counter the loop advances (global_step/epoch), never
# read by the step, fails the guard: a retrace per change and eager for good past max_variants
def test_B_loop_counter_on_an_object_passed_on_keeps_replaying():
    STATE.global_step = 0
    f, x = tl.compile(passes_state), _x()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tl.CompileWarning)
        for _ in range(12):
            np.testing.assert_array_equal(f(x).numpy(), x.numpy() * 2.0)
            STATE.global_step += 1
    assert f.stats["traces"] == 1 and f.stats["replays"] == 11, f.stats


# ===================== C: the scan raising =====================

class _EqMeta(type):
    def __eq__(cls, other):  # (a metaclass with __eq__ and no __hash__: its classes are unhashable)
        return cls is other


class _MetaCfg(metaclass=_EqMeta):
    def __init__(self):
        self.scale = 2.0


_META_CFG = _MetaCfg()


def reads_argument(x, c):
    return x * c.scale


def passes_meta_cfg(x):
    return reads_argument(x, _META_CFG)


# Was: _dict_descriptor is lru_cache'd on the class: an unhashable class raises TypeError out of _dict, now reached
# for arguments and objects passed on
@pytest.mark.parametrize("as_argument", [True, False], ids=["argument", "passed-on"])
def test_C_object_of_an_unhashable_class_does_not_crash_the_scan(as_argument):
    f, x = (tl.compile(reads_argument), _x()) if as_argument else (tl.compile(passes_meta_cfg), _x())
    args = (_META_CFG,) if as_argument else ()
    for _ in range(3):
        np.testing.assert_array_equal(f(x, *args).numpy(), x.numpy() * 2.0)


# ===================== verified fixed by the change (stale at its parent): regression tests =====================

def walrus(x):
    if (c := CFG).scale > 0:
        return x * c.sub.scale
    return x


def alias_in_try(x):
    try:
        c = CFG.sub
    except AttributeError:
        c = None
    return x * c.scale


def in_match(x):
    match CFG:
        case Cfg(sub=s):
            return x * s.scale
    return x


def tuple_unpacked(x):
    a, b = CFG.sub, CFG
    return x * a.scale * b.scale


def for_over_tuple(x):
    for c in (CFG.sub,):
        x = x * c.scale
    return x


class _K:
    def __init__(self):
        self.k = 2.0

    def apply(self, x):
        return x * self.k


_KOBJ = _K()


def _get_k():
    return _KOBJ


def method_on_returned(x):
    return _get_k().apply(x)


@pytest.mark.parametrize("fn", [walrus, alias_in_try, in_match, tuple_unpacked, for_over_tuple],
                         ids=lambda f: f.__name__)
def test_fixed_alias_forms_are_guards(fn):
    bad, stats = _mismatches(fn, lambda: setattr(CFG.sub, "scale", 7.0))
    assert bad == [] and stats["traces"] == 2, stats


def test_fixed_method_on_an_object_a_helper_returns():
    try:
        bad, stats = _mismatches(method_on_returned, lambda: setattr(_KOBJ, "k", 5.0))
    finally:
        _KOBJ.k = 2.0
    assert bad == [] and stats["traces"] == 2, stats


def _loss_fn(m, x):
    return (m(x) ** 2).sum()


def step_with_model_and_optimizer(x, model, opt):
    loss = _loss_fn(model, x)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss


def test_model_and_optimizer_arguments_keep_replaying():
    model, x = nn.Linear(4, 2), tl.tensor(np.linspace(-1, 1, 4).reshape(1, 4))
    opt = tl.optim.SGD(model.parameters(), lr=0.1)
    f = tl.compile(step_with_model_and_optimizer)
    for _ in range(6):
        f(x, model, opt)
    assert f.stats["traces"] == 1 and f.stats["replays"] == 5, f.stats
