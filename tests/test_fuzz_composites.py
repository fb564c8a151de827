"""Fuzzing of softmax/log_softmax, pad, unfold/fold and matmul, and log_softmax's precision (see
tests/_fuzz_common.py for the oracle).
"""
import numpy as np
import pytest
from hypothesis import assume, given, strategies as st
from hypothesis.extra import numpy as hnp

import tinygrad_lite as tl
import tinygrad_lite.functional as F

from _fuzz_common import _report_case_count  # noqa: F401 - autouse: reports this part's cases
from _fuzz_common import (DTYPES, FLOATS, F32, F64, fuzz, elements, arrays, promote, run, backward_shapes, float_result,
                          norm_dims, _lse)


# ---------------------------------------------------------------- softmax, padding, windows, matmul
def _softmax_ref(x, d, log):
    if log:  # x - logsumexp(x): at +inf this is -inf for the finite entries (PyTorch gives NaN for the whole row)
        return x - _lse(x, d, True)
    m = np.amax(x, axis=d, keepdims=True) if x.size else 0.0
    z = x - m
    s = np.sum(np.exp(z), axis=d, keepdims=True)
    return z - np.log(s) if log else np.exp(z) / s


@fuzz
@given(arr=arrays(dtypes=FLOATS + [np.dtype("int64")], lo=-50, hi=50), data=st.data(), log=st.booleans(),
       functional=st.booleans())
def test_softmax(arr, data, log, functional):
    n = max(arr.ndim, 1)
    dim = data.draw(st.integers(-n - 1, n))
    name = "log_softmax" if log else "softmax"
    x = tl.tensor(arr)
    dt = float_result(arr.dtype)
    fn = (lambda: getattr(F, name)(x, dim)) if functional else (lambda: getattr(x, name)(dim))
    tol = (1e-2, 1e-2) if dt == np.dtype("float16") else (1e-4, 1e-6)
    got = run(name, fn, lambda: _softmax_ref(arr.astype(F64), norm_dims(dim, arr.ndim, True), log).astype(dt),
              dtype=dt, tol=tol, must=True)
    if got is not None and arr.dtype == F64:
        backward_shapes(lambda t: getattr(t, name)(dim), arr)


@fuzz
@given(arr=arrays(dtypes=DTYPES, special=False, shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0,
                                                                     max_side=4)),
       pad=st.lists(st.integers(-1, 4), max_size=8), mode=st.sampled_from(["constant", "reflect", "replicate",
                                                                            "circular", "wrap"]),
       value=st.sampled_from([0, 2, 1.5]))
def test_pad(arr, pad, mode, value):
    pad = tuple(pad)

    def ref():
        if len(pad) % 2 or len(pad) // 2 > arr.ndim or min(pad, default=0) < 0:
            raise ValueError(pad)
        width = [(0, 0)] * arr.ndim
        for i in range(len(pad) // 2):
            width[arr.ndim - 1 - i] = (pad[2 * i], pad[2 * i + 1])
        if arr.ndim == 0:
            return arr
        for (b, a), s in zip(width, arr.shape):
            if (b or a) and mode == "reflect" and max(b, a) >= s or mode == "circular" and max(b, a) > s:
                raise ValueError("too much padding")
        if mode == "constant":
            return np.pad(arr, width, constant_values=np.asarray(value).astype(arr.dtype))
        return np.pad(arr, width, mode={"reflect": "reflect", "replicate": "edge", "circular": "wrap"}[mode])
    x = tl.tensor(arr)
    got = run("pad", lambda: F.pad(x, pad, mode=mode, value=value), ref, dtype=arr.dtype)
    if got is not None and arr.dtype == F64:
        backward_shapes(lambda t: F.pad(t, pad, mode=mode, value=value), arr)


def _unfold_ref(x, k, d, p, s):
    if x.ndim == 3:  # unbatched (C, H, W) -> (C*kh*kw, L), as PyTorch
        return _unfold_ref(x[None], k, d, p, s)[0]
    n, c, h, w = x.shape
    oh, ow = (h + 2 * p[0] - d[0] * (k[0] - 1) - 1) // s[0] + 1, (w + 2 * p[1] - d[1] * (k[1] - 1) - 1) // s[1] + 1
    if x.ndim != 4 or oh <= 0 or ow <= 0:
        raise ValueError("does not fit")
    xp = np.pad(x, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])))
    out = np.zeros((n, c, k[0], k[1], oh, ow), x.dtype)
    for i in range(k[0]):
        for j in range(k[1]):
            out[:, :, i, j] = xp[:, :, i * d[0]:i * d[0] + s[0] * (oh - 1) + 1:s[0],
                                 j * d[1]:j * d[1] + s[1] * (ow - 1) + 1:s[1]]
    return out.reshape(n, c * k[0] * k[1], oh * ow)


def _fold_ref(cols, size, k, d, p, s):
    n, ckk, L = cols.shape
    oh, ow = ((size[i] + 2 * p[i] - d[i] * (k[i] - 1) - 1) // s[i] + 1 for i in range(2))
    if ckk % (k[0] * k[1]) or oh * ow != L or oh <= 0 or ow <= 0:
        raise ValueError("mismatch")
    c = ckk // (k[0] * k[1])
    cols = cols.reshape(n, c, k[0], k[1], oh, ow)
    out = np.zeros((n, c, size[0] + 2 * p[0], size[1] + 2 * p[1]), cols.dtype)
    for i in range(k[0]):
        for j in range(k[1]):
            for y in range(oh):
                for xx in range(ow):
                    out[:, :, i * d[0] + y * s[0], j * d[1] + xx * s[1]] += cols[:, :, i, j, y, xx]
    return out[:, :, p[0]:p[0] + size[0], p[1]:p[1] + size[1]]


pos_pairs = st.tuples(st.integers(1, 3), st.integers(1, 3))


@fuzz
@given(shape=hnp.array_shapes(min_dims=3, max_dims=5, min_side=1, max_side=5), k=pos_pairs, d=pos_pairs,
       p=st.tuples(st.integers(0, 2), st.integers(0, 2)), s=pos_pairs, dt=st.sampled_from([F32, F64]),
       seed=st.integers(0, 2 ** 16), fold=st.booleans())
def test_unfold_and_fold(shape, k, d, p, s, dt, seed, fold):
    rng = np.random.default_rng(seed)
    if fold:
        size = shape[-2:]
        oh, ow = ((size[i] + 2 * p[i] - d[i] * (k[i] - 1) - 1) // s[i] + 1 for i in range(2))
        cshape = (shape[0], shape[1] * k[0] * k[1], max(oh, 0) * max(ow, 0) + (seed % 7 == 0))
        cols = rng.standard_normal(cshape).astype(dt)
        got = run("fold", lambda: F.fold(tl.tensor(cols), size, k, d, p, s), lambda: _fold_ref(cols, size, k, d, p, s),
                  dtype=dt)
        make = lambda t: F.fold(t, size, k, d, p, s)  # noqa: E731
        arr = cols
    else:
        arr = rng.standard_normal(shape).astype(dt)
        got = run("unfold", lambda: F.unfold(tl.tensor(arr), k, d, p, s), lambda: _unfold_ref(arr, k, d, p, s),
                  dtype=dt)
        make = lambda t: F.unfold(t, k, d, p, s)  # noqa: E731
    if got is not None and dt == F64:
        backward_shapes(make, arr)


@fuzz
@given(data=st.data(), da=st.sampled_from(DTYPES), db=st.sampled_from(DTYPES))
def test_matmul(data, da, db):
    m, k, n, k2 = (data.draw(st.integers(0, 3)) for _ in range(4))
    k2 = k if data.draw(st.integers(0, 4)) else k2
    batch = data.draw(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=2, max_side=3)).input_shapes
    sa = (batch[0] + (m, k))[-data.draw(st.integers(0, 4)):] if data.draw(st.booleans()) else (k,)
    sb = (batch[1] + (k2, n))[-data.draw(st.integers(0, 4)):] if data.draw(st.booleans()) else (k2,)
    a = data.draw(hnp.arrays(da, sa, elements=elements(da, -3, 3, special=False)))
    b = data.draw(hnp.arrays(db, sb, elements=elements(db, -3, 3, special=False)))
    assume(not (a.ndim == 0 or b.ndim == 0) or data.draw(st.booleans()))
    dt = promote(da, db)
    form = data.draw(st.sampled_from(["@", "tl", "method"]))
    ta, tb = tl.tensor(a), tl.tensor(b)
    fn = {"@": lambda: ta @ tb, "tl": lambda: tl.matmul(ta, tb), "method": lambda: ta.matmul(tb)}[form]
    tol = (2e-2, 2e-2) if dt == np.dtype("float16") else None
    got = run("matmul", fn, lambda: np.matmul(a.astype(dt), b.astype(dt)), dtype=dt, tol=tol, must=dt.kind == "f")
    if got is not None and da == db == F64:
        backward_shapes(lambda x, y: x @ y, a, b)


@pytest.mark.parametrize("dtype", [F32, F64])
def test_log_softmax_keeps_full_precision_and_its_gradient(dtype):
    """(x - max) - log(sum(exp(x - max))): no cancellation against a logsumexp of 1e4 (was rel. error 1e-3)."""
    x = np.array([[1e4, 1e4 + 1, 1e4 - 3, -1e4], [0.5, -2.0, 3.0, np.inf]], dtype)
    x64 = x.astype(F64)
    z = x64[0] - x64[0].max()
    want = z - np.log(np.exp(z).sum())
    out = F.log_softmax(tl.tensor(x), 1).numpy()
    np.testing.assert_allclose(out[0], want, rtol=4 * np.finfo(dtype).eps, atol=0)
    assert np.isnan(out[1, 3]) and (out[1, :3] == -np.inf).all()  # +inf in the row, as x - logsumexp(x)
    assert tl.gradcheck(lambda t: F.log_softmax(t, 1), tl.tensor(np.random.default_rng(0).standard_normal((3, 4)),
                                                                 requires_grad=True))
    assert tl.gradcheck(lambda t: F.log_softmax(t * 1e3, 0), tl.tensor(np.array([0.3, 0.31, -0.2]),
                                                                       requires_grad=True))
