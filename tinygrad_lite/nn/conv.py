"""2-D convolution as sliding windows (im2col) and one matmul, as torch.nn.Conv2d.

The windows are a strided view of the (padded) input; one reshape copies them into (N, C*kh*kw, L) columns and a
single (batched) matmul with the (O, C*kh*kw) weight gives the (N, O, L) output in NCHW order. Groups add a
group axis to both operands of that same matmul. The backward is whatever the primitives' VJPs make of it:
matmul's, then `fold` (col2im as strided slice-adds, no scattered accumulation)."""
import math
import numbers

import numpy as np

from .. import functional as _tf
from ..ops.registry import OpError
from ..tensor import Tensor
from . import init
from .linear import check_size, factory_dtype
from .module import Module, Parameter

_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _pair(v, name, where="conv2d", allow_single=False):
    """(h, w) from an int or a pair of ints (pooling, as PyTorch's, also takes a 1-element sequence)."""
    if isinstance(v, numbers.Integral):
        return (int(v), int(v))
    if not isinstance(v, (tuple, list)) or not all(isinstance(i, numbers.Integral) for i in v):
        raise TypeError(f"{where}: {name} must be an int or a pair of ints, got {v!r}")
    if allow_single and len(v) == 1:
        v = tuple(v) * 2
    if len(v) != 2:
        raise ValueError(f"{where}: {name} must be an int or a pair of ints, got {v!r}")
    return (int(v[0]), int(v[1]))


def _check_geometry(k, s, d, p, where):
    """PyTorch's conv argument checks (its messages, prefixed with the layer or function name); p None: skip."""
    if k[0] <= 0 or k[1] <= 0:
        raise OpError(f"{where}: kernel size should be greater than zero, but got kernel_height: {k[0]} "
                      f"kernel_width: {k[1]}")
    if s[0] <= 0 or s[1] <= 0:
        raise OpError(f"{where}: non-positive stride is not supported, got stride={s}")
    if d[0] <= 0 or d[1] <= 0:
        raise OpError(f"{where}: dilation should be greater than zero, but got {list(d)}")
    if p is not None and (p[0] < 0 or p[1] < 0):
        raise OpError(f"{where}: negative padding is not supported, got padding={p}")


def _same_padding(k, d):
    """(before, after) per spatial dim for padding='same' (extra padding goes after, as PyTorch)."""
    total = [d[i] * (k[i] - 1) for i in range(2)]
    return [(t // 2, t - t // 2) for t in total]


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, _name="conv2d"):
    """2-D convolution (cross-correlation) of a (N, C, H, W) or (C, H, W) input with an (O, C/groups, kh, kw)
    weight; padding is an int, a pair, 'valid' or 'same'."""
    if not isinstance(input, Tensor) or not isinstance(weight, Tensor):
        raise TypeError(f"{_name}: expected Tensor input and weight, got {type(input).__name__} and "
                        f"{type(weight).__name__}")
    if input.ndim == 3:
        return conv2d(input.unsqueeze(0), weight, bias, stride, padding, dilation, groups, _name=_name).squeeze(0)
    if weight.ndim != 4:
        raise OpError(f"{_name}: expected a 4-D weight (out_channels, in_channels/groups, kh, kw), got shape "
                      f"{tuple(weight.shape)}")
    o, cg, kh, kw = weight.shape
    if not isinstance(groups, numbers.Integral) or groups < 1:
        raise OpError(f"{_name}: non-positive groups is not supported, got groups={groups!r}")
    if input.ndim != 4 or input.shape[1] != cg * groups:
        raise OpError(f"{_name}: expected input with {cg * groups} channels (shape (N, {cg * groups}, H, W) or "
                      f"({cg * groups}, H, W)), got shape {tuple(input.shape)}")
    if o % groups:
        raise ValueError(f"{_name}: out_channels {o} must be divisible by groups {groups}")
    if bias is not None and tuple(bias.shape) != (o,):
        raise OpError(f"{_name}: Given weight of size {tuple(weight.shape)}, expected bias to be 1-dimensional with "
                      f"{o} elements, but got bias of size {tuple(bias.shape)} instead")
    s, d = _pair(stride, "stride", _name), _pair(dilation, "dilation", _name)
    _check_geometry((kh, kw), s, d, None, _name)
    if isinstance(padding, str):
        if padding == "valid":
            p = (0, 0)
        elif padding == "same":
            if s != (1, 1):
                raise ValueError(f"{_name}: padding='same' is not supported for strided convolutions")
            (t, b), (le, r) = _same_padding((kh, kw), d)
            if t != b or le != r:  # asymmetric: pad the extra row/column explicitly
                input = _tf.pad(input, (le, r, t, b))
                p = (0, 0)
            else:
                p = (t, le)
        else:
            raise ValueError(f"{_name}: invalid padding string {padding!r}, should be one of ['valid', 'same']")
    else:
        p = _pair(padding, "padding", _name)
        if p[0] < 0 or p[1] < 0:
            raise OpError(f"{_name}: negative padding is not supported, got padding={p}")
    n, c, h, w = input.shape
    eh, ew = d[0] * (kh - 1) + 1, d[1] * (kw - 1) + 1
    if h + 2 * p[0] < eh or w + 2 * p[1] < ew:
        raise OpError(f"{_name}: kernel size ({kh}, {kw}) with dilation {d} does not fit the padded input "
                      f"({h + 2 * p[0]}, {w + 2 * p[1]}) (input shape {tuple(input.shape)}, padding {p})")
    win = _tf.windows(input, (kh, kw), d, p, s)  # (N, C, kh, kw, oh, ow), a view when p == 0
    oh, ow = win.shape[4], win.shape[5]
    if groups == 1:
        cols = win.reshape(n, c * kh * kw, oh * ow)
        out = weight.reshape(o, c * kh * kw) @ cols  # (N, O, L)
    else:
        cols = win.reshape(n, groups, cg * kh * kw, oh * ow)
        out = weight.reshape(groups, o // groups, cg * kh * kw) @ cols  # (N, G, O/G, L)
        out = out.reshape(n, o, oh * ow)
    if bias is not None:
        out = out + bias.reshape(o, 1)
    return out.reshape(n, o, oh, ow)


class Conv2d(Module):
    """2-D convolution layer with PyTorch's arguments, parameter shapes and initialisation."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, padding_mode="zeros", device=None, dtype=None):
        super().__init__()
        dt = factory_dtype(dtype, device, "Conv2d")
        in_channels = check_size(in_channels, "in_channels", "Conv2d")
        out_channels = check_size(out_channels, "out_channels", "Conv2d")
        if not isinstance(groups, numbers.Integral):
            raise TypeError(f"Conv2d: groups should be of type int, got: {type(groups).__name__} ({groups!r})")
        if groups <= 0:
            raise ValueError("Conv2d: groups must be a positive integer")
        if in_channels % groups:
            raise ValueError(f"Conv2d: in_channels must be divisible by groups, got {in_channels} and {groups}")
        if out_channels % groups:
            raise ValueError(f"Conv2d: out_channels must be divisible by groups, got {out_channels} and {groups}")
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"Conv2d: padding_mode must be one of {list(_PADDING_MODES)}, but got "
                             f"padding_mode='{padding_mode}'")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = _pair(kernel_size, "kernel_size", "Conv2d")
        self.stride = _pair(stride, "stride", "Conv2d")
        self.dilation = _pair(dilation, "dilation", "Conv2d")
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"Conv2d: Invalid padding string {padding!r}, should be one of ['valid', 'same']")
            if padding == "same" and self.stride != (1, 1):
                raise ValueError("Conv2d: padding='same' is not supported for strided convolutions")
            self.padding = padding
        else:
            self.padding = _pair(padding, "padding", "Conv2d")
        _check_geometry(self.kernel_size, self.stride, self.dilation,
                        None if isinstance(self.padding, str) else self.padding, "Conv2d")
        self.output_padding, self.transposed = (0, 0), False
        self.groups, self.padding_mode = groups, padding_mode
        if padding_mode != "zeros":  # F.pad widths, last dim first: (left, right, top, bottom)
            if self.padding == "same":
                (t, b), (le, r) = _same_padding(self.kernel_size, self.dilation)
            else:
                (t, b), (le, r) = ((0, 0), (0, 0)) if self.padding == "valid" else \
                    ((self.padding[0],) * 2, (self.padding[1],) * 2)
            self._reversed_padding_repeated_twice = (le, r, t, b)
        self.weight = Parameter(np.empty((out_channels, in_channels // groups) + self.kernel_size, dtype=dt))
        if bias:
            self.bias = Parameter(np.empty((out_channels,), dtype=dt))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.weight.shape[1] * self.kernel_size[0] * self.kernel_size[1]
            if fan_in != 0:
                bound = 1 / math.sqrt(fan_in)
                init.uniform_(self.bias, -bound, bound)

    def forward(self, input):
        if not isinstance(input, Tensor):
            raise TypeError(f"Conv2d: expected a Tensor input, got {type(input).__name__}")
        if input.ndim not in (3, 4) or input.shape[-3] != self.in_channels:
            raise OpError(f"Conv2d: expected input with {self.in_channels} channels (shape (N, {self.in_channels}, "
                          f"H, W) or ({self.in_channels}, H, W)), got shape {tuple(input.shape)}")
        if self.padding_mode != "zeros":
            x = _tf.pad(input, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            return conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups, _name="Conv2d")
        return conv2d(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups,
                      _name="Conv2d")

    def extra_repr(self):
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s
