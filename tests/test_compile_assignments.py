"""tl.compile: attributes the function assigns on objects that outlive the call (a replay runs no Python). A counter
moved by a constant (`self.steps += 1`, `-=`) is moved by each replay as the recording call moved it (none in a
branch it did not take, n times in a loop of n: the guards fix that for every replay of the record); any other
assignment (`self.last = out.detach()`, `state.lr = ...`, `del obj.x`) runs the call eagerly with the reason, since a
replay would leave the value the recording call set (it did, before session 22). Each case runs beside an eager
twin and compares the results and the objects' attributes."""
import numpy as np
import pytest

import tinygrad_lite as tl

nn = tl.nn
CALLS = 8


class _Box:
    pass


def _x(i):
    return tl.tensor(np.full((3,), float(i), np.float32))


def _twin(make, args=lambda i: (_x(i),), calls=CALLS):
    """make() -> (step, state()) or (step, state(), args(i)): compiled and eager twins over calls with args(i); asserts
    the same results and state; returns the stats."""
    runs = []
    for compiled in (True, False):
        tl.manual_seed(0)
        step, state, *own = make()
        if own:
            args = own[0]
        f = tl.compile(step) if compiled else step
        outs = [f(*args(i)) for i in range(calls)]
        outs = [o.numpy().tolist() if isinstance(o, tl.Tensor) else o for o in outs]
        runs.append((outs, state(), getattr(f, "stats", None)))
    (got, got_state, stats), (want, want_state, _) = runs
    assert got == want and got_state == want_state, (got, got_state, want, want_state, stats)
    assert all(type(a) is type(b) for a, b in zip(got_state, want_state)), (got_state, want_state)
    return stats


def _replays(stats, traces=1):
    assert stats["traces"] == traces and stats["eager_calls"] == 0 and stats["replays"] == CALLS - traces, stats


def _eager(stats, what):
    assert stats["replays"] == 0 and what in stats["last_reason"], stats


def test_a_counter_on_self_moves_at_every_replay():
    def make():
        class Trainer:
            def __init__(self):
                self.steps, self.budget = 0, 10.0

            def step(self, x):
                self.steps += 1
                self.budget -= 0.25
                return (x * 2).sum().item()
        t = Trainer()
        return t.step, lambda: [t.steps, t.budget]
    _replays(_twin(make))


def test_counters_on_a_global_a_closure_and_an_argument_object():
    def make():
        box, arg = _Box(), _Box()
        box.n, arg.n = 0, 100
        _GLOBAL.n = 5

        def step(x, state):
            box.n += 1
            _GLOBAL.n -= 1
            state.n += 3
            return x * 2
        return step, lambda: [box.n, _GLOBAL.n, arg.n], lambda i: (_x(i), arg)
    _replays(_twin(make))


_GLOBAL = _Box()


def test_a_counter_in_a_branch_and_in_a_loop_moves_as_the_recording_call_did():
    """The branch depends on a bool argument (a guard: one record for each), the loop on a constant."""
    def make():
        b = _Box()
        b.hits, b.total = 0, 0

        def step(x, flag):
            if flag:
                b.hits += 1
            for _ in range(3):
                b.total += 2
            return x + 1
        return step, lambda: [b.hits, b.total]
    stats = _twin(make, args=lambda i: (_x(i), i % 3 == 0))
    assert stats["traces"] == 2 and stats["eager_calls"] == 0, stats


def test_a_counter_moved_by_two_constants_runs_eagerly():
    def make():
        b = _Box()
        b.n = 0

        def step(x, flag):
            if flag:
                b.n += 1
            else:
                b.n += 2
            return x * 1
        return step, lambda: [b.n]
    _eager(_twin(make, args=lambda i: (_x(i), i % 2 == 0)), "counter 'n'")


@pytest.mark.parametrize("kind", ["tensor", "number", "delete"])
def test_any_other_assignment_runs_eagerly_and_keeps_eagers_values(kind):
    def make():
        b = _Box()
        b.last, b.tmp = None, 1

        def step(x):
            out = x * 2
            if kind == "tensor":
                b.last = out.detach()
            elif kind == "number":
                b.last = x.shape[0] * 2  # (a value the guards fix: still an assignment a replay does not run)
            else:
                del b.tmp
                b.tmp = 1
            return out.sum().item()
        return step, lambda: [b.last.numpy().tolist() if kind == "tensor" else b.last, b.tmp]
    _eager(_twin(make), "'b.")


def test_a_counter_a_module_keeps_in_its_forward_runs_eagerly_as_other_module_assignments():
    def make():
        class Counting(nn.Module):
            def __init__(self):
                super().__init__()
                self.lin = nn.Linear(3, 2)
                self.calls = 0

            def forward(self, x):
                self.calls += 1
                return self.lin(x)
        m = Counting()
        return (lambda x: m(x.reshape(1, 3)).detach()), lambda: [m.calls]
    stats = _twin(make)
    assert stats["replays"] == 0, stats


def test_a_counters_object_replaced_between_calls_is_the_one_moved():
    """`self.stats = Stats()` (or a global rebound) between calls: the counter's object is guarded by identity, so a
    replay never moves the old object's counter (it did, with the first version of the counters)."""
    class Stats:
        def __init__(self):
            self.n = 0
    holder = _Box()

    def make():
        holder.stats = Stats()

        def step(x):
            holder.stats.n += 1
            return x * 2
        olds = []

        def state():
            return [holder.stats.n] + [s.n for s in olds]

        def args(i):
            if i == 4:
                olds.append(holder.stats)
                holder.stats = Stats()
            return (_x(i),)
        return step, state, args
    stats = _twin(make)
    assert stats["traces"] == 2 and stats["eager_calls"] == 0, stats
