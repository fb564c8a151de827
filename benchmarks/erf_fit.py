"""Derives the coefficient tables of tinygrad_lite.ops.erf_poly (erf) (run: python -m benchmarks.erf_fit; needs mpmath).

Each piece is a polynomial in a local variable t, fitted by least squares at Chebyshev nodes of the interval (close to
the minimax polynomial) against mpmath's erf/erfc at 50 digits, solved in the monomial basis in that precision.
The low-order coefficients are rounded to doubles one at a time and the rest refitted to what is left, so the
rounding of the terms that matter most is compensated by the next ones. Pieces (a = |x|):
  [0, 0.75):  erf(x) = x + x*P(x*x),             P(s) = erf(sqrt s)/sqrt s - 1
  [lo, hi) up to 2:  erf(a) = A + G(a - c),      A = erf(c) rounded, G(t) = erf(c + t) - A
  [lo, hi) from 2:  erf(a) = 1 - exp(-a*a) * R(a - c),  R(a) = erfc(a) * exp(a*a)
"""
import mpmath as mp

mp.mp.dps = 50

S_HI = mp.mpf("0.75")
MID = [(0.75, 1.25, 1.0, 14), (1.25, 2.0, 1.625, 16)]
TAIL = [(2.0, 3.0, 2.5, 13), (3.0, 4.0, 3.5, 11), (4.0, 6.0, 5.0, 10)]


def fit(f, lo, hi, deg, nfix=3):
    """Monomial coefficients c_0..c_deg (doubles) of a polynomial in t on [lo, hi] approximating f(t): least
    squares at 2*deg + 2 Chebyshev nodes (an even count: none at the centre)."""
    lo, hi = mp.mpf(lo), mp.mpf(hi)
    n = 2 * deg + 2
    ts = [(hi + lo) / 2 + (hi - lo) / 2 * mp.cos(mp.pi * (j + mp.mpf(1) / 2) / n) for j in range(n)]
    fs = [f(t) for t in ts]
    fixed = []
    for k in range(nfix + 1):
        rhs = mp.matrix([fv - sum(c * t ** i for i, c in enumerate(fixed)) for t, fv in zip(ts, fs)])
        sol = mp.qr_solve(mp.matrix([[t ** i for i in range(k, deg + 1)] for t in ts]), rhs)[0]
        if k == nfix:
            return [float(c) for c in fixed] + [float(sol[i]) for i in range(deg + 1 - k)]
        fixed.append(mp.mpf(float(sol[0])))


def s_poly(deg=10):
    def P(s):
        if s == 0:
            return 2 / mp.sqrt(mp.pi) - 1
        r = mp.sqrt(s)
        return mp.erf(r) / r - 1
    return fit(P, 0, S_HI ** 2, deg)


def mid_poly(lo, hi, c, deg):
    A = float(mp.erf(c))
    return A, fit(lambda t: mp.erf(c + t) - A, lo - c, hi - c, deg)


def tail_poly(lo, hi, c, deg):
    return fit(lambda t: mp.erfc(c + t) * mp.exp((c + t) ** 2), lo - c, hi - c, deg)


if __name__ == "__main__":
    print("S =", s_poly())
    for lo, hi, c, deg in MID:
        print("M", (lo, hi, c), mid_poly(lo, hi, c, deg))
    for lo, hi, c, deg in TAIL:
        print("L", (lo, hi, c), tail_poly(lo, hi, c, deg))
