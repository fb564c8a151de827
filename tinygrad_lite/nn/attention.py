"""Attention as PyTorch computes it, composed from differentiable tensor ops: `scaled_dot_product_attention`
(torch.nn.functional's, with PyTorch's math semantics) and `multi_head_attention_forward` (the body of
nn.MultiheadAttention: in-projection, heads folded into the batch, masks merged, out-projection).

Masks follow PyTorch: for `scaled_dot_product_attention` a boolean mask says which positions TAKE PART (True) and a
float mask is added to the scores; for MultiheadAttention and the Transformer layers a boolean mask says which
positions are MASKED OUT (True), and bool masks become additive float masks of 0 and -inf (`canonical_mask`).
A query row whose every key is masked gives NaN through MultiheadAttention's need_weights=True path (a plain
softmax, as PyTorch) and zeros through `scaled_dot_product_attention` (PyTorch's safe softmax)."""
import math
import numbers
import warnings

import numpy as np

from ..compile.hooks import constant, host_check
from ..functional import _shift, where
from ..ops.registry import OpError
from ..shape import cat
from ..tensor import Tensor
from .activation import softmax
from .dropout import _check_p, dropout
from .linear import linear

_const = Tensor._wrap
_NEG_INF = float("-inf")


class AttentionError(OpError, AssertionError):
    """A shape or argument error of the attention functions: a RuntimeError (and ValueError) as the library's other
    shape errors, and an AssertionError, which is what PyTorch raises for the same mistakes."""


class AttentionTypeError(TypeError, AssertionError):
    """A mask of the wrong dtype (PyTorch raises AssertionError for it)."""


def _shape(t):
    return tuple(t.shape)


# ---------------- scaled dot product attention ----------------
def _check_sdpa(query, key, value, attn_mask, enable_gqa):
    for name, t in (("query", query), ("key", key), ("value", value)):
        if not isinstance(t, Tensor):
            raise TypeError(f"scaled_dot_product_attention: expected {name} to be a Tensor, got {type(t).__name__}")
    where_ = (f"(query {_shape(query)} {query.dtype}, key {_shape(key)} {key.dtype}, value {_shape(value)} "
              f"{value.dtype})")
    if min(query.ndim, key.ndim, value.ndim) < 2:
        raise OpError(f"scaled_dot_product_attention: Expected query, key, and value to all be at least 2 dimensional "
                      f"{where_}")
    if not query.dtype == key.dtype == value.dtype or query.dtype.kind != "f":
        raise TypeError(f"scaled_dot_product_attention: Expected query, key, and value to have the same floating "
                        f"dtype {where_}")
    if query.shape[-1] != key.shape[-1]:
        raise OpError(f"scaled_dot_product_attention: query and key must have the same last dim (the embedding "
                      f"size E) {where_}")
    if key.shape[-2] != value.shape[-2]:
        raise OpError(f"scaled_dot_product_attention: key and value must have the same sequence length (dim -2) "
                      f"{where_}")
    if enable_gqa:
        if query.ndim < 3 or key.ndim < 3 or value.ndim < 3 or key.shape[-3] != value.shape[-3] or \
                key.shape[-3] == 0 or query.shape[-3] % key.shape[-3]:
            raise OpError(f"scaled_dot_product_attention: with enable_gqa=True the number of heads (dim -3) in key "
                          f"and value must be equal and divide the number of heads in query {where_}")
    if attn_mask is not None:
        if not isinstance(attn_mask, Tensor):
            raise TypeError(f"scaled_dot_product_attention: attn_mask must be a Tensor or None, got "
                            f"{type(attn_mask).__name__}")
        if attn_mask.dtype != np.bool_ and attn_mask.dtype.kind != "f":
            raise TypeError(f"scaled_dot_product_attention: Expected attn_mask dtype to be bool or float, but got "
                            f"attn_mask.dtype {attn_mask.dtype} (shape {_shape(attn_mask)}) and query.dtype "
                            f"{query.dtype}")


def _gqa_expand(t, groups):
    """Each of t's heads (dim -3) repeated `groups` times in place, as repeat_interleave(groups, dim=-3)."""
    if groups == 1:
        return t
    shape = _shape(t)
    wide = t.unsqueeze(-3).expand(*shape[:-2], groups, *shape[-2:])
    return wide.reshape(*shape[:-3], shape[-3] * groups, *shape[-2:])


def safe_softmax(scores):
    """softmax over the last dim, with rows whose every score is -inf giving zeros (and zero gradient) instead of
    NaN, as PyTorch's attention does."""
    e = (scores - _shift(scores, (scores.ndim - 1,))).exp()
    total = e.sum(-1, keepdim=True)
    return e / where(total == 0, _const(constant(np.ones((), total.dtype))), total)


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                                 enable_gqa=False):
    """softmax(Q K^T * scale + mask) V over the last two dims, any leading (batch, head) dims broadcasting.
    `attn_mask`: bool (True = take part) or float (added to the scores), broadcastable to (..., L, S);
    `is_causal`: query i attends to keys 0..i (top-left aligned when L != S); `scale` defaults to 1/sqrt(E);
    `dropout_p` drops attention weights (always, as PyTorch's function: pass 0.0 in eval mode);
    `enable_gqa`: key/value heads (dim -3) shared by groups of query heads."""
    _check_sdpa(query, key, value, attn_mask, enable_gqa)
    _check_p(dropout_p)
    if is_causal and attn_mask is not None:
        raise OpError(f"_scaled_dot_product_attention: Explicit attn_mask should not be set when is_causal=True "
                      f"(attn_mask shape {_shape(attn_mask)})")
    L, S = query.shape[-2], key.shape[-2]
    if enable_gqa:
        groups = query.shape[-3] // key.shape[-3]
        key, value = _gqa_expand(key, groups), _gqa_expand(value, groups)
    scale_factor = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale
    scores = (query @ key.transpose(-2, -1)) * scale_factor
    if attn_mask is not None:
        try:
            ok = np.broadcast_shapes(_shape(attn_mask), _shape(scores)) == _shape(scores)
        except ValueError:
            ok = False
        if not ok:
            raise OpError(f"scaled_dot_product_attention: attn_mask of shape {_shape(attn_mask)} does not broadcast "
                          f"to the attention scores' shape {_shape(scores)} (query {_shape(query)}, key "
                          f"{_shape(key)}): expected (..., {L}, {S})")
        if attn_mask.dtype == np.bool_:
            bias = _const(constant(np.zeros((), scores.dtype))).expand(*_shape(attn_mask))
            attn_mask = bias.masked_fill(~attn_mask, _NEG_INF)
        scores = scores + attn_mask
    if is_causal:
        keep = constant(np.tril(np.ones((L, S), dtype=bool)))
        scores = scores.masked_fill(_const(constant(~keep)), _NEG_INF)
    weights = safe_softmax(scores)
    if dropout_p > 0.0:
        weights = dropout(weights, dropout_p, training=True)
    return weights @ value


# ---------------- PyTorch's mask conventions for MultiheadAttention and the Transformer layers ----------------
def canonical_mask(mask, mask_name, other_type, other_name, target_type, check_other=True):
    """A bool mask (True = masked out) as an additive float mask of `target_type` (0 and -inf); float masks as they
    are. Warns, as PyTorch, when this mask's dtype differs from the other mask's."""
    if mask is None:
        return None
    if not isinstance(mask, Tensor):
        raise TypeError(f"{mask_name}: expected a Tensor or None, got {type(mask).__name__}")
    if mask.dtype != np.bool_ and mask.dtype.kind != "f":
        raise AttentionTypeError(f"only bool and floating types of {mask_name} are supported (got {mask.dtype}, "
                                 f"shape {_shape(mask)})")
    if check_other and other_type is not None and mask.dtype != other_type:
        # a host check, so that a tl.compile replay warns on every call as eager does (dtypes are guards: a replay
        # of a recording that did not warn never needs to)
        host_check(_warn_mismatched, mask_name, other_name)
    if mask.dtype == np.bool_:
        zeros = _const(constant(np.zeros((), target_type))).expand(*_shape(mask))
        return zeros.masked_fill(mask, _NEG_INF)
    return mask


def _warn_mismatched(mask_name, other_name):
    warnings.warn(f"Support for mismatched {mask_name} and {other_name} is deprecated. Use same type for both "
                  f"instead.", stacklevel=5)  # (eager: where canonical_mask's stacklevel=3 pointed, host_check between)


def none_or_dtype(mask):
    return None if mask is None else mask.dtype


def mha_shape_check(query, key, value, key_padding_mask, attn_mask, num_heads):
    """Whether the call is batched (3-D query) or not (2-D), with the ranks of the other arguments checked."""
    dims = {"query": query.ndim, "key": key.ndim, "value": value.ndim}
    if query.ndim not in (2, 3):
        raise AttentionError(f"multi_head_attention_forward: query should be unbatched 2D or batched 3D tensor but "
                             f"received {query.ndim}-D query tensor of shape {_shape(query)}")
    batched = query.ndim == 3
    kind = "batched (3-D)" if batched else "unbatched (2-D)"
    if key.ndim != query.ndim or value.ndim != query.ndim:
        raise AttentionError(f"multi_head_attention_forward: For {kind} `query`, expected `key` and `value` to be "
                             f"{query.ndim}-D but found {dims['key']}-D and {dims['value']}-D tensors respectively "
                             f"(query {_shape(query)}, key {_shape(key)}, value {_shape(value)})")
    if key_padding_mask is not None and key_padding_mask.ndim != query.ndim - 1:
        raise AttentionError(f"multi_head_attention_forward: For {kind} `query`, expected `key_padding_mask` to be "
                             f"`None` or {query.ndim - 1}-D but found {key_padding_mask.ndim}-D tensor instead "
                             f"(shape {_shape(key_padding_mask)})")
    if attn_mask is not None:
        if attn_mask.ndim not in (2, 3):
            raise AttentionError(f"multi_head_attention_forward: For {kind} `query`, expected `attn_mask` to be "
                                 f"`None`, 2-D or 3-D but found {attn_mask.ndim}-D tensor instead (shape "
                                 f"{_shape(attn_mask)})")
        expected = (num_heads, query.shape[0], key.shape[0])
        if not batched and attn_mask.ndim == 3 and _shape(attn_mask) != expected:
            raise AttentionError(f"multi_head_attention_forward: Expected `attn_mask` shape to be {expected} but got "
                                 f"{_shape(attn_mask)}")
    return batched


def _in_projection(query, key, value, embed_dim, in_proj_weight, in_proj_bias, separate):
    """q, k, v projected: one packed (3E, E) weight (one matmul for self-attention, two when key is value) or
    PyTorch's separate q/k/v_proj_weight (`separate`, a triple) with the packed bias split in three."""
    E = embed_dim
    b = (None,) * 3 if in_proj_bias is None else (in_proj_bias[:E], in_proj_bias[E:2 * E], in_proj_bias[2 * E:])
    if separate is not None:
        return tuple(linear(x, w, bias) for x, w, bias in zip((query, key, value), separate, b))
    w = in_proj_weight
    if key is value and query is key:
        proj = linear(query, w, in_proj_bias)
        return proj[..., :E], proj[..., E:2 * E], proj[..., 2 * E:]
    if key is value:
        kv = linear(key, w[E:], None if in_proj_bias is None else in_proj_bias[E:])
        return linear(query, w[:E], b[0]), kv[..., :E], kv[..., E:]
    return tuple(linear(x, w[i * E:(i + 1) * E], b[i]) for i, x in enumerate((query, key, value)))


def _zeros(shape, dtype):
    return _const(constant(np.zeros(shape, dtype)))


def _pad_last(mask):
    """One more key column (0: not masked) for the bias_k/bias_v or zero-attention key."""
    return None if mask is None else cat([mask, _zeros(_shape(mask)[:-1] + (1,), mask.dtype)], -1)


def multi_head_attention_forward(query, key, value, embed_dim_to_check, num_heads, in_proj_weight, in_proj_bias,
                                 bias_k, bias_v, add_zero_attn, dropout_p, out_proj_weight, out_proj_bias,
                                 training=True, key_padding_mask=None, need_weights=True, attn_mask=None,
                                 use_separate_proj_weight=False, q_proj_weight=None, k_proj_weight=None,
                                 v_proj_weight=None, static_k=None, static_v=None, average_attn_weights=True,
                                 is_causal=False):
    """torch.nn.functional.multi_head_attention_forward: sequence-first (L, N, E) or unbatched (L, E) query,
    (S, N, E_k)/(S, N, E_v) key and value; returns (attn_output, attn_weights or None)."""
    name = "multi_head_attention_forward"
    batched = mha_shape_check(query, key, value, key_padding_mask, attn_mask, num_heads)
    if not batched:  # a batch of one in dim 1, squeezed again at the end
        self_attn, kv_same = query is key and key is value, key is value
        query = query.unsqueeze(1)
        key = query if self_attn else key.unsqueeze(1)
        value = key if kv_same else value.unsqueeze(1)
        if key_padding_mask is not None:
            key_padding_mask = key_padding_mask.unsqueeze(0)
    tgt_len, bsz, embed_dim = _shape(query)
    src_len = key.shape[0]
    key_padding_mask = canonical_mask(key_padding_mask, "key_padding_mask", none_or_dtype(attn_mask), "attn_mask",
                                      query.dtype)
    if is_causal and attn_mask is None:
        raise RuntimeError("Need attn_mask if specifying the is_causal hint. You may use the Transformer module "
                           "method `generate_square_subsequent_mask` to create this mask.")
    if is_causal and key_padding_mask is None and not need_weights:
        attn_mask = None  # the hint alone: scaled_dot_product_attention builds the causal mask itself
    else:
        attn_mask = canonical_mask(attn_mask, "attn_mask", None, "", query.dtype, check_other=False)
        if key_padding_mask is not None:
            is_causal = False  # the merged mask is no longer causal
    if embed_dim != embed_dim_to_check:
        raise AttentionError(f"{name}: was expecting embedding dimension of {embed_dim_to_check}, but got "
                             f"{embed_dim} (query shape {_shape(query)})")
    head_dim = embed_dim // num_heads
    if head_dim * num_heads != embed_dim:
        raise AttentionError(f"{name}: embed_dim {embed_dim} not divisible by num_heads {num_heads}")
    if use_separate_proj_weight:
        if _shape(key)[:2] != _shape(value)[:2]:
            raise AttentionError(f"{name}: key's sequence and batch dims {_shape(key)[:2]} do not match value's "
                                 f"{_shape(value)[:2]} (key {_shape(key)}, value {_shape(value)})")
        if q_proj_weight is None or k_proj_weight is None or v_proj_weight is None:
            raise AttentionError(f"{name}: use_separate_proj_weight is True but q/k/v_proj_weight is None")
        separate = (q_proj_weight, k_proj_weight, v_proj_weight)
    else:
        if _shape(key) != _shape(value):
            raise AttentionError(f"{name}: key shape {_shape(key)} does not match value shape {_shape(value)}")
        if in_proj_weight is None:
            raise AttentionError(f"{name}: use_separate_proj_weight is False but in_proj_weight is None")
        separate = None
    q, k, v = _in_projection(query, key, value, embed_dim, in_proj_weight, in_proj_bias, separate)

    if attn_mask is not None:
        want = (tgt_len, src_len) if attn_mask.ndim == 2 else (bsz * num_heads, tgt_len, src_len)
        if _shape(attn_mask) != want:
            raise OpError(f"{name}: The shape of the {attn_mask.ndim}D attn_mask is {_shape(attn_mask)}, but should "
                          f"be {want} (query {_shape(query)}, key {_shape(key)}, num_heads={num_heads}).")
        if attn_mask.ndim == 2:
            attn_mask = attn_mask.unsqueeze(0)
    if (bias_k is None) != (bias_v is None):
        raise AttentionError(f"{name}: bias_k and bias_v must be given together (bias_k "
                             f"{'None' if bias_k is None else _shape(bias_k)}, bias_v "
                             f"{'None' if bias_v is None else _shape(bias_v)})")
    if bias_k is not None:
        if static_k is not None or static_v is not None:
            raise AttentionError(f"{name}: bias cannot be added to static key or value.")
        k = cat([k, bias_k.repeat(1, bsz, 1)])
        v = cat([v, bias_v.repeat(1, bsz, 1)])
        attn_mask, key_padding_mask = _pad_last(attn_mask), _pad_last(key_padding_mask)

    # heads folded into the batch: (L, N, E) -> (N * H, L, E / H)
    q = q.reshape(tgt_len, bsz * num_heads, head_dim).transpose(0, 1)
    k = _static(static_k, bsz * num_heads, head_dim, "static_k", name) if static_k is not None else \
        k.reshape(k.shape[0], bsz * num_heads, head_dim).transpose(0, 1)
    v = _static(static_v, bsz * num_heads, head_dim, "static_v", name) if static_v is not None else \
        v.reshape(v.shape[0], bsz * num_heads, head_dim).transpose(0, 1)
    if add_zero_attn:
        k = cat([k, _zeros((bsz * num_heads, 1, head_dim), k.dtype)], 1)
        v = cat([v, _zeros((bsz * num_heads, 1, head_dim), v.dtype)], 1)
        attn_mask, key_padding_mask = _pad_last(attn_mask), _pad_last(key_padding_mask)
    src_len = k.shape[1]

    if key_padding_mask is not None:
        if _shape(key_padding_mask) != (bsz, src_len):
            raise AttentionError(f"{name}: Expected key_padding_mask of shape {(bsz, src_len)} (batch, source "
                                 f"length), but got {_shape(key_padding_mask)} (query {_shape(query)}, key "
                                 f"{_shape(key)})")
        kpm = key_padding_mask.reshape(bsz, 1, 1, src_len).expand(bsz, num_heads, 1, src_len)
        kpm = kpm.reshape(bsz * num_heads, 1, src_len)
        attn_mask = kpm if attn_mask is None else attn_mask + kpm
    if not training:
        dropout_p = 0.0

    if need_weights:
        weights = (q * math.sqrt(1.0 / float(head_dim))) @ k.transpose(-2, -1)
        if attn_mask is not None:
            weights = attn_mask + weights
        weights = softmax(weights, dim=-1)
        if dropout_p > 0.0:
            weights = dropout(weights, p=dropout_p)
        out = (weights @ v).transpose(0, 1).reshape(tgt_len * bsz, embed_dim)
        out = linear(out, out_proj_weight, out_proj_bias).reshape(tgt_len, bsz, -1)
        weights = weights.reshape(bsz, num_heads, tgt_len, src_len)
        if average_attn_weights:
            weights = weights.mean(1)
        if not batched:
            out, weights = out.squeeze(1), weights.squeeze(0)
        return out, weights

    if attn_mask is not None:
        attn_mask = attn_mask.unsqueeze(0) if attn_mask.shape[0] == 1 else \
            attn_mask.reshape(bsz, num_heads, -1, src_len)
    q = q.reshape(bsz, num_heads, tgt_len, head_dim)
    k = k.reshape(bsz, num_heads, src_len, head_dim)
    v = v.reshape(bsz, num_heads, src_len, head_dim)
    out = scaled_dot_product_attention(q, k, v, attn_mask, dropout_p, is_causal)
    out = out.permute(2, 0, 1, 3).reshape(bsz * tgt_len, embed_dim)
    out = linear(out, out_proj_weight, out_proj_bias).reshape(tgt_len, bsz, -1)
    return (out if batched else out.squeeze(1)), None


def _static(t, batch_heads, head_dim, what, name):
    if t.ndim != 3 or t.shape[0] != batch_heads or t.shape[2] != head_dim:
        raise AttentionError(f"{name}: expecting {what} of shape ({batch_heads}, S, {head_dim}) (batch * num_heads, "
                             f"source length, head_dim), but got {_shape(t)}")
    return t
