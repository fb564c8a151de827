"""Review s27c of the eager tensor API against PyTorch: silent differences (values, dtype, shape, aliasing) in views
and copies, reductions' dims, dtype inference and float16 rounding; and a table of probes that already matched,
kept as a guard."""
import math

import numpy as np
import pytest

import tinygrad_lite as tl

pytestmark = pytest.mark.oracle
nan, inf = math.nan, math.inf


def _same(ours, theirs):
    """Equal values (NaN equal; floats to 1e-6), dtype and shape; tuples and lists element by element."""
    if isinstance(theirs, (tuple, list)):
        assert isinstance(ours, (tuple, list)) and len(ours) == len(theirs), (ours, theirs)
        for a, b in zip(ours, theirs):
            _same(a, b)
        return
    if not hasattr(theirs, "shape"):
        assert type(ours) is type(theirs) and (ours == theirs or ours != ours and theirs != theirs), (ours, theirs)
        return
    b = theirs.detach().numpy()
    a = np.asarray(ours.detach().numpy())
    assert str(a.dtype) == str(b.dtype) and a.shape == b.shape, (a.dtype, a.shape, b.dtype, b.shape)
    if a.dtype.kind == "f":  # (the last bit of float32 values computed another way: exp, arange's steps)
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    else:
        np.testing.assert_array_equal(a, b)


def _written_through(L, make):
    """x after `make(L, x).fill_(-1)`: whether the result of `make` is a view of x that a write reaches."""
    x = L.arange(12.0).reshape(3, 4)
    y = make(L, x)
    (y[0] if isinstance(y, (tuple, list)) else y).fill_(-1)
    return x


# --- flip and repeat made views where PyTorch copies (fixed) ---

@pytest.mark.parametrize("make", [
    lambda L, x: x.flip(0),
    lambda L, x: x.flip((0, 1)),
    lambda L, x: L.flip(x, [1]),
    lambda L, x: x[:1].flip(0),  # a flip of a size-1 dim: still a copy
    lambda L, x: x.repeat(1, 1),
    lambda L, x: x.repeat(1, 1, 1),
    lambda L, x: x[:1].repeat(1, 1),
], ids=["flip0", "flip01", "tl.flip", "flip_size1", "repeat_ones", "repeat_lead", "repeat_row"])
def test_copies_as_pytorch(torch, make):
    _same(_written_through(tl, make), _written_through(torch, make))


@pytest.mark.parametrize("sizes", [(4, 1), (1, 2, 1), (3, 2)])
def test_repeat_of_size_one_dims_is_writable(torch, sizes):
    """Repeating only size-1 dims gave a read-only stride-0 view: an in-place change raised."""
    def run(L):
        x = L.ones(1, 3)
        y = x.repeat(*sizes)
        y.add_(1)
        return x, y
    _same(run(tl), run(torch))


def test_flip_and_repeat_gradients(torch):
    def run(L):
        x = L.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
        w = L.tensor(np.arange(12.0).reshape(2, 6))
        ((x.flip(0).repeat(1, 2) * w).sum() + (x.repeat(1, 1) * x).sum()).backward()
        return x.grad
    _same(run(tl), run(torch))


# --- dim=() / dim=[] reduces every dim in PyTorch's reductions; it returned the input unreduced here (fixed) ---

@pytest.mark.parametrize("dim", [(), []], ids=["tuple", "list"])
@pytest.mark.parametrize("name, keepdim", [(n, k) for n in ("sum", "mean", "amax", "amin", "var", "std", "norm",
                                                            "logsumexp") for k in (False, True)
                                           if (n, k) != ("logsumexp", False)])  # (that one: the test below)
def test_an_empty_dim_tuple_reduces_every_dim(torch, name, dim, keepdim):
    def run(L):
        x = L.tensor(np.arange(24.0).reshape(2, 3, 4) / 7, dtype=L.float32)
        return getattr(x, name)(dim=dim, keepdim=keepdim)
    ours, theirs = run(tl), run(torch)
    assert tuple(ours.shape) == tuple(theirs.shape)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6)


@pytest.mark.parametrize("dim", [(), []], ids=["tuple", "list"])
def test_logsumexp_of_an_empty_dim_tuple_without_keepdim(torch, dim):
    """PyTorch 2.13 raises an internal shape error here ("output with shape [] doesn't match the broadcast shape
    [1, 1]"); ours reduces every dim, as its keepdim=True form and every other reduction do."""
    x = np.arange(24.0).reshape(2, 3, 4) / 7
    with pytest.raises(RuntimeError, match="shape"):
        torch.tensor(x).logsumexp(dim=dim)
    ours = tl.tensor(x).logsumexp(dim=dim)
    assert ours.shape == () and np.isclose(ours.item(), np.log(np.exp(x).sum()), rtol=1e-12)


def test_an_empty_dim_tuple_functional_forms(torch):
    for L in (tl, torch):
        x = L.arange(6.0).reshape(2, 3)
        assert L.sum(x, dim=()).item() == 15.0 and L.mean(x, ()).item() == 2.5
    x = tl.arange(6.0).reshape(2, 3)
    assert x.squeeze(()).shape == (2, 3) and x.flip(()).tolist() == x.tolist()  # () is still "no dim" there


# --- chunk of an empty dim (fixed) ---

@pytest.mark.parametrize("shape,chunks,dim", [((0,), 2, 0), ((2, 0), 3, 1), ((0, 3), 1, 0)])
def test_chunk_of_an_empty_dim(torch, shape, chunks, dim):
    def run(L):
        return [tuple(c.shape) for c in L.zeros(*shape).chunk(chunks, dim)]
    assert run(tl) == run(torch)


# --- dtype=float is float64, as in PyTorch and NumPy (was float32; fixed) ---

@pytest.mark.parametrize("make", [
    lambda L: L.tensor([1, 2], dtype=float),
    lambda L: L.zeros(2, dtype=float),
    lambda L: L.ones(2, dtype=float),
    lambda L: L.full((2,), 1, dtype=float),
    lambda L: L.arange(3, dtype=float),
    lambda L: L.tensor([1.5]).to(float),
    lambda L: L.tensor([1, 2]).sum(dtype=float),
    lambda L: L.tensor([1, 2]).to(int),
    lambda L: L.tensor([1.5, 0.0]).to(bool),
], ids=["tensor", "zeros", "ones", "full", "arange", "to", "sum", "to_int", "to_bool"])
def test_python_type_dtypes(torch, make):
    _same(make(tl), make(torch))


# --- arange with dtype=int64 converts float bounds and step to it first, as PyTorch (fixed) ---

@pytest.mark.parametrize("args", [(0, 2.5), (0.5, 3), (-1.5, 2), (3.7,), (0, 5, 1.9), (5.5, 0, -1.5), (0, 3, 0.5)])
def test_arange_with_an_integer_dtype_and_float_arguments(torch, args):
    """int64 only: PyTorch's int32/int16/uint8 arange counts the elements from the float arguments but steps by the
    truncated step ((0, 3, 0.5) gives six zeros), a quirk not followed."""
    dtype = "int64"

    def run(L):
        try:
            return L.arange(*args, dtype=getattr(L, dtype))
        except (ValueError, RuntimeError):  # step 0.5 becomes 0
            return "raised"
    ours, theirs = run(tl), run(torch)
    assert isinstance(ours, str) == isinstance(theirs, str), (ours, theirs)
    if not isinstance(theirs, str):
        _same(ours, theirs)


# --- tl.tensor of a list holding NumPy scalars or arrays or tensors: PyTorch promotes their dtypes (fixed) ---

@pytest.mark.parametrize("make", [
    lambda L: [np.float64(1.5), 2.0],
    lambda L: [np.float64(1.5)],
    lambda L: [[np.float64(1.0)], [2.0]],
    lambda L: [1, np.float64(2.0)],
    lambda L: [np.float64(1.5), np.float32(1.0)],
    lambda L: [np.float16(1.0)],
    lambda L: [1.0, np.float16(1.0)],
    lambda L: [np.float32(1.0), np.int64(1)],
    lambda L: [np.int32(1)],
    lambda L: [np.int32(1), 2],
    lambda L: (np.uint8(3), np.uint8(4)),
    lambda L: [np.int16(3), True],
    lambda L: [np.bool_(True), False],
    lambda L: [np.array([1, 2], dtype=np.int32)],
    lambda L: [L.tensor(1.0, dtype=L.float64), L.tensor(2.0, dtype=L.float64)],
    lambda L: [L.tensor(1, dtype=L.int32)],
    lambda L: [L.tensor(1.0, dtype=L.float16), 1],
    lambda L: [L.tensor(1.0, dtype=L.float16), 1.0],
    lambda L: [[1, 2], [np.int16(1), 3]],
    lambda L: [1, 2.5, True],  # Python numbers only: unchanged
])
def test_tensor_of_a_list_with_numpy_scalars_or_tensors(torch, make):
    _same(tl.tensor(make(tl)), torch.tensor(make(torch)))


# --- float16: PyTorch computes mean, var, std, softmax and norm in float32 and rounds once (fixed) ---

@pytest.mark.parametrize("name,fn", [
    ("mean", lambda x: x.mean(1)),
    ("mean_all", lambda x: x.mean()),
    ("var", lambda x: x.var(1)),
    ("std", lambda x: x.std(1, correction=0)),
    ("norm", lambda x: x.norm(dim=1)),
    ("norm3", lambda x: x.norm(p=3, dim=1)),
    ("softmax", lambda x: x.softmax(1)),
])
def test_float16_rounding(torch, name, fn):
    a = np.random.default_rng(0).standard_normal((16, 300)).astype(np.float16)
    ours, theirs = fn(tl.tensor(a)), fn(torch.tensor(a))
    assert str(ours.dtype) == "float16" and theirs.dtype == torch.float16
    mismatch = np.mean(ours.numpy() != theirs.numpy())
    assert mismatch <= (0.01 if name == "softmax" else 0.0), mismatch  # was about half of them


def test_float16_mean_gradient(torch):
    def run(L):
        x = L.tensor(np.linspace(-1, 1, 12, dtype=np.float16).reshape(3, 4), requires_grad=True)
        (x.std(1) * x.mean(1)).sum().backward()
        return x.grad
    ours, theirs = run(tl), run(torch)
    assert str(ours.dtype) == "float16"
    np.testing.assert_allclose(ours.numpy().astype(np.float32), theirs.numpy().astype(np.float32), atol=2e-3)


# --- differences left (strict xfails) ---

@pytest.mark.xfail(strict=True, reason="reshape/view/permute/expand/squeeze/transpose to the same shape return the "
                   "input itself (a shortcut of shape.py), PyTorch a new view: is_leaf, grad_fn and .grad differ")
def test_an_identity_view_is_a_new_tensor():
    x = tl.ones(2, 3, requires_grad=True)
    y = x.reshape(2, 3)
    assert y is not x and not y.is_leaf


@pytest.mark.xfail(strict=True, reason="topk's order among tied values is PyTorch's kernel's (not documented: its "
                   "CPU topk picks the later of the tied elements here); ours takes them in index order")
def test_topk_tie_order(torch):
    v = [1.0, 3.0, 3.0, 0.0, 3.0]
    assert tl.tensor(v).topk(2).indices.tolist() == torch.tensor(v).topk(2).indices.tolist()


# --- probes that matched PyTorch: kept as a guard ---

def _inplace(fn, make):
    def run(L):
        x = make(L)
        fn(L, x)
        return x
    return run


VIEW_PROBES = {
    "reshape": lambda L, x: x.reshape(12), "reshape_noncontig": lambda L, x: x.t().reshape(12),
    "reshape_view_possible": lambda L, x: x[:, :2].reshape(3, 2, 1), "view": lambda L, x: x.view(4, 3),
    "flatten": lambda L, x: x.flatten(), "flatten_noncontig": lambda L, x: x.t().flatten(),
    "view_as": lambda L, x: x.view_as(L.zeros(2, 6)), "unsqueeze": lambda L, x: x.unsqueeze(0),
    "t": lambda L, x: x.t(), "T": lambda L, x: x.T, "mT": lambda L, x: x.mT,
    "transpose": lambda L, x: x.transpose(0, 1), "permute": lambda L, x: x.permute(1, 0),
    "narrow": lambda L, x: x.narrow(1, 1, 2), "unbind": lambda L, x: x.unbind(1)[1],
    "split": lambda L, x: x.split(2, dim=1)[1], "split_sizes": lambda L, x: x.split([1, 3], dim=1)[1],
    "chunk": lambda L, x: x.chunk(2, 0)[1], "none": lambda L, x: x[..., None], "slice": lambda L, x: x[1:3],
    "slice_step": lambda L, x: x[:, ::2], "fancy": lambda L, x: x[[0, 1]], "mask": lambda L, x: x[x > 5],
    "squeeze": lambda L, x: x[None].squeeze(0), "int": lambda L, x: x[1], "int_int": lambda L, x: x[1, 2],
    "detach": lambda L, x: x.detach(), "data": lambda L, x: x.data, "contiguous": lambda L, x: x.contiguous(),
    "contiguous_t": lambda L, x: x.t().contiguous(), "clone": lambda L, x: x.clone(),
    "movedim": lambda L, x: x.movedim(0, 1), "index_select": lambda L, x: x.index_select(0, L.tensor([0])),
    "float_same": lambda L, x: x.float(), "none_int_slice": lambda L, x: x[None, 1, 1:],
}


@pytest.mark.parametrize("name", sorted(VIEW_PROBES))
def test_views_and_copies_match(torch, name):
    make = VIEW_PROBES[name]
    _same(_written_through(tl, make), _written_through(torch, make))


T = lambda L, *a, **k: L.tensor(*a, **k)  # noqa: E731
VALUE_PROBES = {
    "iadd_flipped": _inplace(lambda L, x: x.__iadd__(x.flip(0)), lambda L: L.arange(3.0)),
    "int_mul_float": lambda L: T(L, [1, 2]) * 1.5, "int_div_int": lambda L: T(L, [1, 2]) / T(L, [2, 2]),
    "floordiv_neg": lambda L: T(L, [-7, 7, -7, 7]) // T(L, [2, -2, -2, 2]),
    "floordiv_neg_float": lambda L: T(L, [-7.0, 7.0, -7.0, 7.0]) // T(L, [2.0, -2.0, -2.0, 2.0]),
    "mod_neg": lambda L: T(L, [-7, 7, -7, 7]) % T(L, [2, -2, -2, 2]),
    "mod_float_scalar": lambda L: T(L, [-7, 7]) % 2.5, "rmod": lambda L: 7 % T(L, [-2, 2]),
    "int_plus_bool": lambda L: T(L, [1, 2]) + T(L, [True, False]),
    "bool_plus_bool": lambda L: T(L, [True, False]) + T(L, [True, True]),
    "f16_plus_f64": lambda L: L.ones(2, dtype=L.float16) + L.ones(2, dtype=L.float64),
    "f16_plus_0d_f32": lambda L: L.ones(2, dtype=L.float16) + L.tensor(1.5),
    "i32_plus_0d_i64": lambda L: L.ones(2, dtype=L.int32) + L.tensor(5),
    "i64_plus_f16": lambda L: L.ones(2, dtype=L.int64) + L.ones(2, dtype=L.float16),
    "int_pow_half": lambda L: T(L, [1, 4]) ** 0.5, "sum_bool": lambda L: T(L, [True, True]).sum(),
    "sum_i32": lambda L: L.ones(2, dtype=L.int32).sum(), "cumsum_i32": lambda L: L.ones(2, dtype=L.int32).cumsum(0),
    "cumsum_bool": lambda L: T(L, [True, True]).cumsum(0), "sqrt_int": lambda L: T(L, [1, 4]).sqrt(),
    "clamp_int_float": lambda L: T(L, [-1, 4]).clamp(0.5, 2.5), "clamp_nan": lambda L: T(L, [nan, 4.0]).clamp(0, 2),
    "clamp_min_above_max": lambda L: T(L, [-1.0, 1.0, 4.0]).clamp(2, 0),
    "maximum_nan": lambda L: L.maximum(T(L, [nan, 1.0]), T(L, [0.0, nan])),
    "round_half_even": lambda L: T(L, [0.5, 1.5, 2.5, -0.5, -1.5]).round(),
    "round_decimals": lambda L: T(L, [1.2345, 2.675, -0.125]).round(decimals=2),
    "remainder": lambda L: L.remainder(T(L, [-7.0, 7.0]), -2), "int_div_zero": lambda L: T(L, [1, 0, -1]) / 0,
    "max_nan": lambda L: T(L, [1.0, nan, 3.0]).max(), "argmax_nan": lambda L: T(L, [1.0, nan, 3.0]).argmax(),
    "max_dim_nan": lambda L: T(L, [[1.0, nan, 3.0], [1.0, 2.0, 0.0]]).max(1),
    "sort_nan": lambda L: T(L, [1.0, nan, 3.0, 2.0]).sort(),
    "sort_nan_desc": lambda L: T(L, [1.0, nan, 3.0, 2.0]).sort(descending=True),
    "topk_nan": lambda L: T(L, [1.0, nan, 3.0, 2.0]).topk(2), "unique_nan": lambda L: L.unique(T(L, [nan, 1.0, 1.0])),
    "argmax_ties": lambda L: T(L, [1, 3, 3, 0]).argmax(),
    "sort_stable_desc": lambda L: T(L, [1, 3, 3, 0, 3, 1]).sort(stable=True, descending=True),
    "sum_empty": lambda L: L.zeros(0).sum(), "mean_empty": lambda L: L.zeros(0).mean(),
    "cat_empty": lambda L: L.cat([L.zeros(0), L.ones(2)]),
    "cat_int_float": lambda L: L.cat([L.zeros(2, dtype=L.int64), L.ones(2)]),
    "sum_dims_neg": lambda L: L.arange(24.0).reshape(2, 3, 4).sum(dim=(-1, 0), keepdim=True),
    "var_correction": lambda L: T(L, [1.0, 2.0, 4.0]).var(correction=2),
    "std_one": lambda L: L.ones(1).std(),
    "norm_0": lambda L: T(L, [3.0, 0.0, -4.0]).norm(0),
    "lse_neg_inf_row": lambda L: T(L, [[-inf, -inf], [0.0, 1.0]]).logsumexp(1),
    "softmax_neg_inf_row": lambda L: T(L, [[-inf, -inf], [0.0, 1.0]]).softmax(1),
    "where_scalar_int": lambda L: L.where(T(L, [True, False]), 1.5, T(L, [2, 3])),
    "where_f16": lambda L: L.where(T(L, [True, False]), 1.5, L.ones(2, dtype=L.float16)),
    "masked_fill_broadcast": lambda L: L.zeros(2, 3).masked_fill(T(L, [True, False, True]), 5.0),
    "gather_dup": lambda L: T(L, [[1.0, 2.0], [3.0, 4.0]]).gather(1, T(L, [[0, 0], [1, 0]])),
    "scatter_add_dup": _inplace(lambda L, x: x.scatter_add_(0, T(L, [[0, 1], [0, 1]]), T(L, [[1.0, 2.0], [3.0, 4.0]])),
                                lambda L: L.zeros(3, 2)),
    "index_add_dup": lambda L: L.zeros(3, 2).index_add_(0, T(L, [0, 0, 2]), L.ones(3, 2)),
    "setitem_int_float": _inplace(lambda L, x: x.__setitem__(0, -2.7), lambda L: L.arange(4)),
    "arange_float_step": lambda L: L.arange(-1, 0.3, 0.1), "arange_int_float": lambda L: L.arange(0, 5, 1.0),
    "linspace": lambda L: L.linspace(-3.3, 7.1, 13), "linspace_int": lambda L: L.linspace(0, 10, 4, dtype=L.int64),
    "tensor_mixed": lambda L: T(L, [True, 2]), "tensor_float_to_int": lambda L: T(L, [1.7, -1.7], dtype=L.int64),
    "full_like_float_on_int": lambda L: L.full_like(T(L, [1, 2]), 2.7),
    "cmp_int_float": lambda L: T(L, [1, 2]) < 1.5, "item_int": lambda L: T(L, [3]).item(),
    "item_bool": lambda L: T(L, [True]).item(), "tolist": lambda L: T(L, [[1, 2]]).tolist(),
    "int64_wraps": lambda L: T(L, [2 ** 62]) + T(L, [2 ** 62]),
    "int32_wraps": lambda L: L.tensor([2 ** 31 - 1], dtype=L.int32) + 1,
    "float_to_long": lambda L: T(L, [-1.7, 2.7]).long(),
    "chunk_uneven": lambda L: [tuple(c.shape) for c in L.arange(6).chunk(4)],
}


@pytest.mark.parametrize("name", sorted(VALUE_PROBES))
def test_values_match(torch, name):
    with np.errstate(all="ignore"):
        ours = VALUE_PROBES[name](tl)
    _same(ours, VALUE_PROBES[name](torch))
