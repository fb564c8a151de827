"""Sliding windows (im2col) and their adjoint (col2im). Convolution and pooling are compositions of these.

`unfold(x, kernel, dilation, padding, stride)` maps (N, C, H, W) to a (N, C, kh, kw, oh, ow) array of windows; it is
a strided view whenever no padding is needed, so pooling reads windows without copying them. `fold` is its
adjoint: it adds each window back to its place, one strided slice-add per kernel offset (no `np.add.at`).
"""
import numpy as np

from . import batching
from .registry import primitive
from .elementwise import same_op_jvp
from .workspace import scratch, zeroed


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
    return _fold_into(np.empty((n, c) + tuple(size), dtype=cols.dtype), cols, size, k, d, p, s)


def _fold_into(out, cols, size, k, d, p, s):
    """out = 0, then each kernel offset's windows added at their place, in offset order; the parts of a window
    that fall on the padding are skipped rather than added to a padded copy and cut off (the same sums).
    NumPy runs one inner loop per output row of each add: rows of 28 or fewer windows are added with (N, C)
    innermost instead (a transposed copy of the windows, then one long loop per add; 668 -> 516 us for W3's
    (32, 8, 3, 3, 14, 14)), unless the copy would outgrow the cache (8 MB: then it costs more than it saves)."""
    n, c, kh, kw, oh, ow = cols.shape
    src = cols.transpose(2, 3, 4, 5, 0, 1)  # (kh, kw, oh, ow, N, C): the same sums in the same order either way
    short = ow <= 28 and cols.nbytes <= 8 << 20
    if short:  # (both work arrays reused from call to call: no multi-MB allocation per step)
        windows = scratch("fold.windows", src.shape, cols.dtype)
        np.copyto(windows, src)
        src = windows
        target = zeroed("fold.sums", tuple(size) + (n, c), cols.dtype)
    else:
        out.fill(0)
        target = out.transpose(2, 3, 0, 1)
    rows = [_inside(i * d[0] - p[0], s[0], oh, size[0]) for i in range(kh)]
    cols_ = [_inside(j * d[1] - p[1], s[1], ow, size[1]) for j in range(kw)]
    for i, (ya, yb) in enumerate(rows):
        if ya >= yb:
            continue
        r0 = i * d[0] - p[0] + s[0] * ya
        for j, (xa, xb) in enumerate(cols_):
            if xa >= xb:
                continue
            c0 = j * d[1] - p[1] + s[1] * xa
            target[r0:r0 + s[0] * (yb - ya - 1) + 1:s[0], c0:c0 + s[1] * (xb - xa - 1) + 1:s[1]] += \
                src[i, j, ya:yb, xa:xb]
    if short:
        np.copyto(out, target.transpose(2, 3, 0, 1))
    return out


def _inside(start, step, count, size):
    """[a, b): the window positions y in [0, count) whose place start + step*y lies in [0, size)."""
    a = 0 if start >= 0 else -(start // step)  # ceil(-start / step)
    b = min(count, (size - 1 - start) // step + 1) if size - 1 - start >= 0 else 0
    return a, max(a, b)


fold.definto(lambda out, cols, size, k, d, p, s: _fold_into(out, cols, size, k, d, p, s))


@fold.defvjp
def _(ctx, g):
    return (unfold(g, *ctx.attrs[1:]),)


unfold.defjvp(same_op_jvp(unfold))
fold.defjvp(same_op_jvp(fold))
unfold.defbatch(batching.with_batch_dim(unfold.forward))
fold.defbatch(batching.with_batch_dim(fold.forward))
