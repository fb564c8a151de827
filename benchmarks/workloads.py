"""Workload definitions (issue 7) and the shared data every framework starts from.

All frameworks receive the same NumPy arrays, generated here from a fixed seed, so the work compared is the
same; the harness checks that the first-step loss and a gradient checksum agree across frameworks.
Weights use PyTorch's layouts (Linear: (out, in); Conv2d: (out, in, kh, kw); LSTM: weight_ih (4H, I) with
gate order i, f, g, o) and PyTorch's default init bounds (uniform +-1/sqrt(fan_in)).
"""
import numpy as np

SEED = 1234

# The elementwise chain of W1/W5: mul, add, tanh in turn. The constants keep both the values and the
# gradients in the normal float32 range over 1e6 ops (denormals cost ~0.5 us per (16,) op in NumPy and would
# distort the timings); the multipliers alternate so their product per two cycles is exactly 1.
CHAIN_MUL = (1.25, 0.8)
CHAIN_ADD = 0.0


def chain_constants(i):
    """(kind, constant) of op i of the chain: kind is 'mul', 'add' or 'tanh'."""
    k = i % 3
    if k == 0:
        return "mul", CHAIN_MUL[(i // 3) % 2]
    if k == 1:
        return "add", CHAIN_ADD
    return "tanh", None


class Workload:
    """One benchmark: id, title, parameters (full and --quick), metrics and in-process timing policy."""

    def __init__(self, wid, title, params, quick, metrics, min_time=0.3, min_reps=5, warmup=2):
        self.wid, self.title, self.params, self.quick = wid, title, params, quick
        self.metrics = metrics  # list of (name, unit, ratio_against) ; ratio_against in {"all", "numpy", None}
        self.min_time, self.min_reps, self.warmup = min_time, min_reps, warmup


WORKLOADS = {
    "W1": Workload("W1", "per-op overhead: (16,) x 500 elementwise ops, sum, backward",
                   dict(size=16, n_ops=500), dict(size=16, n_ops=500),
                   [("us_per_op", "us/op", "all")], min_time=0.3, min_reps=10, warmup=3),
    "W2": Workload("W2", "MLP step 784-256-256-10 ReLU, batch 128, CE, SGD",
                   dict(batch=128, width=256), dict(batch=128, width=256),
                   [("ms_per_step", "ms/step", "all")], min_time=0.4, min_reps=10, warmup=3),
    "W3": Workload("W3", "CNN step (32,1,28,28) conv-relu-pool x2, linear, CE, SGD",
                   dict(batch=32), dict(batch=32),
                   [("ms_per_step", "ms/step", "all")], min_time=0.4, min_reps=5, warmup=2),
    "W4": Workload("W4", "LSTM seq 32, batch 32, in 64, hidden 128, sum(h_T^2), fwd+bwd",
                   dict(seq=32, batch=32, input=64, hidden=128), dict(seq=32, batch=32, input=64, hidden=128),
                   [("ms_per_iter", "ms/iter", "all")], min_time=0.4, min_reps=5, warmup=2),
    "W5": Workload("W5", "deep chain: scalar through 100,000 ops, backward",
                   dict(size=0, n_ops=100_000), dict(size=0, n_ops=10_000),
                   [("us_per_op", "us/op", "all")], min_time=0.0, min_reps=1, warmup=0),
    "W6": Workload("W6", "memory: 300 W2 steps, peak RSS and RSS growth step 50..300",
                   dict(batch=128, width=256, steps=300, mark=50), dict(batch=128, width=256, steps=60, mark=20),
                   [("peak_rss_mb", "peak RSS MB", "numpy"), ("growth_mb", "RSS growth MB", None)], min_time=0.0, min_reps=1, warmup=0),
}

# Scaling sweeps (--scaling): W2 against batch size and width, W5 against chain length.
SCALING = (
    [("W2", dict(batch=b, width=256)) for b in (32, 64, 128, 256, 512, 1024)]
    + [("W2", dict(batch=128, width=w)) for w in (128, 256, 512, 1024, 2048)]
    + [("W5", dict(size=0, n_ops=n)) for n in (10_000, 100_000, 1_000_000)]
)
SCALING_QUICK = [("W2", dict(batch=32, width=128)), ("W2", dict(batch=256, width=512)),
                 ("W5", dict(size=0, n_ops=10_000)), ("W5", dict(size=0, n_ops=30_000))]


def _uniform(rng, shape, fan_in):
    bound = 1.0 / np.sqrt(fan_in)
    return rng.uniform(-bound, bound, size=shape).astype(np.float32)


def make_data(wid, params):
    """The arrays a workload starts from (inputs, labels, weights), identical for every framework."""
    rng = np.random.default_rng(SEED)
    p = params
    if wid in ("W1", "W5"):
        if p["size"] == 0:  # W5: a 0-d scalar
            return dict(x0=np.asarray(0.5, dtype=np.float32))
        return dict(x0=rng.standard_normal(p["size"]).astype(np.float32))
    if wid in ("W2", "W6"):
        sizes = [784, p["width"], p["width"], 10]
        d = dict(x=rng.standard_normal((p["batch"], 784)).astype(np.float32),
                 y=rng.integers(0, 10, size=p["batch"]).astype(np.int64), lr=0.01)
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:]), 1):
            d[f"w{i}"] = _uniform(rng, (n_out, n_in), n_in)
            d[f"b{i}"] = _uniform(rng, (n_out,), n_in)
        return d
    if wid == "W3":
        return dict(x=rng.standard_normal((p["batch"], 1, 28, 28)).astype(np.float32),
                    y=rng.integers(0, 10, size=p["batch"]).astype(np.int64), lr=0.01,
                    c1w=_uniform(rng, (8, 1, 3, 3), 9), c1b=_uniform(rng, (8,), 9),
                    c2w=_uniform(rng, (16, 8, 3, 3), 72), c2b=_uniform(rng, (16,), 72),
                    fw=_uniform(rng, (10, 784), 784), fb=_uniform(rng, (10,), 784))
    if wid == "W4":
        T, B, I, H = p["seq"], p["batch"], p["input"], p["hidden"]
        return dict(x=rng.standard_normal((T, B, I)).astype(np.float32),
                    w_ih=_uniform(rng, (4 * H, I), H), w_hh=_uniform(rng, (4 * H, H), H),
                    b_ih=_uniform(rng, (4 * H,), H), b_hh=_uniform(rng, (4 * H,), H))
    raise KeyError(f"unknown workload {wid!r}")
