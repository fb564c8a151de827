"""Fourth review of tl.compile's guard scan (constants.py / bytecode.py / objects.py / values.py at 4ad5145): realistic
training loops in the style of PyTorch tutorials and research code, each run eagerly and compiled (10 calls;
harness and shared scaffolding: _review_s11d_common.py). Every compiled run must equal eager bit for bit.
Here: the model side: a custom Module with a config and train/eval switches, EMA of the weights outside and inside
the step, `hasattr` in a Module's forward, a Lightning-like module, a compiled model with backward outside, a loss
object. Steps whose math reads values that change re-record, and must stay equal to eager."""
import math
import types

import numpy as np
import pytest

import tinygrad_lite as tl

from _review_s11d_common import C, _out, _replays, _run, data, mlp, state

nn, F = tl.nn, tl.nn.functional


# ---------------------------------------------------------------- 5. custom Module with config, ModuleList, train/eval
class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.fc = nn.Linear(cfg.hidden, cfg.hidden)
        self.norm = nn.LayerNorm(cfg.hidden)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x):
        h = self.drop(F.gelu(self.fc(self.norm(x))))
        return x + h if self.cfg.residual else h


class Net(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.inp = nn.Linear(cfg.width, cfg.hidden)
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.depth)])
        self.head = nn.Linear(cfg.hidden, cfg.classes)

    def forward(self, x):
        x = self.inp(x)
        for blk in self.blocks:
            x = blk(x)
        return self.head(x)


def s05_module_config_train_eval(comp):
    tl.manual_seed(0)
    cfg = types.SimpleNamespace(width=6, hidden=8, depth=2, classes=3, dropout=0.2, residual=True)
    model = Net(cfg)
    opt = tl.optim.AdamW(model.parameters(), lr=0.01)

    def train_step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    @tl.no_grad()
    def eval_step(x, y):
        out = model(x)
        return F.cross_entropy(out, y), (out.argmax(1) == y).float().mean()

    tr, ev = C(comp)(train_step), C(comp)(eval_step)
    outs, bs = [], data()
    for ep in range(2):
        model.train()
        for x, y in bs[:5]:
            outs.append(_out(tr(tl.tensor(x), tl.tensor(y))))
        model.eval()
        for x, y in bs[5:]:
            l, a = ev(tl.tensor(x), tl.tensor(y))
            outs += [_out(l), _out(a)]
    return outs + state(model, opt), tr if comp else None, ev if comp else None


# ---------------------------------------------------------------- 6. EMA of weights outside the step, eval of EMA model
class EMA:
    def __init__(self, model, decay=0.9):
        import copy
        self.decay, self.num_updates = decay, 0
        self.module = copy.deepcopy(model)

    @tl.no_grad()
    def update(self, model):
        self.num_updates += 1
        d = min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))
        for e, p in zip(self.module.parameters(), model.parameters()):
            e.mul_(d).add_(p.detach() * (1 - d))


def s06_ema_outside(comp):
    tl.manual_seed(0)
    model = mlp()
    opt = tl.optim.SGD(model.parameters(), lr=0.1)
    ema = EMA(model)
    ema.module.eval()

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    f, g = C(comp)(step), C(comp)(ema.module)
    outs = []
    for x, y in data():
        outs.append(_out(f(tl.tensor(x), tl.tensor(y))))
        ema.update(model)
        with tl.no_grad():
            outs.append(_out(g(tl.tensor(x))))
    return outs + state(model, opt) + state(ema.module), f if comp else None, g if comp else None


# ---------------------------------------------------------------- 7. EMA inside the step, YOLO-style decay ramp
class ModelEMA:
    def __init__(self, model, decay=0.99):
        import copy
        self.ema = copy.deepcopy(model)
        self.updates, self.decay = 0, decay

    def update(self, model):
        self.updates += 1
        d = self.decay * (1 - math.exp(-self.updates / 5))
        with tl.no_grad():
            for e, p in zip(self.ema.parameters(), model.parameters()):
                e.mul_(d).add_((1 - d) * p.detach())


def s07_ema_inside_step(comp):
    tl.manual_seed(0)
    model = mlp()
    opt = tl.optim.SGD(model.parameters(), lr=0.1)
    ema = ModelEMA(model)

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        ema.update(model)
        return loss

    f = C(comp)(step)
    outs = [_out(f(tl.tensor(x), tl.tensor(y))) for x, y in data()]
    return outs + state(model, opt) + state(ema.ema) + [np.asarray(ema.updates)], f if comp else None


# ---------------------------------------------------------------- 10. hasattr in a Module forward, trainer counters
class AuxNet(nn.Module):
    def __init__(self, with_aux):
        super().__init__()
        self.body = nn.Linear(6, 8)
        self.head = nn.Linear(8, 3)
        if with_aux:
            self.aux_head = nn.Linear(8, 3)
        self.calls = 0

    def forward(self, x):
        h = F.relu(self.body(x))
        out = self.head(h)
        if hasattr(self, "aux_head"):
            return out, self.aux_head(h)
        return out, None


class AuxTrainer:
    def __init__(self, comp):
        self.model = AuxNet(True)
        self.opt = tl.optim.SGD(self.model.parameters(), lr=0.05)
        self.aux_weight = 0.4
        self.step = 0
        self.history = []
        self.train_step = C(comp)(self._train_step)

    def _train_step(self, x, y):
        self.opt.zero_grad()
        out, aux = self.model(x)
        loss = F.cross_entropy(out, y)
        if aux is not None:
            loss = loss + self.aux_weight * F.cross_entropy(aux, y)
        loss.backward()
        self.opt.step()
        return loss


def s10_hasattr_module_trainer_counters(comp):
    tl.manual_seed(0)
    t = AuxTrainer(comp)
    outs = []
    for x, y in data():
        loss = t.train_step(tl.tensor(x), tl.tensor(y))
        t.step += 1
        t.model.calls += 1
        t.history.append(loss.item())
        outs.append(_out(loss))
    return outs + state(t.model, t.opt), t.train_step if comp else None


# --- 12. Lightning-like module: training_step(self, batch, batch_idx)
class LitModel(nn.Module):
    def __init__(self, hparams):
        super().__init__()
        self.hparams = hparams
        self.net = mlp()
        self.current_epoch = 0
        self.global_step = 0
        self.logged = {}

    def forward(self, x):
        return self.net(x)

    def log(self, name, value):
        self.logged[name] = value

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y, label_smoothing=self.hparams["smoothing"])
        return loss

    def configure_optimizers(self):
        return tl.optim.Adam(self.parameters(), lr=self.hparams["lr"])


def s12_lightning_like(comp):
    tl.manual_seed(0)
    lit = LitModel({"lr": 0.01, "smoothing": 0.1})
    opt = lit.configure_optimizers()

    def step(batch, batch_idx):
        opt.zero_grad()
        loss = lit.training_step(batch, batch_idx)
        loss.backward()
        opt.step()
        return loss

    f = C(comp)(step)
    outs = []
    for i, (x, y) in enumerate(data()):
        loss = f((tl.tensor(x), tl.tensor(y)), i)
        lit.global_step += 1
        lit.log("train_loss", loss.item())
        if i % 5 == 4:
            lit.current_epoch += 1
        outs.append(_out(loss))
    return outs + state(lit, opt), f if comp else None


# --- 17. compiled model (forward only), loss + backward outside, grad scaler-like
def s17_compiled_module_outside_backward(comp):
    tl.manual_seed(0)
    cfg = {"hidden": 10, "dropout": 0.1}
    model = nn.Sequential(nn.Linear(6, cfg["hidden"]), nn.Tanh(), nn.Dropout(cfg["dropout"]),
                          nn.Linear(cfg["hidden"], 3))
    cm = C(comp)(model)
    opt = tl.optim.Adam(model.parameters(), lr=0.01)
    outs = []
    for step_i, (x, y) in enumerate(data()):
        opt.zero_grad()
        loss = F.cross_entropy(cm(tl.tensor(x)), tl.tensor(y))
        loss.backward()
        opt.step()
        outs.append(_out(loss))
    return outs + state(model, opt), cm if comp else None


# --- 18. Trainer calling a loss object with a config, self passed to a callback-free helper
class FocalLoss:
    def __init__(self, gamma=2.0, alpha=0.25):
        self.gamma, self.alpha = gamma, alpha
        self.calls = 0

    def __call__(self, logits, target):
        logp = F.log_softmax(logits, dim=1)
        p = logp.exp()
        oh = F.one_hot(target, logits.shape[1]).float()
        return -(self.alpha * (1 - p) ** self.gamma * logp * oh).sum(1).mean()


def s18_loss_object(comp):
    tl.manual_seed(0)
    model = mlp()
    opt = tl.optim.SGD(model.parameters(), lr=0.1)
    crit = FocalLoss()

    def step(x, y):
        opt.zero_grad()
        loss = crit(model(x), y)
        loss.backward()
        opt.step()
        return loss

    f = C(comp)(step)
    outs = []
    for x, y in data():
        outs.append(_out(f(tl.tensor(x), tl.tensor(y))))
        crit.calls += 1
    return outs + state(model, opt), f if comp else None


# ============================================================ realistic patterns that replay (and did at 94e2391)


@pytest.mark.parametrize("scenario", [
    s05_module_config_train_eval, s06_ema_outside, s17_compiled_module_outside_backward, s18_loss_object], ids=lambda s: s.__name__)
def test_realistic_loop_replays_bit_identically(scenario):
    _replays(scenario)


# The step's math reads these, so re-recording is right (and so it was at 94e2391): results must stay eager-equal.
@pytest.mark.parametrize("scenario", [
    s07_ema_inside_step,  # EMA decay ramps with ema.updates, read by the step
    s10_hasattr_module_trainer_counters,  # hasattr(self, ...) in forward: every setting of the model is a guard
    s12_lightning_like,  # batch_idx, an int argument, is part of the signature
], ids=lambda s: s.__name__)
def test_steps_that_must_re_record_stay_equal_to_eager(scenario):
    same, stats = _run(scenario)
    assert same, stats
