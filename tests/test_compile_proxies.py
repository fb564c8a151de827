"""tl.compile's number proxies under attack (a helper's adversarial pass): values read with .item(), numeric
arguments with dynamic=True and numbers computed from them — where they go (kept by Python code: eager, and plain
values left there), how they guard (-0.0, NaN, the same object twice), what the library and Python's number API do
with them, and the Python state around a step (an optimizer made inside it, manual_seed, globals, fresh config
objects). Each test compares a compiled callable with plain eager execution over several calls (past the
interpreted replays where it matters). Not covered, by design: a proxy is no float (`isinstance(v, float)`, json
and other libraries see the proxy during the recording call; README says so)."""
import collections
import copy
import json
import math
import types
import warnings

import numpy as np
import pytest

import tinygrad_lite as tl
import tinygrad_lite.nn.functional as F
from tinygrad_lite import nn

X4 = np.array([0.5, -1.5, 2.0, -3.0], np.float32)
VALS = [1.5, 2.5, 0.75, 3.25, 1.25, 0.5, 2.0, 4.0, 1.75, 2.25, 3.5, 0.25, 5.0]  # 13 calls: past 8 replays


def _bits(t):
    return (t.dtype, t.numpy().tobytes())


def _model():
    tl.manual_seed(0)
    return nn.Linear(4, 2)


def _batch(i):
    return tl.tensor(np.random.RandomState(i).randn(3, 4).astype(np.float32))


# ------------------------------------------------------------------------------------------------ wrong answers

def test_a_number_computed_from_a_read_and_kept_runs_eagerly():
    """`correct += (pred == y).sum().item()`: a number computed from a read is a proxy too, so keeping it is seen
    (a replay would skip the `+=`); the call runs eagerly and the kept total is eager's."""
    batches = [tl.tensor(np.array([0.5, -1.5, 2.0, v], np.float32)) for v in (-3.0, 1.0, 4.0, 0.0)]

    def run(compiled):
        totals = {"loss": 0.0, "correct": 0}

        def evaluate(x):  # a validation step: the same batches every epoch
            loss = (x * x).mean()
            totals["loss"] += loss.item()
            totals["correct"] += (x > 0).sum().item()
            totals.setdefault("rounded", []).append(round(loss.item(), 3))  # a rounded read is computed from it too
            return loss.detach()
        f = tl.compile(evaluate) if compiled else evaluate
        for _epoch in range(3):
            for b in batches:
                f(b)
        return totals, getattr(f, "stats", None)
    (want, _), (got, stats) = run(False), run(True)
    assert got == want, (got, want, stats)


def test_an_optimizer_made_inside_the_step_runs_eagerly():
    """An optimizer built inside the step starts fresh on every eager call; a replay would keep stepping the recorded one:
    the call runs eagerly."""
    def run(compiled, opt_cls, **kw):
        model = _model()

        def step(x):
            opt = opt_cls(model.parameters(), lr=0.1, **kw)
            opt.zero_grad()
            loss = model(x).pow(2).mean()
            loss.backward()
            opt.step()
            return loss.item()
        f = tl.compile(step) if compiled else step
        losses = [f(_batch(i)) for i in range(12)]
        return losses, [p.numpy().copy() for p in model.parameters()]
    for opt_cls, kw in ((tl.optim.SGD, {"momentum": 0.9}), (tl.optim.Adam, {})):
        (le, pe), (lc, pc) = run(False, opt_cls, **kw), run(True, opt_cls, **kw)
        assert lc == le and all(np.array_equal(a, b) for a, b in zip(pc, pe)), opt_cls.__name__


def test_the_same_number_object_passed_twice_stays_one_object():
    """f(x, v, v) with dynamic=True: one proxy for one object, so `a is b` holds as in eager (and the aliasing is in
    the signature)."""
    def fn(x, a, b):
        return x * 2 if a is b else x * 3
    f = tl.compile(fn, dynamic=True)
    x = tl.tensor(X4)
    for v in (257.0, 258.0, 259.0):
        assert _bits(f(x, v, v)) == _bits(fn(x, v, v)), f.stats


def test_a_negative_zero_argument_is_a_signature_of_its_own():
    """0.0 == -0.0, but x / s is +inf or -inf: a number argument is keyed with its sign."""
    fn = lambda x, s: x / s  # noqa: E731
    f = tl.compile(fn)
    x = tl.tensor(X4)
    for s in (0.0, -0.0, 0.0, -0.0):
        assert _bits(f(x, s)) == _bits(fn(x, s)), (s, f.stats)


def test_a_guard_by_value_tells_negative_zero_from_zero_for_an_argument():
    """dynamic=True: math.copysign(1.0, s) guards s by value, and -0.0 fails a guard recorded with 0.0."""
    fn = lambda x, s: x * math.copysign(1.0, s)  # noqa: E731
    f = tl.compile(fn, dynamic=True)
    x = tl.tensor(X4)
    for s in (0.0, -0.0, 0.0, -0.0):
        assert _bits(f(x, s)) == _bits(fn(x, s)), (s, f.stats)


def test_a_guard_by_value_tells_negative_zero_from_zero_for_a_read():
    """`x / t.item()` guards the read by value; -0.0 fails a guard recorded with 0.0."""
    fn = lambda x, t: x / t.item()  # noqa: E731
    f = tl.compile(fn)
    x = tl.tensor(X4)
    for v in (0.0, -0.0, 0.0, -0.0):
        t = tl.tensor([v])
        assert _bits(f(x, t)) == _bits(fn(x, t)), (v, f.stats)


def test_dynamic_true_passes_list_and_dict_arguments_as_they_are():
    """dynamic=True passes list and dict arguments as they are (numbers in them stay guarded by value): the step's
    `metrics['loss'] = loss.item()` and `hist.append` reach the caller's objects, as in eager."""
    def step(x, metrics, hist):
        loss = (x * metrics["scale"]).sum()
        metrics["loss"] = loss.item()
        hist.append(1.0)
        return loss.detach()

    def run(compiled):
        f = tl.compile(step, dynamic=True) if compiled else step
        metrics, hist, seen = {"scale": 1.0}, [], []
        for i in range(4):
            metrics["scale"] = 1.0 + i
            f(tl.tensor(X4), metrics, hist)
            seen.append((dict(metrics), len(hist)))
        return seen
    assert run(True) == run(False)


@pytest.mark.parametrize("where", ["tuple-in-list", "set", "deque", "defaultdict", "OrderedDict", "slots", "closure"])
def test_a_kept_read_value_is_replaced_by_its_plain_value_wherever_python_keeps_it(where):
    """A kept read becomes its plain value in a tuple inside a list, a set, a deque, a dict subclass, __slots__ and a
    closure cell (json.dumps works; nothing keeps the capture alive)."""
    class Slotted:
        __slots__ = ("v",)

    def run(compiled):
        store = {"tuple-in-list": [], "set": set(), "deque": collections.deque(),
                 "defaultdict": collections.defaultdict(float), "OrderedDict": collections.OrderedDict(),
                 "slots": Slotted(), "closure": None}[where]
        cell = [None]

        def make():
            last = None

            def step(x):
                nonlocal last
                v = (x * x).mean().item()
                if where == "tuple-in-list":
                    store.append(("loss", v))
                elif where in ("set",):
                    store.add(v)
                elif where == "deque":
                    store.append(v)
                elif where in ("defaultdict", "OrderedDict"):
                    store["loss"] = v
                elif where == "slots":
                    store.v = v
                else:
                    last = v
                cell[0] = lambda: last
                return x.sum().detach()
            return step
        step = make()
        f = tl.compile(step) if compiled else step
        f(tl.tensor(X4))
        kept = {"tuple-in-list": lambda: store[0][1], "set": lambda: next(iter(store)), "deque": lambda: store[0],
                "defaultdict": lambda: store["loss"], "OrderedDict": lambda: store["loss"],
                "slots": lambda: store.v, "closure": lambda: cell[0]()}[where]()
        return type(kept), json.dumps(kept)
    assert run(True) == run(False)


@pytest.mark.parametrize("dynamic", [False, True])
def test_a_deep_copied_read_is_the_read_itself(dynamic):
    """`copy.deepcopy` of a read (a metrics dict) is the read itself, as for a float: its use stays guarded."""
    if dynamic:
        fn = lambda x, s: x * copy.deepcopy({"scale": s})["scale"]  # noqa: E731
        f = tl.compile(fn, dynamic=True)
        calls = [(tl.tensor(X4), v) for v in VALS]
    else:
        fn = lambda x: x * copy.deepcopy({"m": x.sum().item()})["m"]  # noqa: E731
        f = tl.compile(fn)
        calls = [(tl.tensor(X4 + i),) for i in range(12)]
    for args in calls:
        assert _bits(f(*args)) == _bits(fn(*args)), (args[1:], f.stats)


def test_a_deep_copy_of_a_read_kept_by_the_step_is_detected():
    """`self.best = copy.deepcopy(metrics)`: the copy holds the read itself, so keeping it is seen and the call runs
    eagerly."""
    store = {}

    def step(x):
        metrics = {"loss": x.sum().item()}
        store["last"] = copy.deepcopy(metrics)
        return x * 1
    f = tl.compile(step)
    for i in range(4):
        f(tl.tensor(X4 + i))
        assert type(store["last"]["loss"]) is float and store["last"]["loss"] == float((X4 + i).sum()), f.stats


@pytest.mark.parametrize("kind", ["OrderedDict", "defaultdict", "Counter"])
def test_a_returned_dict_subclass_keeps_its_type(kind):
    """A returned OrderedDict/defaultdict/Counter stays one, on the recorded call and on every replay."""
    fn = {"OrderedDict": lambda x: collections.OrderedDict(loss=x.sum().item(), y=x * 2),
          "defaultdict": lambda x: collections.defaultdict(float, loss=x.sum().item()),
          "Counter": lambda x: collections.Counter(positive=3, y=x * 1)}[kind]
    f = tl.compile(fn)
    for i in range(3):
        x = tl.tensor(X4 + i)
        assert type(f(x)) is type(fn(x)), f.stats


def test_an_exception_raised_by_the_step_carries_plain_values():
    """`raise ValueError('bad loss', loss.item())` during the recorded call hands the caller the float, as eager."""
    def step(x):
        raise ValueError("bad loss", x.sum().item())
    f = tl.compile(step)
    with pytest.raises(ValueError) as info:
        f(tl.tensor(X4))
    assert type(info.value.args[1]) is float


def test_a_read_returned_in_a_set_is_a_plain_value():
    """`return y, {loss.item()}`: the set holds the float (hashing the read guards it by value)."""
    def fn(x):
        return x * 1, {x.sum().item()}, frozenset([x.max().item()])
    f = tl.compile(fn)
    for i in range(3):
        _, a, b = f(tl.tensor(X4 + i))
        assert {type(v) for v in a | b} == {float} and a == {float((X4 + i).sum())}, f.stats


_SCALE = 1.0  # a module-level setting the next test changes between calls


@pytest.mark.parametrize("where", ["global", "attribute"])
def test_a_global_number_the_function_reads_is_a_guard(where):
    """`x * SCALE` with a module-level SCALE the caller changes, or `x / cfg.temperature` with the attribute changed:
    a guard."""
    global _SCALE
    cfg = types.SimpleNamespace(temperature=1.0)
    fn = (lambda x: x * _SCALE) if where == "global" else (lambda x: x / cfg.temperature)
    f = tl.compile(fn)
    x = tl.tensor(X4)
    try:
        for v in (1.0, 2.0, 3.0):
            _SCALE = cfg.temperature = v
            assert _bits(f(x)) == _bits(fn(x)), (v, f.stats)
    finally:
        _SCALE = 1.0


_CALLS = 0


def test_a_step_that_changes_a_global_number_itself_never_replays_and_counts_as_eager():
    """`global _CALLS; _CALLS += 1` inside the step: the guard snapshotted before the recording call fails on every
    later call, so nothing replays a stale count (after max_variants the calls run eagerly, warned once)."""
    global _CALLS

    def step(x):
        global _CALLS
        _CALLS += 1
        return x * _CALLS
    f = tl.compile(step, max_variants=2)
    _CALLS = 0
    with pytest.warns(tl.CompileWarning, match="the global '_CALLS' the function reads was"):
        outs = [f(tl.tensor(X4)).numpy() for _ in range(5)]
    assert _CALLS == 5 and all(np.array_equal(o, X4 * (i + 1)) for i, o in enumerate(outs))
    assert f.stats["replays"] == 0 and f.stats["eager_calls"] == 3


def test_a_dynamic_number_used_as_a_returned_key_is_a_plain_value():
    """`return {epoch: loss.item()}` (dynamic=True): the key is a plain int (hashing it guards it by value)."""
    fn = lambda x, epoch: {epoch: (x * 2).sum().item()}  # noqa: E731
    f = tl.compile(fn, dynamic=True)
    for epoch in range(4):
        x = tl.tensor(X4 + epoch)
        got = f(x, epoch)
        assert got == fn(x, epoch) and [type(k) for k in got] == [int], f.stats
        json.dumps(got)


@pytest.mark.parametrize("dynamic", [False, True])
def test_a_fresh_config_object_per_call_is_never_taken_for_the_last_one(dynamic):
    """Another object in the arguments is keyed by identity, and the variant holds it: a new `SimpleNamespace(scale=v)`
    per call cannot reuse the last one's id and replay its scale."""
    fn = lambda x, cfg: x * cfg.scale  # noqa: E731
    f = tl.compile(fn, dynamic=dynamic)
    x = tl.tensor(X4)
    for v in (1.0, 2.0, 3.0, 4.0):
        got = f(x, types.SimpleNamespace(scale=v))
        assert _bits(got) == _bits(fn(x, types.SimpleNamespace(scale=v))), (v, f.stats)


# ------------------------------------------------------------------------------------------------ crashes

@pytest.mark.parametrize("opt_cls", [tl.optim.SGD, tl.optim.Adam])
def test_an_optimizer_made_with_a_dynamic_learning_rate_runs_eagerly(opt_cls):
    """dynamic=True: `SGD(params, lr=lr)` inside the step takes the proxy as a number (no TypeError) and, made inside
    the step, runs eagerly with eager's results."""
    model = _model()

    def step(x, lr):
        opt = opt_cls(model.parameters(), lr=lr)
        opt.zero_grad()
        loss = model(x).pow(2).mean()
        loss.backward()
        opt.step()
        return loss.item()
    f = tl.compile(step, dynamic=True)
    for i in range(3):
        f(_batch(i), 0.1)


@pytest.mark.parametrize("use", ["real", "imag", "bit_length", "numerator", "pow3"])
def test_the_number_api_works_on_a_dynamic_number(use):
    """.real/.imag/.numerator/.bit_length and 3-argument pow work on a proxy as on its number."""
    fn = {"real": lambda x, n: x * n.real,
          "imag": lambda x, n: x + n.imag,
          "bit_length": lambda x, n: x * n.bit_length(),
          "numerator": lambda x, n: x * n.numerator,
          "pow3": lambda x, n: x * pow(n, 2, 7),
          "json": lambda x, n: (x * 1, json.dumps({"n": n}))}[use]
    f = tl.compile(fn, dynamic=True)
    x = tl.tensor(X4)
    for n in (3, 4, 5):
        got, want = f(x, n), fn(x, n)
        assert (_bits(got[0]), got[1]) == (_bits(want[0]), want[1]) if use == "json" else _bits(got) == _bits(want)


def test_a_read_kept_in_a_tuple_in_a_history_list_becomes_a_plain_float():
    """`history.append((step, loss.item()))`: the tuple in the list is rebuilt with the float (json.dumps works)."""
    history = []

    def step(x, i):
        loss = (x * x).mean()
        history.append((i, loss.item()))
        return loss.detach()
    f = tl.compile(step)
    for i in range(3):
        f(tl.tensor(X4), i)
    json.dumps(history)


def test_manual_seed_inside_the_step_reseeds_every_replay():
    """`tl.manual_seed(seed)` inside the step (a dynamic int too): a replay reseeds, so its dropout masks are eager's."""
    def step(x, seed):
        tl.manual_seed(seed)
        return F.dropout(x, 0.5)
    f = tl.compile(step, dynamic=True)
    x = tl.tensor(X4)
    for seed in (1, 2, 1):
        assert _bits(f(x, seed)) == _bits(step(x, seed))


# ------------------------------------------------------------------------------------------------ unhelpful errors

def test_an_unsupported_operator_on_a_dynamic_int_names_int():
    """`t << n` (unsupported by Tensor) names 'int' as eager does, not the proxy's class."""
    fn = lambda x, n: tl.arange(4) << n  # noqa: E731
    with pytest.raises(TypeError) as eager:
        fn(None, 3)
    f = tl.compile(fn, dynamic=True)
    with pytest.raises(TypeError) as compiled:
        f(None, 3)
    assert str(compiled.value) == str(eager.value)


def test_a_derived_number_branched_on_after_an_effect_is_guarded_before_it():
    """A number computed from an argument after the update, then branched on: it depends on the call's numbers
    alone, so its guard is checked before the update (review s21d: it ran eagerly, "compared in Python after the
    call already changed state"); a branch that flips records another variant (as does the second call: `p.grad =
    None` guards the gradients' None-ness); eager's results and weights."""
    def run(compiled):
        model = _model()

        def step(x, lr):
            _manual_sgd(model, x, lambda p: p.sub_(p.grad, alpha=lr))
            return x * 2 if lr * 10 > 0.5 else x
        f = tl.compile(step, dynamic=True) if compiled else step
        outs = [f(_batch(i), 0.01 * (i + 1)).numpy().copy() for i in range(8)]
        return outs + [p.numpy().copy() for p in model.parameters()], getattr(f, "stats", None)
    (got, stats), (want, _) = run(True), run(False)
    assert all(np.array_equal(g, w) for g, w in zip(got, want))
    assert stats["traces"] == 3 and stats["replays"] == 5 and stats["eager_calls"] == 0, stats


def _manual_sgd(model, x, update):
    for p in model.parameters():
        p.grad = None
    model(x).pow(2).mean().backward()
    with tl.no_grad():
        for p in model.parameters():
            update(p)


@pytest.mark.parametrize("use", ["range-of-read", "range-of-arg", "list-index-arg", "tensor-slice-arg"])
def test_using_a_float_proxy_as_an_integer_raises_the_eager_type_error(use):
    """`range(loss.item())`, `[..][s]`, `x[:s]` with a float proxy raise eager's TypeError, not AttributeError."""
    fn = {"range-of-read": lambda x, s: x * len(range(x.sum().item())),
          "range-of-arg": lambda x, s: x * len(range(s)),
          "list-index-arg": lambda x, s: x * [1, 2, 3][s],
          "tensor-slice-arg": lambda x, s: x[:s] * 1}[use]
    x = tl.tensor(X4)
    with pytest.raises(TypeError):
        fn(x, 1.5)
    f = tl.compile(fn, dynamic=True)
    with pytest.raises(TypeError):
        f(x, 1.5)


# ------------------------------------------------------------------------------------------------ performance only

def test_a_numpy_nan_scalar_argument_matches_its_own_signature():
    """np.float32('nan') as an argument matches its own signature (NaN keys as NaN), so the call replays."""
    fn = lambda x, s: x * s  # noqa: E731
    f = tl.compile(fn)
    x = tl.tensor(X4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(4):
            f(x, np.float32("nan"))
    assert f.stats["traces"] == 1 and f.stats["replays"] == 3, f.stats


@pytest.mark.parametrize("update", ["add_-alpha-neg-lr", "sub_-alpha-lr"])
def test_manual_sgd_with_a_dynamic_learning_rate_replays(update):
    """`p.add_(p.grad, alpha=-lr)` / `p.sub_(p.grad, alpha=lr)` with dynamic=True: alpha is an operand, not a guard,
    and the parameters are eager's."""
    def run(compiled):
        model = _model()

        def step(x, lr):
            _manual_sgd(model, x, (lambda p: p.add_(p.grad, alpha=-lr)) if update == "add_-alpha-neg-lr" else
                        (lambda p: p.sub_(p.grad, alpha=lr)))
        f = tl.compile(step, dynamic=True) if compiled else step
        for i in range(12):
            f(_batch(i), 0.01 * (i + 1))
        return [p.numpy().copy() for p in model.parameters()], f
    (got, f), (want, _) = run(True), run(False)
    assert all(np.array_equal(a, b) for a, b in zip(got, want))
    assert f.stats["traces"] == 2 and f.stats["replays"] == 10, f.stats  # (the 1st call starts with no .grad)

