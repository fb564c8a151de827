"""A NumPy argument's values read in Python by a function of the user's that the compiled step passes the array to
(`prep(a)` computing `float(a.sum())`): as when the step reads them itself, a replay would use the recording call's
values, so such a step runs eagerly, with the reason naming the read and the function. The scan follows the array
as an argument of the user's functions and methods (bytecode._passes, constants._Found.arrays_passed); what only
reads its metadata, or hands it to the library, still replays. Every call is checked against eager."""
import numpy as np

import tinygrad_lite as tl


def _arrays(i):
    rng = np.random.default_rng(i)
    x = tl.tensor(rng.standard_normal((3, 4)).astype(np.float32))
    return x, (rng.standard_normal((3, 4)).astype(np.float32) * (i + 1))


def _calls(step, n=8):
    """tl.compile(step) and step on the same new arguments n times: every result equal; the compiled stats."""
    f = tl.compile(step)
    for i in range(n):
        x, a = _arrays(i)
        got, want = f(x, a), step(x, a)
        assert got.dtype == want.dtype and np.array_equal(got.numpy(), want.numpy()), (i, f.stats)
    return f.stats


def _eager_for(step, where):
    stats = _calls(step)
    assert stats["replays"] == 0 and stats["eager_calls"] == 8, stats  # (the scan before call 1 decides)
    reason = stats["last_reason"]
    assert "reads values of a NumPy argument" in reason and where in reason, reason


# ---- values read in the user's functions the array is passed to ----
def _total(a):
    return float(a.sum())


def step_helper(x, a):
    return x * _total(a)


def _scaled(x, w=None):
    return x * float(w.max())


def step_keyword(x, a):
    return _scaled(x, w=a)


def _first(b):
    return float(b[0, 0])


def _outer(c):
    return _first(c)  # (two levels down)


def step_two_levels(x, a):
    return x * _outer(a)


def _sign_branch(x, a):
    if a.mean() > 0:
        return x * 2
    return x * 3


def step_branch_in_helper(x, a):
    return _sign_branch(x, a)


def _items(a):
    return sum(float(v) for v in a.ravel())


def step_iterates_in_helper(x, a):
    return x * _items(a)


class _Norms:
    @staticmethod
    def peak(a):
        return float(np.abs(a).max())

    def spread(self, a):
        return float(np.std(a))


NORMS = _Norms()


def step_staticmethod(x, a):
    return x * _Norms.peak(a)


def step_method_of_global_object(x, a):
    return x * NORMS.spread(a)


def _make_closure():
    scale = 2.0

    def shifted(a):
        return float(a.min()) * scale
    return shifted


_SHIFTED = _make_closure()


def step_closure_function(x, a):
    return x + _SHIFTED(a)


class _Scaler(tl.nn.Module):
    def factor(self, a):
        return float(np.mean(a))

    def forward(self, x, a):
        return x * self.factor(a)


def test_values_read_in_a_helper_run_eagerly():
    _eager_for(step_helper, "_total")


def test_values_read_through_a_keyword_argument_run_eagerly():
    _eager_for(step_keyword, "_scaled")


def test_values_read_two_functions_down_run_eagerly():
    _eager_for(step_two_levels, "_first")


def test_a_branch_on_values_in_a_helper_runs_eagerly():
    _eager_for(step_branch_in_helper, "_sign_branch")


def test_values_iterated_in_a_helper_run_eagerly():
    _eager_for(step_iterates_in_helper, "_items")


def test_values_read_in_a_staticmethod_and_a_method_run_eagerly():
    _eager_for(step_staticmethod, "peak")
    _eager_for(step_method_of_global_object, "spread")


def test_values_read_in_a_closure_function_run_eagerly():
    _eager_for(step_closure_function, "shifted")


def test_values_read_in_a_compiled_modules_own_method_run_eagerly():
    m = _Scaler()
    stats = _calls(m)
    assert stats["replays"] == 0 and "factor" in stats["last_reason"], stats


# ---- the array passed on without its values read in Python: replays ----
def _like(x, a):
    return x.reshape(a.shape) * 2.0  # (metadata only: a signature guard)


def step_metadata_in_helper(x, a):
    return _like(x, a)


def _as_tensor(a):
    return tl.tensor(a)  # (the library reads it: a recorded copy of the argument)


def step_tensor_in_helper(x, a):
    return x * _as_tensor(a)


def _pass_on(x, a):
    return _as_tensor(a) + x


def step_passes_on_twice(x, a):
    return _pass_on(x, a)


def test_a_helper_using_only_metadata_or_the_library_replays():
    for step in (step_metadata_in_helper, step_tensor_in_helper, step_passes_on_twice):
        stats = _calls(step)
        assert stats["replays"] == 7 and stats["eager_calls"] == 0, (step.__name__, stats)


# ---- where the bytecode passes a local on ----
def _passes_of(fn, *names):
    from tinygrad_lite.compile.bytecode import _passes
    return _passes(fn.__code__, frozenset(names))


def _sites(x, a):  # (never called: only its bytecode is read, so the names it calls need not exist)
    f1(x, a)  # noqa: F821
    obj.method(a, k=x)  # noqa: F821
    g2(x, w=a)  # noqa: F821
    mod.sub.fn(a)  # noqa: F821
    g3(a.T, g4(a))  # noqa: F821 (a.T is an expression: only g4's argument is passed as it is)
    g5(x if x else a)  # noqa: F821 (a conditional expression: not followed)
    return a


def test_passes_finds_positions_keywords_and_callee_chains():
    assert _passes_of(_sites, "a") == {
        (("global", "f1", ()), 1, "a"), (("global", "obj", ("method",)), 0, "a"), (("global", "g2", ()), "w", "a"),
        (("global", "mod", ("sub", "fn")), 0, "a"), (("global", "g4", ()), 0, "a")}
    assert _passes_of(_sites, "x") == {(("global", "f1", ()), 0, "x"), (("global", "obj", ("method",)), "k", "x"),
                                       (("global", "g2", ()), 0, "x")}


def test_parameter_of_a_passed_argument():
    from tinygrad_lite.compile.constants import _parameter

    def fn(p, q, *rest, r=1, **kw):
        return p, q, rest, r, kw
    code = fn.__code__
    assert [_parameter(code, k, False) for k in range(3)] == ["p", "q", None]
    assert [_parameter(code, k, True) for k in range(2)] == ["q", None]  # (a bound method: p is self)
    assert [_parameter(code, name, False) for name in ("q", "r", "other")] == ["q", "r", None]
