"""Review of 20e1f41..32773a3 (fixed slots read by their planned buffer's name, gradient arrays recycled by the generated
code when nothing holds them, host masks planned like a primitive's, nn.LSTM's sigmoid over the i,f and o blocks
only): every test runs a compiled function and the same function eagerly, side by side (_review_s12_common.py).
The review found no defect: these are regression tests for the scenarios it checked.
Here: double backward, transforms (hessian, jacrev, jacfwd) and vmap through ReLU's and abs's masks, which are host
ufuncs planned like a primitive's."""
import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite.func import functional_call, grad as fgrad, hessian, jacfwd, jacrev, vmap

from _review_s12_common import CALLS, _mlp, _replayed, _side_by_side

nn, F = tl.nn, tl.nn.functional


# ===================== double backward, transforms and vmap through the ReLU/abs masks =====================

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_double_backward_through_relu_and_abs(dtype):
    def make(model, opt):
        def step(x, y):
            opt.zero_grad()
            x = x.detach().requires_grad_()
            out = model(x)
            loss = F.cross_entropy(out, y) + out.abs().mean()
            gx, = tl.autograd.grad(loss, x, create_graph=True)
            gs = tl.autograd.grad(loss, list(model.parameters()), create_graph=True)
            total = loss + (gx * gx).sum() + sum((g * g).sum() for g in gs)
            total.backward()
            opt.step()
            return total.item(), gx.detach()
        return step
    diffs, _, stats = _side_by_side(make, dtype=dtype)
    assert diffs == [] and _replayed(stats), (diffs, stats)


def test_a_returned_create_graph_gradient_with_backward_outside():
    def fn(x):
        h = x * 2.0 - 0.3
        gx, = tl.autograd.grad((h.relu() * h.relu() + h.abs()).sum(), x, create_graph=True)
        return gx
    compiled = tl.compile(fn)
    rng = np.random.default_rng(1)
    for i in range(CALLS):
        data = rng.standard_normal((5, 6))
        outs = []
        for f in (compiled, fn):
            x = tl.tensor(data, requires_grad=True)
            o = f(x)
            (o * o).sum().backward()
            outs.append((o.detach().numpy().copy(), x.grad.numpy().copy()))
        assert all(np.array_equal(a, b) for a, b in zip(*outs)), i
    assert _replayed(compiled.stats)


def test_hessian_jacrev_jacfwd_through_relu_and_abs_compiled():
    def fn(x, y):
        def g(v):
            return (v.relu() * v.abs() + v.relu() * 2).sum()
        return (hessian(g)(x[0]).detach(), jacrev(lambda v: v.relu().abs())(x[1]).detach(),
                jacfwd(lambda v: v.relu() * v.abs())(x[2]).detach())
    diffs, _, stats = _side_by_side(lambda m, o: fn, dtype=np.float64)
    assert diffs == [] and _replayed(stats), (diffs, stats)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_per_sample_gradients_through_relu_and_abs_match_a_loop(dtype):
    model = _mlp(dtype)
    params = {k: v.detach() for k, v in model.named_parameters()}

    def loss(p, x, y):
        out = functional_call(model, p, (x[None],))
        return F.cross_entropy(out, y[None]) + out.abs().sum() * 0.1 + F.relu(x).sum()
    rng = np.random.default_rng(0)
    x, y = tl.tensor(rng.standard_normal((7, 6)).astype(dtype)), tl.tensor(rng.integers(0, 4, 7))
    batched = vmap(fgrad(loss), in_dims=(None, 0, 0))(params, x, y)
    for i in range(7):
        one = fgrad(loss)(params, x[i], y[i])
        for k in batched:
            assert np.array_equal(batched[k].numpy()[i], one[k].numpy()), (k, i)


def test_relu_mask_is_still_a_bool_greater_than_zero():
    """kink_mask('positive') is np.greater(x, 0) now: the gradient at 0 and at -0.0 is 0, NaN passes no gradient."""
    x = tl.tensor(np.array([-1.0, -0.0, 0.0, 1e-30, 2.0, np.nan], np.float32), requires_grad=True)
    x.relu().sum().backward()
    assert np.array_equal(x.grad.numpy(), np.array([0, 0, 0, 1, 1, 0], np.float32))
    assert x.grad.dtype == np.float32
