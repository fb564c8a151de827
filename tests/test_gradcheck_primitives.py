"""gradgradcheck on a handful of registered primitives, at inputs drawn by their own samplers (the full
per-primitive sweep lives in test_ops_sweep.py); and the faulty-entry search on registered primitives."""
import inspect
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import tinygrad_lite as tl
from tinygrad_lite.gradcheck import GradcheckKinkWarning, gradcheck, gradgradcheck
from tinygrad_lite.gradcheck.entries import search
from tinygrad_lite.ops import REGISTRY

from primitive_gen import HypothesisGen

HANDFUL = ["exp", "log", "sqrt", "tanh", "sigmoid", "mul", "div", "pow", "matmul", "sum", "prod", "amax", "relu",
           "clamp", "where", "getitem", "cat", "unfold"]


def _leaves(arrays):
    return [tl.tensor(a, requires_grad=a.dtype.kind == "f") for a in arrays]


@pytest.mark.parametrize("name", [n for n in HANDFUL if n in REGISTRY])
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_gradgradcheck_passes_for_registered_primitives(name, data):
    prim = REGISTRY[name]
    arrays, attrs = prim.sample(HypothesisGen(data))
    leaves = _leaves(arrays)
    if not any(t.requires_grad for t in leaves):
        return
    fn = lambda *xs: prim.call(*xs, *attrs)  # noqa: E731
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GradcheckKinkWarning)
        assert gradcheck(fn, tuple(leaves))
        assert gradgradcheck(fn, tuple(leaves))


@pytest.mark.parametrize("name", ["exp", "mul", "matmul", "sum", "getitem", "amax", "maximum", "clamp"])
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_entry_search_finds_no_fault_in_correct_primitives(name, data):
    prim = REGISTRY[name]
    arrays, attrs = prim.sample(HypothesisGen(data))
    leaves = _leaves(arrays)
    if not any(t.requires_grad for t in leaves):
        return
    out = prim.call(*leaves, *attrs)
    assert search(tl.autograd.tape(out), orders=(1, 2)) is None


def test_entry_search_catches_a_broken_registered_vjp(monkeypatch):
    """Swap the real sin VJP for a wrong one: the search names 'sin' and not its neighbours."""
    sin = REGISTRY["sin"]
    monkeypatch.setattr(sin, "vjp", lambda ctx, g: (g * ctx.saved[0].cos() * 2.0,))
    x = tl.tensor(np.array([0.3, -1.2, 2.0]), requires_grad=True)
    y = (x.exp() * 0.5).sin().tanh()
    line = inspect.currentframe().f_lineno - 1
    found = search(tl.autograd.tape(y))
    assert found is not None and found.name == "sin" and found.kind == "primitive"
    assert found.source_path == f"{__file__}:{line}"
