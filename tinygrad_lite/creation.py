"""Tensor factories (zeros, ones, full, eye, arange, linspace, rand, randn, randint and the *_like forms).
Arguments are checked up front and NumPy's allocation errors are re-raised naming the factory."""
import math
import numbers

import numpy as np

from . import dtypes, devices as _device
from .compile.hooks import astype, batching_rule, constant, data as _hooks_data, draws_random, host, host_check
from .ops.registry import OpError
from .random import checked, generator_for
from .shape import _sizes
from .tensor import Tensor


def _size(size, opname):
    return _sizes(size, opname, factory=True)


def _int(v, name, opname):
    if not isinstance(v, numbers.Integral) or isinstance(v, bool):
        raise TypeError(f"{opname}: {name} must be an int, got {type(v).__name__}")
    return int(v)


def _number(v, name, opname):
    if not (isinstance(v, numbers.Real) or isinstance(v, np.generic) and v.dtype.kind in "biuf"):
        raise TypeError(f"{opname}: {name} must be a real number, got {type(v).__name__}")
    if not math.isfinite(v):
        raise ValueError(f"{opname}: {name} must be finite, got {v}")
    return v


def _allocate(opname, fn, *args, **kwargs):
    """Run a NumPy constructor of Python values; a size NumPy cannot allocate is an error naming the factory. The
    result is a constant for tl.compile (a function of the arguments only)."""
    try:
        return constant(fn(*args, **kwargs))
    except (ValueError, OverflowError, MemoryError) as exc:
        raise OpError(f"{opname}: cannot create the tensor ({type(exc).__name__}: {exc})") from None


def _draw(opname, method, *args, **kwargs):
    """A random draw from the package generator (or `generator=`); tl.compile records it, so every replay draws
    anew from the same stream as eager calls."""
    generator = checked(kwargs.pop("generator", None), opname)
    try:
        return host(_rng_call, method, generator, args, kwargs)
    except (ValueError, OverflowError, MemoryError) as exc:
        raise OpError(f"{opname}: cannot create the tensor ({type(exc).__name__}: {exc})") from None


@draws_random
def _rng_call(method, generator, args, kwargs):
    return np.asarray(getattr(generator_for(generator), method)(*args, **kwargs))


@batching_rule(_rng_call)
def _(args, size):
    """vmap(randomness='different'): the draws of every sample at once, the batch leading."""
    method, generator, a, kw = args
    rng = generator_for(generator)
    if method == "permutation":  # one permutation per sample: each row of a (size, n) arange shuffled alone
        return rng.permuted(np.tile(np.arange(a[0]), (size, 1)), axis=1)
    if "size" in kw:
        kw = dict(kw, size=(size,) + tuple(kw["size"]))
    else:
        a = ((size,) + tuple(a[0]),) + tuple(a[1:])
    return np.asarray(getattr(rng, method)(*a, **kw))


def _make(arr, dtype, requires_grad, default=None, opname="tensor"):
    dt = dtypes.to_dtype(dtype, opname) if dtype is not None else (default or dtypes.default_float)
    if arr.dtype != dt:
        try:
            arr = host(astype, arr, dt)
        except (ValueError, OverflowError, MemoryError) as exc:
            raise OpError(f"{opname}: cannot create the tensor ({type(exc).__name__}: {exc})") from None
    return Tensor(arr, requires_grad=requires_grad)


def _dtype(dtype, opname, default=None):
    return dtypes.to_dtype(dtype, opname) if dtype is not None else (default or dtypes.default_float)


def tensor(data, dtype=None, device=None, requires_grad=False, pin_memory=False):
    """Create a tensor (copying Tensor data); Python floats become float32, ints int64, bools bool."""
    _device.check(device, "tensor")
    t = Tensor(data, dtype=dtype, requires_grad=requires_grad)
    if not isinstance(data, (np.ndarray, Tensor)):  # Python numbers and lists: a constant for tl.compile
        constant(t._data)
    return t


def _filled(fn, size, dtype, requires_grad, opname):
    dt = _dtype(dtype, opname)
    return Tensor(_allocate(opname, fn, _size(size, opname), dtype=dt), requires_grad=requires_grad)


def zeros(*size, dtype=None, device=None, requires_grad=False):
    _device.check(device, "zeros")
    return _filled(np.zeros, size, dtype, requires_grad, "zeros")


def ones(*size, dtype=None, device=None, requires_grad=False):
    _device.check(device, "ones")
    return _filled(np.ones, size, dtype, requires_grad, "ones")


def empty(*size, dtype=None, device=None, requires_grad=False):
    _device.check(device, "empty")
    """Uninitialised in PyTorch; zeros here, so results never depend on leftover memory."""
    return _filled(np.zeros, size, dtype, requires_grad, "empty")


def full(size, fill_value, dtype=None, device=None, requires_grad=False, *, _opname="full"):
    _device.check(device, "full")
    if isinstance(fill_value, bool):
        default = dtypes.bool_
    elif isinstance(fill_value, numbers.Real) or isinstance(fill_value, np.generic) and fill_value.dtype.kind in "biuf":
        default = dtypes.scalar_dtype(fill_value, dtypes.bool_)
    else:
        raise TypeError(f"{_opname}: fill_value must be a number, got {type(fill_value).__name__}")
    dt = _dtype(dtype, _opname, default)
    shape = _size((size,), _opname)
    return Tensor(_allocate(_opname, np.full, shape, fill_value, dtype=dt), requires_grad=requires_grad)


def eye(n, m=None, dtype=None, device=None, requires_grad=False):
    _device.check(device, "eye")
    n = _int(n, "n", "eye")
    m = n if m is None else _int(m, "m", "eye")
    if n < 0 or m < 0:
        raise ValueError(f"eye: n and m must be non-negative, got n={n}, m={m}")
    return Tensor(_allocate("eye", np.eye, n, m, dtype=_dtype(dtype, "eye")), requires_grad=requires_grad)


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False):
    _device.check(device, "arange")
    if end is None:
        start, end = 0, start
    for name, v in (("start", start), ("end", end), ("step", step)):
        _number(v, name, "arange")
    is_int = all(isinstance(v, (numbers.Integral, np.integer)) for v in (start, end, step))
    if not is_int and dtype is not None and dtypes.to_dtype(dtype, "arange") == dtypes.int64:
        # PyTorch converts the bounds and the step to int64 first (toward zero): arange(0, 2.5, dtype=int64) is
        # [0, 1], arange(0, 3, 0.5, dtype=int64) raises; NumPy's float range cast gave [0, 1, 2] and
        # [0, 0, 1, 1, 2, 2]. (Its narrower integer dtypes count the elements from the float arguments but step by
        # the truncated step, six zeros for the latter: a quirk not followed.)
        start, end, step = int(start), int(end), int(step)
    if step == 0:
        raise ValueError("arange: step must be nonzero")
    default = dtypes.int64 if is_int else dtypes.default_float
    arr = _allocate("arange", np.arange, start, end, step)
    return _make(arr, dtype, requires_grad, default, "arange")


def linspace(start, end, steps, dtype=None, device=None, requires_grad=False):
    _device.check(device, "linspace")
    _number(start, "start", "linspace")
    _number(end, "end", "linspace")
    if _int(steps, "steps", "linspace") < 0:
        raise ValueError(f"linspace: number of steps must be non-negative, got {steps}")
    return _make(_allocate("linspace", np.linspace, start, end, steps), dtype, requires_grad, opname="linspace")


def rand(*size, generator=None, dtype=None, device=None, requires_grad=False):
    _device.check(device, "rand")
    shape = _size(size, "rand")
    return _make(_draw("rand", "random", shape, generator=generator), dtype, requires_grad, opname="rand")


def randn(*size, generator=None, dtype=None, device=None, requires_grad=False):
    _device.check(device, "randn")
    shape = _size(size, "randn")
    return _make(_draw("randn", "standard_normal", shape, generator=generator), dtype, requires_grad, opname="randn")


def randint(low, high=None, size=(), dtype=None, device=None, requires_grad=False, *, generator=None):
    _device.check(device, "randint")
    if high is None:
        low, high = 0, low
    low, high = _int(low, "low", "randint"), _int(high, "high", "randint")
    if low >= high:
        raise ValueError(f"randint: low must be less than high, got low={low}, high={high}")
    shape = _size((size,), "randint")
    arr = _draw("randint", "integers", low, high, size=shape, generator=generator)
    return _make(arr, dtype, requires_grad, dtypes.int64, "randint")


def randperm(n, dtype=None, device=None, requires_grad=False, *, generator=None):
    """A random permutation of 0..n-1 (int64 unless `dtype`), from the package's generator."""
    _device.check(device, "randperm")
    n = _int(n, "n", "randperm")
    if n < 0:
        raise ValueError(f"randperm: n must be non-negative, got {n}")
    return _make(_draw("randperm", "permutation", n, generator=generator), dtype, requires_grad, dtypes.int64,
                 "randperm")



def multinomial(input, num_samples, replacement=False, *, generator=None, out=None):
    """Indices (int64) drawn from the categories of each row of `input` (1-D or 2-D non-negative weights, not
    necessarily summing to 1), as torch.multinomial. Without replacement a row's samples are distinct: the
    categories ranked by weight / Exponential(1) keys (PyTorch's method), so zero weights come last; with
    replacement each sample is an inverse-CDF draw. Not differentiable."""
    if not isinstance(input, Tensor):
        raise TypeError(f"multinomial(): argument 'input' (position 1) must be Tensor, not {type(input).__name__}")
    if out is not None:
        raise TypeError("multinomial: out= is not supported; use the returned tensor")
    checked(generator, "multinomial")
    if input.dtype.kind != "f":
        raise OpError(f"multinomial: only supports floating-point dtypes for input, got {input.dtype} (input shape "
                      f"{tuple(input.shape)})")
    if input.ndim not in (1, 2):
        raise OpError(f"multinomial: prob_dist must be 1 or 2 dim, got shape {tuple(input.shape)}")
    num_samples = _int(num_samples, "num_samples", "multinomial")
    if num_samples <= 0:
        raise OpError(f"multinomial: cannot sample n_sample <= 0 samples (num_samples={num_samples})")
    n = input.shape[-1]
    if not replacement and num_samples > n:
        raise OpError(f"multinomial: cannot sample n_sample > prob_dist.size(-1) samples without replacement "
                      f"(num_samples={num_samples}, input shape {tuple(input.shape)})")
    probs = _hooks_data(input)
    host_check(_check_distribution, probs)
    try:
        arr = host(_multinomial_draw, probs, num_samples, bool(replacement), generator)
    except MemoryError as exc:
        raise OpError(f"multinomial: cannot create the tensor ({type(exc).__name__}: {exc})") from None
    return Tensor._wrap(arr)


def _check_distribution(p):
    if not np.isfinite(p).all() or (p < 0).any():
        raise OpError(f"multinomial: probability tensor contains either `inf`, `nan` or element < 0 (input shape "
                      f"{p.shape}, dtype {p.dtype})")
    if (p.sum(axis=-1) <= 0).any():  # also a row of no categories
        raise OpError(f"multinomial: invalid multinomial distribution (sum of probabilities <= 0) in a row of the "
                      f"input of shape {p.shape}")


@draws_random
def _multinomial_draw(p, num_samples, replacement, generator):
    rng = generator_for(generator)
    rows = p.reshape(-1, p.shape[-1]).astype(np.float64)
    if replacement:  # first category whose cumulative weight exceeds u * total: a zero weight is never chosen
        cdf = np.cumsum(rows, axis=1)
        u = rng.random((rows.shape[0], num_samples)) * cdf[:, -1:]
        last = rows.shape[1] - 1 - np.argmax(rows[:, ::-1] > 0, axis=1)  # u * total may round up to total
        idx = np.stack([np.searchsorted(c, v, side="right") for c, v in zip(cdf, u)]) if len(rows) else \
            np.zeros((0, num_samples), np.int64)
        idx = np.minimum(idx, last[:, None])
    else:  # weights / Exp(1) ranked: a draw without replacement with the weights' probabilities
        keys = rows / rng.exponential(size=rows.shape)
        idx = np.argsort(-keys, axis=1, kind="stable")[:, :num_samples]
    return idx.astype(np.int64).reshape(p.shape[:-1] + (num_samples,))


def _like(fn, draws=False):
    name = fn.__name__ + "_like"

    def like(t, dtype=None, device=None, requires_grad=False, memory_format=None, *, generator=None):
        _check_tensor(t, name)
        if generator is not None and not draws:  # (only rand_like and randn_like draw, as torch's)
            raise TypeError(f"{name}() got an unexpected keyword argument 'generator'")
        extra = {"generator": generator} if draws else {}
        return fn(*t.shape, dtype=dtype if dtype is not None else t.dtype, device=device,
                  requires_grad=requires_grad, **extra)
    like.__name__ = name
    return like


def _check_tensor(t, opname):
    if not isinstance(t, Tensor):
        raise TypeError(f"{opname}: expected a Tensor, got {type(t).__name__}")


zeros_like, ones_like, empty_like = (_like(f) for f in (zeros, ones, empty))
rand_like, randn_like = _like(rand, draws=True), _like(randn, draws=True)  # (these take `generator=`, as torch's)


def full_like(t, fill_value, dtype=None, device=None, requires_grad=False, memory_format=None):
    _check_tensor(t, "full_like")
    return full(t.shape, fill_value, dtype=dtype if dtype is not None else t.dtype, device=device,
                requires_grad=requires_grad, _opname="full_like")


# ---------------- sharing memory with NumPy, and PyTorch's older constructors ----------------
def from_numpy(array):
    """A tensor that shares memory with `array` (as torch.from_numpy): changes to either show in the other."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected np.ndarray (got {type(array).__name__})")
    if array.dtype.kind not in "biuf":
        raise TypeError(f"from_numpy: can't convert np.ndarray of type {array.dtype}. The only supported types are: "
                        f"float64, float32, float16, int64, int32, int16, int8, uint8, and bool.")
    return Tensor._wrap(array)


def as_tensor(data, dtype=None, device=None):
    """Like `tensor`, but shares memory with a NumPy array or Tensor of the requested dtype (as torch.as_tensor)."""
    _device.check(device, "as_tensor")
    if isinstance(data, Tensor) and (dtype is None or dtypes.to_dtype(dtype, "as_tensor") == data.dtype):
        return data
    if isinstance(data, np.ndarray) and data.dtype.kind in "biuf" and (
            dtype is None or dtypes.to_dtype(dtype, "as_tensor") == data.dtype):
        return Tensor._wrap(data)
    return Tensor(data, dtype=dtype)


def _typed_constructor(name, dt):
    def make(*args, device=None):
        """`tl.%s(data)` makes a tensor of this dtype from data; `tl.%s(*sizes)` zeros of that shape."""
        _device.check(device, name)
        if args and all(isinstance(a, numbers.Integral) and not isinstance(a, bool) for a in args):
            return zeros(*args, dtype=dt)
        if len(args) > 1:
            raise TypeError(f"{name}: expected sizes (ints) or one sequence of data, got {len(args)} arguments")
        return Tensor(args[0] if args else [], dtype=dt)
    make.__name__ = make.__qualname__ = name
    make.__doc__ = make.__doc__ % (name, name)
    return make


FloatTensor = _typed_constructor("FloatTensor", dtypes.float32)
DoubleTensor = _typed_constructor("DoubleTensor", dtypes.float64)
HalfTensor = _typed_constructor("HalfTensor", dtypes.float16)
LongTensor = _typed_constructor("LongTensor", dtypes.int64)
IntTensor = _typed_constructor("IntTensor", dtypes.int32)
BoolTensor = _typed_constructor("BoolTensor", dtypes.bool_)
ByteTensor = _typed_constructor("ByteTensor", dtypes.uint8)

_TYPE_NAMES = {dtypes.float32: "torch.FloatTensor", dtypes.float64: "torch.DoubleTensor",
               dtypes.float16: "torch.HalfTensor", dtypes.int64: "torch.LongTensor", dtypes.int32: "torch.IntTensor",
               dtypes.int16: "torch.ShortTensor", dtypes.int8: "torch.CharTensor", dtypes.uint8: "torch.ByteTensor",
               dtypes.bool_: "torch.BoolTensor"}
_NAME_TYPES = {v: k for k, v in _TYPE_NAMES.items()}


def _type(self, dtype=None, non_blocking=False):
    """No argument: PyTorch's type string ('torch.FloatTensor'); with a dtype or such a string: a converted tensor."""
    if dtype is None:
        return _TYPE_NAMES.get(self._data.dtype, f"torch.{self._data.dtype}")
    if isinstance(dtype, str) and dtype in _NAME_TYPES:
        dtype = _NAME_TYPES[dtype]
    elif dtype in (FloatTensor, DoubleTensor, HalfTensor, LongTensor, IntTensor, BoolTensor, ByteTensor):
        dtype = _NAME_TYPES["torch." + dtype.__name__]
    return self.astype(dtype)


def _new(fn):
    def method(self, *size, dtype=None, device=None, requires_grad=False, **kwargs):
        return fn(*size, dtype=self._data.dtype if dtype is None else dtype, device=device,
                  requires_grad=requires_grad, **kwargs)
    method.__name__ = "new_" + fn.__name__
    method.__doc__ = f"A new tensor from `{fn.__name__}` with this tensor's dtype unless `dtype` is given."
    return method


def _new_full(self, size, fill_value, dtype=None, device=None, requires_grad=False):
    return full(size, fill_value, dtype=self._data.dtype if dtype is None else dtype, device=device,
                requires_grad=requires_grad, _opname="new_full")


def _new_tensor(self, data, dtype=None, device=None, requires_grad=False):
    return Tensor(data, dtype=self._data.dtype if dtype is None else dtype, requires_grad=requires_grad)


Tensor.new_zeros, Tensor.new_ones, Tensor.new_empty = _new(zeros), _new(ones), _new(empty)
Tensor.new_full, Tensor.new_tensor, Tensor.type = _new_full, _new_tensor, _type
Tensor.multinomial = multinomial
