"""Datasets and batching: `TensorDataset`, `Subset`, `ConcatDataset`, `IterableDataset`, `random_split`, `DataLoader`
and `DistributedSampler` (PyTorch's names and defaults; the other samplers are in data_sampling.py).

Shuffling and `random_split` draw from `tl.random.get_rng()`, so `tl.manual_seed(n)` makes the batch order and the
split reproducible. A `DataLoader` over a `TensorDataset` (or a `Subset` of one) fancy-indexes the stored arrays
directly (one copy per batch).
"""
import bisect
import itertools
import math
import numbers
import warnings

import numpy as np

from .data_sampling import (BatchSampler, RandomSampler, Sampler, SequentialSampler, SubsetRandomSampler,
                            WeightedRandomSampler, _generator)
from .tensor import Tensor, _as_array as _checked

__all__ = ["Dataset", "IterableDataset", "TensorDataset", "Subset", "ConcatDataset", "random_split", "DataLoader",
           "default_collate", "DistributedSampler", "Sampler", "SequentialSampler", "RandomSampler",
           "SubsetRandomSampler", "WeightedRandomSampler", "BatchSampler"]


class Dataset:
    """Base class for map-style datasets: implement `__getitem__(index)` and `__len__()`."""

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__")

    def __len__(self):
        raise NotImplementedError(f"{type(self).__name__} must implement __len__")

    def __add__(self, other):
        return ConcatDataset([self, other])


class IterableDataset(Dataset):
    """Base class for datasets that are streams: implement `__iter__()`. A DataLoader batches what it yields."""

    def __iter__(self):
        raise NotImplementedError(f"{type(self).__name__} must implement __iter__")

    def __len__(self):
        # a TypeError, as PyTorch's stream has no len(): list(DataLoader(stream)) asks for a length hint and
        # goes on without one only after a TypeError
        raise TypeError(f"object of type '{type(self).__name__}' has no len() (an IterableDataset defines __len__ "
                        f"only if it knows its length)")

    def __add__(self, other):
        raise TypeError("IterableDataset: '+' (ChainDataset) is not supported; chain the iterables with "
                        "itertools.chain in __iter__")


def _fresh(arr):
    """A Tensor around `arr` without the copy tl.tensor makes: for arrays made here (a batch, a stacked sample)
    and the dataset's own arrays (kept as given, like TensorDataset's tensors)."""
    t = Tensor.__new__(Tensor)
    t._adopt(_checked(arr, None, "DataLoader"))
    return t


def _as_array(x, what):
    if isinstance(x, Tensor):
        return x._data
    if isinstance(x, np.ndarray):
        return x
    raise TypeError(f"TensorDataset: {what} must be a Tensor or NumPy array, got {type(x).__name__}")


class TensorDataset(Dataset):
    """Sample i is `tuple(t[i] for t in tensors)`; every tensor must have the same first dimension."""

    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("TensorDataset needs at least one tensor")
        arrays = [_as_array(t, f"tensors[{i}]") for i, t in enumerate(tensors)]
        for i, a in enumerate(arrays):
            if a.ndim == 0:
                raise ValueError(f"TensorDataset: tensors[{i}] is 0-d; every tensor needs a first (sample) "
                                 "dimension")
        n = arrays[0].shape[0]
        if any(a.shape[0] != n for a in arrays):
            shapes = ", ".join(str(tuple(a.shape)) for a in arrays)
            raise ValueError(f"Size mismatch between tensors: TensorDataset needs the same first dimension in "
                             f"every tensor, got shapes {shapes}")
        self.tensors = tuple(t if isinstance(t, Tensor) else _fresh(t) for t in tensors)
        self._arrays = arrays

    def __getitem__(self, index):
        return tuple(_fresh(np.array(a[index], copy=True)) for a in self._arrays)

    def __len__(self):
        return self._arrays[0].shape[0]

    def _batch(self, indices):
        # A fancy index (or a copied slice) never aliases the dataset, so in-place edits to a batch are safe
        if isinstance(indices, slice):
            return [_fresh(a[indices].copy()) for a in self._arrays]
        return [_fresh(a[indices]) for a in self._arrays]


class Subset(Dataset):
    """The samples of `dataset` at `indices`, in that order (torch.utils.data.Subset)."""

    def __init__(self, dataset, indices):
        self.dataset = dataset
        self.indices = indices

    def __getitem__(self, idx):
        if isinstance(idx, list):
            return self.dataset[[self.indices[i] for i in idx]]
        return self.dataset[self.indices[idx]]

    def __getitems__(self, indices):
        if callable(getattr(self.dataset, "__getitems__", None)):
            return self.dataset.__getitems__([self.indices[i] for i in indices])
        return [self.dataset[self.indices[i]] for i in indices]

    def __len__(self):
        return len(self.indices)

    def _batch(self, indices):
        """A batch of a Subset of a TensorDataset: one fancy index into the stored arrays."""
        return self.dataset._batch(np.asarray(self.indices, dtype=np.int64)[indices])


class ConcatDataset(Dataset):
    """The samples of `datasets`, one after the other (torch.utils.data.ConcatDataset)."""

    def __init__(self, datasets):
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("ConcatDataset: datasets should not be an empty iterable")
        for d in self.datasets:
            if isinstance(d, IterableDataset):
                raise TypeError(f"ConcatDataset does not support IterableDataset (got {type(d).__name__})")
        self.cumulative_sizes = list(itertools.accumulate(len(d) for d in self.datasets))

    def __len__(self):
        return self.cumulative_sizes[-1]

    def __getitem__(self, idx):
        if idx < 0:
            if -idx > len(self):
                raise ValueError(f"ConcatDataset: absolute value of index should not exceed dataset length "
                                 f"(index {idx}, length {len(self)})")
            idx = len(self) + idx
        which = bisect.bisect_right(self.cumulative_sizes, idx)
        if which == len(self.datasets):
            raise IndexError(f"ConcatDataset: index {idx} is out of range for a dataset of length {len(self)}")
        return self.datasets[which][idx - (self.cumulative_sizes[which - 1] if which else 0)]


def _batchable(dataset):
    while type(dataset) is Subset:  # a subclass may override __getitem__: batch it sample by sample
        dataset = dataset.dataset
    return isinstance(dataset, TensorDataset)


def _split_lengths(n, lengths):
    """PyTorch's lengths: fractions summing to 1 become floor(n * f), the remainder added round-robin."""
    total = sum(lengths)
    if math.isclose(total, 1) and total <= 1:
        sizes = []
        for i, frac in enumerate(lengths):
            if frac < 0 or frac > 1:
                raise ValueError(f"Fraction at index {i} is not between 0 and 1")
            sizes.append(int(math.floor(n * frac)))
        for i in range(n - sum(sizes)):
            sizes[i % len(sizes)] += 1
        for i, size in enumerate(sizes):
            if size == 0:
                warnings.warn(f"Length of split at index {i} is 0. This might result in an empty dataset.",
                              UserWarning, stacklevel=3)
        return sizes
    if total != n:
        raise ValueError(f"Sum of input lengths does not equal the length of the input dataset! (lengths "
                         f"{list(lengths)} sum to {total}, the dataset has {n} samples)")
    for i, size in enumerate(lengths):
        if not isinstance(size, numbers.Integral) or isinstance(size, bool) or size < 0:
            raise ValueError(f"random_split: lengths must be non-negative ints or fractions summing to 1, got "
                             f"{size!r} at index {i}")
    return [int(size) for size in lengths]


def random_split(dataset, lengths, generator=None):
    """Split `dataset` into non-overlapping random `Subset`s of the given lengths (ints summing to len(dataset), or
    fractions summing to 1, rounded as PyTorch's). The permutation comes from `generator` (a numpy Generator) or
    the package generator, so `tl.manual_seed(n)` makes the split reproducible."""
    generator = _generator(generator, "random_split")
    sizes = _split_lengths(len(dataset), list(lengths))
    indices = generator.permutation(sum(sizes)).tolist()
    return [Subset(dataset, indices[end - size:end]) for end, size in zip(itertools.accumulate(sizes), sizes)]


def default_collate(batch):
    """Stack a list of samples into a batch: Tensors/arrays/numbers stack along a new first dimension,
    tuples/lists (into a list) and dicts are collated field by field (as `torch.utils._data.default_collate`)."""
    elem = batch[0]
    if isinstance(elem, Tensor):
        return _fresh(np.stack([b._data for b in batch]))
    if isinstance(elem, np.ndarray):
        return _fresh(np.stack(batch))
    if isinstance(elem, (np.bool_, np.number)) and not isinstance(elem, float):
        return _fresh(np.array(batch))  # NumPy scalars keep their dtype (np.float32 labels stay float32), as PyTorch
    if isinstance(elem, int):
        # PyTorch's torch.tensor(batch): the batch's values decide (bool, int64, or float32 if a float follows)
        return Tensor(batch)
    if isinstance(elem, float):
        return _fresh(np.array(batch, dtype=np.float64))  # PyTorch collates Python floats as float64
    if isinstance(elem, (str, bytes)):
        return list(batch)
    if isinstance(elem, dict):
        return {key: default_collate([b[key] for b in batch]) for key in elem}
    if isinstance(elem, (tuple, list)):
        size = len(elem)
        if any(len(b) != size for b in batch):
            raise RuntimeError("default_collate: each sample in a batch must have the same number of fields, "
                               f"got {sorted({len(b) for b in batch})}")
        fields = [default_collate(list(samples)) for samples in zip(*batch)]
        if hasattr(elem, "_fields"):  # a namedtuple keeps its type
            return type(elem)(*fields)
        return fields  # PyTorch turns tuples of fields into a list as well
    raise TypeError(f"default_collate: samples must be Tensors, arrays, numbers, strings, dicts or tuples, "
                    f"got {type(elem).__name__}")


class DistributedSampler(Sampler):
    """The indices of rank `rank`'s share of `dataset` among `num_replicas` ranks (torch.utils.data's, with its
    arithmetic): every rank gets `num_samples` indices, the dataset padded by repeating its first indices to a
    multiple of the ranks (or cut to one with `drop_last`), rank r taking every num_replicas-th from position r.
    With `shuffle` the order is a permutation seeded by `seed + epoch` (the same on every rank, NumPy's generator,
    so not PyTorch's numbers); call `set_epoch(epoch)` at each epoch for a new order."""

    def __init__(self, dataset, num_replicas=None, rank=None, shuffle=True, seed=0, drop_last=False):
        if num_replicas is None or rank is None:
            from . import distributed  # the group's size and rank; PyTorch's error when there is none
            num_replicas = distributed.get_world_size() if num_replicas is None else num_replicas
            rank = distributed.get_rank() if rank is None else rank
        if not isinstance(num_replicas, (int, np.integer)) or num_replicas < 1:
            raise ValueError(f"DistributedSampler: num_replicas must be a positive int, got {num_replicas!r}")
        if rank >= num_replicas or rank < 0:
            raise ValueError(f"Invalid rank {rank}, rank should be in the interval [0, {num_replicas - 1}]")
        self.dataset, self.num_replicas, self.rank = dataset, int(num_replicas), int(rank)
        self.shuffle, self.seed, self.drop_last, self.epoch = bool(shuffle), int(seed), bool(drop_last), 0
        n = len(dataset)
        if self.drop_last and n % self.num_replicas != 0:
            self.num_samples = math.ceil((n - self.num_replicas) / self.num_replicas)
        else:
            self.num_samples = math.ceil(n / self.num_replicas)
        self.total_size = self.num_samples * self.num_replicas

    def _permutation(self, n):
        return np.random.default_rng(self.seed + self.epoch).permutation(n).tolist()

    def __iter__(self):
        n = len(self.dataset)
        indices = self._permutation(n) if self.shuffle else list(range(n))
        if not self.drop_last:
            padding = self.total_size - len(indices)
            if padding <= len(indices):
                indices += indices[:padding]
            else:
                indices += (indices * math.ceil(padding / len(indices)))[:padding]
        else:
            indices = indices[:self.total_size]
        return iter(indices[self.rank:self.total_size:self.num_replicas])

    def __len__(self):
        return self.num_samples

    def set_epoch(self, epoch):
        """Make the next iteration's shuffle the one of `epoch` (call it on every rank, with the same value)."""
        self.epoch = epoch


class DataLoader:
    """Iterate over `dataset` in batches of `batch_size` (None: single samples, uncollated as PyTorch's), in the
    order of `sampler` (any iterable of indices with a length, e.g. a DistributedSampler) when one is given, or
    in the index lists of `batch_sampler`. An IterableDataset is batched in the order it yields its samples."""

    def __init__(self, dataset, batch_size=1, shuffle=None, sampler=None, batch_sampler=None, num_workers=0,
                 collate_fn=None, pin_memory=False, drop_last=False, timeout=0, worker_init_fn=None,
                 multiprocessing_context=None, generator=None, *, prefetch_factor=None, persistent_workers=False,
                 pin_memory_device="", in_order=True):
        """`num_workers`, `pin_memory` and the other worker options are accepted for PyTorch code and have no
        effect: batches are made in the calling process (NumPy indexing is fast; there is no device to pin for)."""
        if not isinstance(num_workers, (int, np.integer)) or isinstance(num_workers, bool) or num_workers < 0:
            raise ValueError(f"num_workers option should be non-negative; use num_workers=0 to disable "
                             f"multiprocessing (got {num_workers!r})")
        if batch_size is not None and (not isinstance(batch_size, (int, np.integer)) or
                                       isinstance(batch_size, bool) or batch_size <= 0):
            raise ValueError(f"batch_size should be a positive integer value or None, but got "
                             f"batch_size={batch_size!r}")
        iterable = isinstance(dataset, IterableDataset)
        if iterable:
            if shuffle not in (None, False):
                raise ValueError(f"DataLoader with IterableDataset: expected unspecified shuffle option, but got "
                                 f"shuffle={shuffle}")
            if sampler is not None or batch_sampler is not None:
                which = "sampler" if sampler is not None else "batch_sampler"
                raise ValueError(f"DataLoader with IterableDataset: expected unspecified {which} option, but got "
                                 f"{which}={(sampler if sampler is not None else batch_sampler)!r}")
        elif not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__"):
            raise TypeError(f"DataLoader: dataset must define __len__ and __getitem__ (or be an IterableDataset), "
                            f"got {type(dataset).__name__}")
        for name, given in (("sampler", sampler), ("batch_sampler", batch_sampler)):
            if given is not None and not hasattr(given, "__iter__"):  # (e.g. drop_last passed 4th, an old habit)
                raise TypeError(f"DataLoader: {name} must be a Sampler or an iterable of indices, got "
                                f"{type(given).__name__} {given!r} (the positional order is PyTorch's: dataset, "
                                f"batch_size, shuffle, sampler, batch_sampler, num_workers, collate_fn, pin_memory, "
                                f"drop_last; pass drop_last=... by name)")
        if sampler is not None and shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("batch_sampler option is mutually exclusive with batch_size, shuffle, sampler, and "
                                 "drop_last")
            batch_size = None  # as PyTorch: the batch sampler decides the batches
        elif batch_size is None and drop_last:
            raise ValueError("batch_size=None option disables auto-batching and is mutually exclusive with "
                             "drop_last")
        self.dataset = dataset
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self.batch_size = batch_size
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.collate_fn = collate_fn
        self.generator = generator

    def __len__(self):
        if self.batch_sampler is not None:
            return len(self.batch_sampler)
        n = len(self.dataset) if self.sampler is None else len(self.sampler)  # (an IterableDataset may have none)
        if self.batch_size is None:
            return n
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def _order(self, n):
        if self.sampler is not None:
            return np.fromiter(iter(self.sampler), dtype=np.int64)
        if not self.shuffle:
            return None
        rng = self.generator
        if rng is None:
            from .random import get_rng  # fetched per epoch: tl.manual_seed replaces the generator

            rng = get_rng()
        return rng.permutation(n)

    def __iter__(self):
        if isinstance(self.dataset, IterableDataset):
            yield from self._iter_stream()
            return
        fast = _batchable(self.dataset) and self.collate_fn is None
        collate = self.collate_fn or default_collate
        if self.batch_sampler is not None:
            for indices in self.batch_sampler:
                yield (self.dataset._batch(np.asarray(indices, dtype=np.int64)) if fast
                       else collate([self.dataset[i] for i in indices]))
            return
        order = self._order(len(self.dataset))
        n = len(self.dataset) if order is None else len(order)
        if self.batch_size is None:
            for i in range(n):
                sample = self.dataset[int(order[i]) if order is not None else i]
                yield sample if self.collate_fn is None else self.collate_fn(sample)  # PyTorch: per sample
            return
        bs = self.batch_size
        stop = n - n % bs if self.drop_last else n
        for start in range(0, stop, bs):
            end = min(start + bs, n)
            if fast:
                yield self.dataset._batch(slice(start, end) if order is None else order[start:end])
            else:
                indices = range(start, end) if order is None else order[start:end].tolist()
                yield collate([self.dataset[i] for i in indices])

    def _iter_stream(self):
        """An IterableDataset: its samples as they come, collated in groups of batch_size (a short last group is
        kept unless drop_last), or one by one with batch_size=None (through collate_fn only when one is given)."""
        if self.batch_size is None:
            for sample in self.dataset:
                yield sample if self.collate_fn is None else self.collate_fn(sample)
            return
        collate = self.collate_fn or default_collate
        batch = []
        for sample in self.dataset:
            batch.append(sample)
            if len(batch) == self.batch_size:
                yield collate(batch)
                batch = []
        if batch and not self.drop_last:
            yield collate(batch)
