"""Third review of tl.compile's guard scan (d084f10, e51db47, 1957352: constants.py / bytecode.py / objects.py /
values.py). Each test asserts the correct behaviour (verified against eager); the comment above a test names the
defect the review found (A = a stale replay, B = a realistic step that replayed at 94e2391 and then never did), all
fixed the same session except one, a documented limit then (a NumPy argument's values read in a helper the step
passes it to), fixed in the twentieth session. The unmarked tests at the end pin behaviour verified right."""
import dataclasses
import warnings

import numpy as np
import pytest

import tinygrad_lite as tl

from test_compile_constants_adversarial import _mismatches as _shared_mismatches, _x

nn = tl.nn


def _mismatches(fn, change=None, args=lambda i: ()):
    """The shared _mismatches over 10 calls, change() before the 5th."""
    return _shared_mismatches(fn, change, args, calls=10, at=4)


# ===================== A: stale replays =====================

class _Policy:
    def factor(self):
        return 2.0


POLICY = _Policy()


def _times_factor(p, x):
    return x * p.factor()


def passes_policy(x):
    return _times_factor(POLICY, x)


def _rebind_to_shadowing_instance():
    global POLICY
    p = _Policy()
    p.factor = lambda: 4.0  # an instance attribute: called instead of the class's method
    POLICY = p


# keep_read guards a passed-on object by its class only (_TYPE); _Methods.add records the recording call's object and
# its own dict, so another instance of the same class whose dict shadows the method passes every guard (the same
# object gaining the attribute is seen; reading POLICY.factor() directly in the step keeps POLICY by identity).
# Was: passed-on object guarded by class (_TYPE) only; _Methods checks the recording object's dict, not the object now
# at the path (fixed)
def test_A_passed_on_object_replaced_by_same_class_instance_shadowing_a_method():
    global POLICY
    try:
        bad, stats = _mismatches(passes_policy, _rebind_to_shadowing_instance)
    finally:
        POLICY = _Policy()
    assert bad == [], stats


class _DictConfig:
    def __init__(self, **kw):
        self._d = dict(kw)

    def __getattr__(self, name):
        try:
            return self._d[name]
        except KeyError:
            raise AttributeError(name) from None


DCFG = _DictConfig(scale=2.0)


def _scaled(cfg, x):
    return x * cfg.scale


def passes_dict_config(x):
    return _scaled(DCFG, x)


# README: "a setting computed by a __getattr__ ... makes the call run eagerly" — true for `x * DCFG.scale` in the step
# (follow sets the limit), but keep_read, for the same object passed on, skips a name _locate does not find (_GONE)
# without checking _computes(__getattr__): cfg.scale is baked, and the dict behind it is never guarded.
# Was: keep_read skips names computed by a passed-on object's __getattr__ (no _computes limit as follow has) (fixed)
def test_A_passed_on_object_with_computing_getattr():
    global DCFG
    try:
        bad, stats = _mismatches(passes_dict_config, lambda: DCFG._d.__setitem__("scale", 3.0))
    finally:
        DCFG = _DictConfig(scale=2.0)
    assert bad == [] or stats["replays"] == 0, stats


_ARRS = [np.array([1.0, 2.0, 3.0, 4.0], np.float32) * (1 if i % 2 else -1) * (i + 1) for i in range(10)]


def branch_on_all(x, a):
    if (a > 0).all():
        return x * 2
    return x * 3


def branch_on_array_equal(x, a, b):
    if np.array_equal(a, b):
        return x * 2
    return x * 3


def scale_by_expression_sum(x, a):
    return x * float((a * 2).sum())


def scale_by_np_sum_axis(x, a):
    return x * float(np.sum(a, axis=0))


def _sum_of(x, a):
    return x * float(a.sum())


def passes_array_to_helper(x, a):
    return _sum_of(x, a)


# read() flags a NumPy argument's chain only when its path starts with a non-metadata attribute or an item
# (`a.sum()`, `a[0]`); a chain ending in _USED (the array as an operand, `a > 0`, `a * 2`, or one argument of several
# to a NumPy function: _reader needs PRECALL right after the array) is taken as harmless, so the Python value computed
# from the recording call's array is baked into every replay. README: such reads run eagerly.
# Was: read()/_reader: a NumPy argument used as an operand or as one of several arguments (chain ends in _USED) is not
# a values read (fixed)
@pytest.mark.parametrize("case", ["(a > 0).all()", "np.array_equal(a, b)", "(a * 2).sum()", "np.sum(a, axis=0)"])
def test_A_numpy_argument_values_read_through_an_expression(case):
    fn, args = {"(a > 0).all()": (branch_on_all, lambda i: (_ARRS[i],)),
                "np.array_equal(a, b)": (branch_on_array_equal, lambda i: (_ARRS[i % 2].copy(), _ARRS[1])),
                "(a * 2).sum()": (scale_by_expression_sum, lambda i: (_ARRS[i],)),
                "np.sum(a, axis=0)": (scale_by_np_sum_axis, lambda i: (_ARRS[i],))}[case]
    bad, stats = _mismatches(fn, args=args)
    assert bad == [], stats


# Was: read() checked NumPy arguments only at depth 0: the helper's parameter `a` is a local there, so `a.sum()` in a
# helper the array is passed to was baked (fixed: constants._Found.arrays_passed follows the array into the helper)
def test_A_numpy_argument_values_read_in_a_helper():
    bad, stats = _mismatches(passes_array_to_helper, args=lambda i: (_ARRS[i],))
    assert bad == [], stats


class _Group:
    def __init__(self, s):
        self.s = s


NESTED = [[_Group(2.0)]]  # groups of parameter groups


def reads_nested_objects(x):
    out = x
    for grp in NESTED:
        for g in grp:
            out = out * g.s
    return out


# keep_whole guards the settings (keep_all) only of objects directly in the container read whole; the nested list's
# Contents compares its items by identity, so g.s of an object one container down is baked (not a regression: the
# same at 94e2391; README promises "an object in a list or dict has its settings guarded").
# Was: keep_whole calls keep_all only for top-level items; objects inside nested containers are compared by identity
# only (fixed)
def test_A_object_in_a_nested_list_read_whole():
    try:
        bad, stats = _mismatches(reads_nested_objects, lambda: setattr(NESTED[0][0], "s", 3.0))
    finally:
        NESTED[0][0].s = 2.0
    assert bad == [], stats


# ===================== B: regressions vs 94e2391 =====================

@dataclasses.dataclass
class _Cfg:
    smooth: float = 0.5
    epoch: int = 0  # advanced by the training loop, never read by the step


DC = _Cfg()


def _smoothed(cfg, x):
    return x * cfg.smooth


def passes_dataclass(x):
    return _smoothed(DC, x)


# keep_read scans a passed-on object's protocol methods (_PROTOCOL has __eq__); a dataclass's generated __eq__ (file
# "<string>", so the user's) reads every field through `self`, so each field becomes a guard: a loop counter field makes
# every call re-record until max_variants, then eager. At 94e2391: 11 replays of 12.
# Was: keep_read scans _PROTOCOL methods the step never calls (a dataclass's generated __eq__), guarding every field
# (fixed)
def test_B_dataclass_config_with_a_loop_counter_field_keeps_replaying():
    f, x = tl.compile(passes_dataclass), _x()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", tl.CompileWarning)
            for i in range(12):
                DC.epoch = i
                assert np.array_equal(f(x).numpy(), passes_dataclass(x).numpy())
    finally:
        DC.epoch = 0
    assert f.stats["replays"] >= 10, f.stats


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.rng = np.random.default_rng(0)  # for sample(), which the step never calls

    def forward(self, x):
        return self.lin(x)

    def sample(self):
        return self.rng.normal()


_NET = _Net()


def _run_net(m, x):
    return m(x.reshape(1, 4)).reshape(4) * getattr(m, "temperature", 1.0)


def passes_module_with_getattr(x):
    return _run_net(_NET, x)


class _Trainer:
    def __init__(self):
        self.cfg = _Cfg()
        self.rng = np.random.default_rng(0)

    def batch(self):  # used by the loop, outside the step
        return int(self.rng.integers(3))


_TR = _Trainer()


def _loss(t, x):
    return x * getattr(t.cfg, "smooth", 0.0)


def passes_trainer_with_getattr(x):
    return _loss(_TR, x)


# With getattr anywhere in the scanned code (dynamic), keep_read takes every attribute name of a passed-on object:
# a Generator it merely holds counts as a draw, and every method of its class is scanned as if called (a Trainer's
# batch(), which draws outside the step). Holding a Generator draws nothing. At 94e2391 both replayed (9 of 10).
# Was: keep_read (dynamic) treats a held, unused Generator and every class method of a passed-on object as drawing in
# the step (fixed)
@pytest.mark.parametrize("fn", [passes_module_with_getattr, passes_trainer_with_getattr])
def test_B_passed_on_object_holding_an_unused_generator_keeps_replaying(fn):
    bad, stats = _mismatches(fn)
    assert bad == [] and stats["replays"] == 9, stats


class _Layer:
    def __init__(self, s):
        self.s = s

    def jitter(self):  # never called by the step
        return np.random.rand()

    def __call__(self, x):
        return x * self.s


class _Aug:
    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)  # makes a Generator; draws nothing

    def scale(self, x):
        return x * 2.0


def makes_layer(x):
    return _Layer(2.0)(x)


def makes_seeded_aug(x):
    return _Aug(0).scale(x)


# follow scans every method of a user class the step reaches (not only those an instance can run from the step), and
# _random_draw counts numpy.random.default_rng (a Generator's constructor) as a draw: the step runs eagerly. At
# 94e2391 both replayed (9 of 10) with eager's results.
# Was: a class the step instantiates: every method is scanned for draws, and default_rng(seed) counts as a draw
# (fixed)
@pytest.mark.parametrize("fn", [makes_layer, makes_seeded_aug])
def test_B_class_instantiated_in_the_step_without_a_draw_keeps_replaying(fn):
    bad, stats = _mismatches(fn)
    assert bad == [] and stats["replays"] == 9, stats


# ===================== verified right (compared with eager) =====================

_IDX = [np.array([i % 4, (i + 1) % 4, 0, 1]) for i in range(10)]
_EMB = nn.Embedding(5, 4)


def _as_tensor(a):
    return tl.tensor(a)


@pytest.mark.parametrize("fn,args", [
    (lambda x, a: x[a], lambda i: (_IDX[i],)),
    (lambda x, a: x * tl.tensor(a)[0], lambda i: (_ARRS[i],)),
    (lambda x, a: _EMB(tl.tensor(a)).sum(0) * x, lambda i: (_IDX[i],)),
    (lambda x, a: x * a.shape[0] * len(a), lambda i: (_ARRS[i],)),
    (lambda x, a: x * tl.tensor(np.asarray(a)), lambda i: (_ARRS[i],)),
    (lambda x, a: x * tl.as_tensor(a, dtype=tl.float32), lambda i: (_ARRS[i],)),
    (lambda x, a: x * _as_tensor(a), lambda i: (_ARRS[i],)),
], ids=["x[a]", "tensor(a)[0]", "emb(tensor(a))", "shape-len", "asarray", "as_tensor-dtype", "helper-tensor"])
def test_numpy_argument_used_as_data_replays(fn, args):
    bad, stats = _mismatches(fn, args=args)
    assert bad == [] and stats["replays"] == 9, stats


def reads_tolist(x, a):
    return x * a.tolist()[0]


def test_numpy_argument_tolist_runs_eagerly():
    bad, stats = _mismatches(reads_tolist, args=lambda i: (_ARRS[i],))
    assert bad == [] and stats["replays"] == 0 and "a.tolist" in stats["last_reason"], stats


def test_same_object_gaining_a_shadowing_method_is_seen():
    global POLICY
    try:
        bad, stats = _mismatches(passes_policy, lambda: setattr(POLICY, "factor", lambda: 4.0))
    finally:
        POLICY = _Policy()
    assert bad == [], stats


class _Val:
    def __init__(self, v):
        self.v = v

    def __float__(self):
        return self.v


VAL = _Val(2.0)


def _times_float(v, x):
    return x * float(v)


def passes_val(x):
    return _times_float(VAL, x)


def _rebind_val():
    global VAL
    VAL = _Val(5.0)


@pytest.mark.parametrize("case", ["attribute", "rebound"])
def test_protocol_method_of_passed_on_object_is_guarded(case):
    global VAL
    try:
        bad, stats = _mismatches(passes_val, (lambda: setattr(VAL, "v", 7.0)) if case == "attribute" else _rebind_val)
    finally:
        VAL = _Val(2.0)
    assert bad == [], stats


TUPLE_OF_LIST = ([1.0, 2.0],)


def reads_tuple_of_list(x):
    out = x
    for grp in TUPLE_OF_LIST:
        for g in grp:
            out = out * g
    return out


def test_frozen_fast_path_sees_a_list_in_a_tuple_mutated():
    try:
        bad, stats = _mismatches(reads_tuple_of_list, lambda: TUPLE_OF_LIST[0].append(3.0))
    finally:
        del TUPLE_OF_LIST[0][2:]
    assert bad == [], stats
