"""Sparse slice gradients: getitem's VJP (ops/index.py) returns an IndexGrad, and the engine (`engine._accumulate`)
adds the slices of one tensor into one buffer through `_add_index_grad` (a host effect tl.compile records; its
vmap batching rule is at the end)."""
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

    def add_into(self, buf):
        if self.basic:  # no repeated positions: add straight into the selected view
            buf[self.index] += self.g._data
        else:
            buf += self.dense_array()

    def dense_array(self):
        from ..ops.index import index_scatter
        return index_scatter.forward(self.g._data, self.shape, self.index)


def _add_index_grad(buf, g, index, basic):
    """IndexGrad.add_into as a function of arrays (so tl.compile can record and replay it)."""
    if basic:
        view = buf[index]
        if isinstance(view, np.ndarray) and view.base is (buf if buf.base is None else buf.base):
            np.add(view, g, out=view)  # a slice: added through the view, with no write-back
        else:  # a mask's selection is a copy: += writes it back
            buf[index] += g
    else:
        from ..ops.index import index_scatter
        buf += index_scatter.forward(g, buf.shape, index)
    return buf


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
