"""Review of the work-array (ops/workspace.py) changes and their users, the row-lookup gradient (_add_rows), the
container guards of tl.compile and autograd.functional under tl.compile: eager against PyTorch, replays against
eager bit for bit, threads, aliasing of work arrays, dtype edge cases."""
import math
import threading
import time

import numpy as np
import pytest
import torch

import tinygrad_lite as tl
from tinygrad_lite.autograd.index_grad import _add_index_grad, _add_rows
from tinygrad_lite.ops.index import index_scatter

F = tl.nn.functional
nn = tl.nn


def _same(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


# ---------------- the gradient of a row lookup (_add_rows) ----------------
@pytest.mark.parametrize("dt,n", [(np.int8, 300), (np.int16, 40000), (np.int32, 300), (np.uint8, 300)])
def test_row_gradient_with_small_integer_rows_and_negative_rows_matches_torch(dt, n):
    """int8/int16 negative rows plus the table's size overflowed their dtype (OverflowError in backward)."""
    w = tl.randn(n, 3, requires_grad=True)
    rows = np.array([-1, 2, -1, 5], dtype=dt) if dt != np.uint8 else np.array([255, 2, 255, 5], dtype=dt)
    w[tl.tensor(rows)].sum().backward()
    tw = torch.tensor(w.detach().numpy(), requires_grad=True)
    tw[torch.tensor(rows.astype(np.int64))].sum().backward()
    assert np.array_equal(w.grad.numpy(), tw.grad.numpy())


def test_row_gradient_of_one_row_picked_thousands_of_times_is_not_quadratic():
    """A padding row picked 8,192 times: one vectorized pass per repeat made it ~0.1 s (quadratic in repeats)."""
    rng = np.random.default_rng(0)
    buf = np.zeros((3, 16), np.float32)
    rows = np.zeros(20000, np.int64)
    g = rng.standard_normal((20000, 16)).astype(np.float32)
    t = time.perf_counter()
    _add_rows(buf, g, rows)
    assert time.perf_counter() - t < 0.05
    want = index_scatter.forward(g, (3, 16), (rows,))
    assert _same(buf, want)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_row_gradient_sums_equal_index_scatter_with_repeats_negatives_and_broadcast_g(dtype):
    rng = np.random.default_rng(1)
    rows = rng.integers(-7, 7, (5, 4)).astype(np.int32)
    g = np.broadcast_to(rng.standard_normal((1, 4, 3)).astype(dtype), (5, 4, 3))  # a stride-0 gradient
    got = _add_index_grad(np.zeros((7, 3), dtype), g, (rows, slice(None)), False)
    assert _same(got, index_scatter.forward(g, (7, 3), (rows,)))
    empty = _add_index_grad(np.ones((7, 3), dtype), g[:0], (rows[:0], slice(None)), False)
    assert _same(empty, np.ones((7, 3), dtype))
