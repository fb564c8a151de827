# A fully-connected ReLU network with one hidden layer, trained to fit random data, in the style of the
# "Learning PyTorch with Examples" tutorial: first with the backward pass written by hand on tensors
# (torch.mm, .t(), masked assignment), then with autograd and ReLU as a custom autograd Function.
import os

import numpy as np
import torch

INIT = os.environ.get("COMPAT_INIT", "two_layer_custom_relu_init.npz")
dtype = torch.float64
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
torch.manual_seed(0)

# N is batch size; D_in is input dimension; H is hidden dimension; D_out is output dimension.
N, D_in, H, D_out = 64, 100, 50, 10

rng = np.random.default_rng(1)
x = torch.from_numpy(rng.standard_normal((N, D_in))).to(device)
y = torch.tensor(rng.standard_normal((N, D_out)), device=device, dtype=dtype)

if os.path.exists(INIT):
    init = np.load(INIT)
    w1, w2 = torch.tensor(init["w1"]).to(device), torch.tensor(init["w2"]).to(device)
else:
    w1 = torch.randn(D_in, H, device=device, dtype=dtype)
    w2 = torch.randn(H, D_out, device=device, dtype=dtype)
    np.savez(INIT, w1=w1.cpu().numpy(), w2=w2.cpu().numpy())
w1_start, w2_start = w1.clone(), w2.clone()

learning_rate = 1e-6
for t in range(50):
    # Forward pass: compute predicted y
    h = x.mm(w1)
    h_relu = h.clamp(min=0)
    y_pred = torch.mm(h_relu, w2)

    loss = (y_pred - y).pow(2).sum().item()
    print(f"manual step {t} loss {loss!r}")

    # Backprop to compute gradients of w1 and w2 with respect to loss
    grad_y_pred = 2.0 * (y_pred - y)
    grad_w2 = h_relu.t().mm(grad_y_pred)
    grad_h_relu = grad_y_pred.mm(w2.t())
    grad_h = grad_h_relu.clone()
    grad_h[h < 0] = 0
    grad_w1 = x.t().mm(grad_h)

    w1 -= learning_rate * grad_w1
    w2 -= learning_rate * grad_w2


class MyReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, input):
        ctx.save_for_backward(input)
        return input.clamp(min=0)

    @staticmethod
    def backward(ctx, grad_output):
        input, = ctx.saved_tensors
        grad_input = grad_output.clone()
        grad_input[input < 0] = 0
        return grad_input


w1 = w1_start.clone().requires_grad_(True)
w2 = w2_start.clone().requires_grad_(True)
for t in range(50):
    relu = MyReLU.apply
    y_pred = relu(x.mm(w1)).mm(w2)
    loss = (y_pred - y).pow(2).sum()
    print(f"autograd step {t} loss {loss.item()!r}")
    if t % 10 == 9:
        print(t, f"{loss:.4f}")
    loss.backward()
    with torch.no_grad():
        w1 -= learning_rate * w1.grad
        w2 -= learning_rate * w2.grad
        w1.grad.zero_()
        w2.grad.zero_()
