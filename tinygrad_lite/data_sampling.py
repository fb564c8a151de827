"""Samplers, as `torch.utils.data`'s: `Sampler`, `SequentialSampler`, `RandomSampler`, `SubsetRandomSampler`,
`WeightedRandomSampler` and `BatchSampler`, with PyTorch's names, defaults, lengths and argument errors.

The random ones draw from `generator` (a numpy Generator) or the package generator (`tl.manual_seed(n)` makes
them reproducible): the orders are NumPy's, not PyTorch's numbers, as DataLoader shuffling and random_split."""
import numbers

import numpy as np

__all__ = ["Sampler", "SequentialSampler", "RandomSampler", "SubsetRandomSampler", "WeightedRandomSampler",
           "BatchSampler"]


class Sampler:
    """Base class: iterate over indices of a dataset (and usually define `__len__`)."""

    def __init__(self, data_source=None):
        pass

    def __iter__(self):
        raise NotImplementedError(f"{type(self).__name__} must implement __iter__")


def _generator(generator, where):
    """`generator` (a numpy Generator) checked, or the package generator (samplers, random_split)."""
    from .random import checked, get_rng  # (get_rng fetched per iteration: tl.manual_seed replaces the generator)
    return get_rng() if checked(generator, where) is None else generator


class SequentialSampler(Sampler):
    """0, 1, ..., len(data_source) - 1."""

    def __init__(self, data_source):
        self.data_source = data_source

    def __iter__(self):
        return iter(range(len(self.data_source)))

    def __len__(self):
        return len(self.data_source)


class RandomSampler(Sampler):
    """A random permutation of the indices, or `num_samples` draws with replacement."""

    def __init__(self, data_source, replacement=False, num_samples=None, generator=None):
        if not isinstance(replacement, bool):
            raise TypeError(f"replacement should be a boolean value, but got replacement={replacement}")
        self.data_source, self.replacement, self._num_samples = data_source, replacement, num_samples
        self.generator = generator
        if not isinstance(self.num_samples, numbers.Integral) or isinstance(self.num_samples, bool) or \
                self.num_samples <= 0:
            raise ValueError(f"num_samples should be a positive integer value, but got num_samples="
                             f"{self.num_samples}")

    @property
    def num_samples(self):
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def __iter__(self):
        n, rng = len(self.data_source), _generator(self.generator, "RandomSampler")
        if self.replacement:
            return iter(rng.integers(0, n, size=self.num_samples).tolist())
        full, rest = divmod(self.num_samples, n)
        return iter([i for _ in range(full) for i in rng.permutation(n).tolist()] + rng.permutation(n)[:rest].tolist())

    def __len__(self):
        return self.num_samples


class SubsetRandomSampler(Sampler):
    """The given indices, in a random order."""

    def __init__(self, indices, generator=None):
        self.indices, self.generator = indices, generator

    def __iter__(self):
        rng = _generator(self.generator, "SubsetRandomSampler")
        return (self.indices[i] for i in rng.permutation(len(self.indices)).tolist())

    def __len__(self):
        return len(self.indices)


class WeightedRandomSampler(Sampler):
    """`num_samples` indices of `weights` (a 1-D sequence of non-negative weights, not necessarily summing to 1),
    each drawn with probability proportional to its weight; without replacement, each index at most once. The
    draw is `tl.multinomial`'s, made afresh at each iteration."""

    def __init__(self, weights, num_samples, replacement=True, generator=None):
        if not isinstance(num_samples, int) or isinstance(num_samples, bool) or num_samples <= 0:
            raise ValueError(f"num_samples should be a positive integer value, but got num_samples={num_samples}")
        if not isinstance(replacement, bool):
            raise ValueError(f"replacement should be a boolean value, but got replacement={replacement}")
        from .tensor import Tensor

        try:
            arr = np.array(weights._data if isinstance(weights, Tensor) else weights, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"WeightedRandomSampler: weights must be a 1d sequence of numbers, got "
                            f"{type(weights).__name__} ({exc})") from None
        if arr.ndim != 1:
            raise ValueError(f"weights should be a 1d sequence but given weights have shape {tuple(arr.shape)}")
        self.weights = Tensor._wrap(arr)
        self.num_samples = num_samples
        self.replacement = replacement
        self.generator = generator

    def __iter__(self):
        from .creation import multinomial

        rng = _generator(self.generator, "WeightedRandomSampler")
        yield from multinomial(self.weights, self.num_samples, self.replacement, generator=rng).tolist()

    def __len__(self):
        return self.num_samples


class BatchSampler(Sampler):
    """Lists of `batch_size` indices from `sampler` (the last one shorter unless `drop_last`)."""

    def __init__(self, sampler, batch_size, drop_last):
        if not isinstance(batch_size, numbers.Integral) or isinstance(batch_size, bool) or batch_size <= 0:
            raise ValueError(f"batch_size should be a positive integer value, but got batch_size={batch_size}")
        if not isinstance(drop_last, bool):
            raise ValueError(f"drop_last should be a boolean value, but got drop_last={drop_last}")
        self.sampler, self.batch_size, self.drop_last = sampler, int(batch_size), drop_last

    def __iter__(self):
        batch = []
        for idx in self.sampler:
            batch.append(idx)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self):
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else (n + self.batch_size - 1) // self.batch_size
