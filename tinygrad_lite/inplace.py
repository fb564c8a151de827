"""In-place operations as PyTorch has them: `add_ sub_ mul_ div_ ...`, augmented assignment (`p -= lr * g`) and
item assignment (`t[idx] = v`).

Two paths. Outside the graph (grad mode off, or nothing involved requires grad) the result is written into the
tensor's own buffer, so every alias of it (`.data`, `.detach()`, views, `from_numpy`) sees the change. Inside the
graph the operation is recorded out of place on a stand-in that keeps the old values and history, the result is
copied into the tensor's buffer, and the tensor takes the new history: item assignment on a non-leaf is
differentiable and the overwritten part gets no gradient. Either way the tensor's version goes up, so a recorded
operation that saved it refuses to backward, as PyTorch's version counter does.
"""
import numbers

import numpy as np

from . import shape as _shape
from .autograd import recorder as _recorder
from .autograd.grad_mode import state
from .compile.capture import user_site
from .compile.hooks import active, astype, constant, data, host, host_effect
from .functional import where
from .inplace_kernels import (_broadcast_text, _broadcasts_to, _copy_into, _draw_into, _fill_array, _getitem,
                              _new_buffer, _set_items, _ufunc_into, _view_of)
from .ops import index as ix, registry
from .random import checked
from .operators import scaled
from .tensor import Tensor, _as_array, _dim, _retains, _wrap

_KIND_RANK = {"b": 0, "u": 1, "i": 1, "f": 2}


def _fail(name, self, msg, cls=None):
    raise (cls or registry.OpError)(f"{name}: {msg} (tensor of shape {tuple(self._data.shape)}, {self._data.dtype})"
                                    f"{registry.user_site()}")


def _check_leaf(self, name):
    if self.requires_grad and self._entry is None:
        raise RuntimeError(
            f"{name}: a leaf Variable that requires grad (shape {tuple(self._data.shape)}, {self._data.dtype}) is "
            f"being used in an in-place operation{registry.user_site()}. Update parameters inside "
            f"`with tl.no_grad():`, or use the out-of-place form (`x = x + y`).")
    base = getattr(self, "_detached_from", None)  # (a view's: recorder._note_view)
    if base is not None and self.requires_grad and self._entry is not None and base.requires_grad and \
            base._entry is None:  # `w[0, 1].mul_(2)`, `w[:2].zero_()` on a parameter: PyTorch refuses as well
        raise RuntimeError(
            f"{name}: a view of a leaf Variable that requires grad (a view of shape {tuple(self._data.shape)} of a "
            f"leaf of shape {tuple(base._data.shape)}, {base._data.dtype}) is being used in an in-place operation"
            f"{registry.user_site()}. Change the leaf inside `with tl.no_grad():`, or use the out-of-place form.")


def _write(self, name, res, cast):
    """Copy the array `res` into self's buffer, where every alias sees it (see _check_result)."""
    _check_result(self, name, res, cast)
    host_effect(_copy_into, _buffer(self), res)


def _buffer(self):
    """self's array, for a recorded write into it: under tl.compile a tensor from outside the call that the call
    has not used yet (a registered buffer updated under no_grad) is tracked from here on, like any live tensor."""
    cap = active()
    if cap is not None:
        cap.ref(self, "an in-place change")
    return self._data


def _check_result(self, name, res, cast):
    """`res` must broadcast to self's shape and, unless `cast`, be castable by PyTorch's rule (bool -> integer ->
    floating, never back); self's memory must be writable."""
    dst = self._data
    if res.shape != dst.shape and not _broadcasts_to(res.shape, dst.shape):
        _fail(name, self, f"output with shape {tuple(dst.shape)} doesn't match the broadcast shape "
                          f"{_broadcast_text(res.shape, dst.shape)}")
    if not cast and res.dtype != dst.dtype and _KIND_RANK[res.dtype.kind] > _KIND_RANK[dst.dtype.kind]:
        _fail(name, self, f"result type {res.dtype} can't be cast to the desired output type {dst.dtype}")
    if not dst.flags.writeable:
        _fail(name, self, "the tensor's memory is read-only (an expanded view or a shared constant); "
                          "use .clone() first")


def _needs_graph(self, args):
    if not state.grad_enabled or self._data.dtype.kind not in "fc":  # (an integer or bool tensor takes no history:
        return False  # a float value that requires grad is cast into it, as in PyTorch)
    if self.requires_grad:
        return True
    return any(a.__class__ is Tensor and a.requires_grad for a in args)


def _dual(self, args):
    """Forward mode is on and self or an argument carries a tangent: the new values need their new tangent, so
    the operation goes through its Tensor computation (never the raw buffer write alone)."""
    return _recorder.fw_active and any(getattr(t, "_fw", None) for t in (self, *args) if isinstance(t, Tensor))


def _bump(self):
    cap = active()
    for t in (self, getattr(self, "_detached_from", None)):  # (a detached alias's write changes the original too)
        if t is None:
            continue
        t._version += 1
        if t._entry is not None:
            t._entry.dirty = True  # its recorded output changed: a VJP reading it must refuse
        if cap is not None:
            cap.bump(t)


def inplace(self, name, compute, args=(), cast=False):
    """Make self hold `compute(self, *args)` (a Tensor function), with PyTorch's in-place semantics."""
    if _needs_graph(self, args):
        _check_leaf(self, name)
        if getattr(self, "_view_no_grad", False):
            raise RuntimeError(
                f"{name}: a view was created in no_grad mode and is being modified in place with grad mode enabled "
                f"(a view of shape {tuple(self._data.shape)}, {self._data.dtype}){registry.user_site()}. Given that "
                f"this use case is ambiguous and error-prone, it is forbidden (as in PyTorch). Move both the view and "
                f"the in-place change inside the no_grad block (if the change is not to be tracked) or both outside.")
        target = _view_target(self)
        if target is not None:  # a view: its new values go into the tensor it views too (_write_through)
            _inplace_graph(self, name, compute, args, cast)
            _write_through(name, *target)
            return self
        return _inplace_graph(self, name, compute, args, cast)
    r = compute(self, *args)
    _write(self, name, r._data, cast)
    _bump(self)
    _take_tangents(self, r)
    if _recorder.fw_active:
        _tangents_through(self)
    return self


def _tangents_through(self):
    """Forward mode, outside the graph: the values written through view self reached the tensor it views (their
    shared memory); so must self's new tangents (zero where self has none), and each view between takes them."""
    target = _view_target(self)
    if target is None:
        return
    root, placed = target
    index = placed[0][1]
    mine, theirs = getattr(self, "_fw", None) or {}, dict(getattr(root, "_fw", None) or {})
    for level in mine.keys() | theirs.keys():
        tangent = mine.get(level)
        before = theirs.get(level)
        if before is None:
            before = _wrap(constant(np.zeros(root._data.shape, root._data.dtype)))
        theirs[level] = ix.index_put(before, _wrap(constant(np.zeros((), root._data.dtype))) if tangent is None
                                     else tangent, index)
    root._fw = theirs or None
    for t, index, _ in placed[1:]:
        t._fw = {level: tangent[index] for level, tangent in theirs.items()} or None


def _inplace_graph(self, name, compute, args, cast):
    """inplace() inside the graph: self takes `compute(self, *args)`'s values, in a new buffer, and its history."""
    old = _stand_in(self)  # the old values, history, version and tangents, for backward of what came before
    if self._entry is not None:
        self._entry.dirty = True  # its recorded output changes: a VJP reading it must refuse (as PyTorch)
    r = compute(old, *args)
    if r._entry is None:  # no history: an argument itself (a leaf: take a copy's), or values that depend on
        # nothing needing a gradient (copy_ of a constant): the old values get a zero one (PyTorch's CopyBackwards)
        r = r.clone() if r.requires_grad else _zero_gradient_to(old, r)
    if r._data.dtype != self._data.dtype and r._data.shape == self._data.shape:
        if not cast and _KIND_RANK[r._data.dtype.kind] > _KIND_RANK[self._data.dtype.kind]:
            _write(self, name, r._data, cast)  # raises, naming the types
        r = r.astype(self._data.dtype)
    # The result goes to a new buffer, never into the old one: recorded operations (and views of it that they
    # saved) keep the values they saw, so no backward can read a value changed behind its back.
    _check_result(self, name, r._data, cast)
    cap = active()
    if cap is not None and id(self) not in cap.created:
        cap.fail(f"{name} at {user_site(2)} changes a tensor made before the call inside the graph (it takes "
                 f"a new history); change it under no_grad, or make it inside the function")
    self._data = host(_new_buffer, r._data, self._data.shape, self._data.dtype)
    self._version += 1
    r._entry.before = old
    self._entry, self.requires_grad = r._entry, r.requires_grad
    if old._entry is not None and _retains(old._entry.hooks):
        self.register_hook(old._entry.hooks.pop())  # retain_grad follows the tensor to its new values (PyTorch)
    _take_tangents(self, r)
    return self


def _view_target(self):
    """(root, [(tensor, index, layout), ...]) when self is a view made by operations (`h[0:2]`, `h.view(-1)[1:5]`,
    `h.t()[0]`) of a tensor root whose memory it still shares: for self and each view between (`v` of `v = h[1:];
    u = v[:, ::2]`), root[index] are its elements (advanced indices into root, in its shape), and layout (offset,
    strides in elements) places it in a C-ordered buffer of root's shape, or is None where no such strides exist.
    None for anything else (a detached alias, a view of memory root no longer holds)."""
    root, empty = getattr(self, "_view_base", None), not self._data.size
    # (an empty view shares no memory: it counts as a view of its base, so that the write records that the value
    # written gets a zero gradient, as in PyTorch)
    if root is None or root._data.dtype != self._data.dtype or not (
            empty or np.may_share_memory(root._data, self._data)):
        return None
    chain, t = [self], self
    while t is not root:  # the views between, those still alive and viewing the same memory
        parent = getattr(t, "_view_parent", None)
        t = parent() if parent is not None else None
        if t is None or t._data.dtype != self._data.dtype or not (empty or np.may_share_memory(t._data,
                                                                                               self._data)):
            t = root
        chain.append(t)
    root, placed = chain.pop(), []
    for t in chain:
        positions, layout = _placement(root._data, t._data)
        if positions is None:
            return None
        # (arrays, 0-d ones too: unravel_index gives a 0-d view's position as NumPy scalars, which tl.compile and
        # vmap cannot track as constants)
        index = tuple(constant(np.asarray(i)) for i in np.unravel_index(positions, root._data.shape))
        placed.append((t, index, layout))
    return root, placed


def _placement(base, view):
    """(positions, layout): for each element of `view`, the C-order position in `base` of the element whose memory
    it is, and (offset, strides) with positions == offset + sum(i * strides) or None (_layout); (None, None) when
    some element of view is no element of base. For a C-contiguous base (what operations make) both come from
    view's address and strides, in the view's size; else from _positions."""
    if not view.size:
        return np.zeros(view.shape, np.int64), (0, (0,) * view.ndim)
    size = base.itemsize
    start, vstart = base.__array_interface__["data"][0], view.__array_interface__["data"][0]
    if not base.flags.c_contiguous or (vstart - start) % size or any(s % size for s in view.strides):
        positions = _positions(base, view)
        return positions, None if positions is None else _layout(positions)
    offset, strides = (vstart - start) // size, tuple(s // size for s in view.strides)
    positions = _grid(view.shape, offset, strides)
    if positions.min() < 0 or positions.max() >= base.size:
        return None, None
    return positions, (offset, strides)


def _positions(base, view):
    """For each element of `view`, the C-order position in `base` of the element whose memory it is; None when
    some element of view is no element of base. Found from the arrays' strides: where base's elements fill most of
    the memory they span, an int64 array laid out like base (strides scaled), holding each element's position, read
    with view's layout; else (a column of a big array) by searching view's element offsets among base's, sorted,
    which costs base's size, not the span's."""
    size = base.itemsize
    (start, lo, hi), (vstart, vlo, vhi) = _bounds(base), _bounds(view)
    if vlo < lo or vhi > hi or any(s % size for s in base.strides + view.strides) or (start - lo) % size or \
            (vstart - lo) % size:
        return None
    if (hi - lo) // size > 4 * base.size:
        offsets = _grid(base.shape, 0, tuple(s // size for s in base.strides)).reshape(-1)
        order = np.argsort(offsets, kind="stable")
        offsets = offsets[order]
        wanted = _grid(view.shape, (vstart - start) // size, tuple(s // size for s in view.strides))
        at = np.minimum(np.searchsorted(offsets, wanted), offsets.size - 1)
        return order[at] if np.array_equal(offsets[at], wanted) else None
    memory = np.full((hi - lo) // size, -1, np.int64)
    as_strided = np.lib.stride_tricks.as_strided
    laid = as_strided(memory[(start - lo) // size:], base.shape, [s // size * 8 for s in base.strides])
    laid[...] = np.arange(base.size).reshape(base.shape)
    out = as_strided(memory[(vstart - lo) // size:], view.shape, [s // size * 8 for s in view.strides]).copy()
    return None if (out < 0).any() else out


def _bounds(a):
    """(address of a's first element, lowest and one past the highest byte address of its elements; a not empty)."""
    start = a.__array_interface__["data"][0]
    return (start, start + sum(min(0, (n - 1) * s) for n, s in zip(a.shape, a.strides)),
            start + sum(max(0, (n - 1) * s) for n, s in zip(a.shape, a.strides)) + a.itemsize)


def _layout(positions):
    """(offset, strides) with positions[i] == offset + sum(i * strides), or None when positions (not empty) are not
    so placed."""
    offset = int(positions.flat[0])
    strides = tuple(int(np.take(positions, 1, axis=k).flat[0]) - offset if n > 1 else 0
                    for k, n in enumerate(positions.shape))
    return (offset, strides) if np.array_equal(_grid(positions.shape, offset, strides), positions) else None


def _grid(shape, offset, strides):
    """The array of offset + sum(i * strides) over the indices i of `shape`."""
    grid = np.full(shape, offset, np.int64)
    for k, (n, st) in enumerate(zip(shape, strides)):
        grid += (np.arange(n, dtype=np.int64) * st).reshape((n,) + (1,) * (len(shape) - k - 1))
    return grid


def _write_through(name, root, placed):
    """After the in-place change of a view (placed[0]): root takes the view's new values at their place (its history:
    item assignment, the overwritten part gets no gradient), each view between takes root's new values and history
    at its place (PyTorch regenerates a view's history so), and every one of them views root's new buffer, so that
    later changes through one reach the others. (Other views of root made before keep its old values.)"""
    view, index, _ = placed[0]
    value = _stand_in(view)  # (what the write saves: the view itself takes a newer history below)
    inplace(root, name, lambda s, val: ix.index_put(s, val, index), (value,), cast=True)
    for t, index, layout in placed:
        if t is view:
            _rebase(t, root[index], value)
        else:
            _inplace_graph(t, name, lambda s, r: r[index], (root,), True)
        t._data = host(_getitem, root._data, index) if layout is None else \
            host(_view_of, root._data, t._data.shape, layout)


def _stand_in(self):
    """A tensor holding self's values, history, version and tangents, for entries recorded before self takes a
    newer history (autograd/saved.py _as_seen_by finds it through that history's `before`)."""
    old = _wrap(self._data)
    old._entry, old.requires_grad, old._version = self._entry, self.requires_grad, self._version
    if getattr(self, "_fw", None):
        old._fw = self._fw
    return old


def _rebase(self, r, old):
    """The changed view takes the history `r` (root[index], the same values; `old`: its _stand_in, holding the
    history of the change): as in PyTorch (a view of CopySlices), its later uses reach the root, whose retained grad
    and hooks see them, and its own retained grad and hooks count only those later uses. Its values do not change,
    so (unlike _inplace_graph) the entry that computed them stays clean (exp_ saved its output) and its version
    stays: nothing recorded since the change saved the view itself (the write saved `old`)."""
    if r._entry is None:
        return
    r._entry.before = old
    self._entry, self.requires_grad = r._entry, r.requires_grad
    if old._entry is not None and _retains(old._entry.hooks):
        self.register_hook(old._entry.hooks.pop())  # (retain_grad follows it, as in _inplace_graph)


def _take_tangents(self, r):
    """Forward mode: self, now holding r's values, holds r's tangents (none: a zero tangent)."""
    if _recorder.fw_active or getattr(self, "_fw", None):
        self._fw = getattr(r, "_fw", None)


def _fast_binary(ufunc, name):
    """`a.op_(b)` outside the graph: one NumPy call into the tensor's own buffer when no dtype promotion is needed."""
    def method(self, other, *, alpha=1):
        other = scaled(other, alpha)
        if not _needs_graph(self, (other,)) and not _dual(self, (other,)):
            o = other._data if other.__class__ is Tensor else other
            dst = _buffer(self)
            if dst.flags.writeable and (dst.dtype.kind == "f" or ufunc is not np.true_divide) and (
                    (o.__class__ is float and dst.dtype.kind == "f")
                    or (o.__class__ is np.ndarray and o.dtype == dst.dtype and _broadcasts_to(o.shape, dst.shape))):
                host_effect(_ufunc_into, ufunc, dst, o)
                _bump(self)
                return self
        return inplace(self, name, _OUT_OF_PLACE[name], (other,))
    method.__name__ = name
    return method


_OUT_OF_PLACE = {
    "add_": lambda s, o: s + o, "sub_": lambda s, o: s - o, "mul_": lambda s, o: s * o,
    "div_": lambda s, o: s / o,
}


def _unary(name, fn):
    def method(self, *args, **kwargs):
        return inplace(self, name, lambda s, *a: fn(s, *a, **kwargs), args)
    method.__name__ = name
    return method


def _fill(self, value):
    if isinstance(value, Tensor):
        if value._data.ndim != 0:
            _fail("fill_", self, f"only supports 0-dimension value tensor but got tensor with {value._data.ndim} "
                                 f"dimensions")
    elif not isinstance(value, (numbers.Number, np.generic)):
        _fail("fill_", self, f"value must be a number or a 0-d Tensor, got {type(value).__name__}", TypeError)
    if not _needs_graph(self, (value,)) and not _dual(self, (value,)):
        if not self._data.flags.writeable:
            _write(self, "fill_", self._data, True)  # raises: read-only
        host_effect(_fill_array, _buffer(self), data(value) if isinstance(value, Tensor) else value)
        _bump(self)
        return self
    mask = _wrap(constant(np.ones(self._data.shape, dtype=bool)))
    return inplace(self, "fill_", lambda s, v: s.masked_fill(mask, v), (value,), cast=True)


def _zero_gradient_to(old, r):
    """r's values with a history through `old` that gives it a zero gradient."""
    return where(_wrap(constant(np.ones(old._data.shape, dtype=bool))), r, old)


def _copy(self, src, non_blocking=False):
    """Copy `src` (broadcast, cast to this tensor's dtype) into this tensor; differentiable w.r.t. `src`."""
    if not isinstance(src, Tensor):
        arr = _as_array(src, None, "copy_")
        src = _wrap(arr if isinstance(src, np.ndarray) else constant(arr))  # Python values are constants
    if not _needs_graph(self, (src,)) and not _dual(self, (src,)):
        _write(self, "copy_", src._data, True)
        _bump(self)
        return self
    return inplace(self, "copy_", lambda s, v: v.astype(s._data.dtype).expand(*s._data.shape), (src,), cast=True)


def _random_fill(name, draw):
    def method(self, *args, generator=None):
        checked(generator, name)
        if self._data.dtype.kind != "f":
            _fail(name, self, "expected a floating point tensor", TypeError)
        if state.grad_enabled and self.requires_grad:
            _check_leaf(self, name)
        host_effect(_draw_into, draw, generator, _buffer(self), args)
        _bump(self)
        if getattr(self, "_fw", None):
            self._fw = None  # new values that depend on nothing: a zero tangent
        return self
    method.__name__ = name
    return method


def setitem(self, index, value):
    """`self[index] = value` with PyTorch's semantics (see the module docstring)."""
    idx = _shape._norm_index(index, self._data.shape)
    if isinstance(value, Tensor):
        v = value
    else:
        try:
            arr = _as_array(value, self._data.dtype, "setitem")
            v = _wrap(arr if isinstance(value, np.ndarray) else constant(arr))  # Python values are constants
        except TypeError as exc:
            _fail("setitem", self, str(exc).split(": ", 1)[-1], TypeError)
    try:
        target = np.broadcast_to(np.zeros((), dtype=np.int8), self._data.shape)[idx].shape
    except IndexError as exc:
        _fail("setitem", self, f"{exc}; index {_short(index)}", IndexError)
    vshape = v._data.shape
    extra = len(vshape) - len(target)
    if extra > 0 and all(s == 1 for s in vshape[:extra]):  # leading size-1 dims are dropped, as PyTorch
        v = v.reshape(vshape[extra:])
    if not _broadcasts_to(v._data.shape, target):
        _fail("setitem", self, f"shape mismatch: value tensor of shape {tuple(vshape)} cannot be broadcast to "
                               f"indexing result of shape {tuple(target)}")
    if not _needs_graph(self, (v,)) and not _dual(self, (v,)):
        if not self._data.flags.writeable:
            _write(self, "setitem", self._data, True)  # raises: read-only
        host_effect(_set_items, _buffer(self), idx, data(v))
        _bump(self)
        return
    if v._data.dtype != self._data.dtype:
        v = v.astype(self._data.dtype) if v._data.dtype.kind == "f" and self._data.dtype.kind == "f" else \
            _wrap(host(astype, data(v), self._data.dtype))
    inplace(self, "setitem", lambda s, val: ix.index_put(s, val, idx), (v,), cast=True)


def index_put_(self, indices, values, accumulate=False):
    """`self[indices] = values` (indices: a tuple of index tensors), or with `accumulate` `self[indices] +=
    values` where repeated positions add up (torch.Tensor.index_put_); differentiable w.r.t. self and values."""
    if not isinstance(indices, (tuple, list)):
        _fail("index_put_", self, f"indices must be a tuple of Tensors, got {type(indices).__name__}", TypeError)
    if not accumulate:
        setitem(self, tuple(indices), values)
        return self
    idx = _shape._norm_index(tuple(indices), self._data.shape)
    v = values if isinstance(values, Tensor) else _wrap(constant(_as_array(values, self._data.dtype, "index_put_")))
    if v._data.dtype != self._data.dtype:
        _fail("index_put_", self, f"Index put requires the source and destination dtypes match, got "
                                  f"{self._data.dtype} for the destination and {v._data.dtype} for the source")
    try:
        target = np.broadcast_to(np.zeros((), dtype=np.int8), self._data.shape)[idx].shape
    except IndexError as exc:
        _fail("index_put_", self, f"{exc}; indices {_short(indices)}", IndexError)
    if not _broadcasts_to(v._data.shape, target):
        _fail("index_put_", self, f"shape mismatch: values of shape {tuple(v._data.shape)} cannot be broadcast to "
                                  f"indexing result of shape {tuple(target)}")
    # the index_scatter primitive (getitem's VJP) adds repeated positions up: self + the scattered values
    return inplace(self, "index_put_", lambda s, val: s + ix.index_scatter(val.expand(*target), s._data.shape, idx),
                   (v,))


def scatter_add_(self, dim, index, src):
    """self[index[i][j]][j] += src[i][j] for dim=0 (and likewise along any `dim`), as torch.Tensor.scatter_add_:
    index has self's number of dims, and no dim larger than src's or (except along `dim`) than self's."""
    d = _dim(dim, self._data.ndim, "scatter_add_")
    idx = index._data if isinstance(index, Tensor) else None
    if idx is None or idx.dtype != np.int64:
        _fail("scatter_add_", self, f"Expected dtype int64 for index, got "
                                    f"{idx.dtype if idx is not None else type(index).__name__}")
    if not isinstance(src, Tensor):
        _fail("scatter_add_", self, f"src must be a Tensor, got {type(src).__name__}", TypeError)
    if src._data.dtype != self._data.dtype:
        _fail("scatter_add_", self, f"Expected self.dtype to be equal to src.dtype, got {self._data.dtype} and "
                                    f"{src._data.dtype}")
    shape, ishape, sshape = self._data.shape, idx.shape, src._data.shape
    if idx.ndim != len(shape) or src._data.ndim != len(shape) or any(
            i > n for i, n in zip(ishape, sshape)) or any(i > n for k, (i, n) in enumerate(zip(ishape, shape))
                                                          if k != d):
        _fail("scatter_add_", self, f"Expected index {ishape} to be smaller than self {tuple(shape)} apart from "
                                    f"dimension {d} and to be smaller size than src {tuple(sshape)}")
    # (the positions of this call, as getitem's index: see shape._norm_index; data(): an index vmap does not
    # batch, or a compiled step's closure, is read live rather than an array the capture does not know)
    idx = host(np.copy, data(index))

    def add(s, val):
        if val._data.shape != ishape:
            val = val[tuple(slice(0, n) for n in ishape)]
        part = tuple(n if k == d else i for k, (i, n) in enumerate(zip(ishape, shape)))
        added = ix.scatter_add(val, part, d, idx)
        if part != shape:
            added = ix.index_scatter(added, shape, tuple(slice(0, n) for n in part))
        return s + added
    return inplace(self, "scatter_add_", add, (src,))


def _short(x):
    r = repr(x)
    return r if len(r) < 60 else r[:57] + "..."


def _install():
    T = Tensor
    for name, uf in (("add_", np.add), ("sub_", np.subtract), ("mul_", np.multiply), ("div_", np.true_divide)):
        setattr(T, name, _fast_binary(uf, name))
    T.__iadd__, T.__isub__, T.__imul__, T.__itruediv__ = T.add_, T.sub_, T.mul_, T.div_
    T.divide_ = T.div_
    T.pow_ = _unary("pow_", lambda s, e: s ** e)
    T.__ipow__ = T.pow_
    for name in ("neg", "exp", "log", "sqrt", "tanh", "sigmoid", "relu", "abs", "sin", "cos", "log1p", "square",
                 "rsqrt"):
        setattr(T, name + "_", _unary(name + "_", getattr(T, name)))
    T.lerp_ = _unary("lerp_", T.lerp)
    T.clamp_ = T.clip_ = _unary("clamp_", lambda s, min=None, max=None: s.clamp(min, max))
    T.masked_fill_ = _unary("masked_fill_", lambda s, mask, value: s.masked_fill(mask, value))
    T.index_add_ = _unary("index_add_", lambda s, dim, index, source, alpha=1: s.index_add(dim, index, source,
                                                                                            alpha=alpha))
    T.fill_ = _fill
    T.zero_ = lambda self: _fill(self, 0)
    T.copy_ = _copy
    T.normal_ = _random_fill("normal_", lambda rng, shape, mean=0.0, std=1.0: rng.normal(mean, std, shape))
    T.uniform_ = _random_fill("uniform_", lambda rng, shape, a=0.0, b=1.0: rng.uniform(a, b, shape))
    T.__setitem__ = setitem
    T.index_put_, T.scatter_add_ = index_put_, scatter_add_
    T.index_put = lambda self, indices, values, accumulate=False: self.clone().index_put_(indices, values, accumulate)
    T.scatter_add = lambda self, dim, index, src: self.clone().scatter_add_(dim, index, src)


_install()
