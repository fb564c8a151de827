"""tl.compile: numbers of a library object's state returned into Python by its methods (`sched.get_last_lr()`,
hooks.live_numbers): each replay reads them again where the call read them, so a step that returns the learning
rate after its scheduler step replays with each call's own value; used in Python they are guarded (a branch on the
learning rate), kept by Python code they make the call eager, and anything but plain numbers runs eagerly."""
import numpy as np
import pytest

import tinygrad_lite as tl

nn, F = tl.nn, tl.nn.functional
CALLS = 12


def _batch(i):
    r = np.random.RandomState(100 + i)
    return tl.tensor(r.randn(8, 6).astype(np.float32)), tl.tensor(r.randint(0, 3, 8))


def _run(make, compiled, calls=CALLS, **options):
    """make() -> (step, model, sched): the outputs of `calls` calls and the final parameters, and the stats."""
    tl.manual_seed(0)
    step, model, sched = make()
    f = tl.compile(step, **options) if compiled else step
    outs = [f(*_batch(i)) for i in range(calls)]
    return outs, [p.detach().numpy().copy() for p in model.parameters()], getattr(f, "stats", None)


def _same_as_eager(make, **options):
    got, got_params, stats = _run(make, True, **options)
    want, want_params, _ = _run(make, False)
    assert got == want, (got, want, stats)
    assert all(type(a) is type(b) for a, b in zip(_flat(got), _flat(want))), (got, want)
    assert all(np.array_equal(a, b) for a, b in zip(got_params, want_params))
    return stats


def _flat(x):
    if isinstance(x, (list, tuple)):
        return [v for o in x for v in _flat(o)]
    if isinstance(x, dict):
        return [v for o in x.values() for v in _flat(o)]
    return [x]


def _trainer(finish, scheduler=lambda opt: tl.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=7), groups=1,
             lr=1e-2):
    """A classifier step with a scheduler step after the optimizer's, returning finish(loss, sched)."""
    def make():
        model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
        ps = list(model.parameters())
        params = ps if groups == 1 else [{"params": ps[:2]}, {"params": ps[2:], "lr": 2 * lr}]
        opt = tl.optim.SGD(params, lr=lr, momentum=0.9)
        sched = scheduler(opt)

        def step(x, y):
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            sched.step()
            return finish(loss, sched)
        return step, model, sched
    return make


def _replays(stats, traces=1):
    assert stats["traces"] == traces and stats["eager_calls"] == 0 and stats["replays"] == CALLS - traces, stats


SCHEDULERS = {
    "cosine": lambda opt: tl.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=7),
    "step": lambda opt: tl.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5),
    "lambda": lambda opt: tl.optim.lr_scheduler.LambdaLR(opt, lambda e: 1 / (1 + e)),
    "onecycle": lambda opt: tl.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=CALLS + 1),
    "sequential": lambda opt: tl.optim.lr_scheduler.SequentialLR(
        opt, [tl.optim.lr_scheduler.LinearLR(opt, start_factor=0.1, total_iters=3),
              tl.optim.lr_scheduler.ExponentialLR(opt, gamma=0.9)], milestones=[4]),
}


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_the_learning_rate_returned_after_the_scheduler_step_replays_with_each_calls_value(name):
    stats = _same_as_eager(_trainer(lambda loss, sched: (loss.item(), sched.get_last_lr()[0]), SCHEDULERS[name]))
    _replays(stats)


def test_every_groups_learning_rate_returned_as_the_list():
    stats = _same_as_eager(_trainer(lambda loss, sched: {"loss": loss.item(), "lrs": sched.get_last_lr()},
                                    groups=2))
    _replays(stats)


def test_the_learning_rate_read_before_the_scheduler_step_is_that_calls_value():
    def make():
        model = nn.Linear(6, 3)
        opt = tl.optim.SGD(model.parameters(), lr=0.1)
        sched = tl.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)

        def step(x, y):
            before = sched.get_last_lr()[0]
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
            sched.step()
            return before, sched.get_last_lr()[0]
        return step, model, sched
    _replays(_same_as_eager(make))


def test_arithmetic_on_the_returned_learning_rate_is_each_calls_own():
    stats = _same_as_eager(_trainer(lambda loss, sched: round(sched.get_last_lr()[0] * 1000, 6) + loss.item()))
    _replays(stats)


def test_a_branch_on_the_learning_rate_before_any_effect_is_a_guard():
    """StepLR halves the rate every 3 epochs: the branch flips once in 12 calls, so a second variant is recorded."""
    def make():
        model = nn.Linear(6, 3)
        opt = tl.optim.SGD(model.parameters(), lr=0.1)
        sched = tl.optim.lr_scheduler.StepLR(opt, step_size=6, gamma=0.1)

        def step(x, y):
            warm = sched.get_last_lr()[0] > 0.05
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            (loss if warm else 2 * loss).backward()
            opt.step()
            sched.step()
            return loss.item(), warm
        return step, model, sched
    stats = _same_as_eager(make)
    assert stats["traces"] == 2 and stats["eager_calls"] == 0, stats


def test_a_branch_on_the_learning_rate_after_the_scheduler_step_runs_eagerly_and_says_why():
    stats = _same_as_eager(_trainer(lambda loss, sched: "low" if sched.get_last_lr()[0] < 5e-3 else "high"))
    assert stats["replays"] == 0 and "get_last_lr()[0]" in stats["last_reason"], stats


def test_a_learning_rate_kept_by_python_code_runs_eagerly_with_plain_numbers_kept():
    history = {True: [], False: []}

    def make_for(compiled):
        def finish(loss, sched):
            history[compiled].append(sched.get_last_lr()[0])
            return loss.item()
        return _trainer(finish)
    got, _, stats = _run(make_for(True), True)
    want, _, _ = _run(make_for(False), False)
    assert got == want and history[True] == history[False], (history, stats)
    assert all(type(v) is float for v in history[True]), history[True]
    assert stats["replays"] == 0, stats


def test_a_tensor_learning_rate_runs_eagerly_naming_get_last_lr():
    def make():
        model = nn.Linear(6, 3)
        opt = tl.optim.SGD(model.parameters(), lr=tl.tensor(0.1))
        sched = tl.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)

        def step(x, y):
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
            sched.step()
            return float(sched.get_last_lr()[0])
        return step, model, sched
    stats = _same_as_eager(make)
    assert stats["replays"] == 0 and "StepLR.get_last_lr()" in stats["last_reason"], stats
    with pytest.raises(tl.CompileError, match=r"StepLR\.get_last_lr\(\)"):
        _run(make, True, fullgraph=True)


def test_outside_a_capture_get_last_lr_is_the_schedulers_own_list():
    opt = tl.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1)
    sched = tl.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    sched.step()
    assert sched.get_last_lr() is sched._last_lr and sched.get_last_lr() == [0.05]


def test_the_learning_rate_as_a_tensor_operations_number_is_each_calls_own():
    """A penalty scaled by the current learning rate: the multiplication takes each call's rate."""
    def make():
        model = nn.Linear(6, 3)
        opt = tl.optim.SGD(model.parameters(), lr=0.1)
        sched = tl.optim.lr_scheduler.ExponentialLR(opt, gamma=0.8)

        def step(x, y):
            opt.zero_grad()
            penalty = sched.get_last_lr()[0] * (model.weight ** 2).sum()
            loss = F.cross_entropy(model(x), y) + penalty
            loss.backward()
            opt.step()
            sched.step()
            return loss.item(), penalty.item()
        return step, model, sched
    _replays(_same_as_eager(make))
