"""Margin and embedding losses, as PyTorch's: soft margin, hinge embedding, margin ranking, cosine embedding,
multi-label soft margin, multi-class margin (p = 1 or 2), multi-label margin, triplet margin (with a p-norm or any
distance function). Each is an expression in tensor ops; class indices become gather indices and masks computed on
the host from the targets (a tl.compile replay recomputes them, so bad targets raise there too).

PyTorch broadcasts input and target silently in several of these; here a size mismatch warns as mse_loss does."""

import numpy as np

from .. import functional as _tf
from ..autograd.recorder import labelled
from ..compile.hooks import batching_rule, data, host
from ..tensor import Tensor
from .activation_extra import logsigmoid
from .distance import pairwise_distance
from .loss import (_Loss, _WeightedLoss, _broadcastable, _const, _outside, _reduce, _reduction, _same_size,
                   _softplus, _target)


def _float_input(x, name, where):
    if not isinstance(x, Tensor):
        raise TypeError(f"{where}: expected a Tensor {name}, got {type(x).__name__}")
    if x.dtype.kind != "f":
        raise RuntimeError(f"{where}: expected a floating point {name}, got dtype {x.dtype} (shape "
                           f"{tuple(x.shape)})")
    return x


def _index_target(target, where):
    t = data(target) if isinstance(target, Tensor) else _outside(target)
    if t.dtype.kind not in "iu":
        raise RuntimeError(f"{where}: expected class-index targets of an integer dtype, got dtype {t.dtype} and "
                           f"shape {t.shape}")
    return t


def _matrix(input, where):
    """(N, C) view of a 0-d, (C,) or (N, C) input, as PyTorch's multi-class margin losses accept."""
    if not ((input.ndim == 2 and input.shape[1] != 0) or (input.ndim == 1 and input.shape[0] != 0)
            or input.ndim == 0):
        raise RuntimeError(f"{where}: Expected non-empty vector or matrix with optional 0-dim batch size, but got: "
                           f"input of shape {tuple(input.shape)}")
    return input.reshape(1, -1) if input.ndim < 2 else input


@labelled("SoftMarginLossBackward0")
def soft_margin_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    """log(1 + exp(-y x)) for labels y = +-1, computed stably (PyTorch's log1p(exp) overflows to inf)."""
    where = "soft_margin_loss"
    reduction = _reduction(reduction, size_average, reduce, where)
    target = _target(target, _float_input(input, "input", where), where)
    _same_size(input, target, where)
    return _reduce(_softplus(-target * input), reduction)


def hinge_embedding_loss(input, target, margin=1.0, size_average=None, reduce=None, reduction="mean"):
    """x where y == 1, max(0, margin - x) where y == -1 (PyTorch's: a y that is neither takes both terms)."""
    where = "hinge_embedding_loss"
    reduction = _reduction(reduction, size_average, reduce, where)
    target = _target(target, _float_input(input, "input", where), where)
    _same_size(input, target, where)
    clamped = (margin - input).clamp(min=0.0)
    loss = _tf.where(target != 1, clamped, 0.0) + _tf.where(target != -1, input, 0.0)
    return _reduce(loss, reduction)


def margin_ranking_loss(input1, input2, target, margin=0, size_average=None, reduce=None, reduction="mean"):
    """max(0, -y (x1 - x2) + margin): y = 1 says x1 should rank higher, y = -1 lower."""
    where = "margin_ranking_loss"
    reduction = _reduction(reduction, size_average, reduce, where)
    _float_input(input1, "input1", where), _float_input(input2, "input2", where)
    target = _target(target, input1, where)
    if not input1.ndim == input2.ndim == target.ndim:
        raise RuntimeError(f"{where}: All input tensors should have same dimension but got sizes: input1: "
                           f"{tuple(input1.shape)}, input2: {tuple(input2.shape)}, target: {tuple(target.shape)}")
    _same_size(input1, input2, where, ("input1", "input2"))
    _same_size(input1, target, where, ("input1", "target"))
    return _reduce((-target * (input1 - input2) + margin).clamp(min=0.0), reduction)


_COS_EPS = 1e-12  # PyTorch's EPSILON, added to each squared magnitude


def cosine_embedding_loss(input1, input2, target, margin=0, size_average=None, reduce=None, reduction="mean"):
    """1 - cos(x1, x2) where y == 1, max(0, cos(x1, x2) - margin) where y == -1, with PyTorch's cosine
    sum(x1 x2) / sqrt((|x1|^2 + 1e-12)(|x2|^2 + 1e-12)) along the last dim of (N, D) or (D,) inputs."""
    where = "cosine_embedding_loss"
    reduction = _reduction(reduction, size_average, reduce, where)
    _float_input(input1, "input1", where), _float_input(input2, "input2", where)
    target = _target(target, input1, where)
    if target.ndim not in (0, 1):
        raise RuntimeError(f"{where}: 0D or 1D target tensor expected, multi-target not supported (got target of "
                           f"shape {tuple(target.shape)})")
    want = target.ndim + 1
    if input1.ndim != want or input2.ndim != want:
        raise RuntimeError(f"{where}: {target.ndim}D target tensor expects {want}D input tensors, but found inputs "
                           f"with sizes {tuple(input1.shape)} and {tuple(input2.shape)}.")
    _broadcastable(input1.shape, input2.shape, "input1", "input2", where)
    dim = target.ndim
    prod = (input1 * input2).sum(dim)
    mag = ((input1 * input1).sum(dim) + _COS_EPS) * ((input2 * input2).sum(dim) + _COS_EPS)
    cos = prod / mag.sqrt()
    _broadcastable(cos.shape, target.shape, "the inputs' batch", "target", where)
    loss = _tf.where(target == 1, 1.0 - cos, 0.0) + _tf.where(target == -1, (cos - margin).clamp(min=0.0), 0.0)
    return _reduce(loss, reduction)


def multilabel_soft_margin_loss(input, target, weight=None, size_average=None, reduce=None, reduction="mean"):
    """Mean over the classes (last dim) of the binary cross-entropy of sigmoid(x) against 0/1 targets."""
    where = "multilabel_soft_margin_loss"
    reduction = _reduction(reduction, size_average, reduce, where)
    target = _target(target, _float_input(input, "input", where), where)
    if input.ndim == 0:
        raise IndexError(f"{where}: expected an input of shape (C,) or (N, C) (classes in the last dim), got a 0-d "
                         f"tensor")
    _same_size(input, target, where)
    loss = -(target * logsigmoid(input) + (1.0 - target) * logsigmoid(-input))
    if weight is not None:
        weight = _target(weight, input, where)
        _broadcastable(loss.shape, weight.shape, "input", "weight", where)
        loss = loss * weight
    return _reduce(loss.sum(input.ndim - 1) / input.shape[-1], reduction)


@labelled("MultiMarginLossBackward0")
def multi_margin_loss(input, target, p=1, margin=1.0, weight=None, size_average=None, reduce=None,
                      reduction="mean"):
    """sum over classes j != y of max(0, margin - x[y] + x[j])^p / C (times weight[y]) for each sample, with class
    indices y; input (C,) or (N, C)."""
    where = "multi_margin_loss"
    reduction = _reduction(reduction, size_average, reduce, where)
    if p != 1 and p != 2:
        raise ValueError(f"{where}: only p == 1 and p == 2 supported (got p={p})")
    warr = None
    if weight is not None:
        warr = data(weight) if isinstance(weight, Tensor) else _outside(weight)
        if warr.ndim != 1:
            raise ValueError(f"{where}: weight must be one-dimensional (got shape {warr.shape})")
    x = _matrix(_float_input(input, "input", where), where)
    t = _index_target(target, where)
    n, c = x.shape
    if t.ndim > 1 or t.size != n:
        raise RuntimeError(f"{where}: target tensor should be 1-D with size equal to the number of input samples "
                           f"(batch size). Expected target size ({n},), but got {t.shape}. Input has shape "
                           f"{tuple(input.shape)}.")
    if warr is not None and warr.size != c:
        raise RuntimeError(f"{where}: inconsistent weight size, expected {c} but got {warr.shape}")
    index, others = host(_multi_margin_arrays, t, c, x.dtype, where)
    z = margin - x.gather(1, _const(index)) + x
    hinge = _tf.where(z > 0, z if p == 1 else z * z, 0.0) * _const(others)  # the target's own term left out
    if warr is not None:
        hinge = hinge * _const(host(_weight_of, warr, index, x.dtype))
    loss = hinge.sum(1) / c
    if reduction == "none":
        return loss.reshape(t.shape) if input.ndim < 2 else loss
    return _reduce(loss, reduction)


def _multi_margin_arrays(t, c, dtype, where):
    """(the target as an (N, 1) gather index, (N, C) 1 except 0 at each sample's target)."""
    t = t.reshape(-1).astype(np.int64)
    if t.size and (t.min() < 0 or t.max() >= c):
        raise RuntimeError(f"{where}: target out of range (got {t[(t < 0) | (t >= c)][0]}, expected class indices "
                           f"in [0, {c}))")
    others = np.ones((t.size, c), dtype)
    others[np.arange(t.size), t] = 0
    return t.reshape(-1, 1), others


def _weight_of(w, index, dtype):
    return w.astype(dtype)[index]


# ---------------- vmap: how the host computations above map over a leading batch dimension ----------------
@batching_rule(_multi_margin_arrays)
def _(args, batched):
    """Per-sample targets (B, N): merged into one list of targets and split again."""
    t, c, dtype, where = args
    size = t.shape[0]
    index, others = _multi_margin_arrays(t.reshape(-1), c, dtype, where)
    return index.reshape(size, -1, 1), others.reshape(size, -1, c)


@batching_rule(_weight_of)
def _(args, batched):
    """The class weight of each sample's targets: a shared weight (C,) or per-sample ones (B, C)."""
    w, index, dtype = args
    size = w.shape[0] if batched[0] else index.shape[0]
    index = index if batched[1] else np.broadcast_to(index, (size,) + index.shape)
    if not batched[0]:
        return w.astype(dtype)[index]
    return w.astype(dtype)[np.arange(size).reshape((size,) + (1,) * (index.ndim - 1)), index]


@labelled("MultilabelMarginLossBackward0")
def multilabel_margin_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    """For each sample, sum over its target classes j (the target's leading entries, up to the first -1) and its
    other classes i of max(0, 1 - (x[j] - x[i])), divided by C; input (C,) or (N, C), target the same shape."""
    where = "multilabel_margin_loss"
    reduction = _reduction(reduction, size_average, reduce, where)
    x = _matrix(_float_input(input, "input", where), where)
    t = _index_target(target, where)
    n, c = x.shape
    bad = (t.ndim > 1 or t.size != c) if input.ndim < 2 else t.shape != (n, c)
    if bad:
        raise RuntimeError(f"{where}: inconsistent target size: {t.shape} for input of size: {tuple(input.shape)} "
                           f"(expected the input's shape)")
    index, valid, others = host(_multilabel_arrays, t, n, c, x.dtype, where)
    picked = x.gather(1, _const(index))  # (N, K): the score of each target slot
    z = 1.0 - picked.unsqueeze(2) + x.unsqueeze(1)  # (N, K, C)
    hinge = _tf.where(z > 0, z, 0.0) * _const(valid) * _const(others)
    loss = hinge.sum((1, 2)) / c
    if reduction == "none":
        return loss.reshape(()) if input.ndim < 2 else loss
    return _reduce(loss, reduction)


def _multilabel_arrays(t, n, c, dtype, where):
    """(gather index (N, K), slot before the first -1 (N, K, 1), class not a target (N, 1, C)) as floats."""
    t = t.reshape(n, c)
    if t.size and (t.min() < -1 or t.max() >= c):
        raise RuntimeError(f"{where}: argument #2 'target' is out of range (expected class indices in [0, {c}) "
                           f"padded with -1, got values in [{t.min()}, {t.max()}])")
    valid = np.cumprod(t >= 0, axis=1).astype(bool)
    is_target = np.zeros(t.shape[:1] + (c,), bool)
    rows, _ = np.nonzero(valid)
    is_target[rows, t[valid]] = True
    return (np.where(valid, t, 0).astype(np.int64), valid.astype(dtype)[:, :, None],
            (~is_target).astype(dtype)[:, None, :])


def _triplet_checks(anchor, positive, negative, margin, where, default_distance=True):
    if margin <= 0:
        raise ValueError(f"{where}: margin must be greater than 0, got {margin}")
    for name, t in (("anchor", anchor), ("positive", positive), ("negative", negative)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{where}: expected a Tensor {name}, got {type(t).__name__}")
    if not anchor.ndim == positive.ndim == negative.ndim:
        raise RuntimeError(f"{where}: The anchor, positive, and negative tensors are expected to have the same "
                           f"number of dimensions, but got: anchor {anchor.ndim}D, positive {positive.ndim}D, and "
                           f"negative {negative.ndim}D inputs")
    if default_distance:  # (named here: pairwise_distance would only know x1 and x2)
        _broadcastable(anchor.shape, positive.shape, "anchor", "positive", where)
        _broadcastable(anchor.shape, negative.shape, "anchor", "negative", where)


def _triplet(dist, anchor, positive, negative, margin, swap, reduction):
    d_pos, d_neg = dist(anchor, positive), dist(anchor, negative)
    if swap:
        d_neg = d_neg.minimum(dist(positive, negative))
    return _reduce((margin + d_pos - d_neg).clamp(min=0.0), reduction)


def triplet_margin_loss(anchor, positive, negative, margin=1.0, p=2, eps=1e-6, swap=False, size_average=None,
                        reduce=None, reduction="mean"):
    """max(0, margin + d(a, p) - d(a, n)) with d the p-norm distance ||x1 - x2 + eps||_p over the last dim;
    swap uses min(d(a, n), d(p, n))."""
    where = "triplet_margin_loss"
    reduction = _reduction(reduction, size_average, reduce, where)
    _triplet_checks(anchor, positive, negative, margin, where)
    return _triplet(lambda a, b: pairwise_distance(a, b, p, eps), anchor, positive, negative, margin, swap,
                    reduction)


def triplet_margin_with_distance_loss(anchor, positive, negative, *, distance_function=None, margin=1.0, swap=False,
                                      reduction="mean"):
    """triplet_margin_loss with any distance_function(x1, x2) -> distances (default pairwise_distance)."""
    where = "triplet_margin_with_distance_loss"
    reduction = _reduction(reduction, None, None, where)
    _triplet_checks(anchor, positive, negative, margin, where, distance_function is None)
    dist = pairwise_distance if distance_function is None else distance_function
    return _triplet(dist, anchor, positive, negative, margin, swap, reduction)


# ---------------- modules ----------------
class SoftMarginLoss(_Loss):
    def forward(self, input, target):
        return soft_margin_loss(input, target, reduction=self.reduction)


class HingeEmbeddingLoss(_Loss):
    def __init__(self, margin=1.0, size_average=None, reduce=None, reduction="mean"):
        super().__init__(size_average, reduce, reduction)
        self.margin = margin

    def forward(self, input, target):
        return hinge_embedding_loss(input, target, margin=self.margin, reduction=self.reduction)


class MarginRankingLoss(_Loss):
    def __init__(self, margin=0.0, size_average=None, reduce=None, reduction="mean"):
        super().__init__(size_average, reduce, reduction)
        self.margin = margin

    def forward(self, input1, input2, target):
        return margin_ranking_loss(input1, input2, target, margin=self.margin, reduction=self.reduction)


class CosineEmbeddingLoss(_Loss):
    def __init__(self, margin=0.0, size_average=None, reduce=None, reduction="mean"):
        super().__init__(size_average, reduce, reduction)
        self.margin = margin

    def forward(self, input1, input2, target):
        return cosine_embedding_loss(input1, input2, target, margin=self.margin, reduction=self.reduction)


class MultiLabelSoftMarginLoss(_WeightedLoss):
    def forward(self, input, target):
        return multilabel_soft_margin_loss(input, target, weight=self.weight, reduction=self.reduction)


class MultiMarginLoss(_WeightedLoss):
    def __init__(self, p=1, margin=1.0, weight=None, size_average=None, reduce=None, reduction="mean"):
        if p != 1 and p != 2:
            raise ValueError(f"MultiMarginLoss: only p == 1 and p == 2 supported (got p={p})")
        super().__init__(weight, size_average, reduce, reduction)
        if self.weight is not None and self.weight.ndim != 1:
            raise ValueError(f"MultiMarginLoss: expected weight to be None or 1D tensor, got {self.weight.ndim}D "
                             f"instead")
        self.p, self.margin = p, margin

    def forward(self, input, target):
        return multi_margin_loss(input, target, p=self.p, margin=self.margin, weight=self.weight,
                                 reduction=self.reduction)


class MultiLabelMarginLoss(_Loss):
    def forward(self, input, target):
        return multilabel_margin_loss(input, target, reduction=self.reduction)


def _positive_margin(margin, name):
    if margin <= 0:
        raise ValueError(f"{name}: expected margin to be greater than 0, got {margin} instead")
    return margin


class TripletMarginLoss(_Loss):
    def __init__(self, margin=1.0, p=2.0, eps=1e-6, swap=False, size_average=None, reduce=None, reduction="mean"):
        super().__init__(size_average, reduce, reduction)
        self.margin, self.p, self.eps, self.swap = _positive_margin(margin, "TripletMarginLoss"), p, eps, swap

    def forward(self, anchor, positive, negative):
        return triplet_margin_loss(anchor, positive, negative, margin=self.margin, p=self.p, eps=self.eps,
                                   swap=self.swap, reduction=self.reduction)


class TripletMarginWithDistanceLoss(_Loss):
    def __init__(self, *, distance_function=None, margin=1.0, swap=False, reduction="mean"):
        super().__init__(reduction=reduction)
        self.margin = _positive_margin(margin, "TripletMarginWithDistanceLoss")
        self.distance_function = distance_function if distance_function is not None else pairwise_distance
        self.swap = swap

    def forward(self, anchor, positive, negative):
        return triplet_margin_with_distance_loss(anchor, positive, negative, distance_function=self.distance_function,
                                                 margin=self.margin, swap=self.swap, reduction=self.reduction)
