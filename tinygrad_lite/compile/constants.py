"""The Python constants a compiled function reads: the settings (plain values, NumPy scalars, tuples and frozensets of
them; by identity Enum members, tensors and arrays) its code takes from its module's globals, from its closure, and from
the data attributes of objects it reaches from those or from `self` (`cfg.temperature`, `config.SCALE` of the user's own
module, `self.cfg.scale`, a class-level default `scale = 2.0`, an AttrDict's key), and the items read from dicts, lists
and tuples among them with a constant key (`cfg["lr"]`, `self.sizes[0]`) — its own code and that of the user's
functions, methods (static and class methods, properties, `super()`'s), partials, callable objects and Modules it
reaches the same way, and of the user's functions a library wrapper holds (`@tl.no_grad()`, `tl.func.grad(f)`, a nested
tl.compile). A replay bakes them into its kernels, so each is a guard, snapshotted before the recording call runs (a
step that changes one itself, `global n; n += 1`, then never replays a stale value); an attribute is looked up again
from its root on every check, so rebinding `cfg` is seen too, and the code reached (functions, Modules, each Module's
children, an object whose method runs) is guarded by identity. The scan runs no user code (no property, `__getattr__` or
descriptor). When it hits its limits it says so, and the call runs eagerly; so it does when a value it would guard is
computed by a `__getattr__`, `__getitem__` or `__missing__`. With `getattr(obj, name)` every setting of obj, and the set
of its attribute names, is a guard (the name may be computed). A container read whole (iterated, sliced, tested with
`in`, read with a computed key or a method, passed on) is one guard on all it holds (`_Contents`), and each object
directly in a list, tuple or dict has its settings guarded as getattr's object (`for g in groups: x * g.scale`). Other
names for the same objects are followed too: a local assigned from a chain is read as its source (`c = self.cfg;
c.scale`, an alias of an alias, a cell a comprehension reads); the compiled function's parameters bound to objects (a
signature keys those by identity) are roots like globals; and a user's object (or Module) the code passes on, returns or
reads through `vars()` (`helper(cfg)`, `get_cfg().scale`), a partial's argument, a parameter's default and an object
argument inside a container have each attribute guarded that the scanned code reads by name anywhere (every one, as
getattr's object, when the code reads attributes by computed names: getattr, vars, `__dict__`), the containers, code and
user's objects among them the same way, two levels down (`c.sub.scale`), its class guarded and the methods the code
calls by those names, and the protocol methods Python calls for it (`float(obj)`, unpacking), scanned with the object
bound (`_Found.flush`; a user's module, a `__slots__` object and one read by `operator.attrgetter` too): a counter the
step only stores to (`t.steps += 1`) or the loop advances is no guard. The methods called on objects and classes (a
Module's forward, `self.helper()`, every method of a class the step instantiates, scanned with the class as `self`) are
one guard (`_Methods`): one replaced on its class, or set on the object, is seen. Code that draws random numbers in
Python (a function of random or numpy.random, a Random's or Generator's method, a partial of one, a Generator passed on
or held by an object passed on) runs eagerly: a replay would repeat the recording call's draw (the library's own random
numbers replay with fresh draws); so does code that reads a NumPy argument's values in Python (`float(a[0])`, `a.sum()`,
`for v in a`, `np.mean(a)`: its shape is a signature guard, tensor operations on it are recorded). Not followed: the
library's own code (its settings are arguments; its wrappers are looked through, and its objects, an optimizer, read
theirs live), the standard library's, NumPy's and installed packages' modules, a local assigned from anything but a
chain (a library call's result, arithmetic) or from a parameter of a function other than the compiled one, and objects
more than two levels below one passed on. README says so."""
import argparse
import dis
import enum
import functools
import operator
import os
import random
import sys
import types

import numpy as np

from .values import (GONE as _GONE, MAX_ITEMS as _MAX_ITEMS, MAX_NESTED as _MAX_NESTED, Contents as _Contents,
                     collection as _collection, container as _container, contents as _contents, data as _data,
                     lookup as _lookup, opaque as _opaque, same as _same)

_KIND = {"LOAD_GLOBAL": "global", "LOAD_NAME": "global", "LOAD_DEREF": "deref", "LOAD_FAST": "fast"}
_ROOTS = tuple(_KIND)
_CODE = (types.FunctionType, types.MethodType, functools.partial)  # code, not settings: not followed
_MAX_DEPTH, _MAX_FUNCTIONS = 32, 4000  # calls followed from the compiled function; the user's functions read
_MAX_ATTRIBUTES = 256  # of an object read with getattr (each one a guard)
_MAX_LEVELS = 2  # of the user's objects held by one read whole (getattr's, passed on): `c.sub.scale` is guarded


class _Self:
    """The root of `self.x.y` chains: the instance a compiled method or Module is bound to (it does not change)."""
    __slots__ = ("obj",)

    def __init__(self, obj):
        self.obj = obj


def _function(fn):
    """(the function whose code runs when `fn` is called, the instance bound to its first parameter or None)."""
    if isinstance(fn, functools.partial):
        fn = fn.func
    if isinstance(fn, types.MethodType):
        inst, f = fn.__self__, fn.__func__
        Module = module_class()
        if Module is not None and isinstance(inst, Module) and f is Module._call_impl:  # module.compile()
            return _lookup(type(inst), "forward"), inst
        return f, inst
    if isinstance(fn, types.FunctionType) or isinstance(fn, type):
        return fn, None
    own = (_dict(fn) or {}).get("forward")  # (one set on the instance is called instead of the class's)
    if isinstance(own, (types.FunctionType, types.MethodType, functools.partial)):
        return _function(own)
    method = _lookup(type(fn), "forward")  # a Module or another callable object: its forward (or __call__)
    return _member(_lookup(type(fn), "__call__") if method is _GONE else method, fn)


def _member(entry, obj):
    """(function, bound to) behind a class's entry read from `obj` (an instance or a class): a method or a property's
    getter (obj; None from a class), a staticmethod (None), a classmethod (the class); (None, None) otherwise."""
    klass = obj if isinstance(obj, type) else type(obj)
    if isinstance(entry, staticmethod):
        return entry.__func__, None
    if isinstance(entry, classmethod):
        return entry.__func__, klass
    if isinstance(entry, property):
        entry = entry.fget
    return (entry, None if obj is klass else obj) if isinstance(entry, types.FunctionType) else (None, None)


def module_class():
    """tl.nn.Module when tl.nn has been imported, else None (nothing can be a Module then: not imported for it)."""
    mod = sys.modules.get(__name__.rsplit(".", 2)[0] + ".nn.module")
    return getattr(mod, "Module", None)


def python_constants(fn, args=()):
    """[(root, name, attribute path, value)] for each setting, tensor or piece of code read from a global, a closure
    cell, or a data attribute reached from one of those or from `self`, by `fn`'s code and the user code it reaches
    (see the module docstring); root is the globals dict, the cell or a _Self. A string instead when the scan stopped
    at a limit (the reason the call cannot be replayed safely)."""
    from ..tensor import Tensor
    found = _Found(Tensor)
    found.arguments = _bind(fn, *args, Tensor) if args else {}
    named = {id(v) for v in found.arguments.values()}
    try:
        found.call(fn, 0)
        for arg in _objects(args):  # (a signature keys them by identity): those in a container or `*args`
            if id(arg) not in named:
                found.bound(arg, "an argument", 0)
        found.flush()
    except RecursionError:
        found.limit = "its code and Modules nest too deeply"
    if found.draws:
        return f"the function draws random numbers in Python ({found.draws}): a replay would repeat the recording " \
               f"call's numbers (draw them with tl.rand/tl.randn/tl.randint, which replay with fresh draws, or pass " \
               f"them in as arguments)"
    if found.array_read:
        return f"the function reads values of a NumPy argument in Python ({found.array_read}): a replay would use " \
               f"the recording call's (pass a Tensor, or compute with tensor operations)"
    if found.limit:
        return f"the scan of the Python values the function reads stopped: {found.limit}, so a change to one " \
               f"could not be seen"
    return found.out + ([(None, "", (), found.methods)] if found.methods.entries else [])


_ARRAY_METADATA = ("shape", "ndim", "dtype", "size", "nbytes", "itemsize", "strides")  # (a signature's guards)


def _bind(fn, args, kwargs, tensor):
    """{parameter name: argument} of the compiled function for the arguments its signature keys by identity (the
    user's objects and code, not tensors, arrays, numbers, strings or containers): its code's reads from them
    (`cfg.scale` with `cfg` a parameter) are guarded like those from a global."""
    f, inst = _function(fn)
    if not isinstance(f, types.FunctionType):
        return {}
    if isinstance(fn, functools.partial):
        args, kwargs = fn.args + tuple(args), {**fn.keywords, **kwargs}
    code = f.__code__
    positional = code.co_varnames[1 if inst is not None else 0:code.co_argcount]
    names = set(code.co_varnames[:code.co_argcount + code.co_kwonlyargcount])
    bound = dict(zip(positional, args))
    bound.update((k, v) for k, v in kwargs.items() if k in names)
    return {k: v for k, v in bound.items()  # (and the NumPy arrays: read() refuses their values read in Python)
            if not isinstance(v, (tensor, np.generic, tuple, list, dict)) and not _data(v)}


_RANDOM_MODULES = ("random", "secrets", "numpy.random")
_GENERATORS = (random.Random, np.random.Generator, np.random.RandomState)


def _random_draw(obj, path):
    """'random.uniform' when the chain from obj through path calls Python's or NumPy's random numbers (a function of
    random, secrets or numpy.random, a method of a Random, Generator or RandomState, one imported by name), else
    None."""
    if not path and isinstance(obj, (types.BuiltinMethodType, types.MethodType)) \
            and isinstance(obj.__self__, _GENERATORS):  # `from random import uniform`
        return obj.__qualname__
    for attr in path[:2]:
        if attr.__class__ is not str:
            return None
        if isinstance(obj, _GENERATORS):
            return f"{type(obj).__name__}.{attr}" if callable(_lookup(type(obj), attr)) else None
        if not isinstance(obj, types.ModuleType):
            return None
        d = _dict(obj) or {}
        entry = d.get(attr)
        if isinstance(entry, types.ModuleType):  # np.random.rand: through the submodule
            obj = entry
            continue
        if d.get("__name__") in _RANDOM_MODULES and callable(entry) and not isinstance(entry, type):
            return f"{d['__name__']}.{attr}"
        return None
    return None


def _objects(args, budget=None):
    """The objects among the call's arguments, in tuples, lists and dicts too (at most _MAX_ATTRIBUTES)."""
    budget = [_MAX_ATTRIBUTES] if budget is None else budget
    for arg in args:
        if budget[0] <= 0:
            return
        budget[0] -= 1
        if isinstance(arg, (tuple, list)):
            yield from _objects(arg, budget)
        elif isinstance(arg, dict):
            yield from _objects(list(arg.values()), budget)
        else:
            yield arg


class _Methods:
    """The methods the scanned code calls on objects and classes (`self.helper()`, a Module's forward, a class's
    __init__), each with the entry its class had: one guard for all, so a method replaced on its class is seen."""
    __slots__ = ("entries", "keys")

    def __init__(self):
        self.entries, self.keys = [], set()

    def add(self, obj, name):
        if (id(obj), name) not in self.keys:
            self.keys.add((id(obj), name))
            klass = obj if isinstance(obj, type) else type(obj)
            own = None if obj is klass else _dict(obj)  # (an instance attribute of that name would be called instead)
            self.entries.append((obj, klass, name, _lookup(klass, name), own, own is not None and name in own))

    def changed(self):
        for obj, klass, name, entry, own, shadowed in self.entries:
            now = obj if obj is klass else type(obj)
            if (now is not klass or klass.__dict__.get(name) is not entry) and _lookup(now, name) is not entry:
                return f"the method {now.__name__}.{name} the function calls was replaced"  # (or the class changed)
            if own is not None and (name in own) != shadowed:
                return f"the method {now.__name__}.{name} the function calls was replaced on the object"
        return None


class _Found:
    """One scan's state: the constants found, the (function, instance) pairs and keys already seen, a _Self per
    instance, the user's functions read, and the limit hit (or None)."""

    def __init__(self, tensor):
        self.tensor, self.out, self.seen, self.done, self.selves = tensor, [], set(), set(), {}
        self.methods, self.arguments, self.draws, self.array_read = _Methods(), {}, None, None
        self.passed, self.names, self.dynamic = [], set(), False  # objects passed on; attribute names code reads
        self.reads, self.limit = 0, None

    def call(self, value, depth):
        """Scan the code calling `value` runs: a function, a method, a partial, a Module (its forward, its children,
        each guarded by identity), a callable object (a library one: the function it wraps)."""
        draw = _random_draw(value.func if isinstance(value, functools.partial) else value, ())
        if draw is not None:  # `U = partial(random.uniform, 0.5, 1.5)`
            self.draws = self.draws or draw
            return
        if isinstance(value, _NAME_READERS):  # `operator.attrgetter("scale")`: attributes by names it holds
            self.dynamic = True
        self.scan(*_function(value), depth)
        if not isinstance(value, _CODE) and not isinstance(value, type):  # a Module, a callable object: its method
            self.methods.add(value, "forward" if _lookup(type(value), "forward") is not _GONE else "__call__")
        if isinstance(value, functools.partial):
            for item in value.args + tuple(value.keywords.values()):
                self.bound(item, "a partial's argument", depth)
        Module = module_class()
        if Module is not None and isinstance(value, Module):
            if id(value) not in self.seen:
                self.seen.add(id(value))
                children = value._modules  # (Module.__setattr__ keeps a child's name in it: one dict lookup)
                for key, m in children.items():
                    if m is not None:
                        self.keep(children, key, (), m)
                        self.call(m, depth)
        elif not isinstance(value, _CODE):
            wrapped = (_dict(value) or {}).get("__wrapped__")  # a nested tl.compile, a functools.wraps object
            if wrapped is not None:
                self.call(wrapped, depth + 1)

    def bound(self, value, what, depth):
        """An object bound to code once (a partial's argument, a parameter's default) and read through a parameter:
        its code is scanned and its settings kept, as an object the code is passed."""
        if _user_object(value, self.tensor):
            self.passed.append(((self.selves.setdefault(id(value), _Self(value)), what, ()), value))
        elif isinstance(value, _GENERATORS):
            self.draws = self.draws or f"a {type(value).__name__} as {what}"
        elif callable(value) and not isinstance(value, type):
            self.call(value, depth + 1)

    def scan(self, f, inst, depth):
        if not isinstance(f, types.FunctionType) or (f, id(inst)) in self.done or self.limit:
            return
        if depth > _MAX_DEPTH:
            self.limit = f"it reaches functions more than {_MAX_DEPTH} calls deep"
            return
        self.done.add((f, id(inst)))
        code, wrapped = f.__code__, f.__dict__.get("__wrapped__")  # a decorator's: the code it wraps, bound alike
        if isinstance(wrapped, types.FunctionType):
            self.scan(wrapped, inst, depth + 1)
        if depth == 0 or _user_path(code.co_filename):
            self.reads += 1
            if self.reads > _MAX_FUNCTIONS:
                self.limit = f"it reaches more than {_MAX_FUNCTIONS} of the user's functions and methods"
                return
            for item in (f.__defaults__ or ()) + tuple((f.__kwdefaults__ or {}).values()):
                self.bound(item, f"a default of {f.__name__}", depth)
            self.read(f, code, inst, depth)
            if inst is not None and not isinstance(inst, type) and "super" in code.co_names:  # super().name(...)
                for klass in type(inst).__mro__:  # every base's method of each name it uses (over-approximated)
                    for name in code.co_names:
                        if name in klass.__dict__:
                            self.scan(*_member(klass.__dict__[name], inst), depth + 1)
            return
        for cell in f.__closure__ or ():  # library code: not read; the user's code in its closure is
            value = _root_value(cell, None)
            if callable(value) and not isinstance(value, type):
                self.call(value, depth + 1)

    def read(self, f, code, inst, depth):
        names, dynamic = _read_names(code)
        self.names |= names
        self.dynamic = self.dynamic or dynamic
        module = f.__globals__
        cells = dict(zip(code.co_freevars, f.__closure__ or ()))
        self_name = code.co_varnames[0] if inst is not None and code.co_argcount else None
        me = self.selves.setdefault(id(inst), _Self(inst))
        for kind, name, path in sorted(_chains(code), key=repr):
            if kind != "global" and name == self_name:
                root = me
            elif kind == "deref" and name in cells:
                root = cells[name]
            elif kind == "global" and name in module:
                root = module
            elif kind in ("fast", "deref") and depth == 0 and name in self.arguments:  # a compiled fn's parameter
                value = self.arguments[name]
                if isinstance(value, np.ndarray):
                    if path and path[0] not in _ARRAY_METADATA and path != (_USED,):  # `float(a[0])`, `a.sum()`
                        self.array_read = self.array_read or _dotted(name, path)
                    continue
                root = self.selves.setdefault(id(value), _Self(value))
            else:  # a local variable
                continue
            self.follow(root, name, path, depth)

    def follow(self, root, name, path, depth):
        """Walk `name.path...` from root: keep the first setting, tensor or array; keep by identity and scan the
        code met on the way (a function, partial, Module or callable object), and a method's or property's code
        with the object it is bound to. `self.x` read from a dict (the instance's, a Module's parameters, buffers or
        children: `self` does not change) is guarded as that dict's key: one lookup per check."""
        if path[-1:] == (_SUBSCRIPT,):  # (only a NumPy argument's items matter: see read)
            return
        used = path[-1:] == (_USED,)
        if used:
            path = path[:-1]
        value, at, held = _root_value(root, name), (root, name, ()), None
        for step in range(len(path) + 1):
            draw = _random_draw(value, path[step - 1 if step else 0:])  # (value: reached through path[:step - 1])
            if draw is not None:  # (a number drawn in Python would be the recording call's in every replay)
                self.draws = self.draws or draw
                return
            if step:
                owner, before = value, at
                value, holder = _locate(owner, path[step - 1])
                if step == 1 and holder is not None and isinstance(root, _Self):
                    held = holder  # `self.x...` from then on: from self's dict (self does not change), one lookup less
                at = (held, path[0], path[1:step]) if held is not None else (root, name, path[:step])
                attr = path[step - 1]
                if attr is _ANY:  # getattr(obj, name): every data attribute of obj
                    self.keep_all(root, name, path[:step - 1], owner)
                    return
                if value is _GONE:
                    f, inst = (None, None) if attr.__class__ is _Key else \
                        _member(_lookup(owner if isinstance(owner, type) else type(owner), attr), owner)
                    if f is not None:
                        self.keep(*before, owner)  # the object whose method runs, and the method itself
                        self.methods.add(owner, attr)
                        self.scan(f, inst, depth + 1)
                        return
                    if step == len(path) and _collection(owner):  # `cfg.items()`, `log.append(v)`: read whole
                        self.keep_whole(before, owner, depth)
                        return
                    if not isinstance(owner, type) and _computes(_lookup(type(owner), "__getattr__")):
                        self.limit = (f"'{_dotted(name, path[:step])}' is read through "
                                      f"{type(owner).__name__}.__getattr__, code that the scan does not run")
                    return
                if value is _UNSEEN:
                    self.limit = (f"'{_dotted(name, path[:step])}' is computed by {type(owner).__name__}'s "
                                  f"__getitem__ or __missing__, code that the scan does not run")
                    return
            if value is _GONE:
                return
            if _data(value) or isinstance(value, (np.ndarray, self.tensor, enum.Enum)):
                self.keep(*at, value)
                return
            if callable(value) and not isinstance(value, type):
                self.keep(*at, value)
                self.call(value, depth + 1)
                if used and step == len(path) and _passed_object(value):  # `helper(self)` in a Module's forward
                    self.passed.append((at, value))
            elif isinstance(value, type) and _user_class(value):  # `Block(cfg)`: a class the step calls
                self.keep(*at, value)
                for klass in value.__mro__:  # every method an instance made in the step may run, `self` the class
                    for member, entry in (vars(klass).items() if _user_class(klass) else ()):
                        f, _ = _member(entry, value)
                        if f is not None:
                            self.methods.add(value, member)
                            self.scan(f, value, depth + 1)
            elif step == len(path) and _collection(value):  # iterated, sliced, `in`, a computed key, passed on
                self.keep_whole(at, value, depth)
            elif used and step == len(path) and _user_object(value, self.tensor):  # `helper(cfg)`, `vars(cfg)`
                self.passed.append((at, value))
            elif used and step == len(path) and isinstance(value, _GENERATORS):  # `augment(x, self.rng)`
                self.draws = self.draws or f"a {type(value).__name__} passed on"

    def keep_whole(self, at, value, depth):
        """A list, dict, set or tuple the code reads other than by a constant key (iterated, sliced, tested with `in`,
        read with a computed key or a method, passed on): all it holds is one guard (`_Contents`), and the code among
        it is scanned."""
        root, name, path = at
        if _opaque(value):
            self.limit = (f"'{_dotted(name, path)}' is read whole and {type(value).__name__} iterates it with code of "
                          f"its own, which the scan does not run")
            return
        snap = _contents(value, [_MAX_ITEMS, _MAX_NESTED])
        if snap is None:
            self.limit = (f"'{_dotted(name, path)}' is read whole (iterated, sliced, tested with `in` or read with a "
                          f"computed key) and holds more than {_MAX_ITEMS:,} items or {_MAX_NESTED} containers to "
                          f"guard")
            return
        self.keep(root, name, path + (_WHOLE,), snap)
        for item in snap.leaves() if snap.objects else ():  # (plain settings are not code)
            if callable(item) and not isinstance(item, type):
                self.call(item, depth + 1)
        if not snap.objects or not (type(value) in (list, tuple) or isinstance(value, dict)):  # (ones _item reads)
            return
        for key, item in (value.items() if isinstance(value, dict) else enumerate(value)):
            if _settings_object(item, self.tensor) and _data(key):  # (a key a guard can look up again)
                self.keep_all(root, name, path + (_Key(key),), item)  # `for g in groups: x * g.scale`

    def keep_all(self, root, name, path, obj, levels=_MAX_LEVELS):
        """`getattr(obj, name)` with a name computed at run time, or obj passed on: keep every setting obj reads as an
        attribute (its instance dict, its classes' data attributes, an AttrDict's keys), and those of the user's
        objects among them, `levels` deep (`c.sub.scale` in the code obj is passed to)."""
        names = _attribute_names(obj)
        if len(names) > _MAX_ATTRIBUTES:
            self.limit = (f"'{_dotted(name, path)}' is read with getattr and has more than {_MAX_ATTRIBUTES} "
                          f"attributes to guard")
            return
        self.keep(root, name, path + (_NAMES,), frozenset(names))  # one added later: getattr's default no more
        for key in names:
            value = _locate(obj, key)[0]
            if _data(value) or isinstance(value, (np.ndarray, self.tensor, enum.Enum)):
                self.keep(root, name, path + (key,), value)
            elif levels and _user_object(value, self.tensor) and not self.limit:
                self.keep_all(root, name, path + (key,), value, levels - 1)

    def flush(self):
        """Guard the objects the code passed on (`helper(cfg)`, returned, a partial's or default's object, an object
        argument in a container): each attribute the scanned code reads by name (all of them when it reads attributes
        by computed names: getattr, vars), its held objects the same way two levels down, its code scanned. Done after
        the scan, so the names are all known; again when the code it reaches reads more names."""
        done, size = [], -1
        for _ in range(_MAX_LEVELS + 2):
            while self.passed and not self.limit:
                item = self.passed.pop()
                done.append(item)
                self.keep_read(*item[0], item[1], _MAX_LEVELS)
            if len(self.names) == size or self.limit:
                return
            size = len(self.names)
            self.passed, done = done, []

    def keep_read(self, root, name, path, obj, levels):
        """Guard obj, passed on: its class (its methods are scanned as its class has them), the attributes the code
        reads by name (all of them, and the set of their names, when it reads attributes by computed names), the
        methods Python calls for it (`float(obj)`, unpacking: its class's protocol methods), two levels down."""
        self.keep(root, name, path + (_TYPE,), type(obj))
        names = sorted(self.names)
        if self.dynamic and not isinstance(obj, types.ModuleType):
            every = _attribute_names(obj)
            if len(every) > _MAX_ATTRIBUTES:
                self.limit = (f"'{_dotted(name, path)}' is read by attribute names computed at run time and has more "
                              f"than {_MAX_ATTRIBUTES} attributes to guard")
                return
            self.keep(root, name, path + (_NAMES,), frozenset(every))
            names = sorted(set(names) | set(every))
        klass = None if isinstance(obj, (type, types.ModuleType)) else type(obj)
        for key in names + [m for m in _PROTOCOL if klass is not None and _user_class(klass)]:
            value = _locate(obj, key)[0]
            at = (root, name, path + (key,))
            if value is _GONE and klass is not None:  # a method of its class that code calls by this name
                f, inst = _member(_lookup(klass, key), obj)
                if f is not None:
                    self.methods.add(obj, key)
                    self.scan(f, inst, 1)
            if value is _GONE or value is _UNSEEN:
                continue
            if _data(value) or isinstance(value, (np.ndarray, self.tensor, enum.Enum)):
                self.keep(*at, value)
            elif isinstance(value, _GENERATORS):  # `h.rng.normal()` in the code it is passed to
                self.draws = self.draws or f"a {type(value).__name__} held by an object passed on"
            elif _collection(value):  # `c.opts["scale"]`, `c.ws[0]` in the code it is passed to
                self.keep_whole(at, value, 1)
            elif callable(value) and not isinstance(value, type):  # `t.model(x)`: its code
                self.keep(*at, value)
                self.call(value, 1)
                if levels and _passed_object(value):
                    self.keep_read(*at, value, levels - 1)
            elif levels and _user_object(value, self.tensor):
                self.keep_read(*at, value, levels - 1)
            else:  # (an object of the library's, an optimizer: by identity)
                self.keep(*at, value)

    def keep(self, root, name, path, value):
        key = (id(root), name, path)
        if key not in self.seen and (path or not isinstance(root, _Self)):
            self.seen.add(key)
            self.out.append((root, name, path, value))


def _settings_object(obj, tensor):
    """An object whose data attributes code may read once it has it from a container (`for g in groups: g.scale`):
    one with an instance dict that is not code, a container, an array, a tensor, a class, a module or an Enum."""
    return not (callable(obj) or _data(obj) or _container(obj) or isinstance(obj, (np.ndarray, tensor, enum.Enum,
                                                                                   types.ModuleType))) \
        and _dict(obj) is not None


def _user_object(obj, tensor):
    """A settings object of the user's: of a class from the user's files (a config class, a dataclass, one with
    __slots__), a SimpleNamespace or argparse.Namespace, or a module of the user's (`import config`); not the
    library's objects (an optimizer reads its settings live)."""
    if isinstance(obj, types.ModuleType):
        return _user_module(obj)
    klass = type(obj)
    if not (_settings_object(obj, tensor) or (_dict(obj) is None and _lookup(klass, "__slots__") is not _GONE
                                              and not callable(obj) and not _container(obj))):
        return False
    return klass is types.SimpleNamespace or klass is argparse.Namespace or _user_class(klass)


def _passed_object(obj):
    """A Module or a callable object of the user's whose settings code may read once it has it (`helper(self)`)."""
    Module = module_class()
    return not isinstance(obj, (_CODE, type, types.ModuleType)) and _dict(obj) is not None and (
        (Module is not None and isinstance(obj, Module)) or _user_class(type(obj)))


_DYNAMIC = frozenset(("getattr", "hasattr", "vars", "__dict__", "attrgetter", "methodcaller", "asdict", "astuple",
                      "fields", "dir", "__getattribute__"))
_NAME_READERS = (operator.attrgetter, operator.methodcaller)


@functools.lru_cache(maxsize=1024)
def _read_names(code):
    """(the attribute names `code` and the code it defines read, not counting `obj.n += 1`'s; whether it reads
    attributes by computed names: getattr, vars, __dict__)."""
    names, dynamic, previous = set(), False, None
    for ins in dis.get_instructions(code):
        if ins.opname in ("LOAD_ATTR", "LOAD_METHOD") and previous is not None and previous.opname != "COPY":
            names.add(ins.argval)
        if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME", "LOAD_ATTR", "LOAD_METHOD") and ins.argval in _DYNAMIC:
            dynamic = True
        if ins.opname == "MATCH_CLASS":  # `case Cfg(sub=s)`: its keywords by name, positions by __match_args__
            if previous is not None and previous.opname == "LOAD_CONST" and isinstance(previous.argval, tuple):
                names.update(n for n in previous.argval if isinstance(n, str))
            dynamic = dynamic or bool(ins.arg)
        previous = ins
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            inner, more = _read_names(const)
            names |= inner
            dynamic = dynamic or more
    return frozenset(names), dynamic


def _user_class(klass):
    """A class defined in the user's files (not the library's, the standard library's or an installed package's)."""
    mod = sys.modules.get(getattr(klass, "__module__", None))
    return mod is not None and _user_module(mod)


def _attribute_names(obj):
    """The names obj has as data attributes: its instance dict's, a Module's parameters, buffers and children, its
    classes' (not object's; a __slots__ attribute only when set), an AttrDict's keys."""
    d = _dict(obj) or {}
    names = [k for k in d if isinstance(k, str)]
    for key in ("_parameters", "_buffers", "_modules"):  # (a Module's __getattr__ reads these)
        if d.get(key).__class__ is dict:
            names += [k for k in d[key] if isinstance(k, str)]
    for klass in (obj if isinstance(obj, type) else type(obj)).__mro__[:-1]:  # (not object's)
        for k, entry in vars(klass).items():
            if isinstance(k, str) and not k.startswith("__") and (type(entry) is not types.MemberDescriptorType
                                                                  or _locate(obj, k)[0] is not _GONE):
                names.append(k)
    if isinstance(obj, dict):
        names += [k for k in obj if isinstance(k, str)]
    return list(dict.fromkeys(names))


def _dict(obj):
    """obj's instance dict (a module's globals), or None, read by its class's own descriptor: no code runs."""
    try:
        desc = _dict_descriptor(type(obj))
    except TypeError:  # a class its metaclass makes unhashable
        desc = _find_dict_descriptor(type(obj))
    d = desc.__get__(obj, type(obj)) if desc is not None else None
    return d if type(d) is dict else None


def _find_dict_descriptor(klass):
    desc = _lookup(klass, "__dict__")
    return desc if type(desc) in (types.GetSetDescriptorType, types.MemberDescriptorType) else None


_dict_descriptor = functools.lru_cache(maxsize=1024)(_find_dict_descriptor)  # (a class is hashable, but see _dict)


def _locate(obj, name):
    """(`obj.name`, the dict it is read from or None) when Python reads it as data — from the instance's dict or
    slot, a user module's globals, a class attribute that is not a descriptor (its MRO), a Module's parameter, buffer
    or child, an AttrDict's key — without running any code; (_GONE, None) otherwise (a method, a property, code's
    attributes, a library module's). `name` may be a _Key: an item of a dict, list or tuple."""
    if name.__class__ is _Key:
        return _item(obj, name.key), None
    if name is _WHOLE:  # (the container itself: its _Contents compares)
        return obj, None
    if name is _NAMES:
        return frozenset(_attribute_names(obj)), None
    if name is _TYPE:
        return type(obj), None
    if isinstance(obj, type):
        entry = _lookup(obj, name)
        return (_GONE if _lookup(type(entry), "__get__") is not _GONE else entry), None
    if isinstance(obj, _CODE) or isinstance(obj, types.ModuleType) and not _user_module(obj):
        return _GONE, None
    d, entry = _dict(obj), _lookup(type(obj), name)
    if name == "__dict__" and d is not None and entry is _find_dict_descriptor(type(obj)):  # `cfg.__dict__["scale"]`
        return d, None
    if entry is not _GONE:
        kind = type(entry)
        if kind is types.MemberDescriptorType:  # a __slots__ attribute
            try:
                return entry.__get__(obj, type(obj)), None
            except AttributeError:
                return _GONE, None
        getter = _lookup(kind, "__get__") is not _GONE
        if getter and (_lookup(kind, "__set__") is not _GONE or _lookup(kind, "__delete__") is not _GONE):
            return _GONE, None  # a data descriptor (a property): its code runs
        if d is None or name not in d:
            return (_GONE if getter else entry), None
    if d is not None and name in d:
        return d[name], d
    if isinstance(obj, dict) and _lookup(type(obj), "__getattr__") in (dict.__getitem__, dict.get):
        return dict.get(obj, name, _GONE), None  # an AttrDict (EasyDict-style config)
    for key in ("_parameters", "_buffers", "_modules"):  # a Module's __getattr__
        members = d.get(key) if d is not None else None
        if members.__class__ is dict and name in members:
            return members[name], members
    return _GONE, None


class _Key:
    """In an attribute path: an item read with a constant key, `cfg["lr"]` (`BINARY_SUBSCR` after `LOAD_CONST`)."""
    __slots__ = ("key",)

    def __init__(self, key):
        self.key = key

    def __eq__(self, other):
        return other.__class__ is _Key and type(other.key) is type(self.key) and other.key == self.key

    def __hash__(self):
        return hash((_Key, self.key))

    def __repr__(self):
        return f"[{self.key!r}]"


_ANY = "<getattr>"  # in an attribute path: the object is the first argument of getattr (see _chains)


def _dotted(name, path):
    return name + "".join(repr(a) if a.__class__ is _Key else "[...]" if a == _SUBSCRIPT else "." + a for a in path
                          if a not in (_WHOLE, _NAMES, _USED, _TYPE))


_WHOLE = "<contents>"  # in an attribute path: the container's contents (a _Contents snapshot)
_NAMES = "<names>"  # in an attribute path: the names of the object's data attributes (getattr's object)
_TYPE = "<type>"  # in an attribute path: the object's class (of an object passed on: the methods scanned are its)
_PROTOCOL = ["__iter__", "__next__", "__len__", "__bool__", "__float__", "__int__", "__index__", "__complex__",
             "__getitem__", "__contains__", "__call__", "__array__", "__add__", "__radd__", "__sub__", "__rsub__",
             "__mul__", "__rmul__", "__truediv__", "__rtruediv__", "__matmul__", "__rmatmul__", "__pow__", "__rpow__",
             "__neg__", "__eq__", "__lt__", "__le__", "__gt__", "__ge__"]  # (methods Python calls for an object)


def _item(obj, key):
    """`obj[key]` for a dict (whose lookup is dict's own), a list or a tuple, without running code; _GONE when there
    is no such item (eager raises); _UNSEEN when code would compute it (a defaultdict's missing key, a class's own
    __getitem__: a UserDict, a config class)."""
    t = type(obj)
    if isinstance(obj, dict) and (t is dict or _lookup(t, "__getitem__") is dict.__getitem__):
        value = dict.get(obj, key, _GONE)
        return _UNSEEN if value is _GONE and t is not dict and _lookup(t, "__missing__") is not _GONE else value
    if t is types.MappingProxyType:  # a class's __dict__, a read-only view of a settings dict
        value = obj.get(key, _GONE)
        return value if isinstance(value, dict) or _data(value) or value is _GONE else _UNSEEN
    if t is list or t is tuple:
        return obj[key] if type(key) is int and -len(obj) <= key < len(obj) else _GONE
    return _UNSEEN if _computes(_lookup(t, "__getitem__")) else _GONE


def _computes(entry):
    """Whether a class's __getattr__/__getitem__ is Python code that computes values (not the library's Module's,
    whose parameters, buffers and children _locate reads itself)."""
    from ..autograd.recorder import _PKG_DIR
    return isinstance(entry, types.FunctionType) and not entry.__code__.co_filename.startswith(_PKG_DIR)


@functools.lru_cache(maxsize=4096)
def _user_path(path):
    """Whether a file is the user's: not the library's, the standard library's or NumPy's (their settings are
    arguments, and their globals are not the user's to change between calls)."""
    from ..autograd.recorder import _PKG_DIR
    return not path.startswith((_PKG_DIR, _STDLIB, _NUMPY, "<frozen"))


def _user_module(mod):
    """Whether a module's attributes are the user's settings: a module of the user's files (not the library's, the
    standard library's, NumPy's or an installed package's), or one without a file that is not built in."""
    d = _dict(mod) or {}
    path = d.get("__file__")
    if not isinstance(path, str):
        return d.get("__name__") not in sys.builtin_module_names
    return _user_path(path) and "site-packages" not in path and "dist-packages" not in path


_STDLIB = os.path.dirname(os.__file__) + os.sep
_NUMPY = os.path.dirname(np.__file__) + os.sep


@functools.lru_cache(maxsize=1024)
def _chains(code, top=True):
    """{(kind, name, (attr, ...))}: every name `code` and the code it defines inside (comprehensions, lambdas) reads
    as a global, a cell ('deref') or, in `code` itself, a local ('fast': only `self` is kept), with the data
    attributes read from it in a row (the last may be a method it calls). A chain whose object is then used as a value
    (passed to a call, put in a container, compared; not stored into) ends in _USED. A local or cell assigned from a
    chain (`c = cfg`, `s = self.cfg.sub`) is an alias: a chain read from it is read from its source(s)."""
    found, aliases, chain, of_getattr, chain_any, read_by = set(), {}, None, False, False, False
    instructions = list(dis.get_instructions(code))
    for i, ins in enumerate(instructions):
        op = ins.opname
        if op == "LOAD_ATTR" and chain is not None:
            chain.append(ins.argval)
            continue
        if chain is not None and op == "BINARY_SUBSCR" and chain[-1].__class__ is _Key:
            continue  # (the item `cfg["lr"]` read: its key was appended at LOAD_CONST)
        if chain is not None and op == "LOAD_CONST" and _data(ins.argval) and _subscript(instructions, i):
            chain.append(_Key(ins.argval))
            continue
        if op == "LOAD_METHOD" and chain is not None:  # `obj.method(...)` (Python 3.11): the chain ends in a call
            chain.append(ins.argval)
        if chain is not None:
            key = (chain[0], chain[1], tuple(chain[2:]))
            if op in ("STORE_FAST", "STORE_DEREF") and (op == "STORE_FAST" or ins.argval in code.co_cellvars) \
                    and not chain_any:
                aliases.setdefault(ins.argval, set()).add(key)  # `c = cfg`: read where c is read
            else:
                used = op not in ("STORE_ATTR", "DELETE_ATTR", "LOAD_METHOD") and not (  # `obj.n += 1`: stored
                    op == "COPY" and instructions[i + 1].opname == "LOAD_ATTR")
                found.add(key[:2] + (key[2] + (_USED,),) if used else key)
                if op == "GET_ITER" or (op == "PRECALL" and read_by and len(chain) == 2) or _indexed(instructions, i):
                    found.add(key[:2] + (key[2] + (_SUBSCRIPT,),))  # `a[i]`, `a[:, 0]`, `for v in a`: items read
            if chain_any:  # the chain was getattr's object: `getattr(self.cfg, name)` reads any of its attributes
                found.add(key[:2] + (key[2] + (_ANY,),))
            chain = None
        if op == "LOAD_GLOBAL" and ins.argval in ("getattr", "hasattr"):
            of_getattr = True  # the next chain is getattr's object
            continue
        chain_any = False
        if op in _ROOTS:
            chain, chain_any = [_KIND[op], ins.argval], of_getattr
            read_by = _reader(instructions, i)
        if op != "PUSH_NULL":
            of_getattr = False
    if chain is not None:
        found.add((chain[0], chain[1], tuple(chain[2:])))
        if chain_any:
            found.add((chain[0], chain[1], tuple(chain[2:]) + (_ANY,)))
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            found |= _chains(const, False)
    params = code.co_varnames[:code.co_argcount + code.co_kwonlyargcount]
    return frozenset(_unalias(found, aliases, code.co_cellvars, params, top))


_USED = "<used>"  # at the end of a chain's path: the object is used as a value (see _chains)
_SUBSCRIPT = "<item>"  # at the end of a chain's path: an item of it is read with a computed key (see _chains)
_LOADS = ("LOAD_FAST", "LOAD_CONST", "LOAD_GLOBAL", "LOAD_DEREF", "LOAD_NAME")
_MAX_ALIASED = 256  # chains made by reading locals as their sources (`a = a.next` in a loop would not end)
_MAX_SUBSTITUTIONS = 8  # in a row for one chain


def _unalias(chains, aliases, cells, params, top):
    """The chains with each one rooted at an alias read from its source(s) instead (an alias of an alias too, at
    most _MAX_SUBSTITUTIONS in a row: `a = a.next` in a loop); a parameter assigned from a chain is read as itself
    too (`cfg = cfg.sub`: the argument, then its sub). Local roots that are not aliases are kept only in the top code
    (`self`, the compiled function's parameters)."""
    out, todo, made = set(), [(c, 0) for c in chains], 0
    while todo:
        (kind, name, path), n = todo.pop()
        sources = aliases.get(name) if kind == "fast" or (kind == "deref" and name in cells) else None
        if not sources or name in params:
            if kind != "fast" or top:
                out.add((kind, name, path))
        for src_kind, src_name, src_path in sources or ():
            made += 1
            if made <= _MAX_ALIASED and n < _MAX_SUBSTITUTIONS:
                todo.append(((src_kind, src_name, src_path + path), n + 1))
    return out


_READERS = frozenset(("float", "int", "bool", "complex", "iter", "next", "list", "tuple", "set", "frozenset", "dict",
                      "sum", "min", "max", "sorted", "any", "all", "enumerate", "zip", "map", "filter", "round", "str",
                      "repr", "format"))
_ARRAYS_AS_THEY_ARE = frozenset(("asarray", "asanyarray", "ascontiguousarray", "shape", "ndim", "size"))


def _reader(instructions, i):
    """Whether the name loaded at i is the one argument of a call that reads its values in Python: a builtin
    (`float(a)`, `list(a)`) or a NumPy or math function (`np.sum(a)`, `math.fsum(a)`; not `np.asarray(a)`)."""
    prev = instructions[i - 1] if i else None
    if prev is None:
        return False
    if prev.opname in ("LOAD_GLOBAL", "LOAD_NAME"):
        return prev.argval in _READERS
    return prev.opname in ("LOAD_ATTR", "LOAD_METHOD") and prev.argval not in _ARRAYS_AS_THEY_ARE and i > 1 and \
        instructions[i - 2].opname in ("LOAD_GLOBAL", "LOAD_NAME") and instructions[i - 2].argval in ("np", "numpy",
                                                                                                      "math")


def _indexed(instructions, i):
    """Whether the value a chain left on the stack, followed by the loads from i on, is the container of an item
    read (`a[i]`, `a[:1]`, `a[i, 0]`), not a part of the index (`x[a, 0]`)."""
    above = 0  # stack items above the chain's value
    for ins in instructions[i:]:
        if ins.opname in _LOADS:
            above += 1
        elif ins.opname in ("BUILD_SLICE", "BUILD_TUPLE"):
            if ins.arg > above:
                return False  # (the value is part of the index)
            above -= ins.arg - 1
        else:
            return ins.opname == "BINARY_SUBSCR" and above == 1
    return False


def _subscript(instructions, i):
    """Whether the constant loaded at i is the key of an item read: `cfg["lr"]`, or `cfg["n"] += 1` (COPY COPY)."""
    for ins in instructions[i + 1:i + 4]:
        if ins.opname == "BINARY_SUBSCR":
            return True
        if ins.opname != "COPY":
            return False
    return False


def _root_value(root, name):
    if root.__class__ is dict:  # a module's globals, a Module's children
        return root.get(name, _GONE)
    if isinstance(root, _Self):
        return root.obj
    try:
        return root.cell_contents
    except ValueError:  # not assigned yet
        return _GONE


def changed(constants):
    """The first recorded constant whose value is not the same now, as a message; None when all hold."""
    for root, name, path, value in constants:
        if value.__class__ is _Methods:
            reason = value.changed()
            if reason is not None:
                return reason
            continue
        now = root.get(name, _GONE) if root.__class__ is dict else root.obj if root.__class__ is _Self else \
            _root_value(root, name)
        for attr in path:
            now = _locate(now, attr)[0]
        if value.__class__ is _Contents:
            if not value.same(now):
                return f"the contents of '{_dotted(name, path)}', which the function reads whole, changed"
            continue
        if now is not value and not (_data(value) and _same(now, value)):
            kind = ("item" if path[-1].__class__ is _Key else "attribute") if path else "closure variable" \
                if isinstance(root, types.CellType) else "global" if "__name__" in root else "attribute"
            what = _dotted(name, path)
            if path[-1:] == (_NAMES,):
                return f"an attribute of '{what}', which the function reads with getattr, was added or removed"
            if now is _GONE:
                return f"the {kind} '{what}' the function reads is gone"
            if not _data(value):
                return f"the {kind} '{what}' the function reads is another {type(now).__name__} now"
            return f"the {kind} '{what}' the function reads was {value!r} when recorded and is {now!r} now"
    return None


_UNSEEN = object()  # an item that code would compute (see _item)
