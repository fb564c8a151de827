"""tl.compile: memory (flat over many replays, no intermediate arrays in a steady replay, nothing of a recorded
call's graph kept alive) and calls from several threads."""
import threading
import tracemalloc

import sys
import types

import numpy as np
import pytest

import tinygrad_lite as tl
from _compile_common import features as _x, inference as _inference, seeded_model as _model, train_step

nn, F = tl.nn, tl.nn.functional


def test_memory_is_flat_over_many_replays():
    model = _model()
    opt = tl.optim.Adam(model.parameters(), lr=0.01)

    def step(x):
        opt.zero_grad()
        loss = model(x).pow(2).mean()
        loss.backward()
        opt.step()
        return loss.item()
    f = tl.compile(step)
    x = _x(16)
    for _ in range(20):
        f(x)
    tracemalloc.start()
    try:
        f(x)
        base = tracemalloc.get_traced_memory()[0]
        for _ in range(400):
            f(x)
        grown = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert grown < 64 * 1024, f"{grown} bytes kept over 400 replays"
    assert f.stats["replays"] >= 415


def _replay_peak(f, *args):
    """(the result, the peak memory above its start) of one steady replay of `f`, past the interpreted replays."""
    for _ in range(12):
        f(*args)
    tracemalloc.start()
    try:
        f(*args)
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        out = f(*args)
        return out, tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("optimizer", ["SGD", "Adam"])
def test_a_steady_replay_of_an_mlp_step_allocates_no_intermediate_arrays(optimizer):
    """Activations, their gradients, cross-entropy's pieces and the optimizer's work all live in planned or kept
    buffers: the peak of a replay above the memory before it stays far below one activation (128 KiB here; each
    activation is 512 KiB). The new .grad arrays replace the old ones (zero_grad(set_to_none=True))."""
    tl.manual_seed(0)
    model = nn.Sequential(nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 10))
    x, y = tl.randn(256, 256), tl.tensor(np.arange(256) % 10)
    opt = tl.optim.SGD(model.parameters(), lr=0.01, momentum=0.9) if optimizer == "SGD" else \
        tl.optim.Adam(model.parameters(), lr=0.01)

    f = tl.compile(train_step(model, opt))
    _, peak = _replay_peak(f, x, y)
    assert f.stats["replays"] == 13
    assert peak < 128 * 1024, f"a replay allocated up to {peak} bytes above its starting point"

def test_a_steady_replay_of_a_cnn_step_allocates_no_intermediate_arrays():
    """Convolution (im2col and its fold), max pooling (the arg-max search, its gather and scatter), cross-entropy
    and SGD: the work arrays are reused and the results planned, so a replay's peak stays far below one activation
    (401 KiB for the first convolution's output; the pooling's indices alone are 200 KiB)."""
    tl.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(8 * 14 * 14, 10))
    opt = tl.optim.SGD(model.parameters(), lr=0.01)
    x, y = tl.randn(16, 1, 28, 28), tl.tensor(np.arange(16) % 10)
    f = tl.compile(train_step(model, opt))
    _, peak = _replay_peak(f, x, y)
    assert f.stats["replays"] == 13
    assert peak < 128 * 1024, f"a replay allocated up to {peak} bytes above its starting point"


def test_copies_made_in_a_replay_are_the_callers_own():
    """clone() and gather's copy of its index write into planned buffers in a replay: a returned copy must still
    be a new array each call, never overwritten by the next."""
    def fn(x, index):
        return x.clone(), x.gather(1, index) * 2
    f = tl.compile(fn)
    rng = np.random.default_rng(0)
    calls = [(rng.standard_normal((4, 5)), rng.integers(0, 5, (4, 3))) for _ in range(14)]
    outs = [f(tl.tensor(a), tl.tensor(i)) for a, i in calls]
    assert f.stats["replays"] == 13
    for (a, i), (copy, picked) in zip(calls, outs):
        np.testing.assert_array_equal(copy.numpy(), a)
        np.testing.assert_array_equal(picked.numpy(), np.take_along_axis(a, i, 1) * 2)


def test_calls_from_several_threads_are_serialized_and_correct():
    model = _model()
    f = tl.compile(_inference(model))
    xs = [_x(seed=i) for i in range(8)]
    want = [model(x).numpy() for x in xs]
    got = [None] * 8

    def work(i):
        for _ in range(20):
            got[i] = f(xs[i]).numpy()
    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(np.array_equal(a, b) for a, b in zip(got, want))


def test_module_zero_grad_and_gradient_clipping_inside_the_step_replay():
    def run(compiled):
        tl.manual_seed(0)
        model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))
        opt = tl.optim.SGD(model.parameters(), lr=0.5)

        def step(x, y):
            model.zero_grad()
            loss = F.mse_loss(model(x), y)
            loss.backward()
            norm = nn.utils.clip_grad_norm_(model.parameters(), 0.1, error_if_nonfinite=True)
            nn.utils.clip_grad_value_(model.parameters(), 0.05)
            opt.step()
            return loss.item(), norm
        f = tl.compile(step) if compiled else step
        out = [f(_x(seed=i), tl.ones(3, 2)) for i in range(8)]
        return [(a, n.item()) for a, n in out], [p.numpy().copy() for p in model.parameters()], f
    (eager, pe, _), (comp, pc, f) = run(False), run(True)
    assert eager == comp and all(np.array_equal(a, b) for a, b in zip(pe, pc))
    assert f.stats["replays"] >= 6 and f.stats["eager_calls"] == 0, f.stats


def test_a_recorded_call_keeps_nothing_of_its_graph_alive():
    import gc
    import weakref
    model = _model()
    opt = tl.optim.SGD(model.parameters(), lr=0.1)
    box = types.SimpleNamespace(ref=None)

    def step(x):
        opt.zero_grad()
        loss = model(x).pow(2).sum()
        loss.backward()
        opt.step()
        return loss.item()

    def keep_loss(frame, event, arg):  # (the recording call's loss, taken from its frame: an assignment in the step
        if event == "return" and frame.f_code is step.__code__:  # itself would make it run eagerly)
            box.ref = weakref.ref(frame.f_locals["loss"])
    f = tl.compile(step)
    sys.setprofile(keep_loss)
    try:
        f(_x())  # recorded (zero_grad comes first, so whether gradients existed before is not a guard)
    finally:
        sys.setprofile(None)
    first = box.ref
    f(_x())  # replayed: no Python of step runs
    f(_x())
    gc.collect()
    assert box.ref is first and first() is None and f.stats["replays"] == 2 and f.stats["traces"] == 1


def test_a_view_of_a_reshape_copy_keeps_that_memory_from_reuse():
    """`x.transpose(0, 1).reshape(20, 6)` copies (the input is strided), and `.T` of the copy is a view whose NumPy
    base is the copy's hidden array, not the reshape's output. The plan must still see the view keep the reshape's
    buffer alive: if it reused it for `sin(u)`, a replay would read sin(u) through the view."""
    def fn(x, u):
        with tl.no_grad():
            rt = x.transpose(0, 1).reshape(20, 6).T  # (6, 20), viewing the copy
            s = (u * 1.5).sin()  # (20, 6): the reshape's buffer is free after the `.T`, by the reshape's own uses
            return rt @ s
    f, rng = tl.compile(fn), np.random.default_rng(0)
    for i in range(12):
        x, u = (tl.tensor(rng.standard_normal(s).astype(np.float32)) for s in ((4, 5, 6), (20, 6)))
        assert np.array_equal(f(x, u).numpy(), fn(x, u).numpy()), (i, f.stats)
    assert f.stats["replays"] == 11, f.stats


def test_a_capture_holds_small_arrays_and_watches_large_ones_views_and_what_exceeds_its_budget():
    """While recording, a small array that owns its memory (and a tensor of one) is held until the capture closes
    (its id cannot be reused meanwhile); a large one, a view (which would keep its base alive) and anything past
    the budget are watched through weak references, so the call frees their memory as eager code does."""
    import importlib

    capture = importlib.import_module("tinygrad_lite.compile.capture")
    from tinygrad_lite.compile.record import Ref, SLOT

    cap = capture.Capture([])
    small, large = np.zeros(16), np.zeros(capture._HOLD_BYTES // 8 + 1)
    view = np.zeros(64)[::2]
    for i, arr in enumerate((small, large, view)):
        cap._know(arr, Ref(SLOT, i))
    assert id(small) in cap._held and id(large) not in cap._held and id(view) not in cap._held
    assert id(large) in cap._watch and id(view) in cap._watch
    assert all(cap.alive(id(a)) is a for a in (small, large, view))
    t = tl.tensor(np.ones(4))
    cap.tensor_created(t)
    assert cap._held[id(t)] is t and id(t) in cap.created
    spent = cap._held_bytes
    many = [np.zeros(capture._HOLD_BYTES // 8) for _ in range((capture._HOLD_BUDGET - spent) // capture._HOLD_BYTES + 2)]
    for i, arr in enumerate(many):
        cap._know(arr, Ref(SLOT, 10 + i))
    assert cap._held_bytes <= capture._HOLD_BUDGET
    assert id(many[0]) in cap._held and id(many[-1]) in cap._watch  # the budget ran out: the last are watched
    gone = id(large)
    del large
    assert cap.alive(gone) is None and gone not in cap.known  # a watched array that died is forgotten
    cap.close()
    assert not cap._held and not cap._watch


def test_a_steady_replay_of_where_clamp_casts_comparisons_and_reductions_allocates_no_intermediate_arrays():
    """where, clamp, cast, prod, amax/amin, item assignment and comparisons write into planned buffers too (each
    allocated a new activation-sized array every replay: 1.7 MB here against 35 KB now)."""
    tl.manual_seed(0)
    model = nn.Linear(256, 512)
    x, keep = tl.randn(256, 256), tl.randn(256, 512) > 0

    @tl.no_grad()
    def infer(x, keep):
        h = tl.where(keep, model(x), -model.bias)
        h = tl.where(h > 0.5, h, h * 0.5).clamp(-1.0, 1.0)
        h[:, :8] = 0.5
        return h.double().prod(dim=1).float() + h.amax(dim=1) - h.amin(dim=1)
    f = tl.compile(infer)
    want = infer(x, keep).numpy()
    got, peak = _replay_peak(f, x, keep)
    assert f.stats["replays"] == 13 and np.array_equal(got.numpy(), want)
    assert peak < 128 * 1024, f"a replay allocated up to {peak} bytes above its starting point"


def test_a_steady_replay_fills_a_slices_gradient_buffer_in_place():
    """The gradient of a tensor read through slices (an LSTM's gates, heads split from one projection) is one
    zero-filled buffer the slices add into: planned and refilled by a replay, not a new 1 MB array per call."""
    tl.manual_seed(0)
    w = tl.randn(512, 512, requires_grad=True)
    opt = tl.optim.SGD([w], lr=0.01)

    def step(x):
        opt.zero_grad()
        h = w * x
        loss = h[:8].sum() + h[8:16].pow(2).sum()
        loss.backward()
        opt.step()
        return loss.item()
    f = tl.compile(step)
    _, peak = _replay_peak(f, tl.randn(512, 512))
    assert f.stats["replays"] == 13
    assert peak < 64 * 1024, f"a replay allocated up to {peak} bytes above its starting point"


def test_a_steady_replay_writes_clamp_amax_and_pow_gradient_factors_into_planned_buffers():
    """The factors a VJP computes from values outside the primitives — clamp's inside-the-range mask, amax's tie
    shares, pow's zero-exponent mask, maximum's winner shares — are written into planned buffers by a replay (each
    was a new activation-sized array every call: 2.7 MB here), and training goes exactly as eager's."""
    def trainer():
        tl.manual_seed(0)
        model = nn.Linear(256, 512)
        opt = tl.optim.SGD(model.parameters(), lr=0.01)

        def step(x, e):
            opt.zero_grad()
            h = model(x)
            loss = h.clamp(-0.5, 0.5).sum() + h.amax(dim=1).sum() + (h.abs() + 1.0).pow(e).mean() + \
                h.maximum(0.25 * h).sum()
            loss.backward()
            opt.step()
            return loss.item()
        return model, step
    x, e = tl.randn(256, 256), tl.full((256, 512), 2.0)
    model, step = trainer()
    f = tl.compile(step)
    _, peak = _replay_peak(f, x, e)
    assert f.stats["replays"] == 13
    assert peak < 128 * 1024, f"a replay allocated up to {peak} bytes above its starting point"
    twin, eager_step = trainer()
    for _ in range(14):
        eager_step(x, e)
    for p, q in zip(model.parameters(), twin.parameters()):
        assert np.array_equal(p.detach().numpy(), q.detach().numpy())
