"""Unary math and activation primitives (exp, log, log1p, sqrt, erf, sin, cos, tanh, sigmoid, relu, abs) and the
fused gradients of tanh and sigmoid (tanh_grad, sigmoid_grad)."""
import math

import numpy as np

from . import batching
from .elementwise import kink_mask, mul, tmap, tsum
from .registry import primitive
from .samplers import unary
from .erf_poly import _erf_np


def _kink_at(points):
    def kink(arrays, attrs):
        x = arrays[0]
        return np.min([np.abs(x - p) for p in points], axis=0)
    return kink


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


@primitive("erf", sample=unary(), reads=("inputs",))
def erf(x):
    # NumPy has no erf: piecewise polynomials in float64 passes (erf_poly.py; within 1 ulp of math.erf, ~98% equal
    # to it; float32 results equal float32(math.erf(x)) for every float32 in [-4, 4])
    return _erf_np(x)


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


_ONES = {}


def _one(dtype):
    """A 0-d 1 of `dtype` for the passes in place: NumPy converts a Python 1 again on every call (~0.5 us, a third
    of a (16,) pass), not an operand of the output's own dtype (the same loop, the same bits)."""
    one = _ONES.get(dtype)
    if one is None:
        one = _ONES[dtype] = np.ones((), dtype)
    return one


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
    np.subtract(_one(r.dtype), r, out=r)
    return np.multiply(g, r, out=r)


def _sigmoid_grad_np(g, y, out=None):
    """g * (1 - y) * y, PyTorch's order, in one array instead of three."""
    r = _fused(out, g, y)
    if r is None:
        return _write(out, g * (1 - y) * y)
    np.subtract(_one(r.dtype), y, out=r)
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
    # one array, except into a 0-d `out` (NumPy's slow path for an output that is also an input: see _fused_into).
    with np.errstate(over="ignore"):
        if x.dtype.kind != "f" or (x.size < _FUSE_MIN if out is None else not out.ndim):
            return _write(out, 1.0 / (1.0 + np.exp(-x)))
        r = np.negative(x, out=out)
        np.exp(r, out=r)
    one = _one(r.dtype)
    np.add(r, one, out=r)
    return np.divide(one, r, out=r)


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


# ---------------- `into` rules (tl.compile writes these forwards into planned buffers) ----------------
for _prim, _ufunc in ((exp, np.exp), (log, np.log), (log1p, np.log1p), (sqrt, np.sqrt), (sin, np.sin), (cos, np.cos),
                      (tanh, np.tanh), (abs_, np.abs)):
    _prim.ufunc_into(_ufunc)
relu.definto(lambda out, x: np.maximum(x, 0, out=out))
erf.definto(lambda out, x: _erf_np(x, out))
sigmoid.definto(lambda out, x: _sigmoid_np(x, out))


def _fused_into(formula, y_low):
    """The into rule of a fused gradient `formula(g, y, out)`. A 0-d result is computed on NumPy scalars and stored:
    NumPy runs each operation on 0-d arrays through its array machinery, and an output that is also an input through
    its slow path (W5's tanh_grad: 2.4 us in place, 0.5 us on scalars; the same IEEE operations, the same bits).
    Scalars only for a finite g and y in [y_low, 1] (tanh's, sigmoid's outputs), where no operation can overflow or
    be invalid: a floating-point warning (inf * 0) reads 'in scalar multiply' there, so such inputs — and an error
    raised under np.errstate(under='raise') — take eager's expression on the 0-d arrays, which warns as eager does.
    (An underflow warning enabled with np.errstate(under='warn') still names the scalar operation.)"""
    def into(out, g, y):
        if out.ndim:
            return formula(g, y, out)
        gs, ys = g[()], y[()]
        if math.isfinite(gs) and y_low <= float(ys) <= 1.0:  # (a NaN y fails the comparison)
            try:
                out[()] = formula(gs, ys)
                return out
            except FloatingPointError:
                pass
        out[()] = formula(g, y)
        return out
    return into


tanh_grad.definto(_fused_into(_tanh_grad_np, -1.0))
sigmoid_grad.definto(_fused_into(_sigmoid_grad_np, 0.0))


# ---------------- forward mode: each primitive's JVP (tangents in, the output's tangent out) ----------------
def _one_input(rule):
    """A unary primitive's JVP from `rule(x, out, tangent)`."""
    return lambda primals, tangents, out, attrs: tmap(lambda t: rule(primals[0], out, t), tangents[0])


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


@tanh_grad.defjvp
def _(primals, tangents, out, attrs):
    (g, y), (tg, ty) = primals, tangents
    return tsum(tmap(lambda t: tanh_grad(t, y), tg), tmap(lambda t: t * g * y * -2.0, ty))


@sigmoid_grad.defjvp
def _(primals, tangents, out, attrs):
    (g, y), (tg, ty) = primals, tangents
    return tsum(tmap(lambda t: sigmoid_grad(t, y), tg), tmap(lambda t: t * g * (1.0 - y * 2.0), ty))


# ---------------- vmap: batching rules (all of these broadcast: ops/batching.py's elementwise rule) ----------------
for _prim in (exp, log, log1p, sqrt, erf, sin, cos, tanh, tanh_grad, sigmoid_grad, sigmoid, relu, abs_):
    _prim.defbatch(batching.elementwise(_prim))
