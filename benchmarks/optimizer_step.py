"""python -m benchmarks.optimizer_step [--repeats R]: the cost of `optimizer.step()` on models of many small
parameters, float32, one thread:

- tinygrad_lite as shipped (a group's small parameters updated packed, one flat update; optim/packed.py),
- tinygrad_lite one parameter at a time (packing off: the reference it must equal bit for bit),
- PyTorch's for-loop update (`foreach=False`, its default on CPU) and its multi-tensor one (`foreach=True`),

on a 6-layer MLP of width 64 (14 parameters) and 100 blocks of Linear(8, 8) + LayerNorm(8) (400 parameters); and a
whole compiled training step (tl.compile) of the MLP with Adam, next to PyTorch's eager step. Medians over repeats.
"""
import argparse
import os
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import tinygrad_lite as tl  # noqa: E402
from tinygrad_lite.optim import optimizer as _optimizer  # noqa: E402

OPTIMIZERS = {"Adam": dict(lr=1e-3), "SGD momentum": dict(lr=0.01, momentum=0.9), "RMSprop": dict(lr=1e-3)}


def _layers(nn, kind):
    if kind == "mlp":
        sizes = [32] + [64] * 6
        layers = []
        for a, b in zip(sizes, sizes[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        return nn.Sequential(*layers, nn.Linear(64, 10))
    return nn.Sequential(*[nn.Sequential(nn.Linear(8, 8), nn.LayerNorm(8)) for _ in range(100)])


def _median_time(fn, repeats, number=20):
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - t0) / number)
    return float(np.median(times))


def _cls(lib, name):
    return getattr(lib.optim, "SGD" if name == "SGD momentum" else name)


def ours(kind, name, repeats, packed):
    model = _layers(tl.nn, kind)
    for p in model.parameters():
        p.grad = tl.tensor(np.full(p.shape, 1e-3, np.float32))
    opt = _cls(tl, name)(model.parameters(), **OPTIMIZERS[name])
    saved, _optimizer.PACK_MAX = _optimizer.PACK_MAX, (_optimizer.PACK_MAX if packed else -1)
    try:
        return _median_time(opt.step, repeats)
    finally:
        _optimizer.PACK_MAX = saved


def theirs(kind, name, repeats, foreach):
    import torch
    model = _layers(torch.nn, kind)
    for p in model.parameters():
        p.grad = torch.full_like(p, 1e-3)
    opt = _cls(torch, name)(model.parameters(), foreach=foreach, **OPTIMIZERS[name])
    return _median_time(opt.step, repeats)


def training_steps(repeats):
    """(ours compiled, ours eager, torch eager) seconds per Adam training step of the MLP at batch 32."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((32, 32)).astype(np.float32), rng.integers(0, 10, 32)
    out = []
    for compiled in (True, False):
        model = _layers(tl.nn, "mlp")
        opt = tl.optim.Adam(model.parameters(), lr=1e-3)
        xt, yt = tl.tensor(x), tl.tensor(y)

        def step(x, y):  # (the batch passed in: a tensor the step reads but does not take is not replayed)
            opt.zero_grad()
            loss = tl.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            return loss.item()
        fn = tl.compile(step) if compiled else step
        for _ in range(12):  # past the capture and the interpreted replays
            fn(xt, yt)
        if compiled:
            assert fn.stats["replays"] == 11, fn.stats
        out.append(_median_time(lambda: fn(xt, yt), repeats))
    try:
        import torch
    except ImportError:
        return out + [None]
    torch.set_num_threads(1)
    model = _layers(torch.nn, "mlp")
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    xt, yt = torch.tensor(x), torch.tensor(y)

    def tstep():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(xt), yt)
        loss.backward()
        opt.step()
        return loss.item()
    return out + [_median_time(tstep, repeats)]


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.optimizer_step", description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=15)
    args = p.parse_args(argv)
    try:
        import torch
        torch.set_num_threads(1)
    except ImportError:
        torch = None
    print("optimizer.step() on many small parameters, float32, one thread (medians, us)\n")
    print("| model | optimizer | packed (shipped) | one at a time | packed gain | PyTorch for-loop | PyTorch foreach |")
    print("|---|---|---|---|---|---|---|")
    for kind, label in (("mlp", "MLP 32-64x6-10 (14 params)"), ("blocks", "100 x (Linear 8 + LayerNorm 8) (400)")):
        for name in OPTIMIZERS:
            a, b = ours(kind, name, args.repeats, True), ours(kind, name, args.repeats, False)
            t = [theirs(kind, name, args.repeats, f) * 1e6 for f in (False, True)] if torch else ["-", "-"]
            print(f"| {label} | {name} | {a * 1e6:.0f} | {b * 1e6:.0f} | {b / a:.1f}x | "
                  + " | ".join(f"{v:.0f}" if not isinstance(v, str) else v for v in t) + " |")
    comp, eager, torch_eager = training_steps(args.repeats)
    print(f"\nAdam training step of the MLP at batch 32: tinygrad_lite compiled {comp * 1e6:.0f} us, eager "
          f"{eager * 1e6:.0f} us" + (f", PyTorch eager {torch_eager * 1e6:.0f} us" if torch_eager else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
