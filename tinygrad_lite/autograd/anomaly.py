"""Anomaly mode: a NaN made in forward, or a NaN/Inf made in backward, raises `AnomalyError`, which says where the
bad value was born (not only where it surfaced), why, and how to fix it.

The checks run only inside `detect_anomaly()` (the recorder and the engine test one thread-local flag); the
analysis of a finding lives in `_anomaly_origin` and is imported only when something was found. An Inf in forward
is legal (masks use -inf): only a NaN there raises.
"""
import weakref

import numpy as np

from .grad_mode import _Switch


class detect_anomaly(_Switch):
    """Context manager / decorator enabling anomaly detection (per thread), as torch.autograd.detect_anomaly."""
    field = "anomaly"

    def __init__(self, check_nan=True):
        self.value = check_nan

    def _fresh(self):
        return detect_anomaly(self.value)


class AnomalyError(RuntimeError):
    """A NaN in forward or a NaN/Inf in backward, seen in anomaly mode.

    phase: 'forward' or 'backward'. entry: the tape entry where it was detected. origin: the earliest entry on its
    path that made a non-finite value out of finite ones (or that read an already non-finite input). cause:
    'overflow', 'invalid' (0/0, inf - inf, log or sqrt of a negative), 'divide-by-zero', 'input' (non-finite in a
    leaf, a constant or the seed gradient) or 'masked-branch' (a backward NaN made by a branch that where/masking
    discarded in forward: 0 * inf in its VJP). path: the entries from origin to entry, in recording order; draw
    them with `tl.viz.draw(output, highlight=err.path)`.
    """

    def __init__(self, message, phase=None, entry=None, origin=None, cause=None, path=()):
        super().__init__(message)
        self.phase, self.entry, self.origin, self.cause, self.path = phase, entry, origin, cause, list(path)

    @classmethod
    def from_finding(cls, f):
        return cls(f.message(), f.phase, f.entry, f.origin, f.cause, f.path)

    def draw(self, *outputs, **options):
        """tl.viz.draw of `outputs` (default: the value where the anomaly surfaced, which a forward error never
        returned to you) with the path from origin to entry in red; options as tl.viz.draw's."""
        from .. import viz
        return viz.draw(*(outputs or (_stand_in(self.entry),)), highlight=self, **options)


def _stand_in(entry):
    """A Tensor standing for the entry's output, so that the graph behind it can be drawn."""
    from . import recorder
    data = entry.out_data if entry.out_data is not None else np.zeros(entry.output_shape, entry.output_dtype)
    t = recorder.Tensor._wrap(data)
    t._entry, t.requires_grad = entry, True
    return t


# entry -> weak references to the entries recorded in anomaly mode that read its output: a masked-branch error
# names the where/mask that discarded the value. Weak on both sides, so the tape's lifetime is unchanged.
_consumers = weakref.WeakKeyDictionary()


def _note_consumer(entry):
    ref = weakref.ref(entry)
    for t in entry.saved:
        producer = t._entry
        if producer is not None:
            _consumers.setdefault(producer, []).append(ref)


def _direct_consumers(entry):
    alive = [r() for r in _consumers.get(entry, ())]
    return [e for e in dict.fromkeys(alive) if e is not None]


def maskers_of(entry, limit=64):
    """The entries downstream of `entry` that can have discarded its value: the nearest `where` calls (searched
    breadth-first over at most `limit` entries), else its direct consumers."""
    direct = _direct_consumers(entry)
    seen, frontier = set(direct), direct
    while frontier and len(seen) <= limit:
        found = [e for e in frontier if e.name == "where"]
        if found:
            return found
        nxt = [c for e in frontier for c in _direct_consumers(e) if c not in seen]
        seen.update(nxt)
        frontier = nxt
    return direct


def _has_nan(a):
    return a.dtype.kind in "fc" and np.isnan(a).any()


def check_forward(entry, out):
    """Raise when the new entry's output holds a NaN that its inputs did not bring from earlier entries (a NaN
    in a leaf or a constant is reported too, with cause 'input')."""
    _note_consumer(entry)
    if not _has_nan(out._data):
        return
    if any(_has_nan(t._data) and t._entry is not None for t in entry.saved):
        return  # carried from an earlier entry: that one raised, or it was recorded outside anomaly mode
    from ._anomaly_origin import analyze_forward
    raise AnomalyError.from_finding(analyze_forward(entry))


def check_backward(entry, grads):
    """Raise when the entry's VJP returned a NaN/Inf gradient (`entry.grad` holds the gradient it received)."""
    from ._anomaly_origin import array_of, nonfinite
    for i, g in enumerate(grads):
        a = array_of(g)
        if nonfinite(a):
            from ._anomaly_origin import analyze_backward
            raise AnomalyError.from_finding(analyze_backward(entry, i, a, maskers_of(entry)))
