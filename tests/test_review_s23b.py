"""Review of cc1b13b (tl.compile: an attribute assigned on an object the scan cannot name runs the call eagerly).
Each test runs a compiled step beside an eager twin (test_compile_assignments' helper) and compares results and the
objects' state after every call; `_replays`/`_eager` then say whether the compiled twin replayed or ran eagerly."""
import dataclasses
import types

import numpy as np
import pytest

import tinygrad_lite as tl

from test_compile_assignments import _Box, _eager, _replays, _twin, _x

nn = tl.nn


def _model():
    tl.manual_seed(0)
    m = nn.Linear(3, 2)
    return m, tl.optim.SGD(m.parameters(), lr=0.1)


def _params(m):
    return lambda: [p.numpy().tolist() for p in m.parameters()]


class _Metrics:
    def __init__(self):
        self.n, self.last = 0, None


@dataclasses.dataclass
class _Result:
    loss: object
    n: int = 0


# Over-strict since cc1b13b (replayed correctly before): an object the step makes by calling a class is new at every
# call, so what the step assigns on it cannot outlive the call; the fallback ran every call eagerly.
@pytest.mark.parametrize("how", ["user class", "dataclass", "library class"])
def test_attributes_of_an_object_made_in_the_step_replay(how):
    def make():
        m, opt = _model()

        def step(x):
            loss = (m(x) ** 2).sum()
            if how == "user class":
                r = _Metrics()
                r.n += 1
                r.last = loss
            elif how == "dataclass":
                r = _Result(loss)
                r.n = 3
            else:
                r = types.SimpleNamespace()
                r.last = loss
            opt.zero_grad()
            loss.backward()
            opt.step()
            return loss
        return step, _params(m)
    _replays(_twin(make))


# Over-strict since cc1b13b: a loop over a Module's submodules setting a flag on each (Module.__setattr__ makes the
# call run eagerly itself when a module that ran is given a new value) ran every call eagerly.
def test_a_flag_set_on_each_submodule_replays():
    def make():
        tl.manual_seed(0)
        m = nn.Sequential(nn.Linear(3, 2), nn.ReLU())
        opt = tl.optim.SGD(m.parameters(), lr=0.1)

        def step(x):
            for mod in m.modules():
                mod.training = True
            loss = (m(x) ** 2).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            return loss
        return step, _params(m)
    _replays(_twin(make))


# (still eager, rightly: a function's result may be an object that outlives the call)
def test_an_object_a_function_returns_still_runs_eagerly():
    keep = _Metrics()

    def make():
        keep.n = 0

        def get():
            return keep

        def step(x):
            r = get()
            r.n += 1
            return x * 2
        return step, lambda: [keep.n]
    _eager(_twin(make), "'.n'")


_LAST = None


# Was stale (before and after cc1b13b): `global`/`nonlocal` rebinding to a value the step does not read (a tensor
# kept for later) is no guard, so replays left the recording call's tensor in the global or the cell.
@pytest.mark.parametrize("how", ["global", "nonlocal"])
def test_a_global_or_nonlocal_rebound_runs_eagerly(how):
    def make():
        global _LAST
        _LAST, last = None, None

        def keep_global(x):
            global _LAST
            y = x * 2
            _LAST = y.detach()
            return y

        def keep_cell(x):
            nonlocal last
            y = x * 2
            last = y.detach()
            return y
        step = keep_global if how == "global" else keep_cell
        value = (lambda: _LAST) if how == "global" else (lambda: keep_cell.__closure__[0].cell_contents)
        return step, lambda: [value().numpy().tolist()]
    _eager(_twin(make), "_LAST" if how == "global" else "last")


class _Timer:
    def __init__(self):
        self.n, self.entered = 0, 0

    def __enter__(self):
        self.entered += 1
        return self

    def __exit__(self, *exc):
        self.n += 1
        return False


class _Keeper:
    def __init__(self):
        self.last = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.last = tl.tensor(np.float32(self.last is None))
        return False


# Was stale (before and after cc1b13b): `with obj:` runs obj's __enter__ and __exit__, which the scan did not read:
# a counter they move stayed at the recording call's value, a value they store too.
@pytest.mark.parametrize("how", ["counter on self", "counter on a closure", "store"])
def test_with_runs_the_context_managers_methods(how):
    def make():
        class Trainer:
            def __init__(self):
                self.timer = _Timer()

            def step(self, x):
                with self.timer:
                    y = x * 2
                return y
        t, timer, keeper = Trainer(), _Timer(), _Keeper()

        def count(x):
            with timer:
                y = x * 2
            return y

        def store(x):
            with keeper:
                y = x * 2
            return y
        if how == "counter on self":
            return t.step, lambda: [t.timer.n, t.timer.entered]
        if how == "counter on a closure":
            return count, lambda: [timer.n, timer.entered]
        return store, lambda: [keeper.last.numpy().tolist()]
    stats = _twin(make)
    if how == "store":
        _eager(stats, "last")
    else:
        _replays(stats)


# (a context manager made in the step: its methods store on the new object, which is no reason to run eagerly)
def test_with_a_new_context_manager_replays():
    def make():
        def step(x):
            with _Timer():
                y = x * 2
            return y
        return step, lambda: []
    _replays(_twin(make))


class _Store:
    def __init__(self):
        self.n, self.last, self.gone = 0, None, 0

    def __setitem__(self, key, value):
        self.n += 1

    def __delitem__(self, key):
        self.gone += 1


class _ItemKeeper(_Store):
    def __setitem__(self, key, value):
        self.last = value


# Was stale (fixed in the same session): an item stored on a user's object (`st[k] = v`) runs its __setitem__, which
# the scan did not read (the chain ended at the key's load, before STORE_SUBSCR): a counter it moved stayed at the
# recording call's value. Now the method is read like any the step calls: its counter replays, a store runs eagerly.
@pytest.mark.parametrize("how", ["counter", "computed key", "delete", "store"])
def test_a_users_setitem_is_read(how):
    def make():
        st = _ItemKeeper() if how == "store" else _Store()

        def step(x):
            k = "a"
            if how == "counter":
                st["a"] = 1
            elif how == "computed key":
                st[k] = 2
            elif how == "delete":
                del st[k]
            else:
                st["keep"] = x * 3
            return x * 2
        return step, lambda: [st.n, st.gone, None if st.last is None else st.last.numpy().tolist()]
    stats = _twin(make)
    if how == "store":
        _eager(stats, "'self.last'")
    else:
        _replays(stats)


# Was stale (fixed in the same session): assigned() and stored_on_value skip every Module, trusting Module.__setattr__
# to fail the capture, which it did only for a module that ran in the call (cap.modules), so a store on one that does
# not run (an EMA copy, a teacher) replayed the recording call's value. Now it fails for any module the call did not
# make (nn.Module.__new__ notes those).
@pytest.mark.parametrize("how", ["counter", "tensor"])
def test_a_store_on_a_module_that_does_not_run(how):
    def make():
        tl.manual_seed(0)
        m, ema = nn.Linear(3, 2), nn.Linear(3, 2)
        ema.updates, ema.last = 0, None

        def step(x):
            y = m(x)
            if how == "counter":
                ema.updates += 1
            else:
                ema.last = y.sum().detach()
            return y
        return step, lambda: [ema.updates, None if ema.last is None else ema.last.numpy().tolist()]
    _eager(_twin(make), "assigning Linear.")
