"""Forward-mode AD, as torch.autograd.forward_ad: dual tensors carry a tangent through every primitive.

    with forward_ad.dual_level():
        x = forward_ad.make_dual(primal, tangent)
        y = f(x)
        value, jvp = forward_ad.unpack_dual(y)     # jvp = J(primal) @ tangent

Each primitive declares its JVP once, beside its VJP (`prim.defjvp`), in Tensor operations: a tangent is an
ordinary Tensor, so its own computation is recorded on the tape (reverse over forward) and carries the tangents
of other levels (forward over forward: `jacfwd(jacfwd(f))`). Levels nest: while a primitive's JVP at level L
runs, L is switched off, so a tangent never picks up a derivative of its own level (no perturbation confusion).

The tangents of a tensor live in its `_fw` slot: {level: tangent}. A slot is set only on tensors made while a
level is active; nothing is paid when forward mode is off (recorder.apply reads one module global).
"""
import collections
import itertools
import threading

import numpy as np

from . import recorder

UnpackedDualTensor = collections.namedtuple("UnpackedDualTensor", ["primal", "tangent"])

_ids = itertools.count(1)
_active_count = 0  # levels open on any thread; recorder.fw_active mirrors `> 0`
_count_lock = threading.Lock()


class _Levels(threading.local):
    def __init__(self):
        self.stack = []       # open level ids, outermost first
        self.off = set()      # levels whose JVPs are being computed (not propagated inside them)


_levels = _Levels()


def _set_active(delta):
    global _active_count
    with _count_lock:
        _active_count += delta
        recorder.fw_active = _active_count > 0


class dual_level:
    """Context manager: a forward-AD level. Dual tensors made inside carry their tangents until it exits (a
    tangent of a closed level is never read again). Levels may nest (each `tl.func.jvp` opens its own)."""

    def __enter__(self):
        self.level = next(_ids)
        _levels.stack.append(self.level)
        _set_active(1)
        return self.level

    def __exit__(self, *exc):
        _levels.stack.remove(self.level)
        _set_active(-1)
        return False


def enter_dual_level():
    """Open a level without a `with` block (torch.autograd.forward_ad.enter_dual_level); returns its id."""
    lvl = dual_level()
    lvl.__enter__()
    _open_by_id[lvl.level] = lvl
    return lvl.level


def exit_dual_level(*, level=None):
    level = _current(level, "exit_dual_level")
    _open_by_id.pop(level).__exit__(None, None, None)


_open_by_id = {}


def _current(level, what):
    if level is None:
        if not _levels.stack:
            raise RuntimeError(f"forward_ad.{what}: no dual level is open; use `with forward_ad.dual_level():`")
        return _levels.stack[-1]
    if level not in _levels.stack:
        raise RuntimeError(f"forward_ad.{what}: level {level} is not open")
    return level


def tangent_of(t, level):
    fw = getattr(t, "_fw", None)
    return None if fw is None else fw.get(level)


def _set_tangent(t, level, tangent):
    fw = getattr(t, "_fw", None)
    t._fw = {level: tangent} if fw is None else {**fw, level: tangent}


def make_dual(tensor, tangent, *, level=None):
    """A new tensor with the values of `tensor` (sharing its memory and its reverse-mode history) whose tangent
    at `level` (the innermost open one by default) is `tangent`: same shape, same floating dtype."""
    from ..tensor import Tensor
    level = _current(level, "make_dual")
    for name, v in (("tensor", tensor), ("tangent", tangent)):
        if not isinstance(v, Tensor):
            raise TypeError(f"forward_ad.make_dual: {name} must be a Tensor, not {type(v).__name__}")
    if tensor._data.dtype.kind not in "fc":
        raise ValueError(f"forward_ad.make_dual: expected a floating point tensor, got {tensor._data.dtype}")
    if tangent._data.shape != tensor._data.shape or tangent._data.dtype != tensor._data.dtype:
        from ..ops.registry import OpError  # a RuntimeError, as PyTorch's, that is also a ValueError
        raise OpError(f"forward_ad.make_dual: the tangent ({tuple(tangent._data.shape)}, {tangent._data.dtype})"
                         f" must have the shape and dtype of the tensor ({tuple(tensor._data.shape)}, "
                         f"{tensor._data.dtype})")
    dual = _alias(tensor, level)
    _set_tangent(dual, level, tangent)
    return dual


def unpack_dual(tensor, *, level=None):
    """(primal, tangent): the primal is a view of `tensor` (same memory, same reverse-mode history) without the
    level's tangent; the tangent is None when `tensor` has none at that level."""
    if level is None and not _levels.stack:
        return UnpackedDualTensor(tensor, None)
    level = _current(level, "unpack_dual")
    tangent = tangent_of(tensor, level)
    if tangent is None:
        return UnpackedDualTensor(tensor, None)
    primal = _alias(tensor, level)
    fw = {k: v for k, v in primal._fw.items() if k != level} if getattr(primal, "_fw", None) else None
    primal._fw = fw or None
    return UnpackedDualTensor(primal, tangent)


def _alias(tensor, level):
    """A new Tensor object on the same memory: a recorded identity (reshape to its own shape) when reverse mode
    tracks `tensor`, so the alias stays on its graph; the level's propagation is off while it is made."""
    from ..ops.movement import reshape
    if not tensor.requires_grad:
        from ..compile.hooks import data  # (a capture, vmap's, learns the array is `tensor`'s: an argument vmap
        t = tensor.__class__._wrap(data(tensor))  # does not batch is read live, not refused as unrecorded)
        fw = getattr(tensor, "_fw", None)
        if fw:
            t._fw = dict(fw)
        return t
    _levels.off.add(level)
    try:
        return reshape(tensor, tensor._data.shape)
    finally:
        _levels.off.discard(level)


def propagate(prim, inputs, attrs, out):
    """Called by recorder.apply while forward mode is on: the output's tangent at every open level where an
    input has one, from the primitive's JVP."""
    if out._data.dtype.kind not in "fc":
        return  # integer and boolean results carry no tangent (as PyTorch)
    for level in _levels.stack:
        if level in _levels.off:
            continue
        tangents = [tangent_of(x, level) for x in inputs]
        if all(t is None for t in tangents):
            continue
        if prim.jvp is None:
            raise RuntimeError(f"forward-mode AD: primitive '{prim.name}' has no JVP rule (declare one with "
                               f"@{prim.name}.defjvp beside its VJP)")
        _set_tangent(out, level, run_jvp(level, prim.jvp, inputs, tangents, out, attrs, prim.name))


def run_jvp(level, rule, inputs, tangents, out, attrs, name):
    """rule(inputs, tangents, out, attrs) with `level` switched off, its result checked and conformed to the
    output's shape and dtype (a rule may return the tangent of a broadcast operand unexpanded)."""
    _levels.off.add(level)
    try:
        tangent = rule(inputs, tangents, out, attrs)
        if tangent is None:
            return None
        return conform(tangent, out, name)
    finally:
        _levels.off.discard(level)


def conform(tangent, out, name):
    from ..tensor import Tensor
    if not isinstance(tangent, Tensor):
        raise TypeError(f"forward-mode AD: the JVP of '{name}' returned a {type(tangent).__name__}, not a Tensor")
    shape, dt = out._data.shape, out._data.dtype
    if tangent._data.dtype != dt:
        tangent = tangent.to(dt)
    if tangent._data.shape != shape:
        try:
            np.broadcast_shapes(tangent._data.shape, shape)
        except ValueError:
            raise RuntimeError(f"forward-mode AD: the JVP of '{name}' returned a tangent of shape "
                               f"{tuple(tangent._data.shape)} for an output of shape {tuple(shape)}") from None
        tangent = tangent.expand(shape)
    return tangent


def open_levels():
    """The open levels (outermost first) whose tangents are propagated now."""
    return [lv for lv in _levels.stack if lv not in _levels.off]


class levels_off:
    """Context manager: no tangent of the given levels is propagated inside (a custom Function's forward)."""

    def __init__(self, levels):
        self.levels = [lv for lv in levels if lv not in _levels.off]

    def __enter__(self):
        _levels.off.update(self.levels)

    def __exit__(self, *exc):
        _levels.off.difference_update(self.levels)
        return False
