"""tl.compile: values read out of tensors into Python (.item(), bool(), comparisons) and numbers passed with
dynamic=True: each call's own value where it is returned or a tensor operation takes it, a guard where Python
uses it, and eager execution where Python code keeps it."""
import numpy as np
import pytest

import tinygrad_lite as tl
from _compile_common import features as _x, seeded_model as _model

nn, F = tl.nn, tl.nn.functional


def _mse_step(model, opt, x, y):
    """One optimizer step on the mean squared error; returns the loss."""
    opt.zero_grad()
    loss = F.mse_loss(model(x), y)
    loss.backward()
    opt.step()
    return loss


def test_a_returned_item_is_each_calls_own_value_and_keeps_replaying():
    model = _model()
    opt = tl.optim.SGD(model.parameters(), lr=0.1)

    def step(x, y):
        loss = _mse_step(model, opt, x, y)
        return loss.item(), {"loss": loss.item()}
    f = tl.compile(step)
    y = tl.zeros(3, 2)
    results = [f(_x(seed=i), y) for i in range(6)]
    assert len({r[0] for r in results}) == 6 and all(r[0] == r[1]["loss"] for r in results)
    assert all(type(r[0]) is float for r in results)
    assert f.stats["replays"] >= 4 and f.stats["eager_calls"] == 0



_KEPT = {}  # a module-level store the "global" case writes into


def _keeping_step(model, opt, where, store):
    """A step keeping its loss's value in `store` as `where` says (one function each: the scan reads all its code)."""
    def in_list(x, y):
        loss = _mse_step(model, opt, x, y)
        store.append(loss.item())
        return loss.detach()

    def in_attribute(x, y):
        loss = _mse_step(model, opt, x, y)
        store.last = loss.item()  # a plain object, not a module that ran: an assignment the scan sees
        return loss.detach()

    def in_global(x, y):
        loss = _mse_step(model, opt, x, y)
        _KEPT["loss"] = loss.item()
        return loss.detach()

    def returned_and_kept(x, y):  # the result's container is also held by the caller's state
        loss = _mse_step(model, opt, x, y)
        return store.setdefault("metrics", {"loss": loss.item()})
    return {"list": in_list, "attribute": in_attribute, "global": in_global,
            "returned-and-kept": returned_and_kept}[where]


@pytest.mark.parametrize("where", ["list", "attribute", "global", "returned-and-kept"])
def test_a_read_value_kept_by_python_code_runs_eagerly_and_the_kept_values_are_plain(where):
    """`history.append(loss.item())` inside the step: a replay would not append (the list would hold the first
    call's loss only); the call runs eagerly, says why, and what was kept is a float, as eager leaves it."""
    class Box:
        pass
    stores, results = [], []
    for compiled in (True, False):
        model = _model()
        opt = tl.optim.SGD(model.parameters(), lr=0.1)
        store = {"list": [], "attribute": Box(), "global": None, "returned-and-kept": {}}[where]
        fn = _keeping_step(model, opt, where, store)
        f = tl.compile(fn) if compiled else fn
        seen = []
        for i in range(4):
            out = f(_x(seed=i), tl.zeros(3, 2))
            seen.append(out if isinstance(out, dict) else out.numpy().copy())
            if where == "global":
                seen.append(_KEPT["loss"])
            if where == "attribute":
                seen.append(store.last)
        results.append(seen)
        stores.append(store)
        if compiled and where == "attribute":  # (seen by the scan before the call: no record at all)
            assert f.stats["replays"] == 0 and f.stats["eager_calls"] == 4
            assert "assigns an attribute" in f.stats["last_reason"] and "'store.last'" in f.stats["last_reason"]
        elif compiled:
            assert f.stats["replays"] == 0 and f.stats["eager_calls"] == 3
            assert "kept by Python code" in f.stats["last_reason"] and "test_compile_reads.py" in f.stats["last_reason"]
    for a, b in zip(*results):
        assert type(a) is type(b) and (np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b)
    if where == "list":
        assert stores[0] == stores[1] and len(stores[0]) == 4 and all(type(v) is float for v in stores[0])
    if where == "returned-and-kept":
        assert type(stores[0]["metrics"]["loss"]) is float and stores[0] == stores[1]


def test_a_kept_read_value_with_fullgraph_raises():
    model = _model()
    opt = tl.optim.SGD(model.parameters(), lr=0.1)
    f = tl.compile(_keeping_step(model, opt, "list", []), fullgraph=True)
    with pytest.raises(tl.CompileError, match="kept by Python code"):
        f(_x(), tl.zeros(3, 2))


def test_read_values_used_and_dropped_inside_the_step_or_returned_nested_keep_replaying():
    model = _model()
    opt = tl.optim.SGD(model.parameters(), lr=0.1)

    def step(x, y):
        loss = _mse_step(model, opt, x, y)
        scratch = [loss.item()]  # a temporary list: gone when the step returns
        del scratch
        v = loss.item()
        return v, {"history": [v, loss.item()]}, (v,)
    f = tl.compile(step)
    outs = [f(_x(seed=i), tl.zeros(3, 2)) for i in range(5)]
    assert f.stats["replays"] == 4 and f.stats["eager_calls"] == 0
    assert len({o[0] for o in outs}) == 5 and all(o[0] == o[1]["history"][1] == o[2][0] for o in outs)
    assert all(type(o[1]["history"][0]) is float for o in outs)

def test_a_value_used_in_python_control_flow_is_a_guard():
    def fn(x):
        y = x * 2
        if y.sum().item() > 0:  # a branch taken once must not be replayed for the other sign
            return y + 1
        return y - 1
    f = tl.compile(fn)
    for v in (1.0, 2.0, -1.0, 3.0, -2.0, -5.0):
        x = tl.tensor([v])
        assert f(x).item() == fn(x).item()
    assert f.stats["variants"] == 2 and f.stats["replays"] == 4  # guarded by the comparison's outcome

    def uses_value(x):
        return x * (x.sum().item() * 2)  # the value feeds a tensor operation: its input, each call's own
    g = tl.compile(uses_value)
    for v in (1.0, 1.0, 2.0):
        assert g(tl.tensor([v])).item() == uses_value(tl.tensor([v])).item()
    assert g.stats["variants"] == 1 and g.stats["replays"] == 2

    def both(x):
        s = x.sum().item()
        return x * s if s > 1.5 else x - s  # the branch is a guard, the operand each call's own
    h = tl.compile(both)
    for v in (2.0, 3.0, 1.0, 0.5, 4.0):
        assert h(tl.tensor([v])).item() == both(tl.tensor([v])).item()
    assert h.stats["variants"] == 2 and h.stats["replays"] == 3


def test_numpy_and_printing_inside_the_function_run_eagerly_with_a_reason():
    def fn(x):
        return tl.tensor(np.sort(x.numpy())) * 2  # data taken to NumPy and back: cannot be followed
    f = tl.compile(fn)
    for seed in range(3):
        x = _x(seed=seed)
        assert np.array_equal(f(x).numpy(), fn(x).numpy())
    assert f.stats["eager_calls"] == 2 and "numpy()" in f.stats["last_reason"]
    with pytest.raises(tl.CompileError, match=r"numpy\(\) at .*test_compile_reads.py"):
        tl.compile(fn, fullgraph=True)(_x())


def test_an_array_made_from_outside_data_inside_the_function_is_refused():
    outside = {"a": np.ones(4, np.float32)}

    def fn(x):
        return x * tl.tensor(outside["a"])  # a fresh array each call, from outside the library
    f = tl.compile(fn)
    f(_x())
    outside["a"] = np.full(4, 3.0, np.float32)
    assert np.array_equal(f(_x()).numpy(), (_x() * 3.0).numpy())
    assert "frozen" in f.stats["last_reason"]


def test_dynamic_numbers_are_inputs_of_the_tensor_operations_that_take_them():
    def fn(x, s):
        return x * s + s / x - x.abs() ** s + tl.where(x > 0, x, s) + (s - x).abs()
    f = tl.compile(fn, dynamic=True)
    x = tl.tensor(np.array([0.5, -1.5, 2.0], np.float32))
    for s in (3.0, 4.0, -0.0, 7.5, 0.1):
        got, want = f(x, s), fn(x, s)
        assert got.dtype == want.dtype and np.array_equal(got.numpy(), want.numpy())
    assert f.stats["traces"] == 1 and f.stats["replays"] == 4
    assert np.array_equal(f(x, 2).numpy(), fn(x, 2).numpy()) and f.stats["variants"] == 2  # an int: a new variant
    fixed = tl.compile(fn)  # without dynamic, each value is a guard
    for s in (3.0, 4.0):
        fixed(x, s)
    assert fixed.stats["variants"] == 2



def test_python_arithmetic_on_dynamic_numbers_is_replayed_and_a_power_is_guarded():
    def fn(x, b, n):
        return x * (1 - b) + 0.5 * b * x.abs() - (-b) / 2 + abs(b) // 1 + (b % 0.3) * x + (n * 2 + b) * x
    f = tl.compile(fn, dynamic=True)
    x = tl.tensor(np.array([1.5, -2.0], np.float32))
    for i, b in enumerate((0.25, 0.75, -1.5, 3.0) * 3):  # past the interpreted replays, into generated code
        assert np.array_equal(f(x, b, i).numpy(), fn(x, b, i).numpy())
    assert f.stats["traces"] == 1 and f.stats["replays"] == 11
    power = tl.compile(lambda x, b: x * b ** 2, dynamic=True)  # int ** int may be a float: its type is guarded
    for b in (2.0, 3.0, 3.0):
        assert np.array_equal(power(x, b).numpy(), (x * b ** 2).numpy())
    assert power.stats["traces"] == 2 and power.stats["replays"] == 1


def test_a_read_int_compared_with_a_float_guards_the_branch():
    """int.__gt__(float) answers NotImplemented: the capture raised TypeError, and a replay's check took
    bool(NotImplemented) for True (a stale branch) — both compare through `operator` now."""
    def fn(x):
        return x * 2 if x.argmax().item() > 0.5 else x
    f = tl.compile(fn)
    for v in ([1.0, 2.0], [1.0, 3.0], [3.0, 1.0], [4.0, 1.0]):
        assert f(tl.tensor(v)).tolist() == fn(tl.tensor(v)).tolist()
    assert f.stats["traces"] == 2 and f.stats["replays"] == 2
    g = tl.compile(lambda x, n: x * 2 if n > 2.5 else x, dynamic=True)
    assert [g(tl.ones(1), n).tolist() for n in (3, 3, 2)] == [[2.0], [2.0], [1.0]]


def test_a_comparison_of_a_dynamic_number_guards_its_outcome_even_after_an_effect():
    """`if epoch < warmup:` after the optimizer step: the guard is on the branch taken (checked where the argument is
    read, before any effect), so every epoch of one branch replays one variant."""
    def run(compiled):
        model = _model()
        opt = tl.optim.SGD(model.parameters(), lr=0.1)

        def step(x, epoch):
            opt.zero_grad()
            loss = model(x).pow(2).mean()
            loss.backward()
            opt.step()
            return loss.item(), ("warm-up" if epoch < 3 else "train")
        f = tl.compile(step, dynamic=True) if compiled else step
        return [f(_x(seed=i), i) for i in range(8)], [p.numpy().copy() for p in model.parameters()], f
    (got, params, f), (want, params_eager, _) = run(True), run(False)
    assert got == want and all(np.array_equal(a, b) for a, b in zip(params, params_eager))
    assert f.stats["traces"] == 2 and f.stats["replays"] == 6 and f.stats["eager_calls"] == 0


def test_a_read_int_mixes_with_floats_as_a_plain_int():
    f = tl.compile(lambda x: x * (x.sum().item() + 2.5))
    for v in ([1, 2], [1, 2], [1, 3]):
        assert f(tl.tensor(v)).tolist() == (tl.tensor(v) * (sum(v) + 2.5)).tolist()
    assert f.stats["replays"] == 2  # (the number a tensor operation takes: each call's own)


def test_dynamic_numbers_in_a_training_step_match_eager_bit_for_bit():
    """A loss weight (a KL-annealing beta) and a softmax temperature that change every call: one trace."""
    def run(compiled):
        model = _model()
        opt = tl.optim.Adam(model.parameters(), lr=0.01)

        def step(x, y, beta, *, temperature=1.0):
            opt.zero_grad()
            out = model(x)
            loss = F.cross_entropy(out / temperature, y) + beta * (out ** 2).mean()
            loss.backward()
            opt.step()
            return loss.item(), beta
        f = tl.compile(step, dynamic=True) if compiled else step
        rows = [f(_x(seed=i), tl.tensor(np.array([0, 1, 1])), 0.1 * i, temperature=1.0 + 0.25 * i)
                for i in range(8)]
        return rows, [p.numpy().copy() for p in model.parameters()], f
    (got, params, f), (want, params_eager, _) = run(True), run(False)
    assert got == want and all(np.array_equal(a, b) for a, b in zip(params, params_eager))
    assert [b for _, b in got] == [0.1 * i for i in range(8)]  # a returned argument is each call's own
    assert f.stats["traces"] == 1 and f.stats["replays"] == 7


def test_a_dynamic_number_used_in_python_is_guarded_by_value():
    def fn(x, n, s):
        y = x[:n] * 2  # a shape
        return y * s if s > 1 else y  # a branch
    f = tl.compile(fn, dynamic=True, max_variants=2)
    x = tl.arange(6).float()
    with pytest.warns(tl.CompileWarning, match=r"argument 1 \(an int\) was 2 when recorded and is 3 now"):
        for n, s in ((3, 2.0), (3, 2.0), (2, 2.0), (3, 0.5)):
            assert np.array_equal(f(x, n, s).numpy(), fn(x, n, s).numpy())
    assert f.stats["traces"] == 2 and f.stats["replays"] == 1 and f.stats["eager_calls"] == 1


@pytest.mark.parametrize("name", ["clamp", "full", "tensor", "reshape", "arange", "topk", "leaky_relu", "rsub"])
def test_library_calls_take_dynamic_numbers_as_they_take_numbers(name):
    fn = {"clamp": lambda x, s, n: x.clamp(min=s / 4),
          "full": lambda x, s, n: x + tl.full((4,), s),
          "tensor": lambda x, s, n: x * tl.tensor(s),
          "reshape": lambda x, s, n: x.reshape(n, -1) * 1,
          "arange": lambda x, s, n: tl.arange(n).float().sum() + x,
          "topk": lambda x, s, n: x.topk(n)[0],
          "leaky_relu": lambda x, s, n: F.leaky_relu(x, s / 10),
          "rsub": lambda x, s, n: s - x}[name]
    f = tl.compile(fn, dynamic=True)
    x = tl.tensor(np.array([0.5, -1.5, 2.0, -3.0], np.float32))
    for s, n in ((1.5, 2), (2.5, 2), (2.5, 4)):
        assert np.array_equal(f(x, s, n).numpy(), fn(x, s, n).numpy())
    assert f.stats["eager_calls"] == 0 and f.stats["replays"] >= 1


def test_a_dynamic_number_kept_by_the_function_runs_eagerly():
    class Holder:
        pass
    h = Holder()

    def fn(x, s):
        h.scale = s  # a replay would not assign it
        return x * s
    f = tl.compile(fn, dynamic=True)
    for s in (2.0, 3.0):
        assert f(tl.ones(2), s).tolist() == [s, s] and h.scale == s and type(h.scale) is float
    assert f.stats["replays"] == 0 and "assigns an attribute of an object that outlives the call ('h.scale'" in \
        f.stats["last_reason"]


# ---- a read value a tensor operation takes as an operand: its input, each call's own number (observe.read_slot) ----

def _read_operand_cases():
    return {
        "scale": lambda x: x * x.sum().item(),
        "int": lambda x: x * (x > 0).sum().item(),
        "computed": lambda x: (x.max().item() - x.min().item()) * x + 1,
        "reflected": lambda x: x.mean().item() - x,
        "leaky_relu": lambda x: F.leaky_relu(x, abs(x[0].item()) / 10),
    }


# library calls that use the number in Python (as they do a dynamic=True argument's): guarded by its value, so each
# new value is a new variant, with eager's result
_GUARDED = {
    "full": lambda x: x + tl.full((4,), x.max().item()),
    "clamp": lambda x: x.clamp(min=x.mean().item()),
    "tensor": lambda x: x * tl.tensor(x[1].item()),
}


@pytest.mark.parametrize("name", sorted(_read_operand_cases()) + sorted(_GUARDED))
def test_a_read_value_a_tensor_operation_takes_is_each_calls_own_number(name):
    fn = _read_operand_cases().get(name) or _GUARDED[name]
    f = tl.compile(fn)
    r = np.random.RandomState(3)
    for _ in range(6):
        x = tl.tensor(r.randn(4).astype(np.float32))
        got, want = f(x), fn(x)
        assert got.dtype == want.dtype and np.array_equal(got.numpy(), want.numpy()), name
    replays = 0 if name in _GUARDED else 5
    assert f.stats["traces"] == 6 - replays and f.stats["replays"] == replays, f.stats


def test_a_read_operand_is_the_value_at_the_read_not_after_later_in_place_changes():
    def fn(x):
        t = x.sum()
        s = t.item()
        t.add_(100)  # after the read: the operand stays the value read
        return x * s, t
    f = tl.compile(fn)
    for i in range(4):
        x = tl.tensor(np.arange(3, dtype=np.float32) + i)
        (a, t), (b, u) = f(x), fn(x)
        assert np.array_equal(a.numpy(), b.numpy()) and t.item() == u.item()
    assert f.stats["replays"] == 3, f.stats


def test_mixup_in_a_training_step_matches_eager_and_replays():
    """lam = tl.rand(1).item(), a fresh draw each call: the loss mixes two targets with it."""
    def make():
        tl.manual_seed(0)
        model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3))
        opt = tl.optim.SGD(model.parameters(), lr=0.1)

        def step(x, y):
            lam = tl.rand(1).item()
            idx = tl.randperm(x.size(0))
            out = model(lam * x + (1 - lam) * x[idx])
            loss = lam * F.cross_entropy(out, y) + (1 - lam) * F.cross_entropy(out, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            return loss.item(), lam
        return step, model
    runs = []
    for compiled in (True, False):
        step, model = make()
        f = tl.compile(step) if compiled else step
        r = np.random.RandomState(0)
        outs = [f(tl.tensor(r.randn(6, 5).astype(np.float32)), tl.tensor(r.randint(0, 3, 6))) for _ in range(8)]
        runs.append((outs, [p.numpy().copy() for p in model.parameters()], getattr(f, "stats", None)))
    (got, got_p, stats), (want, want_p, _) = runs
    assert got == want and all(np.array_equal(a, b) for a, b in zip(got_p, want_p))
    assert len({lam for _, lam in got}) == 8 and stats["traces"] == 1 and stats["replays"] == 7, stats
