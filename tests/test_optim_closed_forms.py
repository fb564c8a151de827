"""Optimizer update rules against closed forms worked by hand: SGD (momentum, dampening, weight decay,
Nesterov, maximize), Adam/AdamW (bias correction, amsgrad, decoupled decay), RMSprop (centered) and Adagrad.
"""
import math

import numpy as np

from tinygrad_lite.optim import SGD, Adam, AdamW, RMSprop, Adagrad

from _optim_common import run


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
