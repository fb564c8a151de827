"""PyTorch-identical printing of tensors, in pure NumPy.

``tensor_repr(arr, suffixes=...)`` returns what PyTorch's ``str(tensor)`` / ``repr(tensor)`` returns for a CPU tensor
holding the same values and dtype; ``set_printoptions`` / ``get_printoptions`` / ``printoptions`` mirror
``torch.set_printoptions`` (same options, defaults and profiles); ``format_scalar`` mirrors ``Tensor.__format__``.

The rules reproduced (PyTorch's ``_tensor_str`` semantics):

* One formatter per tensor, built from the elements that are shown (all of them, or only the edge items when the
  tensor is summarised), gives every element the same width (right-aligned).
* Integer and bool tensors print ``str(value)``. Floating tensors look only at their nonzero finite elements:
  if all are integer-valued the tensor is in "int mode" (``1.``, ``-0.``, ``nan``, ``inf``); scientific notation
  is used when max/min > 1000, max > 1e8 or min < 1e-4 (of the absolute values), unless ``sci_mode`` forces it
  on or off; otherwise fixed notation with ``precision`` decimals. The width counts nonzero finite values only.
* Tensors with more than ``threshold`` elements are summarised: each dimension longer than ``2 * edgeitems`` shows
  its first and last ``edgeitems`` entries around ``...``.
* Rows wrap so that a line holds ``(linewidth - indent) // (width + 2)`` elements (at least one), the indent being
  ``len('tensor(')`` plus one per nesting level; blocks of a k-dimensional tensor are separated by k-1 newlines.
* Suffixes (``size=``, ``dtype=``, then the caller's, e.g. ``grad_fn=<MulBackward0>``) go after ``, `` or, when
  the last line would exceed ``linewidth``, on a new line indented by ``len('tensor(')``.
"""
import contextlib
import math

import numpy as np

from . import dtypes

__all__ = ["tensor_repr", "format_scalar", "set_printoptions", "get_printoptions", "printoptions",
           "torch_dtype_name"]

_PREFIX = "tensor("
_PROFILES = {
    "default": dict(precision=4, threshold=1000, edgeitems=3, linewidth=80),
    "short": dict(precision=2, threshold=1000, edgeitems=2, linewidth=80),
    "full": dict(precision=4, threshold=math.inf, edgeitems=3, linewidth=80),
}
_OPTS = dict(_PROFILES["default"], sci_mode=None)


def set_printoptions(precision=None, threshold=None, edgeitems=None, linewidth=None, profile=None, sci_mode=None):
    """Set the printing options, as ``torch.set_printoptions``.

    precision: decimals of floating output (default 4); threshold: number of elements above which a tensor is
    summarised (default 1000); edgeitems: items shown at each end of a summarised dimension (default 3);
    linewidth: characters per line for wrapping (default 80); profile: ``'default'``, ``'short'`` (precision 2,
    edgeitems 2) or ``'full'`` (threshold inf), applied first and overridden by the explicit options (an unknown
    name is ignored, as in PyTorch); sci_mode: True/False forces scientific notation on/off, None lets the
    formatter choose. As in PyTorch, every call sets ``sci_mode`` (omitting it resets it to None).
    """
    if profile is not None and profile in _PROFILES:
        _OPTS.update(_PROFILES[profile])
    for name, value in (("precision", precision), ("threshold", threshold), ("edgeitems", edgeitems),
                        ("linewidth", linewidth)):
        if value is not None:
            _OPTS[name] = value
    _OPTS["sci_mode"] = sci_mode


def get_printoptions():
    """The current options as a dict that can be passed as ``**kwargs`` to ``set_printoptions``."""
    return dict(_OPTS)


@contextlib.contextmanager
def printoptions(**kwargs):
    """Temporarily change the print options (same arguments as ``set_printoptions``)."""
    old = get_printoptions()
    set_printoptions(**kwargs)
    try:
        yield
    finally:
        set_printoptions(**old)


def torch_dtype_name(dtype):
    """PyTorch's name of a NumPy dtype: ``'torch.float32'``, ``'torch.bool'``, ..."""
    dt = np.dtype(dtype)
    if dt.kind not in "biuf":
        raise TypeError(f"cannot print a tensor of dtype {dt} (expected bool, an integer or a floating dtype)")
    return "torch." + ("bool" if dt.kind == "b" else dt.name)


class _Formatter:
    """Chooses the notation and the common width of the elements of ``data`` (the elements that are shown)."""

    def __init__(self, data, opts):
        self.floating = data.dtype.kind == "f"
        self.precision = opts["precision"]
        self.int_mode = True
        self.sci_mode = False
        self.max_width = 1
        flat = data.reshape(-1)
        if not self.floating:
            if flat.size:
                if flat.dtype.kind == "b":
                    widths = [len(str(v)) for v in np.unique(flat).tolist()]
                else:  # the longest str of an integer is that of the smallest or of the largest
                    widths = [len(str(flat.min().item())), len(str(flat.max().item()))]
                self.max_width = max(self.max_width, *widths)
            return
        with np.errstate(invalid="ignore"):
            vals = flat[np.isfinite(flat) & (flat != 0)]
        if vals.size == 0:
            return
        absvals = np.abs(vals).astype(np.float64)
        lo, hi = absvals.min(), absvals.max()
        self.int_mode = bool(np.all(vals == np.ceil(vals)))
        forced = opts["sci_mode"]
        with np.errstate(over="ignore"):  # e.g. 1e300 / 1e-300: inf, as in PyTorch
            ratio = hi / lo
        self.sci_mode = (ratio > 1000.0 or hi > 1.0e8 or lo < 1.0e-4) if forced is None else forced
        p = self.precision
        unique = np.unique(vals).tolist()  # Python floats: the exact values, formatted as PyTorch's item() is
        if self.sci_mode:
            width = max(len(f"{v:.{p}e}") for v in unique)
        elif self.int_mode:
            width = max(len(f"{v:.0f}") for v in unique) + 1
        else:
            width = max(len(f"{v:.{p}f}") for v in unique)
        self.max_width = max(self.max_width, width)

    def __call__(self, value):
        if self.floating:
            if self.sci_mode:
                ret = f"{value:{self.max_width}.{self.precision}e}"
            elif self.int_mode:
                ret = f"{value:.0f}"
                if math.isfinite(value):
                    ret += "."
            else:
                ret = f"{value:.{self.precision}f}"
        else:
            ret = f"{value}"
        return " " * (self.max_width - len(ret)) + ret


def _summarized(a, edge):
    """The elements shown when ``a`` is summarised (what PyTorch's formatter sees)."""
    if a.ndim == 0:
        return a
    if a.ndim == 1:
        # a[-0:] is all of a, so with edgeitems=0 a vector keeps every element (as PyTorch's cat does)
        return np.concatenate((a[:edge], a[-edge:])) if a.shape[0] > 2 * edge else a
    if not edge:
        return np.empty((0,) * a.ndim, a.dtype)
    n = a.shape[0]
    rows = list(range(edge)) + list(range(n - edge, n)) if n > 2 * edge else range(n)
    return np.stack([_summarized(a[i], edge) for i in rows])


def _vector_str(a, indent, summarize, fmt, opts):
    edge = opts["edgeitems"]
    per_line = max(1, math.floor((opts["linewidth"] - indent) / (fmt.max_width + 2)))
    if summarize and not edge:
        data = ["..."]
    elif summarize and a.shape[0] > 2 * edge:
        data = [fmt(v) for v in a[:edge].tolist()] + [" ..."] + [fmt(v) for v in a[-edge:].tolist()]
    else:
        data = [fmt(v) for v in a.tolist()]
    lines = [", ".join(data[i:i + per_line]) for i in range(0, len(data), per_line)]
    return "[" + (",\n" + " " * (indent + 1)).join(lines) + "]"


def _nested_str(a, indent, summarize, fmt, opts):
    if a.ndim == 0:
        return fmt(a.item())
    if a.ndim == 1:
        return _vector_str(a, indent, summarize, fmt, opts)
    edge, n = opts["edgeitems"], a.shape[0]
    if summarize and n > 2 * edge:
        slices = ([_nested_str(a[i], indent + 1, summarize, fmt, opts) for i in range(edge)] + ["..."]
                  + [_nested_str(a[i], indent + 1, summarize, fmt, opts) for i in range(n - edge, n)])
    else:
        slices = [_nested_str(a[i], indent + 1, summarize, fmt, opts) for i in range(n)]
    return "[" + ("," + "\n" * (a.ndim - 1) + " " * (indent + 1)).join(slices) + "]"


def _add_suffixes(text, suffixes, indent, linewidth):
    parts = [text]
    last_line_len = len(text) - text.rfind("\n") + 1  # PyTorch's count (two more than the line's length)
    for suffix in suffixes:
        if last_line_len + len(suffix) + 2 > linewidth:
            parts.append(",\n" + " " * indent + suffix)
            last_line_len = indent + len(suffix)
        else:
            parts.append(", " + suffix)
            last_line_len += len(suffix) + 2
    parts.append(")")
    return "".join(parts)


def _as_array(arr):
    a = np.asarray(arr)
    if not a.dtype.isnative:
        a = a.astype(a.dtype.newbyteorder("="))
    torch_dtype_name(a.dtype)  # rejects unsupported dtypes
    return a


def tensor_repr(arr, *, suffixes=()):
    """``str(tensor)`` as PyTorch prints a CPU tensor with the values and dtype of ``arr``.

    ``suffixes``: already-formatted strings appended after PyTorch's own ``size=`` / ``dtype=`` suffixes, e.g.
    ``["requires_grad=True"]`` or ``["grad_fn=<MulBackward0>"]``.
    """
    a = _as_array(arr)
    opts = get_printoptions()
    indent = len(_PREFIX)
    extra = []
    if a.size == 0:
        if a.ndim != 1:  # the shape is shown unless it is (0,), as NumPy does
            extra.append("size=" + str(tuple(a.shape)))
        if a.dtype != dtypes.default_float:  # no element shows an int or bool dtype, so only float32 is implicit
            extra.append("dtype=" + torch_dtype_name(a.dtype))
        body = "[]"
    else:
        if not opts["edgeitems"]:
            extra.append("size=" + str(tuple(a.shape)))
        if a.dtype not in (dtypes.default_float, dtypes.int64, dtypes.bool_):  # PyTorch omits these
            extra.append("dtype=" + torch_dtype_name(a.dtype))
        summarize = a.size > opts["threshold"]
        fmt = _Formatter(_summarized(a, opts["edgeitems"]) if summarize else a, opts)
        body = _nested_str(a, indent, summarize, fmt, opts)
    return _add_suffixes(_PREFIX + body, extra + list(suffixes), indent, opts["linewidth"])


def format_scalar(arr, spec, *, suffixes=()):
    """``format(tensor, spec)`` as PyTorch's ``Tensor.__format__``.

    A 0-d tensor formats its Python value (``t.item()``) with ``spec`` (so ``format(t, '')`` is ``str(t.item())``);
    any other tensor gives ``str(t)`` (built with ``suffixes``) for an empty spec and raises TypeError otherwise,
    including a one-element tensor of shape (1,).
    """
    a = _as_array(arr)
    if a.ndim == 0:
        return format(a.item(), spec)
    if spec:
        raise TypeError("unsupported format string passed to Tensor.__format__")
    return tensor_repr(a, suffixes=suffixes)
