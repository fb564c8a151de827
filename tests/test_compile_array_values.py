"""A NumPy array held by a global, a closure or an attribute whose values the compiled step reads in Python
(`float(A[0])`, `A.tolist()`, `for v in A`, `if (A > 0).all()`) is guarded by its values (compile/values.ArrayValues):
written in place or rebound to other values, the step records again; before, it was guarded by identity only and a
replay kept the numbers Python had computed from the recording call's values. An array only used by identity or
metadata stays an identity guard; one too large to compare runs eagerly with the reason. A tensor held the same ways
is guarded with its shape and dtype (values.TensorMeta): `len(W)` read in Python follows `W.data = ...`. Every call
against eager, over the interpreted first replays and the generated guards after them."""
import numpy as np
import pytest

import tinygrad_lite as tl

SCALE = np.array([2.0, 3.0])
SIGNS = np.array([1, -1, 1])
ROWS = np.array([0, 2])
BIG = np.arange(70_000, dtype=np.float64)


def by_item(z):
    return z * float(SCALE[0])


def by_tolist(z):
    return z[ROWS.tolist()] * 2


def by_loop(z):
    out = z
    for v in SCALE:
        out = out * float(v)
    return out


def by_branch(z):
    return z * 2 if (SIGNS > 0).all() else z * 3


def by_sum(z):
    return z * float(SCALE.sum())


class _Layer(tl.nn.Module):
    def __init__(self):
        super().__init__()
        self.factors = np.array([0.5, 4.0])

    def forward(self, z):
        return z * float(self.factors[1])


LAYER = _Layer()


def by_attribute(z):
    return LAYER(z)


def _closure():
    offsets = np.array([1.0, -1.0])

    def by_closure(z):
        return z + float(offsets[0])
    return by_closure, offsets


BY_CLOSURE, OFFSETS = _closure()


def _calls(step, changes, n=14):
    """tl.compile(step) against step over n calls, changes[i]() before call i: every result equal; the stats."""
    f = tl.compile(step)
    for i in range(n):
        if i in changes:
            changes[i]()
        z = tl.tensor(np.random.default_rng(i).standard_normal((3, 2)))
        got, want = f(z), step(z)
        assert got.dtype == want.dtype and np.array_equal(got.numpy(), want.numpy()), (i, f.stats)
    return f.stats


CASES = {  # step, the array it reads, a change written in place
    "item": (by_item, SCALE, lambda: SCALE.__setitem__(0, 5.0)),
    "tolist": (by_tolist, ROWS, lambda: ROWS.__setitem__(1, 1)),
    "loop": (by_loop, SCALE, lambda: SCALE.__setitem__(1, 7.0)),
    "branch": (by_branch, SIGNS, lambda: SIGNS.__setitem__(1, 1)),
    "sum": (by_sum, SCALE, lambda: SCALE.__setitem__(0, -1.0)),
    "attribute": (by_attribute, LAYER.factors, lambda: LAYER.factors.__setitem__(1, 9.0)),
    "closure": (BY_CLOSURE, OFFSETS, lambda: OFFSETS.__setitem__(0, 3.0)),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("at", [4, 12])  # (while the guards are walked; once they are generated code)
def test_an_array_written_in_place_between_calls_is_seen(case, at):
    step, arr, change = CASES[case]
    saved = arr.copy()
    try:
        stats = _calls(step, {at: change})
    finally:
        arr[...] = saved
    assert stats["traces"] == 2 and stats["eager_calls"] == 0, stats  # (recorded again after the change)


def test_an_array_rebound_to_equal_values_still_replays():
    global SCALE
    saved = SCALE
    try:
        stats = _calls(by_item, {5: lambda: globals().__setitem__("SCALE", saved.copy())})
    finally:
        SCALE = saved
    assert stats["traces"] == 1 and stats["replays"] == 13, stats


def test_an_array_too_large_to_compare_runs_eagerly():
    stats = _calls(lambda z: z * float(BIG[3]), {}, n=3)
    assert stats["replays"] == 0 and "too large or of a kind to guard by value" in stats["last_reason"], stats


def test_an_array_used_by_metadata_only_keeps_replaying_when_written():
    try:
        stats = _calls(lambda z: z * SCALE.shape[0], {5: lambda: SCALE.__setitem__(0, 8.0)})
    finally:
        SCALE[0] = 2.0
    assert stats["traces"] == 1 and stats["replays"] == 13, stats


# ---- a tensor whose shape or dtype the step reads in Python (values.TensorMeta) ----
LENGTHS = tl.tensor(np.zeros(2, np.float32))


class _Table(tl.nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("table", tl.tensor(np.zeros((2, 4))))

    def forward(self, z):
        return z[:self.table.shape[0]] * 2.0


TABLE = _Table()


def _tensor_closure():
    t = tl.tensor(np.zeros(1))

    def by_closure_len(z):
        return z[:len(t)] + 1.0
    return by_closure_len, t


BY_CLOSURE_LEN, CLOSURE_T = _tensor_closure()


def _replace(t, arr):
    return lambda: setattr(t, "data", tl.tensor(arr))


TENSOR_CASES = {  # step, the tensor it reads, a change of its data
    "len": (lambda z: z[:len(LENGTHS)].sum(0), LENGTHS, _replace(LENGTHS, np.zeros(3, np.float32))),
    "range(len)": (lambda z: z[list(range(len(LENGTHS)))], LENGTHS, _replace(LENGTHS, np.zeros(1, np.float32))),
    "dtype branch": (lambda z: z * (2.0 if LENGTHS.dtype == tl.float32 else 3.0), LENGTHS,
                     _replace(LENGTHS, np.zeros(2, np.float64))),
    "a Module's buffer": (TABLE, TABLE.table, _replace(TABLE.table, np.zeros((1, 4)))),
    "closure": (BY_CLOSURE_LEN, CLOSURE_T, _replace(CLOSURE_T, np.zeros(2))),
}


@pytest.mark.parametrize("case", list(TENSOR_CASES))
@pytest.mark.parametrize("at", [4, 12])
def test_a_tensor_given_data_of_another_shape_or_dtype_is_seen(case, at):
    """Was (len): `W.data = ...` of another length replayed the recorded `z[:len(W)]` (W was guarded by identity)."""
    step, t, change = TENSOR_CASES[case]
    saved = t.data
    try:
        stats = _calls(step, {at: change})
    finally:
        t.data = saved
    assert stats["traces"] == 2 and stats["eager_calls"] == 0, stats


def test_a_tensor_given_data_of_the_same_shape_keeps_replaying():
    stats = _calls(TENSOR_CASES["len"][0], {5: _replace(LENGTHS, np.ones(2, np.float32))})
    assert stats["traces"] == 1 and stats["replays"] == 13, stats
