"""What the interactive page knows about each node, as plain JSON: names, shapes and statistics — never arrays.

The page must stay small for a large model and must not leak a whole tensor into an HTML file, so every value
and gradient is reduced here, in Python, to min/max/mean/std and NaN/Inf counts.
"""
import numpy as np

from ..autograd.recorder import Entry
from ._graph import Graph, Node
from ._style import node_grad

STAT_KEYS = ("min", "max", "mean", "std", "nan", "inf", "size")


def array_stats(arr):
    """{min, max, mean, std, nan, inf, size} of an array. min..std are over the finite elements (None when there
    are none), so one NaN does not hide the range of the rest; integers and booleans count as float64."""
    a = np.asarray(arr)
    if a.dtype.kind not in "fc":
        a = a.astype(np.float64)
    elif a.dtype.kind == "c":
        a = np.abs(a)
    flat = a.ravel()
    nan = int(np.count_nonzero(np.isnan(flat)))
    inf = int(np.count_nonzero(np.isinf(flat)))
    finite = flat if nan + inf == 0 else flat[np.isfinite(flat)]
    out = {"min": None, "max": None, "mean": None, "std": None, "nan": nan, "inf": inf, "size": int(flat.size)}
    if finite.size:
        wide = finite.astype(np.float64, copy=False)
        with np.errstate(over="ignore", invalid="ignore"):
            out.update(min=float(wide.min()), max=float(wide.max()), mean=_json_float(wide.mean()),
                       std=_json_float(wide.std()))
    return out


def _json_float(x):
    """JSON has no inf/nan: a mean that overflows float64 is reported as None rather than breaking the page."""
    x = float(x)
    return x if np.isfinite(x) else None


def _output_entry(node):
    """The entry whose output a node stands for: its own for an op, the last output leaving a collapsed call."""
    if node.kind == "op":
        return node.entries[0]
    if node.exits:
        return max(node.exits, key=lambda e: e.seq)
    return node.entries[-1] if node.entries else None


def _value_of(entry, outputs):
    data = entry.out_data
    if data is None:  # released by backward; the outputs the user passed still hold theirs
        data = outputs.get(entry)
    return data


def node_info(node, outputs, cluster_of):
    """The JSON record of one node (see graph.js for the reader)."""
    info = {"kind": node.kind, "cluster": cluster_of(node.cluster)}
    if node.kind in ("param", "input"):
        t = node.tensor
        info.update(name=node.name or node.kind, shape=list(t.shape), dtype=str(t.dtype),
                    value=array_stats(t._data), grad=None if t._grad is None else array_stats(t._grad._data))
    elif node.kind in ("op", "loop", "module", "fold"):
        e = _output_entry(node)
        info.update(name=e.name if node.kind in ("op", "loop") else (node.scope.path or node.scope.type_name),
                    module=e.module if node.kind in ("op", "loop") else node.scope.path,
                    type=node.scope.type_name if node.scope is not None else None,
                    source=e.source_path, shape=list(e.output_shape), dtype=str(e.output_dtype),
                    entries=[x.seq for x in node.entries], count=node.count)
        data = _value_of(e, outputs)
        info["value"] = None if data is None else array_stats(data)
        info["grad"] = None if e.grad is None else array_stats(e.grad)
        info["ops"] = sorted({x.name for x in node.entries}) if node.kind in ("module", "fold") else None
    elif node.kind == "const":
        info.update(name="const", shape=list(node.shape or ()))
    else:
        info.update(name=f"{node.count} nodes cut")
    status = node_grad(node)
    info["status"] = status[0] if status is not None else None
    return info


def interior(node, max_nodes):
    """The op nodes (and parameters) inside a collapsed module call as a Graph of their own, so the page can
    open it laid out by `dot` like the rest; None when the call has more than max_nodes primitives."""
    if node.kind != "module" or (max_nodes is not None and len(node.entries) > max_nodes):
        return None
    g = Graph()
    ops = {}
    for e in node.entries:
        n = ops[e] = Node(f"e{e.seq}", "op", e.seq, e.scope)
        n.entries.append(e)
    params = {id(p.tensor): p for p in node.params}
    for e in node.entries:
        for p in e.parents:
            src = ops.get(p) if p.__class__ is Entry else (params.get(id(p)) if p is not None else None)
            if src is not None:
                g.edges[(src.key, ops[e].key)] = "data"
    g.nodes = list(node.params) + list(ops.values())
    depth = {}
    for e in node.entries:
        c = e.scope
        while c is not None and c not in depth:
            depth[c] = 0
            c = c.parent
    g.scope_depth = _depths(depth)
    return g


def _depths(scopes):
    """Depth of each scope counted from the outermost one present (for nesting clusters deepest first)."""
    out = {}
    for s in scopes:
        d, c = 0, s.parent
        while c is not None:
            d, c = d + 1, c.parent
        out[s] = d
    return out
