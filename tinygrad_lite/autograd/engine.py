"""Reverse-mode engine: visits the recorded entries reachable from the outputs in reverse recording order, with
no recursion, calls each primitive's VJP (Tensor operations, so `create_graph=True` records them), undoes
broadcasting centrally, accumulates leaf gradients, and releases what the entries saved unless told to retain.
Beside it: index_grad.py (the sparse slice gradients it accumulates), saved.py (the checks of what an entry saved:
freed, or changed in place) and stale.py (the stale-graph warning backward() gives)."""
import warnings
from heapq import heappush, heappop

import numpy as np

from . import recorder as tape
from .grad_mode import state
from .index_grad import IndexGrad, Slices, _add_index_grad, _promoted_copy
from .saved import _aliases_input, _as_seen_by, _check_saved, _detached, note_detached  # noqa: F401 (re-exported)
from .stale import _watch_for_stale_graphs
from ..compile.effects import set_grad
from .._gc import pause as _pause_gc, resume as _resume_gc
from ..compile.hooks import host, host_effect


def _sum_to_shape(g, shape):
    from ..ops.movement import sum_to_shape
    return sum_to_shape(g, shape)


def _call_hooks(hooks, g):
    for h in hooks:
        r = h(g)
        if r is not None:
            if not isinstance(r, tape.Tensor) or r._data.shape != g._data.shape:
                what = f"a Tensor of shape {tuple(r.shape)}" if isinstance(r, tape.Tensor) else type(r).__name__
                raise TypeError(f"hook {getattr(h, '__name__', h)!r} returned {what}; a gradient hook must return "
                                f"None or a Tensor of the gradient's shape {tuple(g._data.shape)}")
            if r._data.dtype != g._data.dtype:  # (PyTorch raises too: a .grad of another dtype than its tensor)
                raise RuntimeError(f"hook {getattr(h, '__name__', h)!r} has changed the type of value (was "
                                f"{g._data.dtype}, got {r._data.dtype}); a gradient hook must keep the gradient's "
                                f"dtype")
            g = r
    return g



def _accumulate(store, key, gi, owned, create_graph):
    """Add gradient `gi` into store[key]; True when the key is new. `owned` holds the keys whose stored gradient
    the engine allocated itself (never handed to a VJP or a user yet): those are updated in place. Ownership is
    kept per key, not per tensor id, so a freed tensor's id reused by a new one can never pass for owned."""
    Tensor = tape.Tensor
    cur = store.get(key)
    if gi.__class__ is IndexGrad:
        if cur is None:  # summed when the gradient is needed (`Slices.dense`): written in place if they tile it
            store[key] = Slices(gi)
            owned.add(key)
            return True
        if cur.__class__ is Slices:
            if not cur.add(gi):  # they cannot tile: summed now (gi too), the next ones added as they come
                store[key] = cur.dense()
            return False
        if key in owned:
            host_effect(_add_index_grad, cur._data, gi.g._data, gi.index, gi.basic)
            return False
        buf = host(_promoted_copy, cur._data, gi.g._data)
        host_effect(_add_index_grad, buf, gi.g._data, gi.index, gi.basic)
        store[key] = Tensor._wrap(buf)
        owned.add(key)
        return False
    if cur.__class__ is Slices:  # a dense gradient joins slices: theirs summed first, as they came
        cur = store[key] = cur.dense()
    if cur is None:
        store[key] = gi
        owned.discard(key)
        return True
    if not create_graph and key in owned and cur._data.shape == gi._data.shape and cur._data.dtype == gi._data.dtype:
        host_effect(np.add, cur._data, gi._data, cur._data)
        return False
    store[key] = cur + gi
    if create_graph:
        owned.discard(key)
    else:
        owned.add(key)
    return False


# Backward watchers (DistributedDataParallel): callables `watcher(roots)` -> None, or a watch with `after`, a dict
# Entry -> fn(leaf_grads) called once that entry's VJP is done (the moment the leaves it feeds may have their final
# gradient: entries run in reverse recording order), and `finish()`, called once `.grad` is delivered. This lets
# gradient communication overlap the rest of the walk; with no watcher registered it costs one test per entry.
backward_watchers = []


def run_backward(roots, root_grads, retain_graph, create_graph, inputs=None, parts=None):
    """Backpropagate `root_grads` from `roots`. With `inputs` (for autograd.grad), return a dict id -> gradient
    of those tensors (None where unused) and leave every `.grad` untouched. With `parts` (tl.compile), hand each
    leaf's contributions one by one to `parts.add(leaf, gradient)`, in the order the walk makes them, instead of
    summing them, deliver nothing, and call `parts.visit(entry)` before each entry's VJP; a tensor made before
    `parts.first_seq` (an argument of the compiled call with a graph of its own) is a leaf to that walk."""
    Tensor = tape.Tensor
    watches = [w for w in [f(roots) for f in list(backward_watchers)] if w is not None] \
        if backward_watchers and inputs is None and parts is None else None
    capture = capture_entries = None
    if inputs is not None:
        capture = {id(t): None for t in inputs}
        capture_entries = {t._entry: id(t) for t in inputs if t._entry is not None}
    grads = {}        # Entry -> gradient of its output, until the entry is processed
    leaf_grads = {}   # id(leaf) -> gradient, accumulated over the walk and delivered once at the end
    leaves = {}       # id(leaf) -> leaf
    owned = set()
    heap = []
    shared = {_buffer_id(g._data) for g in root_grads}  # buffers a leaf must not take as its own .grad
    for r, g in zip(roots, root_grads):
        e = r._entry
        if e is None:  # a leaf as output: its gradient is the seed itself
            if r.requires_grad or (capture is not None and id(r) in capture):
                leaves[id(r)] = r
                _accumulate(leaf_grads, id(r), g, owned, create_graph)
        elif _accumulate(grads, e, g, owned, create_graph):
            heappush(heap, (-e.seq, e))
    prev = state.grad_enabled
    state.grad_enabled = create_graph
    anomaly = state.anomaly
    _pause_gc()
    try:
        while heap:
            _, e = heappop(heap)
            g = grads.pop(e)
            if g.__class__ is Slices:
                g = g.dense()
            if parts is not None:
                parts.visit(e)
            if owned:
                owned.discard(e)
            saved = e.saved
            if saved is None or e.dirty:
                saved = _check_saved(e)  # raises, naming retain_graph or the changed output, or resolves
            v = 0
            for t in saved:
                v += t._version
            if v != e.versions:
                saved = _check_saved(e)  # raises, naming the inputs changed in place, or resolves
            if e.hooks:
                if state.capture is not None:
                    state.capture.fail(f"a gradient hook on the output of {e.describe()}")
                g = _call_hooks(e.hooks, g)
            if capture_entries and e in capture_entries:
                capture[capture_entries[e]] = g
            e.grad = g._data
            in_grads = e.prim.vjp(e, g)
            if e.ctx is not None:  # a user Function's backward may return arrays it keeps
                shared.update(_buffer_id(gi._data) for gi in in_grads if isinstance(gi, Tensor))
            if anomaly:
                from .anomaly import check_backward
                check_backward(e, in_grads)
            release = not retain_graph and e.struct is None
            if release:  # the structure kept after release is gathered in this same loop
                parents, shapes = [], []
            for gi, t in zip(in_grads, saved):
                parent = t._entry
                if release:
                    parents.append(parent if parent is not None else (t if t.requires_grad else None))
                    shapes.append(t._data.shape)
                if gi is None or (parent is None and not t.requires_grad):
                    continue
                if gi.__class__ is not IndexGrad:
                    if gi.__class__ is not Tensor:
                        gi = gi if isinstance(gi, Tensor) else Tensor._wrap(np.asarray(gi))
                    data = t._data
                    gd = gi._data
                    if gd.shape != data.shape:
                        gi = _sum_to_shape(gi, data.shape)
                        gd = gi._data
                    if gd.dtype is not data.dtype and gd.dtype != data.dtype:
                        gi = gi.astype(data.dtype)
                if parent is not None and (parts is None or parent.seq >= parts.first_seq):
                    if gi.__class__ is not IndexGrad and parent not in grads:  # first gradient: the common case
                        grads[parent] = gi  # (a VJP's tensor: parent is not in `owned`, it was discarded or never in)
                        heappush(heap, (-parent.seq, parent))
                    elif _accumulate(grads, parent, gi, owned, create_graph):
                        heappush(heap, (-parent.seq, parent))
                elif parts is not None:
                    parts.add(t, gi)
                elif capture is None or id(t) in capture:
                    leaves[id(t)] = t
                    _accumulate(leaf_grads, id(t), gi, owned, create_graph)
            if watches:
                for w in watches:
                    if e in w.after:
                        for key, g in leaf_grads.items():  # a watcher reads gradients: summed slices, as arrays
                            if g.__class__ is Slices:
                                leaf_grads[key] = g.dense()
                        w.after.pop(e)(leaf_grads)
            if not retain_graph and (e.prim.release is None or e.prim.release(e)):  # release (inlined: per entry)
                if release and len(parents) == len(saved):
                    out = e.out_data
                    e.struct = (tuple(parents), tuple(shapes) + (out.shape,), out.dtype)
                elif e.struct is None:
                    e.structure()
                e.saved = e.out_data = None
                e.released = True
        for key, g in leaf_grads.items():
            if g.__class__ is Slices:
                g = g.dense()
            if capture is not None:  # autograd.grad: a leaf's hooks see (and may replace) its gradient, as PyTorch
                hooks = leaves[key]._hooks
                if hooks and state.capture is not None:
                    state.capture.fail(f"a gradient hook on a leaf tensor of shape {tuple(g._data.shape)}")
                capture[key] = _call_hooks(hooks, g) if hooks else g
            else:
                t = leaves[key]
                buf = _buffer_id(g._data)
                # a leaf's .grad may keep an engine-made array as it is; a buffer that another leaf already got, or
                # that came from the caller or a user Function (which may keep it), is copied: never alias those
                fresh = key in owned or (buf not in shared and g._data.flags.writeable)
                shared.add(buf)
                cap = state.capture
                if cap is None or cap.suspended:
                    _accumulate_leaf(t, g, create_graph, fresh)
                    continue
                if id(t) in cap.created and t._grad is None:
                    # a leaf made during the call (`x.detach().requires_grad_()`) starts every call without a .grad:
                    # a replay, which delivers to the recorded call's tensor, clears it first (not accumulating
                    # into it, nor mutating the .grad an earlier call returned)
                    cap.host_call(set_grad, (cap.obj(t), None), "a fresh leaf's .grad", effect=False)
                cap.observe_grad(t)  # tl.compile: the delivery is re-run as Python by a replay
                cap.host_call(_deliver, (cap.obj(t), g._data, create_graph, fresh), "delivering a gradient")
                cap.suspended += 1
                try:
                    _accumulate_leaf(t, g, create_graph, fresh)
                finally:
                    cap.suspended -= 1
                cap.delivered(t)
        for w in watches or ():
            w.finish()
    finally:
        state.grad_enabled = prev
        _resume_gc()
    return capture


def _buffer_id(arr):
    while isinstance(arr.base, np.ndarray):
        arr = arr.base
    return id(arr)


def _deliver(t, arr, create_graph, fresh):
    """A replay's delivery of a leaf's gradient: the same code the engine runs, on this call's array."""
    _accumulate_leaf(t, tape.Tensor._wrap(arr), create_graph, fresh)


def _accumulate_leaf(t, g, create_graph, fresh):
    """Deliver a leaf's total gradient for this backward: hooks first, then `.grad` (set or accumulated).
    `fresh`: the array is the engine's alone and may become `.grad` as it is."""
    if t._hooks:
        if state.capture is not None:
            state.capture.fail(f"a gradient hook on a leaf tensor of shape {tuple(t._data.shape)}")
        g = _call_hooks(t._hooks, g)
        fresh = False
    if not create_graph:
        if g.requires_grad:
            g = g.detach()
        if not fresh:
            g = tape.Tensor._wrap(np.array(g._data, order="K"))
    if t._grad is None:
        t._grad = g
    elif create_graph:
        t._grad = t._grad + g
    else:
        t._grad._data = t._grad._data + g._data


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False):
    """Compute gradients of `tensors` w.r.t. the leaves and accumulate them in `.grad` (torch.autograd.backward)."""
    tensors, grad_tensors = _prepare(tensors, grad_tensors, "backward")
    if retain_graph is None:
        retain_graph = create_graph
    run_backward(tensors, grad_tensors, retain_graph, create_graph)
    _watch_for_stale_graphs(tensors)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False, only_inputs=True,
         allow_unused=None, materialize_grads=False):
    """Return the gradients of `outputs` w.r.t. `inputs` without touching `.grad` (torch.autograd.grad, whose
    parameter order this keeps: `only_inputs` is deprecated and ignored there, and here)."""
    if not only_inputs:
        warnings.warn("autograd.grad: the only_inputs argument is deprecated and is ignored now (defaults to True). "
                      "To accumulate gradient for other parts of the graph, please use tl.autograd.backward.",
                      FutureWarning, stacklevel=2)
    if materialize_grads and allow_unused is False:
        raise ValueError("autograd.grad: expected allow_unused to be True or not passed when materialize_grads=True, "
                         "but got: allow_unused=False")
    Tensor = tape.Tensor
    single = isinstance(inputs, Tensor)
    inputs = (inputs,) if single else tuple(inputs)
    for i, t in enumerate(inputs):
        if not isinstance(t, Tensor):
            raise TypeError(f"autograd.grad: inputs[{i}] is a {type(t).__name__}, expected a Tensor")
        if not t.requires_grad:
            raise RuntimeError(f"autograd.grad: inputs[{i}] (shape {tuple(t.shape)}) does not require grad")
    outputs, grad_outputs = _prepare(outputs, grad_outputs, "autograd.grad")
    if retain_graph is None:
        retain_graph = create_graph
    capture = run_backward(outputs, grad_outputs, retain_graph, create_graph, inputs)
    result = []
    for i, t in enumerate(inputs):
        g = capture[id(t)]
        if g is None:
            if materialize_grads:
                g = Tensor._wrap(np.zeros_like(t._data))
            elif not allow_unused:
                raise RuntimeError(
                    f"autograd.grad: inputs[{i}] (shape {tuple(t.shape)}) was not used to compute the outputs; "
                    f"pass allow_unused=True to get None for it")
        elif not create_graph and g.requires_grad:
            g = g.detach()
        result.append(g)
    return tuple(result)


def _prepare(tensors, grads, opname):
    Tensor = tape.Tensor
    tensors = (tensors,) if isinstance(tensors, Tensor) else tuple(tensors)
    if grads is None:
        grads = (None,) * len(tensors)
    elif isinstance(grads, Tensor) or not isinstance(grads, (list, tuple)):
        grads = (grads,)
    if len(grads) != len(tensors):
        raise RuntimeError(f"{opname}: got {len(tensors)} outputs but {len(grads)} gradients")
    out_grads = []
    for t, g in zip(tensors, grads):
        if not isinstance(t, Tensor):
            raise TypeError(f"{opname}: expected Tensors, got {type(t).__name__}")
        if not t.requires_grad:
            raise RuntimeError(
                f"{opname}: element 0 of tensors does not require grad and does not have a grad_fn "
                f"(shape {tuple(t.shape)}); did you create it under no_grad, or from inputs that do not require grad?")
        if g is None:
            if t._data.size != 1:
                where = f" (recorded by {t._entry.describe()})" if t._entry is not None else ""
                raise RuntimeError(
                    f"{opname}: grad can be implicitly created only for scalar outputs; got shape "
                    f"{tuple(t.shape)}{where}. Pass gradient= (a tensor of that shape) to backward().")
            g = Tensor._wrap(host(np.ones, t._data.shape, t._data.dtype))
        else:
            if not isinstance(g, (Tensor, np.ndarray, list, tuple, int, float)):
                raise TypeError(f"{opname}: gradient must be a Tensor (or array) of shape {tuple(t.shape)}, got "
                                f"{type(g).__name__}")
            g = g if isinstance(g, Tensor) else Tensor(g, dtype=t._data.dtype)
            if g._data.shape != t._data.shape:
                raise RuntimeError(f"{opname}: gradient has shape {tuple(g.shape)} but the output has shape "
                                   f"{tuple(t.shape)}; they must match")
        out_grads.append(g)
    return tensors, out_grads
