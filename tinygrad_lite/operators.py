"""Tensor's operators (+ - * / ** @, comparisons, unary math methods) and their dtype rules: Python scalars and
arrays become constants with PyTorch's dtype rules, mixed dtypes are promoted, and same-dtype Tensors go straight to
the primitive. Installed on Tensor when tensor.py loads."""
import numbers

import numpy as np

from . import dtypes
from .autograd import recorder as tape
from .autograd.grad_mode import state
from .compile.hooks import argument, constant, data, elementwise, host, host_check
from .ops import elementwise as ew, linalg, registry, unary as un
from .tensor import Tensor, _as_array, _wrap

_apply = tape.apply

_SCALARS = {}


def _operand(x, like, opname):
    """Turn a Python scalar / array / Tensor into a Tensor, choosing the dtype by PyTorch's rules."""
    if isinstance(x, Tensor):
        return x
    if hasattr(x, "__tl_read__"):  # a value tl.compile read out of a tensor or, with dynamic=True, an argument
        arr = argument(x, _number_array, like._data.dtype, opname, typed=like._data.dtype.kind != "f")
        if arr is None:  # a read value: guarded, used as a number
            return _operand(x.__tl_read__(), like, opname)
        return Tensor._wrap(arr)
    if isinstance(x, (numbers.Number, np.generic)) and not isinstance(x, complex):
        dt = dtypes.scalar_dtype(x, like._data.dtype)
        key = (x.__class__, x, dt)
        t = _SCALARS.get(key) if x else None  # (0.0 == -0.0: zeros are not cached, so the sign survives)
        if t is None:  # constants are shared: read-only 0-d arrays, cached (bounded) to skip re-conversion
            if len(_SCALARS) > 4096:
                _SCALARS.clear()
            arr = _scalar_array(x, dt, opname)
            arr.flags.writeable = False
            t = _SCALARS[key] = Tensor._wrap(constant(arr))
        elif state.capture is not None:
            state.capture.constant(t._data)
        return t
    if isinstance(x, (list, tuple)):  # Python values: a constant
        return Tensor._wrap(constant(_as_array(x, None, opname)))
    if isinstance(x, np.ndarray):  # an array from outside: tl.compile refuses it unless it is an argument
        return Tensor._wrap(_as_array(x, None, opname))
    raise TypeError(f"{opname}: unsupported operand of type {type(x).__name__} (expected a Tensor, a number or an "
                    f"array)")


def _number_array(x, like_dtype, opname):
    """A number as the 0-d array a tensor of `like_dtype` takes it as (a replay of a dynamic argument)."""
    return _scalar_array(x, dtypes.scalar_dtype(x, like_dtype), opname)


def _scalar_array(x, dt, opname):
    """A number as a 0-d array of dtype `dt` (an int beyond the dtype's range wraps as in PyTorch)."""
    try:
        return np.asarray(x, dtype=dt)
    except OverflowError:
        return _wrapped_int(x, dt, opname)


def _wrapped_int(x, dt, opname):
    """A Python int outside the tensor's integer range wraps around as in PyTorch (int64 two's complement);
    beyond int64 (or a float dtype's range) it is an error."""
    if isinstance(x, numbers.Integral) and dt.kind in "iu" and -2 ** 63 <= x < 2 ** 63:
        return np.asarray(x, dtype=dtypes.int64).astype(dt)
    shown = str(x) if len(str(x)) < 30 else f"an integer of {int(x).bit_length()} bits"
    raise registry.OpError(f"{opname}: the number {shown} does not fit in the operand's dtype {dt} (nor in int64)"
                           f"{registry.user_site()}")


def _binary(prim, a, b):
    if a.__class__ is Tensor and b.__class__ is Tensor and a._data.dtype is b._data.dtype:
        return _apply(prim, (a, b))  # the common case: no conversion, no promotion
    if a.__class__ is not Tensor or b.__class__ is not Tensor:
        a, b = _tensors(a, b, prim.name)
    if a._data.dtype != b._data.dtype:
        a, b = _common(a, b)
    return _apply(prim, (a, b))


def _tensors(a, b, opname):
    """Both operands as Tensors (a number, list or array converted by the other's dtype, PyTorch's rules)."""
    if not isinstance(a, Tensor):
        a = _operand(a, b, opname)
    if not isinstance(b, Tensor):
        b = _operand(b, a, opname)
    return a, b


def _common(a, b):
    """Two Tensors in their common dtype by PyTorch's rule (dtypes.promote_arrays: a 0-d operand does not widen a
    dimensioned one of its category)."""
    da, db = a._data.dtype, b._data.dtype
    if da == db:
        return a, b
    dt = dtypes.promote_arrays(a._data, b._data)
    return (a if da == dt else a.astype(dt)), (b if db == dt else b.astype(dt))


def _true_div(a, b):
    a, b = _tensors(a, b, "div")
    if a._data.dtype.kind != "f" and b._data.dtype.kind != "f":  # integer true division gives float32
        a, b = a.astype(dtypes.default_float), b.astype(dtypes.default_float)
    return _binary(ew.div, a, b)


def _compare(ufunc, name):
    def op(self, other):
        if other is None:
            return NotImplemented if name in ("eq", "ne") else _bad_compare(name, other)
        o = _operand(other, self, name)
        # compared in PyTorch's common dtype, not NumPy's (int64 == float32 in float32 there, a 0-d float64 tensor
        # with a float16 one in float16)
        a, o = _common(self, o)
        try:  # (the ufunc itself: a replay writes it into a planned buffer)
            return _wrap(host(ufunc, data(a), data(o)))
        except ValueError as exc:
            raise registry.OpError(f"{name}: {exc}; inputs: {registry.describe_inputs([self._data, o._data])}"
                                   f"{registry.user_site()}") from None
    op.__name__ = f"__{name}__"
    return op


def _integer_ops(ufunc, name):
    """`a & b`, `a | b`, `a ^ b` (bool and integer tensors, as PyTorch's bitwise operators; not differentiable)."""
    def op(self, other, reflected=False):
        o = _operand(other, self, name)
        a, b = (o, self) if reflected else (self, o)
        _need_integers(name, a, b)
        a, b = _common(a, b)  # PyTorch's promotion (a 0-d int64 tensor does not widen uint8), not NumPy's
        return _wrap(host(_compare_arrays, ufunc, data(a), data(b)))
    return op


def _need_integers(name, *ts):
    for t in ts:
        if t._data.dtype.kind not in "biu":
            raise TypeError(f"{name}: expected bool or integer tensors, got {t._data.dtype} (shape "
                            f"{tuple(t._data.shape)}); PyTorch's bitwise operators are not defined for floats"
                            f"{registry.user_site()}")


def _invert(self):
    """`~t`: logical not of a bool tensor, bitwise not of an integer one."""
    _need_integers("invert (~)", self)
    return _wrap(host(np.invert, data(self)))


def _divisors(name, a, b):
    """The promoted operands of % and //; an integer divisor of 0 raises, as PyTorch's ZeroDivisionError."""
    a, b = _common(*_tensors(a, b, name))
    if a._data.dtype.kind == "b":  # (bool with an integer promotes to the integer above; bool with bool has no %)
        raise TypeError(f"{name}: not defined for two bool tensors (as PyTorch's); convert one with .long()"
                        f"{registry.user_site()}")
    if a._data.dtype.kind in "iu":
        host_check(_no_zero_divisor, data(b), name)
    return a, b


def _no_zero_divisor(b, name):
    if not b.all():
        raise registry.OpError(f"{name}: ZeroDivisionError (an integer divisor is 0)")


def remainder(a, b):
    """a % b with the divisor's sign (Python's and PyTorch's remainder); differentiable: d/da = 1, d/db =
    -floor(a / b)."""
    return _apply(ew.remainder, _divisors("remainder", a, b))


def floor_divide(a, b):
    """a // b rounded down (PyTorch's floor_divide); not differentiable (PyTorch defines no derivative)."""
    a, b = _divisors("floor_divide", a, b)
    return _wrap(host(np.floor_divide, data(a), data(b)))


def _logical(ufunc):
    def op(a, b):
        a, b = _tensors(a, b, ufunc.__name__)
        return _wrap(host(_compare_arrays, ufunc, data(a), data(b)))
    op.__name__ = ufunc.__name__
    op.__doc__ = f"{ufunc.__name__}(a, b): element-wise, nonzero is True; a bool tensor (not differentiable)."
    return op


logical_and, logical_or, logical_xor = (_logical(u) for u in (np.logical_and, np.logical_or, np.logical_xor))


def logical_not(a):
    """not a, element-wise (nonzero is True); a bool tensor."""
    return _wrap(host(np.logical_not, data(a)))


def _compare_arrays(ufunc, a, b):
    out = ufunc(a, b)
    return out if out.__class__ is np.ndarray else np.asarray(out)  # 0-d: NumPy gives a scalar


def _bad_compare(name, other):
    raise TypeError(f"{name}: cannot compare a Tensor with {type(other).__name__}")


def _binop(prim, reflected=False):
    """The operator method for a broadcasting primitive; same-dtype Tensors go straight to the primitive."""
    # Fast paths: same-dtype Tensors, and a Python float whose constant is already cached for this tensor's dtype
    # (the key _operand uses for a float with a floating tensor); everything else goes through _binary.
    if reflected:
        def op(a, b):
            if b.__class__ is float:
                t = _SCALARS.get((float, b, a._data.dtype)) if b else None
                if t is not None:
                    if state.capture is not None:  # (cached before the recording: a constant all the same)
                        state.capture.constant(t._data)
                    return _apply(prim, (t, a))
            return _binary(prim, b, a)
    else:
        def op(a, b):
            cls = b.__class__
            if cls is Tensor:
                if a._data.dtype is b._data.dtype:
                    return _apply(prim, (a, b))
            elif cls is float and b:
                t = _SCALARS.get((float, b, a._data.dtype))
                if t is not None:
                    if state.capture is not None:  # (as _operand: tl.compile knows it as a constant, not a live tensor)
                        state.capture.constant(t._data)
                    return _apply(prim, (a, t))
            return _binary(prim, a, b)
    op.__name__ = prim.name
    return op


def scaled(b, alpha):
    """`b * alpha` for PyTorch's `alpha` of add/sub (and add_/sub_); b itself for 1 (tl.compile's proxy of a number
    is an operand, never compared)."""
    return b if alpha.__class__ in (int, float) and alpha == 1 else b * alpha


def _with_alpha(op):
    """`a.add(b, alpha=k)` / `a.sub(b, alpha=k)`: a op (b * k), as PyTorch's `alpha`."""
    def method(a, b, *, alpha=1):
        return op(a, scaled(b, alpha))
    method.__name__ = op.__name__
    return method


def _install_operators():
    T = Tensor
    T.__add__ = _binop(ew.add)
    T.add = _with_alpha(T.__add__)
    T.__radd__ = _binop(ew.add, True)
    T.__sub__ = _binop(ew.sub)
    T.sub = _with_alpha(T.__sub__)
    T.__rsub__ = tape.labelled("RsubBackward1")(_binop(ew.sub, True))  # (`1 - x`: PyTorch's node for a number minus x)
    T.__mul__ = T.mul = _binop(ew.mul)
    T.__rmul__ = _binop(ew.mul, True)
    T.__truediv__ = T.div = T.divide = lambda a, b: _true_div(a, b)
    T.__rtruediv__ = lambda a, b: _true_div(b, a)
    T.__pow__ = T.pow = _pow
    T.__rpow__ = lambda a, b: _pow_mixed(b, a)
    T.__matmul__ = T.matmul = lambda a, b: matmul(a, b)
    T.__rmatmul__ = lambda a, b: matmul(b, a)
    T.__neg__ = T.neg = lambda a: _apply(ew.neg, (a,))
    T.__pos__ = lambda a: a
    T.__abs__ = T.abs = lambda a: _apply(un.abs_, (a,))
    T.maximum = _binop(ew.maximum)
    T.minimum = _binop(ew.minimum)
    for name, prim in (("exp", un.exp), ("log", un.log), ("log1p", un.log1p), ("sqrt", un.sqrt), ("sin", un.sin),
                       ("cos", un.cos), ("erf", un.erf), ("tanh", un.tanh), ("sigmoid", un.sigmoid)):
        setattr(T, name, _unary_method(prim))
    T.relu = _relu
    for name, uf in (("eq", np.equal), ("ne", np.not_equal), ("lt", np.less), ("le", np.less_equal),
                     ("gt", np.greater), ("ge", np.greater_equal)):
        op = _compare(uf, name)
        setattr(T, f"__{name}__", op)
        setattr(T, name, op)
    for name, uf in (("and", np.bitwise_and), ("or", np.bitwise_or), ("xor", np.bitwise_xor)):
        op = _integer_ops(uf, f"bitwise_{name}")
        setattr(T, f"__{name}__", op)
        setattr(T, f"__r{name}__", lambda a, b, op=op: op(a, b, reflected=True))
        setattr(T, f"bitwise_{name}", op)
    T.__invert__ = T.bitwise_not = _invert
    T.__mod__ = T.remainder = remainder
    T.__rmod__ = lambda a, b: remainder(b, a)
    T.__floordiv__ = T.floor_divide = floor_divide
    T.__rfloordiv__ = lambda a, b: floor_divide(b, a)
    T.logical_and, T.logical_or, T.logical_xor, T.logical_not = logical_and, logical_or, logical_xor, logical_not


def _pow(a, b):
    if b.__class__ is Tensor and a._data.dtype is b._data.dtype and a._data.dtype.kind != "b":
        return _apply(ew.pow_, (a, b))
    return _pow_mixed(a, b)


def _pow_mixed(a, b):
    """pow with conversion and promotion; bool ** bool is rejected as in PyTorch, except a bool tensor raised to a
    Python bool (a bool result)."""
    ta, tb = _tensors(a, b, "pow")
    if ta._data.dtype.kind == "b" and tb._data.dtype.kind == "b":
        if isinstance(a, Tensor) and isinstance(b, (bool, np.bool_)):
            return _wrap(host(_bool_power, ta._data, tb._data))
        raise TypeError(f"pow: not implemented for two bool operands (shapes {tuple(ta.shape)} and "
                        f"{tuple(tb.shape)}); convert one to an integer or floating dtype first")
    return _binary(ew.pow_, ta, tb)


def _relu(self):
    """max(x, 0); integer tensors keep their dtype (as PyTorch), bool tensors are rejected."""
    kind = self._data.dtype.kind
    if kind == "f":
        return _apply(un.relu, (self,))
    if kind == "b":
        raise TypeError(f"relu: bool tensors are not supported (shape {tuple(self.shape)}); convert with .int() or "
                        f".float() first")
    return _wrap(host(_int_relu, self._data))


def _int_relu(x):
    return np.asarray(np.maximum(x, 0))


def _bool_power(a, b):
    return np.asarray(np.power(a, b).astype(dtypes.bool_))


def _unary_method(prim):
    def method(self):
        if self._data.dtype.kind != "f":
            self = self.astype(dtypes.default_float)
        return _apply(prim, (self,))
    method.__name__ = prim.name
    return method


def matmul(a, b):
    """Matrix product with NumPy/PyTorch semantics for 1-D, 2-D and batched operands."""
    if not isinstance(a, Tensor) or not isinstance(b, Tensor):
        a, b = _tensors(a, b, "matmul")
    if a._data.ndim == 0 or b._data.ndim == 0:
        raise registry.OpError(f"matmul: both arguments must be at least 1-D, got shapes {tuple(a.shape)} and "
                               f"{tuple(b.shape)}{registry.user_site()}")
    a, b = _common(a, b)  # (both at least 1-D: the plain category rule)
    va, vb = a._data.ndim == 1, b._data.ndim == 1
    if va:
        a = a.reshape(1, -1)
    if vb:
        b = b.reshape(-1, 1)
    if a._data.shape[-1] != b._data.shape[-2]:
        raise registry.OpError(
            f"matmul: shapes {tuple(a.shape) if not va else (a.shape[1],)} and "
            f"{tuple(b.shape) if not vb else (b.shape[0],)} cannot be multiplied ({a.shape[-1]} != {b.shape[-2]}: "
            f"the last dim of the first must equal the {'first' if vb else 'second-to-last'} dim of the second)"
            f"{registry.user_site()}")
    out = _apply(linalg.matmul, (a, b))
    if va and vb:
        return tape.named(out.reshape(()), "DotBackward0", (a, b))
    if va:
        return out.reshape(out.shape[:-2] + out.shape[-1:])
    if vb:
        out = out.reshape(out.shape[:-1])
        return tape.named(out, "MvBackward0", (a, b)) if a._data.ndim == 2 else out
    return out


_install_operators()


for _fn in (_compare_arrays, _bool_power, _int_relu):  # vmap runs them on aligned batches
    elementwise(_fn)
