"""Review of 20e1f41..32773a3 (fixed slots read by their planned buffer's name, gradient arrays recycled by the generated
code when nothing holds them, host masks planned like a primitive's, nn.LSTM's sigmoid over the i,f and o blocks
only): every test runs a compiled function and the same function eagerly, side by side (_review_s12_common.py).
The review found no defect: these are regression tests for the scenarios it checked.
Here: arrays the user keeps (gradients, views of them, results in or next to planned buffers) are never written by
a later replay."""
import weakref

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite.compile.plan import INTERPRETED_REPLAYS

from _compile_common import train_step as _train_step
from _review_s12_common import CALLS, _mlp, _np, _replayed, _same, _side_by_side, _state

nn, F = tl.nn, tl.nn.functional


# ===================== arrays the user keeps are never written by a later replay =====================

HOLDERS = {
    "grad-tensor": lambda p: p.grad,
    "grad-numpy": lambda p: p.grad.numpy(),
    "grad-row-view": lambda p: p.grad[0],
    "grad-transpose": lambda p: p.grad.T,
    "numpy-row-view": lambda p: p.grad.numpy()[0],
    "numpy-transpose": lambda p: p.grad.numpy().T,
    "numpy-base": lambda p: p.grad.numpy() if p.grad.numpy().base is None else p.grad.numpy().base,
    "memoryview": lambda p: memoryview(p.grad.numpy()),
    "detach": lambda p: p.grad.detach(),
    "reshape": lambda p: p.grad.reshape(-1),
    "np-asarray": lambda p: np.asarray(p.grad),
}


@pytest.mark.parametrize("holder", list(HOLDERS), ids=list(HOLDERS))
def test_a_kept_gradient_or_a_view_of_it_is_never_recycled(holder):
    """Only one kind of holder at a time (so no other reference keeps the array alive by accident), kept on calls
    of the generated code; zero_grad drops .grad, so only the user's holder keeps the array."""
    get = HOLDERS[holder]

    def after(model, opt, i, out, kept):
        if i in (INTERPRETED_REPLAYS + 2, INTERPRETED_REPLAYS + 5, INTERPRETED_REPLAYS + 9):
            for p in model.parameters():
                h = get(p)
                kept.append((h, np.array(_np(h)).copy()))
    diffs, changed, stats = _side_by_side(_train_step, after)
    assert diffs == [] and changed == [] and _replayed(stats), (diffs, changed, stats)


def test_a_kept_gradient_held_through_torch_from_numpy_is_never_recycled(torch):

    def after(model, opt, i, out, kept):
        if i >= INTERPRETED_REPLAYS + 2:
            for p in model.parameters():
                t = torch.from_numpy(p.grad.numpy())
                kept.append((t, t.numpy().copy()))
    diffs, changed, stats = _side_by_side(_train_step, after)
    assert diffs == [] and changed == [] and _replayed(stats)


def test_all_past_gradients_kept_in_a_list_keep_their_values():
    def after(model, opt, i, out, kept):
        for p in model.parameters():
            kept.append((p.grad, p.grad.numpy().copy()))
            kept.append((p.grad.numpy(), p.grad.numpy().copy()))
    diffs, changed, stats = _side_by_side(_train_step, after)
    assert diffs == [] and changed == [] and _replayed(stats)


class _Box:
    pass


def test_gradients_returned_or_stored_on_an_object_by_the_function_keep_their_values():
    box = _Box()

    def make(model, opt):
        def step(x, y):
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            box.g = model[0].weight.grad
            gs = [p.grad for p in model.parameters()]
            opt.step()
            return (loss.item(), *gs)
        return step

    def after(model, opt, i, out, kept):
        kept.extend((t, t.numpy().copy()) for t in out[1:])
        kept.append((box.g, box.g.numpy().copy()))
    diffs, changed, stats = _side_by_side(make, after)
    # (`box.g = ...` is an assignment a replay would not run: box.g stayed the first call's gradient; since session
    # 22 the call runs eagerly, naming it)
    assert diffs == [] and changed == [] and stats["replays"] == 0 and "'box.g'" in stats["last_reason"], stats


def test_autograd_grad_results_returned_and_dropped():
    def make(model, opt):
        def step(x, y):
            loss = F.cross_entropy(model(x), y)
            gs = tl.autograd.grad(loss, list(model.parameters()))
            with tl.no_grad():
                for p, g in zip(model.parameters(), gs):
                    p.data = p.data - 0.1 * g.data
            return (loss.item(), *gs)
        return step

    def after(model, opt, i, out, kept):
        if i % 2:
            kept.extend((t, t.numpy().copy()) for t in out[1:])
    diffs, changed, stats = _side_by_side(make, after)
    assert diffs == [] and changed == [] and _replayed(stats)


def test_a_user_optimizer_that_keeps_the_last_gradients():
    class KeepLast:
        def __init__(self, params):
            self.params, self.state, self.last = list(params), {}, None

        def zero_grad(self):
            for p in self.params:
                p.grad = None

        def step(self):
            self.last = [p.grad for p in self.params]
            with tl.no_grad():
                for p in self.params:
                    p.data = p.data - 0.1 * p.grad.data

    def after(model, opt, i, out, kept):
        kept.extend((g, g.numpy().copy()) for g in opt.last)
    diffs, changed, stats = _side_by_side(_train_step, after, opt_fn=lambda m: KeepLast(m.parameters()))
    # (`self.last = ...` in the user's optimizer: a replay would leave the first call's gradients there; since session
    # 22 the call runs eagerly, naming it)
    assert diffs == [] and changed == [] and stats["replays"] == 0 and "'self.last'" in stats["last_reason"], stats


def test_a_gradient_hook_added_after_recording_that_keeps_gradients():
    store = []

    def after(model, opt, i, out, kept):
        if i == INTERPRETED_REPLAYS + 3:
            for p in model.parameters():
                p.register_hook(lambda g: store.append((g, g.numpy().copy())))
        kept.extend(store)
        store.clear()
    diffs, changed, stats = _side_by_side(_train_step, after)
    assert diffs == [] and changed == []
    assert stats["replays"] >= INTERPRETED_REPLAYS + 3  # (a hooked leaf then runs eagerly: capture refuses hooks)


def test_lbfgs_with_a_compiled_closure():
    def run(compiled, ls):
        model = _mlp()
        opt = tl.optim.LBFGS(model.parameters(), lr=0.5, max_iter=4, history_size=3, line_search_fn=ls)

        def closure(x, y):
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            return loss.detach()
        c = tl.compile(closure) if compiled else closure
        rng = np.random.default_rng(0)
        losses = []
        for _ in range(8):
            x, y = tl.tensor(rng.standard_normal((8, 6)).astype(np.float32)), tl.tensor(rng.integers(0, 4, 8))
            losses.append(float(opt.step(lambda: c(x, y))))
        return losses, _state(model, None), getattr(c, "stats", None)
    for ls in (None, "strong_wolfe"):
        (le, se, _), (lc, sc, stats) = run(False, ls), run(True, ls)
        assert le == lc and all(_same(a, b) for a, b in zip(se, sc)), ls
        assert stats["replays"] > INTERPRETED_REPLAYS + 8 and stats["eager_calls"] == 0, stats


# ===================== results in (or next to) planned buffers =====================

def test_returned_activations_masks_and_signs_are_never_overwritten():
    def make(model, opt):
        def step(x, y):
            opt.zero_grad()
            h = model[1](model[0](x))
            out = model[2](h)
            loss = F.cross_entropy(out, y)
            loss.backward()
            opt.step()
            out = out.detach()
            return loss.item(), h.detach(), (h * 2).detach(), out > 0, out.sign(), out.abs(), (x * 3).sign(), x.relu()
        return step

    def after(model, opt, i, out, kept):
        kept.extend((t, t.numpy().copy()) for t in out[1:])
    diffs, changed, stats = _side_by_side(make, after)
    assert diffs == [] and changed == [] and _replayed(stats), (diffs, changed, stats)


def test_a_fresh_leaf_gradient_returned_every_call():
    def fn(x):
        z = x.detach().requires_grad_()
        loss = ((z * 1.5).relu() ** 2).sum() + (z.abs() * 0.5).sum()
        loss.backward()
        return loss.item(), z.grad
    compiled = tl.compile(fn)
    rng = np.random.default_rng(0)
    kept = []
    for i in range(CALLS):
        x = tl.tensor(rng.standard_normal((5, 6)))
        got, want = compiled(x), fn(x)
        assert got[0] == want[0] and np.array_equal(got[1].numpy(), want[1].numpy()), i
        kept.append((got[1], got[1].numpy().copy()))
    assert all(np.array_equal(t.numpy(), c) for t, c in kept)
    assert _replayed(compiled.stats)


def test_recycling_happens_only_once_the_previous_array_is_unreachable():
    """The point of `_recycled`: with zero_grad every call and nothing kept, the generated code reuses one array; a
    weak reference to a kept array's base stays alive and unchanged."""
    model = _mlp()
    opt = tl.optim.SGD(model.parameters(), lr=0.1)
    f = tl.compile(_train_step(model, opt))
    rng = np.random.default_rng(3)
    bases = []
    for i in range(CALLS):
        f(tl.tensor(rng.standard_normal((8, 6)).astype(np.float32)), tl.tensor(rng.integers(0, 4, 8)))
        g = model[0].weight.grad.numpy()
        bases.append(weakref.ref(g if g.base is None else g.base))
        del g
    late = [r() for r in bases[INTERPRETED_REPLAYS + 3:]]
    assert late[0] is not None and all(a is late[0] for a in late)  # one array, reused
