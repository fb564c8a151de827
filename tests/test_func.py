"""tl.func against torch.func (oracle): every transform on a dozen functions, compositions, small models through
functional_call, forward_ad's API, custom Functions in forward mode, PyTorch's second derivative at kinks, and the
errors for bad input."""
import numpy as np
import pytest

import tinygrad_lite as tl
import tinygrad_lite.autograd.forward_ad as fwAD
from tinygrad_lite import func

RNG = np.random.default_rng(0)
X, Y = RNG.standard_normal(4), RNG.standard_normal(4)

# (name, scalar function of (m, x, y) with m the library module: tl or torch)
SCALARS = [
    ("poly", lambda m, x, y: (x * x * y + x).sum()),
    ("trig", lambda m, x, y: (x.sin() * y.cos()).sum()),
    ("exp_log", lambda m, x, y: ((x * 0.3).exp() + (y * y + 1.0).log()).sum()),
    ("tanh_sigmoid", lambda m, x, y: (x.tanh() * y.sigmoid()).sum()),
    ("div_sqrt", lambda m, x, y: (x / (y * y + 2.0).sqrt()).sum()),
    ("pow", lambda m, x, y: ((x * x + 1.0) ** (y * 0.5)).sum()),
    ("softmax", lambda m, x, y: (m.softmax(x * y, 0) * x).sum()),
    ("logsumexp", lambda m, x, y: m.logsumexp(x + y, 0)),
    ("matmul", lambda m, x, y: (x.reshape(2, 2) @ y.reshape(2, 2)).sum() ** 2),
    ("cumprod", lambda m, x, y: (x.cumprod(0) * y).sum()),
    ("kinks", lambda m, x, y: (x.relu() * 3 + x.abs() * y + x.clamp(-0.2, 0.3)).sum() + x.amax()),
    ("max_min", lambda m, x, y: (m.maximum(x, y) * m.minimum(x, y * 2)).sum()),
]
VECTORS = [
    ("tanh_sum", lambda m, x: x.tanh() * x.sum()),
    ("outer", lambda m, x: (x.reshape(4, 1) * x.reshape(1, 4)).exp().sum(0)),
    ("cumsum", lambda m, x: x.cumsum(0) * x),
    ("where", lambda m, x: m.where(x > 0, x * x, -x)),
]


def _t(torch, a):
    return torch.tensor(a)


def _np(t):
    if isinstance(t, (tuple, list)):
        return [_np(x) for x in t]
    return t.detach().numpy() if hasattr(t, "detach") else np.asarray(t)


def _same(ours, theirs, tol=1e-10):
    if isinstance(theirs, (tuple, list)):
        assert len(ours) == len(theirs)
        for o, t in zip(ours, theirs):
            _same(o, t, tol)
        return
    np.testing.assert_allclose(_np(ours), _np(theirs), rtol=tol, atol=tol)


@pytest.mark.oracle
@pytest.mark.parametrize("name, f", SCALARS, ids=[s[0] for s in SCALARS])
def test_grad_vjp_jvp_hessian_match_torch_func(torch, name, f):
    tf = torch.func
    x, y, xt, yt = tl.tensor(X), tl.tensor(Y), _t(torch, X), _t(torch, Y)
    _same(func.grad(lambda a, b: f(tl, a, b), argnums=(0, 1))(x, y),
          tf.grad(lambda a, b: f(torch, a, b), argnums=(0, 1))(xt, yt))
    g, v = func.grad_and_value(lambda a: f(tl, a, y))(x)
    gt, vt = tf.grad_and_value(lambda a: f(torch, a, yt))(xt)
    _same([g, v], [gt, vt])
    _same(func.hessian(lambda a: f(tl, a, y))(x), tf.hessian(lambda a: f(torch, a, yt))(xt))
    _same(func.jvp(func.grad(lambda a: f(tl, a, y)), (x,), (y,)),  # forward over reverse: an HVP
          tf.jvp(tf.grad(lambda a: f(torch, a, yt)), (xt,), (yt,)))
    _same(func.grad(lambda a: func.grad(lambda b: f(tl, b, y))(a).sum())(x),  # reverse over reverse
          tf.grad(lambda a: tf.grad(lambda b: f(torch, b, yt))(a).sum())(xt))


@pytest.mark.oracle
@pytest.mark.parametrize("name, f", VECTORS, ids=[v[0] for v in VECTORS])
def test_jacobians_match_torch_func(torch, name, f):
    tf = torch.func
    x, xt, v, vt = tl.tensor(X), _t(torch, X), tl.tensor(Y), _t(torch, Y)
    _same(func.jacrev(lambda a: f(tl, a))(x), tf.jacrev(lambda a: f(torch, a))(xt))
    _same(func.jacfwd(lambda a: f(tl, a))(x), tf.jacfwd(lambda a: f(torch, a))(xt))
    _same(func.jacfwd(func.jacfwd(lambda a: f(tl, a)))(x), tf.jacfwd(tf.jacfwd(lambda a: f(torch, a)))(xt))
    _same(func.jvp(lambda a: f(tl, a), (x,), (v,)), tf.jvp(lambda a: f(torch, a), (xt,), (vt,)))
    out, vjp_fn = func.vjp(lambda a: f(tl, a), x)
    out_t, vjp_t = tf.vjp(lambda a: f(torch, a), xt)
    _same([out, vjp_fn(v)[0]], [out_t, vjp_t(vt)[0]])


@pytest.mark.oracle
def test_functional_call_gradients_of_a_model_match_torch(torch):
    tf = torch.func
    ours = tl.nn.Sequential(tl.nn.Linear(4, 3), tl.nn.Tanh(), tl.nn.Linear(3, 2))
    theirs = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh(), torch.nn.Linear(3, 2)).double()
    params = {k: tl.tensor(RNG.standard_normal(tuple(v.shape))) for k, v in ours.named_parameters()}
    params_t = {k: _t(torch, v.numpy()) for k, v in params.items()}
    xb = RNG.standard_normal((5, 4))

    def loss(m, module, p, x):
        return (func.functional_call if m is tl else tf.functional_call)(module, p, (x,)).pow(2).mean()
    g = func.grad(lambda p: loss(tl, ours, p, tl.tensor(xb)))(params)
    gt = tf.grad(lambda p: loss(torch, theirs, p, _t(torch, xb)))(params_t)
    assert set(g) == set(gt)
    for k in g:
        _same(g[k], gt[k])
    assert all(v is p for v, p in zip(ours.parameters(), ours.parameters()))  # the module is restored
    h = func.hessian(lambda w: loss(tl, ours, dict(params, **{"2.bias": w}), tl.tensor(xb)))(params["2.bias"])
    ht = tf.hessian(lambda w: loss(torch, theirs, dict(params_t, **{"2.bias": w}), _t(torch, xb)))(params_t["2.bias"])
    _same(h, ht)


def test_grad_of_a_kink_is_differentiable_as_in_pytorch():
    """The first derivative of relu/abs/clamp/amax stays on the tape; its own derivative is zero."""
    x = tl.tensor([-0.5, 0.1, 0.25, 0.9], requires_grad=True)
    (g,) = tl.autograd.grad((x.relu() * 3 + x.abs() + x.clamp(-0.2, 0.3)).sum() + x.amax(), x, create_graph=True)
    assert g.requires_grad
    np.testing.assert_array_equal(g.numpy(), [-1.0 + 0, 3 + 1 + 1, 3 + 1 + 1, 3 + 1 + 0 + 1])
    (h,) = tl.autograd.grad((g * g).sum(), x)
    np.testing.assert_array_equal(h.numpy(), np.zeros(4))


def test_forward_ad_api():
    x, v = tl.tensor(X), tl.tensor(Y)
    with pytest.raises(RuntimeError, match="no dual level"):
        fwAD.make_dual(x, v)
    with fwAD.dual_level():
        with pytest.raises(ValueError, match="shape and dtype"):
            fwAD.make_dual(x, tl.tensor(Y[:3]))
        d = fwAD.make_dual(x, v)
        p, t = fwAD.unpack_dual(d * 2.0)
        np.testing.assert_array_equal(t.numpy(), 2 * Y)
        assert fwAD.unpack_dual(p).tangent is None and fwAD.unpack_dual(x).tangent is None
        assert fwAD.unpack_dual(d).primal.numpy().tolist() == X.tolist()
    assert fwAD.unpack_dual(d).tangent is None  # the level is closed


class _Cube(tl.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.x = x
        return x ** 3

    @staticmethod
    def backward(ctx, g):
        return g * 3 * ctx.x ** 2


class _CubeFwd(_Cube):
    @staticmethod
    def jvp(ctx, t):
        return t * 3 * ctx.x ** 2


def test_custom_function_in_forward_mode_needs_its_jvp():
    x, v = tl.tensor(X), tl.tensor(Y)
    with pytest.raises(RuntimeError, match="_Cube: .*does not implement jvp"):
        func.jvp(_Cube.apply, (x,), (v,))
    _, t = func.jvp(_CubeFwd.apply, (x,), (v,))
    np.testing.assert_allclose(t.numpy(), 3 * X ** 2 * Y)


@pytest.mark.parametrize("call, match", [
    (lambda: func.grad(lambda a: a.sum(), argnums=2)(tl.tensor(X)), "argnums 2 is out of range"),
    (lambda: func.grad(lambda a: a.sum(), argnums=(0, 0))(tl.tensor(X)), "repeats"),
    (lambda: func.grad(lambda a: a * 2)(tl.tensor(X)), "scalar Tensor"),
    (lambda: func.grad(lambda a: a.sum())(X), "must be Tensors"),
    (lambda: func.grad(lambda a: a.sum())(tl.tensor([1, 2])), "floating point"),
    (lambda: func.jvp(lambda a: a, (tl.tensor(X),), (tl.tensor(Y[:2]),)), "tangent 0 must be a Tensor of the"),
    (lambda: func.jvp(lambda a: a, [tl.tensor(X)], [tl.tensor(Y)]), "must be tuples"),
    (lambda: func.vjp(lambda a: a * 2, tl.tensor(X))[1](tl.tensor(Y[:2])), "cotangent 0 must be a Tensor"),
    (lambda: func.grad(lambda a: a.sum(), has_aux=True)(tl.tensor(X)), "pair"),
    (lambda: func.functional_call(tl.nn.Linear(2, 2), {"wieght": tl.tensor(np.eye(2))}, (tl.tensor(X[:2]),)),
     "unexpected key"),
])
def test_bad_input_is_named(call, match):
    with pytest.raises((TypeError, ValueError, RuntimeError), match=match):
        call()


def test_top_level_results_are_off_the_tape_nested_ones_are_not():
    x = tl.tensor(X)
    g = func.grad(lambda a: (a ** 3).sum())(x)
    assert not g.requires_grad and not x.requires_grad
    w = tl.tensor(Y, requires_grad=True)  # closed over: the result depends on it, so it stays differentiable
    g = func.grad(lambda a: (a * a * w).sum())(x)
    assert g.requires_grad
    g.sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), 2 * X)


@pytest.mark.oracle
def test_in_place_operations_carry_the_tangent_as_pytorch(torch):
    """An in-place op on a dual tensor updates its tangent (the raw buffer write alone would leave it stale)."""
    tfw = torch.autograd.forward_ad
    ops = [lambda t, m: t.mul_(3.0), lambda t, m: t.add_(t * t), lambda t, m: t.exp_(),
           lambda t, m: t.__setitem__(0, 5.0), lambda t, m: t.clamp_(0.0, 1.5), lambda t, m: t.fill_(2.0),
           lambda t, m: t.copy_(t.sin()), lambda t, m: t.copy_(t.clone() * 2.0)]
    for op in ops:
        with fwAD.dual_level():
            y = fwAD.make_dual(tl.tensor(X), tl.tensor(Y)) * 1.0
            op(y, tl)
            ours = fwAD.unpack_dual(y)
        with tfw.dual_level():
            yt = tfw.make_dual(torch.tensor(X), torch.tensor(Y)) * 1.0
            op(yt, torch)
            theirs = tfw.unpack_dual(yt)
        np.testing.assert_allclose(ours.primal.numpy(), theirs.primal.numpy(), rtol=1e-12)
        got = np.zeros(4) if ours.tangent is None else ours.tangent.numpy()
        want = np.zeros(4) if theirs.tangent is None else theirs.tangent.numpy()
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
