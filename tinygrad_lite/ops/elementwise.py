"""Elementwise primitives (unary, binary with broadcasting, where, clamp, cast)."""
import math

import numpy as np

from . import batching
from .registry import primitive
from .samplers import unary, binary
from ..autograd import recorder as tape
from ..compile.hooks import constant, elementwise, host


def const(arr):
    """A constant Tensor made from Python values only (tl.compile takes it as such)."""
    return tape.Tensor._wrap(constant(arr))


def hosted(fn, *args):
    """A Tensor of `fn(*args)`, a NumPy computation on tensor data (a VJP's mask): recorded for tl.compile."""
    return tape.Tensor._wrap(host(fn, *args))


def _kink_at(points):
    def kink(arrays, attrs):
        x = arrays[0]
        return np.min([np.abs(x - p) for p in points], axis=0)
    return kink


# ---------------- unary ----------------
@primitive("neg", sample=unary(), reads=())
def neg(x):
    return np.negative(x)


@neg.defvjp
def _(ctx, g):
    return (neg(g),)


@primitive("exp", sample=unary(), reads=("output",))
def exp(x):
    return np.exp(x)


@exp.defvjp
def _(ctx, g):
    return (mul(g, ctx.output()),)


@primitive("log", sample=unary(0.2, 3.0), reads=("inputs",))
def log(x):
    return np.log(x)


@log.defvjp
def _(ctx, g):
    return (g / ctx.saved[0],)


@primitive("log1p", sample=unary(-0.8, 3.0), reads=("inputs",))
def log1p(x):
    return np.log1p(x)


@log1p.defvjp
def _(ctx, g):
    return (g / (ctx.saved[0] + 1.0),)


@primitive("sqrt", sample=unary(0.2, 3.0), reads=("output",))
def sqrt(x):
    return np.sqrt(x)


@sqrt.defvjp
def _(ctx, g):
    return (g / (ctx.output() * 2.0),)


_erf_scalar = np.frompyfunc(math.erf, 1, 1)


@primitive("erf", sample=unary(), reads=("inputs",))
def erf(x):
    # NumPy has no erf; math.erf is correctly rounded, applied elementwise (GELU's exact form needs it)
    return np.asarray(_erf_scalar(x)).astype(x.dtype) if x.size else x.copy()


@erf.defvjp
def _(ctx, g):
    x = ctx.saved[0]
    return (g * (-(x * x)).exp() * (2.0 / math.sqrt(math.pi)),)


@primitive("sin", sample=unary(), reads=("inputs",))
def sin(x):
    return np.sin(x)


@sin.defvjp
def _(ctx, g):
    return (g * ctx.saved[0].cos(),)


@primitive("cos", sample=unary(), reads=("inputs",))
def cos(x):
    return np.cos(x)


@cos.defvjp
def _(ctx, g):
    return (-(g * ctx.saved[0].sin()),)


@primitive("tanh", sample=unary(), reads=("output",))
def tanh(x):
    return np.tanh(x)


@tanh.defvjp
def _(ctx, g):
    return (tanh_grad(g, ctx.output()),)


def _grad_pair_sample(low, high):
    def sample(gen):
        sg, sy = gen.shapes(2)
        return [gen.array(sg, -2, 2), gen.array(sy, low, high)], ()
    return sample


# Fused VJPs: one pass over memory instead of three small ops (W1's per-op overhead); still differentiable.
_FUSE_MIN = 2048  # elements: below it, NumPy's per-call overhead with out= costs more than the temporaries save


def _fused(out, g, y):
    """Where a fused gradient formula runs its passes in place: `out` (tl.compile's planned buffer), a fresh array
    when g and y have one shape (the usual VJP call), or None: write the expression out (g and y of different
    dtypes must round each pass in its own dtype; a broadcast or 0-d call allocates anyway)."""
    if g.dtype != y.dtype:
        return None
    if out is not None:
        return out
    return np.empty_like(y) if g.shape == y.shape and y.size >= _FUSE_MIN else None


def _tanh_grad_np(g, y, out=None):
    """g * (1 - y*y), PyTorch's order, in one array instead of three."""
    r = _fused(out, g, y)
    if r is None:
        return _write(out, g * (1 - y * y))
    np.multiply(y, y, out=r)
    np.subtract(1, r, out=r)
    return np.multiply(g, r, out=r)


def _sigmoid_grad_np(g, y, out=None):
    """g * (1 - y) * y, PyTorch's order, in one array instead of three."""
    r = _fused(out, g, y)
    if r is None:
        return _write(out, g * (1 - y) * y)
    np.subtract(1, y, out=r)
    np.multiply(g, r, out=r)
    return np.multiply(r, y, out=r)


def _write(out, values):
    if out is None:
        return values
    out[...] = values
    return out


@primitive("tanh_grad", nin=2, sample=_grad_pair_sample(-1, 1))
def tanh_grad(g, y):
    if y.size < _FUSE_MIN:  # small: the expression itself (the common case of a per-op-bound workload)
        return g * (1 - y * y)
    return _tanh_grad_np(g, y)


@tanh_grad.defvjp
def _(ctx, h):
    g, y = ctx.saved
    return (tanh_grad(h, y) if g.requires_grad else None), (h * g * y * -2.0 if y.requires_grad else None)


@primitive("sigmoid_grad", nin=2, sample=_grad_pair_sample(0, 1))
def sigmoid_grad(g, y):
    if y.size < _FUSE_MIN:
        return g * (1 - y) * y
    return _sigmoid_grad_np(g, y)


@sigmoid_grad.defvjp
def _(ctx, h):
    g, y = ctx.saved
    return (sigmoid_grad(h, y) if g.requires_grad else None), (h * g * (1.0 - y * 2.0) if y.requires_grad else None)


def _sigmoid_np(x, out=None):
    # 1/(1+exp(-x)) is exact enough everywhere: exp overflows to inf only where the result underflows to 0
    # anyway (x < -88 in float32), and it is ~5x faster than a branchy two-sided form. The passes run in place in
    # one array.
    with np.errstate(over="ignore"):
        if x.dtype.kind != "f" or (out is None and x.size < _FUSE_MIN):
            return _write(out, 1.0 / (1.0 + np.exp(-x)))
        r = np.negative(x, out=out)
        np.exp(r, out=r)
    np.add(r, 1.0, out=r)
    return np.divide(1.0, r, out=r)


@primitive("sigmoid", sample=unary(-4.0, 4.0), reads=("output",))
def sigmoid(x):
    return _sigmoid_np(x)


@sigmoid.defvjp
def _(ctx, g):
    return (sigmoid_grad(g, ctx.output()),)


@primitive("relu", sample=unary(away=[0.0]), kink=_kink_at([0.0]), reads=("inputs",))
def relu(x):
    return np.maximum(x, 0)


@relu.defvjp
def _(ctx, g):
    return (mul(g, kink_mask("positive", ctx.saved[0])),)  # a bool mask: cast inside the multiply (one pass less)


@primitive("abs", sample=unary(away=[0.0]), kink=_kink_at([0.0]), reads=("inputs",))
def abs_(x):
    return np.abs(x)


@abs_.defvjp
def _(ctx, g):
    return (g * kink_mask("sign", ctx.saved[0]),)


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


def _inside(x, lo, hi):
    keep = np.ones(x.shape, dtype=bool)
    if lo is not None:
        keep &= x >= lo
    if hi is not None:
        keep &= x <= hi
    return keep.astype(x.dtype)


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
        ga = g * b * a ** (b - 1.0)
    if ctx.needs[1]:  # PyTorch: d/db a**b is 0 where a == 0 and b >= 0 (log(a) taken at 1 there, then masked)
        zero, keep = host(_pow_zero_masks, a._data, b._data)  # always both masks: no data-dependent branch
        safe_a = tape.apply(where, (tape.Tensor._wrap(zero), const(np.ones((), a._data.dtype)), a))
        gb = g * ctx.output() * safe_a.log() * tape.Tensor._wrap(keep)
    return ga, gb


def _pow_zero_masks(a, b):
    """(a == 0 & b >= 0, its complement as a's dtype): where log(a) is replaced by 0 (a multiply by exactly 1.0
    elsewhere, so values are those of the unmasked formula)."""
    ad, bd = np.broadcast_arrays(a, b)
    zero = (ad == 0) & (bd >= 0)
    return zero, (~zero).astype(a.dtype)


def _extreme_vjp(greater):
    """VJP of maximum (greater) or minimum: the winner gets the gradient, ties give each side half (PyTorch)."""
    def vjp(ctx, g):
        share_a, share_b = _shares(*ctx.saved, greater)
        return g * share_a, g * share_b
    return vjp


def _shares(a, b, greater):
    """The two winner-share factors of maximum/minimum (d out/d a, d out/d b): on the tape under create_graph
    (kink masks), otherwise both from one host computation."""
    if tape.state.grad_enabled and (a.requires_grad or b.requires_grad):
        return kink_mask("share_a", a, b, args=(greater,)), kink_mask("share_b", a, b, args=(greater,))
    share_a, share_b = host(_winner_shares, a._data, b._data, greater)
    return tape.Tensor._wrap(share_a), tape.Tensor._wrap(share_b)


def _winner_shares(a, b, greater):
    win_a = (a > b) if greater else (a < b)
    tie = (a == b).astype(a.dtype) * 0.5
    return win_a.astype(a.dtype) + tie, (~win_a & (a != b)).astype(a.dtype) + tie


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
for _prim, _ufunc in ((neg, np.negative), (exp, np.exp), (log, np.log), (log1p, np.log1p), (sqrt, np.sqrt),
                      (sin, np.sin), (cos, np.cos), (tanh, np.tanh), (abs_, np.abs), (add, np.add),
                      (sub, np.subtract), (mul, np.multiply), (maximum, np.maximum), (minimum, np.minimum)):
    _prim.ufunc_into(_ufunc)
relu.definto(lambda out, x: np.maximum(x, 0, out=out))
sigmoid.definto(lambda out, x: _sigmoid_np(x, out))
tanh_grad.definto(lambda out, g, y: _tanh_grad_np(g, y, out))
sigmoid_grad.definto(lambda out, g, y: _sigmoid_grad_np(g, y, out))
div.ufunc_into(np.true_divide)
pow_.ufunc_into(np.power)


# ---------------- kink masks: a VJP's 0/1 factor that stays on the tape under create_graph ----------------
MASKS = {  # kind -> fn(*arrays, *args): the factor, from input values (reduce.py adds the amax/amin tie shares)
    "positive": lambda x: x > 0,
    "sign": np.sign,
    "inside": lambda x, lo, hi: _inside(x, lo, hi),
    "share_a": lambda a, b, greater: _winner_shares(a, b, greater)[0],
    "share_b": lambda a, b, greater: _winner_shares(a, b, greater)[1],
}


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
    return hosted(MASKS[kind], *[t._data for t in inputs], *args)


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


def _one_input(rule):
    """A unary primitive's JVP from `rule(x, out, tangent)`."""
    return lambda primals, tangents, out, attrs: tmap(lambda t: rule(primals[0], out, t), tangents[0])


neg.defjvp(same_op_jvp(neg))
exp.defjvp(_one_input(lambda x, y, t: mul(t, y)))
log.defjvp(_one_input(lambda x, y, t: t / x))
log1p.defjvp(_one_input(lambda x, y, t: t / (x + 1.0)))
sqrt.defjvp(_one_input(lambda x, y, t: t / (y * 2.0)))
erf.defjvp(_one_input(lambda x, y, t: t * (-(x * x)).exp() * (2.0 / math.sqrt(math.pi))))
sin.defjvp(_one_input(lambda x, y, t: t * x.cos()))
cos.defjvp(_one_input(lambda x, y, t: -(t * x.sin())))
tanh.defjvp(_one_input(lambda x, y, t: tanh_grad(t, y)))
sigmoid.defjvp(_one_input(lambda x, y, t: sigmoid_grad(t, y)))
relu.defjvp(_one_input(lambda x, y, t: t * kink_mask("positive", x)))
abs_.defjvp(_one_input(lambda x, y, t: t * kink_mask("sign", x)))
clamp.defjvp(lambda p, ts, out, attrs: tmap(lambda t: t * kink_mask("inside", p[0], args=attrs), ts[0]))
cast.defjvp(same_op_jvp(cast))


@tanh_grad.defjvp
def _(primals, tangents, out, attrs):
    (g, y), (tg, ty) = primals, tangents
    return tsum(tmap(lambda t: tanh_grad(t, y), tg), tmap(lambda t: t * g * y * -2.0, ty))


@sigmoid_grad.defjvp
def _(primals, tangents, out, attrs):
    (g, y), (tg, ty) = primals, tangents
    return tsum(tmap(lambda t: sigmoid_grad(t, y), tg), tmap(lambda t: t * g * (1.0 - y * 2.0), ty))


add.defjvp(lambda p, ts, out, attrs: tsum(*ts))
sub.defjvp(lambda p, ts, out, attrs: tsum(ts[0], tmap(neg, ts[1])))
mul.defjvp(lambda p, ts, out, attrs: tsum(tmap(lambda t: mul(t, p[1]), ts[0]), tmap(lambda t: mul(p[0], t), ts[1])))
div.defjvp(lambda p, ts, out, attrs: tsum(tmap(lambda t: div(t, p[1]), ts[0]),
                                          tmap(lambda t: neg(div(mul(t, out), p[1])), ts[1])))


@pow_.defjvp
def _(primals, tangents, out, attrs):
    (a, b), (ta, tb) = primals, tangents
    da = tmap(lambda t: t * b * a ** (b - 1.0), ta)
    if tb is None:
        return da
    zero, keep = host(_pow_zero_masks, a._data, b._data)
    safe_a = tape.apply(where, (tape.Tensor._wrap(zero), const(np.ones((), a._data.dtype)), a))
    return tsum(da, tb * out * safe_a.log() * tape.Tensor._wrap(keep))


maximum.defjvp(lambda p, ts, out, attrs: _shares_jvp(p, ts, True))
minimum.defjvp(lambda p, ts, out, attrs: _shares_jvp(p, ts, False))


def _shares_jvp(primals, tangents, greater):
    (ta, tb), (share_a, share_b) = tangents, _shares(*primals, greater)
    return tsum(tmap(lambda t: t * share_a, ta), tmap(lambda t: t * share_b, tb))


@where.defjvp
def _(primals, tangents, out, attrs):
    c, a, b = primals
    _, ta, tb = tangents
    cond = tape.Tensor._wrap(c._data)
    zero = const(np.zeros((), out._data.dtype))
    return tape.apply(where, (cond, zero if ta is None else ta, zero if tb is None else tb))


# ---------------- vmap: batching rules (all of these broadcast: ops/batching.py's elementwise rule) ----------------
def _mask_batch(arrays, batched, attrs):
    kind, args = attrs
    if kind.startswith("tie_"):  # a reduction's tie shares: the axis moves past the batch
        (x,) = arrays
        axis, keepdims = args
        return mask.forward(x, kind, (batching.shift_axes(axis, x.ndim - 1), keepdims))
    return mask.forward(*batching.align(arrays, batched), kind, args)


for _prim in (neg, exp, log, log1p, sqrt, erf, sin, cos, tanh, tanh_grad, sigmoid_grad, sigmoid, relu, abs_, clamp,
              add, sub, mul, div, pow_, maximum, minimum, where, cast):
    _prim.defbatch(batching.elementwise(_prim))
mask.defbatch(_mask_batch)

for _fn in (_pow_zero_masks, _winner_shares, _inside, *(MASKS[k] for k in ("positive", "sign", "inside", "share_a",
                                                                         "share_b"))):
    elementwise(_fn)
