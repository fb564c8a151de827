"""The stale-graph watch run after every backward(): warns once (StaleGraphWarning) when the graph of the call
STALE_GRAPH_STEPS calls ago is still alive; `keep_graph` exempts a graph kept on purpose (LBFGS's first loss)."""
import collections
import sys
import warnings
import weakref

from . import recorder as tape


STALE_GRAPH_STEPS = 20  # backward calls after which a still-alive old graph is worth a warning
_recent_roots = collections.deque()
_warned_stale = False
_kept_on_purpose = weakref.WeakSet()  # root entries library code keeps alive by design (LBFGS's first loss)


def keep_graph(tensor):
    """Tell the stale-graph watch that `tensor`'s graph is kept alive on purpose (no warning for it)."""
    if tensor._entry is not None:
        _kept_on_purpose.add(tensor._entry)


class StaleGraphWarning(UserWarning):
    """A graph that backward() already went through is still alive many steps later (a kept `loss`)."""


def _watch_for_stale_graphs(tensors):
    """Warn once when the graph of a backward call from STALE_GRAPH_STEPS calls ago is still alive: the classic
    `total_loss += loss` (instead of `loss.item()`) that keeps every step's graph in memory."""
    global _warned_stale
    if _warned_stale:
        return
    for t in tensors:
        if t._entry is not None:
            _recent_roots.append(weakref.ref(t._entry))
    while len(_recent_roots) > STALE_GRAPH_STEPS:
        old = _recent_roots.popleft()()
        if old is not None and old not in _kept_on_purpose:
            _warned_stale = True
            _recent_roots.clear()
            frame = sys._getframe(1)
            while frame is not None and frame.f_code.co_filename.startswith(tape._PKG_DIR):
                frame = frame.f_back
            where = (frame.f_code.co_filename, frame.f_lineno, frame.f_globals) if frame else ("<unknown>", 0, {})
            warnings.warn_explicit(  # at the user's backward() line, shown by Python's default filters
                f"the graph of a backward() call made {STALE_GRAPH_STEPS} calls ago is still alive (its output "
                f"{old.describe()}). Keeping a loss tensor across steps (e.g. `total += loss` or "
                f"`losses.append(loss)`) keeps every step's graph in memory; use `loss.item()` or `loss.detach()`.",
                StaleGraphWarning, where[0], where[1], registry=where[2].setdefault("__warningregistry__", {}))
            return
