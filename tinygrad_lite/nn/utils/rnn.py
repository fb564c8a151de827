"""Variable-length sequences, as `torch.nn.utils.rnn`: `pad_sequence` stacks sequences of different lengths into one
padded tensor; `pack_padded_sequence` turns a padded batch into a `PackedSequence` (the time-major data of the
sequences sorted by decreasing length, `batch_sizes[t]` sequences still running at step t, and the sorting
permutation), which RNN, LSTM and GRU accept; `pad_packed_sequence` is its inverse; `pack_sequence` packs a list;
`unpad_sequence` and `unpack_sequence` give the list of sequences back.

Packing and unpacking are each one differentiable gather (`x[rows, cols]`) over index arrays computed from the
lengths, so gradients reach the padded input through the indexing primitive; no new primitive."""
from collections import namedtuple

import numpy as np

from ... import dtypes
from ...autograd.recorder import labelled
from ...compile.hooks import constant
from ...devices import check as check_device
from ...creation import full
from ...ops.registry import OpError
from ...shape import cat, stack
from ...tensor import Tensor

__all__ = ["PackedSequence", "invert_permutation", "pack_padded_sequence", "pad_packed_sequence", "pad_sequence",
           "unpad_sequence", "pack_sequence", "unpack_sequence"]


class PackedSequence(namedtuple("PackedSequence_", ["data", "batch_sizes", "sorted_indices", "unsorted_indices"])):
    """(data, batch_sizes, sorted_indices, unsorted_indices), as PyTorch's: `data` (sum of lengths, *) holds step 0
    of every sequence, then step 1 of those still running, ...; `batch_sizes` (int64) how many ran at each step;
    `sorted_indices` the batch order by decreasing length (None when the input was sorted) and `unsorted_indices`
    its inverse. Build it with pack_padded_sequence or pack_sequence."""

    def __new__(cls, data, batch_sizes=None, sorted_indices=None, unsorted_indices=None):
        if batch_sizes is None:  # PackedSequence((data, batch_sizes)), as PyTorch's
            if not isinstance(data, (list, tuple)) or len(data) != 2:
                raise TypeError(f"PackedSequence: expected (data, batch_sizes) or a pair of them, got batch_sizes=None "
                                f"and data of type {type(data).__name__}")
            data, batch_sizes = data
        if unsorted_indices is None and sorted_indices is not None:
            unsorted_indices = invert_permutation(sorted_indices)
        return super().__new__(cls, data, batch_sizes, sorted_indices, unsorted_indices)

    def _with_data(self, data):
        return type(self)(data, self.batch_sizes, self.sorted_indices, self.unsorted_indices)

    def to(self, *args, **kwargs):
        data = self.data.to(*args, **kwargs)
        return self if data is self.data else self._with_data(data)

    def cpu(self):
        return self

    def cuda(self, device=None, non_blocking=False):
        check_device(device if device is not None else "cuda", "PackedSequence.cuda")  # raises: no CUDA here
        return self

    # the dtype conversions of PyTorch's PackedSequence, each `self.to(dtype)` (self when the dtype is unchanged)
    def double(self):
        return self.to(dtypes.float64)

    def float(self):
        return self.to(dtypes.float32)

    def half(self):
        return self.to(dtypes.float16)

    def long(self):
        return self.to(dtypes.int64)

    def int(self):
        return self.to(dtypes.int32)

    def short(self):
        return self.to(dtypes.int16)

    def char(self):
        return self.to(dtypes.int8)

    def byte(self):
        return self.to(dtypes.uint8)

    @property
    def is_cuda(self):
        return False

    def is_pinned(self):
        return False


def invert_permutation(permutation):
    """The inverse of a permutation tensor (None for None), as PyTorch's: sorted <-> unsorted indices."""
    if permutation is None:
        return None
    perm = np.asarray(permutation.tolist(), dtype=np.int64)
    inverse = np.empty_like(perm)
    inverse[perm] = np.arange(perm.size, dtype=np.int64)
    return Tensor(inverse.astype(permutation.dtype))


def _lengths(lengths, where):
    """The lengths as a 1-D int64 array (from a Tensor, a list or an array; real numbers are truncated, as PyTorch's
    torch.as_tensor(lengths, dtype=torch.int64))."""
    arr = np.asarray(lengths.tolist() if isinstance(lengths, Tensor) else lengths)
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "biuf"):
        raise TypeError(f"{where}: expected `lengths` to be a 1-D list or tensor of integers, got "
                        f"{'shape ' + str(arr.shape) if arr.ndim != 1 else 'dtype ' + str(arr.dtype)}")
    return arr.astype(np.int64)


def _cells(batch_sizes):
    """(steps, rows) of the packed data's entries, in packed order: step-major, the running sequences of each step."""
    sizes = np.asarray(batch_sizes, dtype=np.int64)
    steps = np.repeat(np.arange(sizes.size), sizes)
    rows = np.arange(steps.size) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    return steps, rows


def pad_sequence(sequences, batch_first=False, padding_value=0.0, padding_side="right"):
    """Stack sequences of shapes (L_i, *) into (max L, B, *) (or (B, max L, *) with batch_first), each padded with
    `padding_value` on `padding_side` ("right" or "left")."""
    if isinstance(sequences, Tensor):
        sequences = list(sequences.unbind(0))
    sequences = list(sequences)
    if not sequences:
        raise RuntimeError("pad_sequence: received an empty list of sequences")
    if padding_side not in ("left", "right"):
        raise ValueError(f"pad_sequence: Expected padding_side to be one of left or right, but got {padding_side}.")
    for i, s in enumerate(sequences):
        if not isinstance(s, Tensor):
            raise TypeError(f"pad_sequence: expected a list of Tensors, got {type(s).__name__} at position {i}")
        if s.ndim == 0 or tuple(s.shape[1:]) != tuple(sequences[0].shape[1:]):
            raise OpError(f"pad_sequence: every sequence must have shape (L, *) with the same trailing dims, got "
                          f"shapes {[tuple(t.shape) for t in sequences]}")
    longest = max(s.shape[0] for s in sequences)
    dtype = sequences[0].dtype
    padded = []
    for s in sequences:
        s = s.to(dtype)
        short = longest - s.shape[0]
        if short:
            fill = full((short,) + tuple(s.shape[1:]), padding_value, dtype=dtype)
            s = cat([s, fill] if padding_side == "right" else [fill, s], 0)
        padded.append(s)
    return stack(padded, 0 if batch_first else 1)


@labelled("PackPaddedSequenceBackward0")
def pack_padded_sequence(input, lengths, batch_first=False, enforce_sorted=True):
    """Pack a padded batch (T, B, *) (or (B, T, *) with batch_first) whose sequence b has lengths[b] valid steps.
    With enforce_sorted=True the lengths must be decreasing; otherwise the batch is sorted here and the
    permutation kept in the PackedSequence, so that the RNN's outputs and states come back in the input's order."""
    where = "pack_padded_sequence"
    if not isinstance(input, Tensor):
        raise TypeError(f"{where}: expected a Tensor input, got {type(input).__name__}")
    lengths = _lengths(lengths, where)
    if input.ndim < 2:
        raise OpError(f"{where}: expected a padded input of at least 2 dims (T, B, *), got shape "
                      f"{tuple(input.shape)}")
    if input.numel() == 0:  # (PyTorch's check; an empty batch would leave batch_sizes empty, which no RNN can run)
        raise RuntimeError(f"{where}: Cannot pack empty tensors (input shape {tuple(input.shape)})")
    steps, batch = (input.shape[1], input.shape[0]) if batch_first else (input.shape[0], input.shape[1])
    if lengths.size != batch:
        raise OpError(f"{where}: Expected `len(lengths)` to be equal to batch_size, but got {lengths.size} (batch_size="
                      f"{batch}, input shape {tuple(input.shape)}, batch_first={batch_first})")
    if lengths.size and lengths.min() <= 0:
        raise RuntimeError(f"{where}: Length of all samples has to be greater than 0, but found an element in "
                           f"'lengths' that is <= 0 (lengths {lengths.tolist()})")
    if lengths.size and lengths.max() > steps:
        raise OpError(f"{where}: a length of {lengths.max()} exceeds the {steps} steps of the input of shape "
                      f"{tuple(input.shape)} (batch_first={batch_first})")
    if enforce_sorted:
        if np.any(lengths[:-1] < lengths[1:]):
            raise RuntimeError(f"{where}: `lengths` array must be sorted in decreasing order when `enforce_sorted` "
                               f"is True (got {lengths.tolist()}). You can pass `enforce_sorted=False` to "
                               f"pack_padded_sequence and/or pack_sequence to sidestep this requirement if you do "
                               f"not need ONNX exportability.")
        order, sorted_indices = np.arange(batch), None
    else:
        order = np.argsort(-lengths, kind="stable")
        sorted_indices = Tensor(order.astype(np.int64))
    ordered = lengths[order]
    batch_sizes = (ordered[None, :] > np.arange(ordered[0] if ordered.size else 0)[:, None]).sum(1)
    t, b = _cells(batch_sizes)
    b = order[b]
    data = input[constant(b), constant(t)] if batch_first else input[constant(t), constant(b)]
    return PackedSequence(data, Tensor(batch_sizes.astype(np.int64)), sorted_indices)


def _padded_index(batch_sizes, total, pad_row, unsorted):
    """(total, B) positions into the packed data (with a padding row appended at `pad_row`), in the batch order
    `unsorted` (None: sorted order)."""
    t, b = _cells(batch_sizes)
    index = np.full((total, batch_sizes[0] if len(batch_sizes) else 0), pad_row, dtype=np.int64)
    index[t, b] = np.arange(t.size)
    return index if unsorted is None else index[:, unsorted]


def pad_packed_sequence(sequence, batch_first=False, padding_value=0.0, total_length=None):
    """The inverse of pack_padded_sequence: (padded (T, B, *) or (B, T, *), lengths as an int64 tensor), in the
    batch order the sequences had before packing; T is the longest length, or total_length."""
    where = "pad_packed_sequence"
    if not isinstance(sequence, PackedSequence):
        raise TypeError(f"{where}: expected a PackedSequence, got {type(sequence).__name__}")
    data, batch_sizes = sequence.data, np.asarray(sequence.batch_sizes.tolist(), dtype=np.int64)
    longest = batch_sizes.size
    if total_length is not None:
        if total_length < longest:
            raise ValueError(f"{where}: Expected total_length to be at least the length of the longest sequence in "
                             f"input, but got total_length={total_length} and max sequence length being {longest}")
        longest = total_length
    unsorted = None if sequence.unsorted_indices is None else np.asarray(sequence.unsorted_indices.tolist())
    index = _padded_index(batch_sizes, longest, data.shape[0], unsorted)
    rows = cat([data, full((1,) + tuple(data.shape[1:]), padding_value, dtype=data.dtype)], 0)
    padded = rows[constant(index.T if batch_first else index)]
    lengths = (batch_sizes[None, :] > np.arange(batch_sizes[0] if batch_sizes.size else 0)[:, None]).sum(1)
    return padded, Tensor((lengths if unsorted is None else lengths[unsorted]).astype(np.int64))


def pack_sequence(sequences, enforce_sorted=True):
    """pack_padded_sequence(pad_sequence(sequences), their lengths, enforce_sorted=enforce_sorted)."""
    lengths = [s.shape[0] for s in sequences]
    return pack_padded_sequence(pad_sequence(sequences), lengths, enforce_sorted=enforce_sorted)


def unpad_sequence(padded_sequences, lengths, batch_first=False):
    """The inverse of pad_sequence: the list of sequences padded_sequences[:lengths[b], b] (or [b, :lengths[b]] with
    batch_first), each a slice of the padded tensor (which, unlike PyTorch's, is left untransposed)."""
    where = "unpad_sequence"
    if not isinstance(padded_sequences, Tensor) or padded_sequences.ndim < 2:
        raise TypeError(f"{where}: expected a padded Tensor of at least 2 dims, got "
                        f"{tuple(getattr(padded_sequences, 'shape', ())) or type(padded_sequences).__name__}")
    lengths = _lengths(lengths, where)
    padded = padded_sequences if batch_first else padded_sequences.transpose(0, 1)
    if lengths.size != padded.shape[0] or (lengths.size and (lengths.min() < 0 or lengths.max() > padded.shape[1])):
        raise ValueError(f"{where}: expected one length in [0, {padded.shape[1]}] per sequence of the padded tensor "
                         f"of shape {tuple(padded_sequences.shape)} (batch_first={batch_first}), got lengths "
                         f"{lengths.tolist()}")
    return [padded[b, :int(n)] for b, n in enumerate(lengths)]


def unpack_sequence(packed_sequences):
    """The inverse of pack_sequence: the list of the packed sequences, in their order before packing."""
    padded, lengths = pad_packed_sequence(packed_sequences, batch_first=True)
    return unpad_sequence(padded, lengths, batch_first=True)


def packed_to_padded(sequence):
    """For the recurrent layers: the (T, B, *) padded data of a PackedSequence in its sorted batch order (zero
    padding), and the batch sizes as a list."""
    sizes = sequence.batch_sizes.tolist()
    data = sequence.data
    rows = cat([data, Tensor._wrap(constant(np.zeros((1,) + tuple(data.shape[1:]), dtype=data.dtype)))], 0)
    return rows[constant(_padded_index(sizes, len(sizes), data.shape[0], None))], sizes


def padded_to_packed(padded, like):
    """For the recurrent layers: pack a (T, B, *) output in the sorted batch order of the PackedSequence `like`."""
    t, b = _cells(like.batch_sizes.tolist())
    return PackedSequence(padded[constant(t), constant(b)], like.batch_sizes, like.sorted_indices,
                          like.unsorted_indices)
