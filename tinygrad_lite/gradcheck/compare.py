"""Compare analytical and numerical Jacobians (|a - n| <= atol + rtol * |n|, as PyTorch) and sort the failing
elements into errors and elements near a kink.

An element is near a kink only when all three hold: (1) its one-sided differences disagree (the function is not
differentiable across the step), (2) the analytical value lies between the left and right slopes (it is a valid
one-sided derivative or subgradient there), and (3) a recorded primitive with a declared kink (relu, abs, clamp,
maximum/minimum, amax/amin) is crossed or touched when that input element moves by one step: its distance to the
kink at the base point is no more than the distance change the step causes. A wrong backward fails (2) or, on a
smooth function, (1), so it is still reported as an error."""
import numpy as np

from ..autograd.recorder import reachable
from .jacobian import perturbed
from ..autograd.grad_mode import enable_grad

MAX_KINK_COLUMNS = 64  # columns whose kink is located by re-running; beyond this the base tape alone decides


class Element:
    """One compared Jacobian element (or fast-mode projection)."""
    __slots__ = ("out_idx", "in_idx", "analytical", "numerical", "left", "right", "allowed", "kink")

    def __init__(self, out_idx, in_idx, a, n, left, right, allowed):
        self.out_idx, self.in_idx = out_idx, in_idx
        self.analytical, self.numerical, self.left, self.right, self.allowed = a, n, left, right, allowed
        self.kink = None

    @property
    def abs_err(self):
        return abs(self.analytical - self.numerical)

    @property
    def rel_err(self):
        n = abs(self.numerical)
        return self.abs_err / n if n > 0 else (0.0 if self.abs_err == 0 else float("inf"))

    @property
    def excess(self):
        e = self.abs_err - self.allowed
        return e if e == e else float("inf")  # NaN sorts as worst


class PairResult:
    """Errors and near-kink elements of one (output, leaf) pair; `fast` when these are projections vᵀJu."""

    def __init__(self, out_pos, out_name, out_shape, leaf_index, leaf, total, fast=False, scale=None):
        self.out_pos, self.out_name, self.out_shape = out_pos, out_name, out_shape
        self.leaf_index, self.leaf = leaf_index, leaf
        self.total, self.fast, self.scale = total, fast, scale
        self.errors, self.kinks = [], []
        self.out_requires_grad = True


def _failing(a, n, atol, rtol):
    allowed = atol + rtol * np.abs(n)
    with np.errstate(invalid="ignore"):
        bad = ~(np.abs(a - n) <= allowed)
    return bad, allowed


def _kink_candidate(a, n, asym, atol, rtol):
    left, right = n - asym / 2, n + asym / 2
    tol = atol + rtol * np.maximum(np.abs(left), np.abs(right))
    lo, hi = np.minimum(left, right) - tol, np.maximum(left, right) + tol
    with np.errstate(invalid="ignore"):
        return (np.abs(asym) > tol) & (a >= lo) & (a <= hi), left, right


def compare_full(target, outs, ana, num, asym, atol, rtol):
    """PairResults with failing elements split into errors and kink candidates (not yet attributed)."""
    results = []
    for o, (pos, out) in enumerate(outs):
        name = target.output_name(pos, len(outs))
        for li, leaf in enumerate(target.leaves):
            a, n, s = ana[o][li], num[o][li], asym[o][li]
            bad, allowed = _failing(a, n, atol, rtol)
            if not bad.any():
                continue
            cand, left, right = _kink_candidate(a, n, s, atol, rtol)
            pr = PairResult(pos, name, out.data.shape, li, leaf, a.size)
            pr.out_requires_grad = out.requires_grad
            for k, j in zip(*np.nonzero(bad)):
                el = Element(np.unravel_index(k, out.data.shape), np.unravel_index(j, leaf.tensor.shape),
                             float(a[k, j]), float(n[k, j]), float(left[k, j]), float(right[k, j]),
                             float(allowed[k, j]))
                (pr.kinks if cand[k, j] else pr.errors).append(el)
            results.append(pr)
    return results


def compare_fast(target, outs, ana, num, asym, sums, atol, rtol):
    results = []
    su, sv = sums
    for o, (pos, out) in enumerate(outs):
        name = target.output_name(pos, len(outs))
        for li, leaf in enumerate(target.leaves):
            adj = atol * su[li] * sv[o]  # PyTorch: atol scaled by vᵀ(ones)u
            a, n, s = ana[o, li], num[o, li], asym[o, li]
            bad, allowed = _failing(a, n, adj, rtol)
            if not bad:
                continue
            cand, left, right = _kink_candidate(a, n, s, adj, rtol)
            pr = PairResult(pos, name, out.data.shape, li, leaf, 1, fast=True, scale=adj)
            pr.out_requires_grad = out.requires_grad
            el = Element((), (), float(a), float(n), float(left), float(right), float(allowed))
            (pr.kinks if cand else pr.errors).append(el)
            results.append(pr)
    return results


# ---------------- kink attribution ----------------
def kink_profile(outputs):
    """[(entry, distance array)] for the recorded entries with a declared kink, in recording order."""
    prof = []
    for e in reachable(outputs):
        fn = getattr(e.prim, "kink", None)
        if fn is None or e.saved is None:
            continue
        try:
            d = np.asarray(fn([t.data for t in e.saved], e.attrs), dtype=np.float64)
        except Exception:  # a kink function that cannot handle these inputs: treat as no information
            continue
        prof.append((e, d))
    return prof


def _profile_at(target, leaf, idx, delta):
    with perturbed(leaf.tensor.data, idx, delta):
        with enable_grad():
            outs = [o for _, o in target.outputs()]
        return kink_profile(outs)


def _crossed(base, plus, minus):
    """The first base entry whose kink the step crosses or touches, or None; False when tapes do not align."""
    if len(base) != len(plus) or len(base) != len(minus):
        return False
    for (e, d0), (ep, dp), (em, dm) in zip(base, plus, minus):
        if e.prim is not ep.prim or e.prim is not em.prim or d0.shape != dp.shape or d0.shape != dm.shape:
            return False
        move = np.maximum(np.abs(dp - d0), np.abs(dm - d0))
        tiny = 8 * np.finfo(np.float64).eps * (1 + np.abs(d0))
        if np.any((move > 0) & (d0 <= 1.5 * move + tiny)):
            return e
    return None


def attribute_kinks(target, results, base_outputs, radius_factor=1e3):
    """Confirm each kink candidate by locating the crossed primitive; unconfirmed candidates become errors."""
    base = kink_profile(base_outputs)
    cache = {}
    budget = MAX_KINK_COLUMNS
    for pr in results:
        keep = []
        for el in pr.kinks:
            entry = None
            if base:
                key = (pr.leaf_index, el.in_idx)
                if key not in cache:
                    if budget > 0 and not pr.fast:
                        budget -= 1
                        eps = pr.leaf.eps
                        cache[key] = _crossed(base, _profile_at(target, pr.leaf, el.in_idx, eps),
                                              _profile_at(target, pr.leaf, el.in_idx, -eps))
                    else:
                        cache[key] = False
                entry = cache[key]
                if entry is False:  # tapes differ (value-dependent code) or over budget: the base tape decides
                    entry = _nearest_within(base, radius_factor * pr.leaf.eps)
            if entry is None:
                pr.errors.append(el)
            else:
                el.kink = entry
                keep.append(el)
        pr.kinks = keep
    return results


def _nearest_within(profile, radius):
    best = None
    for e, d in profile:
        m = float(np.min(d)) if d.size else np.inf
        if m <= radius and (best is None or m < best[1]):
            best = (e, m)
    return None if best is None else best[0]
