"""tinygrad_lite-compiled: impl_tl's cases with their step wrapped in ``tl.compile``, as a user would write it.

The compiled function is the case's ``compute(*args)`` (the eager step, backward and optimizer step included)
returning ``loss.item()`` (and, where check() reads a leaf the step makes, that leaf's gradient): the usual
training step, which replays. Its inputs are arguments, since a tensor the step made from data that is not an
argument would be frozen in a replay, and it keeps nothing on the case (an attribute it assigned would make it run
eagerly: a replay runs no Python); the caller keeps the result for ``check()``.
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
    compiled = tl.compile(lambda *args: _checked(*case.compute(*args)))

    def step(*args):
        case.compiled_out = out = compiled(*args)
        return out[0]
    step.stats = compiled.stats  # (the same dict, updated by each call)
    return step


def _checked(loss, *leaves):
    return (loss.item(), *[t.grad.detach() for t in leaves])


def stats(fn):
    return dict(fn.stats)
