"""Adversarial review (session 13) of the autograd core and the "PyTorch habits" layer, with PyTorch as the oracle:
dtype promotion (0-d tensors, mixed kinds), gradients at kinks and zeros (pow, clamp with tensor bounds), hooks
and retain_grad, autograd.grad, custom Functions (several outputs, trailing None gradients), grad-mode decorators
(bare, on generators), and the Python protocols (item/float/bool/len/iter, copy, pickling)."""
import numpy as np
import pytest

import tinygrad_lite as tl

pytestmark = pytest.mark.oracle


def _leaf(lib, values):
    return lib.tensor(np.array(values, dtype=np.float64), requires_grad=True)


def _np(t):
    return None if t is None else t.detach().numpy()


# --- custom Functions -------------------------------------------------------------------------------------------

def _function_with_flag(lib):
    class Scale(lib.autograd.Function):
        @staticmethod
        def forward(ctx, x, k, flag=True):
            ctx.k = k
            return x * k

        @staticmethod
        def backward(ctx, g):
            return g * ctx.k, None, None  # one more None than forward got arguments: PyTorch accepts trailing Nones

    return Scale


# Defect: backward returning trailing Nones beyond forward's arguments was refused (the count had to match exactly).
def test_function_backward_may_return_trailing_nones(torch):
    got = []
    for lib in (tl, torch):
        x = _leaf(lib, [1.0, 2.0])
        _function_with_flag(lib).apply(x, 3.0).sum().backward()
        got.append(_np(x.grad))
    np.testing.assert_array_equal(got[0], got[1])


def test_function_backward_with_extra_non_none_gradient_still_raises():
    class Bad(tl.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return g, 1.0

    x = _leaf(tl, [1.0])
    with pytest.raises(RuntimeError, match="returned 2 gradients"):
        Bad.apply(x).sum().backward()


def _mixed_outputs(lib, record):
    class Mixed(lib.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            scaled = x * 3
            ctx.mark_non_differentiable(scaled)
            return x * 2, x > 0, scaled, x.long()

        @staticmethod
        def backward(ctx, g, g_mask, g_scaled, g_long):
            record.append([(tuple(t.shape), str(t.dtype).replace("torch.", ""), _np(t).tolist())
                           for t in (g, g_mask, g_scaled, g_long)])
            return g * 2

    return Mixed


# Defect: a Function with non-differentiable outputs (bool/int results, mark_non_differentiable) had backward called
# with gradients for the differentiable outputs only, so backward(ctx, g, g_mask, ...) failed with a TypeError.
# Root cause: _FunctionPrimitive._vjp rebuilt gradients only for the recorded (floating) outputs.
def test_function_backward_gets_one_gradient_per_output(torch):
    seen = {}
    for lib in (tl, torch):
        record = []
        x = _leaf(lib, [1.0, -2.0])
        a, mask, scaled, as_long = _mixed_outputs(lib, record).apply(x)
        assert not mask.requires_grad and not scaled.requires_grad and not as_long.requires_grad
        a.sum().backward()
        seen[lib.__name__] = (record, _np(x.grad).tolist())
    assert seen["tinygrad_lite"] == seen["torch"]


def test_function_without_materialized_grads_gets_none_for_non_differentiable_outputs():
    got = []

    class Two(tl.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.set_materialize_grads(False)
            return x * 2, x > 0

        @staticmethod
        def backward(ctx, g, g_mask):
            got.append(g_mask)
            return g * 2

    x = _leaf(tl, [1.0, -2.0])
    Two.apply(x)[0].sum().backward()
    assert got == [None]
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 2.0])


# --- grad mode --------------------------------------------------------------------------------------------------

# Defect: a generator function decorated with no_grad() ran its body with grad mode on (the switch only covered
# creating the generator object). Root cause: _Switch.__call__ wrapped the call, not each resumption.
def test_no_grad_decorated_generator_runs_without_grad(torch):
    results = []
    for lib in (tl, torch):
        @lib.no_grad()
        def gen(x):
            sent = yield x * 2
            yield sent, lib.is_grad_enabled()
            return "done"

        x = _leaf(lib, [1.0])
        it = gen(x)
        first = next(it)
        outside = lib.is_grad_enabled()
        second = it.send(7)
        with pytest.raises(StopIteration) as stop:
            next(it)
        results.append((first.requires_grad, outside, second, stop.value.value))
    assert results[0] == results[1] == (False, True, (7, False), "done")


def test_no_grad_decorated_generator_sees_thrown_exceptions_under_its_mode():
    @tl.no_grad()
    def gen():
        try:
            yield 1
        except KeyError:
            yield tl.is_grad_enabled()

    it = gen()
    next(it)
    assert it.throw(KeyError()) is False
    assert tl.is_grad_enabled()
    it.close()
    assert tl.is_grad_enabled()


# Defect: `@tl.no_grad` / `@tl.enable_grad` / `@tl.inference_mode` without parentheses raised TypeError (PyTorch
# accepts the bare form). Root cause: the switch classes took no function argument.
@pytest.mark.parametrize("name, outside, expect", [("no_grad", True, False), ("enable_grad", False, True),
                                                   ("inference_mode", True, False)])
def test_bare_grad_mode_decorators(name, outside, expect, torch):
    for lib in (tl, torch):
        @getattr(lib, name)
        def f(x):
            return x * 2

        x = _leaf(lib, [1.0])
        with lib.set_grad_enabled(outside):
            assert f(x).requires_grad is expect, (lib.__name__, name)
        assert f.__name__ == "f"


# --- hooks and retain_grad --------------------------------------------------------------------------------------

# Defect: a leaf's register_hook was ignored by autograd.grad (only backward() ran leaf hooks), so gradients of a
# hooked leaf silently differed from PyTorch's. Root cause: run_backward's capture branch skipped the leaf's hooks.
def test_leaf_hooks_apply_in_autograd_grad_and_double_backward(torch):
    got = []
    for lib in (tl, torch):
        x = _leaf(lib, [1.0, 2.0])
        x.register_hook(lambda g: g * 2)
        g1, = lib.autograd.grad((x ** 3).sum(), x, create_graph=True)
        g2, = lib.autograd.grad(g1.sum(), x)
        got.append((_np(g1).tolist(), _np(g2).tolist(), x.grad))
    assert got[0] == got[1]


def test_a_removed_leaf_hook_no_longer_applies_in_autograd_grad():
    x = _leaf(tl, [1.0, 2.0])
    handle = x.register_hook(lambda g: g * 100)
    handle.remove()
    g, = tl.autograd.grad((x * x).sum(), x)
    np.testing.assert_array_equal(g.numpy(), [2.0, 4.0])


def _retain_cases(lib):
    out = {}
    x = _leaf(lib, [1.0, 2.0])
    y = x * 2
    y.retain_grad()
    y.register_hook(lambda g: g * 10)  # registered after retain_grad: the retained gradient still includes it
    s = (y * y).sum()
    s.backward(retain_graph=True)
    s.backward()  # accumulates
    out["accumulated"] = (_np(y.grad).tolist(), _np(x.grad).tolist(), y.retains_grad, x.retains_grad)
    x = _leaf(lib, [1.0, 2.0])
    y = x * 2
    y.retain_grad()
    (y * y).sum().backward(create_graph=True)
    out["create_graph"] = (_np(y.grad).tolist(), y.grad.requires_grad)
    x = _leaf(lib, [1.0, 2.0])
    y = x * 2
    y.retain_grad()
    g, = lib.autograd.grad((y ** 3).sum(), x)
    out["autograd.grad"] = (_np(g).tolist(), _np(y.grad).tolist())
    x = _leaf(lib, [1.0, 2.0])
    y = x * 2
    y.retain_grad()
    z = y.exp()
    y.add_(1)  # the retained gradient is the changed tensor's
    (z + y).sum().backward()
    out["after in-place"] = (_np(y.grad).tolist(), _np(x.grad).tolist())
    return out


# Defect: Tensor.retain_grad() (and .retains_grad) did not exist: AttributeError in ported code that inspects
# intermediate gradients. Root cause: missing API; now a last hook on the non-leaf's entry.
def test_retain_grad_matches_pytorch(torch):
    ours, theirs = _retain_cases(tl), _retain_cases(torch)
    assert ours == theirs


def test_retain_grad_on_a_tensor_without_grad_raises():
    with pytest.raises(RuntimeError, match="requires_grad=False"):
        tl.tensor([1.0, 2.0]).retain_grad()


# --- gradients at zeros and bounds ------------------------------------------------------------------------------

def _grads(lib, f, *values):
    xs = [_leaf(lib, v) for v in values]
    out = f(*xs)
    (out * lib.arange(1, out.numel() + 1, dtype=lib.float64).reshape(out.shape)).sum().backward()
    return [_np(out)] + [_np(x.grad) for x in xs]


def _assert_same(ours, theirs):
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=0, equal_nan=True)


# Defect: d/dx x**y at x == 0, y == 0 was NaN (0 * 0**-1 = 0 * inf); PyTorch gives 0 (its pow_backward masks
# exponent == 0). Root cause: pow's VJP (and JVP) used the bare formula g * b * a**(b-1).
@pytest.mark.parametrize("case", ["tensor exponent", "python exponent 0", "exponent 0.5"])
def test_pow_gradient_at_zero_base_matches_pytorch(case, torch):
    def f(lib):
        if case == "tensor exponent":
            return _grads(lib, lambda x, y: x ** y, [0.0, 0.0, 2.0, 1e-12], [0.0, 2.0, 0.5, 0.0])
        if case == "python exponent 0":
            return _grads(lib, lambda x: x ** 0, [0.0, 1.0, -1e-12])
        return _grads(lib, lambda x: x ** 0.5, [0.0, 1.0, 1e-12])
    with np.errstate(all="ignore"):
        _assert_same(f(tl), f(torch))


def test_pow_forward_mode_at_zero_base_has_no_nan():
    x = tl.tensor([0.0, 2.0], dtype=tl.float64)
    _, tangent = tl.func.jvp(lambda x: x ** 0, (x,), (tl.ones_like(x),))
    np.testing.assert_array_equal(tangent.numpy(), [0.0, 0.0])


_CLAMP_X = [0.0, 1.0, 2.0, 3.0, 1.5, 0.5, 1.0, float("nan"), 2.0]
_CLAMP_LO = [1.0, 1.0, 1.0, 1.0, 2.0, 1.0, 1.0, 0.0, 2.0]  # ties with x, lo > hi, lo == hi, a NaN x
_CLAMP_HI = [2.0, 2.0, 1.5, 4.0, 1.0, 1.0, 2.0, 1.0, 2.0]


# Defect: clamp with Tensor bounds split the gradient in half between x and the bound where they tie, and gave it
# to the wrong side where min > max. Root cause: it was maximum/minimum, whose tie rule is not clamp's.
@pytest.mark.parametrize("bounds", ["both", "min", "max"])
def test_clamp_with_tensor_bounds_gradients_match_pytorch(bounds, torch):
    def f(lib):
        if bounds == "both":
            return _grads(lib, lambda x, lo, hi: x.clamp(lo, hi), _CLAMP_X, _CLAMP_LO, _CLAMP_HI)
        if bounds == "min":
            return _grads(lib, lambda x, lo: lib.clamp(x, min=lo), _CLAMP_X, _CLAMP_LO)
        return _grads(lib, lambda x, hi: x.clamp(max=hi), _CLAMP_X, _CLAMP_HI)
    _assert_same(f(tl), f(torch))


def test_clamp_with_broadcast_tensor_bounds_matches_pytorch(torch):
    def f(lib):
        return _grads(lib, lambda x, lo, hi: x.clamp(lo, hi), [[0.0, 1.0, 2.0], [3.0, 1.5, -1.0]], [1.0],
                      [[2.0], [1.5]])
    ours, theirs = f(tl), f(torch)
    assert [a.shape for a in ours] == [b.shape for b in theirs]
    _assert_same(ours, theirs)


# --- dtype promotion --------------------------------------------------------------------------------------------

_PROMOTION_CASES = [
    ("float32 * 0-d float64", lambda L: L.tensor([1.0, 2.0]) * L.tensor(2.0, dtype=L.float64)),
    ("0-d float64 * float32", lambda L: L.tensor(2.0, dtype=L.float64) * L.tensor([1.0, 2.0])),
    ("int32 + 0-d int64", lambda L: L.tensor([1, 2], dtype=L.int32) + L.tensor(2)),
    ("float16 + 0-d float64", lambda L: L.tensor([1.0], dtype=L.float16) + L.tensor(1.0, dtype=L.float64)),
    ("int32 + 0-d float64 (higher category)", lambda L: L.tensor([1], dtype=L.int32) + L.tensor(1.5, dtype=L.float64)),
    ("bool + 0-d int32", lambda L: L.tensor([True]) + L.tensor(1, dtype=L.int32)),
    ("uint8 + 0-d int8", lambda L: L.tensor([1], dtype=L.uint8) + L.tensor(1, dtype=L.int8)),
    ("0-d + 0-d", lambda L: L.tensor(2.0, dtype=L.float64) * L.tensor(2.0)),
    ("where with a 0-d float64", lambda L: L.where(L.tensor([True, False]), L.tensor([1.0, 2.0]),
                                                   L.tensor(2.0, dtype=L.float64))),
    ("maximum with a 0-d float64", lambda L: L.maximum(L.tensor([1.0, 3.0]), L.tensor(2.0, dtype=L.float64))),
    ("pow by a 0-d float64", lambda L: L.tensor([1.0, 3.0]) ** L.tensor(2.0, dtype=L.float64)),
    ("int / 0-d float64", lambda L: L.tensor([1, 3]) / L.tensor(2.0, dtype=L.float64)),
    ("clamp by 0-d float64 bounds", lambda L: L.tensor([0.0, 3.0]).clamp(L.tensor(1.0, dtype=L.float64),
                                                                         L.tensor(2.0, dtype=L.float64))),
]


# Defect: a 0-d tensor widened a dimensioned operand of the same category (float32 * 0-d float64 gave float64,
# int32 + 0-d int64 gave int64): PyTorch lets 0-d tensors decide only a higher category. Root cause:
# dtypes.promote saw dtypes only; the mixed-dtype paths now use dtypes.promote_arrays.
@pytest.mark.parametrize("name, case", _PROMOTION_CASES, ids=[c[0] for c in _PROMOTION_CASES])
def test_zero_dim_tensor_promotion_matches_pytorch(name, case, torch):
    ours, theirs = case(tl), case(torch)
    assert str(theirs.dtype) == f"torch.{ours.dtype}", name
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


# --- Python protocols -------------------------------------------------------------------------------------------

# Defect: pickling a non-leaf raised PicklingError about `mul` (it tried to pickle the graph). Root cause: the
# default slot state included the tape entry; PyTorch pickles the values as a leaf with requires_grad.
def test_pickling_a_non_leaf_gives_a_leaf_with_its_values(torch):
    import pickle
    for lib in (tl, torch):
        y = _leaf(lib, [1.0, 2.0]) * 2
        z = pickle.loads(pickle.dumps(y))
        assert z.is_leaf and z.requires_grad and z.grad_fn is None, lib.__name__
        np.testing.assert_array_equal(_np(z), [2.0, 4.0])
        (z * 3).sum().backward()
        np.testing.assert_array_equal(_np(z.grad), [3.0, 3.0])


def test_pickling_and_deepcopy_of_a_leaf_keep_values_and_requires_grad():
    import copy
    import pickle
    x = _leaf(tl, [1.0, 2.0])
    (x * x).sum().backward()
    for y in (pickle.loads(pickle.dumps(x)), copy.deepcopy(x)):
        assert y is not x and y.is_leaf and y.requires_grad
        np.testing.assert_array_equal(y.numpy(), [1.0, 2.0])
    np.testing.assert_array_equal(copy.deepcopy(x).grad.numpy(), [2.0, 4.0])  # deepcopy keeps .grad, as PyTorch
