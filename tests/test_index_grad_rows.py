"""The gradient of a row lookup (`W[rows]`, an embedding): repeated rows summed in float64 in index order and
rounded once (index_scatter's numbers), over the rows picked only."""
import tracemalloc

import numpy as np
from hypothesis import given, settings, strategies as st

import tinygrad_lite as tl
from tinygrad_lite.autograd.index_grad import _add_index_grad
from tinygrad_lite.ops.index import index_scatter


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 9), st.lists(st.integers(0, 3), max_size=2), st.lists(st.integers(0, 5), max_size=2),
       st.sampled_from([np.float16, np.float32, np.float64]), st.booleans(), st.integers(0, 2 ** 31))
def test_rows_add_index_scatters_sums_and_leave_other_rows_untouched(n, inner, outer, dtype, full_slices, seed):
    rng = np.random.default_rng(seed)
    shape, rshape = (n,) + tuple(inner), tuple(outer)
    buf = rng.standard_normal(shape).astype(dtype)
    buf.flat[::4] = -0.0
    rows = rng.integers(-n, n, rshape)  # repeats and negative rows
    g = rng.standard_normal(rshape + tuple(inner)).astype(dtype)
    g.flat[::3] = -0.0
    index = (rows,) + (slice(None),) * (len(inner) if full_slices else 0)
    dense = buf + index_scatter.forward(g, shape, (rows,))
    got = _add_index_grad(buf.copy(), g, index, False)
    picked = np.zeros(n, bool)
    picked[rows.reshape(-1)] = True
    assert got[picked].tobytes() == dense[picked].tobytes()
    assert got[~picked].tobytes() == buf[~picked].tobytes()


def test_an_embedding_backward_makes_no_array_the_size_of_the_table():
    """The gradient buffer (the table's size) is the only large array: no positions table, no float64 sums
    of the whole table (before: three more arrays of its size)."""
    weight = tl.randn(20000, 64, requires_grad=True)
    idx = tl.tensor(np.random.default_rng(0).integers(0, 20000, (16, 32)))
    out = tl.nn.functional.embedding(idx, weight)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        out.sum().backward()
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert peak < weight.numpy().nbytes + (1 << 20), peak
    want = np.zeros((20000, 64), np.float32)
    np.add.at(want, idx.numpy().reshape(-1), 1)
    np.testing.assert_array_equal(weight.grad.numpy(), want)
