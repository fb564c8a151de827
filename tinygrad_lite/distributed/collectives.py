"""Collectives on tensors, in place on their NumPy buffers (no pickling): `all_reduce`, `broadcast`, `all_gather`,
`barrier`, with PyTorch's names and argument order. They complete before returning (`async_op=True` gets a handle
whose `wait()` returns at once); DistributedDataParallel overlaps its own reductions with backward.

Each collective first compares the tensors' shapes and dtypes across ranks (one small fixed-size Allgather of
int64 descriptors) and raises the same error on every rank when they differ: MPI itself would sum mismatched
buffers silently or wait forever. Every wait has the group's deadline (see `group.wait`).
"""
import enum
import zlib

import numpy as np

from ..autograd.grad_mode import state
from ..tensor import Tensor
from .group import current, wait

_MAX_DIMS = 12
_DESCRIPTOR = 3 + _MAX_DIMS  # ndim, dtype kind, itemsize, then the dimensions


class ReduceOp(enum.Enum):
    """How `all_reduce` combines the ranks' tensors; AVG is SUM divided by the world size (floating tensors)."""
    SUM = "sum"
    AVG = "avg"
    MAX = "max"
    MIN = "min"
    PRODUCT = "product"


class _Completed:
    """What `async_op=True` returns: the collectives here finish before returning, so the work is already done."""

    def wait(self, timeout=None):
        return True

    def is_completed(self):
        return True


def _done(async_op):
    return _Completed() if async_op else None


def _mpi_op(MPI, op, dtype):
    if dtype.kind == "b":  # MPI has no arithmetic on C_BOOL; PyTorch's bool SUM/MAX is any, PRODUCT/MIN is all
        return {ReduceOp.SUM: MPI.LOR, ReduceOp.MAX: MPI.LOR, ReduceOp.MIN: MPI.LAND, ReduceOp.PRODUCT: MPI.LAND}[op]
    return {ReduceOp.SUM: MPI.SUM, ReduceOp.AVG: MPI.SUM, ReduceOp.MAX: MPI.MAX, ReduceOp.MIN: MPI.MIN,
            ReduceOp.PRODUCT: MPI.PROD}[op]


def _not_recorded(opname):
    """Under tl.compile the collective runs, but a replay would not re-run it (it changes NumPy buffers through MPI,
    outside any record): the call runs eagerly, saying why."""
    cap = state.capture
    if cap is not None:
        cap.fail(f"tl.distributed.{opname} (an MPI collective on every rank) is not recorded by tl.compile; the "
                 f"call runs eagerly")


def _check_tensor(tensor, opname, what="tensor"):
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{opname}: {what} must be a tl.Tensor, got {type(tensor).__name__}")


def _describe(arr):
    """A fixed-size int64 summary of an array's shape and dtype (so one Allgather compares all ranks)."""
    d = np.zeros(_DESCRIPTOR, dtype=np.int64)
    d[0], d[1], d[2] = arr.ndim, ord(arr.dtype.kind), arr.dtype.itemsize
    # past _MAX_DIMS dimensions, the last slot holds the product of the remaining ones
    dims = arr.shape if arr.ndim <= _MAX_DIMS else \
        arr.shape[:_MAX_DIMS - 1] + (int(np.prod(arr.shape[_MAX_DIMS - 1:])),)
    d[3:3 + len(dims)] = dims
    return d


def _show(d):
    ndim = int(d[0])
    dims = tuple(int(x) for x in d[3:3 + min(ndim, _MAX_DIMS)])
    return f"{dims} {np.dtype(chr(d[1]) + str(d[2])).name}"


def _gather_ints(values, what):
    """Every rank's int64 vector `values` (same length on every rank), as a (world size, len) array."""
    g = current()
    mine = np.ascontiguousarray(values, dtype=np.int64)
    every = np.empty((g.size, mine.size), dtype=np.int64)
    wait([g.comm.Iallgather(mine, every)], what)
    return every


def check_same_layout(arr, opname):
    """Raise on every rank when the arrays' shapes or dtypes differ across ranks, naming each rank's."""
    if current().size == 1:
        return
    every = _gather_ints(_describe(arr), f"{opname} (comparing shapes)")
    if (every != every[0]).any():
        ranks = ", ".join(f"rank {r}: {_show(d)}" for r, d in enumerate(every))
        raise ValueError(f"{opname}: the tensors differ across ranks ({ranks}); every rank must pass a tensor of "
                         f"the same shape and dtype")


def _check_same_tensors(arrays, opname):
    """The list form of check_same_layout: one message holding the count and a checksum of all the layouts."""
    layout = np.concatenate([_describe(a) for a in arrays]) if arrays else np.zeros(0, np.int64)
    every = _gather_ints([len(arrays), zlib.crc32(layout.tobytes())], f"{opname} (comparing shapes)")
    if (every != every[0]).any():
        ranks = ", ".join(f"rank {r}: {n} tensors (layout checksum {c:#x})" for r, (n, c) in enumerate(every))
        raise ValueError(f"{opname}: the tensors differ across ranks in number, shape or dtype ({ranks}); every "
                         f"rank must pass the same tensors (the same model)")


def _work_buffer(tensor):
    """A contiguous, writable array MPI can fill: the tensor's own when possible, else a copy to write back."""
    arr = tensor._data
    if arr.flags.c_contiguous and arr.flags.writeable:
        return arr
    return np.ascontiguousarray(arr).copy()


def _write_back(tensor, buf):
    """Finish an in-place collective: copy back a work buffer if one was used, and count the change as in-place."""
    if buf is not tensor._data:
        if tensor._data.flags.writeable:
            tensor._data[...] = buf
        else:
            tensor._data = buf
    tensor._version += 1


def all_reduce(tensor, op=ReduceOp.SUM, group=None, async_op=False):
    """Combine `tensor` across ranks with `op`, in place on every rank."""
    _check_tensor(tensor, "all_reduce")
    _not_recorded("all_reduce")
    if not isinstance(op, ReduceOp):
        raise TypeError(f"all_reduce: op must be a tl.distributed.ReduceOp (SUM, AVG, MAX, MIN, PRODUCT), got {op!r}")
    if op is ReduceOp.AVG and tensor._data.dtype.kind not in "fc":
        raise TypeError(f"all_reduce: ReduceOp.AVG needs a floating tensor, got dtype {tensor._data.dtype}; use "
                        f"ReduceOp.SUM and divide")
    g = current()
    check_same_layout(tensor._data, "all_reduce")
    buf = _work_buffer(tensor)
    wait([g.comm.Iallreduce(g.mpi.IN_PLACE, buf, op=_mpi_op(g.mpi, op, buf.dtype))], "all_reduce")
    if op is ReduceOp.AVG:
        buf /= g.size
    _write_back(tensor, buf)
    return _done(async_op)


def broadcast(tensor, src, group=None, async_op=False):
    """Copy rank `src`'s `tensor` into `tensor` on every other rank, in place."""
    _check_tensor(tensor, "broadcast")
    _not_recorded("broadcast")
    g = current()
    _check_src(src, g.size)
    check_same_layout(tensor._data, "broadcast")
    buf = _work_buffer(tensor)
    wait([g.comm.Ibcast(buf, root=src)], "broadcast")
    _write_back(tensor, buf)
    return _done(async_op)


def _check_src(src, size):
    if not isinstance(src, (int, np.integer)) or isinstance(src, bool) or not 0 <= src < size:
        raise ValueError(f"broadcast: src must be a rank in [0, {size - 1}], got {src!r}")


def all_gather(tensor_list, tensor, group=None, async_op=False):
    """Fill `tensor_list[r]` with rank r's `tensor`, on every rank (the list holds world-size tensors shaped as
    `tensor`)."""
    _check_tensor(tensor, "all_gather")
    _not_recorded("all_gather")
    g = current()
    if not isinstance(tensor_list, (list, tuple)) or len(tensor_list) != g.size:
        got = f"{len(tensor_list)} tensors" if isinstance(tensor_list, (list, tuple)) else type(tensor_list).__name__
        raise ValueError(f"all_gather: tensor_list must hold world_size={g.size} tensors, got {got}")
    for i, t in enumerate(tensor_list):
        _check_tensor(t, "all_gather", f"tensor_list[{i}]")
        if t._data.shape != tensor._data.shape or t._data.dtype != tensor._data.dtype:
            raise ValueError(f"all_gather: tensor_list[{i}] is {tuple(t.shape)} {t._data.dtype} but tensor is "
                             f"{tuple(tensor.shape)} {tensor._data.dtype}; they must match")
    check_same_layout(tensor._data, "all_gather")
    out = np.empty((g.size,) + tensor._data.shape, dtype=tensor._data.dtype)
    wait([g.comm.Iallgather(np.ascontiguousarray(tensor._data), out)], "all_gather")
    for t, part in zip(tensor_list, out):
        _write_back(t, part)
    return _done(async_op)


def barrier(group=None, async_op=False):
    """Return once every rank has called it."""
    _not_recorded("barrier")
    g = current()
    wait([g.comm.Ibarrier()], "barrier")
    return _done(async_op)


def broadcast_tensors(tensors, src, opname):
    """Broadcast several tensors from `src` in place, one message per dtype (DistributedDataParallel's start and
    its buffers before each forward)."""
    g = current()
    if g.size == 1 or not tensors:
        return
    _check_same_tensors([t._data for t in tensors], opname)
    by_dtype = {}
    for t in tensors:
        by_dtype.setdefault(t._data.dtype, []).append(t)
    for dtype, same in by_dtype.items():
        flat = np.concatenate([t._data.ravel() for t in same]) if g.rank == src else \
            np.empty(sum(t._data.size for t in same), dtype=dtype)
        wait([g.comm.Ibcast(flat, root=src)], opname)
        if g.rank == src:
            continue
        start = 0
        for t in same:
            _write_back(t, flat[start:start + t._data.size].reshape(t._data.shape))
            start += t._data.size
