# Transfer learning as in the "Transfer Learning for Computer Vision" and "Finetuning" tutorials, on a small MLP:
# a backbone (Linear, BatchNorm1d, ReLU) initialised through model.apply(init_fn) and pretrained with gradient
# accumulation; then a new head trained on a new task with the backbone frozen (requires_grad = False, BatchNorm
# kept in eval) and the head's parameters filtered into the optimizer; then the backbone unfrozen with
# optimizer.add_param_group at a lower learning rate, ReduceLROnPlateau on a validation loss, early stopping that
# keeps the best weights with copy.deepcopy(model.state_dict()), gradient clipping and an EMA of the weights (by
# parameters with mul_/add_, and by state_dict() entries with lerp_, copying the integer ones).
import copy
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import optim
from torch.optim import lr_scheduler

INIT = os.environ.get("COMPAT_INIT", "finetune_freeze_head_init.npz")
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
torch.manual_seed(0)

rng = np.random.default_rng(14)
X = rng.standard_normal((192, 6))
W_a, W_b = rng.standard_normal((6, 4)), rng.standard_normal((6, 3))
task_a = np.argmax(np.tanh(X @ W_a) + 0.3 * rng.standard_normal((192, 4)), axis=1)  # the "pretraining" task
task_b = np.argmax(np.tanh(X @ W_b) + 0.3 * rng.standard_normal((192, 3)), axis=1)  # the new task
x_train, x_val = torch.from_numpy(X[:160]).to(device), torch.from_numpy(X[160:]).to(device)
ya_train = torch.from_numpy(task_a[:160]).to(device)
yb_train, yb_val = torch.from_numpy(task_b[:160]).to(device), torch.from_numpy(task_b[160:]).to(device)


class Net(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.backbone = nn.Sequential(
            nn.Linear(6, 24), nn.BatchNorm1d(24), nn.ReLU(),
            nn.Linear(24, 16), nn.BatchNorm1d(16), nn.ReLU(),
        )
        self.head = nn.Linear(16, num_classes)

    def forward(self, x):
        return self.head(self.backbone(x))


def init_weights(m):
    if isinstance(m, nn.Linear):
        nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
        nn.init.zeros_(m.bias)
    elif isinstance(m, nn.BatchNorm1d):
        nn.init.ones_(m.weight)
        nn.init.constant_(m.bias, 0.0)


model = Net(num_classes=4).to(device, dtype=torch.float64)
model.apply(init_weights)
new_head = nn.Linear(16, 3).double().to(device)
nn.init.xavier_uniform_(new_head.weight)
nn.init.constant_(new_head.bias, 0.01)
# random initialisers differ between libraries: the first run saves the weights, the others start from them
if os.path.exists(INIT):
    saved = np.load(INIT)
    model.load_state_dict({k[6:]: torch.tensor(v) for k, v in saved.items() if k.startswith("model.")})
    new_head.load_state_dict({k[5:]: torch.tensor(v) for k, v in saved.items() if k.startswith("head.")})
else:
    np.savez(INIT, **{f"model.{k}": v.cpu().numpy() for k, v in model.state_dict().items()},
             **{f"head.{k}": v.detach().cpu().numpy() for k, v in new_head.state_dict().items()})

for name, module in model.named_modules():
    print(f"module {name or '<root>'}: {type(module).__name__}")
print("children:", [type(c).__name__ for c in model.children()])
print("batchnorm layers:", sum(isinstance(m, nn.BatchNorm1d) for m in model.modules()))

# -- pretraining the whole network, accumulating gradients over 4 micro-batches per step ---------------------
criterion = nn.CrossEntropyLoss()
optimizer = optim.Adam(model.parameters(), lr=1e-2)
accum_steps = 4
micro = 160 // accum_steps
model.train()
for step in range(30):
    optimizer.zero_grad()
    running = 0.0
    for i in range(accum_steps):
        xb, yb = x_train[i * micro:(i + 1) * micro], ya_train[i * micro:(i + 1) * micro]
        loss = criterion(model(xb), yb) / accum_steps
        loss.backward()
        running += loss.item()
    optimizer.step()
    print(f"pretrain step {step} loss {running!r}")

# -- a new head for the new task, the backbone frozen ------------------------------------------------------
model.head = new_head
model.zero_grad()  # the pretraining's gradients are of no use any more
for param in model.backbone.parameters():
    param.requires_grad = False
frozen_before = copy.deepcopy(model.backbone.state_dict())
trainable = [n for n, p in model.named_parameters() if p.requires_grad]
print("trainable:", trainable, sum(p.numel() for p in model.parameters() if p.requires_grad))

optimizer = optim.SGD(filter(lambda p: p.requires_grad, model.parameters()), lr=0.2, momentum=0.9)
scheduler = lr_scheduler.ExponentialLR(optimizer, gamma=0.97)
for step in range(25):
    model.train()
    model.backbone.eval()  # BatchNorm statistics of the pretrained backbone stay as they are
    optimizer.zero_grad()
    loss = criterion(model(x_train), yb_train)
    loss.backward()
    optimizer.step()
    scheduler.step()
    print(f"head step {step} loss {loss.item()!r}")
print("backbone unchanged:", all(torch.equal(v, model.backbone.state_dict()[k]) for k, v in frozen_before.items()))
print("backbone grads:", {p.grad for p in model.backbone.parameters()})
print("head lr:", scheduler.get_last_lr())

# -- fine-tuning everything: the backbone at a tenth of the head's learning rate ---------------------------
model.backbone.requires_grad_(True)
optimizer.add_param_group({"params": model.backbone.parameters(), "lr": 0.02})
print("groups:", [(len(g["params"]), g["lr"], g["momentum"]) for g in optimizer.param_groups])
plateau = lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.5, patience=2)
ema = copy.deepcopy(model)
ema.requires_grad_(False)
ema_sd_model = copy.deepcopy(model)  # the same average, kept through state_dict() views with lerp_
decay = 0.9
best_loss, best_state, best_step, bad_steps = float("inf"), None, -1, 0
for step in range(40):
    model.train()
    optimizer.zero_grad()
    loss = F.cross_entropy(model(x_train), yb_train)
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
    optimizer.step()
    with torch.no_grad():
        for ema_p, p in zip(ema.parameters(), model.parameters()):
            ema_p.mul_(decay).add_(p, alpha=1 - decay)
        for ema_b, b in zip(ema.buffers(), model.buffers()):
            ema_b.copy_(b)
        model_sd = model.state_dict()
        for k, ema_v in ema_sd_model.state_dict().items():
            if ema_v.is_floating_point():
                ema_v.lerp_(model_sd[k], 1 - decay)
            else:
                ema_v.copy_(model_sd[k])
    print(f"finetune step {step} loss {loss.item()!r}")
    model.eval()
    with torch.no_grad():
        val_loss = F.cross_entropy(model(x_val), yb_val).item()
    plateau.step(val_loss)
    if step % 10 == 9:
        print(f"step {step}: grad norm {norm:.6f}, val {val_loss:.6f}, lrs {[g['lr'] for g in optimizer.param_groups]}")
    if val_loss < best_loss:
        best_loss, best_step, bad_steps = val_loss, step, 0
        best_state = copy.deepcopy(model.state_dict())
    else:
        bad_steps += 1
        if bad_steps >= 8:
            print(f"early stop at step {step}")
            break

last_val = val_loss
model.load_state_dict(best_state)
model.eval()
ema.eval()
with torch.no_grad():
    restored = F.cross_entropy(model(x_val), yb_val).item()
    ema_val = F.cross_entropy(ema(x_val), yb_val).item()
    ema_sd_model.eval()
    ema_sd_val = F.cross_entropy(ema_sd_model(x_val), yb_val).item()
    accuracy = (model(x_val).argmax(dim=1) == yb_val).double().mean().item()
print(f"best step {best_step}: val {best_loss:.8f}, restored {restored:.8f}, last {last_val:.8f}")
print(f"ema val {ema_val:.8f} and {ema_sd_val:.8f}, accuracy {accuracy:.4f}")
