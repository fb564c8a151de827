"""tl.compile, adversarial: buffer planning, in-place reuse, view tracking and the view cache against eager.

Each test runs a function eagerly and compiled (a fresh, identical set of objects per side) over 12+ calls with new
inputs, and compares every result bit for bit (returned values, parameters, `.grad`, optimizer state, and the
inputs themselves when the function writes into them). The first 8 replays are interpreted step by step, the
rest run as generated code: 14 calls cover both renderings.
"""
import numpy as np

import tinygrad_lite as tl
from tinygrad_lite import functional as TF

nn = tl.nn
CALLS = 14


def _arrays(values):
    out = []
    for v in values if isinstance(values, (tuple, list)) else (values,):
        if isinstance(v, tl.Tensor):
            out.append(v.detach().numpy().copy())
        elif v is None:
            out.append(np.array("none"))
        else:
            out.append(np.asarray(v).copy())
    return out


def _state(params=(), opt=None, tensors=()):
    """Parameters, their gradients, the optimizer's state and any other tensors, copied."""
    out = [p.detach().numpy().copy() for p in params]
    out += [np.array("none") if p.grad is None else p.grad.numpy().copy() for p in params]
    for st in (opt.state.values() if opt is not None else ()):
        out += [np.asarray(v.numpy() if isinstance(v, tl.Tensor) else v).copy() for v in st.values()]
    return out + [t.detach().numpy().copy() for t in tensors]


def _same(want, got, what):
    assert len(want) == len(got), what
    for j, (a, b) in enumerate(zip(want, got)):
        assert a.dtype == b.dtype and a.shape == b.shape and \
            np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"), f"{what} {j}"


def run_both(make, inputs, calls=CALLS):
    """make() -> (fn, state): called once per side. inputs(rng) -> the call's arguments (called with two
    identically seeded generators, so each side gets its own, equal, arguments)."""
    fe, state_e = make()
    fc, state_c = make()
    f = tl.compile(fc)
    ra, rb = np.random.default_rng(1), np.random.default_rng(1)
    for i in range(calls):
        ae, ac = inputs(ra), inputs(rb)
        _same(_arrays(fe(*ae)), _arrays(f(*ac)), f"call {i} ({f.stats}): returned value")
        _same(state_e(), state_c(), f"call {i} ({f.stats}): state")
        _same(_arrays(ae), _arrays(ac), f"call {i} ({f.stats}): argument")
    assert f.stats["traces"] == 1 and f.stats["replays"] == calls - 1, f.stats
    return f


def _t(rng, *shape, dtype=np.float32):
    return tl.tensor(rng.standard_normal(shape).astype(dtype))


def _compare_with_b_rebound(make, at):
    """Eager and compiled runs of `make()`'s function (with its tensors a and b) over 12 calls, b given a new array
    with `.data =` before call `at`: results, a and b equal at every call."""
    fe, ae, be = make()
    fc, ac, bc = make()
    f = tl.compile(fc)
    for i in range(12):
        if i == at:
            be.data = tl.tensor(np.full(4, 7.0, np.float32))
            bc.data = tl.tensor(np.full(4, 7.0, np.float32))
        x = np.full(4, float(i), np.float32)
        _same(_arrays(fe(tl.tensor(x))), _arrays(f(tl.tensor(x.copy()))), f"call {i} ({f.stats})")
        _same(_arrays((ae, be)), _arrays((ac, bc)), f"call {i}: a and b")


# ---------------- memory from before the call, viewed: not the call's own ----------------

def _reshaped_outside_view(body):
    """make() for run_both: q, and p = q.reshape(6, 4) made before the call; the function runs, under no_grad,
    `body(q, p.reshape(24), x)` (the reshape first, a view of q's array the call has not seen yet)."""
    def make():
        q = tl.tensor(np.random.default_rng(0).standard_normal((4, 6)).astype(np.float32))
        p = q.reshape(6, 4)

        def fn(x):
            with tl.no_grad():
                return body(q, p.reshape(24), x)
        return fn, lambda: _state(tensors=(q,))
    return make


def test_a_reshape_of_a_view_made_before_the_call_is_not_the_calls_own_memory():
    """`p = q.reshape(6, 4)` is made before the call, a view of q's array. In the call `p.reshape(24)` is a view of
    q's array too, which was not known yet (q not used so far). Eager: `q * x` reads q (4, 6).
    Replay (before the fix): crashed, "operands could not be broadcast together with shapes (24,) (4,6)".
    Cause: capture.py `_fresh` took "the view's base is not known" for "memory made inside the call" (np.reshape's
    hidden copy), and `_owner` then registered q's array (the base) as the reshape's slot; `Capture.ref(q)` found
    that slot and recorded `q * x` as `(reshape output) * x`. Fixed: `_fresh` also requires that no input of the
    operation is that base or a view of it (the hidden copy is the operation's own)."""
    def body(q, a, x):
        b = q * x
        return a.sum() + b.sum(), b
    run_both(_reshaped_outside_view(body), lambda r: (_t(r, 4, 6),))


def test_an_in_place_change_of_a_tensor_shows_through_a_view_of_it_made_through_an_older_view():
    """`a = p.reshape(24)` views q's memory (p is q.reshape(6, 4), made before the call); `q.mul_(0.5)` then
    changes q, and eager's `a` shows the change (a view). Replay (before the fix): q kept its values (the in-place
    write went to the reshape's slot, see the test above) and `a` was a planned buffer holding a copy.
    Cause: capture.py `_fresh` (as above): the reshape was planned as owning its memory (a buffer written by
    reshape's `into` rule, a copy) and q's array was known as that slot."""
    def body(q, a, x):
        q.mul_(0.5)
        return a * x
    run_both(_reshaped_outside_view(body), lambda r: (_t(r, 24),))


def test_an_argument_that_views_outside_memory_stays_a_view_through_a_reshape():
    """The argument is `base.reshape(4, 6)`, a view of an array the call never sees. Eager: `a = x.reshape(24)`
    views it, so `x.mul_(0.5)` shows in `a + y`. Replay (before the fix): `a` was a planned buffer holding a copy
    made before the multiplication (stale values).
    Cause: capture.py `_fresh` counted the reshape, a view of all of the argument's base (unknown to the capture),
    as memory made by the call; plan_buffers gave it a buffer and reshape's `into` rule copies."""
    def make():
        def fn(x, y):
            with tl.no_grad():
                a = x.reshape(24)
                x.mul_(0.5)
                return a + y
        return fn, lambda: []
    run_both(make, lambda r: (_t(r, 6, 4).reshape(4, 6), _t(r, 24)))


# ---------------- as_strided windows (unfold): a view whose NumPy base is not an array ----------------

def test_sliding_windows_keep_their_source_buffer_alive():
    """`TF.windows(h, (2, 2))` is np.lib.stride_tricks.as_strided of h, a planned buffer; `y + 1` has h's shape.
    Eager: the windows read h. Replay (before the fix): the windows read y + 1.
    Cause: capture.py `_owner`: an as_strided array's `.base` is a NumPy DummyArray (its own `.base` is h), not
    an ndarray known as a slot, so the windows were recorded as a view of nothing (`op.views = ((k, None),)`);
    buffers.plan_buffers then ended h's lifetime at the unfold step and gave its buffer to `y + 1` while the
    windows were still read. Fixed: `_owner` follows the base chain through non-array bases."""
    def make():
        def fn(x, y):
            with tl.no_grad():
                h = x * 2
                w = TF.windows(h, (2, 2))
                g = y + 1
                return w.sum((2, 3)) * g[:, :, :5, :5]
        return fn, lambda: []
    run_both(make, lambda r: (_t(r, 2, 3, 6, 6), _t(r, 2, 3, 6, 6)))


def test_a_1x1_unfold_is_a_view_and_keeps_its_source_alive():
    """A 1x1 unfold's `(N, C, 1, 1, H, W) -> (N, C, H*W)` reshape is a view of the windows, so of h. Eager reads
    h through it; the replay (before the fix) read `y + 1`, which took h's buffer. Cause: as above (capture.py
    `_owner` and as_strided's DummyArray base)."""
    def make():
        def fn(x, y):
            with tl.no_grad():
                h = x * 2
                w = TF.unfold(h, (1, 1))
                g = y + 1
                return w * g.reshape(2, 3, 16)
        return fn, lambda: []
    run_both(make, lambda r: (_t(r, 2, 3, 4, 4), _t(r, 2, 3, 4, 4)))


def test_a_1x1_convolution_weight_gradient_reads_its_input_not_a_reused_buffer():
    """Conv2d(3, 3, 1): the im2col columns are a view of the input `h = x * 2` (a planned buffer), saved for the
    weight's gradient. `z = y * 3` (h's shape) comes after the convolution. Eager: the weight gradient is
    `g @ cols^T` with cols = h. Replay (before the fix): cols read z's values (h's buffer went to z), so the
    weight, its gradient and the loss differed from the first replay on.
    Cause: capture.py `_owner` (as_strided windows recorded as a view of nothing, see above)."""
    def make():
        tl.manual_seed(0)
        conv = nn.Conv2d(3, 3, 1)
        opt = tl.optim.SGD(conv.parameters(), lr=0.1)

        def fn(x, y):
            opt.zero_grad()
            o = conv(x * 2)
            loss = (o * (y * 3)).sum()
            loss.backward()
            opt.step()
            return loss.detach()
        return fn, lambda: _state(list(conv.parameters()), opt)
    run_both(make, lambda r: (_t(r, 2, 3, 4, 4), _t(r, 2, 3, 4, 4)))


# ---------------- tensors from before the call: their arrays change between calls ----------------

def test_a_live_tensor_swapped_to_fortran_order_between_calls():
    """`p.data` is replaced between calls by an F-ordered array of the same shape and dtype. Eager: `p * 1.5` is
    F-ordered (a ufunc's output follows its input's order), so `.sum(0)` adds in that order. Replay (before the
    fix): the plan went on with its C-ordered buffer for `p * 1.5`, whose column sums differ in the last bits.
    Cause: compile/__init__.py `_Variant.holds` guarded a live tensor's shape, dtype, requires_grad and hooks but
    not its memory layout, which the argument signature guards for arguments (signature.arg_layout: planned buffers
    have the recorded order). Fixed: live tensors' layouts are guarded too (a change records a new variant)."""
    def make():
        p = tl.tensor(np.random.default_rng(0).standard_normal((64, 48)).astype(np.float32))
        calls = [0]

        def fn(x):
            with tl.no_grad():
                return (p * 1.5).sum(0), (p * x).sum(1)

        def state():
            calls[0] += 1
            if calls[0] == 4:  # after the 4th call: the next calls see an F-ordered array
                p.data = tl.tensor(np.asfortranarray(p.numpy() * 1.01))
            return [p.numpy().copy()]
        return fn, state
    fe, state_e = make()
    fc, state_c = make()
    f = tl.compile(fc)
    rng = np.random.default_rng(3)
    for i in range(CALLS):
        x = rng.standard_normal((64, 48)).astype(np.float32)
        _same(_arrays(fe(tl.tensor(x))), _arrays(f(tl.tensor(x.copy()))), f"call {i} ({f.stats})")
        _same(state_e(), state_c(), f"call {i}: state")


def test_two_tensors_sharing_one_array_when_recorded_are_read_each_from_its_own_tensor():
    """`b = a.detach()` shares a's array when the call is recorded; after the 5th call `b.data` is replaced.
    Eager: `a * x + b` reads b's new values. Replay (before the fix): read a's array for b (5 instead of 11).
    Cause: capture.py `Capture.ref`/`template` identify a tensor by its array (`known[id(x._data)]`); b's array
    was already known as live tensor a's, so b was recorded as Ref(LIVE, a), never entered `cap.live` and was not
    guarded. Fixed: a tensor from before the call whose array is known as another live tensor's is tracked as a
    live tensor of its own."""
    def make():
        a = tl.tensor(np.ones(4, np.float32))
        b = a.detach()

        def fn(x):
            with tl.no_grad():
                return a * x + b
        return fn, a, b
    _compare_with_b_rebound(make, at=5)


# ---------------- in-place writes through views ----------------

def test_an_in_place_write_through_a_view_of_a_live_tensor_is_not_repeated_when_a_guard_fails():
    """`p.reshape(2, 3).add_(1)` changes p through a view; then `if x.sum().item() > 0` branches. Eager: p goes up
    by 1 per call. Replay (before the fix): the write ran, then the comparison's guard failed on a call with the
    other sign, and the call ran again eagerly: p went up by 2 (p differed from the third call on).
    Cause: capture.py `Capture.kernel` counted an in-place write into a slot as an update of the call's own array
    (not an effect), though the slot was a view of a live tensor's memory; plan.py refuses a guard after an effect
    (a replay could not stop cleanly) only for effects. Fixed: such a write is an effect (`Capture._outside`), so
    the plan is refused and the call runs eagerly, once."""
    def make():
        p = tl.tensor(np.zeros(6, np.float32))

        def fn(x):
            with tl.no_grad():
                p.reshape(2, 3).add_(1.0)
                if x.sum().item() > 0:
                    return x * 2
                return x * 3
        return fn, lambda: _state(tensors=(p,))
    fe, state_e = make()
    fc, state_c = make()
    f = tl.compile(fc)
    for i, sign in enumerate([1, 1, -1, 1, -1, -1, 1, 1, -1, 1, 1, 1]):
        x = np.full(3, float(sign), np.float32)
        _same(_arrays(fe(tl.tensor(x))), _arrays(f(tl.tensor(x.copy()))), f"call {i} ({f.stats})")
        _same(state_e(), state_c(), f"call {i} ({f.stats}): p")


def test_an_in_place_write_through_a_view_of_an_argument_is_not_repeated_when_a_guard_fails():
    """As above with an argument: `x.reshape(-1).mul_(2)` doubles x; a later comparison's guard fails on some calls.
    Eager: x doubled once. Replay (before the fix): doubled, then doubled again by the eager rerun (x = 4, not 2).
    Cause: capture.py `Capture.kernel` (a write into a slot viewing an argument's memory was not an effect)."""
    def make():
        def fn(x, y):
            with tl.no_grad():
                x.reshape(-1).mul_(2.0)
                if y.sum().item() > 0:
                    return y * 2
                return y * 3
        return fn, lambda: []
    fe, _ = make()
    fc, _ = make()
    f = tl.compile(fc)
    for i, sign in enumerate([1, 1, -1, 1, -1, 1, 1, 1, -1, 1, 1, 1]):
        xe, xc = (tl.tensor(np.ones((2, 3), np.float32)) for _ in range(2))
        y = np.full(3, float(sign), np.float32)
        _same(_arrays(fe(xe, tl.tensor(y))), _arrays(f(xc, tl.tensor(y.copy()))), f"call {i} ({f.stats})")
        _same(_arrays(xe), _arrays(xc), f"call {i} ({f.stats}): the argument")


# ---------------- Python-level changes of tensors from before the call ----------------

def test_assigning_data_of_a_live_tensor_inside_the_function_is_replayed():
    """`p.data = (p * 0.5 + x).detach()` inside the function. Eager: p holds a new array after every call.
    Replay (before the fix): p kept the array of the recorded call (the assignment is Python, not replayed); the
    returned `p.sum()` was right (it read the slot), p itself was stale from the first replay on.
    Cause: tensor.py `Tensor.data`'s setter told the capture nothing (the `.grad` setter records a host call).
    Fixed: for a tensor from before the call it records a host call (compile/effects.set_data) with the assigned
    array, which pins that array (never a reused buffer); an array computed outside the record makes the capture
    fail (the call runs eagerly)."""
    def make():
        p = tl.tensor(np.ones((2, 3), np.float32))

        def fn(x):
            with tl.no_grad():
                p.data = (p * 0.5 + x).detach()
                return p.sum()
        return fn, lambda: _state(tensors=(p,))
    run_both(make, lambda r: (_t(r, 2, 3),))


def test_vector_to_parameters_inside_the_function_matches_eager():
    """`nn.utils.vector_to_parameters(vec, m.parameters())` assigns each parameter's `.data` a view of vec.
    Eager: m(x) uses this call's vec. Replay (before the fix): the parameters kept the recorded call's arrays.
    Cause: tensor.py `Tensor.data` setter unrecorded (as above). With the fix the slices of vec, taken outside the
    recorded operations, make the capture fail: the function runs eagerly (the same results)."""
    def make():
        tl.manual_seed(0)
        m = nn.Linear(3, 2)

        def fn(vec, x):
            with tl.no_grad():
                nn.utils.vector_to_parameters(vec * 1.0, m.parameters())
                return m(x)
        return fn, lambda: _state(list(m.parameters()))
    fe, state_e = make()
    fc, state_c = make()
    f = tl.compile(fc)
    rng = np.random.default_rng(0)
    for i in range(CALLS):
        vec, x = rng.standard_normal(8).astype(np.float32), rng.standard_normal((4, 3)).astype(np.float32)
        _same(_arrays(fe(tl.tensor(vec), tl.tensor(x))), _arrays(f(tl.tensor(vec.copy()), tl.tensor(x.copy()))),
              f"call {i} ({f.stats})")
        _same(state_e(), state_c(), f"call {i}: parameters")


def test_an_initialisation_inside_the_function_is_not_skipped_by_a_replay():
    """`nn.init.normal_(m.weight)` and `zeros_(m.bias)` inside the function (re-initialising each call). Eager:
    new weights from the generator on every call. Replay (before the fix): the weights of the recorded call on
    every call (the init ran once).
    Cause: nn/init.py `_fill` writes with np.copyto and draws from the generator outside any recorded operation
    ("never recorded"), and told the capture nothing. Fixed: an init of a tensor from before the call makes the
    capture fail, so the function runs eagerly."""
    def make():
        tl.manual_seed(0)
        m = nn.Linear(3, 2)

        def fn(x):
            with tl.no_grad():
                nn.init.normal_(m.weight)
                nn.init.zeros_(m.bias)
                return m(x)
        return fn, m
    fe, me = make()
    fc, mc = make()
    f = tl.compile(fc)
    for i in range(CALLS):
        x = np.random.default_rng(i).standard_normal((4, 3)).astype(np.float32)
        tl.manual_seed(100 + i)
        want = _arrays(fe(tl.tensor(x)))
        tl.manual_seed(100 + i)
        _same(want, _arrays(f(tl.tensor(x.copy()))), f"call {i} ({f.stats})")
        _same(_state(list(me.parameters())), _state(list(mc.parameters())), f"call {i}: parameters")


def test_load_state_dict_inside_the_function_is_not_skipped_by_a_replay():
    """A target-network refresh inside the step: `src`'s parameters change, then `m.load_state_dict(src.state_dict())`.
    Eager: m holds src's new values on every call. Replay (before the fix): m kept the values loaded when the call
    was recorded (the load ran once).
    Cause: nn/state.py `load_state_dict` copies with np.copyto (or assigns `_data`) outside any recorded operation
    and told the capture nothing. Fixed: loading into tensors from before the call makes the capture fail, so the
    function runs eagerly."""
    def make():
        tl.manual_seed(0)
        m, src = nn.Linear(4, 4), nn.Linear(4, 4)

        def fn(x):
            with tl.no_grad():
                for p in src.parameters():
                    p.mul_(1.1)
                m.load_state_dict(src.state_dict())
                return m(x)
        return fn, lambda: _state(list(m.parameters()))
    fe, state_e = make()
    fc, state_c = make()
    f = tl.compile(fc)
    for i in range(CALLS):
        x = np.random.default_rng(i).standard_normal((4, 4)).astype(np.float32)
        _same(_arrays(fe(tl.tensor(x))), _arrays(f(tl.tensor(x.copy()))), f"call {i} ({f.stats})")
        _same(state_e(), state_c(), f"call {i}: parameters")


def test_a_tensor_sharing_an_array_written_in_place_is_read_from_itself():
    """`b = a.detach()` shares a's array when the call is recorded; the call does `a.add_(1)` and returns `b * x`;
    after the 3rd call `b.data` is replaced. Eager: b's new values (7). Replay (before the fix): a's array (4, 5,
    6...). Cause: capture.py `Capture.kernel` gives the array an in-place write into a live tensor returns a new
    slot (`new_slot`), and `Capture.ref`/`template` then resolved every tensor on that array, b included, to the
    slot: b was never tracked. Fixed: a tensor from before the call whose array is known as a slot is read from
    the tensor itself (a live tensor: the written tensor, or one given that array with `.data =`, holds the same
    array in a replay; one given another array since reads that)."""
    def make():
        a = tl.tensor(np.zeros(4, np.float32))
        b = a.detach()

        def fn(x):
            with tl.no_grad():
                a.add_(1.0)
                return b * x
        return fn, a, b
    _compare_with_b_rebound(make, at=3)
