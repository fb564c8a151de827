"""Dropout, as torch.nn.Dropout: in training, zero each element with probability p and scale the rest by
1/(1-p) (one multiply by a constant mask drawn from `tl.random.get_rng()`); the identity in eval mode."""
import numbers

import numpy as np

from .. import random as _random
from ..compile.hooks import batching_rule, draws_random, host
from ..tensor import Tensor
from .module import Module


def _check_p(p):
    if not isinstance(p, numbers.Real) or not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")


def dropout(input, p=0.5, training=True, inplace=False):
    """Zero elements with probability p and scale the survivors by 1/(1-p) when training."""
    _check_p(p)
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return input * 0.0
    dt = input.dtype if input.dtype.kind == "f" else np.dtype(np.float32)
    return input * Tensor._wrap(host(_mask, input.shape, dt, p))  # drawn again on every replay, from the same RNG


@draws_random
def _mask(shape, dt, p):
    """A fresh dropout mask from the package generator: 0 or 1/(1-p), in dtype dt. Under vmap with
    randomness='different' each sample draws its own (batch_shape: the batch's size in front)."""
    draw = _random.get_rng().random(shape, dtype=np.float32 if dt == np.float32 else np.float64)
    scale = np.asarray(1.0 / (1.0 - p), dtype=dt)
    return (draw >= p).astype(dt) * scale


class Dropout(Module):
    """Randomly zero elements during training (see `dropout`)."""

    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        _check_p(p)
        self.p, self.inplace = p, inplace

    def forward(self, input):
        return dropout(input, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"


@batching_rule(_mask)
def _(args, size):
    """randomness='different': one mask per sample, drawn at once."""
    shape, dt, p = args
    return _mask((size,) + tuple(shape), dt, p)
