"""Small parameters updated packed (optim/packed.py): the same numbers, bit for bit, as one update per parameter.

Each test runs two copies of a set of parameters, one with packing (the default) and one with every parameter updated
alone (PACK_MAX = -1), through the same gradients, and compares parameters and state with np.array_equal after every
step: the packed update is only a faster way to make the same calls.
"""
import copy

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite.optim import optimizer as optimizer_module
from tinygrad_lite.optim.packed import Packed

from _compile_common import train_step

CONFIGS = [
    (tl.optim.SGD, dict(lr=0.1, momentum=0.9)),
    (tl.optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
    (tl.optim.SGD, dict(lr=0.1, momentum=0.5, dampening=0.3, maximize=True)),
    (tl.optim.SGD, dict(lr=0.1, weight_decay=0.1)),
    (tl.optim.Adam, dict(lr=0.01)),
    (tl.optim.Adam, dict(lr=0.01, amsgrad=True, weight_decay=0.1, maximize=True)),
    (tl.optim.AdamW, dict(lr=0.01, betas=(0.8, 0.9))),
    (tl.optim.RMSprop, dict(lr=0.01, momentum=0.9, centered=True, weight_decay=0.01)),
    (tl.optim.RMSprop, dict(lr=0.01)),
    (tl.optim.Adagrad, dict(lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1)),
]
IDS = [f"{cls.__name__}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" for cls, kw in CONFIGS]
SHAPES = [(3, 4), (4,), (2, 3, 2), (1,), (5,)]


@pytest.fixture
def alone(monkeypatch):
    """Run the body with every parameter updated alone (the reference)."""
    def switch(on):
        monkeypatch.setattr(optimizer_module, "PACK_MAX", -1 if on else 1 << 14)
    return switch


def _params(seed, dtype=np.float64, shapes=SHAPES):
    rng = np.random.default_rng(seed)
    return [tl.tensor(rng.standard_normal(s).astype(dtype), requires_grad=True) for s in shapes]


def _state_arrays(opt, params):
    return [{k: np.array(v.numpy()) for k, v in sorted(opt.state[p].items())} for p in params]


def _same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        if isinstance(x, dict):
            assert x.keys() == y.keys()
            for k in x:
                assert x[k].dtype == y[k].dtype and np.array_equal(x[k], y[k]), k
        else:
            assert x.dtype == y.dtype and np.array_equal(x, y)


class _Pair:
    """The same parameters and optimizer twice: `packed` (default) and `ref` (each parameter alone)."""

    def __init__(self, alone, make, dtype=np.float64, shapes=SHAPES, groups=None):
        self.alone = alone
        self.packed_params, self.ref_params = _params(0, dtype, shapes), _params(0, dtype, shapes)
        self.packed, self.ref = (make(groups(ps) if groups else ps) for ps in (self.packed_params, self.ref_params))

    def step(self, grads):
        for which, params, opt in ((False, self.packed_params, self.packed), (True, self.ref_params, self.ref)):
            self.alone(which)
            for p, g in zip(params, grads):
                p.grad = None if g is None else tl.tensor(g.astype(p.numpy().dtype))
            opt.step()
        self.alone(False)
        self.check()

    def check(self):
        _same([p.numpy() for p in self.packed_params], [p.numpy() for p in self.ref_params])
        _same(_state_arrays(self.packed, self.packed_params), _state_arrays(self.ref, self.ref_params))


def _grads(rng, shapes=SHAPES, none=()):
    return [None if i in none else rng.standard_normal(s) for i, s in enumerate(shapes)]


@pytest.mark.parametrize("cls,kw", CONFIGS, ids=IDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_packed_steps_equal_one_parameter_at_a_time(alone, cls, kw, dtype):
    pair = _Pair(alone, lambda ps: cls(ps, **kw), dtype)
    rng = np.random.default_rng(1)
    for i in range(25):
        if i == 10:  # a hand-edited learning rate, as a scheduler's
            for opt in (pair.packed, pair.ref):
                opt.param_groups[0]["lr"] *= 0.5
        # steps 12 and 13: one parameter without a gradient, so its step count falls behind the others'
        pair.step(_grads(rng, none={1} if i in (12, 13) else ()))
        if i in (11, 24):  # packed before the skipped steps; after them, step counts differ: one at a time
            counts = "step" in pair.packed.state[pair.packed_params[0]]
            assert packs(pair.packed) == (1 if i == 11 or not counts else 0)


def packs(opt):
    return sum(isinstance(v, Packed) for v in opt._packs.values())


@pytest.mark.parametrize("cls,kw", CONFIGS[:1] + CONFIGS[4:6], ids=IDS[:1] + IDS[4:6])
def test_state_dict_round_trip_and_copies_keep_the_numbers(alone, cls, kw):
    pair = _Pair(alone, lambda ps: cls(ps, **kw))
    rng = np.random.default_rng(2)
    for _ in range(4):
        pair.step(_grads(rng))
    saved = pair.packed.state_dict()
    fresh = cls(pair.packed_params, **kw)
    fresh.load_state_dict(saved)  # (copies: the loaded state is arrays of its own, packed again on the next step)
    pair.packed = fresh
    for _ in range(4):
        pair.step(_grads(rng))
    pair.packed = copy.deepcopy(pair.packed)  # a copy of the optimizer keeps stepping the same parameters' copies...
    pair.packed_params = [p for g in pair.packed.param_groups for p in g["params"]]
    pair.ref = copy.deepcopy(pair.ref)
    pair.ref_params = [p for g in pair.ref.param_groups for p in g["params"]]
    for _ in range(4):
        pair.step(_grads(rng))


def test_groups_with_their_own_settings_and_mixed_dtypes(alone):
    shapes = [(3,), (2, 2), (4,), (3,), (2,)]

    def groups(ps):
        ps[4] = tl.tensor(ps[4].numpy().astype(np.float32), requires_grad=True)  # float32 among float64: alone
        return [{"params": ps[:2], "lr": 0.05}, {"params": ps[2:], "betas": (0.5, 0.6)}]

    pair = _Pair(alone, lambda gs: tl.optim.Adam(gs, lr=0.01), shapes=shapes, groups=groups)
    pair.packed_params = [p for g in pair.packed.param_groups for p in g["params"]]
    pair.ref_params = [p for g in pair.ref.param_groups for p in g["params"]]
    rng = np.random.default_rng(3)
    for _ in range(6):
        pair.step(_grads(rng, shapes))


def _views_of_one_array():
    """Two small parameters viewing one array, and a third of its own."""
    base = np.arange(6.0)
    return [tl.Tensor._wrap(base[:3]), tl.Tensor._wrap(base[1:4]), tl.tensor(np.ones(2))]


def _bias_viewing_a_large_weight():
    """A small parameter viewing a large one's array, before it in the group (the weight's update reads it)."""
    base = np.linspace(-1, 1, 20000)
    return [tl.Tensor._wrap(base[5:10]), tl.tensor(np.ones(3)), tl.Tensor._wrap(base.reshape(100, 200))]


@pytest.mark.parametrize("make", [_views_of_one_array, _bias_viewing_a_large_weight])
def test_parameters_sharing_memory_are_updated_in_turn(alone, make):
    """Each update reads what the one before it wrote, in the group's order, as one at a time does: not packed."""
    out = []
    for reference in (False, True):
        alone(reference)
        ps = make()
        for t in ps:
            t.requires_grad = True
        opt = tl.optim.Adam(ps, lr=0.1)
        for k in range(3):
            for p in ps:
                p.grad = tl.tensor(np.full(p.shape, 1.0 + k))
            opt.step()
        out.append([p.numpy().copy() for p in ps])
        assert packs(opt) == 0
    _same(out[0], out[1])


def test_a_state_tensor_held_by_the_user_stays_the_live_state(alone):
    pair = _Pair(alone, lambda ps: tl.optim.Adam(ps, lr=0.01))
    rng = np.random.default_rng(4)
    pair.step(_grads(rng))
    held = pair.packed.state[pair.packed_params[0]]["exp_avg"]
    step = pair.packed.state[pair.packed_params[0]]["step"]
    for _ in range(3):
        pair.step(_grads(rng))
    assert packs(pair.packed) == 1
    assert np.array_equal(held.numpy(), pair.ref.state[pair.ref_params[0]]["exp_avg"].numpy())
    assert float(step.numpy()) == 4.0


def test_a_state_changed_by_the_user_between_steps_is_used(alone):
    """Writing into a state tensor, or replacing one, between steps: the next step starts from what was written."""
    pair = _Pair(alone, lambda ps: tl.optim.Adam(ps, lr=0.01))
    rng = np.random.default_rng(5)
    pair.step(_grads(rng))
    for opt, ps in ((pair.packed, pair.packed_params), (pair.ref, pair.ref_params)):
        opt.state[ps[0]]["exp_avg"].numpy()[...] = 0.25  # in place
        opt.state[ps[2]]["exp_avg_sq"] = tl.tensor(np.full(SHAPES[2], 0.5))  # replaced
        opt.state[ps[3]]["step"].numpy()[...] = 7  # one parameter's step count changed
    for _ in range(3):
        pair.step(_grads(rng))


def test_a_parameter_given_new_data_between_steps(alone):
    pair = _Pair(alone, lambda ps: tl.optim.Adam(ps, lr=0.01))
    rng = np.random.default_rng(6)
    pair.step(_grads(rng))
    new = rng.standard_normal(SHAPES[1])
    for ps in (pair.packed_params, pair.ref_params):
        ps[1].data = tl.tensor(new.copy())
    for _ in range(3):
        pair.step(_grads(rng))


def test_compiled_training_step_with_adam_replays_packed_bit_for_bit():
    from tinygrad_lite import nn

    def make():
        tl.manual_seed(0)
        model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 8), nn.LayerNorm(8), nn.Linear(8, 3))
        return model, tl.optim.Adam(model.parameters(), lr=0.01, amsgrad=True)

    (m1, o1), (m2, o2) = make(), make()
    eager, compiled = train_step(m1, o1), tl.compile(train_step(m2, o2))
    rng = np.random.default_rng(7)
    for _ in range(20):
        x = tl.tensor(rng.standard_normal((5, 6)).astype(np.float32))
        y = tl.tensor(rng.integers(0, 3, 5))
        assert eager(x, y) == compiled(x, y)
    assert compiled.stats["replays"] >= 18
    _same([p.numpy() for p in m1.parameters()], [p.numpy() for p in m2.parameters()])
    _same(_state_arrays(o1, list(m1.parameters())), _state_arrays(o2, list(m2.parameters())))


def test_plain_sgd_is_not_packed():
    """Two calls a parameter: packing would add a gather and a scatter for nothing."""
    ps = _params(8)
    opt = tl.optim.SGD(ps, lr=0.1)
    for p in ps:
        p.grad = tl.tensor(np.ones(p.shape))
    opt.step()
    assert packs(opt) == 0 and opt._packs == {}
