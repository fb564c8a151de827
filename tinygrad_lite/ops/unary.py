"""Unary math and activation primitives (exp, log, log1p, sqrt, erf, sin, cos, tanh, sigmoid, relu, abs) and the
fused gradients of tanh and sigmoid (tanh_grad, sigmoid_grad)."""
import math

import numpy as np

from . import batching
from .elementwise import kink_mask, mul, tmap, tsum
from .registry import primitive
from .samplers import unary
from .workspace import scratch


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


# erf: coefficients from benchmarks/erf_fit.py (least-squares fits at Chebyshev nodes against mpmath's erf/erfc at
# 50 digits, low-order coefficients rounded one at a time and the rest refitted; see its docstring).
_ERF_SMALL_END = 0.5625  # x*x below it (|x| < 0.75): x + x*P(x*x)
_ERF_SMALL = (
    0.1283791670955126, -0.3761263890318389, 0.11283791670959394, -0.02686617064563087, 0.005223977627094059,
    -0.0008548326869461779, 0.00012055314433432366, -1.4924769662421508e-05, 1.6438787718116086e-06,
    -1.6004155078937328e-07, 1.1689692201088816e-08)
_ERF_PIECES = (  # (end of the piece in |x|, centre c, erf(c) rounded or None for the form with exp, coefficients
    #               of the polynomial in |x| - c, constant first)
    (1.25, 1.0, 0.8427007929497149, (
        -2.478645715164044e-17, 0.41510749742059466, -0.4151074974205947, 0.13836916580688277, 0.06918458290343865,
        -0.06918458290602461, 0.004612305525951949, 0.015154718336408253, -0.00477703065806899, -0.0018851947646558655,
        0.0012262851443071688, 8.565074357480807e-05, -0.00020000649241275691, 1.7414960976807728e-05,
        2.3207072841928744e-05)),
    (2.0, 1.625, 0.9784437332399837, (
        -1.7027705606614487e-17, 0.08047225902251118, -0.13076742091158064, 0.11484061964670368, -0.049718863159091,
        -0.00213492484008453, 0.014414781131103368, -0.006184261539335072, -0.0005765254306149912,
        0.0014106856094017386, -0.0003559792248429618, -0.00012567154688585672, 8.797020289831222e-05,
        -4.209727363468335e-06, -1.0609671218829288e-05, 2.575096957039647e-06, 6.672012215534955e-07)),
    (3.0, 2.5, None, (
        0.21080636406114361, -0.07434734678979472, 0.02493799708664481, -0.008001569382093726, 0.002467036816461914,
        -0.0007335909374768955, 0.00021101980619652738, -5.886895829817113e-05, 1.59620584572821e-05,
        -4.214358169772883e-06, 1.0840267845506829e-06, -2.7262899437744257e-07, 7.058044958157358e-08,
        -1.7023247711756782e-08)),
    (4.0, 3.5, None, (
        0.15529365560889383, -0.04132357783325188, 0.010661133192644662, -0.002673074439712499, 0.0006526863206416095,
        -0.00015546891602585594, 3.618181051718162e-05, -8.238016695051772e-06, 1.8363719501872595e-06,
        -4.015395365967615e-07, 8.910115802669618e-08, -1.8813152880101196e-08)),
    (6.0, 5.0, None, (
        0.11070463773301129, -0.02133278977242639, 0.004040688913056137, -0.0007528966619096981, 0.00013810237300371632,
        -2.495472802470189e-05, 4.444537692243795e-06, -7.787170581232831e-07, 1.3490473424077355e-07,
        -2.503214137676053e-08, 4.25124413406431e-09)),
)


def _nd(v):
    """Python floats as 0-d float64 arrays, for the passes in place: NumPy converts a Python float operand again on
    every call (half the time of a small array's pass)."""
    return np.array(v) if not isinstance(v, tuple) else tuple(_nd(u) for u in v)


_ERF_SMALL_ND = _nd(_ERF_SMALL)
_ERF_PIECES_ND = tuple((_nd(end), _nd(c), None if base is None else _nd(base), _nd(coefs))
                       for end, c, base, coefs in _ERF_PIECES)
_ERF_ONE, _ERF_SMALL_END_ND, _ERF_CLAMP = _nd(1.0), _nd(_ERF_SMALL_END), _nd(_ERF_PIECES[-1][0])


def _horner(coefs, t, r):
    """The polynomial with `coefs` (constant first) at t, evaluated in r's memory."""
    mul, add = np.multiply, np.add  # (`out` given positionally: a keyword costs a small array's call ~15%)
    mul(t, coefs[-1], r)
    for c in coefs[-2:0:-1]:
        add(r, c, r)
        mul(r, t, r)
    return add(r, coefs[0], r)


def _erf_piece(k, a, y, work):
    """Piece k of _ERF_PIECES at a (1-d) into y; `work`: an array of a's size."""
    end, c, base, coefs = _ERF_PIECES_ND[k]
    r = _horner(coefs, np.subtract(a, c, out=work), y)
    if base is None:  # 1 - exp(-a*a) * R: the rounding of a*a (a >= 2) moves the result by < 0.03 ulp
        e = np.multiply(a, a, out=work)
        np.exp(np.negative(e, out=e), out=e)
        return np.subtract(_ERF_ONE, np.multiply(r, e, out=r), out=r)
    return np.add(r, base, out=r)


def _erf_tail(a, y, work, k=0):
    """erf(a) into y for a 1-d `a` >= 0.75 (inf included, no NaN; clamped in place) from piece k of _ERF_PIECES on.
    When few elements lie past piece k (activations: most of them are in the first), its polynomial runs on all and
    those few are done again from the next piece; otherwise each piece gets its own elements."""
    if k == 0:
        np.minimum(a, _ERF_CLAMP, out=a)  # (erf rounds to 1 from |x| = 5.92: the last piece gives 1 at 6)
    past = np.flatnonzero(a >= _ERF_PIECES_ND[k][0]) if k + 1 < len(_ERF_PIECES) else a[:0]
    if past.size * 4 > a.size:
        inside = np.flatnonzero(a < _ERF_PIECES_ND[k][0])
        if inside.size:
            v = a.take(inside)
            y[inside] = _erf_piece(k, v, np.empty_like(v), np.empty_like(v))  # (indexing: 2x faster than put)
    else:
        _erf_piece(k, a, y, work)
    if past.size > _ERF_SCALAR_MAX:
        rest = a.take(past)
        y[past] = _erf_tail(rest, np.empty_like(rest), np.empty_like(rest), k + 1)
    elif past.size:  # (a few: the next pieces' ~30 NumPy calls each cost more; the same operations)
        y[past] = [_erf_scalar(v) for v in a[past].tolist()]
    return y


def _erf_scalar(v):
    """_erf_np's operations, in the same order, on one Python float: the same bits (a few elements: the 30 to 100
    NumPy calls of the passes cost more)."""
    s = v * v
    if not s >= _ERF_SMALL_END:  # (NaN too)
        return v + _horner_scalar(_ERF_SMALL, s) * v
    a = min(abs(v), _ERF_PIECES[-1][0])
    for end, c, base, coefs in _ERF_PIECES:
        if a < end or end == _ERF_PIECES[-1][0]:
            break
    r = _horner_scalar(coefs, a - c)
    r = 1.0 - r * float(np.exp(-(a * a))) if base is None else r + base
    return math.copysign(r, v)


def _horner_scalar(coefs, t):
    r = t * coefs[-1]
    for c in coefs[-2:0:-1]:
        r = (r + c) * t
    return r + coefs[0]


_ERF_SCALAR_MAX = 32  # elements: up to here one at a time in Python floats (~1 us each; the passes cost 30-80 us)
_ERF_BLOCK = 32768  # elements: a larger array in blocks of this size, so the ~40 passes stay in the L2 cache (1M: -30%)


def _erf_np(x, out=None):
    """erf elementwise, computed in float64 (within 1 ulp of math.erf; a float32 or float16 input's result is rounded
    once to its dtype), into `out` when given (which may be x itself). Work arrays are this thread's scratch: the
    passes over the whole array allocate nothing but the positions of the elements with |x| >= 0.75."""
    if out is None:
        out = np.empty(x.shape, x.dtype if x.dtype.kind == "f" else np.float64)
    n = x.size
    if n > _ERF_BLOCK and x.flags.c_contiguous and out.flags.c_contiguous:
        xf, of = x.reshape(-1), out.reshape(-1)  # (out being x: each block is read before it is written)
        for i in range(0, n, _ERF_BLOCK):
            _erf_block(xf[i:i + _ERF_BLOCK], of[i:i + _ERF_BLOCK])
        return out
    return _erf_block(x, out)


def _erf_block(x, out):
    shape, n = x.shape, x.size
    if n <= _ERF_SCALAR_MAX:
        flat = out.reshape(-1) if out.flags.c_contiguous else None
        for i, v in enumerate(x.flat):
            if flat is None:
                out[np.unravel_index(i, shape)] = _erf_scalar(float(v))
            else:
                flat[i] = _erf_scalar(float(v))
        return out
    with np.errstate(over="ignore", invalid="ignore"):  # (P past |x| 0.75 may overflow: those results are replaced)
        if x.dtype == np.float64:
            xf = x
        else:
            xf = scratch("erf.x", shape, np.float64)
            np.copyto(xf, x, casting="unsafe")
        s = np.multiply(xf, xf, out=scratch("erf.s", shape, np.float64))
        big = np.flatnonzero(np.greater_equal(s, _ERF_SMALL_END_ND, out=scratch("erf.big", shape, np.bool_)))
        nb = big.size
        if nb:  # (read before `out` is written: it may be x)
            xs = np.take(xf, big, out=scratch("erf.xs", (n,), np.float64)[:nb], mode="clip")
        p = _horner(_ERF_SMALL_ND, s, scratch("erf.p", shape, np.float64))
        np.add(xf, np.multiply(p, xf, out=p), out=out)  # x + x*P(x*x): odd bit for bit, -0 stays -0
    if nb:
        a = np.abs(xs, out=s.reshape(-1)[:nb])  # (s and p are free again: the tail's work arrays)
        y = _erf_tail(a, p.reshape(-1)[:nb], scratch("erf.work", (n,), np.float64)[:nb])
        y = np.copysign(y, xs, out=y)
        if out.flags.c_contiguous:
            out.reshape(-1)[big] = y  # (indexing: 2x faster than put)
        else:
            out.put(big, y)
    return out


@primitive("erf", sample=unary(), reads=("inputs",))
def erf(x):
    # NumPy has no erf: the piecewise polynomials above, in float64 passes (within 1 ulp of math.erf, ~98% equal to
    # it; float32 results equal float32(math.erf(x)) for every float32 in [-4, 4])
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
