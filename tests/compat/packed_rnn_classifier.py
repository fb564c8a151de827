# Variable-length text batches: a vocabulary with <pad> = 0, sentences as LongTensors collated with
# torch.nn.utils.rnn.pad_sequence(batch_first=True) and their lengths, nn.Embedding(padding_idx=0), then
# (1) a sentence classifier: pack_padded_sequence(..., batch_first=True, enforce_sorted=False) into a 2-layer
# bidirectional nn.LSTM (dropout=0) whose final hidden states h_n[-2], h_n[-1] are concatenated for nn.Linear and
# nn.CrossEntropyLoss, trained with Adam;
# (2) a word tagger: packed nn.GRU(bidirectional=True), pad_packed_sequence back to (batch, time, 2*hidden),
# F.log_softmax + nn.NLLLoss(ignore_index=-1) on tags padded with -1, trained with SGD; accuracy over the real
# tokens under torch.no_grad().
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence, pad_sequence

INIT = os.environ.get("COMPAT_INIT", "packed_rnn_classifier_init.npz")
torch.manual_seed(0)

rng = np.random.default_rng(7)
PAD = 0
words = ["<pad>", "the", "a", "movie", "film", "plot", "was", "is", "good", "great", "fun", "bad", "awful",
         "boring", "very", "not", "really"]
word_to_ix = {w: i for i, w in enumerate(words)}
positive, negative = ["good", "great", "fun"], ["bad", "awful", "boring"]
tag_to_ix = {"DET": 0, "NN": 1, "V": 2, "ADJ": 3, "ADV": 4}
word_tag = {"the": "DET", "a": "DET", "movie": "NN", "film": "NN", "plot": "NN", "was": "V", "is": "V",
            "very": "ADV", "not": "ADV", "really": "ADV"}


def make_sentence():
    label = int(rng.integers(0, 2))
    sent = [str(rng.choice(["the", "a"]))] if rng.random() < 0.5 else []
    sent += [str(rng.choice(["movie", "film", "plot"])), str(rng.choice(["was", "is"]))]
    sent += [str(rng.choice(["very", "really", "not"])) for _ in range(int(rng.integers(0, 4)))]
    sent.append(str(rng.choice(positive if label else negative)))
    return sent, label


data = [make_sentence() for _ in range(24)]


def collate(batch):
    seqs = [torch.tensor([word_to_ix[w] for w in sent], dtype=torch.long) for sent, _ in batch]
    tags = [torch.tensor([tag_to_ix[word_tag.get(w, "ADJ")] for w in sent]) for sent, _ in batch]
    lengths = torch.tensor([len(s) for s in seqs])
    labels = torch.tensor([label for _, label in batch])
    return (pad_sequence(seqs, batch_first=True, padding_value=PAD), lengths, labels,
            pad_sequence(tags, batch_first=True, padding_value=-1))


batches = [collate(data[i:i + 6]) for i in range(0, len(data), 6)]
print("padded batch", batches[0][0].shape, "lengths", batches[0][1].tolist())


class LSTMClassifier(nn.Module):
    def __init__(self, vocab_size, embedding_dim, hidden_dim, num_classes):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=PAD)
        self.lstm = nn.LSTM(embedding_dim, hidden_dim, num_layers=2, bidirectional=True, batch_first=True,
                            dropout=0)
        self.fc = nn.Linear(hidden_dim * 2, num_classes)

    def forward(self, text, lengths):
        embedded = self.embedding(text)
        packed = pack_padded_sequence(embedded, lengths, batch_first=True, enforce_sorted=False)
        packed_output, (hidden, cell) = self.lstm(packed)
        hidden = torch.cat((hidden[-2, :, :], hidden[-1, :, :]), dim=1)
        return self.fc(hidden)


class GRUTagger(nn.Module):
    def __init__(self, vocab_size, embedding_dim, hidden_dim, tagset_size):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=PAD)
        self.gru = nn.GRU(embedding_dim, hidden_dim, batch_first=True, bidirectional=True)
        self.hidden2tag = nn.Linear(2 * hidden_dim, tagset_size)

    def forward(self, text, lengths):
        packed = pack_padded_sequence(self.embedding(text), lengths.cpu(), batch_first=True, enforce_sorted=False)
        packed_out, _ = self.gru(packed)
        out, out_lengths = pad_packed_sequence(packed_out, batch_first=True)
        return F.log_softmax(self.hidden2tag(out), dim=-1), out_lengths


classifier = LSTMClassifier(len(words), 8, 6, 2).double()
tagger = GRUTagger(len(words), 8, 5, len(tag_to_ix)).double()
if os.path.exists(INIT):
    saved = np.load(INIT)
    classifier.load_state_dict({k[4:]: torch.tensor(v) for k, v in saved.items() if k.startswith("cls.")})
    tagger.load_state_dict({k[4:]: torch.tensor(v) for k, v in saved.items() if k.startswith("tag.")})
else:
    np.savez(INIT, **{f"cls.{k}": v.numpy() for k, v in classifier.state_dict().items()},
             **{f"tag.{k}": v.numpy() for k, v in tagger.state_dict().items()})

criterion = nn.CrossEntropyLoss()
optimizer = optim.Adam(classifier.parameters(), lr=0.02)
step = 0
for epoch in range(6):
    classifier.train()
    for text, lengths, labels, _ in batches:
        optimizer.zero_grad()
        logits = classifier(text, lengths)
        loss = criterion(logits, labels)
        loss.backward()
        optimizer.step()
        print(f"classifier step {step} loss {loss.item()!r}")
        step += 1

classifier.eval()
correct = total = 0
with torch.no_grad():
    for text, lengths, labels, _ in batches:
        preds = classifier(text, lengths).argmax(dim=1)
        correct += (preds == labels).sum().item()
        total += labels.size(0)
print(f"classifier accuracy {correct / total:.4f}")

loss_function = nn.NLLLoss(ignore_index=-1)
optimizer = optim.SGD(tagger.parameters(), lr=0.5, momentum=0.9)
step = 0
for epoch in range(6):
    for text, lengths, _, tags in batches:
        tagger.zero_grad()
        tag_scores, out_lengths = tagger(text, lengths)
        loss = loss_function(tag_scores.view(-1, tag_scores.shape[-1]), tags[:, :tag_scores.shape[1]].reshape(-1))
        loss.backward()
        optimizer.step()
        print(f"tagger step {step} loss {loss.item()!r}")
        step += 1

with torch.no_grad():
    text, lengths, _, tags = batches[0]
    tag_scores, out_lengths = tagger(text, lengths)
    predicted = tag_scores.argmax(dim=-1)
    mask = tags != -1
    print("out_lengths", out_lengths.tolist(), out_lengths.dtype == torch.int64)
    print(f"tagger accuracy {(predicted[mask] == tags[mask]).double().mean().item():.4f}")
    print("first sentence", predicted[0, :lengths[0]].tolist(), tags[0, :lengths[0]].tolist())

# What a PackedSequence holds: the time-major data of the sorted batch and the permutations
packed = pack_padded_sequence(torch.tensor([[1.0, 2.0, 0.0], [3.0, 4.0, 5.0], [6.0, 0.0, 0.0]]), torch.tensor([2, 3, 1]),
                              batch_first=True, enforce_sorted=False)
print(packed.data, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices)
padded, lens = pad_packed_sequence(packed, batch_first=True, padding_value=-1.0, total_length=4)
print(padded, lens)
