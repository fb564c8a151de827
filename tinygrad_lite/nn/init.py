"""Parameter initialisation, as `torch.nn.init`: in place, never recorded, drawing from `tl.random.get_rng()`
(so `tl.manual_seed` makes it reproducible). Fans and gains are PyTorch's."""
import math
import numbers
import warnings

import numpy as np

from .. import random as _random
from ..compile.hooks import active as _active
from ..tensor import Tensor


def _fill(tensor, values, name):
    """Write `values` into the tensor's array in place (the same array, so views and optimizers see it)."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f"init.{name}: expected a Tensor, got {type(tensor).__name__}")
    cap = _active()
    if cap is not None:  # neither the draws nor the in-place write are recorded: a replay would skip both
        if id(tensor) not in cap.created:  # a parameter from before the call, changed in place
            cap.fail(f"nn.init.{name} inside the function changes a tensor from before the call without a record "
                     f"(a replay would skip it)")
        else:  # a tensor made in the call: a replay would keep the recorded call's values (and not draw)
            cap.fail(f"nn.init.{name} inside the function fills a tensor made during the call without a record "
                     f"(a replay would keep the recorded call's values and skip its random draws)")
    arr = tensor._data
    if arr.flags.writeable:
        np.copyto(arr, values, casting="unsafe")
    else:
        tensor._data = np.array(np.broadcast_to(values, arr.shape), dtype=arr.dtype)
    tensor._version += 1
    return tensor


def _rng(generator):
    return _random.get_rng() if generator is None else generator


def calculate_gain(nonlinearity, param=None):
    """The recommended gain for a nonlinearity (PyTorch's table)."""
    linear = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d")
    if nonlinearity in linear or nonlinearity == "sigmoid":
        return 1
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, numbers.Number) and not isinstance(param, bool):
            slope = param
        else:
            raise ValueError(f"negative_slope {param} not a valid number")
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"Unsupported nonlinearity {nonlinearity}")


def _calculate_fan_in_and_fan_out(tensor):
    shape = tensor.shape
    if len(shape) < 2:
        raise ValueError("Fan in and fan out can not be computed for tensor with fewer than 2 dimensions "
                         f"(got shape {tuple(shape)})")
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def _fan(tensor, mode):
    mode = mode.lower()
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"Mode {mode} not supported, please use one of fan_in, fan_out")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def uniform_(tensor, a=0.0, b=1.0, generator=None):
    """Fill with U(a, b)."""
    return _fill(tensor, _rng(generator).uniform(a, b, tensor.shape), "uniform_")


def normal_(tensor, mean=0.0, std=1.0, generator=None):
    """Fill with N(mean, std^2)."""
    return _fill(tensor, _rng(generator).normal(mean, std, tensor.shape), "normal_")


def constant_(tensor, val):
    return _fill(tensor, val, "constant_")


def zeros_(tensor):
    return _fill(tensor, 0, "zeros_")


def ones_(tensor):
    return _fill(tensor, 1, "ones_")


def eye_(tensor):
    if tensor.ndim != 2:
        raise ValueError(f"Only tensors with 2 dimensions are supported, got shape {tuple(tensor.shape)}")
    return _fill(tensor, np.eye(*tensor.shape), "eye_")


def xavier_uniform_(tensor, gain=1.0, generator=None):
    """U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio, 2010)."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    a = math.sqrt(3.0) * gain * math.sqrt(2.0 / float(fan_in + fan_out))
    return uniform_(tensor, -a, a, generator)


def xavier_normal_(tensor, gain=1.0, generator=None):
    """N(0, std^2) with std = gain * sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / float(fan_in + fan_out)), generator)


def kaiming_uniform_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """U(-b, b) with b = gain * sqrt(3 / fan) (He et al., 2015)."""
    if 0 in tensor.shape:
        return tensor
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode))
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """N(0, std^2) with std = gain / sqrt(fan)."""
    if 0 in tensor.shape:
        return tensor
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode))
    return normal_(tensor, 0.0, std, generator)


def trunc_normal_(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0, generator=None):
    """Fill with N(mean, std^2) truncated to [a, b] (values outside redrawn), by PyTorch's two methods: redrawing
    normals when [a, b] holds more than 30% of the mass, otherwise uniform proposals on [a, b] accepted with the
    normal density (so a narrow or far-off interval does not take forever)."""
    _check_tensor(tensor, "trunc_normal_")
    mean, std, a, b = float(mean), float(std), float(a), float(b)
    if mean < a - 2 * std or mean > b + 2 * std:
        warnings.warn("mean is more than 2 std from [a, b] in nn.init.trunc_normal_. The distribution of values may "
                      "be incorrect.", stacklevel=2)
    norm_cdf = lambda x: (1.0 + math.erf(x / math.sqrt(2.0))) / 2.0  # noqa: E731
    p = norm_cdf((b - mean) / std) - norm_cdf((a - mean) / std)  # std == 0: ZeroDivisionError, as PyTorch
    rng, shape = _rng(generator), tuple(tensor.shape)
    if p > 0.3:
        dtype = tensor._data.dtype if tensor._data.dtype.kind == "f" else np.float64
        lo, hi = float(dtype.type(a)), float(dtype.type(b))  # PyTorch's bounds are the tensor dtype's
        values = rng.normal(mean, std, shape)
        bad = (values < lo) | (values > hi)
        while bad.any():
            values[bad] = rng.normal(mean, std, int(bad.sum()))
            bad = (values < lo) | (values > hi)
    else:
        if a > b:
            raise RuntimeError(f"nn.init.trunc_normal_: expected a <= b, got a={a} > b={b} (uniform_ expects to "
                               f"return a [from, to) range, but found from={a:g} > to={b:g})")
        log_peak = -0.5 * ((max(a, min(mean, b)) - mean) / std) ** 2
        values = rng.uniform(a, b, shape)
        pending = np.log(rng.random(shape)) > -0.5 * ((values - mean) / std) ** 2 - log_peak
        while pending.any():
            n = int(pending.sum())
            candidates = rng.uniform(a, b, n)
            values[pending] = candidates
            still = np.log(rng.random(n)) > -0.5 * ((candidates - mean) / std) ** 2 - log_peak
            pending[pending] = still
    return _fill(tensor, values, "trunc_normal_")


def orthogonal_(tensor, gain=1, generator=None):
    """Fill with a (semi-)orthogonal matrix times `gain` (Saxe et al., 2013): the Q of a Gaussian matrix's QR,
    signs made uniform; dimensions after the first are flattened, as PyTorch."""
    _check_tensor(tensor, "orthogonal_")
    if tensor.ndim < 2:
        raise ValueError(f"Only tensors with 2 or more dimensions are supported (nn.init.orthogonal_ got shape "
                         f"{tuple(tensor.shape)})")
    if tensor.numel() == 0:
        return tensor
    rows = tensor.shape[0]
    cols = tensor.numel() // rows
    flat = _rng(generator).normal(0.0, 1.0, (rows, cols))
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    q = q * np.sign(np.diag(r))  # Mezzadri (2007): makes Q Haar-distributed
    if rows < cols:
        q = q.T
    return _fill(tensor, gain * q.reshape(tuple(tensor.shape)), "orthogonal_")


def dirac_(tensor, groups=1):
    """Fill a {3, 4, 5}-D convolution weight with the Dirac delta (each group keeps as many channels as it can)."""
    _check_tensor(tensor, "dirac_")
    shape = tuple(tensor.shape)
    if len(shape) not in (3, 4, 5):
        raise ValueError(f"Only tensors with 3, 4, or 5 dimensions are supported (nn.init.dirac_ got shape {shape})")
    if shape[0] % groups != 0:
        raise ValueError(f"dim 0 must be divisible by groups (nn.init.dirac_ got shape {shape}, groups={groups})")
    per_group = shape[0] // groups
    values = np.zeros(shape)
    centre = tuple(s // 2 for s in shape[2:])
    for g in range(groups):
        for d in range(min(per_group, shape[1])):
            values[(g * per_group + d, d) + centre] = 1
    return _fill(tensor, values, "dirac_")


def sparse_(tensor, sparsity, std=0.01, generator=None):
    """Fill a 2-D tensor with N(0, std^2) and set ceil(sparsity * rows) random elements of each column to zero
    (Martens, 2010)."""
    _check_tensor(tensor, "sparse_")
    if tensor.ndim != 2:
        raise ValueError(f"Only tensors with 2 dimensions are supported (nn.init.sparse_ got shape "
                         f"{tuple(tensor.shape)})")
    rows, cols = tensor.shape
    num_zeros = math.ceil(sparsity * rows)
    rng = _rng(generator)
    values = rng.normal(0.0, std, (rows, cols))
    for col in range(cols):
        values[rng.permutation(rows)[:num_zeros], col] = 0
    return _fill(tensor, values, "sparse_")


def _check_tensor(tensor, name):
    if not isinstance(tensor, Tensor):
        raise TypeError(f"init.{name}: expected a Tensor, got {type(tensor).__name__}")
