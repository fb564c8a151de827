"""Review s27a of e0dbbd7 (a parameter's default list, dict, set, tuple, deque or array, read where the call leaves the
parameter out, is read like a global). Each probe runs a compiled function beside its eager twin (two function
objects from one `make()`, so they do not share the default) over several calls with changing inputs.

Probed, and right before this review: `_c += [1]` on a default list; an alias (`seen = _c; seen.append(1)`); the
default passed to a helper that appends; `_c[0] += 1`; `d["n"] = d.get("n", 0) + 1`; a nested default
(`cfg={"sizes": [1]}`); a default set, deque and a tuple holding a list; a default array written in Python (`w += 1`,
`w[...] = ...`) and read by tensor operations (eager: an array from outside the recorded operations); defaults of a
lambda, of a function under functools.partial, of a Module's forward and of a method its forward calls; a call
passing the parameter on some calls only (positionally or by keyword, keyword-only too); a default list of tensors or
of Modules; a default list of 100,000 items (appended: eager per call; read only: replays); a defaultdict/Counter
default (eager: its __missing__); a user's object as the default (`cfg.n += 1`); `*args` before a keyword-only
default. An ordinary `def step(x, y, reduction="mean")` and `def forward(self, x, mask=None)` replay every call.

Defects found (fixed here):
- a default a nested function or lambda of the step reads (the parameter is then a cell, 'deref', not 'fast'): the
  scan did not root it, so a replay left the default list as the recording call did;
- a default array the step passes to a helper of the user's that reads its values (`helper(w)`: `float(a[0])`):
  guarded by identity only, so a change to its values replayed the old ones (now followed as a NumPy argument's are:
  the call runs eagerly);
- `step.__defaults__ = (...)` / `step.__kwdefaults__[...] = ...` between calls (scalar defaults too): the replay kept
  the recording call's default (now `__defaults__` and each of `__kwdefaults__` are guards);
- a list held by a functools.partial (`partial(f, cache=[])`, appended by f), and `p.keywords["scale"] = v`: the
  scan did not guard what a partial passes, so a replay repeated the recording call's values.

Found and fixed after the review: a NumPy array held by a global or a closure (not a default) passed to a helper that
reads its values.
"""
import functools
import collections
import warnings

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite import nn
from _compile_common import CALLS, seeded_vector as _x, twins as _twins


def _changed_between_calls(make, change, calls=CALLS):
    """Call an eager and a compiled function from make() with the same inputs, `change(fn, i)` applied to both (the
    plain function under the compiled one) after each call; return the compiled one."""
    eager, plain = make(), make()
    compiled = tl.compile(plain)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tl.CompileWarning)
        for i in range(calls):
            assert compiled(_x(i)) == eager(_x(i)), (i, compiled.stats)
            change(eager, i)
            change(plain, i)
    return compiled


# ---- probes that held before this review ----------------------------------------------------------------------------

def _step_in_place_add():
    def step(x, _c=[]):
        _c += [1]
        return (x * len(_c)).sum().item()
    return step


def _step_alias():
    def step(x, _c=[]):
        seen = _c
        seen.append(1)
        return (x * len(seen)).sum().item()
    return step


def _step_helper_appends():
    def helper(c):
        c.append(1)

    def step(x, _c=[]):
        helper(_c)
        return (x * len(_c)).sum().item()
    return step


def _step_item_add():
    def step(x, _c=[0]):
        _c[0] += 1
        return (x * _c[0]).sum().item()
    return step


def _step_dict_get():
    def step(x, d={}):
        d["n"] = d.get("n", 0) + 1
        return (x * d["n"]).sum().item()
    return step


def _step_nested():
    def step(x, cfg={"sizes": [1]}):
        cfg["sizes"].append(1)
        return (x * len(cfg["sizes"])).sum().item()
    return step


def _step_set():
    def step(x, s=set()):
        s.add(len(s))
        return (x * len(s)).sum().item()
    return step


def _step_deque():
    def step(x, q=collections.deque(maxlen=100)):
        q.append(1)
        return (x * len(q)).sum().item()
    return step


def _step_tuple_of_list():
    def step(x, _c=([],)):
        _c[0].append(1)
        return (x * len(_c[0])).sum().item()
    return step


def _step_array_add_into_tensor():
    def step(x, w=np.ones(4, np.float32)):
        w += 1
        return (x * tl.tensor(w)).sum().item()
    return step


def _step_array_set_into_tensor():
    def step(x, w=np.ones(4, np.float32)):
        w[...] = w * 2
        return (x * tl.tensor(w)).sum().item()
    return step


def _lambda():
    return lambda x, _c=[]: (_c.append(1), (x * len(_c)).sum().item())[1]


def _partial_of_step():
    def step(x, scale, _c=[]):
        _c.append(1)
        return (x * scale * len(_c)).sum().item()
    return functools.partial(step, scale=2.0)


def _step_after_varargs():
    def step(x, *rest, _c=[]):
        _c.append(1)
        return (x * len(_c)).sum().item()
    return step


def _step_list_of_tensors():
    def step(x, hist=[]):
        hist.append(x.detach())
        out = hist[0]
        for h in hist[1:]:
            out = out + h
        return out.sum().item()
    return step


def _step_big_list_appended():
    def step(x, big=list(range(100_000))):
        big.append(1)
        return (x * len(big)).sum().item()
    return step


def _step_user_object():
    class Cfg:
        def __init__(self):
            self.n = 0

    def step(x, cfg=Cfg()):
        cfg.n += 1
        return (x * cfg.n).sum().item()
    return step


def _step_default_tensor_in_place():
    def step(x, w=tl.tensor(np.ones(4, np.float32))):
        with tl.no_grad():
            w.add_(1.0)
        return (x * w).sum().item()
    return step


def _step_defaultdict():
    def step(x, d=collections.defaultdict(int)):
        d["n"] += 1
        return (x * d["n"]).sum().item()
    return step


@pytest.mark.parametrize("make", [
    _step_in_place_add, _step_alias, _step_helper_appends, _step_item_add, _step_dict_get, _step_nested, _step_set,
    _step_deque, _step_tuple_of_list, _step_array_add_into_tensor, _step_array_set_into_tensor, _lambda,
    _partial_of_step, _step_after_varargs, _step_list_of_tensors, _step_big_list_appended, _step_user_object,
    _step_default_tensor_in_place, _step_defaultdict], ids=lambda m: m.__name__.lstrip("_"))
def test_a_default_the_call_changes(make):
    want, got, _ = _twins(make)
    assert got == want


def test_a_default_dict_of_a_module_forward():
    def make():
        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, 2)

            def helper(self, h, _n=[]):
                _n.append(1)
                return h * len(_n)

            def forward(self, x, _cache={}):
                _cache["n"] = _cache.get("n", 0) + 1
                return (self.helper(self.fc(x)) * _cache["n"]).detach()
        tl.manual_seed(0)
        return M()
    eager, compiled = make(), tl.compile(make())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tl.CompileWarning)
        for i in range(CALLS):
            assert np.array_equal(eager(_x(i)).numpy(), compiled(_x(i)).numpy()), i


@pytest.mark.parametrize("kwargs", [
    lambda i: {"_c": []} if i % 2 else {},
    lambda i: {"_c": [0] * i} if i % 3 == 0 else {},
], ids=["every_other_call", "every_third_call"])
def test_a_default_list_given_on_some_calls_only(kwargs):
    def make():
        def step(x, _c=[]):
            _c.append(1)
            return (x * len(_c)).sum().item()
        return step
    want, got, _ = _twins(make, kwargs=kwargs)
    assert got == want


def test_a_keyword_only_default_given_on_some_calls_only():
    def make():
        def step(x, *, log=[]):
            log.append(1)
            return (x * len(log)).sum().item()
        return step
    want, got, _ = _twins(make, kwargs=lambda i: {"log": [1, 2]} if i % 2 else {})
    assert got == want


def test_a_default_list_of_modules_read_only_replays():
    def make():
        tl.manual_seed(0)

        def step(x, layers=[nn.Linear(4, 4)]):
            return layers[0](x).sum().item()
        return step
    want, got, f = _twins(make)
    assert got == want
    assert f.stats["replays"] == CALLS - 1, f.stats


def test_a_large_default_list_read_only_replays():
    def make():
        def step(x, big=list(range(100_000))):
            return (x * big[5]).sum().item()
        return step
    want, got, f = _twins(make)
    assert got == want
    assert f.stats["replays"] == CALLS - 1, f.stats


def test_a_training_step_with_a_string_default_replays_every_call():
    def make():
        tl.manual_seed(0)
        model = nn.Sequential(nn.Linear(5, 3))
        opt = tl.optim.SGD(model.parameters(), lr=0.1)

        def step(x, y, reduction="mean"):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x), y, reduction=reduction)
            loss.backward()
            opt.step()
            return loss.item()
        return step
    rng = np.random.default_rng(0)
    data = [(tl.tensor(rng.standard_normal((6, 5)).astype(np.float32)), tl.tensor(rng.integers(0, 3, 6)))
            for _ in range(CALLS)]
    want, got, f = _twins(make, args=lambda i: data[i])
    assert got == want
    assert f.stats["replays"] == CALLS - 1, f.stats


def test_a_forward_with_mask_none_replays_every_call():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x, mask=None):
            h = self.fc(x)
            if mask is not None:
                h = h * mask
            return h.detach()
    tl.manual_seed(0)
    compiled = tl.compile(M())
    for i in range(CALLS):
        compiled(_x(i))
    assert compiled.stats["replays"] == CALLS - 1, compiled.stats


def test_a_partial_with_a_setting_keyword_replays_every_call():
    """The guards on what a partial passes (below) leave a partial of settings replaying."""
    def make():
        def step(x, scale, reduction="sum"):
            return getattr(x * scale, reduction)().item()
        return functools.partial(step, scale=2.0, reduction="mean")
    want, got, f = _twins(make)
    assert got == want
    assert f.stats["replays"] == CALLS - 1, f.stats


# ---- defects found by this review, fixed ----------------------------------------------------------------------------

def test_a_default_list_a_nested_function_appends_to():
    """The parameter is a cell of the step (a 'deref' chain): it was not rooted, and replays left the list alone."""
    def make():
        def step(x, _c=[]):
            def inner():
                _c.append(1)
            inner()
            return (x * len(_c)).sum().item()
        return step
    want, got, f = _twins(make)
    assert got == want
    assert "_c" in f.stats["last_reason"], f.stats


def test_a_default_list_a_lambda_reads_changed_by_the_caller():
    def make():
        def step(x, scales=[1.0]):
            total = lambda: sum(scales)  # noqa: E731
            return (x * total()).sum().item()
        return step
    f = _changed_between_calls(make, lambda fn, i: fn.__defaults__[0].append(0.5))
    assert f.stats["replays"] == 0, f.stats


def test_a_default_array_passed_to_a_helper_that_reads_its_values():
    """`helper(w)` reading `float(a[0])`: the default array's values were guarded nowhere (kept by identity), so a
    change from outside replayed the recording call's value; now followed as a NumPy argument's are (eager)."""
    def make():
        def helper(a):
            return float(a[0])

        def step(x, w=np.ones(2, np.float32)):
            return (x * helper(w)).sum().item()
        return step

    def change(fn, i):
        fn.__defaults__[0][0] += 1
    f = _changed_between_calls(make, change)
    assert "a[0]" in (f.stats["last_reason"] or ""), f.stats


def test_a_default_array_given_by_the_call_to_a_helper_is_an_argument():
    """The same step with `w` always given: no default read, the argument is keyed by its shape (and read values make
    it eager, as before)."""
    def make():
        def step(x, w=np.ones(2, np.float32)):
            return (x * 2).sum().item(), w.shape
        return step
    want, got, f = _twins(make, kwargs=lambda i: {"w": np.zeros(2, np.float32)})
    assert got == want
    assert f.stats["replays"] == CALLS - 1, f.stats


@pytest.mark.parametrize("new", [lambda i: (float(i + 2),), lambda i: ([float(i + 2)],)], ids=["float", "list"])
def test_defaults_reassigned_between_calls(new):
    """`step.__defaults__ = (...)`: a call leaving the parameter out takes the new default."""
    def make():
        def step(x, scale=1.0):
            s = scale if isinstance(scale, float) else sum(scale)
            return (x * s).sum().item()
        return step

    def change(fn, i):
        fn.__defaults__ = new(i)
    f = _changed_between_calls(make, change)
    assert "__defaults__" in f.stats["last_reason"], f.stats


def test_defaults_reassigned_to_equal_values_still_replay():
    def make():
        def step(x, scale=1.0):
            return (x * scale).sum().item()
        return step

    def change(fn, i):
        fn.__defaults__ = (1.0,)
    f = _changed_between_calls(make, change)
    assert f.stats["replays"] == CALLS - 1, f.stats


@pytest.mark.parametrize("in_place", [False, True], ids=["reassigned", "in_place"])
def test_keyword_only_defaults_changed_between_calls(in_place):
    def make():
        def step(x, *, scale=1.0):
            return (x * scale).sum().item()
        return step

    def change(fn, i):
        if in_place:
            fn.__kwdefaults__["scale"] = float(i + 2)
        else:
            fn.__kwdefaults__ = {"scale": float(i + 2)}
    _changed_between_calls(make, change)


def test_a_default_of_a_helper_reassigned_between_calls():
    def make():
        def helper(v, scale=1.0):
            return v * scale

        def step(x):
            return helper(x).sum().item()
        step.helper = helper
        return step

    def change(fn, i):
        fn.helper.__defaults__ = (float(i + 2),)
    _changed_between_calls(make, change)


def test_a_list_a_partial_passes_as_the_default_would_be():
    """`partial(step, _c=[])`: the list the partial holds is passed to every call, appended to by each."""
    def make():
        def step(x, _c=None):
            _c.append(1)
            return (x * len(_c)).sum().item()
        return functools.partial(step, _c=[])
    want, got, _ = _twins(make)
    assert got == want


def test_a_partial_in_a_closure_whose_list_its_function_appends_to():
    def make():
        def h(v, cache):
            cache.append(v)
            return len(cache)
        counted = functools.partial(h, cache=[])

        def step(x):
            return (x * counted(1)).sum().item()
        return step
    want, got, _ = _twins(make)
    assert got == want


def test_a_partial_keyword_changed_in_place_between_calls():
    def make():
        def step(x, scale=1.0):
            return (x * scale).sum().item()
        return functools.partial(step, scale=1.0)

    def change(fn, i):
        fn.keywords["scale"] = float(i + 2)
    _changed_between_calls(make, change)


# ---- a global's or closure's array passed to a helper (was the review's strict xfail, fixed in the session) ----------

_G = np.ones(2, np.float32)


def test_a_global_array_passed_to_a_helper_that_reads_its_values():
    """Was: kept by identity, so the helper's `float(a[0])` replayed the recording call's value after `_G[0] += 1`;
    now guarded by its values (constants._Found.values_read_by_callees; bytecode._passes follows a global too)."""
    def helper(a):
        return float(a[0])

    def step(x):
        return (x * helper(_G)).sum().item()
    compiled = tl.compile(step)
    _G[:] = 1.0
    for i in range(CALLS):
        assert compiled(_x(i)) == (_x(i) * float(_G[0])).sum().item(), i
        if i % 2:
            _G[0] += 1
    assert compiled.stats["replays"] >= CALLS // 2 - 1, compiled.stats  # (unchanged between two calls: replayed)


def test_a_closure_array_passed_to_a_helper_that_reads_its_values():
    table = np.ones(2, np.float32)

    def helper(a):
        return float(a.sum())

    def step(x):
        return (x * helper(table)).sum().item()
    compiled = tl.compile(step)
    for i in range(CALLS):
        assert compiled(_x(i)) == (_x(i) * float(table.sum())).sum().item(), i
        table[1] = i


def test_a_global_array_passed_to_a_helper_that_does_not_read_it_is_no_guard():
    """`helper(_G)` that only passes the array to a tensor operation: no values guard, so writes between calls do not
    record again (the tensor made from it is an input the replay reads, or eager: as before)."""
    def helper(x, a):
        return x * 2

    def step(x):
        return helper(x, _G).sum().item()
    compiled = tl.compile(step)
    for i in range(CALLS):
        assert compiled(_x(i)) == (_x(i) * 2).sum().item(), i
        _G[0] += 1
    assert compiled.stats["traces"] == 1 and compiled.stats["replays"] == CALLS - 1, compiled.stats
