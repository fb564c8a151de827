"""Review s13 (nn): an adversarial pass over tl.nn's layers, losses and module machinery, the learning-rate
schedulers and data loading, against PyTorch as the oracle (same weights, float64, forward values and gradients of
inputs and parameters). Reviewed: Conv1d/Conv2d over every stride/padding/dilation/groups/bias/padding_mode
combination, Max/Avg/Adaptive pooling, the norms, Dropout, Embedding, Linear, containers and Module machinery,
RNN/LSTM/GRU and cells, activations, every loss and its options, schedulers, DataLoader and samplers, tl.save/load.
The tests here are the ones that exposed a defect, plus pins on the neighbouring cases."""
import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite import nn
import tinygrad_lite.nn.functional as F

pytestmark = pytest.mark.oracle


def _x(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def _compare_layer(torch, tm, m, x):
    """Copy tm's weights into m (float64), run both on x, compare outputs and all gradients."""
    tm.double()
    m.double()
    m.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    tx, lx = torch.tensor(x, requires_grad=True), tl.tensor(x, requires_grad=True)
    ty, ly = tm(tx), m(lx)
    np.testing.assert_allclose(ly.numpy(), ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    proj = _x(*ty.shape, seed=9)
    (ty * torch.tensor(proj)).sum().backward()
    (ly * tl.tensor(proj)).sum().backward()
    np.testing.assert_allclose(lx.grad.numpy(), tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    ours = dict(m.named_parameters())
    for name, p in tm.named_parameters():
        np.testing.assert_allclose(ours[name].grad.numpy(), p.grad.numpy(), rtol=1e-10, atol=1e-12, err_msg=name)


# Defect: padding='valid' with a non-'zeros' padding_mode crashed inside F.pad; root cause: the layer built its
# pad widths by iterating self.padding, which is the string 'valid' (one pair per letter).
@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
@pytest.mark.parametrize("dims", [1, 2])
def test_conv_valid_padding_with_padding_mode(torch, dims, mode):
    T, L = (torch.nn.Conv1d, nn.Conv1d) if dims == 1 else (torch.nn.Conv2d, nn.Conv2d)
    kw = dict(stride=2, padding="valid", dilation=2, groups=2, padding_mode=mode)
    x = _x(2, 4, 9) if dims == 1 else _x(2, 4, 9, 8)
    _compare_layer(torch, T(4, 6, 3, **kw), L(4, 6, 3, **kw), x)


# Defect: a Conv1d kernel longer than the input was reported in conv2d's unit-height terms (kernel (1, 5), input
# shape (1, 2, 1, 3)); root cause: conv1d handed the fit check to conv2d on the unsqueezed tensors.
def test_conv1d_kernel_larger_than_input_error_speaks_1d():
    with pytest.raises(RuntimeError) as info:
        nn.Conv1d(2, 3, 5)(tl.zeros((1, 2, 3)))
    msg = str(info.value)
    assert "(5,)" in msg and "(1, 2, 3)" in msg and "(1, 2, 1, 3)" not in msg and "(1, 5)" not in msg
    with pytest.raises(RuntimeError, match=r"padded input \(5,\)"):
        F.conv1d(tl.zeros((2, 3)), tl.zeros((1, 2, 5)), padding=1, dilation=2)
    assert nn.Conv1d(2, 3, 5, padding=1)(tl.zeros((1, 2, 3))).shape == (1, 3, 1)  # fits once padded


# Defect: BCE's input gradient where x (1 - x) < 1e-12 (x = 0 or 1 included) was the slope of the clamped logs,
# 0 for a wrong prediction of exactly 0 or 1, where PyTorch's backward gives (x - y) / 1e-12; root cause: the
# loss differentiated its forward instead of following PyTorch's clamped-denominator backward.
def test_bce_gradient_at_the_bounds_is_pytorchs(torch):
    x = np.array([0.0, 1.0, 0.0, 1.0, 1e-14, 0.5, 1e-13, 1 - 1e-13])
    y = np.array([0.0, 1.0, 1.0, 0.0, 1.0, 0.3, 0.2, 0.9])
    w = np.linspace(0.5, 2.0, 8)
    for reduction in ("none", "sum", "mean"):
        tx = torch.tensor(x, requires_grad=True)
        tloss = torch.nn.functional.binary_cross_entropy(tx, torch.tensor(y), torch.tensor(w), reduction=reduction)
        lx = tl.tensor(x, requires_grad=True)
        lloss = F.binary_cross_entropy(lx, tl.tensor(y), tl.tensor(w), reduction=reduction)
        np.testing.assert_allclose(lloss.numpy(), tloss.detach().numpy(), rtol=1e-12)
        tloss.sum().backward()
        lloss.sum().backward()
        np.testing.assert_allclose(lx.grad.numpy(), tx.grad.numpy(), rtol=1e-10, err_msg=reduction)
    # the target's gradient away from the bounds is unchanged
    ty, ly = torch.tensor(y[5:], requires_grad=True), tl.tensor(y[5:], requires_grad=True)
    torch.nn.functional.binary_cross_entropy(torch.tensor(x[5:]), ty).backward()
    F.binary_cross_entropy(tl.tensor(x[5:]), ly).backward()
    np.testing.assert_allclose(ly.grad.numpy(), ty.grad.numpy(), rtol=1e-10)


def test_bce_second_derivative_inside_the_bounds():
    x = tl.tensor(np.array([0.2, 0.7, 0.5]), requires_grad=True)
    y = tl.tensor(np.array([0.0, 1.0, 0.3]))
    assert tl.gradgradcheck(lambda a: F.binary_cross_entropy(a, y, reduction="sum"), (x,))


# Defect: a BCE target outside [0, 1] gave a silent (meaningless) loss where PyTorch raises; root cause: only the
# input's range was checked.
def test_bce_target_out_of_range_raises(torch):
    with pytest.raises(RuntimeError, match="target should be between 0 and 1"):
        torch.nn.functional.binary_cross_entropy(torch.tensor([0.5, 0.2]), torch.tensor([0.0, 1.5]))
    with pytest.raises(RuntimeError, match="all elements of target should be between 0 and 1"):
        F.binary_cross_entropy(tl.tensor([0.5, 0.2]), tl.tensor([0.0, 1.5]))
    with pytest.raises(RuntimeError, match="all elements of target should be between 0 and 1"):
        nn.BCELoss()(tl.tensor([0.5, 0.2]), tl.tensor([-0.1, 1.0]))
    assert np.isfinite(F.binary_cross_entropy(tl.tensor([0.5, 0.2]), tl.tensor([0.0, 1.0])).item())


# Defect: default_collate turned NumPy scalars into float64/int64 (np.float32 labels from a float32 array came
# out float64); root cause: np.float32/np.int32 were caught by the Python-number branches, which fix the dtype.
def test_collate_numpy_scalars_keep_their_dtype(torch):
    from torch.utils.data import default_collate as torch_collate

    for batch in ([np.float32(1.5), np.float32(2)], [np.int32(1), np.int32(2)], [np.float16(1), np.float16(3)],
                  [np.bool_(True), np.bool_(False)], [np.float64(0.5), np.float64(2)], [np.int64(3), np.int64(4)]):
        ours, theirs = tl.data.default_collate(batch), torch_collate(batch)
        assert str(ours.dtype) == str(theirs.dtype).split(".")[-1], batch
        assert ours.tolist() == theirs.tolist()
    labels = np.arange(6, dtype=np.float32)

    class Labels(tl.data.Dataset):
        def __len__(self):
            return 6

        def __getitem__(self, i):
            return labels[i]

    assert next(iter(tl.data.DataLoader(Labels(), batch_size=3))).dtype == np.float32


# Defect: a batch of Python numbers led by an int was cast to int64, truncating later floats ([1, 2.5] -> [1, 2]);
# root cause: the int branch forced dtype=int64 where PyTorch's torch.tensor(batch) lets the values decide.
def test_collate_int_led_batch_with_floats_is_not_truncated(torch):
    from torch.utils.data import default_collate as torch_collate

    for batch in ([1, 2.5], [True, 2], [True, False], [1, 2], [1.5, 2]):
        ours, theirs = tl.data.default_collate(batch), torch_collate(batch)
        assert ours.tolist() == theirs.tolist(), batch
        assert str(ours.dtype) == str(theirs.dtype).split(".")[-1], batch


# Defect: a strict load of a state dict without `num_batches_tracked` (a plain dict, a pre-0.4.1 or converted
# checkpoint) failed where PyTorch keeps the counter; root cause: load_state_dict had no counterpart of the
# norms' _load_from_state_dict, which fills the key when the dict carries no version >= 2 metadata.
def test_norm_state_dict_without_num_batches_tracked_loads(torch):
    ts = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.BatchNorm1d(3)).state_dict()
    del ts["1.num_batches_tracked"]
    plain = {k: v.numpy() * 1.5 for k, v in ts.items()}
    assert not torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.BatchNorm1d(3)).load_state_dict(
        {k: torch.tensor(v) for k, v in plain.items()}).missing_keys
    m = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    m[1].num_batches_tracked.fill_(4)
    result = m.load_state_dict(plain)
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert int(m[1].num_batches_tracked.item()) == 4  # kept, as PyTorch
    np.testing.assert_array_equal(m[1].running_var.numpy(), plain["1.running_var"])
    inorm = nn.InstanceNorm1d(3, track_running_stats=True)
    sd = inorm.state_dict()
    del sd["num_batches_tracked"]
    assert inorm.load_state_dict(sd).missing_keys == []
    # only that key, only without version >= 2 metadata: PyTorch's own state dict object still requires it
    with pytest.raises(RuntimeError, match='Missing key.*"1.num_batches_tracked"'):
        nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3)).load_state_dict(ts)
    del plain["1.running_mean"]
    with pytest.raises(RuntimeError, match='Missing key.*"1.running_mean"') as info:
        nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3)).load_state_dict(plain)
    assert "num_batches_tracked" not in str(info.value)


# Defect: F.pad(x, p, value=None) -- PyTorch's default, meaning 0 -- filled with NaN, and F.pad(input=x, ...)
# raised TypeError; root cause: the function named its first parameter x and passed value=None on to np.pad.
def test_pad_value_none_is_zero_and_input_keyword(torch):
    x = _x(2, 3)
    for kw in (dict(value=None), dict(mode="constant", value=None), dict()):
        theirs = torch.nn.functional.pad(torch.tensor(x), (1, 2), **kw).numpy()
        np.testing.assert_array_equal(F.pad(tl.tensor(x), (1, 2), **kw).numpy(), theirs)
    theirs = torch.nn.functional.pad(input=torch.tensor(x), pad=(1, 0, 0, 1), value=2.5).numpy()
    np.testing.assert_array_equal(F.pad(input=tl.tensor(x), pad=(1, 0, 0, 1), value=2.5).numpy(), theirs)
