"""SmoothL1Loss, HuberLoss, KLDivLoss and CosineSimilarity (and their F. forms): PyTorch oracle (values, input and
target gradients, warnings) for every reduction, at the kinks, with Hypothesis-drawn broadcasting shapes; closed
forms and float64 gradchecks without PyTorch; errors that name the loss and both shapes."""
import warnings

import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp

import tinygrad_lite as tl
from tinygrad_lite import nn
from tinygrad_lite.nn import functional as F

REDUCTIONS = ["mean", "sum", "none"]


def _rng(seed):
    return np.random.default_rng(seed)


def _call(fn, *args, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fn(*args, **kwargs)
    return out, [w for w in caught if issubclass(w.category, UserWarning)]


def pair(torch, name, a, b, kwargs=None, *, grad_b=True, atol=1e-10, rtol=1e-9):
    """F.<name>(a, b, **kwargs) in both libraries: same value, same warnings (count and, for ours, text where
    PyTorch's is not about sizes), same gradients for a and b (NaN where PyTorch has NaN)."""
    kwargs = kwargs or {}
    ta, la = torch.tensor(a, requires_grad=True), tl.tensor(a, requires_grad=True)
    tb, lb = torch.tensor(b, requires_grad=grad_b), tl.tensor(b, requires_grad=grad_b)
    tout, twarn = _call(getattr(torch.nn.functional, name), ta, tb, **kwargs)
    lout, lwarn = _call(getattr(F, name), la, lb, **kwargs)
    assert len(lwarn) == len(twarn), ([str(w.message) for w in lwarn], [str(w.message) for w in twarn])
    assert tuple(lout.shape) == tuple(tout.shape)
    assert lout.dtype == np.float64
    np.testing.assert_allclose(lout.numpy(), tout.detach().numpy(), atol=atol, rtol=rtol, equal_nan=True)
    proj = _rng(4).standard_normal(tuple(tout.shape))
    (tout * torch.tensor(proj)).sum().backward()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NumPy's 0/0 where PyTorch's gradient is NaN as well
        (lout * tl.tensor(proj)).sum().backward()
    np.testing.assert_allclose(la.grad.numpy(), ta.grad.numpy(), atol=atol, rtol=rtol, equal_nan=True)
    if grad_b:
        np.testing.assert_allclose(lb.grad.numpy(), tb.grad.numpy(), atol=atol, rtol=rtol, equal_nan=True)
    return lout, lwarn


def _with_kinks(x, y, at):
    """Put x - y exactly at 0, +at and -at in the first elements (where the pieces meet)."""
    x, y = x.copy(), y.copy()
    for i, d in enumerate([0.0, at, -at, 0.0][:x.size]):
        x.flat[i] = y.flat[i] + d
    return x, y


# ---------------- SmoothL1 and Huber ----------------
@pytest.mark.oracle
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name,param,value", [("smooth_l1_loss", "beta", 1.0), ("smooth_l1_loss", "beta", 0.5),
                                              ("smooth_l1_loss", "beta", 0.0), ("smooth_l1_loss", "beta", 2.5),
                                              ("huber_loss", "delta", 1.0), ("huber_loss", "delta", 0.3),
                                              ("huber_loss", "delta", 2.5)])
def test_smooth_l1_and_huber_match_pytorch(torch, name, param, value, reduction):
    x, y = _rng(0).standard_normal((4, 5)) * 2, _rng(1).standard_normal((4, 5))
    x, y = _with_kinks(x, y, value if value else 1.0)
    out, _ = pair(torch, name, x, y, {param: value, "reduction": reduction})
    if reduction == "none":
        assert out.numpy()[0, 0] == 0.0


@pytest.mark.oracle
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=4),
       name=st.sampled_from([("smooth_l1_loss", "beta"), ("huber_loss", "delta")]),
       value=st.sampled_from([0.0, 0.25, 1.0, 3.0]), reduction=st.sampled_from(REDUCTIONS),
       seed=st.integers(0, 2 ** 16))
def test_smooth_l1_and_huber_broadcasting(torch, shapes, name, value, reduction, seed):
    (sx, sy), _ = shapes
    fn, param = name
    if fn == "huber_loss" and value == 0.0:
        value = 0.5
    x, y = _rng(seed).standard_normal(sx) * 2, _rng(seed + 1).standard_normal(sy)
    _, warned = pair(torch, fn, x, y, {param: value, "reduction": reduction})
    assert len(warned) == (1 if tuple(sx) != tuple(sy) else 0)


@pytest.mark.oracle
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_weighted_huber_matches_pytorch(torch, reduction):
    x, y, w = _rng(0).standard_normal((3, 4)) * 2, _rng(1).standard_normal((3, 4)), _rng(2).uniform(0, 2, (3, 4))
    tw, lw = torch.tensor(w, requires_grad=True), tl.tensor(w, requires_grad=True)
    tout = torch.nn.functional.huber_loss(torch.tensor(x), torch.tensor(y), reduction, 0.7, tw)
    lout = F.huber_loss(tl.tensor(x), tl.tensor(y), reduction, 0.7, lw)
    np.testing.assert_allclose(lout.numpy(), tout.detach().numpy(), rtol=1e-12)
    tout.sum().backward()
    lout.sum().backward()
    np.testing.assert_allclose(lw.grad.numpy(), tw.grad.numpy(), rtol=1e-12)


def test_smooth_l1_and_huber_closed_forms():
    d = np.array([-3.0, -1.0, -0.4, 0.0, 0.4, 1.0, 3.0])
    x, y = tl.tensor(d, requires_grad=True), tl.tensor(np.zeros_like(d))
    loss = F.smooth_l1_loss(x, y, reduction="none", beta=1.0)
    np.testing.assert_allclose(loss.numpy(), np.where(np.abs(d) < 1, 0.5 * d * d, np.abs(d) - 0.5))
    loss.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.clip(d, -1, 1))
    for delta in (0.5, 1.0, 2.0):  # Huber(delta) = delta * SmoothL1(beta=delta)
        np.testing.assert_allclose(F.huber_loss(x, y, reduction="none", delta=delta).numpy(),
                                   delta * F.smooth_l1_loss(x, y, reduction="none", beta=delta).numpy(), rtol=1e-14)
    np.testing.assert_allclose(F.smooth_l1_loss(x, y, beta=0.0, reduction="sum").numpy(), np.abs(d).sum())


def test_gradcheck_smooth_l1_and_huber():
    x = tl.tensor(_rng(0).standard_normal((3, 4)) * 2, requires_grad=True)
    y = tl.tensor(_rng(1).standard_normal((3, 4)), requires_grad=True)
    w = tl.tensor(_rng(2).uniform(0.5, 2, (3, 4)), requires_grad=True)
    assert tl.gradcheck(lambda a, b: F.smooth_l1_loss(a, b, beta=0.7, reduction="none"), (x, y))
    assert tl.gradcheck(lambda a, b: F.smooth_l1_loss(a, b, beta=0.0), (x, y))
    assert tl.gradcheck(lambda a, b, c: F.huber_loss(a, b, "sum", 0.6, c), (x, y, w))


# ---------------- KL divergence ----------------
def _kl_data(shape, seed, zeros=True):
    logq = np.log(_rng(seed).dirichlet(np.ones(shape[-1]), shape[:-1] or None)).reshape(shape)
    p = _rng(seed + 1).dirichlet(np.ones(shape[-1]), shape[:-1] or None).reshape(shape)
    if zeros:
        p.flat[::3] = 0.0  # xlogy: 0 log 0 = 0
    return logq, p


@pytest.mark.oracle
@pytest.mark.parametrize("reduction", ["mean", "batchmean", "sum", "none"])
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div_matches_pytorch(torch, reduction, log_target):
    logq, p = _kl_data((4, 5), 0)
    target = np.log(p + 0.05) if log_target else p
    out, warned = pair(torch, "kl_div", logq, target, dict(reduction=reduction, log_target=log_target))
    assert len(warned) == (1 if reduction == "mean" else 0)
    if warned:  # PyTorch's own words
        assert "'batchmean' divides only by the batch size" in str(warned[0].message)
    assert np.isfinite(out.numpy()).all()


@pytest.mark.oracle
def test_kl_div_target_zero_is_xlogy(torch):
    """0 log 0 = 0 in value; the target's gradient there is NaN in PyTorch (0/0 in xlogy's derivative), here too."""
    logq, p = _kl_data((3, 4), 1)
    out, _ = pair(torch, "kl_div", logq, p, dict(reduction="none"))
    assert (out.numpy()[p == 0] == 0).all()
    p_neg = p.copy()
    p_neg[0, 1] = -0.5  # log of a negative: NaN, as PyTorch
    pair(torch, "kl_div", logq, p_neg, dict(reduction="sum"))


@pytest.mark.oracle
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=4),
       reduction=st.sampled_from(["mean", "batchmean", "sum", "none"]), log_target=st.booleans(),
       seed=st.integers(0, 2 ** 16))
def test_kl_div_broadcasting(torch, shapes, reduction, log_target, seed):
    (si, st_), _ = shapes
    logq = -_rng(seed).uniform(0.1, 3, si)
    target = _rng(seed + 1).uniform(-2, 0, st_) if log_target else _rng(seed + 1).uniform(0, 1, st_)
    pair(torch, "kl_div", logq, target, dict(reduction=reduction, log_target=log_target))


@pytest.mark.oracle
@pytest.mark.parametrize("legacy", [dict(size_average=False), dict(reduce=False), dict(size_average=True)])
def test_kl_div_legacy_flags(torch, legacy):
    logq, p = _kl_data((3, 4), 2)
    _, warned = pair(torch, "kl_div", logq, p, legacy)
    assert len(warned) == 1 and "size_average and reduce args will be deprecated" in str(warned[0].message)


def test_kl_div_closed_form():
    logq, p = _kl_data((6, 5), 3)
    want = np.where(p > 0, p * (np.log(np.where(p > 0, p, 1)) - logq), 0).sum() / 6
    got = F.kl_div(tl.tensor(logq), tl.tensor(p), reduction="batchmean")
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-13)
    got_log = F.kl_div(tl.tensor(logq), tl.tensor(np.log(p + 1e-300)), reduction="batchmean", log_target=True)
    np.testing.assert_allclose(got_log.numpy(), want, rtol=1e-9)
    assert F.kl_div(tl.tensor(0.3, dtype=tl.float64), tl.tensor(0.2, dtype=tl.float64), reduction="batchmean").shape \
        == ()


def test_gradcheck_kl_div():
    logq, p = _kl_data((3, 4), 4, zeros=False)
    a, b = tl.tensor(logq, requires_grad=True), tl.tensor(p, requires_grad=True)
    assert tl.gradcheck(lambda u, v: F.kl_div(u, v, reduction="batchmean"), (a, b))
    assert tl.gradcheck(lambda u, v: F.kl_div(u, v.log(), reduction="none", log_target=True), (a, b))


# ---------------- cosine similarity ----------------
COSINE = [((3, 4), (3, 4), 1), ((3, 4), (3, 4), 0), ((3, 4), (3, 4), -1), ((2, 3, 4), (3, 4), 1),
          ((3, 1), (3, 4), 1), ((1, 4), (3, 4), 1), ((5,), (5,), 0), ((2, 1, 4), (1, 3, 4), -1)]


@pytest.mark.oracle
@pytest.mark.parametrize("s1,s2,dim", COSINE)
@pytest.mark.parametrize("eps", [1e-8, 0.5])
def test_cosine_similarity_matches_pytorch(torch, s1, s2, dim, eps):
    pair(torch, "cosine_similarity", _rng(0).standard_normal(s1), _rng(1).standard_normal(s2),
         dict(dim=dim, eps=eps))


@pytest.mark.oracle
@pytest.mark.parametrize("scale", [1e-5, 1e-9, 1e-12, 0.0])
def test_cosine_similarity_near_zero_vectors(torch, scale):
    """Below eps the norm is clamped in value only: PyTorch's gradient still goes through the unclamped norm."""
    x1, x2 = _rng(2).standard_normal((4, 3)), _rng(3).standard_normal((4, 3))
    x1[:2] *= scale
    x2[1:3] *= scale
    x1[3] = 0.0
    out, _ = pair(torch, "cosine_similarity", x1, x2, dict(dim=1), rtol=1e-9, atol=1e-12)
    assert np.abs(out.numpy()).max() <= 1.0


@pytest.mark.oracle
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=1, max_dims=3, max_side=4),
       data=st.data(), seed=st.integers(0, 2 ** 16))
def test_cosine_similarity_broadcasting(torch, shapes, data, seed):
    (s1, s2), result = shapes
    dim = data.draw(st.integers(-len(result), len(result) - 1), label="dim")
    out, _ = pair(torch, "cosine_similarity", _rng(seed).standard_normal(s1), _rng(seed + 1).standard_normal(s2),
                  dict(dim=dim))
    assert tuple(out.shape) == tuple(np.delete(result, dim % len(result)))


def test_cosine_similarity_closed_forms():
    a = tl.tensor(np.array([[1.0, 2.0, 3.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]), requires_grad=True)
    b = tl.tensor(np.array([[2.0, 4.0, 6.0], [0.0, 5.0, 0.0], [1.0, 1.0, 1.0]]))
    np.testing.assert_allclose(F.cosine_similarity(a, b).numpy(), [1.0, 0.0, 0.0], atol=1e-15)
    np.testing.assert_allclose(F.cosine_similarity(a, -b, dim=-1).numpy()[0], -1.0, rtol=1e-15)
    x = _rng(5).standard_normal((4, 6))
    y = _rng(6).standard_normal((4, 6))
    want = (x * y).sum(1) / np.linalg.norm(x, axis=1) / np.linalg.norm(y, axis=1)
    np.testing.assert_allclose(nn.CosineSimilarity()(tl.tensor(x), tl.tensor(y)).numpy(), want, rtol=1e-13)


def test_gradcheck_cosine_similarity():
    x = tl.tensor(_rng(7).standard_normal((3, 4)), requires_grad=True)
    y = tl.tensor(_rng(8).standard_normal((1, 4)), requires_grad=True)
    assert tl.gradcheck(lambda a, b: F.cosine_similarity(a, b, dim=1), (x, y))
    assert tl.gradcheck(lambda a, b: F.cosine_similarity(a, b, dim=0, eps=1e-3), (x, y))


# ---------------- modules ----------------
@pytest.mark.oracle
def test_modules_match_pytorch(torch):
    x, y = _rng(0).standard_normal((3, 4)), _rng(1).uniform(0, 1, (3, 4))
    pairs = [(nn.SmoothL1Loss(beta=0.5), torch.nn.SmoothL1Loss(beta=0.5)),
             (nn.SmoothL1Loss(reduction="sum", beta=0.0), torch.nn.SmoothL1Loss(reduction="sum", beta=0.0)),
             (nn.HuberLoss(delta=0.3, reduction="none"), torch.nn.HuberLoss(delta=0.3, reduction="none")),
             (nn.KLDivLoss(reduction="batchmean"), torch.nn.KLDivLoss(reduction="batchmean")),
             (nn.KLDivLoss(reduction="sum", log_target=True), torch.nn.KLDivLoss(reduction="sum", log_target=True)),
             (nn.CosineSimilarity(dim=0, eps=1e-3), torch.nn.CosineSimilarity(dim=0, eps=1e-3))]
    for m, tm in pairs:
        np.testing.assert_allclose(m(tl.tensor(x), tl.tensor(y)).numpy(), tm(torch.tensor(x), torch.tensor(y)).numpy(),
                                   rtol=1e-12, err_msg=repr(m))
        assert repr(m) == repr(tm) and list(m.state_dict()) == list(tm.state_dict()) == []
        for attr in ("reduction", "beta", "delta", "log_target", "dim", "eps"):
            assert getattr(m, attr, None) == getattr(tm, attr, None), (repr(m), attr)


def test_kl_div_module_mean_warns_like_pytorch():
    with pytest.warns(UserWarning, match="'mean' divides the total loss by both the batch size and the support size"):
        nn.KLDivLoss()(tl.tensor(np.log([[0.5, 0.5]])), tl.tensor([[0.2, 0.8]]))


# ---------------- errors ----------------
@pytest.mark.parametrize("fn", [F.smooth_l1_loss, F.huber_loss, F.kl_div])
def test_shape_errors_name_the_loss_and_both_shapes(fn):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(RuntimeError, match=rf"{fn.__name__}: .*\(3, 4\).*\(3, 5\)") as info:
            fn(tl.zeros(3, 4), tl.zeros(3, 5))
    assert isinstance(info.value, ValueError)  # OpError: RuntimeError as PyTorch, ValueError as NumPy users expect


def test_cosine_similarity_errors():
    with pytest.raises(RuntimeError, match=r"cosine_similarity: .*x1 shape \(3, 4\), x2 shape \(2, 4\)"):
        F.cosine_similarity(tl.zeros(3, 4), tl.zeros(2, 4))
    with pytest.raises(IndexError, match=r"cosine_similarity: Dimension out of range .*\[-2, 1\], but got 2"):
        F.cosine_similarity(tl.zeros(3, 4), tl.zeros(3, 4), dim=2)
    with pytest.raises(TypeError, match="cosine_similarity: expected floating point inputs"):
        F.cosine_similarity(tl.tensor([1, 2]), tl.tensor([3, 4]), dim=0)


def test_value_errors():
    x, y = tl.zeros(3), tl.ones(3)
    with pytest.raises(RuntimeError, match="smooth_l1_loss does not support negative values for beta"):
        F.smooth_l1_loss(x, y, beta=-0.1)
    with pytest.raises(RuntimeError, match="huber_loss does not support non-positive values for delta"):
        F.huber_loss(x, y, delta=0.0)
    with pytest.raises(ValueError, match="huber_loss: Weights and input must have the same size"):
        F.huber_loss(x, y, weight=tl.ones(2))
    with pytest.raises(ValueError, match="batchmean is not a valid value for reduction"):
        F.smooth_l1_loss(x, y, reduction="batchmean")
    with pytest.raises(ValueError, match="avg is not a valid value for reduction"):
        F.kl_div(x, y, reduction="avg")
    with pytest.raises(ValueError, match="avg is not a valid value for reduction"):
        nn.KLDivLoss(reduction="avg")
    assert nn.KLDivLoss(reduction="batchmean").reduction == "batchmean"
