"""Review of session 22 (a read a tensor operation takes is its input, observe.read_slot; a scheduler's
get_last_lr() read again by each replay, hooks.live_numbers): compiled calls against eager twins, bit for bit."""
import numpy as np

import tinygrad_lite as tl

LR = tl.optim.lr_scheduler
CALLS = 12


def _twin(make, inputs, calls=CALLS):
    """make() -> (step, state): the outputs (values and types, tensors with their dtypes) and the final state of
    `calls` calls, compiled and eager; asserts they are the same and returns the compiled function's stats."""
    runs = []
    for compiled in (True, False):
        tl.manual_seed(0)
        step, state = make()
        f = tl.compile(step) if compiled else step
        outs = [_plain(f(*inputs(i))) for i in range(calls)]
        runs.append((outs, _plain(state()), getattr(f, "stats", None)))
    (got, got_state, stats), (want, want_state, _) = runs
    assert _same(got, want), (got, want, stats)
    assert _same(got_state, want_state), (got_state, want_state)
    return stats


def _plain(x):
    if isinstance(x, tl.Tensor):
        return ("tensor", str(x.dtype), x.detach().numpy().copy())
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return (type(x).__name__, x)


def _same(a, b):
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if a[0] == "tensor":
        return b[0] == "tensor" and a[1] == b[1] and np.array_equal(a[2], b[2])
    return a == b


def _ints(i):
    return (tl.tensor(np.arange(3, dtype=np.int64) + i),)


# A learning rate that is an int for the first epochs and a float after (lr=1, a factor 1 then 0.5), taken by an
# operation on an integer tensor: eager's result is int64 first, float32 after. The replay passed the new float to
# the recorded int64 step (the number is each call's own, read again): a float64 result. Now a number of a library
# object's state that an integer or bool tensor takes is guarded by value (its type decides the result's dtype).
def test_a_learning_rate_whose_type_changes_taken_by_an_integer_tensor_matches_eager():
    for dtype in (np.int64, np.bool_):
        def make():
            w = tl.tensor(np.ones(3, np.float32), requires_grad=True)
            opt = tl.optim.SGD([w], lr=1)
            sched = LR.LambdaLR(opt, lambda e: 1 if e < 3 else 0.5)

            def step(x):
                lr = sched.get_last_lr()[0]
                y = x * lr
                sched.step()
                return y, lr
            return step, lambda: [opt.param_groups[0]["lr"], sched.last_epoch]
        _twin(make, lambda i: (tl.tensor((np.arange(3) + i).astype(dtype)),))


# (the same learning rate with a float tensor: its type does not change the result, so it stays each call's own)
def test_a_learning_rate_whose_type_changes_taken_by_a_float_tensor_replays():
    def make():
        w = tl.tensor(np.ones(3, np.float32), requires_grad=True)
        opt = tl.optim.SGD([w], lr=1)
        sched = LR.LambdaLR(opt, lambda e: 1 if e < 3 else 0.5)

        def step(x):
            y = x * sched.get_last_lr()[0]
            sched.step()
            return y
        return step, lambda: [opt.param_groups[0]["lr"]]
    stats = _twin(make, lambda i: (tl.tensor(np.arange(3, dtype=np.float32) + i),))
    assert stats["traces"] == 1 and stats["replays"] == CALLS - 1, stats
