"""The new layers (adaptive pooling, Dropout2d, GroupNorm, InstanceNorm1d, Conv1d, F.normalize) under tl.compile
(replays bit-identical to eager, a fresh Dropout2d mask per call), vmap (their host computations batched) and
ONNX export (computed in the graph, checked by onnxruntime at fresh inputs and another batch size)."""
import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite import nn
from tinygrad_lite.nn import functional as F

from test_compile import _assert_identical
from test_nn_layers_extra import _x


class _DropCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.drop, self.fc = nn.Conv2d(2, 6, 3, padding=1), nn.Dropout2d(0.4), nn.Linear(6, 3)

    def forward(self, x):
        return self.fc(F.adaptive_avg_pool2d(self.drop(F.relu(self.conv(x))), 1).flatten(1))


def _images(rng):
    return tl.tensor(rng.standard_normal((4, 2, 7, 7)).astype(np.float32)), tl.tensor(rng.integers(0, 3, 4))


def test_compiled_dropout2d_step_draws_a_fresh_mask_each_call_bit_identical_to_eager():
    step = _assert_identical(_DropCNN, lambda m: tl.optim.SGD(m.parameters(), lr=0.05, momentum=0.9), _images)
    assert step.stats["replays"] > 0
    tl.manual_seed(0)
    m = _DropCNN()
    f = tl.compile(lambda x: (m(x) ** 2).sum().backward())
    rng = np.random.default_rng(0)
    x = _images(rng)[0]
    grads = []
    for _ in range(4):
        m.zero_grad()
        f(x)
        grads.append(m.conv.weight.grad.numpy().copy())
    assert f.stats["replays"] >= 2
    assert not np.array_equal(grads[2], grads[3])  # the same input, a new mask each replay


# ---------------- tl.compile: a small CNN ----------------
class _SmallCNN(nn.Module):
    """Conv2d + GroupNorm + adaptive pooling to a non-divisible size, then a Conv1d block over the flattened rows
    with InstanceNorm1d and adaptive max pooling, and F.normalize before the classifier."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 8, 3, padding=1)
        self.gn = nn.GroupNorm(4, 8)
        self.pool = nn.AdaptiveAvgPool2d((3, None))
        self.conv1 = nn.Conv1d(8, 6, 3, padding="same", padding_mode="reflect")
        self.inorm = nn.InstanceNorm1d(6, affine=True)
        self.fc = nn.Linear(6 * 4, 3)

    def forward(self, x):
        h = self.pool(F.relu(self.gn(self.conv(x))))  # (N, 8, 3, 7)
        h = F.relu(self.inorm(self.conv1(h.flatten(2))))  # (N, 6, 21)
        h = F.adaptive_max_pool2d(h.unsqueeze(1), (None, 4)).squeeze(1)  # (N, 6, 4)
        return self.fc(F.normalize(h.flatten(1)))


def test_compiled_cnn_with_the_new_layers_replays_bit_identically():
    step = _assert_identical(_SmallCNN, lambda m: tl.optim.Adam(m.parameters(), lr=0.01), _images)
    assert step.stats["replays"] > 0 and step.stats["eager_calls"] == 0


def test_vmap_batches_the_host_computations():
    x = tl.tensor(_x((3, 2, 2, 5, 7)))
    out = tl.func.vmap(lambda t: F.adaptive_max_pool2d(t, (3, 4)) + F.adaptive_avg_pool2d(t, (2, 3)).sum())(x)
    ref = tl.stack([F.adaptive_max_pool2d(t, (3, 4)) + F.adaptive_avg_pool2d(t, (2, 3)).sum() for t in x])
    np.testing.assert_allclose(out.numpy(), ref.numpy(), rtol=1e-12)
    tl.manual_seed(1)
    masks = tl.func.vmap(lambda t: F.dropout2d(t), randomness="different")(tl.ones(3, 2, 4, 2, 2)).numpy()
    assert (masks == masks[..., :1, :1]).all() and not (masks == masks[:1]).all()


# ---------------- ONNX ----------------
@pytest.mark.onnx
def test_onnx_export_of_a_model_using_the_new_layers(tmp_path):
    from conftest import skip_or_fail
    try:
        import onnx  # noqa: F401  (the exporter needs it)
        import onnxruntime as ort
    except ImportError as exc:
        skip_or_fail("TL_REQUIRE_ONNX", f"onnx/onnxruntime missing ({exc})")
    tl.manual_seed(0)
    model = _SmallCNN()
    model.inorm = nn.InstanceNorm1d(6, affine=True, track_running_stats=True)
    model.train()
    model(tl.randn(4, 2, 7, 7))  # running statistics that differ from their initial values
    model.eval()
    path = str(tmp_path / "m.onnx")
    x = tl.randn(2, 2, 7, 7)
    tl.onnx.export(model, (x,), path, input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "b"}})
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    for shape in ((2, 2, 7, 7), (5, 2, 7, 7)):  # a fresh input at another batch size: nothing was frozen
        fresh = np.random.default_rng(len(shape)).standard_normal(shape).astype(np.float32)
        (got,) = sess.run(None, {"x": fresh})
        np.testing.assert_allclose(got, model(tl.tensor(fresh)).numpy(), rtol=1e-4, atol=1e-5)
