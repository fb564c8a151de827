"""Work arrays (ops/workspace.py) and the kernels that use them: max pooling's arg-max search, gather/scatter's
flat positions and fold's transposed sums. The results must not depend on what an earlier call left in a work
array, nor on another thread using the same call site at the same time."""
import threading

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinygrad_lite as tl
from tinygrad_lite.ops import workspace
from tinygrad_lite.nn.pooling import _argmax_indices, _setup

F = tl.nn.functional


def test_a_call_site_gets_its_array_back_and_other_sites_or_shapes_get_others():
    a = workspace.scratch("test.a", (3, 4), np.float32)
    assert workspace.scratch("test.a", (3, 4), np.float32) is a
    assert workspace.scratch("test.a", (3, 4), "float32") is a  # (the dtype normalized)
    others = [workspace.scratch("test.b", (3, 4), np.float32), workspace.scratch("test.a", (4, 3), np.float32),
              workspace.scratch("test.a", (3, 4), np.float64)]
    assert all(o is not a and not np.shares_memory(o, a) for o in others)
    z = workspace.zeroed("test.a", (3, 4), np.float32)
    assert z is a and not z.any()


def test_large_work_arrays_are_not_kept_and_the_total_kept_is_bounded():
    big = (workspace._KEEP_BYTES // 8 + 1,)
    assert workspace.scratch("test.big", big, np.float64) is not workspace.scratch("test.big", big, np.float64)
    n = workspace._TOTAL_BYTES // (1 << 20) + 4
    for i in range(n):
        workspace.scratch(f"test.many{i}", (1 << 18,), np.float32)  # 1 MiB each
    kept = workspace._local.arrays
    assert sum(a.nbytes for a in kept.values()) <= workspace._TOTAL_BYTES
    assert ("test.many0", (1 << 18,), np.dtype(np.float32)) not in kept  # the oldest went first
    assert (f"test.many{n - 1}", (1 << 18,), np.dtype(np.float32)) in kept


def test_each_thread_has_its_own_work_arrays():
    got = {}

    def run(name):
        got[name] = workspace.scratch("test.thread", (5,), np.int64)
    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    run("main")
    assert len({id(a) for a in got.values()}) == 3


def _naive_argmax(x, k, s, p, d, out_hw):
    """The flat H*W index of each window's maximum, by a loop: PyTorch's rules (padding is -inf and never wins,
    the first maximum wins ties, a NaN always takes over so the window's last NaN wins)."""
    n, c, h, w = x.shape
    out = np.empty((n, c) + out_hw, np.int64)
    for a in range(n):
        for b in range(c):
            for i in range(out_hw[0]):
                for j in range(out_hw[1]):
                    best, where = -np.inf, None
                    for u in range(k[0]):
                        for v in range(k[1]):
                            r, q = i * s[0] - p[0] + u * d[0], j * s[1] - p[1] + v * d[1]
                            if not (0 <= r < h and 0 <= q < w):
                                continue
                            val = x[a, b, r, q]
                            if where is None or np.isnan(val) or val > best:
                                best, where = val, r * w + q
                    out[a, b, i, j] = where
    return out


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 3), st.integers(1, 2), st.sampled_from([0, 1]), st.booleans(), st.integers(0, 2 ** 31))
def test_max_pool_indices_are_pytorchs_with_ties_and_nans(k, s, p, nans, seed):
    """Small integers (many ties) and, in some calls, NaNs; each config run twice on different data, so the
    second call finds the work arrays full of the first's values."""
    rng = np.random.default_rng(seed)
    k, p = (k, k + 1), (min(p, k // 2), min(p, (k + 1) // 2))
    for _ in range(2):
        x = rng.integers(-2, 3, (2, 3, 7, 8)).astype(np.float32)
        if nans:
            x[rng.random(x.shape) < 0.15] = np.nan
        t = tl.tensor(x)
        k_, s_, p_, d_, out_hw, extra = _setup(t, k, s, p, 1, False, "max_pool2d", True)
        want = _naive_argmax(x, k_, s_, p_, d_, out_hw)
        np.testing.assert_array_equal(_argmax_indices(x, k_, s_, p_, d_, out_hw, extra), want)
        out = np.full(want.shape, -7, np.int64)
        assert _argmax_indices(x, k_, s_, p_, d_, out_hw, extra, out=out) is out
        np.testing.assert_array_equal(out, want)


def test_a_kernel_of_more_than_256_offsets_counts_positions_in_int64():
    x = np.random.default_rng(0).standard_normal((1, 2, 18, 19))
    out, idx = F.max_pool2d(tl.tensor(x), 17, stride=1, return_indices=True)
    want = _naive_argmax(x, (17, 17), (1, 1), (0, 0), (1, 1), (2, 3))
    np.testing.assert_array_equal(idx.numpy(), want)
    np.testing.assert_array_equal(out.numpy(), np.take_along_axis(x.reshape(1, 2, -1), want.reshape(1, 2, -1), 2)
                                  .reshape(out.shape))


@pytest.mark.parametrize("dim", [0, 1, 2])
def test_gather_and_its_gradient_reuse_positions_without_stale_values(dim):
    """gather then scatter_add (its VJP) on one shape, twice with different indices: the flat positions' work
    array holds the first call's positions when the second starts."""
    rng = np.random.default_rng(dim)
    x = rng.standard_normal((3, 4, 5))
    for _ in range(2):
        shape = list(x.shape)
        shape[dim] = 2
        index = rng.integers(0, x.shape[dim], shape)
        t = tl.tensor(x, requires_grad=True)
        out = t.gather(dim, tl.tensor(index))
        np.testing.assert_array_equal(out.numpy(), np.take_along_axis(x, index, dim))
        g = rng.standard_normal(shape)
        out.backward(tl.tensor(g))
        want = np.zeros_like(x)
        np.put_along_axis(want, index, 0, dim)
        for pos in np.ndindex(*shape):
            at = list(pos)
            at[dim] = index[pos]
            want[tuple(at)] += g[pos]
        np.testing.assert_array_equal(t.grad.numpy(), want)


def test_gather_still_refuses_an_index_out_of_range_naming_it():
    x = tl.tensor(np.zeros((2, 3)))
    for bad in (3, -1):
        with pytest.raises(IndexError, match=r"gather: index values must be in \[0, 3\) along dim 1"):
            x.gather(1, tl.tensor(np.array([[0, bad], [1, 2]])))


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.int32])
@pytest.mark.parametrize("op", ["cumsum", "cumprod"])
def test_scans_replay_bit_identically_in_their_accumulation_precision(op, dtype):
    """A replay's scan accumulates in a work array of PyTorch's precision (float16 in float32, float32 in
    float64) and rounds once into its planned buffer, as eager's astype; many calls with new values."""
    def fn(x):
        y = getattr(x, op)(1)
        return y, getattr(y * 1, op)(0)
    f = tl.compile(fn)
    rng = np.random.default_rng(1)
    for call in range(12):
        x = (rng.standard_normal((5, 7)) * (1 + call)).astype(dtype) if dtype != np.int32 else \
            rng.integers(-3, 4, (5, 7)).astype(dtype)
        got, want = f(tl.tensor(x)), fn(tl.tensor(x))
        for g, w in zip(got, want):
            assert g.dtype == w.dtype
            assert g.numpy().tobytes() == w.numpy().tobytes(), call
    assert f.stats["replays"] == 11


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("shape", [(3, 4), (), (0, 2), (5, 1, 7)])
def test_dropout_masks_written_into_a_buffer_are_eagers_and_leave_the_stream_where_eager_does(shape, dtype):
    from tinygrad_lite.compile.hooks import HOST_INTO
    from tinygrad_lite.nn.dropout import _mask
    for p in (0.1, 0.5, 1 / 3):
        tl.manual_seed(3)
        want, after = _mask(shape, np.dtype(dtype), p), tl.rand(5).numpy()
        tl.manual_seed(3)
        out = np.full(shape, 7, dtype)
        assert HOST_INTO[_mask](out, shape, np.dtype(dtype), p) is out
        assert out.tobytes() == want.tobytes() and tl.rand(5).numpy().tobytes() == after.tobytes()
