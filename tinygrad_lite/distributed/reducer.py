"""Gradient averaging for DistributedDataParallel: parameters grouped into size-bounded buckets (one flat buffer
each), a bucket's non-blocking Iallreduce started as soon as all its gradients are final, all of them waited for
before backward returns.

The engine says when a gradient is final: at the start of a backward the reducer walks the graph once and notes,
for every parameter, the earliest-recorded entry that uses it; the engine runs entries in reverse recording order,
so once that entry's VJP is done the parameter's gradient for this backward is complete (engine.backward_watchers).
Buckets start in index order on every rank whatever the order of readiness, as MPI needs the same collective order
everywhere. What is reduced is the accumulated `.grad` (earlier `no_sync()` steps plus this one), as PyTorch does.
"""
import numpy as np

from ..autograd import recorder
from ..autograd.grad_mode import state
from ..tensor import Tensor
from .group import current, wait

NOT_RECORDED = ("DistributedDataParallel: the gradient all-reduce (an MPI collective on every rank) is not recorded "
                "by tl.compile; the DDP training step runs eagerly")

_UNUSED_HELP = (
    "Expected to have finished reduction in the prior iteration before starting a new one. This error indicates "
    "that your module has parameters that were not used in producing loss. You can enable unused parameter "
    "detection by passing the keyword argument `find_unused_parameters=True` to "
    "`tl.nn.parallel.DistributedDataParallel`, and by making sure all `forward` function outputs participate in "
    "calculating loss.")


def plan_buckets(params, cap_bytes):
    """Lists of parameter indices, in reverse registration order (roughly the order backward finishes them), a new
    bucket when the dtype changes or the next gradient would pass `cap_bytes` (a bucket holds at least one)."""
    buckets, size, dtype = [], 0, None
    for i in reversed(range(len(params))):
        arr = params[i]._data
        if not buckets or arr.dtype != dtype or size + arr.nbytes > cap_bytes:
            buckets.append([])
            size, dtype = 0, arr.dtype
        buckets[-1].append(i)
        size += arr.nbytes
    return buckets


class Reducer:
    """The bucket layout of one DistributedDataParallel; `watch(roots)` starts one backward's reduction."""

    def __init__(self, named_params, bucket_cap_mb, find_unused_parameters):
        self.names = [n for n, _ in named_params]
        self.params = [p for _, p in named_params]
        self.index = {id(p): i for i, p in enumerate(self.params)}
        self.find_unused = find_unused_parameters
        self.buckets = plan_buckets(self.params, int(bucket_cap_mb * 1024 * 1024))
        self.place = {}  # parameter index -> (bucket, offset)
        for b, members in enumerate(self.buckets):
            offset = 0
            for i in members:
                self.place[i] = (b, offset)
                offset += self.params[i]._data.size
        self.sizes = [sum(self.params[i]._data.size for i in members) for members in self.buckets]
        self.launched_early = 0  # buckets of the last backward started before its walk ended (overlap)

    def last_uses(self, roots):
        """Parameter index -> the earliest-recorded entry using it, for the parameters reachable from `roots`."""
        last = {}
        for e in recorder.reachable(roots):  # in recording order: the first use seen is the earliest
            for p in e.parents:
                if p.__class__ is not recorder.Entry and p is not None:
                    i = self.index.get(id(p))
                    if i is not None and i not in last:
                        last[i] = e
        return last

    def watch(self, roots):
        """A _Round for this backward, or None when it reaches none of the parameters."""
        if state.capture is not None:  # this call runs eagerly, as every later one (stats['last_reason'] says why)
            state.capture.fail(NOT_RECORDED)
        last = self.last_uses(roots)
        if not last:
            return None
        unused = [i for i in range(len(self.params)) if i not in last]
        if unused and not self.find_unused:
            names = ", ".join(self.names[i] for i in unused)
            raise RuntimeError(f"{_UNUSED_HELP} Parameters which did not receive grad for rank "
                               f"{current().rank}: {names}")
        return _Round(self, last, unused)


class _Round:
    """One backward's reduction: the engine calls `after[entry](leaf_grads)` during the walk, then `finish()`."""

    def __init__(self, reducer, last, unused):
        self.r = reducer
        self.group = current()
        self.bufs = [np.empty(n, dtype=reducer.params[m[0]]._data.dtype) for n, m in zip(reducer.sizes,
                                                                                        reducer.buckets)]
        self.missing = [len(m) for m in reducer.buckets]
        self.pending = set(range(len(reducer.params)))
        self.requests, self.launched, self.walking = [], 0, True
        self.used = self._count_use(unused)
        by_entry = {}
        for i, e in last.items():
            by_entry.setdefault(e, []).append(i)
        self.after = {e: self._ready_after(ids) for e, ids in by_entry.items()}
        reducer.launched_early = 0
        for i in unused:  # nothing will come: their share is the gradient accumulated so far (or zeros)
            self.ready(i, self._grad_so_far(i))

    def _count_use(self, unused):
        """With find_unused_parameters: which parameters some rank used (a MAX all-reduce, started first)."""
        if not self.r.find_unused:
            return None
        used = np.ones(len(self.r.params), dtype=np.uint8)
        used[unused] = 0
        self.requests.append(self.group.comm.Iallreduce(self.group.mpi.IN_PLACE, used, op=self.group.mpi.MAX))
        return used

    def _grad_so_far(self, i):
        g = self.r.params[i]._grad
        return None if g is None else g._data

    def _ready_after(self, ids):
        def ready(leaf_grads):
            for i in ids:
                p = self.r.params[i]
                if p._hooks:  # the leaf's hooks may change the gradient at delivery: read `.grad` then
                    continue
                g = leaf_grads.get(id(p))
                so_far = self._grad_so_far(i)
                if g is None:
                    self.ready(i, so_far)
                else:
                    self.ready(i, g._data if so_far is None else so_far + g._data)
        return ready

    def ready(self, i, grad):
        """Copy parameter i's final gradient (None: zeros) into its bucket; start every complete bucket in order."""
        self.pending.discard(i)
        b, offset = self.r.place[i]
        n = self.r.params[i]._data.size
        self.bufs[b][offset:offset + n] = 0 if grad is None else grad.reshape(-1)
        self.missing[b] -= 1
        if self.missing[b] == 0:
            self._launch()

    def _launch(self):
        MPI, comm = self.group.mpi, self.group.comm
        while self.launched < len(self.bufs) and not self.missing[self.launched]:
            self.requests.append(comm.Iallreduce(MPI.IN_PLACE, self.bufs[self.launched], op=MPI.SUM))
            self.launched += 1
            self.r.launched_early += self.walking
        MPI.Request.Testall(self.requests)  # lets MPI progress the reductions already started

    def finish(self):
        """After `.grad` is delivered: add the parameters not seen during the walk, wait, write the averages."""
        self.walking, self.after = False, {}
        for i in sorted(self.pending):
            self.ready(i, self._grad_so_far(i))
        wait(self.requests, "DistributedDataParallel gradient all-reduce")
        for b, members in enumerate(self.r.buckets):
            self.bufs[b] /= self.group.size
            for i in members:
                if self.used is None or self.used[i]:
                    self._write(i, b)

    def _write(self, i, b):
        """`.grad` becomes a view of this backward's bucket (a fresh buffer each backward, so never shared)."""
        p = self.r.params[i]
        offset = self.r.place[i][1]
        view = self.bufs[b][offset:offset + p._data.size].reshape(p._data.shape)
        if p._grad is None:
            p._grad = Tensor._wrap(view)
        else:
            p._grad._data = view
