"""NumPy functions on Tensors: `np.exp(t)`, `np.sum(t, axis=0)`, `np.where(c, t, 0)` ... return Tensors recorded on
the tape, so NumPy-style code is differentiable (as in MyGrad and HIPS autograd).

- Ufuncs (`Tensor.__array_ufunc__`): the operators' own methods for the arithmetic and comparison ufuncs (so
  `ndarray + Tensor` means what `Tensor + ndarray` means), the Tensor functions for the others (UFUNCS), and the
  `reduce` method of add/multiply/maximum/minimum.
- Array functions (`Tensor.__array_function__`): FUNCTIONS maps each supported NumPy function to the library's
  equivalent, with NumPy's argument names and defaults (axis, keepdims, ddof, ...).
- Inspection functions whose result is not a differentiable quantity (`np.shape`, `np.allclose`, `np.argmax` ...,
  INSPECT) run on the data.
- Anything else, applied to a Tensor that requires grad, raises TypeError naming the function: its result would
  be an array cut off from the tape. On tensors that do not require grad it runs on the data (NumPy's result).
`np.asarray(t)` and `t.numpy()` return the data, as before.
"""
import numpy as np

from .tensor import Tensor

# ---------------- ufuncs ----------------
_OPERATORS = {  # ufunc -> (method of the left Tensor, reflected method of the right Tensor)
    np.add: ("__add__", "__radd__"), np.subtract: ("__sub__", "__rsub__"), np.multiply: ("__mul__", "__rmul__"),
    np.true_divide: ("__truediv__", "__rtruediv__"), np.power: ("__pow__", "__rpow__"),
    np.matmul: ("__matmul__", "__rmatmul__"), np.greater: ("__gt__", "__lt__"), np.less: ("__lt__", "__gt__"),
    np.greater_equal: ("__ge__", "__le__"), np.less_equal: ("__le__", "__ge__"), np.equal: ("__eq__", "__eq__"),
    np.not_equal: ("__ne__", "__ne__"), np.remainder: ("__mod__", "__rmod__"),
    np.floor_divide: ("__floordiv__", "__rfloordiv__"), np.bitwise_and: ("__and__", "__rand__"),
    np.bitwise_or: ("__or__", "__ror__"), np.bitwise_xor: ("__xor__", "__rxor__"),
}


def _tl(name):
    def call(*args):
        import tinygrad_lite as tl
        return getattr(tl, name)(*args)
    call.__name__ = name
    return call


UFUNCS = {np.invert: lambda t: ~t, np.fabs: _tl("abs"), np.logical_and: _tl("logical_and"), np.logical_or: _tl("logical_or"),
          np.logical_xor: _tl("logical_xor"), np.logical_not: _tl("logical_not"), np.negative: _tl("neg"), np.exp: _tl("exp"), np.log: _tl("log"), np.log1p: _tl("log1p"),
          np.sqrt: _tl("sqrt"), np.sin: _tl("sin"), np.cos: _tl("cos"), np.tanh: _tl("tanh"),
          np.absolute: _tl("abs"), np.maximum: _tl("maximum"), np.minimum: _tl("minimum"),
          np.square: _tl("square"), np.sign: _tl("sign"), np.isnan: _tl("isnan"), np.isinf: _tl("isinf"),
          np.isfinite: _tl("isfinite"), np.positive: lambda x: x, np.reciprocal: lambda x: 1.0 / x,
          np.expm1: lambda x: _tl("exp")(x) - 1.0, np.exp2: lambda x: 2.0 ** x,
          np.log2: lambda x: _tl("log")(x) / float(np.log(2.0)), np.log10: lambda x: _tl("log")(x) / float(np.log(10.0)),
          np.arctanh: lambda x: (_tl("log1p")(x) - _tl("log1p")(-x)) * 0.5}
_REDUCE = {np.add: "sum", np.multiply: "prod", np.maximum: "amax", np.minimum: "amin"}


def _requires_grad(values):
    return any(isinstance(v, Tensor) and v.requires_grad for v in _leaves(values))


def _leaves(values):
    for v in values:
        if isinstance(v, (list, tuple)):
            yield from _leaves(v)
        elif isinstance(v, dict):
            yield from _leaves(v.values())
        else:
            yield v


def _data(v):
    if isinstance(v, Tensor):
        return v._data
    if isinstance(v, (list, tuple)):
        return type(v)(_data(x) for x in v)
    if isinstance(v, dict):
        return {k: _data(x) for k, x in v.items()}
    return v


def _on_data(name, fn, args, kwargs):
    """fn on the arrays: refused when a Tensor that requires grad is involved (the result would leave the tape).
    With out=, NumPy's answer: the out operand itself (a Tensor written this way has its version bumped, so a
    backward that saved it refuses, as after an in-place operation)."""
    if _requires_grad(list(args) + list(kwargs.values())):
        raise TypeError(f"{name} has no tape equivalent in tinygrad_lite and an argument requires grad: its "
                        f"result would be cut off from the graph. Use the Tensor operations (see "
                        f"docs/func.md, 'NumPy functions'), or apply it to t.detach()")
    _unrecorded(name)
    out = fn(*_data(args), **_data(kwargs))
    given = kwargs.get("out")
    if given is not None:
        from .inplace import _bump
        given = given if isinstance(given, tuple) else (given,)
        for t in given:
            if isinstance(t, Tensor):
                _bump(t)
        return given[0] if len(given) == 1 else given
    return Tensor._wrap(out) if isinstance(out, np.ndarray) else out


def _into(name, ufunc, inputs, outs):
    """np.<ufunc>(..., out=tensors): the recorded result copied in with the in-place semantics of copy_ (version,
    graph, a leaf that requires grad refused), after NumPy's same_kind casting check; returns the out operand."""
    result = array_ufunc(None, ufunc, "__call__", *inputs)
    results = result if isinstance(result, tuple) else (result,)
    for t, r in zip(outs, results):
        if not np.can_cast(r.dtype, t.dtype, "same_kind"):
            raise TypeError(f"{name}: cannot cast the result from {r.dtype} to the out Tensor's {t.dtype} with "
                            f"casting rule 'same_kind' (as NumPy)")
        t.copy_(r)
    return outs[0] if len(outs) == 1 else outs


def array_ufunc(self, ufunc, method, *inputs, **kwargs):
    name = f"numpy.{ufunc.__name__}" + ("" if method == "__call__" else f".{method}")
    outs = kwargs.get("out")
    if outs is not None and method == "__call__" and len(kwargs) == 1 and all(isinstance(t, Tensor) for t in outs):
        return _into(name, ufunc, inputs, outs)
    if outs is not None or (kwargs and method == "__call__"):
        return _on_data(name, getattr(ufunc, method), inputs, kwargs)
    if method == "__call__":
        if ufunc in _OPERATORS and len(inputs) == 2:
            left, right = _OPERATORS[ufunc]
            a, b = inputs
            return getattr(a, left)(b) if isinstance(a, Tensor) else getattr(b, right)(a)
        if ufunc in UFUNCS:
            return UFUNCS[ufunc](*inputs)
    if method == "reduce" and ufunc in _REDUCE and len(inputs) == 1:
        axis = kwargs.pop("axis", 0)
        keepdims = kwargs.pop("keepdims", False)
        if not kwargs:
            x = inputs[0] if isinstance(inputs[0], Tensor) else Tensor(inputs[0])
            return getattr(x, _REDUCE[ufunc])(*_axis_args(axis, keepdims, x))
    return _on_data(name, getattr(ufunc, method), inputs, kwargs)


def _axis_args(axis, keepdims, x):
    if axis is None:
        axis = tuple(range(x.ndim))
    return (axis, keepdims)


# ---------------- array functions ----------------
def _tensor(x):
    return x if isinstance(x, Tensor) else Tensor(np.asarray(x))


def _or_data(func, rule):
    """`rule` for the arguments it takes; with out=, dtype= or another keyword it does not know (initial=,
    where=, order=...), NumPy's `func` on the data (refused, naming it, when an argument requires grad)."""
    def call(*args, out=None, dtype=None, **kw):
        try:
            if out is None and dtype is None:
                return rule(*args, **kw)
        except _Unsupported:
            pass
        extra = dict(kw, **{k: v for k, v in (("out", out), ("dtype", dtype)) if v is not None})
        return _on_data(f"numpy.{func.__name__}", func, args, extra)
    return call


class _Unsupported(TypeError):
    """An argument a rule does not implement (NumPy's function then runs on the data)."""


def _reduction(method):
    """np.<f>(a, axis=None, keepdims=False) as Tensor.<method>(dims, keepdim)."""
    def call(a, axis=None, keepdims=False, **kw):
        if kw:
            raise _Unsupported(kw)
        a = _tensor(a)
        if a.ndim == 0:
            return getattr(a, method)()
        return getattr(a, method)(tuple(range(a.ndim)) if axis is None else axis, keepdim=keepdims)
    return call


def _var(method):
    def call(a, axis=None, ddof=0, keepdims=False, **kw):
        if kw:
            raise _Unsupported(kw)
        a = _tensor(a)
        return getattr(a, method)(axis, correction=ddof, keepdim=keepdims)
    return call


def _along(a, axis):
    """(tensor, dim): NumPy's axis=None is the flattened array along its one dim."""
    a = _tensor(a)
    return (a.reshape(-1), 0) if axis is None else (a, axis)


def _cumsum(a, axis=None):
    t, d = _along(a, axis)
    return t.cumsum(d)


def _reshape(a, newshape=None, order="C", **kw):
    """np.reshape with order 'C' or 'F' (Fortran order: the reshape of the reversed axes, reversed back)."""
    shape = kw.pop("shape", newshape)
    if kw or order not in ("C", "F"):
        raise _Unsupported(kw)
    a = _tensor(a)
    if order == "C":
        return a.reshape(shape)
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    out = a.permute(*reversed(range(a.ndim))).reshape(tuple(reversed(shape)))
    return out.permute(*reversed(range(out.ndim)))


def _dot(a, b, out=None):
    a, b = _tensor(a), _tensor(b)
    if a.ndim > 2 or b.ndim > 2 or out is not None:
        raise TypeError("numpy.dot on Tensors: only 0-, 1- and 2-D operands (use np.matmul / @ for batches)")
    return a * b if a.ndim == 0 or b.ndim == 0 else a @ b


def _where(condition, x=None, y=None):
    import tinygrad_lite as tl
    if x is None and y is None:
        return _on_data("where", np.where, (condition,), {})
    cond = condition if isinstance(condition, Tensor) else Tensor(np.asarray(condition, dtype=bool))
    return tl.where(cond, x, y)


def _norm(x, ord=None, axis=None, keepdims=False):
    x = _tensor(x)
    if ord is not None and not (isinstance(axis, int) or x.ndim == 1):
        raise TypeError("numpy.linalg.norm on a Tensor: ord= is supported for vector norms only (a 1-D tensor or "
                        "an int axis)")
    return x.norm(2 if ord is None else ord, axis, keepdims)


def _transpose(a, axes=None):
    a = _tensor(a)
    return a.permute(*(tuple(reversed(range(a.ndim))) if axes is None else axes))


def _clip(a, a_min=None, a_max=None, out=None, **kw):
    if out is not None:
        raise TypeError("numpy.clip on a Tensor: out= is not supported")
    return _tensor(a).clamp(a_min if a_min is not None else kw.get("min"), a_max if a_max is not None else kw.get("max"))


def _cat(arrays, axis=0, out=None, dtype=None, casting="same_kind"):
    import tinygrad_lite as tl
    if out is not None or dtype is not None:
        raise TypeError("numpy.concatenate on Tensors: out= and dtype= are not supported")
    arrays = [_tensor(a) for a in arrays]
    return tl.cat([a.reshape(-1) for a in arrays], 0) if axis is None else tl.cat(arrays, axis)


def _stack(arrays, axis=0, out=None, dtype=None, casting="same_kind"):
    import tinygrad_lite as tl
    if out is not None or dtype is not None:
        raise TypeError("numpy.stack on Tensors: out= and dtype= are not supported")
    return tl.stack([_tensor(a) for a in arrays], axis)


def _squeeze(a, axis=None):
    a = _tensor(a)
    if axis is None:
        return a.reshape(tuple(s for s in a.shape if s != 1))
    return a.squeeze(axis)


def _expand_dims(a, axis):
    return _tensor(a).unsqueeze(axis)


def _flip(m, axis=None):
    m = _tensor(m)
    axes = tuple(range(m.ndim)) if axis is None else (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    from .shape import reversed_view  # (a view, as np.flip's; Tensor.flip copies, as torch.flip)
    return reversed_view(m, axes, "flip") if axes else m


def _split(ary, indices_or_sections, axis=0):
    """np.split: N equal sections (an error when they are not equal), or the split points listed."""
    ary = _tensor(ary)
    n = ary.shape[axis]
    if isinstance(indices_or_sections, (int, np.integer)):
        k = int(indices_or_sections)
        if k <= 0 or n % k:
            raise ValueError("array split does not result in an equal division")
        return list(ary.split(n // k, axis))
    points = [min(max(int(i) + (n if i < 0 else 0), 0), n) for i in indices_or_sections]
    bounds = list(zip([0] + points, points + [n]))
    return [ary[(slice(None),) * (axis % ary.ndim) + (slice(lo, max(lo, hi)),)] for lo, hi in bounds]


def _like(name):
    """np.zeros_like/ones_like(a, dtype=None, ...) and np.full_like(a, fill_value, dtype=None, ...) as tl's (constants:
    no gradient to lose); another order or a shape: NumPy on the data."""
    def call(a, *args, **kw):
        import tinygrad_lite as tl
        names = (("fill_value",) if name == "full_like" else ()) + ("dtype", "order", "subok", "shape")
        bound = dict(zip(names, args), **kw)
        if bound.get("order", "K") != "K" or bound.get("shape") is not None:
            return _on_data(f"numpy.{name}", getattr(np, name), (a,), bound)
        fill = (bound["fill_value"],) if name == "full_like" else ()
        return getattr(tl, name)(_tensor(a), *fill, dtype=bound.get("dtype"))
    return call


def _cumprod(a, axis=None):
    t, d = _along(a, axis)
    return t.cumprod(d)


def _sort(a, axis=-1, kind=None, order=None, **kw):
    if order is not None or kw:
        raise _Unsupported(order)
    t, d = _along(a, axis)
    return t.sort(d)[0]


FUNCTIONS = {
    np.sum: _reduction("sum"), np.mean: _reduction("mean"), np.prod: _reduction("prod"),
    np.max: _reduction("amax"), np.min: _reduction("amin"), np.amax: _reduction("amax"), np.amin: _reduction("amin"),
    np.var: _var("var"), np.std: _var("std"), np.cumsum: _cumsum, np.dot: _dot, np.where: _where,
    np.reshape: _reshape,
    np.transpose: _transpose, np.clip: _clip, np.concatenate: _cat, np.stack: _stack, np.squeeze: _squeeze,
    np.expand_dims: _expand_dims, np.ravel: lambda a, order="C": _reshape(a, -1, order),
    np.swapaxes: lambda a, axis1, axis2: _tensor(a).transpose(axis1, axis2),
    np.broadcast_to: lambda array, shape, subok=False: _tensor(array).expand(*shape),
    np.outer: lambda a, b, out=None: _tensor(a).reshape(-1, 1) * _tensor(b).reshape(1, -1),
    np.linalg.norm: _norm, np.flip: _flip, np.split: _split, np.copy: lambda a, order="K", subok=False: _tensor(
        a).clone(), np.zeros_like: _like("zeros_like"), np.ones_like: _like("ones_like"),
    np.full_like: _like("full_like"),
    np.cumprod: _cumprod, np.sort: _sort,
}
for _f in (np.sum, np.mean, np.prod, np.max, np.min, np.amax, np.amin, np.var, np.std, np.cumsum, np.reshape,
           np.ravel, np.cumprod, np.sort):
    FUNCTIONS[_f] = _or_data(_f, FUNCTIONS[_f])
INSPECT = {f.__name__ for f in (np.shape, np.ndim, np.size, np.allclose, np.isclose, np.array_equal, np.argmax,
                                np.argmin, np.any, np.all, np.count_nonzero, np.nonzero, np.argsort,
                                np.result_type, np.may_share_memory, np.shares_memory, np.array_equiv)}

_METADATA = {"shape", "ndim", "size", "result_type", "may_share_memory", "shares_memory"}  # (no values read)


def _unrecorded(name):
    """NumPy's own function on tensor data, not a recorded operation: under tl.compile the call runs eagerly (a
    replay would return the recorded `np.argmax(out)`, or skip a write with out= or `np.add.at`)."""
    from .compile.hooks import refuse
    refuse(f"{name} on tensor data (NumPy's own function, not a recorded operation)")


def array_function(self, func, types, args, kwargs):
    rule = FUNCTIONS.get(func)
    if rule is not None:
        return rule(*args, **kwargs)
    if func.__name__ in INSPECT:
        if func.__name__ not in _METADATA:
            _unrecorded(f"numpy.{func.__name__}")
        return func(*_data(args), **_data(kwargs))
    return _on_data(f"{getattr(func, '__module__', None) or 'numpy'}.{func.__name__}".replace("numpy.numpy", "numpy"),
                    func, args, kwargs)


Tensor.__array_ufunc__ = array_ufunc
Tensor.__array_function__ = array_function
