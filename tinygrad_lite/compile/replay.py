"""How a plan's steps run: each step's replay semantics decided once (`_how`) and rendered two ways — a program
of tuples run by one loop for the first replays (interpret.py, cheap to build) and straight-line generated Python
for the rest (`_Emitter`, one call per chunk of steps) — and the resolution of a step's argument templates
(`_resolver`) into this call's arrays: slots, arguments, live tensors, gradients, constants."""
import sys

import numpy as np

from .record import ARG, ARGGRAD, ARGOBJ, GRAD, LIVE, SLOT, Obj, Ref

_OUT_BY_KEYWORD = (np.maximum, np.minimum)  # "Passing more than 2 positional arguments to np.maximum and np.minimum
# is deprecated" (NumPy 2.4): a DeprecationWarning, an error under -W error, that eager mode never raises


_PLAIN = frozenset([int, float, bool, str, type(None)])  # arguments that are constants as they are (no resolver)


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
class _Emitter:
    """Writes a plan's steps as straight-line Python, `vals[7] = f3(vals[2], c3_1)`, with every function, constant
    and live tensor bound by name: a replay then costs one call per chunk, not closures per argument."""

    def __init__(self, buffer_of=None, buffers=(), stable=None, returned=(), fixed=()):
        self.lines, self.ns = [], {"_arr": _array, "_view": _view, "_recycled": _recycled,
                                   "ReplayGuardFailed": ReplayGuardFailed}
        self.line_ops = []  # the op each line runs (None: a closure, a release), for a failing kernel's error
        self.buffer_of, self.buffers = buffer_of or {}, buffers
        self.stable = set() if stable is None else stable  # slots whose array is the same object on every call
        self.returned = returned  # slots the result returns: never a cached view
        # slots that always hold their planned buffer (`fixed_slots`): read by the buffer's name, never assigned
        self.fixed = fixed

    def bind(self, value, name):
        self.ns[name] = value
        return name

    # how each kind of reference reads in generated code: by position (slots, arguments), or by an object bound by name
    _BY_INDEX = {SLOT: "vals[{}]", ARG: "_arr(argv[{}])", ARGOBJ: "argv[{}]", ARGGRAD: "argv[{}]._grad._data"}
    _BY_NAME = {LIVE: "{}._data", GRAD: "{}._grad._data"}  # anything else (a constant): the object itself

    def expr(self, tmpl, name):
        if isinstance(tmpl, Ref):
            if tmpl.kind == SLOT and tmpl.key in self.fixed:
                b = self.buffer_of[tmpl.key]
                return self.bind(self.buffers[b], f"B{b}")
            form = self._BY_INDEX.get(tmpl.kind)
            if form is not None:
                return form.format(tmpl.key)
            return self._BY_NAME.get(tmpl.kind, "{}").format(self.bind(tmpl.key, name))
        if isinstance(tmpl, Obj):
            return self.bind(tmpl.value, name)
        get = _resolver(tmpl)
        if get is None:
            return self.bind(tmpl, name)  # a constant: bound as it is
        return f"{self.bind(get, name)}(vals, argv)"

    def call(self, fn, op, i, buf=None, how=None):
        """`f3(vals[2], c3_1)`, with the planned buffer first ('into', 'recycled-into') or as out= ('out',
        'recycled'; for the two 'recycled' `buf` is the expression that gives the array)."""
        args = [self.expr(a, f"a{i}_{j}") for j, a in enumerate(op.args)]
        if buf is not None:
            name = buf if how.startswith("recycled") else self.bind(buf, f"b{i}")
            if how in ("into", "recycled-into"):
                args = [name] + args
            else:  # a ufunc's output after its inputs is out= (positional: NumPy parses it faster than a keyword;
                # not for np.maximum/np.minimum, where NumPy 2.4 deprecates a third positional argument)
                args = args + [name if len(args) == fn.nin and fn not in _OUT_BY_KEYWORD else f"out={name}"]
        return f"{self.bind(fn, f'f{i}')}({', '.join(args)})"

    def op(self, op, i):
        self.line_ops.extend([None] * (len(self.lines) - len(self.line_ops)))  # (closures', releases' lines)
        self._op(op, i)
        self.line_ops.extend([op] * (len(self.lines) - len(self.line_ops)))

    def _op(self, op, i):
        out = op.outs
        how, fn, buf = _how(op, self.buffer_of, self.buffers)
        if how == "host":
            if not self._delivery(fn, op, i):
                self.lines.append(self.call(fn, op, i))
        elif how == "decision":
            msg = self.bind(decision_message(op), f"m{i}")
            self.lines.append(f"if bool({self.call(fn, op, i)}) != {bool(out)}: raise ReplayGuardFailed({msg})")
        elif how == "many":
            self.lines.append(f"r = {self.call(fn, op, i)}")
            if op.shapes is not None:
                self._check(op, i, "tuple(x.shape for x in r)")
            self.lines.extend(f"vals[{k}] = r[{j}]" for j, k in enumerate(out))
        elif how in ("out", "into"):
            self.stable.add(out)
            if out in self.fixed:  # the ufunc returns its out=, which the slot holds already
                self.lines.append(self.call(fn, op, i, buf, how))
            else:
                self.lines.append(f"vals[{out}] = {self.call(fn, op, i, buf, how)}")
        elif self._cached_view(op, i):
            self.stable.add(out)
        elif (fn is op.ufunc or op.into is not None) and fn is not None and op.layout is not None and op.layout[0] \
                and op.shapes is None and out not in self.returned:
            # an array a host call receives (a gradient the engine delivers): the last call's, when nothing holds it
            # any more, else a new one (`_recycled`), written by the ufunc or the into rule (an embedding table's
            # zeros: 1.3 MB a step for 5,000 x 64)
            cell = self.bind([None, *op.layout], f"c{i}")
            if fn is op.ufunc:
                self.lines.append(f"vals[{out}] = {self.call(fn, op, i, f'_recycled({cell})', 'recycled')}")
            else:
                self.lines.append(f"vals[{out}] = {self.call(op.into, op, i, f'_recycled({cell})', 'recycled-into')}")
        else:
            self.lines.append(f"vals[{out}] = {self.call(fn, op, i)}")
            if op.shapes is not None:
                self._check(op, i, f"(vals[{out}].shape,)")

    def _delivery(self, fn, op, i):
        """A leaf's gradient delivered to a leaf without one (the usual step, after zero_grad): set as the engine
        sets it, inline (a model of hundreds of parameters makes as many deliveries a call); anything else (a .grad to
        accumulate into, a copy to make, hooks) through the engine's own `_deliver`. False when `op` is not a
        delivery."""
        from ..autograd.engine import _deliver  # (not at import: the engine imports the compile hooks)
        from ..tensor import Tensor
        if fn is not _deliver or op.args[2] is not False or op.args[3] is not True or \
                not isinstance(op.args[0], Obj):
            return False
        leaf = self.bind(op.args[0].value, f"a{i}_0")
        arr = self.expr(op.args[1], f"a{i}_1")
        self.ns.setdefault("_wrap", Tensor._wrap)
        self.lines.append(f"if {leaf}._grad is None and not {leaf}._hooks: {leaf}._grad = _wrap({arr})")
        self.lines.append(f"else: {self.call(fn, op, i)}")
        return True

    def _cached_view(self, op, i):
        """A view (reshape, permute, expand, basic getitem) of an array that is the same object on every call (a
        planned buffer, a parameter's data, a cached view of one) is made once and reused while its source is that
        object: np.broadcast_to alone costs 5-10 us a call. False when the step is not such a view."""
        from ..ops.registry import VIEW_OPS  # (not at import: ops imports the compile hooks)
        src = op.args[0] if op.args else None
        if (op.prim is None or op.prim.name not in VIEW_OPS or not op.views or op.shapes is not None
                or op.outs in self.returned
                or not isinstance(src, Ref) or not (src.kind == LIVE or (src.kind == SLOT and src.key in self.stable))
                or any(_resolver(a) is not None for a in op.args[1:])):
            return False
        cell = self.bind([None, None], f"v{i}")
        call = self.call(op.fn, op, i)
        source = self.expr(src, f"a{i}_0")
        self.lines.append(f"vals[{op.outs}] = {cell}[1] if {source} is {cell}[0] else _view({cell}, {call}, {source})")
        return True

    def _check(self, op, i, got):
        want = self.bind(op.shapes, f"s{i}")
        site = self.bind(op.site, f"w{i}")
        self.lines.append(f"if {got} != {want}: raise ReplayGuardFailed("
                          f"f'an operation at {{{site}}} made shape {{{got}}} (recorded: {{{want}}})')")

    def closure(self, fn, i):
        self.lines.append(f"{self.bind(fn, f'g{i}')}(vals, argv)")

    def release(self, keys):
        keys = [k for k in keys if k not in self.fixed]  # (a planned buffer is the plan's: freeing it frees nothing)
        if keys:
            self.lines.append(" = ".join(f"vals[{k}]" for k in keys) + " = None")

    def build(self):
        src = "def chunk(vals, argv):\n" + "".join(f"    {line}\n" for line in self.lines or ["pass"])
        exec(compile(src, "<tl.compile plan>", "exec"), self.ns)
        run, ops = self.ns["chunk"], self.line_ops + [None] * (len(self.lines) - len(self.line_ops))

        def step_at(tb, vals, argv):  # (line 1 is the def)
            op = ops[tb.tb_lineno - 2] if 2 <= tb.tb_lineno < len(ops) + 2 else None
            return op, None if op is None else [_value(a, vals, argv) for a in op.args]

        def chunk(vals, argv):
            try:
                run(vals, argv)
            except (ValueError, IndexError, TypeError) as exc:  # a primitive failing on this call's values
                _raise_as_eager(exc, run.__code__, lambda tb: step_at(tb, vals, argv))
        return chunk


def _value(tmpl, vals, argv):
    get = _resolver(tmpl)
    return tmpl if get is None else get(vals, argv)


def _raise_as_eager(exc, code, step_at):
    """Raise eager's exception for `exc`, raised in the frame running `code` (a replay's steps), or `exc` itself
    when it did not come from a primitive: `step_at(traceback entry of that frame)` -> (the failing step's op, its
    argument values)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code is not code:
        tb = tb.tb_next
    op, args = (None, None) if tb is None else step_at(tb)
    err = None if op is None or args is None else _eager_error(op, args, exc)
    if err is None:
        raise exc
    raise err from None


def _eager_error(op, args, exc):
    """The exception eager raises (recorder.apply's) when the primitive of `op` fails with `exc` on the argument
    values `args`: the operation, its inputs and attributes and what it expects, named. None for a host call, or
    an error that names its operation already."""
    prim = op.prim
    if prim is None or str(exc).startswith(f"{prim.name}: "):  # (a kernel's own check names it already: gather's
        return None                                                # range, the words of its eager front end)
    from ..tensor import Tensor
    k = len(prim.attr_names)
    inputs, attrs = (args[:-k], args[-k:]) if k else (args, ())
    return prim.error([Tensor._wrap(np.asarray(a)) for a in inputs], tuple(attrs), exc)


def fixed_slots(ops, buffer_of):
    """Slots written only by ufuncs into their planned buffer (`_how` 'out'): a ufunc returns its out= array, so such
    a slot holds the same array on every call, and a replay starts with it there (`Plan.run`)."""
    fixed, other = set(), set()
    for op in ops:
        if op.kind != "kernel":
            continue
        outs = op.outs
        if outs.__class__ is not int:
            other.update(outs)
        elif op.ufunc is not None and _into_buffer(op, buffer_of):  # _how's 'out'
            fixed.add(outs)
        else:
            other.add(outs)
    return fixed - other


def _references(cell):
    """sys.getrefcount of the cell's array, counted the same way for the calibration below and for _recycled."""
    a = cell[0]
    return sys.getrefcount(a)


_ALONE = _references([np.empty(0)])  # the count when the cell alone holds the array: measured, not assumed (an
# interpreter that counted differently would only make _recycled's test fail, and every call make a new array)


def _recycled(cell):
    """The array for a ufunc's out= that a host call will receive: the one the last call made, if nothing but this
    cell holds it any more (the gradient it became was dropped by zero_grad, and nobody kept it or a view of it),
    else a new one. Its values are all written by the ufunc, so the result is a fresh array's, bit for bit; what
    it saves is an allocation and its page faults (W2's first layer: 800 KB per step).
    cell = [array, shape, dtype, order]."""
    if cell[0] is not None and _references(cell) == _ALONE:
        return cell[0]
    a = cell[0] = np.empty(cell[1], dtype=cell[2], order=cell[3])
    return a


def _view(cell, out, src):
    """The cache fill of _Emitter._cached_view: keep (source, view) when the result really views the source."""
    if np.may_share_memory(out, src):
        cell[0], cell[1] = src, out
    return out


def _into_buffer(op, buffer_of):
    """Whether the step writes its one output into the slot's planned buffer (with its ufunc or its into rule)."""
    return op.outs in buffer_of and op.layout is not None


def decision_message(op):
    """Why a replay whose decision step `op` came out differently goes back to eager execution."""
    return getattr(op.fn, "guard_message", None) or f"a choice made from tensor values at {op.site} came out " \
                                                     f"differently"


def _how(op, buffer_of, buffers):
    """How a step replays, decided once for both renderings (the interpreted program and the generated code):
    (how, function, planned buffer) with how one of 'host' (called for its effect), 'decision' (its truth is a
    guard), 'many' (a tuple of outputs), 'out' (a ufunc writing into the slot's planned buffer), 'into' (the
    primitive's into rule, buffer first) and 'one' (a fresh array)."""
    out = op.outs
    if op.kind in ("host", "decision"):
        return op.kind, op.fn, None
    if isinstance(out, tuple):
        return "many", op.fn, None
    if _into_buffer(op, buffer_of):  # the slot's planned buffer: written into, reused
        buf = buffers[buffer_of[out]]
        if op.ufunc is not None:  # the ufunc itself, one Python call less per operation
            return "out", op.ufunc, buf
        return "into", op.into, buf
    if op.ufunc is not None and op.layout is not None and op.layout[0]:
        return "one", op.ufunc, None  # an array result (never 0-d: a ufunc returns a scalar there)
    return "one", op.fn, None
