"""grad_fn names as PyTorch shows them (`print(loss)` -> `tensor(2.3026, grad_fn=<NllLossBackward0>)`): a
composition that stands for one PyTorch op (cross_entropy, linear, mean, conv2d, layer_norm...) names its result's
node after that op, and primitives take PyTorch's name where it depends on the call (a reduction over some dims,
matmul's ranks, an index). The tape itself keeps the primitive names (viz, gradcheck, anomaly mode read those)."""
import numpy as np
import pytest

import tinygrad_lite as tl

rng = np.random.default_rng(0)
A = {k: rng.random(s) for k, s in dict(x=(4, 6), x3=(2, 4, 6), img=(2, 3, 8, 8), w=(5, 6), b=(5,), t=(4, 6),
                                         cw=(4, 3, 3, 3), emb=(10, 3)).items()}


def _cases(T, F):
    x, x3, img, w, b, t, cw, emb = (T.tensor(A[k], requires_grad=k not in ("t",)) for k in
                                    ("x", "x3", "img", "w", "b", "t", "cw", "emb"))
    y = T.tensor(np.array([0, 1, 2, 3]))
    return {
        "mean": lambda: x.mean(), "mean(dim)": lambda: x.mean(1), "sum": lambda: x.sum(), "sum(dim)": lambda: x.sum(1),
        "cross_entropy": lambda: F.cross_entropy(x, y), "nll_loss": lambda: F.nll_loss(x, y),
        "mse_loss": lambda: F.mse_loss(x, t), "smooth_l1": lambda: F.smooth_l1_loss(x, t),
        "bce": lambda: F.binary_cross_entropy(x, t), "bce_logits": lambda: F.binary_cross_entropy_with_logits(x, t),
        "log_softmax": lambda: F.log_softmax(x, 1), "softmax": lambda: F.softmax(x, 1),
        "linear": lambda: F.linear(x, w, b), "linear_nobias": lambda: F.linear(x, w), "linear3d": lambda: F.linear(x3, w, b),
        "matmul2d": lambda: x @ w.t(), "matmul3d": lambda: x3 @ x3.transpose(1, 2), "dot": lambda: b @ b, "mv": lambda: w @ x[0],
        "view": lambda: x.view(24), "reshape": lambda: x.reshape(24), "transpose": lambda: x.transpose(0, 1),
        "t": lambda: x.t(), "permute": lambda: x3.permute(2, 0, 1), "unsqueeze": lambda: x.unsqueeze(0),
        "squeeze": lambda: x.unsqueeze(0).squeeze(0), "squeeze()": lambda: x.unsqueeze(0).squeeze(),
        "flatten": lambda: x3.flatten(1),
        "conv2d": lambda: F.conv2d(img, cw), "max_pool2d": lambda: F.max_pool2d(img, 2),
        "avg_pool2d": lambda: F.avg_pool2d(img, 2), "adaptive_avg_1": lambda: F.adaptive_avg_pool2d(img, 1),
        "adaptive_avg_2": lambda: F.adaptive_avg_pool2d(img, 2),
        "batch_norm": lambda: F.batch_norm(img, None, None, training=True), "layer_norm": lambda: F.layer_norm(x, (6,)),
        "embedding": lambda: F.embedding(y, emb), "relu": lambda: F.relu(x), "gelu": lambda: F.gelu(x),
        "sigmoid": lambda: x.sigmoid(), "tanh": lambda: x.tanh(), "leaky_relu": lambda: F.leaky_relu(x),
        "elu": lambda: F.elu(x), "silu": lambda: F.silu(x), "softplus": lambda: F.softplus(x),
        "cat": lambda: T.cat([x, x]), "stack": lambda: T.stack([x, x]), "sub": lambda: x - t, "div": lambda: x / 2,
        "pow": lambda: x ** 2, "exp": lambda: x.exp(), "log": lambda: x.log(), "abs": lambda: x.abs(),
        "clamp": lambda: x.clamp(0.2, 0.8), "max": lambda: x.max(), "max(dim)": lambda: x.max(1)[0],
        "amax": lambda: x.amax(1), "var": lambda: x.var(), "std": lambda: x.std(1), "norm": lambda: x.norm(),
        "index": lambda: x[0], "slice": lambda: x[1:3], "where": lambda: T.where(t > 0.5, x, t),
        "masked_fill": lambda: x.masked_fill(t > 0.5, 0.0), "chunk0": lambda: x.chunk(2, 1)[0],
        "split0": lambda: x.split(3, 1)[0], "split_sizes": lambda: x.split([2, 4], 1)[1],
        "repeat": lambda: x.repeat(2, 1), "flip": lambda: x.flip(0), "logsumexp": lambda: x.logsumexp(1),
        "contiguous": lambda: x.t().contiguous(),
        "rsub": lambda: 1 - x, "bmm": lambda: T.bmm(x3, x3.transpose(1, 2)),
        "index_select": lambda: x.index_select(0, T.tensor(np.array([0, 2]))), "unbind": lambda: x.unbind(0)[0],
        "triu": lambda: x.triu(), "tril": lambda: x.tril(1), "topk": lambda: x.topk(2)[0],
        "sort": lambda: x.sort(1)[0], "min": lambda: x.min(), "min(dim)": lambda: x.min(1)[0],
        "square": lambda: x.square(), "rsqrt": lambda: x.rsqrt(), "trace": lambda: x[:4, :4].trace(),
        "index_add": lambda: x.index_add(0, T.tensor(np.array([1])), T.ones(1, 6, dtype=x.dtype)),
        "diag(matrix)": lambda: x.diag(1), "diag(vector)": lambda: T.diag(x[0]),
    }


# What PyTorch 2.13 shows (tests/test_grad_fn_names.py::test_names_are_torchs checks the table against it)
EXPECTED = {
    "mean": "MeanBackward0", "mean(dim)": "MeanBackward1", "sum": "SumBackward0", "sum(dim)": "SumBackward1",
    "cross_entropy": "NllLossBackward0", "nll_loss": "NllLossBackward0", "mse_loss": "MseLossBackward0",
    "smooth_l1": "SmoothL1LossBackward0", "bce": "BinaryCrossEntropyBackward0",
    "bce_logits": "BinaryCrossEntropyWithLogitsBackward0", "log_softmax": "LogSoftmaxBackward0",
    "softmax": "SoftmaxBackward0", "linear": "AddmmBackward0", "linear_nobias": "MmBackward0",
    "linear3d": "ViewBackward0", "matmul2d": "MmBackward0", "matmul3d": "UnsafeViewBackward0", "dot": "DotBackward0", "mv": "MvBackward0",
    "view": "ViewBackward0", "reshape": "ViewBackward0", "transpose": "TransposeBackward0", "t": "TBackward0",
    "permute": "PermuteBackward0", "unsqueeze": "UnsqueezeBackward0", "squeeze": "SqueezeBackward1",
    "squeeze()": "SqueezeBackward0", "flatten": "ViewBackward0", "conv2d": "ConvolutionBackward0",
    "max_pool2d": "MaxPool2DWithIndicesBackward0", "avg_pool2d": "AvgPool2DBackward0",
    "adaptive_avg_1": "MeanBackward1", "adaptive_avg_2": "AdaptiveAvgPool2DBackward0",
    "batch_norm": "NativeBatchNormBackward0", "layer_norm": "NativeLayerNormBackward0",
    "embedding": "EmbeddingBackward0", "relu": "ReluBackward0", "gelu": "GeluBackward0",
    "sigmoid": "SigmoidBackward0", "tanh": "TanhBackward0", "leaky_relu": "LeakyReluBackward0", "elu": "EluBackward0",
    "silu": "SiluBackward0", "softplus": "SoftplusBackward0", "cat": "CatBackward0", "stack": "StackBackward0",
    "sub": "SubBackward0", "div": "DivBackward0", "pow": "PowBackward0", "exp": "ExpBackward0", "log": "LogBackward0",
    "abs": "AbsBackward0", "clamp": "ClampBackward1", "max": "MaxBackward1", "max(dim)": "MaxBackward0",
    "amax": "AmaxBackward0", "var": "VarBackward0", "std": "StdBackward0", "norm": "LinalgVectorNormBackward0",
    "index": "SelectBackward0", "slice": "SliceBackward0", "where": "WhereBackward0",
    "masked_fill": "MaskedFillBackward0", "chunk0": "SplitBackward0", "split0": "SplitBackward0",
    "split_sizes": "SplitWithSizesBackward0", "repeat": "RepeatBackward0", "flip": "FlipBackward0",
    "logsumexp": "LogsumexpBackward0", "contiguous": "CloneBackward0",
    "rsub": "RsubBackward1", "bmm": "BmmBackward0", "index_select": "IndexSelectBackward0",
    "unbind": "UnbindBackward0", "triu": "TriuBackward0", "tril": "TrilBackward0", "topk": "TopkBackward0",
    "sort": "SortBackward0", "min": "MinBackward1", "min(dim)": "MinBackward0", "square": "PowBackward0",
    "rsqrt": "RsqrtBackward0", "trace": "TraceBackward0", "index_add": "IndexAddBackward0",
    "diag(matrix)": "DiagonalBackward0_copy", "diag(vector)": "DiagEmbedBackward0",
}


def test_names():
    got = {k: f().grad_fn.name() for k, f in _cases(tl, tl.nn.functional).items()}
    assert got == EXPECTED


def test_names_are_torchs(torch):
    import torch.nn.functional as TF
    assert {k: f().grad_fn.name() for k, f in _cases(torch, TF).items()} == EXPECTED


def test_a_result_that_is_an_input_keeps_its_own_name():
    """A composition that returns an input unchanged (contiguous of a contiguous tensor, squeeze with nothing to
    squeeze) does not rename the input's node."""
    x = tl.tensor(A["x"], requires_grad=True)
    h = x * 2
    assert h.contiguous() is h and h.squeeze().grad_fn.name() in ("MulBackward0", "ViewBackward0")
    assert h.grad_fn.name() == "MulBackward0"


def test_the_tape_and_printing_keep_what_they_show():
    """print(loss) shows PyTorch's node; the tape listing (viz, gradcheck, anomaly mode) keeps the primitive."""
    x = tl.tensor(A["x"], requires_grad=True)
    loss = tl.nn.functional.cross_entropy(x, tl.tensor(np.array([0, 1, 2, 3])))
    assert repr(loss).endswith("grad_fn=<NllLossBackward0>)")
    assert loss._entry.name != "NllLoss" and loss.grad_fn.entry is loss._entry
    loss.backward()
    assert x.grad is not None
