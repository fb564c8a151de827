"""python -m benchmarks.gradflow_cost [--steps N] [--repeats R]: the cost of tl.viz.GradFlow.record() against a
W2 step (MLP 784-256-256-10, batch 128, CE, SGD; the same case as the main harness, tinygrad_lite eager).

Interleaves plain steps and steps followed by record() (so machine load hits both alike) and reports the median
of each, the median record() alone, and record() as a percentage of a plain step (the budget is 5%).
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


def measure(steps=200, repeats=3):
    """(median W2 step s, median record() s) over `repeats` rounds of `steps` interleaved steps."""
    params = WORKLOADS["W2"].params
    case = impl_tl.build("W2", make_data("W2", params), params)
    flow = tl.viz.GradFlow(case.model)
    for _ in range(5):  # warm-up: caches, buffers
        case.step()
        flow.record()
    plain, record = [], []
    for _ in range(repeats * steps):
        t0 = time.perf_counter()
        case.step()
        t1 = time.perf_counter()
        flow.record()
        t2 = time.perf_counter()
        plain.append(t1 - t0)
        record.append(t2 - t1)
    return float(np.median(plain)), float(np.median(record))


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.gradflow_cost", description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    step, rec = measure(args.steps, args.repeats)
    n = sum(q.numel() for q in impl_tl.build("W2", make_data("W2", WORKLOADS["W2"].params),
                                              WORKLOADS["W2"].params).model.parameters())
    print(f"W2 step {step * 1e3:.3f} ms; GradFlow.record() {rec * 1e6:.0f} us for 6 parameters ({n:,} elements) "
          f"= {rec / step:.1%} of a step (budget 5%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
