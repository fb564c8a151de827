"""Plan: a capture turned into steps on numbered slots, with the slots freed after their last use, buffers planned
for the outputs that can be written into one, and the guards (reads used in Python, value-dependent choices and
shapes); replay: the steps on the current arguments, run one by one (closures) for the first replays and then as
generated straight-line Python.

A replay calls the very functions the eager call ran (primitive forwards — the NumPy ufunc itself where the
forward is one —, the library's host computations, the optimizer's own step), on the current arrays, in the
recorded order, leaving out only primitives whose results nothing reads; so its results are the eager results, bit
for bit. What could differ (a value read into Python and used there) is a guard checked where it was read, before
anything with an effect beyond fresh arrays has run.
"""
import numpy as np

from .._gc import paused_gc
from .buffers import live_ops, plan_buffers, refs as _refs, validate
from .capture import ARG, ARGGRAD, ARGOBJ, GRAD, LIVE, SLOT, Obj, Read, Ref, Unsupported, map_structure, \
    read_value


class ReplayGuardFailed(Exception):
    """A value read during the replay differs from the captured one: the call must run eagerly."""


def _getter(ref):
    kind, key = ref.kind, ref.key
    if kind == SLOT:
        return lambda vals, argv: vals[key]
    if kind == ARG:
        return lambda vals, argv: _array(argv[key])
    if kind == LIVE:
        return lambda vals, argv: key._data
    if kind == GRAD:
        return lambda vals, argv: key._grad._data
    if kind == ARGOBJ:
        return lambda vals, argv: argv[key]
    if kind == ARGGRAD:
        return lambda vals, argv: argv[key]._grad._data
    return lambda vals, argv: key  # CONST


def _array(x):
    return x if isinstance(x, np.ndarray) else x._data


def _resolver(tmpl):
    """A function (vals, argv) -> the concrete value of template `tmpl`; constants are returned as they are."""
    if isinstance(tmpl, Ref):
        return _getter(tmpl)
    if isinstance(tmpl, Obj):
        obj = tmpl.value
        return lambda vals, argv: obj
    if isinstance(tmpl, (tuple, list)):
        parts = [_resolver(t) for t in tmpl]
        if all(p is None for p in parts):
            return None
        fixed = [(lambda v: (lambda vals, argv: v))(t) if p is None else p for t, p in zip(tmpl, parts)]
        kind = type(tmpl)
        return lambda vals, argv: kind([f(vals, argv) for f in fixed])
    if isinstance(tmpl, slice):
        parts = [_resolver(x) for x in (tmpl.start, tmpl.stop, tmpl.step)]
        if all(p is None for p in parts):
            return None
        fixed = [(lambda v: (lambda vals, argv: v))(t) if p is None else p
                 for t, p in zip((tmpl.start, tmpl.stop, tmpl.step), parts)]
        return lambda vals, argv: slice(*[f(vals, argv) for f in fixed])
    if isinstance(tmpl, dict):
        parts = {k: _resolver(v) for k, v in tmpl.items()}
        if all(p is None for p in parts.values()):
            return None
        fixed = {k: ((lambda v: (lambda vals, argv: v))(tmpl[k]) if p is None else p) for k, p in parts.items()}
        return lambda vals, argv: {k: f(vals, argv) for k, f in fixed.items()}
    return None


CHUNK = 400  # operations per generated function (one straight-line function per chunk of the plan)
INTERPRETED_REPLAYS = 8  # replays run step by step before the plan is turned into straight-line code


class _Emitter:
    """Writes a plan's steps as straight-line Python, `vals[7] = f3(vals[2], c3_1)`, with every function, constant
    and live tensor bound by name: a replay then costs one call per chunk, not closures per argument."""

    def __init__(self, buffer_of=None, buffers=()):
        self.lines, self.ns = [], {"_arr": _array, "ReplayGuardFailed": ReplayGuardFailed}
        self.buffer_of, self.buffers = buffer_of or {}, buffers

    def bind(self, value, name):
        self.ns[name] = value
        return name

    def expr(self, tmpl, name):
        if isinstance(tmpl, Ref):
            if tmpl.kind == SLOT:
                return f"vals[{tmpl.key}]"
            if tmpl.kind == ARG:
                return f"_arr(argv[{tmpl.key}])"
            if tmpl.kind == LIVE:
                return f"{self.bind(tmpl.key, name)}._data"
            if tmpl.kind == GRAD:
                return f"{self.bind(tmpl.key, name)}._grad._data"
            if tmpl.kind == ARGOBJ:
                return f"argv[{tmpl.key}]"
            if tmpl.kind == ARGGRAD:
                return f"argv[{tmpl.key}]._grad._data"
            return self.bind(tmpl.key, name)  # CONST
        if isinstance(tmpl, Obj):
            return self.bind(tmpl.value, name)
        get = _resolver(tmpl)
        if get is None:
            return self.bind(tmpl, name)  # a constant: bound as it is
        return f"{self.bind(get, name)}(vals, argv)"

    def call(self, fn, op, i, buf=None, how=None):
        """`f3(vals[2], c3_1)`, with the planned buffer first ('into') or as out= ('out')."""
        args = [self.expr(a, f"a{i}_{j}") for j, a in enumerate(op.args)]
        if buf is not None:
            name = self.bind(buf, f"b{i}")
            args = [name] + args if how == "into" else args + [f"out={name}"]
        return f"{self.bind(fn, f'f{i}')}({', '.join(args)})"

    def op(self, op, i):
        out = op.outs
        how, fn, buf = _how(op, self.buffer_of, self.buffers)
        if how == "host":
            self.lines.append(self.call(fn, op, i))
        elif how == "decision":
            msg = self.bind(f"a choice made from tensor values at {op.site} came out differently", f"m{i}")
            self.lines.append(f"if bool({self.call(fn, op, i)}) != {bool(out)}: raise ReplayGuardFailed({msg})")
        elif how == "many":
            self.lines.append(f"r = {self.call(fn, op, i)}")
            if op.shapes is not None:
                self._check(op, i, "tuple(x.shape for x in r)")
            self.lines.extend(f"vals[{k}] = r[{j}]" for j, k in enumerate(out))
        elif how in ("out", "into"):
            self.lines.append(f"vals[{out}] = {self.call(fn, op, i, buf, how)}")
        else:
            self.lines.append(f"vals[{out}] = {self.call(fn, op, i)}")
            if op.shapes is not None:
                self._check(op, i, f"(vals[{out}].shape,)")

    def _check(self, op, i, got):
        want = self.bind(op.shapes, f"s{i}")
        site = self.bind(op.site, f"w{i}")
        self.lines.append(f"if {got} != {want}: raise ReplayGuardFailed("
                          f"f'an operation at {{{site}}} made shape {{{got}}} (recorded: {{{want}}})')")

    def closure(self, fn, i):
        self.lines.append(f"{self.bind(fn, f'g{i}')}(vals, argv)")

    def release(self, keys):
        if keys:
            self.lines.append(" = ".join(f"vals[{k}]" for k in keys) + " = None")

    def build(self):
        src = "def chunk(vals, argv):\n" + "".join(f"    {line}\n" for line in self.lines or ["pass"])
        exec(compile(src, "<tl.compile plan>", "exec"), self.ns)
        return self.ns["chunk"]


class Plan:
    """A replayable record of one call. Raises Unsupported when the capture cannot be replayed safely."""

    def __init__(self, cap, result):
        if cap.failure is not None:
            raise Unsupported(cap.failure)
        self.nslots = cap.nslots
        self.result = _result_template(cap, result)
        if cap.failure is not None:
            raise Unsupported(cap.failure)
        steps, self.dynamic_reads = [], {}  # steps: ("op", op) or ("closure", fn), in order
        keep = {r.key for r in _refs(self.result, []) if r.kind == SLOT}
        ops, op_reads = live_ops(cap.ops, keep)
        effect_seen = False
        uses = {}
        self.reads_of, self.writes_of = [], []  # per step: slots read, slots written (for validate)
        for i, op in enumerate(ops):
            if op.kind == "read":
                rec = op.args
                if rec.used and effect_seen:
                    raise Unsupported(f"a value read with .{rec.kind}() at {rec.site} is used in Python after the "
                                      f"call already changed state (an optimizer step, a gradient delivered): a "
                                      f"replay could not stop cleanly if it differed")
                read = op_reads[i]
                for k in read:
                    uses[k] = i
                self.reads_of.append(read)
                self.writes_of.append([])
                steps.append(("closure", self._read_step(rec)))
                continue
            if op.kind == "compare":
                rec, other = op.args
                if effect_seen:
                    raise Unsupported(f"a value read with .{rec.kind}() at {rec.site} is compared in Python after "
                                      f"the call already changed state: a replay could not stop cleanly")
                self.reads_of.append([])
                self.writes_of.append([])
                steps.append(("closure", self._compare_step(rec, op.fn, other, op.outs, op.site)))
                continue
            if op.kind == "decision" and effect_seen:
                raise Unsupported(f"a choice made from tensor values at {op.site} comes after the call already "
                                  f"changed state: a replay could not stop cleanly if it came out differently")
            read = op_reads[i]
            for k in read:
                uses[k] = i
            self.reads_of.append(read)
            outs = op.outs
            self.writes_of.append([outs] if outs.__class__ is int and op.kind == "kernel" else
                                  [] if op.kind in ("host", "decision") else list(outs))
            if op.shapes is not None and effect_seen:
                raise Unsupported(f"an operation at {op.site} makes an output whose shape depends on values, after "
                                  f"the call already changed state: a replay could not stop cleanly")
            effect_seen = effect_seen or op.effect
            steps.append(("op", op))
        release = [[] for _ in steps]
        for k, last in uses.items():  # every array is freed after its last use
            if k not in keep:
                release[last].append(k)
        self.buffer_of, self.buffers, self.span, self.inplace = plan_buffers(ops, op_reads, uses, keep)
        # The first replay turns the steps into straight-line code (compiling Python costs a few milliseconds per
        # 400 steps: a function called once is never compiled).
        self._pending = (steps, release)
        self.chunks = self._steps_fns = None
        self.replays = 0
        self.release = release
        self.keep = keep
        self.guarded = any(op.kind in ("decision", "compare") or op.shapes is not None or
                           (op.kind == "read" and op.args.used) for op in ops)
        validate(self)
        self.live = list(cap.live.values())
        self.leaves = list(cap.leaves.values())  # (tensor, its .grad was None when the call began)
        self.arg_grads = sorted(cap.arg_grads.items())  # (argument index, its .grad was None when the call began)
        self.modules = list(cap.modules.values())  # (module, its .training when the call began)
        self.result = _detach_reads(self.result, self)

    def _compare_step(self, rec, name, other, expected, site):
        index = self.dynamic_reads[id(rec)]

        def run(vals, argv):
            if bool(getattr(vals.reads[index], name)(other)) != expected:
                raise ReplayGuardFailed(f"a comparison of a value read from a tensor at {site} came out "
                                        f"{not expected} (recorded: {expected})")
        return run

    def _read_step(self, rec):
        get = _resolver(rec.ref) if isinstance(rec.ref, Ref) else None
        index = len(self.dynamic_reads)
        self.dynamic_reads[id(rec)] = index
        guarded, kind, expected = rec.used, rec.kind, rec.value

        def run(vals, argv):
            value = read_value(get(vals, argv), kind)
            if guarded and not _same(value, expected):
                raise ReplayGuardFailed(f"the value read with .{kind}() at {rec.site} was {expected!r} when "
                                        f"recorded and is {value!r} now")
            vals.reads[index] = value
        return run

    def _interpret(self):
        """The first replays run the steps as a list of small closures (building them is cheap), so a plan pays
        for turning itself into straight-line code (~12 us per step of Python's compiler) only once it has been
        replayed INTERPRETED_REPLAYS times: short loops start saving time at once."""
        steps, release = self._pending
        self._steps_fns = [_step_fn(kind, item, self.buffer_of, self.buffers, rel)
                           for (kind, item), rel in zip(steps, release)]

    def _run_steps(self, vals, argv):
        if self.chunks is not None:
            for chunk in self.chunks:
                chunk(vals, argv)
            return
        for step in self._steps_fns:
            step(vals, argv)

    def _generate(self):
        steps, release = self._pending
        chunks = []
        for start in range(0, len(steps), CHUNK):
            em = _Emitter(self.buffer_of, self.buffers)
            for i in range(start, min(start + CHUNK, len(steps))):
                kind, item = steps[i]
                if kind == "op":
                    em.op(item, i)
                else:
                    em.closure(item, i)
                em.release(release[i])
            chunks.append(em.build())
        self.chunks, self._pending, self._steps_fns = chunks, None, None

    def run(self, argv):
        if self._pending is not None:
            with paused_gc():
                if self.replays >= INTERPRETED_REPLAYS:
                    self._generate()
                elif self._steps_fns is None:
                    self._interpret()
        self.replays += 1
        vals = _Values(self.nslots, len(self.dynamic_reads))
        if not self.guarded:
            self._run_steps(vals, argv)
            return self._build(self.result, vals, argv)
        from ..random import get_rng, set_rng
        rng = get_rng()
        saved = rng.bit_generator.state  # a guard that fails sends the call to eager: draws must start over
        try:
            self._run_steps(vals, argv)
        except ReplayGuardFailed:
            rng.bit_generator.state = saved
            set_rng(rng)
            raise
        return self._build(self.result, vals, argv)

    def _build(self, tmpl, vals, argv):
        """The returned structure of one replay: tensors of this call's arrays, each read's own value."""
        from ..tensor import Tensor

        def leaf(t):
            if isinstance(t, Ref):
                if t.kind == SLOT:
                    return Tensor._wrap(vals[t.key])
                if t.kind in (ARG, ARGOBJ):
                    return argv[t.key]
                if t.kind == ARGGRAD:
                    return argv[t.key]._grad
                if t.kind == LIVE:
                    return t.key
                return t.key._grad if t.kind == GRAD else Tensor._wrap(t.key)
            return vals.reads[t.index] if isinstance(t, _DynRead) else t
        return map_structure(tmpl, leaf)


def _step_fn(kind, item, buffer_of, buffers, release):
    """One step of the interpreted replays, with the semantics of the line _Emitter writes for it."""
    if kind != "op":
        fn = item
    else:
        fn = _op_fn(item, buffer_of, buffers)
    if not release:
        return fn

    def step(vals, argv):
        fn(vals, argv)
        for k in release:
            vals[k] = None
    return step


def _how(op, buffer_of, buffers):
    """How a step replays, decided once for both renderings (the interpreted closures and the generated code):
    (how, function, planned buffer) with how one of 'host' (called for its effect), 'decision' (its truth is a
    guard), 'many' (a tuple of outputs), 'out' (a ufunc writing into the slot's planned buffer), 'into' (the
    primitive's into rule, buffer first) and 'one' (a fresh array)."""
    out = op.outs
    if op.kind in ("host", "decision"):
        return op.kind, op.fn, None
    if isinstance(out, tuple):
        return "many", op.fn, None
    if out in buffer_of and op.layout is not None:  # the slot's planned buffer: written into, reused
        buf = buffers[buffer_of[out]]
        if op.prim.ufunc is not None:  # the ufunc itself, one Python call less per operation
            return "out", op.prim.ufunc, buf
        return "into", op.prim.into, buf
    if op.prim is not None and op.prim.ufunc is not None and op.layout is not None and op.layout[0]:
        return "one", op.prim.ufunc, None  # an array result (never 0-d: a ufunc returns a scalar there)
    return "one", op.fn, None


def _op_fn(op, buffer_of, buffers):
    getters = []
    for a in op.args:
        get = _resolver(a)
        getters.append(get if get is not None else (lambda v: (lambda vals, argv: v))(a))
    out = op.outs
    how, f, buf = _how(op, buffer_of, buffers)

    def args(vals, argv):
        return [g(vals, argv) for g in getters]
    if how == "host":
        return lambda vals, argv: f(*args(vals, argv))
    if how == "decision":
        expected, msg = bool(out), f"a choice made from tensor values at {op.site} came out differently"

        def decide(vals, argv):
            if bool(f(*args(vals, argv))) != expected:
                raise ReplayGuardFailed(msg)
        return decide
    check = _shape_check(op)
    if how == "many":
        def many(vals, argv):
            r = f(*args(vals, argv))
            check(tuple(x.shape for x in r))
            for j, k in enumerate(out):
                vals[k] = r[j]
        return many
    if how == "out":
        return lambda vals, argv: vals.__setitem__(out, f(*args(vals, argv), out=buf))
    if how == "into":
        return lambda vals, argv: vals.__setitem__(out, f(buf, *args(vals, argv)))

    def one(vals, argv):
        r = f(*args(vals, argv))
        check((r.shape,))
        vals[out] = r
    return one


def _shape_check(op):
    if op.shapes is None:
        return lambda got: None
    want, site = op.shapes, op.site

    def check(got):
        if got != want:
            raise ReplayGuardFailed(f"an operation at {site} made shape {got} (recorded: {want})")
    return check


class _DynRead:
    """In a plan's result: the value of the replay's read number `index`."""
    __slots__ = ("index",)

    def __init__(self, index):
        self.index = index


def _detach_reads(tmpl, plan):
    """The result template with Read proxies replaced by _DynRead (a plan keeps no reference to its capture)."""
    return map_structure(tmpl, lambda t: _DynRead(plan.dynamic_reads[id(t._capture.reads[t._index])])
                         if isinstance(t, Read) else t)


class _Values(list):
    """The slot values of one replay, and the values its reads produced."""
    __slots__ = ("reads",)

    def __init__(self, n, nreads):
        super().__init__([None] * n)
        self.reads = [None] * nreads


def _same(a, b):
    return a == b or (a != a and b != b)


def _result_template(cap, obj):
    """The returned structure with arrays/Tensors as Refs; Reads stay (each replay's own values)."""
    from ..tensor import Tensor

    def leaf(t):
        if isinstance(t, Tensor):
            if t.requires_grad and t._entry is not None and not t._entry.released:
                cap.fail("the function returns a tensor whose graph is still alive: a backward outside the compiled "
                         "function is not captured (call backward inside it, or return .detach() or .item())")
            return cap.ref(t, "the returned value")
        return cap.ref(t, "the returned value") if isinstance(t, np.ndarray) else t
    return map_structure(obj, leaf)
