"""Fuzzing of the reductions: sum/mean/var/std/amax/amin/prod/logsumexp over dims, and argmax/argmin/max/min
(see tests/_fuzz_common.py for the oracle).
"""
import numpy as np
from hypothesis import given, strategies as st

import tinygrad_lite as tl

from _fuzz_common import _report_case_count  # noqa: F401 - autouse: reports this part's cases
from _fuzz_common import F64, fuzz, arrays, run, backward_shapes, float_result, norm_dims, _lse


# ---------------------------------------------------------------- reductions
@st.composite
def dims_for(draw, nd):
    """None, an int or a tuple of dims; sometimes out of range or repeated (rejected, as PyTorch)."""
    n = max(nd, 1)
    one = st.integers(-n - 1, n)
    kind = draw(st.sampled_from(["none", "int", "tuple"]))
    if kind == "none":
        return None
    if kind == "int":
        return draw(one)
    return tuple(draw(st.lists(one, max_size=nd + 1)))



def _var(x, axis, keepdims):
    n = x.size if axis is None else int(np.prod([x.shape[a] for a in np.atleast_1d(axis)]))
    d = x - np.mean(x, axis=axis, keepdims=True) if x.size else x
    return np.sum(d * d, axis=axis, keepdims=keepdims) / (n - 1 if n > 1 else np.nan)


def _nonempty(x, axis):
    if x.size == 0 and (axis is None or any(x.shape[a] == 0 for a in np.atleast_1d(axis))):
        raise ValueError("empty reduction")
    return x


REDUCE = {  # name: (reference(x, axis, keepdims), dtype rule, float-only input)
    "sum": (lambda x, a, k: np.sum(x, axis=a, keepdims=k), lambda d: d if d.kind == "f" else np.dtype("int64")),
    "mean": (lambda x, a, k: np.mean(x, axis=a, keepdims=k) if x.size else np.sum(x, a, keepdims=k) * np.nan, None),
    "var": (_var, float_result), "std": (lambda x, a, k: np.sqrt(_var(x, a, k)), float_result),
    "amax": (lambda x, a, k: np.amax(_nonempty(x, a), axis=a, keepdims=k), None),
    "amin": (lambda x, a, k: np.amin(_nonempty(x, a), axis=a, keepdims=k), None),
    "prod": (lambda x, a, k: np.prod(x, axis=a, keepdims=k), lambda d: d if d.kind == "f" else np.dtype("int64")),
    "logsumexp": (_lse, float_result),
}


@fuzz
@given(data=st.data(), name=st.sampled_from(sorted(REDUCE)), arr=arrays(lo=-4, hi=4), keepdim=st.booleans())
def test_reductions(data, name, arr, keepdim):
    ref, rule = REDUCE[name]
    dim = data.draw(dims_for(arr.ndim))
    if name == "logsumexp" and dim is None:
        dim = data.draw(st.integers(-1, max(arr.ndim - 1, 0)))  # PyTorch's logsumexp needs a dim
    x = tl.tensor(arr)
    dt = rule(arr.dtype) if rule else arr.dtype
    if name == "mean" and arr.dtype.kind != "f":
        return run(name, lambda: x.mean(dim, keepdim), lambda: (_ for _ in ()).throw(TypeError()))
    functional = data.draw(st.booleans())
    fn = (lambda: getattr(tl, name)(x, dim, keepdim=keepdim)) if functional else (
        lambda: getattr(x, name)(dim, keepdim=keepdim))
    wide = arr.astype(F64) if dt.kind == "f" else arr.astype(dt)
    tol = (2e-2, 2e-2) if dt == np.dtype("float16") else (1e-4, 1e-5)
    # dim=() or [] reduces every dim, as PyTorch's reductions (NumPy's axis=() reduces none)
    every = dim.__class__ in (tuple, list) and not dim
    axis = lambda: None if every else norm_dims(dim, arr.ndim, unique=True)  # noqa: E731
    got = run(name, fn, lambda: np.asarray(ref(wide, axis(), keepdim)).astype(dt), dtype=dt,
              tol=tol, must=dt.kind == "f")
    if got is not None and arr.dtype == F64:
        backward_shapes(lambda t: getattr(t, name)(dim, keepdim=keepdim), arr)


@fuzz
@given(data=st.data(), name=st.sampled_from(["argmax", "argmin", "max", "min"]), arr=arrays(lo=-4, hi=4),
       keepdim=st.booleans())
def test_arg_reductions(data, name, arr, keepdim):
    n = max(arr.ndim, 1)
    dim = data.draw(st.none() | st.integers(-n - 1, n))
    x = tl.tensor(arr)
    npf = {"argmax": np.argmax, "argmin": np.argmin, "max": np.argmax, "min": np.argmin}[name]

    def ref():
        axis = norm_dims(dim, arr.ndim, single=True)
        _nonempty(arr, None if axis is None else (axis if arr.ndim else None))
        if axis is None:  # (argmax/argmin with keepdim keep every dim, of size 1, as PyTorch)
            idx = np.asarray(npf(arr), dtype=np.int64).reshape((1,) * arr.ndim if keepdim else ())
            return idx if name.startswith("arg") else (np.amax(arr) if name == "max" else np.amin(arr))
        if arr.ndim == 0:
            idx = np.zeros((), np.int64)
            return idx if name.startswith("arg") else (arr, idx)
        idx = npf(arr, axis=axis, keepdims=True).astype(np.int64)
        vals = np.take_along_axis(arr, idx, axis)
        if not keepdim:
            idx, vals = idx.squeeze(axis), vals.squeeze(axis)
        return idx if name.startswith("arg") else (vals, idx)
    got = run(name, lambda: getattr(x, name)(dim, keepdim), ref, aliases=("amax", "amin"))
    if got is not None and name in ("max", "min") and dim is not None:
        assert got.values.shape == got.indices.shape and got.indices.dtype == np.int64


_SPECIAL = st.sampled_from([0.0, -0.0, 1.5, -2.0, 3e38, -3e38, np.inf, -np.inf, np.nan])


@given(data=st.data(), rows=st.integers(1, 40), cols=st.integers(1, 40))
def test_softmax_shift_is_the_finite_maximum(data, rows, cols):
    """The shift logsumexp and log_softmax subtract: the maximum over the dims where it is finite, else 0 — with
    infinities, NaN and maxima whose sum overflows float32."""
    from tinygrad_lite.functional import _finite_max
    x = np.array(data.draw(st.lists(_SPECIAL, min_size=rows * cols, max_size=rows * cols)), np.float32)
    x = x.reshape(rows, cols)
    for dims in ((1,), (0,), (0, 1)):
        m = np.max(x, axis=dims, keepdims=True)
        want = np.where(np.isfinite(m), m, 0).astype(np.float32)
        got = _finite_max(x, dims)
        assert got.dtype == x.dtype and got.shape == want.shape and np.array_equal(got, want), (x, dims, got)
