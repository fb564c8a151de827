"""Fourth review of tl.compile's guard scan (constants.py / bytecode.py / objects.py / values.py at 4ad5145): realistic
training loops in the style of PyTorch tutorials and research code, each run eagerly and compiled (10 calls;
harness and shared scaffolding: _review_s11d_common.py). Every compiled run must equal eager bit for bit.
Here: the loop around the step and its configuration: a Trainer with a dataclass config, tutorial-style globals, a
dict config with a DataLoader and a cosine schedule, gradient accumulation, tqdm and early stopping, an args
namespace, hyper-parameters passed on, an AttrDict config. All replay (and did at 94e2391)."""
import argparse
import dataclasses
import io
import math
import types

import numpy as np
import pytest

import tinygrad_lite as tl

from _review_s11d_common import LOG, N, C, _out, _replays, _run, data, logger, mlp, state

nn, F = tl.nn, tl.nn.functional


# ---------------------------------------------------------------- 1. Trainer + dataclass config
@dataclasses.dataclass
class TrainConfig:
    lr: float = 0.05
    epochs: int = 2
    clip: float = 1.0
    label_smoothing: float = 0.1
    log_every: int = 3
    patience: int = 3


class Trainer:
    def __init__(self, model, cfg, comp):
        self.model, self.cfg = model, cfg
        self.opt = tl.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9)
        self.sched = tl.optim.lr_scheduler.StepLR(self.opt, 3, gamma=0.5)
        self.epoch, self.global_step, self.history = 0, 0, []
        self.best, self.bad_epochs, self.stop = math.inf, 0, False
        self._train_step = C(comp)(self.train_step)

    def compute_loss(self, out, y):
        return F.cross_entropy(out, y, label_smoothing=self.cfg.label_smoothing)

    def train_step(self, x, y):
        self.opt.zero_grad()
        loss = self.compute_loss(self.model(x), y)
        loss.backward()
        tl.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.clip)
        self.opt.step()
        return loss

    def fit(self, batches):
        outs = []
        for x, y in batches:
            loss = self._train_step(tl.tensor(x), tl.tensor(y))
            self.global_step += 1
            self.history.append(loss.item())
            outs.append(_out(loss))
            if self.global_step % self.cfg.log_every == 0:
                logger.info("step %d loss %.4f", self.global_step, self.history[-1])
                self.epoch += 1
                self.sched.step()
                if self.history[-1] < self.best:
                    self.best, self.bad_epochs = self.history[-1], 0
                else:
                    self.bad_epochs += 1
                    self.stop = self.bad_epochs >= self.cfg.patience
        return outs


def s01_trainer_dataclass(comp):
    tl.manual_seed(0)
    t = Trainer(mlp(), TrainConfig(), comp)
    outs = t.fit(data())
    return outs + state(t.model, t.opt), t._train_step if comp else None


# ---------------------------------------------------------------- 2. tutorial script style, globals
g_model = g_opt = g_crit = None
g_args = argparse.Namespace(lr=0.01, clip=0.5, log_interval=2, epochs=2, start_epoch=0)
running_loss = 0.0
epoch = 0
batch_idx = 0


def g_train(x, y):
    g_opt.zero_grad()
    output = g_model(x)
    loss = g_crit(output, y)
    loss.backward()
    tl.nn.utils.clip_grad_norm_(g_model.parameters(), g_args.clip)
    g_opt.step()
    return loss


def s02_globals_tutorial(comp):
    global g_model, g_opt, g_crit, running_loss, epoch, batch_idx
    tl.manual_seed(0)
    g_model = mlp()
    g_opt = tl.optim.Adam(g_model.parameters(), lr=g_args.lr)
    g_crit = nn.CrossEntropyLoss()
    step = C(comp)(g_train)
    outs, losses = [], []
    bs = data()
    for epoch in range(g_args.epochs):
        g_model.train()
        running_loss = 0.0
        for batch_idx, (x, y) in enumerate(bs[:5]):
            loss = step(tl.tensor(x), tl.tensor(y))
            running_loss += loss.item()
            losses.append(loss.item())
            outs.append(_out(loss))
            if batch_idx % g_args.log_interval == 0:
                print(f"epoch {epoch} [{batch_idx}] loss {running_loss / (batch_idx + 1):.3f}", file=LOG)
        g_args.start_epoch = epoch + 1
    return outs + state(g_model, g_opt), step if comp else None


# ---------------------------------------------------------------- 8. DataLoader + dict config + cosine schedule + meter
class AverageMeter:
    def __init__(self):
        self.reset()

    def reset(self):
        self.val = self.avg = self.sum = 0.0
        self.count = 0

    def update(self, val, n=1):
        self.val = val
        self.sum += val * n
        self.count += n
        self.avg = self.sum / self.count


CONFIG = {"lr": 0.05, "weight_decay": 1e-4, "batch_size": 8, "epochs": 2, "grad_clip": 2.0, "smoothing": 0.0}


def s08_dataloader_dict_config(comp):
    tl.manual_seed(0)
    rng = np.random.default_rng(1)
    X = rng.standard_normal((40, 6)).astype(np.float32)
    Y = rng.integers(0, 3, 40)
    ds = tl.utils.data.TensorDataset(tl.tensor(X), tl.tensor(Y))
    loader = tl.utils.data.DataLoader(ds, batch_size=CONFIG["batch_size"], shuffle=True, drop_last=True)
    model = mlp()
    opt = tl.optim.SGD(model.parameters(), lr=CONFIG["lr"], weight_decay=CONFIG["weight_decay"], momentum=0.9)
    sched = tl.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10)
    meter = AverageMeter()

    def train_one(xb, yb):
        opt.zero_grad()
        logits = model(xb)
        loss = F.cross_entropy(logits, yb, label_smoothing=CONFIG["smoothing"])
        loss.backward()
        tl.nn.utils.clip_grad_norm_(model.parameters(), max_norm=CONFIG["grad_clip"])
        opt.step()
        return loss, (logits.argmax(dim=1) == yb).float().mean()

    f = C(comp)(train_one)
    outs = []
    for ep in range(CONFIG["epochs"]):
        meter.reset()
        for i, (xb, yb) in enumerate(loader):
            loss, acc = f(xb, yb)
            meter.update(loss.item(), xb.shape[0])
            outs += [_out(loss), _out(acc)]
        sched.step()
        print(f"epoch {ep}: loss {meter.avg:.3f}", file=LOG)
    return outs + state(model, opt), f if comp else None


# ---------------------------------------------------------------- 13. gradient accumulation with config object
@dataclasses.dataclass
class AccumCfg:
    accum_steps: int = 2
    lr: float = 0.05
    step_count: int = 0


ACC = AccumCfg()


def s13_grad_accumulation(comp):
    tl.manual_seed(0)
    ACC.step_count = 0
    model = mlp()
    opt = tl.optim.SGD(model.parameters(), lr=ACC.lr)

    def micro(x, y):
        loss = F.cross_entropy(model(x), y) / ACC.accum_steps
        loss.backward()
        return loss

    f = C(comp)(micro)
    outs = []
    opt.zero_grad()
    for i, (x, y) in enumerate(data(12)):
        outs.append(_out(f(tl.tensor(x), tl.tensor(y))))
        ACC.step_count += 1
        if (i + 1) % ACC.accum_steps == 0:
            opt.step()
            opt.zero_grad()
    return outs + state(model, opt), f if comp else None


# ---------------------------------------------------------------- 14. tqdm progress + StringIO logging + early stopping
def s14_tqdm_early_stopping(comp):
    from tqdm import tqdm
    tl.manual_seed(0)
    model = mlp()
    opt = tl.optim.RMSprop(model.parameters(), lr=0.01)
    crit = nn.CrossEntropyLoss(label_smoothing=0.05)
    es = types.SimpleNamespace(best=float("inf"), wait=0, patience=2, stop=False)

    def step(x, y):
        opt.zero_grad()
        loss = crit(model(x), y)
        loss.backward()
        opt.step()
        return loss

    f = C(comp)(step)
    outs = []
    pbar = tqdm(data(), file=io.StringIO(), desc="train")
    for x, y in pbar:
        loss = f(tl.tensor(x), tl.tensor(y))
        pbar.set_postfix(loss=f"{loss.item():.3f}")
        if loss.item() < es.best:
            es.best, es.wait = loss.item(), 0
        else:
            es.wait += 1
            es.stop = es.wait > es.patience
        outs.append(_out(loss))
    return outs + state(model, opt), f if comp else None


# --- 16. seq model: embedding + GRU with args namespace passed to model
class SeqModel(nn.Module):
    def __init__(self, args):
        super().__init__()
        self.args = args
        self.emb = nn.Embedding(args.vocab, args.emb_dim)
        self.rnn = nn.GRU(args.emb_dim, args.hidden, batch_first=True)
        self.fc = nn.Linear(args.hidden, args.classes)

    def forward(self, tokens):
        h, _ = self.rnn(self.emb(tokens))
        return self.fc(h[:, -1])


def s16_seq_args(comp):
    tl.manual_seed(0)
    args = argparse.Namespace(vocab=12, emb_dim=5, hidden=6, classes=3, lr=0.01, epoch=0, clip_value=0.5)
    model = SeqModel(args)
    opt = tl.optim.Adam(model.parameters(), lr=args.lr)

    def step(tokens, labels):
        opt.zero_grad()
        loss = F.cross_entropy(model(tokens), labels)
        loss.backward()
        tl.nn.utils.clip_grad_value_(model.parameters(), args.clip_value)
        opt.step()
        return loss

    f = C(comp)(step)
    rng = np.random.default_rng(3)
    outs = []
    for i in range(N):
        tok = rng.integers(0, args.vocab, (4, 5))
        lab = rng.integers(0, args.classes, 4)
        outs.append(_out(f(tl.tensor(tok), tl.tensor(lab))))
        args.epoch = i // 3
    return outs + state(model, opt), f if comp else None


# --- 19. vars(args) / dataclasses.asdict for logging inside step's helper
@dataclasses.dataclass
class HParams:
    lr: float = 0.05
    wd: float = 0.0
    temperature: float = 2.0
    epoch: int = 0
    seen: int = 0


def distill_loss(student_logits, teacher_logits, y, hp):
    T = hp.temperature
    kd = F.kl_div(F.log_softmax(student_logits / T, dim=1), F.softmax(teacher_logits / T, dim=1),
                  reduction="batchmean") * (T * T)
    return kd + F.cross_entropy(student_logits, y)


def s19_distill_hparams_passed(comp):
    tl.manual_seed(0)
    hp = HParams()
    student, teacher = mlp(), mlp()
    teacher.eval()
    opt = tl.optim.SGD(student.parameters(), lr=hp.lr)

    def step(x, y):
        opt.zero_grad()
        with tl.no_grad():
            t = teacher(x)
        loss = distill_loss(student(x), t, y, hp)
        loss.backward()
        opt.step()
        return loss

    f = C(comp)(step)
    outs = []
    for i, (x, y) in enumerate(data()):
        outs.append(_out(f(tl.tensor(x), tl.tensor(y))))
        hp.seen += x.shape[0]
        hp.epoch = i // 4
    return outs + state(student, opt), f if comp else None


# --- 20. callbacks list on trainer, called outside; step reads self.cfg dict-like AttrDict
class AttrDict(dict):
    __getattr__ = dict.__getitem__
    __setattr__ = dict.__setitem__


class CBTrainer:
    def __init__(self, comp):
        self.cfg = AttrDict(lr=0.05, clip=1.0, mixup=False, epoch=0)
        self.model = mlp()
        self.opt = tl.optim.SGD(self.model.parameters(), lr=self.cfg.lr)
        self.callbacks = [lambda tr: None]
        self.state = {"step": 0, "losses": []}
        self.step_fn = C(comp)(self.step)

    def step(self, x, y):
        self.opt.zero_grad()
        loss = F.cross_entropy(self.model(x), y)
        loss.backward()
        if self.cfg.clip:
            tl.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.clip)
        self.opt.step()
        return loss


def s20_attrdict_cfg(comp):
    tl.manual_seed(0)
    t = CBTrainer(comp)
    outs = []
    for i, (x, y) in enumerate(data()):
        loss = t.step_fn(tl.tensor(x), tl.tensor(y))
        t.state["step"] += 1
        t.state["losses"].append(loss.item())
        t.cfg.epoch = i // 3
        for cb in t.callbacks:
            cb(t)
        outs.append(_out(loss))
    return outs + state(t.model, t.opt), t.step_fn if comp else None


# ============================================================ realistic patterns that replay (and did at 94e2391)


@pytest.mark.parametrize("scenario", [
    s01_trainer_dataclass, s02_globals_tutorial, s08_dataloader_dict_config, s16_seq_args, s19_distill_hparams_passed, s20_attrdict_cfg], ids=lambda s: s.__name__)
def test_realistic_loop_replays_bit_identically(scenario):
    _replays(scenario)


def test_tqdm_progress_and_early_stopping_loop_replays():
    pytest.importorskip("tqdm")
    _replays(s14_tqdm_early_stopping)


def test_gradient_accumulation_replays_with_two_variants():
    same, [st] = _run(s13_grad_accumulation)  # (grads None after zero_grad, then set: a second variant)
    assert same and st["traces"] == 2 and st["replays"] == 10 and st["eager_calls"] == 0, st
