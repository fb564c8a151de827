"""The engine: diamonds, accumulation, retain_graph, create_graph, hooks, custom Functions, anomaly mode, the
tape listing, grad mode, and the errors API.md promises."""
import threading
import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite.autograd import Function


def f64(*shape, seed=0):
    return tl.tensor(np.random.default_rng(seed).standard_normal(shape), requires_grad=True)


def test_diamond_graph_sums_both_paths():
    x = f64(3)
    a = x * 2
    y = (a * a + a.sin()).sum()  # a used three times
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * (2 * 2 * x.numpy() + np.cos(2 * x.numpy())))


def test_gradients_accumulate_over_two_backward_calls():
    x = f64(4)
    (x * 3).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 3 + 2 * x.numpy())


def test_intermediate_gradients_are_not_kept():
    x = f64(2)
    y = x * 2
    y.sum().backward()
    assert y.grad is None and x.grad is not None


def test_second_backward_without_retain_graph_names_retain_graph():
    x = f64(3)
    y = (x.exp() * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        y.backward()


def test_retain_graph_allows_second_backward():
    x = f64(3)
    y = (x.exp() * x).sum()
    y.backward(retain_graph=True)
    g1 = x.grad.numpy().copy()
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * g1)


def test_create_graph_hessian_vector_product():
    x = f64(4)
    A = np.random.default_rng(1).standard_normal((4, 4))
    At = tl.tensor(A)
    f = (x @ At @ x) + (x ** 3).sum()  # Hessian: A + A^T + diag(6x)
    (g,) = tl.grad(f, x, create_graph=True)
    v = tl.tensor(np.arange(4.0))
    (hv,) = tl.grad((g * v).sum(), x)
    np.testing.assert_allclose(hv.numpy(), (A + A.T + np.diag(6 * x.numpy())) @ np.arange(4.0), rtol=1e-10)


def test_third_derivative():
    x = tl.tensor(0.7, dtype=tl.float64, requires_grad=True)
    y = x.sin() * x
    (d1,) = tl.grad(y, x, create_graph=True)
    (d2,) = tl.grad(d1, x, create_graph=True)
    (d3,) = tl.grad(d2, x)
    v = 0.7
    np.testing.assert_allclose(d3.item(), -3 * np.sin(v) - v * np.cos(v), rtol=1e-12)


def test_autograd_grad_leaves_dot_grad_alone_and_handles_unused():
    x, z = f64(2), f64(2, seed=1)
    y = (x * x).sum()
    (g,) = tl.autograd.grad(y, [x], retain_graph=True)
    np.testing.assert_allclose(g.numpy(), 2 * x.numpy())
    assert x.grad is None
    with pytest.raises(RuntimeError, match="allow_unused"):
        tl.autograd.grad(y, [x, z], retain_graph=True)
    gx, gz = tl.autograd.grad(y, [x, z], allow_unused=True)
    assert gz is None and gx is not None


def test_grad_with_respect_to_intermediate():
    x = f64(3)
    h = x * 2
    y = (h * h).sum()
    (gh,) = tl.grad(y, h)
    np.testing.assert_allclose(gh.numpy(), 2 * h.numpy())


def test_backward_with_gradient_argument():
    x = f64(3)
    y = x * x
    y.backward(gradient=tl.tensor(np.array([1.0, 0.0, 2.0])))
    np.testing.assert_allclose(x.grad.numpy(), 2 * x.numpy() * [1, 0, 2])


def test_broadcasting_is_undone_in_gradients():
    a, b = f64(3, 1), f64(1, 4, seed=1)
    c = f64(4, seed=2)
    ((a * b + c) ** 2).sum().backward()
    assert a.grad.shape == (3, 1) and b.grad.shape == (1, 4) and c.grad.shape == (4,)
    s = a.numpy() * b.numpy() + c.numpy()
    np.testing.assert_allclose(c.grad.numpy(), (2 * s).sum(0))
    np.testing.assert_allclose(a.grad.numpy(), (2 * s * b.numpy()).sum(1, keepdims=True))


def test_float32_leaf_used_in_float64_op_gets_float32_grad():
    a = tl.ones(3, requires_grad=True)
    b = tl.ones(3, dtype=tl.float64)
    (a * b).sum().backward()
    assert a.grad.dtype == np.float32


def test_hooks_on_leaf_and_intermediate():
    x = f64(3)
    seen = []
    x.register_hook(lambda g: seen.append(("x", g.numpy().copy())))
    h = x * 3
    handle = h.register_hook(lambda g: g * 10)  # replaces the gradient flowing on
    h.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 30 * np.ones(3))
    assert seen and seen[0][0] == "x"
    handle.remove()
    x.grad = None
    h2 = x * 3
    h2.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 3 * np.ones(3))


class Cube(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * 3 * x * x  # Tensor ops: double backward works


class SplitSum(Function):
    @staticmethod
    def forward(ctx, x, scale):
        ctx.scale = scale
        return x.sum() * scale, x * 2

    @staticmethod
    def backward(ctx, g_sum, g_double):
        return g_sum * ctx.scale + g_double * 2, None


def test_custom_function_first_and_second_order():
    x = f64(3)
    y = Cube.apply(x)
    assert y.grad_fn.name() == "CubeBackward" and y.grad_fn.entry.name == "Cube"
    (g,) = tl.grad(y.sum(), x, create_graph=True)
    np.testing.assert_allclose(g.numpy(), 3 * x.numpy() ** 2)
    (h,) = tl.grad(g.sum(), x)
    np.testing.assert_allclose(h.numpy(), 6 * x.numpy())


def test_custom_function_with_two_outputs_and_non_tensor_arg():
    x = f64(3)
    s, d = SplitSum.apply(x, 5.0)
    (s + d.sum()).backward()
    np.testing.assert_allclose(x.grad.numpy(), 5 + 2 * np.ones(3))
    np.testing.assert_allclose(s.item(), 5 * x.numpy().sum())


def test_custom_function_wrong_gradient_shape_is_reported():
    class Bad(Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return tl.ones(7, dtype=tl.float64)

    x = f64(3)
    with pytest.raises(RuntimeError, match="Bad.backward returned a gradient of shape"):
        Bad.apply(x).sum().backward()


def test_anomaly_mode_names_primitive_and_line():
    x = tl.tensor([0.0, 1.0], requires_grad=True)
    with tl.autograd.detect_anomaly():
        y = x.sqrt()  # the faulty line: infinite derivative at 0
        line = y.grad_fn.entry.line
        with pytest.raises(RuntimeError) as err:
            y.sum().backward()
    msg = str(err.value)
    assert "'sqrt'" in msg and f"test_core_autograd.py:{line}" in msg and "inf" in msg


def test_anomaly_mode_forward_nan():
    x = tl.tensor([-1.0, 1.0], requires_grad=True)
    with tl.autograd.detect_anomaly():
        with pytest.raises(RuntimeError, match="'log'.*NaN"):
            x.log()
    x.log()  # outside anomaly mode: NaN is allowed


def test_tape_listing_fields():
    x = f64(2, 3)
    w = f64(3, 4, seed=1)
    y = (x @ w).relu().sum()
    entries = tl.autograd.tape(y)
    assert [e.name for e in entries] == ["matmul", "relu", "sum"]
    assert [e.index for e in entries] == sorted(e.index for e in entries)
    e = entries[0]
    assert e.output_shape == (2, 4) and e.inputs[0] is x and e.inputs[1] is w
    assert e.source.startswith("test_core_autograd.py:") and e.module is None
    assert entries[2].attr_dict == {"dim": None, "keepdim": False}


def test_grad_mode_context_decorator_and_thread_local():
    x = f64(2)
    with tl.no_grad():
        assert not (x * 2).requires_grad
        with tl.enable_grad():
            assert (x * 2).requires_grad
    assert tl.is_grad_enabled()

    @tl.no_grad()
    def f():
        return x * 2
    assert not f().requires_grad
    results = {}

    def other_thread():
        results["enabled"] = tl.is_grad_enabled()
        results["req"] = (x * 2).requires_grad
    with tl.no_grad():
        t = threading.Thread(target=other_thread)
        t.start()
        t.join()
    assert results == {"enabled": True, "req": True}


# ---------------- errors named in the issue ----------------
def test_shape_mismatch_errors_name_op_shapes_and_line():
    a, b = tl.ones(2, 3), tl.ones(4)
    with pytest.raises(RuntimeError) as err:
        a + b
    msg = str(err.value)
    assert "add" in msg and "(2, 3)" in msg and "(4,)" in msg and "test_core_autograd.py" in msg
    assert isinstance(err.value, ValueError)
    with pytest.raises(RuntimeError, match=r"matmul.*\(2, 3\).*\(4, 5\)"):
        tl.ones(2, 3) @ tl.ones(4, 5)


def test_non_scalar_backward_requires_gradient():
    x = f64(3)
    with pytest.raises(RuntimeError, match="scalar outputs.*gradient="):
        (x * 2).backward()


def test_backward_of_tensor_without_grad():
    with pytest.raises(RuntimeError, match="does not require grad"):
        tl.ones(2).sum().backward()


def test_inplace_on_leaf_requiring_grad():
    x = f64(2)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        x.add_(1)
    with tl.no_grad():
        x.add_(1)  # optimizers do this


def test_inplace_change_of_saved_value_raises_at_backward():
    x = f64(3)
    c = tl.tensor(np.ones(3))
    y = (x * c).sum()
    c.mul_(2)
    with pytest.raises(RuntimeError, match="modified by an in-place operation.*'mul'"):
        y.backward()


def test_inplace_change_of_saved_output_raises():
    x = f64(3)
    e = x.exp()
    y = e.sum()
    with tl.no_grad():
        e.mul_(2)
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        y.backward()


def test_wrong_argument_types():
    with pytest.raises(TypeError):
        tl.ones(2) + "a"
    with pytest.raises(TypeError):
        tl.ones(2).reshape("a")
    with pytest.raises(IndexError, match="dim 5 is out of range"):
        tl.ones(2, 3).sum(5)
    with pytest.raises(IndexError, match="getitem"):
        tl.ones(2, 3)[5]


def test_output_changed_in_place_before_its_consumer_was_recorded():
    x = f64(3)
    e = x.exp()
    with tl.no_grad():
        e.mul_(2)  # exp's VJP reads its output, which no longer is exp(x)
    y = e.sum()
    with pytest.raises(RuntimeError, match="output of 'exp'.*changed in place"):
        y.backward()


def test_many_slices_accumulate_into_one_gradient():
    x = f64(6, 3)
    inter = x * 1.0
    total = sum((inter[t] * (t + 1)).sum() for t in range(6)) + inter[[0, 0, 5]].sum() + inter[inter > 0].sum()
    total.backward()
    expect = np.repeat(np.arange(1.0, 7.0)[:, None], 3, 1)
    expect[0] += 2
    expect[5] += 1
    expect += x.numpy() > 0
    np.testing.assert_allclose(x.grad.numpy(), expect)
    y = f64(4, 2, seed=3)  # slices taken straight from a leaf
    sum((y[t] * t).sum() for t in range(4)).backward()
    np.testing.assert_allclose(y.grad.numpy(), np.repeat(np.arange(4.0)[:, None], 2, 1))


def test_leaf_hook_sees_the_total_gradient_once():
    x = f64(3)
    calls = []
    x.register_hook(lambda g: calls.append(g.numpy().copy()))
    (x * 2 + x * 3).sum().backward()
    assert len(calls) == 1
    np.testing.assert_allclose(calls[0], 5 * np.ones(3))


def test_leaves_never_share_a_gradient_buffer():
    a, b = f64(3), f64(3, seed=1)
    (a + b).sum().backward()
    assert a.grad.numpy() is not b.grad.numpy() and not np.shares_memory(a.grad.numpy(), b.grad.numpy())
    a.grad.numpy()[0] = 100.0
    assert b.grad.numpy()[0] == 1.0


def test_transposed_weight_gets_a_contiguous_correct_gradient():
    x = f64(5, 4)
    w = f64(3, 4, seed=1)
    (x @ w.T).sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), np.ones((5, 3)).T @ x.numpy())
    np.testing.assert_allclose(x.grad.numpy(), np.ones((5, 3)) @ w.numpy())
    assert w.grad.numpy().flags.c_contiguous


def test_gradient_never_aliases_the_callers_seed_or_a_functions_array():
    x = f64(3)
    seed = tl.tensor(np.array([1.0, 2.0, 3.0]))
    (x + 0.0).backward(gradient=seed)
    assert not np.shares_memory(x.grad.numpy(), seed.numpy())
    kept = tl.tensor(np.ones(3))

    class Keep(Function):
        @staticmethod
        def forward(ctx, a):
            return a * 1.0

        @staticmethod
        def backward(ctx, g):
            return kept

    y = f64(3, seed=2)
    Keep.apply(y).sum().backward()
    assert not np.shares_memory(y.grad.numpy(), kept.numpy())


def test_set_grad_enabled_as_function_context_and_decorator():
    x = f64(2)
    tl.set_grad_enabled(False)
    assert not tl.is_grad_enabled()
    tl.set_grad_enabled(True)

    @tl.set_grad_enabled(False)
    def f():
        return x * 2
    assert tl.is_grad_enabled(), "decorating must not change the mode outside the decorated calls"
    assert not f().requires_grad and tl.is_grad_enabled()
    with tl.set_grad_enabled(False):
        assert not (x * 2).requires_grad
    assert tl.is_grad_enabled()


def test_a_hook_returning_a_non_tensor_is_a_clear_error():
    x = f64(3)
    y = x * 2
    y.register_hook(lambda g: False)
    with pytest.raises(TypeError, match="hook .* returned bool"):
        y.sum().backward()


def test_shared_gradient_tensors_are_never_accumulated_into_in_place():
    """add's VJP hands the same gradient tensor to both inputs; later sums into one of them must not leak into
    the other (the engine only updates buffers it allocated itself)."""
    x = f64(4)
    a, b = x * 1.0, x * 2.0
    s = a + b            # a and b receive the very same gradient tensor
    y = (s + a * 3.0 + b * 5.0 + a[1:].sum() + b[:2].sum()).sum()
    y.backward()
    # each scalar slice-sum is broadcast over the 4 elements of the vector before the final sum
    da = 1 + 3 + 4 * np.array([0, 1, 1, 1])
    db = 1 + 5 + 4 * np.array([1, 1, 0, 0])
    np.testing.assert_allclose(x.grad.numpy(), 1 * da + 2 * db)
