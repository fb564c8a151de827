"""In-place operations, augmented assignment and item assignment against PyTorch: values, gradients, and whether a
later backward raises (the version-counter behaviour)."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinygrad_lite as tl

pytestmark = pytest.mark.oracle


def _run(lib, case):
    """Run `case(lib, x, w)` on float64 leaves and backprop a weighted sum; ('raises', msg) if anything raises."""
    x = lib.tensor([0.1, 0.2, 0.3, 0.4], dtype=lib.float64, requires_grad=True)
    w = lib.tensor([1.5, -2.0, 0.5, 3.0], dtype=lib.float64, requires_grad=True)
    return run_case(lib, case, x, w)


def run_case(lib, case, x, w):
    """_run's work on leaves x and w of library `lib`."""
    try:
        out = case(lib, x, w)
        (out * lib.arange(out.numel(), dtype=lib.float64).reshape(out.shape)).sum().backward()
    except RuntimeError as exc:
        return "raises", str(exc)
    grads = [None if t.grad is None else t.grad.numpy().copy() for t in (x, w)]
    return out.detach().numpy().copy(), grads


def slice_iadd_after_exp(L, x, w):  # exp saved its output: changing it in place must raise
    h = x.exp()
    h[1:3] += 1
    return h


def accumulate_into_nonleaf(L, x, w):
    h = x * w
    h += w
    h *= 2
    h -= x
    h /= 4
    return h


def item_imul_after_mul(L, x, w):  # getitem then setitem of a mul output: fine in PyTorch
    h = x * w
    h[0] *= 3
    h[1:3] += w[1:3]
    return h


def consumer_saved_value_changed(L, x, w):
    h = x * 2
    y = h * w
    h += 1
    return y


def consumer_not_reading_value(L, x, w):
    h = x * 2
    y = h + w
    h += 1
    return y * 1 + h


def buffer_filled_in_graph(L, x, w):
    buf = L.zeros(4, dtype=L.float64)
    buf += x * w
    buf[2] = w[0]
    return buf


def mask_assignment_after_tanh(L, x, w):
    h = x.tanh()
    h[h > 0.2] = 0
    return h


def mask_assignment_after_mul(L, x, w):
    h = x * w
    h[h > 0.2] = 0
    return h


def index_array_assignment(L, x, w):
    h = x * 2
    h[L.tensor([0, 3])] = w[:2] * 5
    return h


def no_grad_change_of_saved_input(L, x, w):
    h = x * 1
    y = h * w
    with L.no_grad():
        h += 1
    return y


def no_grad_change_of_unread_output(L, x, w):
    h = x * w
    with L.no_grad():
        h += 1
    return h * 2


def copy_into_clone(L, x, w):
    h = x.exp()
    g = h.clone()
    g.copy_(w)
    return g + h


def copy_constant_into_nonleaf(L, x, w):
    h = x.exp() * w
    h.copy_(L.ones(4, dtype=h.dtype) * 3)  # the old values' gradient is zero, the result still requires grad
    return h * x


def assign_row_of_view(L, x, w):
    h = (x * 1).view(2, 2)
    h[0, :] = w[1]
    return h.reshape(4)


def inplace_methods_chain(L, x, w):
    h = x * 1
    h.mul_(w).add_(x, alpha=2).clamp_(-1, 1).neg_()
    return h


def masked_fill_inplace(L, x, w):
    h = x * w
    h.masked_fill_(h < 0, 0.5)
    return h


CASES = [slice_iadd_after_exp, accumulate_into_nonleaf, item_imul_after_mul, consumer_saved_value_changed,
         consumer_not_reading_value, buffer_filled_in_graph, mask_assignment_after_tanh, mask_assignment_after_mul,
         index_array_assignment, no_grad_change_of_saved_input, no_grad_change_of_unread_output, copy_into_clone,
         copy_constant_into_nonleaf,
         assign_row_of_view, inplace_methods_chain, masked_fill_inplace]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.__name__)
def test_inplace_pattern_matches_pytorch(torch, case):
    assert_same_run(_run(tl, case), _run(torch, case))


def assert_same_run(ours, theirs):
    """`_run`'s results of tinygrad_lite and PyTorch agree: both raise the version counter's error, or give the same
    values and gradients."""
    raised = isinstance(ours[0], str)
    assert raised == isinstance(theirs[0], str), f"ours: {ours}\nPyTorch: {theirs}"
    if raised:
        assert "modified by an in-place operation" in ours[1]
        return
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-12, atol=0)
    for g, h in zip(ours[1], theirs[1]):
        assert (g is None) == (h is None)
        if g is not None:
            np.testing.assert_allclose(g, h, rtol=1e-12, atol=1e-15)


def _index_strategy(shape):
    n = shape[0]
    return st.one_of(
        st.integers(-n, n - 1),
        st.builds(slice, st.none() | st.integers(-n, n), st.none() | st.integers(-n, n),
                  st.sampled_from([None, 1, 2])),  # PyTorch has no negative steps
        st.lists(st.integers(-n, n - 1), min_size=1, max_size=n, unique=True).map(np.array),
        st.lists(st.booleans(), min_size=n, max_size=n).map(np.array),
    )


@settings(max_examples=60, deadline=None)
@given(data=st.data(), shape=st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple))
def test_item_assignment_values_and_gradients_match_pytorch(torch, data, shape):
    idx = data.draw(_index_strategy(shape), label="index")
    rng = np.random.default_rng(0)
    base = rng.standard_normal(shape)
    target = np.empty(shape)[idx].shape
    vshape = data.draw(st.sampled_from([target, target[1:], ()]), label="value shape")
    value = rng.standard_normal(vshape)
    results = []
    for L in (tl, torch):
        x = L.tensor(base, requires_grad=True)
        v = L.tensor(value, requires_grad=True)
        h = x * 1
        key = L.tensor(idx) if isinstance(idx, np.ndarray) else idx
        h[key] = v * 2
        (h * L.tensor(np.arange(h.numel(), dtype=np.float64).reshape(shape))).sum().backward()
        results.append((h.detach().numpy(), x.grad.numpy(), v.grad.numpy()))
    for ours, theirs in zip(*results):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(data=st.data(), shape=st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple),
       dtype=st.sampled_from(["float32", "float64", "int64"]))
def test_item_assignment_without_grad_matches_pytorch(torch, data, shape, dtype):
    idx = data.draw(_index_strategy(shape), label="index")
    value = data.draw(st.sampled_from([1.75, -3, True]), label="scalar")
    base = np.arange(np.prod(shape)).reshape(shape).astype(dtype)
    ours, theirs = tl.tensor(base.copy()), torch.tensor(base.copy())
    ours[tl.tensor(idx) if isinstance(idx, np.ndarray) else idx] = value
    theirs[torch.tensor(idx) if isinstance(idx, np.ndarray) else idx] = value
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    assert ours.dtype == np.dtype(dtype)


@pytest.mark.parametrize("op", ["+=", "-=", "*=", "/="])
@pytest.mark.parametrize("dtypes", [("float32", "float32"), ("float32", "float64"), ("float64", "float32"),
                                    ("float32", "int64"), ("int64", "int64")])
def test_augmented_assignment_numbers_and_dtypes_match_pytorch(torch, op, dtypes):
    a = np.array([[1.5, -2.25, 3.0], [0.5, 4.0, -1.0]], dtype=dtypes[0])
    b = np.array([0.3, -1.7, 2.0], dtype=dtypes[1])
    outcome = []
    for L in (tl, torch):
        x, y = L.tensor(a.copy()), L.tensor(b.copy())
        ref = x
        try:
            exec(f"x {op} y")
        except RuntimeError as exc:  # PyTorch: int tensor /= anything (result float) cannot be stored in place
            outcome.append(("raises", type(exc)))
            continue
        assert x is ref  # in place: the name still points at the same tensor
        outcome.append((x.numpy().copy(), str(x.dtype).replace("torch.", "")))
    raised = [isinstance(o[0], str) for o in outcome]
    assert raised[0] == raised[1], outcome
    if not raised[0]:
        np.testing.assert_array_equal(outcome[0][0], outcome[1][0])
        assert outcome[0][1] == outcome[1][1]


def test_parameter_update_under_no_grad_trains_as_in_pytorch(torch):
    """The loop from the issue: `p -= lr * p.grad` under no_grad must change the parameters (it used to rebind)."""
    rng = np.random.default_rng(0)
    x = np.linspace(-np.pi, np.pi, 200)
    y = np.sin(x)
    coeffs = rng.standard_normal(4)
    losses = {}
    for name, L in (("ours", tl), ("torch", torch)):
        xs, ys = L.tensor(x), L.tensor(y)
        params = [L.tensor(c, dtype=L.float64, requires_grad=True) for c in coeffs]
        history = []
        for _ in range(300):
            a, b, c, d = params
            loss = (a + b * xs + c * xs ** 2 + d * xs ** 3 - ys).pow(2).sum()
            history.append(loss.item())
            loss.backward()
            with L.no_grad():
                for p in params:
                    p -= 1e-6 * p.grad
                    p.grad = None
        losses[name] = history
    np.testing.assert_allclose(losses["ours"], losses["torch"], rtol=1e-9)
    assert losses["ours"][-1] < 0.5 * losses["ours"][0]


def test_data_shares_storage_and_is_not_tracked_as_pytorch(torch):
    for L in (tl, torch):
        p = L.tensor([1.0, 2.0, 3.0], requires_grad=True)
        d = p.data
        assert not d.requires_grad and d.is_leaf and d.shape == p.shape
        p.data.add_(1.0)
        p.data.mul_(2.0)
        assert p.tolist() == [4.0, 6.0, 8.0]
        p.data = L.tensor([0.5, 0.5])  # a new storage, even of another shape, as PyTorch allows
        assert p.shape == (2,) and p.requires_grad and p.is_leaf
        y = p * 3
        p.data.fill_(2.0)  # .data changes are not version-counted: backward sees no conflict
        y.sum().backward()
        assert p.grad.tolist() == [3.0, 3.0]


def _element_views(L):
    """x[i, j] is a 0-d view of x (outside the graph): in-place ops through it change x, and it sees x's changes."""
    x = L.arange(6, dtype=L.float32).reshape(2, 3)
    x[0, 1].mul_(3)
    x[1, 0].add_(10)
    e = x[1, 2]
    e.fill_(-1)
    x.add_(1)
    return x.numpy().copy(), e.item(), e.shape


def test_an_element_is_a_view_as_in_pytorch(torch):
    ours, theirs = _element_views(tl), _element_views(torch)
    assert np.array_equal(ours[0], theirs[0]) and ours[1:] == (theirs[1], tuple(theirs[2])), (ours, theirs)


@pytest.mark.parametrize("case", [
    lambda x: x[0, 1].mul_(2), lambda x: x[0:1].zero_(), lambda x: x.reshape(4).add_(1), lambda x: x.t().fill_(3.0),
    lambda x: x[0].__setitem__(0, 5.0), lambda x: x.detach().add_(1), lambda x: (x * 1)[0, 1].mul_(2),
], ids=["element", "slice", "reshape", "transpose", "setitem", "detach", "view-of-non-leaf"])
def test_in_place_on_a_view_of_a_leaf_that_requires_grad_raises_as_in_pytorch(torch, case):
    """PyTorch refuses an in-place change through a view of a leaf that requires grad (it would change the leaf
    behind autograd's back); a detached alias and a view of a non-leaf are allowed. (Before: tinygrad_lite ran them,
    leaving the leaf unchanged, silently.)"""
    outcomes = []
    for lib in (tl, torch):
        x = lib.ones(2, 2, requires_grad=True)
        try:
            case(x)
            outcomes.append(("ok", x.detach().numpy().tolist()))
        except RuntimeError as exc:
            assert "a view of a leaf Variable that requires grad" in str(exc)
            outcomes.append(("raises", None))
    assert outcomes[0] == outcomes[1], outcomes
