"""Review s22b of session 22's changes (plan.hoist_reads, __init__._inside_replayed with hooks.replayable's
`changes`, getitem's 0-d element views): compiled calls against eager twins, bit for bit."""
import numpy as np
import pytest

import tinygrad_lite as tl

nn, F = tl.nn, tl.nn.functional
LR = tl.optim.lr_scheduler
CALLS = 10


def _batch(i):
    r = np.random.RandomState(100 + i)
    return tl.tensor(r.randn(8, 6).astype(np.float32)), tl.tensor(r.randint(0, 3, 8))


def _plain(x):
    if isinstance(x, tl.Tensor):
        return ("tensor", str(x.dtype), x.detach().numpy().tolist())
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return (type(x).__name__, x)


def _twin(make, args=_batch, calls=CALLS):
    """make() -> (step, model): the outputs (values and types) and the parameters, gradients and next random draw
    after `calls` calls, compiled and eager, must be the same; returns the compiled function's stats."""
    runs = []
    for compiled in (True, False):
        tl.manual_seed(0)
        step, model = make()
        f = tl.compile(step) if compiled else step
        outs = [_plain(f(*args(i))) for i in range(calls)]
        outs.append(_plain(tl.rand(2)))
        outs.append([_plain(p) for p in model.parameters()])
        outs.append([None if p.grad is None else _plain(p.grad) for p in model.parameters()])
        runs.append((outs, getattr(f, "stats", None)))
    (got, stats), (want, _) = runs
    assert got == want, (got, want, stats)
    return stats


def _scheduled(read):
    """A step with an SGD step and a StepLR step (halving the rate every 3 calls) that returns read(opt)."""
    def make():
        model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
        opt = tl.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        sched = LR.StepLR(opt, step_size=3, gamma=0.5)

        def step(x, y):
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            sched.step()
            return loss.item(), read(opt)
        return step, model
    return make


# The learning rates read after sched.step() through the list of groups read whole (a comprehension over
# opt.param_groups, or getattr(opt, "param_groups")[0], which the constants scan keeps as the list's contents): the
# check for values inside what a replayed call changes stopped at the list and never looked at the group dicts in it,
# so a replay returned the rate recorded (0.1 where eager's is 0.05) until the next call's guard saw the change.
@pytest.mark.parametrize("read", [lambda opt: [g["lr"] for g in opt.param_groups],
                                  lambda opt: getattr(opt, "param_groups")[0]["lr"]], ids=["comprehension", "getattr"])
def test_a_group_read_through_the_list_of_groups_after_a_scheduler_step_matches_eager(read):
    stats = _twin(_scheduled(read))
    assert stats["replays"] == 0 and "may change during the call" in stats["last_reason"], stats


def _forward(finish):
    def make():
        model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))

        def step(x, y):
            return finish(model(x), x)
        return step, model
    return make


def _outputs(finish):
    def make():
        model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
        return (lambda x, y: finish(model, x)), model
    return make


def _add_at(model, x):
    h = x * 2
    np.add.at(h, [0, 1], 5.0)  # (NumPy's in-place ufunc method, on the tensor's data)
    return h


def _multiply_out(model, x):
    h = (x * 2).sum()
    np.multiply(h, 0.0, out=h, casting="unsafe")  # (out= with another keyword: NumPy on the data)
    return h.item()


# NumPy's own functions on tensor data (an inspection such as np.argmax or np.count_nonzero, any function the library
# has no rule for such as np.median, a ufunc with out= and another keyword, np.add.at) ran unrecorded in a capture:
# a replay returned the recorded np.argmax(out) and np.median, and skipped the writes into the tensor (its values, or
# its .item(), were the unwritten ones). Such a call now runs eagerly with the reason.
@pytest.mark.parametrize("finish", [lambda out, x: np.argmax(out), lambda out, x: np.count_nonzero(out > 0),
                                    lambda out, x: np.median(out.detach())], ids=["argmax", "count_nonzero", "median"])
def test_numpys_own_functions_on_tensor_data_match_eager(finish):
    stats = _twin(_forward(finish))
    assert stats["replays"] == 0 and "NumPy's own function" in stats["last_reason"], stats


@pytest.mark.parametrize("finish", [_add_at, _multiply_out], ids=["add.at", "out="])
def test_numpy_writes_into_tensor_data_match_eager(finish):
    stats = _twin(_outputs(finish))
    assert stats["replays"] == 0 and "NumPy's own function" in stats["last_reason"], stats


# np.shape and the other functions that read no values still replay.
def test_numpy_shape_of_a_tensor_still_replays():
    stats = _twin(_forward(lambda out, x: (np.shape(out), np.ndim(out), out.sum().item())))
    assert stats["replays"] == CALLS - 1, stats


def _x(requires_grad=True):
    return tl.tensor(np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], np.float32), requires_grad=requires_grad)


def _write_element(y):
    y[1, 1].zero_()


def _write_slice(y):
    y[1:2, 1].zero_()


def _write_other_element(y):
    y[0, 1].mul_(2)


# A write through a view (an element x[i, j], a 0-d view since session 22, or a slice) under no_grad changed the
# memory of a tensor a recorded operation had saved, but only the view's version went up: backward then computed a
# gradient from the changed values (x.grad[1, 1] 0.0, not 20.0) where PyTorch refuses, its version counter being shared
# by a tensor and its views. A view now counts its writes in the version of the tensor it views.
@pytest.mark.parametrize("write", [_write_element, _write_slice], ids=["element", "slice"])
def test_a_write_through_a_view_of_a_saved_tensor_refuses_backward(write):
    x = _x()
    y = x * 2
    z = (y * y).sum()  # saves y
    with tl.no_grad():
        write(y)
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        z.backward()


def test_a_parameters_element_updated_after_the_forward_refuses_backward():
    """`w[0, 1].sub_(0.1)` under no_grad between the forward and backward: PyTorch refuses."""
    w = _x()
    z = (w * w).sum()
    with tl.no_grad():
        w[0, 1].sub_(0.1)
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        z.backward()


def test_a_saved_element_written_through_another_element_view_refuses_backward():
    x = _x()
    y = x * 2
    e = y[0, 1]
    z = e * e  # saves e
    with tl.no_grad():
        _write_other_element(y)  # (another view of the same element)
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        z.backward()


def test_a_write_through_an_element_view_counts_in_the_tensors_version():
    x = _x(False)
    v = x._version
    x[0, 1].add_(1)
    assert x._version == v + 1 and x[0, 1].item() == 3.0


# Gradients through x[i, j] (negative indices, chained x[1][2]) are PyTorch's.
def test_gradients_through_elements_match_pytorch():
    x = _x()
    z = x[-1, -2] * x[0, 0] + x[1][2] * 3
    z.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[5.0, 0, 0], [0, 1.0, 3.0]])
