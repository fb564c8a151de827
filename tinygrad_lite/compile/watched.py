"""NumPy arguments as the recording call's code sees them: views of the same memory (`Watched`) that notice the
user's code reading their values into Python — an element, `.item()`, `.tolist()`, `float()`, iteration, a
reduction to a number, printing — or writing them. The library's operations record what they do with an argument;
Python code that takes a number out of it (`tl.tensor([float(a[0])])`, `x * a.sum()`) would have that number baked
into the replay, so the capture fails instead and the call runs eagerly (tl.compile's `last_reason` says where).
Not seen: a plain-ndarray copy or view the code makes first (`np.asarray(a)[0]`, `a.view(np.ndarray)`)."""
import os
import sys

import numpy as np

from ..autograd.grad_mode import state

_NUMPY = os.path.dirname(np.__file__) + os.sep


def watch(arr, index):
    """A Watched view of argument `index`'s array."""
    w = arr.view(Watched)
    w._tl_arg = index
    return w


def _plain(x):
    return x.view(np.ndarray) if isinstance(x, Watched) else x


def _flag(arr, what):
    """Fail the current capture when the user's code (not NumPy's or the library's on its behalf) did `what`."""
    cap = state.capture
    if cap is None or cap.failure is not None:
        return
    from ..autograd.recorder import _PKG_DIR
    f = sys._getframe(2)
    while f is not None and f.f_code.co_filename.startswith(_NUMPY):
        f = f.f_back
    if f is None or f.f_code.co_filename.startswith(_PKG_DIR):
        return  # a library operation on the argument: recorded as such
    cap.fail(f"the values of NumPy argument {arr._tl_arg} are {what} in Python at {f.f_code.co_filename}:{f.f_lineno}:"
             f" a replay would keep this call's values (pass a Tensor: its .item() and indexing are recorded)")


def _reads(name):
    """ndarray's method `name`, which hands the array's values to Python: flagged first."""
    def method(self, *args, **kwargs):
        _flag(self, "read")
        return getattr(np.ndarray, name)(self, *args, **kwargs)
    method.__name__ = name
    return method


def _scalar(name):
    """ndarray's method `name` (not a ufunc): flagged when it gives a number."""
    def method(self, *args, **kwargs):
        result = getattr(np.ndarray, name)(self, *args, **kwargs)
        if np.ndim(result) == 0:
            _flag(self, "read")
        return result
    method.__name__ = name
    return method


_METADATA = {np.shape, np.ndim, np.size, np.result_type, np.may_share_memory, np.shares_memory, np.iscomplexobj,
             np.isrealobj, np.isfortran}  # (functions of an array's layout, not of its values)


class Watched(np.ndarray):
    """See the module docstring. Arithmetic on it returns plain arrays; its views are Watched too."""

    def __array_finalize__(self, obj):
        self._tl_arg = getattr(obj, "_tl_arg", None)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        out = kwargs.get("out")
        if out is not None:
            if any(isinstance(o, Watched) for o in out):
                _flag(self, "written")
            kwargs["out"] = tuple(map(_plain, out))
        result = getattr(ufunc, method)(*map(_plain, inputs), **kwargs)
        if out is None and not isinstance(result, tuple) and np.ndim(result) == 0:
            _flag(self, "read")  # a reduction or an operation on elements to a number
        return result

    def __getitem__(self, key):
        r = super().__getitem__(key)
        if not isinstance(r, np.ndarray):
            _flag(self, "read")
        return r

    def __setitem__(self, key, value):
        _flag(self, "written")
        super().__setitem__(key, value)

    def __iter__(self):
        if self.ndim == 1:  # (the rows of a matrix are Watched views: reading them is seen there)
            _flag(self, "read")
        return super().__iter__()

    def __array_function__(self, func, types, args, kwargs):
        result = super().__array_function__(func, types, args, kwargs)
        if func not in _METADATA and not isinstance(result, tuple) and np.ndim(result) == 0:
            _flag(self, "read")  # np.argmax(a), np.dot(a, b), np.array_equal(a, b), ...
        return result

    argmax, argmin, dot, trace = _scalar("argmax"), _scalar("argmin"), _scalar("dot"), _scalar("trace")
    ptp, searchsorted, all, any = _scalar("ptp"), _scalar("searchsorted"), _scalar("all"), _scalar("any")
    item, tolist, tobytes = _reads("item"), _reads("tolist"), _reads("tobytes")
    __float__, __int__, __index__ = _reads("__float__"), _reads("__int__"), _reads("__index__")
    __bool__, __complex__ = _reads("__bool__"), _reads("__complex__")
    __repr__, __str__, __format__ = _reads("__repr__"), _reads("__str__"), _reads("__format__")
