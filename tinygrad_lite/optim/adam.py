"""Adam (with AMSGrad) and AdamW, PyTorch's updates with bias correction."""
import math

import numpy as np

from ..tensor import Tensor
from .optimizer import Optimizer, _lerp_, check_hyper


class Adam(Optimizer):
    """As `torch.optim.Adam`; `decoupled_weight_decay=True` gives AdamW."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, *,
                 maximize=False, decoupled_weight_decay=False):
        check_hyper("lr", lr)
        check_hyper("epsilon", eps)
        try:
            beta1, beta2 = betas
        except (TypeError, ValueError):
            raise TypeError(f"betas must be a pair of floats (beta1, beta2), got {betas!r}") from None
        for i, b in enumerate((beta1, beta2)):
            if not isinstance(b, (int, float, np.floating, np.integer)) or not 0.0 <= b < 1.0:
                raise ValueError(f"Invalid beta parameter at index {i}: {b}")
        check_hyper("weight_decay", weight_decay)
        defaults = dict(lr=lr, betas=(float(beta1), float(beta2)), eps=eps, weight_decay=weight_decay,
                        amsgrad=amsgrad, maximize=maximize, decoupled_weight_decay=decoupled_weight_decay)
        super().__init__(params, defaults)

    def _update(self, group, p, grad, state):
        lr = float(group["lr"])
        beta1, beta2 = (float(b) for b in group["betas"])
        eps = float(group["eps"])
        wd = float(group["weight_decay"])
        amsgrad = group["amsgrad"]
        if not state:
            state["step"] = self._step_tensor()
            state["exp_avg"] = self._zeros_like(p)
            state["exp_avg_sq"] = self._zeros_like(p)
            if amsgrad:
                state["max_exp_avg_sq"] = self._zeros_like(p)
        elif amsgrad and "max_exp_avg_sq" not in state:
            raise RuntimeError("Adam.step: amsgrad=True but the loaded state has no 'max_exp_avg_sq' "
                               "(the state dict was saved with amsgrad=False)")
        step_t = state["step"]._data
        step_t += 1
        step = float(step_t)
        decoupled = group.get("decoupled_weight_decay", False)
        if wd != 0 and decoupled:
            p._data *= 1 - lr * wd
        g = self._grad(group, p, grad, 0.0 if decoupled else wd)
        m = state["exp_avg"]._data
        v = state["exp_avg_sq"]._data
        tmp = self._scratch(p._data, 1)
        _lerp_(m, g, 1 - beta1, tmp)
        v *= beta2
        np.multiply(g, g, out=tmp)
        tmp *= 1 - beta2
        v += tmp
        bias_correction1 = 1 - beta1 ** step
        bias_correction2_sqrt = math.sqrt(1 - beta2 ** step)
        step_size = lr / bias_correction1
        if isinstance(group["lr"], Tensor):  # as PyTorch, which divides the tensor: the step size in its dtype
            dtype = group["lr"]._data.dtype.type
            step_size = float(dtype(lr) / dtype(bias_correction1))
        if amsgrad:
            vmax = state["max_exp_avg_sq"]._data
            np.maximum(vmax, v, out=vmax)
            v = vmax
        denom = tmp
        np.sqrt(v, out=denom)
        denom /= bias_correction2_sqrt
        denom += eps
        np.divide(m, denom, out=denom)
        denom *= -step_size
        p._data += denom


class AdamW(Adam):
    """As `torch.optim.AdamW`: Adam with decoupled weight decay p *= 1 - lr*weight_decay (default 1e-2)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
                 maximize=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize,
                         decoupled_weight_decay=True)

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        for group in self.param_groups:
            group["decoupled_weight_decay"] = True
