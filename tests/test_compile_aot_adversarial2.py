"""tl.compile(model) training replays (compile/aot.py) under attack, second pass (after db47d00, which made the
replay's entry check only what its backward reads): in-place changes between a compiled forward and its backward of
a tensor an eager entry reads although its own backward does not need it, and separate backwards of outputs whose
graphs are apart. Each test runs the same seeded loop eagerly and compiled and compares, call by call, the values
bit for bit or raise-vs-raise (same error kind)."""
import warnings

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite import nn
import tinygrad_lite.nn.functional as F

CALLS = 10


def _batches(shape=(8, 12), n=CALLS, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(shape).astype(np.float32), rng.integers(0, 4, shape[0])) for _ in range(n)]


def _ce(out, y):
    return F.cross_entropy(out, tl.tensor(y))


def _run(make, step, compiled, batches=None):
    """`step(f, model, x, y, i)` returns arrays to compare; a raise is recorded as its type. After each call: every
    .grad, then an SGD(momentum) step and zero_grad; at the end every parameter."""
    tl.manual_seed(0)
    model = make()
    opt = tl.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    f = tl.compile(model) if compiled else model
    got = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tl.CompileWarning)
        for i, (x, y) in enumerate(batches or _batches()):
            try:
                got.append([np.asarray(a).copy() for a in step(f, model, x, y, i)])
            except Exception as exc:  # noqa: BLE001 (compared with eager's)
                got.append(("raised", type(exc).__name__))
            got.append([np.array("none") if p.grad is None else p.grad.numpy().copy() for p in model.parameters()])
            opt.step()
            opt.zero_grad()
    got.append([p.numpy().copy() for p in model.parameters()])
    return got, (f if compiled else None)


def _same(a, b):
    if isinstance(a, tuple) or isinstance(b, tuple):
        return a == b
    return len(a) == len(b) and all(x.shape == y.shape and x.dtype == y.dtype and np.array_equal(x, y)
                                    for x, y in zip(a, b))


def _check(make, step, batches=None, expect_raises=None):
    want, _ = _run(make, step, False, batches)
    got, f = _run(make, step, True, batches)
    bad = [i for i, (a, b) in enumerate(zip(want, got)) if not _same(a, b)]
    assert not bad, (f"compiled differs from eager at {bad[:6]}: eager {[want[i] for i in bad[:2]]!s:.300}, "
                     f"compiled {[got[i] for i in bad[:2]]!s:.300} (stats {f.stats})")
    assert f.stats["replays"] >= CALLS - 1 and f.stats["eager_calls"] == 0, f.stats
    if expect_raises is not None:
        assert sum(isinstance(w, tuple) for w in want) == expect_raises
    return f


# ---------------------------------------------------------------- errors eager raises, the replay did not (fixed)

class _Gate(nn.Module):
    """`lin(x * p)`: p gets a gradient (x's values) but eager's mul entry reads both its inputs."""

    def __init__(self):
        super().__init__()
        self.p = nn.Parameter(tl.tensor(np.full((8, 12), 0.7, np.float32)))
        self.lin = nn.Linear(12, 4)

    def forward(self, x):
        return self.lin(x * self.p)


def test_a_parameter_multiplied_by_the_input_changed_in_place_before_backward_raises_as_eager():
    """`out = cm(x)` with forward `lin(x * p)`, then `p.add_(0.5)` under no_grad, then backward. Eager raises
    (mul's entry declares reads=("inputs",), so _check_saved refuses any changed input, even the one whose gradient
    does not need its own values). The replay returned eager-looking gradients on every replayed call. Root cause:
    compile/aot.py, db47d00: `_check_reads` checked only the arguments/live tensors the compiled backward plan reads
    plus the tensors a forward view op viewed; p's gradient is g*x, so the plan never reads p and p (a mere gradient
    target) went unchecked. Fix: `_record_one` notes the arguments and live tensors that are inputs of the entries
    the recorded backward visits whose primitive reads "inputs" (per subset of outputs), and `AotPlan._vjp` checks
    those of the subset it runs, as eager's entries would."""
    def step(f, model, x, y, i):
        out = f(tl.tensor(x))
        with tl.no_grad():
            model.p.add_(0.5)
        loss = _ce(out, y)
        loss.backward()
        return [loss.numpy()]
    _check(_Gate, step, expect_raises=CALLS)


def test_a_bias_changed_in_place_beside_an_input_gate_still_trains_as_eager():
    """The same model with `lin.bias.add_(0.5)` under no_grad before backward: no entry reads a bias, so eager trains
    on, and so does the replay (the fix above checks only inputs of entries that read their inputs)."""
    def step(f, model, x, y, i):
        out = f(tl.tensor(x))
        with tl.no_grad():
            model.lin.bias.add_(0.5)
        loss = _ce(out, y)
        loss.backward()
        return [loss.numpy()]
    _check(_Gate, step, expect_raises=0)


def _change_argument_before_backward(model_cls, how, raises):
    """`h = model.pre(x)` eagerly, `out = post(h)` (post compiled or not), h changed in place (`add_` under no_grad,
    or `relu_()` with a graph) before backward: the compiled run raises in the same calls as the eager one (`raises`
    of CALLS) and otherwise matches it bit for bit, and the compiled post replays."""
    cache = {}

    def step(model, x, y, compiled):
        post = cache.setdefault("post", tl.compile(model.post) if compiled else model.post)
        h = model.pre(tl.tensor(x))
        out = post(h)
        if how == "no_grad add_":
            with tl.no_grad():
                h.add_(1.0)
        else:
            h.relu_()
        loss = _ce(out, y)
        loss.backward()
        return [loss.numpy()]

    def run(compiled):
        cache.clear()
        got, _ = _run(model_cls, lambda f, m, x, y, i: step(m, x, y, compiled), False)
        return got, cache["post"]
    (want, _), (got, post) = run(False), run(True)
    assert sum(isinstance(w, tuple) for w in want) == raises
    bad = [i for i, (a, b) in enumerate(zip(want, got)) if not _same(a, b)]
    assert not bad, (bad[:6], [got[i] for i in bad[:2]], post.stats)
    assert post.stats["replays"] >= CALLS - 1, post.stats


class _Scaled(nn.Module):
    """`lin(h * c)` with h an argument that has a graph of its own and c a constant tensor (no gradient)."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(12, 4)
        self.c = tl.tensor(np.full((8, 12), 0.5, np.float32))

    def forward(self, h):
        return self.lin(h * self.c)


class _PreAndScaled(nn.Module):
    def __init__(self):
        super().__init__()
        self.pre, self.post = nn.Linear(12, 12), _Scaled()


@pytest.mark.parametrize("how", ["no_grad add_", "relu_ with a graph"])
def test_an_argument_with_a_graph_changed_in_place_before_backward_raises_as_eager(how):
    """`h = pre(x)` eagerly, `out = cpost(h)` (compiled, forward `lin(h * c)`), then h changed in place before the
    backward. Eager raises: mul's entry reads its input h (written under no_grad, or rebound to new values by
    `relu_()` with a graph). The replay trained on: h's gradient (g*c) never reads h, and the only thing checked for
    an argument with a graph was its stand-in (version 0 for ever) among the viewed tensors. Root cause and fix as
    above (compile/aot.py `_record_one`/`_vjp`; the fix checks the argument itself, as eager's entry holds it)."""
    _change_argument_before_backward(_PreAndScaled, how, CALLS)

class _Sliced(nn.Module):
    """`lin(h[:, :6] + 1)`: a view of the argument h that nothing saves (the add makes a new array)."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(6, 4)

    def forward(self, h):
        return self.lin(h[:, :6] + 1)


class _PreAndSliced(nn.Module):
    def __init__(self):
        super().__init__()
        self.pre, self.post = nn.Linear(12, 12), _Sliced()


@pytest.mark.parametrize("how, raises", [("no_grad add_", CALLS), ("relu_ with a graph", 0)])
def test_an_argument_with_a_graph_sliced_inside_then_changed_before_backward_acts_as_eager(how, raises):
    """`h = pre(x)`, `out = cpost(h)` with forward `lin(h[:, :6] + 1)`, then h changed before backward. Eager's
    slice entry (its output aliases h) refuses a write of h's memory (`add_` under no_grad) and lets a new history
    (`relu_()` with a graph, new buffer) pass. The replay trained on after the write. Root cause: compile/aot.py
    AotPlan.run put the tensors a forward view op viewed (`self.viewed`) into `_check_reads` as the replay's entry
    inputs, which for an argument with a graph is its stand-in (`_stand_in`, version 0 for ever); `watch` only
    covers outputs and saved arrays that view the argument. Fix: a viewed argument with a graph goes to `watch`
    (the argument itself and its version, checked by `_check_views` for a write only, as eager's view entry)."""
    _change_argument_before_backward(_PreAndSliced, how, raises)


class _TwoApart(nn.Module):
    """Heads `a(x)` and `b(z)` on separate arguments (z may require a gradient): graphs that share no entry."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(12, 4), nn.Linear(12, 3)

    def forward(self, x, z):
        return self.a(x), self.b(z)


@pytest.mark.parametrize("what", ["b.weight", "z"])
def test_a_change_on_the_path_of_an_output_left_out_of_the_backward_passes_as_eager(what):
    """`a, b = cm(x, z)`; then `b.weight` (or the argument z, which requires a gradient) changed in place under
    no_grad; then only `ce(a, y).backward()`. Eager trains on: the entries that read b.weight or z (b's transpose and
    matmul) are not on a's path, so none runs its check. The replay raised RuntimeError ('modified by an in-place
    operation') on every replayed call. Root cause: compile/aot.py AotPlan.run/_vjp checked one list for every
    backward: the arguments and live tensors read by ANY subset's backward plan (`args_used`, `live_used`) and the
    tensors ANY forward view op viewed (`self.viewed`), so a backward of a alone checked b's. Fix: `_record_one`
    notes, per subset of outputs, what eager's entries on that backward's path would check (inputs of entries that
    read their inputs or whose output is a view of them, plus what the subset's plan reads) and `_vjp` checks only
    the subset it runs (reads with `_check_reads`, views with `_check_views`)."""
    def step(f, model, x, y, i):
        z = tl.tensor(x * 2.0, requires_grad=True)
        a, b = f(tl.tensor(x), z)
        with tl.no_grad():
            (model.b.weight if what == "b.weight" else z).add_(0.5)
        loss = _ce(a, y)
        loss.backward()
        return [loss.numpy(), a.numpy(), b.numpy()]
    _check(_TwoApart, step, expect_raises=0)


@pytest.mark.parametrize("what", ["b.weight", "z"])
def test_a_change_on_the_path_of_the_output_backpropagated_still_raises_as_eager(what):
    """The same model and change, then `b.sum().backward()`: eager raises (b's entries read the changed tensor), and
    so does the replay."""
    def step(f, model, x, y, i):
        z = tl.tensor(x * 2.0, requires_grad=True)
        a, b = f(tl.tensor(x), z)
        with tl.no_grad():
            (model.b.weight if what == "b.weight" else z).add_(0.5)
        loss = b.sum()
        loss.backward()
        return [loss.numpy()]
    _check(_TwoApart, step, expect_raises=CALLS)


# ---------------------------------------------------------------- separate backwards of several outputs

class _TwoHeads(nn.Module):
    """Two heads on the (gradient-free) input: their graphs share no entry; with `trunk`, both read one hidden layer
    (a shared entry: eager's second backward without retain_graph raises)."""

    def __init__(self, as_dict=False, trunk=False):
        super().__init__()
        self.a, self.b, self.as_dict = nn.Linear(12, 4), nn.Linear(12, 3), as_dict
        self.trunk = nn.Linear(12, 12) if trunk else None

    def forward(self, x):
        if self.trunk is not None:
            x = self.trunk(x).tanh()
        a, b = self.a(x), self.b(x)
        return {"a": a, "b": b} if self.as_dict else (a, b)


@pytest.mark.parametrize("order", ["a then b", "b then a"])
@pytest.mark.parametrize("trunk", [False, True], ids=["independent", "shared trunk"])
def test_separate_backwards_of_two_outputs_work_or_raise_as_eager(order, trunk):
    """`a, b = cm(x)`; `ce(a, y).backward()` then `b.sum().backward()` (or reversed), both without retain_graph.
    Independent heads: both backwards work in eager, each head's parameters get their gradient; the replay's one
    entry for both outputs used to be freed by the first backward, so the second raised 'backward through the graph
    a second time'. It now frees an output's part only, and refuses where the two paths share an entry of eager's
    (a shared trunk: eager raises at the second backward, every call)."""
    def step(f, model, x, y, i):
        a, b = f(tl.tensor(x))
        losses = [_ce(a, y), b.sum()]
        for loss in (losses if order == "a then b" else losses[::-1]):
            loss.backward()
        return [a.numpy(), b.numpy()]
    _check(lambda: _TwoHeads(trunk=trunk), step, expect_raises=CALLS if trunk else 0)


def test_autograd_grad_of_one_dict_output_then_backward_of_the_other_works_as_eager():
    """`d = cm(x)` returning {"a": ..., "b": ...} with independent heads; `tl.autograd.grad(ce(d["a"], y),
    [a.weight])` then `d["b"].sum().backward()`, then the same backward again (eager raises: its path is freed)."""
    def step(f, model, x, y, i):
        d = f(tl.tensor(x))
        g, = tl.autograd.grad(_ce(d["a"], y), [model.a.weight])
        d["b"].sum().backward()
        out = [g.numpy(), d["b"].numpy()]
        try:
            d["b"].sum().backward()
        except RuntimeError as exc:
            assert "second time" in str(exc)
            return out + [np.array("raised")]
        return out
    _check(lambda: _TwoHeads(as_dict=True), step)


def test_a_backward_through_both_outputs_after_one_of_them_raises_as_eager():
    """Independent heads: `a.sum().backward()`, then `(a.sum() + b.sum()).backward()`: eager raises (a's path was
    freed), and so does the replay, with b's parameters left without a gradient as in eager."""
    def step(f, model, x, y, i):
        a, b = f(tl.tensor(x))
        a.sum().backward()
        (a.sum() + b.sum()).backward()
        return [a.numpy()]
    _check(_TwoHeads, step, expect_raises=CALLS)


# ---------------------------------------------------------------- probes that held (kept as regressions)

def _mlp():
    return nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 4))


def test_two_forwards_then_their_backwards_in_reverse_order_and_accumulation_match_eager():
    """Three compiled forwards (dropout draws), then their backwards in reverse order, accumulating before one step:
    eager's losses, .grads and parameters bit for bit (each replay's entry holds its own saved arrays)."""
    def step(f, model, x, y, i):
        outs = [f(tl.tensor(x * k)) for k in (1.0, 2.0, 3.0)]
        for o in outs[::-1]:
            (_ce(o, y) / 3).backward()
        return [o.numpy() for o in outs]
    f = _check(_mlp, step)
    assert f.stats["replays"] >= 3 * CALLS - 1, f.stats


# ---------------------------------------------------------------- an index changed in place before backward

class _Emb(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 4)

    def forward(self, t):
        return self.emb(t)


def test_an_index_tensor_changed_in_place_before_backward_acts_as_eager():
    """`out = cm(t)` (Embedding), `t.add_(1)`, backward: eager and the replay both scatter the gradient to the rows
    the forward read (getitem copies its index, as PyTorch makes an index a tensor of its own). Eager used to keep
    t's buffer as the index and moved the gradient to the new rows; the replay raised."""
    def step(f, model, x, y, i):
        t = tl.tensor((np.abs(x[:, 0]) * 3).astype(np.int64) % 9)
        out = f(t)
        t.add_(1)
        loss = _ce(out, y)
        loss.backward()
        return [loss.numpy()]
    _check(_Emb, step)
