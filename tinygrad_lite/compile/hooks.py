"""What the library calls where it computes on tensor data outside the primitives, so that tl.compile can record
it (see capture.py): `host` (a NumPy computation), `host_effect` (one that writes into an array), `host_shaped`
(an output whose shape depends on values), `host_check` (a check that raises), `decide` (a choice made from values),
`constant` (an array of Python values only), `data` (a tensor's array, read live by a replay) and `replayable`
(a method re-run as Python). Outside a capture each is a plain call plus one flag read."""
import numpy as np

from ..autograd import recorder as _recorder
from ..autograd.grad_mode import state


def data(t):
    """`t._data`, for a host computation on a tensor that may have been made before the call (a buffer, a
    parameter): the capture learns where the array comes from, so a replay reads the tensor's current data."""
    cap = state.capture
    if cap is not None and not cap.suspended:
        cap.ref(t, "reading a tensor's data")
    return t._data


def active():
    """The capture running on this thread, or None (outside a capture, or inside a host call)."""
    cap = state.capture
    return cap if cap is not None and not cap.suspended else None


def refuse(what):
    """Make the call being captured, if any, run eagerly (every call, with the reason): `what` is something the
    library does in Python that a replay, which runs no Python, would not do again (a checkpoint written, a graph
    drawn, gradient statistics recorded)."""
    cap = active()
    if cap is not None:
        from .record import user_site
        cap.fail(f"{what} at {user_site(2)}: a replay runs no Python, so it would not do it again")


def host(fn, *args):
    """Run `fn(*args)`, a NumPy computation on tensor data outside the primitives (a VJP's mask, a dropout draw),
    recorded as a kernel when capturing, so a replay recomputes it from the current values. NumPy scalars in the
    result come back as 0-d arrays."""
    out = fn(*args)
    if _has_scalar(out):
        fn = _arrays_from(fn)
        out = _as_arrays(out)
    if not _recorder.capturing:
        return out
    cap = state.capture
    if cap is not None and not cap.suspended:
        cap.kernel(fn, args, out, f"{getattr(fn, '__name__', 'host computation')}")
    return out


def _has_scalar(out):
    return isinstance(out, np.generic) or (isinstance(out, tuple) and any(isinstance(o, np.generic) for o in out))


def _as_arrays(out):
    if isinstance(out, tuple):
        return tuple(np.asarray(o) if isinstance(o, np.generic) else o for o in out)
    return np.asarray(out)


def _arrays_from(fn):
    def call(*args):
        return _as_arrays(fn(*args))
    call.__name__ = getattr(fn, "__name__", "host computation")
    call.__wrapped__ = fn  # its batching rule (vmap) is the function's
    return call


def _run_recorded(fn, args, **kind):
    out = fn(*args)
    cap = state.capture
    if cap is not None and not cap.suspended:
        cap.kernel(fn, args, out, getattr(fn, "__name__", "host computation"), **kind)
    return out


def host_effect(fn, *args):
    """Run `fn(*args)`, which writes into one of its array arguments and returns it (in-place NumPy), recorded."""
    cap = state.capture
    if cap is not None and not cap.suspended:
        cap.before_write(args)  # (a constant written: its values before, which each replay starts from)
    return _run_recorded(fn, args, writes=True)


def host_shaped(fn, *args):
    """`host` for a computation whose output shape depends on the values (e.g. classes counted from the data):
    a replay checks the shape and runs eagerly if it differs."""
    return _run_recorded(fn, args, check_shape=True)


def decide(fn, *args):
    """`bool(fn(*args))`, a choice the library makes from tensor values (does this slice contain a zero?): a
    replay computes it again and runs eagerly if it comes out differently (a guard)."""
    value = bool(fn(*args))
    cap = state.capture
    if cap is not None and not cap.suspended:
        cap.decision(fn, args, value)
    return value


def host_check(fn, *args):
    """Run `fn(*args)`, a check of tensor values that raises on bad data (an index out of range, a probability
    outside [0, 1]): a replay runs it again, so bad data raises there too, with the eager error."""
    fn(*args)
    cap = state.capture
    if cap is not None and not cap.suspended:
        cap.host_call(fn, args, f"{getattr(fn, '__name__', 'check')}", effect=False)


def argument(x, fn, *args, typed=False):
    """`fn(n, *args)` for the number n behind `x` when `x` is a numeric argument of the call being captured with
    dynamic=True (an Arg proxy) or a value it read out of a tensor (a Read: `lam * x` after `lam = t.item()`),
    recorded with that number as its input: a replay passes each call's own number. None when `x` is anything
    else (a number fixed by guarded reads among them). `typed`: the result depends on whether n is an int or a
    float, not only on its value (a number with an integer or bool tensor); then a number whose type may differ
    from call to call (one of a library object's state, live_numbers: a learning rate 1, then 0.5) is None too, so
    the caller guards its value (a replay with another type made the recorded int64 step a float64 one)."""
    cap = state.capture
    if cap is None or cap.suspended or x._capture is not cap or x.derived:
        return None
    if typed and _type_varies(cap.reads[x._index]):
        return None
    out = fn(x._value, *args)
    cap.kernel(fn, (x,) + args, out, getattr(fn, "__name__", "a numeric argument"))
    return out


def _type_varies(rec):
    """Whether the number of ReadRecord `rec` may be an int in one call and a float in another: one of a library
    object's state (live_numbers), or computed from one (an argument's type is in the signature, a value read out
    of a tensor has the tensor's dtype)."""
    if rec.kind == "state":
        return True
    return rec.kind == "computed" and any(o.__class__ is rec.__class__ and _type_varies(o) for o in rec.ref.operands)


def constant(arr):
    """Declare an array made from Python values only (no tensor data), e.g. `np.zeros((), dtype)`."""
    cap = state.capture
    if cap is not None:
        cap.constant(arr)
    return arr


def replayable(method=None, *, idempotent=False, clears_grads=False, reads_grads=True, sets_training=False,
               changes=None):
    """Decorator for library methods a replay re-runs as Python (optimizer steps, zero_grad): while capturing,
    the call is recorded as one host call and its inner operations are not. `idempotent`: running it twice is
    harmless (zero_grad, train), so a guard after it can still send the call back to eager execution.
    `clears_grads`: with set_to_none (its default) the method leaves every `.grad` None, whatever it was, so
    whether they were None before is not a guard (a training step that starts with zero_grad then replays from
    its second call, not its third). `reads_grads=False`: the method never looks at a `.grad` (Module.train), so
    whether they are None is no guard of it (a step that begins with `model.train()` then replays from its second
    call, not its third: the first call's parameters had no gradient yet). `sets_training`: the method sets the
    `.training` of the module and all below it (Module.train, eval), so their mode before it is no guard (a step that
    begins with `model.train()` replays whether the previous evaluation left the model in eval mode or not).
    `changes(self)`: the Python objects whose contents a call of the method changes (an optimizer's state, a
    scheduler and its optimizer's parameter groups), for a method that is not idempotent; default, `self`. A value
    the function reads from inside one of them may change during the call, so it is no guard (__init__.
    _inside_replayed)."""
    if method is None:
        return lambda m: replayable(m, idempotent=idempotent, clears_grads=clears_grads, reads_grads=reads_grads,
                                    sets_training=sets_training, changes=changes)

    def wrapper(self, *args, **kwargs):
        cap = state.capture
        if cap is None or cap.suspended:
            return method(self, *args, **kwargs)
        if getattr(self, "_made_during", None) == id(cap) or id(self) in cap.made_objects:  # (an optimizer or a
            # scheduler made inside the compiled function)
            cap.fail(f"{type(self).__name__} was made inside the function: a replay would step the recorded one, "
                     f"keeping its state, where each eager call starts a new one; make it outside")
            return method(self, *args, **kwargs)
        if kwargs.get("closure") is not None or any(callable(a) for a in args):
            cap.fail(f"{type(self).__name__}.{method.__name__} with a closure (the closure's Python would not be "
                     f"re-run)")
            return method(self, *args, **kwargs)
        note = cap.observe_grad
        if clears_grads and kwargs.get("set_to_none", args[0] if args else True):
            note = cap.grad_cleared  # from here on the .grad is None at every replay: not a guard
        elif not reads_grads:
            note = _ignored
        for group in getattr(self, "param_groups", ()):
            for p in group["params"]:
                note(p)
        if hasattr(self, "modules") and hasattr(self, "training"):  # a Module
            met = cap.training_set if sets_training else cap.observe_training
            for m in self.modules():
                met(m)
            for p in self.parameters():
                note(p)
        cap.host_call(_bound(method, kwargs), (self,) + args, f"{type(self).__name__}.{method.__name__}",
                      effect=not idempotent)
        if not idempotent:
            for obj in (self,) if changes is None else changes(self):
                cap.changed[id(obj)] = obj
        cap.suspended += 1
        try:
            return method(self, *args, **kwargs)
        finally:
            cap.suspended -= 1
    wrapper.__name__, wrapper.__doc__, wrapper.__wrapped__ = method.__name__, method.__doc__, method
    return wrapper


def made(obj):
    """Note that library object `obj` (a learning rate scheduler, from its class's __new__) is being made inside the
    call being captured, if any: its replayable methods (the constructor's initial step, `step()`) then make the call
    run eagerly, since a replay would step the recorded object, keeping its state, where each eager call makes a new
    one (an optimizer notes the same with `_made_during`; a scheduler's state_dict is its attributes, so not there)."""
    cap = active()
    if cap is not None:
        cap.made_objects[id(obj)] = obj  # (held until the capture is dropped: its id stays unique meanwhile)
    return obj


def live_numbers(method=None, *, sizes=None):
    """Decorator for a library method that returns a list of numbers from its object's state, such as
    `sched.get_last_lr()`: while capturing, each number is a Read proxy (reads.py) that a replay reads again from
    the object at this point of the call (after the replayed steps before it, a scheduler's step included), so a
    call that returns it replays with each call's own value, and one that uses it in Python is guarded by it, as a
    value read from a tensor is. Anything but plain numbers in the list makes the call run eagerly.
    `sizes(obj)`: what fixes the list's length wherever the call reads it, at the call's start (a scheduler's:
    the length of its last list and the number of its optimizer's parameter groups, the next step's length); a
    replay checks it before anything else, since the list's length is baked into the record (a parameter group
    added between calls gave the recorded one learning rate)."""
    if method is None:
        return lambda m: live_numbers(m, sizes=sizes)

    def wrapper(self, *args, **kwargs):
        out = method(self, *args, **kwargs)
        cap = state.capture
        if cap is None or cap.suspended:
            return out
        what = f"{type(self).__name__}.{method.__name__}()"
        if out.__class__ is not list or not all(_plain_number(v) for v in out):
            kinds = sorted({type(v).__name__ for v in out}) if isinstance(out, list) else [type(out).__name__]
            cap.fail(f"{what} returned {' and '.join(kinds)} values, not a list of plain numbers that a replay "
                     f"could read again")  # (not their repr: a tensor's is a read of its data)
            return out
        if sizes is not None:
            cap.state_sizes(self, sizes, what)
        return [cap.state_read(_nth(method, self, i), v, f"{what}[{i}]") for i, v in enumerate(out)]
    wrapper.__name__, wrapper.__doc__, wrapper.__wrapped__ = method.__name__, method.__doc__, method
    return wrapper


def _plain_number(v):
    return v.__class__ in (int, float) or isinstance(v, (np.floating, np.integer))


def _nth(method, obj, i):
    return lambda: method(obj)[i]


def _ignored(p):
    return None


def _bound(method, kwargs):
    if not kwargs:
        return method
    return lambda *args: method(*args, **kwargs)


# ---------------- a host computation's result written into a planned buffer (tl.compile), beside the function ----
HOST_INTO = {}  # fn -> rule(out, *args): fn's result, bit for bit, written into `out` and returned


def into_rule(fn):
    """Decorator: `@into_rule(fn) def rule(out, *args)` writes what `fn(*args)` returns into the array `out` (of
    its shape and dtype), so a tl.compile replay reuses one buffer instead of a new array per call."""
    def deco(rule):
        HOST_INTO[fn] = rule
        return rule
    return deco


def _filled(value):
    def rule(out, shape, dtype=None):
        out.fill(value)
        return out
    return rule


into_rule(np.zeros)(_filled(0))  # (the engine's gradient buffers and backward's seed)
into_rule(np.ones)(_filled(1))


@into_rule(np.empty)  # (a gradient its slices tile: every position written after)
def _(out, shape, dtype=None):
    return out


@into_rule(np.copy)  # (tl.tensor's, clone's and an index's copies: the values, in the planned buffer's layout)
def _copy_into(out, a, order="K"):
    np.copyto(out, a)
    return out


# ---------------- how a host computation maps over a batch (tl.func.vmap), declared beside the function ----------
ELEMENTWISE = set()  # functions that broadcast their array arguments elementwise (so aligned batches just work)
BATCH_RULES = {}     # fn -> rule(args, batched): args with the batch leading in the arrays that carry one
RANDOM = set()       # functions that draw random numbers (refused by vmap's randomness='error')


def elementwise(fn):
    """Mark `fn` as broadcasting its array arguments elementwise (vmap runs it on the aligned batch)."""
    ELEMENTWISE.add(fn)
    return fn


def batching_rule(fn):
    """Decorator: `@batching_rule(fn) def rule(args, batched)` declares how `fn` runs on a whole batch: `args`
    as `fn` takes them, its arrays with the batch leading where `batched` (one flag per array, in order) says."""
    def deco(rule):
        BATCH_RULES[fn] = rule
        return rule
    return deco


def draws_random(fn):
    RANDOM.add(fn)
    return fn


# ---------------- small NumPy functions the library hands to host()/decide() in several places ----------------
elementwise(getattr(np.copy, "__wrapped__", np.copy))  # tl.tensor's copy of its data, getitem's and gather's
# copies of an index (vmap looks through NumPy's dispatch wrapper to the function it wraps)


@elementwise
def astype(arr, dtype):
    return arr.astype(dtype)


@elementwise
def positive(x):
    return x > 0


@elementwise
def negative(x):
    return x < 0


def has_zero(x):
    return (x == 0).any()


elementwise(np.copy)


@batching_rule(getattr(np.reshape, "__wrapped__", np.reshape))  # (the key host() looks up)
def _reshape_batch(args, batched):
    """A per-sample shape: the batch kept in front (max pooling's and adaptive max pooling's indices, sort's)."""
    a, shape, *rest = args
    if not batched[0]:
        return np.reshape(a, shape, *rest)
    return np.reshape(a, (a.shape[0],) + ((shape,) if isinstance(shape, int) else tuple(shape)), *rest)
