"""The margin, embedding and likelihood losses (soft margin, Poisson/Gaussian NLL, hinge embedding, margin ranking,
cosine embedding, multi-label soft margin, multi margin, multi-label margin, triplet margin with and without a
distance function) and pairwise_distance: PyTorch oracle for values and input gradients over every reduction,
shape and option; float64 gradchecks; Module == functional. Errors, signatures and tl.compile:
test_losses_more_errors.py."""
import warnings

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite import nn
from tinygrad_lite.nn import functional as F

REDUCTIONS = ["none", "mean", "sum"]


def _rng(seed):
    return np.random.default_rng(seed)


def _sign(shape, seed):
    return np.where(_rng(seed).random(shape) < 0.5, -1.0, 1.0)


def _lib_args(lib, args, grads):
    return [lib.tensor(a, requires_grad=(i in grads)) if isinstance(a, np.ndarray) else a for i, a in enumerate(args)]


def run_both(torch, name, args, kwargs, grads, atol=1e-10, rtol=1e-9):
    """F.<name>(*args, **kwargs) in both libraries: same shape, value and gradients for the args in `grads`."""
    targs, largs = _lib_args(torch, args, grads), _lib_args(tl, args, grads)
    tkw = {k: (v(torch.nn.functional) if callable(v) and k == "distance_function" else
               torch.tensor(v) if isinstance(v, np.ndarray) else v) for k, v in kwargs.items()}
    lkw = {k: (v(F) if callable(v) and k == "distance_function" else
               tl.tensor(v) if isinstance(v, np.ndarray) else v) for k, v in kwargs.items()}
    tout = getattr(torch.nn.functional, name)(*targs, **tkw)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the cases here have matching sizes: no warning
        lout = getattr(F, name)(*largs, **lkw)
    assert tuple(lout.shape) == tuple(tout.shape) and lout.dtype == np.float64
    np.testing.assert_allclose(lout.numpy(), tout.detach().numpy(), atol=atol, rtol=rtol)
    proj = _rng(9).standard_normal(tuple(tout.shape))
    (tout * torch.tensor(proj)).sum().backward()
    (lout * tl.tensor(proj)).sum().backward()
    for i in grads:
        np.testing.assert_allclose(largs[i].grad.numpy(), targs[i].grad.numpy(), atol=atol, rtol=rtol,
                                   err_msg=f"gradient of argument {i}")


def _counts(shape, seed):
    return _rng(seed).choice([0.0, 0.5, 1.0, 2.0, 3.5, 7.0], shape)


def _labels(n, c, seed):
    """(n, c) multi-label targets: each row's labels first (one repeated in row 0), then -1, then junk."""
    rng = _rng(seed)
    t = np.full((n, c), -1, dtype=np.int64)
    for i in range(n):
        k = rng.integers(0, c + 1)
        t[i, :k] = rng.permutation(c)[:k]
        if k < c - 1:
            t[i, k + 1:] = rng.integers(0, c, c - k - 1)  # after the -1: ignored
    t[0, :3] = [1, 1, -1]
    return t


def _x(shape, seed=0):
    return _rng(seed).standard_normal(shape)


CASES = {  # id: (name, args, kwargs, indices of the args whose gradients are compared)
    "soft_margin-2d": ("soft_margin_loss", [_x((4, 5)) * 3, _sign((4, 5), 1)], {}, [0]),
    "soft_margin-1d": ("soft_margin_loss", [_x((7,)), _sign((7,), 1)], {}, [0]),
    "soft_margin-0d": ("soft_margin_loss", [_x(()), _sign((), 1)], {}, [0]),
    "poisson-log": ("poisson_nll_loss", [_x((4, 5)), _counts((4, 5), 1)], {}, [0, 1]),
    "poisson-log-full": ("poisson_nll_loss", [_x((4, 5)), _counts((4, 5), 1)], {"full": True}, [0]),
    "poisson-rate": ("poisson_nll_loss", [_rng(0).random(6) + 0.1, _counts((6,), 2)], {"log_input": False}, [0, 1]),
    "poisson-rate-full-eps": ("poisson_nll_loss", [_rng(0).random((3, 4)), _counts((3, 4), 3)],
                              {"log_input": False, "full": True, "eps": 0.25}, [0]),
    "gaussian-same": ("gaussian_nll_loss", [_x((4, 3)), _x((4, 3), 1), _rng(2).random((4, 3)) + 0.1], {}, [0, 1, 2]),
    "gaussian-short-full": ("gaussian_nll_loss", [_x((4, 3)), _x((4, 3), 1), _rng(2).random(4) + 0.1],
                            {"full": True}, [0, 2]),
    "gaussian-one-dim-1": ("gaussian_nll_loss", [_x((2, 3, 4)), _x((2, 3, 4), 1), _rng(2).random((2, 1, 4)) + 0.1],
                           {}, [0, 2]),
    "gaussian-float": ("gaussian_nll_loss", [_x((4, 3)), _x((4, 3), 1), 0.7], {"full": True}, [0, 1]),
    "gaussian-unbatched": ("gaussian_nll_loss", [_x((5,)), _x((5,), 1), np.array(0.4)], {}, [0, 2]),
    # some variances below eps: the value is eps, the gradient goes to var as if unclamped
    "gaussian-clamped": ("gaussian_nll_loss", [_x((4, 3)), _x((4, 3), 1),
                                               np.where(_rng(3).random((4, 3)) < 0.5, 1e-3, 0.5)],
                         {"eps": 0.01}, [0, 2]),
    "hinge-2d": ("hinge_embedding_loss", [_x((4, 5)), _sign((4, 5), 1)], {}, [0]),
    "hinge-1d-margin": ("hinge_embedding_loss", [_x((6,)) * 2, _sign((6,), 2)], {"margin": 0.5}, [0]),
    "hinge-0d": ("hinge_embedding_loss", [_x(()), np.array(-1.0)], {"margin": 2.0}, [0]),
    "hinge-other-labels": ("hinge_embedding_loss", [_x((2, 3)), np.array([[1.0, -1, 0], [2, 1, -1]])], {}, [0]),
    "ranking-1d": ("margin_ranking_loss", [_x((6,)), _x((6,), 1), _sign((6,), 2)], {}, [0, 1]),
    "ranking-2d-margin": ("margin_ranking_loss", [_x((3, 4)), _x((3, 4), 1), _sign((3, 4), 2)], {"margin": 0.3},
                          [0, 1]),
    "ranking-0d": ("margin_ranking_loss", [_x(()), _x((), 1), np.array(-1.0)], {"margin": 0.5}, [0, 1]),
    "cosine-2d": ("cosine_embedding_loss", [_x((5, 4)), _x((5, 4), 1), _sign(5, 2)], {}, [0, 1]),
    "cosine-2d-margin": ("cosine_embedding_loss", [_x((5, 4)), _x((5, 4), 1), _sign(5, 3)], {"margin": -0.3},
                         [0, 1]),
    "cosine-1d": ("cosine_embedding_loss", [_x(4), _x(4, 1), np.array(1.0)], {}, [0, 1]),
    "cosine-1d-neg": ("cosine_embedding_loss", [_x(4), _x(4, 1), np.array(-1.0)], {"margin": -0.9}, [0, 1]),
    "cosine-zero-vector": ("cosine_embedding_loss", [np.zeros((2, 3)), _x((2, 3), 1), np.array([1.0, -1])],
                           {"margin": -0.5}, [0, 1]),
    "mlsm-2d": ("multilabel_soft_margin_loss", [_x((4, 5)) * 3, (_x((4, 5), 1) > 0) * 1.0], {}, [0, 1]),
    "mlsm-weight": ("multilabel_soft_margin_loss", [_x((4, 5)), (_x((4, 5), 1) > 0) * 1.0],
                    {"weight": _rng(2).random(5)}, [0]),
    "mlsm-1d": ("multilabel_soft_margin_loss", [_x(5), (_x(5, 1) > 0) * 1.0], {}, [0]),
    "multi_margin-p1": ("multi_margin_loss", [_x((6, 4)), np.array([0, 1, 2, 3, 1, 1])], {}, [0]),
    "multi_margin-p2-margin": ("multi_margin_loss", [_x((6, 4)), np.array([0, 1, 2, 3, 1, 1])],
                               {"p": 2, "margin": 0.5}, [0]),
    "multi_margin-weight": ("multi_margin_loss", [_x((6, 4)), np.array([0, 1, 2, 3, 1, 1])],
                            {"weight": _rng(2).random(4), "p": 2}, [0]),
    "multi_margin-1d": ("multi_margin_loss", [_x(4), np.array([2])], {"margin": 2.0}, [0]),
    "multi_margin-1d-0d-target": ("multi_margin_loss", [_x(4), np.array(3)], {}, [0]),
    "multi_margin-0d": ("multi_margin_loss", [_x(()), np.array(0)], {}, [0]),
    "multilabel_margin-2d": ("multilabel_margin_loss", [_x((5, 4)), _labels(5, 4, 1)], {}, [0]),
    "multilabel_margin-1d": ("multilabel_margin_loss", [_x(6), np.array([3, 0, -1, 5, 5, 1])], {}, [0]),
    "multilabel_margin-0d": ("multilabel_margin_loss", [_x(()), np.array([0])], {}, [0]),
    "triplet-2d": ("triplet_margin_loss", [_x((5, 4)), _x((5, 4), 1), _x((5, 4), 2)], {}, [0, 1, 2]),
    "triplet-p1-swap": ("triplet_margin_loss", [_x((5, 4)), _x((5, 4), 1), _x((5, 4), 2)],
                        {"p": 1, "swap": True, "margin": 2.0}, [0, 1, 2]),
    "triplet-p3-eps": ("triplet_margin_loss", [_x((2, 3, 4)), _x((2, 3, 4), 1), _x((2, 3, 4), 2)],
                       {"p": 3, "eps": 1e-3}, [0, 1, 2]),
    "triplet-1d": ("triplet_margin_loss", [_x(4), _x(4, 1), _x(4, 2)], {"swap": True}, [0, 1, 2]),
    "triplet-broadcast": ("triplet_margin_loss", [_x((5, 4)), _x((1, 4), 1), _x((5, 4), 2)], {"margin": 3.0},
                          [0, 1, 2]),
    "triplet_distance-default": ("triplet_margin_with_distance_loss", [_x((5, 4)), _x((5, 4), 1), _x((5, 4), 2)],
                                 {"margin": 2.0}, [0, 1, 2]),
    "triplet_distance-cosine-swap": ("triplet_margin_with_distance_loss",
                                     [_x((5, 4)), _x((5, 4), 1), _x((5, 4), 2)],
                                     {"distance_function": lambda f: (lambda a, b: 1.0 - f.cosine_similarity(a, b)),
                                      "swap": True, "margin": 0.5}, [0, 1, 2]),
    "triplet_distance-l1": ("triplet_margin_with_distance_loss", [_x(4), _x(4, 1), _x(4, 2)],
                            {"distance_function": lambda f: (lambda a, b: f.pairwise_distance(a, b, 1.0))},
                            [0, 1, 2]),
    # exactly at the hinges' kinks: PyTorch's one-sided gradients (clamp_min passes at 0, the margin sums do not)
    "kink-hinge": ("hinge_embedding_loss", [np.array([1.0, 0.5, 2.0]), np.array([-1.0, -1, 1])], {}, [0]),
    "kink-ranking": ("margin_ranking_loss", [np.array([1.0, 0.5]), np.array([1.0, 0.2]), np.array([1.0, -1])], {},
                     [0, 1]),
    "kink-multi_margin": ("multi_margin_loss", [np.array([[1.0, 0.0, 2.0]]), np.array([0])], {"p": 2}, [0]),
    "kink-cosine": ("cosine_embedding_loss", [np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]]), np.array([-1.0])],
                    {}, [0, 1]),
    "kink-multilabel_margin": ("multilabel_margin_loss", [np.array([[1.0, 0.0, 2.0]]), np.array([[0, -1, 2]])], {},
                               [0]),
    "kink-triplet": ("triplet_margin_loss", [np.zeros((1, 2)), np.array([[3.0, 4.0]]), np.array([[0.0, 6.0]])],
                     {"eps": 0.0}, [0, 1, 2]),
}


@pytest.mark.oracle
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_pytorch(torch, case, reduction):
    name, args, kwargs, grads = CASES[case]
    # (a zero vector's cosine gradient is of order 1 / sqrt(1e-12): rounding shows at the 9th digit)
    run_both(torch, name, args, dict(kwargs, reduction=reduction), grads, rtol=1e-7 if "zero" in case else 1e-9)


@pytest.mark.oracle
@pytest.mark.parametrize("p,keepdim", [(2.0, False), (1.0, True), (3.0, False), (float("inf"), False)])
def test_pairwise_distance_matches_pytorch(torch, p, keepdim):
    run_both(torch, "pairwise_distance", [_x((5, 4)), _x((1, 4), 1)], {"p": p, "keepdim": keepdim}, [0, 1])
    run_both(torch, "pairwise_distance", [_x(4), _x(4, 1)], {"p": p, "eps": 0.1}, [0, 1])


@pytest.mark.oracle
@pytest.mark.parametrize("case", ["soft_margin-2d", "poisson-log", "hinge-2d", "multi_margin-p2-margin",
                                  "triplet-2d"])
@pytest.mark.parametrize("size_average,reduce", [(False, None), (None, False), (True, True)])
def test_deprecated_flags_match_pytorch(torch, case, size_average, reduce):
    name, args, kwargs, grads = CASES[case]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = getattr(torch.nn.functional, name)(*[torch.tensor(a) for a in args], size_average=size_average,
                                                  reduce=reduce, **kwargs)
    with pytest.warns(UserWarning, match="size_average and reduce"):
        got = getattr(F, name)(*[tl.tensor(a) for a in args], size_average=size_average, reduce=reduce, **kwargs)
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-12)


def test_soft_margin_is_finite_where_pytorch_overflows():
    x = tl.tensor(np.array([-800.0, 800.0]), requires_grad=True)
    loss = F.soft_margin_loss(x, tl.tensor(np.array([1.0, -1.0])), reduction="none")
    np.testing.assert_allclose(loss.numpy(), [800.0, 800.0])
    loss.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [-1.0, 1.0])


def test_gaussian_clamp_passes_the_gradient_straight_through():
    var = tl.tensor(np.array([1e-9, 2.0]), requires_grad=True)
    loss = F.gaussian_nll_loss(tl.tensor(np.array([1.0, 1.0])), tl.tensor(np.zeros(2)), var, reduction="sum")
    loss.backward()
    v = np.array([1e-6, 2.0])
    np.testing.assert_allclose(loss.numpy(), 0.5 * (np.log(v) + 1 / v).sum())
    np.testing.assert_allclose(var.grad.numpy(), 0.5 * (1 / v - 1 / v ** 2))


GRADCHECK = [case for case in sorted(CASES) if not case.startswith(("gaussian-clamped", "cosine-zero", "kink"))]


@pytest.mark.parametrize("case", GRADCHECK)
def test_gradcheck(case):
    name, args, kwargs, grads = CASES[case]
    kwargs = {k: (v(F) if k == "distance_function" else tl.tensor(v) if isinstance(v, np.ndarray) else v)
              for k, v in kwargs.items()}
    inputs = _lib_args(tl, args, grads)
    if name == "poisson_nll_loss" and 1 in grads:  # counts as targets sit on the Stirling mask's edge: move them
        inputs[1] = tl.tensor(np.abs(args[1]) + 0.3, requires_grad=True)

    def fn(*diff):
        full = list(inputs)
        for i, d in zip(grads, diff):
            full[i] = d
        return getattr(F, name)(*full, reduction="sum", **kwargs)
    assert tl.gradcheck(fn, tuple(inputs[i] for i in grads))


def _module(name, kwargs):
    kw = {k: (tl.tensor(v) if isinstance(v, np.ndarray) else v(F) if k == "distance_function" else v)
          for k, v in kwargs.items()}
    return MODULES[name](**kw), kw


MODULES = {"soft_margin_loss": nn.SoftMarginLoss, "poisson_nll_loss": nn.PoissonNLLLoss,
           "gaussian_nll_loss": nn.GaussianNLLLoss, "hinge_embedding_loss": nn.HingeEmbeddingLoss,
           "margin_ranking_loss": nn.MarginRankingLoss, "cosine_embedding_loss": nn.CosineEmbeddingLoss,
           "multilabel_soft_margin_loss": nn.MultiLabelSoftMarginLoss, "multi_margin_loss": nn.MultiMarginLoss,
           "multilabel_margin_loss": nn.MultiLabelMarginLoss, "triplet_margin_loss": nn.TripletMarginLoss,
           "triplet_margin_with_distance_loss": nn.TripletMarginWithDistanceLoss}


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_module_equals_functional(case, reduction):
    name, args, kwargs, _ = CASES[case]
    module, kw = _module(name, dict(kwargs, reduction=reduction))
    a = [tl.tensor(x) if isinstance(x, np.ndarray) else x for x in args]
    np.testing.assert_array_equal(module(*a).numpy(), getattr(F, name)(*a, **kw).numpy())
    assert module.reduction == reduction


def test_pairwise_distance_module():
    a, b = tl.tensor(_x((3, 4))), tl.tensor(_x((3, 4), 1))
    m = nn.PairwiseDistance(p=1.0, eps=0.0, keepdim=True)
    np.testing.assert_array_equal(m(a, b).numpy(), np.abs(a.numpy() - b.numpy()).sum(1, keepdims=True))
