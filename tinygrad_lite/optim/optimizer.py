"""Optimizer base class: parameter groups, per-parameter state and PyTorch-layout state dicts.

Subclasses implement `_update(group, p, grad, state)`, which changes `p._data` in place with NumPy.
State arrays are kept as Tensors (as PyTorch keeps tensors) so `state_dict()` can be written by `tl.save`.
"""
import copy
from collections.abc import MutableMapping

import numbers

import numpy as np

from ..compile.hooks import active, replayable
from ..tensor import Tensor
from .packed import PACK_MAX, Packed, packable


class _Required:
    """Marker for a hyperparameter that has no default and must be given per group."""

    def __repr__(self):
        return "<required parameter>"


required = _Required()


class _ParamState(MutableMapping):
    """`optimizer.state`: a dict keyed by parameter identity, creating empty entries on access.

    Tensors overload `==`, so they cannot be dict keys by value; PyTorch hashes them by identity too.
    """

    def __init__(self):
        self._d = {}  # id(param) -> (param, state dict); keeping param alive keeps the id valid

    def __getitem__(self, p):
        entry = self._d.get(id(p))
        if entry is None:
            entry = self._d[id(p)] = (p, {})
        return entry[1]

    def __setitem__(self, p, value):
        self._d[id(p)] = (p, value)

    def __delitem__(self, p):
        del self._d[id(p)]

    def __contains__(self, p):
        return id(p) in self._d

    def get(self, p, default=None):
        entry = self._d.get(id(p))
        return default if entry is None else entry[1]

    def __iter__(self):
        return (p for p, _ in self._d.values())

    def __len__(self):
        return len(self._d)

    def __repr__(self):
        return f"{type(self).__name__}({len(self)} parameters)"


def _typename(x):
    return type(x).__module__ + "." + type(x).__qualname__ if not isinstance(x, (int, float, str)) \
        else type(x).__name__


def check_hyper(name, value):
    """PyTorch's constructor checks: a negative (or NaN) hyperparameter is a ValueError. The learning rate may be a
    one-element Tensor (`lr=torch.tensor(0.01)`, so a scheduler changes it in place and a compiled step keeps it)."""
    if name == "lr" and isinstance(value, Tensor):
        if value.numel() != 1:
            raise ValueError(f"Tensor lr must be 1-element, got shape {tuple(value.shape)}")
        value = float(value)
    if not isinstance(value, numbers.Real) or isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a number, got {_typename(value)}")
    if not 0.0 <= value:
        raise ValueError(f"Invalid learning rate: {value}" if name == "lr" else f"Invalid {name} value: {value}")


def state_array(value):
    """The array of a loaded state value (ours, a NumPy array or a torch tensor), or None for anything else."""
    if isinstance(value, Tensor):
        return value._data
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "detach") and hasattr(value, "numpy"):  # a torch tensor
        return value.detach().cpu().numpy()
    return None


class Optimizer:
    """Base class of all optimizers (as `torch.optim.Optimizer`)."""

    def __init__(self, params, defaults):
        cap = active()  # a tl.compile capture running: this optimizer's steps would not replay as eager runs them
        self._made_during = None if cap is None else id(cap)
        self.defaults = defaults
        if isinstance(params, Tensor) or isinstance(params, np.ndarray):
            raise TypeError("params argument given to the optimizer should be an iterable of Tensors or "
                            f"dicts, but got {_typename(params)} (wrap a single tensor in a list: [t])")
        if isinstance(params, (set, frozenset)):
            raise TypeError("optimizer parameters need to be organized in ordered collections, but the "
                            "ordering of tensors in sets will change between runs. Please use a list instead.")
        self.state = _ParamState()
        self.param_groups = []
        try:
            param_groups = list(params)
        except TypeError:
            raise TypeError("params argument given to the optimizer should be an iterable of Tensors or "
                            f"dicts, but got {_typename(params)}") from None
        if len(param_groups) == 0:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(param_groups[0], dict):
            param_groups = [{"params": param_groups}]
        for group in param_groups:
            self.add_param_group(group)
        self._scratch_cache, self._packs = {}, {}

    def __repr__(self):
        text = type(self).__name__ + " ("
        for i, group in enumerate(self.param_groups):
            text += f"\nParameter Group {i}\n"
            text += "".join(f"    {key}: {group[key]}\n" for key in sorted(group) if key != "params")
        return text + ")"

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_scratch_cache", None)
        state.pop("_packs", None)  # (a copy's state tensors are arrays of their own: it packs afresh)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._scratch_cache, self._packs = {}, {}

    # -- parameter groups ------------------------------------------------------------------------------
    def add_param_group(self, param_group):
        """Add a dict with `params` (and optional per-group hyperparameters) to `param_groups`."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {_typename(param_group)}")
        if "params" not in param_group:
            raise ValueError("param_group must have a 'params' entry (a list of Tensors)")
        params = param_group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError("optimizer parameters need to be organized in ordered collections, but the "
                            "ordering of tensors in sets will change between runs. Please use a list instead.")
        else:
            params = list(params)
        tensors, names = [], []
        for item in params:
            if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
                names.append(item[0])  # from named_parameters()
                item = item[1]
            tensors.append(item)
        if names and len(names) != len(tensors):
            raise ValueError("all optimizer params should be with/without names. Some param names are missing")
        for i, p in enumerate(tensors):
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer can only optimize Tensors, but params[{i}] is {_typename(p)}")
            if getattr(p, "is_leaf", True) is False:
                raise ValueError(f"can't optimize a non-leaf Tensor (params[{i}], shape {tuple(p.shape)}); "
                                 "use .detach().requires_grad_() to make a leaf")
        group = dict(param_group)
        group["params"] = tensors
        if names:
            group["param_names"] = names
        for name, default in self.defaults.items():
            if default is required and name not in group:
                raise ValueError(f"parameter group didn't specify a value of required optimization "
                                 f"parameter {name}")
            group.setdefault(name, default)
        if "lr" in group:
            check_hyper("lr", group["lr"])
        seen = set()
        for i, p in enumerate(tensors):
            if id(p) in seen:
                raise ValueError(f"optimizer got the same parameter twice in one group (params[{i}], shape "
                                 f"{tuple(p.shape)}); it would be updated twice per step")
            seen.add(id(p))
        for g in self.param_groups:
            if ("param_names" in g) != ("param_names" in group):
                raise ValueError("all optimizer param groups should be with/without names. cannot add param "
                                 f"group {'with' if names else 'without'} names to the optimizer")
            if any(id(p) in seen for p in g["params"]):
                raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(group)

    # -- gradients and steps -----------------------------------------------------------------------------
    @replayable(idempotent=True, clears_grads=True)
    def zero_grad(self, set_to_none=True):
        """Reset the gradients of all parameters: to None (default) or to zeros in place."""
        for group in self.param_groups:
            for p in group["params"]:
                if p._grad is None:
                    continue
                if set_to_none:
                    p._grad = None
                else:
                    p._grad._data[...] = 0

    @replayable(changes=lambda opt: (opt.state, opt._scratch_cache, opt._packs))
    def step(self, closure=None):
        """Update every parameter that has a gradient; `closure` re-evaluates the loss and is returned."""
        loss = None
        if closure is not None:
            from ..autograd.grad_mode import enable_grad

            with enable_grad():
                loss = closure()
        for group in self.param_groups:
            self._step_group(group)
        return loss

    def _step_group(self, group):
        """Update the group's parameters that have a gradient: one at a time, the small ones packed (packed.py)
        where the optimizer packs the group."""
        small = [] if self._packs_group(group) else None
        for p in group["params"]:
            grad = self._step_grad(p)
            if grad is None:
                continue
            if small is not None and grad.size <= PACK_MAX:
                small.append((p, grad))
            else:
                self._update(group, p, grad, self.state[p])
        if small:
            self._update_small(group, small)

    def _step_grad(self, p):
        """p's gradient as an array of p's dtype and shape for the update (None without one); counts the update
        in p's version."""
        if p._grad is None:
            return None
        grad = p._grad._data if isinstance(p._grad, Tensor) else np.asarray(p._grad)
        if grad.dtype != p._data.dtype:  # keep the state in the parameter's dtype
            grad = grad.astype(p._data.dtype)
        if grad.shape != p._data.shape:
            raise RuntimeError(f"{type(self).__name__}.step: gradient of shape {grad.shape} does not "
                               f"match its parameter of shape {p._data.shape}")
        # As PyTorch's in-place update: a graph that saved p before this step must refuse to backprop
        p._version += 1
        return grad

    def _packs_group(self, group):
        """Whether the group's small parameters are updated packed (an update of a few calls gains nothing)."""
        return True

    def _update_small(self, group, items):
        """The (parameter, gradient) pairs of a group's small parameters: one update of them packed (packed.py) when
        they pack, else one at a time."""
        params = [p for p, _ in items]
        states = [self.state[p] for p in params]
        pack = self._packs.get(id(group))
        if pack is None or not pack.holds(group, params, states):
            pack = Packed(group, params, params[0]._data.dtype) if packable(params, group) else None
            if pack is not None and any(states) and not pack.adopt(states):
                pack = None
            self._packs[id(group)] = pack
        if pack is None:
            for (p, grad), state in zip(items, states):
                self._update(group, p, grad, state)
        else:
            pack.update(self, [g for _, g in items], states)

    def _update(self, group, p, grad, state):
        raise NotImplementedError

    def _scratch(self, like, slot=0):
        """A work array shaped like `like` for one parameter's update, used at once and never kept: a view of one
        flat array per dtype and slot, so every parameter's update works in the same cache-warm memory and steps
        allocate nothing (W2's six SGD updates: 93 us, against 113 with an array per shape, 1 MB the caches hold)."""
        key = (like.shape, like.dtype, slot)
        buf = self._scratch_cache.get(key)
        if buf is None:
            buf = self._scratch_cache[key] = self._scratch_flat(like.dtype, slot, like.size)[:like.size].reshape(
                like.shape)
        return buf

    def _scratch_flat(self, dtype, slot, size):
        """The flat array the scratch views of (dtype, slot) share, grown to `size` elements (then the views of the
        smaller one are dropped, so that all share the new one)."""
        flat = self._scratch_cache.get((dtype, slot))
        if flat is None or flat.size < size:
            for key in [k for k in self._scratch_cache if len(k) == 3 and k[1:] == (dtype, slot)]:
                del self._scratch_cache[key]
            flat = self._scratch_cache[(dtype, slot)] = np.empty(size, dtype)
        return flat

    def _grad(self, group, p, grad, wd):
        """The gradient after `maximize` and (coupled) weight decay `wd`, without modifying `p._grad`."""
        maximize = group.get("maximize", False)
        if not maximize and not wd:
            return grad
        out = self._scratch(p._data, 0)
        if maximize:
            np.negative(grad, out=out)
        else:
            np.copyto(out, grad)
        if wd:
            tmp = self._scratch(p._data, 1)
            np.multiply(p._data, wd, out=tmp)
            out += tmp
        return out

    @staticmethod
    def _zeros_like(p, fill=0.0):
        return Tensor(np.full(p._data.shape, fill, dtype=p._data.dtype))

    @staticmethod
    def _step_tensor():
        # PyTorch keeps `step` as a float32 scalar tensor; the same layout lets its state dicts load here
        return Tensor(np.zeros((), dtype=np.float32))

    # -- state dicts ----------------------------------------------------------------------------------
    def state_dict(self):
        """`{'state': {index: {name: Tensor or number}}, 'param_groups': [{..., 'params': [index, ...]}]}`.

        As PyTorch, state tensors are the optimizer's own (not copies); save or copy them before stepping on.
        """
        index_of = {}
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            for p in group["params"]:
                index_of.setdefault(id(p), len(index_of))
            packed["params"] = [index_of[id(p)] for p in group["params"]]
            groups.append(packed)
        state = {}
        for p in self.state:
            s = self.state.get(p)
            if s:
                state[index_of[id(p)]] = dict(s)
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Load a `state_dict()` (ours, or PyTorch's converted to NumPy); all-or-nothing, copying every array."""
        if not isinstance(state_dict, dict) or "state" not in state_dict or "param_groups" not in state_dict:
            raise ValueError("optimizer state dict must be a dict with 'state' and 'param_groups' entries, got "
                             + (f"keys {sorted(map(str, state_dict))}" if isinstance(state_dict, dict)
                                else _typename(state_dict)))
        saved_groups = copy.deepcopy(list(state_dict["param_groups"]))
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"loaded state dict has a different number of parameter groups "
                             f"({len(saved_groups)}) than the optimizer ({len(self.param_groups)})")
        for i, (g, sg) in enumerate(zip(self.param_groups, saved_groups)):
            if not isinstance(sg, dict) or "params" not in sg:
                raise ValueError(f"loaded state dict: param_groups[{i}] is not a dict with a 'params' list")
            if len(g["params"]) != len(sg["params"]):
                raise ValueError(f"loaded state dict contains a parameter group that doesn't match the size of "
                                 f"optimizer's group: param_groups[{i}] has {len(sg['params'])} parameters in "
                                 f"the state dict and {len(g['params'])} in the optimizer")
        id_map = {}
        for g, sg in zip(self.param_groups, saved_groups):
            for saved_index, p in zip(sg["params"], g["params"]):
                id_map[saved_index] = p
        new_state = _ParamState()
        for key, value in dict(state_dict["state"]).items():
            if key not in id_map:
                raise ValueError(f"loaded state dict has state for parameter index {key!r}, which is in none of "
                                 f"its param_groups (indices {sorted(id_map, key=str)})")
            p = id_map[key]
            if not isinstance(value, dict):
                raise ValueError(f"loaded state dict: state[{key!r}] must be a dict, got {_typename(value)}")
            new_state[p] = {name: self._cast_state(p, key, name, v) for name, v in value.items()}
        for g, sg in zip(self.param_groups, saved_groups):
            sg["params"] = g["params"]
            if "param_names" in g and "param_names" not in sg:
                sg["param_names"] = g["param_names"]
        self.param_groups[:] = saved_groups
        self.state = new_state

    @staticmethod
    def _cast_state(p, index, name, value):
        arr = state_array(value)
        if arr is None:
            return copy.deepcopy(value)
        if name == "step":
            return Tensor(arr, dtype=np.float32)
        if arr.shape != p._data.shape:
            raise ValueError(f"loaded state dict: state[{index}][{name!r}] has shape {tuple(arr.shape)} but "
                             f"its parameter has shape {tuple(p._data.shape)}")
        dtype = p._data.dtype if np.issubdtype(p._data.dtype, np.floating) and \
            np.issubdtype(arr.dtype, np.floating) else arr.dtype
        return Tensor(arr, dtype=dtype)


def _lerp_(a, b, weight, tmp):
    """a += weight * (b - a) in place, with PyTorch's two-sided formula for accuracy near weight = 1."""
    np.subtract(b, a, out=tmp)
    if weight < 0.5:
        tmp *= weight
        a += tmp
    else:
        tmp *= 1 - weight
        np.subtract(b, tmp, out=a)
