"""Tensor factories (zeros, ones, full, eye, arange, linspace, rand, randn, randint and the *_like forms).
Arguments are checked up front and NumPy's allocation errors are re-raised naming the factory."""
import math
import numbers

import numpy as np

from . import dtypes
from .ops.registry import OpError
from .random import get_rng
from .shape import _sizes
from .tensor import Tensor


def _size(size, opname):
    return _sizes(size, opname, factory=True)


def _int(v, name, opname):
    if not isinstance(v, numbers.Integral) or isinstance(v, bool):
        raise TypeError(f"{opname}: {name} must be an int, got {type(v).__name__}")
    return int(v)


def _number(v, name, opname):
    if not (isinstance(v, numbers.Real) or isinstance(v, np.generic) and v.dtype.kind in "biuf"):
        raise TypeError(f"{opname}: {name} must be a real number, got {type(v).__name__}")
    if not math.isfinite(v):
        raise ValueError(f"{opname}: {name} must be finite, got {v}")
    return v


def _allocate(opname, fn, *args, **kwargs):
    """Run a NumPy constructor; a size NumPy cannot allocate is an error naming the factory."""
    try:
        return fn(*args, **kwargs)
    except (ValueError, OverflowError, MemoryError) as exc:
        raise OpError(f"{opname}: cannot create the tensor ({type(exc).__name__}: {exc})") from None


def _make(arr, dtype, requires_grad, default=dtypes.default_float, opname="tensor"):
    dt = dtypes.to_dtype(dtype, opname) if dtype is not None else default
    arr = _allocate(opname, arr.astype, dt, copy=False)
    return Tensor(arr, requires_grad=requires_grad)


def _dtype(dtype, opname, default=dtypes.default_float):
    return dtypes.to_dtype(dtype, opname) if dtype is not None else default


def tensor(data, dtype=None, requires_grad=False):
    """Create a tensor (copying Tensor data); Python floats become float32, ints int64, bools bool."""
    return Tensor(data, dtype=dtype, requires_grad=requires_grad)


def _filled(fn, size, dtype, requires_grad, opname):
    dt = _dtype(dtype, opname)
    return Tensor(_allocate(opname, fn, _size(size, opname), dtype=dt), requires_grad=requires_grad)


def zeros(*size, dtype=None, requires_grad=False):
    return _filled(np.zeros, size, dtype, requires_grad, "zeros")


def ones(*size, dtype=None, requires_grad=False):
    return _filled(np.ones, size, dtype, requires_grad, "ones")


def empty(*size, dtype=None, requires_grad=False):
    """Uninitialised in PyTorch; zeros here, so results never depend on leftover memory."""
    return _filled(np.zeros, size, dtype, requires_grad, "empty")


def full(size, fill_value, dtype=None, requires_grad=False, *, _opname="full"):
    if isinstance(fill_value, bool):
        default = dtypes.bool_
    elif isinstance(fill_value, numbers.Real) or isinstance(fill_value, np.generic) and fill_value.dtype.kind in "biuf":
        default = dtypes.scalar_dtype(fill_value, dtypes.bool_)
    else:
        raise TypeError(f"{_opname}: fill_value must be a number, got {type(fill_value).__name__}")
    dt = _dtype(dtype, _opname, default)
    shape = _size((size,), _opname)
    return Tensor(_allocate(_opname, np.full, shape, fill_value, dtype=dt), requires_grad=requires_grad)


def eye(n, m=None, dtype=None, requires_grad=False):
    n = _int(n, "n", "eye")
    m = n if m is None else _int(m, "m", "eye")
    if n < 0 or m < 0:
        raise ValueError(f"eye: n and m must be non-negative, got n={n}, m={m}")
    return Tensor(_allocate("eye", np.eye, n, m, dtype=_dtype(dtype, "eye")), requires_grad=requires_grad)


def arange(start, end=None, step=1, dtype=None, requires_grad=False):
    if end is None:
        start, end = 0, start
    for name, v in (("start", start), ("end", end), ("step", step)):
        _number(v, name, "arange")
    if step == 0:
        raise ValueError("arange: step must be nonzero")
    is_int = all(isinstance(v, (numbers.Integral, np.integer)) for v in (start, end, step))
    default = dtypes.int64 if is_int else dtypes.default_float
    arr = _allocate("arange", np.arange, start, end, step)
    return _make(arr, dtype, requires_grad, default, "arange")


def linspace(start, end, steps, dtype=None, requires_grad=False):
    _number(start, "start", "linspace")
    _number(end, "end", "linspace")
    if _int(steps, "steps", "linspace") < 0:
        raise ValueError(f"linspace: number of steps must be non-negative, got {steps}")
    return _make(_allocate("linspace", np.linspace, start, end, steps), dtype, requires_grad, opname="linspace")


def rand(*size, dtype=None, requires_grad=False):
    shape = _size(size, "rand")
    return _make(_allocate("rand", get_rng().random, shape), dtype, requires_grad, opname="rand")


def randn(*size, dtype=None, requires_grad=False):
    shape = _size(size, "randn")
    return _make(_allocate("randn", get_rng().standard_normal, shape), dtype, requires_grad, opname="randn")


def randint(low, high=None, size=(), dtype=None, requires_grad=False):
    if high is None:
        low, high = 0, low
    low, high = _int(low, "low", "randint"), _int(high, "high", "randint")
    if low >= high:
        raise ValueError(f"randint: low must be less than high, got low={low}, high={high}")
    shape = _size((size,), "randint")
    arr = _allocate("randint", get_rng().integers, low, high, size=shape)
    return _make(arr, dtype, requires_grad, dtypes.int64, "randint")


def _like(fn):
    name = fn.__name__ + "_like"

    def like(t, dtype=None, requires_grad=False):
        _check_tensor(t, name)
        return fn(*t.shape, dtype=dtype if dtype is not None else t.dtype, requires_grad=requires_grad)
    like.__name__ = name
    return like


def _check_tensor(t, opname):
    if not isinstance(t, Tensor):
        raise TypeError(f"{opname}: expected a Tensor, got {type(t).__name__}")


zeros_like, ones_like, rand_like, randn_like, empty_like = (_like(f) for f in (zeros, ones, rand, randn, empty))


def full_like(t, fill_value, dtype=None, requires_grad=False):
    _check_tensor(t, "full_like")
    return full(t.shape, fill_value, dtype=dtype if dtype is not None else t.dtype, requires_grad=requires_grad,
                _opname="full_like")
