"""Adversarial review (session 13) of the debugging tools: detect_anomaly's origin/cause/message on compositions
that overflow, saturate, mask or read a bad parameter; gradcheck on functions whose Jacobian is NaN or whose
output it cannot see; the degenerate reductions (mean of nothing, var without degrees of freedom) whose NaN/Inf
anomaly mode reports. Oracle: PyTorch where it has the feature."""
import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite import nn

from test_anomaly_origin import caught, here

AnomalyError = tl.autograd.AnomalyError
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


def leaf(values, dtype=tl.float64):
    return tl.tensor(np.asarray(values, dtype=np.float64), dtype=dtype, requires_grad=True)




# ----- detect_anomaly -----
# defect: a NaN from exp's VJP (0 * inf) after a forward overflow was called 'masked-branch' with "discarded by:
# 'add'" whenever the incoming gradient was 0, though no where/mask discarded anything: a saturated derivative
# (log(1 + inf), 1 / inf, sigmoid(inf)) made the 0; the cause is the overflow.
@pytest.mark.parametrize("dtype", [tl.float32, tl.float64])
@pytest.mark.parametrize("after", ["softplus", "reciprocal", "sigmoid"])
def test_saturated_derivative_after_an_overflow_is_an_overflow_not_a_masked_branch(dtype, after):
    x = leaf([1000.0, 1.0], dtype)
    seen = {}

    def run():
        y = x.exp(); seen["line"] = here()  # noqa: E702
        seen["exp"] = y.grad_fn.entry
        z = {"softplus": lambda: (1 + y).log(), "reciprocal": lambda: 1 / y, "sigmoid": lambda: y.sigmoid()}[after]()
        z.sum().backward()

    err = caught(run)
    assert err.phase == "backward" and err.cause == "overflow", str(err)
    assert err.origin is seen["exp"] and err.entry is seen["exp"]
    msg = str(err)
    assert f"recorded at {__file__}:{seen['line']}" in msg and "exp of 1000.0 overflows" in msg
    assert "discarded by" not in msg and "apply where to the input" not in msg


def test_a_value_discarded_by_slicing_or_a_zero_mask_stays_a_masked_branch():
    x = leaf([1000.0, 1.0])
    err = caught(lambda: x.exp()[1:].sum().backward())
    assert err.cause == "masked-branch" and err.origin.name == "exp" and "discarded by: 'getitem'" in str(err)
    x = leaf([0.0, 4.0])  # sqrt(0) is finite, its derivative is not: loss * mask with the mask 0 there
    err = caught(lambda: (x.sqrt() * tl.tensor([0.0, 1.0], dtype=tl.float64)).sum().backward())
    assert err.cause == "masked-branch" and err.origin.name == "sqrt" and "discarded by: 'mul'" in str(err)


# defect: a NaN already in a parameter was reported as "it is a leaf tensor" (at the Linear's internal transpose)
# without saying which parameter; the scope's module knows its dotted name.
def test_a_nan_parameter_is_named_by_its_dotted_path():
    class Inner(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 2)

        def forward(self, x):
            return self.lin(x).tanh()

    model = nn.Sequential(nn.Linear(2, 2), Inner()).double()
    with tl.no_grad():
        model[1].lin.weight[0, 1] = float("nan")
    err = caught(lambda: model(tl.ones(1, 2, dtype=tl.float64)))
    assert err.cause == "input" and err.phase == "forward"
    assert "it is the parameter '1.lin.weight' (a leaf tensor)" in str(err)
    # an input that requires grad but is no parameter keeps the plain description
    x = leaf([np.nan, 1.0])
    err = caught(lambda: model(x.reshape(1, 2)))
    assert err.cause == "input" and "it is a leaf tensor" in str(err)


def test_minus_inf_masks_before_softmax_do_not_raise_and_give_pytorchs_gradient(torch):
    scores = np.array([[1.0, 2.0, 3.0], [0.5, -1.0, 2.0]])
    mask = np.array([[False, False, True], [True, False, False]])
    x = leaf(scores)
    with tl.autograd.detect_anomaly():
        p = tl.nn.functional.softmax(x.masked_fill(tl.tensor(mask), float("-inf")), dim=-1)
        (p * tl.tensor([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]], dtype=tl.float64)).sum().backward()
    tx = torch.tensor(scores, requires_grad=True)
    tp = torch.softmax(tx.masked_fill(torch.tensor(mask), float("-inf")), dim=-1)
    (tp * torch.tensor([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]], dtype=torch.float64)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-12, atol=1e-15)


# defect: mean over no elements and var/std without degrees of freedom multiplied by a NaN constant, so anomaly
# mode blamed "a constant ... clean it first" (the user's data); and var with correction >= N of spread values
# gave NaN where PyTorch divides by max(0, N - correction) and gives inf.
def test_var_without_degrees_of_freedom_divides_by_zero_as_pytorch(torch):
    for values, correction in [([1.0, 2.0], 2), ([1.0, 2.0], 3), ([1.0], 1), ([3.0, 3.0], 2)]:
        ours = tl.tensor(values, dtype=tl.float64).var(correction=correction).item()
        ref = torch.tensor(values, dtype=torch.float64).var(correction=correction).item()
        assert (np.isnan(ours) and np.isnan(ref)) or ours == ref, (values, correction, ours, ref)
        ours = tl.tensor(values, dtype=tl.float64).std(correction=correction).item()
        ref = torch.tensor(values, dtype=torch.float64).std(correction=correction).item()
        assert (np.isnan(ours) and np.isnan(ref)) or ours == ref, (values, correction, ours, ref)
    assert np.isnan(tl.zeros(0, 2).mean().item()) and np.isnan(tl.zeros(0, 2).mean(0).numpy()).all()


def test_anomaly_names_the_zero_over_zero_of_a_degenerate_mean_or_var():
    for reduce in (lambda x: x.var(), lambda x: x.std(), lambda x: x[:0].mean()):
        x = leaf([1.0])
        seen = {}

        def run():
            seen["line"] = here(); reduce(x)  # noqa: E702

        err = caught(run)
        assert err.cause == "invalid" and err.origin.name == "div", str(err)
        assert "div of (0.0, 0.0)" in str(err) and "a constant" not in str(err)


# ----- gradcheck -----
# defect: a Jacobian with NaN at the same place in both backward passes (sqrt of a negative) was reported as
# "backward is not reentrant ... differ by nan" (NaN != NaN in the reentrancy check) instead of the Jacobian
# mismatch that PyTorch reports.
def test_a_nan_jacobian_is_a_mismatch_not_a_reentrancy_failure(torch):
    x = leaf([-1.0, 1.0])
    with pytest.raises(tl.GradcheckError) as info:
        tl.gradcheck(lambda t: t.sqrt(), (x,))
    msg = str(info.value)
    assert "not reentrant" not in msg and "Jacobian mismatch" in msg and "NaN" in msg
    with pytest.raises(RuntimeError, match="Jacobian mismatch"):
        torch.autograd.gradcheck(lambda t: t.sqrt(), (torch.tensor([-1.0, 1.0], dtype=torch.float64,
                                                                   requires_grad=True),))
    assert tl.gradcheck(lambda t: t.sqrt(), (x,), raise_exception=False) is False


def test_a_truly_nondeterministic_backward_is_still_not_reentrant():
    rng = np.random.default_rng(0)

    class Noisy(tl.autograd.Function):
        @staticmethod
        def forward(ctx, t):
            return t * 2

        @staticmethod
        def backward(ctx, g):
            return g * (2 + rng.uniform(0.1, 0.2))

    with pytest.raises(tl.GradcheckError, match="not reentrant"):
        tl.gradcheck(lambda t: Noisy.apply(t), (leaf([1.0, 2.0]),))


# defect: a function returning something gradcheck cannot see (a dict, a Python float from .item(), None) passed
# vacuously (True: no float Tensor outputs, nothing compared); PyTorch fails on such outputs too.
@pytest.mark.parametrize("fn", [lambda t: {"y": t * 2}, lambda t: (t * t).sum().item(), lambda t: None,
                                lambda t: (t * 2, None)], ids=["dict", "item", "none", "tuple-with-none"])
def test_gradcheck_refuses_outputs_it_cannot_check(fn):
    with pytest.raises(TypeError, match="must return a Tensor"):
        tl.gradcheck(fn, (leaf([1.0, 2.0]),))
    with pytest.raises(TypeError, match="must return a Tensor"):
        tl.gradgradcheck(fn, (leaf([1.0, 2.0]),))


def test_integer_outputs_and_list_outputs_are_still_accepted(torch):
    x = leaf([1.0, 2.0])
    assert tl.gradcheck(lambda t: [t * 2, t.exp(), tl.tensor([1, 2])], (x,))
    tx = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: [t * 2, t.exp(), torch.tensor([1, 2])], (tx,))


# defect (same root cause): outputs nested in a tuple, as an LSTM's (out, (h, c)), were skipped unchecked, so a
# wrong backward of h or c passed; they are flattened in order and checked as outputs 1, 2, ...
def test_nested_outputs_are_checked_too():
    class Twice(tl.autograd.Function):
        @staticmethod
        def forward(ctx, t):
            return t * 2

        @staticmethod
        def backward(ctx, g):
            return g * 3  # wrong: 2

    x = leaf([1.0, 2.0])
    with pytest.raises(tl.GradcheckError, match="output 2") as info:
        tl.gradcheck(lambda t: (t.exp(), (t * 2, Twice.apply(t))), (x,))
    assert info.value.faulty_entry.entry.name == "Twice"
    lstm = nn.LSTM(3, 2, batch_first=True)
    assert tl.gradcheck(lstm, (leaf(np.random.default_rng(0).normal(size=(1, 2, 3))),))
