"""tinygrad_lite versions of the workloads, written against the public API only (API.md), as a user would.

tl.nn is imported per workload, so W1/W5 run with the core engine alone.
"""
import numpy as np

import tinygrad_lite as tl

from .workloads import chain_constants

NOTE = None  # set when a workload had to fall back to something other than the obvious layer


def set_threads(n):
    """tinygrad_lite runs on NumPy, whose BLAS threads are fixed by the environment the harness sets."""


def _abs_sum(g):
    return float(np.abs(np.asarray(g.numpy())).sum())


def _load(param, array):
    param.data = np.array(array, copy=True)


class _Case:
    """step() is run(*self.args): one iteration as a function of its inputs. compute(*args) is that iteration
    keeping nothing (what impl_tl_compiled compiles), returning (loss, leaves whose gradient check() reads); run()
    keeps them on the case for check()."""
    compiled_out = None  # the compiled step's last result, (loss value, the leaves' gradients): impl_tl_compiled

    def step(self):
        return self.run(*self.args)

    def run(self, *args):
        self.loss, *self.leaves = self.compute(*args)
        return self.loss

    def check(self):
        if self.compiled_out is not None:
            loss, *grads = self.compiled_out
            return loss, _abs_sum(self._grad(grads))
        return float(self.loss.item()), _abs_sum(self._grad([t.grad for t in self.leaves]))


class Chain(_Case):
    def __init__(self, d, p):
        self.x0, self.ops = d["x0"], [chain_constants(i) for i in range(p["n_ops"])]
        self.args = (self.x0,)

    def compute(self, x0):
        x = tl.tensor(x0, requires_grad=True)  # a copy of x0, as torch.tensor makes
        y = x
        for kind, c in self.ops:
            if kind == "mul":
                y = y * c
            elif kind == "add":
                y = y + c
            else:
                y = y.tanh()
        loss = y.sum()
        loss.backward()
        return loss, x

    def _grad(self, grads):
        return grads[0]  # (x's)


def _nn():
    from tinygrad_lite import nn

    return nn


def _cross_entropy():
    from tinygrad_lite.nn import functional as F

    return F.cross_entropy


class _Trainer(_Case):
    def compute(self, x, y):
        self.opt.zero_grad()
        loss = self.cross_entropy(self.model(x), y)
        loss.backward()
        self.opt.step()
        return (loss,)

    def _grad(self, grads):
        return self.first.grad


class MLP(_Trainer):
    def __init__(self, d, p):
        w, nn = p["width"], _nn()
        self.model = nn.Sequential(nn.Linear(784, w), nn.ReLU(), nn.Linear(w, w), nn.ReLU(), nn.Linear(w, 10))
        for i, idx in zip((1, 2, 3), (0, 2, 4)):
            _load(self.model[idx].weight, d[f"w{i}"])
            _load(self.model[idx].bias, d[f"b{i}"])
        self.args = (tl.tensor(d["x"]), tl.tensor(d["y"]))
        self.opt = tl.optim.SGD(self.model.parameters(), lr=d["lr"])
        self.cross_entropy = _cross_entropy()
        self.first = self.model[0].weight


class CNN(_Trainer):
    def __init__(self, d, p):
        nn = _nn()
        self.model = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(784, 10))
        for idx, (wk, bk) in zip((0, 3, 7), (("c1w", "c1b"), ("c2w", "c2b"), ("fw", "fb"))):
            _load(self.model[idx].weight, d[wk])
            _load(self.model[idx].bias, d[bk])
        self.args = (tl.tensor(d["x"]), tl.tensor(d["y"]))
        self.opt = tl.optim.SGD(self.model.parameters(), lr=d["lr"])
        self.cross_entropy = _cross_entropy()
        self.first = self.model[0].weight


class LSTM(_Case):
    """tl.nn.LSTM when it exists; otherwise an LSTM cell written in tensor ops (reported in the note)."""

    def __init__(self, d, p):
        global NOTE
        nn = _nn()
        self.H = p["hidden"]
        self.args = (tl.tensor(d["x"]),)
        if hasattr(nn, "LSTM"):
            self.lstm = nn.LSTM(p["input"], p["hidden"])
            for k in ("w_ih", "w_hh", "b_ih", "b_hh"):
                kind, which = k.split("_")
                _load(getattr(self.lstm, f"{'weight' if kind == 'w' else 'bias'}_{which}_l0"), d[k])
            self.params = [self.lstm.weight_ih_l0]
        else:
            NOTE = "tl.nn.LSTM missing: hand-written cell"
            self.lstm = None
            self.params = [tl.tensor(d[k].copy(), requires_grad=True) for k in ("w_ih", "w_hh", "b_ih", "b_hh")]

    def _cell_forward(self, x):
        w_ih, w_hh, b_ih, b_hh = self.params
        T, B, I = x.shape
        H = self.H
        xw = (x.reshape(T * B, I) @ w_ih.T + b_ih + b_hh).reshape(T, B, 4 * H)
        h = tl.zeros((B, H))
        c = tl.zeros((B, H))
        for t in range(T):
            gates = xw[t] + h @ w_hh.T
            i, f = gates[:, :H].sigmoid(), gates[:, H:2 * H].sigmoid()
            g, o = gates[:, 2 * H:3 * H].tanh(), gates[:, 3 * H:].sigmoid()
            c = f * c + i * g
            h = o * c.tanh()
        return h

    def compute(self, x):
        if self.lstm is not None:
            self.lstm.zero_grad()
            _, (h_n, _) = self.lstm(x)
            h_last = h_n[-1]
        else:
            for prm in self.params:
                prm.grad = None
            h_last = self._cell_forward(x)
        loss = (h_last ** 2).sum()
        loss.backward()
        return (loss,)

    def _grad(self, grads):
        return self.params[0].grad


def build(wid, data, params):
    cls = {"W1": Chain, "W5": Chain, "W2": MLP, "W6": MLP, "W3": CNN, "W4": LSTM}[wid]
    return cls(data, params)
