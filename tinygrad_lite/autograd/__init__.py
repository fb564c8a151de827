"""Autograd: the tape, the engine, grad mode, custom Functions and anomaly mode."""
from .grad_mode import no_grad, enable_grad, set_grad_enabled, is_grad_enabled, inference_mode
from .engine import backward, grad
from .stale import StaleGraphWarning
from .function import Function, FunctionCtx
from .anomaly import detect_anomaly, AnomalyError
from .recorder import tape, Entry, Scope
from .variable import Variable
from . import forward_ad

__all__ = ["no_grad", "inference_mode", "enable_grad", "set_grad_enabled", "is_grad_enabled", "backward", "grad",
           "Function", "FunctionCtx", "detect_anomaly", "AnomalyError", "tape", "Entry", "Scope", "StaleGraphWarning",
           "Variable", "forward_ad", "gradcheck", "gradgradcheck", "functional"]


def __getattr__(name):
    # torch.autograd.gradcheck / gradgradcheck / functional: gradcheck sits above autograd, so it loads on first use
    import importlib
    if name in ("gradcheck", "gradgradcheck"):
        return getattr(importlib.import_module("..gradcheck", __name__), name)
    if name == "functional":
        return importlib.import_module(".functional", __name__)
    raise AttributeError(f"module 'tinygrad_lite.autograd' has no attribute '{name}'")
