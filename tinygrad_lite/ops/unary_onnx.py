"""ONNX rules of the unary math and activation primitives (see Primitive.defonnx): one node each, with log1p and
the fused tanh/sigmoid gradients written out. No onnx import: the export passes `g`."""
from . import unary as un
from .elementwise_onnx import one_node, same_dtype_inputs

_ONE_NODE = {"exp": "Exp", "log": "Log", "sqrt": "Sqrt", "erf": "Erf", "sin": "Sin", "cos": "Cos", "tanh": "Tanh",
             "sigmoid": "Sigmoid", "relu": "Relu", "abs": "Abs"}


for _name, _op in _ONE_NODE.items():
    getattr(un, {"abs": "abs_"}.get(_name, _name)).defonnx(one_node(_op))


@un.log1p.defonnx
def _(g, call):
    """Log(1 + x): ONNX has no log1p (loses relative precision for |x| < 1e-7, within float32 rounding of 1+x)."""
    x, = same_dtype_inputs(g, call)
    return g.op("Log", g.op("Add", x, g.scalar(1, call.out_dtype)))


@un.tanh_grad.defonnx
def _(g, call):
    """g * (1 - y*y), the fused formula written out."""
    gr, y = same_dtype_inputs(g, call)
    one = g.scalar(1, call.out_dtype)
    return g.op("Mul", gr, g.op("Sub", one, g.op("Mul", y, y)))


@un.sigmoid_grad.defonnx
def _(g, call):
    """g * (1 - y) * y, the fused formula written out."""
    gr, y = same_dtype_inputs(g, call)
    return g.op("Mul", g.op("Mul", gr, g.op("Sub", g.scalar(1, call.out_dtype), y)), y)
