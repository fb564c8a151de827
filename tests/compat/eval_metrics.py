# Training and evaluating a 7-class classifier with the metrics written in tensor ops, as people write them in
# their evaluation loops: a Dataset returning dicts with nested tuples (default_collate), F.one_hot targets,
# then accuracy, torch.bincount, a confusion matrix (index_put_ with accumulate=True and scatter_add_),
# per-class precision/recall with torch.where and .sum(dim), top-5 accuracy with torch.topk, torch.unique with
# return_counts, torch.argsort, torch.histc of the confidences and a one-vs-rest ROC AUC from torch.cumsum.
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, default_collate

INIT = os.environ.get("COMPAT_INIT", "eval_metrics_init.npz")
torch.manual_seed(0)
rng = np.random.default_rng(21)
C, D = 7, 6
centers = 1.2 * rng.standard_normal((C, D))


class PointsDataset(Dataset):
    def __init__(self, n):
        self.y = rng.integers(0, C, size=n)
        self.x = centers[self.y] + rng.standard_normal((n, D))
        self.w = rng.uniform(0.5, 1.5, size=n)

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {"x": torch.from_numpy(self.x[i]), "target": (int(self.y[i]), (i, float(self.w[i])))}


train_data, test_data = PointsDataset(96), PointsDataset(70)
batch = default_collate([train_data[0], train_data[1], train_data[2]])
print("collated:", sorted(batch), tuple(batch["x"].shape), batch["target"][0].tolist(),
      batch["target"][1][0].tolist(), batch["target"][1][1].dtype == torch.float64)

model = nn.Sequential(nn.Linear(D, 16), nn.ReLU(), nn.Linear(16, C)).double()
if os.path.exists(INIT):
    model.load_state_dict({k: torch.tensor(v) for k, v in np.load(INIT).items()})
else:
    np.savez(INIT, **{k: v.numpy() for k, v in model.state_dict().items()})
optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

loader = DataLoader(train_data, batch_size=16, shuffle=False)
step = 0
for epoch in range(4):
    for batch in loader:
        labels, (idx, weights) = batch["target"]
        logits = model(batch["x"])
        soft = F.one_hot(labels, num_classes=C).to(logits.dtype)
        per_sample = -(soft * F.log_softmax(logits, dim=1)).sum(dim=1)
        loss = (per_sample * weights).sum() / weights.sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        print(f"train step {step} loss {loss.item()!r}")
        step += 1

# ---- evaluation: gather all logits, then the metrics
model.eval()
all_logits, all_labels = [], []
with torch.no_grad():
    for batch in DataLoader(test_data, batch_size=32):
        all_logits.append(model(batch["x"]))
        all_labels.append(batch["target"][0])
logits, labels = torch.cat(all_logits), torch.cat(all_labels)
probs = logits.softmax(dim=1)
preds = logits.argmax(dim=1)

accuracy = (preds == labels).float().mean().item()
print(f"accuracy {accuracy:.6f}")
print("predicted per class:", torch.bincount(preds, minlength=C).tolist())
print("label counts:", torch.bincount(labels).tolist())

confusion = torch.zeros(C, C, dtype=torch.long)
confusion.index_put_((labels, preds), torch.ones_like(labels), accumulate=True)
print("confusion matrix:")
print(confusion)
flat = torch.zeros(C * C, dtype=torch.long).scatter_add_(0, labels * C + preds, torch.ones_like(labels))
print("scatter_add_ agrees:", torch.equal(flat.view(C, C), confusion))

true_pos = confusion.diag().double()
predicted, actual = confusion.sum(dim=0).double(), confusion.sum(dim=1).double()
precision = torch.where(predicted > 0, true_pos / predicted.clamp(min=1), torch.zeros_like(true_pos))
recall = torch.where(actual > 0, true_pos / actual.clamp(min=1), torch.zeros_like(true_pos))
f1 = torch.where(precision + recall > 0, 2 * precision * recall / (precision + recall), torch.zeros_like(recall))
print("precision", [f"{p:.4f}" for p in precision.tolist()])
print("recall   ", [f"{r:.4f}" for r in recall.tolist()])
print(f"macro F1 {f1.mean().item():.6f}")

top5 = logits.topk(5, dim=1).indices
top5_acc = (top5 == labels.unsqueeze(1)).any(dim=1).double().mean()
print(f"top-5 accuracy {top5_acc.item():.6f}")
_, top3 = torch.topk(probs, k=3, dim=1, largest=True, sorted=True)
print(f"top-3 accuracy {(top3 == labels[:, None]).sum().item() / len(labels):.6f}")

values, counts = torch.unique(preds, return_counts=True)
print("unique predictions:", values.tolist(), counts.tolist())
print("unique sorted labels:", torch.unique(labels, sorted=True).tolist())

confidence = probs.max(dim=1).values
hist = torch.histc(confidence, bins=5, min=0, max=1)
print("confidence histogram:", hist.tolist(), hist.dtype == confidence.dtype)
least_sure = torch.argsort(confidence)[:5]
print("least confident:", least_sure.tolist(), [f"{c:.4f}" for c in confidence[least_sure].tolist()])


def roc_auc(scores, positive):
    order = torch.argsort(scores, descending=True)
    hits = positive[order].double()
    tpr = torch.cumsum(hits, dim=0) / hits.sum()
    fpr = torch.cumsum(1 - hits, dim=0) / (1 - hits).sum()
    tpr = torch.cat([torch.zeros(1, dtype=tpr.dtype), tpr])
    fpr = torch.cat([torch.zeros(1, dtype=fpr.dtype), fpr])
    return ((fpr[1:] - fpr[:-1]) * (tpr[1:] + tpr[:-1]) / 2).sum()


aucs = torch.stack([roc_auc(probs[:, c], labels == c) for c in range(C)])
print("one-vs-rest AUC:", [f"{a:.6f}" for a in aucs.tolist()], f"mean {aucs.mean().item():.6f}")
