# Extending autograd as the docs teach it ("Extending PyTorch", "Double Backward with Custom Functions",
# "Learning PyTorch with Examples"): custom torch.autograd.Function subclasses in both styles (forward(ctx, ...)
# and the newer forward + setup_context), ctx.needs_input_grad, a non-tensor argument with a None gradient,
# mark_non_differentiable, set_materialize_grads with once_differentiable, checked with gradcheck/gradgradcheck on
# float64 inputs; then a small network built from them trained with SGD, with a tensor hook clipping the gradient
# of the hidden activations, retain_grad on an intermediate, and torch.autograd.grad(create_graph=True).
import os

import numpy as np
import torch
from torch.autograd import Function, gradcheck, gradgradcheck
from torch.autograd.function import once_differentiable

INIT = os.environ.get("COMPAT_INIT", "custom_function_gradcheck_init.npz")
torch.manual_seed(0)


class LinearFunction(Function):
    # The newer style: forward does not take ctx; setup_context saves what backward needs.
    @staticmethod
    def forward(input, weight, bias=None):
        output = input.mm(weight.t())
        if bias is not None:
            output += bias.unsqueeze(0).expand_as(output)
        return output

    @staticmethod
    def setup_context(ctx, inputs, output):
        input, weight, bias = inputs
        ctx.save_for_backward(input, weight, bias)

    @staticmethod
    def backward(ctx, grad_output):
        input, weight, bias = ctx.saved_tensors
        grad_input = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_input = grad_output.mm(weight)
        if ctx.needs_input_grad[1]:
            grad_weight = grad_output.t().mm(input)
        if bias is not None and ctx.needs_input_grad[2]:
            grad_bias = grad_output.sum(0)
        return grad_input, grad_weight, grad_bias


class MulConstant(Function):
    @staticmethod
    def forward(ctx, tensor, constant):
        ctx.constant = constant
        return tensor * constant

    @staticmethod
    def backward(ctx, grad_output):
        # Gradients of non-Tensor arguments to forward must be None.
        return grad_output * ctx.constant, None


class LegendrePolynomial3(Function):
    @staticmethod
    def forward(input):
        return 0.5 * (5 * input ** 3 - 3 * input)

    @staticmethod
    def setup_context(ctx, inputs, output):
        input, = inputs
        ctx.save_for_backward(input)

    @staticmethod
    def backward(ctx, grad_output):
        input, = ctx.saved_tensors
        return grad_output * 1.5 * (5 * input ** 2 - 1)


class Sort(Function):
    @staticmethod
    def forward(ctx, x):
        sorted, idx = x.sort()
        ctx.mark_non_differentiable(idx)
        ctx.save_for_backward(x, idx)
        return sorted, idx

    @staticmethod
    def backward(ctx, g1, g2):  # still need to accept g2
        x, idx = ctx.saved_tensors
        grad_input = torch.zeros_like(x)
        grad_input.index_add_(0, idx, g1)
        return grad_input


class SimpleFunc(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(x)
        return x.clone(), x.clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, g1, g2):
        x, = ctx.saved_tensors
        grad_input = torch.zeros_like(x)
        if g1 is not None:
            grad_input += g1
        if g2 is not None:
            grad_input += g2
        return grad_input


rng = np.random.default_rng(0)

# gradcheck on double-precision inputs that require grad
inp = (torch.tensor(rng.standard_normal((5, 4)), requires_grad=True),
       torch.tensor(rng.standard_normal((3, 4)), requires_grad=True),
       torch.tensor(rng.standard_normal(3), requires_grad=True))
print("gradcheck linear:", gradcheck(LinearFunction.apply, inp, eps=1e-6, atol=1e-4))
print("gradgradcheck linear:", gradgradcheck(LinearFunction.apply, inp, eps=1e-6, atol=1e-4))
x = torch.tensor(rng.standard_normal(6), dtype=torch.double, requires_grad=True)
print("gradcheck mulconstant:", gradcheck(lambda t: MulConstant.apply(t, 2.5), (x,)))
print("gradcheck legendre:", gradcheck(LegendrePolynomial3.apply, (x,)))
print("gradgradcheck legendre:", gradgradcheck(LegendrePolynomial3.apply, (x,)))
print("gradcheck sort:", gradcheck(lambda t: Sort.apply(t)[0], (x,)))
print("gradcheck simple:", gradcheck(SimpleFunc.apply, (x,)))

# needs_input_grad: only the weight requires grad, so backward skips the others
w = torch.tensor(rng.standard_normal((3, 4)), requires_grad=True)
out = LinearFunction.apply(torch.tensor(rng.standard_normal((2, 4))), w)
out.sum().backward()
print("linear weight grad:", w.grad)

# mark_non_differentiable: the indices do not require grad
s, idx = Sort.apply(x)
print("sort:", s.requires_grad, idx.requires_grad, idx.dtype == torch.int64)
(s * torch.arange(6, dtype=torch.double)).sum().backward()
print("sort grad:", x.grad)
x.grad = None

# set_materialize_grads(False): only one output is used, the other gradient arrives as None
a, b = SimpleFunc.apply(x)
(a * 3).sum().backward()
print("simple grad:", x.grad)
x.grad = None

# A second derivative through a custom Function: torch.autograd.grad with create_graph=True
y = LegendrePolynomial3.apply(x).sum()
(dy,) = torch.autograd.grad(y, x, create_graph=True)
(d2y,) = torch.autograd.grad(dy.sum(), x)
print("dP3:", dy)
print("d2P3:", d2y)

# A small regression network built from the custom Functions, trained with SGD
N, D_in, H, D_out = 32, 6, 8, 2
X = torch.tensor(rng.standard_normal((N, D_in)))
Y = torch.tensor(rng.standard_normal((N, D_out)))
if os.path.exists(INIT):
    init = {k: torch.tensor(v) for k, v in np.load(INIT).items()}
else:
    init = {"w1": torch.randn(H, D_in, dtype=torch.float64) * 0.4, "b1": torch.zeros(H, dtype=torch.float64),
            "w2": torch.randn(D_out, H, dtype=torch.float64) * 0.4, "b2": torch.zeros(D_out, dtype=torch.float64)}
    np.savez(INIT, **{k: v.numpy() for k, v in init.items()})
params = {k: v.clone().requires_grad_() for k, v in init.items()}
optimizer = torch.optim.SGD(params.values(), lr=0.05, momentum=0.9)

clipped = []


def clip_hook(grad):
    clipped.append(int((grad.abs() > 0.01).sum()))
    return grad.clamp(-0.01, 0.01)


for t in range(40):
    optimizer.zero_grad()
    h = LinearFunction.apply(X, params["w1"], params["b1"])
    h.retain_grad()
    a = MulConstant.apply(LegendrePolynomial3.apply(torch.tanh(h)), 0.5)
    a.register_hook(clip_hook)
    pred = LinearFunction.apply(a, params["w2"], params["b2"])
    loss = ((pred - Y) ** 2).mean()
    print(f"train step {t} loss {loss.item()!r}")
    loss.backward()
    if t % 10 == 0:
        print(t, "hidden grad norm", f"{h.grad.norm().item():.10f}", "clipped", clipped[-1])
    optimizer.step()
print("w2 grad:", params["w2"].grad)
