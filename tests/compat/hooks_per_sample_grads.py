# Inspecting autograd from the outside, as the docs and tutorials do it: module.register_forward_hook capturing
# activations in a dict (feature extraction), register_full_backward_hook to read and clip the gradients a
# module sees, torch.autograd.functional.jacobian / hessian of the network with respect to its input, and the
# torch.func "Per-sample gradients" tutorial (functional_call, grad, vmap with in_dims=(None, None, 0, 0)) used
# for a DP-SGD style training loop (per-sample clipping, then the mean).
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.autograd.functional import hessian, jacobian
from torch.func import functional_call, grad, vmap

INIT = os.environ.get("COMPAT_INIT", "hooks_per_sample_grads_init.npz")
torch.manual_seed(0)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(6, 12)
        self.act = nn.Tanh()
        self.fc2 = nn.Linear(12, 3)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


model = Net().double()
if os.path.exists(INIT):
    model.load_state_dict({k: torch.from_numpy(v) for k, v in np.load(INIT).items()})
else:
    np.savez(INIT, **{k: v.detach().numpy() for k, v in model.state_dict().items()})

rng = np.random.default_rng(0)
data = torch.from_numpy(rng.standard_normal((16, 6)))
targets = torch.from_numpy(rng.integers(0, 3, 16))

# Feature extraction: forward hooks store each layer's output
activation = {}


def get_activation(name):
    def hook(model, input, output):
        activation[name] = output.detach()
    return hook


handles = [model.fc1.register_forward_hook(get_activation("fc1")),
           model.act.register_forward_hook(get_activation("act"))]

# Backward hooks: what the last layer receives and sends back, and a clip of the gradient through the tanh
seen = {}


def save_grads(module, grad_input, grad_output):
    seen["fc2_in"] = grad_input[0]
    seen["fc2_out"] = grad_output[0]


def clip_grad_input(module, grad_input, grad_output):
    return tuple(g.clamp(-0.02, 0.02) if g is not None else None for g in grad_input)


def first_layer(module, grad_input, grad_output):
    seen["fc1_in_is_none"] = grad_input[0] is None  # the data does not require grad
    seen["fc1_out"] = grad_output[0]


handles += [model.fc2.register_full_backward_hook(save_grads),
            model.act.register_full_backward_hook(clip_grad_input),
            model.fc1.register_full_backward_hook(first_layer)]

optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
for step in range(12):
    optimizer.zero_grad()
    loss = F.cross_entropy(model(data), targets)
    print(f"hooked step {step} loss {loss.item()!r}")
    loss.backward()
    if step % 4 == 0:
        print(step, "fc1 act", tuple(activation["fc1"].shape), f"{activation['act'].abs().mean().item():.10f}",
              "grad fc2 in/out", f"{seen['fc2_in'].norm().item():.10f}", f"{seen['fc2_out'].norm().item():.10f}",
              "fc1 out", f"{seen['fc1_out'].abs().max().item():.10f}", seen["fc1_in_is_none"])
    optimizer.step()
for h in handles:
    h.remove()
print("hooks removed:", len(activation), sorted(activation))

# The network's Jacobian and the loss's Hessian with respect to one input
x0 = data[0]
J = jacobian(model, x0)
print("jacobian:", J.shape, J.requires_grad)
print(J)
H = hessian(lambda x: F.cross_entropy(model(x.unsqueeze(0)), targets[:1]), x0)
print("hessian:", H.shape, torch.allclose(H, H.t()), f"{H.trace().item():.10f}")
Ja, Jb = jacobian(lambda a, b: (a * b).sum(0), (data[:2], data[2:4]))
print("tuple jacobian:", Ja.shape, Jb.shape, torch.allclose(Ja.sum(0), data[2:4]))

# Per-sample gradients with torch.func, as in the tutorial
params = {k: v.detach() for k, v in model.named_parameters()}
buffers = {k: v.detach() for k, v in model.named_buffers()}


def compute_loss(params, buffers, sample, target):
    batch = sample.unsqueeze(0)
    targets = target.unsqueeze(0)
    predictions = functional_call(model, (params, buffers), (batch,))
    loss = F.cross_entropy(predictions, targets)
    return loss


ft_compute_grad = grad(compute_loss)
ft_compute_sample_grad = vmap(ft_compute_grad, in_dims=(None, None, 0, 0))
ft_per_sample_grads = ft_compute_sample_grad(params, buffers, data, targets)


def compute_grad(sample, target):
    sample = sample.unsqueeze(0)
    target = target.unsqueeze(0)
    prediction = model(sample)
    loss = F.cross_entropy(prediction, target)
    return torch.autograd.grad(loss, list(model.parameters()))


per_sample_grads = [compute_grad(data[i], targets[i]) for i in range(len(data))]
per_sample_grads = zip(*per_sample_grads)
per_sample_grads = [torch.stack(shards) for shards in per_sample_grads]
for per_sample_grad, ft_per_sample_grad in zip(per_sample_grads, ft_per_sample_grads.values()):
    assert torch.allclose(per_sample_grad, ft_per_sample_grad, atol=3e-3, rtol=1e-5)
print("per-sample shapes:", [tuple(g.shape) for g in ft_per_sample_grads.values()])

# DP-SGD style: clip each sample's gradient to norm 1, average, step
max_norm = 0.5
optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
for step in range(12):
    params = {k: v.detach() for k, v in model.named_parameters()}
    sample_grads = ft_compute_sample_grad(params, buffers, data, targets)
    norms = torch.stack([g.flatten(1).norm(dim=1) for g in sample_grads.values()]).norm(dim=0)
    scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for name, p in model.named_parameters():
        g = sample_grads[name]
        p.grad = (g * scale.view(-1, *([1] * (g.dim() - 1)))).mean(0)
    with torch.no_grad():
        loss = F.cross_entropy(model(data), targets)
    print(f"dpsgd step {step} loss {loss.item()!r}")
    if step % 4 == 0:
        print(step, "clipped samples", int((norms > max_norm).sum()), f"{norms.max().item():.10f}")
    optimizer.step()
