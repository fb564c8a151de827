"""The losses of test_losses_more.py: bad input raises in both libraries (ours with PyTorch's exception type and a
message naming the loss), size mismatches PyTorch broadcasts silently warn here, signatures and defaults are
PyTorch's, and training with each loss under tl.compile is bit-identical to eager."""
import inspect
import warnings

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite import nn
from tinygrad_lite.nn import functional as F

X = np.random.default_rng(0).standard_normal((4, 3))
V = np.random.default_rng(1).standard_normal(3)
ONES = np.ones((4, 3))
I = np.array

ERRORS = [  # (name, args, kwargs)
    ("soft_margin_loss", [X, np.ones(5)], {}),
    ("soft_margin_loss", [X, ONES], {"reduction": "avg"}),
    ("poisson_nll_loss", [X, np.ones(5)], {}),
    ("poisson_nll_loss", [X, ONES], {"reduction": "avg"}),
    ("gaussian_nll_loss", [X, ONES, np.ones(3)], {}),
    ("gaussian_nll_loss", [X, ONES, np.ones((1, 1))], {}),
    ("gaussian_nll_loss", [X, ONES, np.array(0.5)], {}),
    ("gaussian_nll_loss", [X, ONES, -ONES], {}),
    ("gaussian_nll_loss", [X, ONES, -0.5], {}),
    ("gaussian_nll_loss", [X, ONES, 0.5], {"reduction": "avg"}),
    ("hinge_embedding_loss", [X, np.ones(5)], {}),
    ("margin_ranking_loss", [X, X, V], {}),
    ("margin_ranking_loss", [X, X, np.ones((4, 5))], {}),
    ("cosine_embedding_loss", [X, X, X], {}),
    ("cosine_embedding_loss", [V, V, np.ones(3)], {}),
    ("cosine_embedding_loss", [X, X, np.ones(3)], {}),
    ("cosine_embedding_loss", [X, X[:, :2], np.ones(4)], {}),
    ("cosine_embedding_loss", [np.ones((2, 3, 4)), np.ones((2, 3, 4)), np.ones(2)], {}),
    ("multilabel_soft_margin_loss", [X[0, 0], X[0, 0]], {}),
    ("multilabel_soft_margin_loss", [X, np.ones(5)], {}),
    ("multilabel_soft_margin_loss", [X, ONES], {"weight": np.ones(5)}),
    ("multilabel_soft_margin_loss", [X, ONES], {"reduction": "avg"}),
    ("multi_margin_loss", [X, I([0, 1, 2, 0])], {"p": 3}),
    ("multi_margin_loss", [X, I([0, 1, 2, 0])], {"weight": np.ones((1, 3))}),
    ("multi_margin_loss", [X, I([0, 1, 2, 0])], {"weight": np.ones(4)}),
    ("multi_margin_loss", [X, I([[0, 1, 2, 0]])], {}),
    ("multi_margin_loss", [X, I([0, 1, 2])], {}),
    ("multi_margin_loss", [X, I([0, 1, 3, 0])], {}),
    ("multi_margin_loss", [X, I([0, -1, 2, 0])], {}),
    ("multi_margin_loss", [X, I([0.0, 1, 2, 0])], {}),
    ("multi_margin_loss", [np.ones((2, 3, 4)), I([0, 1])], {}),
    ("multi_margin_loss", [np.ones((2, 0)), I([0, 1])], {}),
    ("multilabel_margin_loss", [X, I([1, -1, 0])], {}),
    ("multilabel_margin_loss", [X, I([[1, -1]] * 4)], {}),
    ("multilabel_margin_loss", [X, I([[1, 3, 0]] * 4)], {}),
    ("multilabel_margin_loss", [X, I([[1, -2, 0]] * 4)], {}),
    ("multilabel_margin_loss", [X, I([[1, -1, 7]] * 4)], {}),
    ("multilabel_margin_loss", [X, I([[1.0, -1, 0]] * 4)], {}),
    ("triplet_margin_loss", [X, V, X], {}),
    ("triplet_margin_loss", [X, X[:, :2], X], {}),
    ("triplet_margin_loss", [X, X, X], {"margin": 0.0}),
    ("triplet_margin_with_distance_loss", [X, X, X], {"margin": -1.0}),
    ("triplet_margin_with_distance_loss", [X, X, X], {"reduction": "avg"}),
    ("triplet_margin_with_distance_loss", [X, X, V], {}),
]


@pytest.mark.oracle
@pytest.mark.parametrize("name,args,kwargs", ERRORS, ids=[f"{e[0]}-{i}" for i, e in enumerate(ERRORS)])
def test_errors_match_pytorch(torch, name, args, kwargs):
    def conv(lib, v):
        return lib.tensor(v) if isinstance(v, np.ndarray) else v
    with pytest.raises(Exception) as want:
        getattr(torch.nn.functional, name)(*[conv(torch, a) for a in args],
                                           **{k: conv(torch, v) for k, v in kwargs.items()})
    with pytest.raises(Exception) as got, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        getattr(F, name)(*[conv(tl, a) for a in args], **{k: conv(tl, v) for k, v in kwargs.items()})
    assert isinstance(got.value, type(want.value)), (got.value, want.value)
    assert name in str(got.value) or name.split("_loss")[0] in str(got.value), str(got.value)


@pytest.mark.oracle
@pytest.mark.parametrize("make", [lambda lib: lib.nn.MultiMarginLoss(p=3),
                                  lambda lib: lib.nn.MultiMarginLoss(weight=lib.ones(2, 3)),
                                  lambda lib: lib.nn.TripletMarginLoss(margin=0.0),
                                  lambda lib: lib.nn.TripletMarginWithDistanceLoss(margin=-1.0)])
def test_module_constructor_errors_match_pytorch(torch, make):
    with pytest.raises(ValueError):
        make(torch)
    with pytest.raises(ValueError):
        make(tl)


@pytest.mark.oracle
@pytest.mark.parametrize("name,args", [("soft_margin_loss", [X, V]), ("poisson_nll_loss", [X, np.abs(V)]),
                                       ("hinge_embedding_loss", [X, np.sign(V)]),
                                       ("margin_ranking_loss", [X, X[:1], np.sign(X)]),
                                       ("multilabel_soft_margin_loss", [X, (V > 0) * 1.0]),
                                       ("gaussian_nll_loss", [X, V, ONES])])
def test_broadcast_targets_warn_here_and_match_pytorchs_values(torch, name, args):
    """PyTorch broadcasts these silently; the value is the same, but here a warning says the sizes differ."""
    want = getattr(torch.nn.functional, name)(*[torch.tensor(a) for a in args])
    with pytest.warns(UserWarning, match="different to the"):
        got = getattr(F, name)(*[tl.tensor(a) for a in args])
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-12)


NAMES = {"soft_margin_loss": "SoftMarginLoss", "poisson_nll_loss": "PoissonNLLLoss",
         "gaussian_nll_loss": "GaussianNLLLoss", "hinge_embedding_loss": "HingeEmbeddingLoss",
         "margin_ranking_loss": "MarginRankingLoss", "cosine_embedding_loss": "CosineEmbeddingLoss",
         "multilabel_soft_margin_loss": "MultiLabelSoftMarginLoss", "multi_margin_loss": "MultiMarginLoss",
         "multilabel_margin_loss": "MultiLabelMarginLoss", "triplet_margin_loss": "TripletMarginLoss",
         "triplet_margin_with_distance_loss": "TripletMarginWithDistanceLoss", "pairwise_distance": "PairwiseDistance"}


@pytest.mark.oracle
def test_signatures_defaults_and_exports_match_pytorch(torch):
    def params(fn):
        return [(p.name, p.default, p.kind) for p in inspect.signature(fn).parameters.values()]
    for fname, mname in NAMES.items():
        tfn = getattr(torch.nn.functional, fname)
        if fname != "pairwise_distance":  # (torch's is a builtin without a signature)
            assert params(getattr(F, fname)) == params(tfn), fname
        assert params(getattr(nn, mname).__init__) == params(getattr(torch.nn, mname).__init__), mname
        assert fname in F.__all__ and mname in nn.__all__
        forward = [p for p in inspect.signature(getattr(torch.nn, mname).forward).parameters]
        assert [p for p in inspect.signature(getattr(nn, mname).forward).parameters] == forward, mname


@pytest.mark.oracle
def test_grad_fn_names_match_pytorch(torch):
    x, s = np.random.default_rng(0).standard_normal((4, 3)), np.sign(X)
    for name, args in [("soft_margin_loss", [x, s]), ("multi_margin_loss", [x, I([0, 1, 2, 0])]),
                       ("multilabel_margin_loss", [x, I([[0, -1, 1]] * 4)])]:
        for reduction in ("none", "mean", "sum"):
            want = getattr(torch.nn.functional, name)(torch.tensor(x, requires_grad=True),
                                                      *[torch.tensor(a) for a in args[1:]], reduction=reduction)
            got = getattr(F, name)(tl.tensor(x, requires_grad=True), *[tl.tensor(a) for a in args[1:]],
                                   reduction=reduction)
            assert got.grad_fn.name() == type(want.grad_fn).__name__


# ---------------- tl.compile: training with each loss replays bit for bit ----------------
def _sign(rng, shape):
    return np.where(rng.random(shape) < 0.5, -1.0, 1.0).astype(np.float32)


def _labels(rng):
    t = np.full((6, 4), -1, dtype=np.int64)
    for i in range(6):
        k = rng.integers(0, 5)
        t[i, :k] = rng.permutation(4)[:k]
    return t


W4 = tl.tensor(np.array([0.5, 1.0, 2.0, 1.5], np.float32))  # (made outside the step, as a module's buffer is)
W8 = tl.tensor(np.full(8, 0.5, np.float32))
COMPILED = {  # name: (loss of the model's (6, 8) output and the extra arguments, extra arguments from an rng)
    "soft_margin": (lambda o, y: F.soft_margin_loss(o, y), lambda r: [_sign(r, (6, 8))]),
    "poisson": (lambda o, y: F.poisson_nll_loss(o, y, full=True), lambda r: [r.poisson(2.0, (6, 8)).astype("f4")]),
    "poisson-rate": (lambda o, y: F.poisson_nll_loss(o.exp(), y, log_input=False),
                     lambda r: [r.poisson(2.0, (6, 8)).astype("f4")]),
    "gaussian": (lambda o, y: F.gaussian_nll_loss(o[:, :4], y, o[:, 4:].exp(), full=True, eps=0.5),
                 lambda r: [r.standard_normal((6, 4)).astype("f4")]),
    "hinge": (lambda o, y: F.hinge_embedding_loss(o, y, margin=0.5), lambda r: [_sign(r, (6, 8))]),
    "ranking": (lambda o, y: F.margin_ranking_loss(o[:, 0], o[:, 1], y, margin=0.1), lambda r: [_sign(r, 6)]),
    "cosine": (lambda o, b, y: F.cosine_embedding_loss(o, b, y, margin=0.2),
               lambda r: [r.standard_normal((6, 8)).astype("f4"), _sign(r, 6)]),
    "multilabel_soft": (lambda o, y: F.multilabel_soft_margin_loss(o, y, weight=W8),
                        lambda r: [(r.random((6, 8)) < 0.5).astype("f4")]),
    "multi_margin": (lambda o, y: F.multi_margin_loss(o[:, :4], y, p=2, weight=W4),
                     lambda r: [r.integers(0, 4, 6)]),
    "multilabel_margin": (lambda o, y: F.multilabel_margin_loss(o[:, :4], y), lambda r: [_labels(r)]),
    "triplet": (lambda o, p, n: F.triplet_margin_loss(o, p, n, p=1, swap=True),
                lambda r: [r.standard_normal((6, 8)).astype("f4"), r.standard_normal((6, 8)).astype("f4")]),
    "triplet_distance": (lambda o, p, n: F.triplet_margin_with_distance_loss(
        o, p, n, distance_function=lambda a, b: 1.0 - F.cosine_similarity(a, b), swap=True, margin=0.5),
        lambda r: [r.standard_normal((6, 8)).astype("f4"), r.standard_normal((6, 8)).astype("f4")]),
}
STEPS = 6


def _train(name, compiled):
    loss_fn, extra = COMPILED[name]
    tl.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 8))
    opt = tl.optim.Adam(model.parameters(), lr=0.01)

    def step(x, *rest):
        opt.zero_grad()
        loss = loss_fn(model(x), *rest)
        loss.backward()
        opt.step()
        return loss.item()
    f = tl.compile(step) if compiled else step
    rng = np.random.default_rng(3)
    losses = [f(tl.tensor(rng.standard_normal((6, 5)).astype("f4")), *[tl.tensor(a) for a in extra(rng)])
              for _ in range(STEPS)]
    return losses, [p.numpy().copy() for p in model.parameters()] + [p.grad.numpy().copy()
                                                                     for p in model.parameters()], f


@pytest.mark.parametrize("name", sorted(COMPILED))
def test_training_with_each_loss_replays_bit_identically(name):
    eager_losses, eager_arrays, _ = _train(name, False)
    losses, arrays, f = _train(name, True)
    assert losses == eager_losses and np.isfinite(losses).all()
    assert all(a.dtype == b.dtype and np.array_equal(a, b) for a, b in zip(eager_arrays, arrays))
    assert f.stats["replays"] >= STEPS - 2 and f.stats["eager_calls"] == 0, f.stats
