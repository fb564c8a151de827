"""tl.compile: what a replay does around its kernels — keeping the random generator's state only when a guard
may fail after a draw, the guards of the methods a step calls, the returned structure — each against eager."""
import numpy as np

import tinygrad_lite as tl

nn, F = tl.nn, tl.nn.functional


def _plan(f):
    (v,) = f._variants
    return v.plan


def _branchy(draw_first):
    """A step whose Python branch reads a value (a guard); a dropout draw before or after it."""
    def fn(x):
        y = F.dropout(x, 0.5, training=True) if draw_first else x
        if x.sum().item() > 0:  # a guard: the other sign runs eagerly
            y = y * 2
        else:
            y = y - 1
        return y if draw_first else F.dropout(y, 0.5, training=True)
    return fn


def _run(fn, xs, seed=7):
    tl.manual_seed(seed)
    outs = [fn(tl.tensor(x)).numpy().copy() for x in xs]
    return outs, tl.random.get_rng().random(4)


def _inputs():
    rng = np.random.default_rng(0)
    signs = [1, 1, 1, 1, -1, 1, -1, 1, 1, 1, 1, 1, 1]  # a guard fails at calls 5 and 7 (replays by then)
    return [(s * (rng.random(6) + 0.1)).astype(np.float32) for s in signs]


def test_a_guard_failing_after_a_draw_gives_the_eager_call_the_generator_as_it_was():
    fn = _branchy(draw_first=True)
    f = tl.compile(fn)
    want_outs, want_next = _run(fn, _inputs())
    got_outs, got_next = _run(f, _inputs())
    assert all(np.array_equal(a, b) for a, b in zip(got_outs, want_outs))
    assert np.array_equal(got_next, want_next)
    assert f.stats["replays"] >= 8 and all(v.plan.restores_rng for v in f._variants if v.plan is not None)


def test_a_guard_before_every_draw_keeps_no_generator_state_and_matches_eager():
    fn = _branchy(draw_first=False)
    f = tl.compile(fn)
    want_outs, want_next = _run(fn, _inputs())
    got_outs, got_next = _run(f, _inputs())
    assert all(np.array_equal(a, b) for a, b in zip(got_outs, want_outs))
    assert np.array_equal(got_next, want_next)
    plans = [v.plan for v in f._variants if v.plan is not None]
    assert plans and not any(p.restores_rng for p in plans) and f.stats["replays"] >= 8


def test_no_draw_or_no_guard_keeps_no_generator_state():
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    opt = tl.optim.SGD(model.parameters(), lr=0.1)

    def step(x, y):  # cross_entropy checks the labels (a guard); nothing draws
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss.item()
    f = tl.compile(step)
    x, y = tl.tensor(np.ones((5, 4), np.float32)), tl.tensor(np.array([0, 1, 1, 0, 1]))
    for _ in range(3):
        f(x, y)
    assert not _plan(f).restores_rng
    g = tl.compile(lambda x: F.dropout(x, 0.5, training=True) * 2)  # draws, with no guard
    for _ in range(3):
        g(x)
    assert not _plan(g).restores_rng and g.stats["replays"] == 2
