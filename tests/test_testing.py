"""tl.testing: Hypothesis strategies for tensors and broadcastable shapes, assert_gradients_match, shrinking a
failing layer to a minimal shape, and a clear ImportError without Hypothesis."""
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, find, given, settings, strategies as st

import tinygrad_lite as tl
import tinygrad_lite.testing as tlt

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@settings(max_examples=40, deadline=None)
@given(tlt.tensors())
def test_tensors_defaults_are_float64_leaves_ready_for_gradcheck(x):
    assert isinstance(x, tl.Tensor) and x.dtype == np.float64 and x.requires_grad and x.is_leaf
    assert 0 <= x.ndim <= 4 and all(1 <= s <= 5 for s in x.shape)
    assert np.all(np.isfinite(x.numpy())) and np.all(np.abs(x.numpy()) <= 10)


@settings(max_examples=30, deadline=None)
@given(tlt.tensors(shape=(2, 3), dtype=tl.float32, elements=st.floats(0, 1, width=32), requires_grad=False),
       tlt.tensors(dtype=tl.int64, min_dims=1, max_dims=2, min_side=2, max_side=3),
       tlt.tensors(shape=st.sampled_from([(1,), (4, 1)])))
def test_tensors_options(a, i, s):
    assert a.shape == (2, 3) and a.dtype == np.float32 and not a.requires_grad
    assert np.all((a.numpy() >= 0) & (a.numpy() <= 1))
    assert i.dtype == np.int64 and not i.requires_grad and 1 <= i.ndim <= 2 and all(2 <= d <= 3 for d in i.shape)
    assert s.shape in [(1,), (4, 1)]


@settings(max_examples=40, deadline=None)
@given(tlt.broadcastable_shapes(num_shapes=3, min_dims=1, max_dims=3, max_side=4))
def test_broadcastable_shapes_broadcast(shapes):
    assert isinstance(shapes, tuple) and len(shapes) == 3
    assert all(1 <= len(s) <= 3 and all(1 <= d <= 4 for d in s) for s in shapes)
    np.broadcast_shapes(*shapes)  # raises if they do not broadcast


def test_strategy_argument_errors():
    with pytest.raises(ValueError, match="min_dims"):
        tlt.tensors(min_dims=3, max_dims=1)
    with pytest.raises(ValueError, match="num_shapes"):
        tlt.broadcastable_shapes(num_shapes=0)


class WrongScale(tl.autograd.Function):
    """x * w for a row vector w, whose gradient for w forgets to sum over the batch when it has more than 1 row."""

    @staticmethod
    def forward(ctx, x, w):
        ctx.save_for_backward(x, w)
        return x * w

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        return g * w, (g * x)[:1]  # right only for a batch of one row


def scale_layer(x, w):
    return WrongScale.apply(x, w).tanh()


def test_assert_gradients_match_passes_and_fails_with_the_report():
    x = tl.tensor(np.random.default_rng(0).standard_normal((1, 3)), requires_grad=True)
    w = tl.tensor(np.random.default_rng(1).standard_normal((1, 3)), requires_grad=True)
    assert tlt.assert_gradients_match(scale_layer, x, w)
    x2 = tl.tensor(np.random.default_rng(0).standard_normal((2, 3)), requires_grad=True)
    with pytest.raises(AssertionError) as info:
        tlt.assert_gradients_match(scale_layer, x2, w)
    msg = str(info.value)
    assert "gradcheck failed" in msg and "input 1 ('w')" in msg and "custom Function WrongScale" in msg
    assert info.value.faulty_entry.name == "WrongScale"


def test_assert_gradients_match_second_order():
    x = tl.tensor(np.random.default_rng(0).standard_normal(3), requires_grad=True)
    assert tlt.assert_gradients_match(lambda x: x.sin() * x, x, second_order=True)

    class ConstantBackward(tl.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x.exp()

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * tl.tensor(np.exp(x.numpy()))

    assert tlt.assert_gradients_match(ConstantBackward.apply, x)
    with pytest.raises(AssertionError, match="double backward"):
        tlt.assert_gradients_match(ConstantBackward.apply, x, second_order=True)


def test_hypothesis_shrinks_a_failing_layer_to_a_minimal_shape():
    """The documented recipe: property-test over random shapes; Hypothesis shrinks the failure to batch size 2."""
    def fails(shape):
        rng = np.random.default_rng(0)
        x = tl.tensor(rng.standard_normal(shape), requires_grad=True)
        w = tl.tensor(rng.standard_normal((1, shape[1])), requires_grad=True)
        try:
            tlt.assert_gradients_match(scale_layer, x, w)
        except AssertionError:
            return True
        return False

    shapes = st.tuples(st.integers(1, 6), st.integers(1, 6))
    minimal = find(shapes, fails, settings=settings(max_examples=200, deadline=None, database=None,
                                                    suppress_health_check=[HealthCheck.too_slow]))
    assert minimal == (2, 1)


def test_property_test_of_a_correct_layer_over_random_shapes():
    @settings(max_examples=25, deadline=None)
    @given(st.data())
    def check(data):
        x_shape, w_shape = data.draw(tlt.broadcastable_shapes(num_shapes=2, min_dims=1, max_dims=3, max_side=3))
        x = data.draw(tlt.tensors(shape=x_shape, elements=st.floats(-2, 2)))
        w = data.draw(tlt.tensors(shape=w_shape, elements=st.floats(-2, 2)))
        tlt.assert_gradients_match(lambda x, w: (x * w).tanh() + w.exp(), x, w)
    check()


def test_import_without_hypothesis_and_clear_error_when_strategies_are_used():
    code = ("import sys; sys.modules['hypothesis'] = None\n"
            "import tinygrad_lite.testing as t\n"
            "try:\n    t.tensors()\nexcept ImportError as e:\n    print('ERR', e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert "ERR" in out and "pip install 'tinygrad_lite[testing]'" in out


def test_import_is_lazy():
    code = "import tinygrad_lite.testing, sys; print('hypothesis' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert out.strip() == "False"
