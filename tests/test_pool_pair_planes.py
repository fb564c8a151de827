"""Max pooling's planes of two-column windows read as uint64 words (nn/pooling.py `_pair_planes`): the same
window maxima and arg-max indices as the plain search over strided views, for ties, signed zeros, infinities and
NaN, float32 (where the words apply) and float64 (where they do not)."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinygrad_lite as tl
from tinygrad_lite.nn.pooling import _argmax_indices, _pair_planes, _setup

SPECIAL = np.array([-np.inf, -1.0, -0.0, 0.0, 0.5, 1.0, np.inf, np.nan])


def _brute(x, k, s):
    """Flat index of each window's first maximum; a NaN takes over (the window's last NaN), as PyTorch."""
    n, c, h, w = x.shape
    oh, ow = (h - k[0]) // s[0] + 1, (w - k[1]) // s[1] + 1
    out = np.empty((n, c, oh, ow), np.int64)
    for b in range(n):
        for ch in range(c):
            for i in range(oh):
                for j in range(ow):
                    best, arg = None, None
                    for a in range(k[0]):
                        for e in range(k[1]):
                            r, q = i * s[0] + a, j * s[1] + e
                            v = x[b, ch, r, q]
                            if best is None or v > best or np.isnan(v):
                                best, arg = v, r * w + q
                    out[b, ch, i, j] = arg
    return out


def _indices(x, kernel, stride):
    t = tl.tensor(x)
    k, s, p, d, out_hw, extra = _setup(t, kernel, stride, 0, 1, False, "test", True)
    return _argmax_indices(x, k, s, p, d, out_hw, extra), (k, s, d, out_hw, extra)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 2), c=st.integers(1, 3), oh=st.integers(1, 4), ow=st.integers(1, 4), kh=st.integers(1, 3),
       spare_rows=st.integers(0, 2), nan=st.booleans(), dtype=st.sampled_from([np.float32, np.float64]),
       seed=st.integers(0, 2 ** 31))
def test_pair_planes_give_the_first_maximum_of_each_window(n, c, oh, ow, kh, spare_rows, nan, dtype, seed):
    rng = np.random.default_rng(seed)
    h, w = oh * kh + min(spare_rows, kh - 1), ow * 2
    pool = SPECIAL if nan else SPECIAL[:-1]
    x = rng.choice(pool, size=(n, c, h, w)).astype(dtype)
    got, (k, s, d, out_hw, extra) = _indices(x, (kh, 2), (kh, 2))
    np.testing.assert_array_equal(got, _brute(x, (kh, 2), (kh, 2)))
    planes = _pair_planes(x, k, s, d, out_hw, extra)
    assert (planes is not None) == (dtype == np.float32)
    if planes is not None:  # the planes hold each window offset's elements, bit for bit
        views = [x[:, :, i:i + kh * (oh - 1) + 1:kh, j:j + 2 * (ow - 1) + 1:2] for i in range(kh) for j in range(2)]
        np.testing.assert_array_equal(planes.view(np.uint32), np.stack(views).view(np.uint32))


@pytest.mark.parametrize("kernel,stride,shape", [((2, 2), (1, 1), (1, 2, 6, 6)), ((3, 3), (3, 3), (1, 1, 6, 6)),
                                                 ((2, 2), (2, 2), (1, 1, 4, 5)), ((2, 3), (2, 3), (2, 1, 4, 6))])
def test_windows_the_words_do_not_fit_take_the_plain_search(kernel, stride, shape):
    x = np.random.default_rng(0).choice(SPECIAL[:-1], size=shape).astype(np.float32)
    got, (k, s, d, out_hw, extra) = _indices(x, kernel, stride)
    assert _pair_planes(x, k, s, d, out_hw, extra) is None
    np.testing.assert_array_equal(got, _brute(x, kernel, stride))


def test_a_non_contiguous_input_takes_the_plain_search_with_the_same_answer():
    x = np.random.default_rng(1).choice(SPECIAL, size=(2, 3, 8, 8)).astype(np.float32)
    xt = np.ascontiguousarray(x.transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2)  # same values, F-ordered planes
    a, (k, s, d, out_hw, extra) = _indices(x, 2, 2)
    assert _pair_planes(xt, k, s, d, out_hw, extra) is None
    np.testing.assert_array_equal(_indices(xt, 2, 2)[0], a)


def test_max_pool_values_and_gradient_through_the_words(torch):
    x = np.random.default_rng(2).choice(SPECIAL[:-1], size=(2, 3, 8, 10)).astype(np.float32)
    t = tl.tensor(x, requires_grad=True)
    out = tl.nn.functional.max_pool2d(t, 2)
    g = np.random.default_rng(3).standard_normal(out.shape).astype(np.float32)
    out.backward(tl.tensor(g))
    tx = torch.tensor(x, requires_grad=True)
    tout = torch.nn.functional.max_pool2d(tx, 2)
    tout.backward(torch.tensor(g))
    np.testing.assert_array_equal(out.numpy(), tout.detach().numpy())
    np.testing.assert_array_equal(t.grad.numpy(), tx.grad.numpy())
