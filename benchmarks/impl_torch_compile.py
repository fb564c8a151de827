"""torch-compile: impl_torch's cases with their step (``run(*args)``, as eager) wrapped in ``torch.compile``
(default backend, inductor). Compilation happens on the first calls; torch.compile keeps no replay count, so
the runner takes calls 1-2 as its capture (call 2 may recompile: the gradients are None on call 1 only)."""
import torch

from .impl_torch import build, set_threads

__all__ = ["build", "set_threads", "compile_step", "stats", "CAPTURE_CALLS"]  # the runner's interface

CAPTURE_CALLS = 2


def compile_step(case):
    return torch.compile(case.run)


def stats(fn):
    return None
