"""Indexing with Python's ints in a compiled step (`logp[range(len(y)), y]`, `x[[0, 2]]`): the index array is made
from Python values, a constant of the step as any Python number is (guarded where it comes from: a global list's
contents, an argument's value), so the step replays; before, the array counted as data from outside the recorded
operations and every call ran eagerly. Items that are not Python ints (a tensor, a dynamic number) keep the
conservative path. Every call is checked against eager, gradients included."""
import numpy as np
import pytest

import tinygrad_lite as tl


def _batch(i, n=6, c=4):
    rng = np.random.default_rng(i)
    return (tl.tensor(rng.standard_normal((n, c)).astype(np.float32), requires_grad=True),
            tl.tensor(rng.integers(0, c, n)))


def _same_as_eager(step, calls=8, **kw):
    f = tl.compile(step, **kw)
    for i in range(calls):
        (z1, y), (z2, _) = _batch(i), _batch(i)
        got, want = f(z1, y), step(z2, y)
        assert np.array_equal(got.numpy(), want.numpy()), (i, f.stats)
        assert np.array_equal(z1.grad.numpy(), z2.grad.numpy()), (i, f.stats)
    return f.stats


def nll_by_range(z, y):
    loss = -z.log_softmax(1)[range(len(y)), y].mean()
    loss.backward()
    return loss.detach()


def rows_by_list(z, y):
    out = (z[[0, 2, 2]] * 3).sum()  # (a repeated row: its gradient accumulates)
    out.backward()
    return out.detach()


def mask_by_list(z, y):
    out = z[:, [True, False, True, True]].sum()
    out.backward()
    return out.detach()


@pytest.mark.parametrize("step", [nll_by_range, rows_by_list, mask_by_list])
def test_python_int_indices_replay_as_eager(step):
    stats = _same_as_eager(step)
    assert stats["replays"] == 7 and stats["eager_calls"] == 0, stats


ROWS = [0, 1]


def rows_of_a_global_list(z, y):
    out = z[ROWS].sum()
    out.backward()
    return out.detach()


def test_a_global_index_list_changed_between_calls_is_seen():
    f = tl.compile(rows_of_a_global_list)
    try:
        for i, change in enumerate([None, None, None, lambda: ROWS.__setitem__(0, 3), None, lambda: ROWS.append(2)]):
            if change:
                change()
            (z1, y), (z2, _) = _batch(i), _batch(i)
            assert np.array_equal(f(z1, y).numpy(), rows_of_a_global_list(z2, y).numpy()), (i, f.stats)
            assert np.array_equal(z1.grad.numpy(), z2.grad.numpy()), (i, f.stats)
    finally:
        ROWS[:] = [0, 1]
    assert f.stats["traces"] == 3 and f.stats["replays"] == 3, f.stats


@pytest.mark.parametrize("dynamic", [False, True])
def test_an_int_argument_in_an_index_list_is_each_calls_own(dynamic):
    f = tl.compile(lambda z, n: z[[n, 0]] * 2, dynamic=dynamic)
    z = _batch(0)[0].detach()
    for n in (0, 1, 2, 3, 1, 2, 2, 2):
        assert np.array_equal(f(z, n).numpy(), (z[[n, 0]] * 2).numpy()), (n, f.stats)


def test_a_tensor_inside_an_index_list_keeps_the_conservative_path():
    f = tl.compile(lambda z, t: z[[t, 0]] * 2)
    z = _batch(0)[0].detach()
    for n in (0, 1, 2, 3, 1, 2):
        assert np.array_equal(f(z, tl.tensor(n)).numpy(), (z[[tl.tensor(n), 0]] * 2).numpy()), (n, f.stats)
    assert f.stats["replays"] == 0, f.stats


def nll_by_arange(z, y):
    loss = -z.log_softmax(1)[np.arange(len(y)), y].mean()
    loss.backward()
    return loss.detach()


def test_an_array_made_in_the_step_still_runs_eagerly():
    # (np.arange(n) in the step: an array the capture cannot tell from one derived from data it does not guard)
    stats = _same_as_eager(nll_by_arange, calls=4)
    assert stats["replays"] == 0 and "computed outside the recorded operations" in stats["last_reason"], stats


# index_select / index_add with an index tensor argument or a list of Python's ints: replayed (the index was reshaped
# into an array the capture did not know, and its range was checked in Python only: every call ran eagerly); the
# range check is a host check, so a replay with an index out of range raises eager's error
def select_columns(z, i):
    out = (z.index_select(1, i) * 3).sum()
    out.backward()
    return out.detach()


def add_columns(z, i):
    out = (z.index_add(1, i, tl.ones(z.shape[0], 2, dtype=z.dtype) * z[:, :2]) ** 2).sum()
    out.backward()
    return out.detach()


def select_listed_columns(z, i):
    out = (z.index_select(1, [3, 0, 3]) * 3).sum()
    out.backward()
    return out.detach()


@pytest.mark.parametrize("step", [select_columns, add_columns, select_listed_columns])
def test_index_select_and_index_add_replay_as_eager(step):
    f = tl.compile(step)
    for k in range(8):
        (z1, _), (z2, _) = _batch(k), _batch(k)
        i = tl.tensor(np.array([k % 4, (k + 1) % 4]))
        assert np.array_equal(f(z1, i).numpy(), step(z2, i).numpy()), (k, f.stats)
        assert np.array_equal(z1.grad.numpy(), z2.grad.numpy()), (k, f.stats)
    assert f.stats["replays"] == 7 and f.stats["eager_calls"] == 0, f.stats


@pytest.mark.parametrize("step, bad", [(select_columns, [-1, 0]), (select_columns, [0, 4]), (add_columns, [4, 0])])
def test_an_index_out_of_range_raises_eagers_error_in_a_replay(step, bad):
    f = tl.compile(step)
    for k in range(3):
        f(_batch(k)[0], tl.tensor(np.array([0, 1])))
    assert f.stats["replays"] == 2, f.stats
    with pytest.raises(IndexError, match=r"index values must be in \[0, 4\) along dim 1"):
        f(_batch(0)[0], tl.tensor(np.array(bad)))


COLUMNS = tl.tensor(np.array([[0], [2], [1], [1], [3], [0]]))


def gather_by_a_global_index(z, y):
    out = (z.gather(1, COLUMNS) ** 2).sum()
    out.backward()
    return out.detach()


# a global index tensor (neither an argument nor computed in the step) for gather: read live at each replay, written
# in place or given new data between calls (it was copied from its array, which the capture did not know: eager)
def test_a_global_index_tensor_for_gather_is_read_live():
    saved = COLUMNS.numpy().copy()
    try:
        changes = {4: lambda: COLUMNS._data.__setitem__((0, 0), 3),
                   9: lambda: setattr(COLUMNS, "data", tl.tensor(np.array([[1], [1], [1], [2], [0], [3]])))}
        f = tl.compile(gather_by_a_global_index)
        for k in range(12):
            if k in changes:
                changes[k]()
            (z1, y), (z2, _) = _batch(k), _batch(k)
            assert np.array_equal(f(z1, y).numpy(), gather_by_a_global_index(z2, y).numpy()), (k, f.stats)
            assert np.array_equal(z1.grad.numpy(), z2.grad.numpy()), (k, f.stats)
        assert f.stats["eager_calls"] == 0 and f.stats["replays"] >= 9, f.stats
    finally:
        COLUMNS.data = tl.tensor(saved)
