"""What gradcheck differentiates: the function, the leaves it perturbs (inputs that require grad and, for a Module,
its parameters), their names for the report, and a reproducible evaluation (the package RNG is reseeded before
every call, so dropout draws the same mask each time; the caller's generator is restored afterwards)."""
import copy
import inspect
import warnings

import numpy as np

from .. import random as tl_random
from ..tensor import Tensor

DEFAULT_EPS = {np.dtype("float64"): 1e-6, np.dtype("float32"): 1e-3, np.dtype("float16"): 1e-2}


class Leaf:
    """One tensor whose elements gradcheck perturbs: `kind` is 'input', 'parameter' or 'grad_output'."""
    __slots__ = ("name", "tensor", "kind", "position", "eps", "_orig_data")

    def __init__(self, name, tensor, kind, position, eps):
        self.name, self.tensor, self.kind, self.position, self.eps = name, tensor, kind, position, eps
        self._orig_data = None

    @property
    def label(self):
        """'input 1 ('b')', 'parameter 'fc.weight'' or 'grad_output 0'."""
        if self.kind == "parameter":
            return f"parameter '{self.name}'"
        if self.name.startswith(("inputs[", "grad_outputs[")):
            return f"{self.kind} {self.position}"
        return f"{self.kind} {self.position} ('{self.name}')"

    def element(self, idx):
        """The name of one element, e.g. `conv1.weight[3, 0, 1, 2]`."""
        return self.name + fmt_index(idx)


def fmt_index(idx):
    return "[" + ", ".join(str(int(i)) for i in idx) + "]" if len(idx) else ""


def as_tuple(x):
    if isinstance(x, tuple):
        return x
    if isinstance(x, list):
        return tuple(x)
    return (x,)


def _is_module(obj):
    """A tl.nn.Module, or anything module-like (callable with named_parameters)."""
    try:
        from ..nn import Module
        if isinstance(obj, Module):
            return True
    except Exception:  # nn may not be importable; duck-type on what gradcheck uses
        pass
    return callable(obj) and callable(getattr(obj, "named_parameters", None)) and not isinstance(obj, type)


def _arg_names(fn, n):
    """Names of the first n positional arguments of fn, or 'inputs[i]' where unknown."""
    names = [f"inputs[{i}]" for i in range(n)]
    try:
        sig = inspect.signature(fn.forward if _is_module(fn) else fn)
    except (TypeError, ValueError):
        return names
    i = 0
    for p in sig.parameters.values():
        if i >= n:
            break
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            names[i] = p.name
            i += 1
        elif p.kind == p.VAR_POSITIONAL:  # *args: keep the 'inputs[i]' names
            break
    return names


def _flat_outputs(out):
    """The returned Tensors as one flat tuple (nested tuples and lists, as an LSTM's (out, (h, c)), in order).
    Anything else raises: a value gradcheck cannot see would otherwise pass unchecked, vacuously."""
    flat = []

    def add(o):
        if isinstance(o, (tuple, list)):
            for x in o:
                add(x)
        elif isinstance(o, Tensor):
            flat.append(o)
        else:
            raise TypeError(f"gradcheck: the function must return a Tensor or a tuple/list of Tensors, but output "
                            f"{len(flat)} is {type(o).__name__}; return the tensors themselves (not a dict, None or "
                            f"a Python number from .item())")

    add(out)
    return tuple(flat)


class Target:
    """A function of its leaves: `outputs()` evaluates it at the leaves' current data."""

    def __init__(self, fn, args, leaves, seed, module=None, output_names=None):
        self.fn = fn
        self.args = args
        self.leaves = leaves
        self.seed = seed
        self.module = module
        self.output_names = output_names
        self._saved_rng = tl_random.get_rng()
        for leaf in leaves:  # in-place perturbation needs a writable array; the original comes back in close()
            if not leaf.tensor._data.flags.writeable:
                leaf._orig_data = leaf.tensor._data
                leaf.tensor._data = np.array(leaf.tensor._data)

    def raw(self):
        """Call the function with the package RNG reseeded; returns whatever it returns, as a tuple."""
        if self.seed is not None:
            tl_random.manual_seed(self.seed)
        return _flat_outputs(self.fn(*self.args))

    def outputs(self):
        """The float Tensor outputs, with their positions in the returned tuple."""
        out = self.raw()
        return [(i, o) for i, o in enumerate(out) if isinstance(o, Tensor) and o._data.dtype.kind == "f"]

    def output_name(self, pos, n_total):
        """'output 0', or for gradgradcheck 'output 0 (grad of input 0 ('x'))'."""
        if self.output_names is not None:
            return f"output {pos} ({self.output_names[pos]})"
        return f"output {pos}"

    def close(self):
        """Restore the caller's RNG and any array swapped for a writable copy."""
        tl_random.set_rng(self._saved_rng)  # manual_seed replaced the module's generator; put the caller's back
        for leaf in self.leaves:
            if leaf._orig_data is not None:
                leaf.tensor._data = leaf._orig_data
                leaf._orig_data = None


def _float64_copy(t):
    c = Tensor(t._data, dtype=np.float64)
    return c.requires_grad_() if t.requires_grad else c


def make_target(func, inputs, *, eps=None, params=None, seed=0, warn_float32=True):
    """Build the Target for `func(*inputs)`. A Module is deep-copied and run in float64 (float inputs are copied
    to float64 too), so the caller's module and tensors are never changed; its parameters become leaves."""
    args = as_tuple(inputs)
    module = None
    fn = func
    if _is_module(func):
        module = _copy_module(func)
        fn = module
        args = tuple(_float64_copy(a) if isinstance(a, Tensor) and a._data.dtype.kind == "f" else a for a in args)
    names = _arg_names(func, len(args))
    leaves = []
    for i, a in enumerate(args):
        if isinstance(a, Tensor) and a.requires_grad:
            leaves.append(Leaf(names[i], a, "input", i, _leaf_eps(eps, a)))
    named = []
    if module is not None:
        named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
    if params is not None:
        items = params.items() if isinstance(params, dict) else ((f"params[{i}]", p) for i, p in enumerate(params))
        named += [(n, p) for n, p in items if isinstance(p, Tensor) and p.requires_grad]
    for n, p in named:
        leaves.append(Leaf(n, p, "parameter", len(leaves), _leaf_eps(eps, p)))
    if not leaves:
        raise ValueError("gradcheck expects at least one input tensor (or module parameter) to require gradient; "
                         "create the inputs with requires_grad=True")
    if warn_float32:
        for leaf in leaves:
            dt = leaf.tensor._data.dtype
            if dt != np.float64:
                warnings.warn(
                    f"gradcheck: {leaf.label} requires gradient and is {dt}, not float64: finite differences in "
                    f"{dt} are inaccurate (step {leaf.eps:g}) and the check will likely fail. Pass "
                    f"`x.double()` (a float64 copy) instead.", UserWarning, stacklevel=3)
    return Target(fn, args, leaves, seed, module)


def _leaf_eps(eps, t):
    if eps is not None:
        return float(eps)
    return DEFAULT_EPS.get(t._data.dtype, 1e-6)


def _copy_module(module):
    """A float64 deep copy with the same training mode; the caller's module is untouched."""
    try:
        m = copy.deepcopy(module)
    except Exception as exc:
        raise TypeError(f"gradcheck: cannot copy the module {type(module).__name__} to run it in float64 "
                        f"({exc}); pass a function and the module's parameters with params=") from exc
    if hasattr(m, "double"):
        m = m.double() or m
    else:
        for _, p in m.named_parameters():
            p._data = p._data.astype(np.float64)
    return m
