"""PyTorch oracle for the attention functions and layers (F.scaled_dot_product_attention, nn.MultiheadAttention,
nn.TransformerEncoderLayer/Encoder/DecoderLayer/Decoder, nn.Transformer): in float64, outputs, the gradients of
every floating input (masks included) and of every parameter match PyTorch's to 1e-10 relative, with PyTorch's
state_dict loaded unchanged; reprs, state_dict layouts and initialisation distributions match too."""
import math
import warnings

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite import nn

pytestmark = pytest.mark.oracle
RTOL, ATOL = 1e-10, 1e-12


def _x(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def _flat(out):
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _flat(o)]
    return [] if out is None else [out]


def compare(torch, tm, lm, args, kwargs=None):
    """Run torch's `tm` and our `lm` (modules: torch's state copied into ours, both float64) on the same arguments;
    a NumPy array becomes one tensor per framework (float ones require grad), the same array object the same
    tensor (so self-attention shares q, k and v). Backprop a fixed random projection of every output and compare
    outputs, input gradients and parameter gradients. Returns the two output lists."""
    kwargs = kwargs or {}
    if isinstance(tm, torch.nn.Module):
        tm.double()
        lm.double()
        lm.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    made = {}

    def conv(a, lib):
        if not isinstance(a, np.ndarray):
            return a
        key = (id(a), lib)
        if key not in made:
            grad = a.dtype.kind == "f"
            made[key] = (torch.tensor(a, requires_grad=grad) if lib == "t" else tl.tensor(a, requires_grad=grad), a)
        return made[key][0]
    t_out = _flat(tm(*[conv(a, "t") for a in args], **{k: conv(v, "t") for k, v in kwargs.items()}))
    l_out = _flat(lm(*[conv(a, "l") for a in args], **{k: conv(v, "l") for k, v in kwargs.items()}))
    assert len(t_out) == len(l_out)
    rng = np.random.default_rng(1)
    proj = [rng.standard_normal(tuple(o.shape)) for o in t_out]
    sum((o * torch.tensor(p)).sum() for o, p in zip(t_out, proj)).backward()
    sum((o * tl.tensor(p)).sum() for o, p in zip(l_out, proj)).backward()
    for i, (a, b) in enumerate(zip(t_out, l_out)):
        assert tuple(a.shape) == tuple(b.shape), f"output {i}"
        np.testing.assert_allclose(b.numpy(), a.detach().numpy(), rtol=RTOL, atol=ATOL, err_msg=f"output {i}")
    for (key, (t, _)), (_, (l, _)) in zip(sorted((k, v) for k, v in made.items() if k[1] == "t"),
                                          sorted((k, v) for k, v in made.items() if k[1] == "l")):
        if t.requires_grad:
            assert (t.grad is None) == (l.grad is None)
            if t.grad is not None:
                np.testing.assert_allclose(l.grad.numpy(), t.grad.numpy(), rtol=RTOL, atol=ATOL, err_msg="input grad")
    if isinstance(tm, torch.nn.Module):
        ours = dict(lm.named_parameters())
        for name, p in tm.named_parameters():
            assert (p.grad is None) == (ours[name].grad is None), name
            if p.grad is not None:
                np.testing.assert_allclose(ours[name].grad.numpy(), p.grad.numpy(), rtol=RTOL, atol=ATOL,
                                           err_msg=f"grad of {name}")
    return t_out, l_out


# ---------------- scaled_dot_product_attention ----------------
_MASK_B = np.random.default_rng(3).random((4, 6)) > 0.4
_MASK_B[2] = False  # a query row that attends to nothing: zeros, as PyTorch
SDPA = {
    "plain": ((2, 3, 4, 5), (2, 3, 6, 5), (2, 3, 6, 7), {}),
    "causal_rectangular": ((2, 3, 4, 5), (2, 3, 6, 5), (2, 3, 6, 5), dict(is_causal=True)),
    "bool_mask_empty_row": ((2, 3, 4, 5), (2, 3, 6, 5), (2, 3, 6, 5), dict(attn_mask=_MASK_B)),
    "float_mask_per_head": ((2, 3, 4, 5), (2, 3, 6, 5), (2, 3, 6, 5), dict(attn_mask=_x(3, 1, 6, seed=4))),
    "scale": ((2, 4, 5), (2, 6, 5), (2, 6, 5), dict(scale=0.37)),
    "unbatched": ((4, 5), (6, 5), (6, 3), dict(attn_mask=_x(4, 6, seed=5))),
    "broadcast_batch": ((3, 4, 5), (2, 1, 6, 5), (2, 1, 6, 5), {}),
    "gqa": ((2, 4, 3, 5), (2, 2, 6, 5), (2, 2, 6, 5), dict(enable_gqa=True, is_causal=True)),
}


@pytest.mark.parametrize("case", list(SDPA))
def test_sdpa_matches_pytorch(torch, case):
    qs, ks, vs, kw = SDPA[case]
    args = [_x(*qs, seed=1), _x(*ks, seed=2), _x(*vs, seed=3)]
    compare(torch, torch.nn.functional.scaled_dot_product_attention, tl.nn.functional.scaled_dot_product_attention,
            args, kw)


def test_sdpa_dropout_draws_from_the_package_generator():
    q, k, v = (tl.tensor(_x(2, 4, 5, seed=s)) for s in (1, 2, 3))
    tl.manual_seed(3)
    a = tl.nn.functional.scaled_dot_product_attention(q, k, v, dropout_p=0.5)
    tl.manual_seed(3)
    b = tl.nn.functional.scaled_dot_product_attention(q, k, v, dropout_p=0.5)
    c = tl.nn.functional.scaled_dot_product_attention(q, k, v, dropout_p=0.5)
    assert np.array_equal(a.numpy(), b.numpy()) and not np.array_equal(b.numpy(), c.numpy())


# ---------------- MultiheadAttention ----------------
def _mha_case(kind):
    """(constructor kwargs, forward args, forward kwargs) for one configuration; E=8, 2 heads, L=5, S=6, N=3."""
    x, kv = _x(5, 3, 8, seed=1), _x(6, 3, 8, seed=2)
    kpm = np.zeros((3, 6), bool)
    kpm[1, 4:] = True
    causal = np.triu(np.full((5, 5), -np.inf), 1)
    return {
        "self": ({}, [x, x, x], {}),
        "self_batch_first": (dict(batch_first=True), [x, x, x], dict(average_attn_weights=False)),
        "cross_kv_shared": ({}, [x, kv, kv], dict(key_padding_mask=kpm)),
        "separate_kdim_vdim": (dict(kdim=3, vdim=7), [x, _x(6, 3, 3, seed=3), _x(6, 3, 7, seed=4)],
                               dict(key_padding_mask=kpm)),
        "no_bias": (dict(bias=False), [x, kv, _x(6, 3, 8, seed=5)], {}),
        "bias_kv_zero_attn": (dict(add_bias_kv=True, add_zero_attn=True), [x, kv, kv],
                              dict(key_padding_mask=kpm, attn_mask=_x(5, 6, seed=6))),
        "bool_mask_3d": ({}, [x, kv, kv], dict(attn_mask=np.random.default_rng(7).random((6, 5, 6)) > 0.8)),
        "float_kpm_no_weights": ({}, [x, kv, kv], dict(key_padding_mask=_x(3, 6, seed=8), need_weights=False)),
        "causal_hint": ({}, [x, x, x], dict(attn_mask=causal, is_causal=True, need_weights=False)),
        "causal_hint_with_kpm": ({}, [x, x, x], dict(attn_mask=causal, is_causal=True, need_weights=False,
                                                     key_padding_mask=kpm[:, :5])),
        "unbatched": ({}, [x[:, 0], kv[:, 0], kv[:, 0]], dict(key_padding_mask=kpm[1], attn_mask=_x(2, 5, 6))),
        "unbatched_no_weights": (dict(add_zero_attn=True), [x[:, 0], x[:, 0], x[:, 0]],
                                 dict(need_weights=False, attn_mask=causal)),
    }[kind]


MHA_CASES = ["self", "self_batch_first", "cross_kv_shared", "separate_kdim_vdim", "no_bias", "bias_kv_zero_attn",
             "bool_mask_3d", "float_kpm_no_weights", "causal_hint", "causal_hint_with_kpm", "unbatched",
             "unbatched_no_weights"]


@pytest.mark.parametrize("kind", MHA_CASES)
def test_multihead_attention_matches_pytorch(torch, kind):
    ctor, args, kw = _mha_case(kind)
    if ctor.get("batch_first"):
        args = [a.transpose(1, 0, 2).copy() for a in args[:1]] * 3
    torch.manual_seed(0)
    tm = torch.nn.MultiheadAttention(8, 2, **ctor)
    lm = nn.MultiheadAttention(8, 2, **ctor)
    assert repr(lm) == repr(tm)
    assert [(k, tuple(v.shape)) for k, v in lm.state_dict().items()] == \
        [(k, tuple(v.shape)) for k, v in tm.state_dict().items()]
    compare(torch, tm, lm, args, kw)


def test_multihead_attention_fully_masked_row_is_nan_with_weights_as_pytorch(torch):
    tm, lm = torch.nn.MultiheadAttention(4, 2).double(), nn.MultiheadAttention(4, 2).double()
    lm.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    x, kpm = _x(3, 2, 4), np.array([[False] * 3, [True] * 3])
    for need in (True, False):  # weights: a plain softmax (NaN); without: PyTorch's safe softmax (zeros)
        t = tm(torch.tensor(x), torch.tensor(x), torch.tensor(x), key_padding_mask=torch.tensor(kpm),
               need_weights=need)
        lo = lm(tl.tensor(x), tl.tensor(x), tl.tensor(x), key_padding_mask=tl.tensor(kpm), need_weights=need)
        for a, b in zip(_flat(t), _flat(lo)):
            np.testing.assert_allclose(b.numpy(), a.detach().numpy(), rtol=RTOL, atol=ATOL, equal_nan=True)
        assert np.isnan(lo[0].numpy()[:, 1]).all() == need


def test_mismatched_mask_types_warn_as_pytorch():
    m, x = nn.MultiheadAttention(4, 2), tl.randn(3, 2, 4)
    with pytest.warns(UserWarning, match="Support for mismatched key_padding_mask and attn_mask is deprecated"):
        m(x, x, x, key_padding_mask=tl.zeros(2, 3, dtype=tl.bool), attn_mask=tl.zeros(3, 3))


# ---------------- the Transformer layers ----------------
def _layer_case(torch, lib, kind):
    gelu = lib.nn.GELU() if kind == "gelu_module" else "gelu"
    return {
        "post_norm": lambda: lib.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.3),
        "pre_norm_gelu": lambda: lib.nn.TransformerEncoderLayer(8, 2, 16, 0.0, gelu, norm_first=True),
        "gelu_module": lambda: lib.nn.TransformerEncoderLayer(8, 2, 16, 0.0, gelu, batch_first=True),
        "functional_gelu_no_bias": lambda: lib.nn.TransformerEncoderLayer(8, 4, 16, 0.0, lib.nn.functional.gelu,
                                                                           1e-6, bias=False),
    }[kind]()


ENCODER_CALLS = {
    "post_norm": dict(src_key_padding_mask="kpm"),
    "pre_norm_gelu": dict(src_mask="bool_mask"),
    "gelu_module": dict(src_mask="causal", is_causal=True),
    "functional_gelu_no_bias": dict(src_mask="float_mask", src_key_padding_mask="kpm"),
}


def _masks():
    kpm = np.zeros((3, 5), bool)
    kpm[2, 3:] = True
    return dict(kpm=kpm, bool_mask=np.random.default_rng(9).random((5, 5)) > 0.7, float_mask=_x(5, 5, seed=9),
                causal=np.triu(np.full((5, 5), -np.inf), 1))


@pytest.mark.parametrize("kind", list(ENCODER_CALLS))
def test_encoder_layer_matches_pytorch(torch, kind):
    torch.manual_seed(0)
    tm, lm = _layer_case(torch, torch, kind), _layer_case(torch, tl, kind)
    assert repr(lm) == repr(tm) and lm.activation_relu_or_gelu == tm.activation_relu_or_gelu
    tm.eval(), lm.eval()  # dropout off, so the two frameworks compute the same numbers
    masks = _masks()
    x = _x(3, 5, 8) if kind == "gelu_module" else _x(5, 3, 8)
    compare(torch, tm, lm, [x], {k: masks.get(v, v) for k, v in ENCODER_CALLS[kind].items()})


def test_encoder_layer_unbatched(torch):
    torch.manual_seed(0)
    compare(torch, torch.nn.TransformerEncoderLayer(8, 2, 16, 0.0), nn.TransformerEncoderLayer(8, 2, 16, 0.0),
            [_x(5, 8)], dict(src_key_padding_mask=np.array([False] * 4 + [True])))


@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_stack_with_a_detected_causal_mask_and_padding(torch, norm_first):
    torch.manual_seed(0)
    t_layer = torch.nn.TransformerEncoderLayer(8, 2, 16, 0.1, norm_first=norm_first)
    tm = torch.nn.TransformerEncoder(t_layer, 2, torch.nn.LayerNorm(8), enable_nested_tensor=False).eval()
    lm = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16, 0.1, norm_first=norm_first), 2, nn.LayerNorm(8),
                               enable_nested_tensor=False).eval()
    assert repr(lm) == repr(tm) and lm.layers[0] is not lm.layers[1]
    masks = _masks()
    causal = np.array(torch.nn.Transformer.generate_square_subsequent_mask(5).numpy())
    compare(torch, tm, lm, [_x(5, 3, 8)], dict(mask=causal, src_key_padding_mask=masks["kpm"]))


def test_decoder_layer_and_stack_match_pytorch(torch):
    torch.manual_seed(0)
    masks = _masks()
    tgt, mem = _x(5, 3, 8, seed=1), _x(4, 3, 8, seed=2)
    mem_kpm = np.zeros((3, 4), bool)
    mem_kpm[0, 2:] = True
    for norm_first in (False, True):
        tm = torch.nn.TransformerDecoderLayer(8, 2, 16, 0.2, "gelu", norm_first=norm_first).eval()
        lm = nn.TransformerDecoderLayer(8, 2, 16, 0.2, "gelu", norm_first=norm_first).eval()
        assert repr(lm) == repr(tm)
        compare(torch, tm, lm, [tgt, mem], dict(tgt_mask=masks["causal"], tgt_key_padding_mask=masks["kpm"],
                                                memory_key_padding_mask=mem_kpm, tgt_is_causal=True))
    tm = torch.nn.TransformerDecoder(torch.nn.TransformerDecoderLayer(8, 2, 16, 0.0), 2, torch.nn.LayerNorm(8))
    lm = nn.TransformerDecoder(nn.TransformerDecoderLayer(8, 2, 16, 0.0), 2, nn.LayerNorm(8))
    compare(torch, tm, lm, [tgt, mem], dict(tgt_mask=masks["bool_mask"], memory_mask=_x(5, 4, seed=3)))


@pytest.mark.parametrize("batch_first", [False, True])
def test_transformer_matches_pytorch(torch, batch_first):
    torch.manual_seed(0)
    tm = torch.nn.Transformer(8, 2, 2, 1, 16, 0.0, batch_first=batch_first)
    lm = nn.Transformer(8, 2, 2, 1, 16, 0.0, batch_first=batch_first)
    assert repr(lm) == repr(tm)
    src, tgt = _x(3, 6, 8, seed=1), _x(3, 5, 8, seed=2)
    if not batch_first:
        src, tgt = src.transpose(1, 0, 2).copy(), tgt.transpose(1, 0, 2).copy()
    mask = np.array(nn.Transformer.generate_square_subsequent_mask(5, dtype=tl.float64).numpy())
    np.testing.assert_array_equal(mask, torch.nn.Transformer.generate_square_subsequent_mask(5).numpy())
    compare(torch, tm, lm, [src, tgt], dict(tgt_mask=mask, src_key_padding_mask=np.eye(3, 6, 4, dtype=bool)))


# ---------------- initialisation: shapes as PyTorch's, distributions with PyTorch's bounds ----------------
def _bound_ok(p, bound, fill=0.98):
    a = np.abs(p.numpy())
    return a.max() <= bound and a.max() >= fill * bound


def test_initialisation_distributions_match_pytorch(torch):
    E = 64
    lm = nn.MultiheadAttention(E, 4, add_bias_kv=True)
    assert _bound_ok(lm.in_proj_weight, math.sqrt(6.0 / (E + 3 * E)))  # xavier_uniform_ on (3E, E)
    assert _bound_ok(lm.out_proj.weight, 1 / math.sqrt(E))  # Linear's own init survives, as PyTorch
    assert not lm.in_proj_bias.numpy().any() and not lm.out_proj.bias.numpy().any()
    for b in (lm.bias_k, lm.bias_v):  # xavier_normal_ on (1, 1, E): std sqrt(2 / (E + E))
        assert tuple(b.shape) == (1, 1, E) and 0.6 < b.numpy().std() / math.sqrt(1.0 / E) < 1.4
    sep = nn.MultiheadAttention(E, 4, kdim=32, vdim=16)
    for name, fan_in in (("q_proj_weight", E), ("k_proj_weight", 32), ("v_proj_weight", 16)):
        assert _bound_ok(getattr(sep, name), math.sqrt(6.0 / (E + fan_in)), fill=0.95)
    lt, tt = nn.Transformer(16, 2, 1, 1, 32, 0.0), torch.nn.Transformer(16, 2, 1, 1, 32, 0.0)
    ours = dict(lt.named_parameters())
    for name, p in tt.named_parameters():
        q = ours[name]
        assert tuple(q.shape) == tuple(p.shape) and q.dtype == tl.float32, name
        if p.dim() > 1:  # Transformer re-initialises every matrix with xavier_uniform_
            fan_out, fan_in = p.shape
            assert _bound_ok(q, math.sqrt(6.0 / (fan_in + fan_out)), fill=0.9), name
            assert np.abs(p.detach().numpy()).max() <= math.sqrt(6.0 / (fan_in + fan_out))
        else:
            np.testing.assert_array_equal(q.numpy() == 0, p.detach().numpy() == 0, err_msg=name)


def test_state_dict_round_trip_into_pytorch(torch):
    lm = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16), 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's nested-tensor notice
        tm = torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(8, 2, 16), 2)
    tm.load_state_dict({k: torch.tensor(v.numpy()) for k, v in lm.state_dict().items()})
    x = _x(4, 2, 8).astype(np.float32)
    np.testing.assert_allclose(lm.eval()(tl.tensor(x)).numpy(), tm.eval()(torch.tensor(x)).detach().numpy(),
                               rtol=1e-5, atol=1e-5)
