"""Negative log-likelihood losses of count and real-valued targets, as PyTorch's: Poisson (log or rate input, with
the Stirling term for full=True) and Gaussian (heteroscedastic or homoscedastic variance, clamped at eps)."""
import math

import numpy as np

from .. import functional as _tf
from ..compile.hooks import constant, data, host_check
from ..tensor import Tensor
from .loss import _Loss, _broadcastable, _const, _reduce, _reduction, _same_size, _target
from .loss_margin import _float_input


def poisson_nll_loss(input, target, log_input=True, full=False, size_average=None, eps=1e-8, reduce=None,
                     reduction="mean"):
    """exp(x) - y x (log_input) or x - y log(x + eps); full adds the Stirling term y log y - y + log(2 pi y) / 2
    where y > 1."""
    where = "poisson_nll_loss"
    reduction = _reduction(reduction, size_average, reduce, where)
    target = _target(target, _float_input(input, "input", where), where)
    _same_size(input, target, where)
    if log_input:
        loss = input.exp() - target * input
    else:
        loss = input - target * (input + eps).log()
    if full:
        with np.errstate(divide="ignore", invalid="ignore"):  # log(y) for y <= 1 is computed, then masked out
            stirling = target * target.log() - target + 0.5 * (target * (2 * math.pi)).log()
            loss = loss + _tf.where(target <= 1, 0.0, stirling)
    return _reduce(loss, reduction)


def gaussian_nll_loss(input, target, var, full=False, eps=1e-6, reduction="mean"):
    """(log(max(var, eps)) + (x - y)^2 / max(var, eps)) / 2 (+ log(2 pi) / 2 with full). var has the input's
    shape, or that shape with one dim of size 1 or the last dim dropped (one variance shared), or is a float. The
    clamp passes var's gradient straight through, as PyTorch clamps it in place under no_grad."""
    where = "gaussian_nll_loss"
    target = _target(target, _float_input(input, "input", where), where)
    if isinstance(var, (int, float)) and not isinstance(var, bool):
        if var < 0:
            raise ValueError(f"{where}: var has negative entry/entries (got {var})")
        var = _const(constant(np.full(input.shape, var, input.dtype)))
    else:
        if not isinstance(var, Tensor):
            raise TypeError(f"{where}: expected var as a Tensor or a float, got {type(var).__name__}")
        var = _target(var, input, where)
        host_check(_check_nonnegative, data(var), where)
    if tuple(var.shape) != tuple(input.shape):
        if tuple(input.shape[:-1]) == tuple(var.shape):
            var = var.unsqueeze(-1)
        elif not (input.ndim == var.ndim and
                  sum(v for i, v in zip(input.shape, var.shape) if i != v) == 1):
            raise ValueError(f"{where}: var is of incorrect size: got var of shape {tuple(var.shape)} for input of "
                             f"shape {tuple(input.shape)} (expected the input's shape, that shape with one dim of "
                             f"size 1, or without its last dim)")
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"{where}: {reduction} is not valid (expected 'mean', 'sum' or 'none')")
    _same_size(input, target, where)
    _broadcastable(input.shape, var.shape, "input", "var", where)
    low = var.detach() < eps
    var = _tf.where(low, (var - var.detach()) + eps, var)  # the value eps, the gradient of var itself
    d = input - target
    loss = 0.5 * (var.log() + d * d / var)
    if full:
        loss = loss + 0.5 * math.log(2 * math.pi)
    return _reduce(loss, reduction)


def _check_nonnegative(v, where):
    if (v < 0).any():
        raise ValueError(f"{where}: var has negative entry/entries (min {v.min()}, var of shape {v.shape})")


class PoissonNLLLoss(_Loss):
    def __init__(self, log_input=True, full=False, size_average=None, eps=1e-8, reduce=None, reduction="mean"):
        super().__init__(size_average, reduce, reduction)
        self.log_input, self.full, self.eps = log_input, full, eps

    def forward(self, log_input, target):
        return poisson_nll_loss(log_input, target, log_input=self.log_input, full=self.full, eps=self.eps,
                                reduction=self.reduction)


class GaussianNLLLoss(_Loss):
    def __init__(self, *, full=False, eps=1e-6, reduction="mean"):
        super().__init__(reduction=reduction)
        self.full, self.eps = full, eps

    def forward(self, input, target, var):
        return gaussian_nll_loss(input, target, var, full=self.full, eps=self.eps, reduction=self.reduction)
