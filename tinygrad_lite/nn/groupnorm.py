"""GroupNorm and InstanceNorm1d/2d, as PyTorch's: the same standardisation as BatchNorm/LayerNorm, over each
sample's channel groups (GroupNorm) or each sample's channels (InstanceNorm). InstanceNorm with
track_running_stats=True keeps running statistics as PyTorch does: the batch average of the per-instance mean
and unbiased variance, blended in with `momentum`, and uses them in eval mode (num_batches_tracked stays 0)."""
import math
import warnings

from ..compile.hooks import host
from ..ops.registry import OpError
from ..tensor import Tensor
from .linear import check_size, factory_dtype
from .module import Module
from .norm import (_BatchNorm, _blend, _floating, affine, affine_parameters, batch_norm, check_per_channel,
                   reset_affine, standardize)


def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5):
    """Normalise each sample over each group of num_groups consecutive channels (and all spatial positions)."""
    if not isinstance(input, Tensor):
        raise TypeError(f"group_norm: expected a Tensor input, got {type(input).__name__}")
    if input.ndim < 2:
        raise OpError(f"group_norm: Expected at least 2 dimensions for input tensor but received {input.ndim}")
    _floating(input, "group_norm")
    n, c = input.shape[:2]
    if num_groups <= 0 or c % num_groups:
        raise OpError(f"group_norm: Expected number of channels in input to be divisible by num_groups, but got input "
                      f"of shape {list(input.shape)} and num_groups={num_groups}")
    for what, t in (("weight", weight), ("bias", bias)):
        if t is not None and (t.ndim != 1 or t.shape[0] != c):
            raise OpError(f"group_norm: Expected {what} to be a vector of size equal to the number of channels in "
                          f"input, but got {what} of shape {list(t.shape)} and input of shape {list(input.shape)}")
    per_group = c // num_groups * math.prod(input.shape[2:])
    out = standardize(input.reshape(n, num_groups, per_group), (2,), eps)[0].reshape(input.shape)
    return affine(out, weight, bias, (1, c) + (1,) * (input.ndim - 2))


class GroupNorm(Module):
    """Group normalisation of a (N, C, *) input, with per-channel affine weight and bias."""

    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True, device=None, dtype=None, *, bias=True):
        super().__init__()
        dt = factory_dtype(dtype, device, "GroupNorm")
        num_groups = check_size(num_groups, "num_groups", "GroupNorm")
        num_channels = check_size(num_channels, "num_channels", "GroupNorm")
        if num_channels % num_groups:
            raise ValueError(f"num_channels ({num_channels}) must be divisible by num_groups ({num_groups})")
        self.num_groups, self.num_channels, self.eps, self.affine = num_groups, num_channels, eps, affine
        affine_parameters(self, num_channels, affine, bias, dt)

    def reset_parameters(self):
        reset_affine(self, self.affine)

    def forward(self, input):
        return group_norm(input, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return (f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}, "
                f"bias={self.bias is not None}")


def _batch_average(stat, n, c):
    """The per-instance statistics (N, C, 1, ...) averaged over the batch: (C,)."""
    return stat.reshape(n, c).mean(0)


def instance_norm(input, running_mean=None, running_var=None, weight=None, bias=None, use_input_stats=True,
                  momentum=0.1, eps=1e-5):
    """Normalise each channel of each sample over its spatial positions (use_input_stats), updating running
    statistics when given; otherwise normalise with the running statistics."""
    if not isinstance(input, Tensor):
        raise TypeError(f"instance_norm: expected a Tensor input, got {type(input).__name__}")
    if input.ndim < 3:
        raise OpError(f"instance_norm: expected an input of at least 3 dims (N, C, L, ...), got shape "
                      f"{tuple(input.shape)}")
    _floating(input, "instance_norm")
    n, c = input.shape[:2]
    shape = (1, c) + (1,) * (input.ndim - 2)
    if not use_input_stats:
        if running_mean is None or running_var is None:
            raise ValueError("instance_norm: Expected running_mean and running_var to be defined when "
                             "use_input_stats is false")
        return batch_norm(input, running_mean, running_var, weight, bias, False, momentum, eps,
                          _name="instance_norm")
    spatial = math.prod(input.shape[2:])
    if spatial == 1:
        raise ValueError(f"instance_norm: Expected more than 1 spatial element when training, got input size "
                         f"{tuple(input.shape)}")
    check_per_channel(input, c, "instance_norm", running_mean=running_mean, running_var=running_var, weight=weight,
                      bias=bias)
    out, mean, var = standardize(input, tuple(range(2, input.ndim)), eps)
    if n and running_mean is not None:
        _blend(running_mean, host(_batch_average, mean._data, n, c), c, 1.0, float(momentum))
    if n and running_var is not None:
        _blend(running_var, host(_batch_average, var._data, n, c), c, spatial / (spatial - 1), float(momentum))
    return affine(out, weight, bias, shape)


class _InstanceNorm(_BatchNorm):
    _no_batch_dim = 0

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=False, track_running_stats=False, device=None,
                 dtype=None, *, bias=True):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype, bias=bias)

    def forward(self, input):
        if not isinstance(input, Tensor):
            raise TypeError(f"{type(self).__name__}: expected a Tensor input, got {type(input).__name__}")
        if input.ndim not in (self._no_batch_dim, self._no_batch_dim + 1):
            raise ValueError(f"expected {self._no_batch_dim}D or {self._no_batch_dim + 1}D input (got {input.ndim}D "
                             f"input)")
        feature_dim = input.ndim - self._no_batch_dim
        if input.shape[feature_dim] != self.num_features:
            if self.affine:
                raise ValueError(f"expected input's size at dim={feature_dim} to match num_features "
                                 f"({self.num_features}), but got: {input.shape[feature_dim]}.")
            warnings.warn(f"input's size at dim={feature_dim} does not match num_features. You can silence this "
                          "warning by not passing in num_features, which is not used because affine=False",
                          stacklevel=2)
        if input.ndim == self._no_batch_dim:
            return self._normalize(input.unsqueeze(0)).squeeze(0)
        return self._normalize(input)

    def _normalize(self, input):
        return instance_norm(input, self.running_mean, self.running_var, self.weight, self.bias,
                             self.training or not self.track_running_stats,
                             self.momentum if self.momentum is not None else 0.0, self.eps)


class InstanceNorm1d(_InstanceNorm):
    """Instance normalisation of a (N, C, L) or (C, L) input."""
    _no_batch_dim = 2


class InstanceNorm2d(_InstanceNorm):
    """Instance normalisation of a (N, C, H, W) or (C, H, W) input."""
    _no_batch_dim = 3
