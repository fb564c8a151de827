# Classify small 4x4 "images" of three blob classes: TensorDataset and a custom Dataset, DataLoader batches,
# a small convolution-free network with BatchNorm, CrossEntropyLoss, SGD with momentum, and an evaluation pass
# under model.eval() / torch.no_grad() with argmax accuracy.
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
from torch.utils.data import DataLoader, TensorDataset

INIT = os.environ.get("COMPAT_INIT", "classifier_dataloader_init.npz")
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
torch.manual_seed(0)

rng = np.random.default_rng(3)
centers = rng.standard_normal((3, 1, 4, 4))


def make_blobs(n):
    labels = rng.integers(0, 3, size=n)
    images = centers[labels] + 1.5 * rng.standard_normal((n, 1, 4, 4))
    return torch.from_numpy(images), torch.from_numpy(labels)


class Blobs(torch.utils.data.Dataset):
    """The test set, as a map-style dataset."""

    def __init__(self, n):
        self.images, self.labels = make_blobs(n)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, idx):
        return self.images[idx], self.labels[idx]


train_images, train_labels = make_blobs(256)
train_loader = DataLoader(TensorDataset(train_images, train_labels), batch_size=32, shuffle=False)
testset = Blobs(120)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(16, 32)
        self.bn1 = nn.BatchNorm1d(32)
        self.fc2 = nn.Linear(32, 3)

    def forward(self, x):
        x = x.view(x.size(0), -1)
        x = F.relu(self.bn1(self.fc1(x)))
        return self.fc2(x)


model = Net().double().to(device)
if os.path.exists(INIT):
    model.load_state_dict({k: torch.tensor(v) for k, v in np.load(INIT).items()})
else:
    np.savez(INIT, **{k: v.cpu().numpy() for k, v in model.state_dict().items()})

criterion = nn.CrossEntropyLoss()
optimizer = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)

step = 0
for epoch in range(4):
    model.train()
    running_loss = 0.0
    for inputs, labels in train_loader:
        inputs, labels = inputs.to(device), labels.to(device)
        optimizer.zero_grad()
        outputs = model(inputs)
        loss = criterion(outputs, labels)
        loss.backward()
        optimizer.step()
        print(f"train step {step} loss {loss.item()!r}")
        step += 1
        running_loss += loss.item()
    print(f"[epoch {epoch + 1}] loss: {running_loss / len(train_loader):.3f}")

# Let us look at how the network performs on the whole test set
test_loader = DataLoader(testset, batch_size=50, shuffle=False, num_workers=2)
model.eval()
correct = total = 0
test_loss = 0.0
with torch.no_grad():
    for inputs, labels in test_loader:
        outputs = model(inputs.to(device))
        test_loss += F.cross_entropy(outputs, labels, reduction="sum").item()
        _, predicted = torch.max(outputs.data, 1)
        total += labels.size(0)
        correct += (predicted == labels).sum().item()
print(f"Accuracy of the network on the {total} test images: {100 * correct // total} %, loss {test_loss / total:.4f}")
