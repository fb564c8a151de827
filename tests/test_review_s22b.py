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
