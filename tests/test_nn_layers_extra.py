"""Adaptive pooling, Dropout1d/2d, GroupNorm/InstanceNorm, Conv1d and F.normalize: PyTorch as the oracle for values
and gradients (input and parameters) in float64, reprs, state_dicts, signatures and error messages; gradcheck and a
Hypothesis property; the channel masks of Dropout1d/2d. (tl.compile, vmap and ONNX: test_nn_layers_extra_compile.py)"""
import inspect

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st, HealthCheck

import tinygrad_lite as tl
from tinygrad_lite import nn
from tinygrad_lite.nn import functional as F

oracle = pytest.mark.oracle


def _leaf(x):
    return tl.tensor(np.asarray(x, dtype=np.float64), requires_grad=True)


def _match(torch, ours, theirs, x, rtol=1e-12, atol=1e-13, outputs=0):
    """ours(tl leaf) vs theirs(torch leaf) on x: values and the gradient of a random projection; for Modules, the
    torch module's state is loaded into ours first and the parameter gradients are compared too."""
    if isinstance(ours, nn.Module):
        ours.double().load_state_dict({k: v.detach().numpy() for k, v in theirs.double().state_dict().items()})
    a, t = _leaf(x), torch.tensor(np.asarray(x, dtype=np.float64), requires_grad=True)
    out_a, out_t = ours(a), theirs(t)
    if isinstance(out_t, tuple):
        for i in range(1, len(out_t)):
            np.testing.assert_array_equal(out_a[i].numpy(), out_t[i].numpy(), err_msg=f"output {i}")
        out_a, out_t = out_a[outputs], out_t[outputs]
    assert tuple(out_a.shape) == tuple(out_t.shape) and out_a.dtype == np.float64
    np.testing.assert_allclose(out_a.numpy(), out_t.detach().numpy(), rtol=rtol, atol=atol, err_msg="values")
    g = np.random.default_rng(1).standard_normal(tuple(out_t.shape))
    (out_a * tl.tensor(g)).sum().backward()
    (out_t * torch.tensor(g)).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), t.grad.numpy(), rtol=rtol, atol=atol, err_msg="input grad")
    if isinstance(ours, nn.Module):
        theirs_p = dict(theirs.named_parameters())
        for name, p in ours.named_parameters():
            np.testing.assert_allclose(p.grad.numpy(), theirs_p[name].grad.numpy(), rtol=rtol, atol=atol,
                                       err_msg=f"{name} grad")
    return out_a


def _x(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# ---------------- adaptive pooling ----------------
ADAPTIVE = [((2, 3, 7, 9), (3, 4)), ((2, 3, 7, 9), (1, 1)), ((2, 3, 8, 6), (4, 3)), ((2, 3, 8, 6), 2),
            ((2, 3, 7, 9), (None, 5)), ((2, 3, 7, 9), (4, None)), ((3, 5, 5), (3, 2)), ((1, 2, 4, 5), (6, 7)),
            ((2, 1, 10, 3), (3, 3)), ((2, 3, 5, 5), (5, 5)), ((1, 1, 13, 1), (5, 1))]


@oracle
@pytest.mark.parametrize("shape,size", ADAPTIVE, ids=[f"{s}->{o}" for s, o in ADAPTIVE])
def test_adaptive_pooling_matches_pytorch(torch, shape, size):
    x = _x(shape)
    tf = torch.nn.functional
    _match(torch, lambda a: F.adaptive_avg_pool2d(a, size), lambda t: tf.adaptive_avg_pool2d(t, size), x)
    _match(torch, nn.AdaptiveAvgPool2d(size), torch.nn.AdaptiveAvgPool2d(size), x)
    _match(torch, lambda a: F.adaptive_max_pool2d(a, size), lambda t: tf.adaptive_max_pool2d(t, size), x)
    _match(torch, nn.AdaptiveMaxPool2d(size, True), torch.nn.AdaptiveMaxPool2d(size, True), x)


@oracle
@pytest.mark.parametrize("shape,size", [((2, 2, 7, 9), (3, 4)), ((2, 2, 6, 6), (3, 2)), ((1, 3, 5, 4), (1, 1)),
                                        ((2, 2, 5, 7), (4, 6))])
def test_adaptive_max_ties_take_the_first_maximum_as_pytorch(torch, shape, size):
    """Integer values after a ReLU: many ties (zeros and equal maxima); indices and gradients are PyTorch's."""
    x = np.maximum(np.random.default_rng(2).integers(-3, 3, shape), 0).astype(np.float64)
    tf = torch.nn.functional
    out = _match(torch, lambda a: F.adaptive_max_pool2d(a, size, return_indices=True),
                 lambda t: tf.adaptive_max_pool2d(t, size, return_indices=True), x, rtol=0, atol=0)
    assert out.shape[-2:] == size
    x[0, 0, 0, :] = np.nan  # NaN wins, as PyTorch's
    _match(torch, lambda a: F.adaptive_max_pool2d(a, size, return_indices=True),
           lambda t: tf.adaptive_max_pool2d(t, size, return_indices=True), x, rtol=0, atol=0)


def _reference_adaptive(x, oh, ow, reduce):
    """A loop over PyTorch's window rule, written independently of the implementation."""
    n, c, h, w = x.shape
    out = np.empty((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            r0, r1 = (i * h) // oh, -(-((i + 1) * h) // oh)
            c0, c1 = (j * w) // ow, -(-((j + 1) * w) // ow)
            out[:, :, i, j] = reduce(x[:, :, r0:r1, c0:c1], axis=(2, 3))
    return out


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 2), st.integers(1, 3), st.integers(1, 9), st.integers(1, 9), st.integers(1, 10),
       st.integers(1, 10))
def test_property_adaptive_pooling_follows_the_window_rule(n, c, h, w, oh, ow):
    x = _leaf(np.random.default_rng(h * 31 + w).standard_normal((n, c, h, w)))
    avg, mx = F.adaptive_avg_pool2d(x, (oh, ow)), F.adaptive_max_pool2d(x, (oh, ow))
    np.testing.assert_allclose(avg.numpy(), _reference_adaptive(x.numpy(), oh, ow, np.mean), rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(mx.numpy(), _reference_adaptive(x.numpy(), oh, ow, np.max))
    assert tl.gradcheck(lambda t: F.adaptive_avg_pool2d(t, (oh, ow)) * 1.5, (x,))
    assert tl.gradcheck(lambda t: F.adaptive_max_pool2d(t, (oh, ow)), (x,))


def test_adaptive_fast_paths_are_plain_pooling_and_a_mean():
    x = _leaf(_x((2, 3, 8, 6)))
    names = {e.name for e in tl.autograd.tape(F.adaptive_avg_pool2d(x, (4, 3)), F.adaptive_max_pool2d(x, (2, 3)))}
    assert "matmul" not in names
    np.testing.assert_array_equal(F.adaptive_avg_pool2d(x, 1).numpy(), x.mean((2, 3), keepdim=True).numpy())
    np.testing.assert_array_equal(F.adaptive_max_pool2d(x, (4, 2)).numpy(), F.max_pool2d(x, (2, 3)).numpy())
    assert F.adaptive_avg_pool2d(x, (0, 3)).shape == (2, 3, 0, 3)


# ---------------- GroupNorm / InstanceNorm ----------------
def _randomize(m, seed=3):
    rng = np.random.default_rng(seed)
    with tl.no_grad():
        for p in m.parameters():
            p.copy_(tl.tensor(rng.uniform(0.5, 1.5, p.shape)))
    return m


@oracle
@pytest.mark.parametrize("groups,shape", [(2, (3, 6, 5)), (3, (2, 6, 4, 3)), (1, (2, 4)), (4, (2, 4, 3, 3)),
                                          (2, (0, 4, 3))])
def test_group_norm_matches_pytorch(torch, groups, shape):
    c = shape[1]
    x = _x(shape) * 3 + 1
    tm = torch.nn.GroupNorm(groups, c).double()
    with torch.no_grad():
        tm.weight.uniform_(0.5, 1.5)
        tm.bias.uniform_(-1, 1)
    if shape[0]:
        _match(torch, nn.GroupNorm(groups, c), tm, x)
    w, b = _x(c, 5), _x(c, 6)
    tf = torch.nn.functional
    out = F.group_norm(tl.tensor(x), groups, tl.tensor(w), tl.tensor(b), 1e-3).numpy()
    ref = tf.group_norm(torch.tensor(x), groups, torch.tensor(w), torch.tensor(b), 1e-3).numpy()
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-13)
    _match(torch, nn.GroupNorm(groups, c, affine=False), torch.nn.GroupNorm(groups, c, affine=False), x)


@oracle
@pytest.mark.parametrize("kind,shape", [("InstanceNorm1d", (3, 4, 6)), ("InstanceNorm1d", (4, 6)),
                                        ("InstanceNorm2d", (2, 3, 4, 5)), ("InstanceNorm2d", (3, 4, 5))])
@pytest.mark.parametrize("affine,track", [(False, False), (True, False), (False, True), (True, True)])
def test_instance_norm_matches_pytorch_in_train_and_eval(torch, kind, shape, affine, track):
    c = shape[-3] if kind == "InstanceNorm2d" else shape[-2]
    ours, theirs = getattr(nn, kind)(c, affine=affine, track_running_stats=track), \
        getattr(torch.nn, kind)(c, affine=affine, track_running_stats=track, momentum=0.3).double()
    ours.momentum = 0.3
    if affine:
        with torch.no_grad():
            theirs.weight.uniform_(0.5, 1.5)
            theirs.bias.uniform_(-1, 1)
    for step in range(3):
        _match(torch, ours, theirs, _x(shape, step) * 2 + step)
        for name, buf in theirs.named_buffers():  # loading copies them back each step: they must agree
            np.testing.assert_allclose(dict(ours.named_buffers())[name].numpy(), buf.numpy(), rtol=1e-12,
                                       err_msg=name)
    ours.eval(), theirs.eval()
    _match(torch, ours, theirs, _x(shape, 9))
    x = _x((2, c, 5), 4)
    rm, rv = np.abs(_x(c, 7)), np.abs(_x(c, 8)) + 0.5
    tf = torch.nn.functional
    for use in (True, False):
        out = F.instance_norm(tl.tensor(x), tl.tensor(rm), tl.tensor(rv), use_input_stats=use, eps=1e-3).numpy()
        ref = tf.instance_norm(torch.tensor(x), torch.tensor(rm), torch.tensor(rv), use_input_stats=use,
                               eps=1e-3).numpy()
        np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-13)


def test_instance_norm_running_stats_are_the_batch_average_of_instance_stats():
    m = nn.InstanceNorm1d(2, track_running_stats=True, momentum=1.0).double()
    x = _x((3, 2, 5))
    m(tl.tensor(x))
    np.testing.assert_allclose(m.running_mean.numpy(), x.mean(2).mean(0), rtol=1e-12)
    np.testing.assert_allclose(m.running_var.numpy(), x.var(2, ddof=1).mean(0), rtol=1e-12)
    assert m.num_batches_tracked.item() == 0


# ---------------- Conv1d ----------------
CONV1D = [dict(), dict(stride=2, padding=1), dict(padding=2, dilation=2), dict(groups=2), dict(padding="same"),
          dict(padding="same", dilation=2, kernel_size=4), dict(padding="valid", bias=False),
          dict(padding=2, padding_mode="reflect"), dict(padding=1, padding_mode="replicate", stride=2),
          dict(padding=3, padding_mode="circular", groups=4), dict(padding="same", padding_mode="reflect",
                                                                    kernel_size=4)]


@oracle
@pytest.mark.parametrize("kw", CONV1D, ids=[str(k) for k in CONV1D])
def test_conv1d_matches_pytorch(torch, kw):
    kw = dict(kw)
    k = kw.pop("kernel_size", 3)
    x = _x((2, 4, 11))
    ours = _match(torch, nn.Conv1d(4, 8, k, **kw), torch.nn.Conv1d(4, 8, k, **kw), x)
    assert ours.ndim == 3
    _match(torch, nn.Conv1d(4, 8, k, **kw), torch.nn.Conv1d(4, 8, k, **kw), x[0])  # unbatched (C, L)
    if kw.get("padding_mode", "zeros") == "zeros":
        w, b = _x((8, 4 // kw.get("groups", 1), k), 1), _x(8, 2)
        args = {n: kw[n] for n in ("stride", "padding", "dilation", "groups") if n in kw}
        _match(torch, lambda a: F.conv1d(a, tl.tensor(w), tl.tensor(b), **args),
               lambda t: torch.nn.functional.conv1d(t, torch.tensor(w), torch.tensor(b), **args), x)


@oracle
def test_conv1d_initialisation_matches_pytorch_bounds(torch):
    m = nn.Conv1d(6, 10, 5, groups=2)
    bound = 1 / np.sqrt(3 * 5)
    assert m.weight.shape == (10, 3, 5) and m.bias.shape == (10,) and m.weight.dtype == np.float32
    assert np.abs(m.weight.numpy()).max() <= bound and np.abs(m.bias.numpy()).max() <= bound
    assert np.abs(m.weight.numpy()).max() > 0.8 * bound  # kaiming_uniform(a=sqrt(5)): U(-1/sqrt(fan_in), ...)


# ---------------- F.normalize ----------------
@oracle
@pytest.mark.parametrize("p,dim", [(2.0, 1), (1.0, 0), (3.0, -1), (float("inf"), 1), (2, (1, 2))])
def test_normalize_matches_pytorch_including_zero_and_tiny_vectors(torch, p, dim):
    x = _x((3, 4, 5))
    x[0, :, :] = 0.0  # a zero vector along every dim choice: gradient 0/finite as PyTorch's
    x[1, :, 0] = 1e-14
    _match(torch, lambda a: F.normalize(a, p, dim), lambda t: torch.nn.functional.normalize(t, p, dim), x)


# ---------------- reprs, state dicts, signatures, errors ----------------
def _modules(n):
    return [n.AdaptiveAvgPool2d((None, 3)), n.AdaptiveAvgPool2d(4), n.AdaptiveMaxPool2d((2, 3), True),
            n.Dropout1d(), n.Dropout2d(0.2), n.GroupNorm(2, 6), n.GroupNorm(3, 6, affine=False),
            n.GroupNorm(2, 4, bias=False), n.InstanceNorm1d(3), n.InstanceNorm2d(4, affine=True),
            n.InstanceNorm2d(4, 0.1, 0.2, True, True), n.Conv1d(4, 6, 3),
            n.Conv1d(4, 6, 3, 2, 1, 2, 2, False, "reflect"),
            n.Conv1d(4, 6, 3, padding="same"), n.Conv2d(4, 6, 3, padding=(1, 2), padding_mode="circular"),
            n.Sequential(n.Conv1d(2, 4, 3), n.GroupNorm(2, 4), n.Dropout1d(), n.Conv1d(4, 2, 1))]


@oracle
def test_reprs_and_state_dicts_match_pytorch(torch):
    for m, tm in zip(_modules(nn), _modules(torch.nn)):
        assert repr(m) == repr(tm)
        assert [(k, tuple(v.shape)) for k, v in m.state_dict().items()] == \
               [(k, tuple(v.shape)) for k, v in tm.state_dict().items()], repr(tm)


@oracle
def test_signatures_match_pytorch(torch):
    def params(fn):
        return [(p.name, p.default) for p in inspect.signature(fn).parameters.values()]
    for fname in ("dropout1d", "dropout2d", "group_norm", "instance_norm", "normalize"):
        assert params(getattr(F, fname)) == params(getattr(torch.nn.functional, fname)), fname
    for name in ("GroupNorm", "InstanceNorm1d", "InstanceNorm2d", "Conv1d", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d"):
        assert params(getattr(nn, name).__init__) == params(getattr(torch.nn, name).__init__), name
        assert name in nn.__all__
    assert params(F.adaptive_max_pool2d) == [("input", inspect.Parameter.empty),
                                             ("output_size", inspect.Parameter.empty), ("return_indices", False)]
    assert params(F.conv1d)[:7] == params(F.conv2d)[:7]


@oracle
def test_errors_carry_pytorchs_messages(torch):
    cases = [lambda F_, T, N: F_.adaptive_avg_pool2d(T.ones(2, 3), 2),
             lambda F_, T, N: F_.adaptive_max_pool2d(T.ones(2, 3), 2),
             lambda F_, T, N: F_.adaptive_avg_pool2d(T.ones(1, 0, 3), 2),
             lambda F_, T, N: F_.adaptive_avg_pool2d(T.ones(1, 2, 3), -1),
             lambda F_, T, N: F_.dropout1d(T.ones(2, 3, 4, 5)), lambda F_, T, N: F_.dropout2d(T.ones(2, 3), 1.5),
             lambda F_, T, N: F_.group_norm(T.ones(2, 6, 4), 4), lambda F_, T, N: F_.group_norm(T.ones(6), 2),
             lambda F_, T, N: N.GroupNorm(4, 6), lambda F_, T, N: N.InstanceNorm1d(3)(T.ones(2, 3, 4, 5)),
             lambda F_, T, N: N.InstanceNorm1d(3, affine=True)(T.ones(2, 4, 5)),
             lambda F_, T, N: F_.conv1d(T.ones(2, 3, 4, 5), T.ones(2, 3, 1)),
             lambda F_, T, N: F_.conv1d(T.ones(2, 4, 5), T.ones(2, 3, 1)),
             lambda F_, T, N: N.Conv1d(3, 2, 2, stride=2, padding="same")]
    for i, call in enumerate(cases):
        with pytest.raises(Exception) as theirs:
            call(torch.nn.functional, torch, torch.nn)
        with pytest.raises(type(theirs.value)) as ours:
            call(F, tl, nn)
        assert str(theirs.value).split(" torch.Size")[0] in str(ours.value), (i, str(ours.value))
    with pytest.raises(ValueError, match="Expected more than 1 spatial element when training"):
        nn.InstanceNorm2d(3)(tl.ones(2, 3, 1, 1))
    with pytest.raises(TypeError, match="output_size entries must be ints or None"):
        F.adaptive_avg_pool2d(tl.ones(1, 2, 3), (1.5, 2))
    with pytest.warns(UserWarning, match="Received a 3D input to dropout2d"):
        F.dropout2d(tl.ones(2, 3, 4))
    with pytest.warns(UserWarning, match="does not match num_features"):
        nn.InstanceNorm1d(3)(tl.ones(2, 4, 5))


# ---------------- gradcheck ----------------
@pytest.mark.parametrize("make,shape", [
    (lambda: nn.AdaptiveAvgPool2d((3, 2)), (2, 2, 5, 7)), (lambda: nn.AdaptiveMaxPool2d((None, 3)), (2, 2, 4, 5)),
    (lambda: nn.GroupNorm(2, 4), (2, 4, 3)), (lambda: nn.InstanceNorm1d(3, affine=True), (2, 3, 4)),
    (lambda: nn.InstanceNorm2d(2, affine=True, track_running_stats=True), (2, 2, 3, 3)),
    (lambda: nn.Conv1d(4, 6, 3, stride=2, padding=1, groups=2), (2, 4, 7)),
    (lambda: nn.Conv1d(2, 3, 2, padding="same", padding_mode="reflect", dilation=2), (2, 2, 6)),
    (lambda: nn.Dropout2d().eval(), (2, 3, 2, 2))])
def test_gradcheck_modules(make, shape):
    m = _randomize(make().double())
    assert tl.gradcheck(m, (_leaf(_x(shape)),))


def test_gradcheck_functions():
    x = _leaf(_x((2, 4, 5)))
    w, b = _leaf(_x((4, 2, 2), 1)), _leaf(_x(4, 2))
    assert tl.gradcheck(lambda a, w_, b_: F.conv1d(a, w_, b_, padding=1, groups=2), (x[:, :, :], w, b))
    assert tl.gradcheck(lambda a, w_, b_: F.group_norm(a, 1, None, None) * w_.sum() + b_.sum(), (x, w, b))
    assert tl.gradcheck(lambda a: F.instance_norm(a), (x,))
    assert tl.gradcheck(lambda a: F.normalize(a, 3.0, 2), (x,))
    assert tl.gradgradcheck(lambda a: F.normalize(a) * F.group_norm(a, 2), (x,))


# ---------------- Dropout1d / Dropout2d ----------------
@pytest.mark.parametrize("make,shape", [(lambda p: nn.Dropout2d(p), (6, 8, 3, 4)),
                                        (lambda p: nn.Dropout1d(p), (6, 8, 5)), (lambda p: nn.Dropout1d(p), (40, 5))])
def test_dropout_channels_are_zeroed_whole_and_scaled(make, shape):
    tl.manual_seed(0)
    m = make(0.3)
    x = tl.tensor(np.random.default_rng(0).uniform(1, 2, shape))
    out = m(x).numpy()
    ratio = (out / x.numpy()).reshape(shape[:-1 if len(shape) == 2 else 2] + (-1,))
    assert np.allclose(ratio, ratio[..., :1])  # one value per channel
    assert set(np.round(np.unique(ratio), 12)) == {0.0, round(1 / 0.7, 12)}
    assert 0.1 < (ratio[..., 0] == 0).mean() < 0.5
    m.eval()
    assert m(x) is x
    assert F.dropout2d(x if x.ndim == 4 else x.unsqueeze(-1), 0.0).numpy().tolist() == \
        (x if x.ndim == 4 else x.unsqueeze(-1)).numpy().tolist()
    assert (F.dropout1d(tl.ones(2, 3, 4), 1.0).numpy() == 0).all()


def test_dropout2d_same_seed_same_mask_and_gradient_through_the_mask():
    x = _leaf(np.ones((4, 6, 2, 2)))
    tl.manual_seed(5)
    a = F.dropout2d(x)
    tl.manual_seed(5)
    b = nn.Dropout2d()(x)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    a.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), a.numpy())
    c = F.dropout2d(x)  # the stream moves on
    assert not np.array_equal(a.numpy(), c.numpy())
