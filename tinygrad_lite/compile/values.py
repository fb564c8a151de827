"""What tl.compile's guards on Python values compare (constants.py finds the values): plain settings (`data`) and
their equality as a guard sees it (`same`), a class's entries read without running code (`lookup`), and snapshots of
the containers a step reads whole (`Contents`)."""
import array
import collections
import decimal
import fractions
import operator

import numpy as np

from .record import same_value

PLAIN = (bool, int, float, complex, str, bytes, type(None))  # Python's plain values (tl.compile's too)
MAX_ITEMS = 1_000_000  # items of containers read whole, nested ones included (`for kind, c in self.ops`)
MAX_NESTED = 4096  # containers inside a container read whole (each one checked on its own)
GONE = object()  # no such entry, attribute or item
_PLAIN = frozenset(PLAIN)
_EXACT = (fractions.Fraction, decimal.Decimal)


def data(value):
    """Whether a value is guarded by type and value: a plain value, a NumPy scalar, an exact number of the standard
    library (a Fraction, a Decimal: `x * float(RATIO)`), a tuple or frozenset of them."""
    t = type(value)
    if t in PLAIN or t is range or t in _EXACT or isinstance(value, (np.number, np.bool_)):
        return True
    return (t is tuple or t is frozenset or (isinstance(value, tuple) and hasattr(t, "_fields"))) and \
        all(map(data, value))  # (a namedtuple of settings too: `CFG = Config(lr=0.1)`)


def same(a, b):
    """Two data values (`data`) are the same: of one type, and equal as a guard sees numbers (NaN-safe)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (tuple, frozenset)):  # (a frozenset in iteration order, which a sum over it follows)
        return len(a) == len(b) and all(map(same, a, b))
    if type(a) in _EXACT:  # (by its digits: Decimal('-0') == Decimal('0'), but float() of them are not the same)
        return str(a) == str(b)
    return same_value(a, b)


def lookup(klass, name):
    """The entry `name` of the first class in klass's MRO that has one, or GONE (no descriptor is run)."""
    for k in klass.__mro__:
        d = k.__dict__
        if name in d:
            return d[name]
    return GONE


_SEQUENCES = (list, tuple, set, frozenset, collections.deque, array.array, bytearray)  # (items read in C)


def container(value):
    """Whether value is a container whose items a scan can read without running code: a list, tuple, set, frozenset,
    deque, array.array or bytearray (`x * BUF[0]`, `sum(BUF)`: its numbers), or a dict (OrderedDict, defaultdict, an
    AttrDict...), also of a subclass that keeps its base's iteration and lookup (a namedtuple). `opaque(value)` says
    which other ones are containers all the same."""
    t = type(value)
    if t in _SEQUENCES or t is dict:
        return True
    if isinstance(value, dict):
        return lookup(t, "__getitem__") is dict.__getitem__ and \
            lookup(t, "__iter__") in (dict.__iter__, lookup(collections.OrderedDict, "__iter__"))
    base = next((b for b in _SEQUENCES if isinstance(value, b)), None)
    return base is not None and lookup(t, "__iter__") is lookup(base, "__iter__") and \
        lookup(t, "__len__") is lookup(base, "__len__")


def collection(value):
    """A list, tuple, set, frozenset, deque or dict, of any class: `container` or `opaque`."""
    return isinstance(value, _SEQUENCES + (dict,))


def opaque(value):
    """A list, tuple, set, deque or dict of a class that iterates it with code of its own (not `container`)."""
    return collection(value) and not container(value)


class Contents:
    """What a container read whole held when recorded: its type and items (`items_of`: in iteration order, which the
    step's arithmetic may depend on), the containers among them as snapshots of their own (`nested`: (position,
    Contents)). It holds while each item is the same object (one C loop: ~3 us per 100 items) or, for plain settings,
    the same value and type (`same`: NaN matches NaN, -0.0 is not 0.0, 2 is not 2.0), and each nested container
    holds in turn. A nested tuple (or frozenset) of no mutable containers that is the same object holds as it is
    (`frozen`): a list of 5,000 (array, label) pairs costs one identity test per pair."""
    __slots__ = ("kind", "items", "nested", "objects", "mutable", "frozen")

    def __init__(self, obj, items, nested, objects):
        self.kind, self.items, self.nested = type(obj), items, nested
        self.objects = objects  # whether any item (nested ones included) is not a plain setting
        self.mutable = tuple((i, sub) for i, sub in nested if not sub.frozen)
        self.frozen = self.kind in (tuple, frozenset) and not self.mutable

    def leaves(self):
        inner = dict(self.nested)
        for i, item in enumerate(self.items):
            if i in inner:
                yield from inner[i].leaves()
            else:
                yield item

    def describe(self, dotted):
        return f"the contents of '{dotted}', which the function reads whole, changed"

    def same(self, obj):
        """Whether the container `obj` (as found now) holds the same items."""
        if type(obj) is not self.kind:
            return False
        items = items_of(obj)
        if len(items) != len(self.items):
            return False
        if all(map(operator.is_, items, self.items)):
            return all(sub.same(items[i]) for i, sub in self.mutable)  # (a frozen one, the same object, holds)
        for a, b in zip(self.items, items):
            if a is not b and not (data(a) and same(b, a)):  # (same: types first, no == on arrays or tensors)
                return False
        return all(sub.same(items[i]) for i, sub in self.nested)


class ArrayValues:
    """A NumPy array the function reads values of in Python (`float(A[0])`, `A.tolist()`, `for v in A`, `A > 0`),
    held by a global, a closure or an attribute: its values when recorded (a copy). It holds while the array found
    now has the same dtype, shape and values (NaN matching NaN): written in place or rebound to other values, the
    numbers Python computed from it are not the recorded ones."""
    __slots__ = ("values",)

    def __init__(self, arr):
        self.values = np.array(arr, copy=True)

    def same(self, now):
        v = self.values
        return isinstance(now, np.ndarray) and now.dtype == v.dtype and now.shape == v.shape and \
            np.array_equal(now, v, equal_nan=v.dtype.kind in "fc")

    def describe(self, dotted):
        return f"the values of the NumPy array '{dotted}', which the function reads in Python, changed"


class TensorMeta:
    """A tensor the function reads from a global, a closure or an attribute: held by identity, with its array's shape
    and dtype when recorded. Python code may read them (`len(W)`, `W.shape[0]`, `W.dtype`), and `W.data = ...` changes
    them on the same tensor; a tensor the step's operations use has them guarded there too, one only read in Python
    (`z[:len(W)]`) only here. guards._GuardCode.constant writes this test inline."""
    __slots__ = ("tensor", "shape", "dtype")

    def __init__(self, tensor):
        self.tensor, self.shape, self.dtype = tensor, tensor._data.shape, tensor._data.dtype

    def same(self, now):
        return now is self.tensor and now._data.shape == self.shape and now._data.dtype == self.dtype

    def describe(self, dotted):
        return f"the tensor '{dotted}' was rebound, or its data replaced by one of another shape or dtype"


SNAPSHOTS = (Contents, ArrayValues, TensorMeta)  # recorded values held by a `same(now)` test rather than by identity


def items_of(obj):
    """A container's items as one tuple, in iteration order (a dict's keys, then its values)."""
    if isinstance(obj, dict):
        return (*obj, *obj.values())
    return tuple(obj)


def contents(obj, budget):
    """obj's Contents, or None when the containers read whole hold more than budget[0] items in all, or more than
    budget[1] nested containers."""
    items = items_of(obj)
    budget[0] -= len(items)
    if budget[0] < 0:
        return None
    nested, objects = [], False
    for i, item in enumerate(items):
        cls = item.__class__  # (a plain value or a tuple of them tested first: W1's 500 (kind, constant) pairs)
        if cls in PLAIN or (cls is tuple and _PLAIN.issuperset(map(type, item))) or data(item):
            continue
        objects = True
        if container(item):
            sub = contents(item, budget)
            if sub is None:
                return None
            if not sub.frozen:  # (a frozen one costs an identity test: see Contents)
                budget[1] -= 1
                if budget[1] < 0:
                    return None
            nested.append((i, sub))
    return Contents(obj, items, tuple(nested), objects)
