"""Optimizer behaviour shared by all optimizers: in-place float32 updates, parameters without gradient, zero_grad,
closures, version bumps, parameter groups, names, constructor errors, allocation in steady state, gradient
checks at assignment, repr, and a training loop that fits a linear regression.
"""
import tracemalloc

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite.optim import SGD, Adam, AdamW, RMSprop, Adagrad
from tinygrad_lite.optim.lr_scheduler import StepLR

from _optim_common import param, set_grad


@pytest.mark.parametrize("cls", [SGD, Adam, AdamW, RMSprop, Adagrad])
def test_update_is_in_place_and_float32_stays_float32(cls):
    p = param(np.ones((3, 2)), np.float32)
    arr = p.numpy()
    opt = cls([p], lr=0.01)
    set_grad(p, np.full((3, 2), 0.5))
    opt.step()
    assert p.numpy() is arr and p.numpy().dtype == np.float32
    assert not np.allclose(p.numpy(), 1.0)


def test_parameters_without_gradient_are_skipped_and_get_no_state():
    a, b = param([1.0]), param([2.0])
    opt = Adam([a, b], lr=0.1)
    set_grad(a, [1.0])
    opt.step()
    assert b.numpy()[0] == 2.0 and b not in opt.state and len(opt.state[a]) == 3
    assert list(opt.state_dict()["state"]) == [0]


def test_zero_grad_to_none_and_to_zero():
    p = param([1.0, 2.0])
    opt = SGD([p], lr=0.1)
    set_grad(p, [3.0, 4.0])
    g = p.grad
    opt.zero_grad(set_to_none=False)
    assert p.grad is g and np.all(g.numpy() == 0)
    opt.zero_grad()
    assert p.grad is None


def test_step_with_closure_returns_loss_and_records_grad():
    p = param([3.0])
    opt = SGD([p], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss

    with tl.no_grad():
        loss = opt.step(closure)
    assert float(loss.item()) == 9.0
    np.testing.assert_allclose(p.numpy(), [3.0 - 0.1 * 6.0])


def test_step_bumps_version_so_stale_graph_refuses_backward():
    p = param([1.0, 2.0])
    loss = (p * p).sum()
    opt = SGD([p], lr=0.1)
    set_grad(p, [1.0, 1.0])
    opt.step()
    with pytest.raises(RuntimeError):
        loss.backward()


def test_param_groups_defaults_and_add_param_group():
    a, b, c = param([1.0]), param([1.0]), param([1.0])
    opt = SGD([{"params": [a]}, {"params": b, "lr": 0.5}], lr=0.1, momentum=0.9)
    assert opt.defaults["lr"] == 0.1 and opt.defaults["momentum"] == 0.9
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.5]
    assert opt.param_groups[1]["params"] == [b] and opt.param_groups[1]["momentum"] == 0.9
    opt.add_param_group({"params": [c], "lr": 0.25})
    for p in (a, b, c):
        set_grad(p, [1.0])
    opt.step()
    np.testing.assert_allclose([a.numpy()[0], b.numpy()[0], c.numpy()[0]], [0.9, 0.5, 0.75])


def test_named_parameters_are_accepted_and_names_kept():
    a, b = param([1.0]), param([2.0])
    opt = SGD([("w", a), ("b", b)], lr=0.1)
    assert opt.param_groups[0]["params"] == [a, b]
    assert opt.state_dict()["param_groups"][0]["param_names"] == ["w", "b"]


def test_constructor_errors_are_pytorchs():
    p = param([1.0])
    with pytest.raises(TypeError, match="iterable of Tensors"):
        SGD(p, lr=0.1)
    with pytest.raises(TypeError, match="ordered collections"):
        SGD({p}, lr=0.1)
    with pytest.raises(ValueError, match="empty parameter list"):
        SGD([], lr=0.1)
    with pytest.raises(ValueError, match="Invalid learning rate"):
        Adam([p], lr=-1.0)
    with pytest.raises(ValueError, match="Invalid momentum"):
        SGD([p], lr=0.1, momentum=-0.5)
    with pytest.raises(ValueError, match="Nesterov"):
        SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="beta parameter at index 1"):
        Adam([p], betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="weight_decay"):
        AdamW([p], weight_decay=-1e-2)
    with pytest.raises(ValueError, match="same parameter twice"):
        SGD([p, p], lr=0.1)
    with pytest.raises(ValueError, match="more than one parameter group"):
        SGD([{"params": [p]}, {"params": [p]}], lr=0.1)
    with pytest.raises(TypeError, match="optimize Tensors"):
        SGD([np.ones(3)], lr=0.1)
    with pytest.raises(ValueError, match="non-leaf"):
        SGD([p * 2], lr=0.1)
    with pytest.raises(ValueError, match="Invalid learning rate"):
        SGD([p], lr=0.1).add_param_group({"params": [param([0.0])], "lr": -0.1})


def test_steady_state_steps_allocate_almost_nothing():
    p = param(np.ones(100_000), np.float32)
    opt = Adam([p], lr=1e-3, weight_decay=0.1, amsgrad=True)
    set_grad(p, np.full(100_000, 0.5))
    opt.step()  # creates state and scratch arrays
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        for _ in range(5):
            opt.step()
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert peak < p.numpy().nbytes // 4, f"steps allocated {peak} bytes for a {p.numpy().nbytes}-byte parameter"


def test_gradient_dtype_and_shape_are_checked_when_assigned():
    """As PyTorch: `.grad` of another dtype or shape is refused at assignment, so a step never sees one."""
    p = param(np.ones(3), np.float32)
    with pytest.raises(RuntimeError, match=r"different type: grad dtype float64, tensor dtype float32"):
        p.grad = tl.tensor(np.ones(3))
    with pytest.raises(RuntimeError, match=r"different size: grad shape \(4,\), tensor shape \(3,\)"):
        p.grad = tl.tensor(np.ones(4, np.float32))
    with pytest.raises(TypeError, match=r"expected to be a Tensor or None but got grad of type float"):
        p.grad = 0.0
    assert p.grad is None
    p.grad = tl.tensor(np.ones(3, np.float32))
    opt = SGD([p], lr=0.1, momentum=0.9)
    opt.step()
    assert p.numpy().dtype == opt.state[p]["momentum_buffer"].dtype == np.float32
    np.testing.assert_allclose(p.numpy(), 0.9)


def test_repr_lists_groups_like_pytorch():
    text = repr(SGD([{"params": [param([1.0])]}, {"params": [param([1.0])], "lr": 0.5}], lr=0.1))
    assert text.startswith("SGD (\nParameter Group 0\n    dampening: 0\n")
    assert "    weight_decay: 0\n\nParameter Group 1\n" in text and text.endswith("    weight_decay: 0\n)")


@pytest.mark.parametrize("cls,kw", [(SGD, dict(lr=0.1, momentum=0.9)), (Adam, dict(lr=0.05)),
                                    (RMSprop, dict(lr=0.03)), (Adagrad, dict(lr=0.5))])
def test_training_loop_fits_a_linear_regression(cls, kw):
    tl.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, 3)).astype(np.float32)
    true_w = np.array([[1.5], [-2.0], [0.5]], np.float32)
    y = x @ true_w + 0.3
    w = tl.tensor(np.zeros((3, 1), np.float32), requires_grad=True)
    b = tl.tensor(np.zeros(1, np.float32), requires_grad=True)
    opt = cls([w, b], **kw)
    sched = StepLR(opt, step_size=10, gamma=0.5)
    loader = tl.data.DataLoader(tl.data.TensorDataset(tl.tensor(x), tl.tensor(y)), batch_size=32, shuffle=True)
    for _ in range(30):
        for xb, yb in loader:
            opt.zero_grad()
            loss = ((xb @ w + b - yb) ** 2).mean()
            loss.backward()
            opt.step()
        sched.step()
    np.testing.assert_allclose(w.numpy(), true_w, atol=0.05)
    np.testing.assert_allclose(b.numpy(), [0.3], atol=0.05)

