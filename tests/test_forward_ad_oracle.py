"""Forward-mode tangents of the primitives against PyTorch's forward AD (oracle group): each primitive through its
sampler (Hypothesis shapes, float64), our `jvp` against `torch.func.jvp` of the same operation written with torch.

The primitives without a torch counterpart of the same semantics are listed in NO_TORCH (with why); they are
checked against finite differences and against their VJP in test_forward_ad_sweep.py like every primitive.
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st, HealthCheck

import tinygrad_lite as tl
from tinygrad_lite import func
from tinygrad_lite.ops import REGISTRY

from primitive_gen import HypothesisGen


def _dims(axis, ndim):
    return tuple(range(ndim)) if axis is None else tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)


def _torch_ops(torch):
    """name -> f(*tensors, *attrs) in torch, with the primitive's semantics."""
    t = torch

    def reduce(fn):
        def call(x, axis, keepdims):
            return fn(x, dim=_dims(axis, x.ndim), keepdim=keepdims) if x.ndim else fn(x, dim=())
        return call

    def prod(x, axis, keepdims):
        for d in sorted(_dims(axis, x.ndim), reverse=True):
            x = t.prod(x, dim=d, keepdim=keepdims) if keepdims else t.prod(x, dim=d)
        return x

    def index(idx, shape):
        """NumPy's index in torch's terms: arrays as tensors, a negative-step slice (torch has none) as indices."""
        out = []
        for k, i in enumerate(idx):
            if isinstance(i, slice) and (i.step or 1) < 0:
                i = np.arange(shape[k])[i].copy()
            out.append(t.as_tensor(i) if isinstance(i, np.ndarray) else i)
        return tuple(out)

    def index_put(x, v, idx):
        out = x.clone()
        out[index(idx, x.shape)] = v
        return out

    return {
        "neg": t.neg, "exp": t.exp, "log": t.log, "log1p": t.log1p, "sqrt": t.sqrt, "erf": t.erf, "sin": t.sin,
        "cos": t.cos, "tanh": t.tanh, "sigmoid": t.sigmoid, "relu": t.relu, "abs": t.abs,
        "tanh_grad": lambda g, y: g * (1 - y * y), "sigmoid_grad": lambda g, y: g * (1 - y) * y,
        "clamp": lambda x, lo, hi: t.clamp(x, lo, hi), "add": t.add, "sub": t.sub, "mul": t.mul, "div": t.div,
        "pow": t.pow, "remainder": t.remainder, "maximum": t.maximum, "minimum": t.minimum, "where": t.where,
        "cast": lambda x, dtype: x.to(getattr(t, np.dtype(dtype).name)),
        "sum": reduce(t.sum), "amax": reduce(t.amax), "amin": reduce(t.amin), "prod": prod,
        "cumsum": lambda x, d: t.cumsum(x, d) if x.ndim else x.clone(),
        "cumprod": lambda x, d: t.cumprod(x, d) if x.ndim else x.clone(),
        "reshape": lambda x, shape: x.reshape(shape), "permute": lambda x, dims: x.permute(dims),
        "expand": lambda x, shape: x.expand(shape), "getitem": lambda x, idx: x[index(idx, x.shape)],
        "index_put": index_put, "gather": lambda x, d, i: t.gather(x, d, t.as_tensor(i)),
        "scatter_add": lambda s, shape, d, i: t.zeros(shape, dtype=s.dtype).scatter_add(d, t.as_tensor(i), s),
        "cat": lambda *a: t.cat(a[:-1], a[-1]), "matmul": t.matmul,
        "pad": lambda x, width, value: t.nn.functional.pad(
            x, tuple(v for pair in reversed(width) for v in pair), value=value),
    }


NO_TORCH = {
    "mask": "ours: the zero-derivative factor of relu/abs/clamp/max under create_graph",
    "index_scatter": "getitem's adjoint as its own primitive (torch has index_put with accumulate, other arguments)",
    "unfold": "a (N, C, kh, kw, oh, ow) window view; torch's unfold has another layout",
    "fold": "the adjoint of that layout",
}


@pytest.mark.oracle
def test_every_primitive_is_compared_with_torch_or_says_why_not(torch):
    ops = _torch_ops(torch)
    assert set(REGISTRY) == set(ops) | set(NO_TORCH), set(REGISTRY) ^ (set(ops) | set(NO_TORCH))


@pytest.mark.oracle
@pytest.mark.parametrize("name", sorted(set(REGISTRY) - set(NO_TORCH)))
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_jvp_matches_torch_forward_ad(torch, name, data):
    prim = REGISTRY[name]
    arrays, attrs = prim.sample(HypothesisGen(data))
    arrays = [a.astype(np.float64) if a.dtype.kind == "f" else a for a in arrays]
    rng = np.random.default_rng(3)
    diff = [i for i, a in enumerate(arrays) if a.dtype.kind == "f"]
    tangents = {i: rng.standard_normal(arrays[i].shape) for i in diff}

    def ours(*xs):
        full = list(arrays)
        for i, x in zip(diff, xs):
            full[i] = x
        return prim.call(*[f if isinstance(f, tl.Tensor) else tl.tensor(f) for f in full], *attrs)
    _, got = func.jvp(ours, tuple(tl.tensor(arrays[i]) for i in diff), tuple(tl.tensor(tangents[i]) for i in diff))
    op = _torch_ops(torch)[name]

    def theirs(*xs):
        full = [torch.as_tensor(a) for a in arrays]
        for i, x in zip(diff, xs):
            full[i] = x
        return op(*full, *attrs)
    _, want = torch.func.jvp(theirs, tuple(torch.as_tensor(arrays[i]) for i in diff),
                             tuple(torch.as_tensor(tangents[i]) for i in diff))
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-10, atol=1e-12, err_msg=f"{name} attrs={attrs}")
