"""What tl.compile's guards on Python values compare (constants.py finds the values): plain settings (`data`) and
their equality as a guard sees it (`same`), a class's entries read without running code (`lookup`), and snapshots of
the containers a step reads whole (`Contents`)."""
import collections

import numpy as np

from .record import same_value

PLAIN = (bool, int, float, complex, str, bytes, type(None))  # Python's plain values (tl.compile's too)
MAX_SETTINGS = 1_000_000  # items of a container of plain settings read whole (`for kind, c in self.ops`)
GONE = object()  # no such entry, attribute or item


def data(value):
    """Whether a value is guarded by type and value: a plain value, a NumPy scalar, a tuple or frozenset of them."""
    t = type(value)
    if t in PLAIN or isinstance(value, (np.number, np.bool_)):
        return True
    return (t is tuple or t is frozenset or (isinstance(value, tuple) and hasattr(t, "_fields"))) and \
        all(map(data, value))  # (a namedtuple of settings too: `CFG = Config(lr=0.1)`)


def same(a, b):
    """Two data values (`data`) are the same: of one type, and equal as a guard sees numbers (NaN-safe)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, tuple):
        return len(a) == len(b) and all(map(same, a, b))
    if type(a) is frozenset:
        return {(type(e), repr(e)) for e in a} == {(type(e), repr(e)) for e in b}
    return same_value(a, b)


def lookup(klass, name):
    """The entry `name` of the first class in klass's MRO that has one, or GONE (no descriptor is run)."""
    for k in klass.__mro__:
        d = k.__dict__
        if name in d:
            return d[name]
    return GONE


def container(value):
    """A list, set or tuple, or a dict whose items are dict's own (OrderedDict, defaultdict, an AttrDict)."""
    t = type(value)
    if t is list or t is set or t is tuple:
        return True
    return isinstance(value, dict) and lookup(t, "__getitem__") is dict.__getitem__ and \
        lookup(t, "__iter__") in (dict.__iter__, lookup(collections.OrderedDict, "__iter__"))


class Contents:
    """What a container read whole held when recorded: its type and items (`items_of`). A container of plain settings
    is compared with one `==` of its items and of their types (C loops: 2 us per 100 items); one that holds objects or
    containers item by item, objects by identity and containers as snapshots of their own (`nested`)."""
    __slots__ = ("kind", "items", "types", "nested")

    def __init__(self, obj, items, nested):
        self.kind, self.items, self.nested = type(obj), items, nested
        if type(items) is frozenset:  # a set: its members by identity (those kept alive by `items`)
            self.types = None if nested is None else frozenset(map(id, items))
        else:
            self.types = tuple(map(type, items))

    def leaves(self):
        for item, sub in zip(self.items, self.nested or (None,) * len(self.items)):
            if sub is None:
                yield item
            else:
                yield from sub.leaves()

    def same(self, obj):
        """Whether the container `obj` (as found now) holds the same items."""
        if type(obj) is not self.kind:
            return False
        items = items_of(obj)
        if len(items) != len(self.items):
            return False
        if type(items) is frozenset:
            return items == self.items if self.nested is None else frozenset(map(id, items)) == self.types
        if self.nested is None:
            return items == self.items and tuple(map(type, items)) == self.types
        for a, b, sub in zip(self.items, items, self.nested):
            if sub is not None:
                if not sub.same(b):
                    return False
            elif a is not b and not (data(a) and same(b, a)):
                return False
        return True


def items_of(obj):
    """A container's items as one tuple (a dict's keys, then its values), a set's as a frozenset."""
    if isinstance(obj, dict):
        return (*obj, *obj.values())
    return frozenset(obj) if type(obj) is set else tuple(obj)


def contents(obj, budget):
    """obj's Contents, or None when it holds more than MAX_SETTINGS plain settings, or more than budget[0] items in
    all that are objects or containers."""
    items = items_of(obj)
    if all(map(data, items)):
        return Contents(obj, items, None) if len(items) <= MAX_SETTINGS else None
    budget[0] -= len(items)
    if budget[0] < 0:
        return None
    nested = []
    for item in items:
        sub = None
        if container(item) and not data(item) and type(items) is not frozenset:
            sub = contents(item, budget)
            if sub is None:
                return None
        nested.append(sub)
    return Contents(obj, items, tuple(nested))
