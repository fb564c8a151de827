"""Review s21b of tl.compile's memory: buffer planning and reuse, aliasing, views and in-place operations. Each test
runs a compiled function beside an eager twin on the same fresh inputs over several calls, and checks the results
(and the state the function changes) bit for bit, including results of earlier calls after later ones."""
import numpy as np

import tinygrad_lite as tl
from tinygrad_lite import nn

CALLS = 8


def _rand(i, shape=(3, 4), dtype=np.float32):
    return np.random.default_rng(i).standard_normal(shape).astype(dtype)


def _flat(obj, out):
    if isinstance(obj, (tuple, list)):
        for o in obj:
            _flat(o, out)
    elif isinstance(obj, tl.Tensor):
        out.append(obj.numpy().copy())
    elif isinstance(obj, np.ndarray):
        out.append(obj.copy())
    else:
        out.append(np.asarray(obj))
    return out


def _same(a, b):
    return len(a) == len(b) and all(x.dtype == y.dtype and x.shape == y.shape and np.array_equal(x, y, equal_nan=True)
                                    for x, y in zip(a, b))


def _twin(make, inputs, calls=CALLS, state=lambda env: (), after=None):
    """make() -> (fn, env). Runs fn eagerly and compiled (each on its own env) on inputs(i); checks results, `state`
    and every earlier result after the last call. Returns the compiled callable."""
    fe, enve = make()
    fc, envc = make()
    step = tl.compile(fc)
    kept = []
    for i in range(calls):
        oe, oc = fe(*inputs(i)), step(*inputs(i))
        assert _same(_flat(oe, []), _flat(oc, [])), f"call {i}: results differ ({step.stats})"
        assert _same(_flat(state(enve), []), _flat(state(envc), [])), f"call {i}: state differs ({step.stats})"
        if after is not None:
            after(oe, enve)
            after(oc, envc)
        kept.append((oe, oc))
    for i, (oe, oc) in enumerate(kept):
        assert _same(_flat(oe, []), _flat(oc, [])), f"call {i}'s result differs after later calls"
    return step


def _x(i):
    return (tl.tensor(_rand(i)),)


def _weight():
    return tl.tensor(_rand(99), requires_grad=True)


# ---------------- defects: a .grad or .data rebound in the call after it was taken ----------------

def test_gradient_used_after_its_grad_is_set_to_none_is_the_old_one():
    """A replay resolved `g` (a delivered .grad) as "w.grad now": after `w.grad = None` that raised AttributeError
    in the replay loop. The capture now sees the rebinding and runs such calls eagerly, with the reason."""
    def make():
        w = _weight()

        def f(a):
            (w * a).sum().backward()
            g = w.grad
            w.grad = None
            return g * 2
        return f, w
    step = _twin(make, _x, state=lambda w: [w])
    assert "replaced afterwards" in step.stats["last_reason"]


def test_gradients_returned_before_zero_grad_are_the_call_s():
    """`grads = [p.grad ...]; opt.zero_grad(); return grads` returned None for each gradient on every replay."""
    def make():
        tl.manual_seed(0)
        m = nn.Linear(4, 3)
        opt = tl.optim.SGD(m.parameters(), lr=0.1)

        def f(a):
            m(a).sum().backward()
            grads = [p.grad for p in m.parameters()]
            opt.step()
            opt.zero_grad()
            return grads
        return f, m
    _twin(make, _x, state=lambda m: list(m.parameters()))


def test_gradient_returned_then_replaced_is_the_old_one():
    """`g = w.grad; w.grad = w.grad * 2; return g, w.grad`: a replay returned the new gradient twice."""
    def make():
        w = _weight()

        def f(a):
            w.grad = None
            (w * a).sum().backward()
            g = w.grad
            w.grad = w.grad * 2
            return g, w.grad
        return f, w
    _twin(make, _x, state=lambda w: [w, w.grad])


def test_argument_gradient_returned_then_cleared_is_the_old_one():
    """The same for an argument's .grad (ARGGRAD): a replay returned None."""
    def make():
        def f(a, w):
            (w * a).sum().backward()
            g = w.grad
            w.grad = None
            return g
        return f, None
    _twin(make, lambda i: (tl.tensor(_rand(i)), tl.tensor(_rand(50 + i), requires_grad=True)))


def test_old_data_of_a_parameter_after_data_is_rebound_is_the_old_one():
    """`old = w.detach(); w.data = ...; return old`: a replay read `old` as "w's array now", the new one."""
    def make():
        w = _weight()

        def f(a):
            old = w.detach()
            w.data = (w * 0.5 + a).detach()
            return old, old * 1
        return f, w
    _twin(make, _x, state=lambda w: [w])


def test_old_data_of_an_argument_after_data_is_rebound_is_the_old_one():
    def make():
        def f(a, w):
            old = w.data
            w.data = (w * 0.5 + a).detach()
            return old * 1, w
        return f, None
    _twin(make, lambda i: (tl.tensor(_rand(i)), tl.tensor(_rand(40 + i))))



def test_gradient_taken_before_a_second_backward_accumulates_is_the_old_one():
    """A second backward accumulates into .grad with a new array (`g._data = g._data + new`; with create_graph a new
    tensor): a replay read `w.grad.detach()` taken before it, and the old .grad tensor, as the accumulated one."""
    def make(create_graph):
        def make_one():
            w = _weight()

            def f(a):
                w.grad = None
                (w * a).sum().backward(create_graph=create_graph)
                old, g = w.grad.detach(), w.grad
                (w * a * a).sum().backward(create_graph=create_graph)
                return old * 1, g.detach(), w.grad.detach()
            return f, w
        return make_one
    for create_graph in (False, True):
        _twin(make(create_graph), _x, state=lambda w: [w, w.grad.detach()])

# ---------------- defects: a returned tensor on an argument's or a live tensor's array ----------------

def _kinds(out):
    return [(type(t).__name__, getattr(t, "requires_grad", None)) for t in out]


def test_returned_detach_of_an_argument_is_a_detached_tensor():
    """`return x.detach(), x.data`: a replay returned the argument itself (requires_grad=True, the same object);
    `tl.from_numpy(a)`, `tl.as_tensor(a)` of a NumPy argument: the NumPy array, not a Tensor."""
    def f(x, a):
        return x.detach(), x.data, tl.from_numpy(a), tl.as_tensor(a), x, a
    step = tl.compile(f)
    for i in range(4):
        x, a = tl.tensor(_rand(i), requires_grad=True), _rand(i)
        want, got = f(x, a), step(x, a)
        assert _kinds(got) == _kinds(want)
        assert got[0] is not x and got[4] is x and got[5] is a
        sources = [x.numpy(), x.numpy(), a, a, x.numpy(), a]
        assert all(np.shares_memory(g.numpy() if isinstance(g, tl.Tensor) else g, s) for g, s in zip(got, sources))
    assert step.stats["replays"] == 3


def test_returned_detach_of_a_parameter_is_a_detached_tensor():
    """`return p.detach()` of a parameter an operation used: a replay returned the parameter itself."""
    w = _weight()

    def f(x):
        return (x * w).detach(), w.detach(), w.data, w
    step = tl.compile(f)
    for i in range(4):
        x = tl.tensor(_rand(i))
        want, got = f(x), step(x)
        assert _kinds(got) == _kinds(want)
        assert [t is w for t in got] == [False, False, False, True]
        assert all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(want, got))
    assert step.stats["replays"] == 3


# ---------------- verified: probes that were right already ----------------

def test_verified_aliased_arguments_and_in_place_writes():
    """Verified: f(x, x) and f(x, x[0]) with an in-place write through one argument and a read through the other,
    alternating with unaliased calls; transposed, negative-stride and 0-d arguments written in place."""
    def f(a, b):
        a.add_(1)
        return b * 2, a.sum()
    def pair(i):
        t = tl.tensor(_rand(i))
        return (t, t) if i % 2 else (t, tl.tensor(_rand(i + 9)))
    _twin(lambda: (f, None), pair)
    _twin(lambda: (f, None), lambda i: (lambda t: (t, t[0]))(tl.tensor(_rand(i))))
    for arg in (lambda i: tl.tensor(_rand(i)).T, lambda i: tl.tensor(_rand(i)[::-1]),
                lambda i: tl.tensor(_rand(i, ()))):
        _twin(lambda: ((lambda a: (a.mul_(2) + 1, a)), None), lambda i: (arg(i),))


def test_verified_in_place_on_intermediates_and_returned_views():
    """Verified: in-place writes on intermediates (and on unread views of them) that are returned, views of them
    returned, and results of earlier calls unchanged by later calls, even when the caller writes into them."""
    def f(a):
        b = a * 2
        b[0].add_(1)
        v, w = b[1:], b.t()
        b.mul_(3)
        c = (b + 1).exp()
        return v, w, b, c, c.reshape(12)
    _twin(lambda: (f, None), _x, after=lambda out, env: out[3].add_(1))


def test_verified_gradients_accumulated_and_returned_across_calls():
    """Verified: .grad returned and mutated by the caller between calls, accumulated without zero_grad."""
    def make():
        w = _weight()

        def f(a):
            (w * a).sum().backward()
            return w.grad
        return f, w
    _twin(make, _x, state=lambda w: [w, w.grad], after=lambda g, w: g.mul_(0.5))


def test_verified_two_compiled_steps_share_a_model_with_alternating_shapes():
    """Verified: a training step and an eval step, both compiled, interleaved on one model with BatchNorm and Adam,
    the batch size alternating (variants); every earlier result checked after the last call."""
    def build():
        tl.manual_seed(0)
        m = nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 2))
        opt = tl.optim.Adam(m.parameters(), lr=0.01)

        def train(x):
            m.train()
            opt.zero_grad()
            loss = m(x).pow(2).mean()
            loss.backward()
            opt.step()
            return loss.detach(), m[0].weight.grad

        def evaluate(x):
            m.eval()
            with tl.no_grad():
                return m(x)
        return m, train, evaluate
    me, te, ee = build()
    mc, tc, ec = build()
    tc, ec = tl.compile(tc), tl.compile(ec)
    kept = []
    for i in range(10):
        x, y = _rand(i, (6 if i % 3 else 5, 4)), _rand(i + 50, (2, 4))
        want = [te(tl.tensor(x)), ee(tl.tensor(y))]
        got = [tc(tl.tensor(x)), ec(tl.tensor(y))]
        assert _same(_flat(want, []), _flat(got, []))
        assert _same(_flat([list(me.parameters()), list(me.buffers())], []),
                     _flat([list(mc.parameters()), list(mc.buffers())], []))
        kept.append((want, got))
    assert all(_same(_flat(w, []), _flat(g, [])) for w, g in kept)
    assert tc.stats["replays"] > 0 and ec.stats["replays"] > 0


def test_verified_scatter_and_index_put_with_repeated_indices_and_masks():
    def f(a, i):
        z = tl.zeros(5)
        z.scatter_add_(0, i, a)
        w = tl.zeros(5)
        w.index_put_((i,), a, accumulate=True)
        return z, w, a[a > 0] * 2
    _twin(lambda: (f, None), lambda k: (tl.tensor(_rand(k, (6,))), tl.tensor(np.array([0, 1, 1, 3, 3, 3]))))
