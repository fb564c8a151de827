"""Review s14, data pipelines and evaluation code: what PyTorch-style data loading and metric code needed.

- `from torch.nn.utils.rnn import pad_sequence` failed: `nn.utils` was a module; it is a package with `rnn`;
"""
import numpy as np
import pytest

import tinygrad_lite as tl


# ---------------- pad_sequence ----------------

def _seqs(rng, lengths, trailing=(3,)):
    return [rng.standard_normal((n,) + trailing) for n in lengths]


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_pad_sequence_matches_torch(torch, batch_first, padding_side):
    from tinygrad_lite.nn.utils.rnn import pad_sequence
    arrays = _seqs(np.random.default_rng(0), [4, 1, 3])
    ours = [tl.tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    out = pad_sequence(ours, batch_first=batch_first, padding_value=-2.5, padding_side=padding_side)
    tout = torch.nn.utils.rnn.pad_sequence(theirs, batch_first=batch_first, padding_value=-2.5,
                                           padding_side=padding_side)
    np.testing.assert_array_equal(out.numpy(), tout.detach().numpy())
    w = np.arange(out.numel(), dtype=np.float64).reshape(out.shape)
    (out * tl.tensor(w)).sum().backward()
    (tout * torch.tensor(w)).sum().backward()
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a.grad.numpy(), b.grad.numpy())


def test_pad_sequence_reachable_as_torch_nn_utils_rnn():
    import tinygrad_lite.nn.utils.rnn as rnn
    assert tl.nn.utils.rnn is rnn and tl.nn.utils.clip_grad_norm_ is not None
    out = tl.nn.utils.rnn.pad_sequence([tl.tensor([1, 2]), tl.tensor([3])])
    assert out.dtype == tl.int64 and out.tolist() == [[1, 3], [2, 0]]


def test_pad_sequence_errors_name_the_shapes():
    from tinygrad_lite.nn.utils.rnn import pad_sequence
    with pytest.raises(RuntimeError, match=r"pad_sequence.*\(2, 3\).*\(2, 4\)"):
        pad_sequence([tl.zeros(2, 3), tl.zeros(2, 4)])
    with pytest.raises(RuntimeError, match="empty list"):
        pad_sequence([])
