"""`tl.nn.utils`, as `torch.nn.utils`: gradient clipping and parameters <-> vector (`clip_grad`), and
`tl.nn.utils.rnn`, variable-length sequences for the recurrent layers (pad_sequence, PackedSequence,
pack_padded_sequence, pad_packed_sequence, pack_sequence)."""
from .clip_grad import (clip_grad_norm_, clip_grad_value_, get_total_norm, clip_grads_with_norm_,
                        parameters_to_vector, vector_to_parameters)
from . import rnn

__all__ = ["clip_grad_norm_", "clip_grad_value_", "get_total_norm", "clip_grads_with_norm_", "parameters_to_vector",
           "vector_to_parameters", "rnn"]
