"""A recorded variant (`Variant`) and its guards beyond the argument signature: the Python constants the function reads
(constants.py's rows), modules' modes, hooks, settings and parameters, the metadata of the tensors it uses from
outside, and which gradients are None. They are checked before every replay: walked record by record (`walk`) for a
variant's first INTERPRETED_REPLAYS replays, then by one straight-line function written for the variant (`check`,
with signature.matcher's test of the arguments): right after a step the objects a guard reads are out of the caches,
and in W2's loop the walk and the argument key cost ~100-150 us of a ~2.5 ms step, the generated tests ~35-75. Each
line is an identity test where one decides; when it does not, the exact test of constants_check (or the same
expression the walk evaluates) decides and names what changed."""
import functools
import types

import numpy as np

from .constants_check import _Self, _root_value, changed
from .objects import _Methods, _dict, _find_dict_descriptor, _locate
from .plan import INTERPRETED_REPLAYS
from .signature import arg_layout, matcher
from .. import dtypes
from ..autograd.grad_mode import state
from .values import GONE, SNAPSHOTS, TensorMeta, data, lookup, same

_MISSING = object()

_SETTINGS = (bool, int, float, str, type(None), types.FunctionType, types.BuiltinFunctionType, functools.partial,
             np.generic)  # (a NumPy scalar, `Dropout(np.float32(0.3))`: not a float, and baked in as one is)


def _setting_value(v):
    """Whether v is a plain setting: one of _SETTINGS, or a tuple of them (Conv2d's stride/padding/dilation,
    AdaptiveAvgPool2d's output_size, LayerNorm's normalized_shape are tuples: a replay bakes them in as it does an
    int, and `conv.stride = (2, 2)` between calls replayed the recorded stride)."""
    if isinstance(v, _SETTINGS):
        return True
    return isinstance(v, tuple) and all(_setting_value(x) for x in v)


def _settings(module):
    """A module's plain settings (Dropout.p, BatchNorm.momentum/eps, Conv2d.stride, ...) and the functions it holds
    (a Transformer layer's activation, compared by identity): a replay uses their recorded values."""
    return {k: v for k, v in vars(module).items() if k != "training" and _setting_value(v)}


class Variant:
    """One recorded signature: its guards and its plan (or the reason it runs eagerly)."""
    __slots__ = ("key", "plan", "reason", "modules", "live", "leaves", "live_meta", "params", "buffers", "attrs",
                 "arg_grads", "constants", "_check", "match", "checks", "moved", "itself")

    def __init__(self, key, plan, reason, constants=()):
        self.key, self.plan, self.reason, self.constants = key, plan, reason, constants
        self._check, self.match, self.checks = None, None, 0  # (match: signature.matcher's, made with _check)
        self.moved = None  # why a call whose guards hold runs eagerly: its recording changed a value it reads
        self.itself = None  # (root, name, path, object) of each returned container from outside (compile._origins)
        if plan is not None:
            self.modules = plan.modules
            self.live = plan.live
            self.live_meta = [(t.requires_grad, t._data.shape, t._data.dtype, bool(t._hooks), arg_layout(t._data))
                              for t in plan.live]  # (the layout as an argument's: see signature.arg_layout)
            self.leaves = plan.leaves
            self.arg_grads = plan.arg_grads
            self.params = [(m, name, p) for m, _ in plan.modules for name, p in m._parameters.items()]
            # (a buffer rebound between calls, `bn.running_mean = tl.zeros(n)`: the replay read and updated the
            # recorded tensor, which the module no longer holds)
            self.buffers = [(m, name, b) for m, _ in plan.modules for name, b in m._buffers.items()]
            self.attrs = [(m, tuple(_settings(m).items())) for m, _ in plan.modules]

    def holds(self, leaves):
        """None when every guard holds for a call with argument leaves `leaves`, else what changed: walked over
        the variant's records for its first INTERPRETED_REPLAYS replays (as the plan runs them step by step:
        Python's compiler takes ~22 us per generated line, W2's 118 lines cost a capture more than an eager step),
        by the generated function after (and the call's arguments by a generated matcher: signature.matcher)."""
        if self._check is None:
            self.checks += 1
            if self.checks <= INTERPRETED_REPLAYS:
                return self.walk(leaves)
            self.generated()
            self.match = matcher(self.key, state, dtypes)
        return self._check(leaves)

    def generated(self):
        """The guards as one generated function check(leaves) (made once)."""
        if self._check is None:
            self._check = _GuardCode(self).build()
        return self._check

    def walk(self, leaves):
        """The guards checked one record after another (the generated function's answer, reason included)."""
        if self.constants:
            reason = changed(self.constants)
            if reason is not None:
                return reason
        for m, training in self.modules:
            if training is not None and m.training != training:  # (None: the call sets it first, Module.train)
                return _training(m)
            if m._forward_hooks or m._forward_pre_hooks or m.__dict__.get("_backward_hooks"):
                return _hooked(m)
        for m, settings in self.attrs:  # the recorded values only: a setting added later was not read
            d = m.__dict__
            for k, v in settings:
                now = d.get(k, _MISSING)
                if now is not v and now != v:
                    return _setting(m, k)
        for m, name, p in self.params:
            if m._parameters.get(name) is not p:
                return _replaced(m, name)
        for m, name, b in self.buffers:
            if m._buffers.get(name, _MISSING) is not b:
                return _buffer_replaced(m, name)
        for t, (rg, shape, dtype, hooked, layout) in zip(self.live, self.live_meta):
            arr = t._data
            if t.requires_grad != rg or arr.shape != shape or arr.dtype != dtype or bool(t._hooks) != hooked:
                return _tensor(arr, t)
            if arg_layout(arr) != layout:
                return _layout(arr)
        for t, was_none in self.leaves:
            if (t._grad is None) != was_none:
                return _NONE_CHANGED
        for i, was_none in self.arg_grads:
            if (leaves[i]._grad is None) != was_none:
                return _NONE_CHANGED + " (of an argument)"
        return None


# The messages of failed guards (made only then).
def _training(m):
    return f"{type(m).__name__}.training changed to {m.training}"


def _hooked(m):  # (a module with hooks did not record: added since)
    return f"a forward or backward hook was added to {type(m).__name__}"


def _setting(m, k):
    return f"{type(m).__name__}.{k} changed (a layer setting read when the call was recorded)"


def _replaced(m, name):
    return f"parameter '{name}' of {type(m).__name__} was replaced"


def _buffer_replaced(m, name):
    return f"buffer '{name}' of {type(m).__name__} was replaced"


def _tensor(arr, t):
    return f"a tensor the function uses changed (shape {arr.shape}, dtype {arr.dtype}, requires_grad {t.requires_grad})"


def _layout(arr):
    return f"the memory layout of a tensor the function uses changed (shape {arr.shape})"


_NONE_CHANGED = "which gradients are None changed"


class _GuardCode:
    """Writes a variant's guards as the body of `check(leaves)`, in the order they are named when several fail:
    constants, modules' modes and hooks, their settings, parameters, live tensors, gradients that are None."""

    def __init__(self, variant):
        self.v, self.lines, self.names, self.found, self.proxies, self.getters = variant, [], {}, {}, {}, {}
        self.ns = {"GONE": GONE, "MISSING": _MISSING, "changed": changed, "lookup": lookup, "locate": _locate,
                   "dict_of": _dict, "root_value": _root_value, "same": same, "arg_layout": arg_layout,
                   "_training": _training, "_hooked": _hooked, "_setting": _setting, "_replaced": _replaced,
                   "_buffer_replaced": _buffer_replaced,
                   "_tensor": _tensor, "_layout": _layout, "NONE_CHANGED": _NONE_CHANGED}

    def name(self, obj, prefix="c"):
        """The name the code reads `obj` by (one per object)."""
        key = self.names.get(id(obj))
        if key is None:
            key = self.names[id(obj)] = f"{prefix}{len(self.ns)}"
            self.ns[key] = obj
        return key

    def add(self, condition, reason):
        self.lines.append(f"if {condition}: return {reason}")

    def build(self):
        v = self.v
        for row in v.constants or ():
            self.constant(row)
        for m, training in v.modules:
            m_ = self.name(m, "m")
            # (recorded values are read from the namespace, not written as their repr: np.True_ is not a name here)
            if training is not None:  # (None: the call sets it before reading it, Module.train)
                self.add(f"{m_}.training != {self.name(training)}", f"_training({m_})")
            self.add(f"{m_}._forward_hooks or {m_}._forward_pre_hooks or {m_}.__dict__.get('_backward_hooks')",
                     f"_hooked({m_})")
        for m, settings in v.attrs:  # the recorded values only: a setting added later was not read
            if settings:
                m_ = self.name(m, "m")
                self.lines.append(f"d = {m_}.__dict__")
                for k, value in settings:
                    self.lines.append(f"now = d.get({k!r}, MISSING)")
                    v_ = self.name(value)
                    self.add(f"now is not {v_} and now != {v_}", f"_setting({m_}, {k!r})")
        for m, name, p in v.params:
            m_ = self.name(m, "m")
            self.add(f"{m_}._parameters.get({name!r}) is not {self.name(p)}", f"_replaced({m_}, {name!r})")
        for m, name, b in v.buffers:
            m_ = self.name(m, "m")
            self.add(f"{m_}._buffers.get({name!r}, MISSING) is not {self.name(b)}", f"_buffer_replaced({m_}, {name!r})")
        for t, (rg, shape, dtype, hooked, layout) in zip(v.live, v.live_meta):
            t_ = self.name(t, "t")
            self.lines.append(f"a = {t_}._data")
            self.add(f"{t_}.requires_grad != {self.name(rg)} or a.shape != {self.name(shape)} or "
                     f"a.dtype != {self.name(dtype)} or "
                     f"bool({t_}._hooks) != {hooked!r}", f"_tensor(a, {t_})")
            if layout == (0, True):  # (the usual layout, C order and writeable, without making the tuple)
                self.lines.append("fl = a.flags")
                self.add("not (fl.c_contiguous and fl.writeable)", "_layout(a)")
            else:
                self.add(f"arg_layout(a) != {self.name(layout)}", "_layout(a)")
        for t, was_none in v.leaves:
            self.add(f"{self.name(t, 't')}._grad is {'not ' if was_none else ''}None", "NONE_CHANGED")
        for i, was_none in v.arg_grads:
            self.add(f"leaves[{i}]._grad is {'not ' if was_none else ''}None", "NONE_CHANGED + ' (of an argument)'")
        src = "def check(leaves):\n" + "".join(f"    {line}\n" for line in self.lines) + "    return None\n"
        exec(compile(src, "<tl.compile guards>", "exec"), self.ns)
        return self.ns["check"]

    def constant(self, row):
        """One row of constants.py: an identity test where the value is the recorded object, else the row's exact
        test (constants_check.changed), which also names it."""
        root, name, path, value = row
        exact = f"changed(({self.name(row)},))"
        if value.__class__ is _Methods:
            for obj, klass, attr, entry, own, shadowed in value.entries:
                # (`own`: obj's dict then, None without one; its dict now is read again: one assigned to
                # obj.__dict__ is not the recorded `own`)
                self.method(obj, klass, attr, entry, f"{self.name(value)}.changed()",
                            None if own is None else shadowed)
            return
        if root.__class__ is dict:
            self.lines.append(f"now = {self.name(root)}.get({name!r}, GONE)")
        elif root.__class__ is _Self:
            self.lines.append(f"now = {self.name(root.obj)}")
        else:
            self.lines.append(f"now = root_value({self.name(root)}, {name!r})")
        for attr in path:
            self.lines.append(f"now = locate(now, {self.name(attr)})[0]")
        if value.__class__ is TensorMeta:  # (TensorMeta.same, inline)
            v = self.name(value)
            self.add(f"now is not {v}.tensor or now._data.shape != {v}.shape or now._data.dtype != {v}.dtype", exact)
        elif value.__class__ in SNAPSHOTS:
            self.add(f"not {self.name(value)}.same(now)", exact)
        else:
            same_data = f" and not same(now, {self.name(value)})" if data(value) else ""
            self.add(f"now is not {self.name(value)}{same_data}", exact)

    def method(self, obj, klass, attr, entry, exact, shadowed=None):
        """A method the code calls is the recorded entry: `klass` (obj's class, or obj itself when it is a class) is
        the same, with the same MRO and the entry found where it was (no class before it defines the name); when
        not, the MRO lookup decides (values.lookup), as constants_check's test. `shadowed` (not None for an object
        with an instance dict): whether that dict had the name too (objects._Methods), tested again."""
        now = self.name(klass) if obj is klass else f"type({self.name(obj)})"
        k_ = self.name(klass)
        found = self.found.get((k_, attr, id(entry)))
        if found is None:  # (the class's side once per class and name: W2's three Linear layers share it)
            # (a class's __dict__ is a new mappingproxy at each read, a view of a dict that stays the class's for
            # its life: the code reads one made here)
            tests = [f"{k_}.__mro__ is {self.name(klass.__mro__)}"]
            for c in klass.__mro__:
                if attr in c.__dict__:
                    tests.append(f"{self.proxy(c)}.get({attr!r}, GONE) is {self.name(entry)}")
                    break
                tests.append(f"{attr!r} not in {self.proxy(c)}")
            else:  # (recorded as missing)
                tests.append(f"{self.name(entry)} is GONE")
            found = self.found[k_, attr, id(entry)] = f"found{len(self.found)}"
            self.lines.append(f"{found} = {' and '.join(tests)}")
        slow = f"lookup({now}, {attr!r}) is not {self.name(entry)}"
        if shadowed is None:
            self.add(f"not ({now} is {k_} and {found}) and {slow}", exact)
            return
        in_dict = f"({attr!r} in (dict_of({self.name(obj)}) or ())) is not {shadowed!r}"
        desc = None if obj is klass or shadowed else _find_dict_descriptor(klass)
        if type(desc) is not types.GetSetDescriptorType:
            self.add(f"not ({now} is {k_} and {found}) and {slow}", exact)
            self.add(in_dict, exact)
            return
        # the usual case, a method of obj's class not shadowed by its dict, in one test: obj's class the recorded
        # one (its MRO checked by `found`, so its instance-dict descriptor is the one found here: a class's
        # __dict__ cannot be reassigned), read through that descriptor's C getter (no code of obj's runs)
        get = self.getters.get(id(desc))
        if get is None:
            get = self.getters[id(desc)] = self.name(desc.__get__, "g")
        self.add(f"not ({now} is {k_} and {found} and {attr!r} not in {get}({self.name(obj)})) and "
                 f"({slow} or {in_dict})", exact)

    def proxy(self, klass):
        """The name of a mappingproxy of klass's dict (one per class)."""
        key = self.proxies.get(id(klass))
        if key is None:
            key = self.proxies[id(klass)] = self.name(klass.__dict__, "d")
        return key
