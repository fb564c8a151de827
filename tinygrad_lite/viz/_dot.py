"""draw(): a viz Graph emitted as a graphviz.Digraph, and save(). graphviz is imported only when called."""
import os
import shutil

from ..compile.hooks import refuse
from ._graph import build
from ._style import Heat, esc, node_attrs, node_grad

INSTALL_HINT = ("graphviz's `dot` program was not found on PATH, so the graph cannot be rendered (its DOT text is "
                "still available as `.source`, and tl.viz.save writes it). Install graphviz: Debian/Ubuntu "
                "`sudo apt-get install graphviz`, macOS `brew install graphviz`, conda `conda install graphviz`.")
_classes = {}


def _graphviz():
    try:
        import graphviz
    except ImportError:
        raise ImportError("tl.viz needs the Python package `graphviz`: pip install tinygrad_lite[viz] "
                          "(or pip install graphviz)") from None
    return graphviz


def digraph_classes():
    """(TapeGraph, DotNotFoundError), created on first use because they subclass graphviz's classes."""
    if not _classes:
        gv = _graphviz()

        class DotNotFoundError(gv.ExecutableNotFound):
            """Rendering needs graphviz's `dot` program; the message says how to install it."""

            def __init__(self, args=("dot",)):
                RuntimeError.__init__(self, f"{INSTALL_HINT} (failed to run {os.fspath(args[0])!r})")

        def _guard(method):
            def wrapper(self, *args, **kwargs):
                try:
                    return method(self, *args, **kwargs)
                except DotNotFoundError:
                    raise
                except gv.ExecutableNotFound:
                    raise DotNotFoundError() from None
            wrapper.__name__ = method.__name__
            wrapper.__doc__ = method.__doc__
            return wrapper

        class TapeGraph(gv.Digraph):
            """A graphviz.Digraph whose rendering errors say how to install graphviz when `dot` is missing."""
            if hasattr(gv.Digraph, "_repr_mimebundle_"):  # graphviz >= 0.19; older ones display through pipe()
                def _repr_mimebundle_(self, include=None, exclude=None, **kwargs):
                    try:
                        return super()._repr_mimebundle_(include, exclude, **kwargs)
                    except DotNotFoundError as exc:  # Jupyter shows the reason and the DOT text, not an image
                        return {"text/plain": f"{exc}\n\n{self.source}"}

        for m in ("render", "pipe", "view", "unflatten"):
            if hasattr(gv.Digraph, m):
                setattr(TapeGraph, m, _guard(getattr(gv.Digraph, m)))
        _classes["TapeGraph"], _classes["DotNotFoundError"] = TapeGraph, DotNotFoundError
    return _classes["TapeGraph"], _classes["DotNotFoundError"]


def _flatten(outputs):
    flat = []
    for o in outputs:
        if isinstance(o, (list, tuple)):
            flat.extend(_flatten(o))  # nested containers of outputs are shallow (an LSTM's (out, (h, c)))
        elif o is not None:
            if not hasattr(o, "_entry"):
                raise TypeError(f"viz.draw: expected Tensors as outputs, got {type(o).__name__}")
            flat.append(o)
    return flat


def draw(*outputs, params=None, show_shapes=True, show_grads=False, group_modules=True, depth=None,
         highlight=None, max_nodes=2000, show_saved_bytes=False, fold_repeats=True, show_constants=True,
         show_source=False, rankdir="TB"):
    """Draw the tape behind `outputs` as a graphviz.Digraph (render with `.render(format='svg')`, or display it
    in Jupyter; `.source` is the DOT text and works without graphviz's `dot` program).

    params: {name: tensor}, (name, tensor) pairs or a Module; otherwise names come from the module scopes.
    show_grads: after backward, colour nodes by log10 of their gradient norm (legend; nan/inf red, zero grey).
    group_modules: one nested cluster per module call. depth=k: module calls at depth >= k (the model's own
    call is depth 0) become one node each. fold_repeats: repeated calls of a recurrent module (a cell fed its
    own output), and per-step modules called as often in the same loop, become one node `Cell xN`; "all"
    folds every repeated module call; False never folds.
    highlight: tape entries (Entry objects or their .index) to mark; an AnomalyError marks its path (origin to
    where the NaN/Inf surfaced) in red. show_saved_bytes: bytes each entry keeps
    for backward. max_nodes: keep the first and last max_nodes/2 nodes and say how many were cut (None: all).
    show_constants: draw tensors that do not require grad. show_source: add the user's file:line to each op.
    """
    refuse("tl.viz.draw draws the graph")  # (inside tl.compile: every call draws, eagerly)
    _graphviz()
    check_options(depth, max_nodes, fold_repeats)
    outs = _flatten(outputs)
    graph = build(outs, params=params, depth=depth, fold_repeats=fold_repeats, show_constants=show_constants,
                  highlight=highlight, max_nodes=max_nodes)
    opts = {"show_shapes": show_shapes, "show_source": show_source, "show_saved_bytes": show_saved_bytes,
            "max_nodes": max_nodes, "show_grads": show_grads}
    return emit(graph, opts, group_modules, rankdir)


def emit(graph, opts, group_modules=True, rankdir="TB", heat=None):
    """A built Graph as a TapeGraph under draw()'s `opts`; tl.viz.html emits its module interiors through it too,
    passing the main graph's `heat` so that one colour means one gradient norm on the whole page."""
    show_grads = opts["show_grads"]
    TapeGraph, _ = digraph_classes()
    dot = TapeGraph(name="tape", graph_attr={"rankdir": rankdir, "fontname": "Helvetica", "fontsize": "11",
                                             "nodesep": "0.25", "ranksep": "0.35"},
                    node_attr={"fontname": "Helvetica", "fontsize": "10", "height": "0.3", "margin": "0.08,0.04"},
                    edge_attr={"arrowsize": "0.6", "color": "gray35", "fontname": "Helvetica"})

    stats = {}
    if show_grads:
        stats = {n.key: node_grad(n) for n in graph.nodes}
        heat = heat or Heat([s[1] for s in stats.values() if s is not None and s[0] is None])

    gv = _graphviz()
    clusters = {}
    for n in graph.nodes:
        label, attrs = node_attrs(n, opts, heat, stats.get(n.key))
        target = dot
        if group_modules and n.cluster is not None:
            target = clusters.get(n.cluster)
            if target is None:
                target = clusters[n.cluster] = _cluster(gv, n.cluster)
        target.node(n.key, label, **attrs)
    if clusters:
        _nest(gv, dot, clusters, graph.scope_depth)

    styles = {"data": {}, "const": {"style": "dashed", "color": "gray60"},
              "loop": {"label": "next step", "fontsize": "8", "color": "gray20", "style": "bold",
                       "constraint": "false"},
              "cut": {"style": "dotted"}}
    for (src, dst), kind in graph.edges.items():
        dot.edge(src, dst, **styles[kind])
    if show_grads:
        title = "" if stats and any(s is not None for s in stats.values()) else \
            "<TR><TD>no gradients on this graph: call .backward() first</TD></TR>"
        legend = heat.legend()
        if title:
            legend = legend.replace("</TABLE>>", title + "</TABLE>>")
        dot.node("grad_legend", legend, shape="plaintext", style="")
    return dot


def check_options(depth, max_nodes, fold_repeats, who="viz.draw"):
    """Reject bad draw() options before any work (shared with tl.viz.html)."""
    if depth is not None and (not isinstance(depth, int) or depth < 0):
        raise ValueError(f"{who}: depth must be a non-negative int or None, got {depth!r}")
    if max_nodes is not None and (not isinstance(max_nodes, int) or max_nodes < 1):
        raise ValueError(f"{who}: max_nodes must be a positive int or None, got {max_nodes!r}")
    if fold_repeats not in (True, False, None, "all"):
        raise ValueError(f"{who}: fold_repeats must be True, False or 'all', got {fold_repeats!r}")


def _cluster(gv, scope):
    title = f"{scope.path}: {scope.type_name}" if scope.path else scope.type_name
    return gv.Digraph(name=f"cluster_{scope.call}",
                      graph_attr={"label": esc(title), "style": "rounded", "color": "gray55", "fontsize": "10",
                                  "labeljust": "l", "tooltip": esc(f"{title} (call {scope.call})")})


def _nest(gv, dot, clusters, depth):
    """Put each cluster inside its parent module call's cluster, deepest first (subgraph() copies the body)."""
    for s in list(clusters):
        p = s.parent
        while p is not None and p not in clusters:
            clusters[p] = _cluster(gv, p)
            p = p.parent
    for s in sorted(clusters, key=lambda s: (-depth.get(s, 0), s.call)):
        parent = clusters[s.parent] if s.parent is not None else dot
        parent.subgraph(clusters[s])


def save(graph, path, format=None):
    """Write `graph` (from draw) to `<path>.dot`, and also render `<path>.svg` (or `format`) when graphviz's
    `dot` program is installed. `path` may end in .dot/.gv/.svg/.png/.pdf. Returns the paths written."""
    refuse("tl.viz.save writes a file")
    if getattr(graph, "is_html_page", False):  # a tl.viz.HTMLGraph writes one self-contained .html file
        return [graph.save(path)]
    path = os.fspath(path)
    base, ext = os.path.splitext(path)
    ext = ext.lower().lstrip(".")
    if ext not in ("dot", "gv", "svg", "png", "pdf"):
        base, ext = path, ""
    fmt = format or (ext if ext in ("svg", "png", "pdf") else "svg")
    dot_path = base + ".dot"
    with open(dot_path, "w", encoding="utf-8") as f:
        f.write(graph.source)
    written = [dot_path]
    if shutil.which("dot") is not None:
        data = graph.pipe(format=fmt)
        out = f"{base}.{fmt}"
        with open(out, "wb") as f:
            f.write(data)
        written.append(out)
    return written
