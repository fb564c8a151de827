"""The stale-graph watch run after every backward(): warns once (StaleGraphWarning) when the graphs of
STALE_GRAPHS_PILED_UP backward calls, each made STALE_GRAPH_STEPS or more calls ago, are alive at once (graphs that
pile up); `keep_graph` exempts a graph kept on purpose (LBFGS's first loss)."""
import collections
import sys
import warnings
import weakref

from . import recorder as tape


STALE_GRAPH_STEPS = 20  # backward calls after which a graph still alive is old
# Old graphs alive at once that make a warning. One old graph is no leak: a finished training loop leaves its last
# losses in variables (a GAN's errD_real, errD_fake and errG) while the next loop runs; a leak keeps adding more.
STALE_GRAPHS_PILED_UP = 8
_recent_roots = collections.deque()
_old_roots = []  # weak references to the roots that were still alive when they left _recent_roots
_warned_stale = False
_kept_on_purpose = weakref.WeakSet()  # root entries library code keeps alive by design (LBFGS's first loss)


def keep_graph(tensor):
    """Tell the stale-graph watch that `tensor`'s graph is kept alive on purpose (no warning for it)."""
    if tensor._entry is not None:
        _kept_on_purpose.add(tensor._entry)


class StaleGraphWarning(UserWarning):
    """A graph that backward() already went through is still alive many steps later (a kept `loss`)."""


def _watch_for_stale_graphs(tensors):
    """Warn once when old graphs pile up: the classic `total_loss += loss` or `losses.append(loss)` (instead of
    `loss.item()`) that keeps every step's graph in memory."""
    global _warned_stale
    if _warned_stale:
        return
    for t in tensors:
        if t._entry is not None:
            _recent_roots.append(weakref.ref(t._entry))
    while len(_recent_roots) > STALE_GRAPH_STEPS:
        ref = _recent_roots.popleft()
        old = ref()
        if old is not None and old not in _kept_on_purpose:
            _old_roots.append(ref)
    if not _old_roots:
        return
    alive = [root for root in (ref() for ref in _old_roots) if root is not None]  # (held: none dies meanwhile)
    _old_roots[:] = [weakref.ref(root) for root in alive]
    if len(alive) >= STALE_GRAPHS_PILED_UP:
        oldest = alive[0]
        _warned_stale = True
        _recent_roots.clear()
        _old_roots.clear()
        frame = sys._getframe(1)
        while frame is not None and frame.f_code.co_filename.startswith(tape._PKG_DIR):
            frame = frame.f_back
        where = (frame.f_code.co_filename, frame.f_lineno, frame.f_globals) if frame else ("<unknown>", 0, {})
        warnings.warn_explicit(  # at the user's backward() line, shown by Python's default filters
            f"the graphs of {STALE_GRAPHS_PILED_UP} backward() calls made {STALE_GRAPH_STEPS} or more calls ago are "
            f"still alive (the oldest's output {oldest.describe()}). Keeping a loss tensor across steps (e.g. "
            f"`total += loss` or `losses.append(loss)`) keeps every step's graph in memory; use `loss.item()` or "
            f"`loss.detach()`.",
            StaleGraphWarning, where[0], where[1], registry=where[2].setdefault("__warningregistry__", {}))
