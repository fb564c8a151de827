"""Fuzzing of indexing: getitem (ints, slices, None, Ellipsis, index arrays and masks), gather, index_select and
masked_fill (see tests/_fuzz_common.py for the oracle).
"""
import numpy as np
from hypothesis import assume, given, strategies as st
from hypothesis.extra import numpy as hnp

import tinygrad_lite as tl

from _fuzz_common import _report_case_count  # noqa: F401 - autouse: reports this part's cases
from _fuzz_common import DTYPES, F32, F64, examples, fuzz, shapes, elements, arrays, run, backward_shapes, norm_dims


# ---------------------------------------------------------------- indexing
@st.composite
def index_case(draw):
    arr = draw(arrays(dtypes=[np.dtype("int32"), F32, F64], shape=hnp.array_shapes(min_dims=1, max_dims=3,
                                                                                    min_side=0, max_side=4)))
    items, used_ellipsis = [], False
    for axis in range(draw(st.integers(0, arr.ndim + 1))):
        size = arr.shape[axis] if axis < arr.ndim else 1
        kind = draw(st.sampled_from(["int", "slice", "slice", "none", "ellipsis", "array", "tensor", "mask"]))
        if kind == "int":
            items.append(draw(st.integers(-size - 1, size)))
        elif kind == "slice":
            b = st.none() | st.integers(-size - 2, size + 2)
            items.append(slice(draw(b), draw(b), draw(st.none() | st.sampled_from([-2, -1, 1, 2, 3]))))
        elif kind == "none":
            items.append(None)
        elif kind == "ellipsis" and not used_ellipsis:
            used_ellipsis = True
            items.append(Ellipsis)
        elif kind in ("array", "tensor"):
            idx = draw(hnp.arrays(np.int64, draw(st.integers(0, 3)), elements=st.integers(-size - 1, size)))
            items.append(idx if kind == "array" else tl.tensor(idx))
        elif kind == "mask":
            n = size if draw(st.integers(0, 4)) else size + 1
            items.append(draw(hnp.arrays(np.bool_, n)))
    return arr, (items[0] if len(items) == 1 and draw(st.booleans()) else tuple(items))


@examples(400)
@given(case=index_case())
def test_getitem(case):
    arr, idx = case
    np_idx = tuple(i.numpy() if isinstance(i, tl.Tensor) else i for i in idx) if isinstance(idx, tuple) else (
        idx.numpy() if isinstance(idx, tl.Tensor) else idx)
    x = tl.tensor(arr)
    got = run("getitem", lambda: x[idx], lambda: np.asarray(arr[np_idx]), dtype=arr.dtype)
    if got is not None and arr.dtype == F64:
        backward_shapes(lambda t: t[idx], arr)


@st.composite
def gather_case(draw):
    arr = draw(arrays(dtypes=[np.dtype("int64"), F32, F64], special=False,
                      shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)))
    n = arr.ndim
    dim = draw(st.integers(-n - 1, n))
    d = dim % n if -n <= dim < n else 0
    ishape = tuple(draw(st.integers(0, s + (1 if i == d else 0))) for i, s in enumerate(arr.shape))
    if draw(st.integers(0, 5)) == 0:
        ishape = ishape[1:]  # wrong rank
    hi = arr.shape[d] - (0 if draw(st.integers(0, 3)) == 0 else 1)
    index = draw(hnp.arrays(np.int64, ishape, elements=st.integers(0, max(hi, 0))))
    return arr, dim, index


@fuzz
@given(case=gather_case(), as_tensor=st.booleans())
def test_gather(case, as_tensor):
    arr, dim, index = case

    def ref():
        d = norm_dims(dim, arr.ndim, single=True)
        if index.ndim != arr.ndim or any(index.shape[i] > arr.shape[i] for i in range(arr.ndim) if i != d):
            raise ValueError("index shape")
        if index.size and index.max() >= arr.shape[d]:
            raise IndexError("out of range")
        return np.take_along_axis(arr[tuple(slice(0, s) for s in index.shape[:d]) + (slice(None),) + tuple(
            slice(0, s) for s in index.shape[d + 1:])], index, d)
    x = tl.tensor(arr)
    got = run("gather", lambda: x.gather(dim, tl.tensor(index) if as_tensor else index), ref, dtype=arr.dtype)
    if got is not None and arr.dtype == F64:
        backward_shapes(lambda t: t.gather(dim, index), arr)


@fuzz
@given(arr=arrays(dtypes=[np.dtype("int64"), F32, F64], special=False,
                  shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=4)), data=st.data())
def test_index_select(arr, data):
    n = arr.ndim
    dim = data.draw(st.integers(-n - 1, n))
    size = arr.shape[dim % n] if -n <= dim < n else 1
    index = data.draw(hnp.arrays(np.int64, data.draw(st.integers(0, 4)), elements=st.integers(-1, size)))

    def ref():
        d = norm_dims(dim, n, single=True)
        if index.size and index.min() < 0:
            raise IndexError("PyTorch rejects negative indices")
        return np.take(arr, index, axis=d, mode="raise")
    x = tl.tensor(arr)
    got = run("index_select", lambda: x.index_select(dim, tl.tensor(index)), ref, dtype=arr.dtype)
    if got is not None and arr.dtype == F64:
        backward_shapes(lambda t: t.index_select(dim, tl.tensor(index)), arr)


@fuzz
@given(ab=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, min_side=0, max_side=3),
       dt=st.sampled_from(DTYPES), value=st.sampled_from([0, 1.5, -np.inf, np.nan, True]), data=st.data())
def test_masked_fill(ab, dt, value, data):
    mshape, xshape = ab.input_shapes
    if data.draw(st.integers(0, 4)) == 0:
        mshape = data.draw(shapes)  # often not broadcastable to the tensor's shape
    arr = data.draw(hnp.arrays(dt, xshape, elements=elements(dt, -5, 5)))
    mask = data.draw(hnp.arrays(np.bool_, mshape))

    def ref():
        v = np.asarray(value)
        if np.broadcast_shapes(mshape, xshape) != xshape:
            raise ValueError("the mask does not broadcast to the tensor's shape")
        if dt.kind != "f" and not np.isfinite(v):
            raise ValueError("cannot store")
        return np.where(mask, v.astype(dt), arr)
    assume(not (dt.kind != "f" and not np.isfinite(value)))  # NaN into an int tensor: numpy's cast is undefined
    x = tl.tensor(arr)
    got = run("masked_fill", lambda: x.masked_fill(tl.tensor(mask), value), ref, dtype=dt, must=True)
    if dt == F64 and got is not None:
        backward_shapes(lambda t: t.masked_fill(tl.tensor(mask), value), arr)
