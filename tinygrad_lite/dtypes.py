"""dtypes are NumPy dtypes; the promotion rules are PyTorch's (bool < integer < floating category)."""
import builtins
import numbers

import numpy as np

float16 = np.dtype("float16")
float32 = np.dtype("float32")
float64 = np.dtype("float64")
int8 = np.dtype("int8")
uint8 = np.dtype("uint8")
int16 = np.dtype("int16")
int32 = np.dtype("int32")
int64 = np.dtype("int64")
bool_ = np.dtype("bool")
default_float = float32  # tl.set_default_dtype changes it; read it as dtypes.default_float, never import it


def set_default_dtype(d):
    """The dtype of Python floats, float factories and parameters (float32 unless changed), as PyTorch's."""
    global default_float
    dt = to_dtype(d, "set_default_dtype")
    if dt.kind != "f":
        raise TypeError(f"set_default_dtype: only floating-point types are supported as the default type, got {dt}")
    default_float = dt


def get_default_dtype():
    return default_float

_SUPPORTED_KINDS = "biuf"
_CATEGORY = {"b": 0, "u": 1, "i": 1, "f": 2}


def to_dtype(dtype, where="dtype"):
    """Normalise a dtype given as np.dtype, a NumPy type object, a Python type or a name."""
    if dtype is None:
        return None
    if dtype is bool:
        return bool_
    if dtype is int:
        return int64
    if dtype is builtins.float:
        return float64  # PyTorch's and NumPy's meaning of `dtype=float` (float32 here made it silently narrower)
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{where}: {dtype!r} is not a dtype (expected e.g. tl.float32, np.float64 or "
                        f"'int64')") from None
    if dt.kind not in _SUPPORTED_KINDS:
        raise TypeError(f"{where}: dtype {dt} is not supported (expected bool, an integer or a floating dtype)")
    return dt


def is_floating(dt):
    return dt.kind == "f"


def promote(a, b):
    """The result dtype of a binary operation between arrays of dtypes a and b (PyTorch's rule)."""
    if a == b:
        return a
    ca, cb = _CATEGORY[a.kind], _CATEGORY[b.kind]
    if ca == cb:
        return np.promote_types(a, b)
    return a if ca > cb else b


def promote_arrays(a, b):
    """The result dtype of a binary operation between arrays a and b, PyTorch's rule with dimensions: a 0-d operand
    (a 0-d tensor, or a converted Python number) of the same or a lower category than a dimensioned one does not
    widen it (float32 tensor * 0-d float64 tensor is float32)."""
    da, db = a.dtype, b.dtype
    if da == db:
        return da
    if (a.ndim == 0) != (b.ndim == 0):
        ca, cb = _CATEGORY[da.kind], _CATEGORY[db.kind]
        if a.ndim == 0 and ca <= cb:
            return db
        if b.ndim == 0 and cb <= ca:
            return da
    return promote(da, db)


def scalar_dtype(value, tensor_dtype):
    """dtype for a Python scalar combined with a tensor: the tensor's, unless the scalar is of a higher category."""
    kind = tensor_dtype.kind
    if isinstance(value, (bool, np.bool_)):
        return tensor_dtype
    integral = isinstance(value, (int, np.integer))  # concrete types first: the ABCs' checks are slower
    if not integral and not isinstance(value, (float, np.floating)):  # another kind of number (tl.compile's proxies)
        if not isinstance(value, numbers.Real):
            raise TypeError(f"unsupported scalar of type {type(value).__name__} (expected bool, int or float)")
        integral = isinstance(value, numbers.Integral)
    if integral:
        return tensor_dtype if kind != "b" else int64
    return tensor_dtype if kind == "f" else default_float
