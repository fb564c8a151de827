"""Plan: a capture turned into steps on numbered slots, with the slots freed after their last use, buffers planned
for the outputs that can be written into one, and the guards (reads used in Python, value-dependent choices and
shapes); replay: the steps on the current arguments, run one by one (a program) for the first replays and then as
generated straight-line Python (both renderings in replay.py).

A replay calls the very functions the eager call ran (primitive forwards — the NumPy ufunc itself where the
forward is one —, the library's host computations, the optimizer's own step), on the current arrays, in the
recorded order, leaving out only primitives whose results nothing reads; so its results are the eager results, bit
for bit. What could differ (a value read into Python and used there) is a guard checked where it was read, before
anything with an effect beyond fresh arrays has run.
"""
import copy
import operator

import numpy as np

from .._gc import paused_gc, promote
from .._size import Size
from .buffers import live_ops, plan_buffers, refs as _refs, validate, view_roots
from .record import (ARG, ARGGRAD, ARGOBJ, CONST, GRAD, LIVE, SLOT, START, Converted, Ref, Unsupported, live_graph,
                     map_structure, same_value)
from .reads import Read, ReadRecord, read_value
from .interpret import program, run_program
from .replay import CHUNK, ReplayGuardFailed, _Emitter, _array, _resolver, fixed_slots


INTERPRETED_REPLAYS = 8  # replays run step by step before the plan is turned into straight-line code


class Plan:
    """A replayable record of one call. Raises Unsupported when the capture cannot be replayed safely."""
    counters = None  # the function's counters, which a replay moves once it has run (constants._Counters)

    def __init__(self, cap, result):
        if cap.failure is not None:
            raise Unsupported(cap.failure)
        self.nslots = cap.nslots
        self.result = _result_template(cap, result)
        if cap.failure is not None:
            raise Unsupported(cap.failure)
        steps, self.dynamic_reads = [], {}  # steps: ("op", op) or ("closure", fn), in order
        keep = {r.key for r in _refs(self.result, []) if r.kind == SLOT}
        ops, op_reads = live_ops(hoist_reads(cap.ops), keep)
        effect_seen = guarded = False  # guarded: a step may send the call back to eager (a guard)
        uses = {}
        reads_of, writes_of = self.reads_of, self.writes_of = [], []  # per step: slots read, written (validate)
        for i, (op, read) in enumerate(zip(ops, op_reads)):
            kind = op.kind
            if kind == "read":
                rec = op.args
                if rec.used and effect_seen:
                    raise Unsupported(f"{rec.describe()} is used in Python after the call already changed state (an "
                                      f"optimizer step, a gradient delivered): a replay could not stop cleanly if it "
                                      f"differed")
                if rec.used:
                    guarded = True
                for k in read:
                    uses[k] = i
                reads_of.append(read)
                writes_of.append([])
                steps.append(("closure", self._read_step(rec)))
                continue
            if kind == "compare":
                rec, other = op.args
                if effect_seen:
                    raise Unsupported(f"{rec.describe()} is compared in Python after the call already changed state: a "
                                      f"replay could not stop cleanly")
                guarded = True
                reads_of.append([])
                writes_of.append([])
                steps.append(("closure", self._compare_step(rec, op.fn, other, op.outs, op.site)))
                continue
            if kind == "decision":
                if effect_seen:
                    raise Unsupported(f"a choice made from tensor values at {op.site} comes after the call already "
                                      f"changed state: a replay could not stop cleanly if it came out differently")
                guarded = True
            for k in read:
                uses[k] = i
            reads_of.append(read)
            outs = op.outs
            writes_of.append([outs] if outs.__class__ is int and kind == "kernel" else
                             [] if kind in ("host", "decision") else list(outs))
            if op.shapes is not None:
                if effect_seen:
                    raise Unsupported(f"an operation at {op.site} makes an output whose shape depends on values, "
                                      f"after the call already changed state: a replay could not stop cleanly")
                guarded = True
            effect_seen = effect_seen or op.effect
            steps.append(("op", op))
        release = [[] for _ in steps]
        for k, last in uses.items():  # every array is freed after its last use
            if k not in keep:
                release[last].append(k)
        self.buffer_of, self.buffers, self.span, self.inplace, self.placed, skipped = \
            plan_buffers(ops, op_reads, uses, keep)
        for i in skipped:  # a slice's copy into its gradient buffer: the slice was computed in place
            steps[i] = ("skip", None)
        self.fixed = fixed_slots(ops, self.buffer_of)
        self.start = [None] * self.nslots  # each replay's slots start as this: a fixed slot holds its buffer
        for k in self.fixed:
            self.start[k] = self.buffers[self.buffer_of[k]]
        # The first replay turns the steps into straight-line code (compiling Python costs a few milliseconds per
        # 400 steps: a function called once is never compiled).
        self._pending = (steps, release)
        self.chunks = self._steps_fns = None
        self.replays = 0
        self.release = release
        self.keep = keep
        self.restores_rng = guarded and _guard_after_draw(ops, getattr(cap, "drawn_after", START))
        validate(self)
        self.live = list(cap.live.values())
        self.leaves = list(cap.leaves.values())  # (tensor, its .grad was None when the call began)
        self.arg_grads = sorted(cap.arg_grads.items())  # (argument index, its .grad was None when the call began)
        self.modules = list(cap.modules.values())  # (module, its .training when the call began, or None)
        self.result = _detach_reads(self.result, self)
        self._result = _result_code(self.result)

    def _compare_step(self, rec, name, other, expected, site):
        index = self.dynamic_reads[id(rec)]
        compare = getattr(operator, name.strip("_"))  # not int.__gt__: it answers NotImplemented for a float

        def run(vals, argv):
            if bool(compare(vals.reads[index], other)) != expected:
                raise ReplayGuardFailed(f"a comparison of a value read from a tensor at {site} came out "
                                        f"{not expected} (recorded: {expected})")
        return run

    def _read_step(self, rec):
        get = _resolver(rec.ref) if isinstance(rec.ref, Ref) else None
        if rec.kind == "computed":  # arithmetic on this replay's earlier reads (reads.Computed)
            get = self._computed(rec.ref)
        elif rec.kind == "state":  # a number of a library object's state (hooks.live_numbers)
            get = _state_getter(rec.ref)
        index = len(self.dynamic_reads)
        self.dynamic_reads[id(rec)] = index
        guarded, kind, expected = rec.used, rec.kind, rec.value

        def run(vals, argv):
            value = read_value(get(vals, argv), kind)
            if guarded and not same_value(value, expected):
                if kind == "arg":
                    raise ReplayGuardFailed(f"{rec.site} was {expected!r} when recorded and is {value!r} now (with "
                                            f"dynamic=True a number is an input where a tensor operation takes it "
                                            f"as an operand; the function also used its value in Python)")
                what = rec.describe() if kind in ("computed", "state") else \
                    f"the value read with .{kind}() at {rec.site}"
                raise ReplayGuardFailed(f"{what} was {expected!r} when recorded and is {value!r} now")
            vals.reads[index] = value
        return run

    def _computed(self, c):
        picks = [(True, self.dynamic_reads[id(o)]) if o.__class__ is ReadRecord else (False, o) for o in c.operands]
        fn = c.fn
        if len(picks) == 1:
            i = picks[0][1]
            return lambda vals, argv: fn(vals.reads[i])
        (a_read, a), (b_read, b) = picks
        if a_read and b_read:
            return lambda vals, argv: fn(vals.reads[a], vals.reads[b])
        if a_read:
            return lambda vals, argv: fn(vals.reads[a], b)
        return lambda vals, argv: fn(a, vals.reads[b])

    def _interpret(self):
        """The first replays run the steps as a program of tuples (building it is cheap), so a plan pays
        for turning itself into straight-line code (~12 us per step of Python's compiler) only once it has been
        replayed INTERPRETED_REPLAYS times: short loops start saving time at once."""
        steps, release = self._pending
        self._steps_fns = program(steps, release, self.buffer_of, self.buffers, self.start)

    def _run_steps(self, vals, argv):
        if self.chunks is not None:
            for chunk in self.chunks:
                chunk(vals, argv)
            return
        run_program(self._steps_fns, vals, argv)

    def _generate(self):
        steps, release = self._pending
        returned = set()  # a returned slot is never a cached view: each call returns its own array object
        for r in _refs(self.result, []):
            if r.kind == SLOT:
                returned.add(r.key)
        chunks, stable = [], set()
        for start in range(0, len(steps), CHUNK):
            em = _Emitter(self.buffer_of, self.buffers, stable, returned, self.fixed)
            for i in range(start, min(start + CHUNK, len(steps))):
                kind, item = steps[i]
                if kind == "op":
                    em.op(item, i)
                elif kind == "closure":
                    em.closure(item, i)
                em.release(release[i])
            chunks.append(em.build())
        self.chunks, self._pending, self._steps_fns = chunks, None, None

    def run(self, argv, call=None):
        if self._pending is not None:
            with paused_gc():
                if self.replays >= INTERPRETED_REPLAYS:
                    self._generate()
                elif self._steps_fns is None:
                    self._interpret()
            promote()  # the steps just built live as long as the plan
        self.replays += 1
        vals = _Values(self.start, len(self.dynamic_reads), call)
        if not self.restores_rng:  # (no guard after a draw: a failing guard has no draw to undo)
            self._run_steps(vals, argv)
            return self._result(vals, argv)
        from ..random import get_rng, set_rng
        rng = get_rng()
        saved = rng.bit_generator.state  # a guard that fails sends the call to eager: draws must start over
        try:
            self._run_steps(vals, argv)
        except ReplayGuardFailed:
            rng.bit_generator.state = saved
            set_rng(rng)
            raise
        return self._result(vals, argv)


def _guard_after_draw(ops, mark):
    """Whether a guard (a step that may send the call back to eager) may come after the package generator was
    drawn from: after the op `mark` (Capture.drawn_after; START: before any op; None: no draw), or anywhere when
    `mark` is not among `ops` (dropped as unused, or a part of a capture, aot's, which does not say)."""
    if mark is None:
        return False
    drawn = mark is START or not any(op is mark for op in ops)
    for op in ops:
        drawn = drawn or op is mark
        if drawn and (op.kind in ("compare", "decision") or (op.args.used if op.kind == "read" else
                                                              op.shapes is not None)):
            return True
    return False


def _result_code(tmpl):
    """The returned structure of one replay — tensors of this call's arrays, each read's own value — as one function
    result(vals, argv) generated once: a replay's last Python, run with the interpreter's caches cold after the
    kernels (`return (loss.item(),)` cost 40 us through map_structure's walk, 2 us so). Its containers are rebuilt
    as map_structure rebuilds them: namedtuples, tuples, lists, sets and their subclasses of their own types, a
    dict's read key as its plain value, a dict subclass (OrderedDict, defaultdict, Counter) copied and refilled."""
    ns, names = {"_wrap": None, "_const": _returned_constant, "_array": _array, "_refilled": _refilled,
                 "_argument_at": _argument_at}, {}
    counts, bound = {}, {}  # a leaf returned in several places (the same tensor twice): made once, a local after
    _count(tmpl, counts)

    def name(obj):
        key = names.get(id(obj))
        if key is None:
            key = names[id(obj)] = f"c{len(ns)}"
            ns[key] = obj
        return key

    def code(t):
        if counts.get(id(t), 0) > 1 and t.__class__ in (Ref, _Shared, Converted):
            local = bound.get(id(t))
            if local is not None:
                return local
            local = bound[id(t)] = f"v{len(bound)}"
            return f"({local} := {made(t)})"
        return made(t)

    def made(t):
        cls = t.__class__
        if cls is _Itself:  # a container from outside the call: itself (an argument's: this call's)
            return name(t.obj) if t.path is None else f"_argument_at(vals.call, {name(t.path)})"
        if isinstance(t, Size):  # a shape: a leaf
            return name(t)
        if isinstance(t, tuple) and hasattr(t, "_fields"):
            return f"{name(cls)}({', '.join(code(o) for o in t)})"
        if isinstance(t, (tuple, list, set, frozenset)):
            items = [code(o) for o in t]
            if cls is tuple:
                return f"({', '.join(items)},)" if items else "()"
            if cls is list:
                return f"[{', '.join(items)}]"
            return f"{name(cls)}(({''.join(i + ', ' for i in items)}))"
        if isinstance(t, dict):  # (a key read from a tensor was hashed, so guarded: its plain value)
            pairs = [(name(k._value if isinstance(k, Read) else k), code(v)) for k, v in t.items()]
            if cls is dict:
                return "{" + ", ".join(f"{k}: {v}" for k, v in pairs) + "}"
            return f"_refilled({name(t)}, ({''.join(f'({k}, {v}), ' for k, v in pairs)}))"
        if cls is Ref:
            kind, key = t.kind, t.key
            if kind == SLOT:
                return f"_wrap(vals[{key}])"
            if kind in (ARG, ARGOBJ):
                return f"argv[{key}]"
            if kind == ARGGRAD:
                return f"argv[{key}]._grad"
            if kind == LIVE:
                return name(key)
            if kind == GRAD:
                return f"{name(key)}._grad"
            return f"_const({name(key)})"
        if cls is _Shared:
            r = t.ref
            return f"_wrap({name(r.key)}._data)" if r.kind == LIVE else f"_wrap(_array(argv[{r.key}]))"
        if cls is Converted:  # `return out.numpy()`: this call's array (or its list), as eager's
            arr = code(t.tensor) + "._data"
            return arr if t.how == "numpy" else arr + ".tolist()"
        if cls is _DynRead:
            return f"vals.reads[{t.index}]"
        return name(t)

    body = code(tmpl)
    from ..tensor import Tensor
    ns["_wrap"] = Tensor._wrap
    exec(compile(f"def result(vals, argv):\n    return {body}\n", "<tl.compile result>", "exec"), ns)
    return ns["result"]


def _count(t, counts):
    """How many times each object occurs in result template `t` (its containers walked as _result_code walks them)."""
    counts[id(t)] = counts.get(id(t), 0) + 1
    if isinstance(t, Size):
        return
    if isinstance(t, (tuple, list, set, frozenset)):
        for o in t:
            _count(o, counts)
    elif isinstance(t, dict):
        for o in t.values():
            _count(o, counts)
    elif t.__class__ is Converted:
        _count(t.tensor, counts)


def _refilled(obj, pairs):
    """A dict subclass in a result, as map_structure rebuilds it: a copy of the recorded one, emptied, refilled."""
    new = copy.copy(obj)
    new.clear()
    for k, v in pairs:
        new[k] = v
    return new


def _returned_constant(arr):
    """A constant the call returns (`tl.tensor([1.0, 2.0])`): eager makes a new array each call, which the caller
    may change; a read-only one is a cached scalar, shared by eager calls too."""
    from ..tensor import Tensor
    return Tensor._wrap(arr.copy() if arr.flags.writeable else arr)


def hoist_reads(ops):
    """`ops` with each `.item()` read that comes after an effect (an optimizer step) and is compared in Python
    (`loss.item() < best` after `opt.step()`) moved, with its comparisons, to right after the last step that wrote
    the memory it reads, when that is before the effect: the value is the same there (nothing writes that memory in
    between), and the comparisons' guards then fail before anything changed state, so the call can go back to eager.
    (Not a read guarded by its value, `1 / loss.item()`: one that changes every call would record a variant every
    call; it stays a reason to run eagerly.) Only for an array the call made whose memory (views and in-place writes
    included) no host call is given: a host call (a delivery into `.grad`, then `zero_grad(set_to_none=False)`)
    could write it unseen."""
    if not any(op.effect for op in ops):
        return ops
    root = view_roots(ops)
    compares = {}
    for i, op in enumerate(ops):
        if op.kind == "compare":
            compares.setdefault(id(op.args[0]), []).append(i)
    moves, effect = {}, None  # read's index -> where it goes; the first effect's index
    for j, op in enumerate(ops):
        if op.kind != "read":
            effect = j if effect is None and op.effect else effect
            continue
        rec = op.args
        if effect is None or rec.kind != "item" or rec.ref.kind != SLOT or rec.used or id(rec) not in compares:
            continue
        at = _last_write(ops, j, root.get(rec.ref.key, rec.ref.key), root)
        if at is not None and at < effect:
            moves[j] = at
    if not moves:
        return ops
    after, moved = {}, set()  # index -> the moved steps that go right after it
    for j, at in moves.items():
        group = [j] + [c for c in compares[id(ops[j].args)] if c > j]
        after.setdefault(at, []).extend(group)
        moved.update(group)
    out = []
    for i, op in enumerate(ops):
        if i not in moved:
            out.append(op)
        out.extend(ops[m] for m in after.get(i, ()))
    return out


def _last_write(ops, j, base, root):
    """The index of the last step before `j` that writes memory of root `base` (its producer, an in-place write
    through any view), or None when a host call is given that memory or it is not the call's own."""
    if base is None:  # (a view of memory from outside the call)
        return None
    last = None
    for i in range(j):
        op = ops[i]
        if op.kind == "host":
            if any(r.kind == SLOT and root.get(r.key, r.key) == base for r in _refs(op.args, [])):
                return None
        elif op.kind == "kernel":
            outs = op.outs if op.outs.__class__ is tuple else (op.outs,)
            if any(root.get(k, k) == base for k in outs):
                last = i
    return last


def _state_getter(get):
    return lambda vals, argv: get()


class _Shared:
    """In a plan's result: a tensor the call made on an argument's or a live tensor's array (`x.detach()`, `x.data`,
    `tl.from_numpy(a)`, `p.detach()`): a new tensor on that call's array, as eager returns (the Ref alone returned the
    argument itself, requires_grad and all, or the NumPy array; the live tensor itself)."""
    __slots__ = ("ref",)

    def __init__(self, ref):
        self.ref = ref


class _DynRead:
    """In a plan's result: the value of the replay's read number `index`."""
    __slots__ = ("index",)

    def __init__(self, index):
        self.index = index


def _detach_reads(tmpl, plan):
    """The result template with Read proxies replaced by _DynRead (a plan keeps no reference to its capture)."""
    def leaf(t):
        if not isinstance(t, Read):
            return t
        if t.derived:  # computed from guarded reads: the same number on every replay
            return t._value
        return _DynRead(plan.dynamic_reads[id(t._capture.reads[t._index])])
    return map_structure(tmpl, leaf)


class _Values(list):
    """The slot values of one replay, the values its reads produced and the call's (args, kwargs)."""
    __slots__ = ("reads", "call")

    def __init__(self, start, nreads, call=None):
        super().__init__(start)
        self.reads = [None] * nreads
        self.call = call


class _Itself:
    """In a plan's result: a container from outside the call that the call returns (observed by reference counts,
    compile._returned_containers), returned as itself, as eager returns it; one of the arguments (`path`: its keys
    from (args, kwargs) down, compile._origins) is this call's object there."""
    __slots__ = ("obj", "path")

    def __init__(self, obj, path=None):
        self.obj, self.path = obj, path


def _argument_at(call, path):
    """The object at `path` (keys) of a call's (args, kwargs)."""
    for key in path:
        call = call[key]
    return call


def _result_template(cap, obj):
    """The returned structure with arrays/Tensors as Refs; Reads stay (each replay's own values). One object
    returned in several places is one leaf of the template (a replay returns one object there too), two tensors on
    one array are two (the generated result makes one Tensor per leaf: _result_code)."""
    from ..tensor import Tensor
    outside = getattr(cap, "outside", ())
    arguments = getattr(cap, "outside_args", {})
    memo = {}

    def leaf(t, data=False):
        if t.__class__ is not Converted and not isinstance(t, (Tensor, np.ndarray)):
            return t
        out = memo.get(id(t))
        if out is None:
            out = memo[id(t)] = _leaf(t, data)
        return out

    def _leaf(t, data):
        if t.__class__ is Converted:  # (its data alone: whether a backward could still walk its graph is no matter)
            return Converted(leaf(t.tensor, True), t.how)
        if isinstance(t, Tensor):
            if not data and live_graph(t):
                cap.fail("the function returns a tensor whose graph is still alive: a backward outside the compiled "
                         "function is not captured (call backward inside it, or return .detach() or .item())")
            r = cap.ref(t, "the returned value")
            if r.__class__ is Ref and ((r.kind == ARG and cap._arg_objs.get(r.key) is not t) or
                                       (r.kind == LIVE and r.key is not t)):
                return _Shared(r)
            return _own(r)
        return _own(cap.ref(t, "the returned value"))

    def walk(o):
        if id(o) in outside and not isinstance(o, Size):
            return _Itself(o, arguments.get(id(o)))
        if isinstance(o, Size):
            return leaf(o)
        if isinstance(o, tuple) and hasattr(o, "_fields"):
            return type(o)(*[walk(x) for x in o])
        if isinstance(o, (tuple, list, set, frozenset)):
            return type(o)(walk(x) for x in o)
        if isinstance(o, dict):
            return _rebuilt_dict(o, walk)
        return leaf(o)
    return walk(obj)


def _rebuilt_dict(obj, walk):
    """A dict of a result as map_structure rebuilds it, its values through `walk`."""
    if obj.__class__ is dict:
        return {(k._value if isinstance(k, Read) else k): walk(v) for k, v in obj.items()}
    new = copy.copy(obj)
    new.clear()
    for k, v in obj.items():
        new[k._value if isinstance(k, Read) else k] = walk(v)
    return new


def _own(r):
    """_own_constant, and a Ref of its own for a slot or a constant (a leaf of one returned tensor: two tensors of
    the call on one array are two objects, as eager's)."""
    r = _own_constant(r)
    return Ref(r.kind, r.key) if r.__class__ is Ref and r.kind in (SLOT, CONST) else r


def _own_constant(r):
    """Ref `r` of a returned array; for a constant made in the call (`return tl.tensor([1.0, 2.0])`), whose array
    the recording call hands its caller, who may change it, the plan's own copy from now on (set on the Ref itself,
    which the steps that use the constant share; each replay returns a copy of it). A read-only constant is
    a cached scalar, shared by eager calls too."""
    if r.__class__ is Ref and r.kind == CONST and r.key.flags.writeable:
        r.key = r.key.copy()
    return r
