"""ONNX rules of the indexing primitives (see Primitive.defonnx). NumPy indexing becomes Slice, Squeeze/Unsqueeze
and one Gather over the merged advanced axes; scatters write flat positions with ScatterND."""
import numpy as np

from . import index as ix
from ..onnx.rules import defhost

_BIG = np.iinfo(np.int64).max
_SMALLEST = np.iinfo(np.int64).min


@ix.gather.defonnx
def _(g, call):
    axis, index = call.attrs
    return g.op("GatherElements", call.inputs[0], int64(g, index), axis=int(axis))


@ix.scatter_add.defonnx
def _(g, call):
    shape, axis, index = call.attrs
    zeros = g.fill(0, call.out_dtype, shape)
    return g.op("ScatterElements", zeros, int64(g, index), call.inputs[0], axis=int(axis), reduction="add")


def int64(g, arr):
    return g.cast(g.tensor(arr), arr.dtype, np.int64)


# ---------------- NumPy indexing ----------------
def _normalize(idx, ndim):
    """The index as a tuple with Ellipsis expanded and trailing full slices added; bool masks as their nonzero
    positions (static: the mask is recorded)."""
    idx = idx if isinstance(idx, tuple) else (idx,)
    out = []
    for i in idx:
        if isinstance(i, np.ndarray) and i.dtype == np.bool_:
            out.extend(np.nonzero(i))
        else:
            out.append(i)
    used = sum(1 for i in out if i is not None and i is not Ellipsis)
    if Ellipsis in [i for i in out if not isinstance(i, np.ndarray)]:
        k = next(j for j, i in enumerate(out) if i is Ellipsis)
        out[k:k + 1] = [slice(None)] * (ndim - used)
    return out + [slice(None)] * (ndim - sum(1 for i in out if i is not None))


def _is_int(i):
    return isinstance(i, (int, np.integer)) and not isinstance(i, (bool, np.bool_))


def _slices(g, x, idx, arrays):
    """Slice node for the slices (and, without advanced indices, the ints) of `idx`."""
    starts, ends, axes, steps = [], [], [], []
    for ax, i in enumerate(j for j in idx if j is not None):
        if isinstance(i, slice) and i != slice(None) and i != slice(None, None, 1):
            step = 1 if i.step is None else i.step
            starts.append(i.start if i.start is not None else (0 if step > 0 else _BIG))
            ends.append(i.stop if i.stop is not None else (_BIG if step > 0 else _SMALLEST))
            axes.append(ax)
            steps.append(step)
        elif _is_int(i) and not arrays:
            starts.append(i)
            ends.append(i + 1 if i != -1 else _BIG)
            axes.append(ax)
            steps.append(1)
    if not axes:
        return x
    return g.op("Slice", x, g.ints(starts), g.ints(ends), g.ints(axes), g.ints(steps))


def _computed_mask(g, idx):
    """The boolean mask in `idx` computed from the inputs, if any (its nonzero positions must not be recorded)."""
    return next((i for i in (idx if isinstance(idx, tuple) else (idx,)) if isinstance(i, np.ndarray)
                 and i.dtype == np.bool_ and g.is_computed(i)), None)


def index(g, x, shape, idx):
    """x[idx] (NumPy semantics) on ONNX value `x` of static-rank `shape`; x[mask] with a mask computed from the
    inputs is a GatherND at the mask's NonZero positions."""
    mask = _computed_mask(g, idx)
    if mask is not None:
        if (idx if isinstance(idx, tuple) else (idx,)) not in ((mask,), (mask, Ellipsis)):
            raise g.unsupported("a boolean mask computed from the inputs, combined with other indices")
        return g.op("GatherND", x, g.op("Transpose", g.op("NonZero", g.tensor(mask)), perm=[1, 0]))
    idx = _normalize(idx, len(shape))
    arrays = [k for k, i in enumerate(j for j in idx if j is not None) if isinstance(i, np.ndarray)]
    x = _slices(g, x, idx, arrays)
    if not arrays:
        kept = [j for j in idx if j is not None]
        ints = [ax for ax, i in enumerate(kept) if _is_int(i)]
        if ints:
            x = g.op("Squeeze", x, g.ints(ints))
        new, pos = [], 0
        for i in idx:
            if i is None:
                new.append(pos)
            if not _is_int(i):
                pos += 1
        return g.op("Unsqueeze", x, g.ints(new)) if new else x
    if any(i is None for i in idx):
        raise g.unsupported("indexing that mixes None (a new axis) with index arrays")
    return _advanced(g, x, shape, idx)


def _advanced(g, x, shape, idx):
    """The index arrays (ints count as 0-d arrays) gathered in one Gather over their merged axes; placed where
    NumPy places them: in place when adjacent, first otherwise."""
    sizes = [len(range(*i.indices(n))) if isinstance(i, slice) else n for i, n in zip(idx, shape)]
    adv = [k for k, i in enumerate(idx) if not isinstance(i, slice)]
    adjacent = adv == list(range(adv[0], adv[-1] + 1))
    if not adjacent:
        perm = adv + [k for k in range(len(idx)) if k not in adv]
        x = g.op("Transpose", x, perm=perm)
        sizes = [sizes[k] for k in perm]
        idx = [idx[k] for k in perm]
        adv = list(range(len(adv)))
    a0, n = adv[0], int(np.prod([sizes[k] for k in adv]))
    if len(adv) > 1:
        x = g.op("Reshape", x, g.ints(sizes[:a0] + [n] + sizes[adv[-1] + 1:]))
    return g.op("Gather", x, _flat_positions(g, [idx[k] for k in adv], [sizes[k] for k in adv]), axis=a0)


def _flat_positions(g, arrays, sizes):
    """Row-major positions in the merged axes: a constant, or one index array computed in the graph."""
    if len(arrays) == 1 and isinstance(arrays[0], np.ndarray):
        return int64(g, arrays[0])
    if any(isinstance(a, np.ndarray) and g.is_computed(a) for a in arrays):
        raise g.unsupported("several index arrays, one of them computed from the inputs")
    cols = [np.asarray(a, dtype=np.int64) % n for a, n in zip(arrays, sizes)]
    return g.const(np.ravel_multi_index(np.broadcast_arrays(*cols), sizes))


@ix.getitem.defonnx
def _(g, call):
    return index(g, call.inputs[0], call.arrays[0].shape, call.attrs[0])


def _positions(g, shape, idx):
    """Flat positions of x[idx] in a tensor of `shape` (the index applied to an arange), as [-1, 1] int64."""
    if _computed_mask(g, idx) is not None:
        raise g.unsupported("a scatter through a boolean mask computed from the inputs (its size is data-dependent)")
    where = index(g, g.const(np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape)), shape, idx)
    return g.op("Reshape", where, g.ints([-1, 1])), np.empty(shape, dtype=bool)[idx].shape


@ix.index_scatter.defonnx
def _(g, call):
    """zeros(shape) with g added at [idx]: ScatterND(reduction='add') on the flattened zeros."""
    shape, idx = call.attrs
    pos, target = _positions(g, shape, idx)
    updates = g.op("Reshape", g.op("Expand", call.inputs[0], g.ints(target)), g.ints([-1]))
    zeros = g.fill(0, call.out_dtype, [int(np.prod(shape))])
    return g.op("Reshape", g.op("ScatterND", zeros, pos, updates, reduction="add"), g.ints(shape))


@ix.index_put.defonnx
def _(g, call):
    """x with x[idx] = value: ScatterND on the flattened x (positions of distinct indices)."""
    x, value = call.inputs
    shape = call.arrays[0].shape
    pos, target = _positions(g, shape, call.attrs[0])
    value = g.cast(value, call.arrays[1].dtype, call.out_dtype)
    updates = g.op("Reshape", g.op("Expand", value, g.ints(target)), g.ints([-1]))
    flat = g.op("Reshape", x, g.ints([-1]))
    return g.op("Reshape", g.op("ScatterND", flat, pos, updates), g.op("Shape", x))


# ---------------- the target arrays of nll_loss / cross_entropy (nn/loss.py) ----------------
@defhost("tinygrad_lite.nn.loss._nll_arrays")
def _(g, call):
    """(gather index, -w, w, valid, total weight or 1, NaN or 0) from the class-index targets, in the graph (the
    targets are an input: their weights, ignored entries and the mean's denominator must follow them)."""
    t_arr, w_arr, ignore_index, dtype, _, _ = call.attrs
    t = g.tensor(t_arr)
    info = np.iinfo(t_arr.dtype)
    if info.min <= ignore_index <= info.max:
        valid = g.op("Not", g.op("Equal", t, g.scalar(ignore_index, t_arr.dtype)))
    else:  # no target can equal it
        valid = g.op("Equal", t, t)
    safe = g.op("Where", valid, t, g.scalar(0, t_arr.dtype))
    ok = g.op("Cast", valid, to=g.dtype(dtype))
    if w_arr is None:
        w = ok
    else:
        picked = g.cast(g.op("Gather", g.tensor(w_arr), safe, axis=0), w_arr.dtype, dtype)
        w = g.op("Mul", picked, ok)
    _, denom, nan = _safe_denominator(g, g.op("ReduceSum", w, keepdims=0), dtype)
    return g.op("Unsqueeze", safe, g.ints([1])), g.op("Neg", w), w, ok, denom, nan


def _safe_denominator(g, d, dtype):
    """(d == 0, d or 1, NaN or 0) of a mean's denominator `d` (an ONNX value): nn.loss._safe_denominator's."""
    none = g.op("Equal", d, g.scalar(0, dtype))
    return none, g.op("Where", none, g.scalar(1, dtype), d), g.op("Where", none, g.scalar(np.nan, dtype),
                                                                  g.scalar(0, dtype))


@defhost("tinygrad_lite.nn.loss._safe_denominator")
def _(g, call):
    """A weighted mean's denominator computed from the targets."""
    return _safe_denominator(g, g.tensor(call.attrs[0]), np.asarray(call.attrs[0]).dtype)
