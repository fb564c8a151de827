# The two-layer network again, now with the nn package: first an nn.Sequential updated by hand under no_grad,
# then a custom nn.Module trained with an optimizer (the usual zero_grad / backward / step loop).
import os

import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim

INIT = os.environ.get("COMPAT_INIT", "two_layer_nn_optim_init.npz")
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
torch.manual_seed(0)


def load_or_save_initial_weights(path, **models):
    """The first run saves the freshly initialised weights; every later run starts from them."""
    if os.path.exists(path):
        saved = np.load(path)
        for name, model in models.items():
            model.load_state_dict({k.split("/", 1)[1]: torch.tensor(v) for k, v in saved.items()
                                   if k.startswith(name + "/")})
    else:
        np.savez(path, **{f"{name}/{k}": v.cpu().numpy() for name, model in models.items()
                          for k, v in model.state_dict().items()})


N, D_in, H, D_out = 64, 100, 50, 10
rng = np.random.default_rng(2)
x = torch.tensor(rng.standard_normal((N, D_in)), dtype=torch.float64).to(device)
y = torch.tensor(rng.standard_normal((N, D_out)), dtype=torch.float64).to(device)


class TwoLayerNet(nn.Module):
    def __init__(self, D_in, H, D_out):
        super().__init__()
        self.linear1 = nn.Linear(D_in, H)
        self.linear2 = nn.Linear(H, D_out)

    def forward(self, x):
        h_relu = self.linear1(x).clamp(min=0)
        return self.linear2(h_relu)


model = nn.Sequential(
    nn.Linear(D_in, H),
    nn.ReLU(),
    nn.Linear(H, D_out),
).double().to(device)
net = TwoLayerNet(D_in, H, D_out).to(device, torch.float64)
load_or_save_initial_weights(INIT, seq=model, net=net)

loss_fn = nn.MSELoss(reduction="sum")
learning_rate = 1e-4
for t in range(60):
    y_pred = model(x)
    loss = loss_fn(y_pred, y)
    print(f"sequential step {t} loss {loss.item()!r}")
    model.zero_grad()
    loss.backward()
    with torch.no_grad():
        for param in model.parameters():
            param -= learning_rate * param.grad

criterion = torch.nn.MSELoss(reduction="sum")
optimizer = optim.Adam(net.parameters(), lr=1e-3)
for t in range(60):
    y_pred = net(x)
    loss = criterion(y_pred, y)
    print(f"adam step {t} loss {loss.item()!r}")
    if t % 20 == 19:
        print(t, f"{loss.item():.4f}")
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()

# Save the trained model and load it back into a fresh one, as in "Saving and Loading Models"
torch.save(net.state_dict(), "model.pth")
model = TwoLayerNet(D_in, H, D_out).double().to(device)
model.load_state_dict(torch.load("model.pth", weights_only=True))
model.eval()
with torch.no_grad():
    print("trained:", f"{criterion(net(x), y):.4f}", "reloaded:", f"{criterion(model(x), y):.4f}")
