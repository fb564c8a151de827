"""ONNX rules of the reductions (see Primitive.defonnx) and of the masks their VJPs compute outside primitives."""
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
