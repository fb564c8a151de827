"""What an ONNX rule sees, and the registry of rules for host computations. Imports neither onnx nor the ops.

A primitive's rule is declared in `ops/<group>_onnx.py` with `prim.defonnx(rule)`; a NumPy computation that the
library runs outside the primitives through `compile.hooks.host` (a VJP's mask, max-pooling's argmax) gets its
rule with `@defhost(fn)` there too, so that the masks of a gradient are computed in the graph, not frozen.

    rule(g, call) -> the ONNX name of the output (a tuple of names for a host computation with several outputs)

`call` is a `Call`; `g` is the graph under construction (`tinygrad_lite.onnx.graph.Builder`): `g.op(type,
*inputs, **attributes)` adds a node and returns its output name, `g.const(array)` an initializer, `g.ints(seq)` an
int64 1-D tensor from ints that may be dynamic (`Dim`), `g.tensor(array)` the name of any array met in the
recording (an input, a parameter, a recorded result, or else a constant), `g.cast(name, dtype)`, and
`g.unsupported(why)` the ExportError to raise.
"""
from dataclasses import dataclass, field

HOST_RULES = {}


def host_key(fn):
    """A stable key for a host function: its module and qualified name (NumPy's functions and ufuncs included); a
    wrapper (`compile.hooks.host` wraps a function returning NumPy scalars) is keyed by the function it wraps."""
    fn = getattr(fn, "__wrapped__", fn)
    return f"{getattr(fn, '__module__', None) or 'numpy'}.{getattr(fn, '__qualname__', fn.__name__)}"


def defhost(*fns):
    """Register `rule(g, call)` for the host function(s) `fns` (functions or 'module.qualname' strings, for
    functions whose module the ops must not import)."""
    def deco(rule):
        for fn in fns:
            HOST_RULES[fn if isinstance(fn, str) else host_key(fn)] = rule
        return rule
    return deco


class Dim(int):
    """A recorded int that depends on dynamic axes: `scale * prod(symbols) + offset` at run time. It is still the
    recorded int, so a rule that ignores it exports the recorded size; `g.ints` turns it into Shape/Gather
    arithmetic, and the exporter refuses a Dim that a rule did not consume."""
    expr = None
    used = False

    def __new__(cls, value, expr):
        d = super().__new__(cls, value)
        d.expr = expr  # (scale, symbols, offset)
        return d


@dataclass
class Call:
    """One recorded call, as a rule sees it.

    name: primitive or host function name; inputs: ONNX names of the tensor inputs (a primitive) or None;
    arrays: the recorded input arrays (dtype, shape); attrs: a primitive's attributes or a host function's
    arguments (arrays left as arrays: `g.tensor(a)` names them); out: the recorded output array(s)."""
    name: str
    inputs: list
    arrays: list
    attrs: tuple
    out: object
    where: str = field(default="")

    @property
    def out_dtype(self):
        return self.out.dtype

    @property
    def out_shape(self):
        return self.out.shape
