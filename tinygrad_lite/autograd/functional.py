"""torch.autograd.functional: jacobian, hessian and vjp of a function of Tensors, by reverse mode over the engine.

As PyTorch's: `inputs` is a Tensor or a tuple of Tensors (the result follows: a Tensor, a tuple, or a tuple of
tuples for several outputs and inputs); the inputs are taken off their graph unless `create_graph=True`, and the
results are off the tape unless `create_graph=True`.
"""
import numpy as np

from . import recorder as tape
from .engine import grad
from .grad_mode import enable_grad


def _as_tuple(x, what, fn):
    """(was_a_tuple, tuple of Tensors)."""
    Tensor = tape.Tensor
    if isinstance(x, Tensor):
        return False, (x,)
    if isinstance(x, (tuple, list)) and all(isinstance(t, Tensor) for t in x):
        return True, tuple(x)
    raise TypeError(f"autograd.functional.{fn}: {what} must be a Tensor or a tuple of Tensors, got "
                    f"{type(x).__name__}" + (f" of {[type(t).__name__ for t in x]}" if isinstance(x, (tuple, list))
                                             else ""))


def _variables(inputs, create_graph, fn):
    """The inputs as the function sees them: on the caller's graph (an alias) only under create_graph."""
    out = []
    for i, x in enumerate(inputs):
        if x._data.dtype.kind != "f":
            raise TypeError(f"autograd.functional.{fn}: inputs[{i}] must be floating point to be differentiated, "
                            f"got {x.dtype} of shape {tuple(x.shape)}")
        out.append(x.view_as(x) if create_graph and x.requires_grad else x.detach().requires_grad_(True))
    return tuple(out)


def _result(t, create_graph):
    return t if create_graph else t.detach()


def _or_zeros(g, x, strict, independent):
    """The gradient w.r.t. input x, zeros where the output does not depend on it (an error with `strict`)."""
    if g is not None:
        return g
    if strict:
        raise RuntimeError(f"autograd.functional.{independent} (shape {tuple(x.shape)})")
    return tape.Tensor._wrap(np.zeros_like(x._data))


def _unit(shape, dtype, k):
    e = np.zeros(int(np.prod(shape)), dtype=dtype)
    e[k] = 1
    return tape.Tensor._wrap(e.reshape(shape))


def jacobian(func, inputs, create_graph=False, strict=False, vectorize=False, strategy="reverse-mode"):
    """The Jacobian of `func` at `inputs`: for output i and input j, a Tensor of shape out_i.shape + in_j.shape."""
    from ..shape import stack  # above autograd: imported where used
    if strategy != "reverse-mode":
        raise NotImplementedError(f"autograd.functional.jacobian: strategy={strategy!r} is not supported; "
                                  f"use strategy='reverse-mode' (or tl.func.jacfwd for forward mode)")
    in_tuple, inputs = _as_tuple(inputs, "inputs", "jacobian")
    Tensor = tape.Tensor
    with enable_grad():
        xs = _variables(inputs, create_graph, "jacobian")
        out_tuple, outputs = _as_tuple(func(*xs), "the outputs of the function", "jacobian")
        jac = []
        for i, out in enumerate(outputs):
            rows = [[] for _ in xs]
            for k in range(out._data.size):
                if out.requires_grad:
                    gs = grad(out, xs, grad_outputs=_unit(out._data.shape, out._data.dtype, k), retain_graph=True,
                              create_graph=create_graph, allow_unused=True)
                else:
                    gs = (None,) * len(xs)
                for j, (g, x) in enumerate(zip(gs, xs)):
                    rows[j].append(_or_zeros(g, x, strict, f"jacobian(strict=True): output {i} (shape "
                                                           f"{tuple(out.shape)}) is independent of input {j}"))
            shape = lambda x: tuple(out._data.shape) + tuple(x._data.shape)  # noqa: E731
            jac.append(tuple(_result(stack(r, 0).reshape(shape(x)), create_graph) if r else
                             Tensor._wrap(np.zeros(shape(x), dtype=out._data.dtype)) for r, x in zip(rows, xs)))
    per_out = [j if in_tuple else j[0] for j in jac]
    return tuple(per_out) if out_tuple else per_out[0]


def hessian(func, inputs, create_graph=False, strict=False, vectorize=False, outer_jacobian_strategy="reverse-mode"):
    """The Hessian of a function with one (single-element) output: reverse over reverse, as PyTorch's; a tuple of
    tuples H[i][j] for a tuple of inputs."""
    in_tuple, inputs = _as_tuple(inputs, "inputs", "hessian")

    def scalar(*xs):
        out = func(*xs)
        if not isinstance(out, tape.Tensor) or out._data.size != 1:
            got = f"shape {tuple(out.shape)}" if isinstance(out, tape.Tensor) else type(out).__name__
            raise RuntimeError(f"autograd.functional.hessian: the function must return a Tensor with a single "
                               f"element, got {got}")
        return out.reshape(())

    def jac(*xs):
        return jacobian(scalar, xs, create_graph=True, strict=strict)

    res = jacobian(jac, inputs, create_graph=create_graph, strict=strict, strategy=outer_jacobian_strategy)
    return res if in_tuple else res[0][0]  # (per gradient, per input: both untupled for a single input)


def vjp(func, inputs, v=None, create_graph=False, strict=False):
    """(func(inputs), v^T J): the outputs (off the tape unless create_graph) and one vector-Jacobian product per
    input."""
    in_tuple, inputs = _as_tuple(inputs, "inputs", "vjp")
    Tensor = tape.Tensor
    with enable_grad():
        xs = _variables(inputs, create_graph, "vjp")
        out_tuple, outputs = _as_tuple(func(*xs), "the outputs of the function", "vjp")
        if v is None:
            if any(o._data.size != 1 for o in outputs):
                raise RuntimeError(f"autograd.functional.vjp: v can only be None if the output has a single element; "
                                   f"got outputs of shapes {[tuple(o.shape) for o in outputs]}")
            vs = tuple(Tensor._wrap(np.ones_like(o._data)) for o in outputs)
        else:
            vs = _as_tuple(v, "v", "vjp")[1]
        live = [(o, g) for o, g in zip(outputs, vs) if o.requires_grad]
        gs = grad([o for o, _ in live], xs, grad_outputs=[g for _, g in live], create_graph=create_graph,
                  allow_unused=True) if live else (None,) * len(xs)
        res = []
        for j, (g, x) in enumerate(zip(gs, xs)):
            res.append(_result(_or_zeros(g, x, strict, f"vjp(strict=True): the output is independent of input {j}"),
                               create_graph))
    outs = tuple(_result(o, create_graph) for o in outputs)
    return (outs if out_tuple else outs[0]), (tuple(res) if in_tuple else res[0])
