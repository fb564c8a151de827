"""char_lstm: a character-level tl.nn.LSTM trained on the Zen of Python (the text inside the stdlib's `this`).

Embedding -> LSTM -> Linear predicts the next character of random 32-character windows of the text, trained
with Adam on the cross-entropy. A seeded sample from the same prompt is printed before and after training: the
untrained model babbles, the trained one recites (it has memorised most of the 856 characters).

    python examples/char_lstm.py [--steps N] [--smoke]
"""
import codecs
import contextlib
import io

import numpy as np

import tinygrad_lite as tl
from tinygrad_lite import nn

from _common import Timer, parse, parser, progress

STEPS = 300
WINDOW, BATCH, HIDDEN = 32, 32, 128
PROMPT = "Beautiful is"


def zen_of_python():
    with contextlib.redirect_stdout(io.StringIO()):  # importing `this` prints the Zen
        import this
    return codecs.decode(this.s, "rot13")


class CharLSTM(nn.Module):
    def __init__(self, vocab, embed=32, hidden=HIDDEN):
        super().__init__()
        self.embed = nn.Embedding(vocab, embed)
        self.lstm = nn.LSTM(embed, hidden, batch_first=True)
        self.out = nn.Linear(hidden, vocab)

    def forward(self, x, state=None):
        h, state = self.lstm(self.embed(x), state)
        return self.out(h), state


def sample(model, chars, prompt, n, seed, temperature=0.7):
    """`prompt` followed by n characters drawn one at a time from the model (seeded, so repeatable)."""
    index = {c: i for i, c in enumerate(chars)}
    rng = np.random.default_rng(seed)
    model.eval()
    out = []
    with tl.no_grad():
        logits, state = model(tl.tensor([[index[c] for c in prompt]]))
        for _ in range(n):
            z = logits.numpy()[0, -1].astype(np.float64) / temperature
            p = np.exp(z - z.max())
            nxt = rng.choice(len(chars), p=p / p.sum())
            out.append(chars[nxt])
            logits, state = model(tl.tensor([[nxt]]), state)
    model.train()
    return prompt + "".join(out)


def show(title, text):
    print(f"--- {title} ---")
    print("\n".join("  " + line for line in text.splitlines()))


def main(argv=None):
    p = parser(__doc__, steps=STEPS)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--sample-chars", type=int, default=160)
    args = parse(p, argv, steps=STEPS, smoke_steps=15)

    text = zen_of_python()
    chars = sorted(set(text))
    data = np.array([chars.index(c) for c in text], dtype=np.int64)
    print(f"text: the Zen of Python, {len(text)} characters, {len(chars)} distinct")

    tl.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    model = CharLSTM(len(chars))
    optimizer = tl.optim.Adam(model.parameters(), lr=args.lr)
    loss_fn = nn.CrossEntropyLoss()
    show("sample before training", sample(model, chars, PROMPT, args.sample_chars, args.seed))

    losses = []
    bar = progress(range(args.steps), desc="training")
    with Timer() as t:
        for _ in bar:
            starts = rng.integers(0, len(data) - WINDOW - 1, BATCH)
            windows = data[starts[:, None] + np.arange(WINDOW + 1)]
            logits, _ = model(tl.tensor(windows[:, :-1]))
            loss = loss_fn(logits.reshape(BATCH * WINDOW, len(chars)), tl.tensor(windows[:, 1:].reshape(-1)))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            bar.set_postfix(loss=round(losses[-1], 3), refresh=False)

    marks = sorted({0, *range(0, args.steps, max(1, args.steps // 6)), args.steps - 1})
    print("loss (nats/char) by step: " + ", ".join(f"{i}: {losses[i]:.3f}" for i in marks))
    show("sample after training", sample(model, chars, PROMPT, args.sample_chars, args.seed))

    first, last = losses[0], float(np.mean(losses[-5:]))
    print(f"char_lstm: loss {first:.3f} -> {last:.3f} nats/char in {args.steps} steps, {t.seconds:.1f} s "
          f"({1000 * t.seconds / args.steps:.0f} ms/step; LSTM {HIDDEN} hidden, batch {BATCH}x{WINDOW} chars)")
    return first, last


if __name__ == "__main__":
    main()
