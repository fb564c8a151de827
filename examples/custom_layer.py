"""custom_layer: a self-attention block written only as a tensor expression — gradient-checked, trained, drawn.

The layer defines no backward: its gradients come from the recorded tape. tl.gradcheck compares them (for the
input and all four weight matrices) with finite differences in float64. Then a tiny model
(Linear -> SelfAttention -> mean over positions -> Linear) learns to read out the token at the marked position
of a random sequence, which a model without the attention block cannot do, and the graph of its loss is drawn.

    python examples/custom_layer.py [--steps N] [--out DIR] [--smoke]
"""
import math
import os

import numpy as np

import tinygrad_lite as tl
from tinygrad_lite import nn

from _common import Timer, draw, parse, parser, progress

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = 200
VOCAB, LENGTH, WIDTH = 8, 8, 16


class SelfAttention(nn.Module):
    """Single-head scaled dot-product self-attention with a residual connection, on (batch, time, dim)."""

    def __init__(self, dim):
        super().__init__()
        self.dim = dim
        scale = 1 / math.sqrt(dim)
        self.wq = nn.Parameter(tl.randn(dim, dim) * scale)
        self.wk = nn.Parameter(tl.randn(dim, dim) * scale)
        self.wv = nn.Parameter(tl.randn(dim, dim) * scale)
        self.wo = nn.Parameter(tl.randn(dim, dim) * scale)

    def forward(self, x):
        q, k, v = x @ self.wq, x @ self.wk, x @ self.wv
        weights = (q @ k.transpose(-2, -1) / math.sqrt(self.dim)).softmax(-1)  # (batch, time, time)
        return x + (weights @ v) @ self.wo


class Reader(nn.Module):
    def __init__(self, attention=True):
        super().__init__()
        self.embed = nn.Linear(VOCAB + 1, WIDTH)
        self.attn = SelfAttention(WIDTH) if attention else nn.Identity()
        self.head = nn.Linear(WIDTH, VOCAB)

    def forward(self, x):
        return self.head(self.attn(self.embed(x)).mean(1))


def make_batch(rng, n):
    """Sequences of one-hot tokens with a marker bit on one position; the label is the marked token."""
    tokens = rng.integers(0, VOCAB, (n, LENGTH))
    marked = rng.integers(0, LENGTH, n)
    x = np.zeros((n, LENGTH, VOCAB + 1), np.float32)
    x[np.arange(n)[:, None], np.arange(LENGTH), tokens] = 1
    x[np.arange(n), marked, VOCAB] = 1
    return tl.tensor(x), tl.tensor(tokens[np.arange(n), marked])


def check_gradients(seed):
    """gradcheck the layer in float64: the input's gradient and the four weights' (a Module is checked whole)."""
    tl.manual_seed(seed)
    layer = SelfAttention(4).double()
    x = tl.randn(2, 3, 4, dtype=tl.float64, requires_grad=True)
    ok = tl.gradcheck(layer, (x,))
    n = x.numel() + sum(p.numel() for p in layer.parameters())
    print(f"gradcheck SelfAttention in float64 (input 2x3x4 and wq, wk, wv, wo; {n} numbers): {ok}")
    return ok


def train(model, steps, seed, desc):
    rng = np.random.default_rng(seed)
    x_test, y_test = make_batch(rng, 1000)
    optimizer = tl.optim.Adam(model.parameters(), lr=1e-2)
    loss_fn = nn.CrossEntropyLoss()
    bar = progress(range(steps), desc=desc)
    for _ in bar:
        x, y = make_batch(rng, 64)
        loss = loss_fn(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        bar.set_postfix(loss=round(loss.item(), 4), refresh=False)
    with tl.no_grad():
        acc = (model(x_test).numpy().argmax(1) == y_test.numpy()).mean()
    return acc, loss.item()


def main(argv=None):
    p = parser(__doc__, steps=STEPS)
    p.add_argument("--out", default=os.path.join(ROOT, "runs", "custom_layer"),
                   help="directory for the graph (default: runs/custom_layer)")
    args = parse(p, argv, steps=STEPS, smoke_steps=20)

    ok = check_gradients(args.seed)

    with Timer() as t:
        tl.manual_seed(args.seed)
        acc, loss = train(Reader(), args.steps, args.seed, "with attention")
    print(f"with attention: test accuracy {acc:.1%}, final loss {loss:.2g}, {args.steps} steps in {t.seconds:.2f} s")
    tl.manual_seed(args.seed)
    base, _ = train(Reader(attention=False), args.steps, args.seed, "without")
    print(f"same model without the attention block: test accuracy {base:.1%} (it can only count tokens; "
          f"chance is {1 / VOCAB:.1%})")

    tl.manual_seed(args.seed)
    model = Reader()
    x, y = make_batch(np.random.default_rng(args.seed), 4)
    print(draw(nn.CrossEntropyLoss()(model(x), y), os.path.join(args.out, "attention_graph")))

    print(f"custom_layer: gradcheck {'passed' if ok else 'FAILED'}, test accuracy {acc:.1%} with attention vs "
          f"{base:.1%} without ({args.steps} steps, {t.seconds:.2f} s)")
    return ok, acc, base


if __name__ == "__main__":
    main()
