# Nonlinear regression with a small tanh network: SGD with momentum, gradient clipping by norm, a step learning
# rate schedule and a robust (smooth L1) loss; then a logistic regression on noisy labels, fitted with
# L-BFGS and a closure.
import os

import numpy as np
import torch
from torch import nn, optim
import torch.nn.functional as F

INIT = os.environ.get("COMPAT_INIT", "regression_clip_lbfgs_init.npz")
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
torch.manual_seed(0)

rng = np.random.default_rng(5)
X = rng.uniform(-2, 2, size=(200, 3))
true_w = np.array([[1.5], [-2.0], [0.5]])
Y = np.sin(X @ true_w) + 0.1 * X[:, :1] ** 2
# for the classifier: which side of a plane each point lies on, with some label noise
Z = (X @ np.array([[2.0], [-1.0], [1.0]]) + 0.8 * rng.standard_normal((200, 1)) > 0.5).astype(np.float64)
x = torch.from_numpy(X).to(device)
y = torch.from_numpy(Y).to(device)

model = nn.Sequential(nn.Linear(3, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 1))
model = model.to(device=device, dtype=torch.float64)
clf = nn.Linear(3, 1).double().to(device)
if os.path.exists(INIT):
    saved = np.load(INIT)
    model.load_state_dict({k[4:]: torch.tensor(v) for k, v in saved.items() if k.startswith("reg.")})
    clf.load_state_dict({k[4:]: torch.tensor(v) for k, v in saved.items() if k.startswith("clf.")})
else:
    np.savez(INIT, **{f"reg.{k}": v.detach().cpu().numpy() for k, v in model.state_dict().items()},
             **{f"clf.{k}": v.detach().cpu().numpy() for k, v in clf.state_dict().items()})

criterion = nn.SmoothL1Loss(beta=0.5)
optimizer = optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
scheduler = optim.lr_scheduler.StepLR(optimizer, step_size=25, gamma=0.5)
max_norm = 0.25

for t in range(100):
    optimizer.zero_grad()
    loss = criterion(model(x), y)
    loss.backward()
    total_norm = nn.utils.clip_grad_norm_(model.parameters(), max_norm=max_norm)
    optimizer.step()
    scheduler.step()
    print(f"sgd step {t} loss {loss.item()!r}")
    if t % 25 == 24:
        print(f"step {t + 1}: loss {loss:.4f}, gradient norm {total_norm:.4f}, lr {scheduler.get_last_lr()[0]}")

labels = torch.tensor(Z, device=device)
criterion = nn.BCEWithLogitsLoss()
optimizer = optim.LBFGS(clf.parameters(), lr=1, max_iter=2, history_size=10, line_search_fn="strong_wolfe")


def closure():
    optimizer.zero_grad()
    loss = criterion(clf(x), labels)
    loss.backward()
    return loss


for t in range(10):
    loss = optimizer.step(closure)
    print(f"lbfgs step {t} loss {loss.item()!r}")

model.eval()
with torch.no_grad():
    pred = model(x)
    print(f"regression: final MSE {F.mse_loss(pred, y).item():.6f}, max error {(pred - y).abs().max().item():.4f}")
    accuracy = ((clf(x) > 0).double() == labels).double().mean()
    print(f"classifier: accuracy {accuracy.item():.3f}, weights {clf.weight.view(-1).tolist()}")
