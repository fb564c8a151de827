"""MultiStepLR, LambdaLR, OneCycleLR and ReduceLROnPlateau: schedules of 100+ steps against PyTorch's (learning
rates, SGD momentum and Adam beta1 cycling, parameters after the optimizer steps), state_dict round trips, closed
forms, and errors."""
import math

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite.optim import SGD, Adam, Adagrad
from tinygrad_lite.optim.lr_scheduler import MultiStepLR, LambdaLR, OneCycleLR, ReduceLROnPlateau

P0 = [[1.0, -2.0, 0.5], [0.3, 0.7]]


def _ours(opt_name, **kw):
    ps = [tl.tensor(np.array(v), requires_grad=True) for v in P0]
    return getattr(tl.optim, opt_name)([{"params": [ps[0]]}, {"params": [ps[1]], "lr": 0.02}], lr=0.1, **kw), ps


def _theirs(torch, opt_name, **kw):
    ps = [torch.tensor(np.array(v), requires_grad=True) for v in P0]
    return getattr(torch.optim, opt_name)([{"params": [ps[0]]}, {"params": [ps[1]], "lr": 0.02}], lr=0.1, **kw), ps


def _momenta(opt):
    return [g["betas"][0] if "betas" in g else g.get("momentum") for g in opt.param_groups]


def _run(torch, name, kw, opt_name="SGD", opt_kw=None, steps=120, metrics=None):
    """Step both libraries' optimizer and scheduler in lockstep with the same gradients; compare every step."""
    steps = steps if metrics is None else len(metrics)
    opt_kw = opt_kw if opt_kw is not None else {"momentum": 0.9}
    (opt, ps), (topt, tps) = _ours(opt_name, **opt_kw), _theirs(torch, opt_name, **opt_kw)
    sched = getattr(tl.optim.lr_scheduler, name)(opt, **kw)
    tsched = getattr(torch.optim.lr_scheduler, name)(topt, **kw)
    rng = np.random.default_rng(0)
    lrs = []
    for step in range(steps):
        for p, tp in zip(ps, tps):
            g = rng.standard_normal(p.shape)
            p.grad, tp.grad = tl.tensor(g), torch.tensor(g)
        opt.step()
        topt.step()
        if metrics is None:
            sched.step()
            tsched.step()
        else:
            sched.step(metrics[step])
            tsched.step(metrics[step])
        assert sched.get_last_lr() == pytest.approx(tsched.get_last_lr(), rel=1e-12, abs=1e-15), step
        assert [g["lr"] for g in opt.param_groups] == pytest.approx([g["lr"] for g in topt.param_groups], rel=1e-12)
        assert _momenta(opt) == pytest.approx(_momenta(topt), rel=1e-12), step
        assert sched.last_epoch == tsched.last_epoch
        lrs.append(sched.get_last_lr())
    for p, tp in zip(ps, tps):
        np.testing.assert_allclose(p.numpy(), tp.detach().numpy(), rtol=1e-10, atol=1e-12)
    return sched, tsched, np.array(lrs)


@pytest.mark.oracle
@pytest.mark.parametrize("kw", [dict(milestones=[10, 30, 30, 80]), dict(milestones=(5, 50), gamma=0.5)])
def test_multisteplr_matches_torch(torch, kw):
    _, _, lrs = _run(torch, "MultiStepLR", kw)
    assert len(np.unique(lrs[:, 0])) == len(set(kw["milestones"])) + 1  # the lr changes at each milestone only


@pytest.mark.oracle
def test_lambdalr_matches_torch_with_one_function_and_a_list(torch):
    _run(torch, "LambdaLR", dict(lr_lambda=lambda e: 0.95 ** e))
    _, _, lrs = _run(torch, "LambdaLR", dict(lr_lambda=[lambda e: 1 / (1 + e), lambda e: e // 30 + 1]))
    assert lrs[-1, 1] == pytest.approx(0.02 * 5)


@pytest.mark.oracle
@pytest.mark.parametrize("kw", [
    dict(max_lr=0.5, total_steps=120),
    dict(max_lr=[0.5, 0.05], epochs=12, steps_per_epoch=10, anneal_strategy="linear"),
    dict(max_lr=1.0, total_steps=120, three_phase=True, pct_start=0.25, div_factor=10.0, final_div_factor=100.0),
    dict(max_lr=0.3, total_steps=130, base_momentum=[0.8, 0.7], max_momentum=0.99),
    dict(max_lr=0.3, total_steps=120, cycle_momentum=False),
])
@pytest.mark.parametrize("opt_name, opt_kw", [("SGD", {"momentum": 0.9}), ("SGD", {"momentum": 0.9, "nesterov": True}),
                                              ("Adam", {})])
def test_onecyclelr_matches_torch_with_momentum_and_betas(torch, kw, opt_name, opt_kw):
    sched, _, lrs = _run(torch, "OneCycleLR", kw, opt_name, opt_kw, steps=sched_steps(kw) - 1)
    peak = int(np.argmax(lrs[:, 0]))
    assert 0 < peak < len(lrs) - 1 and lrs[-1, 0] < lrs[0, 0]
    if kw.get("cycle_momentum", True):
        m = _momenta(sched.optimizer)[0]
        assert m == pytest.approx(kw.get("max_momentum", 0.95), rel=1e-3)  # back up at the end of the cycle


def sched_steps(kw):
    return kw.get("total_steps") or kw["epochs"] * kw["steps_per_epoch"]


@pytest.mark.oracle
def test_onecyclelr_stepping_past_total_steps_raises_as_torch(torch):
    (opt, _), (topt, _) = _ours("SGD", momentum=0.9), _theirs(torch, "SGD", momentum=0.9)
    sched, tsched = OneCycleLR(opt, 0.1, total_steps=3), torch.optim.lr_scheduler.OneCycleLR(topt, 0.1, total_steps=3)
    for _ in range(3):
        opt.step()
        topt.step()
        sched.step()
        tsched.step()
    assert sched.get_last_lr() == pytest.approx(tsched.get_last_lr())
    with pytest.raises(ValueError, match="Tried to step 4 times. The specified number of total steps is 3"):
        sched.step()


# a scripted validation loss: improves, plateaus (with sub-threshold wiggles), improves, plateaus again
METRIC = ([1.0 - 0.05 * i for i in range(10)] + [0.5 + 1e-6 * (i % 3) for i in range(30)]
          + [0.4 - 0.02 * i for i in range(10)] + [0.3 + 0.01 * math.sin(i) for i in range(60)])


@pytest.mark.oracle
@pytest.mark.parametrize("kw", [
    dict(),
    dict(patience=3, factor=0.5),
    dict(patience=2, cooldown=4, factor=0.3, min_lr=[1e-3, 1e-4]),
    dict(patience=0, threshold=0.01, threshold_mode="abs", min_lr=0.004),
    dict(mode="max", patience=4, factor=0.5),
    dict(mode="max", threshold_mode="abs", threshold=0.0, patience=1, eps=1e-3),
])
def test_reducelronplateau_matches_torch_on_a_scripted_metric(torch, kw):
    metrics = METRIC if kw.get("mode") != "max" else [-m for m in METRIC]
    _, tsched, lrs = _run(torch, "ReduceLROnPlateau", kw, metrics=metrics)
    assert len(lrs) >= 100 and lrs[-1, 0] < lrs[0, 0]  # it did reduce
    sched2 = ReduceLROnPlateau(_ours("SGD")[0], **kw)
    sched2.step(tl.tensor(0.7))  # a one-element Tensor is a metric too
    assert sched2.best == pytest.approx(0.7) and sched2.last_epoch == 1


# ---------------- state_dict and closed forms ----------------
class Warmup:
    """A callable object: LambdaLR saves its __dict__, as PyTorch's."""

    def __init__(self, n):
        self.n = n

    def __call__(self, epoch):
        return min(1.0, (epoch + 1) / self.n)


def _lrs_after(sched, n, metric=None):
    out = []
    for i in range(n):
        sched.optimizer.step()
        sched.step(*(() if metric is None else (metric[i],)))
        out.append(sched.get_last_lr())
    return out


@pytest.mark.parametrize("make, metric", [
    (lambda o: MultiStepLR(o, [3, 9, 14], gamma=0.5), None),
    (lambda o: LambdaLR(o, [Warmup(10), lambda e: 0.9 ** e]), None),
    (lambda o: OneCycleLR(o, [0.4, 0.04], total_steps=40), None),
    (lambda o: OneCycleLR(o, 0.4, total_steps=40, three_phase=True), None),
    (lambda o: ReduceLROnPlateau(o, patience=1, cooldown=1), METRIC[30:]),
])
def test_state_dict_round_trip_continues_the_schedule(make, metric):
    """PyTorch's resume recipe: a fresh optimizer and scheduler, then both state dicts loaded."""
    opt, _ = _ours("SGD", momentum=0.9)
    sched = make(opt)
    _lrs_after(sched, 12, metric)
    state, opt_state = sched.state_dict(), opt.state_dict()
    assert "optimizer" not in state and state["last_epoch"] == 12
    rest = None if metric is None else metric[12:]
    expected = _lrs_after(sched, 12, rest)
    opt2, _ = _ours("SGD", momentum=0.9)
    sched2 = make(opt2)
    opt2.load_state_dict(opt_state)
    sched2.load_state_dict(state)
    assert sched2.get_last_lr() == pytest.approx(state["_last_lr"])
    np.testing.assert_allclose(_lrs_after(sched2, 12, rest), expected, rtol=1e-12)
    assert _momenta(opt2) == pytest.approx(_momenta(opt))


def test_lambdalr_state_dict_keeps_callable_objects_not_functions():
    sched = LambdaLR(_ours("SGD")[0], [Warmup(7), lambda e: 1.0])
    state = sched.state_dict()
    assert state["lr_lambdas"] == [{"n": 7}, None]
    other = LambdaLR(_ours("SGD")[0], [Warmup(3), lambda e: 1.0])
    other.load_state_dict(state)
    assert other.lr_lambdas[0].n == 7 and state["lr_lambdas"] == [{"n": 7}, None]


def test_multisteplr_closed_form_and_schedule():
    opt, _ = _ours("SGD")
    sched = MultiStepLR(opt, [2, 4, 4])
    lrs = [sched.get_last_lr()[0]] + [lr[0] for lr in _lrs_after(sched, 5)]
    assert lrs == pytest.approx([0.1, 0.1, 0.01, 0.01, 1e-4, 1e-4])
    with pytest.warns(UserWarning, match="deprecated"):
        sched.step(3)
    assert sched.get_last_lr() == pytest.approx([0.01, 0.002])


def test_onecyclelr_closed_form_values_and_momentum():
    opt, _ = _ours("SGD", momentum=0.9)
    sched = OneCycleLR(opt, 1.0, total_steps=11, pct_start=0.5, anneal_strategy="linear")
    assert sched.get_last_lr()[0] == pytest.approx(0.04) and opt.param_groups[0]["momentum"] == pytest.approx(0.95)
    lrs, moms = [], []
    for _ in range(10):
        lrs.append(_lrs_after(sched, 1)[0][0])
        moms.append(opt.param_groups[0]["momentum"])
    # phase 1 ends at step 0.5 * 11 - 1 = 4.5, phase 2 at step 10; linear interpolation within each
    assert lrs[3] == pytest.approx(0.04 + 0.96 * 4 / 4.5) and moms[3] == pytest.approx(0.95 - 0.1 * 4 / 4.5)
    assert lrs[5] == pytest.approx(1.0 + (4e-6 - 1.0) * 1.5 / 5.5) and moms[5] == pytest.approx(0.85 + 0.1 * 1.5 / 5.5)
    assert lrs[-1] == pytest.approx(0.04 / 1e4) and moms[-1] == pytest.approx(0.95)
    opt_a = Adam([tl.zeros(1, requires_grad=True)], lr=0.1, betas=(0.9, 0.99))
    OneCycleLR(opt_a, 0.1, total_steps=5)
    assert opt_a.param_groups[0]["betas"] == (0.95, 0.99)


# ---------------- errors ----------------
def test_scheduler_errors_as_torch():
    opt, _ = _ours("SGD")
    with pytest.raises(ValueError, match="Expected 2 lr_lambdas, but got 1"):
        LambdaLR(opt, [lambda e: 1.0])
    with pytest.raises(ValueError, match="Factor should be < 1.0"):
        ReduceLROnPlateau(opt, factor=1.0)
    with pytest.raises(ValueError, match="mode middle is unknown"):
        ReduceLROnPlateau(opt, mode="middle")
    with pytest.raises(ValueError, match="threshold mode pct is unknown"):
        ReduceLROnPlateau(opt, threshold_mode="pct")
    with pytest.raises(ValueError, match="expected 2 min_lrs, got 3"):
        ReduceLROnPlateau(opt, min_lr=[0, 0, 0])
    with pytest.raises(TypeError, match="is not an Optimizer"):
        ReduceLROnPlateau(object())
    with pytest.raises(ValueError, match="You must define either total_steps OR"):
        OneCycleLR(opt, 0.1, epochs=3)
    with pytest.raises(ValueError, match="Expected positive integer total_steps, but got 0"):
        OneCycleLR(opt, 0.1, total_steps=0)
    with pytest.raises(ValueError, match="Expected float between 0 and 1 pct_start"):
        OneCycleLR(opt, 0.1, total_steps=10, pct_start=1)
    with pytest.raises(ValueError, match="anneal_strategy must be one of 'cos' or 'linear'"):
        OneCycleLR(opt, 0.1, total_steps=10, anneal_strategy="exp")
    with pytest.raises(ValueError, match="max_lr must have the same length as optimizer.param_groups"):
        OneCycleLR(opt, [0.1, 0.2, 0.3], total_steps=10)
    with pytest.raises(ValueError, match="optimizer must support momentum or beta1"):
        OneCycleLR(Adagrad([tl.zeros(1, requires_grad=True)]), 0.1, total_steps=10)
    assert OneCycleLR(Adagrad([tl.zeros(1, requires_grad=True)]), 0.1, total_steps=10, cycle_momentum=False)
    with pytest.raises(KeyError, match="initial_lr"):
        MultiStepLR(SGD([tl.zeros(1, requires_grad=True)], lr=0.1), [2], last_epoch=3)
    with pytest.raises(TypeError, match="is not an Optimizer"):
        MultiStepLR(None, [1])
