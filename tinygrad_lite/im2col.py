"""Padding and im2col as compositions of the movement and conv primitives: F.pad (constant, reflect, replicate,
circular), F.unfold/F.fold, and `windows`, the strided (N, C, kh, kw, oh, ow) view Conv2d and the pooling layers
read. Re-exported by functional.py and tl.nn.functional."""
import numbers

import numpy as np

from .autograd import recorder as tape
from .compile.hooks import constant
from .ops import conv as cv, registry

_apply = tape.apply


_PAD_MODES = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def pad(input, pad, mode="constant", value=None):
    """torch.nn.functional.pad: `pad` lists (before, after) pairs starting from the last dim; value None is 0."""
    x, value = input, 0.0 if value is None else value  # PyTorch's names and default (None filled NaN here)
    if not isinstance(pad, (tuple, list)):
        raise TypeError(f"pad: pad must be a tuple of ints, got {type(pad).__name__}")
    if not isinstance(mode, str):
        raise TypeError(f"pad: mode must be a string ('constant', 'reflect', 'replicate' or 'circular'), got "
                        f"{type(mode).__name__}")
    pad = tuple(pad)
    if len(pad) % 2 or len(pad) // 2 > x._data.ndim:
        raise ValueError(f"pad: padding {pad} must have an even length of at most 2*{x._data.ndim} for shape "
                         f"{tuple(x.shape)}")
    if any(not isinstance(p, numbers.Integral) or p < 0 for p in pad):
        raise ValueError(f"pad: padding sizes must be non-negative ints, got {pad}")
    nd = x._data.ndim
    width = [(0, 0)] * nd
    for i in range(len(pad) // 2):
        width[nd - 1 - i] = (int(pad[2 * i]), int(pad[2 * i + 1]))
    if mode == "constant":
        return _apply(registry.REGISTRY["pad"], (x,), (tuple(width), value))
    if mode not in _PAD_MODES:
        raise ValueError(f"pad: unknown mode {mode!r} (expected 'constant', 'reflect', 'replicate' or 'circular')")
    for d, (b, a) in enumerate(width):
        if b or a:
            n = x._data.shape[d]
            if mode == "reflect" and (b >= n or a >= n):
                raise ValueError(f"pad: reflect padding ({b}, {a}) must be smaller than the dim size {n} "
                                 f"(dim {d} of shape {tuple(x.shape)})")
            if mode == "circular" and (b > n or a > n):
                raise ValueError(f"pad: circular padding ({b}, {a}) must be at most the dim size {n}")
            if n == 0:
                raise ValueError(f"pad: {mode} padding ({b}, {a}) of an empty dim (dim {d} of shape "
                                 f"{tuple(x.shape)}); only constant padding can extend it")
            idx = constant(np.pad(np.arange(n), (b, a), mode=_PAD_MODES[mode]))  # from shapes only
            x = x[(slice(None),) * d + (idx,)]
    return x


def _pair(v, name, opname, low):
    if isinstance(v, numbers.Integral) and not isinstance(v, bool):
        v = (int(v), int(v))
    elif (isinstance(v, (tuple, list)) and len(v) == 2
          and all(isinstance(i, numbers.Integral) and not isinstance(i, bool) for i in v)):
        v = (int(v[0]), int(v[1]))
    else:
        raise TypeError(f"{opname}: {name} must be an int or a pair of ints, got {v!r}")
    if v[0] < low or v[1] < low:
        raise ValueError(f"{opname}: {name} must be {'positive' if low else 'non-negative'}, got {v}")
    return v


def _conv_params(opname, **params):
    low = {"padding": 0}
    return [_pair(v, n, opname, low.get(n, 1)) for n, v in params.items()]


def unfold(input, kernel_size, dilation=1, padding=0, stride=1):
    """im2col: (N, C, H, W) -> (N, C*kh*kw, L), as torch.nn.functional.unfold; a (C, H, W) input gives (C*kh*kw, L)."""
    k, d, p, s = _conv_params("unfold", kernel_size=kernel_size, dilation=dilation, padding=padding, stride=stride)
    if input._data.ndim == 3:
        return unfold(input.unsqueeze(0), k, d, p, s).squeeze(0)
    w = windows(input, k, d, p, s)
    n, c, kh, kw, oh, ow = w.shape
    return w.reshape(n, c * kh * kw, oh * ow)


def windows(input, k, d=(1, 1), p=(0, 0), s=(1, 1)):
    """The (N, C, kh, kw, oh, ow) sliding windows of a (N, C, H, W) tensor: a view of the input, or of its
    zero-padded copy (a `pad` step of its own, which tl.compile writes into a reused buffer)."""
    if (p[0] or p[1]) and input._data.ndim == 4:  # (another rank: unfold's own error names it)
        width = ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1]))
        input, p = _apply(registry.REGISTRY["pad"], (input,), (width, 0.0)), (0, 0)
    return _apply(cv.unfold, (input,), (tuple(k), tuple(d), tuple(p), tuple(s)))


def fold(input, output_size, kernel_size, dilation=1, padding=0, stride=1):
    """col2im: (N, C*kh*kw, L) -> (N, C, H, W), summing overlaps, as torch.nn.functional.fold; a (C*kh*kw, L) input
    gives (C, H, W)."""
    size, k, d, p, s = _conv_params("fold", output_size=output_size, kernel_size=kernel_size, dilation=dilation,
                                    padding=padding, stride=stride)
    if input._data.ndim == 2:
        return fold(input.unsqueeze(0), size, k, d, p, s).squeeze(0)
    if input._data.ndim != 3:
        raise registry.OpError(f"fold: expected a (N, C*kh*kw, L) or (C*kh*kw, L) input, got shape "
                               f"{tuple(input.shape)}{registry.user_site()}")
    n, ckk, L = input.shape
    oh, ow = cv.out_size(size[0], k[0], d[0], p[0], s[0]), cv.out_size(size[1], k[1], d[1], p[1], s[1])
    if oh <= 0 or ow <= 0:
        raise registry.OpError(f"fold: output_size {size} with kernel {k}, dilation {d}, padding {p} and stride {s} "
                               f"leaves no room for a sliding block ({oh} x {ow} blocks){registry.user_site()}")
    if ckk % (k[0] * k[1]) or oh * ow != L:
        raise registry.OpError(f"fold: input of shape {tuple(input.shape)} does not match kernel {k} and "
                               f"output_size {size} (expected (N, C*{k[0] * k[1]}, {oh * ow})){registry.user_site()}")
    cols = input.reshape(n, ckk // (k[0] * k[1]), k[0], k[1], oh, ow)
    return _apply(cv.fold, (cols,), (size, k, d, p, s))
