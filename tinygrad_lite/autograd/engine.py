"""Reverse-mode engine: visits the recorded entries reachable from the outputs in reverse recording order, with
no recursion, calls each primitive's VJP (Tensor operations, so `create_graph=True` records them), undoes
broadcasting centrally, accumulates leaf gradients, and releases what the entries saved unless told to retain."""
import collections
import gc
import warnings
import weakref
from heapq import heappush, heappop

import numpy as np

from . import recorder as tape
from .grad_mode import state


def _sum_to_shape(g, shape):
    from ..ops.movement import sum_to_shape
    return sum_to_shape(g, shape)


def _check_saved(e):
    if e.released:
        raise RuntimeError(
            f"Trying to backward through the graph a second time: the values saved by {e.describe()} were freed by "
            f"the first backward. Specify retain_graph=True on the first backward() (or autograd.grad()) call if "
            f"you need to backward through the graph again.")
    for t, v in zip(e.saved, e.versions):
        if t._version != v:
            raise RuntimeError(
                f"one of the variables needed for gradient computation has been modified by an in-place operation: "
                f"input of shape {tuple(t.shape)} ({t.dtype}) of {e.describe()} is at version {t._version}; "
                f"expected version {v}. Use an out-of-place operation, or .clone() the tensor before changing it.")
    if e.dirty:
        raise RuntimeError(
            f"one of the variables needed for gradient computation has been modified by an in-place operation: the "
            f"output of {e.describe()} was changed in place after it was recorded; expected version 0.")


def _call_hooks(hooks, g):
    for h in hooks:
        r = h(g)
        if r is not None:
            g = r
    return g


def run_backward(roots, root_grads, retain_graph, create_graph, inputs=None):
    """Backpropagate `root_grads` from `roots`. With `inputs` (for autograd.grad), return a dict id -> gradient
    of those tensors (None where unused) and leave every `.grad` untouched."""
    Tensor = tape.Tensor
    capture = capture_entries = None
    if inputs is not None:
        capture = {id(t): None for t in inputs}
        capture_entries = {t._entry: id(t) for t in inputs if t._entry is not None}
    grads = {}
    heap = []
    leaf_seen = set()
    for r, g in zip(roots, root_grads):
        e = r._entry
        if e is None:  # a leaf as output: its gradient is the seed itself
            if capture is not None:
                if id(r) in capture:
                    capture[id(r)] = g if capture[id(r)] is None else capture[id(r)] + g
            elif r.requires_grad:
                _accumulate_leaf(r, g, create_graph, leaf_seen)
            continue
        if e in grads:
            grads[e] = grads[e] + g
        else:
            grads[e] = g
            heappush(heap, (-e.seq, e))
    prev = state.grad_enabled
    state.grad_enabled = create_graph
    anomaly = state.anomaly
    # Backward makes no reference cycles (every temporary dies by refcount), so the cyclic collector would only
    # re-scan the whole (possibly million-entry) graph again and again: pause it for the walk.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        while heap:
            _, e = heappop(heap)
            g = grads.pop(e)
            if e.released:
                _check_saved(e)  # raises, naming retain_graph
            for t, v in zip(e.saved, e.versions):
                if t._version != v:
                    _check_saved(e)  # raises, naming the tensor and versions
            if e.dirty:
                _check_saved(e)
            if e.hooks:
                g = _call_hooks(e.hooks, g)
            if capture_entries and e in capture_entries:
                capture[capture_entries[e]] = g
            e.grad = g.data
            in_grads = e.prim.vjp(e, g)
            if anomaly:
                from .anomaly import check_backward
                check_backward(e, in_grads)
            for gi, t in zip(in_grads, e.saved):
                if gi is None:
                    continue
                parent = t._entry
                if parent is None and not t.requires_grad:
                    continue
                data = t.data
                if gi.__class__ is not Tensor:
                    gi = gi if isinstance(gi, Tensor) else Tensor._wrap(np.asarray(gi))
                gd = gi.data
                if gd.shape != data.shape:
                    gi = _sum_to_shape(gi, data.shape)
                    gd = gi.data
                if gd.dtype is not data.dtype and gd.dtype != data.dtype:
                    gi = gi.astype(data.dtype)
                if parent is not None:
                    if parent in grads:
                        grads[parent] = grads[parent] + gi
                    else:
                        grads[parent] = gi
                        heappush(heap, (-parent.seq, parent))
                elif capture is not None:
                    key = id(t)
                    if key in capture:
                        capture[key] = gi if capture[key] is None else capture[key] + gi
                else:
                    _accumulate_leaf(t, gi, create_graph, leaf_seen)
            if not retain_graph:
                e.release()
    finally:
        state.grad_enabled = prev
        if gc_was_enabled:
            gc.enable()
    return capture


def _accumulate_leaf(t, g, create_graph, seen):
    if t._hooks:
        g = _call_hooks(t._hooks, g)
    if not create_graph:
        g = g.detach() if g.requires_grad else g
        if id(g) in seen or g.data.base is not None or not g.data.flags.writeable:
            g = tape.Tensor._wrap(np.array(g.data))  # never share one gradient array between two leaves
        seen.add(id(g))
    if t.grad is None:
        t.grad = g
    elif create_graph:
        t.grad = t.grad + g
    else:
        t.grad.data = t.grad.data + g.data


STALE_GRAPH_STEPS = 20  # backward calls after which a still-alive old graph is worth a warning
_recent_roots = collections.deque()
_warned_stale = False


def _watch_for_stale_graphs(tensors):
    """Warn once when the graph of a backward call from STALE_GRAPH_STEPS calls ago is still alive: the classic
    `total_loss += loss` (instead of `loss.item()`) that keeps every step's graph in memory."""
    global _warned_stale
    if _warned_stale:
        return
    for t in tensors:
        if t._entry is not None:
            _recent_roots.append(weakref.ref(t._entry))
    while len(_recent_roots) > STALE_GRAPH_STEPS:
        old = _recent_roots.popleft()()
        if old is not None:
            _warned_stale = True
            _recent_roots.clear()
            warnings.warn(
                f"the graph of a backward() call made {STALE_GRAPH_STEPS} calls ago is still alive (its output "
                f"{old.describe()}). Keeping a loss tensor across steps (e.g. `total += loss` or "
                f"`losses.append(loss)`) keeps every step's graph in memory; use `loss.item()` or `loss.detach()`.",
                ResourceWarning, stacklevel=3)
            return


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False):
    """Compute gradients of `tensors` w.r.t. the leaves and accumulate them in `.grad` (torch.autograd.backward)."""
    tensors, grad_tensors = _prepare(tensors, grad_tensors, "backward")
    if retain_graph is None:
        retain_graph = create_graph
    run_backward(tensors, grad_tensors, retain_graph, create_graph)
    _watch_for_stale_graphs(tensors)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False, allow_unused=False,
         materialize_grads=False):
    """Return the gradients of `outputs` w.r.t. `inputs` without touching `.grad` (torch.autograd.grad)."""
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
                g = Tensor._wrap(np.zeros_like(t.data))
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
            if t.data.size != 1:
                where = f" (recorded by {t._entry.describe()})" if t._entry is not None else ""
                raise RuntimeError(
                    f"{opname}: grad can be implicitly created only for scalar outputs; got shape "
                    f"{tuple(t.shape)}{where}. Pass gradient= (a tensor of that shape) to backward().")
            g = Tensor._wrap(np.ones(t.data.shape, dtype=t.data.dtype))
        else:
            g = g if isinstance(g, Tensor) else Tensor(g, dtype=t.data.dtype)
            if g.data.shape != t.data.shape:
                raise RuntimeError(f"{opname}: gradient has shape {tuple(g.shape)} but the output has shape "
                                   f"{tuple(t.shape)}; they must match")
        out_grads.append(g)
    return tensors, out_grads
