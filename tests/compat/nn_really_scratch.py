# "What is torch.nn really?", first half: logistic regression on MNIST-like 28x28 images, written from scratch
# (torch.randn weights with requires_grad_, a hand-written log_softmax and nll, argmax accuracy, manual updates
# under torch.no_grad with weights.grad.zero_()), then refactored with F.cross_entropy, an nn.Module holding
# nn.Parameters, nn.Linear and optim.SGD, and batches sliced from a TensorDataset.
import math
import os

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn, optim
from torch.utils.data import TensorDataset

INIT = os.environ.get("COMPAT_INIT", "nn_really_scratch_init.npz")
torch.manual_seed(0)

# Synthetic stand-in for the pickled MNIST arrays: float64 pixels in [0, 1], int64 labels
rng = np.random.default_rng(14)
prototypes = rng.random((10, 784))


def fake_mnist(n):
    labels = rng.integers(0, 10, size=n)
    images = np.clip(0.3 * prototypes[labels] + 0.7 * rng.random((n, 784)), 0.0, 1.0)
    return images, labels


(x_train, y_train), (x_valid, y_valid) = fake_mnist(640), fake_mnist(128)
x_train, y_train, x_valid, y_valid = map(torch.tensor, (x_train, y_train, x_valid, y_valid))
n, c = x_train.shape
print(x_train, y_train)
print(x_train.shape)
print(y_train.min(), y_train.max())

saved = dict(np.load(INIT)) if os.path.exists(INIT) else {}


def initial(name, tensor):
    """The first run saves the fresh random tensor; every later run starts from the saved one."""
    if name in saved:
        return torch.tensor(saved[name])
    saved[name] = tensor.detach().clone().numpy()  # a copy: training updates the tensor in place
    return tensor


weights = initial("scratch/weights", torch.randn(784, 10, dtype=torch.float64) / math.sqrt(784))
weights.requires_grad_()
bias = torch.zeros(10, dtype=torch.float64, requires_grad=True)


def log_softmax(x):
    return x - x.exp().sum(-1).log().unsqueeze(-1)


def model(xb):
    return log_softmax(xb @ weights + bias)


bs = 64  # batch size
xb = x_train[0:bs]  # a mini-batch from x
preds = model(xb)  # predictions
print(preds[0], preds.shape)


def nll(input, target):
    return -input[range(target.shape[0]), target].mean()


loss_func = nll
yb = y_train[0:bs]
print(loss_func(preds, yb))


def accuracy(out, yb):
    preds = torch.argmax(out, dim=1)
    return (preds == yb).float().mean()


print(accuracy(preds, yb))

lr = 0.1  # learning rate
epochs = 2  # how many epochs to train for
step = 0
for epoch in range(epochs):
    for i in range((n - 1) // bs + 1):
        start_i = i * bs
        end_i = start_i + bs
        xb = x_train[start_i:end_i]
        yb = y_train[start_i:end_i]
        pred = model(xb)
        loss = loss_func(pred, yb)
        print(f"scratch step {step} loss {loss.item()!r}")
        step += 1

        loss.backward()
        with torch.no_grad():
            weights -= weights.grad * lr
            bias -= bias.grad * lr
            weights.grad.zero_()
            bias.grad.zero_()

print(loss_func(model(xb), yb), accuracy(model(xb), yb))

# Using torch.nn.functional
loss_func = F.cross_entropy


def model(xb):
    return xb @ weights + bias


print(loss_func(model(xb), yb), accuracy(model(xb), yb))


# Refactor using nn.Module
class Mnist_Logistic(nn.Module):
    def __init__(self):
        super().__init__()
        self.weights = nn.Parameter(torch.randn(784, 10, dtype=torch.float64) / math.sqrt(784))
        self.bias = nn.Parameter(torch.zeros(10, dtype=torch.float64))

    def forward(self, xb):
        return xb @ self.weights + self.bias


model = Mnist_Logistic()
with torch.no_grad():
    model.weights.copy_(initial("module/weights", model.weights))
print(loss_func(model(xb), yb).item())


def fit():
    step = 0
    for epoch in range(epochs):
        for i in range((n - 1) // bs + 1):
            start_i = i * bs
            end_i = start_i + bs
            xb = x_train[start_i:end_i]
            yb = y_train[start_i:end_i]
            pred = model(xb)
            loss = loss_func(pred, yb)
            print(f"module step {step} loss {loss.item()!r}")
            step += 1

            loss.backward()
            with torch.no_grad():
                for p in model.parameters():
                    p -= p.grad * lr
                model.zero_grad()


fit()
print(loss_func(model(xb), yb).item())


# Refactor using nn.Linear
class Mnist_Logistic(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(784, 10)

    def forward(self, xb):
        return self.lin(xb)


def get_model():
    model = Mnist_Logistic().double()
    for k, v in model.state_dict().items():
        v.copy_(initial(f"linear/{k}", v))
    return model, optim.SGD(model.parameters(), lr=lr)


model, opt = get_model()
print(loss_func(model(xb), yb).item())

step = 0
for epoch in range(epochs):
    for i in range((n - 1) // bs + 1):
        start_i = i * bs
        end_i = start_i + bs
        xb = x_train[start_i:end_i]
        yb = y_train[start_i:end_i]
        pred = model(xb)
        loss = loss_func(pred, yb)
        print(f"optim step {step} loss {loss.item()!r}")
        step += 1

        loss.backward()
        opt.step()
        opt.zero_grad()

print(loss_func(model(xb), yb).item())

# Refactor using Dataset
train_ds = TensorDataset(x_train, y_train)
model, opt = get_model()
step = 0
for epoch in range(epochs):
    for i in range((n - 1) // bs + 1):
        xb, yb = train_ds[i * bs: i * bs + bs]
        pred = model(xb)
        loss = loss_func(pred, yb)
        print(f"dataset step {step} loss {loss.item()!r}")
        step += 1

        loss.backward()
        opt.step()
        opt.zero_grad()

print(loss_func(model(xb), yb).item(), accuracy(model(xb), yb).item())
with torch.no_grad():
    print(f"valid loss {loss_func(model(x_valid), y_valid):.6f} accuracy {accuracy(model(x_valid), y_valid):.4f}")

if not os.path.exists(INIT):
    np.savez(INIT, **saved)
