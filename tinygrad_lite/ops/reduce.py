"""Reduction primitives: sum, amax/amin (ties share the gradient evenly, as PyTorch), prod, cumsum, cumprod."""
import numpy as np

from . import batching
from .registry import primitive
from .elementwise import MASKS, const, hosted, kink_mask, same_op_jvp, where
from ..compile.hooks import batching_rule, decide, has_zero, host, into_rule
from .workspace import scratch
from ..autograd import recorder as tape
from .movement import reshape, expand, pad


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
    return np.add.reduce(x, axis=axis, keepdims=keepdims)  # np.sum's own kernel, without its Python wrapper


@sum_.defvjp
def _(ctx, g):
    return (_expand_back(ctx, g),)


def _extreme_vjp(ctx, g):
    x = ctx.saved[0]
    if tape.state.grad_enabled and x.requires_grad:  # create_graph: the share on the tape (zero derivative)
        return (_expand_back(ctx, g) * kink_mask(f"tie_{ctx.prim.name}", x, args=ctx.attrs),)
    return (_expand_back(ctx, g) * hosted(_tie_share, ctx.prim.forward, x._data, ctx.out_data, *ctx.attrs),)


def _tie_share(forward, x, out, axis, keepdims):
    """1/k at each of the k elements equal to their slice's extreme (the gradient split evenly among ties). A slice
    whose extreme is NaN has no ties: its shares are 0/0, NaN, without NumPy's 'invalid value' warning (an internal
    division, silent in the into rule too: a compiled replay warns as eager does)."""
    if out is None:
        out = forward(x, axis, keepdims)
    ref = out if keepdims else out.reshape(_keep_shape(x.shape, axis))
    mask = (x == ref)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (mask / np.sum(mask, axis=axis, keepdims=True)).astype(x.dtype, copy=False)


@into_rule(_tie_share)
def _(buf, forward, x, out, axis, keepdims):
    """_tie_share into `buf`: the 0/1 ties in place, times 1/k computed as eager's (float64, then x's dtype) on the
    reduced shape only: 1 * share is share, 0 * share is 0 (a slice whose extreme is NaN has no ties: 0 * inf, NaN,
    as eager's 0/0)."""
    if out is None:
        out = forward(x, axis, keepdims)
    ref = out if keepdims else out.reshape(_keep_shape(x.shape, axis))
    np.equal(x, ref, out=buf)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = (1.0 / np.add.reduce(buf, axis=axis, keepdims=True, dtype=np.float64)).astype(x.dtype, copy=False)
        return np.multiply(buf, share, out=buf)


def _extreme_kink(top):
    """Per element: the distance from a tie of its slice's extreme — the gap between the two largest values of
    each reduced slice for amax (`top`), the two smallest for amin — broadcast back over the slice. (A tie at the
    other end is no kink: amax of [h, 0, 0] is smooth in h.)"""
    def kink(arrays, attrs):
        x = arrays[0]
        axes = tuple(range(x.ndim)) if attrs[0] is None else attrs[0]
        rest = [i for i in range(x.ndim) if i not in axes]
        flat = np.sort(np.transpose(x, rest + list(axes)).reshape(*[x.shape[i] for i in rest], -1), axis=-1)
        if flat.shape[-1] < 2:
            return np.full(x.shape, np.inf)
        gap = flat[..., -1] - flat[..., -2] if top else flat[..., 1] - flat[..., 0]
        return np.broadcast_to(gap.reshape(_keep_shape(x.shape, axes)), x.shape)
    return kink


@primitive("amax", attrs=("dim", "keepdim"), sample=_reduce_sample(), kink=_extreme_kink(True))
def amax(x, axis, keepdims):
    return np.amax(x, axis=axis, keepdims=keepdims)


amax.defvjp(_extreme_vjp)


@primitive("amin", attrs=("dim", "keepdim"), sample=_reduce_sample(), kink=_extreme_kink(False))
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
    g = _expand_back(ctx, g)
    if not decide(has_zero, x._data):
        full = x.prod(dim=axis, keepdim=True) if axis is not None else x.prod().reshape(_keep_shape(x.shape, None))
        return (g * full / x,)
    zero, only_zero, no_zero = host(_prod_zero_masks, x._data, axis)
    dt = x._data.dtype
    x_nz = tape.apply(where, (tape.Tensor._wrap(zero), const(np.ones((), dt)), x))  # zeros replaced by ones
    p_nz = x_nz.prod(dim=axis, keepdim=True) if axis is not None else x_nz.prod().reshape(_keep_shape(x.shape, None))
    return (g * (p_nz * tape.Tensor._wrap(only_zero) + p_nz / x_nz * tape.Tensor._wrap(no_zero)),)


def _prod_zero_masks(x, axis):
    """(x == 0, the single zero of its slice: product of the others, slices without zeros: prod / x)."""
    zero = x == 0
    nz = np.sum(zero, axis=axis, keepdims=True)
    return zero, (zero & (nz == 1)).astype(x.dtype), np.broadcast_to(nz == 0, x.shape).astype(x.dtype)


# ---------------- cumulative sum and product ----------------
def _cum_acc(dt):
    """PyTorch accumulates cumulative sums/products of float16 in float32 and of float32 in float64 (its numbers)."""
    return (np.float32 if dt.itemsize < 4 else np.float64) if dt.kind == "f" else dt


def _cum_sample(zeros):
    def sample(gen):
        shape = gen.shape(min_dims=0, max_dims=3)
        x = gen.array(shape, -2.0, 2.0)
        if zeros and shape and gen.choice([False, True]):  # exact zeros exercise cumprod's zero path
            x = np.where(gen.booleans(shape) & gen.booleans(shape), 0.0, x)
        return [x], (gen.choice(range(len(shape))) if shape else 0,)
    return sample


def _rev_cumsum(g, dim):
    from ..shape import reversed_view  # (not at import: shape imports the ops) views: Tensor.flip copies
    return reversed_view(cumsum(reversed_view(g, dim), dim), dim)


def _scan(fn, x, dim):
    """np.cumsum/np.cumprod along `dim`, accumulated in PyTorch's precision; a 0-d tensor is its own scan."""
    if x.ndim == 0:
        return x.copy()
    return fn(x, axis=dim, dtype=_cum_acc(x.dtype)).astype(x.dtype, copy=False)


@primitive("cumsum", attrs=("dim",), sample=_cum_sample(False), reads=())
def cumsum(x, dim):
    return _scan(np.cumsum, x, dim)


@cumsum.defvjp
def _(ctx, g):
    return (g if g._data.ndim == 0 else _rev_cumsum(g, ctx.attrs[0]),)


@primitive("cumprod", attrs=("dim",), sample=_cum_sample(True))
def cumprod(x, dim):
    return _scan(np.cumprod, x, dim)


@cumprod.defvjp
def _(ctx, g):
    """grad_k = sum_{i>=k} g_i prod_{j<=i, j!=k} x_j. Without zeros: reverse cumsum of g*out over x. With zeros: the
    products that leave x_k out, from an n x n matrix per slice, with no division (every order correct)."""
    x, d = ctx.saved[0], ctx.attrs[0]
    if x._data.ndim == 0 or x._data.shape[d] <= 1:
        return (g,)
    if not decide(has_zero, x._data):
        return (_rev_cumsum(g * ctx.output(), d) / x,)
    before, between, upper = _cumprod_terms(x.transpose(d, -1))
    tail = (g.transpose(d, -1).unsqueeze(-2) * between * upper).sum(-1)
    return ((before * tail).transpose(d, -1),)


def _cumprod_terms(xl):
    """For x with the scanned dim last (n long): before[..., k] = prod_{j<k} x_j, between[..., k, i] =
    prod_{k<j<=i} x_j, and upper[k, i] = (i >= k): out_i = before_k * x_k * between[k, i] for every k <= i, with no
    division (zeros anywhere)."""
    n, dt = xl._data.shape[-1], xl._data.dtype
    last = xl._data.ndim  # the new axis of the n x n matrix (rows k, columns j)
    k, j = np.arange(n)[:, None], np.arange(n)[None, :]
    one = const(np.ones((), dt))
    after_k = tape.apply(where, (const(j > k), reshape(xl, xl._data.shape[:-1] + (1, n)), one))
    between = cumprod(after_k, last)
    width = ((0, 0),) * (last - 1) + ((1, 0),)
    before = cumprod(pad(xl, width, 1.0), last - 1)[..., :-1]
    return before, between, const((j >= k).astype(dt))


sum_.definto(lambda out, x, axis, keepdims: np.add.reduce(x, axis=axis, keepdims=keepdims, out=out))
amax.definto(lambda out, x, axis, keepdims: np.amax(x, axis=axis, keepdims=keepdims, out=out))
amin.definto(lambda out, x, axis, keepdims: np.amin(x, axis=axis, keepdims=keepdims, out=out))
prod.definto(lambda out, x, axis, keepdims: np.prod(x, axis=axis, keepdims=keepdims, out=out))


def _scan_into(fn):
    """The scan accumulated in a work array of PyTorch's precision, rounded once into `out` (as astype)."""
    def rule(out, x, dim):
        if x.ndim == 0:
            np.copyto(out, x)
            return out
        acc = np.dtype(_cum_acc(x.dtype))
        if acc == out.dtype:
            return fn(x, axis=dim, dtype=acc, out=out)
        wide = scratch("scan", x.shape, acc)
        np.copyto(wide, x)  # (a scan with dtype= would cast x into a new array of its own)
        np.copyto(out, fn(wide, axis=dim, out=wide), casting="unsafe")
        return out
    return rule


cumsum.definto(_scan_into(np.cumsum))
cumprod.definto(_scan_into(np.cumprod))


# ---------------- forward mode: each primitive's JVP ----------------
class _VjpCall:
    """What a reduction's VJP reads from its tape entry, for calling the VJP from a JVP (by linearity: every
    input element feeds one output element, so the VJP of ones is each element's own derivative)."""

    def __init__(self, prim, primals, out, attrs):
        self.prim, self.saved, self.attrs, self._out = prim, tuple(primals), attrs, out
        self.needs = tuple(p.requires_grad for p in primals)
        self.out_data = out._data

    def output(self):
        return self._out


def _slice_reduction_jvp(prim):
    """JVP of a reduction whose every input element feeds exactly one output element: sum over each slice of
    tangent * d out / d x (the VJP of ones)."""
    def jvp(primals, tangents, out, attrs):
        if tangents[0] is None:
            return None
        ones = const(np.ones(out._data.shape, out._data.dtype))
        (factor,) = prim.vjp(_VjpCall(prim, primals, out, attrs), ones)
        return sum_(tangents[0] * factor, *attrs)
    return jvp


sum_.defjvp(same_op_jvp(sum_))
cumsum.defjvp(same_op_jvp(cumsum))
for _p in (amax, amin, prod):
    _p.defjvp(_slice_reduction_jvp(_p))
MASKS["tie_amax"] = lambda x, axis, keepdims: _tie_share(amax.forward, x, None, axis, keepdims)
MASKS["tie_amin"] = lambda x, axis, keepdims: _tie_share(amin.forward, x, None, axis, keepdims)


@cumprod.defjvp
def _(primals, tangents, out, attrs):
    (x,), (t,), d = primals, tangents, attrs[0]
    if t is None or x._data.ndim == 0 or x._data.shape[d] <= 1:
        return t
    if not decide(has_zero, x._data):
        return out * cumsum(t / x, d)
    before, between, upper = _cumprod_terms(x.transpose(d, -1))
    return ((t.transpose(d, -1) * before).unsqueeze(-1) * between * upper).sum(-2).transpose(d, -1)


# ---------------- vmap: batching rules (the axes move past the batch) ----------------
for _p in (sum_, amax, amin, prod, cumsum, cumprod):
    _p.defbatch(batching.reduction(_p))



@batching_rule(_tie_share)
def _(args, batched):
    forward, x, out, axis, keepdims = args
    return _tie_share(forward, x, out, batching.shift_axes(axis, x.ndim - 1), keepdims)


@batching_rule(_prod_zero_masks)
def _(args, batched):
    x, axis = args
    return _prod_zero_masks(x, batching.shift_axes(axis, x.ndim - 1))

