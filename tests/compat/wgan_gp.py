# Wasserstein GANs on 2-D points, as the popular PyTorch-GAN implementations write them: first the original WGAN
# (a critic without sigmoid, RMSprop, weight clipping with p.data.clamp_, n_critic critic steps per generator
# step), then WGAN-GP: the gradient penalty computed with torch.autograd.grad(..., create_graph=True,
# retain_graph=True, only_inputs=True) on interpolates made with requires_grad_(True), the gradient's
# .norm(2, dim=1), Adam with betas=(0.5, 0.9), a LayerNorm critic and a BatchNorm1d generator. Noise and the
# interpolation weights come from NumPy (torch.manual_seed streams differ between frameworks).
import os

import numpy as np
import torch
import torch.autograd as autograd
import torch.nn as nn

INIT = os.environ.get("COMPAT_INIT", "wgan_gp_init.npz")
torch.manual_seed(0)
rng = np.random.default_rng(11)

latent_dim, hidden, batch_size, n_critic = 3, 24, 32, 5
clip_value, lambda_gp = 0.05, 10


def real_batch(n):
    angle = rng.uniform(0, 2 * np.pi, n)
    return torch.tensor(np.stack([np.cos(angle), np.sin(angle)], 1) * 0.8 + 0.02 * rng.standard_normal((n, 2)))


def sample_z(n):
    return torch.tensor(rng.normal(0, 1, (n, latent_dim)))


class Generator(nn.Module):
    def __init__(self):
        super(Generator, self).__init__()

        def block(in_feat, out_feat, normalize=True):
            layers = [nn.Linear(in_feat, out_feat)]
            if normalize:
                layers.append(nn.BatchNorm1d(out_feat, 0.8))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            return layers

        self.model = nn.Sequential(
            *block(latent_dim, hidden, normalize=False),
            *block(hidden, hidden),
            nn.Linear(hidden, 2),
            nn.Tanh()
        )

    def forward(self, z):
        return self.model(z)


class Critic(nn.Module):
    def __init__(self, layer_norm=False):
        super(Critic, self).__init__()
        self.model = nn.Sequential(
            nn.Linear(2, hidden),
            nn.LayerNorm(hidden) if layer_norm else nn.Identity(),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(hidden, hidden),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(hidden, 1),
        )

    def forward(self, x):
        return self.model(x)


nets = {"G1": Generator().double(), "D1": Critic().double(), "G2": Generator().double(),
        "D2": Critic(layer_norm=True).double()}
if os.path.exists(INIT):
    state = np.load(INIT)
    for name, net in nets.items():
        net.load_state_dict({k.split("/", 1)[1]: torch.from_numpy(v) for k, v in state.items()
                             if k.split("/", 1)[0] == name})
else:
    np.savez(INIT, **{f"{name}/{k}": v.numpy() for name, net in nets.items() for k, v in net.state_dict().items()})

# ---------------------------------------------------------------- WGAN: weight clipping
generator, discriminator = nets["G1"], nets["D1"]
optimizer_G = torch.optim.RMSprop(generator.parameters(), lr=5e-3)
optimizer_D = torch.optim.RMSprop(discriminator.parameters(), lr=5e-3)
batches_done = 0
for i in range(40):
    real_imgs = real_batch(batch_size)

    optimizer_D.zero_grad()
    z = sample_z(real_imgs.shape[0])
    fake_imgs = generator(z).detach()
    # Adversarial loss
    loss_D = -torch.mean(discriminator(real_imgs)) + torch.mean(discriminator(fake_imgs))
    loss_D.backward()
    optimizer_D.step()
    print(f"wgan step {i} loss {loss_D.item()!r}")

    # Clip weights of discriminator
    for p in discriminator.parameters():
        p.data.clamp_(-clip_value, clip_value)

    # Train the generator every n_critic iterations
    if i % n_critic == 0:
        optimizer_G.zero_grad()
        gen_imgs = generator(z)
        loss_G = -torch.mean(discriminator(gen_imgs))
        loss_G.backward()
        optimizer_G.step()
        print("[Batch %d] [D loss: %f] [G loss: %f]" % (i, loss_D.item(), loss_G.item()))
        batches_done += n_critic
print("clipped:", max(p.abs().max().item() for p in discriminator.parameters()) <= clip_value, batches_done)


# ---------------------------------------------------------------- WGAN-GP: gradient penalty
def compute_gradient_penalty(D, real_samples, fake_samples):
    """Calculates the gradient penalty loss for WGAN GP"""
    # Random weight term for interpolation between real and fake samples
    alpha = torch.tensor(rng.random((real_samples.size(0), 1)))
    # Get random interpolation between real and fake samples
    interpolates = (alpha * real_samples + ((1 - alpha) * fake_samples)).requires_grad_(True)
    d_interpolates = D(interpolates)
    fake = torch.ones(real_samples.shape[0], 1, dtype=torch.float64, requires_grad=False)
    # Get gradient w.r.t. interpolates
    gradients = autograd.grad(
        outputs=d_interpolates,
        inputs=interpolates,
        grad_outputs=fake,
        create_graph=True,
        retain_graph=True,
        only_inputs=True,
    )[0]
    gradients = gradients.view(gradients.size(0), -1)
    gradient_penalty = ((gradients.norm(2, dim=1) - 1) ** 2).mean()
    return gradient_penalty


generator, discriminator = nets["G2"], nets["D2"]
optimizer_G = torch.optim.Adam(generator.parameters(), lr=2e-3, betas=(0.5, 0.9))
optimizer_D = torch.optim.Adam(discriminator.parameters(), lr=2e-3, betas=(0.5, 0.9))
for i in range(40):
    real_imgs = real_batch(batch_size)

    optimizer_D.zero_grad()
    z = sample_z(real_imgs.shape[0])
    fake_imgs = generator(z)
    real_validity = discriminator(real_imgs)
    fake_validity = discriminator(fake_imgs)
    gradient_penalty = compute_gradient_penalty(discriminator, real_imgs.data, fake_imgs.data)
    d_loss = -torch.mean(real_validity) + torch.mean(fake_validity) + lambda_gp * gradient_penalty
    d_loss.backward()
    optimizer_D.step()
    print(f"wgan-gp step {i} loss {d_loss.item()!r}")

    optimizer_G.zero_grad()
    if i % n_critic == 0:
        fake_imgs = generator(z)
        fake_validity = discriminator(fake_imgs)
        g_loss = -torch.mean(fake_validity)
        g_loss.backward()
        optimizer_G.step()
        print("[Batch %d] [D loss: %f] [G loss: %f] [GP: %f]"
              % (i, d_loss.item(), g_loss.item(), gradient_penalty.item()))

generator.eval()
with torch.no_grad():
    samples = generator(sample_z(8))
print("radius", f"{samples.norm(dim=1).mean().item():.6f}", samples.grad_fn is None)
