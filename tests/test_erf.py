"""erf's vectorized piecewise polynomials (tinygrad_lite/ops/erf_poly.py) against math.erf: within 1 ulp for float64,
the special values, odd symmetry bit for bit, monotonicity, the float32/float16 results rounded once, the into rule
and the few-element path bit for bit against the vectorized one, and torch.erf as an oracle."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_lite as tl
from tinygrad_lite.ops.erf_poly import _ERF_PIECES, _ERF_SCALAR_MAX, _erf_np, _erf_scalar
from tinygrad_lite.ops.unary import erf

_math_erf = np.frompyfunc(math.erf, 1, 1)
BREAKS = [0.75] + [p[0] for p in _ERF_PIECES]  # where the pieces meet (|x|)


def reference(x):
    return _math_erf(np.asarray(x, np.float64)).astype(np.float64)


def ulp_distance(a, b):
    """Ulps between float64 arrays of one sign pattern (erf and its reference agree in sign; -0 and 0 are 0 apart)."""
    ia = a.view(np.int64)
    ib = b.view(np.int64)
    ia = np.where(ia < 0, np.int64(-(2 ** 63)) - ia, ia)  # two's complement order for negative floats
    ib = np.where(ib < 0, np.int64(-(2 ** 63)) - ib, ib)
    return np.abs(ia - ib)


def _around(points, k):
    """k consecutive doubles each side of each point (and of its negative)."""
    out = []
    for p in points:
        for q in (p, -p):
            bits = np.float64(q).view(np.int64) + np.arange(-k, k + 1, dtype=np.int64)
            out.append(bits.view(np.float64))
    return np.concatenate(out)


def dense_grid():
    rng = np.random.default_rng(0)
    return np.concatenate([
        np.linspace(-6.5, 6.5, 600_001),
        rng.uniform(-6, 6, 200_000),
        np.exp(rng.uniform(np.log(5e-324), np.log(1e-3), 50_000)) * rng.choice([-1, 1], 50_000),  # tiny, subnormal
        np.exp(rng.uniform(np.log(6), np.log(1.7e308), 20_000)) * rng.choice([-1, 1], 20_000),  # large
        _around(BREAKS + [5.92, 1e-8, 2.2250738585072014e-308], 200),
        [0.0, -0.0, 5e-324, -5e-324, np.inf, -np.inf, 1.7976931348623157e308, -1.7976931348623157e308],
    ])


def test_float64_within_one_ulp_of_math_erf_and_mostly_equal():
    x = dense_grid()
    y = _erf_np(x)
    d = ulp_distance(y, reference(x))
    assert d.max() <= 1, f"{x[np.argmax(d)]!r}: {d.max()} ulp"
    assert (d == 0).mean() > 0.97  # (math.erf itself is not correctly rounded: most differences are its own)


@settings(max_examples=300, deadline=None)
@given(x=st.floats(allow_nan=False, allow_infinity=True, width=64))
def test_float64_within_one_ulp_hypothesis(x):
    y = _erf_np(np.array([x] * (_ERF_SCALAR_MAX + 1)))  # (past the few-element path)
    assert ulp_distance(y[:1], reference([x]))[0] <= 1, (x, y[0], math.erf(x))
    assert abs(y[0]) <= 1.0


def test_special_values():
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 5e-324, -5e-324] * 6)
    for arr in (x, x[:4], x[4:5]):  # (vectorized and few-element paths)
        y = _erf_np(arr)
        want = np.array([math.erf(v) if not math.isnan(v) else v for v in arr])
        np.testing.assert_array_equal(y, want)
        assert (np.signbit(y) == np.signbit(arr))[~np.isnan(arr)].all()  # erf(-0) is -0
    assert math.isnan(_erf_np(np.array([np.nan] * 40))[7])
    for dt in (np.float16, np.float32):
        y = _erf_np(np.array([0.0, -0.0, np.inf, -np.inf, np.nan] * 8, dt))
        assert y.dtype == dt and np.signbit(y[1]) and y[2] == 1 and y[3] == -1 and np.isnan(y[4])


def test_odd_symmetry_bit_for_bit_bounded_and_monotone():
    x = np.sort(np.abs(dense_grid()))
    y, ny = _erf_np(x), _erf_np(-x)
    assert (y.view(np.int64) ^ ny.view(np.int64) == np.int64(-(2 ** 63))).all()  # exactly the sign bit differs
    assert (np.abs(y) <= 1).all()
    assert (np.diff(y) >= 0).all(), x[1:][np.diff(y) < 0][:5]
    steps = _around(BREAKS, 2000)
    steps = np.sort(steps[steps > 0])
    assert (np.diff(_erf_np(steps)) >= 0).all()


def test_float32_rounds_math_erf_once():
    """Every float32 in the neighbourhood of each piece's ends and a dense sample of [-4, 4], bit patterns drawn
    uniformly (so every binade): the float32 result is float32(math.erf(x))."""
    rng = np.random.default_rng(1)
    near = [(np.float32(p).view(np.int32) + np.arange(-20_000, 20_000, dtype=np.int32)).view(np.float32)
            for p in BREAKS]
    four = int(np.float32(4).view(np.int32))
    sample = rng.integers(0, four, 400_000).astype(np.int32).view(np.float32)
    x = np.concatenate(near + [sample, -sample[:1000]])
    y = _erf_np(x)
    assert y.dtype == np.float32
    want = reference(x).astype(np.float32)
    assert (y == want).all(), x[y != want][:5]


def test_float16_every_value():
    x = np.arange(0, 1 << 16, dtype=np.uint16).view(np.float16)
    y = _erf_np(x)
    want = reference(x.astype(np.float64)).astype(np.float16)
    same = (y == want) | (np.isnan(y) & np.isnan(want))
    assert y.dtype == np.float16 and same.all(), x[~same][:5]


def test_few_elements_path_is_the_vectorized_one_bit_for_bit():
    x = dense_grid()[::7]
    y = _erf_np(x)
    few = np.array([_erf_scalar(float(v)) for v in x])
    assert (y.view(np.int64) == few.view(np.int64)).all()
    for n in range(1, _ERF_SCALAR_MAX + 3):
        part = x[1000:1000 + n]
        assert (_erf_np(part).view(np.int64) == y[1000:1000 + n].view(np.int64)).all()
    # a few elements past a piece among many (the rest done one at a time there), and every piece at once
    rng = np.random.default_rng(6)
    for far in ([2.5], [1.5, 2.5, 3.5, 5.0, 7.0, np.inf], rng.uniform(1.25, 7, 40), rng.uniform(2, 7, 3)):
        mixed = np.concatenate([rng.uniform(0.8, 1.2, 300), far, -np.asarray(far), rng.uniform(-0.7, 0.7, 50)])
        few = np.array([_erf_scalar(float(v)) for v in mixed])
        assert (_erf_np(mixed).view(np.int64) == few.view(np.int64)).all()


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("shape", [(), (3,), (5, 7), (64, 65)])
def test_into_writes_forward_bit_for_bit(dtype, shape):
    x = np.random.default_rng(2).uniform(-7, 7, shape).astype(dtype)
    want = erf.forward(x)
    buf = np.full_like(want, 7.0)
    assert erf.into(buf, x) is buf and buf.tobytes() == want.tobytes()
    if len(shape) == 2:  # a strided input and output, and the output being the input (a planned in-place buffer)
        buf_t = np.full(shape[::-1], 7.0, dtype).T
        erf.into(buf_t, x.T.copy().T)
        assert (buf_t == want).all()
        xt = x.T
        np.testing.assert_array_equal(erf.into(np.empty_like(xt), xt), want.T)
        same = x.copy()
        assert erf.into(same, same) is same and same.tobytes() == want.tobytes()


def test_large_arrays_in_blocks_agree_with_one_pass():
    """Past _ERF_BLOCK elements a contiguous array goes in blocks (a strided one in one pass): the same bits, also
    into the input itself."""
    from tinygrad_lite.ops.erf_poly import _ERF_BLOCK
    x = np.random.default_rng(5).normal(0, 2, (2 * _ERF_BLOCK + 5, 2))
    whole = _erf_np(x.T).T  # (strided: one pass)
    assert _erf_np(x).tobytes() == np.ascontiguousarray(whole).tobytes()
    same = x.copy()
    assert _erf_np(same, same) is same and same.tobytes() == np.ascontiguousarray(whole).tobytes()
    x32 = x.astype(np.float32)
    assert _erf_np(x32).tobytes() == np.ascontiguousarray(_erf_np(x32.T).T).tobytes()


def test_repeated_calls_reuse_work_arrays_and_agree():
    x = np.random.default_rng(3).normal(0, 2, 5000)
    first, first32 = _erf_np(x), _erf_np(x.astype(np.float32))
    for _ in range(3):
        assert _erf_np(x).tobytes() == first.tobytes()
        assert _erf_np(x.astype(np.float32)).tobytes() == first32.tobytes()


def test_tensor_erf_and_gelu_use_it():
    x = np.linspace(-5, 5, 101)
    np.testing.assert_array_equal(tl.tensor(x).erf().numpy(), _erf_np(x))
    t = tl.tensor(x, requires_grad=True)
    t.erf().sum().backward()
    np.testing.assert_allclose(t.grad.numpy(), 2 / math.sqrt(math.pi) * np.exp(-x * x), rtol=1e-14)


@pytest.mark.oracle
def test_matches_torch_erf(torch):
    rng = np.random.default_rng(4)
    x = np.concatenate([rng.uniform(-7, 7, 100_000), np.linspace(-6, 6, 10_001), [0.0, -0.0, np.inf, -np.inf]])
    y64 = _erf_np(x)
    t64 = torch.erf(torch.from_numpy(x)).numpy()
    assert ulp_distance(y64, t64).max() <= 2
    x32 = x.astype(np.float32)
    y32 = _erf_np(x32)
    t32 = torch.erf(torch.from_numpy(x32)).numpy()
    np.testing.assert_allclose(y32, t32, rtol=3e-7, atol=1e-38)
    assert np.isnan(_erf_np(np.array([np.nan] * 9))).all() and torch.erf(torch.tensor([float("nan")])).isnan().all()


def test_tables_are_what_the_fit_script_derives():
    """benchmarks/erf_fit.py regenerates the coefficient literals exactly (it needs mpmath)."""
    pytest.importorskip("mpmath")
    from benchmarks import erf_fit
    from tinygrad_lite.ops.erf_poly import _ERF_SMALL
    assert tuple(erf_fit.s_poly()) == _ERF_SMALL
    derived = [(hi, c, *erf_fit.mid_poly(lo, hi, c, d)) for lo, hi, c, d in erf_fit.MID]
    derived += [(hi, c, None, erf_fit.tail_poly(lo, hi, c, d)) for lo, hi, c, d in erf_fit.TAIL]
    assert [(e, c, a, tuple(co)) for e, c, a, co in derived] == list(_ERF_PIECES)
