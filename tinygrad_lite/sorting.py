"""`sort`, `argsort` and `topk` with PyTorch's signatures, as functions and Tensor methods.

The order is computed on the data (NumPy's stable sort), so it is not differentiable; the values are a `gather`
of the input along `dim` at those indices, so their gradient flows to the chosen positions through the existing
gather primitive (no new primitive, higher order for free). Indices are int64 and never require grad.

Order, as PyTorch's: NaN counts as larger than every number (last ascending, first descending); -0.0 equals 0.0.
Equal elements always keep their original order, descending too, so `stable=True` is exact and `stable=False`
(for which PyTorch leaves tied indices unspecified) gives the same valid order. `topk` takes the first k of that
order: with ties across the k-th place it keeps the lowest indices, where PyTorch's (unspecified) choice may
differ; `sorted=False` also returns them sorted.
"""
import collections
import numbers

import numpy as np

from .autograd import recorder as tape
from .compile.hooks import batching_rule, host
from .ops import index as ix, registry
from .tensor import Tensor, _dim

__all__ = ["sort", "argsort", "topk"]

SortResult = collections.namedtuple("sort", ["values", "indices"])
TopkResult = collections.namedtuple("topk", ["values", "indices"])

# topk over long rows: a partition pre-selects the k candidates when no tie straddles the k-th place
_PARTITION_MIN_SIZE = 256


def _check_input(x, opname):
    if not isinstance(x, Tensor):
        raise TypeError(f"{opname}(): argument 'input' (position 1) must be Tensor, not {type(x).__name__}"
                        f"{registry.user_site()}")


def _flag(value, name, opname, none_ok=False):
    if value is None and none_ok:
        return False
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{opname}(): argument '{name}' must be bool, not {type(value).__name__}"
                        f"{registry.user_site()}")
    return bool(value)


def _order(a, axis, descending):
    """Indices that sort `a` along `axis`, stably (ties keep their original order in both directions), NaN last
    ascending and first descending."""
    if not descending:
        return np.argsort(a, axis=axis, kind="stable")
    # Reversed input, stable ascending, reversed back: descending, with ties (and NaNs) in original order.
    n = a.shape[axis]
    rev = np.argsort(np.flip(a, axis), axis=axis, kind="stable")
    return np.flip((n - 1) - rev, axis)


def _take(x, d, idx):
    """The values of x at `idx` along dim d (a gather: differentiable, gradient to the chosen positions)."""
    if x._data.ndim == 0:
        return tape.apply(ix.gather, (x.reshape(1),), (0, host(np.reshape, idx, (1,)))).reshape(())
    return tape.apply(ix.gather, (x,), (d, idx))


def _indices(order):
    return np.ascontiguousarray(order, dtype=np.int64)


@tape.labelled("SortBackward0")
def sort(input, dim=-1, descending=False, *, stable=False):
    """(values, indices) of `input` sorted along `dim`; values are differentiable, indices int64."""
    _check_input(input, "sort")
    descending = _flag(descending, "descending", "sort")
    _flag(stable, "stable", "sort", none_ok=True)  # always stable: see the module docstring
    a = input._data
    d = _dim(dim, a.ndim, "sort")
    idx = host(_sort_indices, a, d, descending)
    return SortResult(_take(input, d, idx), Tensor._wrap(idx))


def _sort_indices(a, d, descending):
    return np.zeros((), np.int64) if a.ndim == 0 else _indices(_order(a, d, descending))


def argsort(input, dim=-1, descending=False, *, stable=False):
    """The int64 indices that sort `input` along `dim` (`sort(...).indices`)."""
    _check_input(input, "argsort")
    descending = _flag(descending, "descending", "argsort")
    _flag(stable, "stable", "argsort", none_ok=True)
    a = input._data
    d = _dim(dim, a.ndim, "argsort")
    return Tensor._wrap(host(_sort_indices, a, d, descending))


@tape.labelled("TopkBackward0")
def topk(input, k, dim=-1, largest=True, sorted=True):
    """(values, indices) of the k largest (or, with largest=False, smallest) elements along `dim`, best first.
    Raises a RuntimeError unless 0 <= k <= the size of `dim`."""
    _check_input(input, "topk")
    if isinstance(k, Tensor) and k._data.ndim == 0 and k._data.dtype.kind in "iu":
        k = k.item()  # a read the capture sees: tl.compile guards it, tl.onnx.export refuses one from the inputs
    if not isinstance(k, numbers.Integral) or isinstance(k, (bool, np.bool_)):
        raise TypeError(f"topk(): argument 'k' (position 2) must be int, not {type(k).__name__}"
                        f"{registry.user_site()}")
    k = int(k)
    largest = _flag(largest, "largest", "topk")
    _flag(sorted, "sorted", "topk")  # the result is sorted either way
    a = input._data
    d = _dim(dim, a.ndim, "topk")
    n = a.shape[d] if a.ndim else 1
    if not 0 <= k <= n:
        _fail(f"topk: selected index k={k} is out of range for dim {d} of size {n} (expected 0 <= k <= {n}; "
              f"input of shape {tuple(a.shape)})")
    if a.dtype.kind == "b":
        _fail(f"topk: bool tensors are not supported (input of shape {tuple(a.shape)}), as in PyTorch; convert "
              f"with .int() or .float() first")
    idx = host(_topk_indices, a, d, k, n, largest)
    return TopkResult(_take(input, d, idx), Tensor._wrap(idx))


def _topk_indices(a, d, k, n, largest):
    if a.ndim == 0:
        return np.zeros((), np.int64)
    order = None
    if 0 < k and n >= _PARTITION_MIN_SIZE and 8 * k <= n:
        order = _partitioned_order(a, d, k, largest)
    if order is None:
        order = _order(a, d, largest)[(slice(None),) * d + (slice(0, k),)]
    return _indices(order)


def _partitioned_order(a, d, k, largest):
    """The first k entries of `_order(a, d, largest)` from a partition (O(n) instead of a full sort), or None when
    some row has an element outside the selection equal to the k-th value (the tie must be broken by index)."""
    n = a.shape[d]
    kth = n - k if largest else k - 1
    part = np.argpartition(a, kth, axis=d)  # NaN counts as largest here too
    pick = (slice(None),) * d
    chosen = part[pick + ((slice(kth, None) if largest else slice(0, k)),)]
    rest = part[pick + ((slice(0, kth) if largest else slice(k, None)),)]
    boundary = np.take_along_axis(a, part[pick + (slice(kth, kth + 1),)], d)
    others = np.take_along_axis(a, rest, d)
    tied = others == boundary
    if a.dtype.kind == "f":
        tied |= np.isnan(others) & np.isnan(boundary)
    if tied.any():
        return None
    chosen = np.sort(chosen, axis=d)  # original order, so the stable sort below breaks ties by index
    within = _order(np.take_along_axis(a, chosen, d), d, largest)
    return np.take_along_axis(chosen, within, d)


def _fail(message):
    raise registry.OpError(message + registry.user_site())


def _sort_method(self, dim=-1, descending=False, *, stable=False):
    return sort(self, dim, descending, stable=stable)


def _argsort_method(self, dim=-1, descending=False, *, stable=False):
    return argsort(self, dim, descending, stable=stable)


def _topk_method(self, k, dim=-1, largest=True, sorted=True):
    return topk(self, k, dim, largest, sorted)


_sort_method.__doc__, _argsort_method.__doc__, _topk_method.__doc__ = sort.__doc__, argsort.__doc__, topk.__doc__
Tensor.sort = _sort_method
Tensor.argsort = _argsort_method
Tensor.topk = _topk_method


# ---------------- vmap: the index computations over a leading batch dimension (the sorted dim moved past it) ----
@batching_rule(_sort_indices)
def _(args, batched):
    a, d, descending = args
    return np.zeros(a.shape[:1], np.int64) if a.ndim == 1 else _sort_indices(a, d + 1, descending)


@batching_rule(_topk_indices)
def _(args, batched):
    a, d, k, n, largest = args
    return np.zeros(a.shape[:1], np.int64) if a.ndim == 1 else _topk_indices(a, d + 1, k, n, largest)
