"""`&`, `|`, `^`, `~`, `%`, `//` and logical_and/or/xor/not on Tensors, as PyTorch's: values, dtypes, broadcasting,
reflected forms, gradients of `%` (d/da = 1, d/db = -floor(a / b)), the errors, and the same code under tl.compile
and vmap. (The remainder primitive itself is swept with every other primitive: finite differences, forward mode,
ONNX, tl.compile, vmap.)"""
import numpy as np
import pytest

import tinygrad_lite as tl

pytestmark = pytest.mark.oracle

_RNG = np.random.default_rng(0)
X = np.round(_RNG.standard_normal((4, 5)) * 6, 2)
Y = np.round(_RNG.choice([-1, 1], (4, 5)) * _RNG.uniform(0.5, 3, (4, 5)), 2)
I = _RNG.integers(-9, 10, (4, 5))
J = _RNG.integers(1, 5, (5,)) * _RNG.choice([-1, 1], 5)

EXPRESSIONS = {
    "and": lambda x, y, i, j: (x > 0) & (y > 0),
    "or": lambda x, y, i, j: (x > 0) | (y > 1),
    "xor": lambda x, y, i, j: (x > 0) ^ (y > 0),
    "invert bool": lambda x, y, i, j: ~(x > 0),
    "invert int": lambda x, y, i, j: ~i,
    "int and broadcast": lambda x, y, i, j: i & j,
    "int or scalar": lambda x, y, i, j: i | 8,
    "reflected xor": lambda x, y, i, j: 6 ^ i,
    "bool with int": lambda x, y, i, j: (x > 0) | i,
    "mod float": lambda x, y, i, j: x % y,
    "mod scalar": lambda x, y, i, j: x % 2.5,
    "rmod": lambda x, y, i, j: 7.5 % y,
    "mod int": lambda x, y, i, j: i % j,
    "mod int scalar": lambda x, y, i, j: i % -4,
    "mod mixed": lambda x, y, i, j: i % y,
    "floordiv float": lambda x, y, i, j: x // y,
    "floordiv int": lambda x, y, i, j: i // j,
    "rfloordiv": lambda x, y, i, j: 10 // j,
    "methods": lambda x, y, i, j: x.remainder(y) + x.floor_divide(2.0),
}


@pytest.mark.parametrize("name", list(EXPRESSIONS))
def test_operators_give_pytorchs_values_and_dtypes(torch, name):
    fn = EXPRESSIONS[name]
    ours = fn(*(tl.tensor(a) for a in (X, Y, I, J)))
    theirs = fn(*(torch.tensor(a) for a in (X, Y, I, J)))
    assert ours.shape == tuple(theirs.shape)
    assert ours.dtype == np.dtype(str(theirs.dtype).replace("torch.", ""))
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


@pytest.mark.parametrize("name", ["logical_and", "logical_or", "logical_xor"])
def test_logical_functions(torch, name):
    a, b = np.array([0.0, -1.5, 2.0, 0.0]), np.array([3, 0, 1, 0])
    ours, theirs = getattr(tl, name)(tl.tensor(a), tl.tensor(b)), getattr(torch, name)(torch.tensor(a),
                                                                                      torch.tensor(b))
    assert ours.dtype == np.bool_ and np.array_equal(ours.numpy(), theirs.numpy())
    assert np.array_equal(getattr(tl.tensor(a), name)(tl.tensor(b)).numpy(), theirs.numpy())
    assert np.array_equal(tl.logical_not(tl.tensor(a)).numpy(), torch.logical_not(torch.tensor(a)).numpy())


def test_remainder_gradients_are_pytorchs(torch):
    a, b = tl.tensor(X, requires_grad=True), tl.tensor(Y, requires_grad=True)
    ta, tb = torch.tensor(X, requires_grad=True), torch.tensor(Y, requires_grad=True)
    w = _RNG.standard_normal(X.shape)
    ((a % b) * tl.tensor(w)).sum().backward()
    ((ta % tb) * torch.tensor(w)).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), ta.grad.numpy())
    np.testing.assert_array_equal(b.grad.numpy(), tb.grad.numpy())
    a.grad = None
    (3.5 % a).sum().backward()  # the divisor's gradient, reflected (PyTorch has none for a number % tensor)
    np.testing.assert_array_equal(a.grad.numpy(), -np.floor_divide(3.5, X))


def test_floor_divide_has_no_gradient():
    """PyTorch defines no derivative for floor_divide (its backward raises); here the result is simply off the tape."""
    a = tl.tensor(X, requires_grad=True)
    q = a // 2.0
    assert not q.requires_grad and np.array_equal(q.numpy(), np.floor_divide(X, 2.0))


def test_remainder_and_floor_divide_of_two_bools_are_refused_and_bool_with_int_is_int(torch):
    b = tl.tensor([True, False])
    for op in (lambda t: t % t, lambda t: t // t):
        with pytest.raises(TypeError, match="two bool tensors"):
            op(b)
    for op in (lambda t: t % 2, lambda t: t // 2):
        ours, theirs = op(b), op(torch.tensor([True, False]))
        assert ours.dtype == np.int64 and np.array_equal(ours.numpy(), theirs.numpy())


def test_bitwise_operators_refuse_floats_and_integer_division_by_zero_raises():
    x = tl.tensor(X)
    for op in (lambda: x & x, lambda: x | 1, lambda: 1 ^ x, lambda: ~x):
        with pytest.raises(TypeError, match="bool or integer tensors, got float64"):
            op()
    i = tl.tensor(I)
    for op in (lambda: i % 0, lambda: i // tl.tensor([1, 2, 0, 1, 1])):
        with pytest.raises(RuntimeError, match="ZeroDivisionError"):
            op()


def test_masks_and_remainders_replay_under_compile():
    """A step built on `&`, `~`, `%` and `//` replays (new values each call) with eager's numbers."""
    def step(x, y):
        keep = (x > 0) & ~(y < -1) | (x % 2.0 > 1.5)
        loss = (tl.where(keep, x % y, x // 3.0) * y).sum()
        loss.backward()
        return loss.item(), x.grad, y.grad

    compiled = tl.compile(step)
    rng = np.random.default_rng(3)
    for call in range(12):
        x, y = np.round(rng.standard_normal((3, 4)) * 5, 3), rng.uniform(0.5, 2, (3, 4)) * rng.choice([-1, 1], (3, 4))
        got = compiled(tl.tensor(x, requires_grad=True), tl.tensor(y, requires_grad=True))
        want = step(tl.tensor(x, requires_grad=True), tl.tensor(y, requires_grad=True))
        assert got[0] == want[0], call
        for g, w in zip(got[1:], want[1:]):
            assert np.array_equal(g.numpy(), w.numpy()), call
    assert compiled.stats["replays"] == 11 and compiled.stats["eager_calls"] == 0


def test_operators_under_vmap_match_a_loop():
    from tinygrad_lite import func

    def f(x, i):
        return tl.where((x > 0) & (i % 2 == 0), x % 1.5, (x // 0.5) * 1.0) + (~(i > 3)).float() + tl.logical_xor(x, i)

    x, i = np.round(_RNG.standard_normal((6, 5)) * 3, 2), _RNG.integers(-5, 6, (6, 5))
    got = func.vmap(f)(tl.tensor(x), tl.tensor(i))
    for k in range(6):
        np.testing.assert_array_equal(got.numpy()[k], f(tl.tensor(x[k]), tl.tensor(i[k])).numpy())
