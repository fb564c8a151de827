"""The primitive set. Each module declares its primitives once (see registry.py); importing them registers them."""
from .registry import REGISTRY, Primitive, primitive, OpError
from . import elementwise, reduce, movement, linalg, conv  # noqa: F401  (registration)
from . import elementwise_onnx, reduce_onnx, movement_onnx, linalg_onnx, conv_onnx  # noqa: F401,E402  (ONNX rules)

__all__ = ["REGISTRY", "Primitive", "primitive", "OpError"]
