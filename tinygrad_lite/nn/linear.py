"""Linear layer: y = x W^T + b, as torch.nn.Linear."""
import math
import numbers

import numpy as np

from .. import dtypes
from ..autograd.recorder import labelled
from ..ops.registry import OpError
from ..tensor import Tensor
from . import init
from .. import devices as _device
from .module import Module, Parameter


def factory_dtype(dtype, device=None, where="layer"):
    """The dtype for a layer's parameters (float32 unless given); only the 'cpu' device exists."""
    _device.check(device, where)
    dt = dtypes.default_float if dtype is None else dtypes.to_dtype(dtype, where)
    if dt.kind != "f":
        raise TypeError(f"{where}: parameters must have a floating dtype, got {dt}")
    return dt


def check_size(value, name, where, minimum=0):
    """A layer size argument: an int (not a float, not a string) of at least `minimum`; returned as int."""
    if not isinstance(value, numbers.Integral):
        raise TypeError(f"{where}: {name} should be of type int, got: {type(value).__name__} ({value!r})")
    if value < minimum:
        what = {0: "non-negative", 1: "greater than zero"}.get(minimum, f"at least {minimum}")
        raise OpError(f"{where}: {name} must be {what}, got {value}")
    return int(value)


def linear(input, weight, bias=None):
    """x W^T + b over the last dim of x (any leading dims)."""
    if not isinstance(input, Tensor) or not isinstance(weight, Tensor):
        raise TypeError(f"linear: expected Tensor input and weight, got {type(input).__name__} and "
                        f"{type(weight).__name__}")
    if input.ndim == 0 or weight.ndim not in (1, 2) or input.shape[-1] != weight.shape[-1]:
        want = input.shape[-1] if input.ndim else "in_features"
        raise OpError(f"linear: input shape {tuple(input.shape)} and weight shape {tuple(weight.shape)} cannot be "
                      f"multiplied (expected a weight of shape (out_features, {want}))")
    if bias is not None and weight.ndim == 2 and bias.shape not in ((weight.shape[0],), (1,), ()):
        raise OpError(f"linear: expected bias of shape ({weight.shape[0]},) for weight shape {tuple(weight.shape)}, "
                      f"got {tuple(bias.shape)}")
    return _linear(input, weight, bias)


def _linear_node(a, k):
    """PyTorch's node for F.linear / nn.Linear: Addmm (2-D input with bias), Mm (2-D without), View (other ranks with
    bias), UnsafeView (over 2-D without), Squeeze (1-D without)."""
    nd = a[0].ndim
    if a[1].ndim != 2:
        return None
    if a[2] is None:
        return "MmBackward0" if nd == 2 else "UnsafeViewBackward0" if nd > 2 else "SqueezeBackward4"
    return "AddmmBackward0" if nd == 2 else "ViewBackward0"


@labelled(_linear_node)  # here, not on linear(): nn.Linear's forward calls this directly
def _linear(input, weight, bias):
    if input.ndim > 2:  # one 2-D matmul: its weight gradient is a single GEMM, not a batch summed afterwards
        lead = input.shape[:-1]
        out = input.reshape(-1, input.shape[-1]) @ weight.T
        out = out.reshape(lead + (weight.shape[0],))
    else:
        out = input @ weight.T
    return out if bias is None else out + bias


class Linear(Module):
    """y = x W^T + b with W of shape (out_features, in_features); PyTorch's initialisation."""

    def __init__(self, in_features, out_features, bias=True, device=None, dtype=None):
        super().__init__()
        dt = factory_dtype(dtype, device, "Linear")
        in_features = check_size(in_features, "in_features", "Linear")
        out_features = check_size(out_features, "out_features", "Linear")
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(np.empty((out_features, in_features), dtype=dt))
        if bias:
            self.bias = Parameter(np.empty((out_features,), dtype=dt))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        # kaiming_uniform_(a=sqrt(5)) gives U(-1/sqrt(fan_in), 1/sqrt(fan_in)), as PyTorch
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.in_features
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input):
        if not isinstance(input, Tensor):
            raise TypeError(f"Linear: expected a Tensor input, got {type(input).__name__}")
        if input.ndim == 0 or input.shape[-1] != self.in_features:
            raise OpError(f"Linear: expected input with last dim {self.in_features}, got shape "
                          f"{tuple(input.shape)}")
        return _linear(input, self.weight, self.bias)  # shapes checked above; parameters are Tensors

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
