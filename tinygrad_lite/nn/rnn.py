"""RNN, LSTM and GRU, as PyTorch's: the same constructor arguments, parameter names and shapes (weight_ih_l0,
weight_hh_l0, bias_ih_l0, bias_hh_l0, `_reverse` for the backward direction), gate orders (LSTM i, f, g, o;
GRU r, z, n with n = tanh(W_in x + b_in + r * (W_hn h + b_hn))), initialisation and return values.

Each layer and direction projects the whole input sequence with one matmul (x W_ih^T + b_ih + b_hh), then loops
over the steps adding h W_hh^T and applying the gate expressions. For the GRU both weights get a fourth block of
zeros so that the n gate's input and hidden parts come out separately: gate columns [r, z, n_input, n_hidden]."""
import math
import warnings

import numpy as np

from ..ops.registry import OpError
from ..shape import cat, stack
from ..tensor import Tensor
from . import init
from .dropout import dropout as _dropout
from .linear import check_size, factory_dtype
from .module import Module, Parameter

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


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
        stdv = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for w in self.parameters():
            init.uniform_(w, -stdv, stdv)

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
        if not isinstance(input, Tensor):
            raise TypeError(f"{name}: expected a Tensor input, got {type(input).__name__}")
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

    def _forward_hidden(self, input, hx):
        """forward of the single-state cells (RNN, GRU): (output, h_n)."""
        self._check_input(input)
        batch = input.shape[0 if self.batch_first else 1] if input.ndim == 3 else 1
        h0 = None if hx is None else self._check_hidden(hx, batch, input.ndim == 3, "hidden")
        output, (h_n,) = self._run(input, [h0])
        return output, h_n

    def _run(self, input, states):
        """Run every layer and direction. `states` is a list (one per state tensor: h, or h and c) of
        (L*D, B, H) Tensors or None. Returns output and the final states, each (L*D, B, H)."""
        batched = input.ndim == 3
        if not batched:
            input = input.unsqueeze(0 if self.batch_first else 1)
        seq = input.transpose(0, 1) if self.batch_first else input  # time-major (T, B, F)
        batch = seq.shape[1]
        d = 2 if self.bidirectional else 1
        zeros = Tensor._wrap(np.zeros((batch, self.hidden_size), dtype=self.weight_ih_l0.dtype))
        finals = [[] for _ in states]
        for layer in range(self.num_layers):
            outs = []
            for direction in range(d):
                k = layer * d + direction
                init_state = [zeros if s is None else s[k] for s in states]
                sfx = f"_l{layer}" + ("_reverse" if direction else "")
                out, last = self._direction(seq, bool(direction), init_state, sfx)
                outs.append(out)
                for f, s in zip(finals, last):
                    f.append(s)
            seq = outs[0] if d == 1 else cat(outs, 2)
            if self.dropout and self.training and layer < self.num_layers - 1:
                seq = _dropout(seq, self.dropout)
        output = seq.transpose(0, 1) if self.batch_first else seq
        final_states = [stack(f, 0) for f in finals]
        if not batched:
            output = output.squeeze(0 if self.batch_first else 1)
            final_states = [f.squeeze(1) for f in final_states]
        return output, final_states

    def _direction(self, seq, reverse, state, sfx):
        """One layer in one direction over a (T, B, F) sequence: (the (T, B, H) outputs, the final states).
        The input projection of every step is one large matmul; each step then adds h @ W_hh^T (slicing the
        projection per step is cheap in backward: the engine adds slice gradients into one buffer)."""
        w_ih, w_hh = getattr(self, "weight_ih" + sfx), getattr(self, "weight_hh" + sfx)
        b_ih, b_hh = (getattr(self, "bias_ih" + sfx), getattr(self, "bias_hh" + sfx)) if self.bias else (None, None)
        w_x, w_h, b = self._fused_weights(w_ih, w_hh, b_ih, b_hh)
        steps, batch, feat = seq.shape
        proj = seq.reshape(steps * batch, feat) @ w_x.T
        if b is not None:
            proj = proj + b
        proj = proj.reshape(steps, batch, proj.shape[-1])
        w_h_t = w_h.T
        step = self._step
        out = [None] * steps
        for t in (range(steps - 1, -1, -1) if reverse else range(steps)):
            state = step(proj[t] + state[0] @ w_h_t, state)
            out[t] = state[0]
        return stack(out, 0), state

    def _fused_weights(self, w_ih, w_hh, b_ih, b_hh):
        """The weights acting on x_t and on h, and the bias, laid out in the step's gate order."""
        return w_ih, w_hh, (None if b_ih is None else b_ih + b_hh)


class RNN(RNNBase):
    """Elman RNN: h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh) (or relu). Returns (output, h_n)."""

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")
        self.nonlinearity = nonlinearity
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", input_size, hidden_size, num_layers,
                         bias, batch_first, dropout, bidirectional, 0, device, dtype)

    def _step(self, pre, state):
        return (pre.tanh() if self.nonlinearity == "tanh" else pre.relu(),)

    def forward(self, input, hx=None):
        return self._forward_hidden(input, hx)


class LSTM(RNNBase):
    """Long short-term memory: gates i, f, g, o; c_t = f c + i g, h_t = o tanh(c_t). Returns
    (output, (h_n, c_n))."""

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, proj_size=0, device=None, dtype=None):
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         proj_size, device, dtype)

    def _step(self, gates, state):
        h = self.hidden_size
        s = gates.sigmoid()  # the g quarter is recomputed with tanh below; one sigmoid is cheaper than three
        c = s[:, h:2 * h] * state[1] + s[:, :h] * gates[:, 2 * h:3 * h].tanh()
        return s[:, 3 * h:] * c.tanh(), c

    def forward(self, input, hx=None):
        self._check_input(input)
        batched = input.ndim == 3
        batch = input.shape[0 if self.batch_first else 1] if batched else 1
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

    def _fused_weights(self, w_ih, w_hh, b_ih, b_hh):
        h = self.hidden_size
        zeros_x = Tensor._wrap(np.zeros((h, w_ih.shape[1]), dtype=w_ih.dtype))
        zeros_h = Tensor._wrap(np.zeros((h, h), dtype=w_hh.dtype))
        w_x = cat([w_ih, zeros_x], 0)  # rows [r, z, n_input, n_hidden]
        w_h = cat([w_hh[:2 * h], zeros_h, w_hh[2 * h:]], 0)
        b = None if b_ih is None else cat([b_ih[:2 * h] + b_hh[:2 * h], b_ih[2 * h:], b_hh[2 * h:]], 0)
        return w_x, w_h, b

    def _step(self, gates, state):
        h = self.hidden_size
        rz = gates[:, :2 * h].sigmoid()
        n = (gates[:, 2 * h:3 * h] + rz[:, :h] * gates[:, 3 * h:]).tanh()
        return (n + rz[:, h:] * (state[0] - n),)

    def forward(self, input, hx=None):
        return self._forward_hidden(input, hx)
