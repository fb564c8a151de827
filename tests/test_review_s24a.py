"""Review of session 24a (tl.compile: methods Python calls unnamed, `return float(loss)` replayed): inputs where the
compiled step gave another result or state than its eager twin.

- A returned float() is each call's own only when the call at float()'s frame position is the builtin float itself
  and its value goes untouched to the return: `sorted(map(float, ts))` and `list(filter(f, map(float, ts)))` (a call
  that calls float() inside and decides with the numbers) replayed the recording call's order and choice, and a
  walrus (`return (v := float(x)), v * 2`, or a closure over v) kept the recording call's number.
- The stack follower of `obj[k] = v`, `del obj[k]` and `m += x` stopped at a call or a conditional expression in
  the key or the operand (`m[len(ks)] = 1`, `m += loss.item()`, `m[0 if flag else 1] = 1`) and never looked at
  a call's result (`get_meter()[0] = 1`): the user's __setitem__/__iadd__ was not read and
  every replay left the recording call's state; a NumPy argument written that way was left unwritten.

Each case runs beside its eager twin (test_compile_assignments' helper) and compares results and state."""
import numpy as np
import pytest

import tinygrad_lite as tl

from test_compile_assignments import CALLS, _eager, _replays, _twin


def _x(i):
    return tl.tensor(np.array([float(i), 1.0 - i, 3.0], np.float32))  # (t[0] rises while t[1] falls)


def _own(make):
    """_twin over this file's inputs, whose first two items cross."""
    return _twin(make, args=lambda i: (_x(i),))


def _model():
    tl.manual_seed(0)
    return tl.nn.Linear(3, 2)


# ---- returned float() --------------------------------------------------------------------------------------------

def _no_state():
    return lambda: []


def _sorted(t):
    return sorted(map(float, [t[0], t[1]]))


def _filtered(t):
    return list(filter(lambda v: v > -0.5, map(float, [t[0], t[1]])))


@pytest.mark.parametrize("step", [_sorted, _filtered], ids=["sorted", "filter"])
def test_a_call_that_calls_float_and_decides_with_the_numbers_is_no_returned_float(step):
    _own(lambda: (step, _no_state()))


def test_a_walrus_on_a_returned_float_is_used_by_python_so_stays_a_guard():
    def make():
        def step(t):
            return (v := float(t[0])), v * 2
        return step, _no_state()
    _own(make)


def test_a_closure_over_a_walrus_returned_float_gives_each_calls_number():
    runs = []
    for compiled in (True, False):
        def step(t):
            return (v := float(t[0])), (lambda: v)
        f = tl.compile(step) if compiled else step
        runs.append([(a, get()) for a, get in (f(_x(i)) for i in range(CALLS))])
    assert runs[0] == runs[1], runs


# ---- methods Python calls unnamed: keys and operands with calls and conditional expressions ------------------------

class _Meter:
    """Counts what Python calls on it: `+=`, item writes and deletes."""

    def __init__(self):
        self.adds = self.writes = self.deletes = 0

    def __iadd__(self, other):
        self.adds += 1
        return self

    def __setitem__(self, key, value):
        self.writes += 1

    def __delitem__(self, key):
        self.deletes += 1


def _counts(m):
    return lambda: [m.adds, m.writes, m.deletes]


def _steps(model, meter, keys):
    def key_call(t):
        meter[len(keys)] = 1
        return model(t).sum().item()

    def key_conditional(t, flag=True):
        meter[0 if flag else 1] = 1
        return model(t).sum().item()

    def key_formatted(t):
        meter[f"{len(keys)}"] = 1
        return model(t).sum().item()

    def delete_key_call(t):
        del meter[len(keys)]
        return model(t).sum().item()

    def operand_call(t):
        m = meter
        loss = model(t).sum()
        m += loss.item()
        return loss.item()

    def operand_conditional(t, flag=True):
        m = meter
        m += 1 if flag else 2
        return model(t).sum().item()

    def get_meter():
        return meter

    def call_result(t):
        get_meter()[0] = 1
        return model(t).sum().item()
    return {f.__name__: f for f in (key_call, key_conditional, key_formatted, delete_key_call, operand_call,
                                    operand_conditional, call_result)}


@pytest.mark.parametrize("name", list(_steps(None, None, None)))
def test_a_users_item_write_or_in_place_operator_moves_its_counter_at_every_replay(name):
    def make():
        meter = _Meter()
        return _steps(_model(), meter, [1, 2])[name], _counts(meter)
    _replays(_own(make))


def _array_steps(model, keys):
    def key_call(t, a):
        a[len(keys)] = 5.0
        return model(t).sum().item()

    def key_conditional(t, a, flag=True):
        a[0 if flag else 1] = 5.0
        return model(t).sum().item()

    def operand_call(t, a):
        a += np.ones(3, np.float32)
        return model(t).sum().item()
    return {f.__name__: f for f in (key_call, key_conditional, operand_call)}


@pytest.mark.parametrize("name", list(_array_steps(None, None)))
def test_a_numpy_argument_written_with_a_computed_key_or_operand_runs_eagerly(name):
    def make():
        arrays = [np.zeros(3, np.float32) for _ in range(CALLS)]
        return (_array_steps(_model(), [1, 2])[name], lambda: [a.tolist() for a in arrays],
                lambda i: (_x(i), arrays[i]))
    _eager(_twin(make), "NumPy argument")
