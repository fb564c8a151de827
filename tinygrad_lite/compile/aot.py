"""A compiled function that returns tensors whose graph is still alive (`model = tl.compile(model)`; `loss =
crit(model(x), y)`; `loss.backward()` outside): the backward of the call's graph is recorded too, AOT-autograd
style, and split from the forward.

At the recorded call, after the forward, the backward of the returned tensors is recorded into the same capture,
one per subset of them that may get gradients (aot_record.py). The forward plan returns the outputs and the forward
arrays the backwards read ("saved").

A replay runs the forward plan and attaches its outputs to ONE tape entry (several outputs: each to a small entry
that hands its gradient to that one) whose VJP runs the backward plan on that call's saved arrays and incoming
gradients and returns the contributions, one entry input each (a parameter used twice appears twice): the engine
then sums each leaf's gradient in eager's order, so every `.grad` is eager's bit for bit. What a replay cannot
reproduce exactly (a backward that reads values into Python or writes outside its own arrays, a leaf made inside
the call, a graph recorded before the call, a gradient hook) raises Unsupported: the calls run eagerly.
"""
import numpy as np

from .record import ARG, SLOT, Op, Ref, map_structure
from .plan import Plan
from ..autograd import recorder as _recorder
from ..autograd.grad_mode import state


class _Out:
    """In the forward plan's result template: the place of returned graph output number `index`."""
    __slots__ = ("index",)

    def __init__(self, index):
        self.index = index


class _Part:
    """The part of a capture one plan is built from: a range of its operations (what Plan reads of a Capture)."""

    def __init__(self, cap, ops, nslots, guards=True):
        self.failure, self.ops, self.nslots, self.fail, self.ref = cap.failure, ops, nslots, cap.fail, cap.ref
        self.live, self.leaves, self.arg_grads, self.modules = \
            (cap.live, cap.leaves, cap.arg_grads, cap.modules) if guards else ({}, {}, {}, {})


def _remap(tmpl, remap):
    if isinstance(tmpl, Ref):
        return remap.get(tmpl.key, tmpl) if tmpl.kind == SLOT else tmpl
    if isinstance(tmpl, tuple) and hasattr(tmpl, "_fields"):
        return type(tmpl)(*[_remap(t, remap) for t in tmpl])
    if isinstance(tmpl, (tuple, list)):
        return type(tmpl)(_remap(t, remap) for t in tmpl)
    if isinstance(tmpl, slice):
        return slice(_remap(tmpl.start, remap), _remap(tmpl.stop, remap), _remap(tmpl.step, remap))
    if isinstance(tmpl, dict):
        return {k: _remap(v, remap) for k, v in tmpl.items()}
    return tmpl


def _stand_in(x, arrays, watch):
    """What the replay's entry takes as argument `x`, which has a graph of its own: where x's gradient goes (the
    backward reads x's values, if at all, as an input of their own: args_used). A stand-in holding x's graph as it
    is at the call, of version 0, so that changing x in place after the call (`h += block(h)`, `h.relu_()`,
    `detach_()`) makes the entry refuse only where eager's entries would: an operation of the call reads x (its
    own input), or, when an output or an array the backward reads is a view of x's memory, that memory was written
    (appended to `watch` as (x, version): the VJP checks it, as eager's view entries do)."""
    from ..tensor import Tensor
    data = x._data
    for a in arrays:
        if a.base is not None and np.may_share_memory(a, data):
            watch.append((x, x._version))
            break
    s = Tensor._wrap(data)
    s._entry, s.requires_grad = x._entry, True
    return s


class AotPlan:
    """A forward plan, and the backward plans its outputs' tape entry runs (see the module docstring). One returned
    tensor is the entry's output; several are each the output of a small entry that hands its gradient to a
    shared anchor entry (recorded before them, so the engine runs it after them all) and marks its place in the
    anchor's gradient; the anchor's VJP runs the backward of the outputs so marked."""
    counters = None  # (as Plan's)

    def __init__(self, cap, result, rec, lock, name):
        from ..ops.registry import Primitive
        outs = rec["outs"]
        index = {id(o): i for i, o in enumerate(outs)}
        marked = map_structure(result, lambda t: _Out(index[id(t)]) if id(t) in index else t)
        fwd_result = (marked, tuple(rec["out_refs"]), tuple(Ref(SLOT, k) for k in rec["saved"]))
        self.forward = Plan(_Part(cap, cap.ops[:rec["m"]], rec["nfwd"]), fwd_result)
        for attr in ("modules", "live", "leaves", "arg_grads"):
            setattr(self, attr, getattr(self.forward, attr))
        self.args_used, self.live_used = rec["args_used"], rec["live_used"]
        self.nargs, self.nouts = rec["nargs"], len(outs)
        base = self.nargs + self.nouts
        remap = {k: Ref(ARG, base + j) for j, k in enumerate(rec["saved"])}
        self.targets, self.backwards = [], {}  # subset -> (backward plan, its first entry input, its count)
        # the arguments and live tensors a backward's checks look at: (kind, index or tensor); per subset, which of
        # them it checks as read (_check_reads) and as viewed (_check_views)
        self.checked, self.checks_of, index = [], {}, {}
        for subset, (ops, targets, contrib, reads, views) in rec["backwards"].items():
            where = ([], [])
            for w, got in zip(where, (reads, views)):
                for ident, t in got.items():  # (kind, index or id) -> the live tensor, or None for an argument
                    j = index.get(ident)
                    if j is None:
                        j = index[ident] = len(self.checked)
                        self.checked.append((ident[0], ident[1] if t is None else t))
                    w.append(j)
            self.checks_of[subset] = where
            bops = []
            for op in ops:
                new = Op(op.fn, _remap(op.args, remap), op.outs, op.where, op.effect, op.kind, op.shapes)
                new.prim, new.ufunc, new.into, new.layout, new.views = op.prim, op.ufunc, op.into, op.layout, op.views
                bops.append(new)
            result = tuple(_remap(c, remap) for c, _ in contrib)
            plan = Plan(_Part(cap, bops, cap.nslots, guards=False), result)
            self.backwards[subset] = (plan, len(self.targets), len(targets), [sparse for _, sparse in contrib])
            self.targets += targets
        # arguments with a graph of their own that get a gradient (their values are read, if at all, as args_used)
        self.graph_args = sorted({key for kind, key in self.targets if kind == "arg" and key in rec["graph_args"]})
        self.dtype = outs[0]._data.dtype
        self.dtypes = [o._data.dtype for o in outs]  # of the placeholder gradients the backwards were recorded with
        self.lock = lock
        aliased = rec["aliased"]  # per output: a backward reads its memory, so changing it in place must refuse
        # Not "inputs": the entry's inputs are mostly the tensors its gradients go to, whose values the backward
        # may not read; those it reads are checked by _check_reads, as eager's entries that read them would
        self.prim = Primitive(f"compiled_{name}", None, ("call",), nin=None,
                              reads=("output",) if len(outs) == 1 and aliased[0] else ())
        self.prim.vjp = self._vjp
        self.out_prims = []
        for reads in (("output",), ()):
            prim = Primitive(f"compiled_{name}_output", None, ("call",), nin=None, reads=reads)
            prim.vjp = self._out_vjp
            self.out_prims.append(prim)
        self.out_prims = [self.out_prims[0] if a else self.out_prims[1] for a in aliased]
        # per output, eager's entries on its backward's path: a backward without retain_graph frees those of its
        # outputs, so a later one through another output must refuse only where the two paths share an entry
        self.paths = [rec["paths"][(i,)] for i in range(self.nouts)]
        if self.nouts > 1:
            self.prim.release = self._release

    def run(self, argv, call=None):
        from ..tensor import Tensor
        marked, outs, saved = self.forward.run(argv, call)
        watch = None  # arguments with a graph whose memory an output or a saved array views: (x, its version)
        if self.graph_args:
            arrays, watch = [t._data for t in outs] + [t._data for t in saved], []
            stand = {i: _stand_in(argv[i], arrays, watch) for i in self.graph_args}
            inputs = [stand.get(key, argv[key]) if kind == "arg" else key for kind, key in self.targets]
        else:
            inputs = [argv[key] if kind == "arg" else key for kind, key in self.targets]
        inputs += [x if isinstance(x, Tensor) else Tensor._wrap(x) for x in (argv[i] for i in self.args_used)]
        inputs += self.live_used
        # what the backward checks, as they are now (an argument with a graph: itself, not its stand-in, as eager's
        # entries hold it)
        read = [(t, t._version) for t in (argv[key] if kind == "arg" else key for kind, key in self.checked)]
        inputs += saved  # this call's forward arrays the backward reads (released with the entry's saved values)
        if len(outs) == 1:
            _recorder.record(self.prim, tuple(inputs), outs[0], ((self, None, watch, read, None),))
        else:
            holder = [None] * len(outs)  # each output's gradient in one backward, until the anchor's VJP runs
            anchor = Tensor._wrap(np.zeros(len(outs), self.dtype))
            freed = [(), set()]  # the outputs of the anchor's last backward; those whose path eager has freed
            _recorder.record(self.prim, tuple(inputs), anchor, ((self, holder, watch, read, freed),))
            for i, o in enumerate(outs):
                _recorder.record(self.out_prims[i], (anchor,), o, ((holder, i),))
        return map_structure(marked, lambda t: outs[t.index] if t.__class__ is _Out else t)

    def _out_vjp(self, entry, g):
        from ..tensor import Tensor
        if state.grad_enabled:
            self._no_create_graph()
        holder, i = entry.attrs[0]
        self._check_dtype(g, i)
        holder[i] = g._data
        mark = np.zeros(self.nouts, self.dtype)  # the anchor's gradient says which outputs got one in THIS backward
        mark[i] = 1
        return (Tensor._wrap(mark),)

    def _release(self, entry):
        """The engine's question after the anchor's VJP ran in a backward without retain_graph: free its saved
        values now? Only once every output's path was freed (eager frees the entries of the path that ran)."""
        freed = entry.attrs[0][4]
        freed[1].update(freed[0])
        return len(freed[1]) == self.nouts

    def _check_dtype(self, g, i):
        if g._data.dtype != self.dtypes[i]:  # eager's VJPs would compute in the gradient's dtype: other roundings
            raise RuntimeError(f"backward through the output of a tl.compile'd function ({self.prim.name}) with a "
                               f"gradient of dtype {g._data.dtype} for an output of dtype {self.dtypes[i]}: its "
                               f"backward was recorded for {self.dtypes[i]}; pass gradient=g.to({self.dtypes[i]})")

    def _no_create_graph(self):
        raise RuntimeError(f"backward with create_graph=True through the output of a tl.compile'd function "
                           f"({self.prim.name}): its backward is compiled and records no graph; call the function "
                           f"without tl.compile for higher-order gradients")

    def _vjp(self, entry, g):
        from ..autograd.index_grad import IndexGrad
        from ..tensor import Tensor
        if state.grad_enabled:
            self._no_create_graph()
        _, holder, watch, read, freed = entry.attrs[0]
        if holder is None:
            subset = (0,)
        else:
            got = g._data  # (not the holder's None-ness: a backward that raised midway may have left values)
            subset = tuple(i for i in range(self.nouts) if got[i] != 0)
            if any(self.paths[i] & self.paths[j] for i in subset for j in freed[1]):
                raise RuntimeError(
                    f"Trying to backward through the graph a second time: the values saved by {entry.describe()} "
                    f"for the outputs {sorted(freed[1])} were freed by an earlier backward, and this one (through "
                    f"the outputs {list(subset)}) needs some of them. Specify retain_graph=True on the first "
                    f"backward() (or autograd.grad()) call if you need to backward through the graph again.")
            freed[0] = subset
        reads, views = self.checks_of[subset]  # (this backward's: eager checks only the entries it runs)
        _check_reads(entry, [read[j] for j in reads])
        watch = (watch or []) + [read[j] for j in views]
        if watch:
            _check_views(entry, watch)
        if holder is None:
            self._check_dtype(g, 0)
            gs = [g._data]
        else:
            gs = [holder[i] if i in subset else None for i in range(self.nouts)]
            holder[:] = [None] * self.nouts
        saved = entry.saved
        nc = len(self.targets)
        argv = [None] * self.nargs + gs
        for i, t in zip(self.args_used, saved[nc:]):
            argv[i] = t._data
        argv += [t._data for t in saved[nc + len(self.args_used) + len(self.live_used):]]
        plan, first, count, sparse = self.backwards[subset]
        with self.lock:
            got = plan.run(argv)
        grads = [None] * len(saved)
        for j, (x, how) in enumerate(zip(got, sparse)):
            if how is None:
                grads[first + j] = x if isinstance(x, Tensor) else Tensor._wrap(x)
            else:
                (x, index), (shape, basic) = x, how
                grads[first + j] = IndexGrad(x if isinstance(x, Tensor) else Tensor._wrap(x), shape, index, basic)
        return tuple(grads)


def _check_reads(entry, read):
    """Raise as eager's entries that read an input do when it was changed in place after the call, or given new
    values and a new history by an in-place operation with a graph. `read`: (tensor, its version) for the arguments
    and live tensors this backward's plan reads and those that are inputs of an entry on its path that reads its
    inputs (eager's `x * p` refuses a changed p though p's gradient is x's values); a tensor that only gets a
    gradient is not checked (eager lets `bias.add_(1)` under no_grad pass between a forward and its backward)."""
    from ..autograd.engine import _as_seen_by
    for x, version in read:
        seen = _as_seen_by(x, entry.seq)
        if seen._version != version or seen._data is not x._data:
            raise RuntimeError(
                f"one of the variables needed for gradient computation has been modified by an in-place operation: "
                f"a tensor of shape {tuple(x.shape)} ({x.dtype}) whose values the backward of {entry.describe()} "
                f"reads was changed after the call (version {version} then, {x._version} now). Use an "
                f"out-of-place operation, or .clone() the tensor before changing it.")


def _check_views(entry, watch):
    """Raise as eager's view entries do when the memory of an argument that an output or a saved array of this call
    views was written in place since the call (a new history given to the argument leaves that memory as it was)."""
    from ..autograd.engine import _as_seen_by
    for x, version in watch:
        if _as_seen_by(x, entry.seq)._version != version:
            raise RuntimeError(
                f"one of the variables needed for gradient computation has been modified by an in-place operation: "
                f"an argument of shape {tuple(x.shape)} ({x.dtype}) of {entry.describe()}, whose memory an output or "
                f"a value its backward reads views, was changed in place after the call (version {version} then, "
                f"{x._version} now). Use an out-of-place operation, or .clone() the tensor before changing it.")
