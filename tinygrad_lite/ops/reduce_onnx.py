"""ONNX rules of the reductions (see Primitive.defonnx), of the masks their VJPs compute outside primitives, and of
the indices argmax/argmin, max/min(dim), sort and topk compute on the host."""
import numpy as np

from . import reduce as rd
from ..onnx.rules import defhost
from .elementwise_onnx import mask_kind


def reduce_rule(op_type):
    """One Reduce* node (axes as an input, opset 18); axis () keeps the tensor, a 0-d input has nothing to
    reduce."""
    def rule(g, call):
        x = call.inputs[0]
        axis, keepdims = call.attrs
        if axis == () or call.arrays[0].ndim == 0:
            return g.op("Identity", x)
        axes = [] if axis is None else [axis] if isinstance(axis, int) else list(axis)
        return g.op(op_type, x, *([g.ints(axes)] if axes else []), keepdims=int(bool(keepdims)))
    rule.__doc__ = f"One {op_type} node."
    return rule


rd.sum_.defonnx(reduce_rule("ReduceSum"))
rd.amax.defonnx(reduce_rule("ReduceMax"))
rd.amin.defonnx(reduce_rule("ReduceMin"))
rd.prod.defonnx(reduce_rule("ReduceProd"))


@rd.cumsum.defonnx
def _(g, call):
    """CumSum along dim (accumulated in the tensor's dtype, where NumPy here accumulates float32 in float64)."""
    if call.arrays[0].ndim == 0:
        return g.op("Identity", call.inputs[0])
    return g.op("CumSum", call.inputs[0], g.const(np.asarray(call.attrs[0], dtype=np.int64)))


@rd.cumprod.defonnx
def _(g, call):
    """ONNX has no CumProd: a fixed pattern, out[..., i] = ReduceProd_j where(j <= i, x[..., j], 1), with the
    dim moved last (an n x n mask made from the run-time n: the dim may be a dynamic axis)."""
    x_arr = call.arrays[0]
    if x_arr.ndim == 0:
        return g.op("Identity", call.inputs[0])
    d = call.attrs[0] % x_arr.ndim
    perm = [i for i in range(x_arr.ndim) if i != d] + [d]
    inv = list(np.argsort(perm))
    xl = g.op("Transpose", call.inputs[0], perm=perm)
    rows = g.op("Unsqueeze", xl, g.ints([-2]))  # (..., 1, n): row i takes x_j for j <= i
    k = g.op("Range", g.scalar(0, np.int64), g.op("Squeeze", g.op("Shape", xl, start=-1), g.ints([0])),
             g.scalar(1, np.int64))
    mask = g.op("LessOrEqual", g.op("Unsqueeze", k, g.ints([0])), g.op("Unsqueeze", k, g.ints([1])))  # j <= i
    picked = g.op("Where", mask, rows, g.scalar(1, x_arr.dtype))
    out = g.op("ReduceProd", picked, g.ints([-1]), keepdims=0)
    return g.op("Transpose", out, perm=[int(i) for i in inv])


def _tie_share(op_type):
    """1/k at the k elements equal to their slice's extreme (amax/amin's factor), the extreme taken again."""
    def rule(g, xs, arrays, args, dt):
        x_arr = arrays[0]
        axis = args[0]
        axes = list(range(x_arr.ndim)) if axis is None else [axis] if isinstance(axis, int) else list(axis)
        if not axes or x_arr.ndim == 0:
            return g.fill(1, dt, x_arr.shape)
        ref = g.op(op_type, xs[0], g.ints(axes), keepdims=1)
        share = g.op("Cast", g.op("Equal", xs[0], ref), to=g.dtype(dt))
        return g.op("Div", share, g.op("ReduceSum", share, g.ints(axes), keepdims=1))
    return rule


mask_kind("tie_amax")(_tie_share("ReduceMax"))
mask_kind("tie_amin")(_tie_share("ReduceMin"))


@defhost(rd._prod_zero_masks)
def _(g, call):
    """(x == 0, the single zero of its slice, slices without zeros) as in prod's VJP."""
    x_arr, axis = call.attrs
    dt = x_arr.dtype
    zero = g.op("Equal", g.tensor(x_arr), g.scalar(0, dt))
    zf = g.op("Cast", zero, to=g.dtype(np.int64))
    axes = [] if axis is None else [axis] if isinstance(axis, int) else list(axis)
    nz = g.op("ReduceSum", zf, *([g.ints(axes)] if axes else []), keepdims=1)
    only = g.op("And", zero, g.op("Equal", nz, g.scalar(1, np.int64)))
    none = g.op("Expand", g.op("Equal", nz, g.scalar(0, np.int64)), g.ints(x_arr.shape))
    return zero, g.op("Cast", only, to=g.dtype(dt)), g.op("Cast", none, to=g.dtype(dt))


# ---------------- the shift of softmax / log_softmax / logsumexp (functional.py) ----------------
@defhost("tinygrad_lite.functional._max_keep")
def _(g, call):
    x_arr, axis = call.attrs
    axes = list(range(x_arr.ndim)) if axis is None else [axis] if isinstance(axis, int) else list(axis)
    return g.op("ReduceMax", g.tensor(x_arr), g.ints(axes), keepdims=1)


@defhost("tinygrad_lite.functional._finite_max")
def _(g, call):
    """The max over dims, kept, with infinities and NaN replaced by 0 (a shift that never makes inf - inf)."""
    x_arr, dims = call.attrs
    axes = list(range(x_arr.ndim)) if dims is None else [dims] if isinstance(dims, int) else list(dims)
    m = g.op("ReduceMax", g.tensor(x_arr), g.ints(axes), keepdims=1)
    bad = g.op("Or", g.op("IsInf", m), g.op("IsNaN", m))
    return g.op("Where", bad, g.scalar(0, x_arr.dtype), m)


# ---------------- argmax / argmin (functional.py), sort / argsort / topk (sorting.py) ----------------
# The indices are computed on the host with NumPy; in the graph they are ArgMax/ArgMin and TopK, whose ties go to
# the lowest index as ours (ArgMax's select_last_index=0; TopK's documented tie-break, both directions). NaN is
# where they differ: ours, as PyTorch, takes the first NaN for argmax and argmin and sorts NaN above every number,
# while onnxruntime's ArgMax skips NaN and the ONNX spec leaves NaN's place in TopK to the runtime; so for floats
# the NaNs are handled explicitly. The values are a recorded gather at these indices (their own rule).

def _orderable(g, x, dtype):
    """`x` in a dtype with ArgMax/TopK kernels in onnxruntime, same order (bool/int16/uint16/uint32 widened)."""
    dtype = np.dtype(dtype)
    wider = {"b": np.uint8, "i": np.int32 if dtype.itemsize == 2 else None,
             "u": np.int64 if dtype.itemsize in (2, 4) else None}.get(dtype.kind)
    if dtype == np.uint64:
        raise g.unsupported("ordering a uint64 tensor: onnxruntime has no ArgMax/TopK for it and int64 cannot "
                            "hold its values")
    return g.cast(x, dtype, wider) if wider is not None else x


@defhost("tinygrad_lite.functional._arg_index")
def _(g, call):
    """ArgMax/ArgMin (first extreme); for floats, the first NaN wins where a slice has one."""
    fn, x_arr, axis, keepdim = call.attrs
    if x_arr.ndim == 0:
        return g.const(np.zeros((), np.int64))
    x = g.tensor(x_arr)
    flat = axis is None and keepdim  # over the flattened tensor, every dim then kept with size 1
    if axis is None:
        x, axis, keepdim = g.op("Reshape", x, g.ints([-1])), 0, False
    attrs = dict(axis=int(axis), keepdims=int(bool(keepdim)), select_last_index=0)
    idx = g.op("ArgMax" if fn.__name__ == "argmax" else "ArgMin", _orderable(g, x, x_arr.dtype), **attrs)
    if x_arr.dtype.kind == "f":
        nan = g.op("Cast", g.op("IsNaN", x), to=g.dtype(np.uint8))
        has_nan = g.op("Cast", g.op("ReduceMax", nan, g.ints([axis]), keepdims=int(bool(keepdim))),
                       to=g.dtype(bool))
        idx = g.op("Where", has_nan, g.op("ArgMax", nan, **attrs), idx)
    return g.op("Reshape", idx, g.ints([1] * x_arr.ndim)) if flat else idx


def _stable_order(g, x, dtype, axis, k, n, largest):
    """The first k (a [1] int64 name) of the n indices that sort `x` along `axis` stably, NaN largest: TopK.
    For floats, two stable passes (least significant key first): by value with NaN read as +inf, then by
    "is NaN" in that order, which puts the NaNs after +inf ascending and before it descending."""
    flag = int(bool(largest))
    if np.dtype(dtype).kind != "f":
        return g.op("TopK", _orderable(g, x, dtype), k, outputs=2, axis=axis, largest=flag, sorted=1)[1]
    nan = g.op("IsNaN", x)
    key = g.op("Where", nan, g.scalar(np.inf, dtype), x)
    first = g.op("TopK", key, n, outputs=2, axis=axis, largest=flag, sorted=1)[1]
    nan = g.op("GatherElements", g.op("Cast", nan, to=g.dtype(np.uint8)), first, axis=axis)
    then = g.op("TopK", nan, k, outputs=2, axis=axis, largest=flag, sorted=1)[1]
    return g.op("GatherElements", first, then, axis=axis)


@defhost("tinygrad_lite.sorting._sort_indices")
def _(g, call):
    """All of TopK's indices along d (k = the run-time size, so d may be a dynamic axis)."""
    a_arr, d, descending = call.attrs
    if a_arr.ndim == 0:
        return g.const(np.zeros((), np.int64))
    x = g.tensor(a_arr)
    n = g.op("Shape", x, start=int(d), end=int(d) + 1)
    return _stable_order(g, x, a_arr.dtype, int(d), n, n, descending)


@defhost("tinygrad_lite.sorting._topk_indices")
def _(g, call):
    """TopK's first k indices along d (k and the size may follow dynamic axes)."""
    a_arr, d, k, n, largest = call.attrs
    if a_arr.ndim == 0:
        return g.const(np.zeros((), np.int64))
    return _stable_order(g, g.tensor(a_arr), a_arr.dtype, int(d), g.ints([k]), g.ints([n]), largest)
