"""The recording half of a compiled function's backward (see aot.py): at the recorded call, after the forward, the
engine walks the returned tensors' graph once more into the same capture, with placeholder output gradients (extra
arguments) and every leaf's contributions kept apart, in the order the walk makes them (`run_backward(parts=...)`):
that is a backward plan, whose result is those contributions (a slice gradient as its array and index). With
several returned tensors, one backward is recorded per subset of them that may get gradients (the paths of the
others must not run: leaves only they reach get no gradient in eager)."""
import numpy as np

from .buffers import refs as _refs
from .record import ARG, CONST, LIVE, SLOT, Ref, Unsupported, graph_outputs
from ..autograd import recorder as _recorder


class _Parts:
    """run_backward(parts=...): each leaf's gradient contributions, in the order the walk makes them."""

    def __init__(self, first_seq):
        self.first_seq, self.of, self.order, self.visited = first_seq, {}, [], []

    def visit(self, e):
        if e.seq < self.first_seq:
            raise Unsupported("the returned tensors' backward reaches a graph recorded before the call")
        if e.hooks:  # (before the engine would call them with the placeholder gradient)
            raise Unsupported(f"a gradient hook on the output of {e.describe()} inside the call")
        self.visited.append((e, e.grad))  # the gradient it received, shown by viz: restored after the recording

    def add(self, t, g):
        got = self.of.get(id(t))
        if got is None:
            self.of[id(t)] = got = []
            self.order.append(t)
        got.append(g)



MAX_OUTPUTS = 3  # returned tensors with graphs alive: a backward is recorded per subset that gets gradients


def record_backward(cap, result, leaves, first_seq, capturing):
    """Record the backward of `result`'s live graph into `cap` (its forward already recorded): one backward per
    non-empty subset of the returned tensors (the ones a later backward gives gradients: the others' paths must
    not run, or leaves only they reach would get zero gradients instead of none). Returns what `AotPlan` needs, or
    raises Unsupported. `capturing`: a context manager making `cap` the active capture."""
    from ..tensor import Tensor
    outs = graph_outputs(result)
    if len(outs) > MAX_OUTPUTS:
        raise Unsupported(f"the function returns {len(outs)} tensors whose graph is alive (at most {MAX_OUTPUTS} "
                          f"are compiled with their backward)")
    for i, o in enumerate(outs):  # a replay's outputs are apart: a trunk returned with its heads would lose the link
        others = outs[:i] + outs[i + 1:]
        if others and o._entry in set(_recorder.reachable(others)):
            raise Unsupported("a returned tensor is computed from another returned tensor (a trunk returned with its "
                              "heads, or with a view of it): a gradient hook or autograd.grad on it would see only "
                              "its own part of the gradient in a replay")
    for t in cap.live.values():  # (an argument with a graph is an input of the replay's entry: the engine goes on)
        if t.requires_grad and t._entry is not None and id(t) not in cap.args:
            raise Unsupported(f"a tensor of shape {tuple(t._data.shape)} with a graph recorded before the call is "
                              f"used inside it without being an argument: the returned tensors' backward would "
                              f"reach outside the call")
    out_refs = []
    for o in outs:
        r = cap.known.get(id(o._data))
        if r is None or r.kind != SLOT:
            raise Unsupported("a returned tensor with a graph alive is not an array the call made")
        out_refs.append(r)
    m, nfwd = len(cap.ops), cap.nslots
    fwd_values = {}  # forward slot -> its array (what a backward reads of the forward must be an array)
    for key, r in cap.known.items():
        if r.kind == SLOT:
            obj = cap.alive(key)
            if obj.__class__ is np.ndarray:
                fwd_values[r.key] = obj
    graph_args = {i for i, x in enumerate(leaves) if isinstance(x, Tensor) and x._entry is not None}  # (guarded by
    # the signature: a replay's arguments have graphs where these had)
    rec = dict(m=m, nfwd=nfwd, out_refs=out_refs, outs=outs, nargs=len(leaves), saved={}, args_used=set(),
               graph_args=graph_args, live_used={}, backwards={}, paths={})
    k = len(outs)
    for mask in range(1, 2 ** k):
        subset = tuple(i for i in range(k) if mask >> i & 1)
        rec["backwards"][subset] = _record_one(cap, rec, subset, leaves, first_seq, capturing, fwd_values)
    rec["saved"] = sorted(rec["saved"], key=rec["saved"].get)
    # an output whose memory a backward reads: changed in place before backward, its entry must refuse (as eager)
    rec["aliased"] = [any(np.may_share_memory(o._data, fwd_values[k]) for k in rec["saved"]) for o in outs]
    rec["args_used"] = sorted(rec["args_used"])
    rec["live_used"] = list(rec["live_used"].values())
    return rec


def _record_one(cap, rec, subset, leaves, first_seq, capturing, fwd_values):
    """Record the backward from the returned tensors `subset`: (its operations, contribution targets and Refs)."""
    from ..autograd.engine import run_backward
    from ..autograd.index_grad import IndexGrad
    from ..tensor import Tensor
    n, outs = len(leaves), rec["outs"]
    start_op, start_slot = len(cap.ops), cap.nslots
    gs = [np.ones_like(outs[i]._data) for i in subset]
    parts = _Parts(first_seq)
    with capturing:
        for i, g in zip(subset, gs):
            cap._know(g, Ref(ARG, n + i))
        try:
            run_backward([outs[i] for i in subset], [Tensor._wrap(g) for g in gs], True, False, parts=parts)
        finally:
            for e, grad in parts.visited:
                e.grad = grad
    if cap.failure is not None:
        raise Unsupported(cap.failure)
    rec["paths"][subset] = frozenset(e.seq for e, _ in parts.visited)  # eager's entries on this backward's path
    # What eager's entries on THIS backward's path would check before backward (not those of other outputs' paths):
    # the arguments and live tensors that are inputs of an entry reading its inputs (`x * p` reads p although p's
    # gradient is x's values; refused when changed in place or given a new history), and those an entry's output
    # is a view of (`w.T`; refused when written). reads/views: (kind, index or id) -> the live tensor (None: arg).
    reads, views = {}, {}
    for e, _ in parts.visited:
        out = e.out_data
        for t in e.saved or ():
            if id(t) in cap.args:
                key, obj = ("arg", cap.args[id(t)]), None
            elif id(t) in cap.live and id(t) not in cap.created:
                key, obj = ("live", id(t)), t
            else:
                continue
            if "inputs" in e.prim.reads:
                reads.setdefault(key, obj)
            if isinstance(out, np.ndarray) and np.may_share_memory(out, t._data):
                views.setdefault(key, obj)
    targets, contrib = [], []  # per contribution: ("live", tensor) or ("arg", index); its Ref in the backward
    for t in parts.order:
        if id(t) in cap.args:
            where = ("arg", cap.args[id(t)])
        elif id(t) in cap.live and id(t) not in cap.created:
            where = ("live", t)
        else:
            raise Unsupported(f"the returned tensors' backward reaches a leaf of shape {tuple(t._data.shape)} made "
                              f"inside the call")
        for g in parts.of[id(t)]:
            sparse = g.__class__ is IndexGrad
            r = cap.known.get(id(g.g._data if sparse else g._data))
            if r is None or not ((r.kind == SLOT and r.key >= start_slot) or
                                 (r.kind == ARG and r.key - n in subset)):
                raise Unsupported("a gradient contribution in the backward of the returned tensors is not an array "
                                  "the backward made")
            targets.append(where)
            if sparse:  # a slice gradient (of an indexing): its array and index, rebuilt by each backward
                index = cap.template(g.index, "the index of a slice gradient")
                if not _resolvable(index):
                    raise Unsupported("a slice gradient's index holds a tensor inside a slice")
                contrib.append(((r, index), (g.shape, g.basic)))
            else:
                contrib.append((r, None))
    del parts, gs
    if cap.failure is not None:
        raise Unsupported(cap.failure)
    ops = []
    for op in cap.ops[start_op:]:
        if op.kind != "kernel" or op.effect or op.shapes is not None:
            what = {"read": "reads a value into Python", "compare": "compares a value in Python",
                    "decision": "makes a choice from values", "host": "calls back into Python"}.get(op.kind)
            what = what or "has an effect or a value-dependent shape"
            raise Unsupported(f"the backward of the returned tensors {what} (at {op.site}): it is not captured")
        outs_ = op.outs if isinstance(op.outs, tuple) else (op.outs,)
        if any(k < start_slot for k in outs_):
            raise Unsupported("the backward of the returned tensors writes into an array of the forward")
        _note_reads(op.args, op.site, rec, leaves, start_slot, fwd_values, reads)
        ops.append(op)
    _note_reads([c for c, _ in contrib], "a slice gradient", rec, leaves, start_slot, fwd_values, reads)
    return ops, targets, contrib, reads, views


def _note_reads(tmpl, site, rec, leaves, start_slot, fwd_values, reads):
    """Check what a backward step reads and note the forward arrays, arguments and live tensors among it (the
    tensors also in `reads`, this backward's: see _record_one)."""
    from ..tensor import Tensor
    n, nfwd, saved = len(leaves), rec["nfwd"], rec["saved"]
    for r in _refs(tmpl, []):
        if r.kind == SLOT and r.key < start_slot:
            if r.key >= nfwd or r.key not in fwd_values:
                raise Unsupported("the backward of the returned tensors reads a forward value that is not an array")
            saved.setdefault(r.key, len(saved))
        elif r.kind == ARG and r.key < n:
            if not isinstance(leaves[r.key], (np.ndarray, Tensor)):
                raise Unsupported("the backward of the returned tensors reads a numeric argument")
            rec["args_used"].add(r.key)
            if isinstance(leaves[r.key], Tensor):
                reads.setdefault(("arg", r.key), None)
        elif r.kind == LIVE:
            rec["live_used"][id(r.key)] = r.key
            reads.setdefault(("live", id(r.key)), r.key)
        elif r.kind not in (SLOT, ARG, CONST):
            raise Unsupported(f"the backward of the returned tensors reads {r.kind} data (at {site})")


def _resolvable(tmpl):
    """Whether a plan's result builder resolves every Ref in `tmpl` (it does not look inside slices)."""
    if isinstance(tmpl, (tuple, list)):
        return all(_resolvable(t) for t in tmpl)
    if isinstance(tmpl, slice):
        return not _refs(tmpl, [])
    return not isinstance(tmpl, dict) or not _refs(tmpl, [])
