"""tl.compile(model) in a PyTorch training loop: the compiled module returns tensors whose graph is alive and the
backward runs outside (`loss = crit(cm(x), y); loss.backward(); opt.step()`). Replays record the forward's kernels
and one tape entry whose VJP is the recorded backward: outputs, every .grad, optimizer updates, BatchNorm running
statistics and dropout draws stay bit-identical to eager over many calls with new batches."""
import warnings

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite import nn
import tinygrad_lite.nn.functional as F

from _compile_common import assert_same as _assert_same

CALLS = 12


def _mlp(dtype):
    return nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 4)).to(dtype)


class _CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.pool = nn.MaxPool2d(2)
        self.drop = nn.Dropout(0.3)
        self.fc = nn.Linear(4 * 3 * 3, 4)

    def forward(self, x):
        h = self.pool(F.relu(self.bn(self.conv(x))))
        return self.fc(self.drop(h.reshape(h.shape[0], -1)))


class _LSTM(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, 5, batch_first=True)

    def forward(self, x):
        return self.lstm(x)


def _batches(shape, classes, dtype, n=CALLS, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(shape).astype(dtype), rng.integers(0, classes, shape[0])) for _ in range(n)]


def _ce(out, y):
    return F.cross_entropy(out, tl.tensor(y))


def _lstm_loss(out, y):
    seq, (h_n, _) = out
    return seq.pow(2).mean() + F.cross_entropy(h_n[0, :, :4], tl.tensor(y))


def _state(model, opt):
    arrays = [t.numpy().copy() for t in model.state_dict().values()]
    arrays += [np.array("no grad") if p.grad is None else p.grad.numpy().copy() for p in model.parameters()]
    for st in opt.state.values():
        arrays += [np.asarray(v.numpy() if isinstance(v, tl.Tensor) else v).copy() for v in st.values()]
    return arrays


def _train(make, batches, compiled, loss_fn=_ce, step=None):
    tl.manual_seed(0)
    model, opt = make()
    f = tl.compile(model) if compiled else model
    outs = []
    for x, y in batches:
        opt.zero_grad()
        if step is not None:
            outs.append(step(f, model, x, y))
        else:
            out = f(tl.tensor(x))
            loss = loss_fn(out, y)
            loss.backward()
            outs.append(loss.numpy().copy())
        opt.step()
    return outs + _state(model, opt) + [tl.random.get_rng().random(3)], f


def _check(make, batches, loss_fn=_ce, step=None, replays=CALLS - 1):
    want, _ = _train(make, batches, False, loss_fn, step)
    got, f = _train(make, batches, True, loss_fn, step)
    _assert_same(want, got)
    assert f.stats["replays"] >= replays and f.stats["eager_calls"] == 0, f.stats
    return f


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_mlp_with_sgd_momentum_replays_bit_identically(dtype):
    def make():
        m = _mlp(dtype)
        return m, tl.optim.SGD(m.parameters(), lr=0.05, momentum=0.9)
    _check(make, _batches((8, 12), 4, dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cnn_with_batchnorm_dropout_and_adam_replays_bit_identically(dtype):
    def make():
        m = _CNN().to(dtype)
        return m, tl.optim.Adam(m.parameters(), lr=0.01)
    _check(make, _batches((5, 2, 6, 6), 4, dtype))


def test_lstm_returning_a_tuple_with_rmsprop_replays_bit_identically():
    def make():
        m = _LSTM()
        return m, tl.optim.RMSprop(m.parameters(), lr=0.01)
    _check(make, _batches((4, 6, 3), 4, np.float32), loss_fn=_lstm_loss)


def test_a_parameter_also_used_downstream_gets_eager_gradients():
    def step(f, model, x, y):
        w = model[0].weight
        loss = _ce(f(tl.tensor(x)), y) + 1e-3 * (w ** 2).sum() + 0.5 * model[4].bias.sum()
        loss.backward()
        return loss.numpy().copy()

    def make():
        m = _mlp(np.float32)
        return m, tl.optim.SGD(m.parameters(), lr=0.05, momentum=0.9)
    _check(make, _batches((8, 12), 4, np.float32), step=step)


def test_gradient_accumulation_over_two_forwards_before_one_backward():
    def step(f, model, x, y):
        a = _ce(f(tl.tensor(x[:4])), y[:4])
        b = _ce(f(tl.tensor(x[4:])), y[4:])
        (a + b).backward()
        return (a + b).numpy().copy()

    def make():
        m = _CNN()
        return m, tl.optim.Adam(m.parameters(), lr=0.01)
    _check(make, _batches((8, 2, 6, 6), 4, np.float32), step=step, replays=2 * CALLS - 2)


def test_a_double_backward_with_retain_graph_through_the_outputs():
    def step(f, model, x, y):
        out = f(tl.tensor(x))
        loss = _ce(out, y)
        loss.backward(retain_graph=True)
        (out ** 2).mean().backward()
        return loss.numpy().copy()

    def make():
        m = _mlp(np.float64)
        return m, tl.optim.SGD(m.parameters(), lr=0.05)
    _check(make, _batches((8, 12), 4, np.float64), step=step)


def test_a_second_backward_without_retain_graph_raises_as_eager():
    m = _mlp(np.float32)
    f = tl.compile(m)
    for x, _ in _batches((8, 12), 4, np.float32, n=3):
        out = f(tl.tensor(x))
        out.sum().backward()
        with pytest.raises(RuntimeError, match="second time"):
            out.sum().backward()
    assert f.stats["replays"] == 2


def test_a_parameter_changed_in_place_between_forward_and_backward_raises():
    m = _mlp(np.float32)
    f = tl.compile(m)
    for x, _ in _batches((8, 12), 4, np.float32, n=3):
        out = f(tl.tensor(x))
        with tl.no_grad():
            m[0].weight.mul_(1.0)
        with pytest.raises(RuntimeError, match="modified by an in-place operation"):
            out.sum().backward()
    assert f.stats["replays"] == 2


@pytest.mark.parametrize("name", ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"])
def test_a_parameter_changed_in_place_before_backward_raises_exactly_where_eager_does(name):
    """Each parameter changed in place (no_grad) between the forward and its backward. Eager raises only where a
    backward entry reads that parameter's values (a weight whose input needs a gradient), never for a bias whose
    gradient is a sum of the incoming one; the replay raises where eager does, and otherwise gives eager's grads."""
    def run(compiled):
        tl.manual_seed(0)
        m = _mlp(np.float32)
        f, p, got = tl.compile(m) if compiled else m, dict(m.named_parameters())[name], []
        for x, _ in _batches((8, 12), 4, np.float32, n=4):
            out = f(tl.tensor(x))
            with tl.no_grad():
                p.add_(0.5)
            try:
                out.sum().backward()
            except RuntimeError as exc:
                assert "modified by an in-place operation" in str(exc)
                got.append("raised")
                continue
            got.append([q.grad.numpy().copy() for q in m.parameters()])
            m.zero_grad()
        return got, f
    (want, _), (got, f) = run(False), run(True)
    assert [w == "raised" for w in want] == [g == "raised" for g in got], (want, got)
    assert all(w == "raised" or all(np.array_equal(a, b) for a, b in zip(w, g)) for w, g in zip(want, got))
    assert f.stats["replays"] == 3, f.stats


def test_create_graph_through_a_replay_raises_naming_tl_compile():
    m = _mlp(np.float64)
    f = tl.compile(m)
    xs = _batches((8, 12), 4, np.float64, n=2)
    f(tl.tensor(xs[0][0]))
    out = f(tl.tensor(xs[1][0]))
    assert f.stats["replays"] == 1
    with pytest.raises(RuntimeError, match="tl.compile"):
        tl.autograd.grad(out.sum(), m[0].weight, create_graph=True)


def test_inference_under_no_grad_and_a_mode_switch_record_new_variants():
    tl.manual_seed(0)
    model = _CNN()
    f = tl.compile(model)
    batches = _batches((5, 2, 6, 6), 4, np.float32, n=4)
    for x, _ in batches:
        f(tl.tensor(x)).sum().backward()
    model.eval()
    with tl.no_grad():
        for x, _ in batches:
            got = f(tl.tensor(x)).numpy()
            assert np.array_equal(got, model(tl.tensor(x)).numpy())
    for x, _ in batches:  # eval mode with grad: another variant, replayed
        out = f(tl.tensor(x))
        assert out.requires_grad
    model.train()
    for x, _ in _batches((3, 2, 6, 6), 4, np.float32, n=3):  # a new batch shape
        f(tl.tensor(x)).sum().backward()
    assert f.stats["variants"] == 4 and f.stats["eager_calls"] == 0, f.stats
    assert f.stats["replays"] == 3 + 3 + 3 + 2, f.stats


def test_gradients_of_argument_tensors_and_autograd_grad_through_a_replay():
    m = _mlp(np.float64)
    f = tl.compile(m)
    for x, _ in _batches((8, 12), 4, np.float64, n=4):
        xa, xb = tl.tensor(x, requires_grad=True), tl.tensor(x, requires_grad=True)
        ga, wa = tl.autograd.grad(f(xa).tanh().sum(), [xa, m[2].weight])
        gb, wb = tl.autograd.grad(m(xb).tanh().sum(), [xb, m[2].weight])
        assert np.array_equal(ga.numpy(), gb.numpy()) and np.array_equal(wa.numpy(), wb.numpy())
    assert f.stats["replays"] == 3


class _EmbeddingGRU(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 4)
        self.gru = nn.GRU(4, 5, batch_first=True)  # its weights are sliced per gate: slice gradients too
        self.head = nn.Linear(5, 4)

    def forward(self, tokens):
        seq, _ = self.gru(self.emb(tokens))
        return self.head(seq[:, -1])


def test_embedding_and_gru_slice_gradients_replay_bit_identically():
    def step(f, model, x, y):
        loss = _ce(f(tl.tensor(x)), y)
        loss.backward()
        return loss.numpy().copy()

    def make():
        m = _EmbeddingGRU()
        return m, tl.optim.Adam(m.parameters(), lr=0.01)
    rng = np.random.default_rng(0)
    batches = [(rng.integers(0, 10, (4, 5)), rng.integers(0, 4, 4)) for _ in range(CALLS)]
    _check(make, batches, step=step)


def test_a_call_that_cannot_be_compiled_warns_once_and_runs_eagerly():
    lin = nn.Linear(3, 3)
    scale = lin.bias * 2  # a graph recorded before the calls, which their backward reaches

    def fn(x):
        return lin(x) * scale
    f = tl.compile(fn)
    x = tl.ones(2, 3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            f(x).sum().backward(retain_graph=True)
    msgs = [str(w.message) for w in caught if issubclass(w.category, tl.CompileWarning)]
    assert len(msgs) == 1 and "eagerly" in msgs[0] and "before the call" in msgs[0], msgs
    assert caught[0].filename == __file__
    assert f.stats["replays"] == 0 and f.stats["eager_calls"] == 2 and "before the call" in f.stats["last_reason"]
    with pytest.raises(tl.CompileError, match="before the call"):
        tl.compile(fn, fullgraph=True)(x)


class _TwoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(4, 3), nn.Linear(4, 2)

    def forward(self, x):
        return {"a": self.a(x), "b": self.b(x).relu()}


def test_an_output_left_out_of_the_loss_leaves_its_parameters_without_gradient():
    def step(f, model, x, y):
        out = f(tl.tensor(x))
        loss = out["a"].pow(2).mean() if y[0] % 2 else out["a"].sum() + out["b"].mean()
        loss.backward()
        return loss.numpy().copy()

    def make():
        m = _TwoHeads()
        return m, tl.optim.SGD(m.parameters(), lr=0.05, momentum=0.9, weight_decay=0.01)

    batches = _batches((5, 4), 2, np.float32)
    want, _ = _train(make, batches, False, step=step)
    got, f = _train(make, batches, True, step=step)
    _assert_same(want, got)
    assert f.stats["replays"] == CALLS - 1


def test_no_gradient_reaches_a_head_the_loss_does_not_use():
    m = _TwoHeads()
    f = tl.compile(m)
    for x, _ in _batches((5, 4), 2, np.float32, n=3):
        m.zero_grad()
        f(tl.tensor(x))["a"].sum().backward()
        assert m.b.weight.grad is None and m.a.weight.grad is not None
    assert f.stats["replays"] == 2


def test_a_gradient_hook_inside_is_never_called_with_a_placeholder_gradient():
    lin = nn.Linear(3, 2)
    seen = []

    def fn(x):
        h = lin(x)
        h.register_hook(lambda g: seen.append(g.numpy().copy()))
        return h.tanh()
    f = tl.compile(fn)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tl.CompileWarning)
        for i in range(3):
            (f(tl.ones(2, 3)) * (i + 2)).sum().backward()
    assert len(seen) == 3 and f.stats["replays"] == 0 and "hook" in f.stats["last_reason"], f.stats


def test_a_compiled_model_inside_a_compiled_training_step_runs_inline_in_its_record():
    def step_with(model, opt):
        def step(x, y):
            opt.zero_grad()
            loss = _ce(model(tl.tensor(x)), y)
            loss.backward()
            opt.step()
            return loss.item()
        return step

    def make():
        m = _mlp(np.float32)
        return m, tl.optim.SGD(m.parameters(), lr=0.05, momentum=0.9)
    batches = _batches((8, 12), 4, np.float32)
    tl.manual_seed(0)
    m1, o1 = make()
    eager = step_with(m1, o1)
    want = [eager(x, y) for x, y in batches]
    tl.manual_seed(0)
    m2, o2 = make()
    inner = tl.compile(m2)
    outer = tl.compile(step_with(inner, o2))
    got = [outer(x, y) for x, y in batches]
    assert want == got and outer.stats["replays"] == CALLS - 1, outer.stats
    _assert_same(_state(m1, o1), _state(m2, o2))


def test_an_output_changed_in_place_before_backward_raises_when_its_backward_reads_it():
    model = nn.Sequential(nn.Linear(4, 3), nn.Tanh())  # tanh's backward reads its output
    f = tl.compile(model)
    for _ in range(3):
        out = f(tl.ones(2, 4))
        with tl.no_grad():
            out.mul_(2.0)
        with pytest.raises(RuntimeError, match="in-place"):
            out.sum().backward()
    assert f.stats["replays"] == 2
