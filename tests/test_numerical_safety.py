"""Numerical safety (issue 8, item 5): the saturating functions stay finite and correct for inputs of magnitude
1e4 in float32 and float64, with finite gradients, against float64 closed forms; and anomaly mode names the first
NaN-producing primitive and the exact line of this file that recorded it."""
import warnings

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite.nn import functional as F

F64 = np.float64


def logits(dtype, scale=1e4):
    """Rows mixing +-scale, near-ties, a far-off value and moderate values: every overflow path at once."""
    x = np.array([[scale, -scale, scale - 2.0, 0.5],
                  [-scale, -scale + 1.0, 0.0, -scale],
                  [scale, scale, scale, scale],
                  [3.0, -1.0, scale / 2, -scale]], dtype=dtype)
    return x


def stable_lse(x, axis):
    m = x.max(axis=axis, keepdims=True)
    return m + np.log(np.exp(x - m).sum(axis=axis, keepdims=True))


def stable_log_softmax(x, axis):
    z = x - x.max(axis=axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


def stable_sigmoid(x):
    return np.where(x >= 0, 1 / (1 + np.exp(-np.abs(x))), np.exp(-np.abs(x)) / (1 + np.exp(-np.abs(x))))


def tolerance(dtype, magnitude):
    """What a correct implementation in `dtype` achieves: a few ulp of the output, plus the rounding of a sum."""
    eps = np.finfo(dtype).eps
    return dict(rtol=16 * eps, atol=16 * eps * max(1.0, magnitude) if magnitude is not None else 16 * eps)


def run(fn, x, upstream):
    """Forward and the gradient of sum(upstream * out), both asserted finite."""
    t = tl.tensor(x, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # an overflow inside is a failure, not a warning
        out = fn(t)
        (out * tl.tensor(upstream.astype(x.dtype))).sum().backward()
    assert out.dtype == x.dtype and t.grad.dtype == x.dtype
    assert np.isfinite(out.numpy()).all(), out.numpy()
    assert np.isfinite(t.grad.numpy()).all(), t.grad.numpy()
    return out.numpy().astype(F64), t.grad.numpy().astype(F64)


DTYPES = [np.float32, np.float64]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_softmax_and_logsumexp_are_finite_and_correct_at_1e4(dtype, dim):
    x = logits(dtype)
    x64 = x.astype(F64)
    w = np.random.default_rng(1).standard_normal(x.shape)
    s = np.exp(stable_log_softmax(x64, dim))

    out, grad = run(lambda t: t.softmax(dim), x, w)
    np.testing.assert_allclose(out, s, **tolerance(dtype, 1.0))
    np.testing.assert_allclose(grad, s * (w - (w * s).sum(dim, keepdims=True)), **tolerance(dtype, np.abs(w).max()))

    up = w.sum(dim, keepdims=True)  # an upstream gradient of the keepdim result's shape
    out, grad = run(lambda t: t.logsumexp(dim, keepdim=True), x, up)
    np.testing.assert_allclose(out, stable_lse(x64, dim), **tolerance(dtype, None))  # relative: |lse| ~ 1e4
    np.testing.assert_allclose(grad, s * up, **tolerance(dtype, np.abs(up).max()))


@pytest.mark.parametrize("dtype", DTYPES)
def test_log_softmax_is_finite_and_close_at_1e4(dtype):
    """Finite, and correct to a few ulp of the input's magnitude (the test below checks full precision)."""
    x = logits(dtype)
    x64 = x.astype(F64)
    w = np.random.default_rng(2).standard_normal(x.shape)
    ref = stable_log_softmax(x64, 1)
    out, grad = run(lambda t: F.log_softmax(t, 1), x, w)
    np.testing.assert_allclose(out, ref, rtol=0, atol=64 * np.finfo(dtype).eps * 1e4)
    np.testing.assert_allclose(grad, w - np.exp(ref) * w.sum(1, keepdims=True), **tolerance(dtype, np.abs(w).max()))


@pytest.mark.parametrize("fn", ["log_softmax", "cross_entropy"])
def test_log_softmax_has_full_float32_precision_at_1e4(fn):
    x = np.array([[1e4, 1e4 + 1, 1e4 - 3, -1e4]], np.float32)
    ref = stable_log_softmax(x.astype(F64), 1)
    if fn == "log_softmax":
        out, ref = F.log_softmax(tl.tensor(x), 1).numpy(), ref
    else:
        out, ref = F.cross_entropy(tl.tensor(x), tl.tensor([1])).numpy(), -ref[0, 1]
    np.testing.assert_allclose(out.astype(F64), ref, rtol=4e-7, atol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_is_finite_and_correct_at_1e4(dtype):
    x = logits(dtype)
    x64 = x.astype(F64)
    w = np.random.default_rng(3).standard_normal(x.shape)
    s = stable_sigmoid(x64)
    out, grad = run(lambda t: t.sigmoid(), x, w)
    np.testing.assert_allclose(out, s, **tolerance(dtype, 1.0))
    np.testing.assert_allclose(grad, w * s * (1 - s), **tolerance(dtype, 1.0))
    assert out[0, 0] == 1.0 and out[0, 1] == 0.0  # saturates exactly, no NaN from inf/inf


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_is_finite_and_correct_at_1e4(dtype, reduction):
    x = logits(dtype)
    x64 = x.astype(F64)
    target = np.array([0, 1, 2, 3])
    logp = stable_log_softmax(x64, 1)
    per_row = -logp[np.arange(4), target]
    onehot = np.eye(4)[target]
    n = {"mean": 4.0, "sum": 1.0, "none": 1.0}[reduction]
    ref = {"mean": per_row.mean(), "sum": per_row.sum(), "none": per_row}[reduction]
    up = np.ones(()) if reduction != "none" else np.arange(1.0, 5.0)
    out, grad = run(lambda t: F.cross_entropy(t, tl.tensor(target), reduction=reduction), x, up)
    # the loss rows are as large as 2e4 and as small as 0: absolute error scales with the logits
    np.testing.assert_allclose(out, ref, rtol=16 * np.finfo(dtype).eps, atol=64 * np.finfo(dtype).eps * 1e4)
    up_rows = up.reshape(-1, 1) if reduction == "none" else up
    np.testing.assert_allclose(grad, up_rows * (np.exp(logp) - onehot) / n, **tolerance(dtype, 1.0))


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_with_probability_targets_and_module_at_1e4(dtype):
    x = logits(dtype)
    x64 = x.astype(F64)
    p = np.full((4, 4), 0.25)
    ref = -(p * stable_log_softmax(x64, 1)).sum(1).mean()
    out, grad = run(lambda t: tl.nn.CrossEntropyLoss()(t, tl.tensor(p.astype(dtype))), x, np.ones(()))
    np.testing.assert_allclose(out, ref, rtol=16 * np.finfo(dtype).eps, atol=64 * np.finfo(dtype).eps * 1e4)
    np.testing.assert_allclose(grad, (np.exp(stable_log_softmax(x64, 1)) - p) / 4, **tolerance(dtype, 1.0))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("pos_weight", [None, 3.0])
def test_bce_with_logits_is_finite_and_correct_at_1e4(dtype, pos_weight):
    x = logits(dtype)
    x64 = x.astype(F64)
    y = np.tile([1.0, 0.0, 0.5, 0.0], (4, 1))
    pw = 1.0 if pos_weight is None else pos_weight
    softplus_neg = np.maximum(-x64, 0) + np.log1p(np.exp(-np.abs(x64)))  # -log(sigmoid(x))
    ref = ((1 - y) * x64 + (1 + (pw - 1) * y) * softplus_neg).mean()
    kwargs = {} if pos_weight is None else {"pos_weight": tl.tensor(np.full(4, pw, dtype))}
    out, grad = run(lambda t: F.binary_cross_entropy_with_logits(t, tl.tensor(y.astype(dtype)), **kwargs), x,
                    np.ones(()))
    np.testing.assert_allclose(out, ref, **tolerance(dtype, 1.0))
    s = stable_sigmoid(x64)
    np.testing.assert_allclose(grad, ((1 - y) - (1 + (pw - 1) * y) * (1 - s)) / x.size, **tolerance(dtype, 1.0))


@pytest.mark.parametrize("dtype", DTYPES)
def test_losses_stay_finite_under_a_training_step_with_huge_logits(dtype):
    """An optimizer step from 1e4-sized logits must not produce NaN parameters."""
    w = tl.tensor(np.array([[1e2, -1e2], [-1e2, 1e2]], dtype), requires_grad=True)
    x = tl.tensor(np.array([[100.0, -100.0], [-100.0, 100.0]], dtype))
    opt = tl.optim.SGD([w], lr=0.1)
    for _ in range(3):
        opt.zero_grad()
        loss = F.cross_entropy(x @ w, tl.tensor([1, 0])) + F.binary_cross_entropy_with_logits(
            (x @ w)[:, 0], tl.tensor(np.array([0.0, 1.0], dtype)))
        loss.backward()
        opt.step()
        assert np.isfinite(loss.item()) and np.isfinite(w.numpy()).all()


# ---------------------------------------------------------------- anomaly mode
def line_of(tag):
    """The line number in this file of the (unique) line ending with the comment `# <tag>`."""
    with open(__file__) as f:
        hits = [i for i, line in enumerate(f, 1) if line.rstrip().endswith(f"# {tag}")]
    assert len(hits) == 1, hits
    return hits[0]


class ZeroDivModel(tl.nn.Module):
    """A small model whose normalisation divides by zero when a feature column is constant."""

    def __init__(self):
        super().__init__()
        self.fc = tl.nn.Linear(3, 2)

    def forward(self, x):
        h = self.fc(x)
        centred = h - h.mean(0, keepdim=True)
        spread = (centred * centred).sum(0, keepdim=True)
        normed = centred / spread  # anomaly-forward-site
        return normed.exp().sum()


def test_detect_anomaly_names_the_first_nan_producing_primitive_and_its_line():
    model = ZeroDivModel()
    with tl.no_grad():
        model.fc.weight.numpy()[:] = 0.0  # every output column constant: 0 / 0 in the normalisation
    x = tl.tensor(np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with tl.autograd.detect_anomaly():
            with pytest.raises(RuntimeError) as info:
                model(x)
        out = model(x)  # without anomaly mode the NaN flows on silently
    msg = str(info.value)
    assert f"{__file__}:{line_of('anomaly-forward-site')}" in msg, msg
    assert "'div'" in msg and "NaN" in msg and "'exp'" not in msg and "'sum'" not in msg
    assert np.isnan(out.item())


def test_detect_anomaly_in_backward_names_the_primitive_and_its_line():
    x = tl.tensor(np.array([1.0, 0.0, 4.0]), requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with tl.autograd.detect_anomaly():
            y = x * 2.0
            r = y.sqrt()  # anomaly-backward-site
            loss = (r * 3.0).sum()  # forward is finite: sqrt(0) = 0, the Inf appears in backward
            with pytest.raises(RuntimeError) as info:
                loss.backward()
    msg = str(info.value)
    assert f"{__file__}:{line_of('anomaly-backward-site')}" in msg, msg
    assert "'sqrt'" in msg and "inf" in msg


def test_anomaly_mode_is_off_outside_the_block_and_restored_after_an_error():
    x = tl.tensor(np.array([0.0]), requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(RuntimeError):
            with tl.autograd.detect_anomaly():
                x / x
        assert np.isnan((x / x).numpy()).all()  # no error now
    assert not tl.autograd.grad_mode.state.anomaly
