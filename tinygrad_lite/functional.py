"""Composite operations (reductions, elementwise composites, softmax) built from primitives; padding and the im2col
wrappers are in im2col.py and re-exported here. Each function is also a Tensor method where PyTorch has one;
`tl.nn.functional` re-exports the NN ones."""
import collections
import numbers
import warnings

import numpy as np

from . import dtypes
from .autograd import recorder as tape
from .autograd.grad_mode import no_grad
from .autograd.recorder import call_arg, labelled
from .ops import elementwise as ew, reduce as red, registry
from .compile.hooks import batching_rule, data, elementwise
from .ops.batching import shift_axes
from .ops.elementwise import hosted
from .tensor import Tensor, _dims, _dim, _operand, _binary
from . import shape as _shape  # noqa: F401  (attaches the shape methods first)

_apply = tape.apply
MaxResult = collections.namedtuple("max", ["values", "indices"])


def _pick(dim, axis, keepdim, keepdims):
    return (axis if axis is not None else dim), bool(keepdims if keepdims is not None else keepdim)


def _float(x):
    return x if x._data.dtype.kind == "f" else x.astype(dtypes.default_float)


def _opmath(x):
    """(x, None), or for a float16 x (x in float32, float16): PyTorch's CPU kernels compute a float16 mean, var, std,
    softmax and norm in float32 and round the result to float16 once; computed in float16, each step rounded (mean's
    sum and its scaling, std's var and its root), about half the values differed from PyTorch's in the last bit.
    (log_softmax and prod are left in float16: PyTorch's own rounding there is neither this nor NumPy's.) The caller
    casts its result back with `_rounded`."""
    return (x.astype(dtypes.float32), x._data.dtype) if x._data.dtype == dtypes.float16 else (x, None)


def _rounded(out, back):
    return out if back is None else out.astype(back)


def _reduce_dims(dim, ndim, opname):
    """A reduction's dims: as `_dims`, except that an empty tuple or list means every dim, as PyTorch's sum, mean,
    var, std, amax, amin, logsumexp and norm take `dim=()` / `dim=[]` (they returned the input unreduced here).
    squeeze and flip keep `_dims`: there () is no dim."""
    if dim.__class__ in (tuple, list) and not dim:
        return None
    return _dims(dim, ndim, opname)


def _reduce(prim, x, dim, keepdim, opname):
    return _apply(prim, (x,), (_reduce_dims(dim, x._data.ndim, opname), keepdim))


# ---------------- reductions ----------------
def sum(x, dim=None, keepdim=False, *, axis=None, keepdims=None, dtype=None):
    dim, keepdim = _pick(dim, axis, keepdim, keepdims)
    if dtype is not None:
        x = x.astype(dtype)
    elif x._data.dtype.kind in "bi":
        x = x.astype(dtypes.int64)  # PyTorch sums bools and ints as int64
    return _reduce(red.sum_, x, dim, keepdim, "sum")


def _count(x, dims):
    return x._data.size if dims is None else int(np.prod([x._data.shape[d] for d in dims]))



def _dim_arg(args, kwargs):
    """The dim a reduction was called with (positional or dim=/axis=), for its node's name: PyTorch names the
    reduction over every element and the one over some dims differently (MeanBackward0/1)."""
    return call_arg(args, kwargs, 1, "dim", "axis")


@labelled(lambda a, k: "MeanBackward0" if _dim_arg(a, k) is None else "MeanBackward1")
def mean(x, dim=None, keepdim=False, *, axis=None, keepdims=None, dtype=None):
    dim, keepdim = _pick(dim, axis, keepdim, keepdims)
    if dtype is not None:
        x = x.astype(dtype)
    if x._data.dtype.kind != "f":
        raise TypeError(f"mean: input dtype should be floating point, got {x._data.dtype}; use .float() first")
    dims = _reduce_dims(dim, x._data.ndim, "mean")
    n = _count(x, dims)
    x, back = _opmath(x)
    total = _apply(red.sum_, (x,), (dims, keepdim))
    # 0/0: NaN, recorded as what it is (anomaly mode names it)
    return _rounded(total * (1.0 / n) if n else total / 0.0, back)


@labelled("VarBackward0")
def var(x, dim=None, unbiased=None, keepdim=False, *, correction=None, axis=None, keepdims=None):
    return _var(x, dim, unbiased, keepdim, correction, axis, keepdims, "var")


def _var(x, dim, unbiased, keepdim, correction, axis, keepdims, opname, root=False):
    dim, keepdim = _pick(dim, axis, keepdim, keepdims)
    if correction is None:
        correction = 1 if unbiased is None else int(bool(unbiased))
    x, back = _opmath(_float(x))
    dims = _reduce_dims(dim, x._data.ndim, opname)
    d = x - mean(x, dims, keepdim=True)
    n = _count(x, dims) - correction
    ss = _apply(red.sum_, (d * d,), (dims, keepdim))
    # no degrees of freedom left: sum / 0 as PyTorch (inf for a spread, NaN for 0/0), recorded as a division
    out = ss * (1.0 / n) if n > 0 else ss / 0.0
    return _rounded(out.sqrt() if root else out, back)


@labelled("StdBackward0")
def std(x, dim=None, unbiased=None, keepdim=False, *, correction=None, axis=None, keepdims=None):
    return _var(x, dim, unbiased, keepdim, correction, axis, keepdims, "std", root=True)


def _empty_check(x, dims, opname):
    if x._data.size == 0 and (dims is None or any(x._data.shape[d] == 0 for d in dims)):
        raise registry.OpError(f"{opname}: cannot reduce over an empty dimension (shape {tuple(x.shape)})"
                               f"{registry.user_site()}")


def amax(x, dim=None, keepdim=False, *, axis=None, keepdims=None):
    dim, keepdim = _pick(dim, axis, keepdim, keepdims)
    dims = _reduce_dims(dim, x._data.ndim, "amax")
    _empty_check(x, dims, "amax")
    return _apply(red.amax, (x,), (dims, keepdim))


def amin(x, dim=None, keepdim=False, *, axis=None, keepdims=None):
    dim, keepdim = _pick(dim, axis, keepdim, keepdims)
    dims = _reduce_dims(dim, x._data.ndim, "amin")
    _empty_check(x, dims, "amin")
    return _apply(red.amin, (x,), (dims, keepdim))


def _arg_extreme(x, dim, keepdim, fn, opname):
    if dim is None:
        _empty_check(x, None, opname)
        return hosted(_arg_index, fn, data(x), None, keepdim)  # (keepdim: all dims kept, each of size 1)
    d = _dim(dim, x._data.ndim, opname)
    _empty_check(x, (d,), opname)
    return hosted(_arg_index, fn, data(x), d, keepdim)


def _arg_index(fn, x, axis, keepdim):
    if axis is None:
        return np.asarray(fn(x), dtype=np.int64).reshape((1,) * x.ndim if keepdim else ())
    return np.asarray(fn(x, axis=axis, keepdims=keepdim), dtype=np.int64)  # 0-d: an array, not a scalar


def argmax(x, dim=None, keepdim=False, *, axis=None, keepdims=None):
    dim, keepdim = _pick(dim, axis, keepdim, keepdims)
    return _arg_extreme(x, dim, keepdim, np.argmax, "argmax")


def argmin(x, dim=None, keepdim=False, *, axis=None, keepdims=None):
    dim, keepdim = _pick(dim, axis, keepdim, keepdims)
    return _arg_extreme(x, dim, keepdim, np.argmin, "argmin")


def _max_min(x, dim, keepdim, axis, keepdims, largest):
    if isinstance(dim, Tensor):  # max(other): elementwise, as PyTorch
        return maximum(x, dim) if largest else minimum(x, dim)
    dim, keepdim = _pick(dim, axis, keepdim, keepdims)
    if dim is None:
        return amax(x) if largest else amin(x)
    d = _dim(dim, x._data.ndim, "max" if largest else "min")
    idx = _arg_extreme(x, d, True, np.argmax if largest else np.argmin, "max" if largest else "min")
    values = x.gather(d, idx) if x._data.ndim else x
    if not keepdim and x._data.ndim:
        values, idx = values.squeeze(d), hosted(np.squeeze, idx._data, d)
    return MaxResult(values, idx)


@labelled(lambda a, k: "MaxBackward1" if _dim_arg(a, k) is None else "MaxBackward0")
def max(x, dim=None, keepdim=False, *, axis=None, keepdims=None):
    """No dim: the largest element (ties share the gradient). With dim: (values, indices), as PyTorch."""
    return _max_min(x, dim, keepdim, axis, keepdims, True)


@labelled(lambda a, k: "MinBackward1" if _dim_arg(a, k) is None else "MinBackward0")
def min(x, dim=None, keepdim=False, *, axis=None, keepdims=None):
    return _max_min(x, dim, keepdim, axis, keepdims, False)


def prod(x, dim=None, keepdim=False, *, axis=None, keepdims=None):
    dim, keepdim = _pick(dim, axis, keepdim, keepdims)
    return _reduce(red.prod, x, dim, keepdim, "prod")


@labelled("LogsumexpBackward0")
def logsumexp(x, dim=None, keepdim=False, *, axis=None, keepdims=None):
    """log(sum(exp(x))) computed stably by shifting with the (constant) maximum."""
    dim, keepdim = _pick(dim, axis, keepdim, keepdims)
    x = _float(x)
    dims = _reduce_dims(dim, x._data.ndim, "logsumexp")
    mc = _shift(x, dims)
    out = _apply(red.sum_, ((x - mc).exp(),), (dims, True)).log() + mc
    return out if keepdim else _squeeze_dims(out, dims)


def _shift(x, dims):
    """The constant max over dims (kept), with non-finite maxima replaced by 0, for stable exponentials."""
    return hosted(_finite_max, data(x), dims)


def _finite_max(x, dims):
    if not x.size:
        return np.zeros((1,) * x.ndim, x.dtype)
    if dims == (x.ndim - 1,) and x.ndim == 2 and x.shape[1] <= 32:  # short rows (a batch of logits): NumPy's
        # max along them runs one inner loop per row; along the columns of the transposed copy it is 4x faster
        m = np.maximum.reduce(np.ascontiguousarray(x.T), axis=0).reshape(-1, 1)
    else:
        m = np.maximum.reduce(x, axis=dims, keepdims=True)  # np.amax's kernel, without its Python wrapper
    # (not a sum of m tested for finiteness: finite maxima whose sum overflows made NumPy warn "overflow encountered
    # in reduce", an error under warnings filters or np.seterr(all="raise"); isfinite measured as fast at these sizes)
    finite = np.isfinite(m)
    return m if finite.all() else np.where(finite, m, 0).astype(x.dtype)


def _max_keep(x, axis):
    return np.amax(x, axis=axis, keepdims=True)


def _int_clip(x, dt, lo, hi):
    return np.asarray(np.clip(x.astype(dt, copy=False), lo, hi))


def _squeeze_dims(t, dims):
    shape = t._data.shape
    keep = tuple(s for i, s in enumerate(shape) if not (dims is None or i in dims))
    return t.reshape(keep)


# ---------------- elementwise composites ----------------
def clamp(x, min=None, max=None):
    """Limit x to [min, max]; the result dtype is PyTorch's (an integer tensor with a float bound gives float32)."""
    if min is None and max is None:
        raise ValueError("clamp: at least one of min and max must be given")
    if isinstance(min, (Tensor, np.ndarray)) or isinstance(max, (Tensor, np.ndarray)):
        return _clamp_tensors(x, None if min is None else _operand(min, x, "clamp"),
                              None if max is None else _operand(max, x, "clamp"))
    dt = x._data.dtype
    for name, v in (("min", min), ("max", max)):
        if v is not None:
            if not (isinstance(v, numbers.Real) or isinstance(v, np.generic) and v.dtype.kind in "biuf"):
                raise TypeError(f"clamp: {name} must be a number or a Tensor, got {type(v).__name__}")
            dt = dtypes.scalar_dtype(v, dt)
    if dt.kind == "f":
        return _apply(ew.clamp, (x.astype(dt),), (None if min is None else float(min),
                                                  None if max is None else float(max)))
    if dt.kind == "b":
        raise TypeError(f"clamp: bool tensors with bool bounds are not supported (shape {tuple(x.shape)})")
    try:
        return hosted(_int_clip, data(x), dt, min, max)
    except (OverflowError, TypeError, ValueError) as exc:
        raise registry.OpError(f"clamp: bounds ({min}, {max}) do not fit the dtype {dt}: {exc}") from None


def _clamp_tensors(x, lo, hi):
    """clamp with Tensor bounds: min(max(x, lo), hi) with PyTorch's gradients, which are not maximum/minimum's: x
    keeps the whole gradient where lo <= x <= hi (ties included), lo gets it where x < lo < hi, hi where x > hi or
    hi < lo; nothing gets it where x < lo == hi, or for a NaN x (the masks are nested wheres: no `&` needed)."""
    with no_grad():
        ref = x if lo is None else maximum(x, lo)
        ref = ref if hi is None else minimum(ref, hi)
    out = ref
    if hi is not None:
        if lo is not None:
            out = where(hi < lo, hi, out)
        out = where(x > hi, hi, out)
    if lo is not None:
        out = where(x < lo, lo if hi is None else where(lo < hi, lo, out), out)
    inside = x if hi is None else where(x <= hi, x, out)
    return inside if lo is None else where(x >= lo, inside, out)


def where(condition, input, other):
    """Elementwise `input` where `condition` else `other`, broadcasting all three."""
    c = condition if isinstance(condition, Tensor) else Tensor(condition)
    if c._data.dtype != np.bool_:
        raise TypeError(f"where: condition must be a bool tensor, got dtype {c._data.dtype}")
    if not isinstance(input, Tensor) and not isinstance(other, Tensor):
        input = Tensor(input)
    a = input if isinstance(input, Tensor) else _operand(input, other, "where")
    b = other if isinstance(other, Tensor) else _operand(other, a, "where")
    if a._data.dtype != b._data.dtype:
        dt = dtypes.promote_arrays(a._data, b._data)
        a, b = a.astype(dt), b.astype(dt)
    return _apply(ew.where, (c, a, b))


def maximum(a, b):
    return _binary(ew.maximum, a, b)


def minimum(a, b):
    return _binary(ew.minimum, a, b)


@labelled("PowBackward0")
def square(x):
    return x * x


@labelled("LerpBackward0")
def lerp(input, end, weight):
    """input + weight * (end - input), with PyTorch's two-sided formula (end - (end - input) * (1 - weight) for
    |weight| >= 0.5, exact at weight 1); `weight` a number or a Tensor. The EMA habit: `ema.lerp_(p, 1 - decay)`."""
    if not isinstance(end, Tensor):
        raise TypeError(f"lerp: end must be a Tensor, got {type(end).__name__} (input of shape "
                        f"{tuple(input.shape)}, {input.dtype})")
    diff = end - input
    if isinstance(weight, Tensor):
        return where(weight.abs() < 0.5, input + weight * diff, end - diff * (1 - weight))
    return input + weight * diff if abs(weight) < 0.5 else end - diff * (1 - weight)


@labelled("RsqrtBackward0")
def rsqrt(x):
    return 1.0 / _float(x).sqrt()


# ---------------- softmax family ----------------
def _softmax_dim(x, dim, opname):
    if dim is None:
        dim = 0 if x._data.ndim in (0, 1, 3) else 1
        warnings.warn(f"{opname}: implicit dimension choice is deprecated; pass dim= (using dim={dim})",
                      stacklevel=3)
    return _dim(dim, x._data.ndim, opname)


@labelled("SoftmaxBackward0")
def softmax(x, dim=None, dtype=None):
    x, back = _opmath(_float(x if dtype is None else x.astype(dtype)))
    d = _softmax_dim(x, dim, "softmax")
    shift = hosted(_max_keep, data(x), d) if x._data.size else 0.0
    e = (x - shift).exp()
    return _rounded(e / e.sum(d, keepdim=True), back)


@labelled("LogSoftmaxBackward0")
def log_softmax(x, dim=None, dtype=None):
    """z - log(sum(exp(z))) with z = x - max(x) (a constant shift): no cancellation against a large logsumexp."""
    x = _float(x if dtype is None else x.astype(dtype))
    d = _softmax_dim(x, dim, "log_softmax")
    dims = (d,) if x._data.ndim else ()
    z = x - _shift(x, dims)
    return z - _apply(red.sum_, (z.exp(),), (dims, True)).log()


# ---------------- padding and im2col: in im2col.py, re-exported here (F.pad, F.unfold, F.fold, the layers' windows)
from .im2col import pad, unfold, fold, windows  # noqa: E402,F401


for _n in ("sum", "mean", "var", "std", "amax", "amin", "argmax", "argmin", "max", "min", "prod", "logsumexp",
           "clamp", "square", "lerp", "rsqrt", "softmax", "log_softmax"):
    setattr(Tensor, _n, globals()[_n])
Tensor.clip = clamp
Tensor.where = lambda self, condition, other: where(condition, self, other)


# ---------------- vmap: how the host computations above map over a leading batch dimension ----------------
@batching_rule(_finite_max)
def _(args, batched):
    x, dims = args
    return _finite_max(x, shift_axes(dims, x.ndim - 1))


@batching_rule(_max_keep)
def _(args, batched):
    x, axis = args
    return _max_keep(x, shift_axes(axis, x.ndim - 1))


@batching_rule(getattr(np.squeeze, "__wrapped__", np.squeeze))  # max/min(dim)'s indices without the kept dim
def _(args, batched):
    x, axis = args
    if axis is None:  # every size-1 dim of a sample, never the batch
        axis = tuple(i for i, n in enumerate(x.shape[1:]) if n == 1)
    return np.squeeze(x, shift_axes(axis, x.ndim - 1))


@batching_rule(_arg_index)
def _(args, batched):
    fn, x, axis, keepdim = args
    if axis is None:  # over all of each sample's elements
        out = np.asarray(fn(x.reshape(x.shape[0], -1), axis=1), dtype=np.int64)
        return out.reshape(out.shape + (1,) * (x.ndim - 1)) if keepdim else out
    return _arg_index(fn, x, shift_axes(axis, x.ndim - 1), keepdim)


elementwise(_int_clip)
