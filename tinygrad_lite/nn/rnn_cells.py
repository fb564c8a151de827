"""RNNCell, LSTMCell and GRUCell as PyTorch's: one step of rnn.py's `cell_step` on a batched (N, input_size) or
unbatched (input_size,) input, with parameters weight_ih, weight_hh, bias_ih, bias_hh (gate orders and
initialisation as the layers')."""
import numpy as np

from ..compile.hooks import constant
from ..ops.registry import OpError
from ..tensor import Tensor
from .linear import check_size, factory_dtype
from .module import Module, Parameter
from .rnn import _STEPS, _init_uniform, cell_step, fused_weights


class RNNCellBase(Module):
    """Parameters weight_ih (chunks*hidden, input), weight_hh (chunks*hidden, hidden), bias_ih, bias_hh, and the
    checks shared by RNNCell, LSTMCell and GRUCell."""

    def __init__(self, input_size, hidden_size, bias, num_chunks, device=None, dtype=None):
        super().__init__()
        name = type(self).__name__
        dt = factory_dtype(dtype, device, name)
        self.input_size = check_size(input_size, "input_size", name)
        self.hidden_size = check_size(hidden_size, "hidden_size", name)
        self.bias = bias
        self.weight_ih = Parameter(np.empty((num_chunks * self.hidden_size, self.input_size), dtype=dt))
        self.weight_hh = Parameter(np.empty((num_chunks * self.hidden_size, self.hidden_size), dtype=dt))
        if bias:
            self.bias_ih = Parameter(np.empty((num_chunks * self.hidden_size,), dtype=dt))
            self.bias_hh = Parameter(np.empty((num_chunks * self.hidden_size,), dtype=dt))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self):
        _init_uniform(self)

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            s += f", nonlinearity={self.nonlinearity}"
        return s

    def _step(self, mode, input, hx, n_states):
        """Check input (and the states in `hx`, a tuple of Tensors or None), run one cell_step, return the states
        (unbatched when the input was)."""
        name = type(self).__name__
        if not isinstance(input, Tensor):
            raise TypeError(f"{name}: expected a Tensor input, got {type(input).__name__}")
        if input.ndim not in (1, 2):
            raise OpError(f"{name}: Expected input to be 1D or 2D, got {input.ndim}D instead (input shape "
                          f"{tuple(input.shape)})")
        if input.shape[-1] != self.input_size:
            raise OpError(f"{name}: input has inconsistent input_size: got {input.shape[-1]}, expected "
                          f"{self.input_size} (input shape {tuple(input.shape)})")
        batched = input.ndim == 2
        if not batched:
            input = input.unsqueeze(0)
        batch = input.shape[0]
        if hx is None:
            zeros = Tensor._wrap(constant(np.zeros((batch, self.hidden_size), dtype=input.dtype)))
            states = (zeros,) * n_states
        else:
            states = tuple(self._check_state(h, i, n_states, batched, batch, input) for i, h in enumerate(hx))
        w_x, w_h, b = fused_weights(mode, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh,
                                    self.hidden_size)
        x_proj = input @ w_x.T
        if b is not None:
            x_proj = x_proj + b
        out = tuple(s.T for s in cell_step(_STEPS[mode], x_proj.T, [s.T for s in states], w_h, self.hidden_size))
        return out if batched else tuple(s.squeeze(0) for s in out)

    def _check_state(self, h, i, n_states, batched, batch, input):
        name = type(self).__name__
        what = "hidden" if n_states == 1 else f"hx[{i}]"
        if not isinstance(h, Tensor):
            raise TypeError(f"{name}: {what} must be a Tensor, got {type(h).__name__}")
        want = (batch, self.hidden_size) if batched else (self.hidden_size,)
        if tuple(h.shape) != want:
            raise OpError(f"{name}: Expected {what} of shape {want} for input of shape "
                          f"{tuple(input.shape) if batched else (self.input_size,)}, got {tuple(h.shape)}")
        return h if batched else h.unsqueeze(0)


class RNNCell(RNNCellBase):
    """h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh) (or relu). forward(input, hx=None) -> h'."""

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):  # PyTorch only notices in forward; saying so here is kinder
            raise OpError(f"RNNCell: Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")
        super().__init__(input_size, hidden_size, bias, 1, device, dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input, hx=None):
        mode = {"tanh": "RNN_TANH", "relu": "RNN_RELU"}.get(self.nonlinearity)
        if mode is None:
            raise RuntimeError(f"RNNCell: Unknown nonlinearity: {self.nonlinearity}")
        return self._step(mode, input, None if hx is None else (hx,), 1)[0]


class LSTMCell(RNNCellBase):
    """Gates i, f, g, o: c' = f c + i g, h' = o tanh(c'). forward(input, hx=None) with hx = (h, c) -> (h', c')."""

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, 4, device, dtype)

    def forward(self, input, hx=None):
        if hx is not None and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
            raise TypeError(f"LSTMCell: hx must be a tuple (h_0, c_0), got {type(hx).__name__}")
        return self._step("LSTM", input, hx, 2)


class GRUCell(RNNCellBase):
    """r, z = sigmoid(...); n = tanh(W_in x + b_in + r (W_hn h + b_hn)); h' = (1 - z) n + z h.
    forward(input, hx=None) -> h'."""

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, 3, device, dtype)

    def forward(self, input, hx=None):
        return self._step("GRU", input, None if hx is None else (hx,), 1)[0]
