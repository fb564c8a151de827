"""tl.compile(model) training replays (compile/aot.py) under attack (a helper's adversarial pass): each test
compares a training loop with the compiled model against the same loop with the plain model, bit for bit, over
calls past the interpreted replays — returned trunks with their heads, hooks added after compiling, a global tensor
rebound, in-place changes of outputs, a gradient of another dtype."""
import warnings

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite import nn
import tinygrad_lite.nn.functional as F

CALLS = 12


def _batches(shape, classes=4, n=CALLS, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(shape).astype(np.float32), rng.integers(0, classes, shape[0])) for _ in range(n)]


def _ce(out, y):
    return F.cross_entropy(out, tl.tensor(y))


def _mlp():
    return nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 4))


class _Trunk(nn.Module):
    """Returns two heads AND the trunk activation they are computed from (a common 'return features too')."""

    def __init__(self):
        super().__init__()
        self.l, self.a, self.b = nn.Linear(12, 6), nn.Linear(6, 4), nn.Linear(6, 3)

    def forward(self, x):
        h = self.l(x).tanh()
        return self.a(h), self.b(h), h


class _FeatureAndView(nn.Module):
    def __init__(self):
        super().__init__()
        self.l = nn.Linear(12, 6)

    def forward(self, x):
        h = self.l(x)
        return h, h[:, :3]


def _run(make, step, compiled, batches, lr=0.05):
    """`step(f, model, x, y, i)` returns a list of arrays to compare; then SGD(momentum) steps. Returns the arrays,
    every parameter and .grad, the optimizer state, and the compiled function (or None)."""
    tl.manual_seed(0)
    model = make()
    opt = tl.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    f = tl.compile(model) if compiled else model
    got = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tl.CompileWarning)
        for i, (x, y) in enumerate(batches):
            opt.zero_grad()
            got += [np.asarray(a).copy() for a in step(f, model, x, y, i)]
            opt.step()
    got += [p.numpy().copy() for p in model.parameters()]
    got += [np.array("none") if p.grad is None else p.grad.numpy().copy() for p in model.parameters()]
    for st in opt.state.values():
        got += [np.asarray(v.numpy() if isinstance(v, tl.Tensor) else v).copy() for v in st.values()]
    return got, (f if compiled else None)


def _differs(want, got):
    assert len(want) == len(got)
    return [i for i, (a, b) in enumerate(zip(want, got)) if a.shape != b.shape or not np.array_equal(a, b)]


def _check(make, step, batches=None):
    batches = batches or _batches((8, 12))
    want, _ = _run(make, step, False, batches)
    got, f = _run(make, step, True, batches)
    bad = _differs(want, got)
    assert not bad, f"compiled differs from eager in arrays {bad[:8]} (stats {f.stats})"
    return f


# ---------------------------------------------------------------- wrong answers

def test_a_hook_on_a_returned_trunk_sees_the_gradient_of_its_heads_too():
    """A hook on a returned trunk `h` that the returned heads are computed from sees, as in eager, the gradient
    summed over the heads (such a call runs eagerly: a replay's outputs are apart)."""
    def step(f, model, x, y, i):
        a, b, h = f(tl.tensor(x))
        seen = []
        h.register_hook(lambda g: seen.append(g.numpy().copy()))
        loss = _ce(a, y) + b.sum() + h.mean()
        loss.backward()
        return [loss.numpy()] + seen
    _check(_Trunk, step)


def test_a_rescaling_hook_on_a_returned_trunk_gives_eager_parameter_gradients():
    """`h.register_hook(lambda g: g * 0.5)` on the returned trunk halves every gradient into the layer below it, as
    in eager."""
    def step(f, model, x, y, i):
        a, b, h = f(tl.tensor(x))
        h.register_hook(lambda g: g * 0.5)
        loss = _ce(a, y) + b.sum() + h.mean()
        loss.backward()
        return [loss.numpy(), model.l.weight.grad.numpy()]
    _check(_Trunk, step)


def test_a_hook_on_a_returned_tensor_whose_view_is_also_returned_sees_the_views_gradient():
    """forward returns (h, h[:, :3]): a hook on h sees the gradient of both uses, as in eager."""
    def step(f, model, x, y, i):
        h, v = f(tl.tensor(x))
        seen = []
        h.register_hook(lambda g: seen.append(g.numpy().copy()))
        loss = (h * h).sum() + v.sum() * 3
        loss.backward()
        return [loss.numpy()] + seen
    _check(_FeatureAndView, step)


def test_autograd_grad_wrt_a_returned_trunk_through_a_head_gives_its_gradient():
    """`autograd.grad(ce(a, y), [h], allow_unused=True)` with head a computed from the returned trunk h: eager's dL/dh."""
    def step(f, model, x, y, i):
        a, b, h = f(tl.tensor(x))
        g, = tl.autograd.grad(_ce(a, y), [h], allow_unused=True)
        return [np.array("none") if g is None else g.numpy()]
    _check(_Trunk, step)


def test_a_forward_hook_registered_after_compile_takes_effect():
    """A forward hook registered after some compiled calls takes effect from then on, as in eager (the variant's guard
    sees it; such calls run eagerly)."""
    def step(f, model, x, y, i):
        if i == 4:
            model[2].register_forward_hook(lambda mod, inp, out: out * 0.5)
        loss = _ce(f(tl.tensor(x)), y)
        loss.backward()
        return [loss.numpy()]
    _check(_mlp, step)


def test_a_forward_pre_hook_registered_after_compile_takes_effect():
    """A forward pre-hook registered at call 4 takes effect from then on, as in eager."""
    def step(f, model, x, y, i):
        if i == 4:
            model[0].register_forward_pre_hook(lambda mod, inp: (inp[0] * 2,))
        loss = _ce(f(tl.tensor(x)), y)
        loss.backward()
        return [loss.numpy()]
    _check(_mlp, step)


_LIN = None
_SCALE = None


def _scaled(x):
    return _LIN(x) * _SCALE


def test_a_global_tensor_rebound_between_calls_is_a_guard():
    """`lin(x) * SCALE` with SCALE a module-level tensor rebound to a new tensor at call 5: a guard (by identity), so the
    new tensor is used and gets its .grad, as in eager."""
    def run(compiled):
        global _LIN, _SCALE
        tl.manual_seed(0)
        _LIN = nn.Linear(12, 4)
        _SCALE = tl.tensor(np.ones(4, np.float32), requires_grad=True)
        f = tl.compile(_scaled) if compiled else _scaled
        got = []
        for i, (x, y) in enumerate(_batches((8, 12))):
            if i == 5:
                _SCALE = tl.tensor(np.full(4, 2.0, np.float32), requires_grad=True)
            loss = _ce(f(tl.tensor(x)), y)
            loss.backward()
            got += [loss.numpy().copy(), np.array("none") if _SCALE.grad is None else _SCALE.grad.numpy().copy()]
        return got, f
    want, _ = run(False)
    got, f = run(True)
    bad = _differs(want, got)
    assert not bad, f"compiled differs from eager in arrays {bad[:8]} (stats {f.stats})"


def test_backward_with_a_float64_gradient_on_a_float32_output_raises_a_clear_error():
    """`out.backward(gradient=<float64>)` on a replayed float32 output: its backward was recorded for float32 (eager
    would compute in float64, other roundings), so it raises naming the dtypes instead of an ulp-different .grad."""
    tl.manual_seed(0)
    model = _mlp()
    f = tl.compile(model)
    x = tl.tensor(np.random.default_rng(0).standard_normal((8, 12)).astype(np.float32))
    for _ in range(2):  # the recorded call, then a replay
        out = f(x)
        out.backward(gradient=tl.tensor(np.full((8, 4), 0.3)).float())
    out = f(x)
    with pytest.raises(RuntimeError, match="gradient of dtype float64 for an output of dtype float32"):
        out.backward(gradient=tl.tensor(np.full((8, 4), 0.3, np.float64)))


# ---------------------------------------------------------------- crashes where eager works

def test_autograd_grad_wrt_a_returned_head_and_its_trunk_works():
    """`autograd.grad(ce(a, y) + b.sum(), [a, h])` with h the returned trunk of heads a and b: both gradients, as eager."""
    def step(f, model, x, y, i):
        a, b, h = f(tl.tensor(x))
        ga, gh = tl.autograd.grad(_ce(a, y) + b.sum(), [a, h])
        return [ga.numpy(), gh.numpy()]
    _check(_Trunk, step)


class _HeadAndTrunk(nn.Module):
    def __init__(self):
        super().__init__()
        self.l, self.a = nn.Linear(12, 6), nn.Linear(6, 4)

    def forward(self, x):
        h = self.l(x).tanh()
        return self.a(h), h


def test_an_in_place_op_on_a_head_whose_backward_does_not_read_it_works():
    """forward returns (head, trunk); `head.mul_(2.0)` before the loss works as in eager: only an output whose memory a
    backward reads refuses an in-place change."""
    def step(f, model, x, y, i):
        a, h = f(tl.tensor(x))
        a.mul_(2.0)
        loss = _ce(a, y) + h.sum()
        loss.backward()
        return [loss.numpy()]
    _check(_HeadAndTrunk, step)
