"""Compare analytical and numerical Jacobians (|a - n| <= atol + rtol * |n|, as PyTorch) and sort the failing
elements into errors and elements near a kink.

A failing element is near a kink when moving its input element by one step crosses or touches the kink of a
recorded primitive that declares one (relu, abs, clamp, maximum/minimum, amax/amin: its distance to the kink at
the base point is no more than the change the step causes), or, with no declared kink, when its one-sided
differences disagree, the analytical value lies between them, and their disagreement stays put at twice the step
(a jump in slope) instead of doubling (curvature), or the one-sided difference that does not reach the kink equals the
analytical value at one and two steps: an undeclared kink, such as a `where` on a comparison.

Near a kink, autodiff's value is a convention (relu'(0) = 0, ties share) and compositions such as
relu(x) - relu(-x) legitimately differ from the function's slope, so a kink cannot be judged element by element.
Rigor comes from the caller instead: whenever kinks are found, every tape entry's backward is checked alone at its
recorded inputs (kink elements left out), and a wrong one turns the kinks back into errors."""
import numpy as np

from ..autograd.recorder import reachable
from .jacobian import perturbed
from ..autograd.grad_mode import enable_grad

MAX_KINK_COLUMNS = 64  # columns whose kink is located by re-running; beyond this the base tape alone decides
MAX_ELEMENTS = 5000  # failing elements kept per (output, input) pair (the worst); the rest are only counted


class Element:
    """One compared Jacobian element (or fast-mode projection)."""
    __slots__ = ("out_idx", "in_idx", "analytical", "numerical", "left", "right", "allowed", "kink", "jump")

    def __init__(self, out_idx, in_idx, a, n, left, right, allowed):
        self.out_idx, self.in_idx = out_idx, in_idx
        self.analytical, self.numerical, self.left, self.right, self.allowed = a, n, left, right, allowed
        self.kink = None
        self.jump = False  # one-sided slopes differ and the analytical value lies between them

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
        self.dropped = 0  # failing elements beyond MAX_ELEMENTS, counted as errors

    @property
    def n_errors(self):
        return len(self.errors) + self.dropped


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
    """PairResults holding the failing elements as errors; attribute_kinks moves those near a kink."""
    results = []
    for o, (pos, out) in enumerate(outs):
        name = target.output_name(pos, len(outs))
        for li, leaf in enumerate(target.leaves):
            a, n, s = ana[o][li], num[o][li], asym[o][li]
            bad, allowed = _failing(a, n, atol, rtol)
            if not bad.any():
                continue
            cand, left, right = _kink_candidate(a, n, s, atol, rtol)
            pr = PairResult(pos, name, out._data.shape, li, leaf, a.size)
            pr.o = o
            pr.out_requires_grad = out.requires_grad
            flat = np.flatnonzero(bad)
            if flat.size > MAX_ELEMENTS:
                with np.errstate(invalid="ignore"):
                    excess = np.nan_to_num((np.abs(a - n) - allowed).ravel()[flat], nan=np.inf)
                pr.dropped = flat.size - MAX_ELEMENTS
                flat = flat[np.argpartition(-excess, MAX_ELEMENTS)[:MAX_ELEMENTS]]
            for k, j in zip(*np.unravel_index(flat, bad.shape)):
                el = Element(np.unravel_index(k, out._data.shape), np.unravel_index(j, leaf.tensor.shape),
                             float(a[k, j]), float(n[k, j]), float(left[k, j]), float(right[k, j]),
                             float(allowed[k, j]))
                el.jump = bool(cand[k, j])
                pr.errors.append(el)
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
            pr = PairResult(pos, name, out._data.shape, li, leaf, 1, fast=True, scale=adj)
            pr.o = o
            pr.out_requires_grad = out.requires_grad
            el = Element((), (), float(a), float(n), float(left), float(right), float(allowed))
            el.jump = bool(cand)
            pr.errors.append(el)
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
            d = np.asarray(fn([t._data for t in e.saved], e.attrs), dtype=np.float64)
        except Exception:  # a kink function that cannot handle these inputs: treat as no information
            continue
        prof.append((e, d))
    return prof


class _Undeclared:
    """Marks a kink that no recorded primitive declares (a `where` on a comparison, a custom Function, ...)."""
    name = "undeclared kink"
    source = None
    module = None

    def __repr__(self):
        return "<undeclared kink>"


UNDECLARED = _Undeclared()


def _eval_at(target, leaf, idx, delta):
    """(float64 outputs, kink profile) with leaf[idx] moved by delta."""
    with perturbed(leaf.tensor._data, idx, delta):
        with enable_grad():
            outs = [o for _, o in target.outputs()]
        return [np.array(o._data, dtype=np.float64) for o in outs], kink_profile(outs)


def _crossed(base, plus, minus):
    """The first base entry whose kink the step crosses or touches, or None; False when tapes do not align."""
    if len(base) != len(plus) or len(base) != len(minus):
        return False
    for (e, d0), (ep, dp), (em, dm) in zip(base, plus, minus):
        if e.prim is not ep.prim or e.prim is not em.prim or d0.shape != dp.shape or d0.shape != dm.shape:
            return False
        with np.errstate(invalid="ignore"):  # inf - inf where a kink is absent (a single-element amax)
            move = np.nan_to_num(np.maximum(np.abs(dp - d0), np.abs(dm - d0)), nan=0.0)
        tiny = 8 * np.finfo(np.float64).eps * (1 + np.abs(d0))
        if np.any((move > 0) & (d0 <= 1.5 * move + tiny)):
            return e
    return None


class _Column:
    """What re-running at one perturbed input element tells: the declared kink crossed, and the asymmetry of the
    one-sided differences at twice the step (a slope jump keeps it; smooth curvature doubles it)."""

    def __init__(self, target, leaf, idx, base_profile, base_values):
        h = leaf.eps
        plus, prof_p = _eval_at(target, leaf, idx, h)
        minus, prof_m = _eval_at(target, leaf, idx, -h)
        self.entry = _crossed(base_profile, prof_p, prof_m) if base_profile else None
        plus2, _ = _eval_at(target, leaf, idx, 2 * h)
        minus2, _ = _eval_at(target, leaf, idx, -2 * h)
        self.right2 = [((p - b) / (2 * h)).ravel() for p, b in zip(plus2, base_values)]  # one-sided, twice the step
        self.left2 = [((b - m) / (2 * h)).ravel() for m, b in zip(minus2, base_values)]
        self.asym2 = [r - le for r, le in zip(self.right2, self.left2)]

    def one_side_straight(self, o, k, el):
        """A kink between the input and one step away: the one-sided difference that does not reach it agrees with
        the analytical value and is the same at twice the step (a straight piece), while the other side bends. (A
        kink at 2/3 to 1 step away grows the asymmetry by more than smooth curvature does, so the test below it,
        which expects a jump to stay put at twice the step, misses it; on a smooth function a failing element never
        has an analytical value equal to a one-sided slope that stays put.)"""
        tol = el.allowed
        return any(abs(el.analytical - near) <= tol and abs(far[o][k] - near) <= tol
                   for near, far in ((el.right, self.right2), (el.left, self.left2)))


def attribute_kinks(target, results, base_outputs, base_values, radius_factor=1e3):
    """Move failing elements that are near a kink (see the module docstring) from `errors` to `kinks`."""
    base = kink_profile(base_outputs)
    nearest = {}
    declared_possible = base and any(_nearest_within(base, radius_factor * leaf.eps) is not None
                                     for leaf in target.leaves)
    cache = {}
    budget = MAX_KINK_COLUMNS
    for pr in results:
        errors = []
        for el in pr.errors:
            key = (pr.leaf_index, el.in_idx)
            if key not in cache and budget > 0 and not pr.fast and (declared_possible or el.jump):
                budget -= 1
                cache[key] = _Column(target, pr.leaf, el.in_idx, base, base_values)
            col = cache.get(key)
            entry = None
            if col is not None and col.entry is not False:
                entry = col.entry
            elif el.jump and base:  # tapes differ (value-dependent code), fast mode or over budget
                if pr.leaf_index not in nearest:
                    nearest[pr.leaf_index] = _nearest_within(base, radius_factor * pr.leaf.eps)
                entry = nearest[pr.leaf_index]
            if entry is None and col is not None and el.jump:
                a1 = el.right - el.left
                k = np.ravel_multi_index(el.out_idx, pr.out_shape) if pr.out_shape else 0
                if a1 != 0 and 0.4 <= col.asym2[pr.o][k] / a1 <= 1.6 or col.one_side_straight(pr.o, k, el):
                    entry = UNDECLARED
            if entry is None:
                errors.append(el)
            else:
                el.kink = entry
                pr.kinks.append(el)
        pr.errors = errors
    return results


def _nearest_within(profile, radius):
    best = None
    for e, d in profile:
        m = float(np.min(d)) if d.size else np.inf
        if m <= radius and (best is None or m < best[1]):
            best = (e, m)
    return None if best is None else best[0]
