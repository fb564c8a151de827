"""TensorDataset and DataLoader: batching, drop_last, shuffling reproducibility, collation, errors."""
from collections import namedtuple

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite.data import DataLoader, TensorDataset, default_collate


def make_dataset(n=10):
    x = tl.tensor(np.arange(n * 3, dtype=np.float32).reshape(n, 3))
    y = tl.tensor(np.arange(n))
    return TensorDataset(x, y)


def test_tensor_dataset_items_and_len():
    ds = make_dataset(10)
    assert len(ds) == 10
    x, y = ds[4]
    assert isinstance(x, tl.Tensor) and x.shape == (3,) and y.item() == 4
    np.testing.assert_array_equal(x.numpy(), [12, 13, 14])
    x.numpy()[0] = -1  # a sample is a copy: editing it leaves the dataset alone
    assert ds[4][0].numpy()[0] == 12


def test_tensor_dataset_size_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match=r"Size mismatch.*\(3, 2\).*\(4,\)"):
        TensorDataset(tl.zeros(3, 2), tl.zeros(4))
    with pytest.raises(ValueError, match="at least one"):
        TensorDataset()
    with pytest.raises(ValueError, match="0-d"):
        TensorDataset(tl.tensor(1.0))
    with pytest.raises(TypeError, match="Tensor or NumPy array"):
        TensorDataset([1, 2, 3])


@pytest.mark.parametrize("n,bs,drop_last,sizes", [
    (10, 3, False, [3, 3, 3, 1]),
    (10, 3, True, [3, 3, 3]),
    (9, 3, True, [3, 3, 3]),
    (10, 20, False, [10]),
    (10, 20, True, []),
])
def test_batch_sizes_and_len(n, bs, drop_last, sizes):
    loader = DataLoader(make_dataset(n), batch_size=bs, drop_last=drop_last)
    batches = list(loader)
    assert len(loader) == len(sizes) == len(batches)
    assert [b[0].shape[0] for b in batches] == sizes
    for x, y in batches:
        assert isinstance(x, tl.Tensor) and x.dtype == tl.float32 and y.dtype == tl.int64
        np.testing.assert_array_equal(x.numpy()[:, 0], y.numpy() * 3)  # rows stay paired with their labels


def test_unshuffled_order_is_the_dataset_order_and_batches_do_not_alias_it():
    ds = make_dataset(7)
    ys = np.concatenate([y.numpy() for _, y in DataLoader(ds, batch_size=2)])
    np.testing.assert_array_equal(ys, np.arange(7))
    x, _ = next(iter(DataLoader(ds, batch_size=2)))
    x.numpy()[...] = -5
    assert ds.tensors[0].numpy().min() == 0


def epoch_order(loader):
    return np.concatenate([y.numpy() for _, y in loader]).tolist()


def test_shuffle_is_a_permutation_reproducible_under_manual_seed():
    loader = DataLoader(make_dataset(50), batch_size=8, shuffle=True)
    tl.manual_seed(123)
    first, second = epoch_order(loader), epoch_order(loader)
    assert sorted(first) == list(range(50)) and sorted(second) == list(range(50))
    assert first != list(range(50)) and first != second  # shuffled, and anew each epoch
    tl.manual_seed(123)
    assert epoch_order(loader) == first and epoch_order(loader) == second
    tl.manual_seed(124)
    assert epoch_order(loader) != first


def test_shuffle_with_drop_last_drops_a_random_remainder():
    loader = DataLoader(make_dataset(10), batch_size=4, shuffle=True, drop_last=True)
    tl.manual_seed(0)
    seen = [epoch_order(loader) for _ in range(5)]
    assert all(len(s) == 8 and len(set(s)) == 8 for s in seen)
    assert len({tuple(sorted(s)) for s in seen}) > 1


def test_explicit_generator_is_used():
    loader = DataLoader(make_dataset(20), batch_size=5, shuffle=True, generator=np.random.default_rng(5))
    expected = np.random.default_rng(5).permutation(20).tolist()
    assert epoch_order(loader) == expected


class Squares:
    """A plain map-style dataset returning (array, int, float) samples."""

    def __len__(self):
        return 5

    def __getitem__(self, i):
        return np.full(2, i, dtype=np.float32), i, float(i) / 2


def test_generic_dataset_is_collated_like_pytorch():
    batches = list(DataLoader(Squares(), batch_size=2))
    assert len(batches) == 3
    x, i, f = batches[0]
    assert isinstance(batches[0], list)
    assert x.shape == (2, 2) and x.dtype == tl.float32
    assert i.dtype == tl.int64 and i.tolist() == [0, 1]
    assert f.dtype == tl.float64 and f.tolist() == [0.0, 0.5]  # PyTorch collates Python floats as float64


def test_default_collate_dicts_namedtuples_strings_and_errors():
    Pair = namedtuple("Pair", "a b")
    out = default_collate([Pair(tl.tensor([1.0]), "x"), Pair(tl.tensor([2.0]), "y")])
    assert isinstance(out, Pair) and out.a.shape == (2, 1) and out.b == ["x", "y"]
    d = default_collate([{"v": True}, {"v": False}])
    assert d["v"].dtype == tl.bool and d["v"].tolist() == [True, False]
    with pytest.raises(RuntimeError, match="same number of fields"):
        default_collate([(1, 2), (1,)])
    with pytest.raises(TypeError, match="samples must be"):
        default_collate([object()])


def test_custom_collate_and_batch_size_none():
    loader = DataLoader(Squares(), batch_size=2, collate_fn=lambda batch: len(batch))
    assert list(loader) == [2, 2, 1]
    samples = list(DataLoader(make_dataset(3), batch_size=None))
    assert len(samples) == 3 and samples[2][1].item() == 2


def test_argument_errors():
    ds = make_dataset(3)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="batch_size"):
            DataLoader(ds, batch_size=bad)
    with pytest.raises(ValueError, match="mutually exclusive"):
        DataLoader(ds, batch_size=None, drop_last=True)
    with pytest.raises(TypeError, match="__len__"):
        DataLoader(object())


def test_numpy_arrays_are_accepted_and_kept_without_copy():
    x = np.arange(6.0).reshape(3, 2)
    ds = TensorDataset(x, np.array([0, 1, 1]))
    assert ds.tensors[0].numpy() is x
    (xb, yb), = DataLoader(ds, batch_size=3)
    assert xb.dtype == tl.float64 and yb.tolist() == [0, 1, 1]


@pytest.mark.oracle
def test_batches_match_pytorch_dataloader(torch):
    x = np.random.default_rng(0).standard_normal((11, 2, 3)).astype(np.float32)
    y = np.arange(11)
    ours = DataLoader(TensorDataset(tl.tensor(x), tl.tensor(y)), batch_size=4)
    theirs = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.tensor(x), torch.tensor(y)),
                                         batch_size=4)
    assert len(ours) == len(theirs)
    for (a, b), (c, d) in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(a.numpy(), c.numpy())
        np.testing.assert_array_equal(b.numpy(), d.numpy())
        assert b.dtype == tl.int64 and str(d.dtype) == "torch.int64"
    floats = next(iter(torch.utils.data.DataLoader([0.5, 1.5], batch_size=2)))
    assert str(floats.dtype) == "torch.float64"
    assert next(iter(DataLoader([0.5, 1.5], batch_size=2))).dtype == tl.float64
