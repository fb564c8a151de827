"""Sparse slice gradients: getitem's VJP (ops/index.py) returns an IndexGrad; the engine (`engine._accumulate`)
keeps one tensor's IndexGrads as `Slices` until it needs the gradient, then sums them into one buffer: copied into
place when they tile it (`_tiled`), else added into zeros through `_add_index_grad` (host effects tl.compile
records; their vmap batching rules are at the end)."""
import math

import numpy as np

from . import recorder as tape
from ..compile.hooks import batching_rule, elementwise, host, host_effect, into_rule


class IndexGrad:
    """The gradient of `x[index]` w.r.t. x, kept sparse: `g` placed at `index` in zeros of `shape`. getitem's VJP
    returns it outside create_graph so the engine adds every slice into one buffer (O(slice) each) instead of
    materialising a full-size zero array per slice: taking T steps of a sequence costs O(T), not O(T^2)."""
    __slots__ = ("g", "shape", "index", "basic")

    def __init__(self, g, shape, index, basic):
        self.g, self.shape, self.index, self.basic = g, shape, index, basic

    @property
    def data(self):  # what anomaly mode inspects
        return self.g._data


class Slices:
    """The IndexGrads of one tensor's gradient, in the order the walk made them, summed only when the engine needs
    the gradient (`dense`): an LSTM's gates, read in slices every step, then get one buffer written slice by slice
    instead of zeros added into (no fill pass, which cost most on two threads: the buffer a BLAS thread on the
    other core wrote last), and tl.compile computes each slice in its place (buffers._placed_slices)."""
    __slots__ = ("parts", "size")

    def __init__(self, first):
        self.parts, self.size = [first], first.g._data.size

    def add(self, gi):
        """Keep `gi` for later; False when the slices can no longer tile the tensor (an array index, or more
        elements than it has: overlapping windows), so that they are summed at once and no more are kept than the
        gradient's own size (the memory the zeros-and-adds it replaces used)."""
        self.parts.append(gi)
        self.size += gi.g._data.size
        return gi.basic and self.parts[0].basic and self.size <= math.prod(gi.shape)

    def dense(self):
        parts, first = self.parts, self.parts[0]
        shape, dtype = first.shape, first.g._data.dtype
        if _tiled(shape, dtype, parts):  # every position written once: the copies are the sum (0 + g, but -0.0 kept)
            buf = host(np.empty, shape, dtype)
            for p in parts:
                host_effect(_put_index_grad, buf, p.g._data, p.index)
        else:
            buf = host(np.zeros, shape, dtype)
            for p in parts:
                host_effect(_add_index_grad, buf, p.g._data, p.index, p.basic)
        return tape.Tensor._wrap(buf)


def _tiled(shape, dtype, parts):
    """Whether the IndexGrads `parts` (all of `dtype`) write every position of `shape` exactly once: basic indexes
    of integers and unit-step slices, each box full but along one axis (the same for all), where the boxes' ranges
    tile the axis. Boxes with no position are left out; anything else (a stride, an Ellipsis, an array) is not."""
    if not math.prod(shape):
        return False
    axis, spans, full = None, [], 0
    for p in parts:
        index = p.index if p.index.__class__ is tuple else (p.index,)
        if not p.basic or p.g._data.dtype != dtype or len(index) > len(shape):
            return False
        partial = None
        for k, (i, n) in enumerate(zip(index, shape)):
            if i.__class__ is slice:
                start, stop, step = i.indices(n)
                if step != 1:
                    return False
                span = (start, max(start, stop))
            elif isinstance(i, (int, np.integer)) and not isinstance(i, bool):
                i = int(i) + n if i < 0 else int(i)
                span = (i, i + 1)
            else:
                return False
            if span == (0, n):
                continue
            if partial is not None or (axis is not None and axis != k):
                return False
            axis, partial = k, span
        if partial is None:
            full += 1
        elif partial[1] > partial[0]:
            spans.append(partial)
    if full:
        return full == 1 and not spans
    spans.sort()
    end = 0
    for start, stop in spans:
        if start != end:
            return False
        end = stop
    return end == shape[axis]


def _put_index_grad(buf, g, index):
    """buf[index] = g: one slice of a gradient `Slices.dense` found tiled (a host effect tl.compile records)."""
    buf[index] = g
    return buf


def _add_index_grad(buf, g, index, basic):
    """buf += the IndexGrad's dense gradient, touching only the selected positions (a host effect tl.compile
    records and replays)."""
    if basic:  # no repeated positions: add straight into the selected view
        view = buf[index]
        if isinstance(view, np.ndarray) and view.base is (buf if buf.base is None else buf.base):
            np.add(view, g, out=view)  # a slice: added through the view, with no write-back
        else:  # a mask's selection is a copy: += writes it back
            buf[index] += g
    elif (rows := _leading_rows(index)) is not None:
        _add_rows(buf, g, rows)
    else:
        from ..ops.index import index_scatter
        buf += index_scatter.forward(g, buf.shape, index)
    return buf


def _leading_rows(index):
    """The integer array of an index that picks whole rows (`x[rows]`, `x[rows, :]`: an embedding's lookup), or
    None."""
    first = index[0]
    if first.__class__ is not np.ndarray or first.dtype.kind not in "iu":
        return None
    return first if all(i.__class__ is slice and i == slice(None) for i in index[1:]) else None


def _add_rows(buf, g, rows):
    """buf[rows] += g with a repeated row's gradients summed first: in float64 in index order, rounded once to g's
    dtype — index_scatter's sums (its bincount) — but over the rows picked, not the whole of buf: an embedding's
    backward costs O(batch), not O(vocabulary), and makes no array of buf's size (50,000 x 256 rows, 2,048 picked:
    430 -> 11 ms). Rows not picked are left untouched (adding index_scatter's zeros turned a -0.0 into +0.0).
    One bincount over (picked row, column) bins: no loop per repeat (a padding row picked 8,192 times cost 8,192
    passes), and the rows in int64 first (an int8 or int16 row plus the table's size would overflow)."""
    n, width = buf.shape[0], math.prod(buf.shape[1:])
    flat = rows.reshape(-1).astype(np.int64)  # (a copy: negatives wrapped in place below)
    flat[flat < 0] += n  # (in range: the forward's indexing checked it)
    picked, inverse = np.unique(flat, return_inverse=True)
    g2 = np.broadcast_to(g, rows.shape + buf.shape[1:]).reshape(flat.size * width)
    bins = (inverse.reshape(-1, 1) * width + np.arange(width)).reshape(-1)  # row-major: index order per bin
    sums = np.bincount(bins, weights=g2, minlength=picked.size * width)
    buf[picked] += sums.astype(g.dtype, copy=False).reshape((picked.size,) + buf.shape[1:])


def _promoted_copy(cur, g):
    return np.array(cur, dtype=np.result_type(cur, g))


@into_rule(_promoted_copy)
def _(out, cur, g):
    np.copyto(out, cur)  # (out has the promoted dtype)
    return out


# ---------------- vmap: the accumulation functions above over a leading batch dimension ----------------
elementwise(_promoted_copy)


def _batched_slice_write(fn):
    """The batching rule of `fn(buf, g, index, *rest)` (a slice gradient added or put into buf): the buffer carries
    the batch, so does g (led with it when it does not) and the index (a full slice first)."""
    def rule(args, batched):
        from ..ops.batching import index_with_batch, lead
        buf, g, index, *rest = args
        return fn(buf, lead(g, batched[1], buf.shape[0]), index_with_batch(index), *rest)
    return rule


batching_rule(_add_index_grad)(_batched_slice_write(_add_index_grad))
batching_rule(_put_index_grad)(_batched_slice_write(_put_index_grad))
