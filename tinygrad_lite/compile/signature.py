"""A call's argument signature, the key tl.compile matches recorded variants by: the structure of the arguments, each
array's shape, dtype and memory layout, each Tensor's requires_grad and whether it has a graph, plain Python values
(numbers with dynamic=True: only their type), other objects by identity, and which arguments share an array."""
import math

import numpy as np


def flatten(obj, leaves, dynamic=False, swap=None):
    """The structure key of `obj` and its leaves (appended to `leaves`): Tensors, ndarrays (keyed by shape, dtype and
    memory layout) and, with `dynamic`, Python ints and floats (then keyed by their type, not their value), as
    arguments or inside tuples; inside a list or a dict a number stays keyed by value (the call may change those
    in place: they are passed as they are).
    With `swap` (an iterator), the same walk rebuilds `obj` instead, each leaf replaced by the iterator's next item
    (lists and dicts are walked but kept)."""
    Tensor = _Tensor or _tensor_class()
    cls = obj.__class__
    if cls is Tensor and swap is None:  # the usual argument, first
        leaves.append(obj)
        arr = obj._data
        return ("T", arr.shape, arr.dtype.str, arg_layout(arr), obj.requires_grad, obj._entry is None)
    if cls is tuple:  # (the arguments themselves)
        parts = tuple([flatten(o, leaves, dynamic, swap) for o in obj])
        return parts if swap is not None else ("tuple", parts)
    if isinstance(obj, (Tensor, np.ndarray)) or (dynamic and (cls is int or cls is float)):
        if swap is not None:
            return next(swap)
        leaves.append(obj)
        if cls is int or cls is float:
            return ("S", cls.__name__)
        if isinstance(obj, Tensor):
            arr = obj._data
            return ("T", arr.shape, arr.dtype.str, arg_layout(arr), obj.requires_grad, obj._entry is None)
        return ("A", obj.shape, obj.dtype.str, arg_layout(obj))
    if isinstance(obj, (bool, int, float, str, type(None), complex, bytes, np.generic)):
        return obj if swap is not None else ("V", type(obj).__name__, _value_key(obj))
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        parts = tuple(flatten(o, leaves, dynamic, swap) for o in obj)
        return cls(*parts) if swap is not None else ("N", cls, parts)
    if isinstance(obj, tuple):
        parts = tuple(flatten(o, leaves, dynamic, swap) for o in obj)
        return cls(parts) if swap is not None else (cls.__name__, parts)
    if isinstance(obj, list):
        parts = tuple(flatten(o, leaves, False, swap) for o in obj)
        return obj if swap is not None else (cls.__name__, parts)
    if isinstance(obj, dict):
        parts = tuple((k, flatten(obj[k], leaves, False, swap)) for k in sorted(obj, key=repr))
        return obj if swap is not None else ("D", parts)
    return obj if swap is not None else ("O", _Same(obj))  # any other object: by identity (a module, a loss, ...)


_Tensor = None


def _tensor_class():
    """tl.Tensor, imported on first use (tensor.py imports this package)."""
    global _Tensor
    from ..tensor import Tensor
    _Tensor = Tensor
    return Tensor


def arg_layout(arr):
    """An argument's memory layout, a guard: the library's operations decide from it (matmul's backward computes a
    transposed operand's gradient transposed), NumPy's results follow it (a ufunc's output has its input's order,
    which sets a later reduction's summation order) and a replay's planned buffers have the recorded one. C order,
    Fortran order, or the strides; and whether it may be written in place."""
    fl = arr.flags
    return (0 if fl.c_contiguous else 1 if fl.f_contiguous else arr.strides), fl.writeable


class _Same:
    """An object in a signature, compared by identity. It holds the object, so that its id cannot be reused by
    another one (a fresh config object per call at the address of the last one) while the variant exists."""
    __slots__ = ("obj",)

    def __init__(self, obj):
        self.obj = obj

    def __eq__(self, other):
        return other.__class__ is _Same and other.obj is self.obj

    def __hash__(self):
        return id(self.obj)


def flatten_kwargs(kwargs, leaves, dynamic=False, swap=None):
    """flatten of the keyword arguments: each is an argument (a number in one is dynamic too), by sorted name."""
    if not kwargs:
        return {} if swap is not None else ()
    names = sorted(kwargs)
    parts = [flatten(kwargs[k], leaves, dynamic, swap) for k in names]
    return dict(zip(names, parts)) if swap is not None else tuple(zip(names, parts))


def _value_key(obj):
    """A Python scalar as a signature keys it: 0.0 and -0.0 differ (x / s is +inf or -inf) and NaN matches NaN."""
    if isinstance(obj, (float, np.floating)):
        return "nan" if obj != obj else (float(obj), math.copysign(1.0, obj))
    if isinstance(obj, (complex, np.complexfloating)):
        return (_value_key(obj.real), _value_key(obj.imag))
    return obj


def aliases(leaves):
    """For each Tensor/ndarray argument, the position of the first argument with the same array (and, for a
    Tensor, the same object): a call recorded as f(x, x) reads one array where f(a, b) must read two."""
    first, out = {}, []
    for i, x in enumerate(leaves):
        if x.__class__ is int or x.__class__ is float:  # a number (dynamic=True): f(x, v, v) sees `a is b`
            out.append(first.setdefault(("n", id(x)), i))
            continue
        arr = x if isinstance(x, np.ndarray) else x._data
        out.append((first.setdefault(id(arr), i), first.setdefault(("t", id(x)), i)))
    return tuple(out)


_MATCHED_ARGUMENTS = 8  # a matcher tests each pair of arguments for aliasing: beyond this many, the key decides


def matcher(key, state, dtypes):
    """For a key whose arguments are Tensors and arrays passed by position (the usual step: `step(x, y)`), a
    function match(args, kwargs) -> the call's leaves when its key is `key`, else None: the same answer as building
    the key (flatten, flatten_kwargs, aliases, grad mode, default float dtype) and comparing, with a few tests per
    argument and without building anything. None for keys of other shapes (their calls build the key).
    `state` and `dtypes`: the grad-mode state and dtypes module whose values end the key."""
    (kind, parts), kw, alias, grad, default_float = key
    if kind != "tuple" or kw != () or len(parts) > _MATCHED_ARGUMENTS or not all(
            p.__class__ is tuple and ((p[0] == "T" and len(p) == 6) or (p[0] == "A" and len(p) == 4)) for p in parts):
        return None
    Tensor = _Tensor or _tensor_class()
    ns = {"Tensor": Tensor, "ndarray": np.ndarray, "arg_layout": arg_layout, "state": state, "dtypes": dtypes}

    def name(value):
        ns[f"c{len(ns)}"] = value
        return f"c{len(ns) - 1}"

    n = len(parts)
    lines = [f"if kwargs or len(args) != {n}: return None"]
    if n:
        lines.append(f"{''.join(f'a{i}, ' for i in range(n))}= args")
    for i, part in enumerate(parts):
        a, r = f"a{i}", f"r{i}"
        if part[0] == "T":  # (flatten's Tensor branch: the class or a subclass)
            lines += [f"if not isinstance({a}, Tensor): return None", f"{r} = {a}._data",
                      f"if {a}.requires_grad != {name(part[4])} or ({a}._entry is None) is not {part[5]!r}: "
                      f"return None"]  # (a recorded value by name, not its repr: np.True_ is not a name here)
        else:  # (its ndarray branch: an array that is not a Tensor)
            lines += [f"if {a}.__class__ is not ndarray and (not isinstance({a}, ndarray) or isinstance({a}, Tensor)):"
                      f" return None", f"{r} = {a}"]
        shape, dtype_str, layout = part[1:4]
        lines += [f"if {r}.shape != {name(shape)}: return None", f"d = {r}.dtype"]
        try:  # (NumPy's own instance of the dtype: an identity test decides for it)
            same = np.dtype(dtype_str)
        except TypeError:  # (a dtype its .str does not name: StringDType's is 'StringDType()')
            same = None
        quick = f"d is not {name(same)} and " if same is not None and same.str == dtype_str else ""
        lines.append(f"if {quick}d.str != {name(dtype_str)}: return None")
        if layout == (0, True):  # (C order and writeable: the usual layout, without making arg_layout's tuple)
            lines += [f"fl = {r}.flags", "if not (fl.c_contiguous and fl.writeable): return None"]
        else:
            lines.append(f"if arg_layout({r}) != {name(layout)}: return None")
    for j in range(n):  # which arguments share an array, and which are the same object (aliases)
        for i in range(j):
            lines.append(f"if (r{i} is r{j}) is not {alias[i][0] == alias[j][0]!r} or "
                         f"(a{i} is a{j}) is not {alias[i][1] == alias[j][1]!r}: return None")
    lines += [f"if state.grad_enabled != {name(grad)}: return None",
              f"if dtypes.default_float != {name(default_float)}: return None",
              f"return [{', '.join(f'a{i}' for i in range(n))}]"]
    src = "def match(args, kwargs):\n" + "".join(f"    {line}\n" for line in lines)
    exec(compile(src, "<tl.compile signature>", "exec"), ns)
    return ns["match"]
