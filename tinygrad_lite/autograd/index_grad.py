"""Sparse slice gradients: getitem's VJP (ops/index.py) returns an IndexGrad, and the engine (`engine._accumulate`)
adds the slices of one tensor into one buffer through `_add_index_grad` (a host effect tl.compile records; its
vmap batching rule is at the end)."""
import math

import numpy as np

from ..compile.hooks import batching_rule, elementwise, into_rule


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


@batching_rule(_add_index_grad)
def _(args, batched):
    from ..ops.batching import index_with_batch, lead
    buf, g, index, basic = args
    return _add_index_grad(buf, lead(g, batched[1], buf.shape[0]), index_with_batch(index), basic)
