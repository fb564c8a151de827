"""sort / argsort / topk (tinygrad_lite/sorting.py) against PyTorch: values, indices (exact wherever PyTorch's are
specified: stable sorts, unique values), gradients, 0-d and empty inputs, NaN/-0.0 order, and every error case.
The linalg half of the feature is in test_linalg_sorting.py."""
import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp

import tinygrad_lite as tl
import tinygrad_lite.sorting as S

pytestmark = pytest.mark.oracle

NAN, INF = float("nan"), float("inf")
# few distinct values: ties are common; NaN, infinities and both zeros exercise the order rules
TIE_VALUES = st.sampled_from([NAN, -INF, INF, -0.0, 0.0, 1.0, -1.0, 2.5])
SHAPES = hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5)


@st.composite
def tie_case(draw, dtypes=(np.float64, np.float32, np.int64, np.int32)):
    dtype = draw(st.sampled_from(dtypes))
    shape = draw(SHAPES)
    if dtype in (np.float64, np.float32):
        arr = draw(hnp.arrays(np.float64, shape, elements=TIE_VALUES)).astype(dtype)
    else:
        arr = draw(hnp.arrays(dtype, shape, elements=st.integers(-2, 2)))
    dim = draw(st.integers(-max(arr.ndim, 1), max(arr.ndim, 1) - 1))
    return arr, dim


@st.composite
def unique_case(draw, min_dims=0):
    """float64 arrays of distinct values (indices and gradients are then unique), with a dim."""
    shape = draw(hnp.array_shapes(min_dims=min_dims, max_dims=4, min_side=1, max_side=5))
    n = int(np.prod(shape))
    perm = np.asarray(draw(st.permutations(range(n))), dtype=np.float64)
    arr = np.asarray((perm - n / 2).reshape(shape) * 0.37 + 0.01)
    dim = draw(st.integers(-max(arr.ndim, 1), max(arr.ndim, 1) - 1))
    return arr, dim


def assert_same(ours, theirs, what):
    """Equal values (NaN where NaN), shape and dtype."""
    theirs = theirs.detach()
    assert ours.shape == tuple(theirs.shape), (what, ours.shape, tuple(theirs.shape))
    assert f"torch.{ours.dtype}" == str(theirs.dtype), (what, ours.dtype, theirs.dtype)
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy(), err_msg=what)


def grads(arr, ours_fn, theirs_fn, torch):
    """Gradients of sum(values * up) w.r.t. the input, in both libraries."""
    x, t = tl.tensor(arr.copy(), requires_grad=True), torch.tensor(arr.copy(), requires_grad=True)
    out, tout = ours_fn(x), theirs_fn(t)
    up = np.random.default_rng(3).standard_normal(tuple(tout.shape))
    (out * tl.tensor(up)).sum().backward()
    (tout * torch.tensor(up)).sum().backward()
    return x.grad.numpy(), t.grad.numpy()


# ---------------- sort / argsort ----------------
@given(case=tie_case(), descending=st.booleans(), fn=st.sampled_from(["function", "method"]))
def test_stable_sort_matches_pytorch_exactly_with_ties_nan_and_zeros(case, descending, fn, torch):
    arr, dim = case
    x = tl.tensor(arr)
    res = S.sort(x, dim, descending, stable=True) if fn == "function" else x.sort(dim, descending, stable=True)
    tres = torch.sort(torch.from_numpy(arr), dim=dim, descending=descending, stable=True)
    assert_same(res.values, tres.values, "values")
    assert_same(res.indices, tres.indices, "indices")
    assert_same(S.argsort(x, dim, descending, stable=True),
                torch.argsort(torch.from_numpy(arr), dim=dim, descending=descending, stable=True), "argsort")
    assert res.values is res[0] and res.indices is res[1] and type(res).__name__ == "sort"


@given(case=tie_case(dtypes=(np.float64,)), descending=st.booleans())
def test_unstable_sort_gives_torchs_values_and_a_valid_order(case, descending, torch):
    arr, dim = case
    res = tl.tensor(arr).sort(dim, descending)
    tres = torch.sort(torch.from_numpy(arr), dim=dim, descending=descending)
    assert_same(res.values, tres.values, "values")
    if arr.ndim:  # the indices pick exactly those values, each position once
        np.testing.assert_array_equal(np.take_along_axis(arr, res.indices.numpy(), dim), res.values.numpy())
        np.testing.assert_array_equal(np.sort(res.indices.numpy(), axis=dim),
                                      np.sort(tres.indices.numpy(), axis=dim))


@given(case=unique_case(), descending=st.booleans())
def test_sort_indices_and_gradients_match_pytorch(case, descending, torch):
    arr, dim = case
    res = tl.tensor(arr).sort(dim=dim, descending=descending)
    tres = torch.sort(torch.from_numpy(arr), dim=dim, descending=descending)
    assert_same(res.indices, tres.indices, "indices")
    assert_same(tl.tensor(arr).argsort(dim, descending), torch.from_numpy(arr).argsort(dim, descending), "argsort")
    g, tg = grads(arr, lambda x: x.sort(dim, descending).values,
                  lambda t: torch.sort(t, dim=dim, descending=descending).values, torch)
    np.testing.assert_allclose(g, tg, rtol=0, atol=0)


def test_descending_stable_sort_keeps_original_order_of_ties(torch):
    arr = np.array([1.0, 2.0, 1.0, NAN, 2.0, -0.0, NAN, 0.0, 1.0])
    res = S.sort(tl.tensor(arr), descending=True, stable=True)
    assert res.indices.tolist() == [3, 6, 1, 4, 0, 2, 8, 5, 7]  # not reversed among equals
    assert res.indices.tolist() == torch.sort(torch.from_numpy(arr), descending=True, stable=True).indices.tolist()
    assert S.sort(tl.tensor(arr), stable=True).indices.tolist() == [5, 7, 0, 2, 8, 1, 4, 3, 6]


def test_long_rows_with_ties_sort_stably_as_pytorch(torch):
    arr = np.random.default_rng(5).integers(0, 4, (3, 600)).astype(np.float64)
    arr[0, ::7] = NAN
    for descending in (False, True):
        res = S.sort(tl.tensor(arr), 1, descending, stable=True)
        tres = torch.sort(torch.from_numpy(arr), dim=1, descending=descending, stable=True)
        assert_same(res.indices, tres.indices, f"indices, descending={descending}")


def test_sort_gradient_goes_to_the_chosen_positions_with_ties():
    x = tl.tensor([2.0, 1.0, 2.0, 0.5], requires_grad=True)
    v, i = S.sort(x, descending=True, stable=True)
    (v * tl.tensor([10.0, 20.0, 30.0, 40.0])).sum().backward()
    assert i.tolist() == [0, 2, 1, 3]
    assert x.grad.tolist() == [10.0, 30.0, 20.0, 40.0]


@pytest.mark.parametrize("dtype", ["bool", "uint8", "int8", "int16", "float16"])
def test_sort_other_dtypes_match_pytorch(dtype, torch):
    arr = np.random.default_rng(1).integers(0, 3, 12).astype(dtype)
    for descending in (False, True):
        res = tl.tensor(arr).sort(descending=descending, stable=True)
        tres = torch.from_numpy(arr).sort(descending=descending, stable=True)
        assert_same(res.values, tres.values, dtype)
        assert_same(res.indices, tres.indices, dtype)


def test_sort_zero_dim_and_empty_inputs_match_pytorch(torch):
    x = tl.tensor(2.5, requires_grad=True)
    for dim in (0, -1):
        res, tres = S.sort(x, dim), torch.sort(torch.tensor(2.5), dim=dim)
        assert_same(res.values, tres.values, "0-d values")
        assert_same(res.indices, tres.indices, "0-d indices")
        assert_same(S.argsort(x, dim), torch.argsort(torch.tensor(2.5), dim=dim), "0-d argsort")
    S.sort(x).values.backward()
    assert x.grad.item() == 1.0
    e = np.zeros((2, 0, 3))
    res, tres = tl.tensor(e).sort(1), torch.from_numpy(e).sort(1)
    assert_same(res.values, tres.values, "empty")
    assert_same(res.indices, tres.indices, "empty")


def test_sort_outputs_int64_indices_without_grad():
    x = tl.randn(3, 4, dtype=tl.float32, requires_grad=True)
    v, i = x.sort(0)
    assert v.requires_grad and v.dtype == tl.float32
    assert i.dtype == tl.int64 and not i.requires_grad
    assert x.argsort().dtype == tl.int64 and not x.argsort().requires_grad
    with tl.no_grad():
        assert not x.sort().values.requires_grad


def test_sort_values_gradcheck_float64():
    x = tl.tensor(np.random.default_rng(0).permutation(24).reshape(2, 3, 4) * 0.5, requires_grad=True)
    assert tl.gradcheck(lambda a: S.sort(a, 1, descending=True).values, (x,))
    assert tl.gradcheck(lambda a: a.sort(-1).values.exp() * a, (x,))
    assert tl.gradgradcheck(lambda a: (a.sort(0).values ** 2), (x,))


# ---------------- topk ----------------
@st.composite
def topk_case(draw):
    arr, dim = draw(unique_case())
    n = arr.shape[dim] if arr.ndim else 1
    return arr, dim, draw(st.integers(0, n))


@given(case=topk_case(), largest=st.booleans(), fn=st.sampled_from(["function", "method"]))
def test_topk_values_indices_and_gradients_match_pytorch(case, largest, fn, torch):
    arr, dim, k = case
    x = tl.tensor(arr)
    res = S.topk(x, k, dim, largest, True) if fn == "function" else x.topk(k, dim=dim, largest=largest)
    tres = torch.topk(torch.from_numpy(arr), k, dim=dim, largest=largest, sorted=True)
    assert_same(res.values, tres.values, "values")
    assert_same(res.indices, tres.indices, "indices")
    assert type(res).__name__ == "topk" and res.values is res[0]
    g, tg = grads(arr, lambda t: t.topk(k, dim, largest).values,
                  lambda t: torch.topk(t, k, dim=dim, largest=largest).values, torch)
    np.testing.assert_allclose(g, tg, rtol=0, atol=0)


@given(case=topk_case(), largest=st.booleans())
def test_topk_unsorted_selects_the_same_elements_as_pytorch(case, largest, torch):
    arr, dim, k = case
    res = tl.tensor(arr).topk(k, dim, largest, sorted=False)
    tres = torch.topk(torch.from_numpy(arr), k, dim=dim, largest=largest, sorted=False)
    if arr.ndim:
        np.testing.assert_array_equal(np.sort(res.indices.numpy(), dim), np.sort(tres.indices.numpy(), dim))
        np.testing.assert_array_equal(np.sort(res.values.numpy(), dim), np.sort(tres.values.numpy(), dim))
    else:
        assert_same(res.values, tres.values, "0-d")


@given(case=tie_case(dtypes=(np.float64, np.int64)), largest=st.booleans(), data=st.data())
def test_topk_with_ties_gives_torchs_values_and_the_first_of_the_stable_order(case, largest, data, torch):
    arr, dim = case
    n = arr.shape[dim] if arr.ndim else 1
    k = data.draw(st.integers(0, n))
    res = tl.tensor(arr).topk(k, dim, largest)
    tres = torch.topk(torch.from_numpy(arr), k, dim=dim, largest=largest)
    assert_same(res.values, tres.values, "values")
    if arr.ndim:  # ties across the k-th place keep the lowest indices: the stable sort's first k
        first = torch.sort(torch.from_numpy(arr), dim=dim, descending=largest, stable=True).indices.narrow(dim, 0, k)
        assert_same(res.indices, first, "indices")


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("largest", [True, False])
def test_topk_on_long_rows_matches_the_full_stable_order(ties, largest, torch):
    rng = np.random.default_rng(7)
    arr = rng.integers(0, 50, (4, 1000)).astype(np.float64) if ties else rng.standard_normal((4, 1000))
    arr[1, 5] = NAN  # one NaN: the largest element of its row
    for k in (1, 20, 125):
        res = S.topk(tl.tensor(arr), k, 1, largest)
        tres = torch.topk(torch.from_numpy(arr), k, dim=1, largest=largest)
        stable = torch.sort(torch.from_numpy(arr), dim=1, descending=largest, stable=True).indices[:, :k]
        assert_same(res.values, tres.values, f"values k={k}")
        assert_same(res.indices, stable, f"indices k={k}")
        if not ties:
            assert_same(res.indices, tres.indices, f"torch indices k={k}")


def test_topk_nan_is_largest_as_pytorch(torch):
    arr = np.array([3.0, NAN, 1.0, -INF, INF, 0.5])
    for largest in (True, False):
        res = S.topk(tl.tensor(arr), 3, largest=largest)
        tres = torch.topk(torch.from_numpy(arr), 3, largest=largest)
        assert_same(res.values, tres.values, f"largest={largest}")
        assert_same(res.indices, tres.indices, f"largest={largest}")


def test_topk_gradient_goes_to_the_chosen_positions():
    x = tl.tensor([[1.0, 5.0, 3.0], [4.0, 0.0, 2.0]], requires_grad=True)
    v, i = x.topk(2, dim=1)
    assert i.tolist() == [[1, 2], [0, 2]] and i.dtype == tl.int64 and not i.requires_grad
    (v * tl.tensor([[1.0, 2.0], [3.0, 4.0]])).sum().backward()
    assert x.grad.tolist() == [[0.0, 1.0, 2.0], [3.0, 0.0, 4.0]]


def test_topk_integer_dtypes_and_zero_dim_match_pytorch(torch):
    for dtype in ("int64", "int32", "int8", "uint8", "float16"):
        arr = np.array([3, 1, 2, 7, 5], dtype=dtype)
        res, tres = tl.tensor(arr).topk(3, largest=False), torch.from_numpy(arr).topk(3, largest=False)
        assert_same(res.values, tres.values, dtype)
        assert_same(res.indices, tres.indices, dtype)
    x = tl.tensor(2.5, requires_grad=True)
    for k in (0, 1):
        res, tres = S.topk(x, k), torch.topk(torch.tensor(2.5), k)
        assert_same(res.values, tres.values, f"0-d k={k}")
        assert_same(res.indices, tres.indices, f"0-d k={k}")
    S.topk(x, 1, dim=-1).values.backward()
    assert x.grad.item() == 1.0
    e = np.zeros((2, 0, 3))
    res, tres = S.topk(tl.tensor(e), 0, 1), torch.topk(torch.from_numpy(e), 0, dim=1)
    assert_same(res.values, tres.values, "empty")
    assert_same(S.topk(tl.tensor(e), 2, 0).indices, torch.topk(torch.from_numpy(e), 2, dim=0).indices, "empty")
    assert S.topk(tl.tensor([4, 9]), tl.tensor(1)).values.tolist() == [9]  # a 0-d integer Tensor k, as PyTorch


def test_topk_values_gradcheck_float64():
    x = tl.tensor(np.random.default_rng(2).permutation(30).reshape(5, 6) * 0.25 - 3, requires_grad=True)
    assert tl.gradcheck(lambda a: S.topk(a, 3, 1).values, (x,))
    assert tl.gradcheck(lambda a: a.topk(2, 0, largest=False).values.sin(), (x,))
    assert tl.gradgradcheck(lambda a: a.topk(4).values ** 3, (x,))


# ---------------- errors ----------------
def _raises(call, torch_call, exc, *fragments):
    """Both libraries raise `exc`; ours names everything in `fragments` and this file (the user's line)."""
    with pytest.raises(exc) as info:
        call()
    with pytest.raises(exc):
        torch_call()
    for f in fragments:
        assert f in str(info.value), (f, str(info.value))
    return str(info.value)


@pytest.mark.parametrize("k", [-1, 4, 10])
def test_topk_k_out_of_range_names_topk_k_and_the_dim_size(k, torch):
    msg = _raises(lambda: S.topk(tl.randn(2, 3), k), lambda: torch.topk(torch.randn(2, 3), k), RuntimeError,
                  "topk", f"k={k}", "size 3", "(2, 3)")
    assert "test_linalg_sorting_order.py" in msg
    _raises(lambda: tl.randn(2, 3).topk(3, dim=0), lambda: torch.randn(2, 3).topk(3, dim=0), RuntimeError,
            "topk", "k=3", "dim 0 of size 2")
    _raises(lambda: S.topk(tl.tensor(1.0), 2), lambda: torch.topk(torch.tensor(1.0), 2), RuntimeError,
            "topk", "k=2", "size 1")


@pytest.mark.parametrize("op", ["sort", "argsort", "topk"])
def test_dim_out_of_range_is_an_index_error(op, torch):
    args = (2,) if op == "topk" else ()
    for shape, dim in (((2, 3), 2), ((2, 3), -3), ((), 1), ((), -2)):
        _raises(lambda: getattr(S, op)(tl.zeros(shape), *args, dim=dim),
                lambda: getattr(torch, op)(torch.zeros(shape), *(args if shape else (1,) * len(args)), dim=dim),
                IndexError, op, f"dim {dim}")


def test_topk_bool_input_is_rejected_as_pytorch(torch):
    _raises(lambda: S.topk(tl.tensor([True, False]), 1), lambda: torch.topk(torch.tensor([True, False]), 1),
            RuntimeError, "topk", "bool", "(2,)")


@pytest.mark.parametrize("name, ours, theirs", [
    ("input", lambda: S.sort([3, 1]), lambda t: t.sort([3, 1])),
    ("input", lambda: S.argsort(np.zeros(2)), lambda t: t.argsort(np.zeros(2))),
    ("input", lambda: S.topk([3, 1], 1), lambda t: t.topk([3, 1], 1)),
    ("'k'", lambda: S.topk(tl.zeros(3), 1.0), lambda t: t.topk(t.zeros(3), 1.0)),
    ("'k'", lambda: S.topk(tl.zeros(3), True), lambda t: t.topk(t.zeros(3), True)),
    ("'descending'", lambda: S.sort(tl.zeros(3), descending=1), lambda t: t.sort(t.zeros(3), descending=1)),
    ("'descending'", lambda: tl.zeros(3).argsort(descending="yes"), lambda t: t.zeros(3).argsort(descending="yes")),
    ("'largest'", lambda: S.topk(tl.zeros(3), 1, largest=1), lambda t: t.topk(t.zeros(3), 1, largest=1)),
    ("'sorted'", lambda: S.topk(tl.zeros(3), 1, sorted=None), lambda t: t.topk(t.zeros(3), 1, sorted=None)),
    ("'stable'", lambda: S.sort(tl.zeros(3), stable=2), lambda t: t.sort(t.zeros(3), stable=2)),
    ("dim", lambda: S.sort(tl.zeros(3), dim=0.5), lambda t: t.sort(t.zeros(3), dim=0.5)),
    ("positional", lambda: S.sort(tl.zeros(3), 0, False, True), lambda t: t.sort(t.zeros(3), 0, False, True)),
    ("positional", lambda: tl.zeros(3).sort(0, False, True), lambda t: t.zeros(3).sort(0, False, True)),
])
def test_wrong_argument_types_raise_type_error_as_pytorch(name, ours, theirs, torch):
    with pytest.raises(TypeError) as info:
        ours()
    with pytest.raises(TypeError):
        theirs(torch)
    if name != "positional":
        assert name in str(info.value)
    if name not in ("positional", "dim"):
        assert "test_linalg_sorting_order.py" in str(info.value)  # the user's line


def test_stable_none_is_accepted_as_pytorch(torch):
    arr = np.array([2.0, 1.0, 2.0])
    assert S.sort(tl.tensor(arr), stable=None).indices.tolist() == \
        torch.sort(torch.from_numpy(arr), stable=None).indices.tolist() == [1, 0, 2]


def test_exports():
    assert S.__all__ == ["sort", "argsort", "topk"]
    for name in S.__all__:
        assert callable(getattr(S, name)) and callable(getattr(tl.Tensor, name))
