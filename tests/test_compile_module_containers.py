"""tl.compile and container Modules (Sequential, ModuleList, ModuleDict): a child appended, inserted, removed or
replaced after the recording changes what the step computes, so the next call records again."""
import numpy as np
import pytest

import tinygrad_lite as tl

nn = tl.nn


def _edits():
    extra = nn.Tanh()
    return {
        "append": lambda c: c.append(extra),
        "insert": lambda c: c.insert(0, extra),
        "pop": lambda c: c.pop(-1) if hasattr(c, "pop") and not isinstance(c, nn.ModuleDict) else c.pop("b"),
        "del": lambda c: c.__delitem__(0 if not isinstance(c, nn.ModuleDict) else "a"),
        "replace": lambda c: c.__setitem__(0 if not isinstance(c, nn.ModuleDict) else "a", extra),
    }


def _case(kind):
    tl.manual_seed(0)
    layers = [nn.Linear(3, 3), nn.Sigmoid(), nn.Linear(3, 3)]
    if kind == "Sequential":
        c = nn.Sequential(*layers)
        return c, lambda x: c(x)
    if kind == "ModuleList":
        c = nn.ModuleList(layers)

        def run(x):  # iterated by the user's code
            for m in c:
                x = m(x)
            return x
        return c, run
    c = nn.ModuleDict({"a": layers[0], "b": layers[1], "c": layers[2]})

    def run(x):
        for m in c.values():
            x = m(x)
        return x
    return c, run


@pytest.mark.parametrize("kind,edit", [(k, e) for k in ("Sequential", "ModuleList", "ModuleDict") for e in sorted(_edits())
                                       if not (k == "ModuleDict" and e in ("insert", "append"))])  # (no such methods)
def test_an_edited_container_records_again(kind, edit):
    container, run = _case(kind)
    f = tl.compile(lambda x: run(x).detach())
    x = tl.randn(4, 3)
    for i in range(5):
        if i == 3:
            _edits()[edit](container)
        assert np.array_equal(f(x).numpy(), run(x).detach().numpy()), (i, f.stats)
    assert f.stats["traces"] == 2 and f.stats["replays"] == 3, f.stats


def test_a_module_dict_updated_after_the_recording_records_again():
    container, run = _case("ModuleDict")
    f = tl.compile(lambda x: run(x).detach())
    x = tl.randn(4, 3)
    f(x), f(x)
    container.update({"d": nn.ReLU()})
    assert np.array_equal(f(x).numpy(), run(x).detach().numpy())
    assert f.stats["traces"] == 2, f.stats


def test_an_unchanged_container_keeps_replaying():
    container, run = _case("Sequential")
    f = tl.compile(lambda x: run(x).detach())
    for _ in range(6):
        f(tl.randn(4, 3))
    assert f.stats["traces"] == 1 and f.stats["replays"] == 5, f.stats
