"""Optimizer tests' shared helpers (tests/test_optim_<topic>.py): a float64 parameter, setting its gradient,
and running an optimizer over a list of gradients."""
import numpy as np

import tinygrad_lite as tl


def param(values, dtype=np.float64):
    return tl.tensor(np.array(values, dtype=dtype), requires_grad=True)


def set_grad(p, g):
    p.grad = tl.tensor(np.array(g, dtype=p.numpy().dtype))


def run(opt_cls, p0, grads, **kw):
    p = param(p0)
    opt = opt_cls([p], **kw)
    for g in grads:
        set_grad(p, g)
        opt.step()
    return p.numpy(), opt
