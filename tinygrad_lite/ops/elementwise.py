"""Elementwise arithmetic (neg, and add, sub, mul, div, pow, maximum, minimum with broadcasting), where, clamp and
cast; with the helpers the other groups' JVPs use (tsum, tmap, same_op_jvp). The factors their VJPs compute from
input values (masks, shares) and the `mask` primitive are in masks.py; the unary math and activations in unary.py."""
import numpy as np

from . import batching
from .registry import primitive
from .samplers import unary, binary
from ..autograd import recorder as tape
from ..compile.hooks import host
from .masks import (MASKS, _exponent_zero, _inside, _pow_zero_masks, _winner_shares, const, hosted,  # noqa: F401
                    kink_mask, mask)  # (the VJP factors; re-exported for the other groups and the tests)


# ---------------- neg (the unary math and activations are in unary.py) ----------------
@primitive("neg", sample=unary(), reads=())
def neg(x):
    return np.negative(x)


@neg.defvjp
def _(ctx, g):
    return (neg(g),)


def _clamp_sample(gen):
    lo = gen.choice([None, -1.0, -0.5])
    hi = gen.choice([None, 1.0, 0.5]) if lo is not None else gen.choice([1.0, 0.5])
    away = [p for p in (lo, hi) if p is not None]
    return [gen.array(gen.shape(), -2.0, 2.0, away)], (lo, hi)


def _clamp_kink(arrays, attrs):
    pts = [p for p in attrs if p is not None]
    return np.min([np.abs(arrays[0] - p) for p in pts], axis=0)


@primitive("clamp", attrs=("min", "max"), sample=_clamp_sample, kink=_clamp_kink, reads=("inputs",))
def clamp(x, lo, hi):
    out = x
    if lo is not None:
        out = np.maximum(out, np.asarray(lo, dtype=x.dtype))
    if hi is not None:
        out = np.minimum(out, np.asarray(hi, dtype=x.dtype))
    return out if out is not x else x.copy()


@clamp.defvjp
def _(ctx, g):
    return (g * kink_mask("inside", ctx.saved[0], args=ctx.attrs),)


# ---------------- binary (broadcasting; the engine sums gradients back to each input's shape) ----------------
@primitive("add", nin=2, sample=binary(), reads=())
def add(a, b):
    return a + b


@add.defvjp
def _(ctx, g):
    return g, g


@primitive("sub", nin=2, sample=binary(), reads=())
def sub(a, b):
    return a - b


@sub.defvjp
def _(ctx, g):
    return g, (neg(g) if ctx.saved[1].requires_grad else None)


@primitive("mul", nin=2, sample=binary(), reads=("inputs",))
def mul(a, b):
    return a * b


@mul.defvjp
def _(ctx, g):
    a, b = ctx.saved
    return (mul(g, b) if a.requires_grad else None), (mul(g, a) if b.requires_grad else None)


@primitive("div", nin=2, sample=binary(away_b=[0.0]), reads=("inputs",))
def div(a, b):
    return a / b


@div.defvjp
def _(ctx, g):
    a, b = ctx.saved
    return (div(g, b) if a.requires_grad else None), (neg(div(mul(g, a), mul(b, b))) if b.requires_grad else None)


def _pow_sample(gen):
    sa, sb = gen.shapes(2)
    return [gen.array(sa, 0.3, 2.0), gen.array(sb, -2.0, 2.0)], ()


@primitive("pow", nin=2, sample=_pow_sample)
def pow_(a, b):
    return np.power(a, b)


@pow_.defvjp
def _(ctx, g):
    a, b = ctx.saved
    ga = gb = None
    if ctx.needs[0]:
        ga = _pow_base_grad(g, a, b)
    if ctx.needs[1]:
        gb = _pow_exponent_grad(g, a, b, ctx.output())
    return ga, gb


def _pow_exponent_grad(t, a, b, out):
    """t * a**b * log(a), exactly 0 where a == 0 and b >= 0 (PyTorch's: log(a) taken at 1 there, then masked); the
    VJP's and the JVP's term for the exponent."""
    zero, keep = host(_pow_zero_masks, a._data, b._data)  # always both masks: no data-dependent branch
    safe_a = tape.apply(where, (tape.Tensor._wrap(zero), const(np.ones((), a._data.dtype)), a))
    return t * out * safe_a.log() * tape.Tensor._wrap(keep)


def _pow_base_grad(t, a, b):
    """t * b * a**(b-1), exactly 0 where b == 0 (PyTorch's: the formula alone gives 0 * inf = nan at a == 0)."""
    zero_b = tape.Tensor._wrap(host(_exponent_zero, b._data))  # (a replay writes it into a planned buffer)
    return tape.apply(where, (zero_b, const(np.zeros((), t._data.dtype)), t * b * a ** (b - 1.0)))


def _extreme_vjp(greater):
    """VJP of maximum (greater) or minimum: the winner gets the gradient, ties give each side half (PyTorch)."""
    def vjp(ctx, g):
        share_a, share_b = _shares(*ctx.saved, greater, ctx.needs)
        return tmap(lambda s: g * s, share_a), tmap(lambda s: g * s, share_b)
    return vjp


def _shares(a, b, greater, needs):
    """The winner-share factors of maximum/minimum (d out/d a, d out/d b) for the sides that `needs` flags (None for
    the others: a constant side's product with the gradient is not computed, so it warns of nothing a replay would
    not): on the tape under create_graph (kink masks), otherwise both from one host computation."""
    if tape.state.grad_enabled and (a.requires_grad or b.requires_grad):
        return (kink_mask("share_a", a, b, args=(greater,)) if needs[0] else None,
                kink_mask("share_b", a, b, args=(greater,)) if needs[1] else None)
    both = tape.Tensor._wrap(host(_winner_shares, a._data, b._data, greater))  # (a replay: one planned buffer)
    return both[0] if needs[0] else None, both[1] if needs[1] else None


def _gap(arrays, attrs):
    return np.abs(arrays[0] - arrays[1])


@primitive("maximum", nin=2, sample=binary(), kink=_gap, reads=("inputs",))
def maximum(a, b):
    return np.maximum(a, b)


@primitive("minimum", nin=2, sample=binary(), kink=_gap, reads=("inputs",))
def minimum(a, b):
    return np.minimum(a, b)


maximum.defvjp(_extreme_vjp(True))
minimum.defvjp(_extreme_vjp(False))


def _remainder_sample(gen):
    """b of either sign, |b| in [0.5, 2]; a = b * (k + f) with f in [0.2, 0.8], away from the jumps at a/b integer
    (b broadcast against a: a scalar b, or one of a's shape)."""
    sa = gen.shape()
    sb = gen.choice([(), sa])
    b = np.asarray(gen.array(sb, 0.5, 2.0) * gen.choice([1.0, -1.0]))
    k = gen.integers(-3, 3, sa)
    return [np.asarray(b * (k + gen.array(sa, 0.2, 0.8))), b], ()


def _remainder_kink(arrays, attrs):
    a, b = arrays
    q = a / b
    return np.abs(q - np.round(q)) * np.abs(b)  # distance of a to the nearest multiple of b


def _remainder_np(a, b, out=None):
    """a - b * floor(a / b) with b's sign, Python's %, as PyTorch's remainder computes it: fmod, plus b where a
    non-zero result has the other sign. (NumPy's mod gives the same values but a zero result b's sign, where PyTorch
    keeps fmod's, a's: -3.0 % 3.0 is -0.0 there, and 1 / (x % y) an -inf; the ONNX rule computes it as here.) With
    `out`, written there (a compiled replay's planned buffer)."""
    if a.dtype.kind != "f":
        return np.mod(a, b, out=out)  # (integers have no signed zero: the same numbers)
    r = np.asarray(np.fmod(a, b, out=out))  # (0-d operands: NumPy gives a scalar)
    fix = (r != 0) & ((r < 0) != (b < 0))
    return np.add(r, b, out=r, where=fix)


@primitive("remainder", nin=2, sample=_remainder_sample, kink=_remainder_kink, reads=("inputs",))
def remainder(a, b):
    return _remainder_np(a, b)


def _quotient(a, b):
    """floor(a / b) of two Tensors, a constant (remainder's derivative in b is its negative; its own derivative is 0
    away from the jumps)."""
    return tape.Tensor._wrap(host(np.floor_divide, a._data, b._data))


@remainder.defvjp
def _(ctx, g):
    """d/da = 1, d/db = -floor(a / b)."""
    a, b = ctx.saved
    return (g if ctx.needs[0] else None), (neg(mul(g, _quotient(a, b))) if ctx.needs[1] else None)


def _where_sample(gen):
    sc, sa, sb = gen.shapes(3)
    return [gen.booleans(sc), gen.array(sa, -2, 2), gen.array(sb, -2, 2)], ()


@primitive("where", nin=3, sample=_where_sample, reads=("inputs",))
def where(cond, a, b):
    return np.where(cond, a, b)


@where.defvjp
def _(ctx, g):
    c = tape.Tensor._wrap(ctx.saved[0]._data)
    zero = const(np.zeros((), g._data.dtype))
    return (None,
            tape.apply(where, (c, g, zero)) if ctx.needs[1] else None,
            tape.apply(where, (c, zero, g)) if ctx.needs[2] else None)


def _cast_sample(gen):
    return [gen.array(gen.shape(), -2, 2)], (np.dtype("float64"),)


@primitive("cast", attrs=("dtype",), sample=_cast_sample, reads=())
def cast(x, dtype):
    return x.astype(dtype)


@cast.defvjp
def _(ctx, g):
    return (g.astype(ctx.saved[0]._data.dtype),)


# ---------------- `into` rules (tl.compile writes these forwards into planned buffers) ----------------
for _prim, _ufunc in ((neg, np.negative), (add, np.add), (sub, np.subtract), (mul, np.multiply), (maximum, np.maximum),
                      (minimum, np.minimum)):
    _prim.ufunc_into(_ufunc)
div.ufunc_into(np.true_divide)
pow_.ufunc_into(np.power)
remainder.definto(lambda out, a, b: _remainder_np(a, b, out))  # (not np.mod's ufunc: the sign of a zero differs)


@cast.definto
def _(out, x, dtype):
    np.copyto(out, x, casting="unsafe")  # astype's conversions
    return out


@where.definto
def _(out, cond, a, b):
    np.copyto(out, b, casting="unsafe")  # every element from b, then a's where cond holds: np.where's values
    np.copyto(out, a, casting="unsafe", where=cond)
    return out


@clamp.definto
def _(out, x, lo, hi):
    """forward's maximum then minimum (NaN stays NaN), the second over the first's result in place."""
    if lo is None and hi is None:
        np.copyto(out, x)
        return out
    src = x
    if lo is not None:
        src = np.maximum(x, np.asarray(lo, dtype=x.dtype), out=out)
    if hi is not None:
        np.minimum(src, np.asarray(hi, dtype=x.dtype), out=out)
    return out


# ---------------- forward mode: each primitive's JVP (tangents in, the output's tangent out) ----------------
def tsum(*terms):
    """The sum of the tangent terms that are not None (None: a zero tangent)."""
    terms = [t for t in terms if t is not None]
    if not terms:
        return None
    total = terms[0]
    for t in terms[1:]:
        total = total + t
    return total


def tmap(fn, tangent):
    """fn(tangent), or None for a zero tangent."""
    return None if tangent is None else fn(tangent)


def same_op_jvp(prim):
    """JVP of a primitive that is linear in its one tensor input: the primitive applied to the tangent."""
    return lambda primals, tangents, out, attrs: tmap(lambda t: tape.apply(prim, (t,), attrs), tangents[0])


neg.defjvp(same_op_jvp(neg))
clamp.defjvp(lambda p, ts, out, attrs: tmap(lambda t: t * kink_mask("inside", p[0], args=attrs), ts[0]))
cast.defjvp(same_op_jvp(cast))
add.defjvp(lambda p, ts, out, attrs: tsum(*ts))
sub.defjvp(lambda p, ts, out, attrs: tsum(ts[0], tmap(neg, ts[1])))
mul.defjvp(lambda p, ts, out, attrs: tsum(tmap(lambda t: mul(t, p[1]), ts[0]), tmap(lambda t: mul(p[0], t), ts[1])))
div.defjvp(lambda p, ts, out, attrs: tsum(tmap(lambda t: div(t, p[1]), ts[0]),
                                          tmap(lambda t: neg(div(mul(t, out), p[1])), ts[1])))


@pow_.defjvp
def _(primals, tangents, out, attrs):
    (a, b), (ta, tb) = primals, tangents
    da = tmap(lambda t: _pow_base_grad(t, a, b), ta)
    if tb is None:
        return da
    return tsum(da, _pow_exponent_grad(tb, a, b, out))


@remainder.defjvp
def _(primals, tangents, out, attrs):
    (a, b), (ta, tb) = primals, tangents
    return tsum(ta, tmap(lambda t: neg(mul(t, _quotient(a, b))), tb))


maximum.defjvp(lambda p, ts, out, attrs: _shares_jvp(p, ts, True))
minimum.defjvp(lambda p, ts, out, attrs: _shares_jvp(p, ts, False))


def _shares_jvp(primals, tangents, greater):
    ta, tb = tangents
    share_a, share_b = _shares(*primals, greater, (ta is not None, tb is not None))
    return tsum(tmap(lambda t: t * share_a, ta), tmap(lambda t: t * share_b, tb))


@where.defjvp
def _(primals, tangents, out, attrs):
    c, a, b = primals
    _, ta, tb = tangents
    cond = tape.Tensor._wrap(c._data)
    zero = const(np.zeros((), out._data.dtype))
    return tape.apply(where, (cond, zero if ta is None else ta, zero if tb is None else tb))


# ---------------- vmap: batching rules (all of these broadcast: ops/batching.py's elementwise rule) ----------------
for _prim in (neg, clamp, add, sub, mul, div, pow_, remainder, maximum, minimum, where, cast):
    _prim.defbatch(batching.elementwise(_prim))
