"""Review (part 2): tl.compile replays of the kernels with work arrays (dropout, cumsum/cumprod, erf, gather,
fold), container guards and autograd.functional under tl.compile, bit for bit against eager."""
import functools
import math
import warnings

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite.ops.erf_poly import _erf_np

F = tl.nn.functional
nn = tl.nn


def _same(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _xs(n=6, shape=(6, 5), dtype=np.float32):
    return [np.random.default_rng(i).standard_normal(shape).astype(dtype) for i in range(n)]


# ---------------- dropout ----------------
@pytest.mark.parametrize("dt", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_compiled_dropout_draws_the_eager_mask_and_leaves_the_generator_where_eager_does(dt, p):
    f = tl.compile(lambda x, p: F.dropout(x, p))
    for k, x in enumerate(_xs(4, (5, 7), dt)):
        tl.manual_seed(k)
        a = f(tl.tensor(x), p).numpy()
        ra = tl.rand(3).numpy()
        tl.manual_seed(k)
        b = F.dropout(tl.tensor(x), p).numpy()
        rb = tl.rand(3).numpy()
        assert _same(a, b) and _same(ra, rb)
    assert f.stats["replays"] >= 2


def test_compiled_dropout_of_a_0d_tensor_and_feature_dropout_match_eager():
    f = tl.compile(lambda x: F.dropout(x[0, 0, 0, 0], 0.3) + F.dropout2d(x, 0.4) + F.dropout1d(x[0], 0.2).sum())
    for k, x in enumerate(_xs(4, (3, 4, 5, 5), np.float16)):
        tl.manual_seed(k)
        a = f(tl.tensor(x)).numpy()
        tl.manual_seed(k)
        t = tl.tensor(x)
        b = (F.dropout(t[0, 0, 0, 0], 0.3) + F.dropout2d(t, 0.4) + F.dropout1d(t[0], 0.2).sum()).numpy()
        assert _same(a, b)
    assert f.stats["replays"] >= 2


def test_compiled_dropout_module_follows_p_and_train_eval_changes():
    m = nn.Sequential(nn.Linear(5, 6), nn.Dropout(0.3))
    ref = nn.Sequential(nn.Linear(5, 6), nn.Dropout(0.3))
    ref.load_state_dict(m.state_dict())
    f = tl.compile(m)
    for k, x in enumerate(_xs(10)):
        if k == 3:
            m[1].p = ref[1].p = 0.7
        if k == 5:
            m.eval()
            ref.eval()
        if k == 7:
            m.train()
            ref.train()
        tl.manual_seed(k)
        a = f(tl.tensor(x)).numpy()
        tl.manual_seed(k)
        assert _same(a, ref(tl.tensor(x)).numpy()), k
    assert f.stats["traces"] == 3


# ---------------- cumsum / cumprod ----------------
@pytest.mark.parametrize("dt", [np.float16, np.float32, np.float64, np.int32])
def test_compiled_cumsum_and_cumprod_match_eager_for_each_dim_and_torch(torch, dt):
    for dim in (0, 1, -1):
        f = tl.compile(lambda x: (x.cumsum(dim), x.cumprod(dim), x.t().cumsum(0) * 1))
        for x in _xs(4, (6, 9), np.float64):
            x = (x * 2).astype(dt)
            t = tl.tensor(x)
            want = (t.cumsum(dim), t.cumprod(dim), t.t().cumsum(0) * 1)
            assert all(_same(a.numpy(), b.numpy()) for a, b in zip(f(tl.tensor(x)), want))
            tol = 1e-2 if dt == np.float16 else 1e-6
            np.testing.assert_allclose(want[0].numpy().astype(float),
                                       torch.tensor(x).cumsum(dim).numpy().astype(float), rtol=tol, atol=tol)
        assert f.stats["replays"] >= 2


# ---------------- erf ----------------
@pytest.mark.parametrize("dt", [np.float16, np.float32, np.float64])
def test_erf_into_non_contiguous_or_aliased_out_equals_erf_of_a_copy(dt):
    for shape in [(), (0,), (5,), (300, 7), (200, 400)]:
        x = (np.random.default_rng(0).standard_normal(shape) * 3).astype(dt)
        if x.size > 3:
            x.flat[:4] = [np.nan, np.inf, -np.inf, -0.0]
        want = _erf_np(x.copy())
        ref = np.array([math.erf(v) if not math.isnan(v) else np.nan for v in x.astype(np.float64).ravel()])
        np.testing.assert_allclose(want.astype(float).ravel(), ref.astype(dt).astype(float), rtol=3e-16)
        assert _same(tl.tensor(x).erf().numpy(), want)
        if len(shape) == 2:
            assert _same(_erf_np(x.T, np.empty(x.T.shape, dt)), want.T)
            out = np.empty((shape[0], shape[1] * 2), dt)[:, ::2]
            _erf_np(x, out)
            assert _same(np.ascontiguousarray(out), want)
            y = x.copy()
            assert _erf_np(y, y) is y and _same(y, want)
            yt = x.T.copy().T
            _erf_np(yt, yt)
            assert _same(np.ascontiguousarray(yt), want)
    assert np.signbit(tl.tensor(np.array([-0.0] * 40, dt)).erf().numpy()).all()


def test_compiled_gelu_and_erf_match_eager():
    f = tl.compile(lambda x: (F.gelu(x), x.erf() * 2, F.gelu(x.t())))
    for x in _xs(4, (300, 20)):
        t = tl.tensor(x)
        assert all(_same(a.numpy(), b.numpy()) for a, b in zip(f(t), (F.gelu(t), t.erf() * 2, F.gelu(t.t()))))
    assert f.stats["replays"] >= 2


# ---------------- gather / scatter_add / fold ----------------
@pytest.mark.parametrize("dt", [np.int16, np.int32, np.uint8, np.int64])
def test_gather_with_small_integer_indices_and_non_contiguous_input_matches_torch(torch, dt):
    x = np.random.default_rng(0).standard_normal((4, 6)).astype(np.float32)
    i = np.random.default_rng(1).integers(0, 6, (4, 3)).astype(dt)
    ti = torch.tensor(i.astype(np.int64))
    assert np.array_equal(tl.tensor(x).gather(1, tl.tensor(i)).numpy(), torch.tensor(x).gather(1, ti).numpy())
    assert np.array_equal(tl.tensor(x).t().gather(0, tl.tensor(i.T.copy())).numpy(),
                          torch.tensor(x).t().gather(0, ti.T).numpy())
    xx, tx = tl.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    xx.gather(1, tl.tensor(i)).sum().backward()
    tx.gather(1, ti).sum().backward()
    assert np.array_equal(xx.grad.numpy(), tx.grad.numpy())
    with pytest.raises((IndexError, RuntimeError)):
        tl.tensor(x).gather(1, tl.tensor(np.full((4, 1), -1, dt if dt != np.uint8 else np.int64)))
    assert tl.tensor(x).gather(1, tl.tensor(np.zeros((4, 0), dt))).shape == (4, 0)


def test_compiled_gather_scatter_add_and_conv_backward_match_eager():
    conv = [nn.Conv2d(3, 4, 3, padding=1, stride=2) for _ in range(2)]
    conv[1].load_state_dict(conv[0].state_dict())

    def make(c):
        def step(x, i):
            c.zero_grad()
            xx = x.detach().requires_grad_(True)
            (c(xx).pow(2).sum() + (x.reshape(6, 81).gather(1, i) ** 2).sum()).backward()
            return xx.grad * 1, c.weight.grad * 1, x.reshape(6, 81).scatter_add(1, i, x.reshape(6, 81)[:, :5])
        return step
    f, e = tl.compile(make(conv[0])), make(conv[1])
    for k, x in enumerate(_xs(4, (2, 3, 9, 9))):
        i = tl.tensor(np.random.default_rng(k).integers(0, 81, (6, 5)))
        assert all(_same(a.numpy(), b.numpy()) for a, b in zip(f(tl.tensor(x), i), e(tl.tensor(x), i)))
    assert f.stats["replays"] >= 2


# ---------------- container guards ----------------
def test_w2_like_mlp_in_sequential_still_replays_with_one_trace():
    tl.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 16), nn.GELU(), nn.Linear(16, 3))
    opt = tl.optim.SGD(model.parameters(), lr=0.1)

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss.item()
    f = tl.compile(step)
    for x in _xs(8):
        f(tl.tensor(x), tl.tensor(np.arange(6) % 3))
    assert f.stats["traces"] == 1 and f.stats["replays"] == 7


def test_reassigning_the_same_child_or_activation_does_not_record_again():
    model = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 2))
    f = tl.compile(model)
    act = model[1]
    for x in _xs():
        model[1] = act
        f(tl.tensor(x))
    assert f.stats["traces"] == 1
    tl.manual_seed(0)
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0).eval()
    g = tl.compile(layer)
    xs = _xs(6, (3, 4, 8))
    act = layer.activation
    for x in xs:
        layer.activation = act
        g(tl.tensor(x))
    assert g.stats["traces"] == 1
    layer.activation = functools.partial(F.gelu, approximate="tanh")
    assert _same(g(tl.tensor(xs[0])).numpy(), layer(tl.tensor(xs[0])).numpy())
    assert g.stats["traces"] == 2


def test_replaced_appended_and_removed_children_are_never_replayed_stale():
    model = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 2))
    f = tl.compile(model)
    xs = _xs(8)
    for x in xs[:3]:
        f(tl.tensor(x))
    for k, change in enumerate([lambda: model.__setitem__(1, nn.Tanh()), lambda: model.append(nn.Sigmoid()),
                                lambda: model.__delitem__(-1)]):
        change()
        assert _same(f(tl.tensor(xs[3 + k])).numpy(), model(tl.tensor(xs[3 + k])).numpy()), k
    assert f.stats["traces"] == 3


def test_slices_nested_module_lists_and_module_dicts_are_guarded():
    seq = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 2), nn.Tanh())
    n = [2]
    f = tl.compile(lambda x: seq[:n[0]](x))
    for k, x in enumerate(_xs(8)):
        if k == 4:
            n[0] = 3
        assert _same(f(tl.tensor(x)).numpy(), seq[:n[0]](tl.tensor(x)).numpy()), k
    assert f.stats["traces"] == 2

    class Blocks(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleList([nn.ModuleList([nn.Linear(5, 5), nn.ReLU()]), nn.ModuleList([nn.Linear(5, 5)])])

        def forward(self, x):
            for b in self.blocks:
                for m in b:
                    x = m(x)
            return x
    m = Blocks()
    g = tl.compile(m)
    xs = _xs(8)
    for x in xs[:3]:
        g(tl.tensor(x))
    m.blocks[1].append(nn.Tanh())
    assert _same(g(tl.tensor(xs[3])).numpy(), m(tl.tensor(xs[3])).numpy())
    m.blocks[0][1] = nn.Sigmoid()
    assert _same(g(tl.tensor(xs[4])).numpy(), m(tl.tensor(xs[4])).numpy())
    for x in xs[5:]:
        g(tl.tensor(x))
    assert g.stats["traces"] == 3
    d = nn.ModuleDict({"a": nn.Linear(5, 5), "b": nn.ReLU()})
    h = tl.compile(lambda x: [mod(x) for mod in d.values()][-1])
    for x in xs[:3]:
        h(tl.tensor(x))
    d["b"] = nn.Tanh()
    assert _same(h(tl.tensor(xs[3])).numpy(), d["b"](tl.tensor(xs[3])).numpy())
    d["c"] = nn.Sigmoid()
    assert _same(h(tl.tensor(xs[4])).numpy(), d["c"](tl.tensor(xs[4])).numpy())


# ---------------- autograd.functional under tl.compile ----------------
_AF = tl.autograd.functional


def _cube_sum(x):
    return (x ** 3).sum()


def _sin_times(x):
    return x.sin() * x


@pytest.mark.parametrize("name,call", [
    ("jacobian", lambda x: _AF.jacobian(_sin_times, x)),
    ("hessian", lambda x: _AF.hessian(_cube_sum, x)),
    ("vjp", lambda x: _AF.vjp(_cube_sum, x)[1]),
    ("jvp", lambda x: _AF.jvp(_sin_times, x, x)[1]),
    ("hvp", lambda x: _AF.hvp(_cube_sum, x, x)[1]),
    ("vhp", lambda x: _AF.vhp(_cube_sum, x, x)[1]),
    ("independent", lambda x: _AF.jacobian(lambda a, b: a * 2, (x, x * 1))[1]),
])
def test_autograd_functional_replays_under_compile_bit_for_bit(name, call):
    f = tl.compile(call)
    for x in _xs(4, (4,)):
        assert _same(call(tl.tensor(x)).numpy(), f(tl.tensor(x)).numpy()), name
    assert f.stats["replays"] >= 2, f.stats


def test_onnx_export_of_embedding_max_pool_gelu_cumsum_runs_in_onnxruntime():
    ort = pytest.importorskip("onnxruntime")
    import io
    tl.manual_seed(0)

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.e = nn.Embedding(10, 64)

        def forward(self, i, x):
            h = self.e(i).reshape(-1, 1, 8, 8) + x
            o, idx = F.max_pool2d(h, 3, 1, 1, return_indices=True)
            return F.gelu(o).cumsum(-1), idx, F.adaptive_max_pool2d(h, (3, 3))
    m = M()
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tl.onnx.export(m, (tl.tensor(np.array([1, 3, 3, 9])), tl.tensor(_xs(1, (4, 1, 8, 8))[0])), buf)
    sess = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    i2, x2 = np.array([2, 2, 0, 5]), _xs(2, (4, 1, 8, 8))[1]
    got = sess.run(None, {sess.get_inputs()[0].name: i2, sess.get_inputs()[1].name: x2})
    for a, b in zip(m(tl.tensor(i2), tl.tensor(x2)), got):
        np.testing.assert_allclose(a.numpy(), b, rtol=1e-5, atol=1e-5)
