"""PyTorch oracle for tl.nn layers: PyTorch's weights copied in through state_dict (as NumPy), then outputs, input
gradients, parameter gradients, buffers (BatchNorm running statistics), state_dict keys/shapes and reprs compared;
and our state_dict loaded back into PyTorch."""
import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite import nn

pytestmark = pytest.mark.oracle


def _flat(out):
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _flat(o)]
    return [out]


def run_pair(torch, tm, m, inputs, *, double=True, atol=1e-10, rtol=1e-9, calls=1, grad_inputs=True):
    """Load tm's state into m, run both on `inputs` (NumPy arrays) `calls` times, backprop a fixed random
    projection of every output and compare outputs, input and parameter gradients and the final state dicts."""
    if double:
        tm.double()
        m.double()
    m.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    rng = np.random.default_rng(1)
    for _ in range(calls):
        t_in = [torch.tensor(a, requires_grad=grad_inputs and a.dtype.kind == "f") for a in inputs]
        l_in = [tl.tensor(a, requires_grad=grad_inputs and a.dtype.kind == "f") for a in inputs]
        t_out, l_out = _flat(tm(*t_in)), _flat(m(*l_in))
        assert len(t_out) == len(l_out)
        proj = [rng.standard_normal(tuple(o.shape)) for o in t_out]
        t_loss = sum((o * torch.tensor(p, dtype=o.dtype)).sum() for o, p in zip(t_out, proj))
        l_loss = sum((o * tl.tensor(p, dtype=o.dtype)).sum() for o, p in zip(l_out, proj))
        tm.zero_grad()
        m.zero_grad()
        t_loss.backward()
        l_loss.backward()
        for i, (a, b) in enumerate(zip(t_out, l_out)):
            assert tuple(a.shape) == tuple(b.shape), f"output {i}"
            np.testing.assert_allclose(b.numpy(), a.detach().numpy(), atol=atol, rtol=rtol, err_msg=f"output {i}")
        for i, (a, b) in enumerate(zip(t_in, l_in)):
            if a.requires_grad:
                np.testing.assert_allclose(b.grad.numpy(), a.grad.numpy(), atol=atol, rtol=rtol,
                                           err_msg=f"grad of input {i}")
    params = dict(m.named_parameters())
    for name, p in tm.named_parameters():
        assert (p.grad is None) == (params[name].grad is None), name
        if p.grad is not None:
            np.testing.assert_allclose(params[name].grad.numpy(), p.grad.numpy(), atol=atol, rtol=rtol,
                                       err_msg=f"grad of {name}")
    ours = m.state_dict()
    for k, v in tm.state_dict().items():
        np.testing.assert_allclose(ours[k].numpy(), v.numpy(), atol=atol, rtol=rtol, err_msg=f"state {k}")
    return t_out, l_out


def _x(*shape, seed=0, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


LINEAR = [((4, 3), {}, (2, 4)), ((4, 3), dict(bias=False), (2, 4)), ((4, 3), {}, (2, 5, 4)), ((4, 3), {}, (4,))]


@pytest.mark.parametrize("args,kwargs,shape", LINEAR)
def test_linear(torch, args, kwargs, shape):
    run_pair(torch, torch.nn.Linear(*args, **kwargs), nn.Linear(*args, **kwargs), [_x(*shape)])


CONV = [
    ((3, 8, 3), {}, (2, 3, 7, 6)),
    ((3, 4, 3), dict(stride=2, padding=1), (2, 3, 8, 7)),
    ((2, 4, (2, 3)), dict(stride=(2, 1), padding=(1, 2), dilation=(2, 1)), (1, 2, 9, 8)),
    ((4, 6, 3), dict(groups=2, bias=False), (2, 4, 6, 6)),
    ((4, 4, 3), dict(groups=4, padding=1), (2, 4, 5, 5)),
    ((3, 4, 3), dict(padding="same"), (2, 3, 6, 5)),
    ((3, 4, 4), dict(padding="same", dilation=1), (2, 3, 6, 5)),
    ((3, 4, (2, 4)), dict(padding="same", dilation=(1, 2)), (1, 3, 7, 9)),
    ((3, 4, 3), dict(padding="valid"), (2, 3, 6, 5)),
    ((3, 4, 3), dict(padding=1, padding_mode="reflect"), (2, 3, 6, 5)),
    ((3, 4, 3), dict(padding=2, padding_mode="replicate", stride=2), (2, 3, 6, 5)),
    ((3, 4, 3), dict(padding=1, padding_mode="circular"), (2, 3, 6, 5)),
    ((3, 4, 4), dict(padding="same", padding_mode="reflect"), (2, 3, 6, 5)),
    ((3, 5, 3), dict(padding=1), (3, 6, 5)),  # unbatched
]


@pytest.mark.parametrize("args,kwargs,shape", CONV)
def test_conv2d(torch, args, kwargs, shape):
    run_pair(torch, torch.nn.Conv2d(*args, **kwargs), nn.Conv2d(*args, **kwargs), [_x(*shape)])


def test_conv2d_float32(torch):
    run_pair(torch, torch.nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(3, 8, 3, padding=1),
             [_x(4, 3, 10, 10, dtype=np.float32)], double=False, atol=1e-5, rtol=1e-4)


MAXPOOL = [
    ((2,), {}, (2, 3, 6, 6)),
    ((3,), dict(stride=2, padding=1), (2, 2, 7, 8)),
    ((3,), dict(stride=1, dilation=2), (1, 2, 8, 7)),
    (((2, 3),), dict(stride=(2, 1), padding=(1, 1), dilation=(1, 2)), (1, 2, 7, 9)),
    ((3,), dict(stride=2, ceil_mode=True), (2, 2, 8, 8)),
    ((2,), dict(stride=2, padding=1, ceil_mode=True), (1, 2, 5, 7)),
    ((2,), {}, (3, 6, 6)),  # unbatched
]


@pytest.mark.parametrize("args,kwargs,shape", MAXPOOL)
def test_max_pool2d(torch, args, kwargs, shape):
    run_pair(torch, torch.nn.MaxPool2d(*args, **kwargs), nn.MaxPool2d(*args, **kwargs), [_x(*shape)])
    ti = torch.nn.functional.max_pool2d(torch.tensor(_x(*shape)), *args, return_indices=True, **kwargs)[1]
    li = nn.functional.max_pool2d(tl.tensor(_x(*shape)), *args, return_indices=True, **kwargs)[1]
    np.testing.assert_array_equal(li.numpy(), ti.numpy())


def test_max_pool2d_ties_route_gradient_like_pytorch(torch):
    """After a ReLU, windows full of equal zeros are common: PyTorch sends the gradient to the first maximum."""
    x = np.maximum(np.random.default_rng(3).integers(-2, 2, (2, 3, 8, 8)), 0).astype(np.float64)
    run_pair(torch, torch.nn.MaxPool2d(2), nn.MaxPool2d(2), [x])
    run_pair(torch, torch.nn.MaxPool2d(3, 1, 1), nn.MaxPool2d(3, 1, 1), [x])


AVGPOOL = [
    ((2,), {}, (2, 3, 6, 6)),
    ((3,), dict(stride=2, padding=1), (2, 2, 7, 8)),
    ((3,), dict(stride=2, padding=1, count_include_pad=False), (2, 2, 7, 8)),
    ((3,), dict(stride=2, ceil_mode=True), (2, 2, 8, 8)),
    ((3,), dict(stride=2, padding=1, ceil_mode=True, count_include_pad=False), (1, 2, 8, 6)),
    ((3,), dict(stride=2, padding=1, ceil_mode=True), (1, 2, 8, 6)),
    (((2, 3),), dict(stride=(1, 2), divisor_override=4), (1, 2, 5, 7)),
    ((2,), {}, (3, 6, 6)),
]


@pytest.mark.parametrize("args,kwargs,shape", AVGPOOL)
def test_avg_pool2d(torch, args, kwargs, shape):
    run_pair(torch, torch.nn.AvgPool2d(*args, **kwargs), nn.AvgPool2d(*args, **kwargs), [_x(*shape)])


BATCHNORM = [
    ("BatchNorm1d", (3,), {}, (5, 3)),
    ("BatchNorm1d", (3,), dict(momentum=0.3, eps=1e-3), (4, 3, 6)),
    ("BatchNorm2d", (3,), {}, (4, 3, 5, 5)),
    ("BatchNorm2d", (3,), dict(momentum=None), (4, 3, 2, 3)),
    ("BatchNorm2d", (3,), dict(affine=False), (4, 3, 2, 3)),
    ("BatchNorm2d", (3,), dict(track_running_stats=False), (4, 3, 2, 3)),
    ("BatchNorm2d", (3,), dict(bias=False), (4, 3, 2, 3)),
]


@pytest.mark.parametrize("cls,args,kwargs,shape", BATCHNORM)
@pytest.mark.parametrize("training", [True, False])
def test_batchnorm(torch, cls, args, kwargs, shape, training):
    tm, m = getattr(torch.nn, cls)(*args, **kwargs), getattr(nn, cls)(*args, **kwargs)
    if not training:  # non-trivial running statistics first
        tm.double()
        with torch.no_grad():
            tm(torch.tensor(_x(*shape, seed=5) * 2 + 1))
        tm.eval()
        m.eval()
    run_pair(torch, tm, m, [_x(*shape) * 3 + 0.5], calls=3)  # running stats after three updates compared too


def test_batchnorm_float32_running_stats(torch):
    tm, m = torch.nn.BatchNorm2d(4), nn.BatchNorm2d(4)
    run_pair(torch, tm, m, [_x(8, 4, 3, 3, dtype=np.float32) * 2 + 1], double=False, atol=1e-5, rtol=1e-5,
             calls=4)
    assert m.num_batches_tracked.dtype == np.int64 and int(m.num_batches_tracked.item()) == 4


LAYERNORM = [((5,), {}, (2, 3, 5)), (((2, 3),), {}, (4, 2, 3)), ((4,), dict(elementwise_affine=False), (3, 4)),
             ((4,), dict(bias=False, eps=1e-3), (3, 4))]


@pytest.mark.parametrize("args,kwargs,shape", LAYERNORM)
def test_layernorm(torch, args, kwargs, shape):
    tm, m = torch.nn.LayerNorm(*args, **kwargs), nn.LayerNorm(*args, **kwargs)
    with torch.no_grad():  # non-trivial affine parameters
        for p in tm.parameters():
            p.add_(torch.randn(p.shape, dtype=p.dtype))
    run_pair(torch, tm, m, [_x(*shape)])


@pytest.mark.parametrize("padding_idx", [None, 0, 2, -1])
def test_embedding(torch, padding_idx):
    tm = torch.nn.Embedding(6, 3, padding_idx=padding_idx)
    m = nn.Embedding(6, 3, padding_idx=padding_idx)
    with torch.no_grad():  # a non-zero padding row: its value is used but gets no gradient
        tm.weight[padding_idx if padding_idx is not None else 0] += 1.0
    idx = np.array([[0, 2, 5, 2], [1, 2, 0, 5]])
    run_pair(torch, tm, m, [idx])


ACTIVATIONS = [("ReLU", ()), ("LeakyReLU", ()), ("LeakyReLU", (0.2,)), ("Sigmoid", ()), ("Tanh", ()), ("GELU", ()),
               ("GELU", ("tanh",)), ("Softmax", (1,)), ("LogSoftmax", (-1,)), ("Softmax", (0,)), ("Flatten", ()),
               ("Flatten", (0, 1)), ("Identity", ())]


@pytest.mark.parametrize("cls,args", ACTIVATIONS)
def test_activations(torch, cls, args):
    x = _x(3, 4, 5) * 3
    x[0, 0, :3] = [0.0, -0.0, 1e-3]
    run_pair(torch, getattr(torch.nn, cls)(*args), getattr(nn, cls)(*args), [x])


def test_dropout_eval_and_p0_match_identity(torch):
    x = _x(4, 5)
    run_pair(torch, torch.nn.Dropout(0.0), nn.Dropout(0.0), [x])
    run_pair(torch, torch.nn.Dropout(0.7).eval(), nn.Dropout(0.7).eval(), [x])


def _all_layers(torch_or_tl_nn):
    n = torch_or_tl_nn
    return [n.Linear(4, 3), n.Linear(4, 3, bias=False), n.Conv2d(3, 8, 3), n.Conv2d(4, 8, (3, 5), 2, 1, 2, 2, False),
            n.Conv2d(4, 8, 3, padding="same", groups=2, padding_mode="reflect"), n.Conv2d(4, 8, 3, padding="valid"),
            n.MaxPool2d(2), n.MaxPool2d(3, 2, 1, 2, ceil_mode=True), n.AvgPool2d(2),
            n.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False, divisor_override=3),
            n.BatchNorm1d(3), n.BatchNorm2d(3, eps=1e-3, momentum=None, affine=False, track_running_stats=False),
            n.BatchNorm2d(5, bias=False), n.LayerNorm(5), n.LayerNorm((2, 3), elementwise_affine=False),
            n.LayerNorm(4, bias=False), n.Dropout(), n.Dropout(0.2, inplace=True), n.Embedding(10, 3),
            n.Embedding(10, 3, padding_idx=0), n.RNN(3, 4), n.RNN(3, 4, 2, "relu", False, True, 0.1, True),
            n.LSTM(3, 4), n.LSTM(3, 4, 2, bidirectional=True), n.GRU(3, 4, num_layers=2, bias=False),
            n.ReLU(), n.ReLU(inplace=True), n.LeakyReLU(), n.LeakyReLU(0.2), n.Sigmoid(), n.Tanh(), n.GELU(),
            n.GELU("tanh"), n.Softmax(1), n.Softmax(), n.LogSoftmax(dim=-1), n.Flatten(), n.Flatten(0, 2),
            n.Identity(), n.MSELoss(), n.L1Loss(reduction="sum"), n.CrossEntropyLoss(label_smoothing=0.1),
            n.NLLLoss(), n.BCELoss(), n.BCEWithLogitsLoss(),
            n.Sequential(n.Linear(2, 3), n.ModuleList([n.ReLU(), n.ReLU(), n.Linear(1, 1)]),
                         n.ModuleDict({"a": n.Tanh()}), n.Sequential(), n.ModuleList())]


def test_reprs_and_state_dict_layout_match_pytorch(torch):
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # RNN dropout with one layer
        theirs, ours = _all_layers(torch.nn), _all_layers(nn)
    for tm, m in zip(theirs, ours):
        assert repr(m) == repr(tm)
        assert [(k, tuple(v.shape)) for k, v in m.state_dict().items()] == \
               [(k, tuple(v.shape)) for k, v in tm.state_dict().items()], repr(tm)
        assert [k for k, _ in m.named_parameters()] == [k for k, _ in tm.named_parameters()]
        assert [k for k, _ in m.named_buffers()] == [k for k, _ in tm.named_buffers()]
        assert [k for k, _ in m.named_modules()] == [k for k, _ in tm.named_modules()]
        for (k, v), (_, tv) in zip(m.state_dict().items(), tm.state_dict().items()):
            assert v.dtype == tv.numpy().dtype, k


def test_our_export_loads_into_pytorch(torch):
    model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(4 * 3 * 3, 5), nn.LayerNorm(5))
    tmodel = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                                 torch.nn.MaxPool2d(2), torch.nn.Flatten(), torch.nn.Linear(36, 5),
                                 torch.nn.LayerNorm(5))
    x = _x(3, 2, 6, 6, dtype=np.float32)
    model(tl.tensor(x))  # train-mode call: running statistics move
    model.eval()
    result = tmodel.load_state_dict({k: torch.from_numpy(v.numpy().copy()) for k, v in model.state_dict().items()})
    assert not result.missing_keys and not result.unexpected_keys
    tmodel.eval()
    np.testing.assert_allclose(model(tl.tensor(x)).numpy(), tmodel(torch.tensor(x)).detach().numpy(), atol=1e-5,
                               rtol=1e-5)
    assert int(tmodel[1].num_batches_tracked) == 1
