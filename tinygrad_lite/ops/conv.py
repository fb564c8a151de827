"""Sliding windows (im2col) and their adjoint (col2im). Convolution and pooling are compositions of these.

`unfold(x, kernel, dilation, padding, stride)` maps (N, C, H, W) to a (N, C, kh, kw, oh, ow) array of windows; it is
a strided view whenever no padding is needed, so pooling reads windows without copying them. `fold` is its
adjoint: it adds each window back to its place, one strided slice-add per kernel offset (no `np.add.at`).
"""
import numpy as np

from . import batching
from .registry import primitive
from .elementwise import same_op_jvp


def out_size(size, k, d, p, s):
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def _conv_sample(gen):
    n, c = gen.integers(1, 3, ()).item(), gen.integers(1, 3, ()).item()
    k = (gen.integers(1, 4, ()).item(), gen.integers(1, 3, ()).item())
    d = (gen.choice([1, 2]), 1)
    p = (gen.choice([0, 1]), gen.choice([0, 1]))
    s = (gen.choice([1, 2]), gen.choice([1, 2]))
    h = d[0] * (k[0] - 1) + 1 + gen.integers(0, 3, ()).item()
    w = d[1] * (k[1] - 1) + 1 + gen.integers(0, 3, ()).item()
    return (n, c, h, w), (k, d, p, s)


def _unfold_sample(gen):
    shape, params = _conv_sample(gen)
    return [gen.array(shape, -2, 2)], params


@primitive("unfold", attrs=("kernel_size", "dilation", "padding", "stride"), sample=_unfold_sample,
           expects="a (N, C, H, W) input at least as large as the dilated kernel", reads=())
def unfold(x, k, d, p, s):
    if x.ndim != 4:
        raise ValueError(f"expected a 4-D (N, C, H, W) input, got {x.ndim}-D")
    n, c, h, w = x.shape
    oh, ow = out_size(h, k[0], d[0], p[0], s[0]), out_size(w, k[1], d[1], p[1], s[1])
    if oh <= 0 or ow <= 0:
        raise ValueError(f"kernel {k} with dilation {d} does not fit the padded input {(h + 2 * p[0], w + 2 * p[1])}")
    if p[0] or p[1]:
        x = np.pad(x, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])))
    sn, sc, sh, sw = x.strides
    return np.lib.stride_tricks.as_strided(
        x, (n, c, k[0], k[1], oh, ow), (sn, sc, sh * d[0], sw * d[1], sh * s[0], sw * s[1]), writeable=False)


@unfold.defvjp
def _(ctx, g):
    shape = ctx.saved[0]._data.shape
    return (fold(g, shape[2:], *ctx.attrs),)


def _fold_sample(gen):
    shape, (k, d, p, s) = _conv_sample(gen)
    n, c, h, w = shape
    oh, ow = out_size(h, k[0], d[0], p[0], s[0]), out_size(w, k[1], d[1], p[1], s[1])
    return [gen.array((n, c, k[0], k[1], oh, ow), -2, 2)], ((h, w), k, d, p, s)


@primitive("fold", attrs=("output_size", "kernel_size", "dilation", "padding", "stride"), sample=_fold_sample,
           expects="(N, C, kh, kw, oh, ow) windows matching output_size", reads=())
def fold(cols, size, k, d, p, s):
    n, c, kh, kw, oh, ow = cols.shape
    if (kh, kw) != tuple(k) or (oh, ow) != (out_size(size[0], k[0], d[0], p[0], s[0]),
                                            out_size(size[1], k[1], d[1], p[1], s[1])):
        raise ValueError(f"windows of shape {cols.shape} do not match output_size {tuple(size)} with kernel {k}")
    hp, wp = size[0] + 2 * p[0], size[1] + 2 * p[1]
    out = np.zeros((n, c, hp, wp), dtype=cols.dtype)
    for i in range(kh):
        hi = i * d[0]
        for j in range(kw):
            wj = j * d[1]
            out[:, :, hi:hi + s[0] * (oh - 1) + 1:s[0], wj:wj + s[1] * (ow - 1) + 1:s[1]] += cols[:, :, i, j]
    if p[0] or p[1]:
        out = out[:, :, p[0]:p[0] + size[0], p[1]:p[1] + size[1]]
    return out


@fold.defvjp
def _(ctx, g):
    return (unfold(g, *ctx.attrs[1:]),)


unfold.defjvp(same_op_jvp(unfold))
fold.defjvp(same_op_jvp(fold))
unfold.defbatch(batching.with_batch_dim(unfold.forward))
fold.defbatch(batching.with_batch_dim(fold.forward))
