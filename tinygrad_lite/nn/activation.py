"""Activation functions and their modules, composed from primitives.

`inplace=True` is accepted for PyTorch compatibility but the result is always a new tensor (an in-place
activation would invalidate the values saved for backward)."""
import math

from .. import functional as _tf
from ..autograd.recorder import labelled
from ..compile.hooks import data, host, positive
from ..tensor import Tensor
from .module import Module

_const = Tensor._wrap


# ---------------- functional forms ----------------
def relu(input, inplace=False):
    return input.relu()


@labelled("LeakyReluBackward0")
def leaky_relu(input, negative_slope=0.01, inplace=False):
    """x where x > 0, else negative_slope * x (gradient negative_slope at 0, as PyTorch)."""
    return _tf.where(_const(host(positive, data(input))), input, input * negative_slope)


def sigmoid(input):
    return input.sigmoid()


def tanh(input):
    return input.tanh()


_SQRT1_2 = 1.0 / math.sqrt(2.0)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


@labelled("GeluBackward0")
def gelu(input, approximate="none"):
    """x * Phi(x); approximate='tanh' uses 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    if approximate == "tanh":
        inner = (input + input * input * input * 0.044715) * _SQRT_2_OVER_PI
        return input * 0.5 * (inner.tanh() + 1.0)
    if approximate != "none":
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return input * 0.5 * ((input * _SQRT1_2).erf() + 1.0)


def softmax(input, dim=None, dtype=None):
    return _tf.softmax(input, dim, dtype)


def log_softmax(input, dim=None, dtype=None):
    return _tf.log_softmax(input, dim, dtype)


# ---------------- modules ----------------
class _Inplace(Module):
    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace

    def extra_repr(self):
        return "inplace=True" if self.inplace else ""


class ReLU(_Inplace):
    """max(x, 0) elementwise."""

    def forward(self, input):
        return input.relu()


class LeakyReLU(Module):
    def __init__(self, negative_slope=0.01, inplace=False):
        super().__init__()
        self.negative_slope, self.inplace = negative_slope, inplace

    def forward(self, input):
        return leaky_relu(input, self.negative_slope)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace else "")


class Sigmoid(Module):
    def forward(self, input):
        return input.sigmoid()


class Tanh(Module):
    def forward(self, input):
        return input.tanh()


class GELU(Module):
    """Gaussian error linear unit; approximate='none' (exact, via erf) or 'tanh'."""

    def __init__(self, approximate="none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, input):
        return gelu(input, self.approximate)

    def extra_repr(self):
        return f"approximate={self.approximate!r}"


class _Dim(Module):
    """A layer with one setting, the dim it works along (Softmax and its kin, GLU)."""

    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def extra_repr(self):
        return f"dim={self.dim}"


class Softmax(_Dim):
    def __init__(self, dim=None):
        super().__init__(dim)

    def forward(self, input):
        return _tf.softmax(input, self.dim)


class LogSoftmax(Softmax):
    def forward(self, input):
        return _tf.log_softmax(input, self.dim)


class Flatten(Module):
    """Flatten dims start_dim..end_dim into one (by default all but the batch dim)."""

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, input):
        return input.flatten(self.start_dim, self.end_dim)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Identity(Module):
    """Returns its input; constructor arguments are ignored, as PyTorch."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, input):
        return input
