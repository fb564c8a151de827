"""tl.compile and the containers a step reads whole (compile/constants.py `keep_whole`, `_Contents`): a list, dict, set
or tuple that the step's code iterates, slices, tests with `in`, reads with a computed key or a method, or passes on is
one guard on everything it holds. Each test compares the compiled call with the eager call bit for bit (12 calls, the
change before the 6th), or checks the reason a call ran eagerly."""
import warnings

import numpy as np
import pytest

import tinygrad_lite as tl

from test_compile_constants_adversarial import _mismatches, _x

nn = tl.nn

SCALES = [2.0, 1.0]
CFG = {"a": 2.0, "b": 3.0}
FLAGS = {"fast"}
KEY = "a"
GROUPS = [{"s": 2.0}, {"s": 1.0}]


@pytest.fixture(autouse=True)
def _reset():
    SCALES[:] = [2.0, 1.0]
    CFG.clear()
    CFG.update(a=2.0, b=3.0)
    FLAGS.clear()
    FLAGS.add("fast")
    GROUPS[:] = [{"s": 2.0}, {"s": 1.0}]
    yield


def _loop(x):
    for s in SCALES:
        x = x * s
    return x.detach()


def _nested(x):
    for g in GROUPS:
        x = x * g["s"]
    return x.detach()


CASES = {  # name: (step, the change)
    "for s in lst": (_loop, lambda: SCALES.__setitem__(1, 3.0)),
    "for s in lst, an item appended": (_loop, lambda: SCALES.append(3.0)),
    "sum(lst[:1])": (lambda x: (x * sum(SCALES[:1])).detach(), lambda: SCALES.__setitem__(0, 3.0)),
    "cfg[computed key]": (lambda x: (x * CFG[KEY.lower()]).detach(), lambda: CFG.__setitem__("a", 3.0)),
    "cfg.get(key)": (lambda x: (x * CFG.get("a", 1.0)).detach(), lambda: CFG.__setitem__("a", 3.0)),
    "sum(cfg.values())": (lambda x: (x * sum(CFG.values())).detach(), lambda: CFG.__setitem__("b", 4.0)),
    "'key' in cfg": (lambda x: (x * (3.0 if "c" in CFG else 2.0)).detach(), lambda: CFG.__setitem__("c", 1.0)),
    "'flag' in set": (lambda x: (x * (2.0 if "fast" in FLAGS else 3.0)).detach(), lambda: FLAGS.discard("fast")),
    "a dict in a list read whole": (_nested, lambda: GROUPS[1].__setitem__("s", 3.0)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_a_container_read_whole_is_never_replayed_stale(name):
    fn, change = CASES[name]
    bad, stats = _mismatches(fn, change)
    assert bad == [] and stats["replays"] >= 8, stats  # (it replays before the change and after its new recording)


def test_an_int_item_becoming_a_float_changes_an_integer_result_and_is_a_guard():
    """`x * lst[0]` with x an int64 tensor: 2 gives int64, 2.0 float32 (PyTorch's promotion). 2 == 2.0, so only the
    items' types tell the snapshots apart."""
    vals = [2]
    f = tl.compile(lambda x: x * vals[len(vals) - 1])  # (a computed index: the list is read whole)
    x = tl.tensor(np.arange(4))
    for _ in range(3):
        assert f(x).dtype == tl.int64
    vals[0] = 2.0
    out = f(x)
    assert out.dtype == tl.float32 and f.stats["traces"] == 2, f.stats


def test_a_plain_list_of_layers_is_guarded_item_by_item_and_their_code_scanned():
    tl.manual_seed(0)
    layers = [nn.Linear(3, 3), nn.Linear(3, 3)]

    class Scaled(nn.Module):
        def __init__(self, k):
            super().__init__()
            self.k = k

        def forward(self, x):
            return x * self.k

    @tl.no_grad()
    def step(x):
        for layer in layers:
            x = layer(x)
        return x

    f = tl.compile(step)
    x = tl.tensor(np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3))
    for _ in range(3):
        assert np.array_equal(f(x).numpy(), step(x).numpy())
    layers[1] = Scaled(2.0)  # another object in the list: a new recording
    assert np.array_equal(f(x).numpy(), step(x).numpy()) and f.stats["traces"] == 2
    f(x)
    layers[1].k = 5.0  # a setting of a layer found in the list: its code was scanned, `self.k` is a guard
    assert np.array_equal(f(x).numpy(), step(x).numpy()) and f.stats["traces"] == 3, f.stats


def test_a_step_that_changes_a_list_it_reads_runs_eagerly_with_eagers_effects():
    """`log.append(...)` every call: the list changes on each call, so no recording holds; every call runs the
    function (recorded or eagerly), and the list ends as eager leaves it, never missing the replayed calls."""
    log = []

    def step(x):
        log.append(len(log))
        return (x * 2).detach()
    f = tl.compile(step)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", tl.CompileWarning)
        for _ in range(12):
            f(_x())
    assert log == list(range(12)) and f.stats["replays"] == 0, f.stats
    assert "the contents of 'log'" in f.stats["last_reason"]
    assert sum(issubclass(w.category, tl.CompileWarning) for w in caught) == 1


def test_a_container_of_too_many_containers_runs_eagerly_and_fullgraph_names_it():
    """Each nested container is checked on its own: more than 4096 of them is a limit (eager, with the reason)."""
    rows = [[1.0] for _ in range(5000)]

    def step(x):
        return (x * (2.0 if len(rows) > 5 else 1.0)).detach()
    f = tl.compile(step)
    for _ in range(3):
        assert np.array_equal(f(_x()).numpy(), step(_x()).numpy())
    assert f.stats["replays"] == 0 and "'rows' is read whole" in f.stats["last_reason"], f.stats
    with pytest.raises(tl.CompileError, match="'rows' is read whole"):
        tl.compile(step, fullgraph=True)(_x())


def test_a_container_whose_class_iterates_it_with_its_own_code_runs_eagerly():
    class Shuffled(list):
        def __iter__(self):
            return reversed(list(list.__iter__(self)))
    scales = Shuffled([2.0, 3.0])

    def step(x):
        for s in scales:
            x = x * s
        return x.detach()
    f = tl.compile(step)
    for _ in range(3):
        assert np.array_equal(f(_x()).numpy(), step(_x()).numpy())
    assert f.stats["replays"] == 0 and "Shuffled iterates it" in f.stats["last_reason"], f.stats


def test_a_long_list_of_settings_is_one_cheap_guard_and_a_nan_in_it_still_replays():
    """A W1-style op list (hundreds of (kind, constant) tuples, one NaN among them) is guarded without falling back,
    and an unchanged NaN item (the same object) does not count as a change."""
    ops = [("mul", 1.25), ("add", 0.0)] * 300 + [("add", float("nan"))]

    def step(x):
        for kind, c in ops:
            x = x * c if kind == "mul" else x + c
        return x.detach()
    f = tl.compile(step)
    for _ in range(10):
        f(_x())
    assert f.stats["traces"] == 1 and f.stats["replays"] == 9, f.stats
    ops[0] = ("mul", 1.5)
    assert np.array_equal(f(_x()).numpy(), step(_x()).numpy(), equal_nan=True) and f.stats["traces"] == 2


class _Group:
    def __init__(self, scale):
        self.scale = scale


def test_the_settings_of_objects_in_a_container_read_whole_are_guards():
    """`for g in groups: x * g.scale`: g is a local variable, but each object of the list (or dict) is guarded like
    getattr's object: its data attributes and which it has."""
    groups, named = [_Group(2.0), _Group(1.0)], {"a": _Group(2.0)}

    def loop(x):
        for g in groups:
            x = x * g.scale
        return x.detach()

    def by_name(x):
        for g in named.values():
            x = x * getattr(g, "extra", g.scale)
        return x.detach()
    for fn, change in ((loop, lambda: setattr(groups[1], "scale", 3.0)),
                       (by_name, lambda: setattr(named["a"], "scale", 5.0)),
                       (by_name, lambda: setattr(named["a"], "extra", 7.0))):
        bad, stats = _mismatches(fn, change)
        assert bad == [] and stats["replays"] >= 8, (fn.__name__, stats)
