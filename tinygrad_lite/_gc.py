"""Pausing the cyclic garbage collector around work that makes many objects and frees none in cycles: backward
(every temporary dies by refcount) and tl.compile's capture and plan building. The collector would only re-scan the
whole (possibly million-entry) graph again and again. Pauses may overlap (threads, a hook that runs a backward), so
they are counted under a lock and the collector is on again when the last one ends."""
import gc
import threading

_gc_lock = threading.Lock()
_gc_depth = 0
_gc_was_enabled = False


def pause():
    global _gc_depth, _gc_was_enabled
    with _gc_lock:
        if _gc_depth == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_depth += 1


def resume():
    global _gc_depth
    with _gc_lock:
        _gc_depth -= 1
        if _gc_depth == 0 and _gc_was_enabled:
            gc.enable()


class paused_gc:
    """The cyclic garbage collector off for a block that makes many objects and frees none of them in cycles (a
    backward walk, a tl.compile capture, a plan built): otherwise each collection rescans everything made so far,
    and a 100,000-operation capture spent more time in the collector than in its own code."""

    def __enter__(self):
        pause()

    def __exit__(self, *exc):
        resume()
