"""The activations beyond ReLU/GELU (SiLU ... PReLU) and triu/tril/unbind: PyTorch as the oracle for values and
gradients in float64 (kink points included, where the gradient convention is PyTorch's), signatures and reprs;
gradcheck and Hypothesis properties at smooth points; tl.compile replaying a causal attention step."""
import inspect
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st, HealthCheck

import tinygrad_lite as tl
from tinygrad_lite import nn
from tinygrad_lite.nn import functional as F
from tinygrad_lite.testing import assert_gradients_match, tensors

from test_compile import _assert_identical

oracle = pytest.mark.oracle

# (functional name, Module name, positional arguments shared by both)
ELEMENTWISE = [("silu", "SiLU", ()), ("mish", "Mish", ()), ("elu", "ELU", ()), ("elu", "ELU", (0.5,)),
               ("selu", "SELU", ()), ("celu", "CELU", ()), ("celu", "CELU", (0.5,)),
               ("softplus", "Softplus", ()), ("softplus", "Softplus", (2.0, 6.0)),
               ("softplus", "Softplus", (0.5, 10.0)), ("hardtanh", "Hardtanh", ()),
               ("hardtanh", "Hardtanh", (-2.0, 3.0)), ("relu6", "ReLU6", ()), ("hardsigmoid", "Hardsigmoid", ()),
               ("hardswish", "Hardswish", ()), ("logsigmoid", "LogSigmoid", ()), ("softsign", "Softsign", ()),
               ("tanhshrink", "Tanhshrink", ()), ("threshold", "Threshold", (0.5, -2.0)),
               ("threshold", "Threshold", (1.0, 20.0))]
IDS = [f"{f}{args}" for f, _, args in ELEMENTWISE]
# every kink of the cases above (0, +-1, -2, 3, +-3, 6, 0.5, softplus's beta*x == threshold at 3 and 20), the
# stability extremes and a few tiny values; then random ones
KINKS = [0.0, -0.0, 1.0, -1.0, -2.0, 3.0, -3.0, 6.0, 0.5, 20.0]
SPECIAL = KINKS + [-20.0, 50.0, -50.0, 1000.0, -1000.0, 1e-10, -1e-10, 1e-5, -1e-5]
# elu/selu/celu compute exp(x) - 1 (there is no expm1 primitive): PyTorch's expm1 differs by up to one rounding of
# 1.0 (1.1e-16 absolute, times alpha * scale) where the result is tiny; their gradients are exact
VALUE_ATOL = {"elu": 3e-16, "selu": 4e-16, "celu": 3e-16}


def _points(seed=0):
    rng = np.random.default_rng(seed)
    return np.concatenate([SPECIAL, rng.standard_normal(45) * 3, rng.uniform(-7, 7, 20)])


def _smooth(shape, seed=0, margin=1e-3):
    """Random float64 values at least `margin` away from every kink."""
    x = np.random.default_rng(seed).standard_normal(shape) * 3
    for k in KINKS + [-6.0]:
        near = np.abs(x - k) < margin
        x[near] = k + 2 * margin
    return tl.tensor(x, requires_grad=True)


def _pair(torch, ours, theirs, x, rtol=1e-12, atol=0.0, grad_rtol=1e-12, grad_atol=0.0):
    """ours(tl leaf) vs theirs(torch leaf) on the array x: values and the gradient of a random projection."""
    a, t = tl.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out_a, out_t = ours(a), theirs(t)
    g = np.random.default_rng(1).standard_normal(tuple(out_t.shape))
    (out_a * tl.tensor(g)).sum().backward()
    (out_t * torch.tensor(g)).sum().backward()
    assert out_a.dtype == np.float64 and tuple(out_a.shape) == tuple(out_t.shape)
    np.testing.assert_allclose(out_a.numpy(), out_t.detach().numpy(), rtol=rtol, atol=atol, err_msg="values")
    np.testing.assert_allclose(a.grad.numpy(), t.grad.numpy(), rtol=grad_rtol, atol=grad_atol, err_msg="grad")
    return a, t


@oracle
@pytest.mark.parametrize("fname,mname,args", ELEMENTWISE, ids=IDS)
def test_values_and_gradients_match_pytorch_at_kinks_extremes_and_random_points(torch, fname, mname, args):
    x = _points()
    tol = dict(atol=VALUE_ATOL.get(fname, 0.0))
    if fname == "hardsigmoid":  # PyTorch's CPU kernel multiplies by the float constant 1/6 even in float64
        tol.update(grad_rtol=1e-7)
    tf = getattr(torch.nn.functional, fname)
    _pair(torch, lambda a: getattr(F, fname)(a, *args), lambda t: tf(t, *args), x, **tol)
    _pair(torch, getattr(nn, mname)(*args), getattr(torch.nn, mname)(*args), x.reshape(4, 3, 7), **tol)


def test_hardsigmoid_gradient_is_exactly_one_sixth_inside():
    x = tl.tensor([-3.0, -2.5, 0.0, 2.5, 3.0], dtype=tl.float64, requires_grad=True)
    F.hardsigmoid(x).sum().backward()
    assert x.grad.numpy().tolist() == [0.0, 1 / 6, 1 / 6, 1 / 6, 0.0]


def test_large_inputs_stay_finite_in_values_and_gradients():
    x = tl.tensor([-1e300, -1000.0, -50.0, 50.0, 1000.0, 1e300], dtype=tl.float64, requires_grad=True)
    for fname, _, args in ELEMENTWISE:
        x.grad = None
        out = getattr(F, fname)(x, *args)
        out.sum().backward()
        assert np.isfinite(x.grad.numpy()).all(), fname
        assert not np.isnan(out.numpy()).any(), fname
    x.grad = None
    F.logsigmoid(x).sum().backward()
    np.testing.assert_array_equal(F.logsigmoid(x).numpy()[1:5], [-1000.0, -50.0, -math.exp(-50.0), 0.0])
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 1.0, 1.0, math.exp(-50.0) / (1 + math.exp(-50.0)), 0, 0])


@oracle
@pytest.mark.parametrize("shape,dim", [((4, 6), -1), ((4, 6), 0), ((2, 4, 3), 1), ((8,), 0)])
def test_glu_and_softmin_match_pytorch(torch, shape, dim):
    x = np.random.default_rng(3).standard_normal(shape) * 4
    x.flat[:2] = [1000.0, -1000.0]  # softmin stays finite; glu's sigmoid saturates
    _pair(torch, lambda a: F.glu(a, dim), lambda t: torch.nn.functional.glu(t, dim), x)
    _pair(torch, nn.GLU(dim), torch.nn.GLU(dim), x)
    _pair(torch, lambda a: F.softmin(a, dim), lambda t: torch.nn.functional.softmin(t, dim), x, rtol=1e-12,
          atol=1e-300)
    _pair(torch, nn.Softmin(dim), torch.nn.Softmin(dim), x, atol=1e-300)


@oracle
@pytest.mark.parametrize("num,shape", [(1, (4, 3, 5)), (3, (4, 3, 5)), (3, (4, 3)), (1, (6,)), (1, ()),
                                       (2, (2, 2, 3, 3))])
def test_prelu_matches_pytorch_values_input_and_weight_gradients(torch, num, shape):
    rng = np.random.default_rng(4)
    x = rng.standard_normal(shape) * 3
    if x.ndim:
        x.flat[:3] = [0.0, -0.0, -1000.0]  # the kink: the weight's side owns 0 in the input gradient
    w = rng.uniform(-1, 1, num)
    m, tm = nn.PReLU(num).double(), torch.nn.PReLU(num).double()
    m.load_state_dict({"weight": w})
    with torch.no_grad():
        tm.weight.copy_(torch.tensor(w))
    _pair(torch, m, tm, x)
    np.testing.assert_allclose(m.weight.grad.numpy(), tm.weight.grad.numpy(), rtol=1e-12, err_msg="weight grad")
    wl, wt = tl.tensor(w, requires_grad=True), torch.tensor(w, requires_grad=True)
    _pair(torch, lambda a: F.prelu(a, wl), lambda t: torch.nn.functional.prelu(t, wt), x)
    np.testing.assert_allclose(wl.grad.numpy(), wt.grad.numpy(), rtol=1e-12, err_msg="F.prelu weight grad")


@oracle
def test_errors_carry_pytorchs_messages(torch):
    tf = torch.nn.functional
    cases = [(lambda F_, T: F_.prelu(T.ones(2, 4), T.ones(3)), RuntimeError),
             (lambda F_, T: F_.prelu(T.ones(2, 3), T.ones(1, 3)), RuntimeError),
             (lambda F_, T: F_.glu(T.ones(2, 5)), RuntimeError),
             (lambda F_, T: F_.glu(T.ones(())), RuntimeError),
             (lambda F_, T: F_.celu(T.ones(2), 0.0), RuntimeError),
             (lambda F_, T: F_.hardtanh(T.ones(2), 1.0, -1.0), ValueError),
             (lambda F_, T: T.triu(T.ones(3)), RuntimeError), (lambda F_, T: T.tril(T.ones(())), RuntimeError)]
    for i, (call, kind) in enumerate(cases):
        with pytest.raises(kind) as theirs:
            call(tf, torch)
        with pytest.raises(kind) as ours:
            call(F, tl)
        assert str(theirs.value) in str(ours.value), (i, str(ours.value))
    with pytest.raises(RuntimeError, match=r"parameter numbers = 3 and channel size = 4.*input shape \(2, 4\)"):
        nn.PReLU(3)(tl.ones(2, 4))
    with pytest.raises(AssertionError, match="must be greater than min_val"):
        nn.Hardtanh(1.0, -1.0)


def _all_modules(n):
    return [n.SiLU(), n.SiLU(True), n.Mish(), n.Mish(inplace=True), n.ELU(), n.ELU(0.5, True), n.SELU(),
            n.SELU(True), n.CELU(), n.CELU(2.0, True), n.Softplus(), n.Softplus(2, 10), n.Softplus(beta=0.5),
            n.Hardtanh(), n.Hardtanh(-2, 3, True), n.Hardtanh(0.0, 1.0), n.ReLU6(), n.ReLU6(True), n.Hardsigmoid(),
            n.Hardsigmoid(True), n.Hardswish(), n.Hardswish(True), n.LogSigmoid(), n.Softsign(), n.Tanhshrink(),
            n.Threshold(0.1, 20), n.Threshold(0.1, 20.0, True), n.GLU(), n.GLU(0), n.Softmin(), n.Softmin(1),
            n.PReLU(), n.PReLU(3, 0.1), n.Sequential(n.Linear(2, 3), n.PReLU(3), n.SiLU(), n.GLU())]


@oracle
def test_reprs_state_dicts_and_initial_weights_match_pytorch(torch):
    for m, tm in zip(_all_modules(nn), _all_modules(torch.nn)):
        assert repr(m) == repr(tm)
        assert [(k, tuple(v.shape)) for k, v in m.state_dict().items()] == \
               [(k, tuple(v.shape)) for k, v in tm.state_dict().items()], repr(tm)
    np.testing.assert_array_equal(nn.PReLU(3, 0.1).weight.numpy(), torch.nn.PReLU(3, 0.1).weight.detach().numpy())
    assert nn.PReLU(2, dtype=tl.float64).weight.dtype == np.float64 and nn.ReLU6().max_val == 6.0


@oracle
def test_signatures_and_defaults_match_pytorch(torch):
    def params(fn):
        return [(p.name, p.default) for p in inspect.signature(fn).parameters.values()]
    for fname in ("silu", "mish", "elu", "selu", "celu", "hardtanh", "relu6", "hardsigmoid", "hardswish", "softsign",
                  "tanhshrink", "threshold", "glu", "softmin"):
        assert params(getattr(F, fname)) == params(getattr(torch.nn.functional, fname)), fname
    assert params(F.softplus) == [("input", inspect.Parameter.empty), ("beta", 1.0), ("threshold", 20.0)]
    for name in ("SiLU", "Mish", "ELU", "SELU", "CELU", "Softplus", "Hardtanh", "ReLU6", "Hardsigmoid", "Hardswish",
                 "LogSigmoid", "Softsign", "Tanhshrink", "Threshold", "GLU", "Softmin", "PReLU"):
        if "__init__" in vars(getattr(torch.nn, name)):  # (LogSigmoid & co. take Module's *args, **kwargs)
            assert params(getattr(nn, name).__init__) == params(getattr(torch.nn, name).__init__), name
        assert name in nn.__all__
    assert {"silu", "prelu", "glu", "softmin", "logsigmoid"} <= set(F.__all__)


@pytest.mark.parametrize("fname,mname,args", ELEMENTWISE, ids=IDS)
def test_gradcheck_at_smooth_points(fname, mname, args):
    x = _smooth((3, 5))
    assert tl.gradcheck(lambda a: getattr(F, fname)(a, *args), (x,))
    assert tl.gradcheck(getattr(nn, mname)(*args), (x,))


@pytest.mark.parametrize("make,shape", [(lambda: nn.GLU(), (3, 4)), (lambda: nn.GLU(0), (4, 3)),
                                        (lambda: nn.Softmin(1), (3, 4)), (lambda: nn.PReLU(), (3, 4)),
                                        (lambda: nn.PReLU(3, dtype=tl.float64), (2, 3, 4))])
def test_gradcheck_modules_with_parameters(make, shape):
    assert tl.gradcheck(make(), (_smooth(shape),))  # PReLU's weight is checked too


@pytest.mark.parametrize("fname", ["silu", "mish", "elu", "selu", "softplus", "logsigmoid", "softsign", "tanhshrink"])
def test_second_order(fname):
    assert tl.gradgradcheck(getattr(F, fname), (_smooth((2, 3)),))


CLOSED_FORMS = {  # NumPy references written independently of the compositions
    "silu": lambda x: x / (1 + np.exp(-x)),
    "softplus": lambda x: np.where(x > 20, x, np.logaddexp(0, x)),
    "logsigmoid": lambda x: -np.logaddexp(0, -x),
    "mish": lambda x: x * np.tanh(np.logaddexp(0, x)),
    "softsign": lambda x: x / (1 + np.abs(x)),
    "elu": lambda x: np.where(x > 0, x, np.expm1(x)),
}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tensors(elements=st.floats(-30, 30, allow_subnormal=False)), st.sampled_from(sorted(CLOSED_FORMS)))
def test_property_shapes_values_and_gradients(x, fname):
    out = getattr(F, fname)(x)
    assert out.shape == x.shape and out.dtype == x.dtype
    np.testing.assert_allclose(out.numpy(), CLOSED_FORMS[fname](x.numpy()), rtol=1e-12, atol=1e-15)
    assert_gradients_match(getattr(F, fname), x, atol=1e-6, rtol=1e-5)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tensors(min_dims=1), st.integers(0, 3))
def test_property_glu_halves_any_dim(x, dim):
    dim = dim % x.ndim
    x = tl.cat([x, x * 0.5 + 1], dim).detach().requires_grad_()
    a, b = np.split(x.numpy(), 2, axis=dim)
    np.testing.assert_allclose(F.glu(x, dim).numpy(), a / (1 + np.exp(-b)), rtol=1e-12)
    assert_gradients_match(lambda t: F.glu(t, dim), x, atol=1e-6, rtol=1e-5)


def test_float32_stays_float32_and_vmap_jacfwd_agree():
    x32 = tl.randn(3, 4)
    for fname, _, args in ELEMENTWISE:
        assert getattr(F, fname)(x32, *args).dtype == np.float32, fname
    x = _smooth((5,)).detach()

    def chain(t):
        for fname, _, args in ELEMENTWISE:
            t = t + 0.1 * getattr(F, fname)(t, *args)
        return t
    np.testing.assert_allclose(tl.func.jacfwd(chain)(x).numpy(), tl.func.jacrev(chain)(x).numpy(), rtol=1e-12,
                               atol=1e-15)
    xb = _smooth((3, 4, 6), seed=2).detach()
    np.testing.assert_array_equal(tl.func.vmap(lambda t: F.hardswish(F.glu(t)))(xb).numpy(),
                                  F.hardswish(F.glu(xb)).numpy())


# ---------------- triu, tril, unbind, expand_as ----------------
@oracle
@pytest.mark.parametrize("shape", [(4, 4), (3, 5), (5, 2), (2, 3, 4), (2, 1, 4, 3), (0, 3)])
@pytest.mark.parametrize("diagonal", [-5, -2, -1, 0, 1, 2, 6])
def test_triu_tril_values_and_gradients(torch, shape, diagonal):
    rng = np.random.default_rng(5)
    x, g = rng.standard_normal(shape), rng.standard_normal(shape)
    for name, np_fn in (("triu", np.triu), ("tril", np.tril)):
        a, t = tl.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        out = getattr(tl, name)(a, diagonal)
        np.testing.assert_array_equal(out.numpy(), np_fn(x, diagonal))
        np.testing.assert_array_equal(getattr(a, name)(diagonal=diagonal).numpy(), np_fn(x, diagonal))
        np.testing.assert_array_equal(out.numpy(), getattr(torch, name)(t, diagonal).detach().numpy())
        (out * tl.tensor(g)).sum().backward()
        (getattr(torch, name)(t, diagonal) * torch.tensor(g)).sum().backward()
        np.testing.assert_array_equal(a.grad.numpy(), np_fn(g, diagonal))
        np.testing.assert_array_equal(a.grad.numpy(), t.grad.numpy())


def test_triu_keeps_dtype_and_zeroes_non_finite_values():
    x = tl.tensor([[np.inf, 1.0], [np.nan, -np.inf]])
    np.testing.assert_array_equal(tl.triu(x).numpy(), [[np.inf, 1.0], [0.0, -np.inf]])
    assert tl.triu(tl.ones(2, 3, dtype=tl.bool), 1).dtype == np.bool_
    np.testing.assert_array_equal(tl.arange(6).reshape(2, 3).tril(0).numpy(), [[0, 0, 0], [3, 4, 0]])
    with pytest.raises(TypeError, match="triu: diagonal must be an int"):
        tl.triu(x, 0.5)


@oracle
@pytest.mark.parametrize("shape,dim", [((3, 4), 0), ((3, 4), 1), ((3, 4), -1), ((2, 3, 4), 1), ((5,), 0)])
def test_unbind_matches_pytorch_with_gradients(torch, shape, dim):
    x = np.random.default_rng(6).standard_normal(shape)
    a, t = tl.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ours, theirs = tl.unbind(a, dim), torch.unbind(t, dim)
    assert len(ours) == len(theirs) and a.unbind(dim)[0].shape == tuple(theirs[0].shape)
    w = [float(i + 1) for i in range(len(ours))]
    sum(o.sum() * wi for o, wi in zip(ours, w)).backward()
    sum(o.sum() * wi for o, wi in zip(theirs, w)).backward()
    for o, th in zip(ours, theirs):
        np.testing.assert_array_equal(o.numpy(), th.detach().numpy())
    np.testing.assert_array_equal(a.grad.numpy(), t.grad.numpy())
    with pytest.raises(RuntimeError, match="unbind"):
        tl.unbind(tl.tensor(1.0))


def test_expand_as():
    a = tl.tensor([[1.0], [2.0]], requires_grad=True)
    out = a.expand_as(tl.zeros(2, 3))
    assert out.shape == (2, 3)
    out.sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [[3.0], [3.0]])


# ---------------- tl.compile ----------------
class _CausalAttention(nn.Module):
    """One causal self-attention step (GLU feed-forward, PReLU, SiLU), mean-pooled over time into class scores."""

    def __init__(self, d=8, classes=3):
        super().__init__()
        self.qkv = nn.Linear(d, 3 * d)
        self.ff = nn.Sequential(nn.Linear(d, 2 * d), nn.GLU(), nn.PReLU(), nn.Linear(d, classes), nn.SiLU())
        self.d = d

    def forward(self, x):
        T = x.shape[1]
        q, k, v = self.qkv(x).chunk(3, -1)
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(self.d)
        scores = scores.masked_fill(tl.triu(tl.ones(T, T), 1).bool(), float("-inf"))
        return self.ff((F.softmax(scores, -1) @ v).mean(1))


def _sequences(rng):
    return tl.tensor(rng.standard_normal((4, 5, 8)).astype(np.float32)), tl.tensor(rng.integers(0, 3, 4))


def test_compiled_causal_attention_replays_bit_identically():
    step = _assert_identical(_CausalAttention, lambda m: tl.optim.Adam(m.parameters(), lr=0.01), _sequences)
    assert step.stats["replays"] > 0 and step.stats["eager_calls"] == 0


def _every_activation():
    acts = [getattr(nn, m)(*args) for _, m, args in ELEMENTWISE]
    return nn.Sequential(nn.Linear(6, 8), *[s for a in acts for s in (a, nn.Linear(8, 8))], nn.Softmin(1),
                         nn.Linear(8, 8), nn.PReLU(8), nn.Linear(8, 4))


def test_compiled_training_through_every_activation_replays_bit_identically():
    def data(rng):
        return tl.tensor(rng.standard_normal((8, 6)) * 4), tl.tensor(rng.integers(0, 4, 8))
    _assert_identical(lambda: _every_activation().double(), lambda m: tl.optim.SGD(m.parameters(), lr=0.05), data)
