"""dynamic_axes: which recorded ints depend on a symbolic dimension, and how.

The call is recorded once at the example sizes and twice more per symbol with that symbol's size changed, by 1 and
by CHECK (the inputs are tiled along those axes, so index inputs stay valid). The recordings must list the same
operations; every int that differs becomes a `Dim`, solved as `scale * prod(symbols it depends on) + offset`
through the first two, and the third must give the same solution (`same_fits`), so a size that is not of that
form (ceil(n / 2)) is refused, not exported wrong. A Python branch on a shape shows up as recordings that differ,
and is refused.
"""
import numpy as np

from .rules import Dim
from .errors import ExportError
from ..tensor import Tensor

CHECK = 3  # the third recording's step: odd, so a size that halves (or rounds) shows, and not a multiple of 2


def resized(arr, axes, sizes):
    """`arr` with each axis in `axes` (axis -> symbol) given its symbol's size, by repeating its entries."""
    for axis, sym in axes.items():
        n = sizes[sym]
        arr = np.take(arr, np.arange(n) % arr.shape[axis], axis=axis)
    return arr


class Overlay:
    """The base recording's arguments with dynamic ints replaced by Dims; shapes of constants that vary."""

    def __init__(self, sizes, bumped):
        self.sizes, self.bumped = sizes, bumped  # symbol -> base size; symbol -> changed size
        self.const_shapes = {}  # id(array of the base recording) -> shape with Dims
        self.const_values = {}  # id(0-d array of the base recording) -> (array, symbol -> value, what) that vary

    def solve(self, v0, per_symbol, what):
        deps = {s: v for s, v in per_symbol.items() if v != v0}
        if not deps:
            return v0
        prod = int(np.prod([self.sizes[s] for s in deps]))
        scales = set()
        for s, v in deps.items():
            step = (self.bumped[s] - self.sizes[s]) * prod // self.sizes[s]
            if step == 0 or (v - v0) % step:
                scales.add(None)
            else:
                scales.add((v - v0) // step)
        if len(scales) != 1 or None in scales:
            raise ExportError(f"{what}: the value {v0} changes with {sorted(deps)} in a way that is not "
                              f"scale * size + offset; cannot export it with dynamic axes")
        scale = scales.pop()
        return Dim(v0, (scale, tuple(sorted(deps)), v0 - scale * prod))

    def walk(self, base, others, what):
        """`base` with ints that differ in `others` (symbol -> the same structure) made Dims."""
        if isinstance(base, (bool, np.bool_)) or base is None:
            return base
        if isinstance(base, (int, np.integer)):
            return self.solve(int(base), {s: int(o) for s, o in others.items()}, what)
        if isinstance(base, (tuple, list)):
            if any(not isinstance(o, (tuple, list)) or len(o) != len(base) for o in others.values()):
                raise ExportError(f"{what}: an argument changes length with the dynamic axes")
            return type(base)(self.walk(b, {s: o[i] for s, o in others.items()}, what) for i, b in enumerate(base))
        if isinstance(base, slice):
            parts = [self.walk(getattr(base, k), {s: getattr(o, k) for s, o in others.items()}, what)
                     for k in ("start", "stop", "step")]
            return slice(*parts)
        arr = base._data if isinstance(base, Tensor) else base
        if isinstance(arr, np.ndarray):
            shapes = {s: (o._data if isinstance(o, Tensor) else o).shape for s, o in others.items()}
            if any(sh != arr.shape for sh in shapes.values()):
                self.const_shapes[id(arr)] = self.walk(arr.shape, shapes, what)
            elif arr.ndim == 0:  # a scalar that changes with a size (the 1 / n of a mean): solved if it is a constant
                vals = {s: (o._data if isinstance(o, Tensor) else o).item() for s, o in others.items()}
                if any(v != arr.item() and not (v != v and arr.item() != arr.item()) for v in vals.values()):
                    self.const_values[id(arr)] = (arr, vals, what)
        return base

    def scalar(self, arr, vals, what):
        """A 0-d constant that differs between the recordings, as a Dim `d` and whether it is `d` or `1 / d`."""
        v0 = arr.item()
        if arr.dtype.kind in "iuf":
            for inverse in (False, True):
                ints = [1 / v if inverse and v else v for v in (v0, *vals.values())]
                near = [round(v) if np.isfinite(v) else None for v in ints]
                if None in near or any(np.asarray(1 / n if inverse else n, dtype=arr.dtype) != o
                                       for n, o in zip(near, (v0, *vals.values())) if n):
                    continue
                d = self.solve(near[0], dict(zip(vals, near[1:])), what)
                if isinstance(d, Dim):
                    return d, inverse
        raise ExportError(f"{what}: the constant {v0!r} changes with the dynamic axes ({vals}) in a way that is not "
                          f"a size or one over a size; cannot export it with dynamic axes")


def align(base, others, overlay):
    """Per item of the base recording, its arguments with Dims; checks that every recording lists the same
    operations."""
    for sym, rec in others.items():
        if len(rec.items) != len(base.items) or any(_op(a) != _op(b) for a, b in zip(base.items, rec.items)):
            first = next((b for a, b in zip(rec.items, base.items) if _op(a) != _op(b)),
                         base.items[-1] if base.items else None)
            at = f" (first difference: '{first.name}' at {first.where()})" if first is not None else ""
            raise ExportError(f"the call records different operations when dynamic axis '{sym}' changes size from "
                              f"{overlay.sizes[sym]} to {overlay.bumped[sym]}{at}: a Python branch on a shape or a "
                              f"value cannot be exported with dynamic axes")
    return [overlay.walk(item.args, {s: r.items[i].args for s, r in others.items()},
                         f"'{item.name}' at {item.where()}") for i, item in enumerate(base.items)]


def _op(item):
    """What a recorded call runs: its primitive or host function (a wrapper made per call, by what it wraps)."""
    return item.prim, getattr(item.fn, "__wrapped__", item.fn)


def same_fits(fit, check, where):
    """Refuse (ExportError) when the third recording (`check`) solves an int differently from the first two (`fit`):
    each is (Overlay, items' arguments, output shapes) from `_Exporter._overlay`."""
    (o1, args1, outs1), (o2, args2, outs2) = fit, check
    for i, (a, b) in enumerate(zip(args1, args2)):
        if not _same(a, b):
            _refuse(where[i])
    for i, (a, b) in enumerate(zip(outs1, outs2)):
        if b is not None and not _same(a, b):
            _refuse(f"output {i}")
    for key, shape in o1.const_shapes.items():
        if not _same(shape, o2.const_shapes.get(key)):
            _refuse("the shape of a constant made during the call")
    if o1.const_values.keys() != o2.const_values.keys():
        _refuse("a constant made during the call")
    for key, varies in o1.const_values.items():
        try:
            fits = o1.scalar(*varies), o2.scalar(*o2.const_values[key])
        except ExportError:  # (not a size at all: refused where the graph uses it, if it does)
            continue
        if fits[0][0].expr != fits[1][0].expr or fits[0][1] != fits[1][1]:
            _refuse("a constant made during the call")


def _same(a, b):
    if isinstance(a, Dim) or isinstance(b, Dim):
        return isinstance(a, Dim) and isinstance(b, Dim) and a.expr == b.expr
    if isinstance(a, (tuple, list)):
        return isinstance(b, (tuple, list)) and len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, slice):
        return isinstance(b, slice) and all(_same(getattr(a, k), getattr(b, k)) for k in ("start", "stop", "step"))
    return True  # (arrays and other values: the same objects of the base recording on both sides)


def _refuse(what):
    raise ExportError(f"{what}: a size there changes with the dynamic axes in a way that is not scale * size + "
                      f"offset (a recording at a third size does not follow the line through the first two, e.g. "
                      f"ceil(n / 2)); cannot export it with dynamic axes")
