"""Values read out of tensors into Python while a call is captured (`.item()`, `float(t)`, `bool(t)`): a `Read`
stands for the value; returned untouched it is each replay's own value, used in Python (arithmetic, formatting,
a comparison in an `if`) it becomes a guard, noted in its `ReadRecord`; kept by Python code anywhere but in the
call's result (appended to a list, stored in an attribute), it makes the call unreplayable (`kept_outside`)."""
import collections
import gc
import math
import numbers
import operator
import sys
import types

import numpy as np


class Read:
    """A value read out of a tensor during capture (`.item()`, `float(t)`): returned untouched, it is each call's
    own value at replay; used in any other way (arithmetic, comparison, formatting, conversion) it is guarded."""
    __slots__ = ("_value", "_index", "_capture")

    def __init__(self, value, index, capture):
        self._value, self._index, self._capture = value, index, capture

    def __tl_read__(self):
        self._capture.reads[self._index].used = True
        return self._value


def _reader(name):
    def method(self, *args):
        if args and isinstance(args[0], _tensor_class()):  # `s * x`: the Tensor's own operator takes the proxy
            return NotImplemented
        if name in _COMPUTABLE and self.__class__ in _READS:  # `loss.item() / len(x)`: each replay's own number
            out = _computed(self, name, args)
            if out is not None:
                return out
        value = self.__tl_read__()
        args = [a.__tl_read__() if isinstance(a, Read) else a for a in args]
        arith = _ARITHMETIC.get(name)
        if arith is None or len(args) > 1:
            builtin = _BUILTINS.get(name)  # (the builtin raises as it would on the value: range(2.5) a TypeError)
            out = builtin(value, *args) if builtin is not None else getattr(value, name)(*args)
            if name not in _ROUNDING:  # (float() and int() must return the plain type)
                return out
        else:
            fn, reflected = arith  # through `operator`, so int + float works as on the plain values
            out = fn(args[0], value) if reflected else fn(value, *args)
        cap = self._capture
        if out.__class__ in (int, float) and name not in _COMPARISONS and cap.active():
            return cap.derived(out, self._index)  # (`total += loss.item()`: where it goes is checked too)
        return out
    method.__name__ = name
    return method


# Python arithmetic and comparisons on a proxy: the operator, and whether the proxy is its right operand
_ARITHMETIC = {"__neg__": (operator.neg, False), "__pos__": (operator.pos, False), "__abs__": (operator.abs, False)}
for _op in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "divmod", "and", "or", "xor"):
    _fn = divmod if _op == "divmod" else getattr(operator, _op + ("_" if _op in ("and", "or") else ""))
    _ARITHMETIC[f"__{_op}__"], _ARITHMETIC[f"__r{_op}__"] = (_fn, False), (_fn, True)
_BUILTINS = {"__index__": operator.index, "__int__": int, "__float__": float, "__bool__": bool, "__hash__": hash,
             "__round__": round, "__trunc__": math.trunc, "__floor__": math.floor, "__ceil__": math.ceil,
             "__format__": format, "__str__": str, "__repr__": repr, "__invert__": operator.invert}
_ROUNDING = ("__round__", "__trunc__", "__floor__", "__ceil__")  # numbers computed from the value, like arithmetic
_COMPARISONS = ("__lt__", "__le__", "__gt__", "__ge__", "__eq__", "__ne__")
for _name in _COMPARISONS:  # an int read compared with a float, as the plain values compare
    _ARITHMETIC[_name] = (getattr(operator, _name.strip("_")), False)


# Arithmetic a replay computes from the call's own reads (a `Computed` read), so that a number computed from a read
# and returned (`loss.item() / len(x)`, `sum(losses)`, `round(acc.item(), 4)`) is each call's own, not a guard: the
# operations that cannot raise whatever the read's value (no read as a divisor; `round` with ndigits, not without,
# which raises on inf and nan; not `**`), with plain numbers or other reads, and an int result bounded (_MAX_BITS) so
# that no later mix with a float can overflow. What the result is then used for is guarded as a read's use is.
_COMPUTABLE = frozenset(("__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__", "__truediv__",
                         "__floordiv__", "__mod__", "__neg__", "__pos__", "__abs__", "__round__"))
_DIVISIONS = ("__truediv__", "__floordiv__", "__mod__")
_MAX_BITS = 1000  # an int computed from reads stays below 2**_MAX_BITS: a float conversion of it cannot overflow


class Computed:
    """The `ref` of a ReadRecord of kind 'computed': `fn(*operands)`, each operand a ReadRecord (that replay's
    value of it) or a plain number; `bits` bounds an int result's magnitude (None for a float)."""
    __slots__ = ("fn", "operands", "bits")

    def __init__(self, fn, operands, bits):
        self.fn, self.operands, self.bits = fn, operands, bits


def _bits(operand, cap):
    """A bound of an int operand's magnitude in bits (a tensor's int is at most 64), None for a float."""
    if isinstance(operand, Read):
        rec = cap.reads[operand._index]
        return rec.ref.bits if rec.kind == "computed" else (64 if isinstance(rec.value, int) else None)
    return abs(operand).bit_length() if isinstance(operand, int) else None


def _computed(self, name, args):
    """`self <name> args` as a Computed read (its proxy), or None when it must stay a guard (see _COMPUTABLE)."""
    cap = self._capture
    if not cap.active():
        return None
    if name == "__round__":
        if len(args) != 1 or args[0].__class__ is not int:
            return None
        operands, fn = (self, args[0]), round
    elif name in ("__neg__", "__pos__", "__abs__"):
        if args:
            return None
        operands, fn = (self,), _ARITHMETIC[name][0]
    else:
        if len(args) != 1:
            return None
        other = args[0]
        if other.__class__ not in (int, float, bool) and not (other.__class__ in _READS and other._capture is cap
                                                             and name not in _DIVISIONS):
            return None
        fn, reflected = _ARITHMETIC[name]
        operands = (other, self) if reflected else (self, other)
    try:
        value = fn(*[o._value if isinstance(o, Read) else o for o in operands])
    except Exception:  # noqa: BLE001  (the guarded path raises it, as the plain values do)
        return None
    if value.__class__ not in (int, float):
        return None
    bits = None
    if value.__class__ is int:
        sizes = [_bits(o, cap) for o in operands]
        sizes = [b if b is not None else 0 for b in sizes]
        bits = sum(sizes) if name in ("__mul__", "__rmul__") else max(sizes) + 1
        if bits > _MAX_BITS:
            return None
    return cap.computed(fn, operands, value, bits)


def _comparer(name):
    def method(self, other):
        if isinstance(other, Read) or not isinstance(other, (int, float, bool)):
            return _reader(name)(self, other)
        result = _ARITHMETIC[name][0](self._value, other)
        self._capture.comparison(self._index, name, other, bool(result))  # guarded by the outcome, not the value
        return result
    method.__name__ = name
    return method


for _name in ("__lt__", "__le__", "__gt__", "__ge__", "__eq__", "__ne__"):
    setattr(Read, _name, _comparer(_name))
for _name in ("__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__", "__truediv__", "__rtruediv__",
              "__floordiv__", "__rfloordiv__", "__mod__", "__rmod__", "__pow__", "__rpow__", "__neg__", "__pos__",
              "__abs__", "__bool__", "__float__",
              "__int__", "__index__", "__round__", "__trunc__", "__floor__", "__ceil__", "__format__", "__str__",
              "__repr__", "__hash__", "__divmod__", "__rdivmod__", "__and__", "__or__", "__xor__", "__invert__",
              "conjugate", "is_integer", "as_integer_ratio", "hex"):
    setattr(Read, _name, _reader(_name))


def _float(self):
    """float() of a read, or of a number computed from reads (`float(loss.item())`): the compiled function returning
    it untouched (`return float(loss.item())`) returns each call's own value, as for float() of a tensor
    (Observing.float_of); used in any other way it is guarded, as the other conversions."""
    cap = self._capture
    if self.__class__ is Read and self._value.__class__ is float and cap.active():
        return cap.float_of(self, sys._getframe(1))  # (builtin float() adds no frame: 1 is its caller's)
    return _plain_float(self)


def _int(self):
    """int() of an int read (`int(correct.sum().item())`): as _float, returned untouched it is each call's own value
    (Observing.int_of); otherwise guarded."""
    cap = self._capture
    if self.__class__ is IntRead and self._value.__class__ is int and cap.active():
        return cap.int_of(self, sys._getframe(1))
    return _plain_int(self)


_plain_float, _plain_int = Read.__float__, Read.__int__
Read.__float__, Read.__int__ = _float, _int


def __array__(self, dtype=None, copy=None):  # np.asarray(read): the value, used
    return np.asarray(self.__tl_read__(), dtype=dtype)


def _value_attribute(name):
    return property(lambda self: getattr(self.__tl_read__(), name))


Read.__array__ = __array__
for _name in ("real", "imag", "numerator", "denominator"):  # the numbers API, read (so guarded)
    setattr(Read, _name, _value_attribute(_name))
for _name in ("bit_length", "bit_count", "to_bytes", "fromhex"):
    setattr(Read, _name, _reader(_name))
# copy.copy/deepcopy of a float is that float: of a proxy, the proxy (a copy would be a second proxy the capture
# does not know, its use baked into the record); pickling writes the plain number (read, so guarded)
Read.__copy__ = lambda self: self
Read.__deepcopy__ = lambda self, memo: self
Read.__reduce__ = lambda self: (type(self._value), (self.__tl_read__(),))


class IntRead(Read):
    """A Read of an integer (`.item()` of an integer tensor)."""
    __slots__ = ()


class Arg(Read):
    """A numeric argument of a call compiled with `dynamic=True`, or a number computed from such arguments by
    Python arithmetic (`1 - beta`): a tensor operation that takes it as an operand (`x * scale`) reads each call's
    own value at replay; used in Python in any other way (a comparison, a shape, a conversion) it is guarded by
    value, as a Read is."""
    __slots__ = ("ref",)

    def __init__(self, value, index, capture, ref):
        super().__init__(value, index, capture)
        self.ref = ref


def _deriver(name):
    """Arithmetic of an Arg with plain ints and floats or other Args (`1 - beta`, `0.5 * t`): a new Arg for the
    result, which a replay computes from that call's numbers. A power stays a guard (int ** int is an int or a
    float, a negative float to a fractional power a complex: the type would depend on the values)."""
    fn, reflected = _ARITHMETIC[name]
    reader = _reader(name)

    def method(self, *args):
        cap = self._capture
        if args and isinstance(args[0], _tensor_class()):
            return NotImplemented
        if (args and not (args[0].__class__ in (int, float) or isinstance(args[0], Arg))) or not cap.active():
            return reader(self, *args)  # with anything else, or after the call: the value, guarded
        operands = (args[0], self) if reflected else (self, *args)
        return cap.number(fn, operands, fn(*[o._value if isinstance(o, Arg) else o for o in operands]))
    method.__name__ = name
    return method


for _name in ("__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__", "__truediv__", "__rtruediv__",
              "__floordiv__", "__rfloordiv__", "__mod__", "__rmod__", "__neg__", "__pos__", "__abs__"):
    setattr(Arg, _name, _deriver(_name))


class IntArg(Arg):
    """An Arg of an int."""
    __slots__ = ()


# The library checks numbers with the `numbers` ABCs (`isinstance(v, numbers.Real)`), so a proxy passes where its
# value would; whatever it then does with the value goes through the proxy's methods (a guard). A proxy is no
# float or int subclass on purpose: C code could read the number without telling it.
numbers.Real.register(Read)
numbers.Integral.register(IntRead)
numbers.Integral.register(IntArg)


class DerivedRead(Read):
    """A number computed in Python from guarded reads (`total + loss.item()`): its value is fixed by their guards,
    so it is no guard of its own; it is a proxy only so that `kept_outside` sees where it goes."""
    __slots__ = ()
    derived = True

    def __tl_read__(self):
        return self._value


class DerivedIntRead(DerivedRead):
    __slots__ = ()


for _name in _COMPARISONS:  # its comparisons are fixed by the guards of its reads
    setattr(DerivedRead, _name, _reader(_name))
numbers.Integral.register(DerivedIntRead)
Read.derived = False
_READS = (Read, IntRead)  # a read and a number computed from reads (not an Arg, not a DerivedRead)


# In messages the proxies are the numbers they stand for ("unsupported operand type(s) for //: 'Tensor' and 'int'")
Read.__name__ = Arg.__name__ = DerivedRead.__name__ = "float"
IntRead.__name__ = IntArg.__name__ = DerivedIntRead.__name__ = "int"


def proxy_class(value, kind="read"):
    """The proxy type for `value` ('read', 'arg' or 'derived'): its int or its real variant."""
    integral = isinstance(value, numbers.Integral)
    return {"read": (Read, IntRead), "arg": (Arg, IntArg), "derived": (DerivedRead, DerivedIntRead)}[kind][integral]


def _tensor_class():
    from ..tensor import Tensor
    return Tensor


class ReadRecord:
    __slots__ = ("ref", "kind", "value", "used", "site")

    def __init__(self, ref, kind, value, site):
        self.ref, self.kind, self.value, self.used, self.site = ref, kind, value, False, site

    def describe(self):
        """For messages: 'a value read with .item() at file:line', or 'argument 2 (a float)' (dynamic=True)."""
        if self.kind == "arg":
            return self.site
        if self.kind == "item":
            return f"a value read with .item() at {self.site}"
        if self.kind == "bool":
            return f"bool() of a tensor at {self.site}"
        if self.kind == "state":
            return f"the value {self.site}"
        if self.kind == "computed":
            first = next(o for o in self.ref.operands if isinstance(o, ReadRecord))
            return f"a number computed from {first.describe()}"
        return f"{self.kind}() of a tensor at {self.site} (a plain Python number, whose uses tl.compile cannot " \
               f"follow: a function that returns .item() instead replays)"


def read_value(arr, kind):
    """The Python value `kind` ('item', 'float', 'int', 'bool') of a one-element array, as eager reads it."""
    if kind == "arg" or kind == "computed" or kind == "state":  # a numeric argument (dynamic=True), a number
        return arr  # computed from reads, a number of a library object's state (hooks.live_numbers)
    v = arr.item()
    if kind == "float":
        return float(v)
    if kind == "int":
        return int(v)
    if kind == "bool":
        return bool(v)
    return v


def kept_outside(proxies, result):
    """The Read proxies of a finished call that Python code kept anywhere but in the call's result (a list the
    step appends to, an attribute, a global, a closure): a replay would not update them. Found by reference
    counts, so it costs nothing per reference held. Each such proxy held in a list or dict (e.g.
    `history.append(loss.item())`) is replaced there by its plain value: the caller's state is what eager puts there.
    Returns those proxies."""
    if not proxies:
        return []
    inner = {}  # id -> [object, references to it from the result's containers]
    _walk(result, inner)
    inner[id(result)][1] += 2  # the caller's variable and this function's argument
    for p in proxies:
        inner.setdefault(id(p), [p, 0])[1] += 1  # `proxies` holds each
    del p
    # beyond those: the [object, count] entry, the loop variable and getrefcount's argument
    held = {i for i, (o, n) in inner.items() if sys.getrefcount(o) - n > 3}
    out, stack = [], [(result, False)]
    while stack:  # a proxy inside a container held elsewhere is held too
        obj, outer = stack.pop()
        outer = outer or id(obj) in held
        if isinstance(obj, Read):
            outer and out.append(obj)
        elif isinstance(obj, (tuple, list, set, frozenset)):
            stack.extend((o, outer) for o in obj)
        elif isinstance(obj, dict):
            stack.extend((o, outer) for o in (*obj.keys(), *obj.values()))
    seen = {id(o) for o in out}
    out += [p for p in proxies if id(p) in held and id(p) not in seen]
    for p in out:
        _replace(p, p._value, (proxies, out))
    return out


def held_elsewhere(result, callers=1):
    """The ids of the containers (tuples, lists, dicts, sets) in a finished call's result that something besides the
    result references (a global, a closure variable, an attribute: a container from before the call, which eager
    returns as itself, so what the caller then does to it is done to that container). Found by reference counts,
    as kept_outside; `callers`: the references to `result` of the frames that passed it on (the caller's variable,
    each function's argument) before this function's argument."""
    inner = {}
    _walk(result, inner)
    inner[id(result)][1] += 1 + callers
    out = set()
    for key, (o, n) in inner.items():
        # beyond those: the [object, count] entry, the loop variable and getrefcount's argument
        if isinstance(o, (tuple, list, set, frozenset, dict)) and sys.getrefcount(o) - n > 3:
            out.add(key)
    return out


def _replace(old, new, skip, depth=0):
    """Put `new` where Python state holds `old`: in lists, deques, dicts (subclasses too), sets, instance
    attributes (a __dict__ or __slots__) and closure cells; a tuple holding it is rebuilt and replaced in turn
    (`history.append((step, loss.item()))`). (No comprehension here closes over `old`: that would put it in a cell
    of this very frame, which the cell case below would then rewrite.)"""
    for ref in gc.get_referrers(old):
        if ref is skip[0] or ref is skip[1]:
            continue
        if isinstance(ref, (list, collections.deque)):
            for i, o in enumerate(ref):
                if o is old:
                    ref[i] = new
        elif isinstance(ref, dict):
            _replace_in(ref, old, new)
        elif isinstance(ref, (set, frozenset)):
            if isinstance(ref, set):
                ref.discard(old)
                ref.add(new)
        elif isinstance(ref, types.CellType):
            ref.cell_contents = new
        elif isinstance(ref, tuple):
            if depth < 2:
                items = list(ref)
                for i, o in enumerate(items):
                    if o is old:
                        items[i] = new
                _replace(ref, type(ref)._make(items) if hasattr(ref, "_fields") else tuple(items), skip, depth + 1)
        else:
            attrs = getattr(ref, "__dict__", None)
            if attrs.__class__ is dict:
                _replace_in(attrs, old, new)
            for cls in type(ref).__mro__:
                slots = cls.__dict__.get("__slots__", ())
                for name in (slots,) if isinstance(slots, str) else slots:
                    if getattr(ref, name, None) is old:
                        setattr(ref, name, new)


def _replace_in(d, old, new):
    for k, v in list(d.items()):
        if v is old:
            d[k] = new


def _walk(obj, inner):
    """Count the references to each object from the containers (tuples, lists, sets, dicts: keys and values) of a
    result."""
    if id(obj) in inner:
        return
    inner[id(obj)] = [obj, 0]
    children = obj if isinstance(obj, (tuple, list, set, frozenset)) else \
        (*obj.keys(), *obj.values()) if isinstance(obj, dict) else ()
    for c in children:
        _walk(c, inner)
        inner[id(c)][1] += 1
