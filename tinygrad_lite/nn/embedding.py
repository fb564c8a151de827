"""Embedding lookup, as torch.nn.Embedding: `weight[indices]` (repeated indices accumulate in the gradient); the
padding_idx row starts at zero and receives no gradient."""
import numpy as np

from .. import functional as _tf
from ..autograd.recorder import labelled
from ..compile.hooks import data, host, host_check
from ..tensor import Tensor
from . import init
from .linear import check_size, factory_dtype
from .module import Module, Parameter


def _indices(input, num, where):
    idx = data(input) if isinstance(input, Tensor) else np.asarray(input)  # (data(): ids vmap does not batch)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"{where}: expected integer indices (Long or Int tensor), got dtype {idx.dtype}")
    host_check(_check_indices, idx, num, where)
    return idx


def _check_indices(idx, num, where):
    if idx.size and (idx.min() < 0 or idx.max() >= num):
        bad = idx.min() if idx.min() < 0 else idx.max()
        raise IndexError(f"{where}: index {bad} is out of range for an embedding table of {num} rows (expected "
                         f"indices in [0, {num}))")


def _padding_index(padding_idx, num, where):
    if padding_idx is None:
        return None
    if not -num <= padding_idx < num:
        raise ValueError(f"{where}: padding_idx {padding_idx} must be within num_embeddings ({num})")
    return padding_idx % num


@labelled("EmbeddingBackward0")
def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0, scale_grad_by_freq=False,
              sparse=False):
    """Rows of `weight` at the integer `input` indices; no gradient flows to row `padding_idx`."""
    if max_norm is not None or scale_grad_by_freq or sparse:
        raise NotImplementedError("embedding: max_norm, scale_grad_by_freq and sparse are not supported")
    if weight.ndim != 2:
        raise ValueError(f"embedding: weight must be 2-D (num_embeddings, embedding_dim), got {tuple(weight.shape)}")
    num = weight.shape[0]
    idx = _indices(input, num, "embedding")
    pad = _padding_index(padding_idx, num, "embedding")
    out = weight[idx]
    if pad is not None and weight.requires_grad:  # the row's value, detached: PyTorch's backward skips padding_idx
        out = _tf.where(Tensor._wrap(host(_rows_at, idx, pad)), out.detach(), out)
    return out


def _rows_at(idx, pad):
    return (idx == pad)[..., None]


class Embedding(Module):
    """A (num_embeddings, embedding_dim) lookup table initialised from N(0, 1)."""

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, max_norm=None, norm_type=2.0,
                 scale_grad_by_freq=False, sparse=False, _weight=None, _freeze=False, device=None, dtype=None):
        super().__init__()
        if max_norm is not None or scale_grad_by_freq or sparse:
            raise NotImplementedError("Embedding: max_norm, scale_grad_by_freq and sparse are not supported")
        dt = factory_dtype(dtype, device, "Embedding")
        num_embeddings = check_size(num_embeddings, "num_embeddings", "Embedding")
        embedding_dim = check_size(embedding_dim, "embedding_dim", "Embedding")
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.padding_idx = _padding_index(padding_idx, num_embeddings, "Embedding")
        self.max_norm, self.norm_type = max_norm, norm_type
        self.scale_grad_by_freq, self.sparse = scale_grad_by_freq, sparse
        if _weight is None:
            self.weight = Parameter(np.empty((num_embeddings, embedding_dim), dtype=dt), requires_grad=not _freeze)
            self.reset_parameters()
        else:
            w = _weight._data if isinstance(_weight, Tensor) else np.asarray(_weight)
            if w.shape != (num_embeddings, embedding_dim):
                raise ValueError(f"Embedding: _weight has shape {w.shape}, expected {(num_embeddings, embedding_dim)}")
            self.weight = Parameter(w, requires_grad=not _freeze)

    def reset_parameters(self):
        init.normal_(self.weight)
        if self.padding_idx is not None:
            self.weight._data[self.padding_idx] = 0

    @classmethod
    def from_pretrained(cls, embeddings, freeze=True, padding_idx=None, **kwargs):
        """An Embedding whose weight is `embeddings` (a 2-D Tensor or array); frozen by default."""
        rows, cols = embeddings.shape
        return cls(rows, cols, padding_idx=padding_idx, _weight=embeddings, _freeze=freeze, **kwargs)

    def forward(self, input):
        idx = _indices(input, self.num_embeddings, "Embedding")
        return embedding(Tensor._wrap(idx), self.weight, self.padding_idx)

    def extra_repr(self):
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.padding_idx is not None:
            s += f", padding_idx={self.padding_idx}"
        return s
