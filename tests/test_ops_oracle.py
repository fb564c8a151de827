"""Oracle group: every Tensor operation's forward and gradients against PyTorch on the same float64 inputs."""
import numpy as np
import pytest

import tinygrad_lite as tl
import tinygrad_lite.functional as TF

pytestmark = pytest.mark.oracle
rng = np.random.default_rng(0)


def R(*shape, low=-2.0, high=2.0):
    return rng.uniform(low, high, shape)


POS = dict(low=0.3, high=2.0)

# name -> (inputs, our function, torch function); the functions get Tensors of the respective library
CASES = {
    "add_broadcast": ([R(3, 1), R(4)], lambda a, b: a + b, lambda a, b: a + b),
    "sub_scalar": ([R(3)], lambda a: 2.0 - a, lambda a: 2.0 - a),
    "mul": ([R(2, 3), R(2, 3)], lambda a, b: a * b, lambda a, b: a * b),
    "div": ([R(2, 3), R(3, **POS)], lambda a, b: a / b, lambda a, b: a / b),
    "pow_tensor": ([R(4, **POS), R(4)], lambda a, b: a ** b, lambda a, b: a ** b),
    "pow_scalar": ([R(4)], lambda a: a ** 3, lambda a: a ** 3),
    "rpow": ([R(4)], lambda a: 2.0 ** a, lambda a: 2.0 ** a),
    "neg": ([R(3)], lambda a: -a, lambda a: -a),
    "matmul_2d": ([R(3, 4), R(4, 2)], lambda a, b: a @ b, lambda a, b: a @ b),
    "matmul_1d_2d": ([R(4), R(4, 2)], lambda a, b: a @ b, lambda a, b: a @ b),
    "matmul_2d_1d": ([R(3, 4), R(4)], lambda a, b: a @ b, lambda a, b: a @ b),
    "matmul_1d_1d": ([R(4), R(4)], lambda a, b: a @ b, lambda a, b: a @ b),
    "matmul_batched_broadcast": ([R(2, 1, 3, 4), R(5, 4, 2)], lambda a, b: a @ b, lambda a, b: a @ b),
    "exp": ([R(5)], lambda a: a.exp(), lambda a: a.exp()),
    "log": ([R(5, **POS)], lambda a: a.log(), lambda a: a.log()),
    "log1p": ([R(5, **POS)], lambda a: a.log1p(), lambda a: a.log1p()),
    "sqrt": ([R(5, **POS)], lambda a: a.sqrt(), lambda a: a.sqrt()),
    "rsqrt": ([R(5, **POS)], lambda a: a.rsqrt(), lambda a: a.rsqrt()),
    "sin": ([R(5)], lambda a: a.sin(), lambda a: a.sin()),
    "cos": ([R(5)], lambda a: a.cos(), lambda a: a.cos()),
    "tanh": ([R(5)], lambda a: a.tanh(), lambda a: a.tanh()),
    "sigmoid": ([R(5, low=-30, high=30)], lambda a: a.sigmoid(), lambda a: a.sigmoid()),
    "relu": ([R(6)], lambda a: a.relu(), lambda a: a.relu()),
    "relu_at_zero": ([np.array([0.0, -1.0, 1.0])], lambda a: a.relu(), lambda a: a.relu()),
    "abs": ([R(6)], lambda a: a.abs(), lambda a: a.abs()),
    "erf": ([R(6)], lambda a: a.erf(), lambda a: a.erf()),
    "square": ([R(6)], lambda a: a.square(), lambda a: a.square()),
    "clamp": ([np.array([-2.0, -1.0, 0.0, 0.5, 1.0, 3.0])], lambda a: a.clamp(-1, 1), lambda a: a.clamp(-1, 1)),
    "clamp_min": ([R(6)], lambda a: a.clamp(min=0.1), lambda a: a.clamp(min=0.1)),
    "maximum_ties": ([np.array([1.0, 2.0, 3.0]), np.array([1.0, 3.0, 2.0])], lambda a, b: tl.maximum(a, b),
                     lambda a, b: __import__("torch").maximum(a, b)),
    "minimum": ([R(4), R(4)], lambda a, b: tl.minimum(a, b), lambda a, b: __import__("torch").minimum(a, b)),
    "where": ([R(4), R(4)], lambda a, b: tl.where(a > 0, a, b), lambda a, b: __import__("torch").where(a > 0, a, b)),
    "sum_dims": ([R(2, 3, 4)], lambda a: a.sum((0, 2)), lambda a: a.sum((0, 2))),
    "sum_keepdim": ([R(2, 3)], lambda a: a.sum(1, keepdim=True), lambda a: a.sum(1, keepdim=True)),
    "mean": ([R(2, 3)], lambda a: a.mean(-1), lambda a: a.mean(-1)),
    "var": ([R(3, 4)], lambda a: a.var(1), lambda a: a.var(1)),
    "var_correction0": ([R(3, 4)], lambda a: a.var(correction=0), lambda a: a.var(correction=0)),
    "std": ([R(3, 4)], lambda a: a.std(0, keepdim=True), lambda a: a.std(0, keepdim=True)),
    "amax_ties": ([np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])], lambda a: a.amax(1), lambda a: a.amax(1)),
    "amin": ([R(3, 4)], lambda a: a.amin(0), lambda a: a.amin(0)),
    "max_all_ties": ([np.array([1.0, 3.0, 3.0])], lambda a: a.max(), lambda a: a.max()),
    "max_dim": ([R(3, 4)], lambda a: a.max(1)[0], lambda a: a.max(1)[0]),
    "min_dim_keepdim": ([R(3, 4)], lambda a: a.min(0, keepdim=True).values,
                        lambda a: a.min(0, keepdim=True).values),
    "prod": ([R(3, 4)], lambda a: a.prod(1), lambda a: a.prod(1)),
    "prod_with_zero": ([np.array([[1.0, 0.0, 3.0], [0.0, 0.0, 2.0], [1.0, 2.0, 3.0]])], lambda a: a.prod(1),
                       lambda a: a.prod(1)),
    "logsumexp": ([R(3, 4, low=-50, high=50)], lambda a: a.logsumexp(1), lambda a: a.logsumexp(1)),
    "softmax": ([R(3, 4)], lambda a: a.softmax(1), lambda a: a.softmax(1)),
    "log_softmax": ([R(3, 4)], lambda a: a.log_softmax(0), lambda a: a.log_softmax(0)),
    "reshape_view": ([R(2, 6)], lambda a: a.reshape(3, 4).view(-1, 2), lambda a: a.reshape(3, 4).view(-1, 2)),
    "permute": ([R(2, 3, 4)], lambda a: a.permute(2, 0, 1), lambda a: a.permute(2, 0, 1)),
    "transpose_T": ([R(2, 3)], lambda a: a.transpose(0, 1) + a.T, lambda a: a.transpose(0, 1) + a.T),
    "flatten_squeeze_unsqueeze": ([R(2, 1, 3)], lambda a: a.squeeze(1).unsqueeze(0).flatten(),
                                  lambda a: a.squeeze(1).unsqueeze(0).flatten()),
    "expand": ([R(3, 1)], lambda a: a.expand(2, 3, 4), lambda a: a.expand(2, 3, 4)),
    "cat": ([R(2, 3), R(2, 2)], lambda a, b: tl.cat([a, b], 1), lambda a, b: __import__("torch").cat([a, b], 1)),
    "stack": ([R(2, 3), R(2, 3)], lambda a, b: tl.stack([a, b], 1), lambda a, b: __import__("torch").stack([a, b], 1)),
    "split": ([R(5, 2)], lambda a: a.split(2)[2] * 2 + a.split([1, 4])[1].sum(),
              lambda a: a.split(2)[2] * 2 + a.split([1, 4])[1].sum()),
    "chunk": ([R(4, 6)], lambda a: a.chunk(3, 1)[1], lambda a: a.chunk(3, 1)[1]),
    "flip": ([R(3, 4)], lambda a: a.flip((0, 1)), lambda a: a.flip((0, 1))),
    "repeat": ([R(2, 3)], lambda a: a.repeat(2, 1, 2), lambda a: a.repeat(2, 1, 2)),
    "index_basic": ([R(4, 5)], lambda a: a[1:, ::2], lambda a: a[1:, ::2]),
    "index_int_array_repeats": ([R(4, 5)], lambda a: a[[0, 0, 3, 0]], lambda a: a[[0, 0, 3, 0]]),
    "index_mixed": ([R(3, 4, 5)], lambda a: a[..., [1, 1], 2:], lambda a: a[..., [1, 1], 2:]),
    "index_none_neg": ([R(3, 4)], lambda a: a[None, -1], lambda a: a[None, -1]),
    "index_bool": ([R(3, 4)], lambda a: a[a > 0], lambda a: a[a > 0]),
    "gather": ([R(3, 4)], lambda a: a.gather(1, tl.tensor([[0, 0], [3, 1], [2, 2]])),
               lambda a: a.gather(1, __import__("torch").tensor([[0, 0], [3, 1], [2, 2]]))),
    "index_select": ([R(3, 4)], lambda a: a.index_select(1, tl.tensor([3, 0, 3])),
                     lambda a: a.index_select(1, __import__("torch").tensor([3, 0, 3]))),
    "masked_fill": ([R(3, 4)], lambda a: a.masked_fill(a > 0.5, -1.0), lambda a: a.masked_fill(a > 0.5, -1.0)),
    "pad_constant": ([R(2, 3, 4)], lambda a: TF.pad(a, (1, 2, 0, 1), value=0.5),
                     lambda a: __import__("torch").nn.functional.pad(a, (1, 2, 0, 1), value=0.5)),
    "pad_reflect": ([R(1, 2, 4, 5)], lambda a: TF.pad(a, (2, 1, 1, 2), mode="reflect"),
                    lambda a: __import__("torch").nn.functional.pad(a, (2, 1, 1, 2), mode="reflect")),
    "pad_replicate": ([R(1, 2, 4, 5)], lambda a: TF.pad(a, (2, 1, 1, 3), mode="replicate"),
                      lambda a: __import__("torch").nn.functional.pad(a, (2, 1, 1, 3), mode="replicate")),
    "pad_circular": ([R(1, 2, 4, 5)], lambda a: TF.pad(a, (2, 1, 1, 2), mode="circular"),
                     lambda a: __import__("torch").nn.functional.pad(a, (2, 1, 1, 2), mode="circular")),
    "unfold": ([R(2, 3, 7, 6)], lambda a: TF.unfold(a, (3, 2), dilation=(2, 1), padding=1, stride=(2, 1)),
               lambda a: __import__("torch").nn.functional.unfold(a, (3, 2), dilation=(2, 1), padding=1,
                                                                  stride=(2, 1))),
    "fold": ([R(2, 12, 12)], lambda a: TF.fold(a, (5, 6), 2, padding=1, stride=2),
             lambda a: __import__("torch").nn.functional.fold(a, (5, 6), 2, padding=1, stride=2)),
    "cast": ([R(3)], lambda a: a.float().double() * 2, lambda a: a.float().double() * 2),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_forward_and_gradients_match_pytorch(name, torch):
    arrays, ours, theirs = CASES[name]
    xs = [tl.tensor(a.copy(), requires_grad=True) for a in arrays]
    ts = [torch.tensor(a.copy(), requires_grad=True) for a in arrays]
    out, tout = ours(*xs), theirs(*ts)
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=1e-10, atol=1e-12, err_msg=f"{name} forward")
    up = np.random.default_rng(1).standard_normal(tout.shape)
    (out * tl.tensor(up)).sum().backward()
    (tout * torch.tensor(up)).sum().backward()
    for i, (x, t) in enumerate(zip(xs, ts)):
        expect = np.zeros_like(arrays[i]) if t.grad is None else t.grad.numpy()
        got = np.zeros_like(arrays[i]) if x.grad is None else x.grad.numpy()
        np.testing.assert_allclose(got, expect, rtol=1e-10, atol=1e-12, err_msg=f"{name} grad of input {i}")


@pytest.mark.parametrize("name", ["tanh", "sigmoid", "pow_tensor", "div", "logsumexp", "softmax", "prod", "erf",
                                  "matmul_batched_broadcast", "var"])
def test_second_derivatives_match_pytorch(name, torch):
    arrays, ours, theirs = CASES[name]
    xs = [tl.tensor(a.copy(), requires_grad=True) for a in arrays]
    ts = [torch.tensor(a.copy(), requires_grad=True) for a in arrays]
    up = np.random.default_rng(2).standard_normal(theirs(*ts).shape)
    gs = tl.grad((ours(*xs) * tl.tensor(up)).sum(), xs, create_graph=True)
    tgs = torch.autograd.grad((theirs(*ts) * torch.tensor(up)).sum(), ts, create_graph=True)
    s = sum((g * g).sum() for g in gs)
    ts_ = sum((g * g).sum() for g in tgs)
    h = tl.grad(s, xs, allow_unused=True)
    th = torch.autograd.grad(ts_, ts, allow_unused=True)
    for i, (a, b) in enumerate(zip(h, th)):
        expect = np.zeros_like(arrays[i]) if b is None else b.numpy()
        got = np.zeros_like(arrays[i]) if a is None else a.numpy()
        np.testing.assert_allclose(got, expect, rtol=1e-9, atol=1e-11, err_msg=f"{name} second order, input {i}")


def test_dtype_promotion_matches_pytorch(torch):
    pairs = [(np.float32, np.float64), (np.int64, np.float32), (np.int32, np.int64), (np.bool_, np.int64),
             (np.float16, np.float32), (np.int64, np.float16)]
    for a, b in pairs:
        ours = (tl.tensor(np.ones(2, a)) + tl.tensor(np.ones(2, b))).dtype
        theirs = (torch.tensor(np.ones(2, a)) + torch.tensor(np.ones(2, b))).dtype
        assert str(theirs) == f"torch.{ours}", (a, b, ours, theirs)
    assert str((torch.tensor([1, 2]) / 2).dtype) == f"torch.{(tl.tensor([1, 2]) / 2).dtype}"


@pytest.mark.parametrize("dim", [0, 1, 2])
def test_gather_gradient_with_repeated_indices_is_pytorchs_float32_sum_bit_for_bit(dim, torch):
    """Repeated positions sum in float32, in index order, as PyTorch's scatter_add_ (values over 6 decades, so a
    float64 sum rounded once would differ)."""
    g = np.random.default_rng(dim)
    shape, ishape = (4, 5, 6), [4, 5, 6]
    ishape[dim] = 9
    idx = g.integers(0, shape[dim], ishape)
    up = (g.standard_normal(ishape) * 10.0 ** g.uniform(-3, 3, ishape)).astype(np.float32)
    x = tl.tensor(np.zeros(shape, np.float32), requires_grad=True)
    x.gather(dim, tl.tensor(idx)).backward(tl.tensor(up))
    t = torch.zeros(shape, requires_grad=True)
    t.gather(dim, torch.tensor(idx)).backward(torch.tensor(up))
    assert np.array_equal(x.grad.numpy(), t.grad.numpy())
