"""Adversarial tests of the view cache of generated replays (compile/replay.py `_Emitter._cached_view`): a returned
view is a new array every call; cached views of parameters follow their source through `.data` swaps, in-place edits
and mode switches (tied weights too).

Every test compares the compiled call with the eager call of the same function on the same inputs, bit for bit. A
failing test is a stale replay (or a crash eager does not have); its docstring says what eager does and what the
replay does."""
import numpy as np
import pytest

import tinygrad_lite as tl

nn = tl.nn


# ============ the view cache of generated replays (fixed in 566032c) ============

def test_a_returned_view_is_a_new_array_on_every_call():
    """The step returns `lin.weight.reshape(-1)`; the caller reshapes that array in place (`a.shape = (3, 4)`, a
    NumPy idiom). Eager returns a fresh view every call, so later calls still return shape (12,); from the first
    generated replay on, the cached view (replay.py `_cached_view`/`_view`) is returned again, already reshaped by
    the caller: later calls return shape (3, 4)."""
    lin = nn.Linear(4, 3)

    def fn(x):
        flat = lin.weight.reshape(-1)
        return (x * flat[:4]).detach(), flat.detach()
    f, x = tl.compile(fn), tl.tensor(np.ones((2, 4), np.float32))
    for i in range(14):
        (a, flat), (ea, eflat) = f(x), fn(x)
        assert flat.shape == eflat.shape == (12,) and np.array_equal(a.numpy(), ea.numpy()), (i, f.stats)
        flat.numpy().shape = (3, 4)
        eflat.numpy().shape = (3, 4)


def _views(lin):
    def step(x):
        with tl.no_grad():
            w = lin.weight
            return x @ w.T, w.T, w[1:], w.reshape(-1), lin.bias.expand(2, 3), w.T[0]
    return step


@pytest.mark.parametrize("change", ["alternating .data", "in-place edits", "none"])
def test_cached_views_of_parameters_follow_their_source_for_40_calls(change):
    """No-grad inference for 40 calls returning x @ w.T, w.T, w[1:], w.reshape(-1), b.expand, w.T[0]: with the
    parameter's array swapped between two arrays every call, or edited in place every 5th call, every result (all
    compared after the last call, as the caller holds them) is eager's."""
    tl.manual_seed(0)
    lins = [nn.Linear(4, 3) for _ in range(2)]
    lins[1].load_state_dict(lins[0].state_dict())
    arrays = [np.arange(12, dtype=np.float32).reshape(3, 4), -np.ones((3, 4), np.float32)]
    eager, comp = _views(lins[0]), tl.compile(_views(lins[1]))
    rng, outs = np.random.default_rng(0), ([], [])
    for i in range(40):
        x = tl.tensor(rng.standard_normal((2, 4)).astype(np.float32))
        for lin, step, out in zip(lins, (eager, comp), outs):
            if change == "alternating .data" and i >= 3:
                lin.weight.data = arrays[i % 2]
            elif change == "in-place edits" and i % 5 == 4:
                with tl.no_grad():
                    lin.weight.mul_(1.5)
            out.append(step(x))
    for i, (e, c) in enumerate(zip(*outs)):
        assert all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(e, c)), i
    assert comp.stats["replays"] == 39, comp.stats


class _Tied(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Parameter(tl.tensor(np.random.default_rng(0).standard_normal((6, 4)).astype(np.float32)))
        self.b = nn.Parameter(tl.zeros(6))
        self.drop = nn.Dropout(0.25)

    def forward(self, x):
        h = self.drop(x @ self.emb.T)
        h = h.reshape(-1, 2, 3).permute(0, 2, 1).reshape(-1, 6) + self.b.expand(x.shape[0], 6)
        return h @ self.emb + self.emb[0]


def test_tied_weights_with_views_train_bit_identically_through_data_swaps_and_mode_switches():
    """A weight used as emb.T, emb and emb[0], a bias expanded, a planned buffer reshaped and permuted: 30 Adam steps
    with `.data` replaced, eval/train switches and no_grad eval calls in between match eager bit for bit."""
    runs = []
    for compiled in (False, True):
        tl.manual_seed(0)
        m = _Tied()
        run, opt, rng, outs = tl.compile(m) if compiled else m, tl.optim.Adam(m.parameters(), lr=0.05), \
            np.random.default_rng(1), []
        for i in range(30):
            x = tl.tensor(rng.standard_normal((5, 4)).astype(np.float32))
            if i == 12:
                m.emb.data = m.emb.detach().numpy() * 0.5  # a new array for a parameter with cached views
            if i in (18, 21, 24, 27):
                m.train(i in (21, 27))
            if not m.training:
                with tl.no_grad():
                    outs.append(run(x).numpy().copy())
                continue
            opt.zero_grad()
            loss = (run(x) ** 2).mean()
            loss.backward()
            opt.step()
            outs.append(loss.detach().numpy().copy())
        runs.append(outs + [p.detach().numpy().copy() for p in m.parameters()])
    assert all(np.array_equal(a, b) for a, b in zip(*runs)) and run.stats["replays"] >= 26, run.stats
