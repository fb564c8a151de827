"""Review s14 of torch.compile in everyday PyTorch 2.x code (the scripts tests/compat/compiled_*.py): that
tl.compile really replays in them (not silently eager, not re-recording every call), and the tensor learning rate
of PyTorch's "compiled optimizer with an LR scheduler" recipe (`lr=torch.tensor(0.01)`, a scheduler filling it in
place, LinearLR), against torch."""
import runpy

import numpy as np
import pytest

import tinygrad_lite as tl
from test_compat_scripts import COMPAT, translate

nn = tl.nn


@pytest.fixture
def script_globals(tmp_path, monkeypatch, capsys):
    """Run a compat script translated to tinygrad_lite in this process; its globals, for the compiled steps' stats."""
    monkeypatch.chdir(tmp_path)
    dtype = tl.get_default_dtype()

    def run(name):
        path = tmp_path / f"{name}_tl.py"
        path.write_text(translate((COMPAT / f"{name}.py").read_text()))
        monkeypatch.setenv("COMPAT_INIT", str(tmp_path / f"{name}_init.npz"))
        try:
            return runpy.run_path(str(path), run_name="__main__")
        finally:
            tl.set_default_dtype(dtype)
            capsys.readouterr()
    return run


def _replays_after_warmup(stats, calls, variants):
    """Every call is a replay except one recording per variant, and none ran eagerly."""
    assert stats["eager_calls"] == 0 and stats["last_reason"] is None, stats
    assert stats["variants"] == variants and stats["traces"] == variants, stats
    assert stats["replays"] == calls - variants, stats


def test_compiled_model_loop_replays(script_globals):
    g = script_globals("compiled_model_loop")
    # train batches of 32 and 4, validation batches of 20 and 5 under eval/no_grad: four variants, 6 epochs of 7 calls
    _replays_after_warmup(g["model"].stats, calls=6 * 7, variants=4)
    _replays_after_warmup(g["fresh"].stats, calls=3, variants=2)  # the reloaded compiled model: 20, 20, 5


def test_compiled_train_step_replays(script_globals):
    g = script_globals("compiled_train_step")
    # OneCycleLR changes lr and momentum every call, clip_grad_norm_ inside: still one variant per batch shape
    _replays_after_warmup(g["train_step"].stats, calls=25, variants=2)
    _replays_after_warmup(g["train_step2"].stats, calls=20, variants=2)  # returns loss.item()
    _replays_after_warmup(g["eval_step"].stats, calls=9, variants=2)  # one variant per model


def test_compiled_tensor_lr_step_replays(script_globals):
    g = script_globals("compiled_optimizer_tensor_lr")
    _replays_after_warmup(g["train_step"].stats, calls=20, variants=2)  # batches of 12 and of 4
    lr = g["opt"].param_groups[0]["lr"]
    assert isinstance(lr, tl.Tensor) and float(lr) == pytest.approx(0.05, rel=1e-12)


# ---------------- tensor learning rates ----------------

def _adam_linear_lr(lib, compiled, lr_dtype, steps=12):
    rng = np.random.default_rng(0)
    w = lib.tensor(rng.standard_normal((3, 2)), requires_grad=True)
    x, y = lib.tensor(rng.standard_normal((5, 3))), lib.tensor(rng.standard_normal((5, 2)))
    lr = lib.tensor(0.03, dtype=lr_dtype)
    opt = lib.optim.Adam([w], lr=lr)
    sched = lib.optim.lr_scheduler.LinearLR(opt, start_factor=0.25, total_iters=6)

    def step(x, y):
        opt.zero_grad()
        loss = ((x @ w - y) ** 2).mean()
        loss.backward()
        opt.step()
        sched.step()
        return loss.detach()
    if compiled:
        step = lib.compile(step)
    losses = [step(x, y).item() for _ in range(steps)]
    assert opt.param_groups[0]["lr"] is lr  # filled in place, never replaced
    last = sched.get_last_lr()[0]
    assert last is not lr and float(last) == float(lr)  # a copy, as PyTorch's
    return losses, w.detach().numpy().copy(), float(lr), step


@pytest.mark.parametrize("lr_dtype", ["float32", "float64"])
def test_tensor_lr_adam_linear_lr_as_torch(torch, lr_dtype):
    want = _adam_linear_lr(torch, False, getattr(torch, lr_dtype))
    for compiled in (False, True):
        got = _adam_linear_lr(tl, compiled, getattr(tl, lr_dtype))
        # a float32 lr tensor rounds the scheduler's values and Adam's step size to float32, as in PyTorch
        np.testing.assert_allclose(got[0], want[0], rtol=1e-13, atol=0)
        np.testing.assert_allclose(got[1], want[1], rtol=1e-13, atol=0)
        assert got[2] == want[2]
    assert got[3].stats["replays"] == 12 - 1 and got[3].stats["eager_calls"] == 0, got[3].stats


def test_tensor_lr_sgd_step_lr_as_torch(torch):
    def run(lib):
        w = lib.tensor([1.0, -2.0, 0.5], dtype=lib.float64, requires_grad=True)
        opt = lib.optim.SGD([w], lr=lib.tensor(0.1), momentum=0.9)
        sched = lib.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
        out = []
        for _ in range(7):
            opt.zero_grad()
            (w ** 4).sum().backward()
            opt.step()
            sched.step()
            out.append(float(opt.param_groups[0]["lr"]))
        return out, w.detach().numpy()
    (want_lr, want_w), (got_lr, got_w) = run(torch), run(tl)
    assert got_lr == want_lr
    np.testing.assert_allclose(got_w, want_w, rtol=1e-14)


def test_linear_lr_float_values_as_torch(torch):
    def run(lib):
        opt = lib.optim.SGD([lib.zeros(2, requires_grad=True)], lr=0.2)
        sched = lib.optim.lr_scheduler.LinearLR(opt, start_factor=0.1, end_factor=0.9, total_iters=4)
        out = [sched.get_last_lr()[0]]
        for _ in range(7):
            opt.step()
            sched.step()
            out.append(sched.get_last_lr()[0])
        return out
    np.testing.assert_allclose(run(tl), run(torch), rtol=1e-15)


def test_tensor_lr_must_have_one_element():
    with pytest.raises(ValueError, match=r"Tensor lr must be 1-element, got shape \(2,\)"):
        tl.optim.Adam([tl.zeros(2, requires_grad=True)], lr=tl.tensor([0.1, 0.2]))
    with pytest.raises(ValueError, match="Invalid learning rate: -0.1"):
        tl.optim.SGD([tl.zeros(2, requires_grad=True)], lr=tl.tensor(-0.1))


def test_linear_lr_rejects_bad_factors():
    opt = tl.optim.SGD([tl.zeros(2, requires_grad=True)], lr=0.1)
    with pytest.raises(ValueError, match="Starting multiplicative factor"):
        tl.optim.lr_scheduler.LinearLR(opt, start_factor=0)
    with pytest.raises(ValueError, match="Ending multiplicative factor"):
        tl.optim.lr_scheduler.LinearLR(opt, end_factor=1.5)
