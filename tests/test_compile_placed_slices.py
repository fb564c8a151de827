"""tl.compile: a gradient its slices tile (index_grad.Slices: np.empty, then one copy per slice) gets its slices
computed in place: the kernel that made a slice's gradient writes into the slice's view of the buffer and the copy
is skipped (buffers._placed_slices). Results stay eager's bit for bit; only what is safe is placed."""
import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite.compile.buffers import validate

nn = tl.nn


def _plan(f):
    (variant,) = f._variants
    return variant.plan


def _run_both(step, make_args, calls=14):
    compiled = tl.compile(step)
    for k in range(calls):
        args = make_args(k)
        got, want = compiled(*args), step(*args)
        for a, b in zip(got, want):
            assert np.array_equal(a.numpy(), b.numpy())
    assert compiled.stats["replays"] == calls - 1
    return compiled


def _grad_of(loss_fn):
    def step(x):
        x = x.detach().requires_grad_()
        out = loss_fn(x)
        out.backward()
        return out.detach(), x.grad
    return step


def _blocks(x):
    y = x * 1.5  # an intermediate (a leaf's gradient is handed to .grad: never a planned buffer)
    return (y[:2].sigmoid() * 3).sum() + y[2:5].tanh().sum() + y[5:].exp().sum()


def test_row_slices_are_computed_in_place():
    """y's rows read as three blocks, each through its own elementwise function: each block's gradient is written
    where it belongs; the plan skips the three copies."""
    rng = np.random.default_rng(0)
    f = _run_both(_grad_of(_blocks), lambda k: (tl.tensor(rng.standard_normal((7, 4))),))
    plan = _plan(f)
    assert len(plan.placed) == 3, plan.placed
    assert validate(plan)


def test_an_lstm_steps_gate_gradients_are_computed_in_place():
    tl.manual_seed(0)
    lstm = nn.LSTM(3, 5)
    rng = np.random.default_rng(1)

    def step(x):
        lstm.zero_grad()
        out, (h, c) = lstm(x)
        loss = (h ** 2).sum()
        loss.backward()
        return loss.detach(), lstm.weight_hh_l0.grad, lstm.weight_ih_l0.grad, lstm.bias_hh_l0.grad
    f = _run_both(step, lambda k: (tl.tensor(rng.standard_normal((6, 2, 3)).astype(np.float32)),))
    assert len(_plan(f).placed) == 6 * 5  # per step: the three sigmoid gates' slices and the two gate blocks


def test_column_slices_of_a_row_major_gradient_are_not_placed():
    """x[:, a:b] is not contiguous: its gradient is still computed apart and copied, and the numbers are eager's."""
    rng = np.random.default_rng(2)
    f = _run_both(_grad_of(lambda x: (x * 2)[:, :2].exp().sum() + (x * 2)[:, 2:].sin().sum()),
                  lambda k: (tl.tensor(rng.standard_normal((5, 6))),))
    assert _plan(f).placed == {}


def test_a_slice_gradient_read_twice_is_not_placed():
    """A slice's gradient that another operation reads too (here: the same array is both a slice's gradient and the
    other slice's, through an add's VJP handing g to both) keeps its own array."""
    rng = np.random.default_rng(3)

    def loss(x):
        y = x * 2
        a, b = y[:3], y[3:]
        return ((a + b) * 2).sum()
    f = _run_both(_grad_of(loss), lambda k: (tl.tensor(rng.standard_normal((6, 2))),))
    assert _plan(f).placed == {}


def test_a_placed_slice_outliving_its_buffer_fails_validation():
    rng = np.random.default_rng(4)
    f = _run_both(_grad_of(_blocks), lambda k: (tl.tensor(rng.standard_normal((7, 3))),))
    plan = _plan(f)
    s, (t, _, _) = next(iter(plan.placed.items()))
    plan.span[s] = (plan.span[s][0], plan.span[t][1] + 1)
    with pytest.raises(AssertionError, match="outlives"):
        validate(plan)
