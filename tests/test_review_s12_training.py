"""Review of 20e1f41..32773a3 (fixed slots read by their planned buffer's name, gradient arrays recycled by the generated
code when nothing holds them, host masks planned like a primitive's, nn.LSTM's sigmoid over the i,f and o blocks
only): every test runs a compiled function and the same function eagerly, side by side (_review_s12_common.py).
The review found no defect: these are regression tests for the scenarios it checked.
Here: training steps: gradients accumulated, cleared or set by hand between calls; value-dependent branches, batch
size variants and threads; every optimizer and dtype over the generated code; a compiled module with backward
outside."""
import threading

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite.compile.plan import INTERPRETED_REPLAYS
from tinygrad_lite.nn.utils import clip_grad_norm_

from _compile_common import train_step as _train_step
from _review_s12_common import CALLS, _mlp, _replayed, _same, _side_by_side, _state

nn, F = tl.nn, tl.nn.functional


# ===================== gradients accumulated, cleared or set by hand =====================

def _backward_only(model, opt):
    def step(x, y):
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        return loss.item()
    return step


def test_accumulation_without_zero_grad():
    def after(model, opt, i, out, kept):
        if i % 3 == 2:
            opt.step()
            opt.zero_grad()
    diffs, changed, stats = _side_by_side(_backward_only, after, opt_fn=lambda m: tl.optim.SGD(m.parameters(), lr=0.1,
                                                                                                 momentum=0.9))
    assert diffs == [] and stats["eager_calls"] == 0, (diffs, stats)


def test_zero_grad_keeping_the_tensors():
    def make(model, opt):
        def step(x, y):
            opt.zero_grad(set_to_none=False)
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            return loss.item()
        return step

    def after(model, opt, i, out, kept):  # (zero_grad zeroes these in place, eagerly too: the same ones must change)
        if i >= INTERPRETED_REPLAYS:
            kept.extend((p.grad.numpy(), p.grad.numpy().copy()) for p in model.parameters())
            kept.append((model[0].weight.grad.T, model[0].weight.grad.T.numpy().copy()))
    diffs, changed, stats = _side_by_side(make, after)
    assert diffs == [] and changed == [] and stats["eager_calls"] == 0


@pytest.mark.parametrize("how", ["none", "set", "keep-then-none"])
def test_gradients_cleared_or_set_by_hand_between_calls(how):
    def after(model, opt, i, out, kept):
        opt.step()
        for p in model.parameters():
            if how == "keep-then-none":
                kept.append((p.grad, p.grad.numpy().copy()))
            p.grad = tl.tensor(np.full(p.shape, 0.5, np.float32)) if how == "set" else None
    diffs, changed, stats = _side_by_side(_backward_only, after)
    assert diffs == [] and changed == [] and stats["eager_calls"] == 0, (diffs, stats)


def test_in_place_changes_of_the_delivered_gradients_and_clipping():
    def make(model, opt):
        def step(x, y):
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            norm = clip_grad_norm_(model.parameters(), 0.5)
            with tl.no_grad():
                for p in model.parameters():
                    p.grad.mul_(0.5)
                    p.grad.add_(p * 0.01)
            opt.step()
            return loss.item(), norm.detach() if isinstance(norm, tl.Tensor) else norm
        return step
    diffs, changed, stats = _side_by_side(make)
    assert diffs == [] and _replayed(stats), (diffs, stats)


# ===================== guards, variants, threads =====================

def test_a_value_dependent_branch_failing_between_replays():
    def make(model, opt):
        def step(x, y):
            opt.zero_grad()
            out = model(x)
            if (x.sum() > 0).item():
                out = out.relu()
            loss = F.cross_entropy(out, y)
            loss.backward()
            opt.step()
            return loss.item()
        return step

    def after(model, opt, i, out, kept):
        kept.extend((p.grad, p.grad.numpy().copy()) for p in model.parameters())
    diffs, changed, stats = _side_by_side(make, after, calls=40)
    assert diffs == [] and changed == [] and stats["traces"] == 2 and stats["eager_calls"] == 0, stats


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_alternating_batch_sizes_each_variant_recycles_its_own_arrays(dtype):
    def after(model, opt, i, out, kept):
        if i % 4 == 1:
            kept.extend((p.grad.numpy(), p.grad.numpy().copy()) for p in model.parameters())
    diffs, changed, stats = _side_by_side(_train_step, after, calls=45, dtype=dtype, batch=lambda i: (8, 5, 3)[i % 3],
                                          opt_fn=lambda m: tl.optim.Adam(m.parameters(), lr=0.01))
    assert diffs == [] and changed == [] and stats["traces"] == 3 and stats["eager_calls"] == 0, stats


def test_threads_calling_one_compiled_gradient_function():
    model = _mlp()

    def fn(x):
        loss = (model(x) ** 2).mean()
        return (loss.item(), *tl.autograd.grad(loss, list(model.parameters())))
    compiled = tl.compile(fn)
    xs = [tl.tensor(np.random.default_rng(i).standard_normal((8, 6)).astype(np.float32)) for i in range(45)]
    want, got = [fn(x) for x in xs], [None] * len(xs)

    def worker(k):
        for i in range(k, len(xs), 3):
            got[i] = compiled(xs[i])
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for w, g in zip(want, got):  # (all results checked at the end: none was overwritten by a later call)
        assert w[0] == g[0] and all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(w[1:], g[1:]))
    assert compiled.stats["eager_calls"] == 0


# ===================== optimizers, dtypes, compiled modules =====================

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,kw", [("SGD", dict(lr=0.1, momentum=0.9)), ("Adam", dict(lr=0.01)),
                                     ("RMSprop", dict(lr=0.01, centered=True)), ("Adagrad", dict(lr=0.1))])
def test_optimizers_replay_bit_identically_over_the_generated_code(name, kw, dtype):
    diffs, _, stats = _side_by_side(_train_step, dtype=dtype,
                                    opt_fn=lambda m: getattr(tl.optim, name)(m.parameters(), **kw))
    assert diffs == [] and _replayed(stats), (diffs, stats)


@pytest.mark.parametrize("zero", [True, False], ids=["zero_grad", "accumulate"])
def test_a_compiled_module_with_backward_outside_keeps_held_gradients(zero):
    def run(compiled):
        model = _mlp()
        opt = tl.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        fm = tl.compile(model) if compiled else model
        rng = np.random.default_rng(2)
        trace, kept = [], []
        for i in range(CALLS):
            x, y = tl.tensor(rng.standard_normal((8, 6)).astype(np.float32)), tl.tensor(rng.integers(0, 4, 8))
            if zero:
                opt.zero_grad()
            loss = F.cross_entropy(fm(x), y)
            loss.backward()
            kept.extend((p.grad.numpy(), p.grad.numpy().copy()) for p in model.parameters())
            if zero or i % 3 == 2:
                opt.step()
            if not zero and i % 3 == 2:
                opt.zero_grad()
            trace.append([loss.item()] + _state(model, opt))
        return trace, [j for j, (h, c) in enumerate(kept) if not np.array_equal(h, c)], getattr(fm, "stats", None)
    (te, ke, _), (tc, kc, stats) = run(False), run(True)
    assert all(_same(a, b) for u, v in zip(te, tc) for a, b in zip(u, v))
    assert kc == ke == [] and stats["eager_calls"] == 0, stats
