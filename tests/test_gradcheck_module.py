"""gradcheck on Modules and the faulty-entry search inside whole models: parameters checked by name on a float64
copy (the caller's module untouched), deterministic dropout, and the wrong custom Function named with its source
line and module path."""
import inspect

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite.gradcheck import GradcheckError, find_faulty_entry, gradcheck, gradgradcheck
from tinygrad_lite.nn import Module, Parameter


def _line_of(marker):
    """The line number in this file of the line containing `marker`."""
    lines = inspect.getsource(inspect.getmodule(_line_of)).splitlines()
    return next(i + 1 for i, line in enumerate(lines) if marker in line and "_line_of" not in line)


class WrongSoftplus(tl.autograd.Function):
    """softplus whose backward uses tanh for the sigmoid: plausible-looking, wrong."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return (x.exp() + 1.0).log()

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * x.tanh()


class Softplus(tl.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return (x.exp() + 1.0).log()

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * x.sigmoid()


class DetachedCube(tl.autograd.Function):
    """x**3 with a first derivative that is right but built from a constant, so double backward is wrong."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * tl.tensor(3.0 * x.numpy() ** 2)


class Dense(Module):
    def __init__(self, n_in, n_out, seed):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.weight = Parameter(rng.standard_normal((n_out, n_in)).astype(np.float32) * 0.5)
        self.bias = Parameter(rng.standard_normal(n_out).astype(np.float32) * 0.1)

    def forward(self, x):
        return x @ self.weight.T + self.bias


class Act(Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn.apply(x)  # MARK-ACT-APPLY


class Block(Module):
    def __init__(self, n, seed, fn):
        super().__init__()
        self.dense = Dense(n, n, seed)
        self.act = Act(fn)

    def forward(self, x):
        return self.act(self.dense(x))


class Conv(Module):
    """A 4-D weight (out, in, kh, kw) applied to flattened 2x2 patches: enough to name conv1.weight[o, i, h, w]."""

    def __init__(self):
        super().__init__()
        self.weight = Parameter(np.random.default_rng(7).standard_normal((3, 1, 2, 2)).astype(np.float32))

    def forward(self, x):  # x: (N, 4) patches
        return x @ self.weight.reshape(3, 4).T


class Net(Module):
    def __init__(self, fn=Softplus, conv_fn=None):
        super().__init__()
        self.conv1 = Conv()
        self.conv_fn = conv_fn
        self.block1 = Block(3, 1, Softplus)
        self.block2 = Block(3, 2, fn)
        self.head = Dense(3, 2, 3)

    def forward(self, x):
        h = self.conv1(x)
        if self.conv_fn is not None:
            h = self.conv_fn.apply(h)
        return self.head(self.block2(self.block1(h)))


def inputs():
    return tl.tensor(np.random.default_rng(0).standard_normal((2, 4)), requires_grad=True)


def snapshot(model):
    return {n: (p, p.numpy().copy(), p.numpy().dtype) for n, p in model.named_parameters()}


def test_correct_model_passes_and_callers_module_is_untouched():
    model = Net()
    model.eval()
    before = snapshot(model)
    assert gradcheck(model, inputs())
    after = dict(model.named_parameters())
    for name, (p, data, dtype) in before.items():
        assert after[name] is p and p.numpy().dtype == dtype == np.float32
        assert np.array_equal(p.numpy(), data) and p.grad is None
    assert model.training is False


def test_wrong_function_deep_in_a_model_is_named_with_source_line_and_module():
    with pytest.raises(GradcheckError) as info:
        gradcheck(Net(fn=WrongSoftplus), inputs())
    f = info.value.faulty_entry
    assert f.name == "WrongSoftplus" and f.function is WrongSoftplus and f.kind == "custom Function"
    assert f.source_path == f"{__file__}:{_line_of('MARK-ACT-APPLY')}"
    assert f.module == "block2.act"
    assert f.output_shape == (2, 3) and f.input_shapes == ((2, 3),)
    msg = str(info.value)
    assert f"test_gradcheck_module.py:{_line_of('MARK-ACT-APPLY')} in module 'block2.act'" in msg
    assert "custom Function WrongSoftplus" in msg
    # the parameters upstream of the bug are reported by name too
    names = {m.leaf.name for m in info.value.mismatches}
    assert {"conv1.weight", "block1.dense.weight", "block2.dense.bias"} <= names
    assert "head.weight" not in names  # downstream of the bug: its gradient is right


def test_failures_name_parameter_elements_by_multi_index():
    with pytest.raises(GradcheckError) as info:
        gradcheck(Net(conv_fn=WrongSoftplus), inputs())
    conv = next(m for m in info.value.mismatches if m.leaf.name == "conv1.weight")
    assert conv.leaf.kind == "parameter"
    msg = str(info.value)
    assert "parameter 'conv1.weight' (shape (3, 1, 2, 2), float64" in msg or "parameter 'conv1.weight'" in msg
    el = conv.errors[0]
    assert len(el.in_idx) == 4 and conv.leaf.element(el.in_idx).startswith("conv1.weight[")
    assert info.value.faulty_entry.module == "" or info.value.faulty_entry.module is None


def test_find_faulty_entry_helper():
    assert find_faulty_entry(Net(), inputs()) is None
    f = find_faulty_entry(Net(fn=WrongSoftplus), inputs())
    assert f.name == "WrongSoftplus" and f.module == "block2.act"
    assert f"{f.source_path}" in str(f)


class RandomMask(Module):
    """Dropout written with the package RNG: a different mask every call unless gradcheck reseeds."""

    def __init__(self, p=0.5):
        super().__init__()
        self.p = p

    def forward(self, x):
        if not self.training:
            return x
        keep = tl.random.get_rng().random(x.shape) >= self.p
        return x * tl.tensor(keep.astype(x.dtype)) / (1 - self.p)


class DropNet(Module):
    def __init__(self):
        super().__init__()
        self.fc1 = Dense(4, 6, 0)
        self.drop = RandomMask()
        self.fc2 = Dense(6, 2, 1)

    def forward(self, x):
        return self.fc2(self.drop(self.fc1(x).tanh()))


def test_dropout_is_deterministic_during_the_check_in_train_and_eval_mode():
    model = DropNet()
    rng = tl.random.get_rng()
    assert gradcheck(model, inputs()) and model.training
    assert gradcheck(model.eval(), inputs())
    assert tl.random.get_rng() is rng


def test_real_nn_dropout_if_available():
    Dropout, Linear = getattr(tl.nn, "Dropout", None), getattr(tl.nn, "Linear", None)
    if Dropout is None or Linear is None:
        pytest.skip("tl.nn.Dropout / tl.nn.Linear have not landed yet")
    tl.manual_seed(0)
    model = tl.nn.Sequential(Linear(4, 5), Dropout(0.5), Linear(5, 2))
    assert gradcheck(model, inputs())


def test_float32_inputs_to_a_module_run_in_float64_without_warning(recwarn):
    x32 = tl.tensor(np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32), requires_grad=True)
    assert gradcheck(Net(), x32)
    assert not [w for w in recwarn if "float64" in str(w.message)]
    assert x32.dtype == np.float32


class CubeAct(Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn.apply(x) * 0.1  # MARK-CUBE


class Cube(tl.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * 3.0 * x * x


class CubeNet(Module):
    def __init__(self, fn):
        super().__init__()
        self.fc = Dense(4, 3, 0)
        self.cube = CubeAct(fn)

    def forward(self, x):
        return self.cube(self.fc(x)).sum(1)


def test_gradgradcheck_on_a_module_and_a_wrong_double_backward_inside_it():
    assert gradgradcheck(CubeNet(Cube), inputs())
    assert gradcheck(CubeNet(DetachedCube), inputs())  # first order is right
    with pytest.raises(GradcheckError) as info:
        gradgradcheck(CubeNet(DetachedCube), inputs())
    f = info.value.faulty_entry
    assert f.name == "DetachedCube" and f.order == 2 and f.module == "cube"
    assert f.source_path.endswith(f"test_gradcheck_module.py:{_line_of('MARK-CUBE')}")
    assert "double backward" in str(info.value)
    assert find_faulty_entry(CubeNet(DetachedCube), inputs()) is None
    assert find_faulty_entry(CubeNet(DetachedCube), inputs(), order=2).name == "DetachedCube"


def test_example_locates_the_buggy_function_and_the_fix_passes():
    import os
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    script = os.path.join(root, "examples", "gradcheck_custom_layer.py")
    out = subprocess.run([sys.executable, script], capture_output=True, text=True, check=True, cwd=root,
                         env={**os.environ, "PYTHONPATH": root}).stdout
    lines = open(script).read().splitlines()
    line = next(i + 1 for i, s in enumerate(lines) if "return self.fn.apply(x)" in s)
    assert f"gradcheck_custom_layer: located BuggySwish at examples/gradcheck_custom_layer.py:{line}; " \
           f"fixed version passes" in out
    assert "in module 'features.2'" in out and "parameter 'features.0.weight'" in out
