"""Review s17: slice gradients kept as `Slices` (index_grad.py), tiled slices computed in place under tl.compile
(buffers._placed_slices), getitem's into rule and recycled into-outputs (ops/index.py, compile/replay.py), and the
LSTM's [i, f, o, g] fused gate order (nn/rnn.py). Contract: compiled replays equal eager bit for bit over >= 12
calls (past the 8 interpreted replays), eager gradients are right, replays do not crash, and tensors returned by
one call are never overwritten by a later one."""
import numpy as np
import pytest

import tinygrad_lite as tl
from test_compile_placed_slices import _grad_of

nn = tl.nn
CALLS = 14


def _same(a, b):
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)


def _as_tuple(r):
    return r if isinstance(r, tuple) else (r,)


def _run_both(step, make_args, calls=CALLS, min_replays=None):
    """Compiled vs eager on `calls` changing inputs; every returned tensor must keep its values afterwards."""
    compiled = tl.compile(step)
    kept = []
    for k in range(calls):
        args = make_args(k)
        got, want = _as_tuple(compiled(*args)), _as_tuple(step(*args))
        assert len(got) == len(want)
        for j, (a, b) in enumerate(zip(got, want)):
            assert _same(a.numpy(), b.numpy()), f"call {k}, output {j}: replay differs from eager"
        kept.append((got, [np.array(a.numpy(), copy=True) for a in got]))
    for k, (got, copies) in enumerate(kept):
        for a, c in zip(got, copies):
            assert _same(a.numpy(), c), f"the output of call {k} was overwritten by a later call"
    assert compiled.stats["replays"] >= (calls - 1 if min_replays is None else min_replays), compiled.stats
    return compiled


def _randn(shape, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    return lambda k: (tl.tensor(rng.standard_normal(shape).astype(dtype)),)


def _fd_grad(loss_fn, x0, eps=1e-6):
    g = np.zeros_like(x0)
    for i in np.ndindex(x0.shape):
        xp, xm = x0.copy(), x0.copy()
        xp[i] += eps
        xm[i] -= eps
        g[i] = (loss_fn(tl.tensor(xp)).item() - loss_fn(tl.tensor(xm)).item()) / (2 * eps)
    return g


# ---------------- slice patterns: each a loss of x (through y = x * 2, an intermediate whose gradient is Slices) ----
def _axis1(x):
    y = x * 2
    return y[:, :2].exp().sum() + y[:, 2:].sin().sum()


def _int_rows(x):
    y = x * 2
    return sum(((y[t] * (t + 1)).tanh()).sum() for t in range(x.shape[0]))


def _negative_int_rows(x):
    y = x * 2
    return sum(((y[-t - 1] * (t + 1)).tanh()).sum() for t in range(x.shape[0]))


def _with_empty_slice(x):
    y = x * 2
    return (y[0:0] * 5).sum() + (y[3:1] * 2).sum() + (y[:2] * 2).exp().sum() + y[2:].sin().sum()


def _slice_read_twice(x):
    y = x * 2
    a = y[:2].exp()
    return (a * a).sum() + y[2:].exp().sum()


def _dense_between(x):
    y = x * 2
    return y[:2].exp().sum() + (y * y).sum() + y[2:].sin().sum()


def _dense_first(x):
    y = x * 2
    return (y * y).sum() + y[:2].exp().sum() + y[2:].sin().sum()


def _nested(x):
    y = x * 2
    a, b = y[:4], y[4:]
    return a[:2].exp().sum() + a[2:].sin().sum() + b[:, 1:].tanh().sum() + b[:, :1].exp().sum()


def _interleaved(x):
    y, z = x * 2, x * 3
    return y[:2].exp().sum() + z[:3].sin().sum() + y[2:].sin().sum() + z[3:].exp().sum()


def _chained(x):
    y = x * 2
    z = y[:3] * y[3:]
    return z[:1].exp().sum() + z[1:].sin().sum()


def _views(x):
    y = (x * 2).reshape(8, 3)
    return y[:2].exp().sum() + y[2:].transpose(0, 1).sin().sum() + y[1:3].reshape(-1)[::2].tanh().sum()


def _overlapping(x):
    y = x * 2
    return sum(y[t:t + 3].tanh().sum() for t in range(x.shape[0] - 2))


def _leaf_slices(x):
    return x[:2].exp().sum() + x[2:4].sin().sum() + x[4].tanh().sum()


PATTERNS = [_axis1, _int_rows, _negative_int_rows, _slice_read_twice, _dense_between,
            _dense_first, _nested, _interleaved, _chained, _overlapping, _leaf_slices, _views]


@pytest.mark.parametrize("loss_fn", PATTERNS, ids=lambda f: f.__name__)
def test_slice_patterns_compiled_equal_eager(loss_fn):
    _run_both(_grad_of(loss_fn), _randn((6, 4)))


@pytest.mark.parametrize("loss_fn", PATTERNS + [_with_empty_slice], ids=lambda f: f.__name__)
def test_slice_pattern_eager_gradients_match_finite_differences(loss_fn):
    x0 = np.random.default_rng(1).standard_normal((6, 4))
    x = tl.tensor(x0, requires_grad=True)
    loss_fn(x).backward()
    np.testing.assert_allclose(x.grad.numpy(), _fd_grad(loss_fn, x0), rtol=1e-6, atol=1e-7)


def test_float32_data_float64_slice_math_compiled_equal_eager():
    def loss(x):
        y = x * 2
        return y[:2].astype(tl.float64).exp().sum() + y[2:].astype(tl.float64).sin().sum()
    _run_both(_grad_of(loss), _randn((5, 3), np.float32))
    x = tl.tensor(np.ones((5, 3), np.float32), requires_grad=True)
    loss(x).backward()
    assert x.grad.dtype == tl.float32


def test_slice_gradient_returned_by_autograd_grad_is_not_overwritten():
    def step(x):
        x = x.detach().requires_grad_()
        y = x * 2
        loss = y[:2].exp().sum() + y[2:].sin().sum()
        gy, = tl.autograd.grad(loss, [y])
        return loss.detach(), gy, gy.reshape(-1)[3:]
    _run_both(step, _randn((5, 3)))


def test_retain_graph_two_backwards_through_slices():
    def step(x):
        x = x.detach().requires_grad_()
        y = x * 2
        loss = y[:2].exp().sum() + y[2:].sin().sum()
        loss.backward(retain_graph=True)
        first = x.grad * 1
        (loss * 3).backward()
        return first, x.grad
    _run_both(step, _randn((5, 3)))
    x0 = np.random.default_rng(2).standard_normal((5, 3))
    first, total = step(tl.tensor(x0))
    want = np.concatenate([2 * np.exp(2 * x0[:2]), 2 * np.cos(2 * x0[2:])])
    np.testing.assert_allclose(first.numpy(), want)
    np.testing.assert_allclose(total.numpy(), 4 * want)


def test_double_backward_through_slices():
    def step(x):
        x = x.detach().requires_grad_()
        y = x * 2
        loss = (y[:2] ** 3).sum() + (y[2:] ** 3).sum() + (y[1:3] ** 2).sum()
        g, = tl.autograd.grad(loss, [x], create_graph=True)
        h, = tl.autograd.grad((g * g).sum(), [x])
        return g.detach(), h
    _run_both(step, _randn((5, 3)))
    x0 = np.random.default_rng(3).standard_normal((5, 3))
    g, h = step(tl.tensor(x0))
    mid = np.zeros_like(x0)
    mid[1:3] = 1
    want_g = 24 * x0 ** 2 + 8 * x0 * mid  # d/dx of (2x)^3 and (2x)^2 on rows 1..2
    np.testing.assert_allclose(g.numpy(), want_g)
    np.testing.assert_allclose(h.numpy(), 2 * want_g * (48 * x0 + 8 * mid))


def test_hooks_on_sliced_tensors():
    x0 = np.random.default_rng(4).standard_normal((5, 3))
    x = tl.tensor(x0, requires_grad=True)
    y = x * 2
    seen = []
    y.register_hook(lambda g: (seen.append(g.numpy().copy()), g * 2)[1])
    a = y[:2]
    a.register_hook(lambda g: g * 3)
    (a.exp().sum() + y[2:].sin().sum()).backward()
    dy = np.concatenate([3 * np.exp(2 * x0[:2]), np.cos(2 * x0[2:])])
    np.testing.assert_allclose(seen[0], dy)
    np.testing.assert_allclose(x.grad.numpy(), 4 * dy)


def test_vmap_of_autograd_grad_through_slices():
    def row_grad(row):
        row = row.detach().requires_grad_()
        y = row * 2
        return tl.autograd.grad((y[0] * 3).exp() + y[1:3].sin().sum() + y[3:].tanh().sum(), row)[0]
    x0 = np.random.default_rng(5).standard_normal((4, 5))
    batched = tl.func.vmap(row_grad)(tl.tensor(x0))
    for i in range(4):
        assert np.array_equal(batched[i].numpy(), row_grad(tl.tensor(x0[i])).numpy())
    want = np.concatenate([6 * np.exp(6 * x0[:, :1]), 2 * np.cos(2 * x0[:, 1:3]),
                           2 / np.cosh(2 * x0[:, 3:]) ** 2], axis=1)
    np.testing.assert_allclose(batched.numpy(), want)


# ---------------- found by this review (fixed): indexes NumPy answers with a scalar, an empty slice, x[()] ---------
def test_elements_of_a_1d_intermediate_read_by_int_index_compile():
    def loss(x):
        y = x * 2
        return (y[0] * 3).exp() + y[1].sin() + y[2:].tanh().sum()
    _run_both(_grad_of(loss), _randn((4,)))


def test_an_empty_slice_beside_tiling_slices_compile():
    _run_both(_grad_of(_with_empty_slice), _randn((6, 4)))


def test_empty_index_of_a_0d_tensor_compile():
    def step(x):
        x = x.detach().requires_grad_()
        s = (x * 2).sum()
        out = s[()] * 3
        out.backward()
        return out.detach(), x.grad
    _run_both(step, _randn((3,)))


# ---------------- recurrent layers ----------------
@pytest.mark.parametrize("cls", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_recurrent_layers_compiled_equal_eager(cls, bidirectional):
    tl.manual_seed(0)
    m = getattr(nn, cls)(3, 4, num_layers=2, bidirectional=bidirectional)

    def step(x):
        m.zero_grad()
        out, state = m(x)
        h = state[0] if isinstance(state, tuple) else state
        loss = (out ** 2).sum() + (h * 0.5).sum()
        loss.backward()
        return (loss.detach(),) + tuple(p.grad for p in m.parameters())
    _run_both(step, _randn((5, 2, 3), np.float32))


def test_lstm_cell_loop_with_input_gradient_compiled_equal_eager():
    tl.manual_seed(0)
    cell = nn.LSTMCell(3, 4)

    def step(x):
        x = x.detach().requires_grad_()
        cell.zero_grad()
        h, c = cell(x[0])
        for t in range(1, x.shape[0]):
            h, c = cell(x[t], (h, c))
        loss = (h ** 2).sum() + c.sum()
        loss.backward()
        return (loss.detach(), x.grad) + tuple(p.grad for p in cell.parameters())
    _run_both(step, _randn((5, 2, 3), np.float32))


@pytest.mark.oracle
@pytest.mark.parametrize("cls", ["LSTM", "GRU"])
def test_recurrent_gradients_match_pytorch(torch, cls):
    m = getattr(nn, cls)(3, 4, num_layers=2, bidirectional=True, batch_first=True).double()
    tm = getattr(torch.nn, cls)(3, 4, num_layers=2, bidirectional=True, batch_first=True).double()
    with torch.no_grad():
        for name, p in m.named_parameters():
            getattr(tm, name).copy_(torch.from_numpy(p.numpy()))
    x0 = np.random.default_rng(6).standard_normal((2, 5, 3))
    x, tx = tl.tensor(x0, requires_grad=True), torch.tensor(x0, requires_grad=True)
    (out, state), (tout, tstate) = m(x), tm(tx)
    h, th = (state[0], tstate[0]) if cls == "LSTM" else (state, tstate)
    ((out ** 2).sum() + (h[:, 1:] * 0.5).sum()).backward()
    ((tout ** 2).sum() + (th[:, 1:] * 0.5).sum()).backward()
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-9, atol=1e-11)
    for name, p in m.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), getattr(tm, name).grad.numpy(), rtol=1e-9, atol=1e-11,
                                   err_msg=name)


# ---------------- integer-array and boolean indexing, embeddings ----------------
def test_boolean_mask_with_changing_counts_compile():
    rng = np.random.default_rng(7)

    def step(x, mask):
        x = x.detach().requires_grad_()
        y = x * 2
        picked = y[mask]
        loss = picked.exp().sum() + (y * y).sum()
        loss.backward()
        return loss.detach(), x.grad, picked.detach()
    _run_both(step, lambda k: (tl.tensor(rng.standard_normal((6, 3))), tl.tensor(rng.random(6) < 0.5)),
              min_replays=1)


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.int32, np.int64, np.uint64])
def test_integer_array_index_dtypes_compile(dtype):
    rng = np.random.default_rng(8)
    low = 0 if np.dtype(dtype).kind == "u" else -150

    def step(x, i):
        x = x.detach().requires_grad_()
        y = x * 2
        rows = y[i] * 2
        (rows ** 2).sum().backward()
        return rows.detach(), x.grad
    _run_both(step, lambda k: (tl.tensor(rng.standard_normal((150, 3))),
                               tl.tensor(rng.integers(low, 120, (2, 4)).astype(dtype))))


def test_out_of_range_integer_index_raises_in_replays_like_eager():
    rng = np.random.default_rng(9)
    bad = {9: [0, 6, 1], 10: [0, -7, 1], 11: [6, 6, 6], 12: [-1, 2, 99]}

    def step(x, i):
        y = x * 2
        return y[i].sum(0), y[i, 1:] * 2

    compiled = tl.compile(step)
    for k in range(CALLS + 2):
        x = tl.tensor(rng.standard_normal((6, 3)))
        i = tl.tensor(np.array(bad[k]) if k in bad else rng.integers(-6, 6, (3,)))
        if k in bad:
            with pytest.raises(IndexError):
                step(x, i)
            with pytest.raises(IndexError):
                compiled(x, i)
            continue
        for a, b in zip(compiled(x, i), step(x, i)):
            assert _same(a.numpy(), b.numpy())
    assert compiled.stats["replays"] >= CALLS - 3


def test_embedding_with_padding_idx_compile():
    tl.manual_seed(0)
    emb, lin = nn.Embedding(10, 4, padding_idx=2), nn.Linear(4, 1)
    rng = np.random.default_rng(10)

    def step(i):
        emb.zero_grad()
        lin.zero_grad()
        loss = (lin(emb(i)) ** 2).sum()
        loss.backward()
        return loss.detach(), emb.weight.grad, lin.weight.grad

    compiled = _run_both(step, lambda k: (tl.tensor(rng.integers(0, 10, (3, 5))),))
    i = tl.tensor(np.array([[2, 2, 3], [1, 2, 0]]))
    _, g, _ = compiled(i)
    assert np.all(g.numpy()[2] == 0) and np.any(g.numpy()[3] != 0)


def test_embedding_gradient_accumulates_across_compiled_calls():
    tl.manual_seed(0)
    emb = nn.Embedding(10, 4, padding_idx=9)
    ref = nn.Embedding(10, 4, padding_idx=9)
    ref.weight.data = tl.tensor(emb.weight.numpy().copy())
    rng = np.random.default_rng(11)

    def make(m):
        def step(i):
            loss = (m(i) ** 2).sum()
            loss.backward()
            return loss.detach()
        return step
    compiled, eager = tl.compile(make(emb)), make(ref)
    for k in range(CALLS):
        i = tl.tensor(rng.integers(0, 10, (3, 5)))
        assert _same(compiled(i).numpy(), eager(i).numpy())
        assert _same(emb.weight.grad.numpy(), ref.weight.grad.numpy())
    assert np.all(emb.weight.grad.numpy()[9] == 0)
