"""Review s15 (schedulers tutorials use): ConstantLR, PolynomialLR, MultiplicativeLR and CyclicLR (with momentum /
beta1 cycling) against PyTorch's lr sequences over many steps with several parameter groups, state_dict round trips
mid-run (directly and through tl.save/tl.load), inside SequentialLR/ChainedScheduler, tensor learning rates, and
errors; ReduceLROnPlateau's remaining corners (tensor lr, tl.save round trip, per-group min_lr, eps); CyclicLR with a
compiled step. (autograd.functional, atleast_*, WeightedRandomSampler: test_review_s15_sched_more.py; nn.init:
test_review_s15_init.py.)"""
import math
import warnings

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite.optim.lr_scheduler import CyclicLR, MultiplicativeLR

P0 = [[1.0, -2.0, 0.5], [0.3, 0.7], [0.2]]


def _opt(lib, opt_name="SGD", tensor_lr=False, **kw):
    """An optimizer with three parameter groups (lrs 0.1, 0.02, 0.005)."""
    ps = [lib.tensor(np.array(v), requires_grad=True) for v in P0]
    lr = (lambda v: lib.tensor(v, dtype=lib.float64)) if tensor_lr else (lambda v: v)
    groups = [{"params": [ps[0]]}, {"params": [ps[1]], "lr": lr(0.02)}, {"params": [ps[2]], "lr": lr(0.005)}]
    return getattr(lib.optim, opt_name)(groups, lr=lr(0.1), **kw)


def _momenta(opt):
    return [float(g["betas"][0]) if "betas" in g else g.get("momentum") for g in opt.param_groups]


def _values(sched):
    opt = sched.optimizer
    return ([float(v) for v in sched.get_last_lr()] + [float(g["lr"]) for g in opt.param_groups]
            + [m for m in _momenta(opt) if m is not None] + [getattr(sched, "last_epoch", -2)])


def _steps(sched, n, metrics=None):
    """n optimizer + scheduler steps (a fixed gradient), the values after each."""
    out = []
    for i in range(n):
        for group in sched.optimizer.param_groups:
            for p in group["params"]:
                p.grad = p.detach() * 0 + (0.5 - 0.1 * i)
        sched.optimizer.step()
        sched.step(*(() if metrics is None else (metrics[i],)))
        out.append(_values(sched))
    return np.array(out, dtype=np.float64)


def _params(opt):
    return np.concatenate([np.asarray(p.detach().numpy()).ravel() for g in opt.param_groups for p in g["params"]])


def _pair(torch, make, opt_name="SGD", opt_kw=None, tensor_lr=False):
    opt_kw = {"momentum": 0.9} if opt_name == "SGD" and opt_kw is None else (opt_kw or {})
    return (make(tl, _opt(tl, opt_name, tensor_lr, **opt_kw)),
            make(torch, _opt(torch, opt_name, tensor_lr, **opt_kw)))


def _sched(name, **kw):
    return lambda lib, opt: getattr(lib.optim.lr_scheduler, name)(opt, **kw)


class Halve:
    """A callable object (its __dict__ is saved in state dicts, as PyTorch's)."""

    def __init__(self, every):
        self.every = every

    def __call__(self, epoch):
        return 0.5 if epoch % self.every == 0 else 1.0


class Decay:
    """A callable custom CyclicLR scale_fn."""

    def __init__(self, rate):
        self.rate = rate

    def __call__(self, x):
        return self.rate ** x


CASES = {
    "constant": _sched("ConstantLR"),
    "constant_half_40": _sched("ConstantLR", factor=0.5, total_iters=40),
    "constant_zero_iters": _sched("ConstantLR", factor=0.25, total_iters=0),
    "poly_default": _sched("PolynomialLR"),
    "poly_50_0.9": _sched("PolynomialLR", total_iters=50, power=0.9),
    "poly_2": _sched("PolynomialLR", total_iters=30, power=2.0),
    "mult_fn": _sched("MultiplicativeLR", lr_lambda=lambda e: 0.97),
    "mult_list": _sched("MultiplicativeLR", lr_lambda=[lambda e: 0.95, Halve(7), lambda e: 1.0 + 0.01 * (e % 3)]),
    "cyclic": _sched("CyclicLR", base_lr=0.01, max_lr=0.1, step_size_up=7),
    "cyclic_groups_down": _sched("CyclicLR", base_lr=[0.01, 0.002, 0.001], max_lr=[0.1, 0.05, 0.004],
                                 step_size_up=5, step_size_down=9, base_momentum=[0.8, 0.7, 0.85],
                                 max_momentum=0.95),
    "cyclic_tri2": _sched("CyclicLR", base_lr=0.001, max_lr=0.1, step_size_up=4, mode="triangular2"),
    "cyclic_exp": _sched("CyclicLR", base_lr=0.001, max_lr=0.1, step_size_up=6, mode="exp_range", gamma=0.97),
    "cyclic_custom_cycle": _sched("CyclicLR", base_lr=0.01, max_lr=0.2, step_size_up=3, step_size_down=5,
                                  scale_fn=Decay(0.8)),
    "cyclic_custom_iter": _sched("CyclicLR", base_lr=0.01, max_lr=0.2, step_size_up=3, scale_fn=lambda x: 0.99 ** x,
                                 scale_mode="iterations"),
    "cyclic_no_momentum": _sched("CyclicLR", base_lr=0.01, max_lr=0.1, step_size_up=5, cycle_momentum=False),
}


# ---------------- every scheduler's lrs (and momenta) over many steps = PyTorch's ----------------
@pytest.mark.oracle
@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("opt_name", ["SGD", "Adam"])
def test_lr_and_momentum_sequences_match_torch(torch, case, opt_name):
    ours, theirs = _pair(torch, CASES[case], opt_name)
    np.testing.assert_allclose(_values(ours), _values(theirs), rtol=1e-12, atol=1e-15)
    a, b = _steps(ours, 90), _steps(theirs, 90)
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(_params(ours.optimizer), _params(theirs.optimizer), rtol=1e-10, atol=1e-12)
    assert len(np.unique(a[:, 0])) > 1 or case.startswith("constant_zero")  # the schedule did move


@pytest.mark.oracle
@pytest.mark.parametrize("case", ["constant_half_40", "poly_50_0.9", "mult_list", "cyclic_groups_down",
                                  "cyclic_exp"])
def test_tensor_learning_rates_are_filled_in_place_as_torch(torch, case):
    ours, theirs = _pair(torch, CASES[case], tensor_lr=True)
    lr_objects = [g["lr"] for g in ours.optimizer.param_groups]
    np.testing.assert_allclose(_steps(ours, 40), _steps(theirs, 40), rtol=1e-12, atol=1e-15)
    assert all(g["lr"] is t for g, t in zip(ours.optimizer.param_groups, lr_objects))
    assert all(isinstance(v, tl.Tensor) and v is not t for v, t in zip(ours.get_last_lr(), lr_objects))


@pytest.mark.oracle
@pytest.mark.parametrize("case", ["constant_half_40", "poly_50_0.9", "mult_list", "cyclic_groups_down",
                                  "cyclic_custom_cycle", "cyclic_exp"])
@pytest.mark.parametrize("via_file", [False, True])
def test_state_dict_round_trip_mid_run_continues_as_torch(torch, tmp_path, case, via_file):
    """PyTorch's resume recipe: a new optimizer and scheduler, then both state dicts loaded."""
    ours, theirs = _pair(torch, CASES[case])
    _steps(ours, 23), _steps(theirs, 23)
    state, opt_state = ours.state_dict(), ours.optimizer.state_dict()
    assert "optimizer" not in state and state["last_epoch"] == 23
    if via_file:
        tl.save({"sched": state, "opt": opt_state}, tmp_path / "ck.safetensors")
        loaded = tl.load(tmp_path / "ck.safetensors")
        state, opt_state = loaded["sched"], loaded["opt"]
    resumed = CASES[case](tl, _opt(tl, momentum=0.9))
    resumed.optimizer.load_state_dict(opt_state)
    resumed.load_state_dict(state)
    want = _steps(theirs, 40)
    np.testing.assert_allclose(_steps(resumed, 40), want, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(_steps(ours, 40), want, rtol=1e-12, atol=1e-15)  # the original run goes on too


def test_state_dicts_keep_callable_objects_and_drop_functions():
    opt = _opt(tl, momentum=0.9)
    mult = MultiplicativeLR(opt, [lambda e: 0.9, Halve(3), Halve(5)])
    assert mult.state_dict()["lr_lambdas"] == [None, {"every": 3}, {"every": 5}]
    other = MultiplicativeLR(_opt(tl, momentum=0.9), [lambda e: 0.9, Halve(1), Halve(1)])
    other.load_state_dict(mult.state_dict())
    assert [getattr(f, "every", None) for f in other.lr_lambdas] == [None, 3, 5]
    cyc = CyclicLR(opt, 0.01, 0.1, step_size_up=4, scale_fn=Decay(0.5))
    state = cyc.state_dict()
    assert state["_scale_fn_custom"] == {"rate": 0.5} and "optimizer" not in state
    fresh = CyclicLR(_opt(tl, momentum=0.9), 0.01, 0.1, step_size_up=4, scale_fn=Decay(0.9))
    fresh.load_state_dict(state)
    assert fresh._scale_fn_custom.rate == 0.5 and state["_scale_fn_custom"] == {"rate": 0.5}  # caller's dict kept
    assert CyclicLR(opt, 0.01, 0.1, scale_fn=lambda x: 1.0).state_dict()["_scale_fn_custom"] is None


# ---------------- inside SequentialLR / ChainedScheduler ----------------
@pytest.mark.oracle
def test_new_schedulers_inside_sequential_lr_as_torch(torch):
    def make(lib, opt):
        s = lib.optim.lr_scheduler
        return s.SequentialLR(opt, [s.ConstantLR(opt, factor=0.2, total_iters=4),
                                    s.PolynomialLR(opt, total_iters=10, power=1.5),
                                    s.MultiplicativeLR(opt, lambda e: 0.9),
                                    s.CyclicLR(opt, 0.01, 0.05, step_size_up=3)], milestones=[5, 12, 20])
    ours, theirs = _pair(torch, make)
    np.testing.assert_allclose(_values(ours), _values(theirs), rtol=1e-12)
    np.testing.assert_allclose(_steps(ours, 35), _steps(theirs, 35), rtol=1e-12, atol=1e-15)


@pytest.mark.oracle
def test_new_schedulers_chained_as_torch(torch):
    def make(lib, opt):
        s = lib.optim.lr_scheduler
        return s.ChainedScheduler([s.ConstantLR(opt, factor=0.5, total_iters=6), s.PolynomialLR(opt, 25, 0.7),
                                   s.MultiplicativeLR(opt, [lambda e: 0.99, lambda e: 0.98, lambda e: 1.0])],
                                  optimizer=opt)
    ours, theirs = _pair(torch, make)
    np.testing.assert_allclose(_values(ours), _values(theirs), rtol=1e-12)
    np.testing.assert_allclose(_steps(ours, 30), _steps(theirs, 30), rtol=1e-12, atol=1e-15)
    state = ours.state_dict()
    assert [s["last_epoch"] for s in state["_schedulers"]] == [30, 30, 30]


@pytest.mark.oracle
def test_closed_forms_with_an_epoch_argument_as_torch(torch):
    for case in ("constant_half_40", "poly_50_0.9"):
        ours, theirs = _pair(torch, CASES[case])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for epoch in (3, 45, 10, 60):
                ours.step(epoch)
                theirs.step(epoch)
                np.testing.assert_allclose(_values(ours), _values(theirs), rtol=1e-12)


# ---------------- CyclicLR corners ----------------
@pytest.mark.oracle
def test_cyclic_lr_sets_momentum_at_construction_and_cycles_adam_betas(torch):
    ours, theirs = _pair(torch, _sched("CyclicLR", base_lr=0.001, max_lr=0.01, step_size_up=2), "Adam",
                         {"betas": (0.5, 0.99)})
    for lib_sched in (ours, theirs):
        g = lib_sched.optimizer.param_groups[0]
        assert tuple(map(float, g["betas"])) == (0.9, 0.99) and g["max_momentum"] == 0.9
        assert g["base_momentum"] == 0.8 and float(g["lr"]) == 0.001
    seq = _steps(ours, 8)
    np.testing.assert_allclose(seq, _steps(theirs, 8), rtol=1e-12)
    np.testing.assert_allclose(seq[:4, 6], [0.85, 0.8, 0.85, 0.9])  # beta1 of group 0: inverse to the lr
    assert ours.optimizer.param_groups[0]["betas"][1] == 0.99


@pytest.mark.oracle
def test_cyclic_lr_errors_as_torch(torch):
    for lib in (tl, torch):
        CL = lib.optim.lr_scheduler.CyclicLR
        with pytest.raises(ValueError, match="optimizer must support momentum or beta1 with `cycle_momentum`"):
            CL(_opt(lib, "Adagrad"), 0.01, 0.1)
        assert CL(_opt(lib, "Adagrad"), 0.01, 0.1, cycle_momentum=False).get_last_lr()[0] == 0.01
        with pytest.raises(ValueError, match="mode is invalid and scale_fn is None"):
            CL(_opt(lib, momentum=0.9), 0.01, 0.1, mode="sawtooth")
        with pytest.raises(ValueError, match="base_lr must have the same length as optimizer.param_groups. base_lr "
                                             "has 2 values, param_groups has 3"):
            CL(_opt(lib, momentum=0.9), [0.01, 0.02], 0.1)
        with pytest.raises(ValueError, match="max_momentum must have the same length"):
            CL(_opt(lib, momentum=0.9), 0.01, 0.1, max_momentum=[0.9])
        with pytest.raises(TypeError, match="is not an Optimizer"):
            CL(None, 0.01, 0.1)
        with pytest.raises(ZeroDivisionError):
            CL(_opt(lib, momentum=0.9), 0.01, 0.1, step_size_up=0, step_size_down=0)
        with pytest.raises(KeyError, match="initial_lr"):
            CL(_opt(lib, momentum=0.9), 0.01, 0.1, last_epoch=4)
    # SGD without momentum still has the 'momentum' key: cycling is allowed, as PyTorch
    sgd = _opt(tl)
    CyclicLR(sgd, 0.01, 0.1)
    assert sgd.param_groups[0]["momentum"] == 0.9


@pytest.mark.oracle
def test_other_errors_as_torch(torch):
    for lib in (tl, torch):
        s = lib.optim.lr_scheduler
        for bad in (1.5, -0.1):
            with pytest.raises(ValueError, match="Constant multiplicative factor expected to be between 0 and 1."):
                s.ConstantLR(_opt(lib), factor=bad)
        with pytest.raises(ValueError, match="Expected 3 lr_lambdas, but got 2"):
            s.MultiplicativeLR(_opt(lib), [lambda e: 1.0] * 2)
        with pytest.raises(TypeError, match="lr_lambda should be a function, but got float"):
            s.MultiplicativeLR(_opt(lib), 0.9)
        with pytest.raises(TypeError, match="is not an Optimizer"):
            s.PolynomialLR(object())
        with pytest.raises(ValueError, match="does not support `ReduceLROnPlateau`"):
            opt = _opt(lib)
            s.ChainedScheduler([s.ConstantLR(opt), s.ReduceLROnPlateau(opt)], optimizer=opt)


def test_new_names_are_exported_where_torch_users_look():
    import tinygrad_lite.optim.lr_scheduler as sched
    for name in ("ConstantLR", "PolynomialLR", "MultiplicativeLR", "CyclicLR", "ReduceLROnPlateau"):
        assert name in sched.__all__ and issubclass(getattr(tl.optim.lr_scheduler, name), sched.LRScheduler)


# ---------------- ReduceLROnPlateau: the corners its existing tests leave ----------------
METRIC = ([1.0 - 0.05 * i for i in range(10)] + [0.5 + 1e-6 * (i % 3) for i in range(30)]
          + [0.4 - 0.02 * i for i in range(10)] + [0.3 + 0.01 * math.sin(i) for i in range(50)])


def _plateau(lib, opt, **kw):
    return lib.optim.lr_scheduler.ReduceLROnPlateau(opt, **kw)


@pytest.mark.oracle
@pytest.mark.parametrize("kw", [
    dict(patience=2, cooldown=3, factor=0.5, min_lr=[0.02, 1e-3, 0.004]),
    dict(mode="max", threshold=0.05, threshold_mode="rel", patience=1, factor=0.2, min_lr=1e-3),
    dict(mode="max", threshold=0.001, threshold_mode="abs", patience=3, cooldown=1),
    dict(patience=0, factor=0.9, eps=5e-4),   # reductions smaller than eps are skipped per group
])
@pytest.mark.parametrize("tensor_lr", [False, True])
def test_reduce_lr_on_plateau_as_torch(torch, kw, tensor_lr):
    metrics = METRIC if kw.get("mode") != "max" else [-m for m in METRIC]
    ours = _plateau(tl, _opt(tl, tensor_lr=tensor_lr, momentum=0.9), **kw)
    theirs = _plateau(torch, _opt(torch, tensor_lr=tensor_lr, momentum=0.9), **kw)
    a, b = _steps(ours, len(metrics), metrics), _steps(theirs, len(metrics), metrics)
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)
    assert (a[-1, :3] < a[0, :3]).any()
    assert (ours.best, ours.num_bad_epochs, ours.cooldown_counter) == (theirs.best, theirs.num_bad_epochs,
                                                                       theirs.cooldown_counter)


@pytest.mark.oracle
def test_reduce_lr_on_plateau_resumes_from_tl_save_as_torch(torch, tmp_path):
    kw = dict(mode="min", patience=2, cooldown=2, factor=0.5, min_lr=[0.0, 1e-3, 0.0])
    ours, theirs = _plateau(tl, _opt(tl, momentum=0.9), **kw), _plateau(torch, _opt(torch, momentum=0.9), **kw)
    _steps(ours, 45, METRIC), _steps(theirs, 45, METRIC)
    tl.save({"sched": ours.state_dict(), "opt": ours.optimizer.state_dict()}, tmp_path / "ck.safetensors")
    ck = tl.load(tmp_path / "ck.safetensors")
    resumed = _plateau(tl, _opt(tl, momentum=0.9), **kw)
    resumed.optimizer.load_state_dict(ck["opt"])
    resumed.load_state_dict(ck["sched"])
    rest = METRIC[45:]
    np.testing.assert_allclose(_steps(resumed, len(rest), rest), _steps(theirs, len(rest), rest), rtol=1e-12)


def test_reduce_lr_on_plateau_initial_state_and_infinite_best_survive_tl_save(tmp_path):
    sched = _plateau(tl, _opt(tl))
    assert sched.get_last_lr() == [0.1, 0.02, 0.005] and sched.last_epoch == 0 and sched.best == math.inf
    tl.save(sched.state_dict(), tmp_path / "s.safetensors")
    fresh = _plateau(tl, _opt(tl), mode="max")
    fresh.load_state_dict(tl.load(tmp_path / "s.safetensors"))
    assert fresh.mode == "min" and fresh.best == math.inf and fresh.mode_worse == math.inf


# ---------------- CyclicLR with a compiled training step ----------------
@pytest.mark.parametrize("opt_name", ["SGD", "Adam"])
def test_cyclic_lr_and_momentum_changes_reach_a_compiled_step(opt_name):
    """The scheduler steps outside the compiled function; each replay must use the new lr and momentum/beta1."""
    def run(compiled):
        tl.manual_seed(0)
        model = tl.nn.Linear(4, 2).double()
        opt = getattr(tl.optim, opt_name)(model.parameters(), lr=0.1,
                                          **({"momentum": 0.9} if opt_name == "SGD" else {}))
        sched = CyclicLR(opt, 0.01, 0.1, step_size_up=3)
        x, y = tl.tensor(np.linspace(-1, 1, 12).reshape(3, 4)), tl.tensor(np.ones((3, 2)))

        def step(x, y):
            opt.zero_grad()
            loss = ((model(x) - y) ** 2).mean()
            loss.backward()
            opt.step()
            return loss.item()
        fn = tl.compile(step) if compiled else step
        losses = []
        for _ in range(12):
            losses.append(fn(x, y))
            sched.step()
        return losses, model.weight.numpy().copy(), getattr(fn, "stats", None)

    (eager, w_eager, _), (comp, w_comp, stats) = run(False), run(True)
    assert comp == eager and (w_comp == w_eager).all()
    assert stats["replays"] >= 10
