"""Work arrays a kernel needs only while it runs (a transposed copy, a mask, flat positions), kept per thread and
call site and reused from call to call, so a steady tl.compile replay — and a loop of eager steps — allocates no
intermediate array for them. Each is valid until the same call site asks for it again: never return one."""
import threading

import numpy as np

_KEEP_BYTES = 16 << 20   # larger work arrays are made each call (kept, they would pin memory after one big call)
_TOTAL_BYTES = 64 << 20  # per thread; the oldest are dropped first
_local = threading.local()


def scratch(site, shape, dtype):
    """An uninitialized array of `shape` and `dtype` for the call site `site` (a string naming the function and
    the role), this thread's own."""
    kept = getattr(_local, "arrays", None)
    if kept is None:
        kept = _local.arrays = {}
    key = (site, shape, np.dtype(dtype))
    arr = kept.pop(key, None)  # (re-inserted below: the dict's order is the order of last use)
    if arr is None:
        arr = np.empty(shape, dtype)
        if arr.nbytes > _KEEP_BYTES:
            return arr
        total = arr.nbytes + sum(a.nbytes for a in kept.values())
        while kept and total > _TOTAL_BYTES:
            total -= kept.pop(next(iter(kept))).nbytes
    kept[key] = arr
    return arr


def zeroed(site, shape, dtype):
    """`scratch` filled with zeros."""
    arr = scratch(site, shape, dtype)
    arr.fill(0)
    return arr
