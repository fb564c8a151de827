"""Threads (issue 8, item 4): grad mode, anomaly mode and the module scope are per thread, and two threads training
two separate models at once give bit-identical results to training them one after another."""
import gc
import sys
import threading

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite.nn import functional as F

TIMEOUT = 30


@pytest.fixture
def fast_switching():
    """Switch threads every microsecond so the two workers really interleave, op by op."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(old)
    gc.enable()  # see test_concurrent_backward_calls_leave_the_cyclic_gc_enabled


def run_threads(*targets):
    errors = []

    def wrap(fn):
        def body():
            try:
                fn()
            except BaseException as e:  # noqa: BLE001 - reported to the main thread below
                errors.append(e)
        return body
    threads = [threading.Thread(target=wrap(fn)) for fn in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
        assert not t.is_alive(), "a worker thread hung"
    if errors:
        raise errors[0]


def test_no_grad_in_one_thread_does_not_affect_another():
    inside, done = threading.Event(), threading.Event()
    seen = {}

    def worker():
        with tl.no_grad():
            inside.set()
            assert done.wait(TIMEOUT)
            x = tl.tensor([1.0, 2.0], requires_grad=True)
            seen["worker"] = (tl.is_grad_enabled(), (x * 2).requires_grad)

    def main_side():
        assert inside.wait(TIMEOUT)  # the worker is inside no_grad now
        x = tl.tensor([1.0, 2.0], requires_grad=True)
        y = (x * 3).sum()
        seen["main"] = (tl.is_grad_enabled(), y.requires_grad)
        y.backward()
        np.testing.assert_array_equal(x.grad.numpy(), [3.0, 3.0])
        done.set()
    run_threads(worker, main_side)
    assert seen == {"worker": (False, False), "main": (True, True)}


def test_a_new_thread_starts_with_grad_enabled_even_when_the_parent_is_in_no_grad():
    seen = []

    def worker():
        x = tl.tensor([1.0], requires_grad=True)
        seen.append((tl.is_grad_enabled(), (x + 1).grad_fn is not None))
        tl.set_grad_enabled(False)  # the function form, in this thread only
        seen.append(tl.is_grad_enabled())
    with tl.no_grad():
        run_threads(worker)
        assert not tl.is_grad_enabled()
    assert tl.is_grad_enabled()
    assert seen == [(True, True), False]


def test_anomaly_mode_is_per_thread():
    inside, done = threading.Event(), threading.Event()
    seen = {}

    def worker():
        with tl.autograd.detect_anomaly():
            inside.set()
            assert done.wait(TIMEOUT)
            x = tl.tensor([0.0], requires_grad=True)
            with np.errstate(all="ignore"), pytest.raises(RuntimeError, match="Anomaly detected"):
                x / x
            seen["worker"] = True

    def main_side():
        assert inside.wait(TIMEOUT)
        x = tl.tensor([0.0], requires_grad=True)
        with np.errstate(all="ignore"):
            seen["main"] = bool(np.isnan((x / x).numpy()).all())  # no anomaly mode here: NaN, no error
        done.set()
    run_threads(worker, main_side)
    assert seen == {"worker": True, "main": True}


class EncoderDecoder(tl.nn.Module):
    def __init__(self):
        super().__init__()
        self.enc = tl.nn.Linear(4, 6)
        self.dec = tl.nn.Linear(6, 4)

    def forward(self, x):
        return self.dec(self.enc(x).tanh())


def test_module_scopes_recorded_in_concurrent_forwards_belong_to_their_own_thread(fast_switching):
    tl.manual_seed(0)
    models = {"seq": tl.nn.Sequential(tl.nn.Linear(4, 6), tl.nn.Tanh(), tl.nn.Linear(6, 4)), "ed": EncoderDecoder()}
    expected = {"seq": {"", "0", "1", "2"}, "ed": {"", "enc", "dec"}}  # '' is the model itself
    x = tl.tensor(np.ones((3, 4), np.float32))
    found = {"seq": set(), "ed": set()}

    def worker(name):
        def body():
            for _ in range(200):
                out = models[name](x).sum()
                found[name] |= {e.module for e in tl.autograd.tape(out) if e.module is not None}
        return body
    run_threads(worker("seq"), worker("ed"))
    assert found["seq"] <= expected["seq"] and found["ed"] <= expected["ed"], found
    assert found["seq"] and found["ed"]


# ---------------------------------------------------------------- concurrent training
def make_task(kind):
    """A model, its optimizer and its data, all deterministic (seeded init, fixed NumPy data)."""
    tl.manual_seed({"mlp": 1, "conv": 2}[kind])
    rng = np.random.default_rng({"mlp": 10, "conv": 20}[kind])
    if kind == "mlp":
        model = tl.nn.Sequential(tl.nn.Linear(8, 32), tl.nn.Tanh(), tl.nn.Linear(32, 3))
        x = rng.standard_normal((64, 8)).astype(np.float32)
        opt = tl.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    else:
        model = tl.nn.Sequential(tl.nn.Conv2d(1, 4, 3, padding=1), tl.nn.ReLU(), tl.nn.MaxPool2d(2),
                                 tl.nn.Flatten(), tl.nn.Linear(4 * 4 * 4, 3))
        x = rng.standard_normal((16, 1, 8, 8)).astype(np.float32)
        opt = tl.optim.Adam(model.parameters(), lr=1e-2)
    y = rng.integers(0, 3, len(x))
    return model, opt, tl.tensor(x), tl.tensor(y)


def train(task, steps, log=None, name=None):
    model, opt, x, y = task
    losses = []
    for step in range(steps):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if log is not None:
            log.append(name)
    return losses, {k: v.numpy().copy() for k, v in model.state_dict().items()}


STEPS = 400


def test_two_threads_training_two_models_match_sequential_training_bit_for_bit(fast_switching):
    sequential = {k: train(make_task(k), STEPS) for k in ("mlp", "conv")}

    tasks = {k: make_task(k) for k in ("mlp", "conv")}
    concurrent, order = {}, []
    start = threading.Barrier(2, timeout=TIMEOUT)

    def worker(kind):
        def body():
            start.wait()
            concurrent[kind] = train(tasks[kind], STEPS, order, kind)
        return body
    run_threads(worker("mlp"), worker("conv"))

    # the runs really overlapped: each model took steps while the other was still training
    first_done = min(order.index(k) + order.count(k) - 1 for k in ("mlp", "conv"))
    assert set(order[:first_done]) == {"mlp", "conv"}, "threads did not interleave; the test proves nothing"
    for kind in ("mlp", "conv"):
        seq_losses, seq_state = sequential[kind]
        con_losses, con_state = concurrent[kind]
        assert con_losses == seq_losses, kind  # exact float equality, step by step
        assert seq_losses[-1] < seq_losses[0]  # and it did learn something
        for key in seq_state:
            np.testing.assert_array_equal(con_state[key], seq_state[key], err_msg=f"{kind} {key}")


def test_concurrent_autograd_grad_calls_on_a_shared_leaf():
    """Read-only sharing: many threads differentiate through the same parameter at once."""
    w = tl.tensor(np.linspace(-1, 1, 6).reshape(2, 3), requires_grad=True)
    results = {}

    def worker(i):
        def body():
            for _ in range(50):
                x = tl.tensor(np.full((4, 2), float(i)))
                (g,) = tl.autograd.grad(((x @ w) ** 2).sum(), w)
                results.setdefault(i, []).append(g.numpy())
        return body
    run_threads(*(worker(i) for i in range(4)))
    for i, gs in results.items():
        x = np.full((4, 2), float(i))
        want = 2 * x.T @ (x @ w.numpy())
        for g in gs:
            np.testing.assert_allclose(g, want, rtol=1e-12)
    assert w.grad is None


def test_concurrent_backward_calls_leave_the_cyclic_gc_enabled(monkeypatch):
    """Deterministic replay of the race seen in the concurrent-training test: thread B reads 'GC disabled' (A is
    inside backward), A finishes and re-enables, then B disables and, having seen it disabled, never re-enables."""
    from tinygrad_lite import _gc as gc_pause  # the engine's (and tl.compile's) pauses of the collector
    real_gc = gc
    b_reading, a_done = threading.Event(), threading.Event()

    class InterleavingGC:
        enable, disable = staticmethod(real_gc.enable), staticmethod(real_gc.disable)

        @staticmethod
        def isenabled():
            enabled = real_gc.isenabled()
            if threading.current_thread().name == "B":
                b_reading.set()
                a_done.wait(2)  # A's backward completes between B's read and B's disable
            return enabled
    monkeypatch.setattr(gc_pause, "gc", InterleavingGC)

    def backward_in(name, hook=None):
        x = tl.tensor([1.0, 2.0], requires_grad=True)
        y = x * 2.0
        if hook:
            y.register_hook(hook)
        y.sum().backward()

    def a():
        backward_in("A", hook=lambda g: b_reading.wait(2) and None or None)  # wait inside A's backward for B to read
        a_done.set()
    threads = [threading.Thread(target=a, name="A"), threading.Thread(target=lambda: backward_in("B"), name="B")]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(TIMEOUT)
        assert gc.isenabled(), "the cyclic GC was left disabled after two concurrent backward calls"
    finally:
        gc.enable()
