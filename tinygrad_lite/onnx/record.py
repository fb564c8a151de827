"""Record one call: every primitive and every host computation, in order, with module path and source line.

The tape (grad mode on) keeps what a gradient needs; the export also needs what the tape leaves out — a VJP's
NumPy mask, a buffer's arithmetic, an integer input's cast — so it listens through the hooks tl.compile uses
(`state.capture`): `apply` reports each primitive, `compile.hooks.host` each NumPy computation, `decide` and
`.item()` each value that steers Python. Arrays are kept alive for the export, so `id(array)` names a value.
"""
import os

import numpy as np

from ..autograd import recorder as _recorder
from ..autograd.grad_mode import state, enable_grad
from ..tensor import Tensor

_PKG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


class Item:
    """One recorded call: a primitive (`prim`) or a host function (`fn`) on `args`, giving `out`."""
    __slots__ = ("prim", "fn", "args", "out", "scope", "site")

    def __init__(self, prim, fn, args, out, scope, site):
        self.prim, self.fn, self.args, self.out, self.scope, self.site = prim, fn, args, out, scope, site

    @property
    def name(self):
        return self.prim.name if self.prim is not None else getattr(self.fn, "__name__", "host computation")

    def split(self):
        """(input Tensors, attributes) of a primitive call."""
        k = len(self.prim.attr_names)
        return (self.args[:-k], self.args[-k:]) if k else (self.args, ())

    def where(self):
        """'file.py:LINE in module 'path' (Type)': where the call came from, for node docs and errors."""
        parts = []
        if self.site is not None:
            parts.append(f"{self.site[0]}:{self.site[1]}")
        if self.scope is not None:
            parts.append(f"in module '{self.scope.path or '<root>'}' ({self.scope.type_name})")
        return " ".join(parts) or "an unknown line"


def _user_site():
    """(file path, line) of the innermost frame outside the package."""
    site = _recorder.caller_site()
    return None if site is None else (site[0].co_filename, site[1])


class Recorder:
    """The capture protocol (see compile/capture.py), answered for an export: record, never guard."""
    suspended = 0

    def __init__(self):
        self.items, self.decisions, self.reads, self.writes = [], [], [], []

    def kernel(self, fn, args, out, what, writes=False, check_shape=False, prim=None):
        if writes:  # an in-place NumPy write (a running statistic): checked against graph values later
            self.writes.append((args, _user_site()))
            return out
        self.items.append(Item(prim, None if prim is not None else fn, tuple(args), out, state.scope,
                               _user_site()))
        return out

    def primitive(self, prim, inputs, attrs, out):  # (recorder.apply's usual call: see Capture.primitive)
        return self.kernel(prim.forward, (*inputs, *attrs), out, prim.name, prim=prim)

    def decision(self, fn, args, value):
        self.decisions.append((getattr(fn, "__name__", "a decision"), args, _user_site()))

    def read(self, t, kind):
        from ..compile.reads import read_value
        self.reads.append((kind, (t._data,), _user_site()))
        return read_value(t._data, kind)

    def ref(self, x, what):
        return x

    def constant(self, arr):
        return arr

    def host_call(self, fn, args, what, effect=True):
        pass

    def fail(self, reason):
        pass

    def observe_grad(self, t):
        pass

    observe_training = module_ran = tensor_created = bump = delivered = grad_cleared = observe_grad
    shared = training_set = before_write = drew = observe_grad


def record(fn, args):
    """Run `fn(*args)` with grad mode on under a Recorder; returns (outputs, recorder)."""
    rec = Recorder()
    prev = state.capture, _recorder.capturing
    state.capture, _recorder.capturing = rec, True
    try:
        with enable_grad():
            out = fn(*args)
    finally:
        state.capture, _recorder.capturing = prev
    return out, rec


def arrays_in(obj, found):
    """Append every ndarray (and Tensor's array) inside an argument structure to `found`."""
    if isinstance(obj, np.ndarray):
        found.append(obj)
    elif isinstance(obj, Tensor):
        found.append(obj._data)
    elif isinstance(obj, (tuple, list)):
        for o in obj:
            arrays_in(o, found)
    elif isinstance(obj, slice):
        arrays_in((obj.start, obj.stop, obj.step), found)
    elif isinstance(obj, dict):
        arrays_in(list(obj.values()), found)
    return found


def outputs_of(item):
    return item.out if isinstance(item.out, tuple) else (item.out,)
