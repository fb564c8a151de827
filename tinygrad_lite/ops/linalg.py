"""Matrix multiplication (2-D and batched; 1-D operands are handled by Tensor.matmul with unsqueeze/squeeze)."""
import numpy as np

from . import batching
from .registry import primitive
from .movement import permute


def _matmul_sample(gen):
    m, k, n = (gen.integers(1, 4, ()).item() for _ in range(3))
    ba, bb = gen.shapes(2, max_dims=2)
    return [gen.array(ba + (m, k), -2, 2), gen.array(bb + (k, n), -2, 2)], ()


@primitive("matmul", nin=2, sample=_matmul_sample, expects="(..., n, k) @ (..., k, m) with broadcastable batch dims",
           reads=("inputs",))
def matmul(a, b):
    return np.matmul(a, b)


@matmul.defvjp
def _(ctx, g):
    """ga = g b^T, gb = a^T g. An operand that is a transposed view (e.g. `x @ W.T`) gets its gradient computed
    transposed, (b g^T)^T or (g^T a)^T, so the gradient has the operand's memory layout (as PyTorch does): its
    transpose back to the parameter is then C-contiguous, which keeps optimizer updates on it fast."""
    a, b = ctx.saved
    ga = gb = None
    if a.requires_grad:
        ga = _swap_last(matmul(b, _swap_last(g))) if _transposed(a._data) else matmul(g, _swap_last(b))
    if b.requires_grad:
        gb = _swap_last(matmul(_swap_last(g), a)) if _transposed(b._data) else matmul(_swap_last(a), g)
    return ga, gb


def _transposed(arr):
    return arr.ndim == 2 and arr.flags.f_contiguous and not arr.flags.c_contiguous


def _swap_last(t):
    nd = t._data.ndim
    return permute(t, tuple(range(nd - 2)) + (nd - 1, nd - 2))


matmul.ufunc_into(np.matmul)


@matmul.defjvp
def _(primals, tangents, out, attrs):
    from .elementwise import tsum, tmap
    (a, b), (ta, tb) = primals, tangents
    return tsum(tmap(lambda t: matmul(t, b), ta), tmap(lambda t: matmul(a, t), tb))


matmul.defbatch(batching.elementwise(matmul))  # np.matmul broadcasts the leading dims: aligned ranks suffice
