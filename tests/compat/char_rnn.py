# Classify words by their "language" with a character-level RNN built from scratch, in the style of the
# "NLP From Scratch: Classifying Names with a Character-Level RNN" tutorial (one-hot letters by item assignment,
# torch.cat of input and hidden, LogSoftmax + NLLLoss, manual p.data.add_ updates, topk), then the same task
# with nn.GRUCell and an optimizer.
import os
import random
import string

import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim

INIT = os.environ.get("COMPAT_INIT", "char_rnn_init.npz")
torch.manual_seed(0)
random.seed(0)

all_letters = string.ascii_letters + " .,;'"
n_letters = len(all_letters)

# Three made-up "languages", each with its own letters
rng = np.random.default_rng(4)
alphabets = {"Aish": "aeiklmns", "Borq": "bdgoqruz", "Cyth": "cfhptwy"}
category_lines = {c: ["".join(rng.choice(list(a), size=rng.integers(3, 7))).capitalize() for _ in range(20)]
                  for c, a in alphabets.items()}
all_categories = list(category_lines)
n_categories = len(all_categories)


def letterToIndex(letter):
    return all_letters.find(letter)


def lineToTensor(line):
    tensor = torch.zeros(len(line), 1, n_letters, dtype=torch.float64)
    for li, letter in enumerate(line):
        tensor[li][0][letterToIndex(letter)] = 1
    return tensor


class RNN(nn.Module):
    def __init__(self, input_size, hidden_size, output_size):
        super(RNN, self).__init__()
        self.hidden_size = hidden_size
        self.i2h = nn.Linear(input_size + hidden_size, hidden_size)
        self.i2o = nn.Linear(input_size + hidden_size, output_size)
        self.softmax = nn.LogSoftmax(dim=1)

    def forward(self, input, hidden):
        combined = torch.cat((input, hidden), 1)
        hidden = self.i2h(combined)
        output = self.i2o(combined)
        output = self.softmax(output)
        return output, hidden

    def initHidden(self):
        return torch.zeros(1, self.hidden_size, dtype=torch.float64)


class GRUClassifier(nn.Module):
    def __init__(self, input_size, hidden_size, output_size):
        super().__init__()
        self.cell = nn.GRUCell(input_size, hidden_size)
        self.out = nn.Linear(hidden_size, output_size)

    def forward(self, line_tensor):
        hx = torch.zeros(1, self.cell.hidden_size, dtype=torch.float64)
        for i in range(line_tensor.size()[0]):
            hx = self.cell(line_tensor[i], hx)
        return torch.log_softmax(self.out(hx), dim=1)


rnn = RNN(n_letters, 32, n_categories).double()
gru = GRUClassifier(n_letters, 16, n_categories).double()
if os.path.exists(INIT):
    saved = np.load(INIT)
    rnn.load_state_dict({k[4:]: torch.tensor(v) for k, v in saved.items() if k.startswith("rnn.")})
    gru.load_state_dict({k[4:]: torch.tensor(v) for k, v in saved.items() if k.startswith("gru.")})
else:
    np.savez(INIT, **{f"rnn.{k}": v.numpy() for k, v in rnn.state_dict().items()},
             **{f"gru.{k}": v.numpy() for k, v in gru.state_dict().items()})


def categoryFromOutput(output):
    top_n, top_i = output.topk(1)
    category_i = top_i[0].item()
    return all_categories[category_i], category_i


def randomTrainingExample():
    category = random.choice(all_categories)
    line = random.choice(category_lines[category])
    category_tensor = torch.LongTensor([all_categories.index(category)])
    line_tensor = lineToTensor(line)
    return category, line, category_tensor, line_tensor


criterion = nn.NLLLoss()
learning_rate = 0.01


def train(category_tensor, line_tensor):
    hidden = rnn.initHidden()
    rnn.zero_grad()
    for i in range(line_tensor.size()[0]):
        output, hidden = rnn(line_tensor[i], hidden)
    loss = criterion(output, category_tensor)
    loss.backward()
    # Add parameters' gradients to their values, multiplied by learning rate
    for p in rnn.parameters():
        p.data.add_(p.grad.data, alpha=-learning_rate)
    return output, loss.item()


correct = 0
for it in range(200):
    category, line, category_tensor, line_tensor = randomTrainingExample()
    output, loss = train(category_tensor, line_tensor)
    print(f"rnn step {it} loss {loss!r}")
    guess, guess_i = categoryFromOutput(output)
    correct += guess == category
    if it % 50 == 49:
        print(f"{it + 1} {loss:.4f} {line} / {guess} {'✓' if guess == category else '✗ (%s)' % category}")
print(f"rnn: {correct} of 200 guessed right while training")

optimizer = optim.SGD(gru.parameters(), lr=0.1, momentum=0.5)
for it in range(200):
    category, line, category_tensor, line_tensor = randomTrainingExample()
    optimizer.zero_grad()
    output = gru(line_tensor)
    loss = criterion(output, category_tensor)
    loss.backward()
    optimizer.step()
    print(f"gru step {it} loss {loss.item()!r}")
