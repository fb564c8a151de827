"""Forward mode, every registered primitive, automatically: its JVP against central differences (float64) and
against its VJP (<u, J v> = <J^T u, v>), over the sampler's Hypothesis shapes. A new primitive without a JVP
fails here."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st, HealthCheck

import tinygrad_lite as tl
import tinygrad_lite.autograd.forward_ad as fwAD
from tinygrad_lite.ops import REGISTRY

from primitive_gen import HypothesisGen

NAMES = sorted(REGISTRY)
EPS, ATOL, RTOL = 1e-6, 1e-6, 1e-5


def _jvp(prim, arrays, attrs, tangents):
    """The output's tangent (zeros when the JVP says zero) and the output, by forward mode."""
    with fwAD.dual_level():
        xs = [fwAD.make_dual(tl.tensor(a), tl.tensor(v)) if v is not None else tl.tensor(a)
              for a, v in zip(arrays, tangents)]
        out = prim.call(*xs, *attrs)
        _, t = fwAD.unpack_dual(out)
    return (np.zeros(out.shape) if t is None else t.numpy()), out.numpy()


def _tangents(arrays, rng):
    return [rng.standard_normal(a.shape) if a.dtype.kind == "f" else None for a in arrays]


def _sampled(name, data):
    """(primitive, its sampler's arrays in float64, attributes)."""
    prim = REGISTRY[name]
    arrays, attrs = prim.sample(HypothesisGen(data))
    return prim, [a.astype(np.float64) if a.dtype.kind == "f" else a for a in arrays], attrs


def test_every_primitive_declares_a_jvp():
    missing = [n for n, p in REGISTRY.items() if p.jvp is None]
    assert not missing, f"primitives without a forward-mode rule (defjvp): {missing}"


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_jvp_matches_finite_differences(name, data):
    prim, arrays, attrs = _sampled(name, data)
    vs = _tangents(arrays, np.random.default_rng(0))
    got, _ = _jvp(prim, arrays, attrs, vs)

    def f(sign):
        shifted = [a + sign * EPS * v if v is not None else a for a, v in zip(arrays, vs)]
        with tl.no_grad():
            return prim.call(*[tl.tensor(a) for a in shifted], *attrs).numpy()
    numeric = (f(1) - f(-1)) / (2 * EPS)
    assert got.shape == numeric.shape, f"{name}: tangent shape {got.shape}, output {numeric.shape}"
    err, tol = np.abs(got - numeric), ATOL + RTOL * np.abs(numeric)
    assert (err <= tol).all(), f"{name} attrs={attrs}: JVP max error {err.max():.3g}\n{got}\n{numeric}"


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_jvp_is_the_transpose_of_the_vjp(name, data):
    """<u, J v> computed by forward mode equals <J^T u, v> computed by reverse mode."""
    prim, arrays, attrs = _sampled(name, data)
    rng = np.random.default_rng(1)
    vs = _tangents(arrays, rng)
    jv, out = _jvp(prim, arrays, attrs, vs)
    u = rng.standard_normal(out.shape)
    xs = [tl.tensor(a, requires_grad=a.dtype.kind == "f") for a in arrays]
    y = prim.call(*xs, *attrs)
    diff = [i for i, x in enumerate(xs) if x.requires_grad]
    rhs = 0.0
    if y.requires_grad:
        grads = tl.autograd.grad(y, [xs[i] for i in diff], grad_outputs=tl.tensor(u), allow_unused=True)
        rhs = sum(float(np.sum(g.numpy() * vs[i])) for i, g in zip(diff, grads) if g is not None)
    lhs = float(np.sum(u * jv))
    assert abs(lhs - rhs) <= 1e-8 + 1e-8 * abs(rhs), f"{name} attrs={attrs}: <u, Jv> = {lhs}, <J^T u, v> = {rhs}"


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_reverse_over_forward_matches_finite_differences(name, data):
    """The tangent is recorded on the tape: d/dx <w, J(x) v> by backward against central differences."""
    prim, arrays, attrs = _sampled(name, data)
    rng = np.random.default_rng(2)
    vs = _tangents(arrays, rng)
    w = rng.standard_normal(_jvp(prim, arrays, attrs, vs)[1].shape)

    def scalar(arrs, track):
        with fwAD.dual_level():
            xs = [tl.tensor(a, requires_grad=track and v is not None) for a, v in zip(arrs, vs)]
            duals = [fwAD.make_dual(x, tl.tensor(v)) if v is not None else x for x, v in zip(xs, vs)]
            _, t = fwAD.unpack_dual(prim.call(*duals, *attrs))
            if t is None:
                return xs, None
            return xs, (t * tl.tensor(w)).sum()

    xs, s = scalar(arrays, True)
    diff = [i for i, v in enumerate(vs) if v is not None]
    if s is None or not s.requires_grad:
        analytic = {i: np.zeros_like(arrays[i]) for i in diff}
    else:
        got = tl.autograd.grad(s, [xs[i] for i in diff], allow_unused=True)
        analytic = {i: np.zeros_like(arrays[i]) if g is None else g.numpy() for i, g in zip(diff, got)}
    for i in diff:
        numeric = np.zeros_like(arrays[i])
        for k in np.ndindex(arrays[i].shape):
            hi, lo = [a.copy() for a in arrays], [a.copy() for a in arrays]
            hi[i][k] += EPS
            lo[i][k] -= EPS
            fh, fl = scalar(hi, False)[1], scalar(lo, False)[1]
            numeric[k] = ((0.0 if fh is None else fh.item()) - (0.0 if fl is None else fl.item())) / (2 * EPS)
        err, tol = np.abs(analytic[i] - numeric), ATOL + RTOL * np.abs(numeric)
        assert (err <= tol).all(), f"{name} attrs={attrs} input {i}: max error {err.max():.3g}"
