"""gradcheck/gradgradcheck basics: PyTorch's semantics, the report, options, and leaving the caller's state alone."""
import warnings

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite.gradcheck import GradcheckError, GradcheckKinkWarning, gradcheck, gradgradcheck


def leaf(*shape, seed=0, dtype=np.float64):
    return tl.tensor(np.random.default_rng(seed).standard_normal(shape).astype(dtype), requires_grad=True)


class HalfWrongMul(tl.autograd.Function):
    """a * b whose gradient for b (only) is doubled."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        return g * b, g * a * 2.0


def test_smooth_functions_pass_with_tuple_inputs_outputs_and_passthrough_args():
    a, b = leaf(2, 3), leaf(3, seed=1)
    assert gradcheck(lambda a, b: (a * b).tanh().sum(1), (a, b)) is True
    assert gradcheck(lambda x: x.exp(), a) is True
    assert gradcheck(lambda a, k, b: (a.sin() * k, (a @ b).sigmoid()), (a, 3.0, b)) is True
    assert gradgradcheck(lambda a, b: ((a * b).tanh().sum(1), b.exp()), (a, b)) is True


def test_only_inputs_requiring_grad_are_checked():
    a = leaf(3)
    frozen = tl.tensor(np.ones(3))  # would fail if its gradient were checked: the Function doubles it
    assert gradcheck(lambda a, b: HalfWrongMul.apply(a, b), (a, frozen))


def test_wrong_gradient_for_one_input_is_attributed_to_that_input():
    a, b = leaf(2, 3), leaf(2, 3, seed=1)
    with pytest.raises(GradcheckError) as info:
        gradcheck(lambda a, b: HalfWrongMul.apply(a, b), (a, b))
    err = info.value
    assert [(m.out_pos, m.leaf.position, m.leaf.name) for m in err.mismatches] == [(0, 1, "b")]
    msg = str(err)
    assert "output 0 (shape (2, 3)) with respect to input 1 ('b')" in msg
    assert "input 0" not in msg.split("Faulty entry")[0]
    assert "b[" in msg and "analytical" in msg and "rel err" in msg
    assert err.faulty_entry is not None and err.faulty_entry.name == "HalfWrongMul"
    assert err.faulty_entry.input_index == 1


def test_error_type_raise_exception_false_and_public_names():
    assert issubclass(GradcheckError, RuntimeError)
    assert tl.GradcheckError is GradcheckError
    a, b = leaf(3), leaf(3, seed=1)
    assert gradcheck(lambda a, b: HalfWrongMul.apply(a, b), (a, b), raise_exception=False) is False
    assert gradgradcheck(lambda a, b: HalfWrongMul.apply(a, b).sin(), (a, b), raise_exception=False) in (True, False)
    # importing the submodule binds tl.gradcheck to it; it must stay callable
    import tinygrad_lite.gradcheck  # noqa: F401
    assert tl.gradcheck(lambda x: x.sin(), a) is True
    assert tl.gradgradcheck(lambda x: x.sin(), a) is True


def test_report_table_rows_are_the_worst_elements_with_multi_indices():
    x = leaf(2, 2)

    class WrongAt(tl.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 1.0

        @staticmethod
        def backward(ctx, g):
            bump = np.zeros(g.shape)
            bump[1, 0] = 5.0  # element [1, 0] gets a wrong gradient, far off
            bump[0, 1] = 0.5
            return g + tl.tensor(bump) * g

    with pytest.raises(GradcheckError) as info:
        gradcheck(WrongAt.apply, x)
    lines = str(info.value).splitlines()
    head = next(i for i, line in enumerate(lines) if line.strip().startswith("element"))
    rows = [line.split() for line in lines[head + 1:head + 3]]
    assert rows[0][:3] == ["inputs[0][1,", "0]", "[1,"]  # the worst first, named by multi-index
    assert rows[1][:2] == ["inputs[0][0,", "1]"]
    assert "2 of 16 Jacobian elements fail" in str(info.value)
    assert "atol >= " in str(info.value) and "rtol >= " in str(info.value)


def test_which_tolerance_failed_is_atol_where_numerical_is_zero():
    x = leaf(3)

    class Leaky(tl.autograd.Function):  # true derivative 0, reported 1e-3: only atol can cover it
        @staticmethod
        def forward(ctx, x):
            return x * 0.0

        @staticmethod
        def backward(ctx, g):
            return g * 1e-3

    with pytest.raises(GradcheckError) as info:
        gradcheck(Leaky.apply, x)
    msg = str(info.value)
    assert msg.splitlines()[3].rstrip().endswith("atol")
    assert "no rtol" in msg
    assert gradcheck(Leaky.apply, x, atol=2e-3)


def test_eps_from_dtype_and_float32_warning():
    x32 = leaf(3, dtype=np.float32)
    with pytest.warns(UserWarning, match=r"float32.*\.double\(\)"):
        assert gradcheck(lambda x: x * 2.0, x32, atol=1e-3, rtol=1e-2)
    with pytest.raises(GradcheckError, match=r"eps=0.001"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gradcheck(lambda a, b: HalfWrongMul.apply(a, b), (x32, leaf(3, dtype=np.float32)))
    with pytest.raises(GradcheckError, match=r"eps=1e-06"):
        gradcheck(lambda a, b: HalfWrongMul.apply(a, b), (leaf(3), leaf(3)))
    with pytest.raises(GradcheckError, match=r"eps=0.0001"):
        gradcheck(lambda a, b: HalfWrongMul.apply(a, b), (leaf(3), leaf(3)), eps=1e-4)


def test_input_data_restored_exactly_and_readonly_arrays_handled():
    x = leaf(3, 4)
    arr = x.numpy()
    snapshot = arr.copy()
    gradcheck(lambda x: (x * x).sum(0), x)
    assert x.numpy() is arr and np.array_equal(arr, snapshot) and x.grad is None
    ro = np.random.default_rng(1).standard_normal(4)
    ro.setflags(write=False)
    y = tl.from_numpy(ro).requires_grad_()  # (tl.tensor would copy it into a writable array)
    assert gradcheck(lambda y: y.sin(), y)
    assert y.numpy() is ro and not ro.flags.writeable


def test_no_input_requiring_grad_is_an_error():
    with pytest.raises(ValueError, match="require gradient"):
        gradcheck(lambda x: x * 2, tl.tensor(np.ones(3)))


def test_detached_output_that_depends_on_input_fails_with_a_hint():
    x = leaf(3)
    with pytest.raises(GradcheckError, match="does not require grad"):
        gradcheck(lambda x: (x.sin(), tl.tensor(x.numpy() * 2.0)), x)


def test_nondeterministic_backward_is_not_reentrant():
    counter = [0]

    class Noisy(tl.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2.0

        @staticmethod
        def backward(ctx, g):
            counter[0] += 1
            return g * (2.0 + 1e-9 * counter[0])

    x = leaf(3)
    with pytest.raises(GradcheckError, match="not reentrant"):
        gradcheck(Noisy.apply, x)
    assert gradcheck(Noisy.apply, x, nondet_tol=1e-6)


def test_check_undefined_grad_requires_zero_gradients_for_zero_upstream():
    class OnesForZeros(tl.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 3.0

        @staticmethod
        def backward(ctx, g):
            return g * 3.0 if np.any(g.numpy() != 0) else tl.tensor(np.ones(g.shape))

    x = leaf(2)
    with pytest.raises(GradcheckError, match="zero gradient"):
        gradcheck(OnesForZeros.apply, x)
    assert gradcheck(OnesForZeros.apply, x, check_undefined_grad=False)


def test_unsupported_options_say_so():
    with pytest.raises(NotImplementedError, match="check_forward_ad"):
        gradcheck(lambda x: x, leaf(2), check_forward_ad=True)


def test_fast_mode_passes_big_smooth_and_catches_wrong_backward():
    x, w = leaf(6, 20), leaf(20, 30, seed=1)
    assert gradcheck(lambda x, w: (x @ w).tanh(), (x, w), fast_mode=True)

    class SlightlyWrongSin(tl.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x.sin()

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * x.cos() * 1.05

    with pytest.raises(GradcheckError, match="Fast mode") as info:
        gradcheck(lambda x, w: SlightlyWrongSin.apply(x @ w), (x, w), fast_mode=True)
    assert info.value.faulty_entry.name == "SlightlyWrongSin"


def test_randomness_is_reseeded_per_call_and_the_callers_rng_restored():
    x = leaf(50)
    rng_before = tl.random.get_rng()

    def dropout_like(x):
        keep = tl.random.get_rng().random(x.shape) > 0.5
        return x * tl.tensor(keep.astype(np.float64)) * 2.0

    assert gradcheck(dropout_like, x)
    assert tl.random.get_rng() is rng_before
    with pytest.raises(GradcheckError):
        gradcheck(dropout_like, x, seed=None)  # a fresh mask per call: finite differences are meaningless


def test_params_are_checked_by_name():
    w = tl.tensor(np.random.default_rng(3).standard_normal((3, 2)), requires_grad=True)
    x = leaf(4, 3)
    with pytest.raises(GradcheckError) as info:
        gradcheck(lambda x: HalfWrongMul.apply(x, w.sum(1)), x, params={"proj.weight": w})
    assert info.value.mismatches[0].leaf.name == "proj.weight"
    assert "parameter 'proj.weight'" in str(info.value)
    assert "proj.weight[" in str(info.value)


def test_gradgradcheck_random_and_given_grad_outputs():
    a = leaf(3, 2)
    f = lambda a: (a.sin() * a, a.sum())  # noqa: E731
    assert gradgradcheck(f, a)
    assert gradgradcheck(f, a, gen_non_contig_grad_outputs=True)
    go = (tl.tensor(np.ones((3, 2)), requires_grad=True), tl.tensor(np.array(2.0), requires_grad=True))
    assert gradgradcheck(f, a, grad_outputs=go)
    with pytest.raises(ValueError, match="grad_outputs"):
        gradgradcheck(f, a, grad_outputs=go[:1])


def test_kink_elements_warn_instead_of_failing():
    x = tl.tensor(np.array([-1.0, 0.0, 2.0]), requires_grad=True)
    pattern = r"(?s)near a kink.*x\[1\] .*'relu' recorded at test_gradcheck.py:\d+"
    with pytest.warns(GradcheckKinkWarning, match=pattern):
        assert gradcheck(lambda x: x.relu() * 3.0, x)
