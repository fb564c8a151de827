"""Review s16: tl.compile against attention (MultiheadAttention, scaled_dot_product_attention, the Transformer
layers), the newer LR schedulers (ConstantLR, PolynomialLR, MultiplicativeLR, CyclicLR with cycle_momentum), init
functions, atleast_nd and autograd.functional inside a compiled step. Each test runs an eager twin and a compiled
twin (same seed, same model built twice) over many calls with new data (masks, lengths, train/eval changing between
calls) and compares returned values, parameters, .grad, optimizer state and param_groups, buffers, the generator's
state and the warnings raised, bit for bit (raw bytes, so NaN too)."""
import warnings

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite import nn

F = nn.functional
E = 8


def _t(a):
    return tl.tensor(np.asarray(a))


def _snap(x):
    if isinstance(x, tl.Tensor):
        return [x.detach().numpy().copy()]
    if isinstance(x, (list, tuple)):
        return [a for e in x for a in _snap(e)]
    return [np.array("None") if x is None else np.asarray(x).copy()]


def _state(model, opt):
    out = []
    for _, p in (model.named_parameters() if model is not None else ()):
        out += [p.detach().numpy().copy(), np.array("none") if p.grad is None else p.grad.numpy().copy()]
    out += [b.numpy().copy() for _, b in (model.named_buffers() if model is not None else ())]
    for st in (opt.state.values() if opt is not None else ()):
        out += [a for k in sorted(st) for a in _snap(st[k])]
    for g in (opt.param_groups if opt is not None else ()):
        out += [a for k in sorted(g) if k != "params" for a in _snap(g[k])]
    rng = repr(tl.random.get_rng().bit_generator.state).encode()
    return out + [np.frombuffer(rng, np.uint8)]


def _same(want, got, what):
    assert len(want) == len(got), what
    for i, (a, b) in enumerate(zip(want, got)):
        assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes(), f"{what}: array {i} differs"


def twins(build, make, data, between=None, **compile_kw):
    """Run make(build())'s step eagerly, then a fresh build compiled, on data (a list of argument tuples); after
    each call `between(objs, i)` (a scheduler step, a train/eval switch). Everything compared bit for bit, warnings
    included. Returns the compiled step's stats."""
    runs = []
    for compiled in (False, True):
        tl.manual_seed(0)
        objs = build()
        step = make(*objs)
        f = tl.compile(step, **compile_kw) if compiled else step
        log = []
        for i, args in enumerate(data):
            with warnings.catch_warnings(record=True) as w:
                warnings.simplefilter("always")
                out = f(*args)
            if between is not None:
                between(objs, i)
            log.append((_snap(out), _state(*objs[:2]), [(type(m.message).__name__, str(m.message)) for m in w]))
        runs.append((log, getattr(f, "stats", None)))
    (eager, _), (comp, stats) = runs
    for i, ((oe, se, we), (oc, sc, wc)) in enumerate(zip(eager, comp)):
        _same(oe, oc, f"call {i}: returned values ({stats})")
        _same(se, sc, f"call {i}: parameters, grads, optimizer, rng ({stats})")
        assert we == wc, f"call {i}: warnings differ: eager {we}, compiled {wc} ({stats})"
    return stats


def _train(model, opt, call):
    """A training step: zero_grad, call(model, *args) -> outputs, backward of their squares' mean, step."""
    def step(*args):
        opt.zero_grad()
        outs = call(model, *args)
        loss = sum((o ** 2).mean() for o in outs if o is not None)
        loss.backward()
        opt.step()
        return loss.detach(), [None if o is None else o.detach() for o in outs]
    return step


def _replays(stats, at_least):
    assert stats["replays"] >= at_least and stats["eager_calls"] == 0, stats


def _f32(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def _kpm(rng, n, s, kind="bool"):
    m = rng.random((n, s)) < 0.35
    m[:, 0] = False  # (every query keeps a key: no all-masked row)
    return _t(m if kind == "bool" else np.where(m, -np.inf, 0.0).astype(np.float32))


# ---------------- MultiheadAttention ----------------
MHA_CASES = [  # batch_first, key_padding_mask kind, need_weights, average_attn_weights, dropout
    (True, "bool", True, True, 0.0), (False, "bool", True, False, 0.25), (True, "float", False, True, 0.25),
    (False, "float", True, True, 0.0), (True, "bool", False, False, 0.0), (False, "bool", False, True, 0.3)]


@pytest.mark.parametrize("bf,kind,need_weights,avg,p", MHA_CASES)
def test_mha_training_with_masks_changing_each_call(bf, kind, need_weights, avg, p):
    rng = np.random.default_rng(1)
    N, L = 3, 5
    data = [(_t(_f32(rng, N, L, E) if bf else _f32(rng, L, N, E)), _kpm(rng, N, L, kind),
             _t(np.triu(rng.random((L, L)) < 0.4, 1).astype(np.float32) * -1e9 if kind == "float" else
                np.triu(rng.random((L, L)) < 0.4, 1))) for _ in range(12)]

    def build():
        m = nn.MultiheadAttention(E, 2, dropout=p, batch_first=bf)
        return m, tl.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
    stats = twins(build, lambda m, o: _train(m, o, lambda m, x, kpm, am: m(
        x, x, x, key_padding_mask=kpm, attn_mask=am, need_weights=need_weights, average_attn_weights=avg)), data)
    _replays(stats, 11)


def test_mha_kdim_vdim_bias_kv_zero_attn_unbatched_and_all_masked_rows():
    rng = np.random.default_rng(2)
    data = [(_t(_f32(rng, 4, 2, E)), _t(_f32(rng, 6, 2, 5)), _t(_f32(rng, 6, 2, 3)), _kpm(rng, 2, 6),
             _t(rng.random((4, 6)) < 0.3), _t(rng.random((2, 6)) < 0.7)) for _ in range(10)]

    def build():
        m = nn.ModuleList([nn.MultiheadAttention(E, 2, dropout=0.2, kdim=5, vdim=3, add_bias_kv=True,
                                                 add_zero_attn=True), nn.MultiheadAttention(E, 2, kdim=5, vdim=3)])
        return m, tl.optim.Adam(m.parameters(), lr=0.01)

    def call(m, q, k, v, kpm, am, dense):
        out, w = m[0](q, k, v, key_padding_mask=kpm, attn_mask=am)
        with tl.no_grad():  # a row all masked is NaN (weights too), as eager; not trained on
            nan_rows = [t.detach() for t in m[1](q, k, v, key_padding_mask=dense)]
        return out, w, m[0](q[:, 0], k[:, 0], v[:, 0], key_padding_mask=kpm[0])[0], *nan_rows
    _replays(twins(build, lambda m, o: _train(m, o, call), data), 9)


def test_mha_train_eval_switch_and_dropout_changed_between_calls():
    rng = np.random.default_rng(3)
    data = [(_t(_f32(rng, 2, 4, E)),) for _ in range(12)]

    def build():
        m = nn.MultiheadAttention(E, 2, dropout=0.3, batch_first=True)
        return m, tl.optim.SGD(m.parameters(), lr=0.05)

    def between(objs, i):
        objs[0].train(i % 3 != 1)
        objs[0].dropout = [0.3, 0.0, 0.5, 0.3][i % 4]
    twins(build, lambda m, o: _train(m, o, lambda m, x: m(x, x, x)), data, between=between, max_variants=16)


def test_mismatched_mask_dtypes_warn_on_every_replay_as_eager():
    """Bug (fixed): canonical_mask's 'Support for mismatched key_padding_mask and attn_mask is deprecated' was a
    Python warning given while recording only; a replay, which does not re-run Python, never gave it again, where
    each eager call does. Now a host check (nn/attention.py canonical_mask), re-run by every replay."""
    rng = np.random.default_rng(4)
    data = [(_t(_f32(rng, 4, 2, E)), _kpm(rng, 2, 4, "float"), _t(rng.random((4, 4)) < 0.3)) for _ in range(8)]

    def build():
        m = nn.MultiheadAttention(E, 2)
        return m, tl.optim.SGD(m.parameters(), lr=0.1)
    stats = twins(build, lambda m, o: _train(m, o, lambda m, q, kpm, am: m(q, q, q, key_padding_mask=kpm,
                                                                           attn_mask=am)), data)
    _replays(stats, 7)


# ---------------- scaled_dot_product_attention ----------------
@pytest.mark.parametrize("kind", ["none", "bool", "float", "causal"])
@pytest.mark.parametrize("p,scale,gqa", [(0.0, None, False), (0.3, 0.37, True)])
def test_sdpa_with_lengths_and_masks_changing(kind, p, scale, gqa):
    rng = np.random.default_rng(5)
    data = []
    for i in range(10):
        L, S_ = (3, 5) if i % 2 else (4, 4)
        q, k, v = (_t(rng.standard_normal(s)).requires_grad_() for s in
                   [(2, 4, L, 6), (2, 2 if gqa else 4, S_, 6), (2, 2 if gqa else 4, S_, 6)])
        mask = {"bool": lambda: _t(rng.random((L, S_)) < 0.6),
                "float": lambda: _t(np.where(rng.random((2, 1, L, S_)) < 0.4, -np.inf, rng.random((2, 1, L, S_))))
                }.get(kind, lambda: None)()
        data.append((q, k, v, mask))

    def fn(q, k, v, mask):
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p, is_causal=kind == "causal",
                                             scale=scale, enable_gqa=gqa)
        return out, tl.autograd.grad((out * out).sum(), [q, k, v])
    _replays(twins(lambda: (None, None), lambda *_: fn, data), 8)


def test_sdpa_dynamic_scale_and_dropout_arguments():
    rng = np.random.default_rng(6)
    data = [(_t(rng.standard_normal((2, 3, 4))), [0.0, 0.2, 0.5][i % 3], [None, 0.5, 2.0][i % 3], bool(i % 2))
            for i in range(12)]

    def fn(q, p, scale, causal):
        return F.scaled_dot_product_attention(q, q, q, dropout_p=p, scale=scale, is_causal=causal)
    twins(lambda: (None, None), lambda *_: fn, data, dynamic=True)


# ---------------- Transformer layers ----------------
def _causal(L):
    return nn.Transformer.generate_square_subsequent_mask(L)


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu", "callable"])
def test_encoder_with_causal_and_other_masks_alternating(norm_first, activation):
    """The causal-mask detection (a data decision) must be a guard: causal, another float mask, the causal mask
    again as a new tensor, with and without a bool key padding mask (mismatched dtypes: warns)."""
    rng = np.random.default_rng(7)
    act = (lambda x: F.silu(x)) if activation == "callable" else activation
    L, data = 5, []
    for i in range(12):
        mask = [_causal(L), _t(np.where(np.triu(rng.random((L, L)) < 0.5, 1), -np.inf, 0).astype(np.float32)),
                _t(np.triu(np.full((L, L), -np.inf, np.float32), 1))][i % 3]
        data.append((_t(_f32(rng, 3, L, E)), mask, _kpm(rng, 3, L) if i % 2 else None))

    def build():
        layer = nn.TransformerEncoderLayer(E, 2, 16, dropout=0.2, activation=act, batch_first=True,
                                           norm_first=norm_first)
        m = nn.TransformerEncoder(layer, 2, norm=nn.LayerNorm(E))
        return m, tl.optim.Adam(m.parameters(), lr=0.01)
    stats = twins(build, lambda m, o: _train(m, o, lambda m, x, mask, kpm: (
        m(x, mask=mask, src_key_padding_mask=kpm),)), data)
    _replays(stats, 8)


@pytest.mark.parametrize("norm_first,batch_first", [(False, False), (True, True)])
def test_transformer_lengths_masks_and_train_eval_changing(norm_first, batch_first):
    rng = np.random.default_rng(8)
    data = []
    for i in range(12):
        S_, L = (4, 3) if i % 4 < 2 else (5, 4)
        src, tgt = (_t(_f32(rng, 2, n, E) if batch_first else _f32(rng, n, 2, E)) for n in (S_, L))
        skpm = _kpm(rng, 2, S_)
        data.append((src, tgt, _causal(L), skpm, _kpm(rng, 2, L), skpm, _t(rng.random((L, S_)) < 0.2)))

    def build():
        m = nn.Transformer(E, 2, 1, 2, 16, dropout=0.15, norm_first=norm_first, batch_first=batch_first,
                           activation="gelu")
        return m, tl.optim.Adam(m.parameters(), lr=0.01)

    def call(m, src, tgt, tm, skpm, tkpm, mkpm, mm):
        return (m(src, tgt, tgt_mask=tm, src_key_padding_mask=skpm, tgt_key_padding_mask=tkpm,
                  memory_key_padding_mask=mkpm, memory_mask=mm),)
    twins(build, lambda m, o: _train(m, o, call), data, between=lambda objs, i: objs[0].train(i % 5 != 4))


def test_decoder_tgt_mask_bool_and_float_causal_lengths_changing():
    rng = np.random.default_rng(9)
    data = []
    for i in range(12):
        L = 3 + i % 3
        cm = _t(np.triu(np.ones((L, L), bool), 1)) if i % 2 else _causal(L)
        data.append((_t(_f32(rng, L, 2, E)), _t(_f32(rng, 6, 2, E)), cm))

    def build():
        m = nn.TransformerDecoder(nn.TransformerDecoderLayer(E, 2, 16, dropout=0.1, activation=nn.GELU()), 2)
        return m, tl.optim.SGD(m.parameters(), lr=0.05, momentum=0.9)
    twins(build, lambda m, o: _train(m, o, lambda m, t, mem, cm: (m(t, mem, tgt_mask=cm),)), data)


def test_encoder_guard_failure_does_not_warn_twice():
    """Bug (fixed with the warning above): TransformerEncoder warned of mismatched mask dtypes before its causal-mask
    decision; a replay whose decision came out differently had warned already when it stopped, and the eager call
    that followed warned again (two warnings where eager gives one). The decision now comes first."""
    rng = np.random.default_rng(10)
    L = 4
    data = [(_t(_f32(rng, L, 2, E)), _causal(L) if i % 2 else _t(np.zeros((L, L), np.float32)), _kpm(rng, 2, L))
            for i in range(8)]

    def build():
        m = nn.TransformerEncoder(nn.TransformerEncoderLayer(E, 2, 16, dropout=0.0), 1)
        return m, tl.optim.SGD(m.parameters(), lr=0.05)
    twins(build, lambda m, o: _train(m, o, lambda m, x, mask, kpm: (m(x, mask=mask, src_key_padding_mask=kpm),)),
          data)


@pytest.mark.parametrize("layer_cls", ["encoder", "decoder"])
def test_activation_changed_between_calls_is_a_guard(layer_cls):
    """Bug (fixed): `layer.activation = F.gelu` after the recording: a replay still computed relu. The compiler
    guards a library layer's plain settings only (its code is not scanned), and activation is a function. A setter
    now counts changes in a plain int (nn/transformer.py _GuardsActivation)."""
    rng = np.random.default_rng(11)
    mem = _t(_f32(rng, 3, 2, E))
    data = [(_t(_f32(rng, 4, 2, E)),) for _ in range(9)]
    acts = [F.relu, F.gelu, lambda x: x.tanh()]

    def build():
        cls = nn.TransformerEncoderLayer if layer_cls == "encoder" else nn.TransformerDecoderLayer
        m = cls(E, 2, 16, dropout=0.0)
        return m, tl.optim.SGD(m.parameters(), lr=0.05)
    call = (lambda m, x: (m(x),)) if layer_cls == "encoder" else (lambda m, x: (m(x, mem),))
    twins(build, lambda m, o: _train(m, o, call), data,
          between=lambda objs, i: setattr(objs[0], "activation", acts[(i + 1) // 3 % 3]))


def test_a_layer_appended_to_the_encoder_after_recording_is_seen():
    tl.manual_seed(0)
    enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(E, 2, 16, dropout=0.0), 1)
    extra = nn.TransformerEncoderLayer(E, 2, 16, dropout=0.0)
    x = tl.randn(3, 2, E)
    f = tl.compile(lambda x: enc(x).detach())
    for i in range(4):
        if i == 2:
            enc.layers.append(extra)
        assert np.array_equal(f(x).numpy(), enc(x).detach().numpy()), (i, f.stats)
