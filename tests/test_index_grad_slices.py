"""A gradient made of getitem slices (autograd/index_grad.py's Slices): written slice by slice into an empty buffer
when the slices tile the tensor (`_tiled`), added into zeros otherwise — the same numbers either way, eager, under
tl.compile and under vmap."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinygrad_lite as tl
from tinygrad_lite.autograd import index_grad
from tinygrad_lite.autograd.index_grad import IndexGrad, _tiled


def _parts(shape, *indexes, dtype=np.float32):
    return [IndexGrad(tl.tensor(np.zeros(np.empty(shape)[i].shape, dtype)), shape, i, True) for i in indexes]


@pytest.mark.parametrize("indexes, expected", [
    ([(slice(0, 2),), (slice(2, 5),)], True),                        # two slices of axis 0
    ([(slice(None, 2),), (slice(2, None),), (slice(5, 5),)], True),  # an empty slice writes nothing
    ([(slice(3, None),), (slice(None, 3),)], True),                  # any order
    ([(slice(None), slice(0, 1)), (slice(None), slice(1, 4))], True),  # along axis 1
    ([(0,), (1,), (2,), (3,), (-1,)], True),                           # integers (one negative)
    ([(slice(None),)], True),                                          # one part, the whole tensor
    ([()], True),
    ([(slice(0, 2),), (slice(3, 5),)], False),                       # a gap
    ([(slice(0, 3),), (slice(2, 5),)], False),                       # an overlap
    ([(slice(0, 5),), (slice(0, 5),)], False),                       # the whole tensor twice
    ([(slice(0, 2),), (slice(None), slice(0, 2))], False),           # along two axes
    ([(slice(0, 2), slice(0, 2)), (slice(2, 5),)], False),           # a box partial along two axes
    ([(slice(None, None, 2),), (slice(1, None, 2),)], False),        # strided
    ([(0,), (1,), (2,), (3,)], False),                                 # 4 is missing
    ([(Ellipsis, slice(0, 2)), (Ellipsis, slice(2, 4))], False),     # an Ellipsis: not analysed
])
def test_tiled_cases(indexes, expected):
    assert _tiled((5, 4), np.dtype(np.float32), _parts((5, 4), *indexes)) is expected


def test_tiled_needs_one_dtype_and_basic_indexes():
    shape = (4, 3)
    parts = _parts(shape, (slice(0, 2),)) + _parts(shape, (slice(2, 4),), dtype=np.float64)
    assert not _tiled(shape, np.dtype(np.float32), parts)
    rows = IndexGrad(tl.tensor(np.zeros((2, 3), np.float32)), shape, (np.array([2, 3]),), False)
    assert not _tiled(shape, np.dtype(np.float32), _parts(shape, (slice(0, 2),)) + [rows])
    assert not _tiled((0, 3), np.dtype(np.float32), _parts((0, 3), (slice(None),)))


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 9), width=st.integers(1, 4), data=st.data())
def test_tiled_random_partitions(n, width, data):
    """Cut points split an axis into spans: tiled in any order; with one span dropped (and more than one), not."""
    cuts = sorted(data.draw(st.sets(st.integers(1, n - 1), max_size=n - 1)) if n > 1 else [])
    bounds = [0, *cuts, n]
    axis = data.draw(st.integers(0, 1))
    shape = (n, width) if axis == 0 else (width, n)
    idx = [(slice(a, b),) if axis == 0 else (slice(None), slice(a, b)) for a, b in zip(bounds, bounds[1:])]
    order = data.draw(st.permutations(idx))
    assert _tiled(shape, np.dtype(np.float64), _parts(shape, *order, dtype=np.float64))
    if len(idx) > 1:
        assert not _tiled(shape, np.dtype(np.float64), _parts(shape, *order[1:], dtype=np.float64))


def _split_loss(x, cuts):
    """A loss reading x in pieces along axis 1, each through its own function (and piece 0 twice)."""
    bounds = [0, *cuts, x.shape[1]]
    pieces = [x[:, a:b] for a, b in zip(bounds, bounds[1:])]
    total = (pieces[0] * pieces[0]).sum()
    for k, p in enumerate(pieces[1:], 1):
        total = total + (p.tanh() * (k + 1)).sum()
    return total


def _grad(x0, cuts, tiled=True, monkeypatch=None):
    if not tiled:
        monkeypatch.setattr(index_grad, "_tiled", lambda *a: False)
    x = tl.tensor(x0, requires_grad=True)
    _split_loss(x, cuts).backward()
    return x.grad.numpy()


@settings(max_examples=30, deadline=None)
@given(width=st.integers(2, 8), seed=st.integers(0, 2 ** 16), data=st.data())
def test_tiled_gradient_is_the_zeros_plus_adds_gradient(width, seed, data):
    cuts = sorted(data.draw(st.sets(st.integers(1, width - 1), min_size=1)))
    x0 = np.random.default_rng(seed).standard_normal((3, width))
    got = _grad(x0, cuts)
    with pytest.MonkeyPatch.context() as mp:
        want = _grad(x0, cuts, tiled=False, monkeypatch=mp)
    assert np.array_equal(got, want)
    bounds = [0, *cuts, width]
    expect = np.empty_like(x0)  # by hand: d(sum p^2) = 2p, d(k+1)tanh(p) = (k+1)(1 - tanh^2)
    expect[:, :cuts[0]] = 2 * x0[:, :cuts[0]]
    for k, (a, b) in enumerate(zip(bounds[1:], bounds[2:]), 1):
        expect[:, a:b] = (k + 1) * (1 - np.tanh(x0[:, a:b]) ** 2)
    np.testing.assert_allclose(got, expect, rtol=1e-12)


def test_tiled_gradient_keeps_a_negative_zero():
    """Each position has one contribution, copied: -0.0 stays -0.0 (adding it to zeros made +0.0)."""
    x = tl.zeros(4, dtype=tl.float64, requires_grad=True)
    ((x[:2] * -1.0).sum() * 0.0 + x[2:].sum()).backward()
    assert np.array_equal(np.signbit(x.grad.numpy()), [True, True, False, False])


def test_slices_then_a_dense_gradient():
    """x read in slices and whole: the slices are summed first, the dense gradient added after."""
    x0 = np.arange(6.0).reshape(2, 3)
    x = tl.tensor(x0, requires_grad=True)
    (x[:, :1].sum() * 2 + x[:, 1:].sum() * 3 + (x * x).sum()).backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.array([[2.0, 3, 3], [2, 3, 3]]) + 2 * x0)


def test_tiled_slices_under_compile_and_vmap():
    x0 = np.random.default_rng(1).standard_normal((4, 6))

    def step(x):
        x = x.detach().requires_grad_()
        _split_loss(x, [2, 3]).backward()
        return x.grad

    compiled = tl.compile(step)
    for k in range(12):
        xk = tl.tensor(x0 + k)
        assert np.array_equal(compiled(xk).numpy(), step(xk).numpy())
    assert compiled.stats["replays"] == 11

    def row_grad(row):  # autograd.grad without create_graph: the sparse slices, each batched by its rule; row's
        # gradient gets slices and then a dense part, added in place (a vmap of this raised before: the target of
        # np.add(cur, g, out=cur) was made per-sample as an input but not as the out= operand)
        row = row.detach().requires_grad_()
        return tl.autograd.grad(_split_loss(row.reshape(1, 6), [1, 4]) + row[1:3].sum(), row)[0]

    per_sample = tl.func.vmap(row_grad)(tl.tensor(x0))
    for i in range(4):
        assert np.array_equal(per_sample[i].numpy(), row_grad(tl.tensor(x0[i])).numpy())


def test_slices_that_cannot_tile_are_summed_at_once():
    """No more is kept than the gradient's own size: overlapping windows (more elements than the tensor) or an
    integer-array index are summed as soon as they show it, and later ones are added into that buffer."""
    from tinygrad_lite.autograd.engine import _accumulate
    from tinygrad_lite.autograd.index_grad import Slices

    def grad(n, index, basic=True):
        return IndexGrad(tl.tensor(np.ones(np.empty(n)[index].shape)), (n,), index, basic)

    store, owned = {}, set()
    assert _accumulate(store, "k", grad(6, (slice(0, 4),)), owned, False)
    assert store["k"].__class__ is Slices
    assert not _accumulate(store, "k", grad(6, (slice(2, 5),)), owned, False)  # 7 elements of 6: cannot tile
    assert store["k"].__class__ is tl.Tensor
    _accumulate(store, "k", grad(6, (slice(5, 6),)), owned, False)
    np.testing.assert_array_equal(store["k"].numpy(), [1, 1, 2, 2, 1, 1])

    store = {}
    _accumulate(store, "r", grad(6, (slice(0, 2),)), owned, False)
    _accumulate(store, "r", grad(6, (np.array([4, 4]),), basic=False), owned, False)  # an array index
    np.testing.assert_array_equal(store["r"].numpy(), [1, 1, 0, 0, 2, 0])


def _hook_changing_the_dtype(make, sliced):
    x = make(np.ones(4, np.float32))
    y = x * 2
    part = y[:2] if sliced else y
    part.register_hook(lambda g: g.double())
    part.sum().backward()


@pytest.mark.parametrize("sliced", [False, True])
def test_a_hook_that_changes_the_dtype_raises(sliced):
    """A gradient hook returning another dtype raised nothing: a leaf read in slices got a float64 .grad, an
    intermediate's gradient was cast back. PyTorch raises RuntimeError; so do we, naming both dtypes."""
    with pytest.raises(RuntimeError, match="changed the type of value") as err:
        _hook_changing_the_dtype(lambda a: tl.tensor(a, requires_grad=True), sliced)
    assert "float32" in str(err.value) and "float64" in str(err.value)


@pytest.mark.parametrize("sliced", [False, True])
def test_pytorch_raises_for_a_hook_that_changes_the_dtype(sliced, torch):
    with pytest.raises(RuntimeError, match="changed the type of value"):
        _hook_changing_the_dtype(lambda a: torch.tensor(a, requires_grad=True), sliced)
