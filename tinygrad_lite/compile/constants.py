"""The Python constants a compiled function reads itself: the numbers and strings (and, by identity, the tensors)
its own code takes from its module's globals and from its closure. A replay bakes them into its kernels, so each
is a guard, snapshotted before the recording call runs (a step that changes one itself, `global n; n += 1`, then
never replays a stale value).
Not seen: names read by the functions it calls, and attributes of objects (`cfg.temperature`); README says so."""
import functools
import types

import numpy as np

from .record import same_value

_PLAIN = (bool, int, float, complex, str, bytes, type(None))


def _kept(value, tensor):
    """A value a replay depends on: a plain value (by value), a tensor or an array (by identity: a replay reads the
    recorded object's data, so rebinding the name to another tensor must be seen)."""
    return type(value) in _PLAIN or isinstance(value, (np.ndarray, tensor))


def python_constants(fn):
    """[(globals dict or closure cell, name, value)] for each plain value or tensor `fn`'s code reads there."""
    from ..tensor import Tensor
    f = fn.func if isinstance(fn, functools.partial) else fn
    f = getattr(f, "__func__", f)  # a bound method
    if not hasattr(f, "__code__"):  # a Module or another callable object: its forward (or __call__)
        method = getattr(type(f), "forward", None) or getattr(type(f), "__call__", None)
        f = getattr(method, "__func__", method)
    code = getattr(f, "__code__", None)
    if code is None:
        return []
    out, module = [], getattr(f, "__globals__", {})
    for name in sorted(_names(code)):
        if name in module and _kept(module[name], Tensor):
            out.append((module, name, module[name]))
    for name, cell in zip(code.co_freevars, f.__closure__ or ()):
        try:
            value = cell.cell_contents
        except ValueError:  # not assigned yet
            continue
        if _kept(value, Tensor):
            out.append((cell, name, value))
    return out


def _names(code):
    """The global (and attribute) names of `code` and of the code it defines inside (comprehensions, lambdas)."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names(const)
    return names


def changed(constants):
    """The first recorded constant whose value is not the same now, as a message; None when all hold."""
    for where, name, value in constants:
        now = where.cell_contents if isinstance(where, types.CellType) else where.get(name, _GONE)
        if now is not value and not (type(now) in _PLAIN and type(now) is type(value) and same_value(now, value)):
            kind = "closure variable" if isinstance(where, types.CellType) else "global"
            if type(value) not in _PLAIN:
                return f"the {kind} '{name}' the function reads is another {type(now).__name__} now"
            return f"the {kind} '{name}' the function reads was {value!r} when recorded and is {now!r} now"
    return None


_GONE = object()
