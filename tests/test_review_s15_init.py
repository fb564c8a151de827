"""Review s15: nn.init's trunc_normal_, orthogonal_, dirac_ and sparse_ (distributions, bounds, orthogonality, since
values come from tl's own generator; dirac_/eye_/constant_ exactly as PyTorch), their errors as PyTorch's, and that
they fill in place without recording, reproducibly under tl.manual_seed."""
import math
import warnings

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite.nn import init


# ---------------- nn.init: trunc_normal_, orthogonal_, dirac_, sparse_ ----------------
def _phi(x):
    return math.exp(-x * x / 2) / math.sqrt(2 * math.pi)


def _Phi(x):
    return (1 + math.erf(x / math.sqrt(2))) / 2


@pytest.mark.parametrize("mean, std, a, b", [(0.0, 1.0, -2.0, 2.0), (0.5, 0.2, 0.0, 1.0), (0.0, 1.0, 2.0, 3.0),
                                             (1.0, 0.02, -2.0, 2.0), (0.0, 1.0, -0.1, 0.1)])
def test_trunc_normal_bounds_and_moments(mean, std, a, b):
    t = tl.empty(300, 200)
    arr = t.numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert init.trunc_normal_(t, mean, std, a, b) is t and t.numpy() is arr and t.dtype == tl.float32
    d = arr.astype(np.float64)
    assert d.min() >= np.float32(a) and d.max() <= np.float32(b)
    al, be = (a - mean) / std, (b - mean) / std
    z = _Phi(be) - _Phi(al)
    want_mean = mean + std * (_phi(al) - _phi(be)) / z
    want_var = std ** 2 * (1 + (al * _phi(al) - be * _phi(be)) / z - ((_phi(al) - _phi(be)) / z) ** 2)
    assert abs(d.mean() - want_mean) < 5 * math.sqrt(want_var / d.size)
    assert d.std() == pytest.approx(math.sqrt(want_var), rel=0.02)


@pytest.mark.oracle
def test_trunc_normal_warning_and_errors_as_torch(torch):
    for lib in (tl, torch):
        with pytest.warns(UserWarning, match=r"mean is more than 2 std from \[a, b\] in nn.init.trunc_normal_"):
            lib.nn.init.trunc_normal_(lib.empty(20), mean=10.0)
        with pytest.raises(RuntimeError, match="uniform_ expects to return a \\[from, to\\) range, but found "
                                               "from=2 > to=-2"):
            lib.nn.init.trunc_normal_(lib.empty(3), a=2.0, b=-2.0)
        with pytest.raises(ZeroDivisionError):
            lib.nn.init.trunc_normal_(lib.empty(3), std=0.0)


@pytest.mark.parametrize("shape, gain", [((6, 6), 1.0), ((4, 9), 2.0), ((9, 4), 0.5), ((8, 2, 3, 3), 1.0),
                                         ((3, 5, 2), 1.3)])
def test_orthogonal_rows_or_columns_are_orthonormal(shape, gain):
    t = tl.empty(*shape, dtype=tl.float64)
    init.orthogonal_(t, gain=gain)
    w = t.numpy().reshape(shape[0], -1) / gain
    small = min(w.shape)
    gram = w @ w.T if w.shape[0] == small else w.T @ w
    np.testing.assert_allclose(gram, np.eye(small), atol=1e-12)


@pytest.mark.oracle
def test_init_errors_as_torch(torch):
    for lib in (tl, torch):
        ini = lib.nn.init
        with pytest.raises(ValueError, match="Only tensors with 2 or more dimensions are supported"):
            ini.orthogonal_(lib.empty(3))
        with pytest.raises(ValueError, match="Only tensors with 3, 4, or 5 dimensions are supported"):
            ini.dirac_(lib.empty(3, 3))
        with pytest.raises(ValueError, match="dim 0 must be divisible by groups"):
            ini.dirac_(lib.empty(5, 2, 3), groups=2)
        with pytest.raises(ValueError, match="Only tensors with 2 dimensions are supported"):
            ini.sparse_(lib.empty(3, 2, 2), 0.5)
        with pytest.raises(ValueError, match="Only tensors with 2 dimensions are supported"):
            ini.eye_(lib.empty(3))
        assert ini.orthogonal_(lib.empty(0, 3)).shape == (0, 3)


@pytest.mark.oracle
@pytest.mark.parametrize("shape, groups", [((4, 4, 3), 1), ((6, 4, 3, 3), 2), ((3, 5, 2, 4), 1),
                                           ((8, 2, 3, 3, 3), 4)])
def test_dirac_eye_constant_equal_torch_exactly(torch, shape, groups):
    ours, theirs = tl.ones(*shape), torch.ones(*shape)
    init.dirac_(ours, groups=groups)
    torch.nn.init.dirac_(theirs, groups=groups)
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    for rc in ((3, 5), (5, 3)):
        np.testing.assert_array_equal(init.eye_(tl.ones(*rc)).numpy(), torch.nn.init.eye_(torch.ones(*rc)).numpy())
    np.testing.assert_array_equal(init.constant_(tl.empty(2, 3), 0.25).numpy(), np.full((2, 3), 0.25, np.float32))


def test_dirac_weight_makes_conv_an_identity():
    conv = tl.nn.Conv2d(3, 3, 3, padding=1, bias=False)
    init.dirac_(conv.weight)
    x = tl.randn(2, 3, 5, 5)
    np.testing.assert_allclose(conv(x).detach().numpy(), x.numpy(), atol=1e-6)


def test_sparse_zeros_per_column_and_std():
    t = tl.empty(400, 50, dtype=tl.float64)
    init.sparse_(t, sparsity=0.3, std=0.05)
    a = t.numpy()
    assert ((a == 0).sum(axis=0) == math.ceil(0.3 * 400)).all()
    assert a[a != 0].std() == pytest.approx(0.05, rel=0.03)


def test_new_inits_are_unrecorded_in_place_and_reproducible():
    for fn, kw in ((init.trunc_normal_, dict(std=0.02)), (init.orthogonal_, dict(gain=2.0)),
                   (init.sparse_, dict(sparsity=0.5)), (init.dirac_, {})):
        shape = (4, 4, 3) if fn is init.dirac_ else (5, 4)
        p = tl.nn.Parameter(tl.zeros(*shape))
        version = p._version
        assert fn(p, **kw) is p  # outside no_grad, on a leaf that requires grad: as PyTorch's init
        assert p.is_leaf and p.requires_grad and p.grad_fn is None and p._version > version
        (p * 2).sum().backward()
        np.testing.assert_array_equal(p.grad.numpy(), np.full(shape, 2.0, np.float32))
        if fn is not init.dirac_:
            tl.manual_seed(11)
            first = fn(tl.zeros(*shape), **kw).numpy().copy()
            tl.manual_seed(11)
            np.testing.assert_array_equal(fn(tl.zeros(*shape), **kw).numpy(), first)
            gen_a = fn(tl.zeros(*shape), **kw, generator=np.random.default_rng(4)).numpy()
            np.testing.assert_array_equal(fn(tl.zeros(*shape), **kw, generator=np.random.default_rng(4)).numpy(),
                                          gen_a)
