"""RNN, LSTM and GRU (their single-step cells RNNCell, LSTMCell and GRUCell are in rnn_cells.py), as PyTorch's: the
same constructor arguments, parameter names and shapes (weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0,
`_reverse` for the backward direction; weight_ih, weight_hh, bias_ih, bias_hh for the cells), gate orders (LSTM i,
f, g, o; GRU r, z, n with n = tanh(W_in x + b_in + r * (W_hn h + b_hn))), initialisation and return values.

Layers and cells share one step, `cell_step`, computed feature-major: the state is h^T (hidden, batch), the gates
are W_h h^T plus the input part (x W_x^T + b)^T, each gate a block of rows, followed by the mode's gate expressions.
Feature-major is the layout BLAS and NumPy are fastest on here: W_h h^T multiplies two C-contiguous operands
(OpenBLAS takes 40 us for LSTM(128)'s batch of 32 where h W_h^T, whose second operand is a transposed view, takes 61
us), and every gate is a contiguous block, so the gate expressions run on contiguous memory. A layer projects each
step's input inside its loop (see `_direction`); a cell projects its one input. For the GRU both
weights get a fourth block of zeros so that the n gate's input and hidden parts come out separately
(`fused_weights`): gate rows [r, z, n_input, n_hidden]."""
import math
import warnings

import numpy as np

from ..compile.hooks import constant
from ..ops.registry import OpError
from ..shape import cat, stack
from ..tensor import Tensor
from . import init
from .dropout import dropout as _dropout
from .linear import check_size, factory_dtype
from .module import Module, Parameter
from .utils.rnn import PackedSequence, packed_to_padded, padded_to_packed

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


# ---------------- the one cell step, shared by the layers and the cells ----------------
# Feature-major: `gates` is (gates, batch), `state` a tuple of (hidden, batch) Tensors; gate k is rows k*H:(k+1)*H.
def _tanh_step(gates, state, hidden):
    return (gates.tanh(),)


def _relu_step(gates, state, hidden):
    return (gates.relu(),)


def _lstm_step(gates, state, hidden):
    s = gates[:3 * hidden].sigmoid()  # rows i, f, o (fused_weights' order): one sigmoid; g takes tanh
    c = s[hidden:2 * hidden] * state[1] + s[:hidden] * gates[3 * hidden:].tanh()
    return s[2 * hidden:] * c.tanh(), c


def _gru_step(gates, state, hidden):
    rz = gates[:2 * hidden].sigmoid()
    n = (gates[2 * hidden:3 * hidden] + rz[:hidden] * gates[3 * hidden:]).tanh()
    return (n + rz[hidden:] * (state[0] - n),)


_STEPS = {"RNN_TANH": _tanh_step, "RNN_RELU": _relu_step, "LSTM": _lstm_step, "GRU": _gru_step}


def fused_weights(mode, w_ih, w_hh, b_ih, b_hh, hidden):
    """(W_x, W_h, b): the weights acting on x and on h, and the bias, laid out in the step's gate order. For the
    LSTM rows [i, f, o, g] (PyTorch's are i, f, g, o): the three sigmoid gates are one block, one sigmoid and one
    gradient of it a step instead of two: for a copy of the weights a call, W4's step 3% faster eager, 1% compiled,
    the same numbers bit for bit. For the GRU rows [r, z, n_input, n_hidden], so that r can scale the n gate's
    hidden part alone."""
    if mode == "LSTM":
        def order(w):
            return cat([w[:2 * hidden], w[3 * hidden:], w[2 * hidden:3 * hidden]], 0)
        return order(w_ih), order(w_hh), (None if b_ih is None else order(b_ih + b_hh))
    if mode != "GRU":
        return w_ih, w_hh, (None if b_ih is None else b_ih + b_hh)
    zeros_x = Tensor._wrap(constant(np.zeros((hidden, w_ih.shape[1]), dtype=w_ih.dtype)))
    zeros_h = Tensor._wrap(constant(np.zeros((hidden, hidden), dtype=w_hh.dtype)))
    w_x = cat([w_ih, zeros_x], 0)
    w_h = cat([w_hh[:2 * hidden], zeros_h, w_hh[2 * hidden:]], 0)
    b = None if b_ih is None else \
        cat([b_ih[:2 * hidden] + b_hh[:2 * hidden], b_ih[2 * hidden:], b_hh[2 * hidden:]], 0)
    return w_x, w_h, b


def cell_step(step, x_proj_t, state_t, w_h, hidden):
    """One step of any cell, feature-major: `x_proj_t` is (x W_x^T + b)^T (gates, batch), `state_t` the tuple (h^T,)
    or (h^T, c^T) of (hidden, batch) Tensors; returns the new state tuple, feature-major too."""
    return step(w_h @ state_t[0] + x_proj_t, state_t, hidden)


def _init_uniform(module):
    """PyTorch's recurrent initialisation: every parameter U(-1/sqrt(hidden_size), 1/sqrt(hidden_size))."""
    stdv = 1.0 / math.sqrt(module.hidden_size) if module.hidden_size > 0 else 0
    for w in module.parameters():
        init.uniform_(w, -stdv, stdv)


class RNNBase(Module):
    """Shared parameters, checks and the layer/direction loop of RNN, LSTM and GRU."""

    def __init__(self, mode, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, proj_size=0, device=None, dtype=None):
        super().__init__()
        name = type(self).__name__
        dt = factory_dtype(dtype, device, name)
        if not isinstance(dropout, (int, float)) or isinstance(dropout, bool) or not 0 <= dropout <= 1:
            raise ValueError(f"{name}: dropout should be a number in range [0, 1] representing the probability of an "
                             f"element being zeroed, got {dropout!r}")
        input_size = check_size(input_size, "input_size", name, minimum=1)
        hidden_size = check_size(hidden_size, "hidden_size", name, minimum=1)
        num_layers = check_size(num_layers, "num_layers", name, minimum=1)
        if dropout > 0 and num_layers == 1:
            warnings.warn(f"dropout option adds dropout after all but last recurrent layer, so non-zero dropout "
                          f"expects num_layers greater than 1, but got dropout={dropout} and num_layers={num_layers}")
        if proj_size:
            raise NotImplementedError(f"{name}: proj_size is not supported")
        self.mode, self.input_size, self.hidden_size = mode, input_size, hidden_size
        self.num_layers, self.bias, self.batch_first = num_layers, bias, batch_first
        self.dropout, self.bidirectional, self.proj_size = float(dropout), bidirectional, proj_size
        gate_size = _GATES[mode] * hidden_size
        directions = 2 if bidirectional else 1
        self._flat_weights_names = []
        for layer in range(num_layers):
            layer_in = input_size if layer == 0 else hidden_size * directions
            for direction in range(directions):
                sfx = f"_l{layer}" + ("_reverse" if direction else "")
                shapes = [("weight_ih", (gate_size, layer_in)), ("weight_hh", (gate_size, hidden_size))]
                if bias:
                    shapes += [("bias_ih", (gate_size,)), ("bias_hh", (gate_size,))]
                for kind, shape in shapes:
                    setattr(self, kind + sfx, Parameter(np.empty(shape, dtype=dt)))
                    self._flat_weights_names.append(kind + sfx)
        self.reset_parameters()

    def reset_parameters(self):
        _init_uniform(self)

    def flatten_parameters(self):
        """No-op (PyTorch compacts weights for cuDNN)."""

    @property
    def all_weights(self):
        return [[getattr(self, n) for n in self._flat_weights_names[i:i + (4 if self.bias else 2)]]
                for i in range(0, len(self._flat_weights_names), 4 if self.bias else 2)]

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if self.batch_first is not False:
            s += f", batch_first={self.batch_first}"
        if self.dropout != 0:
            s += f", dropout={self.dropout}"
        if self.bidirectional is not False:
            s += f", bidirectional={self.bidirectional}"
        return s

    # ---------------- forward ----------------
    def _check_input(self, input):
        name = type(self).__name__
        if isinstance(input, PackedSequence):
            if not isinstance(input.data, Tensor) or input.data.ndim != 2 or input.data.shape[-1] != self.input_size:
                raise OpError(f"{name}: a PackedSequence input must hold data of shape (sum of lengths, "
                              f"input_size={self.input_size}), got "
                              f"{tuple(getattr(input.data, 'shape', ()))}")
            return
        if not isinstance(input, Tensor):
            raise TypeError(f"{name}: expected a Tensor or PackedSequence input, got {type(input).__name__}")
        if input.ndim not in (2, 3):
            raise OpError(f"{name}: Expected input to be 2D or 3D, got {input.ndim}D input of shape "
                          f"{tuple(input.shape)}")
        if input.shape[-1] != self.input_size:
            raise OpError(f"{name}: input.size(-1) must be equal to input_size. Expected {self.input_size}, got "
                          f"{input.shape[-1]} (input shape {tuple(input.shape)})")
        time_dim = 1 if self.batch_first and input.ndim == 3 else 0
        if input.shape[time_dim] == 0:
            raise OpError(f"{name}: Expected sequence length to be larger than 0, got input of shape "
                          f"{tuple(input.shape)} (sequence dim {time_dim})")

    def _check_hidden(self, hx, batch, batched, what):
        d = 2 if self.bidirectional else 1
        expected = (self.num_layers * d, batch, self.hidden_size) if batched else \
            (self.num_layers * d, self.hidden_size)
        if not isinstance(hx, Tensor):
            raise TypeError(f"{type(self).__name__}: {what} must be a Tensor, got {type(hx).__name__}")
        if tuple(hx.shape) != expected:
            raise OpError(f"{type(self).__name__}: Expected {what} size {expected}, got {tuple(hx.shape)}")
        return hx if batched else hx.unsqueeze(1)

    def _batch(self, input):
        """(batch size, batched?) of a Tensor or PackedSequence input."""
        if isinstance(input, PackedSequence):
            return int(input.batch_sizes[0]), True
        return (input.shape[0 if self.batch_first else 1], True) if input.ndim == 3 else (1, False)

    def _forward_hidden(self, input, hx):
        """forward of the single-state cells (RNN, GRU): (output, h_n)."""
        self._check_input(input)
        batch, batched = self._batch(input)
        h0 = None if hx is None else self._check_hidden(hx, batch, batched, "hidden")
        output, (h_n,) = self._run(input, [h0])
        return output, h_n

    def _run(self, input, states):
        """Run every layer and direction. `states` is a list (one per state tensor: h, or h and c) of
        (L*D, B, H) Tensors or None. Returns output and the final states, each (L*D, B, H). A PackedSequence runs
        padded, in its sorted batch order, each step on the batch_sizes[t] sequences still running (as PyTorch's):
        the states given and returned are in the caller's batch order, the output is packed like the input."""
        if isinstance(input, PackedSequence):
            seq, batch_sizes = packed_to_padded(input)
            if input.sorted_indices is not None:
                states = [None if s is None else s.index_select(1, input.sorted_indices) for s in states]
            output, final_states = self._run_padded(seq, states, batch_sizes, True)
            if input.unsorted_indices is not None:
                final_states = [f.index_select(1, input.unsorted_indices) for f in final_states]
            return padded_to_packed(output, input), final_states
        return self._run_padded(input, states, None, input.ndim == 3)

    def _run_padded(self, input, states, batch_sizes, batched):
        if not batched:
            input = input.unsqueeze(0 if self.batch_first else 1)
        time_major = batch_sizes is not None or not self.batch_first
        seq = input if time_major else input.transpose(0, 1)  # (T, B, F)
        batch = seq.shape[1]
        d = 2 if self.bidirectional else 1
        zeros = Tensor._wrap(constant(np.zeros((batch, self.hidden_size), dtype=self.weight_ih_l0.dtype)))
        finals = [[] for _ in states]
        for layer in range(self.num_layers):
            outs = []
            for direction in range(d):
                k = layer * d + direction
                init_state = [zeros if s is None else s[k] for s in states]
                sfx = f"_l{layer}" + ("_reverse" if direction else "")
                out, last = self._direction(seq, bool(direction), init_state, sfx, batch_sizes)
                outs.append(out)
                for f, s in zip(finals, last):
                    f.append(s)
            seq = outs[0] if d == 1 else cat(outs, 2)
            if self.dropout and self.training and layer < self.num_layers - 1:
                seq = _dropout(seq, self.dropout)
        output = seq if time_major else seq.transpose(0, 1)
        final_states = [stack(f, 0) for f in finals]
        if not batched:
            output = output.squeeze(0 if self.batch_first else 1)
            final_states = [f.squeeze(1) for f in final_states]
        return output, final_states

    def _direction(self, seq, reverse, state, sfx, batch_sizes=None):
        """One layer in one direction over a (T, B, F) sequence: (the (T, B, H) outputs, the final states).
        With `batch_sizes` (sequences sorted by decreasing length), step t updates the first batch_sizes[t] states
        and keeps the others: a sequence's final state is the one after its last step, and going in reverse each
        sequence starts from the initial state at its own last step; outputs past a sequence's end are unused.
        Each step projects its own input, W_x x_t^T, feature-major like the rest of the step: its weight gradient is
        then one small matmul per step, where one projection of the whole sequence would have each step's gradient
        added into a strided slice of a (gates, T*B) buffer (slower than the matmul; measured again once slice
        gradients were tiled, W4 compiled 15.2 -> 17.9 ms: the 32 fewer matmuls and weight-gradient adds saved ~1.8 ms,
        the column blocks' copies and strided adds cost ~3 ms). The bias rides along as an input feature that is
        always 1 (one matmul gives W_x x_t^T + b)."""
        w_ih, w_hh = getattr(self, "weight_ih" + sfx), getattr(self, "weight_hh" + sfx)
        b_ih, b_hh = (getattr(self, "bias_ih" + sfx), getattr(self, "bias_hh" + sfx)) if self.bias else (None, None)
        hidden = self.hidden_size
        w_x, w_h, b = fused_weights(self.mode, w_ih, w_hh, b_ih, b_hh, hidden)
        steps, batch, _ = seq.shape
        if b is not None:
            w_x = cat([w_x, b.unsqueeze(1)], 1)
            seq = cat([seq, Tensor._wrap(constant(np.ones((steps, batch, 1), dtype=seq.dtype)))], 2)
        step = _STEPS[self.mode]
        state = [s.T for s in state]  # feature-major (hidden, batch) while stepping
        out = [None] * steps
        for t in (range(steps - 1, -1, -1) if reverse else range(steps)):
            running = batch if batch_sizes is None else batch_sizes[t]
            if running == batch:
                state = cell_step(step, w_x @ seq[t].T, state, w_h, hidden)
            else:
                new = cell_step(step, w_x @ seq[t, :running].T, [s[:, :running] for s in state], w_h, hidden)
                state = [cat([n, s[:, running:]], 1) for n, s in zip(new, state)]
            out[t] = state[0]
        return stack(out, 0).permute(0, 2, 1), [s.T for s in state]  # (T, H, B) stacked, read as (T, B, H)


class RNN(RNNBase):
    """Elman RNN: h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh) (or relu). Returns (output, h_n)."""

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")
        self.nonlinearity = nonlinearity
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", input_size, hidden_size, num_layers,
                         bias, batch_first, dropout, bidirectional, 0, device, dtype)

    def forward(self, input, hx=None):
        return self._forward_hidden(input, hx)


class LSTM(RNNBase):
    """Long short-term memory: gates i, f, g, o; c_t = f c + i g, h_t = o tanh(c_t). Returns
    (output, (h_n, c_n))."""

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, proj_size=0, device=None, dtype=None):
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         proj_size, device, dtype)

    def forward(self, input, hx=None):
        self._check_input(input)
        batch, batched = self._batch(input)
        states = [None, None]
        if hx is not None:
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise TypeError(f"LSTM: hx must be a tuple (h_0, c_0), got {type(hx).__name__}")
            states = [self._check_hidden(hx[0], batch, batched, "hidden[0]"),
                      self._check_hidden(hx[1], batch, batched, "hidden[1]")]
        output, (h_n, c_n) = self._run(input, states)
        return output, (h_n, c_n)


class GRU(RNNBase):
    """Gated recurrent unit: r, z = sigmoid(...); n = tanh(W_in x + b_in + r (W_hn h + b_hn));
    h_t = (1 - z) n + z h. Returns (output, h_n)."""

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, device=None, dtype=None):
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, 0,
                         device, dtype)

    def forward(self, input, hx=None):
        return self._forward_hidden(input, hx)
