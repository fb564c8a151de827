"""Dropout, as torch.nn.Dropout: in training, zero each element with probability p and scale the rest by
1/(1-p) (one multiply by a constant mask drawn from `tl.random.get_rng()`); the identity in eval mode.
Dropout1d/Dropout2d zero whole channels: the same mask, drawn with shape (N, C, 1, ...) and broadcast."""
import numbers
import warnings

import numpy as np

from .. import random as _random
from ..compile.hooks import batching_rule, draws_random, host, into_rule
from ..ops.registry import OpError
from ..ops.workspace import scratch
from ..tensor import Tensor
from .module import Module


def _check_p(p):
    if not isinstance(p, numbers.Real) or not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")


def dropout(input, p=0.5, training=True, inplace=False):
    """Zero elements with probability p and scale the survivors by 1/(1-p) when training."""
    _check_p(p)
    return _dropout(input, p, training, tuple(input.shape))


def _dropout(input, p, training, mask_shape):
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return input * 0.0
    dt = input.dtype if input.dtype.kind == "f" else np.dtype(np.float32)
    return input * Tensor._wrap(host(_mask, mask_shape, dt, p))  # drawn again on every replay, from the same RNG


def _feature_dropout(input, p, training):
    """PyTorch's feature_dropout: one draw per (sample, channel) of a (N, C, ...) input, broadcast over the rest."""
    if input.ndim < 2:
        raise OpError(f"feature_dropout: Feature dropout requires at least 2 dimensions in the input, got shape "
                      f"{tuple(input.shape)}")
    return _dropout(input, p, training, tuple(input.shape[:2]) + (1,) * (input.ndim - 2))


def dropout1d(input, p=0.5, training=True, inplace=False):
    """Zero whole channels of a (N, C, L) or (C, L) input with probability p; scale the rest by 1/(1-p)."""
    _check_p(p)
    if input.ndim not in (2, 3):
        raise OpError(f"dropout1d: Expected 2D or 3D input, but received a {input.ndim}D input. Note that dropout1d "
                      "exists to provide channel-wise dropout on inputs with 1 spatial dimension, a channel "
                      "dimension, and an optional batch dimension (i.e. 2D or 3D inputs).")
    if input.ndim == 2 and training and p:
        return _feature_dropout(input.unsqueeze(0), p, training).squeeze(0)
    return _feature_dropout(input, p, training)


def dropout2d(input, p=0.5, training=True, inplace=False):
    """Zero whole channels of a (N, C, H, W) input with probability p; scale the rest by 1/(1-p). As PyTorch, a 3-D
    input is taken as (N, C, L), with PyTorch's warning, and other ranks warn that they are deprecated."""
    _check_p(p)
    if input.ndim not in (3, 4):
        warnings.warn(f"dropout2d: Received a {input.ndim}-D input to dropout2d, which is deprecated and will result "
                      "in an error in a future release. To retain the behavior and silence this warning, please use "
                      "dropout instead. Note that dropout2d exists to provide channel-wise dropout on inputs with 2 "
                      "spatial dimensions, a channel dimension, and an optional batch dimension (i.e. 3D or 4D "
                      "inputs).", stacklevel=2)
    if input.ndim == 3:
        warnings.warn("dropout2d: Received a 3D input to dropout2d and assuming that channel-wise 1D dropout behavior "
                      "is desired - input is interpreted as shape (N, C, L), where C is the channel dim. This behavior "
                      "will change in a future release to interpret the input as one without a batch dimension, i.e. "
                      "shape (C, H, W). To maintain the 1D channel-wise dropout behavior, please switch to using "
                      "dropout1d instead.", stacklevel=2)
    return _feature_dropout(input, p, training)


@draws_random
def _mask(shape, dt, p):
    """A fresh dropout mask from the package generator: 0 or 1/(1-p), in dtype dt. Under vmap with
    randomness='different' each sample draws its own (batch_shape: the batch's size in front)."""
    draw = _random.get_rng().random(shape, dtype=np.float32 if dt == np.float32 else np.float64)
    scale = np.asarray(1.0 / (1.0 - p), dtype=dt)
    return (draw >= p).astype(dt) * scale


@into_rule(_mask)
def _(out, shape, dt, p):
    """The same draw (the generator's stream fills a work array as it fills a new one) and values (0 or 1 times the
    scale is exact either way), into tl.compile's planned buffer."""
    draw = scratch("dropout.draw", tuple(shape), np.float32 if dt == np.float32 else np.float64)
    _random.get_rng().random(dtype=draw.dtype, out=draw)
    keep = np.greater_equal(draw, p, out=scratch("dropout.keep", draw.shape, bool))
    return np.multiply(keep, np.asarray(1.0 / (1.0 - p), dtype=dt), out=out)


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


class Dropout1d(Dropout):
    """Randomly zero whole channels of a (N, C, L) or (C, L) input during training (see `dropout1d`)."""

    def forward(self, input):
        return dropout1d(input, self.p, self.training)


class Dropout2d(Dropout):
    """Randomly zero whole channels of a (N, C, H, W) input during training (see `dropout2d`)."""

    def forward(self, input):
        return dropout2d(input, self.p, self.training)


@batching_rule(_mask)
def _(args, size):
    """randomness='different': one mask per sample, drawn at once."""
    shape, dt, p = args
    return _mask((size,) + tuple(shape), dt, p)
