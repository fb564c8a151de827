"""python -m benchmarks.gradflow_cost [--steps N] [--repeats R] [--full-every K]: the cost of tl.viz.GradFlow.record() against a
W2 step (MLP 784-256-256-10, batch 128, CE, SGD; the same case as the main harness, tinygrad_lite eager).

The figure that counts is the whole loop, not only the call (record() also leaves the caches colder for the next
step): blocks of plain steps and blocks of steps each followed by record(), interleaved (so machine load hits both
alike); reported: the median step of each kind, the overhead of recording in percent of a plain step (the budget
is 5%), and the median record() call alone. --full-every K measures GradFlow(model, full_every=K): the norm and
the non-finite count at every step, the other statistics at every K-th.
"""
import argparse
import os
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as the harness's threads=1 mode, before NumPy loads

import numpy as np  # noqa: E402

import tinygrad_lite as tl  # noqa: E402

from . import impl_tl  # noqa: E402
from .workloads import WORKLOADS, make_data  # noqa: E402


def measure(steps=200, repeats=3, block=25, full_every=1):
    """(median plain step s, median step-with-record s, the overhead, median record() call s). The overhead is the
    median over pairs of adjacent blocks of (block with record() / plain block) - 1; each block is a multiple of
    full_every steps, so with full_every > 1 it is the amortized cost (full and norm-only steps in their share)."""
    params = WORKLOADS["W2"].params
    case = impl_tl.build("W2", make_data("W2", params), params)
    flow = tl.viz.GradFlow(case.model, full_every=full_every)
    block = -(-block // full_every) * full_every
    for _ in range(full_every * max(1, 5 // full_every)):  # warm-up: caches, the reused |grad| buffers
        case.step()
        flow.record()
    plain, recorded, calls, ratios = [], [], [], []
    for _ in range(max(1, repeats * steps // block)):
        t_block = time.perf_counter()
        for _ in range(block):
            t0 = time.perf_counter()
            case.step()
            plain.append(time.perf_counter() - t0)
        t_mid = time.perf_counter()
        for _ in range(block):
            t0 = time.perf_counter()
            case.step()
            t1 = time.perf_counter()
            flow.record()
            t2 = time.perf_counter()
            recorded.append(t2 - t0)
            calls.append(t2 - t1)
        ratios.append((time.perf_counter() - t_mid) / (t_mid - t_block))
    return (float(np.median(plain)), float(np.median(recorded)), float(np.median(ratios)) - 1.0,
            float(np.median(calls)))


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.gradflow_cost", description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--full-every", type=int, default=1)
    args = p.parse_args(argv)
    step, with_record, overhead, call = measure(args.steps, args.repeats, full_every=args.full_every)
    n = sum(q.numel() for q in impl_tl.build("W2", make_data("W2", WORKLOADS["W2"].params),
                                              WORKLOADS["W2"].params).model.parameters())
    how = "" if args.full_every == 1 else f" (full_every={args.full_every})"
    print(f"W2 step {step * 1e3:.3f} ms (median); with GradFlow.record(){how} after each step, recording costs "
          f"{overhead:.1%} of a step over whole blocks (budget 5%); the record() call itself {call * 1e6:.0f} us "
          f"(median) for 6 parameters ({n:,} elements)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
