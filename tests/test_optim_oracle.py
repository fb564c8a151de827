"""Optimizers step by step against PyTorch (oracle): parameters and state after each step in float32 and float64,
state dicts loaded across the two libraries both ways, and PyTorch's defaults.
"""
import numpy as np
import pytest

import tinygrad_lite as tl

from _optim_common import param, set_grad


# -- PyTorch oracle ------------------------------------------------------------------------------------------------
ORACLE_CONFIGS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.5, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.1, maximize=True)),
    ("Adam", dict()),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, betas=(0.3, 0.4), amsgrad=True, maximize=True)),
    ("AdamW", dict()),
    ("AdamW", dict(lr=0.01, weight_decay=0.3, amsgrad=True)),
    ("RMSprop", dict()),
    ("RMSprop", dict(lr=0.01, alpha=0.9, momentum=0.9)),
    ("RMSprop", dict(centered=True, weight_decay=0.1, alpha=0.3)),
    ("RMSprop", dict(lr=0.001, momentum=0.5, centered=True, maximize=True)),
    ("Adagrad", dict()),
    ("Adagrad", dict(lr=0.1, lr_decay=0.05, weight_decay=0.1, initial_accumulator_value=0.5, eps=1e-6)),
]
SHAPES = [(3, 4), (5,), ()]


def _oracle_pair(torch, name, kw, dtype, init):
    ours = [param(a, dtype) for a in init]
    theirs = [torch.tensor(a.astype(dtype), requires_grad=True) for a in init]
    kw2 = dict(kw, lr=kw.get("lr", 0.01) * 3)  # a second group with its own lr
    opt = getattr(tl.optim, name)([{"params": ours[:2]}, {"params": ours[2:], **kw2}], **kw)
    topt = getattr(torch.optim, name)([{"params": theirs[:2]}, {"params": theirs[2:], **kw2}], **kw)
    return ours, theirs, opt, topt


def _oracle_steps(torch, ours, theirs, opt, topt, n, rng, tol):
    for step in range(n):
        for i, (p, q) in enumerate(zip(ours, theirs)):
            if step % 3 == 2 and i == 1:  # a parameter without gradient is skipped by both
                p.grad, q.grad = None, None
                continue
            g = rng.standard_normal(p.shape).astype(p.numpy().dtype)
            set_grad(p, g)
            q.grad = torch.tensor(g)
        opt.step()
        topt.step()
        for p, q in zip(ours, theirs):
            np.testing.assert_allclose(p.numpy(), q.detach().numpy(), **tol)


def _torch_state_to_numpy(torch, sd):
    conv = {k: {n: (v.numpy() if isinstance(v, torch.Tensor) else v) for n, v in s.items()}
            for k, s in sd["state"].items()}
    return {"state": conv, "param_groups": sd["param_groups"]}


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,kw", ORACLE_CONFIGS)
def test_steps_and_state_match_pytorch(torch, name, kw, dtype):
    rng = np.random.default_rng(42)
    init = [rng.standard_normal(s) for s in SHAPES]
    ours, theirs, opt, topt = _oracle_pair(torch, name, kw, dtype, init)
    tol = dict(rtol=2e-5, atol=2e-6) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-13)
    _oracle_steps(torch, ours, theirs, opt, topt, 8, rng, tol)
    sd, tsd = opt.state_dict(), topt.state_dict()
    assert len(opt.state) == len(topt.state)  # (plain SGD keeps none: `p in opt.state` is False, as in PyTorch)
    assert sd["state"].keys() == tsd["state"].keys()
    for k, s in sd["state"].items():
        assert s.keys() == tsd["state"][k].keys()
        for n, v in s.items():
            np.testing.assert_allclose(v.numpy(), tsd["state"][k][n].numpy(), **tol)
    for g, tg in zip(sd["param_groups"], tsd["param_groups"]):
        assert {k: v for k, v in tg.items() if k in g} == g


@pytest.mark.oracle
@pytest.mark.parametrize("name,kw", [c for i, c in enumerate(ORACLE_CONFIGS) if i in (2, 6, 8, 12, 14)])
def test_state_dicts_interchange_with_pytorch_both_ways(torch, name, kw):
    rng = np.random.default_rng(7)
    init = [rng.standard_normal(s) for s in SHAPES]
    tol = dict(rtol=1e-11, atol=1e-13)
    ours, theirs, opt, topt = _oracle_pair(torch, name, kw, np.float64, init)
    _oracle_steps(torch, ours, theirs, opt, topt, 4, rng, tol)
    # PyTorch's state (as NumPy) continues in ours, and ours (as torch tensors) continues in PyTorch
    ours2, theirs2, opt2, topt2 = _oracle_pair(torch, name, {}, np.float64, [p.numpy() for p in ours])
    opt2.load_state_dict(_torch_state_to_numpy(torch, topt.state_dict()))
    sd = opt.state_dict()
    state_t = {k: {n: torch.tensor(v.numpy()) for n, v in s.items()} for k, s in sd["state"].items()}
    topt2.load_state_dict({"state": state_t, "param_groups": sd["param_groups"]})
    state = rng.bit_generator.state
    _oracle_steps(torch, ours, theirs2, opt, topt2, 4, rng, tol)
    rng.bit_generator.state = state
    _oracle_steps(torch, ours2, theirs, opt2, topt, 4, rng, tol)


@pytest.mark.oracle
@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad"])
def test_defaults_are_pytorchs(torch, name):
    p = param([1.0])
    ours = getattr(tl.optim, name)([p], **({"lr": 0.1} if name == "SGD" else {})).defaults
    theirs = getattr(torch.optim, name)([torch.zeros(1, requires_grad=True)],
                                        **({"lr": 0.1} if name == "SGD" else {})).defaults
    assert ours == {k: v for k, v in theirs.items() if k in ours}
    assert set(theirs) - set(ours) <= {"foreach", "differentiable", "fused", "capturable"}

