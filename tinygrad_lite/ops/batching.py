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


def _advanced(parts):
    """The positions of the advanced indices in `parts` (arrays, lists, per-sample arrays; and ints, which NumPy
    counts among them as soon as there is an array: x[arr, :, 0] puts arr's dims first, as x[arr, :, [0]])."""
    arrays = [k for k, p in enumerate(parts) if isinstance(p, (np.ndarray, list, BatchedAttr))]
    if not arrays:
        return []
    return sorted(arrays + [k for k, p in enumerate(parts) if isinstance(p, (int, np.integer)) and
                            not isinstance(p, (bool, np.bool_))])


def adjacent(parts):
    """Whether the advanced indices of `parts` are next to each other (or absent): then NumPy keeps their dims
    where they are, and a full slice in front of them keeps the batch leading."""
    advanced = _advanced(parts)
    return not advanced or advanced[-1] - advanced[0] + 1 == len(advanced)


def index_with_batch(idx):
    """An index tuple for the batched array: a full slice first. Refused when it has advanced indices that are
    not next to each other (NumPy would move their dimensions in front of the batch)."""
    idx = idx if isinstance(idx, tuple) else (idx,)
    if not adjacent(idx):
        raise NotImplementedError("vmap: indexing with advanced indices separated by slices is not batched")
    return (slice(None),) + idx


def per_sample_index(parts, size, shape, name="getitem"):
    """(index of the batched array, axes move or None) for the index tuple `parts` of one sample of shape `shape`,
    some of whose integer arrays may be per sample (BatchedAttr, the batch leading): sample k's arrays pick from
    sample k, by an arange of the batch among the advanced indices. NumPy puts advanced dims where the per-sample
    index has them only when they stay next to each other; `move` (source axes, destination axes) puts them back
    after the dims before them (np.moveaxis). Ellipsis becomes its slices and a boolean mask shared by all samples
    its nonzero() arrays; a per-sample boolean mask (a shape per sample) is not batched. A per-sample index out of
    range raises eager's error, naming the sample."""
    expanded, axis = [], 0
    for p in parts:
        array = p.array if isinstance(p, BatchedAttr) else p
        if isinstance(array, np.ndarray) and array.dtype == np.bool_:
            if isinstance(p, BatchedAttr):
                raise NotImplementedError("vmap: indexing with a per-sample boolean mask is not batched (each "
                                          "sample would have its own shape)")
            expanded.extend(np.nonzero(p))
            axis += p.ndim
        elif p is Ellipsis:
            n = len(shape) - sum(_consumed(q) for q in parts)
            expanded.extend([slice(None)] * n)
            axis += n
        else:
            if isinstance(p, BatchedAttr):
                _check_range(p.array, shape[axis], axis, name)
            expanded.append(p)
            axis += p is not None
    parts = expanded
    advanced = [k for k, p in enumerate(parts) if p is not None and not isinstance(p, slice)]  # (ints count)
    rank = len(np.broadcast_shapes(*[p.array.shape[1:] if isinstance(p, BatchedAttr) else np.shape(p)
                                     for k, p in enumerate(parts) if k in advanced]))
    index = [np.arange(size).reshape((size,) + (1,) * rank)]
    for p in parts:
        if isinstance(p, BatchedAttr):  # (B, its shape) -> (B, ones, its shape): broadcast as the sample's arrays
            a = p.array
            p = a.reshape((size,) + (1,) * (rank - a.ndim + 1) + a.shape[1:])
        index.append(p)
    before = advanced[0]  # (the slices and Nones before the advanced indices: each makes one dim)
    move = None
    if before and advanced[-1] - advanced[0] + 1 == len(advanced):
        move = (list(range(1, 1 + rank)), list(range(1 + before, 1 + before + rank)))
    return tuple(index), move


def _consumed(p):
    """How many of the sample's axes an index item takes (a boolean mask as many as its own)."""
    if p is None or p is Ellipsis:
        return 0
    return p.ndim if isinstance(p, np.ndarray) and p.dtype == np.bool_ else 1


def _check_range(a, n, axis, name):
    """Each sample's indices within the sample's axis, with eager's words and the sample named (the batched array's
    own IndexError would name the wrong axis)."""
    bad = (a < -n) | (a >= n)
    if bad.any():
        where = np.argwhere(bad)[0]
        raise IndexError(f"{name}: index {a[tuple(where)]} is out of bounds for axis {axis} with size {n} (sample "
                         f"{where[0]} of the vmap batch)")


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
