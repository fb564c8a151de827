"""python -m benchmarks [--quick] [--scaling] [--repeats N] [--threads 1|default|both] [--workloads W1,W2]

Each case runs in a fresh process; frameworks interleave (A B C A B C ...); cells are medians with min..max;
ratios are medians of per-repeat ratios. Frameworks: tinygrad_lite, torch, numpy (eager) and
tinygrad_lite-compiled, torch-compile (the same steps in tl.compile / torch.compile, compiled during warm-up). Prints a markdown table and writes JSON (and the table as .md) to
benchmarks/results/: latest.json (default set), scaling.json (--scaling), quick.json (--quick).
"""
import argparse
import os
import sys

from .harness import FRAMEWORKS, execute
from .report import build_rows, markdown, write_outputs
from .workloads import WORKLOADS

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def _csv(choices):
    def parse(text):
        items = [t.strip() for t in text.split(",") if t.strip()]
        bad = [t for t in items if t not in choices]
        if bad:
            raise argparse.ArgumentTypeError(f"unknown {bad}; choose from {', '.join(choices)}")
        return items
    return parse


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run: 1 repeat, tiny timing budgets")
    p.add_argument("--scaling", action="store_true", help="W2 vs batch/width and W5 vs chain length")
    p.add_argument("--repeats", type=int, default=None, help="fresh-process repeats (default 3; quick 1; scaling 2)")
    p.add_argument("--threads", choices=("1", "default", "both"), default=None,
                   help="thread modes (default both; --scaling: 1, reproducible on a shared 2-core machine)")
    p.add_argument("--workloads", type=_csv(list(WORKLOADS)), default=list(WORKLOADS))
    p.add_argument("--frameworks", type=_csv(list(FRAMEWORKS)), default=list(FRAMEWORKS))
    p.add_argument("--min-time", type=float, default=None, help="seconds of timed steps per process")
    p.add_argument("--malloc-keep", action="store_true",
                   help="set glibc MALLOC_* thresholds (all frameworks) so freed temporaries are reused")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds before a case is reported as failed")
    p.add_argument("--slow-compile", action="store_true",
                   help="also torch.compile chains of more than 10,000 ops (W5: 15 minutes a process, then a crash)")
    p.add_argument("--json", default=None, help="output path (default benchmarks/results/<mode>.json)")
    p.add_argument("--verbose", action="store_true", help="show the subprocesses' tracebacks")
    p.add_argument("--silent", action="store_true", help="no per-run progress on stderr")
    args = p.parse_args(argv)
    if args.repeats is None:
        args.repeats = 1 if args.quick else (2 if args.scaling else 3)
    if args.threads is None:
        args.threads = "1" if args.scaling else "both"
    if args.json is None:
        name = ("scaling_quick" if args.quick else "scaling") if args.scaling else ("quick" if args.quick else "latest")
        args.json = os.path.join(RESULTS, name + ".json")
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    out = execute(args)
    rows = build_rows(out, args.frameworks, args.scaling)
    title = "Scaling" if args.scaling else "Workloads W1-W6"
    title += f" ({'quick, ' if args.quick else ''}{args.repeats} repeat{'s' if args.repeats > 1 else ''})"
    md = markdown(rows, args.frameworks, title)
    if args.scaling:
        md += ("\nW2 rows: ms per step as batch and width grow; W5 rows: us per op as the chain grows "
               "(constant us/op = linear time).\n")
    sys.stdout.write(md)
    write_outputs(out, rows, md, args, args.json)
    sys.stdout.write(f"\nwrote {os.path.relpath(args.json)} ({out['wall_s']:.0f} s)\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
