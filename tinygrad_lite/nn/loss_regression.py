"""Regression losses and their modules, as PyTorch's: mean squared error, L1, smooth L1 and Huber. The shared
helpers (reduction, target conversion, size checks, _Loss) and the classification losses are in loss.py."""
from .. import functional as _tf
from ..autograd.recorder import labelled
from ..ops.registry import OpError
from .loss import _Loss, _reduce, _reduction, _same_size, _target


@labelled("MseLossBackward0")
def mse_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    """Mean squared error (x - y)^2."""
    reduction = _reduction(reduction, size_average, reduce, "mse_loss")
    target = _target(target, input, "mse_loss")
    _same_size(input, target, "mse_loss")
    d = input - target
    return _reduce(d * d, reduction)


def l1_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    """Mean absolute error |x - y|."""
    reduction = _reduction(reduction, size_average, reduce, "l1_loss")
    target = _target(target, input, "l1_loss")
    _same_size(input, target, "l1_loss")
    return _reduce((input - target).abs(), reduction)


@labelled("SmoothL1LossBackward0")
def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction="mean", beta=1.0):
    """|x - y| - beta/2 where |x - y| >= beta, else (x - y)^2 / (2 beta); beta=0 is the L1 loss."""
    where = "smooth_l1_loss"
    reduction = _reduction(reduction, size_average, reduce, where)
    if beta < 0:
        raise OpError(f"{where}: smooth_l1_loss does not support negative values for beta (got beta={beta}).")
    target = _target(target, input, where)
    _same_size(input, target, where)
    z = (input - target).abs()
    if beta == 0:
        return _reduce(z, reduction)
    return _reduce(_tf.where(z < beta, 0.5 * z * z / beta, z - 0.5 * beta), reduction)


def huber_loss(input, target, reduction="mean", delta=1.0, weight=None):
    """(x - y)^2 / 2 where |x - y| < delta, else delta (|x - y| - delta/2); optionally weighted elementwise."""
    where = "huber_loss"
    reduction = _reduction(reduction, None, None, where)
    if not delta > 0:
        raise OpError(f"{where}: huber_loss does not support non-positive values for delta (got delta={delta}).")
    target = _target(target, input, where)
    _same_size(input, target, where)
    z = (input - target).abs()
    loss = _tf.where(z < delta, 0.5 * z * z, delta * (z - 0.5 * delta))
    if weight is not None:
        weight = _target(weight, input, where)
        if tuple(weight.shape) != tuple(input.shape):
            raise OpError(f"{where}: Weights and input must have the same size (weight shape "
                          f"{tuple(weight.shape)}, input shape {tuple(input.shape)}).")
        loss = loss * weight
    return _reduce(loss, reduction)


# ---------------- modules ----------------
class MSELoss(_Loss):
    def forward(self, input, target):
        return mse_loss(input, target, reduction=self.reduction)


class L1Loss(_Loss):
    def forward(self, input, target):
        return l1_loss(input, target, reduction=self.reduction)


class SmoothL1Loss(_Loss):
    def __init__(self, size_average=None, reduce=None, reduction="mean", beta=1.0):
        super().__init__(size_average, reduce, reduction)
        self.beta = beta

    def forward(self, input, target):
        return smooth_l1_loss(input, target, reduction=self.reduction, beta=self.beta)


class HuberLoss(_Loss):
    def __init__(self, reduction="mean", delta=1.0):
        super().__init__(reduction=reduction)
        self.delta = delta

    def forward(self, input, target):
        return huber_loss(input, target, reduction=self.reduction, delta=self.delta)
