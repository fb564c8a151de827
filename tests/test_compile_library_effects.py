"""The library's own calls that act outside the tensors — a checkpoint written (`tl.save`), a graph drawn or saved
(`tl.viz.draw`/`html`/`save`), gradient statistics recorded (`GradFlow.record`) — make a compiled step run eagerly,
with the reason: a replay runs no Python, so it would not do them again. Was: `tl.save` in a replayed step wrote
the file on the recording call only (the checkpoint kept the first call's weights), and GradFlow.record re-recorded
the step on every call (its history changed a guard)."""
import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite import nn


def _setup():
    tl.manual_seed(0)
    m = nn.Linear(3, 2)
    opt = tl.optim.SGD(m.parameters(), lr=0.1)
    x = tl.tensor(np.random.default_rng(0).standard_normal((4, 3)))
    return m, opt, x


def test_tl_save_in_a_step_writes_the_file_on_every_call(tmp_path):
    m, opt, x = _setup()
    path = tmp_path / "ck.safetensors"

    def step():
        opt.zero_grad()
        loss = m(x).pow(2).mean()
        loss.backward()
        opt.step()
        tl.save(m.state_dict(), path)
        return loss.item()
    f = tl.compile(step)
    for _ in range(4):
        f()
        np.testing.assert_array_equal(tl.load(path)["weight"].numpy(), m.weight.numpy())
    assert f.stats["replays"] == 0 and f.stats["eager_calls"] == 3, f.stats
    assert "tl.save writes a file" in f.stats["last_reason"] and "test_compile_library_effects.py" in \
        f.stats["last_reason"], f.stats
    with pytest.raises(tl.CompileError, match="tl.save"):
        tl.compile(step, fullgraph=True)()


def test_gradflow_record_in_a_step_runs_eagerly_and_records_every_call():
    m, opt, x = _setup()
    flow = tl.viz.GradFlow(m)

    def step():
        opt.zero_grad()
        loss = m(x).pow(2).mean()
        loss.backward()
        flow.record()
        opt.step()
        return loss.item()
    f = tl.compile(step)
    for _ in range(5):
        f()
    assert len(flow.history["weight"]["norm"]) == 5
    assert f.stats["traces"] == 1 and f.stats["eager_calls"] == 4, f.stats
    assert "GradFlow.record" in f.stats["last_reason"], f.stats


def test_a_graph_drawn_in_a_step_is_each_calls_own():
    pytest.importorskip("graphviz")
    m, opt, x = _setup()

    def step():
        out = m(x).sum()
        return out.item(), tl.viz.draw(out)
    f = tl.compile(step)
    graphs = [f()[1] for _ in range(3)]
    assert len({id(g) for g in graphs}) == 3  # (a replay returned the recording call's graph object)
    assert "Linear" in graphs[-1].source or "linear" in graphs[-1].source.lower()
    assert f.stats["replays"] == 0 and "tl.viz.draw" in f.stats["last_reason"], f.stats
