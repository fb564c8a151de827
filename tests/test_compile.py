"""tl.compile: a replay gives exactly the eager results (np.array_equal), for every optimizer and layer family,
over many calls with a new batch each call; every primitive through its sampler. The plan and the generated replay's
buffers: test_compile_plan.py."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st, HealthCheck

import tinygrad_lite as tl
from tinygrad_lite.ops import REGISTRY

from _compile_common import vector_batches as _vectors, wide_mlp as _mlp
from primitive_gen import HypothesisGen

nn, F = tl.nn, tl.nn.functional
STEPS = 25


def _train(make, opt_fn, data_fn, compiled, loss_fn=F.cross_entropy, steps=STEPS, between=None):
    """Train `steps` calls; returns (losses, parameters, grads, buffers, optimizer state, RNG draw, the step)."""
    tl.manual_seed(0)
    model = make()
    opt = opt_fn(model)

    def step(x, y):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss.item()
    f = tl.compile(step) if compiled else step
    rng = np.random.default_rng(7)
    losses = []
    for i in range(steps):
        losses.append(f(*data_fn(rng)))
        if between is not None:
            between(opt, i)
    state = [np.array(v.numpy() if isinstance(v, tl.Tensor) else v) for s in opt.state.values()
             for v in s.values()]
    return (losses, [p.numpy().copy() for p in model.parameters()],
            [None if p.grad is None else p.grad.numpy().copy() for p in model.parameters()],
            [b.numpy().copy() for b in model.buffers()], state, tl.random.get_rng().random(), f)


def _assert_identical(make, opt_fn, data_fn, **kw):
    eager, comp = _train(make, opt_fn, data_fn, False, **kw), _train(make, opt_fn, data_fn, True, **kw)
    assert eager[0] == comp[0], "losses differ"
    for what, a, b in zip(("parameters", "grads", "buffers", "optimizer state"), eager[1:5], comp[1:5]):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert (x is None and y is None) or np.array_equal(x, y), f"{what} differ"
    assert eager[5] == comp[5], "the random generator's state differs"
    stats = comp[6].stats
    assert stats["replays"] >= STEPS - 3 and stats["eager_calls"] == 0, stats
    return comp[6]


OPTIMIZERS = [
    ("SGD", dict(lr=0.1)), ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.1, weight_decay=1e-3)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)), ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, amsgrad=True, weight_decay=0.01)), ("AdamW", dict(lr=0.01, amsgrad=True)),
    ("RMSprop", dict(lr=0.01)), ("RMSprop", dict(lr=0.01, centered=True, momentum=0.5)), ("Adagrad", dict(lr=0.1)),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,kw", OPTIMIZERS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(OPTIMIZERS)])
def test_every_optimizer_replays_bit_identically(name, kw, dtype):
    _assert_identical(lambda: _mlp().to(dtype), lambda m: getattr(tl.optim, name)(m.parameters(), **kw),
                      _vectors(dtype))


def test_schedulers_and_hand_edited_learning_rates_take_effect():
    def between(opt, i):
        if i % 5 == 4:
            opt.param_groups[0]["lr"] *= 0.5
    _assert_identical(_mlp, lambda m: tl.optim.Adam(m.parameters(), lr=0.02), _vectors(np.float32), between=between)
    sched = {}

    def with_scheduler(m):
        opt = tl.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
        sched["s"] = tl.optim.lr_scheduler.StepLR(opt, 3, gamma=0.5)
        return opt
    _assert_identical(_mlp, with_scheduler, _vectors(np.float32), between=lambda opt, i: sched["s"].step())


def _images(rng):
    return tl.tensor(rng.standard_normal((4, 2, 8, 8)).astype(np.float32)), tl.tensor(rng.integers(0, 3, 4))


class _Sequence(nn.Module):
    def __init__(self, kind):
        super().__init__()
        self.emb = nn.Embedding(10, 6, padding_idx=0)
        self.rnn = getattr(nn, kind)(6, 7, batch_first=True, num_layers=2, dropout=0.2, bidirectional=True)
        self.fc = nn.Linear(14, 3)

    def forward(self, x):
        h, _ = self.rnn(self.emb(x))
        return self.fc(h[:, -1])


LAYERS = {
    "conv-groups": lambda: nn.Sequential(nn.Conv2d(2, 4, 3, padding=1, groups=2), nn.ReLU(), nn.MaxPool2d(2),
                                         nn.Flatten(), nn.Linear(64, 3)),
    "conv-dilation-bn-dropout": lambda: nn.Sequential(nn.Conv2d(2, 4, 3, padding=2, dilation=2), nn.BatchNorm2d(4),
                                                      nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(), nn.Dropout(0.3),
                                                      nn.Linear(64, 3)),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_convolution_layers_replay_bit_identically(name):
    _assert_identical(LAYERS[name], lambda m: tl.optim.SGD(m.parameters(), lr=0.05, momentum=0.9), _images)


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_recurrent_layers_with_embedding_and_dropout_replay_bit_identically(kind):
    _assert_identical(lambda: _Sequence(kind), lambda m: tl.optim.Adam(m.parameters(), lr=0.01),
                      lambda rng: (tl.tensor(rng.integers(0, 10, (4, 5))), tl.tensor(rng.integers(0, 3, 4))))


def test_batchnorm_dropout_layernorm_gelu_and_losses_replay_bit_identically():
    _assert_identical(lambda: nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.GELU(), nn.Dropout(0.5),
                                            nn.Linear(8, 8), nn.LayerNorm(8), nn.LeakyReLU(), nn.Linear(8, 3)),
                      lambda m: tl.optim.SGD(m.parameters(), lr=0.05),
                      lambda rng: (tl.tensor(rng.standard_normal((6, 5)).astype(np.float32)),
                                   tl.tensor(rng.integers(0, 3, 6))),
                      loss_fn=lambda out, y: F.cross_entropy(out, y, label_smoothing=0.1, ignore_index=2))
    _assert_identical(lambda: nn.Sequential(nn.Linear(5, 4), nn.Sigmoid()), lambda m: tl.optim.Adam(m.parameters()),
                      lambda rng: (tl.tensor(rng.standard_normal((6, 5))), tl.tensor(rng.random((6, 4)))),
                      loss_fn=F.binary_cross_entropy)
    _assert_identical(lambda: nn.Linear(5, 4), lambda m: tl.optim.Adam(m.parameters()),
                      lambda rng: (tl.tensor(rng.standard_normal((6, 5))), tl.tensor(rng.standard_normal((6, 4)))),
                      loss_fn=lambda a, b: F.smooth_l1_loss(a, b) + F.huber_loss(a, b) + F.l1_loss(a, b))


class _SlicedAfterBatchNorm(nn.Module):
    """BatchNorm updates its running statistics (an effect) before the slices and the padded convolution: their
    shapes are fixed by the index, so only a boolean mask's value-dependent count would stop the replay."""

    def __init__(self):
        super().__init__()
        self.bn, self.conv, self.head = nn.BatchNorm2d(2), nn.Conv2d(2, 3, 3, padding=1), nn.Linear(3 * 4, 3)

    def forward(self, x):
        h = self.conv(self.bn(x))[:, :, 1:3, ::2]
        return self.head(h.reshape(h.shape[0], -1))


def test_slices_and_padding_after_an_effect_replay_bit_identically():
    _assert_identical(_SlicedAfterBatchNorm, lambda m: tl.optim.Adam(m.parameters(), lr=0.01),
                      lambda rng: (tl.tensor(rng.standard_normal((5, 2, 4, 4)).astype(np.float32)),
                                   tl.tensor(rng.integers(0, 3, 5))))


def test_a_boolean_mask_after_an_effect_is_not_replayed_and_says_why():
    model = nn.BatchNorm1d(3)

    def step(x):
        y = model(x)
        return y[y > 0].sum().item()
    f = tl.compile(step)
    x = tl.tensor(np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32))
    for _ in range(3):
        f(x)
    assert f.stats["replays"] == 0 and "shape depends on values" in f.stats["last_reason"]

def test_batchnorm_in_eval_and_inference_under_no_grad():
    tl.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 3))
    for _ in range(3):
        model(tl.randn(6, 5))  # running statistics that are not the initial ones
    model.eval()
    compiled = tl.compile(model)
    rng = np.random.default_rng(0)
    with tl.no_grad():
        for _ in range(10):
            x = tl.tensor(rng.standard_normal((6, 5)).astype(np.float32))
            assert np.array_equal(compiled(x).numpy(), model(x).numpy())
    assert compiled.stats["replays"] == 9 and compiled.stats["traces"] == 1


# ---------------- every primitive, through its sampler ----------------
@pytest.mark.parametrize("name", sorted(REGISTRY))
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_primitive_replays_forward_and_backward_with_new_values(name, data):
    prim = REGISTRY[name]
    arrays, attrs = prim.sample(HypothesisGen(data))

    def fn(attrs, *xs):  # the attributes as an argument: index arrays in them are inputs, not frozen constants
        out = prim.call(*xs, *attrs)
        diff = [x for x in xs if x.requires_grad]
        if not out.requires_grad or not diff:
            return out, ()
        grads = tl.autograd.grad((out * out).sum(), diff, allow_unused=True)
        return out, tuple(g for g in grads if g is not None)
    compiled = tl.compile(fn)
    rng = np.random.default_rng(0)
    for call in range(4):
        # new values, with zeros and signs kept: choices made from the values (prod's zero path) stay the same
        values = [a if a.dtype.kind != "f" else a * (1 + 0.01 * call * rng.random(a.shape)) for a in arrays]
        xs = [tl.tensor(v, requires_grad=v.dtype.kind == "f") for v in values]
        ys = [tl.tensor(v, requires_grad=v.dtype.kind == "f") for v in values]
        (got, got_grads), (want, want_grads) = compiled(attrs, *xs), fn(attrs, *ys)
        assert np.array_equal(got.numpy(), want.numpy(), equal_nan=True), f"{name}: forward differs on call {call}"
        assert len(got_grads) == len(want_grads)
        for g, w in zip(got_grads, want_grads):
            assert np.array_equal(g.numpy(), w.numpy(), equal_nan=True), f"{name}: gradient differs on call {call}"
    assert compiled.stats["eager_calls"] == 0 and compiled.stats["replays"] >= 3, (name, compiled.stats)
