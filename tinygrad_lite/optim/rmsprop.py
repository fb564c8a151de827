"""RMSprop with momentum and the centered variant (PyTorch's update)."""
import numpy as np

from .optimizer import Optimizer, _lerp_, check_hyper


class RMSprop(Optimizer):
    """As `torch.optim.RMSprop`: v = alpha*v + (1-alpha)*g^2; avg = sqrt(v - gavg^2 if centered else v) + eps;
    then p -= lr*g/avg, or with momentum buf = momentum*buf + g/avg; p -= lr*buf."""

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False, *,
                 maximize=False):
        check_hyper("lr", lr)
        check_hyper("epsilon", eps)
        check_hyper("momentum", momentum)
        check_hyper("weight_decay", weight_decay)
        check_hyper("alpha", alpha)
        defaults = dict(lr=lr, momentum=momentum, alpha=alpha, eps=eps, centered=centered,
                        weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults)

    def _update(self, group, p, grad, state):
        lr = float(group["lr"])
        alpha = float(group["alpha"])
        eps = float(group["eps"])
        momentum = float(group["momentum"])
        centered = group["centered"]
        if not state:
            state["step"] = self._step_tensor()
            state["square_avg"] = self._zeros_like(p)
            if momentum > 0:
                state["momentum_buffer"] = self._zeros_like(p)
            if centered:
                state["grad_avg"] = self._zeros_like(p)
        for key, needed in (("momentum_buffer", momentum > 0), ("grad_avg", centered)):
            if needed and key not in state:
                raise RuntimeError(f"RMSprop.step: the loaded state has no {key!r}; it was saved with different "
                                   "momentum/centered settings")
        state["step"]._data += 1
        g = self._grad(group, p, grad, float(group["weight_decay"]))
        square_avg = state["square_avg"]._data
        avg = self._scratch(p._data, 1)
        square_avg *= alpha
        np.multiply(g, g, out=avg)
        avg *= 1 - alpha
        square_avg += avg
        if centered:
            grad_avg = state["grad_avg"]._data
            _lerp_(grad_avg, g, 1 - alpha, avg)
            np.multiply(grad_avg, grad_avg, out=avg)
            np.subtract(square_avg, avg, out=avg)
            np.sqrt(avg, out=avg)
        else:
            np.sqrt(square_avg, out=avg)
        avg += eps
        if momentum > 0:
            buf = state["momentum_buffer"]._data
            buf *= momentum
            np.divide(g, avg, out=avg)
            buf += avg
            np.multiply(buf, lr, out=avg)
            p._data -= avg
        else:
            np.divide(g, avg, out=avg)
            avg *= lr
            p._data -= avg
