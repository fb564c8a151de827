"""tl.compile and settings read through a name other than their own (compile/constants.py `_chains`, `_unalias`,
`keep_all`, `bound`): a local assigned from a global or `self` chain (`c = cfg; c.scale`), an object passed to a
helper, returned by one, held by a partial or a parameter's default, read through `vars()` or `__dict__`. Each was
replayed stale before (the first call's value baked in). Each test compares the compiled call with the eager call bit
for bit over 12 calls, the setting changed before the 6th, and checks that the step replays when nothing changes."""
import argparse
import functools
import types

import numpy as np
import pytest

import tinygrad_lite as tl

from test_compile_constants_adversarial import _mismatches, _x

nn = tl.nn


class Cfg:
    def __init__(self):
        self.scale, self.sub, self.counter = 2.0, types.SimpleNamespace(scale=3.0), 0


CFG = Cfg()
ARGS = argparse.Namespace(lr=0.5)


@pytest.fixture(autouse=True)
def _reset():
    CFG.scale, CFG.sub.scale, CFG.counter, ARGS.lr = 2.0, 3.0, 0, 0.5


def get_cfg():
    return CFG


def times_scale(x, c):
    return x * c.scale


def times_sub_scale(x, c):
    return x * c.sub.scale


def alias(x):
    c = CFG
    return x * c.scale


def alias_of_alias(x):
    c = CFG
    s = c.sub
    return x * s.scale


def alias_copied(x):  # `d = e = CFG` (COPY, two stores)
    d = e = CFG
    return x * d.scale + e.scale


def alias_in_comprehension(x):  # a cell, read by the comprehension's own code
    c = CFG
    return sum([x * c.scale for _ in range(2)])


def passed(x):
    return times_scale(x, CFG)


def passed_nested(x):
    return times_sub_scale(x, CFG)


def returned(x):
    return x * get_cfg().scale


def in_list_literal(x):
    for c in [CFG]:
        x = x * c.sub.scale
    return x


def through_vars(x):
    return x * vars(CFG)["scale"]


def through_dict(x):
    return x * CFG.__dict__["scale"]


def namespace_passed(x):
    return times_lr(x, ARGS)


def times_lr(x, a):
    return x * a.lr


def with_default(x, c=CFG):
    return x * c.sub.scale


def _scale_global(x):
    return x * CFG.scale


def with_callable_default(x, act=_scale_global):
    return act(x)


_SCALE_SUB = lambda: setattr(CFG.sub, "scale", 7.0)  # noqa: E731
_SCALE = lambda: setattr(CFG, "scale", 5.0)  # noqa: E731

CASES = [
    (alias, _SCALE), (alias_of_alias, _SCALE_SUB), (alias_copied, _SCALE), (alias_in_comprehension, _SCALE),
    (passed, _SCALE), (passed_nested, _SCALE_SUB), (returned, _SCALE), (in_list_literal, _SCALE_SUB),
    (through_vars, _SCALE), (through_dict, _SCALE), (namespace_passed, lambda: setattr(ARGS, "lr", 0.25)),
    (with_default, _SCALE_SUB), (with_callable_default, _SCALE),
    (functools.partial(times_sub_scale, c=CFG), _SCALE_SUB), (functools.partial(times_scale, c=CFG), _SCALE),
]


@pytest.mark.parametrize("fn, change", CASES, ids=lambda v: getattr(v, "__name__", "partial") if callable(v) else "")
def test_a_setting_read_through_another_name_is_a_guard(fn, change):
    bad, stats = _mismatches(fn, change)
    assert bad == [] and stats["traces"] == 2 and stats["replays"] == 10, stats


@pytest.mark.parametrize("fn, change", CASES[:3], ids=lambda v: getattr(v, "__name__", "") if callable(v) else "")
def test_an_unrelated_change_keeps_replaying(fn, change):
    """A setting the step does not read through the alias (CFG.counter) is not a guard: the step keeps replaying."""
    bad, stats = _mismatches(fn, lambda: setattr(CFG, "counter", 1) if fn is not alias_copied else None)
    assert bad == [] and stats["traces"] == 1 and stats["replays"] == 11, stats


class _Scaled(nn.Module):
    def __init__(self):
        super().__init__()
        self.cfg = CFG
        self.lin = nn.Linear(4, 2)

    def forward(self, x):
        c = self.cfg
        return self.lin(x.reshape(1, 4)) * c.sub.scale


def test_a_module_reading_its_config_through_a_local():
    m = _Scaled()
    bad, stats = _mismatches(m, _SCALE_SUB)
    assert bad == [] and stats["traces"] == 2, stats


class _Counting:
    """A step object that counts its own calls: `self.calls += 1` stores, so it is not a guard (it would fail on
    every call and the step would never replay) but a counter each replay moves, and passing `self.opt` (the
    library's object) guards nothing of it (the optimizer reads its settings live)."""

    def __init__(self):
        self.calls = 0
        self.w = tl.tensor(np.ones(4, np.float32), requires_grad=True)
        self.opt = tl.optim.SGD([self.w], lr=0.1)

    def step(self, x):
        self.calls += 1
        loss = (self.w * x).sum()
        loss.backward()
        _apply(self.opt)
        return loss.item()


def _apply(opt):
    opt.step()
    opt.zero_grad()


def test_counters_and_library_objects_do_not_stop_replays():
    ref, obj = _Counting(), _Counting()
    f, x = tl.compile(obj.step), _x()
    for i in range(10):
        if i == 6:  # a hand-edited learning rate is read live by the optimizer's step
            for o in (ref, obj):
                o.opt.param_groups[0]["lr"] = 0.05
        assert f(x) == ref.step(x)
        np.testing.assert_array_equal(obj.w.numpy(), ref.w.numpy())
    # (the counter moves at every replay as eagerly: constants._Counters; it stayed at 1 before session 22)
    assert f.stats["traces"] == 1 and f.stats["replays"] == 9 and obj.calls == ref.calls == 10, f.stats


class _Node:
    def __init__(self, nxt=None):
        self.next, self.scale = nxt, 2.0


_CHAIN = _Node(_Node(_Node()))


def walk(x):
    a = _CHAIN
    while a.next is not None:  # `a = a.next`: an alias of itself, expanded a bounded number of times
        a = a.next
        x = x * a.scale
    return x


def test_a_self_referencing_alias_ends():
    bad, stats = _mismatches(walk, lambda: setattr(_CHAIN.next, "scale", 4.0))
    assert bad == [] and stats["traces"] == 2, stats


# ============ code the step reaches by a class: a method replaced on it, a class the step calls ============
class _Stepper:
    def helper(self, x):
        return x * 2.0

    def step(self, x):
        return self.helper(x)


def _triple(self, x):
    return x * 3.0


class _Doubling(nn.Module):
    def forward(self, x):
        return x * 2.0


def test_a_method_replaced_on_its_class_is_a_guard(monkeypatch):
    obj = _Stepper()
    bad, stats = _mismatches(obj.step, lambda: monkeypatch.setattr(_Stepper, "helper", _triple))
    assert bad == [] and stats["traces"] == 2, stats


def test_a_module_forward_replaced_on_its_class_is_a_guard(monkeypatch):
    m = _Doubling()
    bad, stats = _mismatches(m, lambda: monkeypatch.setattr(_Doubling, "forward", _triple))
    assert bad == [] and stats["traces"] == 2, stats
    f, x = tl.compile(m), _x()
    f(x)
    monkeypatch.setattr(_Doubling, "forward", lambda self, x: x * 4.0)
    np.testing.assert_array_equal(f(x).numpy(), x.numpy() * 4.0)
    assert f.stats["traces"] == 2


class _Scaler:
    def __init__(self):
        self.s = CFG.scale  # read when the step makes one

    def __call__(self, x):
        return x * self.s * CFG.sub.scale


def makes_a_scaler(x):
    return _Scaler()(x)


def test_a_class_the_step_calls_has_its_code_scanned():
    bad, stats = _mismatches(makes_a_scaler, _SCALE)
    assert bad == [] and stats["traces"] == 2, stats
    bad, stats = _mismatches(makes_a_scaler, _SCALE_SUB)
    assert bad == [] and stats["traces"] == 2, stats


# ============ the compiled function's own arguments: objects a signature keys by identity ============
def scaled_by_argument(x, c):
    return x * c.sub.scale


def scaled_by_items(x, cs):
    return x * cs[0].scale


def applies(x, fn):
    return fn(x)


class _GlobalScaled(nn.Module):
    def forward(self, x):
        return x * CFG.scale


def runs_module(x, m):
    return m(x)


class _State:
    def __init__(self):
        self.steps, self.scale = 0, 2.0


def counts(x, state):
    state.steps += 1  # stored, not read for a value: not a guard
    return x * state.scale


@pytest.mark.parametrize("fn, arg, change", [
    (scaled_by_argument, CFG, _SCALE_SUB),
    (scaled_by_items, [CFG], _SCALE),
    (applies, _scale_global, _SCALE),
    (runs_module, _GlobalScaled(), _SCALE),
], ids=["attribute", "in-a-list", "function", "module"])
def test_a_setting_read_from_an_argument_is_a_guard(fn, arg, change):
    f, x = tl.compile(fn), _x()
    for i in range(8):
        if i == 4:
            change()
        np.testing.assert_array_equal(f(x, arg).numpy(), fn(x, arg).numpy())
    assert f.stats["traces"] == 2 and f.stats["replays"] == 6, f.stats


def test_an_argument_the_step_counts_in_keeps_replaying():
    state, f, x = _State(), tl.compile(counts), _x()
    for _ in range(6):
        np.testing.assert_array_equal(f(x, state).numpy(), x.numpy() * 2.0)
    # (the counter moves at every replay, as eagerly: constants._Counters; it stayed at 1 before session 22)
    assert f.stats["traces"] == 1 and f.stats["replays"] == 5 and state.steps == 6, f.stats
    state.scale = 3.0
    np.testing.assert_array_equal(f(x, state).numpy(), x.numpy() * 3.0)
    assert f.stats["traces"] == 2


# ============ random numbers drawn in Python: a replay would repeat the recording call's ============
import random  # noqa: E402

_GEN = np.random.default_rng(0)


def _jitter(x, rng):
    return x * rng.uniform(0.5, 1.5)


def _python_draw(x):
    return x * random.uniform(0.5, 1.5)


DRAWS = {
    "random.uniform": _python_draw,
    "numpy.random.rand": lambda x: x * np.random.rand(),
    "Generator.normal": lambda x: x * _GEN.normal(),
    "a helper's draw": lambda x: _python_draw(x) + 1.0,
    "a Generator passed on": lambda x: _jitter(x, _GEN),
    "stochastic depth": lambda x: x * 2.0 if random.random() < 0.5 else x,
}


@pytest.mark.parametrize("name", list(DRAWS))
def test_random_numbers_drawn_in_python_run_eagerly_with_the_reason(name):
    fn, x = DRAWS[name], _x()
    f = tl.compile(fn)
    for i in range(4):
        random.seed(i), np.random.seed(i)
        state = _GEN.bit_generator.state
        got = f(x).numpy()
        random.seed(i), np.random.seed(i)
        _GEN.bit_generator.state = state
        np.testing.assert_array_equal(got, fn(x).numpy())
    assert f.stats["replays"] == 0 and f.stats["eager_calls"] == 4, f.stats
    assert "draws random numbers in Python" in f.stats["last_reason"] and "tl.rand" in f.stats["last_reason"]
    with pytest.raises(tl.CompileError, match="random numbers"):
        tl.compile(fn, fullgraph=True)(x)


# ============ iterators advanced in Python: a replay would not advance them ============
import itertools  # noqa: E402


class _Holder:
    def __init__(self):
        self.items = iter(range(1, 100))


def _next_held(x, h):
    return x * next(h.items)


def _counting():
    k = 0
    while True:
        k += 1
        yield k


def _first_of(it):
    for v in it:
        return v


ITERATORS = {  # name -> a maker of (fn, its argument or None): each call of a maker gives a fresh iterator
    "next(itertools.count)": lambda: (lambda c: (lambda x: x * (next(c) % 3 + 1.0)))(itertools.count()),
    "a generator": lambda: (lambda g: (lambda x: x * next(g)))(_counting()),
    "an index from next()": lambda: (lambda c: (lambda x: x[[next(c) % 2]]))(itertools.count()),
    "a for loop over it": lambda: (lambda it: (lambda x: x * _first_of(it)))(iter(range(1, 100))),
    "it.__next__()": lambda: (lambda it: (lambda x: x * it.__next__()))(iter(range(1, 100))),
    "zip(it, ...)": lambda: (lambda c: (lambda x: x * list(zip(c, "a"))[0][0]))(itertools.count(1)),
    "held by an object passed on": lambda: (lambda h: (lambda x: _next_held(x, h)))(_Holder()),
    "a default argument": lambda: (lambda it: (lambda x, it=it: x * next(it)))(iter(range(1, 100))),
}


@pytest.mark.parametrize("name", list(ITERATORS))
def test_an_iterator_advanced_in_python_runs_eagerly_with_the_reason(name):
    """Was: each replay returned the recording call's item (a step scaled by next(counter) kept the first scale)."""
    f, g, x = tl.compile(ITERATORS[name]()), ITERATORS[name](), _x()
    for _ in range(5):
        np.testing.assert_array_equal(f(x).numpy(), g(x).numpy())
    assert f.stats["replays"] == 0 and f.stats["eager_calls"] == 5, f.stats
    assert "advances an iterator in Python" in f.stats["last_reason"], f.stats
    with pytest.raises(tl.CompileError, match="advances an iterator"):
        tl.compile(ITERATORS[name](), fullgraph=True)(x)


class _OwnIterator:
    """A user's iterator: its position is an attribute, read (and guarded) like any setting."""

    def __init__(self):
        self.k = 0

    def __iter__(self):
        return self

    def __next__(self):
        self.k += 1
        return self.k


def test_iterables_and_a_users_iterator_are_not_refused():
    scales, own = [2.0, 3.0], _OwnIterator()
    cases = [lambda x: x * sum(scales), lambda x: x * next(iter([2.0])), lambda x: x * next(own)]
    for fn in cases[:2]:
        f, x = tl.compile(fn), _x()
        for _ in range(4):
            np.testing.assert_array_equal(f(x).numpy(), fn(x).numpy())
        assert f.stats["replays"] == 3, f.stats
    f, x = tl.compile(cases[2]), _x()
    got = [f(x).numpy() for _ in range(4)]
    for k, y in enumerate(got, 1):
        np.testing.assert_array_equal(y, x.numpy() * k)


# ============ the clock, the environment, printing and logging: a replay runs no Python ============
import datetime  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402
from time import perf_counter  # noqa: E402

_LOG = logging.getLogger("tl-test-compile")


def _stamp(x):
    return x * 0.0 + time.time() % 100.0


CLOCKS = {  # step, what the reason names: each call's value differs (the recording call's, replayed, would repeat)
    "time.perf_counter": (lambda x: x * 0.0 + time.perf_counter() % 100.0, "time.perf_counter in <lambda>"),
    "perf_counter by name": (lambda x: x * 0.0 + perf_counter() % 100.0, "time.perf_counter in <lambda>"),
    "a helper's time.time": (lambda x: _stamp(x) + 1.0, "time.time in _stamp"),
    "datetime.datetime.now": (lambda x: x * 0.0 + datetime.datetime.now().timestamp() % 100.0,
                              "datetime.datetime.now"),
    "a held clock": ((lambda clock: (lambda x: x * 0.0 + clock() % 10 ** 8 / 1e6))(time.monotonic_ns),
                     "time.monotonic_ns"),
}


@pytest.mark.parametrize("name", list(CLOCKS))
def test_a_clock_read_in_python_runs_eagerly_with_the_reason(name):
    """Was: every replay returned the recording call's time (a step scaled by a clock kept the first scale)."""
    (fn, named), x = CLOCKS[name], _x()
    f = tl.compile(fn)
    got = []
    for _ in range(4):
        got.append(float(f(x).numpy().flat[0]))
        time.sleep(0.002)
    assert len(set(got)) == 4, got
    assert f.stats["replays"] == 0 and f.stats["eager_calls"] == 4, f.stats
    assert "changes between calls" in f.stats["last_reason"] and named in f.stats["last_reason"], f.stats
    with pytest.raises(tl.CompileError, match="changes between calls"):
        tl.compile(fn, fullgraph=True)(x)


ENVIRON = {
    "os.environ.get": lambda x: x * float(os.environ.get("TL_TEST_SCALE", "1")),
    "os.environ[...]": lambda x: x * float(os.environ["TL_TEST_SCALE"]),
    "os.getenv": lambda x: x * float(os.getenv("TL_TEST_SCALE", "1")),
}


@pytest.mark.parametrize("name", list(ENVIRON))
def test_the_environment_read_in_python_follows_it(name, monkeypatch):
    f, x = tl.compile(ENVIRON[name]), _x()
    for k in range(4):
        monkeypatch.setenv("TL_TEST_SCALE", str(k + 2))
        np.testing.assert_array_equal(f(x).numpy(), x.numpy() * (k + 2))
    assert f.stats["replays"] == 0 and "os." in f.stats["last_reason"], f.stats


OUTPUT = {
    "print": lambda x: (print("loss", float(x.sum().item())), x * 2.0)[1],
    "partial(print)": (lambda say: (lambda x: (say(x.shape), x * 2.0)[1]))(functools.partial(print, "shape")),
    "logging.warning": lambda x: (logging.warning("step"), x * 2.0)[1],
    "a Logger's info": lambda x: (_LOG.info("step"), x * 2.0)[1],
}


@pytest.mark.parametrize("name", list(OUTPUT))
def test_printing_or_logging_runs_eagerly_so_every_call_prints(name, capsys, caplog):
    """Was: only the recording call printed (or logged); the replays ran no Python."""
    f, x = tl.compile(OUTPUT[name]), _x()
    with caplog.at_level(logging.INFO):
        for _ in range(3):
            np.testing.assert_array_equal(f(x).numpy(), x.numpy() * 2.0)
    assert len(capsys.readouterr().out.splitlines()) + len(caplog.records) == 3
    assert f.stats["eager_calls"] == 3 and "writes output" in f.stats["last_reason"], f.stats


def test_pure_library_functions_keep_replaying():
    fn = lambda x: x * math.sqrt(4.0) + len(os.path.join("a", "b")) + time.timezone * 0  # noqa: E731
    f, x = tl.compile(fn), _x()
    for _ in range(4):
        np.testing.assert_array_equal(f(x).numpy(), fn(x).numpy())
    assert f.stats["replays"] == 3, f.stats


def test_a_generator_argument_runs_eagerly():
    f = tl.compile(_jitter)
    f(_x(), _GEN)
    assert f.stats["eager_calls"] == 1 and "Generator" in f.stats["last_reason"], f.stats


def test_tl_random_numbers_replay_with_fresh_draws():
    f, x = tl.compile(lambda x: x * tl.rand(4)), _x()
    outs = [f(x).numpy() for _ in range(4)]
    assert f.stats["replays"] == 3 and len({o.tobytes() for o in outs}) == 4, f.stats


# ============ a NumPy argument's values read in Python (the capture sees only tensor operations on it) ============
ARRAY_READS = {
    "a[0, 0]": lambda a, x: x * float(a[0, 0]),
    "a[i]": lambda a, x, i=1: x * a[i],
    "a[:, 0] in a list": lambda a, x: tl.tensor([a[0, 0], 1.0]) * x,
    "a.sum()": lambda a, x: x * a.sum(),
    "a.max().item()": lambda a, x: x * a.max().item(),
}


@pytest.mark.parametrize("name", list(ARRAY_READS))
def test_a_numpy_argument_read_in_python_runs_eagerly(name):
    fn, rng, x = ARRAY_READS[name], np.random.default_rng(0), tl.tensor(np.ones((2,), np.float32))
    f = tl.compile(fn)
    for _ in range(4):
        a = rng.standard_normal((2, 2)).astype(np.float32)
        np.testing.assert_array_equal(f(a, x).numpy(), fn(a, x).numpy())
    assert f.stats["replays"] == 0 and "NumPy argument" in f.stats["last_reason"], f.stats


def test_a_numpy_argument_in_tensor_operations_keeps_replaying():
    """Tensor operations on the array, and its shape (a signature guard), are no reads in Python."""
    fn = lambda a, x: x + tl.tensor(np.asarray(a)) * a.shape[0] + tl.as_tensor(a).sum() * len(a)  # noqa: E731
    f, rng, x = tl.compile(fn), np.random.default_rng(0), tl.tensor(np.ones((2,), np.float32))
    for _ in range(4):
        a = rng.standard_normal(2).astype(np.float32)
        np.testing.assert_array_equal(f(a, x).numpy(), fn(a, x).numpy())
    assert f.stats["replays"] == 3, f.stats


def test_a_numpy_argument_iterated_or_passed_to_a_reader_runs_eagerly():
    fns = [lambda a, x: x * sum([float(v) for v in a]), lambda a, x: x * next(iter(a)),
           lambda a, x: x * list(a)[1], lambda a, x: x * np.sum(a), lambda a, x: x * float(a[:1].sum())]
    for fn in fns:
        f, rng, x = tl.compile(fn), np.random.default_rng(0), tl.tensor(np.ones((2,), np.float32))
        for _ in range(3):
            a = rng.standard_normal(2).astype(np.float32)
            np.testing.assert_array_equal(f(a, x).numpy(), fn(a, x).numpy())
        assert f.stats["replays"] == 0 and "NumPy argument" in f.stats["last_reason"], f.stats


def test_a_numpy_argument_as_an_index_keeps_replaying():
    """`x[a]`, `x[a, 0]`: the array indexes a tensor (a recorded operation), its values are not read in Python."""
    fns = [lambda a, x: x[a] * 2.0, lambda a, x: x.reshape(2, 2)[a, 0] + 1.0]
    for fn in fns:
        f, x = tl.compile(fn), tl.tensor(np.arange(4, dtype=np.float32))
        for k in range(4):
            a = np.array([k % 2, 1 - k % 2])
            np.testing.assert_array_equal(f(a, x).numpy(), fn(a, x).numpy())
        assert f.stats["replays"] == 3, f.stats


def test_a_generator_made_without_a_seed_in_the_step_runs_eagerly():
    """`np.random.default_rng().normal()` draws from the operating system's entropy on every eager call: a replay
    would repeat the recording call's draw. One made with a seed draws the same numbers on every call: it replays."""
    def unseeded(x):
        return x * np.random.default_rng().normal()

    def unseeded_local(x):
        r = random.Random()
        return x * r.random()

    def seeded(x):
        return x * np.random.default_rng(7).normal()

    x = _x()
    for fn in (unseeded, unseeded_local):
        f = tl.compile(fn)
        outs = [f(x).numpy() for _ in range(4)]
        assert len({o.tobytes() for o in outs}) == 4 and f.stats["replays"] == 0, f.stats
        assert "without a seed" in f.stats["last_reason"], f.stats
    f = tl.compile(seeded)
    for _ in range(4):
        np.testing.assert_array_equal(f(x).numpy(), seeded(x).numpy())
    assert f.stats["replays"] == 3, f.stats


def test_the_reason_names_the_function_and_its_file():
    """As API.md asks of what cannot be captured: the reason names what and where (the function's definition)."""
    f = tl.compile(DRAWS["a helper's draw"])
    f(_x())
    assert "random.uniform in _python_draw (test_compile_aliases.py:" in f.stats["last_reason"], f.stats
    g = tl.compile(ARRAY_READS["a[0, 0]"])
    g(np.ones((2, 2), np.float32), _x())
    assert "a[0, 0] in <lambda> (test_compile_aliases.py:" in g.stats["last_reason"], g.stats
