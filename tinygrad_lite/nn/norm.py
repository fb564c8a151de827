"""BatchNorm1d/2d and LayerNorm, as PyTorch's: expressions over mean and (biased) variance; BatchNorm keeps
running statistics (updated in place with the unbiased batch variance) and `num_batches_tracked`."""
import numbers

import numpy as np

from .. import dtypes
from ..autograd.recorder import labelled
from ..compile.hooks import active as _capturing, batching_rule, data, host, host_effect
from ..ops.registry import OpError
from ..tensor import Tensor
from . import init
from .linear import check_size, factory_dtype
from .module import Module, Parameter

_const = Tensor._wrap


def _floating(input, where):
    if input.dtype.kind != "f":
        raise TypeError(f"{where}: expected a floating point input, got dtype {input.dtype} (shape "
                        f"{tuple(input.shape)}); convert it with .float() first")


def _values_per_channel(input, where):
    """N * (spatial size): the number of values each channel's batch statistics are taken over (1 is an error,
    0 an empty batch that leaves the running statistics alone, as PyTorch)."""
    c = input.shape[1]
    n = input._data.size // c if c else 0
    if n == 1:
        raise ValueError(f"{where}: Expected more than 1 value per channel when training, got input size "
                         f"{tuple(input.shape)}")
    return n


def standardize(input, dims, eps):
    """(input - mean) / sqrt(biased var + eps) over `dims` (kept), with the mean and variance: the shared core of
    batch, layer, group and instance norm."""
    mean = input.mean(dims, keepdim=True)
    centered = input - mean
    var = (centered * centered).mean(dims, keepdim=True)
    return centered / (var + eps).sqrt(), mean, var


@labelled("NativeBatchNormBackward0")
def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5,
               *, _name="batch_norm"):
    """Normalise over every dim but dim 1 (channels). In training, batch statistics are used and the running
    statistics (if given) are updated in place; otherwise the running statistics are used."""
    if input.ndim < 2:
        raise OpError(f"{_name}: expected an input of at least 2 dims (N, C, ...), got shape {tuple(input.shape)}")
    _floating(input, _name)
    c = input.shape[1]
    check_per_channel(input, c, _name, running_mean=running_mean, running_var=running_var, weight=weight, bias=bias)
    dims = (0,) + tuple(range(2, input.ndim))
    shape = (1, c) + (1,) * (input.ndim - 2)
    if training and (n := _values_per_channel(input, _name)) == 0:
        out = input * 0.0  # an empty batch: empty output, running statistics unchanged
    elif training:
        out, mean, var = standardize(input, dims, eps)
        if running_mean is not None or running_var is not None:
            m = float(momentum)
            if running_mean is not None:
                _blend(running_mean, mean._data, c, 1.0, m)
            if running_var is not None:
                _blend(running_var, var._data, c, n / (n - 1), m)
    else:
        if running_mean is None or running_var is None:
            raise ValueError(f"{_name}: running_mean and running_var are required when training=False")
        rm, inv = host(_eval_stats, data(running_mean), data(running_var), shape, input.dtype, eps)
        out = (input - _const(rm)) * _const(inv)
    return affine(out, weight, bias, shape)


def check_per_channel(input, c, name, **tensors):
    """Each given tensor (running statistics, affine weight and bias) holds one value per channel."""
    for what, t in tensors.items():
        if t is not None and t._data.size != c:
            raise OpError(f"{name}: {what} should contain {c} elements not {t._data.size} (input shape "
                          f"{tuple(input.shape)}, {what} shape {tuple(t.shape)})")


def affine(out, weight, bias, shape):
    """out * weight + bias, the per-channel vectors reshaped to `shape` (each optional)."""
    if weight is not None:
        out = out * weight.reshape(shape)
    if bias is not None:
        out = out + bias.reshape(shape)
    return out


def _blend(stat, batch_value, c, scale, momentum):
    """stat = (1 - momentum) * stat + momentum * batch_value * scale, in place on the buffer's array."""
    host_effect(_blend_arrays, data(stat), batch_value, c, scale, momentum)
    stat._version += 1
    cap = _capturing()
    if cap is not None:
        cap.bump(stat)


def _blend_arrays(arr, batch_value, c, scale, momentum):
    value = batch_value.reshape(c)
    if scale != 1.0:
        value = value * scale
    arr *= 1.0 - momentum
    arr += (momentum * value).astype(arr.dtype, copy=False)
    return arr


def _eval_stats(running_mean, running_var, shape, dtype, eps):
    rm = running_mean.reshape(shape).astype(dtype, copy=False)
    inv = (1.0 / np.sqrt(running_var.reshape(shape) + eps)).astype(dtype, copy=False)
    return rm, inv


@batching_rule(_eval_stats)
def _(args, batched):
    """vmap: per-sample running statistics (either may be shared), each sample's reshaped to `shape`."""
    running_mean, running_var, shape, dtype, eps = args
    size = next(a.shape[0] for a, b in zip((running_mean, running_var), batched) if b)
    lead = [np.broadcast_to(a, (size,) + a.shape) if not b else a for a, b in zip((running_mean, running_var),
                                                                                   batched)]
    rm, inv = _eval_stats(*[a.reshape((size,) + tuple(shape)) for a in lead], (size,) + tuple(shape), dtype, eps)
    return rm, inv


def _increment(arr):
    arr += 1
    return arr


def affine_parameters(module, shape, affine, bias, dt):
    """The affine `weight` (ones) and `bias` (zeros) of a normalisation layer, or None entries, as PyTorch's."""
    if affine:
        module.weight = Parameter(np.ones(shape, dtype=dt))
        if bias:
            module.bias = Parameter(np.zeros(shape, dtype=dt))
        else:
            module.register_parameter("bias", None)
    else:
        module.register_parameter("weight", None)
        module.register_parameter("bias", None)


def reset_affine(module, affine):
    if affine:
        init.ones_(module.weight)
        if module.bias is not None:
            init.zeros_(module.bias)


class _BatchNorm(Module):
    _expected_dims = ()

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True, device=None,
                 dtype=None, *, bias=True):
        super().__init__()
        dt = factory_dtype(dtype, device, type(self).__name__)
        num_features = check_size(num_features, "num_features", type(self).__name__)
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        affine_parameters(self, num_features, affine, bias, dt)
        if track_running_stats:
            self.register_buffer("running_mean", Tensor._wrap(np.zeros(num_features, dtype=dt)))
            self.register_buffer("running_var", Tensor._wrap(np.ones(num_features, dtype=dt)))
            self.register_buffer("num_batches_tracked", Tensor._wrap(np.array(0, dtype=dtypes.int64)))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()

    def reset_running_stats(self):
        if self.track_running_stats:
            init.zeros_(self.running_mean)
            init.ones_(self.running_var)
            init.zeros_(self.num_batches_tracked)

    def reset_parameters(self):
        self.reset_running_stats()
        reset_affine(self, self.affine)

    def forward(self, input):
        name = type(self).__name__
        if not isinstance(input, Tensor):
            raise TypeError(f"{name}: expected a Tensor input, got {type(input).__name__}")
        if input.ndim not in self._expected_dims:
            want = " or ".join(f"{d}D" for d in self._expected_dims)
            raise OpError(f"{name}: expected {want} input (got {input.ndim}D input of shape {tuple(input.shape)})")
        if input.shape[1] != self.num_features:
            raise OpError(f"{name}: expected input with {self.num_features} channels (num_features) in dim 1, got "
                          f"shape {tuple(input.shape)}")
        factor = 0.0 if self.momentum is None else self.momentum
        count = self.training and self.track_running_stats and self.num_batches_tracked is not None
        if count and self.momentum is None:  # cumulative moving average over this and the earlier batches
            cap = _capturing()
            if cap is not None:
                cap.fail(f"{name}(momentum=None): its averaging factor is read from num_batches_tracked into "
                         f"Python on every call")
            factor = 1.0 / (float(self.num_batches_tracked._data) + 1.0)
        use_batch_stats = self.training or (self.running_mean is None and self.running_var is None)
        track = not self.training or self.track_running_stats
        out = batch_norm(input, self.running_mean if track else None, self.running_var if track else None,
                         self.weight, self.bias, use_batch_stats, factor, self.eps, _name=name)
        if count:  # after batch_norm: a rejected input leaves every buffer as it was
            host_effect(_increment, data(self.num_batches_tracked))
            self.num_batches_tracked._version += 1
            cap = _capturing()
            if cap is not None:
                cap.bump(self.num_batches_tracked)
        return out

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"bias={self.bias is not None}, track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of a (N, C) or (N, C, L) input."""
    _expected_dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of a (N, C, H, W) input."""
    _expected_dims = (4,)


@labelled("NativeLayerNormBackward0")
def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5, *, _name="layer_norm"):
    """Normalise over the last len(normalized_shape) dims (biased variance), then scale and shift."""
    shape = (normalized_shape,) if isinstance(normalized_shape, numbers.Integral) else tuple(normalized_shape)
    k = len(shape)
    if input.ndim < k or tuple(input.shape[input.ndim - k:]) != shape:
        raise OpError(f"{_name}: expected input with shape (*, {', '.join(map(str, shape))}), got shape "
                      f"{tuple(input.shape)}")
    _floating(input, _name)
    for what, t in (("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != shape:
            raise OpError(f"{_name}: Expected {what} to be of same shape as normalized_shape, but got {what} of shape "
                          f"{tuple(t.shape)} and normalized_shape = {shape}")
    dims = tuple(range(input.ndim - k, input.ndim))
    out = standardize(input, dims, eps)[0]
    if weight is not None:
        out = out * weight
    if bias is not None:
        out = out + bias
    return out


class LayerNorm(Module):
    """Layer normalisation over the trailing `normalized_shape` dims."""

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True, device=None, dtype=None):
        super().__init__()
        dt = factory_dtype(dtype, device, "LayerNorm")
        if isinstance(normalized_shape, numbers.Integral):
            normalized_shape = (normalized_shape,)
        if not isinstance(normalized_shape, (tuple, list)):
            raise TypeError(f"LayerNorm: normalized_shape must be an int or a sequence of ints, got "
                            f"{normalized_shape!r}")
        self.normalized_shape = tuple(check_size(s, "normalized_shape", "LayerNorm") for s in normalized_shape)
        self.eps, self.elementwise_affine = eps, elementwise_affine
        affine_parameters(self, self.normalized_shape, elementwise_affine, bias, dt)

    def reset_parameters(self):
        reset_affine(self, self.elementwise_affine)

    def forward(self, input):
        shape = self.normalized_shape
        if not isinstance(input, Tensor):
            raise TypeError(f"LayerNorm: expected a Tensor input, got {type(input).__name__}")
        if input.ndim < len(shape) or tuple(input.shape[input.ndim - len(shape):]) != shape:
            raise OpError(f"LayerNorm: expected input with shape (*, {', '.join(map(str, shape))}), got shape "
                          f"{tuple(input.shape)}")
        return layer_norm(input, shape, self.weight, self.bias, self.eps, _name="LayerNorm")

    def extra_repr(self):
        return (f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}, "
                f"bias={self.bias is not None}")
