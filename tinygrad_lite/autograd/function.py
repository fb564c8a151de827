"""User-defined primitives, as torch.autograd.Function: `forward(ctx, *args)` and `backward(ctx, *grads)`, or
(the newer style) `forward(*args)` with `setup_context(ctx, inputs, output)`.

`MyFn.apply(...)` runs `forward` without recording, then records one tape entry named after the class. When
`backward` is written in Tensor operations, double backward works (create_graph records it like any VJP).
Several outputs are recorded as one packed entry followed by slices of it, so the engine stays single-output.
"""
import functools
import inspect

import numpy as np

from . import forward_ad, recorder as tape
from .grad_mode import state, no_grad
from ..compile.hooks import batching_rule, host
from ..ops.registry import Primitive

_TENSOR = object()  # placeholder for a Tensor argument in the recorded argument template


class FunctionCtx:
    """The `ctx` passed to forward and backward."""

    def __init__(self, needs):
        self.needs_input_grad = needs
        self._saved = ()
        self._versions = ()
        self.non_differentiable = set()
        self.materialize_grads = True

    def save_for_backward(self, *tensors):
        self._saved = tensors
        self._versions = tuple(getattr(t, "_version", 0) for t in tensors)

    @property
    def saved_tensors(self):
        for t, v in zip(self._saved, self._versions):
            if t is not None and t._version != v:
                raise RuntimeError(f"a tensor saved with save_for_backward (shape {tuple(t.shape)}) was modified by "
                                   f"an in-place operation: version {t._version}, expected {v}")
        return self._saved

    def mark_non_differentiable(self, *tensors):
        self.non_differentiable.update(id(t) for t in tensors)

    def set_materialize_grads(self, value):
        self.materialize_grads = bool(value)


class _FunctionPrimitive(Primitive):
    """The tape-side view of a Function subclass: replayable (gradcheck) and differentiable (engine)."""
    __slots__ = ("cls",)

    def __init__(self, cls):
        super().__init__(cls.__name__, self._forward_arrays, ("args",), nin=None)
        self.cls = cls
        self.vjp = self._vjp

    def call(self, *args):
        *tensors, template = args
        it = iter(tensors)
        return self.cls.apply(*[next(it) if a is _TENSOR else a for a in template])

    def _forward_arrays(self, *args):
        *arrays, template = args
        with no_grad():
            out = self.call(*[tape.Tensor._wrap(a) for a in arrays], template)
        outs = out if isinstance(out, tuple) else (out,)
        return np.concatenate([o._data.ravel() for o in outs]) if len(outs) > 1 else outs[0]._data

    def _vjp(self, entry, g):
        ctx, shapes, layout = entry.ctx
        Tensor = tape.Tensor
        if len(shapes) == 1:
            grads_out = [g]
        else:
            grads_out, start = [], 0
            for s in shapes:
                n = int(np.prod(s))
                grads_out.append(g[start:start + n].reshape(s))
                start += n
        if layout is not None:  # one gradient per forward output, as PyTorch: the outputs that are not
            # differentiated get zeros of their shape and dtype (None without materialize_grads)
            grads_out = [grads_out[k] if isinstance(k, int) else
                         Tensor._wrap(np.zeros(*k)) if ctx.materialize_grads else None for k in layout]
        result = self.cls.backward(ctx, *grads_out)
        result = result if isinstance(result, tuple) else (result,)
        template = entry.attrs[0]
        n_args = len(template)
        if len(result) < n_args:
            result = result + (None,) * (n_args - len(result))
        elif len(result) > n_args and all(r is None for r in result[n_args:]):
            result = result[:n_args]  # trailing Nones (for forward's defaulted arguments) are allowed, as PyTorch
        if len(result) != n_args:
            raise RuntimeError(f"function {self.name}.backward returned {len(result)} gradients, but forward took "
                               f"{n_args} arguments; return one gradient (or None) per argument")
        grads = []
        for a, r, in zip(template, result):
            if a is not _TENSOR:
                continue
            if r is not None and not isinstance(r, Tensor):
                r = Tensor._wrap(np.asarray(r))
            grads.append(r)
        for i, (r, (shape, _)) in enumerate(zip(grads, entry.in_meta)):
            if r is not None and r._data.shape != shape:
                try:
                    np.broadcast_shapes(r._data.shape, shape)
                    if len(r._data.shape) >= len(shape):
                        continue  # the engine sums a broadcast gradient back to the input's shape
                except ValueError:
                    pass
                raise RuntimeError(f"function {self.name}.backward returned a gradient of shape {r._data.shape} for "
                                   f"input {i} of shape {shape}{entry_where(entry)}")
        return tuple(grads)


def _pack(dt, *arrays):
    """The outputs of a multi-output Function, flattened into one array (the engine stays single-output)."""
    return np.concatenate([a.ravel().astype(dt) for a in arrays])


@batching_rule(_pack)
def _pack_batched(args, batched):
    """vmap's rule for `_pack`: each sample's outputs flattened into one row (vmap of a multi-output Function)."""
    dt, arrays = args[0], args[1:]
    n = next(a.shape[0] for a, b in zip(arrays, batched) if b)
    return np.concatenate([(a if b else np.broadcast_to(a, (n,) + a.shape)).reshape(n, -1).astype(dt)
                           for a, b in zip(arrays, batched)], axis=1)


def entry_where(entry):
    return f" (recorded at {entry.source_path})" if entry.site else ""


class Function:
    """Subclass with static `forward(ctx, *args)` and `backward(ctx, *grad_outputs)`; call `MyFn.apply(...)`."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._primitive = _FunctionPrimitive(cls)

    @staticmethod
    def forward(ctx, *args):
        raise NotImplementedError("Function subclasses must implement forward(ctx, *args)")

    @staticmethod
    def backward(ctx, *grad_outputs):
        raise NotImplementedError("Function subclasses must implement backward(ctx, *grad_outputs)")

    @staticmethod
    def setup_context(ctx, inputs, output):
        """The newer style (as PyTorch's): when a subclass defines it, forward takes no ctx and this saves, from
        the arguments (`inputs`) and forward's result (`output`), what backward needs."""
        raise NotImplementedError

    @staticmethod
    def jvp(ctx, *grad_inputs):
        """Forward mode (optional, as PyTorch's): the outputs' tangents from one tangent per forward argument
        (zeros for a Tensor argument without one, None for other arguments)."""
        raise NotImplementedError

    @classmethod
    def apply(cls, *args, **kwargs):
        Tensor = tape.Tensor
        new_style = cls.setup_context is not Function.setup_context
        if new_style:  # as PyTorch: forward's defaults are bound, so setup_context and backward see every argument
            try:
                bound = inspect.signature(cls.forward).bind(*args, **kwargs)
            except TypeError as exc:
                raise TypeError(f"{cls.__name__}.apply: the arguments do not match "
                                f"forward{inspect.signature(cls.forward)}: {exc}") from None
            bound.apply_defaults()
            args = bound.args
        elif kwargs:
            raise TypeError(f"{cls.__name__}.apply takes positional arguments only (got keyword arguments "
                            f"{sorted(kwargs)}); define setup_context to pass keywords, as PyTorch")
        tensors = tuple(a for a in args if isinstance(a, Tensor))
        needs = tuple(a.requires_grad if isinstance(a, Tensor) else False for a in args)
        ctx = FunctionCtx(needs)
        fw_levels = _forward_levels(cls, tensors) if tape.fw_active else ()
        with no_grad(), forward_ad.levels_off(fw_levels):  # forward mode: the Function's own jvp, below
            if not new_style:
                out = cls.forward(ctx, *args)
            else:
                out = cls.forward(*args)
                cls.setup_context(ctx, args, out)
        if fw_levels:
            return _with_tangents(cls, ctx, args, cls._apply_recorded(ctx, args, tensors, out), fw_levels)
        return cls._apply_recorded(ctx, args, tensors, out)

    @classmethod
    def _apply_recorded(cls, ctx, args, tensors, out):
        Tensor = tape.Tensor
        single = not isinstance(out, (tuple, list))
        outs = [o if isinstance(o, Tensor) else Tensor(np.asarray(o)) for o in ((out,) if single else out)]
        outs = [Tensor._wrap(o._data) for o in outs]  # fresh objects: an input returned as-is stays a leaf
        if not (state.grad_enabled and any(t.requires_grad for t in tensors)):
            return outs[0] if single else tuple(outs)
        diff = [i for i, o in enumerate(outs) if o._data.dtype.kind == "f" and id(out if single else out[i])
                not in ctx.non_differentiable]
        template = tuple(_TENSOR if isinstance(a, Tensor) else a for a in args)
        if not diff:
            return outs[0] if single else tuple(outs)
        shapes = tuple(outs[i]._data.shape for i in diff)
        layout = None if len(diff) == len(outs) else tuple(
            diff.index(i) if i in diff else (o._data.shape, o._data.dtype) for i, o in enumerate(outs))
        if len(diff) == 1:
            tape.record(cls._primitive, tensors, outs[diff[0]], (template,), (ctx, shapes, layout))
        else:
            dt = np.result_type(*[outs[i]._data.dtype for i in diff])
            packed = Tensor._wrap(host(_pack, dt, *[outs[i]._data for i in diff]))
            tape.record(cls._primitive, tensors, packed, (template,), (ctx, shapes, layout))
            start = 0
            for i, s in zip(diff, shapes):
                n = int(np.prod(s))
                outs[i] = packed[start:start + n].reshape(s)
                start += n
        return outs[0] if single else tuple(outs)


def _forward_levels(cls, tensors):
    """The open forward-AD levels at which an input of this Function call has a tangent; an error when the
    Function declares no jvp (as PyTorch)."""
    levels = [lv for lv in forward_ad.open_levels()
              if any(forward_ad.tangent_of(t, lv) is not None for t in tensors)]
    if levels and cls.jvp is Function.jvp:
        raise RuntimeError(f"{cls.__name__}: an input has a forward-mode tangent, but the Function does not "
                           f"implement jvp(ctx, *grad_inputs); define it (as for torch.autograd.Function) to use it "
                           f"in forward mode (jvp, jacfwd, hessian)")
    return levels


def _with_tangents(cls, ctx, args, result, levels):
    """The Function's outputs with their tangents at each level, from `cls.jvp`."""
    Tensor = tape.Tensor
    outs = result if isinstance(result, tuple) else (result,)
    for level in levels:
        tangents = [(forward_ad.tangent_of(a, level) if forward_ad.tangent_of(a, level) is not None
                     else Tensor._wrap(np.zeros_like(a._data))) if isinstance(a, Tensor) else None for a in args]
        with forward_ad.levels_off([level]):
            got = cls.jvp(ctx, *tangents)
        got = got if isinstance(got, tuple) else (got,)
        if len(got) != len(outs):
            raise RuntimeError(f"{cls.__name__}.jvp returned {len(got)} tangents for {len(outs)} outputs")
        for o, t in zip(outs, got):
            if t is not None and o._data.dtype.kind in "fc":
                t = t if isinstance(t, Tensor) else Tensor._wrap(np.asarray(t))
                forward_ad._set_tangent(o, level, forward_ad.conform(t, o, f"{cls.__name__}.jvp"))
    return result


class _DelayedError(Function):
    """Identity on gradients whose own backward raises: what once_differentiable hands back under create_graph."""

    @staticmethod
    def forward(ctx, name, *grads):
        ctx.name = name
        return tuple(g.clone() for g in grads) if len(grads) > 1 else grads[0].clone()

    @staticmethod
    def backward(ctx, *grads):
        raise RuntimeError(f"trying to differentiate twice a function that was marked with @once_differentiable "
                           f"({ctx.name}.backward)")


def once_differentiable(fn):
    """Decorator for a Function's backward written on values that autograd does not track (as PyTorch's): it runs
    under no_grad, and differentiating its result (double backward) raises instead of giving wrong zeros."""
    @functools.wraps(fn)
    def wrapper(ctx, *args):
        with no_grad():
            outputs = fn(ctx, *args)
        Tensor = tape.Tensor
        if not (state.grad_enabled and any(isinstance(a, Tensor) and a.requires_grad for a in args)):
            return outputs
        single = not isinstance(outputs, tuple)
        outs = (outputs,) if single else outputs
        grads = [o for o in outs if isinstance(o, Tensor) and o._data.dtype.kind == "f"]
        if not grads:
            return outputs
        # the gradients were computed off the tape: leaves that require grad, so that _DelayedError is recorded
        wrapped = _DelayedError.apply(fn.__qualname__.split(".")[-2:][0], *[g.detach().requires_grad_() for g in grads])
        it = iter(wrapped if isinstance(wrapped, tuple) else (wrapped,))
        outs = tuple(next(it) if isinstance(o, Tensor) and o._data.dtype.kind == "f" else o for o in outs)
        return outs[0] if single else outs
    return wrapper
