"""Long graphs: no recursion anywhere (a 1,000,000-op chain backpropagates), and backward frees what it saved."""
import gc
import weakref

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite.autograd.stale import StaleGraphWarning


def _chain(x, n):
    y = x
    probes = []
    for i in range(n):
        y = y * 1.0000001 if i % 2 else y + 0.5
        if i % (n // 4) == 1:
            probes.append(weakref.ref(y))
    return y, probes


def test_intermediates_are_freed_after_backward():
    x = tl.tensor(np.ones(1000), requires_grad=True)
    y, probes = _chain(x, 1000)
    loss = y.sum()
    gc.collect()
    assert all(p() is not None for p in probes)  # saved by the graph until backward
    loss.backward()
    gc.collect()
    assert all(p() is None for p in probes), "backward must release the intermediate tensors it saved"
    assert loss.grad_fn is not None and loss.grad_fn.entry.released


def test_graph_is_freed_when_output_is_dropped_without_gc():
    x = tl.tensor(np.ones(10), requires_grad=True)
    y, probes = _chain(x, 100)
    del y
    assert all(p() is None for p in probes), "the tape must not create reference cycles"


def test_tape_and_structure_survive_release():
    x = tl.tensor(np.ones(3), requires_grad=True)
    y = (x.exp() * 2).sum()
    y.backward()
    names = [e.name for e in tl.autograd.tape(y)]
    assert names == ["exp", "mul", "sum"]
    assert tl.autograd.tape(y)[0].parents[0] is x


@pytest.mark.slow
def test_million_op_chain_backpropagates():
    x = tl.tensor(1.0, dtype=tl.float64, requires_grad=True)
    y, probes = _chain(x, 1_000_000)
    y.backward()
    np.testing.assert_allclose(x.grad.item(), 1.0000001 ** 500_000, rtol=1e-9)
    del y
    gc.collect()
    assert all(p() is None for p in probes)


def test_keeping_losses_across_steps_warns_once(monkeypatch):
    from tinygrad_lite.autograd import stale
    monkeypatch.setattr(stale, "_warned_stale", False)
    stale._recent_roots.clear()
    stale._old_roots.clear()
    w = tl.tensor(np.ones(3), requires_grad=True)
    total = 0.0
    with pytest.warns(StaleGraphWarning, match=r"loss\.item\(\)"):
        for _ in range(stale.STALE_GRAPH_STEPS + stale.STALE_GRAPHS_PILED_UP):
            loss = (w * w).sum()
            loss.backward()
            total = total + loss  # the mistake: keeps every graph alive
    stale._recent_roots.clear()
    stale._old_roots.clear()


def test_no_warning_when_losses_are_dropped(monkeypatch, recwarn):
    from tinygrad_lite.autograd import stale
    monkeypatch.setattr(stale, "_warned_stale", False)
    stale._recent_roots.clear()
    stale._old_roots.clear()
    w = tl.tensor(np.ones(3), requires_grad=True)
    total = 0.0
    for _ in range(stale.STALE_GRAPH_STEPS * 2):
        loss = (w * w).sum()
        loss.backward()
        total += loss.item()
    assert not [r for r in recwarn if issubclass(r.category, StaleGraphWarning)]


def test_allocator_tuning_is_applied_on_glibc_and_can_be_turned_off():
    import subprocess
    import sys
    code = "import tinygrad_lite as tl; print(tl._memory.applied)"
    on = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    import ctypes.util
    if ctypes.util.find_library("c") and "glibc" in (__import__("platform").libc_ver()[0] or ""):
        assert on == "True"
    env = dict(__import__("os").environ, TL_MALLOC_TUNING="0")
    off = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert off.stdout.strip() == "False"
