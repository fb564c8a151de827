"""The primitive set. Each module declares its primitives once (see registry.py); importing them registers them."""
from .registry import REGISTRY, Primitive, primitive, OpError
from . import elementwise, unary, reduce, movement, index, linalg, conv  # noqa: F401  (registration)
from . import (elementwise_onnx, unary_onnx, reduce_onnx, movement_onnx, index_onnx, linalg_onnx,  # noqa: F401,E402
               conv_onnx)  # (ONNX rules)

__all__ = ["REGISTRY", "Primitive", "primitive", "OpError"]
