"""Fuzzing of the shape operations (reshape/view, permute, transpose, flatten, squeeze, unsqueeze, expand, flip,
repeat, split, chunk, T, mT) and of cat/stack (see tests/_fuzz_common.py for the oracle).
"""
import numpy as np
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp

import tinygrad_lite as tl

from _fuzz_common import _report_case_count  # noqa: F401 - autouse: reports this part's cases
from _fuzz_common import DTYPES, F32, F64, examples, fuzz, arrays, promote, run, backward_shapes, norm_dims


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
    if a.shape[ax] == 0:  # an empty dim gives `chunks` empty pieces, as PyTorch's chunk
        return tuple(a for _ in range(chunks))
    return _np_split(a, -(-a.shape[ax] // chunks), d)


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
