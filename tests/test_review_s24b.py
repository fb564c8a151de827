"""Review of session 24b (tl.compile: `return out.numpy()` and `return out.tolist()` replayed): inputs where the
compiled function returned other values than its eager twin.

- tolist() of a 0-d int or bool tensor is a Python int or bool, and CPython shares small ints and True/False: the
  walk of the result, which finds the returned value by identity, also took another 1 or True of the result for it
  (`return {"n": 6, "best": x.argmax().tolist()}`, two 0-d `(...).tolist()` of one value), so each replay returned
  the tolist() value there, in place of the literal or of the other tensor's value.
- tolist()'s list holds the tensor's values at the tolist() call, but a replay made it from the tensor's memory at
  the end of the call: a write between the two (`return w.tolist(), opt.step()`, `return out.tolist(),
  out.mul_(2)`) was in every replay's list and not in eager's.
- A tensor made of Python values in the call (`tl.tensor([1.0, 2.0])`), returned or its numpy(), was one array
  for every replay: a caller that changed the returned array changed what the next calls returned (eager makes a new
  one each call).
- An in-place operation on such a constant (`c = tl.tensor([1.0, 2.0]); c.add_(x.sum())`, a metric summed into
  `tl.tensor(0.0)` under no_grad) accumulated over replays: the plan held one array for it, which each replay's write
  changed, also for the steps that read it before the write. Fixed after the review (capture._written_constant):
  each replay copies the constant's values into a slot of its own; through a view, or with a view taken before,
  the call runs eagerly.

Each case runs beside its eager twin and compares every result, at the call and after all calls."""
import pytest

import tinygrad_lite as tl
from _compile_common import features, seeded_model
from test_compile_returned_conversions import _plain

CALLS = 8


def _inputs():
    return [features(seed=i) for i in range(CALLS)]


def _twins(make, change=None):
    """Run `make() -> (fn, state)` compiled and eagerly over the same inputs; `change(result)`, when given, is what
    the caller does with each result before the next call. Returns the compiled function's stats."""
    runs = []
    for compiled in (True, False):
        fn, state = make()
        f = tl.compile(fn) if compiled else fn
        outs, at_call = [], []
        for x in _inputs():
            out = f(x)
            at_call.append(_plain(out))
            outs.append(out)
            if change is not None:
                change(out)
        runs.append((outs, at_call, _plain(state()), getattr(f, "stats", None)))
    (got, got_at_call, got_state, stats), (want, want_at_call, want_state, _) = runs
    assert got_at_call == want_at_call
    assert [_plain(o) for o in got] == [_plain(o) for o in want]
    assert got_state == want_state
    return stats


# ---- tolist() of a 0-d tensor ------------------------------------------------------------------------------------

def _literal_beside_argmax():
    def predict(x):
        with tl.no_grad():
            return {"n": 6, "best": x.argmax().tolist()}  # (argmax is 6 for the first input)
    return predict, lambda: []


def _two_flags():
    def predict(x):
        with tl.no_grad():
            return (x[0].sum() > 0).tolist(), (x[1].sum() > 0).tolist()  # (both True for the first input)
    return predict, lambda: []


@pytest.mark.parametrize("make", [_literal_beside_argmax, _two_flags], ids=["literal int", "two bools"])
def test_a_0d_tolist_int_or_bool_is_not_taken_for_an_equal_value_of_the_result(make):
    stats = _twins(make)
    assert stats["replays"] == 0 and "tolist()" in stats["last_reason"], stats  # (.item() replays)


# ---- tolist() before a write in the same call ---------------------------------------------------------------------

def _weights_then_step():
    model = seeded_model()
    opt = tl.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    def step(x):
        opt.zero_grad()
        (model(x) ** 2).mean().backward()
        return model[0].weight.detach().tolist(), opt.step()
    return step, lambda: [p.detach() for p in model.parameters()]


def _output_then_scaled():
    model = seeded_model()

    def predict(x):
        with tl.no_grad():
            out = model(x)
            return out.tolist(), out.mul_(2), out.numpy()
    return predict, lambda: []


def _grad_then_zeroed():
    model = seeded_model()
    opt = tl.optim.SGD(model.parameters(), lr=0.1)

    def step(x):
        opt.zero_grad()
        (model(x) ** 2).mean().backward()
        opt.step()
        return model[0].weight.grad.tolist(), model[0].weight.grad.numpy(), opt.zero_grad(set_to_none=False)
    return step, lambda: [p.detach() for p in model.parameters()]


@pytest.mark.parametrize("make", [_weights_then_step, _output_then_scaled, _grad_then_zeroed],
                         ids=["opt.step()", "mul_", "zero_grad"])
def test_tolist_holds_the_values_at_its_call_not_after_a_later_write(make):
    stats = _twins(make)
    assert stats["replays"] > 0, stats


# ---- a returned tensor made of Python values ----------------------------------------------------------------------

def _change(out):
    for o in out:
        if isinstance(o, tl.Tensor):
            o.add_(10)
        else:
            o += 10


def test_a_returned_constant_is_each_calls_own():
    def make():
        def fn(x):
            with tl.no_grad():
                return tl.tensor([1.0, 2.0]).numpy(), tl.tensor(3.0), x.sum().numpy()
        return fn, lambda: []
    stats = _twins(make, change=_change)
    assert stats["replays"] == CALLS - 1, stats


def test_an_in_place_write_into_a_constant_made_in_the_call_starts_from_the_constant_each_call():
    def make():
        def fn(x):
            with tl.no_grad():
                c = tl.tensor([1.0, 2.0])
                before = c * 2  # (read before the write: the constant's own values)
                c.add_(x.sum())
                return c.numpy(), c, before
        return fn, lambda: []
    stats = _twins(make)
    assert stats["replays"] == CALLS - 1, stats


def test_a_metric_summed_into_a_tensor_of_a_python_number_under_no_grad_is_each_calls_own():
    def make():
        model = seeded_model()

        def evaluate(x):
            with tl.no_grad():
                correct, total = tl.tensor(0), tl.tensor(0.0)
                for row in range(x.shape[0]):
                    out = model(x[row:row + 1])
                    correct += (out.argmax(1) == 0).sum()
                    total += out.sum()
                return correct.item(), total.item()
        return evaluate, lambda: []
    stats = _twins(make)
    assert stats["replays"] == CALLS - 1, stats


def test_a_constant_changed_through_a_view_runs_the_call_eagerly():
    def make():
        def fn(x):
            with tl.no_grad():
                c = tl.tensor([1.0, 2.0, 3.0])
                c[0:2].add_(x.sum())
                return c.sum().item()
        return fn, lambda: []
    stats = _twins(make)
    assert stats["replays"] == 0 and "changed in" in stats["last_reason"], stats


def test_a_constant_viewed_before_it_is_changed_in_place_runs_the_call_eagerly():
    """The view shows the change in eager; a replay's view (of the constant's values) would not."""
    def make():
        def fn(x):
            with tl.no_grad():
                c = tl.tensor([1.0, 2.0])
                v = c[0:1]
                c.add_(x.sum())
                return v.sum().item(), c.sum().item()
        return fn, lambda: []
    stats = _twins(make)
    assert stats["replays"] == 0 and "changed in" in stats["last_reason"], stats
