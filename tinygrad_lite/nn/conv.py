"""2-D convolution as sliding windows (im2col) and one matmul, as torch.nn.Conv2d; Conv1d is the same on a
unit-height image.

The windows are a strided view of the (padded) input; one reshape copies them into (N, C*kh*kw, L) columns and a
single (batched) matmul with the (O, C*kh*kw) weight gives the (N, O, L) output in NCHW order. Groups add a
group axis to both operands of that same matmul. The backward is whatever the primitives' VJPs make of it:
matmul's, then `fold` (col2im as strided slice-adds, no scattered accumulation)."""
import math
import numbers

import numpy as np

from .. import functional as _tf
from ..autograd.recorder import labelled
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


@labelled("ConvolutionBackward0")
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


class _ConvNd(Module):
    """The 1-D and 2-D convolution layers: PyTorch's arguments, parameter shapes and initialisation; the sizes are
    `_dims`-tuples (kernel_size=(3,) for Conv1d, as PyTorch's)."""
    _dims = 2

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, padding_mode="zeros", device=None, dtype=None):
        super().__init__()
        name = type(self).__name__
        dt = factory_dtype(dtype, device, name)
        in_channels = check_size(in_channels, "in_channels", name)
        out_channels = check_size(out_channels, "out_channels", name)
        if not isinstance(groups, numbers.Integral):
            raise TypeError(f"{name}: groups should be of type int, got: {type(groups).__name__} ({groups!r})")
        if groups <= 0:
            raise ValueError(f"{name}: groups must be a positive integer")
        if in_channels % groups:
            raise ValueError(f"{name}: in_channels must be divisible by groups, got {in_channels} and {groups}")
        if out_channels % groups:
            raise ValueError(f"{name}: out_channels must be divisible by groups, got {out_channels} and {groups}")
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"{name}: padding_mode must be one of {list(_PADDING_MODES)}, but got "
                             f"padding_mode='{padding_mode}'")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = self._tuple(kernel_size, "kernel_size")
        self.stride = self._tuple(stride, "stride")
        self.dilation = self._tuple(dilation, "dilation")
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"{name}: Invalid padding string {padding!r}, should be one of ['valid', 'same']")
            if padding == "same" and self.stride != (1,) * self._dims:
                raise ValueError(f"{name}: padding='same' is not supported for strided convolutions")
            self.padding = padding
        else:
            self.padding = self._tuple(padding, "padding")
        # (k,) -> (k, k): the 2-D checks
        _check_geometry(*((v * 2)[-2:] for v in (self.kernel_size, self.stride, self.dilation)),
                        None if isinstance(self.padding, str) else (self.padding * 2)[-2:], name)
        self.output_padding, self.transposed = (0,) * self._dims, False
        self.groups, self.padding_mode = groups, padding_mode
        # F.pad widths for a padding_mode other than 'zeros', last dim first: (left, right[, top, bottom]); made
        # whatever the mode, as PyTorch makes them, so that `conv.padding_mode = "reflect"` set later works
        if self.padding == "same":
            pads = _same_padding((self.kernel_size * 2)[-2:], (self.dilation * 2)[-2:])[2 - self._dims:]
        else:
            # 'valid' is a string: iterating it would give one pair per letter
            pads = [(0, 0)] * self._dims if self.padding == "valid" else [(p, p) for p in self.padding]
        self._reversed_padding_repeated_twice = tuple(v for pair in reversed(pads) for v in pair)
        self.weight = Parameter(np.empty((out_channels, in_channels // groups) + self.kernel_size, dtype=dt))
        if bias:
            self.bias = Parameter(np.empty((out_channels,), dtype=dt))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def _tuple(self, v, name):
        return _pair(v, name, type(self).__name__) if self._dims == 2 else _single(v, name, type(self).__name__)

    def reset_parameters(self):
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.weight.shape[1] * math.prod(self.kernel_size)
            if fan_in != 0:
                bound = 1 / math.sqrt(fan_in)
                init.uniform_(self.bias, -bound, bound)

    def forward(self, input):
        name, conv = type(self).__name__, (conv2d if self._dims == 2 else conv1d)
        if not isinstance(input, Tensor):
            raise TypeError(f"{name}: expected a Tensor input, got {type(input).__name__}")
        spatial = "H, W" if self._dims == 2 else "L"
        if input.ndim not in (self._dims + 1, self._dims + 2) or input.shape[-self._dims - 1] != self.in_channels:
            raise OpError(f"{name}: expected input with {self.in_channels} channels (shape (N, {self.in_channels}, "
                          f"{spatial}) or ({self.in_channels}, {spatial})), got shape {tuple(input.shape)}")
        if self.padding_mode != "zeros":
            x = _tf.pad(input, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            return conv(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups, _name=name)
        return conv(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups, _name=name)

    def extra_repr(self):
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0,) * self._dims:
            s += f", padding={self.padding}"
        if self.dilation != (1,) * self._dims:
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


class Conv2d(_ConvNd):
    """2-D convolution layer: weight (out_channels, in_channels/groups, kh, kw)."""


class Conv1d(_ConvNd):
    """1-D convolution layer: weight (out_channels, in_channels/groups, k); a Conv2d of unit height."""
    _dims = 1


def _single(v, name, where="conv1d"):
    """(k,) from an int or a 1-element sequence of ints."""
    if isinstance(v, numbers.Integral):
        return (int(v),)
    if not isinstance(v, (tuple, list)) or len(v) != 1 or not isinstance(v[0], numbers.Integral):
        raise TypeError(f"{where}: {name} must be an int or a 1-element tuple of ints, got {v!r}")
    return (int(v[0]),)


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, _name="conv1d"):
    """1-D convolution (cross-correlation) of a (N, C, L) or (C, L) input with an (O, C/groups, k) weight; padding
    is an int, a 1-tuple, 'valid' or 'same'. It is conv2d on a unit-height image."""
    if not isinstance(input, Tensor) or not isinstance(weight, Tensor):
        raise TypeError(f"{_name}: expected Tensor input and weight, got {type(input).__name__} and "
                        f"{type(weight).__name__}")
    if input.ndim not in (2, 3):
        raise OpError(f"{_name}: Expected 2D (unbatched) or 3D (batched) input to conv1d, but got input of size: "
                      f"{list(input.shape)}")
    if weight.ndim != 3:
        raise OpError(f"{_name}: expected a 3-D weight (out_channels, in_channels/groups, k), got shape "
                      f"{tuple(weight.shape)}")
    if isinstance(groups, numbers.Integral) and groups >= 1 and input.shape[-2] != weight.shape[1] * groups:
        raise OpError(f"{_name}: Given groups={groups}, weight of size {list(weight.shape)}, expected "
                      f"input{list(input.shape)} to have {weight.shape[1] * groups} channels, but got "
                      f"{input.shape[-2]} channels instead")
    s, d = _single(stride, "stride", _name), _single(dilation, "dilation", _name)
    p = padding if isinstance(padding, str) else (0,) + _single(padding, "padding", _name)
    k, length = weight.shape[-1], input.shape[-1] + (0 if isinstance(p, str) else 2 * p[1])
    if p != "same" and d[0] > 0 and length < d[0] * (k - 1) + 1:  # say it in 1-D terms, not conv2d's unit-height ones
        raise OpError(f"{_name}: kernel size ({k},) with dilation {d} does not fit the padded input ({length},) "
                      f"(input shape {tuple(input.shape)}, padding {p if isinstance(p, str) else p[1:]})")
    return conv2d(input.unsqueeze(-2), weight.unsqueeze(-2), bias, (1,) + s, p, (1,) + d, groups,
                  _name=_name).squeeze(-2)
