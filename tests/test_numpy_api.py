"""NumPy functions on Tensors are recorded on the tape: values equal NumPy's on the data, gradients equal finite
differences (float64) over Hypothesis shapes; functions without a tape equivalent refuse a Tensor that requires
grad, naming the function; inspection functions and np.asarray still give the data."""
import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st, HealthCheck
from hypothesis.extra import numpy as hnp

import tinygrad_lite as tl
from tinygrad_lite.numpy_api import FUNCTIONS, UFUNCS

SHAPES = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)
POS = st.floats(0.2, 3.0)
AWAY = POS.filter(lambda v: min(abs(v - k) for k in (0.5, 1.0, 2.0)) > 1e-3)  # off the kinks of clip and where
ANY = st.floats(-3.0, 3.0)
GAP = 1e-4  # values of a kinked function (maximum, min, ...) this far apart: the finite-difference step (1e-6)
#             never crosses the kink (Hypothesis drew 3.0 against 3.0000000000000004 and 0.2 against a neighbour)

UNARY = [np.exp, np.log, np.log1p, np.sqrt, np.sin, np.cos, np.tanh, np.absolute, np.negative, np.square,
         np.reciprocal, np.expm1, np.exp2, np.log2, np.log10, np.positive, np.fabs]
BINARY = [np.add, np.subtract, np.multiply, np.true_divide, np.power, np.maximum, np.minimum]
FUNCS = [
    ("sum axis", lambda a: np.sum(a, axis=0)), ("sum keepdims", lambda a: np.sum(a, axis=-1, keepdims=True)),
    ("mean", np.mean), ("var ddof", lambda a: np.var(a, ddof=1) if np.size(a) > 1 else np.var(a)),
    ("std", lambda a: np.std(a, axis=0)), ("max", lambda a: np.max(a, axis=0)), ("min", np.min),
    ("prod", lambda a: np.prod(a, axis=-1)), ("cumsum", np.cumsum), ("cumsum axis", lambda a: np.cumsum(a, axis=0)),
    ("reshape", lambda a: np.reshape(a, (-1,))), ("transpose", np.transpose), ("ravel", np.ravel),
    ("clip", lambda a: np.clip(a, 0.5, 2.0)), ("concatenate", lambda a: np.concatenate([a, a * 2.0], axis=0)),
    ("stack", lambda a: np.stack([a, a], axis=1)), ("squeeze", lambda a: np.squeeze(np.expand_dims(a, 0))),
    ("where", lambda a: np.where(a > 1.0, a, a * a)), ("swapaxes", lambda a: np.swapaxes(a, 0, -1)),
    ("dot", lambda a: np.dot(np.ravel(a), np.ravel(a))), ("outer", lambda a: np.outer(a, a)),
    ("matmul", lambda a: np.matmul(np.ravel(a), np.ravel(a))), ("norm", np.linalg.norm),
    ("reduce", lambda a: np.add.reduce(a, axis=0)), ("maximum.reduce", lambda a: np.maximum.reduce(a, axis=-1)),
    ("flip", np.flip), ("flip axis", lambda a: np.flip(a, -1)), ("copy", np.copy),
    ("split", lambda a: np.split(a, [1], axis=0)[1]), ("split sections", lambda a: np.split(a, a.shape[0])[-1]),
    ("cumprod", lambda a: np.cumprod(a, axis=0)), ("cumprod flat", np.cumprod), ("sort", np.sort),
    ("sort flat", lambda a: np.sort(a * -1.0, axis=None)),
]


def _check(fn, arr):
    """fn on a Tensor: a Tensor with NumPy's values, and a gradient matching central differences."""
    want = fn(arr)
    x = tl.tensor(arr, requires_grad=True)
    out = fn(x)
    assert isinstance(out, tl.Tensor), f"{fn} returned {type(out).__name__}"
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-12, atol=1e-12)
    w = np.random.default_rng(0).standard_normal(np.shape(want))
    (g,) = tl.autograd.grad(out, x, grad_outputs=tl.tensor(w))
    numeric = np.zeros_like(arr)
    for k in np.ndindex(arr.shape):
        hi, lo = arr.copy(), arr.copy()
        hi[k] += 1e-6
        lo[k] -= 1e-6
        numeric[k] = np.sum(w * (fn(hi) - fn(lo))) / 2e-6
    np.testing.assert_allclose(g.numpy(), numeric, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("ufunc", UNARY, ids=lambda u: u.__name__)
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_unary_ufuncs_are_recorded(ufunc, data):
    arr = data.draw(hnp.arrays(np.float64, SHAPES, elements=POS))
    _check(ufunc, arr)


@pytest.mark.parametrize("ufunc", BINARY, ids=lambda u: u.__name__)
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_binary_ufuncs_broadcast_and_are_recorded(ufunc, data):
    s1, s2 = data.draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=1, max_dims=3)).input_shapes
    other = data.draw(hnp.arrays(np.float64, s2, elements=POS))
    arr = data.draw(hnp.arrays(np.float64, s1, elements=POS))
    if ufunc in (np.maximum, np.minimum):
        assume(np.min(np.abs(arr - other)) > GAP)
    _check(lambda a: ufunc(a, other), arr)
    _check(lambda a: ufunc(other, a), arr)  # an ndarray on the left: the reflected operation


@pytest.mark.parametrize("name, fn", FUNCS, ids=[f[0] for f in FUNCS])
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_array_functions_are_recorded(name, fn, data):
    # two or more elements per axis and distinct values: std's derivative exists, max has no ties
    arr = data.draw(hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, min_side=2, max_side=4),
                               elements=AWAY, unique=True))
    assume(np.min(np.diff(np.sort(arr, axis=None))) > GAP)  # distinct beyond the finite-difference step
    _check(fn, arr)


def test_a_function_without_tape_equivalent_refuses_a_tensor_that_requires_grad():
    x = tl.tensor([1.0, 2.0, 3.0], requires_grad=True)
    with pytest.raises(TypeError, match=r"numpy\.fft\.fft has no tape equivalent"):
        np.fft.fft(x)
    with pytest.raises(TypeError, match=r"numpy\.arcsinh has no tape equivalent"):
        np.arcsinh(x)
    with pytest.raises(TypeError, match="numpy.add"):
        np.add(x, 1.0, out=np.empty(3))
    np.testing.assert_allclose(np.arcsinh(x.detach()).numpy(), np.arcsinh([1.0, 2.0, 3.0]))  # no grad: the data


@pytest.mark.parametrize("fn", [np.zeros_like, np.ones_like, lambda a: np.full_like(a, 2.5),
                                lambda a: np.zeros_like(a, dtype=np.float32), lambda a: np.ones_like(a, np.int64)],
                         ids=["zeros_like", "ones_like", "full_like", "zeros_like dtype", "ones_like dtype"])
def test_like_factories_give_tensors_of_numpys_values(fn):
    arr = np.arange(6.0).reshape(2, 3)
    got = fn(tl.tensor(arr, requires_grad=True))
    want = fn(arr)
    assert isinstance(got, tl.Tensor) and not got.requires_grad
    assert got.dtype == want.dtype and np.array_equal(got.numpy(), want)


def test_split_into_unequal_sections_is_numpys_error():
    with pytest.raises(ValueError, match="equal division"):
        np.split(tl.tensor(np.arange(6.0), requires_grad=True), 4)


def test_inspection_and_conversion_give_the_data():
    x = tl.tensor([[1.0, 5.0], [3.0, 2.0]], requires_grad=True)
    assert np.shape(x) == (2, 2) and np.ndim(x) == 2 and np.size(x) == 4
    assert np.argmax(x) == 1 and np.allclose(x, [[1, 5], [3, 2]]) and np.array_equal(x, x)
    arr = np.asarray(x)
    assert isinstance(arr, np.ndarray) and arr is x.numpy()
    assert isinstance(np.isnan(x), tl.Tensor) and not np.isnan(x).requires_grad


def test_documented_lists_are_what_is_dispatched():
    assert np.exp in UFUNCS and np.sum in FUNCTIONS and np.concatenate in FUNCTIONS
    assert all(u in UFUNCS or u in BINARY for u in UNARY)
