"""Optimizers and LR schedulers: closed forms (core) and step-by-step agreement with PyTorch (oracle)."""
import math
import tracemalloc

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite.optim import SGD, Adam, AdamW, RMSprop, Adagrad
from tinygrad_lite.optim.lr_scheduler import StepLR, ExponentialLR, CosineAnnealingLR


def param(values, dtype=np.float64):
    return tl.tensor(np.array(values, dtype=dtype), requires_grad=True)


def set_grad(p, g):
    p.grad = tl.tensor(np.array(g, dtype=p.numpy().dtype))


def run(opt_cls, p0, grads, **kw):
    p = param(p0)
    opt = opt_cls([p], **kw)
    for g in grads:
        set_grad(p, g)
        opt.step()
    return p.numpy(), opt


# -- closed forms ---------------------------------------------------------------------------------------------
def test_sgd_plain_step_is_p_minus_lr_g():
    p, _ = run(SGD, [1.0, -2.0], [[0.5, 4.0]], lr=0.1)
    np.testing.assert_allclose(p, [1.0 - 0.05, -2.0 - 0.4])


def test_sgd_momentum_dampening_weight_decay_two_steps_by_hand():
    p0, g1, g2 = np.array([1.0, 2.0]), np.array([0.3, -0.1]), np.array([-0.2, 0.5])
    lr, mom, damp, wd = 0.1, 0.9, 0.3, 0.01
    p, _ = run(SGD, p0, [g1, g2], lr=lr, momentum=mom, dampening=damp, weight_decay=wd)
    d1 = g1 + wd * p0
    buf = d1.copy()  # the first step stores the gradient itself (no dampening)
    p1 = p0 - lr * buf
    d2 = g2 + wd * p1
    buf = mom * buf + (1 - damp) * d2
    np.testing.assert_allclose(p, p1 - lr * buf, rtol=1e-12)


def test_sgd_nesterov_by_hand():
    p0, g1, g2 = np.array([1.0]), np.array([0.4]), np.array([0.1])
    p, _ = run(SGD, p0, [g1, g2], lr=0.5, momentum=0.9, nesterov=True)
    buf = g1
    p1 = p0 - 0.5 * (g1 + 0.9 * buf)
    buf = 0.9 * buf + g2
    np.testing.assert_allclose(p, p1 - 0.5 * (g2 + 0.9 * buf), rtol=1e-12)


def test_sgd_maximize_ascends():
    p, _ = run(SGD, [0.0], [[2.0]], lr=0.1, maximize=True)
    np.testing.assert_allclose(p, [0.2])


def test_adam_first_step_is_lr_times_sign_of_gradient():
    g = np.array([3.0, -0.02, 1e-3, -50.0])
    p, opt = run(Adam, np.zeros(4), [g], lr=0.01)
    np.testing.assert_allclose(p, -0.01 * g / (np.abs(g) + 1e-8), rtol=1e-10)
    np.testing.assert_allclose(p, -0.01 * np.sign(g), rtol=1e-4)
    state = opt.state_dict()["state"][0]
    assert float(state["step"].item()) == 1.0
    np.testing.assert_allclose(state["exp_avg"].numpy(), 0.1 * g)
    np.testing.assert_allclose(state["exp_avg_sq"].numpy(), 0.001 * g * g)


def test_adam_two_steps_with_bias_correction_and_amsgrad_by_hand():
    b1, b2, lr, eps = 0.9, 0.999, 0.1, 1e-8
    g1, g2 = np.array([1.0, -2.0]), np.array([0.1, -3.0])
    p, _ = run(Adam, [0.5, 0.5], [g1, g2], lr=lr, amsgrad=True)
    m = v = vmax = np.zeros(2)
    x = np.array([0.5, 0.5])
    for t, g in enumerate((g1, g2), start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        vmax = np.maximum(vmax, v)
        x = x - lr / (1 - b1 ** t) * m / (np.sqrt(vmax) / math.sqrt(1 - b2 ** t) + eps)
    np.testing.assert_allclose(p, x, rtol=1e-12)


def test_adamw_decays_weights_decoupled_from_the_gradient():
    p, _ = run(AdamW, [2.0, -4.0], [[0.0, 0.0]], lr=0.1, weight_decay=0.5)
    np.testing.assert_allclose(p, np.array([2.0, -4.0]) * (1 - 0.1 * 0.5), rtol=1e-12)
    q, _ = run(Adam, [2.0, -4.0], [[0.0, 0.0]], lr=0.1, weight_decay=0.5)  # coupled: enters the moments
    np.testing.assert_allclose(q, np.array([2.0, -4.0]) - 0.1 * np.sign([2.0, -4.0]), rtol=1e-6)


def test_rmsprop_first_step_and_centered():
    g = np.array([0.5, -2.0])
    p, _ = run(RMSprop, [0.0, 0.0], [g], lr=0.01, alpha=0.9)
    np.testing.assert_allclose(p, -0.01 * g / (np.sqrt(0.1 * g * g) + 1e-8), rtol=1e-12)
    p, _ = run(RMSprop, [0.0, 0.0], [g], lr=0.01, alpha=0.9, centered=True)
    v, gavg = 0.1 * g * g, 0.1 * g
    np.testing.assert_allclose(p, -0.01 * g / (np.sqrt(v - gavg ** 2) + 1e-8), rtol=1e-12)


def test_adagrad_accumulates_and_decays_lr():
    g1, g2 = np.array([1.0, -2.0]), np.array([3.0, 0.5])
    p, _ = run(Adagrad, [0.0, 0.0], [g1, g2], lr=0.1, lr_decay=0.5, initial_accumulator_value=0.2)
    s1 = 0.2 + g1 * g1
    x = -0.1 * g1 / (np.sqrt(s1) + 1e-10)
    s2 = s1 + g2 * g2
    x = x - 0.1 / (1 + 0.5) * g2 / (np.sqrt(s2) + 1e-10)
    np.testing.assert_allclose(p, x, rtol=1e-12)


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


# -- state dicts (core) ------------------------------------------------------------------------------------------
CONFIGS = [
    (SGD, dict(lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01)),
    (SGD, dict(lr=0.1, momentum=0.9, nesterov=True)),
    (Adam, dict(lr=0.01, amsgrad=True, weight_decay=0.1)),
    (AdamW, dict(lr=0.01, betas=(0.8, 0.99))),
    (RMSprop, dict(lr=0.01, momentum=0.5, centered=True)),
    (Adagrad, dict(lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1)),
]


def _grads(n, shape, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape) for _ in range(n)]


@pytest.mark.parametrize("cls,kw", CONFIGS)
def test_state_dict_save_load_continue_equals_uninterrupted(tmp_path, cls, kw):
    grads = _grads(6, (2, 3))
    init = np.random.default_rng(1).standard_normal((2, 3))
    full, _ = run(cls, init, grads, **kw)

    p = param(init)
    opt = cls([p], **kw)
    for g in grads[:3]:
        set_grad(p, g)
        opt.step()
    tl.save({"p": p, "optim": opt.state_dict()}, tmp_path / "ckpt.safetensors")
    saved = tl.load(tmp_path / "ckpt.safetensors")
    p2 = param(saved["p"].numpy().copy())
    opt2 = cls([p2], lr=123.0)  # hyperparameters come back from the state dict
    opt2.load_state_dict(saved["optim"])
    assert opt2.param_groups[0]["lr"] == kw["lr"]
    for g in grads[3:]:
        set_grad(p2, g)
        opt2.step()
    np.testing.assert_array_equal(p2.numpy(), full)


def test_state_dict_layout_and_independent_loaded_copies():
    a, b = param([1.0, 2.0]), param([[3.0]])
    opt = Adam([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1)
    set_grad(a, [1.0, 1.0])
    set_grad(b, [[1.0]])
    opt.step()
    sd = opt.state_dict()
    assert set(sd) == {"state", "param_groups"}
    assert [g["params"] for g in sd["param_groups"]] == [[0], [1]]
    assert set(sd["state"][1]) == {"step", "exp_avg", "exp_avg_sq"}
    assert isinstance(sd["state"][0]["exp_avg"], tl.Tensor)
    a2, b2 = param([1.0, 2.0]), param([[3.0]])
    opt2 = Adam([{"params": [a2]}, {"params": [b2]}])
    opt2.load_state_dict(sd)
    assert opt2.param_groups[1]["lr"] == 0.5 and opt2.param_groups[1]["params"] == [b2]
    assert opt2.state[a2]["exp_avg"].numpy() is not opt.state[a]["exp_avg"].numpy()


def test_load_state_dict_mismatch_raises_and_changes_nothing():
    a, b = param([1.0, 2.0]), param([3.0])
    opt = SGD([a, b], lr=0.1, momentum=0.9)
    for p in (a, b):
        set_grad(p, np.ones(p.shape))
    opt.step()
    sd = opt.state_dict()
    c = param([0.0, 0.0, 0.0])
    other = SGD([c], lr=0.7, momentum=0.9)
    with pytest.raises(ValueError, match="doesn't match the size"):
        other.load_state_dict(sd)
    d, e = param([0.0, 0.0]), param([0.0, 0.0])  # second parameter has the wrong shape
    target = SGD([d, e], lr=0.7, momentum=0.9)
    with pytest.raises(ValueError, match="shape"):
        target.load_state_dict(sd)
    assert target.param_groups[0]["lr"] == 0.7 and len(target.state) == 0
    with pytest.raises(ValueError, match="number of parameter groups"):
        SGD([{"params": [d]}, {"params": [e]}], lr=0.1).load_state_dict(sd)


# -- schedulers (core) -------------------------------------------------------------------------------------------
def _lrs(sched_cls, epochs, lr=0.1, **kw):
    opt = SGD([param([1.0])], lr=lr)
    sched = sched_cls(opt, **kw)
    out = [sched.get_last_lr()[0]]
    for _ in range(epochs):
        opt.step()
        sched.step()
        out.append(sched.get_last_lr()[0])
        assert opt.param_groups[0]["lr"] == out[-1]
    return out


def test_steplr_and_exponentiallr_closed_forms():
    np.testing.assert_allclose(_lrs(StepLR, 9, step_size=3, gamma=0.5), [0.1 * 0.5 ** (e // 3) for e in range(10)])
    np.testing.assert_allclose(_lrs(ExponentialLR, 6, gamma=0.9), [0.1 * 0.9 ** e for e in range(7)])


def test_cosine_annealing_follows_the_closed_form_within_a_period():
    lrs = _lrs(CosineAnnealingLR, 10, T_max=10, eta_min=0.001)
    closed = [0.001 + (0.1 - 0.001) * (1 + math.cos(math.pi * e / 10)) / 2 for e in range(11)]
    np.testing.assert_allclose(lrs, closed, rtol=1e-12, atol=1e-15)


def test_scheduler_state_dict_round_trip_and_last_epoch():
    opt = SGD([param([1.0])], lr=0.1)
    sched = CosineAnnealingLR(opt, T_max=7)
    for _ in range(3):
        sched.step()
    sd = sched.state_dict()
    assert sd["last_epoch"] == 3 and "optimizer" not in sd
    opt2 = SGD([param([1.0])], lr=0.1)
    sched2 = CosineAnnealingLR(opt2, T_max=7)
    sched2.load_state_dict(sd)
    opt2.param_groups[0]["lr"] = opt.param_groups[0]["lr"]
    sched.step()
    sched2.step()
    assert sched2.get_last_lr() == sched.get_last_lr() and sched2.last_epoch == 4


def test_scheduler_errors():
    with pytest.raises(TypeError, match="not an Optimizer"):
        StepLR(object(), step_size=2)
    with pytest.raises(ValueError, match="step_size"):
        StepLR(SGD([param([1.0])], lr=0.1), step_size=0)
    with pytest.raises(ValueError, match="T_max"):
        CosineAnnealingLR(SGD([param([1.0])], lr=0.1), T_max=-1)
    with pytest.raises(KeyError, match="initial_lr"):
        StepLR(SGD([param([1.0])], lr=0.1), step_size=2, last_epoch=3)


# -- PyTorch oracle ------------------------------------------------------------------------------------------------
ORACLE_CONFIGS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.5, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.1, maximize=True)),
    ("Adam", dict()),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, betas=(0.3, 0.4), amsgrad=True, maximize=True)),
    ("AdamW", dict()),
    ("AdamW", dict(lr=0.01, weight_decay=0.3, amsgrad=True)),
    ("RMSprop", dict()),
    ("RMSprop", dict(lr=0.01, alpha=0.9, momentum=0.9)),
    ("RMSprop", dict(centered=True, weight_decay=0.1, alpha=0.3)),
    ("RMSprop", dict(lr=0.001, momentum=0.5, centered=True, maximize=True)),
    ("Adagrad", dict()),
    ("Adagrad", dict(lr=0.1, lr_decay=0.05, weight_decay=0.1, initial_accumulator_value=0.5, eps=1e-6)),
]
SHAPES = [(3, 4), (5,), ()]


def _oracle_pair(torch, name, kw, dtype, init):
    ours = [param(a, dtype) for a in init]
    theirs = [torch.tensor(a.astype(dtype), requires_grad=True) for a in init]
    kw2 = dict(kw, lr=kw.get("lr", 0.01) * 3)  # a second group with its own lr
    opt = getattr(tl.optim, name)([{"params": ours[:2]}, {"params": ours[2:], **kw2}], **kw)
    topt = getattr(torch.optim, name)([{"params": theirs[:2]}, {"params": theirs[2:], **kw2}], **kw)
    return ours, theirs, opt, topt


def _oracle_steps(torch, ours, theirs, opt, topt, n, rng, tol):
    for step in range(n):
        for i, (p, q) in enumerate(zip(ours, theirs)):
            if step % 3 == 2 and i == 1:  # a parameter without gradient is skipped by both
                p.grad, q.grad = None, None
                continue
            g = rng.standard_normal(p.shape).astype(p.numpy().dtype)
            set_grad(p, g)
            q.grad = torch.tensor(g)
        opt.step()
        topt.step()
        for p, q in zip(ours, theirs):
            np.testing.assert_allclose(p.numpy(), q.detach().numpy(), **tol)


def _torch_state_to_numpy(torch, sd):
    conv = {k: {n: (v.numpy() if isinstance(v, torch.Tensor) else v) for n, v in s.items()}
            for k, s in sd["state"].items()}
    return {"state": conv, "param_groups": sd["param_groups"]}


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,kw", ORACLE_CONFIGS)
def test_steps_and_state_match_pytorch(torch, name, kw, dtype):
    rng = np.random.default_rng(42)
    init = [rng.standard_normal(s) for s in SHAPES]
    ours, theirs, opt, topt = _oracle_pair(torch, name, kw, dtype, init)
    tol = dict(rtol=2e-5, atol=2e-6) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-13)
    _oracle_steps(torch, ours, theirs, opt, topt, 8, rng, tol)
    sd, tsd = opt.state_dict(), topt.state_dict()
    assert sd["state"].keys() == tsd["state"].keys()
    for k, s in sd["state"].items():
        assert s.keys() == tsd["state"][k].keys()
        for n, v in s.items():
            np.testing.assert_allclose(v.numpy(), tsd["state"][k][n].numpy(), **tol)
    for g, tg in zip(sd["param_groups"], tsd["param_groups"]):
        assert {k: v for k, v in tg.items() if k in g} == g


@pytest.mark.oracle
@pytest.mark.parametrize("name,kw", [c for i, c in enumerate(ORACLE_CONFIGS) if i in (2, 6, 8, 12, 14)])
def test_state_dicts_interchange_with_pytorch_both_ways(torch, name, kw):
    rng = np.random.default_rng(7)
    init = [rng.standard_normal(s) for s in SHAPES]
    tol = dict(rtol=1e-11, atol=1e-13)
    ours, theirs, opt, topt = _oracle_pair(torch, name, kw, np.float64, init)
    _oracle_steps(torch, ours, theirs, opt, topt, 4, rng, tol)
    # PyTorch's state (as NumPy) continues in ours, and ours (as torch tensors) continues in PyTorch
    ours2, theirs2, opt2, topt2 = _oracle_pair(torch, name, {}, np.float64, [p.numpy() for p in ours])
    opt2.load_state_dict(_torch_state_to_numpy(torch, topt.state_dict()))
    sd = opt.state_dict()
    topt2.load_state_dict({"state": {k: {n: torch.tensor(v.numpy()) for n, v in s.items()} for k, s in sd["state"].items()},
                           "param_groups": sd["param_groups"]})
    state = rng.bit_generator.state
    _oracle_steps(torch, ours, theirs2, opt, topt2, 4, rng, tol)
    rng.bit_generator.state = state
    _oracle_steps(torch, ours2, theirs, opt2, topt, 4, rng, tol)


@pytest.mark.oracle
@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad"])
def test_defaults_are_pytorchs(torch, name):
    p = param([1.0])
    ours = getattr(tl.optim, name)([p], **({"lr": 0.1} if name == "SGD" else {})).defaults
    theirs = getattr(torch.optim, name)([torch.zeros(1, requires_grad=True)],
                                        **({"lr": 0.1} if name == "SGD" else {})).defaults
    assert ours == {k: v for k, v in theirs.items() if k in ours}
    assert set(theirs) - set(ours) <= {"foreach", "differentiable", "fused", "capturable"}


SCHEDULERS = [
    ("StepLR", dict(step_size=3)),
    ("StepLR", dict(step_size=2, gamma=0.7)),
    ("ExponentialLR", dict(gamma=0.9)),
    ("CosineAnnealingLR", dict(T_max=5)),
    ("CosineAnnealingLR", dict(T_max=7, eta_min=0.01)),
]


@pytest.mark.oracle
@pytest.mark.parametrize("name,kw", SCHEDULERS)
def test_scheduler_lrs_match_pytorch(torch, name, kw):
    opt = SGD([{"params": [param([1.0])]}, {"params": [param([1.0])], "lr": 0.5}], lr=0.1)
    topt = torch.optim.SGD([{"params": [torch.zeros(1, requires_grad=True)]},
                            {"params": [torch.zeros(1, requires_grad=True)], "lr": 0.5}], lr=0.1)
    sched = getattr(tl.optim.lr_scheduler, name)(opt, **kw)
    tsched = getattr(torch.optim.lr_scheduler, name)(topt, **kw)
    for epoch in range(30):  # several cosine periods: PyTorch's recursive form leaves the closed form there
        np.testing.assert_allclose(sched.get_last_lr(), tsched.get_last_lr(), rtol=1e-12, atol=1e-15)
        assert sched.last_epoch == tsched.last_epoch == epoch
        opt.step()
        topt.step()
        sched.step()
        tsched.step()
        if epoch == 10:  # a hand-set lr is picked up by the recursive formulas of both
            opt.param_groups[0]["lr"] = topt.param_groups[0]["lr"] = 0.05
    sd, tsd = sched.state_dict(), tsched.state_dict()
    assert set(sd) <= set(tsd)
    for key in ("last_epoch", "_step_count", "base_lrs"):
        assert sd[key] == tsd[key]
    np.testing.assert_allclose(sd["_last_lr"], tsd["_last_lr"], rtol=1e-12)
