"""Review s14 (sequence models for text): what the tutorial-style NLP scripts (tests/compat/seq2seq_attention.py,
packed_rnn_classifier.py, word_embeddings.py) needed from tinygrad_lite: `torch.nn.utils.rnn` (pad_sequence,
PackedSequence, pack_padded_sequence, pad_packed_sequence, pack_sequence) and RNN/LSTM/GRU taking a PackedSequence,
pinned against PyTorch and finite differences."""
import numpy as np
import pytest

import tinygrad_lite as tl
import tinygrad_lite.nn as tnn
from tinygrad_lite.gradcheck import gradcheck


def test_nn_utils_rnn_is_importable_as_in_pytorch():
    import importlib
    rnn = importlib.import_module("tinygrad_lite.nn.utils.rnn")
    assert tl.nn.utils.rnn is rnn
    for name in ("PackedSequence", "pad_sequence", "pack_padded_sequence", "pad_packed_sequence", "pack_sequence"):
        assert callable(getattr(rnn, name)), name
    assert callable(tl.nn.utils.clip_grad_norm_)  # the package keeps the clipping functions


# ---------------- pad_sequence ----------------
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_pad_sequence_matches_torch(torch, batch_first, padding_side):
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal((n, 3)) for n in (2, 4, 1)]
    got = tl.nn.utils.rnn.pad_sequence([tl.tensor(a) for a in arrays], batch_first=batch_first, padding_value=-2.0,
                                       padding_side=padding_side)
    want = torch.nn.utils.rnn.pad_sequence([torch.tensor(a) for a in arrays], batch_first=batch_first,
                                           padding_value=-2.0, padding_side=padding_side)
    np.testing.assert_array_equal(got.numpy(), want.numpy())
    ints = tl.nn.utils.rnn.pad_sequence([tl.tensor([1, 2, 3]), tl.tensor([4])], batch_first=True)
    assert ints.dtype == tl.int64 and ints.tolist() == [[1, 2, 3], [4, 0, 0]]


def test_pad_sequence_errors_name_the_op_and_shapes():
    with pytest.raises(Exception, match=r"pad_sequence.*\(2, 3\).*\(2, 4\)"):
        tl.nn.utils.rnn.pad_sequence([tl.zeros(2, 3), tl.zeros(2, 4)])


# ---------------- pack_padded_sequence / pad_packed_sequence ----------------
LENGTHS = [3, 5, 1, 5, 2]  # unsorted, with a tie


@pytest.mark.parametrize("batch_first", [False, True])
def test_pack_and_pad_match_torch(torch, batch_first):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 5, 2) if batch_first else (5, 5, 2))
    p = tl.nn.utils.rnn.pack_padded_sequence(tl.tensor(x), tl.tensor(LENGTHS), batch_first=batch_first,
                                             enforce_sorted=False)
    q = torch.nn.utils.rnn.pack_padded_sequence(torch.tensor(x), torch.tensor(LENGTHS), batch_first=batch_first,
                                                enforce_sorted=False)
    np.testing.assert_array_equal(p.data.numpy(), q.data.numpy())
    for field in ("batch_sizes", "sorted_indices", "unsorted_indices"):
        assert getattr(p, field).tolist() == getattr(q, field).tolist(), field
    assert isinstance(p, tuple) and type(p).__name__ == "PackedSequence"
    got, got_len = tl.nn.utils.rnn.pad_packed_sequence(p, batch_first=batch_first, padding_value=7.0, total_length=6)
    want, want_len = torch.nn.utils.rnn.pad_packed_sequence(q, batch_first=batch_first, padding_value=7.0,
                                                            total_length=6)
    np.testing.assert_array_equal(got.numpy(), want.numpy())
    # the lengths come back per sequence in the input's order (they were the column sums once: wrong when unsorted)
    assert got_len.tolist() == want_len.tolist() == LENGTHS and got_len.dtype == tl.int64


def test_pack_sorted_and_pack_sequence_match_torch(torch):
    seqs = [np.arange(n, dtype=np.float64) + 10 * n for n in (4, 2, 2)]
    p = tl.nn.utils.rnn.pack_sequence([tl.tensor(s) for s in seqs])
    q = torch.nn.utils.rnn.pack_sequence([torch.tensor(s) for s in seqs])
    np.testing.assert_array_equal(p.data.numpy(), q.data.numpy())
    assert p.batch_sizes.tolist() == q.batch_sizes.tolist() and p.sorted_indices is None is q.sorted_indices


def test_pack_padded_sequence_errors():
    x = tl.zeros(4, 3, 2)
    with pytest.raises(RuntimeError, match="sorted in decreasing order.*enforce_sorted=False"):
        tl.nn.utils.rnn.pack_padded_sequence(x, [1, 3, 2])
    with pytest.raises(RuntimeError, match="greater than 0"):
        tl.nn.utils.rnn.pack_padded_sequence(x, [3, 0, 2], enforce_sorted=False)
    with pytest.raises(Exception, match=r"pack_padded_sequence.*batch_size.*\(4, 3, 2\)"):
        tl.nn.utils.rnn.pack_padded_sequence(x, [3, 2])
    with pytest.raises(Exception, match=r"pack_padded_sequence.*5.*\(4, 3, 2\)"):
        tl.nn.utils.rnn.pack_padded_sequence(x, [5, 2, 1])
    p = tl.nn.utils.rnn.pack_padded_sequence(x, [3, 2, 1])
    with pytest.raises(ValueError, match="total_length=2.*3"):
        tl.nn.utils.rnn.pad_packed_sequence(p, total_length=2)


def test_pack_and_pad_gradients_by_finite_differences():
    x = tl.tensor(np.random.default_rng(2).standard_normal((4, 3, 2)), requires_grad=True)
    w = tl.tensor(np.random.default_rng(3).standard_normal((4, 3, 2)))

    def f(x):
        p = tl.nn.utils.rnn.pack_padded_sequence(x, [2, 4, 3], enforce_sorted=False)
        out, _ = tl.nn.utils.rnn.pad_packed_sequence(tl.nn.utils.rnn.PackedSequence(
            p.data * p.data, p.batch_sizes, p.sorted_indices, p.unsorted_indices), padding_value=1.5)
        return (out * w).sum()
    assert gradcheck(f, (x,))


# ---------------- the recurrent layers on a PackedSequence ----------------
def _copy_weights(tl_module, torch_module):
    tl_module.load_state_dict({k: tl.tensor(v.detach().numpy()) for k, v in torch_module.state_dict().items()})


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_packed_bidirectional_two_layer_matches_torch(torch, kind):
    torch.manual_seed(0)
    ref = getattr(torch.nn, kind)(3, 4, num_layers=2, bidirectional=True, batch_first=True).double()
    mod = getattr(tnn, kind)(3, 4, num_layers=2, bidirectional=True, batch_first=True).double()
    _copy_weights(mod, ref)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((5, 5, 3))
    h0 = rng.standard_normal((4, 5, 4))
    c0 = rng.standard_normal((4, 5, 4))
    xt, xg = torch.tensor(x, requires_grad=True), tl.tensor(x, requires_grad=True)
    ht, hg = torch.tensor(h0, requires_grad=True), tl.tensor(h0, requires_grad=True)
    hx_t = (ht, torch.tensor(c0)) if kind == "LSTM" else ht
    hx_g = (hg, tl.tensor(c0)) if kind == "LSTM" else hg
    pt = torch.nn.utils.rnn.pack_padded_sequence(xt, torch.tensor(LENGTHS), batch_first=True, enforce_sorted=False)
    pg = tl.nn.utils.rnn.pack_padded_sequence(xg, tl.tensor(LENGTHS), batch_first=True, enforce_sorted=False)
    out_t, state_t = ref(pt, hx_t)
    out_g, state_g = mod(pg, hx_g)
    assert type(out_g).__name__ == "PackedSequence"
    assert out_g.batch_sizes.tolist() == out_t.batch_sizes.tolist()
    np.testing.assert_allclose(out_g.data.numpy(), out_t.data.detach().numpy(), rtol=1e-12, atol=1e-14)
    h_t = state_t[0] if kind == "LSTM" else state_t
    h_g = state_g[0] if kind == "LSTM" else state_g
    # h_n in the caller's batch order, each sequence's state after its own last step (forward) or first (reverse)
    np.testing.assert_allclose(h_g.numpy(), h_t.detach().numpy(), rtol=1e-12, atol=1e-14)
    if kind == "LSTM":
        np.testing.assert_allclose(state_g[1].numpy(), state_t[1].detach().numpy(), rtol=1e-12, atol=1e-14)
    padded_t, _ = torch.nn.utils.rnn.pad_packed_sequence(out_t, batch_first=True)
    padded_g, _ = tl.nn.utils.rnn.pad_packed_sequence(out_g, batch_first=True)
    w = rng.standard_normal(tuple(padded_t.shape))
    ((padded_t * torch.tensor(w)).sum() + (h_t * h_t).sum()).backward()
    ((padded_g * tl.tensor(w)).sum() + (h_g * h_g).sum()).backward()
    np.testing.assert_allclose(xg.grad.numpy(), xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(hg.grad.numpy(), ht.grad.numpy(), rtol=1e-10, atol=1e-12)
    grads_t = dict(ref.named_parameters())
    for name, p in mod.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), grads_t[name].grad.numpy(), rtol=1e-10, atol=1e-12, err_msg=name)


def test_packed_gru_gradients_by_finite_differences():
    tl.manual_seed(0)
    gru = tnn.GRU(2, 3, bidirectional=True).double()
    x = tl.tensor(np.random.default_rng(5).standard_normal((4, 3, 2)), requires_grad=True)

    def f(x):
        out, h = gru(tl.nn.utils.rnn.pack_padded_sequence(x, [4, 1, 3], enforce_sorted=False))
        return out.data.sum() + (h * h).sum()
    assert gradcheck(f, (x,))


def test_packed_input_errors_name_the_layer_and_shapes():
    lstm = tnn.LSTM(3, 4)
    p = tl.nn.utils.rnn.pack_padded_sequence(tl.zeros(2, 2, 5), [2, 1])
    with pytest.raises(Exception, match=r"LSTM.*PackedSequence.*input_size=3.*\(3, 5\)"):
        lstm(p)
    q = tl.nn.utils.rnn.pack_padded_sequence(tl.zeros(2, 2, 3), [2, 1])
    with pytest.raises(Exception, match=r"LSTM.*\(1, 2, 4\).*\(1, 3, 4\)"):
        lstm(q, (tl.zeros(1, 3, 4), tl.zeros(1, 3, 4)))
