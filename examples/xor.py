"""The classic 2-4-1 sigmoid network learning XOR, written as plain tensor expressions and trained by gradient
descent with the engine's gradients.

    python examples/xor.py [--steps N] [--smoke]
"""
import numpy as np

import tinygrad_lite as tl

from _common import Timer, parse, parser, progress

STEPS = 2000


def train(steps=STEPS, lr=2.0, seed=0):
    tl.manual_seed(seed)
    x = tl.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = tl.tensor([[0.0], [1.0], [1.0], [0.0]])
    w1 = tl.randn(2, 4, requires_grad=True)
    b1 = tl.zeros(4, requires_grad=True)
    w2 = tl.randn(4, 1, requires_grad=True)
    b2 = tl.zeros(1, requires_grad=True)
    params = [w1, b1, w2, b2]
    bar = progress(range(steps), desc="training")
    for step in bar:
        hidden = (x @ w1 + b1).sigmoid()
        pred = (hidden @ w2 + b2).sigmoid()
        loss = ((pred - y) ** 2).mean()
        for p in params:
            p.grad = None
        loss.backward()
        with tl.no_grad():
            for p in params:
                p.sub_(p.grad * lr)
        if step % 50 == 0:
            bar.set_postfix(loss=round(loss.item(), 5), refresh=False)
    return pred.numpy(), loss.item()


def main(argv=None):
    args = parse(parser(__doc__, steps=STEPS), argv, steps=STEPS, smoke_steps=200)
    with Timer() as t:
        pred, loss = train(args.steps, seed=args.seed)
    print("inputs  -> prediction")
    for inp, p in zip([(0, 0), (0, 1), (1, 0), (1, 1)], pred[:, 0]):
        print(f"  {inp} -> {p:.3f}")
    correct = int(((pred[:, 0] > 0.5) == np.array([0, 1, 1, 0], bool)).sum())
    print(f"xor: final loss {loss:.4f}, {correct}/4 correct, {args.steps} steps in {t.seconds:.2f} s")
    return loss, correct


if __name__ == "__main__":
    main()
