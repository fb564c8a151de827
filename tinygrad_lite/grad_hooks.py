"""Tensor's gradient hooks: `register_hook`, `retain_grad` / `retains_grad`, the handle a registration returns,
and `_RetainGrad`, the hook retain_grad() keeps last among an entry's hooks (the engine calls them: engine.py
`_call_hooks`). Installed on Tensor when tensor.py loads."""
import weakref

import numpy as np

from .autograd.grad_mode import state
from .tensor import Tensor


def register_hook(self, hook):
    """Call `hook(grad)` when this tensor's gradient is computed; a returned tensor replaces the gradient."""
    if not self.requires_grad:
        raise RuntimeError("register_hook: cannot register a hook on a tensor that does not require grad")
    if self._entry is not None:
        if self._entry.hooks is None:
            self._entry.hooks = []
        hooks = self._entry.hooks
    else:
        if self._hooks is None:
            self._hooks = []
        hooks = self._hooks
    if _retains(hooks):  # retain_grad keeps what all the hooks made, as PyTorch
        hooks.insert(len(hooks) - 1, hook)
    else:
        hooks.append(hook)
    return _HookHandle(hooks, hook)


def retain_grad(self):
    """Keep this non-leaf's gradient in `.grad` at backward (after its hooks; a leaf keeps it anyway)."""
    if not self.requires_grad:
        raise RuntimeError(f"can't retain_grad on Tensor that has requires_grad=False (shape "
                           f"{tuple(self._data.shape)})")
    if self._entry is not None and not self.retains_grad:
        self.register_hook(_RetainGrad(self))


def retains_grad(self):
    e = self._entry
    return e is not None and _retains(e.hooks)


def _retains(hooks):
    """Whether retain_grad's hook is in these hooks of an entry (it is kept last)."""
    return bool(hooks) and hooks[-1].__class__ is _RetainGrad


class _RetainGrad:
    """The last hook of a non-leaf after retain_grad(): accumulates the gradient into its `.grad` (detached unless
    the backward builds a graph), as PyTorch's."""
    __slots__ = ("ref",)

    def __init__(self, t):
        self.ref = weakref.ref(t)

    def __call__(self, g):
        t = self.ref()
        if t is None:
            return None
        if not state.grad_enabled:  # (the engine runs with grad mode = create_graph)
            g = Tensor._wrap(np.array(g._data))
        t._grad = g if t._grad is None else t._grad + g
        return None


class _HookHandle:
    def __init__(self, hooks, hook):
        self._hooks, self._hook = hooks, hook

    def remove(self):
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)


Tensor.register_hook, Tensor.retain_grad = register_hook, retain_grad
Tensor.retains_grad = property(retains_grad)
