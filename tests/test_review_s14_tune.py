"""Review s14 (fine-tuning and training utilities): what tutorial-style fine-tuning and resumable-training scripts
(tests/compat/finetune_freeze_head.py, tests/compat/checkpoint_resume_schedules.py) needed from tinygrad_lite:
SequentialLR, ChainedScheduler and CosineAnnealingWarmRestarts (with checkpoint round trips), MultiStepLR resumed from
a tl.save checkpoint, lerp/lerp_ (the EMA habit), is_floating_point, Module.get_parameter/get_buffer; pinned against
PyTorch where it applies."""
import copy
import warnings

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite.optim.lr_scheduler import (ChainedScheduler, CosineAnnealingWarmRestarts, ExponentialLR,
                                              MultiStepLR, ReduceLROnPlateau, SequentialLR, StepLR)

P0 = np.array([[1.0, -2.0, 0.5], [0.3, 0.7, -0.1]])


def _opt(lib, lr=0.1):
    """An SGD with two parameter groups (the second at a tenth of the learning rate)."""
    a = lib.tensor(P0.copy(), requires_grad=True)
    b = lib.tensor(P0[0].copy(), requires_grad=True)
    return lib.optim.SGD([{"params": [a]}, {"params": [b], "lr": lr / 10}], lr=lr, momentum=0.9)


def _sequential(lib, opt):
    s = lib.optim.lr_scheduler
    return s.SequentialLR(opt, [s.LinearLR(opt, start_factor=0.1, total_iters=3),
                                s.CosineAnnealingWarmRestarts(opt, T_0=4, T_mult=2, eta_min=1e-3),
                                s.MultiStepLR(opt, milestones=[2, 4], gamma=0.5)], milestones=[3, 10])


def _lrs(sched, n, step=None):
    out = []
    for _ in range(n):
        sched.optimizer.step()
        (step or sched.step)()
        out.append(list(map(float, sched.get_last_lr())) + [float(g["lr"]) for g in sched.optimizer.param_groups])
    return out


# ---------------- SequentialLR / ChainedScheduler / CosineAnnealingWarmRestarts: PyTorch's values ----------------
@pytest.mark.oracle
def test_sequential_lr_matches_torch(torch):
    ours, theirs = _sequential(tl, _opt(tl)), _sequential(torch, _opt(torch))
    assert list(map(float, ours.get_last_lr())) == pytest.approx(list(map(float, theirs.get_last_lr())), rel=1e-12)
    np.testing.assert_allclose(_lrs(ours, 20), _lrs(theirs, 20), rtol=1e-12)
    assert ours.last_epoch == theirs.last_epoch


@pytest.mark.oracle
def test_sequential_lr_resumes_from_a_tl_save_checkpoint_as_torch(torch, tmp_path):
    # the checkpoint is taken before the last milestone: after loading, the milestone restarts MultiStepLR with its
    # closed form, which needs its milestones back as a Counter (tl.load gives a dict)
    ours, theirs = _sequential(tl, _opt(tl)), _sequential(torch, _opt(torch))
    _lrs(ours, 6), _lrs(theirs, 6)
    tl.save({"sched": ours.state_dict(), "opt": ours.optimizer.state_dict()}, tmp_path / "ck.safetensors")
    ck = tl.load(tmp_path / "ck.safetensors")
    resumed = _sequential(tl, _opt(tl))
    resumed.optimizer.load_state_dict(ck["opt"])
    resumed.load_state_dict(ck["sched"])
    want = _lrs(theirs, 12)
    np.testing.assert_allclose(_lrs(resumed, 12), want, rtol=1e-12)
    np.testing.assert_allclose(_lrs(ours, 12), want, rtol=1e-12)
    assert isinstance(ours.state_dict()["_schedulers"], list) and "optimizer" not in ours.state_dict()


@pytest.mark.oracle
def test_chained_scheduler_matches_torch(torch):
    def make(lib):
        opt = _opt(lib)
        s = lib.optim.lr_scheduler
        return s.ChainedScheduler([s.MultiStepLR(opt, milestones=[3, 6], gamma=0.5), s.ExponentialLR(opt, 0.9)],
                                  optimizer=opt)
    ours, theirs = make(tl), make(torch)
    assert list(map(float, ours.get_last_lr())) == list(map(float, theirs.get_last_lr()))
    np.testing.assert_allclose(_lrs(ours, 12), _lrs(theirs, 12), rtol=1e-12)
    state = copy.deepcopy(ours.state_dict())
    again = make(tl)
    again.load_state_dict(state)
    assert [s.last_epoch for s in again._schedulers] == [12, 12]


@pytest.mark.oracle
@pytest.mark.parametrize("T_mult", [1, 2, 3])
def test_cosine_warm_restarts_per_epoch_and_fractional_as_torch(torch, T_mult):
    def make(lib):
        return lib.optim.lr_scheduler.CosineAnnealingWarmRestarts(_opt(lib), T_0=3, T_mult=T_mult, eta_min=0.01)
    ours, theirs = make(tl), make(torch)
    np.testing.assert_allclose(_lrs(ours, 15), _lrs(theirs, 15), rtol=1e-12)
    # per batch with a fractional epoch (the documented pattern), then interleaved: step(26) and step()
    for lib_sched in (ours, theirs):
        lib_sched.values = []
        for epoch in range(7):
            for i in range(4):
                lib_sched.step(epoch + i / 4)
                lib_sched.values.append((float(lib_sched.get_last_lr()[0]), lib_sched.T_cur, lib_sched.T_i))
        lib_sched.step(26)
        lib_sched.step()
        lib_sched.values.append((float(lib_sched.get_last_lr()[1]), lib_sched.T_cur, lib_sched.last_epoch))
    np.testing.assert_allclose(ours.values, theirs.values, rtol=1e-12)


def test_composite_scheduler_errors_name_the_scheduler_and_what_was_expected():
    opt, other = _opt(tl), _opt(tl)
    a, b = StepLR(opt, 2), ExponentialLR(opt, 0.9)
    with pytest.raises(ValueError, match="number of schedulers 2 .* milestones to be equal to 2"):
        SequentialLR(opt, [a, b], milestones=[2, 4])
    with pytest.raises(ValueError, match="SequentialLR does not support `ReduceLROnPlateau`.*index 1"):
        SequentialLR(opt, [a, ReduceLROnPlateau(opt)], milestones=[2])
    with pytest.raises(ValueError, match="ChainedScheduler expects all schedulers to belong to the same optimizer.*"
                                         "ExponentialLR at index 1"):
        ChainedScheduler([StepLR(other, 2), ExponentialLR(opt, 0.9)], optimizer=other)
    with pytest.raises(ValueError, match="at least one scheduler"):
        ChainedScheduler([])
    with pytest.raises(ValueError, match="CosineAnnealingWarmRestarts: expected positive integer T_0, but got 2.5"):
        CosineAnnealingWarmRestarts(opt, T_0=2.5)
    with pytest.raises(ValueError, match="T_mult >= 1, but got 0"):
        CosineAnnealingWarmRestarts(opt, T_0=2, T_mult=0)
    with pytest.raises(ValueError, match="non-negative epoch, but got -1"):
        CosineAnnealingWarmRestarts(opt, T_0=2).step(-1)


def test_composites_are_importable_where_torch_users_look():
    import tinygrad_lite.optim.lr_scheduler as sched
    for name in ("SequentialLR", "ChainedScheduler", "CosineAnnealingWarmRestarts"):
        assert name in sched.__all__ and getattr(tl.optim.lr_scheduler, name) is getattr(sched, name)
    assert issubclass(CosineAnnealingWarmRestarts, sched.LRScheduler) and issubclass(SequentialLR, sched.LRScheduler)


# ---------------- MultiStepLR through a tl.save checkpoint ----------------
def test_multistep_lr_loaded_from_tl_save_keeps_its_counter(tmp_path):
    # old: tl.load gave `milestones` back as a dict, and the closed form (step(epoch), or a SequentialLR milestone)
    # failed with AttributeError: 'dict' object has no attribute 'elements'
    opt = _opt(tl)
    s = MultiStepLR(opt, milestones=[2, 4, 4], gamma=0.5)
    for _ in range(3):
        opt.step()
        s.step()
    tl.save(s.state_dict(), tmp_path / "s.safetensors")
    fresh_opt = _opt(tl)
    fresh = MultiStepLR(fresh_opt, milestones=[2, 4, 4], gamma=0.5)
    fresh.load_state_dict(tl.load(tmp_path / "s.safetensors"))
    assert fresh.milestones == s.milestones and type(fresh.milestones) is type(s.milestones)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fresh.step(5)
    assert fresh.get_last_lr() == pytest.approx([0.1 / 8, 0.01 / 8], rel=1e-15)


# ---------------- lerp / lerp_ (EMA: ema_p.lerp_(p, 1 - decay)) ----------------
@pytest.mark.oracle
@pytest.mark.parametrize("weight", [0.0, 0.1, 0.5, 0.9, 1.0, "tensor"])
def test_lerp_values_and_gradients_match_torch(torch, weight):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((1, 4))
    w_arr = rng.uniform(-0.2, 1.2, (3, 1))

    def run(lib):
        ta, tb = lib.tensor(a, requires_grad=True), lib.tensor(b, requires_grad=True)
        tw = lib.tensor(w_arr, requires_grad=True) if weight == "tensor" else weight
        out = lib.lerp(ta, tb, tw)
        assert np.allclose(np.asarray(ta.lerp(tb, tw).detach().numpy()), out.detach().numpy())
        (out * lib.tensor(np.arange(12.0).reshape(3, 4))).sum().backward()
        grads = [ta.grad.numpy(), tb.grad.numpy()] + ([tw.grad.numpy()] if weight == "tensor" else [])
        return out.detach().numpy(), grads

    (ours, og), (theirs, tg) = run(tl), run(torch)
    np.testing.assert_allclose(ours, theirs, rtol=1e-15, atol=1e-15)
    for g, t in zip(og, tg):
        np.testing.assert_allclose(g, t, rtol=1e-13, atol=1e-13)
    if weight == 1.0:
        assert (ours == np.broadcast_to(b, (3, 4))).all()  # the two-sided formula is exact at weight 1


def test_lerp_inplace_is_an_ema_update_through_state_dict_views():
    ema, model = tl.nn.Linear(3, 2).double(), tl.nn.Linear(3, 2).double()
    before = ema.weight.detach().numpy().copy()
    decay = 0.9
    with tl.no_grad():
        for k, v in ema.state_dict().items():  # views: lerp_ on them changes the ema's parameters
            assert v.is_floating_point()
            assert v.lerp_(model.state_dict()[k], 1 - decay) is v
    np.testing.assert_allclose(ema.weight.detach().numpy(), before + (1 - decay) * (model.weight.numpy() - before),
                               rtol=1e-15)
    with pytest.raises(RuntimeError, match="lerp_: a leaf Variable that requires grad"):
        ema.weight.lerp_(model.weight, 0.1)
    with pytest.raises(TypeError, match=r"lerp: end must be a Tensor, got float \(input of shape \(2, 3\)"):
        tl.lerp(ema.weight, 1.0, 0.5)


@pytest.mark.oracle
def test_is_floating_point_as_torch(torch):
    for make in (lambda lib: lib.ones(2), lambda lib: lib.ones(2, dtype=lib.float64),
                 lambda lib: lib.ones(2, dtype=lib.int64), lambda lib: lib.tensor([True]), lambda lib: lib.tensor(3)):
        assert make(tl).is_floating_point() is make(torch).is_floating_point()
        assert tl.is_floating_point(make(tl)) is torch.is_floating_point(make(torch))
    bn = tl.nn.BatchNorm1d(3)
    assert [v.is_floating_point() for v in bn.state_dict().values()] == [True, True, True, True, False]
    with pytest.raises(TypeError, match="is_floating_point.*must be Tensor, not list"):
        tl.is_floating_point([1.0])


# ---------------- Module.get_parameter / get_buffer ----------------
@pytest.mark.oracle
def test_get_parameter_and_get_buffer_as_torch(torch):
    def make(lib):
        return lib.nn.Sequential(lib.nn.Linear(3, 4), lib.nn.BatchNorm1d(4))
    ours, theirs = make(tl), make(torch)
    assert ours.get_parameter("0.weight") is ours[0].weight
    assert ours.get_buffer("1.running_var") is ours[1].running_var
    assert tuple(ours.get_parameter("1.bias").shape) == tuple(theirs.get_parameter("1.bias").shape)
    for lib_model in (ours, theirs):
        with pytest.raises(AttributeError, match="running_mean|no parameter"):
            lib_model.get_parameter("1.running_mean")
        with pytest.raises(AttributeError):
            lib_model.get_buffer("2.x")
    with pytest.raises(AttributeError, match=r"get_parameter: BatchNorm1d has no parameter `running_mean` "
                                             r"\(looking up '1.running_mean'\)"):
        ours.get_parameter("1.running_mean")
