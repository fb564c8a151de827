"""Gradient checking that names the faulty primitive.

`gradcheck` and `gradgradcheck` follow PyTorch's semantics (all inputs that require grad, every output,
|a - n| <= atol + rtol * |n|, True or GradcheckError). Beyond PyTorch: Modules (parameters checked by name, on a
float64 copy, dropout made deterministic), elements near a kink reported as such rather than as errors, and on
failure the first tape entry whose backward disagrees with finite differences at its recorded inputs
(`err.faulty_entry`, also `find_faulty_entry(func, inputs)`).
"""
from .core import GradcheckKinkWarning, find_faulty_entry, gradcheck, gradgradcheck
from .entries import FaultyEntry
from .jacobian import GradcheckError

__all__ = ["gradcheck", "gradgradcheck", "GradcheckError", "GradcheckKinkWarning", "find_faulty_entry",
           "FaultyEntry"]

