"""The graph under construction: what a rule calls (`g` in `rule(g, call)`, see rules.py). Nodes are made with
onnx.helper and initializers with onnx.numpy_helper; every node carries the recorded call's module path in its
name and its source line in its doc_string, so Netron shows where it came from."""
import re

import numpy as np

from .errors import ExportError
from .rules import Dim

_SMALL = 64  # constants up to this many elements are shared between nodes


class Builder:
    def __init__(self, helper, numpy_helper, resolve, computed):
        self.helper, self.numpy_helper, self._resolve, self.is_computed = helper, numpy_helper, resolve, computed
        self.nodes, self.initializers = [], []
        self.symbols = {}  # symbol -> (input name, axis)
        self._taken, self._consts, self._dims = set(), {}, {}
        self._prefix, self._doc, self._what = "", "", "export"

    # ---------------- names and provenance ----------------
    def fresh(self, hint):
        base = re.sub(r"[^A-Za-z0-9_./:-]", "_", hint) or "v"
        name, k = base, 0
        while name in self._taken:
            k += 1
            name = f"{base}_{k}"
        self._taken.add(name)
        return name

    def reserve(self, name):
        self._taken.add(name)
        return name

    def at(self, prefix, doc, what):
        """Nodes added from now on belong to this recorded call."""
        self._prefix, self._doc, self._what = prefix, doc, what

    def unsupported(self, why):
        return ExportError(f"{self._what}: {why}")

    def tensor(self, arr):
        """The ONNX name of an array met in the recording (input, parameter, recorded result or constant)."""
        return self._resolve(arr)

    # ---------------- nodes ----------------
    def op(self, op_type, *inputs, outputs=1, **attrs):
        """Add one node; returns its output name (a list for `outputs` > 1)."""
        outs = [self.fresh(f"{self._prefix}{op_type}") for _ in range(outputs)]
        node = self.helper.make_node(op_type, list(inputs), outs, name=self.fresh(f"{self._prefix}{op_type}#"),
                                     doc_string=self._doc, **attrs)
        self.nodes.append(node)
        return outs[0] if outputs == 1 else outs

    def initializer(self, arr, name):
        self.initializers.append(self.numpy_helper.from_array(np.array(arr, order="C"), self.reserve(name)))
        return name

    def const(self, arr, dtype=None):
        """An initializer holding `arr` (small ones shared)."""
        arr = np.asarray(arr, dtype=dtype)
        key = (arr.dtype.str, arr.shape, arr.tobytes()) if arr.size <= _SMALL else None
        if key is not None and key in self._consts:
            return self._consts[key]
        name = self.initializer(arr, self.fresh("const"))
        if key is not None:
            self._consts[key] = name
        return name

    def scalar(self, value, dtype):
        return self.const(np.asarray(value, dtype=dtype))

    def dtype(self, np_dtype):
        return self.helper.np_dtype_to_tensor_dtype(np.dtype(np_dtype))

    def cast(self, name, from_dtype, to_dtype):
        if np.dtype(from_dtype) == np.dtype(to_dtype):
            return name
        return self.op("Cast", name, to=self.dtype(to_dtype))

    # ---------------- shapes that may be dynamic ----------------
    def ints(self, values):
        """An int64 1-D tensor of `values`; a Dim among them is computed from the inputs' shapes."""
        values = list(values)
        if not any(isinstance(v, Dim) and v.expr for v in values):
            return self.const(np.asarray(values, dtype=np.int64).reshape(-1))
        pieces, run = [], []
        for v in values:
            if isinstance(v, Dim) and v.expr:
                if run:
                    pieces.append(self.const(np.asarray(run, dtype=np.int64)))
                    run = []
                pieces.append(self.dim(v))
            else:
                run.append(int(v))
        if run:
            pieces.append(self.const(np.asarray(run, dtype=np.int64)))
        return pieces[0] if len(pieces) == 1 else self.op("Concat", *pieces, axis=0)

    def dim(self, d):
        """A [1] int64 tensor holding the run-time value of Dim `d` (Shape, Mul, Add on the inputs' sizes)."""
        d.used = True
        if d.expr in self._dims:
            return self._dims[d.expr]
        scale, syms, offset = d.expr
        out = None
        for s in syms:
            name, axis = self.symbols[s]
            size = self.op("Shape", name, start=axis, end=axis + 1)
            out = size if out is None else self.op("Mul", out, size)
        if scale != 1:
            out = self.op("Mul", out, self.const(np.asarray([scale], dtype=np.int64)))
        if offset:
            out = self.op("Add", out, self.const(np.asarray([offset], dtype=np.int64)))
        self._dims[d.expr] = out
        return out

    def fill(self, value, dtype, shape):
        """A tensor of `shape` (ints or Dims) filled with `value`."""
        if not any(isinstance(v, Dim) and v.expr for v in shape):
            return self.const(np.full(tuple(int(s) for s in shape), value, dtype=dtype))
        return self.op("Expand", self.scalar(value, dtype), self.ints(shape))


def unused_dims(obj):
    """Dims inside an argument structure that no rule turned into graph arithmetic."""
    if isinstance(obj, Dim):
        return [obj] if obj.expr and not obj.used else []
    if isinstance(obj, (tuple, list)):
        return [d for o in obj for d in unused_dims(o)]
    if isinstance(obj, slice):
        return unused_dims((obj.start, obj.stop, obj.step))
    return []
