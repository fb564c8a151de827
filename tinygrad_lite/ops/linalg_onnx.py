"""ONNX rule of matmul (see Primitive.defonnx): one MatMul node (NumPy's broadcasting batch dims are ONNX's)."""
from . import linalg


@linalg.matmul.defonnx
def _(g, call):
    return g.op("MatMul", *call.inputs)
