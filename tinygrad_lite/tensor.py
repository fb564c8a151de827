"""Tensor: a NumPy array plus its place on the gradient tape. Operators call primitives through `tape.apply`;
composite operations (mean, softmax, ...) live in functional.py and are attached as methods there."""
import numbers

import numpy as np

from . import dtypes
from .autograd import recorder as tape, engine
from .autograd.grad_mode import state
from .ops import elementwise as ew, reduce as red, movement as mv, linalg, registry

_apply = tape.apply


def _as_array(data, dtype, where="tensor"):
    """Convert user data with PyTorch's rules: Python floats -> float32, ints -> int64, bools -> bool;
    NumPy arrays keep their dtype."""
    if isinstance(data, Tensor):
        arr = data.data
    elif isinstance(data, np.ndarray):
        arr = data
    else:
        try:
            arr = np.asarray(data)
        except (ValueError, TypeError) as exc:
            raise TypeError(f"{where}: cannot convert {type(data).__name__} to a tensor: {exc}") from None
        if dtype is None and not isinstance(data, np.generic):
            if arr.dtype.kind == "f":
                arr = arr.astype(dtypes.default_float)
            elif arr.dtype.kind in "iu":
                arr = arr.astype(dtypes.int64)
    if dtype is not None:
        dt = dtypes.to_dtype(dtype, where)
        if arr.dtype != dt:
            arr = arr.astype(dt)
    elif arr.dtype.kind not in "biuf":
        raise TypeError(f"{where}: unsupported data of dtype {arr.dtype} (expected bool, integer or floating "
                        f"values; complex, string and object arrays are not supported)")
    return arr


class Tensor:
    """An n-dimensional array that records the operations applied to it, for reverse-mode differentiation."""
    __slots__ = ("data", "grad", "requires_grad", "_entry", "_version", "_hooks", "__weakref__")
    __array_ufunc__ = None  # make `ndarray op Tensor` defer to our reflected operators

    def __init__(self, data, dtype=None, requires_grad=False):
        arr = _as_array(data, dtype)
        self.data = arr.copy() if isinstance(data, Tensor) else arr
        self.grad = None
        self.requires_grad = False
        self._entry = None
        self._version = 0
        self._hooks = None
        if requires_grad:
            self.requires_grad_(True)

    @staticmethod
    def _wrap(arr):
        """Fast internal constructor around an ndarray (no conversion, no grad)."""
        return _wrap(arr)

    # ---------------- attributes ----------------
    @property
    def shape(self):
        return self.data.shape

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def is_leaf(self):
        return self._entry is None

    @property
    def grad_fn(self):
        return self._entry

    @property
    def device(self):
        return "cpu"

    def dim(self):
        return self.data.ndim

    def size(self, dim=None):
        return self.data.shape if dim is None else self.data.shape[_dim(dim, self.data.ndim, "size")]

    def numel(self):
        return self.data.size

    def numpy(self):
        return self.data

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item: only a one-element tensor can be converted to a Python scalar, got shape "
                             f"{tuple(self.shape)}")
        return self.data.item()

    def tolist(self):
        return self.data.tolist()

    def __array__(self, dtype=None, copy=None):
        return self.data if dtype is None else self.data.astype(dtype)

    def __len__(self):
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.data.shape[0]

    def __iter__(self):
        if self.data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self.data.shape[0]))

    def __bool__(self):
        if self.data.size != 1:
            raise RuntimeError(f"bool: the truth value of a tensor with {self.data.size} elements is ambiguous")
        return bool(self.data)

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __index__(self):
        if self.data.dtype.kind not in "iu":
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return int(self.item())

    __hash__ = object.__hash__

    def __repr__(self):
        body = np.array2string(self.data, separator=", ", prefix="tensor(")
        extra = ""
        if self.data.dtype not in (dtypes.float32, dtypes.int64, dtypes.bool_):
            extra += f", dtype={self.data.dtype}"
        if self._entry is not None:
            extra += f", grad_fn=<{self._entry.name}>"
        elif self.requires_grad:
            extra += ", requires_grad=True"
        return f"tensor({body}{extra})"

    # ---------------- autograd ----------------
    def backward(self, gradient=None, retain_graph=None, create_graph=False):
        """Accumulate d(self)/d(leaf) into every leaf's `.grad` (see torch.Tensor.backward)."""
        engine.backward(self, gradient, retain_graph, create_graph)

    def detach(self):
        return Tensor._wrap(self.data)

    def requires_grad_(self, requires_grad=True):
        if requires_grad and self.data.dtype.kind != "f":
            raise RuntimeError(f"requires_grad_: only tensors of floating point dtype can require gradients, got "
                               f"dtype {self.data.dtype} (shape {tuple(self.shape)})")
        if not requires_grad and self._entry is not None:
            raise RuntimeError("requires_grad_(False): cannot change requires_grad of a non-leaf tensor; use "
                               ".detach()")
        self.requires_grad = bool(requires_grad)
        return self

    def register_hook(self, hook):
        """Call `hook(grad)` when this tensor's gradient is computed; a returned tensor replaces the gradient."""
        if not self.requires_grad:
            raise RuntimeError("register_hook: cannot register a hook on a tensor that does not require grad")
        if self._entry is not None:
            if self._entry.hooks is None:
                self._entry.hooks = []
            hooks = self._entry.hooks
        else:
            if self._hooks is None:
                self._hooks = []
            hooks = self._hooks
        hooks.append(hook)
        return _HookHandle(hooks, hook)

    # ---------------- dtype conversion ----------------
    def astype(self, dtype):
        dt = dtypes.to_dtype(dtype, "astype")
        if dt == self.data.dtype:
            return self
        if dt.kind == "f" and self.data.dtype.kind == "f":
            return _apply(ew.cast, (self,), (dt,))
        return Tensor._wrap(self.data.astype(dt))

    def to(self, *args, dtype=None, **kwargs):
        for a in args:
            if isinstance(a, str) and a.split(":")[0] == "cpu":
                continue
            dtype = a
        return self if dtype is None else self.astype(dtype)

    def float(self):
        return self.astype(dtypes.float32)

    def double(self):
        return self.astype(dtypes.float64)

    def half(self):
        return self.astype(dtypes.float16)

    def int(self):
        return self.astype(dtypes.int32)

    def long(self):
        return self.astype(dtypes.int64)

    def bool(self):
        return self.astype(dtypes.bool_)

    def clone(self):
        return _apply(ew.cast, (self,), (self.data.dtype,)) if self.requires_grad else Tensor._wrap(self.data.copy())

    def contiguous(self):
        return self


class _HookHandle:
    def __init__(self, hooks, hook):
        self._hooks, self._hook = hooks, hook

    def remove(self):
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)


def _dim(d, ndim, opname):
    """Normalise one dimension index, with an error naming the operation."""
    if not isinstance(d, numbers.Integral):
        raise TypeError(f"{opname}: dim must be an int, got {type(d).__name__}")
    n = max(ndim, 1)
    if not -n <= d < n:
        raise IndexError(f"{opname}: dim {d} is out of range for a {ndim}-D tensor (expected {-n}..{n - 1})")
    return int(d) % n


def _dims(dim, ndim, opname):
    """None -> None; int or sequence -> sorted tuple of non-negative dims (() for a 0-d tensor)."""
    if dim is None:
        return None
    if isinstance(dim, numbers.Integral):
        dim = (dim,)
    out = tuple(sorted({_dim(d, ndim, opname) for d in dim}))
    return out if ndim else ()


_SCALARS = {}


def _operand(x, like, opname):
    """Turn a Python scalar / array / Tensor into a Tensor, choosing the dtype by PyTorch's rules."""
    if isinstance(x, Tensor):
        return x
    if isinstance(x, (numbers.Number, np.generic)) and not isinstance(x, complex):
        dt = dtypes.scalar_dtype(x, like.data.dtype)
        key = (x.__class__, x, dt)
        t = _SCALARS.get(key) if x else None  # (0.0 == -0.0: zeros are not cached, so the sign survives)
        if t is None:  # constants are shared: read-only 0-d arrays, cached (bounded) to skip re-conversion
            if len(_SCALARS) > 4096:
                _SCALARS.clear()
            arr = np.asarray(x, dtype=dt)
            arr.flags.writeable = False
            t = _SCALARS[key] = Tensor._wrap(arr)
        return t
    if isinstance(x, np.ndarray):
        return Tensor._wrap(_as_array(x, None, opname))
    if isinstance(x, (list, tuple)):
        return Tensor._wrap(_as_array(x, None, opname))
    raise TypeError(f"{opname}: unsupported operand of type {type(x).__name__} (expected a Tensor, a number or an "
                    f"array)")


def _binary(prim, a, b):
    if a.__class__ is Tensor and b.__class__ is Tensor and a.data.dtype is b.data.dtype:
        return _apply(prim, (a, b))  # the common case: no conversion, no promotion
    if a.__class__ is not Tensor or b.__class__ is not Tensor:
        if not isinstance(a, Tensor):
            a = _operand(a, b, prim.name)
        if not isinstance(b, Tensor):
            b = _operand(b, a, prim.name)
    da, db = a.data.dtype, b.data.dtype
    if da != db:
        dt = dtypes.promote(da, db)
        if da != dt:
            a = a.astype(dt)
        if db != dt:
            b = b.astype(dt)
    return _apply(prim, (a, b))


def _true_div(a, b):
    if not isinstance(a, Tensor):
        a = _operand(a, b, "div")
    if not isinstance(b, Tensor):
        b = _operand(b, a, "div")
    if a.data.dtype.kind != "f" and b.data.dtype.kind != "f":  # integer true division gives float32
        a, b = a.astype(dtypes.default_float), b.astype(dtypes.default_float)
    return _binary(ew.div, a, b)


def _compare(ufunc, name):
    def op(self, other):
        if other is None:
            return NotImplemented if name in ("eq", "ne") else _bad_compare(name, other)
        o = _operand(other, self, name)
        try:
            return Tensor._wrap(ufunc(self.data, o.data))
        except ValueError as exc:
            raise registry.OpError(f"{name}: {exc}; inputs: {registry.describe_inputs([self.data, o.data])}"
                                   f"{registry.user_site()}") from None
    op.__name__ = f"__{name}__"
    return op


def _bad_compare(name, other):
    raise TypeError(f"{name}: cannot compare a Tensor with {type(other).__name__}")


def _binop(prim, reflected=False):
    """The operator method for a broadcasting primitive; same-dtype Tensors go straight to the primitive."""
    if reflected:
        def op(a, b):
            return _binary(prim, b, a)
    else:
        def op(a, b):
            if b.__class__ is Tensor and a.data.dtype is b.data.dtype:
                return _apply(prim, (a, b))
            return _binary(prim, a, b)
    op.__name__ = prim.name
    return op


def _install_operators():
    T = Tensor
    T.__add__ = T.add = _binop(ew.add)
    T.__radd__ = _binop(ew.add, True)
    T.__sub__ = T.sub = _binop(ew.sub)
    T.__rsub__ = _binop(ew.sub, True)
    T.__mul__ = T.mul = _binop(ew.mul)
    T.__rmul__ = _binop(ew.mul, True)
    T.__truediv__ = T.div = T.divide = lambda a, b: _true_div(a, b)
    T.__rtruediv__ = lambda a, b: _true_div(b, a)
    T.__pow__ = T.pow = _binop(ew.pow_)
    T.__rpow__ = _binop(ew.pow_, True)
    T.__matmul__ = T.matmul = lambda a, b: matmul(a, b)
    T.__rmatmul__ = lambda a, b: matmul(b, a)
    T.__neg__ = T.neg = lambda a: _apply(ew.neg, (a,))
    T.__pos__ = lambda a: a
    T.__abs__ = T.abs = lambda a: _apply(ew.abs_, (a,))
    T.maximum = _binop(ew.maximum)
    T.minimum = _binop(ew.minimum)
    for name, prim in (("exp", ew.exp), ("log", ew.log), ("log1p", ew.log1p), ("sqrt", ew.sqrt), ("sin", ew.sin),
                       ("cos", ew.cos), ("erf", ew.erf), ("tanh", ew.tanh), ("sigmoid", ew.sigmoid), ("relu", ew.relu)):
        setattr(T, name, _unary_method(prim))
    for name, uf in (("eq", np.equal), ("ne", np.not_equal), ("lt", np.less), ("le", np.less_equal),
                     ("gt", np.greater), ("ge", np.greater_equal)):
        op = _compare(uf, name)
        setattr(T, f"__{name}__", op)
        setattr(T, name, op)


def _unary_method(prim):
    def method(self):
        if self.data.dtype.kind != "f":
            self = self.astype(dtypes.default_float)
        return _apply(prim, (self,))
    method.__name__ = prim.name
    return method


def matmul(a, b):
    """Matrix product with NumPy/PyTorch semantics for 1-D, 2-D and batched operands."""
    if not isinstance(a, Tensor) or not isinstance(b, Tensor):
        a, b = (a if isinstance(a, Tensor) else _operand(a, b, "matmul")), (
            b if isinstance(b, Tensor) else _operand(b, a, "matmul"))
    if a.data.ndim == 0 or b.data.ndim == 0:
        raise registry.OpError(f"matmul: both arguments must be at least 1-D, got shapes {tuple(a.shape)} and "
                               f"{tuple(b.shape)}{registry.user_site()}")
    if a.data.dtype != b.data.dtype:
        dt = dtypes.promote(a.data.dtype, b.data.dtype)
        a, b = a.astype(dt), b.astype(dt)
    va, vb = a.data.ndim == 1, b.data.ndim == 1
    if va:
        a = a.reshape(1, -1)
    if vb:
        b = b.reshape(-1, 1)
    if a.data.shape[-1] != b.data.shape[-2]:
        raise registry.OpError(
            f"matmul: shapes {tuple(a.shape) if not va else (a.shape[1],)} and "
            f"{tuple(b.shape) if not vb else (b.shape[0],)} cannot be multiplied ({a.shape[-1]} != {b.shape[-2]}: "
            f"the last dim of the first must equal the {'first' if vb else 'second-to-last'} dim of the second)"
            f"{registry.user_site()}")
    out = _apply(linalg.matmul, (a, b))
    if va and vb:
        return out.reshape(())
    if va:
        return out.reshape(out.shape[:-2] + out.shape[-1:])
    if vb:
        return out.reshape(out.shape[:-1])
    return out


_new = object.__new__


def _wrap(arr):
    t = _new(Tensor)
    t.data = arr
    t.grad = None
    t.requires_grad = False
    t._entry = None
    t._version = 0
    t._hooks = None
    return t


Tensor._wrap = staticmethod(_wrap)
_install_operators()
tape.Tensor = Tensor
tape._wrap = _wrap
