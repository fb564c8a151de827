# A @torch.compile decorated training step in PyTorch 2.x style: train_step(x, y) does zero_grad, forward,
# backward, gradient clipping (clip_grad_norm_) and optimizer.step(), and returns loss.detach(); the caller
# accumulates the running loss and steps a OneCycleLR scheduler (which also cycles SGD's momentum) after every
# batch. The DataLoader's last batch is smaller. A second model is trained with Adam and StepLR through a compiled
# step that returns loss.item(), and a @torch.compile evaluation step runs under model.eval() / torch.no_grad().
# backend="eager": the default inductor backend takes about 2 minutes here on a CPU (it recompiles the optimizer
# step for each new learning rate). float64 is the default dtype: a compiled Adam computes its bias correction from
# its step counter, which has the default dtype (in float32 the compiled run drifts from eager PyTorch by 1e-7).
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

INIT = os.environ.get("COMPAT_INIT", "compiled_train_step_init.npz")
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
torch.manual_seed(0)
torch.set_default_dtype(torch.float64)

rng = np.random.default_rng(11)
X = torch.tensor(rng.standard_normal((90, 5)))
Y = torch.tensor(np.sin(X.numpy() @ rng.standard_normal((5, 2))) + 0.05 * rng.standard_normal((90, 2)))
loader = DataLoader(TensorDataset(X[:70], Y[:70]), batch_size=16, shuffle=False)  # 16, 16, 16, 16, 6
val_x, val_y = X[70:].to(device), Y[70:].to(device)


class Regressor(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(5, 24)
        self.ln = nn.LayerNorm(24)
        self.fc2 = nn.Linear(24, 2)

    def forward(self, x):
        return self.fc2(F.gelu(self.ln(self.fc1(x))))


model = Regressor().double().to(device)
model2 = Regressor().double().to(device)
if os.path.exists(INIT):
    saved = np.load(INIT)
    for prefix, m in [("a.", model), ("b.", model2)]:
        m.load_state_dict({k[2:]: torch.tensor(v) for k, v in saved.items() if k.startswith(prefix)})
else:
    np.savez(INIT, **{p + k: v.cpu().numpy() for p, m in [("a.", model), ("b.", model2)]
                      for k, v in m.state_dict().items()})

EPOCHS = 5
optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.1, epochs=EPOCHS, steps_per_epoch=len(loader))
loss_fn = nn.MSELoss()


@torch.compile(backend="eager")
def train_step(x, y):
    optimizer.zero_grad(set_to_none=True)
    loss = loss_fn(model(x), y)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
    optimizer.step()
    return loss.detach()


@torch.compile(backend="eager")
def eval_step(net, x, y):
    return F.mse_loss(net(x), y)


step = 0
for epoch in range(EPOCHS):
    model.train()
    running_loss = 0.0
    for x, y in loader:
        loss = train_step(x.to(device), y.to(device))
        scheduler.step()
        print(f"onecycle step {step} loss {loss.item()!r}")
        step += 1
        running_loss += loss
    model.eval()
    with torch.no_grad():
        val_loss = eval_step(model, val_x, val_y)
    print(f"epoch {epoch}: mean train loss {running_loss.item() / len(loader):.6f}, val loss {val_loss.item():.6f}, "
          f"lr {scheduler.get_last_lr()[0]:.6f}")

# The same habits with Adam and StepLR, a step that returns loss.item(), and clipping by value
optimizer2 = torch.optim.Adam(model2.parameters(), lr=0.01)
scheduler2 = torch.optim.lr_scheduler.StepLR(optimizer2, step_size=2, gamma=0.3)


@torch.compile(backend="eager")
def train_step2(x, y):
    optimizer2.zero_grad()
    loss = F.mse_loss(model2(x), y)
    loss.backward()
    nn.utils.clip_grad_value_(model2.parameters(), clip_value=0.5)
    optimizer2.step()
    return loss.item()


step = 0
for epoch in range(4):
    model2.train()
    total = 0.0
    for x, y in loader:
        loss = train_step2(x, y)
        print(f"adam step {step} loss {loss!r}")
        step += 1
        total += loss * x.size(0)
    scheduler2.step()
    model2.eval()
    with torch.no_grad():
        print(f"epoch {epoch}: train {total / len(loader.dataset):.6f}, val {eval_step(model2, val_x, val_y).item():.6f}")
