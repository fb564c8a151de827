"""PyTorch oracle for the recurrent layers (every option, initial states, unbatched input) and for every loss
(reductions, weights, ignore_index, label smoothing, probability targets, pos_weight)."""
import warnings

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite import nn
from tinygrad_lite.nn import functional as F
from test_nn_oracle import run_pair, _x

pytestmark = pytest.mark.oracle

RNNS = [
    ("RNN", dict()), ("RNN", dict(nonlinearity="relu", bias=False)), ("RNN", dict(num_layers=2, bidirectional=True)),
    ("LSTM", dict()), ("LSTM", dict(num_layers=2)), ("LSTM", dict(bidirectional=True, batch_first=True)),
    ("LSTM", dict(num_layers=3, bidirectional=True, bias=False)),
    ("GRU", dict()), ("GRU", dict(num_layers=2, batch_first=True)), ("GRU", dict(bidirectional=True, bias=False)),
]


@pytest.mark.parametrize("cls,kwargs", RNNS)
@pytest.mark.parametrize("with_state", [False, True])
def test_recurrent(torch, cls, kwargs, with_state):
    tm, m = getattr(torch.nn, cls)(3, 4, **kwargs), getattr(nn, cls)(3, 4, **kwargs)
    d = 2 if kwargs.get("bidirectional") else 1
    layers = kwargs.get("num_layers", 1)
    x = _x(2, 5, 3) if kwargs.get("batch_first") else _x(5, 2, 3)
    if not with_state:
        run_pair(torch, tm, m, [x])
        return
    h0 = _x(layers * d, 2, 4, seed=1)
    if cls == "LSTM":
        c0 = _x(layers * d, 2, 4, seed=2)

        class Wrap:  # (x, h0, c0) -> module(x, (h0, c0)), keeping the modules' parameters visible
            def __init__(self, mod):
                self.mod = mod

            def __call__(self, a, b, c):
                return self.mod(a, (b, c))

            def __getattr__(self, name):
                return getattr(self.mod, name)
        run_pair(torch, Wrap(tm), Wrap(m), [x, h0, c0])
    else:
        run_pair(torch, tm, m, [x, h0])


@pytest.mark.parametrize("cls", ["RNN", "LSTM", "GRU"])
def test_recurrent_unbatched_input(torch, cls):
    tm, m = getattr(torch.nn, cls)(3, 4, num_layers=2), getattr(nn, cls)(3, 4, num_layers=2)
    t_out, l_out = run_pair(torch, tm, m, [_x(6, 3)])
    assert tuple(l_out[0].shape) == (6, 4) and tuple(l_out[1].shape) == (2, 4)


@pytest.mark.parametrize("batch_first", [False, True])
def test_long_sequence_input_gradient(torch, batch_first):
    """Sequences longer than 16 steps are sliced through chunks when the input requires grad."""
    tm, m = torch.nn.GRU(3, 4, batch_first=batch_first), nn.GRU(3, 4, batch_first=batch_first)
    run_pair(torch, tm, m, [_x(2, 23, 3) if batch_first else _x(23, 2, 3)])


def test_lstm_float32_like_the_benchmark(torch):
    tm, m = torch.nn.LSTM(8, 16), nn.LSTM(8, 16)
    run_pair(torch, tm, m, [_x(12, 4, 8, dtype=np.float32)], double=False, atol=2e-5, rtol=1e-4)


def test_recurrent_dropout_is_identity_in_eval(torch):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tm, m = torch.nn.LSTM(3, 4, num_layers=2, dropout=0.5).eval(), nn.LSTM(3, 4, num_layers=2, dropout=0.5).eval()
    run_pair(torch, tm, m, [_x(5, 2, 3)])


# ---------------- losses ----------------
def loss_pair(torch, name, inputs, targets, kwargs=None, *, grad_target=False, atol=1e-10, rtol=1e-9):
    """F.<name>(input, target, **kwargs) in both libraries; compare values and gradients."""
    kwargs = kwargs or {}
    tk = {k: (torch.tensor(v) if isinstance(v, np.ndarray) else v) for k, v in kwargs.items()}
    lk = {k: (tl.tensor(v) if isinstance(v, np.ndarray) else v) for k, v in kwargs.items()}
    tx, lx = torch.tensor(inputs, requires_grad=True), tl.tensor(inputs, requires_grad=True)
    float_target = targets.dtype.kind == "f"
    ty = torch.tensor(targets, requires_grad=grad_target and float_target)
    ly = tl.tensor(targets, requires_grad=grad_target and float_target)
    tout = getattr(torch.nn.functional, name)(tx, ty, **tk)
    lout = getattr(F, name)(lx, ly, **lk)
    assert tuple(lout.shape) == tuple(tout.shape)
    np.testing.assert_allclose(lout.numpy(), tout.detach().numpy(), atol=atol, rtol=rtol, equal_nan=True)
    proj = np.random.default_rng(4).standard_normal(tuple(tout.shape))
    (tout * torch.tensor(proj)).sum().backward()
    (lout * tl.tensor(proj)).sum().backward()
    np.testing.assert_allclose(lx.grad.numpy(), tx.grad.numpy(), atol=atol, rtol=rtol, equal_nan=True)
    if ty.requires_grad:
        np.testing.assert_allclose(ly.grad.numpy(), ty.grad.numpy(), atol=atol, rtol=rtol)


REDUCTIONS = ["mean", "sum", "none"]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", ["mse_loss", "l1_loss"])
def test_regression_losses(torch, name, reduction):
    x, y = _x(3, 4), _x(3, 4, seed=1)
    y[0, 0] = x[0, 0] + 0.5  # no exact ties for l1 at 0 (both have gradient 0 there, but keep it generic)
    loss_pair(torch, name, x, y, dict(reduction=reduction), grad_target=True)


CE = [
    ((4, 5), dict()), ((4, 5), dict(weight=True)), ((4, 5), dict(ignore_index=1)), ((4, 5), dict(ignore_index=-100)),
    ((4, 5), dict(label_smoothing=0.2)), ((4, 5), dict(label_smoothing=0.2, weight=True, ignore_index=2)),
    ((3, 4, 2, 3), dict()), ((3, 4, 2, 3), dict(weight=True, ignore_index=0, label_smoothing=0.1)),
    ((5,), dict()), ((5,), dict(label_smoothing=0.3, weight=True)),
]


def _ce_case(torch, shape, kwargs, reduction, name):
    kwargs = dict(kwargs, reduction=reduction)
    c = shape[0] if len(shape) == 1 else shape[1]
    if kwargs.pop("weight", False):
        kwargs["weight"] = np.random.default_rng(7).uniform(0.5, 2.0, c)
    x = _x(*shape) * 2
    tshape = () if len(shape) == 1 else (shape[0],) + shape[2:]
    t = np.random.default_rng(8).integers(0, c, tshape)
    if "ignore_index" in kwargs and np.ndim(t):
        t.flat[0] = kwargs["ignore_index"]
    loss_pair(torch, name, x if name == "cross_entropy" else np.log(np.abs(x) / 10 + 0.01), t, kwargs)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape,kwargs", CE)
def test_cross_entropy_class_indices(torch, shape, kwargs, reduction):
    _ce_case(torch, shape, kwargs, reduction, "cross_entropy")


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape,kwargs", [c for c in CE if "label_smoothing" not in c[1]])
def test_nll_loss(torch, shape, kwargs, reduction):
    _ce_case(torch, shape, kwargs, reduction, "nll_loss")


def test_cross_entropy_all_targets_ignored_is_nan(torch):
    loss_pair(torch, "cross_entropy", _x(3, 4), np.full(3, -100), dict(reduction="mean"))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape,kwargs", [((4, 5), {}), ((4, 5), dict(weight=True, label_smoothing=0.25)),
                                          ((2, 3, 2, 2), dict(label_smoothing=0.1)), ((5,), {})])
def test_cross_entropy_probability_targets(torch, shape, kwargs, reduction):
    kwargs = dict(kwargs, reduction=reduction)
    c = shape[0] if len(shape) == 1 else shape[1]
    if kwargs.pop("weight", False):
        kwargs["weight"] = np.random.default_rng(7).uniform(0.5, 2.0, c)
    p = np.random.default_rng(9).uniform(size=shape)
    p /= p.sum(axis=0 if len(shape) == 1 else 1, keepdims=True)
    loss_pair(torch, "cross_entropy", _x(*shape), p, kwargs, grad_target=True)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_binary_cross_entropy(torch, reduction, weighted):
    x = np.random.default_rng(2).uniform(0.01, 0.99, (4, 3))
    y = np.random.default_rng(3).uniform(0, 1, (4, 3))
    kwargs = dict(reduction=reduction)
    if weighted:
        kwargs["weight"] = np.random.default_rng(4).uniform(0.5, 2, (4, 3))
    loss_pair(torch, "binary_cross_entropy", x, y, kwargs, grad_target=True)


def test_binary_cross_entropy_log_clamp(torch):
    """Inputs of exactly 0 and 1: the logs are clamped at -100, so the loss is finite, as PyTorch."""
    x = np.array([0.0, 1.0, 0.0, 1.0, 0.5])
    y = np.array([1.0, 0.0, 0.0, 1.0, 0.3])
    tout = torch.nn.functional.binary_cross_entropy(torch.tensor(x), torch.tensor(y), reduction="none")
    lout = F.binary_cross_entropy(tl.tensor(x), tl.tensor(y), reduction="none")
    np.testing.assert_allclose(lout.numpy(), tout.numpy(), atol=1e-12)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("options", ["plain", "weight", "pos_weight", "both"])
def test_binary_cross_entropy_with_logits(torch, reduction, options):
    x = _x(4, 3) * 5
    x[0, 0], x[1, 1], x[2, 2] = 0.0, 40.0, -40.0  # the kink of |x| at 0 and saturated logits
    y = np.random.default_rng(3).uniform(0, 1, (4, 3))
    kwargs = dict(reduction=reduction)
    if options in ("weight", "both"):
        kwargs["weight"] = np.random.default_rng(4).uniform(0.5, 2, (4, 3))
    if options in ("pos_weight", "both"):
        kwargs["pos_weight"] = np.random.default_rng(5).uniform(0.5, 3, (3,))
    loss_pair(torch, "binary_cross_entropy_with_logits", x, y, kwargs, grad_target=True)


def test_loss_modules_match_functional(torch):
    x, t = _x(4, 5), np.array([0, 4, 2, 1])
    w = np.linspace(0.5, 2, 5)
    pairs = [(nn.CrossEntropyLoss(weight=tl.tensor(w), label_smoothing=0.1, ignore_index=2),
              torch.nn.CrossEntropyLoss(weight=torch.tensor(w), label_smoothing=0.1, ignore_index=2), x, t),
             (nn.NLLLoss(reduction="sum"), torch.nn.NLLLoss(reduction="sum"), x, t),
             (nn.MSELoss(), torch.nn.MSELoss(), x, _x(4, 5, seed=3)), (nn.L1Loss(), torch.nn.L1Loss(), x, x * 0.5),
             (nn.BCELoss(), torch.nn.BCELoss(), 1 / (1 + np.exp(-x)), np.ones_like(x) * 0.3),
             (nn.BCEWithLogitsLoss(pos_weight=tl.tensor(w)), torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(w)),
              x, np.ones_like(x) * 0.3)]
    for m, tm, a, b in pairs:
        np.testing.assert_allclose(m(tl.tensor(a), tl.tensor(b)).numpy(),
                                   tm(torch.tensor(a), torch.tensor(b)).numpy(), atol=1e-12, err_msg=repr(m))
        assert [k for k in m.state_dict()] == [k for k in tm.state_dict()]


def test_one_hot(torch):
    t = np.array([[0, 3], [2, 1]])
    np.testing.assert_array_equal(F.one_hot(tl.tensor(t)).numpy(), torch.nn.functional.one_hot(torch.tensor(t)).numpy())
    np.testing.assert_array_equal(F.one_hot(tl.tensor(t), 6).numpy(),
                                  torch.nn.functional.one_hot(torch.tensor(t), 6).numpy())
    assert F.one_hot(tl.tensor(t)).dtype == np.int64
