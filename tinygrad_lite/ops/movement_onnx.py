"""ONNX rules of the shape primitives (see Primitive.defonnx), and of the NumPy host computations on shapes."""
import numpy as np

from . import movement as mv
from ..onnx.rules import defhost


@mv.reshape.defonnx
def _(g, call):
    return g.op("Reshape", call.inputs[0], g.ints(call.attrs[0]))


@mv.permute.defonnx
def _(g, call):
    return g.op("Transpose", call.inputs[0], perm=[int(a) for a in call.attrs[0]])


@mv.expand.defonnx
def _(g, call):
    return g.op("Expand", call.inputs[0], g.ints(call.attrs[0]))


@mv.cat.defonnx
def _(g, call):
    return g.op("Concat", *call.inputs, axis=int(call.attrs[0]))


@mv.pad.defonnx
def _(g, call):
    width, value = call.attrs
    pads = [b for b, _ in width] + [e for _, e in width]
    return g.op("Pad", call.inputs[0], g.ints(pads), g.scalar(value, call.out_dtype))


# ---------------- host computations on shapes ----------------
@defhost(np.reshape)
def _(g, call):
    arr, shape = call.attrs[:2]
    return g.op("Reshape", g.tensor(arr), g.ints(shape if isinstance(shape, (tuple, list)) else [shape]))


def _filled(value):
    def rule(g, call):
        shape, dtype = (tuple(call.attrs) + (np.float64,))[:2]
        shape = shape if isinstance(shape, (tuple, list)) else (shape,)
        return g.fill(value, dtype, shape)
    return rule


defhost(np.ones)(_filled(1))
defhost(np.zeros)(_filled(0))


@defhost(np.squeeze)
def _(g, call):
    """max(dim)/min(dim)'s indices without keepdim (axis None: the recorded size-1 axes)."""
    arr, axis = (tuple(call.attrs) + (None,))[:2]
    if axis is None:
        axis = [i for i, s in enumerate(np.shape(arr)) if s == 1]
    axes = [axis] if isinstance(axis, (int, np.integer)) else list(axis)
    return g.op("Squeeze", g.tensor(arr), g.ints(axes)) if axes else g.op("Identity", g.tensor(arr))
