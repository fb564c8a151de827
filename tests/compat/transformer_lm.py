# Word-level language modelling with a transformer encoder written from scratch, in the style of the PyTorch
# tutorial "Language Modeling with nn.Transformer" (sequence-first batches from batchify/get_batch, a sinusoidal
# PositionalEncoding kept in register_buffer and filled by strided item assignment, the additive
# torch.triu(torch.ones(sz, sz) * float('-inf'), diagonal=1) mask, embedding * math.sqrt(d_model), uniform_ init
# through .data, CrossEntropyLoss on output.view(-1, ntokens), clip_grad_norm_, best-model state_dict saved with
# torch.save and reloaded with torch.load) and nn.MultiheadAttention's own math (one in_proj_weight Parameter with
# xavier_uniform_, F.linear(...).chunk(3, dim=-1), heads folded into the batch with view/transpose, torch.bmm,
# F.softmax, F.dropout(training=self.training)), post-norm layers with nn.LayerNorm and
# nn.GELU(approximate='tanh'), a boolean masked_fill causal mask in the other layer, decoder weight tied to the
# embedding, minGPT's configure_optimizers (named_modules x named_parameters, weight decay only on Linear weights)
# with AdamW, a LambdaLR linear warmup, and greedy argmax generation under torch.no_grad().
import math
import os
from tempfile import TemporaryDirectory

import numpy as np
import torch
from torch import nn, Tensor
import torch.nn.functional as F

INIT = os.environ.get("COMPAT_INIT", "transformer_lm_init.npz")
torch.manual_seed(0)
torch.set_default_dtype(torch.float64)  # float64 throughout, so both frameworks compute the same numbers

text = """the cat sat on the mat . the dog sat on the log . a cat saw a dog . the dog saw the cat on the mat .
a bird sat on the log . the bird saw a cat . the cat ran to the dog and the dog ran to the log .""" * 4
words = text.split()
vocab = {w: i for i, w in enumerate(sorted(set(words)))}
itos = {i: w for w, i in vocab.items()}
ntokens = len(vocab)


def data_process(tokens):
    return torch.tensor([vocab[w] for w in tokens], dtype=torch.long)


split = int(0.85 * len(words))
train_data_raw, val_data_raw = data_process(words[:split]), data_process(words[split:])


def batchify(data: Tensor, bsz: int) -> Tensor:
    """Divides the data into ``bsz`` separate sequences, removing extra elements that wouldn't cleanly fit."""
    seq_len = data.size(0) // bsz
    data = data[:seq_len * bsz]
    data = data.view(bsz, seq_len).t().contiguous()
    return data


batch_size = 4
eval_batch_size = 2
train_data = batchify(train_data_raw, batch_size)  # shape ``[seq_len, batch_size]``
val_data = batchify(val_data_raw, eval_batch_size)

bptt = 8


def get_batch(source: Tensor, i: int):
    seq_len = min(bptt, len(source) - 1 - i)
    data = source[i:i + seq_len]
    target = source[i + 1:i + 1 + seq_len].reshape(-1)
    return data, target


class PositionalEncoding(nn.Module):

    def __init__(self, d_model: int, dropout: float = 0.1, max_len: int = 5000):
        super().__init__()
        self.dropout = nn.Dropout(p=dropout)

        position = torch.arange(max_len).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
        pe = torch.zeros(max_len, 1, d_model)
        pe[:, 0, 0::2] = torch.sin(position * div_term)
        pe[:, 0, 1::2] = torch.cos(position * div_term)
        self.register_buffer('pe', pe, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        """x: Tensor, shape ``[seq_len, batch_size, embedding_dim]``"""
        x = x + self.pe[:x.size(0)]
        return self.dropout(x)


class SelfAttention(nn.Module):
    """Multi-head self-attention with nn.MultiheadAttention's parameters (in_proj_weight, out_proj)."""

    def __init__(self, embed_dim, num_heads, dropout=0.0):
        super().__init__()
        assert embed_dim % num_heads == 0, "embed_dim must be divisible by num_heads"
        self.embed_dim, self.num_heads, self.dropout = embed_dim, num_heads, dropout
        self.head_dim = embed_dim // num_heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * embed_dim, embed_dim))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * embed_dim))
        self.out_proj = nn.Linear(embed_dim, embed_dim)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.constant_(self.in_proj_bias, 0.)
        nn.init.constant_(self.out_proj.bias, 0.)

    def forward(self, x, attn_mask=None, is_causal=False):
        tgt_len, bsz, embed_dim = x.shape
        q, k, v = F.linear(x, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1)
        # fold the heads into the batch: (L, N, E) -> (N * H, L, E / H)
        q = q.contiguous().view(tgt_len, bsz * self.num_heads, self.head_dim).transpose(0, 1)
        k = k.contiguous().view(tgt_len, bsz * self.num_heads, self.head_dim).transpose(0, 1)
        v = v.contiguous().view(tgt_len, bsz * self.num_heads, self.head_dim).transpose(0, 1)
        attn = torch.bmm(q / math.sqrt(self.head_dim), k.transpose(-2, -1))
        if attn_mask is not None:
            attn += attn_mask  # additive float mask: 0 where allowed, -inf where not
        if is_causal:
            causal = torch.triu(torch.ones(tgt_len, tgt_len, dtype=torch.bool, device=x.device), diagonal=1)
            attn = attn.masked_fill(causal, float('-inf'))
        attn = F.softmax(attn, dim=-1)
        attn = F.dropout(attn, p=self.dropout, training=self.training)
        out = torch.bmm(attn, v)
        out = out.transpose(0, 1).contiguous().view(tgt_len, bsz, embed_dim)
        return self.out_proj(out), attn.view(bsz, self.num_heads, tgt_len, tgt_len).mean(dim=1)


class EncoderLayer(nn.Module):
    """Post-norm encoder layer: x = norm1(x + sa(x)); x = norm2(x + ff(x)), as nn.TransformerEncoderLayer."""

    def __init__(self, d_model, nhead, dim_feedforward=64, dropout=0.1):
        super().__init__()
        self.self_attn = SelfAttention(d_model, nhead, dropout=dropout)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model, eps=1e-5)
        self.norm2 = nn.LayerNorm(d_model, eps=1e-5)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.activation = nn.GELU(approximate='tanh')

    def forward(self, src, src_mask=None, is_causal=False):
        x = src
        sa, _ = self.self_attn(x, attn_mask=src_mask, is_causal=is_causal)
        x = self.norm1(x + self.dropout1(sa))
        x = self.norm2(x + self._ff_block(x))
        return x

    def _ff_block(self, x):
        x = self.linear2(self.dropout(self.activation(self.linear1(x))))
        return self.dropout2(x)


class TransformerModel(nn.Module):

    def __init__(self, ntoken: int, d_model: int, nhead: int, d_hid: int, nlayers: int, dropout: float = 0.5):
        super().__init__()
        self.model_type = 'Transformer'
        self.pos_encoder = PositionalEncoding(d_model, dropout, max_len=64)
        self.layers = nn.ModuleList([EncoderLayer(d_model, nhead, d_hid, dropout) for _ in range(nlayers)])
        self.embedding = nn.Embedding(ntoken, d_model)
        self.d_model = d_model
        self.linear = nn.Linear(d_model, ntoken)
        self.linear.weight = self.embedding.weight  # tie the output projection to the input embedding

        self.init_weights()

    def init_weights(self) -> None:
        initrange = 0.1
        self.embedding.weight.data.uniform_(-initrange, initrange)
        self.linear.bias.data.zero_()

    def forward(self, src: Tensor, src_mask: Tensor = None) -> Tensor:
        """src: ``[seq_len, batch_size]``, src_mask: ``[seq_len, seq_len]``; returns ``[seq_len, batch_size,
        ntoken]``. The first layer takes the additive float mask, the others build a boolean causal mask."""
        src = self.embedding(src) * math.sqrt(self.d_model)
        src = self.pos_encoder(src)
        output = src
        for i, layer in enumerate(self.layers):
            output = layer(output, src_mask) if i == 0 else layer(output, is_causal=True)
        output = self.linear(output)
        return output

    def configure_optimizers(self, weight_decay, learning_rate, betas):
        # minGPT: separate out all parameters to those that will and won't experience regularizing weight decay
        decay = set()
        no_decay = set()
        whitelist_weight_modules = (torch.nn.Linear, )
        blacklist_weight_modules = (torch.nn.LayerNorm, torch.nn.Embedding)
        for mn, m in self.named_modules():
            for pn, p in m.named_parameters():
                fpn = '%s.%s' % (mn, pn) if mn else pn  # full param name
                if pn.endswith('bias'):
                    no_decay.add(fpn)
                elif pn.endswith('weight') and isinstance(m, whitelist_weight_modules):
                    decay.add(fpn)
                elif pn.endswith('weight') and isinstance(m, blacklist_weight_modules):
                    no_decay.add(fpn)
                elif pn.endswith('in_proj_weight'):
                    decay.add(fpn)
        # the tied weight is named after the embedding, which registered it first: no decay, as for embeddings
        decay.discard('linear.weight')
        param_dict = {pn: p for pn, p in self.named_parameters()}
        inter_params = decay & no_decay
        union_params = decay | no_decay
        assert len(inter_params) == 0, "parameters %s made it into both decay/no_decay sets!" % (str(inter_params), )
        assert len(param_dict.keys() - union_params) == 0, \
            "parameters %s were not separated into either decay/no_decay set!" % (str(param_dict.keys() - union_params), )
        optim_groups = [
            {"params": [param_dict[pn] for pn in sorted(list(decay))], "weight_decay": weight_decay},
            {"params": [param_dict[pn] for pn in sorted(list(no_decay))], "weight_decay": 0.0},
        ]
        print("decay:", sorted(decay))
        print("no decay:", sorted(no_decay))
        return torch.optim.AdamW(optim_groups, lr=learning_rate, betas=betas)


def generate_square_subsequent_mask(sz: int) -> Tensor:
    """Generates an upper-triangular matrix of ``-inf``, with zeros on ``diag``."""
    return torch.triu(torch.ones(sz, sz) * float('-inf'), diagonal=1)


emsize = 16  # embedding dimension
d_hid = 32  # dimension of the feedforward network model
nlayers = 2  # number of encoder layers
nhead = 2  # number of heads in the multi-head attention
dropout = 0.0  # dropout probability (0, so that both frameworks compute the same numbers)
model = TransformerModel(ntokens, emsize, nhead, d_hid, nlayers, dropout)
if os.path.exists(INIT):
    model.load_state_dict({k: torch.from_numpy(v) for k, v in np.load(INIT).items()})
else:
    np.savez(INIT, **{k: v.detach().numpy() for k, v in model.state_dict().items()})
print(sum(p.numel() for p in model.parameters() if p.requires_grad), "trainable parameters")
print(model.layers[0].self_attn.in_proj_weight.shape, model.pos_encoder.pe.shape, "pe" in model.state_dict())

criterion = nn.CrossEntropyLoss()
lr = 5e-3
optimizer = model.configure_optimizers(weight_decay=0.1, learning_rate=lr, betas=(0.9, 0.98))
warmup_steps = 8
scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda=lambda step: min(1.0, (step + 1) / warmup_steps))
global_step = 0


def train(model: nn.Module, epoch: int) -> None:
    global global_step
    model.train()  # turn on train mode
    src_mask = generate_square_subsequent_mask(bptt)
    for batch, i in enumerate(range(0, train_data.size(0) - 1, bptt)):
        data, targets = get_batch(train_data, i)
        seq_len = data.size(0)
        if seq_len != bptt:  # only on last batch
            src_mask = src_mask[:seq_len, :seq_len]
        output = model(data, src_mask)
        output_flat = output.view(-1, ntokens)
        loss = criterion(output_flat, targets)

        optimizer.zero_grad()
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
        optimizer.step()
        scheduler.step()
        print(f"train step {global_step} loss {loss.item()!r}")
        if batch % 4 == 0:
            print(f"| epoch {epoch:3d} | {batch:3d} batches | lr {scheduler.get_last_lr()[0]:02.6f} | "
                  f"grad norm {grad_norm:8.5f} | loss {loss.item():5.4f}")
        global_step += 1


def evaluate(model: nn.Module, eval_data: Tensor) -> float:
    model.eval()  # turn on evaluation mode
    total_loss = 0.
    src_mask = generate_square_subsequent_mask(bptt)
    with torch.no_grad():
        for i in range(0, eval_data.size(0) - 1, bptt):
            data, targets = get_batch(eval_data, i)
            seq_len = data.size(0)
            if seq_len != bptt:
                src_mask = src_mask[:seq_len, :seq_len]
            output = model(data, src_mask)
            output_flat = output.view(-1, ntokens)
            total_loss += seq_len * criterion(output_flat, targets).item()
    return total_loss / (len(eval_data) - 1)


best_val_loss = float('inf')
epochs = 4
with TemporaryDirectory() as tempdir:
    best_model_params_path = os.path.join(tempdir, "best_model_params.pt")
    for epoch in range(1, epochs + 1):
        train(model, epoch)
        val_loss = evaluate(model, val_data)
        val_ppl = math.exp(val_loss)
        print('-' * 89)
        print(f'| end of epoch {epoch:3d} | valid loss {val_loss:5.4f} | valid ppl {val_ppl:8.4f}')
        print('-' * 89)
        if val_loss < best_val_loss:
            best_val_loss = val_loss
            torch.save(model.state_dict(), best_model_params_path)
    model.load_state_dict(torch.load(best_model_params_path))  # load best model states

test_loss = evaluate(model, val_data)
print(f'| End of training | test loss {test_loss:5.4f} | test ppl {math.exp(test_loss):8.4f}')
print(model.linear.weight is model.embedding.weight, model.linear.weight.grad is model.embedding.weight.grad)

# greedy decoding of a prompt, one word at a time
model.eval()
ids = torch.tensor([vocab[w] for w in "the cat".split()], dtype=torch.long).unsqueeze(1)  # (seq_len, 1)
with torch.no_grad():
    for _ in range(6):
        out = model(ids, generate_square_subsequent_mask(ids.size(0)))
        probs = F.softmax(out[-1, 0], dim=-1)
        next_id = out[-1, 0].argmax()
        print(f"{itos[next_id.item()]} {probs[next_id].item():.6f}")
        ids = torch.cat([ids, next_id.view(1, 1)], dim=0)
print(" ".join(itos[i] for i in ids.view(-1).tolist()))
with torch.no_grad():  # the first layer's attention map over the generated text (averaged over heads)
    _, attn = model.layers[0].self_attn(model.pos_encoder(model.embedding(ids) * math.sqrt(model.d_model)),
                                         is_causal=True)
print(attn.shape, attn.size(-1), torch.isinf(attn).any().item(), attn.sum(dim=-1).allclose(torch.ones(1, ids.size(0))))
print(attn[0, :3, :3])
