"""tl.compile's plan and the generated replay's buffers: the plan validator, elementwise steps writing over their last
input, choices made from values recording variants, custom Functions, sorting and predicates, ufunc results in
planned buffers, gradient arrays recycled only when nobody holds them, deliveries of leaf gradients, and tensors made
before the call read by library host computations. Every comparison with eager is bit for bit (np.array_equal)."""
import weakref

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite.compile.plan import INTERPRETED_REPLAYS, Plan, validate

from _compile_common import train_step, vector_batches as _vectors, wide_mlp as _mlp

nn, F = tl.nn, tl.nn.functional


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
