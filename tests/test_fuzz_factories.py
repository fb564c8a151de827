"""Fuzzing of casts, tl.tensor from Python data, and the shape and range factories (see
tests/_fuzz_common.py for the oracle).
"""
import math

import numpy as np
from hypothesis import assume, given, strategies as st

import tinygrad_lite as tl

from _fuzz_common import _report_case_count  # noqa: F401 - autouse: reports this part's cases
from _fuzz_common import DTYPES, F32, F64, fuzz, arrays, run, backward_shapes


# ---------------------------------------------------------------- casts, construction, factories
CASTS = {"float": F32, "double": F64, "half": np.dtype("float16"), "int": np.dtype("int32"),
         "long": np.dtype("int64"), "bool": np.dtype("bool")}


@fuzz
@given(arr=arrays(lo=-300, hi=300), target=st.sampled_from(DTYPES + list(CASTS)), how=st.sampled_from(["astype", "to"]))
def test_casts(arr, target, how):
    assume(not (arr.dtype.kind == "f" and not np.isfinite(arr).all() and np.dtype(CASTS.get(target, target)).kind
                in "iu"))  # NaN/Inf to int is undefined (NumPy and PyTorch alike)
    x = tl.tensor(arr)
    dt = CASTS.get(target, target)
    fn = (lambda: getattr(x, target)()) if target in CASTS else (lambda: getattr(x, how)(target))
    got = run("astype", fn, lambda: arr.astype(dt), dtype=dt, must=True)
    if arr.dtype == F64 and dt.kind == "f":
        backward_shapes(lambda t: t.astype(dt), arr)
    assert got.numpy() is not arr or dt == arr.dtype


pylists = st.recursive(st.booleans() | st.integers(-5, 5) | st.floats(-5, 5) | st.just(math.nan),
                       lambda inner: st.lists(inner, min_size=0, max_size=3), max_leaves=8)


@fuzz
@given(data=pylists, dtype=st.none() | st.sampled_from(DTYPES))
def test_tensor_from_python_data(data, dtype):
    def ref():
        a = np.asarray(data)
        if a.dtype.kind not in "biuf":
            raise TypeError(a.dtype)
        if dtype is not None:
            return a.astype(dtype)
        return a.astype({"f": F32, "i": np.dtype("int64")}.get(a.dtype.kind, a.dtype))
    got = run("tensor", lambda: tl.tensor(data, dtype=dtype), ref, dtype=dtype)
    if got is not None and dtype is None:
        kinds = {type(v) for v in _leaves(data)}
        expect = F32 if float in kinds else np.dtype("int64") if int in kinds else np.dtype("bool") if kinds else F32
        assert got.dtype == expect, (data, got.dtype)


def _leaves(x):
    if isinstance(x, list):
        for v in x:
            yield from _leaves(v)
    else:
        yield x


size_args = st.lists(st.integers(-2, 4), max_size=4)


@fuzz
@given(name=st.sampled_from(["zeros", "ones", "empty", "rand", "randn", "full", "zeros_like", "ones_like",
                             "randn_like", "full_like"]),
       sizes=size_args, dtype=st.none() | st.sampled_from(DTYPES), fill=st.sampled_from([0, 2, -1.5, True]))
def test_shape_factories(name, sizes, dtype, fill):
    size = tuple(sizes)
    assume(not (name.startswith("rand") and dtype is not None and dtype.kind != "f"))  # PyTorch: floats only
    if name.endswith("_like"):
        assume(min(size, default=0) >= 0)
        base = tl.tensor(np.zeros(size, np.float64))
        args = (base, fill) if name == "full_like" else (base,)
        fn = lambda: getattr(tl, name)(*args, dtype=dtype)  # noqa: E731
        default = F64
    else:
        args = (size, fill) if name == "full" else size
        fn = lambda: getattr(tl, name)(*args, dtype=dtype)  # noqa: E731
        default = F32 if name != "full" else (np.dtype("bool") if isinstance(fill, bool) else
                                              np.dtype("int64") if isinstance(fill, int) else F32)
    dt = dtype or default

    def ref():
        if min(size, default=0) < 0:
            raise ValueError(size)
        if name.startswith("rand") or name == "empty":
            return None  # values are random or unspecified: checked below
        return np.full(size, fill if "full" in name else 1 if "ones" in name else 0).astype(dt)
    got = run(name.replace("_like", ""), fn, ref, dtype=dt, must=True)
    if got is not None and name.startswith("rand"):
        assert got.shape == size and got.dtype == dt and np.isfinite(got.numpy()).all()
        if name == "rand":
            assert ((got.numpy() >= 0) & (got.numpy() < 1)).all()


@fuzz
@given(name=st.sampled_from(["arange", "linspace", "eye", "randint"]), a=st.integers(-3, 6), b=st.integers(-3, 6),
       c=st.integers(-1, 3), flt=st.booleans(), dtype=st.none() | st.sampled_from([np.dtype("int64"), F32, F64]))
def test_range_factories(name, a, b, c, flt, dtype):
    """Negative sizes, a zero step and an empty randint range are rejected, naming the factory."""
    if name == "arange":
        args = (float(a), b, c) if flt else (a, b, c)
        default = F32 if flt else np.dtype("int64")
        ref = lambda: np.arange(*args).astype(dtype or default)  # noqa: E731
    elif name == "linspace":
        args, default = (a, b, c), F32
        ref = lambda: np.linspace(a, b, c).astype(dtype or default)  # noqa: E731
    elif name == "eye":
        args, default = (a, b), F32
        ref = lambda: np.eye(a, b).astype(dtype or default)  # noqa: E731
    else:
        args, default = (a, b, (c, 2)), np.dtype("int64")

        def ref():
            if a >= b or c < 0:
                raise ValueError("empty range or negative size")
    got = run(name, lambda: getattr(tl, name)(*args, dtype=dtype), ref, dtype=dtype or default, must=True,
              tol=(1e-6, 1e-6))
    if name == "randint" and got is not None:
        assert got.shape == (c, 2) and (got.numpy() >= a).all() and (got.numpy() < b).all()
