"""Property-testing tools for users' own layers and primitives (see docs/property_testing.md).

    from hypothesis import given
    import tinygrad_lite.testing as tlt

    @given(x=tlt.tensors(min_dims=2, max_dims=2))
    def test_my_layer(x):
        tlt.assert_gradients_match(my_layer, x)

Hypothesis is imported only when a strategy is built, so `import tinygrad_lite.testing` works without it;
building a strategy without it raises an ImportError saying how to install it.
"""
import numpy as np

from . import dtypes as _dtypes

__all__ = ["tensors", "broadcastable_shapes", "assert_gradients_match"]

_INSTALL_HINT = ("tinygrad_lite.testing needs Hypothesis for its strategies: pip install 'tinygrad_lite[testing]' "
                 "(or pip install hypothesis)")


def _hypothesis():
    try:
        import hypothesis.strategies as st
        import hypothesis.extra.numpy as hnp
    except ImportError as exc:
        raise ImportError(_INSTALL_HINT) from exc
    return st, hnp


def _check_dims(min_dims, max_dims, min_side, max_side):
    if not 0 <= min_dims <= max_dims:
        raise ValueError(f"need 0 <= min_dims <= max_dims, got min_dims={min_dims}, max_dims={max_dims}")
    if not 0 <= min_side <= max_side:
        raise ValueError(f"need 0 <= min_side <= max_side, got min_side={min_side}, max_side={max_side}")


def _default_elements(st, dtype):
    if dtype.kind == "f":
        width = 8 * dtype.itemsize
        # bounded, finite, and no subnormals: values a layer is expected to differentiate at
        return st.floats(-10.0, 10.0, allow_nan=False, allow_infinity=False, allow_subnormal=False, width=width)
    if dtype.kind == "b":
        return st.booleans()
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return st.integers(max(int(info.min), -10), min(int(info.max), 10))
    raise TypeError(f"tensors: unsupported dtype {dtype} (expected a float, integer or bool dtype)")


def tensors(shape=None, dtype=_dtypes.float64, elements=None, min_dims=0, max_dims=4, min_side=1, max_side=5,
            requires_grad=True):
    """A Hypothesis strategy for Tensors. `shape`: a tuple, a strategy of tuples, or None (drawn from
    min/max_dims and min/max_side). `elements`: a strategy for the values (default finite floats in [-10, 10]).
    Float tensors require grad when `requires_grad` (default True, float64: ready for gradcheck)."""
    st, hnp = _hypothesis()
    from .tensor import Tensor

    dt = _dtypes.to_dtype(dtype, "tensors")
    if shape is None:
        _check_dims(min_dims, max_dims, min_side, max_side)
        shape = hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side)
    elif isinstance(shape, int):
        shape = (shape,)
    if elements is None:
        elements = _default_elements(st, dt)
    arrays = hnp.arrays(dt, shape, elements=elements)
    if requires_grad and dt.kind == "f":
        return arrays.map(lambda a: Tensor(a, requires_grad=True))
    return arrays.map(lambda a: Tensor(a))


def broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, min_side=1, max_side=5):
    """A Hypothesis strategy for a tuple of `num_shapes` shapes that broadcast together (NumPy/PyTorch rules),
    e.g. ((3, 1), (4, 3, 5)). Use np.broadcast_shapes(*shapes) for the result's shape."""
    st, hnp = _hypothesis()
    if num_shapes < 1:
        raise ValueError(f"broadcastable_shapes: num_shapes must be at least 1, got {num_shapes}")
    _check_dims(min_dims, max_dims, min_side, max_side)
    return hnp.mutually_broadcastable_shapes(num_shapes=num_shapes, min_dims=min_dims, max_dims=max_dims,
                                             min_side=min_side, max_side=max_side).map(lambda b: b.input_shapes)


def assert_gradients_match(fn, *inputs, atol=1e-5, rtol=1e-3, second_order=False, **gradcheck_kwargs):
    """Assert that fn's backward agrees with finite differences for every input that requires grad (and a
    Module's parameters); raises AssertionError carrying gradcheck's report, which names the faulty tape entry.
    `second_order=True` also runs gradgradcheck. Extra keyword arguments go to gradcheck (eps, fast_mode, ...)."""
    from .gradcheck import GradcheckError, gradcheck, gradgradcheck

    try:
        gradcheck(fn, inputs, atol=atol, rtol=rtol, **gradcheck_kwargs)
        if second_order:
            gradgradcheck(fn, inputs, atol=atol, rtol=rtol, **gradcheck_kwargs)
    except GradcheckError as err:
        exc = AssertionError(str(err))
        exc.faulty_entry = err.faulty_entry
        raise exc from err
    return True
