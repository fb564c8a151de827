"""Invalid layer arguments and inputs: the error type and message (naming the layer or function, PyTorch's wording
where it has one), checked at construction where possible; a rejected call leaves the layer's state unchanged."""
import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite import nn
from tinygrad_lite.nn import functional as F


def ones(*shape, dtype=np.float32):
    return tl.tensor(np.ones(shape, dtype))


@pytest.mark.parametrize("kwargs, exc, message", [
    (dict(kernel_size=0), RuntimeError, "Conv2d: kernel size should be greater than zero, but got kernel_height: 0 "
                                        "kernel_width: 0"),
    (dict(kernel_size=(3, 0)), ValueError, "kernel_height: 3 kernel_width: 0"),
    (dict(stride=0), RuntimeError, r"Conv2d: non-positive stride is not supported, got stride=\(0, 0\)"),
    (dict(stride=(1, -2)), RuntimeError, "non-positive stride"),
    (dict(dilation=0), RuntimeError, r"Conv2d: dilation should be greater than zero, but got \[0, 0\]"),
    (dict(padding=-1), RuntimeError, r"Conv2d: negative padding is not supported, got padding=\(-1, -1\)"),
    (dict(padding=(0, -1), padding_mode="reflect"), RuntimeError, "negative padding"),
    (dict(kernel_size=2.5), TypeError, "Conv2d: kernel_size must be an int or a pair of ints, got 2.5"),
    (dict(kernel_size=(3,)), ValueError, "Conv2d: kernel_size must be an int or a pair of ints"),
    (dict(stride="2"), TypeError, "Conv2d: stride must be an int or a pair of ints"),
    (dict(groups=0), ValueError, "Conv2d: groups must be a positive integer"),
    (dict(groups=1.0), TypeError, "Conv2d: groups should be of type int, got: float"),
    (dict(groups=2), ValueError, "Conv2d: in_channels must be divisible by groups, got 3 and 2"),
    (dict(in_channels=-3), RuntimeError, "Conv2d: in_channels must be non-negative, got -3"),
    (dict(out_channels=4.0), TypeError, "Conv2d: out_channels should be of type int, got: float"),
    (dict(padding_mode="mirror"), ValueError, "Conv2d: padding_mode must be one of"),
])
def test_conv2d_constructor_rejects_bad_geometry(kwargs, exc, message):
    args = dict(in_channels=3, out_channels=4, kernel_size=3) | kwargs
    with pytest.raises(exc, match=message):
        nn.Conv2d(**args)


@pytest.mark.parametrize("kwargs, message", [
    (dict(stride=0), "conv2d: non-positive stride is not supported"),
    (dict(dilation=(1, 0)), r"conv2d: dilation should be greater than zero, but got \[1, 0\]"),
    (dict(padding=-2), "conv2d: negative padding is not supported"),
    (dict(groups=0), "conv2d: non-positive groups is not supported, got groups=0"),
    (dict(padding="same", dilation=0), "conv2d: dilation should be greater than zero"),
])
def test_functional_conv2d_rejects_bad_geometry(kwargs, message):
    with pytest.raises(RuntimeError, match=message):
        F.conv2d(ones(1, 3, 8, 8), ones(4, 3, 3, 3), **kwargs)
    with pytest.raises(RuntimeError, match="conv2d: kernel size should be greater than zero"):
        F.conv2d(ones(1, 3, 8, 8), ones(4, 3, 0, 2))


def test_conv2d_forward_checks_geometry_changed_after_construction():
    conv = nn.Conv2d(3, 4, 3)
    conv.dilation = (0, 1)
    with pytest.raises(RuntimeError, match="Conv2d: dilation should be greater than zero"):
        conv(ones(1, 3, 8, 8))


@pytest.mark.oracle
@pytest.mark.parametrize("kwargs", [dict(kernel_size=0), dict(stride=0), dict(dilation=0), dict(padding=-1),
                                    dict(stride=(2, -1))])
def test_conv2d_geometry_rejected_as_pytorch_rejects_it(kwargs):
    torch = pytest.importorskip("torch")
    args = dict(in_channels=3, out_channels=4, kernel_size=3) | kwargs
    with pytest.raises(RuntimeError) as theirs:
        torch.nn.Conv2d(**args)(torch.ones(1, 3, 8, 8))
    with pytest.raises(RuntimeError) as ours:
        nn.Conv2d(**args)
    assert str(theirs.value).split(",")[0].split(" but")[0] in str(ours.value)


@pytest.mark.parametrize("make, exc, message", [
    (lambda: nn.Linear(-1, 3), RuntimeError, "Linear: in_features must be non-negative, got -1"),
    (lambda: nn.Linear(3, -2), ValueError, "Linear: out_features must be non-negative, got -2"),
    (lambda: nn.Linear(2.5, 3), TypeError, r"Linear: in_features should be of type int, got: float \(2.5\)"),
    (lambda: nn.Linear("4", 3), TypeError, "Linear: in_features should be of type int, got: str"),
    (lambda: nn.Embedding(-1, 3), RuntimeError, "Embedding: num_embeddings must be non-negative, got -1"),
    (lambda: nn.Embedding(3, 2.0), TypeError, "Embedding: embedding_dim should be of type int, got: float"),
    (lambda: nn.BatchNorm1d(-4), RuntimeError, "BatchNorm1d: num_features must be non-negative, got -4"),
    (lambda: nn.BatchNorm2d(None), TypeError, "BatchNorm2d: num_features should be of type int, got: NoneType"),
    (lambda: nn.LayerNorm((2, -1)), RuntimeError, "LayerNorm: normalized_shape must be non-negative, got -1"),
    (lambda: nn.LayerNorm(2.5), TypeError, "LayerNorm: normalized_shape must be an int or a sequence of ints"),
])
def test_size_arguments_are_checked_at_construction(make, exc, message):
    with pytest.raises(exc, match=message):
        make()


def test_zero_sizes_are_allowed_as_in_pytorch():
    assert nn.Linear(0, 3)(ones(2, 0)).shape == (2, 3)
    assert nn.Embedding(0, 3).weight.shape == (0, 3)
    assert nn.Conv2d(0, 2, 1).weight.shape == (2, 0, 1, 1)
    assert nn.Linear(np.int64(3), 2).in_features == 3


@pytest.mark.parametrize("dtype", [np.int64, np.int32, bool])
def test_norms_reject_non_floating_inputs_naming_layer_and_dtype(dtype):
    x = ones(2, 4, dtype=dtype)
    name = np.dtype(dtype).name
    for call, where in [(lambda: nn.BatchNorm1d(4)(x), "BatchNorm1d"), (lambda: nn.BatchNorm1d(4).eval()(x),
                                                                         "BatchNorm1d"),
                        (lambda: nn.LayerNorm(4)(x), "LayerNorm"),
                        (lambda: F.batch_norm(x, None, None, training=True), "batch_norm"),
                        (lambda: F.layer_norm(x, (4,)), "layer_norm")]:
        with pytest.raises(TypeError, match=f"{where}: expected a floating point input, got dtype {name}"):
            call()


def test_batchnorm_one_value_per_channel_names_the_layer_and_leaves_the_buffers_alone():
    bn = nn.BatchNorm2d(3)
    version = bn.num_batches_tracked._version
    with pytest.raises(ValueError, match=r"BatchNorm2d: Expected more than 1 value per channel when training, got "
                                         r"input size \(1, 3, 1, 1\)"):
        bn(ones(1, 3, 1, 1))
    assert int(bn.num_batches_tracked.item()) == 0 and bn.num_batches_tracked._version == version
    with pytest.raises(ValueError, match="batch_norm: Expected more than 1 value per channel"):
        F.batch_norm(ones(1, 4), None, None, training=True)
    bn.eval()
    assert bn(ones(1, 3, 1, 1)).shape == (1, 3, 1, 1)  # running statistics: one value is fine


def test_batchnorm_of_an_empty_batch_is_empty_and_keeps_the_running_statistics():
    bn = nn.BatchNorm1d(4)
    x = tl.tensor(np.ones((0, 4), np.float32), requires_grad=True)
    y = bn(x)
    assert y.shape == (0, 4) and y.dtype == np.float32
    np.testing.assert_array_equal(bn.running_mean.numpy(), 0)
    np.testing.assert_array_equal(bn.running_var.numpy(), 1)
    assert int(bn.num_batches_tracked.item()) == 1  # as PyTorch: the call counts
    y.sum().backward()
    assert x.grad.shape == (0, 4)
    np.testing.assert_array_equal(bn.weight.grad.numpy(), 0)


@pytest.mark.parametrize("make, shape, message", [
    (lambda: nn.RNN(4, 6), (0, 2, 4), r"RNN: Expected sequence length to be larger than 0, got input of shape "
                                      r"\(0, 2, 4\) \(sequence dim 0\)"),
    (lambda: nn.LSTM(4, 6, batch_first=True), (2, 0, 4), r"LSTM: .* \(2, 0, 4\) \(sequence dim 1\)"),
    (lambda: nn.GRU(4, 6, batch_first=True), (0, 4), r"GRU: .* \(0, 4\) \(sequence dim 0\)"),
])
def test_recurrent_layers_reject_an_empty_sequence(make, shape, message):
    with pytest.raises(RuntimeError, match=message):
        make()(ones(*shape))


def test_recurrent_layers_accept_an_empty_batch_as_pytorch():
    out, (h, c) = nn.LSTM(4, 6, batch_first=True)(ones(0, 3, 4))
    assert out.shape == (0, 3, 6) and h.shape == (1, 0, 6) and c.shape == (1, 0, 6)


@pytest.mark.parametrize("make, exc, message", [
    (lambda: nn.RNN(0, 3), ValueError, "RNN: input_size must be greater than zero, got 0"),
    (lambda: nn.LSTM(2.5, 3), TypeError, r"LSTM: input_size should be of type int, got: float \(2.5\)"),
    (lambda: nn.GRU(3, -1), ValueError, "GRU: hidden_size must be greater than zero, got -1"),
    (lambda: nn.RNN(3, 3, num_layers=0), ValueError, "RNN: num_layers must be greater than zero"),
    (lambda: nn.GRU(3, 3, dropout=1.5), ValueError, "GRU: dropout should be a number in range"),
])
def test_recurrent_constructor_arguments(make, exc, message):
    with pytest.raises(exc, match=message):
        make()


@pytest.mark.filterwarnings("ignore:.*target size:UserWarning")
@pytest.mark.parametrize("loss", [F.mse_loss, F.l1_loss, nn.MSELoss(), nn.L1Loss()])
def test_pointwise_losses_name_themselves_and_both_shapes_when_they_do_not_broadcast(loss):
    name = getattr(loss, "__name__", None) or {"MSELoss": "mse_loss", "L1Loss": "l1_loss"}[type(loss).__name__]
    with pytest.raises(RuntimeError, match=rf"{name}: The size of input \(3\) must match the size of target \(2\) "
                                           r"at non-singleton dimension 1 \(input shape \(2, 3\), target shape "
                                           r"\(3, 2\)\)"):
        loss(ones(2, 3), ones(3, 2))
    with pytest.warns(UserWarning, match="target size"):  # broadcasting shapes: PyTorch's warning, then the loss
        assert loss(ones(2, 3), ones(3)).shape == ()


@pytest.mark.parametrize("call, message", [
    (lambda: F.binary_cross_entropy_with_logits(ones(2, 3), ones(2, 3), weight=ones(4)),
     r"binary_cross_entropy_with_logits: The size of input \(3\) must match the size of weight \(4\)"),
    (lambda: F.binary_cross_entropy_with_logits(ones(2, 3), ones(2, 3), pos_weight=ones(2)),
     r"binary_cross_entropy_with_logits: .* pos_weight \(2\)"),
    (lambda: F.binary_cross_entropy(ones(2, 3) * 0.5, ones(2, 3), weight=ones(3, 1)),
     r"binary_cross_entropy: The size of input \(2\) must match the size of weight \(3\) at non-singleton "
     r"dimension 0"),
])
def test_bce_weights_that_do_not_broadcast_name_the_loss(call, message):
    with pytest.raises(RuntimeError, match=message):
        call()


@pytest.mark.oracle
def test_pointwise_loss_broadcasting_matches_pytorch():
    torch = pytest.importorskip("torch")
    x, y = np.linspace(-1, 1, 6).reshape(2, 3), np.linspace(0, 2, 3)
    for ours, theirs in [(F.mse_loss, torch.nn.functional.mse_loss), (F.l1_loss, torch.nn.functional.l1_loss)]:
        with pytest.warns(UserWarning):
            a = ours(tl.tensor(x), tl.tensor(y))
        with pytest.warns(UserWarning):
            b = theirs(torch.tensor(x), torch.tensor(y))
        np.testing.assert_allclose(a.item(), b.item(), rtol=1e-12)


@pytest.mark.parametrize("make, exc, message", [
    (lambda: nn.MaxPool2d(0), RuntimeError, r"MaxPool2d: kernel_size \(0, 0\), stride \(0, 0\) and dilation"),
    (lambda: nn.MaxPool2d(2, stride=(1, 0)), ValueError, r"MaxPool2d: .* stride \(1, 0\) .* must be positive"),
    (lambda: nn.MaxPool2d(2, dilation=0), RuntimeError, r"dilation \(0, 0\) must be positive"),
    (lambda: nn.AvgPool2d(2, padding=-1), RuntimeError, r"AvgPool2d: .* padding \(-1, -1\) non-negative"),
    (lambda: nn.AvgPool2d(2, padding=2), RuntimeError, "AvgPool2d: pad should be at most half of effective kernel"),
    (lambda: nn.MaxPool2d(2.5), TypeError, "MaxPool2d: kernel_size must be an int or a pair of ints, got 2.5"),
    (lambda: nn.AvgPool2d(2, divisor_override=0), ValueError, "AvgPool2d: divisor_override must be non-zero"),
])
def test_pooling_constructor_arguments(make, exc, message):
    with pytest.raises(exc, match=message):
        make()


def test_pooling_forward_errors_name_the_layer_or_function():
    with pytest.raises(RuntimeError, match=r"MaxPool2d: output size is too small: input shape \(1, 1, 4, 4\)"):
        nn.MaxPool2d(5)(ones(1, 1, 4, 4))
    with pytest.raises(RuntimeError, match=r"AvgPool2d: expected a 3-D \(C, H, W\) or 4-D"):
        nn.AvgPool2d(2)(ones(4))
    with pytest.raises(RuntimeError, match="max_pool2d: kernel_size"):
        F.max_pool2d(ones(1, 1, 4, 4), 0)
    assert nn.AvgPool2d(2, stride=())(ones(1, 1, 4, 4)).shape == (1, 1, 2, 2)  # empty stride: the kernel size


@pytest.mark.parametrize("call, exc, message", [
    (lambda: F.conv2d(ones(1, 1, 4, 4), ones(2, 1, 3, 3), ones(3)), RuntimeError,
     r"conv2d: Given weight of size \(2, 1, 3, 3\), expected bias to be 1-dimensional with 2 elements, but got bias "
     r"of size \(3,\) instead"),
    (lambda: F.conv2d(np.ones((1, 3, 5, 5)), ones(4, 3, 3, 3)), TypeError, "conv2d: expected Tensor input and weight"),
    (lambda: F.batch_norm(ones(2, 4), ones(3), ones(4)), RuntimeError,
     "batch_norm: running_mean should contain 4 elements not 3"),
    (lambda: F.batch_norm(ones(2, 4), None, None, None, ones(5), training=True), RuntimeError,
     "batch_norm: bias should contain 4 elements not 5"),
    (lambda: F.layer_norm(ones(2, 4), (4,), ones(3)), RuntimeError,
     r"layer_norm: Expected weight to be of same shape as normalized_shape, but got weight of shape \(3,\)"),
    (lambda: F.linear(ones(2, 3), ones(4, 5)), RuntimeError,
     r"linear: input shape \(2, 3\) and weight shape \(4, 5\) cannot be multiplied"),
    (lambda: F.linear(ones(2, 3), ones(4, 3), ones(5)), RuntimeError,
     r"linear: expected bias of shape \(4,\) for weight shape \(4, 3\), got \(5,\)"),
    (lambda: F.linear(np.ones((2, 3)), ones(4, 3)), TypeError, "linear: expected Tensor input and weight"),
])
def test_functional_forms_check_their_parameter_shapes(call, exc, message):
    with pytest.raises(exc, match=message):
        call()


def test_linear_accepts_a_1d_weight_as_pytorch():
    assert F.linear(ones(2, 3), ones(3)).shape == (2,)
    np.testing.assert_allclose(F.linear(ones(2, 3), ones(4, 3), ones(1)).numpy(), 4.0)
