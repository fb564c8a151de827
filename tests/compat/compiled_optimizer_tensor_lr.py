# The recipe "Running the compiled optimizer with an LR Scheduler" in everyday form: the learning rate is a tensor
# (lr=torch.tensor(0.01)), so a scheduler changing it does not make torch.compile recompile the step; a
# @torch.compile step does zero_grad / forward / backward / optimizer.step() / scheduler.step() (LinearLR warm-up)
# and returns loss.detach(), over a DataLoader whose last batch is smaller. backend="eager": the default inductor
# backend takes well over 20 s to compile the optimizer step on a CPU.
import os

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset

INIT = os.environ.get("COMPAT_INIT", "compiled_optimizer_tensor_lr_init.npz")
torch.manual_seed(0)
torch.set_default_dtype(torch.float64)

rng = np.random.default_rng(5)
X = torch.tensor(rng.standard_normal((40, 6)))
Y = X @ torch.tensor(rng.standard_normal((6, 1))) + 0.1 * torch.tensor(rng.standard_normal((40, 1)))
loader = DataLoader(TensorDataset(X, Y), batch_size=12)  # 12, 12, 12, 4

model = nn.Sequential(nn.Linear(6, 10), nn.Tanh(), nn.Linear(10, 1))
if os.path.exists(INIT):
    model.load_state_dict({k: torch.tensor(v) for k, v in np.load(INIT).items()})
else:
    np.savez(INIT, **{k: v.numpy() for k, v in model.state_dict().items()})

opt = torch.optim.Adam(model.parameters(), lr=torch.tensor(0.05))
sched = torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.2, total_iters=8)
loss_fn = nn.MSELoss()


@torch.compile(backend="eager")
def train_step(x, y):
    opt.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()
    opt.step()
    sched.step()
    return loss.detach()


step = 0
for epoch in range(5):
    for x, y in loader:
        loss = train_step(x, y)
        print(f"train step {step} loss {loss.item()!r}")
        step += 1
    print(f"epoch {epoch}: lr {opt.param_groups[0]['lr'].item():.6f}, last lr {sched.get_last_lr()[0].item():.6f}")
