"""Long runs (issue 8, item 3): 5,000 training steps hold memory flat after warm-up (RSS and the number of live
Tensors and tape entries), and a training loop that keeps `loss` across steps gets the stale-graph warning once,
naming the fix. Run with `-s` to see the RSS figures."""
import gc
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite.autograd.stale import StaleGraphWarning
from tinygrad_lite.autograd import recorder, stale as stale_graphs
from tinygrad_lite.nn import functional as F

STEPS, WARMUP = 5000, 500
SAMPLES = (500, 1000, 2000, 3000, 4000, 5000)
RSS_NOISE = 5 * 2 ** 20  # bytes


def rss_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def census():
    """(live Tensors, live tape entries), after a full collection."""
    gc.collect()
    tensors = entries = 0
    for o in gc.get_objects():
        if isinstance(o, tl.Tensor):
            tensors += 1
        elif isinstance(o, recorder.Entry):
            entries += 1
    return tensors, entries


def data(n=256, d=16, classes=4, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    y = (x[:, :classes].argmax(1) + (x[:, -1] > 1.5)) % classes  # learnable, not trivial
    return x, y


def nn_step_fn():
    """tl.nn MLP, SGD with momentum, mini-batches from a shuffling DataLoader (re-created every epoch)."""
    tl.manual_seed(0)
    x, y = data()
    model = tl.nn.Sequential(tl.nn.Linear(16, 32), tl.nn.ReLU(), tl.nn.Linear(32, 32), tl.nn.Tanh(),
                             tl.nn.Linear(32, 4))
    opt = tl.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    loader = tl.data.DataLoader(tl.data.TensorDataset(tl.tensor(x), tl.tensor(y)), batch_size=32, shuffle=True)
    batches = iter(())

    def step():
        nonlocal batches
        try:
            xb, yb = next(batches)
        except StopIteration:
            batches = iter(loader)
            xb, yb = next(batches)
        opt.zero_grad()
        loss = F.cross_entropy(model(xb), yb)
        loss.backward()
        opt.step()
        return loss.item()
    return step


def tensor_ops_step_fn():
    """A hand-written MLP from tensor operations, updated in place under no_grad (the micrograd way)."""
    rng = np.random.default_rng(1)
    x, y = data(seed=1)
    xt, onehot = tl.tensor(x), tl.tensor(np.eye(4, dtype=np.float32)[y])
    params = [tl.tensor((rng.standard_normal(s) * 0.3).astype(np.float32), requires_grad=True)
              for s in ((16, 32), (32,), (32, 4), (4,))]

    def step():
        w1, b1, w2, b2 = params
        logits = (xt @ w1 + b1).tanh() @ w2 + b2
        loss = -(logits.log_softmax(1) * onehot).sum(1).mean()
        for p in params:
            p.grad = None
        loss.backward()
        with tl.no_grad():
            for p in params:
                p.sub_(p.grad * 0.1)
        return loss.item()
    return step


@pytest.mark.slow
@pytest.mark.parametrize("make_step", [nn_step_fn, tensor_ops_step_fn], ids=["nn-sgd-dataloader", "tensor-ops"])
def test_memory_is_flat_over_5000_training_steps(make_step):
    baseline = census()  # whatever earlier tests left alive
    step = make_step()
    rss, live, losses = {}, {}, []
    rss[0] = rss_bytes()
    for i in range(1, STEPS + 1):
        losses.append(step())
        if i in SAMPLES:
            live[i] = census()
            rss[i] = rss_bytes()
    print(f"\n[{make_step.__name__}] RSS before: {rss[0] / 2 ** 20:.1f} MiB, after {WARMUP} steps: "
          f"{rss[WARMUP] / 2 ** 20:.1f} MiB, after {STEPS} steps: {rss[STEPS] / 2 ** 20:.1f} MiB; "
          f"live (tensors, entries) at {SAMPLES}: {[live[s] for s in SAMPLES]}")
    assert np.isfinite(losses).all() and np.mean(losses[-100:]) < 0.7 * np.mean(losses[:100])  # it trained
    assert all(live[s] == live[WARMUP] for s in SAMPLES), f"live object counts drift: {live}"
    assert live[STEPS][1] == baseline[1], "no tape entry outlives its step"
    growth = max(rss[s] for s in SAMPLES) - rss[WARMUP]
    assert growth < RSS_NOISE, f"RSS grew by {growth / 2 ** 20:.1f} MiB between step {WARMUP} and {STEPS}"


# ---------------------------------------------------------------- the stale-graph warning, end to end
@pytest.fixture
def fresh_stale_watch(monkeypatch):
    """The warning fires once per process: reset it for this test and leave it as it was."""
    monkeypatch.setattr(stale_graphs, "_warned_stale", False)
    stale_graphs._recent_roots.clear()
    stale_graphs._old_roots.clear()
    yield
    stale_graphs._recent_roots.clear()
    stale_graphs._old_roots.clear()


def training_loop(steps, keep):
    """A tl.nn training loop; `keep` says what the user does with each step's loss."""
    tl.manual_seed(0)
    x, y = data(64)
    model = tl.nn.Sequential(tl.nn.Linear(16, 8), tl.nn.ReLU(), tl.nn.Linear(8, 4))
    opt = tl.optim.SGD(model.parameters(), lr=0.1)
    xb, yb = tl.tensor(x), tl.tensor(y)
    total, history, previous, fired_at = 0.0, [], None, []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i in range(steps):
            opt.zero_grad()
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
            if keep == "sum":
                total = total + loss  # the classic mistake: every step's graph stays reachable
            elif keep == "append":
                history.append(loss)
            elif keep == "previous":
                previous = loss  # one step back: not a leak  # noqa: F841
            else:
                total += loss.item()
            fired_at += [i] * sum(issubclass(w.category, StaleGraphWarning) for w in caught[len(fired_at):])
    stale = [w for w in caught if issubclass(w.category, StaleGraphWarning)]
    return stale, fired_at, total if keep == "sum" else history


@pytest.mark.parametrize("keep", ["sum", "append"])
def test_keeping_the_loss_across_training_steps_warns_once_naming_the_fix(fresh_stale_watch, keep):
    stale, fired_at, kept = training_loop(3 * stale_graphs.STALE_GRAPH_STEPS, keep)
    assert len(stale) == 1, [str(w.message) for w in stale]
    # the first step at which the graphs of PILED_UP steps from N or more steps ago live
    assert fired_at == [stale_graphs.STALE_GRAPH_STEPS + stale_graphs.STALE_GRAPHS_PILED_UP - 1], fired_at
    msg = str(stale[0].message)
    assert "loss.item()" in msg and "loss.detach()" in msg and "still alive" in msg
    # and the warning is right: the graphs really are alive
    graphs = kept if keep == "append" else [kept]
    assert sum(len(tl.autograd.tape(g)) for g in graphs) > stale_graphs.STALE_GRAPH_STEPS * 5


@pytest.mark.parametrize("keep", ["item", "previous"])
def test_a_correct_training_loop_never_warns(fresh_stale_watch, keep):
    stale, _, _ = training_loop(5 * stale_graphs.STALE_GRAPH_STEPS, keep)
    assert stale == []


def test_the_kept_graphs_cost_memory_that_item_does_not(fresh_stale_watch):
    """Why the warning matters: live tape entries grow with the steps when the loss is kept, not otherwise."""
    before = census()[1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StaleGraphWarning)
        _, _, kept = training_loop(40, "sum")
        kept_entries = census()[1] - before
        del kept
        _, _, _ = training_loop(40, "item")
        item_entries = census()[1] - before
    assert kept_entries > 40 * 5 and item_entries == 0, (kept_entries, item_entries)


def test_the_stale_graph_warning_points_at_the_users_backward_call(fresh_stale_watch):
    stale, _, _ = training_loop(2 * stale_graphs.STALE_GRAPH_STEPS, "sum")
    assert stale and stale[0].filename == __file__, stale[0].filename if stale else None


USER_SCRIPT = """
import tinygrad_lite as tl
w = tl.tensor([1.0, 2.0], requires_grad=True)
total = 0.0
for step in range(50):
    loss = (w * w).sum()
    loss.backward()
    total = total + loss
print("done")
"""


def test_the_stale_graph_warning_is_visible_with_default_warning_filters():
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONWARNINGS", "PYTHONDEVMODE")}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-c", USER_SCRIPT], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0 and "done" in proc.stdout, proc.stderr
    assert "still alive" in proc.stderr and "loss.item()" in proc.stderr, proc.stderr
