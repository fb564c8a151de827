"""Layers: gradcheck through the module (parameters included, float64), closed forms, and input errors."""
import math
import warnings

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite import nn
from tinygrad_lite.nn import functional as F


def _x(*shape, seed=0):
    return tl.tensor(np.random.default_rng(seed).standard_normal(shape), requires_grad=True)


def _ties_free(*shape, seed=0):
    """Distinct values, away from each other, so max-pool windows have a unique maximum."""
    rng = np.random.default_rng(seed)
    return tl.tensor(rng.permutation(np.prod(shape)).reshape(shape) * 0.1 + rng.uniform(0, 0.01, shape),
                     requires_grad=True)


GRADCHECK = [
    (lambda: nn.Linear(3, 2), (4, 3)),
    (lambda: nn.Linear(3, 2, bias=False), (2, 5, 3)),
    (lambda: nn.Conv2d(2, 3, 3, padding=1), (2, 2, 4, 4)),
    (lambda: nn.Conv2d(4, 4, (2, 3), stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=2), (1, 4, 5, 6)),
    (lambda: nn.Conv2d(2, 2, 4, padding="same", padding_mode="reflect"), (1, 2, 5, 5)),
    (lambda: nn.Conv2d(2, 3, 3, padding=1, padding_mode="circular", bias=False), (2, 4, 4)),
    (lambda: nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False), (1, 2, 6, 5)),
    (lambda: nn.AvgPool2d(2, divisor_override=3), (1, 2, 4, 4)),
    (lambda: nn.BatchNorm1d(3), (5, 3)),
    (lambda: nn.BatchNorm2d(2), (3, 2, 2, 3)),
    (lambda: nn.BatchNorm2d(2).eval(), (3, 2, 2, 3)),
    (lambda: nn.LayerNorm((2, 3)), (4, 2, 3)),
    (lambda: nn.Dropout(0.4), (4, 5)),  # gradcheck reseeds before each call: the same mask every time
    (lambda: nn.RNN(2, 3, num_layers=2, nonlinearity="tanh", bidirectional=True), (3, 2, 2)),
    (lambda: nn.LSTM(2, 3, batch_first=True), (2, 3, 2)),
    (lambda: nn.LSTM(2, 3, num_layers=2, bias=False), (3, 2)),
    (lambda: nn.GRU(2, 3, num_layers=2, bidirectional=True), (3, 1, 2)),
    (lambda: nn.LeakyReLU(0.3), (3, 4)),
    (lambda: nn.Sigmoid(), (3, 4)),
    (lambda: nn.Tanh(), (3, 4)),
    (lambda: nn.GELU(), (3, 4)),
    (lambda: nn.GELU("tanh"), (3, 4)),
    (lambda: nn.Softmax(1), (3, 4)),
    (lambda: nn.LogSoftmax(0), (3, 4)),
    (lambda: nn.Flatten(), (2, 3, 2)),
]


@pytest.mark.parametrize("make,shape", GRADCHECK)
def test_gradcheck_through_module(make, shape):
    assert tl.gradcheck(make(), (_x(*shape),))


@pytest.mark.parametrize("kwargs", [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
                                    dict(kernel_size=(2, 3), stride=1, dilation=(2, 1))])
def test_gradcheck_max_pool(kwargs):
    assert tl.gradcheck(nn.MaxPool2d(**kwargs), (_ties_free(2, 2, 6, 7),))


def test_gradcheck_relu_and_embedding():
    x = _x(3, 4)
    x.numpy()[np.abs(x.numpy()) < 0.05] = 0.5  # away from the kink
    assert tl.gradcheck(nn.ReLU(), (x,))
    idx = tl.tensor(np.array([[0, 1, 4], [4, 4, 2]]))
    assert tl.gradcheck(nn.Embedding(5, 3), (idx,))
    # with padding_idx the row's value is used but, by design (PyTorch), gets no gradient
    with pytest.raises(tl.GradcheckError, match="parameter 'weight'"):
        tl.gradcheck(nn.Embedding(5, 3, padding_idx=1), (idx,), find_faulty=False)


def test_second_order_through_layers():
    lin, act = nn.Linear(3, 3, dtype=tl.float64), nn.Tanh()
    x = _x(2, 3)
    assert tl.gradgradcheck(lambda a: act(lin(a)) * nn.functional.gelu(a), (x,))


# ---------------- closed forms ----------------
def test_linear_closed_form():
    lin = nn.Linear(2, 3)
    lin.load_state_dict({"weight": np.arange(6.0).reshape(3, 2), "bias": np.array([1.0, 0.0, -1.0])})
    out = lin(tl.tensor([[1.0, 2.0]]))
    np.testing.assert_allclose(out.numpy(), [[3.0, 8.0, 13.0]])
    assert F.linear(tl.ones(2), lin.weight).shape == (3,)


def test_conv_with_a_one_hot_kernel_shifts_the_image():
    conv = nn.Conv2d(1, 1, 3, padding=1, bias=False)
    kernel = np.zeros((1, 1, 3, 3))
    kernel[0, 0, 1, 2] = 1.0  # picks the right neighbour
    conv.load_state_dict({"weight": kernel})
    img = np.arange(16.0).reshape(1, 1, 4, 4)
    out = conv(tl.tensor(img)).numpy()[0, 0]
    np.testing.assert_allclose(out[:, :3], img[0, 0, :, 1:])
    np.testing.assert_allclose(out[:, 3], 0)


def test_grouped_conv_equals_separate_convs():
    conv = nn.Conv2d(4, 6, 3, groups=2)
    x = _x(2, 4, 5, 5)
    out = conv(x).numpy()
    for g in range(2):
        part = F.conv2d(tl.tensor(x.numpy()[:, 2 * g:2 * g + 2]), conv.weight[3 * g:3 * g + 3],
                        conv.bias[3 * g:3 * g + 3])
        np.testing.assert_allclose(out[:, 3 * g:3 * g + 3], part.numpy(), rtol=1e-5, atol=1e-6)


def test_pooling_closed_forms():
    img = tl.tensor(np.arange(16.0).reshape(1, 1, 4, 4), requires_grad=True)
    out, idx = F.max_pool2d(img, 2, return_indices=True)
    np.testing.assert_array_equal(out.numpy()[0, 0], [[5, 7], [13, 15]])
    np.testing.assert_array_equal(idx.numpy()[0, 0], [[5, 7], [13, 15]])
    out.sum().backward()
    assert img.grad.numpy().sum() == 4 and img.grad.numpy()[0, 0, 1, 1] == 1
    np.testing.assert_allclose(F.avg_pool2d(img, 2).numpy()[0, 0], [[2.5, 4.5], [10.5, 12.5]])
    padded = F.avg_pool2d(img, 2, stride=2, padding=1, count_include_pad=False).numpy()[0, 0]
    assert padded[0, 0] == 0.0 and padded[0, 1] == 1.5  # corner window holds one real element
    ties = tl.zeros(1, 1, 2, 2, requires_grad=True)
    F.max_pool2d(ties, 2).sum().backward()
    np.testing.assert_array_equal(ties.grad.numpy()[0, 0], [[1, 0], [0, 0]])  # the first maximum takes it all


def test_max_pool_reads_windows_without_copying_and_pads_with_minus_inf():
    x = tl.tensor(-np.ones((1, 1, 3, 3)) * 5)
    out = F.max_pool2d(x, 3, stride=1, padding=1)
    assert np.all(out.numpy() == -5)  # padding never wins


def test_batchnorm_training_statistics_and_running_update():
    bn = nn.BatchNorm1d(2, momentum=0.5)
    x = np.array([[1.0, 10.0], [3.0, 30.0], [5.0, 20.0]])
    out = bn(tl.tensor(x)).numpy()
    np.testing.assert_allclose(out.mean(0), 0, atol=1e-6)
    np.testing.assert_allclose(out.var(0), 1, rtol=1e-4)
    np.testing.assert_allclose(bn.running_mean.numpy(), 0.5 * x.mean(0), rtol=1e-6)
    np.testing.assert_allclose(bn.running_var.numpy(), 0.5 + 0.5 * x.var(0, ddof=1), rtol=1e-6)
    assert int(bn.num_batches_tracked.item()) == 1
    bn.eval()
    expect = (x - bn.running_mean.numpy()) / np.sqrt(bn.running_var.numpy() + 1e-5)
    np.testing.assert_allclose(bn(tl.tensor(x)).numpy(), expect, rtol=1e-5)
    assert int(bn.num_batches_tracked.item()) == 1  # eval does not count
    cumulative = nn.BatchNorm1d(1, momentum=None)
    for v in (2.0, 4.0, 9.0):
        cumulative(tl.tensor(np.array([[v - 1], [v + 1]])))
    np.testing.assert_allclose(cumulative.running_mean.numpy(), [5.0], rtol=1e-6)  # plain average of the means


def test_layernorm_closed_form():
    x = np.array([[1.0, 2.0, 3.0, 6.0]])
    out = nn.LayerNorm(4)(tl.tensor(x)).numpy()
    np.testing.assert_allclose(out, (x - 3) / np.sqrt(x.var() + 1e-5), rtol=1e-6)


def test_dropout_statistics_scaling_reproducibility_and_eval():
    d = nn.Dropout(0.25)
    x = tl.ones(200, 500)
    tl.manual_seed(1)
    a = d(x).numpy()
    kept = a != 0
    assert abs(kept.mean() - 0.75) < 0.01 and np.allclose(a[kept], 1 / 0.75)
    tl.manual_seed(1)
    np.testing.assert_array_equal(d(x).numpy(), a)
    assert d.eval()(x) is x
    assert np.all(F.dropout(x, 1.0).numpy() == 0)
    with pytest.raises(ValueError, match="between 0 and 1"):
        nn.Dropout(1.5)


def test_embedding_lookup_padding_row_and_gradient_accumulation():
    emb = nn.Embedding(4, 2, padding_idx=0)
    assert np.all(emb.weight.numpy()[0] == 0)
    idx = tl.tensor(np.array([0, 2, 2, 3]))
    out = emb(idx)
    np.testing.assert_array_equal(out.numpy(), emb.weight.numpy()[[0, 2, 2, 3]])
    out.sum().backward()
    np.testing.assert_array_equal(emb.weight.grad.numpy()[:, 0], [0, 0, 2, 1])
    frozen = nn.Embedding.from_pretrained(tl.tensor(np.eye(3)))
    assert not frozen.weight.requires_grad and frozen(tl.tensor([2])).numpy().tolist() == [[0, 0, 1]]


def test_rnn_single_step_closed_form():
    rnn = nn.RNN(2, 2, bias=False)
    rnn.load_state_dict({"weight_ih_l0": np.eye(2), "weight_hh_l0": np.eye(2) * 0.5})
    x = np.array([[[1.0, -1.0]], [[0.5, 0.0]]])
    out, h = rnn(tl.tensor(x))
    h1 = np.tanh(x[0, 0])
    h2 = np.tanh(x[1, 0] + 0.5 * h1)
    np.testing.assert_allclose(out.numpy()[:, 0], [h1, h2], rtol=1e-6)
    np.testing.assert_allclose(h.numpy()[0, 0], h2, rtol=1e-6)


def test_lstm_gate_order_closed_form():
    lstm = nn.LSTM(1, 1, bias=True)
    # gates i, f, g, o: only the input gate's bias and the cell candidate's input weight are non-zero
    lstm.load_state_dict({"weight_ih_l0": np.array([[0.0], [0.0], [1.0], [0.0]]), "weight_hh_l0": np.zeros((4, 1)),
                          "bias_ih_l0": np.array([2.0, -50.0, 0.0, 50.0]), "bias_hh_l0": np.zeros(4)})
    out, (h, c) = lstm(tl.tensor(np.array([[[0.7]]])))
    sig = 1 / (1 + math.exp(-2.0))
    np.testing.assert_allclose(c.numpy().ravel(), [sig * math.tanh(0.7)], rtol=1e-5)
    np.testing.assert_allclose(h.numpy().ravel(), [math.tanh(sig * math.tanh(0.7))], rtol=1e-5)


def test_activation_closed_forms():
    x = tl.tensor([-2.0, 0.0, 3.0], requires_grad=True)
    np.testing.assert_allclose(nn.LeakyReLU(0.1)(x).numpy(), [-0.2, 0.0, 3.0], rtol=1e-6)
    nn.LeakyReLU(0.1)(x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [0.1, 0.1, 1.0], rtol=1e-6)  # slope at 0, as PyTorch
    gelu = nn.GELU()(tl.tensor([1.0], dtype=tl.float64)).item()
    assert abs(gelu - 0.5 * (1 + math.erf(1 / math.sqrt(2)))) < 1e-15
    np.testing.assert_allclose(nn.Softmax(dim=0)(tl.tensor([0.0, math.log(3.0)])).numpy(), [0.25, 0.75], rtol=1e-6)
    with pytest.warns(UserWarning, match="implicit dimension"):
        nn.Softmax()(tl.ones(2, 3))
    assert nn.Flatten(0, 1)(tl.ones(2, 3, 4)).shape == (6, 4)
    t = tl.ones(2)
    assert nn.Identity(5, unused=True)(t) is t


# ---------------- errors ----------------
def test_layer_input_errors_name_the_layer_and_shapes():
    with pytest.raises(RuntimeError, match=r"Linear: expected input with last dim 4, got shape \(2, 5\)"):
        nn.Linear(4, 3)(tl.ones(2, 5))
    with pytest.raises(RuntimeError, match=r"Conv2d: expected input with 3 channels .* got shape \(2, 4, 8, 8\)"):
        nn.Conv2d(3, 2, 3)(tl.ones(2, 4, 8, 8))
    with pytest.raises(RuntimeError, match="does not fit the padded input"):
        nn.Conv2d(1, 1, 5)(tl.ones(1, 1, 3, 3))
    with pytest.raises(ValueError, match="strided convolutions"):
        nn.Conv2d(1, 1, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="divisible by groups"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(RuntimeError, match=r"BatchNorm2d: expected 4D input \(got 3D"):
        nn.BatchNorm2d(3)(tl.ones(2, 3, 4))
    with pytest.raises(RuntimeError, match="expected input with 3 channels"):
        nn.BatchNorm1d(3)(tl.ones(2, 4))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        nn.BatchNorm1d(3)(tl.ones(1, 3))
    with pytest.raises(RuntimeError, match=r"LayerNorm: expected input with shape \(\*, 2, 3\)"):
        nn.LayerNorm((2, 3))(tl.ones(3, 2))
    with pytest.raises(IndexError, match="index 7 is out of range for an embedding table of 5 rows"):
        nn.Embedding(5, 2)(tl.tensor([1, 7]))
    with pytest.raises(TypeError, match="integer indices"):
        nn.Embedding(5, 2)(tl.tensor([1.0]))
    with pytest.raises(RuntimeError, match="LSTM: input.size\\(-1\\) must be equal to input_size. Expected 3, got 2"):
        nn.LSTM(3, 4)(tl.ones(5, 1, 2))
    with pytest.raises(RuntimeError, match=r"GRU: Expected hidden size \(2, 1, 4\), got \(1, 1, 4\)"):
        nn.GRU(3, 4, num_layers=2)(tl.ones(5, 1, 3), tl.zeros(1, 1, 4))
    with pytest.raises(RuntimeError, match="pad should be at most half"):
        nn.MaxPool2d(2, padding=2)(tl.ones(1, 1, 4, 4))
    with pytest.raises(RuntimeError, match="MaxPool|max_pool2d"):
        nn.MaxPool2d(2)(tl.ones(4, 4))
    with pytest.raises(ValueError, match="approximate"):
        nn.GELU("fast")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        nn.LSTM(2, 2, dropout=0.5)
    assert any("num_layers greater than 1" in str(w.message) for w in caught)


def test_recurrent_shapes_and_returns():
    lstm = nn.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True)
    out, (h, c) = lstm(tl.randn(2, 5, 3))
    assert out.shape == (2, 5, 8) and h.shape == (4, 2, 4) and c.shape == (4, 2, 4)
    np.testing.assert_allclose(out.numpy()[:, -1, :4], h.numpy()[2])  # last layer, forward direction, last step
    np.testing.assert_allclose(out.numpy()[:, 0, 4:], h.numpy()[3])  # last layer, backward direction, first step
    assert [n for n, _ in lstm.named_parameters()][:5] == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0",
                                                           "bias_hh_l0", "weight_ih_l0_reverse"]
    assert lstm.weight_ih_l1.shape == (16, 8)
    bound = 1 / math.sqrt(4)
    assert all(np.abs(p.numpy()).max() <= bound for p in lstm.parameters())
