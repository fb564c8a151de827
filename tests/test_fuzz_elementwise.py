"""Fuzzing of the elementwise operations: unary, binary (broadcasting, dtype promotion, operators) and
with Python scalars (see tests/_fuzz_common.py for the oracle).
"""
import math

import numpy as np
from hypothesis import given, strategies as st

import tinygrad_lite as tl

from _fuzz_common import _report_case_count  # noqa: F401 - autouse: reports this part's cases
from _fuzz_common import F32, F64, fuzz, arrays, pair_shapes, promote_arrays, run, backward_shapes, float_result


# ---------------------------------------------------------------- elementwise
def _erf(x):
    return np.vectorize(math.erf, otypes=[F64])(x) if x.size else x.astype(F64)


UNARY = {  # name: (NumPy reference on float64 values, result dtype rule)
    "exp": (np.exp, float_result), "log": (np.log, float_result), "log1p": (np.log1p, float_result),
    "sqrt": (np.sqrt, float_result), "sin": (np.sin, float_result), "cos": (np.cos, float_result),
    "tanh": (np.tanh, float_result), "sigmoid": (lambda x: 1 / (1 + np.exp(-x)), float_result),
    "erf": (_erf, float_result), "rsqrt": (lambda x: 1 / np.sqrt(x), float_result),
    "relu": (lambda x: np.maximum(x, 0), lambda d: d),  # integers keep their dtype, bools are rejected (PyTorch)
    "abs": (np.abs, None), "neg": (np.negative, None), "square": (np.square, None),
}


@fuzz
@given(name=st.sampled_from(sorted(UNARY)), arr=arrays(), functional=st.booleans())
def test_unary(name, arr, functional):
    ref, rule = UNARY[name]
    x = tl.tensor(arr)
    dt = rule(arr.dtype) if rule else arr.dtype
    fn = (lambda: getattr(tl, name)(x)) if functional else (lambda: getattr(x, name)())
    if rule is None:  # computed in the input dtype; bool negation is rejected, as NumPy and PyTorch do
        run(name, fn, lambda: ref(arr), dtype=dt)
    elif name == "relu" and arr.dtype.kind != "f":
        run(name, fn, lambda: ref(arr) if arr.dtype.kind != "b" else (_ for _ in ()).throw(TypeError()), dtype=dt,
            must=True)
    else:
        run(name, fn, lambda: ref(arr.astype(F64)).astype(dt), dtype=dt, must=True)
    if arr.dtype.kind == "f":
        backward_shapes(lambda t: getattr(t, name)(), arr)


BINARY = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.true_divide, "pow": np.power,
          "maximum": np.maximum, "minimum": np.minimum}
COMPARE = {"eq": np.equal, "ne": np.not_equal, "lt": np.less, "le": np.less_equal, "gt": np.greater,
           "ge": np.greater_equal}
OPERATOR = {"add": "__add__", "sub": "__sub__", "mul": "__mul__", "div": "__truediv__", "pow": "__pow__",
            "eq": "__eq__", "ne": "__ne__", "lt": "__lt__", "le": "__le__", "gt": "__gt__", "ge": "__ge__"}


@st.composite
def binary_case(draw):
    sa, sb = draw(pair_shapes())
    a = draw(arrays(shape=sa, lo=-6, hi=6))
    b = draw(arrays(shape=sb, lo=-6, hi=6))
    return a, b


@fuzz
@given(name=st.sampled_from(sorted(BINARY) + sorted(COMPARE)), ab=binary_case(), form=st.sampled_from("mfo"))
def test_binary(name, ab, form):
    a, b = ab
    ta, tb = tl.tensor(a), tl.tensor(b)
    dt = promote_arrays(a, b)  # (PyTorch's rule: a 0-d operand does not widen a dimensioned one)
    if name == "div" and dt.kind != "f":
        dt = F32  # integer true division gives the default float dtype
    if form == "o" and name in OPERATOR:
        fn = lambda: getattr(ta, OPERATOR[name])(tb)  # noqa: E731
    elif form == "f" and hasattr(tl, name):
        fn = lambda: getattr(tl, name)(ta, tb)  # noqa: E731
    else:
        fn = lambda: getattr(ta, name)(tb)  # noqa: E731

    def ref():
        np.broadcast_shapes(a.shape, b.shape)
        if name == "pow" and dt.kind == "b":
            raise TypeError("PyTorch: pow is not implemented for bool")
        if name in COMPARE:
            return COMPARE[name](a.astype(dt), b.astype(dt))
        return BINARY[name](a.astype(dt), b.astype(dt))
    must = name not in ("sub", "pow") or dt.kind == "f"  # bool subtraction, int**negative: rejected as NumPy does
    run(name, fn, ref, dtype=np.dtype(bool) if name in COMPARE else dt, must=must)
    if name in BINARY and a.dtype.kind == "f" and b.dtype.kind == "f" and a.dtype == b.dtype:
        try:
            np.broadcast_shapes(a.shape, b.shape)
        except ValueError:
            return
        backward_shapes(lambda x, y: getattr(x, name)(y), a, b)


SCALARS = st.one_of(st.booleans(), st.integers(-5, 5), st.floats(-5, 5), st.sampled_from([np.nan, np.inf]))


@fuzz
@given(name=st.sampled_from(["add", "sub", "mul", "div", "pow", "eq", "lt", "ge"]), arr=arrays(lo=-6, hi=6),
       scalar=SCALARS, reflected=st.booleans())
def test_binary_with_python_scalar(name, arr, scalar, reflected):
    x = tl.tensor(arr)
    if isinstance(scalar, bool):
        dt = arr.dtype
    elif isinstance(scalar, int):
        dt = arr.dtype if arr.dtype.kind != "b" else np.dtype("int64")
    else:
        dt = arr.dtype if arr.dtype.kind == "f" else F32
    if name == "div" and dt.kind != "f":
        dt = F32
    op = OPERATOR[name]
    fn = (lambda: getattr(x, "__r" + op[2:])(scalar)) if reflected and name not in COMPARE else (
        lambda: getattr(x, op)(scalar))

    def ref():
        s = np.asarray(scalar, dtype=dt)
        lhs, rhs = (s, arr.astype(dt)) if reflected and name not in COMPARE else (arr.astype(dt), s)
        return (COMPARE.get(name) or BINARY[name])(lhs, rhs)
    run(name, fn, ref, dtype=np.dtype(bool) if name in COMPARE else dt, must=name not in ("sub", "pow"))
