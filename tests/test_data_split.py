"""Subset and random_split: indexing, PyTorch's lengths for fractions (oracle), reproducible disjoint splits from the
package generator or a given numpy Generator, DataLoader over a Subset (batched fast path = per-sample path), errors."""
import warnings

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite.data import DataLoader, Dataset, Subset, TensorDataset, random_split


class Squares(Dataset):
    """A plain map-style dataset (no batched fast path)."""

    def __init__(self, n):
        self.n = n

    def __getitem__(self, i):
        return tl.tensor([float(i) ** 2]), i

    def __len__(self):
        return self.n


def _tensor_dataset(n=10):
    return TensorDataset(tl.tensor(np.arange(n * 2, dtype=np.float32).reshape(n, 2)), tl.tensor(np.arange(n)))


def test_exported_from_data_and_utils_data():
    assert {"Subset", "random_split"} <= set(tl.data.__all__)
    assert tl.utils.data.Subset is Subset and tl.utils.data.random_split is random_split


def test_subset_indexes_the_dataset():
    sub = Subset(_tensor_dataset(), [7, 2, 2, 5])
    assert len(sub) == 4
    x, y = sub[0]
    assert y.item() == 7 and x.tolist() == [14.0, 15.0]
    assert sub[-1][1].item() == 5
    assert [s[1].item() for s in sub.__getitems__([1, 3])] == [2, 5]
    nested = Subset(sub, [3, 0])
    assert [nested[i][1].item() for i in range(2)] == [5, 7]
    assert nested.dataset is sub and nested.indices == [3, 0]
    plain = Subset(Squares(6), range(2, 6))
    assert plain[1][0].tolist() == [9.0] and plain[1][1] == 3
    assert [plain[i][1] for i in range(len(plain))] == [2, 3, 4, 5]


def test_random_split_is_a_reproducible_partition():
    ds = _tensor_dataset(10)
    tl.manual_seed(3)
    parts = random_split(ds, [3, 7])
    assert [len(p) for p in parts] == [3, 7] and all(isinstance(p, Subset) and p.dataset is ds for p in parts)
    assert sorted(parts[0].indices + parts[1].indices) == list(range(10))
    tl.manual_seed(3)
    assert [p.indices for p in random_split(ds, [3, 7])] == [p.indices for p in parts]
    tl.manual_seed(4)
    assert [p.indices for p in random_split(ds, [3, 7])] != [p.indices for p in parts]
    a = random_split(ds, [0.5, 0.5], generator=np.random.default_rng(42))
    b = random_split(ds, (5, 5), generator=np.random.default_rng(42))
    assert [p.indices for p in a] == [p.indices for p in b]
    assert sorted(random_split(range(4), [4])[0]) == [0, 1, 2, 3]  # any sized, indexable dataset


@pytest.mark.oracle
@pytest.mark.parametrize("n, fractions", [
    (10, [0.33, 0.33, 0.34]), (7, [0.5, 0.5]), (5, [0.1, 0.9]), (11, [0.7, 0.2, 0.1]), (3, [0.25, 0.25, 0.25, 0.25]),
    (100, [0.8, 0.1, 0.1]), (1, [0.5, 0.5]), (9, [1.0])])
def test_fraction_lengths_and_warnings_are_pytorchs(torch, n, fractions):
    with warnings.catch_warnings(record=True) as ours_w:
        warnings.simplefilter("always")
        ours = random_split(range(n), fractions)
    with warnings.catch_warnings(record=True) as theirs_w:
        warnings.simplefilter("always")
        theirs = torch.utils.data.random_split(range(n), fractions)
    assert [len(p) for p in ours] == [len(p) for p in theirs]
    assert sorted(i for p in ours for i in p.indices) == list(range(n))
    assert [str(w.message) for w in ours_w] == [str(w.message) for w in theirs_w]


@pytest.mark.parametrize("shuffle", [False, True])
def test_dataloader_over_a_subset_batches_as_sample_by_sample(shuffle):
    ds = _tensor_dataset(20)
    train, _ = random_split(ds, [14, 6], generator=np.random.default_rng(0))
    tl.manual_seed(5)
    fast = list(DataLoader(train, batch_size=4, shuffle=shuffle))
    tl.manual_seed(5)
    slow = list(DataLoader(train, batch_size=4, shuffle=shuffle, collate_fn=tl.data.default_collate))
    assert len(fast) == len(slow) == 4
    for (fx, fy), (sx, sy) in zip(fast, slow):
        np.testing.assert_array_equal(fx.numpy(), sx.numpy())
        np.testing.assert_array_equal(fy.numpy(), sy.numpy())
        assert fx.dtype == sx.dtype and fy.dtype == sy.dtype
    labels = np.concatenate([y.numpy() for _, y in fast])
    assert sorted(labels.tolist()) == sorted(train.indices)
    assert (labels.tolist() == train.indices) is (not shuffle)
    fast[0][0].numpy()[...] = -1.0  # a batch is a copy: the dataset is untouched
    assert ds[train.indices[0]][0].numpy().min() >= 0


def test_dataloader_over_a_subset_of_a_plain_dataset():
    sub = Subset(Squares(10), [9, 1, 4])
    x, i = next(iter(DataLoader(sub, batch_size=3)))
    np.testing.assert_array_equal(x.numpy(), [[81.0], [1.0], [16.0]])
    assert i.tolist() == [9, 1, 4]


def test_random_split_errors():
    with pytest.raises(ValueError, match="Sum of input lengths does not equal the length of the input dataset"):
        random_split(range(10), [3, 3])
    with pytest.raises(ValueError, match="Sum of input lengths"):
        random_split(range(10), [0.3, 0.3])
    with pytest.raises(ValueError, match="Fraction at index 2 is not between 0 and 1"):
        random_split(range(10), [0.5, 0.7, -0.2])
    with pytest.raises(ValueError, match="non-negative ints"):
        random_split(range(10), [12, -2])
    with pytest.raises(TypeError, match="generator must be a numpy.random.Generator"):
        random_split(range(10), [5, 5], generator=np.random.RandomState(0))
