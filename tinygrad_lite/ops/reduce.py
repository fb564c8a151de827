"""Reduction primitives: sum, amax/amin (ties share the gradient evenly, as PyTorch), prod."""
import numpy as np

from .registry import primitive
from .elementwise import const, where
from ..autograd import recorder as tape
from .movement import reshape, expand


def _keep_shape(shape, axis):
    if axis is None:
        return (1,) * len(shape)
    return tuple(1 if i in axis else s for i, s in enumerate(shape))


def _reduce_sample(low=-2.0, high=2.0):
    def sample(gen):
        shape = gen.shape(min_dims=0, max_dims=3)
        nd = len(shape)
        axis = gen.choice([None] + [(i,) for i in range(nd)] + ([tuple(range(nd))] if nd > 1 else []))
        return [gen.array(shape, low, high)], (axis, gen.choice([False, True]))
    return sample


def _expand_back(ctx, g):
    """g (reduced shape) reshaped to keepdims form and broadcast to the input's shape."""
    shape = ctx.saved[0]._data.shape
    axis, keepdims = ctx.attrs
    if not keepdims:
        g = reshape(g, _keep_shape(shape, axis))
    return g if g._data.shape == shape else expand(g, shape)


@primitive("sum", attrs=("dim", "keepdim"), sample=_reduce_sample(), reads=())
def sum_(x, axis, keepdims):
    return np.sum(x, axis=axis, keepdims=keepdims)


@sum_.defvjp
def _(ctx, g):
    return (_expand_back(ctx, g),)


def _extreme_vjp(ctx, g):
    x = ctx.saved[0]._data
    axis, keepdims = ctx.attrs
    out = ctx.out_data if ctx.out_data is not None else ctx.prim.forward(x, axis, keepdims)
    ref = out if keepdims else out.reshape(_keep_shape(x.shape, axis))
    mask = (x == ref)
    share = mask / np.sum(mask, axis=axis, keepdims=True)  # split evenly among ties
    return (_expand_back(ctx, g) * const(share.astype(x.dtype, copy=False)),)


def _extreme_kink(arrays, attrs):
    """Per element: the distance from a tie of its slice's extreme (gap between the two largest, or the two
    smallest, values of each reduced slice), broadcast back over the slice."""
    x = arrays[0]
    axes = tuple(range(x.ndim)) if attrs[0] is None else attrs[0]
    rest = [i for i in range(x.ndim) if i not in axes]
    flat = np.sort(np.transpose(x, rest + list(axes)).reshape(*[x.shape[i] for i in rest], -1), axis=-1)
    if flat.shape[-1] < 2:
        return np.full(x.shape, np.inf)
    gap = np.minimum(flat[..., -1] - flat[..., -2], flat[..., 1] - flat[..., 0])
    return np.broadcast_to(gap.reshape(_keep_shape(x.shape, axes)), x.shape)


@primitive("amax", attrs=("dim", "keepdim"), sample=_reduce_sample(), kink=_extreme_kink)
def amax(x, axis, keepdims):
    return np.amax(x, axis=axis, keepdims=keepdims)


amax.defvjp(_extreme_vjp)


@primitive("amin", attrs=("dim", "keepdim"), sample=_reduce_sample(), kink=_extreme_kink)
def amin(x, axis, keepdims):
    return np.amin(x, axis=axis, keepdims=keepdims)


amin.defvjp(_extreme_vjp)


@primitive("prod", attrs=("dim", "keepdim"), sample=_reduce_sample(0.5, 1.5), reads=("inputs",))
def prod(x, axis, keepdims):
    return np.prod(x, axis=axis, keepdims=keepdims)


@prod.defvjp
def _(ctx, g):
    """d prod / d x_i = product of the others, computed without dividing by zero (zeros handled explicitly)."""
    x = ctx.saved[0]
    axis, _ = ctx.attrs
    zero = x._data == 0
    g = _expand_back(ctx, g)
    if not zero.any():
        full = x.prod(dim=axis, keepdim=True) if axis is not None else x.prod().reshape(_keep_shape(x.shape, None))
        return (g * full / x,)
    nz = np.sum(zero, axis=axis, keepdims=True)
    dt = x._data.dtype
    x_nz = tape.apply(where, (const(zero), const(np.ones((), dt)), x))  # zeros replaced by ones
    p_nz = x_nz.prod(dim=axis, keepdim=True) if axis is not None else x_nz.prod().reshape(_keep_shape(x.shape, None))
    only_zero = (zero & (nz == 1)).astype(dt)     # the single zero of its slice: product of the others
    no_zero = np.broadcast_to(nz == 0, x.shape).astype(dt)  # slices without zeros: prod / x
    return (g * (p_nz * const(only_zero) + p_nz / x_nz * const(no_zero)),)
