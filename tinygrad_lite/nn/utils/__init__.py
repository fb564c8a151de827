"""`tl.nn.utils`, as `torch.nn.utils`: gradient clipping (`clip_grad_norm_`, `clip_grad_value_`, and the two halves
of the former, `get_total_norm` and `clip_grads_with_norm_`) and flattening parameters into one vector and back
(`parameters_to_vector`, `vector_to_parameters`).

The clipping functions run without recording (as PyTorch's, under no_grad) and change each `.grad` in place, so
an optimizer holding the parameters sees the clipped gradients. Parameters whose `.grad` is None are skipped."""
import math
import types
import warnings

import numpy as np

from ... import dtypes
from ...autograd.grad_mode import no_grad
from ...compile.hooks import host_check
from ...ops.registry import OpError
from ...shape import cat, stack
from ...tensor import Tensor

__all__ = ["clip_grad_norm_", "clip_grad_value_", "get_total_norm", "clip_grads_with_norm_", "parameters_to_vector",
           "vector_to_parameters", "rnn"]


def _tensor_list(parameters, where):
    if isinstance(parameters, Tensor):
        return [parameters]
    is_generator = isinstance(parameters, types.GeneratorType)
    try:
        parameters = list(parameters)
    except TypeError:
        raise TypeError(f"{where}: parameters must be a Tensor or an iterable of Tensors, got "
                        f"{type(parameters).__name__}") from None
    for p in parameters:
        if not isinstance(p, Tensor):
            raise TypeError(f"{where}: parameters must be Tensors, got an element of type {type(p).__name__}")
    if is_generator and not parameters and where == "clip_grad_norm_":
        warnings.warn("`parameters` is an empty generator, no gradient clipping will occur.", stacklevel=3)
    return parameters


def _vector_norm(x, p):
    """torch.linalg.vector_norm(x, p) over all elements (recorded ops; callers run it under no_grad)."""
    if p == math.inf:
        return x.abs().amax()
    if p == -math.inf:
        return x.abs().amin()
    if p == 0:
        return (x != 0).astype(x.dtype).sum()
    if p == 1:
        return x.abs().sum()
    if p == 2:
        return (x * x).sum().sqrt()
    return (x.abs() ** p).sum() ** (1.0 / p)


def get_total_norm(tensors, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    """The p-norm of the norms of `tensors` (a Tensor or an iterable): the norm of all their elements viewed as one
    vector, as a 0-d Tensor (float32 0.0 for no tensors). `foreach` is accepted and ignored (one implementation)."""
    tensors = _tensor_list(tensors, "get_total_norm")
    norm_type = float(norm_type)
    if not tensors:
        return Tensor(0.0)
    with no_grad():
        norms = [_vector_norm(t, norm_type) for t in tensors]
        dt = norms[0].dtype
        for n in norms[1:]:
            dt = dtypes.promote(dt, n.dtype)
        total = _vector_norm(stack([n.astype(dt) for n in norms]), norm_type)
    if error_if_nonfinite:
        host_check(_check_finite, total._data, norm_type)  # a replay checks each call's norm too
    return total


def _check_finite(total, norm_type):
    if not np.isfinite(total):
        raise RuntimeError(f"The total norm of order {norm_type} for gradients from `parameters` is non-finite, so "
                           f"it cannot be clipped. To disable this error and scale the gradients by the non-finite "
                           f"norm anyway, set `error_if_nonfinite=False`")


def clip_grads_with_norm_(parameters, max_norm, total_norm, foreach=None):
    """Scale every gradient in place by min(max_norm / (total_norm + 1e-6), 1), as PyTorch."""
    grads = [p.grad for p in _tensor_list(parameters, "clip_grads_with_norm_") if p.grad is not None]
    max_norm = float(max_norm)
    if not grads:
        return
    if not isinstance(total_norm, Tensor):
        total_norm = Tensor(total_norm)
    with no_grad(), np.errstate(invalid="ignore"):  # a non-finite norm scales by NaN or 0 silently, as PyTorch
        coef = (max_norm / (total_norm + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(coef.astype(g.dtype))  # PyTorch multiplies in the gradient's dtype (a 0-d operand never promotes)


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    """Clip the gradients' total `norm_type`-norm (all gradients viewed as one vector; 'inf' for the max-norm) to
    `max_norm`, in place. Returns the total norm before clipping, a 0-d Tensor. With `error_if_nonfinite=True` a
    NaN or infinite total norm raises RuntimeError; otherwise the gradients are scaled by it anyway (PyTorch)."""
    parameters = _tensor_list(parameters, "clip_grad_norm_")
    grads = [p.grad for p in parameters if p.grad is not None]
    total_norm = get_total_norm(grads, norm_type, error_if_nonfinite, foreach)
    clip_grads_with_norm_(parameters, max_norm, total_norm, foreach)
    return total_norm


def clip_grad_value_(parameters, clip_value, foreach=None):
    """Clamp every gradient in place to [-clip_value, clip_value]."""
    clip_value = float(clip_value)
    with no_grad():
        for p in _tensor_list(parameters, "clip_grad_value_"):
            if p.grad is not None:
                p.grad.clamp_(min=-clip_value, max=clip_value)


def parameters_to_vector(parameters):
    """One 1-D Tensor of every parameter's values, flattened and concatenated in order (differentiable)."""
    params = _tensor_list(parameters, "parameters_to_vector")
    if not params:
        raise OpError("parameters_to_vector: expected a non-empty list of Tensors")
    return cat([p.reshape(-1) for p in params])


def vector_to_parameters(vec, parameters):
    """Make each parameter's `.data` the next `numel` values of the 1-D `vec` (a view of `vec`, as PyTorch)."""
    if not isinstance(vec, Tensor):
        raise TypeError(f"expected torch.Tensor, but got: {type(vec).__module__}.{type(vec).__name__}")
    pointer = 0
    for param in _tensor_list(parameters, "vector_to_parameters"):
        n = param.numel()
        chunk = vec._data[pointer:pointer + n]
        if chunk.size != n:
            raise OpError(f"vector_to_parameters: shape {list(param.shape)} is invalid for input of size "
                          f"{chunk.size} (vec of shape {tuple(vec.shape)} ran out at element {pointer})")
        param.data = chunk.reshape(param.shape)
        pointer += n


from . import rnn  # noqa: E402  (torch.nn.utils.rnn is reachable after `import torch`, as PyTorch's)
