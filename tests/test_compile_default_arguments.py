"""tl.compile and a parameter's default that is a container or a NumPy array (`def f(x, _seen=[])`): one object, made
with the function, that every call leaving the parameter out shares and may change. Its contents (an array's values)
are read like a global's: each test runs a compiled function beside its eager twin over several calls with changing
inputs and compares what they return, and how often the compiled one replayed where nothing it reads changed."""

import numpy as np
import pytest

import tinygrad_lite as tl
from _compile_common import CALLS, seeded_vector as _x, twins as _twins


def test_a_default_list_the_call_appends_to():
    def make():
        def step(x, _c=[]):
            _c.append(1)
            return (x * 2).sum().item(), len(_c)
        return step
    want, got, f = _twins(make)
    assert got == want
    assert [n for _, n in got] == list(range(1, CALLS + 1))
    assert "_c" in f.stats["last_reason"], f.stats


def test_a_default_dict_used_as_a_cache_replays_once_filled():
    """`cache.setdefault(...)` on the first call, read after: the contents change once, then every call replays."""
    def make():
        def step(x, cache={}):
            scale = cache.setdefault("scale", 3.0)
            return (x * scale).sum().item(), len(cache)
        return step
    want, got, f = _twins(make)
    assert got == want
    assert f.stats["replays"] >= CALLS - 3, f.stats


def test_a_keyword_only_default_list():
    def make():
        def step(x, *, log=[]):
            log.append(float(len(log)))
            return (x * len(log)).sum().item()
        return step
    want, got, _ = _twins(make)
    assert got == want


def test_a_default_array_whose_values_the_step_reads_and_writes():
    """`w[0] += 1` in Python on a default array, its value read into the arithmetic."""
    def make():
        def step(x, w=np.ones(2, np.float32)):
            w[0] += 1
            return (x * float(w[0])).sum().item()
        return step
    want, got, _ = _twins(make)
    assert got == want


def test_a_default_list_changed_between_calls_by_the_caller():
    """The step only reads the default; the caller reaches it through __defaults__ and appends."""
    def make():
        def step(x, scales=[1.0]):
            return (x * sum(scales)).sum().item()
        return step
    eager, plain = make(), make()
    compiled = tl.compile(plain)
    for i in range(CALLS):
        assert compiled(_x(i)) == eager(_x(i)), i
        if i % 3 == 2:
            eager.__defaults__[0].append(0.5)
            plain.__defaults__[0].append(0.5)
    assert compiled.stats["replays"] >= CALLS // 2, compiled.stats
    assert compiled.stats["traces"] == 1 + (CALLS - 1) // 3, compiled.stats


def test_a_default_list_in_a_helper_the_step_calls():
    """Below the compiled function nothing says whether a call gives the parameter: its default is read all the same."""
    def make():
        def helper(v, _seen=[]):
            _seen.append(v)
            return len(_seen)

        def step(x):
            n = helper(1)
            return (x * n).sum().item()
        return step
    want, got, _ = _twins(make)
    assert got == want


def test_a_default_list_of_a_method():
    def make():
        class Counter:
            def __init__(self):
                self.w = tl.tensor(np.ones(4, np.float32))

            def step(self, x, _hits=[]):
                _hits.append(0)
                return (x * self.w * len(_hits)).sum().item()
        return Counter().step
    want, got, _ = _twins(make)
    assert got == want


def test_a_default_given_by_the_call_is_the_argument_not_the_default():
    """A call passing the parameter does not read the default: with it always passed, the step replays."""
    def make():
        def step(x, scales=[2.0]):
            return (x * scales[0]).sum().item()
        return step
    want, got, f = _twins(make, kwargs=lambda i: {"scales": [float(i % 2) + 1.0]})
    assert got == want
    assert f.stats["replays"] >= CALLS - 3, f.stats


@pytest.mark.parametrize("default", [None, 0.5, (1, 2), "mean"])
def test_immutable_defaults_do_not_stop_replay(default):
    def make():
        def step(x, d=default):
            return (x * 2).sum().item(), d
        return step
    want, got, f = _twins(make)
    assert got == want
    assert f.stats["replays"] == CALLS - 1, f.stats
