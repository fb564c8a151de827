"""Review s27b: what a fine-tuning or long-training user does BETWEEN calls of a compiled training step (zero_grad,
forward, loss, backward, optimizer step inside the compiled function). Each probe builds two identical models and
optimizers from one seed, runs the step eagerly on one and through tl.compile on the other with the same batches
(and the same random seed before each call), applies the same change to both after each call, and compares the
returned loss, every parameter, gradient, buffer and optimizer state entry bit for bit after every call.

Probed, and right before this review (replaying where noted, else re-recording or eager with the reason):
freezing and unfreezing layers (`requires_grad_(False)`, `.requires_grad = False`, a whole module, every parameter,
with zero_grad(set_to_none=False) and SGD weight decay); `add_param_group`; `model/optimizer.load_state_dict` from a
deep-copied checkpoint (in place, `assign=True`, each alone) and a `tl.save`/`tl.load` round trip (all replay);
`.double()`/`.float()`/`.to(tl.float64)`; `train()`/`eval()` of a BatchNorm, Dropout or LSTM only, and of the whole
model; replacing a layer (`model.fc = nn.Linear(...)`, a Sequential item), a bias set to None; `zero_grad`'s
set_to_none mixed (inside from a flag, outside); `clip_grad_norm_`/`clip_grad_value_` with max_norm and norm_type
changed in a dict, a global or an attribute; `optimizer.state.clear()`, `del state[p]`, Adam's step count reset;
lr, weight_decay, momentum (to 0 and back), betas, nesterov, maximize, amsgrad edited in param_groups, a tensor lr
filled in place, a group's params reversed or shrunk, a new optimizer object swapped in (all replay: the optimizer
step runs again as Python); StepLR, CosineAnnealingLR, ReduceLROnPlateau, OneCycleLR stepped outside (replay);
parameters edited under no_grad (`mul_`, `copy_`, `p.data = ...` of the same or another dtype, Fortran order, a
transposed view, a view of another parameter: replay or re-record); `p.grad = None` for some parameters, a grad
replaced, scaled, zeroed, made non-contiguous or a view of another parameter's; Dropout.p, BatchNorm momentum (None:
eager with the reason), eps, track_running_stats, `reset_running_stats()`, `reset_parameters()`, a running buffer
rebound or edited; MaxPool2d's kernel and stride, GroupNorm.num_groups, LeakyReLU's slope, CrossEntropyLoss's
label_smoothing, reduction, ignore_index and class weights (set, edited in place); Embedding's padding_idx and
max_norm; LSTM's dropout, frozen layers and weights scaled in place; `tl.manual_seed` between calls; gradient and
module hooks added and removed (eager while present); an eager step of another batch size, a validation pass and an
eval forward+backward between calls; a short last batch; a deep-copied best model restored; `nn.init` on the head;
a manual SGD loop in the step (`p -= lr * p.grad; p.grad = None`) with lr and freezing changed outside; gradient
accumulation (the optimizer step outside every k calls, k changed); an EMA copy updated in the step (decay changed,
refreshed by load_state_dict); `tl.compile(model)` and `model.compile()` in a PyTorch loop with the changes above.

Defects found (fixed here):
- a layer setting held as a tuple was not guarded: `conv.stride = (2, 2)`, `conv.padding = conv.dilation = (2, 2)`,
  `AdaptiveAvgPool2d.output_size = (1, 4)` between calls replayed the recorded stride/padding/output size (the
  layer setting guards took bool/int/float/str/None/functions only; a Conv2d normalises its settings to tuples);
- a setting that was a NumPy scalar when recorded (`nn.Dropout(np.float32(0.3))`, then `p = np.float32(0.6)`):
  not guarded either, the replay kept the recorded p.

Over-guarding seen (results right, noted in the report): `for g in opt.param_groups: g["lr"] = lr` inside the step
with lr changing every call records each call (a dict's value) or, with `lr` a `dynamic=True` argument, runs every
call eagerly (the argument is kept in a container outside the call); a step reading `opt.state` in Python runs
eagerly on every call (documented).
"""
import copy
import io
import warnings

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite import nn

F = nn.functional
CALLS = 12


# ---- the twin harness -------------------------------------------------------------------------------------------

def _snap(model, opt, extra=None):
    """Named copies of the parameters, gradients, buffers and optimizer state (and of `extra`'s parameters)."""
    out = []
    for n, p in model.named_parameters():
        out.append(("p:" + n, p.detach().numpy().copy()))
        out.append(("g:" + n, np.array("none") if p.grad is None else p.grad.numpy().copy()))
    for n, b in model.named_buffers():
        out.append(("b:" + n, b.numpy().copy()))
    for gi, g in enumerate(opt.param_groups if opt is not None else ()):
        for pi, p in enumerate(g["params"]):
            st = opt.state.get(p, {})
            for k in sorted(st):
                v = st[k]
                out.append((f"s:{gi}.{pi}.{k}", np.asarray(v.numpy() if isinstance(v, tl.Tensor) else v).copy()))
    if extra is not None:
        out += [("x:" + n, p.detach().numpy().copy()) for n, p in extra.named_parameters()]
    return out


def _differs(a, b):
    if [k for k, _ in a] != [k for k, _ in b]:
        return ["names"]
    return [ka for (ka, va), (_, vb) in zip(a, b)
            if va.dtype != vb.dtype or va.shape != vb.shape or not np.array_equal(va, vb)]


def _mlp_batch(i):
    rng = np.random.default_rng(i)
    return tl.tensor(rng.standard_normal((6, 5)).astype(np.float32)), tl.tensor(rng.integers(0, 3, 6))


def _image_batch(i):
    rng = np.random.default_rng(i)
    return tl.tensor(rng.standard_normal((6, 1, 8, 8)).astype(np.float32)), tl.tensor(rng.integers(0, 3, 6))


def _token_batch(i):
    rng = np.random.default_rng(i)
    return tl.tensor(rng.integers(0, 10, (4, 5))), tl.tensor(rng.integers(0, 10, 4))


def _twins(build, make_step, between=None, *, calls=CALLS, batch=_mlp_batch, compiled=None):
    """Run make_step's step eagerly and compiled on twins from build() (model, optimizer, a dict), `between(model,
    opt, ctx, i)` applied to both after call i; assert every call bit-identical; return the compiled step."""
    tl.manual_seed(0)
    me, oe, ce = build()
    tl.manual_seed(0)
    mc, oc, cc = build()
    eager = make_step(me, oe, ce)
    comp = (compiled or tl.compile)(make_step(mc, oc, cc))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tl.CompileWarning)
        for i in range(calls):
            x, y = batch(i)
            tl.manual_seed(1000 + i)
            want = eager(x, y)
            tl.manual_seed(1000 + i)
            got = comp(x, y)
            assert want == got, (i, want, got, comp.stats)
            bad = _differs(_snap(me, oe, ce.get("ema")), _snap(mc, oc, cc.get("ema")))
            assert not bad, (i, bad[:6], comp.stats)
            if between is not None:
                tl.manual_seed(5000 + i)
                between(me, oe, ce, i)
                tl.manual_seed(5000 + i)
                between(mc, oc, cc, i)
    return comp


def _mlp(opt="sgd", wd=0.0):
    def build():
        m = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3))
        if opt == "sgd":
            return m, tl.optim.SGD(m.parameters(), lr=0.1, momentum=0.9, weight_decay=wd), {}
        return m, tl.optim.Adam(m.parameters(), lr=0.01, weight_decay=wd), {}
    return build


def _cnn(opt="sgd"):
    def build():
        m = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.3),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
        if opt == "sgd":
            return m, tl.optim.SGD(m.parameters(), lr=0.05, momentum=0.9), {}
        return m, tl.optim.Adam(m.parameters(), lr=0.01), {}
    return build


class _LM(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 6)
        self.lstm = nn.LSTM(6, 8, num_layers=2, batch_first=True, dropout=0.2)
        self.head = nn.Linear(8, 10)

    def forward(self, x):
        h, _ = self.lstm(self.emb(x))
        return self.head(h[:, -1])


def _lm():
    m = _LM()
    return m, tl.optim.Adam(m.parameters(), lr=0.01), {}


def _step(m, o, c):
    def step(x, y):
        o.zero_grad()
        loss = F.cross_entropy(m(x), y)
        loss.backward()
        o.step()
        return loss.item()
    return step


def _accumulating_step(m, o, c):  # (no zero_grad: gradients accumulate into what the caller left)
    def step(x, y):
        loss = F.cross_entropy(m(x), y)
        loss.backward()
        o.step()
        return loss.item()
    return step


def _at(*calls):
    """A `between` that runs `fn(m, o, c)` after the given calls (each dict item: call -> fn)."""
    plan = dict(calls)

    def between(m, o, c, i):
        if i in plan:
            plan[i](m, o, c)
    return between


# ---- defects found here: layer settings held as tuples or NumPy scalars -----------------------------------------

def _conv_model():
    m = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    return m, tl.optim.SGD(m.parameters(), lr=0.05, momentum=0.9), {}


def _set(**settings):
    def change(m, o, c):
        for k, v in settings.items():
            index, name = k.split("_", 1)
            setattr(m[int(index[1:])], name, v)
    return change


@pytest.mark.parametrize("at", [3, 10])  # (10: after INTERPRETED_REPLAYS, the generated guard code decides)
@pytest.mark.parametrize("change", [
    _set(l0_stride=(2, 2)),
    _set(l0_padding=(2, 2), l0_dilation=(2, 2)),  # (the same output shape)
], ids=["conv_stride", "conv_padding_dilation"])
def test_a_conv_setting_held_as_a_tuple_changed_between_calls(change, at):
    comp = _twins(_conv_model, _step, _at((at, change)), calls=14, batch=_image_batch)
    assert comp.stats["traces"] == 2


def test_an_adaptive_pool_output_size_changed_between_calls():
    def build():
        m = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.AdaptiveAvgPool2d((2, 2)), nn.Flatten(), nn.Linear(16, 3))
        return m, tl.optim.SGD(m.parameters(), lr=0.05), {}
    comp = _twins(build, _step, _at((3, _set(l1_output_size=(1, 4)))), batch=_image_batch)
    assert comp.stats["traces"] == 2


def test_a_layer_setting_recorded_as_a_numpy_scalar():
    def build():
        m = nn.Sequential(nn.Linear(5, 8), nn.Dropout(np.float32(0.3)), nn.Linear(8, 3))
        return m, tl.optim.SGD(m.parameters(), lr=0.1), {}

    def between(m, o, c, i):
        m[1].p = np.float32((0.3, 0.6)[i % 2])
    comp = _twins(build, _step, between)
    assert comp.stats["traces"] == 2 and comp.stats["replays"] == CALLS - 2


def test_an_unchanged_tuple_setting_still_replays():
    # `conv.padding = (1, 1)` again: a new tuple of the same values is no change
    comp = _twins(_conv_model, _step, lambda m, o, c, i: setattr(m[0], "padding", (1, 1)), batch=_image_batch)
    assert comp.stats["traces"] == 1 and comp.stats["replays"] == CALLS - 1


# ---- probes that held before this review ------------------------------------------------------------------------

def _freeze(mod, on):
    def change(m, o, c):
        for p in m[mod].parameters():
            p.requires_grad_(on)
    return change


@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_freezing_and_unfreezing_a_layer(opt):
    comp = _twins(_mlp(opt), _step, _at((2, _freeze(0, False)), (6, _freeze(0, True))))
    assert comp.stats["traces"] == 2 and comp.stats["eager_calls"] == 0


def test_freezing_with_zero_grad_keeping_zeros_and_weight_decay():
    def step(m, o, c):
        def fn(x, y):
            o.zero_grad(set_to_none=False)
            loss = F.cross_entropy(m(x), y)
            loss.backward()
            o.step()
            return loss.item()
        return fn
    _twins(_mlp("sgd", wd=0.01), step, _at((2, _freeze(0, False)), (6, _freeze(0, True))))


def test_add_param_group_between_calls():
    def build():
        m = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3))
        return m, tl.optim.SGD(m[2].parameters(), lr=0.1, momentum=0.9), {}
    _twins(build, _step, _at((3, lambda m, o, c: o.add_param_group({"params": list(m[0].parameters()), "lr": 0.05}))))


def _checkpoint(m, o, c):
    c["m"], c["o"] = copy.deepcopy(m.state_dict()), copy.deepcopy(o.state_dict())


@pytest.mark.parametrize("assign", [False, True])
@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_restoring_a_checkpoint_between_calls_replays(opt, assign):
    def restore(m, o, c):
        m.load_state_dict(c["m"], assign=assign)
        o.load_state_dict(c["o"])
    comp = _twins(_mlp(opt), _step, _at((2, _checkpoint), (6, restore)))
    assert comp.stats["traces"] == 1


def test_a_save_and_load_round_trip_between_calls():
    def round_trip(m, o, c):
        buf = io.BytesIO()
        tl.save({"m": m.state_dict(), "o": o.state_dict()}, buf)
        buf.seek(0)
        d = tl.load(buf)
        m.load_state_dict(d["m"])
        o.load_state_dict(d["o"])
    _twins(_mlp("adam"), _step, _at((3, round_trip), (7, round_trip)))


def test_converting_the_model_to_float64_between_calls():
    def step(m, o, c):
        def fn(x, y):
            o.zero_grad()
            loss = F.cross_entropy(m(x.to(m[0].weight.dtype)), y)
            loss.backward()
            o.step()
            return loss.item()
        return fn
    _twins(_mlp("adam"), step, _at((3, lambda m, o, c: m.double()), (7, lambda m, o, c: m.float())))


@pytest.mark.parametrize("index", [1, 3])  # BatchNorm2d, Dropout
def test_one_submodule_switched_to_eval_and_back(index):
    _twins(_cnn(), _step, _at((3, lambda m, o, c: m[index].eval()), (7, lambda m, o, c: m[index].train())),
           batch=_image_batch)


def test_layer_settings_changed_between_calls():
    def between(m, o, c, i):
        m[3].p = 0.1 * (i % 4)
        m[1].momentum = (0.1, 0.5)[i % 2]
        if i == 5:
            m[1].reset_running_stats()
    _twins(_cnn(), _step, between, batch=_image_batch)


def test_batchnorm_momentum_none_runs_eagerly_with_the_reason():
    comp = _twins(_cnn(), _step, _at((3, lambda m, o, c: setattr(m[1], "momentum", None))), batch=_image_batch)
    assert "num_batches_tracked" in comp.stats["last_reason"]


def test_replacing_the_head_and_adding_its_parameters():
    def replace(m, o, c):
        m[6] = nn.Linear(4, 3)
        o.add_param_group({"params": list(m[6].parameters())})
    _twins(_cnn("adam"), _step, _at((3, replace)), batch=_image_batch)


def test_optimizer_state_and_settings_edited_between_calls_replay():
    def between(m, o, c, i):
        g = o.param_groups[0]
        g["lr"], g["weight_decay"], g["momentum"] = 0.1 / (i + 1), 0.01 * (i % 3), (0.9, 0.0, 0.5)[i % 3]
        if i in (3, 7):
            o.state.clear()
        if i == 5:
            g["nesterov"], g["momentum"], g["dampening"] = True, 0.9, 0
    comp = _twins(_mlp("sgd"), _step, between)
    assert comp.stats["traces"] == 1 and comp.stats["replays"] == CALLS - 1


def test_adam_state_reset_and_amsgrad_turned_on_replay():
    def reset(m, o, c):
        del o.state[m[0].weight]
        for st in o.state.values():
            st["step"].fill_(0)

    def amsgrad(m, o, c):
        o.param_groups[0]["amsgrad"] = True
        o.state.clear()
    comp = _twins(_mlp("adam"), _step, _at((3, reset), (6, amsgrad)))
    assert comp.stats["traces"] == 1


@pytest.mark.parametrize("kind", ["step", "cosine", "plateau", "onecycle"])
def test_a_scheduler_stepped_outside(kind):
    def build():
        m, o, c = _mlp("sgd")()
        s = tl.optim.lr_scheduler
        c["s"] = {"step": lambda: s.StepLR(o, 2, 0.5), "cosine": lambda: s.CosineAnnealingLR(o, 10),
                  "plateau": lambda: s.ReduceLROnPlateau(o, patience=0),
                  "onecycle": lambda: s.OneCycleLR(o, max_lr=0.5, total_steps=20)}[kind]()
        return m, o, c

    def between(m, o, c, i):
        c["s"].step(1.0) if kind == "plateau" else c["s"].step()
    comp = _twins(build, _step, between)
    assert comp.stats["traces"] == 1


def test_parameters_edited_in_place_or_rebound_between_calls():
    def between(m, o, c, i):
        with tl.no_grad():
            m[0].weight.mul_(0.5)
            m[0].bias.copy_(tl.tensor(np.full(8, 0.1 * i, np.float32)))
        m[2].weight.data = m[2].weight.data * 0.9
        if i == 4:
            m[2].bias.data = m[0].bias.data[:3]  # (a view of another parameter)
        if i == 6:
            m[0].weight.data = tl.tensor(np.asfortranarray(m[0].weight.numpy()))
    _twins(_mlp("adam"), _step, between)


@pytest.mark.parametrize("step", [_step, _accumulating_step])
def test_gradients_set_to_none_replaced_or_scaled_for_some_parameters(step):
    def between(m, o, c, i):
        if i % 3 == 0:
            m[0].weight.grad = None
        elif i % 3 == 1 and m[2].weight.grad is not None:
            m[2].weight.grad.mul_(0.5)
        elif m[2].bias.grad is not None:
            m[2].bias.grad = m[2].bias.grad.t() * 1.0
    _twins(_mlp("sgd"), step, between)


def test_zero_grad_set_to_none_from_a_flag_that_flips():
    def build():
        m, o, c = _mlp("adam")()
        c["none"] = True
        return m, o, c

    def step(m, o, c):
        def fn(x, y):
            o.zero_grad(set_to_none=c["none"])
            loss = F.cross_entropy(m(x), y)
            loss.backward()
            o.step()
            return loss.item()
        return fn
    _twins(build, step, lambda m, o, c, i: c.__setitem__("none", i % 2 == 0))


MAX_NORM = 1.0


def _set_max_norm(v):
    global MAX_NORM
    MAX_NORM = v


def test_clip_grad_norm_with_max_norm_changed_in_a_global_and_a_dict():
    def build():
        m, o, c = _mlp("sgd")()
        c["type"] = 2.0
        return m, o, c

    def step(m, o, c):
        def fn(x, y):
            o.zero_grad()
            loss = F.cross_entropy(m(x), y)
            loss.backward()
            norm = nn.utils.clip_grad_norm_(m.parameters(), MAX_NORM, norm_type=c["type"])
            o.step()
            return loss.item(), norm.item()
        return fn

    def between(m, o, c, i):
        _set_max_norm((1.0, 0.1, 0.01)[i % 3])
        c["type"] = (2.0, float("inf"))[i % 2]
    try:
        comp = _twins(build, step, between)
    finally:
        _set_max_norm(1.0)
    assert comp.stats["eager_calls"] == 0


def test_gradient_accumulation_with_the_optimizer_step_outside():
    def build():
        m, o, c = _mlp("adam")()
        c["k"] = 2
        return m, o, c

    def step(m, o, c):
        def fn(x, y):
            loss = F.cross_entropy(m(x), y) / c["k"]
            loss.backward()
            return loss.item()
        return fn

    def between(m, o, c, i):
        if (i + 1) % c["k"] == 0:
            o.step()
            o.zero_grad(set_to_none=i % 2 == 0)
        if i == 5:
            c["k"] = 3
    _twins(build, step, between)


def test_hooks_added_and_removed_between_calls_run_eagerly_while_present():
    def add(m, o, c):
        c["h"] = [m[0].weight.register_hook(lambda g: g * 2), m[2].register_forward_hook(lambda mod, i, out: out * 2)]

    def remove(m, o, c):
        for h in c["h"]:
            h.remove()
    comp = _twins(_mlp("sgd"), _step, _at((3, add), (7, remove)))
    assert comp.stats["replays"] == 7 and "hook" in comp.stats["last_reason"]


def test_eager_steps_and_validation_between_compiled_calls():
    def between(m, o, c, i):
        x = tl.tensor(np.random.default_rng(50 + i).standard_normal((4, 1, 8, 8)).astype(np.float32))
        if i % 3 == 1:
            _step(m, o, c)(x, tl.tensor(np.arange(4) % 3))  # an eager step of another batch size
        m.eval()
        with tl.no_grad():
            m(x)
        m.train()
    comp = _twins(_cnn("adam"), _step, between, batch=_image_batch)
    assert comp.stats["traces"] == 1


def test_a_deep_copied_best_model_restored_and_the_head_reinitialised():
    def keep(m, o, c):
        c["best"] = copy.deepcopy(m)

    def restore(m, o, c):
        m.load_state_dict(c["best"].state_dict())

    def reinit(m, o, c):
        nn.init.xavier_uniform_(m[6].weight)
        nn.init.zeros_(m[6].bias)
    _twins(_cnn(), _step, _at((2, keep), (5, restore), (8, reinit)), batch=_image_batch)


def test_lstm_dropout_freezing_and_eval_between_calls():
    def between(m, o, c, i):
        m.lstm.dropout = (0.2, 0.0, 0.5)[i % 3]
        if i == 3:
            m.emb.weight.requires_grad_(False)
        if i == 5:
            m.lstm.eval()
        if i == 8:
            m.requires_grad_(True)
            m.lstm.train()
    _twins(_lm, _step, between, batch=_token_batch)


def test_a_manual_sgd_step_with_lr_and_freezing_changed_outside():
    def build():
        return nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)), None, {"lr": 0.1}

    def step(m, o, c):
        def fn(x, y):
            loss = F.cross_entropy(m(x), y)
            loss.backward()
            with tl.no_grad():
                for p in m.parameters():
                    if p.grad is not None:
                        p -= c["lr"] * p.grad
                        p.grad = None
            return loss.item()
        return fn

    def between(m, o, c, i):
        c["lr"] = 0.1 if i < 5 else 0.05
        if i in (3, 7):
            m[0].requires_grad_(i == 7)
    _twins(build, step, between)


def test_an_ema_copy_updated_in_the_step_with_its_decay_changed_outside():
    def build():
        m, o, c = _mlp("sgd")()
        c["ema"], c["d"] = copy.deepcopy(m), 0.9
        return m, o, c

    def step(m, o, c):
        def fn(x, y):
            o.zero_grad()
            loss = F.cross_entropy(m(x), y)
            loss.backward()
            o.step()
            with tl.no_grad():
                for pe, p in zip(c["ema"].parameters(), m.parameters()):
                    pe.mul_(c["d"]).add_(p, alpha=1 - c["d"])
            return loss.item()
        return fn

    def between(m, o, c, i):
        c["d"] = (0.9, 0.99)[i % 2]
        if i == 6:
            c["ema"].load_state_dict(m.state_dict())
    _twins(build, step, between)


@pytest.mark.parametrize("in_place", [False, True])
def test_a_compiled_model_in_a_pytorch_loop_with_changes_between_calls(in_place):
    tl.manual_seed(0)
    me, oe, _ = _cnn("adam")()
    tl.manual_seed(0)
    mc, oc, _ = _cnn("adam")()
    if in_place:
        mc.compile()
        fc = mc
    else:
        fc = tl.compile(mc)

    def between(m, o, i):
        m[3].p = 0.1 * (i % 2)
        if i == 3:
            m[0].requires_grad_(False)
        if i == 5:
            m[0].requires_grad_(True)
            m[0].stride = (2, 2)
        m[6].weight.data = m[6].weight.data * 0.9

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tl.CompileWarning)
        for i in range(CALLS):
            x, y = _image_batch(i)
            losses = []
            for m, o, f in ((me, oe, me), (mc, oc, fc)):
                tl.manual_seed(1000 + i)
                loss = F.cross_entropy(f(x), y) / 2
                loss.backward()
                if i % 2:
                    o.step()
                    o.zero_grad(set_to_none=i % 4 == 1)
                losses.append(loss.item())
            assert losses[0] == losses[1], i
            assert not _differs(_snap(me, oe), _snap(mc, oc)), i
            between(me, oe, i)
            between(mc, oc, i)


@pytest.mark.parametrize("padding", [1, (2, 1), "same"])
@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_conv_padding_mode_set_after_construction(padding, mode):
    """Noticed in this review: `conv.padding_mode = "reflect"` after construction raised AttributeError in eager
    (the F.pad widths were made only for a non-zeros mode); PyTorch makes them always. Same output as a layer built
    with that mode."""
    tl.manual_seed(0)
    late = nn.Conv2d(2, 3, 3, padding=padding)
    built = nn.Conv2d(2, 3, 3, padding=padding, padding_mode=mode)
    built.load_state_dict(late.state_dict())
    late.padding_mode = mode
    x = tl.randn(2, 2, 6, 5)
    assert np.array_equal(late(x).numpy(), built(x).numpy())
