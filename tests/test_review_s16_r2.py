"""Review of the work-array (ops/workspace.py) changes and their users, the row-lookup gradient (_add_rows), the
container guards of tl.compile and autograd.functional under tl.compile: eager against PyTorch, replays against
eager bit for bit, threads, aliasing of work arrays, dtype edge cases."""
import threading
import time

import numpy as np
import pytest

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
def test_row_gradient_with_small_integer_rows_and_negative_rows_matches_torch(torch, dt, n):
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


@pytest.mark.parametrize("dt", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("pad", [None, 3, -2])
def test_embedding_backward_accumulated_with_retain_graph_and_padding_matches_torch(torch, dt, pad):
    rng = np.random.default_rng(0)
    table = rng.standard_normal((10, 4)).astype(dt)
    w, tw = tl.tensor(table, requires_grad=True), torch.tensor(table, requires_grad=True)
    for _ in range(3):
        idx = rng.integers(0, 10, (3, 5))
        gout = rng.standard_normal((3, 5, 4)).astype(dt)
        out = (F.embedding(tl.tensor(idx), w, padding_idx=pad) * tl.tensor(gout)).sum()
        tout = (torch.nn.functional.embedding(torch.tensor(idx), tw, padding_idx=pad) * torch.tensor(gout)).sum()
        out.backward(retain_graph=True)
        out.backward()
        tout.backward(retain_graph=True)
        tout.backward()
    tol = 1e-2 if dt == np.float16 else 1e-5
    np.testing.assert_allclose(w.grad.numpy().astype(float), tw.grad.numpy().astype(float), rtol=tol, atol=tol)
    if pad is not None:
        assert not w.grad.numpy()[pad].any()


def test_row_lookup_double_backward_and_weight_hooks_match_torch(torch):
    rng = np.random.default_rng(2)
    table = rng.standard_normal((10, 4))
    idx = rng.integers(-10, 10, (3, 5))
    w, tw = tl.tensor(table, requires_grad=True), torch.tensor(table, requires_grad=True)
    g, = tl.autograd.grad((w[tl.tensor(idx)] ** 3).sum(), w, create_graph=True)
    (g ** 2).sum().backward()
    tg, = torch.autograd.grad((tw[torch.tensor(idx)] ** 3).sum(), tw, create_graph=True)
    (tg ** 2).sum().backward()
    np.testing.assert_allclose(g.detach().numpy(), tg.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(w.grad.numpy(), tw.grad.numpy(), rtol=1e-12)
    w, tw = tl.tensor(table, requires_grad=True), torch.tensor(table, requires_grad=True)
    w.register_hook(lambda g: g * 2)
    tw.register_hook(lambda g: g * 2)
    for _ in range(2):
        (w[tl.tensor(idx)] * 3).sum().backward()
        (tw[torch.tensor(idx)] * 3).sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), tw.grad.numpy(), rtol=1e-12)


@pytest.mark.parametrize("dt", [np.float16, np.float32])
def test_compiled_embedding_training_step_is_bit_identical_to_eager(dt):
    rng = np.random.default_rng(3)
    models = []
    for _ in range(2):
        tl.manual_seed(0)
        m = nn.Embedding(10, 4, padding_idx=2, dtype=dt)
        models.append((m, tl.optim.SGD(m.parameters(), lr=0.1)))

    def make(m, opt):
        def step(i, j):
            opt.zero_grad()
            (m(i) ** 2).sum().backward()  # two backward calls accumulate into one .grad
            loss = (m(j) * 3).sum()
            loss.backward()
            opt.step()
            return loss.item()
        return step
    compiled, eager = tl.compile(make(*models[0])), make(*models[1])
    for _ in range(5):
        i, j = (tl.tensor(rng.integers(0, 10, (3, 5))) for _ in range(2))
        assert compiled(i, j) == eager(i, j)
        assert _same(models[0][0].weight.numpy(), models[1][0].weight.numpy())
        assert _same(models[0][0].weight.grad.numpy(), models[1][0].weight.grad.numpy())
    assert compiled.stats["replays"] >= 3 and compiled.stats["traces"] == 1


# ---------------- max pooling: PyTorch's values and indices; returned indices are the caller's ----------------
_POOLS = [(2, 2, 0, 1, False), (3, 1, 1, 1, False), (3, 2, 1, 2, True), (2, 2, 0, 1, True), (17, 1, 0, 1, False),
          (3, 3, 0, 2, True)]


def _pool_input(special, dt, seed=0):
    x = np.random.default_rng(seed).standard_normal((2, 3, 19, 18)).astype(dt)
    if special == "nan":
        x[x > 1.0] = np.nan
    elif special == "inf":
        x[x > 1.0] = np.inf
    elif special == "ninf":
        x[:] = -np.inf
        x[0, 0, 0, 0] = 1
    elif special == "ties":
        x = np.round(x).astype(dt)
    return x


@pytest.mark.parametrize("k,s,p,d,ceil", _POOLS)
@pytest.mark.parametrize("special", [None, "nan", "inf", "ninf", "ties"])
def test_max_pool_values_and_indices_match_torch(torch, k, s, p, d, ceil, special):
    for dt in (np.float16, np.float32):
        x = _pool_input(special, dt)
        o, i = F.max_pool2d(tl.tensor(x), k, s, p, d, ceil, return_indices=True)
        to, ti = torch.nn.functional.max_pool2d(torch.tensor(x), k, s, p, d, ceil, return_indices=True)
        assert np.array_equal(i.numpy(), ti.numpy())
        assert np.array_equal(o.numpy(), to.numpy(), equal_nan=True)


def test_max_pool_with_more_than_256_kernel_offsets_matches_torch(torch):
    x = np.random.default_rng(4).standard_normal((1, 2, 20, 20)).astype(np.float32)
    x[0, 0, 15, 17] = 9.0  # past offset 256 of a 17 x 17 window
    o, i = F.max_pool2d(tl.tensor(x), 17, 1, return_indices=True)
    to, ti = torch.nn.functional.max_pool2d(torch.tensor(x), 17, 1, return_indices=True)
    assert np.array_equal(i.numpy(), ti.numpy()) and np.array_equal(o.numpy(), to.numpy())


@pytest.mark.parametrize("k,s,p,d,ceil", _POOLS[:4])
def test_compiled_max_pool_returned_indices_are_never_overwritten_by_later_calls(torch, k, s, p, d, ceil):
    def step(x):
        o, i = F.max_pool2d(x, k, s, p, d, ceil, return_indices=True)
        return o * 2, i
    f = tl.compile(step)
    xs = [_pool_input("nan" if n == 2 else None, np.float32, n) for n in range(5)]
    kept = [f(tl.tensor(x)) for x in xs]
    for x, (o, i) in zip(xs, kept):
        want = step(tl.tensor(x))
        assert _same(o.numpy(), want[0].numpy()) and _same(i.numpy(), want[1].numpy())
        ti = torch.nn.functional.max_pool2d(torch.tensor(x), k, s, p, d, ceil, return_indices=True)[1]
        assert np.array_equal(i.numpy(), ti.numpy())
    assert f.stats["replays"] >= 3
    eager = [F.max_pool2d(tl.tensor(x), k, s, p, d, ceil, return_indices=True)[1] for x in xs]
    for x, i in zip(xs, eager):
        assert np.array_equal(i.numpy(), torch.nn.functional.max_pool2d(torch.tensor(x), k, s, p, d, ceil,
                                                                          return_indices=True)[1].numpy())


def test_vmap_of_max_pooling_and_adaptive_max_pooling_matches_torch_per_sample(torch):
    """host(np.reshape, ...) on the indices had no batching rule: vmap of max_pool2d raised."""
    x = np.random.default_rng(3).standard_normal((3, 2, 3, 9, 9)).astype(np.float32)
    x[1, 0, 0, :3, :3] = np.nan
    for kw in (dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1),
               dict(kernel_size=3, dilation=2, ceil_mode=True)):
        o, i = tl.func.vmap(lambda a: F.max_pool2d(a, return_indices=True, **kw))(tl.tensor(x))
        for b in range(3):
            to, ti = torch.nn.functional.max_pool2d(torch.tensor(x[b]), return_indices=True, **kw)
            assert np.array_equal(i.numpy()[b], ti.numpy())
            assert np.array_equal(o.numpy()[b], to.numpy(), equal_nan=True)
    o, i = tl.func.vmap(lambda a: F.adaptive_max_pool2d(a, (4, 2), return_indices=True))(tl.tensor(x))
    for b in range(3):
        to, ti = torch.nn.functional.adaptive_max_pool2d(torch.tensor(x[b]), (4, 2), return_indices=True)
        assert np.array_equal(i.numpy()[b], ti.numpy())
    g = tl.func.vmap(tl.func.grad(lambda a: (F.max_pool2d(a, 3, 2) ** 2).sum()))(tl.tensor(x))
    for b in range(3):
        t = torch.tensor(x[b], requires_grad=True)
        (torch.nn.functional.max_pool2d(t, 3, 2) ** 2).sum().backward()
        np.testing.assert_allclose(g.numpy()[b], t.grad.numpy(), rtol=1e-6)


def test_max_pool_forward_mode_and_double_backward_match_torch(torch):
    x = np.random.default_rng(3).standard_normal((2, 3, 8, 8))
    t = np.random.default_rng(4).standard_normal((2, 3, 8, 8))
    _, jt = tl.func.jvp(lambda a: F.max_pool2d(a, 3, 2), (tl.tensor(x),), (tl.tensor(t),))
    _, tj = torch.func.jvp(lambda a: torch.nn.functional.max_pool2d(a, 3, 2), (torch.tensor(x),), (torch.tensor(t),))
    assert np.array_equal(jt.numpy(), tj.numpy())
    xx, tx = tl.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    g, = tl.autograd.grad((F.max_pool2d(xx, 3, 2, 1) ** 3).sum(), xx, create_graph=True)
    (g ** 2).sum().backward()
    tg, = torch.autograd.grad((torch.nn.functional.max_pool2d(tx, 3, 2, 1) ** 3).sum(), tx, create_graph=True)
    (tg ** 2).sum().backward()
    np.testing.assert_allclose(xx.grad.numpy(), tx.grad.numpy(), rtol=1e-12)


def test_threads_running_max_pool_gather_erf_and_embedding_backward_at_once_get_right_results():
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((4, 3, 16, 16)).astype(np.float32) for _ in range(4)]
    idx = [rng.integers(0, 16, (4, 3, 16, 5)) for _ in range(4)]
    rows = [rng.integers(0, 5, 300) for _ in range(4)]
    table = rng.standard_normal((5, 8)).astype(np.float32)

    def results(j):
        w = tl.tensor(table, requires_grad=True)
        (w[tl.tensor(rows[j])] * tl.tensor(xs[j].reshape(-1)[:2400].reshape(300, 8))).sum().backward()
        return [F.max_pool2d(tl.tensor(xs[j]), 3, 2, return_indices=True)[1].numpy(),
                F.max_pool2d(tl.tensor(xs[j]), 3, 2, 1).numpy(),
                tl.tensor(xs[j]).gather(3, tl.tensor(idx[j])).numpy(),
                F.gelu(tl.tensor(xs[j] * 3)).numpy(), w.grad.numpy()]
    want = [results(j) for j in range(4)]
    errors = []

    def work(t):
        try:
            for r in range(40):
                j = (t + r) % 4
                assert all(_same(a, b) for a, b in zip(results(j), want[j]))
        except Exception as e:  # noqa: BLE001 (reported by the main thread)
            errors.append(e)
    threads = [threading.Thread(target=work, args=(t,)) for t in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
