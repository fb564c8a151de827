"""GradFlow: how gradients flow through a model over training — per-layer statistics, flags, a report and a plot.

Recording is kept to a few BLAS-speed passes over each gradient (one |g| into a reused buffer, two dot
products, a max, a count), so calling `record()` every step costs a few percent of a small MLP step
(benchmarks/gradflow_cost.py measures it). matplotlib is imported only by `plot()` (the optional extra `plot`).
"""
import math

import numpy as np

from ..compile.hooks import refuse

STATS = ("norm", "mean_abs", "max_abs", "zero_fraction", "nonfinite")
_HAS_GRAD = len(STATS)  # column of the per-step table: 1 where the parameter had a gradient
PLOT_HINT = "GradFlow.plot needs matplotlib: pip install tinygrad_lite[plot] (or pip install matplotlib)"


class GradFlow:
    """Per-parameter gradient statistics over training steps: call `record()` after each `backward()`.

    `history[name][stat]` is a 1-D array with one element per recorded step, for stat in `norm` (L2),
    `mean_abs`, `max_abs`, `zero_fraction` (exactly-zero elements) and `nonfinite` (NaN/Inf count); a parameter
    without a gradient at a step (frozen, unused) has NaN there and is reported as "no gradient".

    `flags()` judges the last recorded step. Every threshold is relative — to the parameter's own weights, to the
    other layers, or to the parameter's own earlier gradients — so that it means the same for a 2-layer toy and
    a 100-layer network (a single absolute number cannot: a healthy gradient norm ranges over 1e-6..1e3):

    - 'nonfinite': some gradient element is NaN or Inf.
    - 'dead': at least `dead_fraction` (0.5) of the elements were exactly zero at each of the last `window` (3)
      recorded steps (dead ReLU units, inputs that are always 0). With batches of a single sample a healthy
      ReLU layer has about half of its gradients at zero: raise `dead_fraction` then.
    - 'vanishing': the parameter's relative gradient r = |grad| / |weights| is below `vanishing` (1e-3) times the
      largest r among the parameters, or below 1e-7 (float32's resolution: a learning rate of at most 1 can no
      longer change such weights). A bias in front of a BatchNorm is flagged so, rightly: the normalisation
      cancels it, and its gradient is zero up to rounding.
    - 'exploding': the gradient norm grew more than `exploding` (100) times above the median of its first
      (up to 5) recorded steps, or the layer's r exceeds `exploding` (a gradient 100 times the weights: even a
      learning rate of 0.01 would replace them).
    Parameters whose weights are all zero (a zero-initialised bias) are judged only against their own history.

    Cost: the five exact statistics take five passes over every gradient (~13% of a small MLP step, measured by
    benchmarks/gradflow_cost.py). `full_every=k` keeps the norm and the non-finite count at every step (one BLAS
    dot product) and the other three at every k-th recorded step (the first included), NaN in `history` between;
    'dead' is then judged on the steps that have the zero fraction, and the report and the plot show mean and max
    |grad| of the last step that has them.
    """

    def __init__(self, model, *, vanishing=1e-3, exploding=100.0, dead_fraction=0.5, window=3, full_every=1):
        named = model.named_parameters() if hasattr(model, "named_parameters") else \
            (model.items() if isinstance(model, dict) else model)
        self.params = list(named)
        if not self.params:
            raise ValueError("GradFlow: the model has no parameters to watch")
        self.vanishing, self.exploding, self.dead_fraction, self.window = vanishing, exploding, dead_fraction, window
        if isinstance(full_every, bool) or not isinstance(full_every, int) or full_every < 1:
            raise ValueError(f"GradFlow: full_every must be a positive int (1: every statistic at every step), got "
                             f"{full_every!r}")
        self.full_every = full_every
        self._steps = []       # one (n_params, 6) array per recorded step
        self._buffers = {}     # name -> (|grad| buffer, its flat view, ones, its bits): reused every step
        self._history = None

    # ----- recording -----
    def record(self):
        """Read every parameter's `.grad` now (after `backward()`, before `zero_grad()`)."""
        refuse("GradFlow.record reads the gradients into its history")  # (inside tl.compile: eagerly, every call)
        row = np.full((len(self.params), _HAS_GRAD + 1), np.nan)  # NaN: no gradient
        full = len(self._steps) % self.full_every == 0
        for i, (name, p) in enumerate(self.params):
            g = p._grad
            if g is not None:
                row[i, :_HAS_GRAD] = self._stats(name, g._data) if full else _norm_only(g._data)
                row[i, _HAS_GRAD] = 1.0
        if not np.any(row[:, _HAS_GRAD] == 1.0):
            raise RuntimeError(
                f"GradFlow.record(): none of the model's {len(self.params)} parameters has a gradient: call "
                f"loss.backward() first, and record() before optimizer.zero_grad() (which clears them)")
        self._steps.append(row)
        self._history = None

    def _stats(self, name, g):
        """norm, mean |g|, max |g|, zero fraction and non-finite count of one gradient, in five fast passes
        (|g| into a reused buffer, two BLAS dot products for sum |g|^2 and sum |g|, a max, a count)."""
        cache = self._buffers.get(name)
        if cache is None or cache[0].shape != g.shape or cache[0].dtype != g.dtype:
            cache = self._buffers[name] = _scratch(g)
        buf, flat, ones, bits = cache
        n = flat.size
        if n == 0:
            return 0.0, 0.0, 0.0, 0.0, 0.0
        np.abs(g, out=buf)
        sq, total = float(flat.dot(flat)), float(flat.dot(ones))
        zeros = n - np.count_nonzero(bits)  # |g| has no -0.0: its bits are all zero iff the value is 0
        bad = 0
        if not math.isfinite(sq + total):
            bad = n - int(np.count_nonzero(np.isfinite(g)))
            if bad == 0:  # all finite but huge: the sums overflowed in this dtype
                a64 = flat.astype(np.float64)
                sq, total = float(a64.dot(a64)), float(a64.sum())
        return math.sqrt(sq), total / n, float(flat.max()), zeros / n, float(bad)

    # ----- reading -----
    @property
    def steps(self):
        return len(self._steps)

    @property
    def last_full_step(self):
        """Index of the last recorded step with every statistic (the last step unless full_every > 1)."""
        return (len(self._steps) - 1) // self.full_every * self.full_every

    @property
    def history(self):
        """name -> {stat: 1-D array over the recorded steps}."""
        if self._history is None:
            table = np.stack(self._steps) if self._steps else np.empty((0, len(self.params), _HAS_GRAD + 1))
            self._history = {name: {s: table[:, i, k].copy() for k, s in enumerate(STATS)}
                             for i, (name, _) in enumerate(self.params)}
        return self._history

    def _require_steps(self, what):
        if not self._steps:
            raise RuntimeError(f"GradFlow.{what}: nothing recorded yet: call record() after loss.backward()")

    def flags(self):
        """name -> list of flags from 'vanishing', 'exploding', 'dead', 'nonfinite' (thresholds: class docstring)."""
        self._require_steps("flags()")
        table = np.stack(self._steps)
        last = table[-1]
        out = {name: [] for name, _ in self.params}
        ratio = self._ratios(last)
        finite_r = [r for r in ratio if np.isfinite(r) and r > 0]
        top = max(finite_r) if finite_r else np.nan
        for i, (name, _) in enumerate(self.params):
            if last[i, _HAS_GRAD] != 1.0:
                continue
            f = out[name]
            norm = last[i, 0]
            r = ratio[i]
            if last[i, 4] > 0:
                f.append("nonfinite")
            if np.isfinite(norm) and norm > 0 and np.isfinite(r):
                if r < max(self.vanishing * top, 1e-7):
                    f.append("vanishing")
            if self._grew(table[:, i, 0]) or (np.isfinite(r) and r > self.exploding):
                f.append("exploding")
            zf = table[:, i, 3]
            computed = ~((table[:, i, _HAS_GRAD] == 1.0) & np.isnan(zf))  # not a norm-only step
            recent = zf[computed][-self.window:]
            if recent.size and np.all(recent >= self.dead_fraction):
                f.append("dead")
        return out

    def _ratios(self, last):
        """Per parameter, |grad| / |weights| (NaN: all-zero weights, as a zero-initialised bias: it is judged only
        against its own history; no gradient; non-finite)."""
        out = []
        for i, (name, p) in enumerate(self.params):
            w = p._data.reshape(-1)
            w2 = float(np.dot(w, w)) if last[i, _HAS_GRAD] == 1.0 and np.isfinite(last[i, 0]) else 0.0
            out.append(last[i, 0] / np.sqrt(w2) if w2 > 0 else np.nan)
        return out

    def _grew(self, norms):
        early = norms[:min(5, len(norms) - 1)]
        early = early[np.isfinite(early)]
        now = norms[-1]
        return early.size > 0 and np.isfinite(now) and now > self.exploding * max(float(np.median(early)), 1e-300)

    # ----- the report -----
    def rows(self, max_rows=40):
        """(label, stats dict, flags text) per parameter, or per module (then per coarser module) when the model
        has more than `max_rows` parameters."""
        self._require_steps("report()")
        last, flags = self._steps[-1], self.flags()
        full = self._steps[self.last_full_step]  # mean, max and zeros: the last step that has them
        groups = _groups([n for n, _ in self.params], max_rows)
        out = []
        for label, idx in groups:
            sub, subf = last[idx], full[idx]
            has, hasf = sub[:, _HAS_GRAD] == 1.0, subf[:, _HAS_GRAD] == 1.0
            sizes = np.array([self.params[i][1]._data.size for i in idx], float)
            if not has.any():
                out.append((label, None, "no gradient"))
                continue
            w = sizes[hasf] / sizes[hasf].sum() if hasf.any() else np.zeros(0)
            subf = subf[hasf]
            st = {"norm": float(np.sqrt(np.sum(sub[has, 0] ** 2))), "nonfinite": float(np.sum(sub[has, 4])),
                  "mean_abs": float(w @ subf[:, 1]) if w.size else np.nan,
                  "max_abs": float(np.max(subf[:, 2])) if w.size else np.nan,
                  "zero_fraction": float(w @ subf[:, 3]) if w.size else np.nan,
                  "numel": int(sizes.sum()), "count": len(idx)}
            out.append((label, st, _flag_text([flags[self.params[i][0]] for i in idx], int((~has).sum()))))
        return out

    def report(self, max_rows=40):
        """A text table of the last recorded step: one row per parameter (per module for large models)."""
        if not self._steps:
            return "GradFlow: nothing recorded yet: call record() after loss.backward()"
        rows = self.rows(max_rows)
        grouped = len(rows) < len(self.params)
        head = ("module" if grouped else "parameter", "numel", "grad norm", "mean |g|", "max |g|", "zeros",
                "nonfinite", "flags")
        body = [(label, "-", "-", "-", "-", "-", "-", flags) if st is None else
                (label + (f" ({st['count']} params)" if grouped else ""), str(st["numel"]), f"{st['norm']:.3g}",
                 f"{st['mean_abs']:.3g}", f"{st['max_abs']:.3g}", f"{st['zero_fraction']:.0%}",
                 str(int(st["nonfinite"])), flags) for label, st, flags in rows]
        widths = [max(len(r[k]) for r in [head] + body) for k in range(len(head))]
        fmt = lambda r: "  ".join(c.ljust(w) if k in (0, 7) else c.rjust(w)  # noqa: E731
                                  for k, (c, w) in enumerate(zip(r, widths))).rstrip()
        title = (f"GradFlow: {len(self.params)} parameters, {self.steps} recorded step"
                 f"{'s' if self.steps != 1 else ''}; last step" + (", grouped by module" if grouped else ""))
        if self.last_full_step != self.steps - 1:
            title += f" (mean, max and zeros: step {self.last_full_step + 1}, the last with them; full_every=" \
                     f"{self.full_every})"
        return "\n".join([title, fmt(head), fmt(tuple("-" * w for w in widths))] + [fmt(r) for r in body])

    def __repr__(self):
        return f"GradFlow({len(self.params)} parameters, {self.steps} recorded steps)"

    # ----- the picture -----
    def plot(self, path=None, max_rows=40):
        """A matplotlib Figure: mean and max |grad| per layer at the last step (bars, log scale) and each layer's
        gradient norm over the recorded steps (log scale); flagged layers in red. Saved to `path` (.png, .svg,
        .pdf) when given. Needs matplotlib (the extra `plot`)."""
        try:
            from matplotlib.figure import Figure
        except ImportError:
            raise ImportError(PLOT_HINT) from None
        self._require_steps("plot()")
        rows = self.rows(max_rows)
        series = self._norm_series(max_rows)
        fig = Figure(figsize=(max(8.0, 4.0 + 0.35 * len(rows)), 4.8), layout="constrained")
        bars, lines = fig.subplots(1, 2, width_ratios=(max(1.0, len(rows) / 8), 1.0))
        _draw_bars(bars, rows)
        _draw_lines(lines, series, {label for label, _, flags in rows if flags and flags != "no gradient"})
        fig.suptitle(f"gradient flow: {len(self.params)} parameters, {self.steps} steps")
        if path is not None:
            fig.savefig(path)
        return fig

    def _norm_series(self, max_rows):
        """(label, norms over steps) per row of the report (a group's norm: root of its members' squares)."""
        table = np.stack(self._steps)
        series = []
        for label, idx in _groups([n for n, _ in self.params], max_rows):
            norms = table[:, idx, 0]
            series.append((label, np.sqrt(np.nansum(norms ** 2, axis=1)) if norms.shape[1] > 1 else norms[:, 0]))
        return series


def _norm_only(g):
    """(norm, NaN, NaN, NaN, non-finite count) of one gradient: one BLAS dot product, a count only when the sum
    is not finite (a step of full_every > 1 between the full ones)."""
    flat = g.reshape(-1) if g.dtype.kind == "f" else g.reshape(-1).astype(np.float64)
    sq, bad = float(flat.dot(flat)) if flat.size else 0.0, 0
    if not math.isfinite(sq):
        bad = flat.size - int(np.count_nonzero(np.isfinite(flat)))
        if bad == 0:  # all finite but huge: the sum overflowed in this dtype
            a64 = flat.astype(np.float64)
            sq = float(a64.dot(a64))
    return math.sqrt(sq), np.nan, np.nan, np.nan, float(bad)


def _scratch(g):
    """What _stats reuses for gradients shaped like `g`: a |g| buffer, its flat view, ones (sum |g| as a BLAS
    dot product) and the buffer's bits as unsigned integers (counting zeros on integers is several times faster)."""
    dtype = g.dtype if g.dtype.kind == "f" else np.dtype(np.float64)
    buf = np.empty(g.shape, dtype)
    flat = buf.reshape(-1)
    return buf, flat, np.ones(flat.size, dtype), flat.view(f"u{dtype.itemsize}")


def _module_of(name):
    return name.rpartition(".")[0]


def _groups(names, max_rows):
    """[(label, [indices])] in model order: each name alone when they fit in max_rows, else grouped by module
    path, cut to fewer dotted components until the groups fit."""
    if len(names) <= max_rows:
        return [(n, [i]) for i, n in enumerate(names)]
    depth = max(n.count(".") for n in names)
    while True:
        groups = {}
        for i, n in enumerate(names):
            key = ".".join(n.split(".")[:depth]) if depth else "(model)"
            groups.setdefault(key or "(model)", []).append(i)
        if len(groups) <= max_rows or depth == 0:
            return list(groups.items())
        depth -= 1


def _flag_text(per_param, missing):
    counts = {}
    for flags in per_param:
        for f in flags:
            counts[f] = counts.get(f, 0) + 1
    parts = [f if len(per_param) == 1 else f"{f} x{c}" for f, c in counts.items()]
    if missing:
        parts.append("no gradient" if len(per_param) == 1 else f"no gradient x{missing}")
    return ", ".join(parts)


BAD, MEAN, MAX = "#e41a1c", "#4a90d9", "#b0c4de"


def _draw_bars(ax, rows):
    x = np.arange(len(rows))
    tiny = 1e-30  # log scale: zero bars drawn at the bottom
    mean = [max(st["mean_abs"], tiny) if st else np.nan for _, st, _ in rows]
    top = [max(st["max_abs"], tiny) if st else np.nan for _, st, _ in rows]
    ax.bar(x, top, 0.8, color=MAX, label="max |grad|")
    ax.bar(x, mean, 0.45, color=MEAN, label="mean |grad|")
    ax.set_yscale("log")
    ax.set_xticks(x, [label for label, _, _ in rows], rotation=60, ha="right", fontsize=8)
    for tick, (_, st, flags) in zip(ax.get_xticklabels(), rows):
        if flags:
            tick.set_color(BAD)
    for k, (_, st, flags) in enumerate(rows):
        if flags:
            ax.annotate(flags, (k, ax.get_ylim()[0]), xytext=(0, 4), textcoords="offset points", rotation=90,
                        color=BAD, fontsize=7, ha="center", va="bottom")
    ax.set_ylabel("|grad| at the last step")
    ax.set_title("per layer: mean and max |grad| (flagged in red)")
    ax.legend(fontsize=8)


def _draw_lines(ax, series, flagged):
    steps = None
    for label, norms in series:
        steps = np.arange(1, len(norms) + 1)
        bad = label in flagged
        ax.plot(steps, np.where(norms > 0, norms, np.nan), lw=2.2 if bad else 1.0, color=BAD if bad else None,
                alpha=1.0 if bad else 0.7, label=label if (bad or len(series) <= 10) else None)
    ax.set_yscale("log")
    ax.set_xlabel("recorded step")
    ax.set_ylabel("gradient norm")
    ax.set_title("per layer: gradient norm over steps")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
