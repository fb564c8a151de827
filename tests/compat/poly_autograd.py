# Fit y = sin(x) with a third-order polynomial, twice, in the style of the "Learning PyTorch with Examples"
# tutorial: first a + b x + c x^2 + d x^3 with autograd and manual updates under no_grad, then
# a + b P3(c + d x) with the Legendre polynomial P3 written as a custom autograd Function.
import math
import os

import numpy as np
import torch

INIT = os.environ.get("COMPAT_INIT", "poly_autograd_init.npz")
dtype = torch.float64
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
torch.manual_seed(0)

# The inputs and targets
x = torch.linspace(-math.pi, math.pi, 2000, device=device, dtype=dtype)
y = torch.sin(x)

# Initial coefficients: drawn once, then shared by every run through the .npz file
if os.path.exists(INIT):
    init = {k: torch.tensor(v) for k, v in np.load(INIT).items()}
else:
    init = {k: torch.randn((), dtype=dtype) for k in ("a", "b", "c", "d")}
    init["a2"], init["b2"] = torch.full((), 0.0, dtype=dtype), torch.full((), -1.0, dtype=dtype)
    init["c2"], init["d2"] = torch.full((), 0.0, dtype=dtype), torch.full((), 0.3, dtype=dtype)
    np.savez(INIT, **{k: v.numpy() for k, v in init.items()})

a, b, c, d = (init[k].clone().to(device).requires_grad_() for k in ("a", "b", "c", "d"))

learning_rate = 1e-6
for t in range(300):
    y_pred = a + b * x + c * x ** 2 + d * x ** 3
    loss = (y_pred - y).pow(2).sum()
    print(f"poly step {t} loss {loss.item()!r}")
    if t % 100 == 99:
        print(t, f"{loss.item():.4f}")
    loss.backward()
    with torch.no_grad():
        a -= learning_rate * a.grad
        b -= learning_rate * b.grad
        c -= learning_rate * c.grad
        d -= learning_rate * d.grad
        a.grad = None
        b.grad = None
        c.grad = None
        d.grad = None
print(f"Result: y = {a.item()} + {b.item()} x + {c.item()} x^2 + {d.item()} x^3")


class LegendrePolynomial3(torch.autograd.Function):
    @staticmethod
    def forward(ctx, input):
        ctx.save_for_backward(input)
        return 0.5 * (5 * input ** 3 - 3 * input)

    @staticmethod
    def backward(ctx, grad_output):
        input, = ctx.saved_tensors
        return grad_output * 1.5 * (5 * input ** 2 - 1)


a = torch.tensor(init["a2"].item(), device=device, dtype=dtype, requires_grad=True)
b = torch.tensor(init["b2"].item(), device=device, dtype=dtype, requires_grad=True)
c = torch.tensor(init["c2"].item(), device=device, dtype=dtype, requires_grad=True)
d = torch.tensor(init["d2"].item(), device=device, dtype=dtype, requires_grad=True)

learning_rate = 5e-6
for t in range(300):
    P3 = LegendrePolynomial3.apply
    y_pred = a + b * P3(c + d * x)
    loss = (y_pred - y).pow(2).sum()
    print(f"legendre step {t} loss {loss.item()!r}")
    loss.backward()
    with torch.no_grad():
        for w in (a, b, c, d):
            w -= learning_rate * w.grad
            w.grad = None
print(f"Result: y = {a.item()} + {b.item()} * P3({c.item()} + {d.item()} x)")
