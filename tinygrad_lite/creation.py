"""Tensor factories (zeros, ones, full, eye, arange, linspace, rand, randn, randint and the *_like forms)."""
import numbers

import numpy as np

from . import dtypes
from .random import get_rng
from .tensor import Tensor


def _size(size, opname):
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    for s in size:
        if not isinstance(s, numbers.Integral) or s < 0:
            raise ValueError(f"{opname}: sizes must be non-negative ints, got {size!r}")
    return tuple(int(s) for s in size)


def _make(arr, dtype, requires_grad, default=dtypes.default_float):
    dt = dtypes.to_dtype(dtype) if dtype is not None else default
    return Tensor(arr.astype(dt, copy=False), requires_grad=requires_grad)


def tensor(data, dtype=None, requires_grad=False):
    """Create a tensor (copying Tensor data); Python floats become float32, ints int64, bools bool."""
    return Tensor(data, dtype=dtype, requires_grad=requires_grad)


def zeros(*size, dtype=None, requires_grad=False):
    return _make(np.zeros(_size(size, "zeros")), dtype, requires_grad)


def ones(*size, dtype=None, requires_grad=False):
    return _make(np.ones(_size(size, "ones")), dtype, requires_grad)


def empty(*size, dtype=None, requires_grad=False):
    return zeros(*size, dtype=dtype, requires_grad=requires_grad)


def full(size, fill_value, dtype=None, requires_grad=False):
    default = dtypes.scalar_dtype(fill_value, dtypes.bool_) if not isinstance(fill_value, bool) else dtypes.bool_
    return _make(np.full(_size((size,), "full"), fill_value), dtype, requires_grad, default)


def eye(n, m=None, dtype=None, requires_grad=False):
    return _make(np.eye(n, m), dtype, requires_grad)


def arange(start, end=None, step=1, dtype=None, requires_grad=False):
    if end is None:
        start, end = 0, start
    is_int = all(isinstance(v, numbers.Integral) for v in (start, end, step))
    return _make(np.arange(start, end, step), dtype, requires_grad, dtypes.int64 if is_int else dtypes.default_float)


def linspace(start, end, steps, dtype=None, requires_grad=False):
    return _make(np.linspace(start, end, steps), dtype, requires_grad)


def rand(*size, dtype=None, requires_grad=False):
    return _make(get_rng().random(_size(size, "rand")), dtype, requires_grad)


def randn(*size, dtype=None, requires_grad=False):
    return _make(get_rng().standard_normal(_size(size, "randn")), dtype, requires_grad)


def randint(low, high=None, size=(), dtype=None, requires_grad=False):
    if high is None:
        low, high = 0, low
    return _make(get_rng().integers(low, high, size=_size((size,), "randint")), dtype, requires_grad, dtypes.int64)


def _like(fn):
    def like(t, dtype=None, requires_grad=False):
        return fn(*t.shape, dtype=dtype if dtype is not None else t.dtype, requires_grad=requires_grad)
    like.__name__ = fn.__name__ + "_like"
    return like


zeros_like, ones_like, rand_like, randn_like, empty_like = (_like(f) for f in (zeros, ones, rand, randn, empty))


def full_like(t, fill_value, dtype=None, requires_grad=False):
    return full(t.shape, fill_value, dtype=dtype if dtype is not None else t.dtype, requires_grad=requires_grad)
