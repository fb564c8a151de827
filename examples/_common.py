"""Helpers shared by the examples: command-line arguments, a progress bar, timing and graph drawing.

Smoke mode (`--smoke`, or the environment variable TL_EXAMPLE_SMOKE=1) makes each example do a tiny amount of
work; tests/test_examples.py runs every example that way. tqdm is optional: without it (or with
TL_EXAMPLE_NO_TQDM=1) the progress bar becomes one plain line per loop.

The examples' matrices are small, so BLAS runs single-threaded (via threadpoolctl, which scikit-learn brings,
unless OPENBLAS_NUM_THREADS/OMP_NUM_THREADS/MKL_NUM_THREADS is set): on a busy 2-core machine OpenBLAS's spinning
worker threads made char_lstm's steps 6x slower (218 vs 35 ms), and on an idle one a thread buys nothing.
"""
import argparse
import os
import sys
import time

SMOKE_ENV = "TL_EXAMPLE_SMOKE"
NO_TQDM_ENV = "TL_EXAMPLE_NO_TQDM"


def parser(doc, epochs=None, steps=None, seed=0):
    """An ArgumentParser with --smoke and --seed, plus --epochs / --steps when the example has them."""
    p = argparse.ArgumentParser(description=doc.strip().splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true",
                   help=f"tiny run for the tests (same as {SMOKE_ENV}=1)")
    p.add_argument("--seed", type=int, default=seed, help=f"random seed (default {seed})")
    if epochs is not None:
        p.add_argument("--epochs", type=int, default=None, help=f"training epochs (default {epochs})")
    if steps is not None:
        p.add_argument("--steps", type=int, default=None, help=f"training steps (default {steps})")
    return p


def parse(p, argv=None, epochs=None, steps=None, smoke_epochs=1, smoke_steps=5):
    """Parse arguments; smoke mode lowers the defaults of --epochs/--steps (explicit values still win)."""
    args = p.parse_args(argv)
    args.smoke = args.smoke or os.environ.get(SMOKE_ENV, "") not in ("", "0")
    if epochs is not None and args.epochs is None:
        args.epochs = smoke_epochs if args.smoke else epochs
    if steps is not None and args.steps is None:
        args.steps = smoke_steps if args.smoke else steps
    limit_blas_threads()
    return args


_limits = []


def limit_blas_threads(n=1):
    """Limit BLAS to n threads, unless the user chose a thread count in the environment or threadpoolctl is
    missing. Returns True when the limit was applied."""
    if any(os.environ.get(v) for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")):
        return False
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return False
    _limits.append(threadpool_limits(limits=n, user_api="blas"))  # kept: it is the handle that can undo it
    return True


class _PlainBar:
    """The part of tqdm's interface the examples use, printing one line when the loop ends."""

    def __init__(self, iterable, desc, total):
        self.iterable, self.desc, self.postfix = iterable, desc, ""
        self.total = total if total is not None else (len(iterable) if hasattr(iterable, "__len__") else None)

    def __iter__(self):
        t0, n = time.perf_counter(), 0
        for n, item in enumerate(self.iterable, 1):
            yield item
        took = time.perf_counter() - t0
        print(f"{self.desc}: {n}/{self.total if self.total is not None else n} in {took:.2f} s"
              f"{', ' + self.postfix if self.postfix else ''}", flush=True)

    def set_postfix(self, refresh=True, **values):
        self.postfix = ", ".join(f"{k}={_fmt(v)}" for k, v in values.items())


def _fmt(v):
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def progress(iterable, desc, total=None):
    """tqdm(iterable) when tqdm is installed (imported here, lazily), else a plain one-line report."""
    if os.environ.get(NO_TQDM_ENV, "") in ("", "0"):
        try:
            from tqdm import tqdm
        except ImportError:
            pass
        else:
            return tqdm(iterable, desc=desc, total=total, leave=False, dynamic_ncols=True, file=sys.stderr)
    return _PlainBar(iterable, desc, total)


def show_path(path):
    """`path` relative to the current directory when it lies below it, else absolute."""
    rel = os.path.relpath(os.path.abspath(path))
    return os.path.abspath(path) if rel.startswith(os.pardir) else rel


def plural(n, word):
    return f"{n} {word}{'' if n == 1 else 's'}"


class Timer:
    """`with Timer() as t: ...`, then `t.seconds`."""

    def __enter__(self):
        self._t0 = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self._t0
        return False


def draw(outputs, path, **kwargs):
    """Write the graph behind `outputs` with tl.viz: always `<path>.dot`, plus `<path>.svg` when graphviz's
    `dot` program is installed. Returns a one-line description of what was written (or why not)."""
    import tinygrad_lite as tl

    outputs = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
    try:
        graph = tl.viz.draw(*outputs, **kwargs)
    except ImportError as exc:  # the graphviz Python package is missing
        return f"graph not drawn: {exc}"
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    try:
        written = tl.viz.save(graph, path)
    except tl.viz.DotNotFoundError:  # `dot` vanished between the PATH check and the call; the .dot is there
        written = [os.path.splitext(path)[0] + ".dot"]
    note = "" if any(w.endswith(".svg") for w in written) else \
        " (no SVG: graphviz's `dot` program is not installed; apt-get/brew/conda install graphviz)"
    return "graph written to " + ", ".join(show_path(w) for w in written) + note
