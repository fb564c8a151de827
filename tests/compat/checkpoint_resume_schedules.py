# Resumable training as in "Saving and Loading a General Checkpoint": AdamW with two parameter groups (weight decay
# only on the weight matrices, chosen through named_parameters()), a warm-up, cosine annealing with warm restarts and
# a step decay in sequence with SequentialLR, a checkpoint dict (epoch, model, optimizer and scheduler state dicts,
# loss) written with torch.save halfway through; fresh objects loaded from it with torch.load continue exactly as the
# original run.
# Then SGD under ChainedScheduler(MultiStepLR, ExponentialLR), and CosineAnnealingWarmRestarts stepped per batch
# with a fractional epoch, as its documentation shows.
import os

import numpy as np
import torch
import torch.nn as nn
from torch.optim.lr_scheduler import (ChainedScheduler, CosineAnnealingWarmRestarts, ExponentialLR, LinearLR,
                                      MultiStepLR, SequentialLR)

INIT = os.environ.get("COMPAT_INIT", "checkpoint_resume_schedules_init.npz")
CHECKPOINT = "checkpoint.pt"
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
torch.manual_seed(0)

rng = np.random.default_rng(21)
X = rng.uniform(-1, 1, size=(96, 4))
Y = np.sin(X @ rng.standard_normal((4, 1))) + 0.05 * rng.standard_normal((96, 1))
x, y = torch.from_numpy(X).to(device), torch.from_numpy(Y).to(device)
batch_size = 32


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 32)
        self.norm = nn.LayerNorm(32)
        self.fc2 = nn.Linear(32, 1)

    def forward(self, x):
        return self.fc2(torch.tanh(self.norm(self.fc1(x))))


def make_model():
    model = MLP().to(device=device, dtype=torch.float64)
    if os.path.exists(INIT):
        model.load_state_dict({k: torch.tensor(v) for k, v in np.load(INIT).items()})
    else:  # the first run saves its random initial weights; every later run starts from them
        np.savez(INIT, **{k: v.cpu().numpy() for k, v in model.state_dict().items()})
    return model


def make_training():
    model = make_model()
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=3e-2)
    warmup = LinearLR(optimizer, start_factor=0.1, total_iters=3)
    cosine = CosineAnnealingWarmRestarts(optimizer, T_0=4, T_mult=2, eta_min=1e-3)
    decay = MultiStepLR(optimizer, milestones=[2, 4], gamma=0.5)
    scheduler = SequentialLR(optimizer, schedulers=[warmup, cosine, decay], milestones=[3, 10])
    return model, optimizer, scheduler


def train_epoch(phase, epoch, model, optimizer, loss_fn):
    model.train()
    for i in range(0, len(x), batch_size):
        optimizer.zero_grad()
        loss = loss_fn(model(x[i:i + batch_size]), y[i:i + batch_size])
        loss.backward()
        optimizer.step()
        print(f"{phase} step {epoch * 3 + i // batch_size} loss {loss.item()!r}")
    return loss


loss_fn = nn.MSELoss()
model, optimizer, scheduler = make_training()
for epoch in range(16):
    loss = train_epoch("train", epoch, model, optimizer, loss_fn)
    scheduler.step()
    if epoch % 4 == 3:
        print(f"epoch {epoch}: lrs {scheduler.get_last_lr()}")
    if epoch == 7:
        torch.save({
            "epoch": epoch,
            "model_state_dict": model.state_dict(),
            "optimizer_state_dict": optimizer.state_dict(),
            "scheduler_state_dict": scheduler.state_dict(),
            "loss": loss,
        }, CHECKPOINT)

# Later, in a new process: rebuild everything, load the checkpoint and carry on where it stopped
model2, optimizer2, scheduler2 = make_training()
checkpoint = torch.load(CHECKPOINT, weights_only=True)
model2.load_state_dict(checkpoint["model_state_dict"])
optimizer2.load_state_dict(checkpoint["optimizer_state_dict"])
scheduler2.load_state_dict(checkpoint["scheduler_state_dict"])
start_epoch = checkpoint["epoch"] + 1
print(f"resuming at epoch {start_epoch}, saved loss {checkpoint['loss'].item():.8f}, lrs {scheduler2.get_last_lr()}")
for epoch in range(start_epoch, 16):
    train_epoch("resumed", epoch, model2, optimizer2, loss_fn)
    scheduler2.step()
print("same weights as the uninterrupted run:",
      all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), model2.state_dict().values())))
print("lrs", scheduler.get_last_lr(), scheduler2.get_last_lr())

# SGD with two schedulers applied together every epoch
model = make_model()
optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
scheduler = ChainedScheduler([MultiStepLR(optimizer, milestones=[4, 8], gamma=0.5),
                              ExponentialLR(optimizer, gamma=0.95)], optimizer=optimizer)
for epoch in range(12):
    train_epoch("chained", epoch, model, optimizer, loss_fn)
    scheduler.step()
    if epoch % 4 == 3:
        print(f"chained epoch {epoch}: lr {scheduler.get_last_lr()[0]:.10f}")

# Warm restarts updated every batch, at a fractional epoch
model = make_model()
optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
scheduler = CosineAnnealingWarmRestarts(optimizer, T_0=3, T_mult=1, eta_min=0.005)
iters = len(x) // batch_size
for epoch in range(9):
    for i in range(iters):
        optimizer.zero_grad()
        loss = loss_fn(model(x[i * batch_size:(i + 1) * batch_size]), y[i * batch_size:(i + 1) * batch_size])
        loss.backward()
        optimizer.step()
        scheduler.step(epoch + i / iters)
        print(f"restarts step {epoch * iters + i} loss {loss.item()!r}")
    if epoch % 3 == 2:
        print(f"restarts epoch {epoch}: lr {optimizer.param_groups[0]['lr']:.10f}, T_cur {scheduler.T_cur:.6f}")
