"""torch.autograd.functional: jacobian, hessian, vjp, jvp, vhp and hvp of a function of Tensors, by reverse mode
over the engine (jvp and hvp by torch's double-backward trick, with its strict-mode checks and messages).

As PyTorch's: `inputs` is a Tensor or a tuple of Tensors (the result follows: a Tensor, a tuple, or a tuple of
tuples for several outputs and inputs); the inputs are taken off their graph unless `create_graph=True`, and the
results are off the tape unless `create_graph=True`.
"""
import numpy as np

from . import recorder as tape
from .engine import grad
from .grad_mode import enable_grad
from ..compile.hooks import constant


def _const(arr):
    """A tensor of zeros, ones or a unit vector fixed by shapes: a constant tl.compile replays as it is."""
    return tape.Tensor._wrap(constant(arr))


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
    return _const(np.zeros_like(x._data))


def _unit(shape, dtype, k):
    e = np.zeros(int(np.prod(shape)), dtype=dtype)
    e[k] = 1
    return _const(e.reshape(shape))


def jacobian(func, inputs, create_graph=False, strict=False, vectorize=False, strategy="reverse-mode"):
    """The Jacobian of `func` at `inputs`: for output i and input j, a Tensor of shape out_i.shape + in_j.shape."""
    from ..shape import stack  # above autograd: imported where used
    if strategy != "reverse-mode":
        raise NotImplementedError(f"autograd.functional.jacobian: strategy={strategy!r} is not supported; "
                                  f"use strategy='reverse-mode' (or tl.func.jacfwd for forward mode)")
    in_tuple, inputs = _as_tuple(inputs, "inputs", "jacobian")
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
                             _const(np.zeros(shape(x), dtype=out._data.dtype)) for r, x in zip(rows, xs)))
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
    with enable_grad():
        xs = _variables(inputs, create_graph, "vjp")
        out_tuple, outputs = _as_tuple(func(*xs), "the outputs of the function", "vjp")
        if v is None:
            if any(o._data.size != 1 for o in outputs):
                raise RuntimeError(f"autograd.functional.vjp: v can only be None if the output has a single element; "
                                   f"got outputs of shapes {[tuple(o.shape) for o in outputs]}")
            vs = tuple(_const(np.ones_like(o._data)) for o in outputs)
        else:
            vs = _vectors(v, outputs, out_tuple, create_graph, "vjp")
        live = [(o, g) for o, g in zip(outputs, vs) if o.requires_grad]
        gs = grad([o for o, _ in live], xs, grad_outputs=[g for _, g in live], create_graph=create_graph,
                  allow_unused=True) if live else (None,) * len(xs)
        res = []
        for j, (g, x) in enumerate(zip(gs, xs)):
            res.append(_result(_or_zeros(g, x, strict, f"vjp(strict=True): the output is independent of input {j}"),
                               create_graph))
    outs = tuple(_result(o, create_graph) for o in outputs)
    return (outs if out_tuple else outs[0]), (tuple(res) if in_tuple else res[0])


# ---------------- jvp, vhp, hvp: torch's double-backward trick and its strict-mode checks ----------------
def _vectors(v, refs, refs_tuple, create_graph, fn):
    """`v` as a tuple matching `refs` (the inputs, or for vjp the outputs) in number and shapes, off the graph
    unless create_graph; None only where each ref has a single element (then ones)."""
    if v is None:
        if len(refs) != 1 or refs[0]._data.size != 1:
            raise RuntimeError(f"autograd.functional.{fn}: the vector v can only be None if the input to the "
                               f"user-provided function is a single Tensor with a single element; got inputs of "
                               f"shapes {[tuple(r.shape) for r in refs]}")
        return (_const(np.ones_like(refs[0]._data)),)
    vs = _as_tuple(v, "v", fn)[1]
    if len(vs) != len(refs):
        raise RuntimeError(f"autograd.functional.{fn}: v is a tuple of invalid length: should be {len(refs)} but got "
                           f"{len(vs)}." if refs_tuple else f"autograd.functional.{fn}: the given v should contain a "
                           f"single Tensor, got {len(vs)}.")
    for i, (a, r) in enumerate(zip(vs, refs)):
        if tuple(a.shape) != tuple(r.shape):
            where = f"Entry {i} in v" if refs_tuple else "v"
            raise RuntimeError(f"autograd.functional.{fn}: {where} has invalid size: should be {tuple(r.shape)} but "
                               f"got {tuple(a.shape)}.")
    return tuple(a.view_as(a) if create_graph and a.requires_grad else a.detach() for a in vs)


_NEEDS_GRAD = {
    "outputs": "Output {i} of the user-provided function does not require gradients. The outputs must be computed "
               "in a differentiable manner from the input when running in strict mode.",
    "grad_inputs": "The gradient with respect to input {i} is independent of the inputs of the user-provided "
                   "function. This is not allowed in strict mode.",
    "jacobian": "While computing the hessian, found that the jacobian of the user-provided function with respect to "
                "input {i} is independent of the input. This is not allowed in strict mode. You should ensure that "
                "your function is twice differentiable and that the jacobian depends on the inputs (this would be "
                "violated by a linear function for example).",
    "hessian": "The hessian of the user-provided function with respect to input {i} is independent of the input. "
               "This is not allowed in strict mode. You should ensure that your function is thrice differentiable "
               "and that the hessian depends on the inputs.",
}


def _check_requires_grad(tensors, kind, strict, fn):
    """torch's strict-mode checks: every tensor present and on the graph."""
    if not strict:
        return
    for i, t in enumerate(tensors):
        if t is None:
            raise RuntimeError(f"autograd.functional.{fn}(strict=True): The output of the user-provided function is "
                               f"independent of input {i}. This is not allowed in strict mode.")
        if not t.requires_grad:
            raise RuntimeError(f"autograd.functional.{fn}(strict=True): " + _NEEDS_GRAD[kind].format(i=i))


_INDEPENDENT = {
    "back": "The output of the user-provided function is independent of input {i}. This is not allowed in strict "
            "mode.",
    "back_trick": "The gradient with respect to the input is independent of entry {i} in the grad_outputs when "
                  "using the double backward trick to compute forward mode gradients. This is not allowed in strict "
                  "mode.",
    "double_back": "The jacobian of the user-provided function is independent of input {i}. This is not allowed in "
                   "strict mode.",
    "double_back_trick": "The hessian of the user-provided function is independent of entry {i} in the "
                         "grad_jacobian. This is not allowed in strict mode as it prevents from using the double "
                         "backward trick to replace forward mode AD.",
}


def _fill_in_zeros(grads, refs, strict, create_graph, stage, fn):
    out = []
    for i, (g, ref) in enumerate(zip(grads, refs)):
        if g is None:
            if strict:
                raise RuntimeError(f"autograd.functional.{fn}(strict=True): " + _INDEPENDENT[stage].format(i=i))
            g = _const(np.zeros_like(ref._data))
        elif strict and create_graph and not g.requires_grad:
            what = "hessian" if "double" in stage else "jacobian"
            raise RuntimeError(f"autograd.functional.{fn}(strict=True): The {what} of the user-provided function is "
                               f"independent of input {i}. This is not allowed in strict mode when create_graph=True.")
        out.append(g)
    return tuple(out)


def _grad_of_live(outputs, inputs, grad_outputs, create_graph):
    """autograd.grad over the outputs that are on the graph (None entries and constants skipped, as torch's
    `_autograd_grad`): one gradient or None per input."""
    live = [(o, g) for o, g in zip(outputs, grad_outputs) if o is not None and o.requires_grad]
    if not live:
        return (None,) * len(inputs)
    return grad([o for o, _ in live], list(inputs), grad_outputs=[g for _, g in live], create_graph=create_graph,
                allow_unused=True)


def _zeros_on_graph(refs):
    return tuple(_const(np.zeros_like(r._data)).requires_grad_(True) for r in refs)


def _finish(outputs, results, out_tuple, res_tuple, create_graph):
    outs = tuple(_result(o, create_graph) for o in outputs)
    res = tuple(_result(r, create_graph) for r in results)
    return (outs if out_tuple else outs[0]), (res if res_tuple else res[0])


def jvp(func, inputs, v=None, create_graph=False, strict=False):
    """(func(inputs), J v): the outputs and the Jacobian-vector product (shaped like the outputs), by the double
    backward trick as torch.autograd.functional.jvp (tl.func.jvp is the forward-mode one)."""
    in_tuple, inputs = _as_tuple(inputs, "inputs", "jvp")
    with enable_grad():
        xs = _variables(inputs, create_graph, "jvp")
        vs = _vectors(v, xs, in_tuple, create_graph, "jvp")
        out_tuple, outputs = _as_tuple(func(*xs), "the outputs of the function", "jvp")
        _check_requires_grad(outputs, "outputs", strict, "jvp")
        # backward is linear in grad_outputs: their value (zeros) never shows; only the graph through them does
        grad_outputs = _zeros_on_graph(outputs)
        grad_inputs = _grad_of_live(outputs, xs, grad_outputs, create_graph=True)
        _check_requires_grad(grad_inputs, "grad_inputs", strict, "jvp")
        res = _grad_of_live(grad_inputs, grad_outputs, vs, create_graph)
        res = _fill_in_zeros(res, outputs, strict, create_graph, "back_trick", "jvp")
    return _finish(outputs, res, out_tuple, out_tuple, create_graph)


def _second_order(func, inputs, v, create_graph, strict, fn):
    in_tuple, inputs = _as_tuple(inputs, "inputs", fn)
    xs = _variables(inputs, create_graph, fn)
    vs = _vectors(v, xs, in_tuple, create_graph, fn)
    out_tuple, outputs = _as_tuple(func(*xs), "the outputs of the function", fn)
    _check_requires_grad(outputs, "outputs", strict, fn)
    if out_tuple:
        raise RuntimeError(f"autograd.functional.{fn}: The function given to {fn} should return a single Tensor, "
                           f"got a tuple of {len(outputs)}")
    if outputs[0]._data.size != 1:
        raise RuntimeError(f"autograd.functional.{fn}: The Tensor returned by the function given to {fn} should "
                           f"contain a single element, got shape {tuple(outputs[0].shape)}")
    ones = (_const(np.ones_like(outputs[0]._data)),)
    jac = _grad_of_live(outputs, xs, ones, create_graph=True)
    _check_requires_grad(jac, "jacobian", strict, fn)
    return in_tuple, xs, vs, outputs, jac


def vhp(func, inputs, v=None, create_graph=False, strict=False):
    """(func(inputs), v^T H) for a function with a single-element output: shaped like the inputs."""
    with enable_grad():
        in_tuple, xs, vs, outputs, jac = _second_order(func, inputs, v, create_graph, strict, "vhp")
        res = _grad_of_live(jac, xs, vs, create_graph)
        res = _fill_in_zeros(res, xs, strict, create_graph, "double_back", "vhp")
    return _finish(outputs, res, False, in_tuple, create_graph)


def hvp(func, inputs, v=None, create_graph=False, strict=False):
    """(func(inputs), H v) for a function with a single-element output, by the double backward trick as torch's
    (equal to vhp for twice continuously differentiable functions, whose Hessian is symmetric)."""
    with enable_grad():
        in_tuple, xs, vs, outputs, jac = _second_order(func, inputs, v, create_graph, strict, "hvp")
        grad_jac = _zeros_on_graph(xs)
        double_back = _grad_of_live(jac, xs, grad_jac, create_graph=True)
        _check_requires_grad(jac, "hessian", strict, "hvp")  # (torch checks jac here, not double_back)
        res = _grad_of_live(double_back, grad_jac, vs, create_graph)
        res = _fill_in_zeros(res, xs, strict, create_graph, "double_back_trick", "hvp")
    return _finish(outputs, res, False, in_tuple, create_graph)
