# Learning-rate schedules beyond the basics, as in the torch.optim.lr_scheduler documentation: a classifier trained
# with SGD under CyclicLR stepped every batch ('triangular2', momentum cycled inversely), then with Adam under
# SequentialLR(ConstantLR warm-up, PolynomialLR decay), then fine-tuned with ReduceLROnPlateau on a validation
# loss (min mode, patience, cooldown, min_lr) alongside MultiplicativeLR on a second optimizer. The weights start
# orthogonal (nn.init.orthogonal_) and the biases from trunc_normal_ in the PyTorch run, which saves them.
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.optim.lr_scheduler import (ConstantLR, CyclicLR, MultiplicativeLR, PolynomialLR, ReduceLROnPlateau,
                                      SequentialLR)

INIT = os.environ.get("COMPAT_INIT", "plateau_cyclic_schedules_init.npz")
torch.manual_seed(0)

rng = np.random.default_rng(7)
centers = rng.standard_normal((3, 5)) * 2.0
labels = rng.integers(0, 3, size=120)
features = centers[labels] + rng.standard_normal((120, 5))
x_train, y_train = torch.from_numpy(features[:96]), torch.from_numpy(labels[:96])
x_val, y_val = torch.from_numpy(features[96:]), torch.from_numpy(labels[96:])
batch_size = 24


class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(5, 16)
        self.out = nn.Linear(16, 3)
        for layer in (self.hidden, self.out):
            nn.init.orthogonal_(layer.weight, gain=nn.init.calculate_gain("relu"))
            nn.init.trunc_normal_(layer.bias, std=0.02)

    def forward(self, x):
        return self.out(F.relu(self.hidden(x)))


model = Classifier().double()
if os.path.exists(INIT):
    model.load_state_dict({k: torch.tensor(v) for k, v in np.load(INIT).items()})
else:  # the first run saves its random initial weights; every later run starts from them
    np.savez(INIT, **{k: v.numpy() for k, v in model.state_dict().items()})

step = 0


def train_epoch(phase, optimizer, per_batch=None):
    global step
    model.train()
    for i in range(0, len(x_train), batch_size):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x_train[i:i + batch_size]), y_train[i:i + batch_size])
        loss.backward()
        optimizer.step()
        if per_batch is not None:
            per_batch.step()
        print(f"{phase} step {step} loss {loss.item()!r}")
        step += 1


def validate():
    model.eval()
    with torch.no_grad():
        return F.cross_entropy(model(x_val), y_val).item()


sgd = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
cyclic = CyclicLR(sgd, base_lr=0.005, max_lr=0.1, step_size_up=3, mode="triangular2", base_momentum=0.8,
                  max_momentum=0.95)
for epoch in range(4):
    train_epoch("cyclic", sgd, per_batch=cyclic)
    print(f"cyclic epoch {epoch}: lr {cyclic.get_last_lr()[0]:.6f} momentum {sgd.param_groups[0]['momentum']:.4f}")

adam = torch.optim.Adam(model.parameters(), lr=0.02)
schedule = SequentialLR(adam, schedulers=[ConstantLR(adam, factor=0.25, total_iters=2),
                                          PolynomialLR(adam, total_iters=4, power=2.0)], milestones=[2])
for epoch in range(6):
    train_epoch("poly", adam)
    schedule.step()
    print(f"poly epoch {epoch}: lr {schedule.get_last_lr()[0]:.6f} val {validate():.6f}")

head = torch.optim.SGD(model.out.parameters(), lr=0.05)
body = torch.optim.SGD(model.hidden.parameters(), lr=0.02)
plateau = ReduceLROnPlateau(head, mode="min", factor=0.5, patience=1, cooldown=1, min_lr=0.01, threshold=1e-3)
shrink = MultiplicativeLR(body, lr_lambda=lambda epoch: 0.9)
for epoch in range(8):
    model.train()
    for i in range(0, len(x_train), batch_size):
        head.zero_grad()
        body.zero_grad()
        loss = F.cross_entropy(model(x_train[i:i + batch_size]), y_train[i:i + batch_size])
        loss.backward()
        head.step()
        body.step()
        print(f"plateau step {step} loss {loss.item()!r}")
        step += 1
    val = validate()
    plateau.step(val)
    shrink.step()
    print(f"plateau epoch {epoch}: head lr {head.param_groups[0]['lr']:.6f} body lr "
          f"{body.param_groups[0]['lr']:.6f} bad epochs {plateau.num_bad_epochs}")
