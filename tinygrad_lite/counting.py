"""Counting, as PyTorch's: `bincount`, `histc` and `unique`, as functions and Tensor methods (for metrics: class
counts, confusion matrices, confidence histograms).

They count on the data, so their results do not depend differentiably on the input; `bincount`'s `weights` do:
the weighted count is the existing `index_scatter` primitive (the VJP of indexing), so its gradient flows to the
weights without a new primitive. Output shapes that depend on the values (bincount's length, unique's size) go
through `host_shaped`, so a `tl.compile` replay checks them."""
import numbers

import numpy as np

from .compile.hooks import host, host_check, host_shaped
from .ops import index as ix, registry
from .tensor import Tensor, _dim

__all__ = ["bincount", "histc", "unique"]


def _fail(message, cls=registry.OpError):
    raise cls(message + registry.user_site())


def _tensor(x, opname, what="input"):
    if not isinstance(x, Tensor):
        _fail(f"{opname}(): argument '{what}' must be Tensor, not {type(x).__name__}", TypeError)
    return x


def _check_counts(a):
    if a.size and a.min() < 0:
        _fail(f"bincount only supports 1-d non-negative integral inputs (got a negative value, {a.min()}, in an "
              f"input of shape {tuple(a.shape)})")


def _counts(a, minlength):
    return np.bincount(a, minlength=minlength).astype(np.int64)


def bincount(input, weights=None, minlength=0):
    """The number of occurrences of each value 0..max(input) in the 1-D non-negative integer `input` (int64), or
    the sum of `weights` at each value (float64 for integer weights, as PyTorch); at least `minlength` bins."""
    a = _tensor(input, "bincount")._data
    if a.ndim != 1 or a.dtype.kind not in "iu":
        _fail(f"bincount only supports 1-d non-negative integral inputs (got an input of shape {tuple(a.shape)} "
              f"and dtype {a.dtype})")
    if not isinstance(minlength, numbers.Integral) or isinstance(minlength, bool) or minlength < 0:
        _fail(f"bincount: minlength should be >= 0, got {minlength!r}")
    host_check(_check_counts, a)
    # the counts' shape is the bin count: a replay checks it (a 0-d length would pass any check and go stale)
    counts = host_shaped(_counts, a, int(minlength))
    if weights is None:
        return Tensor._wrap(counts)
    w = _tensor(weights, "bincount", "weights")
    if w._data.shape != a.shape:
        _fail(f"bincount: weights should be 1-d and have the same length as input (input of shape "
              f"{tuple(a.shape)}, weights of shape {tuple(w._data.shape)})")
    if w._data.dtype not in (np.float32, np.float64):  # PyTorch keeps float and double, counts others in double
        w = w.double()
    return ix.index_scatter(w, counts.shape, (a,))  # a weighted count: gradient w.r.t. the weights (w[a])


def _histc_counts(a, bins, lo, hi):
    """The histogram of the data `a` (any shape): one host computation from the data, so a replay recomputes the
    data's range too (min == max) and raises as eager does on a NaN or infinite range."""
    a = a.reshape(-1)
    if lo == hi and a.size:
        lo, hi = a.min(), a.max()
    if lo == hi:
        lo, hi = lo - 1, hi + 1
    if not (np.isfinite(lo) and np.isfinite(hi)):
        _fail(f"torch.histc: range of [{lo}, {hi}] is not finite (the data's range, for min == max; shape "
              f"{tuple(a.shape)})")
    lo, hi = a.dtype.type(lo), a.dtype.type(hi)
    keep = a[(a >= lo) & (a <= hi)]  # outside the range (and NaN) are not counted
    # PyTorch's bin: (x - min) * bins / (max - min) in the input's precision, the right edge in the last bin
    pos = ((keep - lo) * a.dtype.type(bins) / (hi - lo)).astype(np.int64)
    pos[pos == bins] = bins - 1
    return np.bincount(pos, minlength=bins).astype(a.dtype)


def histc(input, bins=100, min=0, max=0):  # noqa: A002  (PyTorch's argument names)
    """A histogram of `input` with `bins` equal-width bins over [min, max] (the data's range when min == max),
    in the input's floating dtype; values outside the range are ignored."""
    a = _tensor(input, "histc")._data
    if a.dtype.kind != "f":
        _fail(f"histc: expected a floating point input, got dtype {a.dtype} (shape {tuple(a.shape)}); convert "
              f"with .float() or .double() first", NotImplementedError)
    if not isinstance(bins, numbers.Integral) or isinstance(bins, bool) or bins <= 0:
        _fail(f"torch.histc(): bins must be > 0, but got {bins!r} for dimension 0")
    if min > max:
        _fail(f"torch.histc: max must be larger than min (min={min}, max={max})")
    if not (np.isfinite(min) and np.isfinite(max)):
        _fail(f"torch.histc: range of [{min}, {max}] is not finite")
    return Tensor._wrap(host(_histc_counts, a, int(bins), min, max))


def _unique(a, return_inverse, return_counts, dim):
    if dim is None:
        values, inverse, counts = np.unique(a.reshape(-1), return_inverse=True, return_counts=True, equal_nan=False)
        inverse = inverse.reshape(a.shape)
    else:
        values, inverse, counts = np.unique(a, return_inverse=True, return_counts=True, axis=dim)
        inverse = inverse.reshape(-1)
    return values, inverse.astype(np.int64), counts.astype(np.int64)


def unique(input, sorted=True, return_inverse=False, return_counts=False, dim=None):  # noqa: A002
    """The distinct values of `input` in ascending order (of the flattened input, or the distinct slices along
    `dim`), and optionally the int64 `inverse` (each element's position in them) and `counts`. NaNs are not equal
    to each other, as PyTorch's. Always sorted (`sorted=False` allows any order, as PyTorch's CPU also sorts)."""
    a = _tensor(input, "unique")._data
    if dim is not None:
        dim = _dim(dim, a.ndim, "unique")
        if a.ndim == 0:
            _fail("unique: a 0-d tensor has no dimension to take the unique slices along")
    values, inverse, counts = host_shaped(_unique, a, bool(return_inverse), bool(return_counts), dim)
    out = (Tensor._wrap(values),) + ((Tensor._wrap(inverse),) if return_inverse else ()) + (
        (Tensor._wrap(counts),) if return_counts else ())
    return out[0] if len(out) == 1 else out


def _bincount_method(self, weights=None, minlength=0):
    return bincount(self, weights, minlength)


def _histc_method(self, bins=100, min=0, max=0):  # noqa: A002
    return histc(self, bins, min, max)


def _unique_method(self, sorted=True, return_inverse=False, return_counts=False, dim=None):  # noqa: A002
    return unique(self, sorted, return_inverse, return_counts, dim)


_bincount_method.__doc__, _histc_method.__doc__, _unique_method.__doc__ = bincount.__doc__, histc.__doc__, \
    unique.__doc__
Tensor.bincount, Tensor.histc, Tensor.unique = _bincount_method, _histc_method, _unique_method
