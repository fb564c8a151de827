"""The 0/1 (or share) factors VJPs compute from input values — relu's and clamp's masks, maximum/minimum's winner
shares, pow's zero-exponent masks — as host computations a tl.compile replay writes into planned buffers (their into
rules), and the `mask` primitive that keeps such a factor on the tape under create_graph (`kink_mask`); with the
helpers for constants and host results (`const`, `hosted`). Used by elementwise.py, unary.py and reduce.py (which adds
the amax/amin tie shares to MASKS)."""
import numpy as np

from . import batching
from .registry import primitive
from ..autograd import recorder as tape
from ..compile.hooks import batching_rule, constant, elementwise, host, into_rule


def const(arr):
    """A constant Tensor made from Python values only (tl.compile takes it as such)."""
    return tape.Tensor._wrap(constant(arr))


def hosted(fn, *args):
    """A Tensor of `fn(*args)`, a NumPy computation on tensor data (a VJP's mask): recorded for tl.compile."""
    return tape.Tensor._wrap(host(fn, *args))


def _inside(x, lo, hi):
    keep = np.ones(x.shape, dtype=bool)
    if lo is not None:
        keep &= x >= lo
    if hi is not None:
        keep &= x <= hi
    return keep.astype(x.dtype)


def _exponent_zero(b):
    return np.asarray(b == 0)


@into_rule(_exponent_zero)
def _(out, b):
    return np.equal(b, 0, out=out)


def _pow_zero_masks(a, b):
    """(a == 0 & b >= 0, its complement as a's dtype): where log(a) is replaced by 0 (a multiply by exactly 1.0
    elsewhere, so values are those of the unmasked formula)."""
    ad, bd = np.broadcast_arrays(a, b)
    zero = (ad == 0) & (bd >= 0)
    return zero, (~zero).astype(a.dtype)


def _winner_shares(a, b, greater):
    """Both shares stacked, (2, *the broadcast shape): [0] is d out/d a — 1 where a wins, 0.5 at a tie, else 0 —
    and [1] = 1 - [0], b's (a NaN on either side makes b's 1, as `~(a > b) & (a != b)` does). Every value is 0, 0.5
    or 1, so each pass is exact."""
    dtype = np.result_type(np.asarray(a).dtype, 0.5)
    out = np.empty((2,) + np.broadcast_shapes(np.shape(a), np.shape(b)), dtype)
    return _winner_shares_into(out, a, b, greater)


@into_rule(_winner_shares)
def _winner_shares_into(out, a, b, greater):
    share_a, share_b = out[0, ...], out[1, ...]  # (views, 0-d ones too)
    np.equal(a, b, out=share_b)
    np.multiply(share_b, 0.5, out=share_b)  # the ties' half
    (np.greater if greater else np.less)(a, b, out=share_a)
    np.add(share_a, share_b, out=share_a)
    np.subtract(1, share_a, out=share_b)
    return out


# ---------------- kink masks: a VJP's 0/1 factor that stays on the tape under create_graph ----------------
MASKS = {  # kind -> fn(*arrays, *args): the factor, from input values (reduce.py adds the amax/amin tie shares)
    "positive": lambda x: x > 0,
    "sign": np.sign,
    "inside": lambda x, lo, hi: _inside(x, lo, hi),
    # (copies: a view would keep both shares' stacked array alive in the graph)
    "share_a": lambda a, b, greater: _winner_shares(a, b, greater)[0].copy(),
    "share_b": lambda a, b, greater: _winner_shares(a, b, greater)[1].copy(),
}


@into_rule(MASKS["inside"])
def _(out, x, lo, hi):
    """_inside's 0/1 factor written into `out` with no temporary (clamp's VJP in a replayed step): x is inside
    [lo, hi] exactly where clamping it leaves it equal to itself (NaN never is: NaN >= lo is false too); bounds
    compared in x's dtype, as NumPy compares x with them. A range with lo > hi (empty, or one value once both round
    to x's dtype) is computed as eager does: the bounds' casts would warn once more than eager's comparisons (a
    float16 bound past 65504), and rounding keeps lo <= hi ordered, so no other range needs them."""
    if lo is None and hi is None:
        out.fill(1)
        return out
    if lo is not None and hi is not None and lo > hi:
        np.copyto(out, _inside(x, lo, hi))
        return out
    src = x
    if lo is not None:
        src = np.maximum(x, lo, out=out)
    if hi is not None:
        np.minimum(src, hi, out=out)
    return np.equal(out, x, out=out)


def _mask_sample(gen):
    kind = gen.choice(["positive", "sign", "inside", "share_a"])
    if kind == "share_a":
        sa, sb = gen.shapes(2)
        return [gen.array(sa, -2, 2), gen.array(sb, -2, 2)], (kind, (True,))
    x = gen.array(gen.shape(), -2, 2, [0.0, -0.5, 0.5])
    return [x], (kind, (-0.5, 0.5) if kind == "inside" else ())


def _mask_kink(arrays, attrs):
    kind, args = attrs
    if kind == "share_a":
        return np.abs(arrays[0] - arrays[1])
    pts = [0.0] if kind != "inside" else list(args)
    return np.min([np.abs(arrays[0] - p) for p in pts], axis=0)


@primitive("mask", attrs=("kind", "args"), nin=None, sample=_mask_sample, kink=_mask_kink, reads=())
def mask(*arrays_kind_args):
    """A piecewise-constant factor of its inputs (where relu passes, the sign, who wins a maximum...): the
    derivative of relu, abs, clamp, maximum, amax... Its own derivative is zero, as PyTorch's is at kinks."""
    *arrays, kind, args = arrays_kind_args
    dt = np.result_type(*arrays)
    return np.asarray(MASKS[kind](*arrays, *args)).astype(dt, copy=False)


@mask.defvjp
def _(ctx, g):
    return tuple(const(np.zeros(t._data.shape, t._data.dtype)) if t.requires_grad else None for t in ctx.saved)


mask.defjvp(lambda primals, tangents, out, attrs: None)  # a zero tangent


def kink_mask(kind, *inputs, args=()):
    """The factor MASKS[kind] of a VJP. Under create_graph with an input that requires grad, it is the recorded
    `mask` primitive, so the gradient stays on the tape and is differentiable (zero second derivative, as
    PyTorch); otherwise a constant (no tape entry)."""
    if tape.state.grad_enabled and any(t.requires_grad for t in inputs):
        return tape.apply(mask, inputs, (kind, args))
    if kind == "positive":  # the ufunc itself (MASKS' x > 0): a compiled replay writes it into a planned buffer
        return hosted(np.greater, inputs[0]._data, 0)
    return hosted(MASKS[kind], *[t._data for t in inputs], *args)


# ---------------- vmap ----------------
def _mask_batch(arrays, batched, attrs):
    kind, args = attrs
    if kind.startswith("tie_"):  # a reduction's tie shares: the axis moves past the batch
        (x,) = arrays
        axis, keepdims = args
        return mask.forward(x, kind, (batching.shift_axes(axis, x.ndim - 1), keepdims))
    return mask.forward(*batching.align(arrays, batched), kind, args)


mask.defbatch(_mask_batch)

for _fn in (_pow_zero_masks, _exponent_zero, _inside, *(MASKS[k] for k in ("positive", "sign", "inside", "share_a",
                                                                         "share_b"))):
    elementwise(_fn)


@batching_rule(_winner_shares)
def _(args, batched):
    a, b, greater = args
    a, b = batching.align([a, b], batched)
    return np.moveaxis(_winner_shares(a, b, greater), 0, 1)  # (B, 2, ...): the batch leading
