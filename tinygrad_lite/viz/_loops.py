"""Folding loops written inside one module call (nn.LSTM's time loop) or in user code: a run of primitives that
repeats with period P, where each iteration reads the previous one's outputs, is drawn as P nodes `name xN`.

The search works on the sequence of (primitive, output shape) codes of the entries drawn one by one in one
module call, in recording order, with NumPy comparisons per candidate period (no quadratic Python loops).
"""
import numpy as np

from ..autograd.recorder import Entry

MAX_PERIOD = 128  # longest loop body looked for (an LSTM step is ~20 primitives)
MAX_SEARCHES = 32  # ranges searched per module call, which bounds the time on long irregular tapes


def periodic_runs(seq, fold_all):
    """Non-overlapping (start, period, repeats) runs of `seq` (entries) to fold. By default a run needs a body
    of at least 2 primitives, 3 repeats, and a recurrence (iteration k+1 reads an output of iteration k), so
    a sum of several terms (add, add, add) stays as it is; fold_all drops those conditions (2 repeats)."""
    min_p, min_reps = (1, 2) if fold_all else (2, 3)
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
        if fold_all or _recurrent(seq, a, p, reps):
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


def _recurrent(seq, a, p, reps):
    first = {e: (i - a) // p for i, e in enumerate(seq[a:a + p * reps], start=a)}
    for e, k in first.items():
        if k:
            for parent in e.parents:
                if parent.__class__ is Entry and first.get(parent) == k - 1:
                    return True
    return False
