"""What memory an array of a capture is: its layout when it owns it, whether a view's memory is its operation's own,
and which known array a view's memory belongs to (capture.py's view tracking; the planner keeps a viewed array alive
as long as its views)."""
import numpy as np


def layout(out):
    """(shape, dtype, order) of an output that owns its memory, for buffer planning; None when neither C nor F."""
    flags = out.flags
    order = "C" if flags.c_contiguous else "F" if flags.f_contiguous else None
    return None if order is None else (out.shape, out.dtype, order)


def fresh(o, known, args):
    """An output that views all of an array made by its own operation and nowhere else (np.reshape's copy of a
    strided input is a view of that copy): its memory is the call's own, as a base-less result's is. An unknown
    base is not enough: an argument or a tensor from before the call may view memory the capture never saw
    (`p = q.reshape(6, 4)` made outside, `tl.tensor(batch.reshape(...))`), and a reshape of it views that memory
    too; so the base must be neither an input of the operation nor the base of one."""
    base = o.base
    if id(base) in known or base.base is not None or base.nbytes != o.nbytes or not o.flags.c_contiguous:
        return False
    for a in args:
        c = a.__class__
        if c is not np.ndarray:
            if c is tuple or c is list:  # (cat's arrays)
                if not fresh(o, known, a):
                    return False
                continue
            if not isinstance(a, tensor_class()):
                continue
            a = a._data
        if a is base or a.base is base:
            return False
    return True


def known_base(known, base):
    """The Ref under which `known` (id -> Ref) knows the first array in a view's chain of bases (as_strided, used by
    unfold's windows, has a DummyArray base whose `.base` is the array), or None."""
    while base is not None:
        r = known.get(id(base))
        if r is not None:
            return r
        base = getattr(base, "base", None)
    return None


_TENSOR = []


def tensor_class():
    """tinygrad_lite.tensor.Tensor (imported on first use: capture sits below tensor.py in the imports)."""
    if not _TENSOR:
        from ..tensor import Tensor
        _TENSOR.append(Tensor)
    return _TENSOR[0]
