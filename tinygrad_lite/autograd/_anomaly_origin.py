"""Where a non-finite value was born, and why: the analysis behind `tl.autograd.AnomalyError`.

It runs only after anomaly mode has seen a NaN in forward or a NaN/Inf in backward, so it may take its time; the
normal path never imports it. From the entry where the value surfaced it walks the tape back along inputs that
were already non-finite (Inf is legal in forward, so an `exp` that overflowed may be far from the `sub` that
turned its Inf into NaN) to the first entry that made a non-finite value out of finite ones. The cause is read
from that entry's values, never from its name alone: NaN out of finite values is 'invalid'; Inf where an input
is exactly 0 is 'divide-by-zero'; any other Inf is 'overflow'; a value already non-finite in a leaf or constant
is 'input'; a backward NaN where the incoming gradient is 0 (the branch was discarded in forward, 0 * inf in its
VJP) is 'masked-branch'.
"""
import numpy as np

CAUSES = ("overflow", "invalid", "divide-by-zero", "input", "masked-branch")
_PATH_SHOWN = 8  # longer paths show their first and last entries

_FIX = {
    "overflow": "keep the values in range: subtract the maximum before exp (F.softmax, F.log_softmax and "
                "tl.logsumexp do), clamp the argument (x.clamp(max=...)), rescale the inputs or lower the learning "
                "rate; move to float64 only if such a range is genuine",
    "divide-by-zero": "keep the argument away from 0: add an epsilon to the denominator (a / (b + 1e-12)) or clamp "
                      "it (x.clamp(min=1e-12).log())",
    "invalid": "keep the argument inside the operation's domain: clamp before log or sqrt (x.clamp(min=1e-12)), add "
               "an epsilon to a denominator that can be 0, or use the stable built-ins (F.log_softmax, "
               "F.cross_entropy)",
    "input": "the value was non-finite before it reached this graph: find where it was made (the data, a mask "
             "built with inf, a computation outside the graph) and clean it first; tl.isfinite(x).all() checks a "
             "batch and tl.where(tl.isfinite(x), x, 0.0) replaces the bad elements",
    "masked-branch": "apply where to the input before the unsafe operation, so that the discarded branch sees a "
                     "harmless value and its gradient is a plain 0: safe = tl.where(mask, x, 1.0); "
                     "y = tl.where(mask, safe.log(), 0.0)",
}


class Finding:
    """What the analysis found; AnomalyError takes its fields, and `message()` explains them."""
    __slots__ = ("phase", "entry", "origin", "cause", "path", "detail", "surfaced", "masked_by")

    def __init__(self, phase, entry, origin, cause, path, detail, surfaced, masked_by=()):
        self.phase, self.entry, self.origin, self.cause, self.path = phase, entry, origin, cause, path
        self.detail, self.surfaced, self.masked_by = detail, surfaced, masked_by

    def message(self):
        o = self.origin
        lines = [f"Anomaly detected in {self.phase}: {self.surfaced}",
                 f"  origin: '{o.name}' recorded at {o.source_path or '(unknown line)'}{_module(o)} -- "
                 f"{self.cause}: {self.detail}",
                 f"  path: {describe_path(self.path)}"]
        if self.cause == "masked-branch":
            lines.append("  discarded by: " + (", ".join(f"'{c.name}' at {c.source}" for c in self.masked_by)
                                               if self.masked_by else "a where/mask/max downstream (recorded "
                                               "outside anomaly mode)"))
        lines.append(f"  fix: {_FIX[self.cause]}")
        lines.append("  see it: err.draw() draws the graph with this path in red (or tl.viz.draw(output, "
                     "highlight=err))")
        return "\n".join(lines)


# ----- values -----
def array_of(x):
    """The ndarray behind a Tensor, an engine IndexGrad (sparse getitem gradient) or an array; None stays None."""
    if x is None or isinstance(x, np.ndarray):
        return x
    return x._data if hasattr(x, "_data") else np.asarray(x.data)


def nonfinite(a):
    return a is not None and a.dtype.kind in "fc" and not np.isfinite(a).all()


def _at(a, mask):
    """The elements of `a` at `mask`'s True positions when `a` broadcasts to mask's shape, else None."""
    try:
        return np.broadcast_to(a, mask.shape)[mask]
    except ValueError:
        return None


def value_cause(arrays, result):
    """The cause of `result`'s non-finite elements, made from finite `arrays` (an entry's inputs, or a VJP's)."""
    bad = ~np.isfinite(result)
    if np.isnan(result).any():
        return "invalid"
    for a in arrays:
        if a is not None and a.dtype.kind in "fc":
            vals = _at(a, bad)
            if vals is not None and (vals == 0).any():
                return "divide-by-zero"
    return "overflow"


def _num(v):
    v = float(v)
    if v == 0 or (np.isfinite(v) and 1e-4 <= abs(v) < 1e7):
        return np.format_float_positional(v, precision=6, trim="0")
    return f"{v:.4g}"


def _range(vals):
    lo, hi = vals.min(), vals.max()
    return _num(lo) if lo == hi else f"values in [{_num(lo)}, {_num(hi)}]"


def describe_values(arrays, mask):
    """'1000.0' or '(0.0, values in [-1.0, 2.0])': each float input at the bad positions (the whole array when
    its shape does not line up with the result's)."""
    parts = []
    for a in arrays:
        if a is None or a.dtype.kind not in "fc" or a.size == 0:
            continue
        vals = _at(a, mask)
        parts.append(_range(vals if vals is not None and vals.size else a))
    return parts[0] if len(parts) == 1 else "(" + ", ".join(parts) + ")"


def _outcome(result, mask):
    vals = np.unique(result[mask])
    return ", ".join(_num(v) for v in vals[:3])


def verb(cause, name, dtype, result, mask):
    """How `name` went wrong, in words: 'overflows float64 above 709.8'."""
    if cause == "overflow":
        info = np.finfo(dtype)
        limit = f"above {np.log(info.max):.1f}" if name == "exp" else f"(largest finite: {_num(info.max)})"
        return f"overflows {np.dtype(dtype).name} {limit}"
    if cause == "divide-by-zero":
        return f"divides by zero (gives {_outcome(result, mask)})"
    return "has no value (gives NaN: 0/0, inf - inf, 0 * inf, or log or sqrt of a negative number)"


# ----- the tape -----
def inputs_seen(entry):
    """The entry's input Tensors as it saw them (in-place changes resolved), or None once backward freed them."""
    if entry.saved is None:
        return None
    from .engine import _as_seen_by
    return [_as_seen_by(t, entry.seq) for t in entry.saved]


def _traceable(t):
    e = t._entry
    return e is not None and e.saved is not None


def trace_back(entry):
    """(origin, path, culprit): follow non-finite inputs back from `entry` to the earliest entry whose inputs
    were all finite (culprit None), or that read a non-finite leaf, constant or freed value (culprit: the input
    index and Tensor). `path` runs from the origin to `entry`. A loop, never recursion."""
    path = [entry]
    e = entry
    while True:
        ins = inputs_seen(e) or []
        bad = [(i, t) for i, t in enumerate(ins) if nonfinite(t._data)]
        if not bad:
            return e, path[::-1], None
        follow = next(((i, t) for i, t in bad if _traceable(t)), None)
        if follow is None:
            return e, path[::-1], bad[0]
        e = follow[1]._entry
        path.append(e)


def describe_path(path):
    shown = [f"'{e.name}' ({e.source or 'unknown line'})" for e in path]
    if len(shown) > _PATH_SHOWN:
        half = _PATH_SHOWN // 2
        shown = shown[:half] + [f"... {len(shown) - 2 * half} more ..."] + shown[-half:]
    return " -> ".join(shown)


def _module(e):
    return f" in module '{e.scope.path or e.scope.type_name}'" if e.scope is not None else ""


def _input_kind(t, entry):
    if t._entry is not None:
        return f"made by '{t._entry.name}' at {t._entry.source} in a graph whose saved values were freed"
    if not t.requires_grad:
        return "a constant (a tensor that does not require grad)"
    name = _parameter_name(t, entry.scope)
    return f"the parameter '{name}' (a leaf tensor)" if name else "a leaf tensor"


def _parameter_name(t, scope):
    """The dotted name of `t` among the parameters of the outermost live module around `scope`, or None."""
    root = None
    while scope is not None:
        m = scope.module_ref() if scope.module_ref is not None else None
        root = m if m is not None else root
        scope = scope.parent
    if root is None or not hasattr(root, "named_parameters"):
        return None
    return next((n for n, p in root.named_parameters() if p is t), None)


def input_detail(entry, culprit):
    i, t = culprit
    a = t._data
    nan, inf = int(np.isnan(a).sum()), int(np.isinf(a).sum())
    return (f"input {i} of '{entry.name}' ({'x'.join(map(str, a.shape)) or 'scalar'} {a.dtype}) already held "
            f"{nan} nan and {inf} inf of its {a.size} elements: it is {_input_kind(t, entry)}")


def forward_detail(origin, culprit):
    """(cause, detail) of a forward origin: what its finite inputs made, or which input was already bad."""
    if culprit is not None:
        return "input", input_detail(origin, culprit)
    ins = [t._data for t in inputs_seen(origin)]
    out = origin.out_data
    cause = value_cause(ins, out)
    mask = np.isnan(out) if cause == "invalid" else ~np.isfinite(out)
    return cause, f"{origin.name} of {describe_values(ins, mask)} {verb(cause, origin.name, out.dtype, out, mask)}"


# ----- the two phases -----
def analyze_forward(entry):
    """A NaN in `entry`'s forward output."""
    origin, path, culprit = trace_back(entry)
    cause, detail = forward_detail(origin, culprit)
    return Finding("forward", entry, origin, cause, path, detail, f"forward of {entry.describe()} produced NaN")


def analyze_backward(entry, index, grad, masked_by):
    """A NaN/Inf in the gradient `grad` that `entry`'s VJP returned for input `index`; `masked_by`: the entries
    that consumed `entry`'s output in forward (named when the cause is a masked branch)."""
    kind = "NaN" if np.isnan(grad).any() else "inf"
    surfaced = f"the backward of {entry.describe()} returned {kind} values in its gradient for input {index}"
    incoming = entry.grad
    ins = [t._data for t in inputs_seen(entry)]
    if nonfinite(incoming):
        detail = (f"the gradient arriving at '{entry.name}' already held non-finite values: it came from the "
                  f"gradient passed to backward() or from a gradient hook")
        return Finding("backward", entry, entry, "input", [entry], detail, surfaced)
    nan = np.isnan(grad)
    if nan.any() and _zero_incoming(incoming, nan) and _discarded(masked_by):
        origin, path, culprit = trace_back(entry)
        detail = (f"the gradient reaching '{entry.name}' is 0 where its backward made NaN, because the value was "
                  f"discarded downstream in forward; but its local derivative there is infinite ('{entry.name}' of "
                  f"{describe_values(ins, nan)}), and 0 * inf = NaN")
        if origin is not entry or culprit is not None:
            detail += f"; the infinite value was made upstream: {forward_detail(origin, culprit)[1]}"
        return Finding("backward", entry, origin, "masked-branch", path, detail, surfaced, tuple(masked_by))
    if any(nonfinite(a) for a in ins) or nonfinite(entry.out_data):
        origin, path, culprit = trace_back(entry)  # a legal forward Inf that the VJP turned into NaN/Inf
        cause, detail = forward_detail(origin, culprit)
        detail += f" in forward, and that value reached the backward of '{entry.name}'"
        return Finding("backward", entry, origin, cause, path, detail, surfaced)
    mask = ~np.isfinite(grad)
    cause = value_cause(ins, grad)
    detail = (f"the backward of '{entry.name}' at {describe_values(ins, mask)} "
              f"{verb(cause, entry.name, grad.dtype, grad, mask)}")
    return Finding("backward", entry, entry, cause, [entry], detail, surfaced)


# primitives whose forward can drop (part of) an input, so that the gradient it passes back there is exactly 0.
# A 0 that arrives through anything else (1 / exp(x), log(1 + exp(x)), sigmoid at +inf) is a saturated
# derivative of a value that overflowed, not a discarded branch: that NaN's cause is the overflow.
_DISCARDING = frozenset({"where", "mask", "clamp", "relu", "maximum", "minimum", "abs", "amax", "amin", "getitem",
                         "gather", "index_put", "mul"})


def _discarded(masked_by):
    """True when one of the consumers (or a `where` downstream) can have discarded the value; unknown consumers
    (recorded outside anomaly mode) and users' Functions count as possible maskers."""
    return not masked_by or any(e.name in _DISCARDING or getattr(e, "ctx", None) is not None for e in masked_by)


def _zero_incoming(incoming, mask):
    """True when the incoming gradient is 0 at some of `mask`'s positions (lined up by broadcasting either way;
    shapes that do not line up, as through a matmul, fall back to 'has any zero')."""
    vals = _at(incoming, mask)
    if vals is None:
        try:
            vals = incoming[np.broadcast_to(mask, incoming.shape)]
        except ValueError:
            vals = incoming
    return bool((vals == 0).any())
