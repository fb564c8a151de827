"""tl.compile: methods Python calls for an object without naming them in the step's code — `__iadd__` for `m += x`
(through a local alias too), `__hash__` for a dict key, `__setitem__`/`__delitem__` for `obj[h.k] = v` whose key is an
expression — are read like any method the step calls: a counter they move replays, any other store runs the call
eagerly. And a NumPy argument changed in place in Python (`a[h.k] = v`, `a += b`) runs it eagerly: a replay would
leave it unchanged. Each test runs the compiled step beside an eager twin (test_compile_assignments' helper) and
compares results and state after every call. (Before: each replayed and left the recording call's state.)"""
import numpy as np

import tinygrad_lite as tl

from test_compile_assignments import _eager, _replays, _twin, _x


class _Meter:
    """Counts what Python calls on it: `+=`, hashing, item writes and deletes."""

    def __init__(self):
        self.adds = self.hashes = self.writes = self.deletes = 0
        self.last = None

    def __iadd__(self, other):
        self.adds += 1
        return self

    def __hash__(self):
        self.hashes += 1
        return 7

    def __setitem__(self, key, value):
        self.writes += 1

    def __delitem__(self, key):
        self.deletes += 1


class _Keeper(_Meter):
    def __iadd__(self, other):
        self.last = other.detach()  # a tensor kept: not a counter
        return self


def _model():
    tl.manual_seed(0)
    return tl.nn.Linear(3, 2)


def _counts(m):
    return lambda: [m.adds, m.hashes, m.writes, m.deletes]


def test_augmented_assignment_through_a_local_alias_runs_the_objects_iadd_at_every_call():
    def make():
        model, meter = _model(), _Meter()

        def step(x):
            m = meter
            m += 1
            return model(x).sum().item()
        return step, _counts(meter)
    _replays(_twin(make))


def test_augmented_assignment_of_a_global_object_runs_its_iadd_at_every_call():
    def make():
        model = _model()
        global _METER
        _METER = _Meter()

        def step(x):
            global _METER
            _METER += 2
            return model(x).sum().item()
        return step, lambda: _counts(_METER)()
    _replays(_twin(make))


def test_an_iadd_that_keeps_a_tensor_runs_the_call_eagerly():
    def make():
        model, keeper = _model(), _Keeper()

        def step(x):
            k = keeper
            y = model(x)
            k += y
            return y.sum().item()
        return step, lambda: keeper.last.numpy().tolist()
    _eager(_twin(make), "assigns an attribute")


def test_a_dict_key_hashed_at_every_call():
    def make():
        model, key, table = _model(), _Meter(), {}

        def step(x):
            table[key] = 1
            return model(x).sum().item()
        return step, lambda: [_counts(key)(), len(table)]
    _replays(_twin(make), traces=2)  # (the dict's contents are a guard: the first call adds the key)


class _Names:
    which, other = "a", "b"


def test_an_item_written_and_deleted_with_a_key_of_several_instructions():
    def make():
        model, box, names = _model(), _Meter(), _Names()

        def step(x):
            box[names.which] = 1
            box[names.which + names.other] = 2
            del box[names.other]
            return model(x).sum().item()
        return step, _counts(box)
    _replays(_twin(make))


def test_a_numpy_argument_written_with_a_key_of_several_instructions_runs_the_call_eagerly():
    names = _Names()
    names.which = 0

    def make():
        model = _model()
        arrays = [np.zeros(3) for _ in range(8)]

        def step(x, a):
            a[names.which + 1] = 100.0
            return model(x).sum().item()
        return step, lambda: [a.tolist() for a in arrays], lambda i: (_x(i), arrays[i % 8])
    _eager(_twin(make), "'a[...]' assigned")


def test_a_numpy_argument_added_to_in_place_runs_the_call_eagerly():
    def make():
        model = _model()
        arrays = [np.zeros(3) for _ in range(8)]
        ones = np.ones(3)

        def step(x, a, b):
            a += b
            return model(x).sum().item()
        return step, lambda: [a.tolist() for a in arrays], lambda i: (_x(i), arrays[i % 8], ones)
    _eager(_twin(make), "a +=")
