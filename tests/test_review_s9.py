"""Review s9 (7a0e009..50ce3e7): tl.tensor copies, getitem's index copy, separate backwards of a compiled call's
outputs, the constants scan's item/getattr guards, and the per-step RNN input projection.

xfail(strict=True) tests are library bugs (the reason names the root cause); the others are regressions of cases not
covered elsewhere. Compiled-vs-eager comparisons are bit for bit over 12 calls."""
import collections
import types
import warnings

import numpy as np
import pytest

import tinygrad_lite as tl

from test_compile_constants_adversarial import _mismatches, _x  # (12 calls, change before the 6th)

nn = tl.nn
F = nn.functional


# ============ 4. the constants scan: settings it still does not guard (stale replays) ============

class _Obj:
    pass


class _ClassCfg:
    scale = 2.0


class _AttrDict(dict):
    __getattr__ = dict.__getitem__


_NT = collections.namedtuple("_NT", "scale")
_S = types.SimpleNamespace()  # what the cases read, reset by _stale_case


def _stale_case(name):
    s = _S
    s.obj, s.inst, s.ad = _Obj(), _ClassCfg(), _AttrDict(scale=2.0)
    _ClassCfg.scale = 2.0
    s.tk, s.fk, s.lst, s.flags = {(0, 1): 2.0}, {0.5: 2.0}, [2.0, 1.0], {"a": 1}
    s.nt, s.backing = _NT(2.0), {"scale": 2.0}
    s.proxy = types.MappingProxyType(s.backing)
    return {
        "getattr(obj, name, default)": (lambda x: (x * getattr(_S.obj, "scale", 2.0)).detach(),
                                        lambda: setattr(s.obj, "scale", 3.0)),
        "getattr(Class, name)": (lambda x: (x * getattr(_ClassCfg, "scale")).detach(),
                                 lambda: setattr(_ClassCfg, "scale", 3.0)),
        "getattr(obj, name) class default": (lambda x: (x * getattr(_S.inst, "scale")).detach(),
                                             lambda: setattr(_ClassCfg, "scale", 3.0)),
        "getattr(AttrDict, name)": (lambda x: (x * getattr(_S.ad, "scale")).detach(),
                                    lambda: s.ad.__setitem__("scale", 3.0)),
        "tuple key cfg[0, 1]": (lambda x: (x * _S.tk[0, 1]).detach(), lambda: s.tk.__setitem__((0, 1), 3.0)),
        "float key cfg[0.5]": (lambda x: (x * _S.fk[0.5]).detach(), lambda: s.fk.__setitem__(0.5, 3.0)),
        "list slice lst[:1]": (lambda x: (x * sum(_S.lst[:1])).detach(), lambda: s.lst.__setitem__(0, 3.0)),
        "for s in lst": (lambda x: _loop(x), lambda: s.lst.__setitem__(0, 3.0)),
        "'key' in cfg": (lambda x: (x * (3.0 if "b" in _S.flags else 2.0)).detach(),
                         lambda: s.flags.__setitem__("b", 1)),
        "namedtuple field": (lambda x: (x * _S.nt.scale).detach(), lambda: setattr(s, "nt", _NT(3.0))),
        "MappingProxyType item": (lambda x: (x * _S.proxy["scale"]).detach(),
                                  lambda: s.backing.__setitem__("scale", 3.0)),
    }[name]


def _loop(x):
    for v in _S.lst[:1]:
        x = x * v
    for v in _S.lst:
        x = x * v
    return x.detach()


_WHY = {}  # name -> root cause, for a case still replayed stale (strict xfail); every one found so far is fixed


_FIXED = ["getattr(Class, name)", "getattr(obj, name) class default", "getattr(AttrDict, name)", "tuple key cfg[0, 1]",
          "float key cfg[0.5]", "namedtuple field", "MappingProxyType item",  # (stale before they were fixed)
          "getattr(obj, name, default)", "list slice lst[:1]", "for s in lst", "'key' in cfg"]  # (fixed in s10)


@pytest.mark.parametrize("name", _FIXED + [pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=r))
                                           for n, r in _WHY.items()])
def test_settings_the_scan_misses_are_replayed_stale(name):
    """Eager computes with the changed setting from the 6th call on (x * 3 instead of x * 2); the replay returns the
    recorded result (stats: every call after the first replays, last_reason None). Each case is a constant-key item
    or getattr setting of the kind the change claims to guard (or a plain read of a settings container)."""
    fn, change = _stale_case(name)
    try:
        bad, stats = _mismatches(fn, change)
    finally:
        _ClassCfg.scale = 2.0
    assert bad == [], stats


_ODICT = collections.OrderedDict(scale=2.0)
_DDICT = collections.defaultdict(float, scale=2.0)


@pytest.mark.parametrize("which", ["OrderedDict", "defaultdict existing key"])
def test_items_of_dict_subclasses_with_dicts_lookup_are_guarded(which):
    """OrderedDict and a defaultdict's existing key use dict's own __getitem__: guarded, never stale."""
    d = _ODICT if which == "OrderedDict" else _DDICT
    d["scale"] = 2.0
    bad, stats = _mismatches(lambda x: (x * d["scale"]).detach(), lambda: d.__setitem__("scale", 3.0))
    assert bad == [] and stats["replays"] >= 9, stats


def test_a_step_incrementing_its_own_item_matches_eager():
    """`st["n"] += 1; return x * st["n"]` inside the step: the pre-call snapshot guard fails every call, so every
    call runs the step (eagerly); outputs and the final count are eager's."""
    def run(compiled):
        st = {"n": 0.0}

        def step(x):
            st["n"] += 1
            return (x * st["n"]).detach()
        f = tl.compile(step) if compiled else step
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", tl.CompileWarning)
            return [f(_x()).numpy().copy() for _ in range(12)], st["n"]
    (want, n_want), (got, n_got) = run(False), run(True)
    assert n_want == n_got == 12.0 and all(np.array_equal(a, b) for a, b in zip(want, got))


def test_tensor_of_floats_read_from_an_argument_array():
    """Eager: each call builds [a[0], 1] * 2 from that call's array. The replay returned the first call's a[0] (the
    Python floats came from NumPy indexing the capture does not see); the scan now sees the argument's values read in
    Python and the call runs eagerly with the reason."""
    rng = np.random.default_rng(0)
    fn = lambda a: (tl.tensor([float(a[0]), 1.0]) * 2).detach()  # noqa: E731
    f = tl.compile(fn)
    bad = []
    for i in range(12):
        a = rng.standard_normal(4).astype(np.float32)
        if not np.array_equal(f(a).numpy(), fn(a).numpy()):
            bad.append(i)
    assert bad == [] and "a NumPy argument" in f.stats["last_reason"], f.stats


# ============ 1. tl.tensor copies (PyTorch semantics) ============

def test_a_copied_argument_array_changed_in_place_after_the_copy_matches_eager():
    """`t = tl.tensor(a); a[0] = 100; return t * 2` compiled: the result is the copy's (at 7a0e009 the replay returned
    the written value: stale), and the caller's array is written at every call (a replay, which runs no Python, left
    it unwritten until the twenty-third session: the item store now runs the call eagerly)."""
    def step(a):
        t = tl.tensor(a)
        a[0] = 100.0
        return (t * 2).detach()
    f, rng, bad = tl.compile(step), np.random.default_rng(0), []
    for i in range(12):
        a = rng.standard_normal(4).astype(np.float32)
        mine, theirs = a.copy(), a.copy()
        if not np.array_equal(f(mine).numpy(), step(theirs).numpy()) or not np.array_equal(mine, theirs):
            bad.append(i)
    assert bad == [] and "'a[...]' assigned" in f.stats["last_reason"], f.stats


@pytest.mark.oracle
def test_tl_tensor_of_a_transposed_array_keeps_its_memory_order_as_torch(torch):
    """torch.tensor(a.T) keeps the source's strides (not contiguous, in torch 2.13); so does tl.tensor's copy."""
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert tl.tensor(a.T).is_contiguous() == torch.tensor(a.T).is_contiguous() == False  # noqa: E712
    assert tl.tensor(a).is_contiguous() and np.array_equal(tl.tensor(a.T).numpy(), a.T)


def test_tl_tensor_of_a_read_only_array_or_a_graph_tensor_is_an_own_writable_leaf():
    """As torch.tensor: a read-only source gives a writable copy; a tensor with a graph or requires_grad gives a
    leaf without requires_grad whose values do not follow the source."""
    ro = np.arange(3.0, dtype=np.float32)
    ro.flags.writeable = False
    t = tl.tensor(ro)
    t.add_(1)
    assert np.array_equal(ro, [0, 1, 2]) and np.array_equal(t.numpy(), [1, 2, 3])
    p = tl.tensor(np.ones(2, np.float32), requires_grad=True)
    c = tl.tensor(p * 2)
    assert not c.requires_grad and c.is_leaf
    src = tl.tensor(np.ones(2, np.float32))
    c2 = tl.Tensor(src, dtype=tl.float32)
    src.add_(1)
    assert np.array_equal(c2.numpy(), [1, 1])


@pytest.mark.oracle
@pytest.mark.parametrize("source", ["torch bool tensor", "torch float32 with dtype=float32",
                                    "memoryview with dtype=float32"])
def test_tl_tensor_of_a_buffer_source_copies(source, torch):
    """torch.tensor(src) always copies: changing src afterwards never changes the tensor. tl.tensor(src) kept a view
    of src's memory when np.asarray only viewed it (a torch tensor, a memoryview); it copies now."""
    if source == "torch bool tensor":
        src = torch.tensor([True, True])
        t = tl.tensor(src)
        src[0] = False
        want = [True, True]
    elif source.startswith("torch float32"):
        src = torch.tensor([1.0, 2.0])
        t = tl.tensor(src, dtype=tl.float32)
        src[0] = 9.0
        want = [1.0, 2.0]
    else:
        backing = np.array([1.0, 2.0], np.float32)
        t = tl.tensor(memoryview(backing), dtype=tl.float32)
        backing[0] = 9.0
        want = [1.0, 2.0]
    assert np.array_equal(t.numpy(), want)


# ============ 2. indices changed in place after the forward ============

@pytest.mark.oracle
def test_gather_index_changed_in_place_before_backward(torch):
    """PyTorch raises 'one of the variables needed for gradient computation has been modified by an inplace
    operation' (gather saves its index). tl gave w.grad = [0, 1, 0, 0, 1]: the gradient of row 0 went to row 4; it
    now keeps a copy of the index, as getitem does, and gives the forward's gradient [1, 1, 0, 0, 0]."""
    tw, ti = torch.ones(5, requires_grad=True), torch.tensor([0, 1])
    ty = tw.gather(0, ti)
    ti[0] = 4
    with pytest.raises(RuntimeError, match="modified by an inplace"):
        ty.sum().backward()
    w, i = tl.tensor(np.ones(5, np.float32), requires_grad=True), tl.tensor(np.array([0, 1]))
    y = w.gather(0, i)
    i[0] = 4
    try:
        y.sum().backward()
    except RuntimeError:
        return  # raising as PyTorch does is fine
    assert np.array_equal(w.grad.numpy(), [1, 1, 0, 0, 0])


@pytest.mark.oracle
@pytest.mark.parametrize("op", ["getitem", "index_select", "embedding"])
def test_tensor_index_changed_in_place_before_backward_gives_the_forwards_gradient(op, torch):
    """torch: `w[idx]`/`w.index_select(0, idx)`/`F.embedding(idx, w)`, then `idx[0] = 4`, then backward raises
    RuntimeError (its saved index is version-checked). tl keeps a copy of the index instead and gives the gradient of
    the forward as it ran (a deliberate difference: never a wrong gradient, no error either)."""
    def fwd(lib, w, i):
        if op == "getitem":
            return w[i]
        if op == "index_select":
            return w.index_select(0, i)
        return lib.nn.functional.embedding(i, w)
    tw, ti = torch.ones((5, 2), requires_grad=True), torch.tensor([0, 1])
    ty = fwd(torch, tw, ti)
    ti[0] = 4
    with pytest.raises(RuntimeError):
        ty.sum().backward()
    w, i = tl.tensor(np.ones((5, 2), np.float32), requires_grad=True), tl.tensor(np.array([0, 1]))
    y = fwd(tl, w, i)
    i[0] = 4
    y.sum().backward()
    assert np.array_equal(w.grad.numpy(), [[1, 1], [1, 1], [0, 0], [0, 0], [0, 0]])


class _Emb(nn.Module):
    def __init__(self):
        super().__init__()
        self.e = nn.Embedding(6, 3)
        self.w = nn.Parameter(tl.tensor(np.ones((6, 3), np.float32)))

    def forward(self, ids, idx):
        return (self.e(ids) * 2).sum() + (self.w[idx] ** 2).sum()


def test_compiled_embedding_and_array_index_changed_after_forward_match_eager():
    """tl.compile(model)(ids, idx) with new ids every call, then the id tensor and the index array are overwritten
    before backward: the replay's recorded index copy is per call, so loss and grads are eager's bit for bit."""
    def run(compiled):
        tl.manual_seed(0)
        m = _Emb()
        f = tl.compile(m) if compiled else m
        rng, res = np.random.default_rng(0), []
        for _ in range(12):
            ids, idx = tl.tensor(rng.integers(0, 6, 5)), rng.integers(0, 6, 4)
            out = f(ids, idx)
            ids.fill_(0)
            idx[:] = 0
            out.backward()
            res += [out.numpy().copy()] + [p.grad.numpy().copy() for p in m.parameters()]
            for p in m.parameters():
                p.grad = None
        return res, getattr(f, "stats", None)
    (want, _), (got, stats) = run(False), run(True)
    assert all(np.array_equal(a, b) for a, b in zip(want, got)) and stats["replays"] == 11, stats


# ============ 3. separate backwards of a compiled call's outputs ============

class _Three(nn.Module):
    """o1 and o2 share a trunk (tanh(a(x))); o3 is apart. `shared_add`: o1, o2 share only `p + q`, o3 reads q."""

    def __init__(self, shared_add):
        super().__init__()
        self.shared_add = shared_add
        self.a, self.b, self.c, self.d = (nn.Linear(4, 4) for _ in range(4))
        self.p = nn.Parameter(tl.tensor(np.ones(4, np.float32)))
        self.q = nn.Parameter(tl.tensor(np.full(4, 0.5, np.float32)))

    def forward(self, x):
        if self.shared_add:
            h = self.p + self.q
            return (h * x).sum(), (h * 2).sum(), (self.q * x).sum()
        h = self.a(x).tanh()
        return self.b(h).sum(), self.c(h).sum(), self.d(x).sum() + (self.p * self.q).sum()


_R = {"retain_graph": True}
_SCRIPTS = {"b0 b1 b2": [("b", 0), ("b", 1), ("b", 2)], "b2 b0 b1": [("b", 2), ("b", 0), ("b", 1)],
            "b0(retain) b1 b2": [("b", 0, _R), ("b", 1), ("b", 2)], "b0 b2 b0": [("b", 0), ("b", 2), ("b", 0)],
            "grad0 b1": [("g", 0), ("b", 1)], "grad0(retain) b1 b0": [("g", 0, _R), ("b", 1), ("b", 0)],
            "grad2 b0 b1": [("g", 2), ("b", 0), ("b", 1)], "b1 b0(retain)": [("b", 1), ("b", 0, _R)]}


@pytest.mark.parametrize("shared_add", [False, True])
@pytest.mark.parametrize("script", list(_SCRIPTS))
def test_separate_backwards_of_three_outputs_raise_and_accumulate_as_eager(script, shared_add):
    """Three outputs with partly shared paths; backward / autograd.grad through them one by one, with and without
    retain_graph: each step raises (error type) or gives the grads eager does, bit for bit, over 8 replays."""
    def run(compiled):
        tl.manual_seed(0)
        m = _Three(shared_add)
        f = tl.compile(m) if compiled else m
        rng, res = np.random.default_rng(0), []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", tl.CompileWarning)
            for _ in range(8):
                outs = f(tl.tensor(rng.standard_normal((3, 4)).astype(np.float32)))
                for kind, k, *kw in _SCRIPTS[script]:
                    try:
                        if kind == "b":
                            outs[k].backward(**(kw[0] if kw else {}))
                        else:
                            gs = tl.autograd.grad(outs[k], list(m.parameters()), allow_unused=True,
                                                  **(kw[0] if kw else {}))
                            res += [np.array("none") if g is None else g.numpy().copy() for g in gs]
                        res.append(np.array("ok"))
                    except RuntimeError as exc:
                        res.append(np.array(type(exc).__name__))
                res += [np.array("none") if p.grad is None else p.grad.numpy().copy() for p in m.parameters()]
                for p in m.parameters():
                    p.grad = None
        return res, getattr(f, "stats", None)
    (want, _), (got, stats) = run(False), run(True)
    assert len(want) == len(got)
    bad = [i for i, (a, b) in enumerate(zip(want, got)) if a.shape != b.shape or not np.array_equal(a, b)]
    assert not bad, (bad[:4], [(want[i], got[i]) for i in bad[:2]])
    assert stats["replays"] == 7 and stats["eager_calls"] == 0, stats


@pytest.mark.oracle
# ============ 5. RNN/LSTM/GRU ============

@pytest.mark.parametrize("mode", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("layers,bidir,batch_first,bias,dt", [(2, True, True, True, np.float64),
                                                             (2, True, False, False, np.float32),
                                                             (1, False, True, False, np.float64)])
def test_rnn_matches_torch_with_input_and_state_gradients(mode, layers, bidir, batch_first, bias, dt, torch):
    """Outputs, final states and the gradients of the input, h0 (c0) and every weight/bias equal torch's."""
    rng = np.random.default_rng(1)
    H, Fi, T, B, D = 5, 3, 4, 2, 2 if bidir else 1
    tcls = getattr(torch.nn, mode)
    tm = tcls(Fi, H, num_layers=layers, bidirectional=bidir, batch_first=batch_first, bias=bias)
    tm = tm.double() if dt == np.float64 else tm
    lm = getattr(nn, mode)(Fi, H, num_layers=layers, bidirectional=bidir, batch_first=batch_first, bias=bias)
    lm = lm.double() if dt == np.float64 else lm
    for n, p in tm.named_parameters():
        getattr(lm, n).data = tl.tensor(p.detach().numpy())
    x = rng.standard_normal((B, T, Fi) if batch_first else (T, B, Fi)).astype(dt)
    h0, c0 = (rng.standard_normal((layers * D, B, H)).astype(dt) for _ in range(2))
    tx, th, tc = (torch.tensor(a, requires_grad=True) for a in (x, h0, c0))
    lx, lh, lc = (tl.tensor(a, requires_grad=True) for a in (x, h0, c0))
    to, ts = tm(tx, (th, tc) if mode == "LSTM" else th)
    lo, ls = lm(lx, (lh, lc) if mode == "LSTM" else lh)
    w = rng.standard_normal(tuple(to.shape)).astype(dt)
    tsf = ts[0] * 1.5 + ts[1] if mode == "LSTM" else ts
    lsf = ls[0] * 1.5 + ls[1] if mode == "LSTM" else ls
    ((to * torch.tensor(w)).sum() + (tsf ** 2).sum()).backward()
    ((lo * tl.tensor(w)).sum() + (lsf ** 2).sum()).backward()
    tol = dict(rtol=1e-4, atol=1e-5) if dt == np.float32 else dict(rtol=1e-10, atol=1e-11)
    pairs = [(to.detach(), lo), (tx.grad, lx.grad), (th.grad, lh.grad)] + ([(tc.grad, lc.grad)] if mode == "LSTM"
                                                                           else [])
    pairs += [(p.grad, getattr(lm, n).grad) for n, p in tm.named_parameters()]
    for a, b in pairs:
        np.testing.assert_allclose(b.numpy(), a.numpy(), **tol)


@pytest.mark.parametrize("make", [lambda: nn.GRU(3, 4, num_layers=2, bidirectional=True, batch_first=True),
                                  lambda: nn.LSTM(3, 4, bias=False), lambda: nn.RNN(3, 4, nonlinearity="relu",
                                                                                       num_layers=2)],
                         ids=["GRU-bidir-2l-bf", "LSTM-nobias", "RNN-relu-2l"])
def test_compiled_rnn_training_with_changing_lengths_and_batches_is_bit_identical(make):
    """tl.compile(rnn) in a training loop (SGD momentum) with sequence lengths and batch sizes changing between
    calls: losses, grads and the final weights equal eager's bit for bit."""
    shapes = [(5, 2, 3), (7, 2, 3), (5, 2, 3), (5, 3, 3)] * 3

    def run(compiled):
        tl.manual_seed(0)
        m = make()
        opt = tl.optim.SGD(m.parameters(), lr=0.05, momentum=0.9)
        f = tl.compile(m) if compiled else m
        rng, res = np.random.default_rng(0), []
        for sh in shapes:
            o, s = f(tl.tensor(rng.standard_normal(sh).astype(np.float32)))
            loss = o.pow(2).mean() + (s[0] if isinstance(s, tuple) else s).sum()
            loss.backward()
            res += [loss.numpy().copy()] + [p.grad.numpy().copy() for p in m.parameters()]
            opt.step()
            opt.zero_grad()
        return res + [p.numpy().copy() for p in m.parameters()], getattr(f, "stats", None)
    (want, _), (got, stats) = run(False), run(True)
    assert all(a.shape == b.shape and np.array_equal(a, b) for a, b in zip(want, got))
    assert stats["replays"] >= 8 and stats["eager_calls"] == 0, stats
