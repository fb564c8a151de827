"""ONNX rules of the sliding-window primitives (see Primitive.defonnx). ONNX has no im2col: unfold is a grouped
Conv with one-hot kernels (each output channel copies one kernel offset: multiplications by 1, exact), and fold,
its adjoint, the ConvTranspose with the same kernels. Max-pooling's argmax is MaxPool's Indices output; adaptive
max-pooling's (uneven windows) an ArgMax over the windows gathered by a constant index table."""
import numpy as np

from . import conv
from ..onnx.rules import defhost


def _one_hot_kernels(c, k, dtype):
    """(C*kh*kw, 1, kh, kw): output channel c*kh*kw + i*kw + j reads offset (i, j) of input channel c."""
    kk = k[0] * k[1]
    w = np.zeros((c * kk, 1, k[0], k[1]), dtype=dtype)
    w.reshape(c, kk, kk)[:, np.arange(kk), np.arange(kk)] = 1
    return w


def _window_attrs(k, d, p, s):
    return dict(kernel_shape=list(k), dilations=list(d), pads=[p[0], p[1], p[0], p[1]], strides=list(s))


@conv.unfold.defonnx
def _(g, call):
    """(N, C, H, W) -> (N, C, kh, kw, oh, ow): Conv(group=C) with one-hot kernels, then Reshape."""
    k, d, p, s = call.attrs
    c = call.arrays[0].shape[1]
    w = g.const(_one_hot_kernels(c, k, call.out_dtype))
    cols = g.op("Conv", call.inputs[0], w, group=c, **_window_attrs(k, d, p, s))
    oh, ow = call.out_shape[4:]
    return g.op("Reshape", cols, g.ints([0, c, k[0], k[1], oh, ow]))  # 0: N copied from the input


@conv.fold.defonnx
def _(g, call):
    """(N, C, kh, kw, oh, ow) -> (N, C, H, W): ConvTranspose(group=C) with the one-hot kernels (overlaps add);
    output_padding reaches rows/columns that no window ends on."""
    size, k, d, p, s = call.attrs
    _, c, _, _, oh, ow = call.arrays[0].shape
    cols = g.op("Reshape", call.inputs[0], g.ints([0, c * k[0] * k[1], oh, ow]))
    w = g.const(_one_hot_kernels(c, k, call.out_dtype))
    reach = [s[i] * ((oh, ow)[i] - 1) + d[i] * (k[i] - 1) + 1 - 2 * p[i] for i in range(2)]
    extra = [int(size[i]) - reach[i] for i in range(2)]
    return g.op("ConvTranspose", cols, w, group=c, output_padding=extra, **_window_attrs(k, d, p, s))


@defhost("tinygrad_lite.nn.pooling._argmax_indices")
def _(g, call):
    """Per-plane flat (H*W) index of each window's maximum: MaxPool's Indices (flat over N*C*H*W) mod H*W. A
    window holding a NaN takes its last NaN in scan order, as eager's argmax and PyTorch's max-pool do (a NaN
    replaces the running maximum): onnxruntime's MaxPool compares with '>' and passes over NaN, so the NaNs' plane
    positions (1-based, exact in float32 up to 2**24 per plane) are max-pooled too, and the largest wins where any."""
    x_arr, k, s, p, d, _, extra = call.attrs
    h, w = x_arr.shape[2:]
    attrs = dict(_window_attrs(k, d, p, s), ceil_mode=int(bool(extra[0] or extra[1])))
    x = g.tensor(x_arr)
    _, idx = g.op("MaxPool", x, outputs=2, **attrs)
    dt = np.float32 if h * w < 2 ** 24 else np.float64
    positions = g.const(np.arange(1, h * w + 1, dtype=dt).reshape(h, w))
    nan_at = g.op("Mul", g.op("Cast", g.op("IsNaN", x), to=g.dtype(dt)), positions)
    last_nan, nan_idx = g.op("MaxPool", nan_at, outputs=2, **attrs)
    idx = g.op("Where", g.op("Greater", last_nan, g.scalar(0, dt)), nan_idx, idx)
    return g.op("Mod", idx, g.scalar(h * w, np.int64))


@defhost("tinygrad_lite.nn.adaptive._adaptive_argmax")
def _(g, call):
    """Gather every window from the flattened planes with the constant (oh*ow, K) index table, take the first
    ArgMax over the window and map it back through the table: (N, C, oh*ow)."""
    x_arr, table = call.attrs
    flat = g.op("Reshape", g.tensor(x_arr), g.ints([0, 0, -1]))
    windows = g.op("Gather", flat, g.tensor(table), axis=2)  # (N, C, oh*ow, K)
    local = g.op("ArgMax", windows, axis=3, keepdims=1, select_last_index=0)
    full = g.op("Expand", g.const(table[None, None]), g.op("Shape", windows))
    return g.op("Squeeze", g.op("GatherElements", full, local, axis=3), g.ints([3]))
