"""How the constants scan (constants.py) looks at the user's objects without running their code: an attribute or item
as Python would read it as data (`_locate`), an object's instance dict and attribute names, the code a call runs
(`_function`), which objects, classes and modules are the user's, and which calls draw random numbers in Python."""
import argparse
import enum
import functools
import operator
import os
import random
import sys
import threading
import types

import numpy as np

from .bytecode import _Key
from .hooks import live_numbers as _live_numbers, replayable as _replayable
from .values import GONE as _GONE, collection as _collection, container as _container, data as _data, lookup as _lookup

_LOCAL = threading.local  # (_thread._local)
_MAX_ATTRIBUTES = 256  # of an object read with getattr (each one a guard)
_CODE = (types.FunctionType, types.MethodType, functools.partial)  # code, not settings: not followed
# a function's defaults, the one data of code a guard reads (`f.__defaults__ = (2.0,)` between calls: the calls
# leaving the parameter out take the new value)
_DEFAULTS = ("__defaults__", "__kwdefaults__")


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


_RANDOM_MODULES = ("random", "secrets", "numpy.random")
_GENERATORS = (random.Random, np.random.Generator, np.random.RandomState)
_SEEDING = frozenset(("default_rng", "seed", "getstate", "setstate", "get_state", "set_state", "SeedSequence"))


_UNSEEDED = frozenset(("default_rng", "RandomState", "Random", "SystemRandom"))


def _through_submodule(obj, path):
    """(obj, path) with a leading submodule of a module followed when an attribute comes after it (`np.random.rand`:
    (numpy.random, ('rand',))), for the two checks below."""
    if len(path) > 1 and isinstance(obj, types.ModuleType) and path[0].__class__ is str:
        entry = (_dict(obj) or {}).get(path[0])
        if isinstance(entry, types.ModuleType):
            return entry, path[1:]
    return obj, path


def _unseeded(obj, path):
    """'numpy.random.default_rng()' when the chain from obj through path, called without arguments, makes a random
    number generator seeded from the operating system's entropy (its draws differ on every call), else None."""
    if not path and callable(obj) and any(obj is getattr(m, n, None) for m in (np.random, random) for n in _UNSEEDED):
        return f"{getattr(obj, '__name__', obj)}()"
    obj, path = _through_submodule(obj, path)
    if not path or path[0].__class__ is not str or not isinstance(obj, types.ModuleType):
        return None
    name = (_dict(obj) or {}).get("__name__")
    return f"{name}.{path[0]}()" if name in _RANDOM_MODULES and path[0] in _UNSEEDED else None


def _random_draw(obj, path):
    """'random.uniform' when the chain from obj through path calls Python's or NumPy's random numbers (a function of
    random, secrets or numpy.random, a method of a Random, Generator or RandomState, one imported by name), else
    None."""
    if not path and isinstance(obj, (types.BuiltinMethodType, types.MethodType)) \
            and isinstance(obj.__self__, _GENERATORS):  # `from random import uniform`
        return obj.__qualname__
    obj, path = _through_submodule(obj, path)
    if not path or path[0].__class__ is not str:
        return None
    attr = path[0]
    if isinstance(obj, _GENERATORS):
        return f"{type(obj).__name__}.{attr}" if callable(_lookup(type(obj), attr)) else None
    if not isinstance(obj, types.ModuleType):
        return None
    d = _dict(obj) or {}
    entry = d.get(attr)
    if d.get("__name__") in _RANDOM_MODULES and callable(entry) and not isinstance(entry, type) \
            and attr not in _SEEDING:
        return f"{d['__name__']}.{attr}"
    return None


# What Python code may call that a replay would not run (it runs no Python): values that change from call to call
# (the clock, the environment, input, files, fresh identifiers), and output (printing, logging). Per module, the
# functions (or, for a class, "Class.method"); os.environ is read through its mapping's methods or items.
_VARYING = {
    "time": frozenset(("time", "time_ns", "perf_counter", "perf_counter_ns", "monotonic", "monotonic_ns",
                       "process_time", "process_time_ns", "thread_time", "thread_time_ns", "localtime", "gmtime",
                       "ctime", "asctime", "strftime")),
    "datetime": frozenset(("datetime.now", "datetime.utcnow", "datetime.today", "date.today")),
    "os": frozenset(("environ", "environb", "getenv", "getenvb", "urandom", "times", "getloadavg", "listdir",
                     "scandir", "stat", "getcwd")),
    "uuid": frozenset(("uuid1", "uuid4")),
    "builtins": frozenset(("input", "open")),
    "sys": frozenset(("stdin", "argv")),
    "_contextvars": frozenset(("ContextVar.get",)),  # (a ContextVar's value: set by the caller, per context)
    "_io": frozenset(("_TextIOBase.read", "_BufferedIOBase.read", "_RawIOBase.read", "_IOBase.readline",
                      "_IOBase.readlines")),  # a file object's methods
}
_OUTPUT = {
    "builtins": frozenset(("print", "breakpoint")),
    "logging": frozenset(("debug", "info", "warning", "warn", "error", "exception", "critical", "fatal", "log",
                          "Logger.debug", "Logger.info", "Logger.warning", "Logger.warn", "Logger.error",
                          "Logger.exception", "Logger.critical", "Logger.fatal", "Logger.log")),
    "sys": frozenset(("stdout", "stderr")),  # `sys.stdout.write(...)`
    "_io": frozenset(("_TextIOBase.write", "_BufferedIOBase.write", "_RawIOBase.write", "_IOBase.writelines")),
}


def _outside_effect(obj, path):
    """(kind, 'time.perf_counter') when the chain from obj through path reaches a function that reads a value that
    changes between calls (kind "value": the clock, os.environ, a file, input) or writes output (kind "output":
    print, logging), else None. Also a builtin by its name (obj a string: `print`), a function imported by name
    (`from time import perf_counter`), a class method (`datetime.now`) and the methods of a Logger (`log.info`), a
    file object (`f.write`, `sys.stdout.write`, `f.readline`) and a ContextVar (`var.get()`)."""
    if obj.__class__ is str:  # a builtin the code loads by name
        names = ("builtins", obj)
    elif isinstance(obj, (types.BuiltinFunctionType, types.FunctionType)) and not path:
        names = (getattr(obj, "__module__", None), getattr(obj, "__qualname__", ""))
    else:
        obj, path = _through_submodule(obj, path)
        attr = path[0] if path and path[0].__class__ is str else None
        if attr is None:
            return None
        if isinstance(obj, types.ModuleType):
            names = ((_dict(obj) or {}).get("__name__"), attr)
            if len(path) > 1 and path[1].__class__ is str and isinstance((_dict(obj) or {}).get(attr), type):
                names = (names[0], f"{attr}.{path[1]}")  # `datetime.datetime.now`
        elif isinstance(obj, type):
            names = (obj.__module__, f"{obj.__qualname__}.{attr}")  # `from datetime import datetime; datetime.now`
        else:  # a method of an object, by the classes of its MRO: a Logger's, a file's, a ContextVar's
            for klass in type(obj).__mro__:
                found = _effect_of((klass.__module__, f"{klass.__qualname__}.{attr}"))
                if found is not None:
                    return found
            return None
    return _effect_of(names)


def _effect_of(names):
    module, name = names
    for kind, table in (("value", _VARYING), ("output", _OUTPUT)):
        if name in table.get(module, ()):
            return kind, f"{module}.{name}" if module != "builtins" else name
    return None


def _iterator(obj):
    """'an iterator (itertools.count)' when obj is an iterator whose position Python code cannot see (a generator,
    a built-in or C iterator: `next(it)`, `for v in it`, `it.__next__()` advance it), else None. A user's class with
    its own `__next__` keeps its position in attributes, which are read (and guarded) like any other."""
    klass = type(obj)
    step = _lookup(klass, "__next__")
    if step is _GONE or isinstance(step, types.FunctionType) or isinstance(obj, type):
        return None
    name = klass.__name__ if klass.__module__ == "builtins" else f"{klass.__module__}.{klass.__qualname__}"
    return f"an iterator ({name})"


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


def _library_object(obj, tensor):
    """An object of one of the library's own classes whose settings the user's code may read or change once it has
    it (an optimizer's `param_groups`, a scheduler's `last_epoch`): not a Module (_passed_object), a tensor, code, a
    class or a module."""
    klass = type(obj)
    Module = module_class()
    return klass.__module__.startswith(_PACKAGE) and _dict(obj) is not None and not isinstance(
        obj, (_CODE, type, types.ModuleType, tensor)) and not (Module is not None and isinstance(obj, Module))


def _replayed(f):
    """Whether f is a library method a replay runs again as Python (hooks.replayable: an optimizer's step,
    zero_grad, a scheduler's step), which reads the object's state live, or whose numbers it reads again
    (hooks.live_numbers: a scheduler's get_last_lr)."""
    code = getattr(f, "__code__", None)
    return code is _REPLAYABLE_CODE or code is _LIVE_NUMBERS_CODE


_PACKAGE = __name__.rsplit(".", 2)[0] + "."
_NAME_READERS = (operator.attrgetter, operator.methodcaller)


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
        desc = _dict_descriptor(type(obj), type(obj).__mro__)
    except TypeError:  # a class its metaclass makes unhashable
        desc = _find_dict_descriptor(type(obj))
    if desc is None and isinstance(obj, _LOCAL):  # threading.local: the calling thread's attributes (C code)
        try:
            d = _LOCAL.__getattribute__(obj, "__dict__")
        except AttributeError:
            return None
    else:
        d = desc.__get__(obj, type(obj)) if desc is not None else None
    return d if type(d) is dict else None


def _find_dict_descriptor(klass):
    desc = _lookup(klass, "__dict__")
    return desc if type(desc) in (types.GetSetDescriptorType, types.MemberDescriptorType) else None


@functools.lru_cache(maxsize=1024)  # (a class is hashable, but see _dict)
def _dict_descriptor(klass, mro):
    """_find_dict_descriptor, cached by class and MRO (assigning a class's __bases__ changes where it is found)."""
    return _find_dict_descriptor(klass)


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
        if obj.__class__ is types.FunctionType and name in _DEFAULTS:  # (slots of C: no code runs)
            return getattr(obj, name), None
        return _GONE, None
    d, entry = _dict(obj), _lookup(type(obj), name)
    if isinstance(obj, tuple) and type(entry).__name__ == "_tuplegetter":  # a namedtuple's field, by its position
        fields = _lookup(type(obj), "_fields")
        if type(fields) is tuple and name in fields and fields.index(name) < len(obj):
            return tuple.__getitem__(obj, fields.index(name)), None
    if name == "__dict__" and d is not None and entry is _find_dict_descriptor(type(obj)):  # `cfg.__dict__["scale"]`
        return d, None
    if entry is not _GONE:
        kind = type(entry)
        if kind is types.FunctionType:  # a method (the common entry: no descriptor lookups), or what shadows it
            return (d[name], d) if d is not None and name in d else (_GONE, None)
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


_WHOLE = "<contents>"  # in an attribute path: the container's contents (a _Contents snapshot)
_NAMES = "<names>"  # in an attribute path: the names of the object's data attributes (getattr's object)
_TYPE = "<type>"  # in an attribute path: the object's class (of an object passed on: the methods scanned are its)
_PROTOCOL = ["__iter__", "__next__", "__len__", "__bool__", "__float__", "__int__", "__index__", "__complex__",
             "__getitem__", "__contains__", "__call__", "__array__", "__add__", "__radd__", "__sub__", "__rsub__",
             "__mul__", "__rmul__", "__truediv__", "__rtruediv__", "__matmul__", "__rmatmul__", "__pow__", "__rpow__",
             "__neg__", "__hash__"]  # (methods Python calls for an object; not comparisons: a dataclass's __eq__ reads
#                                         every field; those that change it, `obj[k] = v`, by their names: _read_names)


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
_UNSEEN = object()  # an item that code would compute (see _item)
_REPLAYABLE_CODE = _replayable(lambda self: None).__code__
_LIVE_NUMBERS_CODE = _live_numbers(lambda self: None).__code__
_ARRAY_METADATA = ("shape", "ndim", "dtype", "size", "nbytes", "itemsize", "strides")  # (a signature's guards)


def _bind(fn, args, kwargs, tensor):
    """({parameter name: argument} of the compiled function for the arguments its signature keys by identity (the
    user's objects and code, not tensors, arrays, numbers, strings or containers): its code's reads from them
    (`cfg.scale` with `cfg` a parameter) are guarded like those from a global; the names of all the parameters the
    call gives)."""
    f, inst = _function(fn)
    if not isinstance(f, types.FunctionType):
        return {}, frozenset()
    if isinstance(fn, functools.partial):
        args, kwargs = fn.args + tuple(args), {**fn.keywords, **kwargs}
    code = f.__code__
    positional = code.co_varnames[1 if inst is not None else 0:code.co_argcount]
    names = set(code.co_varnames[:code.co_argcount + code.co_kwonlyargcount])
    bound = dict(zip(positional, args))
    bound.update((k, v) for k, v in kwargs.items() if k in names)
    return {k: v for k, v in bound.items()  # (and the NumPy arrays: read() refuses their values read in Python)
            if not isinstance(v, (tensor, np.generic, tuple, list, dict)) and not _data(v)}, frozenset(bound)


def mutable_defaults(f):
    """{parameter name: default} of f's parameters whose default is a container or a NumPy array: an object made
    once, with the function, that every call leaving the parameter out shares (and may change: `_seen=[]`)."""
    code = f.__code__
    positional = code.co_varnames[:code.co_argcount]
    given = dict(zip(positional[len(positional) - len(f.__defaults__ or ()):], f.__defaults__ or ()))
    given.update(f.__kwdefaults__ or {})
    return {k: v for k, v in given.items() if _collection(v) or isinstance(v, np.ndarray)}


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
    __slots__ = ("entries", "keys", "unreadable")

    def __init__(self):
        self.entries, self.keys, self.unreadable = [], set(), None

    def add(self, obj, name):
        if (id(obj), name) not in self.keys:
            self.keys.add((id(obj), name))
            klass = obj if isinstance(obj, type) else type(obj)
            own = None if obj is klass else _dict(obj)  # (an instance attribute of that name would be called instead)
            if own is None and obj is not klass and klass.__dictoffset__ and self.unreadable is None:
                # its instances have a dict, which the class's own `__dict__` attribute (a property) hides: an
                # instance attribute set later would shadow the method unseen
                self.unreadable = f"{klass.__name__}.{name}"
            self.entries.append((obj, klass, name, _lookup(klass, name), own, own is not None and name in own))

    def changed(self):
        for obj, klass, name, entry, own, shadowed in self.entries:
            now = obj if obj is klass else type(obj)
            if (now is not klass or klass.__dict__.get(name) is not entry) and _lookup(now, name) is not entry:
                return f"the method {now.__name__}.{name} the function calls was replaced"  # (or the class changed)
            # (the instance's dict as it is now: `obj.__dict__ = {...}` replaces the one recorded in `own`)
            if own is not None and (name in (_dict(obj) or ())) != shadowed:
                return f"the method {now.__name__}.{name} the function calls was replaced on the object"
        return None
