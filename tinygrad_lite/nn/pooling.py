"""2-D max and average pooling, as torch.nn.MaxPool2d / AvgPool2d.

Max pooling follows PyTorch's algorithm: find, per output, the flat input index of the window's maximum (the
first one on ties; NaN wins), then `gather` the input at those indices. So the gradient goes to the argmax element
only, exactly as PyTorch's max-pool backward (a scatter-add of the output gradient at the indices) — `amax` over
the windows would split it among tied elements instead, which differs after a ReLU, where ties at 0 are common.
The arg-max search compares the input's strided views, one per kernel offset, copied into contiguous planes.

Average pooling sums the `windows` view (no copy when there is no padding) over the kernel axes and divides by
PyTorch's per-window divisor (count_include_pad, ceil_mode overhang, divisor_override)."""
import numbers
import sys

import numpy as np

from .. import functional as _tf
from ..autograd.recorder import apply, labelled
from ..compile.hooks import batching_rule, constant, data, host, into_rule
from ..ops.index import gather
from ..ops.workspace import scratch, zeroed
from ..ops.registry import OpError
from ..tensor import Tensor
from .conv import _pair as _conv_pair
from .module import Module


def _pair(v, name, where):
    return _conv_pair(v, name, where, allow_single=True)


def _args(kernel_size, stride, padding, dilation, where, max_pool):
    """Kernel, stride, padding and dilation pairs, checked as PyTorch's pooling checks them (naming `where`)."""
    k = _pair(kernel_size, "kernel_size", where)
    s = k if stride is None or (not isinstance(stride, numbers.Integral) and len(stride) == 0) \
        else _pair(stride, "stride", where)
    p, d = _pair(padding, "padding", where), _pair(dilation, "dilation", where)
    _check_positive(k, s, p, d, where)
    _check_half_kernel(k, p, d, where, max_pool)
    return k, s, p, d


def _check_positive(k, s, p, d, where):
    if min(k) <= 0 or min(s) <= 0 or min(d) <= 0 or min(p) < 0:
        raise OpError(f"{where}: kernel_size {k}, stride {s} and dilation {d} must be positive and padding {p} "
                      f"non-negative")


def _check_half_kernel(k, p, d, where, max_pool):
    for i in range(2):
        limit = (d[i] * (k[i] - 1) + 1) / 2 if max_pool else k[i] / 2
        if p[i] > limit:
            raise OpError(f"{where}: pad should be at most half of effective kernel size, but got pad={p[i]}, "
                          f"kernel_size={k[i]} and dilation={d[i]}")


def _out_size(size, k, s, p, d, ceil_mode):
    """PyTorch's pooling_output_shape."""
    num = size + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)
    out = num // s + 1
    if ceil_mode and (out - 1) * s >= size + p:  # the last window must start inside the input or left padding
        out -= 1
    return out


def _setup(input, kernel_size, stride, padding, dilation, ceil_mode, where, max_pool):
    if not isinstance(input, Tensor):
        raise TypeError(f"{where}: expected a Tensor input, got {type(input).__name__}")
    if input.ndim not in (3, 4):
        raise OpError(f"{where}: expected a 3-D (C, H, W) or 4-D (N, C, H, W) input, got shape {tuple(input.shape)}")
    k, s, p, d = _args(kernel_size, stride, padding, dilation, where, max_pool)
    h, w = input.shape[-2:]
    oh, ow = _out_size(h, k[0], s[0], p[0], d[0], ceil_mode), _out_size(w, k[1], s[1], p[1], d[1], ceil_mode)
    if oh <= 0 or ow <= 0:
        raise OpError(f"{where}: output size is too small: input shape {tuple(input.shape)}, kernel_size {k}, "
                      f"stride {s}, padding {p}, dilation {d} give a ({oh}, {ow}) output")
    # rows/columns beyond the padded input that ceil_mode windows reach
    extra = (max(0, (oh - 1) * s[0] + d[0] * (k[0] - 1) + 1 - (h + 2 * p[0])),
             max(0, (ow - 1) * s[1] + d[1] * (k[1] - 1) + 1 - (w + 2 * p[1])))
    return k, s, p, d, (oh, ow), extra


def _argmax_indices(x, k, s, p, d, out_hw, extra, out=None):
    """Flat (H*W) input index of each window's maximum: (N, C, oh, ow) int64 (PyTorch's max-pool indices),
    written into `out` when given (tl.compile's planned buffer)."""
    n, c, h, w = x.shape
    oh, ow = out_hw
    if p[0] or p[1] or extra[0] or extra[1]:
        x = np.pad(x, ((0, 0), (0, 0), (p[0], p[0] + extra[0]), (p[1], p[1] + extra[1])), constant_values=-np.inf)
    rows = np.arange(oh) * s[0] - p[0]  # window origins in input coordinates
    cols = np.arange(ow) * s[1] - p[1]
    origin = rows[:, None] * w + cols[None, :]
    offsets = [(i, j) for i in range(k[0]) for j in range(k[1])]
    views = [x[:, :, i * d[0]:i * d[0] + s[0] * (oh - 1) + 1:s[0], j * d[1]:j * d[1] + s[1] * (ow - 1) + 1:s[1]]
             for i, j in offsets]
    if not (p[0] or p[1]):  # the first offset is always in bounds
        planes = _pair_planes(x, k, s, d, out_hw, extra)
        if planes is None:
            planes = np.stack(views, out=scratch("first_max.planes", (len(views),) + views[0].shape, x.dtype))
        local, best = _first_max(planes)
        if best.size and np.isnan(best.max()):  # NaN wins in PyTorch: the search again, with that rule
            planes = _pair_planes(x, k, s, d, out_hw, extra)  # (the first search wrote its maxima into them)
            local, best = _first_max(np.stack(views) if planes is None else planes, nan_wins=True)
        table = np.array([i * d[0] * w + j * d[1] for i, j in offsets], dtype=np.int64)
        positions = scratch("argmax.positions", local.shape, np.int64)
        np.copyto(positions, local)  # (take would convert uint8 positions to a new intp array)
        indices = table.take(positions, out=out, mode="clip")  # (in range; "raise" would buffer `out`)
        indices += origin
        return indices
    # Padding: PyTorch starts each window at its first in-bounds element (on the dilation grid) with max -inf, and a
    # NaN always takes over (so the last NaN of the window is the max)
    nan = bool(np.isnan(x).any())
    r0 = np.where(rows < 0, rows + (-rows + d[0] - 1) // d[0] * d[0], rows)
    c0 = np.where(cols < 0, cols + (-cols + d[1] - 1) // d[1] * d[1], cols)
    best_off = np.broadcast_to(r0[:, None] * w + c0[None, :] - origin, (n, c, oh, ow)).copy()
    best = np.full((n, c, oh, ow), -np.inf, dtype=x.dtype)
    for (i, j), v in zip(offsets, views):
        off = i * d[0] * w + j * d[1]
        better = v > best  # strict: the first maximum wins ties
        if nan:
            better |= np.isnan(v)
            best = np.where(better, v, best)
        else:  # masked copies are slow in NumPy; max and integer arithmetic are not
            np.maximum(best, v, out=best)
        best_off += better * (off - best_off)
    best_off += origin
    if out is None:
        return best_off
    np.copyto(out, best_off)
    return out


def _pair_planes(x, k, s, d, out_hw, extra):
    """The planes of windows two columns wide at stride 2 (MaxPool2d(2)'s, or (k, 2) with stride (k, 2)), as
    (kh * 2, N, C, oh, ow) in window order, made without strided float copies; None where this does not apply.
    Copying each window offset's doubly strided view runs one inner loop of ow elements per output row (W3's 7 and
    14: ~100 us of np.stack for 200,000 floats); instead each pair of adjacent 4-byte columns is read as one
    little-endian uint64 (even column in the low half), whose rows are copied in long runs, and the two halves
    are split by a truncating cast and a shift: the same bits, 1.3-1.6x faster."""
    n, c, h, w = x.shape
    oh, ow = out_hw
    if (x.dtype.itemsize != 4 or sys.byteorder != "little" or not x.flags.c_contiguous or w % 2 or
            k[1] != 2 or s[1] != 2 or d != (1, 1) or s[0] != k[0] or extra != (0, 0) or oh * k[0] > h or
            ow * 2 != w):
        return None
    kh = k[0]
    words = x.view(np.uint64)[:, :, :oh * kh].reshape(n, c, oh, kh, ow)  # (a view: pairs of columns)
    rows = scratch("pair_planes.rows", (kh, n, c, oh, ow), np.uint64)
    np.copyto(rows, words.transpose(3, 0, 1, 2, 4))
    planes = scratch("first_max.planes", (kh * 2, n, c, oh, ow), x.dtype)
    halves = planes.view(np.uint32).reshape(kh, 2, n, c, oh, ow)
    np.copyto(halves[:, 0], rows, casting="unsafe")  # uint64 -> uint32 keeps the low half: the even column
    np.right_shift(rows, 32, out=rows)
    np.copyto(halves[:, 1], rows, casting="unsafe")
    return planes


def _first_max(planes, nan_wins=False):
    """Per window, the position (along the first axis of `planes`, one contiguous plane per window offset, or a
    list of them) of its first maximum, and the maximum; with `nan_wins`, a NaN takes over as in PyTorch (the
    window's last NaN). The maxima accumulate in planes[0] (the caller's work array). Comparisons of contiguous
    planes are several times faster than of strided views, and the positions are kept in the smallest integer type
    (uint8 arithmetic wraps exactly). Shared with adaptive max pooling. Both results are work arrays
    (workspace.py), valid until the next call: use them at once."""
    best = planes[0]
    shape = best.shape
    local = zeroed("first_max.local", shape, np.uint8 if len(planes) <= 256 else np.int64)
    better, nan, step = (scratch("first_max.better", shape, bool), scratch("first_max.nan", shape, bool),
                         scratch("first_max.step", shape, local.dtype))
    for t in range(1, len(planes)):
        v = planes[t]
        np.greater(v, best, out=better)  # strict: the first maximum wins ties
        if nan_wins:
            better |= np.isnan(v, out=nan)
            np.copyto(best, v, where=better)
        else:  # masked copies are slow in NumPy; max and integer arithmetic are not
            np.maximum(best, v, out=best)
        np.subtract(t, local, out=step)  # local += better * (t - local): t where better, else unchanged
        step *= better                   # (mod 256 for uint8: exact)
        local += step
    return local, best


@labelled("MaxPool2DWithIndicesBackward0")
def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False, *,
               _name="max_pool2d"):
    """Max over sliding windows (padding counts as -inf); with return_indices, also the flat H*W indices."""
    if input.ndim == 3:
        res = max_pool2d(input.unsqueeze(0), kernel_size, stride, padding, dilation, ceil_mode, return_indices,
                         _name=_name)
        return (res[0].squeeze(0), res[1].squeeze(0)) if return_indices else res.squeeze(0)
    k, s, p, d, (oh, ow), extra = _setup(input, kernel_size, stride, padding, dilation, ceil_mode, _name, True)
    n, c, h, w = input.shape
    idx = host(_argmax_indices, data(input), k, s, p, d, (oh, ow), extra)
    # the gather primitive itself, not Tensor.gather: these indices are in range by construction and this call's
    # own (the caller gets a copy), so neither its range check (two passes) nor its copy of the index is needed
    out = apply(gather, (input.reshape(n, c, h * w),), (2, host(np.reshape, idx, (n, c, oh * ow))))
    out = out.reshape(n, c, oh, ow)
    return (out, Tensor._wrap(host(np.copy, idx))) if return_indices else out


def _avg_divisor(size, k, s, p, out, count_include_pad):
    """Per-output-position divisor along one dim, as PyTorch's avg_pool2d computes it."""
    start = np.arange(out) * s - p
    end = np.minimum(start + k, size + p)
    pool = end - start
    if count_include_pad:
        return pool
    return np.minimum(end, size) - np.maximum(start, 0)


@labelled("AvgPool2DBackward0")
def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None, *, _name="avg_pool2d"):
    """Mean over sliding windows (zero padding), with PyTorch's divisor rules."""
    if input.ndim == 3:
        return avg_pool2d(input.unsqueeze(0), kernel_size, stride, padding, ceil_mode, count_include_pad,
                          divisor_override, _name=_name).squeeze(0)
    k, s, p, _, (oh, ow), extra = _setup(input, kernel_size, stride, padding, 1, ceil_mode, _name, False)
    h, w = input.shape[-2:]
    x = input
    if extra[0] or extra[1]:  # ceil_mode overhang: pad explicitly (zeros, excluded from the divisor)
        x = _tf.pad(x, (p[1], p[1] + extra[1], p[0], p[0] + extra[0]))
        win = _tf.windows(x, k, (1, 1), (0, 0), s)
    else:
        win = _tf.windows(x, k, (1, 1), p, s)
    total = win.sum((2, 3))
    if divisor_override is not None:
        if divisor_override == 0:
            raise ValueError(f"{_name}: divisor_override must be non-zero")
        return total / float(divisor_override)
    dh = _avg_divisor(h, k[0], s[0], p[0], oh, count_include_pad)
    dw = _avg_divisor(w, k[1], s[1], p[1], ow, count_include_pad)
    if (dh == k[0]).all() and (dw == k[1]).all():
        return total / float(k[0] * k[1])
    return total / Tensor._wrap(constant((dh[:, None] * dw[None, :]).astype(input.dtype)))  # from shapes only


class MaxPool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False, ceil_mode=False):
        super().__init__()
        _args(kernel_size, stride, padding, dilation, "MaxPool2d", True)
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding, self.dilation = padding, dilation
        self.return_indices, self.ceil_mode = return_indices, ceil_mode

    def forward(self, input):
        return max_pool2d(input, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode,
                          self.return_indices, _name="MaxPool2d")

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class AvgPool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None):
        super().__init__()
        _args(kernel_size, stride, padding, 1, "AvgPool2d", False)
        if divisor_override == 0:
            raise ValueError("AvgPool2d: divisor_override must be non-zero")
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding, self.ceil_mode = padding, ceil_mode
        self.count_include_pad, self.divisor_override = count_include_pad, divisor_override

    def forward(self, input):
        return avg_pool2d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                          self.count_include_pad, self.divisor_override, _name="AvgPool2d")

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"



@into_rule(_argmax_indices)
def _(out, x, k, s, p, d, out_hw, extra):
    return _argmax_indices(x, k, s, p, d, out_hw, extra, out=out)


@batching_rule(_argmax_indices)
def _(args, batched):
    """The batch merged into N (windows never cross images) and split off again."""
    x, *rest = args
    out = _argmax_indices(x.reshape((-1,) + x.shape[2:]), *rest)
    return out.reshape(x.shape[:2] + out.shape[1:])
