"""digits_cnn: a small CNN on scikit-learn's 8x8 handwritten digits, trained with tl.optim and tl.data.

The 1,797 images that ship inside scikit-learn are split 80/20 (stratified, fixed seed). The model is
Conv2d-BatchNorm2d-ReLU-Conv2d-BatchNorm2d-ReLU-MaxPool2d-Dropout-Linear, trained with Adam and a cosine learning
rate schedule. Afterwards the model and optimizer state are saved with tl.save, loaded into a fresh model and
optimizer, and the reloaded model's test accuracy is printed; the model's graph is drawn with tl.viz, and
runs/digits_cnn/model_graph.html is the interactive page of one training batch's graph (tl.viz.html: zoom, search,
click a node for its values and gradient statistics; open it in a browser, no server needed).

    python examples/digits_cnn.py [--epochs N] [--out DIR] [--smoke] [--compile]     (this is `make demo`)

With --compile the training step runs through tl.compile (recorded once, then replayed as NumPy calls, with the
same numbers as eager execution), and one eager epoch of an identical model is timed for comparison.

Needs scikit-learn (pip install -e .[examples]); tqdm and graphviz are optional (without graphviz's `dot`
program there is no SVG and no graph page).
"""
import os
import sys
import time

import numpy as np

import tinygrad_lite as tl
from tinygrad_lite import nn

from _common import Timer, draw, parse, parser, plural, progress, show_path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EPOCHS = 10


def load_data():
    """(x_train, x_test, y_train, y_test): float32 images (N, 1, 8, 8) standardised with the training
    statistics, int64 labels."""
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError:
        sys.exit("digits_cnn needs scikit-learn for its dataset: pip install -e '.[examples]'")
    images, labels = load_digits(return_X_y=True)
    images = (images / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    x_tr, x_te, y_tr, y_te = train_test_split(images, labels.astype(np.int64), test_size=0.2, stratify=labels,
                                              random_state=0)
    mean, std = x_tr.mean(), x_tr.std()
    return (x_tr - mean) / std, (x_te - mean) / std, y_tr, y_te


def build_model():
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.MaxPool2d(2),                                   # 32 x 4 x 4
        nn.Flatten(), nn.Dropout(0.25), nn.Linear(32 * 4 * 4, 10))


def predict(model, x):
    model.eval()
    with tl.no_grad():
        out = model(tl.tensor(x)).numpy().argmax(axis=1)
    model.train()
    return out


def make_step(model, optimizer, loss_fn):
    """One training step on a batch; returns the batch's mean loss as a float."""
    def step(xb, yb):
        loss = loss_fn(model(xb), yb)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.item()
    return step


def time_eager_epoch(args, x_tr, y_tr, loss_fn):
    """Seconds for one eager epoch of an identical, freshly initialised model (for comparison with tl.compile)."""
    tl.manual_seed(args.seed)
    model = build_model()
    step = make_step(model, tl.optim.Adam(model.parameters(), lr=args.lr), loss_fn)
    loader = tl.data.DataLoader(tl.data.TensorDataset(tl.tensor(x_tr), tl.tensor(y_tr)),
                                batch_size=args.batch_size, shuffle=True)
    with Timer() as t:
        for xb, yb in loader:
            step(xb, yb)
    return t.seconds


def plot_grad_flow(flow, path):
    """Save GradFlow's plot; returns a one-line description (the flagged layers, or why there is no plot)."""
    flagged = {name: f for name, f in flow.flags().items() if f}
    summary = "no layer flagged" if not flagged else "flagged: " + ", ".join(
        f"{name} ({', '.join(f)})" for name, f in flagged.items())
    try:
        flow.plot(path)
    except ImportError as exc:
        return f"grad flow not plotted ({exc}); {summary}"
    return f"grad flow plot written to {show_path(path)} ({flow.steps} steps; {summary})"


def graph_page(model, loss_fn, xb, yb, path):
    """Write the interactive page of one training batch's graph, with its gradients; returns a one-line
    description (or why there is no page)."""
    import shutil

    if shutil.which("dot") is None:
        return "graph page skipped: graphviz's `dot` program is not installed (apt-get/brew/conda install graphviz)"
    model.zero_grad()  # the page shows this batch's gradients, not the last training step's
    loss = loss_fn(model(xb), yb)
    loss.backward(retain_graph=True)  # keep the tape's values for the page's statistics
    try:
        page = tl.viz.html(loss, show_grads=True)
    except ImportError as exc:  # the graphviz Python package is missing
        return f"graph page skipped: {exc}"
    except RuntimeError as exc:  # tl.viz.DotNotFoundError, or `dot` failed
        return f"graph page skipped: {str(exc).splitlines()[0][:200]}"
    finally:
        model.zero_grad()
    page.save(path)
    return (f"graph page written to {show_path(path)} ({len(page.data['nodes'])} nodes, "
            f"{os.path.getsize(path) / 1024:.0f} KiB; open it in a browser and click a node)")


def main(argv=None):
    p = parser(__doc__, epochs=EPOCHS)
    p.add_argument("--out", default=os.path.join(ROOT, "runs", "digits_cnn"),
                   help="directory for the checkpoint and the graph (default: runs/digits_cnn)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--compile", action="store_true", help="train with tl.compile and compare with an eager epoch")
    args = parse(p, argv, epochs=EPOCHS)
    start = time.perf_counter()

    x_tr, x_te, y_tr, y_te = load_data()
    n_images = len(x_tr) + len(x_te)
    print(f"digits: {len(x_tr)} training and {len(x_te)} test images of 8x8 pixels, 10 classes")

    tl.manual_seed(args.seed)  # weights, dropout and the DataLoader's shuffling
    model = build_model()
    optimizer = tl.optim.Adam(model.parameters(), lr=args.lr)
    scheduler = tl.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)
    loader = tl.data.DataLoader(tl.data.TensorDataset(tl.tensor(x_tr), tl.tensor(y_tr)),
                                batch_size=args.batch_size, shuffle=True)
    loss_fn = nn.CrossEntropyLoss()
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params:,} parameters, Adam lr={args.lr}, cosine schedule, batch {args.batch_size}")

    step = make_step(model, optimizer, loss_fn)
    flow = tl.viz.GradFlow(model)  # per-layer gradient statistics of every step (read after the step's backward)
    if args.compile:
        step = tl.compile(step)
    epoch_times = []
    for epoch in range(args.epochs):
        total, seen = 0.0, 0
        bar = progress(loader, desc=f"epoch {epoch + 1}/{args.epochs}")
        with Timer() as t:
            for xb, yb in bar:
                loss = step(xb, yb)
                flow.record()
                total += loss * len(yb.numpy())
                seen += len(yb.numpy())
                bar.set_postfix(loss=round(total / seen, 4), refresh=False)
            scheduler.step()
        epoch_times.append(t.seconds)
        acc = (predict(model, x_te) == y_te).mean()
        print(f"epoch {epoch + 1:2d}/{args.epochs}: train loss {total / seen:.4f}, test accuracy {acc:.1%}, "
              f"{t.seconds:.2f} s")

    preds = predict(model, x_te)
    acc = (preds == y_te).mean()
    if args.compile:
        eager_epoch = time_eager_epoch(args, x_tr, y_tr, loss_fn)
        compiled_epoch = sum(epoch_times[1:]) / max(len(epoch_times) - 1, 1) if len(epoch_times) > 1 else \
            epoch_times[0]
        print(f"tl.compile: {step.stats['replays']} replayed steps, {step.stats['traces']} recorded, "
              f"{step.stats['eager_calls']} run eagerly; epoch time compiled {compiled_epoch:.2f} s, eager "
              f"{eager_epoch:.2f} s ({eager_epoch / compiled_epoch:.2f}x)")

    # checkpoint: model and optimizer state in one safetensors file, then into a fresh model and optimizer
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "checkpoint.safetensors")
    tl.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": args.epochs}, path)
    ckpt = tl.load(path)
    fresh = build_model()
    fresh.load_state_dict(ckpt["model"])
    fresh_opt = tl.optim.Adam(fresh.parameters(), lr=args.lr)
    fresh_opt.load_state_dict(ckpt["optimizer"])
    steps = {int(np.asarray(s["step"])) for s in fresh_opt.state_dict()["state"].values()}
    reloaded = predict(fresh, x_te)
    same = "same predictions" if np.array_equal(reloaded, preds) else \
        f"{int((reloaded != preds).sum())} predictions differ"
    reload_acc = (reloaded == y_te).mean()
    print(f"checkpoint {show_path(path)} ({os.path.getsize(path) / 1024:.0f} KiB, epoch {ckpt['epoch']}, "
          f"optimizer at step {', '.join(map(str, sorted(steps)))}) reloaded into a fresh model: "
          f"test accuracy {reload_acc:.1%} ({same})")

    # the graph of one training step's loss: module clusters, parameters by name, shapes
    xb, yb = tl.tensor(x_te[:8]), tl.tensor(y_te[:8])
    print(draw(loss_fn(model(xb), yb), os.path.join(args.out, "model_graph")))

    print(plot_grad_flow(flow, os.path.join(args.out, "grad_flow.png")))

    # the interactive page of one training batch (train mode, as in training) after its backward
    n = args.batch_size
    print(graph_page(model, loss_fn, tl.tensor(x_tr[:n]), tl.tensor(y_tr[:n]),
                     os.path.join(args.out, "model_graph.html")))

    per_epoch = sum(epoch_times) / len(epoch_times)
    print(f"digits_cnn: test accuracy {acc:.1%} ({n_images} images, {plural(args.epochs, 'epoch')}, "
          f"{per_epoch:.2f} s/epoch, {time.perf_counter() - start:.1f} s in all; reloaded checkpoint "
          f"{reload_acc:.1%})")
    return acc, reload_acc


if __name__ == "__main__":
    main()
