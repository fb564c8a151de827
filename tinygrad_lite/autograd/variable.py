"""`Variable`: PyTorch's deprecated wrapper, kept so old tutorial code runs. `Variable(t, requires_grad=True)` returns
a Tensor (not a Variable) sharing `t`'s storage, a leaf without history; `isinstance(x, Variable)` is true of every
Tensor, as in PyTorch."""
import warnings

import numpy as np

__all__ = ["Variable"]


class _VariableMeta(type):
    def __instancecheck__(cls, other):
        from ..tensor import Tensor
        return isinstance(other, Tensor)


class Variable(metaclass=_VariableMeta):
    """Variable(data=None, requires_grad=False, volatile=False) -> Tensor (use Tensors directly in new code)."""

    def __new__(cls, data=None, requires_grad=False, volatile=False):
        from .. import dtypes
        from ..tensor import Tensor
        if volatile:
            warnings.warn("volatile was removed and now has no effect. Use `with tl.no_grad():` instead.",
                          UserWarning, stacklevel=2)
        if data is None:
            return Tensor._wrap(np.zeros(0, dtype=dtypes.default_float)).requires_grad_(requires_grad)
        if not isinstance(data, Tensor):
            raise TypeError(f"Variable data has to be a tensor, but got {type(data).__name__}")
        return Tensor._wrap(data._data).requires_grad_(requires_grad)
