"""Review of 20e1f41..32773a3: fixed slots read by their planned buffer's name (Plan.start), gradient arrays recycled
by the generated code when nothing holds them (`_recycled`), host masks that are a ufunc planned like a primitive's
(`np.greater(x, 0)`, `np.sign`), and nn.LSTM's sigmoid over the i,f and o blocks only.

Every test runs a compiled function and the same function eagerly, side by side, over more calls than
INTERPRETED_REPLAYS (the generated code, where `_recycled` lives, runs from the 9th replay on), with a new batch
each call, and compares returned values, parameters, gradients and optimizer state with np.array_equal; tests that
keep arrays the user holds check that no later replay changed them. The review found no defect: these are regression
tests for the scenarios it checked."""
import threading
import weakref

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite.compile.plan import INTERPRETED_REPLAYS
from tinygrad_lite.func import functional_call, grad as fgrad, hessian, jacfwd, jacrev, vmap
from tinygrad_lite.nn.utils import clip_grad_norm_

from _compile_common import train_step as _train_step

nn, F = tl.nn, tl.nn.functional
CALLS = INTERPRETED_REPLAYS + 14  # 22: well past the switch to generated code


def _mlp(dtype=np.float32):
    tl.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 4)).to(dtype)


def _np(v):
    if isinstance(v, tl.Tensor):
        return v.numpy()
    if isinstance(v, memoryview):
        return np.asarray(v)
    if type(v).__module__.startswith("torch"):
        return v.numpy()
    return np.asarray(v)


def _state(model, opt):
    out = [p.numpy().copy() for p in model.parameters()]
    out += [None if p.grad is None else p.grad.numpy().copy() for p in model.parameters()]
    for st in (getattr(opt, "state", {}) or {}).values():
        for v in st.values():
            if isinstance(v, (tl.Tensor, np.ndarray, float, int)):
                out.append(np.array(_np(v)))
    return out


def _same(a, b):
    if a is None or b is None:
        return a is None and b is None
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and np.array_equal(a, b)


def _flat(o):
    if isinstance(o, (tuple, list)):
        return [x for y in o for x in _flat(y)]
    return [np.array(_np(o)) if isinstance(o, (tl.Tensor, np.ndarray)) else o]


def _side_by_side(make_step, after=None, calls=CALLS, dtype=np.float32, opt_fn=None, batch=lambda i: 8,
                  make_model=_mlp):
    """Run make_step(model, opt) eagerly and compiled on the same batches. `after(model, opt, i, out, kept)` runs
    after each call and may append (array-like the user holds, copy of its values) to `kept`. Returns (call indices
    where the compiled run differs, indices of kept arrays that later calls changed in one run and not in the other,
    the compiled stats)."""
    opt_fn = opt_fn or (lambda m: tl.optim.SGD(m.parameters(), lr=0.1))
    runs = []
    for compiled in (False, True):
        model = make_model(dtype)
        opt = opt_fn(model)
        step = make_step(model, opt)
        f = tl.compile(step) if compiled else step
        rng = np.random.default_rng(1)
        trace, kept = [], []
        for i in range(calls):
            n = batch(i)
            x = tl.tensor(rng.standard_normal((n, 6)).astype(dtype))
            y = tl.tensor(rng.integers(0, 4, n))
            out = f(x, y)
            if after is not None:
                after(model, opt, i, out, kept)
            trace.append((_flat(out), _state(model, opt)))
        changed = [j for j, (h, c) in enumerate(kept) if not np.array_equal(_np(h), c)]
        runs.append((trace, changed, getattr(f, "stats", None)))
    (te, ke, _), (tc, kc, stats) = runs
    diffs = [i for i, ((oe, se), (oc, sc)) in enumerate(zip(te, tc))
             if len(oe) != len(oc) or len(se) != len(sc) or not all(_same(a, b) for a, b in zip(oe + se, oc + sc))]
    return diffs, sorted(set(kc) ^ set(ke)), stats  # kept arrays changed in one run only (eager changes none, mostly)




def _replayed(stats, calls=CALLS):
    return stats["eager_calls"] == 0 and stats["replays"] >= calls - stats["traces"]


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
    assert diffs == [] and changed == [] and _replayed(stats)


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
    assert diffs == [] and changed == [] and _replayed(stats)


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


# ===================== double backward, transforms and vmap through the ReLU/abs masks =====================

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_double_backward_through_relu_and_abs(dtype):
    def make(model, opt):
        def step(x, y):
            opt.zero_grad()
            x = x.detach().requires_grad_()
            out = model(x)
            loss = F.cross_entropy(out, y) + out.abs().mean()
            gx, = tl.autograd.grad(loss, x, create_graph=True)
            gs = tl.autograd.grad(loss, list(model.parameters()), create_graph=True)
            total = loss + (gx * gx).sum() + sum((g * g).sum() for g in gs)
            total.backward()
            opt.step()
            return total.item(), gx.detach()
        return step
    diffs, _, stats = _side_by_side(make, dtype=dtype)
    assert diffs == [] and _replayed(stats), (diffs, stats)


def test_a_returned_create_graph_gradient_with_backward_outside():
    def fn(x):
        h = x * 2.0 - 0.3
        gx, = tl.autograd.grad((h.relu() * h.relu() + h.abs()).sum(), x, create_graph=True)
        return gx
    compiled = tl.compile(fn)
    rng = np.random.default_rng(1)
    for i in range(CALLS):
        data = rng.standard_normal((5, 6))
        outs = []
        for f in (compiled, fn):
            x = tl.tensor(data, requires_grad=True)
            o = f(x)
            (o * o).sum().backward()
            outs.append((o.detach().numpy().copy(), x.grad.numpy().copy()))
        assert all(np.array_equal(a, b) for a, b in zip(*outs)), i
    assert _replayed(compiled.stats)


def test_hessian_jacrev_jacfwd_through_relu_and_abs_compiled():
    def fn(x, y):
        def g(v):
            return (v.relu() * v.abs() + v.relu() * 2).sum()
        return (hessian(g)(x[0]).detach(), jacrev(lambda v: v.relu().abs())(x[1]).detach(),
                jacfwd(lambda v: v.relu() * v.abs())(x[2]).detach())
    diffs, _, stats = _side_by_side(lambda m, o: fn, dtype=np.float64)
    assert diffs == [] and _replayed(stats), (diffs, stats)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_per_sample_gradients_through_relu_and_abs_match_a_loop(dtype):
    model = _mlp(dtype)
    params = {k: v.detach() for k, v in model.named_parameters()}

    def loss(p, x, y):
        out = functional_call(model, p, (x[None],))
        return F.cross_entropy(out, y[None]) + out.abs().sum() * 0.1 + F.relu(x).sum()
    rng = np.random.default_rng(0)
    x, y = tl.tensor(rng.standard_normal((7, 6)).astype(dtype)), tl.tensor(rng.integers(0, 4, 7))
    batched = vmap(fgrad(loss), in_dims=(None, 0, 0))(params, x, y)
    for i in range(7):
        one = fgrad(loss)(params, x[i], y[i])
        for k in batched:
            assert np.array_equal(batched[k].numpy()[i], one[k].numpy()), (k, i)


def test_relu_mask_is_still_a_bool_greater_than_zero():
    """kink_mask('positive') is np.greater(x, 0) now: the gradient at 0 and at -0.0 is 0, NaN passes no gradient."""
    x = tl.tensor(np.array([-1.0, -0.0, 0.0, 1e-30, 2.0, np.nan], np.float32), requires_grad=True)
    x.relu().sum().backward()
    assert np.array_equal(x.grad.numpy(), np.array([0, 0, 0, 1, 1, 0], np.float32))
    assert x.grad.dtype == np.float32


# ===================== nn.LSTM: sigmoid over i,f and o only =====================

def _torch_rnn(torch, kind, model):
    if kind == "LSTMCell":
        t = torch.nn.LSTMCell(5, 33).double()
    elif kind == "GRU":
        t = torch.nn.GRU(5, 33).double()
    else:
        t = torch.nn.LSTM(5, 33, num_layers=2, bidirectional=kind == "LSTM-bi").double()
    with torch.no_grad():
        for name, p in model.named_parameters():
            getattr(t, name).copy_(torch.from_numpy(p.numpy().astype(np.float64)))
    return t


@pytest.mark.parametrize("kind", ["LSTM", "LSTM-bi", "LSTMCell", "GRU"])
def test_recurrent_layers_match_pytorch(kind, torch):
    tl.manual_seed(0)
    model = {"LSTMCell": lambda: nn.LSTMCell(5, 33), "GRU": lambda: nn.GRU(5, 33)}.get(
        kind, lambda: nn.LSTM(5, 33, num_layers=2, bidirectional=kind == "LSTM-bi"))()
    ref = _torch_rnn(torch, kind, model)
    data = np.random.default_rng(0).standard_normal((17, 5) if kind == "LSTMCell" else (6, 17, 5)).astype(np.float32)
    x, tx = tl.tensor(data, requires_grad=True), torch.tensor(data.astype(np.float64), requires_grad=True)
    out, tout = model(x), ref(tx)
    y, ty = out[0], tout[0]
    second, tsecond = (out[1], tout[1]) if kind == "LSTMCell" else (out[1][0] if kind != "GRU" else out[1],
                                                                     tout[1][0] if kind != "GRU" else tout[1])
    loss, tloss = (y * y).sum() + second.sum(), (ty * ty).sum() + tsecond.sum()
    loss.backward()
    tloss.backward()
    tol = dict(rtol=2e-4, atol=2e-5)
    np.testing.assert_allclose(y.detach().numpy(), ty.detach().numpy(), **tol)
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), **tol)
    for name, p in model.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), getattr(ref, name).grad.numpy(), **tol, err_msg=name)


class _Seq(nn.Module):
    def __init__(self, kind):
        super().__init__()
        self.kind = kind
        self.rnn = {"GRU": lambda: nn.GRU(6, 9), "LSTMCell": lambda: nn.LSTMCell(6, 9),
                    "LSTM-bi": lambda: nn.LSTM(6, 9, bidirectional=True)}.get(kind, lambda: nn.LSTM(6, 9, num_layers=2))()
        self.head = nn.Linear(18 if kind == "LSTM-bi" else 9, 4)

    def forward(self, x):
        if self.kind == "LSTMCell":
            state = None
            for t in range(x.shape[0]):
                state = self.rnn(x[t], state)
            return self.head(state[0])
        return self.head(self.rnn(x)[0][-1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["LSTM", "LSTM-bi", "LSTMCell", "GRU"])
def test_recurrent_training_replays_bit_identically(kind, dtype):
    def run(compiled):
        tl.manual_seed(0)
        model = _Seq(kind).to(dtype)
        opt = tl.optim.Adam(model.parameters(), lr=0.01)
        f = _train_step(model, opt)
        f = tl.compile(f) if compiled else f
        rng = np.random.default_rng(0)
        losses = [f(tl.tensor(rng.standard_normal((5, 3, 6)).astype(dtype)), tl.tensor(rng.integers(0, 4, 3)))
                  for _ in range(CALLS)]
        return losses, _state(model, opt), getattr(f, "stats", None)
    (le, se, _), (lc, sc, stats) = run(False), run(True)
    assert le == lc and all(_same(a, b) for a, b in zip(se, sc)) and _replayed(stats), stats


# Bit for bit against the parent commit's LSTM step (the review also compared whole LSTM/LSTMCell/GRU outputs and
# gradients with 20e1f41's, float32 and float64: np.array_equal throughout).
def test_lstm_split_sigmoid_equals_one_sigmoid_over_all_gates():
    """The old step, `s = gates.sigmoid()` with s[:H], s[H:2H], s[3H:], gives the same forward and gradients bit for
    bit as the new one (elementwise sigmoid; the slices' gradients add zeros)."""
    from tinygrad_lite.nn import rnn

    def old_step(gates, state, hidden):
        s = gates.sigmoid()
        c = s[hidden:2 * hidden] * state[1] + s[:hidden] * gates[2 * hidden:3 * hidden].tanh()
        return s[3 * hidden:] * c.tanh(), c
    for dtype in (np.float32, np.float64):
        results = []
        for step in (rnn._lstm_step, old_step):
            rng = np.random.default_rng(0)  # the same data for both steps
            g = tl.tensor(rng.standard_normal((4 * 33, 17)).astype(dtype) * 3, requires_grad=True)
            c0 = tl.tensor(rng.standard_normal((33, 17)).astype(dtype), requires_grad=True)
            h, c = step(g, (None, c0), 33)
            ((h * h).sum() + (c * 0.5).sum()).backward()
            results.append([h.detach().numpy().copy(), c.detach().numpy().copy(), g.grad.numpy(), c0.grad.numpy()])
        assert all(np.array_equal(a, b) for a, b in zip(*results)), dtype
