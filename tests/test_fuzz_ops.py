"""Input fuzzing of the public operations (issue 8, item 1).

Hypothesis feeds random shapes (0-d, empty, up to 4-D), dtypes (bool, int32/64, float16/32/64), NaN/Inf values,
out-of-range dims/indices and wrong argument types (complex, object arrays, strings, None, ...) to the `tl.`
functions and Tensor methods of API.md. Every case must end in one of two ways:
- a result equal to NumPy's (shape, dtype by PyTorch's rules, values with NaN-aware comparison), or
- a TypeError/ValueError/IndexError/RuntimeError whose message names the operation.
Never a wrong shape, a bare NumPy/Python message, another exception type, a hang or a crash.
Run with `-s` to see how many cases ran (printed when the module finishes).
Bugs found this way are pinned at the end: fixed ones as regular tests (`FORMER_BUGS`), open ones as strict xfails
(`KNOWN_BUGS`, whose inputs are kept out of the fuzz domains).
"""
import collections
import math
import os
import warnings

import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import tinygrad_lite as tl
import tinygrad_lite.functional as F

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
def _report_case_count():
    yield
    print(f"\n[test_fuzz_ops] {sum(CASES.values())} fuzz cases run: "
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
    dt = promote(a.dtype, b.dtype)
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
    axis = lambda: norm_dims(dim, arr.ndim, unique=True)  # noqa: E731
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
        if axis is None:
            idx = np.asarray(npf(arr), dtype=np.int64)
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


# ---------------------------------------------------------------- shape operations
def _np_reshape(a, shape):
    if shape.count(-1) > 1 or any(s < -1 for s in shape):
        raise ValueError(shape)
    return a.reshape(shape)


def _np_squeeze(a, dim):
    axes = norm_dims(dim, a.ndim, unique=True)
    return a.reshape(tuple(s for i, s in enumerate(a.shape) if not (s == 1 and (axes is None or i in axes))))


def _np_unsqueeze(a, d):
    if not -a.ndim - 1 <= d <= a.ndim:
        raise IndexError(d)
    return np.expand_dims(a, d % (a.ndim + 1))


def _np_flatten(a, s, e):
    if a.ndim == 0:
        norm_dims((s, e), 0)
        return a.reshape(1)
    s, e = norm_dims((s, e), a.ndim)
    if s > e:
        raise ValueError
    return a.reshape(a.shape[:s] + (-1,) + a.shape[e + 1:]) if a.size else a.reshape(
        a.shape[:s] + (int(np.prod(a.shape[s:e + 1])),) + a.shape[e + 1:])


def _np_expand(a, sizes):
    lead = len(sizes) - a.ndim
    if lead < 0 or any(s == -1 for s in sizes[:lead]):
        raise ValueError(sizes)
    target = tuple(a.shape[i - lead] if s == -1 and i >= lead else s for i, s in enumerate(sizes))
    return np.broadcast_to(a, target)


def _np_flip(a, dims):
    ds = norm_dims(dims, a.ndim, unique=True)
    return np.flip(a, ds) if ds else a


def _np_repeat(a, reps):
    if len(reps) < a.ndim or any(r < 0 for r in reps):
        raise ValueError(reps)
    return np.tile(a.reshape((1,) * (len(reps) - a.ndim) + a.shape), reps)


def _np_split(a, size, d):
    ax = norm_dims(d, a.ndim, single=True)
    if a.ndim == 0 or size <= 0:
        raise ValueError
    n = a.shape[ax]
    cuts = list(range(size, n, size))
    return tuple(np.split(a, cuts, axis=ax))


def _np_chunk(a, chunks, d):
    ax = norm_dims(d, a.ndim, single=True)
    if a.ndim == 0 or chunks <= 0:
        raise ValueError
    return _np_split(a, max(-(-a.shape[ax] // chunks), 1), d)


@st.composite
def shape_case(draw):
    arr = draw(arrays(dtypes=[np.dtype("int64"), F32, F64], special=False))
    nd, n = arr.ndim, max(arr.ndim, 1)
    d = st.integers(-n - 1, n)
    name = draw(st.sampled_from(["reshape", "view", "permute", "transpose", "flatten", "squeeze", "unsqueeze",
                                 "expand", "flip", "repeat", "split", "chunk", "T", "mT"]))
    if name in ("reshape", "view"):
        sizes = draw(st.lists(st.integers(-2, 6), max_size=4))
        if draw(st.booleans()) and arr.size:  # mostly a valid target: a factorisation, maybe with one -1
            sizes = list(draw(st.permutations(list(arr.shape) or [1])))
            if sizes and draw(st.booleans()):
                sizes[draw(st.integers(0, len(sizes) - 1))] = -1
        return arr, name, (tuple(sizes),), lambda: _np_reshape(arr, tuple(sizes))
    if name == "permute":
        perm = draw(st.permutations(range(nd))) if draw(st.booleans()) else draw(st.lists(d, max_size=nd + 1))
        perm = tuple(perm)

        def ref():
            if len(perm) != nd or sorted(norm_dims(perm, nd)) != list(range(nd)):
                raise ValueError(perm)
            return np.transpose(arr, norm_dims(perm, nd) or None)
        return arr, name, perm, ref
    if name == "transpose":
        d0, d1 = draw(d), draw(d)
        return arr, name, (d0, d1), lambda: np.swapaxes(arr, *norm_dims((d0, d1), nd)) if nd else (
            norm_dims((d0, d1), nd), arr)[1]
    if name in ("T", "mT"):
        return arr, name, None, lambda: arr.T if name == "T" else np.swapaxes(arr, -1, -2)
    if name == "flatten":
        s, e = draw(d), draw(d)
        return arr, name, (s, e), lambda: _np_flatten(arr, s, e)
    if name == "squeeze":
        dim = draw(st.none() | d)
        return arr, name, (dim,), lambda: _np_squeeze(arr, dim)
    if name == "unsqueeze":
        k = draw(st.integers(-nd - 2, nd + 1))
        return arr, name, (k,), lambda: _np_unsqueeze(arr, k)
    if name == "expand":
        sizes = tuple(draw(st.lists(st.sampled_from([-1, 0, 1, 2, 3]), min_size=max(nd - 1, 0), max_size=nd + 2)))
        return arr, name, sizes, lambda: _np_expand(arr, sizes)
    if name == "flip":
        dims = tuple(draw(st.lists(d, max_size=nd + 1)))
        return arr, name, (dims,), lambda: _np_flip(arr, dims)
    if name == "repeat":
        reps = tuple(draw(st.lists(st.integers(0, 3), min_size=max(nd - 1, 0), max_size=nd + 2)))
        return arr, name, reps, lambda: _np_repeat(arr, reps)
    size = draw(st.integers(0, 4))
    dim = draw(d)
    ref = _np_split if name == "split" else _np_chunk
    return arr, name, (size, dim), lambda: ref(arr, size, dim)


@examples(400)
@given(case=shape_case())
def test_shape_operations(case):
    arr, name, args, ref = case
    x = tl.tensor(arr)
    fn = (lambda: getattr(x, name)) if args is None else (lambda: getattr(x, name)(*args))
    aliases = {"view": ("reshape",), "T": ("permute",), "mT": ("transpose",)}.get(name, ())
    got = run(name, fn, ref, dtype=arr.dtype, aliases=aliases)
    if got is not None and arr.dtype == F64 and name not in ("split", "chunk"):
        backward_shapes(lambda t: getattr(t, name)(*args) if args is not None else getattr(t, name), arr)


@st.composite
def cat_case(draw):
    base = list(draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3)))
    k = draw(st.integers(1, 3))
    n = max(len(base), 1)
    dim = draw(st.integers(-n - 2, n + 1))
    arrs = []
    for _ in range(k):
        shape = list(base)
        if shape and draw(st.booleans()):
            shape[draw(st.integers(0, len(shape) - 1))] = draw(st.integers(0, 3))
        if draw(st.integers(0, 9)) == 0:
            shape = shape[1:]
        arrs.append(draw(arrays(dtypes=DTYPES, shape=tuple(shape), special=False)))
    return arrs, dim


@fuzz
@given(case=cat_case(), name=st.sampled_from(["cat", "stack"]))
def test_cat_and_stack(case, name):
    arrs, dim = case
    ts = [tl.tensor(a) for a in arrs]
    dt = arrs[0].dtype
    for a in arrs[1:]:
        dt = promote(dt, a.dtype)

    def ref():
        if name == "stack":
            if len({a.shape for a in arrs}) > 1:
                raise ValueError("shapes")
            return np.stack([a.astype(dt) for a in arrs], norm_dims(dim, arrs[0].ndim + 1, single=True))
        if arrs[0].ndim == 0:
            raise ValueError("0-d")
        return np.concatenate([a.astype(dt) for a in arrs], norm_dims(dim, arrs[0].ndim, single=True))
    stack_dt = dt if name == "cat" or len({a.dtype for a in arrs}) == 1 else None  # stack: see report
    run(name, lambda: getattr(tl, name)(ts, dim), ref, dtype=stack_dt)


# ---------------------------------------------------------------- indexing
@st.composite
def index_case(draw):
    arr = draw(arrays(dtypes=[np.dtype("int32"), F32, F64], shape=hnp.array_shapes(min_dims=1, max_dims=3,
                                                                                    min_side=0, max_side=4)))
    items, used_ellipsis = [], False
    for axis in range(draw(st.integers(0, arr.ndim + 1))):
        size = arr.shape[axis] if axis < arr.ndim else 1
        kind = draw(st.sampled_from(["int", "slice", "slice", "none", "ellipsis", "array", "tensor", "mask"]))
        if kind == "int":
            items.append(draw(st.integers(-size - 1, size)))
        elif kind == "slice":
            b = st.none() | st.integers(-size - 2, size + 2)
            items.append(slice(draw(b), draw(b), draw(st.none() | st.sampled_from([-2, -1, 1, 2, 3]))))
        elif kind == "none":
            items.append(None)
        elif kind == "ellipsis" and not used_ellipsis:
            used_ellipsis = True
            items.append(Ellipsis)
        elif kind in ("array", "tensor"):
            idx = draw(hnp.arrays(np.int64, draw(st.integers(0, 3)), elements=st.integers(-size - 1, size)))
            items.append(idx if kind == "array" else tl.tensor(idx))
        elif kind == "mask":
            n = size if draw(st.integers(0, 4)) else size + 1
            items.append(draw(hnp.arrays(np.bool_, n)))
    return arr, (items[0] if len(items) == 1 and draw(st.booleans()) else tuple(items))


@examples(400)
@given(case=index_case())
def test_getitem(case):
    arr, idx = case
    np_idx = tuple(i.numpy() if isinstance(i, tl.Tensor) else i for i in idx) if isinstance(idx, tuple) else (
        idx.numpy() if isinstance(idx, tl.Tensor) else idx)
    x = tl.tensor(arr)
    got = run("getitem", lambda: x[idx], lambda: np.asarray(arr[np_idx]), dtype=arr.dtype)
    if got is not None and arr.dtype == F64:
        backward_shapes(lambda t: t[idx], arr)


@st.composite
def gather_case(draw):
    arr = draw(arrays(dtypes=[np.dtype("int64"), F32, F64], special=False,
                      shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)))
    n = arr.ndim
    dim = draw(st.integers(-n - 1, n))
    d = dim % n if -n <= dim < n else 0
    ishape = tuple(draw(st.integers(0, s + (1 if i == d else 0))) for i, s in enumerate(arr.shape))
    if draw(st.integers(0, 5)) == 0:
        ishape = ishape[1:]  # wrong rank
    hi = arr.shape[d] - (0 if draw(st.integers(0, 3)) == 0 else 1)
    index = draw(hnp.arrays(np.int64, ishape, elements=st.integers(0, max(hi, 0))))
    return arr, dim, index


@fuzz
@given(case=gather_case(), as_tensor=st.booleans())
def test_gather(case, as_tensor):
    arr, dim, index = case

    def ref():
        d = norm_dims(dim, arr.ndim, single=True)
        if index.ndim != arr.ndim or any(index.shape[i] > arr.shape[i] for i in range(arr.ndim) if i != d):
            raise ValueError("index shape")
        if index.size and index.max() >= arr.shape[d]:
            raise IndexError("out of range")
        return np.take_along_axis(arr[tuple(slice(0, s) for s in index.shape[:d]) + (slice(None),) + tuple(
            slice(0, s) for s in index.shape[d + 1:])], index, d)
    x = tl.tensor(arr)
    got = run("gather", lambda: x.gather(dim, tl.tensor(index) if as_tensor else index), ref, dtype=arr.dtype)
    if got is not None and arr.dtype == F64:
        backward_shapes(lambda t: t.gather(dim, index), arr)


@fuzz
@given(arr=arrays(dtypes=[np.dtype("int64"), F32, F64], special=False,
                  shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=4)), data=st.data())
def test_index_select(arr, data):
    n = arr.ndim
    dim = data.draw(st.integers(-n - 1, n))
    size = arr.shape[dim % n] if -n <= dim < n else 1
    index = data.draw(hnp.arrays(np.int64, data.draw(st.integers(0, 4)), elements=st.integers(-1, size)))

    def ref():
        d = norm_dims(dim, n, single=True)
        if index.size and index.min() < 0:
            raise IndexError("PyTorch rejects negative indices")
        return np.take(arr, index, axis=d, mode="raise")
    x = tl.tensor(arr)
    got = run("index_select", lambda: x.index_select(dim, tl.tensor(index)), ref, dtype=arr.dtype)
    if got is not None and arr.dtype == F64:
        backward_shapes(lambda t: t.index_select(dim, tl.tensor(index)), arr)


@fuzz
@given(ab=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, min_side=0, max_side=3),
       dt=st.sampled_from(DTYPES), value=st.sampled_from([0, 1.5, -np.inf, np.nan, True]), data=st.data())
def test_masked_fill(ab, dt, value, data):
    mshape, xshape = ab.input_shapes
    if data.draw(st.integers(0, 4)) == 0:
        mshape = data.draw(shapes)  # often not broadcastable to the tensor's shape
    arr = data.draw(hnp.arrays(dt, xshape, elements=elements(dt, -5, 5)))
    mask = data.draw(hnp.arrays(np.bool_, mshape))

    def ref():
        v = np.asarray(value)
        if np.broadcast_shapes(mshape, xshape) != xshape:
            raise ValueError("the mask does not broadcast to the tensor's shape")
        if dt.kind != "f" and not np.isfinite(v):
            raise ValueError("cannot store")
        return np.where(mask, v.astype(dt), arr)
    assume(not (dt.kind != "f" and not np.isfinite(value)))  # NaN into an int tensor: numpy's cast is undefined
    x = tl.tensor(arr)
    got = run("masked_fill", lambda: x.masked_fill(tl.tensor(mask), value), ref, dtype=dt, must=True)
    if dt == F64 and got is not None:
        backward_shapes(lambda t: t.masked_fill(tl.tensor(mask), value), arr)


# ---------------------------------------------------------------- softmax, padding, windows, matmul
def _softmax_ref(x, d, log):
    if log:  # x - logsumexp(x): at +inf this is -inf for the finite entries (PyTorch gives NaN for the whole row)
        return x - _lse(x, d, True)
    m = np.amax(x, axis=d, keepdims=True) if x.size else 0.0
    z = x - m
    s = np.sum(np.exp(z), axis=d, keepdims=True)
    return z - np.log(s) if log else np.exp(z) / s


@fuzz
@given(arr=arrays(dtypes=FLOATS + [np.dtype("int64")], lo=-50, hi=50), data=st.data(), log=st.booleans(),
       functional=st.booleans())
def test_softmax(arr, data, log, functional):
    n = max(arr.ndim, 1)
    dim = data.draw(st.integers(-n - 1, n))
    name = "log_softmax" if log else "softmax"
    x = tl.tensor(arr)
    dt = float_result(arr.dtype)
    fn = (lambda: getattr(F, name)(x, dim)) if functional else (lambda: getattr(x, name)(dim))
    tol = (1e-2, 1e-2) if dt == np.dtype("float16") else (1e-4, 1e-6)
    got = run(name, fn, lambda: _softmax_ref(arr.astype(F64), norm_dims(dim, arr.ndim, True), log).astype(dt),
              dtype=dt, tol=tol, must=True)
    if got is not None and arr.dtype == F64:
        backward_shapes(lambda t: getattr(t, name)(dim), arr)


@fuzz
@given(arr=arrays(dtypes=DTYPES, special=False, shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0,
                                                                     max_side=4)),
       pad=st.lists(st.integers(-1, 4), max_size=8), mode=st.sampled_from(["constant", "reflect", "replicate",
                                                                            "circular", "wrap"]),
       value=st.sampled_from([0, 2, 1.5]))
def test_pad(arr, pad, mode, value):
    pad = tuple(pad)

    def ref():
        if len(pad) % 2 or len(pad) // 2 > arr.ndim or min(pad, default=0) < 0:
            raise ValueError(pad)
        width = [(0, 0)] * arr.ndim
        for i in range(len(pad) // 2):
            width[arr.ndim - 1 - i] = (pad[2 * i], pad[2 * i + 1])
        if arr.ndim == 0:
            return arr
        for (b, a), s in zip(width, arr.shape):
            if (b or a) and mode == "reflect" and max(b, a) >= s or mode == "circular" and max(b, a) > s:
                raise ValueError("too much padding")
        if mode == "constant":
            return np.pad(arr, width, constant_values=np.asarray(value).astype(arr.dtype))
        return np.pad(arr, width, mode={"reflect": "reflect", "replicate": "edge", "circular": "wrap"}[mode])
    x = tl.tensor(arr)
    got = run("pad", lambda: F.pad(x, pad, mode=mode, value=value), ref, dtype=arr.dtype)
    if got is not None and arr.dtype == F64:
        backward_shapes(lambda t: F.pad(t, pad, mode=mode, value=value), arr)


def _unfold_ref(x, k, d, p, s):
    if x.ndim == 3:  # unbatched (C, H, W) -> (C*kh*kw, L), as PyTorch
        return _unfold_ref(x[None], k, d, p, s)[0]
    n, c, h, w = x.shape
    oh, ow = (h + 2 * p[0] - d[0] * (k[0] - 1) - 1) // s[0] + 1, (w + 2 * p[1] - d[1] * (k[1] - 1) - 1) // s[1] + 1
    if x.ndim != 4 or oh <= 0 or ow <= 0:
        raise ValueError("does not fit")
    xp = np.pad(x, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])))
    out = np.zeros((n, c, k[0], k[1], oh, ow), x.dtype)
    for i in range(k[0]):
        for j in range(k[1]):
            out[:, :, i, j] = xp[:, :, i * d[0]:i * d[0] + s[0] * (oh - 1) + 1:s[0],
                                 j * d[1]:j * d[1] + s[1] * (ow - 1) + 1:s[1]]
    return out.reshape(n, c * k[0] * k[1], oh * ow)


def _fold_ref(cols, size, k, d, p, s):
    n, ckk, L = cols.shape
    oh, ow = ((size[i] + 2 * p[i] - d[i] * (k[i] - 1) - 1) // s[i] + 1 for i in range(2))
    if ckk % (k[0] * k[1]) or oh * ow != L or oh <= 0 or ow <= 0:
        raise ValueError("mismatch")
    c = ckk // (k[0] * k[1])
    cols = cols.reshape(n, c, k[0], k[1], oh, ow)
    out = np.zeros((n, c, size[0] + 2 * p[0], size[1] + 2 * p[1]), cols.dtype)
    for i in range(k[0]):
        for j in range(k[1]):
            for y in range(oh):
                for xx in range(ow):
                    out[:, :, i * d[0] + y * s[0], j * d[1] + xx * s[1]] += cols[:, :, i, j, y, xx]
    return out[:, :, p[0]:p[0] + size[0], p[1]:p[1] + size[1]]


pos_pairs = st.tuples(st.integers(1, 3), st.integers(1, 3))


@fuzz
@given(shape=hnp.array_shapes(min_dims=3, max_dims=5, min_side=1, max_side=5), k=pos_pairs, d=pos_pairs,
       p=st.tuples(st.integers(0, 2), st.integers(0, 2)), s=pos_pairs, dt=st.sampled_from([F32, F64]),
       seed=st.integers(0, 2 ** 16), fold=st.booleans())
def test_unfold_and_fold(shape, k, d, p, s, dt, seed, fold):
    rng = np.random.default_rng(seed)
    if fold:
        size = shape[-2:]
        oh, ow = ((size[i] + 2 * p[i] - d[i] * (k[i] - 1) - 1) // s[i] + 1 for i in range(2))
        cshape = (shape[0], shape[1] * k[0] * k[1], max(oh, 0) * max(ow, 0) + (seed % 7 == 0))
        cols = rng.standard_normal(cshape).astype(dt)
        got = run("fold", lambda: F.fold(tl.tensor(cols), size, k, d, p, s), lambda: _fold_ref(cols, size, k, d, p, s),
                  dtype=dt)
        make = lambda t: F.fold(t, size, k, d, p, s)  # noqa: E731
        arr = cols
    else:
        arr = rng.standard_normal(shape).astype(dt)
        got = run("unfold", lambda: F.unfold(tl.tensor(arr), k, d, p, s), lambda: _unfold_ref(arr, k, d, p, s),
                  dtype=dt)
        make = lambda t: F.unfold(t, k, d, p, s)  # noqa: E731
    if got is not None and dt == F64:
        backward_shapes(make, arr)


@fuzz
@given(data=st.data(), da=st.sampled_from(DTYPES), db=st.sampled_from(DTYPES))
def test_matmul(data, da, db):
    m, k, n, k2 = (data.draw(st.integers(0, 3)) for _ in range(4))
    k2 = k if data.draw(st.integers(0, 4)) else k2
    batch = data.draw(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=2, max_side=3)).input_shapes
    sa = (batch[0] + (m, k))[-data.draw(st.integers(0, 4)):] if data.draw(st.booleans()) else (k,)
    sb = (batch[1] + (k2, n))[-data.draw(st.integers(0, 4)):] if data.draw(st.booleans()) else (k2,)
    a = data.draw(hnp.arrays(da, sa, elements=elements(da, -3, 3, special=False)))
    b = data.draw(hnp.arrays(db, sb, elements=elements(db, -3, 3, special=False)))
    assume(not (a.ndim == 0 or b.ndim == 0) or data.draw(st.booleans()))
    dt = promote(da, db)
    form = data.draw(st.sampled_from(["@", "tl", "method"]))
    ta, tb = tl.tensor(a), tl.tensor(b)
    fn = {"@": lambda: ta @ tb, "tl": lambda: tl.matmul(ta, tb), "method": lambda: ta.matmul(tb)}[form]
    tol = (2e-2, 2e-2) if dt == np.dtype("float16") else None
    got = run("matmul", fn, lambda: np.matmul(a.astype(dt), b.astype(dt)), dtype=dt, tol=tol, must=dt.kind == "f")
    if got is not None and da == db == F64:
        backward_shapes(lambda x, y: x @ y, a, b)


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


# ---------------------------------------------------------------- wrong argument types
BAD_VALUES = {"None": None, "str": "a", "complex": 1j, "object": object(), "dict": {"a": 1}, "list_str": [1, "a"],
              "np_str": np.array(["x"]), "np_obj": np.array([1, None], dtype=object),
              "np_complex": np.ones(2, np.complex64), "func": len, "tuple_none": (1, None)}


def _x():
    return tl.tensor(np.ones((2, 3), np.float32))


WRONG_TYPE_OPS = {  # name: (call with the bad value, bad values that are fine to accept, bad values to skip)
    "add": (lambda b: _x() + b, set(), set()), "sub": (lambda b: b - _x(), set(), set()),
    "mul": (lambda b: _x() * b, set(), set()), "div": (lambda b: _x() / b, set(), set()),
    "pow": (lambda b: _x() ** b, set(), set()), "matmul": (lambda b: _x() @ b, set(), set()),
    "maximum": (lambda b: tl.maximum(_x(), b), set(), set()), "lt": (lambda b: _x() < b, set(), set()),
    "eq": (lambda b: _x().eq(b), {"None"}, set()), "tensor": (lambda b: tl.tensor(b), set(), set()),
    "reshape": (lambda b: _x().reshape(b), set(), set()), "permute": (lambda b: _x().permute(b), set(), set()),
    "transpose": (lambda b: _x().transpose(b, 0), set(), set()),
    "unsqueeze": (lambda b: _x().unsqueeze(b), set(), set()), "flatten": (lambda b: _x().flatten(b), set(), set()),
    "expand": (lambda b: _x().expand(b, 3), set(), set()),
    "sum": (lambda b: _x().sum(b), {"None"}, set()), "amax": (lambda b: _x().amax(b), {"None"}, set()),
    "logsumexp": (lambda b: _x().logsumexp(b), {"None"}, set()),
    "squeeze": (lambda b: _x().squeeze(b), {"None"}, set()),
    "flip": (lambda b: _x().flip(b), set(), set()), "repeat": (lambda b: _x().repeat(b), set(), set()),
    "split": (lambda b: _x().split(b), set(), set()), "chunk": (lambda b: _x().chunk(b), set(), set()),
    "cat": (lambda b: tl.cat(b), set(), set()), "stack": (lambda b: tl.stack([_x(), b]), set(), set()),
    "clamp": (lambda b: _x().clamp(b), set(), set()), "clamp ": (lambda b: _x().clamp(max=b), {"None"}, set()),
    "pad": (lambda b: F.pad(_x(), b), set(), set()), "pad ": (lambda b: F.pad(_x(), (1, 1), mode=b), set(), set()),
    "unfold": (lambda b: F.unfold(tl.ones(1, 1, 4, 4), b), set(), set()),
    "fold": (lambda b: F.fold(tl.ones(1, 4, 4), (3, 3), b), set(), set()),
    "zeros": (lambda b: tl.zeros(b), set(), set()), "zeros_like": (lambda b: tl.zeros_like(b), set(), set()),
    "full": (lambda b: tl.full((2,), b), set(), set()), "eye": (lambda b: tl.eye(b), set(), set()),
    "arange": (lambda b: tl.arange(b), set(), set()), "linspace": (lambda b: tl.linspace(0, 1, b), set(), set()),
    "randint": (lambda b: tl.randint(0, b, (2,)), set(), set()),
    "backward": (lambda b: (_x().requires_grad_() * 2).backward(b), set(), set()),
    "argmax": (lambda b: _x().argmax(b), {"None"}, set()), "max": (lambda b: _x().max(b), {"None"}, set()),
    "softmax": (lambda b: _x().softmax(b), {"None"}, set()),
    "log_softmax": (lambda b: F.log_softmax(_x(), b), {"None"}, set()),
    "gather": (lambda b: _x().gather(1, b), set(), set()),
    "index_select": (lambda b: _x().index_select(0, b), set(), set()),
    "masked_fill": (lambda b: _x().masked_fill(b, 0.0), set(), set()),
    "masked_fill ": (lambda b: _x().masked_fill(tl.tensor([True, False, True]), b), set(), set()),
    "getitem": (lambda b: _x()[b], {"None", "tuple_none"}, set()),
    "astype": (lambda b: _x().astype(b), set(), set()), "where": (lambda b: tl.where(b, _x(), _x()), set(), set()),
    "requires_grad_": (lambda b: tl.tensor([1.0]).requires_grad_(b), set(BAD_VALUES), {"np_str", "np_obj",
                                                                                        "np_complex"}),
}


@examples(800)
@given(op=st.sampled_from(sorted(WRONG_TYPE_OPS)), bad=st.sampled_from(sorted(BAD_VALUES)))
def test_wrong_argument_types(op, bad):
    fn, may_accept, skip = WRONG_TYPE_OPS[op]
    assume(bad not in skip)
    name = op.strip()
    aliases = ("tensor",) if name in ("where", "add", "sub") else ()  # conversion of the operand names tensor()
    got = run(name, lambda: fn(BAD_VALUES[bad]), aliases=aliases)
    assert got is None or bad in may_accept, f"{op} accepted {bad}: {got!r}"


# ---------------------------------------------------------------- pinned bugs: fixed (regression) and open (xfail)
def named_error(opname, fn):
    """fn must raise an allowed exception whose message names `opname`."""
    def check():
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                result = fn()
            except Exception as exc:  # noqa: BLE001
                check_error(exc, opname)
                return
        raise AssertionError(f"{opname} accepted it and returned {result!r}")
    return check


def result_or_named_error(opname, fn, check_result):
    def check():
        try:
            result = fn()
        except Exception as exc:  # noqa: BLE001
            check_error(exc, opname)
            return
        check_result(result)
    return check


def is_ndarray(fn):
    return lambda: np.testing.assert_(isinstance(fn().numpy(), np.ndarray), "0-d result's .numpy() is not an ndarray")


def has_dtype(fn, dt):
    return lambda: np.testing.assert_equal(fn().dtype, np.dtype(dt))


def equals(fn, want, dt=None):
    def check():
        got = fn()
        np.testing.assert_array_equal(got.numpy(), np.asarray(want))
        assert got.shape == np.shape(want) and (dt is None or got.dtype == np.dtype(dt)), (got.shape, got.dtype)
    return check


T, X = tl.tensor, _x
# Bugs the fuzzing found, fixed since: each case stays as a regression test.
FORMER_BUGS = {
    # 0-d results are ndarrays, never NumPy scalars
    "0d-compare-data": is_ndarray(lambda: T(1.0) == 1.0),
    "0d-argmax-dim-data": is_ndarray(lambda: T(1.0).argmax(0)),
    "0d-max-dim-indices-data": is_ndarray(lambda: T(1.0).max(0).indices),
    "0d-int-clamp-data": is_ndarray(lambda: T(3).clamp(0)),
    "pow-of-bools": named_error("pow", lambda: T([True]) ** T([True])),  # NumPy gives int8; PyTorch rejects
    "std-error-names-var": named_error("std", lambda: X().std(5)),
    "empty-error-names-zeros": named_error("empty", lambda: tl.empty(-1)),
    "repeat-error-names-reshape": named_error("repeat", lambda: X().repeat(-1, 1)),
    "index_select-error-names-getitem": named_error("index_select", lambda: X().index_select(1, T([0, 5]))),
    "split-0d": named_error("split", lambda: T(1.0).split(1)),
    "chunk-0d": named_error("chunk", lambda: T(1.0).chunk(1)),
    "transpose-0d-dim-range": named_error("transpose", lambda: T(1.0).transpose(0, 1)),
    "flatten-0d-dim-range": named_error("flatten", lambda: T(1.0).flatten(0, 1)),
    "mT-0d": named_error("transpose", lambda: T(1.0).mT),
    "flip-repeated-dims": named_error("flip", lambda: X().flip((0, 0))),
    "sum-repeated-dims": named_error("sum", lambda: X().sum((0, 0))),
    "fold-kernel-too-big-silent": named_error("fold", lambda: F.fold(T(np.ones((1, 4, 0), np.float32)), (1, 1), 2)),
    "fold-kernel-too-big-names-reshape": named_error("fold", lambda: F.fold(T(np.ones((1, 9, 1), np.float32)),
                                                                          (1, 1), 3)),
    "fold-2d-input-is-unbatched": equals(lambda: F.fold(T(np.ones((4, 4), np.float32)), (3, 3), 2),  # PyTorch's
                                         [[[1, 2, 1], [2, 4, 2], [1, 2, 1]]], "float32"),
    "unfold-3d-input-is-unbatched": equals(lambda: F.unfold(T(np.arange(8.0).reshape(2, 2, 2)), 2),
                                           np.arange(8.0).reshape(8, 1)),
    "unfold-stride-0": named_error("unfold", lambda: F.unfold(T(np.ones((1, 1, 4, 4))), 2, stride=0)),
    "unfold-kernel-0": named_error("unfold", lambda: F.unfold(T(np.ones((1, 1, 4, 4))), 0)),
    "unfold-kernel-str": named_error("unfold", lambda: F.unfold(T(np.ones((1, 1, 4, 4))), "a")),
    "unfold-kernel-None": named_error("unfold", lambda: F.unfold(T(np.ones((1, 1, 4, 4))), None)),
    "sum-dim-float": named_error("sum", lambda: X().sum(1.5)),
    "amax-dim-complex": named_error("amax", lambda: X().amax(1j)),
    "squeeze-dim-float": named_error("squeeze", lambda: X().squeeze(1.5)),
    "flip-dims-None": named_error("flip", lambda: X().flip(None)),
    "cat-of-a-tensor": named_error("cat", lambda: tl.cat(X())),  # silently concatenates the rows
    "cat-of-None": named_error("cat", lambda: tl.cat(None)),
    "stack-non-tensor": named_error("stack", lambda: tl.stack([X(), None])),
    "stack-lists": named_error("stack", lambda: tl.stack([[1.0], [2.0]])),
    "chunk-str": named_error("chunk", lambda: X().chunk("a")),
    "split-None": named_error("split", lambda: X().split(None)),
    "clamp-str": named_error("clamp", lambda: X().clamp("a")),
    "clamp-max-list": named_error("clamp", lambda: X().clamp(max=[1, "a"])),
    "pad-None": named_error("pad", lambda: F.pad(X(), None)),
    "pad-mode-dict": named_error("pad", lambda: F.pad(X(), (1, 1), mode={})),
    "pad-replicate-empty-dim": named_error("pad", lambda: F.pad(T(np.zeros((2, 0))), (1, 1), mode="replicate")),
    "eye-negative": named_error("eye", lambda: tl.eye(-1)),
    "eye-str": named_error("eye", lambda: tl.eye("a")),
    "arange-step-0": named_error("arange", lambda: tl.arange(0, 5, 0)),
    "arange-None": named_error("arange", lambda: tl.arange(None)),
    "linspace-negative": named_error("linspace", lambda: tl.linspace(0, 1, -1)),
    "randint-low-ge-high": named_error("randint", lambda: tl.randint(5, 2, (3,))),
    "full-str-value": named_error("full", lambda: tl.full((2,), "a")),
    "zeros-huge": named_error("zeros", lambda: tl.zeros(2 ** 70)),
    "zeros_like-None": named_error("zeros_like", lambda: tl.zeros_like(None)),
    "astype-None": named_error("astype", lambda: X().astype(None)),
    "backward-gradient-str": named_error("backward", lambda: (X().requires_grad_() * 2).backward("a")),
    "masked_fill-mask-shape": named_error("masked_fill", lambda: X().masked_fill(T([True, False]), 0.0)),
    "requires_grad_-array": named_error("requires_grad_", lambda: X().requires_grad_(np.ones(2))),
    "index_select-negative": named_error("index_select", lambda: X().index_select(1, T([-1]))),  # PyTorch rejects
    "int32-times-huge-int": result_or_named_error("mul", lambda: T(np.ones(2, np.int32)) * 2 ** 40,
                                                  lambda r: np.testing.assert_equal(r.dtype, np.int32)),
    "gather-0d": result_or_named_error("gather", lambda: T(5.0).gather(0, T(0)),
                                       lambda r: np.testing.assert_equal(r.item(), 5.0)),
    "flip-0d": result_or_named_error("flip", lambda: T(5.0).flip(0), lambda r: np.testing.assert_equal(r.item(), 5.0)),
    "relu-keeps-int-dtype": has_dtype(lambda: T([-1, 2]).relu(), "int64"),  # PyTorch: int64 in, int64 out
    "clamp-int-float-bound-dtype": has_dtype(lambda: T([1, 5]).clamp(2.5), "float32"),  # NumPy gives float64
    # neighbours of the cases above, with PyTorch's answers
    "clamp-int-int-bound-keeps-dtype": equals(lambda: T(np.array([1, 5], np.int32)).clamp(2, 4), [2, 4], "int32"),
    "clamp-bool-int-bound": equals(lambda: T([True, False]).clamp(0, 1), [1, 0], "int64"),
    "relu-of-bools": named_error("relu", lambda: T([True]).relu()),
    "bool-tensor-pow-python-bool": equals(lambda: T([True, False]) ** False, [True, True], "bool"),
    "python-bool-pow-bool-tensor": named_error("pow", lambda: False ** T([True])),
    "int32-times-int-wraps-as-pytorch": equals(lambda: T(np.array([1], np.int32)) * (2 ** 32 + 3), [3], "int32"),
    "int-beyond-int64": named_error("mul", lambda: T([1]) * 2 ** 70),
    "index_select-0d-index": equals(lambda: T([5.0, 6.0]).index_select(0, T(1)), [6.0]),
    "index_select-of-0d": equals(lambda: T(5.0).index_select(0, T([0])), 5.0),
    "gather-0d-out-of-range": named_error("gather", lambda: T(5.0).gather(0, T(1))),
    "sum-repeated-dims-of-0d": named_error("sum", lambda: T(1.0).sum((0, -1))),
    "squeeze-repeated-dims": named_error("squeeze", lambda: X().squeeze((0, 0))),
    "mT-1d": named_error("mT", lambda: T([1.0]).mT),
    "tensor-of-strings-with-dtype": named_error("tensor", lambda: tl.tensor(["1.5"], dtype=tl.float32)),
    "requires_grad_-int": named_error("requires_grad_", lambda: X().requires_grad_(1)),
}
# Open bugs, pinned as strict xfails: a fix flips one into a failure; then move it to FORMER_BUGS.
KNOWN_BUGS = {}


@pytest.mark.parametrize("case", sorted(FORMER_BUGS))
def test_former_bugs(case):
    CASES["former_bugs"] += 1
    FORMER_BUGS[case]()


if KNOWN_BUGS:
    @pytest.mark.parametrize("case", [pytest.param(k, marks=pytest.mark.xfail(strict=True, reason=f"known bug {k}"))
                                      for k in KNOWN_BUGS])
    def test_known_bugs(case):
        CASES["known_bugs"] += 1
        KNOWN_BUGS[case]()


@pytest.mark.parametrize("dtype", [F32, F64])
def test_log_softmax_keeps_full_precision_and_its_gradient(dtype):
    """(x - max) - log(sum(exp(x - max))): no cancellation against a logsumexp of 1e4 (was rel. error 1e-3)."""
    x = np.array([[1e4, 1e4 + 1, 1e4 - 3, -1e4], [0.5, -2.0, 3.0, np.inf]], dtype)
    x64 = x.astype(F64)
    z = x64[0] - x64[0].max()
    want = z - np.log(np.exp(z).sum())
    out = F.log_softmax(tl.tensor(x), 1).numpy()
    np.testing.assert_allclose(out[0], want, rtol=4 * np.finfo(dtype).eps, atol=0)
    assert np.isnan(out[1, 3]) and (out[1, :3] == -np.inf).all()  # +inf in the row, as x - logsumexp(x)
    assert tl.gradcheck(lambda t: F.log_softmax(t, 1), tl.tensor(np.random.default_rng(0).standard_normal((3, 4)),
                                                                 requires_grad=True))
    assert tl.gradcheck(lambda t: F.log_softmax(t * 1e3, 0), tl.tensor(np.array([0.3, 0.31, -0.2]),
                                                                       requires_grad=True))


def test_fuzz_helpers_catch_what_they_should():
    """The oracle itself: a bare NumPy message, a wrong type and a wrong shape are all caught."""
    with pytest.raises(AssertionError, match="does not name"):
        check_error(ValueError("operands could not be broadcast"), "add")
    with pytest.raises(AssertionError, match="not an allowed type"):
        check_error(AttributeError("add: x"), "add")
    with pytest.raises(AssertionError, match="shape"):
        compare(tl.tensor(np.zeros((2, 1))), np.zeros((2,)))
    with pytest.raises(AssertionError):
        compare(tl.tensor([np.nan, 1.0]), np.array([1.0, np.nan]))
    compare(tl.tensor([np.nan, np.inf]), np.array([np.nan, np.inf]))
