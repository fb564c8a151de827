"""Indexing primitives: getitem and its scatter (index_scatter), item assignment (index_put), gather
(take_along_axis) and scatter-add. getitem's integer-index gradients accumulate with `bincount` (in float64, rounded
once); scatter_add sums float32/float64 in their own precision, in index order, as PyTorch (see _scatter_into)."""
import functools
import math

import numpy as np

from . import batching
from .elementwise import same_op_jvp
from .movement import _axis, _zero_like
from .registry import primitive
from .workspace import scratch
from ..compile.hooks import constant
from ..autograd.index_grad import IndexGrad, _leading_rows
from ..autograd.grad_mode import state


def _has_int_array(idx):
    return any(isinstance(i, np.ndarray) and i.dtype != np.bool_ for i in idx)


def _index_sample(gen, distinct):
    """A shape and an index into its first dim: a slice, an int, an integer array (`distinct` positions, or
    repeated ones) or a boolean mask."""
    shape = gen.shape(min_dims=1, max_dims=3)
    kind = gen.choice(["slice", "int", "array", "mask"])
    if kind == "slice":
        idx = (slice(None, None, gen.choice([1, 2, -1])),)
    elif kind == "int":
        idx = (gen.integers(0, shape[0], ()).item(),)
    elif kind == "array":
        idx = (np.asarray(gen.permutation(shape[0]))[:max(1, shape[0] - 1)],) if distinct else (
            gen.integers(0, shape[0], (4,)),)
    else:
        idx = (gen.booleans(shape[:1]),)
    return shape, idx


def _getitem_sample(gen):
    shape, idx = _index_sample(gen, distinct=False)  # repeated indices accumulate in the gradient
    return [gen.array(shape, -2, 2)], (idx,)


@primitive("getitem", attrs=("index",), sample=_getitem_sample, expects="indices within the tensor's shape",
           reads=())
def getitem(x, idx):
    out = x[idx]
    if isinstance(out, np.ndarray):
        return out
    # integers only: NumPy gives a scalar, a copy; PyTorch a 0-d view (`x[0, 0].add_(1)` changes x), as the
    # Ellipsis makes NumPy give
    return x[(*idx, Ellipsis) if idx.__class__ is tuple else (idx, Ellipsis)]


@getitem.definto
def _(out, x, idx):
    """An index that makes a copy (integer arrays; a mask's result has a shape the values decide and gets no planned
    buffer) written into the planned buffer (tl.compile; a slice's view is no kernel there): the rows picked with
    np.take when the index picks whole rows, an embedding's lookup (in range first: take buffers its out= in the mode
    that raises, so the check is ours and a bad index raises eager's error through x[idx]); any other index copies
    x[idx]."""
    rows = _leading_rows(idx) if idx else None  # (x[()] of a 0-d tensor is a copy too)
    if rows is not None and rows.size:
        n = x.shape[0]
        if -n <= rows.min() and rows.max() < n:
            return np.take(x, rows, axis=0, out=out, mode="wrap")  # (wrap: -n..-1 are Python's negatives)
    out[...] = x[idx]
    return out


@getitem.defvjp
def _(ctx, g):
    shape, idx = ctx.saved[0]._data.shape, ctx.attrs[0]
    if state.grad_enabled:  # create_graph: a differentiable dense scatter
        return (index_scatter(g, shape, idx),)
    return (IndexGrad(g, shape, idx, not _has_int_array(idx)),)  # the engine adds it into one buffer


def _scatter_sample(gen):
    shape = gen.shape(min_dims=1, max_dims=3)
    idx = (gen.integers(0, shape[0], (3,)),)
    src_shape = (3,) + shape[1:]
    return [gen.array(src_shape, -2, 2)], (shape, idx)


@primitive("index_scatter", attrs=("shape", "index"), sample=_scatter_sample, reads=())
def index_scatter(g, shape, idx):
    """zeros(shape) with g added at x[idx] (repeated integer indices accumulate): the VJP of getitem."""
    if _has_int_array(idx):
        size = int(np.prod(shape))
        flat = np.arange(size).reshape(shape)[idx]
        gb = np.broadcast_to(g, flat.shape)
        out = np.bincount(flat.ravel(), weights=gb.ravel(), minlength=size)
        return out.reshape(shape).astype(g.dtype, copy=False)
    out = np.zeros(shape, dtype=g.dtype)
    out[idx] = g
    return out


@index_scatter.defvjp
def _(ctx, g):
    return (g[ctx.attrs[1]],)


def _index_put_sample(gen):
    shape, idx = _index_sample(gen, distinct=True)  # with repeats, which value is written is unspecified
    target = np.empty(shape)[idx].shape
    value_shape = gen.choice([target, target[1:], (1,) * min(len(target), 1)])
    return [gen.array(shape, -2, 2), gen.array(value_shape, -2, 2)], (idx,)


@primitive("index_put", attrs=("index",), nin=2, sample=_index_put_sample,
           expects="indices within the tensor's shape and a value that broadcasts to the indexed shape", reads=())
def index_put(x, value, idx):
    """A copy of x with x[idx] = value (item assignment; the value broadcasts to the indexed shape)."""
    out = x.copy()
    out[idx] = value
    return out


@index_put.defvjp
def _(ctx, g):
    x, value = ctx.saved
    zero = x.__class__._wrap(constant(np.zeros((), dtype=g._data.dtype)))
    gx = index_put(g, zero, ctx.attrs[0]) if x.requires_grad else None
    return gx, (g[ctx.attrs[0]] if value.requires_grad else None)


def _gather_sample(gen):
    shape = gen.shape(min_dims=1, max_dims=3)
    axis = gen.integers(0, len(shape), ()).item()
    ishape = list(shape)
    ishape[axis] = gen.choice([1, 3])
    return [gen.array(shape, -2, 2)], (axis, gen.integers(0, shape[axis], tuple(ishape)))


@primitive("gather", attrs=("dim", "index"), sample=_gather_sample, expects="index values in [0, size) along dim",
           reads=())
def gather(x, axis, index):
    flat = _flat_positions(x.shape, axis, index, "gather")
    return np.take_along_axis(x, index, axis) if flat is None else x.take(flat, mode="clip")  # (in range)


@gather.defvjp
def _(ctx, g):
    axis, index = ctx.attrs
    return (scatter_add(g, ctx.saved[0]._data.shape, axis, index),)


def _scatter_add_sample(gen):
    shape = gen.shape(min_dims=1, max_dims=3)
    axis = gen.integers(0, len(shape), ()).item()
    ishape = list(shape)
    ishape[axis] = 3
    return [gen.array(tuple(ishape), -2, 2)], (shape, axis, gen.integers(0, shape[axis], tuple(ishape)))


def _linear_index(shape, axis, index):
    coords = list(np.indices(index.shape, sparse=True))
    coords[axis] = index
    return np.ravel_multi_index(np.broadcast_arrays(*coords), shape)


@primitive("scatter_add", attrs=("shape", "dim", "index"), sample=_scatter_add_sample, reads=())
def scatter_add(src, shape, axis, index):
    """zeros(shape) with src[i] added at position index[i] along `axis` (the VJP of gather)."""
    return _scatter_into(np.empty(shape, dtype=src.dtype), src, shape, axis, index)  # (which zeroes or fills it)


_OWN_PRECISION = (np.dtype(np.float32), np.dtype(np.float64))


def _scatter_into(out, src, shape, axis, index):
    """out = 0, then src added at the positions. With several indices per slice a position may repeat: float32
    and float64 sum in their own precision, in index order (PyTorch's scatter_add_; np.add.at is one loop in
    NumPy >= 1.25: 93 us against bincount's 241 for W3's pooling gradient); other dtypes (float16, integers) sum
    in float64 with bincount, rounded once. With one index per slice no position repeats: an assignment."""
    flat = _flat_positions(shape, axis, index, "scatter_add")
    repeats = index.shape[axis] != 1
    if repeats and flat is None:
        flat = _linear_index(shape, axis, index)
    target = out if out.flags.c_contiguous else np.empty(shape, dtype=out.dtype)
    if repeats and out.dtype not in _OWN_PRECISION:
        sums = np.bincount(flat.ravel(), weights=src.ravel(), minlength=math.prod(shape))
        np.copyto(target, sums.reshape(shape), casting="unsafe")
    else:
        target.fill(0)
        if flat is None:
            np.put_along_axis(target, index, src, axis)
        elif repeats:
            np.add.at(target.reshape(-1), flat.ravel(), src.ravel())
        else:  # an assignment through a flat view: 3x faster than ndarray.put (62 vs 171 us, 50,000 values)
            target.reshape(-1)[flat.ravel()] = src.ravel()
    if target is not out:
        np.copyto(out, target)
    return out


@functools.lru_cache(maxsize=256)
def _other_offsets(shape, axis):
    """Flat (C order) offset in an array of `shape` of each position's coordinates other than `axis` (shape
    with that dim 1), and the element stride along `axis`: fixed by the shape, so made once (read-only)."""
    strides = [math.prod(shape[k + 1:]) for k in range(len(shape))]
    off = np.zeros((1,) * len(shape), np.int64)
    for k, (n, st) in enumerate(zip(shape, strides)):
        if k != axis:
            off = off + (np.arange(n, dtype=np.int64) * st).reshape((1,) * k + (n,) + (1,) * (len(shape) - k - 1))
    off.flags.writeable = False
    return off, strides[axis]


def _flat_positions(shape, axis, index, where):
    """Positions in the flattened array of `shape` of index's elements taken along `axis` (an index out of
    [0, shape[axis]) is an IndexError, never a neighbouring row's element); None when index's other dims
    differ from shape's (then take_along_axis' broadcasting applies)."""
    shape, ishape = tuple(shape), index.shape
    if len(ishape) != len(shape) or ishape[:axis] != shape[:axis] or ishape[axis + 1:] != shape[axis + 1:]:
        return None
    idx = index.astype(np.int64, copy=False)  # (ufuncs' reduce below: ndarray.max adds a Python wrapper per call)
    if idx.size and np.maximum.reduce(idx.view(np.uint64), axis=None) >= shape[axis]:  # negatives are huge unsigned
        raise IndexError(f"{where}: index values must be in [0, {shape[axis]}) along dim {axis} of shape {shape}, "
                         f"got [{idx.min()}, {idx.max()}]")
    off, stride = _other_offsets(shape, axis)
    flat = scratch("flat_positions", idx.shape, np.int64)  # (used at once by the caller, never kept)
    if stride == 1:
        return np.add(idx, off, out=flat)
    np.multiply(idx, stride, out=flat)
    flat += off
    return flat


@scatter_add.defvjp
def _(ctx, g):
    _, axis, index = ctx.attrs
    return (gather(g, axis, index),)


# ---------------- `into` rules (tl.compile writes these forwards into planned buffers) ----------------
scatter_add.definto(_scatter_into)


@index_put.definto
def _(out, x, value, idx):
    np.copyto(out, x)
    out[idx] = value
    return out


@index_scatter.definto
def _(out, g, shape, idx):
    if _has_int_array(idx):  # (bincount's sums: a new array either way)
        np.copyto(out, index_scatter.forward(g, shape, idx))
    else:
        out.fill(0)
        out[idx] = g
    return out


@gather.definto
def _(out, x, axis, index):
    flat = _flat_positions(x.shape, axis, index, "gather")
    if flat is None:
        out[...] = np.take_along_axis(x, index, axis)
        return out
    return x.take(flat, out=out, mode="clip")  # mode="raise" would buffer `out`; the positions are checked


# ---------------- forward mode: each primitive's JVP (all of these are linear in their tensor inputs) ----------
for _p in (getitem, index_scatter, gather, scatter_add):
    _p.defjvp(same_op_jvp(_p))


@index_put.defjvp
def _(primals, tangents, out, attrs):
    (x, _), (tx, tv) = primals, tangents
    if tv is None:
        tv = x.__class__._wrap(constant(np.zeros((), dtype=out._data.dtype)))
    return index_put(_zero_like(x) if tx is None else tx, tv, attrs[0])


# ---------------- vmap: batching rules (attributes given the batch dimension first) ----------------
def _per_sample(idx):
    """The index as a tuple when the batched index needs an arange of the batch among its advanced indices: some of
    its arrays are per sample (vmap of `x[i]` with a batched tensor i), or its advanced indices are apart (shared
    `x[[0, 1], :, 0]`: NumPy would move their dims in front of the batch); else None (a full slice in front)."""
    parts = idx if isinstance(idx, tuple) else (idx,)
    return parts if any(isinstance(p, batching.BatchedAttr) for p in parts) or not batching.adjacent(parts) else None


def _attr_batch_size(arrays, batched, parts):
    return batching.batch_size(arrays, batched) if any(batched) else next(
        p.array.shape[0] for p in parts if isinstance(p, batching.BatchedAttr))


@batching.accepts_batched_attrs
def _getitem_batch(arrays, batched, attrs):
    (x,), (idx,) = arrays, attrs
    parts = _per_sample(idx)
    if parts is None:
        return getitem.forward(x, batching.index_with_batch(idx))
    size = _attr_batch_size(arrays, batched, parts)
    x = batching.lead(x, batched[0], size)
    index, move = batching.per_sample_index(parts, size, x.shape[1:])
    out = getitem.forward(x, index)
    return out if move is None else np.moveaxis(out, *move)


@batching.accepts_batched_attrs
def _index_scatter_batch(arrays, batched, attrs):
    (g,), (shape, idx) = arrays, attrs
    parts = _per_sample(idx)
    if parts is None:
        return index_scatter.forward(g, (g.shape[0],) + tuple(shape), batching.index_with_batch(idx))
    size = _attr_batch_size(arrays, batched, parts)
    index, move = batching.per_sample_index(parts, size, tuple(shape))
    g = batching.lead(g, batched[0], size)
    return index_scatter.forward(g if move is None else np.moveaxis(g, move[1], move[0]), (size,) + tuple(shape),
                                 index)


getitem.defbatch(_getitem_batch)
index_scatter.defbatch(_index_scatter_batch)


@batching.accepts_batched_attrs
def _index_put_batch(arrays, batched, attrs):
    (x, value), (bx, bv) = arrays, batched
    parts = _per_sample(attrs[0])
    size = batching.batch_size(arrays, batched) if any(batched) else _attr_batch_size(arrays, batched, parts)
    x = batching.lead(x, bx, size)
    if parts is None:
        index, move = batching.index_with_batch(attrs[0]), None
    else:  # (per-sample indices, or shared ones apart: an arange of the batch joins them, as for getitem)
        index, move = batching.per_sample_index(parts, size, x.shape[1:], "index_put")
    if bv or move is not None:  # the value broadcasts against the indexed part: ones after the batch for the
        rank = np.empty(x.shape, dtype=np.bool_)[index].ndim - 1  # missing dims (the batch as 1 when it has none)
        value = value.reshape((size if bv else 1,) + (1,) * (rank - value.ndim + bv) + value.shape[bv:])
        if move is not None:  # (in the order of the batched index's dims)
            value = np.moveaxis(value, move[1], move[0])
    return index_put.forward(x, value, index)


index_put.defbatch(_index_put_batch)


@batching.accepts_batched_attrs
def _gather_batch(arrays, batched, attrs):
    (x,), (axis, index) = arrays, attrs
    size = batching.batch_size(arrays, batched) if any(batched) else index.array.shape[0]
    x = batching.lead(x, batched[0], size)
    return gather.forward(x, _axis(axis, x), batching.index_array(index, size))


@batching.accepts_batched_attrs
def _scatter_add_batch(arrays, batched, attrs):
    (src,), (shape, axis, index) = arrays, attrs
    size = batching.batch_size(arrays, batched) if any(batched) else index.array.shape[0]
    src = batching.lead(src, batched[0], size)
    return scatter_add.forward(src, (size,) + tuple(shape), _axis(axis, src),
                               np.ascontiguousarray(batching.index_array(index, size)))


gather.defbatch(_gather_batch)
scatter_add.defbatch(_scatter_add_batch)
