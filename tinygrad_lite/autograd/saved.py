"""What an entry saved, checked before its VJP runs: refused when backward already freed it (retain_graph) or when
a value the VJP reads was changed in place since it was recorded (the version counters), and otherwise each
saved tensor as the entry saw it (an in-place change inside the graph, or `detach_()`, gives a tensor a newer
history; the stand-in holding the old one is found here). The engine (engine.py) calls `_check_saved` only when
the versions or the release flag say something changed."""
import weakref

import numpy as np

from . import recorder as tape
from .grad_mode import state


def _check_saved(e):
    """Raise for an entry whose saved values are gone or were changed in place and are read by its VJP; return
    the inputs as the entry saw them when only tensors whose values the VJP does not read were changed."""
    if e.released:
        raise RuntimeError(
            f"Trying to backward through the graph a second time: the values saved by {e.describe()} were freed by "
            f"the first backward. Specify retain_graph=True on the first backward() (or autograd.grad()) call if "
            f"you need to backward through the graph again.")
    reads = e.prim.reads
    if state.grad_enabled and "output" in reads:  # under create_graph, the output is recomputed from the inputs
        reads = reads | {"inputs"}
    saved = tuple([_as_seen_by(t, e.seq) for t in e.saved])
    now = [t._version for t in saved]
    # An input changed in place since recording, either given a new value and history inside the graph (`rebound`)
    # or written in its buffer (`written`): a VJP reading inputs must refuse; after a buffer write, so must an
    # entry whose output is a view of that input (reshape, transpose, slices): whoever saved the view reads it.
    rebound = any([a._data is not b._data for a, b in zip(saved, e.saved)])  # new values (detach_ keeps them)
    written = sum(now) != e.versions
    if ("inputs" in reads and (rebound or written)) or (written and _aliases_input(e, saved)):
        changed = ", ".join(f"input {i} of shape {tuple(t.shape)} ({t.dtype}) at version {v}"
                            for i, (t, v) in enumerate(zip(e.saved, [t._version for t in e.saved])) if v)
        raise RuntimeError(
            f"one of the variables needed for gradient computation has been modified by an in-place operation: "
            f"{changed} of {e.describe()} changed after it was recorded (versions summed to {e.versions} then). "
            f"Use an out-of-place operation, or .clone() the tensor before changing it.")
    if e.dirty and "output" in reads:
        raise RuntimeError(
            f"one of the variables needed for gradient computation has been modified by an in-place operation: the "
            f"output of {e.describe()} was changed in place after it was recorded; expected version 0.")
    e.saved = saved
    e.versions = sum(now)
    return saved


def _aliases_input(e, saved):
    out = e.out_data
    return out is not None and any(np.may_share_memory(out, t._data) for t in saved)


def _as_seen_by(t, seq):
    """The tensor `t` as the entry recorded at `seq` saw it: an in-place operation inside the graph gives `t` a
    newer history (its entry's `before` is the stand-in holding what came earlier), and `detach_()` drops it (the
    stand-in is kept in `_detached`)."""
    while True:
        e = t._entry
        if e is not None and e.seq > seq:
            t = e.before
            continue
        rec = _detached.get(id(t)) if e is None and _detached else None
        if rec is not None and rec[0]() is t and rec[1] > seq:
            t = rec[2]
            continue
        return t


_detached = {}  # id(tensor) -> (weakref to it, sequence number of its detach_(), stand-in with the old history)


def note_detached(t):
    """`t.detach_()`: remember its history for the entries recorded before, then make it a leaf (the version goes
    up so those entries look the history up; the values are unchanged, so none of them refuses)."""
    key = id(t)
    old = tape._wrap(t._data)
    old._entry, old.requires_grad, old._version = t._entry, t.requires_grad, t._version
    _detached[key] = (weakref.ref(t, lambda _, k=key: _detached.pop(k, None)), next(tape._seq), old)
    t._version += 1
    t._entry = None
    t.requires_grad = False
