"""Review s14 r2: torch.nn.utils.rnn and RNN/LSTM/GRU on a PackedSequence, used as a demanding PyTorch user would,
against PyTorch (the oracle) and finite differences. Each test failed before its fix."""
import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite.gradcheck import gradcheck
from tinygrad_lite.nn.utils import rnn as R


def _packed():
    return R.pack_sequence([tl.tensor(np.ones((3, 2))), tl.tensor(np.zeros((1, 2)))])


# ---------------- PackedSequence's methods and constructor ----------------
def test_packed_sequence_has_all_of_pytorchs_dtype_conversions(torch):
    ours = _packed()
    theirs = torch.nn.utils.rnn.pack_sequence([torch.ones(3, 2, dtype=torch.float64), torch.zeros(1, 2,
                                                                                                  dtype=torch.float64)])
    for name in ("double", "float", "half", "long", "int", "short", "char", "byte"):
        got, want = getattr(ours, name)(), getattr(theirs, name)()
        assert str(got.data.dtype) == str(want.data.dtype).replace("torch.", ""), name
        assert got.batch_sizes.tolist() == want.batch_sizes.tolist(), name
    assert ours.double() is ours  # nothing changes: self, as PyTorch's
    with pytest.raises(RuntimeError, match="PackedSequence.cuda.*not available"):
        ours.cuda()


def test_packed_sequence_from_one_pair_as_pytorch(torch):
    data, sizes = tl.zeros(3, 2), tl.tensor([2, 1])
    got = R.PackedSequence((data, sizes))
    want = torch.nn.utils.rnn.PackedSequence((torch.zeros(3, 2), torch.tensor([2, 1])))
    assert got.data is data and got.batch_sizes.tolist() == want.batch_sizes.tolist() == [2, 1]
    assert got.sorted_indices is None and got.unsorted_indices is None
    with pytest.raises(TypeError, match="PackedSequence"):
        R.PackedSequence(tl.zeros(3, 2))


# ---------------- pack_padded_sequence ----------------
@pytest.mark.parametrize("shape", [(3, 0, 2), (3, 2, 0)])
def test_packing_an_empty_tensor_raises_as_pytorch(torch, shape):
    lengths = [3] * shape[1]
    with pytest.raises(RuntimeError, match="Cannot pack empty tensors"):
        torch.nn.utils.rnn.pack_padded_sequence(torch.zeros(shape), lengths)
    with pytest.raises(RuntimeError, match=r"pack_padded_sequence: Cannot pack empty tensors.*\(3, " + str(shape[1])):
        R.pack_padded_sequence(tl.zeros(*shape), lengths)


def test_packed_data_grad_fn_is_named_as_pytorchs(torch):
    x = tl.tensor(np.ones((3, 2, 2)), requires_grad=True)
    tx = torch.ones(3, 2, 2, requires_grad=True)
    for kw in ({}, {"enforce_sorted": False}):
        lengths = [3, 1] if not kw else [1, 3]
        want = torch.nn.utils.rnn.pack_padded_sequence(tx, lengths, **kw).data.grad_fn.name()
        assert R.pack_padded_sequence(x, lengths, **kw).data.grad_fn.name() == want == "PackPaddedSequenceBackward0"
    got = R.pack_sequence([x[:, 0], x[:2, 1]]).data
    assert got.grad_fn.name() == "PackPaddedSequenceBackward0"
    # the gradient still flows through the labelled entry
    assert gradcheck(lambda x: R.pack_padded_sequence(x, [1, 3], enforce_sorted=False).data,
                     (tl.tensor(np.random.default_rng(0).standard_normal((3, 2, 2)), requires_grad=True),))


# ---------------- the rest of torch.nn.utils.rnn: unpad_sequence, unpack_sequence, invert_permutation ----------
def test_module_exports_what_pytorchs_does(torch):
    assert sorted(R.__all__) == sorted(torch.nn.utils.rnn.__all__)
    from tinygrad_lite.nn.utils.rnn import invert_permutation, unpack_sequence, unpad_sequence
    assert all(map(callable, (invert_permutation, unpack_sequence, unpad_sequence)))


@pytest.mark.parametrize("batch_first", [False, True])
def test_unpad_and_unpack_sequence_match_torch_with_gradients(torch, batch_first):
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal((n, 2)) for n in (2, 4, 1, 4)]
    ours = [tl.tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    padded = R.pad_sequence(ours, batch_first=batch_first)
    t_padded = torch.nn.utils.rnn.pad_sequence(theirs, batch_first=batch_first)
    got = R.unpad_sequence(padded, tl.tensor([2, 4, 1, 4]), batch_first=batch_first)
    want = torch.nn.utils.rnn.unpad_sequence(t_padded, torch.tensor([2, 4, 1, 4]), batch_first=batch_first)
    assert tuple(padded.shape) == tuple(t_padded.shape)  # (PyTorch's transposes its argument in place; ours not)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g.detach().numpy(), w.detach().numpy())
    got = R.unpack_sequence(R.pack_sequence(ours, enforce_sorted=False))
    want = torch.nn.utils.rnn.unpack_sequence(torch.nn.utils.rnn.pack_sequence(theirs, enforce_sorted=False))
    weights = [rng.standard_normal(a.shape) for a in arrays]
    sum((g * tl.tensor(w)).sum() for g, w in zip(got, weights)).backward()
    sum((g * torch.tensor(w)).sum() for g, w in zip(want, weights)).backward()
    for g, w, a in zip(got, want, arrays):
        np.testing.assert_array_equal(g.detach().numpy(), w.detach().numpy())
    for o, t in zip(ours, theirs):
        np.testing.assert_array_equal(o.grad.numpy(), t.grad.numpy())
    assert gradcheck(lambda *xs: tuple(R.unpack_sequence(R.pack_sequence(list(xs), enforce_sorted=False))),
                     tuple(tl.tensor(a, requires_grad=True) for a in arrays))
    with pytest.raises(ValueError, match=r"unpad_sequence.*\(4, 4, 2\)"):
        R.unpad_sequence(tl.zeros(4, 4, 2), [1, 2, 3])


def test_invert_permutation_matches_torch(torch):
    perm = [2, 0, 3, 1]
    assert R.invert_permutation(tl.tensor(perm)).tolist() == \
        torch.nn.utils.rnn.invert_permutation(torch.tensor(perm)).tolist()
    assert R.invert_permutation(None) is None
