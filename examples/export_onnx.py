"""Train the digits CNN briefly, export it to ONNX with a dynamic batch, run it in onnxruntime and compare.

    pip install -e '.[onnx,examples]'
    python examples/export_onnx.py [--epochs N] [--out digits_cnn.onnx]

Prints the largest difference between tinygrad_lite's and onnxruntime's logits on the test set, whether the
predicted classes agree, and both inference timings. The file opens in Netron (node names: module path;
doc strings: source line).
"""
import argparse
import os
import sys
import time

import numpy as np

import tinygrad_lite as tl
from tinygrad_lite import nn, optim

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from digits_cnn import load_data, build_model, make_step  # noqa: E402


def train(model, x_tr, y_tr, epochs):
    step = make_step(model, optim.Adam(model.parameters(), lr=1e-3), nn.CrossEntropyLoss())
    for _ in range(epochs):
        order = np.random.default_rng(0).permutation(len(x_tr))
        for i in range(0, len(order), 64):
            b = order[i:i + 64]
            step(tl.tensor(x_tr[b]), tl.tensor(y_tr[b]))


def timed(fn, repeats=5):
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        out = fn()
    return out, (time.perf_counter() - start) / repeats


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--out", default="digits_cnn.onnx")
    args = ap.parse_args(argv)
    try:
        import onnxruntime as ort
    except ImportError:
        sys.exit("export_onnx needs onnxruntime: pip install -e '.[onnx]'")
    tl.manual_seed(0)
    x_tr, x_te, y_tr, y_te = load_data()
    model = build_model()
    train(model, x_tr, y_tr, args.epochs)
    model.eval()
    tl.onnx.export(model, (tl.tensor(x_te[:2]),), args.out, input_names=["images"], output_names=["logits"],
                   dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}})
    sess = ort.InferenceSession(args.out, providers=["CPUExecutionProvider"])
    with tl.no_grad():
        ours, t_ours = timed(lambda: model(tl.tensor(x_te)).numpy())
    theirs, t_ort = timed(lambda: sess.run(None, {"images": x_te})[0])
    print(f"exported {args.out}: {len(x_te)} test images, max |logit difference| {np.abs(ours - theirs).max():.2e}, "
          f"predictions agree on {np.mean(ours.argmax(1) == theirs.argmax(1)):.1%}, "
          f"accuracy {np.mean(theirs.argmax(1) == y_te):.1%}")
    print(f"inference time: tinygrad_lite {t_ours * 1e3:.1f} ms, onnxruntime {t_ort * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
