"""tl.compile: an attribute assigned on an object the scan cannot name without running code (a call's result, an item
at a computed key, a local assigned from either, a loop's variable) runs the call eagerly: that object may outlive
the call, and a replay, which runs no Python, would leave it as the recording call did. Each test runs the compiled
step beside an eager twin (test_compile_assignments' helper) and compares results and attributes after every call;
the fallback must not reach what the capture follows itself (a tensor's .grad/.data/.requires_grad) or a new object's
own attributes. (Before the fix, a stored tensor and `get().n += 1` replayed stale; forms whose attribute the step also
reads, `s.n += 1`, were guarded by that value and recorded again at every call, then ran eagerly with a warning.)"""
import numpy as np
import pytest

import tinygrad_lite as tl

from test_compile_assignments import _Box, _eager, _replays, _twin, _x

REASON = "reached through a call's result, an item or a local variable"


class _Tracker(_Box):
    def __delattr__(self, name):  # (`del t.tmp` counts in n, and tmp stays: each call can delete it again)
        object.__setattr__(self, "n", self.n + 1)


def _tracker():
    box = _Tracker()
    box.n, box.last, box.tmp = 0, None, 0
    return box


def _state(*boxes):
    return lambda: [[b.n, None if b.last is None else b.last.numpy().tolist()] for b in boxes]


@pytest.mark.parametrize("how", ["local from a method", "item at a computed key", "loop variable", "helper's local",
                                 "setattr on a local", "del on a call's result", "tensor on a local"])
def test_a_store_on_an_object_the_scan_cannot_name_runs_eagerly(how):
    def make():
        class Trainer:
            def __init__(self):
                self.stats, self.items, self.k = _tracker(), [_tracker(), _tracker()], 1

            def get_stats(self):
                return self.stats

            def helper(self):
                s = self.get_stats()
                s.n += 2

            def step(self, x):
                if how == "local from a method":
                    s = self.get_stats()
                    s.n += 1
                elif how == "item at a computed key":
                    self.items[self.k].n += 1
                elif how == "loop variable":
                    for item in self.items:
                        item.n -= 1
                elif how == "helper's local":
                    self.helper()
                elif how == "setattr on a local":
                    s = self.get_stats()
                    setattr(s, "n", s.n + 3)
                elif how == "del on a call's result":
                    del self.get_stats().tmp
                else:
                    s = self.get_stats()
                    s.last = (x * 3).detach()
                return x * 2
        t = Trainer()
        return t.step, _state(t.stats, *t.items)
    _eager(_twin(make), REASON)


def test_the_reason_names_the_attribute_and_the_function():
    stats = _tracker()

    def get():
        return stats

    def step(x):
        get().n += 1
        return x + 1
    f = tl.compile(step)
    for i in range(3):
        f(_x(i))
    assert stats.n == 3
    reason = f.stats["last_reason"]
    assert "'.n'" in reason and "step" in reason and REASON in reason, reason


def test_a_fullgraph_compile_raises_for_it():
    stats = _tracker()

    def step(x):
        s = (lambda: stats)()
        s.n += 1
        return x + 1
    with pytest.raises(tl.CompileError, match="'.n'"):
        tl.compile(step, fullgraph=True)(_x(0))


def test_what_the_capture_follows_still_replays():
    """A loop's parameter given .grad = None, a local tensor given requires_grad, and a new object's own attributes
    (a constructor scanned with the class as self) are no stores on outside objects: the step replays."""
    def make():
        model = tl.nn.Linear(3, 2)
        model.weight.data = tl.tensor(np.arange(6, dtype=np.float32).reshape(2, 3) / 10)
        model.bias.data = tl.zeros(2)
        opt = tl.optim.SGD(model.parameters(), lr=0.1)

        class Out:
            def __init__(self, v):
                self.v = v

        def step(x):
            for p in model.parameters():
                p.grad = None
            inp = x.detach()
            inp.requires_grad = True
            loss = (model(inp) ** 2).sum()
            loss.backward()
            out = Out(loss.item() + inp.grad.abs().sum().item())
            opt.step()
            return out.v
        return step, lambda: [model.weight.numpy().tolist(), model.bias.numpy().tolist()]
    _replays(_twin(make), traces=2)  # (the second: the parameters hold a .grad at the call's start)
