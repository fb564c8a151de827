"""The record's vocabulary: where a recorded operation's arrays come from (`Ref` and its kinds), one recorded step
(`Op`), an object passed as itself (`Obj`), the error a capture gives up with (`Unsupported`), the user's line for
messages, and `map_structure` over the nested results a function returns. Shared by capture.py, plan.py,
replay.py, aot.py and vmap."""
import copy
import math
import sys

import numpy as np

from .._size import Size
from .reads import Read

SLOT, ARG, LIVE, CONST, GRAD = "slot", "arg", "live", "const", "grad"
ARGOBJ, ARGGRAD = "argobj", "arggrad"  # an argument Tensor itself, and its .grad's array (each call's own)


class Unsupported(Exception):
    """The call did something a replay cannot reproduce; `reason` says what and where."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


def user_site(depth=2):
    """'file.py:LINE' of the innermost frame outside the package."""
    return _format_site(_caller(depth))


def _caller(depth):
    """(file, line) of the innermost frame outside the package, `depth` frames up from the caller. Only the two
    values are kept: a frame object would keep its function's locals (the call's arrays) alive."""
    from ..autograd.recorder import _PKG_DIR
    f = sys._getframe(depth + 1)
    while f is not None and f.f_code.co_filename.startswith(_PKG_DIR):
        f = f.f_back
    return None if f is None else (f.f_code.co_filename, f.f_lineno)


def _format_site(site):
    return "<unknown>" if site is None else f"{site[0]}:{site[1]}"


class Ref:
    """Where an operation's array comes from at replay."""
    __slots__ = ("kind", "key")

    def __init__(self, kind, key):
        self.kind, self.key = kind, key

    def __repr__(self):
        return f"Ref({self.kind}, {self.key if self.kind != LIVE else type(self.key).__name__})"


class _Start:
    """Capture.drawn_after's mark for a draw before any recorded operation."""
    __slots__ = ()

    def __repr__(self):
        return "START"


START = _Start()


class Op:
    """One recorded step: `fn(*args)` with Refs inside args; `outs`: slot numbers of the array results (kernels),
    or None (host calls, whose effect is on live objects); `site`: the user's line, for messages. `effect`: it
    changes state that outlives the call (so no guard may come after it); `shapes`: output shapes a replay must
    find again (an output whose shape depends on values, e.g. a boolean-mask selection), or None."""
    __slots__ = ("fn", "args", "outs", "where", "effect", "kind", "shapes", "prim", "ufunc", "into", "layout",
                 "views")

    def __init__(self, fn, args, outs, where, effect, kind, shapes=None, prim=None, ufunc=None, into=None):
        self.fn, self.args, self.outs, self.where, self.effect, self.kind = fn, args, outs, where, effect, kind
        self.shapes = shapes
        self.prim = prim    # the primitive, for a kernel recorded by recorder.apply
        self.ufunc = ufunc  # the NumPy ufunc a replay may call with out=: the primitive's, or the host function itself
        self.into = into    # rule(out, *args) writing the result into a planned buffer: the primitive's or the host's
        self.layout = None  # (shape, dtype, order) of a single output that owns its memory, for buffer planning
        self.views = ()     # (slot, slot whose memory it views) for outputs that are views of this call's arrays

    @property
    def site(self):
        """'file.py:LINE' of the user's code that made this step."""
        return _format_site(self.where)


class Obj:
    """An object passed to a host call as itself (a leaf tensor whose `.grad` is set), not as its data."""
    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value


def map_structure(obj, fn):
    """`fn` applied to every leaf of nested tuples (namedtuples kept), lists, dicts and sets; the containers rebuilt,
    of their own types (an OrderedDict, a defaultdict or a Counter stays one)."""
    if isinstance(obj, Size):  # a shape: ints only, a leaf
        return fn(obj)
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return type(obj)(*[map_structure(o, fn) for o in obj])
    if isinstance(obj, (tuple, list, set, frozenset)):
        return type(obj)(map_structure(o, fn) for o in obj)
    if isinstance(obj, dict):  # (a key read from a tensor was hashed, so guarded: its plain value)
        if obj.__class__ is dict:
            return {(k._value if isinstance(k, Read) else k): map_structure(v, fn) for k, v in obj.items()}
        new = copy.copy(obj)
        new.clear()
        for k, v in obj.items():
            new[k._value if isinstance(k, Read) else k] = map_structure(v, fn)
        return new
    return fn(obj)


class Converted:
    """In a captured call's result: `t.numpy()` or `t.tolist()` that the compiled function returns untouched
    (Observing.converted), which each replay returns for that call's array: while capturing, `tensor` is the tensor
    and `value` what eager returned (for tolist(), `tensor` is the copy of its array that Observing.converted
    recorded at the call); in a plan's result template, `tensor` is the tensor's template (a Ref)."""
    __slots__ = ("tensor", "how", "value")

    def __init__(self, tensor, how, value=None):
        self.tensor, self.how, self.value = tensor, how, value


def live_graph(t):
    """Whether tensor `t` has a graph a backward could still walk (it requires grad and its entry is not released)."""
    return t.requires_grad and t._entry is not None and not t._entry.released


def graph_outputs(result):
    """The returned tensors whose graph is alive (a backward outside the call would go through it), each once."""
    from ..tensor import Tensor
    found = {}
    map_structure(result, lambda t: found.setdefault(id(t), t) if isinstance(t, Tensor) and live_graph(t) else None)
    return list(found.values())


def same_value(a, b):
    """The same number as a guard sees it: NaN matches NaN, and 0.0 does not match -0.0 (x / 0.0 is not x / -0.0)."""
    if isinstance(a, (float, np.floating)):
        if a != a:
            return b != b
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    return a == b
