"""Every registered primitive, automatically: float64 finite-difference check of its VJP, a second-order check
(the VJP's own derivative, through create_graph) and broadcast shapes drawn by Hypothesis. A new primitive with a
sampler is covered without writing a new test."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st, HealthCheck

import tinygrad_lite as tl
from tinygrad_lite.ops import REGISTRY

from primitive_gen import HypothesisGen

EPS = 1e-6
ATOL, RTOL = 1e-6, 1e-5
NAMES = sorted(REGISTRY)


def _leaves(arrays):
    return [tl.tensor(a, requires_grad=a.dtype.kind == "f") for a in arrays]


def _numeric_grad(scalar_fn, arrays, i):
    """Central differences of scalar_fn w.r.t. arrays[i]."""
    x = arrays[i]
    grad = np.zeros_like(x)
    for k in np.ndindex(x.shape):
        orig = x[k]
        x[k] = orig + EPS
        hi = scalar_fn(arrays)
        x[k] = orig - EPS
        lo = scalar_fn(arrays)
        x[k] = orig
        grad[k] = (hi - lo) / (2 * EPS)
    return grad


def _assert_close(analytic, numeric, what):
    err = np.abs(analytic - numeric)
    tol = ATOL + RTOL * np.abs(numeric)
    assert (err <= tol).all(), f"{what}: max error {err.max():.3g}\nanalytic\n{analytic}\nnumeric\n{numeric}"


def test_every_primitive_is_declared_completely():
    for name, p in REGISTRY.items():
        assert p.vjp is not None, f"primitive {name} has no VJP"
        assert p.sample is not None, f"primitive {name} has no sampler, so the sweep cannot test it"


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_vjp_matches_finite_differences(name, data):
    prim = REGISTRY[name]
    arrays, attrs = prim.sample(HypothesisGen(data))
    out = prim.call(*_leaves(arrays), *attrs)
    u = np.random.default_rng(0).standard_normal(out.shape)

    def loss(arrs):
        with tl.no_grad():
            return float(np.sum(u * prim.call(*[tl.tensor(a) for a in arrs], *attrs).numpy()))

    xs = _leaves(arrays)
    out = prim.call(*xs, *attrs)
    diff = [i for i, x in enumerate(xs) if x.requires_grad]
    grads = tl.autograd.grad(out, [xs[i] for i in diff], grad_outputs=tl.tensor(u), allow_unused=True)
    for i, g in zip(diff, grads):
        analytic = np.zeros_like(arrays[i]) if g is None else g.numpy()
        assert analytic.shape == arrays[i].shape, f"{name}: gradient shape {analytic.shape} != {arrays[i].shape}"
        _assert_close(analytic, _numeric_grad(loss, arrays, i), f"{name} input {i} attrs={attrs}")


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_second_order_matches_finite_differences(name, data):
    """d/dx <w, VJP(u)(x)> by create_graph against central differences of the first-order VJP."""
    prim = REGISTRY[name]
    arrays, attrs = prim.sample(HypothesisGen(data))
    rng = np.random.default_rng(1)
    diff = [i for i, a in enumerate(arrays) if a.dtype.kind == "f"]
    with tl.no_grad():
        u = rng.standard_normal(prim.call(*_leaves(arrays), *attrs).shape)
    ws = {i: rng.standard_normal(arrays[i].shape) for i in diff}

    def first_order(arrs, create_graph):
        xs = _leaves(arrs)
        out = prim.call(*xs, *attrs)
        if not out.requires_grad:
            return xs, [None] * len(diff)
        gs = tl.autograd.grad(out, [xs[i] for i in diff], grad_outputs=tl.tensor(u), create_graph=create_graph,
                              allow_unused=True)
        return xs, gs

    def scalar(arrs):
        _, gs = first_order(arrs, False)
        return float(sum(np.sum(ws[i] * g.numpy()) for i, g in zip(diff, gs) if g is not None))

    xs, gs = first_order(arrays, True)
    total = None
    for i, g in zip(diff, gs):
        if g is not None and g.requires_grad:
            term = (g * tl.tensor(ws[i])).sum()
            total = term if total is None else total + term
    if total is None:
        analytic = {i: np.zeros_like(arrays[i]) for i in diff}  # linear in every input: second derivative is 0
    else:
        got = tl.autograd.grad(total, [xs[i] for i in diff], allow_unused=True)
        analytic = {i: (np.zeros_like(arrays[i]) if g is None else g.numpy()) for i, g in zip(diff, got)}
    for i in diff:
        _assert_close(analytic[i], _numeric_grad(scalar, arrays, i), f"{name} second order, input {i} attrs={attrs}")


@pytest.mark.parametrize("name", [n for n in NAMES if REGISTRY[n].reads != {"inputs", "output"}])
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_vjp_reads_only_the_values_it_declares(name, data):
    """A primitive's `reads` lets backward go on after an in-place change to a value its VJP does not read (as
    PyTorch's saved-variable checks do); the declaration must be true: replacing those values changes nothing."""
    prim = REGISTRY[name]
    arrays, attrs = prim.sample(HypothesisGen(data))
    rng = np.random.default_rng(2)

    def grads(garble):
        xs = _leaves([a.copy() for a in arrays])
        out = prim.call(*xs, *attrs)
        if not out.requires_grad:
            return []
        e = out._entry
        if garble:
            if "inputs" not in prim.reads:
                for t in e.saved:
                    t._data = rng.standard_normal(t._data.shape).astype(t._data.dtype)
            if "output" not in prim.reads:
                e.out_data = rng.standard_normal(e.out_data.shape).astype(e.out_data.dtype)
        u = np.ones(out.shape)
        diff = [x for x in xs if x.requires_grad]
        return [None if g is None else g.numpy() for g in
                tl.autograd.grad(out, diff, grad_outputs=tl.tensor(u), allow_unused=True)]

    for g0, g1 in zip(grads(False), grads(True)):
        assert (g0 is None) == (g1 is None)
        if g0 is not None:
            np.testing.assert_array_equal(g0, g1, err_msg=f"{name} reads a value it declares it does not read")


# Primitives whose result is a new array however it is written: views (unfold's windows too), the kink masks (a
# comparison's array, then cast).
WITHOUT_INTO = {"mask", "unfold"}


def test_every_primitive_writes_into_a_planned_buffer_or_is_a_known_exception():
    """A steady tl.compile replay allocates no intermediate arrays: each primitive that makes a new array declares
    an `into` rule, or is listed above with the reason it cannot."""
    from tinygrad_lite.ops.registry import VIEW_OPS
    missing = {n for n in NAMES if REGISTRY[n].into is None and n not in VIEW_OPS}
    assert missing == WITHOUT_INTO, f"without an into rule: {sorted(missing - WITHOUT_INTO)}; listed but has one: " \
                                    f"{sorted(WITHOUT_INTO - missing)}"


@pytest.mark.parametrize("name", [n for n in NAMES if REGISTRY[n].into is not None])
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_into_rule_writes_exactly_what_forward_returns(name, data):
    """tl.compile replays a primitive with an `into` rule into a planned buffer: same values, bit for bit, and
    the buffer itself is the result (for float32 and float64 inputs)."""
    prim = REGISTRY[name]
    arrays, attrs = prim.sample(HypothesisGen(data))
    for dt in (np.float64, np.float32):
        arrs = [a.astype(dt) if a.dtype.kind == "f" else a for a in arrays]
        want = np.asarray(prim.forward(*arrs, *attrs))
        buf = np.full_like(want, 7.0)
        got = prim.into(buf, *arrs, *attrs)
        assert got is buf and got.dtype == want.dtype
        np.testing.assert_array_equal(got, want, err_msg=f"{name}: into differs from forward")


_FLOAT = st.floats(-4, 4, allow_nan=False, width=16)


@pytest.mark.parametrize("name", ["tanh_grad", "sigmoid_grad"])
@settings(max_examples=200, deadline=None)
@given(g=_FLOAT, y=_FLOAT, dtypes=st.sampled_from([(np.float16,) * 2, (np.float32,) * 2, (np.float64,) * 2,
                                                    (np.float64, np.float32), (np.float32, np.float16)]))
def test_fused_gradient_into_a_0d_buffer_is_forward_bit_for_bit(name, g, y, dtypes):
    """A 0-d fused gradient is written from NumPy scalars (its fast path for W5's scalar chain): the same bits as
    the forward on 0-d arrays, in each dtype and mixed dtypes."""
    prim = REGISTRY[name]
    ga, ya = np.asarray(g, dtypes[0]), np.asarray(y, dtypes[1])
    want = np.asarray(prim.forward(ga, ya))
    buf = np.full_like(want, 7.0)
    got = prim.into(buf, ga, ya)
    assert got is buf and got.dtype == want.dtype and got.shape == ()
    assert got.tobytes() == want.tobytes(), f"{name}({g!r}, {y!r}) in {dtypes}: {got!r} != {want!r}"


@settings(max_examples=200, deadline=None)
@given(x=st.floats(-100, 100, allow_nan=False, width=32), dtype=st.sampled_from([np.float16, np.float32, np.float64]))
def test_sigmoid_into_a_0d_buffer_is_forward_bit_for_bit(x, dtype):
    """A 0-d sigmoid is written from the expression eager computes for small arrays, not by passes in place."""
    prim = REGISTRY["sigmoid"]
    xa = np.asarray(x, dtype)
    with np.errstate(over="ignore"):
        want = np.asarray(prim.forward(xa))
    buf = np.full_like(want, 7.0)
    got = prim.into(buf, xa)
    assert got is buf and got.tobytes() == want.tobytes(), f"sigmoid({x!r}) in {dtype}: {got!r} != {want!r}"


# ---------------- host computations' into rules (a VJP's masks written into planned buffers by a replay) ----------
_SPECIAL = [0.0, -0.0, 0.5, -0.5, 1.0, np.inf, -np.inf, np.nan]
_HOST_DTYPES = [np.float16, np.float32, np.float64]


def _values(data, dtype, shape):
    n = int(np.prod(shape))
    vals = data.draw(st.lists(st.one_of(st.sampled_from(_SPECIAL), st.floats(-2, 2, width=16)), min_size=n,
                              max_size=n))
    return np.asarray(vals, dtype=dtype).reshape(shape)


def _host_into(fn, *args):
    """(fn(*args) as eager computes it, the into rule's result in a buffer of garbage)."""
    from tinygrad_lite.compile.hooks import HOST_INTO
    want = np.asarray(fn(*args))
    buf = np.full_like(want, 7)
    got = HOST_INTO[fn](buf, *args)
    assert got is buf and got.dtype == want.dtype and got.shape == want.shape
    return want, got


_BOUND = st.one_of(st.none(), st.sampled_from([0.0, -0.5, 0.5, 1.0, 1.0000000001, np.inf]),
                   st.floats(-2, 2, allow_nan=False))


@settings(max_examples=150, deadline=None)
@given(data=st.data(), dtype=st.sampled_from(_HOST_DTYPES), lo=_BOUND, hi=_BOUND)
def test_clamp_mask_into_rule_is_the_eager_mask_bit_for_bit(data, dtype, lo, hi):
    """clamp's VJP factor (1 inside [lo, hi], else 0), written without a temporary: the same bits as eager's for NaN,
    signed zeros, infinities, values on the bounds, empty and rounded-together ranges, in every float dtype."""
    from tinygrad_lite.ops.elementwise import MASKS
    x = _values(data, dtype, data.draw(st.sampled_from([(), (7,), (3, 4)])))
    want, got = _host_into(MASKS["inside"], x, lo, hi)
    assert got.tobytes() == want.tobytes(), f"x={x!r} lo={lo!r} hi={hi!r}: {got!r} != {want!r}"


@settings(max_examples=100, deadline=None)
@given(data=st.data(), dtype=st.sampled_from(_HOST_DTYPES + [np.int64]))
def test_exponent_zero_into_rule_is_the_eager_mask(data, dtype):
    from tinygrad_lite.ops.elementwise import _exponent_zero
    b = _values(data, np.float64, (5,)).astype(dtype) if dtype is not np.int64 else np.array([0, 1, -2, 0, 3])
    want, got = _host_into(_exponent_zero, b)
    assert np.array_equal(got, want)


@settings(max_examples=150, deadline=None)
@given(data=st.data(), dtype=st.sampled_from(_HOST_DTYPES), which=st.sampled_from(["amax", "amin"]),
       axis=st.sampled_from([None, (0,), (1,), (0, 1)]), keepdims=st.booleans())
def test_tie_share_into_rule_is_the_eager_share_bit_for_bit(data, dtype, which, axis, keepdims):
    """amax/amin's VJP factor (1/k at each of k tied extremes): ties (drawn from few distinct values), NaN slices
    (eager's 0/0), both with and without the forward's output passed in."""
    from tinygrad_lite.ops import reduce as red
    few = data.draw(st.lists(st.sampled_from([0.0, 1.0, -1.0, 2.0, np.nan, -0.0]), min_size=12, max_size=12))
    x = np.asarray(few, dtype=dtype).reshape(3, 4)
    prim = getattr(red, which)
    for out in (None, prim.forward(x, axis, keepdims)):
        with np.errstate(invalid="ignore"):
            want, got = _host_into(red._tie_share, prim.forward, x, out, axis, keepdims)
        assert got.tobytes() == want.tobytes(), f"{which}({x!r}, {axis}): {got!r} != {want!r}"


def _shares_reference(a, b, greater):
    """maximum/minimum's VJP factors as first written: the winner 1, a tie 0.5 each, NaN to b."""
    win_a = (a > b) if greater else (a < b)
    tie = (a == b).astype(a.dtype) * 0.5
    return win_a.astype(a.dtype) + tie, (~win_a & (a != b)).astype(a.dtype) + tie


@settings(max_examples=150, deadline=None)
@given(data=st.data(), dtype=st.sampled_from(_HOST_DTYPES), greater=st.booleans(),
       shapes=st.sampled_from([((), ()), ((5,), (5,)), ((4, 1), (1, 3)), ((3,), (2, 3))]))
def test_winner_shares_stacked_and_into_a_buffer_are_the_reference_bit_for_bit(data, dtype, greater, shapes):
    from tinygrad_lite.ops.elementwise import _winner_shares
    a, b = _values(data, dtype, shapes[0]), _values(data, dtype, shapes[1])
    want = np.stack(_shares_reference(a, b, greater))
    stacked, got = _host_into(_winner_shares, a, b, greater)
    assert stacked.tobytes() == want.tobytes() and got.tobytes() == want.tobytes(), f"{a!r} {b!r}: {got!r}"
