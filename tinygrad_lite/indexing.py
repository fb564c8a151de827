"""Tensor methods that take an index or mask tensor — gather, index_select, index_add, masked_fill — composed from
getitem and the index primitives (shape.py has getitem itself and the shape methods)."""
import numpy as np

from .autograd import recorder as tape
from .autograd.recorder import labelled
from .compile.hooks import host, host_check
from .ops import index as ix, registry
from .ops.elementwise import where as mv_where
from .shape import _copied_index, _norm_index, getitem, reshape
from .tensor import Tensor, _dim, _operand

_apply = tape.apply


def gather(self, dim, index):
    """out[i][j] = self[index[i][j]][j] for dim=0 (torch.gather)."""
    d = _dim(dim, self._data.ndim, "gather")
    idx = index._data if isinstance(index, Tensor) else np.asarray(index)
    if self._data.ndim == 0 and idx.ndim <= 1 and idx.dtype.kind in "iu":  # a scalar: gather from its one value
        if idx.size and (idx.min() != 0 or idx.max() != 0):
            raise IndexError(f"gather: index {idx.tolist()} is out of bounds for a 0-d tensor (only 0 is valid)")
        return reshape(gather(reshape(self, 1), 0, idx.reshape(-1)), idx.shape)
    if idx.dtype.kind not in "iu" or idx.ndim != self._data.ndim:
        raise registry.OpError(f"gather: index must be an integer tensor with the same number of dims as the input "
                               f"({self._data.ndim}), got dtype {idx.dtype} and shape {idx.shape}")
    x = self
    if any(idx.shape[i] < x.shape[i] for i in range(x.ndim) if i != d):
        x = getitem(x, tuple(slice(0, idx.shape[i]) if i != d else slice(None) for i in range(x.ndim)))
    if idx.size and (idx.min() < 0 or idx.max() >= x.shape[d]):
        raise IndexError(f"gather: index values must be in [0, {x.shape[d]}) along dim {d} of shape "
                         f"{tuple(x.shape)}, got [{idx.min()}, {idx.max()}]")  # (the kernel's words: a replay's)
    # (a copy, as getitem's index: see _norm_index; of the tensor itself, so a compiled step reads a global one)
    return _apply(ix.gather, (x,), (d, host(_copied_index, index if isinstance(index, Tensor) else idx)))


def _index_vector(index, opname):
    """index_select's and index_add's index as a 1-D integer array."""
    idx = index._data if isinstance(index, Tensor) else np.asarray(index)
    if idx.ndim > 1 or idx.dtype.kind not in "iu":
        raise registry.OpError(f"{opname}: index must be a 1-D integer tensor, got shape {idx.shape}, dtype "
                               f"{idx.dtype}")
    return idx.reshape(-1)


def _checked_index(self, index, idx, n, d, opname):
    """The index to select with, its range checked (PyTorch rejects negative indices too) as a host check, so a
    compiled step checks each call's: a 1-D index tensor as itself and a list as it is (a compiled step reads the
    tensor at each call, and a list of Python's ints is a constant); other forms as the array."""
    src = index if (isinstance(index, Tensor) and index._data.ndim == 1) or isinstance(index, list) else idx
    host_check(_in_range, src, n, d, tuple(self.shape), opname)
    return src


def _in_range(idx, n, d, shape, opname):
    idx = np.asarray(idx._data if isinstance(idx, Tensor) else idx)
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise IndexError(f"{opname}: index values must be in [0, {n}) along dim {d}, got [{idx.min()}, "
                         f"{idx.max()}] (tensor of shape {shape}){registry.user_site()}")


@labelled("IndexSelectBackward0")
def index_select(self, dim, index):
    d = _dim(dim, self._data.ndim, "index_select")
    idx = _index_vector(index, "index_select")
    src = _checked_index(self, index, idx, self._data.shape[d] if self._data.ndim else 1, d, "index_select")
    if self._data.ndim == 0:
        if idx.size != 1:
            raise registry.OpError(f"index_select: a 0-d tensor takes exactly one index, got {idx.size}")
        return getitem(self, ())
    return getitem(self, (slice(None),) * d + (src,))


@labelled("MaskedFillBackward0")
def masked_fill(self, mask, value):
    m = mask._data if isinstance(mask, Tensor) else np.asarray(mask)
    if m.dtype != np.bool_:
        raise TypeError(f"masked_fill: mask must be a bool tensor, got dtype {m.dtype}")
    try:
        ok = np.broadcast_shapes(m.shape, self._data.shape) == self._data.shape
    except ValueError:
        ok = False
    if not ok:
        raise registry.OpError(f"masked_fill: mask of shape {m.shape} does not broadcast to the tensor's shape "
                               f"{tuple(self.shape)}")
    v = value if isinstance(value, Tensor) else _operand(value, self, "masked_fill")
    mask_t = mask if isinstance(mask, Tensor) else Tensor._wrap(m)
    return _apply(mv_where, (mask_t, v.astype(self._data.dtype), self))


@labelled("IndexAddBackward0")
def index_add(self, dim, index, source, *, alpha=1):
    """self with alpha * source's slices added at positions `index` along dim, repeats accumulating
    (torch.index_add): self + the scatter of source that is getitem's VJP."""
    d = _dim(dim, max(self._data.ndim, 1), "index_add")
    if not isinstance(source, Tensor):
        raise TypeError(f"index_add: source must be a Tensor, got {type(source).__name__}")
    idx = _index_vector(index, "index_add")
    shape = self._data.shape or (1,)
    want = shape[:d] + (idx.size,) + shape[d + 1:]
    if source._data.shape != want and not (source._data.size == idx.size == 1 and self._data.ndim <= 1):
        raise registry.OpError(f"index_add: source of shape {tuple(source.shape)} does not match the tensor of shape "
                               f"{tuple(self.shape)} with dim {d} indexed by {idx.size} indices: expected "
                               f"{want}{registry.user_site()}")
    if source._data.dtype != self._data.dtype:
        raise registry.OpError(f"index_add: self ({self._data.dtype}) and source ({source._data.dtype}) must have "
                               f"the same dtype")
    where = _norm_index((slice(None),) * d + (_checked_index(self, index, idx, shape[d], d, "index_add"),), shape)
    if alpha != 1:
        source = source * alpha
    src = reshape(source, want)
    added = _apply(ix.index_scatter, (src,), (shape, where))
    return self + reshape(added, self._data.shape)


for _name in ("gather", "index_select", "index_add", "masked_fill"):
    setattr(Tensor, _name, globals()[_name])
