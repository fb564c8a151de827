# Word embeddings, as in the "Word Embeddings: Encoding Lexical Semantics" tutorial: an nn.Embedding lookup of a
# torch.tensor of word indices; the N-gram language model (embeddings(inputs).view((1, -1)), F.relu, F.log_softmax,
# nn.NLLLoss, optim.SGD, model.zero_grad(), total_loss += loss.item()) trained example by example; a look at
# model.embeddings.weight[word_to_ix[...]]; then the CBOW exercise (sum of the context embeddings, batched contexts
# of shape (N, 2 * CONTEXT_SIZE), nn.CrossEntropyLoss) with nearest words by F.cosine_similarity and topk.
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim

INIT = os.environ.get("COMPAT_INIT", "word_embeddings_init.npz")
torch.manual_seed(1)
saved = np.load(INIT) if os.path.exists(INIT) else None
to_save = {}


def init_weights(name, module):
    """The initial weights from $COMPAT_INIT when present, else this framework's own (saved there at the end)."""
    module.double()
    if saved is not None:
        module.load_state_dict({k[len(name) + 1:]: torch.tensor(v) for k, v in saved.items()
                                if k.startswith(name + ".")})
    to_save.update({f"{name}.{k}": v.detach().numpy().copy() for k, v in module.state_dict().items()})
    return module


word_to_ix = {"hello": 0, "world": 1}
embeds = init_weights("embeds", nn.Embedding(2, 5))  # 2 words in vocab, 5 dimensional embeddings
lookup_tensor = torch.tensor([word_to_ix["hello"]], dtype=torch.long)
hello_embed = embeds(lookup_tensor)
print(hello_embed)

CONTEXT_SIZE = 2
EMBEDDING_DIM = 10
# We will use Shakespeare Sonnet 2
test_sentence = """When forty winters shall besiege thy brow,
And dig deep trenches in thy beauty's field,
Thy youth's proud livery so gazed on now,
Will be a totter'd weed of small worth held:
Then being asked, where all thy beauty lies,
Where all the treasure of thy lusty days;
To say, within thine own deep sunken eyes,
Were an all-eating shame, and thriftless praise.""".split()
# we should tokenize the input, but we will ignore that for now
# build a list of tuples.
# Each tuple is ([ word_i-CONTEXT_SIZE, ..., word_i-1 ], target word)
ngrams = [
    (
        [test_sentence[i - j - 1] for j in range(CONTEXT_SIZE)],
        test_sentence[i]
    )
    for i in range(CONTEXT_SIZE, len(test_sentence))
]
# Print the first 3, just so you can see what they look like.
print(ngrams[:3])

vocab = sorted(set(test_sentence))
word_to_ix = {word: i for i, word in enumerate(vocab)}


class NGramLanguageModeler(nn.Module):

    def __init__(self, vocab_size, embedding_dim, context_size):
        super(NGramLanguageModeler, self).__init__()
        self.embeddings = nn.Embedding(vocab_size, embedding_dim)
        self.linear1 = nn.Linear(context_size * embedding_dim, 32)
        self.linear2 = nn.Linear(32, vocab_size)

    def forward(self, inputs):
        embeds = self.embeddings(inputs).view((1, -1))
        out = F.relu(self.linear1(embeds))
        out = self.linear2(out)
        log_probs = F.log_softmax(out, dim=1)
        return log_probs


losses = []
loss_function = nn.NLLLoss()
model = init_weights("ngram", NGramLanguageModeler(len(vocab), EMBEDDING_DIM, CONTEXT_SIZE))
optimizer = optim.SGD(model.parameters(), lr=0.01)

step = 0
for epoch in range(3):
    total_loss = 0
    for context, target in ngrams:

        # Step 1. Prepare the inputs to be passed to the model (i.e, turn the words
        # into integer indices and wrap them in tensors)
        context_idxs = torch.tensor([word_to_ix[w] for w in context], dtype=torch.long)

        # Step 2. Recall that torch *accumulates* gradients. Before passing in a
        # new instance, you need to zero out the gradients from the old
        # instance
        model.zero_grad()

        # Step 3. Run the forward pass, getting log probabilities over next
        # words
        log_probs = model(context_idxs)

        # Step 4. Compute your loss function. (Again, Torch wants the target
        # word wrapped in a tensor)
        loss = loss_function(log_probs, torch.tensor([word_to_ix[target]], dtype=torch.long))

        # Step 5. Do the backward pass and update the gradient
        loss.backward()
        optimizer.step()

        # Get the Python number from a 1-element Tensor by calling tensor.item()
        total_loss += loss.item()
        print(f"ngram step {step} loss {loss.item()!r}")
        step += 1
    losses.append(total_loss)
print(losses)  # The loss decreased every iteration over the training data!

# To get the embedding of a particular word, e.g. "beauty"
print(model.embeddings.weight[word_to_ix["beauty"]])

CONTEXT_SIZE = 2  # 2 words to the left, 2 to the right
raw_text = """We are about to study the idea of a computational process.
Computational processes are abstract beings that inhabit computers.
As they evolve, processes manipulate other abstract things called data.
The evolution of a process is directed by a pattern of rules
called a program. People create programs to direct processes. In effect,
we conjure the spirits of the computer with our spells.""".split()

# By deriving a set from `raw_text`, we deduplicate the array
vocab = sorted(set(raw_text))
vocab_size = len(vocab)

word_to_ix = {word: i for i, word in enumerate(vocab)}
ix_to_word = {i: word for word, i in word_to_ix.items()}
data = []
for i in range(CONTEXT_SIZE, len(raw_text) - CONTEXT_SIZE):
    context = (
        [raw_text[i - j - 1] for j in range(CONTEXT_SIZE)]
        + [raw_text[i + j + 1] for j in range(CONTEXT_SIZE)]
    )
    target = raw_text[i]
    data.append((context, target))
print(data[:5])


class CBOW(nn.Module):

    def __init__(self, vocab_size, embedding_dim):
        super().__init__()
        self.embeddings = nn.Embedding(vocab_size, embedding_dim)
        self.linear = nn.Linear(embedding_dim, vocab_size)

    def forward(self, inputs):
        embeds = self.embeddings(inputs).sum(dim=-2)
        return self.linear(embeds)


# Create your model and train. Here are some functions to help you make
# the data ready for use by your module.
def make_context_vector(context, word_to_ix):
    idxs = [word_to_ix[w] for w in context]
    return torch.tensor(idxs, dtype=torch.long)


print(make_context_vector(data[0][0], word_to_ix))  # example

cbow = init_weights("cbow", CBOW(vocab_size, EMBEDDING_DIM))
contexts = torch.stack([make_context_vector(context, word_to_ix) for context, _ in data])
targets = torch.tensor([word_to_ix[target] for _, target in data])
criterion = nn.CrossEntropyLoss()
optimizer = optim.Adam(cbow.parameters(), lr=0.05)
for step in range(60):
    optimizer.zero_grad()
    loss = criterion(cbow(contexts), targets)
    loss.backward()
    optimizer.step()
    print(f"cbow step {step} loss {loss.item()!r}")

with torch.no_grad():
    predicted = cbow(contexts).argmax(dim=1)
    print("cbow accuracy", (predicted == targets).float().mean().item())
    print("predicted for", data[0][0], "->", ix_to_word[predicted[0].item()])
    emb = cbow.embeddings.weight
    query = emb[word_to_ix["processes"]]
    similarity = F.cosine_similarity(query.unsqueeze(0), emb, dim=1)
    values, indices = similarity.topk(4)
    print("nearest to 'processes':", [ix_to_word[i] for i in indices.tolist()], values)

if saved is None:
    np.savez(INIT, **to_save)
