"""`tl.nn.parallel.DistributedDataParallel`: one model replica per MPI rank, gradients averaged during backward.

Each rank runs forward and backward on its own batch; backward ends with every replica holding the gradient
averaged over the ranks, so the same optimizer step keeps the replicas identical. With per-rank batches of equal
size this gives the parameters that one process gets on the concatenated batch (a mean loss's gradient is the
mean of the per-batch gradients), for any optimizer.

Layers that use batch statistics (BatchNorm) normalise with each rank's own batch, as PyTorch's DDP does (that
is not the concatenated batch's statistics; use a larger per-rank batch or GroupNorm/LayerNorm when it matters).
With `broadcast_buffers=True` (the default) the buffers, such as BatchNorm's running averages, are copied from
rank 0 before every forward, so all ranks evaluate with rank 0's running statistics.

As in PyTorch, `state_dict()` keys carry the `module.` prefix; save `ddp.module.state_dict()` for a checkpoint that
loads into a plain model, and load a single-process checkpoint with `ddp.module.load_state_dict(...)` (or strip
the prefix with `consume_prefix_in_state_dict_if_present`).
"""
import contextlib
import weakref

from ..autograd import engine
from ..autograd.grad_mode import state as _grad_state
from .module import Module

__all__ = ["DistributedDataParallel", "consume_prefix_in_state_dict_if_present"]


def _dist():
    from .. import distributed  # imported when used: tl.nn loads without the distributed package's machinery
    return distributed


class DistributedDataParallel(Module):
    """Wrap `module` for data-parallel training over the ranks of `tl.distributed.init_process_group`.

    Parameters and buffers are broadcast from rank 0 when wrapped. During backward, gradients are averaged in
    buckets of at most `bucket_cap_mb` MiB (25 by default), each all-reduced (non-blocking) as soon as its
    gradients are final and waited for before backward returns. Every parameter that requires grad must get a
    gradient in every backward unless `find_unused_parameters=True` (then one that no rank used keeps its `.grad`).
    `device_ids`, `output_device` and `dim` are accepted for PyTorch code."""

    def __init__(self, module, device_ids=None, output_device=None, dim=0, broadcast_buffers=True,
                 process_group=None, bucket_cap_mb=None, find_unused_parameters=False, **kwargs):
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel: module must be a tl.nn.Module, got {type(module).__name__}")
        bucket_cap_mb = 25 if bucket_cap_mb is None else bucket_cap_mb
        if not bucket_cap_mb > 0:
            raise ValueError(f"DistributedDataParallel: bucket_cap_mb must be positive, got {bucket_cap_mb!r}")
        dist = _dist()
        dist.get_world_size()  # PyTorch's error when there is no process group
        named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        if not named:
            raise RuntimeError("DistributedDataParallel is not needed when a module doesn't have any parameter that "
                               "requires a gradient.")
        self.module = module
        self.broadcast_buffers = bool(broadcast_buffers)
        self.find_unused_parameters = bool(find_unused_parameters)
        self.require_backward_grad_sync = True
        self._sync_next_backward = False
        from ..distributed.collectives import broadcast_tensors
        from ..distributed.reducer import Reducer
        self._broadcast = broadcast_tensors
        broadcast_tensors(list(module.parameters()) + list(module.buffers()), 0,
                          "DistributedDataParallel (broadcasting parameters and buffers from rank 0)")
        self.reducer = Reducer(named, bucket_cap_mb, self.find_unused_parameters)
        _watch_backward(self)

    def forward(self, *args, **kwargs):
        """Sync buffers from rank 0 if asked, run the module, and arm the gradient averaging for the next
        backward (unless inside `no_sync()` or without grad mode: those leave the arming as it was)."""
        if _grad_state.capture is not None:  # under tl.compile: say why it runs eagerly before anything else does
            from ..distributed.reducer import NOT_RECORDED
            _grad_state.capture.fail(NOT_RECORDED)
        if self.broadcast_buffers:
            buffers = list(self.module.buffers())
            if buffers:
                self._broadcast(buffers, 0, "DistributedDataParallel (broadcasting buffers from rank 0)")
        if _grad_state.grad_enabled and self.require_backward_grad_sync:
            self._arm(True)  # a forward without grad or inside no_sync() leaves a pending synced backward armed,
        return self.module(*args, **kwargs)  # as PyTorch's (only a synced backward disarms)

    @contextlib.contextmanager
    def no_sync(self):
        """Gradient accumulation: backward passes of forwards run inside this block only add to the local `.grad`;
        the first synced backward afterwards averages the accumulated total."""
        old = self.require_backward_grad_sync
        self.require_backward_grad_sync = False
        try:
            yield
        finally:
            self.require_backward_grad_sync = old

    def _watch(self, roots):
        """The engine's question at the start of a backward: reduce in this one? (Once per synced forward.)"""
        if not self._sync_next_backward:
            return None
        self._arm(False)
        watch = self.reducer.watch(roots)
        if watch is None:  # a backward that does not reach this model leaves the forward armed
            self._arm(True)
        return watch

    def _arm(self, sync):
        """While a synced backward is due, the engine's watcher keeps this wrapper alive (as PyTorch's autograd
        hooks keep its reducer), so `DDP(model)(x).sum().backward()` still averages."""
        self._sync_next_backward = sync
        self._watcher.keep = self if sync else None


def _watch_backward(ddp):
    """Register `ddp` with the engine without keeping it alive (unless armed): the watcher unregisters itself
    when the wrapper is freed."""
    ref = weakref.ref(ddp, lambda _: engine.backward_watchers.remove(watcher))

    def watcher(roots):
        obj = ref()
        return None if obj is None else obj._watch(roots)

    watcher.keep = None
    ddp._watcher = watcher
    engine.backward_watchers.append(watcher)


def consume_prefix_in_state_dict_if_present(state_dict, prefix):
    """Strip `prefix` (e.g. 'module.') from the keys that start with it, in place (PyTorch's helper of the same
    name): turns a DistributedDataParallel state dict into one for the plain model."""
    for key in [k for k in state_dict if k.startswith(prefix)]:
        state_dict[key[len(prefix):]] = state_dict.pop(key)
