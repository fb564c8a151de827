"""Review of 639636e/fba2418 (tl.compile: attribute assignments on objects that outlive the call run eagerly; a counter
moved by a constant is moved by each replay). Each test runs a compiled step beside an eager twin (the helper of
test_compile_assignments) and compares the results and the objects' attributes after every call."""
import types

import pytest

import tinygrad_lite as tl

from test_compile_assignments import _Box, _eager, _replays, _twin, _x

nn = tl.nn


class _Counted:
    count = 0
    last = None

    @classmethod
    def bump(cls):
        cls.count += 1

    @classmethod
    def keep(cls, v):
        cls.last = v


class _Made:
    made = 0

    def __init__(self, v):
        _Made.made += 1  # (a class-level instance count)
        self.v = v  # (a store on the new instance: no reason to run eagerly)


_MOD = types.ModuleType("user_settings")  # a user's module object reached from a global


# Was stale: a counter on a class (reached from a global, `self.__class__` or a classmethod's `cls`) was neither a
# counter nor a store (assigned() skipped every class, to skip the constructor of a class the step instantiates,
# which is scanned with the class as `self`): replays left it at the recording call's value
@pytest.mark.parametrize("how", ["global", "classmethod", "constructor"])
def test_a_counter_on_a_class_moves_at_every_replay(how):
    def make():
        _Counted.count, _Made.made = 0, 0

        def step(x):
            if how == "global":
                _Counted.count += 1
            elif how == "classmethod":
                _Counted.bump()
            else:
                return _Made(x * 2).v
            return x * 2
        return step, lambda: [_Counted.count, _Made.made]
    _replays(_twin(make))


# Was stale: a tensor stored on a class attribute (directly or by a classmethod) kept the recording call's tensor
@pytest.mark.parametrize("how", ["global", "classmethod"])
def test_a_tensor_stored_on_a_class_runs_eagerly(how):
    def make():
        _Counted.last = None

        def step(x):
            out = x * 2
            if how == "global":
                _Counted.last = out.detach()
            else:
                _Counted.keep(out.detach())
            return out
        return step, lambda: [_Counted.last.numpy().tolist()]
    _eager(_twin(make), "last")


# Was stale: assignments on a user's module object (`settings.count += 1`, `settings.last = t`) were skipped as
# modules: a replay neither moved the counter nor ran eagerly for the stored tensor
@pytest.mark.parametrize("kind", ["counter", "tensor"])
def test_assignments_on_a_users_module_object(kind):
    def make():
        _MOD.count, _MOD.last = 0, None

        def count(x):
            _MOD.count += 1
            return x * 2

        def keep(x):  # (its own function: the scan reads all of a function's code, branches too)
            out = x * 2
            _MOD.last = out.detach()
            return out
        return {"counter": count, "tensor": keep}[kind], \
            lambda: [_MOD.count, None if _MOD.last is None else _MOD.last.numpy().tolist()]
    stats = _twin(make)
    _replays(stats) if kind == "counter" else _eager(stats, "_MOD.last")


# Was stale: `object.__setattr__(box, "last", t)` (a frozen dataclass's way to assign) was not seen as setattr's
def test_object_setattr_runs_eagerly():
    def make():
        b = _Box()
        b.last = None

        def step(x):
            out = x * 2
            object.__setattr__(b, "last", out.detach())
            return out
        return step, lambda: [b.last.numpy().tolist()]
    _eager(_twin(make), "setattr(b, ...)")


# Was a different outcome: a counter set to None between calls makes the eager step raise at its `+=`, before the
# optimizer's update; a replay ran the whole step (parameters updated) and then raised from moving the counter (with
# `+`'s message, not `+=`'s). The counters are now checked to be plain numbers before a replay runs.
def test_a_counter_set_to_none_raises_as_eagerly_before_any_update():
    def make():
        tl.manual_seed(0)
        b, model = _Box(), nn.Linear(3, 1)
        b.n = 0
        opt = tl.optim.SGD(model.parameters(), lr=0.1)

        def step(x):
            opt.zero_grad()
            loss = model(x.reshape(1, 3)).sum()
            b.n += 1
            loss.backward()
            opt.step()
            return loss.detach()

        def args(i):
            if i == 5:
                b.n = None
            return (_x(i),)
        return step, lambda: [b.n, model.weight.numpy().tolist()], args
    results = []
    for compiled in (True, False):
        step, state, args = make()
        f = tl.compile(step) if compiled else step
        seen = []
        for i in range(7):
            try:
                seen.append(f(*args(i)).numpy().tolist())
            except TypeError as exc:
                seen.append(str(exc))
            seen.append(state())
        results.append(seen)
    assert results[0] == results[1], results


# Was stale (fixed in the twenty-third session): an attribute assigned on an object a call returns
# (`self.get_stats().n += 1`, `type(self).count += 1`, `self.get_stats().last = t`): bytecode._chains followed only
# chains from globals, cells, `self` and the arguments, so the replay left the recording call's value. Such a store
# (STORED_ON_VALUE) now runs the call eagerly; more forms in test_compile_stores_on_values.py.
@pytest.mark.parametrize("how", ["method result counter", "type(self) counter", "method result tensor"])
def test_an_assignment_on_an_object_a_call_returns(how):
    def make():
        class Trainer:
            count = 0

            def __init__(self):
                self.stats = _Box()
                self.stats.n, self.stats.last = 0, None

            def get_stats(self):
                return self.stats

            def counter(self, x):
                self.get_stats().n += 1
                return x * 2

            def by_type(self, x):
                type(self).count += 1
                return x * 2

            def keep(self, x):
                out = x * 2
                self.get_stats().last = out.detach()
                return out
        t = Trainer()
        step = {"method result counter": t.counter, "type(self) counter": t.by_type,
                "method result tensor": t.keep}[how]
        return step, lambda: [t.stats.n, Trainer.count,
                              None if t.stats.last is None else t.stats.last.numpy().tolist()]
    _eager(_twin(make), "reached through a call's result")
