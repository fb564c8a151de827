"""Capture: run a function once eagerly and record what it computed, as a flat list of operations on arrays.

What is recorded, and from where:
- kernels: every primitive forward (`recorder.apply`), and every NumPy computation the library does on tensor data
  outside primitives (VJP masks, gradient accumulation, dropout draws, ...), which goes through hooks.py;
- host calls: library methods re-run as Python at replay (an optimizer's `step`, `zero_grad`, the engine's delivery
  of a leaf's gradient), because what they do depends only on live objects and on arrays the replay provides;
- reads: values taken out of tensors into Python (`loss.item()`), each a `Read` proxy: returned untouched it is
  each call's own value; compared with a number, the comparison's outcome is a guard; used in any other way, its
  value is a guard (reads.py; the Capture's methods for reads, `.grad` and `.training` are in observe.py).

Nothing is trusted by value. Every array an operation uses must be known: made by a recorded operation, an
argument, a constant declared as such, or the data of a tensor that existed before the call (a parameter, a
buffer, optimizer state: read live at replay). A tensor created during the call from anything else (a NumPy mask
computed off the record, a tensor made from a NumPy array) makes the capture fail with the place named, so a
replay can never run on a value frozen at capture time.
"""
import sys
import weakref

import numpy as np

from .effects import bump_version
from .hooks import HOST_INTO
from .memory import fresh, known_base, layout, tensor_class as _tensor_class
from .observe import Observing
from .reads import Arg, Read
from .record import ARG, ARGGRAD, ARGOBJ, CONST, GRAD, LIVE, SLOT, START, Obj, Op, Ref, _caller, user_site
from ..autograd.grad_mode import state

_PLAIN = frozenset([int, float, bool, str, type(None), np.dtype, type(np.dtype("float32"))])
# A small array (one owning at most _HOLD_BYTES), or a tensor of one, is held until the capture closes instead of
# watched through a weak reference: its id cannot be reused meanwhile either, and a weak reference with its callback
# costs more than the object (W1's capture made 2,200 of them: ~10% of its recording call). Up to _HOLD_BUDGET in all;
# larger arrays stay watched, so the call frees and reuses their memory as the eager call does.
_HOLD_BYTES, _HOLD_BUDGET = 1 << 16, 16 << 20


def _into(fn, prim):
    """The rule a replay may call to write this kernel's result into a planned buffer (`prim.into`, a host
    function's `hooks.into_rule`), or None."""
    return prim.into if prim is not None else HOST_INTO.get(fn) if fn.__hash__ is not None else None


def _ufunc(fn, prim):
    """The ufunc a replay may call with out= for this kernel: the primitive's, or a host computation that is one (a
    VJP's mask `np.greater(x, 0)`), so that its result too gets a planned buffer."""
    if prim is not None:
        return prim.ufunc
    return fn if fn.__class__ is np.ufunc else None


class recording:
    """`cap` recording on this thread (a context manager): the autograd state, the tensor creation hook and the
    recorder's flag point at it. Used by tl.compile (the call, and the backward aot_record.py records) and by vmap."""

    def __init__(self, cap):
        self.cap = cap

    def __enter__(self):
        _tensor = sys.modules[__name__.rsplit(".", 2)[0] + ".tensor"]  # the module (tl.tensor is the factory)
        self.prev = state.capture, _tensor._creation_hook, _recorder().capturing
        state.capture, _tensor._creation_hook, _recorder().capturing = self.cap, self.cap.tensor_created, True

    def __exit__(self, *exc):
        _tensor = sys.modules[__name__.rsplit(".", 2)[0] + ".tensor"]
        state.capture, _tensor._creation_hook, _recorder().capturing = self.prev


def _recorder():
    return sys.modules[__name__.rsplit(".", 2)[0] + ".autograd.recorder"]


class Capture(Observing):
    """The record of one eager call (see the module docstring). Created by `tl.compile`; the hooks in the engine,
    the primitives, the optimizers and the layers find it in the thread's autograd state."""

    def __init__(self, arg_arrays, arg_tensors=(), stand_ins=()):
        self.ops = []
        self.nslots = 0
        self.known = {}        # id(array) -> Ref, while the array lives (see _know)
        self._watch = {}       # id -> weak reference whose callback forgets the id when its object dies
        self._key_of = {}      # id(weak reference) -> the id it watches
        self._held = {}        # id -> a small array or tensor held until close() (see _HOLD_BYTES)
        self._held_bytes = 0
        self.keep = []
        self.created = set()   # id of every Tensor created during the call, while it lives
        self.reads = []
        self.proxies = []      # the Read proxies handed to Python (reads.kept_outside checks where they went)
        self.constant_values = {}  # id -> values of a constant a host call is about to write into (before_write)
        self.viewed_constants = set()  # ids of the constants a step of the call viewed (_owner)
        self.plain_returns = []  # (value, stand-in) of float(), numpy(), tolist() the call returns (Observing.float_of)
        self.placed_returns = []  # (place, value, proxy) of int() the call returns (Observing.int_of)
        self.call_frame = None  # the frame that calls the compiled function, while it runs
        self.read_slots = {}   # id of a ReadRecord -> the slot a replay puts its number in (observe.read_slot)
        self.changed = {}      # id -> object whose contents a replayed call changes (hooks.replayable's changes)
        self.modules = {}      # id -> module that ran (its .training is guarded)
        self.made_modules = set()  # ids of the modules made during the call (nn.Module.__new__)
        self.made_objects = {}  # id -> a library object with replayable methods made during the call (hooks.made)
        self.leaves = {}       # id -> persistent leaf tensor whose .grad the call used
        self.live = {}         # id -> persistent tensor read live (its identity and version are tracked)
        self.cleared = set()   # ids of tensors whose .grad the call sets to None before it looks at it
        self.args = {}         # id -> index of a Tensor argument (a replay acts on that call's argument)
        self.arg_grads = {}    # index of a Tensor argument -> its .grad was None when the call first looked
        self.failure = None
        self.drawn_after = None  # the package generator was first drawn from after this op (START: before any)
        self.suspended = 0
        self._Tensor = _tensor_class()  # (read by template(), once per recorded operation)
        for path, arr in arg_arrays:
            self._know(arr, Ref(ARG, path))
        self._arg_objs = {}    # index -> a Tensor argument (`_stale`: its array now)
        for path, t in arg_tensors:
            self.args.setdefault(id(t), path)
            self._arg_objs[path] = t
        self.stand_ins = {id(t): t for t in stand_ins}  # tensors made for the call on its arguments' arrays (vmap's
        # samples): those arguments, where another tensor from before the call on such an array is not

    # ---------------- bookkeeping ----------------
    def _know(self, arr, ref):
        """Note where `arr` comes from. A large array is not kept alive: when it dies its id is forgotten (a weak
        reference's callback), so a new array that reuses the memory and the id is never mistaken for it, and the
        call frees and reuses memory as the eager call does (holding every array made the capture 2-3x slower,
        in page faults); a small one is held until close() instead (_HOLD_BYTES), which keeps its id unique too."""
        key = id(arr)
        self.known[key] = ref
        if arr.__class__ is np.ndarray and arr.base is None:  # (held when small: see _HOLD_BYTES; inlined here and
            n = arr.nbytes                                     # in tensor_created, ~2,000 calls per W1 capture)
            if n <= _HOLD_BYTES and self._held_bytes + n <= _HOLD_BUDGET:
                self._held[key] = arr
                self._held_bytes += n
                return
        self._watch_id(arr, key)

    def _watch_id(self, obj, key):
        wr = weakref.ref(obj, self._forget)
        self._watch[key] = wr
        self._key_of[id(wr)] = key  # the weak reference lives in _watch until it fires: its id is unique

    def _forget(self, wr):
        key = self._key_of.pop(id(wr), None)
        if key is not None and self._watch.get(key) is wr:
            del self._watch[key]
            self.known.pop(key, None)
            self.created.discard(key)

    def alive(self, key):
        """The object of id `key` the capture watches or holds, if it is still alive; else None."""
        obj = self._held.get(key)
        if obj is None:
            wr = self._watch.get(key)
            obj = None if wr is None else wr()
        return obj

    def close(self):
        """Drop the weak references (their callbacks are bound methods of this capture: a reference cycle), so the
        capture is freed as soon as its plan is built instead of by a later garbage collection, and what it held."""
        self._watch.clear()
        self._key_of.clear()
        self._held.clear()
        self.made_objects.clear()

    def fail(self, reason):
        if self.failure is None:
            self.failure = reason

    def new_slot(self, arr):
        ref = Ref(SLOT, self.nslots)
        self.nslots += 1
        self._know(arr, ref)
        return ref.key

    def constant(self, arr):
        """Declare `arr` a constant (made from Python values only, e.g. a cached scalar)."""
        if id(arr) not in self.known:
            self._know(arr, Ref(CONST, arr))
        return arr

    def before_write(self, args):
        """A host call is about to write into one of `args` in place (hooks.host_effect): the values of each constant
        among them (made in the call from Python values), for _written_constant."""
        self.constant_values = {id(a): a.copy() for a in args if a.__class__ is np.ndarray and
                                getattr(self.known.get(id(a)), "kind", None) is CONST}

    def _written_constant(self, arr, r, values):
        """Constant `arr` (made in the call from Python values: `c = tl.tensor([1.0, 2.0])`, Ref `r`) written in place
        (`c.add_(x)`; `values`: its values before, from before_write): a replay must start from those values, not
        from the last replay's writes (it replayed them into the one array). The steps so far read `values` (`r`,
        shared by their templates, gets them), and a step copies them into a slot of each replay's own, which the
        write and the steps after it use."""
        if values is None or id(arr) in self.viewed_constants:  # (written through a view: its values before are
            # gone; or viewed before: a replay's view would keep the values, eager's shows the write)
            self.fail(f"a constant made in the call from Python values (`tl.tensor([...])`) and viewed is changed in "
                      f"place at {user_site(4)}: a replay could not give the change to its views (make it with "
                      f".clone() before the view)")
            return
        r.key = values
        self._know(values, r)
        fresh = np.copy(values)
        self.kernel(np.copy, (values,), fresh, "a constant written in place")
        self._know(arr, self.known[id(fresh)])

    def tensor_created(self, t):
        """The creation hook (called once the tensor has its array)."""
        key = id(t)
        self.created.add(key)
        arr = t._data
        if arr.__class__ is np.ndarray and arr.base is None:
            n = arr.nbytes
            if n <= _HOLD_BYTES and self._held_bytes + n <= _HOLD_BUDGET:
                self._held[key] = t
                self._held_bytes += n
                return
        self._watch_id(t, key)

    def obj(self, t):
        """How a host call receives tensor `t` itself (to set its .grad or version): an argument as that call's
        argument, any other tensor as the recorded object."""
        i = self.args.get(id(t))
        return Obj(t) if i is None else Ref(ARGOBJ, i)

    def bump(self, t):
        """A live tensor's version went up through a recorded in-place kernel: a replay bumps it too."""
        if id(t) not in self.created:
            self.ops.append(Op(bump_version, (self.obj(t),), None, None, True, "host"))

    def delivered(self, t):
        """After the engine set leaf `t`'s `.grad`: its array is read from `t.grad` at replay (the replayed delivery
        sets it), so code after backward in the function (`p -= lr * p.grad`) may use it."""
        if t._grad is not None:
            i = self.args.get(id(t))
            self._know(t._grad._data, Ref(GRAD, t) if i is None else Ref(ARGGRAD, i))

    # ---------------- array provenance ----------------
    def ref(self, x, what):
        """The Ref of an array or Tensor used by an operation; records a failure for an untracked one."""
        Tensor = _tensor_class()
        if isinstance(x, Tensor):
            r = self.known.get(id(x._data))
            if r is not None:
                if not self._stands_for(r, x) and id(x) not in self.created and id(x) not in self.args and \
                        id(x) not in self.stand_ins:
                    # from before the call, on an argument's array, on another's (`b = a.detach()`) or on one a
                    # step of the call returned (the array of `a.add_(1)`, written in place; `p.data = h`): read
                    # from the tensor itself, which holds that very array in a replay too unless given another since
                    return self._live(x)
                if self._stale(r, x._data):
                    self._stale_fail(r, what)
                return r
            if id(x) in self.created:
                self.fail(f"{what} at {user_site(3)} uses a tensor made during the call from values that were not "
                          f"recorded (a NumPy result, or data from outside the library): its values would be "
                          f"frozen in a replay")
                return Ref(CONST, x._data)
            return self._live(x)
        if isinstance(x, np.ndarray):
            r = self.known.get(id(x))
            if r is None:
                self.fail(f"{what} at {user_site(3)} uses an array (shape {x.shape}, {x.dtype}) computed outside "
                          f"the recorded operations: its values would be frozen in a replay")
                return Ref(CONST, x)
            if self._stale(r, x):
                self._stale_fail(r, what)
            return r
        return x

    def _stale(self, r, arr):
        """Whether `arr`, known by a Ref a replay resolves from a tensor when a step runs (a live tensor's or an
        argument's `.data`, a `.grad`'s), is no longer what that Ref gives: the call rebound `.data` or `.grad` (`p.data
        = ...`, `p.grad = None`, zero_grad, an accumulated gradient) after it took `arr` (`old = p.detach()`, `g =
        p.grad`). A replay would use the new array where the eager call used the old one."""
        kind = r.kind
        if kind is SLOT or kind is CONST:
            return False
        if kind is LIVE:
            return r.key._data is not arr
        if kind is GRAD:
            g = r.key._grad
            return g is None or g._data is not arr
        t = self._arg_objs.get(r.key)  # an argument (an ndarray argument is always its own array: None here)
        if t is None:
            return False
        if kind is ARG:
            return t._data is not arr
        g = t._grad  # (ARGGRAD)
        return g is None or g._data is not arr

    def _stale_fail(self, r, what):
        whose = "a gradient (.grad)" if r.kind in (GRAD, ARGGRAD) else "a tensor's data"
        self.fail(f"{what} at {user_site(3)} uses {whose} that the call replaced afterwards (`.data = ...`, `.grad = "
                  f"...`, zero_grad, an accumulated gradient): a replay reads the tensor's new array there, where "
                  f"the eager call used the old one")

    def _stands_for(self, r, t):
        """Whether `r`, the Ref the capture knows tensor t's array by, is t itself: not when t only shares the array
        of an argument, of another live tensor or of a slot made in the call (ref() then sorts t out)."""
        kind = r.kind
        return (kind is not ARG or id(t) in self.args) and (kind is not LIVE or r.key is t) and \
            (kind is not SLOT or id(t) in self.created)

    def shared(self, t):
        """`t.data` or `t.detach()` is about to wrap t's array in a new tensor: of a tensor from before the call that
        no operation has used yet (`ema_p.data.mul_(d).add_(p.data, alpha=1 - d)`, a target network's soft update),
        the array is known as t's own from here (a replay reads t's array then), not as a new tensor's unrecorded
        values. (A rebinding of `t.data` afterwards is caught as stale, as for any live tensor's array.)"""
        if not self.suspended and id(t._data) not in self.known and id(t) not in self.created:
            self._live(t)

    def _live(self, t):
        ref = Ref(LIVE, t)
        if id(t) not in self.live:
            self.live[id(t)] = t
            self.keep.append(t)
            r = self.known.get(id(t._data))
            if r is None or r.kind != ARG:  # (an argument's array stays the argument's)
                self._know(t._data, ref)  # its array, when an operation is handed the array itself
        return ref

    def template(self, obj, what):
        """`obj` with every array/Tensor replaced by its Ref and every Read noted (baked values become guards)."""
        cls = obj.__class__
        if cls in _PLAIN:  # the common attributes: numbers, None, strings, dtypes
            return obj
        Tensor = self._Tensor
        if cls is tuple:  # the arguments of one call: arrays, tensors and attributes, mostly
            known, created, out = self.known, self.created, []
            for o in obj:
                c = o.__class__
                if c is np.ndarray:
                    r = known.get(id(o))
                    out.append(r if r is not None and (r.kind is SLOT or r.kind is CONST) else self.ref(o, what))
                elif c is Tensor:
                    r = known.get(id(o._data))
                    if r is not None:  # (self._stands_for(r, o), inlined: a call per tensor argument of each step)
                        k = r.kind
                        if (id(o) in created if k is SLOT else r.key is o if k is LIVE else
                                id(o) in self.args and not self._stale(r, o._data) if k is ARG else k is CONST):
                            out.append(r)
                            continue
                    out.append(self.ref(o, what))
                else:
                    out.append(o if c in _PLAIN else self.template(o, what))
            return tuple(out)
        if cls is Tensor:
            r = self.known.get(id(obj._data))
            return r if r is not None and self._stands_for(r, obj) and not self._stale(r, obj._data) else \
                self.ref(obj, what)
        if isinstance(obj, (np.ndarray, Tensor)):
            return self.ref(obj, what)
        if isinstance(obj, Read):  # an argument's number (dynamic=True) and a read's are each call's own, in a slot
            if obj._capture is not self or obj.derived:  # (a number fixed by guarded reads: as it is)
                return obj.__tl_read__()
            return obj.ref if isinstance(obj, Arg) else self.read_slot(obj)
        if isinstance(obj, Obj):
            return obj
        if isinstance(obj, tuple):
            return tuple(self.template(o, what) for o in obj)
        if isinstance(obj, list):
            return [self.template(o, what) for o in obj]
        if isinstance(obj, slice):
            return slice(self.template(obj.start, what), self.template(obj.stop, what),
                         self.template(obj.step, what))
        if isinstance(obj, dict):
            return {k: self.template(v, what) for k, v in obj.items()}
        return obj

    # ---------------- recording ----------------
    def kernel(self, fn, args, out, what, writes=False, check_shape=False, prim=None):
        """Record `out = fn(*args)` (out: an array or a tuple of arrays; with `writes`, written in place into an
        argument: an effect when that array outlives the call)."""
        if self.suspended:
            return out
        if writes:
            values, self.constant_values = self.constant_values, {}
            for o in (out if out.__class__ is tuple else (out,)):
                if o.__class__ is not np.ndarray:
                    continue
                r = self.known.get(id(o))
                if r is not None and r.kind is CONST:
                    self._written_constant(o, r, values.get(id(o)))
                else:  # (a view of one: `c[:2].add_(x)`, an as_strided window: memory.known_base)
                    r = known_base(self.known, o.base)
                    if r is not None and r.kind is CONST:
                        self._written_constant(r.key, r, None)
        tmpl = self.template(args if args.__class__ is tuple else tuple(args), what)
        if out.__class__ is np.ndarray and not writes and not check_shape:  # the common case, one new array: the
            k = self.nslots                                                 # loop below for one output, unrolled
            self.nslots = k + 1  # (new_slot, _ufunc and _into inlined: ~2,000 calls per W1 capture)
            self._know(out, Ref(SLOT, k))
            if prim is not None:
                ufunc, into = prim.ufunc, prim.into
            else:
                ufunc = fn if fn.__class__ is np.ufunc else None
                into = HOST_INTO.get(fn) if fn.__hash__ is not None else None
            op = Op(fn, tmpl, k, None, False, "kernel", None, prim, ufunc, into)
            owner = False if out.base is None else self._owner(out, args)
            if owner is False:
                if prim is not None or ufunc is not None or into is not None:
                    op.layout = layout(out)
            else:
                op.views = ((k, owner),)
            self.ops.append(op)
            return out
        outs = out if isinstance(out, tuple) else (out,)
        slots, effect = [], False
        for o in outs:
            if not isinstance(o, np.ndarray):
                self.fail(f"{what} at {user_site(3)} returned a {type(o).__name__}, not an array")
                return out
            r = self.known.get(id(o))
            if writes and r is not None and r.kind == SLOT:
                slots.append(r.key)  # an in-place update of this call's array: an effect if it views memory from
                effect = effect or self._outside(o)  # outside the call (`p.reshape(2, 3).add_(1)` changes p)
            else:
                effect = effect or (writes and r is not None)  # written into an argument or a live tensor
                slots.append(self.new_slot(o))
        shapes = tuple(o.shape for o in outs) if check_shape else None
        op = Op(fn, tmpl, tuple(slots) if isinstance(out, tuple) else slots[0], _caller(2) if check_shape else None,
                effect, "kernel", shapes)  # the user's line: only a shape guard's message names it
        owners = [(k, self._owner(o, args)) for o, k in zip(outs, slots)]
        op.views = tuple((k, owner) for k, owner in owners if owner is not False)
        op.prim = prim
        op.ufunc = _ufunc(fn, prim)
        op.into = _into(fn, prim)
        if (prim is not None or op.ufunc is not None or op.into is not None) and not isinstance(out, tuple) and \
                not writes and not op.views and not check_shape:  # (a shape the values decide: no planned buffer)
            op.layout = layout(out)
        self.ops.append(op)
        return out

    def primitive(self, prim, inputs, attrs, out):
        """kernel(prim.forward, (*inputs, *attrs), out, prim.name, prim=prim) for recorder.apply's usual call, one
        new array from tensors and attributes (a scalar result, or a getitem whose shape a mask decides, goes to
        kernel()): template() of the tensors, new_slot() and the layout unrolled, as that path of kernel() (W1: ~1,700
        calls a capture, ~100 fewer bytecodes each)."""
        known, created, tmpl = self.known, self.created, []
        for t in inputs:
            r = known.get(id(t._data))
            if r is None or not (id(t) in created if r.kind is SLOT else
                                 self._stands_for(r, t) and not self._stale(r, t._data)):
                r = self.ref(t, prim.name)
            tmpl.append(r)
        if attrs:
            tmpl.extend(self.template(attrs, prim.name))
        k = self.nslots
        self.nslots = k + 1
        self._know(out, Ref(SLOT, k))
        op = Op(prim.forward, tuple(tmpl), k, None, False, "kernel", None, prim, prim.ufunc, prim.into)
        if out.base is None:
            op.layout = layout(out)
        else:
            owner = self._owner(out, (*inputs, *attrs))
            if owner is False:
                op.layout = layout(out)
            else:
                op.views = ((k, owner),)
        self.ops.append(op)

    def _owner(self, o, args):
        """False for an output that owns its memory (or views all of an array made inside the call, see
        memory.fresh); for a view, the slot of the array it views when the call made it, else None."""
        base = o.base
        if base is None:
            return False
        known = self.known
        if base.__class__ is np.ndarray and fresh(o, known, args):  # a later view of that memory (`.T` of the
            self._know(base, known[id(o)])                          # copy) has it as its base: o's slot
            return False
        r = known_base(known, base)
        if r is not None and r.kind is CONST:  # (a view of a constant: see _written_constant)
            self.viewed_constants.add(id(r.key))
        return r.key if r is not None and r.kind == SLOT else None

    def _outside(self, o):
        """Whether array `o` views memory from outside the call: an argument's, a live tensor's, a gradient's."""
        r = known_base(self.known, o.base)
        return r is not None and r.kind != SLOT and r.kind != CONST

    def host_call(self, fn, args, what, effect=True):
        """Record a call re-run as Python at replay; its own inner operations are not recorded. `effect=False`
        for a call a replay may run again without harm (zero_grad, train/eval, a check that only raises)."""
        tmpl = self.template(tuple(args), what)
        self.ops.append(Op(fn, tmpl, None, None, effect, "host"))

    def drew(self):
        """The package's generator is drawn from now (random.get_rng): a replay whose guards all come before the
        first draw has nothing to undo when one fails (Plan.restores_rng)."""
        if self.drawn_after is None:
            self.drawn_after = self.ops[-1] if self.ops else START

    def active(self):
        """Whether this capture is recording on this thread now."""
        return state.capture is self and not self.suspended

