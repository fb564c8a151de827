"""The gradient tape: one entry per recorded primitive call, the single graph walker, and the public listing.

Every differentiable operation goes through `apply` (a primitive's NumPy forward) or `record` (used by
`Function.apply`); nothing else creates tape entries. An entry keeps what its VJP needs (the input Tensors) until
backward releases it, and keeps the graph structure (`parents`, shapes) for the visualizer and gradcheck.
"""
import functools
import itertools
import os
import sys
import weakref

import numpy as np

from .grad_mode import state

_PKG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_PKG_NAME = __name__.split(".")[0] + "."
_seq = itertools.count()
Tensor = None  # set by tinygrad_lite.tensor (avoids an import cycle)
capturing = False  # True while tl.compile records a call on some thread (compile/__init__.py sets it)
fw_active = False  # True while a forward-mode dual level is open on some thread (forward_ad.py sets it)


class Scope:
    """One call of a module's forward: the module's dotted path, its class name, and a call id.

    A library module's forward runs only library code (its children get scopes of their own), so every entry
    it records has the same user line: the first one found is kept in `site` and reused, which spares walking
    (and materialising) a deep stack of frames per recorded operation."""
    __slots__ = ("path", "type_name", "call", "parent", "module_ref", "library", "site")
    _calls = itertools.count()

    def __init__(self, path, type_name, parent, module=None):
        self.path = path
        self.type_name = type_name
        self.parent = parent
        self.call = next(Scope._calls)
        self.module_ref = weakref.ref(module) if module is not None else None
        self.library = module is not None and type(module).__module__.startswith(_PKG_NAME)
        self.site = None

    def __repr__(self):
        return f"Scope({self.path!r}, {self.type_name}, call={self.call})"


def caller_site():
    """(code, lineno) of the innermost frame outside the tinygrad_lite package: the user's line."""
    f = sys._getframe(2)
    pkg = _PKG_DIR
    while f is not None and f.f_code.co_filename.startswith(pkg):
        f = f.f_back
    return (f.f_code, f.f_lineno) if f is not None else None


class Entry:
    """A recorded primitive call. Public fields (API.md): index, name, inputs, output_shape, attrs, source, module."""
    __slots__ = ("prim", "saved", "attrs", "seq", "out_ref", "out_data", "versions", "code", "line", "scope", "grad",
                 "hooks", "ctx", "released", "dirty", "struct", "before", "label", "__weakref__")
    # label: set only on the output entry of a composition that stands for one PyTorch op (see `labelled`): the
    # name its grad_fn shows (`NllLossBackward0`); read with getattr, so the hot path never writes it
    # before: set only on an entry made by an in-place operation inside the graph: the changed tensor as it was
    # (old values and history), so entries recorded earlier that saved that tensor still reach their real parent

    @property
    def site(self):
        """(code object, line number) of the user's line that recorded this entry, or None."""
        return None if self.code is None else (self.code, self.line)

    # ----- structure: derived from the saved inputs, kept (compactly) after backward releases them -----
    def structure(self):
        """(parents, shapes, out_dtype): per input its Entry, leaf Tensor requiring grad, or None; the input shapes
        followed by the output's; the output dtype."""
        s = self.struct
        if s is None:
            ins = self.saved
            out = self.out_data
            s = self.struct = (
                tuple([t._entry if t._entry is not None else (t if t.requires_grad else None) for t in ins]),
                tuple([t._data.shape for t in ins]) + (out.shape,), out.dtype)
        return s

    @property
    def parents(self):
        return self.structure()[0]

    @property
    def in_meta(self):
        """((shape, dtype) of each input, then of the output); input dtypes of released constants are None."""
        parents, shapes, out_dtype = self.structure()
        if self.saved is not None:
            dtypes = [t._data.dtype for t in self.saved]
        else:
            dtypes = [p.output_dtype if isinstance(p, Entry) else (None if p is None else p._data.dtype)
                      for p in parents]
        return tuple(zip(shapes, dtypes + [out_dtype]))

    @property
    def needs(self):
        if self.saved is not None:
            return tuple(t.requires_grad for t in self.saved)
        return tuple(p is not None for p in self.parents)

    # ----- the public listing -----
    @property
    def index(self):
        return self.seq

    @property
    def name(self):
        return self.prim.name

    @property
    def inputs(self):
        """The input Tensors while saved; after backward released them, the parents (Entry, leaf Tensor or None)."""
        return self.saved if self.saved is not None else self.parents

    @property
    def input_shapes(self):
        return self.structure()[1][:-1]

    @property
    def output_shape(self):
        return self.structure()[1][-1]

    @property
    def output_dtype(self):
        return self.structure()[2]

    @property
    def attr_dict(self):
        names = self.prim.attr_names
        return dict(zip(names, self.attrs)) if names else {f"arg{i}": a for i, a in enumerate(self.attrs)}

    @property
    def source(self):
        if self.site is None:
            return None
        code, line = self.site
        return f"{os.path.basename(code.co_filename)}:{line}"

    @property
    def source_path(self):
        return None if self.site is None else f"{self.site[0].co_filename}:{self.site[1]}"

    @property
    def module(self):
        return None if self.scope is None else self.scope.path

    def output(self):
        """The output as a Tensor for a VJP: a constant, or under create_graph a recomputation connected to the
        inputs (no reference to the output tensor is kept, so the tape holds no extra objects)."""
        if state.grad_enabled:
            return self.prim.call(*self.saved, *self.attrs)
        return Tensor._wrap(self.out_data)

    def describe(self):
        """'name' (shapes -> shape) recorded at file.py:LINE in module '...': for error messages."""
        ins = ", ".join("x".join(map(str, s)) or "scalar" for s in self.input_shapes)
        out = "x".join(map(str, self.output_shape)) or "scalar"
        where = f" recorded at {self.source_path}" if self.site else ""
        mod = f" in module '{self.scope.path or self.scope.type_name}'" if self.scope is not None else ""
        return f"'{self.name}' ({ins} -> {out}){where}{mod}"

    def __repr__(self):
        return f"<tape entry #{self.seq} {self.describe()}>"


_new = object.__new__
_getframe = sys._getframe
_ref = weakref.ref


def record(prim, inputs, out, attrs=(), ctx=None):
    """Append one tape entry for `out = prim(*inputs, *attrs)`; make `out` a non-leaf that requires grad.
    This is the hot path of every recorded operation: keep it lean (structure is derived lazily)."""
    e = _new(Entry)
    e.prim = prim
    e.saved = inputs
    e.attrs = attrs
    e.seq = next(_seq)
    # versions only grow, so their sum changes iff some input was modified in place (an int: no GC-tracked tuple)
    if len(inputs) == 2:
        e.versions = inputs[0]._version + inputs[1]._version
    elif len(inputs) == 1:
        e.versions = inputs[0]._version
    else:
        e.versions = sum([t._version for t in inputs])
    e.out_data = out._data
    st = state
    sc = e.scope = st.scope
    if sc is not None and sc.library and sc.site is not None:
        e.code, e.line = sc.site
    else:
        f = _getframe(2)  # record is only called from package code (apply, Function.apply)
        pkg = _PKG_DIR
        while f is not None and f.f_code.co_filename.startswith(pkg):
            f = f.f_back
        if f is not None:
            e.code = f.f_code
            e.line = f.f_lineno
        else:
            e.code = e.line = None
        if sc is not None and sc.library:
            sc.site = (e.code, e.line)
    e.grad = e.hooks = e.struct = e.ctx = e.out_ref = None
    if ctx is not None:  # a user Function: keep its context and a handle on its (possibly packed) output
        e.ctx = ctx
        e.out_ref = _ref(out)
    e.released = e.dirty = False
    out._entry = e
    out.requires_grad = True
    if st.anomaly:
        from .anomaly import check_forward
        check_forward(e, out)
    return e


def _has_mask(index):
    """A boolean array in an index: the result's size is a count of its True values, so tl.compile checks the
    shape on every replay (slices, ints and integer arrays fix it by the index's own shape)."""
    parts = index if isinstance(index, tuple) else (index,)
    return any(isinstance(p, (bool, np.bool_)) or isinstance(p, np.ndarray) and p.dtype == np.bool_ for p in parts)


def apply(prim, inputs, attrs=()):
    """Run a primitive's NumPy forward on Tensors and record it when grad mode is on and an input needs grad."""
    try:
        if attrs:
            out = prim.forward(*[t._data for t in inputs], *attrs)
        elif len(inputs) == 2:
            out = prim.forward(inputs[0]._data, inputs[1]._data)
        elif len(inputs) == 1:
            out = prim.forward(inputs[0]._data)
        else:
            out = prim.forward(*[t._data for t in inputs])
    except (ValueError, IndexError, TypeError) as exc:
        raise prim.error(inputs, attrs, exc) from None
    scalar = out.__class__ is not np.ndarray
    if scalar:  # NumPy returns scalars for 0-d results
        out = np.asarray(out)
    t = _wrap(out)
    if out.base is not None:  # a view (x[0, 1], x[1:], reshape, transpose): a write through it changes its input
        _note_view(t, out, inputs)
    if capturing:  # tl.compile is recording a call (a process-wide flag first: the hot path pays one global read)
        cap = state.capture
        if cap is not None and not cap.suspended:
            if scalar or prim.name == "getitem" and _has_mask(attrs[0]):
                cap.kernel(_as_array_call(prim.forward) if scalar else prim.forward, (*inputs, *attrs), out, prim.name,
                           check_shape=prim.name == "getitem" and _has_mask(attrs[0]), prim=prim)
            else:  # one new array: kernel()'s common case, unrolled
                cap.primitive(prim, inputs, attrs, out)
    if state.grad_enabled:
        for x in inputs:
            if x.requires_grad:
                record(prim, inputs, t, attrs)
                break
    if fw_active:  # forward-mode AD: the output's tangents from the primitive's JVP
        from .forward_ad import propagate
        propagate(prim, inputs, attrs, t)
    return t


def _note_view(t, out, inputs):
    """Make view `t` an alias of the input whose memory it views (`_detached_from`, as detach()'s): an in-place
    write through it (`y[1, 1].zero_()`, `w[0].sub_(lr)` under no_grad) then counts in that tensor's version too, so an
    operation that saved it refuses to backward, as PyTorch's shared version counter makes it (it computed a
    gradient from the changed values)."""
    owner = out.base
    for x in inputs:
        # (an empty view shares no memory: it is a view of the input whose memory owner it has)
        if np.may_share_memory(x._data, out) or not out.size and owner is (x._data if x._data.base is None
                                                                             else x._data.base):
            base = getattr(x, "_detached_from", None)
            t._detached_from = x if base is None else base
            root = getattr(x, "_view_base", None)
            if root is None:
                t._view_base = x
            else:
                t._view_base, t._view_parent = root, _ref(x)
            if not state.grad_enabled or getattr(x, "_view_no_grad", False):
                t._view_no_grad = True
            return


def _as_array_call(fn):
    """`fn` with its result made an ndarray (NumPy returns scalars for 0-d results), for a replay; one per function
    (a capture of a chain of 0-d operations would otherwise hold a closure per operation for the collector)."""
    call = _array_calls.get(fn)
    if call is None:
        call = _array_calls[fn] = _make_array_call(fn)
    return call


_array_calls = {}


def _make_array_call(fn):
    def call(*args):
        out = fn(*args)
        return out if out.__class__ is np.ndarray else np.asarray(out)
    call.__name__ = getattr(fn, "__name__", "forward")
    return call


def _wrap(arr):
    return Tensor._wrap(arr)  # replaced by tinygrad_lite.tensor with the fast constructor


def reachable(outputs):
    """The entries the outputs depend on, in recording order. The one graph walker: iterative, never recursive."""
    seen = set()
    stack = [t._entry if hasattr(t, "_entry") else t for t in outputs]
    stack = [e for e in stack if isinstance(e, Entry)]
    found = []
    while stack:
        e = stack.pop()
        if e in seen:
            continue
        seen.add(e)
        found.append(e)
        for p in e.parents:
            if p.__class__ is Entry and p not in seen:
                stack.append(p)
    found.sort(key=lambda e: e.seq)
    return found


def tape(*outputs):
    """List the recorded entries that `outputs` depend on, in recording order (see API.md)."""
    return reachable(outputs)


def nbytes_saved(e):
    """Bytes held by the entry's saved inputs and output (for memory debugging)."""
    if e.saved is None:
        return 0
    total = sum(t._data.nbytes for t in e.saved)
    return total + (e.out_data.nbytes if isinstance(e.out_data, np.ndarray) else 0)


def named(out, label, args=()):
    """`out` (a Tensor or a tuple of them) with its node shown as `label` when a composition made its entry (not an
    input's entry passed through unchanged); a label of None leaves the name as it is."""
    if label is None:
        return out
    for t in (out if isinstance(out, (tuple, list)) else (out,)):  # (max(dim)'s namedtuple too)
        e = getattr(t, "_entry", None)
        if e is not None and all(getattr(a, "_entry", None) is not e for a in args):
            e.label = label
    return out


def call_arg(args, kwargs, i, *names):
    """For a `labelled` name that depends on the call: the argument at position i, or passed by one of `names`."""
    if len(args) > i:
        return args[i]
    return next((kwargs[n] for n in names if n in kwargs), None)


def labelled(label):
    """Decorator for a composition that stands for one PyTorch op: its result's grad_fn is named as PyTorch's
    (`label`, or `label(args, kwargs)` for a name that depends on the call), not after its last primitive."""
    def deco(fn):
        @functools.wraps(fn)
        def composite(*args, **kwargs):
            out = fn(*args, **kwargs)
            if out is None:
                return out
            return named(out, label(args, kwargs) if callable(label) else label, args)
        return composite
    return deco
