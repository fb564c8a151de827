"""Loss functions and modules, as PyTorch's, with reduction='mean'|'sum'|'none': here the helpers every loss
shares (reductions, targets, size checks, _Loss) and the classification losses (NLL, cross-entropy, BCE, BCE with
logits) with their vmap batching rules (one_hot is in one_hot.py); the regression losses (MSE, L1, smooth L1, Huber) are in
loss_regression.py, KL divergence in divergence.py.

Numerically stable forms: cross-entropy goes through log_softmax (log-sum-exp); BCE-with-logits uses
(1 - y) x + softplus(-x) with softplus(-x) = (|x| - x) / 2 + log1p(exp(-|x|)), whose derivative is exactly
-sigmoid(-x) at every x, 0 included (the max(x, 0) form would give the wrong subgradient there)."""
import functools
import warnings

import numpy as np

from .. import functional as _tf
from ..autograd.recorder import apply, call_arg, labelled
from ..compile.hooks import (astype, batching_rule, constant, data, elementwise, host, host_check,
                             negative, positive)
from ..ops.index import gather
from ..ops.registry import OpError
from ..tensor import Tensor
from .module import Module

_const = Tensor._wrap  # around an array made by host() or declared constant()
_REDUCTIONS = ("mean", "sum", "none")


def _reduction(reduction, size_average, reduce, where):
    if size_average is not None or reduce is not None:  # PyTorch's deprecated flags
        size_average = True if size_average is None else size_average
        reduce = True if reduce is None else reduce
        reduction = ("mean" if size_average else "sum") if reduce else "none"
        warnings.warn(f"size_average and reduce args will be deprecated, please use reduction='{reduction}' "
                      f"instead.", stacklevel=3)
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{where}: {reduction} is not a valid value for reduction (expected 'mean', 'sum' or "
                         f"'none')")
    return reduction


def _reduce(loss, reduction):
    if reduction == "mean":
        return loss.mean()
    return loss.sum() if reduction == "sum" else loss


def _target(target, input, where):
    """The target as a Tensor of the input's floating dtype (a constant target is simply converted)."""
    if not isinstance(target, Tensor):
        target = _const(_outside(target, input.dtype))
    if target.dtype != input.dtype and not target.requires_grad:
        target = _const(host(astype, data(target), input.dtype))
    return target


def _outside(value, dtype=None):
    """A non-Tensor argument as an array: Python numbers and lists are constants; a NumPy array stays what it is
    (data from outside the library: tl.compile refuses to freeze it unless it was passed as an argument)."""
    if isinstance(value, np.ndarray):
        return value if dtype is None or value.dtype == dtype else value.astype(dtype)
    return constant(np.asarray(value, dtype=dtype))


def _same_size(input, target, where, names=("input", "target")):
    """PyTorch's warning for different shapes (they broadcast), and a clear error if they do not broadcast; `names`
    are the two tensors' names in both."""
    if tuple(target.shape) != tuple(input.shape):
        warnings.warn(f"{where}: Using a {names[1]} size ({tuple(target.shape)}) that is different to the {names[0]} "
                      f"size ({tuple(input.shape)}). This will likely lead to incorrect results due to broadcasting. "
                      f"Please ensure they have the same size.", stacklevel=3)
        _broadcastable(input.shape, target.shape, names[0], names[1], where)


def _broadcastable(a, b, name_a, name_b, where):
    """Raise naming the loss, both shapes and the first clashing dim (PyTorch's wording) unless a and b
    broadcast."""
    for i in range(1, min(len(a), len(b)) + 1):
        if a[-i] != b[-i] and a[-i] != 1 and b[-i] != 1:
            raise OpError(f"{where}: The size of {name_a} ({a[-i]}) must match the size of {name_b} ({b[-i]}) at "
                          f"non-singleton dimension {max(len(a), len(b)) - i} ({name_a} shape {tuple(a)}, "
                          f"{name_b} shape {tuple(b)})")


def _class_targets(input, target, ignore_index, where):
    """Validate class-index targets for an (N, C, d1, ...) input (their values: in _nll_arrays); returns the target
    array."""
    t = data(target) if isinstance(target, Tensor) else _outside(target)  # (a target made before the call: read
    # from the tensor by a replay, not frozen)
    if t.dtype.kind not in "iu":
        raise TypeError(f"{where}: expected class-index targets of an integer dtype (or probabilities of the "
                        f"input's shape), got dtype {t.dtype} and shape {t.shape}")
    n = input.shape[0]
    want = (n,) + tuple(input.shape[2:])
    if t.shape != want:
        raise OpError(f"{where}: expected target of shape {want} for input of shape {tuple(input.shape)}, got "
                      f"{t.shape}")
    return t


def _outside_classes(t, c):
    """Whether any target is outside [0, c) (as unsigned numbers negatives are huge: one comparison)."""
    return t.size > 0 and bool(np.maximum.reduce(t.astype(np.int64, copy=False).view(np.uint64), axis=None) >= c)


def _check_classes(t, c, ignore_index, where):
    if not _outside_classes(t, c):
        return
    bad = (t != ignore_index) & ((t < 0) | (t >= c))
    if bad.any():
        raise IndexError(f"{where}: target {t[bad].flat[0]} is out of bounds for {c} classes (expected class "
                         f"indices in [0, {c}) or ignore_index={ignore_index})")


def _unbatched(input, target, where):
    if input.ndim == 0:
        raise OpError(f"{where}: expected an input of shape (C,), (N, C) or (N, C, d1, ...), got a 0-d tensor")
    if input.ndim == 1:  # (C,) with a scalar target
        tgt = target if isinstance(target, Tensor) else _const(_outside(target))
        return input.unsqueeze(0), (tgt.unsqueeze(0) if tgt.dtype.kind == "f" else tgt.reshape(1)), True
    return input, target, False


def _nll(input, target, weight, ignore_index, reduction, where):
    t = _class_targets(input, target, ignore_index, where)
    warr = None if weight is None else _weight_array(weight, input.shape[1], input.dtype, where)
    index, neg_w, w, valid, denom, nan = host(_nll_arrays, t, warr, ignore_index, input.dtype, input.shape[1], where)
    # (the gather primitive itself: the index is the host computation's own array, in range by _nll_arrays' check,
    # so Tensor.gather's range test and private copy would be a second test and a copy per call)
    picked = apply(gather, (input,), (1, index)).squeeze(1)
    loss = picked * _const(neg_w)
    if reduction == "sum":
        loss = loss.sum()
    elif reduction == "mean":  # the total weight and the NaN of an all-ignored batch come with the arrays
        loss = loss.sum() / _const(denom) + _const(nan)
    return loss, _const(w), _const(valid)


def _nll_arrays(t, weight, ignore_index, dtype, c, where):
    """(gather index, -w, w, valid as dtype, the total weight or 1 when it is 0, NaN when it is 0 or else 0): the
    weight of each target, 0 for ignored ones; raises for a target that is neither a class nor ignore_index (one
    host computation: a replay checks each call's targets here)."""
    index_shape = t.shape[:1] + (1,) + t.shape[1:]
    if weight is None and not 0 <= ignore_index < c and not _outside_classes(t, c):
        # the usual case, one test: every target is a class, so none is ignore_index; all count with weight 1
        return (t.reshape(index_shape).copy(),) + _unweighted(t.shape, dtype)
    _check_classes(t, c, ignore_index, where)
    valid = t != ignore_index
    safe = np.where(valid, t, 0)
    w = valid.astype(dtype) if weight is None else np.where(valid, weight[safe], 0).astype(dtype)
    return (safe.reshape(index_shape), -w, w, valid.astype(dtype)) + _safe_denominator(w.sum())[1:]


@functools.lru_cache(maxsize=64)
def _unweighted(shape, dtype):
    """(-w, w, valid, total weight, NaN term) when every target counts with weight 1: fixed by the shape, so made
    once (read-only: the loss only reads them)."""
    ones = np.ones(shape, dtype)
    arrays = (np.full(shape, -1, dtype), ones, ones.copy()) + _safe_denominator(ones.sum())[1:]
    for a in arrays:
        a.flags.writeable = False
    return arrays


def _mean_by(total, denom):
    """total / denom; with denom 0 (every target ignored) NaN, as PyTorch, but with a zero gradient. `denom` is
    a number fixed by shapes, or a 0-d Tensor of the same dtype computed from the targets (no value is baked)."""
    if not isinstance(denom, Tensor):
        if denom == 0:
            return total * 0.0 + float("nan")
        return total / float(denom)
    none, safe, nan = host(_safe_denominator, denom._data)
    return total / _const(safe) + _const(nan)


def _safe_denominator(d):
    """(d == 0, d or 1, NaN or 0): the mean over no targets is NaN, with a zero gradient (x / 1 + NaN)."""
    d = np.asarray(d)
    none = d == 0
    if not none.any():  # the usual case, without the selections
        return none, d.copy(), np.zeros(d.shape, d.dtype)
    return none, np.where(none, np.ones((), d.dtype), d), np.where(none, np.array(np.nan, d.dtype), 0).astype(d.dtype)


def _weight_array(weight, c, dtype, where):
    w = data(weight) if isinstance(weight, Tensor) else _outside(weight)
    if w.shape != (c,):
        raise OpError(f"{where}: weight must have shape ({c},) (one value per class), got {w.shape}")
    return w if w.dtype == dtype else host(astype, w, dtype)


@labelled("NllLossBackward0")
def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean"):
    """Negative log-likelihood of log-probabilities `input` (N, C, ...) at class indices `target` (N, ...);
    'mean' divides by the total weight of the non-ignored targets."""
    reduction = _reduction(reduction, size_average, reduce, "nll_loss")
    input, target, squeeze = _unbatched(input, target, "nll_loss")
    loss, _, _ = _nll(input, target, weight, ignore_index, reduction, "nll_loss")
    return loss.squeeze(0) if squeeze and reduction == "none" else loss


def _cross_entropy_node(args, kwargs):
    """PyTorch's node: NllLoss for class-index targets without label smoothing (the others end in other ops)."""
    target = call_arg(args, kwargs, 1, "target")
    if call_arg(args, kwargs, 7, "label_smoothing") or getattr(target, "dtype", np.dtype(np.int64)).kind == "f":
        return None
    return "NllLossBackward0"


@labelled(_cross_entropy_node)
def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean",
                  label_smoothing=0.0):
    """log_softmax over dim 1 followed by the NLL of class indices, or by -sum(p log q) for probability targets;
    label_smoothing mixes the targets with the uniform distribution, as PyTorch."""
    where = "cross_entropy"
    reduction = _reduction(reduction, size_average, reduce, where)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{where}: label_smoothing must be between 0.0 and 1.0, got {label_smoothing}")
    if not isinstance(target, Tensor):
        target = _const(_outside(target))
    input, target, squeeze = _unbatched(input, target, where)
    c = input.shape[1]
    logp = _tf.log_softmax(input, 1)
    tshape = (c,) + (1,) * (input.ndim - 2)  # a per-class vector broadcast along dim 1
    if isinstance(target, Tensor) and target.dtype.kind == "f":
        if tuple(target.shape) != tuple(input.shape):
            raise OpError(f"{where}: probability targets must have the input's shape {tuple(input.shape)}, got "
                          f"{tuple(target.shape)}")
        target = _target(target, input, where)
        if label_smoothing > 0:
            target = target * (1.0 - label_smoothing) + label_smoothing / c
        prod = logp * target
        if weight is not None:
            prod = prod * _const(_weight_array(weight, c, input.dtype, where)).reshape(tshape)
        loss = -prod.sum(1)
        if reduction == "mean":
            loss = _mean_by(loss.sum(), input._data.size // c if c else 0)
        elif reduction == "sum":
            loss = loss.sum()
        return loss.squeeze(0) if squeeze and reduction == "none" else loss
    nll, w, valid = _nll(logp, target, weight, ignore_index, reduction, where)
    if label_smoothing > 0:
        if weight is None:
            smooth = -logp.sum(1)
        else:
            smooth = -(logp * _const(_weight_array(weight, c, input.dtype, where)).reshape(tshape)).sum(1)
        smooth = smooth * valid
        if reduction == "mean":
            smooth = _mean_by(smooth.sum(), w.sum() if weight is not None else valid.sum())
        elif reduction == "sum":
            smooth = smooth.sum()
        nll = nll * (1.0 - label_smoothing) + smooth * (label_smoothing / c)
    return nll.squeeze(0) if squeeze and reduction == "none" else nll


def _clamped_log(x):
    """log(x) clamped below at -100, as PyTorch's BCE; finite (zero) gradient where x <= exp(-100)."""
    mask = _const(host(positive, data(x)))  # no branch on the values: where x > exp(-100) this is exactly log(x)
    return _tf.where(mask, _tf.where(mask, x, 1.0).log(), -100.0).clamp(min=-100.0)


@labelled("BinaryCrossEntropyBackward0")
def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None, reduction="mean"):
    """-w (y log x + (1 - y) log(1 - x)) with both logs clamped at -100, as PyTorch."""
    where = "binary_cross_entropy"
    reduction = _reduction(reduction, size_average, reduce, where)
    target = _target(target, input, where)
    if tuple(target.shape) != tuple(input.shape):
        raise OpError(f"{where}: Using a target size ({tuple(target.shape)}) that is different to the input size "
                      f"({tuple(input.shape)}) is deprecated. Please ensure they have the same size.")
    host_check(_check_probabilities, data(input), where)
    host_check(_check_probabilities, data(target), where, "target")
    # PyTorch's backward is (x - y) / max(x (1 - x), 1e-12), not the slope of the clamped logs (0 at x = 0 or 1):
    # where x (1 - x) < 1e-12 the input enters only through a zero-valued term with that slope
    edge = _const(host(_near_bounds, data(input)))
    x0 = input.detach()
    kept = _tf.where(edge, x0, input)
    loss = -(target * _clamped_log(kept) + (1.0 - target) * _clamped_log(1.0 - kept))
    loss = loss + _tf.where(edge, (input - x0) * ((x0 - target) / _BCE_EPS), 0.0)
    if weight is not None:
        weight = _target(weight, input, where)
        _broadcastable(input.shape, weight.shape, "input", "weight", where)
        loss = loss * weight
    return _reduce(loss, reduction)


def _check_probabilities(d, where, what="input"):
    if d.size and not ((d >= 0) & (d <= 1)).all():
        hint = "; use binary_cross_entropy_with_logits for logits" if what == "input" else ""
        raise OpError(f"{where}: all elements of {what} should be between 0 and 1 (got values in "
                      f"[{np.nanmin(d)}, {np.nanmax(d)}]){hint}")


_BCE_EPS = float(np.float32(1e-12))  # PyTorch's floor on x (1 - x) in BCE's backward (a C float)


@elementwise
def _near_bounds(x):
    return x * (1 - x) < _BCE_EPS


@labelled("BinaryCrossEntropyWithLogitsBackward0")
def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None, reduction="mean",
                                     pos_weight=None):
    """BCE of sigmoid(x) computed stably from the logits x; pos_weight scales the positive term."""
    where = "binary_cross_entropy_with_logits"
    reduction = _reduction(reduction, size_average, reduce, where)
    target = _target(target, input, where)
    if tuple(target.shape) != tuple(input.shape):
        raise OpError(f"{where}: Target size ({tuple(target.shape)}) must be the same as input size "
                      f"({tuple(input.shape)})")
    softplus_neg = _softplus(-input)
    if pos_weight is None:
        loss = (1.0 - target) * input + softplus_neg
    else:
        pos_weight = _target(pos_weight, input, where)
        _broadcastable(input.shape, pos_weight.shape, "input", "pos_weight", where)
        log_weight = (pos_weight - 1.0) * target + 1.0
        loss = (1.0 - target) * input + log_weight * softplus_neg
    if weight is not None:
        weight = _target(weight, input, where)
        _broadcastable(input.shape, weight.shape, "input", "weight", where)
        loss = loss * weight
    return _reduce(loss, reduction)


def _softplus(x):
    """log(1 + exp(x)), stable and smooth at every x, 0 included (an |x| form has the right first derivative at 0
    but loses the second: BCE-with-logits' Hessian there must be 1/4). Each branch only ever sees inputs of its
    own sign, so the unused branch never overflows into a NaN gradient."""
    neg = _const(host(negative, data(x)))
    zero = _const(constant(np.zeros((), x.dtype)))
    x_neg, x_pos = _tf.where(neg, x, zero), _tf.where(neg, zero, x)
    return _tf.where(neg, x_neg.exp().log1p(), x_pos + (-x_pos).exp().log1p())


# ---------------- modules ----------------
class _Loss(Module):
    def __init__(self, size_average=None, reduce=None, reduction="mean"):
        super().__init__()
        self.reduction = _reduction(reduction, size_average, reduce, type(self).__name__)


class _WeightedLoss(_Loss):
    def __init__(self, weight=None, size_average=None, reduce=None, reduction="mean"):
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", _buffer(weight))


def _buffer(value):
    return value if value is None or isinstance(value, Tensor) else _const(_outside(value))


class NLLLoss(_WeightedLoss):
    def __init__(self, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean"):
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = ignore_index

    def forward(self, input, target):
        return nll_loss(input, target, self.weight, ignore_index=self.ignore_index, reduction=self.reduction)


class CrossEntropyLoss(_WeightedLoss):
    def __init__(self, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean",
                 label_smoothing=0.0):
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index, self.label_smoothing = ignore_index, label_smoothing

    def forward(self, input, target):
        return cross_entropy(input, target, self.weight, ignore_index=self.ignore_index, reduction=self.reduction,
                             label_smoothing=self.label_smoothing)


class BCELoss(_WeightedLoss):
    def forward(self, input, target):
        return binary_cross_entropy(input, target, self.weight, reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    def __init__(self, weight=None, size_average=None, reduce=None, reduction="mean", pos_weight=None):
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", _buffer(weight))
        self.register_buffer("pos_weight", _buffer(pos_weight))

    def forward(self, input, target):
        return binary_cross_entropy_with_logits(input, target, self.weight, reduction=self.reduction,
                                                pos_weight=self.pos_weight)


# ---------------- vmap: how the host computations above map over a leading batch dimension ----------------
@batching_rule(_nll_arrays)
def _(args, batched):
    """Per-sample targets (B, N, ...): merged into N and split again (the gather index gets its class axis after
    N, not after the batch)."""
    t, weight, ignore_index, dtype, c, where = args
    bw = weight is not None and batched[1]  # per-sample class weights (B, C): each sample's row is its own
    size = t.shape[0] if batched[0] else weight.shape[0]
    t = t if batched[0] else np.broadcast_to(t, (size,) + t.shape)
    index, neg_w, w, valid, _, _ = _nll_arrays(t.reshape((-1,) + t.shape[2:]), None if bw else weight, ignore_index,
                                               dtype, c, where)
    if bw:  # (the rule took the weight as shared: a (B, C) weight indexed by the targets crashed)
        safe = index.reshape(t.shape)  # (the class of each target, 0 where ignored)
        rows = np.arange(size).reshape((size,) + (1,) * (t.ndim - 1))
        w = np.where(valid.reshape(t.shape) != 0, weight[rows, safe], 0).astype(dtype)
        neg_w = -w
    flat = w.reshape(size, -1)  # each sample's own total weight
    return ((index.reshape((size, -1) + index.shape[1:]),) + tuple(a.reshape(t.shape) for a in (neg_w, w, valid)) +
            _safe_denominator(flat.sum(axis=1))[1:])


elementwise(_safe_denominator)
