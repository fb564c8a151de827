"""Review s26b of tl.compile: what users do to optimizers and schedulers between compiled calls and inside them,
each compiled step against its eager twin (the same seed, the same batches), bit for bit: the returned values, the
parameters, their gradients, the optimizer's state and the scheduler's."""
import copy
import warnings

import numpy as np
import pytest

import tinygrad_lite as tl
from tests._compile_common import batches, mlp, train_step

F = tl.nn.functional
S = tl.optim.lr_scheduler


def _state(model, opt, sched):
    out = [p.numpy().copy() for p in model.parameters()]
    out += [np.array("none") if p.grad is None else p.grad.numpy().copy() for p in model.parameters()]
    for st in opt.state.values():
        out += [np.asarray(v.numpy() if isinstance(v, tl.Tensor) else v).copy() for v in st.values()]
    out.append(np.array(repr([g["lr"] for g in opt.param_groups])))
    out.append(np.array(repr(sorted((k, v) for k, v in sched.state_dict().items() if not callable(v)))))
    return out


def _twins(make_sched, step_of, between=None, args=lambda i: (), calls=10):
    """[(compiled call's result and state, eager call's)] per call, and the compiled function's stats."""
    runs = {}
    for compiled in (True, False):
        tl.manual_seed(0)
        model = mlp()
        opt = tl.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        sched = make_sched(opt)
        fn = step_of(model, opt, sched)
        f = tl.compile(fn) if compiled else fn
        seen = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", tl.CompileWarning)
            for i, (x, y) in enumerate(batches(calls)):
                if between is not None:
                    between(i, opt, sched)
                out = f(tl.tensor(x), tl.tensor(y), *args(i))
                seen.append((np.array(repr(out)), _state(model, opt, sched)))
        runs[compiled] = (seen, getattr(f, "stats", None))
    return list(zip(runs[True][0], runs[False][0])), runs[True][1]


def _assert_same(pairs):
    for i, ((out_c, state_c), (out_e, state_e)) in enumerate(pairs):
        assert out_c == out_e, f"call {i}: returned {out_c} where eager returned {out_e}"
        assert len(state_c) == len(state_e)
        for j, (a, b) in enumerate(zip(state_c, state_e)):
            assert a.dtype == b.dtype and np.array_equal(a, b), f"call {i}: state array {j} differs"


def _plateau_step(model, opt, sched):
    def step(x, y, metric):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        sched.step(metric)
        return loss.item()
    return step


# ---------------- 1. ReduceLROnPlateau.step inside the compiled step ----------------
# Its step was not a replayable method (every other scheduler's is): its Python (last_epoch += 1, best, the
# bad-epoch count, the reduced learning rate) ran inside the recording and was not re-run by a replay. Each call
# recorded a new variant while last_epoch moved (its settings are guarded), but once the scheduler's state came back
# to a recorded one (load_state_dict of a checkpoint, `sched.last_epoch = 0`), the replays left the scheduler and the
# learning rate as they were, forever.

def test_plateau_stepped_inside_after_its_state_dict_is_loaded_back_matches_eager():
    saved = {}

    def between(i, opt, sched):
        if i == 2:
            saved["sd"] = copy.deepcopy(sched.state_dict())
        if i == 6:  # back to a checkpoint: the state the call at i == 2 was recorded with
            sched.load_state_dict(saved["sd"])

    pairs, stats = _twins(lambda opt: S.ReduceLROnPlateau(opt, patience=0, factor=0.5), _plateau_step, between,
                          args=lambda i: (3.0,))
    _assert_same(pairs)


def test_plateau_stepped_inside_with_the_loss_tensor_replays_as_eager():
    def step_of(model, opt, sched):
        def step(x, y):
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            sched.step(loss)  # (its float() is the replayed step's own: each call's loss)
            return loss.item(), sched.get_last_lr()
        return step

    pairs, stats = _twins(lambda opt: S.ReduceLROnPlateau(opt, patience=1, factor=0.5, threshold=0.5), step_of)
    _assert_same(pairs)
    assert stats["replays"] == 9, stats  # (it ran eagerly: float(loss) was a read used after the optimizer's step)
    assert pairs[-1][1][1][-2].item() != "[0.1]"  # (the learning rate was reduced on the way)


# ---------------- 2. a scheduler made inside the compiled function ----------------
# An optimizer made inside makes the call run eagerly (`_made_during`); a scheduler did not: its constructor's initial
# step and its step() were replayed on the recorded scheduler, whose epoch went on counting where each eager call
# starts a new scheduler at epoch 0 (LambdaLR's 1 / (epoch + 1) gave lr / (k + 2) at replay k, not lr / 2; OneCycleLR
# raised "Tried to step 6 times" in a replay that eager never raises).

@pytest.mark.parametrize("make", [
    lambda opt: S.LambdaLR(opt, lambda e: 1.0 / (e + 1)),
    lambda opt: S.OneCycleLR(opt, 0.5, total_steps=5),
    lambda opt: S.SequentialLR(opt, [S.ConstantLR(opt, 0.5, 1), S.ExponentialLR(opt, 0.9)], [1]),
    lambda opt: S.ReduceLROnPlateau(opt, patience=0, factor=0.5),
], ids=["LambdaLR", "OneCycleLR", "SequentialLR", "ReduceLROnPlateau"])
def test_a_scheduler_made_inside_the_function_runs_eagerly_as_eager(make):
    def step_of(model, opt, outer):
        def step(x, y):
            sched = make(opt)
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            for _ in range(2):
                sched.step(1.0) if isinstance(sched, S.ReduceLROnPlateau) else sched.step()
            return loss.item()
        return step

    pairs, stats = _twins(lambda opt: S.StepLR(opt, 100), step_of)
    _assert_same(pairs)
    assert stats["replays"] == 0 and "made inside the function" in stats["last_reason"], stats


# ---------------- 3. a module's buffer rebound between calls ----------------
# Parameters were guarded by identity (`model.fc.weight = nn.Parameter(...)` records again), buffers were not: after
# `bn.running_mean = tl.zeros(8)` (or running_var, a loss's class weights, reached through a container) the replays
# kept reading and updating the recorded tensor, which the module no longer holds: the running statistics the
# module holds stayed zeros in training, and in eval mode the output used the old statistics.

def _bn_model():
    return tl.nn.Sequential(tl.nn.Linear(5, 8), tl.nn.BatchNorm1d(8), tl.nn.ReLU(), tl.nn.Linear(8, 3))


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_a_batchnorm_buffer_rebound_between_calls_is_used_as_eager(mode):
    runs = {}
    for compiled in (True, False):
        tl.manual_seed(0)
        model = _bn_model()
        opt = tl.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        step = train_step(model, opt)
        f = tl.compile(step) if compiled else step
        seen = []
        for i, (x, y) in enumerate(batches(10)):
            if i == 3 and mode == "eval":
                model.eval()
            if i in (5, 7):
                bn = model[1]
                bn.running_mean = tl.tensor(np.full(8, 0.1 * i, np.float32))
                bn.running_var = tl.tensor(np.full(8, 1.0 + i, np.float32))
            loss = f(tl.tensor(x), tl.tensor(y))
            seen.append([np.array(loss)] + [v.numpy().copy() for v in model.state_dict().values()])
        runs[compiled] = seen
    for i, (got, want) in enumerate(zip(runs[True], runs[False])):
        for j, (a, b) in enumerate(zip(got, want)):
            assert a.dtype == b.dtype and np.array_equal(a, b), f"call {i}: array {j} differs"


# ---------------- 4. a value the step reads and changes itself: an item stored, a hyperparameter set inside ----------
# The constants scan guards what the step reads (a dict or a list read whole, an optimizer's param_groups iterated)
# by its value before the recording call; an item the step stores into such a container (`g["lr"] = lr`,
# `flag["on"] = not flag["on"]`) is no attribute store, so it did not make the call run eagerly. A replay, which
# runs no Python, from the state the recording call started from then left the container as it found it, where the
# eager call changes it: a toggle stayed put after two calls, a learning rate set inside the step stayed at the value
# an outside edit gave it. Now a record whose call changed what its guards read runs eagerly from that state.

_FLAG = {"on": False}


def _toggling(x):
    _FLAG["on"] = not _FLAG["on"]
    return x * (2.0 if _FLAG["on"] else 3.0)


def test_a_step_that_toggles_a_global_flag_is_never_replayed_stale():
    runs = {}
    for compiled in (True, False):
        _FLAG["on"] = False
        f = tl.compile(_toggling) if compiled else _toggling
        runs[compiled] = [(f(tl.tensor(np.ones(2, np.float32))).numpy().tolist(), _FLAG["on"]) for _ in range(8)]
    assert runs[True] == runs[False]


@pytest.mark.parametrize("how", ["loop over groups from an argument", "one group, a constant", "momentum"])
def test_a_hyperparameter_set_inside_the_step_after_an_outside_edit_is_set_again(how):
    def step_of(model, opt, sched):
        def step(x, y, lr):
            if how == "loop over groups from an argument":
                for g in opt.param_groups:
                    g["lr"] = lr
            elif how == "one group, a constant":
                opt.param_groups[0]["lr"] = 0.05
            else:
                g = opt.param_groups[0]
                g["momentum"] = 0.5
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            return loss.item()
        return step

    def between(i, opt, sched):
        if i in (4, 6):  # an edit outside (a hand-set rate, a scheduler stepped outside the compiled function)
            opt.param_groups[0]["lr"] = 0.5
            opt.param_groups[0]["momentum"] = 0.9

    pairs, stats = _twins(lambda opt: S.StepLR(opt, 1000), step_of, between, args=lambda i: (0.1,))
    _assert_same(pairs)
    assert stats["replays"] >= 5, stats  # (the calls from the step's own state still replay)


# ---------------- 5. `del p.grad` ----------------
# PyTorch's `del p.grad` sets the gradient to None; here it raised AttributeError ("property 'grad' of 'Parameter'
# object has no deleter"), between compiled calls and inside them.

def test_del_grad_sets_it_to_none_between_and_inside_compiled_calls():
    runs = {}
    for compiled in (True, False):
        tl.manual_seed(0)
        model = mlp()
        opt = tl.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

        def step(x, y):
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            del model[0].bias.grad  # (this one starts every step from zero)
            return loss.item()

        f = tl.compile(step) if compiled else step
        seen = []
        for i, (x, y) in enumerate(batches(8)):
            if i in (3, 5):
                del model[0].weight.grad
            loss = f(tl.tensor(x), tl.tensor(y))
            seen.append([np.array(loss)] + [p.numpy().copy() for p in model.parameters()] +
                        [np.array("none") if p.grad is None else p.grad.numpy().copy() for p in model.parameters()])
        runs[compiled] = seen
        assert model[0].bias.grad is None
    for i, (got, want) in enumerate(zip(runs[True], runs[False])):
        for j, (a, b) in enumerate(zip(got, want)):
            assert a.dtype == b.dtype and np.array_equal(a, b), f"call {i}: array {j} differs"
