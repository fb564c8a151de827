"""tinygrad_lite-compiled: impl_tl's cases with their step wrapped in ``tl.compile``, as a user would write it.

The compiled function is the case's ``run(*args)`` (the eager step, backward and optimizer step included)
returning ``loss.item()``: the usual training step, which replays. Its inputs are arguments, since a tensor
the step made from data that is not an argument would be frozen in a replay. ``run`` also keeps the loss and
leaf on the case for ``check()``; a replay runs no Python, so those stay from call 1 (the call checked).
"""
import tinygrad_lite as tl
from tinygrad_lite.compile.plan import INTERPRETED_REPLAYS

from . import impl_tl
from .impl_tl import build, set_threads

__all__ = ["build", "set_threads", "compile_step", "stats", "WARM_REPLAYS"]  # the runner's interface

# The first INTERPRETED_REPLAYS replays run the plan step by step; the next turns it into code: warm-up, not timed
# (the capture column counts the calls up to the first replay).
WARM_REPLAYS = INTERPRETED_REPLAYS


def __getattr__(name):  # impl_tl.build sets NOTE
    if name == "NOTE":
        return impl_tl.NOTE
    raise AttributeError(name)


def compile_step(case):
    return tl.compile(lambda *args: case.run(*args).item())


def stats(fn):
    return dict(fn.stats)
