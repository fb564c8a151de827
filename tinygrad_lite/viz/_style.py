"""Labels, colours and the gradient-norm legend for the nodes of a viz Graph."""
import math

import numpy as np

from ..autograd import recorder

# viridis, dark (small gradients) to bright (large); red and grey are kept for nan/inf and all-zero
PALETTE = ["#440154", "#472d7b", "#3b528b", "#2c728e", "#21918c", "#28ae80", "#5ec962", "#addc30", "#fde725"]
DARK = 4  # the first colours need white text
BAD_COLOR, ZERO_COLOR, HIGHLIGHT_COLOR = "#e41a1c", "#bdbdbd", "magenta"
FILL = {"op": "#ffffff", "loop": "#ffffff", "param": "#cfe2f3", "input": "#fff2cc", "const": "#f3f3f3",
        "module": "#d9ead3", "fold": "#d9ead3", "note": "#fffde7"}
SHAPE = {"op": "box", "loop": "box", "param": "box", "input": "oval", "const": "box", "module": "box3d",
         "fold": "box3d", "note": "note"}
STYLE = {"op": "rounded,filled", "loop": "rounded,filled,bold", "const": "dashed,filled", "note": "filled"}


def fmt_shape(shape):
    return "x".join(map(str, shape)) if len(shape) else "scalar"


def fmt_bytes(n):
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def esc(text):
    """Make user text safe inside a DOT label (backslashes would start escapes)."""
    return str(text).replace("\\", "\\\\")


def grad_stat(arr):
    """(status, norm, fraction of exact zeros) of a gradient array; status is 'nan', 'inf', 'zero' or None."""
    flat = np.asarray(arr).ravel()
    if flat.dtype.kind != "f":
        flat = flat.astype(np.float64)
    if flat.size == 0:
        return "zero", 0.0, 1.0
    wide = flat.astype(np.float64, copy=False)
    with np.errstate(over="ignore", invalid="ignore"):
        sq = float(np.dot(wide, wide))
    if not (math.isfinite(sq) and sq > 0.0):  # nan, inf, zero, or squares that overflow/underflow
        if np.isnan(wide).any():
            return "nan", math.nan, 0.0
        if np.isinf(wide).any():
            return "inf", math.inf, 0.0
        top = float(np.abs(wide).max())
        if top == 0.0:
            return "zero", 0.0, 1.0
        scaled = wide / top
        norm = top * math.sqrt(float(np.dot(scaled, scaled)))
    else:
        norm = math.sqrt(sq)
    return None, norm, 1.0 - np.count_nonzero(wide) / wide.size


def _merge(stats):
    """Combine per-array stats: nan beats inf beats a norm; zero only when every part is zero."""
    if not stats:
        return None
    for bad in ("nan", "inf"):
        if any(s[0] == bad for s in stats):
            return bad, math.nan if bad == "nan" else math.inf, 0.0
    sq = sum(s[1] * s[1] for s in stats)
    return ("zero", 0.0, 1.0) if sq == 0.0 else (None, math.sqrt(sq), None)


def node_grad(node):
    """(status, norm, zero fraction, per-call norm range or None) of a node's gradient, or None without one."""
    kind = node.kind
    if kind == "op":
        g = node.entries[0].grad
        return None if g is None else grad_stat(g) + (None,)
    if kind in ("param", "input"):
        g = node.tensor._grad
        return None if g is None else grad_stat(g._data) + (None,)
    if kind not in ("module", "fold", "loop"):
        return None
    inner = [grad_stat(e.grad) for e in node.entries if e.grad is not None]
    if not inner:
        return None
    worst = _merge([s for s in inner if s[0] in ("nan", "inf")])
    if worst is not None:
        return worst + (None,)
    per_call = {}
    for e, p in node.exits.items():
        if e.grad is not None:
            per_call.setdefault(p, []).append(grad_stat(e.grad))
    calls = [_merge(v) for v in per_call.values()]
    total = _merge(calls) or _merge(inner)
    span = None
    if kind in ("fold", "loop") and len(calls) > 1:
        norms = [c[1] for c in calls]
        span = (min(norms), max(norms))
    return total + (span,)


class Heat:
    """Maps log10 gradient norms onto the palette, spanning whole decades of the norms present."""

    def __init__(self, norms):
        logs = [math.log10(n) for n in norms if n > 0 and math.isfinite(n)]
        self.lo = math.floor(min(logs)) if logs else 0
        self.hi = max(math.ceil(max(logs)) if logs else 1, self.lo + 1)

    def color(self, norm):
        x = (math.log10(norm) - self.lo) / (self.hi - self.lo)
        return min(len(PALETTE) - 1, max(0, round(x * (len(PALETTE) - 1))))

    def legend(self):
        """An HTML-table label: one cell per decade, then nan/inf, zero and no-gradient swatches."""
        step = max(1, math.ceil((self.hi - self.lo) / 8))
        cells = []
        for d in range(self.lo, self.hi + 1, step):
            i = self.color(10.0 ** d)
            font = "white" if i < DARK else "black"
            cells.append(f'<TD BGCOLOR="{PALETTE[i]}"><FONT COLOR="{font}">1e{d}</FONT></TD>')
        cells.append(f'<TD BGCOLOR="{BAD_COLOR}"><FONT COLOR="white">nan / inf</FONT></TD>')
        cells.append(f'<TD BGCOLOR="{ZERO_COLOR}">zero</TD>')
        cells.append('<TD BGCOLOR="white">no grad</TD>')
        return (f'<<TABLE BORDER="0" CELLBORDER="1" CELLSPACING="0" CELLPADDING="4"><TR><TD COLSPAN="{len(cells)}">'
                f'<B>gradient norm |g| (log scale)</B></TD></TR><TR>{"".join(cells)}</TR></TABLE>>')


def _grad_line(stat):
    status, norm, zeros, span = stat
    if status is not None:
        return status
    text = f"|g| {norm:.2e}"
    if span is not None:
        text += f"\\n{span[0]:.1e} .. {span[1]:.1e} per step"
    if zeros:
        text += f" ({zeros:.0%} zero)" if zeros >= 0.005 else ""
    return text


def node_attrs(node, opts, heat=None, stat=None):
    """(label, attributes) of one node under the draw() options `opts`."""
    kind = node.kind
    lines, tooltip = [], None
    if kind in ("op", "loop"):
        e = node.entries[0]
        lines.append(esc(e.name) + (f" x{node.count}" if kind == "loop" else ""))
        if opts["show_shapes"]:
            lines.append(fmt_shape(e.output_shape))
        for v in node.consts or ():
            lines.append("const" if v is None else f"const {v:.4g}")
        if opts["show_source"] and e.source:
            lines.append(esc(e.source))
        if opts["show_saved_bytes"]:
            lines.append(f"saved {fmt_bytes(sum(recorder.nbytes_saved(x) for x in node.entries))}"
                         if not e.released else "saved: released")
        tooltip = e.describe() + (f", {node.count} iterations of a loop" if kind == "loop" else "")
    elif kind in ("param", "input"):
        name = node.name if node.name is not None else ("parameter" if kind == "param" else "input")
        lines.append(esc(name) + (" " + fmt_shape(node.shape) if opts["show_shapes"] else ""))
        tooltip = f"{name}: {fmt_shape(node.shape)} {node.tensor.dtype}"
    elif kind == "const":
        lines.append("const" + (" " + fmt_shape(node.shape) if opts["show_shapes"] else ""))
        tooltip = "constant (does not require grad)"
    elif kind in ("module", "fold"):
        s = node.scope
        lines.append(esc(s.path or s.type_name))
        lines.append(esc(s.type_name) + (f" x{node.count}" if kind == "fold" else ""))
        if opts["show_shapes"]:
            outs = sorted(node.exits, key=lambda e: e.seq)
            shapes = list(dict.fromkeys(fmt_shape(e.output_shape) for e in outs))
            if shapes:
                lines.append(", ".join(shapes[-3:]))
        if stat is not None:  # the gradient at the module's outputs, before its parameters' own
            lines.append(_grad_line(stat))
        prefix = s.path + "." if s.path else ""
        for leaf in node.params[:4]:
            n = leaf.name or "parameter"
            n = n[len(prefix):] if n.startswith(prefix) else n
            g = leaf.tensor._grad if opts.get("show_grads") else None
            grad = "" if g is None else " " + _grad_line(grad_stat(g._data) + (None,))
            lines.append(esc(n) + (" " + fmt_shape(leaf.shape) if opts["show_shapes"] else "") + grad)
        if len(node.params) > 4:
            lines.append(f"+{len(node.params) - 4} more parameters")
        if opts["show_saved_bytes"]:
            lines.append(f"saved {fmt_bytes(sum(recorder.nbytes_saved(e) for e in node.entries))}")
        tooltip = f"{s.path or s.type_name} ({s.type_name}): {len(node.entries)} primitives"
    elif kind == "note":
        lines.append(f"... {node.count:,} nodes cut (max_nodes={opts['max_nodes']}) ...")
        tooltip = "raise max_nodes, or pass depth= to collapse modules, to see them"

    attrs = {"shape": SHAPE[kind], "style": STYLE.get(kind, "filled"), "fillcolor": FILL[kind]}
    if kind == "const":
        attrs.update(fontsize="8", fontcolor="gray40", color="gray60")
    if stat is not None:
        if kind not in ("module", "fold"):
            lines.append(_grad_line(stat))
        status, norm = stat[0], stat[1]
        if status in ("nan", "inf"):
            attrs.update(fillcolor=BAD_COLOR, fontcolor="white")
        elif status == "zero":
            attrs["fillcolor"] = ZERO_COLOR
        elif heat is not None:
            i = heat.color(norm)
            attrs["fillcolor"] = PALETTE[i]
            if i < DARK:
                attrs["fontcolor"] = "white"
    if node.is_output:
        lines.append("output")
        attrs.update(peripheries="2", penwidth="2")
    if node.highlight:
        attrs.update(color=BAD_COLOR if node.highlight == "path" else HIGHLIGHT_COLOR, penwidth="4")
        tooltip = "highlighted: " + (tooltip or "")
    if tooltip:
        attrs["tooltip"] = esc(tooltip)
    return "\\n".join(lines), attrs
