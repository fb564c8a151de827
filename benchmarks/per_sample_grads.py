"""python -m benchmarks.per_sample_grads [--repeats R]: per-sample gradients of a 784-256-10 ReLU MLP with
cross-entropy at batch 128, float32, one thread:

- tinygrad_lite `vmap(grad(loss))` (one call for the whole batch; the issue's target: at most 3x the plain step),
- one ordinary batched backward of the mean loss (the reference: the same arithmetic, but one gradient per
  parameter instead of one per sample),
- a Python loop of 128 single-sample `grad(loss)` calls,
- PyTorch's `torch.func.vmap(torch.func.grad(...))` and its batched backward, when torch is installed.

Medians over repeats; the per-sample gradients are checked against the loop before timing.
"""
import argparse
import os
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import tinygrad_lite as tl  # noqa: E402
from tinygrad_lite import func  # noqa: E402

BATCH, IN, HIDDEN, CLASSES = 128, 784, 256, 10


def _data():
    rng = np.random.default_rng(0)
    return (rng.standard_normal((BATCH, IN)).astype(np.float32), rng.integers(0, CLASSES, BATCH),
            [(rng.uniform(-0.05, 0.05, s).astype(np.float32)) for s in ((HIDDEN, IN), (HIDDEN,), (CLASSES, HIDDEN),
                                                                      (CLASSES,))])


def _median_time(fn, repeats):
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def ours(repeats):
    x, y, ws = _data()
    model = tl.nn.Sequential(tl.nn.Linear(IN, HIDDEN), tl.nn.ReLU(), tl.nn.Linear(HIDDEN, CLASSES))
    names = [k for k, _ in model.named_parameters()]
    params = {k: tl.tensor(w) for k, w in zip(names, ws)}
    xt, yt = tl.tensor(x), tl.tensor(y)

    def loss(p, xi, yi):
        return tl.nn.functional.cross_entropy(func.functional_call(model, p, (xi.unsqueeze(0),)), yi.unsqueeze(0))
    per_sample = func.vmap(func.grad(loss), in_dims=(None, 0, 0))
    loop = func.grad(loss)

    def batched():
        leaves = {k: v.detach().requires_grad_() for k, v in params.items()}
        tl.nn.functional.cross_entropy(func.functional_call(model, leaves, (xt,)), yt).backward()
    got = per_sample(params, xt, yt)
    for i in (0, BATCH - 1):  # the check: per-sample gradients equal single-sample ones
        single = loop(params, xt[i], yt[i])
        for k in names:
            np.testing.assert_allclose(got[k].numpy()[i], single[k].numpy(), rtol=1e-5, atol=1e-6)
    return {"vmap(grad)": _median_time(lambda: per_sample(params, xt, yt), repeats),
            "batched backward": _median_time(batched, repeats),
            "loop of grad": _median_time(lambda: [loop(params, xt[i], yt[i]) for i in range(BATCH)],
                                         max(1, repeats // 5))}


def theirs(repeats):
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(1)
    x, y, ws = _data()
    model = torch.nn.Sequential(torch.nn.Linear(IN, HIDDEN), torch.nn.ReLU(), torch.nn.Linear(HIDDEN, CLASSES))
    params = {k: torch.tensor(w) for (k, _), w in zip(model.named_parameters(), ws)}
    xt, yt = torch.tensor(x), torch.tensor(y)

    def loss(p, xi, yi):
        out = torch.func.functional_call(model, p, (xi.unsqueeze(0),))
        return torch.nn.functional.cross_entropy(out, yi.unsqueeze(0))
    per_sample = torch.func.vmap(torch.func.grad(loss), in_dims=(None, 0, 0))

    def batched():
        leaves = {k: v.detach().requires_grad_() for k, v in params.items()}
        torch.nn.functional.cross_entropy(torch.func.functional_call(model, leaves, (xt,)), yt).backward()
    return {"vmap(grad)": _median_time(lambda: per_sample(params, xt, yt), repeats),
            "batched backward": _median_time(batched, repeats)}


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.per_sample_grads", description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=20)
    args = p.parse_args(argv)
    rows = [("tinygrad_lite", ours(args.repeats)), ("PyTorch", theirs(args.repeats))]
    print(f"per-sample gradients, MLP {IN}-{HIDDEN}-{CLASSES}, batch {BATCH}, float32, one thread (medians)\n")
    print("| framework | vmap(grad) ms | batched backward ms | vmap / batched | loop of 128 grad ms |")
    print("|---|---|---|---|---|")
    for name, r in rows:
        if r is None:
            continue
        loop = f"{r['loop of grad'] * 1e3:.1f}" if "loop of grad" in r else "-"
        print(f"| {name} | {r['vmap(grad)'] * 1e3:.2f} | {r['batched backward'] * 1e3:.2f} | "
              f"{r['vmap(grad)'] / r['batched backward']:.2f}x | {loop} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
