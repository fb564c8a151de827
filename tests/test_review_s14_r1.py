"""Review s14_r1: regression tests for defects found in today's merges (tl.Size, state_dict sharing storage,
grad_fn names, range indexing, tl.multinomial), each checked against PyTorch's behaviour."""
import io

import numpy as np

import pytest

import tinygrad_lite as tl


def test_size_survives_save_load():
    # torch.save/torch.load (weights_only too) keep a torch.Size a torch.Size; it came back a plain tuple
    buf = io.BytesIO()
    tl.save({"shape": tl.ones(2, 3).shape, "l": [tl.Size([1])], "t": (2, 3)}, buf)
    buf.seek(0)
    out = tl.load(buf)
    assert type(out["shape"]) is tl.Size and out["shape"] == (2, 3)
    assert type(out["l"][0]) is tl.Size
    assert type(out["t"]) is tuple
    assert repr(out["shape"]) == "torch.Size([2, 3])"


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_linear_module_grad_fn_names_as_torch(nd):
    # nn.Linear's forward skipped the labelled F.linear: print(model(x)) showed AddBackward0, not AddmmBackward0
    want_bias = {1: "ViewBackward0", 2: "AddmmBackward0", 3: "ViewBackward0"}[nd]
    want_nobias = {1: "SqueezeBackward4", 2: "MmBackward0", 3: "UnsafeViewBackward0"}[nd]
    x = tl.randn(*([2] * (nd - 1)), 3)
    assert tl.nn.Linear(3, 4)(x).grad_fn.name() == want_bias
    assert tl.nn.Linear(3, 4, bias=False)(x).grad_fn.name() == want_nobias
    w = tl.randn(4, 3, requires_grad=True)
    assert tl.nn.functional.linear(x, w).grad_fn.name() == want_nobias
    assert tl.nn.functional.linear(x, w, tl.randn(4)).grad_fn.name() == want_bias


def test_clone_to_lerp_grad_fn_names_as_torch():
    # clone showed CastBackward0 (torch: CloneBackward0), .double() CastBackward0 (ToCopyBackward0), and lerp /
    # lerp_ (merged today) the name of their last subtraction, SubBackward0 (LerpBackward0)
    x = tl.tensor([0.5, -1.0, 2.0], requires_grad=True)
    assert x.clone().grad_fn.name() == "CloneBackward0"
    assert x.double().grad_fn.name() == "ToCopyBackward0"
    assert x.to(tl.float64).grad_fn.name() == "ToCopyBackward0"
    assert tl.lerp(x, x * 2, 0.5).grad_fn.name() == "LerpBackward0"
    assert tl.lerp(x, x * 2, 0.2).grad_fn.name() == "LerpBackward0"
    assert (x * 1).lerp_(x * 3, 0.7).grad_fn.name() == "LerpBackward0"
    y = x.double()
    g, = tl.autograd.grad(tl.lerp(y, y * 3, tl.tensor(0.3, dtype=tl.float64)).sum(), y)
    assert np.allclose(g.numpy(), 1 + 0.3 * 2)


def test_an_in_place_change_through_a_detached_alias_refuses_the_saved_graph(torch):
    """detach() and state_dict() share memory with the tensor (as PyTorch's) and now its version too: a graph
    that saved the tensor refuses to backprop through values changed behind its back (it used them silently)."""
    for lib in (tl, torch):
        a = lib.tensor([1.0, 2.0, 3.0], requires_grad=True)
        b = a * 2
        c = (b ** 2).sum()
        b.detach().add_(1)
        with pytest.raises(RuntimeError, match="modified by an in.?place operation"):
            c.backward()
    a = tl.tensor([1.0, 2.0, 3.0], requires_grad=True)
    b = a * 2
    c = (b ** 2).sum()
    b.detach().detach().mul_(3)  # an alias of an alias: still the original's memory
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        c.backward()
    m = tl.nn.Sequential(tl.nn.Linear(3, 2))
    y = (m[0].weight ** 2).sum()
    m.state_dict()["0.weight"].add_(1)
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        y.backward()
    m.state_dict()["0.weight"].mul_(0.5)  # with no graph alive: the usual edit, then training goes on
    (m[0].weight ** 2).sum().backward()
    np.testing.assert_allclose(m[0].weight.grad.numpy(), 2 * m[0].weight.numpy())


@pytest.mark.parametrize("dim,start,length", [(0, 1, 2), (1, -3, 2), (-1, 0, 4), (2, 4, 0), (0, -3, 3)])
def test_narrow_is_torchs(torch, dim, start, length):
    """torch.narrow / Tensor.narrow (a view: values and gradients), negative starts and dims included."""
    a = np.random.default_rng(5).standard_normal((3, 4, 4))
    x, xt = tl.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    y, yt = tl.narrow(x, dim, start, length), xt.narrow(dim, start, length)
    np.testing.assert_array_equal(y.numpy(), yt.detach().numpy())
    (y * y).sum().backward()
    (yt * yt).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), xt.grad.numpy())
    assert x.narrow(dim, start, length).shape == tuple(yt.shape)


def test_narrow_errors_name_the_op():
    x = tl.ones(3, 4)
    with pytest.raises(RuntimeError, match=r"narrow: start \(2\) \+ length \(3\) exceeds dimension size \(4\)"):
        x.narrow(1, 2, 3)
    with pytest.raises(IndexError, match=r"narrow: start \(-5\) is out of range"):
        x.narrow(1, -5, 1)


@pytest.mark.parametrize("src,dst", [(0, 2), (-1, 0), ((0, 1), (2, 0)), ([2, 0], [0, 1]), (1, 1)])
def test_movedim_is_torchs(torch, src, dst):
    a = np.random.default_rng(6).standard_normal((2, 3, 4))
    x, xt = tl.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    y, yt = tl.movedim(x, src, dst), torch.movedim(xt, src, dst)
    np.testing.assert_array_equal(y.numpy(), yt.detach().numpy())
    assert x.moveaxis(src, dst).shape == tuple(torch.moveaxis(xt, src, dst).shape)
    w = np.arange(np.prod(y.shape), dtype=float).reshape(y.shape)
    (y * tl.tensor(w)).sum().backward()
    (yt * torch.tensor(w)).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), xt.grad.numpy())
    with pytest.raises(RuntimeError, match="movedim: Invalid source or destination dims"):
        x.movedim((0, 1), 2)
