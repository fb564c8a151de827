"""Stochastic gradient descent with momentum, dampening, Nesterov and weight decay (PyTorch's update)."""
import numpy as np

from ..tensor import Tensor
from .optimizer import Optimizer, check_hyper


class SGD(Optimizer):
    """As `torch.optim.SGD`: g = grad + wd*p; buf = momentum*buf + (1-dampening)*g (buf = g on the first step);
    g = g + momentum*buf (nesterov) or buf; p -= lr*g."""

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, *,
                 maximize=False):
        check_hyper("lr", lr)
        check_hyper("momentum", momentum)
        check_hyper("weight_decay", weight_decay)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening "
                             f"(got momentum={momentum}, dampening={dampening})")
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, maximize=maximize)
        super().__init__(params, defaults)

    def _packs_group(self, group):  # plain SGD is two calls a parameter: packing would add as many
        return group["momentum"] != 0 or group["weight_decay"] != 0 or bool(group.get("maximize"))

    def _step_group(self, group):
        if self._packs_group(group):
            return super()._step_group(group)
        # plain SGD, p -= lr * grad: no per-parameter state (PyTorch keeps none either), so none is looked up
        lr = float(group["lr"])
        for p in group["params"]:
            grad = self._step_grad(p)
            if grad is not None:
                self._descend(p, grad, lr)

    def _descend(self, p, g, lr):
        step = self._scratch(p._data, 1)
        np.multiply(g, lr, out=step)
        p._data -= step

    def _update(self, group, p, grad, state):
        lr = float(group["lr"])
        momentum = float(group["momentum"])
        g = self._grad(group, p, grad, float(group["weight_decay"]))
        if momentum != 0:
            buf_t = state.get("momentum_buffer")
            if buf_t is None:
                state["momentum_buffer"] = buf_t = Tensor(g)  # (a copy of its own)
                buf = buf_t._data
            else:
                buf = buf_t._data
                buf *= momentum
                dampening = float(group["dampening"])
                if dampening == 0:
                    buf += g
                else:
                    tmp = self._scratch(p._data, 1)
                    np.multiply(g, 1 - dampening, out=tmp)
                    buf += tmp
            if group["nesterov"]:
                out = self._scratch(p._data, 0)
                tmp = self._scratch(p._data, 1)
                np.multiply(buf, momentum, out=tmp)
                np.add(g, tmp, out=out)  # g may be `out` itself: elementwise, so aliasing is safe
                g = out
            else:
                g = buf
        self._descend(p, g, lr)
