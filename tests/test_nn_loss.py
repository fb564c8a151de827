"""Losses: gradcheck (float64), closed forms, stability at extreme logits, and input errors."""
import math

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite import nn
from tinygrad_lite.nn import functional as F


def _x(*shape, seed=0, scale=1.0):
    return tl.tensor(np.random.default_rng(seed).standard_normal(shape) * scale, requires_grad=True)


REDUCTIONS = ["mean", "sum", "none"]


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradcheck_losses(reduction):
    x, y = _x(3, 4), _x(3, 4, seed=1)
    t = tl.tensor(np.array([0, 3, 1]))
    w = tl.tensor(np.array([0.5, 1.0, 2.0, 1.5]))
    p = tl.tensor(np.random.default_rng(2).uniform(0.05, 0.95, (3, 4)), requires_grad=True)
    cases = [
        (lambda a, b: F.mse_loss(a, b, reduction=reduction), (x, y)),
        (lambda a, b: F.l1_loss(a, b, reduction=reduction), (x, y)),
        (lambda a: F.cross_entropy(a, t, weight=w, reduction=reduction, label_smoothing=0.2, ignore_index=1), (x,)),
        (lambda a, b: F.cross_entropy(a, b.softmax(1), reduction=reduction), (x, y)),
        (lambda a: F.nll_loss(a.log_softmax(1), t, weight=w, reduction=reduction), (x,)),
        (lambda a, b: F.binary_cross_entropy(a, b.sigmoid(), weight=w, reduction=reduction), (p, y)),
        (lambda a, b: F.binary_cross_entropy_with_logits(a, b.sigmoid(), pos_weight=w, reduction=reduction),
         (x, y)),
    ]
    for fn, args in cases:
        assert tl.gradcheck(fn, args)


def test_gradcheck_loss_modules_and_spatial_cross_entropy():
    x = _x(2, 3, 2, 2)
    t = tl.tensor(np.array([[[0, 2], [1, -100]], [[2, 2], [0, 1]]]))
    assert tl.gradcheck(nn.CrossEntropyLoss(label_smoothing=0.1), (x, t))
    assert tl.gradcheck(nn.BCEWithLogitsLoss(), (_x(4), tl.tensor(np.array([0.0, 1.0, 0.3, 1.0]))))


def test_closed_forms():
    x = tl.tensor([[0.0, math.log(3.0)]])
    np.testing.assert_allclose(F.cross_entropy(x, tl.tensor([1])).item(), -math.log(0.75), rtol=1e-6)
    np.testing.assert_allclose(F.mse_loss(tl.tensor([1.0, 3.0]), tl.tensor([0.0, 0.0])).item(), 5.0)
    np.testing.assert_allclose(F.l1_loss(tl.tensor([1.0, -3.0]), tl.tensor([0.0, 0.0]), reduction="sum").item(), 4.0)
    np.testing.assert_allclose(F.binary_cross_entropy(tl.tensor([0.25]), tl.tensor([1.0])).item(), math.log(4),
                               rtol=1e-6)
    logits = tl.tensor([0.3, -1.2])
    y = tl.tensor([1.0, 0.0])
    np.testing.assert_allclose(F.binary_cross_entropy_with_logits(logits, y).item(),
                               F.binary_cross_entropy(logits.sigmoid(), y).item(), rtol=1e-6)
    # ignore_index and weights: mean over the weights of the kept targets
    logp = tl.tensor(np.log(np.array([[0.5, 0.5], [0.25, 0.75], [0.9, 0.1]])))
    loss = F.nll_loss(logp, tl.tensor([0, 1, 1]), weight=tl.tensor([1.0, 3.0]), ignore_index=0)
    np.testing.assert_allclose(loss.item(), -(3 * math.log(0.75) + 3 * math.log(0.1)) / 6, rtol=1e-6)
    none = F.cross_entropy(tl.ones(3, 4), tl.tensor([0, -100, 2]), reduction="none")
    assert none.shape == (3,) and none.numpy()[1] == 0.0
    # label smoothing with uniform logits is the plain cross-entropy log(C)
    np.testing.assert_allclose(F.cross_entropy(tl.zeros(2, 5), tl.tensor([1, 3]), label_smoothing=0.3).item(),
                               math.log(5), rtol=1e-6)


def test_stability_at_extreme_logits():
    x = tl.tensor([[1000.0, -1000.0, 0.0]], requires_grad=True)
    loss = F.cross_entropy(x, tl.tensor([1]))
    assert np.isfinite(loss.item()) and abs(loss.item() - 2000.0) < 1e-3
    loss.backward()
    assert np.all(np.isfinite(x.grad.numpy()))
    z = tl.tensor([-800.0, 800.0, 0.0], dtype=tl.float64, requires_grad=True)
    y = tl.tensor([1.0, 0.0, 1.0], dtype=tl.float64)
    bce = F.binary_cross_entropy_with_logits(z, y, reduction="none")
    np.testing.assert_allclose(bce.numpy(), [800.0, 800.0, math.log(2)], rtol=1e-12)
    bce.sum().backward()
    np.testing.assert_allclose(z.grad.numpy(), [-1.0, 1.0, -0.5], rtol=1e-12)  # sigmoid(x) - y, 0.5 - 1 at 0
    probs = tl.tensor([0.0, 1.0], requires_grad=True)
    clamped = F.binary_cross_entropy(probs, tl.tensor([1.0, 0.0]), reduction="none")
    np.testing.assert_allclose(clamped.numpy(), [100.0, 100.0])
    clamped.sum().backward()
    assert np.all(np.isfinite(probs.grad.numpy()))


def test_loss_errors():
    with pytest.raises(IndexError, match="target 5 is out of bounds for 3 classes"):
        F.cross_entropy(tl.ones(2, 3), tl.tensor([0, 5]))
    with pytest.raises(IndexError, match="out of bounds"):
        nn.NLLLoss()(tl.ones(2, 3), tl.tensor([-1, 0]))
    with pytest.raises(RuntimeError, match=r"expected target of shape \(2,\)"):
        F.cross_entropy(tl.ones(2, 3), tl.tensor([0, 1, 2]))
    with pytest.raises(RuntimeError, match="probability targets must have the input's shape"):
        F.cross_entropy(tl.ones(2, 3), tl.ones(2, 4))
    with pytest.raises(ValueError, match="not a valid value for reduction"):
        nn.MSELoss(reduction="avg")
    with pytest.raises(RuntimeError, match="between 0 and 1"):
        F.binary_cross_entropy(tl.tensor([1.5]), tl.tensor([1.0]))
    with pytest.raises(RuntimeError, match="must be the same as input size"):
        F.binary_cross_entropy_with_logits(tl.ones(3), tl.ones(2))
    with pytest.raises(RuntimeError, match=r"weight must have shape \(3,\)"):
        F.cross_entropy(tl.ones(2, 3), tl.tensor([0, 1]), weight=tl.ones(4))
    with pytest.warns(UserWarning, match="different to the input size"):
        F.mse_loss(tl.ones(3, 1), tl.ones(3))
    with pytest.raises(RuntimeError, match="smaller than num_classes"):
        F.one_hot(tl.tensor([0, 4]), 3)


def test_legacy_size_average_and_reduce_flags():
    x, y = tl.tensor([1.0, 3.0]), tl.zeros(2)
    assert nn.MSELoss(size_average=False).reduction == "sum"
    assert nn.MSELoss(reduce=False).reduction == "none"
    assert F.mse_loss(x, y, size_average=False).item() == 10.0


def test_bce_with_logits_second_derivative_is_smooth_at_zero():
    """Newton's method from zero-initialised logits needs the Hessian 1/4 at x = 0 (an |x| form gives 0)."""
    import numpy as np
    import tinygrad_lite as tl
    z = tl.zeros(3, dtype=tl.float64, requires_grad=True)
    y = tl.tensor(np.array([0.0, 1.0, 0.0]))
    (g,) = tl.grad(tl.nn.functional.binary_cross_entropy_with_logits(z, y, reduction="sum"), z, create_graph=True)
    np.testing.assert_allclose(g.numpy(), [0.5, -0.5, 0.5])
    hess = [tl.grad(g[i], z, retain_graph=True)[0].numpy()[i] for i in range(3)]
    np.testing.assert_allclose(hess, [0.25] * 3)
    assert tl.gradgradcheck(lambda x: tl.nn.functional.binary_cross_entropy_with_logits(x, y),
                            (tl.tensor(np.array([-2.0, 0.0, 3.0]), requires_grad=True),))
