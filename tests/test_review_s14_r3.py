"""Review s14 r3: regression tests for defects found by using today's features as a PyTorch user would."""
import numpy as np
import pytest

import tinygrad_lite as tl


# --- counting ----------------------------------------------------------------------------------------------------

def test_bincount_compiled_follows_the_data_length(torch):
    # the bin count was a 0-d host result: its shape check always passed, so a replay kept the first length
    f = tl.compile(lambda a, w: (tl.bincount(a), tl.bincount(a, w)))
    for a in ([0, 1, 1, 2], [0, 1, 1, 3], [0, 0, 0, 0], [2, 1, 1, 0]):
        w = np.array([.5, 1.5, -2., 3.])
        got = f(tl.tensor(a), tl.tensor(w))
        want = (torch.bincount(torch.tensor(a)), torch.bincount(torch.tensor(a), torch.tensor(w)))
        for g, t in zip(got, want):
            np.testing.assert_allclose(g.numpy(), t.numpy())


def test_bincount_half_weights_count_in_double(torch):
    a, w = np.array([0, 2, 2]), np.array([.5, 1., 2.], dtype=np.float16)
    got, want = tl.bincount(tl.tensor(a), tl.tensor(w)), torch.bincount(torch.tensor(a), torch.tensor(w))
    assert got.numpy().dtype == np.float64 and str(want.dtype) == "torch.float64"
    np.testing.assert_allclose(got.numpy(), want.numpy())


def test_bincount_weights_gradient():
    a = np.array([0, 3, 3, 1, 0])
    w = tl.tensor(np.array([.3, -1., 2., .5, 1.5]), requires_grad=True)
    g = np.arange(1., 6.)
    (tl.bincount(tl.tensor(a), w, 5) * tl.tensor(g)).sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), g[a])


def test_histc_nan_data_range_raises_as_torch(torch):
    a = np.array([np.nan, 1., 2.], dtype=np.float32)
    with pytest.raises(RuntimeError):
        torch.histc(torch.tensor(a), 3)
    with pytest.raises(RuntimeError, match="histc.*not finite"):
        tl.histc(tl.tensor(a), 3)


def test_histc_compiled_replays_with_the_current_data(torch):
    # the data's range was unpacked into NumPy scalars outside the recorded calls: no replay ever ran
    f = tl.compile(lambda x: (tl.histc(x, 4), tl.histc(x, 3, -1, 1)))
    for k in range(4):
        x = np.array([.5, 1.5, -2., 3.]) * (k + 1) - k
        got = f(tl.tensor(x))
        want = (torch.histc(torch.tensor(x), 4), torch.histc(torch.tensor(x), 3, -1, 1))
        for g, t in zip(got, want):
            np.testing.assert_allclose(g.numpy(), t.numpy())
    assert f.stats["replays"] == 3


# --- diag --------------------------------------------------------------------------------------------------------

def test_diag_of_a_matrix_replays_in_compile(torch):
    # the 2-D case's positions were not declared constants: every call fell back to eager execution
    f = tl.compile(lambda x: tl.diag(x, 1) * 2)
    rng = np.random.default_rng(0)
    for _ in range(3):
        x = rng.normal(size=(3, 4))
        np.testing.assert_allclose(f(tl.tensor(x)).numpy(), torch.diag(torch.tensor(x), 1).numpy() * 2)
    assert f.stats["replays"] == 2


# --- autograd.Function -------------------------------------------------------------------------------------------

def _two_output_function(lib):
    class MulAdd(lib.autograd.Function):
        generate_vmap_rule = True

        @staticmethod
        def forward(x, y):
            return x * y * 2, x + y

        @staticmethod
        def setup_context(ctx, inputs, output):
            ctx.save_for_backward(*inputs)

        @staticmethod
        def backward(ctx, g, g2):
            x, y = ctx.saved_tensors
            return g * y * 2 + g2, g * x * 2 + g2
    return MulAdd


def test_vmap_of_grad_through_a_multi_output_function(torch):
    # the outputs' packing (a host computation) had no batching rule: vmap(grad(...)) raised
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    got, want = [], []
    for lib, out in ((tl, got), (torch, want)):
        fn = _two_output_function(lib)

        def loss(a, b, fn=fn):
            p, q = fn.apply(a, b)
            return (p * p).sum() + (q * q * q).sum()
        out.extend(lib.func.vmap(lib.func.grad(loss, argnums=(0, 1)))(lib.tensor(x), lib.tensor(y)))
    for g, t in zip(got, want):
        np.testing.assert_allclose(g.numpy(), t.numpy())
