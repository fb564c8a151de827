"""The Python constants a compiled function reads: the numbers and strings (and, by identity, the tensors) its code
takes from its module's globals, from its closure, and from the data attributes of objects it reaches from those or
from `self` (`cfg.temperature`, `args.alpha`, `self.cfg.scale`) — its own code and that of the user's functions,
methods, properties and Modules it reaches the same way (`helper(x)` reading a global, `self.scale_it(x)`, a custom
layer inside nn.Sequential reading `SCALE`). A replay bakes them into its kernels, so each is a guard, snapshotted
before the recording call runs (a step that changes one itself, `global n; n += 1`, then never replays a stale value);
an attribute is looked up again from its root on every check, so rebinding `cfg` is seen too.
Not followed: the library's own code (its settings are arguments), the standard library's and NumPy's, functions
reached only through a call's result, a container, a class or `getattr`; attributes in `__slots__`. README says so."""
import dis
import functools
import os
import sys
import types

import numpy as np

from .record import same_value

PLAIN = (bool, int, float, complex, str, bytes, type(None))  # Python's plain values (tl.compile's too)
_KIND = {"LOAD_GLOBAL": "global", "LOAD_NAME": "global", "LOAD_DEREF": "deref", "LOAD_FAST": "fast"}
_ROOTS = tuple(_KIND)


def _kept(value, tensor):
    """A value a replay depends on: a plain value (by value), a tensor or an array (by identity: a replay reads the
    recorded object's data, so rebinding the name to another tensor must be seen)."""
    return type(value) in PLAIN or isinstance(value, (np.ndarray, tensor))


class _Self:
    """The root of `self.x.y` chains: the instance a compiled method or Module is bound to (it does not change)."""
    __slots__ = ("obj",)

    def __init__(self, obj):
        self.obj = obj


def _function(fn):
    """(the function whose code runs, the instance bound to its first parameter or None)."""
    Module = module_class()
    f = fn.func if isinstance(fn, functools.partial) else fn
    inst = getattr(f, "__self__", None)
    f = getattr(f, "__func__", f)  # a bound method
    if Module is not None and isinstance(inst, Module) and f is Module._call_impl:  # module.compile(): its forward
        f = type(inst).forward
    elif not hasattr(f, "__code__"):  # a Module or another callable object: its forward (or __call__)
        inst = f
        method = getattr(type(f), "forward", None) or getattr(type(f), "__call__", None)
        f = getattr(method, "__func__", method)
    return f, inst


def module_class():
    """tl.nn.Module when tl.nn has been imported, else None (nothing can be a Module then: not imported for it)."""
    mod = sys.modules.get(__name__.rsplit(".", 2)[0] + ".nn.module")
    return getattr(mod, "Module", None)


def python_constants(fn):
    """[(root, name, attribute path, value)] for each plain value or tensor read from a global, a closure cell, or a
    data attribute reached from one of those or from `self`, by `fn`'s code and the user code it reaches (see the
    module docstring); root is the globals dict, the cell or a _Self."""
    from ..tensor import Tensor
    f, inst = _function(fn)
    found = _Found(Tensor)
    found.scan(f, inst, 0)
    return found.out


_MAX_DEPTH, _MAX_FUNCTIONS = 6, 200  # calls followed from the compiled function, and functions scanned in all


class _Found:
    """One scan's state: the constants found, the (code, instance) pairs and keys already seen, a _Self per instance."""

    def __init__(self, tensor):
        self.tensor, self.out, self.seen, self.done, self.selves = tensor, [], set(), set(), {}

    def scan(self, f, inst, depth):
        code = getattr(f, "__code__", None)
        if code is None or (code, id(inst)) in self.done or depth > _MAX_DEPTH or len(self.done) >= _MAX_FUNCTIONS:
            return
        self.done.add((code, id(inst)))
        if depth == 0 or _user_code(code):
            self.read(f, code, inst, depth)
        Module = module_class()
        if Module is not None and isinstance(inst, Module):  # the layers it runs (a container's children too)
            for m in inst._modules.values():
                if m is not None:
                    self.scan(*_function(m), depth)

    def read(self, f, code, inst, depth):
        module = getattr(f, "__globals__", {})
        cells = dict(zip(code.co_freevars, f.__closure__ or ()))
        self_name = code.co_varnames[0] if inst is not None and code.co_argcount else None
        me = self.selves.setdefault(id(inst), _Self(inst))
        for kind, name, path in sorted(_chains(code)):
            if kind != "global" and name == self_name:
                root = me
            elif kind == "deref" and name in cells:
                root = cells[name]
            elif kind == "global" and name in module:
                root = module
            else:  # a local variable
                continue
            self.follow(root, name, path, depth)

    def follow(self, root, name, path, depth):
        """Walk `name.path...` from root: keep the first plain value or tensor; scan a function, method, property
        or Module met on the way (the user's code it would run)."""
        value, owner = _root_value(root, name), None
        for step in range(len(path) + 1):
            if step:
                attr = path[step - 1]
                value, owner = _attribute(value, attr), value
                if value is _GONE:  # a method or a property of the object's class: its code, bound to the object
                    self.scan(_class_function(owner, attr), owner, depth + 1)
                    return
            if value is _GONE:
                return
            if _kept(value, self.tensor):
                key = (id(root), name, path[:step])
                if key not in self.seen:
                    self.seen.add(key)
                    self.out.append((root, name, path[:step], value))
                return
            if isinstance(value, (types.FunctionType, types.MethodType)) or (
                    module_class() is not None and isinstance(value, module_class())):
                self.scan(*_function(value), depth + 1)
            if not _followed(value):
                return


def _class_function(obj, name):
    """The plain function behind `type(obj).name` when it is a method or a property's getter, else None."""
    for klass in type(obj).__mro__:
        attr = klass.__dict__.get(name, _GONE)
        if attr is not _GONE:
            if isinstance(attr, property):
                attr = attr.fget
            return attr if isinstance(attr, types.FunctionType) else None
    return None


@functools.lru_cache(maxsize=1024)
def _user_code(code):
    """Whether `code` is the user's: not the library's, the standard library's or NumPy's (their settings are
    arguments, and their globals are not the user's to change between calls)."""
    from ..autograd.recorder import _PKG_DIR
    return not code.co_filename.startswith((_PKG_DIR, _STDLIB, _NUMPY, "<frozen"))


_STDLIB = os.path.dirname(os.__file__) + os.sep
_NUMPY = os.path.dirname(np.__file__) + os.sep


@functools.lru_cache(maxsize=1024)
def _chains(code, top=True):
    """{(kind, name, (attr, ...))}: every name `code` and the code it defines inside (comprehensions, lambdas) reads
    as a global, a cell ('deref') or, in `code` itself, a local ('fast': only `self` is kept), with the data
    attributes read from it in a row (the last may be a method it calls)."""
    found, chain = set(), None
    for ins in dis.get_instructions(code):
        op = ins.opname
        if op == "LOAD_ATTR" and chain is not None:
            chain.append(ins.argval)
            continue
        if op == "LOAD_METHOD" and chain is not None:  # `obj.method(...)` (Python 3.11): the chain ends in a call
            chain.append(ins.argval)
        if chain is not None:
            found.add((chain[0], chain[1], tuple(chain[2:])))
            chain = None
        if op in _ROOTS and (op != "LOAD_FAST" or top):
            chain = [_KIND[op], ins.argval]
    if chain is not None:
        found.add((chain[0], chain[1], tuple(chain[2:])))
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            found |= _chains(const, False)
    return frozenset(found)


def _followed(obj):
    """Whether attributes read from `obj` are guarded: a plain object or a Module, not a module, class or function
    (whose attributes are code, not settings)."""
    return hasattr(obj, "__dict__") and not isinstance(obj, (type, types.ModuleType, types.FunctionType,
                                                             types.MethodType, functools.partial))


def _attribute(obj, name):
    """`obj.name` when it is a data attribute (in the instance's dict, or a Module's parameter, buffer or child),
    without running any code; _GONE otherwise."""
    if not _followed(obj):
        return _GONE
    d = obj.__dict__
    if name in d:
        return d[name]
    for key in ("_parameters", "_buffers", "_modules"):
        members = d.get(key)
        if members.__class__ is dict and name in members:
            return members[name]
    return _GONE


def _root_value(root, name):
    if isinstance(root, _Self):
        return root.obj
    if isinstance(root, types.CellType):
        try:
            return root.cell_contents
        except ValueError:  # not assigned yet
            return _GONE
    return root.get(name, _GONE)


def changed(constants):
    """The first recorded constant whose value is not the same now, as a message; None when all hold."""
    for root, name, path, value in constants:
        now = _root_value(root, name)
        for attr in path:
            now = _attribute(now, attr)
        if now is not value and not (type(now) in PLAIN and type(now) is type(value) and same_value(now, value)):
            kind = "attribute" if path else "closure variable" if isinstance(root, types.CellType) else "global"
            what = ".".join((name,) + path)
            if now is _GONE:
                return f"the {kind} '{what}' the function reads is gone"
            if type(value) not in PLAIN:
                return f"the {kind} '{what}' the function reads is another {type(now).__name__} now"
            return f"the {kind} '{what}' the function reads was {value!r} when recorded and is {now!r} now"
    return None


_GONE = object()
