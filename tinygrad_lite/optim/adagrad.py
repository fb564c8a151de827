"""Adagrad with learning-rate decay (PyTorch's update)."""
import numpy as np

from .optimizer import Optimizer, check_hyper


class Adagrad(Optimizer):
    """As `torch.optim.Adagrad`: clr = lr / (1 + (step-1)*lr_decay); sum += g^2; p -= clr*g/(sqrt(sum)+eps)."""

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0, eps=1e-10, *,
                 maximize=False):
        check_hyper("lr", lr)
        check_hyper("lr_decay", lr_decay)
        check_hyper("weight_decay", weight_decay)
        check_hyper("initial_accumulator_value", initial_accumulator_value)
        check_hyper("epsilon", eps)
        defaults = dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, maximize=maximize)
        super().__init__(params, defaults)
        for group in self.param_groups:  # PyTorch creates Adagrad's state eagerly
            for p in group["params"]:
                self._init_state(group, p, self.state[p])

    def _init_state(self, group, p, state):
        state["step"] = self._step_tensor()
        state["sum"] = self._zeros_like(p, float(group["initial_accumulator_value"]))

    def _update(self, group, p, grad, state):
        if not state:
            self._init_state(group, p, state)
        step_t = state["step"]._data
        step_t += 1
        step = float(step_t)
        clr = float(group["lr"]) / (1 + (step - 1) * float(group["lr_decay"]))
        g = self._grad(group, p, grad, float(group["weight_decay"]))
        total = state["sum"]._data
        std = self._scratch(p._data, 1)
        np.multiply(g, g, out=std)
        total += std
        np.sqrt(total, out=std)
        std += float(group["eps"])
        np.divide(g, std, out=std)
        std *= clr
        p._data -= std
