"""A module's state and how it shows: its state dict (and loading one: validate every key, shape and value first,
then copy in place), converting its floating state to another dtype, and its nested repr."""
import collections
import itertools
import typing
from collections.abc import Mapping

import numpy as np

from .. import devices as _device, dtypes
from ..compile.hooks import active as _active
from ..tensor import Tensor


class _IncompatibleKeys(typing.NamedTuple):
    missing_keys: list
    unexpected_keys: list

    def __repr__(self):
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return f"_IncompatibleKeys(missing_keys={self.missing_keys}, unexpected_keys={self.unexpected_keys})"


def _counters_pytorch_fills(module, state_dict):
    """The `num_batches_tracked` keys PyTorch's norms do not require: their counter is kept when a state dict
    without version >= 2 metadata for that module (a plain dict, a pre-0.4.1 or converted checkpoint) lacks it."""
    meta = getattr(state_dict, "_metadata", None) or {}
    keys = set()
    for name, m in module.named_modules(remove_duplicate=False):
        if getattr(m, "track_running_stats", False) and m._buffers.get("num_batches_tracked") is not None:
            if ((meta.get(name) or {}).get("version") or 0) < 2:  # PyTorch's check: version None or < 2
                keys.add(f"{name}.num_batches_tracked" if name else "num_batches_tracked")
    return keys


def load_into(module, own, state_dict, strict, assign):
    """Copy `state_dict` into `own` (key -> the module's Parameter or buffer), all or nothing."""
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"Expected state_dict to be dict-like, got {type(state_dict)}.")
    missing = [k for k in own if k not in state_dict]
    if any(k.rpartition(".")[2] == "num_batches_tracked" for k in missing):
        missing = [k for k in missing if k not in _counters_pytorch_fills(module, state_dict)]
    unexpected = [k for k in state_dict if k not in own]
    errors, plan = [], []
    for key, target in own.items():
        if key not in state_dict:
            continue
        value = state_dict[key]
        if isinstance(value, Tensor):
            arr = value._data
        elif isinstance(value, (np.ndarray, np.generic)) or hasattr(value, "__array__"):
            arr = np.asarray(value)
        else:
            errors.append(f'While copying the parameter named "{key}", expected a Tensor or NumPy array from '
                          f"checkpoint but received {type(value)}")
            continue
        if arr.dtype.kind not in "biuf":
            errors.append(f'While copying the parameter named "{key}", expected numeric data but got dtype '
                          f"{arr.dtype}")
        elif tuple(arr.shape) != tuple(target.shape):
            errors.append(f"size mismatch for {key}: copying a param with shape {tuple(arr.shape)} from "
                          f"checkpoint, the shape in current model is {tuple(target.shape)}.")
        else:
            plan.append((target, arr))
    if strict:
        if unexpected:
            errors.insert(0, "Unexpected key(s) in state_dict: " + ", ".join(f'"{k}"' for k in unexpected)
                          + ". ")
        if missing:
            errors.insert(0, "Missing key(s) in state_dict: " + ", ".join(f'"{k}"' for k in missing) + ". ")
    if errors:
        raise RuntimeError(f"Error(s) in loading state_dict for {type(module).__name__}:\n\t" + "\n\t".join(errors))
    cap = _active()
    if cap is not None and any(id(target) not in cap.created for target, _ in plan):
        cap.fail("load_state_dict inside the function changes tensors from before the call without a record (a "
                 "replay would skip it)")
    for target, arr in plan:
        if assign or not target._data.flags.writeable:
            target._data = np.array(arr, dtype=target._data.dtype if not assign else arr.dtype)
        else:
            np.copyto(target._data, arr, casting="unsafe")
        target._version += 1
    return _IncompatibleKeys(missing, unexpected)


def cast_floating(module, args, dtype, kwargs):
    """Module.to: accepts a dtype, a Tensor (its dtype) and the 'cpu' device, positionally or by keyword."""
    kwargs.pop("non_blocking", None)
    for a in list(args) + [kwargs.pop("device", None)]:
        if a is None:
            continue
        if _device.is_device_like(a) or isinstance(a, int) and not isinstance(a, bool):
            _device.check(a, "Module.to")
            continue
        dtype = a.dtype if isinstance(a, Tensor) else a
    if kwargs:
        raise TypeError(f"Module.to: unexpected arguments {sorted(kwargs)}")
    if dtype is None:
        return module
    dt = dtypes.to_dtype(dtype, "Module.to")
    if dt.kind != "f":
        raise TypeError(f"Module.to only accepts floating point dtypes, but got desired dtype={dt}")
    for _, m in module.named_modules():
        for t in itertools.chain(m._parameters.values(), m._buffers.values()):
            if t is not None and t._data.dtype.kind == "f" and t._data.dtype != dt:
                t._data = t._data.astype(dt)
                t._version += 1
                if t._grad is not None:
                    t._grad = Tensor._wrap(t._grad._data.astype(dt))
    return module

def state_items(module, prefix=""):
    """(key, tensor) for every parameter and persistent buffer, shared modules under each of their names; `prefix`
    is prepended as is (PyTorch's convention: 'net.' gives 'net.0.weight')."""
    for mod_prefix, mod in module.named_modules(remove_duplicate=False):
        head = prefix + (mod_prefix + "." if mod_prefix else "")
        for k, p in mod._parameters.items():
            if p is not None:
                yield head + k, p
        for k, b in mod._buffers.items():
            if b is not None and k not in mod._non_persistent_buffers:
                yield head + k, b


def state_dict(module, args, destination, prefix, keep_vars):
    """Module.state_dict: an OrderedDict of dotted name -> Tensor sharing the parameter's or buffer's storage and not
    requiring grad (as PyTorch's `p.detach()`: `sd[k].copy_(v)` writes into the model); the Parameter itself with
    keep_vars."""
    if args:  # PyTorch's deprecated positional form: state_dict(destination, prefix, keep_vars)
        destination = args[0]
        prefix = args[1] if len(args) > 1 else prefix
        keep_vars = args[2] if len(args) > 2 else keep_vars
    out = collections.OrderedDict() if destination is None else destination
    for k, t in state_items(module, prefix):
        out[k] = t if keep_vars else t.detach()
    return out


def module_repr(module):
    """PyTorch's nested repr: the layer's extra_repr, then each child indented under its name."""
    extra = module.extra_repr()
    extra_lines = extra.split("\n") if extra else []
    child_lines = [f"({k}): " + add_indent(repr(m), 2) for k, m in module._modules.items()]
    lines = extra_lines + child_lines
    s = module._get_name() + "("
    if lines:
        if len(extra_lines) == 1 and not child_lines:
            s += extra_lines[0]
        else:
            s += "\n  " + "\n  ".join(lines) + "\n"
    return s + ")"


def add_indent(s, n):
    """`s` with every line but the first indented by n spaces (a child's repr inside its parent's)."""
    lines = s.split("\n")
    if len(lines) == 1:
        return s
    return lines[0] + "\n" + "\n".join(" " * n + line for line in lines[1:])
