"""tl.compile with integer-array indexing: an index that copies (an embedding's lookup) writes into a planned buffer
(getitem's into rule), a gradient buffer made by an into rule (an embedding table's zeros) is recycled like a
ufunc's, and a boolean mask, whose result shape the values decide, still gets a fresh array and a shape guard."""
import tracemalloc

import numpy as np
import pytest

import tinygrad_lite as tl
from test_compile_memory import _replay_peak

nn = tl.nn


def test_an_embedding_step_replays_without_a_table_sized_array():
    """The table's gradient (20,000 x 64 float32, 5 MB) was np.zeros each replay; now it is the last call's array,
    reused once nothing holds it (zero_grad runs before each call here, so the measure starts with it dropped)."""
    tl.manual_seed(0)
    model = nn.Sequential(nn.Embedding(20000, 64), nn.Flatten(), nn.Linear(64 * 16, 4))
    opt = tl.optim.SGD(model.parameters(), lr=0.1)
    idx = tl.tensor(np.random.default_rng(0).integers(0, 20000, (32, 16)))

    def step(i):
        loss = model(i).pow(2).mean()
        loss.backward()
        opt.step()
        return loss.item()
    f = tl.compile(step)
    for _ in range(13):
        opt.zero_grad()
        f(idx)
    opt.zero_grad()  # the last .grad dropped before the measure starts: a new table-sized array would show
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        f(idx)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert peak < model[0].weight.numpy().nbytes // 4, peak
    assert f.stats["eager_calls"] == 0 and f.stats["replays"] >= 13


def test_an_embedding_lookup_replays_into_a_planned_buffer():
    """The lookup's rows (64 x 32 of 256 float32: 2 MB) were a new array each replay (getitem had no into rule)."""
    emb = nn.Embedding(1000, 256)
    idx = tl.tensor(np.random.default_rng(0).integers(-1000, 1000, (64, 32)) % 1000)
    with tl.no_grad():
        f = tl.compile(lambda i: emb(i).sum().item())
        _, peak = _replay_peak(f, idx)
        assert f(idx) == emb(idx).sum().item()
    assert peak < 256 * 1024, peak
    assert f.stats["replays"] >= 14


def test_a_kept_embedding_gradient_is_not_recycled():
    """A .grad the user keeps is never the next call's buffer."""
    emb = nn.Embedding(10, 3)
    opt = tl.optim.SGD(emb.parameters(), lr=0.1)

    def step(i):
        opt.zero_grad()
        emb(i).sum().backward()
        opt.step()
    f = tl.compile(step)
    kept = []
    for k in range(14):
        f(tl.tensor(np.array([k % 10, 3])))
        kept.append((emb.weight.grad, emb.weight.grad.numpy().copy()))
    for g, values in kept:
        assert np.array_equal(g.numpy(), values)
    assert len({id(g._data) for g, _ in kept}) == len(kept)


@pytest.mark.parametrize("index", ["rows", "rows_and_slice", "negative", "columns", "two_arrays"])
def test_integer_array_indexing_replays_eagers_values(index):
    rng = np.random.default_rng(1)
    x0 = rng.standard_normal((6, 5))

    def pick(x, i):
        if index == "rows":
            y = x[i]
        elif index == "rows_and_slice":
            y = x[i, 1:4]
        elif index == "negative":
            y = x[-i - 1]
        elif index == "columns":
            y = x[:, i % 5]
        else:
            y = x[i, i % 5]
        return y * 2

    f = tl.compile(pick)
    results = []
    for k in range(14):
        x, i = tl.tensor(x0 + k), tl.tensor(rng.integers(0, 6, (3, 2)))
        got, want = f(x, i), pick(x, i)
        assert np.array_equal(got.numpy(), want.numpy())
        results.append((got, want.numpy()))
    for got, want in results:  # a returned array is never a later call's buffer
        assert np.array_equal(got.numpy(), want)
    assert f.stats["replays"] == 13


def test_an_out_of_range_index_raises_in_a_replay():
    f = tl.compile(lambda x, i: x[i] * 2)
    x = tl.tensor(np.arange(12.0).reshape(4, 3))
    for _ in range(12):
        f(x, tl.tensor(np.array([0, 3, -4])))
    with pytest.raises(IndexError, match="out of bounds"):
        f(x, tl.tensor(np.array([0, 4])))
    with pytest.raises(IndexError, match="out of bounds"):
        f(x, tl.tensor(np.array([-5, 1])))


def test_a_boolean_mask_with_a_new_count_is_guarded_not_a_crash():
    def f(x):
        y = x * 2
        return (y[y > 0] * 3).sum().item()
    g = tl.compile(f)
    rng = np.random.default_rng(0)
    for _ in range(16):
        x = tl.tensor(rng.standard_normal(20))
        assert g(x) == f(x)
    x = tl.tensor(rng.standard_normal(20))
    for _ in range(12):  # the same count of positives: replays
        assert g(x) == f(x)
    assert g.stats["replays"] >= 11
