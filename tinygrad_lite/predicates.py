"""Tests on tensors and small utilities that PyTorch code leans on: is_tensor, numel, isnan/isinf/isfinite,
isclose/allclose/equal, any/all, sign, round, view_as/reshape_as/type_as, detach_, cumsum/cumprod and norm.
PyTorch's names, signatures and numbers; each is also a Tensor method where PyTorch has one (attached at import)."""
import builtins
import math
import numbers

import numpy as np

from . import dtypes
from .autograd import engine, recorder as tape
from .autograd.recorder import labelled
from .compile.hooks import active, batching_rule, constant, data, decide, elementwise, has_zero, host
from .ops.batching import shift_axes
from .ops import elementwise as ew, reduce as red, registry
from .tensor import Tensor, _dim, _dims
from . import functional as F  # noqa: F401  (attaches sum/amax/... first)

__all__ = ["is_tensor", "is_floating_point", "numel", "isnan", "isinf", "isfinite", "isclose", "allclose", "equal", "any", "all", "sign",
           "round", "cumsum", "cumprod", "norm"]

_wrap = Tensor._wrap
_TRUE = np.ones((), dtype=np.bool_)


def _need_tensor(x, opname, arg="input"):
    if not isinstance(x, Tensor):
        raise TypeError(f"{opname}(): argument '{arg}' must be Tensor, not {type(x).__name__}{registry.user_site()}")


def _zero_grad(x, values):
    """`values` (shaped as x) as an output of x with a zero gradient, PyTorch's derivative of sign and round:
    recorded (so it requires grad and has a grad_fn, as PyTorch's) through `where` with an all-True condition."""
    values = _wrap(values)
    return tape.apply(ew.where, (_true(), values, x)) if x.requires_grad else values


def _true():
    return _wrap(constant(_TRUE))


def is_tensor(obj):
    """True when `obj` is a Tensor (a Parameter included)."""
    return isinstance(obj, Tensor)


def is_floating_point(input):
    """True when `input`'s dtype is a floating-point one (the EMA habit: average the float entries of a state dict,
    copy the integer ones such as BatchNorm's num_batches_tracked)."""
    _need_tensor(input, "is_floating_point")
    return input._data.dtype.kind == "f"


def numel(input):
    """The number of elements of `input`."""
    _need_tensor(input, "numel")
    return input.numel()


# ---------------- elementwise tests ----------------
def _test_values(fn, a, non_float):
    return fn(a) if a.dtype.kind == "f" else np.full(a.shape, non_float)


def _test(fn, non_float):
    def test(input):
        _need_tensor(input, fn.__name__)
        return _wrap(host(_test_values, fn, data(input), non_float))
    test.__name__ = fn.__name__
    test.__doc__ = f"Elementwise `{fn.__name__}` as a bool tensor (integer and bool tensors: all {non_float})."
    return test


isnan, isinf, isfinite = _test(np.isnan, False), _test(np.isinf, False), _test(np.isfinite, True)


def _pair(input, other, opname):
    _need_tensor(input, opname)
    _need_tensor(other, opname, "other")
    a, b = input._data, other._data
    if a.dtype != b.dtype:
        raise registry.OpError(f"{opname}: expected both tensors to have the same dtype, got {a.dtype} and {b.dtype}"
                               f"{registry.user_site()}")
    try:
        np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise registry.OpError(f"{opname}: shapes {tuple(a.shape)} and {tuple(b.shape)} do not broadcast"
                               f"{registry.user_site()}") from None
    return a, b


def _isclose(a, b, rtol, atol, equal_nan, opname):
    """PyTorch's formula and arithmetic: |a - b| <= atol + |rtol * b| in the tensors' dtype (float16 scalar
    products in float32, integers and bools against the default float dtype), or a == b, or both NaN."""
    for name, v in (("rtol", rtol), ("atol", atol)):
        if not v >= 0:
            raise registry.OpError(f"{opname}: {name} must be greater than or equal to zero, but got {v}"
                                   f"{registry.user_site()}")
    close = a == b
    if equal_nan and a.dtype.kind == "f":
        close |= np.isnan(a) & np.isnan(b)
    if rtol == 0 and atol == 0:
        return close
    dt = a.dtype if a.dtype.kind == "f" else dtypes.default_float
    if a.dtype.kind != "f":  # integers too: their difference is taken in float, so it cannot wrap around
        a, b = a.astype(dt), b.astype(dt)
    om = np.float32 if dt == np.float16 else dt.type  # PyTorch's opmath type for the scalar products
    with np.errstate(invalid="ignore", over="ignore"):  # inf * 0 and inf - inf: NaN is not close, as PyTorch
        allowed = (om(atol) + np.abs(om(rtol) * b.astype(om)).astype(dt)).astype(dt)
        actual = np.abs(a - b).astype(dt)
        close |= np.isfinite(actual) & (actual <= allowed)
    return close


def isclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    """Elementwise closeness as a bool tensor (torch.isclose): both tensors of one dtype, broadcasting."""
    a, b = _pair(input, other, "isclose")
    return _wrap(host(_isclose_array, a, b, rtol, atol, equal_nan))


def _isclose_array(a, b, rtol, atol, equal_nan):
    return np.asarray(_isclose(a, b, rtol, atol, equal_nan, "isclose"))


def allclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    """True when every element of `input` is close to `other`'s (a Python bool, as torch.allclose)."""
    a, b = _pair(input, other, "allclose")
    return decide(_all_close, a, b, rtol, atol, equal_nan)  # a Python bool: tl.compile guards it


def _all_close(a, b, rtol, atol, equal_nan):
    return np.all(_isclose(a, b, rtol, atol, equal_nan, "allclose"))


def equal(input, other):
    """True when both tensors have the same shape and elements (NaN is never equal; a Python bool)."""
    _need_tensor(input, "equal")
    _need_tensor(other, "equal", "other")
    return decide(np.array_equal, input._data, other._data)  # a Python bool: tl.compile guards it


# ---------------- any / all ----------------
def _logical_values(reduce, a, axis, keep):
    out = np.asarray(reduce(a, axis=axis, keepdims=keep))
    return out.astype(np.uint8) if a.dtype == np.uint8 else out  # uint8 stays uint8, as PyTorch


def _logical(reduce, opname):
    def fn(input, dim=None, keepdim=False, *, axis=None, keepdims=None, out=None):
        _need_tensor(input, opname)
        if out is not None:
            raise TypeError(f"{opname}: out= is not supported; use the returned tensor")
        dim, keep = F._pick(dim, axis, keepdim, keepdims)  # axis= and out=None: np.any/np.all(tensor) work
        a = data(input)  # (data(): a vmap or compile capture learns where the array comes from)
        return _wrap(host(_logical_values, reduce, a, _dims(dim, a.ndim, opname), keep))
    fn.__name__ = opname
    fn.__doc__ = (f"Whether {'any' if opname == 'any' else 'every'} element (over `dim`, an int or a tuple) is "
                  f"nonzero: a bool tensor (uint8 for uint8 input, as PyTorch).")
    return fn


@batching_rule(_logical_values)
def _(args, batched):
    """vmap: the reduced axes moved past the batch (all of a sample's axes for dim=None)."""
    reduce, a, axis, keep = args
    return _logical_values(reduce, a, shift_axes(axis, a.ndim - 1) if a.ndim > 1 else (), keep)


any = _logical(np.any, "any")  # noqa: A001
all = _logical(np.all, "all")  # noqa: A001


# ---------------- sign and round (zero gradient) ----------------
def sign(input):
    """-1, 0 or 1 elementwise (NaN and -0.0 give 0, as PyTorch); differentiable with a zero gradient."""
    _need_tensor(input, "sign")
    a = data(input)  # (an argument vmap does not batch is read live, not frozen)
    if a.dtype.kind == "b":
        return _wrap(host(np.copy, a))
    return _zero_grad(input, host(_sign_values, a))


@elementwise  # (vmap: the batch as it is)
def _sign_values(a):
    with np.errstate(invalid="ignore"):
        return ((a > 0).astype(a.dtype) - (a < 0).astype(a.dtype)) if a.dtype.kind != "u" else (a > 0).astype(a.dtype)


def round(input, *, decimals=0):  # noqa: A001
    """Round half to even (torch.round); with `decimals`, PyTorch's nearbyint(x * 10**d) / 10**d (x / 10**-d for
    negative d) in its arithmetic (float16 in float32). Differentiable with a zero gradient."""
    _need_tensor(input, "round")
    if not isinstance(decimals, numbers.Integral) or isinstance(decimals, builtins.bool):
        raise TypeError(f"round: decimals must be an int, got {type(decimals).__name__}")
    a = data(input)
    if a.dtype.kind != "f":
        if decimals == 0 and a.dtype.kind in "iu":
            return _wrap(host(np.copy, a))
        raise NotImplementedError(f"round: not implemented for dtype {a.dtype}"
                                  f"{' with decimals' if decimals else ''} (shape {tuple(a.shape)})")
    return _zero_grad(input, host(_round_values, a, decimals))


@elementwise
def _round_values(a, decimals):
    if decimals == 0:
        return np.rint(a)
    om = np.float32 if a.dtype == np.float16 else a.dtype.type
    ten = om(10.0 ** builtins.abs(decimals))
    x = a.astype(om, copy=False)
    with np.errstate(over="ignore", invalid="ignore"):
        values = np.rint(x / ten) * ten if decimals < 0 else np.rint(x * ten) / ten
    return values.astype(a.dtype, copy=False)


# ---------------- shape helpers and detach_ ----------------
def view_as(self, other):
    """`self.view(other.shape)`."""
    _need_tensor(other, "view_as", "other")
    return self.view(other.shape)


def reshape_as(self, other):
    _need_tensor(other, "reshape_as", "other")
    return self.reshape(other.shape)


def type_as(self, other):
    """`self` converted to `other`'s dtype (self itself when they match)."""
    _need_tensor(other, "type_as", "other")
    return self.astype(other._data.dtype)


def detach_(self):
    """Make this tensor a leaf without history that does not require grad, in place (PyTorch's `detach_`); views
    made by a recorded operation refuse, as PyTorch's: use `.detach()`. Operations recorded earlier that used this
    tensor still pass gradients back through its old history, as in PyTorch."""
    e = self._entry
    if e is not None and e.prim.name in registry.VIEW_OPS and (
            np.may_share_memory(self._data, e.saved[0]._data) if e.saved is not None else self._data.base is not None):
        raise RuntimeError(f"detach_: can't detach views in-place (a '{e.prim.name}' view of shape "
                           f"{tuple(self.shape)}, {self.dtype}, recorded at {e.source}); use detach() instead"
                           f"{registry.user_site()}")
    if self._entry is not None or self.requires_grad:
        engine.note_detached(self)
    return self


# ---------------- cumulative sum and product ----------------
def _cumulative(prim, opname):
    def fn(input, dim=None, *, dtype=None, axis=None):
        _need_tensor(input, opname)
        dim = axis if axis is not None else dim
        if dim is None:
            raise TypeError(f"{opname}() missing 1 required positional argument: 'dim'")
        x = input
        if dtype is not None:
            x = x.astype(dtype)
        elif x._data.dtype.kind in "biu":
            x = x.astype(dtypes.int64)  # PyTorch accumulates bools and integers as int64
        return tape.apply(prim, (x,), (_dim(dim, x._data.ndim, opname),))
    fn.__name__ = opname
    fn.__doc__ = (f"The cumulative {'sum' if opname == 'cumsum' else 'product'} along `dim` (torch.{opname}), "
                  f"accumulated as PyTorch does (float32 in float64); integers and bools give int64.")
    return fn


cumsum = _cumulative(red.cumsum, "cumsum")
cumprod = _cumulative(red.cumprod, "cumprod")


# ---------------- norm ----------------
def _where_nonzero(t, fn, at_zero):
    """fn(t) where t != 0 and `at_zero` where t == 0, with a zero gradient there (PyTorch's masked norm
    gradients: no inf * 0 = nan from the kink of |x|**p or the root at 0). Without a zero the masks change no bit
    (`where` copies), so eagerly they are skipped then; a capture (tl.compile, vmap) always records them, with no
    choice made from the values: a replay needs no guard on them, also after an optimizer step (where a guard could
    not stop cleanly), and a vmap of samples with and without zeros is one replay."""
    if active() is None and not decide(has_zero, data(t)):
        return fn(t)
    z = _wrap(host(_zeros_of, data(t)))
    return F.where(z, float(at_zero), fn(F.where(z, 1.0, t)))


@elementwise
def _zeros_of(a):
    return a == 0


def _count_nonzero(a, dims, keepdim):
    return np.asarray(np.sum(a != 0, axis=dims, keepdims=keepdim).astype(a.dtype))


def _vector_norm(x, ord, dims, keepdim):
    if ord == math.inf or ord == -math.inf:
        return (F.amax if ord > 0 else F.amin)(x.abs(), dims, keepdim)
    if ord == 0:
        count = _wrap(host(_count_nonzero, data(x), dims, keepdim))
        s = F.sum(x, dims, keepdim)  # gives the result its place on the tape: the gradient is zero
        return tape.apply(ew.where, (_true(), count, s)) if s.requires_grad else count
    if ord == 1:
        return F.sum(x.abs(), dims, keepdim)
    if ord == 2:
        return _where_nonzero(F.sum(x * x, dims, keepdim), lambda t: t.sqrt(), 0.0)
    powered = _where_nonzero(x.abs(), lambda t: t ** ord, 0.0 if ord > 0 else math.inf)
    return _where_nonzero(F.sum(powered, dims, keepdim), lambda t: t ** (1.0 / ord), 0.0 ** (1.0 / ord) if ord > 0
                          else math.inf)


@labelled("LinalgVectorNormBackward0")
def norm(input, p="fro", dim=None, keepdim=False, out=None, dtype=None):
    """torch.norm: the vector p-norm over `dim` (all elements when None) for p a number (2, 1, inf, -inf, 0 or any
    other), and 'fro' (the 2-norm of up to two dims). Gradients as PyTorch's, including 0 at a zero vector."""
    _need_tensor(input, "norm")
    if out is not None:
        raise TypeError("norm: out= is not supported; use the returned tensor")
    x = input if dtype is None else input.astype(dtype)
    if x._data.dtype.kind != "f":
        raise registry.OpError(f"norm: expected a floating point tensor as input, got {x._data.dtype} (shape "
                               f"{tuple(x.shape)}); use .float() first{registry.user_site()}")
    if isinstance(p, str):
        if p == "nuc":
            raise NotImplementedError("norm: the nuclear norm (p='nuc') is not supported")
        if p != "fro":
            raise registry.OpError(f"norm: order {p!r} is not supported (expected 'fro' or a number)")
        if isinstance(dim, (tuple, list)) and len(dim) > 2:
            raise registry.OpError(f"norm: p='fro' takes at most 2 dims, got dim={tuple(dim)}{registry.user_site()}")
        ord = 2.0
    elif p is None:
        ord = 2.0
    elif isinstance(p, numbers.Real) and not isinstance(p, builtins.bool):
        ord = float(p)
    else:
        raise TypeError(f"norm: p must be a number or 'fro', got {type(p).__name__}")
    if x._data.size == 0 and math.isinf(ord):
        raise registry.OpError(f"norm: cannot compute the {p} norm of an empty tensor (shape {tuple(x.shape)}): the "
                               f"operation has no identity{registry.user_site()}")
    x, back = F._opmath(x)
    return F._rounded(_vector_norm(x, ord, F._reduce_dims(dim, x._data.ndim, "norm"), bool(keepdim)), back)


def _norm_method(self, p="fro", dim=None, keepdim=False, dtype=None):
    return norm(self, p, dim, keepdim, dtype=dtype)


for _n in ("isnan", "isinf", "isfinite", "isclose", "allclose", "equal", "any", "all", "sign", "round", "cumsum",
           "cumprod", "view_as", "reshape_as", "type_as", "detach_", "is_floating_point"):
    setattr(Tensor, _n, globals()[_n])
Tensor.norm = _norm_method
