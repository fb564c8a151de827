# A hand-written data pipeline for variable-length sequences, as the torch.utils.data docs and tutorials build one:
# a map-style Dataset returning dicts, a transform callable written in torch ops (torch.flip, slicing with offsets
# precomputed in NumPy), Subset and ConcatDataset, a custom collate_fn that pads with pad_sequence, DataLoader with
# drop_last=True, an explicit sampler (SequentialSampler inside a BatchSampler, or a plain list of indices),
# batch_size=None for single samples, an IterableDataset stream, and a class-weighted CrossEntropyLoss with
# label_smoothing (weights from torch.bincount).
import os

import numpy as np
import torch
import torch.nn as nn
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import (BatchSampler, ConcatDataset, DataLoader, Dataset, IterableDataset, SequentialSampler,
                              Subset)

INIT = os.environ.get("COMPAT_INIT", "data_pipeline_padding_init.npz")
torch.manual_seed(0)
rng = np.random.default_rng(5)

NUM_CLASSES, FEATURES, HIDDEN = 3, 4, 8
prototypes = rng.standard_normal((NUM_CLASSES, FEATURES))


def make_sequences(n, min_len=3, max_len=9):
    labels = rng.integers(0, NUM_CLASSES, size=n)
    lengths = rng.integers(min_len, max_len + 1, size=n)
    seqs = [prototypes[c] + 0.8 * rng.standard_normal((l, FEATURES)) for c, l in zip(labels, lengths)]
    return seqs, labels


class ReverseTime:
    """Reverse every sequence in time (a transform that works on the sample dict)."""

    def __call__(self, sample):
        return {**sample, "seq": torch.flip(sample["seq"], dims=[0])}


class Standardize:
    def __init__(self, mean, std):
        self.mean, self.std = mean, std

    def __call__(self, sample):
        return {**sample, "seq": (sample["seq"] - self.mean) / self.std}


class Compose:
    def __init__(self, transforms):
        self.transforms = transforms

    def __call__(self, sample):
        for t in self.transforms:
            sample = t(sample)
        return sample


class SequenceDataset(Dataset):
    def __init__(self, n, transform=None):
        seqs, labels = make_sequences(n)
        self.seqs = [torch.from_numpy(s) for s in seqs]
        self.labels = torch.from_numpy(labels)
        # a random crop of the first 0..2 steps, drawn once here so every epoch sees the same samples
        self.offsets = rng.integers(0, 3, size=n)
        self.transform = transform

    def __len__(self):
        return len(self.seqs)

    def __getitem__(self, idx):
        start = int(self.offsets[idx])
        sample = {"seq": self.seqs[idx][start:], "label": self.labels[idx], "index": idx}
        if self.transform:
            sample = self.transform(sample)
        return sample


mean, std = torch.tensor(prototypes.mean(0)), torch.tensor(prototypes.std(0) + 1.0)
part_a = SequenceDataset(30, transform=Standardize(mean, std))
part_b = SequenceDataset(26, transform=Compose([ReverseTime(), Standardize(mean, std)]))
full = ConcatDataset([part_a, part_b])
perm = rng.permutation(len(full))
train_set, val_set = Subset(full, perm[:44].tolist()), Subset(full, perm[44:].tolist())
print("datasets:", len(part_a), len(part_b), len(full), len(train_set), len(val_set))
print("cumulative sizes:", full.cumulative_sizes)


def pad_collate(batch):
    seqs = [sample["seq"] for sample in batch]
    lengths = torch.tensor([len(s) for s in seqs])
    padded = pad_sequence(seqs, batch_first=True)
    labels = torch.stack([sample["label"] for sample in batch])
    return padded, lengths, labels


class MeanPoolClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(FEATURES, HIDDEN)
        self.head = nn.Linear(HIDDEN, NUM_CLASSES)

    def forward(self, padded, lengths):
        h = torch.tanh(self.proj(padded))
        mask = torch.arange(padded.size(1))[None, :] < lengths[:, None]
        pooled = (h * mask.unsqueeze(-1)).sum(dim=1) / lengths.unsqueeze(1)
        return self.head(pooled)


model = MeanPoolClassifier().double()
if os.path.exists(INIT):
    model.load_state_dict({k: torch.tensor(v) for k, v in np.load(INIT).items()})
else:
    np.savez(INIT, **{k: v.numpy() for k, v in model.state_dict().items()})

train_labels = torch.stack([train_set[i]["label"] for i in range(len(train_set))])
counts = torch.bincount(train_labels, minlength=NUM_CLASSES)
class_weights = counts.sum() / (NUM_CLASSES * counts.double())
print("class counts:", counts.tolist(), "weights:", [round(w, 6) for w in class_weights.tolist()])
criterion = nn.CrossEntropyLoss(weight=class_weights, label_smoothing=0.1)
optimizer = torch.optim.Adam(model.parameters(), lr=0.02)

train_loader = DataLoader(train_set, batch_size=8, shuffle=False, collate_fn=pad_collate, drop_last=True)
padded, lengths, labels = next(iter(train_loader))
print("batches per epoch:", len(train_loader), "first batch:", tuple(padded.shape), lengths.tolist(),
      labels.tolist(), padded.dtype == torch.float64)
print("padding is zero:", bool((padded[lengths < padded.size(1)][:, -1] == 0).all()))

step = 0
for epoch in range(3):
    model.train()
    for padded, lengths, labels in train_loader:
        optimizer.zero_grad()
        loss = criterion(model(padded, lengths), labels)
        loss.backward()
        optimizer.step()
        print(f"train step {step} loss {loss.item()!r}")
        step += 1

# The same data in bigger batches through an explicit sampler: a BatchSampler over a SequentialSampler
batch_sampler = BatchSampler(SequentialSampler(train_set), batch_size=16, drop_last=True)
print("batch sampler:", len(batch_sampler), list(batch_sampler)[0][:4])
big_loader = DataLoader(train_set, batch_sampler=batch_sampler, collate_fn=pad_collate)
step = 0
for epoch in range(3):
    for padded, lengths, labels in big_loader:
        optimizer.zero_grad()
        loss = criterion(model(padded, lengths), labels)
        loss.backward()
        optimizer.step()
        print(f"big step {step} loss {loss.item()!r}")
        step += 1

# Validation: a list of indices as the sampler, then single samples with batch_size=None
model.eval()
val_loader = DataLoader(val_set, batch_size=5, sampler=list(range(len(val_set)))[::-1], collate_fn=pad_collate)
correct, total, val_loss = 0, 0, 0.0
with torch.no_grad():
    for padded, lengths, labels in val_loader:
        logits = model(padded, lengths)
        val_loss += nn.functional.cross_entropy(logits, labels, reduction="sum").item()
        correct += (logits.argmax(dim=1) == labels).sum().item()
        total += labels.numel()
print(f"val loss {val_loss / total:.6f} accuracy {correct}/{total}")

single = DataLoader(val_set, batch_size=None)
with torch.no_grad():
    for n, sample in enumerate(single):
        logits = model(sample["seq"].unsqueeze(0), torch.tensor([sample["seq"].size(0)]))
        print("sample", sample["index"], tuple(sample["seq"].shape), sample["label"].item(),
              logits.argmax(1).item(), f"{logits.softmax(1).max().item():.6f}")
        if n == 3:
            break


# A stream of fixed-length windows as an IterableDataset, batched by the DataLoader's default collate
class WindowStream(IterableDataset):
    def __init__(self, n, length):
        self.n, self.length = n, length
        self.data = make_sequences(n, length, length)

    def __iter__(self):
        seqs, labels = self.data
        for seq, label in zip(seqs, labels):
            yield torch.from_numpy(seq), int(label)


stream_loader = DataLoader(WindowStream(20, 5), batch_size=6, drop_last=True)
step = 0
for epoch in range(2):
    for windows, labels in stream_loader:
        lengths = torch.full((windows.size(0),), windows.size(1))
        optimizer.zero_grad()
        loss = criterion(model(windows, lengths), labels)
        loss.backward()
        optimizer.step()
        print(f"stream step {step} loss {loss.item()!r}")
        step += 1
print("stream batch:", tuple(windows.shape), labels.dtype == torch.int64, labels.tolist())
