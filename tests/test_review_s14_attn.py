"""Review s14 (attention models): what tutorial-style transformer language models (nanoGPT, the PyTorch transformer
tutorial; tests/compat/nanogpt_char.py and tests/compat/transformer_lm.py) needed from tinygrad_lite, pinned against
PyTorch where it applies."""
import numpy as np
import pytest

import tinygrad_lite as tl


# ---------------- torch.multinomial (nanoGPT's generate samples the next token with it) ----------------
def test_multinomial_one_hot_rows_give_the_argmax():
    # generate() with top_k=1: every row's distribution is one-hot, so the sample is deterministic
    probs = tl.tensor([[0.0, 0.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0]], dtype=tl.float64)
    idx = tl.multinomial(probs, num_samples=1)
    assert idx.dtype == tl.int64 and tuple(idx.shape) == (2, 1) and not idx.requires_grad
    assert idx.tolist() == [[2], [0]]
    assert probs.multinomial(1).tolist() == [[2], [0]]
    one = tl.multinomial(tl.tensor([0.0, 3.0, 0.0]), 1, replacement=True)
    assert tuple(one.shape) == (1,) and one.tolist() == [1]


def test_multinomial_without_replacement_distinct_and_zero_weights_last():
    tl.manual_seed(0)
    p = tl.tensor(np.random.default_rng(0).random((50, 6)) * (np.arange(6) != 2))
    idx = tl.multinomial(p, 6).numpy()
    assert all(len(set(row)) == 6 for row in idx)
    assert (idx[:, -1] == 2).all()  # the zero-weight category only after every positive one
    # as PyTorch: more samples than positive weights fill up with the zero-weight categories, lowest index first
    assert tl.multinomial(tl.tensor([[0.0, 1.0, 0.0]]), 2).tolist() == [[1, 0]]


@pytest.mark.parametrize("replacement", [True, False])
def test_multinomial_frequencies(replacement):
    tl.manual_seed(1)
    w = np.array([2.0, 0.0, 3.0, 5.0])  # unnormalised weights, as PyTorch accepts
    p = tl.tensor(np.tile(w, (4000, 1)))
    first = tl.multinomial(p, 2, replacement=replacement).numpy()[:, 0]
    freq = np.bincount(first, minlength=4) / len(first)
    np.testing.assert_allclose(freq, w / w.sum(), atol=0.03)
    assert freq[1] == 0


def test_multinomial_reproducible_under_manual_seed_and_compile():
    p = tl.tensor([0.1, 0.2, 0.3, 0.4], dtype=tl.float64)
    tl.manual_seed(5)
    eager = [tl.multinomial(p, 3, replacement=True).tolist() for _ in range(4)]
    tl.manual_seed(5)
    step = tl.compile(lambda q: tl.multinomial(q, 3, replacement=True))
    compiled = [step(p).tolist() for _ in range(4)]
    assert compiled == eager and step.stats["replays"] >= 1
    assert len({tuple(e) for e in eager}) > 1  # each replay draws anew


@pytest.mark.parametrize("args, message", [
    ((tl.tensor([0.0, 1.0, 0.0]), 4), "cannot sample n_sample > prob_dist.size(-1) samples without replacement"),
    ((tl.tensor([0.0, 1.0, 0.0]), 0), "cannot sample n_sample <= 0 samples"),
    ((tl.tensor([[1.0, 1.0], [0.0, 0.0]]), 1), "invalid multinomial distribution (sum of probabilities <= 0)"),
    ((tl.tensor([0.0, -1.0, 2.0]), 1), "probability tensor contains either `inf`, `nan` or element < 0"),
    ((tl.tensor([0.0, float("nan"), 2.0]), 1), "probability tensor contains either `inf`, `nan` or element < 0"),
    ((tl.tensor([1, 2]), 1), "only supports floating-point dtypes for input, got int64"),
    ((tl.ones(2, 2, 2), 1), "prob_dist must be 1 or 2 dim, got shape (2, 2, 2)"),
])
def test_multinomial_errors_name_the_op(args, message):
    with pytest.raises(RuntimeError) as info:
        tl.multinomial(*args)
    assert str(info.value).startswith("multinomial: ") and message in str(info.value)


@pytest.mark.oracle
def test_multinomial_errors_as_torch(torch):
    for p, n in [([0.0, 1.0, 0.0], 4), ([0.0, 0.0], 1), ([0.0, -1.0], 1)]:
        with pytest.raises(RuntimeError) as want:
            torch.multinomial(torch.tensor(p), n)
        with pytest.raises(RuntimeError) as got:
            tl.multinomial(tl.tensor(p), n)
        assert str(want.value) in str(got.value)
    assert tuple(torch.multinomial(torch.ones(0, 3), 2).shape) == tuple(tl.multinomial(tl.ones(0, 3), 2).shape)


# ---------------- torch.Size: `print(x.shape)` is in every tutorial ----------------
# Defect: Tensor.shape and Tensor.size() returned NumPy's plain tuple, so `print(q.shape)` printed `(48, 16)` where
# PyTorch prints `torch.Size([48, 16])` (transformer_lm.py's printed output differed).
def test_shape_and_size_print_as_torch_size():
    x = tl.zeros(48, 16)
    assert str(x.shape) == repr(x.shape) == "torch.Size([48, 16])" == f"{x.size()}"
    assert str(x.shape[1:]) == "torch.Size([16])" and str(tl.tensor(1.0).shape) == "torch.Size([])"
    assert isinstance(x.shape, tuple) and x.shape == (48, 16) and hash(x.shape) == hash((48, 16))
    assert type(x.size(0)) is int and x.shape[0] == 48
    assert str(x.shape + (3,)) == "torch.Size([48, 16, 3])" == str((48,) + tl.Size([16, 3]))
    assert tl.Size([2, 3, 4]).numel() == 24 and tl.Size() == ()
    assert tl.zeros(x.shape).shape == (48, 16)
    assert x.view(x.shape[:1] + (-1,)).shape == (48, 16) and np.zeros(x.shape).shape == (48, 16)
    with pytest.raises(TypeError, match=r"torch.Size\(\) takes an iterable of 'int' \(item 1 is 'float'\)"):
        tl.Size([2, 2.5])


@pytest.mark.oracle
def test_size_as_torch(torch):
    import pickle
    for shape in [(), (5,), (2, 3, 4)]:
        t, l = torch.zeros(shape), tl.zeros(shape)
        assert str(l.shape) == str(t.shape) and str(l.size()) == str(t.size())
        assert str(l.shape[1:]) == str(t.shape[1:]) and str(l.shape * 2) == str(t.shape * 2)
        assert str((7,) + l.shape) == str((7,) + t.shape) and l.shape.numel() == t.shape.numel()
        assert str(pickle.loads(pickle.dumps(l.shape))) == str(t.shape)
    assert str(tl.Size((tl.tensor(3),))) == str(torch.Size((torch.tensor(3),)))


def test_size_in_a_compiled_step():
    # a Size returned from (and used inside) a compiled step: a leaf of the output structure, replayed
    def step(x):
        b, t, c = x.size()
        y = x.view(b * t, c).sum(0).view(x.shape[2:]) + tl.zeros(x.shape[2:])
        return y.sum().item(), y.shape
    compiled = tl.compile(step, fullgraph=True)
    x = tl.ones(2, 3, 4)
    outs = [compiled(x) for _ in range(3)]
    assert outs == [(24.0, (4,))] * 3 and str(outs[-1][1]) == "torch.Size([4])"
    assert compiled.stats["replays"] == 2
