"""functional_call: run a Module with some parameters and buffers replaced by given tensors (torch.func's)."""
from ..tensor import Tensor


def _slots(module):
    """name -> (owning submodule, 'parameter'/'buffer', attribute name, current value) for every parameter and
    buffer, tied ones under each of their names."""
    out = {}
    for prefix, mod in module.named_modules(remove_duplicate=False):
        for kind, store in (("_parameters", mod._parameters), ("_buffers", mod._buffers)):
            for name, value in store.items():
                out[f"{prefix}.{name}" if prefix else name] = (mod, kind, name, value)
    return out


def functional_call(module, parameter_and_buffer_dicts, args=(), kwargs=None, *, tie_weights=True, strict=False):
    """module(*args, **kwargs) with the named parameters/buffers replaced by the given tensors for this call
    only (the module is restored afterwards, even when the call raises). Gradients flow to the given tensors.
    With tie_weights (the default), a parameter shared under several names takes the value given for any of them;
    with strict, every parameter and buffer must be given and no unknown name may be."""
    dicts = parameter_and_buffer_dicts if isinstance(parameter_and_buffer_dicts, (tuple, list)) else \
        (parameter_and_buffer_dicts,)
    given = {}
    for d in dicts:
        for name, value in d.items():
            if name in given:
                raise ValueError(f"functional_call: '{name}' appears in more than one of the given dicts")
            if not isinstance(value, Tensor):
                raise TypeError(f"functional_call: the value for '{name}' must be a Tensor, not "
                                f"{type(value).__name__}")
            given[name] = value
    slots = _slots(module)
    unknown = sorted(set(given) - set(slots))
    if unknown:
        raise ValueError(f"functional_call: unexpected key(s) {unknown} ({type(module).__name__} has no parameter "
                         f"or buffer of that name)")
    if tie_weights:  # every name of a shared tensor takes the value given for one of them
        by_id, names = {}, {}
        for n, v in given.items():
            old = slots[n][3]
            if old is not None:
                if id(old) in by_id and by_id[id(old)] is not v:  # which one would win is arbitrary: refused
                    raise ValueError(f"functional_call got multiple values for keys "
                                     f"{sorted([names[id(old)], n])}, which are tied. Consider using "
                                     f"tie_weights=False")
                by_id[id(old)], names[id(old)] = v, n
        given = {n: by_id.get(id(s[3]), given.get(n)) if s[3] is not None else given.get(n)
                 for n, s in slots.items() if n in given or (s[3] is not None and id(s[3]) in by_id)}
    if strict:  # (after tying: a tied weight given under one name is given under all, as torch.func; a slot
        # registered as None, Linear(bias=False)'s bias, is no parameter: neither was counted missing before)
        missing = sorted(n for n, s in slots.items() if s[3] is not None and n not in given)
        if missing:  # a RuntimeError, as torch.func's and load_state_dict's strict mismatch
            raise RuntimeError(f"functional_call(strict=True): missing key(s) {missing} for "
                               f"{type(module).__name__}")
    saved = []
    try:
        for name, value in given.items():
            mod, kind, attr, old = slots[name]
            saved.append((getattr(mod, kind), attr, old))
            getattr(mod, kind)[attr] = value
        args = args if isinstance(args, tuple) else (args,)
        return module(*args, **(kwargs or {}))
    finally:
        for store, attr, old in reversed(saved):
            store[attr] = old
