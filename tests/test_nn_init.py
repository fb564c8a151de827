"""tl.nn.init: PyTorch's fans, gains and bounds; in place; reproducible under tl.manual_seed; layer defaults."""
import math

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite import nn
from tinygrad_lite.nn import init


def test_calculate_gain_table():
    assert init.calculate_gain("linear") == 1 and init.calculate_gain("conv2d") == 1
    assert init.calculate_gain("sigmoid") == 1
    assert init.calculate_gain("tanh") == pytest.approx(5 / 3)
    assert init.calculate_gain("relu") == pytest.approx(math.sqrt(2))
    assert init.calculate_gain("leaky_relu") == pytest.approx(math.sqrt(2 / (1 + 0.01 ** 2)))
    assert init.calculate_gain("leaky_relu", math.sqrt(5)) == pytest.approx(math.sqrt(1 / 3))
    assert init.calculate_gain("selu") == 0.75
    with pytest.raises(ValueError, match="Unsupported nonlinearity"):
        init.calculate_gain("swish")


def test_fans():
    assert init._calculate_fan_in_and_fan_out(tl.zeros(5, 3)) == (3, 5)
    assert init._calculate_fan_in_and_fan_out(tl.zeros(8, 4, 3, 2)) == (24, 48)
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        init.xavier_uniform_(tl.zeros(3))
    with pytest.raises(ValueError, match="Mode fan_avg not supported"):
        init.kaiming_uniform_(tl.zeros(3, 3), mode="fan_avg")


def test_fills_are_in_place_and_keep_the_array():
    p = nn.Parameter(np.zeros((200, 300), dtype=np.float32))
    arr = p.numpy()
    for fn in (init.uniform_, init.normal_, init.ones_, init.zeros_, init.xavier_uniform_, init.xavier_normal_,
               init.kaiming_uniform_, init.kaiming_normal_):
        assert fn(p) is p and p.numpy() is arr and p.dtype == np.float32
    init.constant_(p, 0.5)
    assert np.all(arr == 0.5) and p.grad is None


@pytest.mark.parametrize("fn,kwargs,kind,expected", [
    (init.uniform_, dict(a=-2.0, b=3.0), "uniform", 2.5),
    (init.normal_, dict(mean=1.0, std=0.5), "normal", 0.5),
    (init.xavier_uniform_, dict(gain=2.0), "uniform", 2.0 * math.sqrt(6 / (200 + 300))),
    (init.xavier_normal_, dict(), "normal", math.sqrt(2 / 500)),
    (init.kaiming_uniform_, dict(a=math.sqrt(5)), "uniform", 1 / math.sqrt(300)),
    (init.kaiming_uniform_, dict(nonlinearity="relu", mode="fan_out"), "uniform", math.sqrt(6 / 200)),
    (init.kaiming_normal_, dict(nonlinearity="relu"), "normal", math.sqrt(2 / 300)),
])
def test_distributions(fn, kwargs, kind, expected):
    t = tl.zeros(200, 300)
    fn(t, **kwargs)
    d = t.numpy().astype(np.float64)
    if kind == "uniform":  # expected = half-width of the interval
        lo, hi = (kwargs["a"], kwargs["b"]) if fn is init.uniform_ else (-expected, expected)
        assert d.min() >= lo and d.max() <= hi
        assert abs(d.max() - hi) < 0.01 * (hi - lo) and abs(d.min() - lo) < 0.01 * (hi - lo)
        assert abs(d.std() - (hi - lo) / math.sqrt(12)) < 0.02 * (hi - lo)
    else:  # expected = std
        assert abs(d.std() - expected) < 0.02 * expected
        assert abs(d.mean() - kwargs.get("mean", 0.0)) < 0.02 * expected + 1e-3


def test_manual_seed_makes_init_reproducible():
    tl.manual_seed(123)
    a = nn.Sequential(nn.Linear(4, 5), nn.Conv2d(2, 3, 3), nn.LSTM(3, 4))
    tl.manual_seed(123)
    b = nn.Sequential(nn.Linear(4, 5), nn.Conv2d(2, 3, 3), nn.LSTM(3, 4))
    for (k, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(p.numpy(), q.numpy(), err_msg=k)
    c = nn.Linear(4, 5)
    assert not np.array_equal(c.weight.numpy(), a[0].weight.numpy())
    gen = np.random.default_rng(0)
    t1, t2 = tl.zeros(3, 3), tl.zeros(3, 3)
    init.normal_(t1, generator=gen)
    init.normal_(t2, generator=np.random.default_rng(0))
    np.testing.assert_array_equal(t1.numpy(), t2.numpy())


def test_layer_default_initialisation_bounds():
    lin = nn.Linear(400, 300)
    bound = 1 / math.sqrt(400)
    for p in (lin.weight, lin.bias):
        assert np.abs(p.numpy()).max() <= bound and np.abs(p.numpy()).max() > 0.9 * bound
    conv = nn.Conv2d(8, 16, 3, groups=2)
    bound = 1 / math.sqrt(4 * 9)
    assert np.abs(conv.weight.numpy()).max() <= bound and np.abs(conv.weight.numpy()).max() > 0.9 * bound
    assert np.abs(conv.bias.numpy()).max() <= bound
    emb = nn.Embedding(1000, 50, padding_idx=3)
    assert abs(emb.weight.numpy().std() - 1) < 0.05 and np.all(emb.weight.numpy()[3] == 0)
    bn = nn.BatchNorm2d(4)
    assert np.all(bn.weight.numpy() == 1) and np.all(bn.bias.numpy() == 0) and np.all(bn.running_var.numpy() == 1)
    gru = nn.GRU(10, 64)
    bound = 1 / math.sqrt(64)
    assert all(np.abs(p.numpy()).max() <= bound for p in gru.parameters())
    assert all(p.dtype == np.float32 for p in gru.parameters())
