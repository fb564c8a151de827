"""tl.viz.html: the tape as one self-contained interactive page (pan, zoom, search, details, collapse).

`dot` lays the graph out exactly as draw() does; the SVG it writes is embedded with data-* attributes, and what
the page shows about a node (names, shapes, value and gradient statistics) is embedded as JSON computed here.
The template, script and style are package data files under viz/page/, inlined so the file needs no server and
makes no network request. Beyond max_nodes, module calls start collapsed (a smaller `depth`); each collapsed call
carries its own interior laid out by `dot`, which the page opens in place on demand.
"""
import html as _html
import inspect
import json
import os
import re
import shutil
import subprocess
import uuid
from concurrent.futures import ThreadPoolExecutor
from importlib import resources

from ._dot import _flatten, _graphviz, check_options, digraph_classes, draw, emit
from ..compile.hooks import refuse
from ._graph import build
from ._pagedata import interior, node_info
from ._style import Heat, node_grad

_DRAW_OPTIONS = tuple(inspect.signature(draw).parameters)[1:]
_EMIT_OPTIONS = ("show_shapes", "show_source", "show_saved_bytes", "max_nodes", "show_grads")
_DEFAULTS = {k: p.default for k, p in inspect.signature(draw).parameters.items() if k in _DRAW_OPTIONS}
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


class HTMLGraph:
    """An interactive page of the tape: shown inline by Jupyter, written to a file by `.save(path)`.
    `data` is the embedded JSON model (node records with statistics), for inspection and tests."""
    is_html_page = True

    def __init__(self, fragment, data, title="tinygrad_lite graph"):
        self.fragment, self.data, self.title = fragment, data, title

    def _repr_html_(self):
        """The page body (scoped by a unique id, so several graphs can share one notebook)."""
        return self.fragment

    def to_html(self):
        """The whole standalone document."""
        return _fill(_page_file("graph.html"), title=_html.escape(self.title), body=self.fragment)

    def save(self, path):
        """Write the standalone page to `path` (".html" is added when it has no extension); return the path."""
        path = os.fspath(path)
        if not os.path.splitext(path)[1]:
            path += ".html"
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.to_html())
        return path

    def __repr__(self):
        return f"<tl.viz.HTMLGraph: {len(self.data['nodes'])} nodes, {len(self.fragment):,} characters>"


def html(*outputs, **draw_options):
    """The tape behind `outputs` as an interactive HTMLGraph; `draw_options` are draw()'s. Needs graphviz's `dot`.
    When the graph has more than max_nodes nodes and no depth is given, module calls are collapsed at the
    deepest level that fits, and each collapsed call can be opened in the page."""
    refuse("tl.viz.html draws the graph")  # (inside tl.compile: every call draws, eagerly)
    opts = _options(draw_options)
    outs = _flatten(outputs)
    if not outs:
        raise ValueError("tl.viz.html: pass at least one output Tensor (e.g. tl.viz.html(loss))")
    if shutil.which("dot") is None:
        raise digraph_classes()[1]()
    graph, auto_depth = _build(outs, opts)
    emit_opts = {k: opts[k] for k in _EMIT_OPTIONS}
    inner = {n.key: g for n in graph.nodes if (g := interior(n, opts["max_nodes"])) is not None}
    heat = _heat(graph, inner) if opts["show_grads"] else None
    sources = [emit(graph, emit_opts, opts["group_modules"], opts["rankdir"], heat).source]
    sources += [emit(g, emit_opts, opts["group_modules"], opts["rankdir"], heat).source for g in inner.values()]
    svgs = _render(sources)
    data = _model(outs, [graph, *inner.values()], auto_depth, graph.cut)
    main = clean_svg(svgs[0], data)
    interiors = "".join(f'<script type="text/x-tlviz-svg" data-key="{k}">{clean_svg(s, data)}</script>'
                        for k, s in zip(inner, svgs[1:]))
    for k in inner:
        data["nodes"][k]["expandable"] = True
    fragment = _fill(_page_file("graph_fragment.html"), id=f"tlviz-{uuid.uuid4().hex[:12]}",
                     css=_page_file("graph.css"), js=_page_file("graph.js"), svg=main, interiors=interiors,
                     data=_script_json(data))
    return HTMLGraph(fragment, data)


def _options(given):
    unknown = sorted(set(given) - set(_DRAW_OPTIONS))
    if unknown:
        raise TypeError(f"tl.viz.html got unknown option(s) {', '.join(unknown)}; it takes draw()'s options: "
                        f"{', '.join(_DRAW_OPTIONS)}")
    opts = {**_DEFAULTS, **given}
    check_options(opts["depth"], opts["max_nodes"], opts["fold_repeats"], who="tl.viz.html")
    _graphviz()
    return opts


def _build(outs, opts):
    """(Graph, depth chosen automatically or None): the deepest module depth whose graph fits max_nodes, so a
    big model opens collapsed rather than as a wall that `dot` takes minutes to lay out."""
    kw = dict(params=opts["params"], fold_repeats=opts["fold_repeats"], show_constants=opts["show_constants"],
              highlight=opts["highlight"])
    limit = opts["max_nodes"]
    if opts["depth"] is not None or limit is None:
        return build(outs, depth=opts["depth"], max_nodes=limit, **kw), None
    graph = build(outs, depth=None, max_nodes=None, **kw)
    if len(graph.nodes) <= limit:
        return graph, None
    deepest = max(graph.scope_depth.values(), default=-1)
    fits, best = None, 0
    for d in range(deepest + 1):
        trial = build(outs, depth=d, max_nodes=None, **kw)
        if len(trial.nodes) > limit:
            break
        fits, best = trial, d
    return (fits if fits is not None else build(outs, depth=0, max_nodes=limit, **kw)), best


def _heat(graph, inner):
    """One gradient colour scale for the main graph and every interior."""
    norms = []
    for g in (graph, *inner.values()):
        for n in g.nodes:
            s = node_grad(n)
            if s is not None and s[0] is None:
                norms.append(s[1])
    return Heat(norms)


def _render(sources):
    """SVG text of each DOT source. A few `dot` processes each take a contiguous share of the graphs (one
    start-up per share, the cores used in parallel): a big model's page has hundreds of module interiors."""
    dot = shutil.which("dot")
    if dot is None:
        raise digraph_classes()[1]()
    workers = max(1, min(os.cpu_count() or 1, 4, len(sources) // 32 or 1))
    size = -(-len(sources) // workers)
    chunks = [sources[i:i + size] for i in range(0, len(sources), size)]
    with ThreadPoolExecutor(len(chunks)) as pool:
        parts = [svg for chunk in pool.map(lambda c: _run_dot(dot, c), chunks) for svg in chunk]
    return parts


def _run_dot(dot, sources):
    proc = subprocess.run([dot, "-Tsvg"], input="\n".join(sources).encode("utf-8"), capture_output=True)
    if proc.returncode != 0:
        raise RuntimeError(f"tl.viz.html: graphviz `dot` failed: {proc.stderr.decode(errors='replace')[:500]}")
    parts = proc.stdout.decode("utf-8").split("<?xml")[1:]
    if len(parts) != len(sources):
        raise RuntimeError(f"tl.viz.html: `dot` returned {len(parts)} drawings for {len(sources)} graphs")
    return parts


def _model(outs, graphs, auto_depth, cut):
    """The JSON model: node records, edges, clusters with their members (for collapsing), page options."""
    outputs = {t._entry: t._data for t in outs if getattr(t, "_entry", None) is not None}
    clusters, nodes, edges = {}, {}, []

    def cluster_of(scope):
        if scope is None:
            return None
        name = f"cluster_{scope.call}"
        if name not in clusters:
            parent = cluster_of(scope.parent)
            clusters[name] = {"module": scope.path, "type": scope.type_name, "parent": parent, "members": []}
        return name

    for g in graphs:
        for n in g.nodes:
            info = nodes[n.key] = node_info(n, outputs, cluster_of)
            c = info["cluster"]
            while c is not None:
                clusters[c]["members"].append(n.key)
                c = clusters[c]["parent"]
        edges.extend([s, d] for s, d in g.edges)
    return {"nodes": nodes, "edges": edges, "clusters": clusters, "depth": auto_depth, "cut": cut}


_BLOCK = re.compile(r'<g id="(?:node|clust|edge)\d+" class="(node|cluster|edge)">\n<title>([^<]*)</title>\n'
                    r'(?:(<g id="a_\w+"><a xlink:title="([^"]*)">))?')
_ID = re.compile(r'(<[a-zA-Z][^<>]*?) id="[^"]*"')


def clean_svg(svg, data):
    """Graphviz's SVG made fit to inline in HTML: no prolog, comments, namespaces or ids (several graphs share
    one notebook page), and each node, cluster and edge tagged with data-* attributes from the model."""
    svg = svg[svg.index("<svg"):]
    svg = re.sub(r"<!--.*?-->\n?", "", svg, flags=re.S)
    svg = re.sub(r' xmlns(?::xlink)?="[^"]*"', "", svg)
    svg = _BLOCK.sub(lambda m: _tag(m, data), svg)
    return _ID.sub(r"\1", svg).replace(" xlink:title=", " data-tip=")


def _tag(m, data):
    kind, title, link, tip = m.groups()
    key = _html.unescape(title)
    attrs = {}
    if kind == "node":
        attrs["data-key"] = key
        info = data["nodes"].get(key)
        if info is not None:
            attrs.update(_node_attrs(info))
    elif kind == "cluster":
        attrs["data-cluster"] = key
        c = data["clusters"].get(key)
        if c is not None:
            attrs["data-module"] = c["module"]
    else:
        src, _, dst = key.partition("->")
        attrs.update({"data-src": src, "data-dst": dst})
    text = " ".join(f'{k}="{_html.escape(str(v), quote=True)}"' for k, v in attrs.items())
    title_text = tip if tip is not None else ""
    return f'<g class="{kind}" {text}>\n<title>{title_text}</title>\n' + ("<g><a>" if link else "")


def _node_attrs(info):
    kind = info["kind"]
    attrs = {"data-kind": kind}
    if kind == "op":
        attrs["data-entry"] = info["entries"][0]
    elif kind in ("loop", "module", "fold"):
        attrs["data-entries"] = " ".join(map(str, info["entries"]))
    if kind in ("param", "input"):
        attrs["data-param"] = info["name"]
    if kind in ("module", "fold"):
        attrs["data-module"] = info["module"]
    if info.get("status"):
        attrs["data-grad"] = info["status"]
    return attrs


def _script_json(data):
    """JSON safe inside <script>: no '</script>' or '<!--' can close or confuse it, whatever the names hold."""
    text = json.dumps(data, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _page_file(name):
    return resources.files(__package__).joinpath("page", name).read_text(encoding="utf-8")


def _fill(template, **values):
    """Replace {{name}} placeholders in one pass: inserted text (a script, user names) is never rescanned."""
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)
