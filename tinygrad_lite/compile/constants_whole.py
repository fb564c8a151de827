"""The constants scan's (constants.py) guards on what code reads as a whole rather than along a constant attribute
path: a container iterated, sliced, tested with `in` or read with a computed key (`keep_whole`, `keep_items`), an
object read with getattr and a computed name (`keep_all`, `every_name`), and an object passed on, returned or bound
to code (`flush`, `keep_read`, `names_at`), two levels down. A base class of the scan's state, `_Found`."""
import enum
import types

import numpy as np

from .bytecode import _ANY, _Key
from .constants_check import _dotted
from .objects import (_GENERATORS, _MAX_ATTRIBUTES, _NAMES, _PROTOCOL, _TYPE, _UNSEEN, _WHOLE, _attribute_names,
                      _computes, _iterator, _library_object, _locate, _member, _passed_object, _replayed,
                      _settings_object, _user_class, _user_object, _user_path, module_class)
from .values import (GONE as _GONE, MAX_ITEMS as _MAX_ITEMS, MAX_NESTED as _MAX_NESTED, collection as _collection,
                     container as _container, contents as _contents, data as _data, lookup as _lookup,
                     opaque as _opaque)

_MAX_LEVELS = 2  # of the user's objects held by one read whole (getattr's, passed on): `c.sub.scale` is guarded
_CONSTRUCTION = ("__new__", "__init__", "__post_init__", "__call__", "forward")  # (run by `Cls(...)(x)`)


class _WholeReads:
    """_Found's methods for objects read whole (see the module docstring); they call back into the scan (`call`,
    `scan`, `draw`, `keep`) and use its state (`paths`, `passed`, `made`, `dynamic`, `limit`)."""

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
        if snap.objects:
            self.keep_items(root, name, path, value, _MAX_NESTED)

    def keep_items(self, root, name, path, value, budget):
        """The settings of the objects in a container read whole, in its nested lists, tuples and dicts too (`for g
        in groups: x * g.scale`, `for grp in nested: for g in grp: ...`), as getattr's objects."""
        if not (type(value) in (list, tuple) or isinstance(value, dict)):  # (the ones _item reads)
            return budget
        for key, item in (value.items() if isinstance(value, dict) else enumerate(value)):
            if not _data(key):  # (a key a guard can look up again)
                continue
            if _settings_object(item, self.tensor):
                self.keep_all(root, name, path + (_Key(key),), item)
            elif _container(item) and budget > 0:
                budget = self.keep_items(root, name, path + (_Key(key),), item, budget - 1)
        return budget

    def keep_all(self, root, name, path, obj, levels=_MAX_LEVELS):
        """`getattr(obj, name)` with a name computed at run time, or an object in a container read whole: keep every
        setting obj reads as an attribute (its instance dict, its classes' data attributes, an AttrDict's keys), and
        those of the user's objects among them, `levels` deep."""
        names = self.every_name(root, name, path, obj, "with getattr")
        for key in names or ():
            value = _locate(obj, key)[0]
            if _data(value) or isinstance(value, (np.ndarray, self.tensor, enum.Enum)):
                self.keep(root, name, path + (key,), value)
            elif levels and _user_object(value, self.tensor) and not self.limit:
                self.keep_all(root, name, path + (key,), value, levels - 1)

    def flush(self):
        """Guard the objects the code passed on (`helper(cfg)`, returned, a partial's or default's object, an object
        argument in a container) with keep_read, and scan the methods of the classes the step instantiates that code
        calls by name. Done after the scan, so the attribute paths read are all known; again when the code it reaches
        reads more."""
        done, size, self.where = [], -1, None
        for _ in range(_MAX_LEVELS + 2):
            for klass, member, f in self.made:  # `Applier().apply(x)`: its constructor, call and the methods read
                if member in _CONSTRUCTION or member in self.names_at(()):
                    self.methods.add(klass, member)
                    self.scan(f, klass, 1)
            while self.passed and not self.limit:
                item = self.passed.pop()
                done.append(item)
                self.keep_read(*item[0], item[1], _MAX_LEVELS)
            if len(self.paths) == size or self.limit:
                return
            size = len(self.paths)
            self.passed, done = done, []

    def names_at(self, rel):
        """The attribute names code may read at `rel` below an object it is passed, from the paths read off locals,
        call results and items (`_read_names`): those read off it directly (`t.cfg`), and below it those read along
        the path too (`t.cfg.scale`: 'scale' at ('cfg',)) as well as those read off any local, which may hold the
        object met there (`s = t.cfg; s.scale`, a match capture, unpacking)."""
        n = len(rel)
        first = {p[0] for p in self.paths if p}
        return first if not n else first | {p[n] for p in self.paths if len(p) > n and p[:n] == rel}

    def keep_read(self, root, name, path, obj, levels, rel=()):
        """Guard obj, passed on: its class (its methods are scanned as its class has them), the attributes the code
        reads by name at this place below the object passed (all of them, and the set of their names, when it reads
        attributes by computed names), the methods Python calls for it (`float(obj)`, unpacking: its class's
        protocol methods), two levels down."""
        self.keep(root, name, path + (_TYPE,), type(obj))
        read_names = self.names_at(rel)
        names = sorted(k for k in read_names if k is not _ANY)
        if (self.dynamic or _ANY in read_names) and not isinstance(obj, types.ModuleType):
            every = self.every_name(root, name, path, obj, "by attribute names computed at run time")
            if every is None:
                return
            Module = module_class()
            if Module is not None and isinstance(obj, Module):  # (not a Module's own bookkeeping: `_child_names`)
                every = [k for k in every if not k.startswith("_")]
            names = sorted(set(names) | set(every))
        klass = None if isinstance(obj, (type, types.ModuleType)) else type(obj)
        protocol = _PROTOCOL if klass is not None and _user_class(klass) else ()
        for key in names + list(protocol):
            value = _locate(obj, key)[0]
            at = (root, name, path + (key,))
            read = key in read_names or key in protocol  # (else an attribute of getattr's object: its data only)
            if value is _GONE and klass is not None and read:  # a method of its class that code calls by this name
                f, inst = _member(_lookup(klass, key), obj)
                if f is not None:
                    self.keep(*at, _GONE)  # (one set on this object, or on another at this path, is called instead)
                    self.methods.add(obj, key)
                    self.scan(f, inst, 1)
                    self.library_method((root, name, path), obj, f)
                elif _computes(_lookup(klass, "__getattr__")):
                    self.limit = (f"'{_dotted(name, path + (key,))}' is read through {klass.__name__}.__getattr__, "
                                  f"code that the scan does not run")
                    return
            if value is _GONE or value is _UNSEEN or not (read or _data(value) or _container(value)
                                                          or isinstance(value, (np.ndarray, self.tensor))
                                                          or _user_object(value, self.tensor)):
                continue
            if _data(value) or isinstance(value, (np.ndarray, self.tensor, enum.Enum)):
                self.keep(*at, value)
            elif isinstance(value, _GENERATORS):  # `h.rng.normal()` in the code it is passed to
                self.draw(f"a {type(value).__name__} held by an object passed on")
            elif _iterator(value):  # `next(h.batches)` in the code it is passed to
                self.advance(f"{_iterator(value)} held by an object passed on")
            elif _collection(value):  # `c.opts["scale"]`, `c.ws[0]` in the code it is passed to
                self.keep_whole(at, value, 1)
            elif callable(value) and not isinstance(value, type):  # `t.model(x)`: its code
                self.keep(*at, value)
                self.call(value, 1)
                if levels and _passed_object(value):
                    self.keep_read(*at, value, levels - 1, rel + (key,))
            elif levels and (_user_object(value, self.tensor) or _library_object(value, self.tensor)):
                self.keep_read(*at, value, levels - 1, rel + (key,))
            else:  # (an object of the library's, an optimizer: by identity)
                self.keep(*at, value)

    def library_method(self, at, obj, f):
        """A method of the library's own code called on an object of the library's (`sched.get_last_lr()`): what it
        returns comes from the object's state, which its code (not scanned) reads; so the object's settings and
        containers are guards. Not for a method a replay runs again (an optimizer's step: hooks.replayable)."""
        if _user_path(f.__code__.co_filename) or _replayed(f) or not _library_object(obj, self.tensor):
            return
        root, name, path = at
        for key in self.every_name(root, name, path, obj, "by a method of the library's") or ():
            value = _locate(obj, key)[0]
            if _data(value) or isinstance(value, (np.ndarray, self.tensor, enum.Enum)):
                self.keep(root, name, path + (key,), value)
            elif _collection(value):
                self.keep_whole((root, name, path + (key,)), value, 1)

    def every_name(self, root, name, path, obj, how):
        """obj's attribute names, their set kept as a guard (one added later: getattr's default no more), or None,
        the limit set, past _MAX_ATTRIBUTES."""
        names = _attribute_names(obj)
        if len(names) > _MAX_ATTRIBUTES:
            self.limit = (f"'{_dotted(name, path)}' is read {how} and has more than {_MAX_ATTRIBUTES} attributes to "
                          f"guard")
            return None
        self.keep(root, name, path + (_NAMES,), frozenset(names))
        return names
