"""The rows the constants scan (constants.py) returns, (root, name, attribute path, value), and their check before
each replay: `_Self` (the root of `self.x.y` chains), `_root_value` (a row's root looked up again), `_dotted` (a
row's path as the user wrote it, for messages) and `changed` (the first row whose value is not the same now)."""
import types

from .bytecode import _Key, _SUBSCRIPT, _USED
from .objects import _NAMES, _TYPE, _WHOLE, _Methods, _locate
from .values import (GONE as _GONE, MAX_NESTED as _MAX_NESTED, SNAPSHOTS as _SNAPSHOTS, collection as _collection,
                     data as _data, same as _same)


class _Self:
    """The root of `self.x.y` chains: the instance a compiled method or Module is bound to (it does not change)."""
    __slots__ = ("obj",)

    def __init__(self, obj):
        self.obj = obj


def _dotted(name, path):
    return name + "".join(repr(a) if a.__class__ is _Key else "[...]" if a == _SUBSCRIPT else "." + a for a in path
                          if a not in (_WHOLE, _NAMES, _USED, _TYPE))


def _root_value(root, name):
    if root.__class__ is dict:  # a module's globals, a Module's children
        return root.get(name, _GONE)
    if isinstance(root, _Self):
        return root.obj
    try:
        return root.cell_contents
    except ValueError:  # not assigned yet
        return _GONE


def changed(constants):
    """The first recorded constant whose value is not the same now, as a message; None when all hold."""
    for root, name, path, value in constants:
        if value.__class__ is _Methods:
            reason = value.changed()
            if reason is not None:
                return reason
            continue
        now = root.get(name, _GONE) if root.__class__ is dict else root.obj if root.__class__ is _Self else \
            _root_value(root, name)
        for attr in path:
            now = _locate(now, attr)[0]
        if value.__class__ in _SNAPSHOTS:
            if not value.same(now):
                return value.describe(_dotted(name, path))
            continue
        if now is not value and not (_data(value) and _same(now, value)):
            kind = ("item" if path[-1].__class__ is _Key else "attribute") if path else "closure variable" \
                if isinstance(root, types.CellType) else "global" if "__name__" in root else "attribute"
            what = _dotted(name, path)
            if path[-1:] == (_NAMES,):
                return f"an attribute of '{what}', which the function reads with getattr, was added or removed"
            if now is _GONE:
                return f"the {kind} '{what}' the function reads is gone"
            if not _data(value):
                return f"the {kind} '{what}' the function reads is another {type(now).__name__} now"
            return f"the {kind} '{what}' the function reads was {value!r} when recorded and is {now!r} now"
    return None


def read_inside(constants, changed):
    """The first row whose path reads from inside one of the objects `changed` (id -> object: what the call's replayed
    methods change, hooks.replayable's `changes`; `opt.param_groups[0]['lr']` reads a group dict a scheduler's step
    sets), as the user wrote it; None when no row does. Such a value is checked at the start of a call but may
    change during it: where the function reads it after the replayed call, the recorded value would be stale
    (StepLR's rate changes every few calls, not at every one)."""
    for root, name, path, value in constants:
        if not path or not (_data(value) or value.__class__ in _SNAPSHOTS):  # (code, a class: not state)
            continue
        now = _root_value(root, name)
        for attr in path:
            if changed.get(id(now)) is now:
                return _dotted(name, path)
            if attr is _WHOLE and _holds(now, changed, [_MAX_NESTED]):  # (`[g['lr'] for g in opt.param_groups]`:
                return _dotted(name, path)                                # the groups are inside the list read whole)
            if attr in (_WHOLE, _NAMES, _USED):
                break
            now = _locate(now, attr)[0]
    return None


def _holds(obj, changed, budget):
    """Whether container `obj`, read whole, holds one of the objects `changed` among its items, in its nested
    lists, tuples and dicts too (at most budget[0] containers are looked into)."""
    if not _collection(obj) or budget[0] <= 0:
        return False
    budget[0] -= 1
    for item in (obj.values() if isinstance(obj, dict) else obj):
        if changed.get(id(item)) is item or _holds(item, changed, budget):
            return True
    return False
