"""The attention layers without PyTorch: finite-difference gradchecks in float64 (parameters included, dropout on
and off), tl.compile replays of a TransformerEncoder training step bit-identical to eager (fresh dropout masks,
a new batch and padding mask each call), and errors that name the operation and the shapes."""
import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite import nn
from tinygrad_lite.nn import functional as F

from test_compile import _train


def _t(*shape, seed=0, grad=True):
    return tl.tensor(np.random.default_rng(seed).standard_normal(shape), requires_grad=grad)


# ---------------- gradcheck (float64 finite differences) ----------------
class _Attend(nn.Module):
    """MultiheadAttention over fixed masks, returning both outputs (the weights summed in)."""

    def __init__(self, need_weights=True, **kw):
        super().__init__()
        self.attn, self.need_weights = nn.MultiheadAttention(4, 2, **kw), need_weights
        kpm = np.zeros((2, 3), bool)
        kpm[1, 2] = True
        self.kpm, self.mask = tl.tensor(kpm), tl.tensor(np.random.default_rng(5).standard_normal((3, 3)))

    def forward(self, q, kv):
        out, w = self.attn(q, kv, kv, key_padding_mask=self.kpm, attn_mask=self.mask, need_weights=self.need_weights)
        return out if w is None else out.sum() + (w * w).sum()


@pytest.mark.parametrize("kw", [dict(), dict(need_weights=False, add_bias_kv=True, add_zero_attn=True),
                                dict(dropout=0.3)], ids=["weights", "bias_kv_zero_attn", "dropout"])
def test_gradcheck_multihead_attention(kw):
    assert tl.gradcheck(_Attend(**kw), (_t(3, 2, 4, seed=1), _t(3, 2, 4, seed=2)))


def test_gradcheck_sdpa_with_float_mask_and_causal():
    f = F.scaled_dot_product_attention
    q, k, v, m = _t(2, 3, 4, seed=1), _t(2, 5, 4, seed=2), _t(2, 5, 3, seed=3), _t(3, 5, seed=4)
    assert tl.gradcheck(lambda q, k, v, m: f(q, k, v, attn_mask=m, scale=0.7), (q, k, v, m))
    assert tl.gradcheck(lambda q, k, v: f(q, k, v, is_causal=True), (q, k, v))


class _Masked(nn.Module):
    def __init__(self, layer):
        super().__init__()
        self.layer, self.mask = layer, nn.Transformer.generate_square_subsequent_mask(3)

    def forward(self, x):
        return self.layer(x, src_mask=self.mask)


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train_dropout"])
def test_gradcheck_encoder_layer(train):
    layer = nn.TransformerEncoderLayer(4, 2, 6, dropout=0.2, activation="gelu", norm_first=train)
    assert tl.gradcheck(_Masked(layer.train(train)), (_t(3, 2, 4, seed=3),))


# ---------------- tl.compile: replays bit-identical to eager ----------------
class _TinyLM(nn.Module):
    def __init__(self, dropout):
        super().__init__()
        self.emb = nn.Embedding(7, 8)
        layer = nn.TransformerEncoderLayer(8, 2, 16, dropout, batch_first=True)
        self.enc = nn.TransformerEncoder(layer, 2, nn.LayerNorm(8), enable_nested_tensor=False)
        self.head = nn.Linear(8, 7)

    def forward(self, x):
        ids, pad = x
        mask = nn.Transformer.generate_square_subsequent_mask(ids.shape[1])
        return self.head(self.enc(self.emb(ids), mask=mask, src_key_padding_mask=pad)).reshape(-1, 7)


def _batch(rng):
    pad = np.zeros((3, 5), bool)
    pad[rng.integers(0, 3), 3 + rng.integers(0, 2):] = True  # a new padding pattern each call
    return (tl.tensor(rng.integers(0, 7, (3, 5))), tl.tensor(pad)), tl.tensor(rng.integers(0, 7, 15))


@pytest.mark.parametrize("train", [True, False], ids=["train_dropout", "eval"])
def test_compiled_encoder_training_step_is_bit_identical_to_eager(train):
    def make():
        return _TinyLM(0.25).train(train)

    def opt(m):
        return tl.optim.Adam(m.parameters(), lr=0.01)
    eager = _train(make, opt, _batch, False, steps=15)
    comp = _train(make, opt, _batch, True, steps=15)
    assert eager[0] == comp[0] and np.isfinite(eager[0]).all()
    for what, a, b in zip(("parameters", "grads", "buffers", "optimizer state"), eager[1:5], comp[1:5]):
        assert all(np.array_equal(x, y) for x, y in zip(a, b)), what
    assert eager[5] == comp[5], "the random generator's state differs"
    assert comp[6].stats["replays"] >= 12 and comp[6].stats["eager_calls"] == 0, comp[6].stats
    if train:  # dropout draws: the same batch twice gives different losses
        tl.manual_seed(0)
        m = make()
        x, y = _batch(np.random.default_rng(0))
        f = tl.compile(lambda: F.cross_entropy(m(x), y).item())
        assert len({f() for _ in range(4)}) == 4


# ---------------- errors name the operation and the shapes ----------------
def test_constructor_errors():
    with pytest.raises(RuntimeError, match=r"MultiheadAttention: embed_dim must be divisible by num_heads.*"
                                           r"embed_dim=10, num_heads=3") as e:
        nn.MultiheadAttention(10, 3)
    assert isinstance(e.value, AssertionError)  # what PyTorch raises
    with pytest.raises(ValueError, match="embed_dim and num_heads must be greater than 0"):
        nn.MultiheadAttention(0, 2)
    with pytest.raises(RuntimeError, match="activation should be relu/gelu, not tanh"):
        nn.TransformerEncoderLayer(4, 2, activation="tanh")


def _mha_call(**kw):
    m, x = nn.MultiheadAttention(4, 2), tl.randn(3, 2, 4)
    return m(x, kw.pop("key", x), kw.pop("value", x), **kw)


@pytest.mark.parametrize("kw, pattern", [
    (dict(attn_mask=tl.zeros(3, 4)), r"multi_head_attention_forward: The shape of the 2D attn_mask is \(3, 4\), "
                                     r"but should be \(3, 3\)"),
    (dict(attn_mask=tl.zeros(2, 3, 3)), r"3D attn_mask is \(2, 3, 3\), but should be \(4, 3, 3\)"),
    (dict(key_padding_mask=tl.zeros(3, 3, dtype=tl.bool)), r"Expected key_padding_mask of shape \(2, 3\).*"
                                                           r"got \(3, 3\)"),
    (dict(key_padding_mask=tl.zeros(2, dtype=tl.bool)), r"expected `key_padding_mask` to be `None` or 2-D"),
    (dict(key=tl.randn(3, 2, 5)), r"MultiheadAttention: expected key with last dim kdim=4, got shape \(3, 2, 5\)"),
    (dict(value=tl.randn(4, 2, 4)), r"key shape \(3, 2, 4\) does not match value shape \(4, 2, 4\)"),
    (dict(attn_mask=tl.zeros(3, 3, dtype=tl.int64)), r"only bool and floating types of attn_mask are supported"),
])
def test_multihead_attention_errors(kw, pattern):
    with pytest.raises((RuntimeError, TypeError), match=pattern) as e:
        _mha_call(**kw)
    assert isinstance(e.value, AssertionError) or "attn_mask is" in str(e.value)


def test_causal_hint_without_mask_is_refused_as_pytorch():
    with pytest.raises(RuntimeError, match="Need attn_mask if specifying the is_causal hint"):
        _mha_call(is_causal=True)


@pytest.mark.parametrize("args, kw, err, pattern", [
    (((2, 4, 5), (2, 6, 5), (2, 6, 5)), dict(attn_mask=tl.ones(4, 5, dtype=tl.bool)), RuntimeError,
     r"scaled_dot_product_attention: attn_mask of shape \(4, 5\) does not broadcast to the attention scores' "
     r"shape \(2, 4, 6\)"),
    (((2, 4, 5), (2, 6, 5), (2, 6, 5)), dict(attn_mask=tl.ones(4, 6, dtype=tl.bool), is_causal=True), RuntimeError,
     "Explicit attn_mask should not be set when is_causal=True"),
    (((2, 4, 5), (2, 6, 4), (2, 6, 5)), {}, RuntimeError, r"query and key must have the same last dim.*"
                                                            r"query \(2, 4, 5\).*key \(2, 6, 4\)"),
    (((2, 4, 5), (2, 6, 5), (2, 7, 5)), {}, RuntimeError, r"key and value must have the same sequence length"),
    (((5,), (6, 5), (6, 5)), {}, RuntimeError, r"at least 2 dimensional"),
    (((2, 4, 5), (2, 6, 5), (2, 6, 5)), dict(attn_mask=tl.ones(4, 6, dtype=tl.int64)), TypeError,
     r"Expected attn_mask dtype to be bool or float"),
    (((1, 3, 4, 5), (1, 2, 6, 5), (1, 2, 6, 5)), dict(enable_gqa=True), RuntimeError,
     r"enable_gqa=True the number of heads"),
    (((2, 4, 5), (2, 6, 5), (2, 6, 5)), dict(dropout_p=1.5), ValueError, "dropout probability has to be between"),
])
def test_sdpa_errors(args, kw, err, pattern):
    q, k, v = (tl.randn(*s) for s in args)
    with pytest.raises(err, match=pattern):
        F.scaled_dot_product_attention(q, k, v, **kw)


def test_layer_input_errors_name_the_layer_and_shapes():
    with pytest.raises(RuntimeError, match=r"TransformerEncoderLayer: expected .*d_model=8.*got shape \(5, 3, 6\)"):
        nn.TransformerEncoderLayer(8, 2, 16)(tl.randn(5, 3, 6))
    with pytest.raises(RuntimeError, match=r"Transformer: the batch number of src and tgt must be equal"):
        nn.Transformer(8, 2, 1, 1, 16)(tl.randn(5, 3, 8), tl.randn(4, 2, 8))
