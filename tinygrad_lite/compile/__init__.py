"""`tl.compile`: record a function once, then replay its NumPy kernels without Tensors or tape entries.

    step = tl.compile(train_step)      # or @tl.compile, @tl.compile(fullgraph=True), tl.compile(model)
    for x, y in loader:
        loss = step(x, y)

The first call with a new argument signature runs eagerly and is recorded (capture.py); later calls whose guards
hold replay the record (plan.py). What cannot be replayed safely runs eagerly with `stats['last_reason']` set, or
raises CompileError with `fullgraph=True`. See API.md, "Compiled steps".
"""
import copy
import gc
import sys
import threading
import warnings

import numpy as np

from . import capture as _capture
from .record import SLOT, Converted, Unsupported, graph_outputs
from .constants import changed, module_class, python_constants
from .constants_check import read_inside
from .guards import Variant as _Variant
from .values import PLAIN
from .plan import Plan
from .reads import Read, held_elsewhere, kept_outside
from .._size import Size
from .replay import ReplayGuardFailed
from .signature import aliases as _aliases, flatten as _flatten, flatten_kwargs as _flatten_kwargs
from .. import dtypes as _dtypes
from ..autograd import recorder as _recorder
from .._gc import paused_gc, promote
from ..autograd.grad_mode import state

__all__ = ["compile", "CompileError", "CompileWarning", "Compiled"]


class CompileError(RuntimeError):
    """Raised with fullgraph=True when a call cannot be captured; names what and where."""


class CompileWarning(UserWarning):
    """A compiled function falls back to eager execution for good (a guard keeps failing past max_variants)."""


_capture_lock = threading.RLock()  # the creation hook is process-wide: one capture at a time


class Compiled:
    """The callable `tl.compile` returns. `stats`: traces, replays, eager_calls, variants, last_reason."""

    def __init__(self, fn, fullgraph=False, dynamic=False, max_variants=8, *, name=None):
        if not callable(fn):
            raise TypeError(f"tl.compile: expected a callable or a Module, got {type(fn).__name__}")
        self.fn = fn
        self.fullgraph = bool(fullgraph)
        self.dynamic = bool(dynamic)
        self.max_variants = int(max_variants)
        self.name = name or getattr(fn, "__name__", type(fn).__name__)
        self._fresh()

    def _fresh(self):
        self.stats = {"traces": 0, "replays": 0, "eager_calls": 0, "variants": 0, "last_reason": None}
        self._variants = []
        self._lock = threading.RLock()
        self._warned = False
        self._warned_graph = False  # the one warning that calls returning a live graph run eagerly
        self.__wrapped__ = self.fn
        self.__doc__ = getattr(self.fn, "__doc__", None)

    def __getstate__(self):  # a copy (copy.deepcopy, pickle) is compiled afresh: records hold the original's objects
        return {k: getattr(self, k) for k in ("fn", "fullgraph", "dynamic", "max_variants", "name")}

    def __setstate__(self, d):
        self.__dict__.update(d)
        self._fresh()

    def __repr__(self):
        return f"<tl.compile of {self.name}: {self.stats}>"

    def __call__(self, *args, **kwargs):
        with self._lock:
            return self._call(args, kwargs)

    def _call(self, args, kwargs):
        if state.capture is not None:  # inside another compiled function's recording: run inline, recorded there
            return self.fn(*args, **kwargs)
        if state.anomaly:
            return self._eager(args, kwargs, "anomaly mode is on (detect_anomaly checks every operation)")
        key = keyed = reason = None
        for v in self._variants:
            if v.match is not None:  # (the usual signature: the variant's own test, without building the key)
                leaves = v.match(args, kwargs)
                if leaves is None:
                    continue
            else:
                if key is None:
                    key, keyed = self._key(args, kwargs)
                if v.key != key:
                    continue
                leaves = keyed
            if v.plan is None:
                return self._eager(args, kwargs, v.reason)
            reason = v.holds(leaves)
            counters = v.plan.counters  # (those the function moves: constants._Counters)
            if reason is None and counters is not None:
                reason = counters.check()  # (one set to None between calls: the eager call raises before any update)
            if reason is None and v.moved is not None:  # (the recording call changed what it reads: see _trace)
                return self._eager(args, kwargs, v.moved)
            if reason is None and v.itself is not None:  # (a returned container from outside: the same object)
                reason = _itself_moved(v.itself, (args, kwargs))
            if reason is None:
                try:
                    out = v.plan.run(leaves, (args, kwargs))
                except ReplayGuardFailed as exc:
                    reason = str(exc)
                else:
                    self.stats["replays"] += 1
                    if counters is not None:
                        counters.replay()
                    return out
        if key is None:
            key, keyed = self._key(args, kwargs)
        if reason is None:
            reason = "a new argument signature" if self._variants else None
        if len(self._variants) >= self.max_variants:
            if not self._warned:
                self._warned = True
                warnings.warn(f"tl.compile({self.name}): {self.max_variants} variants "
                              f"recorded and the guards fail again ({reason}); running eagerly from now on for "
                              f"such calls", CompileWarning, stacklevel=3)
            return self._eager(args, kwargs, reason)
        return self._trace(args, kwargs, key, keyed)

    def _key(self, args, kwargs):
        """The call's argument signature (signature.py) and its leaves. (The default dtype is part of it: Python
        floats with integer tensors and float factories take it, so a plan recorded under another one has the wrong
        dtypes baked in.)"""
        leaves = []
        return (_flatten(args, leaves, self.dynamic), _flatten_kwargs(kwargs, leaves, self.dynamic), _aliases(leaves),
                state.grad_enabled, _dtypes.default_float), leaves

    def _eager(self, args, kwargs, reason):
        if self.fullgraph:
            raise CompileError(f"tl.compile(fullgraph=True): {reason}")
        self.stats["eager_calls"] += 1
        self.stats["last_reason"] = reason
        return self.fn(*args, **kwargs)

    def _trace(self, args, kwargs, key, leaves):
        given = (args, kwargs)  # (as passed: a returned container of the arguments is found in them, _origins)
        constants = python_constants(self.fn, (args, kwargs))  # before the call: one it changes is a failed guard
        # (and one the recording call changes, `cfg["lr"] = 0.05`, `flag["on"] = not flag["on"]`, an item stored or
        # an append into a container that outlives the call, is seen after it: below)
        if isinstance(constants, str):  # the scan stopped at a limit: a replay could miss a changed setting
            self._variants.append(_Variant(key, None, constants))
            self.stats["variants"] = len(self._variants)
            return self._eager(args, kwargs, constants)
        self.stats["traces"] += 1
        with _capture_lock, paused_gc():
            arrays = [(i, x) for i, x in enumerate(leaves) if x.__class__ not in (int, float)]
            cap = _capture.Capture([(i, x if isinstance(x, np.ndarray) else x._data) for i, x in arrays],
                                   [(i, x) for i, x in arrays if not isinstance(x, np.ndarray)])
            if self.dynamic:  # numbers become Arg proxies (one per object): a tensor operation takes each call's own
                made, swapped = {}, []
                for i, x in enumerate(leaves):
                    if x.__class__ in (int, float) and id(x) not in made:
                        made[id(x)] = cap.argument(i, x)
                    swapped.append(made.get(id(x), x))
                swap = iter(swapped)
                args, kwargs = _flatten(args, [], True, swap), _flatten_kwargs(kwargs, [], True, swap)
                del swap, made, swapped, x
            first_seq = next(_recorder._seq)
            cap.call_frame = sys._getframe()  # (`return float(loss)` in fn's own frame: Observing.float_of)
            try:
                with _capture.recording(cap):
                    out = self.fn(*args, **kwargs)
            except BaseException as exc:  # an error message or argument holding a read: its plain value
                exc.args = tuple(_plain(a) for a in exc.args)
                raise
            finally:
                del args, kwargs  # (with dynamic=True they hold the Arg proxies)
                cap.call_frame = None
            out = cap.returned_values(out)
            counters = getattr(constants, "counters", None)
            if counters is not None:  # (`self.steps += 1`: how many times this call moved each, for its replays)
                moved = counters.observe()
                if moved is not None:
                    cap.fail(moved)
            kept = kept_outside(cap.proxies, out)
            if kept and cap.failure is None:
                what = cap.reads[kept[0]._index].describe()
                if kept[0].derived:
                    what = f"a number computed from {what}"
                cap.failure = (f"{what} was kept by Python code outside the function's result (appended to a "
                               f"list, stored in an attribute or a global): a replay would not update it; return "
                               f"the value and keep it in the caller")
            if cap.failure is None:
                held = _holder(out, cap)
                if held is not None:
                    cap.fail(f"the function returns an object of class {type(held).__name__} holding tensors the "
                             f"call made: a replay would return the recorded object itself, with the recorded "
                             f"values; return them in a tuple, a list, a dict or a namedtuple")
            if cap.failure is None:
                _returned_containers(out, cap, given, constants)
            del given
            aot = None
            if cap.failure is None and graph_outputs(out):  # a backward outside the call: record it too
                from . import aot_record as _aot  # (imported here: with the package, W5's replays measured 15% slower
                # per operation, reproducibly; the cause was not found)
                try:
                    aot = _aot.record_backward(cap, out, leaves, first_seq, _capture.recording(cap))
                except Unsupported as exc:
                    cap.fail(exc.reason)
                except Exception as exc:  # noqa: BLE001  (the user's own backward will meet it: run eagerly)
                    cap.fail(f"recording the backward of the returned tensors raised {type(exc).__name__}: {exc}")
        try:
            with paused_gc():
                if aot is None:
                    plan = Plan(cap, out)
                else:
                    from .aot import AotPlan
                    plan = AotPlan(cap, out, aot, self._lock, self.name)
            reason = None
            _inside_replayed(constants, cap)
            if counters is not None and counters.times:
                plan.counters = counters
        except Unsupported as exc:
            plan, reason = None, exc.reason
        finally:
            cap.close()
            promote()  # what the capture left alive (the plan's record) is long-lived: no rescans of it
        if plan is None and not self.fullgraph and not self._warned_graph and graph_outputs(out):
            self._warned_graph = True
            warnings.warn(f"tl.compile({self.name}): the function returns a tensor whose graph is still alive "
                          f"(a backward outside it), and this call cannot be compiled: {reason}. Such calls run "
                          f"eagerly", CompileWarning, stacklevel=4)
        variant = _Variant(key, plan, reason, constants)
        if plan is not None:
            variant.itself = getattr(cap, "outside_rows", None) or None
        moved = changed(constants) if plan is not None and constants else None
        if moved is not None:
            # The recording call itself changed a value its guards read (an item stored into a dict or a list that
            # outlives the call, an append, a value toggled): a replay, which runs no Python, starting from the
            # state this call started from would leave that state as it was, where the eager call changes it. Calls
            # from that state run eagerly; the next call starts from the changed state, and records a variant of
            # its own (which replays when the step leaves the value as it found it, `cfg["lr"] = 0.05` again).
            variant.moved = (f"the recorded call changed a value the function reads ({moved}): a replay runs no "
                             f"Python, so it would not change it again")
        self._variants.append(variant)
        self.stats["variants"] = len(self._variants)
        if plan is None:
            self.stats["last_reason"] = reason
            if self.fullgraph:
                raise CompileError(f"tl.compile(fullgraph=True): cannot capture: {reason}")
        return _plain(out)


def _inside_replayed(constants, cap):
    """Raise Unsupported when the function reads from inside an object that a replayed call of it changes
    (constants_check.read_inside): the value read after that call would be the recorded one."""
    what = read_inside(constants, cap.changed) if cap.changed else None
    if what is not None:
        raise Unsupported(f"the function reads '{what}', which a replayed call (an optimizer's or a scheduler's step) "
                          f"may change during the call: a replay would give the value recorded; read it outside the "
                          f"compiled function, or return sched.get_last_lr() (read again by each replay)")


def _holder(result, cap):
    """An object in `result` that a plan does not rebuild (anything but tuples, lists, dicts and namedtuples: a
    dataclass, a SimpleNamespace, a model's output object, a set) and that holds a tensor or an array the call made,
    or None: a plan would return the recorded object itself on every replay. (Module-level helpers, not closures: a
    recursive closure is a reference cycle that would keep the capture alive until the garbage collector runs.)"""
    return _held(result, None, 0, cap, set())


def _held(obj, owner, depth, cap, seen):
    from ..tensor import Tensor
    if obj.__class__ in PLAIN or isinstance(obj, (Read, Converted, np.generic, type)) or id(obj) in seen or \
            depth > 4:  # (a Converted is rebuilt by each replay)
        return None
    if isinstance(obj, (Tensor, np.ndarray)):
        return owner if owner is not None and _made(obj, cap) else None
    seen.add(id(obj))
    if isinstance(obj, (tuple, list)):
        items = obj
    elif isinstance(obj, dict):
        items = obj.values()
    else:  # a set, or an object: its attributes
        owner = obj if owner is None else owner
        if isinstance(obj, (set, frozenset)):
            items = obj
        else:
            d = getattr(obj, "__dict__", None)
            slots = getattr(type(obj), "__slots__", ())
            items = list(d.values()) if isinstance(d, dict) else \
                [getattr(obj, k) for k in slots if isinstance(k, str) and hasattr(obj, k)]
    for x in items:
        found = _held(x, owner, depth + 1, cap, seen)
        if found is not None:
            return found
    return None


def _made(x, cap):
    """Whether tensor or array `x` was made by the call (its values are each replay's own)."""
    from ..tensor import Tensor
    r = cap.known.get(id(x._data if isinstance(x, Tensor) else x))
    return (r is not None and r.kind == SLOT) or (isinstance(x, Tensor) and id(x) in cap.created)


def _returned_containers(out, cap, given, constants):
    """Note in `cap.outside` the containers of the result that come from outside the call (reads.held_elsewhere):
    a replay returns each as itself, as eager does (a copy of the recorded contents left the caller's changes to it
    out of the original). Fail the capture for one that holds what the call made (stored into it by the call, which
    a replay would not repeat), and for a container of a subclass that carries attributes set on it (`d.out =
    out.detach()`): a replay rebuilds a container's items, not its attributes (a dict subclass's copy kept the
    recorded ones: the recording call's tensor, on every replay)."""
    outside = held_elsewhere(out, callers=2)  # (_trace's `out`, this function's)
    cap.outside, cap.outside_args, cap.outside_rows = outside, {}, []
    if outside:
        # Where each comes from: a replay returns this call's object from there. An argument's (`return loss, cfg`)
        # is found again in the call's arguments; one read from a global, a closure variable or an attribute
        # (`return loss, self.metrics`) is the recorded object only while that place holds it (its guard compares
        # contents: the caller may put an equal new one there). Another is held by a reference cycle the collector
        # has not freed yet (the call made it: a recursive closure holds it) or by what the guards do not watch (a
        # default argument): run eagerly, as for a container the call stores.
        unknown = _origins(out, cap, given, constants)
        if unknown:
            gc.collect()
            still = held_elsewhere(out, callers=2) & unknown
            outside -= unknown - still
            if still:
                cap.fail("the function returns a container from outside the call that it does not read from its "
                         "arguments, a global, a closure variable or an attribute (a default argument?): a replay "
                         "could not tell which object eager returns, or what the call put in it; return a copy")
                return
    seen, todo = set(), [(out, 0)]
    while todo:
        obj, depth = todo.pop()
        if not isinstance(obj, _CONTAINERS) or isinstance(obj, Size) or id(obj) in seen or depth > 64:
            continue
        seen.add(id(obj))
        items = list(obj.values()) if isinstance(obj, dict) else list(obj)
        if id(obj) in outside:
            made = next((x for x in items if _call_value(x, cap)), None)
            if made is not None:
                cap.fail(f"the function returns a {type(obj).__name__} from outside the call that holds "
                         f"{'a value read' if isinstance(made, Read) else 'a tensor'} the call made: a replay would "
                         f"not put it there; return the value itself")
                return
            continue  # (returned as itself: its attributes are its own)
        names = _attribute_names(obj)
        if names:
            cap.fail(f"the function returns a {type(obj).__name__} with attributes set on it ({', '.join(names)}): "
                     f"a replay rebuilds only its items; return those values as items")
            return
        todo.extend((x, depth + 1) for x in items)


_CONTAINERS = (tuple, list, set, frozenset, dict)


def _origins(out, cap, given, constants):
    """For each container of `out` from outside the call (cap.outside: ids), its place among the call's arguments
    `given` (cap.outside_args: id -> path of keys) or the constant rows that reach it (cap.outside_rows: (root, name,
    path, object)); the ids of those found in neither."""
    objs, seen, todo = {}, set(), [out]
    while todo:
        o = todo.pop()
        if id(o) in seen or not isinstance(o, _CONTAINERS) or isinstance(o, Size):
            continue
        seen.add(id(o))
        if id(o) in cap.outside:
            objs[id(o)] = o
        todo.extend(o.values() if isinstance(o, dict) else o)
    del todo, o
    places = {}
    _argument_paths(given, (), places, set(objs), set(), 0)
    unknown = set()
    for key, obj in objs.items():
        rows = _rows_to(constants, obj)
        if key in places:
            paths = places[key]
            cap.outside_args[key] = paths[0]
            if len(paths) > 1 or rows:  # (also elsewhere: a replay holds while each place has the object there)
                cap.outside_rows.append((_ARGUMENTS, paths, None if rows else _ANY, obj))
                cap.outside_rows.extend(rows)
            continue
        if rows:
            cap.outside_rows.extend(rows)
        elif not _frozen(obj, 0):  # (a constant tuple, `()`: nothing in it can change, eager's may be the same)
            unknown.add(key)
    return unknown


def _frozen(obj, depth):
    """Whether `obj` is a tuple or frozenset holding no mutable container, however deep."""
    if depth > 64 or not isinstance(obj, (tuple, frozenset)):
        return False
    return all(_frozen(o, depth + 1) if isinstance(o, _CONTAINERS) else True for o in obj)


def _argument_paths(obj, path, places, wanted, seen, depth):
    """The paths (keys from the arguments `(args, kwargs)` down) of the objects whose ids are in `wanted`."""
    if depth > 64 or not isinstance(obj, _CONTAINERS) or isinstance(obj, Size):
        return
    if id(obj) in wanted:  # (each place: the same dict passed twice, `f(d, d)`)
        places.setdefault(id(obj), []).append(path)
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, (set, frozenset)):
        return
    for k, v in (obj.items() if isinstance(obj, dict) else enumerate(obj)):
        _argument_paths(v, path + (k,), places, wanted, seen, depth + 1)


def _rows_to(constants, obj):
    """The (root, name, path, obj) of each place that the constant rows read through and that holds `obj` now."""
    from .constants_check import _root_value
    from .objects import _Methods, _locate
    from .values import GONE
    found = []
    for root, name, path, value in (constants if not isinstance(constants, str) else ()):
        if value.__class__ is _Methods:
            continue
        now = _root_value(root, name)
        for k in range(len(path) + 1):
            if now is obj:
                found.append((root, name, tuple(path[:k]), obj))
                break
            if k == len(path) or now is GONE:
                break
            try:
                now = _locate(now, path[k])[0]
            except Exception:  # noqa: BLE001
                break
    return found


_ARGUMENTS, _ANY = object(), object()  # (a row of an argument found at several places: compile._origins)


def _itself_moved(rows, call):
    """Why a returned container from outside the call is not the recorded object now (its place holds another, an
    equal one: the contents guard passes), or the arguments that held one object hold several now (`f(d, d)`
    recorded, `f(d1, d2)` called); None when each is. `call`: this call's (args, kwargs)."""
    from .constants_check import _dotted, _root_value
    from .objects import _locate
    from .plan import _argument_at
    for root, name, path, obj in rows:
        try:
            if root is _ARGUMENTS:
                first = _argument_at(call, name[0])
                if any(_argument_at(call, p) is not first for p in name[1:]) or (path is not _ANY and
                                                                                  first is not obj):
                    return "a container the function returns is not at each place of the arguments it was"
                continue
            now = _root_value(root, name)
            for attr in path:
                now = _locate(now, attr)[0]
        except Exception:  # noqa: BLE001 (a place not there any more)
            now = None
        if now is not obj:
            return f"'{_dotted(name, path)}', which the function returns, is another {type(now).__name__} now"
    return None


def _call_value(x, cap):
    """Whether `x`, an item of a container from outside the call, is a value the call made (or holds one)."""
    from ..tensor import Tensor
    if isinstance(x, (Read, Converted)):
        return True
    if isinstance(x, (Tensor, np.ndarray)):
        return _made(x, cap)
    if isinstance(x, _CONTAINERS) and not isinstance(x, Size):
        return any(_call_value(o, cap) for o in (x.values() if isinstance(x, dict) else x))
    return False


def _attribute_names(obj):
    """The names of the attributes set on a container instance (its __dict__ and its classes' __slots__)."""
    names = list(getattr(obj, "__dict__", None) or ())
    for klass in type(obj).__mro__:
        slots = klass.__dict__.get("__slots__", ())
        for name in (slots,) if isinstance(slots, str) else slots:
            if name not in ("__dict__", "__weakref__") and hasattr(obj, name):
                names.append(name)
    return names


def _plain(obj):
    """The captured call's own result, with Read proxies (and Converted) turned back into Python values; a container
    that holds none is the very object (eager's: a dict from outside the call stays that dict), one that does is
    rebuilt as map_structure rebuilds it, with the attributes set on it."""
    if isinstance(obj, Read):
        return obj._value
    if obj.__class__ is Converted:
        return obj.value
    if not isinstance(obj, _CONTAINERS) or isinstance(obj, Size):
        return obj
    if isinstance(obj, dict):
        pairs = [(k._value if isinstance(k, Read) else k, _plain(v)) for k, v in obj.items()]
        if all(a is k and b is v for (a, b), (k, v) in zip(pairs, obj.items())):
            return obj
        if obj.__class__ is dict:
            return dict(pairs)
        new = copy.copy(obj)  # (an OrderedDict, a defaultdict, a Counter: attributes and factory kept)
        new.clear()
        for k, v in pairs:
            new[k] = v
        return new
    items = [_plain(o) for o in obj]
    if all(a is b for a, b in zip(items, obj)):
        return obj
    new = type(obj)(*items) if isinstance(obj, tuple) and hasattr(obj, "_fields") else type(obj)(items)
    if obj.__class__ not in _CONTAINERS:
        for name in _attribute_names(obj):
            setattr(new, name, getattr(obj, name))
    return new


def compile(fn=None, *, fullgraph=False, dynamic=False, max_variants=8, backend="inductor", mode=None,  # noqa: A001
            options=None, disable=False):
    """Compile `fn` (a callable, or a Module: its forward); usable as `@tl.compile` or `@tl.compile(...)`.
    `backend`, `mode`, `options` and `disable` are torch.compile's, so PyTorch code runs unchanged: there is one
    backend (any name is taken; a custom backend function is not), the modes and options tune PyTorch's inductor and
    change nothing here (they are checked as PyTorch checks them), and `disable=True` returns `fn` itself."""
    _check_torch_options(backend, mode, options)
    if fn is None:
        return lambda f: compile(f, fullgraph=fullgraph, dynamic=dynamic, max_variants=max_variants, backend=backend,
                                 mode=mode, options=options, disable=disable)
    if disable:
        return fn
    dynamic = bool(dynamic)  # (PyTorch's default None, "decide": numbers are guarded by value unless True)
    Module = module_class()
    if Module is not None and isinstance(fn, Module):  # as torch.compile: a Module that wraps it (module.py)
        from .module import OptimizedModule
        return OptimizedModule(fn, Compiled(fn, fullgraph, dynamic, max_variants, name=type(fn).__name__))
    return Compiled(fn, fullgraph, dynamic, max_variants)


_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def _check_torch_options(backend, mode, options):
    if not isinstance(backend, str):
        raise TypeError(f"tl.compile: backend must be a name (tl.compile has one backend, which replays NumPy "
                        f"kernels); a custom backend function ({type(backend).__name__}) cannot be used")
    if mode is not None and options is not None:
        raise RuntimeError("Either mode or options can be specified, but both can't be specified at the same time.")
    if mode is not None and mode not in _MODES:
        raise RuntimeError(f"Unrecognized mode={mode}, should be one of: {', '.join(_MODES)}")
    if options is not None and not isinstance(options, dict):
        raise TypeError(f"tl.compile: options must be a dict, got {type(options).__name__}")
