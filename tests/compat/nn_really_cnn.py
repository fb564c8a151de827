# "What is torch.nn really?", second half: TensorDataset and DataLoader, a validation loop under model.eval() and
# torch.no_grad(), the get_data / loss_batch / fit structure with the size-weighted validation loss, then a CNN
# (nn.Conv2d with stride 2 and padding 1, F.relu, F.avg_pool2d) trained with SGD and momentum, the same network as
# nn.Sequential with a Lambda module, and a WrappedDataLoader feeding a Sequential that ends in AdaptiveAvgPool2d.
import os

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn, optim
from torch.utils.data import DataLoader, TensorDataset

INIT = os.environ.get("COMPAT_INIT", "nn_really_cnn_init.npz")
torch.manual_seed(0)

# Synthetic stand-in for the pickled MNIST arrays: float64 28x28 images flattened to 784, int64 labels
rng = np.random.default_rng(7)
# dark backgrounds; each digit class has its own strokes, thicker for higher digits
strokes = (rng.random((10, 28, 28)) < np.linspace(0.05, 0.5, 10)[:, None, None]).astype(np.float64)


def fake_mnist(n):
    labels = rng.integers(0, 10, size=n)
    images = np.clip(strokes[labels] + 0.2 * rng.random((n, 28, 28)), 0.0, 1.0)
    return images.reshape(n, 784), labels


(x_train, y_train), (x_valid, y_valid) = fake_mnist(64), fake_mnist(64)
x_train, y_train, x_valid, y_valid = map(torch.tensor, (x_train, y_train, x_valid, y_valid))
n, c = x_train.shape

saved = dict(np.load(INIT)) if os.path.exists(INIT) else {}


def initial_weights(name, model):
    """The first run records the freshly initialised weights; every later run starts from the saved ones."""
    if any(k.startswith(name + "/") for k in saved):
        model.load_state_dict({k.split("/", 1)[1]: torch.tensor(v) for k, v in saved.items()
                               if k.startswith(name + "/")})
    else:
        saved.update({f"{name}/{k}": v.cpu().numpy().copy() for k, v in model.state_dict().items()})
    return model


bs = 32
lr = 0.2
epochs = 4
loss_func = F.cross_entropy
dev = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


class Mnist_Logistic(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(784, 10)

    def forward(self, xb):
        return self.lin(xb)


def get_model():
    model = initial_weights("logistic", Mnist_Logistic().double())
    return model, optim.SGD(model.parameters(), lr=lr)


# Add validation
train_ds = TensorDataset(x_train, y_train)
train_dl = DataLoader(train_ds, batch_size=bs, shuffle=False)

valid_ds = TensorDataset(x_valid, y_valid)
valid_dl = DataLoader(valid_ds, batch_size=bs * 2)

model, opt = get_model()
step = 0
for epoch in range(epochs):
    model.train()
    for xb, yb in train_dl:
        pred = model(xb)
        loss = loss_func(pred, yb)
        print(f"dataloader step {step} loss {loss.item()!r}")
        step += 1

        loss.backward()
        opt.step()
        opt.zero_grad()

    model.eval()
    with torch.no_grad():
        valid_loss = sum(loss_func(model(xb), yb) for xb, yb in valid_dl)

    print(epoch, valid_loss / len(valid_dl))


# Create fit() and get_data()
def loss_batch(model, loss_func, xb, yb, opt=None):
    loss = loss_func(model(xb), yb)

    if opt is not None:
        loss.backward()
        opt.step()
        opt.zero_grad()

    return loss.item(), len(xb)


def fit(epochs, model, loss_func, opt, train_dl, valid_dl, phase):
    step = 0
    for epoch in range(epochs):
        model.train()
        for xb, yb in train_dl:
            loss, _ = loss_batch(model, loss_func, xb, yb, opt)
            print(f"{phase} step {step} loss {loss!r}")
            step += 1

        model.eval()
        with torch.no_grad():
            losses, nums = zip(
                *[loss_batch(model, loss_func, xb, yb) for xb, yb in valid_dl]
            )
        val_loss = np.sum(np.multiply(losses, nums)) / np.sum(nums)

        print(epoch, val_loss)


def get_data(train_ds, valid_ds, bs):
    return (
        DataLoader(train_ds, batch_size=bs, shuffle=False),
        DataLoader(valid_ds, batch_size=bs * 2),
    )


train_dl, valid_dl = get_data(train_ds, valid_ds, bs)
model, opt = get_model()
fit(epochs, model, loss_func, opt, train_dl, valid_dl, "fit")


# Switch to CNN
class Mnist_CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, kernel_size=3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(16, 16, kernel_size=3, stride=2, padding=1)
        self.conv3 = nn.Conv2d(16, 10, kernel_size=3, stride=2, padding=1)

    def forward(self, xb):
        xb = xb.view(-1, 1, 28, 28)
        xb = F.relu(self.conv1(xb))
        xb = F.relu(self.conv2(xb))
        xb = F.relu(self.conv3(xb))
        xb = F.avg_pool2d(xb, 4)
        return xb.view(-1, xb.size(1))


lr = 0.4
model = initial_weights("cnn", Mnist_CNN().double())
opt = optim.SGD(model.parameters(), lr=lr, momentum=0.9)
fit(epochs, model, loss_func, opt, train_dl, valid_dl, "cnn")


# Using nn.Sequential
class Lambda(nn.Module):
    def __init__(self, func):
        super().__init__()
        self.func = func

    def forward(self, x):
        return self.func(x)


def preprocess(x):
    return x.view(-1, 1, 28, 28)


model = nn.Sequential(
    Lambda(preprocess),
    nn.Conv2d(1, 16, kernel_size=3, stride=2, padding=1),
    nn.ReLU(),
    nn.Conv2d(16, 16, kernel_size=3, stride=2, padding=1),
    nn.ReLU(),
    nn.Conv2d(16, 10, kernel_size=3, stride=2, padding=1),
    nn.ReLU(),
    nn.AvgPool2d(4),
    Lambda(lambda x: x.view(x.size(0), -1)),
).double()
print(model)
initial_weights("sequential", model)
opt = optim.SGD(model.parameters(), lr=lr, momentum=0.9)
fit(epochs, model, loss_func, opt, train_dl, valid_dl, "sequential")


# Wrapping DataLoader
def preprocess(x, y):
    return x.view(-1, 1, 28, 28).to(dev), y.to(dev)


class WrappedDataLoader:
    def __init__(self, dl, func):
        self.dl = dl
        self.func = func

    def __len__(self):
        return len(self.dl)

    def __iter__(self):
        for b in self.dl:
            yield (self.func(*b))


train_dl, valid_dl = get_data(train_ds, valid_ds, bs)
train_dl = WrappedDataLoader(train_dl, preprocess)
valid_dl = WrappedDataLoader(valid_dl, preprocess)

model = nn.Sequential(
    nn.Conv2d(1, 16, kernel_size=3, stride=2, padding=1),
    nn.ReLU(),
    nn.Conv2d(16, 16, kernel_size=3, stride=2, padding=1),
    nn.ReLU(),
    nn.Conv2d(16, 10, kernel_size=3, stride=2, padding=1),
    nn.ReLU(),
    nn.AdaptiveAvgPool2d(1),
    Lambda(lambda x: x.view(x.size(0), -1)),
)
model.to(dev, torch.float64)
initial_weights("wrapped", model)
opt = optim.SGD(model.parameters(), lr=lr, momentum=0.9)
fit(epochs, model, loss_func, opt, train_dl, valid_dl, "wrapped")

model.eval()
with torch.no_grad():
    xb, yb = next(iter(valid_dl))
    print(xb.shape, yb.shape, f"accuracy {(torch.argmax(model(xb), dim=1) == yb).float().mean():.4f}")

if not os.path.exists(INIT):
    np.savez(INIT, **saved)
