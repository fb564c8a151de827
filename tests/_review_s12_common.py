"""Shared harness of the review of 20e1f41..32773a3 (tests/test_review_s12_*.py): a compiled function and the same
function run eagerly side by side over CALLS calls, past INTERPRETED_REPLAYS (the generated code, where `_recycled`
lives, runs from the 9th replay on), with a new batch each call; returned values, parameters, gradients and optimizer
state compared with np.array_equal, and the arrays the user kept checked for changes by later calls."""
import numpy as np

import tinygrad_lite as tl
from tinygrad_lite.compile.plan import INTERPRETED_REPLAYS

nn, F = tl.nn, tl.nn.functional
CALLS = INTERPRETED_REPLAYS + 14  # 22: well past the switch to generated code


def _mlp(dtype=np.float32):
    tl.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 4)).to(dtype)


def _np(v):
    if isinstance(v, tl.Tensor):
        return v.numpy()
    if isinstance(v, memoryview):
        return np.asarray(v)
    if type(v).__module__.startswith("torch"):
        return v.numpy()
    return np.asarray(v)


def _state(model, opt):
    out = [p.numpy().copy() for p in model.parameters()]
    out += [None if p.grad is None else p.grad.numpy().copy() for p in model.parameters()]
    for st in (getattr(opt, "state", {}) or {}).values():
        for v in st.values():
            if isinstance(v, (tl.Tensor, np.ndarray, float, int)):
                out.append(np.array(_np(v)))
    return out


def _same(a, b):
    if a is None or b is None:
        return a is None and b is None
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and np.array_equal(a, b)


def _flat(o):
    if isinstance(o, (tuple, list)):
        return [x for y in o for x in _flat(y)]
    return [np.array(_np(o)) if isinstance(o, (tl.Tensor, np.ndarray)) else o]


def _side_by_side(make_step, after=None, calls=CALLS, dtype=np.float32, opt_fn=None, batch=lambda i: 8,
                  make_model=_mlp):
    """Run make_step(model, opt) eagerly and compiled on the same batches. `after(model, opt, i, out, kept)` runs
    after each call and may append (array-like the user holds, copy of its values) to `kept`. Returns (call indices
    where the compiled run differs, indices of kept arrays that later calls changed in one run and not in the other,
    the compiled stats)."""
    opt_fn = opt_fn or (lambda m: tl.optim.SGD(m.parameters(), lr=0.1))
    runs = []
    for compiled in (False, True):
        model = make_model(dtype)
        opt = opt_fn(model)
        step = make_step(model, opt)
        f = tl.compile(step) if compiled else step
        rng = np.random.default_rng(1)
        trace, kept = [], []
        for i in range(calls):
            n = batch(i)
            x = tl.tensor(rng.standard_normal((n, 6)).astype(dtype))
            y = tl.tensor(rng.integers(0, 4, n))
            out = f(x, y)
            if after is not None:
                after(model, opt, i, out, kept)
            trace.append((_flat(out), _state(model, opt)))
        changed = [j for j, (h, c) in enumerate(kept) if not np.array_equal(_np(h), c)]
        runs.append((trace, changed, getattr(f, "stats", None)))
    (te, ke, _), (tc, kc, stats) = runs
    diffs = [i for i, ((oe, se), (oc, sc)) in enumerate(zip(te, tc))
             if len(oe) != len(oc) or len(se) != len(sc) or not all(_same(a, b) for a, b in zip(oe + se, oc + sc))]
    return diffs, sorted(set(kc) ^ set(ke)), stats  # kept arrays changed in one run only (eager changes none, mostly)


def _replayed(stats, calls=CALLS):
    return stats["eager_calls"] == 0 and stats["replays"] >= calls - stats["traces"]
