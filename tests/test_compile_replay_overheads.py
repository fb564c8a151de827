"""tl.compile: what a replay does around its kernels — keeping the random generator's state only when a guard
may fail after a draw, the guards of the methods a step calls, the returned structure — each against eager."""
import numpy as np

import tinygrad_lite as tl
from _compile_common import train_step

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


def _against_eager(draw_first):
    """The branchy step compiled and eager over the same calls (a guard failing at calls 5 and 7): the outputs and
    the generator's next draws compared; the compiled function, for its plans."""
    fn = _branchy(draw_first)
    f = tl.compile(fn)
    want_outs, want_next = _run(fn, _inputs())
    got_outs, got_next = _run(f, _inputs())
    assert all(np.array_equal(a, b) for a, b in zip(got_outs, want_outs))
    assert np.array_equal(got_next, want_next)
    assert f.stats["replays"] >= 8, f.stats
    return [v.plan for v in f._variants if v.plan is not None]


def test_a_guard_failing_after_a_draw_gives_the_eager_call_the_generator_as_it_was():
    plans = _against_eager(draw_first=True)
    assert plans and all(p.restores_rng for p in plans)


def test_a_guard_before_every_draw_keeps_no_generator_state_and_matches_eager():
    plans = _against_eager(draw_first=False)
    assert plans and not any(p.restores_rng for p in plans)


def test_no_draw_or_no_guard_keeps_no_generator_state():
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    f = tl.compile(train_step(model, tl.optim.SGD(model.parameters(), lr=0.1)))  # cross_entropy checks the labels
    # (a guard); nothing draws
    x, y = tl.tensor(np.ones((5, 4), np.float32)), tl.tensor(np.array([0, 1, 1, 0, 1]))
    for _ in range(3):
        f(x, y)
    assert not _plan(f).restores_rng
    g = tl.compile(lambda x: F.dropout(x, 0.5, training=True) * 2)  # draws, with no guard
    for _ in range(3):
        g(x)
    assert not _plan(g).restores_rng and g.stats["replays"] == 2


_Pair = __import__("collections").namedtuple("_Pair", "total tag")


def _structured(model):
    def fn(x):
        with tl.no_grad():
            out = model(x)
            return {"loss": out.sum().item(), "parts": (out, [x, model.weight, x.detach()]),
                    "pair": _Pair(out.sum(), "tag"), "shape": out.shape, "empty": (), "np": out.numpy()}
    return fn


def _leaf_values(obj):
    if isinstance(obj, dict):
        return {k: _leaf_values(v) for k, v in obj.items()}
    if isinstance(obj, (tuple, list)) and not isinstance(obj, tl.Size):
        return type(obj)(*[_leaf_values(o) for o in obj]) if hasattr(obj, "_fields") else \
            type(obj)(_leaf_values(o) for o in obj)
    return obj.numpy().tolist() if isinstance(obj, tl.Tensor) else \
        obj.tolist() if isinstance(obj, np.ndarray) else obj


def test_a_returned_structure_is_built_anew_each_replay_as_eager_builds_it():
    model = nn.Linear(3, 2)
    fn = _structured(model)
    f = tl.compile(fn)
    rng = np.random.default_rng(1)
    earlier = []
    for i in range(6):
        x = tl.tensor(rng.standard_normal((4, 3)).astype(np.float32))
        got, want = f(x), fn(x)
        assert _leaf_values(got) == _leaf_values(want) and type(got["pair"]) is _Pair
        assert got["parts"][1][0] is x and got["parts"][1][1] is model.weight  # the objects themselves
        assert got["parts"][1][2] is not x and np.shares_memory(got["parts"][1][2].numpy(), x.numpy())
        assert type(got["shape"]) is tl.Size and got["shape"] == (4, 2) and got["empty"] == ()
        assert type(got["parts"][0]) is tl.Tensor and type(got["np"]) is np.ndarray
        earlier.append((got, _leaf_values(got)))
    assert f.stats["replays"] == 5
    assert all(_leaf_values(g) == v for g, v in earlier)  # later replays wrote into none of the earlier results
    assert len({id(g["parts"][1]) for g, _ in earlier}) == 6  # a new list each call


def test_a_set_in_the_result_is_rebuilt_as_eager_builds_it():
    f = tl.compile(lambda x: ({1, 2}, (x * 2).sum().item()))
    for i in range(4):
        s, v = f(tl.tensor([float(i), 1.0]))
        assert s == {1, 2} and v == (2.0 * i + 2.0)
    assert f.stats["replays"] == 3
