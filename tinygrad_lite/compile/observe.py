"""The part of a Capture (capture.py) that watches the Python side of a recorded call, each a guard or a value of
each call's own: a tensor's `.grad` None-ness and a module's `.training` when the call first meets them, values read
out of tensors into Python (`loss.item()`: Read proxies, reads.py), numeric arguments under dynamic=True and the
arithmetic on them, and the comparisons and decisions Python makes with those values."""
import builtins
import inspect
import types

import numpy as np

from .bytecode import Nth, _instructions, only_returned, returned_call
from .reads import Arg, Computed, Read, ReadRecord, proxy_class, read_value
from .record import ARGGRAD, ARGOBJ, GRAD, SLOT, Converted, Op, Ref, _caller, user_site


class Observing:
    """Capture's methods for what Python sees of the call (see the module docstring); the state they use
    (`reads`, `proxies`, `leaves`, `modules`, ...) is set up by Capture.__init__."""

    def grad_cleared(self, t):
        """A replayed call sets `t.grad` to None here (zero_grad with set_to_none) before anything reads it: its
        None-ness at the start of the call is not a guard. (Not after a first look: then it stays one.)"""
        i = self.args.get(id(t))
        if id(t) not in self.leaves and i not in self.arg_grads:
            self.cleared.add(id(t))
            if i is None:
                self.keep.append(t)

    def observe_grad(self, t):
        """Note whether a tensor's `.grad` is None when the call first looks at it (before anything in the call
        changes it): a guard, since Python in the function may branch on it; for an argument, on that call's."""
        if id(t) in self.created or id(t) in self.leaves or id(t) in self.cleared:
            return
        i = self.args.get(id(t))
        if i is None:
            self.leaves[id(t)] = (t, t._grad is None)
            self.keep.append(t)
        else:
            self.arg_grads.setdefault(i, t._grad is None)

    def grad_read(self, t):
        """`t.grad` read in the call, of a tensor from before it whose gradient was set outside the call (a backward
        run eagerly, `p.grad = ...`): its array is read from `t.grad` at replay (as after a delivery), for a new
        gradient tensor replaces the old one between calls (zero_grad's set_to_none, then backward), and a replay
        that read the recorded tensor's array updated with the first call's gradient every time."""
        g = t._grad
        if g is None or self.suspended or id(t) in self.created or id(g._data) in self.known:
            return
        i = self.args.get(id(t))
        self._know(g._data, Ref(GRAD, t) if i is None else Ref(ARGGRAD, i))
        if i is None:
            self.keep.append(t)

    def observe_training(self, module):
        """Note a module's `.training` when the call first meets it (a guard: it selects what the layer does)."""
        if id(module) not in self.modules:
            self.modules[id(module)] = (module, module.training)
            self.keep.append(module)

    def training_set(self, module):
        """`module.train(mode)` sets the module's `.training` here before anything reads it (a replay runs it again):
        what it was when the call began is no guard, unless the call met the module before (None: not guarded)."""
        if id(module) not in self.modules:
            self.modules[id(module)] = (module, None)
            self.keep.append(module)

    def module_ran(self, module):
        self.observe_training(module)
        if module._forward_hooks or module._forward_pre_hooks or module.__dict__.get("_backward_hooks"):
            self.fail(f"module hooks on {type(module).__name__} (forward and backward hooks run Python that a replay "
                      f"skips)")

    # ---------------- values read into Python ----------------
    def comparison(self, index, name, other, result):
        """`read <op> number` came out `result`: a guard on that outcome (the branch), not on the read's value."""
        rec = self.reads[index]
        op = Op(name, (rec, other), result, _caller(2), False, "compare")
        if rec.kind != "arg":
            self.ops.append(op)
            return
        # a number argument (or one computed from them) is known where it is read: the guard goes there, before any
        # effect of the call (`if epoch < warmup:` after an optimizer step still replays)
        self.ops.insert(self._read_at(rec) + 1, op)

    def decision(self, fn, args, value):
        tmpl = self.template(tuple(args), getattr(fn, "__name__", "a decision"))
        self.ops.append(Op(fn, tmpl, value, _caller(2), False, "decision"))

    def argument(self, index, value):
        """Numeric argument `index` of a call compiled with dynamic=True: an Arg proxy (see reads.py)."""
        kind = "an int" if isinstance(value, int) else "a float"
        return self._arg_proxy(ReadRecord(Ref(ARGOBJ, index), "arg", value, f"argument {index} ({kind})"))

    def _arg_proxy(self, rec, at=None):
        """The Arg proxy of a number argument (or a number computed from them), read by a step of its own (at
        position `at` of the steps, or last)."""
        self.reads.append(rec)
        op = Op(None, rec, None, rec.site, False, "read")
        self.ops.append(op) if at is None else self.ops.insert(at, op)
        proxy = proxy_class(rec.value, "arg")(rec.value, len(self.reads) - 1, self, rec.ref)
        self.proxies.append(proxy)
        return proxy

    def number(self, fn, operands, value):
        """`value = fn(*operands)`, Python arithmetic on numeric arguments (dynamic=True): a step whose result, a
        number, a replay computes from that call's own arguments; returns the result's Arg proxy."""
        k = self.nslots
        self.nslots += 1
        # placed right after the reads of its operands, not where Python computed it: it depends on the call's
        # numbers alone, so its guards come before any effect of the call too (`if (step + 1) % accum == 0:` after
        # a backward, `if step % 10 == 0:` after an optimizer step still replay)
        recs = {id(self.reads[o._index]) for o in operands if isinstance(o, Arg)}
        at = next(i for i in range(len(self.ops) - 1, -1, -1) if self.ops[i].kind == "read" and id(self.ops[i].args)
                  in recs) + 1
        self.ops.insert(at, Op(fn, self.template(operands, "arithmetic on a numeric argument"), k, None, False,
                               "kernel"))
        first = next(o for o in operands if isinstance(o, Arg))
        return self._arg_proxy(ReadRecord(Ref(SLOT, k), "arg", value,
                                          f"a number computed from {self.reads[first._index].site}"), at + 1)

    def derived(self, value, index):
        """A number computed in Python from the guarded read `index` (see reads.DerivedRead)."""
        proxy = proxy_class(value, "derived")(value, index, self)
        self.proxies.append(proxy)
        return proxy

    def computed(self, fn, operands, value, bits):
        """`value = fn(*operands)`, Python arithmetic on reads (reads.Computed): a read of its own, which a replay
        computes from that call's reads; returns its proxy."""
        srcs = tuple(self.reads[o._index] if isinstance(o, Read) else o for o in operands)
        first = next(o for o in srcs if isinstance(o, ReadRecord))
        return self._read_proxy(ReadRecord(Computed(fn, srcs, bits), "computed", value, first.site), _caller(2))

    def state_read(self, get, value, what):
        """A number of a library object's state returned into Python (hooks.live_numbers): a Read proxy whose
        value a replay gets again with `get()` at this point of the call."""
        return self._read_proxy(ReadRecord(get, "state", value, f"{what} at {user_site(3)}"), _caller(2))

    def state_sizes(self, obj, sizes, what):
        """A guard checked before anything else at replay (a decision step placed first): `sizes(obj)` as it is
        now, what fixes the length of the list of numbers a live_numbers method returns (the record has one
        proxy per number)."""
        try:
            expected = sizes(obj)
        except Exception as exc:  # noqa: BLE001  (a subclass without the state it reads: eager)
            self.fail(f"{what}: the sizes of its numbers could not be read ({type(exc).__name__}: {exc})")
            return
        guard = _Sizes(obj, sizes, expected, f"{what} at {user_site(3)}")
        if not any(op.fn.__class__ is _Sizes and op.fn.obj is obj and op.fn.expected == expected for op in self.ops):
            self.ops.insert(0, Op(guard, (), True, _caller(2), False, "decision"))

    def read_slot(self, proxy):
        """Ref to the slot where a replay puts the number of Read `proxy` that a tensor operation takes as an operand
        (`lam * x` after `lam = t.item()`, `(1 - lam) * y`): each replay's operation takes that call's number, and
        the read stays no guard. The slot is written by a step placed right after the read's own, from what the read
        reads (the array then, before later steps reuse its buffer)."""
        return Ref(SLOT, self._slot_of(self.reads[proxy._index]))

    def _slot_of(self, rec):
        k = self.read_slots.get(id(rec))
        if k is not None:
            return k
        if rec.kind == "computed":
            fn, args = rec.ref.fn, tuple(Ref(SLOT, self._slot_of(o)) if o.__class__ is ReadRecord else o
                                         for o in rec.ref.operands)
        elif rec.kind == "state":
            fn, args = rec.ref, ()
        else:
            fn, args = _float if rec.kind == "float" else _item, (rec.ref,)
        k = self.read_slots[id(rec)] = self.nslots
        self.nslots += 1
        at = self._read_at(rec)
        self.ops.insert(at + 1, Op(fn, args, k, self.ops[at].where, False, "kernel"))
        return k

    def read(self, t, kind):
        """A value read out of tensor `t` into Python: a Read proxy (a bool is guarded at once)."""
        r = self.ref(t, f"reading a value with .{kind}()")
        value = read_value(t._data, kind)
        rec = ReadRecord(r, kind, value, user_site(3))
        if kind == "bool":
            rec.used = True
            self._note_read(rec, _caller(2))
            return value
        return self._read_proxy(rec, _caller(2))

    def float_of(self, proxy, frame):
        """float() of a tensor (`proxy`: its read; `frame`: the code that called float()): a plain number, which
        Python may use unseen, so a guard; unless the compiled function returns it untouched (bytecode.only_returned:
        `return float(loss)`, also in a tuple, list or dict it builds for the return; itself or through helpers that
        each return it so: _returned): then it is each call's own value, as a returned `.item()` (returned_values
        puts the proxy in its place)."""
        value = proxy._value
        if value.__class__ is float and self._returned(frame, "float") is not None:
            self.plain_returns.append((value, proxy))
            return value
        return proxy.__tl_read__()

    def int_of(self, proxy, frame):
        """int() of a tensor (see float_of): returned untouched, it is each call's own value too. CPython shares
        small ints, so the number is not found in the result by identity but at its place there, which the return's
        bytecode tells (`return int(correct)`, `return loss.item(), {"correct": int(correct)}`); where the result has
        another object there (a dict given a key twice) it is a guard."""
        value = proxy._value
        place = self._returned(frame, "int") if value.__class__ is int else None
        if place is None or place is False:
            return proxy.__tl_read__()
        self.placed_returns.append((place, value, proxy))
        return value

    def converted(self, t, value, how, frame):
        """`t.numpy()` or `t.tolist()` (`value`: what eager returns; `frame`: the code that called it): whether the
        compiled function itself returns it untouched (see float_of), so that each replay returns that call's array
        or list (a Converted in the result); otherwise the tensor's data escapes into Python. Not tolist()'s int or
        bool of a 0-d tensor: CPython shares small ints and True/False, so returned_values, which finds the value by
        identity, would also take an equal literal or another tolist()'s value of the result for it (an array, a list
        and a float are new objects)."""
        if value.__class__ not in (np.ndarray, list, float) or self._returned(frame, how) is None:
            return False
        if how == "tolist":  # the list holds the values at this point of the call, not at its end: a copy recorded
            t = self.kernel(np.copy, (t,), np.copy(t._data), "tolist()")  # here (`return w.tolist(), opt.step()`)
        self.plain_returns.append((value, Converted(t, how, value)))
        return True

    def _returned(self, frame, name):
        """The place in the call's result (bytecode.returned_call: keys from the result down, or False where a build
        does not tell it) of the value of float()/int() or of the method `name` called in `frame`, when that frame
        returns it untouched, and each frame between it and the compiled function's (`lambda x, y: step(x, y)`, where
        step returns float(loss)) returns the value of its running call untouched, a call of the function of the frame
        below (see _calls); else None."""
        place = only_returned(frame.f_code, frame.f_lasti, name)
        if place is None:
            return None
        caller = frame.f_back
        while caller is not self.call_frame:
            outer = None if caller is None else _calls(caller, frame)
            if outer is None:
                return None
            place = False if outer is False or place is False else outer + place
            frame, caller = caller, caller.f_back
        return place

    def returned_values(self, out):
        """The call's result `out` with each value of float_of and converted that it returns (found by identity)
        replaced by its read's proxy or its Converted; a number it does not hold (the call returned by another path)
        is a guard, an array or list the call fails."""
        plain, self.plain_returns = {id(v): (v, p) for v, p in self.plain_returns}, []
        placed, self.placed_returns = self.placed_returns, []
        if plain:
            found = set()
            out = _put(out, plain, found)
            for key, (_, stand_in) in plain.items():
                if key not in found:
                    if stand_in.__class__ is Converted:
                        self.fail(f"tensor data taken into Python with {stand_in.how}() and not returned as it is")
                    else:
                        stand_in.__tl_read__()
        for place, value, proxy in placed:  # (int_of's, at their places)
            new = _put_at(out, place, value, proxy)
            if new is None:  # (the call returned by another path)
                proxy.__tl_read__()
            else:
                out = new
        return out

    def _note_read(self, rec, where):
        """Note read `rec`, read by a step of its own, last (`where`: the user's line)."""
        self.reads.append(rec)
        self.ops.append(Op(None, rec, None, where, False, "read"))

    def _read_proxy(self, rec, where):
        """_note_read, and the Read proxy Python gets for it."""
        self._note_read(rec, where)
        proxy = proxy_class(rec.value)(rec.value, len(self.reads) - 1, self)
        self.proxies.append(proxy)
        return proxy

    def _read_at(self, rec):
        """The index of the step that reads `rec`."""
        ops = self.ops
        return next(i for i in range(len(ops) - 1, -1, -1) if ops[i].kind == "read" and ops[i].args is rec)


def _calls(caller, frame):
    """The place in what `caller` returns of the value of its running call (see Observing._returned), when it
    returns that value untouched (bytecode.returned_call) and that call is of the function running in `frame`: the
    callee, loaded by a name, is a function or method whose code is the frame's (read from the caller's variables),
    or a method of the frame's function name (`self.step(x)`). A call through other code (`max(map(step, xs))`:
    max's value) or through a wrapper without the code (a partial) is not: None."""
    found = returned_call(caller.f_code, caller.f_lasti)
    if found is None:
        return None
    load, place = found
    op, name = load.opname, load.argval
    if op in ("LOAD_METHOD", "LOAD_ATTR"):
        # (the method looked up again on its receiver: a method wrapped by C code that calls the function itself,
        # `@functools.lru_cache`, has no code of its own, and may return another value than the call it made: the
        # cache's, where a replay would return each call's own)
        obj = _receiver(caller, load)
        fn = _UNKNOWN if obj is _UNKNOWN else _static(obj, name, True)
        if fn is _UNKNOWN:
            return None
    elif op in ("LOAD_FAST", "LOAD_DEREF"):
        fn = caller.f_locals.get(name)
    elif op == "LOAD_GLOBAL":
        fn = caller.f_globals.get(name)
    elif op == "LOAD_NAME":  # (module or class body code: its namespace, then the globals)
        fn = caller.f_locals.get(name, caller.f_globals.get(name))
    else:
        return None
    if fn.__class__ is types.MethodType:  # (a bound method: the function it runs)
        fn = fn.__func__
    return place if fn.__class__ is types.FunctionType and fn.__code__ is frame.f_code else None


_UNKNOWN = object()


def _receiver(caller, load):
    """The object whose method instruction `load` (LOAD_METHOD) of `caller`'s code looks up: a variable, a global or
    a module's name, with attributes after it (`self.step`, `self.inner.step`, `utils.step`), or `super()` in a
    method; _UNKNOWN for another expression."""
    instructions = _instructions(caller.f_code)
    at = next((i for i, ins in enumerate(instructions) if ins.offset == load.offset), None)
    if at is None:
        return _UNKNOWN
    attrs = []
    i = at - 1
    while i >= 0 and instructions[i].opname == "LOAD_ATTR" and not instructions[i + 1].is_jump_target:
        attrs.append(instructions[i].argval)
        i -= 1
    if i < 0 or instructions[i + 1].is_jump_target:
        return _UNKNOWN
    ins = instructions[i]
    if ins.opname == "CALL" and ins.arg == 0 and not attrs and i >= 2 and \
            instructions[i - 1].opname == "PRECALL" and instructions[i - 2].opname == "LOAD_GLOBAL" and \
            instructions[i - 2].argval == "super" and not (instructions[i].is_jump_target or
                                                           instructions[i - 1].is_jump_target):
        code, local = caller.f_code, caller.f_locals
        klass = local.get("__class__")
        if caller.f_globals.get("super", builtins.super) is not builtins.super or not code.co_argcount or \
                not isinstance(klass, type):
            return _UNKNOWN
        try:
            return super(klass, local[code.co_varnames[0]])
        except Exception:  # noqa: BLE001  (super() of a bad pair: a TypeError, no user code)
            return _UNKNOWN
    if ins.opname in ("LOAD_FAST", "LOAD_DEREF"):
        obj = caller.f_locals.get(ins.argval, _UNKNOWN)
    elif ins.opname == "LOAD_GLOBAL" and not ins.arg & 1:
        obj = caller.f_globals.get(ins.argval, _UNKNOWN)
        if obj is _UNKNOWN:
            obj = getattr(builtins, ins.argval, _UNKNOWN)
    elif ins.opname == "LOAD_NAME":
        obj = caller.f_locals.get(ins.argval, caller.f_globals.get(ins.argval, _UNKNOWN))
    else:
        return _UNKNOWN
    for attr in reversed(attrs):
        if obj is _UNKNOWN:
            break
        obj = _static(obj, attr, False)
    return obj


def _static(obj, name, method):
    """`obj.name` found without running user code (the recording call is the eager call: a property or a
    `__getattr__` run again here could change what it does): an instance's own attribute, a module's, a Module's
    parameter, buffer or submodule, a class's plain attribute; with `method`, a function found on the class (a
    staticmethod's or classmethod's function; along super()'s MRO for a super object). _UNKNOWN for anything else
    (a property, a custom descriptor, a `__getattr__` of another class)."""
    from ..nn.module import Module
    if obj.__class__ is super:
        start, mro = obj.__thisclass__, type(obj.__self__).__mro__ if not isinstance(obj.__self__, type) else \
            obj.__self__.__mro__
        found = _UNKNOWN
        for klass in mro[mro.index(start) + 1:] if start in mro else ():
            if name in klass.__dict__:
                found = klass.__dict__[name]
                break
    else:
        try:
            found = inspect.getattr_static(obj, name)
        except AttributeError:
            found = _UNKNOWN
            if isinstance(obj, Module):  # (its parameters, buffers and submodules: Module.__getattr__'s dicts)
                for key in ("_parameters", "_buffers", "_modules"):
                    members = obj.__dict__.get(key)
                    if members is not None and name in members:
                        return members[name]
    if found.__class__ in (staticmethod, classmethod):
        return found.__func__
    if found.__class__ is types.FunctionType:
        return found if method else _UNKNOWN if _on_class(obj, name) else found
    if found is _UNKNOWN or hasattr(type(found), "__get__"):  # (a property, a descriptor: its value needs its code)
        return _UNKNOWN
    return found


def _on_class(obj, name):
    """Whether `obj.name` comes from its class (a function there is a method, bound on lookup), not the instance."""
    d = getattr(obj, "__dict__", None)
    return not (isinstance(d, dict) and name in d)


def _put_at(obj, place, value, stand_in):
    """`obj` with `value` at `place` (keys from obj down) replaced by `stand_in`, the plain tuples, lists and dicts
    on the way rebuilt; None when `value` itself is not there (another object, or a container of another type)."""
    if not place:
        return stand_in if obj is value else None
    key, rest = place[0], place[1:]
    cls = obj.__class__
    if cls is dict:
        if key.__class__ is not Nth or len(obj) != key.n:  # (a key given twice: the places moved)
            return None
        key = list(obj)[key.i]
        new = _put_at(obj[key], rest, value, stand_in)
        return None if new is None else {**obj, key: new}
    if (cls is tuple or cls is list) and key.__class__ is int and key < len(obj):
        new = _put_at(obj[key], rest, value, stand_in)
        if new is None:
            return None
        items = list(obj)
        items[key] = new
        return cls(items)
    return None


def _put(obj, plain, found):
    """Observing.returned_values' walk of the result: `obj` with each object in `plain` (id -> (object, stand-in))
    replaced by its stand-in, their ids added to `found`; a container that holds none of them is returned as itself.
    (Module-level: a recursive closure is a reference cycle, which would hold the proxies until the garbage collector
    runs, and reads.kept_outside counts references.)"""
    entry = plain.get(id(obj))
    if entry is not None and entry[0] is obj:
        found.add(id(obj))
        return entry[1]
    cls = obj.__class__  # (a container with nothing to replace is itself: one from outside the call stays that one)
    if cls is tuple or cls is list:
        items = [_put(o, plain, found) for o in obj]
        return obj if all(a is b for a, b in zip(items, obj)) else cls(items)
    if cls is dict:
        new = {k: _put(v, plain, found) for k, v in obj.items()}
        return obj if all(new[k] is v for k, v in obj.items()) else new
    return obj


def _item(arr):
    """`.item()`'s number (int() gives a plain number at once, guarded: never an operand's slot)."""
    return arr.item()


def _float(arr):
    """float()'s number, returned (Observing.float_of)."""
    return float(arr.item())


class _Sizes:
    """The decision step of Observing.state_sizes: whether `sizes(obj)` is still `expected`."""
    __slots__ = ("obj", "sizes", "expected", "guard_message")

    def __init__(self, obj, sizes, expected, what):
        self.obj, self.sizes, self.expected = obj, sizes, expected
        self.guard_message = f"the number of values {what} returns may differ (its sizes were {expected!r} when " \
                             f"recorded)"

    def __call__(self):
        try:
            return self.sizes(self.obj) == self.expected
        except Exception:  # noqa: BLE001  (checked again by the eager call, which raises as it does)
            return False

