"""Shared helpers of the tests of tl.compile (tests/test_compile_*.py): small models and inputs, batches, the
arrays a training run leaves (parameters, gradients, optimizer state) and their bit-for-bit comparison."""
import warnings

import numpy as np

import tinygrad_lite as tl
from tinygrad_lite import nn

CALLS = 10


def batches(n=CALLS, seed=0, width=5, dtype=np.float32):
    """n batches of 6 samples of `width` features and class labels in [0, 3)."""
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((6, width)).astype(dtype), rng.integers(0, 3, 6)) for _ in range(n)]


def mlp():
    return nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3))


def train_step(model, opt):
    """The usual step: zero_grad, cross-entropy of the model's output, backward, optimizer step; returns the loss."""
    def step(x, y):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss.item()
    return step


def arrays(params, opt=None, extra=()):
    """Copies of the parameters, their gradients ('none' for None), the optimizer's state and `extra`."""
    out = [p.detach().numpy().copy() for p in params]
    out += [np.array("none") if p.grad is None else p.grad.numpy().copy() for p in params]
    for st in (opt.state.values() if opt is not None else ()):
        out += [np.asarray(v.numpy() if isinstance(v, tl.Tensor) else v).copy() for v in st.values()]
    return out + [np.asarray(e) for e in extra]


def assert_same(want, got):
    """Bit for bit, dtypes included."""
    assert len(want) == len(got)
    for i, (a, b) in enumerate(zip(want, got)):
        assert a.dtype == b.dtype and np.array_equal(a, b), f"array {i} differs"


def compiled_as(model, compiled, in_place):
    """`model` as a PyTorch script compiles it: unchanged, `tl.compile(model)`, or `model.compile()` in place."""
    if not compiled:
        return model
    if in_place:
        model.compile()
        return model
    return tl.compile(model)


def seeded_model():
    """Linear(4, 8)-ReLU-Linear(8, 2), the same weights every time."""
    tl.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))


def features(n=3, seed=0, dtype=np.float32):
    """A batch of n samples of 4 standard-normal features."""
    return tl.tensor(np.random.default_rng(seed).standard_normal((n, 4)).astype(dtype))


def inference(model):
    """model's forward as a function to compile, returning a tensor without a graph."""
    def fn(x):
        return model(x).detach()  # a tensor with a live graph goes back to eager (backward outside is not captured)
    return fn


def ramp():
    """The input of the adversarial scan tests: 4 float32 values from -1 to 1."""
    return tl.tensor(np.linspace(-1.0, 1.0, 4).astype(np.float32))


def seeded_vector(i):
    """Call i's input of the twin tests: 4 float32 values drawn from seed i, scaled by 3."""
    return tl.tensor(np.random.default_rng(i).standard_normal(4).astype(np.float32) * 3)


def twins(make, *, calls=CALLS, args=lambda i: (seeded_vector(i),), kwargs=lambda i: {}):
    """(eager results, compiled results, the compiled function) of `calls` calls of two functions `make()` returns
    (two, so that they share no default argument or closure state)."""
    eager, compiled = make(), tl.compile(make())
    want, got = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tl.CompileWarning)  # (max_variants reached: eager from then on, correctly)
        for i in range(calls):
            want.append(eager(*args(i), **kwargs(i)))
            got.append(compiled(*args(i), **kwargs(i)))
    return want, got, compiled


def mismatches(fn, change=None, args=lambda i: (), calls=12, at=5):
    """Calls where tl.compile(fn)(x, *args(i)) differs from fn(x, *args(i)) (12 calls); `change()` runs before call
    `at` (after the 4th replay)."""
    f, x, bad = tl.compile(fn), ramp(), []
    with warnings.catch_warnings():  # (a guard that fails warns once the variants run out: expected here)
        warnings.simplefilter("ignore", tl.CompileWarning)
        for i in range(calls):
            if i == at and change is not None:
                change()
            got, want = f(x, *args(i)), fn(x, *args(i))
            got, want = (np.asarray(v.numpy() if isinstance(v, tl.Tensor) else v) for v in (got, want))
            if got.shape != want.shape or not np.array_equal(got, want):
                bad.append(i)
    return bad, f.stats


def wide_mlp():
    """Linear(6, 16)-ReLU-Linear(16, 4), freshly initialised."""
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 4))


def vector_batches(dtype):
    """A data function rng -> (8 samples of 6 standard-normal features of `dtype`, labels in [0, 4))."""
    return lambda rng: (tl.tensor(rng.standard_normal((8, 6)).astype(dtype)), tl.tensor(rng.integers(0, 4, 8)))
