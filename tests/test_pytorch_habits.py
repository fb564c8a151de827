"""PyTorch habits (API.md): devices, grad_fn nodes, the older constructors, memory sharing, and the errors a
PyTorch user gets for the usual mistakes. Tests taking the `torch` fixture compare with PyTorch."""
import inspect
import re

import numpy as np
import pytest

import tinygrad_lite as tl


def _line():
    return inspect.currentframe().f_back.f_lineno


# ---------------- mistakes get clear errors naming the operation, the shapes and the line ----------------
def test_inplace_on_a_leaf_requiring_grad_names_op_shape_and_line():
    p = tl.zeros(2, 3, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"a leaf Variable that requires grad \(shape \(2, 3\), float32\)") as e:
        line = _line() + 1
        p -= 1
    assert re.search(rf"sub_: .*test_pytorch_habits.py:{line}\)", str(e.value))
    with pytest.raises(RuntimeError, match="setitem: a leaf Variable that requires grad"):
        p[0] = 1.0
    with pytest.raises(RuntimeError, match="normal_: a leaf Variable"):
        p.normal_()
    with tl.no_grad():
        p -= 1  # the supported way
    assert p.is_leaf and p.sum().item() == -6


def test_item_assignment_with_a_value_that_does_not_broadcast():
    t = tl.zeros(4, 3)
    with pytest.raises(RuntimeError, match=r"setitem: shape mismatch: value tensor of shape \(2,\) cannot be "
                                           r"broadcast to indexing result of shape \(4, 3\)") as e:
        line = _line() + 1
        t[:] = tl.ones(2)
    assert f"test_pytorch_habits.py:{line}" in str(e.value)
    assert isinstance(e.value, ValueError)  # OpError: a RuntimeError that is also a ValueError
    with pytest.raises(IndexError, match="setitem: .*index"):
        t[5] = 1.0
    t[1:3, 0] = tl.tensor([[7.0, 8.0]])  # leading size-1 dims are dropped, as PyTorch
    assert t[:, 0].tolist() == [0.0, 7.0, 8.0, 0.0]


def test_augmented_assignment_that_would_broadcast_the_target_or_change_its_kind():
    a = tl.zeros(3)
    with pytest.raises(RuntimeError, match=r"add_: output with shape \(3,\) doesn't match the broadcast shape "
                                           r"\(2, 3\)"):
        a += tl.ones(2, 3)
    n = tl.zeros(3, dtype=tl.int64)
    with pytest.raises(RuntimeError, match=r"add_: result type float32 can't be cast to the desired output type "
                                           r"int64"):
        n += 1.5
    n += 2  # int stays int
    assert n.tolist() == [2, 2, 2] and n.dtype == tl.int64
    e = tl.zeros(3).expand(2, 3)
    with pytest.raises(RuntimeError, match="read-only"):
        e.add_(1)


def test_grad_must_be_a_tensor_of_the_same_shape_and_dtype():
    p = tl.zeros(3, requires_grad=True)
    with pytest.raises(TypeError, match=r"assigned grad expected to be a Tensor or None but got grad of type float "
                                        r"\(tensor of shape \(3,\), float32\)"):
        p.grad = 0.0
    with pytest.raises(TypeError, match="ndarray"):
        p.grad = np.zeros(3, np.float32)
    with pytest.raises(RuntimeError, match=r"different size"):
        p.grad = tl.zeros(4)
    p.grad = tl.ones(3)
    p.grad = None
    assert p.grad is None


def test_another_device_is_a_clear_error_everywhere():
    for make in (lambda: tl.zeros(2, device="cuda"), lambda: tl.tensor([1.0], device="cuda:0"),
                 lambda: tl.randn(2).to("cuda"), lambda: tl.randn(2).cuda(), lambda: tl.nn.Linear(2, 2).cuda(),
                 lambda: tl.nn.Linear(2, 2, device="mps"), lambda: tl.nn.Linear(2, 2).to(tl.device("cuda")),
                 lambda: tl.arange(3, device=tl.device("cuda", 0)), lambda: tl.zeros_like(tl.ones(1), device="cuda")):
        with pytest.raises(RuntimeError, match=r"device '(cuda|cuda:0|mps)' is not available \(at .*"
                                               r"test_pytorch_habits.py:\d+\).*is_available\(\) is False"):
            make()
    with pytest.raises(RuntimeError, match="Expected one of cpu, cuda"):
        tl.device("gpu")


# ---------------- devices ----------------
def test_devices_behave_as_pytorch(torch):
    for spec in ("cpu", "cuda", "cuda:1", "mps"):
        ours, theirs = tl.device(spec), torch.device(spec)
        assert (str(ours), repr(ours), ours.type, ours.index) == (str(theirs), repr(theirs), theirs.type,
                                                                  theirs.index)
    assert tl.device("cpu") == "cpu" and tl.device("cuda", 0) == tl.device("cuda:0") != tl.device("cpu")
    assert tl.cuda.is_available() is False and tl.cuda.device_count() == 0
    assert tl.backends.mps.is_available() is False and tl.accelerator.is_available() is False
    tl.cuda.manual_seed_all(0)  # a no-op, as PyTorch's without CUDA
    device = tl.device("cuda" if tl.cuda.is_available() else "cpu")
    x = tl.randn(3, 4, device=device)
    assert x.device == device and x.device.type == "cpu" and not x.is_cuda
    assert x.to(device) is x and x.cpu() is x and x.to("cpu", tl.float64).dtype == tl.float64
    assert x.to(device, dtype=tl.float64).dtype == tl.float64 and x.to(tl.ones(1, dtype=tl.float16)).dtype == tl.float16
    assert x.to(device, copy=True) is not x
    m = tl.nn.Sequential(tl.nn.Linear(4, 2, device=device), tl.nn.ReLU()).to(device)
    assert m.cpu() is m and m.to("cpu", tl.float64)[0].weight.dtype == tl.float64
    for factory in (tl.zeros, tl.ones, tl.empty, tl.rand, tl.randn):
        assert factory(2, device="cpu").device == device
    assert tl.full((2,), 1.0, device="cpu").shape == (2,) and tl.eye(2, device="cpu").shape == (2, 2)
    assert tl.arange(3, device="cpu").tolist() == [0, 1, 2] and tl.linspace(0, 1, 3, device="cpu").shape == (3,)
    assert tl.randint(0, 3, (2,), device="cpu").dtype == tl.int64


# ---------------- grad_fn nodes ----------------
def _walk(fn):
    """(name, [child names]) for every node reachable from fn, depth first, as a drawer walks PyTorch's graph
    (holding the nodes it has seen, as torchviz does, so `id` stays meaningful)."""
    out, stack, seen, held = [], [fn], set(), []
    while stack:
        f = stack.pop()
        if f is None or id(f) in seen:
            continue
        seen.add(id(f))
        held.append(f)
        children = [c for c, _ in f.next_functions]
        out.append((type(f).__name__ if "AccumulateGrad" in f.name() else f.name(),
                    [None if c is None else c.name().split("::")[-1] for c in children]))
        stack.extend(children)
    return out


def test_grad_fn_walks_like_pytorchs(torch):
    def model(L, a, b, c):
        return ((a * b + c).exp() - b.sigmoid() / c).tanh().sum()
    ours = model(tl, *[tl.tensor([0.5, -1.0], requires_grad=True) for _ in range(3)])
    theirs = model(torch, *[torch.tensor([0.5, -1.0], requires_grad=True) for _ in range(3)])
    assert _walk(ours.grad_fn) == _walk(theirs.grad_fn)
    assert repr(ours).endswith("grad_fn=<SumBackward0>)") and repr(theirs).endswith("grad_fn=<SumBackward0>)")


def test_grad_fn_nodes_keep_identity_and_reach_the_leaves():
    a = tl.tensor([1.0, 2.0], requires_grad=True)
    c = tl.tensor([3.0, 4.0])
    y = a * c + a
    assert y.grad_fn is y.grad_fn and a.grad_fn is None
    (mul, _), (acc, _) = y.grad_fn.next_functions
    assert mul.name() == "MulBackward0" and mul.next_functions[1] == (None, 0)
    assert mul.next_functions[0][0] is acc and acc.variable is a and acc.next_functions == ()
    assert y.grad_fn.entry.name == "add" and y.grad_fn.entry is tl.autograd.tape(y)[-1]


# ---------------- constructors and memory sharing ----------------
def test_from_numpy_shares_memory_both_ways():
    arr = np.zeros(3, np.float64)
    t = tl.from_numpy(arr)
    t += 1
    arr[0] = 5
    assert t.tolist() == [5.0, 1.0, 1.0] and t.dtype == tl.float64
    assert tl.as_tensor(arr).numpy() is arr and tl.as_tensor(arr, dtype=tl.float32).numpy() is not arr
    with pytest.raises(TypeError, match="from_numpy: expected np.ndarray"):
        tl.from_numpy([1, 2])


def test_typed_constructors_new_methods_and_type_strings_match_pytorch(torch):
    for name in ("FloatTensor", "DoubleTensor", "LongTensor", "IntTensor", "BoolTensor", "ByteTensor"):
        ours, theirs = getattr(tl, name)([1, 0, 2]), getattr(torch, name)([1, 0, 2])
        assert ours.tolist() == theirs.tolist() and ours.type() == theirs.type() == f"torch.{name}"
        assert getattr(tl, name)(2, 3).shape == tuple(getattr(torch, name)(2, 3).shape)
    for dt in ("float64", "int64", "float16"):
        x, y = tl.ones(2, dtype=dt), torch.ones(2, dtype=getattr(torch, dt))
        for ours, theirs in ((x.new_zeros(3), y.new_zeros(3)), (x.new_ones((2, 2)), y.new_ones((2, 2))),
                             (x.new_full((2,), 7), y.new_full((2,), 7)), (x.new_tensor([1, 2]), y.new_tensor([1, 2])),
                             (x.new_empty(0), y.new_empty(0)), (x.type(tl.float32), y.type(torch.float32)),
                             (x.type("torch.DoubleTensor"), y.type("torch.DoubleTensor")), (x.clone(), y.clone()),
                             (x.contiguous(), y.contiguous())):
            assert ours.tolist() == theirs.tolist() and str(ours.dtype) == str(theirs.dtype).split(".")[1]


def test_clone_is_differentiable_and_independent():
    x = tl.tensor([1.0, 2.0], requires_grad=True)
    y = x.clone()
    y2 = tl.clone(x)
    with tl.no_grad():
        x.numpy()[0] = 10.0
    assert y.tolist() == [1.0, 2.0] and y2.tolist() == [1.0, 2.0]
    (y * 3 + y2).sum().backward()
    assert x.grad.tolist() == [4.0, 4.0]


# ---------------- default dtype, inference mode, randperm ----------------
def test_set_default_dtype_changes_floats_factories_layers_and_printing(torch):
    try:
        for lib in (tl, torch):
            lib.set_default_dtype(lib.float64)
        ours, theirs = tl.tensor([1.5, 2.0]), torch.tensor([1.5, 2.0])
        assert str(ours) == str(theirs) == "tensor([1.5000, 2.0000])"
        assert str(tl.zeros(1, dtype=tl.float32)) == str(torch.zeros(1, dtype=torch.float32))
        for o, t in ((tl.zeros(2), torch.zeros(2)), (tl.randn(2), torch.randn(2)), (tl.arange(0.0, 1.0, 0.5),
                     torch.arange(0.0, 1.0, 0.5)), (tl.nn.Linear(2, 2).weight, torch.nn.Linear(2, 2).weight),
                     (tl.tensor([1, 2]) / 2, torch.tensor([1, 2]) / 2)):
            assert str(o.dtype) == str(t.dtype).split(".")[1] == "float64"
        assert tl.get_default_dtype() == tl.float64
        with pytest.raises(TypeError, match="only floating-point types"):
            tl.set_default_dtype(tl.int64)
    finally:
        tl.set_default_dtype(tl.float32)
        torch.set_default_dtype(torch.float32)
    assert tl.tensor([1.5]).dtype == tl.float32


def test_inference_mode_and_randperm():
    x = tl.ones(2, requires_grad=True)
    with tl.inference_mode():
        assert not tl.is_grad_enabled() and not (x * 2).requires_grad
    with tl.inference_mode(False):
        assert (x * 2).requires_grad

    @tl.inference_mode()
    def predict(v):
        return v * 2
    assert not predict(x).requires_grad and tl.is_grad_enabled()
    tl.manual_seed(3)
    a = tl.randperm(10)
    tl.manual_seed(3)
    assert sorted(a.tolist()) == list(range(10)) and a.dtype == tl.int64 and tl.randperm(10).tolist() == a.tolist()


def test_loader_worker_options_and_load_options_are_accepted(tmp_path):
    ds = tl.data.TensorDataset(tl.arange(6))
    loader = tl.utils.data.DataLoader(ds, batch_size=4, num_workers=2, pin_memory=True, persistent_workers=False)
    assert [b[0].tolist() for b in loader] == [[0, 1, 2, 3], [4, 5]]
    with pytest.raises(ValueError, match="num_workers option should be non-negative"):
        tl.data.DataLoader(ds, num_workers=-1)
    path = tmp_path / "model.pth"
    tl.save({"w": tl.ones(2)}, str(path))
    assert tl.load(str(path), weights_only=True, map_location="cpu")["w"].tolist() == [1.0, 1.0]
    assert tl.load(str(path), map_location=tl.device("cpu"))["w"].tolist() == [1.0, 1.0]
    with pytest.raises(RuntimeError, match="load: device 'cuda' is not available"):
        tl.load(str(path), map_location="cuda")
