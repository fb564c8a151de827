"""tl.compile with NumPy arrays as arguments (compile/watched.py): the recording call's code gets Watched views, so
Python code that reads an argument's values into Python numbers (which a replay would keep) or writes them (which a
replay would skip) makes the call run eagerly with the reason, while the library's own operations on the arrays
record and replay as before. Each compiled call is compared with the eager call bit for bit, arguments included."""
import types
import warnings

import numpy as np
import pytest

import tinygrad_lite as tl

nn = tl.nn
F = nn.functional


def _compare(fn, calls=10, n=4):
    """(compiled stats, whether every call's result and argument matched eager's) over `calls` new arrays."""
    f, rng, ok = tl.compile(fn), np.random.default_rng(0), True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tl.CompileWarning)
        for _ in range(calls):
            a = rng.standard_normal(n).astype(np.float32)
            mine, theirs = a.copy(), a.copy()
            got, want = f(mine), fn(theirs)
            got, want = (np.asarray(v.numpy() if isinstance(v, tl.Tensor) else v) for v in (got, want))
            ok = ok and np.array_equal(got, want) and np.array_equal(mine, theirs)
    return f.stats, ok


READS = {
    "float(a[0])": lambda a: (tl.tensor([float(a[0]), 1.0]) * 2).detach(),
    "x * a.sum()": lambda a: (tl.ones(3) * a.sum()).detach(),
    "x * a.max() (np.max)": lambda a: (tl.ones(3) * np.max(a)).detach(),
    "a.tolist()": lambda a: tl.tensor(a.tolist()[:2]).detach(),
    "a.item() of a view": lambda a: (tl.ones(2) * a[1:2].item()).detach(),
    "for v in a": lambda a: tl.tensor([v * 2 for v in a]).detach(),
    "if a[0] > 0 (a branch)": lambda a: (tl.ones(2) * (2.0 if a[0] > 0 else 3.0)).detach(),
    "f-string of a": lambda a: (tl.ones(2) * len(f"{a}")).detach(),
    "int(a.argmax())": lambda a: (tl.arange(4) * int(a.argmax())).detach(),
    "np.dot(a, a)": lambda a: (tl.ones(2) * np.dot(a, a)).detach(),
    "np.array_equal(a, a[::-1])": lambda a: (tl.ones(2) * np.array_equal(a, a[::-1])).detach(),
}


@pytest.mark.parametrize("name", list(READS))
def test_values_of_a_numpy_argument_read_in_python_make_the_call_run_eagerly(name):
    stats, ok = _compare(READS[name])
    assert ok and stats["replays"] == 0 and "NumPy argument 0 are read" in stats["last_reason"], stats


WRITES = {
    "a[0] = 1": lambda a: (a.__setitem__(0, 1.0), tl.tensor(a) * 2)[1].detach(),
    "a += 1": lambda a: (np.add(a, 1.0, out=a), tl.tensor(a) * 2)[1].detach(),
}


@pytest.mark.parametrize("name", list(WRITES))
def test_a_numpy_argument_written_in_python_makes_the_call_run_eagerly_and_the_write_happens(name):
    stats, ok = _compare(WRITES[name])
    assert ok and stats["replays"] == 0 and "NumPy argument 0 are written" in stats["last_reason"], stats


def test_a_training_step_on_numpy_batches_replays_bit_for_bit():
    """The usual use: NumPy arrays in, tensors made from them, the library's loss reading the labels (a host
    computation inside the library, not the user's Python): no false alarm, every call after the first replays."""
    def run(compiled):
        tl.manual_seed(0)
        model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
        opt = tl.optim.SGD(model.parameters(), lr=0.1)

        def step(x, y):
            opt.zero_grad()
            loss = F.cross_entropy(model(tl.tensor(x)), tl.tensor(y))
            loss.backward()
            opt.step()
            return loss.item(), x.shape[0], len(y)
        f = tl.compile(step) if compiled else step
        rng = np.random.default_rng(1)
        out = [f(rng.standard_normal((5, 4)).astype(np.float32), rng.integers(0, 3, 5)) for _ in range(10)]
        return out, model[0].weight.numpy().copy(), getattr(f, "stats", None)
    (want, w_want, _), (got, w_got, stats) = run(False), run(True)
    assert got == want and np.array_equal(w_got, w_want) and stats["replays"] == 9, stats


def test_views_and_shapes_of_a_numpy_argument_are_not_reads():
    """Shapes, dtypes, views handed to the library (`tl.tensor(a[::2])` is data from outside the recorded operations,
    as before: eager), and arithmetic whose result goes to the library are not value reads of the argument."""
    def step(a):
        n = a.shape[0] + len(a) + a.ndim + a.size + np.ndim(a) + (str(a.dtype) == "float32") + np.shape(a)[0]
        return (tl.tensor(a) * n).detach()
    stats, ok = _compare(step)
    assert ok and stats["replays"] == 9, stats


def test_the_watched_view_never_leaks_into_results_or_later_eager_calls():
    kept = types.SimpleNamespace(a=None)

    def step(a):
        kept.a = a  # (the caller may keep what the recording call saw)
        return (tl.tensor(a) + 1).detach()
    f = tl.compile(step)
    a = np.arange(4, dtype=np.float32)
    out = f(a)
    assert type(out.numpy()) is np.ndarray and np.array_equal(out.numpy(), a + 1)
    assert float(kept.a[0]) == 0.0 and type(kept.a + 1) is np.ndarray  # outside a recording: a plain array
    f(a)
    assert f.stats["replays"] == 1, f.stats
