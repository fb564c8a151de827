"""Matrix multiplication (2-D and batched; 1-D operands are handled by Tensor.matmul with unsqueeze/squeeze)."""
import numpy as np

from .registry import primitive
from .movement import permute


def _matmul_sample(gen):
    m, k, n = (gen.integers(1, 4, ()).item() for _ in range(3))
    ba, bb = gen.shapes(2, max_dims=2)
    return [gen.array(ba + (m, k), -2, 2), gen.array(bb + (k, n), -2, 2)], ()


@primitive("matmul", nin=2, sample=_matmul_sample, expects="(..., n, k) @ (..., k, m) with broadcastable batch dims")
def matmul(a, b):
    return np.matmul(a, b)


@matmul.defvjp
def _(ctx, g):
    a, b = ctx.saved
    return (matmul(g, _swap_last(b)) if a.requires_grad else None), (matmul(_swap_last(a), g) if b.requires_grad
                                                                      else None)


def _swap_last(t):
    nd = t.data.ndim
    return permute(t, tuple(range(nd - 2)) + (nd - 1, nd - 2))
