"""The Python constants a compiled function reads: the settings (plain values, NumPy scalars, tuples and frozensets of
them; by identity Enum members, tensors and arrays, an array by its values where the code reads them in Python:
`keep_values`) its code takes from its module's globals, from its closure, and from the data attributes of objects it
reaches from those or from `self` (`cfg.temperature`, `config.SCALE` of the user's own module, `self.cfg.scale`, a
class-level default `scale = 2.0`, an AttrDict's key), and the items read from dicts, lists and tuples among them with a
constant key (`cfg["lr"]`, `self.sizes[0]`) — its own code and that of the user's functions, methods (static and class
methods, properties, `super()`'s), partials, callable objects and Modules it reaches the same way, and of the user's
functions a library wrapper holds (`@tl.no_grad()`, `tl.func.grad(f)`, a nested tl.compile). A replay bakes them into
its kernels, so each is a guard, snapshotted before the recording call runs (a step that changes one itself, `global n;
n += 1`, then never replays a stale value); an attribute is looked up again from its root on every check, so rebinding
`cfg` is seen too; a parameter's default that is a container or an array (`def f(x, _seen=[])`), read where the call
leaves the parameter out (any call below the compiled function may; a nested function or lambda reading the
parameter too), is read as a global is, and so is a container or array a partial passes (`partial(f, cache=[])`);
which objects a function's defaults and a partial's keywords are is a guard (`f.__defaults__ = (0.5,)` between calls,
`p.keywords["scale"] = 2.0`); and the code reached (functions, Modules, each Module's children, an object whose method
runs) is guarded by identity. The scan runs no user code (no property, `__getattr__` or descriptor). When it hits its
limits it says so, and the call runs eagerly; so it does when a value it would guard is computed by a `__getattr__`,
`__getitem__`, `__missing__` or a user's descriptor's `__get__` (a functools.cached_property not yet cached is guarded
as absent, and its function scanned). Settings also include a Fraction or Decimal, a namedtuple's fields, an
array.array's or bytearray's items, a threading.local's attributes (the calling thread's). With `getattr(obj, name)`
every setting of obj, and the set of its attribute names, is a guard (the name may be computed). A container read whole
(iterated, sliced, tested with `in`, read with a computed key or a method, passed on) is one guard on all it holds
(`_Contents`), and each object in a list, tuple or dict (nested ones too) has its settings guarded as getattr's object
(`for g in groups: x * g.scale`). Other names for the same objects are followed too: a local assigned from a chain is
read as its source (`c = self.cfg; c.scale`, an alias of an alias, a cell a comprehension reads); the compiled
function's parameters bound to objects (a signature keys those by identity) are roots like globals; and a user's object
(or Module) the code passes on, returns or reads through `vars()` (`helper(cfg)`, `get_cfg().scale`), a partial's
argument, a parameter's default and an object argument inside a container have each attribute guarded that the scanned
code reads by name anywhere (every one, as getattr's object, when the code reads attributes by computed names: getattr,
vars, `__dict__`), the containers, code and user's objects among them the same way, two levels down (`c.sub.scale`), its
class guarded and the methods the code calls by those names, and the protocol methods Python calls for it (`float(obj)`,
unpacking), scanned with the object bound (`_Found.flush`; a user's module, a `__slots__` object and one read by
`operator.attrgetter` too): a counter the step only stores to (`t.steps += 1`) or the loop advances is no guard. The
methods called on objects and classes (a Module's forward, `self.helper()`, a class the step instantiates: its
constructor, `__call__`/forward and the methods the code calls by name, scanned with the class as `self`) are one guard
(`_Methods`): one replaced on its class, or set on the object, is seen. Code that draws random numbers in Python (a
function of random or numpy.random, a Random's or Generator's method, a partial of one, a Generator passed on or held by
an object passed on, a generator made without a seed) runs eagerly: a replay would repeat the recording call's draw (the
library's own random numbers replay with fresh draws); so does code that reaches an iterator whose position Python
cannot see (`next(it)`, `for v in it`, a generator, `itertools.count`: a replay would not advance it), that reads a
value that changes between calls (the clock, os.environ, sys.argv, a file object's read, a ContextVar) or writes output
(print, logging, sys.stdout.write, a file object's write: objects._outside_effect; a replay runs no Python); so does
code that reads a NumPy argument's values in Python (`float(a[0])`, `a.sum()`, `for v in a`, `np.mean(a)`: its shape is
a signature guard, tensor operations on it are recorded), in the compiled function or in a user's function it passes the
array to as an argument (`prep(a)`, `self.layer(x, a)`, a partial, a wrapped or nested function: bytecode._passes,
`arrays_passed`, `_targets`). Not followed: the library's own code (its settings are arguments; its wrappers are looked
through, and its objects, an optimizer, read theirs live: but one the user's code is passed, `adjust_lr(opt)`, has what
that code reads by name guarded as a user's object's, and a library method called on one guards its settings and
containers, unless a replay runs that method again, `opt.step()`, or reads its numbers again, `sched.get_last_lr()`:
constants_whole.library_method), the
standard library's, NumPy's and installed packages' modules, a local assigned from anything but a chain (a library
call's result, arithmetic) or from a parameter of a function other than the compiled one, and objects more than two
levels below one passed on. README says so. What code reads is found in its bytecode (bytecode.py); objects are looked
at without running their code (objects.py); what is read whole or passed on is guarded by constants_whole.py, and the
rows found are checked before each replay by constants_check.py (`changed`)."""
import builtins
import enum
import functools
import os
import types
import weakref

import numpy as np

from .bytecode import (_ANY, _BARE, _EACH, _IN_PLACE, _STORED, _SUBSCRIPT, _USED, REBOUND, STORED_ON_VALUE,
                       UNRESOLVED, _Increment, _Key, _chains, _passes, _read_names)
from .constants_check import _Self, _dotted, _root_value, changed  # noqa: F401 (changed: re-exported)
from .constants_whole import _CONSTRUCTION, _MAX_LEVELS, _WholeReads  # noqa: F401 (re-exported)
from .objects import (_ARRAY_METADATA, _CODE, _GENERATORS, _NAME_READERS, _UNSEEN, _Methods, _bind, _computes, _dict,
                      _function, _iterator, _library_object, _locate, _member, _objects, _outside_effect,
                      _passed_object, _random_draw, _unseeded, _user_class, _user_object, _user_path, _WHOLE,
                      module_class, mutable_defaults as _mutable_defaults)
from .values import (ArrayValues as _ArrayValues, GONE as _GONE, MAX_ITEMS as _MAX_ITEMS, MAX_NESTED as _MAX_NESTED,
                     TensorMeta as _TensorMeta, collection as _collection, contents as _contents, data as _data,
                     lookup as _lookup)

_MAX_DEPTH, _MAX_FUNCTIONS = 32, 4000  # calls followed from the compiled function; the user's functions read
_BUILTINS = vars(builtins)
_WEAK = (weakref.ref,) + weakref.ProxyTypes  # `CFG_REF().scale`, `proxy.scale`
_TENSOR_SETTABLE = frozenset(("grad", "data", "requires_grad"))  # (assigned on a tensor: the capture follows them)
_MAX_ARRAY_VALUES = 1 << 16  # elements of a NumPy array guarded by its values (a copy compared before each replay)


def python_constants(fn, args=()):
    """[(root, name, attribute path, value)] for each setting, tensor or piece of code read from a global, a closure
    cell, or a data attribute reached from one of those or from `self`, by `fn`'s code and the user code it reaches
    (see the module docstring); root is the globals dict, the cell or a _Self. A string instead when the scan stopped
    at a limit (the reason the call cannot be replayed safely)."""
    from ..tensor import Tensor
    found = _Found(Tensor)
    found.arguments, found.given = _bind(fn, *args, Tensor) if args else ({}, frozenset())
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
    if found.effect:
        kind, what = found.effect
        if kind == "value":
            return f"the function reads a value that changes between calls in Python ({what}): a replay would " \
                   f"repeat the recording call's value (read it outside and pass it in as an argument)"
        return f"the function writes output in Python ({what}): a replay runs no Python, so it would print or log " \
               f"nothing (print what the function returns, outside it)"
    if found.stores:
        return f"the function assigns an attribute of an object that outlives the call ({found.stores}): a replay " \
               f"runs no Python, so it would leave the value the recording call set (return the value and set it " \
               f"in the caller)"
    if found.advances:
        return f"the function advances an iterator in Python ({found.advances}): a replay would repeat the recording " \
               f"call's items (pass each item in as an argument)"
    if found.array_hidden:
        return f"the function passes a NumPy argument or default to code the scan cannot find without running it " \
               f"({found.array_hidden}: a call's result or an item is called, e.g. `type(self).f(a)`, " \
               f"`self.blocks[0](x, a)`), which may read its values in Python, where a replay would use the " \
               f"recording call's (pass a Tensor)"
    if found.array_read:
        return f"the function reads values of a NumPy argument or default in Python ({found.array_read}): a replay " \
               f"would use the recording call's and write none (pass a Tensor, or compute with tensor operations)"
    if found.methods.unreadable:
        return f"the function calls a method ({found.methods.unreadable}) of an object whose instance dict its class's " \
               f"`__dict__` attribute hides, so an attribute of that name set on the object later, which Python would " \
               f"call instead, could not be seen"
    if found.limit:
        return f"the scan of the Python values the function reads stopped: {found.limit}, so a change to one " \
               f"could not be seen"
    rows = _Rows(found.out + ([(None, "", (), found.methods)] if found.methods.entries else []))
    rows.counters = found.counters if found.counters.entries else None
    return rows


class _Rows(list):
    """python_constants' rows, and the counters the code moves (`counters`: a _Counters, or None)."""
    __slots__ = ("counters",)


class _Counters:
    """Attributes of objects that outlive the call which the code only moves by a constant (`self.steps += 1`): not
    guards (each call changes them), but a replay, which runs no Python, must move them as the eager call does. Each
    is snapshotted when the scan runs (before the recording call); `observe` then sees how many times the recording
    call moved it (none in a branch not taken, n in a loop of n), which the guards fix for every replay of that record,
    and `replay` repeats that."""
    __slots__ = ("entries", "times")

    def __init__(self):
        self.entries, self.times = {}, None  # (id(obj), attr) -> (obj, attr, how or None, value before the call)

    def add(self, obj, attr, how):
        key = (id(obj), attr)
        entry = self.entries.get(key)
        if entry is None:
            self.entries[key] = (obj, attr, how, _locate(obj, attr)[0])
        elif entry[2] != how:  # moved by two constants (`n += 1` here, `n += 2` there): how often each, unknown
            self.entries[key] = (obj, attr, None, entry[3])

    def observe(self):
        """After the recording call: how many times each counter moved; a reason (str) when it cannot be told (the
        value is not a plain number, or it changed otherwise)."""
        self.times = []
        for obj, attr, how, before in self.entries.values():
            if how is None:
                return f"the function moves the counter '{attr}' of {type(obj).__name__} by more than one constant"
            now = _locate(obj, attr)[0]
            if before.__class__ not in (int, float) or now.__class__ not in (int, float):
                return f"the counter '{attr}' of {type(obj).__name__} is not a plain number ({before!r}, then {now!r})"
            value, n = before, 0
            while value != now and n < _MAX_MOVES:
                value, n = how.apply(value), n + 1
            if value != now or value.__class__ is not now.__class__:
                return f"the counter '{attr}' of {type(obj).__name__} went from {before!r} to {now!r}, not by " \
                       f"{how.op} {how.const!r} steps"
            if n:
                self.times.append((obj, attr, how, n))
        return None

    def check(self):
        """Before a replay: None when each counter is still a plain number (else the reason: one set to None or a
        string between calls makes the eager call raise at its `+=`, before the step's later updates, where a replay
        would have run them all and raised after)."""
        for obj, attr, how, n in self.times:
            value = _locate(obj, attr)[0]
            if value.__class__ not in (int, float):
                return f"the counter '{attr}' of {type(obj).__name__} is not a plain number now ({value!r})"
        return None

    def replay(self):
        for obj, attr, how, n in self.times:
            value = getattr(obj, attr)
            for _ in range(n):
                value = how.apply(value)
            setattr(obj, attr, value)


_MAX_MOVES = 10_000  # (a counter moved more often by one call: eager)



class _Found(_WholeReads):
    """One scan's state: the constants found, the (function, instance) pairs and keys already seen, a _Self per
    instance, the user's functions read, and the limit hit (or None)."""

    def __init__(self, tensor):
        self.tensor, self.out, self.seen, self.done, self.selves = tensor, [], set(), set(), {}
        self.methods, self.arguments, self.draws, self.array_read = _Methods(), {}, None, None
        self.given = frozenset()  # the compiled function's parameters the call gives (the others take their default)
        self.array_hidden = None  # a NumPy argument passed to a callee that is no chain (bytecode.UNRESOLVED): where
        self.advances = None  # an iterator the code may advance (next(it), for v in it): where
        self.stores = None  # an attribute the code assigns on an object that outlives the call: where
        self.counters = _Counters()  # the attributes it only moves by a constant (`self.n += 1`)
        self.effect = None  # (kind, where): a call of the clock, os.environ, print, logging (_outside_effect)
        self.where = None  # the function whose code is being read (for the reason: its name and source line)
        self.passed, self.paths, self.dynamic = [], set(), False  # objects passed on; attribute paths code reads
        self.made = []  # (class the step instantiates, method name, function)
        self.arrays_seen = set()  # (code, parameter) a NumPy argument is passed to (array_reads)
        self.reads, self.limit = 0, None

    def call(self, value, depth):
        """Scan the code calling `value` runs: a function, a method, a partial, a Module (its forward, its children,
        each guarded by identity), a callable object (a library one: the function it wraps)."""
        target = value.func if isinstance(value, functools.partial) else value
        draw, effect = _random_draw(target, ()), _outside_effect(target, ())
        if draw is not None:  # `U = partial(random.uniform, 0.5, 1.5)`
            self.draw(draw)
            return
        if effect is not None:  # `now = time.perf_counter` held, `log = partial(print, "step")`
            self.outside(effect)
            return
        if isinstance(value, _NAME_READERS):  # `operator.attrgetter("scale")`: attributes by names it holds
            self.dynamic = True
        self.scan(*_function(value), depth)
        if not isinstance(value, _CODE) and not isinstance(value, type):  # a Module, a callable object: its method
            self.methods.add(value, "forward" if _lookup(type(value), "forward") is not _GONE else "__call__")
        if isinstance(value, functools.partial):
            for item in value.args + tuple(value.keywords.values()):
                self.bound(item, "a partial's argument", depth)
            self.keep_partial(value, depth)
        Module = module_class()
        if Module is not None and isinstance(value, Module):
            if id(value) not in self.seen:
                self.seen.add(id(value))
                children = value._modules  # (Module.__setattr__ keeps a child's name in it: one dict lookup)
                for key, m in children.items():
                    if m is not None:
                        self.keep(children, key, (), m)
                        self.call(m, depth)
                if _lookup(type(value), "__iter__") is not _GONE:  # Sequential, ModuleList, ModuleDict: iterated, by
                    self.keep_children(value, children)  # their forward or the caller: which children matters
        elif not isinstance(value, _CODE):
            wrapped = (_dict(value) or {}).get("__wrapped__")  # a nested tl.compile, a functools.wraps object
            if wrapped is not None:
                self.call(wrapped, depth + 1)

    def keep_children(self, module, children):
        """A container Module's children, all of them as one guard: one appended or removed changes the step."""
        snap = _contents(children, [_MAX_ITEMS, _MAX_NESTED])
        name = f"{type(module).__name__}._modules"
        if snap is None:
            self.limit = f"{name} holds more than {_MAX_ITEMS:,} modules to guard"
        else:
            self.keep({name: children}, name, (_WHOLE,), snap)

    def bound(self, value, what, depth):
        """An object bound to code once (a partial's argument, a parameter's default) and read through a parameter:
        its code is scanned and its settings kept, as an object the code is passed."""
        if _user_object(value, self.tensor):
            self.passed.append(((self.selves.setdefault(id(value), _Self(value)), what, ()), value))
        elif isinstance(value, _GENERATORS):
            self.draw(f"a {type(value).__name__} as {what}")
        elif _iterator(value):
            self.advance(f"{_iterator(value)} as {what}")
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
            if f.__defaults__ or f.__kwdefaults__:
                self.keep_defaults(f)
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

    def draw(self, what):
        self.draws = self.draws or what + self.place()

    def advance(self, what):
        self.advances = self.advances or what + self.place()

    def outside(self, effect):
        """A call a replay would not run (objects._outside_effect's (kind, name)); output is named first."""
        if self.effect is None or self.effect[0] == "value" and effect[0] == "output":
            self.effect = (effect[0], effect[1] + self.place())

    def place(self):
        """' in fn (file:line)' for the function being read, when there is one."""
        code = getattr(self.where, "__code__", None)
        return "" if code is None else \
            f" in {self.where.__qualname__} ({os.path.basename(code.co_filename)}:{code.co_firstlineno})"

    def keep_partial(self, p, depth):
        """Guard what a partial passes its function (read there as parameters, which the scan does not root): its
        keywords, each by identity or value (`p.keywords["scale"] = 2.0` changes the dict in place), and a list, dict,
        set or array among its arguments by contents, as a default's (`partial(f, cache=[])`, appended to by f)."""
        for items, what in ((p.args, "a partial's arguments"), (p.keywords, "a partial's keywords")):
            root = self.selves.setdefault(id(items), _Self(items))
            for key, item in (items.items() if isinstance(items, dict) else enumerate(items)):
                at = (root, what, (_Key(key),))
                if isinstance(items, dict):
                    self.keep(*at, item)
                if _collection(item):
                    self.keep_whole(at, item, depth)
                elif isinstance(item, np.ndarray):
                    self.keep_values(*at, item)

    def keep_defaults(self, f):
        """Guard which objects f's defaults are: `f.__defaults__` (a tuple, replaced whole) and each of
        `f.__kwdefaults__` (a dict, changed in place too). A call leaving a parameter out takes the default f holds
        then, and a replay has the recording call's baked in (`step.__defaults__ = (0.5,)` between calls)."""
        root = self.selves.setdefault(id(f), _Self(f))
        self.keep(root, f.__name__, ("__defaults__",), f.__defaults__)
        for key, value in (f.__kwdefaults__ or {}).items():
            self.keep(root, f.__name__, ("__kwdefaults__", _Key(key)), value)

    def read(self, f, code, inst, depth):
        self.where = f
        paths, dynamic = _read_names(code)
        self.paths |= paths
        self.dynamic = self.dynamic or dynamic
        params = code.co_varnames[:code.co_argcount + code.co_kwonlyargcount]
        module = f.__globals__
        cells = dict(zip(code.co_freevars, f.__closure__ or ()))
        self_name = code.co_varnames[0] if inst is not None and code.co_argcount else None
        me = self.selves.setdefault(id(inst), _Self(inst))
        defaults = {k: v for k, v in _mutable_defaults(f).items() if not (depth == 0 and k in self.given)}
        arrays = frozenset(n for n, v in defaults.items() if isinstance(v, np.ndarray))  # (`helper(w)` reading
        if depth == 0:  # `float(a[0])`: a default array's values read there are guarded nowhere; so is an argument's)
            arrays |= frozenset(n for n, v in self.arguments.items() if isinstance(v, np.ndarray))
        if arrays:
            self.arrays_passed(f, inst, arrays, depth)
        for root, name in [(module, n) for n in code.co_names if n in module] + [(c, n) for n, c in cells.items()]:
            value = _root_value(root, name)  # a global's or closure's array passed to the user's code (`helper(A)`)
            if isinstance(value, np.ndarray) and self.values_read_by_callees(f, inst, name, depth):
                self.keep_values(root, name, (), value)  # (guarded by its values, as if read here: `float(A[0])`)
        for kind, name, path in sorted(_chains(code), key=repr):
            if kind == STORED_ON_VALUE:
                self.where = f  # (following another chain may have read other code)
                self.stored_on_value(name, path, f, inst)
                continue
            if kind == REBOUND:  # (a replay would leave the value the recording call bound)
                self.where = f
                self.stores = self.stores or f"'{name}' rebound by `global` or `nonlocal`" + self.place()
                continue
            if kind != "global" and name == self_name:
                root = me
            elif kind == "deref" and name in cells:
                root = cells[name]
            elif kind == "global" and name in module:
                root = module
            elif kind == "global" and name in _BUILTINS:  # `print(...)`, `open(path)`: a builtin by its name
                effect = _outside_effect(name, ())
                if effect is not None:
                    self.outside(effect)
                continue
            elif kind in ("fast", "deref") and depth == 0 and name in self.arguments:  # a compiled fn's parameter
                value = self.arguments[name]
                if isinstance(value, np.ndarray):
                    if _values_read(path):  # `float(a[0])`, `a.sum()`; `a[0] = v` (written: not replayed either)
                        self.array_read = self.array_read or _array_use(name, path) + self.place()
                    continue
                root = self.selves.setdefault(id(value), _Self(value))
            elif kind in ("fast", "deref") and name in defaults:  # ('deref': a parameter a nested function reads)
                # `def f(x, _seen=[])`: a default the call leaves out (any call of a function below the compiled one
                # may) is an object that outlives the call, as a global is (`_seen.append(k)` read whole)
                root = self.selves.setdefault(id(defaults[name]), _Self(defaults[name]))
            else:  # a local variable; a parameter's reads through an alias (`c = t.cfg; c.scale`) are paths read
                if name in params:
                    self.paths.add(_attributes(path))
                continue
            self.follow(root, name, path, depth)

    def arrays_passed(self, f, inst, names, depth):
        """Follow the NumPy arguments f holds in its locals `names` into the user's functions f passes them to
        (`prep(a)`, `self.scale(x, a)`, `fn(a=a)`): values read there in Python are read all the same."""
        for callee, slot, name in _passes(f.__code__, names):
            target = (UNRESOLVED, None) if callee == UNRESOLVED else self.callee(f, inst, callee)
            if target[0] is UNRESOLVED:  # (the code it reaches cannot be found without running any: it may read them)
                where, self.where = self.where, f
                self.array_hidden = self.array_hidden or f"'{name}'" + self.place()
                self.where = where
                return
            for fn, bound, before in _targets(*target):
                param = _parameter(fn.__code__, slot, before)
                if param is not None and (fn.__code__, param) not in self.arrays_seen:
                    self.arrays_seen.add((fn.__code__, param))
                    self.array_reads(fn, bound, frozenset((param,)), depth + 1)

    def values_read_by_callees(self, f, inst, name, depth):
        """Whether the user's functions f passes the array its global or closure `name` holds to read its values in
        Python, or cannot be found (arrays_passed's test of an argument, run aside: here the answer is a guard)."""
        saved = self.array_read, self.array_hidden, set(self.arrays_seen), self.where
        self.array_read = self.array_hidden = None
        self.arrays_passed(f, inst, frozenset((name,)), depth)
        found = self.array_read is not None or self.array_hidden is not None
        self.array_read, self.array_hidden, self.arrays_seen, self.where = saved
        return found

    def array_reads(self, f, inst, names, depth):
        """Whether the user's function f reads values of the NumPy arrays its parameters `names` receive (as read
        does for the compiled function's own arguments), and where it passes them on."""
        code = f.__code__
        if depth > _MAX_DEPTH or not _user_path(code.co_filename) or self.array_read:
            return
        for kind, name, path in sorted(_chains(code), key=repr):
            if kind in ("fast", "deref") and name in names and _values_read(path):
                where, self.where = self.where, f
                self.array_read = _array_use(name, path) + self.place()
                self.where = where
                return
        self.arrays_passed(f, inst, names, depth)

    def callee(self, f, inst, chain):
        """(what `chain` (kind, name, attributes) loads in f's code, found without running code: a method's function
        and the object it is bound to, or the object and None; _GONE when not found), for _targets."""
        kind, name, path = chain
        if path[-1:] == (_EACH,):  # (a loop's variable: each item of the container, _targets says which)
            container = self.callee(f, inst, (kind, name, path[:-1]))[0]
            return (container if container is _GONE or container is UNRESOLVED else _Each(container)), None
        code = f.__code__
        cells = dict(zip(code.co_freevars, f.__closure__ or ()))
        if kind == "code":  # a function f's code makes (`def norm(b)` inside it): f's cells, its own ones empty
            closure = tuple(cells.get(n) or types.CellType() for n in name.co_freevars)
            return types.FunctionType(name, f.__globals__, name.co_name, None, closure), None
        if kind == "super":  # `super().prep`: the method after the class f is defined in, in the MRO of self's class
            klass = _root_value(cells["__class__"], "__class__") if "__class__" in cells else _GONE
            mro = () if inst is None else (inst if isinstance(inst, type) else type(inst)).__mro__
            for base in mro[mro.index(klass) + 1:] if klass in mro else ():
                if path[0] in base.__dict__:
                    return _member(base.__dict__[path[0]], inst)
            return _GONE, None
        if kind == "fast":
            if inst is None or not code.co_argcount or name != code.co_varnames[0]:
                return _GONE, None
            value = inst
        elif kind == "deref":
            value = _root_value(cells[name], name) if name in cells else _GONE
        else:
            value = f.__globals__.get(name, _GONE)
        if value is _GONE:
            return _GONE, None
        for step, attr in enumerate(path):
            owner = value
            value = _locate(owner, attr)[0]
            if value is _GONE:
                if step < len(path) - 1:
                    return _GONE, None
                entry = _lookup(owner if isinstance(owner, type) else type(owner), attr)
                if isinstance(entry, property) and not isinstance(owner, type):  # `obj.prep(a)`: prep's getter
                    return UNRESOLVED, None  # returns what is called, found only by running it
                return _member(entry, owner)
        return value, None

    def follow(self, root, name, path, depth):
        """Walk `name.path...` from root: keep the first setting, tensor or array; keep by identity and scan the
        code met on the way (a function, partial, Module or callable object), and a method's or property's code
        with the object it is bound to. `self.x` read from a dict (the instance's, a Module's parameters, buffers or
        children: `self` does not change) is guarded as that dict's key: one lookup per check."""
        if path[-1:] == (_SUBSCRIPT,):  # (only a NumPy array's items matter: an argument's, see read; others here)
            self.array_items(root, name, path[:-1])
            return
        if path and (path[-1] is _STORED or path[-1].__class__ is _Increment):  # `self.last = x`, `self.n += 1`
            self.assigned(root, name, path[:-2], path[-2], path[-1])
            return
        if path[-1:] == (_BARE,):  # (only a generator made without a seed matters)
            made = _unseeded(_root_value(root, name), path[:-1])
            if made:
                self.draw(f"a generator made without a seed, {made}")
            return
        used = path[-1:] == (_USED,)
        if used:
            path = path[:-1]
        value, at, held = _root_value(root, name), (root, name, ()), None
        for step in range(len(path) + 1):
            draw = _random_draw(value, path[step - 1 if step else 0:])  # (value: reached through path[:step - 1])
            if draw is not None:  # (a number drawn in Python would be the recording call's in every replay)
                self.draw(draw)
                return
            effect = _outside_effect(value, path[step - 1 if step else 0:])
            if effect is not None:  # (the clock read, a print: not run by a replay)
                self.outside(effect)
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
                        self.library_method(before, owner, f)
                        if _collection(owner) and not _user_path(f.__code__.co_filename):  # `counts.most_common()`
                            self.keep_whole(before, owner, depth)  # (a method of the standard library's: not read)
                        return
                    if step == len(path) and _collection(owner):  # `cfg.items()`, `log.append(v)`: read whole
                        self.keep_whole(before, owner, depth)
                        return
                    entry = None if attr.__class__ is _Key or isinstance(owner, (type, types.ModuleType)) else \
                        _lookup(type(owner), attr)
                    if isinstance(entry, functools.cached_property):  # not computed yet: the recording call caches
                        self.keep(*at, _GONE)  # it in the object's dict, read (and guarded) from the next record on
                        self.scan(entry.func, owner, depth + 1)  # (and what computes it: that record's variant is
                        return  # found again when the cache is cleared)
                    if entry is not None and _computes(_lookup(type(entry), "__get__")):
                        self.limit = (f"'{_dotted(name, path[:step])}' is computed by the descriptor "
                                      f"{type(entry).__name__}.__get__, code that the scan does not run")
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
            if isinstance(value, _WEAK):  # (a proxy forwards every slot: it would pass for an iterator)
                self.limit = (f"'{_dotted(name, path[:step])}' is a {type(value).__name__} (a weak reference), "
                              f"whose object the scan does not follow")
                return
            if _iterator(value):  # `next(it)`, `for v in it`: a replay would not advance it
                self.advance(f"'{_dotted(name, path[:step])}', {_iterator(value)}")
                return
            if isinstance(value, np.ndarray) and _values_read(path[step:]):  # `A.tolist()`, `float(A[0])`
                self.keep_values(*at, value)
                return
            if _data(value) or isinstance(value, (np.ndarray, self.tensor, enum.Enum)):
                self.keep(*at, value)
                return
            if callable(value) and not isinstance(value, type):
                self.keep(*at, value)
                self.call(value, depth + 1)
                if used and step == len(path) and _passed_object(value):  # `helper(self)` in a Module's forward
                    self.passed.append((at, value))
            elif value in _NAME_READERS:  # `_ag = operator.attrgetter; _ag("shift")(cfg)`
                self.dynamic = True
            elif isinstance(value, type) and _user_class(value):  # `Block(cfg)`: a class the step calls
                self.keep(*at, value)
                for klass in value.__mro__:  # the methods an instance made in the step runs, `self` the class:
                    for member, entry in (vars(klass).items() if _user_class(klass) else ()):  # (others by name: flush)
                        f, _ = _member(entry, value)
                        if f is not None:
                            self.made.append((value, member, f))
            elif step == len(path) and _collection(value):  # iterated, sliced, `in`, a computed key, passed on
                self.keep_whole(at, value, depth)
            elif used and step == len(path) and (_user_object(value, self.tensor) or  # `helper(cfg)`, `vars(cfg)`
                                                 _library_object(value, self.tensor)):  # `adjust_lr(opt, 0.9)`
                self.passed.append((at, value))
            elif used and step == len(path) and isinstance(value, _GENERATORS):  # `augment(x, self.rng)`
                self.draw(f"a {type(value).__name__} passed on")

    def assigned(self, root, name, path, attr, how):
        """The code assigns (or deletes) `attr` of the object at `name.path` (`how`: _STORED, or an _Increment for a
        counter moved by a constant): when that object outlives the call (it is reached from a global, a closure,
        `self` or an argument) and is not a Module (whose assignments are seen as they happen: the call runs eagerly)
        or a tensor (whose `.grad`/`.data` the capture follows), a replay, which runs no Python, would leave it as the
        recording call left it: a counter is moved by the replay as the recording call moved it (_Counters), any
        other assignment makes the call run eagerly."""
        value = _root_value(root, name)
        for a in path:
            value = type(value) if a == "__class__" else _locate(value, a)[0]  # (`self.__class__.count += 1`)
            if value is _GONE or value is _UNSEEN:
                return
        Module = module_class()
        if value is _GONE or isinstance(value, self.tensor) or (Module is not None and isinstance(value, Module)):
            return
        if isinstance(value, type) and not path and isinstance(root, _Self) and not self.of_class(value):
            return  # `self.x = v` in the constructor of a class the step instantiates (scanned with the class as self)
        if how.__class__ is _Increment:  # (the object by identity: a replay moves the counter of the recorded one)
            self.keep(root, name, path, value)
            self.counters.add(value, attr, how)
        else:
            what = f"setattr({_dotted(name, path)}, ...)" if attr is _ANY else f"'{_dotted(name, path + (attr,))}'"
            self.stores = self.stores or what + self.place()

    def stored_on_value(self, attr, origins=(), f=None, inst=None):
        """The code assigns (or deletes) `attr` of an object the scan cannot name without running code (a call's
        result, `self.get_stats().n += 1`; an item at a computed key; a local assigned from either; a loop's
        variable): that object may outlive the call, and a replay would leave it as the recording call did, so the
        call runs eagerly. Not for a tensor's `.grad`, `.data` and `.requires_grad`, which the capture follows, nor
        for a local whose every value (`origins`, bytecode._made_by) is new (a class called: `r = Metrics()`) or a
        Module (a loop over `model.modules()` or a list of Modules: their attributes are seen as they are
        assigned)."""
        if origins and all(self.fresh_or_module(origin, f, inst) for origin in origins):
            return
        if attr not in _TENSOR_SETTABLE:
            what = "an attribute set by setattr" if attr is _ANY else f"'.{attr}'"
            self.stores = self.stores or f"{what} of an object reached through a call's result, an item or a " \
                                         f"local variable, which may outlive the call" + self.place()

    def fresh_or_module(self, origin, f, inst):
        """Whether a value from `origin` (bytecode._made_by) is an object made by the call (a class called whose
        instances are made by type.__call__ and a __new__ in C, not one of the user's that may return an old
        object) or, for a loop's variable, each item is a Module
        (`for m in model.modules()`, `for b in self.blocks`)."""
        if f is None:
            return False
        kind, source = origin
        if kind == "call":
            value = self.callee(f, inst, source)[0]
            module = f.__globals__.get(source[1]) if source[0] == "global" and len(source[2]) == 1 else None
            if isinstance(module, types.ModuleType):  # `types.SimpleNamespace()`: a library module's class
                value = vars(module).get(source[2][0])
            return isinstance(value, type) and _lookup(type(value), "__call__") is type.__call__ and \
                isinstance(_lookup(value, "__new__"), types.BuiltinFunctionType)  # (a C type's: SimpleNamespace)
        Module = module_class()
        if Module is None:
            return False
        kind, source = source
        if kind == "call":  # `model.modules()`: a Module's own method that yields Modules
            value, bound = self.callee(f, inst, source)
            return isinstance(bound, Module) and source[2][-1:] in (("modules",), ("children",)) and \
                value is _lookup(Module, source[2][-1])
        items = _Each(self.callee(f, inst, source)[0]).items() if source is not None else []
        return bool(items) and all(isinstance(item, Module) for item in items)

    def of_class(self, klass):
        """Whether the code being read is a classmethod of klass (`cls.count += 1` stores on the class itself), not
        a method of a class the step instantiates, scanned with the class as `self` (its stores are on the new
        instance)."""
        entry = _lookup(klass, getattr(self.where, "__name__", ""))
        return isinstance(entry, classmethod) and entry.__func__ is self.where

    def array_items(self, root, name, path):
        """`A[i]`, `for v in A`, `A > 0` with A a NumPy array reached by `name.path` (a global, a closure's, an
        attribute): its values, read in Python, are guarded (keep_values); other objects' items are guarded where
        the chain is used (read whole)."""
        value = _root_value(root, name)
        for step, attr in enumerate(path):
            if isinstance(value, np.ndarray):
                break
            value = _locate(value, attr)[0]
            if value is _GONE or value is _UNSEEN:
                return
        else:
            step = len(path)
        if isinstance(value, np.ndarray):
            self.keep_values(root, name, path[:step], value)

    def keep_values(self, root, name, path, arr):
        """Guard a NumPy array the code reads values of in Python by those values (values.ArrayValues): a row of
        its own, in place of one that kept the array by identity."""
        if arr.size > _MAX_ARRAY_VALUES or arr.dtype.kind not in "biufc":
            self.limit = (f"'{_dotted(name, path)}' is a NumPy array ({arr.shape}, {arr.dtype}) whose values the "
                          f"code reads in Python, too large or of a kind to guard by value")
            return
        key = (id(root), name, path)
        self.out = [row for row in self.out if (id(row[0]), row[1], row[2]) != key]
        self.seen.add(key)
        self.out.append((root, name, path, _ArrayValues(arr)))

    def keep(self, root, name, path, value):
        key = (id(root), name, path)
        if key not in self.seen and (path or not isinstance(root, _Self)):
            self.seen.add(key)
            if isinstance(value, self.tensor):  # (its shape and dtype too: `len(W)`, then `W.data = ...`)
                value = _TensorMeta(value)
            self.out.append((root, name, path, value))


def _attributes(path):
    """The attribute names at the start of a chain's path (up to an item, a marker; getattr's _ANY kept)."""
    out = []
    for a in path:
        if a is _ANY or a.__class__ is not str or a in (_USED, _SUBSCRIPT, _STORED):
            if a is _ANY:
                out.append(a)
            break
        out.append(a)
    return tuple(out)


def _array_use(name, path):
    """How the code uses NumPy array `name` in Python, for the reason: `a.sum`, `'a[...]' assigned`."""
    last = path[-1] if path else None
    if last in ("__setitem__", "__delitem__"):  # (bytecode._written_by: `a[k] = v`, `del a[k]`, `a += b`)
        return f"'{name}[...]' {'assigned' if last == '__setitem__' else 'deleted'}"
    symbol = _IN_PLACE_SYMBOL.get(last)
    return f"'{name} {symbol} ...' in place" if symbol is not None else _dotted(name, path)


_IN_PLACE_SYMBOL = {method: symbol for symbol, method in _IN_PLACE.items()}


def _values_read(path):
    """Whether a chain from a NumPy array reads its values in Python (`a.sum()`, `a[0]`, `a > 0`, `for v in a`), not
    only its metadata (a signature guard) or the array itself (`tl.tensor(a)`: recorded)."""
    return bool(path) and path[0] not in _ARRAY_METADATA and path != (_USED,) and path[-1] is not _STORED and \
        path[-1].__class__ is not _Increment


def _parameter(code, slot, before):
    """The parameter of `code` an argument at position `slot` (after `before` positional ones the callee adds: a bound
    object, a partial's arguments) or of keyword `slot` is bound to; None when it goes to *args or **kwargs."""
    names = code.co_varnames[:code.co_argcount + code.co_kwonlyargcount]
    if isinstance(slot, str):
        return slot if slot in names[code.co_posonlyargcount:] else None
    index = slot + before
    return names[index] if index < code.co_argcount else None


def _targets(value, bound, before=0, depth=0):
    """[(function, the object it is bound to or None, positional arguments it receives before the call's)]: the
    user's code a call of `value` (found by callee; `bound` when a method's function) runs with the call's arguments:
    a function or method; a partial's function; the function a functools.wraps wrapper wraps (and the wrapper); a
    class's __init__; a Module's forward or a callable object's __call__. Found without running code."""
    if depth > 8 or value is _GONE or value is None:  # (a partial of a partial ...)
        return []
    if value.__class__ is _Each:  # `for block in self.blocks: block(x, a)`: each layer of a ModuleList, a list's
        items = value.items()
        return [t for item in items for t in _targets(item, None, before, depth + 1)]
    if bound is not None and isinstance(value, types.FunctionType):
        return [(value, bound, before + 1)]
    if isinstance(value, types.MethodType):
        return _targets(value.__func__, value.__self__, before, depth + 1)
    if isinstance(value, functools.partial):
        return _targets(value.func, None, before + len(value.args), depth + 1)
    if isinstance(value, types.FunctionType):
        wrapped = value.__dict__.get("__wrapped__")  # functools.wraps: `wrapper(*args, **kwargs)` calls it
        return [(value, None, before)] + ([] if wrapped is None else _targets(wrapped, None, before, depth + 1))
    if isinstance(value, type):
        call = _lookup(type(value), "__call__")  # (a metaclass's own __call__ runs instead of making an instance)
        if call is not type.__call__:
            return [(call, value, before + 1)] if isinstance(call, types.FunctionType) else []
        init = _lookup(value, "__init__")  # `Cls(a)`: the instance is not made, so self's calls are not followed
        return [(init, None, before + 1)] if isinstance(init, types.FunctionType) else []
    wrapped = (_dict(value) or {}).get("__wrapped__")  # (an lru_cache, a nested tl.compile)
    if wrapped is not None:
        return _targets(wrapped, None, before, depth + 1)
    fn, inst = _function(value)  # a Module: its forward; a callable object: its __call__
    return [(fn, inst, before + 1)] if isinstance(fn, types.FunctionType) and inst is value else []


class _Each:
    """The items a loop over `container` calls (callee of a loop variable): a container Module's children, a list's
    or tuple's items; no others (a dict iterates its keys, another class runs its own __iter__)."""
    __slots__ = ("container",)

    def __init__(self, container):
        self.container = container

    def items(self):
        c = self.container
        Module = module_class()
        if Module is not None and isinstance(c, Module) and _lookup(type(c), "__iter__") is not _GONE:
            return [m for m in c._modules.values() if m is not None][:_MAX_ITEMS]
        return list(c[:_MAX_ITEMS]) if c.__class__ in (list, tuple) else []
