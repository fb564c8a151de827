"""tl.onnx.export: every primitive through its sampler, example models, dynamic batch, gradients, names, errors.
Each exported model passes onnx.checker (full_check) and runs in onnxruntime with our forward's values.
Skipped without onnx/onnxruntime, failing instead when TL_REQUIRE_ONNX=1."""
import io
import os
import sys

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st, HealthCheck

import tinygrad_lite as tl
from tinygrad_lite import nn
from tinygrad_lite.ops import REGISTRY

from primitive_gen import HypothesisGen

pytestmark = pytest.mark.onnx
NAMES = sorted(REGISTRY)


def export_and_run(ort, fn, args, feeds=None, **kw):
    """Export fn(*args), check it, run it in onnxruntime on `feeds` (default: the args); returns (proto, outputs)."""
    import onnx
    buf = io.BytesIO()
    proto = tl.onnx.export(fn, args, buf, **kw)
    model = onnx.load_from_string(buf.getvalue())
    onnx.checker.check_model(model, full_check=True)
    sess = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    feeds = feeds if feeds is not None else [a.numpy() for a in args]
    return proto, sess.run(None, dict(zip(names, feeds)))


def test_every_primitive_has_an_onnx_rule():
    missing = [n for n, p in REGISTRY.items() if p.onnx is None]
    assert not missing, f"primitives without an ONNX rule (defonnx in ops/<group>_onnx.py): {missing}"


def _leaf(a, dtype):
    if a.dtype.kind == "f":
        return tl.tensor(a.astype(dtype), requires_grad=True)
    return tl.tensor(a)


def _is_missing_kernel(exc):
    return "NOT_IMPLEMENTED" in str(exc) or "Could not find an implementation" in str(exc)


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_primitive_alone_matches_onnxruntime(ort, name, data):
    """float32 always; float64 too, except where onnxruntime has no float64 kernel (then float32 is the check)."""
    prim = REGISTRY[name]
    arrays, attrs = prim.sample(HypothesisGen(data))
    if name == "cast":
        attrs = (np.dtype("float32"),)
    for dtype, tol in ((np.float32, 2e-5), (np.float64, 1e-10)):
        xs = [_leaf(a, dtype) for a in arrays]
        expected = prim.call(*xs, *attrs).numpy()
        try:
            _, (got,) = export_and_run(ort, lambda *t: prim.call(*t, *attrs), xs)
        except Exception as exc:
            if dtype == np.float64 and _is_missing_kernel(exc):
                continue  # onnxruntime lacks a float64 kernel for this operator: checked in float32 above
            raise
        assert got.shape == expected.shape and got.dtype == expected.dtype, (name, got.shape, expected.shape)
        np.testing.assert_allclose(got, expected, rtol=tol, atol=tol, err_msg=f"{name} {dtype.__name__} {attrs}")


# ---------------- models ----------------
def _compare(ort, model, args, tol=1e-5, **kw):
    model.eval()
    with tl.no_grad():
        expected = model(*args)
    expected = expected if isinstance(expected, (tuple, list)) else (expected,)
    proto, got = export_and_run(ort, model, args, **kw)
    for e, g in zip(expected, got):
        np.testing.assert_allclose(g, e.numpy(), rtol=tol, atol=tol)
    return proto


def test_mlp_and_names(ort):
    tl.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3), nn.Softmax(dim=-1))
    proto = _compare(ort, model, (tl.randn(4, 5),), input_names=["x"], output_names=["probs"])
    assert [i.name for i in proto.graph.input] == ["x"] and [o.name for o in proto.graph.output] == ["probs"]
    assert {i.name for i in proto.graph.initializer} >= set(model.state_dict())
    docs = [n.doc_string for n in proto.graph.node if n.doc_string.startswith("tinygrad_lite")]
    assert any("in module '0' (Linear)" in d for d in docs) and all(".py:" in d for d in docs)
    assert any(n.name.startswith("2/") for n in proto.graph.node)  # module path in the node name


def test_digits_cnn_eval_with_batchnorm(ort):
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples"))
    try:
        from digits_cnn import build_model
    finally:
        sys.path.pop(0)
    tl.manual_seed(0)
    model = build_model()
    model.train()
    model(tl.randn(6, 1, 8, 8))  # running statistics away from their initial values
    proto = _compare(ort, model, (tl.randn(3, 1, 8, 8),), tol=1e-4)
    inits = {i.name for i in proto.graph.initializer}
    assert {"0.weight", "0.bias", "1.weight", "1.bias", "9.weight"} <= inits  # BatchNorm's affine, by name
    assert any(n.op_type == "MaxPool" for n in proto.graph.node)  # the argmax of max-pooling, in the graph


class _Seq(nn.Module):
    """Embedding -> LSTM -> LayerNorm -> GELU -> Linear: the recurrent and normalisation layers in one."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(11, 6)
        self.lstm = nn.LSTM(6, 5, batch_first=True)
        self.norm = nn.LayerNorm(5)
        self.head = nn.Linear(5, 2)

    def forward(self, idx):
        out, _ = self.lstm(self.emb(idx))
        return self.head(nn.functional.gelu(self.norm(out)))


def test_embedding_lstm_layernorm(ort):
    tl.manual_seed(1)
    idx = tl.tensor(np.random.default_rng(0).integers(0, 11, (2, 4)))
    _compare(ort, _Seq(), (idx,), tol=1e-5)


class _AttentionBlock(nn.Module):
    """Embedding -> single-head self-attention written as tensor expressions -> residual LayerNorm -> GELU MLP."""

    def __init__(self, vocab=13, d=8):
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.q, self.k, self.v = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
        self.norm = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))

    def forward(self, idx):
        h = self.emb(idx)
        scores = (self.q(h) @ self.k(h).transpose(-2, -1)) * (1.0 / np.sqrt(h.shape[-1]))
        h = self.norm(h + nn.functional.softmax(scores, dim=-1) @ self.v(h))
        return h + self.mlp(h)


def test_attention_block_forward_and_its_gradient_graph(ort):
    """The example model the issue names: its forward, and the gradient of a loss w.r.t. every parameter (the
    backward recorded with create_graph), both against our values, at the recorded input and at a fresh one."""
    tl.manual_seed(6)
    block = _AttentionBlock()
    idx = tl.tensor(np.random.default_rng(0).integers(0, 13, (2, 5)))
    _compare(ort, block, (idx,), tol=2e-5)
    params = list(block.parameters())

    def grads(i):
        return tl.grad((block(i) ** 2).mean(), params, create_graph=True)
    expected = [g.numpy() for g in grads(idx)]
    proto, got = export_and_run(ort, grads, (idx,), input_names=["idx"])
    for e, g in zip(expected, got):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-5)
    other = np.random.default_rng(1).integers(0, 13, (2, 5))
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    for e, g in zip(grads(tl.tensor(other)), sess.run(None, {"idx": other})):
        np.testing.assert_allclose(g, e.numpy(), rtol=1e-4, atol=1e-5)



class _CausalActivations(nn.Module):
    """A causal (triu-masked) attention mix, then every activation whose mask is a comparison, and PReLU per
    channel (dim 1: time here)."""

    def __init__(self, d=6, t=4):
        super().__init__()
        self.lin, self.glu, self.prelu = nn.Linear(d, 2 * d), nn.GLU(), nn.PReLU(t)
        self.acts = nn.ModuleList([nn.SiLU(), nn.Mish(), nn.ELU(0.5), nn.SELU(), nn.CELU(2.0), nn.Softplus(2.0, 6.0),
                                   nn.Hardtanh(-2.0, 3.0), nn.ReLU6(), nn.Hardsigmoid(), nn.Hardswish(),
                                   nn.LogSigmoid(), nn.Softsign(), nn.Tanhshrink(), nn.Threshold(0.5, -2.0)])

    def forward(self, x):
        t = x.shape[1]
        scores = (x @ x.transpose(-2, -1)).masked_fill(tl.triu(tl.ones(t, t), 1).bool(), float("-inf"))
        h = self.glu(self.lin(nn.functional.softmin(-scores, -1) @ x)) * 4.0
        return tl.stack([a(h) for a in self.acts]).sum(0) + self.prelu(h)


def test_new_activations_and_a_causal_mask_compute_their_masks_in_the_graph(ort):
    """Run at the recorded input and at a fresh one: a mask frozen at export would give the fresh one wrong values."""
    tl.manual_seed(3)
    model = _CausalActivations()
    proto = _compare(ort, model, (tl.randn(2, 4, 6),), tol=1e-5, input_names=["x"])
    fresh = np.random.default_rng(9).standard_normal((2, 4, 6)).astype(np.float32) * 2
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    with tl.no_grad():
        np.testing.assert_allclose(sess.run(None, {"x": fresh})[0], model(tl.tensor(fresh)).numpy(), rtol=1e-5,
                                   atol=1e-5)

def test_gru_sequence_dynamic_batch(ort):
    tl.manual_seed(5)
    gru = nn.GRU(3, 4, batch_first=True)
    x = tl.randn(2, 5, 3)
    proto, _ = export_and_run(ort, gru, (x,), input_names=["x"], output_names=["out", "h"],
                              dynamic_axes={"x": {0: "batch"}, "out": {0: "batch"}, "h": {1: "batch"}})
    xb = np.random.default_rng(0).standard_normal((3, 5, 3)).astype(np.float32)
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    with tl.no_grad():
        expected = gru(tl.tensor(xb))
    for e, g in zip(expected, sess.run(None, {"x": xb})):
        np.testing.assert_allclose(g, e.numpy(), rtol=1e-5, atol=1e-5)


def test_dynamic_batch_runs_at_other_sizes(ort):
    tl.manual_seed(2)
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(12, 2))
    model.eval()
    x = tl.randn(2, 1, 4, 4)
    proto, _ = export_and_run(ort, model, (x,), input_names=["x"], output_names=["y"],
                              dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    for n in (1, 5):
        xb = np.random.default_rng(n).standard_normal((n, 1, 4, 4)).astype(np.float32)
        with tl.no_grad():
            expected = model(tl.tensor(xb)).numpy()
        got, = sess.run(None, {"x": xb})
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


# ---------------- gradients ----------------
def _mlp_loss(model):
    def loss(x):
        return (model(x) ** 2).sum()
    return loss


def test_gradient_and_hvp_export(ort):
    tl.manual_seed(3)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))
    params = list(model.parameters())

    def grads(x):
        return tl.grad(_mlp_loss(model)(x), params, create_graph=True)

    def hvp(x):
        gs = tl.grad(_mlp_loss(model)(x), params, create_graph=True)
        dot = sum((g * v).sum() for g, v in zip(gs, vs))
        return tl.grad(dot, params, create_graph=True)

    vs = [tl.tensor(np.random.default_rng(5).standard_normal(p.shape).astype(np.float32)) for p in params]
    x = tl.randn(5, 3)
    for fn in (grads, hvp):
        expected = [g.numpy() for g in fn(x)]
        proto, got = export_and_run(ort, fn, (x,), input_names=["x"])
        for e, g in zip(expected, got):
            np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-5)
        x2 = np.random.default_rng(7).standard_normal((5, 3)).astype(np.float32)  # the graph, not frozen values
        sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
        for e, g in zip(fn(tl.tensor(x2)), sess.run(None, {"x": x2})):
            np.testing.assert_allclose(g, e.numpy(), rtol=1e-5, atol=1e-5)


def test_input_gradient_matches_torch(ort, torch):
    x = np.random.default_rng(4).standard_normal((3, 4))
    xt = tl.tensor(x, requires_grad=True)
    _, (got,) = export_and_run(ort, lambda t: tl.grad(t.tanh().sin().sum(), t, create_graph=True)[0], (xt,))
    tx = torch.tensor(x, requires_grad=True)
    expected, = torch.autograd.grad(tx.tanh().sin().sum(), tx)
    np.testing.assert_allclose(got, expected.numpy(), rtol=1e-10)


# ---------------- errors ----------------
class _Custom(tl.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, g):
        return g * 2


def test_export_error_names_what_and_where(ort, tmp_path):
    path = tmp_path / "m.onnx"

    def branchy(x):
        return x * 2 if (x.sum() > 0).item() else x * 3  # a branch on values

    with pytest.raises(tl.onnx.ExportError, match=r"test_onnx_export\.py:\d+"):
        tl.onnx.export(branchy, (tl.randn(3),), path)
    assert not path.exists()
    with pytest.raises(RuntimeError):
        tl.onnx.export(lambda x: _Custom.apply(x), (tl.randn(3, requires_grad=True),), path)
    assert not path.exists()


def test_bad_names_and_axes_fail_before_writing(ort, tmp_path):
    path = tmp_path / "m.onnx"
    lin = nn.Linear(2, 2)
    with pytest.raises(ValueError, match="weight"):
        tl.onnx.export(lin, (tl.randn(1, 2),), path, input_names=["weight"])
    with pytest.raises(ValueError, match="neither an input nor an output"):
        tl.onnx.export(lin, (tl.randn(1, 2),), path, dynamic_axes={"z": {0: "b"}})
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        tl.onnx.export(lin, (tl.randn(1, 2),), path, dynamic_axes={"input_0": {5: "b"}})
    assert not path.exists()


def test_missing_onnx_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match=r"tinygrad_lite\[onnx\]"):
        tl.onnx.export(lambda x: x * 2, (tl.randn(2),), io.BytesIO())


@pytest.mark.parametrize("pool", [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1),
                                  dict(kernel_size=2, stride=1, dilation=2), dict(kernel_size=3, stride=2,
                                                                                  ceil_mode=True)])
def test_max_pool_with_nan_exports_eager_values_and_gradients(ort, pool):
    """A window holding a NaN gives NaN and its gradient goes to the window's last NaN, as eager (and PyTorch):
    onnxruntime's MaxPool alone passes over NaN (its Indices pointed at the largest number)."""
    x = np.random.default_rng(11).standard_normal((2, 2, 7, 7))
    x[0, 0, 0, 0] = x[0, 0, 0, 1] = x[1, 1, 3, 4] = x[1, 0, 6, 6] = x[0, 1, 2, 2] = x[0, 1, 3, 3] = np.nan
    m = nn.MaxPool2d(**pool)

    def both(t):
        y = m(t)
        return y, tl.grad((y * tl.tensor(np.arange(y.numel(), dtype=np.float64).reshape(y.shape))).sum(), t,
                          create_graph=True)[0]
    xt = tl.tensor(x, requires_grad=True)
    want = [o.detach().numpy() for o in both(xt)]
    assert np.isnan(want[0]).any() and not np.isnan(want[1]).any()
    _, got = export_and_run(ort, both, (xt,))
    for w, g in zip(want, got):
        np.testing.assert_array_equal(g, w)
