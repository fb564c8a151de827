"""Shape primitives: reshape, permute, expand, cat and constant pad (the indexing primitives are in index.py)."""
import numpy as np

from . import batching
from .elementwise import same_op_jvp
from .registry import primitive
from ..compile.hooks import constant


def sum_to_shape(g, shape):
    """Differentiably sum a broadcast gradient back to `shape` (the engine's central un-broadcast)."""
    gshape = g._data.shape
    if gshape == shape:
        return g
    lead = len(gshape) - len(shape)
    inner = tuple(lead + i for i, s in enumerate(shape) if s == 1 and gshape[lead + i] != 1)
    if lead and not inner:  # only leading dims to sum away (a bias's gradient): one sum, no reshape after it
        return _sum(g, tuple(range(lead)), False)
    axes = tuple(range(lead)) + inner
    if axes:
        g = _sum(g, axes, True)
    return reshape(g, shape) if g._data.shape != shape else g


def _sum(g, axes, keepdims):
    from .reduce import sum_
    return sum_(g, axes, keepdims)


@primitive("reshape", attrs=("shape",), sample=lambda gen: _reshape_sample(gen), reads=())
def reshape(x, shape):
    return np.reshape(x, shape)


def _reshape_sample(gen):
    shape = gen.shape(min_dims=0, max_dims=3)
    n = int(np.prod(shape))
    return [gen.array(shape, -2, 2)], (gen.choice([(n,), (1, n), (n, 1)]),)


@reshape.defvjp
def _(ctx, g):
    return (reshape(g, ctx.saved[0]._data.shape),)


def _permute_sample(gen):
    shape = gen.shape(min_dims=1, max_dims=4)
    perm = tuple(int(i) for i in gen.permutation(len(shape)))
    return [gen.array(shape, -2, 2)], (perm,)


@primitive("permute", attrs=("dims",), sample=_permute_sample, reads=())
def permute(x, axes):
    return x.transpose(axes)


@permute.defvjp
def _(ctx, g):
    axes = ctx.attrs[0]
    inverse = [0] * len(axes)
    for i, a in enumerate(axes):
        inverse[a] = i
    return (permute(g, tuple(inverse)),)


def _expand_sample(gen):
    shape = gen.shape(min_dims=0, max_dims=3)
    target = tuple(s if s != 1 else gen.choice([1, 3]) for s in shape)
    return [gen.array(shape, -2, 2)], ((gen.choice([(), (2,)]) + target),)


@primitive("expand", attrs=("shape",), sample=_expand_sample, reads=())
def expand(x, shape):
    return np.broadcast_to(x, shape)


@expand.defvjp
def _(ctx, g):
    return (sum_to_shape(g, ctx.saved[0]._data.shape),)


def _cat_sample(gen):
    shape = gen.shape(min_dims=1, max_dims=3)
    axis = gen.integers(0, len(shape), ()).item()
    other = list(shape)
    other[axis] = gen.choice([1, 2])
    return [gen.array(shape, -2, 2), gen.array(tuple(other), -2, 2)], (axis,)


@primitive("cat", attrs=("dim",), nin=None, sample=_cat_sample, expects="equal sizes except along dim",
           reads=())
def cat(*args):
    *arrays, axis = args
    return np.concatenate(arrays, axis=axis)


@cat.defvjp
def _(ctx, g):
    axis = ctx.attrs[0]
    grads, start = [], 0
    for t in ctx.saved:
        stop = start + t._data.shape[axis]
        grads.append(g[(slice(None),) * axis + (slice(start, stop),)] if t.requires_grad else None)
        start = stop
    return tuple(grads)


def _pad_sample(gen):
    shape = gen.shape(min_dims=1, max_dims=3)
    width = tuple((gen.integers(0, 3, ()).item(), gen.integers(0, 3, ()).item()) for _ in shape)
    return [gen.array(shape, -2, 2)], (width, gen.choice([0.0, 1.5]))


@primitive("pad", attrs=("pad_width", "value"), sample=_pad_sample, reads=())
def pad(x, width, value):
    return np.pad(x, width, mode="constant", constant_values=value)


@pad.defvjp
def _(ctx, g):
    shape = ctx.saved[0]._data.shape
    return (g[tuple(slice(b, b + s) for (b, _), s in zip(ctx.attrs[0], shape))],)


# ---------------- `into` rules (tl.compile writes these forwards into planned buffers) ----------------
@pad.definto
def _(out, x, width, value):
    out.fill(value)
    out[tuple(slice(b, b + n) for (b, _), n in zip(width, x.shape))] = x
    return out


# reshape's result is a view where NumPy can make one; where it copies (a strided input), the copy is written
# into the planned buffer, element by element in C order as np.reshape copies
reshape.definto(lambda out, x, shape: (np.copyto(out.reshape(x.shape), x), out)[1])


cat.definto(lambda out, *args: np.concatenate(args[:-1], axis=args[-1], out=out))


# ---------------- forward mode: each primitive's JVP (all of these are linear in their tensor inputs) ----------
for _p in (reshape, permute, expand):
    _p.defjvp(same_op_jvp(_p))
pad.defjvp(lambda p, ts, out, attrs: None if ts[0] is None else pad(ts[0], attrs[0], 0.0))


def _zero_like(t):
    return t.__class__._wrap(constant(np.zeros(t._data.shape, t._data.dtype)))


@cat.defjvp
def _(primals, tangents, out, attrs):
    return cat(*[_zero_like(x) if t is None else t for x, t in zip(primals, tangents)], *attrs)


# ---------------- vmap: batching rules (attributes given the batch dimension first) ----------------
def _lead_all(arrays, batched):
    size = batching.batch_size(arrays, batched)
    return size, [batching.lead(a, b, size) for a, b in zip(arrays, batched)]


def _axis(dim, x):
    return dim % max(x.ndim - 1, 1) + 1


reshape.defbatch(lambda arrays, batched, attrs: np.reshape(arrays[0], (arrays[0].shape[0],) + tuple(attrs[0])))
permute.defbatch(lambda arrays, batched, attrs: np.transpose(
    arrays[0], (0,) + tuple(d % max(arrays[0].ndim - 1, 1) + 1 for d in attrs[0])))


@expand.defbatch
def _(arrays, batched, attrs):
    (x,), (shape,) = arrays, attrs
    x = x.reshape(x.shape[:1] + (1,) * (len(shape) - x.ndim + 1) + x.shape[1:])  # the missing leading dims
    return np.broadcast_to(x, (x.shape[0],) + tuple(shape))


@cat.defbatch
def _(arrays, batched, attrs):
    size, arrays = _lead_all(arrays, batched)
    return np.concatenate(arrays, axis=_axis(attrs[0], arrays[0]))


pad.defbatch(lambda arrays, batched, attrs: pad.forward(arrays[0], ((0, 0),) + tuple(attrs[0]), attrs[1]))
