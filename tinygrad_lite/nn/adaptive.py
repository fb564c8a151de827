"""Adaptive 2-D average and max pooling, as torch.nn.AdaptiveAvgPool2d / AdaptiveMaxPool2d.

Output cell i along a dim of input size `n` and output size `o` covers [floor(i*n/o), ceil((i+1)*n/o)) (PyTorch's
rule; windows may differ in size and overlap). Where `o` divides `n` every window has size n/o and stride n/o, so
these are the plain pooling layers with kernel = stride = n/o (and, for the average at (1, 1), a mean over H, W).
Otherwise the average is a matmul with constant 0/1 window matrices on both sides, divided by the constant window
areas, and the max finds each window's first maximum on the host (NaN wins, as PyTorch) and gathers it, so the
gradient goes to that element only, as PyTorch's adaptive max-pool backward."""
import numbers

import numpy as np

from ..autograd.recorder import call_arg, labelled
from ..compile.hooks import batching_rule, constant, data, host
from ..ops.registry import OpError
from ..tensor import Tensor
from .module import Module
from .pooling import _first_max, avg_pool2d, max_pool2d


def _windows(n, o):
    """PyTorch's adaptive window bounds along one dim: (start, end) arrays of length o."""
    i = np.arange(o)
    return (i * n) // o, -((-(i + 1) * n) // o)


def _output_size(input, output_size, where):
    """(oh, ow) from an int, a pair, or None entries (keep that input size), checked as PyTorch checks them."""
    if output_size is None or isinstance(output_size, numbers.Integral):
        size = (output_size, output_size)
    elif isinstance(output_size, (tuple, list)) and len(output_size) == 2:
        size = tuple(output_size)
    elif isinstance(output_size, (tuple, list)):
        raise ValueError(f"{where}: output_size must be an int, None or a pair, got {output_size!r} (input shape "
                         f"{tuple(input.shape)})")
    else:
        raise TypeError(f"{where}: output_size must be an int, None or a pair, got {output_size!r}")
    out = []
    for v, n in zip(size, input.shape[-2:]):
        if v is not None and not isinstance(v, numbers.Integral):
            raise TypeError(f"{where}: output_size entries must be ints or None, got {output_size!r}")
        out.append(int(n) if v is None else int(v))
    if min(out) < 0:
        raise OpError(f"{where}: elements of output_size must be greater than or equal to 0 but received "
                      f"{{{out[0]}, {out[1]}}}")
    return tuple(out)


def _setup(input, output_size, where):
    if not isinstance(input, Tensor):
        raise TypeError(f"{where}(): expected a Tensor input, got {type(input).__name__}")
    if input.ndim not in (3, 4):
        colon = ":" if where == "adaptive_max_pool2d" else ""  # (PyTorch's two messages differ so)
        raise OpError(f"{where}(): Expected 3D or 4D tensor, but got{colon} {list(input.shape)}")
    for d in range(1, input.ndim) if input.ndim == 4 else range(input.ndim):
        if input.shape[d] == 0:
            raise OpError(f"{where}(): Expected input to have non-zero size for non-batch dimensions, but input has "
                          f"sizes {list(input.shape)} with dimension {d} being empty")
    return _output_size(input, output_size, where)


def _window_matrix(n, o, dtype):
    """(o, n) 0/1 matrix: row i selects window i; and the (o,) window lengths."""
    start, end = _windows(n, o)
    cols = np.arange(n)
    m = ((cols >= start[:, None]) & (cols < end[:, None])).astype(dtype)
    return m, (end - start).astype(dtype)


def _adaptive_avg_node(args, kwargs):
    """PyTorch's node: a mean over each map for an output of (1, 1) (the mean names it), else its own."""
    size = _setup(call_arg(args, kwargs, 0, "input"), call_arg(args, kwargs, 1, "output_size"), "adaptive_avg_pool2d")
    return None if size == (1, 1) else "AdaptiveAvgPool2DBackward0"


@labelled(_adaptive_avg_node)
def adaptive_avg_pool2d(input, output_size):
    """Mean over PyTorch's adaptive windows of a (N, C, H, W) or (C, H, W) input."""
    oh, ow = _setup(input, output_size, "adaptive_avg_pool2d")
    h, w = input.shape[-2:]
    if (oh, ow) == (1, 1):
        return input.mean((-2, -1), keepdim=True)
    if oh and ow and h % oh == 0 and w % ow == 0:
        k = (h // oh, w // ow)
        return avg_pool2d(input, k, k, _name="adaptive_avg_pool2d")
    mh, lh = _window_matrix(h, oh, input.dtype)
    mw, lw = _window_matrix(w, ow, input.dtype)
    sums = Tensor._wrap(constant(mh)) @ input @ Tensor._wrap(constant(np.ascontiguousarray(mw.T)))
    return sums / Tensor._wrap(constant(lh[:, None] * lw[None, :]))  # from shapes only


def _window_table(h, w, oh, ow):
    """(oh*ow, K) flat H*W indices of each adaptive window's elements in row-major order, every window padded to the
    largest size K by repeating its last element (which never displaces an earlier maximum)."""
    if not oh or not ow:
        return np.zeros((0, 1), np.int64)
    (sh, eh), (sw, ew) = _windows(h, oh), _windows(w, ow)
    kh, kw = int((eh - sh).max()), int((ew - sw).max())
    rows = np.minimum(sh[:, None] + np.arange(kh), eh[:, None] - 1)  # (oh, kh)
    cols = np.minimum(sw[:, None] + np.arange(kw), ew[:, None] - 1)  # (ow, kw)
    return (rows[:, None, :, None] * w + cols[None, :, None, :]).reshape(oh * ow, kh * kw).astype(np.int64)


def _adaptive_argmax(x, table):
    """Flat (H*W) index of each window's first maximum (the last NaN, where one is present, as PyTorch):
    (N, C, oh*ow) int64, from the windows' index table."""
    n, c = x.shape[:2]
    flat = x.reshape(n, c, -1)
    local, _ = _first_max([flat[:, :, table[:, t]] for t in range(table.shape[1])], nan_wins=True)
    return table[np.arange(table.shape[0]), local]  # (N, C, oh*ow)


def adaptive_max_pool2d(input, output_size, return_indices=False):
    """Max over PyTorch's adaptive windows; with return_indices, also the flat H*W index of each maximum."""
    oh, ow = _setup(input, output_size, "adaptive_max_pool2d")
    h, w = input.shape[-2:]
    if oh and ow and h % oh == 0 and w % ow == 0:
        k = (h // oh, w // ow)
        return max_pool2d(input, k, k, return_indices=return_indices, _name="adaptive_max_pool2d")
    if input.ndim == 3:
        res = adaptive_max_pool2d(input.unsqueeze(0), (oh, ow), return_indices)
        return (res[0].squeeze(0), res[1].squeeze(0)) if return_indices else res.squeeze(0)
    n, c = input.shape[:2]
    idx = host(_adaptive_argmax, data(input), constant(_window_table(h, w, oh, ow)))  # (N, C, oh*ow)
    out = input.reshape(n, c, h * w).gather(2, idx).reshape(n, c, oh, ow)
    return (out, Tensor._wrap(host(np.reshape, idx, (n, c, oh, ow)))) if return_indices else out


class AdaptiveAvgPool2d(Module):
    """Average pooling to a fixed output size (see `adaptive_avg_pool2d`)."""

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, input):
        return adaptive_avg_pool2d(input, self.output_size)

    def extra_repr(self):
        return f"output_size={self.output_size}"


class AdaptiveMaxPool2d(Module):
    """Max pooling to a fixed output size (see `adaptive_max_pool2d`)."""

    def __init__(self, output_size, return_indices=False):
        super().__init__()
        self.output_size, self.return_indices = output_size, return_indices

    def forward(self, input):
        return adaptive_max_pool2d(input, self.output_size, self.return_indices)

    def extra_repr(self):
        return f"output_size={self.output_size}"


@batching_rule(_adaptive_argmax)
def _(args, batched):
    """The batch merged into N (windows never cross images) and split off again."""
    x, table = args
    out = _adaptive_argmax(x.reshape((-1,) + x.shape[2:]), table)
    return out.reshape(x.shape[:2] + out.shape[1:])
