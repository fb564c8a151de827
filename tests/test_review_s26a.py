"""Review s26a of tl.compile's returned values (`float()` of reads, the generated result builder): probes of what
a compiled step returns against its eager twin, over several calls with changing inputs."""

import numpy as np

import tinygrad_lite as tl

F = tl.nn.functional
CALLS = 6


def _setup():
    tl.manual_seed(0)
    model = tl.nn.Sequential(tl.nn.Linear(4, 8), tl.nn.ReLU(), tl.nn.Linear(8, 2))
    return model, tl.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)


def _inputs(i):
    rng = np.random.default_rng(i)
    return (tl.tensor(rng.standard_normal((3, 4)).astype(np.float32)),
            tl.tensor(rng.standard_normal((3, 2)).astype(np.float32)))


def _train(model, opt, x, y):
    opt.zero_grad()
    out = model(x)
    loss = F.mse_loss(out, y)
    loss.backward()
    opt.step()
    return loss, out


def _twins(make, look):
    """`look(result)` of each call of the step `make(model, opt)`, eager and compiled (taken right after the call),
    and the compiled function's stats."""
    seen = []
    for compiled in (False, True):
        model, opt = _setup()
        step = make(model, opt)
        f = tl.compile(step) if compiled else step
        seen.append([look(f(*_inputs(i))) for i in range(CALLS)])
    return seen[0], seen[1], f.stats


# ---------------- 1. a returned container subclass with attributes set on it ----------------

class _Metrics(dict):
    pass


class _Outputs(list):
    pass


class _Pair(tuple):
    pass


def _metrics(model, opt):
    def step(x, y):
        loss, out = _train(model, opt, x, y)
        res = _Metrics(loss=loss.item())
        res.out = out.detach()  # an attribute of the returned object: each call's own tensor
        return res
    return step


def _outputs(model, opt):
    def step(x, y):
        loss, out = _train(model, opt, x, y)
        res = _Outputs([loss.item()])
        res.out = out.detach()
        return res
    return step


def _pair(model, opt):
    def step(x, y):
        loss, out = _train(model, opt, x, y)
        res = _Pair((loss.item(),))
        res.out = out.detach()
        return res
    return step


def _attribute(res):
    return type(res).__name__, (res.out.numpy().copy() if hasattr(res, "out") else "missing")


def _same(want, got):
    for (wc, wv), (gc, gv) in zip(want, got):
        assert wc == gc
        assert isinstance(wv, np.ndarray) and isinstance(gv, np.ndarray), (wv, gv)
        assert np.array_equal(wv, gv)


def test_a_returned_dict_subclass_with_an_attribute_holding_a_tensor_is_not_the_recorded_tensor():
    """`d = Metrics(loss=...); d.out = out.detach(); return d`: each replay copied the recorded dict, attributes
    included, so `d.out` was the recording call's tensor on every call (a stale value)."""
    want, got, _ = _twins(_metrics, _attribute)
    _same(want, got)


def test_a_returned_list_or_tuple_subclass_keeps_the_attributes_set_on_it():
    """A list or tuple subclass was rebuilt from its items alone, on the recording call too: its attributes were
    gone (eager's `res.out` an AttributeError for the caller)."""
    for make in (_outputs, _pair):
        want, got, _ = _twins(make, _attribute)
        _same(want, got)


# ---------------- 2. the same tensor returned twice ----------------

def test_the_same_tensor_returned_twice_is_one_object_and_two_tensors_on_one_array_stay_two():
    def make(model, opt):
        def step(x, y):
            loss, out = _train(model, opt, x, y)
            d = out.detach()
            return d, d, {"again": d}, out.detach()
        return step

    def look(res):
        return res[0] is res[1], res[0] is res[2]["again"], res[0] is res[3], res[0].numpy().copy()
    want, got, stats = _twins(make, look)
    assert stats["replays"] == CALLS - 1, stats
    assert [w[:3] for w in want] == [g[:3] for g in got]
    assert all(np.array_equal(w[3], g[3]) for w, g in zip(want, got))


# ---------------- 3. a container from outside the call, returned ----------------

def test_a_returned_container_from_outside_the_call_is_that_container():
    """`return loss.item(), metrics` with `metrics` a dict the caller keeps: eager returns the caller's dict (what
    the caller then writes into it is in `metrics`); a replay returned a new dict of the recorded contents, so the
    caller's updates went nowhere and `metrics` ended different."""
    results = []
    for compiled in (False, True):
        model, opt = _setup()
        metrics, history = {"seen": 0}, []

        def step(x, y):
            loss, out = _train(model, opt, x, y)
            return loss.item(), metrics, history

        f = tl.compile(step) if compiled else step
        looks = []
        for i in range(CALLS):
            loss, m, h = f(*_inputs(i))
            looks.append((m is metrics, h is history, loss))
            m["seen"] += 1  # the caller counts in the dict the step returned
        results.append((looks, dict(metrics)))
    assert results[0] == results[1]


def test_a_replay_returns_the_container_from_outside_the_call_itself():
    """The same, on replays: a list and a dict the step only returns are those objects, not copies."""
    model, opt = _setup()
    settings, names = {"lr": 0.1}, ["loss"]

    def step(x, y):
        loss, out = _train(model, opt, x, y)
        return {"loss": loss.item()}, settings, (names, out.detach())

    f = tl.compile(step)
    for i in range(CALLS):
        losses, s, (n, _) = f(*_inputs(i))
        assert s is settings and n is names and losses.keys() == {"loss"}
    assert f.stats["replays"] == CALLS - 1, f.stats


def test_a_container_from_outside_returned_beside_float_or_tolist_is_itself():
    """`return float(loss), settings` (or beside `.tolist()`): the walk that puts float()'s and tolist()'s stand-ins
    in the result rebuilt every tuple, list and dict of it, so `settings` came back a copy even on the recording
    call."""
    model, opt = _setup()
    settings = {"lr": 0.1}

    def step(x, y):
        loss, out = _train(model, opt, x, y)
        return float(loss), [settings], out.detach().tolist()

    f = tl.compile(step)
    for i in range(CALLS):
        _, (s,), _ = f(*_inputs(i))
        assert s is settings
    assert f.stats["replays"] == CALLS - 1, f.stats
