"""tl.nn.utils: clip_grad_norm_ (total norm and clipped gradients against PyTorch for norm types 2, 1, inf and
others, None gradients skipped, error_if_nonfinite), clip_grad_value_, parameters_to_vector and
vector_to_parameters, the module's importability, and the layers' device check."""
import math
import warnings

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite import nn
from tinygrad_lite.devices import check as check_device

SHAPES = [(3, 4), (4,), (2, 3, 2), ()]


def _grads(seed, dtype=np.float64, none_at=(), scale=1.0):
    rng = np.random.default_rng(seed)
    return [None if i in none_at else (rng.standard_normal(s) * scale).astype(dtype) for i, s in enumerate(SHAPES)]


def _params(torch, grads, dtype=np.float64):
    """The same parameters (values irrelevant) with the same gradients in both libraries."""
    ours, theirs = [], []
    for s, g in zip(SHAPES, grads):
        p, tp = nn.Parameter(np.ones(s, dtype=dtype)), torch.nn.Parameter(torch.ones(s, dtype=getattr(torch, str(
            np.dtype(dtype)))))
        if g is not None:
            p.grad, tp.grad = tl.tensor(g.copy()), torch.tensor(g.copy())
        ours.append(p)
        theirs.append(tp)
    return ours, theirs


def _assert_same_grads(ours, theirs, rtol):
    for p, tp in zip(ours, theirs):
        assert (p.grad is None) == (tp.grad is None)
        if p.grad is not None:
            np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), rtol=rtol, atol=0, equal_nan=True)


@pytest.mark.oracle
@pytest.mark.parametrize("norm_type", [2.0, 1, math.inf, "inf", 3.0, 0.5, -math.inf])
@pytest.mark.parametrize("max_norm", [0.5, 1e6])  # clips / leaves unchanged (coefficient clamped to 1)
@pytest.mark.parametrize("none_at", [(), (1,), (0, 3)])
def test_clip_grad_norm_matches_pytorch(torch, norm_type, max_norm, none_at):
    grads = _grads(0, none_at=none_at, scale=3.0)
    ours, theirs = _params(torch, grads)
    before = [p.grad for p in ours]
    total = nn.utils.clip_grad_norm_(ours, max_norm, norm_type)
    t_total = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type)
    assert isinstance(total, tl.Tensor) and total.shape == () and total.dtype == np.float64
    np.testing.assert_allclose(total.numpy(), t_total.numpy(), rtol=1e-12)
    _assert_same_grads(ours, theirs, 1e-12)
    assert all(p.grad is b for p, b in zip(ours, before))  # in place: optimizers holding .grad see the change
    clipped = total.item() > max_norm  # a -inf "norm" (the smallest |g|) is below 0.5: nothing to clip
    assert clipped == (max_norm < 1 and norm_type != -math.inf)
    assert np.allclose(ours[2].grad.numpy(), grads[2], rtol=1e-5) != clipped


@pytest.mark.oracle
@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf])
def test_clip_grad_norm_float32_and_single_tensor(torch, norm_type):
    grads = _grads(1, dtype=np.float32, scale=5.0)
    ours, theirs = _params(torch, grads, dtype=np.float32)
    for p, tp in zip(ours, theirs):
        total = nn.utils.clip_grad_norm_(p, 0.3, norm_type=norm_type)
        t_total = torch.nn.utils.clip_grad_norm_(tp, 0.3, norm_type=norm_type)
        assert total.dtype == np.float32
        np.testing.assert_allclose(total.numpy(), t_total.numpy(), rtol=1e-6)
    _assert_same_grads(ours, theirs, 1e-6)


@pytest.mark.oracle
def test_clip_grad_norm_on_a_model_then_sgd(torch):
    tm = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2)).double()
    m = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 2)).double()
    m.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    x = np.random.default_rng(2).standard_normal((8, 4)) * 4
    (tm(torch.tensor(x)) ** 2).sum().backward()
    (m(tl.tensor(x)) ** 2).sum().backward()
    t_total = torch.nn.utils.clip_grad_norm_(tm.parameters(), 1.0)
    total = nn.utils.clip_grad_norm_(m.parameters(), 1.0)  # a generator, as usually passed
    np.testing.assert_allclose(total.item(), t_total.item(), rtol=1e-12)
    assert total.item() > 1.0
    tl.optim.SGD(m.parameters(), lr=0.1).step()
    torch.optim.SGD(tm.parameters(), lr=0.1).step()
    for (name, p), tp in zip(m.named_parameters(), tm.parameters()):
        np.testing.assert_allclose(p.numpy(), tp.detach().numpy(), rtol=1e-12, err_msg=name)


@pytest.mark.oracle
def test_nonfinite_norm(torch):
    grads = _grads(3)
    grads[0][1, 2] = np.nan
    ours, theirs = _params(torch, grads)
    with pytest.raises(RuntimeError, match="The total norm of order 2.0 for gradients from `parameters` is "
                                           "non-finite, so it cannot be clipped"):
        nn.utils.clip_grad_norm_(ours, 1.0, error_if_nonfinite=True)
    with pytest.raises(RuntimeError, match="non-finite"):
        torch.nn.utils.clip_grad_norm_(theirs, 1.0, error_if_nonfinite=True)
    np.testing.assert_array_equal(ours[1].grad.numpy(), grads[1])  # an error leaves the gradients alone
    total = nn.utils.clip_grad_norm_(ours, 1.0)  # scales by the NaN norm anyway, as PyTorch
    t_total = torch.nn.utils.clip_grad_norm_(theirs, 1.0)
    assert math.isnan(total.item()) and math.isnan(t_total.item())
    _assert_same_grads(ours, theirs, 0)
    inf_grads = _grads(4)
    inf_grads[2][0, 0, 0] = np.inf
    ours, theirs = _params(torch, inf_grads)
    with pytest.raises(RuntimeError, match="order inf"):
        nn.utils.clip_grad_norm_(ours, 1.0, norm_type="inf", error_if_nonfinite=True)
    assert nn.utils.clip_grad_norm_(ours, 1.0).item() == math.inf == torch.nn.utils.clip_grad_norm_(theirs, 1.0)
    _assert_same_grads(ours, theirs, 0)


def test_no_gradients():
    p = nn.Parameter(np.ones(3))
    total = nn.utils.clip_grad_norm_([p], 1.0)
    assert total.item() == 0.0 and total.dtype == np.float32 and p.grad is None
    with pytest.warns(UserWarning, match="`parameters` is an empty generator"):
        nn.utils.clip_grad_norm_((q for q in []), 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        nn.utils.clip_grad_norm_([], 1.0)  # an empty list is not warned about
    nn.utils.clip_grad_value_([p], 0.1)
    assert p.grad is None


def test_clip_grad_norm_closed_form_and_foreach():
    p, q = nn.Parameter(np.zeros(2)), nn.Parameter(np.zeros(1))
    p.grad, q.grad = tl.tensor(np.array([3.0, 0.0])), tl.tensor(np.array([4.0]))
    assert nn.utils.clip_grad_norm_([p, q], 1.0, foreach=True).item() == 5.0
    np.testing.assert_allclose(p.grad.numpy(), [3.0 / (5.0 + 1e-6), 0.0], rtol=1e-15)
    np.testing.assert_allclose(q.grad.numpy(), [4.0 / (5.0 + 1e-6)], rtol=1e-15)
    assert nn.utils.clip_grad_norm_([p, q], 1.0, norm_type=1).item() == pytest.approx(7.0 / (5.0 + 1e-6))


@pytest.mark.oracle
@pytest.mark.parametrize("clip_value", [0.5, 2, 10.0])
def test_clip_grad_value_matches_pytorch(torch, clip_value):
    ours, theirs = _params(torch, _grads(5, none_at=(1,), scale=2.0))
    assert nn.utils.clip_grad_value_(ours, clip_value) is None
    torch.nn.utils.clip_grad_value_(theirs, clip_value)
    _assert_same_grads(ours, theirs, 0)
    assert max(np.abs(p.grad.numpy()).max() for p in ours if p.grad is not None) <= clip_value
    single = nn.Parameter(np.zeros(3))
    single.grad = tl.tensor(np.array([-3.0, 0.1, 3.0]))
    nn.utils.clip_grad_value_(single, clip_value)
    np.testing.assert_array_equal(single.grad.numpy(), np.clip([-3.0, 0.1, 3.0], -clip_value, clip_value))


# ---------------- parameters <-> vector ----------------
@pytest.mark.oracle
def test_parameters_to_vector_and_back_match_pytorch(torch):
    tm = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.Flatten(), torch.nn.Linear(12, 2)).double()
    m = nn.Sequential(nn.Conv2d(2, 3, 3), nn.Flatten(), nn.Linear(12, 2)).double()
    m.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    vec, t_vec = nn.utils.parameters_to_vector(m.parameters()), torch.nn.utils.parameters_to_vector(tm.parameters())
    assert vec.shape == (sum(p.numel() for p in m.parameters()),)
    np.testing.assert_array_equal(vec.numpy(), t_vec.detach().numpy())
    new = np.random.default_rng(6).standard_normal(vec.shape)
    nn.utils.vector_to_parameters(tl.tensor(new), m.parameters())
    torch.nn.utils.vector_to_parameters(torch.tensor(new), tm.parameters())
    for (name, p), tp in zip(m.named_parameters(), tm.parameters()):
        np.testing.assert_array_equal(p.numpy(), tp.detach().numpy(), err_msg=name)
        assert isinstance(p, nn.Parameter) and p.requires_grad


def test_parameters_to_vector_is_differentiable():
    a, b = nn.Parameter(np.ones((2, 2))), nn.Parameter(np.arange(3.0))
    vec = nn.utils.parameters_to_vector([a, b])
    np.testing.assert_array_equal(vec.numpy(), [1, 1, 1, 1, 0, 1, 2])
    (vec * tl.tensor(np.arange(7.0))).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [[0, 1], [2, 3]])
    np.testing.assert_array_equal(b.grad.numpy(), [4, 5, 6])


def test_vector_to_parameters_shares_the_vector_storage():
    a, b = nn.Parameter(np.zeros((2, 2))), nn.Parameter(np.zeros(3))
    vec = tl.tensor(np.arange(7.0))
    nn.utils.vector_to_parameters(vec, [a, b])
    np.testing.assert_array_equal(b.numpy(), [4, 5, 6])
    vec.mul_(2.0)  # PyTorch: the parameters are views of vec
    np.testing.assert_array_equal(a.numpy(), [[0, 2], [4, 6]])
    np.testing.assert_array_equal(b.numpy(), [8, 10, 12])


def test_vector_to_parameters_errors():
    a = nn.Parameter(np.zeros((3, 4)))
    with pytest.raises(TypeError, match="expected torch.Tensor, but got: numpy.ndarray"):
        nn.utils.vector_to_parameters(np.zeros(12), [a])
    with pytest.raises(RuntimeError, match=r"shape \[3, 4\] is invalid for input of size 5"):
        nn.utils.vector_to_parameters(tl.zeros(5), [a])
    with pytest.raises(TypeError, match="clip_grad_norm_: parameters must be a Tensor or an iterable"):
        nn.utils.clip_grad_norm_(3.0, 1.0)
    with pytest.raises(RuntimeError, match="parameters_to_vector: expected a non-empty list"):
        nn.utils.parameters_to_vector([])


def test_utils_is_a_module_with_pytorchs_names():
    import importlib

    import tinygrad_lite.nn as tl_nn
    utils = importlib.import_module("tinygrad_lite.nn.utils")
    assert tl_nn.utils is utils and tl.nn.utils is utils
    for name in ("clip_grad_norm_", "clip_grad_value_", "parameters_to_vector", "vector_to_parameters",
                 "get_total_norm", "clip_grads_with_norm_"):
        assert callable(getattr(tl_nn.utils, name)) and name in utils.__all__


# ---------------- the layers' device check (one central check: tinygrad_lite.devices.check) ----------------
@pytest.mark.parametrize("device", [None, "cpu", "cpu:0", tl.device("cpu")])
def test_check_device_accepts_the_cpu(device):
    assert check_device(device, "Layer") == tl.device("cpu")
    assert tl.nn.LSTMCell(2, 3, device=device).weight_ih.device == tl.device("cpu")


@pytest.mark.parametrize("device", ["cuda", "cuda:0", "mps", "cpu:1", tl.device("cuda", 1)])
def test_check_device_refuses_other_devices(device):
    with pytest.raises(RuntimeError, match=f"Layer: device '{device}' is not available"):
        check_device(device, "Layer")
    with pytest.raises(RuntimeError, match=f"GRU: device '{device}' is not available"):
        tl.nn.GRU(2, 3, device=device)


def test_a_torch_device_object_is_read_by_its_name(torch):
    assert check_device(torch.device("cpu"), "Layer") == tl.device("cpu")
    with pytest.raises(RuntimeError, match="Linear: device 'cuda:0' is not available"):
        tl.nn.Linear(2, 2, device=torch.device("cuda", 0))
