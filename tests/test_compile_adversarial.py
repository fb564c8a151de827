"""tl.compile under attack: each test runs a function eagerly on one copy of the state and compiled on an identical
copy (same seed), for 10+ calls with fresh random data, and compares everything with np.array_equal: returned
values, parameters, .grad, optimizer state, buffers, the random generator. Aimed at the in-place writes over dying
inputs (buffers.py `_dying_input`), the dropping of unread steps (`live_ops`), the feature-major RNNs, Python state
kept on modules, and values steering Python."""
import itertools
import warnings

import numpy as np
import pytest

import tinygrad_lite as tl

nn, F = tl.nn, tl.nn.functional
CALLS = 12


def _np(v):
    if isinstance(v, tl.Tensor):
        return v.numpy().copy()
    if isinstance(v, (tuple, list)):
        return [_np(x) for x in v]
    return v


def _same(a, b):
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)
    return a == b


def _state(model, opt=None):
    out = [p.numpy().copy() for p in model.parameters()]
    out += [None if p.grad is None else p.grad.numpy().copy() for p in model.parameters()]
    out += [b.numpy().copy() for b in model.buffers()]
    if opt is not None:
        out += [np.array(v.numpy() if isinstance(v, tl.Tensor) else v) for s in opt.state.values() for v in s.values()]
    return out


def _compare(setup, data, calls=CALLS, min_replays=None, keep_outputs=True):
    """setup() -> (fn, snapshot): run fn eagerly and compiled on identical copies; compare each call's result (all
    results held until the end: a later call must never overwrite an earlier returned tensor), each call's
    snapshot() and the RNG state. Returns the compiled callable."""
    runs = []
    for compiled in (False, True):
        tl.manual_seed(0)
        fn, snapshot = setup()
        f = tl.compile(fn) if compiled else fn
        rng = np.random.default_rng(1)
        held, results, snaps = [], [], []
        for _ in range(calls):
            out = f(*data(rng))
            held.append(out)
            if not keep_outputs:
                results.append(_np(out))
            snaps.append(_np(snapshot()))
        if keep_outputs:
            results = [_np(o) for o in held]
        runs.append((results, snaps, tl.random.get_rng().random(), f))
    (er, es, eg, _), (cr, cs, cg, f) = runs
    for i, (a, b) in enumerate(zip(er, cr)):
        assert _same(a, b), f"call {i}: returned values differ ({f.stats})"
    for i, (a, b) in enumerate(zip(es, cs)):
        assert _same(a, b), f"call {i}: state differs ({f.stats})"
    assert eg == cg, "the random generator's state differs"
    if min_replays is not None:
        assert f.stats["replays"] >= min_replays, f.stats
    return f


def _batch(*shape, dtype=np.float32):
    return lambda rng: (tl.tensor(rng.standard_normal(shape).astype(dtype)),)


# ---------------- in place over dying inputs, aliasing, returned intermediates ----------------
def test_every_intermediate_returned_alongside_in_place_chains_is_never_overwritten():
    """A chain of elementwise steps (each a candidate to write over its dying input) with several links returned,
    and views of links returned: the results of all 12 calls are compared only at the end."""
    def setup():
        m = nn.Linear(5, 5)

        def fn(x):
            a = m(x)
            b = a * 2.0           # a is read again below: b may not take a's buffer
            c = (b + 1.0).exp()   # the add dies into exp: in place
            d = c - a             # a dies here
            e = d.tanh() * d      # d read twice by one step
            row = e[1]            # a view of e, returned
            flat = (e + 0.5).reshape(-1)[3:9]
            (e.sum() + c.mean()).backward()
            return b.detach(), c.detach(), row.detach(), flat.detach(), e.detach()
        return fn, lambda: [p.grad for p in m.parameters()]
    _compare(setup, _batch(4, 5), min_replays=CALLS - 3)


def test_a_step_reading_one_buffer_through_two_views_and_broadcasts():
    """Steps whose inputs are the same memory through a transpose, a broadcast bigger than the input, a dtype cast:
    none may be written over while another view still reads it."""
    def setup():
        w = tl.tensor(np.linspace(-1, 1, 16).reshape(4, 4).astype(np.float32), requires_grad=True)

        def fn(x, v):
            a = x @ w
            s = a + a.T                  # a and its transposed view in one step
            t = s * v                    # v (4,) broadcast up to (4, 4)
            u = (v * 2.0).reshape(1, 4) + t  # the (1, 4) input grows to (4, 4)
            q = u.double() * 3.0         # a cast, then a float64 step
            r = (q - q.mean(0)).float()
            loss = (r * r).sum() + (s * s).mean()
            loss.backward()
            return r, s.detach(), loss.item()
        return fn, lambda: [w.grad]
    data = lambda rng: (tl.tensor(rng.standard_normal((4, 4)).astype(np.float32)),  # noqa: E731
                        tl.tensor(rng.standard_normal(4).astype(np.float32)))
    _compare(setup, data, min_replays=CALLS - 3)


def test_in_place_tensor_updates_of_intermediates_views_and_inputs():
    """`add_`/`mul_` on intermediates, on a view of one whose base is returned, and on the input argument: the
    caller's tensor is updated on every call as eagerly."""
    def setup():
        def fn(x):
            a = x.exp()
            v = a.view(-1)
            b = a + 1.0
            v.mul_(2.0)           # writes a through its view after b read a
            c = a * b
            x.add_(0.25)          # the argument, mutated in place
            a.sub_(c)
            return a, b, c.sum(), x * 1.0
        return fn, lambda: []
    held = {}

    def data(rng):
        held["x"] = tl.tensor(rng.standard_normal((3, 4)).astype(np.float32))
        return (held["x"],)
    _compare(setup, data, min_replays=CALLS - 2)


def test_an_argument_mutated_by_the_caller_between_calls_is_read_fresh():
    """The same argument tensor passed on every call and changed in place by the caller in between, and a
    parameter changed under no_grad between calls: each replay reads the current values."""
    def setup():
        m = nn.Linear(3, 3)
        x = tl.tensor(np.ones((2, 3), np.float32))
        calls = itertools.count()

        def fn(x):
            y = (m(x) * 2.0).tanh()
            y.sum().backward()
            return y.detach()

        def data(rng):
            i = next(calls)
            if i:
                x.add_(tl.tensor(rng.standard_normal((2, 3)).astype(np.float32)))
                with tl.no_grad():
                    m.weight.mul_(0.9)
            return (x,)
        setup.data = data
        return fn, lambda: [m.weight, m.weight.grad, m.bias.grad, x]
    runs = []
    for compiled in (False, True):
        tl.manual_seed(0)
        fn, snap = setup()
        f = tl.compile(fn) if compiled else fn
        rng = np.random.default_rng(3)
        runs.append(([(_np(f(*setup.data(rng))), _np(snap())) for _ in range(CALLS)], f))
    (e, _), (c, f) = runs
    assert all(_same(list(a), list(b)) for a, b in zip(e, c)) and f.stats["replays"] >= CALLS - 2, f.stats


# ---------------- shared parameters, accumulation, create_graph ----------------
def test_a_parameter_used_twice_with_gradients_accumulated_over_calls_and_stepped_every_third():
    """The same Linear applied twice (its weight's gradient summed over two uses) and gradients accumulated over
    three calls before an SGD-momentum step and zero_grad: the grads' None-ness and the step alternate, so several
    variants each replay."""
    def setup():
        m = nn.Linear(4, 4)
        opt = tl.optim.SGD(m.parameters(), lr=0.05, momentum=0.9)
        count = itertools.count()

        def fn(x, do_step):
            y = m(m(x).relu()).sigmoid()
            loss = ((y - 0.5) ** 2).mean()
            loss.backward()
            if do_step:
                opt.step()
                opt.zero_grad()
            return loss.item()
        setup.count = count
        return fn, lambda: _state(m, opt)

    def data(rng):
        i = next(setup.count)
        return tl.tensor(rng.standard_normal((3, 4)).astype(np.float32)), i % 3 == 2
    _compare(setup, data, calls=15, min_replays=8)


def test_a_gradient_penalty_with_create_graph_inside_the_step():
    def setup():
        m = nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 1))
        opt = tl.optim.Adam(m.parameters(), lr=0.01)

        def fn(x):
            opt.zero_grad()
            x = x.detach().requires_grad_(True)
            out = m(x).sum()
            gx, = tl.autograd.grad(out, [x], create_graph=True)
            loss = out * 0.1 + ((gx * gx).sum(1) - 1.0).pow(2).mean()
            loss.backward()
            opt.step()
            return loss.item(), gx.detach()
        return fn, lambda: _state(m, opt)
    _compare(setup, _batch(5, 3), min_replays=CALLS - 3)


# ---------------- recurrent layers (feature-major steps) ----------------
RNN_CASES = [(kind, bf, bi, nl, hx, use)
             for kind in ("LSTM", "GRU", "RNN")
             for (bf, bi, nl, hx) in ((False, False, 1, False), (True, True, 2, True), (False, True, 1, True),
                                      (True, False, 2, False))
             for use in ("h_n", "output", "both")]


@pytest.mark.parametrize("kind,batch_first,bidirectional,layers,with_hx,use", RNN_CASES,
                         ids=[f"{k}-bf{int(b)}-bi{int(d)}-L{n}-hx{int(h)}-{u}" for k, b, d, n, h, u in RNN_CASES])
def test_recurrent_layers_in_every_configuration_replay_bit_identically(kind, batch_first, bidirectional, layers,
                                                                         with_hx, use):
    """LSTM/GRU/RNN, batch_first or not, bidirectional, stacked, with and without an initial state, using only h_n (the output sequence's steps are then dropped), only the output, or both; outputs,
    final states, parameters, grads and Adam's state are compared."""
    D, H, T, B = 2 if bidirectional else 1, 4, 5, 3

    def setup():
        rnn = getattr(nn, kind)(3, H, num_layers=layers, bidirectional=bidirectional, batch_first=batch_first)
        opt = tl.optim.Adam(rnn.parameters(), lr=0.01)

        def fn(x, *hx):
            opt.zero_grad()
            out, state = rnn(x, (tuple(hx) if kind == "LSTM" else hx[0]) if hx else None)
            h_n = state[0] if kind == "LSTM" else state
            loss = (h_n * h_n).sum() if use == "h_n" else out.tanh().sum() if use == "output" else \
                out.sum() + (h_n * 0.5).sum()
            if kind == "LSTM" and use == "both":
                loss = loss + state[1].mean()
            loss.backward()
            opt.step()
            return loss.item(), out.detach(), h_n.detach()
        return fn, lambda: _state(rnn, opt)

    def data(rng):
        x = tl.tensor(rng.standard_normal((B, T, 3) if batch_first else (T, B, 3)).astype(np.float32))
        if not with_hx:
            return (x,)
        n = 2 if kind == "LSTM" else 1
        return (x,) + tuple(tl.tensor(rng.standard_normal((layers * D, B, H)).astype(np.float32)) for _ in range(n))
    _compare(setup, data, calls=10, min_replays=7)


def test_an_lstm_applied_twice_with_dropout_in_eval_and_train_alternating():
    """One LSTM (inter-layer dropout) run twice per call (its parameters used twice), switched by the step between
    train (and an RMSprop step) and eval every other pair of calls: dropout draws, and both variants replay."""
    def setup():
        lstm = nn.LSTM(3, 5, num_layers=2, dropout=0.4)
        head = nn.Linear(5, 3)
        opt = tl.optim.RMSprop(list(lstm.parameters()) + list(head.parameters()), lr=0.01)

        def fn(x, train):
            lstm.train(train)
            out, (h, c) = lstm(x)
            out2, _ = lstm(out[:, :, :3].tanh(), (h, c))
            loss = head(out2[-1]).pow(2).mean()
            if train:
                opt.zero_grad()
                loss.backward()
                opt.step()
            return loss.item()
        modules = nn.ModuleList([lstm, head])
        return fn, lambda: _state(modules, opt)

    def data(rng):
        return tl.tensor(rng.standard_normal((4, 2, 3)).astype(np.float32)), bool(rng.integers(2))
    with warnings.catch_warnings():
        warnings.simplefilter("error", tl.CompileWarning)
        _compare(setup, data, calls=16, min_replays=10)


# BUG (fixed in autograd/engine.py): a leaf made inside the call (`x.detach().requires_grad_()`, an initial state or
# an input whose gradient is wanted) had its gradient delivered by every replay to the recorded call's tensor: the
# returned `.grad` was that one tensor every call (earlier results overwritten), accumulating (eager [0, 2], [2, 2],
# [4, 2], ...; compiled [20, 10] for all five). A replay now clears that tensor's .grad before delivering to it.
def test_the_grad_of_a_leaf_made_inside_the_function_is_each_calls_own():
    def setup():
        m = nn.Linear(3, 2)

        def fn(x):
            h = x.detach().requires_grad_(True)
            (m(h).tanh() * h.sum(1, keepdim=True)).sum().backward()
            return h.grad, h.grad * 1.0
        return fn, lambda: [p.grad for p in m.parameters()]
    _compare(setup, _batch(4, 3), min_replays=CALLS - 2)


def test_an_input_gradient_through_an_lstm_initial_state_with_autograd_grad_replays():
    """The gradient of an initial state taken with tl.autograd.grad (not .grad) replays bit-identically."""
    def setup():
        lstm = nn.LSTM(3, 4, batch_first=True)

        def fn(x, h0, c0):
            h0 = h0.detach().requires_grad_(True)
            out, (h, c) = lstm(x, (h0, c0))
            g, = tl.autograd.grad((out * out).sum() + c.sum(), [h0])
            return g, out.detach()
        return fn, lambda: []
    data = lambda rng: (tl.tensor(rng.standard_normal((2, 5, 3)).astype(np.float32)),  # noqa: E731
                        tl.tensor(rng.standard_normal((1, 2, 4)).astype(np.float32)),
                        tl.tensor(rng.standard_normal((1, 2, 4)).astype(np.float32)))
    _compare(setup, data, min_replays=CALLS - 3)


# ---------------- steps dropped from a replay ----------------
def test_unused_random_draws_and_unused_results_still_advance_the_generator():
    """Random tensors drawn and never used, dropout masks of an unused branch: the replay draws them anyway."""
    def setup():
        m = nn.Linear(4, 4)

        def fn(x):
            tl.randn(3, 2)                        # drawn, unused
            F.dropout(m(x), 0.5, training=True)   # a mask drawn on an unused branch
            y = F.dropout(x, 0.3) * 2.0
            tl.rand(2) + 1.0                      # unused arithmetic on a draw
            return y
        return fn, lambda: [tl.random.get_rng().random()]
    _compare(setup, _batch(3, 4), min_replays=CALLS - 2)


# BUG (fixed in buffers.py): pow's step was dropped when nothing read its result, so an integer power with a negative
# exponent, which raises eagerly ("Integers to negative integer powers are not allowed"), returned normally in a
# replay.
def test_an_unused_integer_power_still_raises_on_a_negative_exponent():
    def fn(x, e):
        x ** e  # unused, but it raises on the exponent's values
        return x + 1
    f = tl.compile(fn)
    x = tl.tensor(np.array([2, 3], np.int64))
    for e in ([1, 2], [2, 2], [3, 1]):
        assert np.array_equal(f(x, tl.tensor(np.array(e))).numpy(), [3, 4])
    assert f.stats["replays"] == 2
    with pytest.raises(ValueError, match="negative integer powers"):
        fn(x, tl.tensor(np.array([-1, 1])))
    with pytest.raises(ValueError, match="negative integer powers"):
        f(x, tl.tensor(np.array([-1, 1])))


# ---------------- Python state kept on modules ----------------
class _EMA(nn.Module):
    """A custom running average that reassigns its buffer (not in place), as much PyTorch code does."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 3)
        self.register_buffer("avg", tl.zeros(3))

    def forward(self, x):
        y = self.lin(x)
        with tl.no_grad():
            self.avg = self.avg * 0.9 + y.mean(0).detach() * 0.1
        return y


class _Stateful(nn.Module):
    """Truncated BPTT: the final hidden state kept on the module feeds the next call."""

    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(3, 4)
        self.h = None

    def forward(self, x):
        out, h = self.rnn(x, self.h)
        self.h = h.detach()
        return out


class _Alternating(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 3)
        self.flip = False

    def forward(self, x):
        self.flip = not self.flip
        return self.lin(x) * (2.0 if self.flip else 3.0)


# BUG (fixed in nn/module.py): an attribute assigned on a module inside the compiled function (a buffer reassigned, a
# hidden state kept for the next call, a flag toggled) was not replayed: the buffer stayed at its recorded value, the
# next call read the recorded call's hidden state (or none), the flag's recorded value (taken after the call) was
# guarded, so every replay took the same branch. Such a capture now fails: the calls run eagerly, with the reason.
@pytest.mark.parametrize("make,shape", [(_EMA, (4, 3)), (_Stateful, (2, 2, 3)), (_Alternating, (2, 3))],
                         ids=["buffer-reassigned", "hidden-state-kept", "flag-toggled"])
def test_an_attribute_assigned_on_a_module_inside_the_function_is_not_frozen(make, shape):
    def setup():
        model = make()
        opt = tl.optim.SGD(model.parameters(), lr=0.1)

        def fn(x):
            opt.zero_grad()
            loss = model(x).pow(2).mean()
            loss.backward()
            opt.step()
            return loss.item()
        return fn, lambda: _state(model, opt) + [_np(getattr(model, "h", None))]
    f = _compare(setup, _batch(*shape))
    assert f.stats["eager_calls"] >= CALLS - 1 and "inside the function" in f.stats["last_reason"], f.stats
    with pytest.raises(tl.CompileError, match="assigning"):
        tl.compile(setup()[0], fullgraph=True)(_batch(*shape)(np.random.default_rng(0))[0])


def test_a_module_built_inside_the_function_gets_fresh_parameters_every_call():
    """A layer built inside the function (its __init__ assigns attributes before it runs, its parameters are drawn
    from the generator by an initializer the capture does not follow): every call runs eagerly with a reason, so
    each call's parameters and the generator match eager."""
    def setup():
        def fn(x):
            return nn.Linear(3, 2)(x).detach()
        return fn, lambda: []
    f = _compare(setup, _batch(4, 3))
    assert f.stats["eager_calls"] == CALLS - 1 and f.stats["last_reason"], f.stats


# ---------------- values steering Python ----------------
GUARD_CASES = {
    "item-in-tuple": lambda x: x * 2 if x.argmax().item() in (0, 1) else x * 3,
    "item-dict-key": lambda x: x * {0: 1.0, 1: 2.0, 2: 3.0, 3: 4.0}[x.argmax().item()],
    "str-of-item": lambda x: x * 2 if str(x.argmax().item()) == "0" else x * 3,
    "int-slice": lambda x: x[int(x.argmax()):] * 1.0,
    "max-of-item": lambda x: x * max(x[0].item(), 0.5),
    "round-item": lambda x: x * round(x.sum().item()),
    "bool-any": lambda x: x * 2 if (x > 0.5).any() else x * 3,
    "tensor-comparison": lambda x: x * 2 if x.sum() > 0 else x * 3,
    "mask-select": lambda x: x[x > 0].sum() * 1.0,
    "topk-by-count": lambda x: x.topk(int((x > 0).sum().item()) or 1)[0] * 1.0,
    "tolist": lambda x: x * 2 if x.sum().tolist() > 0 else x * 3,
    "numpy-array": lambda x: x * 2 if np.asarray(x).sum() > 0 else x * 3,
}


@pytest.mark.parametrize("name", sorted(GUARD_CASES))
def test_values_steering_python_never_replay_a_stale_branch(name):
    fn = GUARD_CASES[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tl.CompileWarning)
        _compare(lambda: (fn, lambda: []), _batch(4), calls=16)
