"""Review s16 (second part, see test_review_s16_compile.py): the newer LR schedulers stepped between or inside
compiled calls, init functions, atleast_nd and autograd.functional inside a compiled step, each against its eager
twin bit for bit (values, parameters, .grad, optimizer state and param_groups, the generator, warnings)."""
import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite import nn
from test_review_s16_compile import _f32, _replays, _t, twins

F = nn.functional
S = tl.optim.lr_scheduler


# ---------------- learning-rate schedulers ----------------
SCHEDULERS = {
    "constant": lambda o: S.ConstantLR(o, factor=0.5, total_iters=4),
    "polynomial": lambda o: S.PolynomialLR(o, total_iters=8, power=2.0),
    "multiplicative": lambda o: S.MultiplicativeLR(o, lambda e: 0.9 if e % 2 else 0.95),
    "cyclic": lambda o: S.CyclicLR(o, 0.01, 0.1, step_size_up=3, step_size_down=2),
    "cyclic2": lambda o: S.CyclicLR(o, 0.01, 0.1, step_size_up=2, mode="triangular2"),
    "cyclic_exp": lambda o: S.CyclicLR(o, 0.01, 0.1, step_size_up=2, mode="exp_range", gamma=0.9),
    "sequential": lambda o: S.SequentialLR(o, [S.ConstantLR(o, factor=0.5, total_iters=3),
                                               S.PolynomialLR(o, total_iters=6)], milestones=[3]),
}
OPTIMIZERS = {
    "sgd": lambda p: tl.optim.SGD(p, lr=0.05, momentum=0.9),
    "sgd_nesterov_tensor_lr": lambda p: tl.optim.SGD(p, lr=tl.tensor(0.05), momentum=0.9, nesterov=True),
    "adam": lambda p: tl.optim.Adam(p, lr=0.05),
    "adamw_tensor_lr": lambda p: tl.optim.AdamW(p, lr=tl.tensor(0.05), amsgrad=True),
}


@pytest.mark.parametrize("where", ["between", "inside"])
@pytest.mark.parametrize("opt_name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("sched", sorted(SCHEDULERS))
def test_scheduler_changes_reach_every_replay(sched, opt_name, where):
    """lr (and with CyclicLR momentum / Adam's beta1) changed each call; param_groups are compared too."""
    rng = np.random.default_rng(12)
    data = [(_t(_f32(rng, 6, 5)), _t(rng.integers(0, 3, 6))) for _ in range(12)]

    def build():
        m = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3))
        o = OPTIMIZERS[opt_name](m.parameters())
        return m, o, SCHEDULERS[sched](o)

    def make(m, o, s):
        def step(x, y):
            o.zero_grad()
            loss = F.cross_entropy(m(x), y)
            loss.backward()
            o.step()
            if where == "inside":
                s.step()
            return loss.item()
        return step
    groups = []
    stats = twins(build, make, data, between=lambda objs, i: (where == "between" and objs[2].step(),
                                                               groups.append(dict(objs[1].param_groups[0]))))
    _replays(stats, 11)
    if sched.startswith("cyclic"):  # (the momentum really cycled)
        key = "betas" if "adam" in opt_name else "momentum"
        assert len({str(g[key]) for g in groups}) > 2


# ---------------- init, atleast_nd, autograd.functional ----------------
INITS = {
    "trunc_normal_": lambda w: nn.init.trunc_normal_(w, std=0.5),
    "trunc_normal_far": lambda w: nn.init.trunc_normal_(w, a=2.5, b=4.0),
    "trunc_normal_warns": lambda w: nn.init.trunc_normal_(w, mean=5.0, a=-1.0, b=1.0),
    "orthogonal_": lambda w: nn.init.orthogonal_(w, gain=2.0),
    "sparse_": lambda w: nn.init.sparse_(w, 0.5),
    "constant_view": lambda w: nn.init.constant_(w[:, :2], 7.0),
}


@pytest.mark.parametrize("made", ["empty", "randn", "computed", "parameter"])
@pytest.mark.parametrize("name", sorted(INITS))
def test_init_inside_a_compiled_function_runs_eagerly_with_a_reason(name, made):
    """Bug (fixed): an init of a tensor made during the call (tl.empty, tl.randn, x * 2) was not recorded: a replay
    kept the recorded call's values and skipped the init's random draws (the generator's state diverged too). Now
    every init under a capture makes the call run eagerly (nn/init.py _fill), as one of a parameter already did."""
    rng = np.random.default_rng(13)
    data = [(_t(_f32(rng, 4, 3)),) for _ in range(6)]

    def make(m, _):
        def f(x):
            with tl.no_grad():
                w = {"empty": lambda: tl.empty(3, 5), "randn": lambda: tl.randn(3, 5),
                     "computed": lambda: (x.T @ x)[:, :1] * tl.ones(3, 5), "parameter": lambda: m.weight}[made]()
                INITS[name](w)
            return (x @ w).detach(), w.detach()
        return f
    stats = twins(lambda: (nn.Linear(5, 3, bias=False), None), make, data)
    assert stats["replays"] == 0 and "nn.init." in stats["last_reason"], stats


@pytest.mark.parametrize("fn", [tl.atleast_1d, tl.atleast_2d, tl.atleast_3d])
def test_atleast_nd_replays_bit_for_bit(fn):
    rng = np.random.default_rng(14)
    data = [tuple(_t(rng.standard_normal(s)).requires_grad_() for s in [(), (3,), (2, 3)]) for _ in range(6)]

    def f(a, b, c):
        outs, one, pair = fn(a, b, c), fn(b * 2), fn([a, c])
        total = sum((o * (i + 1)).sum() for i, o in enumerate(outs + pair + (one,)))
        return outs, one, pair, tl.autograd.grad(total, [a, b, c])
    _replays(twins(lambda: (None, None), lambda *_: f, data), 5)


AF = tl.autograd.functional
FUNCTIONAL = {
    "jvp": lambda m, x, v: AF.jvp(lambda z: m(z.reshape(1, 4)).tanh(), x, v, create_graph=True),
    "vjp": lambda m, x, v: AF.vjp(lambda z: m(z.reshape(1, 4)).tanh().sum(), x, create_graph=True),
    "vhp": lambda m, x, v: AF.vhp(lambda z: m(z.reshape(1, 4)).tanh().sum(), x, v, create_graph=True),
    "hvp": lambda m, x, v: AF.hvp(lambda z: m(z.reshape(1, 4)).tanh().sum(), x, v, create_graph=True),
    "hvp_no_graph": lambda m, x, v: AF.hvp(lambda z: (z.exp() * z.tanh()).sum(), x, v),
    "jacobian": lambda m, x, v: (m(x.reshape(1, 4)), AF.jacobian(lambda z: m(z.reshape(1, 4)).tanh() * v, x,
                                                                 create_graph=True)),
    "hessian": lambda m, x, v: (m(x.reshape(1, 4)), AF.hessian(lambda z: (m(z.reshape(1, 4)).tanh() * v).sum(), x,
                                                               create_graph=True)),
}


@pytest.mark.parametrize("name", sorted(FUNCTIONAL))
def test_autograd_functional_in_a_training_step_is_right_or_eager(name):
    """Replays bit for bit: the zeros, ones and unit vectors these build are constants fixed by shapes."""
    rng = np.random.default_rng(15)
    data = [(_t(rng.standard_normal(4)), _t(rng.standard_normal(4))) for _ in range(8)]

    def build():
        m = nn.Linear(4, 1)
        return m, tl.optim.Adam(m.parameters(), lr=0.01)

    def make(m, o):
        def step(x, v):
            o.zero_grad()
            out, extra = FUNCTIONAL[name](m, x, v)
            loss = out.sum() + (extra ** 2).sum()
            if loss.requires_grad:
                loss.backward()
                o.step()
            return loss.detach(), extra.detach()
        return step
    stats = twins(build, make, data)
    assert stats["replays"] == 7 and stats["eager_calls"] == 0, stats
