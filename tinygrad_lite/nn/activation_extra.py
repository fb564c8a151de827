"""More of PyTorch's activations (SiLU, Mish, the ELU family, Softplus, the hard ones, ..., PReLU), composed from
primitives.

Masks are comparisons (host computations: tl.compile replays them, vmap batches them, the ONNX export computes them
in the graph). Each mask's comparison decides which side owns the kink point, so gradients there are PyTorch's
(hardtanh's bounds get 0, elu's 0 gets alpha). Where a branch that `where` discards could overflow (exp of a large
x), its input is replaced first, so the discarded side gives the gradient 0, not 0 * inf = NaN. `inplace=True` is
accepted and returns a new tensor, as in activation.py."""
import warnings

import numpy as np

from .. import functional as _tf
from ..autograd.recorder import labelled
from ..ops.registry import OpError
from ..tensor import Tensor, _dim
from .activation import _Dim, _Inplace
from .linear import check_size, factory_dtype
from . import init as _init
from .module import Module, Parameter

_where = _tf.where
_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


# ---------------- functional forms ----------------
@labelled("SiluBackward0")
def silu(input, inplace=False):
    """x * sigmoid(x)."""
    return input * input.sigmoid()


@labelled("SoftplusBackward0")
def softplus(input, beta=1.0, threshold=20.0):
    """log(1 + exp(beta x)) / beta, and x itself where beta x > threshold (PyTorch's formula on both sides)."""
    scaled = input * beta
    linear = scaled > threshold
    safe = _where(linear, 0.0, scaled)  # exp never sees the linear side
    return _where(linear, input, safe.exp().log1p() / beta)


def mish(input, inplace=False):
    """x * tanh(softplus(x)) (softplus is linear past 20, where tanh is 1 in float64 anyway)."""
    return input * softplus(input).tanh()


def _elu(input, alpha, scale, input_scale):
    """PyTorch's ELU kernel: x * scale where x > 0, else (exp(x * input_scale) - 1) * alpha * scale. The exp side
    owns 0: its gradient there is alpha * scale * input_scale, as PyTorch's. (exp - 1, not an expm1: values within
    |x| << 1 of 0 carry an absolute error of about 1e-16; gradients are exact.)"""
    neg = input <= 0
    safe = _where(neg, input, 0.0) * input_scale if input_scale != 1 else _where(neg, input, 0.0)
    pos = input * scale if scale != 1 else input
    return _where(neg, (safe.exp() - 1.0) * (alpha * scale), pos)


@labelled("EluBackward0")
def elu(input, alpha=1.0, inplace=False):
    """x where x > 0, else alpha * (exp(x) - 1)."""
    return _elu(input, alpha, 1.0, 1.0)


def selu(input, inplace=False):
    """scale * elu(x, alpha) with the self-normalising constants."""
    return _elu(input, _SELU_ALPHA, _SELU_SCALE, 1.0)


def celu(input, alpha=1.0, inplace=False):
    """max(0, x) + min(0, alpha * (exp(x / alpha) - 1))."""
    if alpha == 0:
        raise OpError(f"celu: ZeroDivisionError: alpha cannot be 0 for CELU (input shape {tuple(input.shape)})")
    return _elu(input, alpha, 1.0, 1.0 / alpha)


def hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):
    """x clamped to [min_val, max_val]; the gradient is 0 at the bounds (PyTorch's), unlike clamp's."""
    if min_val > max_val:
        raise ValueError(f"hardtanh: min_val cannot be greater than max_val (got {min_val} > {max_val})")
    return _where(input <= min_val, min_val, _where(input >= max_val, max_val, input))


def relu6(input, inplace=False):
    """min(max(x, 0), 6), hardtanh's gradient convention."""
    return hardtanh(input, 0.0, 6.0)


def hardsigmoid(input, inplace=False):
    """0 where x <= -3, 1 where x >= 3, else (x + 3) / 6."""
    return _where(input <= -3.0, 0.0, _where(input >= 3.0, 1.0, (input + 3.0) / 6.0))


def hardswish(input, inplace=False):
    """x * hardsigmoid(x); the gradient is 0 at -3 and 1 at 3, as PyTorch's."""
    return _where(input <= -3.0, 0.0, _where(input >= 3.0, input, input * (input + 3.0) / 6.0))


def logsigmoid(input):
    """log(sigmoid(x)) = min(x, 0) - log1p(exp(-|x|)): exp never overflows, for any x."""
    neg = input < 0
    return _where(neg, input, 0.0) - _where(neg, input, -input).exp().log1p()


def softsign(input):
    """x / (1 + |x|)."""
    return input / (input.abs() + 1)


def tanhshrink(input):
    """x - tanh(x)."""
    return input - input.tanh()


def threshold(input, threshold, value, inplace=False):
    """x where x > threshold, else value (NaN stays NaN, as PyTorch)."""
    return _where(input <= threshold, value, input)


def glu(input, dim=-1):
    """a * sigmoid(b), with a and b the two halves of `input` along `dim`."""
    if input.ndim == 0:
        raise OpError("glu: glu does not support scalars because halving size must be even (got a 0-d tensor)")
    d = _dim(dim, input.ndim, "glu")
    size = input.shape[d]
    if size % 2:
        raise OpError(f"glu: Halving dimension must be even, but dimension {d} is size {size} "
                      f"(input shape {tuple(input.shape)})")
    a, b = input.split(size // 2, d)
    return a * b.sigmoid()


def softmin(input, dim=None, _stacklevel=3, dtype=None):
    """softmax(-x) along `dim`."""
    return _tf.softmax(-input, dim, dtype)


def prelu(input, weight):
    """x where x > 0, else weight * x; a weight of C elements applies per channel (dim 1 of the input)."""
    if not isinstance(input, Tensor) or not isinstance(weight, Tensor):
        raise TypeError(f"prelu: expected Tensor input and weight, got {type(input).__name__} and "
                        f"{type(weight).__name__}")
    if weight.ndim > 1:
        raise OpError(f"prelu: Expected `weight` to be a scalar or 1D tensor, but got: ndim = {weight.ndim} "
                      f"(weight shape {tuple(weight.shape)})")
    n = weight.numel()
    if input.ndim == 0 and n != 1:
        raise OpError(f"prelu: Not allow zero-dim input tensor. (a 0-d input takes a 1-element weight, got "
                      f"weight shape {tuple(weight.shape)})")
    channels = input.shape[1] if input.ndim >= 2 else 1
    if n != 1 and n != channels:
        raise OpError(f"prelu: Mismatch of parameter numbers and input channel size. Found parameter numbers = {n} "
                      f"and channel size = {channels}. (input shape {tuple(input.shape)}, weight shape "
                      f"{tuple(weight.shape)}; the channels are dim 1 of the input)")
    w = weight.reshape(()) if n == 1 else weight.reshape((n,) + (1,) * (input.ndim - 2))
    return _where(input > 0, input, w * input)


# ---------------- modules ----------------
def _args_repr(module, *names):
    return ", ".join(f"{n}={getattr(module, n)}" for n in names) + (", inplace=True" if module.inplace else "")


class SiLU(_Inplace):
    def forward(self, input):
        return silu(input)


class Mish(_Inplace):
    def forward(self, input):
        return mish(input)


class SELU(_Inplace):
    def forward(self, input):
        return selu(input)


class _Alpha(Module):
    def __init__(self, alpha=1.0, inplace=False):
        super().__init__()
        self.alpha, self.inplace = alpha, inplace

    def extra_repr(self):
        return _args_repr(self, "alpha")


class ELU(_Alpha):
    def forward(self, input):
        return elu(input, self.alpha)


class CELU(_Alpha):
    def forward(self, input):
        return celu(input, self.alpha)


class Softplus(Module):
    def __init__(self, beta=1.0, threshold=20.0):
        super().__init__()
        self.beta, self.threshold = beta, threshold

    def forward(self, input):
        return softplus(input, self.beta, self.threshold)

    def extra_repr(self):
        return f"beta={self.beta}, threshold={self.threshold}"


class Hardtanh(Module):
    def __init__(self, min_val=-1.0, max_val=1.0, inplace=False, min_value=None, max_value=None):
        super().__init__()
        if min_value is not None:
            warnings.warn("keyword argument `min_value` is deprecated and renamed to `min_val`", FutureWarning,
                          stacklevel=2)
            min_val = min_value
        if max_value is not None:
            warnings.warn("keyword argument `max_value` is deprecated and renamed to `max_val`", FutureWarning,
                          stacklevel=2)
            max_val = max_value
        if not max_val > min_val:
            raise AssertionError(f"max_val ({max_val}) must be greater than min_val ({min_val})")
        self.min_val, self.max_val, self.inplace = min_val, max_val, inplace

    def forward(self, input):
        return hardtanh(input, self.min_val, self.max_val)

    def extra_repr(self):
        return _args_repr(self, "min_val", "max_val")


class ReLU6(Hardtanh):
    def __init__(self, inplace=False):
        super().__init__(0.0, 6.0, inplace)

    def extra_repr(self):
        return "inplace=True" if self.inplace else ""


class _InplaceUnshown(Module):
    def __init__(self, inplace=False):  # PyTorch's repr of these does not show inplace
        super().__init__()
        self.inplace = inplace


class Hardsigmoid(_InplaceUnshown):
    def forward(self, input):
        return hardsigmoid(input)


class Hardswish(_InplaceUnshown):
    def forward(self, input):
        return hardswish(input)


class LogSigmoid(Module):
    def forward(self, input):
        return logsigmoid(input)


class Softsign(Module):
    def forward(self, input):
        return softsign(input)


class Tanhshrink(Module):
    def forward(self, input):
        return tanhshrink(input)


class Threshold(Module):
    def __init__(self, threshold, value, inplace=False):
        super().__init__()
        self.threshold, self.value, self.inplace = threshold, value, inplace

    def forward(self, input):
        return threshold(input, self.threshold, self.value)

    def extra_repr(self):
        return _args_repr(self, "threshold", "value")


class GLU(_Dim):
    def __init__(self, dim=-1):
        super().__init__(dim)

    def forward(self, input):
        return glu(input, self.dim)


class Softmin(_Dim):
    def __init__(self, dim=None):
        super().__init__(dim)

    def forward(self, input):
        return softmin(input, self.dim)


class PReLU(Module):
    """x where x > 0, else weight * x; `weight` has num_parameters elements (1, or the channel count)."""

    def __init__(self, num_parameters=1, init=0.25, device=None, dtype=None):
        super().__init__()
        dt = factory_dtype(dtype, device, "PReLU")
        self.num_parameters = check_size(num_parameters, "num_parameters", "PReLU")
        self.init = init
        self.weight = Parameter(np.empty((self.num_parameters,), dtype=dt))
        self.reset_parameters()

    def reset_parameters(self):
        _init.constant_(self.weight, self.init)

    def forward(self, input):
        return prelu(input, self.weight)

    def extra_repr(self):
        return f"num_parameters={self.num_parameters}"
