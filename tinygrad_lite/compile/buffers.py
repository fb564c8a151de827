"""A plan's memory: which outputs share reused buffers (by liveness over the steps), and the invariants every
plan is checked against when it is built (no two live slots in one buffer, no read before a write or after a
free, nothing returned freed or reused)."""
import math

import numpy as np

from .record import CONST, SLOT, Converted, Ref


_CONTAINERS = (tuple, list, slice, dict)


def refs(tmpl, out):
    """Collect the Refs inside a template. (Called for every recorded step when a plan is built: the flat tuple of
    arrays and attributes, the common case, is walked without a call per element.)"""
    if tmpl.__class__ is tuple:
        for t in tmpl:
            c = t.__class__
            if c is Ref:
                out.append(t)
            elif isinstance(t, _CONTAINERS) or c is Converted:
                refs(t, out)
    elif isinstance(tmpl, Ref):
        out.append(tmpl)
    elif isinstance(tmpl, (tuple, list)):
        for t in tmpl:
            refs(t, out)
    elif isinstance(tmpl, slice):
        for t in (tmpl.start, tmpl.stop, tmpl.step):
            refs(t, out)
    elif isinstance(tmpl, dict):
        for t in tmpl.values():
            refs(t, out)
    elif tmpl.__class__ is Converted:  # (a plan's result: `return out.numpy()`)
        refs(tmpl.tensor, out)
    return out


# Primitives a replay always runs, even when nothing reads their result, because they raise on values: an index
# out of range (the index comes from the data), an integer power with a negative exponent ("Integers to negative
# integer powers are not allowed"). A replay must raise where eager does.
_RAISE_ON_VALUES = frozenset({"gather", "scatter_add", "index_put", "index_scatter", "pow"})


def live_ops(ops, keep):
    """The steps a replay runs, with the slots each one reads: all but primitives whose results nothing reads (e.g.
    the output sequence of an LSTM whose final state alone is used). Kept whatever their results: host calls (random
    draws, checks, effects), guards and reads, writes into arrays that outlive the call, shape-guarded outputs, and
    primitives that raise on values (`_RAISE_ON_VALUES`, or a getitem whose index holds a tensor).
    Returns (ops, reads): reads[i] lists the slots ops[i] reads."""
    live, kept, reads = set(keep), [], []
    for op in reversed(ops):
        outs = op.outs
        if (outs.__class__ is not int or outs not in live) and op.kind == "kernel" and op.prim is not None and \
                not op.effect and op.shapes is None and op.prim.name not in _RAISE_ON_VALUES and \
                not (op.prim.name == "getitem" and any(r.kind != CONST for r in refs(op.args[1:], []))):
            # (an output something reads, tested first: the usual step is kept whatever the rest says)
            if outs.__class__ is int or not any(k in live for k in outs):
                continue
        slots = slot_reads(op.args.ref if op.kind == "read" else op.args)
        live.update(slots)
        kept.append(op)
        reads.append(slots)
    return kept[::-1], reads[::-1]


def slot_reads(tmpl):
    """The slots a template reads: the keys of its SLOT Refs, in order (refs() filtered; a flat tuple, the usual
    arguments of a step, is walked in one loop)."""
    if tmpl.__class__ is not tuple:
        return [r.key for r in refs(tmpl, []) if r.kind == SLOT]
    out = []
    for t in tmpl:
        if t.__class__ is Ref:
            if t.kind == SLOT:
                out.append(t.key)
        elif isinstance(t, _CONTAINERS):
            out.extend(r.key for r in refs(t, []) if r.kind == SLOT)
    return out


def plan_buffers(ops, reads, uses, keep):
    """Buffers for the outputs of kernels that can write into one (a ufunc, `Op.into`): slots whose lifetimes (their
    views' included) do not overlap share a buffer of their shape, dtype and memory order; the buffers are made
    once and reused by every replay. Never planned: what the result returns (a returned tensor is never overwritten
    by a later call), what a host call receives (it may keep the array, e.g. as a `.grad`), and what those view.
    A tiled gradient's slices computed in place (`_placed_slices`) get their view of its buffer as theirs.
    Returns (slot -> buffer index, buffers, slot -> (first step, last step), the slots written over a dying input,
    the placed slices, the steps their copies were)."""
    root, defined, hosted = view_roots(ops), {}, []
    for i, op in enumerate(ops):
        kind = op.kind
        if kind == "host":
            hosted.extend(reads[i])
        if kind != "kernel":
            continue
        outs = op.outs
        if outs.__class__ is int:
            defined.setdefault(outs, i)
        else:
            for k in outs:
                defined.setdefault(k, i)
    end = dict(uses)
    for k, r in root.items():  # a view keeps the memory it views alive
        if r is not None:
            end[r] = max(end.get(r, defined.get(r, 0)), end.get(k, defined.get(k, 0)))
    pinned = set()
    for k in (*keep, *hosted):
        pinned.add(k)
        pinned.add(root.get(k))
    viewed = {r for r in root.values() if r is not None}  # slots some view's memory belongs to
    placed = _placed_slices(ops, reads, defined, root, viewed, pinned)
    early = {}  # a buffer whose slices are computed in place: made at its first slice's step, not at np.empty's
    for s, (t, _, _) in placed.items():
        early[t] = min(early.get(t, defined[s]), defined[s])
    starts = {}
    for t, i in early.items():
        starts.setdefault(i, []).append(t)
    free, buffer_of, buffers, span, releasing, inplace = {}, {}, [], {}, {}, set()

    def take(key):
        if free.get(key):
            return free[key].pop()
        buffers.append(np.empty(key[0], dtype=key[1], order=key[2]))
        return len(buffers) - 1

    for i, op in enumerate(ops):
        if i - 1 in releasing:
            for b, layout in releasing.pop(i - 1):
                free.setdefault(layout, []).append(b)
        if starts and i in starts:
            for t in starts[i]:
                buffer_of[t] = take(ops[defined[t]].layout)
        k = op.outs
        if placed and k in placed:  # its place in the tiled buffer, a view that is never free for another slot
            t, index, _ = placed[k]
            buffer_of[k] = len(buffers)
            buffers.append(buffers[buffer_of[t]][index])
            span[k] = (i, end.get(k, i))
            continue
        if op.layout is None or (op.ufunc is None and op.into is None) or k in pinned or \
                k in root:
            continue
        key = op.layout  # (shape, dtype, order), of every size: since a ufunc is called directly, out= costs less
        # than a fresh array even for 16 elements (W1 0.41 -> 0.38 us per op)
        if k in early:  # taken at its first slice's step
            b = buffer_of[k]
        else:
            b = _dying_input(op, reads[i], i, key, buffer_of, root, viewed, end, releasing)
            if b is not None:
                inplace.add(k)
            else:
                b = take(key)
        buffer_of[k] = b
        last = end.get(k, i)
        span[k] = (early.get(k, i), last)
        releasing.setdefault(last, []).append((b, key))
    skipped = {p for _, _, p in placed.values()}
    return buffer_of, buffers, span, inplace, placed, skipped


def view_roots(ops):
    """{slot: the slot whose memory it views, through any chain of views}, for the kernels' outputs that are views;
    None for a view of memory from outside the call (an argument's, a live tensor's)."""
    root = {}
    for op in ops:
        if op.kind == "kernel":
            for k, base in op.views:
                root[k] = root.get(base, base)
    return root


def _placed_slices(ops, reads, defined, root, viewed, pinned):
    """The slices of a gradient its slices tile (`Slices.dense`: np.empty, then one `_put_index_grad` per slice)
    that a kernel computed into an array of their own only for the put to copy them: {slot: (the buffer's slot,
    the constant index, the put's step)}. The kernel then writes into its place in the buffer (a view, made once)
    and the put is skipped: an LSTM step's gate gradients are five copies a step less. Only where nothing else
    reads the slice, nothing views it, and the place is a contiguous, non-empty view of the slice's own layout (an
    integer index that leaves no dimension gives a NumPy scalar, which is no place to write)."""
    from ..autograd.index_grad import _put_index_grad  # (not at import: the autograd package imports compile)
    if not any(op.fn is _put_index_grad for op in ops):  # (no tiled gradient: the usual plan)
        return {}
    readers = {}
    for r in reads:
        for k in r:
            readers[k] = readers.get(k, 0) + 1
    placed = {}
    for p, op in enumerate(ops):
        if op.kind != "kernel" or op.fn is not _put_index_grad:
            continue
        buf, g, index = op.args
        if buf.__class__ is not Ref or g.__class__ is not Ref or buf.kind != SLOT or g.kind != SLOT or \
                refs(index, []):
            continue
        t, s = buf.key, g.key
        e, k = defined.get(t), defined.get(s)
        if e is None or k is None or not k < e < p or readers.get(s) != 1 or s in placed:
            continue
        maker, producer = ops[e], ops[k]
        if maker.fn is not np.empty or maker.layout is None or t in pinned or t in root or t in viewed or \
                producer.layout is None or (producer.ufunc is None and producer.into is None) or \
                s in pinned or s in root or s in viewed or producer.outs != s:
            continue
        view = np.empty(maker.layout[0], dtype=maker.layout[1], order=maker.layout[2])[index]
        shape, dtype, order = producer.layout
        if view.__class__ is not np.ndarray or not view.size or view.shape != shape or view.dtype != dtype or \
                not view.flags[f"{order}_CONTIGUOUS"]:  # (an element is a NumPy scalar, not a view; an empty slice
            continue                                     # has no place)
        placed[s] = (t, index, p)
    return placed


def _dying_input(op, args, i, key, buffer_of, root, viewed, end, releasing):
    """The buffer of an input whose last use is this step, for an elementwise ufunc to write its result over (in
    place: NumPy reads each element before writing it, and the memory just read is still in cache): an input with
    the output's shape, dtype and order that no view outlives and that no other argument views. None otherwise.
    (`viewed`: the slots in root's values, so that only those are searched for among the arguments.)"""
    ufunc = op.ufunc
    if ufunc.__class__ is not np.ufunc or ufunc.signature is not None:  # matmul is a gufunc: not elementwise
        return None
    if not key[0]:  # 0-d: NumPy's overlap check copies the input first (W5: 1.65 -> 2.06 us per op in place)
        return None
    if math.prod(key[0]) == 1:  # one element: NumPy runs `a += b` as a reduction there, whose np.add keeps b's NaN
        return None             # where eager's a + b keeps a's (a NaN's sign bit differed from eager's)
    dying = releasing.get(i)
    if not dying:  # no planned buffer is released at this step: none to write over
        return None
    for a in args:
        if end.get(a) != i:
            continue
        b = buffer_of.get(a)
        if b is None or (a in viewed and any(root.get(o) == a for o in args)):
            continue
        if (b, key) in dying:
            dying.remove((b, key))
            return b
    return None


def validate(plan):
    """The plan's invariants, checked when it is built: every slot is written before a step reads it, no slot is
    read after the step that frees it, and no slot that the result needs is freed. Raises AssertionError."""
    holder = {}  # buffer -> (the slot whose lifetime holds it, its last step)
    buffer_of, inplace = plan.buffer_of, plan.inplace
    for k, (first, last) in plan.span.items():  # in step order: plan_buffers fills it step by step
        b = buffer_of[k]
        other, end = holder.get(b, (None, None))
        # an elementwise step may write over the input it reads last (in place): the two meet at that step only
        assert other is None or end < first or (k in inplace and end == first), \
            f"plan: slots {other} and {k} share buffer {b} while both are alive"
        holder[b] = (k, last)
    assert not (set(plan.buffer_of) & plan.keep), "plan: a returned slot is written into a reused buffer"
    for s, (t, _, _) in plan.placed.items():  # a slice computed in place lives inside its buffer's lifetime
        assert plan.span[t][0] <= plan.span[s][0] and plan.span[s][1] <= plan.span[t][1], \
            f"plan: slot {s}, computed in place in slot {t}'s buffer, outlives it"
        assert np.may_share_memory(plan.buffers[plan.buffer_of[s]], plan.buffers[plan.buffer_of[t]]), \
            f"plan: slot {s} is not inside slot {t}'s buffer"
    written, freed = set(), set()
    for i, (reads, writes, rel) in enumerate(zip(plan.reads_of, plan.writes_of, plan.release)):
        if reads and not (written.issuperset(reads) and freed.isdisjoint(reads)):  # (two set operations for the
            for k in reads:                                                          # usual step; per slot to name it)
                assert k in written, f"plan step {i} reads slot {k} before any step writes it"
                assert k not in freed, f"plan step {i} reads slot {k} after it was freed"
        if writes:
            written.update(writes)
            freed.difference_update(writes)
        if rel:
            freed.update(rel)
    assert not (plan.keep & freed), f"slots {sorted(plan.keep & freed)} of the result are freed"
    return True
