"""RNNCell, LSTMCell and GRUCell: PyTorch oracle (forward, input, hidden-state and parameter gradients from
PyTorch's own weights, batched and unbatched, with and without hx, several steps chained), consistency with the
RNN/LSTM/GRU layers (which share the cell step), float64 gradchecks, initialisation, repr, state_dict and errors."""
import math

import numpy as np
import pytest
from hypothesis import given, strategies as st

import tinygrad_lite as tl
from tinygrad_lite import nn
from test_nn_oracle import run_pair, _x

CELLS = [("RNNCell", {}), ("RNNCell", dict(nonlinearity="relu")), ("RNNCell", dict(bias=False)),
         ("RNNCell", dict(nonlinearity="relu", bias=False)), ("LSTMCell", {}), ("LSTMCell", dict(bias=False)),
         ("GRUCell", {}), ("GRUCell", dict(bias=False))]
CHUNKS = {"RNNCell": 1, "LSTMCell": 4, "GRUCell": 3}


class Unpacked:
    """(x, h, c) -> cell(x, (h, c)) for LSTMCell; (x, h) -> cell(x, h) otherwise. Attributes go to the cell, so
    run_pair sees its parameters and state_dict."""

    def __init__(self, cell):
        self.cell = cell

    def __call__(self, x, *states):
        if not states:
            return self.cell(x)
        return self.cell(x, tuple(states) if len(states) == 2 else states[0])

    def __getattr__(self, name):
        return getattr(self.cell, name)


def _inputs(cls, batch, input_size=3, hidden=4, with_hx=True, seed=0):
    lead = (batch,) if batch else ()
    arrays = [_x(*lead, input_size, seed=seed)]
    if with_hx:
        arrays += [_x(*lead, hidden, seed=seed + 1) for _ in range(2 if cls == "LSTMCell" else 1)]
    return arrays


# ---------------- oracle ----------------
@pytest.mark.oracle
@pytest.mark.parametrize("cls,kwargs", CELLS)
@pytest.mark.parametrize("batch", [2, None], ids=["batched", "unbatched"])
@pytest.mark.parametrize("with_hx", [True, False], ids=["hx", "no-hx"])
def test_cell_matches_pytorch(torch, cls, kwargs, batch, with_hx):
    tm, m = getattr(torch.nn, cls)(3, 4, **kwargs), getattr(nn, cls)(3, 4, **kwargs)
    t_out, l_out = run_pair(torch, Unpacked(tm), Unpacked(m), _inputs(cls, batch, with_hx=with_hx))
    want = (batch, 4) if batch else (4,)
    assert all(tuple(o.shape) == want for o in l_out) and len(l_out) == (2 if cls == "LSTMCell" else 1)


@pytest.mark.oracle
@given(cell=st.sampled_from(CELLS), input_size=st.integers(1, 5), hidden=st.integers(1, 5),
       batch=st.one_of(st.none(), st.integers(1, 4)), seed=st.integers(0, 1000))
def test_cell_sizes_match_pytorch(torch, cell, input_size, hidden, batch, seed):
    cls, kwargs = cell
    torch.manual_seed(seed)
    tm, m = getattr(torch.nn, cls)(input_size, hidden, **kwargs), getattr(nn, cls)(input_size, hidden, **kwargs)
    run_pair(torch, Unpacked(tm), Unpacked(m), _inputs(cls, batch, input_size, hidden, seed=seed))


class Unrolled:
    """Three steps of one cell, each state fed into the next step; returns every step's outputs."""

    def __init__(self, cell, lstm):
        self.cell, self.lstm = cell, lstm

    def __call__(self, xs, h, c=None):
        state, outs = ((h, c) if self.lstm else h), []
        for t in range(xs.shape[0]):
            state = self.cell(xs[t], state)
            outs += list(state) if self.lstm else [state]
        return outs

    def __getattr__(self, name):
        return getattr(self.cell, name)


@pytest.mark.oracle
@pytest.mark.parametrize("cls", ["RNNCell", "LSTMCell", "GRUCell"])
def test_chained_steps_match_pytorch(torch, cls):
    """Gradients through several steps: the weights are reused and the states carry gradient between steps."""
    tm, m = getattr(torch.nn, cls)(3, 5), getattr(nn, cls)(3, 5)
    lstm = cls == "LSTMCell"
    inputs = [_x(3, 2, 3)] + [_x(2, 5, seed=s) for s in range(1, 3 if lstm else 2)]
    t_out, l_out = run_pair(torch, Unrolled(tm, lstm), Unrolled(m, lstm), inputs)
    assert len(l_out) == (6 if lstm else 3)


@pytest.mark.oracle
def test_cell_float32_default_dtype(torch):
    tm, m = torch.nn.LSTMCell(6, 8), nn.LSTMCell(6, 8)
    assert m.weight_ih.dtype == np.float32
    run_pair(torch, Unpacked(tm), Unpacked(m), [_x(4, 6, dtype=np.float32)], double=False, atol=1e-5, rtol=1e-4)


@pytest.mark.oracle
@pytest.mark.parametrize("cls,kwargs", CELLS)
def test_state_dict_repr_and_parameter_shapes_match_pytorch(torch, cls, kwargs):
    tm, m = getattr(torch.nn, cls)(3, 4, **kwargs), getattr(nn, cls)(3, 4, **kwargs)
    assert repr(m) == repr(tm)
    ours, theirs = m.state_dict(), tm.state_dict()
    assert list(ours) == list(theirs)
    assert [tuple(v.shape) for v in ours.values()] == [tuple(v.shape) for v in theirs.values()]
    assert [n for n, _ in m.named_parameters()] == [n for n, _ in tm.named_parameters()]
    tm.load_state_dict({k: torch.tensor(v.numpy()) for k, v in ours.items()})  # and back into PyTorch
    for k, v in tm.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), ours[k].numpy())


# ---------------- without PyTorch ----------------
@pytest.mark.parametrize("cls,kwargs", CELLS)
def test_initialisation_is_uniform_in_one_over_sqrt_hidden(cls, kwargs):
    hidden = 16
    m = getattr(nn, cls)(10, hidden, **kwargs)
    bound = 1 / math.sqrt(hidden)
    values = np.concatenate([p.numpy().ravel() for p in m.parameters()])
    assert len(list(m.parameters())) == (4 if kwargs.get("bias", True) else 2)
    assert np.abs(values).max() <= bound and np.abs(values).max() > 0.9 * bound
    assert abs(values.mean()) < 0.1 * bound  # centred, not e.g. U(0, bound)
    assert m.weight_ih.shape == (CHUNKS[cls] * hidden, 10) and m.weight_hh.shape == (CHUNKS[cls] * hidden, hidden)


LAYER_OF = {"RNNCell": "RNN", "LSTMCell": "LSTM", "GRUCell": "GRU"}


@pytest.mark.parametrize("cls,kwargs", CELLS)
def test_cell_steps_reproduce_the_layer(cls, kwargs):
    """A cell run over a sequence with the layer's weights gives the layer's outputs and final state."""
    layer = getattr(nn, LAYER_OF[cls])(3, 4, **kwargs).double()
    cell = getattr(nn, cls)(3, 4, **kwargs).double()
    cell.load_state_dict({k.replace("_l0", ""): v for k, v in layer.state_dict().items()})
    xs = tl.tensor(_x(5, 2, 3))
    out, final = layer(xs)
    state = None
    for t in range(5):
        state = cell(xs[t], state)
        h = state[0] if cls == "LSTMCell" else state
        np.testing.assert_allclose(h.numpy(), out.numpy()[t], rtol=1e-12, atol=1e-14)
    if cls == "LSTMCell":
        np.testing.assert_allclose(state[1].numpy(), final[1].numpy()[0], rtol=1e-12, atol=1e-14)


class Packed(nn.Module):
    def __init__(self, cell):
        super().__init__()
        self.cell = cell

    def forward(self, x, h, c=None):
        return self.cell(x, h if c is None else (h, c))


@pytest.mark.parametrize("cls,kwargs", CELLS)
@pytest.mark.parametrize("batch", [3, None], ids=["batched", "unbatched"])
def test_gradcheck_through_cell_and_parameters(cls, kwargs, batch):
    m = Packed(getattr(nn, cls)(3, 4, **kwargs)).double()
    args = [tl.tensor(a, requires_grad=True) for a in _inputs(cls, batch, seed=3)]
    if "relu" in kwargs.get("nonlinearity", ""):
        args[0] = tl.tensor(args[0].numpy() * 3 + 0.1, requires_grad=True)  # keep pre-activations off the kink
    assert tl.gradcheck(m, tuple(args))


@pytest.mark.parametrize("cls", ["RNNCell", "LSTMCell", "GRUCell"])
def test_hx_none_is_zero_state(cls):
    m = getattr(nn, cls)(3, 4).double()
    x = tl.tensor(_x(2, 3))
    zeros = tl.zeros(2, 4, dtype=tl.float64)
    a, b = m(x), m(x, (zeros, zeros) if cls == "LSTMCell" else zeros)
    for u, v in zip(a if cls == "LSTMCell" else [a], b if cls == "LSTMCell" else [b]):
        np.testing.assert_array_equal(u.numpy(), v.numpy())
        assert u.dtype == np.float64


def test_rnn_cell_closed_form_tanh_and_relu():
    tanh_cell, relu_cell = nn.RNNCell(3, 4).double(), nn.RNNCell(3, 4, nonlinearity="relu").double()
    relu_cell.load_state_dict(tanh_cell.state_dict())
    x, h = _x(6, 3) * 3, _x(6, 4, seed=1)
    w = {k: v.numpy() for k, v in tanh_cell.state_dict().items()}
    pre = x @ w["weight_ih"].T + w["bias_ih"] + h @ w["weight_hh"].T + w["bias_hh"]
    assert (pre < 0).any() and (pre > 0).any()
    np.testing.assert_allclose(tanh_cell(tl.tensor(x), tl.tensor(h)).numpy(), np.tanh(pre), rtol=1e-12)
    np.testing.assert_allclose(relu_cell(tl.tensor(x), tl.tensor(h)).numpy(), np.maximum(pre, 0), rtol=1e-12)


# ---------------- errors and devices ----------------
@pytest.mark.parametrize("cls", ["RNNCell", "LSTMCell", "GRUCell"])
def test_shape_errors_name_the_cell_and_shapes(cls):
    m = getattr(nn, cls)(3, 4)
    with pytest.raises(RuntimeError, match=rf"{cls}.*input_size.*got 5, expected 3"):
        m(tl.zeros(2, 5))
    with pytest.raises(ValueError, match=rf"{cls}: Expected input to be 1D or 2D, got 3D"):
        m(tl.zeros(1, 2, 3))
    bad = tl.zeros(3, 4)  # batch 3 for an input of batch 2
    with pytest.raises(RuntimeError, match=rf"{cls}.*\(2, 4\).*got \(3, 4\)"):
        m(tl.zeros(2, 3), (bad, bad) if cls == "LSTMCell" else bad)
    one_d = tl.zeros(4)  # an unbatched state for a batched input
    with pytest.raises(RuntimeError, match=rf"{cls}.*got \(4,\)"):
        m(tl.zeros(2, 3), (one_d, one_d) if cls == "LSTMCell" else one_d)


def test_lstm_cell_needs_a_pair_of_states():
    m = nn.LSTMCell(3, 4)
    with pytest.raises(TypeError, match="LSTMCell: hx must be a tuple"):
        m(tl.zeros(2, 3), tl.zeros(2, 4))


def test_unknown_nonlinearity():
    with pytest.raises(ValueError, match="Unknown nonlinearity 'sigmoid'"):
        nn.RNNCell(3, 4, nonlinearity="sigmoid")
    m = nn.RNNCell(3, 4)
    m.nonlinearity = "gelu"  # changed after construction: PyTorch's RuntimeError in forward
    with pytest.raises(RuntimeError, match="Unknown nonlinearity: gelu"):
        m(tl.zeros(2, 3))


@pytest.mark.parametrize("cls", ["RNNCell", "LSTMCell", "GRUCell", "LSTM"])
@pytest.mark.parametrize("device", ["cuda", "cuda:0", "mps"])
def test_other_devices_are_refused(cls, device):
    with pytest.raises(RuntimeError, match=rf"{cls}: device '{device}' is not available"):
        getattr(nn, cls)(3, 4, device=device)


class FakeDevice:
    def __init__(self, type_, index=None):
        self.type, self.index = type_, index

    def __str__(self):
        return self.type if self.index is None else f"{self.type}:{self.index}"


@pytest.mark.parametrize("device", [None, "cpu", "cpu:0", FakeDevice("cpu")])
def test_cpu_devices_are_accepted(device):
    m = nn.GRUCell(3, 4, device=device, dtype=tl.float64)
    assert m.weight_hh.dtype == np.float64 and m(tl.zeros(3, dtype=tl.float64)).shape == (4,)
    with pytest.raises(RuntimeError, match="device 'cuda:1' is not available"):
        nn.GRUCell(3, 4, device=FakeDevice("cuda", 1))


def test_torch_device_object_is_accepted(torch):
    assert nn.RNNCell(3, 4, device=torch.device("cpu")).weight_ih.shape == (4, 3)
    with pytest.raises(RuntimeError, match="RNNCell: device 'meta' is not available"):
        nn.RNNCell(3, 4, device=torch.device("meta"))
