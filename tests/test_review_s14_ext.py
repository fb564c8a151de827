"""Review (session 14) of extending and inspecting autograd as PyTorch's docs teach it, with PyTorch as the oracle
where it applies: custom Functions in the newer setup_context style and with once_differentiable, torch.autograd's
gradcheck/gradgradcheck and functional.jacobian/hessian/vjp, module full backward hooks, and the tensor methods the
docs' examples use (index_add_, trace). Found by tests/compat/custom_function_gradcheck.py and
tests/compat/hooks_per_sample_grads.py."""
import warnings

import numpy as np
import pytest

import tinygrad_lite as tl


def _np(t):
    return None if t is None else t.detach().numpy()


def _leaf(lib, values):
    return lib.tensor(np.array(values, dtype=np.float64), requires_grad=True)


# --- custom Functions: the setup_context style ------------------------------------------------------------------

def _linear_function(lib):
    class LinearFunction(lib.autograd.Function):
        @staticmethod
        def forward(input, weight, bias=None):
            output = input.mm(weight.t())
            if bias is not None:
                output += bias.unsqueeze(0).expand_as(output)
            return output

        @staticmethod
        def setup_context(ctx, inputs, output):
            input, weight, bias = inputs
            ctx.save_for_backward(input, weight, bias)

        @staticmethod
        def backward(ctx, grad_output):
            input, weight, bias = ctx.saved_tensors
            ctx.seen = ctx.needs_input_grad
            gi = grad_output.mm(weight) if ctx.needs_input_grad[0] else None
            gw = grad_output.t().mm(input) if ctx.needs_input_grad[1] else None
            gb = grad_output.sum(0) if bias is not None and ctx.needs_input_grad[2] else None
            return gi, gw, gb
    return LinearFunction


# Defect: forward without ctx plus setup_context(ctx, inputs, output) was called as forward(ctx, ...): TypeError.
# And forward's defaults must be bound (inputs and needs_input_grad have one entry per parameter, as PyTorch).
@pytest.mark.oracle
def test_setup_context_style_matches_torch(torch):
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((4, 3)), rng.standard_normal((2, 3)), rng.standard_normal(2)
    res = []
    for lib in (tl, torch):
        F = _linear_function(lib)
        xt, wt, bt = lib.tensor(x), lib.tensor(w, requires_grad=True), lib.tensor(b, requires_grad=True)
        F.apply(xt, wt, bt).pow(2).sum().backward()
        wt2 = lib.tensor(w, requires_grad=True)
        F.apply(xt, wt2).sum().backward()  # bias defaulted: setup_context still unpacks three inputs
        res.append((_np(wt.grad), _np(bt.grad), _np(wt2.grad)))
    for a, e in zip(*res):
        np.testing.assert_allclose(a, e, rtol=1e-12)
    xt = tl.tensor(x, requires_grad=True)
    assert tl.autograd.gradcheck(_linear_function(tl).apply, (xt, tl.tensor(w, requires_grad=True),
                                                               tl.tensor(b, requires_grad=True)))
    assert tl.autograd.gradgradcheck(_linear_function(tl).apply, (xt, tl.tensor(w, requires_grad=True)))


def test_setup_context_style_bad_arguments_name_the_function():
    F = _linear_function(tl)
    with pytest.raises(TypeError, match=r"LinearFunction\.apply.*forward\(input, weight, bias=None\)"):
        F.apply(tl.ones(2, 3))


# Defect: torch.autograd.function.once_differentiable did not exist; its backward must run off the tape, and
# differentiating its result must raise rather than silently give zeros.
def test_once_differentiable_runs_once_and_refuses_double_backward():
    from tinygrad_lite.autograd.function import once_differentiable

    class Cube(tl.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x ** 3

        @staticmethod
        @once_differentiable
        def backward(ctx, g):
            x, = ctx.saved_tensors
            return 3 * x ** 2 * g

    x = _leaf(tl, [1.0, -2.0, 0.5])
    assert tl.autograd.gradcheck(Cube.apply, (x,))
    (g,) = tl.autograd.grad(Cube.apply(x).sum(), x)
    np.testing.assert_allclose(_np(g), 3 * _np(x) ** 2)
    v = _leaf(tl, [1.0, 1.0, 1.0])  # a grad_output that requires grad: the result is on the tape, and refuses
    (g,) = tl.autograd.grad(Cube.apply(x), x, grad_outputs=v, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable.*Cube"):
        g.sum().backward()


# --- torch.autograd.gradcheck / gradgradcheck / functional ------------------------------------------------------

# Defect: `from torch.autograd import gradcheck, gradgradcheck` and torch.autograd.functional failed (ImportError /
# AttributeError): they were only tl.gradcheck.
def test_autograd_exports_gradcheck_and_functional():
    from tinygrad_lite.autograd import gradcheck, gradgradcheck
    from tinygrad_lite.autograd.functional import hessian, jacobian, vjp
    assert gradcheck is tl.gradcheck and gradgradcheck is tl.gradgradcheck
    assert tl.autograd.functional.jacobian is jacobian and callable(hessian) and callable(vjp)
    with pytest.raises(AttributeError, match="tinygrad_lite.autograd.*no_such"):
        tl.autograd.no_such


@pytest.mark.oracle
def test_functional_jacobian_hessian_vjp_match_torch(torch):
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((2, 3)), rng.standard_normal(3)
    got = []
    for lib in (tl, torch):
        A, B = lib.tensor(a), lib.tensor(b)
        fn = lib.autograd.functional
        J = fn.jacobian(lambda x: (x * x).tanh(), A)
        Jt = fn.jacobian(lambda x, y: (x * y.exp(), (x ** 2).sum(1)), (A, B))
        H = fn.hessian(lambda x: (x.sin() * x).sum(), B)
        Ht = fn.hessian(lambda x, y: (x * y ** 3).sum(), (A, B))
        out, v = fn.vjp(lambda x: x ** 3, A, lib.ones(2, 3, dtype=lib.float64))
        got.append([J, *[j for row in Jt for j in row], H, *[h for row in Ht for h in row], out, v])
        assert not J.requires_grad and not H.requires_grad
    for mine, theirs in zip(*got):
        assert tuple(mine.shape) == tuple(theirs.shape)
        np.testing.assert_allclose(_np(mine), _np(theirs), rtol=1e-12, atol=1e-14)


def test_functional_jacobian_create_graph_differentiates_through():
    x = _leaf(tl, [1.0, 2.0])
    J = tl.autograd.functional.jacobian(lambda v: v ** 3, x, create_graph=True)
    assert J.requires_grad
    J.sum().backward()  # d/dx sum(diag(3 x^2)) = 6 x
    np.testing.assert_allclose(_np(x.grad), [6.0, 12.0])
    (g,) = tl.autograd.grad(tl.autograd.functional.hessian(lambda v: (v ** 4).sum(), x, create_graph=True).sum(), x)
    np.testing.assert_allclose(_np(g), 24 * _np(x))


def test_functional_errors_name_the_function_and_shapes():
    with pytest.raises(TypeError, match=r"functional\.jacobian: inputs must be a Tensor or a tuple of Tensors"):
        tl.autograd.functional.jacobian(lambda x: x, [1.0, 2.0])
    with pytest.raises(RuntimeError, match=r"hessian: the function must return a Tensor with a single element, got "
                                           r"shape \(2,\)"):
        tl.autograd.functional.hessian(lambda x: x * 2, tl.ones(2, dtype=tl.float64))
    with pytest.raises(RuntimeError, match=r"jacobian\(strict=True\): output 0 \(shape \(2,\)\) is independent of "
                                           r"input 1 \(shape \(3,\)\)"):
        tl.autograd.functional.jacobian(lambda x, y: x * 2, (tl.ones(2), tl.ones(3)), strict=True)


# --- module full backward hooks ---------------------------------------------------------------------------------

def _hooked_net(lib, w1, w2):
    net = lib.nn.Sequential(lib.nn.Linear(3, 4, bias=False), lib.nn.Tanh(), lib.nn.Linear(4, 2, bias=False)).double()
    with lib.no_grad():
        net[0].weight.copy_(lib.tensor(w1))
        net[2].weight.copy_(lib.tensor(w2))
    return net


# Defect: nn.Module.register_full_backward_hook did not exist.
@pytest.mark.oracle
def test_full_backward_hook_matches_torch(torch):
    rng = np.random.default_rng(2)
    w1, w2, x = rng.standard_normal((4, 3)), rng.standard_normal((2, 4)), rng.standard_normal((5, 3))
    res = []
    for lib in (tl, torch):
        net = _hooked_net(lib, w1, w2)
        seen = {}

        def inspect(m, gin, gout):
            seen["last"] = (_np(gin[0]), _np(gout[0]))

        def first(m, gin, gout):
            seen["first"] = (gin[0] is None, _np(gout[0]))

        def clip(m, gin, gout):
            return tuple(g.clamp(-0.1, 0.1) for g in gin)

        net[2].register_full_backward_hook(inspect)
        h = net[1].register_full_backward_hook(clip)
        net[0].register_full_backward_hook(first)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the first layer's hook fires on outputs only: both frameworks warn
            net(lib.tensor(x)).pow(2).sum().backward()
            g1 = _np(net[0].weight.grad)
            h.remove()
            net.zero_grad()
            xin = lib.tensor(x, requires_grad=True)
            net(xin).pow(2).sum().backward()
        res.append((seen["last"], seen["first"][0], seen["first"][1], g1, _np(net[0].weight.grad), _np(xin.grad)))
    (last, none, first_out, g1, g2, gx), (elast, enone, efirst_out, eg1, eg2, egx) = res
    np.testing.assert_allclose(last[0], elast[0], rtol=1e-12)
    np.testing.assert_allclose(last[1], elast[1], rtol=1e-12)
    assert none is enone is False  # the second pass: the input requires grad
    for a, e in ((first_out, efirst_out), (g1, eg1), (g2, eg2), (gx, egx)):
        np.testing.assert_allclose(a, e, rtol=1e-12, atol=1e-14)
    assert not np.allclose(g1, g2)  # the clip changed the gradient, and its removal undid that


def test_full_backward_hook_without_input_grad_fires_on_outputs_and_warns():
    lin = tl.nn.Linear(2, 2).double()
    seen = []
    lin.register_full_backward_hook(lambda m, gin, gout: seen.append((gin, tuple(gout[0].shape))))
    with pytest.warns(UserWarning, match="Full backward hook on Linear is firing"):
        lin(tl.ones(3, 2, dtype=tl.float64)).sum().backward()
    assert seen == [((None,), (3, 2))]
    lin.register_full_backward_hook(lambda m, gin, gout: (tl.ones(3, 2),))
    with pytest.raises(RuntimeError, match="backward hook of Linear: .*no input requires gradient"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            lin(tl.ones(3, 2, dtype=tl.float64)).sum().backward()


def test_full_backward_hook_wrong_result_is_named():
    lin = tl.nn.Linear(2, 2).double()
    lin.register_full_backward_hook(lambda m, gin, gout: (tl.ones(5),))
    with pytest.raises(RuntimeError, match=r"backward hook of Linear returned a gradient of shape \(5,\) for input 0 "
                                           r"of shape \(3, 2\)"):
        lin(tl.ones(3, 2, dtype=tl.float64, requires_grad=True)).sum().backward()


def test_full_backward_hook_is_transparent_to_gradients_and_gradcheck():
    lin = tl.nn.Linear(3, 2).double()
    lin.register_full_backward_hook(lambda m, gin, gout: None)
    x = tl.tensor(np.random.default_rng(3).standard_normal((4, 3)), requires_grad=True)
    assert tl.gradcheck(lambda t: lin(t).tanh(), (x,))
    assert tl.gradgradcheck(lambda t: lin(t).tanh(), (x,))


# --- tensor methods the docs' examples use ---------------------------------------------------------------------

# Defect: Tensor.index_add_ / index_add (the docs' mark_non_differentiable Sort example) did not exist.
@pytest.mark.oracle
def test_index_add_matches_torch_and_is_differentiable(torch):
    rng = np.random.default_rng(4)
    base, src = rng.standard_normal((3, 4)), rng.standard_normal((3, 5))
    idx = np.array([3, 0, 3, 1, 3])
    res = []
    for lib in (tl, torch):
        b, s = lib.tensor(base, requires_grad=True), lib.tensor(src, requires_grad=True)
        out = b.index_add(1, lib.tensor(idx), s, alpha=2.5)
        (out * lib.tensor(np.arange(12.0).reshape(3, 4))).sum().backward()
        z = lib.zeros(4, dtype=lib.float64)
        z.index_add_(0, lib.tensor(idx[:3]), lib.tensor(src[0, :3]))
        res.append((_np(out), _np(b.grad), _np(s.grad), _np(z)))
    for a, e in zip(*res):
        np.testing.assert_allclose(a, e, rtol=1e-12)
    b, s = tl.tensor(base, requires_grad=True), tl.tensor(src, requires_grad=True)
    assert tl.gradcheck(lambda u, v: u.index_add(1, tl.tensor(idx), v), (b, s))
    assert tl.gradgradcheck(lambda u, v: u.index_add(1, tl.tensor(idx), v) ** 2, (b, s))


def test_index_add_errors_name_the_op_and_shapes():
    with pytest.raises(RuntimeError, match=r"index_add: source of shape \(2, 2\) does not match the tensor of shape "
                                           r"\(3, 4\) with dim 1 indexed by 3 indices: expected \(3, 3\)"):
        tl.zeros(3, 4).index_add(1, tl.tensor([0, 1, 2]), tl.zeros(2, 2))
    with pytest.raises(IndexError, match=r"index_add: index values must be in \[0, 3\) along dim 0"):
        tl.zeros(3, 4).index_add(0, tl.tensor([0, 3]), tl.zeros(2, 4))
    with pytest.raises(RuntimeError, match=r"index_add: self \(float32\) and source \(float64\) must have the same"):
        tl.zeros(3).index_add(0, tl.tensor([0]), tl.zeros(1, dtype=tl.float64))


# Defect: Tensor.trace / tl.trace did not exist.
@pytest.mark.oracle
def test_trace_matches_torch(torch):
    rng = np.random.default_rng(5)
    for shape in ((3, 3), (2, 4), (4, 2), (0, 3)):
        a = rng.standard_normal(shape)
        mine, theirs = tl.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
        tl.trace(mine).backward()
        theirs.trace().backward()
        np.testing.assert_allclose(mine.trace().item(), theirs.trace().item(), rtol=1e-12)
        np.testing.assert_array_equal(_np(mine.grad), _np(theirs.grad))
    assert tl.tensor([[1, 2], [3, 4]]).trace().item() == 5
    with pytest.raises(RuntimeError, match=r"trace: input must be a matrix \(2-D\), got a 1-D tensor of shape \(3,\)"):
        tl.ones(3).trace()
