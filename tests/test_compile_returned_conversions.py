"""tl.compile: `return float(loss)`, `return int(correct)`, `return out.numpy()`, `return out.tolist()` — float() or
int() of a tensor (or float() of `.item()`), or its data as an array or a list, returned untouched by the compiled
function (also in a tuple, list or dict it builds for the return, and from helpers that each return it untouched) —
is each call's own value, as a returned `.item()` or tensor, and keeps the step replaying. Each of them hands Python
data whose uses the capture cannot follow, so anywhere else (a local, arithmetic, a conditional expression, a
builtin such as max() on the way) float() and int() stay guards and numpy()/tolist() run the call eagerly: never a
stale value. Each case runs beside its eager twin and compares every result bit for bit, and the arrays of earlier
calls after later ones. (Before, each of these steps ran eagerly at every call.)"""
import functools

import numpy as np
import pytest

import tinygrad_lite as tl
from _compile_common import features as _x, seeded_model as _model
from test_compile_reads import _mse_step

F = tl.nn.functional
CALLS = 8


def _steps():
    """{name: (make(model, opt) -> step)}: training steps that return float() of their loss in different ways."""
    def train(model, opt, x, y):
        opt.zero_grad()
        out = model(x)
        loss = F.mse_loss(out, y)
        loss.backward()
        opt.step()
        return loss, out

    def plain(model, opt):
        def step(x, y):
            loss, _ = train(model, opt, x, y)
            return float(loss)
        return step

    def in_tuple(model, opt):
        def step(x, y):
            loss, out = train(model, opt, x, y)
            return float(loss), float(out.sum()), loss.detach()
        return step

    def in_dict(model, opt):
        def step(x, y):
            loss, out = train(model, opt, x, y)
            return {"loss": float(loss), "max": [float(out.max())]}
        return step

    def of_an_int(model, opt):
        def step(x, y):
            loss, out = train(model, opt, x, y)
            return float((out > 0).sum()), float(loss)
        return step
    def of_item(model, opt):  # float() of a read (`loss.item()`) and of a number computed from reads
        def step(x, y):
            loss, out = train(model, opt, x, y)
            return float(loss.item()), {"twice": float(out.sum().item() * 2)}
        return step
    def through_helpers(model, opt):  # returned untouched by each function between float() and the compiled one
        def inner(x, y):
            loss, out = train(model, opt, x, y)
            return float(loss), out.detach().numpy()

        def outer(x, y):
            return inner(x, y)
        trainer = _Trainer(train, model, opt)
        return lambda x, y: (outer(x, y), {"again": trainer.step(x * 0.5, y)})
    return {"plain": plain, "in a tuple": in_tuple, "in a dict and a list": in_dict, "of an int": of_an_int,
            "of .item()": of_item, "through helpers, a lambda and a method": through_helpers}


class _Trainer:
    def __init__(self, train, model, opt):
        self.train, self.model, self.opt = train, model, opt

    def step(self, x, y):
        loss, _ = self.train(self.model, self.opt, x, y)
        return float(loss)


def _guarded():
    """Steps where float()'s number is used by Python before the return, or returned by a helper."""
    train = _mse_step

    def local(model, opt):
        def step(x, y):
            v = float(train(model, opt, x, y))
            return v
        return step

    def arithmetic(model, opt):
        def step(x, y):
            return float(train(model, opt, x, y)) * 2
        return step

    def helper(model, opt):
        def value(x, y):
            return float(train(model, opt, x, y))

        def step(x, y):
            return value(x, y) * 3
        return step

    def conditional(model, opt):
        def step(x, y):
            loss = train(model, opt, x, y)
            return float(loss) if x.shape[0] else 0.0
        return step

    def value(model, opt):
        def value(x, y):
            return float(train(model, opt, x, y))
        return value

    def through_max(model, opt):  # the call running in the step is max's: its value is not the helper's
        def step(x, y):
            return max(value(model, opt)(x, y), -1.0)
        return step

    def through_map(model, opt):
        def step(x, y):
            return list(map(value(model, opt), [x], [y]))[0]
        return step

    def through_a_partial(model, opt):
        def step(x, y):
            return functools.partial(value(model, opt), x)(y)
        return step
    return {"a local": local, "arithmetic": arithmetic, "a helper's return": helper, "a conditional": conditional,
            "max of a helper's return": through_max, "map of a helper": through_map,
            "a partial of a helper": through_a_partial}


def _run(make, compiled):
    model = _model()
    opt = tl.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    step = make(model, opt)
    f = tl.compile(step) if compiled else step
    y = tl.zeros(3, 2)
    outs = [f(_x(seed=i), y) for i in range(CALLS)]
    return outs, [p.detach().numpy() for p in model.parameters()], getattr(f, "stats", None)


def _same(got, want):
    if isinstance(want, tl.Tensor):
        assert isinstance(got, tl.Tensor) and np.array_equal(got.numpy(), want.numpy())
    elif isinstance(want, np.ndarray):
        assert type(got) is np.ndarray and got.dtype == want.dtype and np.array_equal(got, want)
    elif isinstance(want, (tuple, list)):
        assert type(got) is type(want) and len(got) == len(want)
        for g, w in zip(got, want):
            _same(g, w)
    elif isinstance(want, dict):
        assert got.keys() == want.keys()
        for k in want:
            _same(got[k], want[k])
    else:
        assert type(got) is type(want) and got == want, (got, want)


def _twins(make):
    (got, got_params, stats), (want, want_params, _) = _run(make, True), _run(make, False)
    _same(got, want)
    assert all(np.array_equal(g, w) for g, w in zip(got_params, want_params))
    assert len({repr(o) for o in want}) == CALLS  # (each call's own values: a stale one would repeat)
    return stats


@pytest.mark.parametrize("name", list(_steps()))
def test_float_of_a_tensor_returned_by_the_step_is_each_calls_value_and_replays(name):
    stats = _twins(_steps()[name])
    assert stats["traces"] == 1 and stats["eager_calls"] == 0 and stats["replays"] == CALLS - 1, stats


@pytest.mark.parametrize("name", list(_steps()))
def test_float_returned_replays_after_eager_calls_of_the_same_code(name):
    """Eager calls first: after a few runs CPython specialises the code, and a PRECALL makes `float(t)`'s call itself
    (the frame's last instruction is the PRECALL, not the CALL): the scan must still find the call returned (these
    steps ran eagerly at every call when compiled after eager use of the same function)."""
    for _ in range(3):
        _run(_steps()[name], False)
    stats = _twins(_steps()[name])
    assert stats["traces"] == 1 and stats["eager_calls"] == 0 and stats["replays"] == CALLS - 1, stats


@pytest.mark.parametrize("name", list(_guarded()))
def test_float_used_before_the_return_or_by_a_helper_stays_a_guard(name):
    stats = _twins(_guarded()[name])
    assert stats["replays"] == 0, stats
    assert "float() of a tensor" in stats["last_reason"], stats


@pytest.mark.parametrize("use", ["a local", "arithmetic"])
def test_float_of_an_item_used_before_the_return_stays_a_guard(use):
    def make(model, opt):
        def step(x, y):
            v = float(_mse_step(model, opt, x, y).item())
            return v * 2 if use == "arithmetic" else v
        return step
    stats = _twins(make)
    assert stats["replays"] == 0, stats
    assert "a value read with .item()" in stats["last_reason"], stats


def test_a_helpers_float_compared_by_a_builtin_on_its_way_to_the_return_is_a_guard():
    """max() decides with the number: the recorded call's helper value (above the floor) is max's result by identity,
    but later calls fall below it, where eager returns the floor. Following the helper's return through max would
    return those calls' own values instead."""
    floor = 0.015  # (between the first call's loss, 0.0204, and the last two calls', 0.0082 and 0.0040)

    def make(model, opt):
        def value(x, y):
            return float(_mse_step(model, opt, x, y))

        def step(x, y):
            return max(value(x, y), floor)
        return step
    (got, got_params, stats), (want, want_params, _) = _run(make, True), _run(make, False)
    assert want[0] > floor and want.count(floor) >= 2  # (the case is what it says)
    assert got == want and all(np.array_equal(g, w) for g, w in zip(got_params, want_params))
    assert "float() of a tensor" in stats["last_reason"], stats


def _counting():
    """{name: (make(model) -> f(x, y), returned untouched?)}: functions returning int() of a count of correct labels
    (CPython shares small ints: the number is found at its place in the result, not by identity)."""
    def correct(model, x, y):
        with tl.no_grad():
            return int((model(x).argmax(1) == y).sum())

    def plain(model):
        return lambda x, y: correct(model, x, y)

    def placed(model):  # beside equal constants, in a one-key dict (BUILD_MAP) and a constant-key one
        def f(x, y):
            return 0, correct(model, x, y), {"n": 0, "c": int((model(x).argmax(1) == y).sum())}, \
                {"also": correct(model, -x, y), "of .item()": int((model(x).argmax(1) != y).sum().item())}
        return f

    def arithmetic(model):
        return lambda x, y: correct(model, x, y) + 1

    def through_max(model):
        return lambda x, y: max(correct(model, x, y), 3)

    def key_twice(model):
        def f(x, y, key="n"):
            return {key: correct(model, x, y), key: correct(model, 2 * x, y)}  # (the later value wins)
        return f
    return {"plain": (plain, True), "placed": (placed, True), "arithmetic": (arithmetic, False),
            "max": (through_max, False), "a key given twice": (key_twice, False)}


@pytest.mark.parametrize("name", list(_counting()))
def test_int_of_a_tensor_returned_untouched_is_each_calls_value_elsewhere_a_guard(name):
    make, replays = _counting()[name]
    model = _model()
    fn = make(model)
    f = tl.compile(fn)
    rng = np.random.default_rng(0)
    calls = [(tl.tensor(rng.standard_normal((16, 4)).astype(np.float32)), tl.tensor(rng.integers(0, 2, 16)))
             for _ in range(3 * CALLS)]
    got, want = [f(x, y) for x, y in calls], [fn(x, y) for x, y in calls]
    assert got == want and repr(got) == repr(want)
    assert len({repr(w) for w in want}) >= 4  # (the counts change: a stale replay would repeat one)
    if replays:
        assert f.stats["traces"] == 1 and f.stats["replays"] == len(calls) - 1, f.stats
    else:  # (each count is a guard: a variant per value)
        assert f.stats["traces"] > 1, f.stats


def test_float_in_python_control_flow_still_guards_the_branch():
    model = _model()

    def predict(x):
        out = model(x)
        if float(out.sum()) > 0:
            return float(out.max())
        return float(out.min())
    f = tl.compile(predict)
    xs = [_x(seed=i) for i in range(CALLS)] * 2
    with tl.no_grad():
        got, want = [f(x) for x in xs], [predict(x) for x in xs]
    assert got == want and all(type(g) is float for g in got)
    assert f.stats["replays"] > 0, f.stats  # (the branch's outcome is a guard; the returned values are each call's)


def _predictions():
    """Inference and training functions returning their tensors' data as NumPy arrays or lists."""
    def labels(model):
        def predict(x):
            with tl.no_grad():
                return model(x).argmax(1).numpy()
        return predict

    def scores_and_list(model):
        def predict(x):
            with tl.no_grad():
                out = model(x)
                return {"scores": out.numpy(), "labels": out.argmax(1).tolist()}
        return predict

    def training(model):
        opt = tl.optim.SGD(model.parameters(), lr=0.1)

        def step(x):
            opt.zero_grad()
            out = model(x)
            loss = (out ** 2).mean()
            loss.backward()
            opt.step()
            return loss.item(), out.detach().numpy(), model[0].weight.grad.numpy()
        return step
    return {"labels": labels, "scores and a list": scores_and_list, "a training step": training}


def _plain(o):
    """A result with its arrays and tensors copied (to compare after later calls) and every type noted."""
    if isinstance(o, tl.Tensor):
        return ("tensor", _plain(o.numpy()))
    if isinstance(o, np.ndarray):
        return ("array", o.dtype.str, o.shape, o.tolist())
    if isinstance(o, (tuple, list)):
        return (type(o).__name__, [_plain(v) for v in o])
    if isinstance(o, dict):
        return {k: _plain(v) for k, v in o.items()}
    return (type(o).__name__, o)


@pytest.mark.parametrize("name", list(_predictions()))
def test_numpy_and_tolist_returned_are_each_calls_own_and_replay(name):
    runs = []
    for compiled in (True, False):
        model = _model()
        fn = _predictions()[name](model)
        f = tl.compile(fn) if compiled else fn
        outs = [f(_x(seed=i)) for i in range(CALLS)]
        at_call = [_plain(o) for o in outs]
        runs.append((outs, at_call, getattr(f, "stats", None)))
    (got, got_at_call, stats), (want, want_at_call, _) = runs
    assert got_at_call == want_at_call
    assert [_plain(o) for o in got] == [_plain(o) for o in want]  # (no later call overwrote an earlier array)
    assert len({repr(o) for o in want_at_call}) > CALLS // 2  # (the values change: a stale replay would repeat)
    assert stats["traces"] == 1 and stats["eager_calls"] == 0 and stats["replays"] == CALLS - 1, stats


def test_returned_numpy_of_a_parameter_and_of_an_argument_share_their_memory_as_eager():
    model = _model()

    def read(x):
        return model[0].weight.detach().numpy(), x.numpy()
    f = tl.compile(read)
    for i in range(4):
        x = _x(seed=i)
        w, a = f(x)
        assert np.shares_memory(w, model[0].weight.data.numpy())
        assert np.shares_memory(a, x.numpy())
    assert f.stats["replays"] == 3, f.stats


@pytest.mark.parametrize("how", ["a local", "arithmetic", "an item"])
def test_numpy_used_before_the_return_runs_the_call_eagerly(how):
    model = _model()

    def predict(x):
        with tl.no_grad():
            out = model(x)
            if how == "a local":
                a = out.numpy()
                return a
            if how == "arithmetic":
                return out.numpy() * 2
            return out.numpy()[0]
    f = tl.compile(predict)
    xs = [_x(seed=i) for i in range(4)]
    for x in xs:
        assert np.array_equal(f(x), predict(x))
    assert f.stats["replays"] == 0 and "numpy()" in f.stats["last_reason"], f.stats


def test_numpy_called_by_another_call_runs_the_call_eagerly():
    model = _model()

    def predict(x):
        with tl.no_grad():
            out = model(x)
            return sorted(map(tl.Tensor.tolist, [out[0], out[1]]))  # (sorted decides with the values)
    f = tl.compile(predict)
    for i in range(4):
        assert f(_x(seed=i)) == predict(_x(seed=i))
    assert f.stats["replays"] == 0 and "tolist()" in f.stats["last_reason"], f.stats


def test_tolist_of_a_0d_integer_tensor_stays_out_of_the_replay():
    """A 0-d integer tensor's tolist() is a small int, a shared object: the constant 2 beside it is the same object,
    and a replay that stood in for it by identity returned each call's count in its place."""
    def count(x):
        with tl.no_grad():
            return (x > 0).sum().tolist(), 2
    f = tl.compile(count)
    xs = [tl.tensor([1.0, 1.0, -1.0]), tl.tensor([1.0, -1.0, -1.0]), tl.tensor([1.0, 1.0, 1.0])] * 2
    assert [f(x) for x in xs] == [count(x) for x in xs] == [(2, 2), (1, 2), (3, 2)] * 2
    assert "tolist()" in f.stats["last_reason"], f.stats


def test_numpy_of_a_tensor_whose_graph_is_alive_replays():
    """A forward with grad mode on returning `out.numpy()`: the array is data alone, no backward can follow it (the
    reason given was "returns a tensor whose graph is still alive")."""
    model = _model()

    def forward(x):
        return model(x).numpy(), model(x).sum().tolist()
    f = tl.compile(forward)
    xs = [_x(seed=i) for i in range(CALLS)]
    got = [f(x) for x in xs]
    want = [forward(x) for x in xs]
    assert all(np.array_equal(g[0], w[0]) and g[1] == w[1] for g, w in zip(got, want))
    assert f.stats["replays"] == CALLS - 1, f.stats
