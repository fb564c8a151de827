"""Tensor printing (tinygrad_lite._printing): known strings (core) and character-for-character agreement with
PyTorch's str(tensor), set_printoptions and format(tensor, spec) (oracle)."""
import contextlib
import math
import sys

import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp

from tinygrad_lite._printing import format_scalar, get_printoptions, printoptions, set_printoptions, tensor_repr

NAN, INF = float("nan"), float("inf")
DEFAULTS = dict(precision=4, threshold=1000, edgeitems=3, linewidth=80, sci_mode=None)


@pytest.fixture(autouse=True)
def _reset_printoptions():
    """Every test starts and ends with the default options, in both libraries."""
    set_printoptions(profile="default")
    yield
    set_printoptions(profile="default")
    if "torch" in sys.modules:
        sys.modules["torch"].set_printoptions(profile="default")


# -- known strings ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("arr, expected", [
    (np.array([1.23456789], np.float32), "tensor([1.2346])"),
    (np.array(1.5, np.float32), "tensor(1.5000)"),
    (np.array(1.5), "tensor(1.5000, dtype=torch.float64)"),
    (np.array([1.0, 2.0], np.float32), "tensor([1., 2.])"),
    (np.array([1.0, NAN, -0.0], np.float32), "tensor([1., nan, -0.])"),
    (np.array([-0.0, 0.0], np.float32), "tensor([-0., 0.])"),
    (np.array([1e-5, NAN], np.float32), "tensor([1.0000e-05,        nan])"),
    (np.array([INF, -INF], np.float32), "tensor([inf, -inf])"),
    (np.array([1.0, 1000.0], np.float32), "tensor([   1., 1000.])"),
    (np.array([1.0, 1001.0], np.float32), "tensor([1.0000e+00, 1.0010e+03])"),
    (np.array([1e8], np.float32), "tensor([100000000.])"),
    (np.array([1e9], np.float32), "tensor([1.0000e+09])"),
    (np.array([1e300, -1e-300]), "tensor([ 1.0000e+300, -1.0000e-300], dtype=torch.float64)"),  # ratio overflows
    (np.array([-1.5, 10.25], np.float16), "tensor([-1.5000, 10.2500], dtype=torch.float16)"),
    (np.array([1, -22, 333]), "tensor([  1, -22, 333])"),
    (np.array([1, 2, 3], np.int32), "tensor([1, 2, 3], dtype=torch.int32)"),
    (np.array([7, 255], np.uint8), "tensor([  7, 255], dtype=torch.uint8)"),
    (np.array(7, np.int8), "tensor(7, dtype=torch.int8)"),
    (np.array([True, False]), "tensor([ True, False])"),
    (np.array(True), "tensor(True)"),
    (np.zeros((0,), np.float32), "tensor([])"),
    (np.zeros((0, 3), np.float32), "tensor([], size=(0, 3))"),
    (np.zeros((0,), np.int64), "tensor([], dtype=torch.int64)"),
    (np.zeros((2, 0), np.bool_), "tensor([], size=(2, 0), dtype=torch.bool)"),
    (np.arange(8).reshape(2, 2, 2), "tensor([[[0, 1],\n         [2, 3]],\n\n        [[4, 5],\n         [6, 7]]])"),
    (np.arange(2000), "tensor([   0,    1,    2,  ..., 1997, 1998, 1999])"),
    (np.arange(30, dtype=np.float32),
     "tensor([ 0.,  1.,  2.,  3.,  4.,  5.,  6.,  7.,  8.,  9., 10., 11., 12., 13.,\n"
     "        14., 15., 16., 17., 18., 19., 20., 21., 22., 23., 24., 25., 26., 27.,\n"
     "        28., 29.])"),
])
def test_known_strings(arr, expected):
    assert tensor_repr(arr) == expected


def test_summarised_matrix_shows_edges_and_ellipsis_rows():
    text = tensor_repr(np.arange(40 * 30, dtype=np.int64).reshape(40, 30))
    lines = text.split("\n")
    assert lines[0] == "tensor([[   0,    1,    2,  ...,   27,   28,   29],"
    assert lines[3] == "        ...,"
    assert lines[-1] == "        [1170, 1171, 1172,  ..., 1197, 1198, 1199]])"
    assert len(lines) == 7


def test_suffixes_follow_the_dtype_and_wrap_past_linewidth():
    assert (tensor_repr(np.array([1.0, 2.0]), suffixes=["requires_grad=True"])
            == "tensor([1., 2.], dtype=torch.float64, requires_grad=True)")
    assert tensor_repr(np.array(2.0, np.float32), suffixes=["grad_fn=<MulBackward0>"]) == \
        "tensor(2., grad_fn=<MulBackward0>)"
    assert (tensor_repr(np.full(3, 12345678.9), suffixes=["grad_fn=<MulBackward0>"])
            == "tensor([12345678.9000, 12345678.9000, 12345678.9000], dtype=torch.float64,\n"
               "       grad_fn=<MulBackward0>)")


def test_printoptions_precision_threshold_edgeitems_linewidth_sci_mode():
    set_printoptions(precision=2)
    assert tensor_repr(np.array([1.12345], np.float32)) == "tensor([1.12])"
    set_printoptions(threshold=5)
    assert tensor_repr(np.arange(10)) == "tensor([0, 1, 2,  ..., 7, 8, 9])"
    set_printoptions(threshold=5, edgeitems=1)
    assert tensor_repr(np.arange(10)) == "tensor([0,  ..., 9])"
    set_printoptions(threshold=5, edgeitems=0)
    assert tensor_repr(np.arange(10)) == "tensor([...], size=(10,))"
    set_printoptions(profile="default", edgeitems=0)  # not summarised, but the size is still shown
    assert tensor_repr(np.arange(3)) == "tensor([0, 1, 2], size=(3,))"
    set_printoptions(profile="default", linewidth=20)
    assert tensor_repr(np.arange(6)) == "tensor([0, 1, 2, 3,\n        4, 5])"
    set_printoptions(profile="default", sci_mode=True)
    assert tensor_repr(np.array([1.0, 2.5], np.float32)) == "tensor([1.0000e+00, 2.5000e+00])"
    set_printoptions(profile="default", sci_mode=False)
    assert tensor_repr(np.array([1e-6, 1.0], np.float32)) == "tensor([0.0000, 1.0000])"
    set_printoptions(profile="default")
    assert tensor_repr(np.array([1.12345], np.float32)) == "tensor([1.1235])"


def test_get_printoptions_defaults_profiles_and_sci_mode_reset():
    assert get_printoptions() == DEFAULTS
    set_printoptions(profile="short")
    assert get_printoptions() == dict(DEFAULTS, precision=2, edgeitems=2)
    set_printoptions(profile="full", precision=6)
    assert get_printoptions() == dict(DEFAULTS, threshold=math.inf, precision=6)
    set_printoptions(sci_mode=True)
    assert get_printoptions()["sci_mode"] is True
    set_printoptions(linewidth=100)  # as in PyTorch, any call without sci_mode resets it
    assert get_printoptions()["sci_mode"] is None and get_printoptions()["linewidth"] == 100
    set_printoptions(profile="no-such-profile")  # ignored, as in PyTorch
    assert get_printoptions()["linewidth"] == 100
    opts = get_printoptions()
    opts["precision"] = 99  # a copy: mutating it changes nothing
    assert get_printoptions()["precision"] == 6


def test_printoptions_context_restores_on_exit_and_on_error():
    with pytest.raises(RuntimeError):
        with printoptions(precision=1, threshold=2):
            assert tensor_repr(np.array([1.25, 3.0], np.float32)) == "tensor([1.2, 3.0])"
            raise RuntimeError
    assert get_printoptions() == DEFAULTS


def test_format_scalar():
    assert format_scalar(np.array(1.23456, np.float32), ".2f") == "1.23"
    assert format_scalar(np.array(1.5), "") == "1.5"  # PyTorch formats t.item() even for an empty spec
    assert format_scalar(np.array(3), ">4") == "   3"
    assert format_scalar(np.array(True), "") == "True"
    assert format_scalar(np.array([1.5], np.float32), "") == "tensor([1.5000])"
    assert format_scalar(np.array([1.5]), "", suffixes=["requires_grad=True"]) == \
        "tensor([1.5000], dtype=torch.float64, requires_grad=True)"
    for arr in (np.array([1.5], np.float32), np.array([1.0, 2.0], np.float32), np.zeros((0,))):
        with pytest.raises(TypeError, match="unsupported format string"):
            format_scalar(arr, ".4f")


def test_unsupported_dtype_raises():
    with pytest.raises(TypeError, match="complex"):
        tensor_repr(np.array([1 + 2j]))


def test_non_native_byte_order_prints_its_values():
    assert tensor_repr(np.array([1.5, 2.0], ">f8")) == "tensor([1.5000, 2.0000], dtype=torch.float64)"


# -- PyTorch oracle --------------------------------------------------------------------------------------------

FLOAT_DTYPES = [np.float32, np.float64, np.float16]
INT_DTYPES = [np.int64, np.int32, np.uint8, np.int16, np.int8]
ALL_DTYPES = FLOAT_DTYPES + INT_DTYPES + [np.bool_]
SPECIALS = st.sampled_from([0.0, -0.0, NAN, INF, -INF])
REGIMES = {
    "integers": st.integers(-2000, 2000).map(float),
    "unit": st.floats(-10, 10),
    "tiny": st.floats(1e-12, 2e-4) | st.floats(-2e-4, -1e-12),
    "huge": st.floats(1e5, 1e12) | st.floats(-1e12, -1e5),
    "wide": st.floats(-1e30, 1e30),
    "ratio": st.sampled_from([1.0, 999.0, 1000.0, 1000.5, 1e-4, 9.9999e-5, 1e8, 1.00001e8, 0.5, 123.456]),
}


@st.composite
def arrays(draw, dtype=None, shapes=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5)):
    """An array of one of ALL_DTYPES; floats mix one value regime with nan, inf and signed zeros."""
    dtype = np.dtype(draw(st.sampled_from(ALL_DTYPES)) if dtype is None else dtype)
    shape = draw(shapes)
    if dtype.kind != "f":
        return draw(hnp.arrays(dtype, shape))
    regime = draw(st.sampled_from(sorted(REGIMES)))
    values = draw(hnp.arrays(np.float64, shape, elements=REGIMES[regime] | SPECIALS))
    with np.errstate(over="ignore"):
        return values.astype(dtype)


def _torch_str(torch, a, grad=None):
    t = torch.from_numpy(np.array(a, copy=True))  # (np.ascontiguousarray would make 0-d arrays 1-d)
    if grad == "requires_grad":
        t.requires_grad_()
    elif grad == "grad_fn":
        t = t.requires_grad_().clone()
    return str(t)


def _ours(a, grad=None):
    suffixes = {None: [], "requires_grad": ["requires_grad=True"], "grad_fn": ["grad_fn=<CloneBackward0>"]}[grad]
    return tensor_repr(a, suffixes=suffixes)


@contextlib.contextmanager
def _both_options(torch, **opts):
    set_printoptions(**opts)
    torch.set_printoptions(**opts)
    try:
        yield
    finally:
        set_printoptions(profile="default")
        torch.set_printoptions(profile="default")


@pytest.mark.oracle
@given(a=arrays(), grad=st.sampled_from([None, "requires_grad", "grad_fn"]))
def test_oracle_random_arrays(a, grad):
    torch = pytest.importorskip("torch")
    grad = grad if a.dtype.kind == "f" else None  # only floating tensors can require grad
    assert _ours(a, grad) == _torch_str(torch, a, grad)


@pytest.mark.oracle
@pytest.mark.parametrize("values", [
    [1.0, 1000.0], [1.0, 1000.5], [1e8], [1.00001e8], [1e-4], [9.9999e-5], [1e-4, 0.1], [0.1, 100.0],
    [0.0, -0.0, NAN], [NAN, INF, -INF], [2.5, NAN, -INF], [1e-300, 1.0], [123456789.0, 1.5], [-1e-5, 1e5],
    [0.99995, 1.0], [9.99995, -9.99995], [65504.0, 1.0], [1e20, 1.0, NAN],
])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_oracle_mode_boundaries(values, dtype):
    torch = pytest.importorskip("torch")
    with np.errstate(over="ignore"):
        a = np.array(values).astype(dtype)
    assert tensor_repr(a) == _torch_str(torch, a)
    assert tensor_repr(a[:1].reshape(())) == _torch_str(torch, a[:1].reshape(()))


@pytest.mark.oracle
@pytest.mark.parametrize("shape", [(1001,), (2000,), (40, 30), (3, 400), (11, 11, 11), (4, 5, 6, 10), (7, 7, 7, 7)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, np.int64, np.uint8, np.bool_])
def test_oracle_large_tensors_summarise(shape, dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(sum(shape))
    a = (rng.standard_normal(shape) * 100).astype(dtype)
    text = tensor_repr(a)
    assert "..." in text
    assert text == _torch_str(torch, a)
    b = np.round(a) if a.dtype.kind == "f" else a  # int mode for floats
    grad = "requires_grad" if a.dtype.kind == "f" else None
    assert _ours(b, grad) == _torch_str(torch, b, grad)


@pytest.mark.oracle
@given(a=arrays(shapes=hnp.array_shapes(min_dims=1, max_dims=2, min_side=10, max_side=60)))
def test_oracle_long_rows_wrap(a):
    torch = pytest.importorskip("torch")
    assert tensor_repr(a) == _torch_str(torch, a)


@pytest.mark.oracle
@given(a=arrays(shapes=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=9)),
       precision=st.none() | st.integers(0, 8),
       threshold=st.none() | st.sampled_from([0, 1, 5, 20, 100, 1000, math.inf]),
       edgeitems=st.none() | st.integers(0, 4),
       linewidth=st.none() | st.integers(1, 150),
       profile=st.none() | st.sampled_from(["default", "short", "full"]),
       sci_mode=st.sampled_from([None, True, False]),
       grad=st.sampled_from([None, "requires_grad", "grad_fn"]))
def test_oracle_every_printoption(a, precision, threshold, edgeitems, linewidth, profile, sci_mode, grad):
    torch = pytest.importorskip("torch")
    grad = grad if a.dtype.kind == "f" else None
    opts = dict(precision=precision, threshold=threshold, edgeitems=edgeitems, linewidth=linewidth,
                profile=profile, sci_mode=sci_mode)
    with _both_options(torch, **opts):
        assert get_printoptions() == torch._tensor_str.get_printoptions()
        assert _ours(a, grad) == _torch_str(torch, a, grad)


@pytest.mark.oracle
@given(calls=st.lists(st.fixed_dictionaries({}, optional=dict(
    precision=st.integers(0, 10), threshold=st.sampled_from([1, 50, math.inf]), edgeitems=st.integers(0, 5),
    linewidth=st.integers(10, 200), profile=st.sampled_from(["default", "short", "full", "bogus"]),
    sci_mode=st.booleans())), max_size=4))
def test_oracle_set_printoptions_sequences(calls):
    torch = pytest.importorskip("torch")
    try:
        for kwargs in calls:
            set_printoptions(**kwargs)
            torch.set_printoptions(**kwargs)
            assert get_printoptions() == torch._tensor_str.get_printoptions()
        a = np.linspace(-3, 3, 24, dtype=np.float32).reshape(2, 3, 4)
        assert tensor_repr(a) == str(torch.from_numpy(a))
    finally:
        set_printoptions(profile="default")
        torch.set_printoptions(profile="default")


@pytest.mark.oracle
@given(a=arrays(shapes=st.sampled_from([(), (), (1,), (2,), (0,), (1, 1)])),
       spec=st.sampled_from(["", ".2f", ".4f", "10.3e", ">8", "g", "+.1f", "d", ",", "%", "x"]),
       grad=st.booleans())
def test_oracle_format_spec(a, spec, grad):
    torch = pytest.importorskip("torch")
    grad = grad and a.dtype.kind == "f"
    t = torch.from_numpy(a.copy()).requires_grad_(grad)

    def outcome(fn):
        try:
            return fn()
        except (TypeError, ValueError) as e:
            return type(e)

    theirs = outcome(lambda: format(t, spec))
    ours = outcome(lambda: format_scalar(a, spec, suffixes=["requires_grad=True"] if grad else []))
    assert ours == theirs
