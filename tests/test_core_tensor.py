"""Tensor construction, dtype rules, factories, attributes, shape/index operations (forward values)."""
import numpy as np
import pytest

import tinygrad_lite as tl
import tinygrad_lite.functional  # noqa: F401  (tl.functional)


def test_constructor_dtype_rules():
    assert tl.tensor(1.5).dtype == tl.float32
    assert tl.tensor([1.0, 2.0]).dtype == np.float32
    assert tl.tensor(3).dtype == tl.int64
    assert tl.tensor([1, 2]).dtype == np.int64
    assert tl.tensor(True).dtype == tl.bool
    assert tl.tensor(np.ones(2)).dtype == np.float64  # arrays keep their dtype
    assert tl.tensor(np.ones(2, np.int32)).dtype == np.int32
    assert tl.Tensor([1.0]).dtype == tl.float32
    assert tl.tensor([1, 2], dtype=tl.float64).dtype == np.float64
    assert tl.tensor([1, 2], dtype=np.float16).dtype == np.float16
    assert tl.tensor([1, 2], dtype="float32").dtype == np.float32
    assert tl.tensor(tl.tensor([1.0])).dtype == tl.float32


def test_tensor_copies_tensor_data_but_keeps_array():
    a = tl.tensor([1.0, 2.0])
    b = tl.tensor(a)
    b.numpy()[0] = 5
    assert a.numpy()[0] == 1.0


def test_unsupported_dtypes_raise_type_error():
    with pytest.raises(TypeError, match="complex"):
        tl.tensor(np.array([1 + 2j]))
    with pytest.raises(TypeError, match="object|string"):
        tl.tensor(np.array(["a"]))
    with pytest.raises(TypeError):
        tl.tensor([1.0], dtype="complex64")


def test_integer_tensors_cannot_require_grad():
    with pytest.raises(RuntimeError, match="floating point"):
        tl.tensor([1, 2], requires_grad=True)
    with pytest.raises(RuntimeError, match="int64"):
        tl.tensor([1, 2]).requires_grad_()


def test_promotion_follows_pytorch():
    f32, f64, i64 = tl.ones(2), tl.ones(2, dtype=tl.float64), tl.tensor([1, 2])
    assert (f32 + f64).dtype == np.float64
    assert (i64 + f32).dtype == np.float32  # NumPy would give float64
    assert (i64 * 2.5).dtype == np.float32
    assert (f32 * 2).dtype == np.float32
    assert (i64 + 1).dtype == np.int64
    assert (i64 / 2).dtype == np.float32  # integer true division gives float32
    assert (f64 * 2.0).dtype == np.float64
    assert (tl.tensor([True]) + 1).dtype == np.int64
    np.testing.assert_allclose((i64 / 2).numpy(), [0.5, 1.0])


def test_numpy_interop():
    t = tl.tensor([1.0, 2.0], requires_grad=True)
    assert np.asarray(t) is t.numpy()
    assert t.numpy() is t.numpy()
    r = np.ones(2, np.float32) * t  # ndarray op Tensor defers to the Tensor
    assert isinstance(r, tl.Tensor) and r.requires_grad
    assert t.tolist() == [1.0, 2.0]
    assert tl.tensor([[3.0]]).item() == 3.0
    with pytest.raises(ValueError, match="one-element"):
        t.item()


def test_attributes():
    t = tl.zeros(2, 3)
    assert t.shape == (2, 3) and t.ndim == 2 and t.size() == (2, 3) and t.size(1) == 3 and t.size(-1) == 3
    assert t.numel() == 6 and t.is_leaf and t.grad_fn is None and not t.requires_grad
    y = tl.ones(2, requires_grad=True) * 2
    assert not y.is_leaf and y.grad_fn.name() == "MulBackward0" and y.grad_fn.entry.name == "mul"
    assert y.detach().requires_grad is False and y.detach().numpy() is y.numpy()
    assert "grad_fn=<MulBackward0>" in repr(y)


def test_factories_and_seed():
    assert tl.zeros((2, 3)).shape == (2, 3) and tl.ones(4).numpy().sum() == 4
    assert tl.full((2,), 7).dtype == np.int64 and tl.full((2,), 7.0).dtype == np.float32
    assert tl.eye(3).numpy().trace() == 3
    assert tl.arange(5).dtype == np.int64 and tl.arange(0, 1, 0.25).dtype == np.float32
    np.testing.assert_allclose(tl.linspace(0, 1, 5).numpy(), [0, 0.25, 0.5, 0.75, 1])
    assert tl.zeros_like(tl.ones(2, dtype=tl.float64)).dtype == np.float64
    assert tl.randn_like(tl.ones(3)).shape == (3,) and tl.ones_like(tl.ones(2)).numpy().sum() == 2
    tl.manual_seed(7)
    a = (tl.randn(5), tl.rand(2), tl.randint(0, 10, (3,)))
    tl.manual_seed(7)
    b = (tl.randn(5), tl.rand(2), tl.randint(0, 10, (3,)))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.numpy(), y.numpy())
    assert a[2].dtype == np.int64 and a[0].dtype == np.float32
    with pytest.raises(ValueError):
        tl.zeros(-1)


def test_shape_ops_forward():
    x = tl.arange(24).reshape(2, 3, 4)
    assert x.view(6, -1).shape == (6, 4)
    assert x.permute(2, 0, 1).shape == (4, 2, 3)
    assert x.transpose(0, 2).shape == (4, 3, 2)
    assert x.T.shape == (4, 3, 2)
    assert x.flatten().shape == (24,) and x.flatten(1).shape == (2, 12)
    assert x.unsqueeze(1).shape == (2, 1, 3, 4) and x.unsqueeze(-1).shape == (2, 3, 4, 1)
    assert tl.zeros(1, 3, 1).squeeze().shape == (3,) and tl.zeros(1, 3, 1).squeeze(0).shape == (3, 1)
    assert tl.zeros(3, 1).expand(3, 4).shape == (3, 4) and tl.zeros(3, 1).expand(2, -1, 4).shape == (2, 3, 4)
    assert tl.zeros(3).broadcast_to((2, 3)).shape == (2, 3)
    np.testing.assert_array_equal(tl.cat([x, x], 1).numpy(), np.concatenate([x.numpy()] * 2, 1))
    np.testing.assert_array_equal(tl.stack([x, x], -1).numpy(), np.stack([x.numpy()] * 2, -1))
    assert [t.shape for t in x.split(2, dim=2)] == [(2, 3, 2), (2, 3, 2)]
    assert [t.shape[1] for t in x.split([1, 2], dim=1)] == [1, 2]
    assert [t.shape[2] for t in x.chunk(3, dim=2)] == [2, 2]
    np.testing.assert_array_equal(x.flip(0).numpy(), x.numpy()[::-1])
    np.testing.assert_array_equal(tl.tensor([[1, 2]]).repeat(2, 3).numpy(), np.tile([[1, 2]], (2, 3)))


def test_indexing_forward():
    a = np.arange(60.0).reshape(3, 4, 5)
    x = tl.tensor(a)
    for idx in [0, -1, (1, 2), slice(None, None, 2), (Ellipsis, 1), (None, 0), (slice(1, None), [0, 2]),
                ([0, 0, 2],), (a[:, 0, 0] > 10,), (tl.tensor([2, 0]),), (slice(None), slice(None, None, -2))]:
        np.testing.assert_array_equal(x[idx].numpy(), a[idx if not isinstance(idx, tuple) else tuple(
            i.numpy() if isinstance(i, tl.Tensor) else i for i in idx)])
    g = tl.tensor([[1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_array_equal(g.gather(1, tl.tensor([[0, 0], [1, 0]])).numpy(), [[1, 1], [4, 3]])
    np.testing.assert_array_equal(g.index_select(0, tl.tensor([1, 1])).numpy(), [[3, 4], [3, 4]])
    np.testing.assert_array_equal(g.masked_fill(g > 2, 0.0).numpy(), [[1, 2], [0, 0]])


def test_tensor_copies_its_data_as_torch_tensor_does():
    """tl.tensor / tl.Tensor of an array or tensor own their data (as torch.tensor): an in-place change of the new
    tensor leaves the source alone; from_numpy and as_tensor share it."""
    a = np.arange(3.0)
    for make in (tl.tensor, tl.Tensor, lambda x: tl.tensor(tl.from_numpy(x))):
        make(a).add_(1)
        np.testing.assert_array_equal(a, [0.0, 1.0, 2.0])
    tl.from_numpy(a).add_(1)
    tl.as_tensor(a).add_(1)
    np.testing.assert_array_equal(a, [2.0, 3.0, 4.0])


@pytest.mark.parametrize("kind", ["tensor", "ndarray", "mask", "embedding"])
def test_an_index_changed_in_place_after_the_forward_does_not_move_the_gradient(kind):
    """The gradient goes to the rows the forward read: getitem keeps a copy of a tensor or array index, so changing
    the index in place between forward and backward cannot silently scatter it elsewhere."""
    w = tl.tensor(np.arange(12.0).reshape(4, 3), requires_grad=True)
    rows = np.array([0, 2, 2]) if kind != "mask" else np.array([True, False, True, False])
    idx = tl.tensor(rows) if kind != "ndarray" else rows.copy()
    out = tl.nn.functional.embedding(idx, w) if kind == "embedding" else w[idx]
    if isinstance(idx, tl.Tensor):
        idx.add_(1) if kind != "mask" else idx.zero_()
    else:
        idx += 1
    (out * tl.tensor(np.arange(out.numel(), dtype=float).reshape(out.shape))).sum().backward()
    want = np.zeros((4, 3))
    np.add.at(want, rows if kind != "mask" else np.flatnonzero(rows), np.arange(out.numel(), dtype=float).reshape(-1, 3))
    np.testing.assert_array_equal(w.grad.numpy(), want)


def test_reductions_forward():
    a = np.random.default_rng(0).standard_normal((3, 4))
    x = tl.tensor(a)
    np.testing.assert_allclose(x.sum().numpy(), a.sum())
    np.testing.assert_allclose(x.sum(axis=1, keepdims=True).numpy(), a.sum(1, keepdims=True))
    np.testing.assert_allclose(x.mean(0).numpy(), a.mean(0))
    np.testing.assert_allclose(x.var().numpy(), a.var(ddof=1))
    np.testing.assert_allclose(x.var(1, unbiased=False).numpy(), a.var(1))
    np.testing.assert_allclose(x.std(1, correction=0).numpy(), a.std(1))
    np.testing.assert_allclose(x.amax(1).numpy(), a.max(1))
    np.testing.assert_allclose(x.prod(0).numpy(), a.prod(0))
    np.testing.assert_allclose(x.logsumexp(1).numpy(), np.log(np.exp(a).sum(1)))
    v, i = x.max(1)
    np.testing.assert_array_equal(i.numpy(), a.argmax(1))
    np.testing.assert_allclose(v.numpy(), a.max(1))
    assert x.max().shape == () and x.argmin().item() == a.argmin()
    np.testing.assert_allclose(x.softmax(1).numpy().sum(1), 1)
    np.testing.assert_allclose(x.log_softmax(-1).numpy(), a - np.log(np.exp(a).sum(-1, keepdims=True)))
    assert tl.tensor([1, 2, 3]).sum().dtype == np.int64


def test_pad_modes_match_numpy():
    a = np.arange(12.0).reshape(1, 3, 4)
    x = tl.tensor(a)
    for mode, npmode in [("reflect", "reflect"), ("replicate", "edge"), ("circular", "wrap")]:
        np.testing.assert_array_equal(tl.functional.pad(x, (1, 2, 2, 1), mode=mode).numpy(),
                                      np.pad(a, ((0, 0), (2, 1), (1, 2)), mode=npmode))
    np.testing.assert_array_equal(tl.functional.pad(x, (1, 1), value=-1.0).numpy(),
                                  np.pad(a, ((0, 0), (0, 0), (1, 1)), constant_values=-1))


def test_unfold_fold_match_definition():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 6, 5))
    cols = tl.functional.unfold(tl.tensor(x), (3, 2), dilation=(1, 2), padding=1, stride=2)
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    oh, ow = (6 + 2 - 2 - 1) // 2 + 1, (5 + 2 - 2 - 1) // 2 + 1
    expect = np.zeros((2, 3 * 3 * 2, oh * ow))
    for c in range(3):
        for i in range(3):
            for j in range(2):
                for p in range(oh):
                    for q in range(ow):
                        expect[:, c * 6 + i * 2 + j, p * ow + q] = xp[:, c, p * 2 + i, q * 2 + j * 2]
    np.testing.assert_allclose(cols.numpy(), expect)
    back = tl.functional.fold(cols, (6, 5), (3, 2), dilation=(1, 2), padding=1, stride=2)
    ones = tl.functional.fold(tl.functional.unfold(tl.ones(2, 3, 6, 5, dtype=tl.float64), (3, 2), (1, 2), 1, 2),
                              (6, 5), (3, 2), dilation=(1, 2), padding=1, stride=2)
    np.testing.assert_allclose(back.numpy(), x * ones.numpy())  # col2im(im2col(x)) = x times the window count


def test_comparisons_and_casts_are_not_differentiable():
    x = tl.tensor([1.0, 2.0], requires_grad=True)
    for r in (x > 1, x == 2, x != 1, x <= 1, x < 2, x >= 2):
        assert r.dtype == np.bool_ and not r.requires_grad
    assert x.argmax().dtype == np.int64
    assert not x.long().requires_grad and x.int().dtype == np.int32 and x.bool().dtype == np.bool_
    assert x.double().requires_grad and x.double().dtype == np.float64
    assert x.to(tl.float16).dtype == np.float16 and x.float() is x


def test_inplace_ops_and_version_counter():
    t = tl.zeros(3)
    v = t._version
    t.add_(1).mul_(3).sub_(tl.ones(3)).div_(2)
    np.testing.assert_allclose(t.numpy(), [1, 1, 1])
    assert t._version == v + 4
    t.zero_()
    t.fill_(2.0)
    t.copy_(np.array([1.0, 5.0, -3.0]))
    t.clamp_(0, 2)
    np.testing.assert_allclose(t.numpy(), [1, 2, 0])
    t.add_(tl.ones(3), alpha=2)
    np.testing.assert_allclose(t.numpy(), [3, 4, 2])


def test_add_and_sub_take_alpha_as_pytorch():
    x = tl.tensor([1.5, 2.0], dtype=tl.float64, requires_grad=True)
    y = tl.tensor([0.25, 4.0], dtype=tl.float64, requires_grad=True)
    np.testing.assert_array_equal(tl.add(x, y, alpha=2).numpy(), [2.0, 10.0])
    np.testing.assert_array_equal(x.sub(y, alpha=3).numpy(), [0.75, -10.0])
    np.testing.assert_array_equal(tl.sub(x, 1, alpha=2).numpy(), [-0.5, 0.0])
    x.sub(y, alpha=3).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 1.0])
    np.testing.assert_array_equal(y.grad.numpy(), [-3.0, -3.0])
    with pytest.raises(TypeError):
        x.add(y, 2)  # alpha is keyword-only, as in PyTorch


def test_scalar_operands_keep_their_sign_and_dtype():
    x = tl.tensor([1.0, 2.0])
    assert np.signbit((x * -0.0).numpy()).all() and not np.signbit((x * 0.0).numpy()).any()
    assert (x * 2).dtype == np.float32 and (tl.tensor([1, 2]) * 2.0).dtype == np.float32
    np.testing.assert_array_equal((tl.tensor([1, 2]) * 2).numpy(), [2, 4])


def test_contiguous_copies_a_strided_tensor_and_returns_a_contiguous_one_itself():
    """As PyTorch: `.contiguous()` of a transposed tensor is a C-ordered copy (an in-place change of it leaves the
    original alone) through which gradients flow; of a contiguous tensor, the tensor itself."""
    h = tl.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    assert h.contiguous() is h and h.is_contiguous() and not h.T.is_contiguous()
    c = h.T.contiguous()
    assert c.is_contiguous() and c.shape == (3, 2) and np.array_equal(c.numpy(), np.arange(6.0).reshape(2, 3).T)
    with tl.no_grad():
        d = h.detach().T.contiguous()
        d.add_(1.0)
    assert np.array_equal(h.detach().numpy(), np.arange(6.0).reshape(2, 3))
    (c * tl.tensor(np.arange(6.0).reshape(3, 2))).sum().backward()
    assert np.array_equal(h.grad.numpy(), np.arange(6.0).reshape(3, 2).T)
