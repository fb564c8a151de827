"""Kullback-Leibler divergence, as torch.nn.functional.kl_div and torch.nn.KLDivLoss: `input` holds
log-probabilities, `target` probabilities (or log-probabilities with log_target=True); the pointwise loss is
target * (log(target) - input), 0 where target is 0 (PyTorch's xlogy)."""
import warnings

import numpy as np

from .. import functional as _tf
from ..tensor import Tensor
from .loss import _Loss, _broadcastable, _reduce, _reduction, _target
from .module import Module

_KL_REDUCTIONS = ("mean", "batchmean", "sum", "none")
_MEAN_WARNING = ("reduction: 'mean' divides the total loss by both the batch size and the support size."
                 "'batchmean' divides only by the batch size, and aligns with the KL div math definition."
                 "'mean' will be changed to behave the same as 'batchmean' in the next major release.")


def _kl_reduction(reduction, size_average, reduce):
    if size_average is not None or reduce is not None:  # the deprecated flags: 'mean', 'sum' or 'none', no warning
        return _reduction(reduction, size_average, reduce, "kl_div")
    if reduction not in _KL_REDUCTIONS:
        raise ValueError(f"kl_div: {reduction} is not a valid value for reduction (expected 'mean', 'batchmean', "
                         f"'sum' or 'none')")
    return reduction


def _xlogx(t):
    """t * log(t), 0 where t == 0, computed as PyTorch's xlogy(t, t): log(t) is taken (-inf at 0, so a target that
    requires grad gets PyTorch's NaN gradient there) but masked before the product, so the value stays 0."""
    with np.errstate(divide="ignore", invalid="ignore"):  # log(0) = -inf is expected; log(<0) = NaN as PyTorch's
        return t * _tf.where(t == 0, 0.0, t.log())


def kl_div(input, target, size_average=None, reduce=None, reduction="mean", log_target=False):
    """Pointwise KL divergence target * (log target - input) (log_target: exp(target) * (target - input)),
    reduced by 'mean' (over every element; warns, as PyTorch), 'batchmean' (sum / input.size(0), the true KL
    divergence per sample), 'sum' or 'none'."""
    where = "kl_div"
    if not isinstance(input, Tensor):
        raise TypeError(f"{where}: expected a Tensor input, got {type(input).__name__}")
    legacy = size_average is not None or reduce is not None
    reduction = _kl_reduction(reduction, size_average, reduce)
    if reduction == "mean" and not legacy:
        warnings.warn(_MEAN_WARNING, stacklevel=2)
    target = _target(target, input, where)
    _broadcastable(input.shape, target.shape, "input", "target", where)
    if log_target:
        loss = target.exp() * (target - input)
    else:
        loss = _xlogx(target) - target * input
    if reduction == "batchmean":
        total = loss.sum()
        return total / input.shape[0] if input.ndim else total
    return _reduce(loss, reduction)


class KLDivLoss(_Loss):
    def __init__(self, size_average=None, reduce=None, reduction="mean", log_target=False):
        Module.__init__(self)
        self.reduction = _kl_reduction(reduction, size_average, reduce)
        self.log_target = log_target

    def forward(self, input, target):
        return kl_div(input, target, reduction=self.reduction, log_target=self.log_target)
