"""Adversarial tests of tl.compile's Python-constants scan (compile/constants.py), regression tests of important edges
that passed from the start: settings read through the user's code the scan follows (helpers, recursion, lambdas,
methods, closures), properties and __getattr__ never run by the scan, a plain training loop that replays, a step that
decays its own learning rate.

Every test compares the compiled call with the eager call of the same function on the same inputs, bit for bit. A
failing test is a stale replay (or a crash eager does not have); its docstring says what eager does and what the
replay does. Helpers: _compile_common.py (`mismatches`)."""
import contextlib
import types

import numpy as np
import pytest

import tinygrad_lite as tl

from _compile_common import mismatches as _mismatches

nn = tl.nn

SCALE = 2.0


@pytest.fixture(autouse=True)
def _restore_scale():
    yield
    _set_scale(2.0)


def _set_scale(v=3.0):
    global SCALE
    SCALE = v


_G = types.SimpleNamespace()  # the globals the cases below read


class _Glob(nn.Module):
    def forward(self, x):
        return x * SCALE


# ============ regression tests of important edges (these passed from the start) ============

def _imported_style_helper(x):
    return x * SCALE + _G.shift


def _rec(x, n):
    return x if n == 0 else _odd(x * SCALE, n - 1)


def _odd(x, n):
    return x if n == 0 else _rec(x + 1.0, n - 1)


_GLOBAL_LAMBDA = lambda x: x * SCALE  # noqa: E731


class _Method(nn.Module):
    def helper(self, x):
        return x * SCALE

    def forward(self, x):
        return self.helper(x) + sum(x * s for s in (SCALE, 1.0))  # a generator expression inside


@pytest.mark.parametrize("via", ["helper", "mutual recursion", "global lambda", "method + genexpr", "shared layer",
                                 "nested closure", "SimpleNamespace"])
def test_reached_user_code_is_guarded(via):
    """Settings read through the user's code the scan does follow: a change records a new variant (2 traces, no
    eager call), never a stale replay."""
    _G.shift, shared, ns = 1.0, _Glob(), types.SimpleNamespace(scale=2.0)
    a, b, m = nn.Sequential(shared), nn.Sequential(nn.Identity(), shared), _Method()

    def make_closure():
        s = 2.0

        def inner(x):
            return x * s

        def change():
            nonlocal s
            s = 3.0
        return (lambda x: inner(x).detach()), change
    fn, change = {
        "helper": (lambda x: _imported_style_helper(x).detach(), _set_scale),
        "mutual recursion": (lambda x: _rec(x, 4).detach(), _set_scale),
        "global lambda": (lambda x: _GLOBAL_LAMBDA(x).detach(), _set_scale),
        "method + genexpr": (lambda x: m(x).detach(), _set_scale),
        "shared layer": (lambda x: (a(x) + b(x)).detach(), _set_scale),
        "nested closure": make_closure(),
        "SimpleNamespace": (lambda x: (x * ns.scale).detach(), lambda: setattr(ns, "scale", 3.0)),
    }[via]
    bad, stats = _mismatches(fn, change)
    assert bad == [] and stats["traces"] == 2 and stats["eager_calls"] == 0, stats


class _Tricky:
    def __init__(self):
        self.calls, self.factor = 0, 2.0

    @property
    def scale(self):
        self.calls += 1
        return self.factor

    def __getattr__(self, name):
        raise RuntimeError(f"__getattr__({name!r}) run by the scan")

    def step(self, x):
        return (x * self.scale).detach()


def test_properties_and_getattr_are_never_run_by_the_scan():
    """The scan reads property getters' code without calling them (one call per eager/recorded call only), never
    calls __getattr__, and a property's reads are guards."""
    obj = _Tricky()
    bad, stats = _mismatches(obj.step, lambda: setattr(obj, "factor", 3.0))
    assert bad == [] and stats["traces"] == 2, stats
    # the two recording calls, the 10 replays (which move the getter's counter as the recording call did, since
    # session 22: constants._Counters) and the 12 eager reference calls; a scan that ran the getter would add more
    assert obj.calls == 2 + 10 + 12


def test_a_normal_training_loop_with_library_and_custom_layers_replays():
    """No guard so eager that a plain loop never replays: library layers (BatchNorm, Dropout) and a custom layer
    reading a global, compiled as a whole, replay every call after the first."""
    tl.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Dropout(0.1), _Glob(), nn.Linear(8, 2))
    step = tl.compile(model)
    opt = tl.optim.SGD(model.parameters(), lr=0.01)
    x = tl.tensor(np.random.default_rng(0).standard_normal((6, 4)).astype(np.float32))
    for _ in range(12):
        opt.zero_grad()
        step(x).sum().backward()
        opt.step()
    assert step.stats["replays"] == 11 and step.stats["eager_calls"] == 0, step.stats


def test_a_step_that_decays_its_own_learning_rate_item_matches_eager():
    """`opt.param_groups[0]["lr"] *= 0.9` inside the compiled step: the item is read by the step itself (COPY COPY
    BINARY_SUBSCR), so it is a guard; the replay never bakes the old rate or skips the decay. Losses, parameters and
    the final rate are eager's."""
    def run(compiled):
        tl.manual_seed(0)
        m = nn.Linear(3, 2)
        opt = tl.optim.SGD(m.parameters(), lr=0.1)

        def step(x):
            opt.zero_grad()
            loss = m(x).sum()
            loss.backward()
            opt.step()
            opt.param_groups[0]["lr"] *= 0.9
            return loss.item()
        f = tl.compile(step) if compiled else step
        x = tl.tensor(np.ones((4, 3), np.float32))
        with pytest.warns(tl.CompileWarning) if compiled else contextlib.nullcontext():
            losses = [f(x) for _ in range(12)]
        return losses, [p.numpy().copy() for p in m.parameters()], opt.param_groups[0]["lr"]
    want, got = run(False), run(True)
    assert want[0] == got[0] and want[2] == got[2]
    assert all(np.array_equal(a, b) for a, b in zip(want[1], got[1]))
