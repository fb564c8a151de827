"""In-place changes through a view inside the graph (PyTorch's view + CopySlices): `h[0:2].mul_(3)`,
`z[:, 1].copy_(v)`, `h.view(-1)[1:5].add_(1)`, `h.t()[0].mul_(w)` change the viewed tensor, which takes the history
(its other elements keep theirs), and the view goes on viewing it. Against PyTorch (values, gradients, whether
backward refuses), against finite differences in float64 (first and second order), and compiled against eager."""
import numpy as np
import pytest

import tinygrad_lite as tl

from test_inplace_oracle import assert_same_run, run_case


def _leaves(lib, seed=0):
    rng = np.random.default_rng(seed)
    x = lib.tensor(rng.standard_normal((3, 4)), dtype=lib.float64, requires_grad=True)
    w = lib.tensor(rng.standard_normal(4), dtype=lib.float64, requires_grad=True)
    return x, w


def slice_mul(L, x, w):
    h = x * 1
    h[0:2].mul_(3)
    return h


def column_copied_into_zeros(L, x, w):  # z requires no grad until the copy gives it a history
    z = L.zeros(3, 4, dtype=L.float64)
    z[:, 1].copy_(w[:3] * 2)
    return z


def flat_view_add(L, x, w):
    h = x * 1
    h.view(-1)[1:5].add_(w)
    return h


def transposed_row_mul(L, x, w):
    h = x * 1
    h.t()[0].mul_(w[:3])
    return h


def view_used_after(L, x, w):
    h = x * 1
    v = h[1]
    v.exp_()
    return h * v.sum()


def view_of_view(L, x, w):
    h = x * 1
    v = h[1:]
    u = v[:, ::2]
    u.mul_(w[::2])
    return h + v.sum()


def narrowed_zeroed(L, x, w):
    h = x * w
    h.narrow(1, 1, 2).zero_()
    return h


def unsqueezed_row(L, x, w):
    h = x * 1
    h[0].unsqueeze(0).add_(w)
    return h


def reshaped_row(L, x, w):
    h = x * 1
    h.reshape(2, 6)[1].sub_(w.sum())
    return h


def assigned_through_a_view(L, x, w):
    h = x * 1
    h[1:][0] = w
    return h


def rows_one_by_one(L, x, w):
    h = x * 1
    for i in range(3):
        h[i].mul_(w[i])
    return h


def clamped_column(L, x, w):
    h = x * w
    h[:, 0].clamp_(min=0.2)
    return h


def masked_row(L, x, w):
    h = x * 1
    h[2].masked_fill_(w > 0, 5.0)
    return h


def changed_after_exp_saved_it(L, x, w):  # exp saved its output: the backward must refuse, in PyTorch too
    h = x.exp()
    h[0].mul_(2)
    return h


def element_view(L, x, w):
    h = x * 1
    h[1, 2].mul_(w[0])
    return h


def into_a_fortran_ordered_array(L, x, w):  # a tensor whose memory is not C-ordered
    z = L.from_numpy(np.asfortranarray(np.arange(12.0).reshape(3, 4)))
    z[1:, 2].mul_(w[:2])
    z.t()[3].copy_(w[1:])
    return z


CASES = [into_a_fortran_ordered_array, slice_mul, column_copied_into_zeros, flat_view_add, transposed_row_mul, view_used_after, view_of_view,
         narrowed_zeroed, unsqueezed_row, reshaped_row, assigned_through_a_view, rows_one_by_one, clamped_column,
         masked_row, changed_after_exp_saved_it, element_view]


def _run(lib, case):
    return run_case(lib, case, *_leaves(lib))


@pytest.mark.oracle
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.__name__)
def test_an_inplace_change_through_a_view_matches_pytorch(torch, case):
    assert_same_run(_run(tl, case), _run(torch, case))


def test_the_view_and_the_viewed_tensor_stay_one_memory():
    """After the change each sees the other's later changes (under no_grad here), as views do in PyTorch."""
    x, w = _leaves(tl)
    h = x * 1
    v = h[1]
    v.mul_(w)
    np.testing.assert_array_equal(h.detach().numpy()[1], v.detach().numpy())
    with tl.no_grad():
        v.add_(1.0)
        np.testing.assert_array_equal(h.numpy()[1], v.numpy())
        h[1, 0] = 9.0
    assert v.numpy()[0] == 9.0


def test_a_view_of_a_parameter_still_refuses():
    x, w = _leaves(tl)
    with pytest.raises(RuntimeError, match="a view of a leaf Variable that requires grad"):
        x[0].mul_(w)
    assert x.grad is None


@pytest.mark.parametrize("case", [c for c in CASES if c is not changed_after_exp_saved_it], ids=lambda c: c.__name__)
def test_gradients_match_finite_differences_to_second_order(case):
    x, w = _leaves(tl, seed=1)
    # (away from the kinks of clamp and of masked_fill's mask: the sign of w decides which row elements are masked)
    def f(x, w):
        return case(tl, x, w).sin().sum()
    assert tl.autograd.gradcheck(f, (x, w), eps=1e-6, atol=1e-5, rtol=1e-4)
    assert tl.autograd.gradgradcheck(f, (x, w), eps=1e-6, atol=1e-4, rtol=1e-3)


@pytest.mark.parametrize("case", [slice_mul, view_used_after, view_of_view, rows_one_by_one, assigned_through_a_view,
                                  column_copied_into_zeros], ids=lambda c: c.__name__)
def test_a_compiled_step_is_bit_identical_to_eager(case):
    """A training step whose model writes through views, compiled and eager, over calls with new batches."""
    runs = []
    for compiled in (True, False):
        lin = tl.nn.Linear(4, 4).double()
        with tl.no_grad():
            lin.weight.copy_(tl.tensor(np.linspace(-1, 1, 16).reshape(4, 4)))
            lin.bias.zero_()
        opt = tl.optim.SGD(lin.parameters(), lr=0.002, momentum=0.9)

        def step(x):
            opt.zero_grad()
            out = case(tl, lin(x).tanh(), lin.bias)
            loss = (out ** 2).mean()
            loss.backward()
            opt.step()
            return loss.item()
        f = tl.compile(step) if compiled else step
        rng = np.random.default_rng(3)
        losses = [f(tl.tensor(rng.standard_normal((3, 4)))) for _ in range(12)]
        runs.append((losses, lin.weight.numpy().copy(), lin.bias.numpy().copy(), getattr(f, "stats", None)))
    (got, gw, gb, stats), (want, ww, wb, _) = runs
    assert np.isfinite(got).all() and got == want and np.array_equal(gw, ww) and np.array_equal(gb, wb)
    assert stats["replays"] == 11 and stats["eager_calls"] == 0, stats


def test_forward_mode_tangents_follow_the_write():
    """jvp through changes made by views (outside the graph: forward mode alone) against central differences."""
    def f(x):
        h = x * 1
        h[0:2].mul_(3)
        v = h[2]
        v.exp_()
        u = h[1:]
        u[:, 1].mul_(x[0, :2])
        h[0].fill_(2.0)
        return h * 2 + u.sum()
    rng = np.random.default_rng(5)
    x, t = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    out, tangent = tl.func.jvp(f, (tl.tensor(x),), (tl.tensor(t),))
    eps = 1e-6
    fd = (f(tl.tensor(x + eps * t)).numpy() - f(tl.tensor(x - eps * t)).numpy()) / (2 * eps)
    np.testing.assert_allclose(tangent.numpy(), fd, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(out.numpy(), f(tl.tensor(x)).numpy())


def test_vmap_of_grad_matches_each_sample():
    def g(x):
        h = x * 1
        h[0].mul_(x[1])
        u = h.t()[1:3]
        u.mul_(2)
        return (h * h).sum()
    xs = np.random.default_rng(6).standard_normal((3, 3, 4))
    got = tl.func.vmap(tl.func.grad(g))(tl.tensor(xs)).numpy()
    want = np.stack([tl.func.grad(g)(tl.tensor(x)).numpy() for x in xs])
    np.testing.assert_allclose(got, want, rtol=1e-12)
    x = tl.tensor(xs[0], requires_grad=True)  # and each sample's against finite differences
    assert tl.autograd.gradcheck(g, (x,), eps=1e-6, atol=1e-5, rtol=1e-4)


def test_a_loop_of_views_keeps_no_chain_alive():
    """Each view holds the tensor it views first, and the views between only weakly: `x = x.reshape(...)` in a loop
    frees the earlier views (a strong chain kept every one of them alive, ~230 bytes a link)."""
    import gc
    import weakref
    x = tl.zeros(10)
    first = x.reshape(2, 5)
    gone = weakref.ref(first)
    x = first.reshape(10)
    del first
    for _ in range(100):
        x = x.reshape(2, 5).reshape(10)
    gc.collect()
    assert gone() is None
    # and a change through the last view still reaches the first tensor, and a live view between
    h = (tl.arange(12.0) * tl.ones(12, requires_grad=True)).reshape(3, 4)
    root = h._view_base
    mid = h[1:]
    mid[:, 1].mul_(10.0)
    np.testing.assert_array_equal(root.detach().numpy()[[5, 9]], [50.0, 90.0])
    np.testing.assert_array_equal(mid.detach().numpy()[:, 1], [50.0, 90.0])
    np.testing.assert_array_equal(h.detach().numpy()[1:, 1], [50.0, 90.0])
