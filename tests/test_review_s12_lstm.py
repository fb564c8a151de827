"""Review of 20e1f41..32773a3 (fixed slots read by their planned buffer's name, gradient arrays recycled by the generated
code when nothing holds them, host masks planned like a primitive's, nn.LSTM's sigmoid over the i,f and o blocks
only): every test runs a compiled function and the same function eagerly, side by side (_review_s12_common.py).
The review found no defect: these are regression tests for the scenarios it checked.
Here: nn.LSTM / LSTMCell / GRU with the sigmoid over the i, f and o blocks only: against PyTorch, compiled training bit
for bit, and bit for bit against one sigmoid over all the gates."""
import numpy as np
import pytest

import tinygrad_lite as tl

from _compile_common import train_step as _train_step
from _review_s12_common import CALLS, _replayed, _same, _state

nn, F = tl.nn, tl.nn.functional


# ===================== nn.LSTM: sigmoid over i,f and o only =====================

def _torch_rnn(torch, kind, model):
    if kind == "LSTMCell":
        t = torch.nn.LSTMCell(5, 33).double()
    elif kind == "GRU":
        t = torch.nn.GRU(5, 33).double()
    else:
        t = torch.nn.LSTM(5, 33, num_layers=2, bidirectional=kind == "LSTM-bi").double()
    with torch.no_grad():
        for name, p in model.named_parameters():
            getattr(t, name).copy_(torch.from_numpy(p.numpy().astype(np.float64)))
    return t


@pytest.mark.parametrize("kind", ["LSTM", "LSTM-bi", "LSTMCell", "GRU"])
def test_recurrent_layers_match_pytorch(kind, torch):
    tl.manual_seed(0)
    model = {"LSTMCell": lambda: nn.LSTMCell(5, 33), "GRU": lambda: nn.GRU(5, 33)}.get(
        kind, lambda: nn.LSTM(5, 33, num_layers=2, bidirectional=kind == "LSTM-bi"))()
    ref = _torch_rnn(torch, kind, model)
    data = np.random.default_rng(0).standard_normal((17, 5) if kind == "LSTMCell" else (6, 17, 5)).astype(np.float32)
    x, tx = tl.tensor(data, requires_grad=True), torch.tensor(data.astype(np.float64), requires_grad=True)
    out, tout = model(x), ref(tx)
    y, ty = out[0], tout[0]
    second, tsecond = (out[1], tout[1]) if kind == "LSTMCell" else (out[1][0] if kind != "GRU" else out[1],
                                                                     tout[1][0] if kind != "GRU" else tout[1])
    loss, tloss = (y * y).sum() + second.sum(), (ty * ty).sum() + tsecond.sum()
    loss.backward()
    tloss.backward()
    tol = dict(rtol=2e-4, atol=2e-5)
    np.testing.assert_allclose(y.detach().numpy(), ty.detach().numpy(), **tol)
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), **tol)
    for name, p in model.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), getattr(ref, name).grad.numpy(), **tol, err_msg=name)


class _Seq(nn.Module):
    def __init__(self, kind):
        super().__init__()
        self.kind = kind
        self.rnn = {"GRU": lambda: nn.GRU(6, 9), "LSTMCell": lambda: nn.LSTMCell(6, 9),
                    "LSTM-bi": lambda: nn.LSTM(6, 9, bidirectional=True)}.get(kind, lambda: nn.LSTM(6, 9, num_layers=2))()
        self.head = nn.Linear(18 if kind == "LSTM-bi" else 9, 4)

    def forward(self, x):
        if self.kind == "LSTMCell":
            state = None
            for t in range(x.shape[0]):
                state = self.rnn(x[t], state)
            return self.head(state[0])
        return self.head(self.rnn(x)[0][-1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["LSTM", "LSTM-bi", "LSTMCell", "GRU"])
def test_recurrent_training_replays_bit_identically(kind, dtype):
    def run(compiled):
        tl.manual_seed(0)
        model = _Seq(kind).to(dtype)
        opt = tl.optim.Adam(model.parameters(), lr=0.01)
        f = _train_step(model, opt)
        f = tl.compile(f) if compiled else f
        rng = np.random.default_rng(0)
        losses = [f(tl.tensor(rng.standard_normal((5, 3, 6)).astype(dtype)), tl.tensor(rng.integers(0, 4, 3)))
                  for _ in range(CALLS)]
        return losses, _state(model, opt), getattr(f, "stats", None)
    (le, se, _), (lc, sc, stats) = run(False), run(True)
    assert le == lc and all(_same(a, b) for a, b in zip(se, sc)) and _replayed(stats), stats


# Bit for bit against the parent commit's LSTM step (the review also compared whole LSTM/LSTMCell/GRU outputs and
# gradients with 20e1f41's, float32 and float64: np.array_equal throughout).
def test_lstm_split_sigmoid_equals_one_sigmoid_over_all_gates():
    """The old step, `s = gates.sigmoid()` over PyTorch's gate rows (i, f, g, o) with s[:H], s[H:2H], s[3H:], gives
    the same forward and gradients bit for bit as the step now, on the rows in fused_weights' order (i, f, o, g)
    (elementwise sigmoid; the slices' gradients add zeros)."""
    from tinygrad_lite.nn import rnn

    def old_step(gates, state, hidden):
        s = gates.sigmoid()
        c = s[hidden:2 * hidden] * state[1] + s[:hidden] * gates[2 * hidden:3 * hidden].tanh()
        return s[3 * hidden:] * c.tanh(), c
    n = 33
    to_step = np.r_[0:2 * n, 3 * n:4 * n, 2 * n:3 * n]  # PyTorch's rows -> the step's
    for dtype in (np.float32, np.float64):
        results = []
        for step, rows in ((rnn._lstm_step, to_step), (old_step, np.arange(4 * n))):
            rng = np.random.default_rng(0)  # the same data for both steps
            data = rng.standard_normal((4 * n, 17)).astype(dtype) * 3
            g = tl.tensor(data[rows], requires_grad=True)
            c0 = tl.tensor(rng.standard_normal((n, 17)).astype(dtype), requires_grad=True)
            h, c = step(g, (None, c0), n)
            ((h * h).sum() + (c * 0.5).sum()).backward()
            grad = np.empty_like(data)
            grad[rows] = g.grad.numpy()  # back in PyTorch's rows
            results.append([h.detach().numpy().copy(), c.detach().numpy().copy(), grad, c0.grad.numpy()])
        assert all(np.array_equal(a, b) for a, b in zip(*results)), dtype
