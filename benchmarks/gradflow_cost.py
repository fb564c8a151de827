"""python -m benchmarks.gradflow_cost [--steps N] [--repeats R]: the cost of tl.viz.GradFlow.record() against a
W2 step (MLP 784-256-256-10, batch 128, CE, SGD; the same case as the main harness, tinygrad_lite eager).

The figure that counts is the whole loop, not only the call (record() also leaves the caches colder for the next
step): blocks of plain steps and blocks of steps each followed by record(), interleaved (so machine load hits both
alike); reported: the median step of each kind, the overhead of recording in percent of a plain step (the budget
is 5%), and the median record() call alone.
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


def measure(steps=200, repeats=3, block=25):
    """(median plain step s, median step-with-record s, median record() call s)."""
    params = WORKLOADS["W2"].params
    case = impl_tl.build("W2", make_data("W2", params), params)
    flow = tl.viz.GradFlow(case.model)
    for _ in range(5):  # warm-up: caches, the reused |grad| buffers
        case.step()
        flow.record()
    plain, recorded, calls = [], [], []
    for _ in range(repeats * steps // block):
        for _ in range(block):
            t0 = time.perf_counter()
            case.step()
            plain.append(time.perf_counter() - t0)
        for _ in range(block):
            t0 = time.perf_counter()
            case.step()
            t1 = time.perf_counter()
            flow.record()
            t2 = time.perf_counter()
            recorded.append(t2 - t0)
            calls.append(t2 - t1)
    return float(np.median(plain)), float(np.median(recorded)), float(np.median(calls))


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.gradflow_cost", description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    step, with_record, call = measure(args.steps, args.repeats)
    n = sum(q.numel() for q in impl_tl.build("W2", make_data("W2", WORKLOADS["W2"].params),
                                              WORKLOADS["W2"].params).model.parameters())
    print(f"W2 step {step * 1e3:.3f} ms; with GradFlow.record() after it {with_record * 1e3:.3f} ms: recording costs "
          f"{with_record / step - 1:.1%} of a step (budget 5%); the record() call itself {call * 1e6:.0f} us for "
          f"6 parameters ({n:,} elements)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
