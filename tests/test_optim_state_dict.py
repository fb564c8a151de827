"""Optimizer state dicts: save/load/continue equals an uninterrupted run, the layout, independent loaded copies,
and mismatches that raise and change nothing.
"""
import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite.optim import SGD, Adam, AdamW, RMSprop, Adagrad

from _optim_common import param, set_grad, run


# -- state dicts (core) ------------------------------------------------------------------------------------------
CONFIGS = [
    (SGD, dict(lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01)),
    (SGD, dict(lr=0.1, momentum=0.9, nesterov=True)),
    (Adam, dict(lr=0.01, amsgrad=True, weight_decay=0.1)),
    (AdamW, dict(lr=0.01, betas=(0.8, 0.99))),
    (RMSprop, dict(lr=0.01, momentum=0.5, centered=True)),
    (Adagrad, dict(lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1)),
]


def _grads(n, shape, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape) for _ in range(n)]


@pytest.mark.parametrize("cls,kw", CONFIGS)
def test_state_dict_save_load_continue_equals_uninterrupted(tmp_path, cls, kw):
    grads = _grads(6, (2, 3))
    init = np.random.default_rng(1).standard_normal((2, 3))
    full, _ = run(cls, init, grads, **kw)

    p = param(init)
    opt = cls([p], **kw)
    for g in grads[:3]:
        set_grad(p, g)
        opt.step()
    tl.save({"p": p, "optim": opt.state_dict()}, tmp_path / "ckpt.safetensors")
    saved = tl.load(tmp_path / "ckpt.safetensors")
    p2 = param(saved["p"].numpy().copy())
    opt2 = cls([p2], lr=123.0)  # hyperparameters come back from the state dict
    opt2.load_state_dict(saved["optim"])
    assert opt2.param_groups[0]["lr"] == kw["lr"]
    for g in grads[3:]:
        set_grad(p2, g)
        opt2.step()
    np.testing.assert_array_equal(p2.numpy(), full)


def test_state_dict_layout_and_independent_loaded_copies():
    a, b = param([1.0, 2.0]), param([[3.0]])
    opt = Adam([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1)
    set_grad(a, [1.0, 1.0])
    set_grad(b, [[1.0]])
    opt.step()
    sd = opt.state_dict()
    assert set(sd) == {"state", "param_groups"}
    assert [g["params"] for g in sd["param_groups"]] == [[0], [1]]
    assert set(sd["state"][1]) == {"step", "exp_avg", "exp_avg_sq"}
    assert isinstance(sd["state"][0]["exp_avg"], tl.Tensor)
    a2, b2 = param([1.0, 2.0]), param([[3.0]])
    opt2 = Adam([{"params": [a2]}, {"params": [b2]}])
    opt2.load_state_dict(sd)
    assert opt2.param_groups[1]["lr"] == 0.5 and opt2.param_groups[1]["params"] == [b2]
    assert opt2.state[a2]["exp_avg"].numpy() is not opt.state[a]["exp_avg"].numpy()


def test_load_state_dict_mismatch_raises_and_changes_nothing():
    a, b = param([1.0, 2.0]), param([3.0])
    opt = SGD([a, b], lr=0.1, momentum=0.9)
    for p in (a, b):
        set_grad(p, np.ones(p.shape))
    opt.step()
    sd = opt.state_dict()
    c = param([0.0, 0.0, 0.0])
    other = SGD([c], lr=0.7, momentum=0.9)
    with pytest.raises(ValueError, match="doesn't match the size"):
        other.load_state_dict(sd)
    d, e = param([0.0, 0.0]), param([0.0, 0.0])  # second parameter has the wrong shape
    target = SGD([d, e], lr=0.7, momentum=0.9)
    with pytest.raises(ValueError, match="shape"):
        target.load_state_dict(sd)
    assert target.param_groups[0]["lr"] == 0.7 and len(target.state) == 0
    with pytest.raises(ValueError, match="number of parameter groups"):
        SGD([{"params": [d]}, {"params": [e]}], lr=0.1).load_state_dict(sd)

