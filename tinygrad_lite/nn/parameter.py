"""Parameter: the Tensor subclass that Modules register as trainable state."""
import numpy as np

from .. import dtypes
from ..tensor import Tensor, _as_array


class Parameter(Tensor):
    """A Tensor that a Module registers as a parameter: a leaf that requires grad by default.

    NumPy arrays keep their dtype (float64 stays float64); Python numbers and lists become float32. A Tensor's
    data is shared, as `torch.nn.Parameter(t)` shares storage."""
    __slots__ = ()

    def __init__(self, data=None, requires_grad=True):
        if data is None:
            arr = np.empty((0,), dtype=dtypes.default_float)
        elif isinstance(data, Tensor):
            arr = data._data
        else:
            arr = _as_array(data, None, "Parameter")
        self._adopt(arr, requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + Tensor.__repr__(self)

    def __reduce_ex__(self, proto):
        return Parameter, (self._data, self.requires_grad)
