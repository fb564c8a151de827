"""PyTorch CPU versions of the workloads: idiomatic modules, autograd and optim, loaded with the shared weights."""
import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from .workloads import chain_constants


def set_threads(n):
    if n is not None:
        torch.set_num_threads(n)


def _t(a):
    return torch.from_numpy(np.array(a, copy=True))


def _abs_sum(g):
    return float(g.detach().abs().sum())


class _Case:
    """step() is run(*self.args): one iteration as a function of its inputs (what impl_*_compile*.py compile)."""

    def step(self):
        return self.run(*self.args)


class Chain(_Case):
    def __init__(self, d, p):
        self.x0, self.ops = d["x0"], [chain_constants(i) for i in range(p["n_ops"])]
        self.args = (self.x0,)

    def run(self, x0):
        x = _t(x0).requires_grad_()
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
        self.loss, self.x = loss, x
        return loss

    def check(self):
        return float(self.loss), _abs_sum(self.x.grad)


class _Trainer(_Case):
    """Shared step for the classifier workloads: zero_grad, forward, cross-entropy, backward, SGD step."""

    def run(self, x, y):
        self.opt.zero_grad()
        loss = F.cross_entropy(self.model(x), y)
        loss.backward()
        self.opt.step()
        self.loss = loss
        return loss

    def check(self):
        return float(self.loss), _abs_sum(self.first.grad)


class MLP(_Trainer):
    def __init__(self, d, p):
        w = p["width"]
        self.model = nn.Sequential(nn.Linear(784, w), nn.ReLU(), nn.Linear(w, w), nn.ReLU(), nn.Linear(w, 10))
        with torch.no_grad():
            for i, idx in zip((1, 2, 3), (0, 2, 4)):
                self.model[idx].weight.copy_(_t(d[f"w{i}"]))
                self.model[idx].bias.copy_(_t(d[f"b{i}"]))
        self.args = (_t(d["x"]), _t(d["y"]))
        self.opt = torch.optim.SGD(self.model.parameters(), lr=d["lr"])
        self.first = self.model[0].weight


class CNN(_Trainer):
    def __init__(self, d, p):
        self.model = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(784, 10))
        with torch.no_grad():
            for idx, (wk, bk) in zip((0, 3, 7), (("c1w", "c1b"), ("c2w", "c2b"), ("fw", "fb"))):
                self.model[idx].weight.copy_(_t(d[wk]))
                self.model[idx].bias.copy_(_t(d[bk]))
        self.args = (_t(d["x"]), _t(d["y"]))
        self.opt = torch.optim.SGD(self.model.parameters(), lr=d["lr"])
        self.first = self.model[0].weight


class LSTM(_Case):
    def __init__(self, d, p):
        self.lstm = nn.LSTM(p["input"], p["hidden"])
        with torch.no_grad():
            for k in ("w_ih", "w_hh", "b_ih", "b_hh"):
                kind, which = k.split("_")
                getattr(self.lstm, f"{'weight' if kind == 'w' else 'bias'}_{which}_l0").copy_(_t(d[k]))
        self.args = (_t(d["x"]),)

    def run(self, x):
        self.lstm.zero_grad()
        _, (h_n, _) = self.lstm(x)
        loss = (h_n[-1] ** 2).sum()
        loss.backward()
        self.loss = loss
        return loss

    def check(self):
        return float(self.loss), _abs_sum(self.lstm.weight_ih_l0.grad)


def build(wid, data, params):
    cls = {"W1": Chain, "W5": Chain, "W2": MLP, "W6": MLP, "W3": CNN, "W4": LSTM}[wid]
    return cls(data, params)
