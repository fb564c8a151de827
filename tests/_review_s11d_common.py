"""Shared scaffolding of the fourth review of tl.compile's guard scan (tests/test_review_s11d_*.py): the data, model
and state every scenario uses, the log the loops write to, and the harness that runs a scenario eagerly and
compiled and compares them bit for bit."""
import io
import logging
import random
import warnings

import numpy as np

import tinygrad_lite as tl

nn, F = tl.nn, tl.nn.functional
random.seed(0)
np.random.seed(0)

LOG = io.StringIO()
logger = logging.getLogger("rev11d")
logger.addHandler(logging.StreamHandler(LOG))
logger.setLevel(logging.INFO)
N = 10


def data(n=N, seed=0, width=6, classes=3, batch=8):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((batch, width)).astype(np.float32), rng.integers(0, classes, batch))
            for _ in range(n)]


def mlp(width=6, hidden=12, classes=3):
    return nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(0.1), nn.Linear(hidden, classes))


def state(model, opt=None, extra=()):
    out = [p.detach().numpy().copy() for p in model.parameters()]
    out += [np.array("none") if p.grad is None else p.grad.numpy().copy() for p in model.parameters()]
    out += [b.numpy().copy() for b in model.buffers()]
    for st in (opt.state.values() if opt is not None else ()):
        out += [np.asarray(v.numpy() if isinstance(v, tl.Tensor) else v).copy() for v in st.values()]
    return out + [np.asarray(e) for e in extra] + [np.asarray(tl.random.get_rng().random(2))]


def C(comp):
    return tl.compile if comp else (lambda fn: fn)


def _out(v):
    return np.asarray(v.numpy() if isinstance(v, tl.Tensor) else v).copy()


def _run(scenario):
    """(compiled results equal eager bit for bit, [stats of each compiled callable])."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tl.CompileWarning)
        want = scenario(False)[0]
        got, *fs = scenario(True)
    same = len(want) == len(got) and all(a.dtype == b.dtype and np.array_equal(a, b) for a, b in zip(want, got))
    return same, [f.stats for f in fs]


def _replays(scenario, replays=N - 1):
    same, stats = _run(scenario)
    assert same, stats
    for st in stats:
        assert st["replays"] >= replays and st["eager_calls"] == 0 and st["traces"] == 1, st
    return stats
