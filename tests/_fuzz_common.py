"""Input fuzzing of the public operations (issue 8, item 1): what the parts tests/test_fuzz_<topic>.py share.

Hypothesis feeds random shapes (0-d, empty, up to 4-D), dtypes (bool, int32/64, float16/32/64), NaN/Inf values,
out-of-range dims/indices and wrong argument types (complex, object arrays, strings, None, ...) to the `tl.`
functions and Tensor methods of API.md. Every case must end in one of two ways:
- a result equal to NumPy's (shape, dtype by PyTorch's rules, values with NaN-aware comparison), or
- a TypeError/ValueError/IndexError/RuntimeError whose message names the operation.
Never a wrong shape, a bare NumPy/Python message, another exception type, a hang or a crash.
Run with `-s` to see how many cases ran (printed when each part finishes).
Bugs found this way are pinned in tests/test_fuzz_errors.py: fixed ones as regular tests (`FORMER_BUGS`), open ones
as strict xfails (`KNOWN_BUGS`, whose inputs are kept out of the fuzz domains).

Here: the case counter and its report, the strategies, the oracle (`run`: compare with NumPy or classify the
exception) and the dim helpers more than one part uses. A part imports `_report_case_count` for its autouse effect.
"""
import collections
import os
import warnings

import numpy as np
import pytest
from hypothesis import settings, strategies as st
from hypothesis.extra import numpy as hnp

import tinygrad_lite as tl

ALLOWED = (TypeError, ValueError, IndexError, RuntimeError)
CASES = collections.Counter()
DTYPES = [np.dtype(d) for d in ("bool", "int32", "int64", "float16", "float32", "float64")]
FLOATS = DTYPES[3:]
F32, F64 = np.dtype("float32"), np.dtype("float64")
SPECIAL = [np.nan, np.inf, -np.inf, 0.0, -0.0]
TOL = {"f2": (4e-3, 1e-3), "f4": (2e-5, 1e-6), "f8": (1e-11, 1e-13)}
SCALE = float(os.environ.get("TL_FUZZ_SCALE", "1"))  # e.g. TL_FUZZ_SCALE=20 for a long exploratory run


def examples(n):
    return settings(max_examples=max(1, int(n * SCALE)), deadline=None, database=None)


fuzz = examples(200)


@pytest.fixture(scope="module", autouse=True)
def _report_case_count(request):
    CASES.clear()  # the counter is shared by the parts: each reports its own cases
    yield
    print(f"\n[{request.module.__name__}] {sum(CASES.values())} fuzz cases run: "
          + ", ".join(f"{k}={v}" for k, v in sorted(CASES.items())))


# ---------------------------------------------------------------- strategies
shapes = hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4)
nonempty_shapes = hnp.array_shapes(min_dims=0, max_dims=4, min_side=1, max_side=4)


def elements(dt, lo=-20, hi=20, special=True):
    if dt.kind == "b":
        return st.booleans()
    if dt.kind in "iu":
        return st.integers(lo, hi)
    floats = st.floats(lo, hi, width=8 * dt.itemsize)
    return floats | st.sampled_from(SPECIAL) if special else floats


@st.composite
def arrays(draw, dtypes=DTYPES, shape=shapes, lo=-20, hi=20, special=True):
    dt = draw(st.sampled_from(dtypes))
    shp = draw(shape) if isinstance(shape, st.SearchStrategy) else shape
    return draw(hnp.arrays(dt, shp, elements=elements(dt, lo, hi, special)))


def pair_shapes():
    """Mostly mutually broadcastable shapes, sometimes two independent (possibly incompatible) ones."""
    bcast = hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, min_side=0, max_side=3)
    return bcast.map(lambda s: s.input_shapes) | st.tuples(shapes, shapes)


# ---------------------------------------------------------------- oracle
def promote(a, b):
    """PyTorch's rule for two tensors: the higher category (bool < int < float) wins, else NumPy's promotion."""
    cat = {"b": 0, "i": 1, "u": 1, "f": 2}
    ca, cb = cat[a.kind], cat[b.kind]
    return np.promote_types(a, b) if ca == cb else (a if ca > cb else b)


def promote_arrays(a, b):
    """PyTorch's rule for two tensors with their dimensions: a 0-d tensor beside a dimensioned one only decides
    the dtype when its category is higher (int32 + 0-d int64 is int32; int32 + 0-d float64 is float64)."""
    cat = {"b": 0, "i": 1, "u": 1, "f": 2}
    if (a.ndim == 0) != (b.ndim == 0) and a.dtype != b.dtype:
        zero, dim = (a, b) if a.ndim == 0 else (b, a)
        if cat[zero.dtype.kind] <= cat[dim.dtype.kind]:
            return dim.dtype
    return promote(a.dtype, b.dtype)


def check_error(exc, opname, aliases=()):
    assert isinstance(exc, ALLOWED), f"{opname} raised {type(exc).__name__} (not an allowed type): {exc}"
    msg = str(exc)
    assert any(n in msg for n in (opname,) + aliases), f"{opname}: message does not name the op: {msg!r}"


def compare(got, want, dtype=None, tol=None, opname=""):
    if isinstance(want, tuple):
        assert isinstance(got, tuple) and len(got) == len(want), f"expected {len(want)} results, got {got!r}"
        for g, w in zip(got, want):
            compare(g, w, None, tol, opname)
        return
    assert isinstance(got, tl.Tensor), f"expected a Tensor, got {type(got).__name__}"
    want = np.asarray(want)
    assert isinstance(got.numpy(), np.ndarray), f".numpy() is a {type(got.numpy()).__name__}, not an ndarray"
    assert got.shape == want.shape, f"shape {got.shape}, expected {want.shape}"
    if dtype is not None:
        assert got.dtype == dtype, f"dtype {got.dtype}, expected {dtype}"
    if got.dtype.kind == "f" or want.dtype.kind == "f":
        rtol, atol = tol or TOL.get(got.dtype.str[1:], TOL["f4"])
        np.testing.assert_allclose(got.numpy().astype(F64), want.astype(F64), rtol=rtol, atol=atol, equal_nan=True)
    else:
        np.testing.assert_array_equal(got.numpy(), want)


def run(opname, fn, ref=None, *, dtype=None, tol=None, must=False, aliases=()):
    """One fuzz case. `ref()` gives NumPy's answer, or raises when the input is invalid (then `fn` must raise).
    With `must`, valid input has to give a result; otherwise an allowed, named exception is also accepted."""
    CASES[opname] += 1
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref_exc = want = None
        if ref is not None:
            try:
                want = ref()
            except Exception as e:  # noqa: BLE001 - any NumPy rejection marks the input invalid
                ref_exc = e
        try:
            got = fn()
        except Exception as exc:  # noqa: BLE001 - the point is to classify every exception
            check_error(exc, opname, aliases)
            assert not (must and ref_exc is None), f"{opname} rejected valid input: {exc!r}"
            return None
    assert ref_exc is None, f"{opname} accepted invalid input (NumPy: {ref_exc!r}), returned {got!r}"
    if want is not None:
        compare(got, want, dtype, tol, opname)
    return got


def backward_shapes(make, *arrs):
    """Backward through a float result gives each input a gradient of its own shape and dtype."""
    xs = [tl.tensor(a, requires_grad=True) for a in arrs]
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = make(*xs)
        if isinstance(out, tuple):
            out = out[0]
        out.sum().backward()
    for x in xs:
        if x.grad is not None:  # e.g. an empty selection never reaches the input
            assert x.grad.shape == x.shape and x.grad.dtype == x.dtype, (x.grad.shape, x.shape)


def float_result(dt):
    return dt if dt.kind == "f" else F32


# ---------------------------------------------------------------- dims (reductions, shapes, indexing, softmax)
def norm_dims(dim, nd, single=False, unique=False):
    """NumPy axis for `dim`, raising IndexError for out-of-range dims (a 0-d tensor accepts 0 and -1) and, with
    `unique`, ValueError for a dim given twice."""
    if dim is None:
        return None
    n = max(nd, 1)
    ds = (dim,) if isinstance(dim, int) else dim
    for d in ds:
        if not -n <= d < n:
            raise IndexError(d)
    if unique and len({d % n for d in ds}) != len(ds):
        raise ValueError(f"repeated dim in {ds}")
    return () if nd == 0 else (ds[0] % n if single else tuple(d % n for d in ds))


def _lse(x, axis, keepdims):
    m = np.amax(x, axis=axis, keepdims=True) if x.size else np.zeros((1,) * x.ndim)
    m = np.where(np.isfinite(m), m, 0)
    out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis if axis is not None else tuple(range(x.ndim)))
