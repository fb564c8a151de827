"""Batching rules (tl.func.vmap): how a primitive maps over a leading batch dimension, in one NumPy call.

A rule gets the input arrays, a flag per input saying whether it carries the batch as its leading dimension, and
the attributes; it returns the output with the batch leading. Most primitives are broadcasting NumPy calls, so
one rule covers them: give every batched input the rank of the widest logical input (the batch, then ones, then
its own shape) and call the forward as it is. The others move their axis attributes past the batch dimension.
"""
import numpy as np


def batch_size(arrays, batched):
    return next(a.shape[0] for a, b in zip(arrays, batched) if b)


def logical_ndim(a, b):
    return a.ndim - 1 if b else a.ndim


def align(arrays, batched):
    """Batched arrays reshaped to (B, 1.., shape) so that they broadcast against each other and against the
    unbatched arrays (which broadcast from the right) exactly as the logical arrays do."""
    rank = max(logical_ndim(a, b) for a, b in zip(arrays, batched))
    out = []
    for a, b in zip(arrays, batched):
        if b and a.ndim - 1 < rank:
            a = a.reshape((a.shape[0],) + (1,) * (rank - a.ndim + 1) + a.shape[1:])
        out.append(a)
    return out


def lead(a, b, size):
    """`a` with the batch leading: a batched array as it is, an unbatched one broadcast to (size, ...)."""
    return a if b else np.broadcast_to(a, (size,) + a.shape)


def elementwise(prim):
    """Broadcasting primitives (and matmul, whose leading dims broadcast): align, then the forward itself."""
    def rule(arrays, batched, attrs):
        return prim.forward(*align(arrays, batched), *attrs)
    return rule


def shift_axes(axis, ndim):
    """Logical axis (int, tuple or None for all) -> the same axes of the batched array (one further right)."""
    if axis is None:
        return tuple(range(1, ndim + 1))
    if isinstance(axis, (tuple, list)):
        return tuple(a % max(ndim, 1) + 1 for a in axis)
    return axis % max(ndim, 1) + 1


def reduction(prim):
    """sum/amax/amin/prod (attrs: axis, keepdims) and cumsum/cumprod (attrs: dim): the axes moved past the
    batch. A 0-d logical input reduces over no axis."""
    def rule(arrays, batched, attrs):
        (x,) = arrays
        nd = x.ndim - 1
        if len(attrs) == 1:  # cumulative: one dim
            return prim.forward(x, shift_axes(attrs[0], nd)) if nd else x.copy()
        axis, keepdims = attrs
        if nd == 0:
            return x.copy()
        return prim.forward(x, shift_axes(axis, nd), keepdims)
    return rule


def with_batch_dim(fn):
    """A rule for a primitive whose leading input dimension is independent (N of unfold/fold): the batch is
    merged into it and split off again."""
    def rule(arrays, batched, attrs):
        size = batch_size(arrays, batched)
        (x,) = [lead(a, b, size) for a, b in zip(arrays, batched)]
        out = fn(x.reshape((-1,) + x.shape[2:]), *attrs)
        return out.reshape((size, -1) + out.shape[1:])
    return rule


def index_with_batch(idx):
    """An index tuple for the batched array: a full slice first. Refused when it has advanced indices that are
    not next to each other (NumPy would move their dimensions in front of the batch)."""
    idx = idx if isinstance(idx, tuple) else (idx,)
    advanced = [i for i, x in enumerate(idx) if isinstance(x, np.ndarray) or isinstance(x, (list,))]
    if advanced and advanced[-1] - advanced[0] + 1 != len(advanced):
        raise NotImplementedError("vmap: indexing with advanced indices separated by slices is not batched")
    return (slice(None),) + idx


def per_sample_index(parts, size):
    """(index of the batched array, axes move or None) for the index tuple `parts` of one sample, some of whose
    integer arrays are per sample (BatchedAttr, the batch leading): sample k's arrays pick from sample k, by an
    arange of the batch among the advanced indices. NumPy puts advanced dims where the per-sample index has them
    only when they stay next to each other; `move` (source axes, destination axes) puts them back after the
    slices before them (np.moveaxis). None, Ellipsis and boolean masks with per-sample arrays are not batched."""
    for p in parts:
        array = p.array if isinstance(p, BatchedAttr) else p
        if p is None or p is Ellipsis or (isinstance(array, np.ndarray) and array.dtype == np.bool_):
            raise NotImplementedError("vmap: indexing with a per-sample index array together with None, Ellipsis "
                                      "or a boolean mask is not batched")
    advanced = [k for k, p in enumerate(parts) if not isinstance(p, slice)]  # (ints count, as in NumPy)
    rank = len(np.broadcast_shapes(*[p.array.shape[1:] if isinstance(p, BatchedAttr) else np.shape(p)
                                     for k, p in enumerate(parts) if k in advanced]))
    index = [np.arange(size).reshape((size,) + (1,) * rank)]
    for p in parts:
        if isinstance(p, BatchedAttr):  # (B, its shape) -> (B, ones, its shape): broadcast as the sample's arrays
            a = p.array
            p = a.reshape((size,) + (1,) * (rank - a.ndim + 1) + a.shape[1:])
        index.append(p)
    before = advanced[0]  # (the slices before the advanced indices: each keeps its dim)
    move = None
    if before and advanced[-1] - advanced[0] + 1 == len(advanced):
        move = (list(range(1, 1 + rank)), list(range(1 + before, 1 + before + rank)))
    return tuple(index), move


class BatchedAttr:
    """An array inside a primitive's attributes that carries the batch (e.g. the per-sample class indices of a
    gather); handed to rules that accept one (`rule.batched_attrs = True`)."""
    __slots__ = ("array",)

    def __init__(self, array):
        self.array = array


def index_array(index, size):
    """A gather/scatter index attribute with the batch leading (broadcast when it is the same for all)."""
    return index.array if isinstance(index, BatchedAttr) else np.broadcast_to(index, (size,) + np.shape(index))


def accepts_batched_attrs(rule):
    rule.batched_attrs = True
    return rule
