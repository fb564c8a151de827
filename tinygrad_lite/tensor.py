"""Tensor: a NumPy array plus its place on the gradient tape. Operators (operators.py) call primitives through
`tape.apply`; composite operations (mean, softmax, ...) live in functional.py and are attached as methods there."""
import numbers
import sys

import numpy as np

from . import dtypes, _printing
from .autograd import recorder as tape, engine
from .autograd.node import node_of
from .ops import registry
from . import devices as _device
from .autograd.grad_mode import state
from .compile.hooks import host as _host
from ._size import size_of as _size_of

_apply = tape.apply


def _as_array(data, dtype, where="tensor"):
    """Convert user data with PyTorch's rules: Python floats -> float32, ints -> int64, bools -> bool;
    NumPy arrays keep their dtype. Strings, complex numbers and objects are rejected with a TypeError."""
    if isinstance(data, Tensor):
        arr = data._data
    elif isinstance(data, np.ndarray):
        arr = data
    else:
        try:
            arr = np.asarray(data)
            if arr.dtype.kind == "O" and dtype is not None:  # e.g. a Python int beyond int64 for a float dtype
                arr = np.asarray(data, dtype=dtypes.to_dtype(dtype, where))
        except (ValueError, TypeError, OverflowError) as exc:
            raise TypeError(f"{where}: cannot convert {type(data).__name__} to a tensor: {exc}") from None
        own = _sequence_dtype(data) if dtype is None and data.__class__ in (list, tuple) else None
        if own is not None:
            arr = arr.astype(own, copy=False)
        elif dtype is None and not isinstance(data, np.generic):
            if arr.dtype.kind == "f":
                arr = arr.astype(dtypes.default_float)
            elif arr.dtype.kind in "iu":
                arr = arr.astype(dtypes.int64)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{where}: unsupported data of dtype {arr.dtype} (expected bool, integer or floating "
                        f"values; complex, string and object arrays are not supported)")
    if dtype is not None:
        dt = dtypes.to_dtype(dtype, where)
        if arr.dtype != dt:
            arr = arr.astype(dt)
    return arr


_PYTHON_LEAVES = (bool, int, float)


def _sequence_dtype(seq):
    """PyTorch's dtype for a nested list or tuple holding NumPy scalars or arrays or Tensors among its numbers: the
    promotion (promoteTypes, no 0-d rule) of its leaves' dtypes, Python bools counting as bool, ints as int64 and
    floats as the default float, the others as their own dtype (`[np.float64(1.5), 2.0]` and `[t64, t64]` are
    float64, `[np.int32(1)]` is int32, `[t16, 1]` float16; NumPy's promotion followed by the Python-number rule made
    them float32 and int64). None when every leaf is a Python number (the caller's rule is then PyTorch's)."""
    kinds, stack = set(), [seq]
    while stack:
        items = stack.pop()
        for cls in set(map(type, items)):
            if cls in (list, tuple):
                stack.extend(v for v in items if v.__class__ is cls)
            elif cls in _PYTHON_LEAVES:
                kinds.add(cls)
            else:
                for v in items:
                    if v.__class__ is cls:
                        dt = v._data.dtype if isinstance(v, Tensor) else getattr(v, "dtype", None)
                        if not isinstance(dt, np.dtype) or dt.kind not in "biuf":
                            return None  # another kind of leaf: NumPy's conversion decides (or rejects it)
                        kinds.add(dt)
    if not any(isinstance(k, np.dtype) for k in kinds):
        return None
    py = {bool: dtypes.bool_, int: dtypes.int64, float: dtypes.default_float}
    out = None
    for k in kinds:
        dt = py[k] if k in py else k
        out = dt if out is None else dtypes.promote(out, dt)
    return out


class Tensor:
    """An n-dimensional array that records the operations applied to it, for reverse-mode differentiation."""
    __slots__ = ("_data", "_grad", "requires_grad", "_entry", "_version", "_hooks", "_fw", "_detached_from",
                 "_view_base", "_view_parent", "_view_no_grad", "__weakref__")
    # _detached_from: set only by detach() (read with getattr: no other tensor pays for it), the tensor whose memory
    # this one shares, so an in-place change through it counts as a change of that tensor (PyTorch's shared version
    # counter: a graph that saved the original refuses to backprop through the changed values)
    # _view_base: set only on a view made by an operation (x[0], x.view(-1), x.t()), the tensor it views (the first of
    # a chain of views; the view it was made from, when that is a view too, is in _view_parent, a weak reference so
    # that a loop of views, `x = x.reshape(2, 5).reshape(10)`, keeps no chain alive): an in-place change of the view
    # inside the graph is written into that tensor too, with its history (inplace.py; PyTorch's view + CopySlices);
    # _view_no_grad: set on such a view made under no_grad (or of one): an in-place change of it inside the graph
    # raises, as PyTorch's (its CreationMeta.NO_GRAD_MODE)
    # _fw: forward-mode tangents {level: Tensor}, set only on tensors made while a dual level is open (unset
    # otherwise: read it with getattr(t, "_fw", None))
    __array_ufunc__ = None  # replaced by numpy_api.array_ufunc: NumPy functions on Tensors are recorded

    def __init__(self, data, dtype=None, requires_grad=False):
        arr = _as_array(data, dtype)
        if arr is data or not arr.flags.owndata or (isinstance(data, Tensor) and arr is data._data):
            # data of its own, as torch.tensor: in-place ops never reach the source (an array, a tensor, a buffer such
            # as a memoryview or a torch tensor that np.asarray only views); its memory order is kept, as torch's is
            arr = _host(np.copy, arr)
        self._adopt(arr, requires_grad)

    def _adopt(self, arr, requires_grad=False):
        """Set up this tensor around `arr` itself (no copy): the end of __init__, and Parameter's (which shares)."""
        self._data = arr
        if _creation_hook is not None:
            _creation_hook(self)
        self._grad = None
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
    def data(self):
        """A Tensor sharing this tensor's storage that does not require grad (as PyTorch's `.data`): in-place changes
        through it (`p.data.add_(...)`) change this tensor and are not tracked by autograd."""
        if state.capture is not None:
            state.capture.shared(self)
        return _wrap(self._data)

    @data.setter
    def data(self, value):
        """`t.data = other` makes `t` use `other`'s values (a Tensor's storage is shared; an array is used as is)."""
        if isinstance(value, Tensor):
            arr = value._data
        elif isinstance(value, np.ndarray):
            arr = value
        else:
            raise TypeError(f"data: can only assign a Tensor (or a NumPy array) to .data, got {type(value).__name__}")
        if self.requires_grad and arr.dtype.kind != "f":
            raise TypeError(f"data: cannot assign data of dtype {arr.dtype} to a tensor that requires grad "
                            f"(dtype {self._data.dtype}); only floating point tensors can require gradients")
        cap = state.capture
        if cap is not None and not cap.suspended and id(self) not in cap.created:
            # a tensor from before the call (a parameter): a replay assigns that call's array to it too (a tensor
            # made in the call needs nothing: operations find its new array by the array)
            from .compile.effects import set_data
            cap.host_call(set_data, (cap.obj(self), arr), "assigning .data")
        self._data = arr

    @property
    def grad(self):
        if state.capture is not None:
            state.capture.observe_grad(self)
            state.capture.grad_read(self)
        return self._grad

    @grad.setter
    def grad(self, value):
        cap = state.capture
        if cap is not None:
            cap.observe_grad(self)
        if value is not None:
            if not isinstance(value, Tensor):
                raise TypeError(f"assigned grad expected to be a Tensor or None but got grad of type "
                                f"{type(value).__name__} (tensor of shape {tuple(self._data.shape)}, "
                                f"{self._data.dtype}){registry.user_site()}")
            if value._data.shape != self._data.shape:
                raise RuntimeError(f"assigned grad has data of a different size: grad shape "
                                   f"{tuple(value._data.shape)}, tensor shape {tuple(self._data.shape)}"
                                   f"{registry.user_site()}")
            if value._data.dtype != self._data.dtype:
                raise RuntimeError(f"assigned grad has data of a different type: grad dtype {value._data.dtype}, "
                                   f"tensor dtype {self._data.dtype}{registry.user_site()}")
        if cap is not None and not cap.suspended:
            from .compile.effects import set_grad
            cap.host_call(set_grad, (cap.obj(self), None if value is None else value._data), "setting .grad")
        self._grad = value

    @grad.deleter
    def grad(self):  # `del p.grad`, as PyTorch: the gradient set to None (through the setter: tl.compile records it)
        self.grad = None

    @property
    def shape(self):
        return _size_of(self._data.shape)

    @property
    def ndim(self):
        return self._data.ndim

    @property
    def dtype(self):
        return self._data.dtype

    @property
    def is_leaf(self):
        return self._entry is None

    @property
    def grad_fn(self):
        """The backward node of the operation that made this tensor (None for a leaf), as PyTorch's: `name()`,
        `next_functions`; `.entry` is its tape entry."""
        return None if self._entry is None else node_of(self._entry)

    @property
    def device(self):
        return _device.CPU

    @property
    def is_cuda(self):
        return False

    def cpu(self):
        return self

    def cuda(self, device=None, non_blocking=False):
        _device.check(device if device is not None else "cuda", "Tensor.cuda")

    def dim(self):
        return self._data.ndim

    def size(self, dim=None):
        return _size_of(self._data.shape) if dim is None else self._data.shape[_dim(dim, self._data.ndim, "size")]

    def numel(self):
        return self._data.size

    def numpy(self):
        if state.capture is not None:
            _escapes(self, "numpy", self._data)
        return self._data

    def item(self):
        if self._data.size != 1:
            raise ValueError(f"item: only a one-element tensor can be converted to a Python scalar, got shape "
                             f"{tuple(self.shape)}")
        if state.capture is not None:
            return _read(self, "item")
        return self._data.item()

    def tolist(self):
        out = self._data.tolist()
        if state.capture is not None:
            _escapes(self, "tolist", out)
        return out

    def __array__(self, dtype=None, copy=None):
        if state.capture is not None:
            _escapes(self, "__array__")
        return self._data if dtype is None else self._data.astype(dtype)

    def __len__(self):
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._data.shape[0]

    def __iter__(self):
        if self._data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self._data.shape[0]))

    def __bool__(self):
        if self._data.size != 1:
            raise RuntimeError(f"bool: the truth value of a tensor with {self._data.size} elements is ambiguous")
        if state.capture is not None:
            return _read(self, "bool")
        return bool(self._data)

    def __float__(self):
        if state.capture is not None and self._data.size == 1:
            return _read_number(self, "float")  # float() must return a float: the value is guarded
        return float(self.item())

    def __int__(self):
        if state.capture is not None and self._data.size == 1:
            return _read_number(self, "int")
        return int(self.item())

    def __index__(self):
        if self._data.dtype.kind not in "iu":
            raise TypeError("only integer tensors of a single element can be converted to an index")
        if state.capture is not None and self._data.size == 1:
            return _read_number(self, "int")
        return int(self.item())

    __hash__ = object.__hash__

    def _print_suffixes(self):
        if self._entry is not None:
            return [f"grad_fn=<{node_of(self._entry).name()}>"]
        return ["requires_grad=True"] if self.requires_grad else []

    def __reduce_ex__(self, proto):
        if self._entry is None:
            return super().__reduce_ex__(proto)
        # a non-leaf pickles (and deep-copies) as PyTorch pickles it: its values as a leaf with its requires_grad,
        # never its graph (whose primitives and saved values are not picklable)
        return _rebuilt_leaf, (self._data, self.requires_grad)

    def __repr__(self):
        if state.capture is not None:
            _escapes(self, "repr")
        return _printing.tensor_repr(self._data, suffixes=self._print_suffixes())

    def __format__(self, spec):
        if state.capture is not None:
            _escapes(self, "format")
        return _printing.format_scalar(self._data, spec, suffixes=self._print_suffixes())

    # ---------------- autograd ----------------
    def backward(self, gradient=None, retain_graph=None, create_graph=False):
        """Accumulate d(self)/d(leaf) into every leaf's `.grad` (see torch.Tensor.backward)."""
        if gradient is not None and not isinstance(gradient, Tensor):
            if not isinstance(gradient, (numbers.Real, np.ndarray, list, tuple)):
                raise TypeError(f"backward: gradient must be a Tensor, an array or None, got "
                                f"{type(gradient).__name__}")
            gradient = _wrap(_as_array(gradient, self._data.dtype, "backward"))
        engine.backward(self, gradient, retain_graph, create_graph)

    def detach(self):
        if state.capture is not None:
            state.capture.shared(self)
        out = Tensor._wrap(self._data)
        base = getattr(self, "_detached_from", None)
        out._detached_from = self if base is None else base
        return out

    def requires_grad_(self, requires_grad=True):
        if requires_grad.__class__ is not bool and not isinstance(requires_grad, np.bool_):
            raise TypeError(f"requires_grad_: requires_grad must be a bool, got {type(requires_grad).__name__}")
        if requires_grad and self._data.dtype.kind != "f":
            raise RuntimeError(f"requires_grad_: only tensors of floating point dtype can require gradients, got "
                               f"dtype {self._data.dtype} (shape {tuple(self.shape)})")
        if not requires_grad and self._entry is not None:
            raise RuntimeError("requires_grad_(False): cannot change requires_grad of a non-leaf tensor; use "
                               ".detach()")
        self.requires_grad = bool(requires_grad)
        return self

    # ---------------- dtype conversion (astype, to, clone, contiguous: conversion.py) ----------------
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

    # (gradient hooks: register_hook, retain_grad, retains_grad: grad_hooks.py)


def _rebuilt_leaf(arr, requires_grad):
    t = Tensor._wrap(arr)
    t.requires_grad = requires_grad
    return t


def _read(t, kind):
    """A value read out of a tensor while tl.compile records a call (see compile/capture.py)."""
    cap = state.capture
    if cap.suspended:
        from .compile.reads import read_value
        return read_value(t._data, kind)
    return cap.read(t, kind)


def _read_number(t, kind):
    """float()/int() of a tensor while a call is recorded: a plain number (a tl.compile read gives its guarded
    value, or each call's own where the compiled function returns float()'s untouched; tl.onnx.export's recorder,
    which refuses values that steer Python, gives the number itself)."""
    r = _read(t, kind)
    if not hasattr(r, "__tl_read__"):
        return r
    if kind == "float":  # (`return float(loss)`: each call's own value, as a returned .item())
        return state.capture.float_of(r, sys._getframe(2))
    if kind == "int":  # (`return int(correct)`: as float's)
        return state.capture.int_of(r, sys._getframe(2))
    return r.__tl_read__()


def _escapes(t, how, value=None):
    """Tensor data taken into Python while a call is recorded: the capture fails, unless the compiled function
    returns `value` (numpy()'s array, tolist()'s list) untouched (tl.compile's Observing.converted)."""
    cap = state.capture
    converted = getattr(cap, "converted", None)
    if value is not None and not cap.suspended and converted is not None and \
            converted(t, value, how, sys._getframe(2)):
        return
    if not cap.suspended:
        from .compile.capture import user_site
        cap.fail(f"tensor data taken into Python with {how}() at {user_site(3)} (the values could steer Python "
                 f"that a replay does not re-run); use .item() for a number, or return the tensor (or its "
                 f".numpy(), .tolist() as they are: `return out.numpy()` replays)")


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
        d = _dim(dim, ndim, opname)
        return (d,) if ndim else ()
    if not isinstance(dim, (tuple, list)):
        raise TypeError(f"{opname}: dim must be an int or a tuple of ints, got {type(dim).__name__}")
    ds = [_dim(d, ndim, opname) for d in dim]
    out = tuple(sorted(set(ds)))
    if len(out) != len(ds):
        dup = next(d for d in ds if ds.count(d) > 1)
        raise registry.OpError(f"{opname}: dim {dup} appears multiple times in the list of dims {tuple(dim)}")
    return out if ndim else ()


_new = object.__new__
_creation_hook = None  # set by tl.compile while it records a call: learns which tensors the call creates


def _wrap(arr):
    t = _new(Tensor)
    t._data = arr
    if _creation_hook is not None:
        _creation_hook(t)
    t._grad = None
    t.requires_grad = False
    t._entry = None
    t._version = 0
    t._hooks = None
    return t


Tensor._wrap = staticmethod(_wrap)
tape.Tensor = Tensor
tape._wrap = _wrap
from . import conversion, grad_hooks  # noqa: E402,F401  (install astype/to/clone/... and the gradient hooks)
from .grad_hooks import _retains  # noqa: E402,F401  (re-exported)
from .operators import _operand, _binary, matmul  # noqa: E402,F401  (installs the operators; re-exported)
