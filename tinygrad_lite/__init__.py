"""tinygrad_lite: a tape-based reverse-mode autodiff engine and small deep-learning library on NumPy.

Import as `import tinygrad_lite as tl`. Only NumPy is imported eagerly; nn, optim, data, viz, testing, distributed
and the checkpoint and gradcheck functions load on first use.
"""
import importlib as _importlib

from . import _memory

_memory.tune_allocator()

from .dtypes import float16, float32, float64, int8, uint8, int16, int32, int64, bool_ as bool  # noqa: A001
from .dtypes import float32 as float, float64 as double, float16 as half, int64 as long  # noqa: A001
from .dtypes import set_default_dtype, get_default_dtype
from .tensor import Tensor, matmul
from ._size import Size
from .operators import remainder, floor_divide, logical_and, logical_or, logical_xor, logical_not
from . import shape as _shape, indexing as _indexing  # noqa: F401  (attach methods)
from . import functional as _functional, inplace as _inplace  # noqa: F401  (attach methods)
from .shape import cat, stack, unbind, triu, tril, diag
from .atleast import atleast_1d, atleast_2d, atleast_3d
from .functional import (sum, mean, var, std, amax, amin, argmax, argmin, max, min, prod, logsumexp,  # noqa: A004
                         clamp, where, maximum, minimum, square, lerp, rsqrt, softmax, log_softmax)
from .creation import (tensor, zeros, ones, empty, full, eye, arange, linspace, rand, randn, randint, zeros_like,
                       ones_like, rand_like, randn_like, empty_like, full_like)
from .creation import (randperm, multinomial, from_numpy, as_tensor, FloatTensor, DoubleTensor, HalfTensor,
                       LongTensor, IntTensor, BoolTensor, ByteTensor)
from .devices import device, cuda, backends, accelerator
from .linalg import mm, mv, bmm, dot, outer, ger, t, trace, addmm
from .sorting import sort, argsort, topk
from .counting import bincount, histc, unique
from .predicates import (is_tensor, numel, isnan, isinf, isfinite, isclose, allclose, equal, any, all,  # noqa: A001,A004
                         sign, round, cumsum, cumprod, norm, is_floating_point)
from ._printing import set_printoptions
from .random import manual_seed
from . import autograd, random
from .autograd import no_grad, enable_grad, set_grad_enabled, is_grad_enabled, inference_mode
from .autograd.engine import grad
from .compile import compile, CompileError, CompileWarning  # noqa: A004  (PyTorch's name)
from . import numpy_api as _numpy_api  # noqa: F401  (NumPy functions on Tensors)
# bound eagerly: importing the submodule would otherwise make `tl.gradcheck` the module, not the function
from .gradcheck import gradcheck, gradgradcheck, GradcheckError

clip = clamp
concatenate = concat = cat
__version__ = "0.1.0"


def _method(name):
    def fn(x, *args, **kwargs):
        if not isinstance(x, Tensor):
            x = Tensor(x)
        return getattr(x, name)(*args, **kwargs)
    fn.__name__ = name
    fn.__doc__ = f"Functional form of Tensor.{name}."
    return fn


for _n in ("neg", "add", "sub", "mul", "div", "pow", "exp", "log", "log1p", "sqrt", "sin", "cos", "erf", "tanh", "sigmoid",
           "relu", "abs", "reshape", "permute", "transpose", "flatten", "squeeze", "unsqueeze", "expand",
           "broadcast_to", "split", "chunk", "flip", "repeat", "gather", "index_select", "index_add", "masked_fill",
           "detach", "eq", "ne", "lt", "le", "gt", "ge", "clone", "narrow", "movedim"):
    globals()[_n] = _method(_n)
divide, multiply, subtract, negative = div, mul, sub, neg  # noqa: F821
moveaxis = movedim  # noqa: F821

_LAZY_MODULES = {"nn", "optim", "data", "viz", "testing", "serialization", "utils", "distributed", "onnx", "func"}
_LAZY_ATTRS = {
    "save": ("serialization", "save"), "load": ("serialization", "load"),
    "CheckpointError": ("serialization", "CheckpointError"),
}


def __getattr__(name):
    if name in _LAZY_ATTRS:
        mod, attr = _LAZY_ATTRS[name]
        value = getattr(_importlib.import_module(f".{mod}", __name__), attr)
        globals()[name] = value
        return value
    if name in _LAZY_MODULES:
        return _importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'tinygrad_lite' has no attribute '{name}'")
