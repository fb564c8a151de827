"""The primitive set. Each module declares its primitives once (see registry.py); importing them registers them."""
from .registry import REGISTRY, Primitive, primitive, OpError
from . import elementwise, reduce, movement, linalg, conv  # noqa: F401  (registration)

__all__ = ["REGISTRY", "Primitive", "primitive", "OpError"]
