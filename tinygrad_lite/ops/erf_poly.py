"""erf as NumPy passes: piecewise polynomials in float64 (within 1 ulp of math.erf), for the `erf` primitive in
unary.py (exact GELU's). A few elements are computed one at a time in Python floats with the same operations (the same
bits); larger arrays in cache-sized blocks, with per-thread work arrays (workspace.py)."""
import math

import numpy as np

from .workspace import scratch


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
