# A small character-level language model built from PyTorch's own transformer modules rather than by hand:
# nn.TransformerEncoderLayer (batch_first, pre-norm with norm_first=True, activation="gelu") stacked by
# nn.TransformerEncoder with a final nn.LayerNorm, the causal mask from nn.Transformer.generate_square_subsequent_mask
# passed as mask= with the is_causal hint, token and position nn.Embedding, Adam, a no_grad validation phase in eval
# mode, a sequence-first nn.MultiheadAttention probe (bool key_padding_mask, need_weights, per-head weights) and
# greedy decoding. The model's repr and state_dict keys are printed, so both frameworks must name things alike.
import os

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

INIT = os.environ.get("COMPAT_INIT", "transformer_encoder_modules_init.npz")
torch.manual_seed(0)
torch.set_default_dtype(torch.float64)  # float64 throughout, so both frameworks compute the same numbers

text = "the quick brown fox jumps over the lazy dog and the dog sleeps while the fox runs off " * 3
chars = sorted(set(text))
stoi = {c: i for i, c in enumerate(chars)}
itos = {i: c for c, i in stoi.items()}
vocab_size = len(chars)
data = torch.tensor([stoi[c] for c in text], dtype=torch.long)
n = int(0.8 * len(data))
train_data, val_data = data[:n], data[n:]
block_size, batch_size = 12, 4


def get_batch(split, step):
    """Deterministic windows (no framework RNG): both runs see the same batches."""
    src = train_data if split == "train" else val_data
    starts = [(step * 37 + 23 * b) % (len(src) - block_size - 1) for b in range(batch_size)]
    x = torch.stack([src[i:i + block_size] for i in starts])
    y = torch.stack([src[i + 1:i + 1 + block_size] for i in starts])
    return x, y


class CharTransformer(nn.Module):
    def __init__(self, vocab_size, d_model=16, nhead=2, d_hid=32, nlayers=2, dropout=0.0):
        super().__init__()
        self.tok_emb = nn.Embedding(vocab_size, d_model)
        self.pos_emb = nn.Embedding(block_size, d_model)
        layer = nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward=d_hid, dropout=dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, nlayers, norm=nn.LayerNorm(d_model), enable_nested_tensor=False)
        self.head = nn.Linear(d_model, vocab_size)

    def forward(self, idx, targets=None):
        B, T = idx.shape
        x = self.tok_emb(idx) + self.pos_emb(torch.arange(T))
        mask = nn.Transformer.generate_square_subsequent_mask(T)
        x = self.encoder(x, mask=mask, is_causal=True)
        logits = self.head(x)
        if targets is None:
            return logits, None
        return logits, F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


model = CharTransformer(vocab_size)
if os.path.exists(INIT):
    model.load_state_dict({k: torch.from_numpy(v) for k, v in np.load(INIT).items()})
else:
    np.savez(INIT, **{k: v.detach().numpy() for k, v in model.state_dict().items()})
print(model)
print(list(model.state_dict().keys())[:8])
print(sum(p.numel() for p in model.parameters()), "parameters")

optimizer = torch.optim.Adam(model.parameters(), lr=3e-2)
for step in range(20):
    model.train()
    xb, yb = get_batch("train", step)
    _, loss = model(xb, yb)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    print(f"train step {step} loss {loss.item()!r}")
    if step % 4 == 3:
        model.eval()
        with torch.no_grad():
            xv, yv = get_batch("val", step)
            _, vloss = model(xv, yv)
        print(f"val step {step} loss {vloss.item()!r}")

# a sequence-first attention probe on the trained embeddings: bool key_padding_mask (True = padding)
probe = nn.MultiheadAttention(16, 2)
probe.load_state_dict({k: v for k, v in model.encoder.layers[0].self_attn.state_dict().items()})
with torch.no_grad():
    xb, _ = get_batch("val", 0)
    emb = model.tok_emb(xb).transpose(0, 1)  # (T, B, E)
    pad = torch.zeros(batch_size, block_size, dtype=torch.bool)
    pad[1, 8:] = True
    out, w = probe(emb, emb, emb, key_padding_mask=pad, need_weights=True, average_attn_weights=False)
print(tuple(out.shape), tuple(w.shape), w[1, 0, 3, 6:10])
print(w.sum(dim=-1).allclose(torch.ones(batch_size, 2, block_size)), w[1, :, :, 8:].abs().max().item())

model.eval()
idx = torch.tensor([[stoi[c] for c in "the "]], dtype=torch.long)
with torch.no_grad():
    for _ in range(8):
        logits, _ = model(idx[:, -block_size:])
        nxt = logits[:, -1, :].argmax(dim=-1, keepdim=True)
        idx = torch.cat([idx, nxt], dim=1)
print(repr("".join(itos[i] for i in idx[0].tolist())))
