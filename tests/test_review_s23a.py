"""Review s23a of 3cfa8df (in-place changes through a view inside the graph reach the viewed tensor): the view's
own history after the write, 0-d and empty views, int views, strided roots, against PyTorch and compiled/vmapped
against eager."""
import tracemalloc

import numpy as np
import pytest

import tinygrad_lite as tl

from test_inplace_views import _leaves


def _row_changed(L, row):
    """x, w, h = x * 1 and its row v, after v.mul_(w)."""
    x, w = _leaves(L)
    h = x * 1
    v = h[row]
    v.mul_(w)
    return x, w, h, v


# --- the changed view's history: PyTorch gives it root[index] (a view of CopySlices), so its later uses reach
# the root (its retained grad, hooks) and the view's own retained grad counts only its later uses

def _retained_view_grad(L):
    x, w, h, v = _row_changed(L, 0)
    v.retain_grad()
    out = h * 2 + v.sum()
    out.sum().backward()
    return v.grad.numpy().copy(), x.grad.numpy().copy(), w.grad.numpy().copy()


def _retained_root_grad(L):
    x, w, h, v = _row_changed(L, 0)
    h.retain_grad()
    ((h * 2).sum() + (v * v).sum()).backward()
    return h.grad.numpy().copy(), x.grad.numpy().copy(), w.grad.numpy().copy()


def _hook_on_view(L):
    x, w, h, v = _row_changed(L, 1)
    seen = []
    v.register_hook(lambda g: seen.append(g.numpy().copy()))
    ((h * 3).sum() + (v * v).sum()).backward()
    return seen + [x.grad.numpy().copy(), w.grad.numpy().copy()]


def _retained_before_unused_after(L):
    x, w = _leaves(L)
    h = x * 1
    v = h[0]
    v.retain_grad()  # retain_grad follows v to its new values, which the loss does not use
    v.mul_(w)
    (h * 2).sum().backward()
    return [v.grad is None, x.grad.numpy().copy()]


@pytest.mark.oracle
@pytest.mark.parametrize("case", [_retained_view_grad, _retained_root_grad, _hook_on_view,
                                  _retained_before_unused_after], ids=lambda c: c.__name__)
def test_the_changed_view_takes_the_history_of_the_root_as_pytorch(torch, case):
    ours, theirs = case(tl), case(torch)
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


# --- a 0-d view (h[1, 2]) changed in place: its position is a NumPy scalar

def _zero_d_step(x, w):
    h = x * w
    e = h[1, 2]
    e.mul_(w[0])
    return ((h * e) ** 2).sum()


def test_a_zero_d_view_changed_in_place_compiles_bit_identical_to_eager():
    w = tl.tensor(np.linspace(-1, 1, 4), requires_grad=True)

    def step(x):
        w.grad = None
        loss = _zero_d_step(x, w)
        loss.backward()
        return loss.item(), w.grad
    f = tl.compile(step)
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((3, 4)) for _ in range(6)]
    got = [f(tl.tensor(x)) for x in xs]
    want = [step(tl.tensor(x)) for x in xs]
    for (a, ga), (b, gb) in zip(got, want):
        assert a == b and np.array_equal(ga.numpy(), gb.numpy())
    # (two traces: w.grad is None on the first call only)
    assert f.stats["replays"] == 6 - f.stats["traces"] >= 4 and f.stats["eager_calls"] == 0, f.stats


def test_vmap_of_grad_through_a_zero_d_view_matches_each_sample():
    w = tl.tensor(np.linspace(-1, 1, 4))
    xs = np.random.default_rng(1).standard_normal((3, 3, 4))
    g = tl.func.grad(lambda x: _zero_d_step(x, w))
    got = tl.func.vmap(g)(tl.tensor(xs)).numpy()
    want = np.stack([g(tl.tensor(x)).numpy() for x in xs])
    np.testing.assert_allclose(got, want, rtol=1e-12)


# --- an empty view: PyTorch records the (empty) write, so the value gets a zero gradient, not None (an optimizer
# skips a parameter whose grad is None: no momentum or weight decay step)

@pytest.mark.oracle
@pytest.mark.parametrize("index", [slice(0, 0), (slice(None), slice(2, 2))], ids=["rows", "columns"])
def test_an_empty_view_changed_in_place_gives_a_zero_gradient(torch, index):
    def run(L):
        x, w = _leaves(L)
        h = x * 1
        h[index].mul_(w.sum())
        z = L.zeros(3, 4, dtype=L.float64)
        z[index].add_(w.sum())
        ((h * 2).sum() + z.sum()).backward()
        return x.grad.numpy().copy(), None if w.grad is None else w.grad.numpy().copy(), z.requires_grad
    (gx, gw, zr), (tx, tw, tz) = run(tl), run(torch)
    np.testing.assert_array_equal(gx, tx)
    assert gw is not None and tw is not None
    np.testing.assert_array_equal(gw, tw)
    assert zr == tz


# --- an int tensor (or a view of one) takes a float value that requires grad: copy_ casts, no graph

@pytest.mark.oracle
@pytest.mark.parametrize("through_view", [False, True])
def test_copy_of_a_value_requiring_grad_into_an_int_tensor(torch, through_view):
    def run(L):
        w = L.tensor([1.5, -2.0, 0.5, 3.0], dtype=L.float64, requires_grad=True)
        k = L.zeros(3, 4, dtype=L.int64)
        (k[1] if through_view else k).copy_(w * 10)
        b = L.zeros(2, 4, dtype=L.bool)
        (b[0] if through_view else b).copy_(w)
        return k.numpy().copy(), k.requires_grad, b.numpy().copy(), b.requires_grad
    ours, theirs = run(tl), run(torch)
    np.testing.assert_array_equal(ours[0], theirs[0])
    np.testing.assert_array_equal(ours[2], theirs[2])
    assert (ours[1], ours[3]) == (theirs[1], theirs[3]) == (False, False)


# --- a root whose memory is strided (a column of a big array): finding a view's place must cost the root's size,
# not the span of memory it strides over

def test_the_place_of_a_view_of_a_strided_root_costs_the_roots_size():
    big = np.zeros((4000, 1000))  # 32 MB; the root is its first column, 4000 elements (32 kB) over all of it
    big[:, 0] = np.arange(4000.0)
    z = tl.from_numpy(big[:, 0])
    w = tl.tensor(np.arange(1.0, 6.0), requires_grad=True)
    tracemalloc.start()
    try:
        z[5:10].mul_(w)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    want = np.arange(4000.0)
    want[5:10] *= np.arange(1.0, 6.0)
    np.testing.assert_array_equal(z.detach().numpy(), want)
    z.sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), np.arange(5.0, 10.0))
    assert peak < 4_000_000, f"peak {peak} bytes for a 5-element change of a 4000-element tensor"


# --- a view made under no_grad, changed in place with grad mode on: PyTorch refuses (ambiguous); it wrote the
# change through to the viewed tensor with a history, silently

def _view_made_under_no_grad(L, root_under_no_grad, of_view):
    x, w = _leaves(L)
    if root_under_no_grad:
        with L.no_grad():
            h = x * 1
    else:
        h = x * 1
    with L.no_grad():
        v = h[1:]
    if of_view:
        v = v[0]  # a view of it, made with grad on: still refused
    v.mul_(w)
    return h


@pytest.mark.oracle
@pytest.mark.parametrize("root_under_no_grad", [False, True])
@pytest.mark.parametrize("of_view", [False, True])
def test_a_view_made_under_no_grad_refuses_an_inplace_change_with_grad_on(torch, root_under_no_grad, of_view):
    with pytest.raises(RuntimeError, match="no_grad mode"):
        _view_made_under_no_grad(torch, root_under_no_grad, of_view)
    with pytest.raises(RuntimeError, match="no_grad mode"):
        _view_made_under_no_grad(tl, root_under_no_grad, of_view)


@pytest.mark.oracle
def test_a_view_made_under_no_grad_is_changed_without_a_graph_as_pytorch(torch):
    def run(L):
        x, w = _leaves(L)
        with L.no_grad():
            h = x * 1
            v = h[1:]
        v.mul_(2.0)  # nothing requiring grad is involved: no graph, written into the shared memory
        with L.no_grad():
            u = h[0]
            u.mul_(w)
        (h * x).sum().backward()
        return h.detach().numpy().copy(), x.grad.numpy().copy()
    ours, theirs = run(tl), run(torch)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-12)


# --- vmap without a graph: a per-sample value written through a view of a tensor made inside the function

@pytest.mark.xfail(strict=True, reason="vmap copies the written buffer per sample before the write (the view's own "
                   "memory), so the per-sample values never reach the unbatched tensor it views; PyTorch's vmap "
                   "raises for this write ('inplace arithmetic ... other being vmapped over'); the graph path "
                   "(vmap(grad)) writes it through")
def test_vmap_of_a_per_sample_write_through_a_view_reaches_the_viewed_tensor_or_raises():
    def f(x):
        z = tl.zeros(3, 4, dtype=tl.float64)
        z[1].copy_(x[0] * 2)
        return z
    xs = np.arange(24.0).reshape(2, 3, 4)
    try:
        got = tl.func.vmap(f)(tl.tensor(xs)).numpy()
    except (RuntimeError, NotImplementedError, ValueError):
        return  # refusing, as PyTorch does, is right too
    want = np.stack([f(tl.tensor(x)).numpy() for x in xs])
    np.testing.assert_array_equal(got, want)
