"""Module, as PyTorch's: ordered registration through attribute assignment, dotted names,
train/eval, state dicts, a nested repr, and the module scope that tape entries record while `forward` runs."""
import itertools

import numpy as np

from .. import devices as _device, dtypes
from ..compile.hooks import replayable
from ..autograd import recorder
from ..autograd.grad_mode import state as _grad_state
from ..autograd.module_hooks import BackwardHook
from ..tensor import Tensor
from .module_iteration import (_named_members, buffers, children, modules, named_buffers, named_children,
                               named_modules, named_parameters, parameters)
from .parameter import Parameter
from .state import cast_floating, load_into, module_repr, state_dict, state_items


class RemovableHandle:
    """Returned by the hook registration methods; `.remove()` unregisters the hook."""
    _ids = itertools.count()

    def __init__(self, hooks):
        self._hooks, self.id = hooks, next(RemovableHandle._ids)

    def remove(self):
        self._hooks.pop(self.id, None)


def _check_name(name, kind):
    if not isinstance(name, str):
        raise TypeError(f"{kind} name should be a string, got {type(name).__name__}")
    if name == "":
        raise KeyError(f'{kind} name can\'t be empty string ""')
    if "." in name:
        raise KeyError(f'{kind} name can\'t contain ".", got: {name}')


_UNSET = object()


class Module:
    """Base class of all layers (as `torch.nn.Module`). Subclasses call `super().__init__()` and define
    `forward`; assigning a Parameter, a Module or a registered buffer name to an attribute registers it."""

    def __new__(cls, *args, **kwargs):
        self = super().__new__(cls)
        cap = _grad_state.capture
        if cap is not None and not cap.suspended:
            cap.made_modules.add(id(self))  # (made by a compiled call: its attributes are its own to set)
        return self

    def __init__(self):
        d = self.__dict__
        d["training"] = True
        d["_parameters"] = {}
        d["_buffers"] = {}
        d["_non_persistent_buffers"] = set()
        d["_modules"] = {}
        d["_forward_hooks"] = {}
        d["_forward_pre_hooks"] = {}
        d["_backward_hooks"] = {}
        d["_child_names"] = None  # id(child) -> attribute name, for the module scope on the tape

    # ---------------- calling ----------------
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f'Module [{type(self).__name__}] is missing the required "forward" function')

    def __call__(self, *args, **kwargs):
        compiled = self.__dict__.get("_compiled_call")  # set by .compile()
        if compiled is not None:
            return compiled(*args, **kwargs)
        return self._call_impl(*args, **kwargs)

    def _call_impl(self, *args, **kwargs):
        st = _grad_state
        parent = st.scope
        if parent is None:
            path = ""
        else:
            owner = parent.module_ref() if parent.module_ref is not None else None
            name = owner._child_name(self) if isinstance(owner, Module) else None
            if name is None:  # called inside a module without being its registered child
                name = type(self).__name__
            path = f"{parent.path}.{name}" if parent.path else name
        st.scope = recorder.Scope(path, type(self).__name__, parent, self)
        if st.capture is not None:
            st.capture.module_ran(self)  # noqa: the capture guards .training and refuses module hooks
        try:
            if self._forward_pre_hooks:
                for hook in list(self._forward_pre_hooks.values()):
                    res = hook(self, args)
                    if res is not None:
                        args = res if isinstance(res, tuple) else (res,)
            backward_hooks = self.__dict__.get("_backward_hooks")
            if backward_hooks:
                bw = BackwardHook(self, backward_hooks)
                args = bw.setup_inputs(args)
            out = self.forward(*args, **kwargs)
            if self._forward_hooks:
                for hook in list(self._forward_hooks.values()):
                    res = hook(self, args, out)
                    if res is not None:
                        out = res
            if backward_hooks:
                out = bw.setup_outputs(out)
            return out
        finally:
            st.scope = parent

    def compile(self, **kwargs):
        """As `torch.nn.Module.compile`: this module's calls go through `tl.compile(**kwargs)` from now on (in place:
        its parameters, state dict keys and attributes stay as they are; `tl.compile(module)` wraps it instead)."""
        from ..compile import Compiled, compile as _compile
        compiled = _compile(self._call_impl, **kwargs)
        if isinstance(compiled, Compiled):  # (not with disable=True: calls stay as they are)
            compiled.name = type(self).__name__
            self.__dict__["_compiled_call"] = compiled
        # (the constants guarded are those its forward reads: compile/constants.py looks through _call_impl)

    def _child_name(self, child):
        """The dotted name of `child` below this module (a child, or deeper when called through a container such
        as a ModuleList that is never called itself), or None. Cached by identity and verified on every hit, so
        changes anywhere in the subtree are picked up."""
        cache = self.__dict__["_child_names"]
        if cache is not None:
            name = cache.get(id(child))
            if name is not None:
                mod = self
                for part in name.split("."):
                    mod = mod._modules.get(part)
                    if mod is None:
                        break
                if mod is child:
                    return name
        cache = {}
        for k, m in self.named_modules():
            cache.setdefault(id(m), k)
        self.__dict__["_child_names"] = cache
        name = cache.get(id(child))
        return name or None

    def register_forward_hook(self, hook):
        """`hook(module, args, output)` runs after forward; a non-None result replaces the output."""
        handle = RemovableHandle(self._forward_hooks)
        self._forward_hooks[handle.id] = hook
        return handle

    def register_forward_pre_hook(self, hook):
        """`hook(module, args)` runs before forward; a non-None result replaces the positional arguments."""
        handle = RemovableHandle(self._forward_pre_hooks)
        self._forward_pre_hooks[handle.id] = hook
        return handle

    def register_full_backward_hook(self, hook):
        """`hook(module, grad_input, grad_output)` runs when the gradients w.r.t. the module's inputs are computed
        (one per positional input: None for one that does not require grad); a non-None result replaces
        grad_input. With no input requiring grad it runs once the gradients w.r.t. the outputs are known."""
        d = self.__dict__
        if "_backward_hooks" not in d:
            d["_backward_hooks"] = {}
        handle = RemovableHandle(d["_backward_hooks"])
        d["_backward_hooks"][handle.id] = hook
        return handle

    # ---------------- registration ----------------
    def __setattr__(self, name, value):
        d = self.__dict__
        cap = _grad_state.capture
        if cap is not None and not cap.suspended and (id(self) in cap.modules or id(self) not in cap.made_modules) \
                and getattr(self, name, _UNSET) is not value:
            # tl.compile: a replay does not re-run Python, so the attribute would keep the recorded call's value
            # (a buffer reassigned as `self.avg = self.avg * 0.9 + ...`, a hidden state kept between calls, a
            # counter on an EMA copy the call does not run); a module the call makes sets its own freely until it runs
            cap.fail(f"assigning {type(self).__name__}.{name} inside the function (a replay does not re-run Python "
                     f"attribute assignments)")
        params = d.get("_parameters")
        if isinstance(value, Parameter):
            if params is None:
                raise AttributeError("cannot assign parameters before Module.__init__() call")
            self._forget(name, keep="_parameters")
            self.register_parameter(name, value)
        elif params is not None and name in params:
            if value is not None:
                raise TypeError(f"cannot assign '{type(value).__name__}' as parameter '{name}' "
                                f"(tl.nn.Parameter or None expected)")
            params[name] = None
        elif isinstance(value, Module):
            if d.get("_modules") is None:
                raise AttributeError("cannot assign module before Module.__init__() call")
            self._forget(name, keep="_modules")
            d["_modules"][name] = value
            d["_child_names"] = None
        elif d.get("_modules") is not None and name in d["_modules"]:
            if value is not None:
                raise TypeError(f"cannot assign '{type(value).__name__}' as child module '{name}' "
                                f"(tl.nn.Module or None expected)")
            d["_modules"][name] = None
            d["_child_names"] = None
        elif d.get("_buffers") is not None and name in d["_buffers"]:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign '{type(value).__name__}' as buffer '{name}' (Tensor or None expected)")
            d["_buffers"][name] = value
        else:
            object.__setattr__(self, name, value)

    def _forget(self, name, keep=None):
        """Drop `name` from the instance and the member dicts, except `keep` (the kind being assigned: a parameter
        or a child replaced by another keeps its place in the order, as in PyTorch, so `self.block =
        tl.compile(self.block)` or a new head leaves parameters() and state_dict() in the same order)."""
        d = self.__dict__
        d.pop(name, None)
        for key in ("_parameters", "_buffers", "_modules"):
            if key != keep:
                d[key].pop(name, None)
        d["_non_persistent_buffers"].discard(name)
        d["_child_names"] = None

    def __getattr__(self, name):
        d = self.__dict__
        for key in ("_parameters", "_buffers", "_modules"):
            members = d.get(key)
            if members is not None and name in members:
                return members[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        d = self.__dict__
        for key in ("_parameters", "_buffers", "_modules"):
            if name in d.get(key, ()):
                del d[key][name]
                d["_non_persistent_buffers"].discard(name)
                d["_child_names"] = None
                return
        object.__delattr__(self, name)

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(self._parameters) | set(self._buffers) | set(self._modules))

    def __getstate__(self):
        d = self.__dict__.copy()
        d["_child_names"] = None  # keyed by object ids, which a copy does not keep
        return d

    def register_parameter(self, name, param):
        """Add a parameter (a Parameter, or None for an absent one such as `bias=False`)."""
        if "_parameters" not in self.__dict__:
            raise AttributeError("cannot assign parameter before Module.__init__() call")
        _check_name(name, "parameter")
        if hasattr(self, name) and name not in self._parameters:
            raise KeyError(f"attribute '{name}' already exists")
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"cannot assign '{type(param).__name__}' object to parameter '{name}' "
                            f"(tl.nn.Parameter or None required)")
        self._parameters[name] = param

    def register_buffer(self, name, tensor, persistent=True):
        """Add a buffer: state that is not a parameter (e.g. BatchNorm's running_mean), saved in the state dict
        unless `persistent=False`."""
        if "_buffers" not in self.__dict__:
            raise AttributeError("cannot assign buffer before Module.__init__() call")
        _check_name(name, "buffer")
        if hasattr(self, name) and name not in self._buffers:
            raise KeyError(f"attribute '{name}' already exists")
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"cannot assign '{type(tensor).__name__}' object to buffer '{name}' "
                            f"(Tensor or None required)")
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent_buffers.discard(name)
        else:
            self._non_persistent_buffers.add(name)

    def add_module(self, name, module):
        """Add a child module under `name`."""
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        _check_name(name, "module")
        if hasattr(self, name) and name not in self._modules:
            raise KeyError(f"attribute '{name}' already exists")
        self._modules[name] = module
        self.__dict__["_child_names"] = None

    register_module = add_module

    def get_submodule(self, target):
        """The submodule at a dotted path such as 'encoder.layers.0'."""
        mod = self
        for item in target.split(".") if target else ():
            child = mod._modules.get(item)
            if not isinstance(child, Module):
                raise AttributeError(f"{type(mod).__name__} has no submodule `{item}` (looking up '{target}')")
            mod = child
        return mod

    def get_parameter(self, target):
        """The parameter at a dotted path such as 'head.weight' (as PyTorch's)."""
        return self._get_member(target, "_parameters", "parameter")

    def get_buffer(self, target):
        """The buffer at a dotted path such as 'bn.running_mean' (as PyTorch's)."""
        return self._get_member(target, "_buffers", "buffer")

    def _get_member(self, target, table, kind):
        path, _, name = target.rpartition(".")
        mod = self.get_submodule(path)
        if name not in getattr(mod, table) or getattr(mod, table)[name] is None:
            raise AttributeError(f"get_{kind}: {type(mod).__name__} has no {kind} `{name}` (looking up '{target}')")
        return getattr(mod, table)[name]

    # (iteration, named_modules ... buffers: module_iteration.py, installed below)

    # ---------------- modes and conversions ----------------
    def apply(self, fn):
        """Call `fn` on every submodule (children first) and then on self; returns self."""
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    @replayable(idempotent=True, reads_grads=False, sets_training=True)
    def train(self, mode=True):
        if not isinstance(mode, bool):
            raise ValueError("training mode is expected to be boolean")
        for _, m in self.named_modules():
            m.training = mode
        return self

    def eval(self):
        return self.train(False)

    def requires_grad_(self, requires_grad=True):
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    @replayable(idempotent=True, clears_grads=True)
    def zero_grad(self, set_to_none=True):
        """Reset the gradients of all parameters (to None by default, as PyTorch)."""
        for p in self.parameters():
            if p._grad is None:
                continue
            if set_to_none:
                p._grad = None
            elif p._grad._data.flags.writeable:
                p._grad._data.fill(0)
            else:
                p._grad = Tensor._wrap(np.zeros_like(p._data))

    def to(self, *args, dtype=None, **kwargs):
        """Convert floating parameters and buffers to `dtype` in place (the only device is 'cpu')."""
        return cast_floating(self, args, dtype, kwargs)

    def cpu(self):
        return self

    def cuda(self, device=None):
        _device.check(device if device is not None else "cuda", f"{type(self).__name__}.cuda")

    def float(self):
        return self.to(dtypes.float32)

    def double(self):
        return self.to(dtypes.float64)

    def half(self):
        return self.to(dtypes.float16)

    # ---------------- state dicts ----------------
    def _state_items(self, prefix=""):
        """(key, tensor) for every parameter and persistent buffer (nn/state.py)."""
        return state_items(self, prefix)

    def state_dict(self, *args, destination=None, prefix="", keep_vars=False):
        """An OrderedDict of dotted name -> Tensor sharing storage with the parameter or buffer, detached (the
        Parameter itself with keep_vars=True)."""
        return state_dict(self, args, destination, prefix, keep_vars)

    def load_state_dict(self, state_dict, strict=True, assign=False):
        """Copy values (Tensors or NumPy arrays) into the existing parameters and buffers, in place.

        Everything is checked before anything is copied: on any error the module is unchanged. Missing and
        unexpected keys raise RuntimeError when `strict`; shape mismatches and values that are not arrays always
        do. Returns (missing_keys, unexpected_keys)."""
        return load_into(self, dict(self._state_items()), state_dict, strict, assign)

    # ---------------- repr ----------------
    def extra_repr(self):
        """The layer's own settings, shown inside its repr (override in subclasses)."""
        return ""

    def _get_name(self):
        return type(self).__name__

    def __repr__(self):
        return module_repr(self)


Module.named_modules, Module.modules, Module.named_children, Module.children = (named_modules, modules,
                                                                                named_children, children)
Module._named_members, Module.named_parameters, Module.parameters = _named_members, named_parameters, parameters
Module.named_buffers, Module.buffers = named_buffers, buffers
