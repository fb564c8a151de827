"""Folding loops written inside one module call (nn.LSTM's time loop) or in user code: a run of primitives that
repeats with period P is drawn as P nodes `name xN` when its iterations form a recurrence (iteration k+1 reads
iteration k's outputs; body of 2+ primitives) or a map (every iteration reads the same outside inputs, e.g.
slicing a sequence into time steps).

The search works on the sequence of (primitive, output shape) codes of the entries drawn one by one in one
module call, in recording order, with NumPy comparisons per candidate period (no quadratic Python loops).
"""
import numpy as np

from ..autograd.recorder import Entry

MAX_PERIOD = 128  # longest loop body looked for (an LSTM step is ~20 primitives)
MAX_SEARCHES = 32  # ranges searched per module call, which bounds the time on long irregular tapes


def periodic_runs(seq, fold_all, folded=None):
    """Non-overlapping (start, period, repeats) runs of `seq` (entries) to fold. By default a run needs 3
    repeats and must be a recurrence with a body of 2+ primitives or a map (see the module docstring), so a sum
    of several terms (add, add, add) stays as it is; fold_all folds any run repeated twice. `folded` maps
    entries already folded to (node key, iteration), so a map over a folded loop's iterations folds too."""
    min_p, min_reps = 1, (2 if fold_all else 3)
    table = {}
    codes = np.fromiter((table.setdefault((e.prim.name, e.output_shape), len(table)) for e in seq),
                        dtype=np.int64, count=len(seq))
    found, work, budget = [], [(0, len(seq))], MAX_SEARCHES
    while work and budget:
        lo, hi = work.pop()
        if hi - lo < min_p * min_reps:
            continue
        budget -= 1
        best = _best_run(codes, lo, hi, min_p, min_reps)
        if best is None:
            continue
        a, p, reps = best
        if fold_all or (p > 1 and _recurrent(seq, a, p, reps, folded or {})) or \
                _parallel(seq, a, p, reps, folded or {}):
            found.append(best)
        work.append((lo, a))
        work.append((a + p * reps, hi))
    found.sort()
    return found


def _best_run(codes, lo, hi, min_p, min_reps):
    best, best_cover = None, 0
    for p in range(min_p, min(MAX_PERIOD, (hi - lo) // min_reps) + 1):
        eq = codes[lo + p:hi] == codes[lo:hi - p]
        if not eq.any():
            continue
        edges = np.diff(np.concatenate(([0], eq.view(np.int8), [0])))
        starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        k = int(np.argmax(ends - starts))
        reps = (int(ends[k] - starts[k]) + p) // p
        if reps < min_reps or reps * p <= best_cover:
            continue
        a = lo + int(starts[k])
        body = codes[a:a + p]
        if any(np.array_equal(body[d:], body[:-d]) for d in range(1, p) if p % d == 0):
            continue  # a repetition of a shorter body (the chain x2 is found as x1, or not at all)
        best, best_cover = (a, p, reps), reps * p
    return best


def reads_back(entries, since, visit):
    """Walk upstream from the parents of `entries` over entries recorded at or after `since` (iteratively, each
    once). `visit(q)` returns True (found: stop), "expand" (continue into q's parents) or None (stop at q)."""
    seen = set()
    stack = [q for e in entries for q in e.parents if q.__class__ is Entry]
    while stack:
        q = stack.pop()
        if q in seen or q.seq < since:
            continue
        seen.add(q)
        verdict = visit(q)
        if verdict is True:
            return True
        if verdict == "expand":
            stack.extend(r for r in q.parents if r.__class__ is Entry)
    return False


def _recurrent(seq, a, p, reps, folded):
    """Does iteration k read iteration k-1's outputs, directly or through folded nodes (a cell module called
    in the loop) recorded since then?"""
    where = {e: i // p for i, e in enumerate(seq[a:a + p * reps])}
    for k in range(1, min(reps, 4)):
        def visit(q, k=k):
            it = where.get(q)
            if it is not None:
                return it == k - 1 or None
            return "expand" if q in folded else None
        if reads_back(seq[a + k * p:a + (k + 1) * p], seq[a + (k - 1) * p].seq, visit):
            return True
    return False


def _parallel(seq, a, p, reps, folded):
    """True when every iteration reads the same outside inputs as the first, and its own iteration inside."""
    offset = {e: i for i, e in enumerate(seq[a:a + p * reps])}
    for k in range(1, reps):
        for j in range(p):
            e, b = seq[a + k * p + j], seq[a + j]
            pe_all, pb_all = e.parents, b.parents
            if len(pe_all) != len(pb_all):
                return False
            for pe, pb in zip(pe_all, pb_all):
                oe = offset.get(pe) if pe.__class__ is Entry else None
                ob = offset.get(pb) if pb.__class__ is Entry else None
                if oe is None and ob is None:
                    if pe is not pb and not _zipped(folded.get(pe), folded.get(pb), k):
                        return False
                elif oe is None or ob is None or oe - k * p != ob:
                    return False
    return True


def _zipped(fe, fb, k):
    """Iteration k reads iteration k of the same folded node that iteration 0 reads at its iteration 0."""
    return fe is not None and fb is not None and fe[0] == fb[0] and fe[1] - fb[1] == k
