"""debug_nan: three ways a NaN gets into training, what tl.autograd.detect_anomaly says about each, and the fix.

1. overflow: a hand-written softmax, exp(logits) / sum(exp(logits)), with a large logit: exp overflows to inf
   and inf / inf is NaN. The error names the exp (not the div where the NaN appeared). Fix: F.softmax.
2. masked branch: tl.where(x > 0, x.log(), 0) is finite in forward, but its backward is NaN at x = 0 (the
   discarded log branch has an infinite slope there: 0 * inf). Fix: apply where to the input first.
3. bad input: a NaN in the data. The error names the first operation that read it. Fix: clean the batch.

    python examples/debug_nan.py [--smoke]
"""
import numpy as np

import tinygrad_lite as tl
from tinygrad_lite.nn import functional as F

from _common import parse, parser


def overflow(logits):
    e = logits.exp()
    return e / e.sum(-1, keepdim=True)


def overflow_fixed(logits):
    return F.softmax(logits, -1)


def masked(x):
    return tl.where(x > 0, x.log(), 0.0)


def masked_fixed(x):
    safe = tl.where(x > 0, x, 1.0)
    return tl.where(x > 0, safe.log(), 0.0)


def bad_input(batch, layer):
    return layer(batch)


def bad_input_fixed(batch, layer):
    return layer(tl.where(tl.isfinite(batch), batch, 0.0))


def run(fn, *args):
    """(the AnomalyError raised in forward or backward, or None; the input's gradient)."""
    x = args[0]
    try:
        with tl.autograd.detect_anomaly():
            fn(*args).sum().backward()
    except tl.autograd.AnomalyError as err:
        return err, None
    return None, x.grad


def main(argv=None):
    parse(parser(__doc__), argv)
    tl.manual_seed(0)
    layer = tl.nn.Linear(3, 2)
    stories = [
        ("overflow", overflow, overflow_fixed, (tl.tensor([[1.0, 2.0, 800.0]], requires_grad=True),)),
        ("masked branch", masked, masked_fixed, (tl.tensor([0.0, 2.0], requires_grad=True),)),
        ("bad input", bad_input, bad_input_fixed, (tl.tensor(np.array([[1.0, np.nan, 3.0]], np.float32)), layer)),
    ]
    causes = []
    with np.errstate(all="ignore"):
        for title, broken, fixed, args in stories:
            err, _ = run(broken, *args)
            print(f"--- {title}: {broken.__name__}() ---\n{err}\n")
            if err is None:
                raise SystemExit(f"debug_nan: {title}: no anomaly was detected")
            causes.append(err.cause)
            if args[0].requires_grad:
                args[0].grad = None
            again, grad = run(fixed, *args)
            status = "no anomaly" if again is None else f"still {again.cause}"
            print(f"fixed with {fixed.__name__}(): {status}"
                  + ("" if grad is None else f", gradient {np.round(grad.numpy(), 4).tolist()}") + "\n")
    print(f"debug_nan: 3 stories, causes {', '.join(causes)}; all fixed")


if __name__ == "__main__":
    main()
