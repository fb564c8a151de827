"""tl.compile: guards (a change records another variant or runs eagerly, never a stale answer), what falls back
to eager and why, the footguns other tracing JITs' users hit, and returned values. Values read into Python and
dynamic numbers: test_compile_reads.py; memory and threads: test_compile_memory.py; the Python values the step
reads: test_compile_constants.py."""
import warnings

import numpy as np
import pytest

import tinygrad_lite as tl
from _compile_common import features as _x, inference as _inference, seeded_model as _model

nn, F = tl.nn, tl.nn.functional


# ---------------- guards ----------------
def test_shapes_dtypes_and_structure_record_variants():
    model = _model()
    f = tl.compile(_inference(model))
    for n, seed in ((3, 0), (3, 1), (5, 2), (3, 3), (5, 4)):
        x = _x(n, seed)
        assert np.array_equal(f(x).numpy(), model(x).numpy())
    assert f.stats["variants"] == 2 and f.stats["replays"] == 3
    model64 = _model().double()
    g = tl.compile(_inference(model64))
    g(_x(3, 0, np.float64))
    out = g(_x(3, 0, np.float32))  # a new dtype: a new capture
    assert out.dtype == tl.float64 and np.array_equal(out.numpy(), model64(_x(3, 0, np.float32)).numpy())
    assert g.stats["variants"] == 2


def test_python_scalars_are_guarded_by_value():
    def fn(x, scale):
        return x * scale
    f = tl.compile(fn)
    x = _x()
    for s in (2.0, 2.0, 3.0, 2.0, 3.0):
        assert np.array_equal(f(x, s).numpy(), (x * s).numpy())
    assert f.stats["variants"] == 2 and f.stats["replays"] == 3


def test_grad_mode_train_eval_requires_grad_and_parameters_are_guarded():
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))
    f = tl.compile(_inference(model))
    x = _x()
    train_out = f(x)
    model.eval()
    assert np.array_equal(f(x).numpy(), x.numpy() @ model[0].weight.numpy().T + model[0].bias.numpy())
    with tl.no_grad():
        f(x)
    model[0].weight.requires_grad_(False)
    f(x)
    model[0].weight = nn.Parameter(tl.zeros(4, 4))
    assert np.array_equal(f(x).numpy(), np.broadcast_to(model[0].bias.numpy(), (3, 4)))
    assert f.stats["variants"] == 5 and train_out.shape == (3, 4)


def test_a_layer_setting_changed_between_calls_is_guarded():
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.2))
    f = tl.compile(_inference(model))
    x = _x()
    f(x)
    f(x)
    model[1].p = 0.0  # dropout off: the replay must not keep drawing masks with p=0.2
    assert np.array_equal(f(x).numpy(), model[0](x).numpy())
    assert f.stats["variants"] == 2


def test_which_grads_are_none_is_guarded():
    w = tl.ones(3, requires_grad=True)

    def fn(x):
        if w.grad is None:  # Python that branches on it
            (w * x).sum().backward()
        else:
            (w * x * 2).sum().backward()
        return w.grad.sum().item()
    f = tl.compile(fn)
    x = tl.tensor([1.0, 2.0, 3.0])
    assert [f(x), f(x), f(x)] == [6.0, 18.0, 30.0]
    w.grad = None
    assert f(x) == 6.0


def test_past_max_variants_the_call_runs_eagerly_with_one_warning():
    f = tl.compile(lambda x: x * 2, max_variants=2)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        for n in range(1, 6):
            assert np.array_equal(f(tl.ones(n)).numpy(), np.full(n, 2.0))
    warned = [w for w in seen if issubclass(w.category, tl.CompileWarning)]
    assert len(warned) == 1 and "2 variants" in str(warned[0].message)
    assert f.stats["eager_calls"] == 3 and f.stats["variants"] == 2


# ---------------- footguns (tinygrad's test_jit_footguns, PyTorch's and JAX's users) ----------------
def test_returned_tensors_are_never_overwritten_by_later_calls():
    f = tl.compile(lambda x: (x * 2).exp())
    outs = [f(tl.tensor([float(i)])) for i in range(5)]
    assert [o.item() for o in outs] == [np.exp(np.float32(2.0 * i)).item() for i in range(5)]


def test_random_numbers_are_drawn_anew_on_every_replay_from_the_same_stream():
    def fn(x):
        return x + tl.randn(3) + F.dropout(tl.ones(3), 0.5)
    f = tl.compile(fn)
    tl.manual_seed(5)
    got = [f(tl.zeros(3)).numpy() for _ in range(4)]
    tl.manual_seed(5)
    want = [fn(tl.zeros(3)).numpy() for _ in range(4)]
    assert all(np.array_equal(a, b) for a, b in zip(got, want))
    assert not np.array_equal(got[2], got[3]) and f.stats["replays"] == 3


def test_gradient_accumulation_without_zero_grad_matches_eager():
    def run(compiled):
        model = _model()

        def fn(x):
            model(x).sum().backward()
        f = tl.compile(fn) if compiled else fn
        for i in range(5):
            f(_x(seed=i))
        return [p.grad.numpy().copy() for p in model.parameters()], f
    (eager, _), (comp, f) = run(False), run(True)
    assert all(np.array_equal(a, b) for a, b in zip(eager, comp)) and f.stats["replays"] >= 3


def test_manual_sgd_update_inside_the_function_trains_as_eager():
    def run(compiled):
        w = tl.tensor([0.5, -0.5], requires_grad=True)
        params = [w]

        def step(x, y):
            loss = ((x @ w - y) ** 2).mean()
            loss.backward()
            with tl.no_grad():
                for p in params:
                    p -= 0.1 * p.grad
                    p.grad = None
            return loss.item()
        f = tl.compile(step) if compiled else step
        rng = np.random.default_rng(0)
        losses = [f(tl.tensor(rng.standard_normal((4, 2)).astype(np.float32)), tl.tensor(rng.standard_normal(4)
                                                                                      .astype(np.float32)))
                  for _ in range(8)]
        return losses, w.numpy().copy(), w._version, f
    (le, we, ve, _), (lc, wc, vc, f) = run(False), run(True)
    assert le == lc and np.array_equal(we, wc) and ve == vc and f.stats["replays"] >= 6


# ---------------- what runs eagerly, and errors ----------------
def test_hooks_and_anomaly_mode_run_eagerly_or_raise_with_fullgraph():
    model = _model()
    handle = model[0].register_forward_hook(lambda m, i, o: None)
    f = tl.compile(_inference(model))
    f(_x())
    f(_x())
    assert f.stats["eager_calls"] == 1 and "hooks" in f.stats["last_reason"]
    handle.remove()
    g = tl.compile(_inference(model))
    with tl.autograd.detect_anomaly():
        g(_x())
    assert "anomaly" in g.stats["last_reason"]
    w = tl.ones(2, requires_grad=True)
    w.register_hook(lambda grad: grad * 2)
    with pytest.raises(tl.CompileError, match="gradient hook"):
        tl.compile(lambda x: (w * x).sum().backward(), fullgraph=True)(tl.ones(2))


def test_an_error_raised_eagerly_is_raised_by_a_replay_too():
    model = _model()

    def fn(x, y):
        return F.cross_entropy(model(x), y).item()
    f = tl.compile(fn)
    f(_x(), tl.tensor([0, 1, 1]))
    f(_x(), tl.tensor([1, 0, 1]))
    with pytest.raises(IndexError, match="target 7 is out of bounds for 2 classes"):
        f(_x(), tl.tensor([0, 7, 1]))
    assert f.stats["replays"] >= 1



@pytest.mark.parametrize("bad", [[[0], [1], [4]], [[0], [-1], [2]]])
def test_a_gather_index_out_of_range_in_a_replay_raises_instead_of_reading_a_neighbour(bad):
    """The index reaches the replayed gather unchecked by the eager front end: the primitive itself refuses it (a
    negative index used to wrap around, a flat position past the row would read the next row)."""
    x = tl.tensor(np.arange(12.0).reshape(3, 4), requires_grad=True)

    def fn(x, idx):
        x.grad = None
        loss = x.gather(1, idx).sum()
        loss.backward()
        return loss.item()
    f = tl.compile(fn)
    for _ in range(3):
        assert f(x, tl.tensor([[0], [1], [3]])) == 16.0
    assert f.stats["replays"] >= 1
    with pytest.raises(IndexError, match=r"gather: index values must be in \[0, 4\) along dim 1"):
        f(x, tl.tensor(bad))


def test_an_unused_gather_still_raises_on_a_bad_index_while_unused_arithmetic_is_not_replayed():
    """Steps whose results nothing reads are dropped from a replay (an LSTM's output sequence when only the final
    state is used), except those indexed by data: eager raises on a bad index, so a replay must too."""
    x = tl.tensor(np.arange(12.0).reshape(3, 4), requires_grad=True)

    def fn(x, idx):
        x.gather(1, idx)  # unused, but its index is checked
        (x * 2.0).exp().sum()  # unused arithmetic
        return (x * 3.0).sum().item()
    f = tl.compile(fn)
    for _ in range(3):
        assert f(x, tl.tensor([[0], [1], [3]])) == 198.0
    plan = f._variants[0].plan
    names = [item.prim.name for kind, item in plan._pending[0] if kind == "op" and item.prim is not None]
    assert "gather" in names and "exp" not in names, names
    assert f.stats["replays"] >= 1
    with pytest.raises(IndexError, match=r"gather: index values must be in \[0, 4\) along dim 1"):
        f(x, tl.tensor([[0], [4], [3]]))


def test_an_lstm_whose_output_sequence_is_unused_replays_without_stacking_it():
    tl.manual_seed(0)
    lstm = tl.nn.LSTM(3, 5)

    def fn(x):
        lstm.zero_grad()
        _, (h, _) = lstm(x)
        loss = (h ** 2).sum()
        loss.backward()
        return loss.item()
    f = tl.compile(fn)
    xs = [tl.tensor(np.random.default_rng(i).standard_normal((6, 2, 3)).astype(np.float32)) for i in range(4)]
    for x in xs:
        got = (f(x), [p.grad.numpy().copy() for p in lstm.parameters()])
        want = (fn(x), [p.grad.numpy().copy() for p in lstm.parameters()])
        assert got[0] == want[0] and all(np.array_equal(a, b) for a, b in zip(got[1], want[1]))
    plan = f._variants[0].plan
    stacked = [item.layout[0] for kind, item in plan._pending[0]  # a (T, H, B) cat (others join the bias to W_ih)
               if kind == "op" and item.prim is not None and item.prim.name == "cat" and item.layout[0] == (6, 5, 2)]
    assert stacked == [], "the output sequence is stacked"  # h_n alone: the output and c_n are unused
    assert any(kind == "op" and item.prim is not None and item.prim.name == "cat" and item.layout[0] == (1, 2, 5)
               for kind, item in plan._pending[0]), "h_n is stacked"

def test_an_argument_passed_twice_is_a_different_signature_from_two_arguments():
    """Recorded as f(x, x), the plan reads one array for both: f(a, b) must not replay it (it returned 2a + a)."""
    def fn(x, y):
        return x * 2.0 + y
    f = tl.compile(fn)
    x = tl.tensor([1.0, 2.0])
    a, b = tl.tensor([1.0, 1.0]), tl.tensor([10.0, 20.0])
    for _ in range(3):
        assert f(x, x).tolist() == [3.0, 6.0]
        assert f(a, b).tolist() == [12.0, 22.0]
        assert f(a, a.detach()).tolist() == [3.0, 3.0]  # one array in two tensors: aliased too
    assert f.stats["variants"] == 3 and f.stats["replays"] == 6, f.stats


def test_gradients_into_an_argument_go_to_each_calls_argument_and_replay():
    """Input gradients by backward() (saliency maps, FGSM): the argument of each call gets its own .grad, and the
    step replays instead of recording a variant per call (the recorded call's tensor used to be the target)."""
    tl.manual_seed(0)
    model = tl.nn.Sequential(tl.nn.Linear(4, 8), tl.nn.Tanh(), tl.nn.Linear(8, 3))

    def fn(x, y):
        model.zero_grad()
        loss = tl.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        x.data.add_(0.1 * x.grad.sign())  # an in-place step on the argument: its own version goes up
        return x.grad, loss.item()
    f = tl.compile(fn)
    rng = np.random.default_rng(0)
    held = []
    for call in range(10):
        data, y = rng.standard_normal((5, 4)).astype(np.float32), tl.tensor(rng.integers(0, 3, 5))
        x, xe = tl.tensor(data, requires_grad=True), tl.tensor(data.copy(), requires_grad=True)
        (g, loss), (ge, loss_e) = f(x, y), fn(xe, y)
        assert g is x.grad and loss == loss_e and np.array_equal(g.numpy(), ge.numpy())
        assert np.array_equal(x.numpy(), xe.numpy()) and x._version == xe._version, call
        held.append((x, g.numpy().copy()))
    assert all(np.array_equal(x.grad.numpy(), g) for x, g in held)  # no later call touched an earlier one
    assert f.stats["traces"] == 1 and f.stats["replays"] == 9, f.stats


@pytest.mark.parametrize("update", ["mul_add", "copy", "fill", "setitem", "isub"])
def test_a_buffer_first_touched_by_an_in_place_update_under_no_grad_replays(update):
    """A running average kept in a registered buffer, updated in place under no_grad (the pattern errors.md gives
    instead of reassigning an attribute): the buffer was not yet known to the capture, which refused the call."""
    class Avg(tl.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = tl.nn.Linear(3, 2)
            self.register_buffer("avg", tl.zeros(2))

        def forward(self, x):
            y = self.lin(x)
            with tl.no_grad():
                m = y.mean(0)
                if update == "mul_add":
                    self.avg.mul_(0.9).add_(0.1 * m)
                elif update == "copy":
                    self.avg.copy_(self.avg * 0.5 + m)
                elif update == "fill":
                    self.avg.fill_(m.sum())
                elif update == "setitem":
                    self.avg[1:] = m[:1]
                else:
                    self.avg -= m
            return y

    def make():
        tl.manual_seed(0)
        model = Avg()
        opt = tl.optim.SGD(model.parameters(), lr=0.1)

        def step(x):
            opt.zero_grad()
            loss = (model(x) ** 2).sum()
            loss.backward()
            opt.step()
            return loss.item()
        return model, step
    (m1, eager), (m2, step) = make(), make()
    compiled = tl.compile(step)
    rng = np.random.default_rng(0)
    for _ in range(10):
        x = tl.tensor(rng.standard_normal((4, 3)).astype(np.float32))
        assert eager(x) == compiled(x)
        assert np.array_equal(m1.avg.numpy(), m2.avg.numpy()) and m1.avg._version == m2.avg._version
    assert compiled.stats["replays"] == 9, compiled.stats


@pytest.mark.parametrize("zero_first, set_to_none, traces", [(True, True, 1), (True, False, 2), (False, True, 1),
                                                            (False, False, 2)])
def test_whether_gradients_exist_is_a_guard_unless_zero_grad_clears_them_first(zero_first, set_to_none, traces):
    """zero_grad(set_to_none=True) at the start makes every .grad None whatever it was: no guard, the second call
    replays. Zeroing in place leaves gradients that exist at the next call: a guard, and a second variant. (At the
    end of the step, set_to_none leaves them None for the next call, as they were at the first.)"""
    def run(compiled):
        model = _model()
        opt = tl.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

        def step(x):
            if zero_first:
                opt.zero_grad(set_to_none=set_to_none)
            loss = model(x).pow(2).sum()
            loss.backward()
            opt.step()
            if not zero_first:
                opt.zero_grad(set_to_none=set_to_none)
            return loss.item()
        fn = tl.compile(step) if compiled else step
        tl.manual_seed(0)
        losses = [fn(_x()) for _ in range(6)]
        return losses, [p.numpy().copy() for p in model.parameters()], fn
    eager_losses, eager_params, _ = run(False)
    losses, params, f = run(True)
    assert losses == eager_losses and all(np.array_equal(a, b) for a, b in zip(params, eager_params))
    assert f.stats["traces"] == traces and f.stats["replays"] == 6 - traces



@pytest.mark.parametrize("argument", ["tensor", "ndarray"])
def test_a_tensor_from_before_the_call_on_an_arguments_array_stays_itself(argument):
    """`y = x.detach()` (or `tl.from_numpy(a)`) read from the closure, with the call recorded on x (or a) itself: y
    shares the argument's array, but in a replay on another argument y must still be y (was: the argument)."""
    first = np.ones(3)
    x = tl.tensor(first) if argument == "tensor" else first
    y = x.detach() if argument == "tensor" else tl.from_numpy(first)

    def fn(t):
        return (tl.as_tensor(t) if argument == "ndarray" else t) * 2 + y

    f = tl.compile(fn)
    for _ in range(2):
        assert np.array_equal(f(x).numpy(), fn(x).numpy())
    for v in (5.0, -3.0):
        other = np.full(3, v)
        other = tl.tensor(other) if argument == "tensor" else other
        assert np.array_equal(f(other).numpy(), fn(other).numpy()), f.stats
    assert f.stats["replays"] == 3 and f.stats["eager_calls"] == 0, f.stats


def test_views_of_planned_buffers_and_parameters_follow_their_source():
    """Generated replays make a view of an unchanging array once (x.T of a parameter, the reshape of a planned
    buffer) and reuse it: a parameter given a new array through .data, or changed in place, is still read anew."""
    lin = nn.Linear(4, 3)
    w0 = lin.weight.detach().numpy().copy()

    def fn(x):
        h = x @ lin.weight.T  # permute of a parameter, then a matmul into a planned buffer
        return (h.reshape(-1).expand(2, h.numel()) * 2.0).sum(0).detach()  # views of a planned buffer

    f = tl.compile(fn)
    xs = [_x(seed=i) for i in range(30)]
    for i, x in enumerate(xs):
        if i == 12:
            lin.weight.data = np.full((3, 4), 0.5, np.float32)  # a new array: the cached transpose is stale
        if i == 20:
            lin.weight.data[0] += 1.0  # the same array, new values
        got = f(x)
        assert np.array_equal(got.numpy(), fn(x).numpy()), i
    assert f.stats["replays"] >= 20 and not np.array_equal(w0, lin.weight.detach().numpy())


def test_a_returned_view_of_a_parameter_is_a_new_array_on_every_call():
    """A view the function returns is never the cached one: a caller reshaping the returned array in place does not
    change what later calls return (eager returns a fresh view each time)."""
    lin = nn.Linear(4, 3)
    f = tl.compile(lambda: lin.weight.reshape(-1).detach())
    for i in range(12):
        r = f()
        assert r.shape == (12,), i
        r.numpy().shape = (3, 4)
