"""ONNX rules of the elementwise primitives (see Primitive.defonnx; the unary ones are in unary_onnx.py), and of the
NumPy masks their VJPs compute outside the primitives (so an exported gradient recomputes them). No onnx import:
the export passes `g`."""
import numpy as np

from . import elementwise as ew
from ..compile import hooks
from ..onnx.rules import defhost

_ONE_NODE = {"neg": "Neg", "add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div", "pow": "Pow", "maximum": "Max",
             "minimum": "Min"}


def same_dtype_inputs(g, call):
    """The inputs cast to the output dtype (relu's VJP multiplies by a bool mask: NumPy casts inside)."""
    return [g.cast(n, a.dtype, call.out_dtype) for n, a in zip(call.inputs, call.arrays)]


def one_node(op_type):
    """The rule of a primitive that is one ONNX operator on its (dtype-matched) inputs."""
    def rule(g, call):
        return g.op(op_type, *same_dtype_inputs(g, call))
    rule.__doc__ = f"One {op_type} node."
    return rule


for _name, _op in _ONE_NODE.items():
    getattr(ew, {"pow": "pow_"}.get(_name, _name)).defonnx(one_node(_op))


@ew.clamp.defonnx
def _(g, call):
    """Max then Min with scalar bounds (NumPy's order; Clip would need both bounds' dtype handled alike)."""
    out = call.inputs[0]
    lo, hi = call.attrs
    if lo is not None:
        out = g.op("Max", out, g.scalar(lo, call.out_dtype))
    if hi is not None:
        out = g.op("Min", out, g.scalar(hi, call.out_dtype))
    return out if out is not call.inputs[0] else g.op("Identity", out)


@ew.where.defonnx
def _(g, call):
    """Where(cond as bool, a, b)."""
    c, a, b = call.inputs
    return g.op("Where", g.cast(c, call.arrays[0].dtype, np.bool_), *same_dtype_inputs(g, call)[1:])


def _python_mod(g, a, b, dtype):
    """a mod b with b's sign (NumPy's mod, PyTorch's remainder): ONNX's Mod with fmod=0 is that for integers; for
    floats only fmod=1 (C's sign of a) exists, so b is added where the signs differ, as NumPy does."""
    if np.dtype(dtype).kind != "f":
        return g.op("Mod", a, b, fmod=0)
    r = g.op("Mod", a, b, fmod=1)
    return g.op("Where", _other_sign(g, r, b, dtype), g.op("Add", r, b), r)


def _other_sign(g, r, b, dtype):
    """Where C's remainder r (a's sign) is non-zero and its sign is not b's: where % and // correct C's answer."""
    zero = g.scalar(0, dtype)
    return g.op("And", g.op("Not", g.op("Equal", r, zero)), g.op("Xor", g.op("Less", r, zero), g.op("Less", b, zero)))


@ew.remainder.defonnx
def _(g, call):
    a, b = same_dtype_inputs(g, call)
    return _python_mod(g, a, b, call.out_dtype)


@defhost(np.floor_divide)
def _(g, call):
    """floor(a / b) as NumPy computes it: (a - a mod b) / b, rounded (exact: a - a mod b is a multiple of b);
    integers: C's truncating Div, one less where the remainder is non-zero and the signs differ."""
    a_arr, b_arr = (np.asarray(x) for x in call.attrs[:2])
    dt = np.result_type(a_arr, b_arr)
    a, b = g.cast(g.tensor(a_arr), a_arr.dtype, dt), g.cast(g.tensor(b_arr), b_arr.dtype, dt)
    if dt.kind == "f":
        return g.op("Round", g.op("Div", g.op("Sub", a, _python_mod(g, a, b, dt)), b))
    down = _other_sign(g, g.op("Mod", a, b, fmod=1), b, dt)
    return g.op("Sub", g.op("Div", a, b), g.op("Cast", down, to=g.dtype(dt)))


@ew.cast.defonnx
def _(g, call):
    return g.op("Cast", call.inputs[0], to=g.dtype(call.out_dtype))


# ---------------- the masks of the elementwise VJPs ----------------
def _compare(op_type):
    def rule(g, call):
        x = call.attrs[0]
        return g.op(op_type, g.tensor(x), g.scalar(0, x.dtype))
    return rule


defhost(hooks.positive)(_compare("Greater"))  # leaky_relu's and the losses' masks
defhost(hooks.negative)(_compare("Less"))
defhost("tinygrad_lite.predicates._zeros_of")(_compare("Equal"))  # norm's masks (recorded by every capture)


@defhost("tinygrad_lite.nn.loss._near_bounds")
def _(g, call):
    """binary_cross_entropy's mask: x (1 - x) < PyTorch's 1e-12 floor, where the input's slope is set apart."""
    from ..nn.loss import _BCE_EPS
    x = call.attrs[0]
    t = g.tensor(x)
    return g.op("Less", g.op("Mul", t, g.op("Sub", g.scalar(1, x.dtype), t)), g.scalar(_BCE_EPS, x.dtype))


_COMPARISONS = {"equal": ("Equal", False), "not_equal": ("Equal", True), "less": ("Less", False),
                "less_equal": ("LessOrEqual", False), "greater": ("Greater", False),
                "greater_equal": ("GreaterOrEqual", False)}


_LOGICAL = {"logical_and": "And", "logical_or": "Or", "logical_xor": "Xor", "bitwise_and": "And",
            "bitwise_or": "Or", "bitwise_xor": "Xor"}


@defhost("tinygrad_lite.operators._compare_arrays")
def _(g, call):
    """`&`, `|`, `^`: And/Or/Xor on bools, BitwiseAnd/Or/Xor on integers; logical_and/or/xor: And/Or/Xor of the
    inputs read as bools (nonzero is True)."""
    ufunc, a, b = call.attrs
    name = ufunc.__name__
    dt = np.result_type(a.dtype, b.dtype)
    if name.startswith("logical") or dt.kind == "b":
        return g.op(_LOGICAL[name], g.cast(g.tensor(a), a.dtype, np.bool_), g.cast(g.tensor(b), b.dtype, np.bool_))
    return g.op("Bitwise" + _LOGICAL[name], g.cast(g.tensor(a), a.dtype, dt), g.cast(g.tensor(b), b.dtype, dt))


def _comparison(op_type, negate):
    def rule(g, call):
        """A Tensor comparison (`x <= min_val`, the masks of hardtanh and the other activations): one ONNX comparison
        on the promoted dtype, Not(Equal) for !=."""
        a, b = call.attrs
        dt = np.result_type(a.dtype, b.dtype)
        out = g.op(op_type, g.cast(g.tensor(a), a.dtype, dt), g.cast(g.tensor(b), b.dtype, dt))
        return g.op("Not", out) if negate else out
    return rule


for _name, (_op_type, _negate) in _COMPARISONS.items():
    defhost(getattr(np, _name))(_comparison(_op_type, _negate))


@defhost(np.invert)
def _(g, call):
    """`~t`: Not of a bool tensor, BitwiseNot of an integer one."""
    x = call.attrs[0]
    return g.op("Not" if x.dtype.kind == "b" else "BitwiseNot", g.tensor(x))


@defhost(np.logical_not)
def _(g, call):
    x = call.attrs[0]
    return g.op("Not", g.cast(g.tensor(x), x.dtype, np.bool_))


@defhost(np.sign)
def _(g, call):
    return g.op("Sign", g.tensor(call.attrs[0]))


@defhost(hooks.astype)
def _(g, call):
    arr, dtype = call.attrs
    return g.cast(g.tensor(arr), arr.dtype, dtype)


@defhost(np.copy, "tinygrad_lite.shape._copied_index")  # (getitem's copy of an index array or tensor)
def _(g, call):
    a = call.attrs[0]
    return g.op("Identity", g.tensor(a if isinstance(a, np.ndarray) else a._data))


def bool_as(g, mask, dtype):
    return g.op("Cast", mask, to=g.dtype(dtype))


# ---------------- the `mask` primitive: a VJP's piecewise-constant factor, one small pattern per kind ----------------
MASK_RULES = {}  # kind -> rule(g, xs, arrays, args, dtype): the factor as `dtype` (reduce_onnx adds the tie shares)


def mask_kind(kind):
    def deco(fn):
        MASK_RULES[kind] = fn
        return fn
    return deco


@mask_kind("positive")
def _(g, xs, arrays, args, dt):
    return bool_as(g, g.op("Greater", xs[0], g.scalar(0, arrays[0].dtype)), dt)


@mask_kind("sign")
def _(g, xs, arrays, args, dt):
    return g.cast(g.op("Sign", xs[0]), arrays[0].dtype, dt)


@mask_kind("inside")
def _(g, xs, arrays, args, dt):
    """lo <= x <= hi (clamp's factor)."""
    keep = None
    for bound, op_type in zip(args, ("GreaterOrEqual", "LessOrEqual")):
        if bound is not None:
            test = g.op(op_type, xs[0], g.scalar(bound, arrays[0].dtype))
            keep = test if keep is None else g.op("And", keep, test)
    return g.fill(1, dt, arrays[0].shape) if keep is None else bool_as(g, keep, dt)


def _share(first):
    """maximum/minimum's factor: the winner gets 1, a tie 0.5 each (share of a when `first`, else of b)."""
    def rule(g, xs, arrays, args, dt):
        a, b = xs if first else xs[::-1]
        win = g.op("Greater" if args[0] else "Less", a, b)
        tie = g.op("Mul", bool_as(g, g.op("Equal", a, b), dt), g.scalar(0.5, dt))
        return g.op("Add", bool_as(g, win, dt), tie)
    return rule


mask_kind("share_a")(_share(True))
mask_kind("share_b")(_share(False))


@ew.mask.defonnx
def _(g, call):
    kind, args = call.attrs
    rule = MASK_RULES.get(kind)
    if rule is None:
        raise g.unsupported(f"mask kind {kind!r} has no ONNX rule")
    return rule(g, call.inputs, call.arrays, args, call.out_dtype)


@defhost(ew._pow_zero_masks)
def _(g, call):
    """(a == 0 & b >= 0, its complement as a's dtype), broadcast to the common shape (pow's VJP)."""
    a_arr, b_arr = call.attrs
    a, b = g.tensor(a_arr), g.tensor(b_arr)
    zero = g.op("And", g.op("Equal", a, g.scalar(0, a_arr.dtype)),
                g.op("GreaterOrEqual", b, g.scalar(0, b_arr.dtype)))
    shape = np.broadcast_shapes(a_arr.shape, b_arr.shape)
    zero = g.op("Expand", zero, g.ints(shape))
    return zero, bool_as(g, g.op("Not", zero), a_arr.dtype)


@defhost(ew._exponent_zero)
def _(g, call):
    """b == 0 (pow's VJP: where the base's gradient is exactly 0)."""
    (b_arr,) = call.attrs
    return g.op("Equal", g.tensor(b_arr), g.scalar(0, b_arr.dtype))
