"""PyTorch's fixed-rank matrix products: `mm mv bmm dot outer/ger t addmm`, and `trace`, as functions and Tensor
methods.

Each is the general `matmul` (or a broadcast multiply, for `outer`) behind PyTorch's stricter checks: exact ranks,
equal dtypes (no promotion, except `outer`, which promotes as PyTorch's does) and matching sizes. No primitive is
added: gradients, higher order and every other reader of the tape come from `matmul`, `mul`, `where` and the
movement ops. Errors are RuntimeErrors (`registry.OpError`) naming the operation, the shapes and dtypes, and the
user's line; a non-Tensor argument is a TypeError; bool operands are rejected as PyTorch's CPU kernels reject them.
"""
import numbers

import numpy as np

from .autograd.recorder import labelled
from .ops import registry
from .tensor import Tensor, matmul
from . import functional as _functional  # noqa: F401  (where, and the shape methods, are attached first)

__all__ = ["mm", "mv", "bmm", "dot", "outer", "ger", "t", "trace", "addmm", "vector_norm"]


def _fail(message):
    raise registry.OpError(message + registry.user_site())


def _tensors(opname, *named):
    """Check that each (name, value) is a Tensor, with PyTorch's TypeError wording."""
    for pos, (name, value) in enumerate(named, 1):
        if not isinstance(value, Tensor):
            raise TypeError(f"{opname}(): argument '{name}' (position {pos}) must be Tensor, not "
                            f"{type(value).__name__}{registry.user_site()}")


def _shape(x):
    return tuple(x._data.shape)


def _same_dtype(opname, what, *tensors):
    dts = [x._data.dtype for x in tensors]
    if any(dt != dts[0] for dt in dts[1:]):
        got = " != ".join(map(str, dts)) if len(dts) == 2 else ", ".join(map(str, dts[:-1])) + f" and {dts[-1]}"
        _fail(f"{opname}: expected {what} to have the same dtype, but got {got} (shapes "
              f"{', '.join(str(_shape(x)) for x in tensors)}); convert one with .to(dtype) / .float() / .double()")


def _no_bool(opname, *tensors):
    if any(x._data.dtype.kind == "b" for x in tensors):
        raise NotImplementedError(f"{opname}: not implemented for bool tensors (shapes "
                                  f"{', '.join(str(_shape(x)) for x in tensors)}); convert with .int() or .float() "
                                  f"first{registry.user_site()}")


def _matrix(opname, name, x):
    if x._data.ndim != 2:
        _fail(f"{opname}: {name} must be a matrix (2-D), got a {x._data.ndim}-D tensor of shape {_shape(x)}")


def _check_mm(opname, mat1, mat2, names=("mat1", "mat2")):
    _matrix(opname, names[0], mat1)
    _matrix(opname, names[1], mat2)
    (n, k), (k2, m) = mat1._data.shape, mat2._data.shape
    if k != k2:
        _fail(f"{opname}: {names[0]} and {names[1]} shapes cannot be multiplied ({n}x{k} and {k2}x{m}): the "
              f"columns of the first ({k}) must equal the rows of the second ({k2})")
    _no_bool(opname, mat1, mat2)
    _same_dtype(opname, f"{names[0]} and {names[1]}", mat1, mat2)


def mm(input, mat2):
    """Matrix product of two 2-D tensors, (n, k) @ (k, m) -> (n, m); no broadcasting, no dtype promotion."""
    _tensors("mm", ("input", input), ("mat2", mat2))
    _check_mm("mm", input, mat2, ("input", "mat2"))
    return matmul(input, mat2)


def mv(input, vec):
    """Matrix-vector product, (n, m) @ (m,) -> (n,)."""
    _tensors("mv", ("input", input), ("vec", vec))
    if input._data.ndim != 2 or vec._data.ndim != 1:
        _fail(f"mv: expected a matrix (2-D) and a vector (1-D), got shapes {_shape(input)} and {_shape(vec)}")
    if input._data.shape[1] != vec._data.shape[0]:
        _fail(f"mv: size mismatch, the matrix of shape {_shape(input)} has {input._data.shape[1]} columns but the "
              f"vector has {vec._data.shape[0]} elements")
    _no_bool("mv", input, vec)
    _same_dtype("mv", "input and vec", input, vec)
    return matmul(input, vec)


@labelled("BmmBackward0")
def bmm(input, mat2):
    """Batched matrix product of 3-D tensors, (b, n, k) @ (b, k, m) -> (b, n, m); the batch sizes must be equal
    (no broadcasting)."""
    _tensors("bmm", ("input", input), ("mat2", mat2))
    for name, x in (("input", input), ("mat2", mat2)):
        if x._data.ndim != 3:
            _fail(f"bmm: {name} must be a 3-D tensor (a batch of matrices), got a {x._data.ndim}-D tensor of shape "
                  f"{_shape(x)}")
    (b, _, k), (b2, k2, _) = input._data.shape, mat2._data.shape
    if (b, k) != (b2, k2):
        _fail(f"bmm: expected mat2 of shape ({b}, {k}, m) to match input of shape {_shape(input)} (same batch size, "
              f"rows of mat2 = columns of input), but got mat2 of shape {_shape(mat2)}")
    _no_bool("bmm", input, mat2)
    _same_dtype("bmm", "input and mat2", input, mat2)
    return matmul(input, mat2)


def dot(input, tensor):
    """Inner product of two 1-D tensors of the same length: a 0-d tensor."""
    _tensors("dot", ("input", input), ("tensor", tensor))
    if input._data.ndim != 1 or tensor._data.ndim != 1:
        _fail(f"dot: 1D tensors expected, but got {input._data.ndim}D and {tensor._data.ndim}D tensors (shapes "
              f"{_shape(input)} and {_shape(tensor)})")
    if input._data.shape[0] != tensor._data.shape[0]:
        _fail(f"dot: inconsistent tensor size, expected both vectors to have the same number of elements, but got "
              f"{input._data.shape[0]} and {tensor._data.shape[0]}")
    _no_bool("dot", input, tensor)
    _same_dtype("dot", "both vectors", input, tensor)
    return matmul(input, tensor)


def outer(input, vec2):
    """Outer product of two 1-D tensors, (n,) x (m,) -> (n, m); dtypes promote, as PyTorch's."""
    _tensors("outer", ("input", input), ("vec2", vec2))
    for name, x in (("input", input), ("vec2", vec2)):
        if x._data.ndim != 1:
            _fail(f"outer: expected 1-D argument {name}, but got a {x._data.ndim}-D tensor of shape {_shape(x)}")
    return input.reshape(-1, 1) * vec2


def ger(input, vec2):
    """Alias of `outer` (deprecated in PyTorch)."""
    return outer(input, vec2)


@labelled("TBackward0")
def t(input):
    """Transpose of a tensor with at most 2 dims: a 2-D tensor's dims 0 and 1 swap; 0-D and 1-D come back as is."""
    _tensors("t", ("input", input))
    nd = input._data.ndim
    if nd > 2:
        _fail(f"t() expects a tensor with <= 2 dimensions, but input is {nd}D (shape {_shape(input)}); use "
              f".transpose(dim0, dim1), .mT or .permute(...)")
    return input.transpose(0, 1) if nd == 2 else input


@labelled("TraceBackward0")
def trace(input):
    """Sum of a 2-D tensor's main diagonal: every (m+1)-th of its flattened values (m columns), the first
    min(n, m) of them, summed (a strided slice: no new primitive)."""
    _tensors("trace", ("input", input))
    _matrix("trace", "input", input)
    n, m = input._data.shape
    return input.reshape(-1)[::m + 1][:min(n, m)].sum()


def _scalar(value, name, dtype):
    """beta/alpha as a Python number; integer tensors take integer factors (truncated, as PyTorch's cast)."""
    if isinstance(value, Tensor):
        if value._data.ndim != 0:
            raise TypeError(f"addmm: {name} must be a number or a 0-d Tensor, got a Tensor of shape "
                            f"{_shape(value)}{registry.user_site()}")
        value = value._data.item()
    if not isinstance(value, (numbers.Real, np.bool_)):
        raise TypeError(f"addmm: {name} must be a real number, got {type(value).__name__}{registry.user_site()}")
    if dtype.kind in "iu":
        return int(value)
    return int(value) if isinstance(value, (bool, np.bool_)) else value


def addmm(input, mat1, mat2, *, beta=1, alpha=1):
    """beta * input + alpha * (mat1 @ mat2), with `input` broadcast to (n, m). A term whose factor is 0 is ignored
    (NaN and Inf in it do not propagate, as in PyTorch's BLAS call) and gets a zero gradient, as PyTorch's."""
    _tensors("addmm", ("input", input), ("mat1", mat1), ("mat2", mat2))
    _check_mm("addmm", mat1, mat2)
    target = (mat1._data.shape[0], mat2._data.shape[1])
    ishape = input._data.shape
    if len(ishape) > 2 or any(s != 1 and s != tgt for s, tgt in zip(ishape[::-1], target[::-1])):
        _fail(f"addmm: input of shape {ishape} cannot be broadcast to the product's shape {target} (mat1 "
              f"{_shape(mat1)} @ mat2 {_shape(mat2)})")
    _no_bool("addmm", input)
    _same_dtype("addmm", "input, mat1 and mat2", input, mat1, mat2)
    dtype = input._data.dtype
    beta, alpha = _scalar(beta, "beta", dtype), _scalar(alpha, "alpha", dtype)
    out = None
    for term, factor in ((input, beta), (matmul(mat1, mat2), alpha)):
        if factor == 0:
            if not term.requires_grad:
                continue
            # where(False, term, 0): exact zeros, no NaN let through, and the zero gradient PyTorch gives
            term = _functional.where(Tensor._wrap(np.zeros((), dtype=np.bool_)), term, 0)
        elif factor != 1:
            term = term * factor
        out = term if out is None else out + term
    if out is None:
        return Tensor._wrap(np.zeros(target, dtype=dtype))
    return out if out._data.shape == target else out.expand(*target)


def _addmm_method(self, mat1, mat2, *, beta=1, alpha=1):
    return addmm(self, mat1, mat2, beta=beta, alpha=alpha)


for _name in ("mm", "mv", "bmm", "dot", "outer", "ger", "t", "trace"):
    setattr(Tensor, _name, globals()[_name])
Tensor.addmm = _addmm_method
# Tensor.T and Tensor.mT already exist (shape.py)


def vector_norm(x, ord=2, dim=None, keepdim=False, *, dtype=None, out=None):
    """torch.linalg.vector_norm: the ord-norm of x's elements over `dim` (all of them when None, whatever x's
    rank), as torch.norm with a number p: the same values and gradients (0 at a zero vector)."""
    if isinstance(ord, (str, bool)) or not isinstance(ord, numbers.Real):
        raise TypeError(f"linalg.vector_norm: ord must be a number (2, 1, inf, -inf, 0 or any other), got {ord!r}")
    from .predicates import norm  # (not at import: predicates is above the linear algebra)
    return norm(x, p=ord, dim=dim, keepdim=keepdim, out=out, dtype=dtype)
