"""Review s26c of tl.compile's new returned values: int() at its place, float()/int() through helpers, containers
from outside the call returned as themselves. Each test runs a compiled function beside its eager twin over several
calls with changing inputs and compares what they return (values, and identity where eager's says something)."""
import functools

import numpy as np

import tinygrad_lite as tl
from _compile_common import seeded_vector as _x

CALLS = 8


# ---------------- containers from outside the call, returned ----------------

def test_a_returned_argument_container_is_this_calls_argument():
    """`return loss, cfg` with `cfg` an argument: a replay returned the recording call's argument dict (with what the
    caller wrote into it since) instead of the dict passed to this call."""
    def step(x, cfg):
        return (x * 2).sum().item(), cfg

    f = tl.compile(step)
    for i in range(CALLS):
        want, got = {"lr": 1}, {"lr": 1}
        e, c = step(_x(i), want), f(_x(i), got)
        assert c[1] is got and c[1] == e[1] == {"lr": 1}, (i, c[1])
        e[1]["seen"] = c[1]["seen"] = i  # the caller writes into the dict it passed
    assert f.stats["replays"] == CALLS - 1, f.stats


def test_a_nested_returned_argument_container_is_this_calls():
    def step(x, batch):
        return (x * 2).sum().item(), batch["meta"]

    f = tl.compile(step)
    for i in range(CALLS):
        batch = {"meta": {"id": 0}}
        _, m = f(_x(i), batch)
        assert m is batch["meta"] and m == {"id": 0}, (i, m)
        m["id"] = 5
    assert f.stats["replays"] == CALLS - 1, f.stats


class _State:
    pass


def test_a_returned_attribute_container_rebound_between_calls_is_the_new_one():
    """`return loss, st.metrics` where the caller rebinds `st.metrics` to a fresh (equal) dict after each call and
    writes into the one it got: the guard on st.metrics compares contents, so the replay returned the recorded dict,
    with the caller's writes in it (eager: the fresh dict)."""
    results = []
    for compiled in (False, True):
        st = _State()
        st.metrics = {"a": 1}

        def step(x):
            return (x * 2).sum().item(), st.metrics

        f = tl.compile(step) if compiled else step
        seen = []
        for i in range(CALLS):
            _, m = f(_x(i))
            seen.append((m is st.metrics, dict(m)))
            m["count"] = i
            st.metrics = {"a": 1}
        results.append(seen)
    assert results[0] == results[1]


def test_a_list_the_call_builds_held_by_a_garbage_cycle_is_a_new_list_each_call():
    """A list the call builds, also held by a recursive closure (a reference cycle not collected yet when the call
    returns), was taken for a container from outside the call: each replay returned the recorded list itself, with
    what the caller appended to it."""
    def step(x):
        out = []

        def walk(n):
            if n:
                out.append(n)
                walk(n - 1)
        walk(3)
        return (x * 2).sum().item(), out

    f = tl.compile(step)
    for i in range(CALLS):
        want, got = step(_x(i)), f(_x(i))
        assert got == want, (i, got, want)
        got[1].append(99)
    assert f.stats["replays"] == CALLS - 1, f.stats


def test_a_returned_default_argument_list_is_not_stale():
    """`def f(x, _c=[]): _c.clear(); _c.append(1); return loss, _c`: eager returns _c refilled; the replay, which
    runs no Python, returned _c as the caller left it."""
    def make():
        def step(x, _c=[]):
            _c.clear()
            _c.append(1)
            return (x * 2).sum().item(), _c
        return step
    e, c = make(), tl.compile(make())
    for i in range(CALLS):
        want, got = e(_x(i)), c(_x(i))
        assert got == want, (i, got, want)
        want[1].append(99)
        got[1].append(99)


# ---------------- helpers through C callables ----------------

class _Counter:
    def __init__(self):
        self.w = tl.tensor(np.zeros(4, np.float32))

    @functools.lru_cache(maxsize=None)
    def count(self, k):
        return int((self.w > k).sum())

    @functools.lru_cache(maxsize=None)
    def total(self, k):
        return float((self.w + k).sum())


def test_a_method_cached_by_lru_cache_is_not_replayed_past_its_cache():
    """`return o.count(0)` with count an lru_cache'd method: the value went through the cache (C code) between the
    method's frame and the caller, taken for a direct call by its name; replays computed each call's count where
    eager returns the cached one."""
    def counted(o):
        return lambda k: o.count(k)

    def totalled(o):
        return lambda k: o.total(k)

    for make in (counted, totalled):
        results = []
        for compiled in (False, True):
            o = _Counter()
            step = make(o)
            f = tl.compile(step) if compiled else step
            seen = []
            for i in range(CALLS):
                o.w._data[...] = i  # the state the method reads changes between calls
                seen.append(f(0))
            results.append(seen)
        assert results[0] == results[1], (make.__name__, results)


def test_a_returned_argument_passed_twice_when_recorded_is_the_one_returned():
    """`f(d, d)` recorded, `f(d1, d2)` called: the argument the function returns is the second one."""
    def step(x, a, b):
        return (x * 2).sum().item(), b

    f = tl.compile(step)
    d = {"k": 1}
    f(_x(0), d, d)
    for i in range(1, CALLS):
        d1, d2 = {"k": 1}, {"k": 1}
        assert f(_x(i), d1, d2)[1] is d2, i


def test_a_global_also_passed_as_an_argument_is_the_one_the_function_returns():
    """The function returns the global; when recorded the caller passed that same dict as an argument; later it
    passes another: the replay must still return the global."""
    results = []
    for compiled in (False, True):
        box = _State()
        box.g = {"k": 1}

        def step(x, other):
            return (x * 2).sum().item(), box.g

        f = tl.compile(step) if compiled else step
        seen = []
        for i in range(CALLS):
            _, m = f(_x(i), box.g if i == 0 else {"k": 1})
            seen.append(m is box.g)
        results.append(seen)
    assert results[0] == results[1]


def test_a_default_argument_list_the_call_appends_to_is_appended_to_by_each_call():
    """Was a strict xfail (the constants scan did not read default arguments); fixed in session 27: a container or
    array default the call leaves out is read like a global (tests/test_compile_default_arguments.py)."""
    def make():
        def step(x, _c=[]):
            _c.append(1)
            return (x * 2).sum().item(), len(_c)
        return step
    e, c = make(), tl.compile(make())
    for i in range(CALLS):
        assert c(_x(i)) == e(_x(i)), i


_LOOKUPS = []


class _Lazy:
    """A holder whose `trainer` property logs each look-up (user code with an effect, run by Python's own lookup)."""

    def __init__(self, trainer):
        self._trainer = trainer

    @property
    def trainer(self):
        _LOOKUPS.append(1)
        return self._trainer


class _Trainer:
    def __init__(self, model, opt):
        self.model, self.opt = model, opt

    def step(self, x):
        self.opt.zero_grad()
        loss = (self.model(x) ** 2).mean()
        loss.backward()
        self.opt.step()
        return float(loss)


_HOLDER = None


def _via_property(x):
    return _HOLDER.trainer.step(x)


def test_following_a_helper_reached_through_a_property_runs_no_user_code_again():
    """`return holder.trainer.step(x)` with trainer a property: the recording call is the eager call, so finding which
    function the frame below runs must not run the property's code a second time (it logged two look-ups a call)."""
    global _HOLDER
    counts = []
    for compiled in (True, False):  # (compiled first: before eager calls specialise the function's bytecode)
        _LOOKUPS.clear()
        tl.manual_seed(0)
        model = tl.nn.Linear(4, 2)
        _HOLDER = _Lazy(_Trainer(model, tl.optim.SGD(model.parameters(), lr=0.1)))
        f = tl.compile(_via_property) if compiled else _via_property
        outs = [f(_x(i)) for i in range(CALLS)]
        counts.append((len(_LOOKUPS), outs))
    _HOLDER = None
    assert counts[0] == counts[1]
