"""vmap: a function of one sample run on a whole batch, vectorized.

How: the function runs once, eagerly, on the first sample, under tl.compile's capture (capture.py), which records
every array computation with where its arrays come from — primitives, the library's NumPy computations (a VJP's
mask, a loss's class indices), the choices made from values. The record is then replayed once on the whole batch:
each primitive through its batching rule (`prim.defbatch`, beside the primitive: one NumPy call over the batch,
no Python loop), each NumPy computation through the rule declared beside it (`hooks.batching_rule`), and each
choice made from values checked on every sample. What cannot be batched is refused with its reason, never run on
the first sample's values: an effect on state that outlives the call (an optimizer step, BatchNorm's running
statistics in training), a value read into Python (`.item()`), random numbers (`randomness='error'`, as
torch.func), or a NumPy computation without a rule.

Composes with the reverse- and forward-mode transforms inside (`vmap(grad(f))` for per-sample gradients,
`vmap(jvp(...))`, `vmap(jacrev(f))`) and with itself (`vmap(vmap(f))`, deeper too: the batch dimensions merged into
one replay); the results are new tensors off the tape (`grad(vmap(f))` is not provided yet, nor a vmap called inside
the function of another).
"""

import numpy as np

from ..autograd.grad_mode import state
from ..compile import capture as cap_mod
from ..tensor import Tensor
from ._batched import BatchedReplay, Value
from ._tree import flatten, tree_map

RANDOMNESS = ("error", "different", "same")


def vmap(func, in_dims=0, out_dims=0, randomness="error", *, chunk_size=None):
    """func mapped over a batch dimension of its inputs (torch.func.vmap): in_dims gives, per positional
    argument (or one for all), the dimension that is the batch, or None for an argument shared by all samples;
    out_dims where the batch goes in each output; chunk_size, at most how many samples one replay computes."""
    if randomness not in RANDOMNESS:
        raise ValueError(f"vmap: randomness must be one of {RANDOMNESS}, got {randomness!r}")
    if chunk_size is not None and not (isinstance(chunk_size, int) and chunk_size > 0):
        raise ValueError(f"vmap: chunk_size must be None or a positive int, got {chunk_size!r}")

    def wrapped(*args, **kwargs):
        leaves, dims, rebuild = _flatten_inputs(args, in_dims)
        inner = getattr(func, "_tl_vmap", None)
        if inner is not None:  # vmap(vmap(f)): one replay over both batch dimensions, merged
            return _nested(inner, args, kwargs, leaves, dims, rebuild, out_dims)
        return _run(func, leaves, dims, rebuild, kwargs, out_dims, randomness, chunk_size)
    wrapped.__name__ = f"vmap({getattr(func, '__name__', 'fn')})"
    wrapped._tl_vmap = (func, in_dims, out_dims, randomness)
    return wrapped


def _run(func, leaves, dims, rebuild, kwargs, out_dims, randomness, chunk_size=None):
    size = _batch_size(leaves, dims)
    if size == 0:  # the function is recorded on the first sample; there is none
        raise ValueError("vmap: the batch is empty (size 0 along in_dims); vmap records the function on one sample, "
                         "so it needs at least one")
    physical = [Value(np.moveaxis(x._data, d, 0), True) if d is not None else None for x, d in zip(leaves, dims)]
    samples = [Tensor._wrap(p.array[0, ...]) if p is not None else x for x, p in zip(leaves, physical)]
    batched = [(i, s) for i, s in enumerate(samples) if physical[i] is not None]
    cap, out = _record(func, rebuild(samples), kwargs, [(i, s._data) for i, s in batched], [s for _, s in batched])
    if chunk_size is None or chunk_size >= size:
        replay = BatchedReplay(cap, physical, size, randomness)
        replay.run()
        return _outputs(out, cap, replay, out_dims, size)
    return _chunked(cap, out, physical, size, randomness, out_dims, chunk_size)


def _chunked(cap, out, physical, size, randomness, out_dims, chunk_size):
    """One replay per chunk of at most chunk_size samples (peak memory of one chunk); outputs concatenated."""
    leading = 0 if isinstance(out_dims, int) else None if out_dims is None else \
        tree_map(lambda d: None if d is None else 0, out_dims)
    parts, same_draws = [], {}
    for start in range(0, size, chunk_size):
        n = min(chunk_size, size - start)
        chunk = [Value(p.array[start:start + n], True) if p is not None else None for p in physical]
        replay = BatchedReplay(cap, chunk, n, randomness, same_draws)
        replay.run()
        parts.append(flatten(_outputs(out, cap, replay, leading, n))[0])
    leaves, rebuild = flatten(out)
    dims = [out_dims] * len(leaves) if isinstance(out_dims, int) or out_dims is None else flatten(out_dims)[0]
    result = []
    for i, d in enumerate(dims):
        if d is None:
            result.append(parts[0][i])
            continue
        arr = np.concatenate([p[i]._data for p in parts], axis=0)
        result.append(Tensor._wrap(np.ascontiguousarray(np.moveaxis(arr, 0, _out_dim(d, arr.ndim, i)))))
    return rebuild(result)


def _nested(inner, args, kwargs, leaves, dims, rebuild, out_dims):
    """vmap(vmap(f, in_dims1, out_dims1), in_dims0, out_dims0): every input laid out as (B0, B1, ...) (broadcast
    along the batch it does not carry), merged into one batch of B0 * B1, f replayed once, and the outputs split
    and moved to out_dims1 and then out_dims0 (ints, or a tree of ints matching the outputs). A third vmap inside
    (vmap(vmap(vmap(f)))) merges the same way with the two outer batches taken as one."""
    func, in_dims1, out_dims1, randomness = inner
    b0 = _batch_size(leaves, dims)
    outer_sample = [Tensor._wrap(np.moveaxis(x._data, d, 0)[0, ...]) if d is not None else x
                    for x, d in zip(leaves, dims)]
    _, dims1, _ = _flatten_inputs(rebuild(outer_sample), in_dims1)
    b1 = _batch_size(outer_sample, dims1)
    merged, merged_dims = [], []
    for x, d0, d1 in zip(leaves, dims, dims1):
        if d0 is None and d1 is None:
            merged.append(x)
            merged_dims.append(None)
            continue
        a = np.moveaxis(x._data, d0, 0) if d0 is not None else x._data[None]
        a = np.moveaxis(a, d1 + 1, 1) if d1 is not None else a[:, None]
        a = np.broadcast_to(a, (b0, b1) + a.shape[2:])
        merged.append(Tensor._wrap(np.ascontiguousarray(a).reshape((b0 * b1,) + a.shape[2:])))
        merged_dims.append(0)
    deeper = getattr(func, "_tl_vmap", None)
    if deeper is not None:  # the two outer batches are one batch of the next vmap in
        out = _nested(deeper, None, kwargs, merged, merged_dims, rebuild, 0)
    else:
        out = _run(func, merged, merged_dims, rebuild, kwargs, 0, randomness)
    outs, out_rebuild = flatten(out)
    inner_dims, outer_dims = _nested_dims(out_dims1, len(outs), "inner"), _nested_dims(out_dims, len(outs), "outer")

    def split(t, d1, d0):
        a = t._data.reshape((b0, b1) + t._data.shape[1:])
        a = np.moveaxis(a, 1, _out_dim(d1, a.ndim - 1, 0) + 1)
        return Tensor._wrap(np.ascontiguousarray(np.moveaxis(a, 0, _out_dim(d0, a.ndim, 0))))
    return out_rebuild([split(t, d1, d0) for t, d1, d0 in zip(outs, inner_dims, outer_dims)])


def _nested_dims(out_dims, n, which):
    """A nested vmap's out_dims as one int per output (an int for all, or a tree of ints matching the outputs)."""
    dims = [out_dims] * n if isinstance(out_dims, int) else flatten(out_dims)[0] if out_dims is not None else [None]
    if len(dims) != n:
        raise ValueError(f"vmap: out_dims of the {which} vmap has {len(dims)} entries for {n} outputs")
    if not all(isinstance(d, int) for d in dims):
        raise NotImplementedError(f"vmap(vmap(f)): out_dims None (an output not batched) is not provided for nested "
                                  f"vmaps (the {which} vmap's out_dims is {out_dims!r}); use int out_dims")
    return dims


# ---------------- inputs ----------------
def _flatten_inputs(args, in_dims):
    """(leaves, batch dim per leaf or None, rebuild(new leaves) -> args)."""
    if isinstance(in_dims, int) or in_dims is None:
        dims_tree = tuple(in_dims for _ in args)
    elif isinstance(in_dims, (tuple, list)):
        if len(in_dims) != len(args):
            raise ValueError(f"vmap: in_dims has {len(in_dims)} entries but the function was called with "
                             f"{len(args)} positional arguments")
        dims_tree = tuple(in_dims)
    else:
        raise TypeError(f"vmap: in_dims must be an int, None or a tuple, got {type(in_dims).__name__}")
    leaves, dims, parts = [], [], []
    for k, (a, d) in enumerate(zip(args, dims_tree)):
        a_leaves, a_rebuild = flatten(a)
        a_dims = _broadcast_dims(d, a, len(a_leaves), k)
        for x, dim in zip(a_leaves, a_dims):
            if dim is not None:
                if not isinstance(x, Tensor):
                    raise ValueError(f"vmap: in_dims gives dim {dim} for argument {k}, which is a "
                                     f"{type(x).__name__}: only Tensors can be batched (use None)")
                if not -x._data.ndim <= dim < x._data.ndim:
                    raise ValueError(f"vmap: in_dim {dim} is out of range for argument {k} of shape "
                                     f"{tuple(x._data.shape)}")
                if x.requires_grad:
                    raise NotImplementedError(f"vmap: argument {k} requires grad; differentiating through vmap "
                                              f"(grad(vmap(f))) is not provided yet: use vmap(grad(f))")
                dim %= x._data.ndim
            leaves.append(x)
            dims.append(dim)
        parts.append((len(a_leaves), a_rebuild))

    def rebuild(new):
        it, out = iter(new), []
        for n, rb in parts:
            out.append(rb([next(it) for _ in range(n)]))
        return tuple(out)
    return leaves, dims, rebuild


def _broadcast_dims(d, arg, n, k):
    if d is None or isinstance(d, int):
        return [d] * n
    d_leaves, _ = flatten(d)
    if len(d_leaves) != n:
        raise ValueError(f"vmap: in_dims for argument {k} has {len(d_leaves)} entries for {n} tensors")
    return d_leaves


def _batch_size(leaves, dims):
    sizes = {x._data.shape[d] for x, d in zip(leaves, dims) if d is not None}
    if not sizes:
        raise ValueError("vmap: no input is batched (every in_dim is None or applies to no Tensor)")
    if len(sizes) > 1:
        shapes = [(tuple(x._data.shape), d) for x, d in zip(leaves, dims) if d is not None]
        raise ValueError(f"vmap: the batched inputs have different sizes along their in_dims: "
                         f"{', '.join(f'{s} at dim {d}' for s, d in shapes)}")
    return sizes.pop()


# ---------------- the record of one sample ----------------
def _record(func, args, kwargs, arg_arrays, samples):
    outer = state.capture
    if outer is not None:
        if outer.stand_ins:  # (the record of another vmap's function)
            raise NotImplementedError("vmap inside the function of another vmap is not provided yet (vmap(vmap(f)) "
                                      "is)")
        # inside a tl.compile call: that call runs eagerly (its record would not hold the batched computation)
        outer.fail("tl.func.vmap in the function (it records and batches the function it maps on its own)")
    cap = cap_mod.Capture(arg_arrays, stand_ins=samples)  # (the samples are the arguments they stand for)
    with cap_mod.recording(cap):
        out = func(*args, **kwargs)
    if cap.failure is not None:
        raise RuntimeError(f"vmap: cannot batch this function: {cap.failure}")
    return cap, out


# ---------------- outputs ----------------
def _outputs(out, cap, replay, out_dims, size):
    leaves, rebuild = flatten(out)
    dims = [out_dims] * len(leaves) if isinstance(out_dims, int) or out_dims is None else flatten(out_dims)[0]
    if len(dims) != len(leaves):
        raise ValueError(f"vmap: out_dims has {len(dims)} entries for {len(leaves)} outputs")
    result = []
    for i, (t, d) in enumerate(zip(leaves, dims)):
        if not isinstance(t, Tensor):
            raise TypeError(f"vmap: the function must return Tensors (or tuples/lists/dicts of them); output {i} "
                            f"is a {type(t).__name__}")
        if t.requires_grad and state.grad_enabled:  # (under no_grad nobody differentiates: the result is exact)
            raise NotImplementedError("vmap: an output requires grad (it depends on a tensor that requires grad "
                                      "and is not an argument, e.g. a module's parameters); differentiating "
                                      "through vmap is not provided yet: call it under tl.no_grad(), or pass "
                                      "detached parameters with functional_call")
        ref = cap.known.get(id(t._data))
        v = Value(t._data, False) if ref is None else replay.value(ref)
        arr = v.array if v.batched else np.broadcast_to(v.array, (size,) + v.array.shape)
        if d is None:
            if v.batched:
                raise ValueError(f"vmap: out_dims is None for output {i}, but it differs across the batch")
            result.append(Tensor._wrap(np.array(v.array)))
            continue
        result.append(Tensor._wrap(np.ascontiguousarray(np.moveaxis(arr, 0, _out_dim(d, arr.ndim, i)))))
    return rebuild(result)


def _out_dim(d, ndim, i):
    """out_dims entry `d` for output `i` (ndim counts the batch dimension) as a position; out of range is an
    error, as torch.func (taken modulo ndim, a bad out_dims would put the batch somewhere else silently)."""
    if not isinstance(d, int) or not -ndim <= d < ndim:
        raise IndexError(f"vmap: out_dims {d!r} for output {i} is out of range: the output with its batch "
                         f"dimension has {ndim} dim(s), so out_dims must be in [{-ndim}, {ndim - 1}]")
    return d % ndim
