"""Find a wrong gradient deep inside a model with tl.gradcheck.

A small CNN (Conv2d -> BatchNorm2d -> a custom Swish activation -> MaxPool2d -> Dropout -> Linear) uses a custom
`tl.autograd.Function` whose backward forgets one term of the product rule. gradcheck compares every gradient
(input and parameters, on a float64 copy of the model, with dropout made deterministic) against finite
differences, and on failure replays each recorded operation alone to name the one whose backward is wrong, with
the source line where it was called. The fixed Function then passes.

Run: python examples/gradcheck_custom_layer.py [--seed N]   (--smoke is accepted; the run is already small)
"""
import os

import numpy as np

import tinygrad_lite as tl
from tinygrad_lite import nn

from _common import parse, parser


class BuggySwish(tl.autograd.Function):
    """swish(x) = x * sigmoid(x); the backward drops the `sigmoid(x)` term of the product rule."""

    @staticmethod
    def forward(ctx, x):
        s = x.sigmoid()
        ctx.save_for_backward(x, s)
        return x * s

    @staticmethod
    def backward(ctx, grad):
        x, s = ctx.saved_tensors
        return grad * x * s * (1.0 - s)  # BUG: should be grad * (s + x * s * (1 - s))


class Swish(tl.autograd.Function):
    """The fixed version: d/dx [x * s(x)] = s + x * s * (1 - s)."""

    @staticmethod
    def forward(ctx, x):
        s = x.sigmoid()
        ctx.save_for_backward(x, s)
        return x * s

    @staticmethod
    def backward(ctx, grad):
        x, s = ctx.saved_tensors
        return grad * (s + x * s * (1.0 - s))


class Activation(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn.apply(x)


class SmallCNN(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), Activation(fn),
                                      nn.MaxPool2d(2))
        self.dropout = nn.Dropout(0.25)
        self.classifier = nn.Linear(4 * 3 * 3, 3)

    def forward(self, x):
        h = self.features(x).flatten(1)
        return self.classifier(self.dropout(h))


def main(argv=None):
    args = parse(parser(__doc__), argv)
    tl.manual_seed(args.seed)
    x = tl.tensor(np.random.default_rng(args.seed).standard_normal((2, 1, 6, 6)), requires_grad=True)

    print("== gradcheck with the buggy Swish ==")
    try:
        tl.gradcheck(SmallCNN(BuggySwish), x)
        raise SystemExit("gradcheck_custom_layer: the bug was not found")
    except tl.GradcheckError as err:
        print(err)
        faulty = err.faulty_entry
    path, line = faulty.source_path.rsplit(":", 1)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    where = f"{os.path.relpath(path, root)}:{line}"

    print("\n== gradcheck with the fixed Swish ==")
    tl.manual_seed(args.seed)
    assert tl.gradcheck(SmallCNN(Swish), x)
    print("passed")
    print(f"\ngradcheck_custom_layer: located {faulty.name} at {where}; fixed version passes")


if __name__ == "__main__":
    main()
