# torch.compile on a model in the everyday PyTorch 2.x loop: model = torch.compile(model), a DataLoader whose last
# batch is smaller (a shape change every epoch), model.train() / model.eval() switching between training and a
# validation loop under torch.no_grad(), Adam with a StepLR scheduler stepped once per epoch, running-loss
# accumulation, and a checkpoint of the compiled module (state_dict keys prefixed "_orig_mod.") loaded back into a
# fresh compiled model and into the plain model. backend="aot_eager": the default inductor backend takes well over
# 20 s to compile the shape variants and the backward on a CPU.
import os

import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim
from torch.utils.data import DataLoader, TensorDataset

INIT = os.environ.get("COMPAT_INIT", "compiled_model_loop_init.npz")
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
torch.manual_seed(0)

rng = np.random.default_rng(7)
w_true = rng.standard_normal((6, 3))


def make_data(n):
    x = rng.standard_normal((n, 6))
    y = np.argmax(x @ w_true + 0.3 * rng.standard_normal((n, 3)), axis=1)
    return torch.from_numpy(x), torch.from_numpy(y)


train_ds = TensorDataset(*make_data(100))
val_ds = TensorDataset(*make_data(45))
train_loader = DataLoader(train_ds, batch_size=32, shuffle=False)   # 32, 32, 32, 4
val_loader = DataLoader(val_ds, batch_size=20)                     # 20, 20, 5


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(6, 16, bias=False),  # (no bias before BatchNorm, which removes it)
            nn.BatchNorm1d(16),
            nn.ReLU(),
            nn.Linear(16, 16),
            nn.Tanh(),
            nn.Linear(16, 3),
        )

    def forward(self, x):
        return self.net(x)


model = MLP().double().to(device)
if os.path.exists(INIT):
    model.load_state_dict({k: torch.tensor(v) for k, v in np.load(INIT).items()})
else:
    np.savez(INIT, **{k: v.cpu().numpy() for k, v in model.state_dict().items()})

model = torch.compile(model, backend="aot_eager")
loss_fn = nn.CrossEntropyLoss()
optimizer = optim.Adam(model.parameters(), lr=0.02)
scheduler = optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)


def train_one_epoch(epoch):
    model.train()
    running_loss = 0.0
    for batch, (X, y) in enumerate(train_loader):
        X, y = X.to(device), y.to(device)
        pred = model(X)
        loss = loss_fn(pred, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        print(f"train step {epoch * len(train_loader) + batch} loss {loss.item()!r}")
        running_loss += loss.item() * X.size(0)
    return running_loss / len(train_loader.dataset)


def validate(epoch, net, log=True):
    net.eval()
    val_loss, correct = 0.0, 0
    with torch.no_grad():
        for batch, (X, y) in enumerate(val_loader):
            pred = net(X.to(device))
            loss = loss_fn(pred, y)
            if log:
                print(f"val step {epoch * len(val_loader) + batch} loss {loss.item()!r}")
            val_loss += loss.item() * len(X)
            correct += (pred.argmax(1) == y).type(torch.float).sum().item()
    return val_loss / len(val_loader.dataset), correct / len(val_loader.dataset)


for epoch in range(6):
    train_loss = train_one_epoch(epoch)
    val_loss, accuracy = validate(epoch, model)
    scheduler.step()
    print(f"Epoch {epoch + 1}: train loss {train_loss:.6f}, val loss {val_loss:.6f}, "
          f"accuracy {100 * accuracy:.1f}%, lr {scheduler.get_last_lr()[0]:.5f}")

# Save the compiled model's weights and load them back, into a fresh compiled model and into the plain model
torch.save(model.state_dict(), "compiled.pth")
state = torch.load("compiled.pth", weights_only=True)
print("first keys:", list(state)[:3])
fresh = torch.compile(MLP().double().to(device), backend="aot_eager")
fresh.load_state_dict(state)
plain = MLP().double().to(device)
plain.load_state_dict({k.removeprefix("_orig_mod."): v for k, v in state.items()})
for name, net in [("fresh", fresh), ("plain", plain)]:
    val_loss, accuracy = validate(0, net, log=False)
    print(f"{name}: val loss {val_loss:.6f}, accuracy {100 * accuracy:.1f}%")
