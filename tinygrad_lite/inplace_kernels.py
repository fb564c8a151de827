"""The NumPy writes behind in-place operations (inplace.py), each a function of its own so that tl.compile records
it as one kernel and vmap batches it (the written array and the source as aligned batches, or a batching rule):
copying, a ufunc or a fill into a tensor's buffer, a new buffer for the result recorded in the graph, random
draws and item assignment; and the broadcasting checks their error messages use."""
import numpy as np

from .compile.hooks import batching_rule, elementwise
from .random import generator_for


@elementwise  # (vmap: the written array and the source broadcast as aligned batches)
def _copy_into(dst, src):
    np.copyto(dst, src, casting="unsafe")
    return dst


def _new_buffer(res, shape, dtype):
    return np.array(np.broadcast_to(res, shape), dtype=dtype)


@batching_rule(_new_buffer)
def _(args, batched):
    """vmap: each sample's result broadcast to the sample shape (ones after the batch for the missing dims)."""
    res, shape, dtype = args
    res = res.reshape(res.shape[:1] + (1,) * (len(shape) - res.ndim + 1) + res.shape[1:])
    return np.array(np.broadcast_to(res, res.shape[:1] + tuple(shape)), dtype=dtype)


@elementwise  # (vmap: the written array and the source broadcast as aligned batches)
def _ufunc_into(ufunc, dst, other):
    return ufunc(dst, other, out=dst)


def _fill_array(dst, value):
    dst.fill(value)
    return dst


@batching_rule(_fill_array)
def _(args, batched):
    """vmap: a per-sample fill value (a 0-d tensor of each sample) goes into that sample's array."""
    dst, value = args
    if isinstance(value, np.ndarray) and batched[-1] and len(batched) == 2:
        value = value.reshape(value.shape + (1,) * (dst.ndim - value.ndim))
    np.copyto(dst, value, casting="unsafe")
    return dst


def _draw_into(draw, generator, dst, args):
    np.copyto(dst, np.asarray(draw(generator_for(generator), dst.shape, *args), dtype=dst.dtype), casting="unsafe")
    return dst


def _set_items(dst, idx, value):
    dst[idx] = value
    return dst


@batching_rule(_set_items)
def _(args, batched):
    """vmap: item assignment without a graph (`c[:, 1] = v` under vmap) as index_put's batching rule computes it
    (shared or per-sample index arrays, a shared or per-sample value), written into the per-sample buffer."""
    from .ops.batching import BatchedAttr
    from .ops.index import _index_put_batch
    dst, idx, value = args
    flags = iter(batched)  # one per array, in order: the buffer, the index's arrays, the value
    bd = next(flags)
    parts = tuple(BatchedAttr(p) if isinstance(p, np.ndarray) and next(flags) else p
                  for p in (idx if isinstance(idx, tuple) else (idx,)))
    bv = isinstance(value, np.ndarray) and next(flags)
    out = _index_put_batch([dst, np.asarray(value)], [bd, bv], (parts,))
    if not bd:  # (vmap copies a written buffer per sample before the call; a shared one is never written here)
        return out
    np.copyto(dst, out)
    return dst


def _getitem(buf, index):
    """buf[index]: a view's elements found by advanced indices (inplace._write_through), the index shared by a batch."""
    return buf[index]


@batching_rule(_getitem)
def _(args, batched):
    buf, index = args
    return buf[(slice(None),) + index] if batched[0] else buf[index]


def _view_of(buf, shape, layout):
    """The elements of C-ordered `buf` at layout (offset, strides in elements), as a view in shape `shape`
    (inplace._write_through: a view taken again of the new buffer of the tensor it views)."""
    offset, strides = layout
    return np.lib.stride_tricks.as_strided(buf.reshape(-1)[offset:], shape, [s * buf.itemsize for s in strides])


@batching_rule(_view_of)
def _(args, batched):
    """vmap: the same view of each sample's buffer."""
    buf, shape, (offset, strides) = args
    if not batched[0]:
        return _view_of(buf, shape, (offset, strides))
    flat = buf.reshape(buf.shape[0], -1)
    return np.lib.stride_tricks.as_strided(flat[:, offset:], flat.shape[:1] + tuple(shape),
                                           flat.strides[:1] + tuple(s * buf.itemsize for s in strides))


def _broadcasts_to(shape, target):
    try:
        return np.broadcast_shapes(shape, target) == tuple(target)
    except ValueError:
        return False


def _broadcast_text(a, b):
    try:
        return tuple(np.broadcast_shapes(a, b))
    except ValueError:
        return f"(none: {tuple(a)} and {tuple(b)} do not broadcast)"
