"""tl.compile: a value read with .item() after an effect (an optimizer step) and compared in Python
(`loss.item() < best`) is checked where its memory was last written, before the effect (plan.hoist_reads), so the
step replays and a flipped comparison still sends the call back to eager cleanly; a read whose memory may change
after the effect (written in place, given to a host call, computed after the step) stays where it is, and runs
eagerly as before. Each case runs beside an eager twin, bit for bit."""
import numpy as np
import pytest

import tinygrad_lite as tl

nn, F = tl.nn, tl.nn.functional
CALLS = 10


def _batch(i):
    r = np.random.RandomState(100 + i)
    return tl.tensor(r.randn(8, 6).astype(np.float32)), tl.tensor(r.randint(0, 3, 8))


def _twin(make, args=lambda i: _batch(i)):
    """make() -> (step, model): compiled and eager twins over CALLS calls; returns the compiled stats."""
    runs = []
    for compiled in (True, False):
        tl.manual_seed(0)
        step, model = make()
        f = tl.compile(step) if compiled else step
        outs = [f(*args(i)) for i in range(CALLS)]
        grads = [None if p.grad is None else p.grad.numpy().copy() for p in model.parameters()]
        runs.append((outs, [p.numpy().copy() for p in model.parameters()], grads, getattr(f, "stats", None)))
    (got, got_p, got_g, stats), (want, want_p, want_g, _) = runs
    assert got == want and all(type(a) is type(b) for a, b in zip(np.ravel(got), np.ravel(want))), (got, want, stats)
    assert all(np.array_equal(a, b) for a, b in zip(got_p, want_p))
    assert all((a is None and b is None) or np.array_equal(a, b) for a, b in zip(got_g, want_g))
    return stats


def _trainer(finish, zero_grad=lambda opt: opt.zero_grad()):
    def make():
        model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
        opt = tl.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

        def step(x, y):
            zero_grad(opt)
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            return finish(loss, model, x)
        return step, model
    return make


def test_a_comparison_of_the_loss_after_the_step_replays():
    stats = _twin(_trainer(lambda loss, model, x: (loss.item(), loss.item() < 5.0, loss.item() >= 0)))
    assert stats["traces"] == 1 and stats["replays"] == CALLS - 1, stats


def test_a_comparison_that_flips_records_another_variant_before_the_step_runs():
    """The loss falls below the threshold at some call: that call's guard fails before the optimizer step, so the
    step runs once (eagerly recorded), never twice."""
    def make():
        step, model = _trainer(lambda loss, model, x: (loss.item(), "low" if loss.item() < threshold else "high"))()
        return step, model
    losses = []
    tl.manual_seed(0)
    probe, _ = _trainer(lambda loss, model, x: loss.item())()
    losses = [probe(*_batch(i)) for i in range(CALLS)]
    threshold = sorted(losses)[CALLS // 2]  # half the calls on each side
    stats = _twin(make)
    assert stats["traces"] == 2 and stats["eager_calls"] == 0 and stats["replays"] == CALLS - 2, stats


def test_a_read_written_in_place_after_the_step_stays_eager():
    def finish(loss, model, x):
        loss.mul_(0.0)  # after the step: the value compared is 0, as eager reads it
        return loss.item() < 1.0
    stats = _twin(_trainer(finish))
    assert stats["replays"] == 0 and "after the call already changed state" in stats["last_reason"], stats


def test_a_read_of_a_value_computed_after_the_step_stays_eager():
    stats = _twin(_trainer(lambda loss, model, x: model(x).sum().item() > 0))
    assert stats["replays"] == 0 and "after the call already changed state" in stats["last_reason"], stats


def test_a_gradient_zeroed_in_place_after_the_step_is_read_as_zero():
    """A view of a gradient (`grad[0, 0]`, a view as in PyTorch) made before the step and read after
    zero_grad(set_to_none=False) zeroed the gradient in place: 0.0, as eager reads it (the gradient was handed to the
    engine's delivery, a host call that may keep it, so its read stays after the step)."""
    def make():
        model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
        opt = tl.optim.SGD(model.parameters(), lr=0.1)

        def step(x, y):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            g = model[0].weight.grad[0, 0]  # (a view of the gradient, made before the step)
            opt.step()
            opt.zero_grad(set_to_none=False)
            v = g.item()
            return v, v > -1.0
        return step, model
    stats = _twin(make)
    assert stats["replays"] == 0, stats


def test_a_read_of_a_parameter_after_the_step_is_its_new_value():
    """A parameter is not the call's own memory: its read after the step stays after it (the updated value)."""
    stats = _twin(_trainer(lambda loss, model, x: model[0].bias[0].item() > 0))
    assert stats["replays"] == 0, stats
