"""Review s15, more of what tutorial code needed: autograd.functional.jvp/vhp/hvp (against PyTorch's, float64,
tuple conventions, create_graph, strict errors), tl.atleast_1d/2d/3d and data.WeightedRandomSampler. (nn.init's
additions are in test_review_s15_init.py.)"""
import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite.autograd import functional as AF

RNG = np.random.default_rng(15)
X = RNG.standard_normal((3, 4))
Y = RNG.standard_normal((4, 2))
VX, VY = RNG.standard_normal((3, 4)), RNG.standard_normal((4, 2))


def _np(t):
    return t.detach().numpy()


def _same(ours, theirs, rtol=1e-12):
    """Same nesting (Tensor vs tuple) and values."""
    if isinstance(theirs, tuple):
        assert isinstance(ours, tuple) and len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            _same(a, b, rtol)
    else:
        assert isinstance(ours, tl.Tensor), type(ours)
        assert tuple(ours.shape) == tuple(theirs.shape)
        np.testing.assert_allclose(_np(ours), _np(theirs), rtol=rtol, atol=1e-12)


def _args(lib, kind):
    t = lambda a: lib.tensor(a.copy())  # noqa: E731
    return {"x": (t(X), t(VX)), "(x,)": ((t(X),), (t(VX),)), "(x,y)": ((t(X), t(Y)), (t(VX), t(VY)))}[kind]


# functions written once for both libraries (Tensor methods only)
def f_single(x):
    return (x.exp() * x.sin()).sum(1)


def f_two_outputs(x, y):
    return (x @ y).tanh(), (x * x).sum(0)


def f_one_tuple_output(x):
    return (x.cos() * 3,)


def g_scalar(x):
    return (x ** 3).sum() + (x[0] * x[1]).sum() * x[2].sin().sum()


def g_scalar_two(x, y):
    return ((x @ y).sin() ** 2).sum() + (y ** 4).sum()


@pytest.mark.oracle
@pytest.mark.parametrize("fn, kind", [(f_single, "x"), (f_single, "(x,)"), (f_one_tuple_output, "x"),
                                      (f_two_outputs, "(x,y)")])
@pytest.mark.parametrize("create_graph", [False, True])
def test_jvp_matches_torch(torch, fn, kind, create_graph):
    (ours_in, ours_v), (th_in, th_v) = _args(tl, kind), _args(torch, kind)
    ours, theirs = AF.jvp(fn, ours_in, ours_v, create_graph), torch.autograd.functional.jvp(fn, th_in, th_v,
                                                                                            create_graph)
    _same(ours, theirs)
    results = ours[1] if isinstance(ours[1], tuple) else (ours[1],)
    assert all(r.requires_grad is False for r in results) or create_graph


@pytest.mark.oracle
@pytest.mark.parametrize("name", ["vhp", "hvp"])
@pytest.mark.parametrize("fn, kind", [(g_scalar, "x"), (g_scalar, "(x,)"), (g_scalar_two, "(x,y)")])
@pytest.mark.parametrize("create_graph", [False, True])
def test_vhp_and_hvp_match_torch(torch, name, fn, kind, create_graph):
    (ours_in, ours_v), (th_in, th_v) = _args(tl, kind), _args(torch, kind)
    ours = getattr(AF, name)(fn, ours_in, ours_v, create_graph=create_graph)
    theirs = getattr(torch.autograd.functional, name)(fn, th_in, th_v, create_graph=create_graph)
    _same(ours, theirs)
    assert ours[0].requires_grad is create_graph


@pytest.mark.oracle
@pytest.mark.parametrize("name", ["jvp", "vhp", "hvp"])
def test_create_graph_results_are_differentiable_as_torch(torch, name):
    fn = f_single if name == "jvp" else g_scalar

    def run(lib):
        x = lib.tensor(X.copy(), requires_grad=True)
        v = lib.tensor(VX.copy(), requires_grad=True)
        out, res = getattr(lib.autograd.functional, name)(fn, x, v, create_graph=True)
        assert res.requires_grad
        ((res ** 2).sum() + out.sum()).backward()
        return x.grad, v.grad

    for a, b in zip(run(tl), run(torch)):
        np.testing.assert_allclose(_np(a), _np(b), rtol=1e-11, atol=1e-12)


@pytest.mark.oracle
def test_v_none_for_a_single_element_input_as_torch(torch):
    for name, fn in (("jvp", lambda x: x.exp() * 2), ("vhp", lambda x: (x ** 4).sum()), ("hvp", lambda x: x.sin())):
        ours = getattr(AF, name)(fn, tl.tensor(np.array([0.7])))
        theirs = getattr(torch.autograd.functional, name)(fn, torch.tensor(np.array([0.7])))
        _same(ours, theirs)


@pytest.mark.oracle
def test_non_strict_independent_inputs_give_zeros_as_torch(torch):
    def make(lib):
        return [("jvp", lambda x, y: (x * 2, lib.ones(3, dtype=lib.float64))),
                ("vhp", lambda x, y: (x ** 2).sum() + 0 * y.sum()),
                ("hvp", lambda x, y: (x * 3).sum()),
                ("vhp", lambda x, y: (x ** 3).sum())]

    for (name, f), (_, tf) in zip(make(tl), make(torch)):
        args = lambda lib: ((lib.tensor(np.arange(3.0)), lib.tensor(np.ones(3))),  # noqa: E731
                            (lib.tensor(np.ones(3)), lib.tensor(np.full(3, 2.0))))
        _same(getattr(AF, name)(f, *args(tl)), getattr(torch.autograd.functional, name)(tf, *args(torch)))


@pytest.mark.oracle
@pytest.mark.parametrize("name, make, kw, match", [
    ("jvp", lambda lib: lambda x, y: x * 2, {}, "independent of input 1"),
    ("jvp", lambda lib: lambda x, y: lib.ones(3, dtype=lib.float64), {},
     "Output 0 of the user-provided function does not require gradients"),
    ("jvp", lambda lib: lambda x, y: x * y, {"create_graph": True}, None),
    ("vhp", lambda lib: lambda x, y: (x * 2).sum() + (y ** 2).sum(), {},
     "jacobian of the user-provided function with respect to input 0 is independent of the input"),
    ("vhp", lambda lib: lambda x, y: (x ** 3).sum() + (y ** 2).sum(), {"create_graph": True}, None),
    ("hvp", lambda lib: lambda x, y: (x * y).sum(), {}, None),
    ("hvp", lambda lib: lambda x, y: (x ** 2).sum(), {}, "independent of input 1"),
    ("vhp", lambda lib: lambda x, y: lib.ones((), dtype=lib.float64), {},
     "Output 0 of the user-provided function does not require gradients"),
], ids=lambda p: p if isinstance(p, str) else "")
def test_strict_mode_as_torch(torch, name, make, kw, match):
    def call(lib, fns):
        inputs = (lib.tensor(np.arange(1.0, 4.0)), lib.tensor(np.full(3, 0.5)))
        v = (lib.tensor(np.ones(3)), lib.tensor(np.full(3, 2.0)))
        return getattr(fns, name)(make(lib), inputs, v, strict=True, **kw)

    if match is None:  # strict, and nothing independent: the values as torch's
        _same(call(tl, AF), call(torch, torch.autograd.functional))
        return
    for lib, fns in ((tl, AF), (torch, torch.autograd.functional)):
        with pytest.raises(RuntimeError, match=match):
            call(lib, fns)


@pytest.mark.oracle
def test_argument_errors_as_torch(torch):
    for lib, fns in ((tl, AF), (torch, torch.autograd.functional)):
        x = lib.tensor(np.ones((2, 3)))
        with pytest.raises(RuntimeError, match="v can only be None if the input to the user-provided function is a "
                                               "single Tensor with a single element"):
            fns.hvp(lambda a: (a ** 2).sum(), x)
        with pytest.raises(RuntimeError, match="v has invalid size: should be .*2, 3.* but got .*3, 2"):
            fns.jvp(lambda a: a * 2, x, lib.tensor(np.ones((3, 2))))
        with pytest.raises(RuntimeError, match="Entry 1 in v has invalid size"):
            fns.vhp(lambda a, b: (a * b).sum(), (x, x), (x, lib.tensor(np.ones(6))))
        with pytest.raises(RuntimeError, match="v is a tuple of invalid length: should be 2 but got 1"):
            fns.hvp(lambda a, b: (a * b).sum(), (x, x), (x,))
        with pytest.raises(RuntimeError, match="should contain a single element"):
            fns.vhp(lambda a: a ** 2, x, x)
        with pytest.raises(RuntimeError, match="should return a single Tensor"):
            fns.hvp(lambda a: ((a ** 2).sum(),), x, x)
        with pytest.raises(RuntimeError, match="v has invalid size"):
            fns.vjp(lambda a: a * 2, x, lib.tensor(np.ones(3)))
        with pytest.raises(TypeError):
            fns.jvp(lambda a: a, [1.0, 2.0], x)


def test_jvp_agrees_with_forward_mode_and_vhp_with_hessian():
    x, v = tl.tensor(X.copy()), tl.tensor(VX.copy())
    _, fwd = tl.func.jvp(f_single, (x,), (v,))
    np.testing.assert_allclose(_np(AF.jvp(f_single, x, v)[1]), _np(fwd), rtol=1e-12)
    h = AF.hessian(g_scalar, x).numpy().reshape(12, 12)
    np.testing.assert_allclose(_np(AF.vhp(g_scalar, x, v)[1]).ravel(), VX.ravel() @ h, rtol=1e-12)
    np.testing.assert_allclose(_np(AF.hvp(g_scalar, x, v)[1]).ravel(), h @ VX.ravel(), rtol=1e-12)


# ---------------- atleast_1d / atleast_2d / atleast_3d ----------------
SHAPES = [(), (4,), (2, 3), (2, 3, 4), (1, 2, 1, 3)]


@pytest.mark.oracle
@pytest.mark.parametrize("n", [1, 2, 3])
def test_atleast_shapes_match_torch(torch, n):
    name = f"atleast_{n}d"
    for shape in SHAPES:
        a = np.arange(float(np.prod(shape))).reshape(shape)
        ours, theirs = getattr(tl, name)(tl.tensor(a)), getattr(torch, name)(torch.tensor(a))
        assert tuple(ours.shape) == tuple(theirs.shape), (name, shape)
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
        x = tl.tensor(a)
        assert (getattr(tl, name)(x) is x) == (len(shape) >= n)
    # the sequence forms: several tensors, or one list / tuple of them, give a tuple
    ours = getattr(tl, name)(tl.tensor(1.0), tl.ones(3), tl.ones(2, 2))
    theirs = getattr(torch, name)(torch.tensor(1.0), torch.ones(3), torch.ones(2, 2))
    assert [tuple(t.shape) for t in ours] == [tuple(t.shape) for t in theirs] and isinstance(ours, tuple)
    for seq in ([tl.tensor(1.0), tl.ones(3)], (tl.ones(3),)):
        got = getattr(tl, name)(seq)
        assert isinstance(got, tuple) and len(got) == len(seq)
    assert getattr(tl, name)() == () and getattr(tl, name)([]) == ()


@pytest.mark.oracle
def test_atleast_gradients_flow_as_torch(torch):
    w = RNG.standard_normal((1, 5, 1))

    def run(lib):
        s, v = lib.tensor(np.array(1.5), requires_grad=True), lib.tensor(np.linspace(-1, 1, 5), requires_grad=True)
        a, b = lib.atleast_3d(s, v)
        c = lib.atleast_2d([v])[0]
        ((a * b * lib.tensor(w)).sum() + (lib.atleast_1d(s) * c).sum() ** 2).backward()
        return s.grad, v.grad

    for ours, theirs in zip(run(tl), run(torch)):
        np.testing.assert_allclose(_np(ours), _np(theirs), rtol=1e-12)
    assert tl.gradcheck(lambda t: tl.atleast_3d(t) * 2, (tl.tensor(RNG.standard_normal(3), requires_grad=True),))


def test_atleast_errors_name_the_function_and_element():
    with pytest.raises(TypeError, match=r"atleast_2d\(\): expected Tensor as element 1 in argument 0, but got float"):
        tl.atleast_2d([tl.ones(1), 2.0])
    with pytest.raises(TypeError, match=r"atleast_1d\(\): expected a Tensor or a sequence of Tensors, but got float"):
        tl.atleast_1d(1.0)


# ---------------- WeightedRandomSampler ----------------
WS = tl.data.WeightedRandomSampler


def test_weighted_sampler_counts_follow_the_weights():
    tl.manual_seed(0)
    weights = [1.0, 2.0, 3.0, 4.0, 0.0]
    draws = np.array(list(WS(weights, 40000)))
    freq = np.bincount(draws, minlength=5) / len(draws)
    np.testing.assert_allclose(freq, np.array(weights) / 10, atol=0.01)
    assert freq[4] == 0 and len(WS(weights, 7)) == 7


def test_weighted_sampler_without_replacement_draws_each_index_at_most_once():
    tl.manual_seed(1)
    weights = np.array([5.0, 1.0, 1.0, 1.0, 2.0])
    firsts = []
    for _ in range(3000):
        order = list(WS(weights, 5, replacement=False))
        assert sorted(order) == [0, 1, 2, 3, 4]
        firsts.append(order[0])
        assert len(set(WS(weights, 3, replacement=False))) == 3
    np.testing.assert_allclose(np.bincount(firsts, minlength=5) / 3000, weights / 10, atol=0.03)
    with pytest.raises(RuntimeError, match="cannot sample n_sample > prob_dist.size\\(-1\\) samples without "
                                           "replacement"):
        list(WS(weights, 6, replacement=False))


def test_weighted_sampler_is_reproducible_and_takes_a_generator():
    tl.manual_seed(7)
    a = list(WS([0.1, 0.9, 0.4, 0.7, 3.0, 0.6], 50))
    tl.manual_seed(7)
    assert list(WS([0.1, 0.9, 0.4, 0.7, 3.0, 0.6], 50)) == a
    s = WS(np.array([1.0, 1.0, 1.0]), 30, generator=np.random.default_rng(3))
    first, second = list(s), list(s)
    assert first != second  # a fresh draw each epoch from the generator
    assert list(WS([1.0, 1.0, 1.0], 30, generator=np.random.default_rng(3))) == first
    with pytest.raises(TypeError, match="WeightedRandomSampler: generator must be a numpy.random.Generator"):
        list(WS([1.0], 1, generator=42))
    for weights in ([1, 2, 3], np.array([1.0, 2.0, 3.0], dtype=np.float32), tl.tensor([1.0, 2.0, 3.0])):
        w = WS(weights, 2).weights
        assert isinstance(w, tl.Tensor) and w.dtype == tl.float64 and w.tolist() == [1.0, 2.0, 3.0]


def test_weighted_sampler_with_a_dataloader_balances_classes():
    labels = np.array([0] * 90 + [1] * 10)
    data = tl.data.TensorDataset(tl.tensor(np.arange(100.0)), tl.tensor(labels))
    class_weight = 1.0 / np.bincount(labels)
    tl.manual_seed(2)
    loader = tl.data.DataLoader(data, batch_size=16, sampler=WS(class_weight[labels], 4000))
    seen = np.concatenate([y.numpy() for _, y in loader])
    assert len(seen) == 4000 and len(loader) == 250
    assert abs(seen.mean() - 0.5) < 0.04  # the rare class is drawn as often as the common one


@pytest.mark.oracle
def test_weighted_sampler_errors_as_torch(torch):
    from torch.utils.data import WeightedRandomSampler as TW
    for cls in (WS, TW):
        for bad in (0, -3, 2.0, True):
            with pytest.raises(ValueError, match=f"num_samples should be a positive integer value, but got "
                                                 f"num_samples={bad}"):
                cls([1.0, 2.0], bad)
        with pytest.raises(ValueError, match="replacement should be a boolean value, but got replacement=1"):
            cls([1.0, 2.0], 2, replacement=1)
        with pytest.raises(ValueError, match=r"weights should be a 1d sequence but given weights have shape \(1, 2\)"):
            cls([[1.0, 2.0]], 2)
        with pytest.raises(RuntimeError, match="< 0"):
            list(cls([1.0, -1.0, 1.0], 3))
        with pytest.raises(RuntimeError, match="sum of probabilities <= 0"):
            list(cls([0.0, 0.0], 3))
