"""Tensor's conversions that make a new tensor (or return self when nothing changes): `astype`, `to` (dtype and
device), `clone`, `contiguous` / `is_contiguous`. `float()`, `double()`, `long()`, ... in tensor.py call astype.
Installed on Tensor when tensor.py loads."""
import numpy as np

from . import dtypes
from . import devices as _device
from .autograd import recorder as tape
from .compile.hooks import astype as astype_array, data as _data_of, host as _host
from .ops import elementwise as ew
from .tensor import Tensor

_apply = tape.apply


def astype(self, dtype):
    if dtype is None:
        raise TypeError("astype: dtype must be a dtype (e.g. tl.float32, np.int64 or 'float64'), got None")
    dt = dtypes.to_dtype(dtype, "astype")
    if dt == self._data.dtype:
        return self
    if dt.kind == "f" and self._data.dtype.kind == "f":
        return _apply(ew.cast, (self,), (dt,))
    return Tensor._wrap(_host(astype_array, _data_of(self), dt))


def to(self, *args, dtype=None, device=None, non_blocking=False, copy=False, memory_format=None):
    """`.to(dtype)`, `.to(device)`, `.to(device, dtype)`, `.to(other_tensor)`, as PyTorch; the only device is
    the CPU (another raises). Returns self when nothing changes, unless `copy=True`."""
    for a in args:
        if isinstance(a, Tensor):
            dtype = a._data.dtype
        elif _device.is_device_like(a) or isinstance(a, int) and not isinstance(a, bool):
            device = a
        elif a is not None:
            dtype = a
    _device.check(device, "Tensor.to")
    out = self if dtype is None else self.astype(dtype)
    return out.clone() if copy and out is self else out


def clone(self):
    if self.requires_grad or getattr(self, "_fw", None):  # on the tape, or carrying forward-mode tangents
        return tape.named(_apply(ew.cast, (self,), (self._data.dtype,)), "CloneBackward0")
    return Tensor._wrap(_host(np.copy, _data_of(self)))


def contiguous(self):
    """self when its memory is already C-contiguous, else a C-ordered copy (as PyTorch: an in-place change of
    the result never reaches the tensor it was made from)."""
    if self._data.flags.c_contiguous:
        return self
    out = self.reshape(-1).reshape(self._data.shape)  # a C-order flatten of a strided array copies
    return tape.named(out, "CloneBackward0", (self,))


def is_contiguous(self):
    return bool(self._data.flags.c_contiguous)


Tensor.astype, Tensor.to = astype, to
Tensor.clone, Tensor.contiguous, Tensor.is_contiguous = clone, contiguous, is_contiguous
