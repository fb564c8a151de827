"""tl.compile: a replay gives exactly the eager results (np.array_equal), for every optimizer and layer family,
over many calls with a new batch each call; every primitive through its sampler; the plan validator."""
import weakref

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st, HealthCheck

import tinygrad_lite as tl
from tinygrad_lite.compile.plan import INTERPRETED_REPLAYS, Plan, validate
from tinygrad_lite.ops import REGISTRY

from _compile_common import train_step
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


def _mlp():
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 4))


def _vectors(dtype):
    return lambda rng: (tl.tensor(rng.standard_normal((8, 6)).astype(dtype)), tl.tensor(rng.integers(0, 4, 8)))


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


# ---------------- the plan ----------------
def test_plan_validator_accepts_real_plans_and_catches_a_freed_slot():
    model = _mlp()

    def step(x):
        return model(x).sum().item()
    compiled = tl.compile(step)
    compiled(tl.randn(400, 6))  # arrays are freed after their last use
    compiled(tl.randn(400, 6))  # the first replays run the steps one by one
    plan = compiled._variants[0].plan
    assert plan.chunks is None and plan._steps_fns
    for _ in range(INTERPRETED_REPLAYS):  # then the plan is turned into straight-line code
        compiled(tl.randn(400, 6))
    assert validate(plan)
    assert len(plan.reads_of) > 5 and any(plan.release) and plan.chunks and plan._steps_fns is None
    step_index = next(i for i, rel in enumerate(plan.release) if rel)
    slot = plan.release[step_index][0]
    later = next(i for i in range(step_index + 1, len(plan.reads_of)) if True)
    plan.reads_of[later] = list(plan.reads_of[later]) + [slot]  # a later step reading the freed slot
    with pytest.raises(AssertionError, match=f"reads slot {slot} after it was freed"):
        validate(plan)
    assert isinstance(plan, Plan)


def test_elementwise_steps_write_over_the_input_they_read_last_and_nothing_else():
    w = tl.tensor(np.linspace(-1, 1, 12).reshape(3, 4))

    def fn(x):
        h = x @ w  # a gufunc: never in place
        y = ((h * 2.0 + 1.0).exp() - h).tanh()  # `h` is read again after the exp: the subtraction takes exp's buffer
        return (y * y).sum()
    compiled = tl.compile(fn)
    xs = [tl.tensor(np.random.default_rng(i).standard_normal((5, 3))) for i in range(12)]
    for x in xs:
        assert np.array_equal(compiled(x).numpy(), fn(x).numpy())
    plan = compiled._variants[0].plan
    assert validate(plan)
    # matmul's output h is alive to the subtraction; mul, add, exp, sub, tanh, mul share one buffer in place
    assert len(plan.inplace) == 5 and len(plan.buffers) == 2, (plan.inplace, len(plan.buffers))
    k = next(iter(plan.inplace))
    plan.inplace.discard(k)  # without the in-place mark, sharing at the meeting step is a violation
    with pytest.raises(AssertionError, match="while both are alive"):
        validate(plan)


def test_a_choice_made_from_values_records_another_variant_instead_of_a_wrong_answer():
    x = tl.tensor([1.0, 2.0, 0.0, 3.0], requires_grad=True)

    def fn(x):
        return tl.autograd.grad(x.prod(), x)[0]  # prod's gradient takes another path when a zero is present
    compiled = tl.compile(fn)
    for values in ([1.0, 2.0, 0.0, 3.0], [1.0, 2.0, 5.0, 3.0], [4.0, 0.0, 5.0, 3.0], [1.0, 2.0, 6.0, 3.0]):
        a, b = tl.tensor(values, requires_grad=True), tl.tensor(values, requires_grad=True)
        assert np.array_equal(compiled(a).numpy(), fn(b).numpy())
    assert compiled.stats["variants"] == 2 and compiled.stats["replays"] == 2


class _MyReLU(tl.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, g):
        x, = ctx.saved_tensors
        grad = g.clone()
        grad[x < 0] = 0  # the tutorial's masked assignment
        return grad


class _TwoOutputs(tl.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * 2, x.exp()

    @staticmethod
    def backward(ctx, a, b):
        x, = ctx.saved_tensors
        return a * 2 + b * x.exp()


def test_custom_functions_sorting_and_predicates_replay_bit_identically():
    w = tl.randn(6, requires_grad=True)

    def fn(x):
        a, b = _TwoOutputs.apply(_MyReLU.apply(x * w))
        values, order = (a + b).sort(descending=True)
        top, where = (a * b).topk(3)
        loss = values[:4].sum() + top.sum() + (a > 0.5).float().mean() + a.norm() + a.cumsum(0).sum() + \
            tl.isfinite(b).float().sum()
        loss.backward()
        grad = w.grad.clone()
        w.grad = None
        return loss.item(), grad, order, where, a.argmax()
    compiled = tl.compile(fn)
    rng = np.random.default_rng(0)
    for _ in range(6):
        x = tl.tensor(rng.standard_normal(6).astype(np.float32))
        got, want = compiled(x), fn(x)
        assert got[0] == want[0]
        assert all(np.array_equal(g.numpy(), h.numpy()) for g, h in zip(got[1:], want[1:]))
    assert compiled.stats["replays"] == 5 and compiled.stats["eager_calls"] == 0


def test_ufunc_results_in_planned_buffers_are_read_by_name_and_slots_written_twice_are_not():
    """A ufunc returns its out= array, so a slot only ufuncs write into their planned buffer holds that buffer on
    every call (`fixed_slots`): the replay starts with it there and never stores it. A slot another kind of step
    also writes (a gradient accumulated in place) is assigned as before."""
    from tinygrad_lite.compile.replay import _how

    def fn(x):
        h = x * 2.0  # h is read three times: its gradient is a ufunc's result, then added to in place twice
        loss = (h.tanh() * 3.0 + h.exp() * 2.0 + h * h).sum()
        return tl.autograd.grad(loss, x)[0], loss.item()
    compiled = tl.compile(fn)
    rng = np.random.default_rng(3)
    plan = None
    for call in range(INTERPRETED_REPLAYS + 4):
        x = rng.standard_normal((16, 8))
        (got, got_loss), (want, want_loss) = (f(tl.tensor(x, requires_grad=True)) for f in (compiled, fn))
        assert got_loss == want_loss and np.array_equal(got.numpy(), want.numpy()), call
        if call == 1:  # recorded, replayed once: the steps are still there to look at
            plan = compiled._variants[0].plan
            ops = [item for kind, item in plan._pending[0] if kind == "op" and item.kind == "kernel"]
    writers = {}
    for op in ops:
        for k in ((op.outs,) if isinstance(op.outs, int) else op.outs):
            writers.setdefault(k, []).append(_how(op, plan.buffer_of, plan.buffers)[0])
    twice = {k for k, hows in writers.items() if len(hows) > 1}
    assert twice and not twice & plan.fixed, (twice, plan.fixed)  # the accumulated gradient
    assert plan.fixed and all(writers[k] == ["out"] for k in plan.fixed)
    assert plan.chunks is not None  # the generated code ran the last calls
    for k, start in enumerate(plan.start[:plan.nslots]):  # (the interpreted program's constants follow)
        assert start is (plan.buffers[plan.buffer_of[k]] if k in plan.fixed else None)


def test_a_gradient_array_nobody_holds_is_reused_by_the_next_replay_and_a_held_one_never_is():
    """The arrays the engine delivers as .grad are made by the replay each call (a host call keeps them); once
    zero_grad dropped the last call's and nothing else holds it, the next call writes into it instead of a new
    array (`_recycled`). Results stay eager's, bit for bit; a gradient the user kept is never written."""
    def make():
        model = _mlp()
        for i, p in enumerate(model.parameters()):
            p.data = np.linspace(-0.5, 0.5, p.numel()).reshape(p.shape).astype(np.float32) * (i + 1)
        return model, tl.optim.SGD(model.parameters(), lr=0.1)

    (m1, o1), (m2, o2) = make(), make()
    compiled, eager = tl.compile(train_step(m1, o1)), train_step(m2, o2)
    first = m1[0].weight
    rng = np.random.default_rng(0)
    seen, kept = [], None
    for call in range(INTERPRETED_REPLAYS + 8):
        x, y = _vectors(np.float32)(rng)
        assert compiled(x, y) == eager(x, y), call
        for p, q in zip(m1.parameters(), m2.parameters()):
            assert np.array_equal(p.numpy(), q.numpy()) and np.array_equal(p.grad.numpy(), q.grad.numpy()), call
        g = first.grad._data
        seen.append(weakref.ref(g if g.base is None else g.base))  # (the gradient is a view of the matmul's array)
        del g
        if call == INTERPRETED_REPLAYS + 5:  # the user keeps this call's gradient: the next call must not reuse it
            kept, kept_values = first.grad, first.grad.numpy().copy()
    assert compiled.stats["replays"] == INTERPRETED_REPLAYS + 7
    # (the generated code runs from the 9th replay on); a weak reference never mistakes a new array for a freed one
    generated = [wr() for wr in seen[INTERPRETED_REPLAYS + 2:INTERPRETED_REPLAYS + 6]]
    assert generated[0] is not None and all(a is generated[0] for a in generated), generated  # one array, reused
    held = seen[INTERPRETED_REPLAYS + 5]()
    assert held is not None and seen[INTERPRETED_REPLAYS + 6]() is not held  # the next call made a new one
    assert np.array_equal(kept.numpy(), kept_values)


def test_recycled_reuses_an_array_only_when_its_cell_alone_holds_it():
    from tinygrad_lite.compile.replay import _recycled

    cell = [None, (4, 3), np.dtype("float32"), "C"]
    first = _recycled(cell)
    assert first.shape == (4, 3) and first.dtype == np.float32 and cell[0] is first
    ref = weakref.ref(first)
    assert _recycled(cell) is not first  # `first` is still held here: never handed out again
    held, view = cell[0], cell[0][1:].T  # a view keeps its base: held as well
    del held
    assert _recycled(cell) is not view.base
    del view, first
    last = weakref.ref(cell[0])
    again = _recycled(cell)
    assert again is last() and ref() is None  # nothing else held it: reused (and the first array is long gone)
    f_cell = [None, (2, 5), np.dtype("float64"), "F"]
    assert _recycled(f_cell).flags.f_contiguous


def test_deliveries_set_a_missing_grad_inline_and_accumulate_through_the_engine():
    """The generated code sets a leaf's .grad itself when the leaf has none (after zero_grad), and hands every other
    delivery (accumulation into a .grad kept from the last call) to the engine: both as eager does, bit for bit."""
    import importlib
    replay = importlib.import_module("tinygrad_lite.compile.replay")
    sources = []
    build = replay._Emitter.build

    def keep_source(em):
        sources.append("\n".join(em.lines))
        return build(em)

    def make():
        model = _mlp()
        for i, p in enumerate(model.parameters()):
            p.data = np.linspace(-0.5, 0.5, p.numel()).reshape(p.shape).astype(np.float32) * (i + 1)
        return model

    def accumulate(model):  # no zero_grad: every call after the first adds to the .grad of the one before
        def step(x, y):
            loss = tl.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            return loss.item()
        return step

    rng = np.random.default_rng(5)
    replay._Emitter.build = keep_source
    try:
        for name, steps in (("zero_grad", lambda m: train_step(m, tl.optim.SGD(m.parameters(), lr=0.1))),
                            ("accumulate", accumulate)):
            m1, m2 = make(), make()
            compiled, eager = tl.compile(steps(m1)), steps(m2)
            for call in range(INTERPRETED_REPLAYS + 6):
                x, y = _vectors(np.float32)(rng)
                assert compiled(x, y) == eager(x, y), (name, call)
                for p, q in zip(m1.parameters(), m2.parameters()):
                    assert np.array_equal(p.numpy(), q.numpy()), (name, call)
                    assert np.array_equal(p.grad.numpy(), q.grad.numpy()), (name, call)
            # (accumulating: call 2 finds every .grad set, a second variant; it replays from call 3 on)
            assert compiled.stats["replays"] == INTERPRETED_REPLAYS + 6 - compiled.stats["traces"], name
    finally:
        replay._Emitter.build = build
    assert len(sources) == 2 and all("._grad = _wrap(" in s for s in sources)


def test_class_targets_held_outside_the_call_are_read_each_replay():
    """A step that reads its batch from tensors made before the call (written in place between calls), not from its
    arguments: cross-entropy's targets are read from the tensor by every replay (they used to make the step run
    eagerly, as an array whose values a replay would freeze), and the losses stay eager's."""
    rng = np.random.default_rng(11)
    x, y = tl.tensor(rng.standard_normal((8, 6)).astype(np.float32)), tl.tensor(rng.integers(0, 4, 8))

    def step_of(model, opt):
        def step():
            opt.zero_grad()
            loss = tl.nn.functional.cross_entropy(model(x), y) + tl.nn.functional.nll_loss(model(x), y)
            loss.backward()
            opt.step()
            return loss.item()
        return step

    models = [_mlp() for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    compiled, eager = (f(m, tl.optim.SGD(m.parameters(), lr=0.1)) for f, m in zip((lambda m, o: tl.compile(
        step_of(m, o)), step_of), models))
    for call in range(INTERPRETED_REPLAYS + 4):
        x.data.copy_(tl.tensor(rng.standard_normal((8, 6)).astype(np.float32)))
        y.data.copy_(tl.tensor(rng.integers(0, 4, 8)))
        assert compiled() == eager(), call
    assert compiled.stats["replays"] == INTERPRETED_REPLAYS + 3 and compiled.stats["eager_calls"] == 0


_W0 = np.linspace(-1, 1, 12).reshape(4, 3).astype(np.float32)
OUTSIDE_READS = {  # a tensor made before the call whose data a library host computation reads first
    "compare": lambda w, x, y: ((w > 0).float() * w).sum(),
    "astype": lambda w, x, y: (y.float() * w[:, 0]).sum(),
    "argmax": lambda w, x, y: (x.argmax(1).float() * w[:, 0]).sum(),
    "max with dim": lambda w, x, y: (x.max(1)[1].float() * w[:, 0]).sum(),
    "clone": lambda w, x, y: (x.clone() * w).sum(),
    "isfinite": lambda w, x, y: (tl.isfinite(x).float() * w).sum(),
    "leaky_relu": lambda w, x, y: (tl.nn.functional.leaky_relu(x) * w).sum(),
    "log_softmax": lambda w, x, y: (tl.nn.functional.log_softmax(x, 1) * w).sum(),
    "cross_entropy": lambda w, x, y: tl.nn.functional.cross_entropy(x * w, y),
}


@pytest.mark.parametrize("name", list(OUTSIDE_READS))
def test_library_host_computations_read_tensors_made_before_the_call(name):
    """Comparisons, casts, argmax, clone, predicates, leaky_relu's mask, log_softmax's shift read a tensor made
    before the call (a batch written in place between calls, a parameter) through compile.hooks.data: every call
    after the first replays, with eager's values and gradients (they used to run eagerly for good)."""
    body = OUTSIDE_READS[name]
    rng = np.random.default_rng(12)
    x, y = tl.tensor(rng.standard_normal((4, 3)).astype(np.float32)), tl.tensor(rng.integers(0, 3, 4))
    ws = [tl.tensor(_W0.copy(), requires_grad=True) for _ in range(2)]

    def step_of(w):
        def step():
            w.grad = None
            loss = body(w, x, y)
            loss.backward()
            return loss.item(), w.grad
        return step

    compiled, eager = tl.compile(step_of(ws[0])), step_of(ws[1])
    for call in range(6):
        x.data.copy_(tl.tensor(rng.standard_normal((4, 3)).astype(np.float32)))
        y.data.copy_(tl.tensor(rng.integers(0, 3, 4)))
        (a, ga), (b, gb) = compiled(), eager()
        assert a == b and np.array_equal(ga.numpy(), gb.numpy()), call
    assert compiled.stats["eager_calls"] == 0 and compiled.stats["replays"] >= 4, compiled.stats
