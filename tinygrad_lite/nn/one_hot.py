"""F.one_hot, as PyTorch's: int64 (*, num_classes) with a 1 at each index; with num_classes=-1 the class count
comes from the values (a tl.compile replay then checks the output's shape), which vmap refuses."""
import numpy as np

from ..compile.hooks import batching_rule, data, host, host_shaped
from ..tensor import Tensor
from .loss import _outside

_const = Tensor._wrap  # around an array made by host()


def one_hot(tensor, num_classes=-1):
    """int64 (*, num_classes) with a 1 at each index (num_classes=-1: max index + 1)."""
    idx = data(tensor) if isinstance(tensor, Tensor) else _outside(tensor)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"one_hot is only applicable to index tensor of integer dtype, got {idx.dtype}")
    # num_classes=-1 reads the classes off the data: a replay checks the output shape
    return _const((host if num_classes != -1 else host_shaped)(_one_hot, idx, num_classes))


def _one_hot(idx, num_classes):
    if idx.size and idx.min() < 0:
        raise RuntimeError("one_hot: Class values must be non-negative.")
    if num_classes == -1:
        if not idx.size:
            raise RuntimeError("one_hot: Can not infer total number of classes from empty tensor.")
        num_classes = int(idx.max()) + 1
    if idx.size and idx.max() >= num_classes:
        raise RuntimeError(f"one_hot: Class values must be smaller than num_classes ({num_classes}), got "
                           f"{int(idx.max())}.")
    out = np.zeros(idx.shape + (num_classes,), dtype=np.int64)
    np.put_along_axis(out, idx[..., None].astype(np.int64), 1, axis=-1)
    return out


@batching_rule(_one_hot)
def _(args, batched):
    """vmap: each index on its own, so the whole batch at once; the class count must be given (inferred from the
    values it could differ between samples)."""
    idx, num_classes = args
    if num_classes == -1:
        raise RuntimeError("vmap: one_hot with num_classes=-1 takes the class count from each sample's values; pass "
                           "num_classes")
    return _one_hot(idx, num_classes)
