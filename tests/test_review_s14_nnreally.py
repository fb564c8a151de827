"""Review s14, "What is torch.nn really?": what the tutorial's PyTorch code needed from tinygrad_lite.

- `input[range(n), target]` (the tutorial's hand-written nll) was refused: a range is an index as its list of ints;
- `model.state_dict()[k].copy_(v)` wrote into a copy: state_dict values share the parameters' storage, as PyTorch's;
- `x.shape` / `x.size()` printed `(640, 784)`: they are a `Size` tuple that prints `torch.Size([640, 784])`;
- `print(preds[0])` showed `grad_fn=<GetitemBackward0>`: indexing nodes are named as PyTorch's (Select, Slice, ...).
"""
import pickle

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite import nn


def _logits():
    rng = np.random.default_rng(0)
    return rng.standard_normal((5, 4)), np.array([3, 0, 2, 2, 1])


# ---------------- range as an index ----------------

def test_range_index_picks_as_pytorch(torch):
    x, target = _logits()
    ours = tl.tensor(x, requires_grad=True)
    theirs = torch.tensor(x, requires_grad=True)
    loss = -ours[range(target.shape[0]), tl.tensor(target)].mean()
    tloss = -theirs[range(target.shape[0]), torch.tensor(target)].mean()
    loss.backward(), tloss.backward()
    np.testing.assert_allclose(loss.item(), tloss.item(), rtol=1e-15)
    np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=0, atol=0)
    assert ours[range(1, 4)].numpy().tolist() == theirs[range(1, 4)].tolist()
    assert ours[range(0)].shape == (0, 4) and ours[range(0)].dtype == tl.float64


def test_range_index_gradient_matches_finite_differences():
    x, target = _logits()
    t = tl.tensor(x, requires_grad=True)
    (t[range(5), tl.tensor(target)] ** 2).sum().backward()

    def f(a):
        return (a[np.arange(5), target] ** 2).sum()
    eps, fd = 1e-6, np.zeros_like(x)
    for i in np.ndindex(x.shape):
        d = np.zeros_like(x)
        d[i] = eps
        fd[i] = (f(x + d) - f(x - d)) / (2 * eps)
    np.testing.assert_allclose(t.grad.numpy(), fd, rtol=1e-7, atol=1e-9)


def test_range_index_in_item_assignment():
    t = tl.zeros(3, 3, dtype=tl.float64)
    t[range(3), range(3)] = 1.0
    assert np.array_equal(t.numpy(), np.eye(3))


def test_unsupported_index_error_names_the_op_and_what_is_accepted():
    with pytest.raises(IndexError, match=r"getitem: unsupported index element of type str .*range"):
        tl.zeros(3)["a"]


# ---------------- state_dict shares storage ----------------

def test_state_dict_values_share_storage_and_do_not_require_grad(torch):
    for lib in (tl, torch):
        model = lib.nn.Linear(4, 2).double()
        sd = model.state_dict()
        assert not sd["weight"].requires_grad
        sd["weight"].copy_(lib.ones(2, 4, dtype=lib.float64))  # the tutorial-era way to set initial weights
        sd["bias"].zero_()
        assert np.array_equal(model.weight.detach().numpy(), np.ones((2, 4)))
        assert np.array_equal(model.bias.detach().numpy(), np.zeros(2))
        assert model.state_dict(keep_vars=True)["weight"] is model.weight


def test_state_dict_of_buffers_shares_storage_too():
    bn = nn.BatchNorm1d(3)
    bn.state_dict()["running_mean"].fill_(2.0)
    assert np.array_equal(bn.running_mean.numpy(), np.full(3, 2.0, dtype=np.float32))


# ---------------- torch.Size ----------------

def test_shape_is_a_size_printed_as_pytorch(torch):
    ours, theirs = tl.zeros(640, 784), torch.zeros(640, 784)
    for a, b in [(ours.shape, theirs.shape), (ours.size(), theirs.size()), (ours.shape[1:], theirs.shape[1:]),
                 (ours.shape + (3,), theirs.shape + (3,)), ((3,) + ours.shape, (3,) + theirs.shape),
                 (ours.shape * 2, theirs.shape * 2), (tl.zeros(()).shape, torch.zeros(()).shape)]:
        assert str(a) == str(b) and repr(a) == repr(b) and f"{a}" == f"{b}"
        assert isinstance(a, tl.Size) and isinstance(a, tuple)
    assert ours.shape == (640, 784) and hash(ours.shape) == hash((640, 784)) and ours.shape[0] == 640
    assert type(ours.shape[0]) is int and ours.shape.numel() == theirs.shape.numel() == 640 * 784
    assert pickle.loads(pickle.dumps(ours.shape)) == (640, 784)
    n, c = ours.shape
    assert (n, c) == (640, 784) and tl.zeros(ours.shape).shape == (640, 784)
    assert np.zeros(ours.shape).shape == (640, 784) and ours.view(ours.shape[0], -1).shape == (640, 784)


# ---------------- grad_fn names of indexing ----------------

INDICES = [0, slice(1, 2), slice(None), Ellipsis, None, (slice(None), None), (0, None), (None, 0),
           (slice(1, None), 0), (0, slice(1, None)), (slice(None), 0), ([0, 1],), (0, [0, 1]), (Ellipsis, 0),
           (0, slice(None)), (slice(None, None, 2),), (0, 0, 0), (0, Ellipsis), (range(2), [1, 2])]


@pytest.mark.parametrize("idx", INDICES, ids=repr)
def test_getitem_grad_fn_is_named_as_pytorch(idx, torch):
    ours = tl.zeros(3, 4, 5, dtype=tl.float64, requires_grad=True)
    theirs = torch.zeros(3, 4, 5, dtype=torch.float64, requires_grad=True)
    assert ours[idx].grad_fn.name() == theirs[idx].grad_fn.name()


def test_getitem_grad_fn_with_tensor_and_mask_indices(torch):
    ours = tl.zeros(3, 4, dtype=tl.float64, requires_grad=True)
    theirs = torch.zeros(3, 4, dtype=torch.float64, requires_grad=True)
    assert ours[tl.tensor([0, 2]), 1].grad_fn.name() == theirs[torch.tensor([0, 2]), 1].grad_fn.name()
    assert ours[ours > 0].grad_fn.name() == theirs[theirs > 0].grad_fn.name() == "IndexBackward0"
    assert "grad_fn=<SelectBackward0>" in str(ours[0]) and "grad_fn=<SelectBackward0>" in str(theirs[0])
