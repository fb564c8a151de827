"""Small parameters of a group updated as one flat parameter (`Optimizer.step`).

An update is NumPy calls on whole arrays, ~15 per parameter for Adam; on small parameters (biases, norms, the layers
of a narrow MLP) each call costs more than its arithmetic, and a step of a 14-layer MLP spent more time in Adam than
in its compiled forward and backward. Every update here is elementwise, with scalars shared by the group (a learning
rate, a step count): run once on the concatenation of the parameters, their gradients and their state, it gives each
parameter exactly the numbers its own update would, in one set of calls for the whole group.

The parameters' state tensors hold views of the flat state, so `optimizer.state[p]` stays the live state (as PyTorch's)
and `state_dict()` reads it. Anything a step cannot take as packed (a state replaced by load_state_dict, step counts that
differ, a new set of parameters with gradients) is packed again or updated one parameter at a time.
"""
import numpy as np

from ..autograd.engine import _buffer_id
from ..tensor import Tensor

PACK_MAX = 1 << 14  # elements: larger parameters are updated alone (their calls are worth their arithmetic, and
#                    packing would add a gather and a scatter pass over them)


class Packed:
    """The flat parameter `_update` sees (`_data`: the values, gathered before and scattered after each update) with
    its gradient and state, and per parameter the views its state entries must hold."""
    __slots__ = ("group", "params", "shapes", "bounds", "_data", "grad", "state", "views", "scalars", "ids", "arrays")

    def __init__(self, group, params, dtype):
        self.group, self.params = group, params
        self.ids = tuple(map(id, params))
        self.shapes = [p._data.shape for p in params]
        # every parameter's array of the group when packed: `p.data = ...` since (another dtype, a view of another
        # parameter) must be checked by packable() again, and a re-pack is what checks it
        self.arrays = [p._data for p in group["params"]]
        sizes = [p._data.size for p in params]
        self.bounds = list(zip(np.cumsum([0] + sizes[:-1]).tolist(), np.cumsum(sizes).tolist()))
        self._data = np.empty(sum(sizes), dtype)
        self.grad = np.empty(sum(sizes), dtype)
        self.state, self.views, self.scalars = {}, [{} for _ in params], {}

    def holds(self, group, params, states):
        """Whether this pack is still the state of `params` (the same tensors with gradients, shapes and state)."""
        if group is not self.group or tuple(map(id, params)) != self.ids or len(group["params"]) != len(self.arrays):
            return False
        for p, a in zip(group["params"], self.arrays):
            if p._data is not a:
                return False
        for p, shape, views, state in zip(params, self.shapes, self.views, states):
            if p._data.shape != shape or len(state) != len(views):
                return False
            for key, view in views.items():
                t = state.get(key)
                if t is None or t.__class__ is not Tensor or t._data is not view:
                    return False
        for key, per_param in self.scalars.items():  # (each parameter's own step count, all equal to the pack's)
            value = self.state[key]._data
            if per_param.min() != value or per_param.max() != value:
                return False
        return True

    def update(self, opt, grads, states):
        first = not self.state
        np.concatenate([p._data.reshape(-1) for p in self.params], out=self._data)
        np.concatenate([g.reshape(-1) for g in grads], out=self.grad)
        opt._update(self.group, self, self.grad, self.state)
        if first:
            self._share(states)
        for key, per_param in self.scalars.items():
            per_param[...] = self.state[key]._data
        for p, (lo, hi), shape in zip(self.params, self.bounds, self.shapes):
            np.copyto(p._data, self._data[lo:hi].reshape(shape))

    def adopt(self, states):
        """Take the parameters' existing state (all of one kind, else False): copied into the pack, then shared."""
        keys = set(states[0])
        if any(set(s) != keys for s in states):
            return False
        for key in keys:
            arrays = [s[key]._data if s[key].__class__ is Tensor else None for s in states]
            if any(a is None for a in arrays) or len({id(s[key]) for s in states}) < len(states):
                return False  # (not tensors; one tensor in two parameters' state, which each update would change)
            if all(a.shape == shape and a.dtype == self._data.dtype for a, shape in zip(arrays, self.shapes)):
                self.state[key] = Tensor._wrap(np.concatenate([a.reshape(-1) for a in arrays]))
            elif all(a.ndim == 0 and a.dtype == arrays[0].dtype and a == arrays[0] for a in arrays):
                self.state[key] = Tensor._wrap(arrays[0].copy())
            else:  # (step counts that differ: a parameter skipped a step)
                return False
        self._share(states)
        return True

    def _share(self, states):
        """Point each parameter's state at its part of the pack's (the same Tensor objects where they exist)."""
        for key, t in self.state.items():
            flat = t._data
            if flat.ndim == 0:
                per_param = self.scalars[key] = np.full(len(self.params), flat, flat.dtype)
            for i, ((lo, hi), shape) in enumerate(zip(self.bounds, self.shapes)):
                view = per_param[i:i + 1].reshape(()) if flat.ndim == 0 else flat[lo:hi].reshape(shape)
                held = states[i].get(key)
                if held.__class__ is Tensor:
                    held._data = view
                else:
                    states[i][key] = Tensor._wrap(view)
                self.views[i][key] = view


def packable(params, group):
    """Whether parameters can be packed: two or more, of one floating dtype, none sharing memory with another
    parameter of the group (a step updates them in turn, each reading what the one before wrote)."""
    if len(params) < 2:
        return False
    dtype = params[0]._data.dtype
    if any(p._data.dtype != dtype for p in params) or dtype.kind != "f":
        return False
    bases = [_buffer_id(p._data) for p in group["params"]]
    return len(set(bases)) == len(bases)
