"""Review of the s18 commits (7074889..): max pooling's uint64 pair planes and its direct gather, and the capture-cost
work (Capture.primitive, live_ops/slot_reads, plan_buffers' early exits, validate's set operations, the interpreted
program's constant slots). Every comparison with eager is bit for bit."""
import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite import nn
from tinygrad_lite.compile import capture as cap_mod
from tinygrad_lite.compile.plan import INTERPRETED_REPLAYS, Plan, validate
from tinygrad_lite.compile.record import Obj, Ref
from tinygrad_lite.nn.pooling import _argmax_indices, _pair_planes

F = nn.functional


def _stacked_views(x, k, s):
    n, c, h, w = x.shape
    oh, ow = (h - k[0]) // s[0] + 1, (w - k[1]) // s[1] + 1
    return np.stack([x[:, :, i:i + s[0] * (oh - 1) + 1:s[0], j:j + s[1] * (ow - 1) + 1:s[1]]
                     for i in range(k[0]) for j in range(k[1])]), (oh, ow)


def _bits(a):  # (in native byte order: np.stack of big-endian views gives a native array)
    return np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("=")).view(np.uint32)


# ---------------- _pair_planes: the same bits as the strided views, for every input it accepts ----------------
def _inputs():
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 2 ** 32, size=(2, 3, 7, 8), dtype=np.uint64).astype(np.uint32)
    raw[0, 0, 0, :4] = [0x7FC00001, 0xFFC12345, 0x00000001, 0x80000001]  # NaN payloads (both signs), subnormals
    raw[0, 0, 1, :4] = [0x80000000, 0x00000000, 0x7F800000, 0xFF800000]  # -0, +0, +inf, -inf
    bits = raw.view(np.float32)
    buf = np.zeros(1 + bits.size, np.float32)  # 4-byte aligned only: the uint64 words are unaligned
    unaligned = buf[1:].reshape(bits.shape)
    unaligned[...] = bits
    ints = rng.integers(-5, 5, size=(2, 3, 7, 8)).astype(np.int32)
    odd_strides = np.lib.stride_tricks.as_strided(bits, shape=(1, 1, 7, 8), strides=(12345, 678, 32, 4))
    return {"bits": bits, "unaligned": unaligned, "big-endian": bits.astype(">f4"), "int32": ints,
            "size-1 dims, any strides": odd_strides}


@pytest.mark.parametrize("name", list(_inputs()))
@pytest.mark.parametrize("kh", [1, 2, 3])
def test_pair_planes_hold_the_strided_views_bits(name, kh):
    x = _inputs()[name]
    want, (oh, ow) = _stacked_views(x, (kh, 2), (kh, 2))
    planes = _pair_planes(x, (kh, 2), (kh, 2), (1, 1), (oh, ow), (0, 0))
    assert planes is not None and planes.dtype == x.dtype
    np.testing.assert_array_equal(_bits(planes), _bits(want))
    got = _argmax_indices(x, (kh, 2), (kh, 2), (0, 0), (1, 1), (oh, ow), (0, 0))
    plain = _argmax_indices(x.astype(np.float64) if x.dtype.kind == "f" else x.astype(np.int64),
                            (kh, 2), (kh, 2), (0, 0), (1, 1), (oh, ow), (0, 0))  # (8-byte: the plain search)
    np.testing.assert_array_equal(got, plain)


# ---------------- max_pool2d's direct gather ----------------
def test_returned_indices_written_over_change_neither_the_gradient_nor_the_output(torch):
    x = np.random.default_rng(1).standard_normal((2, 3, 6, 8)).astype(np.float32)
    t = tl.tensor(x, requires_grad=True)
    out, idx = F.max_pool2d(t, 2, return_indices=True)
    want = out.detach().numpy().copy()
    idx.data[...] = 0  # the caller's copy: the gather's own index is untouched
    idx.numpy()[...] = 0
    (out * out).sum().backward()
    tx = torch.tensor(x, requires_grad=True)
    tout = torch.nn.functional.max_pool2d(tx, 2)
    (tout * tout).sum().backward()
    np.testing.assert_array_equal(want, tout.detach().numpy())
    np.testing.assert_array_equal(t.grad.numpy(), tx.grad.numpy())


def _pool_net():
    tl.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 4, 3, padding=1),
                         nn.ReLU(), nn.MaxPool2d((3, 2), (3, 2)), nn.Flatten(), nn.Linear(16, 3))


@pytest.mark.parametrize("return_indices", [False, True])
def test_compiled_pooling_steps_replay_as_eager_over_changing_inputs(return_indices):
    def step_for(model, opt):
        def step(x, y):
            opt.zero_grad()
            h = model[:2](x)
            h, idx = F.max_pool2d(h, 2, return_indices=True) if return_indices else (model[2](h), None)
            loss = F.cross_entropy(model[3:](h), y)
            loss.backward()
            opt.step()
            return loss, idx
        return step
    m1, m2 = _pool_net(), _pool_net()
    eager = step_for(m1, tl.optim.SGD(m1.parameters(), lr=0.1, momentum=0.9))
    compiled = tl.compile(step_for(m2, tl.optim.SGD(m2.parameters(), lr=0.1, momentum=0.9)))
    rng, kept = np.random.default_rng(2), []
    for i in range(INTERPRETED_REPLAYS + 5):
        x = rng.standard_normal((3, 2, 12, 8)).astype(np.float32)
        if i == 4:
            x[0, 1, 3, 2] = np.nan
        y = rng.integers(0, 3, 3)
        (a, ia), (b, ib) = eager(tl.tensor(x), tl.tensor(y)), compiled(tl.tensor(x), tl.tensor(y))
        assert np.array_equal(a.numpy(), b.numpy(), equal_nan=True), i
        for p, q in zip(m1.parameters(), m2.parameters()):
            assert np.array_equal(p.numpy(), q.numpy(), equal_nan=True), i
        if return_indices:
            assert np.array_equal(ia.numpy(), ib.numpy()), i
            kept.append((ia.numpy().copy(), ib))
    assert compiled.stats["replays"] == INTERPRETED_REPLAYS + 4, compiled.stats
    for want, got in kept:  # an earlier call's indices are its own: no later replay writes over them
        np.testing.assert_array_equal(want, got.numpy())


def test_compiled_forward_outputs_keep_their_own_indices_for_a_later_backward():
    rng = np.random.default_rng(3)
    w = tl.tensor(rng.standard_normal((1, 2, 1, 1)).astype(np.float32), requires_grad=True)

    def f(x):
        return F.max_pool2d(x * w, 2)
    compiled = tl.compile(f)
    xs = [rng.standard_normal((2, 2, 6, 8)).astype(np.float32) for _ in range(INTERPRETED_REPLAYS + 4)]
    outs = [compiled(tl.tensor(x)) for x in xs]
    for x, o in zip(xs, outs):
        w.grad = None
        (o * o).sum().backward()
        got = w.grad.numpy().copy()
        w.grad = None
        (f(tl.tensor(x)) ** 2).sum().backward()
        np.testing.assert_array_equal(got, w.grad.numpy())


# ---------------- Capture.primitive records what kernel() recorded ----------------
def _norm(t):
    if t.__class__ is Ref:
        return ("Ref", t.kind, t.key if isinstance(t.key, (int, tuple, str)) else type(t.key).__name__)
    if t.__class__ is Obj:
        return ("Obj", type(t.value).__name__)
    if isinstance(t, (tuple, list)):
        return (type(t).__name__, tuple(_norm(x) for x in t))
    if isinstance(t, slice):
        return ("slice", _norm(t.start), _norm(t.stop), _norm(t.step))
    if isinstance(t, dict):
        return ("dict", tuple((k, _norm(v)) for k, v in t.items()))
    if isinstance(t, np.ndarray):
        return ("array", t.shape, t.dtype.str, t.tobytes())
    return ("value", repr(t))


def _recorded(fn, args, monkeypatch, via_kernel):
    seen = []
    init = Plan.__init__

    def spy(self, cap, result):
        seen.append([(op.fn, op.kind, op.outs, op.effect, op.shapes, op.prim, op.ufunc, op.into, op.layout, op.views,
                      _norm(op.args)) for op in cap.ops])
        init(self, cap, result)
    with monkeypatch.context() as m:
        m.setattr(Plan, "__init__", spy)
        # a cold cache of scalar constants for both runs (a float cached before the capture takes operators'
        # fast path, which records it as a live tensor instead of a constant: the same either way, but not the
        # same Ref as in a run that made it)
        m.setattr(tl.operators, "_SCALARS", {})
        if via_kernel:  # the code path before 799b8be: recorder.apply called kernel() for every primitive
            m.setattr(cap_mod.Capture, "primitive", lambda self, prim, inputs, attrs, out: self.kernel(
                prim.forward, (*inputs, *attrs), out, prim.name, prim=prim))
        compiled = tl.compile(fn)
        results = [compiled(*a()) for a in args]
    return seen, results


def test_capture_primitive_records_the_ops_kernel_recorded(monkeypatch):
    def make():
        tl.manual_seed(0)
        return nn.Linear(4, 4)

    def step_for(lin):
        def step(x, y):
            a = x.T.reshape(2, 8)                    # views of an argument
            b = lin(x)                               # parameters (live tensors)
            c = b.reshape(8, 2).T                    # views of the call's arrays
            d = b.detach()                           # another tensor on a slot's array
            e = b * 2.0 + 3                          # cached scalars (constants)
            f = x[np.array([0, 2])] + y[1:3]         # an integer-array index, a slice
            g = (x > 0)                              # a comparison
            h = x[y.sum(-1) > -100]                  # a mask index: kernel() with its shape check
            k = e.sum() * d.mean()                   # 0-d results: kernel() with an array call
            m = d.clone()
            m.add_(1.0)                              # an in-place write into the call's own array
            loss = a.sum() + c.sum() + f.sum() + g.float().sum() + h.sum() + k + m.sum() + e.expand(2, 4, 4).sum()
            loss.backward()
            return loss
        return step
    rng = np.random.default_rng(4)
    xs = [(rng.standard_normal((4, 4)).astype(np.float32), rng.standard_normal((4, 4)).astype(np.float32))
          for _ in range(3)]
    runs = []
    for via_kernel in (False, True):
        lin = make()
        args = [lambda x=x, y=y: (tl.tensor(x), tl.tensor(y)) for x, y in xs]
        seen, results = _recorded(step_for(lin), args, monkeypatch, via_kernel)
        runs.append((seen, [r.numpy() for r in results], lin.weight.grad.numpy().copy()))
    (seen_p, res_p, grad_p), (seen_k, res_k, grad_k) = runs
    assert len(seen_p) == 1 and len(seen_p[0]) > 20
    assert seen_p == seen_k
    for a, b in zip(res_p + [grad_p], res_k + [grad_k]):
        np.testing.assert_array_equal(a, b)


# ---------------- validate: what it caught before, it catches still ----------------
def _plan():
    tl.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 32), nn.Tanh(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 2))

    def step(x):
        return (model(x) * 2.0).sum().item()
    compiled = tl.compile(step)
    for _ in range(3):
        compiled(tl.randn(50, 6))
    plan = compiled._variants[0].plan
    assert validate(plan)
    return plan


def test_validate_catches_a_read_before_any_write():
    plan = _plan()
    i = next(i for i, w in enumerate(plan.writes_of) if i and w)
    slot = plan.writes_of[i][0]
    plan.reads_of[0] = list(plan.reads_of[0]) + [slot]  # the first step reads what a later one writes
    with pytest.raises(AssertionError, match=f"reads slot {slot} before any step writes it"):
        validate(plan)


def test_validate_catches_two_live_slots_in_one_buffer_and_a_freed_result():
    plan = _plan()
    shared = {}
    for k, b in plan.buffer_of.items():
        shared.setdefault(b, []).append(k)
    b, (k1, k2) = next((b, ks[:2]) for b, ks in shared.items() if len(ks) > 1)
    first, last = plan.span[k1]
    plan.span[k1] = (first, plan.span[k2][0] + 1)  # k1 now outlives k2's start
    plan.inplace.discard(k2)
    with pytest.raises(AssertionError, match=f"share buffer {b} while both are alive"):
        validate(plan)
    plan = _plan()
    freed = next(k for rel in plan.release for k in rel)
    plan.keep = set(plan.keep) | {freed}
    with pytest.raises(AssertionError):
        validate(plan)


# ---------------- a plan reused after set_default_dtype ----------------
@pytest.fixture
def default_float32():
    before = tl.get_default_dtype()
    tl.set_default_dtype(tl.float32)
    yield
    tl.set_default_dtype(before)


def test_a_plan_recorded_under_one_default_dtype_is_not_replayed_under_another(default_float32):
    """The default dtype decides the dtype of a Python float with an integer tensor and of float factories; a
    plan's constants and kernels were recorded with the old one (replays returned float32 where eager gave
    float64). The variant is keyed by the default dtype: each default gets its own plan."""
    def f(x):
        return (x * 2.5 + 1.5).sum() + tl.ones(3).sum()
    compiled = tl.compile(f)
    for default in (tl.float32, tl.float64, tl.float32, tl.float64):
        tl.set_default_dtype(default)
        for i in range(INTERPRETED_REPLAYS + 2):  # the interpreted program, then the generated code
            x = tl.tensor(np.arange(4) + i)
            want, got = f(x), compiled(x)
            assert got.dtype == want.dtype == default and np.array_equal(got.numpy(), want.numpy())
    assert compiled.stats["variants"] == 2 and compiled.stats["eager_calls"] == 0, compiled.stats


@pytest.mark.parametrize("reflected", [False, True])
def test_a_scalar_cached_before_the_recording_is_a_constant_not_a_live_tensor(reflected):
    """`x * 2.5` after an eager `x * 2.5` takes operators' cached-constant fast path; the capture must still know its
    0-d array as a constant (it was recorded as a tensor from before the call: guarded on every replay and read
    through a resolver per use), and replays keep eager's numbers when the scalar changes."""
    def f(x, c):
        return ((c * x) if reflected else (x * c)).sum()
    x = tl.tensor(np.arange(4.0, dtype=np.float32))
    f(x, 2.5), f(x, 3.5)  # eager: both constants cached
    g = tl.compile(f)
    for c in (2.5, 2.5, 3.5, 3.5):
        assert g(x, c).item() == f(x, c).item()
    assert g.stats["eager_calls"] == 0
    assert all(len(v.live) == 0 for v in g._variants if v.plan is not None)
