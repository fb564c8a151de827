"""Module full backward hooks (nn.Module.register_full_backward_hook), as PyTorch's BackwardHook: the module's
tensor inputs and outputs pass through an identity Function each; the outputs' one keeps the gradients w.r.t.
the outputs, the inputs' one calls the hooks with both, once, and passes on what they return. Kept here, beside
Function, so that nn/ stays compositions only."""
import warnings

from . import recorder as tape
from .function import Function
from .grad_mode import state as _grad_state


class _BackwardHookFunction(Function):
    """Identity on the tensors; backward hands their gradients to the BackwardHook."""

    @staticmethod
    def forward(ctx, hook, side, *tensors):
        ctx.hook, ctx.side = hook, side
        return tensors

    @staticmethod
    def backward(ctx, *grads):
        if ctx.side == "outputs":
            ctx.hook.outputs_done(grads)
            return (None, None) + grads
        return (None, None) + ctx.hook.inputs_done(grads)

    @staticmethod
    def jvp(ctx, hook, side, *tangents):
        return tuple(tangents)


class BackwardHook:
    """One module call's hooks: `setup_inputs(args)` before forward, `setup_outputs(out)` after it."""

    def __init__(self, module, hooks):
        self.module, self.hooks = module, hooks
        self.n_inputs, self.input_index, self.output_index, self.grad_outputs = 0, None, None, None

    @staticmethod
    def _tracked(x):
        return isinstance(x, tape.Tensor) and x.requires_grad

    def _wrap(self, values, side):
        index = [i for i, x in enumerate(values) if self._tracked(x)]
        if not index or not _grad_state.grad_enabled:
            return values, None
        new = _BackwardHookFunction.apply(self, side, *[values[i] for i in index])
        values = list(values)
        for i, t in zip(index, new):
            values[i] = t
        return tuple(values), index

    def setup_inputs(self, args):
        self.n_inputs = len(args)
        args, self.input_index = self._wrap(args, "inputs")
        return args

    def setup_outputs(self, out):
        single = isinstance(out, tape.Tensor)
        outs = (out,) if single else out
        if not isinstance(outs, tuple):
            return out  # (other structures: no gradient w.r.t. the outputs to report, as PyTorch)
        self.n_outputs = len(outs)
        outs, self.output_index = self._wrap(outs, "outputs")
        return outs[0] if single else outs

    def _packed(self, index, grads, n):
        full = [None] * n
        for i, g in zip(index, grads):
            full[i] = g
        return tuple(full)

    def outputs_done(self, grads):
        self.grad_outputs = self._packed(self.output_index, grads, self.n_outputs)
        if self.input_index is None:  # no input requires grad: the hooks fire now, as PyTorch
            warnings.warn(f"Full backward hook on {type(self.module).__name__} is firing when gradients are computed "
                          f"with respect to module outputs since no inputs require gradients", UserWarning)
            grad_inputs = (None,) * self.n_inputs
            for hook in list(self.hooks.values()):
                res = hook(self.module, grad_inputs, self.grad_outputs)
                if res is not None and not (isinstance(res, tuple) and all(r is None for r in res)):
                    raise RuntimeError(f"backward hook of {type(self.module).__name__}: for a module where no input "
                                       f"requires gradient the hook must return None (or None for every gradient)")
            self.grad_outputs = None

    def inputs_done(self, grads):
        grad_inputs = self._packed(self.input_index, grads, self.n_inputs)
        grad_outputs = self.grad_outputs if self.grad_outputs is not None else (None,) * getattr(self, "n_outputs", 0)
        for hook in list(self.hooks.values()):
            res = hook(self.module, grad_inputs, grad_outputs)
            if res is None:
                continue
            res = tuple(res) if isinstance(res, (tuple, list)) else (res,)
            if len(res) != len(grad_inputs):
                raise RuntimeError(f"backward hook of {type(self.module).__name__} returned {len(res)} gradients, "
                                   f"expected {len(grad_inputs)} (one per positional input of forward)")
            for i, (r, g) in enumerate(zip(res, grad_inputs)):
                if r is not None and g is not None and tuple(r.shape) != tuple(g.shape):
                    raise RuntimeError(f"backward hook of {type(self.module).__name__} returned a gradient of shape "
                                       f"{tuple(r.shape)} for input {i} of shape {tuple(g.shape)}")
            grad_inputs = res
        self.grad_outputs = None
        return tuple(grad_inputs[i] for i in self.input_index)
