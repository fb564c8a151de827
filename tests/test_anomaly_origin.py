"""AnomalyError: where a NaN/Inf was born (origin), why (cause, from the values), the path to where it surfaced,
and messages naming the user's line — in forward and backward, float32 and float64, inside modules and a custom
Function; a Hypothesis property over random expressions with one injected bad operation."""
import inspect

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinygrad_lite as tl
from tinygrad_lite import nn

AnomalyError = tl.autograd.AnomalyError
DTYPES = [tl.float32, tl.float64]
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


def leaf(values, dtype=tl.float64, grad=True):
    return tl.tensor(np.asarray(values, dtype=np.float64), dtype=dtype, requires_grad=grad)


def entry_of(t):
    return t.grad_fn.entry


def here():
    """The caller's line number (the line that records the op under test)."""
    return inspect.currentframe().f_back.f_lineno


def caught(fn):
    with tl.autograd.detect_anomaly():
        with pytest.raises(AnomalyError) as info:
            fn()
    return info.value


def assert_chain(err):
    """path runs from origin to entry, each step a parent of the next."""
    assert err.path[0] is err.origin and err.path[-1] is err.entry
    for a, b in zip(err.path, err.path[1:]):
        assert a in b.parents


# ----- overflow -----
@pytest.mark.parametrize("dtype", DTYPES)
def test_exp_overflow_then_inf_minus_inf_is_reported_at_the_exp(dtype):
    x = leaf([1000.0, 1.0], dtype)
    seen = {}

    def run():
        y = x.exp(); seen["line"] = here()  # noqa: E702
        seen["exp"] = entry_of(y)
        return y - y

    err = caught(run)
    assert isinstance(err, RuntimeError) and err.phase == "forward" and err.cause == "overflow"
    assert err.origin is seen["exp"] and err.entry.name == "sub"
    assert [e.name for e in err.path] == ["exp", "sub"]
    assert_chain(err)
    limit = "709.8" if dtype == tl.float64 else "88.7"
    msg = str(err)
    assert f"exp of 1000.0 overflows {np.dtype(dtype).name} above {limit}" in msg
    assert f"{__file__}:{seen['line']}" in msg and "fix:" in msg and "subtract the maximum" in msg


def test_overflow_of_a_product_is_not_told_apart_by_name_but_by_values():
    x = leaf([1e200, 2.0])
    err = caught(lambda: (x * x) - (x * x))
    assert err.cause == "overflow" and err.origin.name == "mul"
    assert "overflows float64 (largest finite" in str(err)


def test_forward_inf_is_legal_and_its_backward_inf_is_traced_to_the_overflow():
    x = leaf([1000.0, 1.0])
    with tl.autograd.detect_anomaly():
        y = x.exp()
        z = y * 2.0
        loss = z.sum()  # inf: legal in forward
        with pytest.raises(AnomalyError) as info:
            loss.backward()
    err = info.value
    assert err.phase == "backward" and err.cause == "overflow" and err.origin is entry_of(y)
    assert err.entry is entry_of(y) and err.path == [entry_of(y)]


def test_backward_inf_surfacing_downstream_of_the_overflow_has_the_whole_path():
    x = leaf([1000.0, 1.0])
    w = leaf([2.0, 3.0])
    with tl.autograd.detect_anomaly():
        y = x.exp()
        z = y * w  # d z / d w = y = inf
        with pytest.raises(AnomalyError) as info:
            z.sum().backward()
    err = info.value
    assert err.cause == "overflow" and err.origin is entry_of(y) and err.entry is entry_of(z)
    assert [e.name for e in err.path] == ["exp", "mul"]
    assert_chain(err)


# ----- invalid and divide-by-zero -----
@pytest.mark.parametrize("dtype", DTYPES)
def test_log_of_a_negative_is_invalid(dtype):
    x = leaf([-1.0, 2.0], dtype)
    err = caught(lambda: x.log())
    assert err.cause == "invalid" and err.origin is err.entry and err.origin.name == "log"
    assert "log of -1.0 has no value" in str(err)


@pytest.mark.parametrize("dtype", DTYPES)
def test_zero_over_zero_is_invalid_and_one_over_zero_then_inf_minus_inf_is_divide_by_zero(dtype):
    x = leaf([0.0, 1.0], dtype)
    assert caught(lambda: x / x).cause == "invalid"
    seen = {}

    def run():
        r = 1.0 / (x * 0.0)
        seen["div"] = entry_of(r)
        return r - r

    err = caught(run)
    assert err.cause == "divide-by-zero" and err.origin is seen["div"]
    assert "divides by zero (gives inf)" in str(err)


def test_log_of_zero_times_zero_is_divide_by_zero_at_the_log():
    x = leaf([0.0, 1.0])
    err = caught(lambda: x.log() * 0.0)
    assert err.cause == "divide-by-zero" and err.origin.name == "log" and err.entry.name == "mul"


@pytest.mark.parametrize("dtype", DTYPES)
def test_sqrt_at_zero_is_divide_by_zero_in_backward_with_the_users_line(dtype):
    x = leaf([1.0, 0.0, 4.0], dtype)
    with tl.autograd.detect_anomaly():
        r = x.sqrt(); line = here()  # noqa: E702
        with pytest.raises(AnomalyError) as info:
            (r * 3.0).sum().backward()
    err = info.value
    assert err.phase == "backward" and err.cause == "divide-by-zero" and err.origin is entry_of(r)
    assert f"{__file__}:{line}" in str(err) and "the backward of 'sqrt' at 0.0 divides by zero" in str(err)


# ----- masked branch -----
@pytest.mark.parametrize("dtype", DTYPES)
def test_where_discarding_log_at_zero_is_a_masked_branch_naming_the_where(dtype):
    x = leaf([0.0, 2.0], dtype)
    with tl.autograd.detect_anomaly():
        y = x.log()
        out = tl.where(x > 0, y, 0.0); line = here()  # noqa: E702
        assert np.isfinite(out.numpy()).all()
        with pytest.raises(AnomalyError) as info:
            out.sum().backward()
    err = info.value
    assert err.cause == "masked-branch" and err.origin is entry_of(y) and err.path == [entry_of(y)]
    msg = str(err)
    assert f"discarded by: 'where' at test_anomaly_origin.py:{line}" in msg
    assert "apply where to the input before the unsafe operation" in msg


def test_masked_overflow_has_its_origin_at_the_exp_even_when_it_surfaces_downstream():
    x = leaf([1000.0, 1.0])
    w = leaf([1.0, 1.0])
    with tl.autograd.detect_anomaly():
        y = x.exp()
        z = y * w
        out = tl.where(x < 10, z, 0.0)
        with pytest.raises(AnomalyError) as info:
            out.sum().backward()
    err = info.value
    assert err.cause == "masked-branch" and err.origin is entry_of(y) and err.entry is entry_of(z)
    assert_chain(err)
    assert "exp of 1000.0 overflows" in str(err)


def test_applying_where_to_the_input_first_fixes_the_masked_branch():
    x = leaf([0.0, 2.0])
    with tl.autograd.detect_anomaly():
        safe = tl.where(x > 0, x, 1.0)
        tl.where(x > 0, safe.log(), 0.0).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [0.0, 0.5])


# ----- bad input -----
@pytest.mark.parametrize("dtype", DTYPES)
def test_nan_in_the_data_is_an_input_cause_at_the_first_op_that_reads_it(dtype):
    model = nn.Sequential(nn.Linear(2, 1))
    if dtype == tl.float64:
        model = model.double()
    data = tl.tensor(np.array([[1.0, np.nan]]), dtype=dtype)
    err = caught(lambda: model(data)); line = here()  # noqa: E702
    assert err.cause == "input" and err.origin is err.entry and err.path == [err.entry]
    assert err.origin.name == "matmul" and err.origin.module == "0"
    msg = str(err)
    assert "already held 1 nan and 0 inf of its 2 elements: it is a constant" in msg
    assert f"{__file__}:{line}" in msg and "in module '0'" in msg


def test_inf_leaf_minus_itself_is_an_input_cause():
    x = leaf([np.inf, 1.0])
    err = caught(lambda: x - x)
    assert err.cause == "input" and "it is a leaf tensor" in str(err)


def test_a_non_finite_seed_gradient_is_an_input_cause():
    x = leaf([1.0, 2.0])
    with tl.autograd.detect_anomaly():
        y = x * 2.0
        with pytest.raises(AnomalyError) as info:
            y.backward(tl.tensor([np.nan, 1.0], dtype=tl.float64))
    assert info.value.cause == "input" and "gradient passed to backward()" in str(info.value)


# ----- modules and custom Functions -----
class Normalise(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 2)

    def forward(self, x):
        h = self.fc(x)
        return (h - 1000.0 * 0).exp() - h.exp()


def test_origin_inside_a_nested_module_names_the_module_and_the_user_line():
    model = nn.Sequential(Normalise())
    with tl.no_grad():
        model[0].fc.weight.numpy()[:] = 400.0
    x = tl.ones(2, 3)
    err = caught(lambda: model(x))
    assert err.cause == "overflow" and err.origin.name == "exp" and err.entry.name == "sub"
    assert err.origin.module == "0"
    line = inspect.getsource(Normalise.forward).splitlines().index(
        "        return (h - 1000.0 * 0).exp() - h.exp()") + Normalise.forward.__code__.co_firstlineno
    assert f"{__file__}:{line}" in str(err) and "in module '0'" in str(err)


class Reciprocal(tl.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return 1.0 / x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return -g / (x * x)


def test_custom_function_forward_and_backward_origins():
    x = leaf([0.0, 2.0])
    seen = {}

    def forward_case():
        r = Reciprocal.apply(x)
        seen["fn"] = entry_of(r)
        return r - r

    err = caught(forward_case)
    assert err.origin is seen["fn"] and err.origin.name == "Reciprocal" and err.cause == "divide-by-zero"

    z = leaf([1e-200, 2.0])
    with tl.autograd.detect_anomaly():
        r = Reciprocal.apply(z)  # 1e200: finite
        with pytest.raises(AnomalyError) as info:
            r.sum().backward()  # -1 / 1e-400 = -inf in the Function's backward
    err = info.value  # its input 1e-200 is not 0: by the values, the result is too large for float64
    assert err.origin is entry_of(r) and err.cause == "overflow" and err.path == [entry_of(r)]
    assert "the backward of 'Reciprocal' at 1e-200 overflows float64" in str(err)


def test_err_draw_marks_the_path_in_red():
    pytest.importorskip("graphviz")
    x = leaf([1000.0, 1.0])
    err = caught(lambda: x.exp() - 1.0 - x.exp())
    source = err.draw().source
    red = [line for line in source.splitlines() if "#e41a1c" in line]
    assert len(red) == len(err.path) == 3


def test_anomaly_mode_off_costs_nothing_and_does_not_raise():
    x = leaf([1000.0, 1.0])
    y = x.exp() - x.exp()
    assert np.isnan(y.numpy()[0])
    from tinygrad_lite.autograd import anomaly
    assert len(anomaly._consumers) == 0 or all(e is not entry_of(y) for e in list(anomaly._consumers.keys()))


# ----- property: one injected bad operation is the origin -----
SAFE = [lambda t: t * 0.5, lambda t: t + 1.0, lambda t: t.tanh(), lambda t: t.sin(), lambda t: t.sigmoid()]
SPREAD = [lambda t: t + 2.0, lambda t: t * 3.0, lambda t: -t, lambda t: t * t, lambda t: t.abs()]
BAD = {"overflow": lambda t: (t + 1000.0).exp(),
       "divide-by-zero": lambda t: 1.0 / (t * 0.0),
       "invalid": lambda t: (t.abs() + 1.0).neg().log()}


@settings(max_examples=40, deadline=None)
@given(before=st.lists(st.sampled_from(range(len(SAFE))), max_size=4),
       after=st.lists(st.sampled_from(range(len(SPREAD))), max_size=4),
       cause=st.sampled_from(sorted(BAD)), dtype=st.sampled_from(DTYPES),
       values=st.lists(st.floats(-2, 2), min_size=1, max_size=4))
def test_property_random_expression_reports_the_injected_operation(before, after, cause, dtype, values):
    x = leaf(values, dtype)
    seen = {}

    def run():
        t = x
        for k in before:
            t = SAFE[k](t)
        t = BAD[cause](t)
        seen["bad"] = entry_of(t)
        for k in after:
            t = SPREAD[k](t)
        return t - t

    err = caught(run)
    if cause == "invalid":  # NaN at once: raised inside the injected op, before it returned
        assert "bad" not in seen and err.origin is err.entry and err.origin.name == "log"
    else:
        assert err.origin is seen["bad"]
    assert err.cause == cause
    assert_chain(err)
    assert err.origin.source in str(err)
