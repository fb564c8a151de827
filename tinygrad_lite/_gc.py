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


def promote():
    """Move every object the collector tracks into its oldest generation without scanning them (gc.freeze, then
    gc.unfreeze): a capture or a plan just built leaves hundreds of thousands of long-lived objects in the youngest
    generation, and the next collections would each rescan them all (a 100,000-operation plan's first replay spent
    1-2 s there, as much as the replay itself, depending on which generation came due). Objects are only promoted,
    never exempted: a later full collection still sees them. Skipped when the program froze objects itself (a
    server before fork), whose frozen set unfreeze would release."""
    if gc.get_freeze_count() == 0:
        gc.freeze()
        gc.unfreeze()
