"""Module, Parameter and the containers: registration, naming, modes, conversions, hooks, copying, repr."""
import copy
import pickle

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite import nn


class Block(nn.Module):
    def __init__(self, c_in=2):
        super().__init__()
        self.conv = nn.Conv2d(c_in, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)
        self.scale = nn.Parameter(np.ones(3))
        self.register_buffer("steps", tl.zeros(1))
        self.register_buffer("cache", tl.zeros(2), persistent=False)

    def forward(self, x):
        return self.bn(self.conv(x)) * self.scale.reshape(1, 3, 1, 1)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.first = Block()
        self.layers = nn.ModuleList([nn.ReLU(), Block(3)])
        self.head = nn.Linear(3, 2)

    def forward(self, x):
        x = self.first(x)
        for layer in self.layers:
            x = layer(x)
        return self.head(x.mean((2, 3)))


def test_parameter_is_a_leaf_tensor_with_pytorch_dtype_rules():
    p = nn.Parameter([1.0, 2.0])
    assert isinstance(p, tl.Tensor) and p.requires_grad and p.is_leaf and p.dtype == np.float32
    assert nn.Parameter(np.zeros(2)).dtype == np.float64
    assert not nn.Parameter(tl.ones(2), requires_grad=False).requires_grad
    t = tl.ones(3)
    assert nn.Parameter(t).numpy() is t.numpy()  # shares storage, as torch.nn.Parameter(t)
    assert repr(nn.Parameter([1.0])).startswith("Parameter containing:\ntensor(")
    with pytest.raises(RuntimeError):
        nn.Parameter(np.arange(3))  # integers cannot require grad
    assert nn.Parameter().shape == (0,)


def test_registration_order_and_dotted_names():
    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert names == ["first.scale", "first.conv.weight", "first.conv.bias", "first.bn.weight", "first.bn.bias",
                     "layers.1.scale", "layers.1.conv.weight", "layers.1.conv.bias", "layers.1.bn.weight",
                     "layers.1.bn.bias", "head.weight", "head.bias"]
    assert [n for n, _ in net.named_buffers()] == [
        "first.steps", "first.cache", "first.bn.running_mean", "first.bn.running_var", "first.bn.num_batches_tracked",
        "layers.1.steps", "layers.1.cache", "layers.1.bn.running_mean", "layers.1.bn.running_var",
        "layers.1.bn.num_batches_tracked"]
    assert [n for n, _ in net.named_modules()] == ["", "first", "first.conv", "first.bn", "layers", "layers.0",
                                                   "layers.1", "layers.1.conv", "layers.1.bn", "head"]
    assert [n for n, _ in net.named_children()] == ["first", "layers", "head"]
    assert len(list(net.parameters())) == 12 and len(list(net.parameters(recurse=False))) == 0
    assert [n for n, _ in net.first.named_parameters(prefix="x")][0] == "x.scale"
    assert "first.cache" not in net.state_dict() and "first.steps" in net.state_dict()
    assert net.get_submodule("layers.1.conv") is net.layers[1].conv


def test_shared_parameters_and_modules_are_listed_once():
    lin = nn.Linear(2, 2)
    seq = nn.Sequential(lin, nn.ReLU(), lin)
    assert len(list(seq.parameters())) == 2
    assert [n for n, _ in seq.named_modules()] == ["", "0", "1"]
    assert list(seq.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]  # as PyTorch


def test_setattr_rules_and_errors():
    m = nn.Linear(2, 3)
    with pytest.raises(TypeError, match="cannot assign 'Tensor' as parameter 'weight'"):
        m.weight = tl.zeros(3, 2)
    m.bias = None
    assert m.bias is None and "bias" in m._parameters and list(m.state_dict()) == ["weight"]
    m.weight = nn.Parameter(np.zeros((3, 2), dtype=np.float32))
    assert np.all(m.weight.numpy() == 0)
    m.extra = 5
    assert m.extra == 5 and "extra" not in m._parameters
    del m.weight
    assert "weight" not in m._parameters
    with pytest.raises(AttributeError, match="has no attribute 'nothing'"):
        m.nothing

    class NoInit(nn.Module):
        def __init__(self):
            self.w = nn.Parameter([1.0])
    with pytest.raises(AttributeError, match="before Module.__init__"):
        NoInit()
    with pytest.raises(KeyError, match="already exists"):
        m.register_buffer("extra", tl.zeros(1))
    with pytest.raises(KeyError, match='contain'):
        m.register_parameter("a.b", None)
    with pytest.raises(TypeError):
        m.register_buffer("buf", np.zeros(2))
    with pytest.raises(NotImplementedError, match="missing the required \"forward\""):
        nn.Module()(1)


def test_train_eval_apply_requires_grad_and_zero_grad():
    net = Net()
    assert all(m.training for m in net.modules())
    assert net.eval() is net and not any(m.training for m in net.modules())
    net.train()
    assert net.layers[1].bn.training
    with pytest.raises(ValueError):
        net.train("yes")
    seen = []
    net.apply(lambda m: seen.append(type(m).__name__))
    assert seen[-1] == "Net" and seen[0] == "Conv2d"  # children first, as PyTorch
    out = net(tl.randn(2, 2, 4, 4))
    out.sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    grad = net.head.weight.grad
    net.zero_grad(set_to_none=False)
    assert net.head.weight.grad is grad and np.all(grad.numpy() == 0)
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    net.requires_grad_(False)
    assert not any(p.requires_grad for p in net.parameters())


def test_dtype_conversions_keep_parameter_objects():
    net = Net()
    w = net.head.weight
    assert net.double() is net and net.head.weight is w and w.dtype == np.float64
    assert net.first.bn.num_batches_tracked.dtype == np.int64  # integer buffers are left alone
    assert net.first.bn.running_mean.dtype == np.float64
    net.to(tl.float32)
    assert w.dtype == np.float32
    net.to("cpu", dtype=np.float64)
    assert w.dtype == np.float64
    net.float()
    assert net(tl.randn(1, 2, 3, 3)).dtype == np.float32
    with pytest.raises(TypeError):
        net.to(tl.int64)
    assert nn.Linear(2, 2, dtype=tl.float64).weight.dtype == np.float64


def test_forward_hooks():
    lin = nn.Linear(2, 2)
    calls = []
    h1 = lin.register_forward_pre_hook(lambda m, args: calls.append("pre"))
    h2 = lin.register_forward_hook(lambda m, args, out: out * 0)
    out = lin(tl.ones(1, 2))
    assert calls == ["pre"] and np.all(out.numpy() == 0)
    h1.remove()
    h2.remove()
    assert np.any(lin(tl.ones(1, 2)).numpy() != 0) and calls == ["pre"]


def test_deepcopy_and_pickle_make_independent_working_copies():
    net = Net()
    x = tl.randn(2, 2, 4, 4)
    net.eval()
    for clone in (copy.deepcopy(net), pickle.loads(pickle.dumps(net))):
        assert isinstance(clone.head.weight, nn.Parameter)
        np.testing.assert_allclose(clone(x).numpy(), net(x).numpy(), rtol=1e-6)
        clone.head.weight.data += 1
        assert not np.allclose(clone.head.weight.numpy(), net.head.weight.numpy())
        out = clone.train()(x)
        entries = tl.autograd.tape(out)
        assert {e.module for e in entries} >= {"first.conv", "layers.1.bn", "head"}  # scope cache not copied stale


def test_sequential():
    a, b, c = nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)
    seq = nn.Sequential(a, b, c)
    assert len(seq) == 3 and seq[0] is a and seq[-1] is c and list(seq) == [a, b, c]
    x = tl.randn(4, 2)
    np.testing.assert_allclose(seq(x).numpy(), c(b(a(x))).numpy())
    head = seq[:2]
    assert isinstance(head, nn.Sequential) and list(head) == [a, b]
    seq.append(nn.Sigmoid())
    assert len(seq) == 4 and isinstance(seq[3], nn.Sigmoid)
    seq.insert(0, nn.Identity())
    assert [k for k, _ in seq.named_children()] == ["0", "1", "2", "3", "4"] and seq[1] is a
    del seq[0]
    assert seq[0] is a and list(seq._modules) == ["0", "1", "2", "3"]
    assert seq.pop(-1).__class__ is nn.Sigmoid and len(seq) == 3
    seq[1] = nn.Tanh()
    assert isinstance(seq[1], nn.Tanh)
    named = nn.Sequential(__import__("collections").OrderedDict([("fc", a), ("act", b)]))
    assert named.fc is a and list(named.state_dict()) == ["fc.weight", "fc.bias"]
    assert list(named[1:]._modules) == ["act"]
    with pytest.raises(IndexError):
        seq[5]
    assert len(seq + nn.Sequential(nn.ReLU())) == 4


def test_module_list_and_dict():
    ml = nn.ModuleList([nn.Linear(1, 1) for _ in range(3)])
    assert len(ml) == 3 and [k for k, _ in ml.named_children()] == ["0", "1", "2"]
    assert isinstance(ml[1:], nn.ModuleList) and len(ml[1:]) == 2
    ml.extend([nn.ReLU()])
    ml += [nn.Tanh()]
    ml.insert(1, nn.Sigmoid())
    assert [type(m).__name__ for m in ml] == ["Linear", "Sigmoid", "Linear", "Linear", "ReLU", "Tanh"]
    del ml[1:3]
    assert [type(m).__name__ for m in ml] == ["Linear", "Linear", "ReLU", "Tanh"]
    assert len(list(ml.parameters())) == 4
    md = nn.ModuleDict({"a": nn.ReLU(), "b": nn.Linear(2, 2)})
    md["c"] = nn.Tanh()
    md.update([("d", nn.Sigmoid())])
    assert list(md) == ["a", "b", "c", "d"] and "b" in md and len(md) == 4
    assert isinstance(md.pop("a"), nn.ReLU) and list(md.keys()) == ["b", "c", "d"]
    assert list(md.state_dict()) == ["b.weight", "b.bias"]
    del md["c"]
    md.clear()
    assert len(md) == 0


def test_nested_repr_format():
    net = nn.Sequential(nn.Linear(2, 3), nn.ModuleList([nn.ReLU(), nn.ReLU(), nn.Linear(3, 1)]))
    assert repr(net) == (
        "Sequential(\n"
        "  (0): Linear(in_features=2, out_features=3, bias=True)\n"
        "  (1): ModuleList(\n"
        "    (0-1): 2 x ReLU()\n"
        "    (2): Linear(in_features=3, out_features=1, bias=True)\n"
        "  )\n"
        ")")

    class Custom(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(1, 1)

        def extra_repr(self):
            return "alpha=1\nbeta=2"
    assert repr(Custom()) == "Custom(\n  alpha=1\n  beta=2\n  (fc): Linear(in_features=1, out_features=1, bias=True)\n)"
