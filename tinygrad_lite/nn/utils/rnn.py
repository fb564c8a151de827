"""`tl.nn.utils.rnn`, as `torch.nn.utils.rnn`: `pad_sequence`, a composition of `cat` and `stack` (so it is
differentiable through the sequences and needs no backward of its own)."""
from ...ops.registry import OpError
from ...shape import cat, stack
from ...tensor import Tensor

__all__ = ["pad_sequence"]


def pad_sequence(sequences, batch_first=False, padding_value=0.0, padding_side="right"):
    """Stack variable-length sequences (each of shape (L_i, *)) into one tensor of shape (T, B, *), or (B, T, *)
    with `batch_first`, where T is the longest L_i; the shorter ones are padded with `padding_value` on
    `padding_side` ('right' or 'left'), as PyTorch's."""
    if isinstance(sequences, Tensor):
        sequences = sequences.unbind(0)  # PyTorch iterates a tensor over its first dimension
    sequences = list(sequences)
    if not sequences:
        raise RuntimeError("pad_sequence: received an empty list of sequences")
    if padding_side not in ("left", "right"):
        raise ValueError(f"pad_sequence: padding_side must be 'left' or 'right', got {padding_side!r}")
    for i, s in enumerate(sequences):
        if not isinstance(s, Tensor):
            raise TypeError(f"pad_sequence: expected a list of Tensors, got {type(s).__name__} at index {i}")
        if s.ndim == 0:
            raise OpError(f"pad_sequence: each sequence needs a first (time) dimension, got a 0-d tensor at "
                          f"index {i}")
    trailing = tuple(sequences[0].shape[1:])
    for i, s in enumerate(sequences):
        if tuple(s.shape[1:]) != trailing:
            raise OpError(f"pad_sequence: every sequence must have the same trailing dimensions; sequence 0 has "
                          f"shape {tuple(sequences[0].shape)} and sequence {i} has shape {tuple(s.shape)}")
    longest = max(s.shape[0] for s in sequences)
    padded = []
    for s in sequences:
        missing = longest - s.shape[0]
        if missing:
            fill = s.new_full((missing,) + trailing, padding_value)
            s = cat([s, fill] if padding_side == "right" else [fill, s], dim=0)
        padded.append(s)
    return stack(padded, dim=0 if batch_first else 1)
