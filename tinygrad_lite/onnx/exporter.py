"""tl.onnx.export: record one call, turn each recorded operation into ONNX nodes with its rule, check, write."""
import os
import tempfile

import numpy as np

from ..tensor import Tensor
from ..autograd.recorder import reachable
from .errors import ExportError, require_onnx
from .graph import Builder, unused_dims
from .record import record, arrays_in, outputs_of
from .rules import Call, HOST_RULES, host_key, Dim
from . import dynamic


def export(model, args, f, *, input_names=None, output_names=None, dynamic_axes=None, opset_version=18):
    """Write `model(*args)` (a Module or a function of Tensors) to `f` (a path or a binary file) as ONNX, as
    torch.onnx.export. Returns the onnx.ModelProto. See API.md, "ONNX export"."""
    onnx, helper, numpy_helper = require_onnx()
    args = tuple(args) if isinstance(args, (tuple, list)) else (args,)
    for i, a in enumerate(args):
        if not isinstance(a, Tensor):
            raise TypeError(f"tl.onnx.export: args[{i}] must be a Tensor, got {type(a).__name__}")
    input_names = _names(input_names, len(args), "input", "input_names")
    state = _state(model)
    dynamic_axes = _check_axes(dynamic_axes or {}, input_names, output_names, args)
    sizes = _symbol_sizes(dynamic_axes, input_names, args)
    with _restored(state):
        out, rec = record(model, args)
        outs = _flat_outputs(out)
        _refuse_functions(outs)
        output_names = _names(output_names, len(outs), "output", "output_names")
        _check_clashes(input_names, output_names, state)
        _check_axes(dynamic_axes, input_names, output_names, args, outs)
        others, checks = ({s: _record_resized(model, args, input_names, dynamic_axes, sizes, s, state, more)
                           for s in sizes} for more in (1, dynamic.CHECK))
    exporter = _Exporter(helper, numpy_helper, rec, args, input_names, state)
    graph = exporter.build(outs, output_names, dynamic_axes, sizes, others, checks)
    proto = helper.make_model(graph, producer_name="tinygrad_lite",
                              opset_imports=[helper.make_opsetid("", opset_version)])
    proto.ir_version = min(onnx.IR_VERSION, max(8, helper.find_min_ir_version_for(list(proto.opset_import))))
    try:
        proto = onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True)
        onnx.checker.check_model(proto, full_check=True)
    except Exception as exc:  # a rule produced an invalid graph: say which check failed
        raise ExportError(f"the exported graph fails the ONNX checker: {exc}") from None
    _write(proto.SerializeToString(), f)
    return proto


# ---------------- arguments ----------------
def _names(names, n, prefix, what):
    if names is None:
        return [f"{prefix}_{i}" for i in range(n)]
    names = list(names)
    if len(names) != n or not all(isinstance(s, str) and s for s in names):
        raise ValueError(f"tl.onnx.export: {what} must be {n} non-empty strings, got {names!r}")
    return names


def _state(model):
    """{id(array): (state_dict name, Tensor)} for the parameters and buffers of a Module."""
    if not hasattr(model, "named_parameters"):
        return {}
    named = list(model.named_parameters(remove_duplicate=False)) + list(model.named_buffers(remove_duplicate=False))
    state = {}
    for name, t in named:
        if t is not None:
            state.setdefault(id(t._data), (name, t))
    return state


def _check_clashes(input_names, output_names, state):
    names = input_names + output_names + [n for n, _ in state.values()]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"tl.onnx.export: names used twice among inputs, outputs and state_dict keys: {dup}")


def _check_axes(dynamic_axes, input_names, output_names, args, outs=None):
    """dynamic_axes as {name: {axis: symbol}}; errors name the bad entry (outputs are checked once known)."""
    if not isinstance(dynamic_axes, dict):
        raise ValueError(f"tl.onnx.export: dynamic_axes must be a dict, got {type(dynamic_axes).__name__}")
    shapes = {n: a.shape for n, a in zip(input_names, args)}
    if outs is not None:
        shapes.update({n: o.shape for n, o in zip(output_names, outs)})
    known = set(input_names) | set(output_names or ()) if outs is not None else None
    fixed = {}
    for name, axes in dynamic_axes.items():
        if not isinstance(axes, dict):
            if not isinstance(axes, (list, tuple)):
                raise ValueError(f"tl.onnx.export: dynamic_axes['{name}'] must be a dict or a list of axes")
            axes = {a: f"{name}_dim{a}" for a in axes}
        if known is not None and name not in known:
            raise ValueError(f"tl.onnx.export: dynamic_axes names '{name}', which is neither an input nor an "
                             f"output (inputs {input_names}, outputs {output_names})")
        for axis, sym in axes.items():
            nd = len(shapes[name]) if name in shapes else None
            if not isinstance(axis, int) or not isinstance(sym, str) or (nd is not None and not 0 <= axis < nd):
                raise ValueError(f"tl.onnx.export: dynamic_axes['{name}'] has {axis!r}: {sym!r}; expected an axis "
                                 f"in [0, {nd}) and a symbol name (shape {shapes.get(name)})")
        fixed[name] = dict(axes)
    return fixed


def _symbol_sizes(dynamic_axes, input_names, args):
    sizes = {}
    for name, a in zip(input_names, args):
        for axis, sym in dynamic_axes.get(name, {}).items():
            if sizes.setdefault(sym, a.shape[axis]) != a.shape[axis]:
                raise ValueError(f"tl.onnx.export: dynamic axis '{sym}' has sizes {sizes[sym]} and {a.shape[axis]}")
    return sizes


def _flat_outputs(out):
    """The outputs in order, nested tuples and lists flattened (an LSTM's (out, (h, c))), as torch.onnx.export."""
    outs, stack = [], [out]
    while stack:
        o = stack.pop()
        if isinstance(o, (tuple, list)):
            stack.extend(reversed(o))
        else:
            outs.append(o)
    for i, o in enumerate(outs):
        if not isinstance(o, Tensor):
            raise ExportError(f"output {i} of the model is a {type(o).__name__}, not a Tensor")
    return outs


def _refuse_functions(outs):
    """A custom Function's forward and backward are Python the tape does not show: refused, by its tape entry."""
    for e in reachable(outs):
        if e.ctx is not None:
            raise ExportError(f"the custom Function {e.describe()} cannot be exported: its forward and backward are "
                              f"Python code, not recorded primitives")


class _restored:
    """Buffers (running statistics) come back to their values after the recordings."""

    def __init__(self, state):
        self.saved = [(t, t._data.copy()) for _, t in state.values()]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for t, arr in self.saved:
            if not np.array_equal(t._data, arr, equal_nan=t._data.dtype.kind == "f"):
                t._data[...] = arr
        return False


def _record_resized(model, args, input_names, dynamic_axes, sizes, sym, state, more):
    """The call recorded again with symbol `sym` `more` larger (buffers restored between the recordings)."""
    bumped = dict(sizes, **{sym: sizes[sym] + more})
    new = []
    for name, a in zip(input_names, args):
        axes = {ax: s for ax, s in dynamic_axes.get(name, {}).items() if s == sym}
        t = Tensor._wrap(dynamic.resized(a._data, axes, bumped)) if axes else a
        if axes and a.requires_grad:
            t.requires_grad = True
        new.append(t)
    with _restored(state):
        return record(model, tuple(new))[1]


def _write(data, f):
    """Write the serialized model; a path is written to a temporary file first, so a failure leaves nothing."""
    if hasattr(f, "write"):
        f.write(data)
        return
    path = os.fspath(f)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix=".tl_onnx_")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# ---------------- the graph ----------------
class _Exporter:
    def __init__(self, helper, numpy_helper, rec, args, input_names, state):
        self.helper, self.rec, self.state = helper, rec, state
        self.g = Builder(helper, numpy_helper, self.resolve, lambda arr: id(arr) in self.dependent)
        self.inputs = [(a._data, n) for a, n in zip(args, input_names)]
        self.names = {id(a): n for a, n in self.inputs}
        for n in input_names:
            self.g.reserve(n)
        for n, _ in state.values():
            self.g.reserve(n)
        self.const_shapes, self.overlay = {}, None
        self.producer = {id(o): i for i, item in enumerate(rec.items) for o in outputs_of(item)}
        self.dependent = self._dependent(args)
        self._check_python_values()

    def _dependent(self, args):
        """ids of arrays computed from the inputs (a value read from one of them steers Python)."""
        dep = {id(a._data) for a in args}
        for item in self.rec.items:
            if any(id(a) in dep for a in arrays_in(item.args, [])):
                dep.update(id(o) for o in outputs_of(item))
        return dep

    def _check_python_values(self):
        for kind, arrays, site in self.rec.reads + self.rec.decisions:
            if any(id(a) in self.dependent for a in arrays_in(arrays, [])):
                where = f"{site[0]}:{site[1]}" if site else "an unknown line"
                raise ExportError(f"a value computed from the inputs steers Python ({kind!r} at {where}): the graph "
                                  f"would keep only the branch taken here; such code cannot be exported")

    def resolve(self, arr):
        key = id(arr)
        if key in self.names:
            return self.names[key]
        if key in self.state:
            name, t = self.state[key]
            self.names[key] = self.g.initializer(t._data, name)
            return name
        shape = self.const_shapes.get(key)
        varies = self.overlay.const_values.get(key) if self.overlay is not None else None
        if varies is not None:  # a scalar computed from a dynamic size: computed from the inputs' shapes
            d, inverse = self.overlay.scalar(*varies)
            name = self.g.cast(self.g.op("Squeeze", self.g.dim(d), self.g.ints([0])), np.int64, arr.dtype)
            if inverse:
                name = self.g.op("Reciprocal", name)
        elif shape is not None:  # a constant whose shape follows a dynamic axis: it must be one value, expanded
            flat = np.asarray(arr).reshape(-1)
            if flat.size == 0 or not (flat == flat[0]).all():
                raise self.g.unsupported(f"a constant of shape {arr.shape} made during the call has a shape that "
                                         f"follows a dynamic axis but not one repeated value")
            name = self.g.fill(flat[0], arr.dtype, shape)
        else:
            name = self.g.const(arr)
        self.names[key] = name
        return name

    def _overlay(self, outs, sizes, others, more):
        """(Overlay, each item's arguments with Dims, the outputs' shapes with Dims) from recordings with each
        symbol `more` larger."""
        overlay = dynamic.Overlay(sizes, {s: sizes[s] + more for s in sizes})
        args_of = dynamic.align(self.rec, others, overlay)
        final = {s: [r.items[self.producer[id(o._data)]].out.shape if id(o._data) in self.producer else o.shape
                     for o in outs] for s, r in others.items()}
        out_shapes = []
        for i, o in enumerate(outs):
            try:
                out_shapes.append(overlay.walk(o.shape, {s: final[s][i] for s in final}, f"output {i}"))
            except ExportError:
                if more == 1:
                    raise
                out_shapes.append(None)  # (a size the values decide, x[mask]'s: the graph computes it)
        return overlay, args_of, out_shapes

    def build(self, outs, output_names, dynamic_axes, sizes, others, checks):
        items = self.rec.items
        args_of = [item.args for item in items]
        out_shapes = [o.shape for o in outs]
        if others:
            overlay, args_of, out_shapes = self._overlay(outs, sizes, others, 1)
            # the sizes are fitted through two recordings; a third, further on, must give the same fits (chunk(2)
            # of the batch is ceil(n / 2): a line through n and n + 1 only, not a size)
            check = self._overlay(outs, sizes, checks, dynamic.CHECK)
            dynamic.same_fits((overlay, args_of, out_shapes), check,
                              [f"'{item.name}' at {item.where()}" for item in items])
            self.const_shapes, self.overlay = overlay.const_shapes, overlay
        inputs = self._inputs(dynamic_axes)
        for i in self._needed(outs):
            self._emit(items[i], args_of[i])
        self.g.at("", "graph outputs", "export")
        outputs = []
        passed = {id(a): dynamic_axes.get(n, {}) for a, n in self.inputs}  # an input returned as it is
        for o, name, shape in zip(outs, output_names, out_shapes):
            self.g.nodes.append(self.helper.make_node("Identity", [self.resolve(o._data)], [name],
                                                      name=self.g.fresh(f"{name}#")))
            axes = {**passed.get(id(o._data), {}), **dynamic_axes.get(name, {})}
            dims = [axes.get(i, _dim_name(d)) for i, d in enumerate(shape)]
            outputs.append(self.helper.make_tensor_value_info(name, self.g.dtype(o._data.dtype), dims))
        return self.helper.make_graph(self.g.nodes, "tinygrad_lite", inputs, outputs, self.g.initializers)

    def _inputs(self, dynamic_axes):
        """Graph inputs, with dim_params for dynamic axes (each symbol read from the first input that has it)."""
        infos = []
        for arr, name in self.inputs:
            axes = dynamic_axes.get(name, {})
            for axis, sym in axes.items():
                self.g.symbols.setdefault(sym, (name, axis))
            dims = [axes.get(i, s) for i, s in enumerate(arr.shape)]
            infos.append(self.helper.make_tensor_value_info(name, self.g.dtype(arr.dtype), dims))
        return infos

    def _needed(self, outs):
        """Indices of the recorded calls the outputs depend on, in recording order (an iterative walk)."""
        needed, stack = set(), [id(o._data) for o in outs]
        while stack:
            i = self.producer.get(stack.pop())
            if i is None or i in needed:
                continue
            needed.add(i)
            stack.extend(id(a) for a in arrays_in(self.rec.items[i].args, []))
        return sorted(needed)

    def _emit(self, item, args):
        what = f"'{item.name}' at {item.where()}"
        path = item.scope.path if item.scope is not None else ""
        self.g.at(f"{path}/{item.name}/" if path else f"{item.name}/", f"tinygrad_lite {what}", what)
        if item.prim is not None:
            rule = item.prim.onnx
            if rule is None:
                raise ExportError(f"primitive {what} has no ONNX rule (declare one with defonnx in ops/)")
            k = len(item.prim.attr_names)
            tensors, attrs = (args[:-k], args[-k:]) if k else (args, ())
            arrays = [t._data for t in tensors]
            call = Call(item.name, [self.resolve(a) for a in arrays], arrays, tuple(attrs), item.out, what)
        else:
            rule = HOST_RULES.get(host_key(item.fn))
            if rule is None:
                if not any(id(a) in self.dependent for a in arrays_in(item.args, [])):
                    return  # computed from parameters and constants only: its result is a constant
                raise ExportError(f"the NumPy computation {what} uses values computed from the inputs and has no "
                                  f"ONNX rule (register one with tinygrad_lite.onnx.rules.defhost)")
            call = Call(item.name, None, [], tuple(args), item.out, what)
        result = rule(self.g, call)
        left = unused_dims(call.attrs)
        if left:
            raise ExportError(f"{what}: its arguments depend on a dynamic axis ({[int(d) for d in left]} at export), "
                              f"which its ONNX rule cannot express")
        for o, name in zip(outputs_of(item), result if isinstance(item.out, tuple) else (result,)):
            self.names[id(o)] = name


def _dim_name(d):
    """A symbolic output dim: the symbol itself for a plain `batch`, else unnamed."""
    if isinstance(d, Dim) and d.expr:
        scale, syms, offset = d.expr
        return syms[0] if (scale, len(syms), offset) == (1, 1, 0) else None
    return int(d)
