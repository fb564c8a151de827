"""Review s14, data pipelines and evaluation code: what PyTorch-style data loading and metric code needed.

- `from torch.nn.utils.rnn import pad_sequence` failed: `nn.utils` was a module; it is a package with `rnn`;
- `Sampler`, `SequentialSampler`, `RandomSampler`, `SubsetRandomSampler`, `BatchSampler`, `ConcatDataset` and
  `IterableDataset` were missing, and DataLoader had no `batch_sampler=` (nor PyTorch's positional order);
- `torch.bincount`, `torch.histc`, `torch.unique`, `Tensor.index_put_` / `scatter_add_` and `torch.diag` were
  missing (confusion matrices, class counts, per-class precision/recall, confidence histograms).
"""
import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite.utils import data as tdata


# ---------------- pad_sequence ----------------

def _seqs(rng, lengths, trailing=(3,)):
    return [rng.standard_normal((n,) + trailing) for n in lengths]


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_pad_sequence_matches_torch(torch, batch_first, padding_side):
    from tinygrad_lite.nn.utils.rnn import pad_sequence
    arrays = _seqs(np.random.default_rng(0), [4, 1, 3])
    ours = [tl.tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    out = pad_sequence(ours, batch_first=batch_first, padding_value=-2.5, padding_side=padding_side)
    tout = torch.nn.utils.rnn.pad_sequence(theirs, batch_first=batch_first, padding_value=-2.5,
                                           padding_side=padding_side)
    np.testing.assert_array_equal(out.numpy(), tout.detach().numpy())
    w = np.arange(out.numel(), dtype=np.float64).reshape(out.shape)
    (out * tl.tensor(w)).sum().backward()
    (tout * torch.tensor(w)).sum().backward()
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a.grad.numpy(), b.grad.numpy())


def test_pad_sequence_reachable_as_torch_nn_utils_rnn():
    import tinygrad_lite.nn.utils.rnn as rnn
    assert tl.nn.utils.rnn is rnn and tl.nn.utils.clip_grad_norm_ is not None
    out = tl.nn.utils.rnn.pad_sequence([tl.tensor([1, 2]), tl.tensor([3])])
    assert out.dtype == tl.int64 and out.tolist() == [[1, 3], [2, 0]]


def test_pad_sequence_errors_name_the_shapes():
    from tinygrad_lite.nn.utils.rnn import pad_sequence
    with pytest.raises(RuntimeError, match=r"pad_sequence.*\(2, 3\).*\(2, 4\)"):
        pad_sequence([tl.zeros(2, 3), tl.zeros(2, 4)])
    with pytest.raises(RuntimeError, match="empty list"):
        pad_sequence([])


# ---------------- samplers, batch_sampler, ConcatDataset, IterableDataset ----------------

class _Squares(tdata.Dataset):
    def __init__(self, n, offset=0):
        self.n, self.offset = n, offset

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return {"x": float(i + self.offset) ** 2, "i": i + self.offset}


def _both(torch, name, *args, **kwargs):
    return getattr(tdata, name)(*args, **kwargs), getattr(torch.utils.data, name)(*args, **kwargs)


def test_samplers_match_torch(torch):
    ds = list(range(7))
    ours, theirs = _both(torch, "SequentialSampler", ds)
    assert list(ours) == list(theirs) and len(ours) == len(theirs)
    for bs in (1, 3, 7, 10):
        for drop_last in (False, True):
            ours, theirs = _both(torch, "BatchSampler", tdata.SequentialSampler(ds), bs, drop_last)
            assert list(ours) == list(theirs) and len(ours) == len(theirs), (bs, drop_last)
    assert isinstance(ours, tdata.Sampler) and isinstance(tdata.DistributedSampler(ds, 2, 0), tdata.Sampler)


def test_random_samplers_are_permutations_and_reproducible():
    tl.manual_seed(3)
    first = list(tdata.RandomSampler(range(9)))
    tl.manual_seed(3)
    assert list(tdata.RandomSampler(range(9))) == first and sorted(first) == list(range(9))
    drawn = list(tdata.RandomSampler(range(4), num_samples=10))
    assert len(drawn) == 10 and sorted(drawn[:8]) == [0, 0, 1, 1, 2, 2, 3, 3]
    with_repl = tdata.RandomSampler(range(4), replacement=True, num_samples=6, generator=np.random.default_rng(0))
    assert len(list(with_repl)) == 6 == len(with_repl)
    picked = list(tdata.SubsetRandomSampler([10, 20, 30], generator=np.random.default_rng(1)))
    assert sorted(picked) == [10, 20, 30]


def test_sampler_argument_errors_as_torch(torch):
    for args in ((tdata.SequentialSampler([1]), 0, False), (tdata.SequentialSampler([1]), 2, 1)):
        with pytest.raises(ValueError) as ours:
            tdata.BatchSampler(*args)
        with pytest.raises(ValueError) as theirs:
            torch.utils.data.BatchSampler(*args)
        assert str(ours.value) == str(theirs.value)
    with pytest.raises(TypeError, match="generator"):
        list(tdata.RandomSampler([1, 2], generator=42))


def test_dataloader_batch_sampler_matches_torch(torch):
    ds = _Squares(7)
    for ours_bs, theirs_bs in [(tdata.BatchSampler(tdata.SequentialSampler(ds), 3, drop_last),
                                torch.utils.data.BatchSampler(torch.utils.data.SequentialSampler(ds), 3, drop_last))
                               for drop_last in (False, True)] + [([[6, 0], [3], [1, 2, 5]],) * 2]:
        ours, theirs = tdata.DataLoader(ds, batch_sampler=ours_bs), torch.utils.data.DataLoader(
            ds, batch_sampler=theirs_bs)
        got, want = list(ours), list(theirs)
        assert len(ours) == len(theirs) == len(got) == len(want)
        for g, w in zip(got, want):
            assert g["i"].tolist() == w["i"].tolist() and g["x"].tolist() == w["x"].tolist()
    x = tl.arange(10.0)  # a TensorDataset takes the one-fancy-index path
    batches = list(tdata.DataLoader(tdata.TensorDataset(x), batch_sampler=[[9, 1], [4]]))
    assert [b[0].tolist() for b in batches] == [[9.0, 1.0], [4.0]]
    with pytest.raises(ValueError, match="batch_sampler option is mutually exclusive"):
        tdata.DataLoader(ds, batch_size=2, batch_sampler=[[0]])


def test_dataloader_positional_arguments_are_pytorchs(torch):
    ds = _Squares(5)
    # DataLoader(dataset, batch_size, shuffle, sampler, batch_sampler, num_workers, collate_fn, pin_memory, drop_last)
    args = (2, False, [4, 3, 2, 1, 0], None, 0, lambda b: [s["i"] for s in b], False, True)
    assert list(tdata.DataLoader(ds, *args)) == list(torch.utils.data.DataLoader(ds, *args)) == [[4, 3], [2, 1]]


def test_concat_dataset_matches_torch(torch):
    parts = [_Squares(3), _Squares(0), _Squares(4, offset=100)]
    ours, theirs = tdata.ConcatDataset(parts), torch.utils.data.ConcatDataset(parts)
    assert len(ours) == len(theirs) and ours.cumulative_sizes == theirs.cumulative_sizes
    for i in range(-len(ours), len(ours)):
        assert ours[i] == theirs[i], i
    assert (parts[0] + parts[2])[3] == theirs[3]
    with pytest.raises(ValueError, match="absolute value of index"):
        ours[-8]
    with pytest.raises(IndexError, match="out of range"):
        ours[7]
    with pytest.raises(ValueError, match="empty"):
        tdata.ConcatDataset([])
    batch = next(iter(tdata.DataLoader(ours, batch_size=5)))
    assert batch["i"].tolist() == [0, 1, 2, 100, 101]


class _Stream(tdata.IterableDataset):
    def __init__(self, n):
        self.n = n

    def __iter__(self):
        for i in range(self.n):
            yield np.full(2, float(i)), i


def test_iterable_dataset_batches_as_torch(torch):
    class TorchStream(torch.utils.data.IterableDataset):
        def __iter__(self):
            return iter(_Stream(7))

    for kwargs in ({"batch_size": 3}, {"batch_size": 3, "drop_last": True}, {"batch_size": None}):
        got = list(tdata.DataLoader(_Stream(7), **kwargs))
        want = list(torch.utils.data.DataLoader(TorchStream(), **kwargs))
        assert len(got) == len(want), kwargs
        for g, w in zip(got, want):
            if kwargs["batch_size"] is None:
                assert g[1] == w[1] and np.array_equal(np.asarray(g[0]), np.asarray(w[0]))
            else:
                assert g[0].numpy().tolist() == w[0].numpy().tolist() and g[1].tolist() == w[1].tolist()
    with pytest.raises(ValueError, match="expected unspecified shuffle option"):
        tdata.DataLoader(_Stream(3), shuffle=True)
    with pytest.raises(ValueError, match="expected unspecified sampler option"):
        tdata.DataLoader(_Stream(3), sampler=[0])
    with pytest.raises(TypeError):
        len(tdata.DataLoader(_Stream(3)))  # a stream without __len__, as PyTorch's


# ---------------- bincount, histc, unique ----------------

def _pair(torch, arr):
    return tl.tensor(arr), torch.tensor(arr)


def test_bincount_matches_torch(torch):
    for arr, kw in [(np.array([0, 2, 2, 5]), {}), (np.array([0, 2, 2, 5]), {"minlength": 9}),
                    (np.zeros(0, np.int64), {}), (np.zeros(0, np.int64), {"minlength": 3})]:
        ours, theirs = _pair(torch, arr)
        out, want = tl.bincount(ours, **kw), torch.bincount(theirs, **kw)
        assert out.tolist() == want.tolist() and out.dtype == tl.int64, (arr, kw)
    x, tx = _pair(torch, np.array([1, 1, 3, 0]))
    for w in (np.array([0.5, 1.5, 2.0, -1.0]), np.array([0.5, 1.5, 2.0, -1.0], np.float32), np.array([1, 2, 3, 4])):
        out, want = x.bincount(tl.tensor(w)), tx.bincount(torch.tensor(w))
        assert out.numpy().tolist() == want.tolist() and str(want.dtype) == f"torch.{out.dtype}", w.dtype
    w = tl.tensor([0.5, 1.5, 2.0, -1.0], requires_grad=True)
    (tl.bincount(x, w) * tl.tensor([1.0, 10.0, 100.0, 1000.0])).sum().backward()
    assert w.grad.tolist() == [10.0, 10.0, 1000.0, 1.0]


def test_bincount_errors_as_torch(torch):
    for bad in (np.array([-1, 2]), np.array([[1]]), np.array([1.0])):
        with pytest.raises((RuntimeError, NotImplementedError)):
            torch.bincount(torch.tensor(bad))
        with pytest.raises(RuntimeError, match=r"bincount only supports 1-d non-negative integral inputs.*shape|"
                                               r"bincount only supports 1-d non-negative integral inputs.*negative"):
            tl.bincount(tl.tensor(bad))
    with pytest.raises(RuntimeError, match=r"weights should be 1-d and have the same length as input.*\(4,\).*\(3,\)"):
        tl.bincount(tl.tensor([0, 1, 1, 2]), weights=tl.ones(3))


def test_histc_matches_torch_bin_for_bin(torch):
    rng = np.random.default_rng(0)
    for dt in (np.float32, np.float64):
        for _ in range(40):
            bins = int(rng.integers(1, 13))
            lo = float(rng.uniform(-2, 0))
            hi = lo + float(rng.uniform(0.1, 3))
            edges = [lo + k * (hi - lo) / bins for k in range(bins + 1)]  # values on the edges decide the rule
            arr = np.concatenate([rng.uniform(lo - 0.5, hi + 0.5, 40), edges, [np.nan]]).astype(dt)
            ours, theirs = _pair(torch, arr)
            out, want = tl.histc(ours, bins=bins, min=lo, max=hi), torch.histc(theirs, bins=bins, min=lo, max=hi)
            assert out.numpy().tolist() == want.tolist() and out.dtype == dt
    for arr in (np.array([1.0, 2.0, 3.0]), np.array([2.0, 2.0])):  # min == max: the data's range
        ours, theirs = _pair(torch, arr)
        assert ours.histc(bins=4).tolist() == theirs.histc(bins=4).tolist()


def test_histc_errors():
    with pytest.raises(NotImplementedError, match=r"histc: expected a floating point input, got dtype int64"):
        tl.histc(tl.tensor([1, 2]))
    with pytest.raises(RuntimeError, match="max must be larger than min"):
        tl.histc(tl.tensor([1.0]), bins=3, min=2, max=1)


def test_unique_matches_torch(torch):
    arr = np.array([[3.0, 1.0, 3.0], [np.nan, 1.0, np.nan]])
    ours, theirs = _pair(torch, arr)
    for kw in ({}, {"return_counts": True}, {"return_inverse": True}, {"return_inverse": True, "return_counts": True}):
        out, want = tl.unique(ours, **kw), torch.unique(theirs, **kw)
        out, want = (out, want) if isinstance(out, tuple) else ((out,), (want,))
        assert len(out) == len(want)
        for o, w in zip(out, want):
            np.testing.assert_array_equal(o.numpy(), w.numpy())
            assert str(w.dtype) == f"torch.{o.dtype}"
    rows, trows = _pair(torch, np.array([[1, 2], [1, 2], [0, 5]]))
    for o, w in zip(rows.unique(dim=0, return_inverse=True, return_counts=True),
                    trows.unique(dim=0, return_inverse=True, return_counts=True)):
        assert o.tolist() == w.tolist()


# ---------------- index_put_ / scatter_add_ (confusion matrices), diag ----------------

def test_confusion_matrix_by_index_put_and_scatter_add_matches_torch(torch):
    rng = np.random.default_rng(1)
    y, p = rng.integers(0, 4, 30), rng.integers(0, 4, 30)
    ours = tl.zeros(4, 4, dtype=tl.long).index_put_((tl.tensor(y), tl.tensor(p)), tl.ones(30, dtype=tl.long),
                                                    accumulate=True)
    theirs = torch.zeros(4, 4, dtype=torch.long).index_put_((torch.tensor(y), torch.tensor(p)),
                                                            torch.ones(30, dtype=torch.long), accumulate=True)
    assert ours.tolist() == theirs.tolist()
    flat = tl.zeros(16, dtype=tl.long).scatter_add_(0, tl.tensor(y * 4 + p), tl.ones(30, dtype=tl.long))
    assert flat.view(4, 4).tolist() == theirs.tolist()
    # without accumulate the last write wins on repeats in PyTorch too only for distinct positions: use distinct ones
    ours = tl.zeros(4).index_put_((tl.tensor([3, 0]),), tl.tensor([1.0, 2.0]))
    assert ours.tolist() == torch.zeros(4).index_put_((torch.tensor([3, 0]),), torch.tensor([1.0, 2.0])).tolist()


def test_index_put_accumulate_and_scatter_add_gradients_match_torch(torch):
    rng = np.random.default_rng(2)
    base, vals, src = rng.standard_normal((3, 4)), rng.standard_normal(5), rng.standard_normal((2, 4))
    rows, cols = np.array([0, 2, 0, 0, 1]), np.array([1, 3, 1, 0, 1])
    index = np.array([[0, 1, 2, 0], [2, 2, 1, 1]])  # repeated rows along dim 0 add up
    results = []
    for lib in (tl, torch):
        b = lib.tensor(base, requires_grad=True)
        v = lib.tensor(vals, requires_grad=True)
        s = lib.tensor(src, requires_grad=True)
        out = (b * 1.0).index_put_((lib.tensor(rows), lib.tensor(cols)), v * 2.0, accumulate=True)
        out = out.scatter_add_(0, lib.tensor(index), s * 3.0)
        (out * lib.tensor(np.arange(12.0).reshape(3, 4))).sum().backward()
        results.append([np.asarray(t.detach().numpy()) for t in (out, b.grad, v.grad, s.grad)])
    for o, w in zip(*results):
        np.testing.assert_allclose(o, w, rtol=1e-15, atol=0)


def test_scatter_add_errors_name_shapes_and_dtypes():
    x = tl.zeros(3, 4)
    with pytest.raises(RuntimeError, match=r"scatter_add_.*Expected dtype int64 for index, got int32"):
        x.scatter_add_(0, tl.tensor(np.zeros((1, 4), np.int32)), tl.ones(1, 4))
    with pytest.raises(RuntimeError, match=r"scatter_add_.*self.dtype to be equal to src.dtype.*float32.*float64"):
        x.scatter_add_(0, tl.zeros(1, 4, dtype=tl.long), tl.ones(1, 4, dtype=tl.float64))
    with pytest.raises(RuntimeError, match=r"scatter_add_.*index \(1, 5\).*self \(3, 4\).*src \(1, 5\)"):
        x.scatter_add_(0, tl.zeros(1, 5, dtype=tl.long), tl.ones(1, 5))
    with pytest.raises(RuntimeError, match=r"index_put_.*dtypes match.*int64.*float32"):
        tl.zeros(3, dtype=tl.long).index_put_((tl.tensor([0]),), tl.ones(1), accumulate=True)


@pytest.mark.parametrize("k", [-3, -1, 0, 1, 2, 5])
def test_diag_matches_torch_with_gradients(torch, k):
    for shape in ((3, 4), (4,)):
        a = np.arange(float(np.prod(shape))).reshape(shape) + 1.0
        ours, theirs = tl.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
        out, want = tl.diag(ours, k), theirs.diag(k)
        assert out.numpy().tolist() == want.tolist()
        w = np.arange(float(out.numel())).reshape(out.shape)
        (out * tl.tensor(w)).sum().backward()
        (want * torch.tensor(w)).sum().backward()
        assert ours.grad.tolist() == theirs.grad.tolist()
    with pytest.raises(RuntimeError, match=r"diag\(\): Supports 1D or 2D tensors. Got 3D"):
        tl.zeros(2, 2, 2).diag()


def test_scatter_add_uses_the_part_of_src_the_index_covers(torch):
    src = np.arange(10.0).reshape(2, 5)
    index = np.array([[0, 2], [2, 2]])  # smaller than src and than self (3, 4) apart from dim 0
    ours = tl.zeros(3, 4, dtype=tl.float64).scatter_add_(0, tl.tensor(index), tl.tensor(src))
    theirs = torch.zeros(3, 4, dtype=torch.float64).scatter_add_(0, torch.tensor(index), torch.tensor(src))
    assert ours.tolist() == theirs.tolist()


def test_a_sampler_that_is_not_iterable_is_named_at_construction():
    """DataLoader(ds, 2, False, True), drop_last passed fourth (the order our API listing suggested), now passes a
    sampler, as in PyTorch: refused when the loader is made, naming the argument and the positional order (it was
    "'bool' object is not iterable" at the first batch)."""
    ds = tl.data.TensorDataset(tl.tensor(np.arange(5.0)))
    with pytest.raises(TypeError, match=r"DataLoader: sampler must be a Sampler.*got bool True.*drop_last=\.\.\. by name"):
        tl.data.DataLoader(ds, 2, False, True)
    with pytest.raises(TypeError, match="DataLoader: batch_sampler must be"):
        tl.data.DataLoader(ds, batch_sampler=3)
    assert [b[0].tolist() for b in tl.data.DataLoader(ds, 2, sampler=[4, 0, 2])] == [[4.0, 0.0], [2.0]]
